//! One request, top to bottom: read the target, work out the client, serve
//! ward's own pages, decide, forward, log.

use crate::body::Body;
use crate::headers;
use crate::pages;
use crate::policy::{self, Facts, Refusal, Verdict};
use crate::proxy::{self, Forward};
use crate::reload::{PolicyStore, Runtime};
use crate::target;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// ward's reserved path prefix; nothing under it reaches an upstream.
pub const WARD_PREFIX: &str = "/.ward/";

/// State shared by every connection.
pub struct Shared {
    /// The policy in force.
    pub store: Arc<PolicyStore>,
    ids: RequestIds,
}

impl Shared {
    /// Shared state around a policy store.
    pub fn new(store: Arc<PolicyStore>) -> Shared {
        Shared {
            store,
            ids: RequestIds::new(),
        }
    }
}

/// Request ids: unique within a process, unlikely to repeat across restarts.
struct RequestIds {
    base: u64,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        let mut seed = [0u8; 8];
        // A fixed base only makes ids repeat across restarts; never fatal.
        let _ = getrandom::fill(&mut seed);
        RequestIds {
            base: u64::from_le_bytes(seed),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}", self.base.wrapping_add(n))
    }
}

/// What the log line for a request says.
#[derive(Default)]
struct Outcome {
    client: Option<IpAddr>,
    host: String,
    path: String,
    decision: &'static str,
    route_line: Option<usize>,
    app: Option<String>,
    error: Option<String>,
}

/// Serves one request. Never fails: every problem becomes a response.
pub async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let id = shared.ids.next();
    let rt = shared.store.current();
    let method = req.method().clone();
    let mut outcome = Outcome::default();
    let mut resp = respond(&shared, &rt, peer, req, &id, &mut outcome).await;

    let h = resp.headers_mut();
    if rt.policy.server.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-request-id", v);
    }
    tracing::info!(
        target: "ward::request",
        request_id = %id,
        peer = %peer.ip(),
        client = outcome.client.map(|c| c.to_string()),
        method = %method,
        host = %outcome.host,
        path = %outcome.path,
        status = resp.status().as_u16(),
        decision = outcome.decision,
        route_line = outcome.route_line,
        app = outcome.app.as_deref(),
        error = outcome.error.as_deref(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    Ok(resp)
}

async fn respond(
    shared: &Shared,
    rt: &Runtime,
    peer: SocketAddr,
    req: Request<Incoming>,
    id: &str,
    outcome: &mut Outcome,
) -> Response<Body> {
    let policy = &rt.policy;
    let practice = policy.practice.as_str();
    let target = match target::read(req.method(), req.uri(), req.headers()) {
        Ok(t) => t,
        Err(e) => {
            outcome.decision = "bad-request";
            outcome.error = Some(e.to_string());
            return pages::problem(
                StatusCode::BAD_REQUEST,
                practice,
                "Request refused",
                &format!("ward refused this request: {e}."),
                id,
            );
        }
    };
    outcome.host = target.host.clone();
    outcome.path = target.path.clone();
    let client_ip =
        match headers::client_ip(peer.ip(), req.headers(), &policy.server.trusted_proxies) {
            Ok(ip) => ip,
            Err(e) => {
                outcome.decision = "bad-request";
                outcome.error = Some(e.to_string());
                return pages::problem(
                    StatusCode::BAD_REQUEST,
                    practice,
                    "Request refused",
                    "ward refused this request: its forwarding header is malformed.",
                    id,
                );
            }
        };

    if is_ward_path(&target.path) {
        outcome.decision = "ward";
        return ward_page(shared, rt, &target.path, client_ip, id);
    }

    let facts = Facts {
        client_ip,
        method: req.method(),
        host: &target.host,
        path: &target.path,
        identity: None,
    };
    let decision = policy::decide(&facts, policy);
    let route = decision.route.and_then(|r| policy.routes.get(r));
    outcome.route_line = route.map(|r| r.line);
    match decision.verdict {
        Verdict::Deny(refusal) => {
            outcome.decision = refusal.code();
            deny_page(practice, refusal, id)
        }
        Verdict::Login => {
            outcome.decision = "login";
            pages::problem(
                StatusCode::UNAUTHORIZED,
                practice,
                "Sign-in required",
                "This page needs you to sign in, and sign-in is not enabled on this ward yet.",
                id,
            )
        }
        Verdict::Allow => {
            outcome.decision = "allow";
            let Some((app, upstream)) =
                route.and_then(|r| Some((policy.apps.get(r.app)?, rt.upstreams.get(r.app)?)))
            else {
                return pages::problem(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    practice,
                    "Configuration problem",
                    "The route names an app ward does not have.",
                    id,
                );
            };
            outcome.app = Some(app.name.clone());
            let fwd = Forward {
                app,
                upstream,
                canonical_path: &target.path,
                client_ip,
                public_authority: &target.authority,
                identity: Vec::new(),
            };
            match proxy::forward(req, fwd).await {
                Ok(resp) => resp,
                Err(e) => {
                    outcome.error = Some(e.to_string());
                    tracing::warn!(request_id = %id, app = %app.name, error = %e, "upstream failed");
                    let (title, message) = match e.status() {
                        StatusCode::GATEWAY_TIMEOUT => (
                            "The system is not answering",
                            "The system behind ward took too long to answer. Please try again in a moment.",
                        ),
                        _ => (
                            "The system is unavailable",
                            "ward could not reach the system behind it. Please try again in a moment.",
                        ),
                    };
                    pages::problem(e.status(), practice, title, message, id)
                }
            }
        }
    }
}

/// True for `/.ward/…` in any letter case, so no spelling of it reaches an upstream.
pub fn is_ward_path(canonical: &str) -> bool {
    let lower = canonical
        .get(..WARD_PREFIX.len())
        .map(str::to_ascii_lowercase);
    lower.as_deref() == Some(WARD_PREFIX) || canonical.eq_ignore_ascii_case("/.ward")
}

fn deny_page(practice: &str, refusal: Refusal, id: &str) -> Response<Body> {
    pages::problem(
        StatusCode::FORBIDDEN,
        practice,
        "Access refused",
        refusal.explain(),
        id,
    )
}

fn ward_page(
    shared: &Shared,
    rt: &Runtime,
    path: &str,
    client: IpAddr,
    id: &str,
) -> Response<Body> {
    match path {
        "/.ward/healthz" => {
            let status = shared.store.status();
            let state = if status.stale.is_some() {
                "stale"
            } else {
                "ok"
            };
            // Health is answered for any client (load balancers ask it); the
            // policy's file name and problems only for this machine.
            let body = if client.is_loopback() {
                serde_json::json!({
                    "status": state,
                    "policy": rt.policy.file.display().to_string(),
                    "loaded_at": humantime::format_rfc3339_seconds(rt.loaded_at).to_string(),
                    "problems": status.stale.clone().unwrap_or_default(),
                })
            } else {
                serde_json::json!({ "status": state })
            };
            pages::text(StatusCode::OK, "application/json", format!("{body}\n"))
        }
        _ => pages::problem(
            StatusCode::NOT_FOUND,
            &rt.policy.practice,
            "Not found",
            "There is no ward page here.",
            id,
        ),
    }
}
