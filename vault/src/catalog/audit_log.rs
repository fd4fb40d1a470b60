//! The audit chain's storage: serialised appends and verification.

use sqlx::Row;

use uuid::Uuid;

use super::{Catalog, CatalogError, now_micros, opt_uuid_col, q};
use crate::audit::{self, ChainBreak, ChainVerifier, Event, NewEvent};

impl Catalog {
    /// Append one event to the chain and return it as stored.
    pub async fn append_audit(&self, e: &NewEvent) -> Result<Event, CatalogError> {
        let mut tx = self.pool.begin().await.map_err(q("audit begin"))?;
        // Take the write lock first: this UPDATE serialises appenders on both
        // databases (row lock on PostgreSQL, the write lock on SQLite).
        sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .map_err(q("audit lock head"))?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(q("audit read head"))?;
        let seq: i64 = head.try_get("seq").map_err(q("decode"))?;
        let prev_hex: String = head.try_get("hash").map_err(q("decode"))?;
        let prev: [u8; 32] = hex::decode(&prev_hex)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| CatalogError::Corrupt("audit head hash".into()))?;
        let at = now_micros();
        let hash = hex::encode(audit::chain_hash(&prev, seq, at, e));
        sqlx::query(
            "INSERT INTO audit_events (seq, at, actor_id, actor_role, action, outcome, reason, purpose, \
             client_id, document_id, on_behalf_of, request_id, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(seq)
        .bind(at)
        .bind(e.actor_id.map(|u| u.to_string()))
        .bind(e.actor_role.clone())
        .bind(&e.action)
        .bind(&e.outcome)
        .bind(e.reason.clone())
        .bind(e.purpose.clone())
        .bind(e.client_id.map(|u| u.to_string()))
        .bind(e.document_id.map(|u| u.to_string()))
        .bind(e.on_behalf_of.map(|u| u.to_string()))
        .bind(e.request_id.clone())
        .bind(audit::details_text(&e.details))
        .bind(&prev_hex)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .map_err(q("audit insert"))?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .map_err(q("audit move head"))?;
        tx.commit().await.map_err(q("audit commit"))?;
        Ok(Event { seq, at, body: e.clone(), prev_hash: prev_hex, hash })
    }

    /// Events matching every given filter, newest first, at most `limit`.
    pub async fn audit_events_filtered(
        &self,
        client_id: Option<Uuid>,
        document_id: Option<Uuid>,
        actor_id: Option<Uuid>,
        action: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Event>, CatalogError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor_id, actor_role, action, outcome, reason, purpose, client_id, document_id, \
             on_behalf_of, request_id, details, prev_hash, hash FROM audit_events \
             WHERE ($1 IS NULL OR client_id = $1) AND ($2 IS NULL OR document_id = $2) \
             AND ($3 IS NULL OR actor_id = $3) AND ($4 IS NULL OR action = $4) ORDER BY seq DESC LIMIT $5",
        )
        .bind(client_id.map(|u| u.to_string()))
        .bind(document_id.map(|u| u.to_string()))
        .bind(actor_id.map(|u| u.to_string()))
        .bind(action)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(q("audit_events_filtered"))?;
        rows.iter().map(event_from_row).collect()
    }

    /// Events with `seq > after`, in order, at most `limit`.
    pub async fn audit_events_after(&self, after: i64, limit: i64) -> Result<Vec<Event>, CatalogError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor_id, actor_role, action, outcome, reason, purpose, client_id, document_id, \
             on_behalf_of, request_id, details, prev_hash, hash FROM audit_events \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(q("audit_events_after"))?;
        rows.iter().map(event_from_row).collect()
    }

    /// Walk the whole chain; `Ok((events, head))` when intact.
    pub async fn verify_audit_chain(&self) -> Result<Result<(i64, String), ChainBreak>, CatalogError> {
        let mut v = ChainVerifier::default();
        let mut after = 0;
        loop {
            let page = self.audit_events_after(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                if let Err(b) = v.check(e) {
                    return Ok(Err(b));
                }
            }
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(q("audit head"))?;
        let head_seq: i64 = head.try_get("seq").map_err(q("decode"))?;
        let head_hash: String = head.try_get("hash").map_err(q("decode"))?;
        if head_seq != v.count() || head_hash != v.head() {
            return Ok(Err(ChainBreak::HeadMismatch { head_seq, last_seq: v.count() }));
        }
        Ok(Ok((v.count(), v.head())))
    }
}

fn event_from_row(r: &sqlx::any::AnyRow) -> Result<Event, CatalogError> {
    let details: String = r.try_get("details").map_err(q("decode"))?;
    Ok(Event {
        seq: r.try_get("seq").map_err(q("decode"))?,
        at: r.try_get("at").map_err(q("decode"))?,
        body: NewEvent {
            actor_id: opt_uuid_col(r, "actor_id")?,
            actor_role: r.try_get("actor_role").map_err(q("decode"))?,
            action: r.try_get("action").map_err(q("decode"))?,
            outcome: r.try_get("outcome").map_err(q("decode"))?,
            reason: r.try_get("reason").map_err(q("decode"))?,
            purpose: r.try_get("purpose").map_err(q("decode"))?,
            client_id: opt_uuid_col(r, "client_id")?,
            document_id: opt_uuid_col(r, "document_id")?,
            on_behalf_of: opt_uuid_col(r, "on_behalf_of")?,
            request_id: r.try_get("request_id").map_err(q("decode"))?,
            // Unparseable details cannot match the hash, which
            // verification then reports as an altered event.
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
        },
        prev_hash: r.try_get("prev_hash").map_err(q("decode"))?,
        hash: r.try_get("hash").map_err(q("decode"))?,
    })
}
