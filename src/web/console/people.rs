//! People: the list of accounts, adding a person, and one person's page with every change
//! `ward user` can make, through the same `users::Admin`.

use super::{BASE, Ctx, Form, Notice, Section, blocking, head_row, none, or_none, when};
use crate::body::Body;
use crate::users::directory::parse_day as parse_date;
use crate::users::{
    Account, Admin, AdminError, EnrollLink, NewAccount, Purpose, Status, UserSecrets, directory,
};
use crate::web::kit::PageOutcome;
use http::{Response, StatusCode};
use jiff::civil::Date;
use maud::{Markup, html};

/// The values of the add form, to show it again after a refusal.
#[derive(Default)]
pub(super) struct AddValues {
    name: String,
    display_name: String,
    roles: Vec<String>,
    org: String,
    expires: String,
    sponsor: String,
    allow_from: String,
}

/// `GET /.ward/officer/users`: every account, and the form to add one.
pub(super) async fn list(
    ctx: &Ctx<'_>,
    notice: Notice,
    refill: Option<AddValues>,
) -> Response<Body> {
    let snap = ctx.shared.gate.accounts.snapshot();
    let store = ctx.shared.gate.accounts.store().clone();
    let secrets = blocking(move || store.read()).await.and_then(Result::ok);
    let no_secrets = UserSecrets::default();
    let today = crate::users::accounts::today(ctx.now());
    let problems = ctx.shared.gate.accounts.problems();
    let h = html! {
        @if !problems.is_empty() {
            div.warnings role="alert" {
                h2 { "The accounts file has problems" }
                ul { @for p in problems.iter() { li { (p) } } }
            }
        }
        @if secrets.is_none() {
            p.notice.problem role="alert" { "ward's secret store could not be read, so MFA, sign-in and lock columns are empty." }
        }
        p { a href="#add" { "Add a person" } }
        table {
            caption { "Every account in " (ctx.policy().storage.users.display()) " (" (snap.directory.accounts.len()) ")" }
            (head_row(&["Account", "Name", "Status", "Roles", "Organization", "Sponsor", "End date", "Second factor", "Last sign-in", "Locked"]))
            tbody {
                @for a in snap.directory.accounts.values() {
                    @let s = secrets.as_ref().and_then(|all| all.users.get(&a.name)).unwrap_or(&no_secrets);
                    tr class={ "status-" (a.status.as_str()) } {
                        th scope="row" { a href={ (BASE) "users/" (a.name) } { (a.name) } }
                        td { (a.display_name) }
                        td { (status_words(a, today)) }
                        td { (or_none(&a.roles.join(", "))) }
                        td { (or_none(a.org.as_deref().unwrap_or(""))) }
                        td { (or_none(a.sponsor.as_deref().unwrap_or(""))) }
                        td { @match a.expires { Some(d) => (d), None => (none()) } }
                        td { @match s.second_factors().as_str() { "no" => strong { "no" }, f => (f) } }
                        td { @match s.last_login { Some(t) => (when(t)), None => "never" } }
                        td {
                            @match s.locked_until {
                                Some(t) if t > ctx.now() => strong { "until " (when(t)) },
                                _ => "no",
                            }
                        }
                    }
                }
                @if snap.directory.accounts.is_empty() {
                    tr { td colspan="10" { "There are no accounts yet." } }
                }
            }
        }
        (add_form(ctx, &refill.unwrap_or_default()))
    };
    let status = notice.status();
    ctx.page(status, Section::People, "People", &notice, h)
}

/// "active", or what keeps the account from signing in.
fn status_words(a: &Account, today: Date) -> &'static str {
    if a.status == Status::Active && !a.usable_on(today) {
        "expired (end date passed)"
    } else {
        a.status.as_str()
    }
}

/// Checkboxes for the policy's roles, `checked` ticked.
fn role_boxes(ctx: &Ctx<'_>, id_prefix: &str, checked: &[String]) -> Markup {
    html! {
        @for (name, role) in &ctx.policy().roles {
            @let id = format!("{id_prefix}-{name}");
            div {
                input type="checkbox" id=(id) name="roles" value=(name) checked[checked.iter().any(|c| c == name)];
                " "
                label for=(id) { (name) }
                @if !role.description.is_empty() {
                    " " span.hint { "— " (role.description) }
                }
            }
        }
        @if ctx.policy().roles.is_empty() {
            p { "The policy defines no roles yet (add them under [roles])." }
        }
    }
}

fn add_form(ctx: &Ctx<'_>, v: &AddValues) -> Markup {
    let nets: Vec<&str> = ctx.policy().networks.keys().map(String::as_str).collect();
    let nets = if nets.is_empty() {
        "the policy names no networks".to_string()
    } else {
        format!("network names from the policy ({})", nets.join(", "))
    };
    html! {
        section aria-labelledby="add" {
            h2 #add { "Add a person" }
            p.hint { "ward adds the person to the accounts file (your comments and layout stay) and shows a one-time link for them to set a password and MFA." }
            form.stack method="post" action={ (BASE) "users" } {
                (ctx.csrf_field())
                p {
                    label for="name" { "Sign-in name" } br;
                    input #name name="name" value=(v.name) required maxlength="64" pattern="[a-z0-9._\\-]+" autocapitalize="none" spellcheck="false" aria-describedby="name-hint";
                    br;
                    span.hint #name-hint { "Lower-case letters, digits, '.', '_' or '-', for example k_patel. Names are never reused." }
                }
                p {
                    label for="display_name" { "Full name" } br;
                    input #display_name name="display_name" value=(v.display_name) required maxlength="200" size="40";
                }
                fieldset { legend { "Roles" } (role_boxes(ctx, "add-role", &v.roles)) }
                p {
                    label for="org" { "Organization" } br;
                    input #org name="org" value=(v.org) maxlength="200" size="40" aria-describedby="org-hint";
                    br;
                    span.hint #org-hint { "Leave empty for the practice's own staff. People from another company need an end date." }
                }
                p {
                    label for="expires" { "End date (last working day)" } br;
                    input #expires name="expires" type="date" value=(v.expires);
                }
                p {
                    label for="sponsor" { "Sponsor (who at the practice vouches for them)" } br;
                    input #sponsor name="sponsor" value=(v.sponsor) list="accounts" maxlength="200";
                }
                datalist #accounts { @for n in ctx.account_names() { option value=(n); } }
                p {
                    label for="allow_from" { "Only from these networks" } br;
                    input #allow_from name="allow_from" value=(v.allow_from) size="40" aria-describedby="allow-hint";
                    br;
                    span.hint #allow-hint { "Optional, separated by commas: " (nets) " or address ranges like 203.0.113.0/24." }
                }
                p { button type="submit" { "Add person" } }
            }
        }
    }
}

/// `POST /.ward/officer/users`: adds a person and shows the link once.
pub(super) async fn add(ctx: &Ctx<'_>, form: &Form, outcome: &mut PageOutcome) -> Response<Body> {
    let v = AddValues {
        name: form.get("name").trim().to_string(),
        display_name: form.get("display_name").trim().to_string(),
        roles: form.all("roles").into_iter().map(str::to_string).collect(),
        org: form.get("org").trim().to_string(),
        expires: form.get("expires").trim().to_string(),
        sponsor: form.get("sponsor").trim().to_string(),
        allow_from: form.get("allow_from").trim().to_string(),
    };
    let new = match new_account(ctx, &v) {
        Ok(n) => n,
        Err(msg) => return list(ctx, Notice::Problem(msg), Some(v)).await,
    };
    let detail = format!(
        "added with roles {}{}{}",
        new.roles.join(", "),
        new.org
            .as_deref()
            .map(|o| format!("; organization {o}"))
            .unwrap_or_default(),
        new.expires
            .map(|d| format!("; end date {d}"))
            .unwrap_or_default()
    );
    let warn = match ctx
        .record_first(outcome, "user-added", Some(&new.name), detail, |r| r)
        .await
    {
        Ok(warn) => warn,
        Err(refused) => return refused,
    };
    let admin = admin(ctx);
    let now = ctx.now();
    let to_add = new.clone();
    let problem = match blocking(move || admin.add(to_add, now)).await {
        Some(Ok(link)) => Ok(link),
        Some(Err(e)) => Err(explain(e)),
        None => Err("ward could not add the person; try again.".to_string()),
    };
    let link = match problem {
        Ok(link) => link,
        Err(why) => {
            ctx.record_not_made("user-added", Some(&new.name), &why)
                .await;
            return list(ctx, Notice::Problem(why), Some(v)).await;
        }
    };
    ctx.reload_accounts();
    let intro = format!(
        "Give {} this one-time link to set a password and MFA",
        new.display_name
    );
    let html = html! {
        p { "Added " strong { (new.name) } " (" (new.display_name) ") with roles " (new.roles.join(", ")) "." }
        (link_box(ctx, &link, &intro))
        @if let Some(w) = warn { p role="alert" { (w) } }
    };
    person(ctx, &new.name, Notice::DoneHtml(html)).await
}

/// Checks the add form against the policy (the same rules as `ward user add`).
fn new_account(ctx: &Ctx<'_>, v: &AddValues) -> Result<NewAccount, String> {
    directory::check_name(&v.name).map_err(|e| e.to_string())?;
    if v.display_name.is_empty() {
        return Err("Full name is empty; give the person's name.".into());
    }
    let roles = check_roles(ctx, &v.roles)?;
    let allow_from = check_networks(ctx, &v.allow_from)?;
    let expires = match v.expires.as_str() {
        "" => None,
        text => {
            let d = parse_date(text).map_err(|e| e.to_string())?;
            if d < crate::users::accounts::today(ctx.now()) {
                return Err(format!(
                    "The end date {d} has already passed; give the last day the account should work, today or later."
                ));
            }
            Some(d)
        }
    };
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Ok(NewAccount {
        name: v.name.clone(),
        display_name: v.display_name.clone(),
        roles,
        org: some(&v.org),
        expires,
        sponsor: some(&v.sponsor),
        allow_from,
    })
}

/// The roles, without repeats, each defined in the policy; at least one.
fn check_roles(ctx: &Ctx<'_>, roles: &[String]) -> Result<Vec<String>, String> {
    let out = ctx
        .policy()
        .known_roles(roles)
        .map_err(|e| capitalize(&e))?;
    if out.is_empty() {
        return Err("Tick at least one role.".into());
    }
    Ok(out)
}

/// The message with its first letter in upper case, as the console's sentences start.
fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Comma- or space-separated networks of the policy, or address ranges.
fn check_networks(ctx: &Ctx<'_>, text: &str) -> Result<Vec<String>, String> {
    let nets: Vec<String> = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    ctx.policy()
        .known_networks(&nets)
        .map_err(|e| format!("Only from these networks: {e}"))
}

fn admin(ctx: &Ctx<'_>) -> Admin {
    let p = ctx.policy();
    Admin::new(
        &p.storage.users,
        ctx.shared.gate.accounts.store().clone(),
        &p.practice,
    )
}

/// An `AdminError` in words for the console.
fn explain(e: AdminError) -> String {
    match e {
        AdminError::VendorNeedsExpiry(_) => {
            format!("{e}; give the last day of the contract as the end date.")
        }
        other => {
            let text = other.to_string();
            let mut chars = text.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect(),
                None => text,
            }
        }
    }
}

/// The one-time link, shown once, with how to hand it over.
fn link_box(ctx: &Ctx<'_>, link: &EnrollLink, intro: &str) -> Markup {
    let url = format!(
        "{}/.ward/enroll?token={}",
        ctx.policy().server.public_url,
        link.token
    );
    html! {
        div.link {
            p { (intro) ". It works once, until " (when(link.expires)) " (24 hours from now), and is shown only now:" }
            p {
                label for="link" { "One-time link" } br;
                input #link name="link" value=(url) readonly;
            }
            p { "Hand it over yourself or by a channel only they can read: whoever opens it first gets the account." }
        }
    }
}

/// `GET /.ward/officer/users/NAME`.
pub(super) async fn person(ctx: &Ctx<'_>, name: &str, notice: Notice) -> Response<Body> {
    let snap = ctx.shared.gate.accounts.snapshot();
    let Some(a) = snap.directory.get(name) else {
        return ctx.refuse(
            StatusCode::NOT_FOUND,
            "No such person",
            &format!("There is no account named '{name}'."),
        );
    };
    let store = ctx.shared.gate.accounts.store().clone();
    let s = blocking(move || store.read())
        .await
        .and_then(Result::ok)
        .and_then(|all| all.users.get(&a.name).cloned())
        .unwrap_or_default();
    let now = ctx.now();
    let today = crate::users::accounts::today(now);
    let n = &a.name;
    let sessions = ctx.shared.gate.sessions.of_user(&a.name);
    let pending = s.enroll.as_ref().map(|p| {
        let what = match p.purpose {
            Purpose::Enroll => "enrollment",
            Purpose::ResetPassword => "password reset",
            Purpose::ResetMfa => "MFA reset",
        };
        if p.expires > now {
            format!("{what} link, works until {}", when(p.expires))
        } else {
            format!("{what} link, expired {}", when(p.expires))
        }
    });
    let details = html! {
        p { a href={ (BASE) "users" } { "← All people" } }
        h2 { "Details" }
        dl.facts {
            dt { "Sign-in name" } dd { (n) }
            dt { "Full name" } dd { (a.display_name) }
            dt { "Status" } dd { (status_words(a, today)) }
            dt { "Roles" } dd { (or_none(&a.roles.join(", "))) }
            dt { "Organization" } dd { (or_none(a.org.as_deref().unwrap_or(""))) }
            dt { "Sponsor" } dd { (or_none(a.sponsor.as_deref().unwrap_or(""))) }
            dt { "End date" } dd { @match a.expires { Some(d) => (d), None => "none" } }
            dt { "Only from" } dd {
                @if a.allow_from.is_empty() { "anywhere the policy allows" } @else { (a.allow_from.join(", ")) }
            }
            dt { "Password set" } dd { (if s.password.is_some() { "yes" } else { "no" }) }
            dt { "MFA enrolled" } dd { (if s.totp.is_some() { "yes" } else { "no" }) }
            dt { "Passkeys" } dd {
                @if s.passkeys.is_empty() { "none" } @else { (s.passkeys.len()) " (listed below)" }
            }
            dt { "Pending link" } dd { @match &pending { Some(p) => (p), None => (none()) } }
            dt { "Last sign-in" } dd {
                @match (s.last_login, &s.last_login_ip) {
                    (Some(t), Some(ip)) => { (when(t)) " from " (ip) },
                    (Some(t), None) => (when(t)),
                    (None, _) => "never",
                }
            }
            dt { "Locked" } dd {
                @match s.locked_until {
                    Some(t) if t > now => { "until " (when(t)) },
                    _ if s.failed_logins > 0 => { "no (" (s.failed_logins) " failed sign-ins)" },
                    _ => "no",
                }
            }
            dt { "Live sessions" } dd {
                @if sessions.is_empty() { "none" } @else {
                    (sessions.len()) " (" a href={ (BASE) "sessions" } { "see sessions" } ")"
                }
            }
        }
    };
    if a.status == Status::Terminated {
        let h = html! {
            (details)
            p { "This account is terminated. That is permanent: it cannot be changed or reactivated, and its name is never given to anyone else. The record stays for the audit trail." }
        };
        return ctx.page(
            status_for(&notice),
            Section::People,
            &a.display_name,
            &notice,
            h,
        );
    }
    let csrf = ctx.csrf_field();
    let action = |what: &str| format!("{BASE}users/{n}/{what}");
    let h = html! {
        (details)
        div.cols {
            section aria-labelledby="roles-h" {
                h2 #roles-h { "Roles" }
                form method="post" action=(action("roles")) {
                    (csrf)
                    fieldset { legend { "Roles of " (n) } (role_boxes(ctx, "role", &a.roles)) }
                    p { button type="submit" { "Save roles" } }
                }
            }
            section aria-labelledby="end-h" {
                h2 #end-h { "End date" }
                form method="post" action=(action("end-date")) {
                    (csrf)
                    p {
                        label for="expires" { "Last working day" } br;
                        input #expires name="expires" type="date" value=(a.expires.map(|d| d.to_string()).unwrap_or_default()) required;
                        " "
                        button type="submit" { "Set end date" }
                    }
                }
                @if a.expires.is_some() {
                    @if a.is_vendor(&ctx.policy().practice) {
                        p.hint { "People from another organization always keep an end date." }
                    } @else {
                        form method="post" action=(action("no-end-date")) {
                            (csrf)
                            p { button.quiet type="submit" { "Remove the end date" } }
                        }
                    }
                }
            }
            section aria-labelledby="signin-h" {
                h2 #signin-h { "Sign-in" }
                p.hint { "A reset ends the person's sessions and shows a new one-time link." }
                form method="post" action=(action("reset-password")) {
                    (csrf) p { button type="submit" { "Reset password" } }
                }
                form method="post" action=(action("reset-mfa")) {
                    (csrf) p { button type="submit" { "Reset MFA" } }
                }
                form method="post" action=(action("unlock")) {
                    (csrf) p { button.quiet type="submit" { "Unlock after failed sign-ins" } }
                }
            }
        }
        @if !s.passkeys.is_empty() {
            section aria-labelledby="keys-h" {
                h2 #keys-h { "Passkeys and security keys" }
                p.hint { "Removing one stops it signing " (n) " in and ends " (n) "'s sessions." }
                table {
                    thead { tr { th { "Name" } th { "Works on" } th { "Added" } th { "Last used" } th {} } }
                    tbody {
                        @for k in &s.passkeys {
                            tr {
                                td { (k.name) }
                                td { (k.rp_id) }
                                td { (when(k.added)) }
                                td { @match k.last_used { Some(t) => (when(t)), None => "never" } }
                                td {
                                    form method="post" action=(action("remove-passkey")) {
                                        (csrf)
                                        input type="hidden" name="key" value=(k.id_text());
                                        button.quiet type="submit" { "Remove " (k.name) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="acct-h" {
            h2 #acct-h { "Account" }
            @if !sessions.is_empty() {
                form method="post" action={ (BASE) "sessions/end-user" } {
                    (csrf)
                    input type="hidden" name="user" value=(n);
                    input type="hidden" name="back" value="person";
                    p { button.quiet type="submit" { "End all of " (n) "'s sessions (" (sessions.len()) ")" } }
                }
            }
            @if a.status == Status::Active {
                form method="post" action=(action("deactivate")) {
                    (csrf)
                    p {
                        button type="submit" { "Deactivate" } " "
                        span.hint { "Stops " (n) " signing in and ends their sessions until you reactivate the account." }
                    }
                }
            } @else {
                form method="post" action=(action("reactivate")) {
                    (csrf)
                    p {
                        button type="submit" { "Reactivate" } " "
                        span.hint { "Lets " (n) " sign in again." }
                    }
                }
            }
        }
        section.danger-zone aria-labelledby="term-h" {
            h2 #term-h { "Terminate" }
            p { "Ends every session of " (n) " now and deletes their password, MFA and recovery codes. The account can never be reactivated and the name is never reused; the record stays for the audit trail." }
            form method="post" action=(action("terminate")) {
                (csrf)
                p {
                    input #confirm type="checkbox" name="confirm" value="yes" required;
                    " "
                    label for="confirm" { "Yes, terminate " (n) " for good" }
                }
                p { button.danger type="submit" { "Terminate" } }
            }
        }
    };
    ctx.page(
        status_for(&notice),
        Section::People,
        &a.display_name,
        &notice,
        h,
    )
}

fn status_for(notice: &Notice) -> StatusCode {
    if notice.is_problem() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// `POST /.ward/officer/users/NAME/ACTION`.
pub(super) async fn action(
    ctx: &Ctx<'_>,
    name: &str,
    what: &str,
    form: &Form,
    outcome: &mut PageOutcome,
) -> Response<Body> {
    if directory::check_name(name).is_err() {
        return ctx.not_found();
    }
    let now = ctx.now();
    // The change, made only once its record is in the trail; it returns a new link or none.
    type Change = Box<dyn FnOnce(&Admin) -> Result<Option<EnrollLink>, AdminError> + Send>;
    // (event, words for the audit trail, words for the officer, the change)
    let planned: Result<(&'static str, String, String, Change), String> = match what {
        "roles" => {
            let wanted: Vec<String> = form.all("roles").into_iter().map(str::to_string).collect();
            check_roles(ctx, &wanted).map(|roles| {
                let r = roles.clone();
                let n = name.to_string();
                let change: Change = Box::new(move |a| a.set_roles(&n, &r).map(|()| None));
                (
                    "roles-changed",
                    format!("roles set to {}", roles.join(", ")),
                    format!("{name}'s roles are now {}.", roles.join(", ")),
                    change,
                )
            })
        }
        "end-date" => parse_date(form.get("expires").trim()).map_err(|e| e.to_string()).map(|d| {
            let words = if d < crate::users::accounts::today(now) {
                format!("{name}'s last day is now {d}, which has passed, so the account can no longer sign in.")
            } else {
                format!("{name}'s account now works until the end of {d}.")
            };
            let n = name.to_string();
            let change: Change = Box::new(move |a| a.set_expiry(&n, Some(d)).map(|()| None));
            ("end-date-set", format!("end date set to {d}"), words, change)
        }),
        "no-end-date" => {
            let n = name.to_string();
            Ok((
                "end-date-removed",
                "end date removed".to_string(),
                format!("{name} no longer has an end date."),
                Box::new(move |a: &Admin| a.set_expiry(&n, None).map(|()| None)) as Change,
            ))
        }
        "deactivate" => {
            let n = name.to_string();
            Ok((
                "user-deactivated",
                "deactivated".to_string(),
                format!("{name} is deactivated: their sessions have ended and they cannot sign in until you reactivate the account."),
                Box::new(move |a: &Admin| a.deactivate(&n).map(|()| None)) as Change,
            ))
        }
        "reactivate" => {
            let n = name.to_string();
            Ok((
                "user-reactivated",
                "reactivated".to_string(),
                format!("{name} is active and can sign in."),
                Box::new(move |a: &Admin| a.reactivate(&n).map(|()| None)) as Change,
            ))
        }
        "terminate" if form.get("confirm") != "yes" => Err(format!(
            "Terminating {name} is permanent, so tick the box to confirm it. To stop {name} signing in for now instead, deactivate the account."
        )),
        "terminate" => {
            let n = name.to_string();
            Ok((
                "user-terminated",
                "terminated".to_string(),
                format!("{name} is terminated: their sessions have ended and their password and MFA are deleted. This cannot be undone."),
                Box::new(move |a: &Admin| a.terminate(&n).map(|()| None)) as Change,
            ))
        }
        "reset-password" => {
            let n = name.to_string();
            Ok((
                "password-reset",
                "password reset; new link issued".to_string(),
                format!("{name}'s password no longer works, and their sessions have ended."),
                Box::new(move |a: &Admin| a.reset_password(&n, now).map(Some)) as Change,
            ))
        }
        "reset-mfa" => {
            let n = name.to_string();
            Ok((
                "mfa-reset",
                "MFA reset; new link issued".to_string(),
                format!("{name}'s authenticator app and recovery codes no longer work, and their sessions have ended."),
                Box::new(move |a: &Admin| a.reset_mfa(&n, now).map(Some)) as Change,
            ))
        }
        "unlock" => {
            let n = name.to_string();
            Ok((
                "user-unlocked",
                "failed sign-ins cleared".to_string(),
                format!("{name} is unlocked."),
                Box::new(move |a: &Admin| a.unlock(&n).map(|()| None)) as Change,
            ))
        }
        "remove-passkey" => {
            let (n, key) = (name.to_string(), form.get("key").to_string());
            // The trail names the key as the officer sees it.
            let key_name = match ctx.shared.gate.accounts.store().read_async().await {
                Ok(all) => all.users.get(name).and_then(|u| {
                    u.passkeys
                        .iter()
                        .find(|k| k.id_text() == key)
                        .map(|k| k.name.clone())
                }),
                Err(_) => None,
            };
            match key_name {
                None => Err(format!(
                    "{name} has no such passkey; it may have been removed already."
                )),
                Some(key_name) => Ok((
                    "passkey-removed",
                    format!("key \"{key_name}\""),
                    format!("The passkey \"{key_name}\" no longer signs {name} in, and {name}'s sessions have ended."),
                    Box::new(move |a: &Admin| a.remove_passkey(&n, &key).map(|_| None)) as Change,
                )),
            }
        }
        _ => return ctx.not_found(),
    };
    let (event, detail, words, change) = match planned {
        Ok(p) => p,
        Err(msg) => return person(ctx, name, Notice::Problem(msg)).await,
    };
    let warn = match ctx
        .record_first(outcome, event, Some(name), detail, |r| r)
        .await
    {
        Ok(warn) => warn,
        Err(refused) => return refused,
    };
    let admin = admin(ctx);
    let link = match run(move || change(&admin)).await {
        Ok(link) => link,
        Err(msg) => {
            ctx.record_not_made(event, Some(name), &msg).await;
            return person(ctx, name, Notice::Problem(msg)).await;
        }
    };
    ctx.reload_accounts();
    // The credential epoch already voids these sessions; ending them now frees them at once.
    if matches!(
        event,
        "user-deactivated" | "user-terminated" | "password-reset" | "mfa-reset" | "passkey-removed"
    ) {
        ctx.shared.gate.sessions.remove_user(name);
    }
    let intro = format!("Give {name} this one-time link");
    let html = html! {
        p { (words) }
        @if let Some(link) = &link { (link_box(ctx, link, &intro)) }
        @if let Some(w) = warn { p role="alert" { (w) } }
    };
    person(ctx, name, Notice::DoneHtml(html)).await
}

/// Runs an `Admin` change off the async threads; its error in words.
async fn run<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AdminError> + Send + 'static,
) -> Result<T, String> {
    match blocking(f).await {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(explain(e)),
        None => Err("The change could not be made; try again.".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_strict() {
        assert_eq!(
            parse_date("2027-03-31").unwrap(),
            jiff::civil::date(2027, 3, 31)
        );
        for bad in [
            "2027-3-31",
            "2027-02-30",
            "31/03/2027",
            "",
            "2027-03-31T00:00",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_start_with_a_capital() {
        assert_eq!(
            explain(AdminError::NoAccount("x".into())),
            "There is no account named 'x'"
        );
        assert!(explain(AdminError::VendorNeedsExpiry("v".into())).ends_with("as the end date."));
    }
}
