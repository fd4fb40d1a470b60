//! Single-use download tokens: issued for a purpose after the policy said
//! yes, redeemed once (one conditional UPDATE), and decided again at
//! redemption with the holder's current role, substitutions and the
//! client's and document's current state.
//!
//! The object is opened first, outside any write transaction; redemption,
//! the new decision and the audit event are then one transaction. If the
//! object cannot be opened (the store is down), the token stays unused and
//! nothing is recorded as downloaded.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, Document, ErrorCode, RequestContext, ServiceError, ServiceResult, facts};
use crate::catalog::{DocumentState, NewDownloadToken, Redemption, micros_to_time};
use crate::domain::Purpose;
use crate::policy::{Action, Actor, DocumentFacts, Target};
use crate::{PlainStream, Vault, credentials};

/// `POST /api/v1/documents/{id}/download-tokens`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub purpose: Purpose,
}

/// A download token: shown this once; `url` is relative to the server.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedToken {
    pub token: String,
    pub url: String,
    pub expires_at: DateTime<Utc>,
}

/// A redeemed download: the document's metadata and its decrypted content.
pub struct Download {
    pub document: Document,
    /// Every item is authenticated; a segment that fails ends the stream
    /// with an error (the transfer must then be aborted, never completed).
    pub content: PlainStream,
}

fn token_error(code: ErrorCode, message: &'static str) -> ServiceError {
    ServiceError::new(code, message)
}

impl Vault {
    pub async fn issue_download_token(
        &self,
        caller: &Caller,
        document_id: Uuid,
        req: TokenRequest,
    ) -> ServiceResult<IssuedToken> {
        let mut op = self.op(caller, "download_token.issue").await?;
        let (doc, _, _) = op.document(document_id, Action::OpenDocument(req.purpose)).await?;
        let token = credentials::new_token();
        let now = op.now();
        let expires_at = now + self.settings.token_ttl.as_micros() as i64;
        op.tx()?
            .insert_download_token(&NewDownloadToken {
                token_hash: credentials::token_hash(&token),
                document_id: doc.id,
                user_id: caller.id(),
                role: caller.role(),
                purpose: req.purpose,
                created_at: now,
                expires_at,
            })
            .await?;
        // Issuing is not yet an access: `ok`, the download is `allowed`.
        op.event.outcome = "ok".into();
        op.commit().await?;
        Ok(IssuedToken { url: format!("/api/v1/download/{token}"), token, expires_at: micros_to_time(expires_at) })
    }

    /// Redeem a download token (the token is the capability: no session).
    ///
    /// The object is opened first, outside any write transaction (on S3 it
    /// is a network request, and no writer may wait on it); then one
    /// transaction redeems the token, decides again and appends the event.
    /// If the store cannot open the object, the token stays unused; if the
    /// new decision refuses, the opened stream is dropped unread (and the
    /// token is used up by the refused attempt, which is audited).
    pub async fn redeem_download(&self, token: &str, ctx: &RequestContext) -> ServiceResult<Download> {
        let hash = credentials::token_hash(token);
        let mut content = None;
        let peek = self.catalog.usable_token_document(&hash, self.now_micros()).await?;
        if let Some(doc) = peek.filter(|d| d.state == DocumentState::Active) {
            content = Some((doc.id, self.open_document(&doc).await?));
        }

        let mut op = self.anonymous_op(ctx, "document.download").await?;
        let now = op.now();
        let redemption = op.tx()?.redeem_download_token(&hash, now).await?;
        let (t, refusal) = match redemption {
            Redemption::Redeemed(t) => (t, None),
            Redemption::Unknown => {
                let e = token_error(ErrorCode::InvalidToken, "unknown or altered token");
                return Err(op.deny(e, "unknown or altered token").await);
            }
            Redemption::Used(t) => (t, Some((ErrorCode::TokenUsed, "token already used"))),
            Redemption::Expired(t) => (t, Some((ErrorCode::TokenExpired, "token expired"))),
            Redemption::Voided(t) => (t, Some((ErrorCode::AccessRevoked, "token voided: holder deactivated"))),
        };
        op.act_as(Actor { id: t.user_id, role: t.role });
        op.event.document_id = Some(t.document_id);
        op.event.purpose = Some(t.purpose.as_str().into());
        if let Some((code, reason)) = refusal {
            let err = if code == ErrorCode::AccessRevoked { revoked() } else { token_error(code, reason) };
            return Err(op.deny(err, reason).await);
        }
        // Decide again, now: the holder, their role, the client, the document.
        let holder = op.tx()?.user(t.user_id).await?;
        if !holder.active {
            return Err(op.deny(revoked(), "holder deactivated").await);
        }
        if holder.role != t.role {
            return Err(op.deny(revoked(), "holder's role changed").await);
        }
        // The client first, then the document (the order an erasure locks
        // them in), both until the commit: a withdrawn consent, a
        // restriction, an erasure or a purge commits before this decision
        // or after this redemption, never between. (A document's client
        // never changes, so the unlocked read only finds its id.)
        let client_id = op.tx()?.get_document(t.document_id).await?.client_id;
        let client = op
            .tx()?
            .client_locked(client_id, crate::catalog::RowLock::Share)
            .await?
            .ok_or_else(|| ServiceError::internal("a document without its client"))?;
        let doc = op.tx()?.get_document_locked(t.document_id).await?;
        op.event.client_id = Some(client.id);
        let doc_facts = DocumentFacts { destroyed: doc.state == DocumentState::Destroyed };
        let d = op.decision(Action::OpenDocument(t.purpose), Target::Document(&facts(&client), &doc_facts)).await?;
        if !d.is_allowed() {
            let err = match d {
                crate::policy::Decision::Gone(_) => ServiceError::denied(&d),
                _ => revoked(),
            };
            return Err(op.deny(err, d.reason()).await);
        }
        // The stream opened above is for this document (a token names one
        // document, and its row was active then and is active now).
        let Some((_, content)) = content.filter(|(id, _)| *id == doc.id) else {
            return Err(ServiceError::internal("the document changed while its download was being opened"));
        };
        if let crate::policy::Decision::Allow { on_behalf_of, .. } = d {
            op.event.on_behalf_of = on_behalf_of;
        }
        op.event.reason = Some(d.reason().into());
        op.event.outcome = "allowed".into();
        op.event.details = serde_json::json!({ "size": doc.size });
        let document = Document::try_from(&doc)?;
        op.commit().await?;
        Ok(Download { document, content })
    }
}

fn revoked() -> ServiceError {
    ServiceError::new(ErrorCode::AccessRevoked, "the token's holder no longer has access to this document")
}
