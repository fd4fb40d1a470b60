//! The HTTP API of SPEC §6, under `/api/v1`.
//!
//! Handlers stay thin: parse the request into domain values, ask
//! [`vault::policy::decide`], call the vault, audit, shape the answer.
//! Errors are `{"error": {"code", "message"}}` ([`ApiError`]).

pub mod access;
pub mod clients;
pub mod documents;
pub mod download;
pub mod openapi;
pub mod session;
pub mod users;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;
use vault::audit::NewEvent;
use vault::catalog::{CatalogError, ClientRow, UserRow};
use vault::domain::{Purpose, Role};
use vault::policy::{self, Action, Actor, ClientFacts, Decision};
use vault::{Vault, VaultError};

use crate::auth;

/// Settings of a running server.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub token_ttl: Duration,
    pub max_upload_bytes: u64,
    pub session_idle: Duration,
    pub session_absolute: Duration,
}

pub type LoginLimiter = governor::DefaultKeyedRateLimiter<IpAddr>;

#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub settings: Arc<ServeSettings>,
    pub login_limiter: Arc<LoginLimiter>,
    /// Download attempts per client address: unknown tokens are audited,
    /// so guessing must not be able to flood the audit chain.
    pub download_limiter: Arc<LoginLimiter>,
    /// Uploads streaming at once; more wait for a slot. Bounds the memory
    /// that concurrent uploads hold (buffers of about 1.5 MiB each).
    pub upload_slots: Arc<tokio::sync::Semaphore>,
    /// Downloads streaming at once, held until the body is sent; more wait.
    pub download_slots: Arc<tokio::sync::Semaphore>,
}

/// An API error: status, stable snake_case code, human message.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid session token is required")
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    /// A server-side failure: the details go to the log, not to the caller.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": { "code": self.code, "message": self.message } }))).into_response()
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound(_) => ApiError::not_found(),
            e if e.is_unavailable() => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable; try again later",
                )
            }
            e => ApiError::internal(e),
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::NotFound(_) => ApiError::not_found(),
            VaultError::Gone(_) => ApiError::new(StatusCode::GONE, "gone", "the document has been destroyed"),
            VaultError::Catalog(e) => e.into(),
            VaultError::Held(_) => {
                ApiError::new(StatusCode::CONFLICT, "legal_hold", "the document is under a legal hold")
            }
            VaultError::Store(vault::store::StoreError::Backend { .. }) => {
                tracing::error!(error = %e, "object store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the document store is unavailable; try again later",
                )
            }
            e => ApiError::internal(e),
        }
    }
}

/// The answer to a denied policy decision.
pub fn denied(d: &Decision) -> ApiError {
    match d {
        Decision::Allow { .. } => ApiError::internal("denied() called on an allowed decision"),
        Decision::Forbidden(r) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", *r),
        Decision::PurposeNotAllowed(r) => ApiError::new(StatusCode::FORBIDDEN, "purpose_not_allowed", *r),
        Decision::Restricted(r) => ApiError::new(StatusCode::FORBIDDEN, "restricted", *r),
        Decision::ClientClosed(r) => ApiError::new(StatusCode::CONFLICT, "client_closed", *r),
        Decision::NotFound(_) => ApiError::not_found(),
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// `Json<T>` whose rejections (bad JSON, wrong content type, missing
/// fields) answer in the API's error format.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            // The rejection's own text can quote the offending value (a BSN
            // sent as a number, say): answer in general terms instead.
            Err(rejection) => Err(match rejection {
                axum::extract::rejection::JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send JSON with content-type: application/json",
                ),
                axum::extract::rejection::JsonRejection::JsonDataError(_) => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_body",
                    "the JSON body misses a required field or has a field of the wrong type",
                ),
                r => ApiError::new(r.status(), "invalid_body", "the body is not valid JSON"),
            }),
        }
    }
}

/// `Query<T>` whose rejections answer in the API's error format.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text()))
    }
}

/// The request id set by the request-id layer (`x-request-id`).
#[derive(Debug, Clone, Default)]
pub struct RequestId(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(parts.headers.get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_string)))
    }
}

/// An authenticated caller: a live session of an active user.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserRow,
    pub session_hash: String,
    pub request_id: Option<String>,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor { id: self.user.id, role: self.user.role }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.get(..7).filter(|p| p.eq_ignore_ascii_case("bearer ")).map(|_| &v[7..]))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let hash = auth::token_hash(token);
        let session = st.vault.catalog.session(&hash).await?.ok_or_else(ApiError::unauthorized)?;
        let now = Utc::now().timestamp_micros();
        let idle = st.settings.session_idle.as_micros() as i64;
        if now >= session.expires_at || now >= session.last_seen_at + idle {
            st.vault.catalog.delete_session(&hash).await?;
            return Err(ApiError::unauthorized());
        }
        let user = st.vault.catalog.user(session.user_id).await?;
        if !user.active {
            st.vault.catalog.delete_session(&hash).await?;
            return Err(ApiError::unauthorized());
        }
        // Sliding idle expiry; written at most every 30 s to spare the database.
        if now - session.last_seen_at > 30_000_000 {
            st.vault.catalog.touch_session(&hash, now).await?;
        }
        let request_id = RequestId::from_request_parts(parts, st).await.unwrap_or_default().0;
        Ok(Caller { user, session_hash: hash, request_id })
    }
}

/// Builder for an audit event with the caller filled in.
pub fn event(caller: Option<&Caller>, action: &str, outcome: &str) -> NewEvent {
    let mut e = NewEvent::new(action, outcome);
    if let Some(c) = caller {
        e.actor_id = Some(c.user.id);
        e.actor_role = Some(c.user.role.as_str().to_string());
        e.request_id = c.request_id.clone();
    }
    e
}

impl AppState {
    /// Append an audit event; failing to audit fails the request.
    pub async fn audit(&self, e: NewEvent) -> ApiResult<()> {
        self.vault.catalog.append_audit(&e).await.map_err(ApiError::internal)?;
        Ok(())
    }

    /// Decide, audit the decision, and turn a denial into its error.
    pub async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        client: Option<&ClientRow>,
        document: Option<Uuid>,
        audit_action: &str,
    ) -> ApiResult<Decision> {
        let facts = client.map(facts);
        let now = Utc::now();
        let subs = self.substitutions_for(caller.user.id, caller.user.role, now).await?;
        let d = policy::decide(caller.actor(), action, facts.as_ref(), &subs, now);
        let mut e = event(Some(caller), audit_action, d.outcome());
        e.reason = Some(d.reason().to_string());
        e.client_id = client.map(|c| c.id);
        e.document_id = document;
        if let Action::OpenDocument(p) = action {
            e.purpose = Some(p.as_str().to_string());
        }
        if let Decision::Allow { on_behalf_of, .. } = d {
            e.on_behalf_of = on_behalf_of;
        }
        // Denials, and reads of a particular client or document, are audited
        // here; changes are audited by their handler once they happened.
        let read = matches!(action, Action::ReadClient | Action::ReadDocumentMetadata) && client.is_some();
        if !d.is_allowed() || read {
            self.audit(e).await?;
        }
        if !d.is_allowed() {
            return Err(denied(&d));
        }
        Ok(d)
    }

    /// Refuse (403, audited) what the caller's role may never do, before any
    /// client or document is looked up: existence is not revealed.
    pub async fn precheck(&self, caller: &Caller, action: Action, audit_action: &str) -> ApiResult<()> {
        let d = policy::role_may(caller.actor(), action);
        if !d.is_allowed() {
            let mut e = event(Some(caller), audit_action, "denied");
            e.reason = Some(d.reason().to_string());
            if let Action::OpenDocument(p) = action {
                e.purpose = Some(p.as_str().to_string());
            }
            self.audit(e).await?;
            return Err(denied(&d));
        }
        Ok(())
    }

    /// The substitutions through which a coach reaches colleagues' clients now.
    pub async fn substitutions_for(
        &self,
        user: Uuid,
        role: Role,
        now: DateTime<Utc>,
    ) -> ApiResult<Vec<policy::Substitution>> {
        if !role.is_coach() {
            return Ok(Vec::new());
        }
        let rows = self.vault.catalog.active_substitutions_of(user, now.timestamp_micros()).await?;
        Ok(rows
            .iter()
            .map(|s| policy::Substitution {
                absent: s.absent_coach_id,
                substitute: s.substitute_id,
                from: vault::catalog::micros_to_time(s.starts_at),
                until: vault::catalog::micros_to_time(s.ends_at),
            })
            .collect())
    }

    /// Load a client, answering 404 for unknown ids.
    pub async fn client(&self, id: Uuid) -> ApiResult<ClientRow> {
        Ok(self.vault.catalog.client(id).await?)
    }
}

pub fn facts(c: &ClientRow) -> ClientFacts {
    ClientFacts { coach_id: c.coach_id, status: c.status, restricted: c.restricted }
}

pub fn rfc3339(us: i64) -> String {
    vault::catalog::micros_to_time(us).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub fn opt_rfc3339(us: Option<i64>) -> Option<String> {
    us.map(rfc3339)
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Parse a path id; malformed ids are simply not found.
pub fn parse_id(s: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(s).map_err(|_| ApiError::not_found())
}

pub fn parse_role(s: &str) -> ApiResult<Role> {
    s.parse().map_err(|e: vault::domain::ParseError| ApiError::unprocessable("invalid_role", e.to_string()))
}

pub fn parse_purpose(s: &str) -> ApiResult<Purpose> {
    s.parse().map_err(|e: vault::domain::ParseError| ApiError::unprocessable("invalid_purpose", e.to_string()))
}
