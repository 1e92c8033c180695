//! "Ask for more time" from an account past its end date, end to end over real TLS against the
//! sample EHR: after the right password and code the vendor gets a form and no session; the
//! request reaches `ward request`, an approval moves the end date (as `ward user expire`) and
//! the vendor signs in; a denial's note is shown once at the next sign-in; a wrong password or
//! code on an ended account looks like one on any account; a deactivated account never gets the
//! form; the form's ticket opens nothing else, works once and runs out.

use crate::common::presets;
use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;
use ward::auth::totp::code_at;
use ward::session::COOKIE;

/// ward in front of the EHR (every page for vendors and officers); `login` goes in `[login]`.
fn start(login: &str) -> (Ehr, Ward, PathBuf) {
    start_with(login, "")
}

/// As `start`, with `server` added to `[server]` (ward's own host, for the console).
fn start_with(login: &str, server: &str) -> (Ehr, Ward, PathBuf) {
    let ehr = Ehr::start();
    let site = Site::new();
    std::fs::create_dir_all(site.path("config")).unwrap();
    std::fs::write(site.path("config/users.toml"), "# people\n").unwrap();
    let policy = format!(
        "practice = \"Test Clinic\"\n{server}{extra}\n[login]\nattempts_per_minute = 1000\n{login}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [roles]\nofficer = {{}}\nvendor_biller = {{}}\n\
         [[apps]]\nname = \"ehr\"\nhost = \"localhost\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"vendor_biller\", \"officer\"]\n",
        server = server_section(&site),
        extra = server,
        upstream = ehr.url(),
    );
    let config = site.path("ward.toml");
    std::fs::write(&config, policy).unwrap();
    let ward = Ward::start_in(site, config.clone());
    (ehr, ward, config)
}

/// Today and `days` from today (UTC), as `YYYY-MM-DD`.
fn day(days: i32) -> String {
    let today = ward::users::directory::today(unix_now() as i64);
    today
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
        .to_string()
}

/// The password step, then (when it leads there) the code step: the last answer's status and
/// page, its form token blanked so that two pages can be compared.
async fn sign_in_steps(b: &Browser, user: &str, password: &str, code: &str) -> (u16, String) {
    let r = presets::password_step(b, user, password).await;
    if r.status() != 303 {
        let status = r.status().as_u16();
        return (status, blank_tokens(&r.text().await.unwrap()));
    }
    let form = b.get("/.ward/mfa").await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    let r = b
        .post("/.ward/mfa", &[("csrf", &csrf), ("code", code)])
        .await;
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

/// A page with its hidden form tokens blanked.
fn blank_tokens(html: &str) -> String {
    let mut out = html.to_string();
    for name in ["csrf", "ticket"] {
        let field = format!("name=\"{name}\" value=\"");
        let mut from = 0;
        while let Some(at) = out[from..].find(&field) {
            let start = from + at + field.len();
            let end = start + out[start..].find('"').unwrap();
            out.replace_range(start..end, "");
            from = start;
        }
    }
    out
}

/// The right code for `secret` at `offset` seconds from now.
fn code(secret: &[u8], offset: i64) -> String {
    code_at(secret, (unix_now() as i64 + offset) as u64)
}

/// Signs in as `user` with the right password and code. ward takes each code once, so the
/// test forgets the code used last in ward's store first (ward reads it at every attempt).
async fn both_factors(ward: &Ward, b: &Browser, user: &str, secret: &[u8]) -> (u16, String) {
    forget_used_code(ward, user);
    sign_in_steps(b, user, PW, &code(secret, 0)).await
}

/// Forgets the code `user` used last, so that the current one works again.
fn forget_used_code(ward: &Ward, user: &str) {
    ward::users::SecretStore::open(&ward.site.path("state"))
        .unwrap()
        .update(|s| {
            if let Some(u) = s.users.get_mut(user) {
                u.totp_last_step = None;
            }
        })
        .unwrap();
}

/// The id of `user`'s request in `ward request list`.
fn request_id(ward: &Ward, config: &Path, user: &str) -> String {
    let (ok, out, err) = ward_cli(ward, config, &["request", "list"]);
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(user))
        .unwrap_or_else(|| panic!("no request of {user}: {out}"));
    line.split_whitespace().next().unwrap().to_string()
}

/// Sends the more-time form on `page` with `reason` and last day `until`.
async fn send_form(b: &Browser, page: &str, reason: &str, until: &str) -> (u16, String) {
    let ticket = input_value(page, "ticket");
    let r = b
        .post(
            "/.ward/more-time",
            &[("ticket", &ticket), ("reason", reason), ("until", until)],
        )
        .await;
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ended_vendor_asks_for_more_time_and_signs_in_once_approved() {
    let (_ehr, ward, config) = start("");
    enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    let ended = day(-1);
    let jo = enrolled_user(
        &ward.site,
        "acme_jo",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some(&ended),
    );
    let kim = enrolled_user(
        &ward.site,
        "acme_kim",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some(&day(30)),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;

    // A wrong password, then a wrong code: the same pages as on an account in force.
    let b = Browser::new(&ward);
    let wrong_pw_ended = sign_in_steps(&b, "acme_jo", "not the password", "").await;
    let wrong_pw_active = sign_in_steps(&b, "acme_kim", "not the password", "").await;
    assert_eq!(wrong_pw_ended.0, 401);
    assert_eq!(
        wrong_pw_ended.1.replace("acme_jo", "NAME"),
        wrong_pw_active.1.replace("acme_kim", "NAME")
    );
    let wrong_code_ended = sign_in_steps(&b, "acme_jo", PW, "000000").await;
    let wrong_code_active = sign_in_steps(&b, "acme_kim", PW, "000000").await;
    assert_eq!(wrong_code_ended.0, 401, "{}", wrong_code_ended.1);
    assert_eq!(
        blank_tokens(&wrong_code_ended.1),
        blank_tokens(&wrong_code_active.1)
    );
    assert!(
        !wrong_code_ended.1.contains("ended"),
        "{}",
        wrong_code_ended.1
    );
    let _ = kim;

    // Both right: the form, and no session.
    let b = Browser::new(&ward);
    let (status, page) = both_factors(&ward, &b, "acme_jo", &jo).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains(&format!("Your access ended on <strong>{ended}</strong>")),
        "{page}"
    );
    assert!(b.cookie(COOKIE).is_none_or(|c| c.is_empty()));
    let ticket = input_value(&page, "ticket");
    // The ticket opens nothing: no app page, no page of ward's, not even as a cookie.
    for path in ["/", "/.ward/request", "/.ward/passkeys", "/.ward/mfa"] {
        let r = b.get(path).await;
        assert_ne!(r.status(), 200, "{path} opened without a session");
    }
    let status = b.get("/.ward/session").await.text().await.unwrap();
    assert!(status.contains("\"signed_in\":false"), "{status}");
    let thief = Browser::new(&ward);
    thief.set_cookie(COOKIE, &ticket);
    assert_ne!(thief.get("/").await.status(), 200);
    // Nor does a form of another site carry it.
    let r = b
        .post_from(
            "https://evil.example",
            "/.ward/more-time",
            &[
                ("ticket", &ticket),
                ("reason", "Month-end statements for March"),
                ("until", &day(20)),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    // Sign in again for a fresh form (the one above stays good until used or run out).
    let (_, page) = both_factors(&ward, &b, "acme_jo", &jo).await;

    // A day too far ahead is refused, with a fresh form to correct it.
    let (status, again) = send_form(&b, &page, "Month-end statements for March", &day(91)).await;
    assert_eq!(status, 400, "{again}");
    assert!(again.contains("at most 90 days"), "{again}");
    let (status, sent) = send_form(&b, &again, "Month-end statements for March", &day(20)).await;
    assert_eq!(status, 200, "{sent}");
    assert!(sent.contains("was sent to the security officer"), "{sent}");
    // The ticket worked once.
    let (status, replay) = send_form(&b, &again, "Month-end statements again", &day(20)).await;
    assert_eq!(status, 403, "{replay}");
    assert!(b.cookie(COOKIE).is_none_or(|c| c.is_empty()));

    // The officer sees it with `ward request list`, and approves it for less than asked.
    let (ok, list, _) = ward_cli(&ward, &config, &["request", "list"]);
    assert!(ok);
    assert!(
        list.contains(&format!("more time, until {}", day(20))),
        "{list}"
    );
    let id = request_id(&ward, &config, "acme_jo");
    let logs = ward.logs().join("\n");
    assert!(
        logs.contains("access-request") && logs.contains(&format!("request {id}")),
        "{logs}"
    );
    assert!(
        !logs.contains("Month-end statements"),
        "the reason stays out of alerts"
    );
    let (ok, _, err) = ward_cli(
        &ward,
        &config,
        &[
            "request",
            "approve",
            &id,
            "--officer",
            "boss",
            "--until",
            &day(21),
        ],
    );
    assert!(
        !ok && err.contains("give that day or an earlier one"),
        "{err}"
    );
    let (ok, out, err) = ward_cli(
        &ward,
        &config,
        &[
            "request",
            "approve",
            &id,
            "--officer",
            "boss",
            "--until",
            &day(10),
        ],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("until the end of {}", day(10))),
        "{out}"
    );
    let users = std::fs::read_to_string(ward.site.path("config/users.toml")).unwrap();
    assert!(users.contains(&format!("expires = {}", day(10))), "{users}");

    // The vendor now signs in and reaches the app.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let b = Browser::new(&ward);
    let (status, page) = both_factors(&ward, &b, "acme_jo", &jo).await;
    assert_eq!(status, 303, "{page}");
    assert_eq!(b.get("/").await.status(), 200);

    // The trail has the request and the officer's change, as `ward user expire` records it.
    let trail = audit_text(&ward.site);
    for event in [
        "\"login-ended-account\"",
        "\"more-time-requested\"",
        "\"request-approved\"",
        "\"end-date-changed\"",
    ] {
        assert!(trail.contains(event), "no {event} in the trail");
    }
    assert!(!trail.contains(&ticket), "the ticket is in the trail");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_denial_is_shown_once_and_a_deactivated_account_never_gets_the_form() {
    let (_ehr, ward, config) = start("more_time_form = \"2s\"");
    enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    let jo = enrolled_user(
        &ward.site,
        "acme_jo",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some(&day(-3)),
    );
    let ann = enrolled_user(
        &ward.site,
        "acme_ann",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some(&day(-3)),
    );
    let (ok, _, err) = ward_cli(&ward, &config, &["user", "deactivate", "acme_ann"]);
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_millis(700)).await;

    // A deactivated account, past its end date too: the plain refusal at the password, never
    // the code step or the form.
    let b = Browser::new(&ward);
    let (status, page) = sign_in_steps(&b, "acme_ann", PW, &code(&ann, 0)).await;
    assert_eq!(status, 401, "{page}");
    assert!(page.contains("This account cannot sign in"), "{page}");
    assert!(
        !page.contains("ended") && !page.contains("ticket"),
        "{page}"
    );

    // The form runs out after `more_time_form`.
    let b = Browser::new(&ward);
    let (_, page) = both_factors(&ward, &b, "acme_jo", &jo).await;
    assert!(
        page.contains("Ask the security officer for more time"),
        "{page}"
    );
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (status, late) = send_form(&b, &page, "Year-end audit for the practice", &day(5)).await;
    assert_eq!(status, 403, "{late}");
    assert!(late.contains("expired or was already sent"), "{late}");

    // Asked once; while it waits the form is not offered again.
    let (status, page) = both_factors(&ward, &b, "acme_jo", &jo).await;
    assert_eq!(status, 200, "{page}");
    let (status, sent) = send_form(&b, &page, "Year-end audit for the practice", &day(5)).await;
    assert_eq!(status, 200, "{sent}");
    let (status, page) = both_factors(&ward, &b, "acme_jo", &jo).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You have asked already"), "{page}");
    assert!(!page.contains("name=\"reason\""), "{page}");

    // Denied with a note: shown at the next sign-in, once.
    let id = request_id(&ward, &config, "acme_jo");
    let (ok, _, err) = ward_cli(
        &ward,
        &config,
        &[
            "request",
            "deny",
            &id,
            "--officer",
            "boss",
            "--note",
            "The audit is done",
        ],
    );
    assert!(ok, "{err}");
    let (_, page) = both_factors(&ward, &b, "acme_jo", &jo).await;
    assert!(page.contains("denied by boss: The audit is done"), "{page}");
    assert!(page.contains("name=\"reason\""), "{page}");
    let (_, page) = both_factors(&ward, &b, "acme_jo", &jo).await;
    assert!(!page.contains("The audit is done"), "{page}");
    // A denied request left the end date as it was: still no session.
    assert_ne!(b.get("/").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_approves_more_time_until_an_earlier_day() {
    let (_ehr, ward, _config) = start_with("", &format!("ward_host = \"{WARD_HOST}\"\n"));
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    let jo = enrolled_user(
        &ward.site,
        "acme_jo",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some(&day(-1)),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    // The console lives on ward's own host, and so do the sign-in pages.
    let vendor = Browser::on(&ward, WARD_HOST);
    let (_, page) = both_factors(&ward, &vendor, "acme_jo", &jo).await;
    let (status, sent) = send_form(&vendor, &page, "Quarter-end billing run", &day(40)).await;
    assert_eq!(status, 200, "{sent}");

    let officer = Browser::on(&ward, WARD_HOST);
    let (status, page) = both_factors(&ward, &officer, "boss", &boss).await;
    assert_eq!(status, 303, "{page}");
    let page = officer
        .get("/.ward/officer/requests")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("more time, until {}", day(40))),
        "{page}"
    );
    assert!(page.contains("Last day (earlier if you like)"), "{page}");
    let csrf = input_value(&page, "csrf");
    let id = input_value(&page, "id");
    // Later than asked: refused, nothing changed.
    let resp = officer
        .post(
            "/.ward/officer/requests/approve",
            &[("csrf", &csrf), ("id", &id), ("until", &day(41))],
        )
        .await;
    assert_eq!(resp.status(), 400);
    let users = || std::fs::read_to_string(ward.site.path("config/users.toml")).unwrap();
    assert!(
        users().contains(&format!("expires = {}", day(-1))),
        "{}",
        users()
    );
    let resp = officer
        .post(
            "/.ward/officer/requests/approve",
            &[("csrf", &csrf), ("id", &id), ("until", &day(7))],
        )
        .await;
    let status = resp.status();
    let done = resp.text().await.unwrap();
    assert_eq!(status, 200, "{done}");
    assert!(
        done.contains(&format!("now works until the end of {}", day(7))),
        "{done}"
    );
    assert!(
        users().contains(&format!("expires = {}", day(7))),
        "{}",
        users()
    );

    // The vendor signs in and reaches the app (through the hand-off to the app's host).
    tokio::time::sleep(Duration::from_millis(700)).await;
    forget_used_code(&ward, "acme_jo");
    let app = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    assert_eq!(sign_in_with(&app, "acme_jo", PW, &jo, 0).await, 303);
    assert_eq!(app.get("/").await.status(), 200);
    let trail = audit_text(&ward.site);
    assert!(trail.contains("\"end-date-changed\""), "{trail}");
}
