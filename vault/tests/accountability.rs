//! Accountability against real backends with an injectable clock (issue
//! 11): a BSN revealed at night is found by the review, and an unreviewed
//! stretch of the log turns overdue after the allowed days and back once a
//! review covers it.

#[path = "../../tests/support/mod.rs"]
mod support;
#[path = "../../tests/support/vault.rs"]
mod vault_support;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use support::Backend;
use vault::Vault;
use vault::clock::{Clock, ManualClock};
use vault::domain::{Commissioner, Role};
use vault::service::NewClient;
use vault_support::{config, signed_in};

fn new_client() -> NewClient {
    serde_json::from_value(serde_json::json!({
        "first_name": "Jan", "initials": "J.", "last_name": "Jansen", "birth_date": "1980-02-03",
        "bsn": "111222333", "commissioner": Commissioner::Uwv,
    }))
    .unwrap()
}

async fn review_clock(b: Backend) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let v = Vault::open(&config(&b)).await.unwrap().with_clock(clock.clone());
    let anna = signed_in(&v, "anna", Role::Management).await;
    let c = v.create_client(&anna, new_client()).await.unwrap();
    // Wednesday 2 December 2026: one reveal at 10:00, one at 22:30 Dutch time.
    let day = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
    clock.set(day + Duration::hours(9));
    v.reveal_bsn(&anna, c.id).await.unwrap();
    clock.set(day + Duration::minutes(21 * 60 + 30));
    v.reveal_bsn(&anna, c.id).await.unwrap();
    clock.set(day + Duration::days(1));
    let q = serde_json::from_value(serde_json::json!({ "from": day, "until": day + Duration::days(1) })).unwrap();
    let report = v.audit_review(&anna, q).await.unwrap();
    assert_eq!(report.counts["bsn_reveal"], 2, "{report:?}");
    assert_eq!(report.counts["outside_office_hours"], 1, "{report:?}");
    let night = report.findings.iter().find(|f| f.kind == "outside_office_hours").unwrap();
    assert_eq!(night.first_at, day + Duration::minutes(21 * 60 + 30));

    // Unreviewed since the first event: overdue after 30 days, not before.
    let status = v.review_status(30).await.unwrap();
    assert!(!status.overdue && status.reviewed_until.is_none(), "{status:?}");
    clock.set(Utc::now() + Duration::days(31));
    let status = v.review_status(30).await.unwrap();
    assert!(status.overdue && status.unreviewed_days >= 31, "{status:?}");
    // A review of the period up to now: not overdue any more.
    let first = Utc::now() - Duration::days(2);
    let review = serde_json::from_value(serde_json::json!({
        "from": first.min(day), "until": clock.now(), "remarks": "geen bijzonderheden na navraag",
    }))
    .unwrap();
    let r = v.record_review(&anna, review).await.unwrap();
    assert_eq!(r.findings["bsn_reveal"], 2);
    let status = v.review_status(30).await.unwrap();
    assert!(!status.overdue && status.unreviewed_days == 0, "{status:?}");
    assert_eq!(v.list_reviews(&anna).await.unwrap().len(), 1);
}

on_both_backends!(the_review_finds_a_night_reveal_and_an_unreviewed_month_turns_overdue, review_clock);
