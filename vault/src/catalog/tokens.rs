//! Bearer sessions and download tokens. Only SHA-256 hashes of the tokens
//! are stored; the tokens themselves exist only with their holders.

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{CatalogError, Tx, q, uuid_col};
use crate::domain::{Purpose, Role};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub token_hash: String,
    pub user_id: Uuid,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// Absolute expiry.
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewDownloadToken {
    pub token_hash: String,
    pub document_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub purpose: Purpose,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadTokenRow {
    pub document_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub purpose: Purpose,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub voided_at: Option<i64>,
}

/// The outcome of redeeming a download token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// This call used the token (and no other call can).
    Redeemed(DownloadTokenRow),
    Unknown,
    Used(DownloadTokenRow),
    Expired(DownloadTokenRow),
    /// Voided because its holder was deactivated.
    Voided(DownloadTokenRow),
}

fn token_from_row(r: &AnyRow) -> Result<DownloadTokenRow, CatalogError> {
    let role: String = r.try_get("role").map_err(q("decode"))?;
    let purpose: String = r.try_get("purpose").map_err(q("decode"))?;
    Ok(DownloadTokenRow {
        document_id: uuid_col(r, "document_id")?,
        user_id: uuid_col(r, "user_id")?,
        role: role.parse().map_err(|_| CatalogError::Corrupt("token role".into()))?,
        purpose: purpose.parse().map_err(|_| CatalogError::Corrupt("token purpose".into()))?,
        created_at: r.try_get("created_at").map_err(q("decode"))?,
        expires_at: r.try_get("expires_at").map_err(q("decode"))?,
        used_at: r.try_get("used_at").map_err(q("decode"))?,
        voided_at: r.try_get("voided_at").map_err(q("decode"))?,
    })
}

impl Tx {
    pub async fn insert_session(&mut self, s: &SessionRow) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.token_hash)
        .bind(s.user_id.to_string())
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_session"))?;
        Ok(())
    }

    pub async fn session(&mut self, token_hash: &str) -> Result<Option<SessionRow>, CatalogError> {
        let row = sqlx::query(
            "SELECT token_hash, user_id, created_at, last_seen_at, expires_at FROM sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(q("session"))?;
        row.map(|r| {
            Ok(SessionRow {
                token_hash: r.try_get("token_hash").map_err(q("decode"))?,
                user_id: uuid_col(&r, "user_id")?,
                created_at: r.try_get("created_at").map_err(q("decode"))?,
                last_seen_at: r.try_get("last_seen_at").map_err(q("decode"))?,
                expires_at: r.try_get("expires_at").map_err(q("decode"))?,
            })
        })
        .transpose()
    }

    pub async fn touch_session(&mut self, token_hash: &str, now: i64) -> Result<(), CatalogError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(token_hash)
            .execute(&mut *self.tx)
            .await
            .map_err(q("touch_session"))?;
        Ok(())
    }

    pub async fn delete_session(&mut self, token_hash: &str) -> Result<(), CatalogError> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *self.tx)
            .await
            .map_err(q("delete_session"))?;
        Ok(())
    }

    /// End every session of a user (deactivation, role change).
    pub async fn delete_sessions_of(&mut self, user_id: Uuid) -> Result<u64, CatalogError> {
        let r = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(q("delete_sessions_of"))?;
        Ok(r.rows_affected())
    }

    pub async fn insert_download_token(&mut self, t: &NewDownloadToken) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO download_tokens (token_hash, document_id, user_id, role, purpose, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.token_hash)
        .bind(t.document_id.to_string())
        .bind(t.user_id.to_string())
        .bind(t.role.as_str())
        .bind(t.purpose.as_str())
        .bind(t.created_at)
        .bind(t.expires_at)
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_download_token"))?;
        Ok(())
    }

    /// Use a token, atomically: of two concurrent calls at most one gets
    /// `Redeemed`. The others learn why not.
    pub async fn redeem_download_token(&mut self, token_hash: &str, now: i64) -> Result<Redemption, CatalogError> {
        let won = sqlx::query(
            "UPDATE download_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND used_at IS NULL AND voided_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(token_hash)
        .execute(&mut *self.tx)
        .await
        .map_err(q("redeem_download_token"))?
        .rows_affected()
            == 1;
        let Some(t) = self.download_token(token_hash).await? else { return Ok(Redemption::Unknown) };
        Ok(if won {
            Redemption::Redeemed(t)
        } else if t.voided_at.is_some() {
            Redemption::Voided(t)
        } else if t.used_at.is_some() {
            Redemption::Used(t)
        } else {
            Redemption::Expired(t)
        })
    }

    /// A download token by its hash, without using it.
    pub async fn download_token(&mut self, token_hash: &str) -> Result<Option<DownloadTokenRow>, CatalogError> {
        let row = sqlx::query(
            "SELECT document_id, user_id, role, purpose, created_at, expires_at, used_at, voided_at \
             FROM download_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(q("download_token"))?;
        row.as_ref().map(token_from_row).transpose()
    }

    /// Void the unused download tokens of a user. Returns how many.
    pub async fn void_tokens_of(&mut self, user_id: Uuid, now: i64) -> Result<u64, CatalogError> {
        let r = sqlx::query(
            "UPDATE download_tokens SET voided_at = $1 WHERE user_id = $2 AND used_at IS NULL AND voided_at IS NULL",
        )
        .bind(now)
        .bind(user_id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("void_tokens_of"))?;
        Ok(r.rows_affected())
    }
}
