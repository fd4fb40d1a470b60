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
    // Every instant is fixed: the vault starts on Tuesday 1 December 2026.
    let start = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(start));
    let v = Vault::open_with_clock(&config(&b), clock.clone()).await.unwrap();
    let anna = signed_in(&v, "anna", Role::Management).await;
    let c = v.create_client(&anna, new_client()).await.unwrap();
    // Wednesday 2 December: one reveal at 10:00, one at 22:30 Dutch time.
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

    // Unreviewed since the first event (1 December): overdue after 30
    // days, not before.
    let status = v.review_status(30).await.unwrap();
    assert_eq!((status.overdue, status.unreviewed_days, status.reviewed_until), (false, 1, None), "{status:?}");
    clock.set(start + Duration::days(31) + Duration::hours(1));
    let status = v.review_status(30).await.unwrap();
    assert_eq!((status.overdue, status.unreviewed_days), (true, 31), "{status:?}");
    let review = |from: chrono::DateTime<Utc>, until: chrono::DateTime<Utc>| {
        serde_json::from_value(serde_json::json!({ "from": from, "until": until, "remarks": "geen bijzonderheden" }))
            .unwrap()
    };
    // Reviews of 1–3 December and of 10 December until now leave a gap:
    // covered through the 3rd only.
    let dec = |d| Utc.with_ymd_and_hms(2026, 12, d, 0, 0, 0).unwrap();
    let r = v.record_review(&anna, review(dec(1), dec(3))).await.unwrap();
    assert_eq!(r.findings["bsn_reveal"], 2);
    v.record_review(&anna, review(dec(10), clock.now())).await.unwrap();
    let status = v.review_status(20).await.unwrap();
    assert_eq!(status.reviewed_until, Some(dec(3)), "{status:?}");
    assert!(status.overdue, "29 days since the gap: {status:?}");
    // The gap reviewed: covered until now.
    v.record_review(&anna, review(dec(3), dec(10))).await.unwrap();
    let status = v.review_status(20).await.unwrap();
    assert_eq!((status.overdue, status.unreviewed_days, status.reviewed_until), (false, 0, Some(clock.now())));
    assert_eq!(v.list_reviews(&anna).await.unwrap().len(), 3);
}

on_both_backends!(the_review_finds_a_night_reveal_and_an_unreviewed_month_turns_overdue, review_clock);

async fn anchors(b: Backend) {
    use vault::service::ANCHORS_KEPT;
    use vault::store::{ANCHOR_PREFIX, ObjectName};
    let v = Vault::open(&config(&b)).await.unwrap();
    let anna = signed_in(&v, "anna", Role::Management).await;
    let c = v.create_client(&anna, new_client()).await.unwrap();
    // Every step after new events writes one; the store keeps the newest few.
    for _ in 0..ANCHORS_KEPT + 4 {
        v.reveal_bsn(&anna, c.id).await.unwrap();
        assert!(v.anchor_audit_head().await.unwrap().is_some());
    }
    assert!(v.anchor_audit_head().await.unwrap().is_none(), "the head did not move");
    let names = v.store_for_tests().list(ANCHOR_PREFIX).await.unwrap();
    assert_eq!(names.len(), ANCHORS_KEPT, "{names:?}");
    let newest = v.latest_anchor().await.unwrap().unwrap();
    let report = v.verify_audit_chain().await.unwrap();
    assert!(report.ok && report.anchor.as_ref().is_some_and(|a| a.ok && a.anchor == newest), "{report:?}");

    // An object under the prefix that is not an anchor (named as the
    // newest) fails verification by name, and does not stop the anchorer.
    let junk = ObjectName::audit_anchor(999_999_999_999);
    v.store_for_tests().put_bytes(&junk, b"{\"seq\": 1}".to_vec().into()).await.unwrap();
    let report = v.verify_audit_chain().await.unwrap();
    let err = report.error.clone().unwrap_or_default();
    assert!(!report.ok && err.contains("not anchors") && err.contains(junk.as_str()), "{report:?}");
    v.reveal_bsn(&anna, c.id).await.unwrap();
    let next = v.anchor_audit_head().await.unwrap().expect("anchored past the junk");
    assert!(next.seq > newest.seq);
    assert_eq!(v.latest_anchor().await.unwrap(), Some(next));
}

on_both_backends!(anchors_are_pruned_and_junk_under_their_prefix_is_named_not_obeyed, anchors);
