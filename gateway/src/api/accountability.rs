//! Accountability (issue 11; `vault::service::breaches`): the breach
//! register and an incident's reach from the audit log.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::service::{Breach, BreachPatch, BreachReach, NewBreach, ReachQuery};

use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Auth, ErrorBody};

#[derive(Debug, Serialize, ToSchema)]
pub struct BreachList {
    /// Newest detection first.
    pub breaches: Vec<Breach>,
}

#[utoipa::path(post, path = "/api/v1/breaches", tag = "accountability", request_body = NewBreach,
    responses(
        (status = 201, description = "registered, with notify_deadline (detected + 72 hours)", body = Breach),
        (status = 403, description = "`forbidden`: management only", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn register_breach(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<NewBreach>,
) -> ApiResult<(StatusCode, Json<Breach>)> {
    Ok((StatusCode::CREATED, Json(st.vault.register_breach(&caller, body).await?)))
}

#[utoipa::path(get, path = "/api/v1/breaches", tag = "accountability",
    responses((status = 200, description = "the register", body = BreachList),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_breaches(State(st): State<AppState>, Auth(caller): Auth) -> ApiResult<Json<BreachList>> {
    Ok(Json(BreachList { breaches: st.vault.list_breaches(&caller).await? }))
}

#[utoipa::path(get, path = "/api/v1/breaches/{id}", tag = "accountability", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the entry with its updates", body = Breach),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_breach(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Breach>> {
    Ok(Json(st.vault.get_breach(&caller, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/breaches/{id}", tag = "accountability", params(("id" = Uuid, Path)),
    request_body = BreachPatch,
    responses((status = 200, description = "updated; the change is in `updates`", body = Breach),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_breach(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<BreachPatch>,
) -> ApiResult<Json<Breach>> {
    Ok(Json(st.vault.update_breach(&caller, id, body).await?))
}

#[utoipa::path(get, path = "/api/v1/breaches/{id}/reach", tag = "accountability", params(("id" = Uuid, Path), ReachQuery),
    responses((status = 200, description = "the clients and documents the matching audit events touched", body = BreachReach),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn breach_reach(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ReachQuery>,
) -> ApiResult<Json<BreachReach>> {
    Ok(Json(st.vault.breach_reach(&caller, id, q).await?))
}
