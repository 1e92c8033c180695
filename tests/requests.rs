//! Access requests and the periodic access review, end to end over real TLS against the
//! sample EHR: a vendor refused a page asks for access, an officer approves it in the
//! console in a real browser (headless chromium), the grant opens the page and ends by
//! itself; a denial reaches the person once; nobody decides on their own request (command
//! line and console); `ward grant` and every decision are in the audit trail; a review
//! overdue is flagged in `ward report access` and alerted once.
//!
//! Needs `chromium` and `chromedriver` (`tests/run` installs them when missing).

use crate::common::browser::*;
use crate::common::*;
use fantoccini::Locator;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use ward::auth::totp::code_at;

/// ward with ward's own host, a billing page for billers only, and the rest for everyone.
fn start(extra: &str) -> (Ehr, Ward, PathBuf) {
    let ehr = Ehr::start();
    let site = Site::new();
    std::fs::create_dir_all(site.path("config")).unwrap();
    std::fs::write(site.path("config/users.toml"), "# people\n").unwrap();
    let policy = format!(
        "practice = \"Test Clinic\"\n{server}ward_host = \"{WARD_HOST}\"\n{extra}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [roles]\nofficer = {{}}\nclinician = {{}}\nbiller = {{}}\nvendor_biller = {{}}\n\
         [[apps]]\nname = \"ehr\"\nhost = \"localhost\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/billing\"\nallow_roles = [\"biller\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\", \"vendor_biller\", \"officer\"]\n",
        server = server_section(&site),
        upstream = ehr.url(),
    );
    let config = site.path("ward.toml");
    std::fs::write(&config, policy).unwrap();
    let ward = Ward::start_in(site, config.clone());
    (ehr, ward, config)
}

async fn signed_in(ward: &Ward, user: &str, secret: &[u8]) -> Browser {
    let b = Browser::new(ward).pages_on(ward, WARD_HOST);
    for offset in [0i64, 30, -30, 60] {
        if sign_in_with(&b, user, PW, secret, offset).await == 303 {
            return b;
        }
    }
    panic!("{user} could not sign in");
}

async fn text_of(b: &Browser, path: &str) -> (u16, String) {
    let resp = b.get(path).await;
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// A request for an export grant of the patient list, with the form token `csrf`.
fn export_form(csrf: &str) -> [(&'static str, &str); 6] {
    [
        ("csrf", csrf),
        ("kind", "export"),
        ("host", "localhost"),
        ("path", "/reports/patients.csv"),
        ("reason", "Patient list for the mailing"),
        ("duration", "1h"),
    ]
}

/// acme_jo of Acme Billing (a vendor biller, who may not open /billing), signed in.
async fn vendor_signed_in(ward: &Ward) -> Browser {
    let jo = enrolled_user(
        &ward.site,
        "acme_jo",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2031-06-30"),
    );
    // ward reads the accounts file four times a second.
    tokio::time::sleep(Duration::from_millis(700)).await;
    signed_in(ward, "acme_jo", &jo).await
}

/// The refused page's "Request access" link, as the browser follows it.
fn request_link(html: &str) -> String {
    let at = html
        .find("href=\"/.ward/request?")
        .unwrap_or_else(|| panic!("no Request access link: {html}"));
    let rest = &html[at + 6..];
    rest[..rest.find('"').unwrap()].replace("&amp;", "&")
}

/// `who`, refused `/billing`, asks for access for `wished`; the request's id.
async fn ask_for_billing(ward: &Ward, who: &Browser, reason: &str, wished: &str) -> String {
    let (status, html) = text_of(who, "/billing").await;
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("Request access"), "{html}");
    let link = request_link(&html);
    assert_eq!(
        link,
        "/.ward/request?kind=access&host=localhost&path=%2Fbilling"
    );
    let (status, form) = text_of(who, &link).await;
    assert_eq!(status, 200, "{form}");
    assert!(form.contains("access to ehr /billing"), "{form}");
    let csrf = input_value(&form, "csrf");
    let resp = who
        .post(
            "/.ward/request",
            &[
                ("csrf", &csrf),
                ("kind", "access"),
                ("host", "localhost"),
                ("path", "/billing"),
                ("reason", reason),
                ("duration", wished),
            ],
        )
        .await;
    let status = resp.status().as_u16();
    let html = resp.text().await.unwrap();
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("gives you nothing until an officer approves"),
        "{html}"
    );
    let requests: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ward.site.path("state/requests.json")).unwrap(),
    )
    .unwrap();
    requests["requests"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["state"] == "pending")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn officer_records(ward: &Ward, event: &str) -> Vec<serde_json::Value> {
    audit_text(&ward.site)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == "officer" && r["event"] == event)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_asks_an_officer_approves_in_a_real_browser_and_the_grant_ends() {
    let started = Instant::now();
    let (_ehr, ward, _config) = start("");
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    let vendor = vendor_signed_in(&ward).await;
    // Asking is not having: a request opens nothing.
    let id = ask_for_billing(&ward, &vendor, "Month-end statements for Acme", "20s").await;
    assert_eq!(vendor.get("/billing").await.status(), 403);
    // The officer is alerted (the log carries every alert; the webhook gets the same).
    let logs = ward.logs().join("\n");
    assert!(
        logs.contains("access-request") && logs.contains(&format!("request {id}")),
        "{logs}"
    );
    assert!(
        !logs.contains("Month-end statements"),
        "the reason stays out of alerts"
    );
    // The request is in the trail, with its reason.
    let trail = audit_text(&ward.site);
    assert!(trail.contains("\"event\":\"access-requested\""), "{trail}");
    assert!(trail.contains("Month-end statements for Acme"), "{trail}");

    // The officer approves it in the console, for less time than asked.
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let client = open_browser(&driver, profile.path()).await;
    let walk = async {
        sign_in_on_ward_host(&client, &ward, "boss", &code_at(&boss, unix_now())).await;
        client
            .goto(&ward.url_for(WARD_HOST, "/.ward/officer/requests"))
            .await
            .unwrap();
        let text = body_text(&client).await;
        assert!(
            text.contains("acme_jo") && text.contains("Month-end statements for Acme"),
            "{text}"
        );
        screenshot(&client, "console/requests.png").await;
        fill(&client, &format!("#for-{id}"), "4s").await;
        click(
            &client,
            &format!("button[aria-label='Approve request {id}']"),
        )
        .await;
        client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(".notice"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let notice = tokio::time::timeout(Duration::from_secs(120), walk)
        .await
        .expect("the console walk-through took over 120 s");
    client.close().await.unwrap();
    assert!(
        notice.contains(&format!("Approved request {id}")),
        "{notice}"
    );
    assert!(
        notice.contains("acme_jo has access to ehr /billing"),
        "{notice}"
    );

    // The grant opens the page, and the trail says by which grant.
    let resp = vendor.get("/billing").await;
    assert_eq!(resp.status(), 200);
    let rid = request_id(&resp);
    let record = audit_of(&ward.site, &rid);
    assert!(
        record["grant"]
            .as_str()
            .unwrap()
            .contains(&format!("request {id}")),
        "{record}"
    );
    let approved = officer_records(&ward, "request-approved");
    assert_eq!(approved.len(), 1, "{approved:?}");
    assert_eq!(approved[0]["actor"], "boss");
    assert_eq!(approved[0]["user"], "acme_jo");
    // Told once, on the next of ward's pages.
    let (_, page) = text_of(&vendor, "/.ward/request").await;
    assert!(page.contains("was approved by boss"), "{page}");
    let (_, page) = text_of(&vendor, "/.ward/request").await;
    assert!(!page.contains("was approved by boss"), "{page}");
    // It ends by itself.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(vendor.get("/billing").await.status(), 403);
    println!("whole test took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn denials_reach_the_person_once_and_nobody_decides_their_own_request() {
    let (_ehr, ward, config) = start("");
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    enrolled_user(&ward.site, "deputy", &["officer"], PW, None, None);
    let vendor = vendor_signed_in(&ward).await;
    let id = ask_for_billing(&ward, &vendor, "Month-end statements for Acme", "8h").await;

    // A download refused offers the same, for an export grant of the route.
    let (status, html) = text_of(&vendor, "/reports/patients.csv").await;
    assert_eq!(status, 403, "{html}");
    let link = request_link(&html);
    assert_eq!(
        link,
        "/.ward/request?kind=export&host=localhost&path=%2Freports%2Fpatients.csv"
    );
    let (_, form) = text_of(&vendor, &link).await;
    assert!(form.contains("export from /**"), "{form}");

    // One request waiting per page: asking again is refused.
    let (_, form) = text_of(
        &vendor,
        "/.ward/request?kind=access&host=localhost&path=%2Fbilling",
    )
    .await;
    let csrf = input_value(&form, "csrf");
    let again = [
        ("csrf", csrf.as_str()),
        ("kind", "access"),
        ("host", "localhost"),
        ("path", "/billing"),
        ("reason", "Month-end statements again"),
        ("duration", "8h"),
    ];
    let resp = vendor.post("/.ward/request", &again).await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("already asked for this")
    );
    // Without the session's token, or from another site, no request is made (the export
    // request below is one the person may make, with the token).
    let resp = vendor.post("/.ward/request", &export_form("forged")).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("This form has expired"));
    let resp = vendor
        .post_from(
            "https://evil.example",
            "/.ward/request",
            &export_form(&csrf),
        )
        .await;
    assert_ne!(resp.status(), 200);
    let file = std::fs::read_to_string(ward.site.path("state/requests.json")).unwrap();
    assert!(!file.contains("export"), "{file}");
    // The control: the same form with the token, from ward's page, is taken.
    let resp = vendor.post("/.ward/request", &export_form(&csrf)).await;
    assert_eq!(resp.status(), 200);
    let file = std::fs::read_to_string(ward.site.path("state/requests.json")).unwrap();
    assert!(file.contains("\"type\": \"export\""), "{file}");
    // Nothing to ask for where the person already has access.
    let (_, page) = text_of(
        &vendor,
        "/.ward/request?kind=access&host=localhost&path=%2Fpatients",
    )
    .await;
    assert!(page.contains("You can already open this page"), "{page}");

    // Only an officer's account may decide.
    let (ok, _, err) = ward_cli(
        &ward,
        &config,
        &[
            "request",
            "deny",
            &id,
            "--officer",
            "acme_jo",
            "--note",
            "x",
        ],
    );
    assert!(
        !ok && err.contains("does not have the role 'officer'"),
        "{err}"
    );
    // Denied with a note, from the command line.
    let (ok, out, err) = ward_cli(
        &ward,
        &config,
        &[
            "request",
            "deny",
            &id,
            "--officer",
            "boss",
            "--note",
            "Ask the billing office instead",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains(&format!("Denied request {id}")), "{out}");
    let (ok, out, _) = ward_cli(&ward, &config, &["request", "list", "--all"]);
    assert!(ok && out.contains("denied by boss"), "{out}");
    // A second decision finds nothing waiting.
    let (ok, _, err) = ward_cli(
        &ward,
        &config,
        &["request", "approve", &id, "--officer", "boss"],
    );
    assert!(!ok && err.contains("no request"), "{err}");
    // The person sees the note on their next refused page, once; the request gave nothing.
    let (status, html) = text_of(&vendor, "/billing").await;
    assert_eq!(status, 403);
    assert!(
        html.contains("was denied by boss: Ask the billing office instead"),
        "{html}"
    );
    let (_, html) = text_of(&vendor, "/billing").await;
    assert!(!html.contains("Ask the billing office instead"), "{html}");
    let denied = officer_records(&ward, "request-denied");
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(
        denied[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("boss (officer (command line")
    );

    // The officer's own request: neither the command line nor the console lets them approve it.
    let officer = signed_in(&ward, "boss", &boss).await;
    let own = ask_for_billing(&ward, &officer, "Checking the billing screens", "1h").await;
    let (ok, _, err) = ward_cli(
        &ward,
        &config,
        &["request", "approve", &own, "--officer", "boss"],
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains("boss cannot decide on their own request"),
        "{err}"
    );
    let (status, page) = text_of(&officer, "/.ward/officer/requests").await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Your own request: another officer decides."),
        "{page}"
    );
    // A form posted anyway (the officer's own token, from another console page).
    let (_, grants) = text_of(&officer, "/.ward/officer/grants").await;
    let csrf = input_value(&grants, "csrf");
    let resp = officer
        .post(
            "/.ward/officer/requests/approve",
            &[("csrf", &csrf), ("id", &own), ("duration", "1h")],
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("cannot decide on their own request")
    );
    assert_eq!(officer.get("/billing").await.status(), 403);
    assert!(
        !std::fs::read_to_string(ward.site.path("state/grants.json"))
            .unwrap_or_default()
            .contains(&format!("request {own}"))
    );
    // Another officer may; longer than asked is refused, shorter is fine.
    let (ok, _, err) = ward_cli(
        &ward,
        &config,
        &[
            "request",
            "approve",
            &own,
            "--officer",
            "deputy",
            "--for",
            "2h",
        ],
    );
    assert!(!ok && err.contains("asked for at most 1h"), "{err}");
    let (ok, out, err) = ward_cli(
        &ward,
        &config,
        &[
            "request",
            "approve",
            &own,
            "--officer",
            "deputy",
            "--for",
            "30m",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("boss has access to ehr /billing"), "{out}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(officer.get("/billing").await.status(), 200);
    let approved = officer_records(&ward, "request-approved");
    assert!(
        approved[0]["actor"]
            .as_str()
            .unwrap()
            .starts_with("deputy (officer (command line")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ward_grant_and_revoke_are_in_the_audit_trail_with_who_did_it() {
    let (_ehr, ward, config) = start("");
    enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let (ok, out, err) = ward_cli(
        &ward,
        &config,
        &[
            "grant",
            "export",
            "--user",
            "dr_lee",
            "--route",
            "/reports/**",
            "--for",
            "2h",
            "--reason",
            "Year-end report for the board",
        ],
    );
    assert!(ok, "{err}");
    let id = out
        .split("(grant ")
        .nth(1)
        .unwrap()
        .trim_end()
        .trim_end_matches(").")
        .to_string();
    let (ok, _, err) = ward_cli(&ward, &config, &["grant", "revoke", &id]);
    assert!(ok, "{err}");
    for event in ["grant-issued", "grant-revoked"] {
        let r = officer_records(&ward, event);
        assert_eq!(r.len(), 1, "{event}: {r:?}");
        assert_eq!(r[0]["user"], "dr_lee");
        assert!(
            r[0]["actor"]
                .as_str()
                .unwrap()
                .starts_with("officer (command line"),
            "{:?}",
            r[0]
        );
        assert!(r[0]["grant"].as_str().unwrap().contains(&id), "{:?}", r[0]);
    }
    // Listing is not an action: no record.
    let before = audit_text(&ward.site).lines().count();
    assert!(ward_cli(&ward, &config, &["grant", "list", "--all"]).0);
    assert_eq!(audit_text(&ward.site).lines().count(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_overdue_review_is_flagged_alerted_once_and_signed_off() {
    let (_ehr, ward, config) = start("[review]\nperiod = \"1h\"\n");
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    enrolled_user(&ward.site, "nurse_kim", &["clinician"], PW, None, None);
    // dr_lee was last reviewed two hours ago: overdue since an hour ago.
    {
        use ward::users::attestations::{Attestation, AttestationStore, Decision};
        let store = AttestationStore::open(&ward.site.path("state")).unwrap();
        store
            .update(|all| {
                // ward has watched reviews for two hours: never reviewed is overdue too.
                all.tracking_since = Some(unix_now() as i64 - 7200);
                all.attestations.push(Attestation {
                    user: "dr_lee".into(),
                    by: "boss".into(),
                    at: unix_now() as i64 - 7200,
                    decision: Decision::Keep,
                    note: String::new(),
                })
            })
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // nurse_kim is signed off now, in the console.
    let officer = signed_in(&ward, "boss", &boss).await;
    let (status, page) = text_of(&officer, "/.ward/officer/review").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("review overdue since"), "{page}");
    let csrf = input_value(&page, "csrf");
    let resp = officer
        .post(
            "/.ward/officer/review/attest",
            &[
                ("csrf", &csrf),
                ("user", "nurse_kim"),
                ("decision", "remove"),
                ("note", ""),
            ],
        )
        .await;
    assert_eq!(resp.status(), 400, "remove needs a note");
    let resp = officer
        .post(
            "/.ward/officer/review/attest",
            &[
                ("csrf", &csrf),
                ("user", "nurse_kim"),
                ("decision", "keep"),
                ("note", ""),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Recorded: nurse_kim — keep (signed off by boss)")
    );
    let r = officer_records(&ward, "access-attested");
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0]["actor"].as_str(), r[0]["user"].as_str()),
        (Some("boss"), Some("nurse_kim"))
    );

    // `ward report access`: dr_lee overdue, nurse_kim not, boss never reviewed.
    let (ok, csv, err) = ward_cli(&ward, &config, &["report", "access", "--format", "csv"]);
    assert!(ok, "{err}");
    let line = |name: &str| {
        csv.lines()
            .find(|l| l.starts_with(&format!("{name},")))
            .unwrap()
            .to_string()
    };
    assert!(line("dr_lee").contains("review overdue since"), "{csv}");
    assert!(!line("nurse_kim").contains("review"), "{csv}");
    assert!(line("boss").contains("never reviewed"), "{csv}");
    // The printable review carries the sign-off.
    let (ok, html, _) = ward_cli(&ward, &config, &["report", "access"]);
    assert!(ok);
    assert!(html.contains("Sign-off recorded in ward"), "{html}");
    assert!(
        html.contains("nurse_kim: <strong>keep</strong>, attested by boss"),
        "{html}"
    );

    // The alert: once per person per period, not on every check (ward checks every 5 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    let alerts = |who: &str| {
        ward.logs()
            .iter()
            .filter(|l| {
                l.contains("review-overdue") && l.contains(&format!("the access review of {who}"))
            })
            .count()
    };
    while alerts("dr_lee") == 0 {
        assert!(
            Instant::now() < deadline,
            "no review-overdue alert:\n{}",
            ward.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(alerts("dr_lee"), 1, "{}", ward.logs().join("\n"));
    assert_eq!(alerts("nurse_kim"), 0);
}
