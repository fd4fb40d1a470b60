//! Operations of the system itself: readiness, whether any user exists (for
//! the first start), and the master-key report of `kluis key list`.

use serde::Serialize;

use super::ServiceResult;
use crate::Vault;
use crate::catalog::SealedKind;

/// Whether the parts a request needs answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub database: bool,
    pub storage: bool,
}

/// One master-key version and what it still wraps.
#[derive(Debug, Clone, Serialize)]
pub struct KeyVersionReport {
    pub version: u32,
    /// `active` or `retired`.
    pub state: &'static str,
    pub current: bool,
    pub in_keyring: bool,
    /// Values wrapped under it, by kind.
    pub uses: std::collections::BTreeMap<&'static str, u64>,
}

impl Vault {
    /// Check the catalog and the store, each within `limit`; failures are
    /// logged (with their cause) and reported as `false`.
    pub async fn readiness(&self, limit: std::time::Duration) -> Readiness {
        let (db, store) = tokio::join!(
            tokio::time::timeout(limit, self.catalog.ping()),
            tokio::time::timeout(limit, self.store.check())
        );
        Readiness { database: judge("database", db), storage: judge("storage", store) }
    }

    /// Does the catalog hold any user yet?
    pub async fn has_users(&self) -> ServiceResult<bool> {
        Ok(self.snapshot().await?.count_users().await? > 0)
    }

    /// The master-key versions, which is current, and what each wraps.
    pub async fn key_report(&self) -> ServiceResult<Vec<KeyVersionReport>> {
        let mut tx = self.snapshot().await?;
        let keyring = self.keyring();
        let current = keyring.current_version();
        let mut out = Vec::new();
        for row in tx.key_versions().await? {
            let mut uses = std::collections::BTreeMap::new();
            for kind in SealedKind::ALL {
                uses.insert(kind.name(), tx.count_sealed_with(kind, row.version).await?);
            }
            out.push(KeyVersionReport {
                version: row.version,
                state: if row.retired { "retired" } else { "active" },
                current: row.version == current,
                in_keyring: keyring.has_version(row.version),
                uses,
            });
        }
        Ok(out)
    }

    /// A short description of the backends, for the start-up log line.
    pub fn describe(&self) -> String {
        format!("catalog {}, storage {}", self.catalog.backend(), self.store.describe())
    }
}

fn judge<E: std::fmt::Display>(what: &str, outcome: Result<Result<(), E>, tokio::time::error::Elapsed>) -> bool {
    match outcome {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(check = what, error = %e, "readiness check failed");
            false
        }
        Err(_) => {
            tracing::warn!(check = what, "readiness check timed out");
            false
        }
    }
}
