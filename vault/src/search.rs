//! How this node's search index follows the catalog (issue 8).
//!
//! The catalog's triggers log every change that search shows
//! (`catalog::search`). [`Vault::search_step`] is one step of the follower:
//! it reads the next batch of log rows that no running transaction can
//! still precede, re-reads the current rows of the documents and clients
//! they name (so applying a row twice, or late, is harmless), and applies
//! them to the index in one commit whose payload is the cursor: index and
//! cursor move together. A missing, foreign or too old cursor (the index was
//! lost, the log was pruned past it, the database is another one) makes the
//! step rebuild instead ([`Vault::rebuild_index`]): one snapshot, every active
//! document, and the log head of that snapshot as the new cursor.
//!
//! The follower loop (in the gateway) runs a step whenever
//! [`ChangeWaiter::wait`] returns: a notification, or the poll interval.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use indexer::{Change, Record};
pub use indexer::{Index, IndexError, Opened};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::catalog::{ChangeWaiter, ClientName, ClientStatus, DocumentState, IndexRow, LogAnchor, LogPosition, Tx};
use crate::rekey::{Progress, Silent};
use crate::{Vault, VaultError};

/// Log rows applied per step (and per index commit).
pub const STEP_BATCH: usize = 1000;

/// Records handed to the index writer at a time while rebuilding.
const REBUILD_PAGE: usize = 5000;

/// The cursor kept in the index's commit payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    /// The log it belongs to (`search_log_state.log_id`).
    log: String,
    xid: i64,
    seq: i64,
    /// The last log row applied (at or before the position), to find again:
    /// a log that lost it without pruning it is another database (a backup
    /// restored), whose rows after it would otherwise be taken as new.
    #[serde(default)]
    anchor: Option<LogAnchor>,
}

impl Cursor {
    fn position(&self) -> LogPosition {
        LogPosition { xid: self.xid, seq: self.seq }
    }
}

fn cursor_json(log: &str, p: LogPosition, anchor: Option<LogAnchor>) -> String {
    serde_json::to_string(&Cursor { log: log.into(), xid: p.xid, seq: p.seq, anchor }).unwrap_or_default()
}

/// What one follower step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing new in the log.
    Idle,
    /// Nothing this step may read, but committed rows wait behind a
    /// transaction still running (PostgreSQL: the horizon of the cluster).
    /// They become readable when it ends, which nothing announces: look
    /// again soon.
    HeldBack,
    /// This many log rows applied; a full batch means more may be waiting.
    Applied(usize),
    /// The index was rebuilt from the catalog, with this many documents.
    Rebuilt(u64),
}

/// Change-log rows this node's index has not applied yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// How many, including rows still held back by a running transaction.
    pub rows: u64,
    /// How long ago the oldest of them was written.
    pub oldest: Option<std::time::Duration>,
}

impl Vault {
    /// Search documents through this index (a node has one; without it the
    /// search operation answers 503).
    pub fn with_index(mut self, index: Arc<Index>) -> Self {
        self.index = Some(index);
        self
    }

    pub(crate) fn index(&self) -> Option<&Arc<Index>> {
        self.index.as_ref()
    }

    /// A waiter that returns when a change may have been committed.
    pub fn change_waiter(&self) -> ChangeWaiter {
        self.catalog.change_waiter()
    }

    /// One step of the follower: apply the next batch of the change log, or
    /// rebuild when the index cannot follow the log from where it is.
    pub async fn search_step(&self) -> Result<Step, VaultError> {
        let Some(index) = self.index.clone() else { return Ok(Step::Idle) };
        let mut tx = self.snapshot().await?;
        let state = tx.search_log_state().await?;
        let stored = index.cursor()?;
        let cursor = stored.as_deref().and_then(|c| serde_json::from_str::<Cursor>(c).ok());
        let from = match &cursor {
            None => None,
            Some(c) if c.log != state.log_id => {
                tracing::warn!("search index belongs to another database; rebuilding");
                None
            }
            Some(c) if c.position() < state.pruned => {
                tracing::warn!("search index is older than the change log; rebuilding");
                None
            }
            Some(c) => match c.anchor {
                // An anchor the pruning may have taken proves nothing.
                Some(a) if a.position() > state.pruned && tx.search_log_row(a.seq).await? != Some(a) => {
                    tracing::warn!(
                        "the change log lacks the last row the search index applied (restored database?); rebuilding"
                    );
                    None
                }
                _ => Some(c.position()),
            },
        };
        let Some(from) = from else {
            drop(tx);
            // Searches answer 503 until the rebuild commits (or, should it
            // fail, until a later one does).
            index.forget_cursor();
            return Ok(Step::Rebuilt(self.rebuild_index(&Silent).await?));
        };
        let log = tx.search_log_after(from, STEP_BATCH).await?;
        let Some(last) = log.last().map(|c| LogAnchor { xid: c.position.xid, seq: c.position.seq, at: c.at }) else {
            if tx.search_log_head().await? < from {
                tracing::warn!("search index is ahead of the change log (restored database?); rebuilding");
                drop(tx);
                index.forget_cursor();
                return Ok(Step::Rebuilt(self.rebuild_index(&Silent).await?));
            }
            if self.catalog.backend() == crate::catalog::Backend::Postgres && tx.search_log_pending(from).await?.0 > 0 {
                return Ok(Step::HeldBack);
            }
            return Ok(Step::Idle);
        };
        let documents: Vec<Uuid> =
            log.iter().filter_map(|c| c.document_id).collect::<HashSet<_>>().into_iter().collect();
        let clients: Vec<Uuid> = log.iter().filter_map(|c| c.client_id).collect::<HashSet<_>>().into_iter().collect();
        let changes = current_changes(&mut tx, &documents, &clients).await?;
        drop(tx);
        let payload = cursor_json(&state.log_id, last.position(), Some(last));
        tokio::task::spawn_blocking(move || index.apply(&changes, &payload)).await.map_err(task_failed)??;
        Ok(Step::Applied(log.len()))
    }

    /// What the index has not applied yet, whatever the horizon (`None`
    /// without an index or before its first build). Rows that stay here
    /// while steps are idle are held back by a long-running transaction: on
    /// PostgreSQL, in this database or in any other of the same cluster
    /// (transaction ids, and so the horizon, are the cluster's).
    pub async fn search_backlog(&self) -> Result<Option<Backlog>, VaultError> {
        let Some(index) = self.index.as_ref() else { return Ok(None) };
        let Some(cursor) = index.cursor()?.and_then(|c| serde_json::from_str::<Cursor>(&c).ok()) else {
            return Ok(None);
        };
        let mut tx = self.snapshot().await?;
        let (rows, oldest) = tx.search_log_pending(cursor.position()).await?;
        let now = tx.now();
        let oldest = oldest.map(|at| std::time::Duration::from_micros(u64::try_from(now - at).unwrap_or(0)));
        Ok(Some(Backlog { rows, oldest }))
    }

    /// Rebuild the index from the catalog: one snapshot, every active
    /// document, in one index commit whose cursor is that snapshot's log
    /// head (later changes are applied on top; applying one the snapshot
    /// already saw is harmless). The catalog is read in one sequential scan;
    /// progress is shown in documents read.
    pub async fn rebuild_index(&self, progress: &dyn Progress) -> Result<u64, VaultError> {
        let Some(index) = self.index.clone() else { return Ok(0) };
        let mut tx = self.snapshot().await?;
        let state = tx.search_log_state().await?;
        let head = tx.search_log_head().await?;
        let anchor = tx.search_log_last(head).await?;
        let total = tx.count_active_documents().await?;
        let names = tx.client_names(None).await?;
        let payload = cursor_json(&state.log_id, head, anchor);
        drop(tx);
        // The rows come in a snapshot taken after this one's head (changes
        // after the head are applied again by the follower: harmless).
        let mut pages = self.catalog.scan_active_index_rows(REBUILD_PAGE).await?;
        // The catalog is read on a task of its own while a blocking thread
        // turns rows into records and fills the index: the two overlap.
        let (send, mut recv) = tokio::sync::mpsc::channel::<Result<Vec<IndexRow>, IndexError>>(2);
        let writer = tokio::task::spawn_blocking(move || {
            let pages = std::iter::from_fn(move || recv.blocking_recv());
            let records = pages.flat_map(|page| match page {
                Ok(rows) => rows.into_iter().filter_map(|r| record(r, &names)).map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            });
            index.rebuild(records, &payload)
        });
        progress.start("documents indexed", total);
        let read = async {
            loop {
                let Some(page) = pages.recv().await else {
                    return Err(VaultError::Index(IndexError::Source("the catalog scan ended early".into())));
                };
                let page = page?;
                if page.is_empty() {
                    break; // the end
                }
                let n = page.len() as u64;
                if send.send(Ok(page)).await.is_err() {
                    break; // the writer failed; its error is the answer
                }
                progress.inc(n);
            }
            Ok::<(), VaultError>(())
        }
        .await;
        if let Err(e) = &read {
            let _ = send.send(Err(IndexError::Source(e.to_string()))).await;
        }
        drop(send);
        let indexed = writer.await.map_err(task_failed)??;
        read?;
        progress.finish();
        tracing::info!(documents = indexed, "search index rebuilt from the catalog");
        Ok(indexed)
    }

    /// Drop change-log rows older than `age` that every node has had the
    /// time to apply; a node further behind rebuilds. Returns how many went.
    pub async fn prune_search_log(&self, age: std::time::Duration) -> Result<u64, VaultError> {
        let mut tx = self.tx().await?;
        let before = tx.now() - i64::try_from(age.as_micros()).unwrap_or(i64::MAX);
        let n = tx.prune_search_log(before).await?;
        tx.commit().await?;
        Ok(n)
    }
}

fn task_failed(e: tokio::task::JoinError) -> VaultError {
    VaultError::Index(IndexError::Source(format!("the index task failed: {e}")))
}

/// The index changes that bring these documents, and every document of
/// these clients, to their current state.
async fn current_changes(tx: &mut Tx, documents: &[Uuid], clients: &[Uuid]) -> Result<Vec<Change>, VaultError> {
    let mut rows: HashMap<Uuid, IndexRow> = HashMap::new();
    for r in tx.index_rows(documents).await? {
        rows.insert(r.id, r);
    }
    for r in tx.index_rows_of_clients(clients).await? {
        rows.insert(r.id, r);
    }
    let owners: Vec<Uuid> = rows.values().map(|r| r.client_id).collect::<HashSet<_>>().into_iter().collect();
    let names = tx.client_names(Some(&owners)).await?;
    // Documents the log names that no longer exist are removed too.
    let mut changes: Vec<Change> =
        documents.iter().filter(|id| !rows.contains_key(id)).map(|id| Change::Remove(*id)).collect();
    for r in rows.into_values() {
        let id = r.id;
        changes.push(match record(r, &names) {
            Some(rec) => Change::Upsert(rec),
            None => Change::Remove(id),
        });
    }
    Ok(changes)
}

/// A document's search record, if search shows it (active, client known).
fn record(r: IndexRow, names: &HashMap<Uuid, ClientName>) -> Option<Record> {
    if r.state != DocumentState::Active {
        return None;
    }
    let client = names.get(&r.client_id)?;
    Some(Record {
        id: r.id,
        client_id: r.client_id,
        client_name: client.name.clone(),
        coach_id: client.coach_id,
        doc_type: r.doc_type,
        title: r.title.unwrap_or_default(),
        filename: r.filename,
        uploaded_by: r.uploaded_by,
        uploaded_at: r.uploaded_at,
        retention_until: r.retention_until,
        status: match client.status {
            ClientStatus::Active => indexer::Status::Active,
            ClientStatus::Closed => indexer::Status::Closed,
        },
    })
}
