//! Client lists, a client's dossier (documents, upload, download, export,
//! legal hold, access log), new clients, the trajectory, the coach and
//! the restriction.

#[allow(unused_imports)]
use super::*;

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

pub(super) struct DocRow {
    pub(super) id: Uuid,
    pub(super) title: String,
    pub(super) filename: String,
    pub(super) show_filename: bool,
    pub(super) doc_type: String,
    pub(super) uploaded: String,
    pub(super) size: String,
    pub(super) destroy: String,
    pub(super) held: bool,
    pub(super) hold_reason: Option<String>,
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
    /// The download forms' token.
    download_token: String,
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

pub(super) fn doc_row(tr: &Tr, d: &Document) -> DocRow {
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
    let what = action_text(tr, &e.action);
    let who = match (&e.actor_name, &e.actor_role) {
        (Some(n), Some(r)) => format!("{n} ({})", role_text(tr, r)),
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
        match st.vault.recent_access_log(&p.caller, id, ACCESS_LOG_SHOWN).await {
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
        download_token: session::csrf_token(&p.token, "download"),
        hold_token: session::csrf_token(&p.token, "legal-hold"),
        may_export: staff,
        may_manage: staff,
        bsn_masked: client.bsn_masked.clone().unwrap_or_default(),
        bsn_revealed,
        may_reveal: matches!(role, Role::Management | Role::Office | Role::Administration),
        today: today_local(st),
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

/// Entries of the access log a dossier's page shows (the newest; the
/// audit log and the export have them all).
const ACCESS_LOG_SHOWN: i64 = 50;

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

/// The dossier as a zip (management, office): a sensitive form, so besides
/// the origin check it carries the session's token for it.
pub async fn export(State(st): State<AppState>, p: Page, Path(id): Path<String>, Form(f): Form<TokenForm>) -> Response {
    let tr = p.tr;
    let id = match form_target(&p, "export", &f.csrf, &id) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
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
    let id = match form_target(&p, "legal-hold", &f.csrf, &id) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
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
    csrf: String,
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
    let id = match form_target(&p, "download", &f.csrf, &id) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    if let Some(ip) = ctx.client_ip
        && st.download_limiter.check_key(&crate::net::limit_key(ip)).is_err()
    {
        metrics::counter!("kluis_download_rate_limited_total").increment(1);
        let e = ServiceError::new(ErrorCode::TooManyRequests, "too many downloads from this address");
        return service_error_page(tr, &e);
    }
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
    if let Err(refused) = form_token(&p, "client", &f.csrf) {
        return refused;
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
    let id = match form_target(&p, "client", &f.csrf, &id) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    let set = vault::service::SetRestriction { restricted: f.restricted, reason: f.reason };
    match st.vault.set_restriction(&p.caller, id, set).await {
        Ok(c) => see_other(&format!("/clients/{id}?n={}", if c.restricted { "restricted" } else { "unrestricted" })),
        Err(e) if e.code.status() == 422 => refused_input(tr, &e),
        Err(e) => service_error_page(tr, &e),
    }
}

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
    if let Err(refused) = form_token(&p, "client", &f.csrf) {
        return refused;
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
            let field = [
                "bsn",
                "first_name",
                "initials",
                "last_name",
                "birth_date",
                "email",
                "phone",
                "address",
                "postcode",
                "city",
            ]
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
    let id = match form_target(&p, "client", &f.csrf, &id) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    let ended_at = match nonempty(&f.ended_at) {
        None => None,
        Some(d) if d == today_local(&st) => None,
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
        Err(e) if e.code.status() == 422 => refused_input(tr, &e),
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
    let id = match form_target(&p, "client", &f.csrf, &id) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    match st.vault.reopen_trajectory(&p.caller, id, vault::service::ReopenTrajectory { reason: f.reason }).await {
        Ok(_) => see_other(&format!("/clients/{id}?n=reopened")),
        Err(e) if e.code.status() == 422 => refused_input(tr, &e),
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
    let id = match form_target(&p, "client", &f.csrf, &id) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
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
