//! Master-key rotation: `kluis rekey` and `kluis key retire`.
//!
//! Rekey re-wraps every sealed value (document data keys, client BSNs, user
//! TOTP secrets) under the newest master-key version. Objects are never
//! touched: only the catalog's small wrapped keys change.
//!
//! Crash safety: each value is replaced by its own conditional UPDATE
//! (`... WHERE key_version = old`), so at any moment every row is readable
//! under exactly the version it names. Running `kluis rekey` again after a
//! crash finds values still under an older version and resumes with the same
//! target instead of adding yet another version.
//!
//! Retiring a version is refused while anything still uses it or while it is
//! the current one. The count runs in the transaction that retires, after
//! waiting for every transaction that is writing sealed values
//! (`Tx::lock_sealed_values`); and every write of a sealed value checks in
//! its own transaction that its version is still the newest active one
//! (`Tx::ensure_current_key`). Together: no value can be written under a
//! version that is being retired, so `kluis key retire` after `kluis rekey`
//! cannot lose data even with servers running that have not reloaded the
//! key file yet.

use crate::audit::NewEvent;
use crate::catalog::SealedKind;
use crate::keyring::{KeyError, WrappedKey};
use crate::{Vault, VaultError};

/// Progress reporting, so the CLI can draw a bar and tests can count.
pub trait Progress: Send + Sync {
    fn start(&self, label: &str, total: u64);
    fn inc(&self, n: u64);
    fn finish(&self);
}

/// No progress output.
pub struct Silent;
impl Progress for Silent {
    fn start(&self, _: &str, _: u64) {}
    fn inc(&self, _: u64) {}
    fn finish(&self) {}
}

#[derive(Debug, Clone)]
pub struct RekeyOptions {
    /// Rows fetched per query.
    pub batch_size: i64,
    /// Fault injection for tests: stop with [`VaultError::Interrupted`]
    /// after this many values were re-wrapped.
    pub interrupt_after: Option<u64>,
}

impl Default for RekeyOptions {
    fn default() -> Self {
        RekeyOptions { batch_size: 500, interrupt_after: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RekeyReport {
    pub target_version: u32,
    /// A new master-key version was created by this run.
    pub added_version: bool,
    /// This run continued an interrupted one.
    pub resumed: bool,
    pub rewrapped: u64,
}

fn field_name(kind: SealedKind) -> Option<&'static str> {
    match kind {
        SealedKind::DocumentKey => None,
        SealedKind::ClientBsn => Some("bsn"),
        SealedKind::UserTotp => Some("totp"),
    }
}

impl Vault {
    /// How many sealed values are under a version below `version`.
    pub async fn count_below(&self, version: u32) -> Result<u64, VaultError> {
        let mut tx = self.snapshot().await?;
        let mut n = 0;
        for kind in SealedKind::ALL {
            n += tx.count_sealed_below(kind, version).await?;
        }
        Ok(n)
    }

    /// Rotate: add a master-key version (unless an interrupted rotation is
    /// pending) and re-wrap everything under it.
    pub async fn rekey(&mut self, progress: &dyn Progress, opts: &RekeyOptions) -> Result<RekeyReport, VaultError> {
        let current = self.keyring().current_version();
        let pending = self.count_below(current).await?;
        let (target, added, resumed) = if pending > 0 {
            tracing::info!(target_version = current, pending, "resuming rekey");
            (current, false, true)
        } else {
            let v = self.keyring_mut().add_version()?;
            let kcv = self.keyring().check_value(v)?;
            let mut tx = self.tx().await?;
            tx.register_key_version(v, &kcv).await?;
            let mut e = NewEvent::new("key.add", "ok");
            e.details = serde_json::json!({ "version": v, "via": "cli" });
            tx.append_audit(&e).await?;
            tx.commit().await?;
            (v, true, false)
        };

        let mut done = 0u64;
        for kind in SealedKind::ALL {
            let total = self.snapshot().await?.count_sealed_below(kind, target).await?;
            progress.start(kind.label(), total);
            loop {
                let rows = self.snapshot().await?.sealed_below(kind, target, opts.batch_size).await?;
                if rows.is_empty() {
                    break;
                }
                for row in rows {
                    if opts.interrupt_after.is_some_and(|n| done >= n) {
                        progress.finish();
                        return Err(VaultError::Interrupted);
                    }
                    let new = self.rewrap(kind, row.id, &row.sealed, target)?;
                    // false: changed concurrently (destroyed, or another
                    // rekey); the next query sees its new state.
                    let mut tx = self.tx().await?;
                    let replaced = tx.replace_sealed(kind, row.id, row.sealed.version, &new).await?;
                    tx.commit().await?;
                    if replaced {
                        done += 1;
                    }
                    progress.inc(1);
                }
            }
            progress.finish();
        }
        let mut e = NewEvent::new("key.rekey", "ok");
        e.details =
            serde_json::json!({ "target_version": target, "rewrapped": done, "resumed": resumed, "via": "cli" });
        let mut tx = self.tx().await?;
        tx.append_audit(&e).await?;
        tx.commit().await?;
        Ok(RekeyReport { target_version: target, added_version: added, resumed, rewrapped: done })
    }

    fn rewrap(&self, kind: SealedKind, id: uuid::Uuid, old: &WrappedKey, target: u32) -> Result<WrappedKey, KeyError> {
        let ring = &self.keyring();
        match field_name(kind) {
            None => {
                let dek = ring.unwrap_data_key(id, old)?;
                ring.wrap_data_key_with(target, id, &dek)
            }
            Some(field) => {
                let plain = ring.open_field(field, id, old)?;
                ring.seal_field_with(target, field, id, &plain)
            }
        }
    }

    /// Retire an old master-key version: refused while it is current or
    /// still wraps anything; removes it from the key file.
    pub async fn retire_key_version(&mut self, version: u32) -> Result<(), VaultError> {
        if version == self.keyring().current_version() {
            return Err(VaultError::CannotRetire { version, why: "it is the current version".into() });
        }
        let mut tx = self.tx().await?;
        if tx.newest_key_version().await?.is_some_and(|newest| newest <= version) {
            return Err(VaultError::CannotRetire { version, why: "no newer version is registered".into() });
        }
        // Wait for writers of sealed values in flight and keep new ones out
        // until this commits; they re-check their version afterwards.
        tx.lock_sealed_values().await?;
        let mut used = 0;
        for kind in SealedKind::ALL {
            used += tx.count_sealed_with(kind, version).await?;
        }
        if used > 0 {
            return Err(VaultError::CannotRetire {
                version,
                why: format!("{used} value(s) are still wrapped with it; run `kluis rekey` first"),
            });
        }
        tx.retire_key_version(version).await?;
        let mut e = NewEvent::new("key.retire", "ok");
        e.details = serde_json::json!({ "version": version, "via": "cli" });
        tx.append_audit(&e).await?;
        tx.commit().await?;
        // Only now that the catalog says retired (and nothing can be sealed
        // under it any more) does the key leave the file.
        if self.keyring().has_version(version) {
            self.keyring_mut().remove_version(version)?;
        }
        Ok(())
    }
}
