//! Destruction (SPEC §4, issue 9): the purge of documents whose retention
//! date passed, immediate destruction by management, the destruction list,
//! and the queue of objects to delete.
//!
//! The state machine of a document's destruction, each step idempotent:
//!
//! 1. **destroy** (one short transaction, [`Vault::purge_batch`] or
//!    [`Vault::delete_document`]): claim due, unheld rows (`FOR UPDATE
//!    SKIP LOCKED` on PostgreSQL, so nodes take disjoint batches; the
//!    writer's `BEGIN IMMEDIATE` on SQLite), drop their wrapped data keys
//!    (crypto-shredding: no copy of the object can be read from then on),
//!    clear their names, mark them `destroyed`, queue their objects, and
//!    append one `document.destroy` event each; the hold is checked again
//!    in the destroying statement itself.
//! 2. **object** ([`Vault::drain_object_deletions`]): queued objects are
//!    leased (a crashed node's lease runs out and another takes them),
//!    deleted from the store outside any transaction (a delete of a
//!    missing object succeeds), then dropped from the queue with
//!    `object_deleted_at` on the tombstone; a failed delete stays queued
//!    with its error and is tried again later, backing off.
//! 3. **index**: the state change is in the search log (a trigger), so
//!    every node's index drops the entry as it follows the catalog.
//!
//! A crash before 1 commits leaves the document as it was (still due); a
//! crash after it leaves a row that can never be read again and an object
//! the queue deletes on the next pass.

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, ErrorCode, ServiceError, ServiceResult};
use crate::Vault;
use crate::audit::NewEvent;
use crate::catalog::{Destruction, DueRow, QueuedObject, RetentionCounts, micros_to_time};
use crate::domain::DocumentType;
use crate::faults::FaultPoint;
use crate::policy::{Action, Target};
use crate::rekey::Progress;
use crate::store::ObjectName;

/// Documents destroyed per transaction: short enough that no writer waits
/// long behind the purge (a few milliseconds), long enough to amortise the
/// commit.
pub const PURGE_BATCH: i64 = 500;

/// Objects leased per round of the queue's drain.
const DRAIN_BATCH: i64 = 500;

/// Deletes in flight at once.
const DELETES_IN_FLIGHT: usize = 16;

/// How long a node holds leased objects before another may take them.
pub(super) const LEASE_MICROS: i64 = 60_000_000;

/// `destroyed_by` of the purge (SPEC §6: "a user id, or `retention`").
pub const BY_PURGE: &str = "retention";

/// `destroy_reason` of the purge.
const PURGE_REASON: &str = "retention date passed";

/// One purge pass (or batch): what it did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Documents destroyed (keys shredded, tombstones written).
    pub destroyed: u64,
    /// Objects deleted from the store.
    pub objects_deleted: u64,
    /// Object deletes that failed (they stay queued and are tried again).
    pub object_failures: u64,
}

impl std::ops::AddAssign for PurgeReport {
    fn add_assign(&mut self, o: PurgeReport) {
        self.destroyed += o.destroyed;
        self.objects_deleted += o.objects_deleted;
        self.object_failures += o.object_failures;
    }
}

/// `DELETE /api/v1/documents/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeleteDocument {
    /// Why (required; kept on the tombstone and in the audit log).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::schema::required::<1000>))]
    pub reason: String,
}

/// `GET /api/v1/retention/due`.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DueQuery {
    /// `YYYY-MM-DD` or RFC 3339: documents whose date lies before it.
    #[cfg_attr(feature = "openapi", param(schema_with = crate::domain::schema::day_or_time))]
    pub before: String,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// 1 to 1000, default 100.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<i64>,
}

/// A document on the destruction list.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DueDocument {
    pub id: Uuid,
    pub client_id: Uuid,
    #[serde(rename = "type")]
    pub doc_type: DocumentType,
    pub title: Option<String>,
    pub uploaded_at: DateTime<Utc>,
    pub retention_until: DateTime<Utc>,
    /// `policy` or `manual`.
    pub retention_source: &'static str,
    pub retention_reason: Option<String>,
}

/// The documents the purge will destroy before a date, by date.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DestructionList {
    pub before: DateTime<Utc>,
    pub documents: Vec<DueDocument>,
    /// Documents with a date before `before` that a legal hold keeps (not
    /// listed: they will not be destroyed).
    pub held: i64,
    /// Pass as `after` for the next page; null on the last.
    pub next: Option<String>,
}

fn due_view(d: &DueRow) -> ServiceResult<DueDocument> {
    Ok(DueDocument {
        id: d.id,
        client_id: d.client_id,
        doc_type: d.doc_type.parse().map_err(ServiceError::internal)?,
        title: d.title.clone(),
        uploaded_at: micros_to_time(d.uploaded_at),
        retention_until: micros_to_time(d.retention_until),
        retention_source: retention_source(d.retention_manual),
        retention_reason: d.retention_reason.clone(),
    })
}

/// What a `document.destroy` event records besides who and why.
fn destruction_details(
    by: &str,
    doc_type: &str,
    until: Option<i64>,
    manual: bool,
    reason: Option<&str>,
) -> serde_json::Value {
    serde_json::json!({
        "by": by,
        "type": doc_type,
        "retention_until": until.map(micros_to_time),
        "retention_source": retention_source(manual),
        "retention_reason": reason,
    })
}

/// The event of one destruction by the purge.
fn purge_event(d: &DueRow) -> NewEvent {
    let mut e = NewEvent::new("document.destroy", "ok");
    e.actor_role = Some("system".into());
    e.reason = Some(PURGE_REASON.into());
    e.client_id = Some(d.client_id);
    e.document_id = Some(d.id);
    e.details = destruction_details(
        BY_PURGE,
        &d.doc_type,
        Some(d.retention_until),
        d.retention_manual,
        d.retention_reason.as_deref(),
    );
    e
}

fn held() -> ServiceError {
    ServiceError::new(ErrorCode::LegalHold, "the document is under a legal hold")
}

/// `policy` or `manual`: where a destruction date came from.
pub(super) fn retention_source(manual: bool) -> &'static str {
    if manual { "manual" } else { "policy" }
}

/// Seconds to wait before trying a failed delete again: doubling from 5 s,
/// at most an hour.
fn retry_after_micros(attempts: i64) -> i64 {
    let secs = 5i64.saturating_mul(1 << attempts.clamp(1, 20).saturating_sub(1)).min(3600);
    secs * 1_000_000
}

impl Vault {
    /// One purge batch: in one short transaction, claim up to
    /// [`PURGE_BATCH`] due, unheld documents, destroy their keys, mark them
    /// destroyed, queue their objects (leased to this call) and append one
    /// event each; then delete those objects and record it. Nothing due:
    /// an empty report.
    pub async fn purge_batch(&self) -> ServiceResult<PurgeReport> {
        let (mut report, objects) = self.destroy_batch().await?;
        let deleted = self.delete_objects(objects).await?;
        report.objects_deleted = deleted.objects_deleted;
        report.object_failures = deleted.object_failures;
        Ok(report)
    }

    /// Step 1 of a batch: destroy up to [`PURGE_BATCH`] due documents in
    /// one transaction; their objects, leased to the caller, come back.
    async fn destroy_batch(&self) -> ServiceResult<(PurgeReport, Vec<QueuedObject>)> {
        let mut tx = self.tx().await?;
        let now = tx.now();
        let due = tx.due_documents(now, PURGE_BATCH, true).await?;
        if due.is_empty() {
            tx.commit().await?;
            return Ok((PurgeReport::default(), Vec::new()));
        }
        let ids: Vec<Uuid> = due.iter().map(|d| d.id).collect();
        let how = Destruction { by: BY_PURGE, reason: PURGE_REASON, due_at: Some(now) };
        let objects = tx.destroy_documents(&ids, how, now + LEASE_MICROS).await?;
        let gone: std::collections::HashSet<Uuid> = objects.iter().map(|o| o.document_id).collect();
        let events: Vec<NewEvent> = due.iter().filter(|d| gone.contains(&d.id)).map(purge_event).collect();
        tx.append_audit_many(&events).await?;
        if self.faults.fire(FaultPoint::PurgeBeforeCommit) {
            return Err(ServiceError::internal("fault injected before the purge's commit"));
        }
        tx.commit().await?;
        if self.faults.fire(FaultPoint::PurgeAfterDestroy) {
            return Err(ServiceError::internal("fault injected after the purge destroyed keys"));
        }
        Ok((PurgeReport { destroyed: gone.len() as u64, ..Default::default() }, objects))
    }

    /// One round of the queue: lease up to [`DRAIN_BATCH`] queued objects
    /// whose turn has come (left by a crash or a failed delete), delete
    /// them and record it.
    pub async fn drain_object_deletions(&self) -> ServiceResult<PurgeReport> {
        let mut tx = self.tx().await?;
        let leased = tx.lease_object_deletions(DRAIN_BATCH, tx.now() + LEASE_MICROS).await?;
        tx.commit().await?;
        self.delete_objects(leased).await
    }

    /// Delete leased objects from the store, sixteen at a time, outside any
    /// transaction; then, in one, forget those that went and give those
    /// that failed a retry time.
    pub(super) async fn delete_objects(&self, leased: Vec<QueuedObject>) -> ServiceResult<PurgeReport> {
        if leased.is_empty() {
            return Ok(PurgeReport::default());
        }
        let results: Vec<(QueuedObject, Result<(), String>)> = futures::stream::iter(leased)
            .map(|o| async move {
                let r = self.store.delete(&ObjectName::from_catalog(o.object_name.clone())).await;
                (o, r.map_err(|e| e.to_string()))
            })
            .buffer_unordered(DELETES_IN_FLIGHT)
            .collect()
            .await;
        if self.faults.fire(FaultPoint::PurgeAfterObjectDelete) {
            return Err(ServiceError::internal("fault injected after the purge deleted objects"));
        }
        let mut report = PurgeReport::default();
        let mut tx = self.tx().await?;
        let now = tx.now();
        let mut done = Vec::with_capacity(results.len());
        for (o, r) in results {
            match r {
                Ok(()) => done.push(o),
                Err(e) => {
                    report.object_failures += 1;
                    tracing::warn!(document = %o.document_id, attempts = o.attempts, error = %e,
                        "could not delete a destroyed document's object; it stays queued");
                    tx.object_delete_failed(&o.object_name, &e, now + retry_after_micros(o.attempts)).await?;
                }
            }
        }
        tx.objects_deleted(&done).await?;
        tx.commit().await?;
        report.objects_deleted = done.len() as u64;
        Ok(report)
    }

    /// One whole pass: purge batches until nothing is due, then delete the
    /// queued objects until the queue is empty or a round had failures
    /// (they wait for their retry time). `progress` counts documents.
    pub async fn purge_pass(&self, progress: &dyn Progress) -> ServiceResult<PurgeReport> {
        // One read first: a pass with nothing to do takes no write lock.
        let counts = self.retention_counts().await?;
        let mut report = PurgeReport::default();
        if counts.due > 0 {
            progress.start("destroying", counts.due as u64);
            // Batch k's objects are deleted while batch k+1 is destroyed:
            // the store and the catalog work at the same time.
            let mut objects = Vec::new();
            loop {
                let (deleted, next) =
                    futures::join!(self.delete_objects(std::mem::take(&mut objects)), self.destroy_batch());
                report += deleted?;
                let (r, next) = next?;
                progress.inc(r.destroyed);
                report += r;
                objects = next;
                if r.destroyed < PURGE_BATCH as u64 {
                    break;
                }
            }
            report += self.delete_objects(objects).await?;
            progress.finish();
        }
        if counts.objects_ready > 0 {
            loop {
                let r = self.drain_object_deletions().await?;
                report += r;
                if r.object_failures > 0 || r.objects_deleted < DRAIN_BATCH as u64 {
                    break;
                }
            }
        }
        Ok(report)
    }

    /// What a purge would destroy now (`kluis purge --dry-run`), at most
    /// `limit`, by date.
    pub async fn purge_preview(&self, limit: i64) -> ServiceResult<Vec<DueDocument>> {
        let mut tx = self.snapshot().await?;
        let now = tx.now();
        let rows = tx.due_documents(now, limit, false).await?;
        tx.commit().await?;
        rows.iter().map(due_view).collect()
    }

    /// Due and held documents and queued objects now (the metrics).
    pub async fn retention_counts(&self) -> ServiceResult<RetentionCounts> {
        let mut tx = self.snapshot().await?;
        let now = tx.now();
        let c = tx.retention_counts(now).await?;
        tx.commit().await?;
        Ok(c)
    }

    /// Destroy a document at once (management, with a reason), through the
    /// purge's machinery: key, tombstone, queued object and event in one
    /// transaction, then its object. 409 `legal_hold` while held.
    pub async fn delete_document(&self, caller: &Caller, id: Uuid, req: DeleteDocument) -> ServiceResult<()> {
        // The request's shape first: a bad reason is 422 whatever the document.
        let reason = crate::domain::required_text("reason", &req.reason, 1000)?;
        let mut op = self.op(caller, "document.destroy").await?;
        let (doc, _, _) = op.document(id, Action::DestroyDocument).await?;
        if doc.legal_hold {
            return Err(op.deny(held(), "under a legal hold").await);
        }
        let by = caller.id().to_string();
        let how = Destruction { by: &by, reason: &reason, due_at: None };
        let lease = op.now() + LEASE_MICROS;
        let objects = op.tx()?.destroy_documents(&[doc.id], how, lease).await?;
        if objects.is_empty() {
            // Held or destroyed by another transaction since it was read.
            let now = op.tx()?.get_document(doc.id).await?;
            return Err(if now.legal_hold {
                op.deny(held(), "under a legal hold").await
            } else {
                op.deny(ServiceError::new(ErrorCode::Gone, "the document has been destroyed"), "already destroyed")
                    .await
            });
        }
        op.event.reason = Some(reason);
        op.event.details = destruction_details(
            "person",
            &doc.doc_type,
            doc.retention_until,
            doc.retention_manual,
            doc.retention_reason.as_deref(),
        );
        op.commit().await?;
        // The object now; if the store fails, it stays queued for a retry.
        if let Err(e) = self.delete_objects(objects).await {
            tracing::warn!(document = %doc.id, error = %e, "object of a destroyed document stays queued");
        }
        Ok(())
    }

    /// The destruction list (management, office): live documents whose date
    /// lies before `before`, by date, for the review before they go.
    pub async fn destruction_list(&self, caller: &Caller, q: DueQuery) -> ServiceResult<DestructionList> {
        let mut op = self.op(caller, "retention.due").await?;
        op.authorize(Action::ReadRetention, Target::Nothing).await?;
        let before = super::documents::parse_date_or_time(&q.before)
            .ok_or_else(|| ServiceError::new(ErrorCode::InvalidQuery, "before is a date YYYY-MM-DD or RFC 3339"))?;
        let limit = q.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ServiceError::new(ErrorCode::InvalidQuery, "limit is between 1 and 1000"));
        }
        let after =
            match q.after.as_deref() {
                None => None,
                Some(a) => Some(parse_cursor(a).ok_or_else(|| {
                    ServiceError::new(ErrorCode::InvalidQuery, "after is the `next` of a previous page")
                })?),
            };
        let rows = op.tx()?.destruction_list(before, after, limit + 1).await?;
        let held = op.tx()?.held_before(before).await?;
        let more = rows.len() as i64 > limit;
        let page = &rows[..rows.len().min(limit as usize)];
        let next = more.then(|| page.last().map(|d| format!("{}.{}", d.retention_until, d.id))).flatten();
        op.event.details = serde_json::json!({ "before": micros_to_time(before), "listed": page.len() });
        let documents = page.iter().map(due_view).collect::<ServiceResult<Vec<_>>>()?;
        op.commit().await?;
        Ok(DestructionList { before: micros_to_time(before), documents, held, next })
    }
}

fn parse_cursor(s: &str) -> Option<(i64, Uuid)> {
    let (until, id) = s.split_once('.')?;
    Some((until.parse().ok()?, id.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_deletes_back_off_to_an_hour() {
        let secs: Vec<i64> = (1..=12).map(|a| retry_after_micros(a) / 1_000_000).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]);
        assert_eq!(retry_after_micros(0), 5_000_000, "a first failure waits 5 s");
        assert_eq!(retry_after_micros(i64::MAX), 3_600_000_000);
    }

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let id = Uuid::new_v4();
        assert_eq!(parse_cursor(&format!("-5.{id}")), Some((-5, id)));
        for junk in ["", "5", "x.y", &format!("5.{id}x"), &format!(".{id}")] {
            assert_eq!(parse_cursor(junk), None, "{junk:?}");
        }
    }
}
