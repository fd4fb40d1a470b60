//! Two-step login, sessions, logout.
//!
//! Login: password (Argon2id) and a TOTP code, each step checked for every
//! attempt so that neither answer nor timing tells which one was wrong, or
//! whether the name exists. At most `Settings::max_password_checks` password
//! checks run at once; more logins answer 503 `busy` at once (a flood must
//! not be able to allocate 19 MiB per attempt). The 5th failure in a row for
//! a submitted name, existing or not, locks it for 15 minutes; while locked,
//! every attempt answers 429, also with the right credentials. A TOTP time
//! step is accepted once.
//!
//! Sessions are random 256-bit bearer tokens stored as SHA-256 hashes, with
//! an absolute and a sliding idle expiry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Caller, ErrorCode, RequestContext, ServiceError, ServiceResult, User};
use crate::Vault;
use crate::catalog::{LoginStepRow, SessionRow, UserRow, micros_to_time};
use crate::credentials;

/// `POST /api/v1/session`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub username: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Password, max_length = 1024))]
    pub password: Zeroizing<String>,
    /// The 6-digit code of the authenticator app.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9]{6}$"))]
    pub otp: String,
}

/// A new session: the bearer token is shown this once.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewSession {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: User,
}

/// Longest password accepted at all (hashing cost is bounded by it too).
pub(crate) const MAX_PASSWORD_LEN: usize = 1024;
/// How long the sealed first step of a two-page login stays valid.
pub const LOGIN_STEP_SECONDS: i64 = 300;
/// The sealing purpose of that first step's password (bound into its
/// associated data with the step's id).
const LOGIN_STEP_FIELD: &str = "login-step";
/// Sliding idle expiry is written at most this often (microseconds).
const TOUCH_EVERY: i64 = 30_000_000;

/// Why a login attempt failed, for the audit log (the caller hears only
/// "wrong username, password or code").
fn failure_reason(user: Option<&UserRow>, password_ok: bool, step: Option<u64>) -> &'static str {
    match (user, password_ok, step) {
        (None, ..) => "unknown or inactive user",
        (Some(_), false, _) => "wrong password",
        (Some(_), true, None) => "wrong code",
        (Some(_), true, Some(_)) => "code already used",
    }
}

impl Vault {
    /// Log in with password and TOTP code.
    pub async fn login(&self, req: LoginRequest, ctx: &RequestContext) -> ServiceResult<NewSession> {
        // Bounded before anything else: no memory is spent on a flood.
        let slot = self.password_checks.clone().try_acquire_owned().map_err(|_| ServiceError::busy("logins"))?;
        let name = req.username.trim().to_string();
        let name_key = self.keyring().name_key(&name.to_lowercase());

        let (user, locked) = {
            let mut tx = self.snapshot().await?;
            // A name no user can have is looked up nowhere (it may hold
            // anything, NUL included), and answered like an unknown one.
            let user = match crate::domain::username(&name) {
                Ok(valid) => tx.user_by_username(&valid).await?.filter(|u| u.active),
                Err(_) => None,
            };
            let locked = tx.login_locked(&name_key).await?;
            (user, locked)
        };
        if locked {
            drop(slot);
            return Err(self.refuse_login(user.as_ref(), ctx, "account locked").await);
        }

        // The password check runs whether or not the name exists (against a
        // hash of a password nobody knows), so both cost the same.
        let phc = user.as_ref().map_or_else(|| credentials::dummy_hash().to_string(), |u| u.password_hash.clone());
        let password = req.password;
        let password_ok = password.chars().count() <= MAX_PASSWORD_LEN
            && tokio::task::spawn_blocking(move || credentials::verify_password(&password, &phc))
                .await
                .map_err(ServiceError::internal)?;
        drop(slot);
        let now = self.clock.now();
        let step = match &user {
            Some(u) => {
                let secret = self.open_field("totp", u.id, &u.totp_secret)?;
                credentials::check_totp(&secret, &req.otp, now.timestamp().max(0) as u64)
            }
            None => None,
        };

        let mut op = self.anonymous_op(ctx, "session.login").await?;
        op.event.details = serde_json::json!({ "peer": ctx.client_ip.map(|ip| ip.to_string()) });
        if let Some(u) = &user {
            op.act_as(crate::policy::Actor { id: u.id, role: u.role });
        }
        // The name's row lock: a lock set by a concurrent failure wins.
        if op.tx()?.login_lock(&name_key).await?.is_some() {
            return Err(op.deny(self.locked_error(), "account locked").await);
        }
        let accepted = match (&user, password_ok, step) {
            (Some(u), true, Some(step)) => op.tx()?.record_login_success(u.id, step as i64).await?,
            _ => false,
        };
        let Some(user) = user.clone().filter(|_| accepted) else {
            let lock_until = op.now() + self.settings.lock_duration.as_micros() as i64;
            let attempts = op.tx()?.record_login_failure(&name_key, self.settings.lock_threshold, lock_until).await?;
            op.event.details["failures_in_a_row"] = attempts.failures.into();
            let reason = failure_reason(user.as_ref(), password_ok, step);
            return Err(op.deny(ServiceError::invalid_credentials(), reason).await);
        };
        op.tx()?.clear_login_failures(&name_key).await?;
        let token = credentials::new_token();
        let n = op.now();
        let expires_at = n + self.settings.session_max.as_micros() as i64;
        op.tx()?
            .insert_session(&SessionRow {
                token_hash: credentials::token_hash(&token),
                user_id: user.id,
                created_at: n,
                last_seen_at: n,
                expires_at,
            })
            .await?;
        op.event.outcome = "allowed".into();
        op.event.reason = Some("password and code".into());
        op.commit().await?;
        Ok(NewSession { token, expires_at: micros_to_time(expires_at), user: User::from(&user) })
    }

    /// The first step of a login in two pages (the web UI): the name and
    /// the password, sealed under the master key, kept in the catalog for
    /// [`LOGIN_STEP_SECONDS`]; the browser gets only a random handle (stored
    /// as its SHA-256). Nothing is checked here: both answers are checked
    /// together at the second step, as [`Vault::login`] does, so neither
    /// page tells which one was wrong. Any node of the catalog can finish
    /// it; [`Vault::finish_login`] uses it once.
    pub async fn begin_login(&self, username: &str, password: Zeroizing<String>) -> ServiceResult<String> {
        if username.len() > 256 || password.len() > 4 * MAX_PASSWORD_LEN {
            return Err(ServiceError::invalid_credentials());
        }
        let handle = credentials::new_token();
        let id = uuid::Uuid::new_v4();
        let mut tx = self.tx().await?;
        let sealed = self.seal_field_in(&mut tx, LOGIN_STEP_FIELD, id, password.as_bytes()).await?;
        tx.insert_login_step(&LoginStepRow {
            handle_hash: credentials::token_hash(&handle),
            id,
            username: username.to_string(),
            password: sealed,
            expires_at: self.now_micros() + LOGIN_STEP_SECONDS * 1_000_000,
        })
        .await?;
        tx.commit().await?;
        Ok(handle)
    }

    /// The second step: the first step's handle and the code, logged in
    /// exactly as [`Vault::login`] (lock-out, each code once, audited). The
    /// step is gone after this, whatever the answer; an unknown or expired
    /// handle is answered like wrong credentials.
    pub async fn finish_login(&self, handle: &str, otp: String, ctx: &RequestContext) -> ServiceResult<NewSession> {
        let step = {
            let mut tx = self.tx().await?;
            let step = tx.take_login_step(&credentials::token_hash(handle)).await?;
            tx.commit().await?;
            step
        };
        let Some(step) = step else { return Err(ServiceError::invalid_credentials()) };
        if self.now_micros() > step.expires_at {
            return Err(ServiceError::new(ErrorCode::LoginStepExpired, "the sign-in took too long; start again"));
        }
        let password = self
            .open_field(LOGIN_STEP_FIELD, step.id, &step.password)
            .map_err(|_| ServiceError::invalid_credentials())?;
        let password =
            Zeroizing::new(String::from_utf8(password.to_vec()).map_err(|_| ServiceError::invalid_credentials())?);
        self.login(LoginRequest { username: step.username, password, otp }, ctx).await
    }

    /// Forget first steps of sign-ins abandoned before their deadline.
    pub async fn prune_login_steps(&self) -> ServiceResult<u64> {
        let mut tx = self.tx().await?;
        let n = tx.prune_login_steps(self.now_micros()).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Audit a refused login whose answer was known before any check.
    async fn refuse_login(&self, user: Option<&UserRow>, ctx: &RequestContext, reason: &str) -> ServiceError {
        let op = self.anonymous_op(ctx, "session.login").await;
        let mut op = match op {
            Ok(op) => op,
            Err(e) => return e,
        };
        op.event.details = serde_json::json!({ "peer": ctx.client_ip.map(|ip| ip.to_string()) });
        if let Some(u) = user {
            op.act_as(crate::policy::Actor { id: u.id, role: u.role });
        }
        op.deny(self.locked_error(), reason).await
    }

    fn locked_error(&self) -> ServiceError {
        let minutes = self.settings.lock_duration.as_secs().div_ceil(60);
        ServiceError::new(
            ErrorCode::TooManyAttempts,
            format!("too many failed attempts; try again in {minutes} minutes"),
        )
    }

    /// The caller behind a bearer token: a live session of an active user.
    /// Expired sessions are removed; the idle clock is moved on at most
    /// every 30 s.
    pub async fn authenticate(&self, token: &str, ctx: RequestContext) -> ServiceResult<Caller> {
        let hash = credentials::token_hash(token);
        let Some((session, user)) = self.catalog.session_with_user(&hash).await? else {
            return Err(ServiceError::unauthorized());
        };
        let now = self.now_micros();
        let idle = self.settings.session_idle.as_micros() as i64;
        let live = now < session.expires_at && now < session.last_seen_at + idle && user.active;
        if !live || now - session.last_seen_at > TOUCH_EVERY {
            let mut tx = self.tx().await?;
            if live {
                tx.touch_session(&hash, now).await?;
            } else {
                tx.delete_session(&hash).await?;
            }
            tx.commit().await?;
        }
        if !live {
            return Err(ServiceError::unauthorized());
        }
        Ok(Caller { user: User::from(&user), session_hash: hash, ctx })
    }

    /// End the caller's session.
    pub async fn logout(&self, caller: &Caller) -> ServiceResult<()> {
        let mut op = self.op(caller, "session.logout").await?;
        op.tx()?.delete_session(&caller.session_hash).await?;
        op.commit().await
    }
}
