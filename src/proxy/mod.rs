//! Forwarding an allowed request to its app and streaming the answer back.

pub mod fields;
pub mod filter;
pub mod headers;
pub mod html;
pub mod marks;

use crate::body::{self, Body};
use crate::policy::App;
use headers::Rewriter;
use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

/// Pooled HTTP clients for one app: one per worker thread (`server::serve`), so a request
/// uses connections its own thread drives.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// The first worker's (and any thread's that is no worker).
    first: AppClient,
    /// The further workers', in order.
    others: Vec<AppClient>,
}

/// hyper's pooled client, over TLS or plain HTTP.
type AppClient = Client<HttpsConnector<HttpConnector>, ClientBody>;

thread_local! {
    /// Which of an app's clients this thread uses (0 unless `use_pool` said otherwise).
    static POOL: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Makes this worker thread use the `n`th of each app's clients.
pub fn use_pool(n: usize) {
    POOL.with(|p| p.set(n));
}

/// Idle connections kept to one app, over all the workers' pools.
const MAX_IDLE: usize = 256;

/// How many workers ward runs (`server::serve`), and so how many clients each app gets: one
/// per core ward may use, read once so that both always agree.
pub fn workers() -> usize {
    static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *WORKERS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl Upstream {
    /// A client with the app's timeouts and TLS settings; connections are kept alive and reused.
    pub fn new(app: &App) -> Result<Upstream, crate::tls::TlsError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(app.connect_timeout));
        http.set_nodelay(true);
        http.set_keepalive(Some(Duration::from_secs(60)));
        http.enforce_http(false);
        let tls = match &app.client_tls {
            Some(c) => (**c).clone(),
            // Only http:// upstreams get here; the connector still wants a TLS config.
            None => crate::tls::client_config(None)?,
        };
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // About as many idle connections to the app in all as one pool kept (at least 8 per
        // worker): a legacy server may give each open connection a thread of its own.
        let idle_per_pool = (MAX_IDLE / workers()).max(8);
        let client = || {
            Client::builder(TokioExecutor::new())
                .timer(TokioTimer::new())
                .pool_timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .pool_max_idle_per_host(idle_per_pool)
                .build(connector.clone())
        };
        Ok(Upstream {
            first: client(),
            others: (1..workers()).map(|_| client()).collect(),
        })
    }

    /// The client of this thread's pool.
    fn client(&self) -> &AppClient {
        match POOL.with(std::cell::Cell::get) {
            0 => &self.first,
            n => self.others.get(n - 1).unwrap_or(&self.first),
        }
    }
}

/// Why an upstream gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Connecting or talking to the upstream failed.
    #[error("the upstream could not be reached: {0}")]
    Unreachable(String),
    /// The upstream did not start answering in time.
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The request could not be turned into an upstream request.
    #[error("the request could not be forwarded: {0}")]
    Bad(String),
    /// The client's request body was malformed or cut off (bad chunked framing,
    /// shorter than its `Content-Length`): the client's fault, not the upstream's.
    #[error("the request body from the client was malformed or incomplete: {0}")]
    ClientBody(String),
}

impl ProxyError {
    /// 502 or 504 (400 when the client's own body was at fault).
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::ClientBody(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// What the forwarder needs to know besides the request itself.
pub struct Forward<'a> {
    /// The app the route sends this request to.
    pub app: &'a App,
    /// Its client.
    pub upstream: &'a Upstream,
    /// The path ward decided on, which is exactly what the upstream receives.
    pub canonical_path: &'a str,
    /// The client's address, for `X-Forwarded-For`.
    pub client_ip: IpAddr,
    /// The `host[:port]` the client asked for.
    pub public_authority: &'a str,
    /// Identity headers to add (names and values), after every client `X-Ward-*` is gone.
    pub identity: Vec<(http::HeaderName, HeaderValue)>,
    /// Ask the upstream for an uncompressed answer (ward will add to the page).
    pub plain_encoding: bool,
    /// The signed-in session's jar for the apps' cookies, when ward keeps them:
    /// the browser's own cookies then never reach the app.
    pub app_cookies: Option<&'a crate::session::AppCookies>,
    /// Unix seconds now (cookie expiry).
    pub now: i64,
    /// For a signed-in WebSocket: whether its session still stands. The tunnel
    /// is closed when it no longer does (sign-out, idle logoff, a closed account).
    pub still_signed_in: Option<StillSignedIn>,
    /// For a WebSocket: the connection's `max_connections` slot, which the
    /// tunnel takes over, since it outlives the connection it came on.
    pub tunnel_slot: Option<ConnectionSlot>,
}

/// The `max_connections` slot of one client connection.
#[derive(Clone)]
pub struct ConnectionSlot(Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>);

impl ConnectionSlot {
    /// A slot holding `permit` until it is dropped or taken over.
    pub fn new(permit: tokio::sync::OwnedSemaphorePermit) -> ConnectionSlot {
        ConnectionSlot(Arc::new(std::sync::Mutex::new(Some(permit))))
    }

    fn take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0.lock().ok()?.take()
    }
}

/// Asked every few seconds while a tunnel is open.
pub type StillSignedIn = Box<dyn Fn() -> bool + Send + Sync>;

/// How often an open tunnel checks that its session still stands.
const TUNNEL_CHECK: Duration = Duration::from_secs(2);

/// An answer's widening of a service worker's reach.
const SERVICE_WORKER_ALLOWED: http::HeaderName =
    http::HeaderName::from_static("service-worker-allowed");

/// Sends the request upstream and returns the upstream's answer, rewritten for the client.
pub async fn forward(
    mut req: Request<Inbound>,
    f: Forward<'_>,
) -> Result<Response<Body>, ProxyError> {
    let websocket = req.version() == Version::HTTP_11 && headers::wants_websocket(req.headers());
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));

    let (mut parts, incoming) = req.into_parts();
    let path_and_query =
        PathAndQuery::try_from(crate::path::with_query(f.canonical_path, &parts.uri))
            .map_err(|e| ProxyError::Bad(e.to_string()))?;
    parts.uri = Uri::builder()
        .scheme(f.app.scheme.clone())
        .authority(f.app.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|e| ProxyError::Bad(e.to_string()))?;
    parts.version = Version::HTTP_11;

    let h = &mut parts.headers;
    // Room for what is added below (the forwarding headers and the identity), so the map
    // grows once rather than at each insert.
    h.reserve(5 + f.identity.len());
    headers::remove_hop_by_hop(h, websocket);
    if websocket {
        headers::set_websocket_upgrade(h);
    }
    headers::strip_controlled(h);
    headers::strip_ward_cookies(h);
    if let Some(jar) = f.app_cookies {
        h.remove(header::COOKIE);
        if let Some(v) = jar.header(&f.app.name) {
            h.insert(header::COOKIE, v);
        }
    }
    headers::set_forwarded(h, f.client_ip, f.public_authority);
    let host = if f.app.preserve_host {
        f.public_authority
    } else {
        f.app.authority.as_str()
    };
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert(header::HOST, v);
    }
    // The app's own identity headers: no client-sent value passes, in any spelling.
    for (_, name) in &f.app.identity_headers {
        headers::strip_spellings(h, name);
    }
    for (name, value) in f.identity {
        h.insert(name, value);
    }
    // The app's shared login: ward's credential, never the browser's.
    if let Some(auth) = &f.app.upstream_auth {
        headers::set_upstream_auth(h, &auth.header, &auth.value);
    }
    if f.plain_encoding {
        h.remove(header::ACCEPT_ENCODING);
    }

    let body_failed = Arc::new(AtomicBool::new(false));
    let body = ClientBody {
        inner: incoming,
        failed: body_failed.clone(),
    };
    let request = Request::from_parts(parts, body);
    let sent =
        tokio::time::timeout(f.app.response_timeout, f.upstream.client().request(request)).await;
    let mut resp = match sent {
        Err(_) => return Err(ProxyError::Timeout(f.app.response_timeout)),
        Ok(Err(e)) if body_failed.load(Ordering::Relaxed) => {
            return Err(ProxyError::ClientBody(error_chain(&e)));
        }
        Ok(Err(e)) => return Err(ProxyError::Unreachable(error_chain(&e))),
        Ok(Ok(resp)) => resp,
    };

    let upgraded = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if upgraded {
        // Only the protocol the client asked for (a WebSocket), nothing else.
        let switched_to_websocket = resp
            .headers()
            .get(header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
        match client_upgrade {
            Some(_) if !switched_to_websocket => {
                return Err(ProxyError::Unreachable(
                    "the upstream switched to a protocol other than websocket".into(),
                ));
            }
            Some(client_side) => {
                let upstream_side = hyper::upgrade::on(&mut resp);
                let slot = f.tunnel_slot.and_then(|s| s.take());
                let check = f.still_signed_in;
                tokio::spawn(async move {
                    tunnel(client_side, upstream_side, check).await;
                    drop(slot);
                });
            }
            // An upstream may not switch protocols the client did not ask for.
            None => {
                return Err(ProxyError::Unreachable(
                    "unrequested protocol switch".into(),
                ));
            }
        }
    }

    let rewriter = Rewriter {
        scheme: f.app.scheme.as_str(),
        authority: f.app.authority.as_str(),
        public: f.public_authority,
    };
    let status = resp.status();
    let h = resp.headers_mut();
    headers::remove_hop_by_hop(h, upgraded);
    h.remove(header::STRICT_TRANSPORT_SECURITY);
    // An app may not widen a service worker's reach over ward's own pages.
    h.remove(SERVICE_WORKER_ALLOWED);
    if f.app.rewrite_redirects {
        rewriter.redirects(h);
    }
    // ward signs in to this app itself: a challenge would only make the browser
    // ask the person for the app's shared password.
    if f.app
        .upstream_auth
        .as_ref()
        .is_some_and(|a| a.header == header::AUTHORIZATION)
    {
        h.remove(header::WWW_AUTHENTICATE);
    }
    if f.app.upstream_auth.is_some() && status == StatusCode::UNAUTHORIZED {
        // Names the app, never the credential.
        tracing::warn!(app = %f.app.name, "the app refused ward's shared credential (upstream_auth): check the secret ward was given");
    }
    match f.app_cookies {
        Some(jar) => {
            jar.take_from(&f.app.name, h, f.now);
        }
        None => rewriter.cookies(h, f.app.rewrite_cookies),
    }
    Ok(resp.map(body::stream))
}

/// A request body on its way upstream: streamed from the client, or already
/// read by ward (a form it had to look into before deciding).
#[derive(Debug)]
pub enum Inbound {
    /// Streamed as it arrives.
    Stream(Incoming),
    /// Read whole; sent as one piece.
    Buffered(Option<bytes::Bytes>),
}

impl http_body::Body for Inbound {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match self.get_mut() {
            Inbound::Stream(b) => Pin::new(b).poll_frame(cx),
            Inbound::Buffered(b) => Poll::Ready(b.take().map(|d| Ok(http_body::Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Inbound::Stream(b) => b.is_end_stream(),
            Inbound::Buffered(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Inbound::Stream(b) => b.size_hint(),
            Inbound::Buffered(b) => {
                http_body::SizeHint::with_exact(b.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

/// The client's request body on its way upstream, noting whether reading it
/// failed, so a malformed upload is answered 400 rather than blamed on the upstream.
struct ClientBody {
    inner: Inbound,
    failed: Arc<AtomicBool>,
}

impl http_body::Body for ClientBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            self.failed.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Copies bytes both ways between an upgraded client and upstream connection.
async fn tunnel(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    still_signed_in: Option<StillSignedIn>,
) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    let ended = async {
        let Some(check) = still_signed_in else {
            return std::future::pending::<()>().await;
        };
        let mut tick = tokio::time::interval(TUNNEL_CHECK);
        loop {
            tick.tick().await;
            if !check() {
                return;
            }
        }
    };
    tokio::select! {
        copied = copy => {
            if let Err(e) = copied {
                tracing::debug!(error = %e, "websocket tunnel closed");
            }
        }
        // Dropping both ends closes the tunnel: the session behind it has ended.
        () = ended => tracing::info!("websocket closed: its session ended"),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tokio::io::AsyncWriteExt;

    /// A real `Incoming` from a request with broken chunked framing.
    #[tokio::test]
    async fn a_malformed_client_body_is_the_clients_fault() {
        let (client, server) = tokio::io::duplex(4096);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let tx = tx.lock().unwrap().take();
            async move {
                let failed = Arc::new(AtomicBool::new(false));
                let body = ClientBody {
                    inner: Inbound::Stream(req.into_body()),
                    failed: failed.clone(),
                };
                let collected = body.collect().await;
                if let Some(tx) = tx {
                    let _ = tx.send((collected.is_err(), failed.load(Ordering::Relaxed)));
                }
                Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Empty::<
                    bytes::Bytes,
                >::new()))
            }
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server), service),
        );
        let mut client = client;
        client
            .write_all(
                b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nGET /admin HTTP/1.1\r\n\r\n",
            )
            .await
            .unwrap();
        let (errored, flagged) = rx.await.unwrap();
        assert!(errored && flagged);
        let e = ProxyError::ClientBody("bad chunk".into());
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            ProxyError::Unreachable("x".into()).status(),
            StatusCode::BAD_GATEWAY
        );
    }
}
