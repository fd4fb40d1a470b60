//! The service layer against real backends (SQLite + files, PostgreSQL +
//! SeaweedFS): every change commits with its audit event or not at all, and
//! the races and crashes a reviewer found cannot lose data or rules.

#[path = "../../tests/support/mod.rs"]
mod support;
#[path = "../../tests/support/vault.rs"]
mod vault_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use support::Backend;
use uuid::Uuid;
use vault::Vault;
use vault::domain::{Commissioner, DocumentType, Role};
use vault::faults::FaultPoint;
use vault::rekey::{RekeyOptions, Silent};
use vault::service::{
    AuditQuery, Caller, ClientChanges, ClientPageQuery, ErrorCode, NewClient, NewCorrection, NewSubstitution, SetCoach,
    UploadAbort, UploadFields, UserPatch,
};
use vault_support::{config, signed_in};

async fn open(b: &Backend) -> Vault {
    Vault::open(&config(b)).await.unwrap_or_else(|e| panic!("open vault on {}: {e}", b.name))
}

fn new_client(last_name: &str) -> NewClient {
    serde_json::from_value(serde_json::json!({
        "first_name": "Jan", "initials": "J.", "last_name": last_name, "birth_date": "1980-02-03",
        "bsn": "111222333", "commissioner": Commissioner::Uwv,
    }))
    .unwrap()
}

async fn events(v: &Vault, by: &Caller, action: &str) -> Vec<vault::service::AuditEntry> {
    let q = AuditQuery { action: Some(action.into()), limit: Some(1000), ..Default::default() };
    v.audit_events(by, q).await.unwrap()
}

fn body(data: &'static [u8]) -> impl futures::Stream<Item = Result<Bytes, UploadAbort>> + Send + 'static {
    futures::stream::iter(data.chunks(7).map(|c| Ok(Bytes::from_static(c))).collect::<Vec<_>>())
}

async fn upload(v: &Vault, by: &Caller, client: Uuid, data: &'static [u8]) -> vault::service::Document {
    let fields = UploadFields {
        doc_type: Some("work_plan".into()),
        title: Some("Plan".into()),
        filename: Some("plan.txt".into()),
        ..Default::default()
    };
    let mut permit = v.authorize_upload(by, client).await.unwrap();
    v.upload_fields(&mut permit, fields).await.unwrap();
    v.store_upload(permit, "plan.txt".into(), "text/plain; charset=utf-8", body(data)).await.unwrap()
}

// ---------------------------------------------------------------------------

async fn change_and_event_together(b: Backend) {
    let v = open(&b).await;
    let anna = signed_in(&v, "anna", Role::Management).await;
    // A failure between the change and its event: neither is kept.
    v.faults().arm(FaultPoint::BeforeAudit, 1);
    let err = v.create_client(&anna, new_client("Jansen")).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Internal);
    assert!(v.list_clients(&anna, None).await.unwrap().is_empty(), "the client must not exist without its event");
    assert!(events(&v, &anna, "client.create").await.is_empty());
    // Without the fault: both.
    let c = v.create_client(&anna, new_client("Jansen")).await.unwrap();
    let created = events(&v, &anna, "client.create").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].client_id, Some(c.id));

    // The same for a user change: the role stays until the event is written.
    let olga = signed_in(&v, "olga", Role::Office).await;
    v.faults().arm(FaultPoint::BeforeAudit, 1);
    let patch = UserPatch { role: Some(Role::Coach), active: None };
    assert!(v.update_user(&anna, olga.id(), patch).await.is_err());
    let users = v.list_users(&anna).await.unwrap();
    assert_eq!(users.iter().find(|u| u.id == olga.id()).unwrap().role, Role::Office);
    assert!(events(&v, &anna, "user.update").await.is_empty());
    // A denial is audited exactly once, by the step that decides.
    let err = v.update_user(&olga, anna.id(), UserPatch { role: Some(Role::Coach), active: None }).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);
    let denied = events(&v, &anna, "user.update").await;
    assert_eq!(denied.len(), 1);
    assert_eq!((denied[0].outcome.as_str(), denied[0].actor_id), ("denied", Some(olga.id())));
}
on_both_backends!(every_change_commits_with_its_audit_event_or_not_at_all, change_and_event_together);

async fn upload_ack_lost(b: Backend) {
    let v = open(&b).await;
    let anna = signed_in(&v, "anna", Role::Management).await;
    let c = v.create_client(&anna, new_client("Jansen")).await.unwrap();
    // The activation commits, but its acknowledgement is lost: the upload
    // is found active and kept, never deleted.
    v.faults().arm(FaultPoint::ActivationAckLost, 1);
    let doc = upload(&v, &anna, c.id, b"Afspraken voor de komende maanden.\n").await;
    let (_, mut content) = v.read_document(doc.id).await.unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = content.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(got, b"Afspraken voor de komende maanden.\n");
    let uploads = events(&v, &anna, "document.upload").await;
    assert_eq!(uploads.len(), 1, "the activation and its event committed together");
    assert_eq!(uploads[0].document_id, Some(doc.id));
}
on_both_backends!(a_lost_activation_acknowledgement_keeps_the_document, upload_ack_lost);

async fn sweeper_claims(b: Backend) {
    let v = open(&b).await;
    let anna = signed_in(&v, "anna", Role::Management).await;
    let c = v.create_client(&anna, new_client("Jansen")).await.unwrap();
    let doc = upload(&v, &anna, c.id, b"nog niet klaar\n").await;
    // Make it an upload that was interrupted two days ago.
    let old = chrono::Utc::now().timestamp_micros() - 2 * 86_400_000_000;
    v.catalog_for_tests()
        .execute_raw_for_tests(&format!(
            "UPDATE documents SET state = 'pending', size = NULL, uploaded_at = {old} WHERE id = '{}'",
            doc.id
        ))
        .await
        .unwrap();
    // The sweeper crashes after claiming it: the row can no longer be activated ...
    v.faults().arm(FaultPoint::SweepAfterClaim, 1);
    assert!(v.sweep_pending(Duration::from_secs(86_400)).await.is_err());
    let mut tx = v.catalog_for_tests().begin(chrono::Utc::now().timestamp_micros()).await.unwrap();
    assert!(tx.activate_document(doc.id, 15, "00").await.is_err(), "a claimed upload must not become active");
    drop(tx);
    // ... and the next sweep finishes the job.
    assert_eq!(v.sweep_pending(Duration::from_secs(86_400)).await.unwrap(), 1);
    assert!(v.read_document(doc.id).await.is_err());
}
on_both_backends!(the_sweeper_claims_a_pending_upload_before_deleting_its_object, sweeper_claims);

async fn verify_in_one_snapshot(b: Backend) {
    let v = Arc::new(open(&b).await);
    let anna = signed_in(&v, "anna", Role::Management).await;
    // Appends go on while the chain is verified, again and again: never a false break.
    let writer = {
        let (v, anna) = (v.clone(), anna.clone());
        tokio::spawn(async move {
            for i in 0..40 {
                v.create_client(&anna, new_client(&format!("Client {i}"))).await.unwrap();
            }
        })
    };
    while !writer.is_finished() {
        let r = v.verify_audit_chain().await.unwrap();
        assert!(r.ok, "{r:?}");
    }
    writer.await.unwrap();
    let r = v.verify_audit_chain().await.unwrap();
    let events = r.events.unwrap();
    // Removing events from the end, behind the triggers' back, is detected.
    let drop_guard = if b.is_s3() {
        "DROP TRIGGER audit_events_no_update ON audit_events"
    } else {
        "DROP TRIGGER audit_events_no_delete"
    };
    let cat = v.catalog_for_tests();
    cat.execute_raw_for_tests(drop_guard).await.unwrap();
    cat.execute_raw_for_tests(&format!("DELETE FROM audit_events WHERE seq > {}", events - 3)).await.unwrap();
    let r = v.verify_audit_chain().await.unwrap();
    assert!(!r.ok);
    assert!(r.error.unwrap().contains(&format!("head says {events} events")), "truncation must be named");
}
on_both_backends!(audit_verification_sees_one_snapshot_and_detects_truncation, verify_in_one_snapshot);

async fn tombstones(b: Backend) {
    let v = open(&b).await;
    let anna = signed_in(&v, "anna", Role::Management).await;
    let c = v.create_client(&anna, new_client("Jansen")).await.unwrap();
    let doc = upload(&v, &anna, c.id, b"Rapportage over de voortgang\n").await;
    v.destroy_document(doc.id, "retention").await.unwrap();
    let tomb = v.get_document(&anna, doc.id).await.unwrap();
    assert_eq!(tomb.state, vault::domain::DocumentState::Destroyed);
    assert_eq!((tomb.id, tomb.client_id, tomb.doc_type), (doc.id, c.id, DocumentType::WorkPlan));
    assert_eq!(tomb.destroyed_by.as_deref(), Some("retention"));
    assert!(tomb.destroyed_at.is_some());
    assert_eq!((tomb.title, tomb.filename, tomb.content_type), (None, None, None), "no names on a tombstone");
    assert_eq!((tomb.size, tomb.sha256), (None, None), "no size or hash on a tombstone");
    // Opening it is a policy decision, audited: 410 for whoever may see it.
    let req = serde_json::from_value(serde_json::json!({ "purpose": "assignment" })).unwrap();
    let err = v.issue_download_token(&anna, doc.id, req).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Gone);
    let issued = events(&v, &anna, "download_token.issue").await;
    assert_eq!((issued.len(), issued[0].outcome.as_str()), (1, "denied"));
}
on_both_backends!(a_tombstone_keeps_only_what_the_spec_lists, tombstones);

async fn last_manager(b: Backend) {
    let v = Arc::new(open(&b).await);
    let a = signed_in(&v, "anna", Role::Management).await;
    let bert = signed_in(&v, "bert", Role::Management).await;
    // Two managers demote each other at the same moment: one wins.
    let demote = |by: &Caller, whom: &Caller| {
        let (v, by, whom) = (v.clone(), by.clone(), whom.id());
        tokio::spawn(
            async move { v.update_user(&by, whom, UserPatch { role: Some(Role::Office), active: None }).await },
        )
    };
    let one = demote(&a, &bert);
    let two = demote(&bert, &a);
    let results = [one.await.unwrap(), two.await.unwrap()];
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    let refused = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(matches!(refused.code, ErrorCode::LastManager | ErrorCode::Unauthorized), "{refused:?}");
    let winner = if results[0].is_ok() { &a } else { &bert };
    let managers = v.list_users(winner).await.unwrap().into_iter().filter(|u| u.role == Role::Management).count();
    assert_eq!(managers, 1, "exactly one active manager remains");
}
on_both_backends!(the_last_manager_stays_when_two_demote_each_other, last_manager);

async fn substitution_and_reads_audited(b: Backend) {
    let v = open(&b).await;
    let anna = signed_in(&v, "anna", Role::Management).await;
    let absent = signed_in(&v, "carla", Role::Coach).await;
    let sub = signed_in(&v, "sem", Role::Coach).await;
    let c = v.create_client(&anna, new_client("Jansen")).await.unwrap();
    v.assign_coach(&anna, c.id, SetCoach { coach_id: absent.id() }).await.unwrap();
    let now = chrono::Utc::now();
    let new = NewSubstitution {
        absent_coach_id: absent.id(),
        substitute_id: sub.id(),
        from: now - chrono::Duration::hours(1),
        until: now + chrono::Duration::hours(1),
        reason: vault::domain::SubstitutionReason::Sickness,
    };
    v.register_substitution(&anna, new).await.unwrap();
    // An upload through a substitution is on behalf of the absent coach.
    let doc = upload(&v, &sub, c.id, b"Verslag van het gesprek\n").await;
    let up = events(&v, &anna, "document.upload").await;
    assert_eq!((up[0].document_id, up[0].on_behalf_of), (Some(doc.id), Some(absent.id())));
    // A coach may not set a retention date: a policy decision, audited.
    let fields = UploadFields {
        doc_type: Some("work_plan".into()),
        retention_until: Some("2030-01-01".into()),
        ..Default::default()
    };
    let mut permit = v.authorize_upload(&sub, c.id).await.unwrap();
    let err = v.upload_fields(&mut permit, fields).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);
    let up = events(&v, &anna, "document.upload").await;
    assert_eq!((up[0].outcome.as_str(), up[0].actor_id), ("denied", Some(sub.id())));
    // Listing clients is audited: who and how many, never the data.
    assert_eq!(v.list_clients(&sub, None).await.unwrap().len(), 1);
    let listed = events(&v, &anna, "client.list").await;
    assert_eq!(listed[0].actor_id, Some(sub.id()));
    assert_eq!(listed[0].details["count"], 1);
    assert!(!listed[0].details.to_string().contains("Jansen"));
    // A missing id and an id outside the scope take the same path: both audited denials.
    let stranger = v.create_client(&anna, new_client("Pietersen")).await.unwrap();
    let missing = Uuid::new_v4();
    for id in [stranger.id, missing] {
        assert_eq!(v.get_client(&sub, id).await.unwrap_err().code, ErrorCode::NotFound);
    }
    let reads = events(&v, &anna, "client.read").await;
    let denied: Vec<_> = reads.iter().filter(|e| e.outcome == "denied").map(|e| e.client_id).collect();
    assert_eq!(denied, vec![Some(missing), Some(stranger.id)]);
}
on_both_backends!(substitution_uploads_and_client_lists_are_audited, substitution_and_reads_audited);

async fn key_file_once(b: Backend) {
    // Two processes start on an empty data directory at the same moment.
    let (c1, c2) = (config(&b), config(&b));
    let (one, two) = tokio::join!(Vault::open(&c1), Vault::open(&c2));
    let (one, two) = (one.unwrap(), two.unwrap());
    assert_eq!(one.keyring().check_value(1).unwrap(), two.keyring().check_value(1).unwrap());
    let text = std::fs::read_to_string(b.dir.path().join("master.key")).unwrap();
    assert_eq!(text.lines().filter(|l| l.starts_with("1:")).count(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(b.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary key files left: {leftovers:?}");
}
on_both_backends!(two_processes_on_an_empty_data_directory_share_one_master_key, key_file_once);

async fn retire_after_rekey(b: Backend) {
    // A server runs with key version 1; another process rotates the key and
    // retires version 1 while that server keeps working.
    let server = open(&b).await;
    let anna = signed_in(&server, "anna", Role::Management).await;
    let before = server.create_client(&anna, new_client("Voor")).await.unwrap();
    let mut operator = open(&b).await;
    assert_eq!(operator.rekey(&Silent, &RekeyOptions::default()).await.unwrap().target_version, 2);
    assert_eq!(server.keyring().current_version(), 1, "the server has not looked yet");
    // The server seals new values under version 2, not under the old one.
    let after = server.create_client(&anna, new_client("Na")).await.unwrap();
    let doc = upload(&server, &anna, after.id, b"Nieuw document na de rotatie\n").await;
    operator.retire_key_version(1).await.unwrap();
    drop(operator);
    drop(server);
    // After a restart (the key file no longer holds version 1) everything reads.
    let v = open(&b).await;
    let bert = signed_in(&v, "bert", Role::Management).await;
    for id in [before.id, after.id] {
        assert_eq!(v.reveal_bsn(&bert, id).await.unwrap().bsn.as_deref(), Some("111222333"));
    }
    drop(anna);
    let (_, mut content) = v.read_document(doc.id).await.unwrap();
    assert!(content.next().await.unwrap().is_ok());
}
on_both_backends!(retiring_a_key_after_rekey_with_a_server_running_loses_nothing, retire_after_rekey);

/// The last names on one page of the running trajectories whose last name
/// starts with `name`, sorted here (the order of accented names depends on
/// the database's collation).
async fn names_starting(v: &Vault, by: &Caller, name: &str) -> Vec<String> {
    let q = ClientPageQuery {
        status: Some(vault::domain::ClientStatus::Active),
        name: Some(name.into()),
        limit: 50,
        offset: 0,
    };
    let mut names: Vec<String> =
        v.list_clients_page(by, q).await.unwrap().clients.into_iter().map(|c| c.last_name).collect();
    names.sort();
    names
}

async fn name_filter_folds(b: Backend) {
    let v = open(&b).await;
    let anna = signed_in(&v, "anna", Role::Management).await;
    for name in ["Özdemir", "Ozturk", "ÇELİK", "Celik-Aydın", "Jansen", "100%"] {
        v.create_client(&anna, new_client(name)).await.unwrap();
    }
    assert_eq!(names_starting(&v, &anna, "ozdemir").await, ["Özdemir"], "typed without the accent");
    assert_eq!(names_starting(&v, &anna, "ÖZD").await, ["Özdemir"], "upper case, with the accent");
    assert_eq!(names_starting(&v, &anna, "oz").await, ["Ozturk", "Özdemir"]);
    assert_eq!(names_starting(&v, &anna, "çelik").await, ["Celik-Aydın", "ÇELİK"]);
    assert_eq!(names_starting(&v, &anna, "celik-aydin").await, ["Celik-Aydın"]);
    assert_eq!(names_starting(&v, &anna, "100%").await, ["100%"]);
    assert_eq!(names_starting(&v, &anna, "1%").await, Vec::<String>::new(), "a % is a character, not a wildcard");

    // A correction folds the new name.
    let jansen = v.list_clients(&anna, None).await.unwrap().into_iter().find(|c| c.last_name == "Jansen").unwrap();
    let changes = ClientChanges { last_name: Some("Ünal".into()), ..Default::default() };
    let fix = NewCorrection { changes, reason: "naam verkeerd gespeld".into(), request_id: None };
    v.correct_client(&anna, jansen.id, fix).await.unwrap();
    assert_eq!(names_starting(&v, &anna, "unal").await, ["Ünal"]);
    assert!(names_starting(&v, &anna, "jans").await.is_empty());

    // Rows from before the folded column get it when the catalog opens.
    v.catalog_for_tests().execute_raw_for_tests("UPDATE clients SET last_name_key = NULL").await.unwrap();
    v.catalog_for_tests().close().await;
    drop(v);
    let v = open(&b).await;
    let anna = signed_in(&v, "anna2", Role::Management).await;
    assert_eq!(names_starting(&v, &anna, "ozdemir").await, ["Özdemir"]);
    assert_eq!(names_starting(&v, &anna, "unal").await, ["Ünal"]);
}
on_both_backends!(the_name_filter_ignores_case_and_accents_on_old_and_new_rows, name_filter_folds);
