//! Clients (the dossier owners).

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{CatalogError, Tx, bool_col, opt_uuid_col, q, sealed_cols, uuid_col};
pub use crate::domain::ClientStatus;
use crate::domain::Commissioner;
use crate::keyring::WrappedKey;

/// A client as stored. The BSN stays sealed here; only the audited reveal
/// and the masking open it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    pub id: Uuid,
    pub first_name: String,
    pub initials: String,
    pub last_name: String,
    pub birth_date: String,
    pub bsn_sealed: Option<WrappedKey>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub postcode: Option<String>,
    pub city: Option<String>,
    pub commissioner: Commissioner,
    pub coach_id: Option<Uuid>,
    pub status: ClientStatus,
    pub ended_at: Option<i64>,
    pub restricted: bool,
    /// The current consent to the satisfaction survey (kept by the consent
    /// register, in its transactions).
    pub survey_consent: bool,
    /// Set when the client's data was erased (art. 17): the personal
    /// fields are empty.
    pub erased_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! select_clients {
    ($rest:literal) => {
        concat!(
            "SELECT id, first_name, initials, last_name, birth_date, bsn_sealed, bsn_key_version, email, phone, \
             address, postcode, city, commissioner, coach_id, status, ended_at, \
             CAST(restricted AS INTEGER) AS restricted, CAST(survey_consent AS INTEGER) AS survey_consent, \
             erased_at, created_at, updated_at FROM clients ",
            $rest
        )
    };
}

/// How [`Tx::client_locked`] locks the row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowLock {
    Share,
    Update,
}

/// A client's name as shown: first and last name.
pub fn display_name(first: &str, last: &str) -> String {
    format!("{first} {last}").trim().to_string()
}

pub(super) fn client_from_row(r: &AnyRow) -> Result<ClientRow, CatalogError> {
    let commissioner: String = r.try_get("commissioner").map_err(q("decode"))?;
    let status: String = r.try_get("status").map_err(q("decode"))?;
    Ok(ClientRow {
        id: uuid_col(r, "id")?,
        first_name: r.try_get("first_name").map_err(q("decode"))?,
        initials: r.try_get("initials").map_err(q("decode"))?,
        last_name: r.try_get("last_name").map_err(q("decode"))?,
        birth_date: r.try_get("birth_date").map_err(q("decode"))?,
        bsn_sealed: sealed_cols(r, "bsn_sealed", "bsn_key_version")?,
        email: r.try_get("email").map_err(q("decode"))?,
        phone: r.try_get("phone").map_err(q("decode"))?,
        address: r.try_get("address").map_err(q("decode"))?,
        postcode: r.try_get("postcode").map_err(q("decode"))?,
        city: r.try_get("city").map_err(q("decode"))?,
        commissioner: commissioner.parse().map_err(|_| CatalogError::Corrupt("commissioner".into()))?,
        coach_id: opt_uuid_col(r, "coach_id")?,
        status: status.parse().map_err(|_| CatalogError::Corrupt(format!("client status {status:?}")))?,
        ended_at: r.try_get("ended_at").map_err(q("decode"))?,
        restricted: bool_col(r, "restricted")?,
        survey_consent: bool_col(r, "survey_consent")?,
        erased_at: r.try_get("erased_at").map_err(q("decode"))?,
        created_at: r.try_get("created_at").map_err(q("decode"))?,
        updated_at: r.try_get("updated_at").map_err(q("decode"))?,
    })
}

/// The fields of a new client row. The BSN arrives sealed.
#[derive(Debug, Clone)]
pub struct NewClientRow {
    pub id: Uuid,
    pub first_name: String,
    pub initials: String,
    pub last_name: String,
    pub birth_date: String,
    pub bsn_sealed: Option<WrappedKey>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub postcode: Option<String>,
    pub city: Option<String>,
    pub commissioner: Commissioner,
    pub coach_id: Option<Uuid>,
}

impl super::Catalog {
    /// Fill in the folded last name (`last_name_key`, migration 0013) of
    /// rows written before it existed; at connect, so that every row has
    /// one (the name filter falls back to `lower(last_name)` for a row an
    /// older binary writes meanwhile). Two processes starting together
    /// write the same values, and lock the rows in the same order (by id),
    /// so neither deadlocks the other.
    pub(super) async fn fill_name_keys(&self) -> Result<(), CatalogError> {
        const OP: &str = "fill_name_keys";
        let rows = sqlx::query("SELECT id, last_name FROM clients WHERE last_name_key IS NULL ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(q(OP))?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_pool.as_ref().unwrap_or(&self.pool).begin().await.map_err(q(OP))?;
        for row in &rows {
            let id: String = row.try_get("id").map_err(q(OP))?;
            let name: String = row.try_get("last_name").map_err(q(OP))?;
            sqlx::query("UPDATE clients SET last_name_key = $1 WHERE id = $2 AND last_name_key IS NULL")
                .bind(indexer::fold(&name))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(q(OP))?;
        }
        tx.commit().await.map_err(q(OP))?;
        tracing::info!(clients = rows.len(), "folded last names filled in for the name filter");
        Ok(())
    }
}

impl Tx {
    pub async fn insert_client(&mut self, c: &NewClientRow) -> Result<(), CatalogError> {
        let now = self.now;
        sqlx::query(
            "INSERT INTO clients (id, first_name, initials, last_name, birth_date, bsn_sealed, bsn_key_version, \
             email, phone, address, postcode, city, commissioner, coach_id, status, restricted, created_at, updated_at, \
             last_name_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'active', $15, $16, $16, $17)",
        )
        .bind(c.id.to_string())
        .bind(&c.first_name)
        .bind(&c.initials)
        .bind(&c.last_name)
        .bind(&c.birth_date)
        .bind(c.bsn_sealed.as_ref().map(|s| s.bytes.clone()))
        .bind(c.bsn_sealed.as_ref().map(|s| i64::from(s.version)))
        .bind(c.email.clone())
        .bind(c.phone.clone())
        .bind(c.address.clone())
        .bind(c.postcode.clone())
        .bind(c.city.clone())
        .bind(c.commissioner.as_str())
        .bind(c.coach_id.map(|u| u.to_string()))
        .bind(false)
        .bind(now)
        .bind(indexer::fold(&c.last_name))
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_client"))?;
        Ok(())
    }

    /// The sealed BSN of a client, if one was recorded.
    pub async fn client_bsn_sealed(&mut self, id: Uuid) -> Result<Option<WrappedKey>, CatalogError> {
        let row = sqlx::query("SELECT bsn_sealed, bsn_key_version FROM clients WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("client_bsn_sealed"))?
            .ok_or(CatalogError::NotFound("client"))?;
        sealed_cols(&row, "bsn_sealed", "bsn_key_version")
    }

    pub async fn client(&mut self, id: Uuid) -> Result<ClientRow, CatalogError> {
        self.client_opt(id).await?.ok_or(CatalogError::NotFound("client"))
    }

    pub async fn client_opt(&mut self, id: Uuid) -> Result<Option<ClientRow>, CatalogError> {
        let row = sqlx::query(select_clients!("WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("client"))?;
        row.as_ref().map(client_from_row).transpose()
    }

    /// A client read and locked until the end of the transaction, on
    /// PostgreSQL (`FOR SHARE`: a change to the row waits, or `FOR UPDATE`:
    /// everything that locks it waits). SQLite's writer is alone anyway.
    /// Operations whose decision must hold until they commit read their
    /// client this way (an erasure, a correction; an upload's activation and
    /// a download's redemption against a restriction, a withdrawn consent
    /// or an erasure committing meanwhile).
    pub async fn client_locked(&mut self, id: Uuid, lock: RowLock) -> Result<Option<ClientRow>, CatalogError> {
        let suffix = match (self.backend, lock) {
            (super::Backend::Sqlite, _) => "",
            (super::Backend::Postgres, RowLock::Share) => " FOR SHARE",
            (super::Backend::Postgres, RowLock::Update) => " FOR UPDATE",
        };
        let sql = format!("{}{suffix}", select_clients!("WHERE id = $1"));
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("client_locked"))?;
        row.as_ref().map(client_from_row).transpose()
    }

    /// Clients, optionally only one status and/or one coach's caseload,
    /// ordered by name.
    pub async fn list_clients(
        &mut self,
        status: Option<ClientStatus>,
        coach: Option<Uuid>,
    ) -> Result<Vec<ClientRow>, CatalogError> {
        let rows = sqlx::query(select_clients!(
            "WHERE ($1 IS NULL OR status = $1) AND ($2 IS NULL OR coach_id = $2) ORDER BY last_name, first_name, id"
        ))
        .bind(status.map(|s| s.as_str()))
        .bind(coach.map(|c| c.to_string()))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(q("list_clients"))?;
        rows.iter().map(client_from_row).collect()
    }

    /// One page of clients by name (`status`, then the coaches whose
    /// caseloads to list, then the start of the last name, compared folded:
    /// case and accents do not count, see [`indexer::fold`]), and how many
    /// match in all.
    pub async fn list_clients_page(
        &mut self,
        status: Option<ClientStatus>,
        coaches: Option<&[Uuid]>,
        name: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<ClientRow>, i64), CatalogError> {
        let coach_filter = match coaches {
            Some([]) => return Ok((Vec::new(), 0)),
            Some(list) => format!(" AND coach_id IN ({})", super::placeholders(3, list.len())),
            None => String::new(),
        };
        let filter = format!(
            "WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR COALESCE(last_name_key, lower(last_name)) LIKE $2 ESCAPE '\\'){coach_filter}"
        );
        // `%`, `_` and `\` in a name are matched as themselves.
        let pattern = name.map(|n| {
            let mut p = String::new();
            for c in indexer::fold(n).chars() {
                if matches!(c, '%' | '_' | '\\') {
                    p.push('\\');
                }
                p.push(c);
            }
            p.push('%');
            p
        });
        let bind_all = |sql: String| {
            let mut query =
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(status.map(|s| s.as_str())).bind(pattern.clone());
            for c in coaches.unwrap_or(&[]) {
                query = query.bind(c.to_string());
            }
            query
        };
        let total: i64 = bind_all(format!("SELECT COUNT(*) AS n FROM clients {filter}"))
            .fetch_one(&mut *self.tx)
            .await
            .map_err(q("count clients"))?
            .try_get("n")
            .map_err(q("decode"))?;
        let n = 3 + coaches.map_or(0, |c| c.len());
        let sql = format!(
            "{} {filter} ORDER BY last_name, first_name, id LIMIT ${} OFFSET ${}",
            select_clients!(""),
            n,
            n + 1
        );
        let rows =
            bind_all(sql).bind(limit).bind(offset).fetch_all(&mut *self.tx).await.map_err(q("list_clients_page"))?;
        Ok((rows.iter().map(client_from_row).collect::<Result<_, _>>()?, total))
    }

    pub async fn set_client_coach(&mut self, id: Uuid, coach: Option<Uuid>) -> Result<(), CatalogError> {
        let r = sqlx::query("UPDATE clients SET coach_id = $1, updated_at = $2 WHERE id = $3")
            .bind(coach.map(|c| c.to_string()))
            .bind(self.now)
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(q("set_client_coach"))?;
        if r.rows_affected() == 0 {
            return Err(CatalogError::NotFound("client"));
        }
        Ok(())
    }

    /// Reopen an ended trajectory: the retention dates its end gave are
    /// cleared again (manual dates stay). False if it was not closed.
    pub async fn reopen_client(&mut self, id: Uuid) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "UPDATE clients SET status = 'active', ended_at = NULL, updated_at = $1 WHERE id = $2 AND status = 'closed'",
        )
        .bind(self.now)
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("reopen_client"))?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        self.recompute_retention(super::Recompute::Client(id)).await?;
        Ok(true)
    }

    /// End the trajectory (only an active one): the retention clocks of its
    /// trajectory-bound documents start. Returns false if it was already
    /// closed.
    pub async fn close_client(&mut self, id: Uuid, ended_at: i64) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "UPDATE clients SET status = 'closed', ended_at = $1, updated_at = $2 WHERE id = $3 AND status = 'active'",
        )
        .bind(ended_at)
        .bind(self.now)
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("close_client"))?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        self.recompute_retention(super::Recompute::Client(id)).await?;
        Ok(true)
    }
}
