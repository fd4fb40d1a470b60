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

use std::collections::{HashMap, VecDeque};

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
    /// How many events the finding holds.
    pub event_count: usize,
    /// The events (their `seq`), oldest first; the first 1,000.
    pub events: Vec<i64>,
    /// `GET /api/v1/audit?...` listing the finding's events (by this
    /// user, of this kind, from `first_at` to `last_at`).
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
    /// The first 5,000 findings, oldest first.
    pub findings: Vec<Finding>,
    /// More findings were counted than listed.
    pub truncated: bool,
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

/// The most findings one report lists (each kind is still counted in
/// full; `truncated` says some were left out).
pub const MAX_FINDINGS: usize = 5_000;
/// The most events one finding lists (`event_count` has them all).
pub const MAX_FINDING_EVENTS: usize = 1_000;

/// Collects findings as the period's events go by, in order.
#[derive(Default)]
struct Scanner {
    findings: Vec<Finding>,
    /// Findings by kind, those left out included.
    counts: HashMap<&'static str, usize>,
    truncated: bool,
    /// Per user: the times and seqs of their downloads in the burst window.
    opens: HashMap<Option<Uuid>, VecDeque<(i64, i64)>>,
    /// Per user: the running burst (its last download, its finding if
    /// listed).
    burst: HashMap<Option<Uuid>, (i64, Option<usize>)>,
    /// Per user: the first refusals of the current run.
    denied: HashMap<Uuid, Vec<(i64, i64)>>,
    /// Per user: the running streak's finding (if listed).
    streak: HashMap<Uuid, Option<usize>>,
}

fn stamp(at: i64) -> String {
    micros_to_time(at).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `GET /api/v1/audit?...`: the events of `action` (all, when none) by
/// `actor` from `first` up to and including `last` (microseconds).
fn link(actor: Option<Uuid>, action: Option<&str>, first: i64, last: i64) -> String {
    let mut l = String::from("/api/v1/audit?");
    if let Some(a) = actor {
        l.push_str(&format!("actor_id={a}&"));
    }
    if let Some(a) = action {
        l.push_str(&format!("action={a}&"));
    }
    l.push_str(&format!("from={}&until={}&limit=1000", stamp(first), stamp(last + 1)));
    l
}

impl Scanner {
    /// List a new finding (or only count it, past [`MAX_FINDINGS`]).
    fn add(&mut self, f: Finding) -> Option<usize> {
        *self.counts.entry(f.kind).or_default() += 1;
        if self.findings.len() >= MAX_FINDINGS {
            self.truncated = true;
            return None;
        }
        self.findings.push(f);
        Some(self.findings.len() - 1)
    }

    /// Add `e` to a running finding.
    fn grow(&mut self, i: Option<usize>, e: &Event, action: Option<&str>) {
        let Some(f) = i.and_then(|i| self.findings.get_mut(i)) else { return };
        f.event_count += 1;
        if f.events.len() < MAX_FINDING_EVENTS {
            f.events.push(e.seq);
        }
        f.last_at = micros_to_time(e.at);
        f.link = link(f.actor_id, action, f.first_at.timestamp_micros(), e.at);
    }

    fn single(&mut self, kind: &'static str, e: &Event) {
        self.add(Finding {
            kind,
            actor_id: e.body.actor_id,
            first_at: micros_to_time(e.at),
            last_at: micros_to_time(e.at),
            event_count: 1,
            events: vec![e.seq],
            link: link(e.body.actor_id, Some(&e.body.action), e.at, e.at),
        });
    }

    fn see(&mut self, e: &Event) {
        let ok = e.body.outcome == "allowed" || e.body.outcome == "ok";
        let action = e.body.action.as_str();
        let actor = e.body.actor_id;
        if ok && OPENS.contains(&action) && e.body.on_behalf_of.is_some() {
            self.single("substitution_access", e);
        }
        // An export at night is one finding (its `client.export`), not one
        // more for every document in it.
        if ok
            && matches!(action, "document.download" | "client.bsn.reveal" | "client.export")
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
            recent.push_back((e.at, e.seq));
            while recent.front().is_some_and(|(at, _)| *at <= e.at - window) {
                recent.pop_front();
            }
            if recent.len() >= BURST_DOWNLOADS {
                match self.burst.get(&actor).copied() {
                    // Still the same burst: it grows.
                    Some((last, i)) if last > e.at - window => {
                        self.grow(i, e, Some("document.download"));
                        self.burst.insert(actor, (e.at, i));
                    }
                    _ => {
                        let seqs: Vec<i64> = recent.iter().map(|(_, s)| *s).collect();
                        let first = recent.front().map_or(e.at, |(at, _)| *at);
                        let i = self.add(Finding {
                            kind: "download_burst",
                            actor_id: actor,
                            first_at: micros_to_time(first),
                            last_at: micros_to_time(e.at),
                            event_count: seqs.len(),
                            events: seqs,
                            link: link(actor, Some("document.download"), first, e.at),
                        });
                        self.burst.insert(actor, (e.at, i));
                    }
                }
            }
        }
        // Refusals in a row, per user (refusals before login have no user:
        // the login lock-out and the per-address limits deal with those).
        let Some(user) = actor else { return };
        if e.body.outcome == "denied" {
            if let Some(i) = self.streak.get(&user).copied() {
                self.grow(i, e, None);
                return;
            }
            let run = self.denied.entry(user).or_default();
            run.push((e.at, e.seq));
            if run.len() >= DENIED_STREAK {
                let run = self.denied.remove(&user).unwrap_or_default();
                let first = run.first().map_or(e.at, |(at, _)| *at);
                let i = self.add(Finding {
                    kind: "denied_streak",
                    actor_id: actor,
                    first_at: micros_to_time(first),
                    last_at: micros_to_time(e.at),
                    event_count: run.len(),
                    events: run.iter().map(|(_, s)| *s).collect(),
                    link: link(actor, None, first, e.at),
                });
                self.streak.insert(user, i);
            }
        } else {
            self.denied.remove(&user);
            self.streak.remove(&user);
        }
    }
}

const KINDS: &[&str] =
    &["substitution_access", "outside_office_hours", "download_burst", "bsn_reveal", "denied_streak", "export"];

fn counts(counted: &HashMap<&'static str, usize>) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for k in KINDS {
        m.insert((*k).into(), counted.get(k).copied().unwrap_or(0).into());
    }
    serde_json::Value::Object(m)
}

impl Vault {
    async fn scan_period(&self, from: i64, until: i64) -> ServiceResult<(i64, Scanner)> {
        let mut tx = self.snapshot().await?;
        let mut scanner = Scanner::default();
        let mut read = 0i64;
        // The window as a range of seq, then read by seq inside it.
        if let Some((first, last)) = tx.audit_seq_range(from, until).await? {
            let mut after = first - 1;
            loop {
                let page = tx.audit_events_in_window(from, until, after, last, 1000).await?;
                let Some(e) = page.last() else { break };
                after = e.seq;
                read += page.len() as i64;
                for e in &page {
                    scanner.see(e);
                }
            }
        }
        tx.commit().await?;
        scanner.findings.sort_by_key(|f| (f.first_at, f.events.first().copied()));
        Ok((read, scanner))
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

    /// Decide that `caller` may read the audit log, without holding the
    /// transaction: a period is read in a snapshot of its own (on SQLite a
    /// held write transaction would stop every other change meanwhile). A
    /// refusal is recorded here; the operation that follows the read
    /// decides again and records the event.
    async fn may_read_audit(&self, caller: &Caller, action: &str) -> ServiceResult<()> {
        let mut op = self.op(caller, action).await?;
        op.authorize(Action::ReadAuditLog, Target::Nothing).await?;
        op.commit_unaudited().await
    }

    /// The anomaly report of a period (management; audited).
    pub async fn audit_review(&self, caller: &Caller, q: ReviewQuery) -> ServiceResult<ReviewReport> {
        self.may_read_audit(caller, "audit.review").await?;
        Self::check_period(q.from, q.until)?;
        let (events, scan) = self.scan_period(q.from.timestamp_micros(), q.until.timestamp_micros()).await?;
        let counts = counts(&scan.counts);
        let mut op = self.op(caller, "audit.review").await?;
        op.authorize(Action::ReadAuditLog, Target::Nothing).await?;
        op.event.details = serde_json::json!({ "from": q.from, "until": q.until, "events": events, "counts": counts });
        op.commit().await?;
        Ok(ReviewReport {
            from: q.from,
            until: q.until,
            events,
            counts,
            findings: scan.findings,
            truncated: scan.truncated,
        })
    }

    /// Record that a period was reviewed; its findings are counted again
    /// and kept with it.
    pub async fn record_review(&self, caller: &Caller, new: NewReview) -> ServiceResult<Review> {
        self.may_read_audit(caller, "audit.review.record").await?;
        let map_query = |e: ServiceError| ServiceError::new(ErrorCode::InvalidField, e.message);
        Self::check_period(new.from, new.until).map_err(map_query)?;
        if new.until > micros_to_time(self.now_micros()) + chrono::Duration::minutes(5) {
            return Err(ServiceError::new(ErrorCode::InvalidField, "until cannot lie in the future"));
        }
        let remarks = domain::optional_text("remarks", new.remarks.as_deref(), 4000)?;
        let (_, scan) = self.scan_period(new.from.timestamp_micros(), new.until.timestamp_micros()).await?;
        let mut op = self.op(caller, "audit.review.record").await?;
        op.authorize(Action::ReadAuditLog, Target::Nothing).await?;
        let row = ReviewRow {
            id: Uuid::new_v4(),
            reviewer: caller.id(),
            reviewed_at: op.now(),
            period_from: new.from.timestamp_micros(),
            period_until: new.until.timestamp_micros(),
            findings: counts(&scan.counts),
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

    /// How long the log has gone unreviewed: since the end of the reviewed
    /// periods that cover it from its first event without a gap, or (none
    /// does) since the first event.
    pub async fn review_status(&self, allowance_days: i64) -> ServiceResult<ReviewStatus> {
        let mut tx = self.snapshot().await?;
        let first = tx.first_audit_at().await?;
        let reviewed_until = match first {
            Some(f) => tx.reviewed_through(f).await?,
            None => None,
        };
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
        assert!(burst[0].link.contains("from=2026-12-02T11:00:01.000000Z&until=2026-12-02T11:00:25.000001Z"));
    }

    #[test]
    fn a_night_export_is_one_finding_not_one_per_document() {
        let night = Utc.with_ymd_and_hms(2026, 12, 2, 22, 0, 0).unwrap();
        let mut events = vec![ev(1, night, 1, "client.export", "allowed")];
        events.extend((2..12).map(|s| ev(s, night, 1, "document.export", "allowed")));
        let found = scan(&events);
        let night: Vec<_> = found.iter().filter(|f| f.kind == "outside_office_hours").collect();
        assert_eq!((night.len(), night[0].events.clone()), (1, vec![1]), "{found:?}");
        assert_eq!(found.iter().filter(|f| f.kind == "export").count(), 1);
    }

    #[test]
    fn findings_past_the_cap_are_counted_not_listed() {
        let night = Utc.with_ymd_and_hms(2026, 12, 2, 22, 0, 0).unwrap();
        let mut s = Scanner::default();
        let n = MAX_FINDINGS as i64 + 10;
        for i in 0..n {
            s.see(&ev(i + 1, night, 1, "client.bsn.reveal", "allowed"));
        }
        assert!(s.truncated);
        assert_eq!(s.findings.len(), MAX_FINDINGS);
        assert_eq!(counts(&s.counts)["bsn_reveal"], n);
        assert_eq!(counts(&s.counts)["outside_office_hours"], n);
        // A streak that goes on lists its first events and counts them all.
        let mut s = Scanner::default();
        let day = Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap();
        for i in 0..(MAX_FINDING_EVENTS as i64 + 50) {
            s.see(&ev(i + 1, day, 2, "client.read", "denied"));
        }
        assert_eq!(s.findings.len(), 1);
        assert_eq!(s.findings[0].events.len(), MAX_FINDING_EVENTS);
        assert_eq!(s.findings[0].event_count, MAX_FINDING_EVENTS + 50);
    }
}
