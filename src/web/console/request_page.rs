//! Access requests: the requests waiting for a decision, approving one (it becomes a grant,
//! for the time asked or less; a request for more time becomes a later end date) and denying
//! one with a note — by the same rules as `ward request`. No officer decides on their own
//! request.

use super::{Ctx, Form, Notice, Section, blocking, head_row, when};
use crate::body::Body;
use crate::users::requests::{self, AccessRequest, RequestError, Standing, Wanted};
use crate::web::kit::{PageOutcome, capital};
use http::{Response, StatusCode};
use maud::html;

/// `GET /.ward/officer/requests`.
pub(super) async fn list(ctx: &Ctx<'_>, notice: Notice) -> Response<Body> {
    let store = ctx.shared.gate.accounts.request_store().clone();
    let all = match store.read_async().await {
        Ok(all) => all,
        Err(e) => {
            return ctx.refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Requests",
                &capital(&e.to_string()),
            );
        }
    };
    let waiting: Vec<&AccessRequest> = requests::pending(&all).collect();
    let decided: Vec<&AccessRequest> = all
        .requests
        .iter()
        .rev()
        .filter(|r| !r.is_pending())
        .take(20)
        .collect();
    let csrf = ctx.csrf_field();
    let h = html! {
        p {
            "People refused a page or a download can ask for access here, with a reason; people whose account has passed its end date can ask for more time after signing in with their password and second factor. A request gives nothing by itself: approving one for access makes a grant for the time asked (or less), which ends by itself; approving one for more time sets the account's end date to the day asked (or earlier), as Change end date does; denying one shows your note to the person on their next visit or sign-in. Nobody decides on their own request."
        }
        table {
            caption { "Waiting for a decision (" (waiting.len()) ")" }
            (head_row(&["Request", "Person", "Asks for", "For", "Asked", "Reason", "Decide"]))
            tbody {
                @for r in &waiting {
                    tr {
                        th scope="row" { code { (r.id) } }
                        td { (r.user) }
                        td { (r.wanted.describe()) }
                        td { (requests::wished_words(r)) }
                        td { (when(r.made)) }
                        td { (r.reason) }
                        td {
                            @if r.user == ctx.officer {
                                "Your own request: another officer decides."
                            } @else {
                                form.stack method="post" action={ (super::BASE) "requests/approve" } {
                                    (csrf)
                                    input type="hidden" name="id" value=(r.id);
                                    @if let Wanted::MoreTime { until } = &r.wanted {
                                        label for={ "until-" (r.id) } { "Last day (earlier if you like)" }
                                        input id={ "until-" (r.id) } name="until" type="date" value=(until);
                                    } @else {
                                        label for={ "for-" (r.id) } { "For (shorter if you like)" }
                                        input id={ "for-" (r.id) } name="duration" value=(requests::span_words(r.wished_secs)) size="10";
                                    }
                                    button type="submit" aria-label={ "Approve request " (r.id) } { "Approve" }
                                }
                                form.stack method="post" action={ (super::BASE) "requests/deny" } {
                                    (csrf)
                                    input type="hidden" name="id" value=(r.id);
                                    label for={ "note-" (r.id) } { "Note for the person" }
                                    input id={ "note-" (r.id) } name="note" required size="30";
                                    button.quiet type="submit" aria-label={ "Deny request " (r.id) } { "Deny" }
                                }
                            }
                        }
                    }
                }
                @if waiting.is_empty() {
                    tr { td colspan="7" { "No requests waiting." } }
                }
            }
        }
        table {
            caption { "Decided lately" }
            (head_row(&["Request", "Person", "Asked for", "Decision"]))
            tbody {
                @for r in &decided {
                    tr {
                        th scope="row" { code { (r.id) } }
                        td { (r.user) }
                        td { (r.wanted.describe()) }
                        td {
                            @match &r.standing {
                                Standing::Approved { by, until, grant, .. } if grant.is_empty() => { "approved by " (by) ": the account works until " (when(*until)) },
                                Standing::Approved { by, until, grant, .. } => { "approved by " (by) " until " (when(*until)) " (grant " (grant) ")" },
                                Standing::Denied { by, note, .. } => { "denied by " (by) ": " (note) },
                                Standing::Pending => "waiting",
                            }
                        }
                    }
                }
                @if decided.is_empty() {
                    tr { td colspan="4" { "None yet." } }
                }
            }
        }
    };
    let status = notice.status();
    ctx.page(status, Section::Requests, "Access requests", &notice, h)
}

/// `POST /.ward/officer/requests/approve`.
pub(super) async fn approve(
    ctx: &Ctx<'_>,
    form: &Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let id = form.get("id").trim().to_string();
    let store = ctx.shared.gate.accounts.request_store().clone();
    let all = match store.read_async().await {
        Ok(all) => all,
        Err(e) => return list(ctx, Notice::Problem(capital(&e.to_string()))).await,
    };
    let snap = ctx.shared.gate.accounts.snapshot();
    let more_time = all
        .requests
        .iter()
        .any(|r| r.id == id && r.is_pending() && matches!(r.wanted, Wanted::MoreTime { .. }));
    if more_time {
        return approve_more_time(ctx, &all, &id, form.get("until"), outcome).await;
    }
    let checked = requests::check_approval(
        &all,
        &snap.directory,
        &id,
        &ctx.officer,
        Some(form.get("duration")),
        ctx.now(),
    );
    let (r, g) = match checked {
        Ok(pair) => pair,
        Err(e) => return list(ctx, Notice::Problem(capital(&e.to_string()))).await,
    };
    let grant_text = format!("{} ({})", g.id, g.reason);
    let detail = format!(
        "request {}: {} until {}",
        r.id,
        r.wanted.describe(),
        when(g.end)
    );
    let warn = match ctx
        .record_first(
            outcome,
            "request-approved",
            Some(&r.user),
            detail,
            move |x| x.grant(grant_text),
        )
        .await
    {
        Ok(warn) => warn,
        Err(refused) => return refused,
    };
    let grant_store = ctx.shared.gate.accounts.grant_store().clone();
    let (to_save, rid, now) = (g.clone(), r.id.clone(), ctx.now());
    let done = blocking(move || {
        requests::approve(&store, &grant_store, &rid, &to_save, now).map_err(|e| match e {
            RequestError::DecidedMeanwhile(_) => format!("Request {rid} was decided meanwhile."),
            e => capital(&e.to_string()),
        })
    })
    .await
    .unwrap_or_else(|| Err("The request could not be approved; try again.".into()));
    if let Err(why) = done {
        ctx.record_not_made("request-approved", Some(&r.user), &why)
            .await;
        return list(ctx, Notice::Problem(why)).await;
    }
    ctx.reload_accounts();
    let mut words = format!(
        "Approved request {}: {} has {} until {} (grant {}).",
        r.id,
        r.user,
        r.wanted.describe(),
        when(g.end),
        g.id
    );
    if let Some(w) = warn {
        words.push('\n');
        words.push_str(&w);
    }
    list(ctx, Notice::Done(words)).await
}

/// Approves request `id` for more time: the account's end date changes through
/// `Admin::set_expiry`, as the People page's and `ward user expire`'s changes do.
async fn approve_more_time(
    ctx: &Ctx<'_>,
    all: &requests::Requests,
    id: &str,
    until: &str,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    let snap = ctx.shared.gate.accounts.snapshot();
    let checked = requests::check_more_time_approval(
        all,
        &snap.directory,
        id,
        &ctx.officer,
        Some(until),
        ctx.now(),
    );
    let (r, day) = match checked {
        Ok(pair) => pair,
        Err(e) => return list(ctx, Notice::Problem(capital(&e.to_string()))).await,
    };
    let words = format!(
        "request {}: {}; last day now {day}",
        r.id,
        r.wanted.describe()
    );
    let mut warns = Vec::new();
    for event in ["request-approved", "end-date-changed"] {
        match ctx
            .record_first(outcome, event, Some(&r.user), words.clone(), |x| x)
            .await
        {
            Ok(warn) => warns.extend(warn),
            Err(refused) => return refused,
        }
    }
    let gate = &ctx.shared.gate;
    let policy = ctx.policy();
    let admin = crate::users::Admin::new(
        gate.accounts.users_file(),
        gate.accounts.store().clone(),
        &policy.practice,
    );
    let store = gate.accounts.request_store().clone();
    let (user, rid, officer, now) = (r.user.clone(), r.id.clone(), ctx.officer.clone(), ctx.now());
    let done = blocking(move || -> Result<(), String> {
        admin
            .set_expiry(&user, Some(day))
            .map_err(|e| capital(&e.to_string()))?;
        match requests::record_extension(&store, &rid, &officer, day, now) {
            Ok(_) => Ok(()),
            Err(e) => Err(capital(&e.to_string())),
        }
    })
    .await
    .unwrap_or_else(|| Err("The request could not be approved; try again.".into()));
    if let Err(why) = done {
        ctx.record_not_made("end-date-changed", Some(&r.user), &why)
            .await;
        return list(ctx, Notice::Problem(why)).await;
    }
    ctx.reload_accounts();
    let mut words = format!(
        "Approved request {}: {}'s account now works until the end of {day}.",
        r.id, r.user
    );
    for w in warns {
        words.push('\n');
        words.push_str(&w);
    }
    list(ctx, Notice::Done(words)).await
}

/// `POST /.ward/officer/requests/deny`.
pub(super) async fn deny(ctx: &Ctx<'_>, form: &Form, outcome: &mut PageOutcome) -> Response<Body> {
    let id = form.get("id").trim().to_string();
    let store = ctx.shared.gate.accounts.request_store().clone();
    let all = match store.read_async().await {
        Ok(all) => all,
        Err(e) => return list(ctx, Notice::Problem(capital(&e.to_string()))).await,
    };
    let (r, note) = match requests::check_denial(&all, &id, &ctx.officer, form.get("note")) {
        Ok(pair) => pair,
        Err(e) => return list(ctx, Notice::Problem(capital(&e.to_string()))).await,
    };
    let detail = format!("request {}: {} denied: {note}", r.id, r.wanted.describe());
    let warn = match ctx
        .record_first(outcome, "request-denied", Some(&r.user), detail, |x| x)
        .await
    {
        Ok(warn) => warn,
        Err(refused) => return refused,
    };
    let (rid, officer, kept, now) = (r.id.clone(), ctx.officer.clone(), note.clone(), ctx.now());
    let done = blocking(move || requests::record_denial(&store, &rid, &officer, &kept, now)).await;
    let why = match done {
        Some(Ok(true)) => None,
        Some(Ok(false)) => Some(format!("Request {} was decided meanwhile.", r.id)),
        Some(Err(e)) => Some(capital(&e.to_string())),
        None => Some("The request could not be denied; try again.".into()),
    };
    if let Some(why) = why {
        ctx.record_not_made("request-denied", Some(&r.user), &why)
            .await;
        return list(ctx, Notice::Problem(why)).await;
    }
    let mut words = format!(
        "Denied request {} of {}; they see your note on their next visit.",
        r.id, r.user
    );
    if let Some(w) = warn {
        words.push('\n');
        words.push_str(&w);
    }
    list(ctx, Notice::Done(words)).await
}
