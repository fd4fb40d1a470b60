//! Configuration: environment variables (SPEC §2), overridden by flags.

use std::path::PathBuf;

use clap::Args;
use vault::store::S3Settings;
use vault::{MasterKeySource, VaultConfig};

/// Where Kluis keeps its state. Shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Data directory of the embedded default (database, objects, key file).
    #[arg(long, env = "KLUIS_DATA_DIR", default_value = "./kluis-data", global = true)]
    pub data_dir: PathBuf,
    /// Catalog database: sqlite://PATH or postgres://...
    /// [default: sqlite://$KLUIS_DATA_DIR/kluis.db]
    #[arg(long, env = "KLUIS_DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// Object store: file://PATH, s3://BUCKET[/PREFIX] or memory://
    /// [default: file://$KLUIS_DATA_DIR/objects]
    #[arg(long, env = "KLUIS_STORAGE_URL", global = true)]
    pub storage_url: Option<String>,
    /// Master key file [default: $KLUIS_DATA_DIR/master.key]; ignored when
    /// KLUIS_MASTER_KEY (base64, or "1:B64,2:B64") is set.
    #[arg(long, env = "KLUIS_MASTER_KEY_FILE", global = true)]
    pub master_key_file: Option<PathBuf>,
    /// This node's search index, a cache rebuilt from the catalog when lost;
    /// a directory of its own (every node has one)
    /// [default: $KLUIS_DATA_DIR/index]
    #[arg(long, env = "KLUIS_INDEX_DIR", global = true)]
    pub index_dir: Option<PathBuf>,
}

impl Common {
    pub fn vault_config(&self) -> anyhow::Result<VaultConfig> {
        let uses_data_dir = self.database_url.is_none()
            || self.storage_url.is_none()
            || (self.master_key_file.is_none() && std::env::var_os("KLUIS_MASTER_KEY").is_none());
        if uses_data_dir {
            create_private_dir(&self.data_dir)
                .map_err(|e| anyhow::anyhow!("cannot create the data directory {}: {e}", self.data_dir.display()))?;
        }
        let database_url = match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("kluis.db").display()),
        };
        let storage_url = match &self.storage_url {
            Some(u) => u.clone(),
            None => format!("file://{}", absolute(&self.data_dir.join("objects")).display()),
        };
        let master_key = match std::env::var("KLUIS_MASTER_KEY") {
            Ok(v) if !v.trim().is_empty() => MasterKeySource::Env(v),
            _ => MasterKeySource::File {
                path: self.master_key_file.clone().unwrap_or_else(|| self.data_dir.join("master.key")),
                create_if_missing: true,
            },
        };
        Ok(VaultConfig { database_url, storage_url, s3: S3Settings::from_env(), master_key })
    }
}

impl Common {
    pub fn index_dir(&self) -> PathBuf {
        self.index_dir.clone().unwrap_or_else(|| self.data_dir.join("index"))
    }
}

fn absolute(p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Create the data directory readable by its owner only (0700), if missing.
fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// How `/metrics` is protected (`KLUIS_METRICS`): never open on the public
/// listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricsMode {
    /// No metrics at all (`off`).
    Off,
    /// On a listener of its own (`HOST:PORT`; default `127.0.0.1:9464`).
    /// `explicit`: set on purpose, so failing to bind it is an error.
    Listen { addr: String, explicit: bool },
    /// On the public listener, for `Authorization: Bearer $KLUIS_METRICS_TOKEN`
    /// only (`bearer`).
    Bearer(String),
}

pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";

impl MetricsMode {
    /// From the values of `KLUIS_METRICS` and `KLUIS_METRICS_TOKEN`.
    pub fn parse(value: Option<&str>, token: Option<&str>) -> anyhow::Result<Self> {
        match value.map(str::trim) {
            None | Some("") => Ok(MetricsMode::Listen { addr: DEFAULT_METRICS_ADDR.into(), explicit: false }),
            Some("off") => Ok(MetricsMode::Off),
            Some("bearer") => match token.map(str::trim) {
                Some(t) if t.len() >= 16 => Ok(MetricsMode::Bearer(t.to_string())),
                _ => anyhow::bail!("KLUIS_METRICS=bearer needs KLUIS_METRICS_TOKEN of at least 16 characters"),
            },
            Some(addr) if addr.parse::<std::net::SocketAddr>().is_ok() => {
                Ok(MetricsMode::Listen { addr: addr.to_string(), explicit: true })
            }
            Some(_) => anyhow::bail!("KLUIS_METRICS is `off`, `bearer` or a listen address HOST:PORT"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_modes() {
        assert_eq!(
            MetricsMode::parse(None, None).unwrap(),
            MetricsMode::Listen { addr: DEFAULT_METRICS_ADDR.into(), explicit: false }
        );
        assert_eq!(MetricsMode::parse(Some("off"), None).unwrap(), MetricsMode::Off);
        assert_eq!(
            MetricsMode::parse(Some("127.0.0.1:0"), None).unwrap(),
            MetricsMode::Listen { addr: "127.0.0.1:0".into(), explicit: true }
        );
        assert_eq!(
            MetricsMode::parse(Some("bearer"), Some("0123456789abcdef")).unwrap(),
            MetricsMode::Bearer("0123456789abcdef".into())
        );
        assert!(MetricsMode::parse(Some("bearer"), Some("short")).is_err());
        assert!(MetricsMode::parse(Some("everyone"), None).is_err());
    }
}
