//! `kluis serve`: the router, the middleware, and the operational endpoints.
//!
//! Middleware, outermost first: request id (`x-request-id`, generated if
//! absent, echoed back), a `tracing` span per request carrying that id,
//! metrics by route and status, security headers on every response. The
//! upload route has its own body limit (the configured maximum plus room for
//! the multipart envelope); everything else keeps axum's 2 MB default.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post, put};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::api::{self, AppState};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState, metrics: Option<PrometheusHandle>) -> Router {
    let upload_limit = state.settings.max_upload_bytes.saturating_add(1 << 20);
    let upload = Router::new()
        .route("/api/v1/clients/{id}/documents", post(api::documents::upload).get(api::documents::list))
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(usize::try_from(upload_limit).unwrap_or(usize::MAX)));
    let api = Router::new()
        .route("/api/v1/session", post(api::session::login).delete(api::session::logout))
        .route("/api/v1/me", get(api::session::me))
        .route("/api/v1/users", post(api::users::create).get(api::users::list))
        .route("/api/v1/users/{id}", axum::routing::patch(api::users::patch))
        .route("/api/v1/clients", post(api::clients::create).get(api::clients::list))
        .route("/api/v1/clients/{id}", get(api::clients::get))
        .route("/api/v1/clients/{id}/bsn", get(api::clients::reveal_bsn))
        .route("/api/v1/clients/{id}/coach", put(api::clients::assign_coach))
        .route("/api/v1/clients/{id}/close", post(api::clients::close))
        .route("/api/v1/clients/{id}/restriction", put(api::access::set_restriction))
        .route("/api/v1/clients/{id}/access-log", get(api::access::access_log))
        .route("/api/v1/substitutions", post(api::access::create_substitution).get(api::access::list_substitutions))
        .route("/api/v1/substitutions/{id}", axum::routing::delete(api::access::end_substitution))
        .route("/api/v1/audit", get(api::access::audit_log))
        .route("/api/v1/audit/verify", get(api::access::audit_verify))
        .route("/api/v1/documents/{id}", get(api::documents::get))
        .route("/api/v1/documents/{id}/download-tokens", post(api::documents::issue_token))
        // HEAD must not redeem a token (link previewers, scanners).
        .route(
            "/api/v1/download/{token}",
            get(api::download::download).head(|| async {
                api::ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use GET to download")
            }),
        )
        .route("/api/v1/openapi.json", get(api::openapi::openapi_json))
        .merge(upload)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    let api = match metrics {
        Some(handle) => api.route("/metrics", get(move || async move { handle.render() })),
        None => api,
    };
    api.fallback(|| async { api::ApiError::not_found() })
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")))
        .layer(middleware::from_fn(track_metrics))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // Paths may hold a download token: log the route, never the path.
            let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_default();
            let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
            tracing::info_span!("request", method = %req.method(), route = %route, request_id = %id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::map_request(drop_foreign_request_id))
}

/// A caller's own `x-request-id` is kept only if it is a UUID; anything else
/// is replaced by a fresh one (ids go into logs and the audit log).
async fn drop_foreign_request_id(mut req: Request) -> Request {
    let ok =
        req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).is_some_and(|v| uuid::Uuid::parse_str(v).is_ok());
    if !ok {
        req.headers_mut().remove(REQUEST_ID);
    }
    req
}

/// Count requests by route and status, and time them.
async fn track_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route =
        req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("kluis_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("kluis_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    resp
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
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    let listener =
        tokio::net::TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "kluis listening");
    // One line on stdout that scripts and tests can wait for.
    println!("kluis listening on http://{addr}");
    let app = router(state, Some(metrics));
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    tracing::info!("kluis stopped");
    Ok(())
}

/// A keyed per-address limiter of `per_minute` attempts.
pub fn login_limiter(per_minute: u32) -> Arc<api::LoginLimiter> {
    let n = std::num::NonZeroU32::new(per_minute.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(n)))
}

/// Forget addresses whose budget is full again, once a minute, so the
/// limiters' memory does not grow with every address ever seen.
pub async fn prune_limiters(limiters: Vec<Arc<api::LoginLimiter>>) {
    let mut every = tokio::time::interval(Duration::from_secs(60));
    loop {
        every.tick().await;
        for l in &limiters {
            l.retain_recent();
        }
    }
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
