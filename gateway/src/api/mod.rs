//! The HTTP API of SPEC §6, under `/api/v1`.
//!
//! Handlers are thin: extract typed input (path ids, JSON bodies, query
//! strings; each rejection answers in the error format), call one vault
//! service operation, shape the answer. No business rule lives here. Routes
//! and their OpenAPI description are declared once, together
//! ([`routes`], utoipa-axum), so no route can exist undocumented.

pub mod access;
pub mod accountability;
pub mod clients;
pub mod documents;
pub mod download;
pub mod error;
pub mod openapi;
pub mod privacy;
pub mod retention;
pub mod search;
pub mod session;
pub mod users;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vault::Vault;
use vault::service::{Caller, ErrorCode, RequestContext};

pub use error::{ApiError, ApiResult, ErrorBody};

use crate::net::ClientAddr;

/// Settings of a running server that the transport needs.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub max_upload_bytes: u64,
    /// Largest JSON body.
    pub max_json_bytes: usize,
    /// How long a request waits for an upload or download slot.
    pub slot_wait: Duration,
    /// A request body that sends nothing for this long is cut off.
    pub body_idle: Duration,
    /// Days the audit log may go unreviewed before `/readyz` and the
    /// metrics say so.
    pub audit_review_days: i64,
}

pub type AddrLimiter = governor::DefaultKeyedRateLimiter<IpAddr>;

#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub settings: Arc<ServeSettings>,
    pub login_limiter: Arc<AddrLimiter>,
    /// Download attempts per client address: unknown tokens are audited,
    /// so guessing must not be able to flood the audit chain.
    pub download_limiter: Arc<AddrLimiter>,
    /// Uploads streaming at once; more wait (bounded) for a slot. Bounds the
    /// memory that concurrent uploads hold.
    pub upload_slots: Arc<tokio::sync::Semaphore>,
    /// Downloads streaming at once, held until the body is sent.
    pub download_slots: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// A slot of `slots`, waiting at most `settings.slot_wait`; 503 `busy`
    /// (with `Retry-After`) when none frees up in time.
    pub async fn slot(
        &self,
        slots: &Arc<tokio::sync::Semaphore>,
        what: &'static str,
    ) -> ApiResult<tokio::sync::OwnedSemaphorePermit> {
        match tokio::time::timeout(self.settings.slot_wait, slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(closed)) => Err(ApiError::internal(closed)),
            Err(_) => {
                metrics::counter!("kluis_busy_total", "what" => what).increment(1);
                Err(ApiError(vault::service::ServiceError::busy(what)))
            }
        }
    }
}

/// Every route of the API with its description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(<openapi::ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(session::login, session::logout))
        .routes(routes!(session::me))
        .routes(routes!(users::create, users::list))
        .routes(routes!(users::update))
        .routes(routes!(clients::create, clients::list))
        .routes(routes!(clients::get))
        .routes(routes!(clients::reveal_bsn))
        .routes(routes!(clients::assign_coach))
        .routes(routes!(clients::close))
        .routes(routes!(clients::reopen))
        .routes(routes!(access::set_restriction))
        .routes(routes!(access::access_log))
        .routes(routes!(access::create_substitution, access::list_substitutions))
        .routes(routes!(access::end_substitution))
        .routes(routes!(access::audit_log))
        .routes(routes!(access::audit_verify))
        .routes(routes!(documents::get, retention::delete_document))
        .routes(routes!(documents::issue_token))
        .routes(routes!(search::search))
        .routes(routes!(retention::policies))
        .routes(routes!(retention::set_policy))
        .routes(routes!(retention::set_document_retention))
        .routes(routes!(retention::set_legal_hold))
        .routes(routes!(retention::due))
        .routes(routes!(download::download))
        .routes(routes!(privacy::create_request, privacy::list_requests))
        .routes(routes!(privacy::get_request, privacy::update_request))
        .routes(routes!(privacy::answer_request))
        .routes(routes!(privacy::consents))
        .routes(routes!(privacy::set_consent))
        .routes(routes!(privacy::record_disclosure, privacy::disclosures))
        .routes(routes!(privacy::correct_client, privacy::corrections))
        .routes(routes!(privacy::erase))
        .routes(routes!(privacy::erasure))
        .routes(routes!(privacy::export))
        .routes(routes!(accountability::register_breach, accountability::list_breaches))
        .routes(routes!(accountability::get_breach, accountability::update_breach))
        .routes(routes!(accountability::breach_reach))
        .routes(routes!(accountability::audit_review))
        .routes(routes!(accountability::record_review, accountability::list_reviews))
        .routes(routes!(accountability::processing_register))
}

/// The upload route (it has its own body limit).
pub fn upload_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(documents::upload, documents::list))
}

/// The request's context for the audit log: its id and the client address
/// (trusted proxies resolved).
pub fn request_context(parts: &Parts) -> RequestContext {
    RequestContext {
        request_id: parts.headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string),
        client_ip: parts.extensions.get::<ClientAddr>().map(|a| a.0),
    }
}

/// The context of an anonymous request (login, download).
pub struct Ctx(pub RequestContext);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Ctx(request_context(parts)))
    }
}

/// An authenticated caller from `Authorization: Bearer <session token>`.
/// The API accepts bearer tokens only, never a cookie.
pub struct Auth(pub Caller);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.get(..7).filter(|p| p.eq_ignore_ascii_case("bearer ")).map(|_| &v[7..]))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError(vault::service::ServiceError::unauthorized()))?;
        Ok(Auth(st.vault.authenticate(token, request_context(parts)).await?))
    }
}

/// A path parameter; one that does not parse (a malformed id) is simply
/// not found.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, st: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, st)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|_| ApiError::not_found())
    }
}

/// Where a value failed to deserialise, without the value: serde's own
/// messages quote what was sent (a BSN sent as a number, say).
fn field_of<E: std::fmt::Display>(e: &serde_path_to_error::Error<E>) -> String {
    // An unknown key is the path itself: it was sent, so it is not named.
    if e.inner().to_string().starts_with("unknown field") {
        return "an unknown field".into();
    }
    let path = e.path().to_string();
    if path == "." || path.is_empty() { "the body".into() } else { format!("field `{path}`") }
}

/// A JSON body. Rejections answer in the API's error format: wrong content
/// type 415, not JSON 400, too large 413, a missing, unknown, duplicate or
/// ill-typed field 422 (naming the field, never its value).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, st: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(not_json());
        }
        let bytes = axum::body::Bytes::from_request(req, st).await.map_err(body_error)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// A JSON body that may be left out: an empty body is `None`.
pub struct OptionalJson<T>(pub Option<T>);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, st: &S) -> Result<Self, Self::Rejection> {
        let json = is_json(req.headers());
        let bytes = axum::body::Bytes::from_request(req, st).await.map_err(body_error)?;
        let text = bytes.iter().filter(|b| !b.is_ascii_whitespace()).copied().collect::<Vec<u8>>();
        if text.is_empty() || text == b"null" {
            return Ok(OptionalJson(None));
        }
        if !json {
            return Err(not_json());
        }
        parse_json(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime_guess::mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == "application" && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
        })
}

fn not_json() -> ApiError {
    ApiError::new(ErrorCode::UnsupportedMediaType, "send JSON with content-type: application/json")
}

/// Parse a JSON body (also used where the body is optional).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    // Every body is an object: serde would also take a struct from an array.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(b'[' | b'"' | b'n' | b't' | b'f' | b'-' | b'0'..=b'9') => {
            return Err(ApiError::new(ErrorCode::InvalidBody, "the body is a JSON object"));
        }
        _ => return Err(ApiError::new(ErrorCode::InvalidJson, "the body is not valid JSON")),
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let classify = e.inner().classify();
        match classify {
            serde_json::error::Category::Data => ApiError::new(
                ErrorCode::InvalidBody,
                format!("{} is missing, unknown, repeated or of the wrong type", field_of(&e)),
            ),
            _ => ApiError::new(ErrorCode::InvalidJson, "the body is not valid JSON"),
        }
    })?;
    de.end().map_err(|_| ApiError::new(ErrorCode::InvalidJson, "the body is not valid JSON"))?;
    Ok(value)
}

/// A body that could not be read: too large (413), cut off or too slow.
pub fn body_error(e: axum::extract::rejection::BytesRejection) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(ErrorCode::TooLarge, "the request body is too large");
    }
    if crate::upload::is_timeout(&e) {
        return ApiError::new(ErrorCode::Timeout, "the request body stalled");
    }
    ApiError::new(ErrorCode::BadRequest, "the request body could not be read")
}

/// A query string. Unknown parameters and values of the wrong form answer
/// 400 `invalid_query`, naming the parameter, never its value.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de).map(ApiQuery).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidQuery,
                format!(
                    "query parameter {} is unknown, repeated or of the wrong form",
                    field_of(&e).replace("field ", "")
                ),
            )
        })
    }
}
