//! Search: document metadata through this node's index, within the caller's
//! scope (SPEC §6, issue 8).
//!
//! The policy decides the scope before the index is asked: management and
//! office search every client; a coach the active clients of their own
//! caseload and of the colleagues they stand in for, each one decided by
//! [`crate::policy::decide`]; administration never sees documents (403).
//! The scope is a filter inside the index's query, so `total` and pages
//! count only what the caller may see. The index is a cache: every hit is
//! read again from the catalog and decided once more, and a hit that is no
//! longer active, no longer matches the filters or is no longer allowed is
//! left out (and out of `total`). The search is audited: who, which
//! filters, how many hits; never the words searched or the hits.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate};
use indexer::{Scope, Search};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, Document, ErrorCode, ServiceError, ServiceResult};
use crate::catalog::{ClientStatus, DocumentState, HitRow};
use crate::domain::{self, DocumentType};
use crate::policy::{Action, ClientFacts, DocumentFacts, Target};
use crate::{Vault, VaultError};

/// Hits per page unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;
/// How deep pages go (`offset + limit`).
const MAX_DEPTH: u32 = 10_000;

/// `GET /api/v1/search`.
#[derive(Debug, Default, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Words to find in the title, the file name and the client's name; all
    /// of them must match (Dutch-aware: `rapportage` finds "Rapportages",
    /// `client` finds "Cliënt"). At most 200 characters.
    #[cfg_attr(feature = "openapi", param(schema_with = domain::schema::query_text::<200>))]
    pub q: Option<String>,
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", param(rename = "type", inline))]
    pub doc_type: Option<DocumentType>,
    pub client_id: Option<Uuid>,
    /// The client's trajectory: `active`, or `closed` (the archive).
    #[cfg_attr(feature = "openapi", param(inline))]
    pub status: Option<ClientStatus>,
    /// Uploaded on or after this day (`YYYY-MM-DD`, UTC) or time (RFC 3339).
    #[cfg_attr(feature = "openapi", param(schema_with = domain::schema::day_or_time))]
    pub uploaded_from: Option<String>,
    /// Uploaded on or before this day (`YYYY-MM-DD`, UTC, the whole day) or
    /// time (RFC 3339); not before `uploaded_from`.
    #[cfg_attr(feature = "openapi", param(schema_with = domain::schema::day_or_time))]
    pub uploaded_until: Option<String>,
    /// Hits per page, 1 to 100 (default 20).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// Hits to skip; `offset + limit` at most 10000.
    #[cfg_attr(feature = "openapi", param(minimum = 0, maximum = 9999))]
    pub offset: Option<u32>,
}

/// A document found, with its client's name.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHit {
    #[serde(flatten)]
    pub document: Document,
    pub client_name: String,
}

/// One page of hits (by relevance, then newest upload) and how many match
/// in all within the caller's scope.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    pub total: u64,
    pub hits: Vec<SearchHit>,
}

fn bad_query(msg: &'static str) -> ServiceError {
    ServiceError::new(ErrorCode::InvalidQuery, msg)
}

/// A day (`YYYY-MM-DD`, UTC) or an RFC 3339 time, in microseconds; with
/// `end_of_day`, a day means up to its end (the bound is exclusive).
fn bound(v: &str, end_of_day: bool) -> Option<i64> {
    let v = v.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.timestamp_micros() + i64::from(end_of_day));
    }
    let day = NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()?;
    let day = if end_of_day { day.succ_opt()? } else { day };
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

impl SearchQuery {
    fn parse(&self) -> ServiceResult<Search> {
        let text = domain::optional_text("q", self.q.as_deref(), 200)?;
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(bad_query("limit is between 1 and 100"));
        }
        let offset = self.offset.unwrap_or(0);
        if offset.saturating_add(limit) > MAX_DEPTH {
            return Err(bad_query("offset + limit is at most 10000"));
        }
        let from = match self.uploaded_from.as_deref() {
            Some(v) => Some(bound(v, false).ok_or_else(|| bad_query("uploaded_from is YYYY-MM-DD or RFC 3339"))?),
            None => None,
        };
        let to = match self.uploaded_until.as_deref() {
            Some(v) => Some(bound(v, true).ok_or_else(|| bad_query("uploaded_until is YYYY-MM-DD or RFC 3339"))?),
            None => None,
        };
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(bad_query("uploaded_from lies after uploaded_until"));
        }
        Ok(Search {
            text,
            doc_type: self.doc_type.map(|t| t.as_str().to_string()),
            client_id: self.client_id,
            status: self.status.map(|s| match s {
                ClientStatus::Active => indexer::Status::Active,
                ClientStatus::Closed => indexer::Status::Closed,
            }),
            uploaded_from: from,
            uploaded_to: to,
            limit: limit as usize,
            offset: offset as usize,
        })
    }
}

fn unavailable() -> ServiceError {
    ServiceError::new(ErrorCode::SearchUnavailable, "the search index of this server is being built; try again shortly")
}

impl Vault {
    /// Search documents within the caller's scope (see the module docs).
    pub async fn search(&self, caller: &Caller, query: SearchQuery) -> ServiceResult<SearchResults> {
        let mut op = self.op(caller, "document.search").await?;
        op.authorize(Action::ReadDocumentMetadata, Target::Nothing).await?;
        let search = query.parse()?;
        let index = self.index().ok_or_else(unavailable)?.clone();
        if index.cursor().map_err(VaultError::from)?.is_none() {
            return Err(unavailable());
        }
        let scope = if caller.role().is_coach() {
            let mut coaches: Vec<Uuid> = vec![caller.id()];
            coaches.extend(op.substitutions().await?.iter().map(|s| s.absent));
            let mut reach = Vec::new();
            for c in op.tx()?.active_clients_of(&coaches).await? {
                // Metadata reads never depend on the survey consent.
                let facts = ClientFacts {
                    coach_id: c.coach_id,
                    status: c.status,
                    restricted: c.restricted,
                    survey_consent: false,
                };
                if op.decision(Action::ReadDocumentMetadata, Target::Client(&facts)).await?.is_allowed() {
                    reach.push(c.id);
                }
            }
            Scope::Caseload { coaches, clients: reach }
        } else {
            Scope::All
        };
        // Off the async threads: a search takes milliseconds of CPU.
        let hits = {
            let search = search.clone();
            tokio::task::spawn_blocking(move || index.search(&scope, &search))
                .await
                .map_err(|e| VaultError::Index(indexer::IndexError::Source(format!("the search task failed: {e}"))))?
                .map_err(VaultError::from)?
        };

        // The index is a cache: read every hit again and decide it again.
        let rows: HashMap<Uuid, HitRow> =
            op.tx()?.hits_by_ids(&hits.ids).await?.into_iter().map(|h| (h.document.id, h)).collect();
        let mut out = Vec::with_capacity(hits.ids.len());
        for id in &hits.ids {
            let Some(HitRow { document: d, client: c, client_name }) = rows.get(id) else { continue };
            let still_matches = d.state == DocumentState::Active
                && query.doc_type.is_none_or(|t| t.as_str() == d.doc_type)
                && query.client_id.is_none_or(|id| id == c.id)
                && query.status.is_none_or(|s| s == c.status);
            if !still_matches {
                continue;
            }
            let facts =
                ClientFacts { coach_id: c.coach_id, status: c.status, restricted: c.restricted, survey_consent: false };
            let target = Target::Document(&facts, &DocumentFacts { destroyed: false });
            if op.decision(Action::ReadDocumentMetadata, target).await?.is_allowed() {
                out.push(SearchHit { document: Document::try_from(d)?, client_name: client_name.clone() });
            }
        }
        let left_out = (hits.ids.len() - out.len()) as u64;
        let total = (hits.total as u64).saturating_sub(left_out);

        op.event.client_id = query.client_id;
        op.event.details = serde_json::json!({
            "hits": out.len(),
            "total": total,
            "words": search.text.is_some(),
            "type": query.doc_type,
            "status": query.status,
            "dates": search.uploaded_from.is_some() || search.uploaded_to.is_some(),
            "offset": search.offset,
        });
        op.commit().await?;
        Ok(SearchResults { total, hits: out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bounds_and_dates() {
        let q = |f: &dyn Fn(&mut SearchQuery)| {
            let mut q = SearchQuery::default();
            f(&mut q);
            q.parse()
        };
        assert_eq!(q(&|_| {}).unwrap().limit, 20);
        assert_eq!(q(&|q| q.limit = Some(0)).unwrap_err().code, ErrorCode::InvalidQuery);
        assert_eq!(q(&|q| q.limit = Some(101)).unwrap_err().code, ErrorCode::InvalidQuery);
        assert_eq!(q(&|q| q.offset = Some(9_980)).unwrap().offset, 9_980);
        assert_eq!(q(&|q| q.offset = Some(9_981)).unwrap_err().code, ErrorCode::InvalidQuery);
        assert_eq!(q(&|q| q.q = Some("a\u{202E}b".into())).unwrap_err().code, ErrorCode::InvalidField);
        assert_eq!(q(&|q| q.q = Some("x".repeat(201))).unwrap_err().code, ErrorCode::InvalidField);
        assert_eq!(q(&|q| q.q = Some("   ".into())).unwrap().text, None);
        let day = q(&|q| {
            q.uploaded_from = Some("2026-03-01".into());
            q.uploaded_until = Some("2026-03-01".into());
        })
        .unwrap();
        let start = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc();
        assert_eq!(day.uploaded_from, Some(start.timestamp_micros()));
        assert_eq!(day.uploaded_to, Some((start + chrono::Duration::days(1)).timestamp_micros()), "the whole day");
        let t = q(&|q| q.uploaded_until = Some("2026-03-01T12:00:00Z".into())).unwrap();
        assert_eq!(t.uploaded_to, Some((start + chrono::Duration::hours(12)).timestamp_micros() + 1));
        assert_eq!(q(&|q| q.uploaded_from = Some("maart".into())).unwrap_err().code, ErrorCode::InvalidQuery);
        let reversed = q(&|q| {
            q.uploaded_from = Some("2026-03-02".into());
            q.uploaded_until = Some("2026-03-01".into());
        });
        assert_eq!(reversed.unwrap_err().code, ErrorCode::InvalidQuery);
    }
}
