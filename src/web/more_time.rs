//! "Ask for more time": a person whose account is only past its end date, and who has just
//! given the right password and second factor, gets no session but a form to ask the security
//! officer for a later end date. The form carries a ticket: random, single-use, short-lived
//! (`[login] more_time_form`, at most 15 minutes), bound to that person, and good for this
//! form alone (it is no cookie and opens no other page). The request joins the access
//! requests (`users::requests`, kind `MoreTime`) and is decided like them.

use crate::body::Body;
use crate::users::requests::{self, AccessRequest, Standing, Wanted};
use crate::web::access_request::{news_html, record_and_submit};
use crate::web::kit::{self, Form, PageOutcome, PageRequest};
use crate::web::more_time_tickets::MOST;
use crate::web::state::Gate;
use http::{Response, StatusCode};
use maud::html;

/// The page that takes the place of a session for `user`, whose account is past its end
/// date (the caller has checked `Account::only_ended` and both factors).
pub async fn offer(
    gate: &Gate,
    req: &PageRequest<'_>,
    user: &str,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    outcome.user = Some(user.to_string());
    outcome.event = Some("login-ended-account");
    let lifetime = req.policy.login.more_time_form.min(MOST).as_secs() as i64;
    let news = super::access_request::news_for(gate.accounts.request_store(), user).await;
    form_page(gate, req, user, req.now + lifetime, &news, None).await
}

/// `POST /.ward/more-time`: the form sent back.
pub async fn submit(
    gate: &Gate,
    req: &PageRequest<'_>,
    form: &Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let ticket = if kit::same_origin(req) {
        gate.more_time.take(form.get("ticket"), req.now).await
    } else {
        None
    };
    let Some(ticket) = ticket else {
        outcome.event = Some("more-time-refused");
        return ended_form(req);
    };
    let user = ticket.user;
    outcome.user = Some(user.clone());
    // Deactivated, terminated or given more time since the form was shown: nothing to ask.
    let still = gate
        .accounts
        .snapshot()
        .directory
        .get(&user)
        .is_some_and(|a| a.only_ended(crate::users::accounts::today(req.now)));
    if !still {
        outcome.event = Some("more-time-refused");
        return ended_form(req);
    }
    let store = gate.accounts.request_store().clone();
    let existing = store.read_async().await.unwrap_or_default();
    let new = match requests::check_more_time(
        &existing,
        &user,
        form.get("reason"),
        form.get("until"),
        req.now,
    ) {
        Ok(r) => r,
        Err(e) => {
            let why = kit::capital(&e.to_string());
            return form_page(gate, req, &user, ticket.until, &[], Some(&why)).await;
        }
    };
    // The trail first: a request that cannot be recorded is not made.
    let record = crate::audit::Record::signin("more-time-requested")
        .user(user.clone())
        .request_id(req.request_id)
        .client_ip(req.client_ip)
        .detail(format!(
            "request {}: {}; reason: {}",
            new.id,
            new.wanted.describe(),
            new.reason
        ));
    if let Err(why) = record_and_submit(gate, record, &new).await {
        return form_page(gate, req, &user, ticket.until, &[], Some(&why)).await;
    }
    outcome.event = Some("more-time-requested");
    // The reason may name a patient: it stays in the trail and the console, not in alerts.
    gate.alerts.raise(
        "access-request",
        &user,
        format!(
            "{user}, whose account has ended, asks for {} (request {}); decide in the console's Requests page or with `ward request`",
            new.wanted.describe(),
            new.id
        ),
    );
    let body = html! {
        p role="status" {
            "Your request for " strong { (new.wanted.describe()) } " was sent to the security officer. "
            "Once an officer approves it, sign in as usual. If they deny it, you see their note the next time you sign in."
        }
        p { a href="/.ward/login" { "Back to sign in" } }
    };
    kit::page(req, StatusCode::OK, "Request sent", body)
}

/// The answer to a ticket that is missing, used, run out or forged: sign in again.
fn ended_form(req: &PageRequest<'_>) -> Response<Body> {
    let body = html! {
        p role="alert" { "This form has expired or was already sent. Sign in again to see it anew." }
        p { a href="/.ward/login" { "Back to sign in" } }
    };
    kit::page(req, StatusCode::FORBIDDEN, "Form expired", body)
}

/// The form, with a fresh ticket good until `until` (a form sent back with a mistake gets a
/// new ticket, never a longer life).
async fn form_page(
    gate: &Gate,
    req: &PageRequest<'_>,
    user: &str,
    until: i64,
    news: &[AccessRequest],
    problem: Option<&str>,
) -> Response<Body> {
    let snap = gate.accounts.snapshot();
    let ended = snap
        .directory
        .get(user)
        .and_then(|a| a.expires)
        .map(|d| d.to_string())
        .unwrap_or_default();
    let waiting = gate
        .accounts
        .request_store()
        .read_async()
        .await
        .map(|all| {
            all.requests.into_iter().find(|r| {
                r.user == user
                    && r.standing == Standing::Pending
                    && matches!(r.wanted, Wanted::MoreTime { .. })
            })
        })
        .unwrap_or_default();
    let Some(ticket) = gate.more_time.issue(user, until).await else {
        return kit::unavailable(req);
    };
    let today = crate::users::accounts::today(req.now);
    let suggested = today
        .checked_add(jiff::Span::new().days(30))
        .unwrap_or(today);
    let body = html! {
        (news_html(news))
        @if let Some(p) = problem { p.error role="alert" { (p) } }
        p { "Your access ended on " strong { (ended) } ". Ask the security officer for more time." }
        @if let Some(r) = &waiting {
            p role="status" { "You have asked already (" (r.wanted.describe()) "); the security officer has not decided yet. Once they approve it, sign in as usual." }
        } @else {
            p { "You are not signed in: an officer decides, and until then nothing opens. This form works once, for a few minutes." }
            form method="post" action="/.ward/more-time" {
                input type="hidden" name="ticket" value=(ticket);
                p {
                    label for="reason" { "Why you need more time (the officer reads this)" } br;
                    textarea #reason name="reason" rows="4" cols="50" required minlength=(crate::users::grants::MIN_REASON) maxlength="500" {}
                }
                p {
                    label for="until" { "Until (your last day)" } br;
                    input #until name="until" type="date" value=(suggested.to_string()) required aria-describedby="until-hint";
                    br;
                    span.hint #until-hint { "At most " (requests::MAX_MORE_DAYS) " days from today; the officer may give less." }
                }
                p { button type="submit" { "Ask for more time" } }
            }
        }
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    kit::page(req, status, "Your access has ended", body)
}
