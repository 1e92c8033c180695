//! A recording test upstream: an app on loopback (plain HTTP or HTTPS) that answers every
//! request and keeps what it received, so a test asserts on what reached the app instead of
//! inferring it from the reply.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Path and query, exactly as on the request line.
    pub target: String,
    /// Every header in order, names in lower case.
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    /// Whether it came over TLS.
    pub tls: bool,
    pub version: String,
}

impl Seen {
    /// Every value of header `name` (any case), in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of header `name`; panics when it came more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() < 2, "{name} reached the upstream twice: {all:?}");
        all.first().copied()
    }

    /// Whether any header's name starts with `prefix` (any case, `_` read as `-`).
    pub fn has_header_starting(&self, prefix: &str) -> bool {
        let prefix = prefix.to_ascii_lowercase().replace('_', "-");
        self.headers
            .iter()
            .any(|(k, _)| k.replace('_', "-").starts_with(&prefix))
    }
}

/// What the upstream answers: `Content-Type` by the path's extension (so a test can ask
/// for an "export"), `x-upstream-target` with the target as received (the echo older tests
/// read), and a short text body.
fn answer(seen: &Seen) -> Response<Full<Bytes>> {
    let kind = match seen.path.rsplit('.').next() {
        Some("csv") => "text/csv",
        Some("pdf") => "application/pdf",
        Some("json") => "application/json",
        _ => "text/html; charset=utf-8",
    };
    let body = match kind {
        "application/json" => format!(
            "{{\"method\":\"{}\",\"target\":\"{}\"}}",
            seen.method,
            seen.target.replace('\\', "\\\\").replace('"', "\\\"")
        ),
        _ => format!("upstream saw {} {}\n", seen.method, seen.target),
    };
    Response::builder()
        .header("content-type", kind)
        .header("x-upstream-target", seen.target.as_str())
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

/// A running recording upstream; stops when dropped.
pub struct Upstream {
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub url: String,
    /// With HTTPS: the PEM file of the upstream's (self-signed) certificate, for the app's `ca`.
    pub ca: Option<PathBuf>,
    log: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// A plain-HTTP recording upstream.
    pub async fn http() -> Upstream {
        Upstream::start(false).await
    }

    /// An HTTPS recording upstream with its own self-signed certificate for 127.0.0.1.
    pub async fn https() -> Upstream {
        Upstream::start(true).await
    }

    /// Over HTTPS when `tls`.
    pub async fn start(tls: bool) -> Upstream {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let acceptor = if tls {
            let (cert, key) = (dir.path().join("up.crt"), dir.path().join("up.key"));
            ward::tls::write_self_signed(&cert, &key, &["127.0.0.1", "localhost"]).unwrap();
            let cfg = ward::tls::server_config(&cert, &key, None).unwrap();
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
        } else {
            None
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let sink = log.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let sink = sink.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let sink = sink.clone();
                        async move { Ok::<_, std::convert::Infallible>(record(req, tls, &sink).await) }
                    });
                    let auto = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    match acceptor {
                        Some(a) => {
                            if let Ok(s) = a.accept(tcp).await {
                                let _ = auto.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = auto.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        let scheme = if tls { "https" } else { "http" };
        Upstream {
            url: format!("{scheme}://127.0.0.1:{port}"),
            ca: tls.then(|| dir.path().join("up.crt")),
            log,
            task,
            _dir: dir,
        }
    }

    /// The `upstream = …` (and `ca = …` for HTTPS) lines of an `[[apps]]` entry for it.
    pub fn app_keys(&self) -> String {
        match &self.ca {
            Some(ca) => format!("upstream = \"{}\"\nca = \"{}\"\n", self.url, ca.display()),
            None => format!("upstream = \"{}\"\n", self.url),
        }
    }

    /// Everything received so far, in order.
    pub fn received(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The requests received for `path` (exactly, without the query).
    pub fn saw(&self, path: &str) -> Vec<Seen> {
        self.received()
            .into_iter()
            .filter(|s| s.path == path)
            .collect()
    }

    /// The last request received; panics when there was none.
    pub fn last(&self) -> Seen {
        self.received()
            .pop()
            .expect("the upstream received nothing")
    }

    /// Forgets what was received.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Panics (listing what came) unless nothing has arrived.
    pub fn assert_nothing(&self, what: &str) {
        let got = self.received();
        assert!(
            got.is_empty(),
            "{what}: the upstream received {:?}",
            got.iter()
                .map(|s| format!("{} {}", s.method, s.target))
                .collect::<Vec<_>>()
        );
    }

    /// Waits (up to 5 s) until at least `n` requests have arrived; returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.count() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got = self.received();
        assert!(
            got.len() >= n,
            "expected {n} requests upstream, got {got:?}"
        );
        got
    }
}

async fn record(
    req: Request<Incoming>,
    tls: bool,
    sink: &Mutex<Vec<Seen>>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body_len = body
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body_len,
        tls,
        version: format!("{:?}", parts.version),
    };
    let resp = answer(&seen);
    if let Ok(mut log) = sink.lock() {
        log.push(seen);
    }
    resp
}
