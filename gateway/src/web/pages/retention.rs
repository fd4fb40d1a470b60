//! The destruction list of the coming period.

#[allow(unused_imports)]
use super::*;

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
    let before =
        nonempty(&f.before).unwrap_or_else(|| format_local(st.vault.now() + chrono::Duration::days(30), "%Y-%m-%d"));
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
