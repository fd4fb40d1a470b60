//! Signing in (two pages), out, and the language switch.

#[allow(unused_imports)]
use super::*;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Template)]
#[template(path = "code.html")]
struct CodePage {
    c: Chrome,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    /// An error of the last attempt: `credentials`, `locked`, `busy`, `step`.
    e: Option<String>,
    /// A notice: `signed_out`, `expired`.
    n: Option<String>,
}

pub async fn login_form(headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let tr = Tr::new(Lang::of(&headers));
    let error = q.e.as_deref().and_then(|e| match e {
        "credentials" => Some(tr.t("error-credentials")),
        "locked" => Some(tr.t("error-locked")),
        "busy" => Some(tr.t("error-busy")),
        "step" => Some(tr.t("error-step-expired")),
        _ => None,
    });
    let notice = q.n.as_deref().and_then(|n| match n {
        "signed_out" => Some(tr.t("notice-signed-out")),
        "expired" => Some(tr.t("notice-expired")),
        _ => None,
    });
    render(StatusCode::OK, &LoginPage { c: Chrome::new(tr, None, "/login", ""), error, notice })
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: Zeroizing<String>,
}

/// The first step: nothing is checked yet (both answers are checked
/// together after the code, so neither page tells which was wrong); the
/// name and password go sealed into a short-lived cookie.
pub async fn login_submit(
    State(st): State<AppState>,
    ClientAddr(ip): ClientAddr,
    Form(f): Form<LoginForm>,
) -> Response {
    // Each first step writes a row: the per-address login limit applies.
    if st.login_limiter.check_key(&crate::net::limit_key(ip)).is_err() {
        metrics::counter!("kluis_login_rate_limited_total").increment(1);
        return see_other("/login?e=locked");
    }
    match st.vault.begin_login(f.username.trim(), f.password).await {
        Ok(step) => {
            let mut r = see_other("/login/code");
            r.headers_mut().append(
                header::SET_COOKIE,
                session::set_cookie(LOGIN_COOKIE, &step, Some(vault::service::LOGIN_STEP_SECONDS)),
            );
            r
        }
        Err(e) if e.code == ErrorCode::Busy => see_other("/login?e=busy"),
        Err(_) => see_other("/login?e=credentials"),
    }
}

pub async fn code_form(headers: HeaderMap) -> Response {
    if session::cookie(&headers, LOGIN_COOKIE).is_none() {
        return see_other("/login");
    }
    let tr = Tr::new(Lang::of(&headers));
    render(StatusCode::OK, &CodePage { c: Chrome::new(tr, None, "/login/code", "") })
}

#[derive(Deserialize)]
pub struct CodeForm {
    otp: String,
}

/// The second step: the vault's login with the sealed first step and the
/// code (its lock-out, each code once, the audit event). The first step's
/// cookie goes either way; on success a new session cookie is set.
pub async fn code_submit(
    State(st): State<AppState>,
    ClientAddr(ip): ClientAddr,
    Ctx(ctx): Ctx,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    let Some(step) = session::cookie(&headers, LOGIN_COOKIE) else { return see_other("/login?e=step") };
    if st.login_limiter.check_key(&crate::net::limit_key(ip)).is_err() {
        metrics::counter!("kluis_login_rate_limited_total").increment(1);
        return see_other("/login?e=locked");
    }
    let otp: String = f.otp.chars().filter(|c| !c.is_whitespace()).collect();
    let result = st.vault.finish_login(&step, otp, &ctx).await;
    let mut r = match result {
        Ok(s) => {
            // A session this browser held before ends with the new one.
            if let Some(old) = session::cookie(&headers, SESSION_COOKIE)
                && let Ok(caller) = st.vault.authenticate(&old, ctx.clone()).await
                && let Err(e) = st.vault.logout(&caller).await
            {
                tracing::warn!(error = %e, "could not end the session a new sign-in replaces");
            }
            let mut r = see_other("/");
            r.headers_mut().append(header::SET_COOKIE, session::set_cookie(SESSION_COOKIE, &s.token, None));
            r
        }
        Err(e) if e.code == ErrorCode::TooManyAttempts => see_other("/login?e=locked"),
        Err(e) if e.code == ErrorCode::Busy => see_other("/login?e=busy"),
        Err(e) if e.code == ErrorCode::LoginStepExpired => see_other("/login?e=step"),
        Err(_) => see_other("/login?e=credentials"),
    };
    r.headers_mut().append(header::SET_COOKIE, session::clear_cookie(LOGIN_COOKIE));
    r
}

pub async fn logout(State(st): State<AppState>, page: Result<Page, Response>) -> Response {
    if let Ok(p) = page
        && let Err(e) = st.vault.logout(&p.caller).await
    {
        return service_error_page(p.tr, &e);
    }
    let mut r = to_login(Some("signed_out"));
    r.headers_mut().append(header::SET_COOKIE, session::clear_cookie(SESSION_COOKIE));
    r
}

#[derive(Deserialize)]
pub struct LanguageForm {
    lang: String,
    back: Option<String>,
}

/// The language switch: a cookie for a year (this browser, also before
/// signing in) and, when signed in, the user's own choice (every browser
/// they sign in on), then back to the page.
pub async fn set_language(
    State(st): State<AppState>,
    page: Result<Page, Response>,
    Form(f): Form<LanguageForm>,
) -> Response {
    let lang = Lang::parse(&f.lang).unwrap_or(Lang::Nl);
    if let Ok(p) = page
        && let Err(e) = st.vault.set_language(&p.caller, Some(lang.language())).await
    {
        return service_error_page(p.tr, &e);
    }
    let back = f.back.filter(|b| safe_path(b));
    let mut r = see_other(back.as_deref().unwrap_or("/"));
    let cookie = format!("{LANG_COOKIE}={}; Path=/; Secure; SameSite=Lax; Max-Age=31536000", lang.code());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Template)]
#[template(path = "accessibility.html")]
struct AccessibilityPage {
    c: Chrome,
}

/// The accessibility statement (public, like the sign-in page).
pub async fn accessibility(headers: HeaderMap) -> Response {
    let tr = Tr::new(Lang::of(&headers));
    render(StatusCode::OK, &AccessibilityPage { c: Chrome::new(tr, None, "/toegankelijkheid", "") })
}
