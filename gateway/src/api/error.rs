//! The API's error answer: `{"error": {"code", "message"}}` with the status
//! of the code in the vault's one table ([`vault::service::ErrorCode`]).
//! Busy answers (and a search index still being built) carry `Retry-After`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use vault::service::{ErrorCode, ServiceError};

/// An API error: a code of the table and a message for people.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        ApiError(ServiceError::new(code, message))
    }

    pub fn not_found() -> Self {
        ApiError(ServiceError::not_found())
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        ApiError(ServiceError::internal(err))
    }

    pub fn code(&self) -> ErrorCode {
        self.0.code
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

/// The error body of every failed request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, one of the table in the API description.
    #[schema(schema_with = error_code_schema)]
    pub code: &'static str,
    /// For people; never echoes a submitted value.
    pub message: String,
    /// Structured facts, for some codes (`must_keep`: the documents that
    /// must be kept, each with its reasons).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// The codes as an enum in the OpenAPI document.
fn error_code_schema() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(ErrorCode::ALL.iter().map(|c| c.as_str())))
        .build()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.0.code.as_str(),
                message: self.0.message.into_owned(),
                details: self.0.details,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        if matches!(self.0.code, ErrorCode::Busy | ErrorCode::TooManyRequests | ErrorCode::SearchUnavailable) {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}
