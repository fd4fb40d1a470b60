//! Reading the audit log: filtered events (management), the chain's
//! verification (management, and the operator's `kluis audit verify`), and
//! a client's access log (management, office). Each read is itself audited.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, ErrorCode, ServiceError, ServiceResult, opt_time};
use crate::Vault;
use crate::audit::Event;
use crate::catalog::{AuditFilter, micros_to_time};
use crate::policy::{Action, Target};

/// How many events a client's access log shows at most.
pub(crate) const ACCESS_LOG_LIMIT: i64 = 10_000;

/// `GET /api/v1/audit`: every given filter must match; newest first.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub client_id: Option<Uuid>,
    pub document_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    /// An event name such as `document.download`.
    #[cfg_attr(feature = "openapi", param(pattern = "^[a-z_.]{1,64}$"))]
    pub action: Option<String>,
    /// Events at or after this instant, RFC 3339.
    pub from: Option<DateTime<Utc>>,
    /// Events before this instant, RFC 3339.
    pub until: Option<DateTime<Utc>>,
    /// Default 100, at most 1000.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<i64>,
}

/// One event of the chain.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub action: String,
    /// `allowed`, `denied`, `ok` or `failed`.
    pub outcome: String,
    pub reason: Option<String>,
    pub purpose: Option<String>,
    pub client_id: Option<Uuid>,
    pub document_id: Option<Uuid>,
    /// The absent colleague, when access went through a substitution.
    pub on_behalf_of: Option<Uuid>,
    pub request_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub details: serde_json::Value,
    pub hash: String,
}

impl From<&Event> for AuditEntry {
    fn from(e: &Event) -> Self {
        AuditEntry {
            seq: e.seq,
            at: micros_to_time(e.at),
            actor_id: e.body.actor_id,
            actor_role: e.body.actor_role.clone(),
            action: e.body.action.clone(),
            outcome: e.body.outcome.clone(),
            reason: e.body.reason.clone(),
            purpose: e.body.purpose.clone(),
            client_id: e.body.client_id,
            document_id: e.body.document_id,
            on_behalf_of: e.body.on_behalf_of,
            request_id: e.body.request_id.clone(),
            details: e.body.details.clone(),
            hash: e.hash.clone(),
        }
    }
}

/// The outcome of walking the chain.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChainReport {
    pub ok: bool,
    /// Events verified (when intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<i64>,
    /// The head hash, hex (when intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
    /// The first break (when not intact).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The newest anchor of the chain in the document store, checked
    /// against the log (null while none was written): events removed from
    /// the end of the log break it.
    pub anchor: Option<super::AnchorCheck>,
}

/// One line of a client's access log: who opened what, when, why.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessEntry {
    pub at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_name: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub outcome: String,
    pub purpose: Option<String>,
    pub document_id: Option<Uuid>,
    /// The absent colleague, when access went through a substitution.
    pub on_behalf_of: Option<Uuid>,
    pub reason: Option<String>,
}

/// Who was responsible for the client, when.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CaseloadEntry {
    pub coach_id: Option<Uuid>,
    pub coach_name: Option<String>,
    pub from: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

/// A client's access log, oldest first, and the caseload history.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessLog {
    pub client_id: Uuid,
    /// The newest `ACCESS_LOG_LIMIT` events, oldest first.
    pub entries: Vec<AccessEntry>,
    /// True when older events exist than `entries` shows (read them with
    /// `GET /api/v1/audit?client_id=`).
    pub truncated: bool,
    pub caseload: Vec<CaseloadEntry>,
}

impl Vault {
    pub async fn audit_events(&self, caller: &Caller, query: AuditQuery) -> ServiceResult<Vec<AuditEntry>> {
        let mut op = self.op(caller, "audit.read").await?;
        op.authorize(Action::ReadAuditLog, Target::Nothing).await?;
        let limit = query.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ServiceError::new(ErrorCode::InvalidQuery, "limit is between 1 and 1000"));
        }
        let action_ok = |a: &str| {
            (1..=64).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
        };
        if query.action.as_deref().is_some_and(|a| !action_ok(a)) {
            return Err(ServiceError::new(
                ErrorCode::InvalidQuery,
                "action is an event name such as document.download",
            ));
        }
        let filter = AuditFilter {
            client_id: query.client_id,
            document_id: query.document_id,
            actor_id: query.actor_id,
            action: query.action.clone(),
            from: query.from.map(|t| t.timestamp_micros()),
            until: query.until.map(|t| t.timestamp_micros()),
            limit,
        };
        let events = op.tx()?.audit_events_filtered(&filter).await?;
        op.event.details = serde_json::json!({
            "client_id": query.client_id, "document_id": query.document_id, "actor_id": query.actor_id,
            "action": query.action, "from": query.from, "until": query.until, "count": events.len(),
        });
        op.commit().await?;
        Ok(events.iter().map(AuditEntry::from).collect())
    }

    /// Verify the chain for a signed-in manager (the request is audited).
    pub async fn verify_audit(&self, caller: &Caller) -> ServiceResult<ChainReport> {
        let mut op = self.op(caller, "audit.verify").await?;
        op.authorize(Action::ReadAuditLog, Target::Nothing).await?;
        op.commit().await?;
        self.verify_audit_chain().await
    }

    /// Walk the whole chain against one snapshot (the operator's `kluis
    /// audit verify`, and [`Vault::verify_audit`]).
    pub async fn verify_audit_chain(&self) -> ServiceResult<ChainReport> {
        // The anchor first: one written after the snapshot began could name
        // an event the snapshot does not hold yet.
        let (latest, unreadable) = self.read_anchors().await?;
        let mut tx = self.snapshot().await?;
        let result = tx.verify_audit_chain().await?;
        let anchor = self.check_anchor(latest, &mut tx).await?;
        tx.commit().await?;
        let mut report = match result {
            Ok((events, head)) => {
                ChainReport { ok: true, events: Some(events), head: Some(head), error: None, anchor: None }
            }
            Err(b) => ChainReport { ok: false, events: None, head: None, error: Some(b.to_string()), anchor: None },
        };
        if let Some(a) = &anchor
            && !a.ok
            && report.ok
        {
            report = ChainReport {
                ok: false,
                events: None,
                head: None,
                error: Some(format!(
                    "event {} was anchored at {} with hash {}, but the log {}: events were removed from its end",
                    a.anchor.seq,
                    a.anchor.at.to_rfc3339(),
                    a.anchor.hash,
                    match report.events {
                        Some(n) if n < a.anchor.seq => format!("ends at event {n}"),
                        _ => "holds another event under that number".into(),
                    }
                )),
                anchor: None,
            };
        }
        if !unreadable.is_empty() && report.ok {
            report = ChainReport {
                ok: false,
                events: None,
                head: None,
                error: Some(format!(
                    "the document store holds, under the audit anchors, objects that are not anchors: {}",
                    unreadable.join(", ")
                )),
                anchor: None,
            };
        }
        report.anchor = anchor;
        Ok(report)
    }

    pub async fn access_log(&self, caller: &Caller, client_id: Uuid) -> ServiceResult<AccessLog> {
        self.recent_access_log(caller, client_id, ACCESS_LOG_LIMIT).await
    }

    /// The newest `limit` entries of a client's access log (at most
    /// `ACCESS_LOG_LIMIT`), read and audited like [`Vault::access_log`]:
    /// what a page shows, without reading the whole log.
    pub async fn recent_access_log(&self, caller: &Caller, client_id: Uuid, limit: i64) -> ServiceResult<AccessLog> {
        let mut op = self.op(caller, "client.access_log").await?;
        let (c, _) = op.client(client_id, Action::ReadAccessLog).await?;
        let log = access_log_in(op.tx()?, c.id, limit.clamp(1, ACCESS_LOG_LIMIT)).await?;
        op.commit().await?;
        Ok(log)
    }
}

/// The newest `limit` entries of a client's access log as read in `tx` (the
/// API's and an export's take `ACCESS_LOG_LIMIT`).
pub(crate) async fn access_log_in(tx: &mut crate::catalog::Tx, c_id: Uuid, limit: i64) -> ServiceResult<AccessLog> {
    let filter = AuditFilter { client_id: Some(c_id), limit: limit + 1, ..Default::default() };
    let mut events = tx.audit_events_filtered(&filter).await?;
    let truncated = events.len() as i64 > limit;
    events.truncate(limit as usize);
    events.reverse();
    let names: std::collections::HashMap<Uuid, String> =
        tx.list_users().await?.into_iter().map(|u| (u.id, u.display_name)).collect();
    let entries = events
        .iter()
        .map(|e| AccessEntry {
            at: micros_to_time(e.at),
            actor_id: e.body.actor_id,
            actor_name: e.body.actor_id.and_then(|a| names.get(&a).cloned()),
            actor_role: e.body.actor_role.clone(),
            action: e.body.action.clone(),
            outcome: e.body.outcome.clone(),
            purpose: e.body.purpose.clone(),
            document_id: e.body.document_id,
            on_behalf_of: e.body.on_behalf_of,
            reason: e.body.reason.clone(),
        })
        .collect();
    let caseload = tx
        .caseload_history(c_id)
        .await?
        .iter()
        .map(|p| CaseloadEntry {
            coach_id: p.coach_id,
            coach_name: p.coach_id.and_then(|a| names.get(&a).cloned()),
            from: micros_to_time(p.from_at),
            until: opt_time(p.until_at),
        })
        .collect();
    Ok(AccessLog { client_id: c_id, entries, truncated, caseload })
}
