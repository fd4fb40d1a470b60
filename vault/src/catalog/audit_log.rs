//! The audit chain's storage: appends inside the operation's transaction,
//! filtered reads, and verification against one snapshot.

use sqlx::Row;

use uuid::Uuid;

use super::{CatalogError, Tx, opt_uuid_col, q};
use crate::audit::{self, ChainBreak, ChainVerifier, Event, NewEvent};

/// Which events to read (every given filter must match), newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub client_id: Option<Uuid>,
    pub document_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    /// `at >= from` (microseconds).
    pub from: Option<i64>,
    /// `at < until` (microseconds).
    pub until: Option<i64>,
    pub limit: i64,
}

const EVENT_COLUMNS: &str = "SELECT seq, at, actor_id, actor_role, action, outcome, reason, purpose, client_id, \
                             document_id, on_behalf_of, request_id, details, prev_hash, hash FROM audit_events ";

impl Tx {
    /// Append one event to the chain, in this transaction, and return it as
    /// it will be stored. Call it last, just before commit: on PostgreSQL it
    /// holds the chain head's row lock until then.
    pub async fn append_audit(&mut self, e: &NewEvent) -> Result<Event, CatalogError> {
        let mut appended = self.append_audit_many(std::slice::from_ref(e)).await?;
        appended.pop().ok_or_else(|| CatalogError::Corrupt("no audit event appended".into()))
    }

    /// Append several events in order, in this transaction, with one head
    /// update and as few inserts as suit the database (the purge records a
    /// destruction per document); the chain is the same as one append each.
    /// Call it last, just before commit.
    pub async fn append_audit_many(&mut self, events: &[NewEvent]) -> Result<Vec<Event>, CatalogError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let n = events.len() as i64;
        let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
            .bind(n)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(q("audit lock head"))?;
        let last: i64 = head.try_get("seq").map_err(q("decode"))?;
        let prev_hex: String = head.try_get("hash").map_err(q("decode"))?;
        let mut prev: [u8; 32] = hex::decode(&prev_hex)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| CatalogError::Corrupt("audit head hash".into()))?;
        let at = self.now;
        let mut rows = Vec::with_capacity(events.len());
        let mut prev_text = prev_hex;
        for (i, e) in events.iter().enumerate() {
            let seq = last - n + 1 + i as i64;
            let hash = audit::chain_hash(&prev, seq, at, e);
            let hash_text = hex::encode(hash);
            rows.push((seq, std::mem::replace(&mut prev_text, hash_text.clone()), hash_text, e));
            prev = hash;
        }
        // 15 parameters a row (see `Tx::params_per_statement`).
        let per_insert = (self.params_per_statement() / 15).max(1);
        for chunk in rows.chunks(per_insert) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let b = i * 15;
                    let cols: Vec<String> = (1..=15).map(|c| format!("${}", b + c)).collect();
                    format!("({})", cols.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO audit_events (seq, at, actor_id, actor_role, action, outcome, reason, purpose, \
                 client_id, document_id, on_behalf_of, request_id, details, prev_hash, hash) VALUES {}",
                values.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (seq, prev_hex, hash, e) in chunk {
                query = query
                    .bind(*seq)
                    .bind(at)
                    .bind(e.actor_id.map(|u| u.to_string()))
                    .bind(e.actor_role.clone())
                    .bind(e.action.clone())
                    .bind(e.outcome.clone())
                    .bind(e.reason.clone())
                    .bind(e.purpose.clone())
                    .bind(e.client_id.map(|u| u.to_string()))
                    .bind(e.document_id.map(|u| u.to_string()))
                    .bind(e.on_behalf_of.map(|u| u.to_string()))
                    .bind(e.request_id.clone())
                    .bind(audit::details_text(&e.details))
                    .bind(prev_hex.clone())
                    .bind(hash.clone());
            }
            query.execute(&mut *self.tx).await.map_err(q("audit insert"))?;
        }
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(prev_text)
            .execute(&mut *self.tx)
            .await
            .map_err(q("audit move head"))?;
        Ok(rows
            .into_iter()
            .map(|(seq, prev_hash, hash, e)| Event { seq, at, body: e.clone(), prev_hash, hash })
            .collect())
    }

    /// Events matching every given filter, newest first, at most `limit`.
    pub async fn audit_events_filtered(&mut self, f: &AuditFilter) -> Result<Vec<Event>, CatalogError> {
        let sql = format!(
            "{EVENT_COLUMNS} WHERE ($1 IS NULL OR client_id = $1) AND ($2 IS NULL OR document_id = $2) \
             AND ($3 IS NULL OR actor_id = $3) AND ($4 IS NULL OR action = $4) \
             AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) ORDER BY seq DESC LIMIT $7"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(f.client_id.map(|u| u.to_string()))
            .bind(f.document_id.map(|u| u.to_string()))
            .bind(f.actor_id.map(|u| u.to_string()))
            .bind(f.action.clone())
            .bind(f.from)
            .bind(f.until)
            .bind(f.limit)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(q("audit_events_filtered"))?;
        rows.iter().map(event_from_row).collect()
    }

    /// The chain's head: the last event's number and hash.
    pub async fn audit_head(&mut self) -> Result<(i64, String), CatalogError> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *self.tx)
            .await
            .map_err(q("audit head"))?;
        Ok((head.try_get("seq").map_err(q("decode"))?, head.try_get("hash").map_err(q("decode"))?))
    }

    /// The hash of event `seq`, if the log holds it.
    pub async fn audit_event_hash(&mut self, seq: i64) -> Result<Option<String>, CatalogError> {
        sqlx::query_scalar("SELECT hash FROM audit_events WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("audit_event_hash"))
    }

    /// Events with `after < seq <= upto`, in order, at most `limit`.
    async fn audit_events_between(&mut self, after: i64, upto: i64, limit: i64) -> Result<Vec<Event>, CatalogError> {
        let sql = format!("{EVENT_COLUMNS} WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after)
            .bind(upto)
            .bind(limit)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(q("audit_events_between"))?;
        rows.iter().map(event_from_row).collect()
    }

    /// Walk the whole chain; `Ok((events, head))` when intact. Reads the head
    /// first and then exactly the events it covers, so an append that commits
    /// meanwhile is simply not looked at (the head and its event are written
    /// in one transaction); run it in a [`super::Catalog::snapshot`] to see one
    /// consistent state. Events missing at the end (removed behind the
    /// triggers' back) show as a head that names more events than the log has.
    pub async fn verify_audit_chain(&mut self) -> Result<Result<(i64, String), ChainBreak>, CatalogError> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *self.tx)
            .await
            .map_err(q("audit head"))?;
        let head_seq: i64 = head.try_get("seq").map_err(q("decode"))?;
        let head_hash: String = head.try_get("hash").map_err(q("decode"))?;
        let mut v = ChainVerifier::default();
        let mut after = 0;
        loop {
            let page = self.audit_events_between(after, head_seq, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                if let Err(b) = v.check(e) {
                    return Ok(Err(b));
                }
            }
        }
        if head_seq != v.count() || head_hash != v.head() {
            return Ok(Err(ChainBreak::HeadMismatch { head_seq, last_seq: v.count() }));
        }
        Ok(Ok((v.count(), v.head())))
    }
}

/// Events with `from <= at < until` and `seq > after`, by `seq`.
pub(super) async fn events_in_window(
    tx: &mut Tx,
    from: i64,
    until: i64,
    after: i64,
    last: i64,
    limit: i64,
) -> Result<Vec<Event>, CatalogError> {
    // Bounded by seq on both sides, so each page is a short range of the
    // primary key whatever index the planner picks for `at`.
    let sql = format!("{EVENT_COLUMNS} WHERE seq > $1 AND seq <= $2 AND at >= $3 AND at < $4 ORDER BY seq LIMIT $5");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(after)
        .bind(last)
        .bind(from)
        .bind(until)
        .bind(limit)
        .fetch_all(&mut *tx.tx)
        .await
        .map_err(q("events_in_window"))?;
    rows.iter().map(event_from_row).collect()
}

/// The first and last `seq` of the events with `from <= at < until`.
pub(super) async fn seq_range(tx: &mut Tx, from: i64, until: i64) -> Result<Option<(i64, i64)>, CatalogError> {
    let row = sqlx::query("SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM audit_events WHERE at >= $1 AND at < $2")
        .bind(from)
        .bind(until)
        .fetch_one(&mut *tx.tx)
        .await
        .map_err(q("audit seq range"))?;
    let lo: Option<i64> = row.try_get("lo").map_err(q("decode"))?;
    let hi: Option<i64> = row.try_get("hi").map_err(q("decode"))?;
    Ok(lo.zip(hi))
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
