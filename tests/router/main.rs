//! In-process tests of the router: the refusals of the HTTP layer (bad
//! bodies, queries, ids, methods, missing sessions) and the API description,
//! against the real router and a real vault (SQLite and files in a temporary
//! directory), without a process or a socket. What needs the real binary
//! (the CLI, disconnects, crashes, timeouts) stays in `tests/api`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use gateway::api::{AppState, ServeSettings};
use gateway::server::{RouterOptions, addr_limiter, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use vault::domain::Role;
use vault::service::{By, NewUser, RequestContext};
use vault::{MasterKeySource, Vault, VaultConfig};

const PASSWORD: &str = "correct horse battery staple";

/// A router over a fresh vault, and a management session on it.
struct TestApp {
    router: Router,
    token: String,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let cfg = VaultConfig {
        database_url: format!("sqlite://{}", dir.path().join("kluis.db").display()),
        storage_url: format!("file://{}", dir.path().join("objects").display()),
        s3: vault::store::S3Settings::from_env(),
        master_key: MasterKeySource::File { path: dir.path().join("master.key"), create_if_missing: true },
    };
    let vault = Vault::open(&cfg).await.unwrap();
    let created = vault
        .create_user(
            By::Operator,
            NewUser {
                username: "anna".into(),
                display_name: None,
                role: Role::Management,
                password: PASSWORD.to_string().into(),
            },
        )
        .await
        .unwrap();
    let secret = totp_rs::Secret::try_from_base32(&created.totp_secret).unwrap();
    let totp = totp_rs::Builder::new().with_secret(secret).with_skew(1).build().unwrap();
    let otp = totp.generate(chrono::Utc::now().timestamp() as u64).to_string();
    let login = serde_json::from_value(json!({"username": "anna", "password": PASSWORD, "otp": otp})).unwrap();
    let token = vault.login(login, &RequestContext::default()).await.unwrap().token;
    let state = AppState {
        vault: Arc::new(vault),
        settings: Arc::new(ServeSettings {
            max_upload_bytes: 100_000_000,
            max_json_bytes: 64 << 10,
            slot_wait: Duration::from_secs(1),
            body_idle: Duration::from_secs(5),
            audit_review_days: 30,
        }),
        login_limiter: addr_limiter(1000),
        download_limiter: addr_limiter(1000),
        upload_slots: Arc::new(tokio::sync::Semaphore::new(2)),
        download_slots: Arc::new(tokio::sync::Semaphore::new(2)),
    };
    let opts = RouterOptions { trusted_proxies: Default::default(), metrics_token: None, metrics: None };
    let router = router(state, opts).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4000))));
    TestApp { router, token, _dir: dir }
}

impl TestApp {
    async fn send_json(&self, method: Method, path: &str, body: &Value) -> (StatusCode, Value) {
        let req = self
            .req(method, path)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body).unwrap()))
            .unwrap();
        let (s, _, v) = self.call(req).await;
        (s, v)
    }

    async fn call(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, headers, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    fn req(&self, method: Method, path: &str) -> axum::http::request::Builder {
        Request::builder().method(method).uri(path).header("authorization", format!("Bearer {}", self.token))
    }

    async fn json(&self, method: Method, path: &str, content_type: &str, body: &'static str) -> (StatusCode, Value) {
        let req = self.req(method, path).header("content-type", content_type).body(Body::from(body)).unwrap();
        let (s, _, v) = self.call(req).await;
        (s, v)
    }

    async fn client(&self) -> String {
        let body = r#"{"first_name":"Jan","initials":"J.","last_name":"Jansen","birth_date":"1980-02-03","commissioner":"uwv"}"#;
        let (s, v) = self.json(Method::POST, "/api/v1/clients", "application/json", body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().unwrap().to_string()
    }
}

fn code(v: &Value) -> Option<&str> {
    v["error"]["code"].as_str()
}

#[tokio::test]
async fn bodies_that_are_not_what_the_route_takes_get_clear_errors() {
    let app = spawn_app().await;
    let client = app.client().await;
    let upload = format!("/api/v1/clients/{client}/documents");
    let cases: Vec<(Method, String, &str, &'static str, StatusCode, &str)> = vec![
        (
            Method::POST,
            "/api/v1/clients".into(),
            "application/json",
            "{not json",
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Method::POST,
            "/api/v1/clients".into(),
            "text/plain",
            "{}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            "/api/v1/clients".into(),
            "application/json",
            "{\"first_name\": 3}",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Method::POST,
            "/api/v1/clients".into(),
            "application/json",
            "[1, 2]",
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Method::POST,
            "/api/v1/clients".into(),
            "application/json",
            r#"{"first_name":"Jan","initials":"J.","last_name":"J","birth_date":"1980-02-03","commissioner":"uwv"} {}"#,
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Method::POST,
            upload.clone(),
            "application/json",
            "{}",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            Method::POST,
            upload.clone(),
            "multipart/form-data; boundary=X",
            "--X\r\nbroken",
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            Method::POST,
            upload,
            "multipart/form-data; boundary=X",
            "--X--\r\n",
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_file",
        ),
        (
            Method::PATCH,
            "/api/v1/users/not-a-uuid".into(),
            "application/json",
            "{}",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (i, (method, path, ct, body, status, want)) in cases.into_iter().enumerate() {
        let (s, v) = app.json(method, &path, ct, body).await;
        assert_eq!((s, code(&v)), (status, Some(want)), "case {i}: {v}");
    }
    // A duplicate key is refused, never "last one wins".
    let dup = r#"{"first_name":"Jan","first_name":"Piet","initials":"J.","last_name":"J","birth_date":"1980-02-03","commissioner":"uwv"}"#;
    let (s, v) = app.json(Method::POST, "/api/v1/clients", "application/json", dup).await;
    assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")), "{v}");
}

#[tokio::test]
async fn queries_ids_methods_and_sessions_are_refused_in_the_error_format() {
    let app = spawn_app().await;
    let get = |path: &str| app.req(Method::GET, path).body(Body::empty()).unwrap();
    for (path, status, want) in [
        ("/api/v1/clients?status=maybe", StatusCode::BAD_REQUEST, "invalid_query"),
        ("/api/v1/clients?status=active&status=closed", StatusCode::BAD_REQUEST, "invalid_query"),
        ("/api/v1/clients?colour=blue", StatusCode::BAD_REQUEST, "invalid_query"),
        ("/api/v1/audit?limit=0", StatusCode::BAD_REQUEST, "invalid_query"),
        ("/api/v1/audit?action=DROP%20TABLE", StatusCode::BAD_REQUEST, "invalid_query"),
        ("/api/v1/clients/not-a-uuid", StatusCode::NOT_FOUND, "not_found"),
        ("/api/v1/nothing-here", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (s, _, v) = app.call(get(path)).await;
        assert_eq!((s, code(&v)), (status, Some(want)), "{path}: {v}");
        assert!(!v["error"]["message"].as_str().unwrap().contains("maybe"), "never echo: {v}");
    }
    // No session, a wrong one, and a cookie instead of a bearer token.
    let anon = Request::get("/api/v1/me").body(Body::empty()).unwrap();
    assert_eq!(app.call(anon).await.0, StatusCode::UNAUTHORIZED);
    let wrong = Request::get("/api/v1/me").header("authorization", "Bearer nope").body(Body::empty()).unwrap();
    let (s, _, v) = app.call(wrong).await;
    assert_eq!((s, code(&v)), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    let cookie =
        Request::get("/api/v1/me").header("cookie", format!("session={}", app.token)).body(Body::empty()).unwrap();
    assert_eq!(app.call(cookie).await.0, StatusCode::UNAUTHORIZED, "the API never accepts a cookie");
    // HEAD never redeems a download token; other unknown methods are 405 with Allow.
    let head = Request::head("/api/v1/download/sometoken").body(Body::empty()).unwrap();
    let (s, h, _) = app.call(head).await;
    assert_eq!((s, h.get("allow").and_then(|v| v.to_str().ok())), (StatusCode::METHOD_NOT_ALLOWED, Some("GET")));
    let (s, h, _) = app.call(app.req(Method::PUT, "/api/v1/me").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert!(h.get("allow").is_some());
    // A JSON body announced larger than the limit: 413, before it is read.
    let big = app
        .req(Method::POST, "/api/v1/clients")
        .header("content-type", "application/json")
        .header("content-length", "1000000")
        .header("expect", "100-continue")
        .body(Body::empty())
        .unwrap();
    let (s, _, v) = app.call(big).await;
    assert_eq!((s, code(&v)), (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large")));
}

#[tokio::test]
async fn every_route_is_described_with_its_errors_and_enums() {
    let app = spawn_app().await;
    let (s, _, doc) = app.call(Request::get("/api/v1/openapi.json").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/session",
        "/api/v1/me",
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/clients",
        "/api/v1/clients/{id}",
        "/api/v1/clients/{id}/bsn",
        "/api/v1/clients/{id}/coach",
        "/api/v1/clients/{id}/close",
        "/api/v1/clients/{id}/restriction",
        "/api/v1/clients/{id}/access-log",
        "/api/v1/clients/{id}/documents",
        "/api/v1/documents/{id}",
        "/api/v1/documents/{id}/download-tokens",
        "/api/v1/download/{token}",
        "/api/v1/substitutions",
        "/api/v1/substitutions/{id}",
        "/api/v1/audit",
        "/api/v1/audit/verify",
    ] {
        assert!(paths.contains_key(path), "{path} is not described");
    }
    // Every operation answers 500 and 503 in the error format; every secured
    // one 401; every one with a body 400, 413, 415 and 422.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let secured = op.get("security").is_some_and(|s| !s.as_array().unwrap().is_empty());
            let mut need = vec!["500", "503"];
            if secured {
                need.push("401");
            }
            if op.get("requestBody").is_some() {
                need.extend(["400", "413", "415", "422"]);
            }
            for status in need {
                let r = &responses[status];
                assert!(r.is_object(), "{method} {path} does not describe {status}");
                if status != "200" {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
    // The enums and formats are stated.
    let schemas = &doc["components"]["schemas"];
    let role = serde_json::to_string(&schemas["Role"]["enum"]).unwrap();
    assert_eq!(role, r#"["management","office","administration","coach","freelance_coach"]"#);
    assert_eq!(schemas["Purpose"]["enum"].as_array().unwrap().len(), 6);
    assert_eq!(schemas["DocumentType"]["enum"].as_array().unwrap().len(), 10);
    assert_eq!(schemas["Client"]["properties"]["birth_date"]["format"], "date");
    assert_eq!(schemas["Client"]["properties"]["id"]["format"], "uuid");
    assert_eq!(schemas["Client"]["properties"]["created_at"]["format"], "date-time");
    let codes = schemas["ErrorDetail"]["properties"]["code"]["enum"].as_array().unwrap();
    assert_eq!(codes.len(), vault::service::ErrorCode::ALL.len());
    assert!(schemas["NewClient"]["required"].as_array().unwrap().iter().any(|r| r == "birth_date"));
}

#[tokio::test]
async fn free_text_unknown_fields_and_implausible_values_are_refused_without_echo() {
    let app = spawn_app().await;
    let base = json!({"first_name": "Jan", "initials": "J.", "last_name": "Jansen", "birth_date": "1980-02-03",
                      "commissioner": "uwv"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        (with("first_name", json!("Jan\r\nSet-Cookie: x")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("last_name", json!("Jansen\u{1b}[31m")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("city", json!("Utrecht\u{202E}")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("address", json!("Straat\u{0}1")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("initials", json!("J.".repeat(30))), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("birth_date", json!("1800-01-01")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("birth_date", json!("2999-01-01")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("email", json!("geen-adres")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        (with("bsn", json!("111222334")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_bsn"),
        (with("owner", json!("x")), StatusCode::UNPROCESSABLE_ENTITY, "invalid_body"),
        (with("last_name", json!("x".repeat(2_000_000))), StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
    ];
    for (i, (body, status, want)) in cases.into_iter().enumerate() {
        let (s, v) = app.send_json(Method::POST, "/api/v1/clients", &body).await;
        assert_eq!((s, code(&v)), (status, Some(want)), "case {i}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(!msg.contains("Set-Cookie") && !msg.contains("111222334") && !msg.contains("geen-adres"), "{msg}");
    }
    // A PATCH with a field it does not know changes nothing and says so.
    let (_, _, me) = app.call(app.req(Method::GET, "/api/v1/me").body(Body::empty()).unwrap()).await;
    let path = format!("/api/v1/users/{}", me["id"].as_str().unwrap());
    let (s, v) = app.send_json(Method::PATCH, &path, &json!({"password": "nieuw wachtwoord!"})).await;
    assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")));
    // A body that is not an object is refused, also when serde could read it.
    let (s, v) = app.send_json(Method::PATCH, &path, &json!([null, null])).await;
    assert_eq!((s, code(&v)), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")));
    // Nothing was created by any of it.
    let (_, _, list) = app.call(app.req(Method::GET, "/api/v1/clients").body(Body::empty()).unwrap()).await;
    assert_eq!(list["clients"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_form_whose_envelope_never_ends_is_refused_without_buffering_it() {
    let app = spawn_app().await;
    let client = app.client().await;
    // A part header that never ends: 3 MiB without the blank line.
    let mut body = b"--X\r\nContent-Disposition: form-data; name=\"type\"\r\nX-Padding: ".to_vec();
    body.extend(std::iter::repeat_n(b'a', 3 << 20));
    let req = app
        .req(Method::POST, &format!("/api/v1/clients/{client}/documents"))
        .header("content-type", "multipart/form-data; boundary=X")
        .body(Body::from(body))
        .unwrap();
    let (s, _, v) = app.call(req).await;
    assert_eq!((s, code(&v)), (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large")), "{v}");
}
