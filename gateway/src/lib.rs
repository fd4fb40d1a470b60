//! `kluis`: the Kluis document vault's server and command line.
//!
//! A thin shell over the vault's service layer: `api` (HTTP handlers),
//! `upload` (the streaming upload pipeline and content checks), `net`
//! (connections, timeouts, client addresses), `server` (router, middleware,
//! operational endpoints), `workers` (background jobs), `cli` (commands),
//! `config` (environment and flags), `web` (the pages of the web UI). No business rule lives here.

pub mod alloc;
pub mod api;
pub mod cli;
pub mod config;
pub mod net;
pub mod server;
pub mod upload;
pub mod web;
pub mod workers;

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
