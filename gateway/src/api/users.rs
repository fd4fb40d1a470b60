//! Users: `POST/GET /api/v1/users`, `PATCH /api/v1/users/{id}`, and the
//! account creation shared with `kluis user add`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::Vault;
use vault::catalog::{CatalogError, NewUserRow, UserRow};
use vault::domain::Role;
use vault::policy::Action;

use super::{ApiError, ApiJson, ApiResult, AppState, Caller, event, parse_id, parse_role, rfc3339};
use crate::auth;

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewUser {
    pub username: String,
    pub display_name: Option<String>,
    pub role: String,
    pub password: String,
}

/// The answer to creating a user: the TOTP secret is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedUser {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub totp_secret: String,
    pub otpauth_url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub active: bool,
    pub created_at: String,
}

impl From<&UserRow> for UserView {
    fn from(u: &UserRow) -> Self {
        UserView {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role.as_str().into(),
            active: u.active,
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct UserPatch {
    pub role: Option<String>,
    pub active: Option<bool>,
}

fn valid_username(u: &str) -> bool {
    (1..=64).contains(&u.len())
        && u.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// Create a user with a fresh TOTP secret. Used by the API and the CLI.
pub async fn create_user(vault: &Vault, new: NewUser) -> ApiResult<CreatedUser> {
    let username = new.username.trim().to_string();
    if !valid_username(&username) {
        return Err(ApiError::unprocessable(
            "invalid_username",
            "a username is 1-64 characters: lowercase letters, digits, . _ - @",
        ));
    }
    let role = parse_role(&new.role)?;
    if new.password.chars().count() < auth::MIN_PASSWORD_LEN {
        return Err(ApiError::unprocessable(
            "weak_password",
            format!("a password has at least {} characters", auth::MIN_PASSWORD_LEN),
        ));
    }
    let display_name = new.display_name.map(|d| d.trim().to_string()).filter(|d| !d.is_empty());
    let display_name = display_name.unwrap_or_else(|| username.clone());
    let password = zeroize::Zeroizing::new(new.password);
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let id = Uuid::new_v4();
    let secret = auth::new_totp_secret();
    let (b32, url) = auth::totp_enrolment(&secret, &username).map_err(ApiError::internal)?;
    let sealed = vault.seal_field("totp", id, &secret)?;
    let row = NewUserRow {
        id,
        username: username.clone(),
        display_name: display_name.clone(),
        role,
        password_hash: hash,
        totp_secret: sealed,
    };
    match vault.catalog.insert_user(&row).await {
        Err(CatalogError::Conflict(_)) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "username_taken", "that username is taken"));
        }
        r => r?,
    }
    Ok(CreatedUser { id, username, display_name, role: role.as_str().into(), totp_secret: b32, otpauth_url: url })
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = CreatedUser), (status = 409, description = "username taken"), (status = 422, description = "weak password or invalid field")),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<CreatedUser>)> {
    st.authorize(&caller, Action::ManageUsers, None, None, "user.create").await?;
    let role = parse_role(&body.role)?;
    st.check_user_change(&caller, None, Some(role), false, "user.create").await?;
    let created = create_user(&st.vault, body).await?;
    let mut e = event(Some(&caller), "user.create", "ok");
    e.details = json!({ "user_id": created.id, "role": created.role });
    st.audit(e).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, description = "{\"users\": [UserView]}")), security(("bearer" = [])))]
pub async fn list(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<serde_json::Value>> {
    st.authorize(&caller, Action::ManageUsers, None, None, "user.list").await?;
    let users: Vec<UserView> = st.vault.catalog.list_users().await?.iter().map(UserView::from).collect();
    Ok(Json(json!({ "users": users })))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 404, description = "no such user")), security(("bearer" = [])))]
pub async fn patch(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserPatch>,
) -> ApiResult<Json<UserView>> {
    st.authorize(&caller, Action::ManageUsers, None, None, "user.update").await?;
    let id = parse_id(&id)?;
    let before = st.vault.catalog.user(id).await?;
    let role: Option<Role> = body.role.as_deref().map(parse_role).transpose()?.filter(|r| *r != before.role);
    let deactivate = body.active == Some(false) && before.active;
    st.check_user_change(&caller, Some((before.id, before.role)), role, deactivate, "user.update").await?;
    // The last active manager stays: someone must hold the keys to the audit log.
    if before.role == Role::Management && before.active && (deactivate || role.is_some()) {
        let managers =
            st.vault.catalog.list_users().await?.iter().filter(|u| u.role == Role::Management && u.active).count();
        if managers <= 1 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "last_manager",
                "the last active management user cannot be demoted or deactivated",
            ));
        }
    }
    let now = chrono::Utc::now().timestamp_micros();
    if let Some(r) = role {
        st.vault.catalog.set_user_role(id, r).await?;
        // A new role means new rights: start over with a fresh login.
        st.vault.catalog.delete_sessions_of(id).await?;
    }
    let mut voided = 0;
    if let Some(active) = body.active.filter(|a| *a != before.active) {
        st.vault.catalog.set_user_active(id, active).await?;
        if !active {
            st.vault.catalog.delete_sessions_of(id).await?;
            voided = st.vault.catalog.void_tokens_of(id, now).await?;
        }
    }
    let after = st.vault.catalog.user(id).await?;
    let mut e = event(Some(&caller), "user.update", "ok");
    e.details = json!({
        "user_id": id,
        "role": { "from": before.role.as_str(), "to": after.role.as_str() },
        "active": { "from": before.active, "to": after.active },
        "voided_download_tokens": voided,
    });
    st.audit(e).await?;
    Ok(Json(UserView::from(&after)))
}

impl AppState {
    /// The policy's word on a user change; denials are audited.
    async fn check_user_change(
        &self,
        caller: &Caller,
        target: Option<(Uuid, Role)>,
        new_role: Option<Role>,
        deactivate: bool,
        audit_action: &str,
    ) -> ApiResult<()> {
        let d = vault::policy::may_manage_user(caller.actor(), target, new_role, deactivate);
        if !d.is_allowed() {
            let mut e = event(Some(caller), audit_action, "denied");
            e.reason = Some(d.reason().into());
            e.details = json!({ "user_id": target.map(|t| t.0), "new_role": new_role.map(|r| r.as_str()) });
            self.audit(e).await?;
            return Err(super::denied(&d));
        }
        Ok(())
    }
}
