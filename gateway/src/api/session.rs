//! Two-step login, logout, the current user. The rules live in the vault
//! (`vault::service::sessions`); here: the per-address rate limit, which
//! belongs to the transport.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use vault::service::{ErrorCode, LoginRequest, NewSession, User};

use super::{ApiError, ApiJson, ApiResult, AppState, Auth, Ctx, ErrorBody};
use crate::net::ClientAddr;

#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = LoginRequest,
    responses(
        (status = 200, description = "logged in", body = NewSession),
        (status = 401, description = "`invalid_credentials`: wrong username, password or code", body = ErrorBody),
        (status = 429, description = "`too_many_attempts`: the name is locked, or this address tries too often", body = ErrorBody),
        (status = 503, description = "`busy`: too many password checks at once; retry", body = ErrorBody),
    ))]
pub async fn login(
    State(st): State<AppState>,
    ClientAddr(ip): ClientAddr,
    Ctx(ctx): Ctx,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<NewSession>> {
    if st.login_limiter.check_key(&crate::net::limit_key(ip)).is_err() {
        // Counted, not audited: a flood must not be able to flood the chain.
        metrics::counter!("kluis_login_rate_limited_total").increment(1);
        return Err(ApiError::new(ErrorCode::TooManyAttempts, "too many login attempts from this address; slow down"));
    }
    Ok(Json(st.vault.login(body, &ctx).await?))
}

#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "logged out; the token no longer works")), security(("bearer" = [])))]
pub async fn logout(State(st): State<AppState>, Auth(caller): Auth) -> ApiResult<StatusCode> {
    st.vault.logout(&caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/me", tag = "session",
    responses((status = 200, description = "the signed-in user", body = User)), security(("bearer" = [])))]
pub async fn me(Auth(caller): Auth) -> Json<User> {
    Json(caller.user)
}
