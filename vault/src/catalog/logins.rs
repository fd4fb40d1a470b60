//! Lock-out after repeated failed logins, kept per submitted name.
//!
//! The name is stored only as a keyed hash (see `Keyring::name_key`): a
//! password typed into the name field must not end up in the database. Names
//! that belong to no user are counted exactly like real ones, so the lock-out
//! answers the same whether or not a name exists.

use sqlx::Row;

use super::{CatalogError, Tx, q};

/// Where a name stands after a failure was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginAttempts {
    pub failures: i64,
    pub locked_until: Option<i64>,
}

impl Tx {
    /// Is the name locked now? A plain read, for the answer before any work.
    pub async fn login_locked(&mut self, name_key: &str) -> Result<bool, CatalogError> {
        let row = sqlx::query("SELECT locked_until FROM login_attempts WHERE name_key = $1")
            .bind(name_key)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("login_locked"))?;
        let until: Option<i64> = match row {
            Some(r) => r.try_get("locked_until").map_err(q("decode"))?,
            None => None,
        };
        Ok(until.is_some_and(|t| t > self.now))
    }

    /// Is the name locked now? Takes the name's row lock (creating the row if
    /// needed), so that a success decided in this transaction cannot slip
    /// past a lock that a concurrent failure is setting.
    pub async fn login_lock(&mut self, name_key: &str) -> Result<Option<i64>, CatalogError> {
        let row = sqlx::query(
            "INSERT INTO login_attempts (name_key, failures, locked_until, updated_at) VALUES ($1, 0, NULL, $2) \
             ON CONFLICT (name_key) DO UPDATE SET updated_at = login_attempts.updated_at RETURNING locked_until",
        )
        .bind(name_key)
        .bind(self.now)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(q("login_lock"))?;
        let until: Option<i64> = row.try_get("locked_until").map_err(q("decode"))?;
        Ok(until.filter(|t| *t > self.now))
    }

    /// Count a failure; from the `threshold`-th failure in a row the name is
    /// locked until `lock_until`. A lock that has run out starts the count
    /// over.
    pub async fn record_login_failure(
        &mut self,
        name_key: &str,
        threshold: i64,
        lock_until: i64,
    ) -> Result<LoginAttempts, CatalogError> {
        let row = sqlx::query(
            "INSERT INTO login_attempts (name_key, failures, locked_until, updated_at) \
             VALUES ($1, 1, CASE WHEN 1 >= $3 THEN $4 ELSE NULL END, $2) \
             ON CONFLICT (name_key) DO UPDATE SET \
               failures = CASE WHEN login_attempts.locked_until IS NOT NULL AND login_attempts.locked_until <= $2 \
                          THEN 1 ELSE login_attempts.failures + 1 END, \
               locked_until = CASE \
                 WHEN (CASE WHEN login_attempts.locked_until IS NOT NULL AND login_attempts.locked_until <= $2 \
                       THEN 1 ELSE login_attempts.failures + 1 END) >= $3 THEN $4 \
                 WHEN login_attempts.locked_until IS NOT NULL AND login_attempts.locked_until <= $2 THEN NULL \
                 ELSE login_attempts.locked_until END, \
               updated_at = $2 \
             RETURNING failures, locked_until",
        )
        .bind(name_key)
        .bind(self.now)
        .bind(threshold)
        .bind(lock_until)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(q("record_login_failure"))?;
        Ok(LoginAttempts {
            failures: row.try_get("failures").map_err(q("decode"))?,
            locked_until: row.try_get("locked_until").map_err(q("decode"))?,
        })
    }

    /// A successful login starts the count over.
    pub async fn clear_login_failures(&mut self, name_key: &str) -> Result<(), CatalogError> {
        sqlx::query("UPDATE login_attempts SET failures = 0, locked_until = NULL, updated_at = $2 WHERE name_key = $1")
            .bind(name_key)
            .bind(self.now)
            .execute(&mut *self.tx)
            .await
            .map_err(q("clear_login_failures"))?;
        Ok(())
    }

    /// Forget names untouched since `before` whose lock has run out.
    pub async fn prune_login_attempts(&mut self, before: i64) -> Result<u64, CatalogError> {
        let r = sqlx::query(
            "DELETE FROM login_attempts WHERE updated_at < $1 AND (locked_until IS NULL OR locked_until < $1)",
        )
        .bind(before)
        .execute(&mut *self.tx)
        .await
        .map_err(q("prune_login_attempts"))?;
        Ok(r.rows_affected())
    }
}

/// The first step of a two-page sign-in, as kept between the two pages.
#[derive(Debug, Clone)]
pub struct LoginStepRow {
    /// SHA-256 of the handle the browser holds.
    pub handle_hash: String,
    /// The record id the password is sealed under.
    pub id: uuid::Uuid,
    pub username: String,
    pub password: crate::keyring::WrappedKey,
    pub expires_at: i64,
}

impl Tx {
    pub async fn insert_login_step(&mut self, s: &LoginStepRow) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO login_steps (handle_hash, id, username, password_sealed, password_key_version, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&s.handle_hash)
        .bind(s.id.to_string())
        .bind(&s.username)
        .bind(s.password.bytes.clone())
        .bind(i64::from(s.password.version))
        .bind(s.expires_at)
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_login_step"))?;
        Ok(())
    }

    /// Take a step: it is deleted as it is read, so it is used once.
    pub async fn take_login_step(&mut self, handle_hash: &str) -> Result<Option<LoginStepRow>, CatalogError> {
        let row = sqlx::query(
            "DELETE FROM login_steps WHERE handle_hash = $1 \
             RETURNING handle_hash, id, username, password_sealed, password_key_version, expires_at",
        )
        .bind(handle_hash)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(q("take_login_step"))?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(LoginStepRow {
            handle_hash: r.try_get("handle_hash").map_err(q("decode"))?,
            id: super::uuid_col(&r, "id")?,
            username: r.try_get("username").map_err(q("decode"))?,
            password: super::sealed_cols(&r, "password_sealed", "password_key_version")?
                .ok_or_else(|| CatalogError::Corrupt("a login step without its password".into()))?,
            expires_at: r.try_get("expires_at").map_err(q("decode"))?,
        }))
    }

    /// Remove steps that expired before `before` (abandoned sign-ins).
    pub async fn prune_login_steps(&mut self, before: i64) -> Result<u64, CatalogError> {
        let r = sqlx::query("DELETE FROM login_steps WHERE expires_at < $1")
            .bind(before)
            .execute(&mut *self.tx)
            .await
            .map_err(q("prune_login_steps"))?;
        Ok(r.rows_affected())
    }
}
