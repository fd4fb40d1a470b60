//! How `kluis serve` accepts connections, and who the client is.
//!
//! This module owns the TCP accept loop ([`serve`], replacing `axum::serve`)
//! and the answer to "which address is this request from" ([`client_ip`],
//! [`ResolveClient`], [`ClientAddr`]), including which proxies may speak for
//! someone else ([`TrustedProxies`], from `KLUIS_TRUSTED_PROXIES`).
//!
//! Invariants:
//! - `X-Forwarded-For` is read only when the TCP peer is a trusted proxy, and
//!   nothing left of a malformed entry is believed.
//! - Resolved addresses are canonical: IPv4-mapped IPv6 is reported as IPv4.
//! - Behind [`ResolveClient`], a request forwarded by a trusted proxy carries
//!   the resolved client both as [`ClientAddr`] and as
//!   `ConnectInfo<SocketAddr>` (port 0): handlers never see the proxy.
//! - A connection with no request in flight is closed once it has been so
//!   for `header_read_timeout`: before its first request, between HTTP/1
//!   keep-alive requests, and on idle HTTP/2 connections alike.
//! - At most `max_connections` connections are open, and at most
//!   `max_connections_per_addr` per [`limit_key`] (trusted proxies exempt);
//!   the excess is closed right after accept.
//! - Once `shutdown` resolves nothing new is accepted, and [`serve`] returns
//!   at most `shutdown_grace` later.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, Request, Response, StatusCode};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use ipnet::{IpNet, Ipv4Net};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

/// The header trusted proxies name the client in (`http` has no constant for it).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The environment variable [`TrustedProxies`] is read from.
pub const TRUSTED_PROXIES_VAR: &str = "KLUIS_TRUSTED_PROXIES";

/// The most an HTTP/1 connection buffers of what the client sent ahead.
const READ_BUFFER: usize = 64 << 10;

/// Entries longer than this are not quoted back in parse errors.
const MAX_QUOTED_ENTRY: usize = 50;

/// Timeouts beyond this are treated as "practically never" (avoids `Instant` overflow).
const MAX_TIMEOUT: Duration = Duration::from_hours(365 * 24);

// ---------------------------------------------------------------------------
// Trusted proxies

/// Networks whose connections may name the real client in `X-Forwarded-For`.
///
/// Parsed from a comma and/or whitespace separated list of CIDR networks or
/// bare addresses, IPv4 and IPv6 (`10.0.0.0/8, 192.168.1.7 fd00::/8`); the
/// empty list trusts nobody. Cheap to clone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
}

impl TrustedProxies {
    /// Whether `ip` (IPv4-mapped IPv6 counts as its IPv4 form) is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The trusted networks, normalised (mapped IPv6 networks as IPv4), for a startup log line.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }
}

impl FromStr for TrustedProxies {
    type Err = TrustedProxiesError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let entries = s.split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty());
        let nets = entries
            .enumerate()
            .map(|(i, entry)| parse_net(entry).map_err(|reason| TrustedProxiesError::new(i + 1, entry, reason)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { nets: nets.into() })
    }
}

/// One list entry: a network without host bits, or a bare address (a /32 or /128).
fn parse_net(entry: &str) -> Result<IpNet, BadEntry> {
    let net = if entry.contains('/') {
        let net: IpNet = entry.parse().map_err(|_| BadEntry::Syntax)?;
        if net.trunc() != net {
            return Err(BadEntry::HostBits(net.trunc()));
        }
        net
    } else {
        IpNet::from(entry.parse::<IpAddr>().map_err(|_| BadEntry::Syntax)?)
    };
    let net = unmap_net(net);
    if net.prefix_len() == 0 {
        return Err(BadEntry::Everyone);
    }
    Ok(net)
}

/// `::ffff:a.b.c.d/n` (n >= 96) as the IPv4 network it denotes, so it matches canonical addresses.
fn unmap_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        other => other,
    }
}

/// Why a `KLUIS_TRUSTED_PROXIES` entry was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
enum BadEntry {
    Syntax,
    HostBits(IpNet),
    Everyone,
}

/// A `KLUIS_TRUSTED_PROXIES` value that does not parse; names the entry by position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedProxiesError {
    position: usize,
    /// The entry itself when short and printable, else its length.
    quoted: Result<String, usize>,
    reason: BadEntry,
}

impl TrustedProxiesError {
    fn new(position: usize, entry: &str, reason: BadEntry) -> Self {
        let printable = entry.len() <= MAX_QUOTED_ENTRY && entry.chars().all(|c| c.is_ascii_graphic());
        let quoted = if printable { Ok(entry.to_string()) } else { Err(entry.len()) };
        Self { position, quoted, reason }
    }

    /// 1-based position of the bad entry in the list.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl fmt::Display for TrustedProxiesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TRUSTED_PROXIES_VAR} entry {}", self.position)?;
        match &self.quoted {
            Ok(entry) => write!(f, " ({entry:?})")?,
            Err(len) => write!(f, " ({len} bytes)")?,
        }
        match &self.reason {
            BadEntry::Syntax => write!(f, " is not an IP address or CIDR network"),
            BadEntry::HostBits(net) => write!(f, " has host bits set: write the network {net} or a bare address"),
            BadEntry::Everyone => write!(f, " covers every address: any client could then choose its own address"),
        }
    }
}

impl std::error::Error for TrustedProxiesError {}

// ---------------------------------------------------------------------------
// Client address resolution

/// The client's address: the TCP peer, unless that is a trusted proxy.
///
/// For a trusted peer, `X-Forwarded-For` (all instances, in order, comma
/// separated) is walked from the right, skipping trusted proxies; the first
/// untrusted address is the client. A malformed entry stops the walk at the
/// last trusted hop seen (nothing left of garbage is believed); a chain of
/// only trusted hops yields the leftmost. An untrusted peer's header is
/// ignored: anyone can send one. The result is canonical (see [`limit_key`]).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let mut last_trusted = peer;
    for (n, value) in headers.get_all(X_FORWARDED_FOR).iter().rev().enumerate() {
        let Ok(text) = value.to_str() else {
            tracing::debug!(instance_from_right = n, "X-Forwarded-For is not text; using the last trusted hop");
            return last_trusted;
        };
        for hop in text.rsplit(',') {
            match parse_hop(hop) {
                Some(ip) if trusted.contains(ip) => last_trusted = ip,
                Some(ip) => return ip,
                None => {
                    tracing::debug!(len = hop.len(), "malformed X-Forwarded-For entry; using the last trusted hop");
                    return last_trusted;
                }
            }
        }
    }
    last_trusted
}

/// One `X-Forwarded-For` entry: `addr`, `addr:port`, `[v6]` or `[v6]:port`, canonicalised.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop
        .parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse::<Ipv6Addr>().ok().map(IpAddr::V6))?;
    Some(ip.to_canonical())
}

/// The key for per-address limits: IPv4 (also when IPv4-mapped) as is, other
/// IPv6 as its /64 network, which one household or customer usually gets
/// whole; per-/128 limits would be trivially bypassed.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
    }
}

// ---------------------------------------------------------------------------
// Middleware and extractor

/// The resolved client address of a request; put there by [`ResolveClient`].
///
/// Extracting it on a route without that layer is a server bug: it answers
/// 500 rather than falling back to the raw peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// This client's key for per-address limits (see [`limit_key`]).
    pub fn limit_key(self) -> IpAddr {
        limit_key(self.0)
    }
}

impl<S> FromRequestParts<S> for ClientAddr {
    type Rejection = StatusCode;

    /// Not an `async fn`: the future must not hold `&S`, so any state type works.
    fn from_request_parts(parts: &mut Parts, _state: &S) -> impl Future<Output = Result<Self, StatusCode>> + Send {
        let found = parts.extensions.get::<ClientAddr>().copied().ok_or_else(|| {
            tracing::error!("ClientAddr extracted on a route without the ResolveClient layer");
            StatusCode::INTERNAL_SERVER_ERROR
        });
        std::future::ready(found)
    }
}

/// Layer that resolves each request's client with [`client_ip`].
///
/// Reads the peer from `ConnectInfo<SocketAddr>` (or axum's
/// `MockConnectInfo<SocketAddr>` in tests) and inserts [`ClientAddr`]. When a
/// trusted proxy forwarded the request, `ConnectInfo<SocketAddr>` is replaced
/// by the client's address with port 0 (its real port is unknown), so
/// handlers that still extract `ConnectInfo` cannot see the proxy either.
#[derive(Clone, Debug, Default)]
pub struct ResolveClient {
    trusted: TrustedProxies,
}

impl ResolveClient {
    /// Resolve clients behind the given proxies.
    pub fn new(trusted: TrustedProxies) -> Self {
        Self { trusted }
    }
}

impl<S> Layer<S> for ResolveClient {
    type Service = ResolveClientService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResolveClientService { inner, trusted: self.trusted.clone() }
    }
}

/// The service [`ResolveClient`] wraps around a route.
#[derive(Clone, Debug)]
pub struct ResolveClientService<S> {
    inner: S,
    trusted: TrustedProxies,
}

impl<S, B> Service<Request<B>> for ResolveClientService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        resolve_client(&mut req, &self.trusted);
        self.inner.call(req)
    }
}

/// Insert [`ClientAddr`] (and rewrite `ConnectInfo` behind a trusted proxy).
fn resolve_client<B>(req: &mut Request<B>, trusted: &TrustedProxies) {
    let ext = req.extensions();
    let peer = ext
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| ext.get::<MockConnectInfo<SocketAddr>>().map(|m| m.0));
    let Some(peer) = peer else {
        tracing::error!("request without ConnectInfo<SocketAddr>: serve the router with net::serve");
        req.extensions_mut().remove::<ClientAddr>();
        return;
    };
    let client = client_ip(peer.ip(), req.headers(), trusted);
    if client != peer.ip().to_canonical() {
        req.extensions_mut().insert(ConnectInfo(SocketAddr::new(client, 0)));
    }
    req.extensions_mut().insert(ClientAddr(client));
}

// ---------------------------------------------------------------------------
// Accept loop

/// Connection limits for [`serve`]. A cap of 0 means "no cap".
#[derive(Clone, Debug)]
pub struct ConnLimits {
    /// How long a connection may have no request in flight: to send its
    /// first request's headers, the next one's on keep-alive, or anything on
    /// an idle HTTP/2 connection. Default 10 s.
    pub header_read_timeout: Duration,
    /// Concurrent connections per [`limit_key`] of the peer; trusted proxies are exempt. Default 32.
    pub max_connections_per_addr: usize,
    /// Concurrent connections in all. Default 4096.
    pub max_connections: usize,
    /// After shutdown, how long in-flight requests may take before their connections are dropped. Default 30 s.
    pub shutdown_grace: Duration,
    /// Peers exempt from the per-address cap (they carry many clients).
    pub trusted_proxies: TrustedProxies,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections_per_addr: 32,
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(30),
            trusted_proxies: TrustedProxies::default(),
        }
    }
}

/// Serve `app` on `listener` (HTTP/1.1 and HTTP/2) until `shutdown` resolves.
///
/// Handlers get `ConnectInfo<SocketAddr>` with the TCP peer, as with
/// `into_make_service_with_connect_info::<SocketAddr>()`. On shutdown the
/// listener is closed at once, idle connections are closed, in-flight
/// requests get `limits.shutdown_grace` to finish, then what is left is
/// dropped. Accept errors are logged and retried, never returned.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let conns = Arc::new(Connections::new(&limits));
    let graceful = GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        reap(&mut tasks);
        match accepted {
            Ok((stream, peer)) => {
                if let Some(slot) = conns.admit(peer) {
                    let watcher = graceful.watcher();
                    tasks.spawn(run_connection(stream, peer, app.clone(), conns.clone(), watcher, slot));
                }
            }
            Err(e) if is_per_connection_error(&e) => tracing::debug!(error = %e, "accept failed"),
            Err(e) => {
                // Out of file descriptors and the like: retrying at once would spin.
                tracing::error!(error = %e, "accept failed; retrying in 1 s");
                tokio::select! {
                    biased;
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
    drop(listener);
    drain(graceful, tasks, limits.shutdown_grace).await;
    Ok(())
}

/// Errors that concern one incoming connection only, not the listener.
fn is_per_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Collect finished connection tasks, logging panics.
fn reap(tasks: &mut JoinSet<()>) {
    while let Some(done) = tasks.try_join_next() {
        if let Err(e) = done
            && e.is_panic()
        {
            tracing::error!("a connection task panicked");
        }
    }
}

/// Let in-flight requests finish for up to `grace`, then drop every connection.
async fn drain(graceful: GracefulShutdown, mut tasks: JoinSet<()>, grace: Duration) {
    reap(&mut tasks);
    tracing::info!(connections = tasks.len(), "shutting down: finishing in-flight requests");
    if tokio::time::timeout(grace.min(MAX_TIMEOUT), graceful.shutdown()).await.is_err() {
        reap(&mut tasks);
        tracing::warn!(connections = tasks.len(), "shutdown grace period over; dropping remaining connections");
    }
    tasks.shutdown().await;
}

/// Shared by the accept loop and the connection tasks: protocol settings and who holds which slot.
struct Connections {
    builder: auto::Builder<TokioExecutor>,
    idle_limit: Duration,
    trusted: TrustedProxies,
    per_addr_max: usize,
    per_addr: Mutex<HashMap<IpAddr, usize>>,
    total: Arc<Semaphore>,
}

impl Connections {
    fn new(limits: &ConnLimits) -> Self {
        let idle_limit = limits.header_read_timeout.min(MAX_TIMEOUT);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // A connection's read buffer is bounded: while a request waits (for
        // an upload slot, say), hyper keeps reading to notice a hang-up, and
        // with its default (about 400 KiB) 200 waiting uploads held 60 MiB.
        builder.http1().timer(TokioTimer::new()).header_read_timeout(idle_limit).max_buf_size(READ_BUFFER);
        builder.http2().timer(TokioTimer::new());
        let total = match limits.max_connections {
            0 => Semaphore::MAX_PERMITS,
            n => n.min(Semaphore::MAX_PERMITS),
        };
        Self {
            builder,
            idle_limit,
            trusted: limits.trusted_proxies.clone(),
            per_addr_max: limits.max_connections_per_addr,
            per_addr: Mutex::new(HashMap::new()),
            total: Arc::new(Semaphore::new(total)),
        }
    }

    /// A slot for a new connection from `peer`, or `None` when a cap is reached.
    fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Slot> {
        let Ok(permit) = self.total.clone().try_acquire_owned() else {
            tracing::debug!(peer = %peer.ip(), "connection refused: max_connections reached");
            return None;
        };
        let capped = self.per_addr_max > 0 && !self.trusted.contains(peer.ip());
        let key = capped.then(|| limit_key(peer.ip()));
        if let Some(key) = key {
            let mut counts = lock(&self.per_addr);
            let count = counts.entry(key).or_insert(0);
            if *count >= self.per_addr_max {
                tracing::debug!(addr = %key, "connection refused: max_connections_per_addr reached");
                return None;
            }
            *count += 1;
        }
        Some(Slot { conns: self.clone(), key, _permit: permit })
    }
}

/// A connection's claim on the global and per-address caps; released on drop.
struct Slot {
    conns: Arc<Connections>,
    key: Option<IpAddr>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(key) = self.key else { return };
        let mut counts = lock(&self.conns.per_addr);
        if let Some(count) = counts.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&key);
            }
        }
    }
}

/// Serve one connection until it ends, idles out, or shutdown finishes it.
async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    conns: Arc<Connections>,
    watcher: Watcher,
    _slot: Slot,
) {
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req| handle(app.clone(), peer, activity.begin(), req))
    };
    let conn = watcher.watch(conns.builder.serve_connection(TokioIo::new(stream), service));
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        () = activity.idle_for(conns.idle_limit) => tracing::debug!(%peer, "closing idle connection"),
    }
}

/// One request: add `ConnectInfo`, run the router, keep the connection busy until the body is sent.
async fn handle(
    app: Router,
    peer: SocketAddr,
    busy: Busy,
    mut req: Request<Incoming>,
) -> Result<Response<TrackedBody>, Infallible> {
    req.extensions_mut().insert(ConnectInfo(peer));
    let response = app.oneshot(req).await?;
    Ok(response.map(|body| TrackedBody { body, _busy: busy }))
}

/// Requests in flight on one connection, and since when it has had none.
struct Activity {
    state: Mutex<(usize, Instant)>,
}

impl Activity {
    fn new() -> Self {
        Self { state: Mutex::new((0, Instant::now())) }
    }

    /// Mark a request in flight until the returned guard drops.
    fn begin(self: &Arc<Self>) -> Busy {
        lock(&self.state).0 += 1;
        Busy(self.clone())
    }

    /// Resolves once no request has been in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let (in_flight, idle_since) = *lock(&self.state);
            let now = Instant::now();
            let deadline = if in_flight == 0 { idle_since + limit } else { now + limit };
            if in_flight == 0 && deadline <= now {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A request in flight (see [`Activity::begin`]).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        state.0 = state.0.saturating_sub(1);
        if state.0 == 0 {
            state.1 = Instant::now();
        }
    }
}

/// A response body that keeps its request counted as in flight until hyper drops it.
struct TrackedBody {
    body: Body,
    _busy: Busy,
}

impl HttpBody for TrackedBody {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Lock, ignoring poisoning: the guarded data (counters, instants) stays consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::{mpsc, oneshot};
    use tokio::task::JoinHandle;
    use tokio::time::timeout;

    use super::*;

    /// Upper bound for anything that should happen "soon" on a loaded machine.
    const SOON: Duration = Duration::from_secs(5);

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn proxies(s: &str) -> TrustedProxies {
        s.parse().expect("test proxy list")
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(v).expect("test header"));
        }
        headers
    }

    // --- TrustedProxies -------------------------------------------------

    #[test]
    fn parses_mixed_list() {
        let t = proxies(" 10.0.0.0/8, 192.168.1.7 fd00::/8,,\t2001:db8::1 ::ffff:172.16.0.0/108 ");
        assert_eq!(t.networks().len(), 5);
        assert!(t.contains(ip("10.200.3.4")));
        assert!(t.contains(ip("192.168.1.7")));
        assert!(!t.contains(ip("192.168.1.8")));
        assert!(t.contains(ip("fd12::1")));
        assert!(t.contains(ip("2001:db8::1")));
        assert!(!t.contains(ip("2001:db8::2")));
        assert!(t.contains(ip("172.16.9.9")), "mapped network is stored as IPv4");
        assert!(!t.contains(ip("11.0.0.1")));
    }

    #[test]
    fn mapped_addresses_match_their_ipv4_form() {
        let t = proxies("10.0.0.0/8");
        assert!(t.contains(ip("::ffff:10.1.2.3")));
        assert!(!t.contains(ip("::ffff:11.1.2.3")));
        assert!(proxies("::ffff:10.1.2.3").contains(ip("10.1.2.3")));
    }

    #[test]
    fn empty_list_trusts_nobody() {
        for s in ["", "  ", " , ,"] {
            let t = proxies(s);
            assert!(t.is_empty());
            assert!(!t.contains(ip("127.0.0.1")));
        }
    }

    #[test]
    fn bad_entries_are_named_by_position() {
        let cases = [
            ("10.0.0.0/8, nonsense", 2),
            ("10.0.0.1/33", 1),
            ("1.2.3.4 5.6.7.8 10.1.2.3/8", 3),
            ("0.0.0.0/0", 1),
            ("::/0", 1),
            ("::ffff:0:0/96", 1),
            ("fe80::1%eth0", 1),
            ("10.0.0.0/", 1),
        ];
        for (input, position) in cases {
            let err = input.parse::<TrustedProxies>().expect_err(input);
            assert_eq!(err.position(), position, "{input}: {err}");
            assert!(err.to_string().contains(&format!("KLUIS_TRUSTED_PROXIES entry {position}")), "{err}");
        }
        let err = "10.1.2.3/8".parse::<TrustedProxies>().expect_err("host bits");
        assert!(err.to_string().contains("10.0.0.0/8"), "suggests the network: {err}");
    }

    #[test]
    fn long_bad_entry_is_not_echoed() {
        let huge = format!("10.0.0.0/8,{}", "x".repeat(100_000));
        let err = huge.parse::<TrustedProxies>().expect_err("huge");
        let msg = err.to_string();
        assert!(msg.len() < 200, "{msg}");
        assert!(msg.contains("entry 2") && msg.contains("100000 bytes"), "{msg}");
    }

    // --- client_ip --------------------------------------------------------

    #[test]
    fn client_ip_table() {
        let t = proxies("10.0.0.0/8, fd00::/8");
        let cases: &[(&str, &[&str], &str, &str)] = &[
            ("203.0.113.5", &["198.51.100.1"], "203.0.113.5", "untrusted peer: header ignored"),
            ("203.0.113.5", &[], "203.0.113.5", "untrusted peer, no header"),
            ("10.0.0.1", &[], "10.0.0.1", "trusted peer, no header"),
            ("10.0.0.1", &["198.51.100.1"], "198.51.100.1", "one proxy"),
            ("10.0.0.1", &["6.6.6.6, 198.51.100.1"], "198.51.100.1", "rightmost untrusted, spoofed left part ignored"),
            ("10.0.0.1", &["6.6.6.6, 198.51.100.1, 10.0.0.2, 10.0.0.3"], "198.51.100.1", "chain of trusted proxies"),
            ("10.0.0.1", &["10.0.0.9, 10.0.0.2"], "10.0.0.9", "only trusted hops: leftmost"),
            ("10.0.0.1", &["6.6.6.6, garbage, 10.0.0.2"], "10.0.0.2", "garbage stops at the last trusted hop"),
            ("10.0.0.1", &["6.6.6.6, garbage"], "10.0.0.1", "garbage right away: the peer"),
            ("10.0.0.1", &["6.6.6.6,, 10.0.0.2"], "10.0.0.2", "empty entry is malformed"),
            ("10.0.0.1", &["unknown"], "10.0.0.1", "obfuscated identifier"),
            ("10.0.0.1", &["6.6.6.6", "198.51.100.1"], "198.51.100.1", "last header instance is rightmost"),
            (
                "10.0.0.1",
                &["6.6.6.6, 198.51.100.1", "10.0.0.2"],
                "198.51.100.1",
                "walk continues into earlier instance",
            ),
            ("10.0.0.1", &["6.6.6.6", "garbage"], "10.0.0.1", "garbage in later instance stops the walk"),
            ("10.0.0.1", &["198.51.100.1:4711"], "198.51.100.1", "address with port"),
            ("10.0.0.1", &["[2001:db8::7]:4711"], "2001:db8::7", "bracketed IPv6 with port"),
            ("10.0.0.1", &["[2001:db8::7]"], "2001:db8::7", "bracketed IPv6"),
            ("fd00::1", &["2001:db8::7, fd00::2"], "2001:db8::7", "IPv6 proxies"),
            ("::ffff:10.0.0.1", &["::ffff:198.51.100.1"], "198.51.100.1", "mapped peer and hop, canonical result"),
            ("::ffff:10.0.0.1", &["::ffff:10.0.0.2"], "10.0.0.2", "mapped trusted hop"),
            ("::ffff:203.0.113.5", &["1.1.1.1"], "203.0.113.5", "mapped untrusted peer, canonical"),
        ];
        for (peer, headers, want, why) in cases {
            assert_eq!(client_ip(ip(peer), &xff(headers), &t), ip(want), "{why}");
        }
    }

    #[test]
    fn non_text_header_stops_the_walk() {
        let t = proxies("10.0.0.0/8");
        let mut headers = xff(&["6.6.6.6"]);
        headers.append(X_FORWARDED_FOR, HeaderValue::from_bytes(b"1.2.3.4\xff").expect("opaque header"));
        assert_eq!(client_ip(ip("10.0.0.1"), &headers, &t), ip("10.0.0.1"));
    }

    #[test]
    fn limit_key_table() {
        let cases = [
            ("192.0.2.1", "192.0.2.1"),
            ("::ffff:192.0.2.1", "192.0.2.1"),
            ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::"),
            ("2001:db8:1:3::1", "2001:db8:1:3::"),
            ("::1", "::"),
        ];
        for (input, want) in cases {
            assert_eq!(limit_key(ip(input)), ip(want), "{input}");
        }
        assert_eq!(ClientAddr(ip("2001:db8::1")).limit_key(), ip("2001:db8::"));
    }

    // --- ResolveClient / ClientAddr, without a server ----------------------

    fn whoami(trusted: Option<TrustedProxies>) -> Router {
        let app = Router::new().route(
            "/client",
            get(|ClientAddr(c): ClientAddr, ConnectInfo(p): ConnectInfo<SocketAddr>| async move { format!("{c} {p}") }),
        );
        match trusted {
            Some(t) => app.layer(ResolveClient::new(t)),
            None => app,
        }
    }

    async fn body_text(resp: Response<Body>) -> String {
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16).await.expect("test body");
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn client_addr_without_layer_is_a_server_error() {
        let req = Request::get("/client").body(Body::empty()).expect("request");
        let app = whoami(None).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9))));
        let resp = app.oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn resolve_client_with_mock_connect_info() {
        let peer = SocketAddr::from(([10, 0, 0, 1], 5555));
        let app = whoami(Some(proxies("10.0.0.0/8"))).layer(MockConnectInfo(peer));
        let req = Request::get("/client").header("x-forwarded-for", "198.51.100.1").body(Body::empty()).expect("req");
        let resp = app.clone().oneshot(req).await.expect("infallible");
        assert_eq!(body_text(resp).await, "198.51.100.1 198.51.100.1:0", "proxy hidden from ConnectInfo too");
        let req = Request::get("/client").body(Body::empty()).expect("req");
        let resp = app.oneshot(req).await.expect("infallible");
        assert_eq!(body_text(resp).await, "10.0.0.1 10.0.0.1:5555", "no header: the proxy itself");
    }

    #[tokio::test]
    async fn resolve_client_without_peer_info_rejects() {
        let req = Request::get("/client").body(Body::empty()).expect("request");
        let resp = whoami(Some(TrustedProxies::default())).oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    // --- serve: helpers -------------------------------------------------

    struct Server {
        addr: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<io::Result<()>>,
    }

    impl Server {
        async fn start(app: Router, limits: ConnLimits) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("local addr");
            let (tx, rx) = oneshot::channel::<()>();
            let task = tokio::spawn(serve(listener, app, limits, async move {
                let _ = rx.await;
            }));
            Self { addr, stop: Some(tx), task }
        }

        async fn connect(&self) -> TcpStream {
            timeout(SOON, TcpStream::connect(self.addr)).await.expect("connect in time").expect("connect")
        }

        /// Signal shutdown.
        fn stop(&mut self) {
            if let Some(tx) = self.stop.take() {
                let _ = tx.send(());
            }
        }
    }

    fn limits(header_read_timeout: Duration) -> ConnLimits {
        ConnLimits { header_read_timeout, ..ConnLimits::default() }
    }

    fn hello() -> Router {
        Router::new()
            .route("/", get(|| async { "hello" }))
            .route("/peer", get(|ConnectInfo(p): ConnectInfo<SocketAddr>| async move { p.ip().to_string() }))
    }

    /// Send a GET and read one response (status, body); `extra` are header lines ending in CRLF.
    async fn get_on(stream: &mut TcpStream, path: &str, extra: &str) -> (u16, String) {
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n");
        timeout(SOON, stream.write_all(req.as_bytes())).await.expect("write in time").expect("write");
        timeout(SOON, read_response(stream)).await.expect("response in time").expect("response")
    }

    /// Read one `Content-Length` delimited HTTP/1.1 response.
    async fn read_response(stream: &mut TcpStream) -> io::Result<(u16, String)> {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return Ok((status, String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned()));
                }
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Wait (at most `within`) for the server to close: EOF or a reset. Returns how long it took.
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> Duration {
        let started = Instant::now();
        let mut chunk = [0u8; 1024];
        loop {
            match timeout(within.saturating_sub(started.elapsed()), stream.read(&mut chunk)).await {
                Ok(Ok(0) | Err(_)) => return started.elapsed(),
                Ok(Ok(_)) => continue,
                Err(_) => panic!("connection still open after {within:?}"),
            }
        }
    }

    // --- serve: timeouts --------------------------------------------------

    #[tokio::test]
    async fn slowloris_partial_request_line_is_disconnected() {
        let server = Server::start(hello(), limits(Duration::from_secs(1))).await;
        let mut stream = server.connect().await;
        stream.write_all(b"GET / HTT").await.expect("write");
        let took = closed_within(&mut stream, SOON).await;
        assert!(took >= Duration::from_millis(700), "closed by the timeout, not at once: {took:?}");
    }

    #[tokio::test]
    async fn silent_connection_is_disconnected() {
        let server = Server::start(hello(), limits(Duration::from_secs(1))).await;
        let mut stream = server.connect().await;
        let took = closed_within(&mut stream, SOON).await;
        assert!(took >= Duration::from_millis(700), "{took:?}");
    }

    #[tokio::test]
    async fn partial_http2_preface_is_disconnected() {
        let server = Server::start(hello(), limits(Duration::from_secs(1))).await;
        let mut stream = server.connect().await;
        stream.write_all(b"PRI * HTTP/2.0\r\n").await.expect("write");
        closed_within(&mut stream, SOON).await;
    }

    #[tokio::test]
    async fn http2_is_spoken_and_idle_http2_is_closed() {
        let server = Server::start(hello(), limits(Duration::from_secs(1))).await;
        let mut stream = server.connect().await;
        // Connection preface plus an empty SETTINGS frame.
        stream.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.expect("write");
        let mut frame_head = [0u8; 9];
        timeout(SOON, stream.read_exact(&mut frame_head)).await.expect("in time").expect("server frame");
        assert_eq!(frame_head[3], 0x4, "server opens with SETTINGS");
        let took = closed_within(&mut stream, SOON).await;
        assert!(took >= Duration::from_millis(500), "{took:?}");
    }

    #[tokio::test]
    async fn full_request_is_served_and_keep_alive_works_then_idles_out() {
        let server = Server::start(hello(), limits(Duration::from_secs(1))).await;
        let mut stream = server.connect().await;
        assert_eq!(get_on(&mut stream, "/", "").await, (200, "hello".to_string()));
        assert_eq!(get_on(&mut stream, "/peer", "").await, (200, "127.0.0.1".to_string()));
        let took = closed_within(&mut stream, SOON).await;
        assert!(took >= Duration::from_millis(700), "idle keep-alive closed by the timeout: {took:?}");
    }

    #[tokio::test]
    async fn slow_handler_and_slow_body_outlive_the_idle_timeout() {
        let app = Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(2500)).await;
                    "late"
                }),
            )
            .route("/drip", get(|| async { Body::new(Drip { left: 4, sleep: None }) }));
        let server = Server::start(app, limits(Duration::from_secs(1))).await;
        let mut stream = server.connect().await;
        assert_eq!(get_on(&mut stream, "/slow", "").await, (200, "late".to_string()));
        let req = b"GET /drip HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
        stream.write_all(req).await.expect("write");
        let mut all = Vec::new();
        timeout(Duration::from_secs(10), stream.read_to_end(&mut all)).await.expect("in time").expect("read");
        let text = String::from_utf8_lossy(&all);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert_eq!(text.matches("drop").count(), 4, "all chunks arrived: {text}");
    }

    /// A body that yields `left` chunks 600 ms apart.
    struct Drip {
        left: u32,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }

    impl HttpBody for Drip {
        type Data = axum::body::Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Self::Data>, Infallible>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(Duration::from_millis(600))));
            std::task::ready!(sleep.as_mut().poll(cx));
            self.sleep = None;
            self.left -= 1;
            Poll::Ready(Some(Ok(Frame::data(axum::body::Bytes::from_static(b"drop\n")))))
        }
    }

    // --- serve: connection caps ---------------------------------------------

    #[tokio::test]
    async fn fourth_connection_from_one_address_is_refused() {
        let limits = ConnLimits { max_connections_per_addr: 3, ..limits(Duration::from_secs(30)) };
        let server = Server::start(hello(), limits).await;
        let mut first = Vec::new();
        for _ in 0..3 {
            first.push(server.connect().await);
        }
        let mut fourth = server.connect().await;
        let took = closed_within(&mut fourth, Duration::from_secs(3)).await;
        assert!(took < Duration::from_secs(3));
        for stream in &mut first {
            assert_eq!(get_on(stream, "/", "").await.0, 200);
        }
        // A freed slot is usable again.
        drop(first.pop());
        let deadline = Instant::now() + SOON;
        loop {
            let mut again = server.connect().await;
            let req = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n";
            if again.write_all(req).await.is_ok()
                && timeout(SOON, read_response(&mut again)).await.is_ok_and(|r| r.is_ok())
            {
                break;
            }
            assert!(Instant::now() < deadline, "slot never released");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn trusted_proxy_has_no_per_address_cap() {
        let limits = ConnLimits {
            max_connections_per_addr: 1,
            trusted_proxies: proxies("127.0.0.1"),
            ..limits(Duration::from_secs(30))
        };
        let server = Server::start(hello(), limits).await;
        let mut a = server.connect().await;
        let mut b = server.connect().await;
        let mut c = server.connect().await;
        for stream in [&mut c, &mut b, &mut a] {
            assert_eq!(get_on(stream, "/", "").await.0, 200);
        }
    }

    #[tokio::test]
    async fn global_cap_refuses_beyond_max_connections() {
        let limits = ConnLimits { max_connections: 2, max_connections_per_addr: 0, ..limits(Duration::from_secs(30)) };
        let server = Server::start(hello(), limits).await;
        let mut a = server.connect().await;
        let mut b = server.connect().await;
        let mut c = server.connect().await;
        closed_within(&mut c, Duration::from_secs(3)).await;
        assert_eq!(get_on(&mut a, "/", "").await.0, 200);
        assert_eq!(get_on(&mut b, "/", "").await.0, 200);
    }

    // --- serve + ResolveClient ------------------------------------------------

    #[tokio::test]
    async fn served_requests_resolve_the_client() {
        let trusted = proxies("127.0.0.0/8");
        let limits = ConnLimits { trusted_proxies: trusted.clone(), ..ConnLimits::default() };
        let server = Server::start(whoami(Some(trusted)), limits).await;
        let mut stream = server.connect().await;
        let (status, body) = get_on(&mut stream, "/client", "X-Forwarded-For: 6.6.6.6, 198.51.100.1\r\n").await;
        assert_eq!((status, body.as_str()), (200, "198.51.100.1 198.51.100.1:0"));

        let untrusting = Server::start(whoami(Some(TrustedProxies::default())), ConnLimits::default()).await;
        let mut stream = untrusting.connect().await;
        let local = stream.local_addr().expect("local addr");
        let (status, body) = get_on(&mut stream, "/client", "X-Forwarded-For: 198.51.100.1\r\n").await;
        assert_eq!((status, body), (200, format!("127.0.0.1 {local}")), "spoofed header ignored");
    }

    // --- serve: shutdown ----------------------------------------------------

    /// `/slow` reports on `started`, then waits for a permit on `release` (never, if none is added).
    fn slow_app(started: mpsc::UnboundedSender<()>, release: Arc<Semaphore>) -> Router {
        hello().route(
            "/slow",
            get(move || async move {
                let _ = started.send(());
                let _permit = release.acquire().await;
                "done"
            }),
        )
    }

    #[tokio::test]
    async fn shutdown_finishes_in_flight_requests_and_refuses_new_connections() {
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let release = Arc::new(Semaphore::new(0));
        let mut server = Server::start(slow_app(started_tx, release.clone()), limits(Duration::from_secs(30))).await;
        let mut idle = server.connect().await;
        assert_eq!(get_on(&mut idle, "/", "").await.0, 200);
        let mut busy = server.connect().await;
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n").await.expect("write");
        timeout(SOON, started.recv()).await.expect("handler started in time");

        server.stop();
        // While /slow is still in flight: no new connections, idle ones closed.
        let deadline = Instant::now() + SOON;
        while TcpStream::connect(server.addr).await.is_ok() {
            assert!(Instant::now() < deadline, "still accepting after shutdown");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        closed_within(&mut idle, SOON).await;
        // Keep /slow in flight a while after shutdown: it must survive that.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!server.task.is_finished(), "serve waits for the in-flight request");

        release.add_permits(1);
        let (status, body) = timeout(SOON, read_response(&mut busy)).await.expect("in time").expect("response");
        assert_eq!((status, body.as_str()), (200, "done"));
        let result = timeout(SOON, server.task).await.expect("serve returns").expect("no panic");
        assert!(result.is_ok());
    }

    #[tokio::test]
    async fn shutdown_grace_period_is_bounded() {
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let limits = ConnLimits { shutdown_grace: Duration::from_millis(500), ..limits(Duration::from_secs(30)) };
        let mut server = Server::start(slow_app(started_tx, Arc::new(Semaphore::new(0))), limits).await;
        let mut busy = server.connect().await;
        busy.write_all(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n").await.expect("write");
        timeout(SOON, started.recv()).await.expect("handler started in time");
        let stopped_at = Instant::now();
        server.stop();
        let result = timeout(SOON, server.task).await.expect("serve returns within the grace").expect("no panic");
        assert!(result.is_ok());
        assert!(stopped_at.elapsed() >= Duration::from_millis(400), "waited for the grace period");
        let mut rest = Vec::new();
        let read = timeout(SOON, busy.read_to_end(&mut rest)).await.expect("connection dropped");
        assert!(read.is_err() || rest.is_empty(), "no response after the grace period");
    }

    /// Compiles only if `ClientAddr` is an extractor for a state that is neither `Send` nor `Sync`.
    #[test]
    fn client_addr_works_for_any_state() {
        fn extractor<S, T: FromRequestParts<S>>() {}
        extractor::<std::rc::Rc<std::cell::Cell<u8>>, ClientAddr>();
    }

    #[test]
    fn default_limits() {
        let d = ConnLimits::default();
        assert_eq!(d.header_read_timeout, Duration::from_secs(10));
        assert_eq!((d.max_connections_per_addr, d.max_connections), (32, 4096));
        assert_eq!(d.shutdown_grace, Duration::from_secs(30));
        assert!(d.trusted_proxies.is_empty());
    }
}
