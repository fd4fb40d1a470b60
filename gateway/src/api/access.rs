//! The access model's operations: substitutions, restriction, the audit log
//! and its verification, a client's access log (`vault::service`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::service::{
    AccessLog, AuditEntry, AuditQuery, ChainReport, Client, NewSubstitution, SetRestriction, Substitution,
    SubstitutionQuery,
};

use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Auth, ErrorBody};

#[derive(Debug, Serialize, ToSchema)]
pub struct SubstitutionList {
    pub substitutions: Vec<Substitution>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvents {
    /// Newest first.
    pub events: Vec<AuditEntry>,
}

#[utoipa::path(post, path = "/api/v1/substitutions", tag = "access", request_body = NewSubstitution,
    responses(
        (status = 201, description = "registered", body = Substitution),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 422, description = "`not_a_coach`: both must be active coaches; `invalid_field`: until not after from, or the same coach twice", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn create_substitution(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<NewSubstitution>,
) -> ApiResult<(StatusCode, Json<Substitution>)> {
    Ok((StatusCode::CREATED, Json(st.vault.register_substitution(&caller, body).await?)))
}

#[utoipa::path(get, path = "/api/v1/substitutions", tag = "access", params(SubstitutionQuery),
    responses((status = 200, description = "substitutions", body = SubstitutionList),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_substitutions(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<SubstitutionQuery>,
) -> ApiResult<Json<SubstitutionList>> {
    let substitutions = st.vault.list_substitutions(&caller, q.show.unwrap_or_default()).await?;
    Ok(Json(SubstitutionList { substitutions }))
}

#[utoipa::path(delete, path = "/api/v1/substitutions/{id}", tag = "access", params(("id" = Uuid, Path)),
    responses((status = 204, description = "ended now"),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn end_substitution(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    st.vault.end_substitution(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/clients/{id}/restriction", tag = "access", params(("id" = Uuid, Path)),
    request_body = SetRestriction,
    responses((status = 200, description = "the client", body = Client),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody),
              (status = 422, description = "`reason_required`, `invalid_field`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_restriction(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SetRestriction>,
) -> ApiResult<Json<Client>> {
    Ok(Json(st.vault.set_restriction(&caller, id, body).await?))
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "access", params(AuditQuery),
    responses((status = 200, description = "matching events, newest first", body = AuditEvents),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit_log(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditEvents>> {
    Ok(Json(AuditEvents { events: st.vault.audit_events(&caller, q).await? }))
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "access",
    responses((status = 200, description = "the chain walked: ok with events and head, or the first break", body = ChainReport),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit_verify(State(st): State<AppState>, Auth(caller): Auth) -> ApiResult<Json<ChainReport>> {
    Ok(Json(st.vault.verify_audit(&caller).await?))
}

#[utoipa::path(get, path = "/api/v1/clients/{id}/access-log", tag = "access", params(("id" = Uuid, Path)),
    responses((status = 200, description = "who opened what, when, why (oldest first), and the caseload history", body = AccessLog),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn access_log(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<AccessLog>> {
    Ok(Json(st.vault.access_log(&caller, id).await?))
}
