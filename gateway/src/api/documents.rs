//! Documents: streaming upload, list, metadata, download-token issue.
//!
//! Upload: the multipart body's `file` part is streamed through the
//! encryptor into the blob store — never whole in memory, never as a
//! plaintext file. The first `SNIFF_LEN` bytes decide the content type by
//! magic bytes; the size limit is counted while streaming; a refused or
//! interrupted upload leaves no row and no object.

use std::time::Instant;

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;
use vault::NewDocument;
use vault::catalog::{DocumentRow, DocumentState};
use vault::domain::{DocumentType, Role};
use vault::policy::Action;

use super::{
    ApiError, ApiJson, ApiResult, AppState, Caller, event, opt_rfc3339, parse_id, parse_purpose, parse_time, rfc3339,
};
use crate::auth;
use crate::sniff::{self, SNIFF_LEN, Sniffed};

#[derive(Debug, Serialize, ToSchema)]
pub struct DocumentView {
    pub id: Uuid,
    pub client_id: Uuid,
    #[serde(rename = "type")]
    pub doc_type: String,
    pub title: Option<String>,
    pub filename: String,
    pub content_type: String,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    pub uploaded_by: Option<Uuid>,
    pub uploaded_at: String,
    pub retention_until: Option<String>,
    pub legal_hold: bool,
    /// active | destroyed
    pub state: String,
    pub destroyed_at: Option<String>,
    /// A user id, or `retention`.
    pub destroyed_by: Option<String>,
}

impl From<&DocumentRow> for DocumentView {
    fn from(d: &DocumentRow) -> Self {
        DocumentView {
            id: d.id,
            client_id: d.client_id,
            doc_type: d.doc_type.clone(),
            title: d.title.clone(),
            filename: d.filename.clone(),
            content_type: d.content_type.clone(),
            size: d.size,
            sha256: d.sha256.clone(),
            uploaded_by: d.uploaded_by,
            uploaded_at: rfc3339(d.uploaded_at),
            retention_until: opt_rfc3339(d.retention_until),
            legal_hold: d.legal_hold,
            state: d.state.as_str().into(),
            destroyed_at: opt_rfc3339(d.destroyed_at),
            destroyed_by: d.destroyed_by.clone(),
        }
    }
}

/// A file name that is safe to store and show: no path, no control
/// characters, at most 200 characters.
pub fn clean_filename(raw: Option<&str>) -> String {
    let base = raw.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() { "document".into() } else { cleaned }
}

/// The stored name ends in an extension that matches the content
/// (mime_guess judges the name only; the content was judged by its bytes).
fn name_for(filename: String, kind: sniff::Kind) -> String {
    let guessed = mime_guess::from_path(&filename).first_raw();
    if guessed == Some(kind.mime()) { filename } else { format!("{filename}.{}", kind.extension()) }
}

fn parse_date_or_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(t) = parse_time(s) {
        return Some(t.timestamp_micros());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros())
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))
}

/// Why the producer side of an upload stopped.
enum BodyEnd {
    TooLarge,
    Broken(String),
}

#[utoipa::path(post, path = "/api/v1/clients/{id}/documents", tag = "documents",
    request_body(content_type = "multipart/form-data", description = "fields: type, title?, retention_until?, file (last)"),
    responses((status = 201, body = DocumentView), (status = 413, description = "too_large"),
              (status = 415, description = "unsupported_media_type"), (status = 422, description = "unknown type or invalid field")),
    security(("bearer" = [])))]
pub async fn upload(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> ApiResult<(StatusCode, Json<DocumentView>)> {
    let mut multipart = multipart
        .map_err(|r| ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", r.body_text()))?;
    st.precheck(&caller, Action::UploadDocument, "document.upload").await?;
    let _slot = st.upload_slots.clone().acquire_owned().await.map_err(ApiError::internal)?;
    let started = Instant::now();
    let client = st.client(parse_id(&id)?).await?;
    st.authorize(&caller, Action::UploadDocument, Some(&client), None, "document.upload").await?;

    let (mut doc_type, mut title, mut retention) = (None, None, None);
    let mut field = loop {
        let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? else {
            return Err(ApiError::unprocessable("missing_file", "the multipart body has no `file` part"));
        };
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            break field;
        }
        // Read small fields chunk by chunk: never more than 1000 bytes held.
        let mut raw = Vec::new();
        while let Some(c) = field.chunk().await.map_err(multipart_error)? {
            raw.extend_from_slice(&c);
            if raw.len() > 1000 {
                return Err(ApiError::unprocessable("invalid_field", format!("{name} is too long")));
            }
        }
        let value = String::from_utf8(raw)
            .map_err(|_| ApiError::unprocessable("invalid_field", format!("{name} is not UTF-8 text")))?;
        match name.as_str() {
            "type" => doc_type = Some(value),
            "title" => title = Some(value.trim().to_string()).filter(|t| !t.is_empty()),
            "retention_until" => retention = Some(value),
            other => return Err(ApiError::unprocessable("invalid_field", format!("unknown field {other:?}"))),
        }
    };
    let doc_type: DocumentType = doc_type
        .as_deref()
        .ok_or_else(|| ApiError::unprocessable("invalid_field", "`type` must come before `file`"))?
        .parse()
        .map_err(|e: vault::domain::ParseError| ApiError::unprocessable("invalid_type", e.to_string()))?;
    let retention_until = match retention.as_deref().map(str::trim).filter(|r| !r.is_empty()) {
        None => None,
        Some(_) if !matches!(caller.user.role, Role::Management | Role::Office) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only management and office set a retention date",
            ));
        }
        Some(r) => Some(
            parse_date_or_time(r)
                .ok_or_else(|| ApiError::unprocessable("invalid_field", "retention_until is a date or RFC 3339"))?,
        ),
    };
    let filename = clean_filename(field.file_name());
    let max = st.settings.max_upload_bytes;
    let too_large =
        || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("a document is at most {max} bytes"));

    // The head decides the content type before anything is stored.
    let mut head = Vec::with_capacity(SNIFF_LEN);
    let mut ended = false;
    while head.len() < SNIFF_LEN {
        match field.chunk().await.map_err(multipart_error)? {
            Some(c) => head.extend_from_slice(&c),
            None => {
                ended = true;
                break;
            }
        }
        if head.len() as u64 > max {
            return Err(too_large());
        }
    }
    let kind = match sniff::sniff(&head[..head.len().min(SNIFF_LEN)]) {
        Sniffed::Accepted(kind) => kind,
        Sniffed::Refused(what) => {
            let mut e = event(Some(&caller), "document.upload", "denied");
            e.client_id = Some(client.id);
            e.reason = Some(format!("refused content: {}", what.describe()));
            st.audit(e).await?;
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("{} is not accepted; upload PDF, PNG, JPEG, TIFF, text, DOCX, XLSX or ODT", what.describe()),
            ));
        }
        Sniffed::Unknown if head.is_empty() => {
            return Err(ApiError::unprocessable("empty_file", "the file is empty"));
        }
        Sniffed::Unknown => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the content is not a recognised type; upload PDF, PNG, JPEG, TIFF, text, DOCX, XLSX or ODT",
            ));
        }
    };

    // Producer: the rest of the part, counted; consumer: the vault, in its
    // own task so that a cancelled request cannot cut a store operation in
    // half. The body ends with an explicit `Piece::End`: a channel that
    // closes without it (the request was dropped) is an error, never the
    // end of a shorter document.
    let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(4);
    let producer = async move {
        let mut total = head.len() as u64;
        if tx.send(Piece::Data(Ok(Bytes::from(head)))).await.is_err() {
            return Ok(());
        }
        if ended {
            let _ = tx.send(Piece::End).await;
            return Ok(());
        }
        loop {
            match field.chunk().await {
                Ok(Some(c)) => {
                    total += c.len() as u64;
                    if total > max {
                        let _ = tx.send(Piece::Data(Err(std::io::Error::other("upload exceeds the size limit")))).await;
                        return Err(BodyEnd::TooLarge);
                    }
                    if tx.send(Piece::Data(Ok(c))).await.is_err() {
                        return Ok(()); // the vault stopped reading; its error tells why
                    }
                }
                Ok(None) => {
                    let _ = tx.send(Piece::End).await;
                    return Ok(());
                }
                Err(e) => {
                    let msg = e.body_text();
                    let _ = tx.send(Piece::Data(Err(std::io::Error::other(msg.clone())))).await;
                    return Err(BodyEnd::Broken(msg));
                }
            }
        }
    };
    let meta = NewDocument {
        client_id: client.id,
        doc_type: doc_type.as_str().into(),
        title,
        filename: name_for(filename, kind),
        content_type: kind.mime().into(),
        uploaded_by: Some(caller.user.id),
        retention_until,
    };
    let vault = st.vault.clone();
    let store_task = tokio::spawn(async move { vault.put_document(meta, receiver_stream(rx)).await });
    let (produced, stored) = tokio::join!(producer, store_task);
    let stored = stored.map_err(ApiError::internal)?;
    let row = match (produced, stored) {
        (Err(BodyEnd::TooLarge), _) => return Err(too_large()),
        (Err(BodyEnd::Broken(m)), _) => {
            tracing::warn!(client = %client.id, error = %m, "upload interrupted; nothing was kept");
            return Err(ApiError::bad_request(format!("the upload was interrupted: {m}")));
        }
        (Ok(()), Err(e)) => return Err(e.into()),
        (Ok(()), Ok(row)) => row,
    };
    let size = row.size.unwrap_or(0);
    metrics::counter!("kluis_upload_bytes_total").increment(size as u64);
    metrics::histogram!("kluis_upload_duration_seconds").record(started.elapsed().as_secs_f64());
    let mut e = event(Some(&caller), "document.upload", "allowed");
    e.client_id = Some(client.id);
    e.document_id = Some(row.id);
    e.details = json!({ "size": size, "type": row.doc_type, "content_type": row.content_type });
    st.audit(e).await?;
    Ok((StatusCode::CREATED, Json(DocumentView::from(&row))))
}

/// What the request side hands the store side of an upload.
enum Piece {
    Data(Result<Bytes, std::io::Error>),
    /// The part ended normally.
    End,
}

/// A `'static` stream over the receiving end of the upload channel. It ends
/// only after `Piece::End`; a channel closed without it yields an error.
fn receiver_stream(
    rx: tokio::sync::mpsc::Receiver<Piece>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Piece::Data(item)) => Some((item, Some(rx))),
            Some(Piece::End) => None,
            None => Some((Err(std::io::Error::other("the upload was cut off")), None)),
        }
    })
}

#[utoipa::path(get, path = "/api/v1/clients/{id}/documents", tag = "documents",
    responses((status = 200, description = "{\"documents\": [DocumentView]}")), security(("bearer" = [])))]
pub async fn list(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    st.precheck(&caller, Action::ReadDocumentMetadata, "document.list").await?;
    let client = st.client(parse_id(&id)?).await?;
    st.authorize(&caller, Action::ReadDocumentMetadata, Some(&client), None, "document.list").await?;
    let docs: Vec<DocumentView> =
        st.vault.catalog.list_documents(client.id).await?.iter().map(DocumentView::from).collect();
    Ok(Json(json!({ "documents": docs })))
}

/// A document row the caller may see as metadata, or 404.
async fn visible_document(
    st: &AppState,
    caller: &Caller,
    id: Uuid,
    audit_action: &str,
) -> ApiResult<(DocumentRow, vault::catalog::ClientRow)> {
    st.precheck(caller, Action::ReadDocumentMetadata, audit_action).await?;
    let doc = st.vault.catalog.get_document(id).await?;
    if doc.state == DocumentState::Pending {
        return Err(ApiError::not_found());
    }
    let client = st.client(doc.client_id).await?;
    st.authorize(caller, Action::ReadDocumentMetadata, Some(&client), Some(doc.id), audit_action).await?;
    Ok((doc, client))
}

#[utoipa::path(get, path = "/api/v1/documents/{id}", tag = "documents",
    responses((status = 200, body = DocumentView), (status = 404, description = "not found or outside your scope")),
    security(("bearer" = [])))]
pub async fn get(State(st): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<DocumentView>> {
    let (doc, _) = visible_document(&st, &caller, parse_id(&id)?, "document.read").await?;
    // Tombstones are for management and office only.
    if doc.state == DocumentState::Destroyed && !matches!(caller.user.role, Role::Management | Role::Office) {
        return Err(ApiError::not_found());
    }
    Ok(Json(DocumentView::from(&doc)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// guidance | assignment | administration | invoicing | satisfaction_survey | availability
    pub purpose: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedToken {
    pub token: String,
    pub url: String,
    pub expires_at: String,
}

#[utoipa::path(post, path = "/api/v1/documents/{id}/download-tokens", tag = "documents", request_body = TokenRequest,
    responses((status = 201, body = IssuedToken), (status = 403, description = "purpose_not_allowed / restricted"),
              (status = 404, description = "outside your scope"), (status = 410, description = "gone")),
    security(("bearer" = [])))]
pub async fn issue_token(
    State(st): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TokenRequest>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    let purpose = parse_purpose(&body.purpose)?;
    st.precheck(&caller, Action::OpenDocument(purpose), "download_token.issue").await?;
    let doc = st.vault.catalog.get_document(parse_id(&id)?).await?;
    if doc.state == DocumentState::Pending {
        return Err(ApiError::not_found());
    }
    let client = st.client(doc.client_id).await?;
    let decision = st
        .authorize(&caller, Action::OpenDocument(purpose), Some(&client), Some(doc.id), "download_token.issue")
        .await?;
    if doc.state == DocumentState::Destroyed {
        return Err(ApiError::new(StatusCode::GONE, "gone", "the document has been destroyed"));
    }
    let token = auth::new_token();
    let now = Utc::now().timestamp_micros();
    let expires_at = now + st.settings.token_ttl.as_micros() as i64;
    st.vault
        .catalog
        .insert_download_token(&vault::catalog::NewDownloadToken {
            token_hash: auth::token_hash(&token),
            document_id: doc.id,
            user_id: caller.user.id,
            role: caller.user.role,
            purpose,
            created_at: now,
            expires_at,
        })
        .await?;
    let mut e = event(Some(&caller), "download_token.issue", "allowed");
    e.client_id = Some(client.id);
    e.document_id = Some(doc.id);
    e.purpose = Some(purpose.as_str().into());
    e.reason = Some(decision.reason().into());
    if let vault::policy::Decision::Allow { on_behalf_of, .. } = decision {
        e.on_behalf_of = on_behalf_of;
    }
    st.audit(e).await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedToken { url: format!("/api/v1/download/{token}"), token, expires_at: rfc3339(expires_at) }),
    ))
}
