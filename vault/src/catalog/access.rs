//! Substitutions and the caseload history.

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{CatalogError, Tx, opt_uuid_col, q, uuid_col};

/// A registered substitution as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubstitutionRow {
    pub id: Uuid,
    pub absent_coach_id: Uuid,
    pub substitute_id: Uuid,
    pub starts_at: i64,
    /// Exclusive.
    pub ends_at: i64,
    /// `vacation` or `sickness`.
    pub reason: String,
    pub created_by: Uuid,
    pub created_at: i64,
    pub ended_early_by: Option<Uuid>,
}

/// One period of a coach's responsibility for a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseloadPeriod {
    pub client_id: Uuid,
    pub coach_id: Option<Uuid>,
    pub from_at: i64,
    pub until_at: Option<i64>,
    pub assigned_by: Option<Uuid>,
}

macro_rules! select_substitutions {
    ($rest:literal) => {
        concat!(
            "SELECT id, absent_coach_id, substitute_id, starts_at, ends_at, reason, created_by, created_at, \
             ended_early_by FROM substitutions ",
            $rest
        )
    };
}

fn substitution_from_row(r: &AnyRow) -> Result<SubstitutionRow, CatalogError> {
    Ok(SubstitutionRow {
        id: uuid_col(r, "id")?,
        absent_coach_id: uuid_col(r, "absent_coach_id")?,
        substitute_id: uuid_col(r, "substitute_id")?,
        starts_at: r.try_get("starts_at").map_err(q("decode"))?,
        ends_at: r.try_get("ends_at").map_err(q("decode"))?,
        reason: r.try_get("reason").map_err(q("decode"))?,
        created_by: uuid_col(r, "created_by")?,
        created_at: r.try_get("created_at").map_err(q("decode"))?,
        ended_early_by: opt_uuid_col(r, "ended_early_by")?,
    })
}

impl Tx {
    pub async fn insert_substitution(&mut self, s: &SubstitutionRow) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO substitutions (id, absent_coach_id, substitute_id, starts_at, ends_at, reason, created_by, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(s.id.to_string())
        .bind(s.absent_coach_id.to_string())
        .bind(s.substitute_id.to_string())
        .bind(s.starts_at)
        .bind(s.ends_at)
        .bind(&s.reason)
        .bind(s.created_by.to_string())
        .bind(s.created_at)
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_substitution"))?;
        Ok(())
    }

    pub async fn substitution(&mut self, id: Uuid) -> Result<SubstitutionRow, CatalogError> {
        let row = sqlx::query(select_substitutions!("WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("substitution"))?
            .ok_or(CatalogError::NotFound("substitution"))?;
        substitution_from_row(&row)
    }

    /// Substitutions that have not ended at `now`, or all of them.
    pub async fn list_substitutions(&mut self, current_at: Option<i64>) -> Result<Vec<SubstitutionRow>, CatalogError> {
        let rows = sqlx::query(select_substitutions!("WHERE ($1 IS NULL OR ends_at > $1) ORDER BY starts_at, id"))
            .bind(current_at)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(q("list_substitutions"))?;
        rows.iter().map(substitution_from_row).collect()
    }

    /// The substitutions in which `substitute` covers someone at `now`.
    pub async fn active_substitutions_of(
        &mut self,
        substitute: Uuid,
        now: i64,
    ) -> Result<Vec<SubstitutionRow>, CatalogError> {
        let rows = sqlx::query(select_substitutions!(
            "WHERE substitute_id = $1 AND starts_at <= $2 AND ends_at > $2 ORDER BY starts_at"
        ))
        .bind(substitute.to_string())
        .bind(now)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(q("active_substitutions_of"))?;
        rows.iter().map(substitution_from_row).collect()
    }

    /// End a substitution early: from `now` on it no longer grants access.
    /// One that has not started yet becomes an empty window.
    pub async fn end_substitution(&mut self, id: Uuid, by: Uuid) -> Result<bool, CatalogError> {
        let now = self.now;
        let r = sqlx::query(
            "UPDATE substitutions SET ends_at = CASE WHEN starts_at >= $1 THEN starts_at ELSE $1 END, \
             ended_early_by = $2 WHERE id = $3 AND ends_at > $1",
        )
        .bind(now)
        .bind(by.to_string())
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("end_substitution"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Assign (or unassign) a client's coach and record the change in the
    /// caseload history.
    pub async fn assign_coach(
        &mut self,
        client: Uuid,
        coach: Option<Uuid>,
        by: Option<Uuid>,
    ) -> Result<(), CatalogError> {
        let now = self.now;
        let r = sqlx::query("UPDATE clients SET coach_id = $1, updated_at = $2 WHERE id = $3")
            .bind(coach.map(|c| c.to_string()))
            .bind(now)
            .bind(client.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(q("assign_coach"))?;
        if r.rows_affected() == 0 {
            return Err(CatalogError::NotFound("client"));
        }
        sqlx::query("UPDATE caseload_history SET until_at = $1 WHERE client_id = $2 AND until_at IS NULL")
            .bind(now)
            .bind(client.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(q("assign_coach history"))?;
        sqlx::query(
            "INSERT INTO caseload_history (id, client_id, coach_id, from_at, until_at, assigned_by) \
             VALUES ($1, $2, $3, $4, NULL, $5)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(client.to_string())
        .bind(coach.map(|c| c.to_string()))
        .bind(now)
        .bind(by.map(|b| b.to_string()))
        .execute(&mut *self.tx)
        .await
        .map_err(q("assign_coach history"))?;
        Ok(())
    }

    /// Who was responsible for a client, oldest first.
    pub async fn caseload_history(&mut self, client: Uuid) -> Result<Vec<CaseloadPeriod>, CatalogError> {
        let rows = sqlx::query(
            "SELECT client_id, coach_id, from_at, until_at, assigned_by FROM caseload_history \
             WHERE client_id = $1 ORDER BY from_at, id",
        )
        .bind(client.to_string())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(q("caseload_history"))?;
        rows.iter()
            .map(|r| {
                Ok(CaseloadPeriod {
                    client_id: uuid_col(r, "client_id")?,
                    coach_id: opt_uuid_col(r, "coach_id")?,
                    from_at: r.try_get("from_at").map_err(q("decode"))?,
                    until_at: r.try_get("until_at").map_err(q("decode"))?,
                    assigned_by: opt_uuid_col(r, "assigned_by")?,
                })
            })
            .collect()
    }

    pub async fn set_client_restricted(&mut self, client: Uuid, restricted: bool) -> Result<(), CatalogError> {
        let r = sqlx::query("UPDATE clients SET restricted = $1, updated_at = $2 WHERE id = $3")
            .bind(restricted)
            .bind(self.now)
            .bind(client.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(q("set_client_restricted"))?;
        if r.rows_affected() == 0 {
            return Err(CatalogError::NotFound("client"));
        }
        Ok(())
    }
}
