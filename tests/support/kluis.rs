//! Running the real `kluis` binary from tests: one-shot commands and a
//! server on a free port.
#![allow(dead_code)]

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::support::Backend;

/// The vault configuration a `kluis` process on `b` uses (key file in its data dir).
pub fn vault_config(b: &Backend) -> vault::VaultConfig {
    vault::VaultConfig {
        database_url: b.database_url.clone(),
        storage_url: b.storage_url.clone(),
        s3: vault::store::S3Settings { endpoint: b.s3_endpoint.clone(), ..vault::store::S3Settings::from_env() },
        master_key: vault::MasterKeySource::File {
            path: b.dir.path().join("data/master.key"),
            create_if_missing: true,
        },
    }
}

pub const KLUIS: &str = env!("CARGO_BIN_EXE_kluis");

/// A `kluis` command on a backend, with no configuration inherited from the
/// developer's shell.
pub fn kluis(b: &Backend) -> Command {
    let mut c = Command::new(KLUIS);
    for (k, _) in std::env::vars() {
        if k.starts_with("KLUIS_") {
            c.env_remove(k);
        }
    }
    c.envs(b.env()).current_dir(b.dir.path()).kill_on_drop(true);
    c
}

pub async fn run(mut c: Command) -> Output {
    c.stdin(Stdio::null());
    tokio::time::timeout(Duration::from_secs(120), c.output()).await.expect("kluis hung").expect("run kluis")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A running `kluis serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub log: std::path::PathBuf,
}

impl Server {
    pub async fn start(mut c: Command, log: std::path::PathBuf) -> Result<Server, String> {
        let log_file = std::fs::File::create(&log).unwrap();
        c.args(["serve", "--listen", "127.0.0.1:0"]).stdout(Stdio::piped()).stderr(log_file).stdin(Stdio::null());
        let mut child = c.spawn().expect("spawn kluis serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await;
        match line {
            Ok(Ok(Some(l))) if l.starts_with("kluis listening on ") => {
                let base = l.trim_start_matches("kluis listening on ").to_string();
                // Keep draining stdout so the server never blocks on it.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(Server { child, base, log })
            }
            _ => {
                let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
                Err(format!(
                    "kluis serve did not start ({status:?}): {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ))
            }
        }
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = reqwest::get(format!("{}{path}", self.base)).await.expect("HTTP request");
        let code = r.status().as_u16();
        (code, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
