//! Users: credentials, TOTP replay protection, lock-out.

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Catalog, CatalogError, bool_col, now_micros, q, q_unique, sealed_cols, uuid_col};
use crate::domain::Role;
use crate::keyring::WrappedKey;

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
             CAST(active AS INTEGER) AS active, failed_attempts, locked_until, created_at, updated_at FROM users ",
            $rest
        )
    };
}

fn user_from_row(r: &AnyRow) -> Result<UserRow, CatalogError> {
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
    })
}

impl Catalog {
    /// Insert a user; a taken username is `Conflict("username")`.
    pub async fn insert_user(&self, u: &NewUserRow) -> Result<(), CatalogError> {
        let now = now_micros();
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
        .execute(&self.pool)
        .await
        .map_err(q_unique("insert_user", "username"))?;
        Ok(())
    }

    pub async fn user(&self, id: Uuid) -> Result<UserRow, CatalogError> {
        let row = sqlx::query(select_users!("WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(q("user"))?
            .ok_or(CatalogError::NotFound("user"))?;
        user_from_row(&row)
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>, CatalogError> {
        let row = sqlx::query(select_users!("WHERE username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(q("user_by_username"))?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn list_users(&self) -> Result<Vec<UserRow>, CatalogError> {
        let rows =
            sqlx::query(select_users!("ORDER BY username")).fetch_all(&self.pool).await.map_err(q("list_users"))?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn count_users(&self) -> Result<u64, CatalogError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&self.pool).await.map_err(q("count_users"))?;
        Ok(row.try_get::<i64, _>("n").map_err(q("decode"))? as u64)
    }

    pub async fn set_user_role(&self, id: Uuid, role: Role) -> Result<(), CatalogError> {
        let r = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE id = $3")
            .bind(role.as_str())
            .bind(now_micros())
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(q("set_user_role"))?;
        if r.rows_affected() == 0 {
            return Err(CatalogError::NotFound("user"));
        }
        Ok(())
    }

    pub async fn set_user_active(&self, id: Uuid, active: bool) -> Result<(), CatalogError> {
        let r = sqlx::query("UPDATE users SET active = $1, updated_at = $2 WHERE id = $3")
            .bind(active)
            .bind(now_micros())
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(q("set_user_active"))?;
        if r.rows_affected() == 0 {
            return Err(CatalogError::NotFound("user"));
        }
        Ok(())
    }

    /// Count a failed login at `now`; from the `threshold`-th failure in a
    /// row the account is locked until `lock_until`. A lock that has run out
    /// starts the count over. Returns the failures in a row.
    pub async fn record_login_failure(
        &self,
        id: Uuid,
        now: i64,
        threshold: i64,
        lock_until: i64,
    ) -> Result<i64, CatalogError> {
        let mut tx = self.pool.begin().await.map_err(q("login failure begin"))?;
        sqlx::query(
            "UPDATE users SET \
             failed_attempts = CASE WHEN locked_until IS NOT NULL AND locked_until <= $1 THEN 1 \
                               ELSE failed_attempts + 1 END, \
             locked_until = CASE \
                 WHEN (CASE WHEN locked_until IS NOT NULL AND locked_until <= $1 THEN 1 ELSE failed_attempts + 1 END) >= $2 \
                     THEN $3 \
                 WHEN locked_until IS NOT NULL AND locked_until <= $1 THEN NULL \
                 ELSE locked_until END \
             WHERE id = $4",
        )
        .bind(now)
        .bind(threshold)
        .bind(lock_until)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(q("record_login_failure"))?;
        let row = sqlx::query("SELECT failed_attempts FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(q("record_login_failure"))?;
        tx.commit().await.map_err(q("login failure commit"))?;
        row.try_get("failed_attempts").map_err(q("decode"))
    }

    /// Accept a login at `now` whose TOTP code is for time step `step`: only
    /// if the account is not locked and no code of this or a later step was
    /// accepted before (one atomic UPDATE, so concurrent logins can neither
    /// both use one code nor slip past a lock set meanwhile). Resets the
    /// failure counter. Returns false when refused.
    pub async fn record_login_success(&self, id: Uuid, now: i64, step: i64) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "UPDATE users SET failed_attempts = 0, locked_until = NULL, totp_last_step = $1 \
             WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1) \
             AND (locked_until IS NULL OR locked_until <= $3)",
        )
        .bind(step)
        .bind(id.to_string())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(q("record_login_success"))?;
        Ok(r.rows_affected() == 1)
    }
}
