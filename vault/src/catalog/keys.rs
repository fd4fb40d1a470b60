//! Master-key versions and the sealed values they wrap (for `kluis rekey`).

use sqlx::Row;
use uuid::Uuid;

use super::{CatalogError, Tx, q, sealed_cols, uuid_col};
use crate::keyring::WrappedKey;

/// A master-key version as recorded in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersionRow {
    pub version: u32,
    pub check_value: String,
    pub retired: bool,
    pub created_at: i64,
}

/// The kinds of sealed values the master key protects; `kluis rekey` re-wraps
/// all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedKind {
    DocumentKey,
    ClientBsn,
    UserTotp,
}

impl SealedKind {
    pub const ALL: [SealedKind; 3] = [SealedKind::DocumentKey, SealedKind::ClientBsn, SealedKind::UserTotp];

    /// A stable machine name.
    pub fn name(self) -> &'static str {
        match self {
            SealedKind::DocumentKey => "document_keys",
            SealedKind::ClientBsn => "client_bsns",
            SealedKind::UserTotp => "user_totp_secrets",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SealedKind::DocumentKey => "document data keys",
            SealedKind::ClientBsn => "client BSNs",
            SealedKind::UserTotp => "user TOTP secrets",
        }
    }

    fn count_below_sql(self) -> &'static str {
        match self {
            SealedKind::DocumentKey => "SELECT COUNT(*) AS n FROM documents WHERE key_version < $1",
            SealedKind::ClientBsn => "SELECT COUNT(*) AS n FROM clients WHERE bsn_key_version < $1",
            SealedKind::UserTotp => "SELECT COUNT(*) AS n FROM users WHERE totp_key_version < $1",
        }
    }

    fn count_with_sql(self) -> &'static str {
        match self {
            SealedKind::DocumentKey => "SELECT COUNT(*) AS n FROM documents WHERE key_version = $1",
            SealedKind::ClientBsn => "SELECT COUNT(*) AS n FROM clients WHERE bsn_key_version = $1",
            SealedKind::UserTotp => "SELECT COUNT(*) AS n FROM users WHERE totp_key_version = $1",
        }
    }

    fn select_below_sql(self) -> &'static str {
        match self {
            SealedKind::DocumentKey => {
                "SELECT id, key_version AS v, wrapped_key AS sealed FROM documents \
                 WHERE key_version < $1 ORDER BY id LIMIT $2"
            }
            SealedKind::ClientBsn => {
                "SELECT id, bsn_key_version AS v, bsn_sealed AS sealed FROM clients \
                 WHERE bsn_key_version < $1 ORDER BY id LIMIT $2"
            }
            SealedKind::UserTotp => {
                "SELECT id, totp_key_version AS v, totp_secret AS sealed FROM users \
                 WHERE totp_key_version < $1 ORDER BY id LIMIT $2"
            }
        }
    }

    fn replace_sql(self) -> &'static str {
        match self {
            SealedKind::DocumentKey => {
                "UPDATE documents SET wrapped_key = $1, key_version = $2 WHERE id = $3 AND key_version = $4"
            }
            SealedKind::ClientBsn => {
                "UPDATE clients SET bsn_sealed = $1, bsn_key_version = $2 WHERE id = $3 AND bsn_key_version = $4"
            }
            SealedKind::UserTotp => {
                "UPDATE users SET totp_secret = $1, totp_key_version = $2 WHERE id = $3 AND totp_key_version = $4"
            }
        }
    }
}

/// One sealed value, for re-wrapping.
#[derive(Debug, Clone)]
pub struct SealedRow {
    pub id: Uuid,
    pub sealed: WrappedKey,
}

impl Tx {
    pub async fn key_versions(&mut self) -> Result<Vec<KeyVersionRow>, CatalogError> {
        let rows = sqlx::query("SELECT version, check_value, state, created_at FROM key_versions ORDER BY version")
            .fetch_all(&mut *self.tx)
            .await
            .map_err(q("key_versions"))?;
        rows.iter()
            .map(|r| {
                let v: i64 = r.try_get("version").map_err(q("decode"))?;
                let state: String = r.try_get("state").map_err(q("decode"))?;
                Ok(KeyVersionRow {
                    version: u32::try_from(v).map_err(|_| CatalogError::Corrupt("version".into()))?,
                    check_value: r.try_get("check_value").map_err(q("decode"))?,
                    retired: state == "retired",
                    created_at: r.try_get("created_at").map_err(q("decode"))?,
                })
            })
            .collect()
    }

    pub async fn register_key_version(&mut self, version: u32, check_value: &str) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO key_versions (version, check_value, state, created_at) VALUES ($1, $2, 'active', $3) \
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(i64::from(version))
        .bind(check_value)
        .bind(self.now)
        .execute(&mut *self.tx)
        .await
        .map_err(q("register_key_version"))?;
        Ok(())
    }

    pub async fn retire_key_version(&mut self, version: u32) -> Result<(), CatalogError> {
        let r = sqlx::query("UPDATE key_versions SET state = 'retired', retired_at = $1 WHERE version = $2")
            .bind(self.now)
            .bind(i64::from(version))
            .execute(&mut *self.tx)
            .await
            .map_err(q("retire_key_version"))?;
        if r.rows_affected() == 0 {
            return Err(CatalogError::NotFound("key version"));
        }
        Ok(())
    }

    /// Refuse (`StaleKeyVersion`) if `version` is not the newest active
    /// master-key version. Called in the transaction that writes a value
    /// sealed under `version`, after the write: a `kluis rekey` that
    /// registered a newer version, or a `kluis key retire` of this one, that
    /// committed first makes the write roll back instead of leaving a value
    /// under a version that is about to disappear.
    pub async fn ensure_current_key(&mut self, version: u32) -> Result<(), CatalogError> {
        let row = sqlx::query(
            "SELECT (SELECT MAX(version) FROM key_versions) AS newest, \
             (SELECT state FROM key_versions WHERE version = $1) AS state",
        )
        .bind(i64::from(version))
        .fetch_one(&mut *self.tx)
        .await
        .map_err(q("ensure_current_key"))?;
        let newest: Option<i64> = row.try_get("newest").map_err(q("decode"))?;
        let state: Option<String> = row.try_get("state").map_err(q("decode"))?;
        if newest == Some(i64::from(version)) && state.as_deref() == Some("active") {
            Ok(())
        } else {
            Err(CatalogError::StaleKeyVersion { version })
        }
    }

    /// The newest registered master-key version.
    pub async fn newest_key_version(&mut self) -> Result<Option<u32>, CatalogError> {
        let row = sqlx::query("SELECT MAX(version) AS newest FROM key_versions")
            .fetch_one(&mut *self.tx)
            .await
            .map_err(q("newest_key_version"))?;
        let v: Option<i64> = row.try_get("newest").map_err(q("decode"))?;
        v.map(|v| u32::try_from(v).map_err(|_| CatalogError::Corrupt("key version".into()))).transpose()
    }

    /// Wait for every transaction that is writing sealed values to finish,
    /// and keep new ones out until this transaction ends (PostgreSQL: SHARE
    /// locks on the tables that hold them; SQLite: the write lock that every
    /// write transaction holds already does this). Used before counting a
    /// version's uses to retire it.
    pub async fn lock_sealed_values(&mut self) -> Result<(), CatalogError> {
        if self.backend == super::Backend::Postgres {
            sqlx::query("LOCK TABLE documents, clients, users IN SHARE MODE")
                .execute(&mut *self.tx)
                .await
                .map_err(q("lock_sealed_values"))?;
        }
        Ok(())
    }

    async fn count(&mut self, sql: &'static str, version: u32, op: &'static str) -> Result<u64, CatalogError> {
        let row = sqlx::query(sql).bind(i64::from(version)).fetch_one(&mut *self.tx).await.map_err(q(op))?;
        let n: i64 = row.try_get("n").map_err(q("decode"))?;
        Ok(n as u64)
    }

    /// How many values of `kind` are sealed under a version below `version`.
    pub async fn count_sealed_below(&mut self, kind: SealedKind, version: u32) -> Result<u64, CatalogError> {
        self.count(kind.count_below_sql(), version, "count_sealed_below").await
    }

    /// How many values of `kind` are sealed under exactly `version`.
    pub async fn count_sealed_with(&mut self, kind: SealedKind, version: u32) -> Result<u64, CatalogError> {
        self.count(kind.count_with_sql(), version, "count_sealed_with").await
    }

    /// Up to `limit` values of `kind` sealed under a version below `version`.
    pub async fn sealed_below(
        &mut self,
        kind: SealedKind,
        version: u32,
        limit: i64,
    ) -> Result<Vec<SealedRow>, CatalogError> {
        let rows = sqlx::query(kind.select_below_sql())
            .bind(i64::from(version))
            .bind(limit)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(q("sealed_below"))?;
        rows.iter()
            .map(|r| {
                let sealed = sealed_cols(r, "sealed", "v")?
                    .ok_or_else(|| CatalogError::Corrupt("sealed value is NULL".into()))?;
                Ok(SealedRow { id: uuid_col(r, "id")?, sealed })
            })
            .collect()
    }

    /// Replace one sealed value, only if it is still under `old_version`
    /// (so a concurrent rekey or destruction is never overwritten).
    pub async fn replace_sealed(
        &mut self,
        kind: SealedKind,
        id: Uuid,
        old_version: u32,
        new: &WrappedKey,
    ) -> Result<bool, CatalogError> {
        let r = sqlx::query(kind.replace_sql())
            .bind(new.bytes.clone())
            .bind(i64::from(new.version))
            .bind(id.to_string())
            .bind(i64::from(old_version))
            .execute(&mut *self.tx)
            .await
            .map_err(q("replace_sealed"))?;
        Ok(r.rows_affected() == 1)
    }
}
