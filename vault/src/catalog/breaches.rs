//! The breach register (`migrations/*/0009_accountability.sql`, issue 11)
//! and the audit log read by incident: which clients and documents a set of
//! events touched.

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{CatalogError, Tx, bool_col, opt_uuid_col, placeholders, q, uuid_col};
use crate::domain::DataCategory;

/// One breach as registered, with its latest facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreachRow {
    pub id: Uuid,
    pub detected_at: i64,
    pub nature: String,
    pub categories: Vec<DataCategory>,
    pub data_subjects_estimate: i64,
    pub records_estimate: i64,
    pub consequences: String,
    pub measures: String,
    pub authority_notified_at: Option<i64>,
    pub authority_not_notified_reason: Option<String>,
    pub data_subjects_informed: bool,
    pub data_subjects_informed_at: Option<i64>,
    pub registered_by: Uuid,
    pub registered_at: i64,
    pub updated_at: i64,
}

const SELECT_BREACHES: &str = "SELECT id, detected_at, nature, categories, data_subjects_estimate, records_estimate, \
     consequences, measures, authority_notified_at, authority_not_notified_reason, \
     CAST(data_subjects_informed AS INTEGER) AS data_subjects_informed, data_subjects_informed_at, registered_by, \
     registered_at, updated_at FROM breaches";

fn breach_from_row(r: &AnyRow) -> Result<BreachRow, CatalogError> {
    let cats: String = r.try_get("categories").map_err(q("decode"))?;
    let cats: Vec<String> =
        serde_json::from_str(&cats).map_err(|_| CatalogError::Corrupt("breach categories".into()))?;
    Ok(BreachRow {
        id: uuid_col(r, "id")?,
        detected_at: r.try_get("detected_at").map_err(q("decode"))?,
        nature: r.try_get("nature").map_err(q("decode"))?,
        categories: cats
            .iter()
            .map(|c| c.parse().map_err(|_| CatalogError::Corrupt(format!("breach category {c:?}"))))
            .collect::<Result<_, _>>()?,
        data_subjects_estimate: r.try_get("data_subjects_estimate").map_err(q("decode"))?,
        records_estimate: r.try_get("records_estimate").map_err(q("decode"))?,
        consequences: r.try_get("consequences").map_err(q("decode"))?,
        measures: r.try_get("measures").map_err(q("decode"))?,
        authority_notified_at: r.try_get("authority_notified_at").map_err(q("decode"))?,
        authority_not_notified_reason: r.try_get("authority_not_notified_reason").map_err(q("decode"))?,
        data_subjects_informed: bool_col(r, "data_subjects_informed")?,
        data_subjects_informed_at: r.try_get("data_subjects_informed_at").map_err(q("decode"))?,
        registered_by: uuid_col(r, "registered_by")?,
        registered_at: r.try_get("registered_at").map_err(q("decode"))?,
        updated_at: r.try_get("updated_at").map_err(q("decode"))?,
    })
}

/// One update of a breach entry.
#[derive(Debug, Clone, PartialEq)]
pub struct BreachUpdateRow {
    pub id: Uuid,
    pub breach_id: Uuid,
    pub at: i64,
    pub by_user: Uuid,
    pub changes: serde_json::Value,
    pub note: Option<String>,
}

/// A recorded review of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRow {
    pub id: Uuid,
    pub reviewer: Uuid,
    pub reviewed_at: i64,
    pub period_from: i64,
    pub period_until: i64,
    /// `{kind: count}`.
    pub findings: serde_json::Value,
    pub remarks: Option<String>,
}

/// Which audit events an incident concerns: every given filter must match.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub actor_id: Option<Uuid>,
    /// Inclusive, microseconds.
    pub from: Option<i64>,
    /// Exclusive, microseconds.
    pub until: Option<i64>,
    pub document_ids: Vec<Uuid>,
}

/// What the matching events touched.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentReach {
    pub events: i64,
    pub clients: Vec<Uuid>,
    pub documents: Vec<Uuid>,
}

fn categories_json(c: &[DataCategory]) -> String {
    serde_json::Value::from(c.iter().map(|c| c.as_str()).collect::<Vec<_>>()).to_string()
}

impl Tx {
    pub async fn insert_breach(&mut self, b: &BreachRow) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO breaches (id, detected_at, nature, categories, data_subjects_estimate, records_estimate, \
             consequences, measures, authority_notified_at, authority_not_notified_reason, data_subjects_informed, \
             data_subjects_informed_at, registered_by, registered_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
        )
        .bind(b.id.to_string())
        .bind(b.detected_at)
        .bind(&b.nature)
        .bind(categories_json(&b.categories))
        .bind(b.data_subjects_estimate)
        .bind(b.records_estimate)
        .bind(&b.consequences)
        .bind(&b.measures)
        .bind(b.authority_notified_at)
        .bind(b.authority_not_notified_reason.clone())
        .bind(b.data_subjects_informed)
        .bind(b.data_subjects_informed_at)
        .bind(b.registered_by.to_string())
        .bind(b.registered_at)
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_breach"))?;
        Ok(())
    }

    /// Write a breach's facts as they are now (the caller records the update).
    pub async fn update_breach(&mut self, b: &BreachRow) -> Result<(), CatalogError> {
        let r = sqlx::query(
            "UPDATE breaches SET detected_at = $1, nature = $2, categories = $3, data_subjects_estimate = $4, \
             records_estimate = $5, consequences = $6, measures = $7, authority_notified_at = $8, \
             authority_not_notified_reason = $9, data_subjects_informed = $10, data_subjects_informed_at = $11, \
             updated_at = $12 WHERE id = $13",
        )
        .bind(b.detected_at)
        .bind(&b.nature)
        .bind(categories_json(&b.categories))
        .bind(b.data_subjects_estimate)
        .bind(b.records_estimate)
        .bind(&b.consequences)
        .bind(&b.measures)
        .bind(b.authority_notified_at)
        .bind(b.authority_not_notified_reason.clone())
        .bind(b.data_subjects_informed)
        .bind(b.data_subjects_informed_at)
        .bind(self.now)
        .bind(b.id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("update_breach"))?;
        if r.rows_affected() != 1 {
            return Err(CatalogError::NotFound("breach"));
        }
        Ok(())
    }

    pub async fn breach_opt(&mut self, id: Uuid) -> Result<Option<BreachRow>, CatalogError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_BREACHES} WHERE id = $1")))
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("breach"))?;
        row.as_ref().map(breach_from_row).transpose()
    }

    /// Like [`Tx::breach_opt`], the row locked until the commit (on
    /// PostgreSQL; SQLite's write transaction already excludes others), so
    /// two updates of one breach do not overwrite each other.
    pub async fn breach_for_update(&mut self, id: Uuid) -> Result<Option<BreachRow>, CatalogError> {
        let lock = if self.backend == super::Backend::Postgres { " FOR UPDATE" } else { "" };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_BREACHES} WHERE id = $1{lock}")))
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("breach for update"))?;
        row.as_ref().map(breach_from_row).transpose()
    }

    /// Every breach, newest detection first.
    pub async fn list_breaches(&mut self) -> Result<Vec<BreachRow>, CatalogError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_BREACHES} ORDER BY detected_at DESC, id")))
            .fetch_all(&mut *self.tx)
            .await
            .map_err(q("list_breaches"))?;
        rows.iter().map(breach_from_row).collect()
    }

    pub async fn insert_breach_update(&mut self, u: &BreachUpdateRow) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO breach_updates (id, breach_id, at, by_user, changes, note) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(u.id.to_string())
        .bind(u.breach_id.to_string())
        .bind(u.at)
        .bind(u.by_user.to_string())
        .bind(u.changes.to_string())
        .bind(u.note.clone())
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_breach_update"))?;
        Ok(())
    }

    /// A breach's updates, oldest first.
    pub async fn breach_updates(&mut self, breach: Uuid) -> Result<Vec<BreachUpdateRow>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, breach_id, at, by_user, changes, note FROM breach_updates WHERE breach_id = $1 ORDER BY at, id",
        )
        .bind(breach.to_string())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(q("breach_updates"))?;
        rows.iter()
            .map(|r| {
                let changes: String = r.try_get("changes").map_err(q("decode"))?;
                Ok(BreachUpdateRow {
                    id: uuid_col(r, "id")?,
                    breach_id: uuid_col(r, "breach_id")?,
                    at: r.try_get("at").map_err(q("decode"))?,
                    by_user: uuid_col(r, "by_user")?,
                    changes: serde_json::from_str(&changes)
                        .map_err(|_| CatalogError::Corrupt("breach update changes".into()))?,
                    note: r.try_get("note").map_err(q("decode"))?,
                })
            })
            .collect()
    }

    /// The clients and documents that the audit events of an incident
    /// touched: events that succeeded (`allowed`, `ok`) and name a client or
    /// a document, by the actor, within the window, about the documents.
    pub async fn incident_reach(&mut self, f: &IncidentFilter) -> Result<IncidentReach, CatalogError> {
        let docs = if f.document_ids.is_empty() {
            "TRUE".to_string()
        } else {
            format!("document_id IN ({})", placeholders(4, f.document_ids.len()))
        };
        let sql = format!(
            "SELECT client_id, document_id FROM audit_events \
             WHERE outcome IN ('allowed', 'ok') AND (client_id IS NOT NULL OR document_id IS NOT NULL) \
             AND ($1 IS NULL OR actor_id = $1) AND ($2 IS NULL OR at >= $2) AND ($3 IS NULL OR at < $3) AND {docs}"
        );
        let mut query =
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(f.actor_id.map(|u| u.to_string())).bind(f.from).bind(f.until);
        for d in &f.document_ids {
            query = query.bind(d.to_string());
        }
        let rows = query.fetch_all(&mut *self.tx).await.map_err(q("incident_reach"))?;
        let mut reach = IncidentReach { events: rows.len() as i64, ..Default::default() };
        let (mut clients, mut documents) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
        for r in &rows {
            if let Some(c) = opt_uuid_col(r, "client_id")? {
                clients.insert(c);
            }
            if let Some(d) = opt_uuid_col(r, "document_id")? {
                documents.insert(d);
            }
        }
        reach.clients = clients.into_iter().collect();
        reach.documents = documents.into_iter().collect();
        Ok(reach)
    }

    /// Events with `from <= at < until` and `after < seq <= last`, by
    /// `seq`, at most `limit` (a review reads its period page by page).
    pub async fn audit_events_in_window(
        &mut self,
        from: i64,
        until: i64,
        after: i64,
        last: i64,
        limit: i64,
    ) -> Result<Vec<crate::audit::Event>, CatalogError> {
        super::audit_log::events_in_window(self, from, until, after, last, limit).await
    }

    /// The first and last `seq` of the events with `from <= at < until`.
    pub async fn audit_seq_range(&mut self, from: i64, until: i64) -> Result<Option<(i64, i64)>, CatalogError> {
        super::audit_log::seq_range(self, from, until).await
    }

    pub async fn insert_review(&mut self, r: &ReviewRow) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO audit_reviews (id, reviewer, reviewed_at, period_from, period_until, findings, remarks) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(r.id.to_string())
        .bind(r.reviewer.to_string())
        .bind(r.reviewed_at)
        .bind(r.period_from)
        .bind(r.period_until)
        .bind(r.findings.to_string())
        .bind(r.remarks.clone())
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_review"))?;
        Ok(())
    }

    /// Every review, newest period first.
    pub async fn list_reviews(&mut self) -> Result<Vec<ReviewRow>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, reviewer, reviewed_at, period_from, period_until, findings, remarks FROM audit_reviews \
             ORDER BY period_until DESC, id",
        )
        .fetch_all(&mut *self.tx)
        .await
        .map_err(q("list_reviews"))?;
        rows.iter()
            .map(|r| {
                let findings: String = r.try_get("findings").map_err(q("decode"))?;
                Ok(ReviewRow {
                    id: uuid_col(r, "id")?,
                    reviewer: uuid_col(r, "reviewer")?,
                    reviewed_at: r.try_get("reviewed_at").map_err(q("decode"))?,
                    period_from: r.try_get("period_from").map_err(q("decode"))?,
                    period_until: r.try_get("period_until").map_err(q("decode"))?,
                    findings: serde_json::from_str(&findings)
                        .map_err(|_| CatalogError::Corrupt("review findings".into()))?,
                    remarks: r.try_get("remarks").map_err(q("decode"))?,
                })
            })
            .collect()
    }

    /// How far the reviews cover the log without a gap: starting at
    /// `start` (the first event), the end of the run of reviewed periods
    /// that each begin at or before the end of the previous one. `None`
    /// when no review covers `start`.
    pub async fn reviewed_through(&mut self, start: i64) -> Result<Option<i64>, CatalogError> {
        let rows =
            sqlx::query("SELECT period_from, period_until FROM audit_reviews ORDER BY period_from, period_until")
                .fetch_all(&mut *self.tx)
                .await
                .map_err(q("reviewed_through"))?;
        let mut periods = Vec::with_capacity(rows.len());
        for r in &rows {
            let from: i64 = r.try_get("period_from").map_err(q("decode"))?;
            let until: i64 = r.try_get("period_until").map_err(q("decode"))?;
            periods.push((from, until));
        }
        Ok(covered_through(start, &periods))
    }

    /// When the first audit event happened.
    pub async fn first_audit_at(&mut self) -> Result<Option<i64>, CatalogError> {
        sqlx::query_scalar("SELECT at FROM audit_events WHERE seq = 1")
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("first_audit_at"))
    }
}

/// The end of the gap-free run of `periods` (sorted by start) that covers
/// `start`; `None` when none begins at or before it.
pub(crate) fn covered_through(start: i64, periods: &[(i64, i64)]) -> Option<i64> {
    let mut through: Option<i64> = None;
    for &(from, until) in periods {
        let reach = through.unwrap_or(start);
        if from > reach {
            break;
        }
        if until > reach || through.is_none() {
            through = Some(until.max(reach));
        }
    }
    through
}

#[cfg(test)]
mod tests {
    use super::covered_through;

    #[test]
    fn coverage_stops_at_the_first_gap() {
        assert_eq!(covered_through(10, &[]), None);
        assert_eq!(covered_through(10, &[(20, 30)]), None, "the start is not covered");
        assert_eq!(covered_through(10, &[(0, 30), (30, 40), (50, 90)]), Some(40), "gap 40..50");
        assert_eq!(covered_through(10, &[(5, 30), (10, 20), (25, 60)]), Some(60), "overlaps join");
        assert_eq!(covered_through(10, &[(10, 12)]), Some(12));
    }
}
