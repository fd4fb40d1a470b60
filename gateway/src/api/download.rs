//! `GET /api/v1/download/{token}`: the token is the capability (no
//! Authorization header). Redeemed once, atomically; access is decided again
//! now, with the holder's current role and the client's current state.
//!
//! The body streams decrypted segments as they verify. When a segment fails
//! to authenticate the stream ends with an error, which aborts the response:
//! with `Content-Length` set, the client sees a broken transfer, never a
//! short file that looks whole.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use vault::catalog::{DocumentState, Redemption};
use vault::policy::{self, Action, Actor};

use super::{ApiError, ApiResult, AppState, RequestId, event, facts};
use crate::auth;

fn gone(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::GONE, code, message)
}

fn revoked() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "access_revoked", "the token's holder no longer has access to this document")
}

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
    responses((status = 200, description = "the document, streamed"), (status = 401, description = "invalid_token"),
              (status = 403, description = "access_revoked"), (status = 410, description = "token_used / token_expired / gone")))]
pub async fn download(
    State(st): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    request_id: RequestId,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    if st.download_limiter.check_key(&peer.ip()).is_err() {
        metrics::counter!("kluis_download_rate_limited_total").increment(1);
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many download requests from this address; slow down",
        ));
    }
    let started = Instant::now();
    let now = chrono::Utc::now();
    let redemption = st.vault.catalog.redeem_download_token(&auth::token_hash(&token), now.timestamp_micros()).await?;
    let mut e = event(None, "document.download", "denied");
    e.request_id = request_id.0;
    let t = match redemption {
        Redemption::Redeemed(t) => t,
        Redemption::Unknown => {
            e.reason = Some("unknown or altered token".into());
            st.audit(e).await?;
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", "unknown or altered token"));
        }
        Redemption::Used(_) | Redemption::Expired(_) | Redemption::Voided(_) => {
            let (code, reason, t) = match redemption {
                Redemption::Used(t) => ("token_used", "token already used", t),
                Redemption::Expired(t) => ("token_expired", "token expired", t),
                Redemption::Voided(t) | Redemption::Redeemed(t) => {
                    ("access_revoked", "token voided: holder deactivated", t)
                }
                Redemption::Unknown => return Err(ApiError::internal("unreachable redemption state")),
            };
            e.actor_id = Some(t.user_id);
            e.actor_role = Some(t.role.as_str().into());
            e.document_id = Some(t.document_id);
            e.purpose = Some(t.purpose.as_str().into());
            e.reason = Some(reason.into());
            st.audit(e).await?;
            return Err(if code == "access_revoked" { revoked() } else { gone(code, reason) });
        }
    };
    e.actor_id = Some(t.user_id);
    e.actor_role = Some(t.role.as_str().into());
    e.document_id = Some(t.document_id);
    e.purpose = Some(t.purpose.as_str().into());

    // Decide again, now: the holder, their role, the client, the document.
    let user = st.vault.catalog.user(t.user_id).await?;
    let doc = st.vault.catalog.get_document(t.document_id).await?;
    let client = st.client(doc.client_id).await?;
    e.client_id = Some(client.id);
    let subs = st.substitutions_for(user.id, user.role, now).await?;
    let decision = policy::decide(
        Actor { id: user.id, role: user.role },
        Action::OpenDocument(t.purpose),
        Some(&facts(&client)),
        &subs,
        now,
    );
    let denial = if !user.active {
        Some(("holder deactivated", revoked()))
    } else if user.role != t.role {
        Some(("holder's role changed", revoked()))
    } else if !decision.is_allowed() {
        Some((decision.reason(), revoked()))
    } else if doc.state == DocumentState::Destroyed {
        Some(("document destroyed", gone("gone", "the document has been destroyed")))
    } else {
        None
    };
    if let Some((reason, err)) = denial {
        e.reason = Some(reason.into());
        st.audit(e).await?;
        return Err(err);
    }
    if let policy::Decision::Allow { on_behalf_of, .. } = decision {
        e.on_behalf_of = on_behalf_of;
    }
    e.reason = Some(decision.reason().into());
    // A slot for the whole transfer: it travels with the body stream.
    let slot = st.download_slots.clone().acquire_owned().await.map_err(ApiError::internal)?;
    let plain = st.vault.open_document(&doc).await?;
    let row = doc;
    e.outcome = "allowed".into();
    e.details = serde_json::json!({ "size": row.size });
    st.audit(e).await?;

    let doc_id = row.id;
    let body = plain.map(move |item| match item {
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
        Ok(bytes::Bytes::new())
    }));
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    let ct = HeaderValue::from_str(&row.content_type).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, ct);
    if let Some(size) = row.size {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(size as u64));
    }
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&row.filename)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    Ok(resp)
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
