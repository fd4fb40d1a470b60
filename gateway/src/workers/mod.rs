//! Background work of `kluis serve`, each as one step (a test runs exactly
//! one) and a loop around it: the sweep of interrupted uploads and
//! forgotten lock-out counters, and the pruning of per-address limiters.

use std::sync::Arc;
use std::time::Duration;

use vault::Vault;

use crate::api::AddrLimiter;

/// Uploads interrupted longer ago than this are removed.
pub const INTERRUPTED_AFTER: Duration = Duration::from_secs(24 * 3600);

/// One sweep: interrupted uploads older than a day (claimed, object, row)
/// and lock-out counters of names not tried for a day.
pub async fn sweep_once(vault: &Vault) -> Result<usize, vault::VaultError> {
    let removed = vault.sweep_pending(INTERRUPTED_AFTER).await?;
    vault.prune_login_attempts(INTERRUPTED_AFTER).await?;
    Ok(removed)
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
