//! The pages, one module per topic: each handler reads its input, calls the vault's service
//! operations (the same the API calls, with the same caller), and renders
//! a template. No rule of access lives here: what a page offers (purposes,
//! an upload form) is a convenience; the vault decides every action again.

use askama::Template;
use axum::Form;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use uuid::Uuid;
use vault::domain::{ClientStatus, DocumentType, Purpose, Role};
use vault::service::{Caller, Client, Document, ErrorCode, ServiceError, TokenRequest};
use zeroize::Zeroizing;

use super::assets;
use super::i18n::{LANG_COOKIE, Lang, Tr};
use super::session::{self, LOGIN_COOKIE, Page, SESSION_COOKIE};
use crate::api::{AppState, Ctx};
use crate::net::ClientAddr;

/// What every page's frame needs (`base.html`).
pub struct Chrome {
    pub tr: Tr,
    /// "Name (role)", when signed in.
    pub user: Option<String>,
    /// The request's path, for the language switch to come back to.
    pub path: String,
    /// Which menu item is current.
    pub section: &'static str,
    /// Whether the menu offers search (every role but the administration,
    /// which never sees documents).
    pub may_search: bool,
    /// Whether the menu offers users, substitutions and the destruction
    /// list (management, office).
    pub may_manage: bool,
    /// Whether the menu offers the audit log (management).
    pub may_audit: bool,
    pub css: &'static str,
    pub icon: &'static str,
}

impl Chrome {
    fn new(tr: Tr, caller: Option<&Caller>, path: &str, section: &'static str) -> Chrome {
        let user =
            caller.map(|c| tr.t2("signed-in-as", ("name", &c.user.display_name), ("role", &role_name(&tr, c.role()))));
        let may_search = caller.is_some_and(|c| c.role() != Role::Administration);
        Chrome {
            tr,
            user,
            path: path.to_string(),
            section,
            may_search,
            may_manage: caller.is_some_and(|c| matches!(c.role(), Role::Management | Role::Office)),
            may_audit: caller.is_some_and(|c| c.role() == Role::Management),
            css: assets::CSS.url(),
            icon: assets::ICON.url(),
        }
    }
}

/// Render a template as a page: `text/html`, never cached.
fn render<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

mod audit;
mod breaches;
mod clients;
mod retention;
mod search;
mod sign_in;
mod substitutions;
mod users;

pub use audit::*;
pub use breaches::*;
pub use clients::*;
pub use retention::*;
pub use search::*;
pub use sign_in::*;
pub use substitutions::*;
pub use users::*;

use clients::doc_row;

// ---------------------------------------------------------------- messages
#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    c: Chrome,
    heading: &'a str,
    kind: &'a str,
    text: &'a str,
    link: &'a str,
    link_text: &'a str,
}

/// A page that says what went wrong, with a way back.
pub fn error_page(tr: Tr, status: StatusCode, text: &str) -> Response {
    let heading = tr.t("error-title");
    let back = tr.t("back-home");
    let page = MessagePage {
        c: Chrome::new(tr, None, "/", ""),
        heading: &heading,
        kind: "error",
        text,
        link: "/",
        link_text: &back,
    };
    render(status, &page)
}

/// The error of a service operation as a page, in the page's language.
pub fn service_error_page(tr: Tr, e: &ServiceError) -> Response {
    let text = match e.code {
        ErrorCode::NotFound => tr.t("error-not-found"),
        ErrorCode::Forbidden | ErrorCode::AccessRevoked => tr.t("error-forbidden"),
        ErrorCode::Gone | ErrorCode::Erased => tr.t("error-gone"),
        ErrorCode::PurposeNotAllowed | ErrorCode::InvalidPurpose => tr.t("error-purpose"),
        ErrorCode::Restricted => tr.t("error-restricted"),
        ErrorCode::Busy => tr.t("error-busy"),
        code => tr.t1("error-generic", "code", code.as_str()),
    };
    if e.code == ErrorCode::Internal {
        tracing::error!(error = %e.message, "a page met an internal error");
    }
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_page(tr, status, &text)
}

/// A navigation that began on another site arrives without the session
/// cookie (`SameSite=Strict`): a same-site link to the same page brings it.
pub fn continue_page(tr: Tr, path: &str) -> Response {
    let heading = tr.t("continue-title");
    let text = tr.t("continue-intro");
    let go = tr.t("continue");
    let link = if safe_path(path) { path } else { "/" };
    let page = MessagePage {
        c: Chrome::new(tr, None, "/", ""),
        heading: &heading,
        kind: "notice",
        text: &text,
        link,
        link_text: &go,
    };
    render(StatusCode::OK, &page)
}

/// To the sign-in page, with a notice (`expired`, `signed_out`) or none.
pub fn to_login(notice: Option<&str>) -> Response {
    match notice {
        Some(n) => see_other(&format!("/login?n={n}")),
        None => see_other("/login"),
    }
}

// ------------------------------------------------------------------ shared

/// A sensitive form's token checked (the refusal as a page otherwise).
/// The error is the answer itself, returned at once: its size is no cost.
#[allow(clippy::result_large_err)]
fn form_token(p: &Page, form: &str, given: &str) -> Result<(), Response> {
    if session::csrf_ok(&p.token, form, given) {
        Ok(())
    } else {
        Err(error_page(p.tr, StatusCode::FORBIDDEN, &p.tr.t("error-form-token")))
    }
}

/// A sensitive form's token checked and the id in its path parsed (a
/// malformed id is not found, as in the API).
#[allow(clippy::result_large_err)]
fn form_target(p: &Page, form: &str, given: &str, id: &str) -> Result<Uuid, Response> {
    form_token(p, form, given)?;
    id.parse::<Uuid>().map_err(|_| service_error_page(p.tr, &ServiceError::not_found()))
}

/// A value the vault refused (422): a page that says which and why.
fn refused_input(tr: Tr, e: &ServiceError) -> Response {
    error_page(tr, StatusCode::UNPROCESSABLE_ENTITY, &tr.t1("reason-invalid", "detail", &e.message))
}

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

/// "Resultaten 1–20 van 1.234": the count written the Dutch way.
fn search_count(tr: &Tr, first: u32, last: u32, total: u64) -> String {
    tr.t3("search-results", ("from", &first.to_string()), ("to", &last.to_string()), ("total", &tr.number(total)))
}

/// The start of a day on the agency's clock, in UTC.
fn day_start(day: chrono::NaiveDate) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    chrono_tz::Europe::Amsterdam
        .from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// `at` on the agency's clock in `format` (a date or time field's value).
fn format_local(at: chrono::DateTime<chrono::Utc>, format: &str) -> String {
    at.with_timezone(&chrono_tz::Europe::Amsterdam).format(format).to_string()
}

/// Today on the agency's clock (the vault's), `YYYY-MM-DD`.
fn today_local(st: &AppState) -> String {
    format_local(st.vault.now(), "%Y-%m-%d")
}

/// An event's outcome as a person reads it: `denied` is a refusal; an
/// access decided (`allowed`) and a change done (`ok`) both succeeded.
fn outcome_text(tr: &Tr, outcome: &str) -> String {
    match outcome {
        "denied" => tr.t("outcome-denied"),
        "allowed" | "ok" => tr.t("outcome-allowed"),
        other => other.to_string(),
    }
}

/// An audit event's action as a person reads it (the API name when the
/// messages have none for it).
fn action_text(tr: &Tr, action: &str) -> String {
    tr.try_t(&format!("action-{}", action.replace('.', "-"))).unwrap_or_else(|| tr.t1("action-other", "action", action))
}

/// A role's name, from its API name as the audit log records it.
fn role_text(tr: &Tr, role: &str) -> String {
    tr.t(&format!("role-{role}"))
}

fn role_name(tr: &Tr, r: Role) -> String {
    role_text(tr, r.as_str())
}

/// A path of this site to send the browser back to: a leading `/`, not
/// `//`, and nothing but the characters of a plain path and query (a tab
/// or a backslash could make it another host).
fn safe_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && path.bytes().all(|c| c.is_ascii_alphanumeric() || b"/-_.?=&%#".contains(&c))
}

#[derive(Deserialize)]
pub struct TokenForm {
    csrf: String,
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    n: Option<String>,
}

/// A `datetime-local` value (`2026-12-07T14:05`) on the agency's clock.
fn local_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    let t = chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M").ok()?;
    chrono_tz::Europe::Amsterdam.from_local_datetime(&t).earliest().map(|t| t.with_timezone(&chrono::Utc))
}
