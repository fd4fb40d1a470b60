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

/// Hold glibc's allocator to two arenas, unless the operator set
/// `MALLOC_ARENA_MAX`. glibc gives every thread that allocates while the
/// others hold their arenas an arena of its own, up to 8 per core, and each
/// keeps what it freed: under 200 concurrent 1 MiB uploads and downloads
/// after one large transfer, peak RSS above idle was 64 MiB with the default
/// and 38–40 MiB with two arenas, at the same CPU cost per GiB
/// (BENCHMARKS.md). A fixed mmap threshold saved a little more memory but
/// doubled a download's CPU time (every large buffer mapped, zeroed and
/// unmapped again), so it is left dynamic. Call first in `main`, before any
/// thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a parameter of the allocator, and it is
        // called before any other thread exists.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
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
