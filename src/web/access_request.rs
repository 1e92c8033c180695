//! `/.ward/request`: a person refused a page (or a download) asks the security officer for
//! access, with a reason and a wished-for time; the page also shows their requests waiting
//! and, once, the officer's decisions. A request grants nothing by itself.

use crate::body::Body;
use crate::policy::{self, ExportRule, Facts, Identity, Refusal, Verdict};
use crate::users::requests::{self, AccessRequest, Standing, Wanted};
use crate::web::kit::{self, Form, PageOutcome, PageRequest};
use crate::web::page;
use crate::web::state::Gate;
use http::{Method, Response, StatusCode};
use maud::{Markup, html};

/// Where the request page is, for the refusal pages' link: `kind` is `access` or `export`.
pub fn link(kind: &str, host: &str, path: &str) -> String {
    let q = serde_urlencoded::to_string([("kind", kind), ("host", host), ("path", path)])
        .unwrap_or_default();
    format!("/.ward/request?{q}")
}

/// What a request form is about: the refused page's host and path and the kind of access.
struct Asked {
    kind: String,
    host: String,
    path: String,
}

impl Asked {
    fn from(form: &Form) -> Asked {
        Asked {
            kind: form.get("kind").to_string(),
            host: form.get("host").trim().to_ascii_lowercase(),
            path: form.get("path").to_string(),
        }
    }
}

/// What the person may ask for about this page, worked out with `decide` as if from their
/// own device: the route that refused them, or why a request cannot help.
fn wanted(req: &PageRequest<'_>, who: &Identity, asked: &Asked) -> Result<Wanted, &'static str> {
    let policy = req.policy;
    let path =
        crate::path::canonicalize(&asked.path).map_err(|_| "That address cannot be read.")?;
    let facts = Facts::on_own_device(req.client_ip, &Method::GET, &asked.host, &path, Some(who));
    let d = policy::decide(&facts, policy);
    let route = d.route.and_then(|id| policy.routes.get(id));
    let app = route.and_then(|r| policy.apps.get(r.app));
    match (asked.kind.as_str(), d.verdict, route, app) {
        ("access", Verdict::Deny(Refusal::Role), Some(r), Some(a)) => Ok(Wanted::Access {
            app: a.name.clone(),
            route: r.path.clone(),
        }),
        ("access", Verdict::Allow, _, _) => Err("You can already open this page."),
        ("export", Verdict::Allow, Some(r), _) if matches!(d.export, ExportRule::Blocked(_)) => {
            Ok(Wanted::Export {
                route: r.path.clone(),
            })
        }
        ("export", Verdict::Allow, _, _) => Err("You may already download from this page."),
        // Networks, devices and pages no route covers are not the officer's to lift one by one.
        _ => Err("A request cannot help with this page: ask the practice's security officer."),
    }
}

/// `GET` and `POST /.ward/request`.
pub async fn serve(
    gate: &Gate,
    req: &PageRequest<'_>,
    form: Option<Form>,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let back = match &req.query {
        Some(q) => format!("{}?{q}", req.path),
        None => req.path.to_string(),
    };
    let Some(session) = kit::standing_session(gate, req) else {
        return kit::login_redirect(&req.method, &req.headers, &back, None);
    };
    let snap = gate.accounts.snapshot();
    let Ok(who) = crate::users::accounts::identity_of(&session, &snap, req.policy, req.now) else {
        return kit::login_redirect(&req.method, &req.headers, &back, None);
    };
    outcome.user = Some(who.user.clone());
    let store = gate.accounts.request_store().clone();
    let news = news_for(&store, &who.user).await;
    let Some(form) = form else {
        let asked = Asked::from(&Form::from_query(req.query.as_deref()));
        return show(req, &who, &session.csrf, &asked, news, None, &store).await;
    };
    let asked = Asked::from(&form);
    let genuine = kit::same_origin(req)
        & !form.get("csrf").is_empty()
        & crate::auth::codes::ct_eq(&session.csrf, form.get("csrf"));
    if !genuine {
        let why = "This form has expired. Please try again.";
        return show(req, &who, &session.csrf, &asked, news, Some(why), &store).await;
    }
    let wanted = match wanted(req, &who, &asked) {
        Ok(w) => w,
        Err(why) => return show(req, &who, &session.csrf, &asked, news, Some(why), &store).await,
    };
    let existing = store.read_async().await.unwrap_or_default();
    let new = match requests::check_new(
        &existing,
        &who.user,
        wanted,
        form.get("reason"),
        form.get("duration"),
        req.now,
    ) {
        Ok(r) => r,
        Err(e) => {
            let why = kit::capital(&e.to_string());
            return show(req, &who, &session.csrf, &asked, news, Some(&why), &store).await;
        }
    };
    // The trail first: a request that cannot be recorded is not made.
    let record = crate::audit::Record::signin("access-requested")
        .user(who.user.clone())
        .roles(who.roles.iter().cloned())
        .request_id(req.request_id)
        .client_ip(req.client_ip)
        .session(session.public_id.clone())
        .detail(format!(
            "request {}: {} for {}; reason: {}",
            new.id,
            new.wanted.describe(),
            requests::span_words(new.wished_secs),
            new.reason
        ));
    if let Err(why) = record_and_submit(gate, record, &new).await {
        return show(req, &who, &session.csrf, &asked, news, Some(&why), &store).await;
    }
    // The reason may name a patient: it stays in the trail and the console, not in alerts.
    gate.alerts.raise(
        "access-request",
        &who.user,
        format!(
            "{} asks for {} for {} (request {}); decide in the console's Requests page or with `ward request`",
            who.user,
            new.wanted.describe(),
            requests::span_words(new.wished_secs),
            new.id
        ),
    );
    let body = html! {
        p role="status" {
            "Your request for " strong { (new.wanted.describe()) } " was sent to the security officer. "
            "It gives you nothing until an officer approves it; you will see the decision on your next visit to this page or to a page you were refused."
        }
        p { a href="/.ward/request" { "Your requests" } }
    };
    page::page(StatusCode::OK, &req.policy.practice, "Request sent", body)
}

/// Writes `record` to the trail, then saves `new` (a request that cannot be recorded is not
/// made); when it was not made, the words for the person.
pub async fn record_and_submit(
    gate: &Gate,
    record: crate::audit::Record,
    new: &AccessRequest,
) -> Result<(), String> {
    if gate.audit.record(record).await.is_err()
        && gate.audit.on_failure() == crate::audit::OnFailure::Refuse
    {
        return Err("ward cannot record your request right now, so it was not sent. Please try again later.".into());
    }
    let (saving, into) = (new.clone(), gate.accounts.request_store().clone());
    let saved = tokio::task::spawn_blocking(move || requests::submit(&into, &saving)).await;
    saved
        .map_err(|_| "ward could not save your request; try again.".to_string())
        .and_then(|r| r.map_err(|e| kit::capital(&e.to_string())))
}

/// `user`'s decisions not shown yet, now marked shown (none when the file cannot be read).
pub async fn news_for(store: &requests::RequestStore, user: &str) -> Vec<AccessRequest> {
    let (store, user) = (store.clone(), user.to_string());
    tokio::task::spawn_blocking(move || requests::take_news(&store, &user))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

/// A decision in words for the person.
pub fn news_text(r: &AccessRequest) -> String {
    match &r.standing {
        Standing::Approved { by, until, .. } => format!(
            "Your request for {} was approved by {by}, until {}.",
            r.wanted.describe(),
            jiff::Timestamp::from_second(*until)
                .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default()
        ),
        Standing::Denied { by, note, .. } => format!(
            "Your request for {} was denied by {by}: {note}",
            r.wanted.describe()
        ),
        Standing::Pending => format!("Your request for {} is waiting.", r.wanted.describe()),
    }
}

/// The decisions, once, as a notice.
pub fn news_html(news: &[AccessRequest]) -> Markup {
    html! {
        @if !news.is_empty() {
            div.notice role="status" {
                @for r in news { p { (news_text(r)) } }
            }
        }
    }
}

async fn show(
    req: &PageRequest<'_>,
    who: &Identity,
    csrf: &str,
    asked: &Asked,
    news: Vec<AccessRequest>,
    problem: Option<&str>,
    store: &requests::RequestStore,
) -> Response<Body> {
    let mine: Vec<AccessRequest> = store
        .read_async()
        .await
        .map(|all| {
            all.requests
                .into_iter()
                .filter(|r| r.user == who.user && r.is_pending())
                .collect()
        })
        .unwrap_or_default();
    let about = (!asked.kind.is_empty()).then(|| wanted(req, who, asked));
    let body = html! {
        (news_html(&news))
        @if let Some(p) = problem { p.error role="alert" { (p) } }
        @match &about {
            Some(Ok(w)) => {
                p { "Ask the practice's security officer for " strong { (w.describe()) } ". An officer decides; until then nothing changes, and whatever they grant ends by itself." }
                form method="post" action="/.ward/request" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="kind" value=(asked.kind);
                    input type="hidden" name="host" value=(asked.host);
                    input type="hidden" name="path" value=(asked.path);
                    p {
                        label for="reason" { "Why you need it (the officer reads this)" } br;
                        textarea #reason name="reason" rows="4" cols="50" required minlength=(crate::users::grants::MIN_REASON) maxlength="500" {}
                    }
                    p {
                        label for="duration" { "For how long" } br;
                        input #duration name="duration" value="8h" required size="10" aria-describedby="duration-hint";
                        br;
                        span.hint #duration-hint { "Like 2h, 8h or 3d; at most 30 days." }
                    }
                    p { button type="submit" { "Request access" } }
                }
            },
            Some(Err(why)) => p { (why) },
            None => {},
        }
        h2 { "Your requests waiting for a decision" }
        @if mine.is_empty() {
            p { "None." }
        } @else {
            ul { @for r in &mine { li { (r.wanted.describe()) " for " (requests::span_words(r.wished_secs)) } } }
        }
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page::page(status, &req.policy.practice, "Request access", body)
}
