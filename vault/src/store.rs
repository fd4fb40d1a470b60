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
//!   `put_stream` returns, so a committed catalog row never points at bytes
//!   still in the page cache;
//! - requests to a dead endpoint fail within seconds, not minutes (short
//!   connect timeout, few retries), with an error naming the operation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt, TryStreamExt};
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
            return Ok(BlobStore { inner, kind: Kind::S3, description: format!("{url} at {endpoint}") });
        }
        if url == "memory://" || url == "memory:" {
            return Ok(BlobStore {
                inner: Arc::new(InMemory::new()),
                kind: Kind::Memory,
                description: "memory://".into(),
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

    /// Stream `body` into a new object. Memory stays bounded by
    /// `PART_SIZE * (PARTS_IN_FLIGHT + 1)`; on any error the upload is
    /// aborted and nothing becomes visible. Returns the bytes written.
    pub async fn put_stream<S, E>(&self, name: &ObjectName, body: S) -> Result<u64, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if let Kind::File(root) = &self.kind {
            return put_file(root.clone(), name, body).await;
        }
        let path = name.path();
        let upload = self.inner.put_multipart(&path).await.map_err(Self::err("multipart start", name))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut body = std::pin::pin!(body);
        let mut written = 0u64;
        let result: Result<(), StoreError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StoreError::Source(e.into()))?;
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(Self::err("part upload", name))?;
                written += chunk.len() as u64;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await.map_err(Self::err("multipart complete", name))?;
        Ok(written)
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
/// (`open_local`, `decrypt_local` in `lib.rs`).
const READ_CHUNK: usize = 64 << 10;
/// Sealed segments (64 KiB each) queued for the file:// writer thread:
/// enough to keep encryption and writing overlapped, little per upload.
const WRITE_QUEUE: usize = 4;
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

/// Write a file:// object on one blocking thread: into a partial file, then
/// fsync, rename into place and fsync the directory. The object appears only
/// when complete; on any error the partial file is removed.
async fn put_file<S, E>(root: PathBuf, name: &ObjectName, body: S) -> Result<u64, StoreError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use std::io::Write;
    let dest = root.join(name.as_str());
    let dir = dest.parent().map(|p| p.to_path_buf()).unwrap_or_else(|| root.clone());
    let tmp = partial_path(&root, name);
    let io = |op: &'static str| {
        let n = name.to_string();
        move |source: std::io::Error| StoreError::Io { op, name: n, source }
    };
    create_dir_durable(&dir).map_err(io("create directory"))?;
    // `None` marks the end of a complete body.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<Bytes>>(WRITE_QUEUE);
    let (tmp2, dest2, dir2) = (tmp.clone(), dest.clone(), dir.clone());
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
        let mut f = std::fs::File::create(&tmp2)?;
        let (mut flushed, mut pending) = (0u64, 0usize);
        let complete = loop {
            match rx.blocking_recv() {
                Some(Some(b)) => {
                    f.write_all(&b)?;
                    pending += b.len();
                    if pending >= WRITEBACK_EVERY {
                        start_writeback(&f, flushed, pending);
                        flushed += pending as u64;
                        pending = 0;
                    }
                }
                Some(None) => break true,
                None => break false,
            }
        };
        if !complete {
            drop(f);
            let _ = std::fs::remove_file(&tmp2);
            return Ok(false);
        }
        f.sync_all()?;
        std::fs::rename(&tmp2, &dest2)?;
        std::fs::File::open(&dir2)?.sync_all()?;
        Ok(true)
    });
    let mut body = std::pin::pin!(body);
    let mut written = 0u64;
    let mut failed = None;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(c) => {
                written += c.len() as u64;
                if tx.send(Some(c)).await.is_err() {
                    break; // the writer failed; its error follows
                }
            }
            Err(e) => {
                failed = Some(StoreError::Source(e.into()));
                break;
            }
        }
    }
    if failed.is_none() {
        let _ = tx.send(None).await;
    }
    drop(tx);
    let result = writer.await.map_err(|e| StoreError::Io {
        op: "write",
        name: name.to_string(),
        source: std::io::Error::other(e),
    })?;
    if let Some(e) = failed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    match result {
        Ok(true) => Ok(written),
        Ok(false) => Err(StoreError::Io {
            op: "write",
            name: name.to_string(),
            source: std::io::Error::other("writer stopped early"),
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(StoreError::Io { op: "write", name: name.to_string(), source: e })
        }
    }
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
