//! The breach register (GDPR art. 33(5); SPEC §6 `/api/v1/breaches`;
//! issue 11), management only.
//!
//! An entry holds the facts art. 33(5) asks to document: when the breach
//! was detected, its nature, the categories of data, the estimated numbers
//! of data subjects and records, the likely consequences, the measures
//! taken; later whether and when the authority was notified (or why not)
//! and whether the data subjects were informed. It answers with
//! `notify_deadline` (detected + 72 hours, art. 33(1)) and `overdue` (no
//! notification and no reason not to notify, past the deadline). Every
//! change is an update in the entry's history (what changed from what to
//! what, who, when, a note), in the transaction of the change and its
//! audit event.
//!
//! An incident's reach comes from the audit log, not from memory
//! ([`Vault::breach_reach`]): the clients and documents that the events of
//! an actor, a time window and/or a set of documents touched, so the
//! numbers in a notification are facts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, ErrorCode, ServiceError, ServiceResult, opt_time};
use crate::Vault;
use crate::catalog::{BreachRow, BreachUpdateRow, IncidentFilter, micros_to_time};
use crate::domain::{self, DataCategory};
use crate::policy::{Action, Target};

/// Art. 33(1): without undue delay and, where feasible, within 72 hours.
pub const NOTIFY_HOURS: i64 = 72;

/// `POST /api/v1/breaches`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewBreach {
    /// When the agency became aware of it; not in the future.
    pub detected_at: DateTime<Utc>,
    /// What happened.
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<4000>))]
    pub nature: String,
    /// At least one.
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub categories: Vec<DataCategory>,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100000000))]
    pub data_subjects_estimate: i64,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100000000))]
    pub records_estimate: i64,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<4000>))]
    pub consequences: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<4000>))]
    pub measures: String,
}

/// `PATCH /api/v1/breaches/{id}`: what the investigation learned; absent
/// fields stay.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BreachPatch {
    pub detected_at: Option<DateTime<Utc>>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<4000>))]
    pub nature: Option<String>,
    #[cfg_attr(feature = "openapi", schema(min_items = 1))]
    pub categories: Option<Vec<DataCategory>>,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100000000))]
    pub data_subjects_estimate: Option<i64>,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100000000))]
    pub records_estimate: Option<i64>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<4000>))]
    pub consequences: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<4000>))]
    pub measures: Option<String>,
    /// When the Autoriteit Persoonsgegevens was notified; not in the future.
    pub authority_notified_at: Option<DateTime<Utc>>,
    /// Why the authority is not notified (unlikely to result in a risk).
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<2000>))]
    pub authority_not_notified_reason: Option<String>,
    /// The data subjects were informed (art. 34).
    pub data_subjects_informed: Option<bool>,
    /// What this update records (kept with it).
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<2000>))]
    pub note: Option<String>,
}

/// One update of an entry.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreachUpdate {
    pub at: DateTime<Utc>,
    pub by: Uuid,
    /// `{field: {"from", "to"}}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub changes: serde_json::Value,
    pub note: Option<String>,
}

/// An entry of the register.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Breach {
    pub id: Uuid,
    pub detected_at: DateTime<Utc>,
    pub nature: String,
    pub categories: Vec<DataCategory>,
    pub data_subjects_estimate: i64,
    pub records_estimate: i64,
    pub consequences: String,
    pub measures: String,
    pub authority_notified_at: Option<DateTime<Utc>>,
    pub authority_not_notified_reason: Option<String>,
    pub data_subjects_informed: bool,
    pub data_subjects_informed_at: Option<DateTime<Utc>>,
    /// Detected + 72 hours.
    pub notify_deadline: DateTime<Utc>,
    /// Neither notified nor decided not to notify, past the deadline.
    pub overdue: bool,
    /// Notified after the deadline (art. 33(1) then asks for the reasons of
    /// the delay, in a note).
    pub notified_late: Option<bool>,
    pub registered_by: Uuid,
    pub registered_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Oldest first; the registration is the first.
    pub updates: Vec<BreachUpdate>,
}

/// `GET /api/v1/breaches/{id}/reach`: every given filter must match.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ReachQuery {
    /// The user whose actions the incident concerns.
    pub actor_id: Option<Uuid>,
    /// From (inclusive), RFC 3339.
    pub from: Option<DateTime<Utc>>,
    /// Until (exclusive), RFC 3339.
    pub until: Option<DateTime<Utc>>,
    /// Comma-separated document ids (at most 500).
    #[cfg_attr(feature = "openapi", param(pattern = "^[0-9a-fA-F-]{36}(,[0-9a-fA-F-]{36})*$"))]
    pub document_ids: Option<String>,
}

/// What an incident touched, from the audit log.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreachReach {
    pub breach_id: Uuid,
    /// Successful events that matched.
    pub events: i64,
    /// Distinct clients (data subjects) concerned.
    pub data_subjects: usize,
    /// Distinct documents concerned.
    pub records: usize,
    pub client_ids: Vec<Uuid>,
    pub document_ids: Vec<Uuid>,
}

/// Open breaches for the metrics: not notified, and past the deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreachCounts {
    pub undecided: i64,
    pub overdue: i64,
}

fn deadline(detected_at: i64) -> i64 {
    detected_at + NOTIFY_HOURS * 3_600_000_000
}

fn view(b: &BreachRow, updates: &[BreachUpdateRow], now: i64) -> Breach {
    let deadline = deadline(b.detected_at);
    let undecided = b.authority_notified_at.is_none() && b.authority_not_notified_reason.is_none();
    Breach {
        id: b.id,
        detected_at: micros_to_time(b.detected_at),
        nature: b.nature.clone(),
        categories: b.categories.clone(),
        data_subjects_estimate: b.data_subjects_estimate,
        records_estimate: b.records_estimate,
        consequences: b.consequences.clone(),
        measures: b.measures.clone(),
        authority_notified_at: opt_time(b.authority_notified_at),
        authority_not_notified_reason: b.authority_not_notified_reason.clone(),
        data_subjects_informed: b.data_subjects_informed,
        data_subjects_informed_at: opt_time(b.data_subjects_informed_at),
        notify_deadline: micros_to_time(deadline),
        overdue: undecided && now > deadline,
        notified_late: b.authority_notified_at.map(|n| n > deadline),
        registered_by: b.registered_by,
        registered_at: micros_to_time(b.registered_at),
        updated_at: micros_to_time(b.updated_at),
        updates: updates
            .iter()
            .map(|u| BreachUpdate {
                at: micros_to_time(u.at),
                by: u.by_user,
                changes: u.changes.clone(),
                note: u.note.clone(),
            })
            .collect(),
    }
}

fn not_future(field: &'static str, t: DateTime<Utc>, now: DateTime<Utc>) -> ServiceResult<()> {
    if t > now + chrono::Duration::minutes(5) {
        return Err(ServiceError::new(ErrorCode::InvalidField, format!("{field} cannot lie in the future")));
    }
    Ok(())
}

fn estimate(field: &'static str, n: i64) -> ServiceResult<i64> {
    if !(0..=100_000_000).contains(&n) {
        return Err(ServiceError::new(ErrorCode::InvalidField, format!("{field} is between 0 and 100000000")));
    }
    Ok(n)
}

fn categories(mut c: Vec<DataCategory>) -> ServiceResult<Vec<DataCategory>> {
    c.sort();
    c.dedup();
    if c.is_empty() {
        return Err(ServiceError::new(ErrorCode::InvalidField, "categories names at least one category of data"));
    }
    Ok(c)
}

impl Vault {
    pub async fn register_breach(&self, caller: &Caller, new: NewBreach) -> ServiceResult<Breach> {
        let mut op = self.op(caller, "breach.register").await?;
        op.authorize(Action::BreachRegister, Target::Nothing).await?;
        let now = op.now_time();
        not_future("detected_at", new.detected_at, now)?;
        let row = BreachRow {
            id: Uuid::new_v4(),
            detected_at: new.detected_at.timestamp_micros(),
            nature: domain::required_text("nature", &new.nature, 4000)?,
            categories: categories(new.categories)?,
            data_subjects_estimate: estimate("data_subjects_estimate", new.data_subjects_estimate)?,
            records_estimate: estimate("records_estimate", new.records_estimate)?,
            consequences: domain::required_text("consequences", &new.consequences, 4000)?,
            measures: domain::required_text("measures", &new.measures, 4000)?,
            authority_notified_at: None,
            authority_not_notified_reason: None,
            data_subjects_informed: false,
            data_subjects_informed_at: None,
            registered_by: caller.id(),
            registered_at: op.now(),
            updated_at: op.now(),
        };
        op.tx()?.insert_breach(&row).await?;
        let update = BreachUpdateRow {
            id: Uuid::new_v4(),
            breach_id: row.id,
            at: op.now(),
            by_user: caller.id(),
            changes: serde_json::json!({ "registered": { "from": null, "to": true } }),
            note: None,
        };
        op.tx()?.insert_breach_update(&update).await?;
        op.event.details = serde_json::json!({
            "breach_id": row.id, "detected_at": new.detected_at, "categories": row.categories,
            "data_subjects_estimate": row.data_subjects_estimate, "records_estimate": row.records_estimate,
        });
        let out = view(&row, &[update], op.now());
        op.commit().await?;
        Ok(out)
    }

    pub async fn list_breaches(&self, caller: &Caller) -> ServiceResult<Vec<Breach>> {
        let mut op = self.op(caller, "breach.list").await?;
        op.authorize(Action::BreachRegister, Target::Nothing).await?;
        let rows = op.tx()?.list_breaches().await?;
        let mut out = Vec::with_capacity(rows.len());
        for b in &rows {
            let updates = op.tx()?.breach_updates(b.id).await?;
            out.push(view(b, &updates, op.now()));
        }
        op.event.details = serde_json::json!({ "count": out.len() });
        op.commit().await?;
        Ok(out)
    }

    /// A breach by id; an unknown one is 404.
    async fn breach_in(&self, op: &mut super::Op<'_>, id: Uuid) -> ServiceResult<BreachRow> {
        op.authorize(Action::BreachRegister, Target::Nothing).await?;
        op.tx()?.breach_opt(id).await?.ok_or_else(ServiceError::not_found)
    }

    pub async fn get_breach(&self, caller: &Caller, id: Uuid) -> ServiceResult<Breach> {
        let mut op = self.op(caller, "breach.read").await?;
        let row = self.breach_in(&mut op, id).await?;
        let updates = op.tx()?.breach_updates(id).await?;
        op.event.details = serde_json::json!({ "breach_id": id });
        let out = view(&row, &updates, op.now());
        op.commit().await?;
        Ok(out)
    }

    pub async fn update_breach(&self, caller: &Caller, id: Uuid, patch: BreachPatch) -> ServiceResult<Breach> {
        let mut op = self.op(caller, "breach.update").await?;
        op.authorize(Action::BreachRegister, Target::Nothing).await?;
        let old = op.tx()?.breach_for_update(id).await?.ok_or_else(ServiceError::not_found)?;
        let now = op.now_time();
        let mut new = old.clone();
        if let Some(t) = patch.detected_at {
            not_future("detected_at", t, now)?;
            new.detected_at = t.timestamp_micros();
        }
        let text = |field: &'static str, v: &Option<String>, max: usize, old: &String| match v {
            None => Ok(old.clone()),
            Some(v) => domain::required_text(field, v, max).map_err(ServiceError::from),
        };
        new.nature = text("nature", &patch.nature, 4000, &old.nature)?;
        new.consequences = text("consequences", &patch.consequences, 4000, &old.consequences)?;
        new.measures = text("measures", &patch.measures, 4000, &old.measures)?;
        if let Some(c) = patch.categories {
            new.categories = categories(c)?;
        }
        if let Some(n) = patch.data_subjects_estimate {
            new.data_subjects_estimate = estimate("data_subjects_estimate", n)?;
        }
        if let Some(n) = patch.records_estimate {
            new.records_estimate = estimate("records_estimate", n)?;
        }
        if patch.authority_notified_at.is_some() && patch.authority_not_notified_reason.is_some() {
            return Err(ServiceError::new(
                ErrorCode::InvalidField,
                "either authority_notified_at or authority_not_notified_reason, not both",
            ));
        }
        if let Some(t) = patch.authority_notified_at {
            not_future("authority_notified_at", t, now)?;
            new.authority_notified_at = Some(t.timestamp_micros());
            new.authority_not_notified_reason = None;
        }
        if let Some(r) = &patch.authority_not_notified_reason {
            new.authority_not_notified_reason = Some(domain::required_text("authority_not_notified_reason", r, 2000)?);
            new.authority_notified_at = None;
        }
        if let Some(informed) = patch.data_subjects_informed {
            new.data_subjects_informed = informed;
            new.data_subjects_informed_at = match (informed, old.data_subjects_informed) {
                (true, true) => old.data_subjects_informed_at,
                (true, false) => Some(op.now()),
                (false, _) => None,
            };
        }
        let note = domain::optional_text("note", patch.note.as_deref(), 2000)?;
        let changes = diff(&old, &new);
        if changes.as_object().is_none_or(|m| m.is_empty()) && note.is_none() {
            return Err(ServiceError::new(ErrorCode::InvalidField, "the update changes nothing and has no note"));
        }
        op.tx()?.update_breach(&new).await?;
        let update =
            BreachUpdateRow { id: Uuid::new_v4(), breach_id: id, at: op.now(), by_user: caller.id(), changes, note };
        op.tx()?.insert_breach_update(&update).await?;
        let fields: Vec<String> = update.changes.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        op.event.details = serde_json::json!({ "breach_id": id, "fields": fields });
        let updates = op.tx()?.breach_updates(id).await?;
        let row = op.tx()?.breach_opt(id).await?.ok_or_else(ServiceError::not_found)?;
        let out = view(&row, &updates, op.now());
        op.commit().await?;
        Ok(out)
    }

    /// What the audit log says an incident touched.
    pub async fn breach_reach(&self, caller: &Caller, id: Uuid, q: ReachQuery) -> ServiceResult<BreachReach> {
        // Decided and the breach looked up first; the log is then read in a
        // snapshot of its own (not inside the write transaction), and the
        // operation that records the answer decides again.
        let mut op = self.op(caller, "breach.reach").await?;
        self.breach_in(&mut op, id).await?;
        op.commit_unaudited().await?;
        let document_ids = match q.document_ids.as_deref().filter(|s| !s.is_empty()) {
            None => Vec::new(),
            Some(s) => s.split(',').map(|d| d.trim().parse::<Uuid>()).collect::<Result<Vec<_>, _>>().map_err(|_| {
                ServiceError::new(ErrorCode::InvalidQuery, "document_ids is a comma-separated list of ids")
            })?,
        };
        if document_ids.len() > 500 {
            return Err(ServiceError::new(ErrorCode::InvalidQuery, "document_ids holds at most 500 ids"));
        }
        if q.actor_id.is_none() && q.from.is_none() && q.until.is_none() && document_ids.is_empty() {
            return Err(ServiceError::new(
                ErrorCode::InvalidQuery,
                "name the incident: actor_id, a window (from, until) or document_ids",
            ));
        }
        if let (Some(f), Some(u)) = (q.from, q.until)
            && f >= u
        {
            return Err(ServiceError::new(ErrorCode::InvalidQuery, "from lies before until"));
        }
        let filter = IncidentFilter {
            actor_id: q.actor_id,
            from: q.from.map(|t| t.timestamp_micros()),
            until: q.until.map(|t| t.timestamp_micros()),
            document_ids,
        };
        let mut tx = self.snapshot().await?;
        let reach = tx.incident_reach(&filter).await?;
        tx.commit().await?;
        let mut op = self.op(caller, "breach.reach").await?;
        self.breach_in(&mut op, id).await?;
        op.event.outcome = "allowed".into();
        op.event.details = serde_json::json!({
            "breach_id": id, "actor_id": q.actor_id, "from": q.from, "until": q.until,
            "documents_named": filter.document_ids.len(), "events": reach.events,
            "data_subjects": reach.clients.len(), "records": reach.documents.len(),
        });
        op.commit().await?;
        Ok(BreachReach {
            breach_id: id,
            events: reach.events,
            data_subjects: reach.clients.len(),
            records: reach.documents.len(),
            client_ids: reach.clients,
            document_ids: reach.documents,
        })
    }

    /// Breaches without a decision on notifying, and of those the ones past
    /// their deadline (the metrics).
    pub async fn breach_counts(&self) -> ServiceResult<BreachCounts> {
        let mut tx = self.snapshot().await?;
        let rows = tx.list_breaches().await?;
        tx.commit().await?;
        let now = self.now_micros();
        let undecided: Vec<&BreachRow> = rows
            .iter()
            .filter(|b| b.authority_notified_at.is_none() && b.authority_not_notified_reason.is_none())
            .collect();
        Ok(BreachCounts {
            undecided: undecided.len() as i64,
            overdue: undecided.iter().filter(|b| now > deadline(b.detected_at)).count() as i64,
        })
    }
}

/// `{field: {from, to}}` for every field that differs.
fn diff(old: &BreachRow, new: &BreachRow) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, a: serde_json::Value, b: serde_json::Value| {
        if a != b {
            m.insert(k.into(), serde_json::json!({ "from": a, "to": b }));
        }
    };
    let t = |v: Option<i64>| serde_json::json!(opt_time(v));
    put("detected_at", t(Some(old.detected_at)), t(Some(new.detected_at)));
    put("nature", old.nature.clone().into(), new.nature.clone().into());
    put("categories", serde_json::json!(old.categories), serde_json::json!(new.categories));
    put("data_subjects_estimate", old.data_subjects_estimate.into(), new.data_subjects_estimate.into());
    put("records_estimate", old.records_estimate.into(), new.records_estimate.into());
    put("consequences", old.consequences.clone().into(), new.consequences.clone().into());
    put("measures", old.measures.clone().into(), new.measures.clone().into());
    put("authority_notified_at", t(old.authority_notified_at), t(new.authority_notified_at));
    put(
        "authority_not_notified_reason",
        serde_json::json!(old.authority_not_notified_reason),
        serde_json::json!(new.authority_not_notified_reason),
    );
    put("data_subjects_informed", old.data_subjects_informed.into(), new.data_subjects_informed.into());
    serde_json::Value::Object(m)
}
