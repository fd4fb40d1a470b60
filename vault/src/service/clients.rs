//! Clients (the dossier owners): create, list (scope-filtered and audited),
//! read, reveal the BSN (audited), assign a coach, close the trajectory,
//! restrict processing (GDPR art. 18).
//!
//! The BSN is sealed before it is stored and shown only masked; the reveal
//! is its own audited operation. Free-text fields are length-limited and
//! refuse control, invisible and text-direction characters; birth dates lie
//! between 1900 and today.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, ErrorCode, ServiceError, ServiceResult, opt_time};
use crate::Vault;
use crate::catalog::{ClientRow, NewClientRow, micros_to_time};
use crate::domain::{self, Bsn, ClientStatus, Commissioner};
use crate::policy::{Action, Target};

/// `POST /api/v1/clients`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<100>))]
    pub first_name: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<20>))]
    pub initials: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<100>))]
    pub last_name: String,
    /// Between 1900-01-01 and today.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub birth_date: String,
    /// Nine digits that pass the eleven-test; stored encrypted, returned masked.
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::bsn))]
    pub bsn: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::email))]
    pub email: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<32>))]
    pub phone: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<200>))]
    pub address: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<16>))]
    pub postcode: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<100>))]
    pub city: Option<String>,
    pub commissioner: Commissioner,
}

/// A client as the API shows it: the BSN only masked.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Client {
    pub id: Uuid,
    pub first_name: String,
    pub initials: String,
    pub last_name: String,
    /// Null once the client's data was erased.
    pub birth_date: Option<NaiveDate>,
    /// `*****6789`, or null when no BSN was recorded.
    pub bsn_masked: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub postcode: Option<String>,
    pub city: Option<String>,
    pub commissioner: Commissioner,
    pub coach_id: Option<Uuid>,
    pub status: ClientStatus,
    pub ended_at: Option<DateTime<Utc>>,
    pub restricted: bool,
    /// The client consented to be approached for the satisfaction survey
    /// (the consent register; without it that purpose is refused).
    pub survey_consent: bool,
    /// Set when the client's data was erased (GDPR art. 17): the personal
    /// fields are empty; the tombstones and the certificate remain.
    pub erased_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A page of the client list (the web UI).
#[derive(Debug, Clone, Default)]
pub struct ClientPageQuery {
    /// Staff only (a coach's list is always the running trajectories).
    pub status: Option<ClientStatus>,
    /// The start of the last name, any case.
    pub name: Option<String>,
    /// 1 to 200.
    pub limit: i64,
    pub offset: i64,
}

/// One page of clients, and how many the caller may see in all.
#[derive(Debug, Clone)]
pub struct ClientPage {
    pub total: i64,
    pub clients: Vec<Client>,
}

/// `GET /api/v1/clients?status=`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ClientQuery {
    #[cfg_attr(feature = "openapi", param(inline))]
    pub status: Option<ClientStatus>,
}

/// The revealed BSN (audited), or null when none was recorded.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevealedBsn {
    pub bsn: Option<String>,
}

/// `PUT /api/v1/clients/{id}/coach`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetCoach {
    /// An active coach or freelance coach.
    pub coach_id: Uuid,
}

/// `POST /api/v1/clients/{id}/close`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CloseTrajectory {
    /// When the trajectory ended; default now. Not in the future.
    pub ended_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/clients/{id}/reopen`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReopenTrajectory {
    /// Why the trajectory starts again.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::schema::required::<1000>))]
    pub reason: String,
}

/// `PUT /api/v1/clients/{id}/restriction`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetRestriction {
    pub restricted: bool,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<1000>))]
    pub reason: String,
}

impl Vault {
    /// The API view of a client; the BSN is opened only to mask it.
    pub(crate) fn client_view(&self, c: &ClientRow) -> ServiceResult<Client> {
        let bsn_masked = match &c.bsn_sealed {
            Some(s) => {
                let raw = self.open_field("bsn", c.id, s)?;
                let bsn = Bsn::parse(std::str::from_utf8(&raw).unwrap_or(""))
                    .map_err(|_| ServiceError::internal(format!("stored BSN of client {} is malformed", c.id)))?;
                Some(bsn.masked())
            }
            None => None,
        };
        let birth_date =
            match c.erased_at {
                Some(_) => None,
                None => Some(NaiveDate::parse_from_str(&c.birth_date, "%Y-%m-%d").map_err(|_| {
                    ServiceError::internal(format!("stored birth date of client {} is malformed", c.id))
                })?),
            };
        Ok(Client {
            id: c.id,
            first_name: c.first_name.clone(),
            initials: c.initials.clone(),
            last_name: c.last_name.clone(),
            birth_date,
            bsn_masked,
            email: c.email.clone(),
            phone: c.phone.clone(),
            address: c.address.clone(),
            postcode: c.postcode.clone(),
            city: c.city.clone(),
            commissioner: c.commissioner,
            coach_id: c.coach_id,
            status: c.status,
            ended_at: opt_time(c.ended_at),
            restricted: c.restricted,
            survey_consent: c.survey_consent,
            erased_at: opt_time(c.erased_at),
            created_at: micros_to_time(c.created_at),
        })
    }

    pub async fn create_client(&self, caller: &Caller, new: NewClient) -> ServiceResult<Client> {
        let mut op = self.op(caller, "client.create").await?;
        op.authorize(Action::CreateClient, Target::Nothing).await?;
        let today = op.now_time().date_naive();
        let bsn = match domain::optional_text("bsn", new.bsn.as_deref(), 20)? {
            Some(b) => Some(Bsn::parse(&b)?),
            None => None,
        };
        let id = Uuid::new_v4();
        let mut row = NewClientRow {
            id,
            first_name: domain::required_text("first_name", &new.first_name, 100)?,
            initials: domain::required_text("initials", &new.initials, 20)?,
            last_name: domain::required_text("last_name", &new.last_name, 100)?,
            birth_date: domain::birth_date(&new.birth_date, today)?.format("%Y-%m-%d").to_string(),
            bsn_sealed: None,
            email: domain::email(new.email.as_deref())?,
            phone: domain::optional_text("phone", new.phone.as_deref(), 32)?,
            address: domain::optional_text("address", new.address.as_deref(), 200)?,
            postcode: domain::optional_text("postcode", new.postcode.as_deref(), 16)?,
            city: domain::optional_text("city", new.city.as_deref(), 100)?,
            commissioner: new.commissioner,
            coach_id: None,
        };
        if let Some(b) = &bsn {
            row.bsn_sealed = Some(self.seal_field_in(op.tx()?, "bsn", id, b.expose().as_bytes()).await?);
        }
        op.tx()?.insert_client(&row).await?;
        if let Some(sealed) = &row.bsn_sealed {
            op.tx()?.ensure_current_key(sealed.version).await?;
        }
        op.event.client_id = Some(id);
        op.event.details = serde_json::json!({ "bsn_recorded": bsn.is_some() });
        let client = op.tx()?.client(id).await?;
        let view = self.client_view(&client)?;
        op.commit().await?;
        Ok(view)
    }

    /// The clients the caller may see (a coach: own caseload and the
    /// caseloads of absent colleagues during a substitution), by name. The
    /// listing is audited: who, which filter, how many; never the data.
    pub async fn list_clients(&self, caller: &Caller, status: Option<ClientStatus>) -> ServiceResult<Vec<Client>> {
        let mut op = self.op(caller, "client.list").await?;
        op.authorize(Action::ReadClient, Target::Nothing).await?;
        let rows = op.tx()?.list_clients(status, None).await?;
        let mut out = Vec::new();
        for c in &rows {
            if op.decision(Action::ReadClient, Target::Client(&super::facts(c))).await?.is_allowed() {
                out.push(self.client_view(c)?);
            }
        }
        op.event.outcome = "allowed".into();
        op.event.details = serde_json::json!({ "status": status, "count": out.len() });
        op.commit().await?;
        Ok(out)
    }

    /// One page of the clients the caller may see, by name (the web UI's
    /// lists; a coach's are the running trajectories of the caseload and of
    /// absent colleagues during a substitution). Audited like the listing.
    pub async fn list_clients_page(&self, caller: &Caller, q: ClientPageQuery) -> ServiceResult<ClientPage> {
        let mut op = self.op(caller, "client.list").await?;
        op.authorize(Action::ReadClient, Target::Nothing).await?;
        let limit = q.limit.clamp(1, 200);
        let offset = q.offset.max(0);
        let name = q.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        if name.is_some_and(|n| n.chars().count() > 100) {
            return Err(ServiceError::new(ErrorCode::InvalidQuery, "name is at most 100 characters"));
        }
        let mut clients = Vec::new();
        let total;
        if caller.role().is_coach() {
            // Hundreds at most: read the reach, decide each, then the page.
            let mut coaches = vec![caller.id()];
            coaches.extend(op.substitutions().await?.iter().map(|s| s.absent));
            let (rows, _) =
                op.tx()?.list_clients_page(Some(ClientStatus::Active), Some(&coaches), name, i64::MAX, 0).await?;
            let mut allowed = Vec::new();
            for c in &rows {
                if op.decision(Action::ReadClient, Target::Client(&super::facts(c))).await?.is_allowed() {
                    allowed.push(c);
                }
            }
            total = allowed.len() as i64;
            for c in allowed.into_iter().skip(offset as usize).take(limit as usize) {
                clients.push(self.client_view(c)?);
            }
        } else {
            let (rows, n) = op.tx()?.list_clients_page(q.status, None, name, limit, offset).await?;
            total = n;
            for c in &rows {
                if op.decision(Action::ReadClient, Target::Client(&super::facts(c))).await?.is_allowed() {
                    clients.push(self.client_view(c)?);
                }
            }
        }
        op.event.outcome = "allowed".into();
        op.event.details = serde_json::json!({
            "status": q.status, "name_filter": name.is_some(), "offset": offset, "count": clients.len(),
        });
        op.commit().await?;
        Ok(ClientPage { total, clients })
    }

    pub async fn get_client(&self, caller: &Caller, id: Uuid) -> ServiceResult<Client> {
        let mut op = self.op(caller, "client.read").await?;
        let (c, _) = op.client(id, Action::ReadClient).await?;
        let view = self.client_view(&c)?;
        op.commit().await?;
        Ok(view)
    }

    pub async fn reveal_bsn(&self, caller: &Caller, id: Uuid) -> ServiceResult<RevealedBsn> {
        let mut op = self.op(caller, "client.bsn.reveal").await?;
        let (c, _) = op.client(id, Action::RevealBsn).await?;
        let bsn = match &c.bsn_sealed {
            Some(s) => Some(String::from_utf8_lossy(&self.open_field("bsn", c.id, s)?).into_owned()),
            None => None,
        };
        op.commit().await?;
        Ok(RevealedBsn { bsn })
    }

    pub async fn assign_coach(&self, caller: &Caller, id: Uuid, set: SetCoach) -> ServiceResult<Client> {
        let mut op = self.op(caller, "client.assign").await?;
        let (c, _) = op.client(id, Action::AssignCoach).await?;
        let coach = op.tx()?.user_opt(set.coach_id).await?;
        if !coach.is_some_and(|u| u.active && u.role.is_coach()) {
            return Err(ServiceError::new(ErrorCode::NotACoach, "coach_id must be an active coach or freelance coach"));
        }
        op.tx()?.assign_coach(c.id, Some(set.coach_id), Some(caller.id())).await?;
        op.event.details = serde_json::json!({ "from": c.coach_id, "to": set.coach_id });
        let view = self.client_view(&op.tx()?.client(c.id).await?)?;
        op.commit().await?;
        Ok(view)
    }

    /// End the trajectory: the documents move to the archive.
    pub async fn close_trajectory(&self, caller: &Caller, id: Uuid, close: CloseTrajectory) -> ServiceResult<Client> {
        let mut op = self.op(caller, "client.close").await?;
        let (c, _) = op.client(id, Action::CloseTrajectory).await?;
        let now = op.now_time();
        let ended_at = close.ended_at.unwrap_or(now);
        if ended_at > now + chrono::Duration::minutes(5) {
            return Err(ServiceError::new(ErrorCode::InvalidField, "ended_at cannot lie in the future"));
        }
        if !op.tx()?.close_client(c.id, ended_at.timestamp_micros()).await? {
            return Err(ServiceError::new(ErrorCode::AlreadyClosed, "the trajectory has already ended"));
        }
        op.event.details = serde_json::json!({ "ended_at": ended_at });
        let view = self.client_view(&op.tx()?.client(c.id).await?)?;
        op.commit().await?;
        Ok(view)
    }

    /// Reopen an ended trajectory (management, office, with a reason): the
    /// destruction dates that counted from its end are cleared again, in
    /// the same transaction; the event says how many documents had one.
    pub async fn reopen_trajectory(
        &self,
        caller: &Caller,
        id: Uuid,
        reopen: ReopenTrajectory,
    ) -> ServiceResult<Client> {
        let mut op = self.op(caller, "client.reopen").await?;
        let (c, _) = op.client(id, Action::CloseTrajectory).await?;
        let reason = domain::required_text("reason", &reopen.reason, 1000)?;
        if !op.tx()?.reopen_client(c.id).await? {
            return Err(ServiceError::new(ErrorCode::NotClosed, "the trajectory has not ended"));
        }
        op.event.reason = Some(reason);
        op.event.details = serde_json::json!({ "ended_at": c.ended_at.map(crate::catalog::micros_to_time) });
        let view = self.client_view(&op.tx()?.client(c.id).await?)?;
        op.commit().await?;
        Ok(view)
    }

    /// Restrict (or lift the restriction of) all processing of a client.
    pub async fn set_restriction(&self, caller: &Caller, id: Uuid, set: SetRestriction) -> ServiceResult<Client> {
        let mut op = self.op(caller, "client.restriction").await?;
        let (c, _) = op.client(id, Action::SetRestriction).await?;
        let reason = domain::required_text("reason", &set.reason, 1000)?;
        op.tx()?.set_client_restricted(c.id, set.restricted).await?;
        op.event.reason = Some(reason);
        op.event.details = serde_json::json!({ "restricted": { "from": c.restricted, "to": set.restricted } });
        let view = self.client_view(&op.tx()?.client(c.id).await?)?;
        op.commit().await?;
        Ok(view)
    }
}
