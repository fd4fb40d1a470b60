//! Credentials: Argon2id password hashes, TOTP (RFC 6238), and the random
//! bearer tokens of sessions and downloads (stored only as SHA-256 hashes).
//!
//! Invariants: passwords, TOTP secrets and tokens are never stored, logged or
//! echoed; what is kept are their hashes (tokens, passwords) or their sealed
//! form (TOTP secrets). Password hashing is CPU- and memory-heavy (19 MiB per
//! check): the vault bounds how many run at once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// TOTP parameters: the common authenticator defaults (SHA-1, 6 digits,
/// 30 s), accepting one step of clock skew either way.
pub const TOTP_DIGITS: usize = 6;
pub const TOTP_STEP: u64 = 30;
pub const TOTP_SKEW: u8 = 1;
pub const TOTP_ISSUER: &str = "Kluis";

/// Minimum password length (SPEC §6).
pub const MIN_PASSWORD_LEN: usize = 12;

/// A random 256-bit token, URL-safe base64 (43 characters).
pub fn new_token() -> String {
    let mut b = Zeroizing::new([0u8; 32]);
    crate::crypto::fill_random(b.as_mut());
    URL_SAFE_NO_PAD.encode(b.as_ref())
}

/// What is stored for a token: hex SHA-256. Lookups go by this hash, so the
/// comparison happens inside the database index on a value an attacker
/// cannot steer byte by byte.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Hash a password with Argon2id (default parameters: 19 MiB, 2 passes).
/// CPU-heavy: call from `spawn_blocking`.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    argon2::Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Verify a password against a stored PHC string (constant-time inside
/// argon2). CPU-heavy: call from `spawn_blocking`.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

/// Constant-time equality of two byte strings (for secrets compared outside
/// the database).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A PHC string for a password nobody knows: verified against when the user
/// does not exist, so that a wrong username costs as much time as a wrong
/// password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&new_token()).unwrap_or_default())
}

/// A fresh TOTP secret (160 bits, the RFC 4226 recommendation).
pub fn new_totp_secret() -> Zeroizing<Vec<u8>> {
    let mut s = Zeroizing::new(vec![0u8; 20]);
    crate::crypto::fill_random(&mut s);
    s
}

fn totp(secret: &[u8], account: &str) -> Result<totp_rs::Totp, String> {
    totp_rs::Builder::new()
        .with_digits(TOTP_DIGITS as u8)
        .with_skew(TOTP_SKEW as u16)
        .with_step_duration(TOTP_STEP)
        .with_secret(secret.to_vec())
        .with_account_name(account)
        .with_issuer(Some(TOTP_ISSUER))
        .build()
        .map_err(|e| e.to_string())
}

/// Base32 secret and `otpauth://` URL for an authenticator app.
pub fn totp_enrolment(secret: &[u8], username: &str) -> Result<(String, String), String> {
    let t = totp(secret, username)?;
    Ok((t.secret().to_base32(), t.to_url().map_err(|e| e.to_string())?))
}

/// Check a code at `unix_secs`; the matching time step if it is valid.
/// Accepting a step only once is the caller's job (the catalog's
/// `record_login_success`).
pub fn check_totp(secret: &[u8], code: &str, unix_secs: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != TOTP_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret, "check").ok()?.check(code, unix_secs)
}

/// The code for `unix_secs` (tests and tools).
#[doc(hidden)]
pub fn totp_code(secret: &[u8], unix_secs: u64) -> Option<String> {
    Some(totp(secret, "check").ok()?.generate(unix_secs).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_token());
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }

    #[test]
    fn passwords() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a hash"));
        assert!(!verify_password("", dummy_hash()));
    }

    #[test]
    fn totp_accepts_current_and_adjacent_steps_only() {
        let s = new_totp_secret();
        let t = 1_800_000_000u64;
        let code = totp_code(&s, t).unwrap();
        assert_eq!(check_totp(&s, &code, t), Some(t / 30));
        assert!(check_totp(&s, &code, t + 30).is_some(), "one step of skew");
        assert!(check_totp(&s, &code, t + 90).is_none());
        assert!(check_totp(&s, "12345", t).is_none());
        assert!(check_totp(&s, "abcdef", t).is_none());
        let (b32, url) = totp_enrolment(&s, "anna").unwrap();
        assert!(url.starts_with("otpauth://totp/Kluis:anna?"), "{url}");
        assert!(url.contains(&b32));
    }
}
