//! Two-step login: `POST /api/v1/session` (password and TOTP code),
//! `DELETE /api/v1/session`, `GET /api/v1/me`.
//!
//! Lock-out: the 5th failure in a row locks the account for 15 minutes;
//! while locked every attempt answers 429, also with the right credentials.
//! A TOTP time step is accepted once (atomically, in the catalog). Each
//! client address gets `KLUIS_LOGIN_RATE_PER_MINUTE` attempts per minute.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use vault::catalog::SessionRow;

use super::users::UserView;
use super::{ApiError, ApiJson, ApiResult, AppState, Caller, RequestId, event, rfc3339};
use crate::auth;

pub const LOCK_THRESHOLD: i64 = 5;
pub const LOCK_MINUTES: i64 = 15;

#[derive(Debug, Deserialize, ToSchema)]
pub struct Login {
    pub username: String,
    pub password: String,
    pub otp: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionUser {
    pub id: uuid::Uuid,
    pub username: String,
    pub display_name: String,
    pub role: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewSession {
    pub token: String,
    pub expires_at: String,
    pub user: SessionUser,
}

fn invalid() -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "invalid_credentials", "wrong username, password or code")
}

fn locked() -> ApiError {
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many failed attempts; try again in {LOCK_MINUTES} minutes"),
    )
}

#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = Login,
    responses((status = 200, body = NewSession), (status = 401, description = "invalid_credentials"),
              (status = 429, description = "too_many_attempts (account locked or address rate-limited)")))]
pub async fn login(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request_id: RequestId,
    ApiJson(body): ApiJson<Login>,
) -> ApiResult<Json<NewSession>> {
    let audit = |outcome: &str, reason: &str, user: Option<&vault::catalog::UserRow>| {
        let mut e = event(None, "session.login", outcome);
        e.reason = Some(reason.into());
        e.request_id = request_id.0.clone();
        if let Some(u) = user {
            e.actor_id = Some(u.id);
            e.actor_role = Some(u.role.as_str().into());
        }
        e.details = json!({ "peer": peer.ip().to_string() });
        e
    };
    if st.login_limiter.check_key(&peer.ip()).is_err() {
        // Counted, not audited: a flood must not be able to flood the chain.
        metrics::counter!("kluis_login_rate_limited_total").increment(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many login attempts from this address; slow down",
        ));
    }
    let now = Utc::now();
    let user = st.vault.catalog.user_by_username(body.username.trim()).await?;
    let Some(user) = user.filter(|u| u.active) else {
        // Spend the same time as a real check, then refuse.
        let pw = body.password.clone();
        let _ = tokio::task::spawn_blocking(move || auth::verify_password(&pw, auth::dummy_hash())).await;
        st.audit(audit("denied", "unknown or inactive user", None)).await?;
        return Err(invalid());
    };
    if user.locked_until.is_some_and(|t| t > now.timestamp_micros()) {
        st.audit(audit("denied", "account locked", Some(&user))).await?;
        return Err(locked());
    }
    let pw = zeroize::Zeroizing::new(body.password);
    let phc = user.password_hash.clone();
    let password_ok =
        tokio::task::spawn_blocking(move || auth::verify_password(&pw, &phc)).await.map_err(ApiError::internal)?;
    let secret = st.vault.open_field("totp", user.id, &user.totp_secret)?;
    let step = auth::check_totp(&secret, &body.otp, now.timestamp().max(0) as u64);
    let accepted = match (password_ok, step) {
        (true, Some(step)) => {
            st.vault.catalog.record_login_success(user.id, Utc::now().timestamp_micros(), step as i64).await?
        }
        _ => false,
    };
    if !accepted {
        // A right password and code refused here lost a race with a lock.
        if password_ok && step.is_some() {
            let fresh = st.vault.catalog.user(user.id).await?;
            if fresh.locked_until.is_some_and(|t| t > Utc::now().timestamp_micros()) {
                st.audit(audit("denied", "account locked", Some(&user))).await?;
                return Err(locked());
            }
        }
        let lock_until = (now + chrono::Duration::minutes(LOCK_MINUTES)).timestamp_micros();
        let failures =
            st.vault.catalog.record_login_failure(user.id, now.timestamp_micros(), LOCK_THRESHOLD, lock_until).await?;
        let reason = match (password_ok, step) {
            (false, _) => "wrong password",
            (true, None) => "wrong code",
            (true, Some(_)) => "code already used",
        };
        let mut e = audit("denied", reason, Some(&user));
        e.details["failures_in_a_row"] = failures.into();
        st.audit(e).await?;
        return Err(invalid());
    }
    let token = auth::new_token();
    let n = now.timestamp_micros();
    let expires_at = n + st.settings.session_absolute.as_micros() as i64;
    st.vault
        .catalog
        .insert_session(&SessionRow {
            token_hash: auth::token_hash(&token),
            user_id: user.id,
            created_at: n,
            last_seen_at: n,
            expires_at,
        })
        .await?;
    st.audit(audit("allowed", "password and code", Some(&user))).await?;
    Ok(Json(NewSession {
        token,
        expires_at: rfc3339(expires_at),
        user: SessionUser {
            id: user.id,
            username: user.username,
            display_name: user.display_name,
            role: user.role.as_str().into(),
        },
    }))
}

#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "logged out")), security(("bearer" = [])))]
pub async fn logout(State(st): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    st.vault.catalog.delete_session(&caller.session_hash).await?;
    st.audit(event(Some(&caller), "session.logout", "ok")).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/me", tag = "session",
    responses((status = 200, body = UserView)), security(("bearer" = [])))]
pub async fn me(caller: Caller) -> Json<UserView> {
    Json(UserView::from(&caller.user))
}
