//! `kluis`: the Kluis document vault's server and command line.
//!
//! A thin shell over the vault's service layer: `api` (HTTP handlers),
//! `upload` (the streaming upload pipeline and content checks), `net`
//! (connections, timeouts, client addresses), `server` (router, middleware,
//! operational endpoints), `workers` (background jobs), `cli` (commands),
//! `config` (environment and flags). No business rule lives here.

pub mod api;
pub mod cli;
pub mod config;
pub mod net;
pub mod server;
pub mod upload;
pub mod workers;

/// Tune glibc's allocator for a server with many short-lived blocking
/// threads, unless the operator set `MALLOC_ARENA_MAX` or
/// `MALLOC_MMAP_THRESHOLD_` already. Measured under 200 concurrent 1 MiB
/// uploads and downloads after one large transfer (BENCHMARKS.md): glibc's
/// default gives every blocking thread an arena of its own (up to 8 per
/// core), and after one large buffer is freed it raises its mmap threshold
/// for good, so later 64 KiB–1 MiB buffers stay in fragmented arenas; peak
/// RSS above idle was 64 MiB, with two arenas and a fixed threshold 35–38.
/// Call first in `main`, before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: mallopt only sets a parameter of the allocator; called
            // before any other thread exists.
            unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: as above. 128 KiB is glibc's initial threshold; setting
            // it turns the dynamic adjustment off.
            unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10) };
        }
    }
}

/// Logging to standard error, filtered by `KLUIS_LOG`, as JSON with
/// `KLUIS_LOG_FORMAT=json`.
pub fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KLUIS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var("KLUIS_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}
