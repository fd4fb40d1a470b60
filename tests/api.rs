//! End-to-end tests of the HTTP API (SPEC §6) against the real `kluis`
//! binary, on SQLite + files and on PostgreSQL + SeaweedFS: log in with two
//! steps, create a client, upload, download once through a token, and every
//! refusal along the way.

#[path = "support/kluis.rs"]
mod kluis_proc;
mod support;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kluis_proc::{Server, kluis, run};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Backend;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";
const BSN: &str = "111222333";

/// The last TOTP step used per secret: each code is accepted once, so every
/// login takes a fresh step (waiting for the next one when needed).
static STEPS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

async fn fresh_code(secret_b32: &str) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).expect("base32 secret");
    let totp = totp_rs::Builder::new().with_secret(secret).with_skew(1).build().expect("totp");
    loop {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let step = {
            let mut g = STEPS.lock().unwrap();
            let map = g.get_or_insert_with(HashMap::new);
            let next = map.get(secret_b32).map_or(now / 30, |last| (last + 1).max(now / 30));
            if next <= now / 30 + 1 {
                map.insert(secret_b32.to_string(), next);
                Some(next)
            } else {
                None
            }
        };
        match step {
            Some(s) => return totp.generate(s * 30).to_string(),
            None => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// A user as created: id, name and TOTP secret.
#[derive(Clone, Debug)]
struct User {
    id: Uuid,
    username: String,
    secret: String,
}

fn user_from(v: &Value) -> User {
    User {
        id: v["id"].as_str().unwrap().parse().unwrap(),
        username: v["username"].as_str().unwrap().into(),
        secret: v["totp_secret"].as_str().unwrap().into(),
    }
}

/// A small HTTP client for one caller.
#[derive(Clone)]
struct Api {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
}

impl Api {
    fn anonymous(server: &Server) -> Api {
        Api { base: server.base.clone(), http: reqwest::Client::new(), token: None }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = r.send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.req(reqwest::Method::POST, path).json(&body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.req(reqwest::Method::PUT, path).json(&body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.req(reqwest::Method::PATCH, path).json(&body)).await
    }

    async fn login(server: &Server, user: &User) -> Api {
        let anon = Api::anonymous(server);
        let code = fresh_code(&user.secret).await;
        let (s, v) =
            anon.post("/api/v1/session", json!({"username": user.username, "password": PASSWORD, "otp": code})).await;
        assert_eq!(s, StatusCode::OK, "login of {}: {v}", user.username);
        assert_eq!(v["user"]["id"], user.id.to_string());
        Api { token: Some(v["token"].as_str().unwrap().into()), ..anon }
    }

    async fn upload(&self, client: &str, doc_type: &str, filename: &str, data: Vec<u8>) -> (StatusCode, Value) {
        let form = reqwest::multipart::Form::new()
            .text("type", doc_type.to_string())
            .text("title", "Rapportage")
            .part("file", reqwest::multipart::Part::bytes(data).file_name(filename.to_string()));
        self.send(self.req(reqwest::Method::POST, &format!("/api/v1/clients/{client}/documents")).multipart(form)).await
    }

    async fn token(&self, doc: &str, purpose: &str) -> (StatusCode, Value) {
        self.post(&format!("/api/v1/documents/{doc}/download-tokens"), json!({ "purpose": purpose })).await
    }

    /// Redeem a download URL; the status, the headers and the body (or the
    /// transfer error).
    async fn download(&self, url: &str) -> (StatusCode, reqwest::header::HeaderMap, Result<Vec<u8>, String>) {
        let resp = self.http.get(format!("{}{url}", self.base)).send().await.expect("request");
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.bytes().await.map(|b| b.to_vec()).map_err(|e| e.to_string());
        (status, headers, body)
    }
}

/// A running server with a first (management) user created by the CLI.
struct Env {
    b: Backend,
    server: Server,
    admin: User,
}

async fn create_user_cli(b: &Backend, username: &str, role: &str) -> User {
    let mut c = kluis(b);
    c.args(["user", "add", "--username", username, "--role", role]);
    let u = create_user_cli_with(c).await;
    assert_eq!(u.username, username);
    u
}

async fn start(b: Backend, env: &[(&str, &str)]) -> Env {
    let admin = create_user_cli(&b, "directie", "management").await;
    let mut c = kluis(&b);
    c.env("KLUIS_LOG", "debug,hyper=info,h2=info,reqwest=info,aws_config=info");
    for (k, v) in env {
        c.env(k, v);
    }
    let server = Server::start(c, b.dir.path().join("serve.log")).await.unwrap();
    Env { b, server, admin }
}

impl Env {
    async fn admin(&self) -> Api {
        Api::login(&self.server, &self.admin).await
    }

    /// A user created over the API by `by`.
    async fn user(&self, by: &Api, username: &str, role: &str) -> User {
        let (s, v) = by
            .post(
                "/api/v1/users",
                json!({"username": username, "display_name": username, "role": role, "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        user_from(&v)
    }

    async fn client(&self, by: &Api) -> String {
        let (s, v) = by
            .post(
                "/api/v1/clients",
                json!({"first_name": "Jan", "initials": "J.", "last_name": "Jansen", "birth_date": "1980-02-03",
                       "bsn": BSN, "email": "jan@example.nl", "commissioner": "uwv"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["bsn_masked"], "*****2333");
        v["id"].as_str().unwrap().into()
    }
}

/// A PDF-looking document with a unique marker, `len` bytes.
fn pdf(len: usize) -> (Vec<u8>, String) {
    let marker = format!("KLUIS-MARKER-{}", support::random_suffix());
    let mut data = format!("%PDF-1.7\n% {marker}\n").into_bytes();
    let mut x: u32 = 0x1234_5678;
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if data.len() % 4096 == 0 {
            data.extend_from_slice(marker.as_bytes());
        } else {
            data.push(x as u8);
        }
    }
    data.truncate(len);
    (data, marker)
}

/// Every file under `dir`, recursively (permission errors are skipped).
fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------

async fn round_trip(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let (s, me) = admin.get("/api/v1/me").await;
    assert_eq!((s, me["role"].as_str()), (StatusCode::OK, Some("management")));
    let client = env.client(&admin).await;

    let (data, marker) = pdf(3 * 1024 * 1024 + 123);
    let (s, doc) = admin.upload(&client, "psych_report", "Rapport Jansen.pdf", data.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    assert_eq!(doc["content_type"], "application/pdf");
    assert_eq!(doc["size"], data.len());
    assert_eq!(doc["filename"], "Rapport Jansen.pdf");
    assert_eq!(doc["state"], "active");
    let doc_id = doc["id"].as_str().unwrap().to_string();
    let (s, list) = admin.get(&format!("/api/v1/clients/{client}/documents")).await;
    assert_eq!((s, list["documents"].as_array().map(Vec::len)), (StatusCode::OK, Some(1)));

    let (s, tok) = admin.token(&doc_id, "administration").await;
    assert_eq!(s, StatusCode::CREATED, "{tok}");
    let url = tok["url"].as_str().unwrap().to_string();
    assert!(tok["token"].as_str().unwrap().len() >= 43, "at least 256 bits");

    let anon = Api::anonymous(&env.server);
    let (s, h, body) = anon.download(&url).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body.unwrap(), data, "byte for byte");
    assert_eq!(h["content-type"], "application/pdf");
    assert_eq!(h["content-length"], data.len().to_string().as_str());
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"Rapport Jansen.pdf\""));
    assert!(h["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));

    // Second use, altered token.
    let (s, _, body) = anon.download(&url).await;
    assert_eq!(s, StatusCode::GONE);
    assert!(String::from_utf8_lossy(&body.unwrap()).contains("token_used"));
    let mut altered = url.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let (s, _, body) = anon.download(&altered).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&body.unwrap()).contains("invalid_token"));

    // The BSN only through the audited reveal.
    let (s, v) = admin.get(&format!("/api/v1/clients/{client}/bsn")).await;
    assert_eq!((s, v["bsn"].as_str()), (StatusCode::OK, Some(BSN)));

    // No plaintext and no BSN anywhere at rest, nor in the server log.
    let mut files = Vec::new();
    files_under(env.b.dir.path(), &mut files);
    if env.b.is_s3() {
        // SeaweedFS's volumes and PostgreSQL's data files, too.
        files_under(std::path::Path::new(&std::env::var("KLUIS_TEST_SERVICES_DIR").unwrap()), &mut files);
    }
    assert!(files.len() > 3, "scanned too little: {files:?}");
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else { continue };
        assert!(!contains(&bytes, marker.as_bytes()), "document plaintext in {}", f.display());
        assert!(!contains(&bytes, BSN.as_bytes()), "BSN in {}", f.display());
    }
    let log = env.server.log();
    assert!(log.contains("DEBUG") || log.contains("INFO"), "the log was captured");
    assert!(!log.contains(BSN) && !log.contains(&marker), "secret in the server log");
    assert!(!log.contains(tok["token"].as_str().unwrap()), "download token in the server log");
    assert!(!log.contains(admin.token.as_deref().unwrap()), "session token in the server log");

    // The audit chain holds it all and verifies.
    let mut c = kluis(&env.b);
    c.args(["audit", "verify"]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["events"].as_i64().unwrap() >= 8, "{v}");

    // Log out: the token stops working.
    let (s, _) = admin.send(admin.req(reqwest::Method::DELETE, "/api/v1/session")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(admin.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
}
on_both_backends!(upload_and_download_once_round_trip, round_trip);

async fn login_refusals(b: Backend) {
    let env = start(b, &[]).await;
    let anon = Api::anonymous(&env.server);
    let login = |password: &'static str, otp: String| {
        let anon = anon.clone();
        let username = env.admin.username.clone();
        async move { anon.post("/api/v1/session", json!({"username": username, "password": password, "otp": otp})).await }
    };
    // Unknown user, wrong password, wrong code: all the same answer.
    let (s, v) =
        anon.post("/api/v1/session", json!({"username": "nobody", "password": PASSWORD, "otp": "123456"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_credentials")));
    let code = fresh_code(&env.admin.secret).await;
    let (s, v) = login("wrong password!!", code).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_credentials")));
    let (s, _) = login(PASSWORD, "000000".into()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A code works once.
    let code = fresh_code(&env.admin.secret).await;
    assert_eq!(login(PASSWORD, code.clone()).await.0, StatusCode::OK);
    let (s, _) = login(PASSWORD, code).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "replayed code");
    // Five failures in a row (the replay was the first) lock the account,
    // also for the right credentials.
    for _ in 0..4 {
        assert_eq!(login("wrong password!!", "000000".into()).await.0, StatusCode::UNAUTHORIZED);
    }
    let code = fresh_code(&env.admin.secret).await;
    let (s, v) = login(PASSWORD, code).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("too_many_attempts")));
    // No session was made by any of it.
    assert_eq!(Api { token: Some("x".into()), ..anon.clone() }.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
}
on_both_backends!(login_refuses_wrong_password_wrong_or_replayed_code_and_locks_out, login_refusals);

#[tokio::test]
async fn login_is_rate_limited_per_address() {
    let env = start(support::embedded().await, &[("KLUIS_LOGIN_RATE_PER_MINUTE", "3")]).await;
    let anon = Api::anonymous(&env.server);
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(anon.post("/api/v1/session", json!({"username": "x", "password": "y", "otp": "1"})).await.0);
    }
    assert_eq!(codes, [401, 401, 401, 429].map(|c| StatusCode::from_u16(c).unwrap()));
}

async fn refused_uploads(b: Backend) {
    let env = start(b, &[("KLUIS_MAX_UPLOAD_BYTES", "100000")]).await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        ("too-big.pdf", pdf(150_000).0, StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        (
            "tool.pdf",
            [b"\x7fELF\x02\x01\x01".as_slice(), &[0u8; 100]].concat(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "setup.pdf",
            [b"MZ\x90\x00".as_slice(), &[0u8; 100]].concat(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "page.txt",
            b"<!DOCTYPE html><html><body>hi</body></html>".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        ("run.txt", b"#!/bin/sh\nrm -rf /\n".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        (
            "blob.pdf",
            vec![0x00, 0x01, 0x02, 0xfe, 0xff, 0x10, 0x80, 0x00],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        ("anim.gif", b"GIF89a\x01\x00\x01\x00".to_vec(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ("empty.pdf", vec![], StatusCode::UNPROCESSABLE_ENTITY, "empty_file"),
    ];
    for (name, data, status, code) in cases {
        let (s, v) = admin.upload(&client, "intake", name, data).await;
        assert_eq!((s, v["error"]["code"].as_str()), (status, Some(code)), "{name}: {v}");
    }
    let (s, v) = admin.upload(&client, "selfie", "x.pdf", pdf(1000).0).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_type")));
    // A plain text file and an exactly-at-the-limit PDF are fine.
    assert_eq!(
        admin.upload(&client, "correspondence", "brief.txt", "Beste Jan,\nTot ziens.\n".into()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(admin.upload(&client, "intake", "max.pdf", pdf(100_000).0).await.0, StatusCode::CREATED);

    // Nothing of the refused uploads remains: two documents, no pending rows, two objects.
    let (_, list) = admin.get(&format!("/api/v1/clients/{client}/documents")).await;
    assert_eq!(list["documents"].as_array().unwrap().len(), 2);
    assert_no_leftovers(&env, 2).await;
}
on_both_backends!(refused_uploads_leave_nothing, refused_uploads);

/// No pending rows in the catalog, and (on files) exactly `objects` objects.
/// Pending catalog rows, and (on files) files in the object store.
async fn leftovers(env: &Env) -> (usize, Vec<std::path::PathBuf>) {
    let cfg = kluis_proc::vault_config(&env.b);
    let v = vault::Vault::open(&cfg).await.unwrap();
    let mut tx = v.catalog_for_tests().snapshot(0).await.unwrap();
    let pending = tx.pending_documents_before(i64::MAX).await.unwrap().len();
    drop(tx);
    v.catalog_for_tests().close().await;
    let mut files = Vec::new();
    if !env.b.is_s3() {
        files_under(&env.b.dir.path().join("objects"), &mut files);
    }
    (pending, files)
}

/// No pending rows in the catalog, and (on files) exactly `objects` objects.
async fn assert_no_leftovers(env: &Env, objects: usize) {
    let (pending, files) = leftovers(env).await;
    assert_eq!(pending, 0, "pending rows left behind");
    if !env.b.is_s3() {
        assert_eq!(files.len(), objects, "objects on disk: {files:?}");
    }
}

async fn disconnect(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    // A raw request that promises 20 MB and stops after 3 MB.
    let addr = env.server.base.trim_start_matches("http://").to_string();
    let mut sock = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let boundary = "kluisboundary";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nintake\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    );
    let req = format!(
        "POST /api/v1/clients/{client}/documents HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 20000000\r\n\r\n{head}",
        admin.token.as_deref().unwrap()
    );
    sock.write_all(req.as_bytes()).await.unwrap();
    sock.write_all(&pdf(3 * 1024 * 1024).0).await.unwrap();
    sock.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(sock);
    // The server notices, aborts, and cleans up: no row, no object, no
    // partial file.
    let mut last = (usize::MAX, Vec::new());
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        last = leftovers(&env).await;
        if last.0 == 0 && last.1.is_empty() {
            break;
        }
    }
    assert_eq!(last.0, 0, "pending rows left behind");
    assert!(last.1.is_empty(), "files left behind: {:?}", last.1);
    let (_, list) = admin.get(&format!("/api/v1/clients/{client}/documents")).await;
    assert!(list["documents"].as_array().unwrap().is_empty());
    assert!(env.server.log().contains("upload interrupted"), "the server saw the upload break off");
    // The server still works.
    assert_eq!(admin.upload(&client, "intake", "ok.pdf", pdf(2000).0).await.0, StatusCode::CREATED);
}
on_both_backends!(client_disconnecting_mid_upload_leaves_nothing, disconnect);

async fn tampered(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    let (data, _) = pdf(400_000);
    let (_, doc) = admin.upload(&client, "fml", "fml.pdf", data.clone()).await;
    let id: Uuid = doc["id"].as_str().unwrap().parse().unwrap();
    // Flip one byte in the fourth segment of the stored object.
    let cfg = kluis_proc::vault_config(&env.b);
    let v = vault::Vault::open(&cfg).await.unwrap();
    let row = v.catalog_for_tests().snapshot(0).await.unwrap().get_document(id).await.unwrap();
    let name = vault::store::ObjectName::from_catalog(row.object_name);
    let mut obj = Vec::new();
    let mut s = v.store_for_tests().get_stream(&name).await.unwrap();
    use futures::StreamExt;
    while let Some(c) = s.next().await {
        obj.extend_from_slice(&c.unwrap());
    }
    obj[32 + 3 * (65536 + 16) + 100] ^= 1;
    v.store_for_tests().put_bytes(&name, obj.into()).await.unwrap();

    let (_, tok) = admin.token(doc["id"].as_str().unwrap(), "assignment").await;
    // Either the connection breaks before the response head is flushed, or
    // the head (200, full Content-Length) went out and the body breaks off:
    // both are a failed transfer, never a complete-looking short file.
    let url = format!("{}{}", env.server.base, tok["url"].as_str().unwrap());
    match reqwest::get(&url).await {
        Err(_) => {}
        Ok(resp) => {
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.headers()["content-length"], data.len().to_string().as_str());
            match resp.bytes().await {
                Err(_) => {}
                Ok(b) => panic!("a tampered object must abort the transfer, got {} of {} bytes", b.len(), data.len()),
            }
        }
    }
    assert!(env.server.log().contains("download aborted"));
}
on_both_backends!(tampered_object_aborts_the_download, tampered);

async fn token_expiry_and_revocation(b: Backend) {
    let env = start(b, &[("KLUIS_TOKEN_TTL", "2s")]).await;
    let admin = env.admin().await;
    let coach = env.user(&admin, "carla", "coach").await;
    let other = env.user(&admin, "otto", "freelance_coach").await;
    let client = env.client(&admin).await;
    let (s, _) = admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": coach.id})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": env.admin.id})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("not_a_coach")));
    let carla = Api::login(&env.server, &coach).await;
    let otto = Api::login(&env.server, &other).await;

    // The coach works on her own client; the other coach sees nothing of it.
    let (s, doc) = carla.upload(&client, "work_plan", "plan.txt", b"Werkplan: drie dagen per week.\n".to_vec()).await;
    assert_eq!(s, StatusCode::CREATED, "{doc}");
    let doc = doc["id"].as_str().unwrap().to_string();
    assert_eq!(carla.get("/api/v1/clients").await.1["clients"].as_array().unwrap().len(), 1);
    assert_eq!(otto.get("/api/v1/clients").await.1["clients"].as_array().unwrap().len(), 0);
    assert_eq!(otto.get(&format!("/api/v1/clients/{client}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(otto.get(&format!("/api/v1/clients/{}", Uuid::new_v4())).await.0, StatusCode::NOT_FOUND);
    assert_eq!(otto.token(&doc, "guidance").await.0, StatusCode::NOT_FOUND);
    assert_eq!(carla.get(&format!("/api/v1/clients/{client}/bsn")).await.0, StatusCode::FORBIDDEN);
    let (s, v) = carla.token(&doc, "invoicing").await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("purpose_not_allowed")));

    // What a role may never do is 403 whether or not the id exists.
    let unknown = Uuid::new_v4();
    assert_eq!(carla.get(&format!("/api/v1/clients/{unknown}/bsn")).await.0, StatusCode::FORBIDDEN);
    assert_eq!(carla.post(&format!("/api/v1/clients/{unknown}/close"), json!({})).await.0, StatusCode::FORBIDDEN);

    // HEAD does not use up a token.
    let (_, t) = carla.token(&doc, "guidance").await;
    let head =
        reqwest::Client::new().head(format!("{}{}", env.server.base, t["url"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await.0, StatusCode::OK);

    // Expired.
    let (_, t) = carla.token(&doc, "guidance").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (s, _, body) = Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::GONE);
    assert!(String::from_utf8_lossy(&body.unwrap()).contains("token_expired"));

    // Revoked between issue and redemption: reassignment.
    let (_, t) = carla.token(&doc, "guidance").await;
    admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": other.id})).await;
    let (s, _, _) = Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Revoked: the holder is deactivated (sessions end, tokens voided).
    let (s, t) = otto.token(&doc, "guidance").await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, v) = admin.patch(&format!("/api/v1/users/{}", other.id), json!({"active": false})).await;
    assert_eq!((s, v["active"].as_bool()), (StatusCode::OK, Some(false)));
    assert_eq!(otto.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    let (s, _, _) = Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Revoked: the holder's role changes (coach to freelance coach is still
    // a coach, but any change means the token was issued under other rights).
    admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": coach.id})).await;
    let (s, t) = carla.token(&doc, "guidance").await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, _) = admin.patch(&format!("/api/v1/users/{}", coach.id), json!({"role": "freelance_coach"})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await.0, StatusCode::FORBIDDEN);
    let carla = Api::login(&env.server, &coach).await;

    // Revoked: the trajectory is closed after the token was issued.
    let (s, t) = carla.token(&doc, "guidance").await;
    assert_eq!(s, StatusCode::CREATED, "{t}");

    // Closing the trajectory: the coach's access ends, uploads stop.
    let (s, c) = admin.post(&format!("/api/v1/clients/{client}/close"), json!({})).await;
    assert_eq!((s, c["status"].as_str()), (StatusCode::OK, Some("closed")));
    assert_eq!(Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(carla.get(&format!("/api/v1/clients/{client}")).await.0, StatusCode::NOT_FOUND);
    let (s, v) = admin.upload(&client, "intake", "late.txt", b"te laat\n".to_vec()).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("client_closed")));
    // The archive is for satisfaction_survey and availability.
    assert_eq!(admin.token(&doc, "administration").await.0, StatusCode::FORBIDDEN);
    assert_eq!(admin.token(&doc, "availability").await.0, StatusCode::CREATED);
}
on_both_backends!(tokens_expire_and_lose_their_power_when_access_ends, token_expiry_and_revocation);

const METRICS_TOKEN: &str = "metrics-token-for-the-test";

async fn users_api(b: Backend) {
    let env = start(b, &[("KLUIS_METRICS", "bearer"), ("KLUIS_METRICS_TOKEN", METRICS_TOKEN)]).await;
    let admin = env.admin().await;
    let (s, v) = admin.post("/api/v1/users", json!({"username": "kort", "role": "office", "password": "short"})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("weak_password")));
    let office = env.user(&admin, "olga", "office").await;
    let (s, _) = admin.post("/api/v1/users", json!({"username": "olga", "role": "office", "password": PASSWORD})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = admin.get("/api/v1/users").await;
    assert_eq!((s, v["users"].as_array().unwrap().len()), (StatusCode::OK, 2));
    let bea = env.user(&admin, "bea", "administration").await;
    let bea = Api::login(&env.server, &bea).await;
    assert_eq!(bea.get("/api/v1/users").await.0, StatusCode::FORBIDDEN);
    let (s, v) = bea
        .post(
            "/api/v1/clients",
            json!({"first_name": "A", "initials": "A.", "last_name": "B", "birth_date": "1990-01-01", "commissioner": "uwv"}),
        )
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let olga = Api::login(&env.server, &office).await;
    let (s, v) = olga
        .post("/api/v1/clients", json!({"first_name": "A", "initials": "A.", "last_name": "B", "birth_date": "1990-01-01", "bsn": "111222334", "commissioner": "uwv"}))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_bsn")));
    assert!(!v.to_string().contains("111222334"), "the error must not echo the number");
    // Office cannot hand out the management role, nor change its own role.
    let (s, v) =
        olga.post("/api/v1/users", json!({"username": "baas", "role": "management", "password": PASSWORD})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let (s, _) = olga.patch(&format!("/api/v1/users/{}", office.id), json!({"role": "management"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = olga.patch(&format!("/api/v1/users/{}", env.admin.id), json!({"active": false})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The last active manager stays.
    let (s, v) = Api::login(&env.server, &env.admin)
        .await
        .patch(&format!("/api/v1/users/{}", env.admin.id), json!({"active": false}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "not on oneself: {v}");
    // Role change ends the sessions.
    let (s, v) = admin.patch(&format!("/api/v1/users/{}", office.id), json!({"role": "management"})).await;
    assert_eq!((s, v["role"].as_str()), (StatusCode::OK, Some("management")));
    assert_eq!(olga.get("/api/v1/me").await.0, StatusCode::UNAUTHORIZED);
    // The OpenAPI document describes the routes.
    let (s, api) = Api::anonymous(&env.server).get("/api/v1/openapi.json").await;
    assert_eq!(s, StatusCode::OK);
    for path in ["/api/v1/session", "/api/v1/clients/{id}/documents", "/api/v1/download/{token}"] {
        assert!(api["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    // Metrics are for the holder of the metrics token only.
    let url = format!("{}/metrics", env.server.base);
    assert_eq!(reqwest::get(&url).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let wrong = reqwest::Client::new().get(&url).bearer_auth("metrics-token-for-the-tesT").send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let metrics = reqwest::Client::new().get(&url).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("kluis_http_requests_total{route=\"/api/v1/users\""), "{metrics}");
}
on_both_backends!(users_api_and_operations, users_api);

/// A TCP proxy in front of a real service that the test can take down and
/// bring back, to show what Kluis does when its database or store goes away.
struct Flaky {
    addr: std::net::SocketAddr,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Flaky {
    async fn start(target: String) -> Flaky {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns: std::sync::Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Default::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound); // refuse while down
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(task.abort_handle());
            }
        });
        Flaky { addr, up, conns }
    }

    /// Cut every open connection and refuse new ones.
    fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `host:port` of a URL like `http://127.0.0.1:1234` or `postgres://u@127.0.0.1:1234/db`.
fn host_port(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap();
    let rest = rest.rsplit('@').next().unwrap();
    rest.split('/').next().unwrap().to_string()
}

#[tokio::test]
async fn store_and_database_going_away_and_coming_back() {
    let b = support::services().await;
    let store = Flaky::start(host_port(b.s3_endpoint.as_deref().unwrap())).await;
    let db = Flaky::start(host_port(&b.database_url)).await;
    let db_name = b.database_url.rsplit('/').next().unwrap().to_string();
    let db_url = format!("postgres://kluis@{}/{db_name}", db.addr);
    let store_url = format!("http://{}", store.addr);
    let admin_user = {
        let mut c = kluis(&b);
        c.env("KLUIS_DATABASE_URL", &db_url).env("KLUIS_S3_ENDPOINT", &store_url);
        c.args(["user", "add", "--username", "beheer", "--role", "management"]);
        create_user_cli_with(c).await
    };
    let mut c = kluis(&b);
    c.env("KLUIS_DATABASE_URL", &db_url).env("KLUIS_S3_ENDPOINT", &store_url);
    let server = Server::start(c, b.dir.path().join("serve.log")).await.unwrap();
    let admin = Api::login(&server, &admin_user).await;
    let env = Env { b, server, admin: admin_user };
    let client = env.client(&admin).await;
    let (data, _) = pdf(2 * 1024 * 1024);
    let (s, before) = admin.upload(&client, "intake", "voor.pdf", data.clone()).await;
    assert_eq!(s, StatusCode::CREATED);

    // The store goes away: uploads fail cleanly, readiness says so.
    store.down();
    let (s, v) = admin.upload(&client, "intake", "tijdens.pdf", data.clone()).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("storage_unavailable")), "{v}");
    let (s, r) = env.server.get("/readyz").await;
    assert_eq!((s, &r["checks"]["storage"]), (503, &json!("unavailable")));
    store.up();

    // The database goes away.
    db.down();
    let (s, v) = admin.get(&format!("/api/v1/clients/{client}")).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("database_unavailable")),
        "{v}"
    );
    assert_eq!(env.server.get("/readyz").await.0, 503);
    db.up();

    // Both back: everything that was there is still there, and work goes on.
    let mut ready = false;
    for _ in 0..50 {
        if env.server.get("/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "{}", env.server.log());
    let (s, t) = admin.token(before["id"].as_str().unwrap(), "assignment").await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (s, _, body) = Api::anonymous(&env.server).download(t["url"].as_str().unwrap()).await;
    assert_eq!((s, body.unwrap() == data), (StatusCode::OK, true));
    let (_, list) = admin.get(&format!("/api/v1/clients/{client}/documents")).await;
    assert_eq!(list["documents"].as_array().unwrap().len(), 1, "the failed upload left no document");
    assert_eq!(admin.upload(&client, "intake", "na.pdf", data).await.0, StatusCode::CREATED);
}

/// Run a prepared `kluis user add ...` with the test password on stdin.
async fn create_user_cli_with(mut c: tokio::process::Command) -> User {
    c.stdin(std::process::Stdio::piped());
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{PASSWORD}\n").as_bytes()).await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "user add: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("user add prints JSON");
    assert!(v["otpauth_url"].as_str().unwrap().starts_with("otpauth://totp/"));
    user_from(&v)
}

async fn access_model(b: Backend) {
    let env = start(b, &[]).await;
    let admin = env.admin().await;
    let office_user = env.user(&admin, "olga", "office").await;
    let absent = env.user(&admin, "anna", "coach").await;
    let sub = env.user(&admin, "sam", "freelance_coach").await;
    let client = env.client(&admin).await;
    admin.put(&format!("/api/v1/clients/{client}/coach"), json!({"coach_id": absent.id})).await;
    let anna = Api::login(&env.server, &absent).await;
    let sam = Api::login(&env.server, &sub).await;
    let office = Api::login(&env.server, &office_user).await;
    let (_, doc) = anna.upload(&client, "progress_report", "voortgang.txt", b"Gaat goed.\n".to_vec()).await;
    let doc = doc["id"].as_str().unwrap().to_string();
    assert_eq!(sam.token(&doc, "guidance").await.0, StatusCode::NOT_FOUND, "no substitution yet");

    // A substitution in the future grants nothing yet; a current one does.
    let t = |mins: i64| (chrono::Utc::now() + chrono::Duration::minutes(mins)).to_rfc3339();
    let (s, v) = office
        .post(
            "/api/v1/substitutions",
            json!({"absent_coach_id": absent.id, "substitute_id": sub.id,
              "from": t(60), "until": t(120), "reason": "vacation"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(sam.get(&format!("/api/v1/clients/{client}")).await.0, StatusCode::NOT_FOUND);
    let (s, v) = office
        .post(
            "/api/v1/substitutions",
            json!({"absent_coach_id": absent.id, "substitute_id": sub.id,
              "from": t(-1), "until": t(60), "reason": "sickness"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let current = v["id"].as_str().unwrap().to_string();
    let (s, bad) = office
        .post(
            "/api/v1/substitutions",
            json!({"absent_coach_id": absent.id, "substitute_id": env.admin.id,
              "from": t(0), "until": t(5), "reason": "vacation"}),
        )
        .await;
    assert_eq!((s, bad["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("not_a_coach")));
    assert_eq!(sam.get(&format!("/api/v1/clients/{client}")).await.0, StatusCode::OK);
    assert_eq!(sam.get("/api/v1/clients").await.1["clients"].as_array().unwrap().len(), 1);
    let (s, tok) = sam.token(&doc, "guidance").await;
    assert_eq!(s, StatusCode::CREATED, "{tok}");
    let (s, _, _) = Api::anonymous(&env.server).download(tok["url"].as_str().unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let (s, list) = office.get("/api/v1/substitutions").await;
    assert_eq!((s, list["substitutions"].as_array().unwrap().len()), (StatusCode::OK, 2));

    // Ended early: a token issued before is refused at redemption.
    let (_, tok) = sam.token(&doc, "guidance").await;
    let (s, _) = office.send(office.req(reqwest::Method::DELETE, &format!("/api/v1/substitutions/{current}"))).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(Api::anonymous(&env.server).download(tok["url"].as_str().unwrap()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(sam.get(&format!("/api/v1/clients/{client}")).await.0, StatusCode::NOT_FOUND);

    // Restriction: nobody downloads, except management for availability.
    let (s, v) =
        office.put(&format!("/api/v1/clients/{client}/restriction"), json!({"restricted": true, "reason": ""})).await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("reason_required")));
    let (_, pending) = anna.token(&doc, "guidance").await;
    let (s, v) = office
        .put(&format!("/api/v1/clients/{client}/restriction"), json!({"restricted": true, "reason": "bezwaar art. 18"}))
        .await;
    assert_eq!((s, v["restricted"].as_bool()), (StatusCode::OK, Some(true)));
    let (s, v) = anna.token(&doc, "guidance").await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("restricted")));
    assert_eq!(Api::anonymous(&env.server).download(pending["url"].as_str().unwrap()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(office.token(&doc, "administration").await.0, StatusCode::FORBIDDEN);
    assert_eq!(admin.token(&doc, "availability").await.0, StatusCode::CREATED);

    // The access log tells the client who opened what, when, why, on whose behalf.
    assert_eq!(anna.get(&format!("/api/v1/clients/{client}/access-log")).await.0, StatusCode::FORBIDDEN);
    let (s, log) = office.get(&format!("/api/v1/clients/{client}/access-log")).await;
    assert_eq!(s, StatusCode::OK);
    let entries = log["entries"].as_array().unwrap();
    let via_sub = entries
        .iter()
        .find(|e| {
            e["action"] == "document.download" && e["outcome"] == "allowed" && e["actor_id"] == sub.id.to_string()
        })
        .expect("the substitute's download is in the access log");
    assert_eq!(via_sub["on_behalf_of"], absent.id.to_string());
    assert_eq!(via_sub["purpose"], "guidance");
    assert_eq!(via_sub["actor_name"], "sam");
    assert!(entries.iter().any(|e| e["outcome"] == "denied" && e["actor_id"] == sub.id.to_string()));
    assert_eq!(log["caseload"].as_array().unwrap().len(), 1);
    assert_eq!(log["caseload"][0]["coach_id"], absent.id.to_string());

    // The audit log: management only, filterable, and the chain verifies.
    assert_eq!(office.get("/api/v1/audit").await.0, StatusCode::FORBIDDEN);
    let (s, a) = admin.get(&format!("/api/v1/audit?client_id={client}&action=document.download&limit=50")).await;
    assert_eq!(s, StatusCode::OK);
    let events = a["events"].as_array().unwrap();
    assert!(events.len() >= 3 && events.iter().all(|e| e["action"] == "document.download"));
    let (s, v) = admin.get("/api/v1/audit/verify").await;
    assert_eq!((s, v["ok"].as_bool()), (StatusCode::OK, Some(true)));
}
on_both_backends!(substitutions_restriction_and_access_log, access_model);

#[tokio::test]
async fn malformed_requests_get_clear_json_errors() {
    let env = start(support::embedded().await, &[]).await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    let raw = |method: reqwest::Method, path: &str, ct: &str, body: &'static [u8]| {
        admin.req(method, path).header("content-type", ct.to_string()).body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            raw(reqwest::Method::POST, "/api/v1/clients", "application/json", b"{not json"),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            raw(reqwest::Method::POST, "/api/v1/clients", "text/plain", b"{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(reqwest::Method::POST, "/api/v1/clients", "application/json", b"{\"first_name\": 3}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            raw(reqwest::Method::POST, &format!("/api/v1/clients/{client}/documents"), "application/json", b"{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            raw(
                reqwest::Method::POST,
                &format!("/api/v1/clients/{client}/documents"),
                "multipart/form-data; boundary=X",
                b"--X\r\nbroken",
            ),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            raw(reqwest::Method::GET, "/api/v1/clients?status=maybe", "application/json", b""),
            StatusCode::BAD_REQUEST,
            "invalid_query",
        ),
        (
            raw(reqwest::Method::GET, "/api/v1/clients/not-a-uuid", "application/json", b""),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            raw(reqwest::Method::GET, "/api/v1/nothing-here", "application/json", b""),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (i, (req, status, code)) in cases.into_iter().enumerate() {
        let (s, v) = admin.send(req).await;
        assert_eq!((s, v["error"]["code"].as_str()), (status, Some(code)), "case {i}: {v}");
    }
    let (s, v) = Api::anonymous(&env.server).get("/api/v1/me").await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
}
