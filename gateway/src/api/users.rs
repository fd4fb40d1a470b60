//! Users: create, list, change role or active flag (`vault::service::users`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::service::{By, CreatedUser, NewUser, User, UserPatch};

use super::{ApiJson, ApiPath, ApiResult, AppState, Auth, ErrorBody};

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses(
        (status = 201, description = "created; the TOTP secret is shown this once", body = CreatedUser),
        (status = 403, description = "`forbidden`: not your role, or the management role from office", body = ErrorBody),
        (status = 409, description = "`username_taken`", body = ErrorBody),
        (status = 422, description = "`weak_password` (under 12 characters), `invalid_username`, `invalid_field`", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    Ok((StatusCode::CREATED, Json(st.vault.create_user(By::User(&caller), body).await?)))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, description = "every user", body = UserList),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(State(st): State<AppState>, Auth(caller): Auth) -> ApiResult<Json<UserList>> {
    Ok(Json(UserList { users: st.vault.list_users(&caller).await? }))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserPatch,
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "the updated user", body = User),
        (status = 403, description = "`forbidden`: your own account, or the management role from office", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
        (status = 409, description = "`last_manager`: the last active manager stays", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn update(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<UserPatch>,
) -> ApiResult<Json<User>> {
    Ok(Json(st.vault.update_user(&caller, id, body).await?))
}
