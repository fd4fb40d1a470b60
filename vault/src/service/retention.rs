//! Retention policies (SPEC §4, issue 9): one per document type, read by
//! management and office, changed by management. A change gives every
//! active document of the type whose clock has not run out its new policy
//! date, in the same transaction as the change and its audit event, and
//! says how many dates moved. Manual dates are never touched; a document
//! whose date has passed keeps it (the purge is already due to destroy it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, Document, ErrorCode, ServiceError, ServiceResult, facts};
use crate::Vault;
use crate::catalog::{DAY_MICROS, PolicyRow, Recompute, micros_to_time};
use crate::domain::DocumentType;
pub use crate::domain::RetentionTrigger;
use crate::policy::{Action, Target};

/// The NIP code's minimum for a psychological report: a year after the
/// trajectory ends; below it only management may set a date.
const PSYCH_MINIMUM_DAYS: i64 = 365;

/// Would `until` bring a document below the NIP code's minimum? Only a
/// psychological report has one: a year after its trajectory ends, or (the
/// trajectory still running) after now, the earliest it can end.
pub(super) fn below_nip_minimum(doc_type: &str, until: i64, ended_at: Option<i64>, now: i64) -> bool {
    doc_type == DocumentType::PsychReport.as_str() && until < ended_at.unwrap_or(now) + PSYCH_MINIMUM_DAYS * DAY_MICROS
}

/// Longest period a policy may set: 100 years.
const MAX_PERIOD_DAYS: i64 = 36_600;

/// A document type's retention policy.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionPolicy {
    #[serde(rename = "type")]
    pub doc_type: DocumentType,
    pub trigger: RetentionTrigger,
    pub period_days: i64,
    /// Null while it is the default of SPEC §4.
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<Uuid>,
    /// The law imposes this period: an erasure request does not destroy
    /// the type's documents before their date (409 `must_keep`).
    pub statutory: bool,
}

/// `PUT /api/v1/retention/policies/{type}`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetRetentionPolicy {
    pub trigger: RetentionTrigger,
    /// 1 to 36600 days.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 36600))]
    #[serde(deserialize_with = "whole_number")]
    pub period_days: i64,
    /// Whether the law imposes the period; absent: unchanged.
    pub statutory: Option<bool>,
}

/// An integer as JSON Schema means it: `30` or `30.0`, never `30.5`.
fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => Ok(f as i64),
        _ => Err(serde::de::Error::custom("a whole number")),
    }
}

/// The changed policy and what it did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyChange {
    pub policy: RetentionPolicy,
    /// Active documents of the type whose destruction date changed.
    pub dates_moved: u64,
}

/// `PUT /api/v1/documents/{id}/retention`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetDocumentRetention {
    /// `YYYY-MM-DD` or RFC 3339, in the future; null: back to the policy's
    /// date.
    #[cfg_attr(feature = "openapi", schema(schema_with = until_schema))]
    pub until: Option<String>,
    /// Why (required, also to go back to the policy).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::schema::required::<1000>))]
    pub reason: String,
}

#[cfg(feature = "openapi")]
fn until_schema() -> utoipa::openapi::schema::Object {
    let mut o = crate::domain::schema::day_or_time();
    o.schema_type = utoipa::openapi::schema::SchemaType::from_iter([
        utoipa::openapi::schema::Type::String,
        utoipa::openapi::schema::Type::Null,
    ]);
    o
}

/// `PUT /api/v1/documents/{id}/legal-hold`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetLegalHold {
    pub hold: bool,
    /// Why (required, also to lift it).
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::domain::schema::required::<1000>))]
    pub reason: String,
}

fn view(p: &PolicyRow) -> ServiceResult<RetentionPolicy> {
    Ok(RetentionPolicy {
        doc_type: p.doc_type.parse().map_err(ServiceError::internal)?,
        trigger: p.trigger,
        period_days: p.period_days,
        updated_at: p.updated_by.map(|_| micros_to_time(p.updated_at)),
        updated_by: p.updated_by,
        statutory: p.statutory,
    })
}

impl Vault {
    /// Every type's retention policy.
    pub async fn retention_policies(&self, caller: &Caller) -> ServiceResult<Vec<RetentionPolicy>> {
        let mut op = self.op(caller, "retention.policies").await?;
        op.authorize(Action::ReadRetention, Target::Nothing).await?;
        let rows = op.tx()?.retention_policies().await?;
        op.commit_unaudited().await?;
        rows.iter().map(view).collect()
    }

    /// Change a type's policy; the dates of its documents follow at once.
    pub async fn set_retention_policy(
        &self,
        caller: &Caller,
        doc_type: DocumentType,
        set: SetRetentionPolicy,
    ) -> ServiceResult<PolicyChange> {
        let mut op = self.op(caller, "retention.policy").await?;
        op.authorize(Action::RetentionPolicy, Target::Nothing).await?;
        if !(1..=MAX_PERIOD_DAYS).contains(&set.period_days) {
            return Err(ServiceError::new(ErrorCode::InvalidField, "period_days is between 1 and 36600"));
        }
        let old = view(&op.tx()?.retention_policy(doc_type.as_str()).await?)?;
        let statutory = set.statutory.unwrap_or(old.statutory);
        op.tx()?.set_retention_policy(doc_type.as_str(), set.trigger, set.period_days, statutory, caller.id()).await?;
        let moved = op.tx()?.recompute_retention(Recompute::TypeNotRunOut(doc_type.as_str())).await?;
        let policy = view(&op.tx()?.retention_policy(doc_type.as_str()).await?)?;
        op.event.details = serde_json::json!({
            "type": doc_type,
            "from": { "trigger": old.trigger, "period_days": old.period_days, "statutory": old.statutory },
            "to": { "trigger": policy.trigger, "period_days": policy.period_days, "statutory": policy.statutory },
            "dates_moved": moved,
        });
        op.commit().await?;
        Ok(PolicyChange { policy, dates_moved: moved })
    }

    /// Set a document's destruction date by hand (management, office), or
    /// put it back on its policy. A psychological report's date less than a
    /// year after its trajectory ends (or after now, while it runs) needs
    /// management, and the event says so.
    pub async fn set_document_retention(
        &self,
        caller: &Caller,
        id: Uuid,
        set: SetDocumentRetention,
    ) -> ServiceResult<Document> {
        let mut op = self.op(caller, "document.retention").await?;
        let (doc, client, _) = op.document(id, Action::SetRetention).await?;
        let reason = crate::domain::required_text("reason", &set.reason, 1000)?;
        let until =
            match set.until.as_deref() {
                None => None,
                Some(u) => Some(super::documents::parse_date_or_time(u).ok_or_else(|| {
                    ServiceError::new(ErrorCode::InvalidField, "until is a date YYYY-MM-DD or RFC 3339")
                })?),
            };
        let mut below = false;
        if let Some(u) = until {
            if u <= op.now() {
                return Err(ServiceError::new(ErrorCode::InvalidField, "until must lie in the future"));
            }
            below = below_nip_minimum(&doc.doc_type, u, client.ended_at, op.now());
            if below {
                op.authorize(Action::RetentionBelowMinimum, Target::Client(&facts(&client))).await?;
            }
        }
        if !op.tx()?.set_document_retention(doc.id, until.map(|u| (u, reason.as_str()))).await? {
            return Err(ServiceError::new(ErrorCode::Gone, "the document has been destroyed"));
        }
        let row = op.tx()?.get_document(doc.id).await?;
        op.event.reason = Some(reason);
        op.event.details = serde_json::json!({
            "from": { "until": doc.retention_until.map(micros_to_time), "manual": doc.retention_manual },
            "to": { "until": row.retention_until.map(micros_to_time), "manual": row.retention_manual },
            "below_nip_minimum": below,
        });
        let view = Document::try_from(&row)?;
        op.commit().await?;
        Ok(view)
    }

    /// Set or lift a legal hold (management, with a reason). A held document
    /// is never destroyed, whatever its date; lifted, it is due again.
    pub async fn set_legal_hold(&self, caller: &Caller, id: Uuid, set: SetLegalHold) -> ServiceResult<Document> {
        let mut op = self.op(caller, "document.legal_hold").await?;
        let (doc, _, _) = op.document(id, Action::LegalHold).await?;
        let reason = crate::domain::required_text("reason", &set.reason, 1000)?;
        let hold = set.hold.then_some((reason.as_str(), caller.id()));
        if !op.tx()?.set_legal_hold(doc.id, hold).await? {
            return Err(ServiceError::new(ErrorCode::Gone, "the document has been destroyed"));
        }
        let row = op.tx()?.get_document(doc.id).await?;
        op.event.reason = Some(reason);
        op.event.details = serde_json::json!({ "hold": { "from": doc.legal_hold, "to": set.hold } });
        let view = Document::try_from(&row)?;
        op.commit().await?;
        Ok(view)
    }
}
