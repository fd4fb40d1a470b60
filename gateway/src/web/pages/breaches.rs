//! The register of personal data breaches (management).

#[allow(unused_imports)]
use super::*;

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
    let now = format_local(st.vault.now(), "%Y-%m-%dT%H:%M");
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

/// Register a breach (management). The form repeats `categories`, so the
/// body is read pair by pair.
pub async fn register_breach(State(st): State<AppState>, p: Page, body: axum::body::Bytes) -> Response {
    let tr = p.tr;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let one = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    if let Err(refused) = form_token(&p, "breaches", &one("csrf")) {
        return refused;
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
    let id = match form_target(&p, "breaches", &f.csrf, &id) {
        Ok(id) => id,
        Err(refused) => return refused,
    };
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
