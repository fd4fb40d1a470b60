//! Retention policies (SPEC §4, issue 9): one per document type, read by
//! management and office, changed by management. A change gives every
//! active document of the type whose clock has not run out its new policy
//! date, in the same transaction as the change and its audit event, and
//! says how many dates moved. Manual dates are never touched; a document
//! whose date has passed keeps it (the purge is already due to destroy it).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, ErrorCode, ServiceError, ServiceResult};
use crate::Vault;
use crate::catalog::{Clock, PolicyRow, Recompute, micros_to_time};
use crate::domain::DocumentType;
use crate::policy::{Action, Target};

/// Longest period a policy may set: 100 years.
const MAX_PERIOD_DAYS: i64 = 36_600;

/// When a type's retention clock starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RetentionTrigger {
    /// At upload.
    Upload,
    /// When the client's trajectory ends (no date before that).
    TrajectoryEnd,
}

impl From<Clock> for RetentionTrigger {
    fn from(c: Clock) -> Self {
        match c {
            Clock::Upload => RetentionTrigger::Upload,
            Clock::TrajectoryEnd => RetentionTrigger::TrajectoryEnd,
        }
    }
}

impl From<RetentionTrigger> for Clock {
    fn from(t: RetentionTrigger) -> Self {
        match t {
            RetentionTrigger::Upload => Clock::Upload,
            RetentionTrigger::TrajectoryEnd => Clock::TrajectoryEnd,
        }
    }
}

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

fn view(p: &PolicyRow) -> ServiceResult<RetentionPolicy> {
    Ok(RetentionPolicy {
        doc_type: p.doc_type.parse().map_err(ServiceError::internal)?,
        trigger: p.clock.into(),
        period_days: p.period_days,
        updated_at: p.updated_by.map(|_| micros_to_time(p.updated_at)),
        updated_by: p.updated_by,
    })
}

impl Vault {
    /// Every type's retention policy.
    pub async fn retention_policies(&self, caller: &Caller) -> ServiceResult<Vec<RetentionPolicy>> {
        let mut op = self.op(caller, "retention.policies").await?;
        op.authorize(Action::SetRetention, Target::Nothing).await?;
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
        let before = op.tx()?.retention_policies().await?;
        let old = before
            .iter()
            .find(|p| p.doc_type == doc_type.as_str())
            .ok_or_else(|| ServiceError::internal(format!("no retention policy for {doc_type}")))?;
        let old = view(old)?;
        op.tx()?.set_retention_policy(doc_type.as_str(), set.trigger.into(), set.period_days, caller.id()).await?;
        let moved = op.tx()?.recompute_retention(Recompute::TypeNotRunOut(doc_type.as_str())).await?;
        let rows = op.tx()?.retention_policies().await?;
        let new = rows
            .iter()
            .find(|p| p.doc_type == doc_type.as_str())
            .ok_or_else(|| ServiceError::internal("the policy vanished"))?;
        let policy = view(new)?;
        op.event.details = serde_json::json!({
            "type": doc_type,
            "from": { "trigger": old.trigger, "period_days": old.period_days },
            "to": { "trigger": policy.trigger, "period_days": policy.period_days },
            "dates_moved": moved,
        });
        op.commit().await?;
        Ok(PolicyChange { policy, dates_moved: moved })
    }
}
