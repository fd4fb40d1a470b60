//! The service layer: every operation of Kluis, once.
//!
//! Each operation is one `impl Vault` function in a topic file (sessions,
//! users, clients, substitutions, documents, downloads, search, audit,
//! system). It takes the caller, decides through [`crate::policy::decide`],
//! changes the catalog, and appends its audit event, all in one database transaction
//! ([`Op`]): the change and its event commit together or not at all. A denial
//! is audited by the step that decides it ([`Op::authorize`]), exactly once.
//! The HTTP API, the CLI, the workers and the web pages are thin callers of
//! these functions; none of them touches the catalog or the store.
//!
//! Inputs arrive as plain request types (deserialisable, with OpenAPI
//! schemas under the `openapi` feature) and are parsed into domain values
//! here, so every caller gets the same rules and the same error codes
//! ([`ErrorCode`]). Outputs are typed views that never hold a secret beyond
//! what the operation exists to reveal.

mod anchors;
mod audit_log;
mod breaches;
mod clients;
mod consents;
mod corrections;
mod disclosures;
mod documents;
mod downloads;
mod erasure;
mod error;
mod export;
mod purge;
mod register;
mod requests;
mod retention;
mod review;
mod search;
mod sessions;
mod substitutions;
mod system;
mod users;

use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use anchors::{ANCHORS_KEPT, Anchor, AnchorCheck};
pub use audit_log::{AccessEntry, AccessLog, AuditEntry, AuditQuery, CaseloadEntry, ChainReport};
pub use breaches::{Breach, BreachCounts, BreachPatch, BreachReach, BreachUpdate, NOTIFY_HOURS, NewBreach, ReachQuery};
pub use clients::{
    Client, ClientPage, ClientPageQuery, ClientQuery, CloseTrajectory, NewClient, ReopenTrajectory, RevealedBsn,
    SetCoach, SetRestriction,
};
pub use consents::{Consent, Consents, SetConsent};
pub use corrections::{ClientChanges, Corrected, Correction, Corrections, FieldChange, NewCorrection};
pub use disclosures::{Disclosure, Disclosures, NewDisclosure, Recipient};
pub use documents::{Document, UploadAbort, UploadFields, UploadPermit, abort_error};
pub use downloads::{Download, IssuedToken, TokenRequest};
pub use erasure::{ERASURE_METHOD, EraseClient, ErasedDocument, ErasureCertificate};
pub use error::{ErrorCode, ServiceError, ServiceResult};
pub use export::{Export, ExportQuery};
pub use purge::{BY_PURGE, DeleteDocument, DestructionList, DueDocument, DueQuery, PURGE_BATCH, PurgeReport};
pub use register::{ProcessingRegister, PurposeEntry, RecipientEntry, RetentionEntry};
pub use requests::{
    AnswerRequest, Extension, ExtensionRequest, NewRequest, PROMISE_DAYS, Request, RequestPatch, RequestQuery,
    request_clocks,
};
pub use retention::{
    PolicyChange, RetentionPolicy, RetentionTrigger, SetDocumentRetention, SetLegalHold, SetRetentionPolicy,
};
pub use review::{
    BURST_DOWNLOADS, BURST_MINUTES, DENIED_STREAK, Finding, NewReview, OFFICE_HOURS, Review, ReviewQuery, ReviewReport,
    ReviewStatus, outside_office_hours,
};
pub use search::{SearchHit, SearchQuery, SearchResults};
pub use sessions::{LOGIN_STEP_SECONDS, LoginRequest, NewSession};
pub use substitutions::{NewSubstitution, Substitution, SubstitutionQuery, SubstitutionShow};
pub use system::{KeyVersionReport, Readiness};
pub use users::{By, CreatedUser, NewUser, User, UserPatch};

use crate::Vault;
use crate::audit::NewEvent;
use crate::catalog::{ClientRow, DocumentRow, DocumentState, RowLock, Tx, micros_to_time};
use crate::domain::Role;
use crate::faults::FaultPoint;
use crate::policy::{self, Action, Actor, ClientFacts, Decision, DocumentFacts, Target};

/// How the service behaves; the defaults are SPEC §6's.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a download token stays valid.
    pub token_ttl: Duration,
    /// A session ends after this long without requests ...
    pub session_idle: Duration,
    /// ... or this long after login, whatever happens.
    pub session_max: Duration,
    /// Failed logins in a row that lock a name ...
    pub lock_threshold: i64,
    /// ... for this long.
    pub lock_duration: Duration,
    /// Password checks (Argon2id, 19 MiB each) computed at once; logins
    /// beyond this answer 503 `busy` at once instead of queueing memory.
    pub max_password_checks: usize,
    /// The controller named in the processing register.
    pub organisation: Option<String>,
    /// How to reach the privacy officer (the register, art. 30(1)(a)).
    pub privacy_contact: Option<String>,
    /// How often the audit chain is anchored (the register states it).
    pub audit_anchor_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            token_ttl: Duration::from_secs(300),
            session_idle: Duration::from_secs(30 * 60),
            session_max: Duration::from_secs(12 * 3600),
            lock_threshold: 5,
            lock_duration: Duration::from_secs(15 * 60),
            max_password_checks: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2),
            organisation: None,
            privacy_contact: None,
            audit_anchor_interval: Duration::from_secs(300),
        }
    }
}

/// Facts about the request that the audit log records.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The request id (`x-request-id`), for tying log lines to events.
    pub request_id: Option<String>,
    /// The client's address as resolved by the transport (trusted proxies
    /// taken into account).
    pub client_ip: Option<IpAddr>,
}

/// An authenticated caller: a live session of an active user.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    /// SHA-256 of the session token, for logout.
    session_hash: String,
    pub ctx: RequestContext,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor { id: self.user.id, role: self.user.role }
    }

    pub fn id(&self) -> Uuid {
        self.user.id
    }

    pub fn role(&self) -> Role {
        self.user.role
    }
}

/// One operation in progress: its transaction and the audit event it will
/// append. Dropping an `Op` without [`Op::commit`] rolls everything back.
pub(crate) struct Op<'v> {
    vault: &'v Vault,
    /// `None` once a denial has been committed.
    tx: Option<Tx>,
    pub(crate) event: NewEvent,
    actor: Option<Actor>,
    /// The actor's running substitutions (coaches only), loaded on first use.
    subs: Option<Vec<policy::Substitution>>,
}

impl Vault {
    /// Start an operation on behalf of `caller`, audited as `action`.
    pub(crate) async fn op(&self, caller: &Caller, action: &str) -> ServiceResult<Op<'_>> {
        let mut op = self.anonymous_op(&caller.ctx, action).await?;
        op.event.actor_id = Some(caller.user.id);
        op.event.actor_role = Some(caller.user.role.as_str().into());
        op.actor = Some(caller.actor());
        op.check_caller(caller).await?;
        Ok(op)
    }

    /// Start an operation with no authenticated caller (login, a download
    /// token's redemption, the command line).
    pub(crate) async fn anonymous_op(&self, ctx: &RequestContext, action: &str) -> ServiceResult<Op<'_>> {
        let tx = self.tx().await?;
        let mut event = NewEvent::new(action, "ok");
        event.request_id = ctx.request_id.clone();
        Ok(Op { vault: self, tx: Some(tx), event, actor: None, subs: None })
    }
}

/// Reads are audited as `allowed`; changes as `ok`.
fn is_access(action: Action) -> bool {
    matches!(
        action,
        Action::ReadClient
            | Action::RevealBsn
            | Action::ReadAccessLog
            | Action::ReadDocumentMetadata
            | Action::OpenDocument(_)
            | Action::ReadAuditLog
            | Action::ExportClient
    )
}

impl<'v> Op<'v> {
    pub(crate) fn tx(&mut self) -> ServiceResult<&mut Tx> {
        self.tx.as_mut().ok_or_else(|| ServiceError::internal("operation used after its denial was committed"))
    }

    pub(crate) fn now(&self) -> i64 {
        self.tx.as_ref().map_or_else(|| self.vault.now_micros(), Tx::now)
    }

    /// The caller was read when the request was authenticated; in this
    /// transaction they must still be active and hold the same role (a
    /// demotion that committed meanwhile ended their session).
    pub(crate) async fn check_caller(&mut self, caller: &Caller) -> ServiceResult<()> {
        let now = self.tx()?.user_opt(caller.id()).await?;
        match now {
            Some(u) if u.active && u.role == caller.role() => Ok(()),
            _ => Err(ServiceError::unauthorized()),
        }
    }

    pub(crate) fn now_time(&self) -> DateTime<Utc> {
        micros_to_time(self.now())
    }

    /// Act as `actor` (for operations whose caller is known only inside the
    /// operation, such as a download token's holder).
    pub(crate) fn act_as(&mut self, actor: Actor) {
        self.actor = Some(actor);
        self.event.actor_id = Some(actor.id);
        self.event.actor_role = Some(actor.role.as_str().into());
        self.subs = None;
    }

    /// The actor's running substitutions (empty for everyone but coaches).
    async fn substitutions(&mut self) -> ServiceResult<Vec<policy::Substitution>> {
        if let Some(s) = &self.subs {
            return Ok(s.clone());
        }
        let actor = self.actor.ok_or_else(|| ServiceError::internal("no actor to decide for"))?;
        let subs = if actor.role.is_coach() {
            let now = self.now();
            let rows = self.tx()?.active_substitutions_of(actor.id, now).await?;
            rows.iter()
                .map(|s| policy::Substitution {
                    absent: s.absent_coach_id,
                    substitute: s.substitute_id,
                    from: micros_to_time(s.starts_at),
                    until: micros_to_time(s.ends_at),
                })
                .collect()
        } else {
            Vec::new()
        };
        self.subs = Some(subs.clone());
        Ok(subs)
    }

    /// The policy's answer, without recording anything (for filtering a
    /// list).
    pub(crate) async fn decision(&mut self, action: Action, target: Target<'_>) -> ServiceResult<Decision> {
        let actor = self.actor.ok_or_else(|| ServiceError::internal("no actor to decide for"))?;
        let subs = self.substitutions().await?;
        Ok(policy::decide(actor, action, target, &subs, self.now_time()))
    }

    /// Decide `action` on `target`. Allowed: the decision's reason and the
    /// absent colleague (for a substitution) go into the event, and the
    /// operation goes on. Denied: the event is appended as `denied` and
    /// committed at once, and the denial is the error.
    pub(crate) async fn authorize(&mut self, action: Action, target: Target<'_>) -> ServiceResult<Decision> {
        let d = self.decision(action, target).await?;
        if let Action::OpenDocument(p) = action {
            self.event.purpose = Some(p.as_str().into());
        }
        self.event.reason = Some(d.reason().into());
        if let Decision::Allow { on_behalf_of, .. } = d {
            self.event.on_behalf_of = on_behalf_of;
            if is_access(action) {
                self.event.outcome = "allowed".into();
            }
            return Ok(d);
        }
        Err(self.deny(ServiceError::denied(&d), d.reason()).await)
    }

    /// Refuse the operation for `reason`: append the event as `denied`,
    /// commit, and return `err` (or the failure to record it).
    pub(crate) async fn deny(&mut self, err: ServiceError, reason: &str) -> ServiceError {
        self.event.outcome = "denied".into();
        self.event.reason = Some(reason.into());
        let Some(mut tx) = self.tx.take() else { return err };
        let recorded = async {
            tx.append_audit(&self.event).await?;
            tx.commit().await
        }
        .await;
        match recorded {
            Ok(()) => err,
            Err(e) => e.into(),
        }
    }

    /// Load a client (its id goes into the event) and decide `action` on it;
    /// an unknown id is decided like one outside the caller's scope.
    pub(crate) async fn client(&mut self, id: Uuid, action: Action) -> ServiceResult<(ClientRow, Decision)> {
        self.client_with(id, action, None).await
    }

    /// Like [`Op::client`], with the row locked until the commit
    /// ([`crate::catalog::Tx::client_locked`]) so the decision holds.
    pub(crate) async fn client_locked(
        &mut self,
        id: Uuid,
        action: Action,
        lock: RowLock,
    ) -> ServiceResult<(ClientRow, Decision)> {
        self.client_with(id, action, Some(lock)).await
    }

    async fn client_with(
        &mut self,
        id: Uuid,
        action: Action,
        lock: Option<RowLock>,
    ) -> ServiceResult<(ClientRow, Decision)> {
        self.event.client_id = Some(id);
        let row = match lock {
            None => self.tx()?.client_opt(id).await?,
            Some(l) => self.tx()?.client_locked(id, l).await?,
        };
        let facts = row.as_ref().map(facts);
        let target = facts.as_ref().map_or(Target::Missing, Target::Client);
        let d = self.authorize(action, target).await?;
        let row = row.ok_or_else(|| ServiceError::internal("allowed a missing client"))?;
        Ok((row, d))
    }

    /// Load a document and its client and decide `action` on them; a
    /// pending upload counts as missing.
    pub(crate) async fn document(
        &mut self,
        id: Uuid,
        action: Action,
    ) -> ServiceResult<(DocumentRow, ClientRow, Decision)> {
        self.event.document_id = Some(id);
        let doc = self.tx()?.document(id).await?.filter(|d| d.state != DocumentState::Pending);
        // The client is looked up also for a missing document, so that both
        // take the same queries (and time).
        let client = self.tx()?.client_opt(doc.as_ref().map_or(Uuid::nil(), |d| d.client_id)).await?;
        self.event.client_id = client.as_ref().map(|c| c.id);
        let (d, c) = match (doc, client) {
            (Some(d), Some(c)) => (d, c),
            _ => {
                let d = self.authorize(action, Target::Missing).await?;
                return Err(ServiceError::internal(format!("allowed a missing document: {d:?}")));
            }
        };
        let doc_facts = DocumentFacts { destroyed: d.state == DocumentState::Destroyed };
        let decision = self.authorize(action, Target::Document(&facts(&c), &doc_facts)).await?;
        Ok((d, c, decision))
    }

    /// Append the event and commit: the change and its event together.
    pub(crate) async fn commit(mut self) -> ServiceResult<()> {
        let mut tx = self.tx.take().ok_or_else(|| ServiceError::internal("operation committed twice"))?;
        if self.vault.faults.fire(FaultPoint::BeforeAudit) {
            return Err(ServiceError::internal("fault injected before the audit event"));
        }
        tx.append_audit(&self.event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Commit without an event: for decisions taken ahead of a change that
    /// happens (and is audited) later, in its own operation.
    pub(crate) async fn commit_unaudited(mut self) -> ServiceResult<()> {
        if let Some(tx) = self.tx.take() {
            tx.commit().await?;
        }
        Ok(())
    }
}

pub(crate) fn facts(c: &ClientRow) -> ClientFacts {
    ClientFacts { coach_id: c.coach_id, status: c.status, restricted: c.restricted, survey_consent: c.survey_consent }
}

pub(crate) fn opt_time(us: Option<i64>) -> Option<DateTime<Utc>> {
    us.map(micros_to_time)
}
