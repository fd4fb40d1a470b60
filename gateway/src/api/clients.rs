//! Clients: create, list, read, reveal the BSN, assign a coach, close the
//! trajectory (`vault::service::clients`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::service::{Client, ClientQuery, CloseTrajectory, NewClient, ReopenTrajectory, RevealedBsn, SetCoach};

use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Auth, ErrorBody};

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientList {
    pub clients: Vec<Client>,
}

#[utoipa::path(post, path = "/api/v1/clients", tag = "clients", request_body = NewClient,
    responses(
        (status = 201, description = "created; the BSN is returned masked", body = Client),
        (status = 403, description = "`forbidden`", body = ErrorBody),
        (status = 422, description = "`invalid_bsn` (fails the eleven-test), `invalid_field` (length, characters, birth date before 1900 or after today, e-mail shape)", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<NewClient>,
) -> ApiResult<(StatusCode, Json<Client>)> {
    Ok((StatusCode::CREATED, Json(st.vault.create_client(&caller, body).await?)))
}

#[utoipa::path(get, path = "/api/v1/clients", tag = "clients", params(ClientQuery),
    responses((status = 200, description = "the clients you may see, by name", body = ClientList)),
    security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<ClientQuery>,
) -> ApiResult<Json<ClientList>> {
    Ok(Json(ClientList { clients: st.vault.list_clients(&caller, q.status).await? }))
}

#[utoipa::path(get, path = "/api/v1/clients/{id}", tag = "clients", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the client", body = Client),
              (status = 404, description = "`not_found`: no such client, or outside your scope", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Client>> {
    Ok(Json(st.vault.get_client(&caller, id).await?))
}

#[utoipa::path(get, path = "/api/v1/clients/{id}/bsn", tag = "clients", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the BSN (audited)", body = RevealedBsn),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reveal_bsn(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<RevealedBsn>> {
    Ok(Json(st.vault.reveal_bsn(&caller, id).await?))
}

#[utoipa::path(put, path = "/api/v1/clients/{id}/coach", tag = "clients", params(("id" = Uuid, Path)),
    request_body = SetCoach,
    responses((status = 200, description = "the client", body = Client),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody),
              (status = 422, description = "`not_a_coach`: coach_id must name an active coach or freelance coach", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn assign_coach(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<SetCoach>,
) -> ApiResult<Json<Client>> {
    Ok(Json(st.vault.assign_coach(&caller, id, body).await?))
}

#[utoipa::path(post, path = "/api/v1/clients/{id}/close", tag = "clients", params(("id" = Uuid, Path)),
    request_body(content = Option<CloseTrajectory>, description = "optional; an empty body means now"),
    responses((status = 200, description = "the client, now closed", body = Client),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody),
              (status = 409, description = "`already_closed`", body = ErrorBody),
              (status = 422, description = "`invalid_field`: ended_at lies in the future", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn close(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    body: super::OptionalJson<CloseTrajectory>,
) -> ApiResult<Json<Client>> {
    Ok(Json(st.vault.close_trajectory(&caller, id, body.0.unwrap_or_default()).await?))
}

#[utoipa::path(post, path = "/api/v1/clients/{id}/reopen", tag = "clients", params(("id" = Uuid, Path)),
    request_body = ReopenTrajectory,
    responses((status = 200, description = "the client, active again; the destruction dates that counted from \
                 the trajectory's end are cleared (manual dates stay)", body = Client),
              (status = 403, description = "`forbidden`", body = ErrorBody),
              (status = 404, description = "`not_found`", body = ErrorBody),
              (status = 409, description = "`not_closed`", body = ErrorBody),
              (status = 422, description = "`reason_required`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reopen(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<ReopenTrajectory>,
) -> ApiResult<Json<Client>> {
    Ok(Json(st.vault.reopen_trajectory(&caller, id, body).await?))
}
