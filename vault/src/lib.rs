//! Kluis vault core.
//!
//! [`Vault`] ties the parts together: the [`catalog::Catalog`] (source of
//! truth), the [`store::BlobStore`] (ciphertext only), the
//! [`keyring::Keyring`] (master keys) and the streaming [`crypto`]. See
//! `ARCHITECTURE.md` for the map and `FORMAT.md` for the object format.
//!
//! Invariants kept here:
//! - a document row exists (as `pending`) before its object is written, so an
//!   interrupted upload can always be found and cleaned up;
//! - a document becomes `active` only after its object is completely and
//!   durably stored;
//! - destroying a document drops its wrapped data key first (crypto-shredding),
//!   then the object: once the first step committed, nothing can decrypt it.

pub mod audit;
pub mod catalog;
pub mod crypto;
pub mod domain;
pub mod keyring;
pub mod policy;
pub mod rekey;
pub mod store;

use std::path::PathBuf;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use catalog::{Catalog, CatalogError, DocumentRow, DocumentState, NewDocumentRow};
use crypto::{CryptoError, DataKey};
use keyring::{KeyError, Keyring};
use store::{BlobStore, ObjectName, S3Settings, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(
        "wrong master key: version {version} does not match the key this catalog was written with \
         (check KLUIS_MASTER_KEY / KLUIS_MASTER_KEY_FILE)"
    )]
    WrongMasterKey { version: u32 },
    #[error("master key version {version} is still in use by the catalog but missing from the keyring")]
    MissingKeyVersion { version: u32 },
    #[error(
        "master key file {path} is missing, but the catalog already holds data under {versions} key version(s); \
         restore the key file (or set KLUIS_MASTER_KEY) instead of starting with a new key"
    )]
    MissingKeyFile { path: PathBuf, versions: usize },
    #[error("document {0} not found")]
    NotFound(Uuid),
    #[error("document {0} has been destroyed")]
    Gone(Uuid),
    #[error("document {0} is under a legal hold and cannot be destroyed")]
    Held(Uuid),
    #[error("key version {version} cannot be retired: {why}")]
    CannotRetire { version: u32, why: String },
    #[error("interrupted on request (fault injection)")]
    Interrupted,
}

/// Where the master keys come from.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// The value of `KLUIS_MASTER_KEY`.
    Env(String),
    /// A key file; created (mode 0600) when missing and the catalog is new,
    /// if `create_if_missing`.
    File { path: PathBuf, create_if_missing: bool },
}

#[derive(Debug, Clone)]
pub struct VaultConfig {
    pub database_url: String,
    pub storage_url: String,
    pub s3: S3Settings,
    pub master_key: MasterKeySource,
}

/// What the caller says about a new document; the vault adds the rest.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub client_id: Uuid,
    pub doc_type: String,
    pub title: Option<String>,
    pub filename: String,
    pub content_type: String,
    pub uploaded_by: Option<Uuid>,
    pub retention_until: Option<i64>,
}

pub struct Vault {
    pub catalog: Catalog,
    pub store: BlobStore,
    /// Behind a lock so a running server can pick up versions that
    /// `kluis rekey` added to the key file (see [`Vault::reload_keyring`]).
    keyring: std::sync::RwLock<std::sync::Arc<Keyring>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("catalog", &self.catalog).field("store", &self.store).finish()
    }
}

/// A plaintext stream of a document; every item is authenticated.
pub type PlainStream = BoxStream<'static, Result<Bytes, VaultError>>;

impl Vault {
    /// Connect the catalog (running migrations), load and check the master
    /// keys against it, and open the blob store.
    pub async fn open(cfg: &VaultConfig) -> Result<Self, VaultError> {
        let catalog = Catalog::connect(&cfg.database_url).await?;
        let registered = catalog.key_versions().await?;
        let keyring = match &cfg.master_key {
            MasterKeySource::Env(v) => Keyring::from_env_value(v)?,
            MasterKeySource::File { path, create_if_missing } => {
                if path.exists() {
                    Keyring::load_file(path)?
                } else if *create_if_missing && registered.is_empty() {
                    tracing::warn!(
                        path = %path.display(),
                        "created a new master key file; in production keep master keys outside the \
                         data directory (KLUIS_MASTER_KEY_FILE) and back them up separately"
                    );
                    Keyring::create_file(path)?
                } else {
                    return Err(VaultError::MissingKeyFile { path: path.clone(), versions: registered.len() });
                }
            }
        };
        Self::reconcile_keys(&catalog, &keyring).await?;
        let store = BlobStore::open(&cfg.storage_url, &cfg.s3)?;
        Ok(Vault { catalog, store, keyring: std::sync::RwLock::new(std::sync::Arc::new(keyring)) })
    }

    /// Assemble a vault from parts (unit tests with `memory://`).
    pub async fn from_parts(catalog: Catalog, store: BlobStore, keyring: Keyring) -> Result<Self, VaultError> {
        Self::reconcile_keys(&catalog, &keyring).await?;
        Ok(Vault { catalog, store, keyring: std::sync::RwLock::new(std::sync::Arc::new(keyring)) })
    }

    /// Every active version the catalog knows must be in the keyring with
    /// the same check value; keyring versions the catalog does not know yet
    /// are registered.
    async fn reconcile_keys(catalog: &Catalog, keyring: &Keyring) -> Result<(), VaultError> {
        let registered = catalog.key_versions().await?;
        for row in &registered {
            if keyring.has_version(row.version) {
                if keyring.check_value(row.version)? != row.check_value {
                    return Err(VaultError::WrongMasterKey { version: row.version });
                }
            } else if !row.retired {
                return Err(VaultError::MissingKeyVersion { version: row.version });
            }
        }
        for v in keyring.versions() {
            if !registered.iter().any(|r| r.version == v) {
                catalog.register_key_version(v, &keyring.check_value(v)?).await?;
                tracing::info!(version = v, "registered master key version");
            }
        }
        Ok(())
    }

    /// The master keys as of now.
    pub fn keyring(&self) -> std::sync::Arc<Keyring> {
        self.keyring.read().map(|g| g.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    pub(crate) fn keyring_mut(&mut self) -> &mut Keyring {
        let arc = self.keyring.get_mut().unwrap_or_else(|p| p.into_inner());
        std::sync::Arc::make_mut(arc)
    }

    /// Re-read the key file, after meeting a key version this process does
    /// not know (another process ran `kluis rekey`). Versions already loaded
    /// must be unchanged in the file. Returns whether anything was reloaded.
    pub fn reload_keyring(&self) -> Result<bool, VaultError> {
        let current = self.keyring();
        let keyring::KeySource::File(path) = current.source() else { return Ok(false) };
        let fresh = Keyring::load_file(path)?;
        for v in current.versions() {
            if fresh.has_version(v) && fresh.check_value(v)? != current.check_value(v)? {
                return Err(VaultError::WrongMasterKey { version: v });
            }
        }
        tracing::info!(versions = ?fresh.versions(), "reloaded the master key file");
        if let Ok(mut g) = self.keyring.write() {
            *g = std::sync::Arc::new(fresh);
        }
        Ok(true)
    }

    /// Run `f` with the keyring; on an unknown key version, reload the key
    /// file once and try again.
    fn with_keys<T>(&self, f: impl Fn(&Keyring) -> Result<T, KeyError>) -> Result<T, VaultError> {
        match f(&self.keyring()) {
            Err(KeyError::UnknownVersion(_)) if self.reload_keyring()? => Ok(f(&self.keyring())?),
            r => Ok(r?),
        }
    }

    /// Encrypt and store a new document, streaming: the body is never held
    /// whole in memory. On any failure the object and the row are removed
    /// and the error returned.
    pub async fn put_document<S, E>(&self, meta: NewDocument, body: S) -> Result<DocumentRow, VaultError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let id = Uuid::new_v4();
        let key = DataKey::generate();
        let wrapped = self.keyring().wrap_data_key(id, &key)?;
        let name = ObjectName::random();
        self.catalog
            .insert_pending_document(&NewDocumentRow {
                id,
                client_id: meta.client_id,
                doc_type: meta.doc_type,
                title: meta.title,
                filename: meta.filename,
                content_type: meta.content_type,
                object_name: name.as_str().to_string(),
                wrapped_key: wrapped,
                uploaded_by: meta.uploaded_by,
                retention_until: meta.retention_until,
            })
            .await?;

        // SHA-256 of the plaintext runs on its own thread, beside the
        // encryption: each chunk (a cheap `Bytes` clone) goes to the hasher.
        let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let hasher = tokio::task::spawn_blocking(move || {
            let (mut h, mut n) = (Sha256::new(), 0u64);
            while let Some(chunk) = hash_rx.blocking_recv() {
                h.update(&chunk);
                n += chunk.len() as u64;
            }
            (hex::encode(h.finalize()), n)
        });
        type BoxError = Box<dyn std::error::Error + Send + Sync>;
        let counted = body.map(|r| r.map_err(Into::<BoxError>::into)).then(move |item| {
            let tx = hash_tx.clone();
            async move {
                if let Ok(chunk) = &item {
                    let _ = tx.send(chunk.clone()).await;
                }
                item
            }
        });
        let sealed = crypto::encrypt_stream(&key, id, counted);
        drop(key);

        let stored = self.store.put_stream(&name, sealed).await;
        if let Err(e) = stored {
            self.discard(id, &name).await;
            return Err(e.into());
        }
        let (sha, size) = hasher.await.map_err(|_| VaultError::Interrupted)?;
        if let Err(e) = self.catalog.activate_document(id, size as i64, &sha).await {
            self.discard(id, &name).await;
            return Err(e.into());
        }
        Ok(self.catalog.get_document(id).await?)
    }

    /// Best-effort removal of a failed upload; what is left is swept later
    /// by [`Vault::sweep_pending`].
    async fn discard(&self, id: Uuid, name: &ObjectName) {
        if let Err(e) = self.store.delete(name).await {
            tracing::warn!(document = %id, error = %e, "could not delete the object of a failed upload");
        }
        if let Err(e) = self.catalog.delete_pending_document(id).await {
            tracing::warn!(document = %id, error = %e, "could not delete the row of a failed upload");
        }
    }

    /// The document's row and a stream of its decrypted content.
    pub async fn read_document(&self, id: Uuid) -> Result<(DocumentRow, PlainStream), VaultError> {
        let row = match self.catalog.get_document(id).await {
            Err(CatalogError::NotFound(_)) => return Err(VaultError::NotFound(id)),
            r => r?,
        };
        let plain = self.open_document(&row).await?;
        Ok((row, plain))
    }

    /// The decrypted content of a document whose row the caller already has.
    pub async fn open_document(&self, row: &DocumentRow) -> Result<PlainStream, VaultError> {
        let id = row.id;
        match row.state {
            DocumentState::Active => {}
            DocumentState::Pending => return Err(VaultError::NotFound(id)),
            DocumentState::Destroyed => return Err(VaultError::Gone(id)),
        }
        let wrapped = row.wrapped_key.as_ref().ok_or(VaultError::Gone(id))?;
        let key = self.with_keys(|k| k.unwrap_data_key(id, wrapped))?;
        let name = ObjectName::from_catalog(row.object_name.clone());
        let raw = self.store.get_stream(&name).await?;
        Ok(crypto::decrypt_stream(&key, id, raw).map(|r| r.map_err(VaultError::from)).boxed())
    }

    /// Destroy a document: data key first (crypto-shredding), then the
    /// object. Safe to call again after a crash between the two steps.
    /// Refused with [`VaultError::Held`] while a legal hold is set.
    pub async fn destroy_document(&self, id: Uuid, by: &str) -> Result<(), VaultError> {
        let row = match self.catalog.get_document(id).await {
            Err(CatalogError::NotFound(_)) => return Err(VaultError::NotFound(id)),
            r => r?,
        };
        if self.catalog.destroy_document(id, by).await? == catalog::Destroyed::Held {
            return Err(VaultError::Held(id));
        }
        self.store.delete(&ObjectName::from_catalog(row.object_name)).await?;
        Ok(())
    }

    /// Remove uploads that never completed: pending rows older than
    /// `older_than` and their (partial) objects. Returns how many.
    pub async fn sweep_pending(&self, older_than: std::time::Duration) -> Result<usize, VaultError> {
        let cutoff = catalog::now_micros() - older_than.as_micros() as i64;
        let rows = self.catalog.pending_documents_before(cutoff).await?;
        for row in &rows {
            self.store.delete(&ObjectName::from_catalog(row.object_name.clone())).await?;
            self.catalog.delete_pending_document(row.id).await?;
        }
        Ok(rows.len())
    }

    /// Seal a BSN (or another small secret field) for storage.
    pub fn seal_field(
        &self,
        field: &str,
        record_id: Uuid,
        plaintext: &[u8],
    ) -> Result<keyring::WrappedKey, VaultError> {
        Ok(self.keyring().seal_field(field, record_id, plaintext)?)
    }

    pub fn open_field(
        &self,
        field: &str,
        record_id: Uuid,
        sealed: &keyring::WrappedKey,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, VaultError> {
        self.with_keys(|k| k.open_field(field, record_id, sealed))
    }
}
