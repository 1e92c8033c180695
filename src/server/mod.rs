//! Listeners and connections: TCP accept with a connection cap, TLS handshake,
//! HTTP/1.1 and HTTP/2 with limits, and the plain-HTTP redirect listener.

mod batch;
pub mod metrics;
pub mod reload;

use crate::body::{Body, empty};
use crate::request;
use crate::server::reload::PolicyStore;
use crate::web::state::Shared;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Why ward could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("the policy has no TLS certificate loaded")]
    NoTls,
    #[error("cannot share the listening socket between the cores: {0}")]
    Share(io::Error),
}

/// Binds the HTTPS listener (and the redirect listener, if configured).
pub async fn bind(store: &PolicyStore) -> Result<(TcpListener, Option<TcpListener>), ServeError> {
    let rt = store.current();
    let server = &rt.policy.server;
    let tls = TcpListener::bind(server.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: server.listen,
            source,
        })?;
    let redirect = match server.redirect_http {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind { addr, source })?,
        ),
        None => None,
    };
    Ok((tls, redirect))
}

/// Accepts HTTPS connections on every core until `shutdown` resolves, then waits (up to a
/// bound) for open connections to finish.
///
/// Each core runs its own single-threaded runtime accepting from the same socket, as nginx
/// runs its workers: a connection stays on the core that took it, with no hand-over between
/// threads per request. The caller's runtime is the first such worker (and must be
/// single-threaded too); the others run on threads started here.
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let store = shared.store.clone();
    if store.current().policy.server.tls.is_none() {
        return Err(ServeError::NoTls);
    }
    let max = store.current().policy.server.max_connections;
    let slots = Arc::new(Semaphore::new(max));
    // Tells the accept loops to stop and open connections to finish their requests and close.
    let (stopping, stop_rx) = tokio::sync::watch::channel(false);
    let listener = more_workers(&shared, listener, &slots, &stop_rx)?;
    let stop_accepting = async move {
        shutdown.await;
        let _ = stopping.send(true);
    };
    accept(shared, listener, slots.clone(), stop_rx, stop_accepting).await;
    let open = max.saturating_sub(slots.available_permits());
    tracing::info!(
        connections = open,
        "stopped accepting; finishing the requests under way"
    );
    // Let requests in flight finish, but not forever.
    let drained = tokio::time::timeout(DRAIN_TIME, slots.acquire_many(max as u32)).await;
    if !matches!(drained, Ok(Ok(_))) {
        let open = max.saturating_sub(slots.available_permits());
        tracing::warn!(
            connections = open,
            "connections still open after {}s are cut off",
            DRAIN_TIME.as_secs()
        );
    }
    Ok(())
}

/// Starts one accept loop per further core, each on a thread with a single-threaded runtime
/// of its own, sharing the connection cap; returns the listener for the caller's loop.
fn more_workers(
    shared: &Arc<Shared>,
    listener: TcpListener,
    slots: &Arc<Semaphore>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<TcpListener, ServeError> {
    let cores = crate::proxy::workers();
    if cores < 2 {
        return Ok(listener);
    }
    // The same socket under several descriptors; each runtime watches its own. The kernel
    // gives each connection to one of them.
    let std_listener = listener.into_std().map_err(ServeError::Share)?;
    for n in 1..cores {
        let Ok(copy) = std_listener.try_clone() else {
            tracing::warn!("cannot share the listening socket with another core");
            break;
        };
        let (shared, slots, stop) = (shared.clone(), slots.clone(), stop.clone());
        let started = std::thread::Builder::new()
            .name(format!("ward-worker-{n}"))
            .spawn(move || worker(n, shared, copy, slots, stop));
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start a worker thread");
            break;
        }
    }
    TcpListener::from_std(std_listener).map_err(ServeError::Share)
}

/// A further core's worker: its own single-threaded runtime accepting from `listener` until
/// ward stops accepting, then serving what it has until the process ends.
fn worker(
    n: usize,
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    slots: Arc<Semaphore>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    crate::proxy::use_pool(n);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!(error = %e, "cannot start a worker's runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "a worker cannot listen");
                return;
            }
        };
        let mut until = stop.clone();
        let stop_accepting = async move {
            let _ = until.wait_for(|stopping| *stopping).await;
        };
        accept(shared, listener, slots, stop, stop_accepting).await;
        // Its connections finish on this runtime; the first worker waits for them (up to
        // DRAIN_TIME), and the process's end stops this thread.
        std::future::pending::<()>().await
    });
}

/// One worker's accept loop: takes connections while the cap allows, until `stop_accepting`.
async fn accept(
    shared: Arc<Shared>,
    listener: TcpListener,
    slots: Arc<Semaphore>,
    stop: tokio::sync::watch::Receiver<bool>,
    stop_accepting: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop_accepting);
    loop {
        // Waiting for a free slot before accepting leaves extra clients in the
        // kernel's backlog instead of spending memory on them.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut stop_accepting => break,
        };
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop_accepting => break,
        };
        let shared = shared.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            // The slot is freed when the connection ends, unless a WebSocket
            // tunnel took it over (then when the tunnel closes).
            let slot = crate::proxy::ConnectionSlot::new(permit);
            connection(shared, tcp, peer, slot, stop).await;
        });
    }
}

/// The header count hyper's HTTP/1.1 parser allows when not told another.
const HYPER_MAX_HEADERS: usize = 100;

/// The longest ward waits at shutdown for requests under way to finish.
pub const DRAIN_TIME: Duration = Duration::from_secs(10);

async fn connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    slot: crate::proxy::ConnectionSlot,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let rt = shared.store.current();
    let server = &rt.policy.server;
    let Some(tls) = server.tls.clone() else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let stream = match tokio::time::timeout(server.handshake_timeout, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(peer = %peer, "TLS handshake timed out");
            return;
        }
    };

    let mut builder = auto::Builder::new(TokioExecutor::new());
    let mut h1 = builder.http1();
    h1.timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .max_buf_size(server.max_header_bytes);
    // hyper's own limit is the same 100, and kept so it parses into a fixed array;
    // given one, it fills an array of that size for every request first.
    if server.max_headers != HYPER_MAX_HEADERS {
        h1.max_headers(server.max_headers);
    }
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(server.max_header_bytes as u32)
        .max_concurrent_streams(250)
        // Rapid reset (CVE-2023-44487) and "MadeYouReset" (CVE-2025-8671):
        // past these, h2 ends the connection (tests/hostile_h2.rs). Stated
        // here so a change of default upstream does not loosen them unseen.
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let idle_limit = server.keepalive_timeout;
    let max_headers = server.max_headers;
    drop(rt);

    // An enrolled device's certificate (verified against the device CA by rustls).
    let device: Option<Arc<crate::tls::Device>> = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| Arc::new(crate::tls::device_of(c.as_ref())));
    let http1 = stream.get_ref().1.alpn_protocol() != Some(b"h2");
    let (stream, heads) = framing::Watched::new(stream, http1);
    let stream = batch::Batched::new(stream, !http1);
    let due = stream.due();
    let requests = activity.clone();
    let service = service_fn(move |mut req: Request<Incoming>| {
        let in_flight = requests.begin();
        // h2 limits a request's header bytes but not its fields; hold HTTP/2 to
        // HTTP/1.1's count, so an app never gets more than hyper lets through.
        let too_many =
            req.version() == http::Version::HTTP_2 && header_count(req.headers()) > max_headers;
        let shared = shared.clone();
        let device = device.clone();
        if req.version() < http::Version::HTTP_2 {
            let head = heads.next();
            // Put back the Content-Length hyper dropped beside a Transfer-Encoding,
            // so the request is refused as ambiguous; the same when the framing
            // could not be followed.
            if req.headers().contains_key(header::TRANSFER_ENCODING) {
                let dropped = match head {
                    Some(framing::Head::Plain) => None,
                    Some(framing::Head::BothLengths(v)) => Some(v),
                    None => Some(HeaderValue::from_static("0")),
                };
                if let Some(v) = dropped {
                    req.headers_mut().insert(header::CONTENT_LENGTH, v);
                }
            }
        }
        // Only a tunnel takes the connection's slot over (see `proxy::Forward::tunnel_slot`).
        if crate::proxy::headers::wants_websocket(req.headers()) {
            req.extensions_mut().insert(slot.clone());
        }
        // Boxed: the request's future is several kilobytes, and hyper moves it (HTTP/2 spawns
        // each stream as a task) where a pointer is cheaper to move.
        Box::pin(async move {
            let resp = if too_many {
                tracing::debug!(peer = %peer, "HTTP/2 request with too many header fields refused");
                let mut r = Response::new(empty());
                *r.status_mut() = StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
                r
            } else {
                request::handle(shared, peer, device, req).await?
            };
            Ok::<_, Infallible>(resp.map(|b| crate::body::guarded(b, in_flight)))
        })
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut closing = false;
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            res = batch::Flushed::new(conn.as_mut(), &due) => {
                if let Err(e) = res {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                break;
            }
            // ward is stopping: finish the requests under way, take no more.
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(idle_limit / 4) => {
                if activity.idle_for() >= idle_limit {
                    if closing {
                        // Asked to close and still silent: drop it.
                        break;
                    }
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                    activity.touch();
                }
            }
        }
    }
}

/// Header fields as HTTP/1.1 would count them: HTTP/2 clients send each
/// cookie as a field of its own, where HTTP/1.1 has one `Cookie` header.
fn header_count(headers: &http::HeaderMap) -> usize {
    let cookies = headers.get_all(header::COOKIE).iter().count();
    headers.len() - cookies + cookies.min(1)
}

/// Requests in flight on a connection and when the last one ended: a
/// connection is idle only while no request or response body is under way
/// (so a slow upstream or a long download is never cut off as "idle").
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// One request under way; ends when its response body is finished or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Plain HTTP: every request is redirected to HTTPS; nothing is proxied.
pub async fn serve_redirects(store: Arc<PolicyStore>, listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let store = store.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let rt = store.current();
                async move { Ok::<_, Infallible>(redirect(&req, &rt.policy.server)) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .keep_alive(false);
            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
        });
    }
}

/// The HTTPS address for a plain-HTTP request: its host when the policy or
/// certificate names it (with the public port), else the policy's `public_url`,
/// so a client's `Host` cannot make ward redirect anyone elsewhere.
fn redirect(req: &Request<Incoming>, server: &crate::policy::ServerSettings) -> Response<Body> {
    let mut resp = Response::new(empty());
    let target = crate::request::target::read(req.method(), req.uri(), req.headers());
    let Ok(target) = target else {
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let port = server.public_port;
    let authority = if !crate::request::target::names_host(&server.public_hosts, &target.host) {
        server
            .public_url
            .strip_prefix("https://")
            .unwrap_or(&server.public_url)
            .to_string()
    } else if port == 443 {
        target.host.clone()
    } else {
        format!("{}:{port}", target.host)
    };
    let query = req
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let location = format!("https://{authority}{}{query}", target.path);
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
            resp.headers_mut().insert(header::LOCATION, v);
        }
        Err(_) => *resp.status_mut() = StatusCode::BAD_REQUEST,
    }
    resp
}

/// Following HTTP/1.1 framing on a client connection, to see what hyper hides.
///
/// hyper reads a request that gives both `Content-Length` and
/// `Transfer-Encoding` by the latter (as RFC 9112 allows) and drops the
/// `Content-Length` before ward sees the request, so ward could not refuse it.
/// This reads the same bytes hyper reads, finds each request head with
/// `httparse` (hyper's own parser) and follows each body's length to the next
/// head. For every head it notes whether it gave both; the connection's
/// service then puts the dropped `Content-Length` back on that request, which
/// `target::read` refuses (400). Bytes it cannot follow (ones hyper refuses
/// too, or an upgraded connection) stop it; a later chunked request on that
/// connection is then refused as well.
mod framing {
    use http::HeaderValue;
    use std::collections::VecDeque;
    use std::io;
    use std::mem::MaybeUninit;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// What one request head said about its length.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Head {
        /// At most one of `Content-Length` and `Transfer-Encoding`.
        Plain,
        /// Both; the (first) `Content-Length` value hyper dropped.
        BothLengths(HeaderValue),
    }

    /// Heads seen on a connection and not yet matched with their request.
    #[derive(Default)]
    pub struct Heads {
        queue: Mutex<VecDeque<Head>>,
    }

    impl Heads {
        /// The next head in the order hyper serves requests; `None` when the
        /// follower lost track (treated as the worst case by the caller).
        pub fn next(&self) -> Option<Head> {
            self.queue.lock().ok()?.pop_front()
        }

        fn push(&self, head: Head) {
            if let Ok(mut q) = self.queue.lock() {
                q.push_back(head);
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum State {
        /// Reading a request head.
        Head,
        /// Bytes left of a `Content-Length` body.
        Body(u64),
        /// Reading a chunk-size line.
        ChunkSize,
        /// Bytes left of one chunk's data.
        ChunkData(u64),
        /// The CRLF after a chunk's data.
        ChunkEnd,
        /// Trailer lines after the last chunk, up to an empty line.
        Trailers,
        /// Not following (HTTP/2, an upgrade, or bytes hyper will refuse).
        Off,
    }

    /// Heads and chunk lines longer than this are refused by hyper anyway.
    const MAX_PENDING: usize = (1 << 20) + 4096;

    /// The follower's state: where it is in the byte stream.
    struct Follower {
        state: State,
        /// A head, chunk-size line or trailer split across reads.
        pending: Vec<u8>,
        heads: Arc<Heads>,
    }

    impl Follower {
        fn feed(&mut self, data: &[u8]) {
            if self.state == State::Off || data.is_empty() {
                return;
            }
            if self.pending.is_empty() {
                self.run(data);
            } else {
                let mut joined = std::mem::take(&mut self.pending);
                joined.extend_from_slice(data);
                self.run(&joined);
            }
        }

        /// Consumes `data`, keeping an unfinished head or line in `pending`.
        fn run(&mut self, mut data: &[u8]) {
            while !data.is_empty() && self.state != State::Off {
                match self.step(data) {
                    Some(used) => data = data.get(used..).unwrap_or_default(),
                    None => {
                        if self.pending.len() + data.len() > MAX_PENDING {
                            self.state = State::Off;
                        } else {
                            self.pending.extend_from_slice(data);
                        }
                        return;
                    }
                }
            }
        }

        /// One step: how many bytes of `data` were used, or `None` for "need more".
        fn step(&mut self, data: &[u8]) -> Option<usize> {
            match self.state {
                State::Head => self.head(data),
                State::Body(left) | State::ChunkData(left) => {
                    let n = left.min(data.len() as u64);
                    let rest = left - n;
                    self.state = match (self.state, rest) {
                        (State::Body(_), 0) => State::Head,
                        (State::Body(_), r) => State::Body(r),
                        (_, 0) => State::ChunkEnd,
                        (_, r) => State::ChunkData(r),
                    };
                    Some(n as usize)
                }
                State::ChunkSize => match httparse::parse_chunk_size(data) {
                    Ok(httparse::Status::Complete((used, 0))) => {
                        self.state = State::Trailers;
                        Some(used)
                    }
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.state = State::ChunkData(size);
                        Some(used)
                    }
                    Ok(httparse::Status::Partial) => None,
                    Err(_) => self.off(data),
                },
                State::ChunkEnd => match data {
                    [b'\r', b'\n', ..] => {
                        self.state = State::ChunkSize;
                        Some(2)
                    }
                    [b'\r'] => None,
                    _ => self.off(data),
                },
                State::Trailers => {
                    if data.starts_with(b"\r\n") {
                        self.state = State::Head;
                        return Some(2);
                    }
                    if data == b"\r" {
                        return None;
                    }
                    let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
                    self.state = State::Head;
                    Some(end + 4)
                }
                State::Off => Some(data.len()),
            }
        }

        fn off(&mut self, data: &[u8]) -> Option<usize> {
            self.state = State::Off;
            Some(data.len())
        }

        /// A request head: note what it says about length, and what follows it.
        fn head(&mut self, data: &[u8]) -> Option<usize> {
            let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 128];
            let mut req = httparse::Request::new(&mut []);
            let parsed = httparse::ParserConfig::default()
                .parse_request_with_uninit_headers(&mut req, data, &mut slots);
            match parsed {
                Ok(httparse::Status::Complete(used)) => {
                    self.framing(req.version, req.headers);
                    Some(used)
                }
                Ok(httparse::Status::Partial) => None,
                // More headers than fit here: ward's limit allows up to 1000.
                Err(httparse::Error::TooManyHeaders) => {
                    let mut slots = vec![httparse::EMPTY_HEADER; 1001];
                    let mut req = httparse::Request::new(&mut slots);
                    match req.parse(data) {
                        Ok(httparse::Status::Complete(used)) => {
                            self.framing(req.version, req.headers);
                            Some(used)
                        }
                        Ok(httparse::Status::Partial) => None,
                        Err(_) => self.off(data),
                    }
                }
                Err(_) => self.off(data),
            }
        }

        /// The body framing hyper gives a request with these headers.
        fn framing(&mut self, version: Option<u8>, headers: &[httparse::Header<'_>]) {
            let mut length: Option<u64> = None;
            let mut first_length: Option<&[u8]> = None;
            let mut te = false;
            let mut chunked = false;
            for h in headers {
                if h.name.eq_ignore_ascii_case("transfer-encoding") {
                    te = true;
                    chunked = std::str::from_utf8(h.value).is_ok_and(|v| {
                        v.rsplit(',')
                            .next()
                            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
                    });
                } else if h.name.eq_ignore_ascii_case("content-length") {
                    first_length.get_or_insert(h.value);
                    let n = std::str::from_utf8(h.value)
                        .ok()
                        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|v| v.parse::<u64>().ok());
                    match (n, length) {
                        (Some(n), None) => length = Some(n),
                        (Some(n), Some(prev)) if n == prev => {}
                        // hyper refuses what follows; only a TE would make it read on.
                        _ if te => {}
                        _ => {
                            self.state = State::Off;
                        }
                    }
                }
            }
            let head = match (te, first_length) {
                (true, Some(v)) => HeaderValue::from_bytes(v)
                    .map(Head::BothLengths)
                    .unwrap_or(Head::BothLengths(HeaderValue::from_static("0"))),
                _ => Head::Plain,
            };
            self.heads.push(head);
            if self.state == State::Off {
                return;
            }
            self.state = match (te, chunked, length) {
                // hyper refuses Transfer-Encoding on HTTP/1.0 and one not ending in chunked.
                (true, _, _) if version != Some(1) => State::Off,
                (true, true, _) => State::ChunkSize,
                (true, false, _) => State::Off,
                (false, _, Some(n)) if n > 0 => State::Body(n),
                _ => State::Head,
            };
        }
    }

    /// A client stream whose incoming bytes are followed as HTTP/1.1.
    pub struct Watched<S> {
        inner: S,
        follower: Follower,
    }

    impl<S> Watched<S> {
        /// Follows `inner` when `http1` (else passes it through untouched).
        pub fn new(inner: S, http1: bool) -> (Watched<S>, Arc<Heads>) {
            let heads = Arc::new(Heads::default());
            let follower = Follower {
                state: if http1 { State::Head } else { State::Off },
                pending: Vec::new(),
                heads: heads.clone(),
            };
            (Watched { inner, follower }, heads)
        }
    }

    impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let before = buf.filled().len();
            let this = &mut *self;
            let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
            if let Poll::Ready(Ok(())) = polled {
                this.follower
                    .feed(buf.filled().get(before..).unwrap_or_default());
            }
            polled
        }
    }

    impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            self.inner.is_write_vectored()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn follow(chunks: &[&[u8]]) -> Vec<Head> {
            let (mut w, heads) = Watched::new((), true);
            for c in chunks {
                w.follower.feed(c);
            }
            std::iter::from_fn(|| heads.next()).collect()
        }

        #[test]
        fn heads_are_found_across_bodies_and_reads() {
            let both = Head::BothLengths(HeaderValue::from_static("4"));
            let stream: &[u8] = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
GET /b HTTP/1.1\r\nHost: x\r\n\r\n\
POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nGET /\r\n0\r\nX-T: 1\r\n\r\n\
POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
            let want = vec![Head::Plain, Head::Plain, Head::Plain, both.clone()];
            assert_eq!(follow(&[stream]), want);
            // Byte by byte: the same heads.
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            assert_eq!(follow(&bytes), want);
            // Content-Length after Transfer-Encoding counts the same.
            let te_first: &[u8] = b"POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\ncontent-length: 4\r\n\r\n0\r\n\r\n";
            assert_eq!(follow(&[te_first]), vec![both]);
        }

        #[test]
        fn what_hyper_refuses_stops_the_follower() {
            let (mut w, heads) = Watched::new((), true);
            w.follower.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
            assert_eq!(w.follower.state, State::Off);
            assert_eq!(heads.next(), None);
            let (mut w, _) = Watched::new((), true);
            w.follower
                .feed(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
            assert_eq!(w.follower.state, State::Off);
            let (w, _) = Watched::new((), false);
            assert_eq!(w.follower.state, State::Off);
        }
    }
}
