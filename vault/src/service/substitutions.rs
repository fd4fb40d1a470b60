//! Substitutions: a colleague covers an absent coach's caseload for a
//! window `[from, until)`. Registering, listing and ending them early are
//! management and office work; the policy consults running substitutions for
//! every decision a coach asks for, and again when a download token is
//! redeemed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Caller, ErrorCode, ServiceError, ServiceResult};
use crate::Vault;
use crate::catalog::{SubstitutionRow, micros_to_time};
use crate::domain::SubstitutionReason;
use crate::policy::{Action, Target};

/// `POST /api/v1/substitutions`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewSubstitution {
    pub absent_coach_id: Uuid,
    pub substitute_id: Uuid,
    pub from: DateTime<Utc>,
    /// Exclusive; after `from`.
    pub until: DateTime<Utc>,
    pub reason: SubstitutionReason,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Substitution {
    pub id: Uuid,
    pub absent_coach_id: Uuid,
    pub substitute_id: Uuid,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub reason: SubstitutionReason,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub ended_early: bool,
}

impl TryFrom<&SubstitutionRow> for Substitution {
    type Error = ServiceError;
    fn try_from(s: &SubstitutionRow) -> Result<Self, ServiceError> {
        Ok(Substitution {
            id: s.id,
            absent_coach_id: s.absent_coach_id,
            substitute_id: s.substitute_id,
            from: micros_to_time(s.starts_at),
            until: micros_to_time(s.ends_at),
            reason: s.reason.parse().map_err(ServiceError::internal)?,
            created_by: s.created_by,
            created_at: micros_to_time(s.created_at),
            ended_early: s.ended_early_by.is_some(),
        })
    }
}

/// Which substitutions to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SubstitutionShow {
    /// Those that have not ended.
    #[default]
    Current,
    All,
}

/// `GET /api/v1/substitutions?show=`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct SubstitutionQuery {
    #[cfg_attr(feature = "openapi", param(inline))]
    pub show: Option<SubstitutionShow>,
}

impl Vault {
    pub async fn register_substitution(&self, caller: &Caller, new: NewSubstitution) -> ServiceResult<Substitution> {
        let mut op = self.op(caller, "substitution.create").await?;
        op.authorize(Action::RegisterSubstitution, Target::Nothing).await?;
        if new.until <= new.from {
            return Err(ServiceError::new(ErrorCode::InvalidField, "until must be after from"));
        }
        if new.absent_coach_id == new.substitute_id {
            return Err(ServiceError::new(ErrorCode::InvalidField, "a coach cannot substitute for themselves"));
        }
        for (id, what) in [(new.absent_coach_id, "absent_coach_id"), (new.substitute_id, "substitute_id")] {
            let user = op.tx()?.user_opt(id).await?;
            if !user.is_some_and(|u| u.active && u.role.is_coach()) {
                return Err(ServiceError::new(
                    ErrorCode::NotACoach,
                    format!("{what} must be an active coach or freelance coach"),
                ));
            }
        }
        let row = SubstitutionRow {
            id: Uuid::new_v4(),
            absent_coach_id: new.absent_coach_id,
            substitute_id: new.substitute_id,
            starts_at: new.from.timestamp_micros(),
            ends_at: new.until.timestamp_micros(),
            reason: new.reason.as_str().into(),
            created_by: caller.id(),
            created_at: op.now(),
            ended_early_by: None,
        };
        op.tx()?.insert_substitution(&row).await?;
        op.event.on_behalf_of = Some(row.absent_coach_id);
        op.event.details = serde_json::json!({
            "substitution_id": row.id, "substitute_id": row.substitute_id, "reason": new.reason,
            "from": new.from, "until": new.until,
        });
        op.commit().await?;
        Substitution::try_from(&row)
    }

    pub async fn list_substitutions(
        &self,
        caller: &Caller,
        show: SubstitutionShow,
    ) -> ServiceResult<Vec<Substitution>> {
        let mut op = self.op(caller, "substitution.list").await?;
        op.authorize(Action::RegisterSubstitution, Target::Nothing).await?;
        let current = (show == SubstitutionShow::Current).then(|| op.now());
        let rows = op.tx()?.list_substitutions(current).await?;
        let out = rows.iter().map(Substitution::try_from).collect::<ServiceResult<Vec<_>>>()?;
        op.event.outcome = "allowed".into();
        op.event.details = serde_json::json!({ "count": out.len() });
        op.commit().await?;
        Ok(out)
    }

    /// End a substitution now; one that has not started becomes empty.
    pub async fn end_substitution(&self, caller: &Caller, id: Uuid) -> ServiceResult<()> {
        let mut op = self.op(caller, "substitution.end").await?;
        op.authorize(Action::RegisterSubstitution, Target::Nothing).await?;
        let row = match op.tx()?.substitution(id).await {
            Ok(r) => r,
            Err(crate::catalog::CatalogError::NotFound(_)) => {
                op.event.details = serde_json::json!({ "substitution_id": id });
                return Err(op.deny(ServiceError::not_found(), "no such substitution").await);
            }
            Err(e) => return Err(e.into()),
        };
        let ended = op.tx()?.end_substitution(id, caller.id()).await?;
        op.event.on_behalf_of = Some(row.absent_coach_id);
        op.event.details = serde_json::json!({ "substitution_id": id, "was_running_or_planned": ended });
        op.commit().await
    }
}
