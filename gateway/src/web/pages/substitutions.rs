//! Substitutions: who covers whom, when.

#[allow(unused_imports)]
use super::*;

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
    let today = today_local(st);
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

/// Record a substitution: from the first day's start to the end of the
/// last day (both on the agency's clock).
pub async fn create_substitution(State(st): State<AppState>, p: Page, Form(f): Form<SubstitutionForm>) -> Response {
    let tr = p.tr;
    if let Err(refused) = form_token(&p, "substitutions", &f.csrf) {
        return refused;
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
    let id = match form_target(&p, "substitutions", &f.csrf, &id) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
    match st.vault.end_substitution(&p.caller, id).await {
        Ok(()) => see_other("/substitutions?n=ended"),
        Err(e) => service_error_page(tr, &e),
    }
}
