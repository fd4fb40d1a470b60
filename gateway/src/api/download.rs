//! `GET /api/v1/download/{token}`: the token is the capability (no
//! Authorization header). The vault redeems it once and decides again; here
//! the transport: the per-address limit, a bounded wait for a download
//! slot (held until the body is sent), and the response headers.
//!
//! The body streams decrypted segments as they verify. When a segment fails
//! to authenticate the stream ends with an error, which aborts the response:
//! with `Content-Length` set, the client sees a broken transfer, never a
//! short file that looks whole.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use vault::service::ErrorCode;

use super::{ApiError, ApiPath, ApiResult, AppState, Ctx, ErrorBody};
use crate::net::ClientAddr;

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded`.
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') { c } else { '_' })
        .collect();
    let mut encoded = String::new();
    for b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            encoded.push(*b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[utoipa::path(get, path = "/api/v1/download/{token}", tag = "documents",
    params(("token" = String, Path, description = "the token from download-tokens", min_length = 1, max_length = 100)),
    responses(
        (status = 200, description = "the document, streamed, with the content type its bytes were recognised as at upload \
            (`application/octet-stream` if none was recorded)",
            content(
                (Vec<u8> = "application/pdf"),
                (Vec<u8> = "image/png"),
                (Vec<u8> = "image/jpeg"),
                (Vec<u8> = "image/tiff"),
                (Vec<u8> = "text/plain; charset=utf-8"),
                (Vec<u8> = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
                (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
                (Vec<u8> = "application/vnd.oasis.opendocument.text"),
                (Vec<u8> = "application/octet-stream"),
            )),
        (status = 401, description = "`invalid_token`: unknown or altered", body = ErrorBody),
        (status = 403, description = "`access_revoked`: the holder lost access since it was issued", body = ErrorBody),
        (status = 410, description = "`token_used`, `token_expired`, `gone`", body = ErrorBody),
        (status = 429, description = "`too_many_requests` from this address", body = ErrorBody),
        (status = 503, description = "`busy`: every download slot is taken; retry", body = ErrorBody),
    ))]
pub async fn download(
    State(st): State<AppState>,
    ClientAddr(ip): ClientAddr,
    Ctx(ctx): Ctx,
    ApiPath(token): ApiPath<String>,
) -> ApiResult<Response> {
    if st.download_limiter.check_key(&crate::net::limit_key(ip)).is_err() {
        metrics::counter!("kluis_download_rate_limited_total").increment(1);
        return Err(ApiError::new(
            ErrorCode::TooManyRequests,
            "too many download requests from this address; slow down",
        ));
    }
    // A slot for the whole transfer, before the token is used: it travels
    // with the body stream.
    let slot = st.slot(&st.download_slots, "downloads").await?;
    let dl = st.vault.redeem_download(&token, &ctx).await?;
    Ok(stream(dl, slot))
}

/// The answer of a redeemed download: the content streamed as it
/// verifies, holding `slot` until the body is sent, with the headers of a
/// download (type, exact length, attachment with a safe name, no caching,
/// a sandboxing CSP). Shared by the API and the web pages.
pub fn stream(dl: vault::service::Download, slot: tokio::sync::OwnedSemaphorePermit) -> Response {
    let transfer = crate::alloc::Transfer::start();
    let started = Instant::now();
    let doc = dl.document;
    let doc_id = doc.id;
    let body = dl.content.map(move |item| match item {
        Ok(bytes) => {
            metrics::counter!("kluis_download_bytes_total").increment(bytes.len() as u64);
            Ok(bytes)
        }
        Err(err) => {
            tracing::error!(document = %doc_id, error = %err, "download aborted: content failed to decrypt");
            metrics::counter!("kluis_download_aborted_total").increment(1);
            Err(err)
        }
    });
    let body = body.chain(futures::stream::once(async move {
        metrics::histogram!("kluis_download_duration_seconds").record(started.elapsed().as_secs_f64());
        drop(slot);
        drop(transfer);
        Ok(bytes::Bytes::new())
    }));
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    let ct = doc.content_type.as_deref().and_then(|c| HeaderValue::from_str(c).ok());
    h.insert(header::CONTENT_TYPE, ct.unwrap_or(HeaderValue::from_static("application/octet-stream")));
    if let Some(size) = doc.size {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(size as u64));
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(doc.filename.as_deref().unwrap_or("document"))) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    resp
}

/// HEAD must not redeem a token (link previewers and scanners send it):
/// 405, like any method the route does not have.
pub async fn head() -> Response {
    let mut resp = ApiError::new(ErrorCode::MethodNotAllowed, "use GET to download").into_response();
    resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispositions_are_safe() {
        assert_eq!(
            content_disposition("rapport 1.pdf"),
            "attachment; filename=\"rapport 1.pdf\"; filename*=UTF-8''rapport%201.pdf"
        );
        let d = content_disposition("a\"b\r\nc;é.pdf");
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert!(d.starts_with("attachment; filename=\"a_b__c__.pdf\""), "{d}");
        assert!(d.ends_with("a%22b%0D%0Ac%3B%C3%A9.pdf"), "{d}");
    }
}
