//! The catalog: the source of truth for everything but the encrypted bytes.
//!
//! One repository API over SQLite (the embedded default, WAL) and PostgreSQL,
//! chosen by the URL. All SQL of Kluis lives in this module; callers see
//! typed rows and [`CatalogError`].
//!
//! Portable schema (see `migrations/`): ids are UUID strings, times BIGINT
//! microseconds since the Unix epoch (UTC), secrets BLOB/BYTEA sealed by the
//! keyring. The same query text runs on both databases (`$n` placeholders,
//! the `Any` driver). The `Any` driver cannot decode SQLite booleans, so
//! boolean columns are read as `CAST(col AS INTEGER)`.
//!
//! Invariants:
//! - migrations run on connect, for the backend the URL names;
//! - appends to the audit chain are serialised by locking the single
//!   `audit_head` row first, on both databases;
//! - no plaintext secret is ever written: BSNs, TOTP secrets and data keys
//!   arrive sealed.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use crate::audit::{self, ChainBreak, ChainVerifier, Event, NewEvent};
use crate::keyring::WrappedKey;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("unsupported database URL (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("cannot connect to the {backend} catalog: {source}")]
    Connect { backend: Backend, source: sqlx::Error },
    #[error("migrating the {backend} catalog failed: {source}")]
    Migrate { backend: Backend, source: sqlx::migrate::MigrateError },
    #[error("catalog query `{op}` failed: {source}")]
    Query { op: &'static str, source: sqlx::Error },
    #[error("catalog row is malformed: {0}")]
    Corrupt(String),
    #[error("{0} not found")]
    NotFound(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

fn q(op: &'static str) -> impl FnOnce(sqlx::Error) -> CatalogError {
    move |source| CatalogError::Query { op, source }
}

pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

pub fn micros_to_time(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn uuid_col(row: &AnyRow, col: &str) -> Result<Uuid, CatalogError> {
    let s: String = row.try_get(col).map_err(q("decode"))?;
    Uuid::from_str(&s).map_err(|_| CatalogError::Corrupt(format!("{col} is not a UUID")))
}

fn opt_uuid_col(row: &AnyRow, col: &str) -> Result<Option<Uuid>, CatalogError> {
    let s: Option<String> = row.try_get(col).map_err(q("decode"))?;
    s.map(|s| Uuid::from_str(&s).map_err(|_| CatalogError::Corrupt(format!("{col} is not a UUID"))))
        .transpose()
}

/// The lifecycle of a document row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentState {
    /// Upload in progress (or crashed): the object may be partial.
    Pending,
    Active,
    /// Data key destroyed; the row is a tombstone.
    Destroyed,
}

impl DocumentState {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentState::Pending => "pending",
            DocumentState::Active => "active",
            DocumentState::Destroyed => "destroyed",
        }
    }

    fn parse(s: &str) -> Result<Self, CatalogError> {
        Ok(match s {
            "pending" => DocumentState::Pending,
            "active" => DocumentState::Active,
            "destroyed" => DocumentState::Destroyed,
            _ => return Err(CatalogError::Corrupt(format!("unknown document state {s:?}"))),
        })
    }
}

/// A document as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub doc_type: String,
    pub title: Option<String>,
    pub filename: String,
    pub content_type: String,
    pub size: Option<i64>,
    pub sha256: Option<String>,
    pub object_name: String,
    pub wrapped_key: Option<WrappedKey>,
    pub state: DocumentState,
    pub uploaded_by: Option<Uuid>,
    pub uploaded_at: i64,
    pub retention_until: Option<i64>,
    pub legal_hold: bool,
    pub destroyed_at: Option<i64>,
    pub destroyed_by: Option<String>,
}

/// `SELECT <every document column> FROM documents ` followed by the rest.
macro_rules! select_documents {
    ($rest:literal) => {
        concat!(
            "SELECT id, client_id, doc_type, title, filename, content_type, size, sha256, object_name, \
             wrapped_key, key_version, state, uploaded_by, uploaded_at, retention_until, \
             CAST(legal_hold AS INTEGER) AS legal_hold, destroyed_at, destroyed_by FROM documents ",
            $rest
        )
    };
}

/// A sealed value stored as two columns: the bytes and the key version.
fn sealed_cols(row: &AnyRow, bytes_col: &str, version_col: &str) -> Result<Option<WrappedKey>, CatalogError> {
    let bytes: Option<Vec<u8>> = row.try_get(bytes_col).map_err(q("decode"))?;
    let version: Option<i64> = row.try_get(version_col).map_err(q("decode"))?;
    match (bytes, version) {
        (Some(bytes), Some(v)) => Ok(Some(WrappedKey {
            version: u32::try_from(v).map_err(|_| CatalogError::Corrupt(format!("{version_col} out of range")))?,
            bytes,
        })),
        _ => Ok(None),
    }
}

fn document_from_row(row: &AnyRow) -> Result<DocumentRow, CatalogError> {
    let wrapped_key = sealed_cols(row, "wrapped_key", "key_version")?;
    let state: String = row.try_get("state").map_err(q("decode"))?;
    Ok(DocumentRow {
        id: uuid_col(row, "id")?,
        client_id: uuid_col(row, "client_id")?,
        doc_type: row.try_get("doc_type").map_err(q("decode"))?,
        title: row.try_get("title").map_err(q("decode"))?,
        filename: row.try_get("filename").map_err(q("decode"))?,
        content_type: row.try_get("content_type").map_err(q("decode"))?,
        size: row.try_get("size").map_err(q("decode"))?,
        sha256: row.try_get("sha256").map_err(q("decode"))?,
        object_name: row.try_get("object_name").map_err(q("decode"))?,
        wrapped_key,
        state: DocumentState::parse(&state)?,
        uploaded_by: opt_uuid_col(row, "uploaded_by")?,
        uploaded_at: row.try_get("uploaded_at").map_err(q("decode"))?,
        retention_until: row.try_get("retention_until").map_err(q("decode"))?,
        legal_hold: row.try_get::<i64, _>("legal_hold").map_err(q("decode"))? != 0,
        destroyed_at: row.try_get("destroyed_at").map_err(q("decode"))?,
        destroyed_by: row.try_get("destroyed_by").map_err(q("decode"))?,
    })
}

/// What a new (pending) document row holds.
#[derive(Debug, Clone)]
pub struct NewDocumentRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub doc_type: String,
    pub title: Option<String>,
    pub filename: String,
    pub content_type: String,
    pub object_name: String,
    pub wrapped_key: WrappedKey,
    pub uploaded_by: Option<Uuid>,
    pub retention_until: Option<i64>,
}

/// The fields of a new client row. The BSN arrives sealed.
#[derive(Debug, Clone)]
pub struct NewClientRow {
    pub id: Uuid,
    pub first_name: String,
    pub initials: String,
    pub last_name: String,
    pub birth_date: String,
    pub bsn_sealed: Option<WrappedKey>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub postcode: Option<String>,
    pub city: Option<String>,
    pub commissioner: String,
    pub coach_id: Option<Uuid>,
}

/// A master-key version as recorded in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVersionRow {
    pub version: u32,
    pub check_value: String,
    pub retired: bool,
    pub created_at: i64,
}

/// The kinds of sealed values the master key protects; `kluis rekey` re-wraps
/// all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedKind {
    DocumentKey,
    ClientBsn,
    UserTotp,
}

impl SealedKind {
    pub const ALL: [SealedKind; 3] = [SealedKind::DocumentKey, SealedKind::ClientBsn, SealedKind::UserTotp];

    /// A stable machine name.
    pub fn name(self) -> &'static str {
        match self {
            SealedKind::DocumentKey => "document_keys",
            SealedKind::ClientBsn => "client_bsns",
            SealedKind::UserTotp => "user_totp_secrets",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SealedKind::DocumentKey => "document data keys",
            SealedKind::ClientBsn => "client BSNs",
            SealedKind::UserTotp => "user TOTP secrets",
        }
    }

    fn count_below_sql(self) -> &'static str {
        match self {
            SealedKind::DocumentKey => "SELECT COUNT(*) AS n FROM documents WHERE key_version < $1",
            SealedKind::ClientBsn => "SELECT COUNT(*) AS n FROM clients WHERE bsn_key_version < $1",
            SealedKind::UserTotp => "SELECT COUNT(*) AS n FROM users WHERE totp_key_version < $1",
        }
    }

    fn count_with_sql(self) -> &'static str {
        match self {
            SealedKind::DocumentKey => "SELECT COUNT(*) AS n FROM documents WHERE key_version = $1",
            SealedKind::ClientBsn => "SELECT COUNT(*) AS n FROM clients WHERE bsn_key_version = $1",
            SealedKind::UserTotp => "SELECT COUNT(*) AS n FROM users WHERE totp_key_version = $1",
        }
    }

    fn select_below_sql(self) -> &'static str {
        match self {
            SealedKind::DocumentKey => {
                "SELECT id, key_version AS v, wrapped_key AS sealed FROM documents \
                 WHERE key_version < $1 ORDER BY id LIMIT $2"
            }
            SealedKind::ClientBsn => {
                "SELECT id, bsn_key_version AS v, bsn_sealed AS sealed FROM clients \
                 WHERE bsn_key_version < $1 ORDER BY id LIMIT $2"
            }
            SealedKind::UserTotp => {
                "SELECT id, totp_key_version AS v, totp_secret AS sealed FROM users \
                 WHERE totp_key_version < $1 ORDER BY id LIMIT $2"
            }
        }
    }

    fn replace_sql(self) -> &'static str {
        match self {
            SealedKind::DocumentKey => {
                "UPDATE documents SET wrapped_key = $1, key_version = $2 WHERE id = $3 AND key_version = $4"
            }
            SealedKind::ClientBsn => {
                "UPDATE clients SET bsn_sealed = $1, bsn_key_version = $2 WHERE id = $3 AND bsn_key_version = $4"
            }
            SealedKind::UserTotp => {
                "UPDATE users SET totp_secret = $1, totp_key_version = $2 WHERE id = $3 AND totp_key_version = $4"
            }
        }
    }
}

/// One sealed value, for re-wrapping.
#[derive(Debug, Clone)]
pub struct SealedRow {
    pub id: Uuid,
    pub sealed: WrappedKey,
}

#[derive(Clone)]
pub struct Catalog {
    pool: AnyPool,
    backend: Backend,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("backend", &self.backend).finish()
    }
}

impl Catalog {
    /// Connect to `url` (`sqlite://PATH` or `postgres://...`), create the
    /// SQLite file if needed, and run the migrations.
    pub async fn connect(url: &str) -> Result<Self, CatalogError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let mut u = format!("sqlite:{rest}");
            if !u.contains("mode=") && !rest.contains(":memory:") {
                u.push(if u.contains('?') { '&' } else { '?' });
                u.push_str("mode=rwc");
            }
            (Backend::Sqlite, u)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(CatalogError::UnsupportedUrl);
        };
        let opts = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(10))
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL for concurrent readers, FULL sync so a committed
                        // row survives power loss, and a wait instead of an
                        // immediate SQLITE_BUSY under write contention.
                        sqlx::raw_sql(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                        )
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            });
        let pool = opts.connect(&url).await.map_err(|source| CatalogError::Connect { backend, source })?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await.map_err(|source| CatalogError::Migrate { backend, source })?;
        Ok(Catalog { pool, backend })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Is the database reachable and answering?
    pub async fn ping(&self) -> Result<(), CatalogError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(q("ping"))?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ----- key versions -------------------------------------------------

    pub async fn key_versions(&self) -> Result<Vec<KeyVersionRow>, CatalogError> {
        let rows = sqlx::query("SELECT version, check_value, state, created_at FROM key_versions ORDER BY version")
            .fetch_all(&self.pool)
            .await
            .map_err(q("key_versions"))?;
        rows.iter()
            .map(|r| {
                let v: i64 = r.try_get("version").map_err(q("decode"))?;
                let state: String = r.try_get("state").map_err(q("decode"))?;
                Ok(KeyVersionRow {
                    version: u32::try_from(v).map_err(|_| CatalogError::Corrupt("version".into()))?,
                    check_value: r.try_get("check_value").map_err(q("decode"))?,
                    retired: state == "retired",
                    created_at: r.try_get("created_at").map_err(q("decode"))?,
                })
            })
            .collect()
    }

    pub async fn register_key_version(&self, version: u32, check_value: &str) -> Result<(), CatalogError> {
        sqlx::query("INSERT INTO key_versions (version, check_value, state, created_at) VALUES ($1, $2, 'active', $3)")
            .bind(i64::from(version))
            .bind(check_value)
            .bind(now_micros())
            .execute(&self.pool)
            .await
            .map_err(q("register_key_version"))?;
        Ok(())
    }

    pub async fn retire_key_version(&self, version: u32) -> Result<(), CatalogError> {
        let r = sqlx::query("UPDATE key_versions SET state = 'retired', retired_at = $1 WHERE version = $2")
            .bind(now_micros())
            .bind(i64::from(version))
            .execute(&self.pool)
            .await
            .map_err(q("retire_key_version"))?;
        if r.rows_affected() == 0 {
            return Err(CatalogError::NotFound("key version"));
        }
        Ok(())
    }

    async fn count(&self, sql: &'static str, version: u32, op: &'static str) -> Result<u64, CatalogError> {
        let row = sqlx::query(sql).bind(i64::from(version)).fetch_one(&self.pool).await.map_err(q(op))?;
        let n: i64 = row.try_get("n").map_err(q("decode"))?;
        Ok(n as u64)
    }

    /// How many values of `kind` are sealed under a version below `version`.
    pub async fn count_sealed_below(&self, kind: SealedKind, version: u32) -> Result<u64, CatalogError> {
        self.count(kind.count_below_sql(), version, "count_sealed_below").await
    }

    /// How many values of `kind` are sealed under exactly `version`.
    pub async fn count_sealed_with(&self, kind: SealedKind, version: u32) -> Result<u64, CatalogError> {
        self.count(kind.count_with_sql(), version, "count_sealed_with").await
    }

    /// Up to `limit` values of `kind` sealed under a version below `version`.
    pub async fn sealed_below(&self, kind: SealedKind, version: u32, limit: i64) -> Result<Vec<SealedRow>, CatalogError> {
        let rows = sqlx::query(kind.select_below_sql())
            .bind(i64::from(version))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q("sealed_below"))?;
        rows.iter()
            .map(|r| {
                let sealed = sealed_cols(r, "sealed", "v")?.ok_or_else(|| CatalogError::Corrupt("sealed value is NULL".into()))?;
                Ok(SealedRow { id: uuid_col(r, "id")?, sealed })
            })
            .collect()
    }

    /// Replace one sealed value, only if it is still under `old_version`
    /// (so a concurrent rekey or destruction is never overwritten).
    pub async fn replace_sealed(&self, kind: SealedKind, id: Uuid, old_version: u32, new: &WrappedKey) -> Result<bool, CatalogError> {
        let r = sqlx::query(kind.replace_sql())
            .bind(new.bytes.clone())
            .bind(i64::from(new.version))
            .bind(id.to_string())
            .bind(i64::from(old_version))
            .execute(&self.pool)
            .await
            .map_err(q("replace_sealed"))?;
        Ok(r.rows_affected() == 1)
    }

    // ----- clients (the part the vault core needs) ----------------------

    pub async fn insert_client(&self, c: &NewClientRow) -> Result<(), CatalogError> {
        let now = now_micros();
        sqlx::query(
            "INSERT INTO clients (id, first_name, initials, last_name, birth_date, bsn_sealed, bsn_key_version, \
             email, phone, address, postcode, city, commissioner, coach_id, status, restricted, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'active', $15, $16, $16)",
        )
        .bind(c.id.to_string())
        .bind(&c.first_name)
        .bind(&c.initials)
        .bind(&c.last_name)
        .bind(&c.birth_date)
        .bind(c.bsn_sealed.as_ref().map(|s| s.bytes.clone()))
        .bind(c.bsn_sealed.as_ref().map(|s| i64::from(s.version)))
        .bind(c.email.clone())
        .bind(c.phone.clone())
        .bind(c.address.clone())
        .bind(c.postcode.clone())
        .bind(c.city.clone())
        .bind(&c.commissioner)
        .bind(c.coach_id.map(|u| u.to_string()))
        .bind(false)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(q("insert_client"))?;
        Ok(())
    }

    /// The sealed BSN of a client, if one was recorded.
    pub async fn client_bsn_sealed(&self, id: Uuid) -> Result<Option<WrappedKey>, CatalogError> {
        let row = sqlx::query("SELECT bsn_sealed, bsn_key_version FROM clients WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(q("client_bsn_sealed"))?
            .ok_or(CatalogError::NotFound("client"))?;
        sealed_cols(&row, "bsn_sealed", "bsn_key_version")
    }

    // ----- documents ----------------------------------------------------

    /// Record a document whose upload is starting. The row is `pending` until
    /// [`Catalog::activate_document`]; pending rows older than an upload can
    /// take are orphans to sweep.
    pub async fn insert_pending_document(&self, d: &NewDocumentRow) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO documents (id, client_id, doc_type, title, filename, content_type, object_name, \
             wrapped_key, key_version, state, uploaded_by, uploaded_at, retention_until, legal_hold) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12, $13)",
        )
        .bind(d.id.to_string())
        .bind(d.client_id.to_string())
        .bind(&d.doc_type)
        .bind(d.title.clone())
        .bind(&d.filename)
        .bind(&d.content_type)
        .bind(&d.object_name)
        .bind(d.wrapped_key.bytes.clone())
        .bind(i64::from(d.wrapped_key.version))
        .bind(d.uploaded_by.map(|u| u.to_string()))
        .bind(now_micros())
        .bind(d.retention_until)
        .bind(false)
        .execute(&self.pool)
        .await
        .map_err(q("insert_pending_document"))?;
        Ok(())
    }

    /// Mark a pending document complete with its plaintext size and hash.
    pub async fn activate_document(&self, id: Uuid, size: i64, sha256: &str) -> Result<(), CatalogError> {
        let r = sqlx::query("UPDATE documents SET state = 'active', size = $1, sha256 = $2 WHERE id = $3 AND state = 'pending'")
            .bind(size)
            .bind(sha256)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(q("activate_document"))?;
        if r.rows_affected() != 1 {
            return Err(CatalogError::NotFound("pending document"));
        }
        Ok(())
    }

    /// Remove the row of an upload that failed (only while pending).
    pub async fn delete_pending_document(&self, id: Uuid) -> Result<bool, CatalogError> {
        let r = sqlx::query("DELETE FROM documents WHERE id = $1 AND state = 'pending'")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(q("delete_pending_document"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Pending rows started before `before` (micros): interrupted uploads.
    pub async fn pending_documents_before(&self, before: i64) -> Result<Vec<DocumentRow>, CatalogError> {
        let sql = select_documents!("WHERE state = 'pending' AND uploaded_at < $1");
        let rows = sqlx::query(sql).bind(before).fetch_all(&self.pool).await.map_err(q("pending_documents_before"))?;
        rows.iter().map(document_from_row).collect()
    }

    pub async fn get_document(&self, id: Uuid) -> Result<DocumentRow, CatalogError> {
        let sql = select_documents!("WHERE id = $1");
        let row = sqlx::query(sql)
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(q("get_document"))?
            .ok_or(CatalogError::NotFound("document"))?;
        document_from_row(&row)
    }

    /// Crypto-shred: drop the wrapped data key and mark the row destroyed,
    /// in one statement. Returns false if it was already destroyed.
    pub async fn destroy_document(&self, id: Uuid, by: &str) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "UPDATE documents SET state = 'destroyed', wrapped_key = NULL, key_version = NULL, \
             destroyed_at = $1, destroyed_by = $2 WHERE id = $3 AND state <> 'destroyed'",
        )
        .bind(now_micros())
        .bind(by)
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(q("destroy_document"))?;
        Ok(r.rows_affected() == 1)
    }

    // ----- audit chain --------------------------------------------------

    /// Append one event to the chain and return it as stored.
    pub async fn append_audit(&self, e: &NewEvent) -> Result<Event, CatalogError> {
        let mut tx = self.pool.begin().await.map_err(q("audit begin"))?;
        // Take the write lock first: this UPDATE serialises appenders on both
        // databases (row lock on PostgreSQL, the write lock on SQLite).
        sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1")
            .execute(&mut *tx)
            .await
            .map_err(q("audit lock head"))?;
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(q("audit read head"))?;
        let seq: i64 = head.try_get("seq").map_err(q("decode"))?;
        let prev_hex: String = head.try_get("hash").map_err(q("decode"))?;
        let prev: [u8; 32] = hex::decode(&prev_hex)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| CatalogError::Corrupt("audit head hash".into()))?;
        let at = now_micros();
        let hash = hex::encode(audit::chain_hash(&prev, seq, at, e));
        sqlx::query(
            "INSERT INTO audit_events (seq, at, actor_id, actor_role, action, outcome, reason, purpose, \
             client_id, document_id, on_behalf_of, request_id, details, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(seq)
        .bind(at)
        .bind(e.actor_id.map(|u| u.to_string()))
        .bind(e.actor_role.clone())
        .bind(&e.action)
        .bind(&e.outcome)
        .bind(e.reason.clone())
        .bind(e.purpose.clone())
        .bind(e.client_id.map(|u| u.to_string()))
        .bind(e.document_id.map(|u| u.to_string()))
        .bind(e.on_behalf_of.map(|u| u.to_string()))
        .bind(e.request_id.clone())
        .bind(audit::details_text(&e.details))
        .bind(&prev_hex)
        .bind(&hash)
        .execute(&mut *tx)
        .await
        .map_err(q("audit insert"))?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .map_err(q("audit move head"))?;
        tx.commit().await.map_err(q("audit commit"))?;
        Ok(Event { seq, at, body: e.clone(), prev_hash: prev_hex, hash })
    }

    /// Events with `seq > after`, in order, at most `limit`.
    pub async fn audit_events_after(&self, after: i64, limit: i64) -> Result<Vec<Event>, CatalogError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor_id, actor_role, action, outcome, reason, purpose, client_id, document_id, \
             on_behalf_of, request_id, details, prev_hash, hash FROM audit_events \
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(q("audit_events_after"))?;
        rows.iter()
            .map(|r| {
                let details: String = r.try_get("details").map_err(q("decode"))?;
                Ok(Event {
                    seq: r.try_get("seq").map_err(q("decode"))?,
                    at: r.try_get("at").map_err(q("decode"))?,
                    body: NewEvent {
                        actor_id: opt_uuid_col(r, "actor_id")?,
                        actor_role: r.try_get("actor_role").map_err(q("decode"))?,
                        action: r.try_get("action").map_err(q("decode"))?,
                        outcome: r.try_get("outcome").map_err(q("decode"))?,
                        reason: r.try_get("reason").map_err(q("decode"))?,
                        purpose: r.try_get("purpose").map_err(q("decode"))?,
                        client_id: opt_uuid_col(r, "client_id")?,
                        document_id: opt_uuid_col(r, "document_id")?,
                        on_behalf_of: opt_uuid_col(r, "on_behalf_of")?,
                        request_id: r.try_get("request_id").map_err(q("decode"))?,
                        // Unparseable details cannot match the hash, which
                        // verification then reports as an altered event.
                        details: serde_json::from_str(&details)
                            .unwrap_or(serde_json::Value::String(details)),
                    },
                    prev_hash: r.try_get("prev_hash").map_err(q("decode"))?,
                    hash: r.try_get("hash").map_err(q("decode"))?,
                })
            })
            .collect()
    }

    /// Walk the whole chain; `Ok((events, head))` when intact.
    pub async fn verify_audit_chain(&self) -> Result<Result<(i64, String), ChainBreak>, CatalogError> {
        let mut v = ChainVerifier::default();
        let mut after = 0;
        loop {
            let page = self.audit_events_after(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                if let Err(b) = v.check(e) {
                    return Ok(Err(b));
                }
            }
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(q("audit head"))?;
        let head_seq: i64 = head.try_get("seq").map_err(q("decode"))?;
        let head_hash: String = head.try_get("hash").map_err(q("decode"))?;
        if head_seq != v.count() || head_hash != v.head() {
            return Ok(Err(ChainBreak::HeadMismatch { head_seq, last_seq: v.count() }));
        }
        Ok(Ok((v.count(), v.head())))
    }

    /// For tests and tools that must simulate an attacker with database
    /// access: run raw SQL. Never used by the server.
    #[doc(hidden)]
    pub async fn execute_raw_for_tests(&self, sql: &str) -> Result<u64, CatalogError> {
        let r = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&self.pool).await.map_err(q("raw"))?;
        Ok(r.rows_affected())
    }
}
