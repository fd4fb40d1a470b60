//! Purge benchmark (issue 9; see BENCHMARKS.md and `bench/purge`).
//!
//! ```text
//! purge_bench --dir /tmp/pb [--docs 100000] [--runs 3] [--loaded-docs 20000] [--uploads 50]
//!             [--catalog-docs 1000000] [--passes 200] [--database-url URL] [--storage-url URL]
//! ```
//!
//! 1. **Rate**, `--runs` times: `--docs` documents uploaded through the
//!    vault (encrypted objects of 1 KiB of content), their dates moved into
//!    the past, then one purge pass (`Vault::purge_pass`, what `kluis purge`
//!    and the worker run): keys, tombstones, events, objects. The baseline,
//!    in the same run: as many objects of the same size put straight into
//!    the same store, then deleted with the store's own API (`object_store`
//!    `delete`, as many in flight as the purge uses).
//! 2. **Under load**: `--loaded-docs` due documents purged alone, and again
//!    while `--uploads` tasks upload 64 KiB documents without pause.
//! 3. **Empty pass**: the catalog filled to `--catalog-docs` documents
//!    (bulk SQL; live ones with no date yet or a date years ahead), then
//!    `--passes` purge passes that find nothing: p50/p99, and the query
//!    plan of the search for due documents.
//!
//! Prints one JSON object per measurement.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use serde_json::json;
use uuid::Uuid;
use vault::rekey::Silent;
use vault::store::ObjectName;

mod common;
use common::{arg, percentile_ms};

/// Deletes in flight for the baseline: the purge's own number.
const IN_FLIGHT: usize = 16;

fn body(data: Bytes) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::iter([Ok(data)])
}

fn new_doc(client: Uuid) -> vault::NewDocument {
    vault::NewDocument {
        client_id: client,
        doc_type: "correspondence".into(),
        title: Some("Brief aan werkgever".into()),
        filename: "brief.pdf".into(),
        content_type: "application/pdf".into(),
        uploaded_by: None,
        retention_until: None,
        retention_reason: None,
        view_only: false,
        supersedes: None,
    }
}

async fn exec(v: &vault::Vault, sql: &str) {
    let mut tx = v.catalog_for_tests().begin(chrono::Utc::now().timestamp_micros()).await.unwrap();
    tx.execute_raw_for_tests(sql).await.unwrap();
    tx.commit().await.unwrap();
}

/// `n` documents through the vault, 64 at a time; their ids.
async fn upload(v: &Arc<vault::Vault>, client: Uuid, n: u64, size: usize) -> Vec<Uuid> {
    let data = Bytes::from(vec![0x5a; size]);
    futures::stream::iter(0..n)
        .map(|_| {
            let (v, data) = (v.clone(), data.clone());
            async move { v.put_document(new_doc(client), body(data)).await.unwrap().id }
        })
        .buffer_unordered(64)
        .collect()
        .await
}

/// Upload `n` documents and make them due now.
async fn due(v: &Arc<vault::Vault>, client: Uuid, n: u64) {
    let started = Instant::now();
    upload(v, client, n, 1024).await;
    exec(v, "UPDATE documents SET retention_until = 1, retention_source = 'manual' WHERE state = 'active'").await;
    eprintln!("seeded {n} due documents in {:.1} s", started.elapsed().as_secs_f64());
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let dir = std::path::PathBuf::from(arg("--dir", None));
    let docs: u64 = arg("--docs", Some("100000")).parse().unwrap();
    let runs: usize = arg("--runs", Some("3")).parse().unwrap();
    let loaded_docs: u64 = arg("--loaded-docs", Some("20000")).parse().unwrap();
    let uploaders: usize = arg("--uploads", Some("50")).parse().unwrap();
    let catalog_docs: u64 = arg("--catalog-docs", Some("1000000")).parse().unwrap();
    let passes: usize = arg("--passes", Some("200")).parse().unwrap();
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
    exec(
        &v,
        &format!(
            "INSERT INTO clients (id, first_name, initials, last_name, birth_date, commissioner, coach_id, status, \
             ended_at, restricted, created_at, updated_at) VALUES ('{client}', 'Jan', 'J.', 'Jansen', '1980-01-01', \
             'uwv', NULL, 'active', NULL, FALSE, {now}, {now})"
        ),
    )
    .await;
    let base = serde_json::json!({ "backend": backend, "store": store });

    // 1. Rate against direct deletes.
    let mut ratios = Vec::new();
    let (mut ours_each, mut base_each) = (Vec::new(), Vec::new());
    for run in 0..runs {
        due(&v, client, docs).await;
        let one = v.purge_preview(1).await.unwrap();
        let mut tx = v.catalog_for_tests().snapshot(0).await.unwrap();
        let sample = tx.get_document(one[0].id).await.unwrap();
        drop(tx);
        let object_size = v.store_for_tests().size(&ObjectName::from_catalog(sample.object_name)).await.unwrap();
        // The baseline's objects: the same number, the same size, the same store.
        let raw = v.store_for_tests().object_store_for_benchmarks();
        let blob = Bytes::from(vec![0xa5; object_size as usize]);
        let names: Vec<object_store::path::Path> =
            (0..docs).map(|i| object_store::path::Path::from(format!("bench-direct/{run}/{i}"))).collect();
        futures::stream::iter(names.clone())
            .map(|p| {
                let (raw, blob) = (raw.clone(), blob.clone());
                async move { raw.put(&p, blob.into()).await.unwrap() }
            })
            .buffer_unordered(64)
            .collect::<Vec<_>>()
            .await;
        let started = Instant::now();
        futures::stream::iter(names)
            .map(|p| {
                let raw = raw.clone();
                async move { raw.delete(&p).await.unwrap() }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        let direct = docs as f64 / started.elapsed().as_secs_f64();

        eprintln!("purging {docs} (pid {})", std::process::id());
        let started = Instant::now();
        let r = v.purge_pass(&Silent).await.unwrap();
        let ours = docs as f64 / started.elapsed().as_secs_f64();
        assert_eq!((r.destroyed, r.objects_deleted, r.object_failures), (docs, docs, 0), "{r:?}");
        ratios.push(ours / direct);
        ours_each.push(ours.round());
        base_each.push(direct.round());
        println!(
            "{}",
            json!({ "phase": "rate", "run": run, "documents": docs, "object_bytes": object_size,
                    "purged_per_s": ours.round(), "direct_deletes_per_s": direct.round(), "ratio": ours / direct,
                    "setup": base })
        );
    }
    println!(
        "{}",
        json!({ "phase": "rate-median", "documents": docs, "runs": runs, "purged_per_s": median(ours_each.clone()),
                "direct_deletes_per_s": median(base_each.clone()), "ratio": median(ratios.clone()),
                "purged_each": ours_each, "direct_each": base_each, "setup": base })
    );

    // 2. Under load: alone, then beside `uploaders` uploads.
    due(&v, client, loaded_docs).await;
    let started = Instant::now();
    v.purge_pass(&Silent).await.unwrap();
    let alone = loaded_docs as f64 / started.elapsed().as_secs_f64();
    due(&v, client, loaded_docs).await;
    let stop = Arc::new(AtomicBool::new(false));
    let uploaded = Arc::new(AtomicU64::new(0));
    let data = Bytes::from(vec![0x3c; 64 << 10]);
    let tasks: Vec<_> = (0..uploaders)
        .map(|_| {
            let (v, stop, uploaded, data) = (v.clone(), stop.clone(), uploaded.clone(), data.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    v.put_document(new_doc(client), body(data.clone())).await.unwrap();
                    latencies.push(t.elapsed());
                    uploaded.fetch_add(1, Ordering::Relaxed);
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = uploaded.load(Ordering::Relaxed);
    let started = Instant::now();
    let r = v.purge_pass(&Silent).await.unwrap();
    let took = started.elapsed();
    let during = uploaded.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    lat.sort();
    let loaded = r.destroyed as f64 / took.as_secs_f64();
    println!(
        "{}",
        json!({ "phase": "under-load", "documents": loaded_docs, "uploads_in_flight": uploaders,
                "purged_per_s_alone": alone.round(), "purged_per_s_loaded": loaded.round(),
                "loaded_vs_alone": loaded / alone, "uploads_during_purge": during,
                "uploads_per_s_during": (during as f64 / took.as_secs_f64()).round(),
                "upload_p50_ms": percentile_ms(&lat, 0.5), "upload_p99_ms": percentile_ms(&lat, 0.99),
                "setup": base })
    );
    // The uploads just made are not due; purge what the load left due (none).
    exec(&v, "DELETE FROM object_deletions").await;

    // 3. An empty pass over a catalog of `catalog_docs` documents.
    let started = Instant::now();
    let have: i64 = {
        let mut tx = v.catalog_for_tests().snapshot(0).await.unwrap();
        let n = tx.count_documents_for_tests().await.unwrap();
        drop(tx);
        n
    };
    let pg = backend == "postgres";
    let blob = if pg { "'\\x00112233445566778899'::bytea" } else { "X'00112233445566778899'" };
    let year = 365 * 86_400_000_000i64;
    let mut made = have.max(0) as u64;
    while made < catalog_docs {
        let n = 1000.min(catalog_docs - made);
        let rows: Vec<String> = (made..made + n)
            .map(|d| {
                let id = Uuid::from_u128(0xB0C0_0000_0000_0000_0000_0000_0000_0000 | d as u128);
                // Nine in ten wait for their trajectory's end; one in ten has a date ahead.
                let until = if d % 10 == 0 {
                    (now + year + (d as i64 % 365) * 86_400_000_000).to_string()
                } else {
                    "NULL".into()
                };
                format!(
                    "('{id}', '{client}', 'work_plan', 'Plan', 'plan.pdf', 'application/pdf', 1000, 'ab', 'obj-{id}', \
                     {blob}, 1, 'active', NULL, {now}, {until}, FALSE)"
                )
            })
            .collect();
        exec(
            &v,
            &format!(
                "INSERT INTO documents (id, client_id, doc_type, title, filename, content_type, size, sha256, \
                 object_name, wrapped_key, key_version, state, uploaded_by, uploaded_at, retention_until, legal_hold) \
                 VALUES {}",
                rows.join(", ")
            ),
        )
        .await;
        made += n;
        if made.is_multiple_of(200_000) {
            eprintln!("catalog at {made} documents ({:.0} s)", started.elapsed().as_secs_f64());
        }
    }
    exec(&v, "ANALYZE").await;
    for _ in 0..20 {
        v.purge_pass(&Silent).await.unwrap();
    }
    let mut times = Vec::new();
    for _ in 0..passes {
        let t = Instant::now();
        let r = v.purge_pass(&Silent).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(r, Default::default());
    }
    times.sort();
    let plan = {
        let mut tx = v.catalog_for_tests().snapshot(0).await.unwrap();
        tx.explain_due(chrono::Utc::now().timestamp_micros()).await.unwrap()
    };
    let counts = v.retention_counts().await.unwrap();
    println!(
        "{}",
        json!({ "phase": "empty-pass", "catalog_documents": made, "passes": passes,
                "p50_ms": percentile_ms(&times, 0.5), "p99_ms": percentile_ms(&times, 0.99),
                "max_ms": percentile_ms(&times, 1.0), "due": counts.due, "plan": plan, "setup": base })
    );
}
