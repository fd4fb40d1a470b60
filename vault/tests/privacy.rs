//! The request register's clocks against real backends with an injectable
//! clock (issue 10): `due_at` two weeks after receipt, `deadline_at` one
//! calendar month after, `overdue` and `past_deadline` flipping exactly
//! there, extensions (allowed until the deadline, moving both clocks), and
//! the counts the metrics read.

#[path = "../../tests/support/mod.rs"]
mod support;
#[path = "../../tests/support/vault.rs"]
mod vault_support;

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use support::Backend;
use vault::Vault;
use vault::clock::ManualClock;
use vault::domain::{Commissioner, Role};
use vault::service::{Caller, ErrorCode, NewClient, Request};
use vault_support::{config, signed_in};

fn new_client() -> NewClient {
    serde_json::from_value(serde_json::json!({
        "first_name": "Jan", "initials": "J.", "last_name": "Jansen", "birth_date": "1980-02-03",
        "commissioner": Commissioner::Uwv,
    }))
    .unwrap()
}

async fn register(v: &Vault, by: &Caller, client: uuid::Uuid, kind: &str) -> Request {
    let req = serde_json::from_value(serde_json::json!({
        "client_id": client, "kind": kind, "channel": "letter", "identity_check": "id_document",
    }))
    .unwrap();
    v.create_request(by, req).await.unwrap()
}

async fn read(v: &Vault, by: &Caller, id: uuid::Uuid) -> Request {
    v.get_request(by, id).await.unwrap()
}

async fn clocks(b: Backend) {
    // The 31st: a month later is the last day of February.
    let t0 = Utc.with_ymd_and_hms(2027, 1, 31, 10, 0, 0).unwrap();
    // Signed in at the real time (the authenticator's code is of now), then
    // the clock goes to the 31st.
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let v = Vault::open(&config(&b)).await.unwrap().with_clock(clock.clone());
    let office = signed_in(&v, "olga", Role::Office).await;
    let c = v.create_client(&office, new_client()).await.unwrap();
    clock.set(t0);

    let r = register(&v, &office, c.id, "access").await;
    assert_eq!(r.received_at, t0);
    assert_eq!(r.due_at, t0 + Duration::days(14));
    assert_eq!(r.deadline_at, Utc.with_ymd_and_hms(2027, 2, 28, 10, 0, 0).unwrap());
    assert_eq!(r.handler_id, Some(office.id()), "the registering user handles it by default");
    assert!(!r.overdue && !r.past_deadline && r.status == "open");
    let other = register(&v, &office, c.id, "portability").await;

    // Exactly at the promise: not yet overdue; a second later it is.
    clock.set(r.due_at);
    assert!(!read(&v, &office, r.id).await.overdue);
    assert_eq!(v.request_counts().await.unwrap().overdue, 0, "the gauge agrees with the register");
    clock.set(r.due_at + Duration::seconds(1));
    let now = read(&v, &office, r.id).await;
    assert!(now.overdue && !now.past_deadline, "{now:?}");
    let counts = v.request_counts().await.unwrap();
    assert_eq!((counts.open, counts.overdue, counts.past_deadline), (2, 2, 0));

    // An extension (before the deadline) moves both clocks to its date.
    let until = t0 + Duration::days(70);
    let patch = serde_json::from_value(serde_json::json!({
        "extension": { "until": until, "reason": "veel dossiers van verschillende opdrachtgevers" },
    }))
    .unwrap();
    let ext = v.update_request(&office, r.id, patch).await.unwrap();
    assert_eq!(ext.extension.as_ref().map(|e| e.until), Some(until));
    assert!(!ext.overdue, "extended: not overdue before its date");
    // More than three months after receipt is refused.
    let too_far = serde_json::from_value(serde_json::json!({
        "extension": { "until": t0 + Duration::days(95), "reason": "x" },
    }))
    .unwrap();
    assert_eq!(v.update_request(&office, r.id, too_far).await.unwrap_err().code, ErrorCode::InvalidField);

    // Past the legal deadline: the other request cannot be extended any more.
    clock.set(Utc.with_ymd_and_hms(2027, 2, 28, 10, 0, 1).unwrap());
    let late = read(&v, &office, other.id).await;
    assert!(late.overdue && late.past_deadline, "{late:?}");
    let patch = serde_json::from_value(serde_json::json!({
        "extension": { "until": t0 + Duration::days(60), "reason": "te laat" },
    }))
    .unwrap();
    assert_eq!(v.update_request(&office, other.id, patch).await.unwrap_err().code, ErrorCode::DeadlinePassed);
    let counts = v.request_counts().await.unwrap();
    assert_eq!((counts.open, counts.overdue, counts.past_deadline), (2, 1, 1), "the extended one is neither");

    // Answers: late for the one, on time (within its extension) for the other.
    let answer =
        |d: &str| serde_json::from_value(serde_json::json!({ "decision": d, "outcome": "kopie verstuurd" })).unwrap();
    let a = v.answer_request(&office, other.id, answer("granted")).await.unwrap();
    assert_eq!((a.status, a.answered_on_time, a.overdue), ("answered", Some(false), false));
    let a = v.answer_request(&office, r.id, answer("granted")).await.unwrap();
    assert_eq!(a.answered_on_time, Some(true));
    assert_eq!(v.answer_request(&office, r.id, answer("refused")).await.unwrap_err().code, ErrorCode::AlreadyAnswered);
    let counts = v.request_counts().await.unwrap();
    assert_eq!((counts.open, counts.overdue, counts.past_deadline), (0, 0, 0));
}

on_both_backends!(request_clocks_run_two_weeks_and_one_month_and_extensions_move_them, clocks);

/// An upload still streaming when the client is erased is refused at its
/// activation: nothing of it stays, and the erased client has no document.
async fn erasure_during_upload(b: Backend) {
    use bytes::Bytes;
    use vault::service::{UploadAbort, UploadFields};
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let v = Arc::new(Vault::open(&config(&b)).await.unwrap().with_clock(clock.clone()));
    let anna = signed_in(&v, "anna", Role::Management).await;
    let c = v.create_client(&anna, new_client()).await.unwrap();

    let fields =
        UploadFields { doc_type: Some("intake".into()), filename: Some("intake.txt".into()), ..Default::default() };
    let mut permit = v.authorize_upload(&anna, c.id).await.unwrap();
    v.upload_fields(&mut permit, fields).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, UploadAbort>>(1);
    let body = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    tx.send(Ok(Bytes::from_static(b"Intake: eerste gesprek\n"))).await.unwrap();
    let upload = {
        let v = v.clone();
        tokio::spawn(
            async move { v.store_upload(permit, "intake.txt".into(), "text/plain; charset=utf-8", body).await },
        )
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let req = serde_json::from_value(serde_json::json!({ "reason": "verzoek van de cliënt" })).unwrap();
    let cert = v.erase_client(&anna, c.id, req).await.unwrap();
    assert!(cert.documents.is_empty(), "the upload in flight was not a document yet");
    tx.send(Ok(Bytes::from_static(b"meer tekst\n"))).await.unwrap();
    drop(tx);
    let refused = upload.await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::ClientClosed, "{refused:?}");
    assert!(v.list_documents(&anna, c.id).await.unwrap().is_empty());
    let mut tx = v.catalog_for_tests().snapshot(0).await.unwrap();
    assert!(tx.pending_documents_before(i64::MAX).await.unwrap().is_empty(), "nothing pending is left");
}

on_both_backends!(an_upload_streaming_during_an_erasure_is_refused_and_leaves_nothing, erasure_during_upload);
