//! Correcting a client's data (GDPR art. 16; issue 10), management and
//! office. Every correction keeps its history (old value, new value, who,
//! why, the request it answers) and lists the recipients to notify (art.
//! 19) as the disclosures stood at that moment. The same field rules as at
//! creation apply; a BSN is sealed again and appears in the history only
//! masked; the audit event names the fields, never their values.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::disclosures::{Recipient, recipients};
use super::{Caller, Client, ErrorCode, Op, ServiceError, ServiceResult};
use crate::Vault;
use crate::catalog::{ClientFields, CorrectionRow, RowLock, micros_to_time};
use crate::domain::{self, Bsn, RequestKind};
use crate::policy::Action;

/// `POST /api/v1/clients/{id}/corrections`: the fields to change (an
/// optional field sent as `""` is cleared), why, and the request it
/// answers.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewCorrection {
    pub changes: ClientChanges,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<1000>))]
    pub reason: String,
    /// A `rectification` request of this client.
    pub request_id: Option<Uuid>,
}

/// The correctable fields; absent ones stay as they are.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientChanges {
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<100>))]
    pub first_name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<20>))]
    pub initials: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<100>))]
    pub last_name: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub birth_date: Option<String>,
    /// Nine digits that pass the eleven-test, or `""` to remove it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = "^([0-9]{9})?$"))]
    pub bsn: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 254))]
    pub email: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<32>))]
    pub phone: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<200>))]
    pub address: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<16>))]
    pub postcode: Option<String>,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<100>))]
    pub city: Option<String>,
}

/// One changed field: before and after (a BSN masked; null: empty).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldChange {
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
    /// True once the client's data was erased: the values are gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
}

/// A correction, as the history keeps it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Correction {
    pub id: Uuid,
    pub client_id: Uuid,
    pub request_id: Option<Uuid>,
    pub corrected_by: Uuid,
    pub corrected_at: DateTime<Utc>,
    pub reason: String,
    pub changes: Vec<FieldChange>,
    /// Everyone who received the client's data or documents, to be told of
    /// the correction (art. 19).
    pub notify: Vec<Recipient>,
}

impl TryFrom<&CorrectionRow> for Correction {
    type Error = ServiceError;
    fn try_from(c: &CorrectionRow) -> ServiceResult<Self> {
        let bad = |what| ServiceError::internal(format!("stored {what} of correction {} is malformed", c.id));
        Ok(Correction {
            id: c.id,
            client_id: c.client_id,
            request_id: c.request_id,
            corrected_by: c.corrected_by,
            corrected_at: micros_to_time(c.corrected_at),
            reason: c.reason.clone(),
            changes: serde_json::from_value(c.changes.clone()).map_err(|_| bad("changes"))?,
            notify: serde_json::from_value(c.recipients.clone()).map_err(|_| bad("recipients"))?,
        })
    }
}

/// The answer to a correction: the history entry and the client as now.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Corrected {
    pub correction: Correction,
    pub client: Client,
}

/// A client's corrections, oldest first.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Corrections {
    pub client_id: Uuid,
    pub corrections: Vec<Correction>,
}

/// One field: the new value parsed, and whether it differs.
fn change(out: &mut Vec<FieldChange>, field: &str, old: &Option<String>, new: &Option<String>) {
    if old != new {
        out.push(FieldChange { field: field.into(), old: old.clone(), new: new.clone(), erased: false });
    }
}

impl Vault {
    /// Check that `request` is a request of this client of one of `kinds`.
    pub(crate) async fn linked_request(
        &self,
        op: &mut Op<'_>,
        request: Option<Uuid>,
        client: Uuid,
        kinds: &[RequestKind],
    ) -> ServiceResult<()> {
        let Some(id) = request else { return Ok(()) };
        let r = op.tx()?.request_opt(id).await?;
        if !r.is_some_and(|r| r.client_id == client && kinds.contains(&r.kind)) {
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            return Err(ServiceError::new(
                ErrorCode::InvalidField,
                format!("request_id must be a request of this client of kind {}", names.join(" or ")),
            ));
        }
        Ok(())
    }

    pub async fn correct_client(&self, caller: &Caller, id: Uuid, new: NewCorrection) -> ServiceResult<Corrected> {
        let mut op = self.op(caller, "client.correct").await?;
        let (c, _) = op.client_locked(id, Action::CorrectClient, RowLock::Update).await?;
        if c.erased_at.is_some() {
            return Err(ServiceError::new(ErrorCode::Erased, "the client's data has been erased"));
        }
        let reason = domain::required_text("reason", &new.reason, 1000)?;
        self.linked_request(&mut op, new.request_id, c.id, &[RequestKind::Rectification]).await?;
        let ch = new.changes;
        let today = op.now_time().date_naive();
        let opt = |field: &'static str, v: &Option<String>, max: usize, old: &Option<String>| match v {
            None => Ok(old.clone()),
            Some(v) => domain::optional_text(field, Some(v.as_str()), max).map_err(ServiceError::from),
        };
        let req = |field: &'static str, v: &Option<String>, max: usize, old: &String| match v {
            None => Ok(old.clone()),
            Some(v) => domain::required_text(field, v, max).map_err(ServiceError::from),
        };
        let mut fields = ClientFields {
            first_name: req("first_name", &ch.first_name, 100, &c.first_name)?,
            initials: req("initials", &ch.initials, 20, &c.initials)?,
            last_name: req("last_name", &ch.last_name, 100, &c.last_name)?,
            birth_date: match &ch.birth_date {
                None => c.birth_date.clone(),
                Some(b) => domain::birth_date(b, today)?.format("%Y-%m-%d").to_string(),
            },
            bsn_sealed: c.bsn_sealed.clone(),
            email: match &ch.email {
                None => c.email.clone(),
                Some(e) if e.is_empty() => None,
                Some(e) => domain::email(Some(e.as_str()))?,
            },
            phone: opt("phone", &ch.phone, 32, &c.phone)?,
            address: opt("address", &ch.address, 200, &c.address)?,
            postcode: opt("postcode", &ch.postcode, 16, &c.postcode)?,
            city: opt("city", &ch.city, 100, &c.city)?,
        };
        let mut changes = Vec::new();
        change(&mut changes, "first_name", &Some(c.first_name.clone()), &Some(fields.first_name.clone()));
        change(&mut changes, "initials", &Some(c.initials.clone()), &Some(fields.initials.clone()));
        change(&mut changes, "last_name", &Some(c.last_name.clone()), &Some(fields.last_name.clone()));
        change(&mut changes, "birth_date", &Some(c.birth_date.clone()), &Some(fields.birth_date.clone()));
        if let Some(b) = &ch.bsn {
            let old = match &c.bsn_sealed {
                Some(s) => Some(Bsn::parse(std::str::from_utf8(&self.open_field("bsn", c.id, s)?).unwrap_or(""))?),
                None => None,
            };
            let new_bsn = match domain::optional_text("bsn", Some(b.as_str()), 20)? {
                Some(b) => Some(Bsn::parse(&b)?),
                None => None,
            };
            if old.as_ref().map(Bsn::expose) != new_bsn.as_ref().map(Bsn::expose) {
                fields.bsn_sealed = match &new_bsn {
                    Some(b) => Some(self.seal_field_in(op.tx()?, "bsn", c.id, b.expose().as_bytes()).await?),
                    None => None,
                };
                changes.push(FieldChange {
                    field: "bsn".into(),
                    old: old.map(|b| b.masked()),
                    new: new_bsn.map(|b| b.masked()),
                    erased: false,
                });
            }
        }
        change(&mut changes, "email", &c.email, &fields.email);
        change(&mut changes, "phone", &c.phone, &fields.phone);
        change(&mut changes, "address", &c.address, &fields.address);
        change(&mut changes, "postcode", &c.postcode, &fields.postcode);
        change(&mut changes, "city", &c.city, &fields.city);
        if changes.is_empty() {
            return Err(ServiceError::new(ErrorCode::InvalidField, "the changes change nothing"));
        }
        op.tx()?.update_client_fields(c.id, &fields).await?;
        if let Some(sealed) = &fields.bsn_sealed {
            op.tx()?.ensure_current_key(sealed.version).await?;
        }
        let disclosures = op.tx()?.disclosures_of(c.id).await?;
        let notify = recipients(&disclosures, None);
        let row = CorrectionRow {
            id: Uuid::new_v4(),
            client_id: c.id,
            request_id: new.request_id,
            corrected_by: caller.id(),
            corrected_at: op.now(),
            reason: reason.clone(),
            changes: serde_json::to_value(&changes).map_err(ServiceError::internal)?,
            recipients: serde_json::to_value(&notify).map_err(ServiceError::internal)?,
        };
        op.tx()?.insert_correction(&row).await?;
        op.event.reason = Some(reason);
        let names: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        op.event.details = serde_json::json!({
            "correction_id": row.id, "fields": names, "request_id": new.request_id, "recipients": notify.len(),
        });
        let client = self.client_view(&op.tx()?.client(c.id).await?)?;
        let correction = Correction::try_from(&row)?;
        op.commit().await?;
        Ok(Corrected { correction, client })
    }

    pub async fn corrections(&self, caller: &Caller, id: Uuid) -> ServiceResult<Corrections> {
        let mut op = self.op(caller, "client.corrections").await?;
        let (c, _) = op.client(id, Action::CorrectClient).await?;
        let rows = op.tx()?.corrections_of(c.id).await?;
        op.event.outcome = "allowed".into();
        let corrections = rows.iter().map(Correction::try_from).collect::<ServiceResult<Vec<_>>>()?;
        op.commit().await?;
        Ok(Corrections { client_id: c.id, corrections })
    }
}
