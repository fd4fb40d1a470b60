//! Shared helpers of the end-to-end API tests: a `kluis serve` on a
//! backend with a first manager, a small client per caller, TOTP codes,
//! documents to upload, and checks for leftovers.

use std::collections::HashMap;
use std::sync::Mutex;

// What every test file needs, in one glob: `use crate::helpers::*;`.
pub(crate) use std::time::Duration;

pub(crate) use reqwest::StatusCode;
pub(crate) use serde_json::{Value, json};
pub(crate) use tokio::io::{AsyncReadExt, AsyncWriteExt};
pub(crate) use uuid::Uuid;

pub(crate) use crate::kluis_proc::{self, Server, kluis, run};
pub(crate) use crate::support::{self, Backend};

pub(crate) const PASSWORD: &str = "correct horse battery staple";
pub(crate) const BSN: &str = "111222333";

/// The last TOTP step used per secret: each code is accepted once, so every
/// login takes a fresh step (waiting for the next one when needed).
pub(crate) static STEPS: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

pub(crate) async fn fresh_code(secret_b32: &str) -> String {
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
pub(crate) struct User {
    pub(crate) id: Uuid,
    pub(crate) username: String,
    pub(crate) secret: String,
}

pub(crate) fn user_from(v: &Value) -> User {
    User {
        id: v["id"].as_str().unwrap().parse().unwrap(),
        username: v["username"].as_str().unwrap().into(),
        secret: v["totp_secret"].as_str().unwrap().into(),
    }
}

/// A small HTTP client for one caller.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) token: Option<String>,
}

impl Api {
    pub(crate) fn anonymous(server: &Server) -> Api {
        Api { base: server.base.clone(), http: reqwest::Client::new(), token: None }
    }

    pub(crate) fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub(crate) async fn send(&self, r: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = r.send().await.expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.req(reqwest::Method::POST, path).json(&body)).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.req(reqwest::Method::PUT, path).json(&body)).await
    }

    pub(crate) async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.req(reqwest::Method::PATCH, path).json(&body)).await
    }

    pub(crate) async fn login(server: &Server, user: &User) -> Api {
        let anon = Api::anonymous(server);
        let code = fresh_code(&user.secret).await;
        let (s, v) =
            anon.post("/api/v1/session", json!({"username": user.username, "password": PASSWORD, "otp": code})).await;
        assert_eq!(s, StatusCode::OK, "login of {}: {v}", user.username);
        assert_eq!(v["user"]["id"], user.id.to_string());
        Api { token: Some(v["token"].as_str().unwrap().into()), ..anon }
    }

    pub(crate) async fn upload(
        &self,
        client: &str,
        doc_type: &str,
        filename: &str,
        data: Vec<u8>,
    ) -> (StatusCode, Value) {
        let form = reqwest::multipart::Form::new()
            .text("type", doc_type.to_string())
            .text("title", "Rapportage")
            .part("file", reqwest::multipart::Part::bytes(data).file_name(filename.to_string()));
        self.send(self.req(reqwest::Method::POST, &format!("/api/v1/clients/{client}/documents")).multipart(form)).await
    }

    pub(crate) async fn token(&self, doc: &str, purpose: &str) -> (StatusCode, Value) {
        self.post(&format!("/api/v1/documents/{doc}/download-tokens"), json!({ "purpose": purpose })).await
    }

    /// Redeem a download URL; the status, the headers and the body (or the
    /// transfer error).
    pub(crate) async fn download(
        &self,
        url: &str,
    ) -> (StatusCode, reqwest::header::HeaderMap, Result<Vec<u8>, String>) {
        let resp = self.http.get(format!("{}{url}", self.base)).send().await.expect("request");
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp.bytes().await.map(|b| b.to_vec()).map_err(|e| e.to_string());
        (status, headers, body)
    }
}

/// A running server with a first (management) user created by the CLI.
pub(crate) struct Env {
    pub(crate) b: Backend,
    pub(crate) server: Server,
    pub(crate) admin: User,
}

pub(crate) async fn create_user_cli(b: &Backend, username: &str, role: &str) -> User {
    let mut c = kluis(b);
    c.args(["user", "add", "--username", username, "--role", role]);
    let u = create_user_cli_with(c).await;
    assert_eq!(u.username, username);
    u
}

pub(crate) async fn start(b: Backend, env: &[(&str, &str)]) -> Env {
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
    pub(crate) async fn admin(&self) -> Api {
        Api::login(&self.server, &self.admin).await
    }

    /// A user created over the API by `by`.
    pub(crate) async fn user(&self, by: &Api, username: &str, role: &str) -> User {
        let (s, v) = by
            .post(
                "/api/v1/users",
                json!({"username": username, "display_name": username, "role": role, "password": PASSWORD}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        user_from(&v)
    }

    pub(crate) async fn client(&self, by: &Api) -> String {
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
pub(crate) fn pdf(len: usize) -> (Vec<u8>, String) {
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
pub(crate) fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    walk(dir, out, false);
}

/// The document objects under a file store's `dir`: every file except the
/// audit chain's anchors (`audit-anchors/`: the hash of the newest event,
/// written by the server on its own timer).
pub(crate) fn objects_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    walk(dir, out, true);
}

fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>, skip_anchors: bool) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() && skip_anchors && p.file_name().is_some_and(|n| n == vault::store::ANCHOR_PREFIX) => {}
            Ok(t) if t.is_dir() => walk(&p, out, skip_anchors),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

pub(crate) fn time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str().unwrap_or_else(|| panic!("not a time: {v}")).parse().unwrap()
}

/// An upload with any extra form fields; the answer.
pub(crate) async fn upload_with(
    api: &Api,
    client: &str,
    doc_type: &str,
    extra: &[(&str, String)],
) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new().text("type", doc_type.to_string());
    for (k, v) in extra {
        form = form.text(k.to_string(), v.clone());
    }
    let form = form.part("file", reqwest::multipart::Part::bytes(pdf(1000).0).file_name("d.pdf"));
    api.send(api.req(reqwest::Method::POST, &format!("/api/v1/clients/{client}/documents")).multipart(form)).await
}

/// What the metrics listener (`KLUIS_METRICS=127.0.0.1:0`) serves; its
/// address is in the server's log.
pub(crate) async fn metrics_text(env: &Env) -> String {
    let mut url = None;
    for _ in 0..50 {
        url = env.server.log().lines().find_map(|l| l.split("metrics on ").nth(1).map(str::to_string));
        if url.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = url.expect("the metrics listener's address in the log");
    reqwest::get(url.trim()).await.unwrap().text().await.unwrap()
}

/// A gauge's value in the metrics text.
pub(crate) fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.parse().ok()))
}

/// Polls the metrics until one scrape shows every gauge at its wanted
/// value. The register worker computes its gauges in one pass, so waiting
/// for all of them at once never reads a pass from before the last change.
/// Panics with the last scrape after 10 s.
pub(crate) async fn wait_gauges(env: &Env, want: &[(&str, f64)]) {
    let mut text = String::new();
    for _ in 0..100 {
        text = metrics_text(env).await;
        if want.iter().all(|(name, v)| gauge(&text, name) == Some(*v)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("metrics never showed {want:?}: {text}");
}

// ---------------------------------------------------------------------------

/// No pending rows in the catalog, and (on files) exactly `objects` objects.
/// Pending catalog rows, and (on files) files in the object store.
pub(crate) async fn leftovers(env: &Env) -> (usize, Vec<std::path::PathBuf>) {
    let cfg = kluis_proc::vault_config(&env.b);
    let v = vault::Vault::open(&cfg).await.unwrap();
    let mut tx = v.catalog_for_tests().snapshot(0).await.unwrap();
    let pending = tx.pending_documents_before(i64::MAX).await.unwrap().len();
    drop(tx);
    v.catalog_for_tests().close().await;
    let mut files = Vec::new();
    if !env.b.is_s3() {
        objects_under(&env.b.dir.path().join("objects"), &mut files);
    }
    (pending, files)
}

/// No pending rows in the catalog, and (on files) exactly `objects` objects.
pub(crate) async fn assert_no_leftovers(env: &Env, objects: usize) {
    let (pending, files) = leftovers(env).await;
    assert_eq!(pending, 0, "pending rows left behind");
    if !env.b.is_s3() {
        assert_eq!(files.len(), objects, "objects on disk: {files:?}");
    }
}

/// A TCP proxy in front of a real service that the test can take down and
/// bring back, to show what Kluis does when its database or store goes away.
pub(crate) struct Flaky {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub(crate) conns: std::sync::Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Flaky {
    pub(crate) async fn start(target: String) -> Flaky {
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
    pub(crate) fn down(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub(crate) fn up(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `host:port` of a URL like `http://127.0.0.1:1234` or `postgres://u@127.0.0.1:1234/db`.
pub(crate) fn host_port(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap();
    let rest = rest.rsplit('@').next().unwrap();
    rest.split('/').next().unwrap().to_string()
}

pub(crate) async fn create_user_cli_with(mut c: tokio::process::Command) -> User {
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
