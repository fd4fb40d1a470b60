//! Users: create (API and `kluis user add`), list, change role or
//! deactivate.
//!
//! Rules (policy `may_manage_user` and the catalog's guarded updates):
//! office manages users but never grants, revokes or deactivates the
//! management role; nobody changes their own role or deactivates themselves;
//! the last active manager is never demoted or deactivated, also not by two
//! managers demoting each other at the same moment (the change takes the
//! chain lock first and is one conditional UPDATE). A new role or a
//! deactivation ends the user's sessions; a deactivation voids their unused
//! download tokens.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::sessions::MAX_PASSWORD_LEN;
use super::{Caller, ErrorCode, RequestContext, ServiceError, ServiceResult};
use crate::Vault;
use crate::catalog::{CatalogError, NewUserRow, RoleChange, UserRow, micros_to_time};
use crate::credentials;
use crate::domain::{self, Role};
use crate::policy::{self, Action, Target};

/// `POST /api/v1/users` and `kluis user add`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Lowercase letters, digits, `.`, `_`, `-`, `@`.
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::username))]
    pub username: String,
    #[cfg_attr(feature = "openapi", schema(schema_with = domain::schema::optional::<100>))]
    pub display_name: Option<String>,
    pub role: Role,
    /// At least 12 characters.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password, min_length = 12, max_length = 1024))]
    pub password: Zeroizing<String>,
}

/// The answer to creating a user: the TOTP secret is shown this once.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedUser {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// Base32, for an authenticator app.
    pub totp_secret: String,
    pub otpauth_url: String,
}

/// A user as others see them.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    /// The web UI's language the user chose; null: the browser's.
    pub language: Option<crate::domain::Language>,
}

impl From<&UserRow> for User {
    fn from(u: &UserRow) -> Self {
        User {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: u.role,
            active: u.active,
            created_at: micros_to_time(u.created_at),
            language: u.language.as_deref().and_then(|l| l.parse().ok()),
        }
    }
}

/// `PATCH /api/v1/users/{id}`: either field or both.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<Role>,
    pub active: Option<bool>,
}

/// Who creates a user: a signed-in user (decided by the policy), or the
/// operator at the server's console (`kluis user add`), who holds the
/// database and the keys already.
#[derive(Debug, Clone, Copy)]
pub enum By<'a> {
    User(&'a Caller),
    Operator,
}

impl Vault {
    /// Create a user with a fresh TOTP secret.
    pub async fn create_user(&self, by: By<'_>, new: NewUser) -> ServiceResult<CreatedUser> {
        // The decision first (a forbidden caller hears 403 whatever it sent),
        // audited if it is a denial; the password is hashed outside any
        // transaction, and the change is decided again in its own.
        if let By::User(caller) = by {
            let mut op = self.op(caller, "user.create").await?;
            op.authorize(Action::ManageUsers, Target::Nothing).await?;
            let d = policy::may_manage_user(caller.actor(), None, Some(new.role), false);
            if !d.is_allowed() {
                op.event.details = serde_json::json!({ "new_role": new.role });
                return Err(op.deny(ServiceError::denied(&d), d.reason()).await);
            }
            op.commit_unaudited().await?;
        }
        let username = domain::username(&new.username)?;
        let display_name = domain::optional_text("display_name", new.display_name.as_deref(), 100)?
            .unwrap_or_else(|| username.clone());
        let length = new.password.chars().count();
        if !(credentials::MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&length) {
            return Err(ServiceError::new(
                ErrorCode::WeakPassword,
                format!(
                    "a password has at least {} and at most {MAX_PASSWORD_LEN} characters",
                    credentials::MIN_PASSWORD_LEN
                ),
            ));
        }
        let hash = {
            let _slot = self.password_checks.clone().acquire_owned().await.map_err(ServiceError::internal)?;
            let password = new.password;
            tokio::task::spawn_blocking(move || credentials::hash_password(&password))
                .await
                .map_err(ServiceError::internal)?
                .map_err(ServiceError::internal)?
        };
        let id = Uuid::new_v4();
        let secret = credentials::new_totp_secret();
        let (b32, url) = credentials::totp_enrolment(&secret, &username).map_err(ServiceError::internal)?;

        let mut op = match by {
            By::User(caller) => {
                let mut op = self.op(caller, "user.create").await?;
                op.authorize(Action::ManageUsers, Target::Nothing).await?;
                let d = policy::may_manage_user(caller.actor(), None, Some(new.role), false);
                if !d.is_allowed() {
                    return Err(op.deny(ServiceError::denied(&d), d.reason()).await);
                }
                op
            }
            By::Operator => self.anonymous_op(&RequestContext::default(), "user.create").await?,
        };
        let sealed = self.seal_field_in(op.tx()?, "totp", id, &secret).await?;
        let version = sealed.version;
        let row = NewUserRow {
            id,
            username: username.clone(),
            display_name: display_name.clone(),
            role: new.role,
            password_hash: hash,
            totp_secret: sealed,
        };
        match op.tx()?.insert_user(&row).await {
            Err(CatalogError::Conflict(_)) => {
                return Err(ServiceError::new(ErrorCode::UsernameTaken, "that username is taken"));
            }
            r => r?,
        }
        op.tx()?.ensure_current_key(version).await?;
        op.event.details = serde_json::json!({
            "user_id": id,
            "role": new.role,
            "via": if matches!(by, By::Operator) { "cli" } else { "api" },
        });
        op.commit().await?;
        Ok(CreatedUser { id, username, display_name, role: new.role, totp_secret: b32, otpauth_url: url })
    }

    /// Every user, by username.
    /// The caller's own choice of the web UI's language (none: the
    /// browser's). Audited like every change.
    pub async fn set_language(&self, caller: &Caller, language: Option<crate::domain::Language>) -> ServiceResult<()> {
        let mut op = self.op(caller, "user.language").await?;
        op.tx()?.set_user_language(caller.id(), language.map(|l| l.as_str())).await?;
        op.event.details = serde_json::json!({ "language": language });
        op.commit().await
    }

    pub async fn list_users(&self, caller: &Caller) -> ServiceResult<Vec<User>> {
        let mut op = self.op(caller, "user.list").await?;
        op.authorize(Action::ManageUsers, Target::Nothing).await?;
        let users: Vec<User> = op.tx()?.list_users().await?.iter().map(User::from).collect();
        op.event.outcome = "allowed".into();
        op.event.details = serde_json::json!({ "count": users.len() });
        op.commit().await?;
        Ok(users)
    }

    /// Change a user's role or active flag.
    pub async fn update_user(&self, caller: &Caller, id: Uuid, patch: UserPatch) -> ServiceResult<User> {
        let mut op = self.op(caller, "user.update").await?;
        op.authorize(Action::ManageUsers, Target::Nothing).await?;
        // Serialise user changes: lock the managers' rows, the caller's and
        // the target's (rows first, the chain head last, in every
        // operation), so the last-manager count below sees every change that
        // committed before, and the caller's own role is read after them.
        op.tx()?.lock_users_for_change(caller.id(), id).await?;
        op.check_caller(caller).await?;
        let Some(before) = op.tx()?.user_opt(id).await? else {
            op.event.details = serde_json::json!({ "user_id": id });
            return Err(op.deny(ServiceError::not_found(), "no such user").await);
        };
        let role = patch.role.filter(|r| *r != before.role);
        let deactivate = patch.active == Some(false) && before.active;
        op.event.details = serde_json::json!({ "user_id": id, "new_role": role });
        let d = policy::may_manage_user(caller.actor(), Some((before.id, before.role)), role, deactivate);
        if !d.is_allowed() {
            return Err(op.deny(ServiceError::denied(&d), d.reason()).await);
        }
        let last_manager = || {
            ServiceError::new(
                ErrorCode::LastManager,
                "the last active management user cannot be demoted or deactivated",
            )
        };
        let now = op.now();
        if let Some(r) = role {
            if op.tx()?.set_user_role(id, r).await? == RoleChange::LastManager {
                return Err(op.deny(last_manager(), "the last active manager stays").await);
            }
            // A new role means new rights: start over with a fresh login.
            op.tx()?.delete_sessions_of(id).await?;
        }
        let mut voided = 0;
        if let Some(active) = patch.active.filter(|a| *a != before.active) {
            if op.tx()?.set_user_active(id, active).await? == RoleChange::LastManager {
                return Err(op.deny(last_manager(), "the last active manager stays").await);
            }
            if !active {
                op.tx()?.delete_sessions_of(id).await?;
                voided = op.tx()?.void_tokens_of(id, now).await?;
            }
        }
        let after = op.tx()?.user(id).await?;
        op.event.details = serde_json::json!({
            "user_id": id,
            "role": { "from": before.role, "to": after.role },
            "active": { "from": before.active, "to": after.active },
            "voided_download_tokens": voided,
        });
        op.commit().await?;
        Ok(User::from(&after))
    }
}
