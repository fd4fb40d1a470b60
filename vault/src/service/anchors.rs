//! Anchoring the audit chain (issue 11): its head (the last event's number
//! and hash) is written, from time to time, as a small object into the
//! document store (`audit-anchors/<seq>.json`). The catalog and the store
//! are separate systems with separate credentials, so removing events from
//! the end of the log and resetting its head (which leaves a chain that
//! verifies on its own) no longer goes unnoticed: verification compares the
//! newest anchor with the log, and a log that ends before the anchored
//! event, or holds another event under its number, is broken.
//!
//! An anchor holds the number, the hash and the time, nothing else: no
//! client, no document, no name. Put the `audit-anchors/` prefix under the
//! store's object lock (S3 Object Lock, WORM) where the store has one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ServiceError, ServiceResult};
use crate::Vault;
use crate::catalog::micros_to_time;
use crate::store::{ANCHOR_PREFIX, ObjectName};

/// Anchors kept in the store (the newest is the one checked).
pub const ANCHORS_KEPT: usize = 16;

/// One anchor: the chain's head at a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Anchor {
    pub seq: i64,
    /// The hash of event `seq`, hex.
    pub hash: String,
    pub at: DateTime<Utc>,
}

/// The newest anchor checked against the log.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AnchorCheck {
    pub anchor: Anchor,
    /// The log still holds the anchored event, with the anchored hash.
    pub ok: bool,
}

impl Vault {
    /// The newest anchor in the store, if any.
    pub async fn latest_anchor(&self) -> ServiceResult<Option<Anchor>> {
        Ok(self.read_anchors().await?.0)
    }

    /// The newest readable anchor, and the objects under the prefix newer
    /// than it that are not an anchor of their name (garbage, or a forgery
    /// that does not parse): those are skipped, so the anchorer goes on,
    /// and named, so verification fails until someone looks.
    pub(crate) async fn read_anchors(&self) -> ServiceResult<(Option<Anchor>, Vec<String>)> {
        let mut names = self.store.list(ANCHOR_PREFIX).await?;
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let mut unreadable = Vec::new();
        for name in names.iter().rev() {
            let bytes = self.store.get_bytes(name).await?;
            match serde_json::from_slice::<Anchor>(&bytes) {
                Ok(a) if ObjectName::audit_anchor(a.seq).as_str() == name.as_str() => return Ok((Some(a), unreadable)),
                _ => {
                    tracing::warn!(object = %name, "an object under the audit anchors is not an anchor; skipped");
                    unreadable.push(name.as_str().to_string());
                }
            }
        }
        Ok((None, unreadable))
    }

    /// One step of the anchor worker: write the chain's head to the store
    /// when it moved past the newest anchor. Returns the anchor written.
    pub async fn anchor_audit_head(&self) -> ServiceResult<Option<Anchor>> {
        let latest = self.latest_anchor().await?;
        let mut tx = self.snapshot().await?;
        let (seq, hash) = tx.audit_head().await?;
        let check = self.check_anchor(latest, &mut tx).await?;
        tx.commit().await?;
        // The log must still hold the last anchored event: a log cut and
        // grown again past it is not anchored over (the alarm stays).
        if let Some(c) = &check {
            if !c.ok {
                return Err(ServiceError::internal(format!(
                    "the audit log no longer holds event {} as anchored at {}; not anchoring over it \
                     (run `kluis audit verify`)",
                    c.anchor.seq, c.anchor.at
                )));
            }
            if c.anchor.seq >= seq {
                return Ok(None);
            }
        }
        if seq == 0 {
            return Ok(None);
        }
        let anchor = Anchor { seq, hash, at: micros_to_time(self.now_micros()) };
        let body = serde_json::to_vec(&anchor).map_err(ServiceError::internal)?;
        self.store.put_bytes(&ObjectName::audit_anchor(seq), body.into()).await?;
        // Verification checks the newest; a few before it are kept, the
        // rest go, so the listing every step reads stays short.
        let mut names = self.store.list(ANCHOR_PREFIX).await?;
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let old = names.len().saturating_sub(ANCHORS_KEPT);
        for name in &names[..old] {
            if let Err(e) = self.store.delete(name).await {
                tracing::warn!(anchor = %name, error = %e, "could not remove an old audit anchor");
            }
        }
        Ok(Some(anchor))
    }

    /// Check an anchor against the log as `tx` sees it (part of
    /// verification). The anchor must have been read before `tx` began: an
    /// anchor is written only from a committed head, so the snapshot then
    /// holds its event.
    pub(crate) async fn check_anchor(
        &self,
        anchor: Option<Anchor>,
        tx: &mut crate::catalog::Tx,
    ) -> ServiceResult<Option<AnchorCheck>> {
        let Some(anchor) = anchor else { return Ok(None) };
        let held = tx.audit_event_hash(anchor.seq).await?;
        let ok = held.as_deref() == Some(anchor.hash.as_str());
        Ok(Some(AnchorCheck { anchor, ok }))
    }
}
