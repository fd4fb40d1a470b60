//! Log review (issue 11): an anomaly report over the audit log of a period
//! (management), and the record that a period was reviewed (who, when, what
//! period, what was found, remarks). The Dutch authority fined a hospital
//! for never looking at its access logs; this makes looking cheap and
//! proves that it happened.
//!
//! The report's kinds, each with the events it found (their `seq`, and a
//! query of `GET /api/v1/audit` that lists them):
//! - `substitution_access`: documents opened on behalf of an absent colleague;
//! - `outside_office_hours`: content opened or a BSN revealed outside
//!   Monday–Friday 07:00–19:00 on the Dutch clock;
//! - `download_burst`: one user opening 20 or more documents within 10
//!   minutes;
//! - `bsn_reveal`: every BSN revealed;
//! - `denied_streak`: five or more refusals in a row for one user;
//! - `export`: every dossier exported.
//!
//! The period is read page by page (1,000 events at a time, by `seq` within
//! the window), so a long period costs time, not memory beyond its findings.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, ErrorCode, ServiceError, ServiceResult, opt_time};
use crate::Vault;
use crate::audit::Event;
use crate::catalog::{ReviewRow, micros_to_time};
use crate::domain;
use crate::policy::{Action, Target};

/// Office hours on the Dutch clock: from 07:00 until 19:00, Monday to Friday.
pub const OFFICE_HOURS: (u32, u32) = (7, 19);
/// A burst: this many documents opened by one user ...
pub const BURST_DOWNLOADS: usize = 20;
/// ... within this many minutes.
pub const BURST_MINUTES: i64 = 10;
/// Refusals in a row that make a streak.
pub const DENIED_STREAK: usize = 5;
/// The longest period one report reads.
const MAX_PERIOD_DAYS: i64 = 366;

const OPENS: &[&str] = &["document.download", "document.export"];

/// `GET /api/v1/audit/review`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    /// From (inclusive), RFC 3339.
    pub from: DateTime<Utc>,
    /// Until (exclusive), RFC 3339; at most 366 days after `from`.
    pub until: DateTime<Utc>,
}

/// One kind of anomaly found.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Finding {
    /// `substitution_access`, `outside_office_hours`, `download_burst`,
    /// `bsn_reveal`, `denied_streak`, `export`.
    pub kind: &'static str,
    /// The user concerned (null: before login, an address).
    pub actor_id: Option<Uuid>,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// The events (their `seq`), oldest first.
    pub events: Vec<i64>,
    /// `GET /api/v1/audit?...` listing events of this kind by this user.
    pub link: String,
}

/// The anomaly report of a period.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewReport {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Events read.
    pub events: i64,
    /// Findings by kind (every kind listed, zero included).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub counts: serde_json::Value,
    pub findings: Vec<Finding>,
}

/// `POST /api/v1/audit/reviews`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewReview {
    pub from: DateTime<Utc>,
    /// Not in the future.
    pub until: DateTime<Utc>,
    /// What the reviewer concluded.
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<4000>))]
    pub remarks: Option<String>,
}

/// A recorded review.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Review {
    pub id: Uuid,
    pub reviewer: Uuid,
    pub reviewed_at: DateTime<Utc>,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Findings by kind, as the report of the period showed them then.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub findings: serde_json::Value,
    pub remarks: Option<String>,
}

/// How far the reviews have come (readiness details and the metrics).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewStatus {
    /// The end of the latest reviewed period (null: never reviewed).
    pub reviewed_until: Option<DateTime<Utc>>,
    /// Days from there (or from the first event) until now.
    pub unreviewed_days: i64,
    /// `unreviewed_days` exceeds the configured allowance.
    pub overdue: bool,
}

fn review_view(r: &ReviewRow) -> Review {
    Review {
        id: r.id,
        reviewer: r.reviewer,
        reviewed_at: micros_to_time(r.reviewed_at),
        from: micros_to_time(r.period_from),
        until: micros_to_time(r.period_until),
        findings: r.findings.clone(),
        remarks: r.remarks.clone(),
    }
}

/// Is `at` (microseconds) outside office hours on the Dutch clock?
pub fn outside_office_hours(at: i64) -> bool {
    let t = micros_to_time(at).with_timezone(&chrono_tz::Europe::Amsterdam);
    let weekend = t.weekday().num_days_from_monday() >= 5;
    weekend || t.hour() < OFFICE_HOURS.0 || t.hour() >= OFFICE_HOURS.1
}

/// Collects findings as the period's events go by, in order.
#[derive(Default)]
struct Scanner {
    findings: Vec<Finding>,
    /// Per user: the times and seqs of their recent opens (the burst window).
    opens: HashMap<Option<Uuid>, Vec<(i64, i64)>>,
    /// Per user: the open burst finding's index.
    burst: HashMap<Option<Uuid>, usize>,
    /// Per user: refusals in a row.
    denied: HashMap<Uuid, Vec<(i64, i64)>>,
    /// Per user: the open streak finding's index.
    streak: HashMap<Uuid, usize>,
}

fn link(actor: Option<Uuid>, action: &str) -> String {
    match actor {
        Some(a) => format!("/api/v1/audit?actor_id={a}&action={action}&limit=1000"),
        None => format!("/api/v1/audit?action={action}&limit=1000"),
    }
}

impl Scanner {
    fn single(&mut self, kind: &'static str, e: &Event) {
        self.findings.push(Finding {
            kind,
            actor_id: e.body.actor_id,
            first_at: micros_to_time(e.at),
            last_at: micros_to_time(e.at),
            events: vec![e.seq],
            link: link(e.body.actor_id, &e.body.action),
        });
    }

    fn see(&mut self, e: &Event) {
        let ok = e.body.outcome == "allowed" || e.body.outcome == "ok";
        let action = e.body.action.as_str();
        let actor = e.body.actor_id;
        if ok && OPENS.contains(&action) && e.body.on_behalf_of.is_some() {
            self.single("substitution_access", e);
        }
        if ok
            && (OPENS.contains(&action) || action == "client.bsn.reveal" || action == "client.export")
            && outside_office_hours(e.at)
        {
            self.single("outside_office_hours", e);
        }
        if ok && action == "client.bsn.reveal" {
            self.single("bsn_reveal", e);
        }
        if ok && action == "client.export" {
            self.single("export", e);
        }
        if ok && action == "document.download" {
            let window = BURST_MINUTES * 60_000_000;
            let recent = self.opens.entry(actor).or_default();
            recent.push((e.at, e.seq));
            recent.retain(|(at, _)| *at > e.at - window);
            if recent.len() >= BURST_DOWNLOADS {
                match self.burst.get(&actor).copied() {
                    // Still the same burst: it grows.
                    Some(i) if self.findings[i].last_at.timestamp_micros() > e.at - window => {
                        self.findings[i].events.push(e.seq);
                        self.findings[i].last_at = micros_to_time(e.at);
                    }
                    _ => {
                        let seqs: Vec<i64> = recent.iter().map(|(_, s)| *s).collect();
                        self.findings.push(Finding {
                            kind: "download_burst",
                            actor_id: actor,
                            first_at: micros_to_time(recent[0].0),
                            last_at: micros_to_time(e.at),
                            events: seqs,
                            link: link(actor, "document.download"),
                        });
                        self.burst.insert(actor, self.findings.len() - 1);
                    }
                }
            }
        }
        // Refusals in a row, per user (refusals before login have no user:
        // the login lock-out and the per-address limits deal with those).
        let Some(user) = actor else { return };
        if e.body.outcome == "denied" {
            let run = self.denied.entry(user).or_default();
            run.push((e.at, e.seq));
            if run.len() >= DENIED_STREAK {
                match self.streak.get(&user).copied() {
                    Some(i) => {
                        self.findings[i].events.push(e.seq);
                        self.findings[i].last_at = micros_to_time(e.at);
                    }
                    None => {
                        self.findings.push(Finding {
                            kind: "denied_streak",
                            actor_id: actor,
                            first_at: micros_to_time(run[0].0),
                            last_at: micros_to_time(e.at),
                            events: run.iter().map(|(_, s)| *s).collect(),
                            link: format!("/api/v1/audit?actor_id={user}&limit=1000"),
                        });
                        self.streak.insert(user, self.findings.len() - 1);
                    }
                }
            }
        } else {
            self.denied.remove(&user);
            self.streak.remove(&user);
        }
    }
}

const KINDS: &[&str] =
    &["substitution_access", "outside_office_hours", "download_burst", "bsn_reveal", "denied_streak", "export"];

fn counts(findings: &[Finding]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for k in KINDS {
        m.insert((*k).into(), findings.iter().filter(|f| f.kind == *k).count().into());
    }
    serde_json::Value::Object(m)
}

impl Vault {
    async fn scan_period(&self, from: i64, until: i64) -> ServiceResult<(i64, Vec<Finding>)> {
        let mut tx = self.snapshot().await?;
        let mut scanner = Scanner::default();
        let mut after = 0;
        let mut read = 0i64;
        loop {
            let page = tx.audit_events_in_window(from, until, after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            read += page.len() as i64;
            for e in &page {
                scanner.see(e);
            }
        }
        tx.commit().await?;
        scanner.findings.sort_by_key(|f| (f.first_at, f.events.first().copied()));
        Ok((read, scanner.findings))
    }

    fn check_period(from: DateTime<Utc>, until: DateTime<Utc>) -> ServiceResult<()> {
        if until <= from {
            return Err(ServiceError::new(ErrorCode::InvalidQuery, "until lies after from"));
        }
        if until - from > chrono::Duration::days(MAX_PERIOD_DAYS) {
            return Err(ServiceError::new(ErrorCode::InvalidQuery, "a period is at most 366 days"));
        }
        Ok(())
    }

    /// The anomaly report of a period (management; audited).
    pub async fn audit_review(&self, caller: &Caller, q: ReviewQuery) -> ServiceResult<ReviewReport> {
        let mut op = self.op(caller, "audit.review").await?;
        op.authorize(Action::ReadAuditLog, Target::Nothing).await?;
        Self::check_period(q.from, q.until)?;
        let (events, findings) = self.scan_period(q.from.timestamp_micros(), q.until.timestamp_micros()).await?;
        let counts = counts(&findings);
        op.event.details = serde_json::json!({ "from": q.from, "until": q.until, "events": events, "counts": counts });
        op.commit().await?;
        Ok(ReviewReport { from: q.from, until: q.until, events, counts, findings })
    }

    /// Record that a period was reviewed; its findings are counted again
    /// and kept with it.
    pub async fn record_review(&self, caller: &Caller, new: NewReview) -> ServiceResult<Review> {
        let mut op = self.op(caller, "audit.review.record").await?;
        op.authorize(Action::ReadAuditLog, Target::Nothing).await?;
        let map_query = |e: ServiceError| ServiceError::new(ErrorCode::InvalidField, e.message);
        Self::check_period(new.from, new.until).map_err(map_query)?;
        if new.until > op.now_time() + chrono::Duration::minutes(5) {
            return Err(ServiceError::new(ErrorCode::InvalidField, "until cannot lie in the future"));
        }
        let remarks = domain::optional_text("remarks", new.remarks.as_deref(), 4000)?;
        let (_, findings) = self.scan_period(new.from.timestamp_micros(), new.until.timestamp_micros()).await?;
        let row = ReviewRow {
            id: Uuid::new_v4(),
            reviewer: caller.id(),
            reviewed_at: op.now(),
            period_from: new.from.timestamp_micros(),
            period_until: new.until.timestamp_micros(),
            findings: counts(&findings),
            remarks,
        };
        op.tx()?.insert_review(&row).await?;
        op.event.details = serde_json::json!({ "review_id": row.id, "from": new.from, "until": new.until,
                                               "findings": row.findings });
        op.commit().await?;
        Ok(review_view(&row))
    }

    pub async fn list_reviews(&self, caller: &Caller) -> ServiceResult<Vec<Review>> {
        let mut op = self.op(caller, "audit.review.list").await?;
        op.authorize(Action::ReadAuditLog, Target::Nothing).await?;
        let rows = op.tx()?.list_reviews().await?;
        op.commit().await?;
        Ok(rows.iter().map(review_view).collect())
    }

    /// How long the log has gone unreviewed: since the end of the latest
    /// reviewed period, or (never reviewed) since the first event.
    pub async fn review_status(&self, allowance_days: i64) -> ServiceResult<ReviewStatus> {
        let mut tx = self.snapshot().await?;
        let reviewed_until = tx.latest_review_until().await?;
        let first = tx.first_audit_at().await?;
        tx.commit().await?;
        let now = self.now_micros();
        let since = reviewed_until.or(first).unwrap_or(now);
        let unreviewed_days = ((now - since).max(0)) / crate::catalog::DAY_MICROS;
        Ok(ReviewStatus {
            reviewed_until: opt_time(reviewed_until),
            unreviewed_days,
            overdue: unreviewed_days > allowance_days,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::audit::NewEvent;

    fn ev(seq: i64, at: DateTime<Utc>, actor: u128, action: &str, outcome: &str) -> Event {
        let mut body = NewEvent::new(action, outcome);
        body.actor_id = Some(Uuid::from_u128(actor));
        Event { seq, at: at.timestamp_micros(), body, prev_hash: String::new(), hash: String::new() }
    }

    fn scan(events: &[Event]) -> Vec<Finding> {
        let mut s = Scanner::default();
        for e in events {
            s.see(e);
        }
        s.findings
    }

    #[test]
    fn office_hours_are_dutch_weekdays_seven_to_seven() {
        // Wednesday 2 December 2026, Amsterdam is UTC+1.
        let t = |h, m| Utc.with_ymd_and_hms(2026, 12, 2, h, m, 0).unwrap().timestamp_micros();
        assert!(outside_office_hours(t(5, 59)), "06:59 local");
        assert!(!outside_office_hours(t(6, 0)), "07:00 local");
        assert!(!outside_office_hours(t(17, 59)), "18:59 local");
        assert!(outside_office_hours(t(18, 0)), "19:00 local");
        let saturday = Utc.with_ymd_and_hms(2026, 12, 5, 10, 0, 0).unwrap().timestamp_micros();
        assert!(outside_office_hours(saturday));
    }

    #[test]
    fn each_kind_is_found_in_a_scripted_day_and_none_in_a_clean_one() {
        let day = |h, m, s| Utc.with_ymd_and_hms(2026, 12, 2, h, m, s).unwrap();
        // A clean working day: a few downloads, a refusal, another user.
        let clean: Vec<Event> = (0..10)
            .map(|i| ev(i + 1, day(9, i as u32, 0), 1, "document.download", "allowed"))
            .chain([ev(11, day(9, 30, 0), 1, "document.download", "denied")])
            .chain([ev(12, day(10, 0, 0), 2, "client.read", "allowed")])
            .collect();
        assert!(scan(&clean).is_empty(), "{:?}", scan(&clean));

        let mut bad = Vec::new();
        let mut seq = 0;
        let mut push = |e: fn(i64) -> Event| {
            seq += 1;
            bad.push(e(seq));
        };
        // 25 downloads in five minutes by user 3.
        for _ in 0..25 {
            push(|s| {
                ev(
                    s,
                    Utc.with_ymd_and_hms(2026, 12, 2, 11, 0, (s % 60) as u32).unwrap(),
                    3,
                    "document.download",
                    "allowed",
                )
            });
        }
        push(|s| ev(s, Utc.with_ymd_and_hms(2026, 12, 2, 21, 0, 0).unwrap(), 4, "document.download", "allowed"));
        push(|s| ev(s, Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap(), 4, "client.bsn.reveal", "allowed"));
        push(|s| ev(s, Utc.with_ymd_and_hms(2026, 12, 2, 12, 5, 0).unwrap(), 4, "client.export", "allowed"));
        for _ in 0..6 {
            push(|s| ev(s, Utc.with_ymd_and_hms(2026, 12, 2, 13, 0, 0).unwrap(), 5, "client.read", "denied"));
        }
        let mut sub = ev(100, day(14, 0, 0), 6, "document.download", "allowed");
        sub.body.on_behalf_of = Some(Uuid::from_u128(7));
        bad.push(sub);
        let found = scan(&bad);
        let kinds = |k: &str| found.iter().filter(|f| f.kind == k).collect::<Vec<_>>();
        let burst = kinds("download_burst");
        assert_eq!(burst.len(), 1, "one burst, grown: {found:?}");
        assert_eq!(burst[0].events.len(), 25);
        assert_eq!(burst[0].actor_id, Some(Uuid::from_u128(3)));
        assert_eq!(kinds("outside_office_hours").len(), 1, "22:00 local");
        assert_eq!(kinds("bsn_reveal").len(), 1);
        assert_eq!(kinds("export").len(), 1);
        let streak = kinds("denied_streak");
        assert_eq!((streak.len(), streak[0].events.len()), (1, 6));
        assert_eq!(kinds("substitution_access").len(), 1);
        assert!(burst[0].link.contains("actor_id=00000000-0000-0000-0000-000000000003"));
    }
}
