//! Test backends shared by the vault's integration tests and the end-to-end
//! tests: the embedded default (SQLite + files in a temp dir) and the real
//! services (PostgreSQL + SeaweedFS over S3) that `scripts/with-services`
//! starts. A test on the services backend fails loudly when they are not
//! configured: it never skips.
#![allow(dead_code)]

use sqlx::Connection;

/// One isolated place to keep a catalog and objects.
pub struct Backend {
    pub name: &'static str,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    pub storage_url: String,
    /// Set for the S3 backend.
    pub s3_endpoint: Option<String>,
}

pub fn random_suffix() -> String {
    let mut b = [0u8; 6];
    getrandom::fill(&mut b).expect("random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn required(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{var} is not set. The PostgreSQL + SeaweedFS tests need the real services: \
             run the suite with `scripts/test` (it installs and starts them), or wrap \
             your command in `scripts/with-services`."
        ),
    }
}

/// SQLite + local files in a fresh temp dir.
pub async fn embedded() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", dir.path().join("kluis.db").display());
    let storage_url = format!("file://{}", dir.path().join("objects").display());
    Backend { name: "sqlite+file", dir, database_url, storage_url, s3_endpoint: None }
}

/// A fresh PostgreSQL database and a fresh prefix in the SeaweedFS bucket.
pub async fn services() -> Backend {
    let admin = required("KLUIS_TEST_DATABASE_URL");
    let endpoint = required("KLUIS_TEST_S3_ENDPOINT");
    let bucket = required("KLUIS_TEST_S3_BUCKET");
    required("AWS_ACCESS_KEY_ID");
    required("AWS_SECRET_ACCESS_KEY");
    let suffix = random_suffix();
    let db = format!("kluis_t_{suffix}");
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to KLUIS_TEST_DATABASE_URL: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database {db}: {e}"));
    let _ = conn.close().await;
    let (base, _) = admin.rsplit_once('/').expect("KLUIS_TEST_DATABASE_URL ends in /DBNAME");
    let dir = tempfile::tempdir().expect("temp dir");
    Backend {
        name: "postgres+seaweedfs",
        dir,
        database_url: format!("{base}/{db}"),
        storage_url: format!("s3://{bucket}/t-{suffix}"),
        s3_endpoint: Some(endpoint),
    }
}

impl Backend {
    /// Environment for a `kluis` process on this backend.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            ("KLUIS_DATA_DIR".to_string(), self.dir.path().join("data").display().to_string()),
            ("KLUIS_DATABASE_URL".to_string(), self.database_url.clone()),
            ("KLUIS_STORAGE_URL".to_string(), self.storage_url.clone()),
        ];
        if let Some(e) = &self.s3_endpoint {
            env.push(("KLUIS_S3_ENDPOINT".to_string(), e.clone()));
        }
        env
    }

    pub fn is_s3(&self) -> bool {
        self.s3_endpoint.is_some()
    }
}

/// Define one test that runs on both backends:
/// `on_both_backends!(name, async_fn_taking_backend);` creates
/// `name::embedded` and `name::postgres_seaweedfs`.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$body(super::support::embedded().await).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_seaweedfs() {
                super::$body(super::support::services().await).await
            }
        }
    };
}
