//! One document round trip through a real `Vault`, with timings and memory.
//!
//!     cargo run --release -p vault --example roundtrip -- --input FILE [options]
//!
//! Opens a vault, inserts a client row, streams FILE from disk into
//! `Vault::put_document` (64 KiB `ReaderStream` chunks), then streams
//! `Vault::read_document` back out (into a file that is fsynced, or discarded),
//! and prints JSON lines on stdout (MB = 10^6 bytes):
//!
//!   {"event":"open", "idle_rss_kib":..}
//!   {"event":"roundtrip", "size":.., "put_s":.., "put_mb_s":.., "get_s":.., "get_mb_s":..,
//!    "idle_rss_kib":.., "peak_put_rss_kib":.., "peak_get_rss_kib":.., "peak_rss_kib":..,
//!    "peak_above_idle_kib":.., "verified":.., ...}
//!
//! Idle RSS is `VmRSS` after the vault is open and the client row inserted,
//! just before the transfer. Peaks are `VmHWM`, reset to the current RSS
//! (`/proc/self/clear_refs` = 5) right before the put and before the get, so
//! they cover the transfer only (`hwm_reset` says whether the reset worked; if
//! not, the peaks include start-up).
//!
//! Options:
//!   --input FILE          plaintext to upload (required)
//!   --output FILE         write the document read back here and fsync it;
//!                         omitted or `-`: discard the bytes (nothing written)
//!   --verify              check the result: with --output, hash the written
//!                         file after the timings (untimed); when discarding,
//!                         hash in flight (timed). Also compares the catalog's
//!                         sha256 with the input's (untimed, before the put).
//!   --data-dir DIR        key file, SQLite catalog and file:// store
//!                         (default: a temporary directory, removed at exit)
//!   --database-url URL    catalog (env KLUIS_DATABASE_URL; default sqlite in DATA_DIR)
//!   --storage-url URL     blob store (env KLUIS_STORAGE_URL; default file://DATA_DIR/objects),
//!                         e.g. s3://kluis-test/bench-1234 with KLUIS_S3_ENDPOINT,
//!                         AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY set
//!   --chunk BYTES         read size of the input stream (default 65536)
//!   --keep                keep the document (default: destroy it at the end, untimed)
//!   --label TEXT          copied into the JSON lines
//!
//! The master key is `DATA_DIR/master.key`, created if missing: reuse the
//! same --data-dir for every run against the same (e.g. PostgreSQL) catalog.

use std::path::{Path, PathBuf};
use std::time::Instant;

use futures::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;
use uuid::Uuid;
use vault::catalog::NewClientRow;
use vault::store::S3Settings;
use vault::{MasterKeySource, NewDocument, Vault, VaultConfig};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

const CHUNK: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Args {
    input: PathBuf,
    output: Option<PathBuf>,
    verify: bool,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    storage_url: Option<String>,
    keep: bool,
    label: Option<String>,
    chunk: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: roundtrip --input FILE [--output FILE|-] [--verify] [--data-dir DIR] \
         [--database-url URL] [--storage-url URL] [--chunk BYTES] [--keep] [--label TEXT]"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args { chunk: CHUNK, ..Args::default() };
    let mut it = std::env::args().skip(1);
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    a.database_url = env("KLUIS_DATABASE_URL");
    a.storage_url = env("KLUIS_STORAGE_URL");
    let mut input = None;
    while let Some(arg) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--input" => input = Some(PathBuf::from(val())),
            "--output" => {
                let v = val();
                a.output = (v != "-").then(|| PathBuf::from(v));
            }
            "--verify" => a.verify = true,
            "--data-dir" => a.data_dir = Some(PathBuf::from(val())),
            "--database-url" => a.database_url = Some(val()),
            "--storage-url" => a.storage_url = Some(val()),
            "--keep" => a.keep = true,
            "--chunk" => a.chunk = val().parse().ok().filter(|&c| c > 0).unwrap_or_else(|| usage()),
            "--label" => a.label = Some(val()),
            "-h" | "--help" => usage(),
            other => {
                eprintln!("roundtrip: unknown argument {other:?}");
                usage()
            }
        }
    }
    a.input = input.unwrap_or_else(|| usage());
    a
}

/// A field of /proc/self/status in KiB (VmRSS, VmHWM).
fn proc_status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Reset VmHWM to the current RSS (Linux >= 4.0). Returns false if refused.
fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn mb_s(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 { bytes as f64 / secs / 1e6 } else { 0.0 }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(parse_args()).await {
        eprintln!("roundtrip: error: {e}");
        let mut src = e.source();
        while let Some(s) = src {
            eprintln!("  caused by: {s}");
            src = s.source();
        }
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), AnyError> {
    let size = std::fs::metadata(&args.input)?.len();
    let input_sha = if args.verify { Some(sha256_file(&args.input)?) } else { None };

    let _tmp;
    let data_dir = match &args.data_dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            let t = tempfile::tempdir()?;
            let p = t.path().to_path_buf();
            _tmp = t;
            p
        }
    };
    let cfg = VaultConfig {
        database_url: args
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("catalog.db").display())),
        storage_url: args
            .storage_url
            .clone()
            .unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display())),
        s3: S3Settings::from_env(),
        master_key: MasterKeySource::File { path: data_dir.join("master.key"), create_if_missing: true },
    };
    let vault = Vault::open(&cfg).await?;
    let catalog_kind = if cfg.database_url.starts_with("sqlite") { "sqlite" } else { "postgres" };

    let client_id = Uuid::new_v4();
    let mut tx = vault.catalog_for_tests().begin(chrono::Utc::now().timestamp_micros()).await?;
    tx.insert_client(&NewClientRow {
        id: client_id,
        first_name: "Bench".into(),
        initials: "B.".into(),
        last_name: "Mark".into(),
        birth_date: "1970-01-01".into(),
        bsn_sealed: None,
        email: None,
        phone: None,
        address: None,
        postcode: None,
        city: None,
        commissioner: vault::domain::Commissioner::Private,
        coach_id: None,
    })
    .await?;
    tx.commit().await?;

    let idle_rss = proc_status_kib("VmRSS");
    let startup_hwm = proc_status_kib("VmHWM");
    println!(
        "{}",
        json!({"event": "open", "label": args.label, "idle_rss_kib": idle_rss, "startup_hwm_kib": startup_hwm,
               "catalog": catalog_kind, "storage": vault.store_for_tests().describe()})
    );

    // ---- put ----------------------------------------------------------
    let mut hwm_reset = reset_hwm();
    let file = tokio::fs::File::open(&args.input).await?;
    let body = ReaderStream::with_capacity(file, args.chunk);
    let meta = NewDocument {
        client_id,
        doc_type: "other".into(),
        title: Some("benchmark".into()),
        filename: args.input.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
        content_type: "application/octet-stream".into(),
        uploaded_by: None,
        retention_until: None,
        retention_reason: None,
        view_only: false,
        supersedes: None,
    };
    let t = Instant::now();
    let row = vault.put_document(meta, body).await?;
    let put_s = t.elapsed().as_secs_f64();
    let peak_put = proc_status_kib("VmHWM");
    let stored_bytes =
        vault.store_for_tests().size(&vault::store::ObjectName::from_catalog(row.object_name.clone())).await?;

    // ---- get ----------------------------------------------------------
    hwm_reset &= reset_hwm();
    let t = Instant::now();
    let (_row, mut plain) = vault.read_document(row.id).await?;
    let mut got = 0u64;
    let mut inflight = (args.verify && args.output.is_none()).then(Sha256::new);
    match &args.output {
        Some(path) => {
            let mut out = tokio::fs::File::create(path).await?;
            while let Some(chunk) = plain.next().await {
                let chunk = chunk?;
                got += chunk.len() as u64;
                out.write_all(&chunk).await?;
            }
            out.flush().await?;
            out.sync_all().await?;
        }
        None => {
            while let Some(chunk) = plain.next().await {
                let chunk = chunk?;
                got += chunk.len() as u64;
                if let Some(h) = inflight.as_mut() {
                    h.update(&chunk);
                }
            }
        }
    }
    let get_s = t.elapsed().as_secs_f64();
    let peak_get = proc_status_kib("VmHWM");
    drop(plain);

    // ---- checks (untimed) ------------------------------------------------
    if got != size || row.size != Some(size as i64) {
        return Err(format!("size mismatch: input {size}, catalog {:?}, read back {got}", row.size).into());
    }
    let mut verified = false;
    if args.verify {
        let catalog_sha = row.sha256.clone().unwrap_or_default();
        if Some(&catalog_sha) != input_sha.as_ref() {
            return Err(format!("catalog sha256 {catalog_sha} differs from the input's {input_sha:?}").into());
        }
        let out_sha = match (&args.output, inflight) {
            (Some(path), _) => sha256_file(path)?,
            (None, Some(h)) => hex::encode(h.finalize()),
            (None, None) => unreachable!(),
        };
        if out_sha != catalog_sha {
            return Err(format!("read back sha256 {out_sha} differs from the input's {catalog_sha}").into());
        }
        verified = true;
    }
    if !args.keep {
        vault.destroy_document(row.id, "benchmark").await?;
    }

    let peak = peak_put.max(peak_get);
    println!(
        "{}",
        json!({
            "event": "roundtrip",
            "label": args.label,
            "catalog": catalog_kind,
            "storage": vault.store_for_tests().describe(),
            "size": size,
            "stored_bytes": stored_bytes,
            "put_s": round3(put_s),
            "put_mb_s": round3(mb_s(size, put_s)),
            "get_s": round3(get_s),
            "get_mb_s": round3(mb_s(size, get_s)),
            "get_to": args.output.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "discard".into()),
            "idle_rss_kib": idle_rss,
            "peak_put_rss_kib": peak_put,
            "peak_get_rss_kib": peak_get,
            "peak_rss_kib": peak,
            "peak_above_idle_kib": peak.saturating_sub(idle_rss),
            "hwm_reset": hwm_reset,
            "verified": verified,
            "document_id": row.id.to_string(),
            "object_name": row.object_name,
            "kept": args.keep,
            "chunk": args.chunk,
        })
    );
    Ok(())
}
