//! The audit chain: what an event is, and how it is hashed.
//!
//! Each event carries the hash of its predecessor; the first one's
//! predecessor is 32 zero bytes. The hash is
//! `SHA-256("kluis/audit/v1" || prev_hash (32 bytes) || canonical(event))`,
//! where `canonical` writes every field in a fixed order, each as a presence
//! byte (0 = absent, 1 = present) followed, when present, by its length as a
//! u32 big-endian and its UTF-8 bytes; numbers are written as u64/i64
//! big-endian. Changing, removing, inserting or reordering an event breaks
//! every later link, which `verify` (see `Catalog::verify_audit_chain`) names.
//!
//! Invariant: events hold facts (who, what, which ids, outcome, reason), never
//! document content, names of clients or a BSN. The `details` object is for
//! further facts such as sizes, key versions or counts.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// An event to append; the catalog fills in `seq`, `at`, and the hashes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvent {
    pub actor_id: Option<Uuid>,
    pub actor_role: Option<String>,
    /// What happened, e.g. `document.upload`, `key.rekey`, `session.login`.
    pub action: String,
    /// `allowed`, `denied`, `ok` or `failed`.
    pub outcome: String,
    pub reason: Option<String>,
    pub purpose: Option<String>,
    pub client_id: Option<Uuid>,
    pub document_id: Option<Uuid>,
    /// The absent colleague, when access went through a substitution.
    pub on_behalf_of: Option<Uuid>,
    pub request_id: Option<String>,
    /// Further facts; serialised with sorted keys (serde_json's default map).
    pub details: serde_json::Value,
}

impl NewEvent {
    pub fn new(action: &str, outcome: &str) -> Self {
        NewEvent {
            action: action.into(),
            outcome: outcome.into(),
            details: serde_json::Value::Object(Default::default()),
            ..Default::default()
        }
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: i64,
    /// Microseconds since the Unix epoch, UTC.
    pub at: i64,
    #[serde(flatten)]
    pub body: NewEvent,
    pub prev_hash: String,
    pub hash: String,
}

fn put_str(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => buf.push(0),
        Some(s) => {
            buf.push(1);
            buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
            buf.extend_from_slice(s.as_bytes());
        }
    }
}

/// The canonical encoding of one event (without its hashes).
pub fn canonical(seq: i64, at: i64, e: &NewEvent) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&at.to_be_bytes());
    let id = |u: &Option<Uuid>| u.map(|u| u.to_string());
    put_str(&mut b, id(&e.actor_id).as_deref());
    put_str(&mut b, e.actor_role.as_deref());
    put_str(&mut b, Some(&e.action));
    put_str(&mut b, Some(&e.outcome));
    put_str(&mut b, e.reason.as_deref());
    put_str(&mut b, e.purpose.as_deref());
    put_str(&mut b, id(&e.client_id).as_deref());
    put_str(&mut b, id(&e.document_id).as_deref());
    put_str(&mut b, id(&e.on_behalf_of).as_deref());
    put_str(&mut b, e.request_id.as_deref());
    put_str(&mut b, Some(&details_text(&e.details)));
    b
}

/// `details` as stored and hashed: compact JSON with sorted keys.
pub fn details_text(details: &serde_json::Value) -> String {
    // serde_json's Map is a BTreeMap unless `preserve_order` is enabled, so
    // keys come out sorted and the text is canonical.
    serde_json::to_string(details).unwrap_or_else(|_| "{}".into())
}

/// The hash of an event given its predecessor's hash.
pub fn chain_hash(prev: &[u8; 32], seq: i64, at: i64, e: &NewEvent) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"kluis/audit/v1");
    h.update(prev);
    h.update(canonical(seq, at, e));
    h.finalize().into()
}

/// Why a chain failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("event {seq}: sequence gap (expected {expected})")]
    Gap { seq: i64, expected: i64 },
    #[error("event {seq}: prev_hash does not match the hash of event {prev_seq}")]
    BrokenLink { seq: i64, prev_seq: i64 },
    #[error("event {seq}: content does not match its hash (altered)")]
    Altered { seq: i64 },
    #[error("chain head says {head_seq} events but the log ends at {last_seq}")]
    HeadMismatch { head_seq: i64, last_seq: i64 },
}

/// Walks events in order and checks every link.
pub struct ChainVerifier {
    prev: [u8; 32],
    expected_seq: i64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier { prev: GENESIS_HASH, expected_seq: 1 }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, e: &Event) -> Result<(), ChainBreak> {
        if e.seq != self.expected_seq {
            return Err(ChainBreak::Gap { seq: e.seq, expected: self.expected_seq });
        }
        if e.prev_hash != hex::encode(self.prev) {
            return Err(ChainBreak::BrokenLink { seq: e.seq, prev_seq: e.seq - 1 });
        }
        let h = chain_hash(&self.prev, e.seq, e.at, &e.body);
        if hex::encode(h) != e.hash {
            return Err(ChainBreak::Altered { seq: e.seq });
        }
        self.prev = h;
        self.expected_seq += 1;
        Ok(())
    }

    /// Number of events checked so far.
    pub fn count(&self) -> i64 {
        self.expected_seq - 1
    }

    pub fn head(&self) -> String {
        hex::encode(self.prev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<Event> {
        let mut prev = GENESIS_HASH;
        (1..=n)
            .map(|seq| {
                let mut body = NewEvent::new("document.upload", "ok");
                body.document_id = Some(Uuid::new_v4());
                body.details = serde_json::json!({"size": seq * 10, "a": 1});
                let h = chain_hash(&prev, seq, 1000 + seq, &body);
                let e = Event { seq, at: 1000 + seq, body, prev_hash: hex::encode(prev), hash: hex::encode(h) };
                prev = h;
                e
            })
            .collect()
    }

    fn verify(events: &[Event]) -> Result<i64, ChainBreak> {
        let mut v = ChainVerifier::default();
        for e in events {
            v.check(e)?;
        }
        Ok(v.count())
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(5));
        assert_eq!(verify(&[]), Ok(0));
    }

    #[test]
    fn every_kind_of_tampering_names_the_event() {
        let c = chain(5);
        let mut altered = c.clone();
        altered[2].body.outcome = "denied".into();
        assert_eq!(verify(&altered), Err(ChainBreak::Altered { seq: 3 }));

        let mut altered = c.clone();
        altered[1].body.details = serde_json::json!({"size": 999, "a": 1});
        assert_eq!(verify(&altered), Err(ChainBreak::Altered { seq: 2 }));

        let mut removed = c.clone();
        removed.remove(3);
        assert_eq!(verify(&removed), Err(ChainBreak::Gap { seq: 5, expected: 4 }));

        // Removing and renumbering still breaks the link.
        let mut renumbered = c.clone();
        renumbered.remove(1);
        for e in renumbered.iter_mut().skip(1) {
            e.seq -= 1;
        }
        assert_eq!(verify(&renumbered), Err(ChainBreak::BrokenLink { seq: 2, prev_seq: 1 }));

        // A recomputed hash on an altered event breaks the next link.
        let mut rehashed = c.clone();
        rehashed[1].body.action = "x".into();
        let prev: [u8; 32] = hex::decode(&rehashed[1].prev_hash).unwrap().try_into().unwrap();
        rehashed[1].hash = hex::encode(chain_hash(&prev, 2, rehashed[1].at, &rehashed[1].body));
        assert_eq!(verify(&rehashed), Err(ChainBreak::BrokenLink { seq: 3, prev_seq: 2 }));
    }

    #[test]
    fn encoding_separates_fields() {
        // "ab" + "c" must not hash like "a" + "bc".
        let mut a = NewEvent::new("ab", "c");
        let b = NewEvent::new("a", "bc");
        assert_ne!(canonical(1, 1, &a), canonical(1, 1, &b));
        a.reason = Some(String::new());
        assert_ne!(canonical(1, 1, &a), canonical(1, 1, &NewEvent::new("ab", "c")));
        // Key order in details does not matter.
        let x = serde_json::json!({"b": 1, "a": 2});
        let y: serde_json::Value = serde_json::from_str(r#"{"a":2,"b":1}"#).unwrap();
        assert_eq!(details_text(&x), details_text(&y));
    }
}
