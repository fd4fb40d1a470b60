//! Users: credentials, TOTP replay protection, lock-out.

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{CatalogError, Tx, bool_col, q, q_unique, sealed_cols, uuid_col};
use crate::domain::Role;
use crate::keyring::WrappedKey;

/// The outcome of a guarded change to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    Done,
    /// Refused: it would leave no active manager.
    LastManager,
    NotFound,
}

/// A user as stored. `password_hash` is an Argon2id PHC string; the TOTP
/// secret is sealed (field `totp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
    pub totp_secret: WrappedKey,
    /// The last accepted TOTP time step: a code is accepted once.
    pub totp_last_step: Option<i64>,
    pub active: bool,
    pub failed_attempts: i64,
    pub locked_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The web UI's language the user chose (`nl`, `en`), if any.
    pub language: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewUserRow {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password_hash: String,
    pub totp_secret: WrappedKey,
}

macro_rules! select_users {
    ($rest:literal) => {
        concat!(
            "SELECT id, username, display_name, role, password_hash, totp_secret, totp_key_version, totp_last_step, \
             CAST(active AS INTEGER) AS active, failed_attempts, locked_until, created_at, updated_at, language \
             FROM users ",
            $rest
        )
    };
}

pub(super) fn user_from_row(r: &AnyRow) -> Result<UserRow, CatalogError> {
    let role: String = r.try_get("role").map_err(q("decode"))?;
    Ok(UserRow {
        id: uuid_col(r, "id")?,
        username: r.try_get("username").map_err(q("decode"))?,
        display_name: r.try_get("display_name").map_err(q("decode"))?,
        role: role.parse().map_err(|_| CatalogError::Corrupt(format!("unknown role {role:?}")))?,
        password_hash: r.try_get("password_hash").map_err(q("decode"))?,
        totp_secret: sealed_cols(r, "totp_secret", "totp_key_version")?
            .ok_or_else(|| CatalogError::Corrupt("user without TOTP secret".into()))?,
        totp_last_step: r.try_get("totp_last_step").map_err(q("decode"))?,
        active: bool_col(r, "active")?,
        failed_attempts: r.try_get("failed_attempts").map_err(q("decode"))?,
        locked_until: r.try_get("locked_until").map_err(q("decode"))?,
        created_at: r.try_get("created_at").map_err(q("decode"))?,
        updated_at: r.try_get("updated_at").map_err(q("decode"))?,
        language: r.try_get("language").map_err(q("decode"))?,
    })
}

impl Tx {
    /// Insert a user; a taken username is `Conflict("username")`.
    pub async fn insert_user(&mut self, u: &NewUserRow) -> Result<(), CatalogError> {
        let now = self.now;
        sqlx::query(
            "INSERT INTO users (id, username, display_name, role, password_hash, totp_secret, totp_key_version, \
             active, failed_attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $9)",
        )
        .bind(u.id.to_string())
        .bind(&u.username)
        .bind(&u.display_name)
        .bind(u.role.as_str())
        .bind(&u.password_hash)
        .bind(u.totp_secret.bytes.clone())
        .bind(i64::from(u.totp_secret.version))
        .bind(true)
        .bind(now)
        .execute(&mut *self.tx)
        .await
        .map_err(q_unique("insert_user", "username"))?;
        Ok(())
    }

    pub async fn user(&mut self, id: Uuid) -> Result<UserRow, CatalogError> {
        self.user_opt(id).await?.ok_or(CatalogError::NotFound("user"))
    }

    pub async fn user_opt(&mut self, id: Uuid) -> Result<Option<UserRow>, CatalogError> {
        let row = sqlx::query(select_users!("WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("user"))?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn user_by_username(&mut self, username: &str) -> Result<Option<UserRow>, CatalogError> {
        let row = sqlx::query(select_users!("WHERE username = $1"))
            .bind(username)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("user_by_username"))?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn list_users(&mut self) -> Result<Vec<UserRow>, CatalogError> {
        let rows =
            sqlx::query(select_users!("ORDER BY username")).fetch_all(&mut *self.tx).await.map_err(q("list_users"))?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn count_users(&mut self) -> Result<u64, CatalogError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&mut *self.tx).await.map_err(q("count_users"))?;
        Ok(row.try_get::<i64, _>("n").map_err(q("decode"))? as u64)
    }

    /// Lock, until this transaction ends, the rows a user change reads and
    /// writes: every manager's, the caller's and the target's (PostgreSQL;
    /// on SQLite the write transaction holds the database's write lock).
    pub async fn lock_users_for_change(&mut self, caller: Uuid, target: Uuid) -> Result<(), CatalogError> {
        if self.backend == super::Backend::Postgres {
            sqlx::query("SELECT id FROM users WHERE role = 'management' OR id = $1 OR id = $2 ORDER BY id FOR UPDATE")
                .bind(caller.to_string())
                .bind(target.to_string())
                .fetch_all(&mut *self.tx)
                .await
                .map_err(q("lock_users_for_change"))?;
        }
        Ok(())
    }

    /// Give a user another role. Taking the management role away from the
    /// last active manager is refused (`LastManager`) in the same statement,
    /// so two demotions at once cannot both pass; run it after
    /// [`Tx::lock_users_for_change`] so the count sees every committed change.
    pub async fn set_user_role(&mut self, id: Uuid, role: Role) -> Result<RoleChange, CatalogError> {
        self.guarded_user_update(
            "UPDATE users SET role = $1, updated_at = $2",
            role.as_str(),
            id,
            role != Role::Management,
        )
        .await
    }

    /// Activate or deactivate a user; deactivating the last active manager
    /// is refused like in [`Tx::set_user_role`].
    pub async fn set_user_active(&mut self, id: Uuid, active: bool) -> Result<RoleChange, CatalogError> {
        self.guarded_user_update("UPDATE users SET active = $1, updated_at = $2", active, id, !active).await
    }

    async fn guarded_user_update<'q, V>(
        &mut self,
        set: &'static str,
        value: V,
        id: Uuid,
        removes_management: bool,
    ) -> Result<RoleChange, CatalogError>
    where
        V: 'q + Send + sqlx::Encode<'q, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        // Unguarded when the change keeps a manager a manager.
        let guard = if removes_management {
            " WHERE id = $3 AND (role <> 'management' OR active = $4 OR \
             (SELECT COUNT(*) FROM users WHERE role = 'management' AND active = $5 AND id <> $3) >= 1)"
        } else {
            " WHERE id = $3"
        };
        let mut query =
            sqlx::query(sqlx::AssertSqlSafe(format!("{set}{guard}"))).bind(value).bind(self.now).bind(id.to_string());
        if removes_management {
            query = query.bind(false).bind(true);
        }
        let r = query.execute(&mut *self.tx).await.map_err(q("update_user"))?;
        if r.rows_affected() == 1 {
            return Ok(RoleChange::Done);
        }
        let exists = sqlx::query("SELECT id FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("update_user"))?;
        Ok(if exists.is_some() { RoleChange::LastManager } else { RoleChange::NotFound })
    }

    /// Accept a login whose TOTP code is for time step `step`: only if no
    /// code of this or a later step was accepted before (one atomic UPDATE,
    /// so concurrent logins cannot both use one code). Returns false when
    /// refused. Lock-out is kept per submitted name in `login_attempts`.
    pub async fn record_login_success(&mut self, id: Uuid, step: i64) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "UPDATE users SET totp_last_step = $1 WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("record_login_success"))?;
        Ok(r.rows_affected() == 1)
    }
}

impl Tx {
    /// Set (or clear) the web UI's language of a user.
    pub async fn set_user_language(&mut self, id: Uuid, language: Option<&str>) -> Result<(), CatalogError> {
        sqlx::query("UPDATE users SET language = $1, updated_at = $2 WHERE id = $3")
            .bind(language)
            .bind(self.now)
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(q("set_user_language"))?;
        Ok(())
    }
}
