//! The command line (clap): `serve`, `user add`, `rekey`, `key list`,
//! `key retire`, `audit verify`, `reindex`, `purge`. Each command is a thin caller of the vault;
//! errors get context here (anyhow).

mod progress;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vault::rekey::RekeyOptions;
use vault::service::{By, NewUser, Settings};
use vault::{Vault, VaultError};

use crate::api::{AppState, ServeSettings};
use crate::config::{Common, MetricsMode};
use crate::net::{ConnLimits, TrustedProxies};
use crate::{server, workers};
use progress::Bar;

#[derive(Debug, Parser)]
#[command(name = "kluis", version, about = "Kluis: a secure document vault")]
pub struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "KLUIS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// How long a download token stays valid (e.g. 30s, 5m).
    #[arg(long, env = "KLUIS_TOKEN_TTL", default_value = "5m", value_parser = humantime::parse_duration)]
    token_ttl: Duration,
    /// Largest accepted document, in bytes.
    #[arg(long, env = "KLUIS_MAX_UPLOAD_BYTES", default_value_t = 536_870_912)]
    max_upload_bytes: u64,
    /// Login attempts per client address per minute.
    #[arg(long, env = "KLUIS_LOGIN_RATE_PER_MINUTE", default_value_t = 30)]
    login_rate_per_minute: u32,
    /// Password checks computed at once; more logins answer 503 at once.
    #[arg(long, env = "KLUIS_MAX_CONCURRENT_LOGINS")]
    max_concurrent_logins: Option<usize>,
    /// Uploads that stream at the same time; more wait for a slot.
    #[arg(long, env = "KLUIS_MAX_CONCURRENT_UPLOADS", default_value_t = 32)]
    max_concurrent_uploads: usize,
    /// Downloads that stream at the same time; more wait for a slot.
    #[arg(long, env = "KLUIS_MAX_CONCURRENT_DOWNLOADS", default_value_t = 64)]
    max_concurrent_downloads: usize,
    /// How long a request waits for an upload or download slot (then 503).
    #[arg(long, env = "KLUIS_SLOT_WAIT", default_value = "10s", value_parser = humantime::parse_duration)]
    slot_wait: Duration,
    /// Download requests per client address per minute.
    #[arg(long, env = "KLUIS_DOWNLOAD_RATE_PER_MINUTE", default_value_t = 600)]
    download_rate_per_minute: u32,
    /// A session ends after this long without requests.
    #[arg(long, env = "KLUIS_SESSION_IDLE", default_value = "30m", value_parser = humantime::parse_duration)]
    session_idle: Duration,
    /// A session ends this long after login, whatever happens.
    #[arg(long, env = "KLUIS_SESSION_MAX", default_value = "12h", value_parser = humantime::parse_duration)]
    session_max: Duration,
    /// A client that takes longer than this for its request headers, or
    /// keeps a connection idle this long, is disconnected.
    #[arg(long, env = "KLUIS_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    header_timeout: Duration,
    /// A request body that sends nothing for this long is cut off (408).
    #[arg(long, env = "KLUIS_BODY_IDLE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    body_idle_timeout: Duration,
    /// Open connections per client address (trusted proxies excepted).
    #[arg(long, env = "KLUIS_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    max_connections_per_address: usize,
    /// Load balancers (CIDR list) whose X-Forwarded-For names the client.
    #[arg(long, env = "KLUIS_TRUSTED_PROXIES", default_value = "")]
    trusted_proxies: String,
    /// `/metrics`: a listen address (default 127.0.0.1:9464), `bearer`
    /// (on the public listener, with KLUIS_METRICS_TOKEN), or `off`.
    #[arg(long, env = "KLUIS_METRICS")]
    metrics: Option<String>,
    /// The search index looks for changes at least this often (it is also
    /// woken by every change; this bounds how stale it gets when a
    /// notification is lost).
    #[arg(long, env = "KLUIS_SEARCH_POLL", default_value = "1s", value_parser = humantime::parse_duration)]
    search_poll: Duration,
    /// How often the purge destroys documents whose retention date passed
    /// (each node; they take disjoint batches).
    #[arg(long, env = "KLUIS_PURGE_INTERVAL", default_value = "10m", value_parser = humantime::parse_duration)]
    purge_interval: Duration,
    /// How often the gauges of the registers (open and overdue
    /// data-subject requests) are read again.
    #[arg(long, env = "KLUIS_REGISTER_METRICS_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    register_metrics_interval: Duration,
    /// How often the audit chain's head is anchored in the document store
    /// (when it moved), so that events removed from the log's end are found.
    #[arg(long, env = "KLUIS_AUDIT_ANCHOR_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    audit_anchor_interval: Duration,
    /// Days the audit log may go unreviewed (`POST /api/v1/audit/reviews`)
    /// before `/readyz` details and the metrics flag it.
    #[arg(long, env = "KLUIS_AUDIT_REVIEW_DAYS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=3650))]
    audit_review_days: i64,
    /// The controller's name, for the processing register.
    #[arg(long, env = "KLUIS_ORGANISATION")]
    organisation: Option<String>,
    /// How to reach the privacy officer (an address, a mailbox), for the
    /// processing register.
    #[arg(long, env = "KLUIS_PRIVACY_CONTACT")]
    privacy_contact: Option<String>,
    /// The bearer token for KLUIS_METRICS=bearer.
    #[arg(long, env = "KLUIS_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(Box<ServeArgs>),
    /// Users.
    #[command(subcommand)]
    User(UserCommand),
    /// Add a master-key version and re-wrap every data key, BSN and TOTP
    /// secret under it (objects are not touched). Resumes an interrupted run.
    Rekey {
        /// Rows per catalog query.
        #[arg(long, default_value_t = 500)]
        batch_size: i64,
        /// Testing aid: abort the process after this many values, as a crash would.
        #[arg(long, hide = true)]
        crash_after: Option<u64>,
    },
    /// Master-key versions.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Rebuild this node's search index from the catalog (stop the server
    /// first: it holds the index; a server also rebuilds a lost index by
    /// itself when it starts).
    Reindex,
    /// Destroy every document whose retention date has passed (one pass of
    /// the purge, with a progress bar and a summary), then delete their
    /// queued objects. Safe beside running servers and after a crash.
    Purge {
        /// Only list what would be destroyed now.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: documents listed at most.
        #[arg(long, default_value_t = 1000, requires = "dry_run")]
        limit: i64,
    },
    /// Write a client's dossier as a zip (the same archive as `GET
    /// /api/v1/clients/{id}/export`), with a progress bar; audited as the
    /// operator's. The file is written beside FILE and renamed once complete.
    Export {
        client_id: uuid::Uuid,
        /// Where the zip goes (must not exist).
        #[arg(short, long)]
        output: std::path::PathBuf,
        /// The client's access or portability request it answers (the BSN is
        /// then in full).
        #[arg(long)]
        request_id: Option<uuid::Uuid>,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user; reads the password from standard input and prints the
    /// new user with its TOTP secret (for an authenticator app) as JSON.
    Add {
        #[arg(long)]
        username: String,
        /// management | office | administration | coach | freelance_coach
        #[arg(long)]
        role: vault::domain::Role,
        #[arg(long)]
        display_name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// List the master-key versions and what each still wraps.
    List,
    /// Retire an old version once nothing uses it (removes it from the key file).
    Retire { version: u32 },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; exit non-zero naming the first bad event.
    Verify,
}

async fn open(common: &Common) -> anyhow::Result<Vault> {
    let cfg = common.vault_config()?;
    Vault::open(&cfg).await.context("opening the vault")
}

/// Run one command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(&cli.common, *args).await,
        Command::Rekey { batch_size, crash_after } => {
            let mut vault = open(&cli.common).await?;
            let opts = RekeyOptions { batch_size: batch_size.max(1), interrupt_after: crash_after };
            match vault.rekey(&Bar::new(), &opts).await {
                Ok(r) => {
                    println!(
                        "{}",
                        serde_json::json!({
                            "target_version": r.target_version,
                            "added_version": r.added_version,
                            "resumed": r.resumed,
                            "rewrapped": r.rewrapped,
                        })
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(VaultError::Interrupted) => {
                    eprintln!("kluis: rekey interrupted on request (--crash-after); aborting like a crash");
                    std::process::abort();
                }
                Err(e) => Err(e).context("rekey failed (run `kluis rekey` again to resume)"),
            }
        }
        Command::User(UserCommand::Add { username, role, display_name }) => {
            use std::io::Read;
            let mut password = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_to_string(&mut password).context("reading the password from standard input")?;
            let password = zeroize::Zeroizing::new(password.trim_end_matches(['\r', '\n']).to_string());
            let vault = open(&cli.common).await?;
            let created = vault
                .create_user(By::Operator, NewUser { username, display_name, role, password })
                .await
                .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code.as_str()))?;
            println!("{}", serde_json::to_string_pretty(&created)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Key(KeyCommand::List) => {
            let vault = open(&cli.common).await?;
            let report = vault.key_report().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Key(KeyCommand::Retire { version }) => {
            let mut vault = open(&cli.common).await?;
            vault.retire_key_version(version).await?;
            if matches!(vault.keyring().source(), vault::keyring::KeySource::Environment) {
                eprintln!("kluis: version {version} retired; remove it from KLUIS_MASTER_KEY");
            } else {
                eprintln!("kluis: version {version} retired and removed from the key file");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Reindex => {
            let dir = cli.common.index_dir();
            let vault = open(&cli.common).await?;
            let (index, _) = vault::search::Index::open_bulk(&dir).map_err(|e| index_error(e, &dir))?;
            let vault = vault.with_index(Arc::new(index));
            let started = std::time::Instant::now();
            let n = vault.rebuild_index(&Bar::new()).await.context("rebuilding the search index")?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{}",
                serde_json::json!({ "documents": n, "seconds": secs, "per_second": (n as f64 / secs.max(1e-9)).round() })
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Purge { dry_run: true, limit } => {
            let vault = open(&cli.common).await?;
            let counts = vault.retention_counts().await.context("counting due documents")?;
            let docs = vault.purge_preview(limit.clamp(1, 100_000)).await.context("listing due documents")?;
            println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({
                    "due": counts.due, "held": counts.held, "objects_queued": counts.objects_queued, "documents": docs,
                }))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Purge { dry_run: false, .. } => {
            let vault = open(&cli.common).await?;
            let started = std::time::Instant::now();
            let report = vault.purge_pass(&Bar::new()).await.context("purging")?;
            let counts = vault.retention_counts().await.context("counting what is left")?;
            println!(
                "{}",
                serde_json::json!({
                    "destroyed": report.destroyed, "objects_deleted": report.objects_deleted,
                    "object_failures": report.object_failures, "objects_queued": counts.objects_queued,
                    "held": counts.held, "seconds": started.elapsed().as_secs_f64(),
                })
            );
            if report.object_failures > 0 {
                eprintln!(
                    "kluis: {} object(s) could not be deleted from the store; their documents are destroyed (keys \
                     gone) and the objects stay queued for the next pass",
                    report.object_failures
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export { client_id, output, request_id } => {
            let vault = std::sync::Arc::new(open(&cli.common).await?);
            export(&vault, client_id, &output, request_id).await
        }
        Command::Audit(AuditCommand::Verify) => {
            let vault = open(&cli.common).await?;
            let report = vault.verify_audit_chain().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string(&report)?);
            if report.ok {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("kluis: audit chain broken: {}", report.error.as_deref().unwrap_or("unknown"));
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// `kluis export`: stream the archive into `FILE.partial` (mode 0600),
/// sync it, then rename it to `FILE`; on any failure the partial file goes.
async fn export(
    vault: &std::sync::Arc<Vault>,
    client: uuid::Uuid,
    output: &std::path::Path,
    request_id: Option<uuid::Uuid>,
) -> anyhow::Result<ExitCode> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    use vault::rekey::Progress;
    if output.exists() {
        anyhow::bail!("{} exists already; choose another name", output.display());
    }
    let q = vault::service::ExportQuery { request_id };
    let mut export =
        vault.export_client_as_operator(client, q).await.map_err(|e| anyhow::anyhow!("export refused: {e}"))?;
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let written = async {
        let mut f = tokio::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial).await?;
        let bar = Bar::new();
        bar.start("export (bytes)", export.size);
        while let Some(chunk) = export.body.next().await {
            let chunk = chunk.map_err(|e| anyhow::anyhow!("{e}"))?;
            f.write_all(&chunk).await?;
            bar.inc(chunk.len() as u64);
        }
        bar.finish();
        f.sync_all().await?;
        let len = f.metadata().await?.len();
        anyhow::ensure!(len == export.size, "the archive is {len} bytes, {} were announced", export.size);
        tokio::fs::rename(&partial, output).await?;
        anyhow::Ok(len)
    }
    .await;
    match written {
        Ok(len) => {
            println!(
                "{}",
                serde_json::json!({
                    "file": output, "bytes": len, "documents_copied": export.copied,
                    "view_only_listed": export.view_only,
                })
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&partial).await;
            Err(e.context(format!("exporting client {client} to {}", output.display())))
        }
    }
}

/// The index directory could not be opened: say why in the operator's terms.
fn index_error(e: vault::search::IndexError, dir: &std::path::Path) -> anyhow::Error {
    if e.is_locked() {
        anyhow::anyhow!(
            "the search index {} is in use by another process (a running `kluis serve`?): stop it first",
            dir.display()
        )
    } else {
        anyhow::Error::new(e).context(format!("opening the search index {}", dir.display()))
    }
}

/// Open this node's index; while another process holds it (a server being
/// restarted that has not quite exited yet), wait for it, up to `patience`.
async fn open_index_waiting(
    dir: &std::path::Path,
    patience: Duration,
) -> anyhow::Result<(vault::search::Index, vault::search::Opened)> {
    let deadline = tokio::time::Instant::now() + patience;
    let mut said = false;
    loop {
        // Off the async threads: opening reads every segment file (checksums).
        let opened = {
            let path = dir.to_path_buf();
            tokio::task::spawn_blocking(move || vault::search::Index::open(&path))
                .await
                .map_err(|e| anyhow::anyhow!("opening the search index {}: {e}", dir.display()))?
        };
        match opened {
            Err(e) if e.is_locked() && tokio::time::Instant::now() < deadline => {
                if !said {
                    said = true;
                    tracing::info!(dir = %dir.display(), ?patience, "search index held by another process; waiting");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            r => return r.map_err(|e| index_error(e, dir)),
        }
    }
}

async fn serve(common: &Common, a: ServeArgs) -> anyhow::Result<ExitCode> {
    let metrics = MetricsMode::parse(a.metrics.as_deref(), a.metrics_token.as_deref())?;
    let trusted_proxies: TrustedProxies =
        a.trusted_proxies.parse().map_err(|e| anyhow::anyhow!("KLUIS_TRUSTED_PROXIES: {e}"))?;
    let mut settings = Settings {
        token_ttl: a.token_ttl,
        session_idle: a.session_idle,
        session_max: a.session_max,
        organisation: a.organisation.clone(),
        privacy_contact: a.privacy_contact.clone(),
        audit_anchor_interval: a.audit_anchor_interval,
        ..Settings::default()
    };
    if let Some(n) = a.max_concurrent_logins {
        settings.max_password_checks = n.max(1);
    }
    // The vault first: it creates the data directory (0700) the index lives in.
    let vault = open(common).await?.with_settings(settings);
    let index_dir = common.index_dir();
    let (index, opened) = open_index_waiting(&index_dir, Duration::from_secs(15)).await?;
    if opened == vault::search::Opened::Rebuilt {
        tracing::info!(dir = %index_dir.display(), "search index missing or unusable: rebuilding it from the catalog");
    }
    let vault = vault.with_index(Arc::new(index));
    if !vault.has_users().await.map_err(|e| anyhow::anyhow!("{e}"))? {
        let msg = "there are no users yet; create the first one with:\n  \
                   echo 'a long password' | kluis user add --username admin --role management";
        tracing::warn!("{msg}");
        eprintln!("kluis: {msg}");
    }
    tracing::info!(backends = %vault.describe(), key_version = vault.keyring().current_version(), "vault open");
    let state = AppState {
        vault: Arc::new(vault),
        settings: Arc::new(ServeSettings {
            max_upload_bytes: a.max_upload_bytes,
            max_json_bytes: 64 << 10,
            slot_wait: a.slot_wait,
            body_idle: a.body_idle_timeout,
            audit_review_days: a.audit_review_days,
        }),
        login_limiter: server::addr_limiter(a.login_rate_per_minute),
        download_limiter: server::addr_limiter(a.download_rate_per_minute),
        upload_slots: Arc::new(tokio::sync::Semaphore::new(a.max_concurrent_uploads.max(1))),
        download_slots: Arc::new(tokio::sync::Semaphore::new(a.max_concurrent_downloads.max(1))),
    };
    tokio::spawn(workers::sweeper(state.vault.clone(), Duration::from_secs(3600)));
    tokio::spawn(workers::search_follower(state.vault.clone(), a.search_poll));
    tokio::spawn(workers::purger(state.vault.clone(), a.purge_interval.max(Duration::from_millis(100))));
    tokio::spawn(workers::register_gauges(
        state.vault.clone(),
        a.audit_review_days,
        a.register_metrics_interval.max(Duration::from_millis(100)),
    ));
    tokio::spawn(workers::anchorer(state.vault.clone(), a.audit_anchor_interval.max(Duration::from_millis(100))));
    tokio::spawn(workers::prune_limiters(vec![state.login_limiter.clone(), state.download_limiter.clone()]));
    let limits = ConnLimits {
        header_read_timeout: a.header_timeout,
        max_connections_per_addr: a.max_connections_per_address,
        trusted_proxies,
        ..ConnLimits::default()
    };
    server::serve(server::Listen { addr: a.listen, limits, metrics }, state).await?;
    Ok(ExitCode::SUCCESS)
}
