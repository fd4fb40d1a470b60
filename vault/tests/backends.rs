//! The vault API against real backends: SQLite + local files, and
//! PostgreSQL + SeaweedFS (S3). Every test runs on both.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use support::Backend;
use uuid::Uuid;
use vault::audit::{ChainBreak, NewEvent};
use vault::catalog::{DocumentState, NewClientRow, SealedKind};
use vault::crypto::{self, CryptoError};
use vault::rekey::{RekeyOptions, Silent};
use vault::store::{ObjectName, S3Settings, StoreError};
use vault::{MasterKeySource, NewDocument, Vault, VaultConfig, VaultError};

/// Run one catalog call in a transaction of its own, committed, at `now`
/// (microseconds; default: the current time).
macro_rules! cat {
    ($v:expr, @$now:expr, $($call:tt)+) => {{
        let mut tx = $v.catalog_for_tests().begin($now).await.expect("begin");
        let r = tx.$($call)+.await;
        tx.commit().await.expect("commit");
        r
    }};
    ($v:expr, $($call:tt)+) => {
        cat!($v, @chrono::Utc::now().timestamp_micros(), $($call)+)
    };
}

fn config(b: &Backend) -> VaultConfig {
    VaultConfig {
        database_url: b.database_url.clone(),
        storage_url: b.storage_url.clone(),
        s3: s3_settings(b),
        master_key: MasterKeySource::File { path: b.dir.path().join("master.key"), create_if_missing: true },
    }
}

fn s3_settings(b: &Backend) -> S3Settings {
    S3Settings { endpoint: b.s3_endpoint.clone(), ..S3Settings::from_env() }
}

async fn open(b: &Backend) -> Vault {
    Vault::open(&config(b)).await.unwrap_or_else(|e| panic!("open vault on {}: {e}", b.name))
}

async fn new_client(v: &Vault, bsn: Option<&str>) -> Uuid {
    let id = Uuid::new_v4();
    let bsn_sealed = bsn.map(|b| v.keyring().seal_field("bsn", id, b.as_bytes()).unwrap());
    cat!(
        v,
        insert_client(&NewClientRow {
            id,
            first_name: "Jan".into(),
            initials: "J.".into(),
            last_name: "Jansen".into(),
            birth_date: "1980-01-01".into(),
            bsn_sealed,
            email: None,
            phone: None,
            address: None,
            postcode: None,
            city: None,
            commissioner: vault::domain::Commissioner::Uwv,
            coach_id: None,
        })
    )
    .unwrap();
    id
}

fn doc(client_id: Uuid) -> NewDocument {
    NewDocument {
        client_id,
        doc_type: "fml".into(),
        title: Some("Functionele mogelijkhedenlijst".into()),
        filename: "fml.pdf".into(),
        content_type: "application/pdf".into(),
        uploaded_by: None,
        retention_until: None,
        retention_reason: None,
        view_only: false,
        supersedes: None,
    }
}

fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn body(data: &[u8], chunk: usize) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let parts: Vec<Result<Bytes, std::io::Error>> =
        data.chunks(chunk.max(1)).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    futures::stream::iter(parts)
}

async fn read_all(v: &Vault, id: Uuid) -> Result<Vec<u8>, VaultError> {
    let (_, mut s) = v.read_document(id).await?;
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.extend_from_slice(&item?);
    }
    Ok(out)
}

async fn stored_object(v: &Vault, id: Uuid) -> Vec<u8> {
    let row = cat!(v, get_document(id)).unwrap();
    let mut s = v.store_for_tests().get_stream(&ObjectName::from_catalog(row.object_name)).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

// ---------------------------------------------------------------------------

async fn round_trip(b: Backend) {
    let v = open(&b).await;
    let client = new_client(&v, None).await;
    let seg = crypto::SEGMENT_SIZE;
    // Sizes around segment boundaries, one past the MiB where file:// blocks
    // and windows grow, and one that spans S3 multipart parts.
    for len in [0, 1, seg - 1, seg, seg + 1, 3 * seg, 16 * seg + 1, 9 * 1024 * 1024 + 17] {
        let data = content(len, len as u64 + 1);
        let row = v.put_document(doc(client), body(&data, 50_000)).await.unwrap();
        assert_eq!(row.state, DocumentState::Active);
        assert_eq!(row.size, Some(len as i64));
        assert_eq!(row.sha256.as_deref(), Some(hex::encode(Sha256::digest(&data)).as_str()));
        // The object name is random, the object is ciphertext of the documented size.
        assert!(!row.object_name.contains(&row.id.to_string()) && !row.object_name.contains(&client.to_string()));
        let obj = stored_object(&v, row.id).await;
        assert_eq!(obj.len() as u64, crypto::ciphertext_len(len as u64), "{} len {len}", b.name);
        if len >= 16 {
            assert!(!obj.windows(16).any(|w| w == &data[..16]), "plaintext visible in the object");
        }
        assert_eq!(read_all(&v, row.id).await.unwrap(), data, "{} len {len}", b.name);
    }
}
on_both_backends!(documents_round_trip_byte_for_byte, round_trip);

async fn tampered_objects_fail_to_decrypt(b: Backend) {
    let v = open(&b).await;
    let client = new_client(&v, None).await;
    let data = content(3 * crypto::SEGMENT_SIZE + 100, 7);

    // A flipped bit in the third segment: two segments come out, then an error.
    let row = v.put_document(doc(client), body(&data, 65536)).await.unwrap();
    let name = ObjectName::from_catalog(row.object_name.clone());
    let mut obj = stored_object(&v, row.id).await;
    let pos = crypto::HEADER_LEN + 2 * (crypto::SEGMENT_SIZE + crypto::TAG_LEN) + 10;
    obj[pos] ^= 0x40;
    v.store_for_tests().put_bytes(&name, Bytes::from(obj.clone())).await.unwrap();
    let (_, mut s) = v.read_document(row.id).await.unwrap();
    let mut released = Vec::new();
    let err = loop {
        match s.next().await {
            Some(Ok(c)) => released.extend_from_slice(&c),
            Some(Err(e)) => break e,
            None => panic!("tampered object decrypted without error"),
        }
    };
    assert!(matches!(err, VaultError::Crypto(CryptoError::Authentication { segment: 2 })), "{err:?}");
    assert_eq!(released, data[..2 * crypto::SEGMENT_SIZE], "only authenticated segments are released");

    // Truncated to a segment boundary: the missing last segment is noticed.
    obj[pos] ^= 0x40;
    let cut = crypto::HEADER_LEN + 2 * (crypto::SEGMENT_SIZE + crypto::TAG_LEN);
    v.store_for_tests().put_bytes(&name, Bytes::from(obj[..cut].to_vec())).await.unwrap();
    let err = read_all(&v, row.id).await.unwrap_err();
    assert!(
        matches!(err, VaultError::Crypto(CryptoError::Authentication { .. } | CryptoError::Truncated(_))),
        "{err:?}"
    );

    // Another document's object spliced in under this document's row.
    let other = v.put_document(doc(client), body(&data, 65536)).await.unwrap();
    let other_obj = stored_object(&v, other.id).await;
    v.store_for_tests().put_bytes(&name, Bytes::from(other_obj)).await.unwrap();
    let err = read_all(&v, row.id).await.unwrap_err();
    assert!(matches!(err, VaultError::Crypto(CryptoError::WrongDocument { .. })), "{err:?}");

    // A wrapped key copied from another document's row fails to unwrap
    // (the AAD binds the document id), and the other document is unharmed.
    v.catalog_for_tests()
        .execute_raw_for_tests(&format!(
            "UPDATE documents SET wrapped_key = (SELECT wrapped_key FROM documents WHERE id = '{}') WHERE id = '{}'",
            other.id, row.id
        ))
        .await
        .unwrap();
    let err = read_all(&v, row.id).await.unwrap_err();
    assert!(matches!(err, VaultError::Key(vault::keyring::KeyError::Unwrap { .. })), "{err:?}");
    assert_eq!(read_all(&v, other.id).await.unwrap(), data);
}
on_both_backends!(tampered_truncated_or_spliced_objects_fail, tampered_objects_fail_to_decrypt);

async fn wrong_master_key_is_refused(b: Backend) {
    let v = open(&b).await;
    let client = new_client(&v, Some("111222333")).await;
    let row = v.put_document(doc(client), body(b"geheim", 3)).await.unwrap();
    v.catalog_for_tests().close().await;
    drop(v);

    let mut cfg = config(&b);
    use base64::Engine;
    cfg.master_key = MasterKeySource::Env(base64::engine::general_purpose::STANDARD.encode([9u8; 32]));
    let err = Vault::open(&cfg).await.unwrap_err();
    assert!(matches!(err, VaultError::WrongMasterKey { version: 1 }), "{err}");
    assert!(err.to_string().contains("wrong master key"));

    // A missing key file on a catalog that has keys is refused, never replaced.
    let key_file = b.dir.path().join("master.key");
    let saved = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let err = Vault::open(&config(&b)).await.unwrap_err();
    assert!(matches!(err, VaultError::MissingKeyFile { .. }), "{err}");
    assert!(!key_file.exists(), "a new key must not be created over existing data");

    // With the right key everything is still there.
    std::fs::write(&key_file, saved).unwrap();
    let v = open(&b).await;
    assert_eq!(read_all(&v, row.id).await.unwrap(), b"geheim");
    let bsn = cat!(v, client_bsn_sealed(client)).unwrap().unwrap();
    assert_eq!(v.keyring().open_field("bsn", client, &bsn).unwrap().as_slice(), b"111222333");
}
on_both_backends!(wrong_or_missing_master_key_is_refused, wrong_master_key_is_refused);

async fn failed_uploads_leave_nothing(b: Backend) {
    let v = open(&b).await;
    let client = new_client(&v, None).await;
    // The body fails after 3 MiB (a client disconnecting mid-upload).
    let mut parts: Vec<Result<Bytes, std::io::Error>> = (0..3).map(|i| Ok(Bytes::from(content(1 << 20, i)))).collect();
    parts.push(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "client went away")));
    let err = v.put_document(doc(client), futures::stream::iter(parts)).await.unwrap_err();
    assert!(matches!(err, VaultError::Store(StoreError::Source(_))), "{err:?}");
    assert!(cat!(v, pending_documents_before(i64::MAX)).unwrap().is_empty(), "row left behind");

    // A crash after the row and object were written but before activation:
    // the sweeper removes both.
    let row = v.put_document(doc(client), body(b"partial", 7)).await.unwrap();
    v.catalog_for_tests()
        .execute_raw_for_tests(&format!("UPDATE documents SET state = 'pending' WHERE id = '{}'", row.id))
        .await
        .unwrap();
    assert!(matches!(v.read_document(row.id).await, Err(VaultError::NotFound(_))));
    assert_eq!(v.sweep_pending(Duration::from_secs(3600)).await.unwrap(), 0, "recent uploads are left alone");
    assert_eq!(v.sweep_pending(Duration::ZERO).await.unwrap(), 1);
    let name = ObjectName::from_catalog(row.object_name);
    assert!(matches!(v.store_for_tests().size(&name).await, Err(StoreError::NotFound(_))), "object left behind");
    assert!(matches!(cat!(v, get_document(row.id)), Err(vault::catalog::CatalogError::NotFound(_))));
}
on_both_backends!(failed_or_crashed_uploads_leave_nothing, failed_uploads_leave_nothing);

async fn destroy_shreds_key_then_object(b: Backend) {
    let v = open(&b).await;
    let client = new_client(&v, None).await;
    let row = v.put_document(doc(client), body(b"te vernietigen", 5)).await.unwrap();
    v.destroy_document(row.id, "retention").await.unwrap();
    let tomb = cat!(v, get_document(row.id)).unwrap();
    assert_eq!(tomb.state, DocumentState::Destroyed);
    assert!(tomb.wrapped_key.is_none(), "data key must be gone");
    assert_eq!(tomb.destroyed_by.as_deref(), Some("retention"));
    assert!(matches!(read_all(&v, row.id).await, Err(VaultError::Gone(_))));
    let name = ObjectName::from_catalog(row.object_name);
    assert!(matches!(v.store_for_tests().size(&name).await, Err(StoreError::NotFound(_))));
    // Idempotent: a purge resumed after a crash may call it again.
    v.destroy_document(row.id, "retention").await.unwrap();

    // A legal hold blocks destruction, in the same statement.
    let held = v.put_document(doc(client), body(b"bewaren", 7)).await.unwrap();
    v.catalog_for_tests()
        .execute_raw_for_tests(&format!("UPDATE documents SET legal_hold = TRUE WHERE id = '{}'", held.id))
        .await
        .unwrap();
    assert!(matches!(v.destroy_document(held.id, "retention").await, Err(VaultError::Held(_))));
    assert_eq!(read_all(&v, held.id).await.unwrap(), b"bewaren", "a held document stays readable");
}
on_both_backends!(destroy_shreds_the_key_then_the_object, destroy_shreds_key_then_object);

async fn rekey_resumes_after_a_crash(b: Backend) {
    let mut v = open(&b).await;
    let client = new_client(&v, Some("111222333")).await;
    let client2 = new_client(&v, Some("123456782")).await;
    let mut docs = Vec::new();
    for i in 0..6 {
        let data = content(1000 + i * 70_000, i as u64);
        let row = v.put_document(doc(client), body(&data, 4096)).await.unwrap();
        docs.push((row.id, data));
    }
    let objects_before: Vec<Vec<u8>> =
        futures::future::join_all(docs.iter().map(|(id, _)| stored_object(&v, *id))).await;
    assert_eq!(v.keyring().current_version(), 1);

    // Crash after 4 of 8 values.
    let err = v.rekey(&Silent, &RekeyOptions { batch_size: 3, interrupt_after: Some(4) }).await.unwrap_err();
    assert!(matches!(err, VaultError::Interrupted));
    assert_eq!(v.keyring().current_version(), 2);
    assert_eq!(v.count_below(2).await.unwrap(), 4);
    drop(v);

    // Everything is readable in the mixed state, after a restart.
    let mut v = open(&b).await;
    for (id, data) in &docs {
        assert_eq!(&read_all(&v, *id).await.unwrap(), data);
    }
    // Retiring the old version is refused while it is in use.
    assert!(matches!(v.retire_key_version(1).await, Err(VaultError::CannotRetire { .. })));

    let report = v.rekey(&Silent, &RekeyOptions::default()).await.unwrap();
    assert!(report.resumed && !report.added_version);
    assert_eq!(report.target_version, 2);
    assert_eq!(report.rewrapped, 4);
    assert_eq!(v.count_below(2).await.unwrap(), 0);
    for kind in SealedKind::ALL {
        assert_eq!(cat!(v, count_sealed_with(kind, 1)).unwrap(), 0);
    }
    // Objects were not rewritten.
    let objects_after: Vec<Vec<u8>> =
        futures::future::join_all(docs.iter().map(|(id, _)| stored_object(&v, *id))).await;
    assert!(objects_before == objects_after, "rekey must not touch objects");

    assert!(matches!(v.retire_key_version(2).await, Err(VaultError::CannotRetire { .. })));
    v.retire_key_version(1).await.unwrap();
    let key_file = std::fs::read_to_string(b.dir.path().join("master.key")).unwrap();
    assert!(!key_file.lines().any(|l| l.starts_with("1:")) && key_file.lines().any(|l| l.starts_with("2:")));
    drop(v);

    let mut v = open(&b).await;
    for (id, data) in &docs {
        assert_eq!(&read_all(&v, *id).await.unwrap(), data);
    }
    for (c, bsn) in [(client, "111222333"), (client2, "123456782")] {
        let sealed = cat!(v, client_bsn_sealed(c)).unwrap().unwrap();
        assert_eq!(sealed.version, 2);
        assert_eq!(v.keyring().open_field("bsn", c, &sealed).unwrap().as_slice(), bsn.as_bytes());
    }
    // A fresh rotation adds version 3.
    let report = v.rekey(&Silent, &RekeyOptions::default()).await.unwrap();
    assert!(report.added_version && !report.resumed);
    assert_eq!((report.target_version, report.rewrapped), (3, 8));
    assert!(cat!(v, verify_audit_chain()).unwrap().is_ok());
}
on_both_backends!(rekey_rewraps_everything_and_resumes_after_a_crash, rekey_resumes_after_a_crash);

async fn audit_chain(b: Backend) {
    let v = std::sync::Arc::new(open(&b).await);
    // Concurrent appends stay one unbroken chain.
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let v = v.clone();
            tokio::spawn(async move {
                let mut e = NewEvent::new("document.download", if i % 2 == 0 { "allowed" } else { "denied" });
                e.actor_id = Some(Uuid::new_v4());
                e.purpose = Some("guidance".into());
                e.details = serde_json::json!({ "i": i });
                cat!(v, append_audit(&e)).unwrap()
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (events, head) = cat!(v, verify_audit_chain()).unwrap().unwrap();
    assert_eq!(events, 41, "40 appended and the first start's key.register");
    assert_eq!(head.len(), 64);

    // The database itself refuses changes to the log.
    assert!(
        v.catalog_for_tests()
            .execute_raw_for_tests("UPDATE audit_events SET outcome = 'allowed' WHERE seq = 7")
            .await
            .is_err()
    );
    assert!(v.catalog_for_tests().execute_raw_for_tests("DELETE FROM audit_events WHERE seq = 7").await.is_err());

    // An attacker who drops the guard and edits an event is caught, by number.
    let drop_guard = if b.is_s3() {
        "DROP TRIGGER audit_events_no_update ON audit_events"
    } else {
        "DROP TRIGGER audit_events_no_update"
    };
    v.catalog_for_tests().execute_raw_for_tests(drop_guard).await.unwrap();
    v.catalog_for_tests()
        .execute_raw_for_tests("UPDATE audit_events SET outcome = 'tampered' WHERE seq = 7")
        .await
        .unwrap();
    assert_eq!(cat!(v, verify_audit_chain()).unwrap(), Err(ChainBreak::Altered { seq: 7 }));
}
on_both_backends!(audit_chain_is_append_only_and_verifiable, audit_chain);

// ----- faults that only the real services can show --------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_s3_endpoint_fails_fast_and_loses_nothing() {
    let b = support::services().await;
    let v = open(&b).await;
    let client = new_client(&v, None).await;
    let kept = v.put_document(doc(client), body(b"bewaard", 7)).await.unwrap();
    drop(v);

    // The same catalog, but the store's endpoint is a closed port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = config(&b);
    cfg.s3.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let v = Vault::open(&cfg).await.unwrap();
    let started = Instant::now();
    let err = v.put_document(doc(client), body(&content(100_000, 1), 10_000)).await.unwrap_err();
    assert!(matches!(err, VaultError::Store(StoreError::Backend { .. })), "{err:?}");
    assert!(err.to_string().contains("object store"), "{err}");
    assert!(v.store_for_tests().check().await.is_err());
    assert!(matches!(read_all(&v, kept.id).await, Err(VaultError::Store(_))));
    assert!(started.elapsed() < Duration::from_secs(90), "dead endpoint must not hang for minutes");
    assert!(cat!(v, pending_documents_before(i64::MAX)).unwrap().is_empty(), "failed upload left a row");
    drop(v);

    // The endpoint comes back: nothing was lost.
    let v = open(&b).await;
    assert_eq!(read_all(&v, kept.id).await.unwrap(), b"bewaard");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_database_is_a_clear_error() {
    let b = support::services().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut cfg = config(&b);
    cfg.database_url = format!("postgres://kluis@127.0.0.1:{port}/postgres");
    let err = Vault::open(&cfg).await.unwrap_err();
    assert!(matches!(err, VaultError::Catalog(vault::catalog::CatalogError::Connect { .. })), "{err:?}");
    assert!(err.to_string().contains("cannot connect to the PostgreSQL catalog"), "{err}");
    assert!(!b.dir.path().join("master.key").exists(), "no key may be created without a catalog");
}

// ----- the repository API the gateway builds on ------------------------------

async fn new_user(v: &Vault, username: &str, role: vault::domain::Role) -> Uuid {
    let id = Uuid::new_v4();
    let totp_secret = v.keyring().seal_field("totp", id, b"JBSWY3DPEHPK3PXP").unwrap();
    cat!(
        v,
        insert_user(&vault::catalog::NewUserRow {
            id,
            username: username.into(),
            display_name: username.to_uppercase(),
            role,
            password_hash: "$argon2id$placeholder".into(),
            totp_secret,
        })
    )
    .unwrap();
    id
}

async fn users_and_sessions(b: Backend) {
    use vault::catalog::{CatalogError, SessionRow};
    use vault::domain::Role;
    let v = open(&b).await;
    let anna = new_user(&v, "anna", Role::Coach).await;
    let mut tx = v.catalog_for_tests().begin(1).await.unwrap();
    let dup = tx
        .insert_user(&vault::catalog::NewUserRow {
            id: Uuid::new_v4(),
            username: "anna".into(),
            display_name: "Other".into(),
            role: Role::Office,
            password_hash: "x".into(),
            totp_secret: v.keyring().seal_field("totp", Uuid::new_v4(), b"x").unwrap(),
        })
        .await
        .unwrap_err();
    drop(tx);
    assert!(matches!(dup, CatalogError::Conflict("username")), "{dup:?}");
    let u = cat!(v, user_by_username("anna")).unwrap().unwrap();
    assert_eq!((u.id, u.role, u.active), (anna, Role::Coach, true));
    assert_eq!(v.keyring().open_field("totp", anna, &u.totp_secret).unwrap().as_slice(), b"JBSWY3DPEHPK3PXP");
    assert!(cat!(v, user_by_username("nobody")).unwrap().is_none());
    assert_eq!(cat!(v, count_users()).unwrap(), 1);

    // Lock-out after the threshold, per submitted name (it need not exist).
    for name in ["key-of-anna", "key-of-nobody"] {
        for i in 1..=5 {
            let at = cat!(v, @100 + i, record_login_failure(name, 5, 1_000 + i)).unwrap();
            assert_eq!((at.failures, at.locked_until.is_some()), (i, i == 5), "{name} {i}");
        }
        assert!(cat!(v, @500, login_locked(name)).unwrap());
        // The row lock the success path takes sees the lock too.
        assert_eq!(cat!(v, @500, login_lock(name)).unwrap(), Some(1_005));
        // After the lock ran out, the count starts over.
        assert!(!cat!(v, @2_000, login_locked(name)).unwrap());
        let at = cat!(v, @2_000, record_login_failure(name, 5, 3_000)).unwrap();
        assert_eq!((at.failures, at.locked_until), (1, None));
        cat!(v, @2_001, clear_login_failures(name)).unwrap();
        assert_eq!(cat!(v, @2_002, record_login_failure(name, 5, 3_000)).unwrap().failures, 1);
    }
    assert_eq!(cat!(v, @10_000_000, prune_login_attempts(9_000_000)).unwrap(), 2);
    // A TOTP step is accepted once, even by concurrent logins.
    let results = futures::future::join_all((0..8).map(|_| async { cat!(v, record_login_success(anna, 42)) })).await;
    assert_eq!(results.into_iter().filter(|r| *r.as_ref().unwrap()).count(), 1);
    assert!(!cat!(v, record_login_success(anna, 41)).unwrap(), "older steps are refused too");
    let u = cat!(v, user(anna)).unwrap();
    assert_eq!(u.totp_last_step, Some(42));

    cat!(v, set_user_role(anna, Role::FreelanceCoach)).unwrap();
    cat!(v, set_user_active(anna, false)).unwrap();
    let u = cat!(v, user(anna)).unwrap();
    assert_eq!((u.role, u.active), (Role::FreelanceCoach, false));
    assert_eq!(cat!(v, list_users()).unwrap().len(), 1);

    let s = SessionRow { token_hash: "h1".into(), user_id: anna, created_at: 1, last_seen_at: 1, expires_at: 99 };
    cat!(v, insert_session(&s)).unwrap();
    cat!(v, touch_session("h1", 5)).unwrap();
    assert_eq!(cat!(v, session("h1")).unwrap().unwrap().last_seen_at, 5);
    assert_eq!(cat!(v, delete_sessions_of(anna)).unwrap(), 1);
    assert!(cat!(v, session("h1")).unwrap().is_none());
}
on_both_backends!(users_lockout_totp_replay_and_sessions, users_and_sessions);

async fn download_tokens(b: Backend) {
    use vault::catalog::{NewDownloadToken, Redemption};
    use vault::domain::{Purpose, Role};
    let v = std::sync::Arc::new(open(&b).await);
    let user = new_user(&v, "olga", Role::Office).await;
    let client = new_client(&v, None).await;
    let d = v.put_document(doc(client), body(b"x", 1)).await.unwrap();
    let token = |hash: &str, expires_at| NewDownloadToken {
        token_hash: hash.into(),
        document_id: d.id,
        user_id: user,
        role: Role::Office,
        purpose: Purpose::Administration,
        created_at: 0,
        expires_at,
    };
    cat!(v, insert_download_token(&token("t1", 1_000))).unwrap();
    // Many concurrent redemptions: exactly one wins.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let v = v.clone();
            tokio::spawn(async move { cat!(v, redeem_download_token("t1", 500)).unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Redemption::Redeemed(r) => {
                won += 1;
                assert_eq!((r.document_id, r.purpose), (d.id, Purpose::Administration));
            }
            Redemption::Used(_) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won, 1);
    cat!(v, insert_download_token(&token("t2", 1_000))).unwrap();
    assert!(matches!(cat!(v, redeem_download_token("t2", 1_000)).unwrap(), Redemption::Expired(_)));
    assert!(matches!(cat!(v, redeem_download_token("nope", 1)).unwrap(), Redemption::Unknown));
    cat!(v, insert_download_token(&token("t3", 1_000))).unwrap();
    assert_eq!(cat!(v, void_tokens_of(user, 10)).unwrap(), 2, "t2 and t3 were unused");
    assert!(matches!(cat!(v, redeem_download_token("t3", 11)).unwrap(), Redemption::Voided(_)));
}
on_both_backends!(download_tokens_are_redeemed_once, download_tokens);

async fn clients_caseload_and_closing(b: Backend) {
    use vault::catalog::ClientStatus;
    use vault::domain::Role;
    let v = open(&b).await;
    let coach = new_user(&v, "carla", Role::Coach).await;
    let a = new_client(&v, Some("111222333")).await;
    let c2 = new_client(&v, None).await;
    cat!(v, set_client_coach(a, Some(coach))).unwrap();
    let row = cat!(v, client(a)).unwrap();
    assert_eq!((row.coach_id, row.status, row.restricted), (Some(coach), ClientStatus::Active, false));
    assert!(row.bsn_sealed.is_some());
    assert_eq!(cat!(v, list_clients(None, None)).unwrap().len(), 2);
    let mine = cat!(v, list_clients(None, Some(coach))).unwrap();
    assert_eq!(mine.iter().map(|c| c.id).collect::<Vec<_>>(), vec![a]);
    assert!(cat!(v, close_client(c2, 77)).unwrap());
    assert!(!cat!(v, close_client(c2, 78)).unwrap(), "closing twice is a no-op");
    let closed = cat!(v, list_clients(Some(ClientStatus::Closed), None)).unwrap();
    assert_eq!((closed.len(), closed[0].id, closed[0].ended_at), (1, c2, Some(77)));
    assert_eq!(cat!(v, list_clients(Some(ClientStatus::Active), None)).unwrap().len(), 1);
    assert!(matches!(cat!(v, client(Uuid::new_v4())), Err(vault::catalog::CatalogError::NotFound(_))));
}
on_both_backends!(clients_caseload_and_closing, clients_caseload_and_closing);

async fn running_vault_follows_a_rekey(b: Backend) {
    // Process A serves; process B rotates the master key meanwhile.
    let a = open(&b).await;
    let client = new_client(&a, Some("111222333")).await;
    let data = content(200_000, 3);
    let row = a.put_document(doc(client), body(&data, 10_000)).await.unwrap();
    let mut other = open(&b).await;
    let report = other.rekey(&Silent, &RekeyOptions::default()).await.unwrap();
    assert_eq!(report.target_version, 2);
    assert_eq!(a.keyring().current_version(), 1, "A has not looked yet");
    // A meets version 2 in the catalog, reloads the key file, and goes on.
    assert_eq!(read_all(&a, row.id).await.unwrap(), data);
    let sealed = cat!(a, client_bsn_sealed(client)).unwrap().unwrap();
    assert_eq!(sealed.version, 2);
    assert_eq!(a.keyring().open_field("bsn", client, &sealed).unwrap().as_slice(), b"111222333");
    assert_eq!(a.keyring().current_version(), 2);
    // A swapped key file is refused, not silently used.
    let path = b.dir.path().join("master.key");
    let text = std::fs::read_to_string(&path).unwrap();
    use base64::Engine;
    let fake = base64::engine::general_purpose::STANDARD.encode([5u8; 32]);
    let swapped: String =
        text.lines().map(|l| if l.starts_with("1:") { format!("1:{fake}\n") } else { format!("{l}\n") }).collect();
    std::fs::write(&path, swapped).unwrap();
    assert!(matches!(a.reload_keyring(), Err(VaultError::WrongMasterKey { version: 1 })));
}
on_both_backends!(a_running_vault_follows_a_rekey_by_another_process, running_vault_follows_a_rekey);
