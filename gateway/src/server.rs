//! `kluis serve`: the router, the middleware, and the operational endpoints.
//!
//! Middleware, outermost first: the request's id (`x-request-id`, a UUID;
//! a foreign value is replaced), a `tracing` span per request carrying it,
//! the client address (trusted proxies resolved), metrics by route and
//! status, security headers on every response, a per-frame idle timeout on
//! request bodies, and body limits: JSON bodies at most `max_json_bytes`, the
//! upload route the configured maximum plus room for the multipart envelope.
//! A body announced larger than its limit answers 413 at once, after a
//! bounded drain so the client can read the answer.
//!
//! `/metrics` is never open on the public listener: it is served on a
//! separate listen address (default loopback), or behind a bearer token, or
//! not at all (`KLUIS_METRICS`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use vault::service::ErrorCode;

use crate::api::{self, ApiError, AppState};
use crate::config::MetricsMode;
use crate::net::{self, ConnLimits, ResolveClient, TrustedProxies};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// After refusing a body for its announced size, read at most this much of
/// it (or for at most `DRAIN_TIME`) before answering.
const DRAIN_BYTES: u64 = 64 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Everything `router` needs besides the state.
#[derive(Clone)]
pub struct RouterOptions {
    pub trusted_proxies: TrustedProxies,
    /// `Some` when `/metrics` is served on the public listener behind this
    /// bearer token.
    pub metrics_token: Option<Arc<str>>,
    pub metrics: Option<PrometheusHandle>,
}

pub fn router(state: AppState, opts: RouterOptions) -> Router {
    let settings = state.settings.clone();
    let upload_limit = settings.max_upload_bytes.saturating_add(1 << 20);
    let json_limit = settings.max_json_bytes as u64;
    let (upload, upload_doc) = api::upload_routes()
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(upload_limit, limit_body))
        .split_for_parts();
    let (routes, mut doc) = api::routes()
        .layer(DefaultBodyLimit::max(settings.max_json_bytes))
        .layer(middleware::from_fn_with_state(json_limit, limit_body))
        .split_for_parts();
    doc.merge(upload_doc);
    api::openapi::finish(&mut doc);
    let doc = Arc::new(doc);
    let mut app = routes
        .merge(upload)
        .merge(crate::web::router(upload_limit))
        .route("/api/v1/download/{token}", axum::routing::head(api::download::head))
        .route("/api/v1/openapi.json", get(move || async move { Json(doc.as_ref().clone()) }))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state);
    if let (Some(token), Some(handle)) = (opts.metrics_token.clone(), opts.metrics.clone()) {
        app = app.route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| async move { metrics_with_token(&headers, &token, &handle) }),
        );
    }
    app.fallback(fallback)
        .layer(RequestBodyTimeoutLayer::new(settings.body_idle))
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
        .layer(ResolveClient::new(opts.trusted_proxies))
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

/// Unknown paths: the API's error under `/api/`, a page elsewhere.
async fn fallback(req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        return ApiError::not_found().into_response();
    }
    let tr = crate::web::i18n::Tr::new(crate::web::i18n::Lang::of(req.headers()));
    let mut r = crate::web::pages::error_page(tr, StatusCode::NOT_FOUND, &tr.t("error-not-found"));
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(crate::web::CSP));
    r
}

/// `/metrics` on the public listener, for the holder of the token only.
fn metrics_with_token(headers: &axum::http::HeaderMap, token: &str, handle: &PrometheusHandle) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .unwrap_or("");
    use sha2::Digest;
    let (a, b) = (sha2::Sha256::digest(given.as_bytes()), sha2::Sha256::digest(token.as_bytes()));
    if !vault::credentials::constant_time_eq(&a, &b) {
        return ApiError(vault::service::ServiceError::unauthorized()).into_response();
    }
    handle.render().into_response()
}

/// Refuse a body whose announced length is over `limit` (413, after a
/// bounded drain unless the client waits for `100 Continue`), and bound
/// bodies without a length as they stream.
pub(crate) async fn limit_body(State(limit): State<u64>, req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        let waits_for_continue = req
            .headers()
            .get(header::EXPECT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
        if !waits_for_continue {
            drain(req.into_body()).await;
        }
        let mut resp =
            ApiError::new(ErrorCode::TooLarge, format!("the body is larger than {limit} bytes")).into_response();
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    }
    let (parts, body) = req.into_parts();
    let limited = Body::new(http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX)));
    next.run(Request::from_parts(parts, limited)).await
}

/// Read and discard a refused body, bounded in bytes and time.
async fn drain(mut body: Body) {
    let deadline = tokio::time::Instant::now() + DRAIN_TIME;
    let mut total = 0u64;
    while total < DRAIN_BYTES {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => total += frame.data_ref().map_or(0, |d| d.len() as u64),
            _ => break,
        }
    }
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
    // A fixed set: any token is a method to hyper, and every label value
    // would be a series kept forever.
    let method: &'static str = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("kluis_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
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
    let r = st.vault.readiness(Duration::from_secs(5)).await;
    let word = |ok| if ok { "ok" } else { "unavailable" };
    let ready = r.database && r.storage;
    // The audit log's review is a duty, not a condition of serving: it
    // shows in the details (whether it is overdue, nothing more to an
    // anonymous caller; the days are in the metrics), and never turns the
    // answer to 503. Bounded in time like the checks.
    let review = if r.database {
        tokio::time::timeout(Duration::from_secs(5), st.vault.review_status(st.settings.audit_review_days))
            .await
            .ok()
            .and_then(Result::ok)
    } else {
        None
    };
    let body = Json(json!({
        "status": if ready { "ready" } else { "unavailable" },
        "checks": { "database": word(r.database), "storage": word(r.storage) },
        "details": { "audit_review": review.map(|r| json!({
            "overdue": r.overdue, "allowance_days": st.settings.audit_review_days,
        })) },
    }));
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

/// How `kluis serve` listens.
pub struct Listen {
    pub addr: String,
    pub limits: ConnLimits,
    pub metrics: MetricsMode,
}

/// Serve until SIGINT or SIGTERM, then finish in-flight requests.
pub async fn serve(listen: Listen, state: AppState) -> anyhow::Result<()> {
    let handle = match &listen.metrics {
        MetricsMode::Off => None,
        _ => Some(
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .install_recorder()
                .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?,
        ),
    };
    let metrics_token = match &listen.metrics {
        MetricsMode::Bearer(t) => Some(Arc::from(t.as_str())),
        _ => None,
    };
    if let (MetricsMode::Listen { addr, explicit }, Some(h)) = (&listen.metrics, &handle) {
        serve_metrics(addr, *explicit, h.clone()).await?;
    }
    let listener = tokio::net::TcpListener::bind(&listen.addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", listen.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "kluis listening");
    // One line on stdout that scripts and tests can wait for.
    println!("kluis listening on http://{addr}");
    let opts = RouterOptions { trusted_proxies: listen.limits.trusted_proxies.clone(), metrics_token, metrics: handle };
    let app = router(state, opts);
    net::serve(listener, app, listen.limits, shutdown_signal()).await?;
    tracing::info!("kluis stopped");
    Ok(())
}

/// `/metrics` on its own listener. A default address that is taken is a
/// warning (several servers on one machine); one set on purpose must work.
async fn serve_metrics(addr: &str, explicit: bool, handle: PrometheusHandle) -> anyhow::Result<()> {
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) if !explicit => {
            tracing::warn!(%addr, error = %e, "metrics listener not started (address in use?); set KLUIS_METRICS");
            return Ok(());
        }
        Err(e) => return Err(anyhow::anyhow!("cannot listen for metrics on {addr}: {e}")),
    };
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, "metrics listening");
    eprintln!("kluis: metrics on http://{local}/metrics");
    let app = Router::new().route("/metrics", get(move || async move { handle.render() }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok(())
}

/// A keyed per-address limiter of `per_minute` attempts.
pub fn addr_limiter(per_minute: u32) -> Arc<api::AddrLimiter> {
    let n = std::num::NonZeroU32::new(per_minute.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(n)))
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
