//! The consent register, from the agency's consent form ("machtiging
//! persoonsgegevens"; issue 10): consent to guidance, and consent to be
//! approached by e-mail and/or phone for the Blik op Werk satisfaction
//! survey.
//!
//! A consent is recorded with the signed form as evidence (an active
//! `consent` document of the same client) and the date it was signed; a
//! newer form replaces the running consent of its scope. Withdrawal takes
//! effect in its own transaction, at once (art. 7(3)): the survey's consent
//! is copied onto the client row (`survey_consent`) in the same
//! transaction, and the policy refuses the purpose `satisfaction_survey`
//! from that commit on. Guidance is recorded but not gated: guidance rests
//! on the commissioner's assignment, and the form documents it.
//!
//! Management, office and the coaches of the client (own caseload or a
//! substitution) read and record consents: the coach takes the form at
//! intake.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, ErrorCode, Op, ServiceError, ServiceResult, opt_time};
use crate::Vault;
use crate::catalog::{ConsentRow, DocumentState, RowLock, micros_to_time};
use crate::domain::{self, ConsentScope, ContactChannel, DocumentType};
use crate::policy::Action;

/// `PUT /api/v1/clients/{id}/consents/{scope}`: give (with the signed
/// form) or withdraw.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetConsent {
    pub given: bool,
    /// Given: the date on the signed form; default now; not in the future.
    pub given_at: Option<DateTime<Utc>>,
    /// Given, for `satisfaction_survey`: `email`, `phone` or both (each on
    /// record for the client).
    pub channels: Option<Vec<ContactChannel>>,
    /// Given: the signed form, an active `consent` document of this client.
    pub evidence_document_id: Option<Uuid>,
    /// Withdrawn: how and why (for example "by phone to the coach").
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<1000>))]
    pub reason: Option<String>,
}

/// One consent, running or withdrawn.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Consent {
    pub id: Uuid,
    pub scope: ConsentScope,
    pub channels: Vec<ContactChannel>,
    pub given_at: DateTime<Utc>,
    pub evidence_document_id: Option<Uuid>,
    pub recorded_by: Uuid,
    pub recorded_at: DateTime<Utc>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    pub withdrawn_by: Option<Uuid>,
    pub withdrawal_reason: Option<String>,
    /// The data-subject request that withdrew it, if any.
    pub request_id: Option<Uuid>,
}

impl From<&ConsentRow> for Consent {
    fn from(c: &ConsentRow) -> Self {
        Consent {
            id: c.id,
            scope: c.scope,
            channels: c.channels.clone(),
            given_at: micros_to_time(c.given_at),
            evidence_document_id: c.evidence_id,
            recorded_by: c.recorded_by,
            recorded_at: micros_to_time(c.recorded_at),
            withdrawn_at: opt_time(c.withdrawn_at),
            withdrawn_by: c.withdrawn_by,
            withdrawal_reason: c.withdrawal_reason.clone(),
            request_id: c.request_id,
        }
    }
}

/// A client's consents: the running one per scope (null: none, or
/// withdrawn), and every consent ever recorded, oldest first.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Consents {
    pub client_id: Uuid,
    pub guidance: Option<Consent>,
    pub satisfaction_survey: Option<Consent>,
    pub history: Vec<Consent>,
}

pub(crate) fn consents_view(client_id: Uuid, rows: &[ConsentRow]) -> Consents {
    let running = |scope| rows.iter().rev().find(|c| c.scope == scope && c.withdrawn_at.is_none()).map(Consent::from);
    Consents {
        client_id,
        guidance: running(ConsentScope::Guidance),
        satisfaction_survey: running(ConsentScope::SatisfactionSurvey),
        history: rows.iter().map(Consent::from).collect(),
    }
}

impl Vault {
    pub async fn consents(&self, caller: &Caller, client_id: Uuid) -> ServiceResult<Consents> {
        let mut op = self.op(caller, "consent.read").await?;
        let (c, _) = op.client(client_id, Action::Consent).await?;
        let rows = op.tx()?.consents_of(c.id).await?;
        op.event.outcome = "allowed".into();
        op.commit().await?;
        Ok(consents_view(c.id, &rows))
    }

    pub async fn set_consent(
        &self,
        caller: &Caller,
        client_id: Uuid,
        scope: ConsentScope,
        set: SetConsent,
    ) -> ServiceResult<Consents> {
        let mut op = self.op(caller, if set.given { "consent.give" } else { "consent.withdraw" }).await?;
        let (c, _) = op.client_locked(client_id, Action::Consent, RowLock::Update).await?;
        if c.erased_at.is_some() {
            return Err(ServiceError::new(ErrorCode::Erased, "the client's data has been erased"));
        }
        if set.given {
            if set.reason.is_some() {
                return Err(ServiceError::new(ErrorCode::InvalidField, "reason belongs to a withdrawal"));
            }
            let now = op.now_time();
            let given_at = set.given_at.unwrap_or(now);
            if given_at > now + chrono::Duration::minutes(5) {
                return Err(ServiceError::new(ErrorCode::InvalidField, "given_at cannot lie in the future"));
            }
            let mut channels = set.channels.unwrap_or_default();
            channels.sort();
            channels.dedup();
            match scope {
                ConsentScope::SatisfactionSurvey if channels.is_empty() => {
                    return Err(ServiceError::new(
                        ErrorCode::InvalidField,
                        "channels names how the survey may approach the client: email, phone or both",
                    ));
                }
                ConsentScope::Guidance if !channels.is_empty() => {
                    return Err(ServiceError::new(ErrorCode::InvalidField, "channels belong to the survey's consent"));
                }
                _ => {}
            }
            for ch in &channels {
                let on_record = match ch {
                    ContactChannel::Email => c.email.is_some(),
                    ContactChannel::Phone => c.phone.is_some(),
                };
                if !on_record {
                    return Err(ServiceError::new(
                        ErrorCode::InvalidField,
                        "a channel of the survey's consent needs the client's address or number on record",
                    ));
                }
            }
            let evidence = set.evidence_document_id.ok_or_else(|| {
                ServiceError::new(ErrorCode::InvalidField, "evidence_document_id names the signed consent form")
            })?;
            let doc = op.tx()?.document(evidence).await?;
            if !doc.is_some_and(|d| {
                d.client_id == c.id && d.state == DocumentState::Active && d.doc_type == DocumentType::Consent.as_str()
            }) {
                return Err(ServiceError::new(
                    ErrorCode::InvalidField,
                    "evidence_document_id must be an active consent document of this client",
                ));
            }
            let replaced =
                op.tx()?.withdraw_consents(c.id, scope, caller.id(), "replaced by a newer form", None).await?;
            let row = ConsentRow {
                id: Uuid::new_v4(),
                client_id: c.id,
                scope,
                channels: channels.clone(),
                given_at: given_at.timestamp_micros(),
                evidence_id: Some(evidence),
                recorded_by: caller.id(),
                recorded_at: op.now(),
                withdrawn_at: None,
                withdrawn_by: None,
                withdrawal_reason: None,
                request_id: None,
            };
            op.tx()?.insert_consent(&row).await?;
            if scope == ConsentScope::SatisfactionSurvey {
                op.tx()?.set_survey_consent(c.id, true).await?;
            }
            op.event.document_id = Some(evidence);
            op.event.details = serde_json::json!({
                "consent_id": row.id, "scope": scope, "channels": channels, "given_at": given_at, "replaced": replaced,
            });
        } else {
            if set.given_at.is_some() || set.channels.is_some() || set.evidence_document_id.is_some() {
                return Err(ServiceError::new(
                    ErrorCode::InvalidField,
                    "a withdrawal takes a reason only (given_at, channels and evidence belong to giving)",
                ));
            }
            let reason = domain::required_text("reason", set.reason.as_deref().unwrap_or(""), 1000)?;
            let n = self.withdraw_consent_in(&mut op, caller, c.id, scope, &reason, None).await?;
            op.event.reason = Some(reason);
            op.event.details = serde_json::json!({ "scope": scope, "withdrawn": n });
        }
        let rows = op.tx()?.consents_of(c.id).await?;
        op.commit().await?;
        Ok(consents_view(c.id, &rows))
    }

    /// Withdraw the client's running consent of `scope` inside `op` (a
    /// withdrawal, a `withdraw_consent` request, an erasure); how many
    /// consents were running.
    pub(crate) async fn withdraw_consent_in(
        &self,
        op: &mut Op<'_>,
        caller: &Caller,
        client: Uuid,
        scope: ConsentScope,
        reason: &str,
        request: Option<Uuid>,
    ) -> ServiceResult<u64> {
        let n = op.tx()?.withdraw_consents(client, scope, caller.id(), reason, request).await?;
        if scope == ConsentScope::SatisfactionSurvey {
            op.tx()?.set_survey_consent(client, false).await?;
        }
        Ok(n)
    }
}
