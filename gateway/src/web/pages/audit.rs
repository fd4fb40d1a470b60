//! The audit log and its verification (management).

#[allow(unused_imports)]
use super::*;

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
    token: String,
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
        token: session::csrf_token(&p.token, "audit"),
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
                (None, Some(r)) => role_text(&tr, r),
                (None, None) => "–".into(),
            };
            EventRow {
                seq: e.seq,
                when: tr.time(e.at),
                who,
                what: action_text(&tr, &e.action),
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
pub async fn audit_verify(State(st): State<AppState>, p: Page, Form(f): Form<TokenForm>) -> Response {
    let tr = p.tr;
    // A walk over the whole chain: a form of this session's, never a link.
    if let Err(refused) = form_token(&p, "audit", &f.csrf) {
        return refused;
    }
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
