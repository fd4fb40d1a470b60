//! End-to-end tests of the real `kluis` binary: `serve` over HTTP, `rekey`,
//! `key`, `audit verify`, on SQLite + files and on PostgreSQL + SeaweedFS.

#[path = "support/kluis.rs"]
mod kluis_proc;
mod support;

use std::time::Duration;

use bytes::Bytes;
use kluis_proc::{KLUIS, Server, kluis, run, text, vault_config};
use support::Backend;
use tokio::process::Command;
use uuid::Uuid;
use vault::catalog::NewClientRow;
use vault::{NewDocument, Vault};

/// Put `n` small documents (and a client with a BSN) through the library.
async fn seed(b: &Backend, n: usize) -> Vec<(Uuid, Vec<u8>)> {
    let v = Vault::open(&vault_config(b)).await.unwrap();
    let client = Uuid::new_v4();
    let bsn = v.keyring().seal_field("bsn", client, b"111222333").unwrap();
    let mut tx = v.catalog_for_tests().begin(chrono::Utc::now().timestamp_micros()).await.unwrap();
    tx.insert_client(&NewClientRow {
        id: client,
        first_name: "Fatima".into(),
        initials: "F.".into(),
        last_name: "El Amrani".into(),
        birth_date: "1990-05-17".into(),
        bsn_sealed: Some(bsn),
        email: None,
        phone: None,
        address: None,
        postcode: None,
        city: None,
        commissioner: vault::domain::Commissioner::Municipality,
        coach_id: None,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut docs = Vec::new();
    for i in 0..n {
        let data = format!("werkplan {i} ").repeat(1000 + i * 500).into_bytes();
        let chunks: Vec<Result<Bytes, std::io::Error>> = vec![Ok(Bytes::from(data.clone()))];
        let row = v
            .put_document(
                NewDocument {
                    client_id: client,
                    doc_type: "work_plan".into(),
                    title: None,
                    filename: "werkplan.txt".into(),
                    content_type: "text/plain".into(),
                    uploaded_by: None,
                    retention_until: None,
                    retention_reason: None,
                    view_only: false,
                    supersedes: None,
                },
                futures::stream::iter(chunks),
            )
            .await
            .unwrap();
        docs.push((row.id, data));
    }
    v.catalog_for_tests().close().await;
    docs
}

async fn assert_readable(b: &Backend, docs: &[(Uuid, Vec<u8>)]) {
    use futures::StreamExt;
    let v = Vault::open(&vault_config(b)).await.unwrap();
    for (id, data) in docs {
        let (_, mut s) = v.read_document(*id).await.unwrap();
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        assert_eq!(&out, data);
    }
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn embedded_default_starts_with_no_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(KLUIS);
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).current_dir(dir.path()).kill_on_drop(true);
    let s = Server::start(c, dir.path().join("serve.log")).await.unwrap();
    assert_eq!(s.get("/healthz").await, (200, serde_json::json!({"status": "ok"})));
    let (code, body) = s.get("/readyz").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["checks"], serde_json::json!({"database": "ok", "storage": "ok"}));

    let data = dir.path().join("kluis-data");
    assert!(data.join("kluis.db").is_file());
    assert!(data.join("objects").is_dir());
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data.join("master.key")), 0o600, "key file must be private");
    assert_eq!(mode(&data), 0o700, "data directory must be private");
    assert_eq!(mode(&data.join("index")), 0o700, "the search index (client names) must be private");
    assert!(s.log().contains("created a new master key file"), "a warning about the key file: {}", s.log());
    assert!(s.log().contains("kluis user add --username"), "how to create the first user: {}", s.log());
}

async fn serves_and_reports_ready(b: Backend) {
    let s = Server::start(kluis(&b), b.dir.path().join("serve.log")).await.unwrap();
    let (code, body) = s.get("/readyz").await;
    assert_eq!(code, 200, "{body} {}", s.log());
    assert_eq!(s.get("/healthz").await.0, 200);
}
on_both_backends!(serve_answers_health_and_readiness, serves_and_reports_ready);

#[tokio::test]
async fn readyz_is_503_while_the_store_is_down() {
    let b = support::services().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut c = kluis(&b);
    c.env("KLUIS_S3_ENDPOINT", format!("http://127.0.0.1:{port}"));
    let s = Server::start(c, b.dir.path().join("serve.log")).await.unwrap();
    let (code, body) = s.get("/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(body["checks"], serde_json::json!({"database": "ok", "storage": "unavailable"}));
    assert_eq!(s.get("/healthz").await.0, 200, "alive even when not ready");
}

#[tokio::test]
async fn readyz_follows_the_database_going_away_and_coming_back() {
    let b = support::services().await;
    let s = Server::start(kluis(&b), b.dir.path().join("serve.log")).await.unwrap();
    assert_eq!(s.get("/readyz").await.0, 200);
    let db = b.database_url.rsplit('/').next().unwrap().to_string();
    let admin = std::env::var("KLUIS_TEST_DATABASE_URL").unwrap();
    let exec = |sql: String| {
        let admin = admin.clone();
        async move {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        }
    };
    // Rename the database away (forcing its connections closed), as if the
    // server vanished. The server's background work (the search follower)
    // may connect again between the two statements: try a few times.
    let mut renamed = false;
    for _ in 0..20 {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        let kill = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'");
        sqlx::query(sqlx::AssertSqlSafe(kill)).execute(&mut conn).await.unwrap();
        let rename = format!("ALTER DATABASE {db} RENAME TO {db}_away");
        if sqlx::query(sqlx::AssertSqlSafe(rename)).execute(&mut conn).await.is_ok() {
            renamed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(renamed, "the database could not be renamed away");
    let (code, body) = s.get("/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["checks"]["database"], "unavailable");
    exec(format!("ALTER DATABASE {db}_away RENAME TO {db}")).await;
    let mut ready = false;
    for _ in 0..50 {
        if s.get("/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "ready again once the database is back: {}", s.log());
}

async fn wrong_master_key_stops_serve(b: Backend) {
    seed(&b, 1).await;
    let mut c = kluis(&b);
    use base64::Engine;
    c.env("KLUIS_MASTER_KEY", base64::engine::general_purpose::STANDARD.encode([7u8; 32]));
    let err = Server::start(c, b.dir.path().join("serve.log")).await.err().expect("must not start");
    assert!(err.contains("wrong master key"), "{err}");
    assert!(!err.contains(&base64::engine::general_purpose::STANDARD.encode([7u8; 32])), "key leaked into the log");
}
on_both_backends!(serve_refuses_a_wrong_master_key, wrong_master_key_stops_serve);

async fn rekey_cli(b: Backend) {
    let docs = seed(&b, 5).await;
    // 5 data keys + 1 BSN under version 1; crash after 2 re-wraps.
    let mut c = kluis(&b);
    c.args(["rekey", "--batch-size", "1", "--crash-after", "2"]);
    let out = run(c).await;
    assert!(!out.status.success(), "the crash must show: {}", text(&out.stderr));

    let mut c = kluis(&b);
    c.args(["key", "list"]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["version"], 1);
    assert_eq!(list[0]["uses"]["document_keys"], 3);
    assert_eq!(list[0]["uses"]["client_bsns"], 1);
    assert_eq!(list[1]["current"], true);
    assert_readable(&b, &docs).await;

    let mut c = kluis(&b);
    c.args(["key", "retire", "1"]);
    let out = run(c).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("still wrapped"), "{}", text(&out.stderr));

    let mut c = kluis(&b);
    c.arg("rekey");
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"target_version": 2, "added_version": false, "resumed": true, "rewrapped": 4})
    );

    let mut c = kluis(&b);
    c.args(["key", "retire", "1"]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key_file = std::fs::read_to_string(b.dir.path().join("data/master.key")).unwrap();
    assert!(!key_file.lines().any(|l| l.starts_with("1:")));
    assert_readable(&b, &docs).await;

    let mut c = kluis(&b);
    c.args(["audit", "verify"]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    // key.register (version 1, at the first start), key.add, key.rekey (resumed), key.retire
    assert_eq!(v["events"], 4);
}
on_both_backends!(rekey_cli_resumes_after_a_crash_and_retires_the_old_key, rekey_cli);

async fn audit_verify_cli(b: Backend) {
    seed(&b, 1).await;
    for _ in 0..3 {
        let mut c = kluis(&b);
        c.arg("rekey");
        assert!(run(c).await.status.success());
    }
    let mut c = kluis(&b);
    c.args(["audit", "verify"]);
    let out = run(c).await;
    assert!(out.status.success());
    // key.register, then key.add and key.rekey three times
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["events"], 7);

    // Someone with database access rewrites event 4.
    let v = Vault::open(&vault_config(&b)).await.unwrap();
    let drop_guard = if b.is_s3() {
        "DROP TRIGGER audit_events_no_update ON audit_events"
    } else {
        "DROP TRIGGER audit_events_no_update"
    };
    v.catalog_for_tests().execute_raw_for_tests(drop_guard).await.unwrap();
    v.catalog_for_tests().execute_raw_for_tests("UPDATE audit_events SET details = '{}' WHERE seq = 4").await.unwrap();
    v.catalog_for_tests().close().await;

    let mut c = kluis(&b);
    c.args(["audit", "verify"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("event 4"), "{}", text(&out.stderr));
}
on_both_backends!(audit_verify_exits_non_zero_naming_the_first_bad_event, audit_verify_cli);

/// A restart may find the old process still holding the index directory:
/// `serve` waits for it (up to 15 s) instead of failing, then starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_waits_for_an_index_another_process_still_holds() {
    let b = support::embedded().await;
    let dir = b.dir.path().join("data/index");
    let (held, _) = vault::search::Index::open(&dir).expect("hold the index directory");
    let holder = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_secs(2));
        drop(held);
    });
    let started = std::time::Instant::now();
    let server = Server::start(kluis(&b), b.dir.path().join("serve.log")).await.expect("serve starts once it is free");
    assert!(started.elapsed() >= Duration::from_secs(2), "serve must wait for the holder, not take the directory");
    assert!(server.log().contains("search index held by another process; waiting"), "{}", server.log());
    holder.await.unwrap();
    let (code, _) = server.get("/readyz").await;
    assert_eq!(code, 200, "{}", server.log());
}

/// The chain's head is anchored in the document store by the server; when
/// events are removed from the log's end (and its head reset, so the rest
/// verifies on its own), `kluis audit verify` finds it against the anchor.
async fn audit_anchor_cli(b: Backend) {
    seed(&b, 1).await;
    for _ in 0..3 {
        let mut c = kluis(&b);
        c.arg("rekey");
        assert!(run(c).await.status.success());
    }
    // A server anchors the head (7 events) within its interval.
    let mut c = kluis(&b);
    c.env("KLUIS_AUDIT_ANCHOR_INTERVAL", "200ms").env("KLUIS_METRICS", "off");
    let server = Server::start(c, b.dir.path().join("serve.log")).await.unwrap();
    let mut report = serde_json::Value::Null;
    for _ in 0..100 {
        let mut c = kluis(&b);
        c.args(["audit", "verify"]);
        let out = run(c).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        report = serde_json::from_slice(&out.stdout).unwrap();
        if report["anchor"]["anchor"]["seq"] == 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
    assert_eq!(report["anchor"]["ok"], true, "{report}");
    assert_eq!(report["anchor"]["anchor"]["hash"], report["head"], "the anchor is the head: {report}");

    // Someone with database access cuts the last three events and resets the head.
    let v = Vault::open(&vault_config(&b)).await.unwrap();
    let drop_guard = if b.is_s3() {
        "DROP TRIGGER audit_events_no_update ON audit_events"
    } else {
        "DROP TRIGGER audit_events_no_delete"
    };
    let cat = v.catalog_for_tests();
    cat.execute_raw_for_tests(drop_guard).await.unwrap();
    cat.execute_raw_for_tests("DELETE FROM audit_events WHERE seq > 4").await.unwrap();
    cat.execute_raw_for_tests(
        "UPDATE audit_head SET seq = 4, hash = (SELECT hash FROM audit_events WHERE seq = 4) WHERE id = 1",
    )
    .await
    .unwrap();
    cat.close().await;

    let mut c = kluis(&b);
    c.args(["audit", "verify"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("event 7 was anchored") && err.contains("ends at event 4"), "{err}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["ok"].as_bool(), report["anchor"]["ok"].as_bool()), (Some(false), Some(false)), "{report}");

    // A server does not anchor over the cut, even once the log has grown past it.
    for _ in 0..4 {
        let mut c = kluis(&b);
        c.arg("rekey");
        assert!(run(c).await.status.success());
    }
    let mut c = kluis(&b);
    c.env("KLUIS_AUDIT_ANCHOR_INTERVAL", "100ms").env("KLUIS_METRICS", "off");
    let server = Server::start(c, b.dir.path().join("serve2.log")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(server.log().contains("not anchoring over it"), "{}", server.log());
    drop(server);
    let mut c = kluis(&b);
    c.args(["audit", "verify"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("holds another event under that number"), "{}", text(&out.stderr));
}
on_both_backends!(audit_verify_finds_events_cut_from_the_end_against_the_anchor, audit_anchor_cli);
