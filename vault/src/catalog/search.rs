//! The search change log (`migrations/*/0004_search.sql`) and the reads the
//! search index needs: the current rows of the documents and clients a
//! change names, a whole-catalog scan for rebuilding, and the scope of a
//! coach.
//!
//! Triggers write the log, in the transaction of every change that search
//! shows, so no operation can forget it. A position in the log is a pair
//! (xid, seq), read in that order. On PostgreSQL `xid` is the writing
//! transaction's id and a reader only takes rows whose xid lies below the
//! oldest transaction still running: sequence values commit out of order,
//! transaction ids below that horizon can no longer add rows. On SQLite
//! (one writer at a time) `xid` is 0 and `seq` order is commit order.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{Backend, Catalog, CatalogError, ClientStatus, DocumentState, Tx, opt_uuid_col, placeholders, q, uuid_col};

/// A client as a coach's search scope needs it: what the policy decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientReach {
    pub id: Uuid,
    pub coach_id: Option<Uuid>,
    pub status: ClientStatus,
    pub restricted: bool,
}

/// A document a search found, with its client.
#[derive(Debug, Clone)]
pub struct HitRow {
    pub document: super::DocumentRow,
    pub client: ClientReach,
    /// As shown: first and last name.
    pub client_name: String,
}

/// A position in the change log: every row at or before it has been
/// applied. Ordered by (xid, seq).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct LogPosition {
    pub xid: i64,
    pub seq: i64,
}

/// Which log this is, and how far it has been pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogState {
    /// Random, made when the database was created: a cursor from another
    /// database does not fit.
    pub log_id: String,
    /// Rows at or before this position are gone: a cursor below it missed
    /// changes.
    pub pruned: LogPosition,
}

/// One row of the log: a document changed, or every document of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChange {
    pub position: LogPosition,
    /// When it was written (microseconds): with the position, a fingerprint
    /// of the row (see [`Tx::search_log_row`]).
    pub at: i64,
    pub document_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
}

/// A row of the log a reader has applied, to find again later: if the log
/// no longer holds it although it was not pruned, the database is not the
/// one the reader followed (restored from a backup).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct LogAnchor {
    pub xid: i64,
    pub seq: i64,
    pub at: i64,
}

impl LogAnchor {
    pub fn position(&self) -> LogPosition {
        LogPosition { xid: self.xid, seq: self.seq }
    }
}

/// What search needs of a document: its metadata, never its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub doc_type: String,
    pub title: Option<String>,
    pub filename: String,
    pub uploaded_by: Option<Uuid>,
    pub uploaded_at: i64,
    pub retention_until: Option<i64>,
    pub state: DocumentState,
}

/// What search needs of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName {
    pub name: String,
    pub status: ClientStatus,
    pub coach_id: Option<Uuid>,
}

macro_rules! select_index_rows {
    ($rest:literal) => {
        concat!(
            "SELECT id, client_id, doc_type, title, filename, uploaded_by, uploaded_at, retention_until, state \
             FROM documents ",
            $rest
        )
    };
}

fn index_row(r: &AnyRow) -> Result<IndexRow, CatalogError> {
    let state: String = r.try_get("state").map_err(q("decode"))?;
    Ok(IndexRow {
        id: uuid_col(r, "id")?,
        client_id: uuid_col(r, "client_id")?,
        doc_type: r.try_get("doc_type").map_err(q("decode"))?,
        title: r.try_get("title").map_err(q("decode"))?,
        filename: r.try_get("filename").map_err(q("decode"))?,
        uploaded_by: opt_uuid_col(r, "uploaded_by")?,
        uploaded_at: r.try_get("uploaded_at").map_err(q("decode"))?,
        retention_until: r.try_get("retention_until").map_err(q("decode"))?,
        state: state.parse().map_err(|_| CatalogError::Corrupt(format!("unknown document state {state:?}")))?,
    })
}

fn anchor(r: &AnyRow) -> Result<LogAnchor, CatalogError> {
    Ok(LogAnchor {
        xid: r.try_get("xid").map_err(q("decode"))?,
        seq: r.try_get("seq").map_err(q("decode"))?,
        at: r.try_get("at").map_err(q("decode"))?,
    })
}

/// [`index_row`] for a row of PostgreSQL's own driver (the columns of
/// `select_index_rows!`, by position, text borrowed until parsed).
fn pg_index_row(r: &sqlx::postgres::PgRow) -> Result<IndexRow, CatalogError> {
    index_row_at(
        |i| r.try_get::<Option<&str>, _>(i).map_err(q("decode")),
        |i| r.try_get::<Option<i64>, _>(i).map_err(q("decode")),
    )
}

/// An index row from the columns of `select_index_rows!` by position, as
/// text or integer (`None` for NULL), whatever the driver.
fn index_row_at<'r>(
    text: impl Fn(usize) -> Result<Option<&'r str>, CatalogError>,
    int: impl Fn(usize) -> Result<Option<i64>, CatalogError>,
) -> Result<IndexRow, CatalogError> {
    let missing = |i: usize| CatalogError::Corrupt(format!("documents: column {i} is NULL"));
    let required = |i: usize| text(i)?.ok_or_else(|| missing(i));
    Ok(IndexRow {
        id: parse_id(required(0)?)?,
        client_id: parse_id(required(1)?)?,
        doc_type: required(2)?.to_owned(),
        title: text(3)?.map(str::to_owned),
        filename: required(4)?.to_owned(),
        uploaded_by: text(5)?.map(parse_id).transpose()?,
        uploaded_at: int(6)?.ok_or_else(|| missing(6))?,
        retention_until: int(7)?,
        state: parse_state(required(8)?)?,
    })
}

fn client_name(r: &AnyRow) -> Result<(Uuid, ClientName), CatalogError> {
    let first: String = r.try_get("first_name").map_err(q("decode"))?;
    let last: String = r.try_get("last_name").map_err(q("decode"))?;
    let status: String = r.try_get("status").map_err(q("decode"))?;
    let name = super::clients::display_name(&first, &last);
    let status = status.parse().map_err(|_| CatalogError::Corrupt(format!("client status {status:?}")))?;
    Ok((uuid_col(r, "id")?, ClientName { name, status, coach_id: opt_uuid_col(r, "coach_id")? }))
}

/// `select` (ending in `WHERE ... <col>`) `IN (...)` the ids, in lists of
/// at most [`Tx::in_chunk`], each row decoded.
pub(super) async fn fetch_in<T>(
    tx: &mut Tx,
    op: &'static str,
    select: &str,
    ids: &[Uuid],
    decode: impl Fn(&AnyRow) -> Result<T, CatalogError>,
) -> Result<Vec<T>, CatalogError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(tx.in_chunk()) {
        let list = placeholders(1, chunk.len());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(format!("{select} IN ({list})")));
        for id in chunk {
            query = query.bind(id.to_string());
        }
        for r in &query.fetch_all(&mut *tx.tx).await.map_err(q(op))? {
            out.push(decode(r)?);
        }
    }
    Ok(out)
}

impl Tx {
    pub async fn search_log_state(&mut self) -> Result<LogState, CatalogError> {
        let r = sqlx::query("SELECT log_id, pruned_xid, pruned_seq FROM search_log_state WHERE id = 1")
            .fetch_one(&mut *self.tx)
            .await
            .map_err(q("search_log_state"))?;
        Ok(LogState {
            log_id: r.try_get("log_id").map_err(q("decode"))?,
            pruned: LogPosition {
                xid: r.try_get("pruned_xid").map_err(q("decode"))?,
                seq: r.try_get("pruned_seq").map_err(q("decode"))?,
            },
        })
    }

    /// The position up to which this transaction's snapshot holds every row
    /// there will ever be: a reader that starts from here misses nothing
    /// that commits later. PostgreSQL: just below the oldest transaction
    /// still running. SQLite: the last sequence number handed out.
    pub async fn search_log_head(&mut self) -> Result<LogPosition, CatalogError> {
        match self.backend {
            Backend::Postgres => {
                let h: String = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
                    .fetch_one(&mut *self.tx)
                    .await
                    .map_err(q("search_log_head"))?;
                let h: i64 = h.parse().map_err(|_| CatalogError::Corrupt(format!("snapshot xmin {h:?}")))?;
                Ok(LogPosition { xid: h - 1, seq: i64::MAX })
            }
            Backend::Sqlite => {
                let seq: Option<i64> = sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = 'search_log'")
                    .fetch_optional(&mut *self.tx)
                    .await
                    .map_err(q("search_log_head"))?;
                Ok(LogPosition { xid: 0, seq: seq.unwrap_or(0) })
            }
        }
    }

    /// Up to `limit` rows after `after`, in log order, that no running
    /// transaction can still precede.
    pub async fn search_log_after(&mut self, after: LogPosition, limit: usize) -> Result<Vec<LogChange>, CatalogError> {
        let sql = match self.backend {
            Backend::Postgres => {
                "SELECT xid, seq, at, document_id, client_id FROM search_log \
                 WHERE (xid, seq) > ($1, $2) AND xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint \
                 ORDER BY xid, seq LIMIT $3"
            }
            // xid is always 0 here: `seq` (the rowid) alone orders the log.
            Backend::Sqlite => {
                "SELECT xid, seq, at, document_id, client_id FROM search_log WHERE seq > $1 ORDER BY seq LIMIT $2"
            }
        };
        let mut query = sqlx::query(sql);
        if self.backend == Backend::Postgres {
            query = query.bind(after.xid);
        }
        let rows =
            query.bind(after.seq).bind(limit as i64).fetch_all(&mut *self.tx).await.map_err(q("search_log_after"))?;
        rows.iter()
            .map(|r| {
                Ok(LogChange {
                    position: LogPosition {
                        xid: r.try_get("xid").map_err(q("decode"))?,
                        seq: r.try_get("seq").map_err(q("decode"))?,
                    },
                    at: r.try_get("at").map_err(q("decode"))?,
                    document_id: opt_uuid_col(r, "document_id")?,
                    client_id: opt_uuid_col(r, "client_id")?,
                })
            })
            .collect()
    }

    /// Rows after `after` whatever the horizon (some may still be held
    /// back by a running transaction): how many, and when the oldest was
    /// written (microseconds).
    pub async fn search_log_pending(&mut self, after: LogPosition) -> Result<(u64, Option<i64>), CatalogError> {
        let query = match self.backend {
            Backend::Postgres => {
                sqlx::query("SELECT COUNT(*) AS n, MIN(at) AS oldest FROM search_log WHERE (xid, seq) > ($1, $2)")
                    .bind(after.xid)
            }
            Backend::Sqlite => sqlx::query("SELECT COUNT(*) AS n, MIN(at) AS oldest FROM search_log WHERE seq > $1"),
        };
        let r = query.bind(after.seq).fetch_one(&mut *self.tx).await.map_err(q("search_log_pending"))?;
        let n: i64 = r.try_get("n").map_err(q("decode"))?;
        Ok((n.max(0) as u64, r.try_get("oldest").map_err(q("decode"))?))
    }

    /// The last row at or before `upto` (in log order) that no running
    /// transaction can still precede, as an anchor.
    pub async fn search_log_last(&mut self, upto: LogPosition) -> Result<Option<LogAnchor>, CatalogError> {
        let query = match self.backend {
            Backend::Postgres => sqlx::query(
                "SELECT xid, seq, at FROM search_log WHERE (xid, seq) <= ($1, $2) \
                 AND xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint ORDER BY xid DESC, seq DESC LIMIT 1",
            )
            .bind(upto.xid),
            Backend::Sqlite => {
                sqlx::query("SELECT xid, seq, at FROM search_log WHERE seq <= $1 ORDER BY seq DESC LIMIT 1")
            }
        };
        let row = query.bind(upto.seq).fetch_optional(&mut *self.tx).await.map_err(q("search_log_last"))?;
        row.as_ref().map(anchor).transpose()
    }

    /// The log row with this sequence number, if the log holds it.
    pub async fn search_log_row(&mut self, seq: i64) -> Result<Option<LogAnchor>, CatalogError> {
        let row = sqlx::query("SELECT xid, seq, at FROM search_log WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("search_log_row"))?;
        row.as_ref().map(anchor).transpose()
    }

    /// Drop log rows written before `before` (microseconds) that every
    /// reader can see, and remember how far: a node whose cursor lies below
    /// that rebuilds instead. Returns how many rows went.
    pub async fn prune_search_log(&mut self, before: i64) -> Result<u64, CatalogError> {
        let sql = match self.backend {
            Backend::Postgres => {
                "SELECT xid, seq FROM search_log WHERE at < $1 \
                 AND xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint ORDER BY xid DESC, seq DESC LIMIT 1"
            }
            Backend::Sqlite => "SELECT xid, seq FROM search_log WHERE at < $1 ORDER BY seq DESC LIMIT 1",
        };
        let last = sqlx::query(sql).bind(before).fetch_optional(&mut *self.tx).await.map_err(q("prune_search_log"))?;
        let Some(last) = last else { return Ok(0) };
        let xid: i64 = last.try_get("xid").map_err(q("decode"))?;
        let seq: i64 = last.try_get("seq").map_err(q("decode"))?;
        sqlx::query(
            "UPDATE search_log_state SET pruned_xid = $1, pruned_seq = $2 \
             WHERE id = 1 AND (pruned_xid, pruned_seq) < ($1, $2)",
        )
        .bind(xid)
        .bind(seq)
        .execute(&mut *self.tx)
        .await
        .map_err(q("prune_search_log"))?;
        // As in `search_log_after`: SQLite orders by `seq` alone.
        let delete = match self.backend {
            Backend::Postgres => sqlx::query("DELETE FROM search_log WHERE (xid, seq) <= ($1, $2)").bind(xid),
            Backend::Sqlite => sqlx::query("DELETE FROM search_log WHERE seq <= $1"),
        };
        let r = delete.bind(seq).execute(&mut *self.tx).await.map_err(q("prune_search_log"))?;
        Ok(r.rows_affected())
    }

    /// The current rows of these documents (any state; missing ids are
    /// simply absent).
    pub async fn index_rows(&mut self, ids: &[Uuid]) -> Result<Vec<IndexRow>, CatalogError> {
        fetch_in(self, "index_rows", select_index_rows!("WHERE id"), ids, index_row).await
    }

    /// The current rows of every document of these clients (any state).
    pub async fn index_rows_of_clients(&mut self, clients: &[Uuid]) -> Result<Vec<IndexRow>, CatalogError> {
        fetch_in(self, "index_rows_of_clients", select_index_rows!("WHERE client_id"), clients, index_row).await
    }

    pub async fn count_active_documents(&mut self) -> Result<u64, CatalogError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM documents WHERE state = 'active'")
            .fetch_one(&mut *self.tx)
            .await
            .map_err(q("count_active_documents"))?;
        Ok(n.max(0) as u64)
    }

    /// Names and trajectory states of these clients, or of all (`None`).
    pub async fn client_names(&mut self, ids: Option<&[Uuid]>) -> Result<HashMap<Uuid, ClientName>, CatalogError> {
        const SELECT: &str = "SELECT id, first_name, last_name, status, coach_id FROM clients";
        let rows = match ids {
            None => {
                let rows = sqlx::query(SELECT).fetch_all(&mut *self.tx).await.map_err(q("client_names"))?;
                rows.iter().map(client_name).collect::<Result<Vec<_>, _>>()?
            }
            Some(ids) => fetch_in(self, "client_names", &format!("{SELECT} WHERE id"), ids, client_name).await?,
        };
        Ok(rows.into_iter().collect())
    }

    /// Active clients coached by any of `coaches` (a coach's own caseload
    /// and those of the colleagues they stand in for).
    pub async fn active_clients_of(&mut self, coaches: &[Uuid]) -> Result<Vec<ClientReach>, CatalogError> {
        // Every search of a coach reads their scope, hundreds of rows: as
        // one row holding a JSON array (a row costs a channel hop on SQLite
        // through sqlx), and only what the policy decides on.
        let aggregate = match self.backend {
            Backend::Sqlite => "json_group_array(json_array(id, coach_id, status, CAST(restricted AS INTEGER)))",
            Backend::Postgres => {
                "COALESCE(json_agg(json_build_array(id, coach_id, status, CAST(restricted AS INTEGER))), '[]')::text"
            }
        };
        let mut out = Vec::new();
        for chunk in coaches.chunks(self.in_chunk()) {
            let list = placeholders(1, chunk.len());
            let sql =
                format!("SELECT {aggregate} AS reach FROM clients WHERE status = 'active' AND coach_id IN ({list})");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.to_string());
            }
            let row = query.fetch_one(&mut *self.tx).await.map_err(q("active_clients_of"))?;
            let json: String = row.try_get("reach").map_err(q("decode"))?;
            let rows: Vec<(String, Option<String>, String, i64)> = serde_json::from_str(&json)
                .map_err(|e| CatalogError::Corrupt(format!("a coach's clients as JSON: {e}")))?;
            for (id, coach, status, restricted) in rows {
                let uuid = |s: &str| {
                    s.parse::<Uuid>().map_err(|_| CatalogError::Corrupt("a client or coach id is not a UUID".into()))
                };
                out.push(ClientReach {
                    id: uuid(&id)?,
                    coach_id: coach.as_deref().map(uuid).transpose()?,
                    status: status.parse().map_err(|_| CatalogError::Corrupt(format!("client status {status:?}")))?,
                    restricted: restricted != 0,
                });
            }
        }
        Ok(out)
    }

    /// The documents a search found, each with its client as the policy
    /// and the page need it, in one read (missing ids are absent).
    pub async fn hits_by_ids(&mut self, ids: &[Uuid]) -> Result<Vec<HitRow>, CatalogError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.in_chunk()) {
            let list = placeholders(1, chunk.len());
            let sql = format!(
                "SELECT d.*, c.first_name AS client_first_name, c.last_name AS client_last_name, \
                 c.coach_id AS client_coach_id, c.status AS client_status, \
                 CAST(c.restricted AS INTEGER) AS client_restricted \
                 FROM ({}WHERE id IN ({list})) d JOIN clients c ON c.id = d.client_id",
                super::documents::SELECT_DOCUMENTS
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                query = query.bind(id.to_string());
            }
            for r in &query.fetch_all(&mut *self.tx).await.map_err(q("hits_by_ids"))? {
                let document = super::documents::document_from_row(r)?;
                let status: String = r.try_get("client_status").map_err(q("decode"))?;
                let client = ClientReach {
                    id: document.client_id,
                    coach_id: opt_uuid_col(r, "client_coach_id")?,
                    status: status.parse().map_err(|_| CatalogError::Corrupt(format!("client status {status:?}")))?,
                    restricted: super::bool_col(r, "client_restricted")?,
                };
                let name = super::clients::display_name(
                    &r.try_get::<String, _>("client_first_name").map_err(q("decode"))?,
                    &r.try_get::<String, _>("client_last_name").map_err(q("decode"))?,
                );
                out.push(HitRow { document, client, client_name: name });
            }
        }
        Ok(out)
    }
}

/// Wakes a search follower when a change may have committed: PostgreSQL's
/// `NOTIFY` from the log trigger (any node's writes), and this process's
/// own write commits. Neither is trusted alone: notifications are lost while
/// a connection is down, so the follower also polls.
pub struct ChangeWaiter {
    local: std::sync::Arc<tokio::sync::Notify>,
    pg_url: Option<String>,
    listener: Option<sqlx::postgres::PgListener>,
}

/// The channel the log trigger notifies.
const CHANNEL: &str = "kluis_search";

/// Pages of rows from [`Catalog::scan_active_index_rows`].
pub type IndexRowPages = tokio::sync::mpsc::Receiver<Result<Vec<IndexRow>, CatalogError>>;

fn sqlite_error(e: rusqlite::Error) -> CatalogError {
    CatalogError::Corrupt(format!("reading the SQLite catalog for the search index: {e}"))
}

fn open_sqlite_reader(path: &std::path::Path) -> Result<rusqlite::Connection, CatalogError> {
    use rusqlite::OpenFlags;
    let conn =
        rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .map_err(sqlite_error)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(sqlite_error)?;
    Ok(conn)
}

/// Send every row of `sql` in pages; stops early when the receiver went away.
fn scan_sqlite(
    conn: &rusqlite::Connection,
    sql: &str,
    page: usize,
    send: &tokio::sync::mpsc::Sender<Result<Vec<IndexRow>, CatalogError>>,
) -> Result<(), CatalogError> {
    use rusqlite::types::ValueRef;
    let mut stmt = conn.prepare(sql).map_err(sqlite_error)?;
    let mut rows = stmt.query([]).map_err(sqlite_error)?;
    let mut out = Vec::with_capacity(page);
    let bad = |i: usize| CatalogError::Corrupt(format!("documents: column {i} has an unexpected type"));
    while let Some(r) = rows.next().map_err(sqlite_error)? {
        let text = |i: usize| match r.get_ref(i).map_err(sqlite_error)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => std::str::from_utf8(t).map(Some).map_err(|_| bad(i)),
            _ => Err(bad(i)),
        };
        let int = |i: usize| match r.get_ref(i).map_err(sqlite_error)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(n) => Ok(Some(n)),
            _ => Err(bad(i)),
        };
        out.push(index_row_at(text, int)?);
        if out.len() == page && send.blocking_send(Ok(std::mem::replace(&mut out, Vec::with_capacity(page)))).is_err() {
            return Ok(()); // the reader went away
        }
    }
    if !out.is_empty() {
        let _ = send.blocking_send(Ok(out));
    }
    // The end: an empty page (a task that died drops the channel instead).
    let _ = send.blocking_send(Ok(Vec::new()));
    Ok(())
}

/// [`scan_sqlite`] on PostgreSQL's own driver.
async fn scan_postgres(
    conn: &mut sqlx::PgConnection,
    sql: &'static str,
    page: usize,
    send: &tokio::sync::mpsc::Sender<Result<Vec<IndexRow>, CatalogError>>,
) {
    use futures::StreamExt;
    let mut rows = sqlx::query(sql).fetch(conn);
    let mut out = Vec::with_capacity(page);
    while let Some(row) = rows.next().await {
        match row.map_err(q("scan_active_index_rows")).and_then(|r| pg_index_row(&r)) {
            Ok(r) => out.push(r),
            Err(e) => {
                let _ = send.send(Err(e)).await;
                return;
            }
        }
        if out.len() == page && send.send(Ok(std::mem::replace(&mut out, Vec::with_capacity(page)))).await.is_err() {
            return;
        }
    }
    if !out.is_empty() {
        let _ = send.send(Ok(out)).await;
    }
    let _ = send.send(Ok(Vec::new())).await; // the end, as in `scan_sqlite`
}

fn parse_id(s: &str) -> Result<Uuid, CatalogError> {
    Uuid::parse_str(s).map_err(|_| CatalogError::Corrupt(format!("id {s:?} is not a UUID")))
}

fn parse_state(s: &str) -> Result<DocumentState, CatalogError> {
    s.parse().map_err(|_| CatalogError::Corrupt(format!("unknown document state {s:?}")))
}

impl Catalog {
    /// Every active document's index row, in the table's own order (one
    /// sequential scan, one statement: one consistent snapshot, taken when
    /// this is called), in pages of up to `page` rows. Read on a connection
    /// of its own by the database's own library, not through `Any` (a
    /// rebuild decodes every row of the catalog, and `Any`'s per-row copies
    /// cost as much as indexing them): SQLite by `rusqlite` on a blocking
    /// thread, text borrowed until parsed; PostgreSQL by sqlx's own driver.
    /// The reader runs ahead by two pages; an empty page marks the end (the
    /// channel closing without it means the scan died: not the end).
    pub async fn scan_active_index_rows(&self, page: usize) -> Result<IndexRowPages, CatalogError> {
        use std::str::FromStr;

        use sqlx::ConnectOptions;
        const SQL: &str = select_index_rows!("WHERE state = 'active'");
        let page = page.max(1);
        let (send, recv) = tokio::sync::mpsc::channel(2);
        let connect = |source| CatalogError::Connect { backend: self.backend, source };
        match self.backend {
            Backend::Sqlite => {
                let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&self.url).map_err(connect)?;
                let path = opts.get_filename().to_owned();
                let conn = tokio::task::spawn_blocking(move || open_sqlite_reader(&path))
                    .await
                    .map_err(|e| CatalogError::Corrupt(format!("the scan task failed: {e}")))??;
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = scan_sqlite(&conn, SQL, page, &send) {
                        let _ = send.blocking_send(Err(e));
                    }
                });
            }
            Backend::Postgres => {
                let opts = sqlx::postgres::PgConnectOptions::from_str(&self.url)
                    .map_err(connect)?
                    .log_slow_statements(tracing::log::LevelFilter::Off, Duration::ZERO);
                let mut conn = tokio::time::timeout(Duration::from_secs(10), opts.connect())
                    .await
                    .map_err(|_| connect(sqlx::Error::PoolTimedOut))?
                    .map_err(connect)?;
                tokio::spawn(async move {
                    scan_postgres(&mut conn, SQL, page, &send).await;
                    let _ = sqlx::Connection::close(conn).await;
                });
            }
        }
        Ok(recv)
    }

    /// PostgreSQL: a change log restored into another cluster (`pg_dump`,
    /// `pg_restore`) carries the old cluster's transaction ids, which may lie
    /// above any this one hands out for a long time; new rows would then
    /// sort before rows already read, and be skipped. Such a log (a row or
    /// the pruning mark at or above the next transaction id, which cannot
    /// happen in the cluster that wrote it) is renumbered: every row gets
    /// xid 0, before anything new, and the log a new id, so every node's
    /// index rebuilds. Returns whether it was.
    pub(super) async fn renumber_foreign_search_log(&self) -> Result<bool, CatalogError> {
        const OP: &str = "renumber_foreign_search_log";
        let mut tx = self.pool.begin().await.map_err(q(OP))?;
        // Locked first: two nodes starting together renumber once.
        sqlx::query("LOCK TABLE search_log_state IN EXCLUSIVE MODE").execute(&mut *tx).await.map_err(q(OP))?;
        let foreign: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM search_log WHERE xid >= pg_snapshot_xmax(pg_current_snapshot())::text::bigint) \
             OR EXISTS (SELECT 1 FROM search_log_state \
                        WHERE pruned_xid >= pg_snapshot_xmax(pg_current_snapshot())::text::bigint)",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(q(OP))?;
        if !foreign {
            return Ok(false);
        }
        sqlx::query("UPDATE search_log SET xid = 0 WHERE xid <> 0").execute(&mut *tx).await.map_err(q(OP))?;
        sqlx::query(
            "UPDATE search_log_state SET log_id = replace(gen_random_uuid()::text, '-', ''), pruned_xid = 0 WHERE id = 1",
        )
        .execute(&mut *tx)
        .await
        .map_err(q(OP))?;
        tx.commit().await.map_err(q(OP))?;
        tracing::warn!(
            "the search change log came from another database cluster (a restore?): renumbered; \
             every node's search index rebuilds"
        );
        Ok(true)
    }

    /// A waiter for committed changes (see [`ChangeWaiter`]).
    pub fn change_waiter(&self) -> ChangeWaiter {
        ChangeWaiter { local: self.committed.clone(), pg_url: self.pg_url.clone(), listener: None }
    }
}

impl ChangeWaiter {
    /// Return when a change may have committed, or after `max`.
    pub async fn wait(&mut self, max: Duration) {
        if self.listener.is_none()
            && let Some(url) = &self.pg_url
        {
            // A database that does not answer costs one poll interval, then
            // the step polls as usual.
            match tokio::time::timeout(max, connect_listener(url)).await {
                Ok(listener) => self.listener = listener,
                Err(_) => {
                    tracing::warn!("search: listening for changes timed out (polling only until it can)");
                    return;
                }
            }
        }
        let local = self.local.clone();
        let pg = async {
            match self.listener.as_mut() {
                // Cancel-safe: no notification is lost when another branch
                // wins. `try_recv`, not `recv`: it reports a lost connection
                // (None) instead of reconnecting at once by itself.
                Some(l) => matches!(l.try_recv().await, Ok(Some(_))),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = local.notified() => {}
            ok = pg => {
                if !ok {
                    // The connection broke (the database went away?): poll
                    // as usual, and connect again on the next wait, not at
                    // once in a tight loop.
                    self.listener = None;
                    tokio::time::sleep(max).await;
                }
            }
            _ = tokio::time::sleep(max) => {}
        }
        // Notifications queued meanwhile are covered by the step that follows.
        if let Some(l) = self.listener.as_mut() {
            while l.next_buffered().is_some() {}
        }
    }
}

async fn connect_listener(url: &str) -> Option<sqlx::postgres::PgListener> {
    let mut l = match sqlx::postgres::PgListener::connect(url).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "search: cannot listen for changes (polling only until it can)");
            return None;
        }
    };
    match l.listen(CHANNEL).await {
        Ok(()) => Some(l),
        Err(e) => {
            tracing::warn!(error = %e, "search: cannot listen for changes (polling only until it can)");
            None
        }
    }
}
