//! Documents: pending, active, destroyed (tombstones).

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{CatalogError, Tx, opt_uuid_col, q, sealed_cols, uuid_col};
use crate::keyring::WrappedKey;

pub use crate::domain::DocumentState;

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
    /// Where the date came from: the policy, or a person (with a reason).
    pub retention_manual: bool,
    pub retention_reason: Option<String>,
    pub legal_hold: bool,
    /// Why it is held (while it is).
    pub hold_reason: Option<String>,
    pub destroyed_at: Option<i64>,
    /// `retention` (the purge), or the id of the user who destroyed it at once.
    pub destroyed_by: Option<String>,
    /// Why: the retention date passed, or the person's reason.
    pub destroy_reason: Option<String>,
    /// When the purge deleted the destroyed document's object.
    pub object_deleted_at: Option<i64>,
    /// Raw test material: listed in an export, never copied into it.
    pub view_only: bool,
    /// The document this one corrects.
    pub supersedes: Option<Uuid>,
    /// The newest active document that corrects this one.
    pub superseded_by: Option<Uuid>,
}

/// `SELECT <every document column> FROM documents ` followed by the rest.
macro_rules! select_documents {
    ($rest:literal) => {
        concat!(
            "SELECT id, client_id, doc_type, title, filename, content_type, size, sha256, object_name, \
             wrapped_key, key_version, state, uploaded_by, uploaded_at, retention_until, retention_source, \
             retention_reason, CAST(legal_hold AS INTEGER) AS legal_hold, hold_reason, destroyed_at, destroyed_by, \
             destroy_reason, object_deleted_at, CAST(view_only AS INTEGER) AS view_only, supersedes, \
             (SELECT s.id FROM documents s WHERE s.supersedes = documents.id AND s.state = 'active' \
              ORDER BY s.uploaded_at DESC LIMIT 1) AS superseded_by FROM documents ",
            $rest
        )
    };
}

pub(super) const SELECT_DOCUMENTS: &str = select_documents!("");

pub(super) fn document_from_row(row: &AnyRow) -> Result<DocumentRow, CatalogError> {
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
        state: state.parse().map_err(|_| CatalogError::Corrupt(format!("unknown document state {state:?}")))?,
        uploaded_by: opt_uuid_col(row, "uploaded_by")?,
        uploaded_at: row.try_get("uploaded_at").map_err(q("decode"))?,
        retention_until: row.try_get("retention_until").map_err(q("decode"))?,
        retention_manual: row.try_get::<String, _>("retention_source").map_err(q("decode"))? == "manual",
        retention_reason: row.try_get("retention_reason").map_err(q("decode"))?,
        legal_hold: row.try_get::<i64, _>("legal_hold").map_err(q("decode"))? != 0,
        hold_reason: row.try_get("hold_reason").map_err(q("decode"))?,
        destroyed_at: row.try_get("destroyed_at").map_err(q("decode"))?,
        destroyed_by: row.try_get("destroyed_by").map_err(q("decode"))?,
        destroy_reason: row.try_get("destroy_reason").map_err(q("decode"))?,
        object_deleted_at: row.try_get("object_deleted_at").map_err(q("decode"))?,
        view_only: super::bool_col(row, "view_only")?,
        supersedes: opt_uuid_col(row, "supersedes")?,
        superseded_by: opt_uuid_col(row, "superseded_by")?,
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
    /// A manual date (with its reason); `None`: the policy's.
    pub retention_until: Option<i64>,
    pub retention_reason: Option<String>,
    pub view_only: bool,
    pub supersedes: Option<Uuid>,
}

impl Tx {
    /// Record a document whose upload is starting. The row is `pending` until
    /// [`Tx::activate_document`]; pending rows older than an upload can
    /// take are orphans to sweep.
    pub async fn insert_pending_document(&mut self, d: &NewDocumentRow) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO documents (id, client_id, doc_type, title, filename, content_type, object_name, \
             wrapped_key, key_version, state, uploaded_by, uploaded_at, retention_until, legal_hold, \
             retention_source, retention_reason, view_only, supersedes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11, $12, $13, $14, $15, $16, $17)",
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
        .bind(self.now)
        .bind(d.retention_until)
        .bind(false)
        .bind(if d.retention_until.is_some() { "manual" } else { "policy" })
        .bind(d.retention_reason.clone())
        .bind(d.view_only)
        .bind(d.supersedes.map(|u| u.to_string()))
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_pending_document"))?;
        Ok(())
    }

    /// Mark a pending document complete with its plaintext size and hash;
    /// its retention clock starts (a policy date, if its type counts from
    /// the upload or its trajectory has already ended).
    pub async fn activate_document(&mut self, id: Uuid, size: i64, sha256: &str) -> Result<(), CatalogError> {
        let r = sqlx::query(
            "UPDATE documents SET state = 'active', size = $1, sha256 = $2 \
             WHERE id = $3 AND state = 'pending' AND claimed_at IS NULL",
        )
        .bind(size)
        .bind(sha256)
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("activate_document"))?;
        if r.rows_affected() != 1 {
            return Err(CatalogError::NotFound("pending document"));
        }
        self.recompute_retention(super::Recompute::Document(id)).await?;
        Ok(())
    }

    /// Claim an interrupted upload for removal: from now on it can no longer
    /// be activated. False if it is not (or no longer) pending.
    pub async fn claim_pending_document(&mut self, id: Uuid) -> Result<bool, CatalogError> {
        let r = sqlx::query("UPDATE documents SET claimed_at = $1 WHERE id = $2 AND state = 'pending'")
            .bind(self.now)
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(q("claim_pending_document"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Remove the row of an upload that failed (only while pending).
    pub async fn delete_pending_document(&mut self, id: Uuid) -> Result<bool, CatalogError> {
        let r = sqlx::query("DELETE FROM documents WHERE id = $1 AND state = 'pending'")
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(q("delete_pending_document"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Pending rows started before `before` (micros): interrupted uploads.
    pub async fn pending_documents_before(&mut self, before: i64) -> Result<Vec<DocumentRow>, CatalogError> {
        let sql = select_documents!("WHERE state = 'pending' AND uploaded_at < $1");
        let rows =
            sqlx::query(sql).bind(before).fetch_all(&mut *self.tx).await.map_err(q("pending_documents_before"))?;
        rows.iter().map(document_from_row).collect()
    }

    pub async fn get_document(&mut self, id: Uuid) -> Result<DocumentRow, CatalogError> {
        self.document(id).await?.ok_or(CatalogError::NotFound("document"))
    }

    /// A document row, kept from changing until this transaction ends: on
    /// PostgreSQL `FOR SHARE` (the purge's claim skips it; a hold or a new
    /// date waits), on SQLite the writer's transaction already excludes
    /// every other writer. For a decision that must still hold at commit (a
    /// download's redemption).
    pub async fn get_document_locked(&mut self, id: Uuid) -> Result<DocumentRow, CatalogError> {
        let lock = if self.backend == super::Backend::Postgres { " FOR SHARE" } else { "" };
        let sql = format!("{SELECT_DOCUMENTS}WHERE id = $1{lock}");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("get_document_locked"))?;
        row.as_ref().map(document_from_row).transpose()?.ok_or(CatalogError::NotFound("document"))
    }

    pub async fn document(&mut self, id: Uuid) -> Result<Option<DocumentRow>, CatalogError> {
        let sql = select_documents!("WHERE id = $1");
        let row =
            sqlx::query(sql).bind(id.to_string()).fetch_optional(&mut *self.tx).await.map_err(q("get_document"))?;
        row.as_ref().map(document_from_row).transpose()
    }

    /// The active documents of a client, newest first (pending uploads and
    /// destroyed tombstones are not listed).
    pub async fn list_documents(&mut self, client_id: Uuid) -> Result<Vec<DocumentRow>, CatalogError> {
        let sql = select_documents!("WHERE client_id = $1 AND state = 'active' ORDER BY uploaded_at DESC, id");
        // Without statistics (nothing runs ANALYZE) SQLite chose the index
        // on `state` and visited every active document of the catalog to
        // find one client's (170 ms at 1M documents, bench/ui): the
        // client's index, named outright, finds them in about 1 ms.
        let sql = match self.backend {
            super::Backend::Sqlite => std::borrow::Cow::Owned(sql.replace(
                " AS superseded_by FROM documents WHERE",
                " AS superseded_by FROM documents INDEXED BY documents_client WHERE",
            )),
            super::Backend::Postgres => std::borrow::Cow::Borrowed(sql),
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql.into_owned()))
            .bind(client_id.to_string())
            .fetch_all(&mut *self.tx)
            .await
            .map_err(q("list_documents"))?;
        rows.iter().map(document_from_row).collect()
    }

    /// How many of a client's documents are tombstones.
    pub async fn count_destroyed_documents(&mut self, client_id: Uuid) -> Result<i64, CatalogError> {
        sqlx::query_scalar("SELECT COUNT(*) FROM documents WHERE client_id = $1 AND state = 'destroyed'")
            .bind(client_id.to_string())
            .fetch_one(&mut *self.tx)
            .await
            .map_err(q("count_destroyed_documents"))
    }

    /// Every document of a client, tombstones too, oldest first (an export).
    pub async fn all_documents_of(&mut self, client_id: Uuid) -> Result<Vec<DocumentRow>, CatalogError> {
        let rows =
            sqlx::query(select_documents!("WHERE client_id = $1 AND state <> 'pending' ORDER BY uploaded_at, id"))
                .bind(client_id.to_string())
                .fetch_all(&mut *self.tx)
                .await
                .map_err(q("all_documents_of"))?;
        rows.iter().map(document_from_row).collect()
    }
}
