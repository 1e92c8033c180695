//! Listeners and connections: TCP accept with a connection cap, TLS handshake,
//! HTTP/1.1 and HTTP/2 with limits, and the plain-HTTP redirect listener.

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

/// Accepts HTTPS connections until `shutdown` resolves, then waits (up to a
/// bound) for open connections to finish.
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
    tokio::pin!(shutdown);
    loop {
        // Waiting for a free slot before accepting leaves extra clients in the
        // kernel's backlog instead of spending memory on them.
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = &mut shutdown => break,
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
            _ = &mut shutdown => break,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            connection(shared, tcp, peer).await;
            drop(permit);
        });
    }
    // Let requests in flight finish, but not forever.
    let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(max as u32)).await;
    Ok(())
}

async fn connection(shared: Arc<Shared>, tcp: TcpStream, peer: SocketAddr) {
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
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .max_buf_size(server.max_header_bytes)
        .max_headers(server.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(server.max_header_bytes as u32)
        .max_concurrent_streams(250)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let idle_limit = server.keepalive_timeout;
    drop(rt);

    // An enrolled device's certificate (verified against the device CA by rustls).
    let device: Option<Arc<str>> = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| {
            crate::tls::subject_of(c.as_ref())
                .unwrap_or_else(|| "unreadable subject".into())
                .into()
        });
    let requests = activity.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let in_flight = requests.begin();
        let shared = shared.clone();
        let device = device.clone();
        async move {
            let resp = request::handle(shared, peer, device, req).await?;
            Ok::<_, Infallible>(resp.map(|b| crate::body::guarded(b, in_flight)))
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                break;
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
            let port = store.current().policy.server.public_port;
            let service = service_fn(move |req: Request<Incoming>| async move {
                Ok::<_, Infallible>(redirect(&req, port))
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

fn redirect(req: &Request<Incoming>, port: u16) -> Response<Body> {
    let mut resp = Response::new(empty());
    let target = crate::request::target::read(req.method(), req.uri(), req.headers());
    let Ok(target) = target else {
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let authority = if port == 443 {
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
