//! `kluis`: the Kluis document vault (server and command line).

mod api;
mod auth;
mod config;
mod server;
mod sniff;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use vault::catalog::SealedKind;
use vault::rekey::{Progress, RekeyOptions};
use vault::{Vault, VaultError};

use config::Common;

#[derive(Debug, Parser)]
#[command(name = "kluis", version, about = "Kluis: a secure document vault")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve {
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
        /// Uploads that stream at the same time; more wait for a slot.
        #[arg(long, env = "KLUIS_MAX_CONCURRENT_UPLOADS", default_value_t = 32)]
        max_concurrent_uploads: usize,
        /// Downloads that stream at the same time; more wait for a slot.
        #[arg(long, env = "KLUIS_MAX_CONCURRENT_DOWNLOADS", default_value_t = 64)]
        max_concurrent_downloads: usize,
        /// Download requests per client address per minute.
        #[arg(long, env = "KLUIS_DOWNLOAD_RATE_PER_MINUTE", default_value_t = 600)]
        download_rate_per_minute: u32,
        /// A session ends after this long without requests.
        #[arg(long, env = "KLUIS_SESSION_IDLE", default_value = "30m", value_parser = humantime::parse_duration)]
        session_idle: Duration,
        /// A session ends this long after login, whatever happens.
        #[arg(long, env = "KLUIS_SESSION_MAX", default_value = "12h", value_parser = humantime::parse_duration)]
        session_max: Duration,
    },
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
        role: String,
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

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("KLUIS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var("KLUIS_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kluis: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn open(common: &Common) -> anyhow::Result<Vault> {
    let cfg = common.vault_config()?;
    Vault::open(&cfg).await.context("opening the vault")
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            listen,
            token_ttl,
            max_upload_bytes,
            login_rate_per_minute,
            download_rate_per_minute,
            max_concurrent_uploads,
            max_concurrent_downloads,
            session_idle,
            session_max,
        } => {
            let vault = open(&cli.common).await?;
            if vault.catalog.count_users().await? == 0 {
                let msg = "there are no users yet; create the first one with:\n  \
                           echo 'a long password' | kluis user add --username admin --role management";
                tracing::warn!("{msg}");
                eprintln!("kluis: {msg}");
            }
            tracing::info!(
                catalog = %vault.catalog.backend(),
                storage = %vault.store.describe(),
                key_version = vault.keyring().current_version(),
                "vault open"
            );
            let settings =
                api::ServeSettings { token_ttl, max_upload_bytes, session_idle, session_absolute: session_max };
            let state = api::AppState {
                vault: Arc::new(vault),
                login_limiter: server::login_limiter(login_rate_per_minute),
                download_limiter: server::login_limiter(download_rate_per_minute),
                upload_slots: Arc::new(tokio::sync::Semaphore::new(max_concurrent_uploads.max(1))),
                download_slots: Arc::new(tokio::sync::Semaphore::new(max_concurrent_downloads.max(1))),
                settings: Arc::new(settings),
            };
            tokio::spawn(sweep_interrupted_uploads(state.vault.clone()));
            tokio::spawn(server::prune_limiters(vec![state.login_limiter.clone(), state.download_limiter.clone()]));
            server::serve(&listen, state).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rekey { batch_size, crash_after } => {
            let mut vault = open(&cli.common).await?;
            let bar = Bar::new();
            let opts = RekeyOptions { batch_size: batch_size.max(1), interrupt_after: crash_after };
            match vault.rekey(&bar, &opts).await {
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
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            let vault = open(&cli.common).await?;
            let created =
                api::users::create_user(&vault, api::users::NewUser { username, display_name, role, password })
                    .await
                    .map_err(|e| anyhow::anyhow!("{} ({})", e.message, e.code))?;
            let mut e = vault::audit::NewEvent::new("user.create", "ok");
            e.details = serde_json::json!({ "user_id": created.id, "role": created.role, "via": "cli" });
            vault.catalog.append_audit(&e).await?;
            println!("{}", serde_json::to_string_pretty(&created)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Key(KeyCommand::List) => {
            let vault = open(&cli.common).await?;
            let current = vault.keyring().current_version();
            let mut out = Vec::new();
            for row in vault.catalog.key_versions().await? {
                let mut uses = serde_json::Map::new();
                for kind in SealedKind::ALL {
                    let n = vault.catalog.count_sealed_with(kind, row.version).await?;
                    uses.insert(kind.name().to_string(), n.into());
                }
                out.push(serde_json::json!({
                    "version": row.version,
                    "state": if row.retired { "retired" } else { "active" },
                    "current": row.version == current,
                    "in_keyring": vault.keyring().has_version(row.version),
                    "uses": uses,
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
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
        Command::Audit(AuditCommand::Verify) => {
            let vault = open(&cli.common).await?;
            match vault.catalog.verify_audit_chain().await? {
                Ok((events, head)) => {
                    println!("{}", serde_json::json!({ "ok": true, "events": events, "head": head }));
                    Ok(ExitCode::SUCCESS)
                }
                Err(b) => {
                    println!("{}", serde_json::json!({ "ok": false, "error": b.to_string() }));
                    eprintln!("kluis: audit chain broken: {b}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

/// Background worker: every hour, remove uploads that were interrupted (by a
/// crash) more than a day ago, with their partial objects.
async fn sweep_interrupted_uploads(vault: Arc<Vault>) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        match vault.sweep_pending(Duration::from_secs(24 * 3600)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(count = n, "removed uploads interrupted more than a day ago"),
            Err(e) => tracing::warn!(error = %e, "could not sweep interrupted uploads"),
        }
    }
}

/// indicatif progress bars for long CLI work (hidden when not a terminal).
struct Bar {
    bar: std::sync::Mutex<Option<ProgressBar>>,
}

impl Bar {
    fn new() -> Self {
        Bar { bar: std::sync::Mutex::new(None) }
    }
}

impl Progress for Bar {
    fn start(&self, label: &str, total: u64) {
        let pb = ProgressBar::new(total);
        if let Ok(style) = ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} ({eta})") {
            pb.set_style(style.progress_chars("=> "));
        }
        pb.set_message(label.to_string());
        if let Ok(mut g) = self.bar.lock() {
            *g = Some(pb);
        }
    }
    fn inc(&self, n: u64) {
        if let Ok(g) = self.bar.lock() {
            if let Some(pb) = g.as_ref() {
                pb.inc(n);
            }
        }
    }
    fn finish(&self) {
        if let Ok(mut g) = self.bar.lock() {
            if let Some(pb) = g.take() {
                pb.finish();
            }
        }
    }
}
