//! The purge's rows (`migrations/*/0006_retention.sql`, `0007_purge.sql`;
//! issue 9): which documents are due, their destruction (crypto-shredding
//! and the tombstone, in one statement), and the queue of their objects.
//!
//! A document goes `active` → `destroyed` (wrapped key dropped, names
//! cleared, object queued in `object_deletions`: one transaction) →
//! object deleted (`object_deleted_at` set, queue row gone: another). The
//! search log's trigger sees the state change, so every node's index drops
//! the entry when it follows the catalog.
//!
//! "Due" is one predicate, written out per backend so that both planners
//! match it to the partial index `documents_due` (SQLite only uses a
//! partial index for literal terms, not bound parameters). SQLite is told
//! the index outright (`INDEXED BY`): without statistics (nothing runs
//! `ANALYZE`) its planner prefers the state index and scans every live
//! document; and the destroying statement there hides the predicate from
//! the index (`+state`), so it looks its rows up by id.

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Backend, CatalogError, Tx, placeholders, q, uuid_col};

/// A live, unheld document, for the purge and its lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub doc_type: String,
    pub title: Option<String>,
    pub uploaded_at: i64,
    pub retention_until: i64,
    pub retention_manual: bool,
    pub retention_reason: Option<String>,
}

/// A destroyed document whose object is (still) to be deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedObject {
    pub object_name: String,
    pub document_id: Uuid,
    /// Attempts including this one.
    pub attempts: i64,
}

/// What destroyed a document, for its tombstone.
#[derive(Debug, Clone, Copy)]
pub struct Destruction<'a> {
    /// `retention` (the purge), or the user's id.
    pub by: &'a str,
    pub reason: &'a str,
    /// For the purge: only if the date is still at or before this time (a
    /// date moved meanwhile is not due any more).
    pub due_at: Option<i64>,
}

/// How many documents are due, held, and objects queued (the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionCounts {
    pub due: i64,
    pub held: i64,
    pub objects_queued: i64,
    /// Queued objects whose last delete failed.
    pub objects_failing: i64,
    /// Queued objects whose turn has come (a lease ran out, a retry is due).
    pub objects_ready: i64,
}

const DUE_COLUMNS: &str = "SELECT id, client_id, doc_type, title, uploaded_at, retention_until, retention_source, \
                           retention_reason ";

/// `FROM documents`, through the due index.
fn from_due(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "FROM documents INDEXED BY documents_due ",
        Backend::Postgres => "FROM documents ",
    }
}

/// `FROM documents`, through the index of held documents.
fn from_held(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "FROM documents INDEXED BY documents_held WHERE legal_hold = 1",
        Backend::Postgres => "FROM documents WHERE legal_hold = TRUE",
    }
}

fn live_unheld(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "state = 'active' AND legal_hold = 0",
        Backend::Postgres => "state = 'active' AND legal_hold = FALSE",
    }
}

fn due_from_row(r: &AnyRow) -> Result<DueRow, CatalogError> {
    Ok(DueRow {
        id: uuid_col(r, "id")?,
        client_id: uuid_col(r, "client_id")?,
        doc_type: r.try_get("doc_type").map_err(q("decode"))?,
        title: r.try_get("title").map_err(q("decode"))?,
        uploaded_at: r.try_get("uploaded_at").map_err(q("decode"))?,
        retention_until: r.try_get("retention_until").map_err(q("decode"))?,
        retention_manual: r.try_get::<String, _>("retention_source").map_err(q("decode"))? == "manual",
        retention_reason: r.try_get("retention_reason").map_err(q("decode"))?,
    })
}

impl Tx {
    /// Due documents (date at or before `now`, not held), oldest date first,
    /// at most `limit`. With `claim` on PostgreSQL the rows are locked and
    /// rows another transaction holds are skipped (`FOR UPDATE SKIP
    /// LOCKED`), so purging nodes take disjoint batches; on SQLite the
    /// writer's transaction already excludes every other writer.
    pub async fn due_documents(&mut self, now: i64, limit: i64, claim: bool) -> Result<Vec<DueRow>, CatalogError> {
        let lock = if claim && self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "{DUE_COLUMNS}{}WHERE {} AND retention_until <= $1 ORDER BY retention_until, id LIMIT $2{lock}",
            from_due(self.backend),
            live_unheld(self.backend)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(q("due_documents"))?;
        rows.iter().map(due_from_row).collect()
    }

    /// The destruction list: live, unheld documents whose date lies before
    /// `before`, by date, after the cursor `(until, id)`, at most `limit`.
    pub async fn destruction_list(
        &mut self,
        before: i64,
        after: Option<(i64, Uuid)>,
        limit: i64,
    ) -> Result<Vec<DueRow>, CatalogError> {
        let (until, id) = after.map_or((i64::MIN, String::new()), |(u, id)| (u, id.to_string()));
        let sql = format!(
            "{DUE_COLUMNS}{}WHERE {} AND retention_until < $1 AND (retention_until > $2 OR (retention_until = $2 \
             AND id > $3)) ORDER BY retention_until, id LIMIT $4",
            from_due(self.backend),
            live_unheld(self.backend)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(before)
            .bind(until)
            .bind(id)
            .bind(limit)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(q("destruction_list"))?;
        rows.iter().map(due_from_row).collect()
    }

    /// Held documents whose date lies before `before` (they stay).
    pub async fn held_before(&mut self, before: i64) -> Result<i64, CatalogError> {
        let sql = format!("SELECT COUNT(*) {} AND retention_until < $1", from_held(self.backend));
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(before)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(q("held_before"))
    }

    /// Destroy documents (crypto-shredding): drop each wrapped data key,
    /// clear the names, mark the row destroyed and queue its object, in
    /// this transaction. Only live, unheld rows are touched, checked in
    /// the same statement, so a hold set meanwhile always wins. The queued
    /// objects are leased to the caller until `lease_until` (it deletes them
    /// next; if it crashes, any node takes them after that). Returns the
    /// objects of the documents destroyed now (not of those already
    /// destroyed, held, or no longer due). The tombstone keeps what SPEC §4
    /// lists: id, type, client, dates, who or what destroyed it and why.
    pub async fn destroy_documents(
        &mut self,
        ids: &[Uuid],
        d: Destruction<'_>,
        lease_until: i64,
    ) -> Result<Vec<QueuedObject>, CatalogError> {
        let mut destroyed = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.in_chunk()) {
            let due = if d.due_at.is_some() { "AND retention_until <= $4" } else { "AND $4 IS NULL" };
            let sql = format!(
                "UPDATE documents SET state = 'destroyed', wrapped_key = NULL, key_version = NULL, title = NULL, \
                 filename = '', content_type = '', size = NULL, sha256 = NULL, uploaded_by = NULL, \
                 destroyed_at = $1, destroyed_by = $2, destroy_reason = $3 \
                 WHERE {} {due} AND id IN ({}) RETURNING id, object_name",
                match self.backend {
                    Backend::Sqlite => "+state = 'active' AND +legal_hold = 0",
                    Backend::Postgres => live_unheld(self.backend),
                },
                placeholders(5, chunk.len())
            );
            let mut query =
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.now).bind(d.by).bind(d.reason).bind(d.due_at);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            let rows = query.fetch_all(&mut *self.tx).await.map_err(q("destroy_documents"))?;
            let start = destroyed.len();
            for r in &rows {
                destroyed.push(QueuedObject {
                    object_name: r.try_get("object_name").map_err(q("decode"))?,
                    document_id: uuid_col(r, "id")?,
                    attempts: 1,
                });
            }
            self.queue_object_deletions(&destroyed[start..], lease_until).await?;
        }
        Ok(destroyed)
    }

    async fn queue_object_deletions(&mut self, objects: &[QueuedObject], lease_until: i64) -> Result<(), CatalogError> {
        if objects.is_empty() {
            return Ok(());
        }
        let values: Vec<String> =
            (0..objects.len()).map(|i| format!("(${}, ${}, $1, 1, $2)", 2 * i + 3, 2 * i + 4)).collect();
        let sql = format!(
            "INSERT INTO object_deletions (object_name, document_id, queued_at, attempts, next_attempt_at) \
             VALUES {} ON CONFLICT (object_name) DO NOTHING",
            values.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(self.now).bind(lease_until);
        for o in objects {
            query = query.bind(o.object_name.as_str()).bind(o.document_id.to_string());
        }
        query.execute(&mut *self.tx).await.map_err(q("queue_object_deletions"))?;
        Ok(())
    }

    /// Take up to `limit` queued objects whose turn has come and hold them
    /// until `lease_until`: another node (or this one, after a crash) takes
    /// them again only after that. Each lease counts as an attempt.
    pub async fn lease_object_deletions(
        &mut self,
        limit: i64,
        lease_until: i64,
    ) -> Result<Vec<QueuedObject>, CatalogError> {
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
        let sql = format!(
            "UPDATE object_deletions SET attempts = attempts + 1, next_attempt_at = $1 WHERE object_name IN \
             (SELECT object_name FROM object_deletions WHERE next_attempt_at <= $2 ORDER BY next_attempt_at \
             LIMIT $3{lock}) RETURNING object_name, document_id, attempts"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(lease_until)
            .bind(self.now)
            .bind(limit)
            .fetch_all(&mut *self.tx)
            .await
            .map_err(q("lease_object_deletions"))?;
        rows.iter()
            .map(|r| {
                Ok(QueuedObject {
                    object_name: r.try_get("object_name").map_err(q("decode"))?,
                    document_id: uuid_col(r, "document_id")?,
                    attempts: r.try_get("attempts").map_err(q("decode"))?,
                })
            })
            .collect()
    }

    /// These objects are gone from the store: forget them in the queue and
    /// note it on the tombstones.
    pub async fn objects_deleted(&mut self, done: &[QueuedObject]) -> Result<(), CatalogError> {
        for chunk in done.chunks(self.in_chunk()) {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM object_deletions WHERE object_name IN ({})",
                placeholders(1, chunk.len())
            )));
            for o in chunk {
                query = query.bind(o.object_name.as_str());
            }
            query.execute(&mut *self.tx).await.map_err(q("objects_deleted"))?;
            let mut query = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE documents SET object_deleted_at = $1 WHERE id IN ({})",
                placeholders(2, chunk.len())
            )))
            .bind(self.now);
            for o in chunk {
                query = query.bind(o.document_id.to_string());
            }
            query.execute(&mut *self.tx).await.map_err(q("objects_deleted"))?;
        }
        Ok(())
    }

    /// A delete failed: keep the object queued, try again at `retry_at`.
    pub async fn object_delete_failed(
        &mut self,
        object_name: &str,
        error: &str,
        retry_at: i64,
    ) -> Result<(), CatalogError> {
        sqlx::query("UPDATE object_deletions SET last_error = $1, next_attempt_at = $2 WHERE object_name = $3")
            .bind(error)
            .bind(retry_at)
            .bind(object_name)
            .execute(&mut *self.tx)
            .await
            .map_err(q("object_delete_failed"))?;
        Ok(())
    }

    /// Due and held documents and queued objects, for the metrics; each
    /// count reads a partial index or the (small) queue.
    pub async fn retention_counts(&mut self, now: i64) -> Result<RetentionCounts, CatalogError> {
        let sql = format!(
            "SELECT (SELECT COUNT(*) {}WHERE {} AND retention_until <= $1) AS due, \
             (SELECT COUNT(*) {}) AS held, \
             (SELECT COUNT(*) FROM object_deletions) AS queued, \
             (SELECT COUNT(*) FROM object_deletions WHERE last_error IS NOT NULL) AS failing, \
             (SELECT COUNT(*) FROM object_deletions WHERE next_attempt_at <= $1) AS ready",
            from_due(self.backend),
            live_unheld(self.backend),
            from_held(self.backend)
        );
        let r = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .fetch_one(&mut *self.tx)
            .await
            .map_err(q("retention_counts"))?;
        Ok(RetentionCounts {
            due: r.try_get("due").map_err(q("decode"))?,
            held: r.try_get("held").map_err(q("decode"))?,
            objects_queued: r.try_get("queued").map_err(q("decode"))?,
            objects_failing: r.try_get("failing").map_err(q("decode"))?,
            objects_ready: r.try_get("ready").map_err(q("decode"))?,
        })
    }

    /// Every document row, whatever its state (benchmarks).
    #[doc(hidden)]
    pub async fn count_documents_for_tests(&mut self) -> Result<i64, CatalogError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM documents").fetch_one(&mut *self.tx).await.map_err(q("count"))
    }

    /// The query plan of the purge's search for due documents (for the
    /// benchmark: it must read the partial index, not scan).
    #[doc(hidden)]
    pub async fn explain_due(&mut self, now: i64) -> Result<Vec<String>, CatalogError> {
        let select = format!(
            "SELECT id {}WHERE {} AND retention_until <= {now} ORDER BY retention_until, id LIMIT 100",
            from_due(self.backend),
            live_unheld(self.backend)
        );
        let sql = match self.backend {
            Backend::Sqlite => format!("EXPLAIN QUERY PLAN {select}"),
            Backend::Postgres => format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {select}"),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *self.tx).await.map_err(q("explain_due"))?;
        rows.iter()
            .map(|r| match self.backend {
                Backend::Sqlite => r.try_get::<String, _>("detail").map_err(q("decode")),
                Backend::Postgres => r.try_get::<String, _>(0).map_err(q("decode")),
            })
            .collect()
    }
}
