//! Retention policies: `GET /api/v1/retention/policies`,
//! `PUT /api/v1/retention/policies/{type}` (`vault::service::retention`).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use vault::domain::DocumentType;
use vault::service::{PolicyChange, RetentionPolicy, SetRetentionPolicy};

use super::{ApiJson, ApiPath, ApiResult, AppState, Auth, ErrorBody};

#[derive(Debug, Serialize, ToSchema)]
pub struct RetentionPolicies {
    /// One per document type.
    pub policies: Vec<RetentionPolicy>,
}

#[utoipa::path(get, path = "/api/v1/retention/policies", tag = "retention",
    responses((status = 200, description = "every document type's policy", body = RetentionPolicies),
              (status = 403, description = "`forbidden`: management and office only", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn policies(State(st): State<AppState>, Auth(caller): Auth) -> ApiResult<Json<RetentionPolicies>> {
    Ok(Json(RetentionPolicies { policies: st.vault.retention_policies(&caller).await? }))
}

#[utoipa::path(put, path = "/api/v1/retention/policies/{type}", tag = "retention",
    params(("type" = DocumentType, Path)), request_body = SetRetentionPolicy,
    responses((status = 200, description = "the policy, and how many active documents' destruction dates moved \
                 (those whose date has not passed, or that had none)", body = PolicyChange),
              (status = 403, description = "`forbidden`: management only", body = ErrorBody),
              (status = 422, description = "`invalid_field`: period_days outside 1..36600", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_policy(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(doc_type): ApiPath<DocumentType>,
    ApiJson(body): ApiJson<SetRetentionPolicy>,
) -> ApiResult<Json<PolicyChange>> {
    Ok(Json(st.vault.set_retention_policy(&caller, doc_type, body).await?))
}
