//! The blob store: encrypted objects over `object_store`.
//!
//! Backends by URL: `file://PATH` (the default, under the data directory),
//! `s3://BUCKET[/PREFIX]` (endpoint from `KLUIS_S3_ENDPOINT`, path-style,
//! plain http allowed when the endpoint says `http://`) and `memory://`
//! (unit tests only).
//!
//! Invariants:
//! - the store only ever sees ciphertext; object names are random
//!   ([`ObjectName::random`]) and say nothing about client or document;
//! - uploads stream in parts with bounded memory (`PART_SIZE` x `PARTS_IN_FLIGHT`)
//!   and an object becomes visible only when complete; a failed upload is
//!   aborted;
//! - on `file://` a completed object is fsynced (file and directory) before
//!   `ObjectWriter::finish` returns, so a committed catalog row never points at bytes
//!   still in the page cache;
//! - requests to a dead endpoint fail within seconds, not minutes (short
//!   connect timeout, few retries), with an error naming the operation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::block::{ALIGN, Block};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};

/// Bytes per multipart part (S3 needs at least 5 MiB for all but the last).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploaded concurrently before the writer waits.
pub const PARTS_IN_FLIGHT: usize = 2;
/// Blocks an [`ObjectWriter`] on `file://` cycles through: one being
/// filled while the other is written.
pub const BLOCKS_PER_WRITE: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported storage URL {0:?} (expected file://, s3:// or memory://)")]
    UnsupportedUrl(String),
    #[error("s3:// storage needs KLUIS_S3_ENDPOINT or AWS credentials: {0}")]
    Config(String),
    #[error("cannot create the storage directory {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("object store {op} of {name} failed: {source}")]
    Backend { op: &'static str, name: String, source: object_store::Error },
    #[error("object {0} not found")]
    NotFound(String),
    #[error("fsync of {name} failed: {source}")]
    Sync { name: String, source: std::io::Error },
    #[error("{op} of {name} failed: {source}")]
    Io { op: &'static str, name: String, source: std::io::Error },
    #[error("upload source failed: {0}")]
    Source(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where the audit chain's anchors live in the store (nothing else uses it).
pub const ANCHOR_PREFIX: &str = "audit-anchors";

/// A random object name: 128 bits, hex, fanned out by its first byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectName(String);

impl ObjectName {
    pub fn random() -> Self {
        let mut b = [0u8; 16];
        crate::crypto::fill_random(&mut b);
        let h = hex::encode(b);
        ObjectName(format!("{}/{}", &h[..2], h))
    }

    /// The anchor of the audit chain at event `seq` (`audit-anchors/`, zero
    /// padded so that names sort by `seq`).
    pub fn audit_anchor(seq: i64) -> Self {
        ObjectName(format!("{ANCHOR_PREFIX}/{seq:020}.json"))
    }

    /// An existing name from the catalog.
    pub fn from_catalog(s: String) -> Self {
        ObjectName(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn path(&self) -> Path {
        Path::from(self.0.as_str())
    }
}

impl std::fmt::Display for ObjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// S3 settings besides the bucket (normally from the environment).
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl S3Settings {
    pub fn from_env() -> Self {
        let get = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        S3Settings {
            endpoint: get("KLUIS_S3_ENDPOINT"),
            region: get("AWS_REGION"),
            access_key_id: get("AWS_ACCESS_KEY_ID"),
            secret_access_key: get("AWS_SECRET_ACCESS_KEY"),
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    File(PathBuf),
    S3,
    Memory,
}

#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    kind: Kind,
    description: String,
    direct_io: bool,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl BlobStore {
    /// Open the store a storage URL names.
    pub fn open(url: &str, s3: &S3Settings) -> Result<Self, StoreError> {
        if let Some(path) = url.strip_prefix("file://") {
            let root = PathBuf::from(path);
            std::fs::create_dir_all(&root).map_err(|source| CreateDirErr(root.clone(), source).into_err())?;
            let root = root.canonicalize().map_err(|source| CreateDirErr(root.clone(), source).into_err())?;
            let fs = LocalFileSystem::new_with_prefix(&root).map_err(|source| StoreError::Backend {
                op: "open",
                name: root.display().to_string(),
                source,
            })?;
            return Ok(BlobStore {
                inner: Arc::new(fs),
                description: format!("file://{}", root.display()),
                kind: Kind::File(root),
                direct_io: true,
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = match rest.split_once('/') {
                Some((b, p)) => (b, p.trim_matches('/')),
                None => (rest, ""),
            };
            if bucket.is_empty() {
                return Err(StoreError::UnsupportedUrl(url.into()));
            }
            let mut b = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_region(s3.region.clone().unwrap_or_else(|| "us-east-1".into()))
                .with_virtual_hosted_style_request(false)
                // Parts are not hashed a second time for the signature: the
                // bytes are ciphertext whose every segment carries its GCM
                // tag, and TLS protects them on the way.
                .with_unsigned_payload(true)
                .with_retry(RetryConfig {
                    backoff: BackoffConfig {
                        init_backoff: Duration::from_millis(100),
                        max_backoff: Duration::from_secs(2),
                        base: 2.0,
                    },
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(20),
                })
                .with_client_options(
                    ClientOptions::new()
                        .with_connect_timeout(Duration::from_secs(3))
                        .with_timeout(Duration::from_secs(120))
                        .with_allow_http(s3.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"))),
                );
            if let Some(e) = &s3.endpoint {
                b = b.with_endpoint(e);
            }
            match (&s3.access_key_id, &s3.secret_access_key) {
                (Some(k), Some(s)) => b = b.with_access_key_id(k).with_secret_access_key(s),
                (None, None) => {}
                _ => return Err(StoreError::Config("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".into())),
            }
            let s3store = b.build().map_err(|e| StoreError::Config(e.to_string()))?;
            let inner: Arc<dyn ObjectStore> =
                if prefix.is_empty() { Arc::new(s3store) } else { Arc::new(PrefixStore::new(s3store, prefix)) };
            let endpoint = s3.endpoint.clone().unwrap_or_else(|| "AWS".into());
            return Ok(BlobStore {
                inner,
                kind: Kind::S3,
                description: format!("{url} at {endpoint}"),
                direct_io: false,
            });
        }
        if url == "memory://" || url == "memory:" {
            return Ok(BlobStore {
                inner: Arc::new(InMemory::new()),
                kind: Kind::Memory,
                description: "memory://".into(),
                direct_io: false,
            });
        }
        Err(StoreError::UnsupportedUrl(url.into()))
    }

    pub fn describe(&self) -> &str {
        &self.description
    }

    fn err<'a>(op: &'static str, name: &'a ObjectName) -> impl FnOnce(object_store::Error) -> StoreError + 'a {
        move |source| match source {
            object_store::Error::NotFound { .. } => StoreError::NotFound(name.to_string()),
            source => StoreError::Backend { op, name: name.to_string(), source },
        }
    }

    /// A writer for a new object that takes whole [`Block`]s of object bytes
    /// (an upload seals its segments in them in place). On `file://` the
    /// blocks are written with direct I/O where the file system allows it
    /// (no copy into the page cache), by one thread of their own, and come
    /// back for reuse: an upload holds at most [`BLOCKS_PER_WRITE`] blocks of
    /// `block_capacity` bytes. On S3 each block becomes part of a multipart
    /// part. Nothing is visible before [`ObjectWriter::finish`].
    pub async fn writer(&self, name: &ObjectName, block_capacity: usize) -> Result<ObjectWriter, StoreError> {
        let sink = match &self.kind {
            Kind::File(root) => Sink::File(FileWriter::start(root, name, self.direct_io)?),
            _ => {
                let upload =
                    self.inner.put_multipart(&name.path()).await.map_err(Self::err("multipart start", name))?;
                Sink::Parts(WriteMultipart::new_with_chunk_size(upload, PART_SIZE), Pool::default())
            }
        };
        Ok(ObjectWriter { sink, name: name.clone(), block_capacity, made: 0, written: 0 })
    }

    /// Use direct I/O for `file://` objects where the file system allows it
    /// (the default). Off: every write goes through the page cache.
    pub fn set_direct_io(&mut self, on: bool) {
        self.direct_io = on;
    }

    /// Durability on the local file system: fsync the file and its directory.
    async fn sync(&self, name: &ObjectName) -> Result<(), StoreError> {
        let Kind::File(root) = &self.kind else { return Ok(()) };
        let file = root.join(name.as_str());
        let n = name.to_string();
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&file)?.sync_all()?;
            if let Some(dir) = file.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok::<(), std::io::Error>(())
        })
        .await
        .map_err(|e| StoreError::Sync { name: n.clone(), source: std::io::Error::other(e) })?
        .map_err(|source| StoreError::Sync { name: n, source })
    }

    /// A file:// object opened for reading with blocking calls (`None` for
    /// other stores), for a reader that runs on its own blocking thread.
    pub fn open_local(&self, name: &ObjectName) -> Result<Option<std::fs::File>, StoreError> {
        let Kind::File(root) = &self.kind else { return Ok(None) };
        match std::fs::File::open(root.join(name.as_str())) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::NotFound(name.to_string())),
            Err(e) => Err(StoreError::Io { op: "open", name: name.to_string(), source: e }),
        }
    }

    /// A file:// object opened for reading with blocking calls, with
    /// direct I/O where the file system allows it (true in the answer), or
    /// `None` for other stores. A download reads its segments this way.
    pub fn open_local_direct(&self, name: &ObjectName) -> Result<Option<(std::fs::File, bool)>, StoreError> {
        let Kind::File(root) = &self.kind else { return Ok(None) };
        let path = root.join(name.as_str());
        let err = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::NotFound(name.to_string()),
            _ => StoreError::Io { op: "open", name: name.to_string(), source: e },
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true);
        open_maybe_direct(&opts, &path, self.direct_io).map(Some).map_err(err)
    }

    /// Stream an object's bytes.
    pub async fn get_stream(
        &self,
        name: &ObjectName,
    ) -> Result<BoxStream<'static, Result<Bytes, StoreError>>, StoreError> {
        // object_store reads local files 8 KiB at a time, each read its own
        // blocking task; read 256 KiB chunks on one thread instead.
        if let Some(file) = self.open_local(name)? {
            return Ok(file_reader(file, name.to_string()));
        }
        let res = self.inner.get(&name.path()).await.map_err(Self::err("get", name))?;
        let n = name.to_string();
        Ok(res
            .into_stream()
            .map_err(move |source| StoreError::Backend { op: "get (streaming)", name: n.clone(), source })
            .boxed())
    }

    /// Bytes `start..end` of an object (for segment-aligned range reads).
    pub async fn get_range(&self, name: &ObjectName, range: std::ops::Range<u64>) -> Result<Bytes, StoreError> {
        self.inner.get_range(&name.path(), range).await.map_err(Self::err("get_range", name))
    }

    /// The stored size of an object.
    pub async fn size(&self, name: &ObjectName) -> Result<u64, StoreError> {
        Ok(self.inner.head(&name.path()).await.map_err(Self::err("head", name))?.size)
    }

    /// Small whole-object write (tests, tools).
    pub async fn put_bytes(&self, name: &ObjectName, data: Bytes) -> Result<(), StoreError> {
        self.inner.put(&name.path(), data.into()).await.map_err(Self::err("put", name))?;
        self.sync(name).await
    }

    /// A small object's bytes, whole.
    pub async fn get_bytes(&self, name: &ObjectName) -> Result<Bytes, StoreError> {
        let res = self.inner.get(&name.path()).await.map_err(Self::err("get", name))?;
        res.bytes().await.map_err(Self::err("get (body)", name))
    }

    /// The names of the objects under `prefix`, in no particular order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectName>, StoreError> {
        let probe = ObjectName(prefix.to_string());
        let mut out = Vec::new();
        let mut listing = self.inner.list(Some(&Path::from(prefix)));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(Self::err("list", &probe))?;
            out.push(ObjectName(meta.location.to_string()));
        }
        Ok(out)
    }

    /// Delete an object; deleting a missing object is not an error.
    pub async fn delete(&self, name: &ObjectName) -> Result<(), StoreError> {
        if let Kind::File(root) = &self.kind {
            // An upload that crashed leaves its partial file, not the object.
            let _ = std::fs::remove_file(partial_path(root, name));
        }
        match self.inner.delete(&name.path()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StoreError::Backend { op: "delete", name: name.to_string(), source }),
        }
    }

    /// The `object_store` under this store, for benchmarks that compare
    /// Kluis with the store's own API.
    #[doc(hidden)]
    pub fn object_store_for_benchmarks(&self) -> Arc<dyn ObjectStore> {
        self.inner.clone()
    }

    /// Is the store reachable? A HEAD of a name that never exists must
    /// answer "not found" (any answer from the store proves it is up).
    pub async fn check(&self) -> Result<(), StoreError> {
        let probe = ObjectName("readyz/probe".into());
        match self.inner.head(&probe.path()).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StoreError::Backend { op: "readiness probe", name: probe.0, source }),
        }
    }
}

struct CreateDirErr(PathBuf, std::io::Error);
impl CreateDirErr {
    fn into_err(self) -> StoreError {
        StoreError::CreateDir { path: self.0, source: self.1 }
    }
}

/// Bytes per read when streaming a file:// object's raw bytes through
/// `get_stream` (two chunks read ahead). Downloads do not come this way:
/// the vault reads and opens file:// objects on one thread of its own
/// (`open_local_direct`, `decrypt_local` in `lib.rs`).
const READ_CHUNK: usize = 64 << 10;
/// Start disk writeback every this many bytes while writing a file:// object,
/// so the disk works while the next segments are encrypted and the final
/// fsync has little left to do.
const WRITEBACK_EVERY: usize = 8 << 20;

/// Create `dir` and any missing parents, and make each new entry durable
/// (fsync of the directory that holds it): an object's rename is fsynced
/// in its own directory, and that directory must survive a crash as well.
fn create_dir_durable(dir: &std::path::Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durable(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Where a file:// object is written until it is complete.
fn partial_path(root: &std::path::Path, name: &ObjectName) -> PathBuf {
    let dest = root.join(name.as_str());
    let file = dest.file_name().and_then(|f| f.to_str()).unwrap_or("object").to_string();
    dest.with_file_name(format!(".{file}.partial"))
}

/// Where an [`ObjectWriter`]'s blocks go.
enum Sink {
    File(FileWriter),
    /// S3: the blocks leave inside multipart parts and come back to the
    /// pool once their part is sent.
    Parts(WriteMultipart, Pool),
}

/// Blocks of an S3 upload whose part was sent, for reuse: a new 1 MiB block
/// costs a zeroing pass (about 0.1 CPU-s per GiB), a reused one nothing.
/// They hold ciphertext only: a block goes out only when it is sealed.
type Pool = Arc<std::sync::Mutex<Vec<Block>>>;

/// At most this many blocks wait in a [`Pool`] (a part's worth and more).
const POOL_BLOCKS: usize = 16;

/// A block inside a part: back to its pool when the part lets go of it.
struct Pooled {
    block: Option<Block>,
    pool: std::sync::Weak<std::sync::Mutex<Vec<Block>>>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        self.block.as_ref().map_or(&[], Block::as_slice)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let (Some(block), Some(pool)) = (self.block.take(), self.pool.upgrade())
            && let Ok(mut free) = pool.lock()
            && free.len() < POOL_BLOCKS
        {
            free.push(block);
        }
    }
}

fn pooled(block: Block, pool: &Pool) -> Bytes {
    Bytes::from_owner(Pooled { block: Some(block), pool: Arc::downgrade(pool) })
}

/// Writes one new object from whole blocks of its bytes; see [`BlobStore::writer`].
pub struct ObjectWriter {
    sink: Sink,
    name: ObjectName,
    block_capacity: usize,
    /// Blocks made so far (file:// reuses them after [`BLOCKS_PER_WRITE`]).
    made: usize,
    /// Bytes handed to the sink so far.
    written: u64,
}

impl ObjectWriter {
    /// An empty block to fill: on file:// one the writer thread gave back
    /// (waiting for it while the disk is behind), otherwise a new one. A
    /// caller holds at most [`BLOCKS_PER_WRITE`] at once: it `put`s a full
    /// block before it asks for the block after the next.
    pub async fn block(&mut self) -> Result<Block, StoreError> {
        let back = match &mut self.sink {
            Sink::File(f) if self.made >= BLOCKS_PER_WRITE => match f.free.recv().await {
                Some(b) => Some(b),
                None => return Err(f.failed(&self.name).await),
            },
            Sink::Parts(_, pool) => pool.lock().ok().and_then(|mut free| free.pop()),
            Sink::File(_) => None,
        };
        match back {
            // A block that came back is reused, unless it was made before
            // [`ObjectWriter::grow`]: then a new one replaces it.
            Some(mut b) if b.capacity() >= self.block_capacity => {
                b.clear();
                Ok(b)
            }
            Some(_) => Ok(Block::new(self.block_capacity)),
            None => {
                self.made += 1;
                Ok(Block::new(self.block_capacity))
            }
        }
    }

    /// Blocks handed out from now on hold `capacity` bytes (never fewer than
    /// before); a smaller block that comes back from the disk is dropped for
    /// a new one. An upload starts small and grows once it is large, so a
    /// small object costs little memory and a large one few writes.
    pub fn grow(&mut self, capacity: usize) {
        self.block_capacity = self.block_capacity.max(capacity);
    }

    /// Write `block`, all of it finished object bytes. On file:// the bytes
    /// after its last whole [`ALIGN`] move to the front of `next` (empty),
    /// to go out with the next block: every write but the last is whole
    /// units, as direct I/O needs.
    pub async fn put(&mut self, mut block: Block, next: &mut Block) -> Result<(), StoreError> {
        match &mut self.sink {
            Sink::File(f) => {
                block.carry_tail_into(next);
                self.written += block.len() as u64;
                let sent = match &f.tx {
                    Some(tx) => tx.send(Msg::Block(block)).await.is_ok(),
                    None => false,
                };
                if !sent {
                    return Err(f.failed(&self.name).await);
                }
            }
            Sink::Parts(w, pool) => {
                w.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(BlobStore::err("part upload", &self.name))?;
                self.written += block.len() as u64;
                w.put(pooled(block, pool));
            }
        }
        Ok(())
    }

    /// Write the last block and make the object visible (file://: fsync,
    /// rename into place, fsync the directory). Returns the object's size.
    pub async fn finish(self, last: Block) -> Result<u64, StoreError> {
        let total = self.written + last.len() as u64;
        let name = self.name;
        match self.sink {
            Sink::File(mut f) => {
                let sent = match f.tx.take() {
                    Some(tx) => tx.send(Msg::Last(last)).await.is_ok(),
                    None => false,
                };
                if !sent {
                    return Err(f.failed(&name).await);
                }
                match f.join().await {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(StoreError::Io {
                            op: "write",
                            name: name.to_string(),
                            source: std::io::Error::other("the writer stopped early"),
                        });
                    }
                    Err(source) => return Err(StoreError::Io { op: "write", name: name.to_string(), source }),
                }
            }
            Sink::Parts(mut w, _) => {
                let done = async {
                    if !last.is_empty() {
                        w.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(BlobStore::err("part upload", &name))?;
                        w.put(Bytes::from_owner(last));
                    }
                    Ok::<(), StoreError>(())
                }
                .await;
                if let Err(e) = done {
                    let _ = w.abort().await;
                    return Err(e);
                }
                w.finish().await.map_err(BlobStore::err("multipart complete", &name))?;
            }
        }
        Ok(total)
    }

    /// Give up: nothing becomes visible and the partial bytes are removed.
    pub async fn abort(self) {
        match self.sink {
            Sink::File(mut f) => {
                f.tx = None; // the thread sees the end without `Last` and removes the partial file
                let _ = f.join().await;
            }
            Sink::Parts(w, _) => {
                let _ = w.abort().await;
            }
        }
    }
}

/// What the producer sends the file:// writer thread.
enum Msg {
    /// Whole units of bytes (a multiple of [`ALIGN`] long).
    Block(Block),
    /// The object's last bytes: after them, make it durable and visible.
    Last(Block),
}

/// The producer's side of a file:// object's writer thread.
struct FileWriter {
    /// `None` once the end was sent (or the upload given up).
    tx: Option<tokio::sync::mpsc::Sender<Msg>>,
    /// Blocks the thread wrote, for reuse.
    free: tokio::sync::mpsc::Receiver<Block>,
    thread: Option<tokio::task::JoinHandle<std::io::Result<bool>>>,
}

impl FileWriter {
    fn start(root: &std::path::Path, name: &ObjectName, direct: bool) -> Result<Self, StoreError> {
        let dest = root.join(name.as_str());
        let dir = dest.parent().map(|p| p.to_path_buf()).unwrap_or_else(|| root.to_path_buf());
        let tmp = partial_path(root, name);
        create_dir_durable(&dir).map_err(|source| StoreError::Io {
            op: "create directory",
            name: name.to_string(),
            source,
        })?;
        let (tx, rx) = tokio::sync::mpsc::channel(BLOCKS_PER_WRITE);
        let (free_tx, free) = tokio::sync::mpsc::channel(BLOCKS_PER_WRITE);
        let thread = tokio::task::spawn_blocking(move || {
            // Removes the partial file unless the object was made visible,
            // also when the thread unwinds from a panic.
            struct Partial(PathBuf, bool);
            impl Drop for Partial {
                fn drop(&mut self) {
                    if !self.1 {
                        let _ = std::fs::remove_file(&self.0);
                    }
                }
            }
            let mut partial = Partial(tmp.clone(), false);
            let res = write_file(rx, free_tx, &tmp, &dest, &dir, direct);
            partial.1 = matches!(res, Ok(true));
            res
        });
        Ok(FileWriter { tx: Some(tx), free, thread: Some(thread) })
    }

    /// Wait for the thread: true when the object was made visible.
    async fn join(&mut self) -> std::io::Result<bool> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t.await.map_err(std::io::Error::other)?,
            None => Err(std::io::Error::other("the writer thread was already joined")),
        }
    }

    /// The thread stopped before the end: why.
    async fn failed(&mut self, name: &ObjectName) -> StoreError {
        let source = match self.join().await {
            Err(e) => e,
            Ok(_) => std::io::Error::other("the writer stopped early"),
        };
        StoreError::Io { op: "write", name: name.to_string(), source }
    }
}

/// Open the partial file, with `O_DIRECT` when asked for and the file
/// system takes it. Returns the file and whether it is direct.
fn create_partial(tmp: &std::path::Path, direct: bool) -> std::io::Result<(std::fs::File, bool)> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    open_maybe_direct(&opts, tmp, direct)
}

/// Open `path` with `opts`, plus `O_DIRECT` when `direct` and the file
/// system takes it (this one refuses it with EINVAL: the page cache it is).
/// Returns the file and whether it is direct.
fn open_maybe_direct(
    opts: &std::fs::OpenOptions,
    path: &std::path::Path,
    direct: bool,
) -> std::io::Result<(std::fs::File, bool)> {
    #[cfg(target_os = "linux")]
    if direct {
        use std::os::unix::fs::OpenOptionsExt;
        match opts.clone().custom_flags(libc::O_DIRECT).open(path) {
            Ok(f) => return Ok((f, true)),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    let _ = direct;
    Ok((opts.open(path)?, false))
}

/// Run one read or write of `file`. A file system that opened with
/// `O_DIRECT` but refuses this call (EINVAL) has direct I/O turned off for
/// the file (`direct` turns false), and the call runs once more through the
/// page cache. The one place both directions fall back.
pub(crate) fn or_buffered<T>(
    file: &std::fs::File,
    direct: &mut bool,
    mut call: impl FnMut(bool) -> std::io::Result<T>,
) -> std::io::Result<T> {
    match call(*direct) {
        Err(e) if *direct && e.raw_os_error() == Some(libc::EINVAL) => {
            clear_direct(file)?;
            *direct = false;
            call(false)
        }
        r => r,
    }
}

/// Turn direct I/O off for `file` (a file system that opened with
/// `O_DIRECT` but refuses such writes). Best effort.
#[cfg(target_os = "linux")]
fn clear_direct(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_DIRECT) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn clear_direct(_: &std::fs::File) -> std::io::Result<()> {
    Ok(())
}

/// Write all of `bytes` at `offset`, counting what each call wrote, so that
/// a file system that refuses a direct write (EINVAL), even after part of
/// the block went out, gets exactly the rest again through the page cache.
fn write_at(f: &std::fs::File, direct: &mut bool, bytes: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut done = 0;
    while done < bytes.len() {
        match or_buffered(f, direct, |_| f.write_at(&bytes[done..], offset + done as u64)) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The writer thread of a file:// object: each block written as it comes
/// (and given back), then on `Last` fsync, rename into place and fsync the
/// directory. True when the object is visible; false when the producer
/// stopped without `Last` (the caller removes the partial file).
fn write_file(
    mut rx: tokio::sync::mpsc::Receiver<Msg>,
    free: tokio::sync::mpsc::Sender<Block>,
    tmp: &std::path::Path,
    dest: &std::path::Path,
    dir: &std::path::Path,
    direct: bool,
) -> std::io::Result<bool> {
    let (f, mut direct) = create_partial(tmp, direct)?;
    let (mut offset, mut flushed) = (0u64, 0u64);
    loop {
        match rx.blocking_recv() {
            Some(Msg::Block(b)) => {
                write_at(&f, &mut direct, b.as_slice(), offset)?;
                offset += b.len() as u64;
                if !direct && offset - flushed >= WRITEBACK_EVERY as u64 {
                    start_writeback(&f, flushed, (offset - flushed) as usize);
                    flushed = offset;
                }
                let _ = free.try_send(b);
            }
            Some(Msg::Last(mut b)) => {
                let len = b.len() as u64;
                if direct && !b.len().is_multiple_of(ALIGN) {
                    // Direct writes are whole units: pad, then cut the file to size.
                    let padded = b.padded();
                    write_at(&f, &mut direct, padded, offset)?;
                    f.set_len(offset + len)?;
                } else {
                    write_at(&f, &mut direct, b.as_slice(), offset)?;
                }
                break;
            }
            None => return Ok(false),
        }
    }
    f.sync_all()?;
    std::fs::rename(tmp, dest)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(true)
}

/// Ask the kernel to start writing `len` bytes from `offset` to disk now
/// (without waiting). Best effort; the final fsync is what guarantees.
#[cfg(target_os = "linux")]
fn start_writeback(f: &std::fs::File, offset: u64, len: usize) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads the descriptor and the numbers; the
    // file stays open for the duration of the call.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), offset as i64, len as i64, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_: &std::fs::File, _: u64, _: usize) {}

/// Stream a local file in `READ_CHUNK` chunks, read ahead on one blocking thread.
fn file_reader(file: std::fs::File, name: String) -> BoxStream<'static, Result<Bytes, StoreError>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, StoreError>>(2);
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = file;
        loop {
            let mut buf = bytes::BytesMut::zeroed(READ_CHUNK);
            let mut n = 0;
            while n < READ_CHUNK {
                match file.read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(StoreError::Io { op: "read", name: name.clone(), source: e }));
                        return;
                    }
                }
            }
            if n == 0 {
                return;
            }
            buf.truncate(n);
            if tx.blocking_send(Ok(buf.freeze())).is_err() || n < READ_CHUNK {
                return;
            }
        }
    });
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Write `data` through an [`ObjectWriter`] in blocks of `cap` bytes,
    /// as an upload does (full blocks carried, the rest in the last).
    async fn write(store: &BlobStore, name: &ObjectName, data: &[u8], cap: usize) -> Result<u64, StoreError> {
        write_growing(store, name, data, cap, usize::MAX, cap).await.map(|(n, _)| n)
    }

    /// [`write`], with blocks of `big` bytes once `grow_at` bytes are in;
    /// also returns the capacity of every block filled.
    async fn write_growing(
        store: &BlobStore,
        name: &ObjectName,
        data: &[u8],
        cap: usize,
        grow_at: usize,
        big: usize,
    ) -> Result<(u64, Vec<usize>), StoreError> {
        let mut w = store.writer(name, cap).await?;
        let mut block = w.block().await?;
        let mut caps = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let take = block.remaining().min(rest.len());
            block.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if !rest.is_empty() {
                caps.push(block.capacity());
                if data.len() - rest.len() >= grow_at {
                    w.grow(big);
                }
                let mut full = w.block().await?;
                std::mem::swap(&mut block, &mut full);
                w.put(full, &mut block).await?;
            }
        }
        caps.push(block.capacity());
        Ok((w.finish(block).await?, caps))
    }

    fn local(direct: bool) -> (tempfile::TempDir, BlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = BlobStore::open(&format!("file://{}", dir.path().display()), &S3Settings::default()).unwrap();
        store.set_direct_io(direct);
        (dir, store)
    }

    #[tokio::test]
    async fn file_objects_are_written_whole_with_and_without_direct_io() {
        for direct in [true, false] {
            let (_dir, store) = local(direct);
            for len in [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, 3 * ALIGN + 5, 1_000_003] {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
                let name = ObjectName::random();
                assert_eq!(write(&store, &name, &data, 5 * ALIGN).await.unwrap(), len as u64);
                assert_eq!(store.get_bytes(&name).await.unwrap(), data, "direct {direct} len {len}");
                assert_eq!(store.size(&name).await.unwrap(), len as u64, "cut back to size after padding");
            }
        }
    }

    #[tokio::test]
    async fn blocks_grow_once_asked_and_the_object_stays_whole() {
        for direct in [true, false] {
            let (_dir, store) = local(direct);
            let data: Vec<u8> = (0..200_003usize).map(|i| (i * 31 + 7) as u8).collect();
            let name = ObjectName::random();
            let (n, caps) = write_growing(&store, &name, &data, 2 * ALIGN, 6 * ALIGN, 8 * ALIGN).await.unwrap();
            assert_eq!(n, data.len() as u64);
            assert_eq!(store.get_bytes(&name).await.unwrap(), data, "direct {direct}");
            // Small blocks until the growth; the blocks made before it are
            // replaced as they come back, never filled again.
            let first_big = caps.iter().position(|&c| c == 8 * ALIGN).expect("the blocks grew");
            assert!(first_big >= 3, "{caps:?}");
            assert!(caps[..first_big].iter().all(|&c| c == 2 * ALIGN), "{caps:?}");
            assert!(caps[first_big..].iter().all(|&c| c == 8 * ALIGN), "{caps:?}");
        }
    }

    #[tokio::test]
    async fn a_multipart_writer_hands_out_pooled_blocks_that_fit() {
        let store = BlobStore::open("memory://", &S3Settings::default()).unwrap();
        let mut w = store.writer(&ObjectName::random(), 2 * ALIGN).await.unwrap();
        let Sink::Parts(_, pool) = &w.sink else { panic!("memory:// writes in parts") };
        let pool = pool.clone();
        let mut sent = w.block().await.unwrap();
        sent.extend_from_slice(b"ciphertext");
        let at = sent.as_slice().as_ptr();
        drop(pooled(sent, &pool));
        let again = w.block().await.unwrap();
        assert_eq!((again.as_slice().as_ptr(), again.len()), (at, 0), "the sent block, emptied");
        // After a growth, a smaller block in the pool is not handed out.
        drop(pooled(again, &pool));
        w.grow(4 * ALIGN);
        let big = w.block().await.unwrap();
        assert_eq!(big.capacity(), 4 * ALIGN);
        assert!(pool.lock().unwrap().is_empty());
        w.abort().await;
    }

    #[test]
    fn a_block_returns_to_its_pool_when_its_part_lets_go_of_it() {
        let pool = Pool::default();
        let mut block = Block::new(ALIGN);
        block.extend_from_slice(b"sealed bytes");
        let part = pooled(block, &pool);
        let slice = part.slice(7..);
        drop(part);
        assert!(pool.lock().unwrap().is_empty(), "still held by a slice of the part");
        assert_eq!(&slice[..], b"bytes");
        drop(slice);
        assert_eq!(pool.lock().unwrap().len(), 1);
        // A full pool lets further blocks go; a dropped pool takes none.
        for _ in 0..2 * POOL_BLOCKS {
            drop(pooled(Block::new(ALIGN), &pool));
        }
        assert_eq!(pool.lock().unwrap().len(), POOL_BLOCKS);
        let orphan = pooled(Block::new(ALIGN), &pool);
        drop(pool);
        drop(orphan);
    }

    #[tokio::test]
    async fn an_aborted_object_leaves_no_file_behind() {
        for direct in [true, false] {
            let (dir, store) = local(direct);
            let name = ObjectName::random();
            let mut w = store.writer(&name, 2 * ALIGN).await.unwrap();
            let mut block = w.block().await.unwrap();
            block.extend_from_slice(&[1u8; 2 * ALIGN]);
            let mut full = w.block().await.unwrap();
            std::mem::swap(&mut block, &mut full);
            w.put(full, &mut block).await.unwrap();
            w.abort().await;
            assert!(matches!(store.size(&name).await, Err(StoreError::NotFound(_))));
            let left: Vec<_> = walk(dir.path());
            assert!(left.is_empty(), "files left behind: {left:?}");
        }
    }

    #[test]
    fn a_direct_write_the_file_system_refuses_is_written_once_through_the_page_cache() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obj");
        let Ok(f) = std::fs::OpenOptions::new().write(true).create(true).custom_flags(libc::O_DIRECT).open(&path)
        else {
            return; // no direct I/O here at all: the open-time fallback covers it
        };
        let mut block = Block::new(2 * ALIGN);
        block.extend_from_slice(&[5u8; 2 * ALIGN]);
        let mut direct = true;
        // An offset off the unit: the direct write is refused (EINVAL).
        write_at(&f, &mut direct, block.as_slice(), 100).unwrap();
        assert!(!direct, "the file was switched to buffered writes");
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), 100 + 2 * ALIGN, "every byte once, at its offset");
        assert!(got[100..].iter().all(|&b| b == 5));
    }

    fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
        }
        out
    }
}
