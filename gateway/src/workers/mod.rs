//! Background work of `kluis serve`, each as one step (a test runs exactly
//! one) and a loop around it: the search follower, the purge of documents
//! whose retention date passed, the sweep of interrupted uploads, forgotten
//! lock-out counters and old search-log rows, the registers' gauges, the
//! audit chain's anchor, and the pruning of per-address limiters.

use std::sync::Arc;
use std::time::Duration;

use vault::Vault;
use vault::search::Step;

use crate::api::AddrLimiter;

/// Uploads interrupted longer ago than this are removed.
pub const INTERRUPTED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Search-log rows are kept this long: a node away for longer rebuilds its
/// index when it comes back.
pub const SEARCH_LOG_KEPT: Duration = Duration::from_secs(7 * 24 * 3600);

/// One sweep: interrupted uploads older than a day (claimed, object, row),
/// lock-out counters of names not tried for a day, first steps of sign-ins
/// abandoned past their five minutes, and search-log rows older than a week.
pub async fn sweep_once(vault: &Vault) -> Result<usize, vault::VaultError> {
    let removed = vault.sweep_pending(INTERRUPTED_AFTER).await?;
    vault.prune_login_attempts(INTERRUPTED_AFTER).await?;
    if let Err(e) = vault.prune_login_steps().await {
        tracing::warn!(error = %e, "could not remove abandoned sign-in steps");
    }
    vault.prune_search_log(SEARCH_LOG_KEPT).await?;
    Ok(removed)
}

/// Keep this node's search index following the catalog: a step whenever a
/// change may have committed (a notification, this process's own commit)
/// and at least every `poll`, since notifications can be lost. A full batch
/// runs the next step at once; changes held back behind a running
/// transaction are looked at again after 20 ms, doubling up to `poll` (the
/// end of that transaction is announced by nothing); a failure waits a
/// little longer each time (up to 5 s), and the index stays as it was.
pub async fn search_follower(vault: Arc<Vault>, poll: Duration) {
    let mut waiter = vault.change_waiter();
    let mut backoff = Duration::ZERO;
    let mut held = Duration::ZERO;
    let mut last_check = tokio::time::Instant::now();
    loop {
        match vault.search_step().await {
            Ok(Step::Applied(n)) if n >= vault::search::STEP_BATCH => continue,
            Ok(Step::HeldBack) => {
                backoff = Duration::ZERO;
                if last_check.elapsed() >= HELD_BACK {
                    last_check = tokio::time::Instant::now();
                    warn_if_held_back(&vault).await;
                }
                held = (held * 2).clamp(Duration::from_millis(20), poll.max(Duration::from_millis(20)));
                tokio::time::sleep(held).await;
                continue;
            }
            Ok(_) => {
                backoff = Duration::ZERO;
                held = Duration::ZERO;
            }
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(500), Duration::from_secs(5));
                tracing::warn!(error = %e, retry_in = ?backoff, "search index could not follow the catalog");
                tokio::time::sleep(backoff).await;
                continue;
            }
        }
        waiter.wait(poll).await;
    }
}

/// How old an unapplied change may get before the follower says why.
const HELD_BACK: Duration = Duration::from_secs(30);

/// Changes the follower cannot read yet, although it is idle, wait behind a
/// transaction that has been open for a long time: say so (once per
/// [`HELD_BACK`]), since search stops showing changes until it ends.
async fn warn_if_held_back(vault: &Vault) {
    if let Ok(Some(b)) = vault.search_backlog().await
        && b.oldest.is_some_and(|age| age >= HELD_BACK)
    {
        tracing::warn!(
            changes = b.rows,
            waiting_s = b.oldest.map(|a| a.as_secs()),
            "search is held back: changes wait behind a long-running transaction (in this database, or on \
             PostgreSQL in any database of the same cluster); search shows them once it ends"
        );
    }
}

/// One purge pass (every due document destroyed, then the queued objects
/// deleted), with its metrics: destroyed documents, deleted objects and
/// failures as counters, due and held documents and the object queue as
/// gauges.
pub async fn purge_once(vault: &Vault) -> Result<vault::service::PurgeReport, vault::service::ServiceError> {
    let r = vault.purge_pass(&vault::rekey::Silent).await;
    match &r {
        Ok(r) => {
            metrics::counter!("kluis_documents_destroyed_total", "by" => "retention").increment(r.destroyed);
            metrics::counter!("kluis_purge_objects_deleted_total").increment(r.objects_deleted);
            metrics::counter!("kluis_purge_failures_total", "step" => "object").increment(r.object_failures);
        }
        // A failed pass (the catalog, or recording a delete): the next resumes.
        Err(_) => metrics::counter!("kluis_purge_failures_total", "step" => "pass").increment(1),
    }
    if let Ok(c) = vault.retention_counts().await {
        metrics::gauge!("kluis_documents_due").set(c.due as f64);
        metrics::gauge!("kluis_documents_held").set(c.held as f64);
        metrics::gauge!("kluis_purge_objects_queued").set(c.objects_queued as f64);
        metrics::gauge!("kluis_purge_objects_failing").set(c.objects_failing as f64);
    }
    r
}

/// Purge at start and then every `every`. Several nodes may run this on one
/// database: each batch claims its own documents.
pub async fn purger(vault: Arc<Vault>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match purge_once(&vault).await {
            Ok(r) if r == vault::service::PurgeReport::default() => {}
            Ok(r) => tracing::info!(
                destroyed = r.destroyed,
                objects_deleted = r.objects_deleted,
                object_failures = r.object_failures,
                "purge pass"
            ),
            Err(e) => tracing::warn!(error = %e, "purge pass failed; the next one resumes"),
        }
    }
}

/// The registers' gauges, read once: open data-subject requests, those past
/// the agency's two weeks (`overdue`) and past the legal deadline; breaches
/// with no decision on notifying the authority, and those past 72 hours;
/// the days the audit log has gone unreviewed.
pub async fn register_gauges_once(vault: &Vault, review_days: i64) -> Result<(), vault::service::ServiceError> {
    let c = vault.request_counts().await?;
    metrics::gauge!("kluis_privacy_requests_open").set(c.open as f64);
    metrics::gauge!("kluis_privacy_requests_overdue").set(c.overdue as f64);
    metrics::gauge!("kluis_privacy_requests_past_deadline").set(c.past_deadline as f64);
    let b = vault.breach_counts().await?;
    metrics::gauge!("kluis_breaches_undecided").set(b.undecided as f64);
    metrics::gauge!("kluis_breaches_overdue").set(b.overdue as f64);
    let r = vault.review_status(review_days).await?;
    metrics::gauge!("kluis_audit_unreviewed_days").set(r.unreviewed_days as f64);
    metrics::gauge!("kluis_audit_review_overdue").set(if r.overdue { 1.0 } else { 0.0 });
    Ok(())
}

/// [`register_gauges_once`] at start and then every `every`.
pub async fn register_gauges(vault: Arc<Vault>, review_days: i64, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = register_gauges_once(&vault, review_days).await {
            tracing::warn!(error = %e, "could not read the registers for the metrics");
        }
    }
}

/// One anchor step: the audit chain's head into the document store when it
/// moved (`Vault::anchor_audit_head`), with its gauge.
pub async fn anchor_once(vault: &Vault) -> Result<Option<vault::service::Anchor>, vault::service::ServiceError> {
    let a = vault.anchor_audit_head().await;
    match &a {
        Ok(Some(a)) => metrics::gauge!("kluis_audit_anchor_seq").set(a.seq as f64),
        Ok(None) => {}
        Err(_) => metrics::counter!("kluis_audit_anchor_failures_total").increment(1),
    }
    a
}

/// [`anchor_once`] at start and then every `every` (each node; an anchor
/// that another node wrote already is not written again).
pub async fn anchorer(vault: Arc<Vault>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = anchor_once(&vault).await {
            tracing::warn!(error = %e, "could not anchor the audit chain in the document store; retrying later");
        }
    }
}

/// Sweep at start and then `every` interval, logging what happened.
pub async fn sweeper(vault: Arc<Vault>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match sweep_once(&vault).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "removed uploads interrupted more than a day ago"),
            Err(e) => tracing::warn!(error = %e, "could not sweep interrupted uploads"),
        }
    }
}

/// Forget addresses whose budget is full again, once a minute, so the
/// limiters' memory does not grow with every address ever seen.
pub async fn prune_limiters(limiters: Vec<Arc<AddrLimiter>>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        for l in &limiters {
            l.retain_recent();
        }
    }
}
