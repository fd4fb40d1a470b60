//! Accountability (issue 11; `vault::service::{breaches, review}`): the
//! breach register, an incident's reach from the audit log, and the log's
//! review.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::service::{
    Breach, BreachPatch, BreachReach, NewBreach, NewReview, ReachQuery, Review, ReviewQuery, ReviewReport,
};

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

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewList {
    /// Newest period first.
    pub reviews: Vec<Review>,
}

#[utoipa::path(get, path = "/api/v1/audit/review", tag = "accountability", params(ReviewQuery),
    responses((status = 200, description = "the anomalies of the period, each with its events", body = ReviewReport),
              (status = 403, description = "`forbidden`: management only", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit_review(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> ApiResult<Json<ReviewReport>> {
    Ok(Json(st.vault.audit_review(&caller, q).await?))
}

#[utoipa::path(post, path = "/api/v1/audit/reviews", tag = "accountability", request_body = NewReview,
    responses((status = 201, description = "recorded, with the period's findings counted", body = Review),
              (status = 403, description = "`forbidden`: management only", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_review(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<NewReview>,
) -> ApiResult<(StatusCode, Json<Review>)> {
    Ok((StatusCode::CREATED, Json(st.vault.record_review(&caller, body).await?)))
}

#[utoipa::path(get, path = "/api/v1/audit/reviews", tag = "accountability",
    responses((status = 200, description = "the reviews done", body = ReviewList),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_reviews(State(st): State<AppState>, Auth(caller): Auth) -> ApiResult<Json<ReviewList>> {
    Ok(Json(ReviewList { reviews: st.vault.list_reviews(&caller).await? }))
}
