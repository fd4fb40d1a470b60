//! Documents: upload (decided, streamed, activated with its audit event),
//! list, metadata (tombstones for management and office).
//!
//! An upload is three steps. [`Vault::authorize_upload`] decides, before
//! any of the body is read, whether this caller may upload to this client;
//! it returns an [`UploadPermit`], which only the vault can make.
//! [`Vault::upload_fields`] parses the form fields into it (and decides a
//! retention date, which only some roles may set). The transport then
//! checks the content's head and streams the body into
//! [`Vault::store_upload`], which writes it encrypted under a `pending` row
//! and activates the row together with the upload's audit event, deciding
//! once more first (the trajectory may have closed, or the substitution
//! ended, while the bytes flowed). The body stream ends with an error
//! ([`UploadAbort`]) when the transport refuses the content or the size, or
//! the client goes away; the vault then removes what it wrote, and a refused
//! content is audited as a denial.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::Stream;
use serde::Serialize;
use uuid::Uuid;

use super::{Caller, ErrorCode, ServiceError, ServiceResult, opt_time};
use crate::catalog::{DocumentRow, DocumentState, micros_to_time};
use crate::domain::{self, DocumentType};
use crate::faults::FaultPoint;
use crate::policy::{Action, Target};
use crate::{NewDocument, Vault, VaultError};

use super::retention::below_nip_minimum;

/// A document's metadata. A tombstone (`state: destroyed`) keeps only id,
/// client, type, dates, and who or what destroyed it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Document {
    pub id: Uuid,
    pub client_id: Uuid,
    #[serde(rename = "type")]
    pub doc_type: DocumentType,
    pub title: Option<String>,
    /// Null on a tombstone.
    pub filename: Option<String>,
    /// Null on a tombstone.
    pub content_type: Option<String>,
    pub size: Option<i64>,
    /// SHA-256 of the content, hex.
    pub sha256: Option<String>,
    pub uploaded_by: Option<Uuid>,
    pub uploaded_at: DateTime<Utc>,
    /// When the purge destroys it (unless held). Null while its clock has
    /// not started: see `retention_waits_for`.
    pub retention_until: Option<DateTime<Utc>>,
    /// `policy` (the type's retention policy) or `manual` (set by a person,
    /// with `retention_reason`).
    pub retention_source: &'static str,
    pub retention_reason: Option<String>,
    /// Why a live document has no destruction date yet: `trajectory_end`
    /// (its clock starts when the client's trajectory ends).
    pub retention_waits_for: Option<&'static str>,
    pub legal_hold: bool,
    /// Why it is held (while it is).
    pub legal_hold_reason: Option<String>,
    pub state: DocumentState,
    pub destroyed_at: Option<DateTime<Utc>>,
    /// `retention` (the purge: its date passed), or the id of the user who
    /// destroyed it at once.
    pub destroyed_by: Option<String>,
    /// Why it was destroyed: the date that passed, or the person's reason.
    pub destroy_reason: Option<String>,
    /// When its encrypted object was deleted from the store (its key went
    /// at `destroyed_at`); null while the deletion is queued.
    pub object_deleted_at: Option<DateTime<Utc>>,
    /// Raw psychological test material: listed in an export, never copied
    /// into it.
    pub view_only: bool,
    /// The document this one corrects (GDPR art. 16).
    pub supersedes: Option<Uuid>,
    /// The newest active document that corrects this one.
    pub superseded_by: Option<Uuid>,
    /// On the answer to an upload that corrects a document: everyone who
    /// received the old version (or the whole dossier), to be told of the
    /// correction (GDPR art. 19).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify: Option<Vec<super::Recipient>>,
}

impl TryFrom<&DocumentRow> for Document {
    type Error = ServiceError;
    fn try_from(d: &DocumentRow) -> Result<Self, ServiceError> {
        let shown = |v: &str| Some(v.to_string()).filter(|v| !v.is_empty());
        Ok(Document {
            id: d.id,
            client_id: d.client_id,
            doc_type: d.doc_type.parse().map_err(ServiceError::internal)?,
            title: d.title.clone(),
            filename: shown(&d.filename),
            content_type: shown(&d.content_type),
            size: d.size,
            sha256: d.sha256.clone(),
            uploaded_by: d.uploaded_by,
            uploaded_at: micros_to_time(d.uploaded_at),
            retention_until: opt_time(d.retention_until),
            retention_source: super::purge::retention_source(d.retention_manual),
            retention_reason: d.retention_reason.clone(),
            retention_waits_for: (d.retention_until.is_none() && d.state != DocumentState::Destroyed)
                .then_some("trajectory_end"),
            legal_hold: d.legal_hold,
            legal_hold_reason: d.hold_reason.clone(),
            state: d.state,
            destroyed_at: opt_time(d.destroyed_at),
            destroyed_by: d.destroyed_by.clone(),
            destroy_reason: d.destroy_reason.clone(),
            object_deleted_at: opt_time(d.object_deleted_at),
            view_only: d.view_only,
            supersedes: d.supersedes,
            superseded_by: d.superseded_by,
            notify: None,
        })
    }
}

/// The form fields of an upload, as sent.
#[derive(Debug, Clone, Default)]
pub struct UploadFields {
    pub doc_type: Option<String>,
    pub title: Option<String>,
    /// `YYYY-MM-DD` or RFC 3339, in the future; management and office
    /// only, with `retention_reason`.
    pub retention_until: Option<String>,
    pub retention_reason: Option<String>,
    /// The file part's name as the client sent it.
    pub filename: Option<String>,
    /// `true` for raw test material (listed in an export, never copied).
    pub view_only: Option<String>,
    /// The id of an active document of the same client and type that this
    /// upload corrects.
    pub supersedes: Option<String>,
    /// With `supersedes`: `keep` (default: the old version stays, marked
    /// superseded, until its own date) or `destroy` (management: the old
    /// version is destroyed in the transaction that activates the new one).
    pub superseded_version: Option<String>,
}

/// Permission to upload one document, from [`Vault::authorize_upload`].
#[derive(Debug)]
pub struct UploadPermit {
    caller: Caller,
    client_id: Uuid,
    on_behalf_of: Option<Uuid>,
    doc_type: Option<DocumentType>,
    title: Option<String>,
    retention_until: Option<i64>,
    retention_reason: Option<String>,
    filename: String,
    view_only: bool,
    supersedes: Option<Uuid>,
    /// Destroy the superseded version when this one activates.
    destroy_superseded: bool,
}

impl UploadPermit {
    /// The file name as it will be stored (before the transport adds the
    /// extension of the detected content type, if it lacks it).
    pub fn filename(&self) -> &str {
        &self.filename
    }

    pub fn client_id(&self) -> Uuid {
        self.client_id
    }
}

/// Why an upload's body stream ended early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadAbort {
    #[error("the document is larger than {max} bytes")]
    TooLarge { max: u64 },
    /// The content broke the content rules (a phrase such as "an executable program").
    #[error("{0} is not accepted")]
    Refused(String),
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    #[error("the upload stalled: no data for too long")]
    TimedOut,
    /// The form broke a rule (for example a second file part).
    #[error("{0}")]
    Invalid(String),
}

/// The UploadAbort somewhere in an error's chain of sources.
fn abort_in(e: &VaultError) -> Option<UploadAbort> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(a) = err.downcast_ref::<UploadAbort>() {
            return Some(a.clone());
        }
        cur = err.source();
    }
    None
}

/// The answer to an upload that stopped early.
pub fn abort_error(a: &UploadAbort) -> ServiceError {
    let code = match a {
        UploadAbort::TooLarge { .. } => ErrorCode::TooLarge,
        UploadAbort::Refused(_) => ErrorCode::UnsupportedMediaType,
        UploadAbort::Interrupted(_) => ErrorCode::UploadInterrupted,
        UploadAbort::TimedOut => ErrorCode::Timeout,
        UploadAbort::Invalid(_) => ErrorCode::InvalidField,
    };
    let message = match a {
        UploadAbort::Refused(what) => {
            format!("{what} is not accepted; upload PDF, PNG, JPEG, TIFF, text, DOCX, XLSX or ODT")
        }
        other => other.to_string(),
    };
    ServiceError::new(code, message)
}

/// A stored file name: no path, no control or text-direction characters
/// (refused, not silently dropped), no leading dots, at most 200 characters.
fn clean_filename(raw: Option<&str>) -> ServiceResult<String> {
    let base = raw.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let name = domain::optional_text("filename", Some(base), 200)?.unwrap_or_default();
    let name = name.trim_start_matches('.').trim().to_string();
    Ok(if name.is_empty() { "document".into() } else { name })
}

pub(super) fn parse_date_or_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros())
}

impl Vault {
    /// Decide an upload to a client, before any of the body is read.
    /// Denials (role, scope, closed trajectory) are audited here.
    pub async fn authorize_upload(&self, caller: &Caller, client_id: Uuid) -> ServiceResult<UploadPermit> {
        let mut op = self.op(caller, "document.upload").await?;
        let (client, decision) = op.client(client_id, Action::UploadDocument).await?;
        let permit = UploadPermit {
            caller: caller.clone(),
            client_id: client.id,
            on_behalf_of: match decision {
                crate::policy::Decision::Allow { on_behalf_of, .. } => on_behalf_of,
                _ => None,
            },
            doc_type: None,
            title: None,
            retention_until: None,
            retention_reason: None,
            filename: String::new(),
            view_only: false,
            supersedes: None,
            destroy_superseded: false,
        };
        op.commit_unaudited().await?;
        Ok(permit)
    }

    /// Parse an upload's form fields into its permit. A retention date is
    /// decided (only management and office set one; a refusal is audited).
    pub async fn upload_fields(&self, permit: &mut UploadPermit, fields: UploadFields) -> ServiceResult<()> {
        let retention = fields.retention_until.as_deref().map(str::trim).filter(|r| !r.is_empty());
        if retention.is_some() {
            let mut op = self.op(&permit.caller, "document.upload").await?;
            op.client(permit.client_id, Action::SetRetention).await?;
            op.commit_unaudited().await?;
        }
        let doc_type: DocumentType = fields
            .doc_type
            .as_deref()
            .ok_or_else(|| ServiceError::new(ErrorCode::InvalidField, "`type` must come before `file`"))?
            .trim()
            .parse()?;
        permit.retention_until = match retention {
            None => None,
            Some(r) => Some(parse_date_or_time(r).ok_or_else(|| {
                ServiceError::new(ErrorCode::InvalidField, "retention_until is a date YYYY-MM-DD or RFC 3339")
            })?),
        };
        if let Some(until) = permit.retention_until {
            if until <= self.now_micros() {
                return Err(ServiceError::new(ErrorCode::InvalidField, "retention_until must lie in the future"));
            }
            permit.retention_reason =
                Some(domain::required_text("reason", fields.retention_reason.as_deref().unwrap_or(""), 1000)?);
        }
        permit.view_only = match fields.view_only.as_deref().map(str::trim) {
            None | Some("false") => false,
            // Raw psychological test material is part of a psychological
            // report; no other type may be kept out of an export.
            Some("true") if doc_type == DocumentType::PsychReport => true,
            Some("true") => {
                return Err(ServiceError::new(ErrorCode::InvalidField, "view_only is for psych_report documents"));
            }
            Some(_) => return Err(ServiceError::new(ErrorCode::InvalidField, "view_only is true or false")),
        };
        permit.supersedes = match fields.supersedes.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => {
                let old: Uuid =
                    s.parse().map_err(|_| ServiceError::new(ErrorCode::InvalidField, "supersedes is a document id"))?;
                self.check_supersedes(permit, old, doc_type).await?;
                Some(old)
            }
        };
        permit.destroy_superseded = match fields.superseded_version.as_deref().map(str::trim) {
            None | Some("keep") => false,
            Some("destroy") if permit.supersedes.is_some() => {
                let old = permit.supersedes.unwrap_or_default();
                let mut op = self.op(&permit.caller, "document.upload").await?;
                let (doc, _, _) = op.document(old, Action::DestroyDocument).await?;
                if doc.legal_hold {
                    return Err(ServiceError::new(
                        ErrorCode::LegalHold,
                        "the superseded version is under a legal hold",
                    ));
                }
                op.commit_unaudited().await?;
                true
            }
            Some("destroy") => {
                return Err(ServiceError::new(ErrorCode::InvalidField, "superseded_version goes with supersedes"));
            }
            Some(_) => return Err(ServiceError::new(ErrorCode::InvalidField, "superseded_version is keep or destroy")),
        };
        permit.doc_type = Some(doc_type);
        permit.title = domain::optional_text("title", fields.title.as_deref(), 200)?;
        permit.filename = clean_filename(fields.filename.as_deref())?;
        Ok(())
    }

    /// A corrected version replaces an active document of the same client
    /// and type, which the uploader may see.
    async fn check_supersedes(&self, permit: &UploadPermit, old: Uuid, doc_type: DocumentType) -> ServiceResult<()> {
        let mut op = self.op(&permit.caller, "document.upload").await?;
        let doc = op.tx()?.document(old).await?;
        let fits = doc.as_ref().is_some_and(|d| {
            d.client_id == permit.client_id && d.state == DocumentState::Active && d.doc_type == doc_type.as_str()
        });
        if !fits {
            return Err(ServiceError::new(
                ErrorCode::InvalidField,
                "supersedes must name an active document of this client and of the same type",
            ));
        }
        op.document(old, Action::ReadDocumentMetadata).await?;
        op.commit_unaudited().await
    }

    /// The transport refused the content by its head, before anything was
    /// stored: audit the denial; the answer is `err`.
    pub async fn refuse_upload(&self, permit: UploadPermit, err: ServiceError, reason: &str) -> ServiceError {
        let mut op = match self.op(&permit.caller, "document.upload").await {
            Ok(op) => op,
            Err(e) => return e,
        };
        op.event.client_id = Some(permit.client_id);
        op.event.on_behalf_of = permit.on_behalf_of;
        op.deny(err, reason).await
    }

    /// Store an upload under `permit`: `filename` and `content_type` as the
    /// transport determined them from the content. The body is encrypted as
    /// it streams; the document becomes active, with its audit event, only
    /// once every byte is durably stored.
    pub async fn store_upload<S>(
        &self,
        permit: UploadPermit,
        filename: String,
        content_type: &str,
        body: S,
    ) -> ServiceResult<Document>
    where
        S: Stream<Item = Result<Bytes, UploadAbort>> + Send + 'static,
    {
        let filename = domain::required_text("filename", &filename, 220)?;
        let doc_type = permit.doc_type.ok_or_else(|| ServiceError::internal("store_upload before upload_fields"))?;
        let meta = NewDocument {
            client_id: permit.client_id,
            doc_type: doc_type.as_str().into(),
            title: permit.title.clone(),
            filename,
            content_type: content_type.into(),
            uploaded_by: Some(permit.caller.id()),
            retention_until: permit.retention_until,
            retention_reason: permit.retention_reason.clone(),
            view_only: permit.view_only,
            supersedes: permit.supersedes,
        };
        let doc = self.begin_document(meta).await?;
        let (sha, size) = match self.write_document(&doc, body).await {
            Ok(done) => done,
            Err(e) => {
                self.discard(doc.id, &doc.name).await;
                return Err(match abort_in(&e) {
                    Some(a @ UploadAbort::Refused(_)) => {
                        let reason = format!("refused content: {a}");
                        self.refuse_upload(permit, abort_error(&a), &reason).await
                    }
                    Some(a) => abort_error(&a),
                    None => e.into(),
                });
            }
        };
        let activated = async {
            let mut op = self.op(&permit.caller, "document.upload").await?;
            // Decided again: access may have ended while the bytes flowed.
            op.event.document_id = Some(doc.id);
            // Locked: an erasure, closure or restriction committing meanwhile
            // waits for this activation, or this activation sees it.
            let (client, decision) =
                op.client_locked(permit.client_id, Action::UploadDocument, crate::catalog::RowLock::Share).await?;
            let mut below = false;
            if let Some(until) = permit.retention_until {
                let facts = super::facts(&client);
                op.authorize(Action::SetRetention, Target::Client(&facts)).await?;
                below = below_nip_minimum(doc_type.as_str(), until, client.ended_at, op.now());
                if below {
                    op.authorize(Action::RetentionBelowMinimum, Target::Client(&facts)).await?;
                }
            }
            op.event.on_behalf_of = match decision {
                crate::policy::Decision::Allow { on_behalf_of, .. } => on_behalf_of,
                _ => None,
            };
            op.event.reason = Some(decision.reason().into());
            let retention = permit.retention_until.map(|u| {
                serde_json::json!({ "until": micros_to_time(u), "reason": permit.retention_reason,
                                    "below_nip_minimum": below })
            });
            op.event.details = serde_json::json!({ "size": size, "type": doc_type, "content_type": content_type,
                                                   "retention": retention, "view_only": permit.view_only,
                                                   "supersedes": permit.supersedes });
            op.tx()?.activate_document(doc.id, size as i64, &sha).await.map_err(ServiceError::from)?;
            let mut notify = None;
            let mut destroyed = Vec::new();
            if let Some(old) = permit.supersedes {
                let disclosures = op.tx()?.disclosures_of(permit.client_id).await?;
                notify = Some(super::disclosures::recipients(&disclosures, Some(old)));
                if permit.destroy_superseded {
                    let facts = super::facts(&client);
                    op.authorize(Action::DestroyDocument, Target::Client(&facts)).await?;
                    let by = permit.caller.id().to_string();
                    let reason = format!("superseded by the corrected version {}", doc.id);
                    let how = crate::catalog::Destruction { by: &by, reason: &reason, due_at: None };
                    let lease = op.now() + super::purge::LEASE_MICROS;
                    destroyed = op.tx()?.destroy_documents(&[old], how, lease).await?;
                    if destroyed.is_empty() {
                        return Err(ServiceError::new(
                            ErrorCode::LegalHold,
                            "the superseded version is held or gone; nothing was stored",
                        ));
                    }
                    let mut event = op.event.clone();
                    event.action = "document.destroy".into();
                    event.document_id = Some(old);
                    event.reason = Some(reason);
                    event.details = serde_json::json!({ "by": "correction", "superseded_by": doc.id });
                    op.tx()?.append_audit(&event).await?;
                }
            }
            op.commit().await?;
            if !destroyed.is_empty()
                && let Err(e) = self.delete_objects(destroyed).await
            {
                tracing::warn!(error = %e, "object of a superseded version stays queued");
            }
            if self.faults.fire(FaultPoint::ActivationAckLost) {
                return Err(ServiceError::new(ErrorCode::DatabaseUnavailable, "fault injected: acknowledgement lost"));
            }
            Ok::<Option<Vec<super::Recipient>>, ServiceError>(notify)
        }
        .await;
        let (row, notify) = match activated {
            Ok(notify) => (self.snapshot().await?.get_document(doc.id).await?, notify),
            // Refused at the last moment (audited by the decision): nothing is kept.
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::NotFound | ErrorCode::Forbidden | ErrorCode::ClientClosed | ErrorCode::LegalHold
                ) =>
            {
                self.discard(doc.id, &doc.name).await;
                return Err(e);
            }
            Err(e) => match self.resolve_activation(&doc, &e).await {
                Some(row) => (row, None),
                None => return Err(e),
            },
        };
        let mut view = Document::try_from(&row)?;
        view.notify = notify;
        Ok(view)
    }
    /// A client's active documents, newest first.
    pub async fn list_documents(&self, caller: &Caller, client_id: Uuid) -> ServiceResult<Vec<Document>> {
        let mut op = self.op(caller, "document.list").await?;
        let (client, _) = op.client(client_id, Action::ReadDocumentMetadata).await?;
        let docs = op.tx()?.list_documents(client.id).await?;
        let out = docs.iter().map(Document::try_from).collect::<ServiceResult<Vec<_>>>()?;
        op.event.details = serde_json::json!({ "count": out.len() });
        op.commit().await?;
        Ok(out)
    }

    /// One document's metadata (a tombstone for management and office).
    pub async fn get_document(&self, caller: &Caller, id: Uuid) -> ServiceResult<Document> {
        let mut op = self.op(caller, "document.read").await?;
        let (doc, _, _) = op.document(id, Action::ReadDocumentMetadata).await?;
        let view = Document::try_from(&doc)?;
        op.commit().await?;
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_their_path_and_refuse_hidden_characters() {
        assert_eq!(clean_filename(Some("../../etc/rapport 1.pdf")).unwrap(), "rapport 1.pdf");
        assert_eq!(clean_filename(Some("C:\\\\Users\\\\x\\\\brief.txt")).unwrap(), "brief.txt");
        assert_eq!(clean_filename(Some(".hidden")).unwrap(), "hidden");
        assert_eq!(clean_filename(None).unwrap(), "document");
        assert_eq!(clean_filename(Some("  ")).unwrap(), "document");
        for bad in ["cod\u{202E}fdp.exe", "a\u{0}b.pdf", "a\r\nb.pdf"] {
            assert_eq!(clean_filename(Some(bad)).unwrap_err().code, ErrorCode::InvalidField, "{bad:?}");
        }
        assert_eq!(clean_filename(Some(&"x".repeat(201))).unwrap_err().code, ErrorCode::InvalidField);
    }

    #[test]
    fn aborts_are_found_through_the_error_chain() {
        let inner: Box<dyn std::error::Error + Send + Sync> = Box::new(UploadAbort::TooLarge { max: 10 });
        let e =
            VaultError::Store(crate::store::StoreError::Source(Box::new(crate::crypto::CryptoError::Source(inner))));
        assert_eq!(abort_in(&e), Some(UploadAbort::TooLarge { max: 10 }));
        assert_eq!(abort_error(&UploadAbort::TooLarge { max: 10 }).code, ErrorCode::TooLarge);
    }
}
