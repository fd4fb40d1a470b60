//! Load generator for a running `kluis serve` (see bench/gateway).
//!
//! ```text
//! load --base http://127.0.0.1:8080 --username U --password P --totp-secret B32 \
//!      [--uploads 200] [--concurrency 200] [--size 1048576]
//! ```
//!
//! Logs in, creates a client, then runs `uploads` uploads of `size` random
//! bytes (a PDF header in front) with `concurrency` in flight, then issues a
//! token for each and downloads them all with the same concurrency, checking
//! every byte. Prints one JSON line per phase: requests, errors, wall time,
//! requests per second, p50/p90/p99 latency in milliseconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{arg, percentile_ms};

fn report(phase: &str, n: usize, errors: usize, wall: Duration, mut lat: Vec<Duration>) -> Value {
    lat.sort();
    json!({
        "phase": phase, "requests": n, "errors": errors, "wall_s": wall.as_secs_f64(),
        "rps": n as f64 / wall.as_secs_f64(),
        "p50_ms": percentile_ms(&lat, 0.50), "p90_ms": percentile_ms(&lat, 0.90), "p99_ms": percentile_ms(&lat, 0.99),
    })
}

fn content(i: usize, size: usize) -> Vec<u8> {
    let mut d = b"%PDF-1.7\n".to_vec();
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while d.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        d.extend_from_slice(&x.to_le_bytes());
    }
    d.truncate(size);
    d
}

#[tokio::main]
async fn main() {
    let base = arg("--base", Some("http://127.0.0.1:8080"));
    let username = arg("--username", None);
    let password = arg("--password", None);
    let secret = arg("--totp-secret", None);
    let uploads: usize = arg("--uploads", Some("200")).parse().unwrap();
    let concurrency: usize = arg("--concurrency", Some("200")).parse().unwrap();
    let size: usize = arg("--size", Some("1048576")).parse().unwrap();

    let http = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap();
    let totp = totp_rs::Builder::new().with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap()).build().unwrap();
    let login: Value = http
        .post(format!("{base}/api/v1/session"))
        .json(&json!({"username": username, "password": password, "otp": totp.generate_current().to_string()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().expect("login failed").to_string();
    let client: Value = http
        .post(format!("{base}/api/v1/clients"))
        .bearer_auth(&token)
        .json(&json!({"first_name": "Load", "initials": "L.", "last_name": "Test", "birth_date": "1970-01-01", "commissioner": "private"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let client = client["id"].as_str().unwrap().to_string();
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));

    // Uploads.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..uploads {
        let (http, base, token, client, sem) = (http.clone(), base.clone(), token.clone(), client.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let data = content(i, size);
            let form = reqwest::multipart::Form::new()
                .text("type", "intake")
                .part("file", reqwest::multipart::Part::bytes(data).file_name(format!("load-{i}.pdf")));
            let t = Instant::now();
            let r = http
                .post(format!("{base}/api/v1/clients/{client}/documents"))
                .bearer_auth(&token)
                .multipart(form)
                .send()
                .await;
            let lat = t.elapsed();
            match r {
                Ok(r) if r.status().as_u16() == 201 => {
                    let v: Value = r.json().await.unwrap_or(Value::Null);
                    (lat, v["id"].as_str().map(|s| (i, s.to_string())))
                }
                Ok(r) => {
                    eprintln!("upload {i}: {}", r.status());
                    (lat, None)
                }
                Err(e) => {
                    eprintln!("upload {i}: {e}");
                    (lat, None)
                }
            }
        }));
    }
    let mut lat = Vec::new();
    let mut docs = Vec::new();
    for t in tasks {
        let (l, d) = t.await.unwrap();
        lat.push(l);
        docs.extend(d);
    }
    let errors = uploads - docs.len();
    println!("{}", report("upload", uploads, errors, started.elapsed(), lat));

    // Tokens (not timed as part of the download phase).
    let mut urls = Vec::new();
    for (i, id) in &docs {
        let v: Value = http
            .post(format!("{base}/api/v1/documents/{id}/download-tokens"))
            .bearer_auth(&token)
            .json(&json!({"purpose": "administration"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        urls.push((*i, v["url"].as_str().unwrap().to_string()));
    }

    // Downloads, every byte checked.
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, url) in urls.clone() {
        let (http, base, sem) = (http.clone(), base.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let t = Instant::now();
            let ok = match http.get(format!("{base}{url}")).send().await {
                Ok(r) if r.status().as_u16() == 200 => {
                    r.bytes().await.map(|b| b[..] == content(i, size)[..]).unwrap_or(false)
                }
                _ => false,
            };
            (t.elapsed(), ok)
        }));
    }
    let mut lat = Vec::new();
    let mut bad = 0;
    for t in tasks {
        let (l, ok) = t.await.unwrap();
        lat.push(l);
        bad += usize::from(!ok);
    }
    println!("{}", report("download", urls.len(), bad, started.elapsed(), lat));
    if errors + bad > 0 {
        std::process::exit(1);
    }
}
