//! `kluis serve`: the HTTP server.
//!
//! Today it serves the operational endpoints; the API of SPEC §6 is added
//! here route by route. Handlers stay thin: they parse, ask the vault, and
//! shape the answer.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;
use vault::Vault;

#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
}

pub fn router(state: AppState) -> Router {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).with_state(state)
}

/// Alive: the process answers.
async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Ready: the catalog and the object store both answer within a few
/// seconds. 503 otherwise, naming which one is down (not why: error details
/// go to the log, not to unauthenticated callers).
async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    const LIMIT: Duration = Duration::from_secs(5);
    let (db, store) = tokio::join!(
        tokio::time::timeout(LIMIT, st.vault.catalog.ping()),
        tokio::time::timeout(LIMIT, st.vault.store.check()),
    );
    let db_ok = judge("database", db);
    let store_ok = judge("storage", store);
    let word = |ok| if ok { "ok" } else { "unavailable" };
    let body = Json(json!({
        "status": if db_ok && store_ok { "ready" } else { "unavailable" },
        "checks": { "database": word(db_ok), "storage": word(store_ok) },
    }));
    let code = if db_ok && store_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, body)
}

/// Log why a readiness check failed; true when it passed.
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

/// Serve until SIGINT or SIGTERM, then finish in-flight requests.
pub async fn serve(listen: &str, state: AppState) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "kluis listening");
    // One line on stdout that scripts and tests can wait for.
    println!("kluis listening on http://{addr}");
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("kluis stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
