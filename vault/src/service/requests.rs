//! The register of data-subject requests (GDPR arts. 12–21; SPEC §6,
//! issue 10): management and office register what a client asked, when
//! and how it arrived, how identity was checked; the register answers with
//! the two clocks the request runs on and whether it is overdue, keeps an
//! extension with its reason, who handles it and how it was answered.
//!
//! Clocks: `due_at` is received + 14 days (the agency's promise),
//! `deadline_at` received + one calendar month (art. 12(3); the 31st plus a
//! month is the last day of the next month), both counted on the agency's
//! calendar (Europe/Amsterdam) and stored in UTC. An extension (art. 12(3):
//! by at most two further months, told to the client within the first
//! month) is allowed while the request is open and its first month has not
//! passed; it moves both clocks to its date. `overdue`: open past the
//! agency's date; `past_deadline`: open past the legal one.
//!
//! Answers that change something do it in the same transaction: a granted
//! `restriction` or `objection` restricts the client (art. 18; the access
//! model then allows only management, for `availability`); a
//! `withdraw_consent` request withdraws the consent it names the moment it
//! is registered (art. 7(3)), and stays open until the client is answered.

use chrono::{DateTime, Months, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, ErrorCode, ServiceError, ServiceResult, opt_time};
use crate::Vault;
use crate::catalog::{RequestCounts, RequestFilter, RequestRow, micros_to_time};
use crate::domain::{self, ConsentScope, IdentityCheck, RequestChannel, RequestDecision, RequestKind, Role};
use crate::policy::{Action, Target};

/// The agency's promise: two weeks.
pub const PROMISE_DAYS: i64 = 14;
/// How far back a request's receipt may be entered (a letter found late).
const MAX_BACKDATE_DAYS: i64 = 366;

/// `POST /api/v1/requests`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    pub client_id: Uuid,
    pub kind: RequestKind,
    /// When the request reached the agency; default now. Not in the future,
    /// at most a year back.
    pub received_at: Option<DateTime<Utc>>,
    pub channel: RequestChannel,
    /// How the requester's identity was checked (the method, never the
    /// document).
    pub identity_check: IdentityCheck,
    /// What the client asked, in a few words.
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<2000>))]
    pub description: Option<String>,
    /// An active management or office user; default the caller.
    pub handler_id: Option<Uuid>,
    /// For `withdraw_consent`: which consent (withdrawn at once).
    pub consent_scope: Option<ConsentScope>,
}

/// `PATCH /api/v1/requests/{id}`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RequestPatch {
    /// Hand the request to another active management or office user.
    pub handler_id: Option<Uuid>,
    pub extension: Option<ExtensionRequest>,
}

/// Extend a request (art. 12(3)).
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExtensionRequest {
    /// After the current deadline, at most three months after receipt.
    pub until: DateTime<Utc>,
    /// Why (complexity, number of requests); told to the client.
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<1000>))]
    pub reason: String,
}

/// `POST /api/v1/requests/{id}/answer`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    pub decision: RequestDecision,
    /// What was done or why not, as told to the client.
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::required::<2000>))]
    pub outcome: String,
}

/// `GET /api/v1/requests`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct RequestQuery {
    pub client_id: Option<Uuid>,
    #[cfg_attr(feature = "openapi", param(inline))]
    pub kind: Option<RequestKind>,
    /// `open` (default) or `all`.
    #[cfg_attr(feature = "openapi", param(pattern = "^(open|all)$"))]
    pub status: Option<String>,
    /// Default 100, at most 1000.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 1000))]
    pub limit: Option<i64>,
}

/// An extension granted.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Extension {
    pub until: DateTime<Utc>,
    pub reason: String,
}

/// A request as the register shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Request {
    pub id: Uuid,
    pub client_id: Uuid,
    pub kind: RequestKind,
    pub received_at: DateTime<Utc>,
    pub channel: RequestChannel,
    pub identity_check: IdentityCheck,
    pub description: Option<String>,
    pub handler_id: Option<Uuid>,
    /// Received + 14 days: the agency's promise.
    pub due_at: DateTime<Utc>,
    /// Received + one month: the law's deadline.
    pub deadline_at: DateTime<Utc>,
    pub extension: Option<Extension>,
    /// `open` or `answered`.
    pub status: &'static str,
    /// Open past `due_at` (or the extension's date).
    pub overdue: bool,
    /// Open past `deadline_at` (or the extension's date).
    pub past_deadline: bool,
    pub decision: Option<RequestDecision>,
    pub outcome: Option<String>,
    pub answered_at: Option<DateTime<Utc>>,
    pub answered_by: Option<Uuid>,
    /// Answered by `due_at` (or the extension's date).
    pub answered_on_time: Option<bool>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
}

impl Request {
    pub(crate) fn from_row(r: &RequestRow, now: i64) -> Request {
        let promise = r.extended_until.unwrap_or(r.due_at);
        let legal = r.extended_until.unwrap_or(r.deadline_at);
        let open = r.answered_at.is_none();
        Request {
            id: r.id,
            client_id: r.client_id,
            kind: r.kind,
            received_at: micros_to_time(r.received_at),
            channel: r.channel,
            identity_check: r.identity_check,
            description: r.description.clone(),
            handler_id: r.handler_id,
            due_at: micros_to_time(r.due_at),
            deadline_at: micros_to_time(r.deadline_at),
            extension: r.extended_until.map(|u| Extension {
                until: micros_to_time(u),
                reason: r.extension_reason.clone().unwrap_or_default(),
            }),
            status: if open { "open" } else { "answered" },
            overdue: open && now > promise,
            past_deadline: open && now > legal,
            decision: r.decision,
            outcome: r.outcome.clone(),
            answered_at: opt_time(r.answered_at),
            answered_by: r.answered_by,
            answered_on_time: r.answered_at.map(|a| a <= promise),
            created_by: r.created_by,
            created_at: micros_to_time(r.created_at),
        }
    }
}

/// The agency's calendar: periods in days and months are counted on the
/// Dutch clock, so "a month" ends on the same date as the receipt there.
const AGENCY_TZ: chrono_tz::Tz = chrono_tz::Europe::Amsterdam;

/// `t` plus `months` calendar months on the agency's clock (the 31st plus a
/// month is the last day of the next month); a local time that a change to
/// or from summer time skips or repeats falls back to the same addition in
/// UTC, at most an hour apart.
fn add_months(t: DateTime<Utc>, months: u32) -> DateTime<Utc> {
    t.with_timezone(&AGENCY_TZ)
        .checked_add_months(Months::new(months))
        .map(|l| l.with_timezone(&Utc))
        .or_else(|| t.checked_add_months(Months::new(months)))
        .unwrap_or(t)
}

/// The two clocks of a request received at `received`: 14 days (the
/// agency's promise) and one calendar month (the law), on the agency's
/// calendar.
pub fn request_clocks(received: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let due = received
        .with_timezone(&AGENCY_TZ)
        .checked_add_days(chrono::Days::new(PROMISE_DAYS as u64))
        .map(|l| l.with_timezone(&Utc))
        .unwrap_or(received + chrono::Duration::days(PROMISE_DAYS));
    (due, add_months(received, 1))
}

/// The latest an extension may reach: two further months after the legal
/// deadline (art. 12(3)).
pub fn latest_extension(received: DateTime<Utc>) -> DateTime<Utc> {
    add_months(received, 3).min(add_months(request_clocks(received).1, 2))
}

impl Vault {
    /// A handler must be an active management or office user.
    async fn check_handler(&self, op: &mut super::Op<'_>, id: Uuid) -> ServiceResult<()> {
        let u = op.tx()?.user_opt(id).await?;
        if !u.is_some_and(|u| u.active && matches!(u.role, Role::Management | Role::Office)) {
            return Err(ServiceError::new(
                ErrorCode::InvalidField,
                "handler_id must be an active management or office user",
            ));
        }
        Ok(())
    }

    /// Load a request and decide `PrivacyRequests` on its client; an
    /// unknown id answers like one outside the caller's reach.
    async fn request_in(&self, op: &mut super::Op<'_>, id: Uuid) -> ServiceResult<RequestRow> {
        let row = op.tx()?.request_opt(id).await?;
        match row {
            Some(r) => {
                op.client(r.client_id, Action::PrivacyRequests).await?;
                Ok(r)
            }
            None => {
                op.authorize(Action::PrivacyRequests, Target::Missing).await?;
                Err(ServiceError::not_found())
            }
        }
    }

    pub async fn create_request(&self, caller: &Caller, new: NewRequest) -> ServiceResult<Request> {
        let mut op = self.op(caller, "request.create").await?;
        let (client, _) = op.client(new.client_id, Action::PrivacyRequests).await?;
        let now = op.now_time();
        let received = new.received_at.unwrap_or(now);
        if received > now + chrono::Duration::minutes(5) {
            return Err(ServiceError::new(ErrorCode::InvalidField, "received_at cannot lie in the future"));
        }
        if received < now - chrono::Duration::days(MAX_BACKDATE_DAYS) {
            return Err(ServiceError::new(ErrorCode::InvalidField, "received_at lies more than a year back"));
        }
        let description = domain::optional_text("description", new.description.as_deref(), 2000)?;
        let handler = new.handler_id.unwrap_or(caller.id());
        self.check_handler(&mut op, handler).await?;
        match (new.kind, new.consent_scope) {
            (RequestKind::WithdrawConsent, None) => {
                return Err(ServiceError::new(ErrorCode::InvalidField, "consent_scope names the consent withdrawn"));
            }
            (RequestKind::WithdrawConsent, Some(_)) => {}
            (_, Some(_)) => {
                return Err(ServiceError::new(
                    ErrorCode::InvalidField,
                    "consent_scope belongs to withdraw_consent requests only",
                ));
            }
            (_, None) => {}
        }
        let (due, deadline) = request_clocks(received);
        let row = RequestRow {
            id: Uuid::new_v4(),
            client_id: client.id,
            kind: new.kind,
            received_at: received.timestamp_micros(),
            channel: new.channel,
            identity_check: new.identity_check,
            description,
            handler_id: Some(handler),
            due_at: due.timestamp_micros(),
            deadline_at: deadline.timestamp_micros(),
            extended_until: None,
            extension_reason: None,
            decision: None,
            outcome: None,
            answered_at: None,
            answered_by: None,
            created_by: caller.id(),
            created_at: op.now(),
            updated_at: op.now(),
        };
        op.tx()?.insert_request(&row).await?;
        let mut details = serde_json::json!({
            "request_id": row.id, "kind": row.kind, "received_at": received, "channel": row.channel,
            "identity_check": row.identity_check, "handler_id": handler, "due_at": due, "deadline_at": deadline,
        });
        if let Some(scope) = new.consent_scope {
            let withdrawn = self
                .withdraw_consent_in(
                    &mut op,
                    caller,
                    client.id,
                    scope,
                    "withdrawn by the client's request",
                    Some(row.id),
                )
                .await?;
            details["consent_withdrawn"] = serde_json::json!({ "scope": scope, "consents": withdrawn });
        }
        op.event.details = details;
        let view = Request::from_row(&row, op.now());
        op.commit().await?;
        Ok(view)
    }

    pub async fn list_requests(&self, caller: &Caller, query: RequestQuery) -> ServiceResult<Vec<Request>> {
        let mut op = self.op(caller, "request.list").await?;
        match query.client_id {
            Some(id) => {
                op.client(id, Action::PrivacyRequests).await?;
            }
            None => {
                op.authorize(Action::PrivacyRequests, Target::Nothing).await?;
            }
        }
        let limit = query.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ServiceError::new(ErrorCode::InvalidQuery, "limit is between 1 and 1000"));
        }
        let open_only = match query.status.as_deref() {
            None | Some("open") => true,
            Some("all") => false,
            Some(_) => return Err(ServiceError::new(ErrorCode::InvalidQuery, "status is open or all")),
        };
        let filter = RequestFilter { client_id: query.client_id, kind: query.kind, open_only, limit };
        let rows = op.tx()?.list_requests(&filter).await?;
        let now = op.now();
        op.event.outcome = "allowed".into();
        op.event.details = serde_json::json!({ "open_only": open_only, "kind": query.kind, "count": rows.len() });
        op.commit().await?;
        Ok(rows.iter().map(|r| Request::from_row(r, now)).collect())
    }

    pub async fn get_request(&self, caller: &Caller, id: Uuid) -> ServiceResult<Request> {
        let mut op = self.op(caller, "request.read").await?;
        let row = self.request_in(&mut op, id).await?;
        op.event.outcome = "allowed".into();
        op.event.details = serde_json::json!({ "request_id": id });
        let view = Request::from_row(&row, op.now());
        op.commit().await?;
        Ok(view)
    }

    /// Hand a request over, or extend it.
    pub async fn update_request(&self, caller: &Caller, id: Uuid, patch: RequestPatch) -> ServiceResult<Request> {
        let mut op = self.op(caller, "request.update").await?;
        let row = self.request_in(&mut op, id).await?;
        if row.answered_at.is_some() {
            return Err(ServiceError::new(ErrorCode::AlreadyAnswered, "the request has been answered"));
        }
        let mut details = serde_json::json!({ "request_id": id });
        if let Some(h) = patch.handler_id {
            self.check_handler(&mut op, h).await?;
            op.tx()?.set_request_handler(id, Some(h)).await?;
            details["handler"] = serde_json::json!({ "from": row.handler_id, "to": h });
        }
        if let Some(ext) = patch.extension {
            let reason = domain::required_text("reason", &ext.reason, 1000)?;
            // Art. 12(3): an extension is told to the client within the
            // first month, so only before the original deadline (a second
            // extension too).
            if op.now() > row.deadline_at {
                return Err(ServiceError::new(
                    ErrorCode::DeadlinePassed,
                    "the month has passed; an extension must be told to the client within it",
                ));
            }
            let current = row.extended_until.unwrap_or(row.deadline_at);
            let max = latest_extension(micros_to_time(row.received_at));
            let until = ext.until;
            if until.timestamp_micros() <= current || until > max {
                return Err(ServiceError::new(
                    ErrorCode::InvalidField,
                    "extension.until lies after the current deadline and at most three months after receipt",
                ));
            }
            if !op.tx()?.extend_request(id, until.timestamp_micros(), &reason).await? {
                return Err(ServiceError::new(ErrorCode::AlreadyAnswered, "the request has been answered"));
            }
            op.event.reason = Some(reason);
            details["extended_until"] = serde_json::json!(until);
        }
        op.event.details = details;
        let row = op.tx()?.request_opt(id).await?.ok_or_else(ServiceError::not_found)?;
        let view = Request::from_row(&row, op.now());
        op.commit().await?;
        Ok(view)
    }

    /// Answer a request. A granted restriction or objection restricts the
    /// client in the same transaction.
    pub async fn answer_request(&self, caller: &Caller, id: Uuid, answer: AnswerRequest) -> ServiceResult<Request> {
        let mut op = self.op(caller, "request.answer").await?;
        let row = self.request_in(&mut op, id).await?;
        let outcome = domain::required_text("outcome", &answer.outcome, 2000)?;
        if !op.tx()?.answer_request(id, answer.decision, &outcome, caller.id()).await? {
            return Err(ServiceError::new(ErrorCode::AlreadyAnswered, "the request has been answered"));
        }
        let mut details = serde_json::json!({
            "request_id": id, "kind": row.kind, "decision": answer.decision,
            "on_time": op.now() <= row.extended_until.unwrap_or(row.due_at),
        });
        let restricts = matches!(row.kind, RequestKind::Restriction | RequestKind::Objection)
            && matches!(answer.decision, RequestDecision::Granted | RequestDecision::PartiallyGranted);
        if restricts {
            let client = op.tx()?.client(row.client_id).await?;
            if !client.restricted {
                op.tx()?.set_client_restricted(row.client_id, true).await?;
            }
            details["restricted"] = serde_json::json!({ "from": client.restricted, "to": true });
        }
        op.event.details = details;
        let row = op.tx()?.request_opt(id).await?.ok_or_else(ServiceError::not_found)?;
        let view = Request::from_row(&row, op.now());
        op.commit().await?;
        Ok(view)
    }

    /// Open requests, overdue and past the legal deadline (the metrics).
    pub async fn request_counts(&self) -> ServiceResult<RequestCounts> {
        let mut tx = self.snapshot().await?;
        let counts = tx.request_counts(self.now_micros()).await?;
        tx.commit().await?;
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn clocks_are_two_weeks_and_one_calendar_month_on_the_dutch_calendar() {
        // Times in UTC; winter is UTC+1 in Amsterdam, summer UTC+2.
        let t = |y, m, d, h, min| Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap();
        let table = [
            (t(2026, 12, 4, 9, 30), t(2026, 12, 18, 9, 30), t(2027, 1, 4, 9, 30)),
            (t(2027, 1, 31, 9, 30), t(2027, 2, 14, 9, 30), t(2027, 2, 28, 9, 30)),
            (t(2028, 1, 31, 9, 30), t(2028, 2, 14, 9, 30), t(2028, 2, 29, 9, 30)),
            // 31 January 00:30 in Amsterdam is still the 30th in UTC: the
            // month ends on 28 February there, not on 1 March.
            (t(2027, 1, 30, 23, 30), t(2027, 2, 13, 23, 30), t(2027, 2, 27, 23, 30)),
            // Across the start of summer time: the same hour on the Dutch clock.
            (t(2027, 3, 20, 9, 0), t(2027, 4, 3, 8, 0), t(2027, 4, 20, 8, 0)),
        ];
        for (received, due, deadline) in table {
            assert_eq!(request_clocks(received), (due, deadline), "received {received}");
        }
    }

    #[test]
    fn an_extension_reaches_two_months_past_the_deadline_at_most() {
        let t = |y, m, d, h| Utc.with_ymd_and_hms(y, m, d, h, 30, 0).unwrap();
        // 31 January: deadline 28 February, plus two months: 28 April (not
        // 30 April), at 10:30 on the Dutch clock, summer time by then.
        assert_eq!(latest_extension(t(2027, 1, 31, 9)), t(2027, 4, 28, 8));
        assert_eq!(latest_extension(t(2027, 3, 4, 9)), t(2027, 6, 4, 8));
    }
}
