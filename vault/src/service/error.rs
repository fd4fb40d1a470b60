//! The one table of error codes: every way an operation can fail, with the
//! HTTP status it answers and its stable snake_case code (SPEC §6:
//! `{"error": {"code", "message"}}`). The API, the CLI and the web pages all
//! speak these codes; a new failure gets a row here, never a free-form code.
//!
//! Messages are written here or by the operation, from facts about the
//! request's shape; they never echo a submitted value (it may be a BSN, a
//! password typed into the wrong field, or a trap for a log reader).

use std::borrow::Cow;

use crate::VaultError;
use crate::catalog::CatalogError;
use crate::domain::ParseError;
use crate::policy::Decision;
use crate::store::StoreError;

macro_rules! make_error_codes {
    ($($(#[$doc:meta])* $variant:ident = $status:literal $code:literal,)+) => {
        /// Every error code of the API, with its HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($(#[$doc])* $variant,)+ }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The HTTP status this code answers with.
            pub fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)+ }
            }

            /// The stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)+ }
            }
        }
    };
}

make_error_codes! {
    /// The request is malformed (bad JSON, a broken multipart body).
    BadRequest = 400 "bad_request",
    /// The body is not JSON at all.
    InvalidJson = 400 "invalid_json",
    /// An unknown or repeated query parameter, or one of the wrong form.
    InvalidQuery = 400 "invalid_query",
    /// The upload stopped before its end.
    UploadInterrupted = 400 "upload_interrupted",
    /// No valid session.
    Unauthorized = 401 "unauthorized",
    InvalidCredentials = 401 "invalid_credentials",
    /// A download token that does not exist or was altered.
    InvalidToken = 401 "invalid_token",
    /// The first page of a two-page sign-in is older than five minutes.
    LoginStepExpired = 401 "login_step_expired",
    /// The role may never do this.
    Forbidden = 403 "forbidden",
    PurposeNotAllowed = 403 "purpose_not_allowed",
    /// GDPR art. 18 restriction.
    Restricted = 403 "restricted",
    /// The token's holder lost access since it was issued.
    AccessRevoked = 403 "access_revoked",
    /// No such resource, or outside the caller's scope (indistinguishable).
    NotFound = 404 "not_found",
    MethodNotAllowed = 405 "method_not_allowed",
    /// The request (or waiting for a slot) took too long.
    Timeout = 408 "timeout",
    UsernameTaken = 409 "username_taken",
    /// The last active manager cannot be demoted or deactivated.
    LastManager = 409 "last_manager",
    AlreadyClosed = 409 "already_closed",
    NotClosed = 409 "not_closed",
    /// The trajectory has ended: no more uploads.
    ClientClosed = 409 "client_closed",
    LegalHold = 409 "legal_hold",
    /// The data-subject request has been answered already.
    AlreadyAnswered = 409 "already_answered",
    /// The request's legal deadline has passed: it can no longer be extended.
    DeadlinePassed = 409 "deadline_passed",
    /// The law requires keeping something the erasure would destroy.
    MustKeep = 409 "must_keep",
    /// The client's data has been erased.
    Erased = 410 "erased",
    /// The document has been destroyed.
    Gone = 410 "gone",
    TokenUsed = 410 "token_used",
    TokenExpired = 410 "token_expired",
    TooLarge = 413 "too_large",
    UnsupportedMediaType = 415 "unsupported_media_type",
    /// Well-formed JSON with a missing, unknown, repeated or ill-typed field.
    InvalidBody = 422 "invalid_body",
    /// A field's value breaks a rule (length, characters, date, shape).
    InvalidField = 422 "invalid_field",
    InvalidBsn = 422 "invalid_bsn",
    InvalidUsername = 422 "invalid_username",
    InvalidRole = 422 "invalid_role",
    InvalidPurpose = 422 "invalid_purpose",
    /// Unknown document type.
    InvalidType = 422 "invalid_type",
    WeakPassword = 422 "weak_password",
    /// The user named must be an active coach or freelance coach.
    NotACoach = 422 "not_a_coach",
    ReasonRequired = 422 "reason_required",
    MissingFile = 422 "missing_file",
    EmptyFile = 422 "empty_file",
    /// The account (or the name tried) is locked after repeated failures.
    TooManyAttempts = 429 "too_many_attempts",
    /// Too many requests from this address.
    TooManyRequests = 429 "too_many_requests",
    Internal = 500 "internal",
    DatabaseUnavailable = 503 "database_unavailable",
    StorageUnavailable = 503 "storage_unavailable",
    /// Every slot for this kind of work is taken; try again shortly.
    Busy = 503 "busy",
    /// This node's search index is being built (or has none); try again shortly.
    SearchUnavailable = 503 "search_unavailable",
}

/// A failed operation: a code from the table and a message for people.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    /// Structured facts for the caller, when the message alone cannot carry
    /// them (an erasure refused: the documents that must be kept and why).
    pub details: Option<serde_json::Value>,
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ServiceError { code, message: message.into(), details: None }
    }

    /// The same error with structured details for the caller.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    pub fn unauthorized() -> Self {
        Self::new(ErrorCode::Unauthorized, "a valid session token is required")
    }

    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound, "no such resource")
    }

    pub fn invalid_credentials() -> Self {
        Self::new(ErrorCode::InvalidCredentials, "wrong username, password or code")
    }

    pub fn busy(what: &'static str) -> Self {
        Self::new(ErrorCode::Busy, format!("the server is busy with other {what}; try again in a moment"))
    }

    /// A failure on our side: the details go to the log, never to the caller.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "operation failed");
        Self::new(ErrorCode::Internal, "internal error; see the server log")
    }

    /// A field that broke a rule of [`crate::domain`].
    pub fn field(e: ParseError) -> Self {
        let code = match e {
            ParseError::InvalidBsn => ErrorCode::InvalidBsn,
            ParseError::Unknown { kind: "role", .. } => ErrorCode::InvalidRole,
            ParseError::Unknown { kind: "purpose", .. } => ErrorCode::InvalidPurpose,
            ParseError::Unknown { kind: "document type", .. } => ErrorCode::InvalidType,
            ParseError::Invalid { field: "username", .. } => ErrorCode::InvalidUsername,
            ParseError::Missing { field: "reason" } => ErrorCode::ReasonRequired,
            _ => ErrorCode::InvalidField,
        };
        Self::new(code, e.to_string())
    }

    /// The answer to a policy denial.
    pub fn denied(d: &Decision) -> Self {
        match d {
            Decision::Allow { .. } => Self::internal("denied() called on an allowed decision"),
            Decision::Forbidden(r) => Self::new(ErrorCode::Forbidden, *r),
            Decision::PurposeNotAllowed(r) => Self::new(ErrorCode::PurposeNotAllowed, *r),
            Decision::Restricted(r) => Self::new(ErrorCode::Restricted, *r),
            Decision::ClientClosed(r) => Self::new(ErrorCode::ClientClosed, *r),
            Decision::Gone(r) => Self::new(ErrorCode::Gone, *r),
            Decision::NotFound(_) => Self::not_found(),
        }
    }
}

impl From<ParseError> for ServiceError {
    fn from(e: ParseError) -> Self {
        Self::field(e)
    }
}

impl From<CatalogError> for ServiceError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::NotFound(_) => Self::not_found(),
            e if e.is_unavailable() => {
                tracing::error!(error = %e, "database unavailable");
                Self::new(ErrorCode::DatabaseUnavailable, "the database is unavailable; try again later")
            }
            e => Self::internal(e),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Backend { .. } => {
                tracing::error!(error = %e, "object store unavailable");
                Self::new(ErrorCode::StorageUnavailable, "the document store is unavailable; try again later")
            }
            e => Self::internal(e),
        }
    }
}

impl From<VaultError> for ServiceError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::NotFound(_) => Self::not_found(),
            VaultError::Gone(_) => Self::new(ErrorCode::Gone, "the document has been destroyed"),
            VaultError::Held(_) => Self::new(ErrorCode::LegalHold, "the document is under a legal hold"),
            VaultError::Catalog(e) => e.into(),
            VaultError::Store(e) => e.into(),
            VaultError::Index(e) => {
                tracing::error!(error = %e, "search index failed");
                Self::new(ErrorCode::SearchUnavailable, "search is unavailable on this server; try again shortly")
            }
            e => Self::internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_with_error_statuses() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {}", c.as_str());
            assert!(c.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{}", c.as_str());
            assert!((400..600).contains(&c.status()), "{}", c.as_str());
        }
    }

    #[test]
    fn field_errors_map_to_their_codes_and_never_echo() {
        let e = ServiceError::field(ParseError::InvalidBsn);
        assert_eq!((e.code, e.status()), (ErrorCode::InvalidBsn, 422));
        let e = ServiceError::field(ParseError::TooLong { field: "city", max: 100 });
        assert_eq!(e.code, ErrorCode::InvalidField);
        assert_eq!(ServiceError::field(ParseError::Missing { field: "reason" }).code, ErrorCode::ReasonRequired);
        assert_eq!(ServiceError::denied(&Decision::NotFound("x")).message, "no such resource");
    }
}
