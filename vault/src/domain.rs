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
    /// Who commissioned the trajectory.
    Commissioner, "commissioner" {
        Uwv = "uwv",
        Municipality = "municipality",
        Employer = "employer",
        Private = "private",
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
