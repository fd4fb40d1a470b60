//! Export benchmark (issue 10; see BENCHMARKS.md and `bench/export`).
//!
//! ```text
//! export_bench --dir /tmp/eb [--docs 20] [--size-mib 16] [--runs 5] [--database-url URL] [--storage-url URL]
//! ```
//!
//! A client with `--docs` documents of `--size-mib` MiB each, uploaded
//! through the vault. Then `--runs` times, in alternating order:
//! - **export**: `Vault::export_client_as_operator` (what `kluis export` and
//!   `GET /clients/{id}/export` stream), the archive read to its end;
//! - **baseline**: the same documents read one after the other with
//!   `Vault::read_document` (each decrypted and authenticated, as a
//!   download streams it), the bytes counted.
//!
//! Both read the same ciphertext from the same store and decrypt it; the
//! ratio shows what the archive adds (JSON files, CRC-32, entry framing,
//! the channel between the writer task and the reader). The export's peak
//! memory is measured as the process's high-water mark (`VmHWM`, reset
//! through `/proc/self/clear_refs`) above its RSS before the export.
//!
//! Prints one JSON object per measurement, then the medians.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;
use uuid::Uuid;

mod common;
use common::arg;

fn proc_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field).map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0)))
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let dir = std::path::PathBuf::from(arg("--dir", None));
    let docs: usize = arg("--docs", Some("20")).parse().unwrap();
    let size_mib: usize = arg("--size-mib", Some("16")).parse().unwrap();
    let runs: usize = arg("--runs", Some("5")).parse().unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let database_url = arg("--database-url", Some(&format!("sqlite://{}", dir.join("kluis.db").display())));
    let storage_url = arg("--storage-url", Some(&format!("file://{}", dir.join("objects").display())));
    let cfg = vault::VaultConfig {
        database_url: database_url.clone(),
        storage_url: storage_url.clone(),
        s3: vault::store::S3Settings::from_env(),
        master_key: vault::MasterKeySource::File { path: dir.join("master.key"), create_if_missing: true },
    };
    let v = Arc::new(vault::Vault::open(&cfg).await.expect("open vault"));
    let backend = if database_url.starts_with("postgres") { "postgres" } else { "sqlite" };
    let store = if storage_url.starts_with("s3") { "seaweedfs" } else { "files" };
    let now = chrono::Utc::now().timestamp_micros();
    let client = Uuid::new_v4();
    let mut tx = v.catalog_for_tests().begin(now).await.unwrap();
    tx.execute_raw_for_tests(&format!(
        "INSERT INTO clients (id, first_name, initials, last_name, birth_date, commissioner, coach_id, status, \
         ended_at, restricted, created_at, updated_at) VALUES ('{client}', 'Jan', 'J.', 'Jansen', '1980-01-01', \
         'uwv', NULL, 'active', NULL, FALSE, {now}, {now})"
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let size = size_mib << 20;
    let mut ids = Vec::new();
    for i in 0..docs {
        let data: Vec<u8> = (0..size).map(|b| ((b * 131 + i * 7) % 251) as u8).collect();
        let meta = vault::NewDocument {
            client_id: client,
            doc_type: "progress_report".into(),
            title: Some(format!("Voortgang {i}")),
            filename: format!("voortgang-{i}.pdf"),
            content_type: "application/pdf".into(),
            uploaded_by: None,
            retention_until: None,
            retention_reason: None,
            view_only: false,
            supersedes: None,
        };
        let body = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data))]);
        ids.push(v.put_document(meta, body).await.unwrap().id);
    }
    let total_mib = (docs * size_mib) as f64;
    let base = json!({ "backend": backend, "store": store, "docs": docs, "size_mib": size_mib });

    let (mut ours, mut baseline, mut ratios, mut peaks) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let export_run = async || {
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let before = proc_kib("VmRSS:");
            let t = Instant::now();
            let mut e = v.export_client_as_operator(client, vault::service::ExportQuery::default()).await.unwrap();
            let mut n = 0u64;
            while let Some(chunk) = e.body.next().await {
                n += chunk.unwrap().len() as u64;
            }
            assert_eq!(n, e.size, "the archive is as long as announced");
            let s = t.elapsed().as_secs_f64();
            (s, proc_kib("VmHWM:").saturating_sub(before))
        };
        let read_all = async || {
            let t = Instant::now();
            let mut n = 0u64;
            for id in &ids {
                let (_, mut s) = v.read_document(*id).await.unwrap();
                while let Some(chunk) = s.next().await {
                    n += chunk.unwrap().len() as u64;
                }
            }
            assert_eq!(n, (docs * size) as u64);
            t.elapsed().as_secs_f64()
        };
        let (e, peak, b) = if run % 2 == 0 {
            let (e, peak) = export_run().await;
            (e, peak, read_all().await)
        } else {
            let b = read_all().await;
            let (e, peak) = export_run().await;
            (e, peak, b)
        };
        let (e_rate, b_rate) = (total_mib / e, total_mib / b);
        println!(
            "{}",
            json!({ "base": base, "run": run, "export_mib_s": e_rate, "read_documents_mib_s": b_rate,
                    "ratio": e_rate / b_rate, "export_peak_rss_mib": peak as f64 / 1024.0 })
        );
        ours.push(e_rate);
        baseline.push(b_rate);
        ratios.push(e_rate / b_rate);
        peaks.push(peak as f64 / 1024.0);
    }
    println!(
        "{}",
        json!({ "base": base, "summary": "medians", "export_mib_s": median(ours), "read_documents_mib_s": median(baseline),
                "ratio": median(ratios), "export_peak_rss_mib": median(peaks) })
    );
}
