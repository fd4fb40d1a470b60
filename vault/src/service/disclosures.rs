//! Disclosures (issue 10): what was sent to which third party (UWV, a
//! municipality, an employer, …), on which legal basis. They are the list
//! of recipients to notify when the client's data is corrected or erased
//! (GDPR art. 19).
//!
//! Management, office and the client's coaches record and read them (the
//! coach sends the work plan to UWV). A disclosure names one document of
//! the client, or none (the client's data or the whole dossier).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, ErrorCode, ServiceError, ServiceResult};
use crate::Vault;
use crate::catalog::{DisclosureRow, DocumentState, RowLock, micros_to_time};
use crate::domain::{self, LegalBasis, RecipientKind};
use crate::policy::Action;

/// `POST /api/v1/clients/{id}/disclosures`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewDisclosure {
    /// A document of this client; absent: the client's data or the dossier.
    pub document_id: Option<Uuid>,
    pub recipient_kind: RecipientKind,
    /// The organisation, e.g. "UWV Utrecht".
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<200>))]
    pub recipient: String,
    pub legal_basis: LegalBasis,
    /// The provision or agreement relied on (e.g. "Wet SUWI art. 30").
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<500>))]
    pub basis_note: Option<String>,
    /// When it was sent; default now; not in the future.
    pub disclosed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Disclosure {
    pub id: Uuid,
    pub client_id: Uuid,
    pub document_id: Option<Uuid>,
    pub recipient_kind: RecipientKind,
    pub recipient: String,
    pub legal_basis: LegalBasis,
    pub basis_note: Option<String>,
    pub disclosed_at: DateTime<Utc>,
    pub recorded_by: Uuid,
    pub recorded_at: DateTime<Utc>,
}

impl From<&DisclosureRow> for Disclosure {
    fn from(d: &DisclosureRow) -> Self {
        Disclosure {
            id: d.id,
            client_id: d.client_id,
            document_id: d.document_id,
            recipient_kind: d.recipient_kind,
            recipient: d.recipient.clone(),
            legal_basis: d.legal_basis,
            basis_note: d.basis_note.clone(),
            disclosed_at: micros_to_time(d.disclosed_at),
            recorded_by: d.recorded_by,
            recorded_at: micros_to_time(d.recorded_at),
        }
    }
}

/// A recipient to notify (art. 19): who, what they received, when last.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recipient {
    pub recipient_kind: RecipientKind,
    pub recipient: String,
    /// The documents they received (none listed: the client's data or the
    /// dossier as a whole).
    pub document_ids: Vec<Uuid>,
    /// They received the client's data or the whole dossier.
    pub dossier: bool,
    pub last_disclosed_at: DateTime<Utc>,
}

/// A client's disclosures, oldest first, and the recipients they add up to.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Disclosures {
    pub client_id: Uuid,
    pub disclosures: Vec<Disclosure>,
    pub recipients: Vec<Recipient>,
}

/// The recipients to notify about a change to `document` (or to the
/// client's data, `None`): everyone who received it, or the dossier; for
/// the client's data, everyone. By recipient, in order of name.
pub(crate) fn recipients(rows: &[DisclosureRow], document: Option<Uuid>) -> Vec<Recipient> {
    let mut by: BTreeMap<(String, &'static str), Recipient> = BTreeMap::new();
    for d in rows {
        let concerned = match document {
            None => true,
            Some(doc) => d.document_id.is_none_or(|x| x == doc),
        };
        if !concerned {
            continue;
        }
        let r = by.entry((d.recipient.to_lowercase(), d.recipient_kind.as_str())).or_insert_with(|| Recipient {
            recipient_kind: d.recipient_kind,
            recipient: d.recipient.clone(),
            document_ids: Vec::new(),
            dossier: false,
            last_disclosed_at: micros_to_time(d.disclosed_at),
        });
        match d.document_id {
            Some(id) if !r.document_ids.contains(&id) => r.document_ids.push(id),
            Some(_) => {}
            None => r.dossier = true,
        }
        r.last_disclosed_at = r.last_disclosed_at.max(micros_to_time(d.disclosed_at));
    }
    by.into_values().collect()
}

impl Vault {
    pub async fn record_disclosure(
        &self,
        caller: &Caller,
        client_id: Uuid,
        new: NewDisclosure,
    ) -> ServiceResult<Disclosure> {
        let mut op = self.op(caller, "disclosure.record").await?;
        let (c, _) = op.client_locked(client_id, Action::Disclosure, RowLock::Share).await?;
        if c.erased_at.is_some() {
            return Err(ServiceError::new(ErrorCode::Erased, "the client's data has been erased"));
        }
        let recipient = domain::required_text("recipient", &new.recipient, 200)?;
        let basis_note = domain::optional_text("basis_note", new.basis_note.as_deref(), 500)?;
        let now = op.now_time();
        let at = new.disclosed_at.unwrap_or(now);
        if at > now + chrono::Duration::minutes(5) {
            return Err(ServiceError::new(ErrorCode::InvalidField, "disclosed_at cannot lie in the future"));
        }
        if let Some(doc) = new.document_id {
            let d = op.tx()?.document(doc).await?;
            if !d.is_some_and(|d| d.client_id == c.id && d.state != DocumentState::Pending) {
                return Err(ServiceError::new(
                    ErrorCode::InvalidField,
                    "document_id must be a document of this client",
                ));
            }
            op.event.document_id = Some(doc);
        }
        let row = DisclosureRow {
            id: Uuid::new_v4(),
            client_id: c.id,
            document_id: new.document_id,
            recipient_kind: new.recipient_kind,
            recipient,
            legal_basis: new.legal_basis,
            basis_note,
            disclosed_at: at.timestamp_micros(),
            recorded_by: caller.id(),
            recorded_at: op.now(),
        };
        op.tx()?.insert_disclosure(&row).await?;
        // Kind and id only: a recipient (an employer, "other") may be a person.
        op.event.details = serde_json::json!({
            "disclosure_id": row.id, "recipient_kind": row.recipient_kind, "legal_basis": row.legal_basis,
            "disclosed_at": at,
        });
        op.commit().await?;
        Ok(Disclosure::from(&row))
    }

    pub async fn disclosures(&self, caller: &Caller, client_id: Uuid) -> ServiceResult<Disclosures> {
        let mut op = self.op(caller, "disclosure.list").await?;
        let (c, _) = op.client(client_id, Action::Disclosure).await?;
        let rows = op.tx()?.disclosures_of(c.id).await?;
        op.event.outcome = "allowed".into();
        op.commit().await?;
        Ok(Disclosures {
            client_id: c.id,
            recipients: recipients(&rows, None),
            disclosures: rows.iter().map(Disclosure::from).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(recipient: &str, kind: RecipientKind, doc: Option<u128>, at: i64) -> DisclosureRow {
        DisclosureRow {
            id: Uuid::new_v4(),
            client_id: Uuid::from_u128(9),
            document_id: doc.map(Uuid::from_u128),
            recipient_kind: kind,
            recipient: recipient.into(),
            legal_basis: LegalBasis::LegalObligation,
            basis_note: None,
            disclosed_at: at,
            recorded_by: Uuid::from_u128(7),
            recorded_at: at,
        }
    }

    #[test]
    fn recipients_are_grouped_and_filtered_by_document() {
        let rows = [
            d("UWV Utrecht", RecipientKind::Uwv, Some(1), 10),
            d("uwv utrecht", RecipientKind::Uwv, Some(2), 30),
            d("Gemeente Zeist", RecipientKind::Municipality, None, 20),
            d("Bakkerij De Korf", RecipientKind::Employer, Some(2), 5),
        ];
        let all = recipients(&rows, None);
        assert_eq!(all.len(), 3, "{all:?}");
        let uwv = all.iter().find(|r| r.recipient_kind == RecipientKind::Uwv).unwrap();
        assert_eq!(uwv.document_ids, vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
        assert_eq!(uwv.last_disclosed_at.timestamp_micros(), 30);
        // Document 1: UWV had it; the municipality had the whole dossier.
        let one: Vec<_> = recipients(&rows, Some(Uuid::from_u128(1))).into_iter().map(|r| r.recipient_kind).collect();
        assert_eq!(one, vec![RecipientKind::Municipality, RecipientKind::Uwv]);
        assert!(recipients(&[], None).is_empty());
    }
}
