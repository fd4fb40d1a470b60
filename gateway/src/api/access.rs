//! Substitutions, restriction (GDPR art. 18), the audit log and a client's
//! access log.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::audit::Event;
use vault::catalog::SubstitutionRow;
use vault::policy::Action;

use super::clients::ClientView;
use super::{ApiError, ApiJson, ApiQuery, ApiResult, AppState, Caller, event, parse_id, parse_time, rfc3339};

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewSubstitution {
    pub absent_coach_id: Uuid,
    pub substitute_id: Uuid,
    /// RFC 3339
    pub from: String,
    /// RFC 3339, exclusive
    pub until: String,
    /// vacation | sickness
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SubstitutionView {
    pub id: Uuid,
    pub absent_coach_id: Uuid,
    pub substitute_id: Uuid,
    pub from: String,
    pub until: String,
    pub reason: String,
    pub created_by: Uuid,
    pub created_at: String,
    pub ended_early: bool,
}

impl From<&SubstitutionRow> for SubstitutionView {
    fn from(s: &SubstitutionRow) -> Self {
        SubstitutionView {
            id: s.id,
            absent_coach_id: s.absent_coach_id,
            substitute_id: s.substitute_id,
            from: rfc3339(s.starts_at),
            until: rfc3339(s.ends_at),
            reason: s.reason.clone(),
            created_by: s.created_by,
            created_at: rfc3339(s.created_at),
            ended_early: s.ended_early_by.is_some(),
        }
    }
}

async fn active_coach(st: &AppState, id: Uuid, what: &str) -> ApiResult<()> {
    match st.vault.catalog.user(id).await {
        Ok(u) if u.active && u.role.is_coach() => Ok(()),
        Ok(_) | Err(vault::catalog::CatalogError::NotFound(_)) => {
            Err(ApiError::unprocessable("not_a_coach", format!("{what} must be an active coach or freelance coach")))
        }
        Err(e) => Err(e.into()),
    }
}

#[utoipa::path(post, path = "/api/v1/substitutions", tag = "access", request_body = NewSubstitution,
    responses((status = 201, body = SubstitutionView), (status = 422, description = "invalid window or not a coach")),
    security(("bearer" = [])))]
pub async fn create_substitution(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewSubstitution>,
) -> ApiResult<(StatusCode, Json<SubstitutionView>)> {
    st.authorize(&caller, Action::RegisterSubstitution, None, None, "substitution.create").await?;
    if !matches!(body.reason.as_str(), "vacation" | "sickness") {
        return Err(ApiError::unprocessable("invalid_field", "reason is vacation or sickness"));
    }
    let from = parse_time(&body.from).ok_or_else(|| ApiError::unprocessable("invalid_field", "from is RFC 3339"))?;
    let until = parse_time(&body.until).ok_or_else(|| ApiError::unprocessable("invalid_field", "until is RFC 3339"))?;
    if until <= from {
        return Err(ApiError::unprocessable("invalid_field", "until must be after from"));
    }
    if body.absent_coach_id == body.substitute_id {
        return Err(ApiError::unprocessable("invalid_field", "a coach cannot substitute for themselves"));
    }
    active_coach(&st, body.absent_coach_id, "absent_coach_id").await?;
    active_coach(&st, body.substitute_id, "substitute_id").await?;
    let row = SubstitutionRow {
        id: Uuid::new_v4(),
        absent_coach_id: body.absent_coach_id,
        substitute_id: body.substitute_id,
        starts_at: from.timestamp_micros(),
        ends_at: until.timestamp_micros(),
        reason: body.reason,
        created_by: caller.user.id,
        created_at: Utc::now().timestamp_micros(),
        ended_early_by: None,
    };
    st.vault.catalog.insert_substitution(&row).await?;
    let mut e = event(Some(&caller), "substitution.create", "ok");
    e.on_behalf_of = Some(row.absent_coach_id);
    e.details = json!({ "substitution_id": row.id, "substitute_id": row.substitute_id, "reason": row.reason,
                        "from": rfc3339(row.starts_at), "until": rfc3339(row.ends_at) });
    st.audit(e).await?;
    Ok((StatusCode::CREATED, Json(SubstitutionView::from(&row))))
}

#[derive(Debug, Deserialize)]
pub struct SubstitutionQuery {
    /// `current` (default): those that have not ended; `all`.
    pub show: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/substitutions", tag = "access",
    params(("show" = Option<String>, Query, description = "current (default) | all")),
    responses((status = 200, description = "{\"substitutions\": [SubstitutionView]}")), security(("bearer" = [])))]
pub async fn list_substitutions(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<SubstitutionQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    st.authorize(&caller, Action::RegisterSubstitution, None, None, "substitution.list").await?;
    let current = (q.show.as_deref() != Some("all")).then(|| Utc::now().timestamp_micros());
    let rows = st.vault.catalog.list_substitutions(current).await?;
    let out: Vec<SubstitutionView> = rows.iter().map(SubstitutionView::from).collect();
    Ok(Json(json!({ "substitutions": out })))
}

#[utoipa::path(delete, path = "/api/v1/substitutions/{id}", tag = "access",
    responses((status = 204, description = "ended now"), (status = 404, description = "no such substitution")),
    security(("bearer" = [])))]
pub async fn end_substitution(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    st.authorize(&caller, Action::RegisterSubstitution, None, None, "substitution.end").await?;
    let id = parse_id(&id)?;
    let row = st.vault.catalog.substitution(id).await?;
    let ended = st.vault.catalog.end_substitution(id, caller.user.id, Utc::now().timestamp_micros()).await?;
    let mut e = event(Some(&caller), "substitution.end", "ok");
    e.on_behalf_of = Some(row.absent_coach_id);
    e.details = json!({ "substitution_id": id, "was_running_or_planned": ended });
    st.audit(e).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Restriction {
    pub restricted: bool,
    pub reason: String,
}

#[utoipa::path(put, path = "/api/v1/clients/{id}/restriction", tag = "access", request_body = Restriction,
    responses((status = 200, body = ClientView), (status = 422, description = "a reason is required")),
    security(("bearer" = [])))]
pub async fn set_restriction(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<Restriction>,
) -> ApiResult<Json<ClientView>> {
    st.precheck(&caller, Action::SetRestriction, "client.restriction").await?;
    let c = st.client(parse_id(&id)?).await?;
    st.authorize(&caller, Action::SetRestriction, Some(&c), None, "client.restriction").await?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.len() > 1000 {
        return Err(ApiError::unprocessable("reason_required", "a reason (at most 1000 characters) is required"));
    }
    st.vault.catalog.set_client_restricted(c.id, body.restricted).await?;
    let mut e = event(Some(&caller), "client.restriction", "ok");
    e.client_id = Some(c.id);
    e.reason = Some(reason.to_string());
    e.details = json!({ "restricted": { "from": c.restricted, "to": body.restricted } });
    st.audit(e).await?;
    Ok(Json(st.client_view(&st.client(c.id).await?)?))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub seq: i64,
    pub at: String,
    pub actor_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub action: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub purpose: Option<String>,
    pub client_id: Option<Uuid>,
    pub document_id: Option<Uuid>,
    pub on_behalf_of: Option<Uuid>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub hash: String,
}

impl From<&Event> for AuditView {
    fn from(e: &Event) -> Self {
        AuditView {
            seq: e.seq,
            at: rfc3339(e.at),
            actor_id: e.body.actor_id,
            actor_role: e.body.actor_role.clone(),
            action: e.body.action.clone(),
            outcome: e.body.outcome.clone(),
            reason: e.body.reason.clone(),
            purpose: e.body.purpose.clone(),
            client_id: e.body.client_id,
            document_id: e.body.document_id,
            on_behalf_of: e.body.on_behalf_of,
            request_id: e.body.request_id.clone(),
            details: e.body.details.clone(),
            hash: e.hash.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    pub client_id: Option<Uuid>,
    pub document_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    pub limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "access",
    params(("client_id" = Option<Uuid>, Query), ("document_id" = Option<Uuid>, Query), ("actor_id" = Option<Uuid>, Query),
           ("action" = Option<String>, Query), ("limit" = Option<i64>, Query, description = "default 100, at most 1000")),
    responses((status = 200, description = "{\"events\": [AuditView]} newest first")), security(("bearer" = [])))]
pub async fn audit_log(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    st.authorize(&caller, Action::ReadAuditLog, None, None, "audit.read").await?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let events = st
        .vault
        .catalog
        .audit_events_filtered(q.client_id, q.document_id, q.actor_id, q.action.as_deref(), limit)
        .await?;
    let out: Vec<AuditView> = events.iter().map(AuditView::from).collect();
    Ok(Json(json!({ "events": out })))
}

#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "access",
    responses((status = 200, description = "{\"ok\": true, \"events\": N, \"head\": \"hex\"} or {\"ok\": false, \"error\"}")),
    security(("bearer" = [])))]
pub async fn audit_verify(State(st): State<AppState>, caller: Caller) -> ApiResult<Json<serde_json::Value>> {
    st.authorize(&caller, Action::ReadAuditLog, None, None, "audit.verify").await?;
    Ok(Json(match st.vault.catalog.verify_audit_chain().await? {
        Ok((events, head)) => json!({ "ok": true, "events": events, "head": head }),
        Err(b) => json!({ "ok": false, "error": b.to_string() }),
    }))
}

/// One line of a client's access log: who opened what, when, why.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessEntry {
    pub at: String,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub outcome: String,
    pub purpose: Option<String>,
    pub document_id: Option<Uuid>,
    /// The absent colleague, when access went through a substitution.
    pub on_behalf_of: Option<Uuid>,
    pub reason: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/clients/{id}/access-log", tag = "access",
    responses((status = 200, description = "{\"client_id\", \"entries\": [AccessEntry]} oldest first, and the caseload history")),
    security(("bearer" = [])))]
pub async fn access_log(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    st.precheck(&caller, Action::ReadAccessLog, "client.access_log").await?;
    let c = st.client(parse_id(&id)?).await?;
    st.authorize(&caller, Action::ReadAccessLog, Some(&c), None, "client.access_log").await?;
    let mut events = st.vault.catalog.audit_events_filtered(Some(c.id), None, None, None, 10_000).await?;
    events.reverse();
    let mut names = std::collections::HashMap::new();
    for u in st.vault.catalog.list_users().await? {
        names.insert(u.id, u.display_name);
    }
    let entries: Vec<AccessEntry> = events
        .iter()
        .map(|e| AccessEntry {
            at: rfc3339(e.at),
            actor_id: e.body.actor_id,
            actor_name: e.body.actor_id.and_then(|a| names.get(&a).cloned()),
            actor_role: e.body.actor_role.clone(),
            action: e.body.action.clone(),
            outcome: e.body.outcome.clone(),
            purpose: e.body.purpose.clone(),
            document_id: e.body.document_id,
            on_behalf_of: e.body.on_behalf_of,
            reason: e.body.reason.clone(),
        })
        .collect();
    let caseload: Vec<serde_json::Value> = st
        .vault
        .catalog
        .caseload_history(c.id)
        .await?
        .iter()
        .map(|p| {
            json!({ "coach_id": p.coach_id, "coach_name": p.coach_id.and_then(|a| names.get(&a).cloned()),
                    "from": rfc3339(p.from_at), "until": p.until_at.map(rfc3339) })
        })
        .collect();
    let mut e = event(Some(&caller), "client.access_log", "allowed");
    e.client_id = Some(c.id);
    st.audit(e).await?;
    Ok(Json(json!({ "client_id": c.id, "entries": entries, "caseload": caseload })))
}
