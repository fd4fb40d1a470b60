//! Data-subject rights (`migrations/*/0008_privacy.sql`, issue 10): the
//! request register, consents, disclosures, corrections of a client's
//! data, and erasures with their certificates.
//!
//! Rows hold domain values; JSON columns (`changes`, `recipients`,
//! `certificate`, `channels`) are written and read here as
//! `serde_json::Value` or typed lists, never interpreted further.

use std::str::FromStr;

use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use super::{CatalogError, Tx, opt_uuid_col, q, uuid_col};
use crate::domain::{
    ConsentScope, ContactChannel, IdentityCheck, LegalBasis, RecipientKind, RequestChannel, RequestDecision,
    RequestKind,
};

fn enum_col<T: FromStr>(r: &AnyRow, col: &'static str) -> Result<T, CatalogError> {
    let s: String = r.try_get(col).map_err(q("decode"))?;
    s.parse().map_err(|_| CatalogError::Corrupt(format!("{col} {s:?}")))
}

fn opt_enum_col<T: FromStr>(r: &AnyRow, col: &'static str) -> Result<Option<T>, CatalogError> {
    let s: Option<String> = r.try_get(col).map_err(q("decode"))?;
    s.map(|s| s.parse().map_err(|_| CatalogError::Corrupt(format!("{col} {s:?}")))).transpose()
}

fn json_col(r: &AnyRow, col: &'static str) -> Result<serde_json::Value, CatalogError> {
    let s: String = r.try_get(col).map_err(q("decode"))?;
    serde_json::from_str(&s).map_err(|_| CatalogError::Corrupt(format!("{col} is not JSON")))
}

/// One data-subject request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub kind: RequestKind,
    pub received_at: i64,
    pub channel: RequestChannel,
    pub identity_check: IdentityCheck,
    pub description: Option<String>,
    pub handler_id: Option<Uuid>,
    pub due_at: i64,
    pub deadline_at: i64,
    pub extended_until: Option<i64>,
    pub extension_reason: Option<String>,
    pub decision: Option<RequestDecision>,
    pub outcome: Option<String>,
    pub answered_at: Option<i64>,
    pub answered_by: Option<Uuid>,
    pub created_by: Uuid,
    pub created_at: i64,
    pub updated_at: i64,
}

const SELECT_REQUESTS: &str = "SELECT id, client_id, kind, received_at, channel, identity_check, description, \
     handler_id, due_at, deadline_at, extended_until, extension_reason, decision, outcome, answered_at, answered_by, \
     created_by, created_at, updated_at FROM privacy_requests";

fn request_from_row(r: &AnyRow) -> Result<RequestRow, CatalogError> {
    Ok(RequestRow {
        id: uuid_col(r, "id")?,
        client_id: uuid_col(r, "client_id")?,
        kind: enum_col(r, "kind")?,
        received_at: r.try_get("received_at").map_err(q("decode"))?,
        channel: enum_col(r, "channel")?,
        identity_check: enum_col(r, "identity_check")?,
        description: r.try_get("description").map_err(q("decode"))?,
        handler_id: opt_uuid_col(r, "handler_id")?,
        due_at: r.try_get("due_at").map_err(q("decode"))?,
        deadline_at: r.try_get("deadline_at").map_err(q("decode"))?,
        extended_until: r.try_get("extended_until").map_err(q("decode"))?,
        extension_reason: r.try_get("extension_reason").map_err(q("decode"))?,
        decision: opt_enum_col(r, "decision")?,
        outcome: r.try_get("outcome").map_err(q("decode"))?,
        answered_at: r.try_get("answered_at").map_err(q("decode"))?,
        answered_by: opt_uuid_col(r, "answered_by")?,
        created_by: uuid_col(r, "created_by")?,
        created_at: r.try_get("created_at").map_err(q("decode"))?,
        updated_at: r.try_get("updated_at").map_err(q("decode"))?,
    })
}

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub client_id: Option<Uuid>,
    pub kind: Option<RequestKind>,
    /// Only those not answered yet.
    pub open_only: bool,
    pub limit: i64,
}

/// Open requests, for the metrics: all, past the agency's two weeks (or
/// the extension), past the legal deadline (or the extension).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub open: i64,
    pub overdue: i64,
    pub past_deadline: i64,
}

/// A consent as recorded from the signed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub scope: ConsentScope,
    pub channels: Vec<ContactChannel>,
    pub given_at: i64,
    pub evidence_id: Option<Uuid>,
    pub recorded_by: Uuid,
    pub recorded_at: i64,
    pub withdrawn_at: Option<i64>,
    pub withdrawn_by: Option<Uuid>,
    pub withdrawal_reason: Option<String>,
    pub request_id: Option<Uuid>,
}

fn consent_from_row(r: &AnyRow) -> Result<ConsentRow, CatalogError> {
    let channels: Vec<String> = serde_json::from_value(json_col(r, "channels")?)
        .map_err(|_| CatalogError::Corrupt("consent channels".into()))?;
    Ok(ConsentRow {
        id: uuid_col(r, "id")?,
        client_id: uuid_col(r, "client_id")?,
        scope: enum_col(r, "scope")?,
        channels: channels
            .iter()
            .map(|c| c.parse().map_err(|_| CatalogError::Corrupt(format!("consent channel {c:?}"))))
            .collect::<Result<_, _>>()?,
        given_at: r.try_get("given_at").map_err(q("decode"))?,
        evidence_id: opt_uuid_col(r, "evidence_id")?,
        recorded_by: uuid_col(r, "recorded_by")?,
        recorded_at: r.try_get("recorded_at").map_err(q("decode"))?,
        withdrawn_at: r.try_get("withdrawn_at").map_err(q("decode"))?,
        withdrawn_by: opt_uuid_col(r, "withdrawn_by")?,
        withdrawal_reason: r.try_get("withdrawal_reason").map_err(q("decode"))?,
        request_id: opt_uuid_col(r, "request_id")?,
    })
}

/// A disclosure to a third party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisclosureRow {
    pub id: Uuid,
    pub client_id: Uuid,
    /// `None`: the client's data or the whole dossier.
    pub document_id: Option<Uuid>,
    pub recipient_kind: RecipientKind,
    pub recipient: String,
    pub legal_basis: LegalBasis,
    pub basis_note: Option<String>,
    pub disclosed_at: i64,
    pub recorded_by: Uuid,
    pub recorded_at: i64,
}

fn disclosure_from_row(r: &AnyRow) -> Result<DisclosureRow, CatalogError> {
    Ok(DisclosureRow {
        id: uuid_col(r, "id")?,
        client_id: uuid_col(r, "client_id")?,
        document_id: opt_uuid_col(r, "document_id")?,
        recipient_kind: enum_col(r, "recipient_kind")?,
        recipient: r.try_get("recipient").map_err(q("decode"))?,
        legal_basis: enum_col(r, "legal_basis")?,
        basis_note: r.try_get("basis_note").map_err(q("decode"))?,
        disclosed_at: r.try_get("disclosed_at").map_err(q("decode"))?,
        recorded_by: uuid_col(r, "recorded_by")?,
        recorded_at: r.try_get("recorded_at").map_err(q("decode"))?,
    })
}

/// A correction of a client's data.
#[derive(Debug, Clone, PartialEq)]
pub struct CorrectionRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub request_id: Option<Uuid>,
    pub corrected_by: Uuid,
    pub corrected_at: i64,
    pub reason: String,
    /// `[{field, old, new}]`.
    pub changes: serde_json::Value,
    /// The recipients to notify, as they were then.
    pub recipients: serde_json::Value,
}

fn correction_from_row(r: &AnyRow) -> Result<CorrectionRow, CatalogError> {
    Ok(CorrectionRow {
        id: uuid_col(r, "id")?,
        client_id: uuid_col(r, "client_id")?,
        request_id: opt_uuid_col(r, "request_id")?,
        corrected_by: uuid_col(r, "corrected_by")?,
        corrected_at: r.try_get("corrected_at").map_err(q("decode"))?,
        reason: r.try_get("reason").map_err(q("decode"))?,
        changes: json_col(r, "changes")?,
        recipients: json_col(r, "recipients")?,
    })
}

/// An erasure and its certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct ErasureRow {
    pub id: Uuid,
    pub client_id: Uuid,
    pub request_id: Option<Uuid>,
    pub erased_by: Uuid,
    pub erased_at: i64,
    pub reason: String,
    pub certificate: serde_json::Value,
}

fn erasure_from_row(r: &AnyRow) -> Result<ErasureRow, CatalogError> {
    Ok(ErasureRow {
        id: uuid_col(r, "id")?,
        client_id: uuid_col(r, "client_id")?,
        request_id: opt_uuid_col(r, "request_id")?,
        erased_by: uuid_col(r, "erased_by")?,
        erased_at: r.try_get("erased_at").map_err(q("decode"))?,
        reason: r.try_get("reason").map_err(q("decode"))?,
        certificate: json_col(r, "certificate")?,
    })
}

/// A client's personal fields, as a correction writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFields {
    pub first_name: String,
    pub initials: String,
    pub last_name: String,
    pub birth_date: String,
    pub bsn_sealed: Option<crate::keyring::WrappedKey>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<String>,
    pub postcode: Option<String>,
    pub city: Option<String>,
}

impl Tx {
    // --- requests -----------------------------------------------------------

    pub async fn insert_request(&mut self, r: &RequestRow) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO privacy_requests (id, client_id, kind, received_at, channel, identity_check, description, \
             handler_id, due_at, deadline_at, created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
        )
        .bind(r.id.to_string())
        .bind(r.client_id.to_string())
        .bind(r.kind.as_str())
        .bind(r.received_at)
        .bind(r.channel.as_str())
        .bind(r.identity_check.as_str())
        .bind(r.description.clone())
        .bind(r.handler_id.map(|u| u.to_string()))
        .bind(r.due_at)
        .bind(r.deadline_at)
        .bind(r.created_by.to_string())
        .bind(r.created_at)
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_request"))?;
        Ok(())
    }

    pub async fn request_opt(&mut self, id: Uuid) -> Result<Option<RequestRow>, CatalogError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT_REQUESTS} WHERE id = $1")))
            .bind(id.to_string())
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(q("request"))?;
        row.as_ref().map(request_from_row).transpose()
    }

    /// Requests by the date they are due (the soonest first), then received.
    pub async fn list_requests(&mut self, f: &RequestFilter) -> Result<Vec<RequestRow>, CatalogError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT_REQUESTS} WHERE ($1 IS NULL OR client_id = $1) AND ($2 IS NULL OR kind = $2) \
             AND ($3 = 0 OR answered_at IS NULL) \
             ORDER BY COALESCE(extended_until, due_at), received_at, id LIMIT $4"
        )))
        .bind(f.client_id.map(|u| u.to_string()))
        .bind(f.kind.map(|k| k.as_str()))
        .bind(i64::from(f.open_only))
        .bind(f.limit)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(q("list_requests"))?;
        rows.iter().map(request_from_row).collect()
    }

    pub async fn set_request_handler(&mut self, id: Uuid, handler: Option<Uuid>) -> Result<(), CatalogError> {
        sqlx::query("UPDATE privacy_requests SET handler_id = $1, updated_at = $2 WHERE id = $3")
            .bind(handler.map(|u| u.to_string()))
            .bind(self.now)
            .bind(id.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(q("set_request_handler"))?;
        Ok(())
    }

    /// Extend an open request; false when it was answered meanwhile.
    pub async fn extend_request(&mut self, id: Uuid, until: i64, reason: &str) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "UPDATE privacy_requests SET extended_until = $1, extension_reason = $2, updated_at = $3 \
             WHERE id = $4 AND answered_at IS NULL",
        )
        .bind(until)
        .bind(reason)
        .bind(self.now)
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("extend_request"))?;
        Ok(r.rows_affected() == 1)
    }

    /// Answer an open request; false when it was answered already.
    pub async fn answer_request(
        &mut self,
        id: Uuid,
        decision: RequestDecision,
        outcome: &str,
        by: Uuid,
    ) -> Result<bool, CatalogError> {
        let r = sqlx::query(
            "UPDATE privacy_requests SET decision = $1, outcome = $2, answered_at = $3, answered_by = $4, \
             updated_at = $3 WHERE id = $5 AND answered_at IS NULL",
        )
        .bind(decision.as_str())
        .bind(outcome)
        .bind(self.now)
        .bind(by.to_string())
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("answer_request"))?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn request_counts(&mut self, now: i64) -> Result<RequestCounts, CatalogError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS open, \
             COALESCE(SUM(CASE WHEN COALESCE(extended_until, due_at) < $1 THEN 1 ELSE 0 END), 0) AS overdue, \
             COALESCE(SUM(CASE WHEN COALESCE(extended_until, deadline_at) < $1 THEN 1 ELSE 0 END), 0) AS late \
             FROM privacy_requests WHERE answered_at IS NULL",
        )
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(q("request_counts"))?;
        Ok(RequestCounts {
            open: r.try_get("open").map_err(q("decode"))?,
            overdue: r.try_get("overdue").map_err(q("decode"))?,
            past_deadline: r.try_get("late").map_err(q("decode"))?,
        })
    }

    // --- consents -----------------------------------------------------------

    pub async fn insert_consent(&mut self, c: &ConsentRow) -> Result<(), CatalogError> {
        let channels: Vec<&str> = c.channels.iter().map(|c| c.as_str()).collect();
        sqlx::query(
            "INSERT INTO consents (id, client_id, scope, channels, given_at, evidence_id, recorded_by, recorded_at, \
             request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(c.id.to_string())
        .bind(c.client_id.to_string())
        .bind(c.scope.as_str())
        .bind(serde_json::to_string(&channels).map_err(|e| CatalogError::Corrupt(e.to_string()))?)
        .bind(c.given_at)
        .bind(c.evidence_id.map(|u| u.to_string()))
        .bind(c.recorded_by.to_string())
        .bind(c.recorded_at)
        .bind(c.request_id.map(|u| u.to_string()))
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_consent"))?;
        Ok(())
    }

    /// Withdraw the client's running consents of `scope`; how many there were.
    pub async fn withdraw_consents(
        &mut self,
        client: Uuid,
        scope: ConsentScope,
        by: Uuid,
        reason: &str,
        request: Option<Uuid>,
    ) -> Result<u64, CatalogError> {
        let r = sqlx::query(
            "UPDATE consents SET withdrawn_at = $1, withdrawn_by = $2, withdrawal_reason = $3, \
             request_id = COALESCE(request_id, $4) \
             WHERE client_id = $5 AND scope = $6 AND withdrawn_at IS NULL",
        )
        .bind(self.now)
        .bind(by.to_string())
        .bind(reason)
        .bind(request.map(|u| u.to_string()))
        .bind(client.to_string())
        .bind(scope.as_str())
        .execute(&mut *self.tx)
        .await
        .map_err(q("withdraw_consents"))?;
        Ok(r.rows_affected())
    }

    /// Every consent of a client, oldest first.
    pub async fn consents_of(&mut self, client: Uuid) -> Result<Vec<ConsentRow>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, client_id, scope, channels, given_at, evidence_id, recorded_by, recorded_at, withdrawn_at, \
             withdrawn_by, withdrawal_reason, request_id FROM consents WHERE client_id = $1 \
             ORDER BY recorded_at, id",
        )
        .bind(client.to_string())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(q("consents_of"))?;
        rows.iter().map(consent_from_row).collect()
    }

    /// The client row's copy of the survey consent (read by the policy).
    pub async fn set_survey_consent(&mut self, client: Uuid, given: bool) -> Result<(), CatalogError> {
        sqlx::query("UPDATE clients SET survey_consent = $1, updated_at = $2 WHERE id = $3")
            .bind(given)
            .bind(self.now)
            .bind(client.to_string())
            .execute(&mut *self.tx)
            .await
            .map_err(q("set_survey_consent"))?;
        Ok(())
    }

    // --- disclosures --------------------------------------------------------

    pub async fn insert_disclosure(&mut self, d: &DisclosureRow) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO disclosures (id, client_id, document_id, recipient_kind, recipient, legal_basis, basis_note, \
             disclosed_at, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(d.id.to_string())
        .bind(d.client_id.to_string())
        .bind(d.document_id.map(|u| u.to_string()))
        .bind(d.recipient_kind.as_str())
        .bind(&d.recipient)
        .bind(d.legal_basis.as_str())
        .bind(d.basis_note.clone())
        .bind(d.disclosed_at)
        .bind(d.recorded_by.to_string())
        .bind(d.recorded_at)
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_disclosure"))?;
        Ok(())
    }

    /// Every disclosure of a client, oldest first.
    pub async fn disclosures_of(&mut self, client: Uuid) -> Result<Vec<DisclosureRow>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, client_id, document_id, recipient_kind, recipient, legal_basis, basis_note, disclosed_at, \
             recorded_by, recorded_at FROM disclosures WHERE client_id = $1 ORDER BY disclosed_at, id",
        )
        .bind(client.to_string())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(q("disclosures_of"))?;
        rows.iter().map(disclosure_from_row).collect()
    }

    /// Every recipient any client's data went to: kind, name, how many
    /// clients, when last (the processing register).
    pub async fn all_recipients(&mut self) -> Result<Vec<(RecipientKind, String, i64, i64)>, CatalogError> {
        let rows = sqlx::query(
            "SELECT recipient_kind, recipient, COUNT(DISTINCT client_id) AS clients, MAX(disclosed_at) AS last \
             FROM disclosures GROUP BY recipient_kind, recipient ORDER BY recipient_kind, recipient",
        )
        .fetch_all(&mut *self.tx)
        .await
        .map_err(q("all_recipients"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    enum_col(r, "recipient_kind")?,
                    r.try_get("recipient").map_err(q("decode"))?,
                    r.try_get("clients").map_err(q("decode"))?,
                    r.try_get("last").map_err(q("decode"))?,
                ))
            })
            .collect()
    }

    // --- corrections --------------------------------------------------------

    /// Write a client's personal fields (a correction).
    pub async fn update_client_fields(&mut self, id: Uuid, f: &ClientFields) -> Result<(), CatalogError> {
        let r = sqlx::query(
            "UPDATE clients SET first_name = $1, initials = $2, last_name = $3, birth_date = $4, bsn_sealed = $5, \
             bsn_key_version = $6, email = $7, phone = $8, address = $9, postcode = $10, city = $11, \
             updated_at = $12, last_name_key = $14 WHERE id = $13 AND erased_at IS NULL",
        )
        .bind(&f.first_name)
        .bind(&f.initials)
        .bind(&f.last_name)
        .bind(&f.birth_date)
        .bind(f.bsn_sealed.as_ref().map(|s| s.bytes.clone()))
        .bind(f.bsn_sealed.as_ref().map(|s| i64::from(s.version)))
        .bind(f.email.clone())
        .bind(f.phone.clone())
        .bind(f.address.clone())
        .bind(f.postcode.clone())
        .bind(f.city.clone())
        .bind(self.now)
        .bind(id.to_string())
        .bind(indexer::fold(&f.last_name))
        .execute(&mut *self.tx)
        .await
        .map_err(q("update_client_fields"))?;
        if r.rows_affected() == 0 {
            return Err(CatalogError::NotFound("client"));
        }
        Ok(())
    }

    pub async fn insert_correction(&mut self, c: &CorrectionRow) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO client_corrections (id, client_id, request_id, corrected_by, corrected_at, reason, changes, \
             recipients) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(c.id.to_string())
        .bind(c.client_id.to_string())
        .bind(c.request_id.map(|u| u.to_string()))
        .bind(c.corrected_by.to_string())
        .bind(c.corrected_at)
        .bind(&c.reason)
        .bind(c.changes.to_string())
        .bind(c.recipients.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_correction"))?;
        Ok(())
    }

    /// Every correction of a client, oldest first.
    pub async fn corrections_of(&mut self, client: Uuid) -> Result<Vec<CorrectionRow>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, client_id, request_id, corrected_by, corrected_at, reason, changes, recipients \
             FROM client_corrections WHERE client_id = $1 ORDER BY corrected_at, id",
        )
        .bind(client.to_string())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(q("corrections_of"))?;
        rows.iter().map(correction_from_row).collect()
    }

    // --- erasure ------------------------------------------------------------

    /// Clear a client's personal fields and end the trajectory (if it
    /// runs); the corrections keep which fields changed when, not the
    /// values; free text about the client in the registers and tombstones
    /// is cleared (`[erased]`). The row stays as the anchor of tombstones and certificate.
    pub async fn erase_client_fields(&mut self, id: Uuid) -> Result<(), CatalogError> {
        let now = self.now;
        sqlx::query(
            "UPDATE clients SET first_name = '', initials = '', last_name = '', last_name_key = '', birth_date = '', \
             bsn_sealed = NULL, \
             bsn_key_version = NULL, email = NULL, phone = NULL, address = NULL, postcode = NULL, city = NULL, \
             survey_consent = $1, status = 'closed', ended_at = COALESCE(ended_at, $2), erased_at = $2, \
             updated_at = $2 WHERE id = $3",
        )
        .bind(false)
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("erase_client_fields"))?;
        // Free text about the client is theirs too: what they said in a
        // request and the staff's words in answers, extensions, withdrawals,
        // corrections and a destroyed document's reasons. The registers keep
        // the facts: kinds, dates, channels, checks, handlers, decisions.
        let id_s = id.to_string();
        sqlx::query(
            "UPDATE privacy_requests SET description = NULL, \
             outcome = CASE WHEN outcome IS NULL THEN NULL ELSE '[erased]' END, \
             extension_reason = CASE WHEN extension_reason IS NULL THEN NULL ELSE '[erased]' END, \
             updated_at = $1 WHERE client_id = $2",
        )
        .bind(now)
        .bind(&id_s)
        .execute(&mut *self.tx)
        .await
        .map_err(q("erase_request_text"))?;
        for sql in [
            "UPDATE consents SET withdrawal_reason = '[erased]' WHERE client_id = $1 AND withdrawal_reason IS NOT NULL",
            "UPDATE client_corrections SET reason = '[erased]' WHERE client_id = $1",
            "UPDATE documents SET retention_reason = NULL, hold_reason = NULL WHERE client_id = $1",
        ] {
            sqlx::query(sql).bind(&id_s).execute(&mut *self.tx).await.map_err(q("erase_client_free_text"))?;
        }
        let corrections = self.corrections_of(id).await?;
        for c in corrections {
            let fields: Vec<serde_json::Value> = c
                .changes
                .as_array()
                .map(|a| a.iter().map(|ch| serde_json::json!({ "field": ch["field"], "erased": true })).collect())
                .unwrap_or_default();
            sqlx::query("UPDATE client_corrections SET changes = $1 WHERE id = $2")
                .bind(serde_json::Value::from(fields).to_string())
                .bind(c.id.to_string())
                .execute(&mut *self.tx)
                .await
                .map_err(q("erase_corrections"))?;
        }
        Ok(())
    }

    pub async fn insert_erasure(&mut self, e: &ErasureRow) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO erasures (id, client_id, request_id, erased_by, erased_at, reason, certificate) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(e.id.to_string())
        .bind(e.client_id.to_string())
        .bind(e.request_id.map(|u| u.to_string()))
        .bind(e.erased_by.to_string())
        .bind(e.erased_at)
        .bind(&e.reason)
        .bind(e.certificate.to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(q("insert_erasure"))?;
        Ok(())
    }

    pub async fn erasures_of(&mut self, client: Uuid) -> Result<Vec<ErasureRow>, CatalogError> {
        let rows = sqlx::query(
            "SELECT id, client_id, request_id, erased_by, erased_at, reason, certificate FROM erasures \
             WHERE client_id = $1 ORDER BY erased_at, id",
        )
        .bind(client.to_string())
        .fetch_all(&mut *self.tx)
        .await
        .map_err(q("erasures_of"))?;
        rows.iter().map(erasure_from_row).collect()
    }
}
