//! The memory allocator's settings, measured (BENCHMARKS.md, "Service layer").
//!
//! glibc's malloc keeps what a thread freed in that thread's arena, and
//! after one large buffer is freed it raises its thresholds for good. Two
//! measures keep a long-running server near its idle size:
//!
//! - [`tune`]: at most two arenas (the default allows 8 per core, one for
//!   each thread that allocates while the others are busy).
//! - [`Transfer`]: a guard each upload and download holds; when the last
//!   transfer in flight ends, the free memory of every arena goes back to
//!   the system (`malloc_trim`). After a 1 GiB S3 upload the arenas held
//!   about 35 MiB of freed part buffers until the next transfer reused them.
//!
//! A fixed mmap threshold was tried as well and rejected: it doubled a
//! download's CPU time (every large buffer mapped, zeroed and unmapped).
//! On other platforms both are no-ops.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Hold glibc to two arenas, unless the operator set `MALLOC_ARENA_MAX`.
/// Call first in `main`, before any thread starts.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a parameter of the allocator, and it is
        // called before any other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    }
}

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// One upload or download in flight. When the last one is dropped, the
/// allocator's free memory is returned to the system.
#[must_use = "the transfer ends when this is dropped"]
pub struct Transfer(());

impl Transfer {
    pub fn start() -> Self {
        IN_FLIGHT.fetch_add(1, Ordering::AcqRel);
        Transfer(())
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if IN_FLIGHT.fetch_sub(1, Ordering::AcqRel) == 1 {
            release_free_memory();
        }
    }
}

/// Give the allocator's free pages back to the system (a few hundred
/// microseconds for a heap of tens of MiB; only when no transfer runs).
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free; it
    // takes each arena's lock like malloc does.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_counted_in_and_out() {
        let before = IN_FLIGHT.load(Ordering::Acquire);
        let a = Transfer::start();
        let b = Transfer::start();
        assert_eq!(IN_FLIGHT.load(Ordering::Acquire), before + 2);
        drop(a);
        drop(b);
        assert_eq!(IN_FLIGHT.load(Ordering::Acquire), before);
    }
}
