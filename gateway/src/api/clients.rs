//! Clients: create, list (scope-filtered), read, reveal the BSN (audited),
//! assign a coach, close the trajectory.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::catalog::{ClientRow, ClientStatus, NewClientRow};
use vault::domain::{Bsn, Commissioner};
use vault::policy::Action;

use super::{
    ApiError, ApiJson, ApiQuery, ApiResult, AppState, Caller, event, opt_rfc3339, parse_id, parse_time, rfc3339,
};

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewClient {
    pub first_name: String,
    pub initials: String,
    pub last_name: String,
    /// YYYY-MM-DD
    pub birth_date: String,
    /// Must pass the eleven-test; stored encrypted, returned masked.
    pub bsn: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub postcode: Option<String>,
    pub city: Option<String>,
    /// uwv | municipality | employer | private
    pub commissioner: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub id: Uuid,
    pub first_name: String,
    pub initials: String,
    pub last_name: String,
    pub birth_date: String,
    /// `*****6789`, or null when no BSN was recorded.
    pub bsn_masked: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub postcode: Option<String>,
    pub city: Option<String>,
    pub commissioner: String,
    pub coach_id: Option<Uuid>,
    /// active | closed
    pub status: String,
    pub ended_at: Option<String>,
    pub restricted: bool,
    pub created_at: String,
}

impl AppState {
    /// The API view of a client; the BSN is opened only to mask it.
    pub fn client_view(&self, c: &ClientRow) -> ApiResult<ClientView> {
        let bsn_masked = match &c.bsn_sealed {
            Some(s) => {
                let raw = self.vault.open_field("bsn", c.id, s)?;
                let bsn = Bsn::parse(std::str::from_utf8(&raw).unwrap_or(""))
                    .map_err(|_| ApiError::internal(format!("stored BSN of client {} is malformed", c.id)))?;
                Some(bsn.masked())
            }
            None => None,
        };
        Ok(ClientView {
            id: c.id,
            first_name: c.first_name.clone(),
            initials: c.initials.clone(),
            last_name: c.last_name.clone(),
            birth_date: c.birth_date.clone(),
            bsn_masked,
            email: c.email.clone(),
            phone: c.phone.clone(),
            address: c.address.clone(),
            postcode: c.postcode.clone(),
            city: c.city.clone(),
            commissioner: c.commissioner.as_str().into(),
            coach_id: c.coach_id,
            status: c.status.as_str().into(),
            ended_at: opt_rfc3339(c.ended_at),
            restricted: c.restricted,
            created_at: rfc3339(c.created_at),
        })
    }
}

fn required(field: &'static str, v: &str) -> ApiResult<String> {
    let v = v.trim();
    if v.is_empty() || v.len() > 200 {
        return Err(ApiError::unprocessable("invalid_field", format!("{field} is required (at most 200 characters)")));
    }
    Ok(v.to_string())
}

fn optional(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

#[utoipa::path(post, path = "/api/v1/clients", tag = "clients", request_body = NewClient,
    responses((status = 201, body = ClientView), (status = 422, description = "invalid_bsn or invalid_field")),
    security(("bearer" = [])))]
pub async fn create(
    State(st): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<NewClient>,
) -> ApiResult<(StatusCode, Json<ClientView>)> {
    st.authorize(&caller, Action::CreateClient, None, None, "client.create").await?;
    let birth = NaiveDate::parse_from_str(body.birth_date.trim(), "%Y-%m-%d")
        .map_err(|_| ApiError::unprocessable("invalid_field", "birth_date is YYYY-MM-DD"))?;
    let commissioner: Commissioner = body
        .commissioner
        .parse()
        .map_err(|e: vault::domain::ParseError| ApiError::unprocessable("invalid_field", e.to_string()))?;
    let bsn = match optional(body.bsn) {
        Some(b) => Some(Bsn::parse(&b).map_err(|e| ApiError::unprocessable("invalid_bsn", e.to_string()))?),
        None => None,
    };
    let id = Uuid::new_v4();
    let row = NewClientRow {
        id,
        first_name: required("first_name", &body.first_name)?,
        initials: required("initials", &body.initials)?,
        last_name: required("last_name", &body.last_name)?,
        birth_date: birth.format("%Y-%m-%d").to_string(),
        bsn_sealed: bsn.as_ref().map(|b| st.vault.seal_field("bsn", id, b.expose().as_bytes())).transpose()?,
        email: optional(body.email),
        phone: optional(body.phone),
        address: optional(body.address),
        postcode: optional(body.postcode),
        city: optional(body.city),
        commissioner,
        coach_id: None,
    };
    st.vault.catalog.insert_client(&row).await?;
    let mut e = event(Some(&caller), "client.create", "ok");
    e.client_id = Some(id);
    e.details = json!({ "bsn_recorded": bsn.is_some() });
    st.audit(e).await?;
    let client = st.client(id).await?;
    Ok((StatusCode::CREATED, Json(st.client_view(&client)?)))
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/clients", tag = "clients",
    params(("status" = Option<String>, Query, description = "active | closed")),
    responses((status = 200, description = "{\"clients\": [ClientView]}")), security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<serde_json::Value>> {
    st.authorize(&caller, Action::ReadClient, None, None, "client.list").await?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some("active") => Some(ClientStatus::Active),
        Some("closed") => Some(ClientStatus::Closed),
        Some(_) => return Err(ApiError::unprocessable("invalid_field", "status is active or closed")),
    };
    let rows = st.vault.catalog.list_clients(status, None).await?;
    let now = Utc::now();
    let subs = st.substitutions_for(caller.user.id, caller.user.role, now).await?;
    let mut out = Vec::new();
    for c in rows.iter().filter(|c| {
        vault::policy::decide(caller.actor(), Action::ReadClient, Some(&super::facts(c)), &subs, now).is_allowed()
    }) {
        out.push(st.client_view(c)?);
    }
    Ok(Json(json!({ "clients": out })))
}

#[utoipa::path(get, path = "/api/v1/clients/{id}", tag = "clients",
    responses((status = 200, body = ClientView), (status = 404, description = "not found or outside your scope")),
    security(("bearer" = [])))]
pub async fn get(State(st): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<ClientView>> {
    let c = st.client(parse_id(&id)?).await?;
    st.authorize(&caller, Action::ReadClient, Some(&c), None, "client.read").await?;
    Ok(Json(st.client_view(&c)?))
}

#[utoipa::path(get, path = "/api/v1/clients/{id}/bsn", tag = "clients",
    responses((status = 200, description = "{\"bsn\": \"123456789\" | null}")), security(("bearer" = [])))]
pub async fn reveal_bsn(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    st.precheck(&caller, Action::RevealBsn, "client.bsn.reveal").await?;
    let c = st.client(parse_id(&id)?).await?;
    st.authorize(&caller, Action::RevealBsn, Some(&c), None, "client.bsn.reveal").await?;
    let bsn = match &c.bsn_sealed {
        Some(s) => Some(String::from_utf8_lossy(&st.vault.open_field("bsn", c.id, s)?).into_owned()),
        None => None,
    };
    let mut e = event(Some(&caller), "client.bsn.reveal", "allowed");
    e.client_id = Some(c.id);
    st.audit(e).await?;
    Ok(Json(json!({ "bsn": bsn })))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AssignCoach {
    pub coach_id: Uuid,
}

#[utoipa::path(put, path = "/api/v1/clients/{id}/coach", tag = "clients", request_body = AssignCoach,
    responses((status = 200, body = ClientView), (status = 422, description = "not a coach")), security(("bearer" = [])))]
pub async fn assign_coach(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AssignCoach>,
) -> ApiResult<Json<ClientView>> {
    st.precheck(&caller, Action::AssignCoach, "client.assign").await?;
    let c = st.client(parse_id(&id)?).await?;
    st.authorize(&caller, Action::AssignCoach, Some(&c), None, "client.assign").await?;
    let coach = match st.vault.catalog.user(body.coach_id).await {
        Ok(u) if u.active && u.role.is_coach() => u,
        Ok(_) | Err(vault::catalog::CatalogError::NotFound(_)) => {
            return Err(ApiError::unprocessable("not_a_coach", "coach_id must be an active coach or freelance coach"));
        }
        Err(e) => return Err(e.into()),
    };
    st.vault.catalog.assign_coach(c.id, Some(coach.id), Some(caller.user.id)).await?;
    let mut e = event(Some(&caller), "client.assign", "ok");
    e.client_id = Some(c.id);
    e.details = json!({ "from": c.coach_id, "to": coach.id });
    st.audit(e).await?;
    Ok(Json(st.client_view(&st.client(c.id).await?)?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CloseTrajectory {
    /// RFC 3339; default now.
    pub ended_at: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/clients/{id}/close", tag = "clients", request_body = CloseTrajectory,
    responses((status = 200, body = ClientView), (status = 409, description = "already closed")), security(("bearer" = [])))]
pub async fn close(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<ClientView>> {
    st.precheck(&caller, Action::CloseTrajectory, "client.close").await?;
    let c = st.client(parse_id(&id)?).await?;
    st.authorize(&caller, Action::CloseTrajectory, Some(&c), None, "client.close").await?;
    // The body is optional: empty means "now".
    let body: CloseTrajectory = if body.iter().all(u8::is_ascii_whitespace) {
        CloseTrajectory::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string()))?
    };
    let ended_at = match body.ended_at {
        Some(t) => parse_time(&t).ok_or_else(|| ApiError::unprocessable("invalid_field", "ended_at is RFC 3339"))?,
        None => Utc::now(),
    };
    if ended_at > Utc::now() + chrono::Duration::minutes(5) {
        return Err(ApiError::unprocessable("invalid_field", "ended_at cannot lie in the future"));
    }
    if !st.vault.catalog.close_client(c.id, ended_at.timestamp_micros()).await? {
        return Err(ApiError::new(StatusCode::CONFLICT, "already_closed", "the trajectory has already ended"));
    }
    let mut e = event(Some(&caller), "client.close", "ok");
    e.client_id = Some(c.id);
    e.details = json!({ "ended_at": rfc3339(ended_at.timestamp_micros()) });
    st.audit(e).await?;
    Ok(Json(st.client_view(&st.client(c.id).await?)?))
}
