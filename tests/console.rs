//! The officer's console over real TLS: who may open it, and every change it makes (people,
//! sessions, grants, lock-down) as it reaches users.toml, the stores, other people's
//! sessions and the audit trail. Also `ward report access` and `ward check`'s officer warning.

use crate::common::*;
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

const OFFICER: &str = "/.ward/officer/";

const USERS_HEADER: &str =
    "# Riverside staff and vendors.\n# Keep this list short! (officer's note)\n";

fn policy(upstream: &str, extra: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}\nward_host = \"{WARD_HOST}\"\n{extra}\n\
         [roles]\nofficer = {{ description = \"Security officer\" }}\nclinician = {{}}\nvendor_biller = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nhost = \"localhost\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\", \"vendor_biller\", \"officer\"]\n"
    )
}

/// ward with an accounts file that starts with the officer's comments.
fn start(extra: &str) -> (Ehr, Ward) {
    let ehr = Ehr::start();
    let site = Site::new();
    std::fs::create_dir_all(site.path("config")).unwrap();
    std::fs::write(site.path("config/users.toml"), USERS_HEADER).unwrap();
    let config = site.path("ward.toml");
    std::fs::write(
        &config,
        policy(&ehr.url(), extra).replace("{server}", &server_section(&site)),
    )
    .unwrap();
    let ward = Ward::start_in(site, config);
    (ehr, ward)
}

/// Waits until ward has read the accounts file (it looks four times a second).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

/// Signs in with password and code; codes already used for `user` are avoided.
async fn sign_in(b: &Browser, user: &str, secret: &[u8]) {
    for offset in [0i64, 30, -30] {
        if sign_in_with(b, user, PW, secret, offset).await == 303 {
            return;
        }
    }
    panic!("{user} could not sign in");
}

async fn page(b: &Browser, path: &str) -> (u16, String) {
    let resp = b.get(path).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// POSTs a console form with the officer's CSRF token (read from the page at `from`).
async fn act(b: &Browser, from: &str, to: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let (status, html) = page(b, from).await;
    assert_eq!(status, 200, "{from}: {html}");
    let csrf = input_value(&html, "csrf");
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    let resp = b.post(to, &all).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// Every record of the audit trail so far.
fn audit_records(ward: &Ward) -> Vec<serde_json::Value> {
    let mut files: Vec<_> = std::fs::read_dir(ward.site.path("audit"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<serde_json::Value>>()
        })
        .collect()
}

/// The officer record for `event` about `user` (any user when `None`).
fn officer_record(
    ward: &Ward,
    actor: &str,
    event: &str,
    user: Option<&str>,
) -> Option<serde_json::Value> {
    audit_records(ward).into_iter().find(|r| {
        r["kind"] == "officer"
            && r["actor"] == actor
            && r["event"] == event
            && user.is_none_or(|u| r["user"] == u)
    })
}

fn users_toml(ward: &Ward) -> String {
    std::fs::read_to_string(ward.site.path("config/users.toml")).unwrap()
}

fn date_in(days: i64) -> String {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    today
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn only_signed_in_officers_with_mfa_get_in() {
    let (_ehr, ward) = start("");
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    settle().await;

    // Not signed in: page loads go to sign-in (and come back), forms get 401.
    let nobody = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    let resp = nobody.get("/.ward/officer/users").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        resp.headers()["location"],
        "/.ward/login?return=%2F.ward%2Fofficer%2Fusers"
    );
    let resp = nobody
        .post("/.ward/officer/users", &[("name", "x"), ("csrf", "x")])
        .await;
    assert_eq!(resp.status(), 401);

    // A clinician is refused, pages and forms alike, with their own valid token.
    let clinician = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&clinician, "dr_lee", &lee).await;
    for path in [
        OFFICER,
        "/.ward/officer",
        "/.ward/officer/users",
        "/.ward/officer/audit",
    ] {
        let (status, html) = page(&clinician, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(html.contains("officer role"), "{html}");
    }
    // Their session's own form token, from the sign-out form.
    let logout = clinician.get("/.ward/logout").await.text().await.unwrap();
    let csrf = input_value(&logout, "csrf");
    let resp = clinician
        .post(
            "/.ward/officer/users",
            &[
                ("csrf", &csrf),
                ("name", "sneaky"),
                ("display_name", "Sneaky"),
                ("roles", "officer"),
            ],
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert!(!users_toml(&ward).contains("sneaky"));

    // The officer gets every page, each with the navigation.
    let officer = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&officer, "boss", &boss).await;
    for path in [
        OFFICER,
        "/.ward/officer",
        "/.ward/officer/users",
        "/.ward/officer/users/dr_lee",
        "/.ward/officer/sessions",
        "/.ward/officer/grants",
        "/.ward/officer/grants?all=1",
        "/.ward/officer/audit",
        "/.ward/officer/audit?user=dr_lee&since=7d&path=%2F**&decision=refused",
        "/.ward/officer/review",
        "/.ward/officer/policy",
        "/.ward/officer/lockdown",
    ] {
        let (status, html) = page(&officer, path).await;
        assert_eq!(status, 200, "{path}: {html}");
        assert!(
            html.contains("<nav aria-label=\"Officer's console\">"),
            "{path}"
        );
        assert!(html.contains("Test Clinic"), "{path}");
    }
    let (status, _) = page(&officer, "/.ward/officer/users/nobody").await;
    assert_eq!(status, 404);
    let (status, _) = page(&officer, "/.ward/officer/nothing-here").await;
    assert_eq!(status, 404);
    // The policy page shows the file (escaped) and its state.
    let (_, html) = page(&officer, "/.ward/officer/policy").await;
    assert!(
        html.contains("practice = &quot;Test Clinic&quot;"),
        "{html}"
    );
    assert!(html.contains("The file on disk is the one in force"));
    // The overview warns that there is only one officer.
    let (_, html) = page(&officer, OFFICER).await;
    assert!(html.contains("only one active account (boss)"), "{html}");
    // The review downloads as CSV.
    let resp = officer.get("/.ward/officer/review.csv").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"access-review-")
    );
    let csv = resp.text().await.unwrap();
    assert!(csv.starts_with("name,display_name,status,roles,"), "{csv}");
    assert!(
        csv.contains("\r\ndr_lee,Test dr_lee,active,clinician,"),
        "{csv}"
    );
    let (status, html) = page(&officer, "/.ward/officer/review.html").await;
    assert_eq!(status, 200);
    // Printable: its styles (from ward's own file, as the CSP allows no inline style) have print rules.
    assert!(html.contains("href=\"/.ward/review.css\""), "{html}");
    let css = officer.get("/.ward/review.css").await.text().await.unwrap();
    assert!(css.contains("@media print"), "{css}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_console_answers_only_on_the_officers_network() {
    let (_ehr, ward) = start("[networks]\nofficers = [\"10.99.0.0/16\"]\n");
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    settle().await;
    let officer = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&officer, "boss", &boss).await;
    let (status, html) = page(&officer, OFFICER).await;
    assert_eq!(status, 403);
    assert!(html.contains("officers' network"), "{html}");
    // The rest of ward still works for the officer from here.
    assert_eq!(officer.get("/patients/1001/chart").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_officer_manages_people_sessions_grants_and_a_lockdown() {
    let (_ehr, ward) = start("");
    let vendor_end = date_in(60);
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    let _deputy = enrolled_user(&ward.site, "deputy", &["officer"], PW, None, None);
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let temp = enrolled_user(&ward.site, "temp_aide", &["clinician"], PW, None, None);
    let jo = enrolled_user(
        &ward.site,
        "acme_jo",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some(&vendor_end),
    );
    settle().await;
    let officer = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&officer, "boss", &boss).await;
    let clinician = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&clinician, "dr_lee", &lee).await;
    let aide = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&aide, "temp_aide", &temp).await;
    let vendor = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&vendor, "acme_jo", &jo).await;
    for b in [&clinician, &aide, &vendor] {
        assert_eq!(b.get("/patients/1001/chart").await.status(), 200);
    }
    let users_before = users_toml(&ward);

    // ---- Forms without the session's token, or from another origin, change nothing.
    let add = [
        ("name", "acme_pat"),
        ("display_name", "Pat <Acme> \"Billing\""),
        ("roles", "vendor_biller"),
        ("org", "Acme Billing"),
        ("expires", vendor_end.as_str()),
        ("sponsor", "boss"),
        ("allow_from", ""),
    ];
    let resp = officer.post("/.ward/officer/users", &add).await;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("nothing was changed"));
    let mut forged = vec![("csrf", "not-the-token")];
    forged.extend_from_slice(&add);
    assert_eq!(
        officer.post("/.ward/officer/users", &forged).await.status(),
        403
    );
    officer.header("origin", "https://evil.example");
    let (status, _) = act(
        &officer,
        "/.ward/officer/users",
        "/.ward/officer/users",
        &add,
    )
    .await;
    assert_eq!(status, 403);
    // An app's origin is another origin too: the console is on ward's own host.
    officer.header("origin", &ward.url(""));
    let (status, _) = act(
        &officer,
        "/.ward/officer/users",
        "/.ward/officer/users",
        &add,
    )
    .await;
    assert_eq!(status, 403);
    officer.header("origin", &ward.url_for(WARD_HOST, ""));
    assert_eq!(users_toml(&ward), users_before);

    // ---- The same rules as `ward user add`: vendors need an end date, roles must exist.
    let mut no_end = add.to_vec();
    no_end.retain(|(k, _)| *k != "expires");
    let (status, html) = act(
        &officer,
        "/.ward/officer/users",
        "/.ward/officer/users",
        &no_end,
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("needs an end date"), "{html}");
    assert!(
        html.contains("value=\"acme_pat\""),
        "the form keeps what was typed"
    );
    let mut bad_role = add.to_vec();
    bad_role.retain(|(k, _)| *k != "roles");
    bad_role.push(("roles", "vendor_biler"));
    let (status, html) = act(
        &officer,
        "/.ward/officer/users",
        "/.ward/officer/users",
        &bad_role,
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("did you mean 'vendor_biller'"), "{html}");
    assert_eq!(users_toml(&ward), users_before);

    // ---- Add a vendor: the one-time link is shown, users.toml keeps the officer's comments.
    let (status, html) = act(
        &officer,
        "/.ward/officer/users",
        "/.ward/officer/users",
        &add,
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Pat &lt;Acme&gt; &quot;Billing&quot;"),
        "escaped: {html}"
    );
    let link = input_value(&html, "link");
    assert!(link.contains("/.ward/enroll?token="), "{link}");
    let token = link.split("token=").nth(1).unwrap();
    let text = users_toml(&ward);
    assert!(text.starts_with(USERS_HEADER), "{text}");
    assert!(text.starts_with(&users_before), "{text}");
    assert!(text.contains("[users.acme_pat]"), "{text}");
    assert!(text.contains(&format!("expires = {vendor_end}")), "{text}");
    assert!(text.contains("sponsor = \"boss\""), "{text}");
    // The link works for the new person (its address comes from the policy; ours has the port).
    let newcomer = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    let (status, enroll) = page(&newcomer, &format!("/.ward/enroll?token={token}")).await;
    assert_eq!(status, 200, "{enroll}");
    assert!(enroll.contains("acme_pat"));
    // The token is nowhere in the audit trail.
    assert!(
        audit_records(&ward)
            .iter()
            .all(|r| !r.to_string().contains(token))
    );
    let (_, list) = page(&officer, "/.ward/officer/users").await;
    assert!(list.contains("href=\"/.ward/officer/users/acme_pat\""));

    // ---- End a live session of another person: their next click goes to sign-in.
    let seen: serde_json::Value = clinician.get("/debug/headers").await.json().await.unwrap();
    let session_id = seen_headers(&seen)
        .into_iter()
        .find(|(k, _)| k == "x-ward-session")
        .unwrap()
        .1;
    let (_, sessions) = page(&officer, "/.ward/officer/sessions").await;
    assert!(
        sessions.contains(&format!("value=\"{session_id}\"")),
        "{sessions}"
    );
    assert!(sessions.contains("(you, here)"));
    let (status, html) = act(
        &officer,
        "/.ward/officer/sessions",
        "/.ward/officer/sessions/end",
        &[("session", &session_id)],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("The session of dr_lee has ended"), "{html}");
    let resp = clinician.get("/patients/1001/chart").await;
    assert_eq!(resp.status(), 303);
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/.ward/login?return=")
    );
    // Ending it again says so.
    let (status, html) = act(
        &officer,
        "/.ward/officer/sessions",
        "/.ward/officer/sessions/end",
        &[("session", &session_id)],
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("already ended"));

    // ---- Terminate someone: only with the confirmation; then for good.
    let person = "/.ward/officer/users/temp_aide";
    let (status, html) = act(
        &officer,
        person,
        "/.ward/officer/users/temp_aide/terminate",
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("tick the box"), "{html}");
    assert!(!users_toml(&ward).contains("status = \"terminated\""));
    assert_eq!(aide.get("/patients/1001/chart").await.status(), 200);
    let (status, html) = act(
        &officer,
        person,
        "/.ward/officer/users/temp_aide/terminate",
        &[("confirm", "yes")],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("temp_aide is terminated"), "{html}");
    let text = users_toml(&ward);
    let table = &text[text.find("[users.temp_aide]").unwrap()..];
    let table = &table[..table[1..].find("\n[").map(|i| i + 1).unwrap_or(table.len())];
    assert!(table.contains("status = \"terminated\""), "{table}");
    assert_eq!(aide.get("/patients/1001/chart").await.status(), 303);
    let (_, html) = page(&officer, person).await;
    assert!(html.contains("This account is terminated"));
    assert!(!html.contains("/temp_aide/reactivate"));

    // ---- Reset a password: a new link, the old password gone.
    let (status, html) = act(
        &officer,
        "/.ward/officer/users/dr_lee",
        "/.ward/officer/users/dr_lee/reset-password",
        &[],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(input_value(&html, "link").contains("/.ward/enroll?token="));

    // ---- An export grant: the vendor's CSV download is blocked, then allowed, then not again.
    assert_eq!(vendor.get("/reports/patients.csv").await.status(), 403);
    let (status, html) = act(
        &officer,
        "/.ward/officer/grants",
        "/.ward/officer/grants/export",
        &[
            ("user", "acme_jo"),
            ("route", "/reports/**"),
            ("duration", "2h"),
            ("reason", "too short"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("Give a reason of a few words"), "{html}");
    let (status, html) = act(
        &officer,
        "/.ward/officer/grants",
        "/.ward/officer/grants/export",
        &[
            ("user", "acme_jo"),
            ("route", "/reports/**"),
            ("duration", "2h"),
            ("reason", "Year-end statements for the auditors"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("acme_jo may export from /reports/**"),
        "{html}"
    );
    let grants: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ward.site.path("state/grants.json")).unwrap(),
    )
    .unwrap();
    let grant = &grants["grants"][0];
    assert_eq!(grant["granted_by"], "boss");
    let grant_id = grant["id"].as_str().unwrap().to_string();
    assert_eq!(vendor.get("/reports/patients.csv").await.status(), 200);
    let (_, html) = page(&officer, "/.ward/officer/grants").await;
    assert!(html.contains(&format!("value=\"{grant_id}\"")), "{html}");
    let (status, html) = act(
        &officer,
        "/.ward/officer/grants",
        "/.ward/officer/grants/revoke",
        &[("id", &grant_id)],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(&format!("Revoked grant {grant_id}")),
        "{html}"
    );
    assert_eq!(vendor.get("/reports/patients.csv").await.status(), 403);
    let (_, html) = page(&officer, "/.ward/officer/grants?all=1").await;
    assert!(html.contains("revoked"), "{html}");

    // ---- Lock down the vendor's organization: sessions end, accounts deactivated.
    let (_, html) = page(&officer, "/.ward/officer/lockdown").await;
    assert!(html.contains("value=\"org:Acme Billing\""), "{html}");
    let (status, html) = act(
        &officer,
        "/.ward/officer/lockdown",
        "/.ward/officer/lockdown",
        &[("scope", "org:Acme Billing"), ("deactivate", "yes")],
    )
    .await;
    assert_eq!(status, 400, "no confirmation: {html}");
    assert_eq!(vendor.get("/patients/1001/chart").await.status(), 200);
    let (status, html) = act(
        &officer,
        "/.ward/officer/lockdown",
        "/.ward/officer/lockdown",
        &[
            ("scope", "org:Acme Billing"),
            ("deactivate", "yes"),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Lock-down of Acme Billing: 1 session ended"),
        "{html}"
    );
    assert!(html.contains("Deactivated: acme_jo, acme_pat"), "{html}");
    assert_eq!(vendor.get("/patients/1001/chart").await.status(), 303);
    let text = users_toml(&ward);
    let table = &text[text.find("[users.acme_jo]").unwrap()..];
    assert!(
        table[..table[1..].find("\n[").unwrap_or(table.len())].contains("status = \"deactivated\""),
        "{text}"
    );
    assert!(text.starts_with(USERS_HEADER), "comments kept: {text}");
    // The officer's own session is untouched.
    assert_eq!(page(&officer, OFFICER).await.0, 200);

    // ---- Every action is in the audit trail, by the officer, about the person.
    for (event, user) in [
        ("user-added", Some("acme_pat")),
        ("session-ended", Some("dr_lee")),
        ("user-terminated", Some("temp_aide")),
        ("password-reset", Some("dr_lee")),
        ("grant-issued", Some("acme_jo")),
        ("grant-revoked", Some("acme_jo")),
        ("lock-down", None),
    ] {
        let r = officer_record(&ward, "boss", event, user)
            .unwrap_or_else(|| panic!("no {event} record for {user:?}"));
        assert!(r["detail"].as_str().is_some_and(|d| !d.is_empty()), "{r}");
        assert!(r["client_ip"].is_string(), "{r}");
    }
    let lock = officer_record(&ward, "boss", "lock-down", None).unwrap();
    assert_eq!(lock["org"], "Acme Billing");
    let grant = officer_record(&ward, "boss", "grant-issued", None).unwrap();
    assert!(grant["grant"].as_str().unwrap().contains(&grant_id));
    // Refused attempts changed nothing, so they are not officer actions.
    assert!(officer_record(&ward, "dr_lee", "user-added", None).is_none());
    // And the console's audit search finds them.
    let (status, html) = page(
        &officer,
        "/.ward/officer/audit?user=boss&since=1h&kind=officer",
    )
    .await;
    assert_eq!(status, 200);
    for event in [
        "user-added",
        "session-ended",
        "user-terminated",
        "lock-down",
    ] {
        assert!(html.contains(event), "{event} not in {html}");
    }
    let (status, html) = page(
        &officer,
        "/.ward/officer/audit?path=%2Freports%2F**&decision=refused",
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("export-blocked"), "{html}");
    let (status, html) = page(&officer, "/.ward/officer/audit?path=reports").await;
    assert_eq!(status, 400, "{html}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reset_links_unlock_roles_and_end_dates() {
    let (_ehr, ward) = start("");
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    settle().await;
    let officer = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&officer, "boss", &boss).await;
    let clinician = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&clinician, "dr_lee", &lee).await;
    let person = "/.ward/officer/users/dr_lee";

    // Roles: the new set takes effect on the person's next request.
    let (status, html) = act(
        &officer,
        person,
        "/.ward/officer/users/dr_lee/roles",
        &[("roles", "clinician"), ("roles", "vendor_biller")],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(users_toml(&ward).contains("roles = [\"clinician\", \"vendor_biller\"]"));
    let seen: serde_json::Value = clinician.get("/debug/headers").await.json().await.unwrap();
    let roles: HashMap<String, String> = seen_headers(&seen).into_iter().collect();
    assert_eq!(roles["x-ward-roles"], "clinician,vendor_biller");
    let (status, _) = act(&officer, person, "/.ward/officer/users/dr_lee/roles", &[]).await;
    assert_eq!(status, 400, "at least one role");

    // End date: set, refused removal for nobody here (dr_lee is staff), removed.
    let end = date_in(10);
    let (status, _) = act(
        &officer,
        person,
        "/.ward/officer/users/dr_lee/end-date",
        &[("expires", &end)],
    )
    .await;
    assert_eq!(status, 200);
    assert!(users_toml(&ward).contains(&format!("expires = {end}")));
    let (_, review) = page(&officer, "/.ward/officer/review").await;
    assert!(review.contains("ends within 14 days (in 10)"), "{review}");
    let (status, _) = act(
        &officer,
        person,
        "/.ward/officer/users/dr_lee/no-end-date",
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(!users_toml(&ward).contains("expires ="));
    let (status, html) = act(
        &officer,
        person,
        "/.ward/officer/users/dr_lee/end-date",
        &[("expires", "31/12/2027")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("is not a date"));

    // Deactivate ends the session at once; reactivate lets the person back.
    let (status, _) = act(
        &officer,
        person,
        "/.ward/officer/users/dr_lee/deactivate",
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(clinician.get("/patients/1001/chart").await.status(), 303);
    let (status, _) = act(
        &officer,
        person,
        "/.ward/officer/users/dr_lee/reactivate",
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert!(users_toml(&ward).contains("status = \"active\""));

    // A lockout, then unlock.
    ward::users::SecretStore::open(&ward.site.path("state"))
        .unwrap()
        .update(|s| {
            let u = s.users.get_mut("dr_lee").unwrap();
            u.locked_until = Some(unix_now() as i64 + 600);
            u.failed_logins = 0;
        })
        .unwrap();
    let (_, html) = page(&officer, person).await;
    assert!(html.contains("<dt>Locked</dt><dd>until"), "{html}");
    let (status, html) = act(&officer, person, "/.ward/officer/users/dr_lee/unlock", &[]).await;
    assert_eq!(status, 200);
    assert!(html.contains("dr_lee is unlocked"));
    let secrets = ward::users::SecretStore::open(&ward.site.path("state"))
        .unwrap()
        .read()
        .unwrap();
    assert_eq!(secrets.users["dr_lee"].locked_until, None);

    // Lock down everyone but the officers: the officer stays.
    sign_in(&clinician, "dr_lee", &lee).await;
    assert_eq!(clinician.get("/patients/1001/chart").await.status(), 200);
    let (status, html) = act(
        &officer,
        "/.ward/officer/lockdown",
        "/.ward/officer/lockdown",
        &[("scope", "everyone"), ("confirm", "yes")],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("only the officers are still signed in"),
        "{html}"
    );
    assert_eq!(clinician.get("/patients/1001/chart").await.status(), 303);
    assert_eq!(page(&officer, OFFICER).await.0, 200);

    // Reset MFA: a link, and the authenticator is gone.
    let (status, html) = act(
        &officer,
        person,
        "/.ward/officer/users/dr_lee/reset-mfa",
        &[],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(input_value(&html, "link").contains("token="));
    let secrets = ward::users::SecretStore::open(&ward.site.path("state"))
        .unwrap()
        .read()
        .unwrap();
    assert!(secrets.users["dr_lee"].totp.is_none());
    assert!(officer_record(&ward, "boss", "lock-down", None).is_some());

    for event in [
        "roles-changed",
        "end-date-set",
        "end-date-removed",
        "user-deactivated",
        "user-reactivated",
        "user-unlocked",
        "mfa-reset",
    ] {
        assert!(
            officer_record(&ward, "boss", event, Some("dr_lee")).is_some(),
            "no {event} record"
        );
    }
}

#[test]
fn report_access_and_check_warn_about_officers() {
    let site = Site::new();
    std::fs::create_dir_all(site.path("config")).unwrap();
    let text = policy("http://127.0.0.1:9", "").replace("{server}", &server_section(&site));
    std::fs::write(site.path("config/ward.toml"), text).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(WARD)
            .args(args)
            .current_dir(site.dir.path())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // No accounts at all: no officer.
    let (ok, _, err) = run(&["check", "--config", "config/ward.toml"]);
    assert!(ok, "{err}");
    assert!(
        err.contains("config/ward.toml: warning: no active account has the role 'officer'"),
        "{err}"
    );
    enrolled_user(&site, "boss", &["officer"], PW, None, None);
    enrolled_user(
        &site,
        "acme_jo",
        &["vendor_biller"],
        PW,
        Some("Acme, Inc."),
        Some(&date_in(5)),
    );
    let (ok, _, err) = run(&["check", "--config", "config/ward.toml"]);
    assert!(ok);
    assert!(
        err.contains(
            "config/ward.toml: warning: only one active account (boss) has the role 'officer'"
        ),
        "{err}"
    );
    enrolled_user(&site, "deputy", &["officer"], PW, None, None);
    let (ok, out, err) = run(&["check", "--config", "config/ward.toml"]);
    assert!(ok);
    assert!(out.contains("the policy is valid"));
    assert!(!err.contains("warning"), "{err}");

    // CSV on stdout.
    let (ok, out, err) = run(&[
        "report",
        "access",
        "--config",
        "config/ward.toml",
        "--format",
        "csv",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "name,display_name,status,roles,organization,sponsor,mfa_enrolled,passkeys,last_sign_in,last_activity,end_date,flags"
    );
    assert!(
        lines[1]
            .starts_with("acme_jo,Test acme_jo,active,vendor_biller,\"Acme, Inc.\",officer,yes,,,"),
        "{out}"
    );
    assert!(
        lines[1].ends_with("never signed in; ends within 14 days (in 5)"),
        "{out}"
    );
    // HTML to a file only its owner can read; --config may come first.
    let (ok, _, err) = run(&[
        "report",
        "--config",
        "config/ward.toml",
        "access",
        "--idle-days",
        "30",
        "--output",
        "review.html",
    ]);
    assert!(ok, "{err}");
    let html = std::fs::read_to_string(site.path("review.html")).unwrap();
    assert!(html.contains("<h1>Access review</h1>"));
    assert!(html.contains("unused for more than 30 days"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(site.path("review.html"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let (ok, _, err) = run(&["report", "access", "--config", "missing.toml"]);
    assert!(!ok);
    assert!(err.contains("ward report access:"), "{err}");
}

/// Issue #14: the officer sees a person's passkeys (by name) on their page and removes one;
/// the removal is recorded with the key's name, ends the person's sessions, and shows in the
/// access review. The key is a real one, made by Chromium's virtual authenticator in
/// `passkeys_browser` (`tests/fixtures/passkey.json`: a public key, no secret).
#[tokio::test(flavor = "multi_thread")]
async fn an_officer_lists_and_removes_a_persons_passkey() {
    let (_ehr, ward) = start("");
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let (handle, entry) = chromium_passkey();
    let store = ward::users::SecretStore::open(&ward.site.path("state")).unwrap();
    store
        .update(|s| {
            let u = s.users.get_mut("dr_lee").unwrap();
            u.passkey_user = handle;
            u.passkeys.push(entry.clone());
        })
        .unwrap();
    settle().await;
    let officer = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&officer, "boss", &boss).await;
    let clinician = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&clinician, "dr_lee", &lee).await;
    let person = "/.ward/officer/users/dr_lee";
    let (status, html) = page(&officer, person).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("Passkeys and security keys") && html.contains("Remove test laptop"),
        "{html}"
    );
    assert!(html.contains("ward.localhost"), "{html}");
    // The access review names each person's second factors.
    let (status, html) = page(&officer, "/.ward/officer/review").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("app, 1 passkey (test laptop)"), "{html}");
    let (_, csv) = page(&officer, "/.ward/officer/review.csv").await;
    let lee = csv.lines().find(|l| l.starts_with("dr_lee,")).unwrap();
    assert!(lee.contains(",yes,test laptop,"), "{lee}");

    // A key id the person does not have changes nothing.
    let (status, html) = act(
        &officer,
        person,
        "/.ward/officer/users/dr_lee/remove-passkey",
        &[("key", "not-a-key")],
    )
    .await;
    assert_eq!(status, 400, "{html}");
    assert_eq!(store.read().unwrap().users["dr_lee"].passkeys.len(), 1);

    let (status, html) = act(
        &officer,
        person,
        "/.ward/officer/users/dr_lee/remove-passkey",
        &[("key", &entry.id_text())],
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("no longer signs dr_lee in"), "{html}");
    assert!(store.read().unwrap().users["dr_lee"].passkeys.is_empty());
    let record = officer_record(&ward, "boss", "passkey-removed", Some("dr_lee"))
        .expect("a passkey-removed record");
    assert_eq!(record["detail"], "key \"test laptop\"");
    // The person's sessions ended with it.
    let resp = clinician.get("/.ward/passkeys").await;
    assert_ne!(resp.status(), 200, "dr_lee's session must have ended");
}

/// Issue #14: an officer role with `mfa = "phishing-resistant"` keeps an officer who signed
/// in with the authenticator code out of the console.
#[tokio::test(flavor = "multi_thread")]
async fn a_phishing_resistant_officer_role_needs_a_passkey_for_the_console() {
    let ehr = Ehr::start();
    let site = Site::new();
    std::fs::create_dir_all(site.path("config")).unwrap();
    std::fs::write(site.path("config/users.toml"), USERS_HEADER).unwrap();
    let config = site.path("ward.toml");
    let text = policy(&ehr.url(), "").replace(
        "officer = { description = \"Security officer\" }",
        "officer = { description = \"Security officer\", mfa = \"phishing-resistant\" }",
    );
    assert!(text.contains("phishing-resistant"));
    std::fs::write(&config, text.replace("{server}", &server_section(&site))).unwrap();
    let ward = Ward::start_in(site, config);
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    settle().await;
    let officer = Browser::new(&ward).pages_on(&ward, WARD_HOST);
    sign_in(&officer, "boss", &boss).await;
    let (status, html) = page(&officer, "/.ward/officer/users").await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("passkey or security key"), "{html}");
    // Adding a passkey stays open to the code sign-in: it is how the officer gets one.
    let (status, html) = page(&officer, "/.ward/passkeys").await;
    assert_eq!(status, 200, "{html}");
}
