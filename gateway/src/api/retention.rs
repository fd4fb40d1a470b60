//! Retention policies: `GET /api/v1/retention/policies`,
//! `PUT /api/v1/retention/policies/{type}` (`vault::service::retention`).

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::domain::DocumentType;
use vault::service::{Document, PolicyChange, RetentionPolicy, SetDocumentRetention, SetLegalHold, SetRetentionPolicy};

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

#[utoipa::path(put, path = "/api/v1/documents/{id}/retention", tag = "retention",
    params(("id" = Uuid, Path)), request_body = SetDocumentRetention,
    responses((status = 200, description = "the document with its new destruction date", body = Document),
              (status = 403, description = "`forbidden`: management and office; a psych_report date less than a \
                 year after its trajectory (or from now, while it runs) management only", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody),
              (status = 410, description = "`gone`: destroyed", body = ErrorBody),
              (status = 422, description = "`invalid_field`: not a date, or not in the future; `reason_required`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_document_retention(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SetDocumentRetention>,
) -> ApiResult<Json<Document>> {
    Ok(Json(st.vault.set_document_retention(&caller, id, body).await?))
}

#[utoipa::path(put, path = "/api/v1/documents/{id}/legal-hold", tag = "retention",
    params(("id" = Uuid, Path)), request_body = SetLegalHold,
    responses((status = 200, description = "the document, held or released", body = Document),
              (status = 403, description = "`forbidden`: management only", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody),
              (status = 410, description = "`gone`: destroyed", body = ErrorBody),
              (status = 422, description = "`reason_required`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_legal_hold(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SetLegalHold>,
) -> ApiResult<Json<Document>> {
    Ok(Json(st.vault.set_legal_hold(&caller, id, body).await?))
}
