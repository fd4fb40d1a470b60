//! The streaming upload pipeline: a `multipart/form-data` body into
//! `Vault::store_upload`, never whole in memory, never as a plaintext file.
//!
//! Order: the form fields (small, bounded, each at most once), then the
//! `file` part, which must come last and once. The vault decides the upload
//! when the file part starts ([`vault::Vault::authorize_upload`]); then its
//! head decides the content type by magic bytes ([`sniff`]) before anything
//! is stored, and an [`sniff::Inspector`] checks every further byte as it
//! streams past. The size limit is counted as the bytes flow. Any refusal,
//! from the first byte to the last, ends the body stream with an
//! [`UploadAbort`], and the vault removes what it wrote: a refused or
//! interrupted upload leaves no document and no object.
//!
//! A body that was refused for its size is drained (bounded in bytes and
//! time) before the answer, so that a client that sends its whole body
//! before reading still receives the 413 instead of a connection reset.

pub mod sniff;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::Multipart;
use axum::extract::multipart::{Field, MultipartError};
use bytes::Bytes;
use uuid::Uuid;
use vault::service::{Caller, Document, ErrorCode, ServiceError, UploadAbort, UploadFields};

use crate::api::{ApiError, ApiResult, AppState};
use sniff::{Inspector, SNIFF_LEN, Sniffed};

/// Form fields before the file: at most this many bytes each.
const MAX_FIELD: usize = 1000;
/// What the form may hold besides the file's content (its preamble, part
/// headers and fields, and what the parser has read ahead of the file):
/// beyond it the body is refused, so a part header that never ends cannot
/// make the parser buffer without bound.
const ENVELOPE: u64 = 1 << 20;
/// After this long, an upload must have averaged at least `MIN_RATE`
/// bytes per second, or it is cut off as stalled (a trickle would
/// otherwise hold an upload slot indefinitely).
const MIN_RATE_AFTER: Duration = Duration::from_secs(60);
const MIN_RATE: u64 = 16 << 10;
/// After a refusal for size, read and discard at most this much more ...
const DRAIN_BYTES: u64 = 1 << 30;
/// ... for at most this long, before answering.
const DRAIN_TIME: Duration = Duration::from_secs(30);

/// Was this failure a body that stalled (the body idle timeout)?
pub fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<tower_http::timeout::TimeoutError>() || err.to_string().contains("timed out") {
            return true;
        }
        cur = err.source();
    }
    false
}

fn multipart_error(e: MultipartError) -> ApiError {
    if is_timeout(&e) {
        return ApiError::new(ErrorCode::Timeout, "the upload stalled: no data for too long");
    }
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(ErrorCode::TooLarge, "the upload is too large");
    }
    ApiError::new(ErrorCode::BadRequest, "malformed multipart body")
}

fn abort_of(e: &MultipartError) -> UploadAbort {
    if is_timeout(e) { UploadAbort::TimedOut } else { UploadAbort::Interrupted("the body broke off".into()) }
}

/// The stored name ends in an extension that matches the content
/// (mime_guess judges the name only; the content was judged by its bytes).
fn name_for(filename: &str, kind: sniff::Kind) -> String {
    let guessed = mime_guess::from_path(filename).first_raw();
    let essence = kind.mime().split(';').next().unwrap_or("").trim();
    if guessed == Some(essence) { filename.to_string() } else { format!("{filename}.{}", kind.extension()) }
}

/// Take one small form field (before the file) into `out`.
async fn take_field(out: &mut UploadFields, name: &str, mut field: Field<'_>) -> ApiResult<()> {
    let slot = match name {
        "type" => &mut out.doc_type,
        "title" => &mut out.title,
        "retention_until" => &mut out.retention_until,
        "retention_reason" => &mut out.retention_reason,
        "view_only" => &mut out.view_only,
        "supersedes" => &mut out.supersedes,
        "superseded_version" => &mut out.superseded_version,
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidField,
                "unknown form field; the fields are type, title, retention_until, retention_reason, view_only, supersedes, superseded_version and file",
            ));
        }
    };
    if slot.is_some() {
        return Err(ApiError::new(ErrorCode::InvalidField, format!("the field `{name}` is given twice")));
    }
    let mut raw = Vec::new();
    while let Some(c) = field.chunk().await.map_err(multipart_error)? {
        raw.extend_from_slice(&c);
        if raw.len() > MAX_FIELD {
            return Err(ApiError::new(ErrorCode::InvalidField, format!("the field `{name}` is too long")));
        }
    }
    let value = String::from_utf8(raw)
        .map_err(|_| ApiError::new(ErrorCode::InvalidField, format!("the field `{name}` is not UTF-8 text")))?;
    *slot = Some(value);
    Ok(())
}

/// Bytes of the body so far, and of it the file's content: the difference is
/// what the multipart parser holds of the envelope.
#[derive(Default)]
pub struct Budget {
    read: AtomicU64,
    file: AtomicU64,
    exceeded: std::sync::atomic::AtomicBool,
}

/// The request body, counted against the envelope budget.
pub fn budgeted(body: axum::body::Body, budget: Arc<Budget>) -> axum::body::Body {
    use futures::StreamExt;
    axum::body::Body::from_stream(body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        let read = budget.read.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        if read.saturating_sub(budget.file.load(Ordering::Relaxed)) > ENVELOPE {
            budget.exceeded.store(true, Ordering::Relaxed);
            return Err(axum::Error::new(std::io::Error::other("the form around the file is too large")));
        }
        Ok(chunk)
    }))
}

/// Receive one upload for `client_id` into the vault: decided before any of
/// the body is read.
pub async fn receive(
    st: &AppState,
    caller: &Caller,
    client_id: Uuid,
    multipart: Multipart,
    budget: Arc<Budget>,
) -> ApiResult<Document> {
    receive_named(st, caller, client_id, multipart, budget, Arc::default()).await
}

/// [`receive`], telling `filename` the file's name as soon as its part
/// begins (a page shows it beside a refusal that comes before any store).
pub async fn receive_named(
    st: &AppState,
    caller: &Caller,
    client_id: Uuid,
    mut multipart: Multipart,
    budget: Arc<Budget>,
    filename: Arc<std::sync::Mutex<String>>,
) -> ApiResult<Document> {
    let _slot = st.slot(&st.upload_slots, "uploads").await?;
    let _transfer = crate::alloc::Transfer::start();
    let started = Instant::now();
    let max = st.settings.max_upload_bytes;
    let mut permit = st.vault.authorize_upload(caller, client_id).await?;
    let over = |e: MultipartError| {
        if budget.exceeded.load(Ordering::Relaxed) {
            ApiError::new(ErrorCode::TooLarge, format!("the form around the file is larger than {ENVELOPE} bytes"))
        } else {
            multipart_error(e)
        }
    };
    let mut fields = UploadFields::default();
    let mut field = loop {
        let Some(field) = multipart.next_field().await.map_err(over)? else {
            return Err(ApiError::new(ErrorCode::MissingFile, "the multipart body has no `file` part"));
        };
        let name = field.name().unwrap_or("").to_string();
        if name == "file" {
            fields.filename = field.file_name().map(str::to_string);
            if let (Ok(mut n), Some(f)) = (filename.lock(), &fields.filename) {
                n.clone_from(f);
            }
            break field;
        }
        take_field(&mut fields, &name, field).await?;
    };
    st.vault.upload_fields(&mut permit, fields).await?;

    // The head decides the content type before anything is stored.
    let mut head = Vec::with_capacity(SNIFF_LEN);
    let mut ended = false;
    while head.len() < SNIFF_LEN {
        match field.chunk().await.map_err(over)? {
            Some(c) => {
                budget.file.fetch_add(c.len() as u64, Ordering::Relaxed);
                head.extend_from_slice(&c)
            }
            None => {
                ended = true;
                break;
            }
        }
        if head.len() as u64 > max {
            drain(field, 0).await;
            return Err(UploadAbort::TooLarge { max }.into_api());
        }
    }
    let refuse = |what: &str| {
        let e = ServiceError::new(
            ErrorCode::UnsupportedMediaType,
            format!("{what} is not accepted; upload PDF, PNG, JPEG, TIFF, text, DOCX, XLSX or ODT"),
        );
        (e, format!("refused content: {what}"))
    };
    let kind = match sniff::sniff(&head[..head.len().min(SNIFF_LEN)]) {
        Sniffed::Accepted(kind) => kind,
        Sniffed::Unknown if head.is_empty() => {
            return Err(ApiError::new(ErrorCode::EmptyFile, "the file is empty"));
        }
        Sniffed::Refused(what) => {
            let (e, reason) = refuse(what.describe());
            return Err(st.vault.refuse_upload(permit, e, &reason).await.into());
        }
        Sniffed::Unknown => {
            let (e, reason) = refuse("content of an unrecognised type");
            return Err(st.vault.refuse_upload(permit, e, &reason).await.into());
        }
    };
    let mut inspector = Inspector::new(kind);
    if let Err(what) = inspector.feed(&head) {
        let (e, reason) = refuse(what.describe());
        return Err(st.vault.refuse_upload(permit, e, &reason).await.into());
    }
    let filename = name_for(permit.filename(), kind);

    // Producer: the rest of the part, counted and inspected; consumer: the
    // vault, in its own task so that a cancelled request cannot cut a store
    // operation in half. The body ends with `Piece::End`: a channel that
    // closes without it (the request was dropped) is an error, never the
    // end of a shorter document.
    let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(1);
    let vault = st.vault.clone();
    let mime = kind.mime();
    let store = tokio::spawn(async move { vault.store_upload(permit, filename, mime, receiver_stream(rx)).await });
    let last = feed(&tx, &mut field, head, ended, max, &mut inspector, &budget, started).await;
    let last = match last {
        Fed::Complete => match inspector.finish() {
            Err(what) => Piece::Abort(UploadAbort::Refused(what.describe().into())),
            Ok(()) => {
                drop(field);
                // The file is the last part, and there is one.
                match multipart.next_field().await {
                    Ok(None) => Piece::End,
                    Ok(Some(_)) => {
                        Piece::Abort(UploadAbort::Invalid("the `file` part must come last, and once".into()))
                    }
                    Err(e) => Piece::Abort(abort_of(&e)),
                }
            }
        },
        Fed::Stopped(piece) => piece,
        Fed::TooLarge(total) => {
            let _ = tx.send(Piece::Abort(UploadAbort::TooLarge { max })).await;
            drain(field, total).await;
            Piece::Abort(UploadAbort::TooLarge { max })
        }
    };
    let _ = tx.send(last).await;
    drop(tx);
    let stored = store.await;
    let doc = stored.map_err(ApiError::internal)?.map_err(|e| {
        if e.code == ErrorCode::UploadInterrupted {
            tracing::warn!(client = %client_id, "upload interrupted; nothing was kept");
        }
        ApiError(e)
    })?;
    metrics::counter!("kluis_upload_bytes_total").increment(doc.size.unwrap_or(0) as u64);
    metrics::histogram!("kluis_upload_duration_seconds").record(started.elapsed().as_secs_f64());
    Ok(doc)
}

/// How feeding the file part to the vault ended.
enum Fed {
    /// Every byte went through; the final checks come next.
    Complete,
    /// Refused or broken: this piece ends the body.
    Stopped(Piece),
    /// Over the limit after this many bytes.
    TooLarge(u64),
}

/// Hand the rest of the file part to the vault, counted and inspected.
#[allow(clippy::too_many_arguments)]
async fn feed(
    tx: &tokio::sync::mpsc::Sender<Piece>,
    field: &mut Field<'_>,
    head: Vec<u8>,
    ended: bool,
    max: u64,
    inspector: &mut Inspector,
    budget: &Budget,
    started: Instant,
) -> Fed {
    let mut total = head.len() as u64;
    let mut batch = Batch::default();
    batch.push(Bytes::from(head));
    loop {
        let chunk = if ended { Ok(None) } else { field.chunk().await };
        match chunk {
            Ok(Some(c)) => {
                total += c.len() as u64;
                budget.file.fetch_add(c.len() as u64, Ordering::Relaxed);
                if total > max {
                    return Fed::TooLarge(total);
                }
                let elapsed = started.elapsed();
                if elapsed > MIN_RATE_AFTER && total < MIN_RATE * elapsed.as_secs() {
                    return Fed::Stopped(Piece::Abort(UploadAbort::TimedOut));
                }
                if let Err(what) = inspector.feed(&c) {
                    return Fed::Stopped(Piece::Abort(UploadAbort::Refused(what.describe().into())));
                }
                if batch.push(c) && tx.send(Piece::Data(batch.take())).await.is_err() {
                    return Fed::Stopped(Piece::End); // the vault stopped reading; its error tells why
                }
            }
            Ok(None) => {
                if !batch.is_empty() && tx.send(Piece::Data(batch.take())).await.is_err() {
                    return Fed::Stopped(Piece::End);
                }
                return Fed::Complete;
            }
            Err(e) => return Fed::Stopped(Piece::Abort(abort_of(&e))),
        }
    }
}

/// Chunks of the file gathered for one hand-off to the store side: one
/// wake-up of the other task per [`BATCH`] bytes instead of one per chunk
/// (the chunks are moved, not copied).
#[derive(Default)]
struct Batch {
    chunks: Vec<Bytes>,
    bytes: usize,
}

/// Bytes per hand-off from the request side to the store side.
const BATCH: usize = 128 << 10;

impl Batch {
    /// Add a chunk; true when the batch is full.
    fn push(&mut self, c: Bytes) -> bool {
        self.bytes += c.len();
        self.chunks.push(c);
        self.bytes >= BATCH
    }

    fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    fn take(&mut self) -> Vec<Bytes> {
        self.bytes = 0;
        std::mem::take(&mut self.chunks)
    }
}

/// Read and discard the rest of a refused body, bounded in bytes and time,
/// so the client reads our answer instead of a connection reset.
async fn drain(mut field: Field<'_>, mut total: u64) {
    let deadline = Instant::now() + DRAIN_TIME;
    while total < DRAIN_BYTES {
        match tokio::time::timeout_at(deadline.into(), field.chunk()).await {
            Ok(Ok(Some(c))) => total += c.len() as u64,
            _ => break,
        }
    }
}

trait IntoApi {
    fn into_api(self) -> ApiError;
}

impl IntoApi for UploadAbort {
    fn into_api(self) -> ApiError {
        ApiError(vault::service::abort_error(&self))
    }
}

/// What the request side hands the store side of an upload.
enum Piece {
    Data(Vec<Bytes>),
    /// The body ends here with a refusal or a failure.
    Abort(UploadAbort),
    /// The part ended normally and every check passed.
    End,
}

/// A `'static` stream over the receiving end of the upload channel. It ends
/// only after `Piece::End`; a channel closed without it yields an error.
fn receiver_stream(
    rx: tokio::sync::mpsc::Receiver<Piece>,
) -> impl futures::Stream<Item = Result<Bytes, UploadAbort>> + Send + 'static {
    let state = (Some(rx), std::vec::IntoIter::<Bytes>::default());
    futures::stream::unfold(state, |(rx, mut ready)| async move {
        let mut rx = rx?;
        loop {
            if let Some(b) = ready.next() {
                return Some((Ok(b), (Some(rx), ready)));
            }
            match rx.recv().await {
                Some(Piece::Data(chunks)) => ready = chunks.into_iter(),
                Some(Piece::Abort(a)) => return Some((Err(a), (None, ready))),
                Some(Piece::End) => return None,
                None => {
                    return Some((Err(UploadAbort::Interrupted("the upload was cut off".into())), (None, ready)));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_keep_a_matching_extension() {
        assert_eq!(name_for("brief.txt", sniff::Kind::Text), "brief.txt");
        assert_eq!(name_for("rapport.PDF", sniff::Kind::Pdf), "rapport.PDF");
        assert_eq!(name_for("scan", sniff::Kind::Png), "scan.png");
        assert_eq!(name_for("rapport.pdf", sniff::Kind::Docx), "rapport.pdf.docx");
    }
}
