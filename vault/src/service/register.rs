//! The processing register (GDPR art. 30; SPEC §6 `GET
//! /api/v1/processing-register`; issue 11), management only. It is
//! generated, at every request, from what the system runs on: the purposes
//! and which roles may use them (asked of the policy itself), the document
//! types with their retention policies, the recipients of the disclosures,
//! the storage and encryption in use and the login rules. Register and
//! system cannot drift apart: a policy change shows in the next reading.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Caller, ServiceResult};
use crate::Vault;
use crate::catalog::{ClientStatus, micros_to_time};
use crate::domain::{DocumentType, Purpose, RecipientKind, Role};
use crate::policy::{self, Action, Actor, ClientFacts, Target};

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PurposeEntry {
    pub purpose: Purpose,
    pub meaning: &'static str,
    /// Roles that may open documents for it (of an active client, or of the
    /// archive), as the policy decides.
    pub roles_active: Vec<Role>,
    pub roles_archive: Vec<Role>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionEntry {
    #[serde(rename = "type")]
    pub doc_type: DocumentType,
    pub clock_starts: crate::domain::RetentionTrigger,
    pub period_days: i64,
    pub statutory: bool,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecipientEntry {
    pub recipient_kind: RecipientKind,
    pub recipient: String,
    /// Clients whose data went there.
    pub clients: i64,
    pub last_disclosed_at: DateTime<Utc>,
}

/// The register as the system runs now.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProcessingRegister {
    pub generated_at: DateTime<Utc>,
    /// The controller (`KLUIS_ORGANISATION`).
    pub controller: Option<String>,
    /// The privacy officer's contact (`KLUIS_PRIVACY_CONTACT`).
    pub privacy_contact: Option<String>,
    pub processing: &'static str,
    pub data_subjects: Vec<&'static str>,
    pub data_categories: Vec<&'static str>,
    pub purposes: Vec<PurposeEntry>,
    pub roles: Vec<Role>,
    pub document_types: Vec<DocumentType>,
    pub retention: Vec<RetentionEntry>,
    pub recipients: Vec<RecipientEntry>,
    pub transfers_outside_the_eea: bool,
    /// Storage, encryption, logins, audit (art. 32 measures).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub security: serde_json::Value,
}

/// Roles that may open documents for `purpose` of a client in `status`.
fn roles_for(purpose: Purpose, status: ClientStatus, now: DateTime<Utc>) -> Vec<Role> {
    let me = uuid::Uuid::from_u128(1);
    let client = ClientFacts { coach_id: Some(me), status, restricted: false, survey_consent: true };
    Role::ALL
        .iter()
        .copied()
        .filter(|r| {
            policy::decide(Actor { id: me, role: *r }, Action::OpenDocument(purpose), Target::Client(&client), &[], now)
                .is_allowed()
        })
        .collect()
}

impl Vault {
    pub async fn processing_register(&self, caller: &Caller) -> ServiceResult<ProcessingRegister> {
        let mut op = self.op(caller, "processing_register.read").await?;
        op.authorize(Action::BreachRegister, Target::Nothing).await?;
        let policies = op.tx()?.retention_policies().await?;
        let recipients = op.tx()?.all_recipients().await?;
        let now = op.now_time();
        op.commit().await?;
        let s = &self.settings;
        Ok(ProcessingRegister {
            generated_at: now,
            controller: s.organisation.clone(),
            privacy_contact: s.privacy_contact.clone(),
            processing: "guidance of clients in re-integration trajectories: their dossiers (documents), their \
                         coaches' access, retention and destruction, data-subject requests",
            data_subjects: vec![
                "clients (people in a re-integration trajectory)",
                "the agency's staff and coaches (users)",
            ],
            data_categories: vec![
                "identification (names, birth date)",
                "citizen service number (BSN), encrypted",
                "contact details (e-mail, phone, address)",
                "trajectory documents, among them health data (GDPR art. 9): functional capability lists, \
                 psychological and labour-expert reports",
                "consents and data-subject requests",
                "users: name, role, login records",
            ],
            purposes: Purpose::ALL
                .iter()
                .map(|p| PurposeEntry {
                    purpose: *p,
                    meaning: p.meaning(),
                    roles_active: roles_for(*p, ClientStatus::Active, now),
                    roles_archive: roles_for(*p, ClientStatus::Closed, now),
                })
                .collect(),
            roles: Role::ALL.to_vec(),
            document_types: DocumentType::ALL.to_vec(),
            retention: policies
                .iter()
                .filter_map(|p| {
                    Some(RetentionEntry {
                        doc_type: p.doc_type.parse().ok()?,
                        clock_starts: p.trigger,
                        period_days: p.period_days,
                        statutory: p.statutory,
                    })
                })
                .collect(),
            recipients: recipients
                .into_iter()
                .map(|(kind, name, clients, last)| RecipientEntry {
                    recipient_kind: kind,
                    recipient: name,
                    clients,
                    last_disclosed_at: micros_to_time(last),
                })
                .collect(),
            transfers_outside_the_eea: false,
            security: serde_json::json!({
                "storage": self.describe(),
                "encryption": {
                    "documents": "AES-256-GCM in 64 KiB segments (STREAM), a fresh 256-bit key per document",
                    "keys": "data keys wrapped by a versioned master key, never next to the objects",
                    "master_key_version": self.keyring().current_version(),
                    "bsn": "sealed with the master key; shown masked; revealed audited",
                },
                "logins": {
                    "two_step": "password (Argon2id) and a TOTP code, mandatory for every user",
                    "lock_out": { "failures": s.lock_threshold, "minutes": s.lock_duration.as_secs() / 60 },
                    "session_idle_minutes": s.session_idle.as_secs() / 60,
                    "session_max_hours": s.session_max.as_secs() / 3600,
                    "download_token_minutes": s.token_ttl.as_secs() / 60,
                },
                "audit": {
                    "log": "every access, allowed or denied, in a hash-chained append-only log",
                    "anchor_every_minutes": s.audit_anchor_interval.as_secs() / 60,
                },
            }),
        })
    }
}
