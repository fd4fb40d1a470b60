//! The access policy: the one place that decides "may this user do this
//! action on this client, for this purpose, now?" (SPEC §3). Handlers ask
//! [`decide`]; nothing else decides access. Every decision carries its reason
//! for the error message and the audit log.
//!
//! Answers: `Allow` (possibly on behalf of an absent colleague, through a
//! substitution); `Forbidden` (403: the role may never do this);
//! `PurposeNotAllowed` (403: not for this purpose, for this role and client
//! state); `Restricted` (403: GDPR art. 18 restriction); `ClientClosed` (409:
//! the trajectory has ended); `Gone` (410: the document was destroyed);
//! `NotFound` (404: outside the caller's scope, answered exactly like an id
//! that does not exist: [`Target::Missing`] takes the same path).
//!
//! Order of the questions: may the role ever do this (403, asked before
//! anything about the target is known)? Does the target exist and lie in the
//! caller's scope (404)? Is the document destroyed (410)? Is the purpose
//! allowed, is the client restricted or closed (403/409)?

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::catalog::ClientStatus;
use crate::domain::{Purpose, Role};

/// What the caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read basic client data (name, address, birth date, e-mail, masked BSN); list clients.
    ReadClient,
    RevealBsn,
    CreateClient,
    AssignCoach,
    RegisterSubstitution,
    CloseTrajectory,
    SetRestriction,
    ReadAccessLog,
    /// List a client's documents, read a document's metadata.
    ReadDocumentMetadata,
    UploadDocument,
    /// Open a document's content (issue or redeem a download token).
    OpenDocument(Purpose),
    ManageUsers,
    /// Read the retention policies and the destruction list (documents of
    /// every client whose date comes, with their titles).
    ReadRetention,
    SetRetention,
    /// Set a psychological report's destruction date below the NIP code's
    /// minimum (one year after the trajectory ends).
    RetentionBelowMinimum,
    /// Change the retention policy of a document type.
    RetentionPolicy,
    LegalHold,
    DestroyDocument,
    EraseClient,
    ReadAuditLog,
    BreachRegister,
    /// The register of data-subject requests: register, read, extend,
    /// answer.
    PrivacyRequests,
    /// Correct a client's data (GDPR art. 16); history kept.
    CorrectClient,
    /// A client's whole dossier as a zip (arts. 15 and 20).
    ExportClient,
    /// Read and record a client's consents (the agency's consent form).
    Consent,
    /// Read and record what was sent to which third party.
    Disclosure,
}

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub id: Uuid,
    pub role: Role,
}

/// What the policy needs to know about the client concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientFacts {
    pub coach_id: Option<Uuid>,
    pub status: ClientStatus,
    pub restricted: bool,
    /// The client's current consent to be approached for the satisfaction
    /// survey; without it the purpose `satisfaction_survey` is refused.
    pub survey_consent: bool,
}

/// What the policy needs to know about the document concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentFacts {
    /// Crypto-shredded; only the tombstone remains.
    pub destroyed: bool,
}

/// What an action is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// No particular client: listing users, creating a client, the audit log.
    Nothing,
    /// A particular client or document was asked for, and there is none
    /// under that id (or only an upload in progress). Decided like a target
    /// outside the caller's scope, so that neither answer reveals existence.
    Missing,
    Client(&'a ClientFacts),
    Document(&'a ClientFacts, &'a DocumentFacts),
}

/// A registered substitution: `substitute` covers `absent`'s caseload from
/// `from` until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Substitution {
    pub absent: Uuid,
    pub substitute: Uuid,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow { on_behalf_of: Option<Uuid>, reason: &'static str },
    Forbidden(&'static str),
    PurposeNotAllowed(&'static str),
    Restricted(&'static str),
    ClientClosed(&'static str),
    Gone(&'static str),
    NotFound(&'static str),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Allow { reason, .. }
            | Decision::Forbidden(reason)
            | Decision::PurposeNotAllowed(reason)
            | Decision::Restricted(reason)
            | Decision::ClientClosed(reason)
            | Decision::Gone(reason)
            | Decision::NotFound(reason) => reason,
        }
    }

    /// `allowed` or `denied`, for the audit log.
    pub fn outcome(&self) -> &'static str {
        if self.is_allowed() { "allowed" } else { "denied" }
    }
}

const ALLOW: Decision = Decision::Allow { on_behalf_of: None, reason: "role permits" };

/// Purposes for which a role may open documents of a client in this state
/// (management and office; coaches are decided by caseload).
fn staff_purposes(role: Role, status: ClientStatus) -> &'static [Purpose] {
    use Purpose::*;
    match (role, status) {
        (Role::Management, ClientStatus::Active) => &[Assignment, Administration],
        (Role::Office, ClientStatus::Active) => &[Assignment, Administration, Invoicing],
        (Role::Management | Role::Office, ClientStatus::Closed) => &[SatisfactionSurvey, Availability],
        _ => &[],
    }
}

/// The purposes a role may name to open documents of a client in this
/// state: what a form offers (the decision itself is still [`decide`]'s,
/// on every download, with restriction, consent and reach).
pub fn purposes_for(role: Role, status: ClientStatus) -> &'static [Purpose] {
    match (role, status) {
        (Role::Coach | Role::FreelanceCoach, ClientStatus::Active) => &[Purpose::Guidance],
        _ => staff_purposes(role, status),
    }
}

/// Is the client in the coach's reach now: own caseload, or an absent
/// colleague's during an active substitution? `Some(on_behalf_of)` if so.
fn coach_reach(actor: Actor, client: &ClientFacts, subs: &[Substitution], now: DateTime<Utc>) -> Option<Option<Uuid>> {
    if client.status != ClientStatus::Active {
        return None;
    }
    let coach = client.coach_id?;
    if coach == actor.id {
        return Some(None);
    }
    subs.iter()
        .any(|s| s.substitute == actor.id && s.absent == coach && s.from <= now && now < s.until)
        .then_some(Some(coach))
}

/// Decide an action on a target, for an actor with these running
/// substitutions, at `now`.
pub fn decide(actor: Actor, action: Action, target: Target<'_>, subs: &[Substitution], now: DateTime<Utc>) -> Decision {
    let role = role_may(actor, action);
    if !role.is_allowed() {
        return role;
    }
    match target {
        Target::Nothing => decide_client(actor, action, None, subs, now),
        Target::Missing => Decision::NotFound("no such client or document"),
        Target::Client(c) => decide_client(actor, action, Some(c), subs, now),
        Target::Document(c, d) if d.destroyed => destroyed_document(actor, action, c, subs, now),
        Target::Document(c, _) => decide_client(actor, action, Some(c), subs, now),
    }
}

/// A destroyed document: management and office still see its tombstone;
/// whoever may otherwise see it learns it is gone; for everyone else it
/// does not exist.
fn destroyed_document(
    actor: Actor,
    action: Action,
    c: &ClientFacts,
    subs: &[Substitution],
    now: DateTime<Utc>,
) -> Decision {
    let staff = matches!(actor.role, Role::Management | Role::Office);
    let in_scope = decide_client(actor, Action::ReadDocumentMetadata, Some(c), subs, now);
    match action {
        Action::ReadDocumentMetadata if staff => {
            Decision::Allow { on_behalf_of: None, reason: "tombstone of a destroyed document" }
        }
        Action::ReadDocumentMetadata => Decision::NotFound("destroyed documents are shown to management and office"),
        _ if !in_scope.is_allowed() => in_scope,
        _ => Decision::Gone("the document has been destroyed"),
    }
}

/// The matrix of SPEC §3 for one client (or none).
fn decide_client(
    actor: Actor,
    action: Action,
    client: Option<&ClientFacts>,
    subs: &[Substitution],
    now: DateTime<Utc>,
) -> Decision {
    use Action::*;
    use Role::*;
    let staff = matches!(actor.role, Management | Office);
    let reach = client.and_then(|c| if actor.role.is_coach() { coach_reach(actor, c, subs, now) } else { None });
    let coach_allow = |reach: Option<Option<Uuid>>| match reach {
        Some(on_behalf_of) => Decision::Allow {
            on_behalf_of,
            reason: if on_behalf_of.is_some() { "substitution" } else { "own caseload" },
        },
        None => Decision::NotFound("outside the coach's caseload"),
    };
    match action {
        ManageUsers | CreateClient | RegisterSubstitution if staff => ALLOW,
        ManageUsers | CreateClient | RegisterSubstitution => Decision::Forbidden("management and office only"),
        LegalHold
        | DestroyDocument
        | EraseClient
        | ReadAuditLog
        | BreachRegister
        | RetentionBelowMinimum
        | RetentionPolicy
            if actor.role == Management =>
        {
            ALLOW
        }
        LegalHold
        | DestroyDocument
        | EraseClient
        | ReadAuditLog
        | BreachRegister
        | RetentionBelowMinimum
        | RetentionPolicy => Decision::Forbidden("management only"),
        // An export holds every document's content: a restricted client's
        // goes out through management only, as its downloads do.
        ExportClient if staff && client.is_some_and(|c| c.restricted) && actor.role != Management => {
            Decision::Restricted("processing of this client is restricted (GDPR art. 18): management exports it")
        }
        AssignCoach | CloseTrajectory | SetRestriction | ReadAccessLog | SetRetention | ReadRetention
        | PrivacyRequests | CorrectClient | ExportClient
            if staff =>
        {
            ALLOW
        }
        AssignCoach | CloseTrajectory | SetRestriction | ReadAccessLog | SetRetention | ReadRetention
        | PrivacyRequests | CorrectClient | ExportClient => Decision::Forbidden("management and office only"),
        // The coach takes the signed form at intake and sends the work plan
        // to UWV: consents and disclosures of their own reach.
        Consent | Disclosure if staff => ALLOW,
        Consent | Disclosure if actor.role == Administration => {
            Decision::Forbidden("administration does not handle consents or disclosures")
        }
        Consent | Disclosure if client.is_none() => ALLOW,
        Consent | Disclosure => coach_allow(reach),
        RevealBsn if staff || actor.role == Administration => ALLOW,
        RevealBsn => Decision::Forbidden("coaches cannot reveal a BSN"),
        ReadClient if staff || actor.role == Administration => ALLOW,
        ReadClient if client.is_none() => ALLOW, // a coach's list is filtered to their reach
        ReadClient => coach_allow(reach),
        ReadDocumentMetadata if staff => ALLOW,
        ReadDocumentMetadata if actor.role == Administration => {
            Decision::Forbidden("administration never sees documents")
        }
        // A coach's search is filtered to their reach, client by client.
        ReadDocumentMetadata if client.is_none() => ALLOW,
        ReadDocumentMetadata => coach_allow(reach),
        UploadDocument if actor.role == Administration => Decision::Forbidden("administration never sees documents"),
        UploadDocument => match client {
            Some(c) if c.status == ClientStatus::Closed && staff => {
                Decision::ClientClosed("the trajectory has ended; uploads stopped")
            }
            _ if staff => ALLOW,
            _ => coach_allow(reach),
        },
        OpenDocument(_) if actor.role == Administration => Decision::Forbidden("administration never sees documents"),
        OpenDocument(purpose) => {
            let Some(c) = client else { return Decision::NotFound("no client") };
            let base = if staff {
                if c.restricted && actor.role == Management && purpose == Purpose::Availability {
                    return Decision::Allow { on_behalf_of: None, reason: "restricted: management for availability" };
                }
                if !staff_purposes(actor.role, c.status).contains(&purpose) {
                    return Decision::PurposeNotAllowed(if c.status == ClientStatus::Closed {
                        "the archive is open for satisfaction_survey and availability only"
                    } else {
                        "purpose not allowed for this role"
                    });
                }
                if purpose == Purpose::SatisfactionSurvey && !c.survey_consent {
                    return Decision::PurposeNotAllowed(
                        "the client has not consented to the satisfaction survey, or withdrew the consent",
                    );
                }
                ALLOW
            } else {
                let d = coach_allow(reach);
                if !d.is_allowed() {
                    return d;
                }
                if purpose != Purpose::Guidance {
                    return Decision::PurposeNotAllowed("coaches open documents for guidance only");
                }
                d
            };
            if c.restricted {
                return Decision::Restricted("processing of this client is restricted (GDPR art. 18)");
            }
            base
        }
    }
}

/// The part of a decision that does not depend on any particular client:
/// `Forbidden` when the role may never do this, else `Allow`. Asked before a
/// client or document is looked up, so that a forbidden request answers 403
/// whether or not the id exists.
pub fn role_may(actor: Actor, action: Action) -> Decision {
    let best_case =
        ClientFacts { coach_id: Some(actor.id), status: ClientStatus::Active, restricted: false, survey_consent: true };
    match decide_client(actor, action, Some(&best_case), &[], DateTime::<Utc>::MIN_UTC) {
        d @ Decision::Forbidden(_) => d,
        _ => ALLOW,
    }
}

/// May `actor` (who may manage users at all) give a user `target` (None for
/// a new user) the role `new_role`, or deactivate them? Only management
/// hands out or takes away the management role or deactivates management;
/// nobody changes their own role or deactivates themselves.
pub fn may_manage_user(
    actor: Actor,
    target: Option<(Uuid, Role)>,
    new_role: Option<Role>,
    deactivate: bool,
) -> Decision {
    if !matches!(actor.role, Role::Management | Role::Office) {
        return Decision::Forbidden("management and office only");
    }
    if let Some((id, _)) = target
        && id == actor.id
        && (new_role.is_some() || deactivate)
    {
        return Decision::Forbidden("nobody changes their own role or deactivates themselves");
    }
    let touches_management = new_role == Some(Role::Management) || target.is_some_and(|(_, r)| r == Role::Management);
    if touches_management && actor.role != Role::Management {
        return Decision::Forbidden("only management grants, revokes or deactivates the management role");
    }
    ALLOW
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    // Each row: role, client situation, action, expected answer. The table is
    // the specification; read it against SPEC §3.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Situation {
        OwnClient,
        ColleagueClient,
        DuringSubstitution,
        AfterSubstitution,
        Archived,
        RestrictedClient,
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Want {
        Allow,
        AllowOnBehalf,
        Forbidden,
        Purpose, // purpose_not_allowed
        Restricted,
        Closed,
        Gone,
        NotFound,
    }

    fn judge(role: Role, sit: Situation, action: Action) -> Want {
        judge_target(role, sit, action, false)
    }

    fn judge_target(role: Role, sit: Situation, action: Action, destroyed: bool) -> Want {
        let me = Uuid::from_u128(1);
        let colleague = Uuid::from_u128(2);
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        let day = chrono::Duration::days(1);
        let mut c = ClientFacts {
            coach_id: Some(colleague),
            status: ClientStatus::Active,
            restricted: false,
            survey_consent: true,
        };
        let mut subs = vec![];
        match sit {
            Situation::OwnClient => c.coach_id = Some(me),
            Situation::ColleagueClient => {}
            Situation::DuringSubstitution => {
                subs.push(Substitution { absent: colleague, substitute: me, from: now - day, until: now + day })
            }
            Situation::AfterSubstitution => {
                subs.push(Substitution { absent: colleague, substitute: me, from: now - day * 3, until: now - day })
            }
            Situation::Archived => {
                c.coach_id = Some(me);
                c.status = ClientStatus::Closed;
            }
            Situation::RestrictedClient => {
                c.coach_id = Some(me);
                c.restricted = true;
            }
        }
        let doc = DocumentFacts { destroyed };
        let target = if destroyed { Target::Document(&c, &doc) } else { Target::Client(&c) };
        match decide(Actor { id: me, role }, action, target, &subs, now) {
            Decision::Allow { on_behalf_of: None, .. } => Want::Allow,
            Decision::Allow { on_behalf_of: Some(x), .. } => {
                assert_eq!(x, colleague);
                Want::AllowOnBehalf
            }
            Decision::Forbidden(_) => Want::Forbidden,
            Decision::PurposeNotAllowed(_) => Want::Purpose,
            Decision::Restricted(_) => Want::Restricted,
            Decision::ClientClosed(_) => Want::Closed,
            Decision::Gone(_) => Want::Gone,
            Decision::NotFound(_) => Want::NotFound,
        }
    }

    #[test]
    fn opening_documents_follows_the_matrix() {
        use crate::domain::Purpose::*;
        use Situation::*;
        use Want::*;
        // Situations: own/colleague/during/after/archived/restricted.
        // For management and office "own" means nothing: they reach all clients.
        let rows: &[(Role, crate::domain::Purpose, [Want; 6])] = &[
            (Role::Management, Guidance, [Purpose, Purpose, Purpose, Purpose, Purpose, Purpose]),
            (Role::Management, Assignment, [Allow, Allow, Allow, Allow, Purpose, Restricted]),
            (Role::Management, Administration, [Allow, Allow, Allow, Allow, Purpose, Restricted]),
            (Role::Management, Invoicing, [Purpose, Purpose, Purpose, Purpose, Purpose, Purpose]),
            (Role::Management, SatisfactionSurvey, [Purpose, Purpose, Purpose, Purpose, Allow, Purpose]),
            (Role::Management, Availability, [Purpose, Purpose, Purpose, Purpose, Allow, Allow]),
            (Role::Office, Guidance, [Purpose, Purpose, Purpose, Purpose, Purpose, Purpose]),
            (Role::Office, Assignment, [Allow, Allow, Allow, Allow, Purpose, Restricted]),
            (Role::Office, Administration, [Allow, Allow, Allow, Allow, Purpose, Restricted]),
            (Role::Office, Invoicing, [Allow, Allow, Allow, Allow, Purpose, Restricted]),
            (Role::Office, SatisfactionSurvey, [Purpose, Purpose, Purpose, Purpose, Allow, Purpose]),
            (Role::Office, Availability, [Purpose, Purpose, Purpose, Purpose, Allow, Purpose]),
            (Role::Administration, Invoicing, [Forbidden; 6]),
            (Role::Administration, Administration, [Forbidden; 6]),
            (Role::Coach, Guidance, [Allow, NotFound, AllowOnBehalf, NotFound, NotFound, Restricted]),
            (Role::Coach, Assignment, [Purpose, NotFound, Purpose, NotFound, NotFound, Purpose]),
            (Role::Coach, Availability, [Purpose, NotFound, Purpose, NotFound, NotFound, Purpose]),
            (Role::FreelanceCoach, Guidance, [Allow, NotFound, AllowOnBehalf, NotFound, NotFound, Restricted]),
            (Role::FreelanceCoach, Invoicing, [Purpose, NotFound, Purpose, NotFound, NotFound, Purpose]),
        ];
        let sits = [OwnClient, ColleagueClient, DuringSubstitution, AfterSubstitution, Archived, RestrictedClient];
        for (role, purpose, wants) in rows {
            for (sit, want) in sits.iter().zip(wants) {
                assert_eq!(judge(*role, *sit, Action::OpenDocument(*purpose)), *want, "{role} {purpose} {sit:?}");
            }
        }
    }

    #[test]
    fn other_actions_follow_the_matrix() {
        use Action::*;
        use Situation::*;
        use Want::*;
        let sits = [OwnClient, ColleagueClient, DuringSubstitution, AfterSubstitution, Archived, RestrictedClient];
        let coach_scope = [Allow, NotFound, AllowOnBehalf, NotFound, NotFound, Allow];
        let rows: &[(Action, [[Want; 6]; 5])] = &[
            // management, office, administration, coach, freelance_coach
            (ReadClient, [[Allow; 6], [Allow; 6], [Allow; 6], coach_scope, coach_scope]),
            (RevealBsn, [[Allow; 6], [Allow; 6], [Allow; 6], [Forbidden; 6], [Forbidden; 6]]),
            (ReadDocumentMetadata, [[Allow; 6], [Allow; 6], [Forbidden; 6], coach_scope, coach_scope]),
            (
                UploadDocument,
                [
                    [Allow, Allow, Allow, Allow, Closed, Allow],
                    [Allow, Allow, Allow, Allow, Closed, Allow],
                    [Forbidden; 6],
                    coach_scope,
                    coach_scope,
                ],
            ),
            (AssignCoach, [[Allow; 6], [Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (CloseTrajectory, [[Allow; 6], [Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (SetRestriction, [[Allow; 6], [Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (ReadAccessLog, [[Allow; 6], [Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (SetRetention, [[Allow; 6], [Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (ReadRetention, [[Allow; 6], [Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (LegalHold, [[Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (RetentionBelowMinimum, [[Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (RetentionPolicy, [[Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (DestroyDocument, [[Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (EraseClient, [[Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (ReadAuditLog, [[Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (BreachRegister, [[Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (ManageUsers, [[Allow; 6], [Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (CreateClient, [[Allow; 6], [Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
            (RegisterSubstitution, [[Allow; 6], [Allow; 6], [Forbidden; 6], [Forbidden; 6], [Forbidden; 6]]),
        ];
        for (action, per_role) in rows {
            for (role, wants) in Role::ALL.iter().zip(per_role) {
                for (sit, want) in sits.iter().zip(wants) {
                    assert_eq!(judge(*role, *sit, *action), *want, "{role} {action:?} {sit:?}");
                }
            }
        }
    }

    #[test]
    fn destroyed_documents_and_missing_targets() {
        use Situation::*;
        use Want::*;
        let sits = [OwnClient, ColleagueClient, DuringSubstitution, AfterSubstitution, Archived, RestrictedClient];
        let coach_gone = [Gone, NotFound, Gone, NotFound, NotFound, Gone];
        // (role, action, wants for a destroyed document)
        let rows: &[(Role, Action, [Want; 6])] = &[
            (Role::Management, Action::ReadDocumentMetadata, [Allow; 6]),
            (Role::Office, Action::ReadDocumentMetadata, [Allow; 6]),
            (Role::Coach, Action::ReadDocumentMetadata, [NotFound; 6]),
            (Role::Administration, Action::ReadDocumentMetadata, [Forbidden; 6]),
            (Role::Management, Action::OpenDocument(crate::domain::Purpose::Availability), [Gone; 6]),
            (Role::Office, Action::OpenDocument(crate::domain::Purpose::Invoicing), [Gone; 6]),
            (Role::Coach, Action::OpenDocument(crate::domain::Purpose::Guidance), coach_gone),
            (Role::Coach, Action::OpenDocument(crate::domain::Purpose::Invoicing), coach_gone),
            (Role::Administration, Action::OpenDocument(crate::domain::Purpose::Invoicing), [Forbidden; 6]),
            (Role::Management, Action::DestroyDocument, [Gone; 6]),
            (Role::Office, Action::DestroyDocument, [Forbidden; 6]),
        ];
        for (role, action, wants) in rows {
            for (sit, want) in sits.iter().zip(wants) {
                assert_eq!(judge_target(*role, *sit, *action, true), *want, "{role} {action:?} {sit:?}");
            }
        }
        // A missing target is 404 for whoever may ask at all, 403 for roles that may never.
        let me = Actor { id: Uuid::from_u128(1), role: Role::Coach };
        let now = Utc::now();
        for (actor, action, want) in [
            (me, Action::ReadClient, Want::NotFound),
            (me, Action::OpenDocument(crate::domain::Purpose::Guidance), Want::NotFound),
            (me, Action::RevealBsn, Want::Forbidden),
            (Actor { role: Role::Administration, ..me }, Action::ReadDocumentMetadata, Want::Forbidden),
            (Actor { role: Role::Management, ..me }, Action::AssignCoach, Want::NotFound),
        ] {
            let got = match decide(actor, action, Target::Missing, &[], now) {
                Decision::NotFound(_) => Want::NotFound,
                Decision::Forbidden(_) => Want::Forbidden,
                d => panic!("{action:?}: {d:?}"),
            };
            assert_eq!(got, want, "{:?} {action:?}", actor.role);
        }
    }

    #[test]
    fn managing_users() {
        use Role::*;
        let me = Uuid::from_u128(1);
        let other = Uuid::from_u128(2);
        let ok = |actor: Role, target: Option<(Uuid, Role)>, new: Option<Role>, deact: bool| {
            may_manage_user(Actor { id: me, role: actor }, target, new, deact).is_allowed()
        };
        // (actor, target, new role, deactivate, allowed?)
        let table = [
            (Office, None, Some(Coach), false, true),
            (Office, None, Some(Management), false, false),
            (Management, None, Some(Management), false, true),
            (Office, Some((other, Coach)), Some(Office), false, true),
            (Office, Some((other, Coach)), Some(Management), false, false),
            (Office, Some((other, Management)), Some(Office), false, false),
            (Office, Some((other, Management)), None, true, false),
            (Office, Some((other, Office)), None, true, true),
            (Management, Some((other, Management)), None, true, true),
            (Management, Some((me, Management)), None, true, false),
            (Office, Some((me, Office)), Some(Management), false, false),
            (Coach, Some((other, Coach)), None, true, false),
            (Administration, None, Some(Coach), false, false),
        ];
        for (i, (actor, target, new, deact, want)) in table.into_iter().enumerate() {
            assert_eq!(ok(actor, target, new, deact), want, "row {i}");
        }
    }

    #[test]
    fn substitution_window_is_half_open() {
        let me = Uuid::from_u128(1);
        let absent = Uuid::from_u128(2);
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        let t1 = Utc.with_ymd_and_hms(2026, 1, 8, 9, 0, 0).unwrap();
        let subs = [Substitution { absent, substitute: me, from: t0, until: t1 }];
        let c = ClientFacts {
            coach_id: Some(absent),
            status: ClientStatus::Active,
            restricted: false,
            survey_consent: true,
        };
        let at = |t| {
            decide(
                Actor { id: me, role: Role::Coach },
                Action::OpenDocument(Purpose::Guidance),
                Target::Client(&c),
                &subs,
                t,
            )
        };
        assert!(!at(t0 - chrono::Duration::seconds(1)).is_allowed());
        assert!(at(t0).is_allowed());
        assert!(at(t1 - chrono::Duration::seconds(1)).is_allowed());
        assert!(!at(t1).is_allowed());
    }

    #[test]
    fn the_purposes_a_form_offers_are_exactly_those_decide_allows() {
        // purposes_for is what a page offers; it must never offer one that
        // decide refuses, nor leave out one it allows (own caseload, not
        // restricted, consent given).
        let me = Uuid::from_u128(1);
        let now = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
        for role in Role::ALL.iter().copied() {
            for status in [ClientStatus::Active, ClientStatus::Closed] {
                let c = ClientFacts { coach_id: Some(me), status, restricted: false, survey_consent: true };
                for p in Purpose::ALL.iter().copied() {
                    let allowed = decide(Actor { id: me, role }, Action::OpenDocument(p), Target::Client(&c), &[], now)
                        .is_allowed();
                    assert_eq!(purposes_for(role, status).contains(&p), allowed, "{role} {status:?} {p}");
                }
            }
        }
    }

    #[test]
    fn the_survey_purpose_needs_the_clients_consent() {
        let me = Uuid::from_u128(1);
        let now = Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0).unwrap();
        for role in [Role::Management, Role::Office] {
            let mut c =
                ClientFacts { coach_id: None, status: ClientStatus::Closed, restricted: false, survey_consent: true };
            let open = |c: &ClientFacts, p| {
                decide(Actor { id: me, role }, Action::OpenDocument(p), Target::Client(c), &[], now)
            };
            assert!(open(&c, Purpose::SatisfactionSurvey).is_allowed(), "{role}");
            c.survey_consent = false;
            assert!(matches!(open(&c, Purpose::SatisfactionSurvey), Decision::PurposeNotAllowed(_)), "{role}");
            // The other archive purpose does not depend on it.
            assert!(open(&c, Purpose::Availability).is_allowed(), "{role}");
        }
    }

    /// `ACCESS.md` at the repository root is this module's decisions written
    /// out as tables, for readers of the SPEC rather than of Rust. The test
    /// fails when the two differ; `KLUIS_BLESS=1 cargo test -p vault --lib policy`
    /// rewrites the file.
    #[test]
    fn access_md_matches_the_policy() {
        use std::fmt::Write;
        let sits = [
            (Situation::OwnClient, "own client"),
            (Situation::ColleagueClient, "colleague's client"),
            (Situation::DuringSubstitution, "colleague's client, substitution running"),
            (Situation::AfterSubstitution, "colleague's client, substitution ended"),
            (Situation::Archived, "own client, trajectory closed (archive)"),
            (Situation::RestrictedClient, "own client, restricted (art. 18)"),
        ];
        let word = |w: Want| match w {
            Want::Allow => "yes",
            Want::AllowOnBehalf => "yes (on behalf)",
            Want::Forbidden => "403",
            Want::Purpose => "403 purpose",
            Want::Restricted => "403 restricted",
            Want::Closed => "409 closed",
            Want::Gone => "410 gone",
            Want::NotFound => "404",
        };
        let mut actions: Vec<(String, Action)> = vec![
            ("read basic client data".into(), Action::ReadClient),
            ("reveal BSN".into(), Action::RevealBsn),
            ("list documents, read metadata".into(), Action::ReadDocumentMetadata),
            ("upload".into(), Action::UploadDocument),
        ];
        for p in Purpose::ALL {
            actions.push((format!("open document (issue/redeem token) for `{p}`"), Action::OpenDocument(*p)));
        }
        let destroyed: Vec<(String, Action)> = vec![
            ("read a destroyed document's tombstone".into(), Action::ReadDocumentMetadata),
            ("open a destroyed document for `guidance`".into(), Action::OpenDocument(Purpose::Guidance)),
            ("open a destroyed document for `availability`".into(), Action::OpenDocument(Purpose::Availability)),
        ];
        for (n, a) in [
            ("create client", Action::CreateClient),
            ("assign coach", Action::AssignCoach),
            ("register substitution", Action::RegisterSubstitution),
            ("close trajectory", Action::CloseTrajectory),
            ("set restriction", Action::SetRestriction),
            ("read access log", Action::ReadAccessLog),
            ("read retention policies and the destruction list", Action::ReadRetention),
            ("set retention", Action::SetRetention),
            ("retention below the NIP minimum", Action::RetentionBelowMinimum),
            ("change a retention policy", Action::RetentionPolicy),
            ("manage users", Action::ManageUsers),
            ("legal hold", Action::LegalHold),
            ("destroy document", Action::DestroyDocument),
            ("erase client", Action::EraseClient),
            ("read audit log", Action::ReadAuditLog),
            ("breach register", Action::BreachRegister),
            ("data-subject request register", Action::PrivacyRequests),
            ("correct client data", Action::CorrectClient),
            ("export a dossier", Action::ExportClient),
            ("read and record consents", Action::Consent),
            ("read and record disclosures", Action::Disclosure),
        ] {
            actions.push((n.into(), a));
        }
        let mut md = String::from(
            "# Access matrix (generated)\n\n\
             Generated from `vault/src/policy.rs` by its test `access_md_matches_the_policy`; do not edit by hand.\n\
             One table per role. Columns are the situations of the client concerned, seen from the caller \
             (for management, office and administration \"own\" means nothing: they are not assigned clients). \
             `yes (on behalf)`: allowed through a substitution, audited with the absent colleague. \
             `404`: outside the caller's scope, answered exactly like an id that does not exist. \
             The tables assume the client consented to the satisfaction survey: without that consent \
             (or after its withdrawal) `satisfaction_survey` is `403 purpose` for everyone.\n",
        );
        for role in Role::ALL {
            let _ = write!(md, "\n## {role}\n\n| action |");
            for (_, name) in &sits {
                let _ = write!(md, " {name} |");
            }
            md.push_str("\n|---|");
            md.push_str(&"---|".repeat(sits.len()));
            md.push('\n');
            let rows = actions.iter().map(|(n, a)| (n, a, false)).chain(destroyed.iter().map(|(n, a)| (n, a, true)));
            for (name, action, gone) in rows {
                let _ = write!(md, "| {name} |");
                for (sit, _) in &sits {
                    let _ = write!(md, " {} |", word(judge_target(*role, *sit, *action, gone)));
                }
                md.push('\n');
            }
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ACCESS.md");
        if std::env::var("KLUIS_BLESS").is_ok() {
            std::fs::write(path, &md).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(committed == md, "ACCESS.md is out of date: run KLUIS_BLESS=1 cargo test -p vault --lib policy");
    }
}
