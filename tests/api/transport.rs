//! The transport: timeouts, limits, proxies, the 413 a client receives.

use crate::helpers::*;

/// `host:port` of the server.
fn addr(env: &Env) -> String {
    env.server.base.trim_start_matches("http://").to_string()
}

/// Send `head` and `body` completely before reading anything (as Python's
/// `http.client` and many form posts do), then read the whole answer.
async fn send_all_then_read(env: &Env, head: String, body: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr(env)).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // A write that fails (the server closed before reading it all) shows as
    // a missing answer below.
    if s.write_all(body).await.is_err() {
        return String::new();
    }
    let _ = s.flush().await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_client_that_sends_an_oversized_body_before_reading_still_receives_413() {
    let env = start(support::embedded().await, &[("KLUIS_MAX_UPLOAD_BYTES", "100000")]).await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    let token = admin.token.clone().unwrap();
    // An upload announced larger than the limit, and larger than what the
    // sockets buffer: the server must read it to let the client finish.
    let body = vec![b'x'; 40_000_000];
    let head = format!(
        "POST /api/v1/clients/{client}/documents HTTP/1.1\r\nHost: kluis\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let answer = send_all_then_read(&env, head, &body).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", &answer[..answer.len().min(300)]);
    assert!(answer.contains("\"too_large\""), "{answer}");
    // A JSON body announced larger than its limit: 413 too_large, not invalid_body.
    let body = vec![b' '; 200_000];
    let head = format!(
        "POST /api/v1/clients HTTP/1.1\r\nHost: kluis\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let answer = send_all_then_read(&env, head, &body).await;
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("\"too_large\""), "{answer}");
    // An upload without a length that grows past the limit while streaming.
    let (data, _) = pdf(150_000);
    let stream =
        futures::stream::iter(data.chunks(10_000).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let form = reqwest::multipart::Form::new()
        .text("type", "intake")
        .part("file", reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream)).file_name("big.pdf"));
    let (s, v) = admin
        .send(admin.req(reqwest::Method::POST, &format!("/api/v1/clients/{client}/documents")).multipart(form))
        .await;
    assert_eq!((s, v["error"]["code"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large")), "{v}");
    assert_no_leftovers(&env, 0).await;
}

#[tokio::test]
async fn slow_and_silent_clients_are_cut_off_and_cannot_hold_the_upload_slots() {
    let env = start(
        support::embedded().await,
        &[
            ("KLUIS_HEADER_TIMEOUT", "1s"),
            ("KLUIS_BODY_IDLE_TIMEOUT", "1s"),
            ("KLUIS_MAX_CONCURRENT_UPLOADS", "1"),
            ("KLUIS_SLOT_WAIT", "1s"),
        ],
    )
    .await;
    let admin = env.admin().await;
    let client = env.client(&admin).await;
    let token = admin.token.clone().unwrap();

    // Half a request line, then nothing: the connection is closed.
    let mut s = tokio::net::TcpStream::connect(addr(&env)).await.unwrap();
    s.write_all(b"GET /api/v1/me HTT").await.unwrap();
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a half-sent request line must be cut off: {read:?}");

    // An upload that sends its headers and the start of the body, then
    // nothing: 408, and nothing is kept.
    let (pdf_data, _) = pdf(50_000);
    let mut body = b"--B\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nintake\r\n--B\r\n\
        Content-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n"
        .to_vec();
    body.extend_from_slice(&pdf_data[..20_000]);
    let head = format!(
        "POST /api/v1/clients/{client}/documents HTTP/1.1\r\nHost: kluis\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {}\r\n\r\n",
        body.len() + 40_000
    );
    let mut stalled = tokio::net::TcpStream::connect(addr(&env)).await.unwrap();
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), stalled.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("\"timeout\""), "{answer}");

    // One upload trickles (a byte now and then) and holds the only slot:
    // another waits at most KLUIS_SLOT_WAIT, then hears 503 busy.
    let mut trickle = tokio::net::TcpStream::connect(addr(&env)).await.unwrap();
    trickle.write_all(head.as_bytes()).await.unwrap();
    trickle.write_all(&body).await.unwrap();
    let keep_alive = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if trickle.write_all(b"x").await.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let form = reqwest::multipart::Form::new()
        .text("type", "intake")
        .part("file", reqwest::multipart::Part::bytes(pdf(1000).0).file_name("b.pdf"));
    let resp = admin
        .req(reqwest::Method::POST, &format!("/api/v1/clients/{client}/documents"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "busy");
    keep_alive.abort();
    let _ = keep_alive.await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_no_leftovers(&env, 0).await;
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let env = start(support::embedded().await, &[("KLUIS_MAX_CONNECTIONS_PER_ADDRESS", "3")]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(tokio::net::TcpStream::connect(addr(&env)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The fourth is closed at once, before it can send a request.
    let mut fourth = tokio::net::TcpStream::connect(addr(&env)).await.unwrap();
    let _ = fourth.write_all(b"GET /healthz HTTP/1.1\r\nHost: kluis\r\n\r\n").await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), fourth.read_to_end(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))) && buf.is_empty(), "{read:?} {:?}", String::from_utf8_lossy(&buf));
    // A held connection is still served, and a freed slot can be used again.
    let s = &mut held[0];
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: kluis\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(env.server.get("/healthz").await.0, 200);
}

/// Three wrong logins from `xff` (as seen through a proxy) and the answers.
async fn logins_from(env: &Env, xff: &str, n: usize) -> Vec<StatusCode> {
    let anon = Api::anonymous(&env.server);
    let mut out = Vec::new();
    for i in 0..n {
        let body = json!({"username": format!("nobody{i}"), "password": PASSWORD, "otp": "123456"});
        let r = anon.req(reqwest::Method::POST, "/api/v1/session").header("x-forwarded-for", xff).json(&body);
        out.push(anon.send(r).await.0);
    }
    out
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_one_limited_and_audited() {
    let env = start(
        support::embedded().await,
        &[("KLUIS_TRUSTED_PROXIES", "127.0.0.1/32"), ("KLUIS_LOGIN_RATE_PER_MINUTE", "3")],
    )
    .await;
    let four = logins_from(&env, "203.0.113.7", 4).await;
    assert_eq!(
        four,
        [StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS]
    );
    // Another client behind the same balancer has a budget of its own;
    // IPv6 clients are keyed on their /64.
    assert_eq!(logins_from(&env, "203.0.113.8", 1).await, [StatusCode::UNAUTHORIZED]);
    assert_eq!(logins_from(&env, "2001:db8:1:2::1", 3).await, [StatusCode::UNAUTHORIZED; 3]);
    assert_eq!(logins_from(&env, "2001:db8:1:2::ffff", 1).await, [StatusCode::TOO_MANY_REQUESTS]);
    // The audit log names the forwarded client.
    let admin = env.admin().await;
    let (_, v) = admin.get("/api/v1/audit?action=session.login&limit=50").await;
    let peers: Vec<&str> =
        v["events"].as_array().unwrap().iter().filter_map(|e| e["details"]["peer"].as_str()).collect();
    assert!(peers.contains(&"203.0.113.8"), "{peers:?}");

    // Without a trusted proxy, X-Forwarded-For is ignored: one budget.
    let env = start(support::embedded().await, &[("KLUIS_LOGIN_RATE_PER_MINUTE", "3")]).await;
    let mut seen = Vec::new();
    for xff in ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4"] {
        seen.extend(logins_from(&env, xff, 1).await);
    }
    assert_eq!(seen[3], StatusCode::TOO_MANY_REQUESTS, "{seen:?}");
}

#[tokio::test]
async fn a_flood_of_logins_is_answered_busy_instead_of_exhausting_memory() {
    let env = start(support::embedded().await, &[("KLUIS_MAX_CONCURRENT_LOGINS", "1")]).await;
    let anon = Api::anonymous(&env.server);
    let tries = (0..20).map(|i| {
        let anon = anon.clone();
        async move {
            let body = json!({"username": format!("flood{i}"), "password": PASSWORD, "otp": "123456"});
            let resp = anon.req(reqwest::Method::POST, "/api/v1/session").json(&body).send().await.unwrap();
            (resp.status(), resp.headers().get("retry-after").is_some())
        }
    });
    let answers = futures::future::join_all(tries).await;
    assert!(
        answers.iter().all(|(s, _)| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::SERVICE_UNAVAILABLE),
        "{answers:?}"
    );
    let busy: Vec<_> = answers.iter().filter(|(s, _)| *s == StatusCode::SERVICE_UNAVAILABLE).collect();
    assert!(!busy.is_empty(), "with one password check at a time, a burst of 20 must be turned away: {answers:?}");
    assert!(busy.iter().all(|(_, retry)| *retry), "busy answers say when to retry");
}

#[tokio::test]
async fn metrics_are_not_served_on_the_public_listener_by_default() {
    let env = start(support::embedded().await, &[("KLUIS_METRICS", "127.0.0.1:0")]).await;
    assert_eq!(env.server.get("/metrics").await.0, 404);
    // The separate listener answers (its address is in the log).
    let text = metrics_text(&env).await;
    assert!(text.contains("kluis_http_requests_total"), "the request to /metrics above is counted there: {text}");
}
