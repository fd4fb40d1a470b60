//! Erasure (GDPR art. 17; SPEC §6 `POST /clients/{id}/erase`; issue 10),
//! management only.
//!
//! One transaction decides and destroys: when any live document of the
//! client must be kept (a legal hold, or a statutory retention period whose
//! date has not passed), nothing is destroyed and the answer is 409
//! `must_keep` with the reasons per document. Otherwise every live
//! document goes through the purge's machinery (`destroy_documents`: data
//! key dropped, names cleared, tombstone, object queued and leased to this
//! node; one `document.destroy` event each), the client's running consents
//! are withdrawn, the personal fields are cleared (the row stays, with its
//! id, as the anchor of tombstones, requests and certificate; the history
//! of corrections keeps which fields changed when, not the values), the
//! trajectory ends if it ran, and a destruction certificate is kept: what
//! (ids, types, dates; never content or names), when, who, how, and the
//! recipients to notify (art. 19). After the commit the objects are
//! deleted; a failure leaves them queued for the purge's retry, and the
//! certificate, read again, says which are still queued.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::disclosures::{Recipient, recipients};
use super::{Caller, ErrorCode, ServiceError, ServiceResult, opt_time};
use crate::Vault;
use crate::audit::NewEvent;
use crate::catalog::{Destruction, ErasureRow, RowLock, micros_to_time};
use crate::domain::{self, ConsentScope, RequestKind};
use crate::policy::Action;

/// How the erasure destroys, as the certificate states it.
pub const ERASURE_METHOD: &str = "each document's data key destroyed in the catalog (crypto-shredding: \
     the AES-256-GCM ciphertext can no longer be opened), then its object deleted from the store and its \
     index entry removed; the client's personal fields cleared, the BSN's sealed value dropped";

/// `POST /api/v1/clients/{id}/erase`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EraseClient {
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<1000>))]
    pub reason: String,
    /// The client's `erasure` request this answers.
    pub request_id: Option<Uuid>,
}

/// One document the erasure destroyed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasedDocument {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub doc_type: String,
    pub uploaded_at: DateTime<Utc>,
    /// Set when the object has left the store (read live).
    #[serde(default)]
    pub object_deleted_at: Option<DateTime<Utc>>,
}

/// The destruction certificate: what, when, who, how; no content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasureCertificate {
    pub id: Uuid,
    pub client_id: Uuid,
    pub request_id: Option<Uuid>,
    pub erased_by: Uuid,
    pub erased_at: DateTime<Utc>,
    pub reason: String,
    pub method: String,
    pub documents: Vec<ErasedDocument>,
    /// Documents destroyed before the erasure (by retention or a person),
    /// whose tombstones remain.
    pub destroyed_before: usize,
    pub fields_cleared: Vec<String>,
    pub consents_withdrawn: u64,
    /// Everyone who received the client's data or documents (art. 19).
    pub notify: Vec<Recipient>,
    /// Objects still waiting for deletion (read live; 0 once all are gone).
    #[serde(default)]
    pub objects_pending: usize,
}

/// Why one document must be kept.
#[derive(Debug, Clone, Serialize)]
struct Keep {
    document_id: Uuid,
    #[serde(rename = "type")]
    doc_type: String,
    reasons: Vec<serde_json::Value>,
}

const FIELDS_CLEARED: &[&str] =
    &["first_name", "initials", "last_name", "birth_date", "bsn", "email", "phone", "address", "postcode", "city"];

impl Vault {
    pub async fn erase_client(&self, caller: &Caller, id: Uuid, req: EraseClient) -> ServiceResult<ErasureCertificate> {
        let mut op = self.op(caller, "client.erase").await?;
        let (c, _) = op.client_locked(id, Action::EraseClient, RowLock::Update).await?;
        let reason = domain::required_text("reason", &req.reason, 1000)?;
        if c.erased_at.is_some() {
            return Err(ServiceError::new(ErrorCode::Erased, "the client's data has been erased already"));
        }
        self.linked_request(&mut op, req.request_id, c.id, &[RequestKind::Erasure]).await?;
        let now = op.now();
        let docs = op.tx()?.list_documents(c.id).await?;
        let statutory: Vec<String> =
            op.tx()?.retention_policies().await?.into_iter().filter(|p| p.statutory).map(|p| p.doc_type).collect();
        let mut keep = Vec::new();
        for d in &docs {
            let mut reasons = Vec::new();
            if d.legal_hold {
                reasons.push(serde_json::json!({ "code": "legal_hold", "reason": d.hold_reason }));
            }
            if statutory.contains(&d.doc_type) && d.retention_until.is_none_or(|u| u > now) {
                reasons.push(serde_json::json!({
                    "code": "statutory_retention", "until": opt_time(d.retention_until),
                }));
            }
            if !reasons.is_empty() {
                keep.push(Keep { document_id: d.id, doc_type: d.doc_type.clone(), reasons });
            }
        }
        if !keep.is_empty() {
            let err = ServiceError::new(
                ErrorCode::MustKeep,
                format!("{} document(s) must be kept; nothing was erased", keep.len()),
            )
            .with_details(serde_json::json!({ "documents": keep }));
            // The event: which documents and why, in codes; the reasons'
            // words stay on the documents.
            let codes: Vec<serde_json::Value> = keep
                .iter()
                .map(|k| {
                    let c: Vec<serde_json::Value> = k.reasons.iter().map(|r| r["code"].clone()).collect();
                    serde_json::json!({ "document_id": k.document_id, "codes": c })
                })
                .collect();
            op.event.details = serde_json::json!({ "documents": codes });
            return Err(op.deny(err, "documents must be kept").await);
        }

        let destroyed_before = op.tx()?.count_destroyed_documents(c.id).await? as usize;
        let by = caller.id().to_string();
        let how = Destruction { by: &by, reason: &reason, due_at: None };
        let ids: Vec<Uuid> = docs.iter().map(|d| d.id).collect();
        let objects = op.tx()?.destroy_documents(&ids, how, now + super::purge::LEASE_MICROS).await?;
        if objects.len() != ids.len() {
            // A hold was set, or a purge destroyed one, since they were read.
            return Err(ServiceError::new(ErrorCode::Busy, "the dossier changed during the erasure; try again"));
        }
        let events: Vec<NewEvent> = docs
            .iter()
            .map(|d| {
                let mut e = op.event.clone();
                e.action = "document.destroy".into();
                e.document_id = Some(d.id);
                e.reason = Some(reason.clone());
                e.details = serde_json::json!({ "by": "erasure", "type": d.doc_type });
                e
            })
            .collect();
        op.tx()?.append_audit_many(&events).await?;
        let disclosures = op.tx()?.disclosures_of(c.id).await?;
        op.tx()?.erase_client_fields(c.id).await?;
        let mut withdrawn = 0;
        for scope in ConsentScope::ALL {
            withdrawn += self
                .withdraw_consent_in(&mut op, caller, c.id, *scope, "the client's data was erased", req.request_id)
                .await?;
        }
        let cert = ErasureCertificate {
            id: Uuid::new_v4(),
            client_id: c.id,
            request_id: req.request_id,
            erased_by: caller.id(),
            erased_at: micros_to_time(now),
            reason: reason.clone(),
            method: ERASURE_METHOD.into(),
            documents: docs
                .iter()
                .map(|d| ErasedDocument {
                    id: d.id,
                    doc_type: d.doc_type.clone(),
                    uploaded_at: micros_to_time(d.uploaded_at),
                    object_deleted_at: None,
                })
                .collect(),
            destroyed_before,
            fields_cleared: FIELDS_CLEARED.iter().map(|f| f.to_string()).collect(),
            consents_withdrawn: withdrawn,
            notify: recipients(&disclosures, None),
            objects_pending: ids.len(),
        };
        let row = ErasureRow {
            id: cert.id,
            client_id: c.id,
            request_id: req.request_id,
            erased_by: caller.id(),
            erased_at: now,
            reason: reason.clone(),
            certificate: serde_json::to_value(&cert).map_err(ServiceError::internal)?,
        };
        op.tx()?.insert_erasure(&row).await?;
        op.event.reason = Some(reason);
        op.event.details = serde_json::json!({
            "erasure_id": cert.id, "documents": ids.len(), "request_id": req.request_id,
            "consents_withdrawn": withdrawn, "recipients": cert.notify.len(),
        });
        op.commit().await?;
        if let Err(e) = self.delete_objects(objects).await {
            tracing::warn!(client = %c.id, error = %e, "objects of an erased dossier stay queued");
        }
        self.erasure_certificate_of(&row).await
    }

    /// The client's erasure certificate (management), with the objects'
    /// deletion read live.
    pub async fn erasure_certificate(&self, caller: &Caller, id: Uuid) -> ServiceResult<ErasureCertificate> {
        let mut op = self.op(caller, "client.erasure.read").await?;
        let (c, _) = op.client(id, Action::EraseClient).await?;
        let rows = op.tx()?.erasures_of(c.id).await?;
        op.event.outcome = "allowed".into();
        op.commit().await?;
        let row = rows.last().ok_or_else(ServiceError::not_found)?;
        self.erasure_certificate_of(row).await
    }

    async fn erasure_certificate_of(&self, row: &ErasureRow) -> ServiceResult<ErasureCertificate> {
        let mut cert: ErasureCertificate = serde_json::from_value(row.certificate.clone())
            .map_err(|_| ServiceError::internal(format!("certificate of erasure {} is malformed", row.id)))?;
        let mut tx = self.snapshot().await?;
        let mut pending = 0;
        for d in &mut cert.documents {
            let now = tx.get_document(d.id).await?;
            d.object_deleted_at = opt_time(now.object_deleted_at);
            pending += usize::from(now.object_deleted_at.is_none());
        }
        tx.commit().await?;
        cert.objects_pending = pending;
        Ok(cert)
    }
}
