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
pub mod block;
pub mod catalog;
pub mod clock;
pub mod credentials;
pub mod crypto;
pub mod domain;
pub mod faults;
pub mod keyring;
pub mod policy;
pub mod rekey;
pub mod search;
pub mod service;
pub mod store;
pub mod zip;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use catalog::{Catalog, CatalogError, DocumentRow, DocumentState, NewDocumentRow, Tx};
use clock::{Clock, SystemClock};
use crypto::{CryptoError, DataKey};
use faults::{FaultPoint, Faults};
use keyring::{KeyError, Keyring};
pub use service::Settings;
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
    #[error(transparent)]
    Index(#[from] indexer::IndexError),
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
    #[error("the upload's content stream failed: {0}")]
    Body(String),
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
    /// A manual destruction date and its reason; `None`: the policy's.
    pub retention_until: Option<i64>,
    pub retention_reason: Option<String>,
    /// Raw test material: listed in an export, never copied into it.
    pub view_only: bool,
    /// The document this one corrects (an active one of the same client).
    pub supersedes: Option<Uuid>,
}

pub struct Vault {
    catalog: Catalog,
    store: BlobStore,
    /// Behind a lock so a running server can pick up versions that
    /// `kluis rekey` added to the key file (see [`Vault::reload_keyring`]).
    keyring: std::sync::RwLock<Arc<Keyring>>,
    clock: Arc<dyn Clock>,
    settings: Settings,
    /// Password hashes computed at once (Argon2id holds 19 MiB each).
    password_checks: Arc<tokio::sync::Semaphore>,
    faults: Faults,
    /// This node's search index ([`search`]), if it has one.
    index: Option<Arc<indexer::Index>>,
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
        Self::open_with_clock(cfg, Arc::new(SystemClock)).await
    }

    /// [`Vault::open`] on `clock` from the start (tests: what opening
    /// records, such as a new key version's event, happens at its time).
    pub async fn open_with_clock(cfg: &VaultConfig, clock: Arc<dyn Clock>) -> Result<Self, VaultError> {
        let catalog = Catalog::connect(&cfg.database_url).await?;
        let registered = {
            let mut tx = catalog.snapshot(clock.now().timestamp_micros()).await?;
            tx.key_versions().await?
        };
        let keyring = match &cfg.master_key {
            MasterKeySource::Env(v) => Keyring::from_env_value(v)?,
            MasterKeySource::File { path, create_if_missing } => {
                if path.exists() {
                    Keyring::load_file(path)?
                } else if *create_if_missing && registered.is_empty() {
                    match Keyring::create_file(path) {
                        Ok(k) => {
                            tracing::warn!(
                                path = %path.display(),
                                "created a new master key file; in production keep master keys outside the \
                                 data directory (KLUIS_MASTER_KEY_FILE) and back them up separately"
                            );
                            k
                        }
                        // Another process created it a moment ago: use that one.
                        Err(KeyError::AlreadyExists { .. }) => Keyring::load_file(path)?,
                        Err(e) => return Err(e.into()),
                    }
                } else {
                    return Err(VaultError::MissingKeyFile { path: path.clone(), versions: registered.len() });
                }
            }
        };
        Self::reconcile_keys(&catalog, &keyring, clock.as_ref()).await?;
        let store = BlobStore::open(&cfg.storage_url, &cfg.s3)?;
        Ok(Self::assemble(catalog, store, keyring, clock))
    }

    /// Assemble a vault from parts (unit tests with `memory://`).
    pub async fn from_parts(catalog: Catalog, store: BlobStore, keyring: Keyring) -> Result<Self, VaultError> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Self::reconcile_keys(&catalog, &keyring, clock.as_ref()).await?;
        Ok(Self::assemble(catalog, store, keyring, clock))
    }

    fn assemble(catalog: Catalog, store: BlobStore, keyring: Keyring, clock: Arc<dyn Clock>) -> Self {
        let settings = Settings::default();
        Vault {
            catalog,
            store,
            keyring: std::sync::RwLock::new(Arc::new(keyring)),
            clock,
            password_checks: Arc::new(tokio::sync::Semaphore::new(settings.max_password_checks.max(1))),
            settings,
            faults: Faults::default(),
            index: None,
        }
    }

    /// Use these service settings (token and session lifetimes, lock-out,
    /// concurrent password checks).
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.password_checks = Arc::new(tokio::sync::Semaphore::new(settings.max_password_checks.max(1)));
        self.settings = settings;
        self
    }

    /// Take the time from `clock` (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The fault-injection points (tests).
    #[doc(hidden)]
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The catalog, for the vault's own integration tests and tools that
    /// simulate an attacker with database access. Callers of the vault use
    /// the operations in [`service`].
    #[doc(hidden)]
    pub fn catalog_for_tests(&self) -> &Catalog {
        &self.catalog
    }

    /// The object store, for tests that tamper with stored objects.
    #[doc(hidden)]
    pub fn store_for_tests(&self) -> &BlobStore {
        &self.store
    }

    /// The current time of the vault's clock (the injected one in tests):
    /// what its decisions and codes are checked against.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The current time in microseconds, from the vault's clock.
    pub(crate) fn now_micros(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }

    /// A read-write transaction at the clock's current time.
    pub(crate) async fn tx(&self) -> Result<Tx, CatalogError> {
        let mut tx = self.catalog.begin(self.now_micros()).await?;
        tx.set_now(self.now_micros());
        Ok(tx)
    }

    /// A read-only snapshot at the clock's current time.
    pub(crate) async fn snapshot(&self) -> Result<Tx, CatalogError> {
        self.catalog.snapshot(self.now_micros()).await
    }

    /// Every active version the catalog knows must be in the keyring with
    /// the same check value; keyring versions the catalog does not know yet
    /// are registered.
    async fn reconcile_keys(catalog: &Catalog, keyring: &Keyring, clock: &dyn Clock) -> Result<(), VaultError> {
        let mut tx = catalog.begin(clock.now().timestamp_micros()).await?;
        let registered = tx.key_versions().await?;
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
                // ON CONFLICT DO NOTHING: another process may register the
                // same version at the same moment; its check value is
                // compared below.
                tx.register_key_version(v, &keyring.check_value(v)?).await?;
                let mut e = audit::NewEvent::new("key.register", "ok");
                e.details = serde_json::json!({ "version": v });
                tx.append_audit(&e).await?;
                tracing::info!(version = v, "registered master key version");
            }
        }
        for row in tx.key_versions().await? {
            if keyring.has_version(row.version) && keyring.check_value(row.version)? != row.check_value {
                return Err(VaultError::WrongMasterKey { version: row.version });
            }
        }
        tx.commit().await?;
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

    /// Make sure the keyring knows the newest version the catalog has
    /// registered (another process's `kluis rekey` may have added one to the
    /// key file): new values are always sealed under the newest version.
    pub(crate) async fn refresh_keys(&self, tx: &mut Tx) -> Result<(), VaultError> {
        if let Some(newest) = tx.newest_key_version().await?
            && newest > self.keyring().current_version()
        {
            self.reload_keyring()?;
        }
        Ok(())
    }

    /// Seal a BSN (or another small secret field) for storage, under the
    /// newest key version. The transaction that writes it must call
    /// `Tx::ensure_current_key(sealed.version)` after the write.
    pub(crate) async fn seal_field_in(
        &self,
        tx: &mut Tx,
        field: &str,
        record_id: Uuid,
        plaintext: &[u8],
    ) -> Result<keyring::WrappedKey, VaultError> {
        self.refresh_keys(tx).await?;
        Ok(self.keyring().seal_field(field, record_id, plaintext)?)
    }

    pub(crate) fn open_field(
        &self,
        field: &str,
        record_id: Uuid,
        sealed: &keyring::WrappedKey,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, VaultError> {
        self.with_keys(|k| k.open_field(field, record_id, sealed))
    }

    /// Start a document: a `pending` row with a fresh data key, wrapped under
    /// the newest master-key version (the insert is refused if that version
    /// was superseded or retired meanwhile, and tried once more after a
    /// reload).
    pub(crate) async fn begin_document(&self, meta: NewDocument) -> Result<PendingDocument, VaultError> {
        let id = Uuid::new_v4();
        let key = DataKey::generate();
        let name = ObjectName::random();
        let mut attempt = 0;
        loop {
            // No look at the newest version first: the check after the
            // insert refuses a superseded one, and the retry reloads.
            let mut tx = self.tx().await?;
            let wrapped = self.keyring().wrap_data_key(id, &key)?;
            let version = wrapped.version;
            tx.insert_pending_document(&NewDocumentRow {
                id,
                client_id: meta.client_id,
                doc_type: meta.doc_type.clone(),
                title: meta.title.clone(),
                filename: meta.filename.clone(),
                content_type: meta.content_type.clone(),
                object_name: name.as_str().to_string(),
                wrapped_key: wrapped,
                uploaded_by: meta.uploaded_by,
                retention_until: meta.retention_until,
                retention_reason: meta.retention_reason.clone(),
                view_only: meta.view_only,
                supersedes: meta.supersedes,
            })
            .await?;
            match tx.ensure_current_key(version).await {
                Err(CatalogError::StaleKeyVersion { .. }) if attempt == 0 => {
                    attempt += 1;
                    drop(tx);
                    self.reload_keyring()?;
                }
                r => {
                    r?;
                    tx.commit().await?;
                    return Ok(PendingDocument { id, name, key });
                }
            }
        }
    }

    /// Encrypt and store a pending document's content, streaming: the body
    /// is never held whole in memory. Returns the plaintext's SHA-256 (hex)
    /// and size. On failure the object is removed and the row is left for
    /// the caller to discard.
    pub(crate) async fn write_document<S, E>(&self, doc: &PendingDocument, body: S) -> Result<(String, u64), VaultError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        // One pass per plaintext chunk on this task: SHA-256, then the copy
        // into its place in the object, where the segment is sealed in place
        // ([`crypto::Sealer`]). Whole blocks go to the store, which on
        // file:// writes them on a thread of its own, with direct I/O, and
        // gives them back for reuse.
        let mut writer = self.store.writer(&doc.name, BLOCK_CAPACITY).await?;
        let mut sealer = crypto::Sealer::new(&doc.key, doc.id);
        let (mut sha, mut size) = (Hasher::Inline(Sha256::new()), 0u64);
        let mut block = match writer.block().await {
            Ok(b) => b,
            Err(e) => {
                writer.abort().await;
                return Err(e.into());
            }
        };
        let mut body = std::pin::pin!(body);
        let fed: Result<(), VaultError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StoreError::Source(e.into()))?;
                size += chunk.len() as u64;
                let large = size > GROW_AFTER;
                sha.update(&chunk, large).await;
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let took = sealer.absorb(&mut block, rest)?;
                    rest = &rest[took..];
                    if !rest.is_empty() {
                        // The block is full of sealed segments: out it goes.
                        if large {
                            writer.grow(LARGE_BLOCK_CAPACITY);
                        }
                        let mut full = writer.block().await?;
                        std::mem::swap(&mut block, &mut full);
                        writer.put(full, &mut block).await?;
                    }
                }
            }
            sealer.finish(&mut block)?;
            Ok(())
        }
        .await;
        if let Err(e) = fed {
            writer.abort().await;
            return Err(e);
        }
        writer.finish(block).await?;
        Ok((hex::encode(sha.finish().await?), size))
    }

    /// Encrypt and store a new document and activate it, with no policy and
    /// no audit: the engine under [`service`]'s upload, for the vault's own
    /// tests and benchmarks. On any failure the object and the row are
    /// removed and the error returned.
    #[doc(hidden)]
    pub async fn put_document<S, E>(&self, meta: NewDocument, body: S) -> Result<DocumentRow, VaultError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let doc = self.begin_document(meta).await?;
        let (sha, size) = match self.write_document(&doc, body).await {
            Ok(done) => done,
            Err(e) => {
                self.discard(doc.id, &doc.name).await;
                return Err(e);
            }
        };
        let activated = async {
            let mut tx = self.tx().await?;
            tx.activate_document(doc.id, size as i64, &sha).await?;
            tx.commit().await
        }
        .await;
        match activated {
            Ok(()) => Ok(self.snapshot().await?.get_document(doc.id).await?),
            Err(e) => self.resolve_activation(&doc, &e).await.ok_or(e.into()),
        }
    }

    /// What became of a document whose activation failed with `cause`, or
    /// whose commit acknowledgement was lost: `Some(row)` if the row is in
    /// fact active (the upload succeeded, and its audit event committed with
    /// it). Only if the row is certainly still pending are the row and the
    /// object removed. If the catalog cannot tell (it is unreachable),
    /// nothing is deleted: the sweeper decides later, and it only ever
    /// deletes rows that are still pending.
    pub(crate) async fn resolve_activation(
        &self,
        doc: &PendingDocument,
        cause: &(dyn std::fmt::Display + Sync),
    ) -> Option<DocumentRow> {
        let row = async { self.snapshot().await?.document(doc.id).await }.await;
        match row {
            Ok(Some(row)) if row.state == DocumentState::Active => {
                tracing::warn!(document = %doc.id, error = %cause, "activation reported an error but committed");
                Some(row)
            }
            Ok(Some(row)) if row.state == DocumentState::Pending => {
                self.discard(doc.id, &doc.name).await;
                None
            }
            Ok(Some(_)) => None,
            // The row is gone (the sweeper removed a very slow upload): the
            // object belongs to nothing.
            Ok(None) => {
                if let Err(e) = self.store.delete(&doc.name).await {
                    tracing::warn!(document = %doc.id, error = %e, "could not delete the object of a removed upload");
                }
                None
            }
            Err(read) => {
                tracing::warn!(document = %doc.id, error = %cause, read_error = %read,
                    "activation failed and its outcome is unknown; the object is kept for the sweeper");
                None
            }
        }
    }

    /// Remove a failed upload: first the row, only while it is pending, then
    /// (only if that row was removed) the object. An active row's object is
    /// never touched; what cannot be removed now is swept later by
    /// [`Vault::sweep_pending`].
    pub(crate) async fn discard(&self, id: Uuid, name: &ObjectName) {
        let removed = async {
            let mut tx = self.tx().await?;
            let removed = tx.delete_pending_document(id).await?;
            tx.commit().await?;
            Ok::<bool, CatalogError>(removed)
        }
        .await;
        match removed {
            Ok(true) => {
                if let Err(e) = self.store.delete(name).await {
                    tracing::warn!(document = %id, error = %e, "could not delete the object of a failed upload");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(document = %id, error = %e, "could not remove a failed upload; the sweeper will"),
        }
    }

    /// The document's row and a stream of its decrypted content, with no
    /// policy and no audit: the engine, for the vault's own tests and
    /// benchmarks. Callers use `Vault::redeem_download`.
    #[doc(hidden)]
    pub async fn read_document(&self, id: Uuid) -> Result<(DocumentRow, PlainStream), VaultError> {
        let row = match self.snapshot().await?.get_document(id).await {
            Err(CatalogError::NotFound(_)) => return Err(VaultError::NotFound(id)),
            r => r?,
        };
        let plain = self.open_document(&row).await?;
        Ok((row, plain))
    }

    /// The decrypted content of a document whose row the caller already has.
    pub(crate) async fn open_document(&self, row: &DocumentRow) -> Result<PlainStream, VaultError> {
        let id = row.id;
        match row.state {
            DocumentState::Active => {}
            DocumentState::Pending => return Err(VaultError::NotFound(id)),
            DocumentState::Destroyed => return Err(VaultError::Gone(id)),
        }
        let wrapped = row.wrapped_key.as_ref().ok_or(VaultError::Gone(id))?;
        let key = self.with_keys(|k| k.unwrap_data_key(id, wrapped))?;
        let name = ObjectName::from_catalog(row.object_name.clone());
        let size = row.size.and_then(|s| u64::try_from(s).ok());
        if let Some((file, direct)) = self.store.open_local_direct(&name)? {
            return Ok(decrypt_local(file, direct, name.to_string(), key, id));
        }
        // Other stores: opened on the connection's task as the chunks arrive.
        let raw = self.store.get_stream(&name).await?;
        Ok(crypto::decrypt_stream(crypto::Decryptor::with_frames(&key, id, size, DOWNLOAD_FRAMES), raw)
            .map(|r| r.map_err(VaultError::from))
            .boxed())
    }

    /// Destroy a document: data key first (crypto-shredding), then the
    /// object, through the purge's queue (a second call, or a crash between
    /// the two steps, leaves the object to the queue). Refused with
    /// [`VaultError::Held`] while a legal hold is set. The engine step, with
    /// no policy and no audit event (tests; operations use
    /// `delete_document` or the purge).
    #[doc(hidden)]
    pub async fn destroy_document(&self, id: Uuid, by: &str) -> Result<(), VaultError> {
        let mut tx = self.tx().await?;
        let how = catalog::Destruction { by, reason: "destroyed by the engine", due_at: None };
        let objects = tx.destroy_documents(&[id], how, tx.now()).await?;
        if objects.is_empty() {
            // Only what the statement did counts: the row as it is now.
            let row = match tx.get_document(id).await {
                Err(CatalogError::NotFound(_)) => return Err(VaultError::NotFound(id)),
                r => r?,
            };
            return match row.state {
                DocumentState::Destroyed => Ok(()),
                _ if row.legal_hold => Err(VaultError::Held(id)),
                _ => Err(VaultError::NotFound(id)),
            };
        }
        tx.commit().await?;
        for o in &objects {
            self.store.delete(&ObjectName::from_catalog(o.object_name.clone())).await?;
        }
        let mut tx = self.tx().await?;
        tx.objects_deleted(&objects).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remove uploads that never completed: pending rows older than
    /// `older_than` and their (partial) objects. Each row is claimed first
    /// (from then on it can no longer be activated), then its object is
    /// deleted, then the row. A sweep that stops half-way is finished by the
    /// next one. Returns how many were removed.
    pub async fn sweep_pending(&self, older_than: std::time::Duration) -> Result<usize, VaultError> {
        let cutoff = self.now_micros() - older_than.as_micros() as i64;
        let rows = self.snapshot().await?.pending_documents_before(cutoff).await?;
        let mut removed = 0;
        for row in &rows {
            let mut tx = self.tx().await?;
            let claimed = tx.claim_pending_document(row.id).await?;
            tx.commit().await?;
            if !claimed {
                continue; // activated or removed meanwhile
            }
            if self.faults.fire(FaultPoint::SweepAfterClaim) {
                return Err(VaultError::Interrupted);
            }
            self.store.delete(&ObjectName::from_catalog(row.object_name.clone())).await?;
            let mut tx = self.tx().await?;
            tx.delete_pending_document(row.id).await?;
            tx.commit().await?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Forget lock-out counters of names not seen for `older_than`.
    pub async fn prune_login_attempts(&self, older_than: std::time::Duration) -> Result<u64, VaultError> {
        let mut tx = self.tx().await?;
        let n = tx.prune_login_attempts(self.now_micros() - older_than.as_micros() as i64).await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// A document whose row is `pending`: what the writer needs.
pub(crate) struct PendingDocument {
    pub(crate) id: Uuid,
    pub(crate) name: ObjectName,
    pub(crate) key: DataKey,
}

/// Frames of a download: 256 KiB (four segments) for its first MiB, then
/// 1 MiB. Each frame is one write call (hyper's buffer is 64 KiB, so it
/// writes each frame on its own), and on file:// one direct read and one
/// hand-off between threads. With one segment per frame a download cost
/// about 30 % more CPU per GiB than before issue 7; four matched the code
/// before issue 7; growing to 16 after the first MiB cut a file:// download
/// from 1.19-1.23 to 0.94-0.98 CPU-s per GiB (issue 13, BENCHMARKS.md). A
/// download holds at most two frames; a document of up to 1 MiB holds what
/// it held before.
const DOWNLOAD_FRAMES: crypto::FrameSizes =
    crypto::FrameSizes { small: 256 << 10, large: 1 << 20, grow_after: GROW_AFTER };
/// Segments per block of an upload: each block (about 260 KiB) is one write
/// to the store, and a file:// upload holds two
/// ([`store::BLOCKS_PER_WRITE`]), one filled while the other is written.
const BLOCK_SEGMENTS: usize = 4;
/// Room for those segments and their tags, plus the header or the
/// unaligned tail carried over from the block before (under [`block::ALIGN`]).
const BLOCK_CAPACITY: usize = BLOCK_SEGMENTS * (crypto::SEGMENT_SIZE + crypto::TAG_LEN) + block::ALIGN;
/// Blocks of an upload after its first [`GROW_AFTER`] bytes: 16 segments
/// (about 1 MiB), a quarter of the writes and hand-offs. Uploads and
/// downloads of up to 1 MiB hold what they held before.
const LARGE_BLOCK_CAPACITY: usize = 16 * (crypto::SEGMENT_SIZE + crypto::TAG_LEN) + block::ALIGN;
/// Plaintext bytes after which an upload's blocks and a download's frames grow.
const GROW_AFTER: u64 = 1 << 20;

/// SHA-256 of an upload's plaintext: on the upload's task for its first
/// [`GROW_AFTER`] bytes, then on a blocking thread of its own beside the
/// encryption, handed the chunks (cheap `Bytes` clones) a batch at a time.
/// On two cores this takes the hash off the path of the request's task,
/// which otherwise receives, parses, hashes and encrypts every byte alone.
enum Hasher {
    Inline(Sha256),
    Thread {
        batch: Vec<Bytes>,
        batched: usize,
        tx: tokio::sync::mpsc::Sender<Vec<Bytes>>,
        done: tokio::task::JoinHandle<Sha256>,
    },
}

/// Bytes per batch handed to the hashing thread; one batch queued at most.
const HASH_BATCH: usize = 1 << 20;

impl Hasher {
    /// Hash `chunk`; `large` (the upload is past [`GROW_AFTER`]) moves the
    /// hashing to its thread.
    async fn update(&mut self, chunk: &Bytes, large: bool) {
        if large && let Hasher::Inline(sha) = self {
            let mut sha = std::mem::take(sha);
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Bytes>>(1);
            let done = tokio::task::spawn_blocking(move || {
                while let Some(batch) = rx.blocking_recv() {
                    for c in batch {
                        sha.update(&c);
                    }
                }
                sha
            });
            *self = Hasher::Thread { batch: Vec::new(), batched: 0, tx, done };
        }
        match self {
            Hasher::Inline(sha) => sha.update(chunk),
            Hasher::Thread { batch, batched, tx, .. } => {
                batch.push(chunk.clone());
                *batched += chunk.len();
                if *batched >= HASH_BATCH {
                    *batched = 0;
                    // A thread that is gone shows in `finish`.
                    let _ = tx.send(std::mem::take(batch)).await;
                }
            }
        }
    }

    async fn finish(self) -> Result<sha2::digest::Output<Sha256>, VaultError> {
        match self {
            Hasher::Inline(sha) => Ok(sha.finalize()),
            Hasher::Thread { batch, tx, done, .. } => {
                let _ = tx.send(batch).await;
                drop(tx);
                Ok(done.await.map_err(|_| VaultError::Interrupted)?.finalize())
            }
        }
    }
}

/// Read and open a file:// object on one blocking thread, a window of
/// whole segments at a time ([`DOWNLOAD_FRAMES`]), read (with direct I/O where
/// the file system allows it) straight into the buffer that goes out: each
/// segment is opened in place and the window's plaintext, its tags' gaps
/// closed, goes out as that buffer ([`crypto::SegmentLayout`]).
/// A window starts at the unit of [`block::ALIGN`] below its first segment,
/// so its segments arrive whole whatever the alignment. The next window is
/// read only once the connection took the previous one (a channel slot is
/// reserved first): a download holds at most two windows (about 520 KiB in
/// its first MiB, about 2 MiB after).
fn decrypt_local(file: std::fs::File, mut direct: bool, name: String, key: DataKey, id: Uuid) -> PlainStream {
    type Item = Result<Bytes, VaultError>;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(1);
    tokio::task::spawn_blocking(move || {
        let io = |e: std::io::Error| VaultError::from(StoreError::Io { op: "read", name: name.clone(), source: e });
        let mut run = || -> Result<(), VaultError> {
            let file_len = file.metadata().map_err(io)?.len();
            let head = read_window(&file, &mut direct, 0, block::ALIGN, file_len).map_err(io)?;
            let header = crypto::Header::parse(&head)?;
            if header.document_id != id {
                return Err(CryptoError::WrongDocument { expected: id, found: header.document_id }.into());
            }
            let cipher = crypto::SegmentCipher::new(&key, header);
            let layout = crypto::SegmentLayout::new(&header, file_len)?;
            let mut first = 0;
            while first < layout.segments() {
                let Ok(slot) = futures::executor::block_on(tx.reserve()) else { return Ok(()) };
                let count =
                    (DOWNLOAD_FRAMES.segments(first, header.segment_size()) as u64).min(layout.segments() - first);
                let start = layout.segment(first).start / block::ALIGN as u64 * block::ALIGN as u64;
                let end = layout.segment(first + count - 1).end;
                let window = read_window(&file, &mut direct, start, (end - start) as usize, file_len).map_err(io)?;
                let (plain, opened) = layout.open_window(&cipher, window, start, first, count);
                // What was authenticated goes out, before any failure.
                if !plain.is_empty() {
                    slot.send(Ok(plain));
                }
                opened?;
                first += count;
            }
            Ok(())
        };
        if let Err(e) = run() {
            let _ = futures::executor::block_on(tx.send(Err(e)));
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// Read `len` bytes of `file` from `offset` (a multiple of [`block::ALIGN`])
/// into a new buffer whose start is aligned, fewer where the file ends. With
/// direct I/O every read is whole units (the last may end at the file's end);
/// a file system that opened with `O_DIRECT` but refuses such a read gets it
/// again through the page cache, and `direct` turns false.
fn read_window(
    file: &std::fs::File,
    direct: &mut bool,
    offset: u64,
    len: usize,
    file_len: u64,
) -> std::io::Result<bytes::BytesMut> {
    store::or_buffered(file, direct, |d| read_window_once(file, d, offset, len, file_len))
}

fn read_window_once(
    file: &std::fs::File,
    direct: bool,
    offset: u64,
    len: usize,
    file_len: u64,
) -> std::io::Result<bytes::BytesMut> {
    use bytes::Buf;
    use std::os::fd::AsRawFd;
    let want = len.min(file_len.saturating_sub(offset) as usize);
    let ask = if direct { len.next_multiple_of(block::ALIGN) } else { want };
    let mut buf = bytes::BytesMut::with_capacity(ask + block::ALIGN);
    let skip = buf.as_ptr().align_offset(block::ALIGN);
    buf.resize(skip, 0);
    buf.advance(skip);
    while buf.len() < want {
        let filled = buf.len();
        let spare = buf.spare_capacity_mut();
        let room = (ask - filled).min(spare.len());
        // SAFETY: pread writes at most `room` bytes into the spare capacity,
        // which holds at least that many; only the bytes it reports written
        // are then counted as initialised.
        let n = unsafe {
            libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), room, (offset + filled as u64) as libc::off_t)
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break; // the file ended sooner than its length said: the layout check tells
        }
        // SAFETY: the kernel initialised these `n` bytes (above).
        unsafe { buf.set_len(filled + n as usize) };
    }
    buf.truncate(want);
    Ok(buf)
}

#[cfg(test)]
mod local_read_tests {
    use super::*;

    #[test]
    fn a_direct_read_the_file_system_refuses_is_read_again_through_the_page_cache() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obj");
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let Ok(file) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(&path) else {
            return; // no direct I/O here at all: the open-time fallback covers it
        };
        // An offset off the unit: a direct read of it is refused (EINVAL).
        let mut direct = true;
        let got = read_window(&file, &mut direct, 100, 5000, data.len() as u64).unwrap();
        assert_eq!(&got[..], &data[100..5100]);
        assert!(!direct, "the file was switched to buffered reads");
    }

    #[test]
    fn download_frames_grow_after_the_first_mib_and_stay_bounded_in_bytes() {
        let seg = crypto::SEGMENT_SIZE;
        let f = DOWNLOAD_FRAMES;
        assert_eq!(f.segments(0, seg), 4);
        assert_eq!(f.segments(15, seg), 4);
        assert_eq!(f.segments(16, seg), 16);
        // A header that claims 16 MiB segments gets frames of one segment.
        assert_eq!(f.segments(0, 1 << 24), 1);
        assert_eq!(f.segments(100, 1 << 24), 1);
        // Small segments: the same bytes per frame.
        assert_eq!(f.segments(0, 1 << 12), 64);
        assert_eq!(crypto::FrameSizes::fixed(3).segments(1000, seg), 3);
    }

    #[test]
    fn windows_read_the_same_bytes_with_and_without_direct_io() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obj");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        for direct in [true, false] {
            let file = if direct {
                use std::os::unix::fs::OpenOptionsExt;
                match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(&path) {
                    Ok(f) => f,
                    Err(_) => continue, // a file system without direct I/O: the other case covers it
                }
            } else {
                std::fs::File::open(&path).unwrap()
            };
            for (offset, len) in [(0, 32), (0, 4096), (8192, 100_000), (294_912, 10_000), (299_008, 4096), (4096, 1)] {
                let got = read_window(&file, &mut { direct }, offset as u64, len, data.len() as u64).unwrap();
                let end = (offset + len).min(data.len());
                assert_eq!(&got[..], &data[offset..end], "direct {direct} at {offset}+{len}");
                assert_eq!(got.as_ptr() as usize % block::ALIGN, 0, "the window starts aligned");
            }
        }
    }
}
