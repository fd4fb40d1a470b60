//! A client's dossier as one zip (GDPR arts. 15 and 20; SPEC §6 `GET
//! /clients/{id}/export`; issue 10): management and office (management
//! alone for a restricted client), or the operator's `kluis export`.
//!
//! The operation reads everything it lists in its transaction and commits
//! its audit event (`client.export`: which request it answers, how many
//! documents were copied and listed, whether the BSN is in full) before a
//! byte is sent. The archive then streams (`crate::zip`, stored entries):
//!
//! - `client.json`: the client's data; the BSN in full only when the export
//!   answers the client's own `access` or `portability` request
//!   (`?request_id=`), else masked;
//! - `documents.json`: every document, tombstones too, with purposes it
//!   was opened for, retention dates, recipients, and where its content is
//!   in the archive (or why not: destroyed, or view-only);
//! - `documents/<id>-<filename>`: each active document's content, except
//!   view-only ones (raw psychological test material: listed, not copied),
//!   read again before it is sent (destroyed, erased or restricted since:
//!   the export stops), decrypted as it streams, one document open at a
//!   time; each one taken out is a `document.export` event of its own;
//! - `access-log.json`: who opened what, when, why, on whose behalf;
//! - `processing.json`: what art. 15(1) requires: purposes, categories,
//!   recipients, retention, source, automated decisions, rights;
//! - `requests.json`, `consents.json`, `disclosures.json`,
//!   `corrections.json`: the registers' entries of this client.
//!
//! The archive's size is known before it starts (every entry's size is),
//! so the answer has a `Content-Length`. A document that fails to decrypt
//! or to arrive ends the stream with an error: the transfer breaks, and no
//! archive that looks whole is ever missing part of a document.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::consents::consents_view;
use super::disclosures::{Disclosure, recipients};
use super::{Caller, ClientRow, Correction, Document, Op, Request, RequestContext, ServiceError, ServiceResult};
use crate::Vault;
use crate::catalog::{DocumentRow, DocumentState, micros_to_time};
use crate::domain::{Purpose, RequestKind};
use crate::policy::Action;
use crate::zip::ZipWriter;

/// `GET /api/v1/clients/{id}/export`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// The client's `access` or `portability` request this export answers:
    /// then (only then) the BSN is in full.
    pub request_id: Option<Uuid>,
}

/// A prepared export: its name, size and the archive's bytes.
pub struct Export {
    /// `kluis-export-<client id>-<date>.zip`.
    pub filename: String,
    /// The archive's exact size.
    pub size: u64,
    /// Documents copied into it, and listed but not copied (view-only).
    pub copied: usize,
    pub view_only: usize,
    /// The archive; an error ends it early (the transfer must then be
    /// aborted, never completed).
    pub body: BoxStream<'static, Result<Bytes, ServiceError>>,
}

/// One document as `documents.json` lists it.
#[derive(Debug, Serialize)]
struct ListedDocument {
    #[serde(flatten)]
    document: Document,
    /// Its content in the archive, or null (see `not_copied`).
    file: Option<String>,
    /// `view_only` (raw test material) or `destroyed`.
    not_copied: Option<&'static str>,
    /// The purposes it was opened for (from the audit log).
    opened_for: Vec<String>,
    recipients: Vec<super::Recipient>,
}

/// A name safe inside the archive: no path separators or control
/// characters (stored names have neither; this keeps it so).
fn entry_name(doc: &DocumentRow) -> String {
    let clean: String =
        doc.filename.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    format!("documents/{}-{}", doc.id, if clean.is_empty() { "document".into() } else { clean })
}

fn json(v: &impl Serialize) -> ServiceResult<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(v).map_err(ServiceError::internal)?;
    out.push(b'\n');
    Ok(out)
}

/// What `processing.json` says: GDPR art. 15(1)(a)–(h) for this client.
fn processing(
    client: &ClientRow,
    docs: &[DocumentRow],
    policies: &[crate::catalog::PolicyRow],
    recipients: &[super::Recipient],
) -> serde_json::Value {
    let mut types: Vec<&str> = docs.iter().map(|d| d.doc_type.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    let health = ["fml", "psych_report", "labour_expert_report"];
    serde_json::json!({
        "purposes": Purpose::ALL.iter().map(|p| serde_json::json!({ "purpose": p, "meaning": p.meaning() }))
            .collect::<Vec<_>>(),
        "categories": [
            { "category": "identification", "fields": ["first_name", "initials", "last_name", "birth_date"] },
            { "category": "citizen service number (BSN)", "recorded": client.bsn_sealed.is_some(),
              "note": "stored encrypted; shown masked; revealed only to management, office and administration, audited" },
            { "category": "contact", "fields": ["email", "phone", "address", "postcode", "city"] },
            { "category": "trajectory documents", "types": types },
            { "category": "health data (GDPR art. 9)",
              "present": types.iter().any(|t| health.contains(t)),
              "types": health },
        ],
        "recipients": recipients,
        "retention": policies.iter().map(|p| serde_json::json!({
            "type": p.doc_type, "clock_starts": p.trigger, "period_days": p.period_days, "statutory": p.statutory,
        })).collect::<Vec<_>>(),
        "retention_of_each_document": "documents.json, retention_until",
        "source": {
            "client": "the client, at intake and during the trajectory",
            "commissioner": client.commissioner,
            "note": "the commissioning party assigned the trajectory and may have sent its decision (document type assignment)",
        },
        "automated_decision_making": false,
        "transfers_outside_the_eea": false,
        "rights": [
            "access (art. 15)", "rectification (art. 16)", "erasure (art. 17)", "restriction (art. 18)",
            "portability (art. 20)", "objection (art. 21)", "withdrawing a consent at any time (art. 7(3))",
            "a complaint to the Autoriteit Persoonsgegevens (art. 77)",
        ],
        "security": "each document encrypted with its own AES-256-GCM key, wrapped by a master key; \
                     two-step login for every user; every access audited in a hash-chained log",
    })
}

/// The archive's files in memory (all but the documents' content) and the
/// documents to copy.
struct Prepared {
    files: Vec<(String, Vec<u8>)>,
    copy: Vec<DocumentRow>,
    view_only: usize,
    /// The exporter may take a restricted client's documents (management,
    /// the operator).
    restricted_ok: bool,
}

impl Vault {
    /// A client's dossier for a signed-in manager or office worker.
    pub async fn export_client(self: &Arc<Self>, caller: &Caller, id: Uuid, q: ExportQuery) -> ServiceResult<Export> {
        let mut op = self.op(caller, "client.export").await?;
        let (client, _) = op.client(id, Action::ExportClient).await?;
        let restricted_ok = caller.role() == crate::domain::Role::Management;
        let prepared = self.prepare_export(&mut op, &client, q.request_id, "api", restricted_ok).await?;
        op.commit().await?;
        self.stream_export(client.id, prepared)
    }

    /// A client's dossier for the operator (`kluis export`: the command line
    /// on the configured database, with the master key; audited as such).
    pub async fn export_client_as_operator(self: &Arc<Self>, id: Uuid, q: ExportQuery) -> ServiceResult<Export> {
        let mut op = self.anonymous_op(&RequestContext::default(), "client.export").await?;
        op.event.client_id = Some(id);
        let client = op.tx()?.client_opt(id).await?.ok_or_else(ServiceError::not_found)?;
        let prepared = self.prepare_export(&mut op, &client, q.request_id, "cli", true).await?;
        op.commit().await?;
        self.stream_export(client.id, prepared)
    }

    async fn prepare_export(
        &self,
        op: &mut Op<'_>,
        client: &ClientRow,
        request_id: Option<Uuid>,
        via: &str,
        restricted_ok: bool,
    ) -> ServiceResult<Prepared> {
        self.linked_request(op, request_id, client.id, &[RequestKind::Access, RequestKind::Portability]).await?;
        let now = op.now();
        let tx = op.tx()?;
        let docs = tx.all_documents_of(client.id).await?;
        let disclosures = tx.disclosures_of(client.id).await?;
        let consents = tx.consents_of(client.id).await?;
        let corrections = tx.corrections_of(client.id).await?;
        let requests = tx
            .list_requests(&crate::catalog::RequestFilter {
                client_id: Some(client.id),
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        let policies = tx.retention_policies().await?;
        let access_log = super::audit_log::access_log_in(tx, client.id, super::audit_log::ACCESS_LOG_LIMIT).await?;

        let full_bsn = request_id.is_some();
        let bsn = match (&client.bsn_sealed, full_bsn) {
            (Some(s), true) => Some(String::from_utf8_lossy(&self.open_field("bsn", client.id, s)?).into_owned()),
            _ => None,
        };
        let view = self.client_view(client)?;
        let client_json = serde_json::json!({
            "client": view,
            "bsn": bsn,
            "bsn_shown": if bsn.is_some() { "in full: this export answers the client's own request" }
                         else if client.bsn_sealed.is_some() { "masked" } else { "none recorded" },
            "request_id": request_id,
            "exported_at": micros_to_time(now),
        });
        // The purposes each document was opened for, from the access log.
        let opened_for = |id: Uuid| {
            let mut p: Vec<String> = access_log
                .entries
                .iter()
                .filter(|e| e.document_id == Some(id) && e.action == "document.download" && e.outcome == "allowed")
                .filter_map(|e| e.purpose.clone())
                .collect();
            p.sort();
            p.dedup();
            p
        };
        let mut listed = Vec::with_capacity(docs.len());
        let mut copy = Vec::new();
        let mut view_only = 0;
        for d in &docs {
            let (file, not_copied) = match (d.state, d.view_only) {
                (DocumentState::Active, false) => (Some(entry_name(d)), None),
                (DocumentState::Active, true) => (None, Some("view_only")),
                _ => (None, Some("destroyed")),
            };
            if file.is_some() {
                copy.push(d.clone());
            } else if d.state == DocumentState::Active {
                view_only += 1;
            }
            listed.push(ListedDocument {
                document: Document::try_from(d)?,
                file,
                not_copied,
                opened_for: opened_for(d.id),
                recipients: recipients(&disclosures, Some(d.id)),
            });
        }
        let all_recipients = recipients(&disclosures, None);
        let corrections = corrections.iter().map(Correction::try_from).collect::<ServiceResult<Vec<_>>>()?;
        let files = vec![
            ("client.json".to_string(), json(&client_json)?),
            ("documents.json".to_string(), json(&listed)?),
            ("access-log.json".to_string(), json(&access_log)?),
            ("processing.json".to_string(), json(&processing(client, &docs, &policies, &all_recipients))?),
            (
                "requests.json".to_string(),
                json(&requests.iter().map(|r| Request::from_row(r, now)).collect::<Vec<_>>())?,
            ),
            ("consents.json".to_string(), json(&consents_view(client.id, &consents))?),
            (
                "disclosures.json".to_string(),
                json(&serde_json::json!({
                    "disclosures": disclosures.iter().map(Disclosure::from).collect::<Vec<_>>(),
                    "recipients": all_recipients,
                }))?,
            ),
            ("corrections.json".to_string(), json(&corrections)?),
        ];
        op.event.details = serde_json::json!({
            "request_id": request_id, "documents_copied": copy.len(), "view_only_listed": view_only,
            "bsn": if bsn.is_some() { "full" } else { "masked" }, "via": via,
        });
        // Each document taken out is an access of its own in the access log,
        // for the purpose of keeping the data available to the client.
        let events: Vec<crate::audit::NewEvent> = copy
            .iter()
            .map(|d| {
                let mut e = op.event.clone();
                e.action = "document.export".into();
                e.outcome = "allowed".into();
                e.document_id = Some(d.id);
                e.purpose = Some(Purpose::Availability.as_str().into());
                e.details = serde_json::json!({ "request_id": request_id, "size": d.size, "via": via });
                e
            })
            .collect();
        op.tx()?.append_audit_many(&events).await?;
        Ok(Prepared { files, copy, view_only, restricted_ok })
    }

    fn stream_export(self: &Arc<Self>, client: Uuid, p: Prepared) -> ServiceResult<Export> {
        let entries = p
            .files
            .iter()
            .map(|(n, c)| (n.clone(), c.len() as u64))
            .chain(p.copy.iter().map(|d| (entry_name(d), d.size.unwrap_or(0).max(0) as u64)))
            .collect::<Vec<_>>();
        let size =
            ZipWriter::archive_size(entries.iter().map(|(n, s)| (n.as_str(), *s))).map_err(ServiceError::internal)?;
        let now = micros_to_time(self.now_micros());
        let (copied, view_only) = (p.copy.len(), p.view_only);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, ServiceError>>(4);
        let vault = self.clone();
        tokio::spawn(async move {
            if let Err(e) = write_archive(&vault, p, now, &tx).await {
                tracing::error!(client = %client, error = %e, "export aborted");
                let _ = tx.send(Err(e)).await;
            }
        });
        let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }).boxed();
        let date = now.format("%Y-%m-%d");
        Ok(Export { filename: format!("kluis-export-{client}-{date}.zip"), size, copied, view_only, body })
    }
}

impl Vault {
    /// The document's row as it is now, if it may still go into the export.
    async fn export_recheck(&self, listed: &DocumentRow, restricted_ok: bool) -> ServiceResult<DocumentRow> {
        let mut tx = self.snapshot().await?;
        let doc = tx.get_document(listed.id).await?;
        let client = tx.client(doc.client_id).await?;
        tx.commit().await?;
        if doc.state != DocumentState::Active || client.erased_at.is_some() {
            return Err(ServiceError::new(
                super::ErrorCode::Gone,
                "a document was destroyed while the export ran; the export was stopped",
            ));
        }
        if client.restricted && !restricted_ok {
            return Err(ServiceError::new(
                super::ErrorCode::Restricted,
                "the client was restricted while the export ran; the export was stopped",
            ));
        }
        Ok(doc)
    }
}

/// The receiver went away (the client disconnected): stop quietly.
struct Gone;

async fn send(tx: &tokio::sync::mpsc::Sender<Result<Bytes, ServiceError>>, b: Vec<u8>) -> Result<(), Gone> {
    tx.send(Ok(Bytes::from(b))).await.map_err(|_| Gone)
}

async fn write_archive(
    vault: &Vault,
    p: Prepared,
    now: DateTime<Utc>,
    tx: &tokio::sync::mpsc::Sender<Result<Bytes, ServiceError>>,
) -> ServiceResult<()> {
    let zip_err = ServiceError::internal;
    let mut z = ZipWriter::new();
    for (name, content) in &p.files {
        let Ok(()) = send(tx, z.entry(name, content, now).map_err(zip_err)?).await else { return Ok(()) };
    }
    for listed in &p.copy {
        // Read again before each document: one destroyed, erased or
        // restricted since the export began is not sent.
        let d = &vault.export_recheck(listed, p.restricted_ok).await?;
        let mut content = vault.open_document(d).await?;
        let size = d.size.unwrap_or(0).max(0) as u64;
        let (header, mut entry) =
            z.begin_entry(&entry_name(d), size, micros_to_time(d.uploaded_at)).map_err(zip_err)?;
        let Ok(()) = send(tx, header).await else { return Ok(()) };
        while let Some(chunk) = content.next().await {
            let chunk = chunk?;
            entry.update(&chunk);
            if tx.send(Ok(chunk)).await.is_err() {
                return Ok(());
            }
        }
        let Ok(()) = send(tx, z.finish_entry(entry).map_err(zip_err)?).await else { return Ok(()) };
    }
    let _ = send(tx, z.finish()).await;
    Ok(())
}
