//! Domain values, parsed once at the edge ("parse, don't validate"): a value
//! of these types is always valid.
//!
//! Invariant: a [`Bsn`] never prints itself. `Debug` and `Display` show the
//! masked form only; the digits leave through [`Bsn::expose`] alone, which
//! callers use to seal it or to answer the audited reveal request.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a value was refused. The input itself is never echoed (it may be a BSN).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("a BSN is 9 digits that pass the eleven-test")]
    InvalidBsn,
    #[error("unknown {kind}; expected one of: {expected}")]
    Unknown { kind: &'static str, expected: &'static str },
    #[error("{field} is required")]
    Missing { field: &'static str },
    #[error("{field} is at most {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field} contains control, invisible or text-direction characters")]
    BadCharacters { field: &'static str },
    #[error("{field} is not valid: {rule}")]
    Invalid { field: &'static str, rule: &'static str },
}

/// Characters refused in every free-text field: control characters (C0, DEL,
/// C1), the bidirectional embedding, override and isolate marks (which can
/// make `cod.exe` show as `exe.doc`), zero-width and other invisible
/// formatting characters, and the Unicode line and paragraph separators.
pub fn is_forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// [`is_forbidden_char`] as a regular-expression character range (for the
/// OpenAPI patterns; kept beside the function it mirrors).
pub const FORBIDDEN_CLASS: &str =
    r"\x00-\x1f\x7f-\x9f\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb";
/// The white space that trimming removes from a value without forbidden
/// characters (the rest of Unicode's White_Space is forbidden anyway).
pub const SPACE_CLASS: &str = r" \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000";

/// A free-text value from outside: at most `max` characters as sent, none
/// of [`is_forbidden_char`], surrounding spaces trimmed. `None` for an
/// absent or blank value.
pub fn optional_text(field: &'static str, raw: Option<&str>, max: usize) -> Result<Option<String>, ParseError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.chars().count() > max {
        return Err(ParseError::TooLong { field, max });
    }
    if raw.chars().any(is_forbidden_char) {
        return Err(ParseError::BadCharacters { field });
    }
    Ok(Some(raw.trim().to_string()).filter(|v| !v.is_empty()))
}

/// Like [`optional_text`], for a field that must be given (not blank).
pub fn required_text(field: &'static str, raw: &str, max: usize) -> Result<String, ParseError> {
    optional_text(field, Some(raw), max)?.ok_or(ParseError::Missing { field })
}

/// OpenAPI schemas that say exactly what [`optional_text`],
/// [`required_text`] and the other parsers here accept, built from the same
/// constants (the `openapi` feature).
#[cfg(feature = "openapi")]
pub mod schema {
    use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

    use super::{FORBIDDEN_CLASS, SPACE_CLASS};

    fn string(nullable: bool) -> ObjectBuilder {
        let t = if nullable { SchemaType::from_iter([Type::String, Type::Null]) } else { Type::String.into() };
        ObjectBuilder::new().schema_type(t)
    }

    /// A required text: at most `MAX` characters, at least one that is not a
    /// space, none forbidden.
    pub fn required<const MAX: usize>() -> Object {
        let f = FORBIDDEN_CLASS;
        let s = SPACE_CLASS;
        string(false)
            .min_length(Some(1))
            .max_length(Some(MAX))
            .pattern(Some(format!("^[^{f}]*[^{f}{s}][^{f}]*$")))
            .build()
    }

    /// An optional text: null, or at most `MAX` characters, none forbidden
    /// (blank means none).
    pub fn optional<const MAX: usize>() -> Object {
        string(true).max_length(Some(MAX)).pattern(Some(format!("^[^{FORBIDDEN_CLASS}]*$"))).build()
    }

    /// Free text in a query string: at most `MAX` characters, none
    /// forbidden (blank means none).
    pub fn query_text<const MAX: usize>() -> Object {
        string(false).max_length(Some(MAX)).pattern(Some(format!("^[^{FORBIDDEN_CLASS}]*$"))).build()
    }

    /// A day `YYYY-MM-DD` or an RFC 3339 time (whether it is a real date is
    /// checked beyond the pattern).
    pub fn day_or_time() -> Object {
        string(false)
            .pattern(Some(
                "^[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?$",
            ))
            .build()
    }

    /// A BSN: null, blank, or nine digits (the eleven-test is checked
    /// beyond the schema, 422 `invalid_bsn`).
    pub fn bsn() -> Object {
        string(true)
            .max_length(Some(40))
            .pattern(Some(format!("^[{SPACE_CLASS}]*([0-9]{{9}})?[{SPACE_CLASS}]*$")))
            .build()
    }

    /// An e-mail address as [`super::email`] accepts it.
    pub fn email() -> Object {
        let (f, s) = (FORBIDDEN_CLASS, SPACE_CLASS);
        let local = format!("[^@{f}{s}]+");
        let label = format!("[^@.{f}{s}]+");
        string(true)
            .max_length(Some(254))
            .pattern(Some(format!("^[{s}]*({local}@{label}(\\.{label})+)?[{s}]*$")))
            .build()
    }

    /// A user name as [`super::username`] accepts it.
    pub fn username() -> Object {
        string(false).pattern(Some(super::USERNAME_PATTERN)).build()
    }
}

/// What [`username`] accepts, as a pattern.
pub const USERNAME_PATTERN: &str = "^[a-z0-9._@-]{1,64}$";

/// A birth date `YYYY-MM-DD` that a living client can have: not before
/// 1900-01-01 and not after `today`.
pub fn birth_date(raw: &str, today: chrono::NaiveDate) -> Result<chrono::NaiveDate, ParseError> {
    let field = "birth_date";
    let d = chrono::NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
        .map_err(|_| ParseError::Invalid { field, rule: "a date YYYY-MM-DD" })?;
    let earliest = chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(chrono::NaiveDate::MIN);
    if d < earliest || d > today {
        return Err(ParseError::Invalid { field, rule: "between 1900-01-01 and today" });
    }
    Ok(d)
}

/// An e-mail address of plausible shape: `local@domain.tld`, the local
/// part and each dot-separated label of the domain non-empty, no `@` or
/// space inside, at most 254 characters (surrounding spaces trimmed; blank
/// means none). [`schema::email`] says the same as a pattern.
pub fn email(raw: Option<&str>) -> Result<Option<String>, ParseError> {
    let field = "email";
    let Some(v) = optional_text(field, raw, 254)? else { return Ok(None) };
    let part_ok = |p: &str| !p.is_empty() && !p.contains(|c: char| c == '@' || c.is_whitespace());
    let ok = match v.split_once('@') {
        Some((local, domain)) => {
            let labels: Vec<&str> = domain.split('.').collect();
            part_ok(local) && labels.len() >= 2 && labels.iter().all(|l| part_ok(l))
        }
        None => false,
    };
    if !ok {
        return Err(ParseError::Invalid { field, rule: "an e-mail address such as naam@example.nl" });
    }
    Ok(Some(v))
}

/// A user name: 1-64 characters of lowercase letters, digits, `.`, `_`, `-`,
/// `@`, exactly as sent.
pub fn username(raw: &str) -> Result<String, ParseError> {
    let u = raw;
    let ok = (1..=64).contains(&u.len())
        && u.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if !ok {
        return Err(ParseError::Invalid {
            field: "username",
            rule: "1-64 characters: lowercase letters, digits, . _ - @",
        });
    }
    Ok(u.to_string())
}

/// A Dutch citizen service number (burgerservicenummer) that passed the
/// eleven-test: 9·d1 + 8·d2 + … + 2·d8 − 1·d9 ≡ 0 (mod 11).
#[derive(Clone, PartialEq, Eq)]
pub struct Bsn([u8; 9]);

impl Bsn {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        let bytes = s.as_bytes();
        if bytes.len() != 9 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::InvalidBsn);
        }
        let d: Vec<i32> = bytes.iter().map(|b| i32::from(b - b'0')).collect();
        let sum: i32 = (0..8).map(|i| (9 - i as i32) * d[i]).sum::<i32>() - d[8];
        if sum % 11 != 0 || d.iter().all(|&x| x == 0) {
            return Err(ParseError::InvalidBsn);
        }
        let mut a = [0u8; 9];
        a.copy_from_slice(bytes);
        Ok(Bsn(a))
    }

    /// The digits, for sealing or for the audited reveal.
    pub fn expose(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// `*****6789`: the form the API returns.
    pub fn masked(&self) -> String {
        format!("*****{}", &self.expose()[5..])
    }
}

impl fmt::Debug for Bsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bsn({})", self.masked())
    }
}

impl fmt::Display for Bsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Declares a closed set of API names with parsing, printing and serde.
macro_rules! api_enum {
    ($(#[$m:meta])* $name:ident, $kind:literal { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(ParseError::Unknown { kind: $kind, expected: concat!($($text, " "),+) }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(self.as_str()) }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        /// In OpenAPI: a string with exactly these values.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}

api_enum!(
    /// The roles of SPEC §3.
    Role, "role" {
        Management = "management",
        Office = "office",
        Administration = "administration",
        Coach = "coach",
        FreelanceCoach = "freelance_coach",
    }
);

impl Role {
    /// Coaches and freelance coaches work on a caseload.
    pub fn is_coach(self) -> bool {
        matches!(self, Role::Coach | Role::FreelanceCoach)
    }
}

api_enum!(
    /// The languages of the web UI (Dutch first).
    Language, "language" {
        Nl = "nl",
        En = "en",
    }
);

api_enum!(
    /// Purposes of access ("motiveringspunten", SPEC §3).
    Purpose, "purpose" {
        Guidance = "guidance",
        Assignment = "assignment",
        Administration = "administration",
        Invoicing = "invoicing",
        SatisfactionSurvey = "satisfaction_survey",
        Availability = "availability",
    }
);

impl Purpose {
    /// What the purpose means (SPEC §3, the agency's "motiveringspunten").
    pub fn meaning(self) -> &'static str {
        match self {
            Purpose::Guidance => "needed to guide the client properly",
            Purpose::Assignment => "needed to assign the client to a coach",
            Purpose::Administration => {
                "needed for administration (setting up the client-tracking system, the coach portal)"
            }
            Purpose::Invoicing => "needed to invoice the trajectory to the commissioning party",
            Purpose::SatisfactionSurvey => "needed to prepare the client-satisfaction survey",
            Purpose::Availability => {
                "needed to keep the client's data available to the client or the commissioning party"
            }
        }
    }
}

api_enum!(
    /// Document types (SPEC §4).
    DocumentType, "document type" {
        Consent = "consent",
        Intake = "intake",
        Assignment = "assignment",
        WorkPlan = "work_plan",
        Fml = "fml",
        LabourExpertReport = "labour_expert_report",
        PsychReport = "psych_report",
        ProgressReport = "progress_report",
        Correspondence = "correspondence",
        IdCopy = "id_copy",
    }
);

api_enum!(
    /// When a document type's retention clock starts (SPEC §4): at upload,
    /// or when the client's trajectory ends (no date before that).
    RetentionTrigger, "retention trigger" {
        Upload = "upload",
        TrajectoryEnd = "trajectory_end",
    }
);

api_enum!(
    /// Who commissioned the trajectory.
    Commissioner, "commissioner" {
        Uwv = "uwv",
        Municipality = "municipality",
        Employer = "employer",
        Private = "private",
    }
);

api_enum!(
    /// Where a client's trajectory stands: `closed` means it ended and the
    /// documents are in the archive.
    ClientStatus, "client status" {
        Active = "active",
        Closed = "closed",
    }
);

api_enum!(
    /// The lifecycle of a document: `pending` while its upload runs (never
    /// shown), `active`, or `destroyed` (a tombstone remains).
    DocumentState, "document state" {
        Pending = "pending",
        Active = "active",
        Destroyed = "destroyed",
    }
);

api_enum!(
    /// Why a coach is absent during a substitution.
    SubstitutionReason, "substitution reason" {
        Vacation = "vacation",
        Sickness = "sickness",
    }
);

api_enum!(
    /// The rights a client can invoke (GDPR arts. 15–21, and withdrawing a
    /// consent, art. 7(3)).
    RequestKind, "request kind" {
        Access = "access",
        Rectification = "rectification",
        Erasure = "erasure",
        Restriction = "restriction",
        Objection = "objection",
        Portability = "portability",
        WithdrawConsent = "withdraw_consent",
    }
);

api_enum!(
    /// How a request reached the agency.
    RequestChannel, "request channel" {
        Letter = "letter",
        Email = "email",
        Phone = "phone",
        InPerson = "in_person",
        ViaCoach = "via_coach",
    }
);

api_enum!(
    /// How the requester's identity was checked: the method only; an ID
    /// document is looked at, never kept with the request (an `id_copy`
    /// document, if one is needed, is destroyed 30 days after its upload).
    IdentityCheck, "identity check" {
        IdDocument = "id_document",
        InPerson = "in_person",
        KnownContact = "known_contact",
        AuthorisedRepresentative = "authorised_representative",
    }
);

api_enum!(
    /// How a request was answered.
    RequestDecision, "request decision" {
        Granted = "granted",
        PartiallyGranted = "partially_granted",
        Refused = "refused",
        Withdrawn = "withdrawn",
    }
);

api_enum!(
    /// What a consent on the agency's form covers.
    ConsentScope, "consent scope" {
        Guidance = "guidance",
        SatisfactionSurvey = "satisfaction_survey",
    }
);

api_enum!(
    /// How the client may be approached for the satisfaction survey.
    ContactChannel, "contact channel" {
        Email = "email",
        Phone = "phone",
    }
);

api_enum!(
    /// Who received a disclosure.
    RecipientKind, "recipient kind" {
        Uwv = "uwv",
        Municipality = "municipality",
        Employer = "employer",
        Insurer = "insurer",
        OccupationalPhysician = "occupational_physician",
        Other = "other",
    }
);

api_enum!(
    /// The legal basis of a disclosure (GDPR art. 6(1)).
    LegalBasis, "legal basis" {
        Consent = "consent",
        Contract = "contract",
        LegalObligation = "legal_obligation",
        VitalInterests = "vital_interests",
        PublicTask = "public_task",
        LegitimateInterests = "legitimate_interests",
    }
);

api_enum!(
    /// Categories of personal data a breach concerns (art. 33(3)(a)).
    DataCategory, "data category" {
        Identification = "identification",
        Contact = "contact",
        Bsn = "bsn",
        Health = "health",
        TrajectoryDocuments = "trajectory_documents",
        Credentials = "credentials",
        Other = "other",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eleven_test() {
        // (input, valid?)
        let table = [
            ("111222333", true),
            ("123456782", true),
            (" 111222333 ", true),
            ("111222334", false),
            ("11122233", false),
            ("1112223333", false),
            ("11122233a", false),
            ("000000000", false),
            ("", false),
        ];
        for (input, valid) in table {
            assert_eq!(Bsn::parse(input).is_ok(), valid, "{input:?}");
        }
    }

    #[test]
    fn bsn_never_prints_its_digits() {
        let b = Bsn::parse("111222333").unwrap();
        assert_eq!(b.masked(), "*****2333");
        assert_eq!(format!("{b}"), "*****2333");
        assert_eq!(format!("{b:?}"), "Bsn(*****2333)");
        assert_eq!(b.expose(), "111222333");
        let err = Bsn::parse("111222334").unwrap_err().to_string();
        assert!(!err.contains("111222334"));
    }

    #[test]
    fn free_text_refuses_controls_bidi_and_overlong_values() {
        // (input, max, accepted as)
        let ok = [("  Jan ", 10, Some("Jan")), ("", 10, None), ("   ", 10, None), ("Cliënt", 6, Some("Cliënt"))];
        // The length counts as sent, surrounding spaces included.
        assert!(optional_text("f", Some("  Jan "), 5).is_err());
        for (input, max, want) in ok {
            assert_eq!(optional_text("f", Some(input), max).unwrap().as_deref(), want, "{input:?}");
        }
        for bad in ["a\u{0}b", "a\u{1b}[31m", "a\r\nb", "cod\u{202E}fdp.exe", "a\u{200B}b", "\u{2066}x", "a\u{85}b"] {
            assert_eq!(optional_text("f", Some(bad), 100), Err(ParseError::BadCharacters { field: "f" }), "{bad:?}");
        }
        assert_eq!(optional_text("f", Some(&"x".repeat(11)), 10), Err(ParseError::TooLong { field: "f", max: 10 }));
        assert_eq!(required_text("f", " ", 10), Err(ParseError::Missing { field: "f" }));
        let err = optional_text("f", Some(&"geheim".repeat(100)), 10).unwrap_err().to_string();
        assert!(!err.contains("geheim"), "errors never echo the value: {err}");
    }

    #[test]
    fn birth_dates_emails_and_usernames() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        assert!(birth_date("1980-02-03", today).is_ok());
        for bad in ["1899-12-31", "2026-12-02", "3000-01-01", "1980-13-01", "03-02-1980", ""] {
            assert!(birth_date(bad, today).is_err(), "{bad}");
        }
        assert_eq!(email(Some(" jan@example.nl ")).unwrap().as_deref(), Some("jan@example.nl"));
        assert_eq!(email(None).unwrap(), None);
        for bad in ["jan", "jan@", "@example.nl", "jan@example", "jan @example.nl", "a@b@c.nl", "jan@.nl"] {
            assert!(email(Some(bad)).is_err(), "{bad}");
        }
        assert!(username("anna.de-vries@kluis").is_ok());
        for bad in ["", "Anna", "an na", " anna", &"a".repeat(65), "anna\u{202E}"] {
            assert!(username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn api_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), *r);
        }
        for p in Purpose::ALL {
            assert_eq!(serde_json::from_str::<Purpose>(&serde_json::to_string(p).unwrap()).unwrap(), *p);
        }
        assert_eq!(DocumentType::ALL.len(), 10);
        assert!("Coach".parse::<Role>().is_err());
        assert!(matches!("x".parse::<Commissioner>(), Err(ParseError::Unknown { kind: "commissioner", .. })));
        assert!(Role::FreelanceCoach.is_coach() && !Role::Office.is_coach());
    }
}
