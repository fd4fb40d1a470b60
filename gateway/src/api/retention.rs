//! Retention and destruction (`vault::service::retention`, `purge`):
//! policies, a document's date and legal hold, immediate destruction, the
//! destruction list.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::domain::DocumentType;
use vault::service::{
    DeleteDocument, DestructionList, Document, DueQuery, PolicyChange, RetentionPolicy, SetDocumentRetention,
    SetLegalHold, SetRetentionPolicy,
};

use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Auth, ErrorBody};

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

#[utoipa::path(delete, path = "/api/v1/documents/{id}", tag = "retention",
    params(("id" = Uuid, Path)), request_body = DeleteDocument,
    responses((status = 204, description = "destroyed: the data key is gone (nothing can be read from then on), the \
                 object deleted or queued for deletion; the tombstone stays (`GET`, `object_deleted_at`)"),
              (status = 403, description = "`forbidden`: management only", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody),
              (status = 409, description = "`legal_hold`: held; lift the hold first", body = ErrorBody),
              (status = 410, description = "`gone`: already destroyed", body = ErrorBody),
              (status = 422, description = "`reason_required`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_document(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DeleteDocument>,
) -> ApiResult<StatusCode> {
    st.vault.delete_document(&caller, id, body).await?;
    metrics::counter!("kluis_documents_destroyed_total", "by" => "person").increment(1);
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/retention/due", tag = "retention", params(DueQuery),
    responses((status = 200, description = "live, unheld documents whose destruction date lies before `before`, \
                 earliest first (the purge destroys each once its date passes), and how many held ones it keeps",
                 body = DestructionList),
              (status = 400, description = "`invalid_query`: `before` not a date, a bad `after` or `limit`", body = ErrorBody),
              (status = 403, description = "`forbidden`: management and office only", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn due(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<DueQuery>,
) -> ApiResult<Json<DestructionList>> {
    Ok(Json(st.vault.destruction_list(&caller, q).await?))
}
