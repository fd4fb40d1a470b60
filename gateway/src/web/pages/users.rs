//! Users and roles (management, office).

#[allow(unused_imports)]
use super::*;

struct UserRow {
    id: Uuid,
    name: String,
    username: String,
    role: String,
    role_key: &'static str,
    active: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    c: Chrome,
    notice: Option<String>,
    error: Option<String>,
    /// The new-user field the error is about (`username`, `password`).
    field: &'static str,
    users: Vec<UserRow>,
    roles: Vec<(&'static str, String)>,
    token: String,
    form_username: String,
    form_display_name: String,
    form_role: String,
}

#[derive(Template)]
#[template(path = "user_created.html")]
struct UserCreatedPage {
    c: Chrome,
    intro: String,
    username: String,
    secret: String,
    url: String,
}

/// A refusal of a user change, in the page's language, and the field of
/// the new-user form it is about.
fn user_error(tr: &Tr, e: &ServiceError) -> (String, &'static str) {
    match e.code {
        ErrorCode::WeakPassword => (tr.t("error-weak-password"), "password"),
        ErrorCode::UsernameTaken => (tr.t("error-username-taken"), "username"),
        ErrorCode::InvalidUsername => (tr.t("error-invalid-username"), "username"),
        ErrorCode::LastManager => (tr.t("error-last-manager"), ""),
        _ => (tr.t1("reason-invalid", "detail", &e.message), ""),
    }
}

/// The users page, with a notice or an error (and the new-user form's
/// values, never the password, when that form was refused).
async fn users_page(
    st: &AppState,
    p: &Page,
    status: StatusCode,
    notice: Option<String>,
    error: Option<(String, &'static str)>,
    form: Option<&NewUserForm>,
) -> Response {
    let tr = p.tr;
    let users = match st.vault.list_users(&p.caller).await {
        Ok(u) => u,
        Err(e) => return service_error_page(tr, &e),
    };
    let (error, field) = match error {
        Some((e, f)) => (Some(e), f),
        None => (None, ""),
    };
    let page = UsersPage {
        c: Chrome::new(tr, Some(&p.caller), "/users", "users"),
        notice,
        error,
        field,
        users: users
            .iter()
            .map(|u| UserRow {
                id: u.id,
                name: u.display_name.clone(),
                username: u.username.clone(),
                role: role_name(&tr, u.role),
                role_key: u.role.as_str(),
                active: u.active,
            })
            .collect(),
        roles: Role::ALL.iter().map(|r| (r.as_str(), role_name(&tr, *r))).collect(),
        token: session::csrf_token(&p.token, "users"),
        form_username: form.map(|f| f.username.clone()).unwrap_or_default(),
        form_display_name: form.and_then(|f| f.display_name.clone()).unwrap_or_default(),
        form_role: form.map(|f| f.role.clone()).unwrap_or_default(),
    };
    render(status, &page)
}

pub async fn users(State(st): State<AppState>, p: Page, Query(q): Query<NoticeQuery>) -> Response {
    let notice = (q.n.as_deref() == Some("updated")).then(|| p.tr.t("notice-user-updated"));
    users_page(&st, &p, StatusCode::OK, notice, None, None).await
}

#[derive(Deserialize)]
pub struct NewUserForm {
    csrf: String,
    username: String,
    display_name: Option<String>,
    role: String,
    password: Zeroizing<String>,
}

/// A new user (management, office): the TOTP secret is shown this once.
pub async fn create_user(State(st): State<AppState>, p: Page, Form(f): Form<NewUserForm>) -> Response {
    let tr = p.tr;
    if let Err(refused) = form_token(&p, "users", &f.csrf) {
        return refused;
    }
    let Ok(role) = f.role.parse::<Role>() else {
        let e = ServiceError::new(ErrorCode::InvalidRole, "choose a role");
        return users_page(&st, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some(user_error(&tr, &e)), Some(&f)).await;
    };
    let new = vault::service::NewUser {
        username: f.username.trim().to_string(),
        display_name: f.display_name.clone().filter(|d| !d.trim().is_empty()),
        role,
        password: f.password.clone(),
    };
    match st.vault.create_user(vault::service::By::User(&p.caller), new).await {
        Ok(created) => {
            let page = UserCreatedPage {
                c: Chrome::new(tr, Some(&p.caller), "/users", "users"),
                intro: tr.t1("user-created-intro", "name", &created.display_name),
                username: created.username.clone(),
                secret: created.totp_secret.clone(),
                url: created.otpauth_url.clone(),
            };
            render(StatusCode::CREATED, &page)
        }
        Err(e) if e.code.status() == 403 || e.code.status() >= 500 => service_error_page(tr, &e),
        Err(e) => {
            let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            users_page(&st, &p, status, None, Some(user_error(&tr, &e)), Some(&f)).await
        }
    }
}

#[derive(Deserialize)]
pub struct UserChangeForm {
    csrf: String,
    /// `role`, `deactivate` or `activate`: the button pressed.
    action: String,
    role: Option<String>,
}

/// A role change, or (de)activation, of one user.
pub async fn update_user(
    State(st): State<AppState>,
    p: Page,
    Path(id): Path<String>,
    Form(f): Form<UserChangeForm>,
) -> Response {
    let tr = p.tr;
    let id = match form_target(&p, "users", &f.csrf, &id) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    let patch = match f.action.as_str() {
        "role" => match f.role.as_deref().map(str::parse::<Role>) {
            Some(Ok(r)) => vault::service::UserPatch { role: Some(r), active: None },
            _ => return service_error_page(tr, &ServiceError::new(ErrorCode::InvalidRole, "choose a role")),
        },
        "deactivate" => vault::service::UserPatch { role: None, active: Some(false) },
        "activate" => vault::service::UserPatch { role: None, active: Some(true) },
        _ => return service_error_page(tr, &ServiceError::new(ErrorCode::BadRequest, "unknown action")),
    };
    match st.vault.update_user(&p.caller, id, patch).await {
        Ok(u) => see_other(&format!("/users?n=updated#user-{}", u.id)),
        Err(e) if e.code.status() == 409 || e.code.status() == 422 => {
            let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::CONFLICT);
            users_page(&st, &p, status, None, Some(user_error(&tr, &e)), None).await
        }
        Err(e) => service_error_page(tr, &e),
    }
}
