//! Accountability (issue 11; `vault::service::{breaches, review}`): the
//! breach register, an incident's reach from the audit log, and the log's
//! review.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::domain::Role;
use vault::service::{
    Breach, BreachPatch, BreachReach, NewBreach, NewReview, ProcessingRegister, ReachQuery, Review, ReviewQuery,
    ReviewReport, ReviewStatus,
};

use super::{ApiJson, ApiPath, ApiQuery, ApiResult, AppState, Auth, ErrorBody};

#[derive(Debug, Serialize, ToSchema)]
pub struct BreachList {
    /// Newest detection first.
    pub breaches: Vec<Breach>,
}

#[utoipa::path(post, path = "/api/v1/breaches", tag = "accountability", request_body = NewBreach,
    responses(
        (status = 201, description = "registered, with notify_deadline (detected + 72 hours)", body = Breach),
        (status = 403, description = "`forbidden`: management only", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn register_breach(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<NewBreach>,
) -> ApiResult<(StatusCode, Json<Breach>)> {
    Ok((StatusCode::CREATED, Json(st.vault.register_breach(&caller, body).await?)))
}

#[utoipa::path(get, path = "/api/v1/breaches", tag = "accountability",
    responses((status = 200, description = "the register", body = BreachList),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_breaches(State(st): State<AppState>, Auth(caller): Auth) -> ApiResult<Json<BreachList>> {
    Ok(Json(BreachList { breaches: st.vault.list_breaches(&caller).await? }))
}

#[utoipa::path(get, path = "/api/v1/breaches/{id}", tag = "accountability", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the entry with its updates", body = Breach),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_breach(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<Breach>> {
    Ok(Json(st.vault.get_breach(&caller, id).await?))
}

#[utoipa::path(patch, path = "/api/v1/breaches/{id}", tag = "accountability", params(("id" = Uuid, Path)),
    request_body = BreachPatch,
    responses((status = 200, description = "updated; the change is in `updates`", body = Breach),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_breach(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<BreachPatch>,
) -> ApiResult<Json<Breach>> {
    Ok(Json(st.vault.update_breach(&caller, id, body).await?))
}

#[utoipa::path(get, path = "/api/v1/breaches/{id}/reach", tag = "accountability", params(("id" = Uuid, Path), ReachQuery),
    responses((status = 200, description = "the clients and documents the matching audit events touched", body = BreachReach),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn breach_reach(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiPath(id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ReachQuery>,
) -> ApiResult<Json<BreachReach>> {
    Ok(Json(st.vault.breach_reach(&caller, id, q).await?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewList {
    /// Newest period first.
    pub reviews: Vec<Review>,
    /// How far the reviews cover the log without a gap, and whether the
    /// rest is older than `KLUIS_AUDIT_REVIEW_DAYS`.
    pub status: ReviewStatus,
}

#[utoipa::path(get, path = "/api/v1/audit/review", tag = "accountability", params(ReviewQuery),
    responses((status = 200, description = "the anomalies of the period, each with its events", body = ReviewReport),
              (status = 403, description = "`forbidden`: management only", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn audit_review(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<ReviewQuery>,
) -> ApiResult<Json<ReviewReport>> {
    Ok(Json(st.vault.audit_review(&caller, q).await?))
}

#[utoipa::path(post, path = "/api/v1/audit/reviews", tag = "accountability", request_body = NewReview,
    responses((status = 201, description = "recorded, with the period's findings counted", body = Review),
              (status = 403, description = "`forbidden`: management only", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_review(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiJson(body): ApiJson<NewReview>,
) -> ApiResult<(StatusCode, Json<Review>)> {
    Ok((StatusCode::CREATED, Json(st.vault.record_review(&caller, body).await?)))
}

#[utoipa::path(get, path = "/api/v1/audit/reviews", tag = "accountability",
    responses((status = 200, description = "the reviews done", body = ReviewList),
              (status = 403, description = "`forbidden`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_reviews(State(st): State<AppState>, Auth(caller): Auth) -> ApiResult<Json<ReviewList>> {
    let reviews = st.vault.list_reviews(&caller).await?;
    let status = st.vault.review_status(st.settings.audit_review_days).await?;
    Ok(Json(ReviewList { reviews, status }))
}

/// `&`, `<`, `>`, `"` and `'` as entities: text inside HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The register as a printable page: headings and tables, no script, no
/// style (the API's Content-Security-Policy allows neither), so it prints
/// as it is.
fn register_html(r: &ProcessingRegister) -> String {
    use std::fmt::Write;
    let names = |v: &[Role]| v.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
    let mut h = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<title>Processing register</title></head><body>\n<h1>Processing register (GDPR art. 30)</h1>\n");
    let _ = writeln!(
        h,
        "<p>Generated from the running configuration at {}.</p>\n<dl><dt>Controller</dt><dd>{}</dd>\
         <dt>Privacy contact</dt><dd>{}</dd><dt>Processing</dt><dd>{}</dd></dl>",
        esc(&r.generated_at.to_rfc3339()),
        esc(r.controller.as_deref().unwrap_or("(not configured: KLUIS_ORGANISATION)")),
        esc(r.privacy_contact.as_deref().unwrap_or("(not configured: KLUIS_PRIVACY_CONTACT)")),
        esc(r.processing)
    );
    h.push_str("<h2>Data subjects</h2><ul>");
    for d in &r.data_subjects {
        let _ = write!(h, "<li>{}</li>", esc(d));
    }
    h.push_str("</ul>\n<h2>Categories of data</h2><ul>");
    for d in &r.data_categories {
        let _ = write!(h, "<li>{}</li>", esc(d));
    }
    h.push_str(
        "</ul>\n<h2>Purposes</h2>\n<table><thead><tr><th scope=\"col\">purpose</th><th scope=\"col\">meaning</th>",
    );
    h.push_str(
        "<th scope=\"col\">roles (active trajectory)</th><th scope=\"col\">roles (archive)</th></tr></thead><tbody>",
    );
    for p in &r.purposes {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(p.purpose.as_str()),
            esc(p.meaning),
            esc(&names(&p.roles_active)),
            esc(&names(&p.roles_archive))
        );
    }
    h.push_str("</tbody></table>\n<h2>Retention</h2>\n<table><thead><tr><th scope=\"col\">document type</th>");
    h.push_str("<th scope=\"col\">clock starts</th><th scope=\"col\">days</th><th scope=\"col\">statutory</th></tr></thead><tbody>");
    for p in &r.retention {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(p.doc_type.as_str()),
            esc(p.clock_starts.as_str()),
            p.period_days,
            if p.statutory { "yes" } else { "no" }
        );
    }
    h.push_str("</tbody></table>\n<h2>Recipients</h2>\n");
    if r.recipients.is_empty() {
        h.push_str("<p>No disclosures recorded.</p>\n");
    } else {
        h.push_str("<table><thead><tr><th scope=\"col\">kind</th><th scope=\"col\">recipient</th>");
        h.push_str("<th scope=\"col\">clients</th><th scope=\"col\">last</th></tr></thead><tbody>");
        for x in &r.recipients {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(x.recipient_kind.as_str()),
                esc(&x.recipient),
                x.clients,
                esc(&x.last_disclosed_at.to_rfc3339())
            );
        }
        h.push_str("</tbody></table>\n");
    }
    let _ = writeln!(
        h,
        "<h2>Transfers outside the EEA</h2><p>{}</p>\n<h2>Security measures (art. 32)</h2><pre>{}</pre>\n</body></html>",
        if r.transfers_outside_the_eea { "yes" } else { "none" },
        esc(&serde_json::to_string_pretty(&r.security).unwrap_or_default())
    );
    h
}

#[utoipa::path(get, path = "/api/v1/processing-register", tag = "accountability",
    responses(
        (status = 200, description = "the register, generated from the running configuration; \
            `Accept: text/html` gives a printable page",
            content((ProcessingRegister = "application/json"), (String = "text/html"))),
        (status = 403, description = "`forbidden`: management only", body = ErrorBody),
    ), security(("bearer" = [])))]
pub async fn processing_register(
    State(st): State<AppState>,
    Auth(caller): Auth,
    headers: axum::http::HeaderMap,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let register = st.vault.processing_register(&caller).await?;
    let html = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.split(',').any(|m| m.trim().starts_with("text/html")));
    if html {
        return Ok(([(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")], register_html(&register))
            .into_response());
    }
    Ok(Json(register).into_response())
}

#[cfg(test)]
mod tests {
    use super::esc;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(esc("<b>A&B</b> \"x\" 'y'"), "&lt;b&gt;A&amp;B&lt;/b&gt; &quot;x&quot; &#39;y&#39;");
    }
}
