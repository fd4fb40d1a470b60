//! The pages: each handler reads its input, calls the vault's service
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
        let user = caller.map(|c| {
            tr.t2(
                "signed-in-as",
                ("name", &c.user.display_name),
                ("role", &tr.t(&format!("role-{}", c.role().as_str()))),
            )
        });
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
    let link = if path.starts_with('/') && !path.starts_with("//") { path } else { "/" };
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

// ----------------------------------------------------------------- sign-in

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    c: Chrome,
    error: Option<String>,
    notice: Option<String>,
    username: String,
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
    render(
        StatusCode::OK,
        &LoginPage { c: Chrome::new(tr, None, "/login", ""), error, notice, username: String::new() },
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: Zeroizing<String>,
}

/// The first step: nothing is checked yet (both answers are checked
/// together after the code, so neither page tells which was wrong); the
/// name and password go sealed into a short-lived cookie.
pub async fn login_submit(State(st): State<AppState>, Form(f): Form<LoginForm>) -> Response {
    match st.vault.begin_login(f.username.trim(), f.password) {
        Ok(step) => {
            let mut r = see_other("/login/code");
            r.headers_mut().append(
                header::SET_COOKIE,
                session::set_cookie(LOGIN_COOKIE, &step, Some(vault::service::LOGIN_STEP_SECONDS)),
            );
            r
        }
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
            let mut r = see_other("/");
            r.headers_mut().append(header::SET_COOKIE, session::set_cookie(SESSION_COOKIE, &s.token, None));
            r
        }
        Err(e) if e.code == ErrorCode::TooManyAttempts => see_other("/login?e=locked"),
        Err(e) if e.code == ErrorCode::Busy => see_other("/login?e=busy"),
        Err(e) if e.message.contains("too long") => see_other("/login?e=step"),
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

/// The language switch: a cookie for a year, then back to the page.
pub async fn set_language(Form(f): Form<LanguageForm>) -> Response {
    let lang = Lang::parse(&f.lang).unwrap_or(Lang::Nl);
    let back = f.back.filter(|b| b.starts_with('/') && !b.starts_with("//") && !b.contains('\\'));
    let mut r = see_other(back.as_deref().unwrap_or("/"));
    let cookie = format!("{LANG_COOKIE}={}; Path=/; Secure; SameSite=Lax; Max-Age=31536000", lang.code());
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

// ----------------------------------------------------------------- clients

struct ClientRow {
    id: Uuid,
    name: String,
    birth_date: String,
    commissioner: String,
    status: String,
    /// Reached through a substitution, not the caller's own caseload.
    substitution: bool,
}

#[derive(Template)]
#[template(path = "clients.html")]
struct ClientsPage {
    c: Chrome,
    heading: String,
    intro: String,
    rows: Vec<ClientRow>,
    show_coverage: bool,
    /// Running trajectories and the archive as two tabs (staff).
    tabs: bool,
    archive: bool,
    /// The name filter as given.
    name: String,
    /// "Resultaten 1–50 van 20.000".
    count: String,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct HomeQuery {
    /// `closed`: the archive.
    status: Option<String>,
    /// The start of a last name.
    name: Option<String>,
    page: Option<u32>,
}

/// Clients per page of the lists.
const CLIENTS_PER_PAGE: u32 = 50;

fn client_name(c: &Client) -> String {
    format!("{}, {}", c.last_name, c.initials)
}

fn status_text(tr: &Tr, s: ClientStatus) -> String {
    match s {
        ClientStatus::Active => tr.t("status-active"),
        ClientStatus::Closed => tr.t("status-closed"),
    }
}

/// Home: a coach's caseload (own clients and those of colleagues they
/// cover for, marked); for the office roles the running trajectories.
pub async fn home(State(st): State<AppState>, p: Page, Query(q): Query<HomeQuery>) -> Response {
    let tr = p.tr;
    let coach = p.caller.role().is_coach();
    let archive = !coach && q.status.as_deref() == Some("closed");
    let status = if archive { ClientStatus::Closed } else { ClientStatus::Active };
    let page_no = q.page.unwrap_or(1).clamp(1, 100_000);
    let name = nonempty(&q.name);
    let query = vault::service::ClientPageQuery {
        status: Some(status),
        name: name.clone(),
        limit: i64::from(CLIENTS_PER_PAGE),
        offset: i64::from((page_no - 1) * CLIENTS_PER_PAGE),
    };
    let found = match st.vault.list_clients_page(&p.caller, query).await {
        Ok(c) => c,
        Err(e) => return service_error_page(tr, &e),
    };
    let clients = found.clients;
    let link = |page: u32| {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if archive {
            s.append_pair("status", "closed");
        }
        if let Some(n) = &name {
            s.append_pair("name", n);
        }
        s.append_pair("page", &page.to_string());
        format!("/?{}", s.finish())
    };
    let shown_to = (page_no - 1) * CLIENTS_PER_PAGE + clients.len() as u32;
    let prev = (page_no > 1).then(|| link(page_no - 1));
    let next = (i64::from(shown_to) < found.total).then(|| link(page_no + 1));
    let count = if clients.is_empty() {
        String::new()
    } else {
        search_count(&tr, (page_no - 1) * CLIENTS_PER_PAGE + 1, shown_to, found.total.max(0) as u64)
    };
    let rows = clients
        .iter()
        .map(|c| ClientRow {
            id: c.id,
            name: client_name(c),
            birth_date: c.birth_date.map(|d| tr.date(d)).unwrap_or_default(),
            commissioner: tr.t(&format!("commissioner-{}", c.commissioner.as_str())),
            status: status_text(&tr, c.status),
            substitution: coach && c.coach_id != Some(p.caller.id()),
        })
        .collect();
    let (heading, intro) = if coach {
        (tr.t("caseload-title"), tr.t("caseload-intro"))
    } else if archive {
        (tr.t("archive-title"), tr.t("archive-intro"))
    } else {
        (tr.t("clients-title"), tr.t("clients-intro"))
    };
    let path = if archive { "/?status=closed" } else { "/" };
    render(
        StatusCode::OK,
        &ClientsPage {
            c: Chrome::new(tr, Some(&p.caller), path, "home"),
            heading,
            intro,
            rows,
            show_coverage: coach,
            tabs: !coach,
            archive,
            name: name.unwrap_or_default(),
            count,
            prev,
            next,
        },
    )
}

struct DocRow {
    id: Uuid,
    title: String,
    filename: String,
    show_filename: bool,
    doc_type: String,
    uploaded: String,
    size: String,
    destroy: String,
    held: bool,
    hold_reason: Option<String>,
}

/// One line of a client's access log.
struct LogRow {
    when: String,
    who: String,
    what: String,
    purpose: String,
    outcome: String,
}

/// One file's outcome, shown in the results list.
pub struct UploadResult {
    filename: String,
    ok: bool,
    message: String,
}

#[derive(Template)]
#[template(path = "client.html")]
struct ClientPage {
    c: Chrome,
    notice: Option<String>,
    id: Uuid,
    name: String,
    birth_date: String,
    commissioner: String,
    status: String,
    restricted: bool,
    closed: bool,
    docs: Vec<DocRow>,
    /// "Resultaten 26–50 van 300" when the documents take several pages.
    docs_count: String,
    docs_prev: Option<String>,
    docs_next: Option<String>,
    /// (API name, label) of the purposes this caller may name here.
    purposes: Vec<(&'static str, String)>,
    can_upload: bool,
    upload_intro: String,
    types: Vec<(&'static str, String)>,
    results: Vec<UploadResult>,
    summary: String,
    refused_prefix: String,
    summary_template: String,
    upload_js: &'static str,
    /// Management: a legal-hold form per document.
    may_hold: bool,
    hold_token: String,
    /// Management and office: the dossier's export.
    may_export: bool,
    export_token: String,
    /// Management and office: the newest entries of the access log.
    access_log: Option<Vec<LogRow>>,
    access_log_intro: String,
    /// Management and office: the coach and the restriction can change.
    may_manage: bool,
    bsn_masked: String,
    /// The full BSN, once, right after a reveal (audited by the vault).
    bsn_revealed: Option<String>,
    /// Management, office and administration may reveal the BSN.
    may_reveal: bool,
    /// Today on the agency's clock (the default end of a trajectory).
    today: String,
    client_token: String,
    coach_name: String,
    coaches: Vec<(Uuid, String, bool)>,
}

fn doc_row(tr: &Tr, d: &Document) -> DocRow {
    let filename = d.filename.clone().unwrap_or_default();
    let title = d.title.clone().filter(|t| !t.is_empty()).unwrap_or_else(|| filename.clone());
    let destroy = match (d.retention_until, d.retention_waits_for) {
        (Some(t), _) => tr.day(t),
        (None, Some(_)) => tr.t("destroy-waits"),
        (None, None) => "–".into(),
    };
    DocRow {
        id: d.id,
        show_filename: title != filename,
        title,
        filename,
        doc_type: tr.t(&format!("type-{}", d.doc_type.as_str())),
        uploaded: tr.time(d.uploaded_at),
        size: d.size.map(|s| tr.size(s)).unwrap_or_default(),
        destroy,
        held: d.legal_hold,
        hold_reason: d.legal_hold_reason.clone(),
    }
}

fn max_upload(st: &AppState, tr: &Tr) -> String {
    tr.size(st.settings.max_upload_bytes as i64)
}

fn log_row(tr: &Tr, e: &vault::service::AccessEntry) -> LogRow {
    let key = format!("action-{}", e.action.replace('.', "-"));
    let what = match fluent_key(tr, &key) {
        Some(t) => t,
        None => tr.t1("action-other", "action", &e.action),
    };
    let who = match (&e.actor_name, &e.actor_role) {
        (Some(n), Some(r)) => format!("{n} ({})", tr.t(&format!("role-{r}"))),
        (Some(n), None) => n.clone(),
        _ => "–".into(),
    };
    LogRow {
        when: tr.time(e.at),
        who,
        what,
        purpose: e.purpose.as_deref().map(|p| tr.t(&format!("purpose-{p}"))).unwrap_or_default(),
        outcome: outcome_text(tr, &e.outcome),
    }
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

/// The message `key` if there is one.
fn fluent_key(tr: &Tr, key: &str) -> Option<String> {
    tr.try_t(key)
}

async fn client_page(
    st: &AppState,
    p: &Page,
    id: Uuid,
    results: Vec<UploadResult>,
    notice: Option<String>,
    page_no: u32,
    bsn_revealed: Option<String>,
) -> Response {
    let tr = p.tr;
    let client = match st.vault.get_client(&p.caller, id).await {
        Ok(c) => c,
        Err(e) => return service_error_page(tr, &e),
    };
    // Roles that may see a client's data but not its documents (the
    // administration) get the page without them.
    let docs = match st.vault.list_documents(&p.caller, id).await {
        Ok(d) => d,
        Err(e) if e.code == ErrorCode::Forbidden => Vec::new(),
        Err(e) => return service_error_page(tr, &e),
    };
    let pages = (docs.len() as u32).div_ceil(DOCS_PER_PAGE).max(1);
    let page_no = page_no.clamp(1, pages);
    let first_doc = (page_no - 1) * DOCS_PER_PAGE;
    let page_docs: Vec<&Document> = docs.iter().skip(first_doc as usize).take(DOCS_PER_PAGE as usize).collect();
    let role = p.caller.role();
    let purposes = if client.restricted && role != Role::Management {
        Vec::new()
    } else {
        vault::policy::purposes_for(role, client.status)
            .iter()
            .filter(|p| !client.restricted || **p == Purpose::Availability)
            .map(|p| (p.as_str(), tr.t(&format!("purpose-{}", p.as_str()))))
            .collect()
    };
    let can_upload = client.status == ClientStatus::Active && role != Role::Administration;
    let staff = matches!(role, Role::Management | Role::Office);
    let access_log = if staff {
        match st.vault.access_log(&p.caller, id).await {
            Ok(log) => Some(log.entries.iter().rev().map(|e| log_row(&tr, e)).collect::<Vec<_>>()),
            Err(e) => return service_error_page(tr, &e),
        }
    } else {
        None
    };
    let accepted = results.iter().filter(|r| r.ok).count();
    let summary = if results.is_empty() {
        String::new()
    } else {
        tr.t2("upload-summary", ("accepted", &accepted.to_string()), ("total", &results.len().to_string()))
    };
    let (coach_name, coaches) = if staff {
        match st.vault.list_users(&p.caller).await {
            Ok(users) => {
                let name = client
                    .coach_id
                    .and_then(|c| users.iter().find(|u| u.id == c))
                    .map(|u| u.display_name.clone())
                    .unwrap_or_else(|| tr.t("coach-none"));
                let coaches = users
                    .iter()
                    .filter(|u| u.active && u.role.is_coach())
                    .map(|u| (u.id, format!("{} ({})", u.display_name, u.username), client.coach_id == Some(u.id)))
                    .collect();
                (name, coaches)
            }
            Err(e) => return service_error_page(tr, &e),
        }
    } else {
        (String::new(), Vec::new())
    };
    let access_log_intro = tr.t1("access-log-intro", "count", &access_log.as_ref().map_or(0, |l| l.len()).to_string());
    let page = ClientPage {
        c: Chrome::new(tr, Some(&p.caller), &format!("/clients/{id}"), "home"),
        notice,
        may_hold: role == Role::Management,
        hold_token: session::csrf_token(&p.token, "legal-hold"),
        may_export: staff,
        may_manage: staff,
        bsn_masked: client.bsn_masked.clone().unwrap_or_default(),
        bsn_revealed,
        may_reveal: matches!(role, Role::Management | Role::Office | Role::Administration),
        today: today_local(),
        client_token: session::csrf_token(&p.token, "client"),
        coach_name,
        coaches,
        export_token: session::csrf_token(&p.token, "export"),
        access_log,
        access_log_intro,
        id,
        name: client_name(&client),
        birth_date: client.birth_date.map(|d| tr.date(d)).unwrap_or_default(),
        commissioner: tr.t(&format!("commissioner-{}", client.commissioner.as_str())),
        status: status_text(&tr, client.status),
        restricted: client.restricted,
        closed: client.status == ClientStatus::Closed,
        docs_count: if docs.len() > DOCS_PER_PAGE as usize {
            search_count(&tr, first_doc + 1, first_doc + page_docs.len() as u32, docs.len() as u64)
        } else {
            String::new()
        },
        docs_prev: (page_no > 1).then(|| format!("/clients/{id}?page={}#docs-h", page_no - 1)),
        docs_next: ((first_doc as usize + page_docs.len()) < docs.len())
            .then(|| format!("/clients/{id}?page={}#docs-h", page_no + 1)),
        docs: page_docs.iter().map(|d| doc_row(&tr, d)).collect(),
        purposes,
        can_upload,
        upload_intro: tr.t1("upload-intro", "max", &max_upload(st, &tr)),
        types: DocumentType::ALL.iter().map(|t| (t.as_str(), tr.t(&format!("type-{}", t.as_str())))).collect(),
        results,
        summary,
        refused_prefix: tr.t1("upload-refused", "reason", "").trim_end().to_string(),
        summary_template: tr.t2("upload-summary", ("accepted", "{accepted}"), ("total", "{total}")),
        upload_js: assets::UPLOAD_JS.url(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Deserialize)]
pub struct ClientQuery {
    /// A notice after a change: `held`, `lifted`.
    n: Option<String>,
    /// The page of the documents table.
    page: Option<u32>,
}

/// Documents per page of a client's page (each row holds a form or two:
/// a long dossier must not become a page of hundreds of forms).
const DOCS_PER_PAGE: u32 = 25;

pub async fn client(
    State(st): State<AppState>,
    p: Page,
    Path(id): Path<String>,
    Query(q): Query<ClientQuery>,
) -> Response {
    let Ok(id) = id.parse::<Uuid>() else { return service_error_page(p.tr, &ServiceError::not_found()) };
    let notice = match q.n.as_deref() {
        Some("held") => Some(p.tr.t("notice-hold-set")),
        Some("lifted") => Some(p.tr.t("notice-hold-lifted")),
        Some("coach") => Some(p.tr.t("notice-coach-assigned")),
        Some("restricted") => Some(p.tr.t("notice-restriction-set")),
        Some("unrestricted") => Some(p.tr.t("notice-restriction-lifted")),
        Some("created") => Some(p.tr.t("notice-client-created")),
        Some("closed") => Some(p.tr.t("notice-closed")),
        Some("reopened") => Some(p.tr.t("notice-reopened")),
        _ => None,
    };
    client_page(&st, &p, id, Vec::new(), notice, q.page.unwrap_or(1), None).await
}

#[derive(Deserialize)]
pub struct TokenForm {
    csrf: String,
}

/// The dossier as a zip (management, office): a sensitive form, so besides
/// the origin check it carries the session's token for it.
pub async fn export(State(st): State<AppState>, p: Page, Path(id): Path<String>, Form(f): Form<TokenForm>) -> Response {
    let tr = p.tr;
    if !session::csrf_ok(&p.token, "export", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let Ok(id) = id.parse::<Uuid>() else { return service_error_page(tr, &ServiceError::not_found()) };
    let slot = match st.slot(&st.download_slots, "downloads").await {
        Ok(s) => s,
        Err(e) => return service_error_page(tr, &e.0),
    };
    match st.vault.export_client(&p.caller, id, vault::service::ExportQuery::default()).await {
        Ok(export) => crate::api::privacy::export_response(export, slot),
        Err(e) => service_error_page(tr, &e),
    }
}

#[derive(Deserialize)]
pub struct HoldForm {
    csrf: String,
    client_id: Uuid,
    hold: bool,
    reason: String,
}

/// Place or lift a legal hold (management), then back to the dossier.
pub async fn legal_hold(
    State(st): State<AppState>,
    p: Page,
    Path(id): Path<String>,
    Form(f): Form<HoldForm>,
) -> Response {
    let tr = p.tr;
    if !session::csrf_ok(&p.token, "legal-hold", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let Ok(id) = id.parse::<Uuid>() else { return service_error_page(tr, &ServiceError::not_found()) };
    let set = vault::service::SetLegalHold { hold: f.hold, reason: f.reason };
    match st.vault.set_legal_hold(&p.caller, id, set).await {
        Ok(doc) => {
            let n = if doc.legal_hold { "held" } else { "lifted" };
            see_other(&format!("/clients/{}?n={n}#doc-{}", doc.client_id, doc.id))
        }
        Err(e) if e.code == ErrorCode::ReasonRequired || e.code == ErrorCode::InvalidField => {
            let _ = f.client_id;
            error_page(tr, StatusCode::UNPROCESSABLE_ENTITY, &tr.t1("reason-invalid", "detail", &e.message))
        }
        Err(e) => service_error_page(tr, &e),
    }
}

/// Why an upload was refused, in the page's language.
fn refusal(tr: &Tr, st: &AppState, e: &ServiceError) -> String {
    let reason = match e.code {
        ErrorCode::UnsupportedMediaType => tr.t("reason-unsupported"),
        ErrorCode::TooLarge => tr.t1("reason-too-large", "max", &max_upload(st, tr)),
        ErrorCode::EmptyFile | ErrorCode::MissingFile => tr.t("reason-empty"),
        ErrorCode::ClientClosed => tr.t("reason-closed"),
        ErrorCode::Forbidden => tr.t("reason-forbidden"),
        ErrorCode::NotFound => tr.t("reason-not-found"),
        ErrorCode::Busy => tr.t("reason-busy"),
        ErrorCode::UploadInterrupted | ErrorCode::Timeout => tr.t("reason-interrupted"),
        ErrorCode::InvalidField | ErrorCode::InvalidType | ErrorCode::ReasonRequired => {
            tr.t1("reason-invalid", "detail", &e.message)
        }
        code => tr.t1("reason-other", "code", code.as_str()),
    };
    tr.t1("upload-refused", "reason", &reason)
}

/// One file into the client's dossier, through the API's streaming
/// pipeline (the same checks, the same vault operations). The page's
/// script sends each file on its own and asks for a JSON answer
/// (`X-Kluis-Upload: 1`); a plain form gets the client's page back with
/// the result.
pub async fn upload(
    State(st): State<AppState>,
    p: Page,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> Response {
    use axum::extract::FromRequest;
    let tr = p.tr;
    let Ok(id) = id.parse::<Uuid>() else { return service_error_page(tr, &ServiceError::not_found()) };
    let scripted = req.headers().get("x-kluis-upload").is_some_and(|v| v.as_bytes() == b"1");
    let filename = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let budget = std::sync::Arc::new(crate::upload::Budget::default());
    let (parts, body) = req.into_parts();
    let req = axum::extract::Request::from_parts(parts, crate::upload::budgeted(body, budget.clone()));
    let result = match Multipart::from_request(req, &st).await {
        Err(_) => Err(ServiceError::new(ErrorCode::UnsupportedMediaType, "not multipart")),
        Ok(m) => crate::upload::receive_named(&st, &p.caller, id, m, budget, filename.clone()).await.map_err(|e| e.0),
    };
    let name = filename.lock().map(|n| n.clone()).unwrap_or_default();
    let outcome = match &result {
        Ok(doc) => {
            UploadResult { filename: doc.filename.clone().unwrap_or(name), ok: true, message: tr.t("upload-accepted") }
        }
        Err(e) => UploadResult { filename: name, ok: false, message: refusal(&tr, &st, e) },
    };
    if scripted {
        let status = match &result {
            Ok(_) => StatusCode::CREATED,
            Err(e) => StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::BAD_REQUEST),
        };
        let body = serde_json::json!({ "ok": outcome.ok, "filename": outcome.filename, "message": outcome.message });
        return (status, axum::Json(body)).into_response();
    }
    client_page(&st, &p, id, vec![outcome], None, 1, None).await
}

#[derive(Deserialize)]
pub struct DownloadForm {
    purpose: String,
}

/// A download from a page: a token issued for the chosen purpose and
/// redeemed at once (both audited, as through the API), the content
/// streamed in the answer. No token ever reaches the browser.
pub async fn download(
    State(st): State<AppState>,
    p: Page,
    Ctx(ctx): Ctx,
    Path(id): Path<String>,
    Form(f): Form<DownloadForm>,
) -> Response {
    let tr = p.tr;
    let Ok(id) = id.parse::<Uuid>() else { return service_error_page(tr, &ServiceError::not_found()) };
    let Ok(purpose) = f.purpose.parse::<Purpose>() else {
        return service_error_page(tr, &ServiceError::new(ErrorCode::InvalidPurpose, "unknown purpose"));
    };
    let slot = match st.slot(&st.download_slots, "downloads").await {
        Ok(s) => s,
        Err(e) => return service_error_page(tr, &e.0),
    };
    let issued = match st.vault.issue_download_token(&p.caller, id, TokenRequest { purpose }).await {
        Ok(t) => t,
        Err(e) => return service_error_page(tr, &e),
    };
    match st.vault.redeem_download(&issued.token, &ctx).await {
        Ok(dl) => crate::api::download::stream(dl, slot),
        Err(e) => service_error_page(tr, &e),
    }
}

// ------------------------------------------------------------------ search

struct HitRow {
    id: Uuid,
    client_id: Uuid,
    client: String,
    title: String,
    filename: String,
    show_filename: bool,
    doc_type: String,
    uploaded: String,
    destroy: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    c: Chrome,
    q: String,
    doc_type: String,
    status: String,
    from: String,
    until: String,
    types: Vec<(&'static str, String)>,
    error: Option<String>,
    searched: bool,
    count: String,
    hits: Vec<HitRow>,
    prev: Option<String>,
    next: Option<String>,
}

/// The search form's fields as a browser sends them (empty means none).
#[derive(Deserialize, Default)]
pub struct SearchForm {
    q: Option<String>,
    #[serde(rename = "type")]
    doc_type: Option<String>,
    status: Option<String>,
    from: Option<String>,
    until: Option<String>,
    page: Option<u32>,
}

/// Hits per page of the search page.
const PAGE_SIZE: u32 = 20;

fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

impl SearchForm {
    /// The query string of this search at another page.
    fn link(&self, page: u32) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("q", &self.q),
            ("type", &self.doc_type),
            ("status", &self.status),
            ("from", &self.from),
            ("until", &self.until),
        ] {
            if let Some(v) = nonempty(v) {
                q.append_pair(k, &v);
            }
        }
        q.append_pair("page", &page.to_string());
        format!("/search?{}", q.finish())
    }
}

/// Search: one box plus explicit filters, their state in the URL, pages of
/// 20 counted on the server (the API's search, the same scope).
pub async fn search(State(st): State<AppState>, p: Page, Query(f): Query<SearchForm>) -> Response {
    let tr = p.tr;
    let types = DocumentType::ALL.iter().map(|t| (t.as_str(), tr.t(&format!("type-{}", t.as_str())))).collect();
    let searched =
        [&f.q, &f.doc_type, &f.status, &f.from, &f.until].iter().any(|v| nonempty(v).is_some()) || f.page.is_some();
    let page_no = f.page.unwrap_or(1).clamp(1, 10_000 / PAGE_SIZE);
    let mut page = SearchPage {
        c: Chrome::new(tr, Some(&p.caller), "/search", "search"),
        q: nonempty(&f.q).unwrap_or_default(),
        doc_type: nonempty(&f.doc_type).unwrap_or_default(),
        status: nonempty(&f.status).unwrap_or_default(),
        from: nonempty(&f.from).unwrap_or_default(),
        until: nonempty(&f.until).unwrap_or_default(),
        types,
        error: None,
        searched,
        count: String::new(),
        hits: Vec::new(),
        prev: None,
        next: None,
    };
    if !searched {
        return render(StatusCode::OK, &page);
    }
    let invalid = |detail: &str| tr.t1("search-invalid", "detail", detail);
    let doc_type = match nonempty(&f.doc_type).map(|t| t.parse::<DocumentType>()) {
        Some(Err(_)) => {
            page.error = Some(invalid(&tr.t("search-type")));
            page.searched = false;
            return render(StatusCode::BAD_REQUEST, &page);
        }
        other => other.and_then(Result::ok),
    };
    let status = match nonempty(&f.status).as_deref() {
        None => None,
        Some("active") => Some(ClientStatus::Active),
        Some("closed") => Some(ClientStatus::Closed),
        Some(_) => {
            page.error = Some(invalid(&tr.t("search-status")));
            page.searched = false;
            return render(StatusCode::BAD_REQUEST, &page);
        }
    };
    let query = vault::service::SearchQuery {
        q: nonempty(&f.q),
        doc_type,
        client_id: None,
        status,
        uploaded_from: nonempty(&f.from),
        uploaded_until: nonempty(&f.until),
        limit: Some(PAGE_SIZE),
        offset: Some((page_no - 1) * PAGE_SIZE),
    };
    let found = match st.vault.search(&p.caller, query).await {
        Ok(r) => r,
        Err(e) if matches!(e.code, ErrorCode::InvalidQuery | ErrorCode::InvalidField) => {
            page.error = Some(invalid(&e.message));
            page.searched = false;
            return render(StatusCode::BAD_REQUEST, &page);
        }
        Err(e) => return service_error_page(tr, &e),
    };
    let first = (page_no - 1) * PAGE_SIZE + 1;
    let last = first - 1 + found.hits.len() as u32;
    page.count = search_count(&tr, first, last, found.total);
    page.hits = found
        .hits
        .iter()
        .map(|h| {
            let d = doc_row(&tr, &h.document);
            HitRow {
                id: d.id,
                client_id: h.document.client_id,
                client: h.client_name.clone(),
                title: d.title,
                filename: d.filename,
                show_filename: d.show_filename,
                doc_type: d.doc_type,
                uploaded: d.uploaded,
                destroy: d.destroy,
            }
        })
        .collect();
    page.prev = (page_no > 1).then(|| f.link(page_no - 1));
    page.next = (u64::from(last) < found.total && last < 10_000).then(|| f.link(page_no + 1));
    render(StatusCode::OK, &page)
}

/// "Resultaten 1–20 van 1.234": the count written the Dutch way.
fn search_count(tr: &Tr, first: u32, last: u32, total: u64) -> String {
    tr.t3("search-results", ("from", &first.to_string()), ("to", &last.to_string()), ("total", &tr.number(total)))
}

// ------------------------------------------------------------------- users

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

fn role_name(tr: &Tr, r: Role) -> String {
    tr.t(&format!("role-{}", r.as_str()))
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

#[derive(Deserialize)]
pub struct NoticeQuery {
    n: Option<String>,
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
    if !session::csrf_ok(&p.token, "users", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
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
    if !session::csrf_ok(&p.token, "users", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let Ok(id) = id.parse::<Uuid>() else { return service_error_page(tr, &ServiceError::not_found()) };
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

// ----------------------------------------------------------- substitutions

struct SubRow {
    id: Uuid,
    absent: String,
    substitute: String,
    period: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "substitutions.html")]
struct SubstitutionsPage {
    c: Chrome,
    notice: Option<String>,
    error: Option<String>,
    rows: Vec<SubRow>,
    coaches: Vec<(Uuid, String)>,
    token: String,
    today: String,
}

async fn substitutions_page(
    st: &AppState,
    p: &Page,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let tr = p.tr;
    let subs = match st.vault.list_substitutions(&p.caller, vault::service::SubstitutionShow::Current).await {
        Ok(s) => s,
        Err(e) => return service_error_page(tr, &e),
    };
    let users = match st.vault.list_users(&p.caller).await {
        Ok(u) => u,
        Err(e) => return service_error_page(tr, &e),
    };
    let name = |id: Uuid| users.iter().find(|u| u.id == id).map(|u| u.display_name.clone()).unwrap_or_default();
    let rows = subs
        .iter()
        .map(|s| SubRow {
            id: s.id,
            absent: name(s.absent_coach_id),
            substitute: name(s.substitute_id),
            // `until` is exclusive: the last day shown is the one before.
            period: format!("{} – {}", tr.day(s.from), tr.day(s.until - chrono::Duration::seconds(1))),
            reason: tr.t(&format!("reason-{}", s.reason.as_str())),
        })
        .collect();
    let coaches = users
        .iter()
        .filter(|u| u.active && u.role.is_coach())
        .map(|u| (u.id, format!("{} ({})", u.display_name, u.username)))
        .collect();
    let today =
        chrono::Utc::now().with_timezone(&chrono_tz::Europe::Amsterdam).date_naive().format("%Y-%m-%d").to_string();
    let page = SubstitutionsPage {
        c: Chrome::new(tr, Some(&p.caller), "/substitutions", "substitutions"),
        notice,
        error,
        rows,
        coaches,
        token: session::csrf_token(&p.token, "substitutions"),
        today,
    };
    render(status, &page)
}

pub async fn substitutions(State(st): State<AppState>, p: Page, Query(q): Query<NoticeQuery>) -> Response {
    let notice = match q.n.as_deref() {
        Some("created") => Some(p.tr.t("notice-substitution-created")),
        Some("ended") => Some(p.tr.t("notice-substitution-ended")),
        _ => None,
    };
    substitutions_page(&st, &p, StatusCode::OK, notice, None).await
}

#[derive(Deserialize)]
pub struct SubstitutionForm {
    csrf: String,
    absent_coach_id: String,
    substitute_id: String,
    from: String,
    until: String,
    reason: String,
}

/// The start of a day on the agency's clock, in UTC.
fn day_start(day: chrono::NaiveDate) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    chrono_tz::Europe::Amsterdam
        .from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// Record a substitution: from the first day's start to the end of the
/// last day (both on the agency's clock).
pub async fn create_substitution(State(st): State<AppState>, p: Page, Form(f): Form<SubstitutionForm>) -> Response {
    let tr = p.tr;
    if !session::csrf_ok(&p.token, "substitutions", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let date = |s: &str| chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok();
    let parsed = (|| {
        let from = day_start(date(&f.from)?)?;
        let until = day_start(date(&f.until)?.succ_opt()?)?;
        Some(vault::service::NewSubstitution {
            absent_coach_id: f.absent_coach_id.parse().ok()?,
            substitute_id: f.substitute_id.parse().ok()?,
            from,
            until,
            reason: f.reason.parse().ok()?,
        })
    })();
    let Some(new) = parsed else {
        let msg = tr.t1("reason-invalid", "detail", "choose two coaches, two dates and a reason");
        return substitutions_page(&st, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some(msg)).await;
    };
    match st.vault.register_substitution(&p.caller, new).await {
        Ok(_) => see_other("/substitutions?n=created"),
        Err(e) if e.code.status() == 422 => {
            let msg = tr.t1("reason-invalid", "detail", &e.message);
            substitutions_page(&st, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some(msg)).await
        }
        Err(e) => service_error_page(tr, &e),
    }
}

pub async fn end_substitution(
    State(st): State<AppState>,
    p: Page,
    Path(id): Path<String>,
    Form(f): Form<TokenForm>,
) -> Response {
    let tr = p.tr;
    if !session::csrf_ok(&p.token, "substitutions", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let Ok(id) = id.parse::<Uuid>() else { return service_error_page(tr, &ServiceError::not_found()) };
    match st.vault.end_substitution(&p.caller, id).await {
        Ok(()) => see_other("/substitutions?n=ended"),
        Err(e) => service_error_page(tr, &e),
    }
}

// ------------------------------------------- a client's coach, restriction

#[derive(Deserialize)]
pub struct CoachForm {
    csrf: String,
    coach_id: String,
}

pub async fn assign_coach(
    State(st): State<AppState>,
    p: Page,
    Path(id): Path<String>,
    Form(f): Form<CoachForm>,
) -> Response {
    let tr = p.tr;
    if !session::csrf_ok(&p.token, "client", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let (Ok(id), Ok(coach_id)) = (id.parse::<Uuid>(), f.coach_id.parse::<Uuid>()) else {
        return service_error_page(tr, &ServiceError::new(ErrorCode::NotACoach, "choose a coach"));
    };
    match st.vault.assign_coach(&p.caller, id, vault::service::SetCoach { coach_id }).await {
        Ok(_) => see_other(&format!("/clients/{id}?n=coach")),
        Err(e) => service_error_page(tr, &e),
    }
}

#[derive(Deserialize)]
pub struct RestrictionForm {
    csrf: String,
    restricted: bool,
    reason: String,
}

pub async fn set_restriction(
    State(st): State<AppState>,
    p: Page,
    Path(id): Path<String>,
    Form(f): Form<RestrictionForm>,
) -> Response {
    let tr = p.tr;
    if !session::csrf_ok(&p.token, "client", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let Ok(id) = id.parse::<Uuid>() else { return service_error_page(tr, &ServiceError::not_found()) };
    let set = vault::service::SetRestriction { restricted: f.restricted, reason: f.reason };
    match st.vault.set_restriction(&p.caller, id, set).await {
        Ok(c) => see_other(&format!("/clients/{id}?n={}", if c.restricted { "restricted" } else { "unrestricted" })),
        Err(e) if e.code.status() == 422 => {
            error_page(tr, StatusCode::UNPROCESSABLE_ENTITY, &tr.t1("reason-invalid", "detail", &e.message))
        }
        Err(e) => service_error_page(tr, &e),
    }
}

// ------------------------------------------------------- destruction list

struct DueRow {
    id: Uuid,
    client_id: Uuid,
    date: String,
    title: String,
    doc_type: String,
    source: String,
}

#[derive(Template)]
#[template(path = "retention.html")]
struct RetentionPage {
    c: Chrome,
    before: String,
    error: Option<String>,
    held: i64,
    held_text: String,
    rows: Vec<DueRow>,
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct RetentionForm {
    before: Option<String>,
    after: Option<String>,
}

/// The destruction list of the coming period (management, office; default
/// the next 30 days), 100 a page.
pub async fn retention(State(st): State<AppState>, p: Page, Query(f): Query<RetentionForm>) -> Response {
    let tr = p.tr;
    let before = nonempty(&f.before).unwrap_or_else(|| {
        (chrono::Utc::now() + chrono::Duration::days(30))
            .with_timezone(&chrono_tz::Europe::Amsterdam)
            .format("%Y-%m-%d")
            .to_string()
    });
    let q = vault::service::DueQuery { before: before.clone(), after: nonempty(&f.after), limit: Some(100) };
    let mut page = RetentionPage {
        c: Chrome::new(tr, Some(&p.caller), "/retention", "retention"),
        before: before.clone(),
        error: None,
        held: 0,
        held_text: String::new(),
        rows: Vec::new(),
        next: None,
    };
    let list = match st.vault.destruction_list(&p.caller, q).await {
        Ok(l) => l,
        Err(e) if e.code == ErrorCode::InvalidQuery => {
            page.error = Some(tr.t1("reason-invalid", "detail", &e.message));
            return render(StatusCode::BAD_REQUEST, &page);
        }
        Err(e) => return service_error_page(tr, &e),
    };
    page.held = list.held;
    page.held_text = tr.t1("retention-held", "count", &tr.number(list.held.max(0) as u64));
    page.rows = list
        .documents
        .iter()
        .map(|d| DueRow {
            id: d.id,
            client_id: d.client_id,
            date: tr.day(d.retention_until),
            title: d
                .title
                .clone()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| tr.t(&format!("type-{}", d.doc_type.as_str()))),
            doc_type: tr.t(&format!("type-{}", d.doc_type.as_str())),
            source: match d.retention_source {
                "manual" => tr.t1("source-manual", "reason", d.retention_reason.as_deref().unwrap_or("")),
                _ => tr.t("source-policy"),
            },
        })
        .collect();
    page.next = list.next.map(|n| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("before", &before).append_pair("after", &n);
        format!("/retention?{}", q.finish())
    });
    render(StatusCode::OK, &page)
}

// --------------------------------------------------------------- audit log

struct EventRow {
    seq: i64,
    when: String,
    who: String,
    what: String,
    purpose: String,
    outcome: String,
    client_id: Option<Uuid>,
}

struct Verdict {
    ok: bool,
    text: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    c: Chrome,
    action: String,
    from: String,
    until: String,
    error: Option<String>,
    verdict: Option<Verdict>,
    rows: Vec<EventRow>,
}

#[derive(Deserialize, Default)]
pub struct AuditForm {
    action: Option<String>,
    from: Option<String>,
    until: Option<String>,
}

async fn audit_page(st: &AppState, p: &Page, f: AuditForm, verdict: Option<Verdict>) -> Response {
    let tr = p.tr;
    let mut page = AuditPage {
        c: Chrome::new(tr, Some(&p.caller), "/audit", "audit"),
        action: nonempty(&f.action).unwrap_or_default(),
        from: nonempty(&f.from).unwrap_or_default(),
        until: nonempty(&f.until).unwrap_or_default(),
        error: None,
        verdict,
        rows: Vec::new(),
    };
    let day = |v: &Option<String>, next: bool| -> Result<Option<chrono::DateTime<chrono::Utc>>, ()> {
        match nonempty(v) {
            None => Ok(None),
            Some(s) => {
                let d = chrono::NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| ())?;
                let d = if next { d.succ_opt().ok_or(())? } else { d };
                day_start(d).map(Some).ok_or(())
            }
        }
    };
    let (Ok(from), Ok(until)) = (day(&f.from, false), day(&f.until, true)) else {
        page.error = Some(tr.t1("reason-invalid", "detail", "YYYY-MM-DD"));
        return render(StatusCode::BAD_REQUEST, &page);
    };
    let q = vault::service::AuditQuery {
        client_id: None,
        document_id: None,
        actor_id: None,
        action: nonempty(&f.action),
        from,
        until,
        limit: Some(200),
    };
    let events = match st.vault.audit_events(&p.caller, q).await {
        Ok(e) => e,
        Err(e) if e.code == ErrorCode::InvalidQuery => {
            page.error = Some(tr.t1("reason-invalid", "detail", &e.message));
            return render(StatusCode::BAD_REQUEST, &page);
        }
        Err(e) => return service_error_page(tr, &e),
    };
    let users = st.vault.list_users(&p.caller).await.unwrap_or_default();
    page.rows = events
        .iter()
        .map(|e| {
            let who = match (e.actor_id.and_then(|a| users.iter().find(|u| u.id == a)), &e.actor_role) {
                (Some(u), _) => format!("{} ({})", u.display_name, role_name(&tr, u.role)),
                (None, Some(r)) => tr.t(&format!("role-{r}")),
                (None, None) => "–".into(),
            };
            EventRow {
                seq: e.seq,
                when: tr.time(e.at),
                who,
                what: tr.try_t(&format!("action-{}", e.action.replace('.', "-"))).unwrap_or_else(|| e.action.clone()),
                purpose: e.purpose.as_deref().map(|p| tr.t(&format!("purpose-{p}"))).unwrap_or_default(),
                outcome: outcome_text(&tr, &e.outcome),
                client_id: e.client_id,
            }
        })
        .collect();
    render(StatusCode::OK, &page)
}

/// The audit log, newest first, 200 at a time (management).
pub async fn audit(State(st): State<AppState>, p: Page, Query(f): Query<AuditForm>) -> Response {
    audit_page(&st, &p, f, None).await
}

/// Verify the hash chain (and its anchor), then show the log with the verdict.
pub async fn audit_verify(State(st): State<AppState>, p: Page) -> Response {
    let tr = p.tr;
    let verdict = match st.vault.verify_audit(&p.caller).await {
        Ok(r) if r.ok => Verdict {
            ok: true,
            text: tr.t2(
                "audit-ok",
                ("events", &tr.number(r.events.unwrap_or(0).max(0) as u64)),
                ("head", r.head.as_deref().unwrap_or("")),
            ),
        },
        Ok(r) => Verdict { ok: false, text: tr.t1("audit-broken", "error", r.error.as_deref().unwrap_or("")) },
        Err(e) => return service_error_page(tr, &e),
    };
    audit_page(&st, &p, AuditForm::default(), Some(verdict)).await
}

// ---------------------------------------------------------------- breaches

struct BreachRow {
    id: Uuid,
    detected: String,
    nature: String,
    deadline: String,
    overdue: bool,
    status: String,
    /// Neither notified nor decided not to: the notification form shows.
    open: bool,
}

#[derive(Template)]
#[template(path = "breaches.html")]
struct BreachesPage {
    c: Chrome,
    notice: Option<String>,
    error: Option<String>,
    rows: Vec<BreachRow>,
    categories: Vec<(&'static str, String)>,
    token: String,
    now: String,
}

async fn breaches_page(
    st: &AppState,
    p: &Page,
    status: StatusCode,
    notice: Option<String>,
    error: Option<String>,
) -> Response {
    let tr = p.tr;
    let list = match st.vault.list_breaches(&p.caller).await {
        Ok(l) => l,
        Err(e) => return service_error_page(tr, &e),
    };
    let rows = list
        .iter()
        .map(|b| {
            let status = match (&b.authority_notified_at, &b.authority_not_notified_reason) {
                (Some(t), _) => tr.t1("breach-notified", "when", &tr.time(*t)),
                (None, Some(r)) => tr.t1("breach-not-notified", "reason", r),
                (None, None) => tr.t("breach-open"),
            };
            BreachRow {
                id: b.id,
                detected: tr.time(b.detected_at),
                nature: b.nature.clone(),
                deadline: tr.time(b.notify_deadline),
                overdue: b.overdue,
                status,
                open: b.authority_notified_at.is_none() && b.authority_not_notified_reason.is_none(),
            }
        })
        .collect();
    let now = chrono::Utc::now().with_timezone(&chrono_tz::Europe::Amsterdam).format("%Y-%m-%dT%H:%M").to_string();
    let page = BreachesPage {
        c: Chrome::new(tr, Some(&p.caller), "/breaches", "breaches"),
        notice,
        error,
        rows,
        categories: vault::domain::DataCategory::ALL
            .iter()
            .map(|k| (k.as_str(), tr.t(&format!("category-{}", k.as_str()))))
            .collect(),
        token: session::csrf_token(&p.token, "breaches"),
        now,
    };
    render(status, &page)
}

pub async fn breaches(State(st): State<AppState>, p: Page, Query(q): Query<NoticeQuery>) -> Response {
    let notice = match q.n.as_deref() {
        Some("registered") => Some(p.tr.t("notice-breach-registered")),
        Some("updated") => Some(p.tr.t("notice-breach-updated")),
        _ => None,
    };
    breaches_page(&st, &p, StatusCode::OK, notice, None).await
}

/// A `datetime-local` value (`2026-12-07T14:05`) on the agency's clock.
fn local_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::TimeZone;
    let t = chrono::NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M").ok()?;
    chrono_tz::Europe::Amsterdam.from_local_datetime(&t).earliest().map(|t| t.with_timezone(&chrono::Utc))
}

/// Register a breach (management). The form repeats `categories`, so the
/// body is read pair by pair.
pub async fn register_breach(State(st): State<AppState>, p: Page, body: axum::body::Bytes) -> Response {
    let tr = p.tr;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let one = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    if !session::csrf_ok(&p.token, "breaches", &one("csrf")) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let categories: Result<Vec<vault::domain::DataCategory>, _> =
        pairs.iter().filter(|(n, _)| n == "categories").map(|(_, v)| v.parse()).collect();
    let parsed = (|| {
        Some(vault::service::NewBreach {
            detected_at: local_time(&one("detected_at"))?,
            nature: one("nature"),
            categories: categories.ok()?,
            data_subjects_estimate: one("data_subjects_estimate").trim().parse().ok()?,
            records_estimate: one("records_estimate").trim().parse().ok()?,
            consequences: one("consequences"),
            measures: one("measures"),
        })
    })();
    let Some(new) = parsed else {
        let msg = tr.t1("reason-invalid", "detail", "detected_at, categories, estimates");
        return breaches_page(&st, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some(msg)).await;
    };
    match st.vault.register_breach(&p.caller, new).await {
        Ok(b) => see_other(&format!("/breaches?n=registered#breach-{}", b.id)),
        Err(e) if e.code.status() == 422 => {
            let msg = tr.t1("reason-invalid", "detail", &e.message);
            breaches_page(&st, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some(msg)).await
        }
        Err(e) => service_error_page(tr, &e),
    }
}

#[derive(Deserialize)]
pub struct BreachNotifyForm {
    csrf: String,
    notified_at: Option<String>,
    not_notified_reason: Option<String>,
}

/// Record the notification to the authority, or why there is none.
pub async fn update_breach(
    State(st): State<AppState>,
    p: Page,
    Path(id): Path<String>,
    Form(f): Form<BreachNotifyForm>,
) -> Response {
    let tr = p.tr;
    if !session::csrf_ok(&p.token, "breaches", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let Ok(id) = id.parse::<Uuid>() else { return service_error_page(tr, &ServiceError::not_found()) };
    let notified = nonempty(&f.notified_at);
    let reason = nonempty(&f.not_notified_reason);
    let mut patch = vault::service::BreachPatch::default();
    match (notified, reason) {
        (Some(t), None) => match local_time(&t) {
            Some(t) => patch.authority_notified_at = Some(t),
            None => {
                let msg = tr.t1("reason-invalid", "detail", "YYYY-MM-DDTHH:MM");
                return breaches_page(&st, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some(msg)).await;
            }
        },
        (None, Some(r)) => patch.authority_not_notified_reason = Some(r),
        _ => {
            let msg = tr.t1("reason-invalid", "detail", "fill in one of the two");
            return breaches_page(&st, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some(msg)).await;
        }
    }
    match st.vault.update_breach(&p.caller, id, patch).await {
        Ok(b) => see_other(&format!("/breaches?n=updated#breach-{}", b.id)),
        Err(e) if e.code.status() == 422 || e.code.status() == 409 => {
            let msg = tr.t1("reason-invalid", "detail", &e.message);
            breaches_page(&st, &p, StatusCode::UNPROCESSABLE_ENTITY, None, Some(msg)).await
        }
        Err(e) => service_error_page(tr, &e),
    }
}

/// Today on the agency's clock, `YYYY-MM-DD` (a date field's value).
fn today_local() -> String {
    chrono::Utc::now().with_timezone(&chrono_tz::Europe::Amsterdam).format("%Y-%m-%d").to_string()
}

// ------------------------------------------------------------ new client

struct FieldView {
    name: &'static str,
    label: String,
    hint: String,
    kind: &'static str,
    required: bool,
    value: String,
    autocomplete: &'static str,
    invalid: bool,
}

#[derive(Template)]
#[template(path = "client_new.html")]
struct NewClientPage {
    c: Chrome,
    error: Option<String>,
    token: String,
    fields: Vec<FieldView>,
    commissioners: Vec<(&'static str, String)>,
    commissioner: String,
}

#[derive(Deserialize, Default)]
pub struct NewClientForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    initials: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    birth_date: String,
    bsn: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    address: Option<String>,
    postcode: Option<String>,
    city: Option<String>,
    #[serde(default)]
    commissioner: String,
}

fn new_client_page(p: &Page, status: StatusCode, f: &NewClientForm, error: Option<(String, &str)>) -> Response {
    let tr = p.tr;
    let bad = error.as_ref().map(|e| e.1).unwrap_or("");
    let none = String::new();
    // (name, label, hint, input type, required, autocomplete, value)
    let spec: [(&'static str, &str, &str, &'static str, bool, &'static str, &String); 10] = [
        ("first_name", "first-name", "", "text", true, "off", &f.first_name),
        ("initials", "initials", "", "text", true, "off", &f.initials),
        ("last_name", "last-name", "", "text", true, "off", &f.last_name),
        ("birth_date", "birth-date", "", "date", true, "off", &f.birth_date),
        ("bsn", "bsn", "bsn-hint", "text", false, "off", f.bsn.as_ref().unwrap_or(&none)),
        ("email", "email", "", "email", false, "off", f.email.as_ref().unwrap_or(&none)),
        ("phone", "phone", "", "tel", false, "off", f.phone.as_ref().unwrap_or(&none)),
        ("address", "address", "", "text", false, "off", f.address.as_ref().unwrap_or(&none)),
        ("postcode", "postcode", "", "text", false, "off", f.postcode.as_ref().unwrap_or(&none)),
        ("city", "city", "", "text", false, "off", f.city.as_ref().unwrap_or(&none)),
    ];
    let fields = spec
        .iter()
        .map(|(name, label, hint, kind, required, autocomplete, value)| FieldView {
            name,
            label: tr.t(label),
            hint: if hint.is_empty() { String::new() } else { tr.t(hint) },
            kind,
            required: *required,
            // A BSN that was refused is not sent back into the page.
            value: if *name == "bsn" && bad == "bsn" { String::new() } else { (*value).clone() },
            autocomplete,
            invalid: *name == bad,
        })
        .collect();
    let page = NewClientPage {
        c: Chrome::new(tr, Some(&p.caller), "/clients/new", "home"),
        error: error.map(|e| e.0),
        token: session::csrf_token(&p.token, "client"),
        fields,
        commissioners: vault::domain::Commissioner::ALL
            .iter()
            .map(|k| (k.as_str(), tr.t(&format!("commissioner-{}", k.as_str()))))
            .collect(),
        commissioner: f.commissioner.clone(),
    };
    render(status, &page)
}

pub async fn new_client(p: Page) -> Response {
    if !matches!(p.caller.role(), Role::Management | Role::Office) {
        return service_error_page(p.tr, &ServiceError::new(ErrorCode::Forbidden, "not for this role"));
    }
    new_client_page(&p, StatusCode::OK, &NewClientForm::default(), None)
}

/// A new client (management, office), then its page.
pub async fn create_client(State(st): State<AppState>, p: Page, Form(f): Form<NewClientForm>) -> Response {
    let tr = p.tr;
    if !session::csrf_ok(&p.token, "client", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let Ok(commissioner) = f.commissioner.parse::<vault::domain::Commissioner>() else {
        let e = (tr.t1("reason-invalid", "detail", &tr.t("commissioner")), "commissioner");
        return new_client_page(&p, StatusCode::UNPROCESSABLE_ENTITY, &f, Some(e));
    };
    let opt = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let new = vault::service::NewClient {
        first_name: f.first_name.clone(),
        initials: f.initials.clone(),
        last_name: f.last_name.clone(),
        birth_date: f.birth_date.clone(),
        bsn: opt(&f.bsn),
        email: opt(&f.email),
        phone: opt(&f.phone),
        address: opt(&f.address),
        postcode: opt(&f.postcode),
        city: opt(&f.city),
        commissioner,
    };
    match st.vault.create_client(&p.caller, new).await {
        Ok(c) => see_other(&format!("/clients/{}?n=created", c.id)),
        Err(e) if e.code == ErrorCode::InvalidBsn => {
            new_client_page(&p, StatusCode::UNPROCESSABLE_ENTITY, &f, Some((tr.t("error-invalid-bsn"), "bsn")))
        }
        Err(e) if e.code.status() == 422 => {
            // The service names the field: `field `x` ...` or `x ...`.
            let field =
                ["first_name", "initials", "last_name", "birth_date", "email", "phone", "address", "postcode", "city"]
                    .into_iter()
                    .find(|n| e.message.contains(n))
                    .unwrap_or("");
            let msg = tr.t1("reason-invalid", "detail", &e.message);
            new_client_page(&p, StatusCode::UNPROCESSABLE_ENTITY, &f, Some((msg, field)))
        }
        Err(e) => service_error_page(tr, &e),
    }
}

#[derive(Deserialize)]
pub struct CloseForm {
    csrf: String,
    ended_at: Option<String>,
}

/// Close a trajectory (management, office): the end date is the start of
/// that day on the agency's clock, or now when it is today.
pub async fn close_trajectory(
    State(st): State<AppState>,
    p: Page,
    Path(id): Path<String>,
    Form(f): Form<CloseForm>,
) -> Response {
    let tr = p.tr;
    if !session::csrf_ok(&p.token, "client", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let Ok(id) = id.parse::<Uuid>() else { return service_error_page(tr, &ServiceError::not_found()) };
    let ended_at = match nonempty(&f.ended_at) {
        None => None,
        Some(d) if d == today_local() => None,
        Some(d) => match chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok().and_then(day_start) {
            Some(t) => Some(t),
            None => {
                return error_page(
                    tr,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &tr.t1("reason-invalid", "detail", "YYYY-MM-DD"),
                );
            }
        },
    };
    match st.vault.close_trajectory(&p.caller, id, vault::service::CloseTrajectory { ended_at }).await {
        Ok(_) => see_other(&format!("/clients/{id}?n=closed")),
        Err(e) if e.code.status() == 422 => {
            error_page(tr, StatusCode::UNPROCESSABLE_ENTITY, &tr.t1("reason-invalid", "detail", &e.message))
        }
        Err(e) => service_error_page(tr, &e),
    }
}

#[derive(Deserialize)]
pub struct ReasonForm {
    csrf: String,
    reason: String,
}

pub async fn reopen_trajectory(
    State(st): State<AppState>,
    p: Page,
    Path(id): Path<String>,
    Form(f): Form<ReasonForm>,
) -> Response {
    let tr = p.tr;
    if !session::csrf_ok(&p.token, "client", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let Ok(id) = id.parse::<Uuid>() else { return service_error_page(tr, &ServiceError::not_found()) };
    match st.vault.reopen_trajectory(&p.caller, id, vault::service::ReopenTrajectory { reason: f.reason }).await {
        Ok(_) => see_other(&format!("/clients/{id}?n=reopened")),
        Err(e) if e.code.status() == 422 => {
            error_page(tr, StatusCode::UNPROCESSABLE_ENTITY, &tr.t1("reason-invalid", "detail", &e.message))
        }
        Err(e) => service_error_page(tr, &e),
    }
}

/// Reveal the full BSN (management, office, administration; audited by the
/// vault): shown in the page this once, never in a URL.
pub async fn reveal_bsn(
    State(st): State<AppState>,
    p: Page,
    Path(id): Path<String>,
    Form(f): Form<TokenForm>,
) -> Response {
    let tr = p.tr;
    if !session::csrf_ok(&p.token, "client", &f.csrf) {
        return error_page(tr, StatusCode::FORBIDDEN, &tr.t("error-form-token"));
    }
    let Ok(id) = id.parse::<Uuid>() else { return service_error_page(tr, &ServiceError::not_found()) };
    match st.vault.reveal_bsn(&p.caller, id).await {
        Ok(r) => {
            let shown = match r.bsn {
                Some(b) => tr.t1("bsn-revealed", "bsn", &b),
                None => tr.t("bsn-none"),
            };
            client_page(&st, &p, id, Vec::new(), None, 1, Some(shown)).await
        }
        Err(e) => service_error_page(tr, &e),
    }
}
