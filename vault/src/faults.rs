//! Fault injection for tests: named points in the vault's operations where a
//! test can make the next pass fail, as a crash or a lost connection would.
//! Nothing is armed in production; an unarmed check is one atomic load.

use std::sync::atomic::{AtomicU32, Ordering};

/// The places a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// After an operation changed the catalog, before its audit event is
    /// appended (in the same transaction).
    BeforeAudit,
    /// After an upload's activation committed, as if the acknowledgement of
    /// the commit were lost on the way back.
    ActivationAckLost,
    /// After the sweeper claimed an interrupted upload, before it deleted
    /// the object (a crash mid-sweep).
    SweepAfterClaim,
    /// After a purge batch destroyed keys and appended its events, before
    /// the commit (a crash: the transaction rolls back).
    PurgeBeforeCommit,
    /// After a purge batch committed, before its objects are deleted.
    PurgeAfterDestroy,
    /// After the store deleted leased objects, before the queue was told.
    PurgeAfterObjectDelete,
}

const POINTS: usize = 6;

fn index(p: FaultPoint) -> usize {
    match p {
        FaultPoint::BeforeAudit => 0,
        FaultPoint::ActivationAckLost => 1,
        FaultPoint::SweepAfterClaim => 2,
        FaultPoint::PurgeBeforeCommit => 3,
        FaultPoint::PurgeAfterDestroy => 4,
        FaultPoint::PurgeAfterObjectDelete => 5,
    }
}

#[derive(Debug, Default)]
pub struct Faults {
    armed: [AtomicU32; POINTS],
}

impl Faults {
    /// Make the next `times` passes through `point` fail.
    pub fn arm(&self, point: FaultPoint, times: u32) {
        self.armed[index(point)].store(times, Ordering::SeqCst);
    }

    /// True (and one use consumed) if a fault is armed at `point`.
    pub fn fire(&self, point: FaultPoint) -> bool {
        let slot = &self.armed[index(point)];
        slot.load(Ordering::Relaxed) > 0
            && slot.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}
