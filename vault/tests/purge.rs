//! The purge against real backends with an injectable clock (SPEC §4,
//! issue 9): clocks that start at upload or at the trajectory's end, a
//! policy change, legal holds (also one set while the purge runs), a crash
//! between every two steps, and a store that is down.

#[path = "../../tests/support/mod.rs"]
mod support;
#[path = "../../tests/support/vault.rs"]
mod vault_support;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{Duration, Utc};
use futures::StreamExt;
use support::Backend;
use uuid::Uuid;
use vault::clock::{Clock, ManualClock};
use vault::domain::{Commissioner, DocumentState, Role};
use vault::faults::FaultPoint;
use vault::rekey::Silent;
use vault::service::{AuditQuery, Caller, Document, NewClient, UploadAbort, UploadFields};
use vault::store::ObjectName;
use vault::{Vault, VaultError};
use vault_support::{config, signed_in};

async fn open(b: &Backend, clock: &Arc<ManualClock>) -> Vault {
    let v = Vault::open(&config(b)).await.unwrap_or_else(|e| panic!("open vault on {}: {e}", b.name));
    v.with_clock(clock.clone())
}

/// A vault on `b` whose clock stands still at now, a manager signed in, and
/// a client.
async fn setup(b: &Backend) -> (Arc<ManualClock>, Arc<Vault>, Caller, Uuid) {
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let v = Arc::new(open(b, &clock).await);
    let anna = signed_in(&v, "anna", Role::Management).await;
    let c = v.create_client(&anna, new_client()).await.unwrap();
    (clock, v, anna, c.id)
}

fn new_client() -> NewClient {
    serde_json::from_value(serde_json::json!({
        "first_name": "Jan", "initials": "J.", "last_name": "Jansen", "birth_date": "1980-02-03",
        "bsn": "111222333", "commissioner": Commissioner::Uwv,
    }))
    .unwrap()
}

fn body() -> impl futures::Stream<Item = Result<Bytes, UploadAbort>> + Send + 'static {
    futures::stream::iter([Ok(Bytes::from_static(b"Verslag van het gesprek\n"))])
}

async fn upload(v: &Vault, by: &Caller, client: Uuid, doc_type: &str) -> Document {
    let fields = UploadFields {
        doc_type: Some(doc_type.into()),
        title: Some("Verslag".into()),
        filename: Some("verslag.txt".into()),
        ..Default::default()
    };
    let mut permit = v.authorize_upload(by, client).await.unwrap();
    v.upload_fields(&mut permit, fields).await.unwrap();
    v.store_upload(permit, "verslag.txt".into(), "text/plain; charset=utf-8", body()).await.unwrap()
}

async fn hold(v: &Vault, by: &Caller, id: Uuid, on: bool) {
    let req = serde_json::from_value(serde_json::json!({ "hold": on, "reason": "klacht" })).unwrap();
    v.set_legal_hold(by, id, req).await.unwrap();
}

async fn state(v: &Vault, by: &Caller, id: Uuid) -> DocumentState {
    v.get_document(by, id).await.unwrap().state
}

async fn readable(v: &Vault, id: Uuid) -> bool {
    match v.read_document(id).await {
        Ok((_, mut s)) => {
            while let Some(c) = s.next().await {
                c.unwrap();
            }
            true
        }
        Err(VaultError::Gone(_)) => false,
        Err(e) => panic!("reading {id}: {e}"),
    }
}

/// Is the document's object still in the store?
async fn object_exists(v: &Vault, id: Uuid) -> bool {
    let mut tx = v.catalog_for_tests().snapshot(0).await.unwrap();
    let row = tx.get_document(id).await.unwrap();
    drop(tx);
    v.store_for_tests().get_stream(&ObjectName::from_catalog(row.object_name)).await.is_ok()
}

/// Is the document's wrapped data key gone from its row (crypto-shredded)?
async fn shredded(v: &Vault, id: Uuid) -> bool {
    let mut tx = v.catalog_for_tests().snapshot(0).await.unwrap();
    let row = tx.get_document(id).await.unwrap();
    row.wrapped_key.is_none()
}

/// `n` identity copies written through the engine (fast), 16 at a time.
async fn engine_docs(v: &Arc<Vault>, client: Uuid, n: usize) -> Vec<Uuid> {
    futures::stream::iter(0..n)
        .map(|_| {
            let v = v.clone();
            async move {
                let meta = vault::NewDocument {
                    client_id: client,
                    doc_type: "id_copy".into(),
                    title: None,
                    filename: "id.txt".into(),
                    content_type: "text/plain".into(),
                    uploaded_by: None,
                    retention_until: None,
                    retention_reason: None,
                    view_only: false,
                    supersedes: None,
                };
                let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"kopie"))]);
                v.put_document(meta, body).await.unwrap().id
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// The documents of the `document.destroy` events, in order.
async fn destroyed_events(v: &Vault, by: &Caller) -> Vec<Uuid> {
    let q = AuditQuery { action: Some("document.destroy".into()), limit: Some(1000), ..Default::default() };
    let mut events = v.audit_events(by, q).await.unwrap();
    events.reverse();
    events.iter().filter(|e| e.outcome == "ok").map(|e| e.document_id.unwrap()).collect()
}

async fn pass(v: &Vault) -> vault::service::PurgeReport {
    v.purge_pass(&Silent).await.unwrap()
}

// ---------------------------------------------------------------------------

async fn clocks_policies_and_holds(b: Backend) {
    let (clock, v, anna, c) = setup(&b).await;
    let id_copy = upload(&v, &anna, c, "id_copy").await.id;
    let psych = upload(&v, &anna, c, "psych_report").await.id;
    let plan = upload(&v, &anna, c, "work_plan").await.id;
    let held = upload(&v, &anna, c, "work_plan").await.id;
    assert_eq!(pass(&v).await.destroyed, 0);

    // An identity copy goes 30 days after its upload, not a second before.
    clock.advance(Duration::days(30) - Duration::seconds(1));
    assert_eq!(pass(&v).await.destroyed, 0);
    clock.advance(Duration::seconds(1));
    let r = pass(&v).await;
    assert_eq!((r.destroyed, r.objects_deleted, r.object_failures), (1, 1, 0));
    let tomb = v.get_document(&anna, id_copy).await.unwrap();
    assert_eq!((tomb.state, tomb.destroyed_by.as_deref()), (DocumentState::Destroyed, Some("retention")));
    assert!(tomb.object_deleted_at.is_some());
    assert!(!readable(&v, id_copy).await);
    assert!(shredded(&v, id_copy).await, "the data key must be gone from the row");
    // The trajectory-bound ones wait for the end of the trajectory, however long.
    clock.advance(Duration::days(3000));
    assert_eq!(pass(&v).await.destroyed, 0);
    assert!(readable(&v, psych).await);

    // The trajectory ends: their clocks start. A policy change moves them.
    v.close_trajectory(&anna, c, serde_json::from_value(serde_json::json!({})).unwrap()).await.unwrap();
    let ended = clock.now();
    let req = serde_json::from_value(serde_json::json!({ "trigger": "trajectory_end", "period_days": 400 })).unwrap();
    let change = v.set_retention_policy(&anna, vault::domain::DocumentType::WorkPlan, req).await.unwrap();
    assert_eq!(change.dates_moved, 2);
    hold(&v, &anna, held, true).await;
    clock.set(ended + Duration::days(400) - Duration::seconds(1));
    assert_eq!(pass(&v).await.destroyed, 0);
    clock.set(ended + Duration::days(400));
    assert_eq!(pass(&v).await.destroyed, 1, "the unheld work plan");
    assert_eq!(state(&v, &anna, plan).await, DocumentState::Destroyed);
    assert_eq!(state(&v, &anna, held).await, DocumentState::Active, "held: kept");
    assert_eq!(state(&v, &anna, psych).await, DocumentState::Active, "two years for a psych report");
    clock.set(ended + Duration::days(731));
    assert_eq!(pass(&v).await.destroyed, 1);
    assert_eq!(state(&v, &anna, psych).await, DocumentState::Destroyed);
    clock.advance(Duration::days(365));
    assert_eq!(pass(&v).await.destroyed, 0, "a hold keeps it whatever its date");
    assert!(readable(&v, held).await);
    let counts = v.retention_counts().await.unwrap();
    assert_eq!((counts.due, counts.held), (0, 1));

    // Lifted, it is due again.
    hold(&v, &anna, held, false).await;
    assert_eq!(v.retention_counts().await.unwrap().due, 1);
    assert_eq!(pass(&v).await.destroyed, 1);
    assert_eq!(destroyed_events(&v, &anna).await, vec![id_copy, plan, psych, held]);
    let counts = v.retention_counts().await.unwrap();
    assert_eq!((counts.due, counts.held, counts.objects_queued), (0, 0, 0));
    assert!(v.verify_audit_chain().await.unwrap().ok);
}
on_both_backends!(clocks_policy_changes_and_holds_decide_when_the_purge_destroys, clocks_policies_and_holds);

async fn crash_between_steps(b: Backend) {
    let (clock, v, anna, c) = setup(&b).await;
    let mut due = Vec::new();
    for _ in 0..3 {
        due.push(upload(&v, &anna, c, "id_copy").await.id);
    }
    let held = upload(&v, &anna, c, "id_copy").await.id;
    hold(&v, &anna, held, true).await;
    clock.advance(Duration::days(31));
    // 1. A crash before the batch commits: nothing happened, all still due.
    v.faults().arm(FaultPoint::PurgeBeforeCommit, 1);
    assert!(v.purge_pass(&Silent).await.is_err());
    for id in &due {
        assert!(readable(&v, *id).await);
        assert!(!shredded(&v, *id).await);
    }
    assert_eq!(v.retention_counts().await.unwrap().due, 3);
    assert!(destroyed_events(&v, &anna).await.is_empty(), "a rolled-back batch leaves no event");
    assert!(readable(&v, held).await, "a held document stays readable");

    // 2. A crash after the keys went, before the objects: nothing readable,
    //    the objects queued.
    v.faults().arm(FaultPoint::PurgeAfterDestroy, 1);
    assert!(v.purge_pass(&Silent).await.is_err());
    for id in &due {
        assert!(!readable(&v, *id).await, "a destroyed document must not be readable");
        assert!(shredded(&v, *id).await, "its data key must be gone, although its object is still there");
        assert!(object_exists(&v, *id).await);
    }
    assert_eq!(v.retention_counts().await.unwrap().objects_queued, 3);
    assert!(readable(&v, held).await, "a held document stays readable");
    // The crashed batch held their objects' lease: another pass leaves
    // them alone until it runs out.
    assert_eq!(pass(&v).await, Default::default());
    assert!(object_exists(&v, due[0]).await);
    clock.advance(Duration::seconds(61));

    // 3. A crash after the store deleted them, before the queue heard: the
    //    next lease deletes them again (harmless), a minute later.
    v.faults().arm(FaultPoint::PurgeAfterObjectDelete, 1);
    assert!(v.purge_pass(&Silent).await.is_err());
    for id in &due {
        assert!(!object_exists(&v, *id).await);
    }
    assert_eq!(pass(&v).await, Default::default(), "leased objects wait for the lease to run out");
    clock.advance(Duration::seconds(61));
    let r = pass(&v).await;
    assert_eq!((r.destroyed, r.objects_deleted, r.object_failures), (0, 3, 0));
    for id in &due {
        assert!(v.get_document(&anna, *id).await.unwrap().object_deleted_at.is_some());
    }
    let counts = v.retention_counts().await.unwrap();
    assert_eq!((counts.due, counts.held, counts.objects_queued), (0, 1, 0));
    let mut events = destroyed_events(&v, &anna).await;
    events.sort();
    due.sort();
    assert_eq!(events, due, "one event per destruction, across the crashes");
    assert!(readable(&v, held).await, "a held document stays readable");
    assert!(v.verify_audit_chain().await.unwrap().ok);
}
on_both_backends!(a_crash_between_any_two_purge_steps_resumes_and_never_leaves_a_readable_copy, crash_between_steps);

async fn hold_during_purge(b: Backend) {
    let (clock, v, anna, c) = setup(&b).await;
    let doc = upload(&v, &anna, c, "id_copy").await.id;
    clock.advance(Duration::days(31));
    // A hold is being set (its transaction open, the row changed) when the
    // purge runs: the purge must not destroy the document, then or after.
    let mut tx = v.catalog_for_tests().begin(clock.now().timestamp_micros()).await.unwrap();
    assert!(tx.set_legal_hold(doc, Some(("klacht", anna.id()))).await.unwrap());
    let purge = {
        let v = v.clone();
        tokio::spawn(async move { v.purge_batch().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    tx.commit().await.unwrap();
    let r = purge.await.unwrap().unwrap();
    assert_eq!(r.destroyed, 0, "destroyed a document whose hold was being set: {r:?}");
    assert_eq!(pass(&v).await.destroyed, 0);
    assert!(readable(&v, doc).await);
    // And the destroying statement itself refuses a held row.
    let mut tx = v.catalog_for_tests().begin(clock.now().timestamp_micros()).await.unwrap();
    let how = vault::catalog::Destruction { by: "retention", reason: "test", due_at: None };
    assert!(tx.destroy_documents(&[doc], how, 0).await.unwrap().is_empty());
}
on_both_backends!(a_hold_set_while_the_purge_runs_always_wins, hold_during_purge);

async fn two_nodes(b: Backend) {
    let (clock, one, _, c) = setup(&b).await;
    // More than two batches' worth, written through the engine (fast).
    let n = 2 * vault::service::PURGE_BATCH as usize + 300;
    let ids = engine_docs(&one, c, n).await;
    clock.advance(Duration::days(31));
    // A second node: its own vault (own pool, own writer lock) on the same catalog.
    let two = Arc::new(open(&b, &clock).await);
    let (a, z) = tokio::join!(
        {
            let v = one.clone();
            async move { v.purge_pass(&Silent).await.unwrap() }
        },
        {
            let v = two.clone();
            async move { v.purge_pass(&Silent).await.unwrap() }
        }
    );
    assert_eq!(a.destroyed + z.destroyed, n as u64, "{a:?} {z:?}");
    assert_eq!(a.objects_deleted + z.objects_deleted, n as u64, "{a:?} {z:?}");
    let mut tx = one.catalog_for_tests().snapshot(0).await.unwrap();
    let all =
        vault::catalog::AuditFilter { action: Some("document.destroy".into()), limit: 10_000, ..Default::default() };
    let mut events: Vec<Uuid> =
        tx.audit_events_filtered(&all).await.unwrap().iter().map(|e| e.body.document_id.unwrap()).collect();
    drop(tx);
    events.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(events, want, "each document destroyed once, with one event");
    for id in ids.iter().take(20) {
        assert!(!object_exists(&one, *id).await);
    }
    assert!(one.verify_audit_chain().await.unwrap().ok);
}
on_both_backends!(two_nodes_purging_one_catalog_destroy_each_document_exactly_once, two_nodes);

// ----- a store that is down --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_store_during_a_purge_still_shreds_and_the_queue_finishes_later() {
    let b = support::services().await;
    let (clock, v, anna, c) = setup(&b).await;
    let mut due = Vec::new();
    for _ in 0..3 {
        due.push(upload(&v, &anna, c, "id_copy").await.id);
    }
    drop(v);
    clock.advance(Duration::days(31));

    // The same catalog, the store's endpoint a closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = config(&b);
    cfg.s3.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let dead = Vault::open(&cfg).await.unwrap().with_clock(clock.clone());
    let r = dead.purge_pass(&Silent).await.unwrap();
    assert_eq!((r.destroyed, r.objects_deleted, r.object_failures), (3, 0, 3));
    let counts = dead.retention_counts().await.unwrap();
    assert_eq!((counts.objects_queued, counts.objects_failing), (3, 3));
    drop(dead);

    // The store is back: the keys are gone already, the objects follow
    // once their retry time comes.
    let v = open(&b, &clock).await;
    for id in &due {
        assert!(!readable(&v, *id).await);
        assert!(shredded(&v, *id).await, "the keys go although the store is down");
        assert!(object_exists(&v, *id).await);
    }
    assert_eq!(pass(&v).await.objects_deleted, 0, "not before the retry time");
    clock.advance(Duration::seconds(6));
    let r = pass(&v).await;
    assert_eq!((r.destroyed, r.objects_deleted, r.object_failures), (0, 3, 0));
    for id in &due {
        assert!(!object_exists(&v, *id).await);
    }
    assert_eq!(v.retention_counts().await.unwrap().objects_queued, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_batch_claimed_by_one_node_is_skipped_by_another() {
    let b = support::services().await;
    let (clock, one, _, c) = setup(&b).await;
    let batch = vault::service::PURGE_BATCH as usize;
    engine_docs(&one, c, 2 * batch).await;
    clock.advance(Duration::days(31));
    // Node one has claimed a batch and not yet committed ...
    let now = clock.now().timestamp_micros();
    let mut claim = one.catalog_for_tests().begin(now).await.unwrap();
    let claimed = claim.due_documents(now, batch as i64, true).await.unwrap();
    assert_eq!(claimed.len(), batch);
    // ... node two does not wait for it: it takes the other batch.
    let two = open(&b, &clock).await;
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), two.purge_batch())
        .await
        .expect("a batch claimed by another node must be skipped, not waited for")
        .unwrap();
    assert_eq!(r.destroyed, batch as u64);
    drop(claim);
    for d in claimed.iter().take(50) {
        assert!(!shredded(&two, d.id).await, "a claimed document was destroyed by the other node");
    }
    assert_eq!(two.purge_batch().await.unwrap().destroyed, batch as u64, "released, the rest goes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_a_document_being_redeemed_is_skipped_until_the_redemption_commits() {
    let b = support::services().await;
    let (clock, v, anna, c) = setup(&b).await;
    let doc = upload(&v, &anna, c, "id_copy").await.id;
    clock.advance(Duration::days(31));
    // A download's redemption has decided on the row and not yet committed.
    let now = clock.now().timestamp_micros();
    let mut redemption = v.catalog_for_tests().begin(now).await.unwrap();
    assert_eq!(redemption.get_document_locked(doc).await.unwrap().state, DocumentState::Active);
    let r = tokio::time::timeout(std::time::Duration::from_secs(10), v.purge_batch())
        .await
        .expect("the purge must skip the row, not wait for it")
        .unwrap();
    assert_eq!(r.destroyed, 0, "destroyed while its download was being redeemed");
    redemption.commit().await.unwrap();
    assert_eq!(v.purge_batch().await.unwrap().destroyed, 1);
}
