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
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use uuid::Uuid;

use crate::keyring::WrappedKey;

mod access;
mod audit_log;
mod breaches;
mod clients;
mod documents;
mod keys;
mod logins;
mod privacy;
mod purge;
mod retention;
mod search;
mod tokens;
mod users;

pub use access::{CaseloadPeriod, SubstitutionRow};
pub use audit_log::AuditFilter;
pub use breaches::{BreachRow, BreachUpdateRow, IncidentFilter, IncidentReach, ReviewRow};
pub use clients::{ClientRow, ClientStatus, NewClientRow, RowLock, display_name};
pub use documents::{DocumentRow, DocumentState, NewDocumentRow};
pub use keys::{KeyVersionRow, SealedKind, SealedRow};
pub use logins::{LoginAttempts, LoginStepRow};
pub use privacy::{
    ClientFields, ConsentRow, CorrectionRow, DisclosureRow, ErasureRow, RequestCounts, RequestFilter, RequestRow,
};
pub use purge::{Destruction, DueRow, QueuedObject, RetentionCounts};
pub use retention::{DAY_MICROS, PolicyRow, Recompute, RetentionTrigger};
pub use search::{
    ChangeWaiter, ClientName, ClientReach, HitRow, IndexRow, LogAnchor, LogChange, LogPosition, LogState,
};
pub use tokens::{DownloadTokenRow, NewDownloadToken, Redemption, SessionRow};
pub use users::{NewUserRow, RoleChange, UserRow};

/// How long a SQLite write transaction waits for its turn.
const WRITER_WAIT: Duration = Duration::from_secs(10);

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
    #[error("{0} already exists")]
    Conflict(&'static str),
    #[error(
        "master key version {version} is no longer the current one (another process rotated or retired it); \
         reload the key file and seal again"
    )]
    StaleKeyVersion { version: u32 },
}

impl CatalogError {
    /// The database could not be reached (as opposed to a query it refused):
    /// worth a 503 and a retry.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            CatalogError::Connect { .. }
                | CatalogError::Query {
                    source: sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed,
                    ..
                }
        )
    }
}

/// `$first, $first+1, …` (`n` of them): the bind parameters of an
/// `IN (...)` list or a `VALUES` row.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
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

/// Like [`q`], but a unique-constraint violation becomes `Conflict(what)`.
fn q_unique(op: &'static str, what: &'static str) -> impl FnOnce(sqlx::Error) -> CatalogError {
    move |source| match &source {
        sqlx::Error::Database(e) if e.is_unique_violation() => CatalogError::Conflict(what),
        _ => CatalogError::Query { op, source },
    }
}

/// A boolean column read as `CAST(col AS INTEGER) AS col`.
fn bool_col(row: &AnyRow, col: &str) -> Result<bool, CatalogError> {
    Ok(row.try_get::<i64, _>(col).map_err(q("decode"))? != 0)
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
    s.map(|s| Uuid::from_str(&s).map_err(|_| CatalogError::Corrupt(format!("{col} is not a UUID")))).transpose()
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

fn begin_error(backend: Backend, source: sqlx::Error) -> CatalogError {
    match source {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            CatalogError::Query { op: "begin", source }
        }
        source => CatalogError::Connect { backend, source },
    }
}

/// One database transaction: every catalog read and write goes through one.
/// A service operation's change and its audit event are written in the same
/// `Tx`, so they commit together or not at all. Dropping a `Tx` without
/// [`Tx::commit`] rolls it back.
pub struct Tx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
    /// The operation's time (microseconds since the epoch), from the vault's
    /// clock: every row and event written in this transaction carries it.
    now: i64,
    /// This process's turn as SQLite's writer, held until the end.
    _writer: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// Told after a read-write transaction commits (wakes the search
    /// follower of this process).
    committed: Option<Arc<tokio::sync::Notify>>,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").field("backend", &self.backend).field("now", &self.now).finish()
    }
}

impl Tx {
    /// Bind parameters per statement, for `IN (...)` lists and multi-row
    /// `VALUES`. SQLite finds each parameter's name by a linear scan when
    /// sqlx binds it, so a statement of n parameters costs n² steps there
    /// (at 7,500 it was a fifth of the purge's time): about a hundred. On
    /// PostgreSQL a statement is a round trip: larger ones.
    fn params_per_statement(&self) -> usize {
        match self.backend {
            Backend::Sqlite => 100,
            Backend::Postgres => 1500,
        }
    }

    /// Ids per `IN (...)` list.
    fn in_chunk(&self) -> usize {
        self.params_per_statement().min(500)
    }

    pub fn now(&self) -> i64 {
        self.now
    }

    /// Set the operation's time (the vault reads its clock once the
    /// transaction has begun, so a wait for the writer's turn does not age it).
    pub fn set_now(&mut self, now: i64) {
        self.now = now;
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn commit(self) -> Result<(), CatalogError> {
        self.tx.commit().await.map_err(q("commit"))?;
        if let Some(n) = &self.committed {
            n.notify_one();
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), CatalogError> {
        self.tx.rollback().await.map_err(q("rollback"))
    }

    /// For tests and tools that simulate an attacker with database access.
    #[doc(hidden)]
    pub async fn execute_raw_for_tests(&mut self, sql: &str) -> Result<u64, CatalogError> {
        let r = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&mut *self.tx).await.map_err(q("raw"))?;
        Ok(r.rows_affected())
    }
}

#[derive(Clone)]
pub struct Catalog {
    /// The database URL (for connections of the database's own driver).
    url: String,
    pool: AnyPool,
    /// SQLite: the one connection write transactions use.
    write_pool: Option<AnyPool>,
    backend: Backend,
    /// SQLite allows one writer at a time. Writers of this process queue
    /// here, in order, instead of in SQLite's busy handler (which sleeps in
    /// growing steps and holds a pool connection while it waits); other
    /// processes (the CLI) still meet the busy timeout.
    writer: Arc<tokio::sync::Mutex<()>>,
    /// Told after every read-write commit of this process.
    committed: Arc<tokio::sync::Notify>,
    /// PostgreSQL: the URL, for the search follower's `LISTEN` connection.
    pg_url: Option<String>,
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
                        // row survives power loss, a wait instead of an
                        // immediate SQLITE_BUSY under write contention, and
                        // reads of the database file through a memory map
                        // (up to 256 MiB: the page cache, shared by all
                        // connections, instead of a read call per page and a
                        // private 2 MB cache each; it halved the catalog
                        // reads of a search at a million documents).
                        sqlx::raw_sql(
                            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                             PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; PRAGMA mmap_size = 268435456;",
                        )
                        .execute(&mut *conn)
                        .await?;
                    }
                    Ok(())
                })
            });
        let pool = opts.clone().connect(&url).await.map_err(|source| CatalogError::Connect { backend, source })?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        // PostgreSQL migrations hold an advisory lock; SQLite's do not, so
        // two processes starting on a new file can both try the first one.
        // The loser fails on "already exists" once the winner committed; a
        // second run then sees it applied.
        let mut attempt = 0;
        loop {
            match migrator.run(&pool).await {
                Ok(()) => break,
                Err(_) if backend == Backend::Sqlite && attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(source) => return Err(CatalogError::Migrate { backend, source }),
            }
        }
        // SQLite: writers get a connection of their own, so a writer (who
        // holds the one write lock) never waits for a connection behind a
        // queue of readers.
        let write_pool = match backend {
            Backend::Sqlite => Some(
                opts.max_connections(1)
                    .min_connections(1)
                    .connect(&url)
                    .await
                    .map_err(|source| CatalogError::Connect { backend, source })?,
            ),
            Backend::Postgres => None,
        };
        let pg_url = (backend == Backend::Postgres).then(|| url.clone());
        let catalog = Catalog {
            url: url.clone(),
            pool,
            write_pool,
            backend,
            writer: Arc::new(tokio::sync::Mutex::new(())),
            committed: Arc::new(tokio::sync::Notify::new()),
            pg_url,
        };
        if backend == Backend::Postgres {
            catalog.renumber_foreign_search_log().await?;
        }
        catalog.fill_name_keys().await?;
        Ok(catalog)
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
        if let Some(w) = &self.write_pool {
            w.close().await;
        }
    }

    /// A read-write transaction at time `now` (microseconds). On SQLite it
    /// starts with `BEGIN IMMEDIATE`: it holds the write lock from the start,
    /// so it can never fail half-way when upgrading from reader to writer.
    /// On PostgreSQL it is READ COMMITTED; rules that must not race lock the
    /// rows they read first (see [`Tx::lock_users_for_change`]), and the
    /// audit append, last in every write transaction, locks the chain head.
    pub async fn begin(&self, now: i64) -> Result<Tx, CatalogError> {
        let (tx, writer) = match self.backend {
            Backend::Sqlite => {
                // Bounded: a writer that cannot get its turn answers 503.
                let turn = tokio::time::timeout(WRITER_WAIT, self.writer.clone().lock_owned())
                    .await
                    .map_err(|_| CatalogError::Query { op: "begin", source: sqlx::Error::PoolTimedOut })?;
                let pool = self.write_pool.as_ref().unwrap_or(&self.pool);
                (pool.begin_with("BEGIN IMMEDIATE").await, Some(turn))
            }
            Backend::Postgres => (self.pool.begin().await, None),
        };
        let tx = tx.map_err(|source| begin_error(self.backend, source))?;
        Ok(Tx { tx, backend: self.backend, now, _writer: writer, committed: Some(self.committed.clone()) })
    }

    /// A read-only transaction that sees one consistent snapshot (REPEATABLE
    /// READ on PostgreSQL, a deferred read transaction in WAL mode on SQLite).
    /// It does not block writers.
    pub async fn snapshot(&self, now: i64) -> Result<Tx, CatalogError> {
        let tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN DEFERRED").await,
            Backend::Postgres => self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await,
        }
        .map_err(|source| begin_error(self.backend, source))?;
        Ok(Tx { tx, backend: self.backend, now, _writer: None, committed: None })
    }

    /// The session with this token hash and its user, in one statement
    /// outside any transaction (every authenticated request asks this).
    pub async fn session_with_user(&self, token_hash: &str) -> Result<Option<(SessionRow, UserRow)>, CatalogError> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.display_name, u.role, u.password_hash, u.totp_secret, u.totp_key_version, \
             u.totp_last_step, CAST(u.active AS INTEGER) AS active, u.failed_attempts, u.locked_until, u.created_at, \
             u.updated_at, u.language, s.token_hash, s.user_id, s.created_at AS session_created_at, s.last_seen_at, s.expires_at \
             FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("session_with_user"))?;
        let Some(r) = row else { return Ok(None) };
        let session = SessionRow {
            token_hash: r.try_get("token_hash").map_err(q("decode"))?,
            user_id: uuid_col(&r, "user_id")?,
            created_at: r.try_get("session_created_at").map_err(q("decode"))?,
            last_seen_at: r.try_get("last_seen_at").map_err(q("decode"))?,
            expires_at: r.try_get("expires_at").map_err(q("decode"))?,
        };
        Ok(Some((session, users::user_from_row(&r)?)))
    }

    /// A download token that is still usable, and its document, in one
    /// statement outside any transaction (to open the object before the
    /// redemption's transaction).
    pub async fn usable_token_document(&self, token_hash: &str, now: i64) -> Result<Option<DocumentRow>, CatalogError> {
        // The document's columns as every document read takes them.
        let sql = format!(
            "SELECT d.* FROM download_tokens t JOIN ({}) d ON d.id = t.document_id \
             WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.voided_at IS NULL AND t.expires_at > $2",
            documents::SELECT_DOCUMENTS.trim_end()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await
            .map_err(q("usable_token_document"))?;
        row.as_ref().map(documents::document_from_row).transpose()
    }

    /// For tests and tools that must simulate an attacker with database
    /// access: run raw SQL. Never used by the server.
    #[doc(hidden)]
    pub async fn execute_raw_for_tests(&self, sql: &str) -> Result<u64, CatalogError> {
        let r = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string())).execute(&self.pool).await.map_err(q("raw"))?;
        Ok(r.rows_affected())
    }
}
