//! Clients (the dossier owners).

use uuid::Uuid;

use super::{Catalog, CatalogError, now_micros, q, sealed_cols};
use crate::keyring::WrappedKey;

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

impl Catalog {
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
}
