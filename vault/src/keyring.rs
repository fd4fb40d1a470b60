//! The master keys (key-encryption keys) and everything they wrap.
//!
//! A [`Keyring`] holds one or more numbered master-key versions. New wraps
//! always use the highest version; older versions stay readable until
//! `kluis rekey` has re-wrapped everything under the newest one and the old
//! version is retired.
//!
//! Sources, in order of precedence:
//! - `KLUIS_MASTER_KEY`: one base64 key (version 1), or a comma-separated list
//!   `1:BASE64,2:BASE64`; read-only (rotation means editing the variable);
//! - `KLUIS_MASTER_KEY_FILE` (default `$KLUIS_DATA_DIR/master.key`): one
//!   `VERSION:BASE64` line per version, mode 0600; `kluis rekey` appends to it.
//!
//! Wrapped data key (stored only in the catalog, never beside the object):
//! `nonce (12) || AES-256-GCM(master, dek) (32) || tag (16)`, with associated
//! data `"kluis/dek/v1" || document id (16) || version (u32 BE)`: a wrapped key
//! cannot be moved to another document or relabelled with another version.
//! Sealed fields (BSN, TOTP secrets) use the same layout with associated data
//! `"kluis/field/v1/" || field name || 0x00 || record id (16) || version (u32 BE)`.
//!
//! Invariant: key material never appears in `Debug`, `Display` or errors.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{DataKey, fill_random};

/// Length of a wrapped data key or of the overhead of a sealed field.
pub const WRAP_NONCE_LEN: usize = 12;
pub const WRAPPED_KEY_LEN: usize = WRAP_NONCE_LEN + 32 + 16;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("master key file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("master key file {path} already exists")]
    AlreadyExists { path: PathBuf },
    #[error("malformed master key ({where_}): {what}")]
    Malformed { where_: String, what: &'static str },
    #[error("master key version {0} is not in the keyring")]
    UnknownVersion(u32),
    #[error("cannot unwrap {what}: wrong master key or tampered catalog row")]
    Unwrap { what: String },
    #[error(
        "the master keys come from KLUIS_MASTER_KEY and cannot be changed by Kluis: \
         add version {next} to it (\"1:...,{next}:...\") and run again"
    )]
    EnvironmentKeys { next: u32 },
    #[error("the keyring must keep at least one version")]
    LastVersion,
}

/// Where the keys came from, which decides whether Kluis may add versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment,
    File(PathBuf),
}

/// A data key wrapped by one master-key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub version: u32,
    pub bytes: Vec<u8>,
}

#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<u32, Zeroizing<[u8; 32]>>,
    source: KeySource,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .field("source", &self.source)
            .finish()
    }
}

fn parse_keys(text: &str, where_: &str, allow_bare: bool) -> Result<BTreeMap<u32, Zeroizing<[u8; 32]>>, KeyError> {
    let bad = |what| KeyError::Malformed { where_: where_.to_string(), what };
    let mut keys = BTreeMap::new();
    let entries: Vec<&str> =
        text.split(['\n', ',']).map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    for entry in &entries {
        let (version, b64) = match entry.split_once(':') {
            Some((v, k)) => (v.trim().parse::<u32>().map_err(|_| bad("version is not a number"))?, k.trim()),
            None if allow_bare && entries.len() == 1 => (1, *entry),
            None => return Err(bad("expected VERSION:BASE64")),
        };
        if version == 0 {
            return Err(bad("versions start at 1"));
        }
        let raw = Zeroizing::new(B64.decode(b64).map_err(|_| bad("not valid base64"))?);
        let arr: [u8; 32] = raw.as_slice().try_into().map_err(|_| bad("a key must be exactly 32 bytes"))?;
        if keys.insert(version, Zeroizing::new(arr)).is_some() {
            return Err(bad("a version appears twice"));
        }
    }
    if keys.is_empty() {
        return Err(bad("no key"));
    }
    Ok(keys)
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.to_path_buf(), source }
}

impl Keyring {
    /// Keys from the value of `KLUIS_MASTER_KEY`.
    pub fn from_env_value(value: &str) -> Result<Self, KeyError> {
        Ok(Keyring { keys: parse_keys(value, "KLUIS_MASTER_KEY", true)?, source: KeySource::Environment })
    }

    /// Keys from a key file.
    pub fn load_file(path: &Path) -> Result<Self, KeyError> {
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_err(path))?);
        let keys = parse_keys(&text, &path.display().to_string(), false)?;
        Ok(Keyring { keys, source: KeySource::File(path.to_path_buf()) })
    }

    /// A new key file holding one fresh version-1 key, created with mode 0600.
    /// Exclusive: the complete file appears at `path` in one step (a hard
    /// link of a finished temporary file), and only if nothing is there yet,
    /// so two processes starting on an empty data directory cannot end up
    /// with different keys: the loser gets `AlreadyExists` and loads the
    /// winner's file.
    pub fn create_file(path: &Path) -> Result<Self, KeyError> {
        if path.exists() {
            return Err(KeyError::AlreadyExists { path: path.to_path_buf() });
        }
        let mut keys = BTreeMap::new();
        keys.insert(1, random_key());
        let ring = Keyring { keys, source: KeySource::File(path.to_path_buf()) };
        ring.persist_with(Persist::CreateNew)?;
        Ok(ring)
    }

    /// An in-memory keyring (tests, tools).
    pub fn ephemeral(versions: &[u32]) -> Self {
        let keys = versions.iter().map(|v| (*v, random_key())).collect();
        Keyring { keys, source: KeySource::Environment }
    }

    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// The version every new wrap uses: the highest one.
    pub fn current_version(&self) -> u32 {
        *self.keys.keys().next_back().expect("a keyring is never empty")
    }

    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    pub fn has_version(&self, version: u32) -> bool {
        self.keys.contains_key(&version)
    }

    /// A public check value of one version, recorded in the catalog so that a
    /// wrong master key is recognised at start-up, before anything is written.
    pub fn check_value(&self, version: u32) -> Result<String, KeyError> {
        let key = self.key(version)?;
        let mut h = Sha256::new();
        h.update(b"kluis/kcv/v1\0");
        h.update(key.as_slice());
        Ok(hex::encode(&h.finalize()[..16]))
    }

    /// A keyed hash of a login name, for the lock-out table: the same name
    /// gives the same value as long as the oldest key version stays, and the
    /// stored value tells nothing about the name without the master key (a
    /// password typed into the name field must not become readable).
    pub fn name_key(&self, name: &str) -> String {
        let mut h = Sha256::new();
        h.update(b"kluis/login-name/v1\0");
        if let Some(k) = self.keys.values().next() {
            h.update(k.as_slice());
        }
        h.update(name.as_bytes());
        hex::encode(h.finalize())
    }

    fn key(&self, version: u32) -> Result<&Zeroizing<[u8; 32]>, KeyError> {
        self.keys.get(&version).ok_or(KeyError::UnknownVersion(version))
    }

    fn seal(&self, version: u32, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, KeyError> {
        let cipher = Aes256Gcm::new((&**self.key(version)?).into());
        let mut nonce = [0u8; WRAP_NONCE_LEN];
        fill_random(&mut nonce);
        let ct = cipher
            .encrypt(&nonce.into(), Payload { msg: plaintext, aad })
            .map_err(|_| KeyError::Unwrap { what: "sealing".into() })?;
        let mut out = Vec::with_capacity(WRAP_NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open(
        &self,
        version: u32,
        aad: &[u8],
        sealed: &[u8],
        what: impl Fn() -> String,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let cipher = Aes256Gcm::new((&**self.key(version)?).into());
        if sealed.len() < WRAP_NONCE_LEN + 16 {
            return Err(KeyError::Unwrap { what: what() });
        }
        let (nonce, ct) = sealed.split_at(WRAP_NONCE_LEN);
        let nonce: [u8; WRAP_NONCE_LEN] = nonce.try_into().map_err(|_| KeyError::Unwrap { what: what() })?;
        cipher
            .decrypt(&nonce.into(), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| KeyError::Unwrap { what: what() })
    }

    fn dek_aad(document_id: Uuid, version: u32) -> Vec<u8> {
        let mut aad = b"kluis/dek/v1".to_vec();
        aad.extend_from_slice(document_id.as_bytes());
        aad.extend_from_slice(&version.to_be_bytes());
        aad
    }

    fn field_aad(field: &str, record_id: Uuid, version: u32) -> Vec<u8> {
        let mut aad = b"kluis/field/v1/".to_vec();
        aad.extend_from_slice(field.as_bytes());
        aad.push(0);
        aad.extend_from_slice(record_id.as_bytes());
        aad.extend_from_slice(&version.to_be_bytes());
        aad
    }

    /// Wrap a document's data key under the current version.
    pub fn wrap_data_key(&self, document_id: Uuid, key: &DataKey) -> Result<WrappedKey, KeyError> {
        self.wrap_data_key_with(self.current_version(), document_id, key)
    }

    pub fn wrap_data_key_with(&self, version: u32, document_id: Uuid, key: &DataKey) -> Result<WrappedKey, KeyError> {
        let bytes = self.seal(version, &Self::dek_aad(document_id, version), key.as_bytes())?;
        Ok(WrappedKey { version, bytes })
    }

    pub fn unwrap_data_key(&self, document_id: Uuid, wrapped: &WrappedKey) -> Result<DataKey, KeyError> {
        let what = || format!("the data key of document {document_id}");
        let raw = self.open(wrapped.version, &Self::dek_aad(document_id, wrapped.version), &wrapped.bytes, what)?;
        DataKey::from_slice(&raw).ok_or_else(|| KeyError::Unwrap { what: what() })
    }

    /// Encrypt a small secret field (a BSN, a TOTP secret) of one record.
    pub fn seal_field(&self, field: &str, record_id: Uuid, plaintext: &[u8]) -> Result<WrappedKey, KeyError> {
        self.seal_field_with(self.current_version(), field, record_id, plaintext)
    }

    pub fn seal_field_with(
        &self,
        version: u32,
        field: &str,
        record_id: Uuid,
        plaintext: &[u8],
    ) -> Result<WrappedKey, KeyError> {
        let bytes = self.seal(version, &Self::field_aad(field, record_id, version), plaintext)?;
        Ok(WrappedKey { version, bytes })
    }

    pub fn open_field(
        &self,
        field: &str,
        record_id: Uuid,
        sealed: &WrappedKey,
    ) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let what = || format!("field {field} of record {record_id}");
        self.open(sealed.version, &Self::field_aad(field, record_id, sealed.version), &sealed.bytes, what)
    }

    /// Add a fresh version (the new current one) and persist the key file.
    /// Keys from the environment cannot be changed this way.
    pub fn add_version(&mut self) -> Result<u32, KeyError> {
        let next = self.current_version() + 1;
        if self.source == KeySource::Environment {
            return Err(KeyError::EnvironmentKeys { next });
        }
        self.keys.insert(next, random_key());
        if let Err(e) = self.persist() {
            self.keys.remove(&next);
            return Err(e);
        }
        Ok(next)
    }

    /// Remove a retired version from the key file.
    pub fn remove_version(&mut self, version: u32) -> Result<(), KeyError> {
        if !self.keys.contains_key(&version) {
            return Err(KeyError::UnknownVersion(version));
        }
        if self.keys.len() == 1 {
            return Err(KeyError::LastVersion);
        }
        if self.source == KeySource::Environment {
            self.keys.remove(&version);
            return Ok(());
        }
        let old = self.keys.remove(&version);
        if let Err(e) = self.persist() {
            if let Some(k) = old {
                self.keys.insert(version, k);
            }
            return Err(e);
        }
        Ok(())
    }

    fn persist(&self) -> Result<(), KeyError> {
        self.persist_with(Persist::Replace)
    }

    /// Write the key file atomically: a 0600 temporary file in the same
    /// directory, fsync, then rename it over the old one (`Replace`) or link
    /// it into place only if no file exists (`CreateNew`), fsync the directory.
    fn persist_with(&self, how: Persist) -> Result<(), KeyError> {
        let KeySource::File(path) = &self.source else { return Ok(()) };
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        // A name of its own per process and attempt: two writers never share
        // a temporary file.
        let mut nonce = [0u8; 8];
        crate::crypto::fill_random(&mut nonce);
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("master.key"),
            hex::encode(nonce)
        ));
        let mut text = Zeroizing::new(String::from(
            "# Kluis master keys (VERSION:BASE64). Secret: whoever holds this file and\n\
             # the database can read every document. Back it up separately; keep it\n\
             # outside the data directory in production.\n",
        ));
        for (v, k) in &self.keys {
            text.push_str(&format!("{v}:{}\n", B64.encode(k.as_slice())));
        }
        {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(io_err(&tmp))?;
            }
            f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        match how {
            Persist::Replace => std::fs::rename(&tmp, path).map_err(io_err(path))?,
            Persist::CreateNew => {
                let linked = std::fs::hard_link(&tmp, path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(KeyError::AlreadyExists { path: path.to_path_buf() });
                    }
                    Err(e) => return Err(io_err(path)(e)),
                }
            }
        }
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persist {
    Replace,
    CreateNew,
}

fn random_key() -> Zeroizing<[u8; 32]> {
    let mut k = Zeroizing::new([0u8; 32]);
    fill_random(k.as_mut());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trip_and_binding() {
        let ring = Keyring::ephemeral(&[1, 2]);
        assert_eq!(ring.current_version(), 2);
        let doc = Uuid::new_v4();
        let dek = DataKey::generate();
        let w = ring.wrap_data_key(doc, &dek).unwrap();
        assert_eq!(w.version, 2);
        assert_eq!(w.bytes.len(), WRAPPED_KEY_LEN);
        assert_eq!(ring.unwrap_data_key(doc, &w).unwrap().as_bytes(), dek.as_bytes());
        // Bound to the document id.
        assert!(matches!(ring.unwrap_data_key(Uuid::new_v4(), &w), Err(KeyError::Unwrap { .. })));
        // Bound to the version: relabelling fails even though version 1 exists.
        let relabelled = WrappedKey { version: 1, bytes: w.bytes.clone() };
        assert!(matches!(ring.unwrap_data_key(doc, &relabelled), Err(KeyError::Unwrap { .. })));
        // A flipped bit fails.
        let mut flipped = w.clone();
        flipped.bytes[20] ^= 1;
        assert!(matches!(ring.unwrap_data_key(doc, &flipped), Err(KeyError::Unwrap { .. })));
        // Another master key fails.
        let other = Keyring::ephemeral(&[1, 2]);
        assert!(matches!(other.unwrap_data_key(doc, &w), Err(KeyError::Unwrap { .. })));
        assert!(matches!(Keyring::ephemeral(&[1]).unwrap_data_key(doc, &w), Err(KeyError::UnknownVersion(2))));
    }

    #[test]
    fn fields_are_bound_to_name_and_record() {
        let ring = Keyring::ephemeral(&[1]);
        let id = Uuid::new_v4();
        let s = ring.seal_field("bsn", id, b"111222333").unwrap();
        assert_eq!(ring.open_field("bsn", id, &s).unwrap().as_slice(), b"111222333");
        assert!(ring.open_field("totp", id, &s).is_err());
        assert!(ring.open_field("bsn", Uuid::new_v4(), &s).is_err());
    }

    #[test]
    fn env_value_forms() {
        let k1 = B64.encode([1u8; 32]);
        let k2 = B64.encode([2u8; 32]);
        assert_eq!(Keyring::from_env_value(&k1).unwrap().versions(), vec![1]);
        let ring = Keyring::from_env_value(&format!("1:{k1}, 3:{k2}")).unwrap();
        assert_eq!(ring.versions(), vec![1, 3]);
        assert_eq!(ring.current_version(), 3);
        for bad in ["", "abc", "1:abc", &format!("0:{k1}"), &format!("1:{k1},1:{k2}"), &B64.encode([0u8; 31])] {
            let err = Keyring::from_env_value(bad).unwrap_err();
            assert!(matches!(err, KeyError::Malformed { .. }), "{bad}: {err}");
            // The message never echoes the input.
            assert!(bad.len() < 8 || !err.to_string().contains(bad));
        }
        let mut ring = Keyring::from_env_value(&k1).unwrap();
        assert!(matches!(ring.add_version(), Err(KeyError::EnvironmentKeys { next: 2 })));
    }

    #[test]
    fn key_file_create_add_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let mut ring = Keyring::create_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(matches!(Keyring::create_file(&path), Err(KeyError::AlreadyExists { .. })));
        let doc = Uuid::new_v4();
        let w1 = ring.wrap_data_key(doc, &DataKey::generate()).unwrap();
        assert_eq!(ring.add_version().unwrap(), 2);
        let reloaded = Keyring::load_file(&path).unwrap();
        assert_eq!(reloaded.versions(), vec![1, 2]);
        assert_eq!(reloaded.check_value(1).unwrap(), ring.check_value(1).unwrap());
        assert!(reloaded.unwrap_data_key(doc, &w1).is_ok());
        ring.remove_version(1).unwrap();
        assert_eq!(Keyring::load_file(&path).unwrap().versions(), vec![2]);
        assert!(matches!(ring.remove_version(2), Err(KeyError::LastVersion)));
    }
}
