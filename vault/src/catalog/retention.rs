//! Retention (`migrations/*/0006_retention.sql`, issue 9): the policy per
//! document type and the destruction dates it gives documents.
//!
//! A policy-sourced date is always the same expression of the catalog
//! ([`POLICY_DATE`]): upload time plus the period for `upload` clocks, the
//! end of the client's trajectory plus the period for `trajectory_end`
//! clocks (NULL while the trajectory runs). Every event that can move it
//! (activation, closing or reopening a trajectory, a policy change) applies
//! that one expression to the documents it concerns, in the transaction of
//! the event, so a date can never disagree with its policy. A manual date
//! (`retention_source = 'manual'`) is never recomputed.

use sqlx::Row;
use uuid::Uuid;

use super::{CatalogError, Tx, q};
pub use crate::domain::RetentionTrigger;

/// Microseconds in a day.
pub const DAY_MICROS: i64 = 86_400_000_000;

/// The date the policy gives the document of the row being updated.
const POLICY_DATE: &str = "(SELECT CASE p.clock \
       WHEN 'upload' THEN documents.uploaded_at + p.period_days * 86400000000 \
       ELSE (SELECT c.ended_at FROM clients c WHERE c.id = documents.client_id) + p.period_days * 86400000000 \
     END FROM retention_policies p WHERE p.doc_type = documents.doc_type)";

/// One row of `retention_policies`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRow {
    pub doc_type: String,
    pub trigger: RetentionTrigger,
    pub period_days: i64,
    pub updated_at: i64,
    /// `None`: the default, never changed.
    pub updated_by: Option<Uuid>,
    /// The law (not only the agency) imposes the period: an erasure
    /// request cannot destroy such a document before its date.
    pub statutory: bool,
}

const SELECT_POLICIES: &str = "SELECT doc_type, clock, period_days, updated_at, updated_by, \
     CAST(statutory AS INTEGER) AS statutory FROM retention_policies";

fn policy_from_row(r: &sqlx::any::AnyRow) -> Result<PolicyRow, CatalogError> {
    let clock: String = r.try_get("clock").map_err(q("decode"))?;
    Ok(PolicyRow {
        doc_type: r.try_get("doc_type").map_err(q("decode"))?,
        trigger: clock.parse().map_err(|_| CatalogError::Corrupt(format!("retention clock {clock:?}")))?,
        period_days: r.try_get("period_days").map_err(q("decode"))?,
        updated_at: r.try_get("updated_at").map_err(q("decode"))?,
        updated_by: super::opt_uuid_col(r, "updated_by")?,
        statutory: super::bool_col(r, "statutory")?,
    })
}

/// Which documents get their policy date again.
#[derive(Debug, Clone, Copy)]
pub enum Recompute {
    /// One document (its upload completed).
    Document(Uuid),
    /// Every live document of a client (its trajectory ended or reopened).
    Client(Uuid),
    /// Every active document of a type whose date has not passed yet, or
    /// that has none (its policy changed).
    TypeNotRunOut(&'static str),
}

impl Tx {
    /// Every type's policy, by type.
    pub async fn retention_policies(&mut self) -> Result<Vec<PolicyRow>, CatalogError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_POLICIES} ORDER BY doc_type")))
            .fetch_all(&mut *self.tx)
            .await
            .map_err(q("retention_policies"))?;
        rows.iter().map(policy_from_row).collect()
    }

    /// One type's policy.
    pub async fn retention_policy(&mut self, doc_type: &str) -> Result<PolicyRow, CatalogError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_POLICIES} WHERE doc_type = $1")))
            .bind(doc_type)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("retention_policy"))?;
        row.as_ref().map(policy_from_row).transpose()?.ok_or(CatalogError::NotFound("retention policy"))
    }

    /// Change a type's policy (the caller recomputes the dates).
    pub async fn set_retention_policy(
        &mut self,
        doc_type: &str,
        trigger: RetentionTrigger,
        period_days: i64,
        statutory: bool,
        by: Uuid,
    ) -> Result<(), CatalogError> {
        let r = sqlx::query(
            "UPDATE retention_policies SET clock = $1, period_days = $2, statutory = $6, updated_at = $3, \
             updated_by = $4 WHERE doc_type = $5",
        )
        .bind(trigger.as_str())
        .bind(period_days)
        .bind(self.now)
        .bind(by.to_string())
        .bind(doc_type)
        .bind(statutory)
        .execute(&mut *self.tx)
        .await
        .map_err(q("set_retention_policy"))?;
        if r.rows_affected() != 1 {
            return Err(CatalogError::NotFound("retention policy"));
        }
        Ok(())
    }

    /// Give the documents `which` names their policy date (manual dates and
    /// destroyed documents are left alone). Returns how many dates changed.
    pub async fn recompute_retention(&mut self, which: Recompute) -> Result<u64, CatalogError> {
        let (filter, arg) = match which {
            Recompute::Document(id) => ("id = $1", id.to_string()),
            Recompute::Client(id) => ("client_id = $1 AND state <> 'destroyed'", id.to_string()),
            Recompute::TypeNotRunOut(t) => {
                ("doc_type = $1 AND state = 'active' AND (retention_until IS NULL OR retention_until > $2)", t.into())
            }
        };
        let sql = format!(
            "UPDATE documents SET retention_until = {POLICY_DATE} \
             WHERE {filter} AND retention_source = 'policy' AND retention_until IS DISTINCT FROM {POLICY_DATE}"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(arg);
        if matches!(which, Recompute::TypeNotRunOut(_)) {
            query = query.bind(self.now);
        }
        let r = query.execute(&mut *self.tx).await.map_err(q("recompute_retention"))?;
        Ok(r.rows_affected())
    }

    /// Set a person's date (with its reason) on a live document; `None`:
    /// back to the policy's date. False if the document is not live.
    pub async fn set_document_retention(
        &mut self,
        id: Uuid,
        manual: Option<(i64, &str)>,
    ) -> Result<bool, CatalogError> {
        let r = match manual {
            Some((until, reason)) => sqlx::query(
                "UPDATE documents SET retention_until = $1, retention_source = 'manual', retention_reason = $2 \
                 WHERE id = $3 AND state = 'active'",
            )
            .bind(until)
            .bind(reason)
            .bind(id.to_string()),
            None => sqlx::query(
                "UPDATE documents SET retention_source = 'policy', retention_reason = NULL \
                 WHERE id = $1 AND state = 'active'",
            )
            .bind(id.to_string()),
        }
        .execute(&mut *self.tx)
        .await
        .map_err(q("set_document_retention"))?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        if manual.is_none() {
            self.recompute_retention(Recompute::Document(id)).await?;
        }
        Ok(true)
    }

    /// Set or lift a legal hold on a live document (the reason and who set
    /// it are kept while it holds). False if the document is not live.
    pub async fn set_legal_hold(&mut self, id: Uuid, hold: Option<(&str, Uuid)>) -> Result<bool, CatalogError> {
        let (reason, by) = hold.map_or((None, None), |(r, b)| (Some(r.to_string()), Some(b.to_string())));
        let r = sqlx::query(
            "UPDATE documents SET legal_hold = $1, hold_reason = $2, held_by = $3, held_at = $4 \
             WHERE id = $5 AND state = 'active'",
        )
        .bind(hold.is_some())
        .bind(reason)
        .bind(by)
        .bind(hold.map(|_| self.now))
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("set_legal_hold"))?;
        Ok(r.rows_affected() == 1)
    }
}
