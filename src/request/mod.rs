//! The request pipeline, top to bottom: read the target, work out the client
//! and the session, serve ward's own pages, decide, forward, filter, record.
//! Every stage that refuses returns a [`Stop`]; `handle` turns it into a page.

pub mod stop;
pub mod target;

use crate::body::Body;
use crate::clock::unix_now;
use crate::policy::{self, Facts, Refusal, Verdict};
use crate::proxy::filter;
use crate::proxy::headers;
use crate::proxy::marks;
use crate::proxy::{self, Forward, Inbound};
use crate::server::reload::Runtime;
use crate::session::{self, Stage};
use crate::users::accounts;
use crate::web;
use crate::web::handoff;
use crate::web::kit;
use crate::web::kit::is_ward_path;
use crate::web::page;
use crate::web::state::Shared;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
pub use stop::Stop;
use target::Target;

/// A constant name: one given as text is copied into every answer's headers.
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
/// Sent by a browser that fetches a service worker's script.
const SERVICE_WORKER: http::HeaderName = http::HeaderName::from_static("service-worker");

/// What the log line for a request says.
#[derive(Default)]
struct Outcome {
    device: Option<Arc<crate::tls::Device>>,
    /// The grant behind the request: (id, reason). The reason may name a
    /// patient, so it goes to the audit trail only, never to the log.
    grant: Option<(String, String)>,
    roles: Vec<String>,
    org: Option<String>,
    session: Option<String>,
    emergency: bool,
    event: Option<&'static str>,
    client: Option<IpAddr>,
    user: Option<String>,
    host: String,
    path: String,
    decision: &'static str,
    route_line: Option<usize>,
    app: Option<String>,
    error: Option<String>,
    /// The field rules applied to the answer, for the trail.
    fields: Option<Vec<String>>,
}

impl Outcome {
    /// Notes a stop for the log line and the trail.
    fn stopped(&mut self, stop: &Stop) {
        self.decision = stop.code;
        if let Some(detail) = &stop.detail {
            self.error = Some(detail.clone());
        }
    }
}

/// Serves one request. Never fails: every problem becomes a response.
pub async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    device: Option<Arc<crate::tls::Device>>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let id = shared.ids.next();
    let rt = shared.store.current();
    let practice = rt.policy.practice.as_str();
    let method = req.method().clone();
    let mut outcome = Outcome {
        device: device.clone(),
        ..Outcome::default()
    };
    let mut unread = Unread(None);
    let mut resp = match respond(&shared, &rt, peer, req, &id, &mut outcome, &mut unread).await {
        Ok(resp) => resp,
        Err(stop) => {
            outcome.stopped(&stop);
            stop.page(practice, &id)
        }
    };
    // A refusal sent while the client is still sending its body would end the
    // HTTP/2 stream under it (clients report a stream error): read it off first.
    if let Some(body) = unread.take() {
        read_off(body).await;
    }

    // The record is written before the answer leaves; if it cannot be, the
    // policy decides whether the answer goes anyway.
    if let Some(record) = audit_record(&mut outcome, &method, &resp, &id, started, &rt.policy)
        && let Err(e) = recorded(&shared, record).await
    {
        tracing::error!(request_id = %id, error = %e, "cannot write the audit trail");
        if shared.audit.on_failure() == crate::audit::OnFailure::Refuse {
            let stop = Stop::unrecorded(e);
            outcome.error = stop.detail.clone();
            resp = stop.page(practice, &id);
        }
    }

    // A HEAD answer has the GET's status and headers and no body. HTTP/1.1
    // drops a body by itself; over HTTP/2 a body would break the stream.
    if method == http::Method::HEAD {
        resp = resp.map(|_| crate::body::empty());
    }
    let h = resp.headers_mut();
    if rt.policy.server.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    if let Ok(mut v) = HeaderValue::from_str(&id) {
        // Never repeated, so not worth a place in an HTTP/2 connection's header
        // table (HPACK), where each new id would push out a value that is repeated.
        v.set_sensitive(true);
        h.insert(X_REQUEST_ID, v);
    }
    if let Some(m) = &shared.metrics {
        m.request(
            outcome.app.as_deref(),
            outcome.route_line,
            outcome.decision,
            started.elapsed(),
        );
        if let Some(event) = outcome.event {
            m.sign_in(event);
        }
    }
    tracing::info!(
        target: "ward::request",
        request_id = %id,
        peer = %peer.ip(),
        client = outcome.client.map(|c| c.to_string()),
        user = outcome.user.as_deref(),
        method = %method,
        host = %outcome.host,
        // An app's path may name a patient: the journal gets the route line
        // unless `[log] paths` says otherwise; the audit trail has the path.
        path = (rt.policy.log.paths || is_ward_path(&outcome.path)).then_some(outcome.path.as_str()),
        status = resp.status().as_u16(),
        decision = outcome.decision,
        route_line = outcome.route_line,
        app = outcome.app.as_deref(),
        error = outcome.error.as_deref(),
        grant = outcome.grant.as_ref().map(|(id, _)| id.as_str()),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    Ok(resp)
}

/// Writes a request's audit record, timing the wait for metrics.
async fn recorded(
    shared: &Shared,
    record: crate::audit::Record,
) -> Result<(), crate::audit::AuditError> {
    let Some(m) = &shared.metrics else {
        return shared.audit.record(record).await;
    };
    let start = Instant::now();
    let result = shared.audit.record(record).await;
    m.audit_write(start.elapsed());
    result
}

/// The stages in order: target, client, session; then ward's own pages, or
/// the app's route decided, forwarded and filtered.
async fn respond(
    shared: &Arc<Shared>,
    rt: &Runtime,
    peer: SocketAddr,
    req: Request<Incoming>,
    id: &str,
    outcome: &mut Outcome,
    body: &mut Unread,
) -> Result<Response<Body>, Stop> {
    let policy = &rt.policy;
    let now = unix_now();
    // The body waits here until a stage takes it.
    let (parts, incoming) = req.into_parts();
    body.0 = Some(incoming);
    let req = Request::from_parts(parts, ());
    let target = target::read(req.method(), req.uri(), req.headers())
        .map_err(|e| Stop::bad_request(&e, &e.to_string()))?;
    outcome.host = target.host.clone();
    outcome.path = target.path.clone();
    // A GET or HEAD has no body; one that claims to could hide a second request
    // from an upstream that ignores the length ("CL.0" smuggling). Over HTTP/2
    // the stream itself says whether DATA may follow.
    if (req.method() == http::Method::GET || req.method() == http::Method::HEAD)
        && body.has_body(req.headers())
    {
        return Err(Stop::bad_request(
            "a GET or HEAD request with a body",
            "a page request must not carry a body",
        ));
    }
    let client_ip = headers::client_ip(peer.ip(), req.headers(), &policy.server.trusted_proxies)
        .map_err(|e| Stop::bad_request(&e, "its forwarding header is malformed"))?;
    outcome.client = Some(client_ip);
    let asker = who_is_asking(shared, policy, req.headers(), client_ip, now, id, outcome);

    // ward's own host (if the policy has one) has no app behind it.
    let on_ward_host = policy.server.ward_host.as_deref() == Some(target.host.as_str());
    if is_ward_path(&target.path) || on_ward_host {
        outcome.decision = "ward";
        if target.path == "/.ward/healthz" {
            return Ok(health(shared, rt, client_ip));
        }
        let page = WardPage {
            target: &target,
            client_ip,
            now,
            id,
        };
        // Boxed: ward's pages (sign-in, single sign-on, the console) make a future of
        // several kilobytes, which every app request would otherwise carry and copy.
        return Box::pin(ward_page(shared, rt, req, body, page, outcome)).await;
    }
    let ask = Ask {
        target: &target,
        client_ip,
        asker,
        now,
        id,
    };
    app_request(shared, rt, req, body, ask, outcome).await
}

/// Who is asking: the session behind the cookie and, if it still stands, the person.
struct Asker {
    cookie: Option<String>,
    session: Option<Arc<session::Session>>,
    identity: Option<policy::Identity>,
    /// Why the session no longer stands, when it has ended.
    ended: Option<accounts::Ended>,
    /// The accounts as they were when the request came.
    snap: Arc<accounts::Snapshot>,
}

/// The session stage: the cookie's session, checked against the accounts now.
fn who_is_asking(
    shared: &Shared,
    policy: &policy::Policy,
    headers: &http::HeaderMap,
    client_ip: IpAddr,
    now: i64,
    id: &str,
    outcome: &mut Outcome,
) -> Asker {
    let gate = &shared.gate;
    let cookie = session::cookie_value(headers, session::COOKIE).map(str::to_string);
    let session = cookie.as_deref().and_then(|c| gate.sessions.get(c));
    let snap = gate.accounts.snapshot();
    let mut ended = None;
    let mut identity = None;
    if let (Some(c), Some(s)) = (&cookie, &session)
        && s.stage == Stage::Complete
    {
        match accounts::identity_of(s, &snap, policy, now) {
            // `[sessions] bind_to`: a cookie carried to another network is not
            // honoured there. The session stays: its owner may still be where
            // they signed in, and a copied cookie should not sign them out.
            Ok(_) if !policy.sessions.bind_to.allows(s.client_ip, client_ip) => {
                tracing::info!(request_id = %id, user = %s.user, client = %client_ip, "session used away from where it was signed in; not honoured");
                outcome.error = Some("the session was signed in from another address".into());
            }
            Ok(who) => identity = Some(who),
            Err(why) => {
                // An idle or too-old session stays (unusable) so that every later
                // request can still say why; the sweep removes it within the hour.
                if matches!(
                    why,
                    accounts::Ended::AccountClosed | accounts::Ended::CredentialsChanged
                ) {
                    gate.sessions.remove(c);
                }
                tracing::debug!(request_id = %id, user = %s.user, reason = why.code(), "session no longer stands");
                // The first request after the end names the person and why, so
                // that the trail shows each person's logoffs.
                if !s
                    .end_recorded
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    outcome.user = Some(s.user.clone());
                    outcome.session = Some(s.public_id.clone());
                    outcome.event = Some(match why {
                        accounts::Ended::Idle => "idle-logoff",
                        accounts::Ended::TooOld => "session-expired",
                        accounts::Ended::AccountClosed => "session-ended-account-closed",
                        accounts::Ended::CredentialsChanged => "session-ended-credentials-changed",
                    });
                }
                ended = Some(why);
            }
        }
    }
    if let Some(who) = &identity {
        outcome.user = Some(who.user.clone());
        outcome.roles = who.roles.clone();
        outcome.emergency = who.emergency;
        outcome.session = session.as_ref().map(|s| s.public_id.clone());
        outcome.org = snap.directory.get(&who.user).and_then(|a| a.org.clone());
    }
    Asker {
        cookie,
        session,
        identity,
        ended,
        snap,
    }
}

/// What a request for one of ward's own pages carries from the first stages.
struct WardPage<'a> {
    target: &'a Target,
    client_ip: IpAddr,
    now: i64,
    id: &'a str,
}

/// ward's own pages: sign-in, hand-off, the console and the rest.
async fn ward_page(
    shared: &Arc<Shared>,
    rt: &Runtime,
    req: Request<()>,
    body: &mut Unread,
    at: WardPage<'_>,
    outcome: &mut Outcome,
) -> Result<Response<Body>, Stop> {
    let policy = &rt.policy;
    let gate = &shared.gate;
    let ward_host = policy.server.ward_host.as_deref();
    let on_ward_host = ward_host == Some(at.target.host.as_str());
    let (parts, ()) = req.into_parts();
    let body = body
        .take()
        .ok_or_else(|| Stop::bad_request("no body", "it could not be read"))?;
    let page_req = kit::PageRequest {
        policy,
        path: &at.target.path,
        method: parts.method,
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        client_ip: at.client_ip,
        host: &at.target.host,
        authority: &at.target.authority,
        origin: format!("https://{}", at.target.authority),
        request_id: at.id,
        now: at.now,
    };
    let mut page_outcome = kit::PageOutcome::default();
    let path = at.target.path.as_str();
    let get = page_req.method == http::Method::GET || page_req.method == http::Method::HEAD;
    let console = path == "/.ward/officer" || path.starts_with("/.ward/officer/");
    let resp = match ward_host {
        // Pages that hold form tokens are never served in an app's origin.
        None if handoff::needs_own_host(path) => Err(Stop::needs_own_host()),
        Some(_) if on_ward_host && !is_ward_path(path) => {
            if path == "/" {
                Ok(Some(crate::web::launcher::serve(gate, &page_req)))
            } else {
                Err(Stop::not_here(
                    "This is ward's own address; the practice's systems have addresses of their own.",
                ))
            }
        }
        Some(wh) if !on_ward_host => Ok(match (handoff::place(path), path) {
            (_, "/.ward/login") if get => Some(handoff::start(&page_req, wh)),
            (_, "/.ward/handoff") if get => {
                Some(handoff::accept(gate, &page_req, &mut page_outcome).await)
            }
            (handoff::Place::WardHost, _) | (_, "/.ward/login") => {
                Some(handoff::elsewhere(&page_req, wh))
            }
            _ => web::serve(gate, page_req, body, &mut page_outcome).await,
        }),
        Some(_) => Ok(match (handoff::place(path), path) {
            (handoff::Place::AppHost, _) => None,
            (_, "/.ward/go") if get => Some(handoff::go(gate, &page_req, &mut page_outcome).await),
            _ if console => Some(
                crate::web::console::serve(shared, rt, page_req, body, &mut page_outcome).await,
            ),
            _ => web::serve(gate, page_req, body, &mut page_outcome).await,
        }),
        None => Ok(web::serve(gate, page_req, body, &mut page_outcome).await),
    };
    if let Some(event) = page_outcome.event {
        tracing::info!(request_id = %at.id, user = page_outcome.user.as_deref(), event, client = %at.client_ip, "sign-in");
        outcome.event = Some(event);
    }
    // A sign-in event is about the person it names (the name typed at a
    // failed sign-in, say), not the owner of a cookie the browser still holds.
    if page_outcome.event.is_some() && outcome.user != page_outcome.user {
        outcome.user = page_outcome.user;
        outcome.roles.clear();
        outcome.org = None;
        outcome.session = None;
        outcome.emergency = false;
    }
    outcome.grant = page_outcome.grant;
    // A sign-in event names the roles the person holds.
    if outcome.roles.is_empty()
        && let Some(account) = outcome
            .user
            .as_ref()
            .and_then(|u| gate.accounts.snapshot().directory.get(u).cloned())
    {
        outcome.roles = account.roles.clone();
        outcome.org = account.org.clone();
    }
    resp?.ok_or_else(|| Stop::not_here("There is no ward page here."))
}

/// What a request for an app carries from the first stages.
struct Ask<'a> {
    target: &'a Target,
    client_ip: IpAddr,
    asker: Asker,
    now: i64,
    id: &'a str,
}

/// A request for an app: refused outright, decided, then forwarded and filtered.
async fn app_request(
    shared: &Arc<Shared>,
    rt: &Runtime,
    mut req: Request<()>,
    body: &mut Unread,
    ask: Ask<'_>,
    outcome: &mut Outcome,
) -> Result<Response<Body>, Stop> {
    let policy = &rt.policy;
    let gate = &shared.gate;
    let Ask {
        target,
        client_ip,
        asker,
        now,
        id,
    } = ask;
    // `_method` in the query turns a POST into a DELETE in many frameworks
    // (Rails, Laravel, Symfony): a method ward never saw. Refused everywhere.
    if req.uri().query().is_some_and(has_method_override) {
        return Err(Stop::bad_request(
            "a _method override in the query",
            "it asks the app to treat it as another method",
        ));
    }
    // A service worker installed by an app's script would sit in front of every
    // page of this origin, ward's own included; ward lets no app install one.
    if req.headers().contains_key(SERVICE_WORKER) {
        return Err(Stop::service_worker());
    }
    // A standard method is a plain value: cloning it lets the request be changed later.
    let method = req.method().clone();
    // Routes with conditions look at the query's parameters, and at a
    // url-encoded form, which is then read here (bounded) before deciding.
    let query: Vec<(String, String)> = if policy.conditional.is_empty() {
        Vec::new()
    } else {
        req.uri()
            .query()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default()
    };
    let has_body = body.has_body(req.headers());
    // A form ward read to decide is kept here and sent on as read. Every
    // url-encoded POST is read too: its `_method` field asks the app to treat
    // it as another method (Rails, Laravel, Symfony), which must be allowed as well.
    let mut read_body: Option<bytes::Bytes> = None;
    let mut form = Vec::new();
    let posted_form = method == http::Method::POST && is_url_encoded(req.headers());
    if (posted_form || policy.wants_form(&target.host, &method, &target.path))
        && has_body
        && let Some(taken) = body.take()
    {
        let (fields, bytes) = read_form_body(req.headers(), taken)
            .await
            .map_err(|(status, why)| Stop::form_unreadable(status, why))?;
        form = fields;
        read_body = Some(bytes);
    }
    let identity = asker.identity.as_ref();
    let facts = Facts {
        client_ip,
        method: &method,
        host: &target.host,
        path: &target.path,
        identity,
        device: outcome.device.is_some(),
        device_people: outcome.device.as_ref().map_or(&[], |d| &d.people),
        // Checked on every request, so a reload's revocation reaches connections already open.
        device_revoked: outcome
            .device
            .as_ref()
            .is_some_and(|d| d.is_revoked(&policy.server.revoked_devices)),
        query: &query,
        form: &form,
    };
    let decision = policy::decide(&facts, policy);
    if let (Verdict::Allow, Some(other)) = (decision.verdict, form_method_override(&form)) {
        // The app will act as if the method were `other`: ward must allow that
        // too, on the same route, or the override is a way around `methods`.
        let other =
            other.map_err(|why| Stop::bad_request(why, "its _method field is not a method"))?;
        let overridden = policy::decide(
            &Facts {
                method: &other,
                ..facts.clone()
            },
            policy,
        );
        match overridden.verdict {
            Verdict::Allow if overridden.route == decision.route => {}
            Verdict::Deny(refusal) => return Err(Stop::denied(refusal)),
            _ => {
                return Err(Stop::bad_request(
                    format!("a _method override to {other} decided otherwise"),
                    "it asks the app to treat it as a method this page does not allow you",
                ));
            }
        }
    }
    let route = decision.route.and_then(|r| policy.routes.get(r));
    outcome.route_line = route.map(|r| r.line);
    match decision.verdict {
        // A signed-in person at `/` where no app answers: the apps they may use.
        Verdict::Deny(policy::Refusal::NoRoute)
            if target.path == "/"
                && (method == http::Method::GET || method == http::Method::HEAD)
                && let Some(who) = identity =>
        {
            outcome.decision = "ward";
            return Ok(crate::web::launcher::page(
                policy,
                who,
                client_ip,
                &target.host,
                &target.authority,
                false,
            ));
        }
        Verdict::Deny(refusal) => {
            let Some(who) = identity else {
                return Err(Stop::denied(refusal));
            };
            count_refusal(shared, policy, &who.user, route, refusal);
            // Refused for roles: the officer may grant this route for a while on request.
            if refusal == Refusal::Role && policy.server.ward_host.is_some() {
                let offer = offer(shared, &who.user, "access", &target.host, &target.path).await;
                return Err(Stop::denied(refusal).with_offer(offer));
            }
            return Err(Stop::denied(refusal));
        }
        // Signed in, but this page wants a second factor the sign-in did not
        // include: sending the person round the same sign-in again would loop.
        Verdict::Login if identity.is_some() => return Err(Stop::mfa_needed()),
        Verdict::Login => {
            outcome.decision = "login";
            return Ok(kit::login_redirect(
                req.method(),
                req.headers(),
                &crate::path::with_query(&target.path, req.uri()),
                asker.ended.map(|e| e.code()),
            ));
        }
        Verdict::Allow => {
            outcome.decision = "allow";
            // Let in by an officer's access grant, not by role: the trail names the grant.
            if let Some(g) = decision.access_grant {
                outcome.grant = Some((g.id.clone(), g.reason.clone()));
            }
        }
    }
    let (Some(route), Some((app, upstream))) = (
        route,
        route.and_then(|r| Some((policy.apps.get(r.app)?, rt.upstreams.get(r.app)?))),
    ) else {
        return Err(Stop::no_app());
    };
    outcome.app = Some(app.name.clone());
    // A cap on requests per person to this route (scraping a chart at a time), counted on
    // every instance together when they share a store.
    if let (Some(who), Some(id), Some((limit, window))) =
        (identity, decision.route, route.rate_limit)
    {
        let allowed = match shared
            .gate
            .per_route
            .route_allows(id, &who.user, limit, window)
            .await
        {
            Some(allowed) => allowed,
            None => rt
                .rate_limits
                .get(id)
                .and_then(Option::as_ref)
                .is_none_or(|l| l.check_key(&who.user).is_ok()),
        };
        if !allowed {
            return Err(Stop::rate_limited());
        }
    }
    // Sharing settings (an e-mail auto-forward page, say) take no input from these roles.
    if decision.no_body && has_body {
        return Err(Stop::body_blocked());
    }
    let redact = decision.redact;
    let mut identity_headers = Vec::new();
    // What ward adds to the end of an HTML page: the idle script, a watermark, a print notice.
    let mut marks = String::new();
    if let (Some(who), Some(s), Some(c)) = (identity, &asker.session, &asker.cookie) {
        // A route may ask for a shorter idle limit than the person's own.
        if let Some(limit) = decision.idle_limit
            && now - s.last_active() > limit.as_secs() as i64
        {
            gate.sessions.remove(c);
            outcome.decision = "login";
            return Ok(kit::login_redirect(
                req.method(),
                req.headers(),
                &crate::path::with_query(&target.path, req.uri()),
                Some("idle"),
            ));
        }
        if counts_as_activity(policy, req.headers(), &target.path) {
            s.touch(now);
        }
        identity_headers =
            identity_headers_for(who, &s.public_id, app, asker.snap.directory.get(&who.user));
        if let Some(subject) = outcome.device.as_ref().map(|d| d.subject.as_str())
            && let Ok(v) = HeaderValue::from_str(subject)
        {
            identity_headers.push((http::HeaderName::from_static("x-ward-device"), v));
        }
        if policy.sessions.idle_warning && wants_html(&req) {
            marks.push_str(marks::IDLE_TAG);
        }
    }
    if (route.watermark || route.print_blocked) && wants_html(&req) {
        let who = identity.map_or("not signed in", |w| {
            asker
                .snap
                .directory
                .get(&w.user)
                .map_or(w.user.as_str(), |a| a.display_name.as_str())
        });
        marks.push_str(&marks::page_marks(
            route.watermark,
            route.print_blocked,
            who,
            &marks::minute_text(now),
            id,
        ));
    }
    // A size cap is on the whole answer: ranges would let it be fetched in slices.
    if decision.max_response.is_some() {
        req.headers_mut().remove(header::RANGE);
        req.headers_mut().remove(header::IF_RANGE);
    }
    // An open tunnel counts against `max_connections`: it keeps its connection's slot.
    // The server put it on the request only when it asks for a tunnel.
    let tunnel_slot = req.extensions().get::<proxy::ConnectionSlot>().cloned();
    let fwd = Forward {
        tunnel_slot,
        app,
        upstream,
        canonical_path: &target.path,
        client_ip,
        // A host the policy names, never whatever the client put in `Host`.
        public_authority: target::public_authority(&policy.server, target),
        identity: identity_headers,
        // ward reads these answers itself, so it asks for them uncompressed.
        plain_encoding: !marks.is_empty() || redact || decision.hide,
        app_cookies: asker
            .session
            .as_deref()
            .filter(|_| identity.is_some() && app.ward_keeps_cookies)
            .map(|s| &s.app_cookies),
        now,
        still_signed_in: match (identity, &asker.session) {
            (Some(_), Some(s)) if headers::wants_websocket(req.headers()) => {
                Some(still_signed_in(shared.clone(), s.clone()))
            }
            _ => None,
        },
    };
    let inbound = match (read_body, body.take()) {
        (Some(bytes), _) => Inbound::Buffered(Some(bytes)),
        (None, Some(incoming)) => Inbound::Stream(incoming),
        (None, None) => Inbound::Buffered(None),
    };
    let resp = proxy::forward(req.map(|()| inbound), fwd)
        .await
        .map_err(|e| {
            tracing::warn!(request_id = %id, app = %app.name, error = %e, "upstream failed");
            if let Some(m) = &shared.metrics {
                m.upstream_error(&app.name);
            }
            Stop::upstream(&e)
        })?;
    let mut resp = match filter_answer(resp, route, &decision, policy, id, outcome).await {
        Ok(resp) => resp,
        // A download refused: the officer may grant exports here for a while on request.
        Err(stop)
            if stop.code == "export-blocked"
                && policy.server.ward_host.is_some()
                && let Some(who) = identity =>
        {
            let offer = offer(shared, &who.user, "export", &target.host, &target.path).await;
            return Err(stop.with_offer(offer));
        }
        Err(stop) => return Err(stop),
    };
    if !marks.is_empty() {
        // A watermark or print notice the policy asks for is not left off quietly.
        let required = route.watermark || route.print_blocked;
        match marks::markable(&resp) {
            marks::Markable::Yes => resp = marks::append(resp, marks),
            marks::Markable::Compressed if required => {
                return Err(Stop::redaction_refused(filter::Held::Unmarked));
            }
            marks::Markable::Compressed | marks::Markable::NotAPage => {}
        }
    }
    Ok(resp)
}

/// The answer's stage: caching, export rules, redaction and the size cap.
async fn filter_answer(
    mut resp: Response<Body>,
    route: &policy::Route,
    decision: &policy::Decision<'_>,
    policy: &policy::Policy,
    id: &str,
    outcome: &mut Outcome,
) -> Result<Response<Body>, Stop> {
    if route.access != policy::Access::Public {
        filter::no_store(resp.headers_mut());
    }
    let export_why = filter::export_reason(resp.headers(), route, &policy.export.types);
    match (decision.export, export_why) {
        (policy::ExportRule::Blocked(_), Some(why)) => {
            return Err(Stop::export_blocked(policy, why));
        }
        (policy::ExportRule::Granted(g), Some(_)) => {
            outcome.grant = Some((g.id.clone(), g.reason.clone()));
            tracing::info!(request_id = %id, grant = %g.id, "export under a grant");
        }
        _ => {}
    }
    if decision.redact || decision.hide {
        return masked(
            resp,
            route,
            decision,
            policy.export.redact_max,
            &mut outcome.fields,
        )
        .await
        .map_err(Stop::redaction_refused);
    }
    if let Some(cap) = decision.max_response {
        let (parts, bytes) = filter::hold(resp, cap).await.map_err(Stop::too_large)?;
        resp = filter::release(parts, bytes);
    }
    Ok(resp)
}

/// The "Request access" link for a refusal of `user`, with their news (told once).
async fn offer(shared: &Shared, user: &str, kind: &str, host: &str, path: &str) -> stop::Offer {
    let store = shared.gate.accounts.request_store();
    let news = web::access_request::news_for(store, user).await;
    stop::Offer {
        link: web::access_request::link(kind, host, path),
        news: news.iter().map(web::access_request::news_text).collect(),
    }
}

/// Counts a refusal of a signed-in person; someone trying door after door is
/// worth the officer's attention.
fn count_refusal(
    shared: &Shared,
    policy: &policy::Policy,
    user: &str,
    route: Option<&policy::Route>,
    refusal: Refusal,
) {
    let gate = &shared.gate;
    let n = gate.refusals.get(user).unwrap_or(0) + 1;
    gate.refusals.insert(user.to_string(), n);
    if n == policy.alerts.denials {
        gate.alerts.raise(
            "refusals",
            user,
            // The route, not the path: a path may hold a patient's number,
            // and alerts leave ward (the webhook). The trail has the path.
            format!(
                "{n} refusals within ten minutes, the last {} ({}); the paths are in the audit trail",
                match route {
                    Some(r) => format!("on the route at line {} (\"{}\")", r.line, r.path),
                    None => "where no route applies".to_string(),
                },
                refusal.code()
            ),
        );
    }
}

/// Whether a query string carries a `_method` override, in any spelling.
fn has_method_override(query: &str) -> bool {
    // Every request with a query passes here: decode names without collecting
    // (they are borrowed unless they hold escapes), as a form decoder reads them.
    form_urlencoded::parse(query.as_bytes()).any(|(k, _)| is_method_override(&k))
}

/// The method a form's `_method` field asks for, if it has one (the last
/// one counts, as in Rack); `Err` when it is not a method at all.
fn form_method_override(form: &[(String, String)]) -> Option<Result<http::Method, String>> {
    let (_, value) = form.iter().rev().find(|(k, _)| is_method_override(k))?;
    // Frameworks upper-case the value before using it.
    let upper = value.trim().to_ascii_uppercase();
    Some(http::Method::from_bytes(upper.as_bytes()).map_err(|_| format!("_method = {upper:?}")))
}

/// A query or form field that asks the app for another method, in any spelling.
fn is_method_override(name: &str) -> bool {
    name.trim().eq_ignore_ascii_case("_method")
}

/// Whether a request's body is an ordinary (url-encoded) form.
fn is_url_encoded(headers: &http::HeaderMap) -> bool {
    crate::policy::media::MediaType::of(headers)
        .is_some_and(|m| m.essence == "application/x-www-form-urlencoded")
}

/// A request body no stage has taken yet (left by a refusal).
#[derive(Default)]
pub(crate) struct Unread(Option<Incoming>);

impl Unread {
    fn take(&mut self) -> Option<Incoming> {
        self.0.take()
    }

    fn has_body(&self, headers: &http::HeaderMap) -> bool {
        match &self.0 {
            Some(b) => filter::has_body(headers, b),
            None => false,
        }
    }
}

/// Reads and discards up to 1 MiB of a refused request's body, for at most
/// five seconds (a larger or slower body is cut off).
async fn read_off(mut body: Incoming) {
    use http_body::Body as _;
    use http_body_util::BodyExt;
    if body.is_end_stream() {
        return;
    }
    let mut left: usize = 1 << 20;
    let reading = async {
        while let Some(Ok(frame)) = body.frame().await {
            left = left.saturating_sub(frame.data_ref().map_or(0, |d| d.len()));
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), reading).await;
}

/// Largest form ward reads to decide on a route with form conditions.
pub const MAX_DECIDING_FORM: usize = 1 << 20;

/// Reads a url-encoded form body (at most `MAX_DECIDING_FORM`, within ten
/// seconds) and gives the request back with the body kept for the app. A body
/// ward cannot read as a form is refused: the route could not be decided.
async fn read_form_body(
    headers: &http::HeaderMap,
    body: Incoming,
) -> Result<(Vec<(String, String)>, bytes::Bytes), (StatusCode, &'static str)> {
    use http_body_util::{BodyExt, Limited};
    if !is_url_encoded(headers) {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "ward must read this page's form to decide, and accepts it here only as an ordinary (url-encoded) form.",
        ));
    }
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        Limited::new(body, MAX_DECIDING_FORM).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                "The form is too large for ward to read (1 MiB at most on this page).",
            ));
        }
        Err(_) => {
            return Err((
                StatusCode::REQUEST_TIMEOUT,
                "The form did not arrive in time.",
            ));
        }
    };
    let fields = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| (StatusCode::BAD_REQUEST, "The form could not be read."))?;
    Ok((fields, bytes))
}

/// Whether `session` still stands now, for an open WebSocket: not ended, not
/// idle, the account still usable under the policy in force.
fn still_signed_in(shared: Arc<Shared>, session: Arc<session::Session>) -> proxy::StillSignedIn {
    Box::new(move || {
        let rt = shared.store.current();
        kit::still_stands(&shared.gate, &session, &rt.policy, unix_now())
    })
}

/// The audit record for a request: every decision on an app's path, and
/// every sign-in event on ward's own pages (not its health or script polls).
fn audit_record(
    o: &mut Outcome,
    method: &http::Method,
    resp: &Response<Body>,
    id: &str,
    started: Instant,
    policy: &policy::Policy,
) -> Option<crate::audit::Record> {
    use crate::audit::Record;
    use std::fmt::Write as _;
    // The console writes its own officer records.
    if o.decision == "ward" && o.path.starts_with("/.ward/officer") {
        return None;
    }
    let mut r = if o.decision == "ward" {
        Record::signin(o.event?)
            .method(method.as_str())
            .host(o.host.clone())
            .path(&o.path)
    } else {
        let r = Record::access(method.as_str(), o.host.clone(), &o.path, o.decision);
        match o.event {
            Some(e) => r.event(e),
            None => r,
        }
    };
    r = r
        .request_id(id)
        .status(resp.status().as_u16())
        .duration(started.elapsed())
        .emergency(o.emergency);
    // What the log line after this does not show is moved, not copied.
    if let Some(user) = &o.user {
        r.user = Some(user.clone());
        r.roles = Some(std::mem::take(&mut o.roles));
    }
    r.org = o.org.take();
    r.session = o.session.take();
    if let Some(ip) = o.client {
        r = r.client_ip(ip);
    }
    if let Some(line) = o.route_line {
        let file = policy.file.to_string_lossy();
        let mut route = String::with_capacity(file.len() + 8);
        let _ = write!(route, "{file}:{line}"); // writing to a String cannot fail
        r = r.route(route);
    }
    if let Some((grant, reason)) = &o.grant {
        r = r.grant(format!("{grant} ({reason})"));
    }
    if let Some(d) = &o.device {
        r = r.detail(format!("device: {}", d.subject));
    }
    r.fields = o.fields.take();
    if let Some(e) = &o.error {
        r = r.reason(e.clone());
    } else if o.decision != "allow" && o.decision != "ward" {
        r = r.reason(o.decision);
    }
    if let Some(len) = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    {
        r = r.bytes_out(len);
    }
    Some(r)
}

/// An answer with the person's field rules applied: JSON fields redacted, and
/// the route's `hide`/`mask` fields on HTML pages, CSV columns and JSON fields.
/// Anything else is refused. Notes the rules applied in `applied` (for the trail).
async fn masked(
    resp: Response<Body>,
    route: &policy::Route,
    decision: &policy::Decision<'_>,
    cap: u64,
    applied: &mut Option<Vec<String>>,
) -> Result<Response<Body>, filter::Held> {
    let essence = crate::policy::media::MediaType::of(resp.headers()).map(|m| m.essence);
    let essence = essence.as_deref().unwrap_or("");
    let json = essence == "application/json" || essence.ends_with("+json");
    let html = essence == "text/html" || essence == "application/xhtml+xml";
    let csv = essence == "text/csv" || essence == "application/csv";
    // ward asked for an uncompressed answer; one that came compressed anyway cannot be read.
    let plain = !resp.headers().contains_key(header::CONTENT_ENCODING);
    let rules: &[policy::FieldRule] = if decision.hide { &route.fields } else { &[] };
    let redacted: &[String] = if decision.redact {
        &route.redact_fields
    } else {
        &[]
    };
    let mut matched = vec![false; rules.len()];
    let kind = match (plain, json, html, csv) {
        (true, true, _, _) if decision.redact || decision.hide => Kind::Json,
        (true, _, true, _) if decision.hide => Kind::Html,
        (true, _, _, true) if decision.hide => Kind::Csv,
        // A type the person's rules cannot be applied to is refused, not passed.
        _ => return Err(filter::Held::Unchecked),
    };
    let (parts, bytes) = filter::hold(resp, cap).await?;
    let body =
        match kind {
            Kind::Json => filter::redact(&bytes, redacted, rules, &mut matched)?,
            Kind::Html => proxy::html::apply(&bytes, rules, &mut matched)
                .map_err(|_| filter::Held::Unchecked)?,
            Kind::Csv => proxy::fields::csv(&bytes, rules, &mut matched)
                .map_err(|_| filter::Held::Unchecked)?,
        };
    let mut notes: Vec<String> = redacted.iter().map(|f| format!("redact {f}")).collect();
    notes.extend(
        rules
            .iter()
            .zip(&matched)
            .filter(|(_, m)| **m)
            .map(|(r, _)| match r.show {
                policy::Show::Nothing => format!("hide {}", r.selector),
                show => format!("mask {} {}", r.selector, show.as_str()),
            }),
    );
    *applied = Some(notes);
    Ok(filter::release(parts, body.into()))
}

/// The kinds of answer field rules are applied to.
enum Kind {
    Json,
    Html,
    Csv,
}

/// An app's own background polling does not keep a session alive.
fn counts_as_activity(policy: &policy::Policy, headers: &http::HeaderMap, path: &str) -> bool {
    let s = &policy.sessions;
    if s.background_paths
        .lookup("", &http::Method::GET, path)
        .route()
        .is_some()
    {
        return false;
    }
    !s.background_headers.iter().any(|(name, value)| {
        headers.get_all(name).iter().any(|v| match value {
            None => true,
            Some(want) => v
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case(want)),
        })
    })
}

/// The identity headers for an allowed request (client-sent ones are already gone).
fn identity_headers_for(
    who: &policy::Identity,
    public_id: &str,
    app: &policy::App,
    account: Option<&crate::users::Account>,
) -> Vec<(http::HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(3 + app.identity_headers.len());
    if let Ok(v) = HeaderValue::from_str(&who.user) {
        out.push((http::HeaderName::from_static("x-ward-user"), v));
    }
    if let Some(v) = headers::value_of(who.roles.join(",")) {
        out.push((http::HeaderName::from_static("x-ward-roles"), v));
    }
    if let Ok(v) = HeaderValue::from_str(public_id) {
        out.push((http::HeaderName::from_static("x-ward-session"), v));
    }
    // Values the app expects from the person's record (a provider id, a tax id).
    for (attribute, header) in &app.identity_headers {
        if let Some(v) = account
            .and_then(|a| a.attributes.get(attribute))
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            out.push((header.clone(), v));
        }
    }
    out
}

/// A page load that will show HTML (so the idle script can go in).
fn wants_html<B>(req: &Request<B>) -> bool {
    req.method() == http::Method::GET
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

fn health(shared: &Shared, rt: &Runtime, client: IpAddr) -> Response<Body> {
    let status = shared.store.status();
    let accounts = shared.gate.accounts.problems();
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
            "accounts_problems": *accounts,
        })
    } else {
        serde_json::json!({ "status": state })
    };
    page::text(StatusCode::OK, "application/json", format!("{body}\n"))
}
