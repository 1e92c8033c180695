//! ward's own pages against script injection.
//!
//! - Every page of ward's (sign-in, second step, enrollment, signed out, break-glass, the
//!   hand-off and ward's home, refusals, every console page) carries a Content-Security-Policy
//!   without `unsafe-inline`, and no inline style or script of its own; its stylesheets are
//!   served as `text/css` with `nosniff`.
//! - In real Chromium, markup and script put in every field a person, the officer or the
//!   policy files can fill (practice name, role descriptions, the policy's file name, display
//!   names, organizations, sponsors, grant and break-glass reasons, names typed at sign-in,
//!   audit search terms, return addresses) never run and never become markup: the text is
//!   shown as typed, and the pages are still styled.
//!
//! The browser test needs `chromium` and `chromedriver` (`tests/run` installs them).

use crate::common::browser::*;
use crate::common::*;
use fantoccini::{Client, Locator};
use std::time::Duration;
use ward::auth::totp::code_at;

/// Markup and script in the usual shapes; each sets `window.__xss` if it ever runs.
const HOSTILE: &str = "\"'><script>window.__xss=1</script><img src=x onerror=window.__xss=2><svg onload=window.__xss=3>";
/// A second one for fields that must differ from the first.
const HOSTILE_ORG: &str =
    "Acme <script>window.__xss=4</script><b onmouseover=window.__xss=5>Billing</b>";
/// A `javascript:` address where ward takes a return address.
const JS_URL: &str = "javascript:window.__xss=6";

/// `text` as a TOML basic string.
fn toml_str(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `text` for a query string.
fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// ward with hostile text in the policy (practice, a role's description, the file's name)
/// and in users.toml (a vendor's display name, organization and sponsor).
struct Setup {
    _ehr: Ehr,
    ward: Ward,
    boss: Vec<u8>,
    lee: Vec<u8>,
}

fn start() -> Setup {
    let ehr = Ehr::start();
    let site = Site::new();
    std::fs::create_dir_all(site.path("config")).unwrap();
    std::fs::write(site.path("config/users.toml"), "").unwrap();
    let boss = enrolled_user(&site, "boss", &["officer"], PW, None, None);
    let lee = enrolled_user(&site, "dr_lee", &["clinician"], PW, None, None);
    enrolled_user(
        &site,
        "acme_jo",
        &["vendor_biller"],
        PW,
        Some("Acme"),
        Some("2031-06-30"),
    );
    let users = std::fs::read_to_string(site.path("config/users.toml")).unwrap();
    let users = users
        .replace("\"Test acme_jo\"", &toml_str(HOSTILE))
        .replace(
            "org = \"Acme\"",
            &format!("org = {}", toml_str(HOSTILE_ORG)),
        )
        .replace(
            "sponsor = \"officer\"",
            &format!("sponsor = {}", toml_str(HOSTILE)),
        );
    assert!(users.contains("window.__xss=4"), "{users}");
    std::fs::write(site.path("config/users.toml"), users).unwrap();
    let policy = format!(
        r#"practice = {practice}
{server}ward_host = "{WARD_HOST}"
[storage]
users = "config/users.toml"
state = "state"

[roles]
officer = {{ description = "Security officer" }}
clinician = {{ description = {hostile} }}
vendor_biller = {{ description = "Acme Billing staff", export = "block" }}
emergency = {{}}

[break_glass]
allowed_roles = ["clinician"]
emergency_roles = ["emergency"]

[[apps]]
name = "ehr"
host = "localhost"
upstream = "{upstream}"

[[routes]]
app = "ehr"
path = "/**"
allow_roles = ["clinician", "vendor_biller", "officer", "emergency"]
"#,
        practice = toml_str(&format!("Clinic {HOSTILE}")),
        hostile = toml_str(HOSTILE),
        server = server_section(&site),
        upstream = ehr.url(),
    );
    // A policy file's name is shown on the console's policy page and in the review.
    let config = site.path("<svg onload=window.__xss=7>.toml");
    std::fs::write(&config, policy).unwrap();
    let ward = Ward::start_in(site, config);
    Setup {
        _ehr: ehr,
        ward,
        boss,
        lee,
    }
}

/// The page's CSP, checked; panics on `unsafe-inline`, inline styles or inline scripts.
async fn assert_safe_page(resp: reqwest::Response, what: &str) -> String {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.text().await.unwrap();
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(ct.starts_with("text/html"), "{what}: {status} {ct}\n{body}");
    let csp = headers
        .get("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP ({status})\n{body}"))
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    let lower = body.to_ascii_lowercase();
    assert!(!lower.contains("<style"), "{what}: inline style\n{body}");
    assert!(
        !lower.contains(" style="),
        "{what}: style attribute\n{body}"
    );
    assert!(!lower.contains("<script"), "{what}: a script\n{body}");
    assert!(
        lower.contains("<link rel=\"stylesheet\" href=\"/.ward/"),
        "{what}: {body}"
    );
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn every_ward_page_has_a_csp_without_unsafe_inline() {
    let s = start();
    let ward = &s.ward;
    let app = Browser::on(ward, "localhost");
    let own = Browser::on(ward, WARD_HOST);

    // Not signed in.
    assert_safe_page(own.get("/.ward/login").await, "sign-in").await;
    assert_safe_page(own.get("/.ward/login?reason=idle").await, "sign-in (idle)").await;
    assert_safe_page(own.get("/.ward/logged-out").await, "signed out").await;
    assert_safe_page(app.get("/.ward/logged-out").await, "signed out (app host)").await;
    assert_safe_page(own.get("/.ward/enroll?token=nope").await, "enrollment").await;
    assert_safe_page(own.get("/.ward/go?to=x").await, "hand-off refused").await;
    assert_safe_page(own.get("/not-here").await, "refusal on ward's host").await;
    assert_safe_page(app.get("/.ward/keepalive").await, "refusal on an app host").await;
    assert_safe_page(app.get("/a%2fb").await, "refusal of an ambiguous path").await;
    assert_safe_page(app.post("/.ward/break-glass", &[]).await, "elsewhere").await;

    // The second step.
    let r = own.get("/.ward/login").await.text().await.unwrap();
    let csrf = input_value(&r, "csrf");
    let step = own
        .post(
            "/.ward/login",
            &[
                ("csrf", &csrf),
                ("return", "/"),
                ("username", "dr_lee"),
                ("password", PW),
            ],
        )
        .await;
    assert_eq!(step.status(), 303);
    assert_safe_page(own.get("/.ward/mfa").await, "second step").await;

    // A clinician: home, break-glass, sign-out.
    let lee_own = Browser::on(ward, WARD_HOST);
    assert_eq!(sign_in_with(&lee_own, "dr_lee", PW, &s.lee, 0).await, 303);
    assert_safe_page(lee_own.get("/").await, "ward's home").await;
    assert_safe_page(lee_own.get("/.ward/break-glass").await, "break-glass").await;
    assert_safe_page(lee_own.get("/.ward/logout").await, "sign-out").await;
    assert_safe_page(lee_own.get("/.ward/officer/").await, "console refused").await;
    // Passkeys: the list has no script; the page that asks the authenticator runs ward's own
    // file and nothing inline, and shows a typed key name as text.
    let list = assert_safe_page(lee_own.get("/.ward/passkeys").await, "passkeys").await;
    let csrf = input_value(&list, "csrf");
    let payload = "<script>window.__xss=1</script>";
    let add = lee_own
        .post(
            "/.ward/passkeys",
            &[("csrf", &csrf), ("action", "add"), ("name", payload)],
        )
        .await;
    let csp = add.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    let body = add.text().await.unwrap();
    let scripts: Vec<&str> = body
        .match_indices("<script")
        .map(|(i, _)| &body[i..])
        .collect();
    assert_eq!(scripts.len(), 1, "{body}");
    assert!(
        scripts[0].starts_with("<script src=\"/.ward/passkey.js\""),
        "{body}"
    );
    assert!(body.contains("&lt;script&gt;window.__xss=1"), "{body}");
    let js = lee_own.get("/.ward/passkey.js").await;
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(js.headers()["x-content-type-options"], "nosniff");

    // The officer's console, every page.
    let boss = Browser::on(ward, WARD_HOST);
    assert_eq!(sign_in_with(&boss, "boss", PW, &s.boss, 0).await, 303);
    for path in [
        "/.ward/officer/",
        "/.ward/officer/users",
        "/.ward/officer/users/acme_jo",
        "/.ward/officer/sessions",
        "/.ward/officer/grants",
        "/.ward/officer/audit",
        "/.ward/officer/audit?since=1h&kind=officer",
        "/.ward/officer/review",
        "/.ward/officer/review.html",
        "/.ward/officer/policy",
        "/.ward/officer/lockdown",
        "/.ward/officer/no-such-page",
    ] {
        assert_safe_page(boss.get(path).await, path).await;
    }

    // The stylesheets: CSS, never sniffed, on every host.
    for (b, path) in [
        (&own, "/.ward/ward.css"),
        (&app, "/.ward/ward.css"),
        (&own, "/.ward/console.css"),
        (&own, "/.ward/review.css"),
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(
            r.headers()["content-type"],
            "text/css; charset=utf-8",
            "{path}"
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        assert!(r.text().await.unwrap().contains("font-family"), "{path}");
    }
}

/// What every page must show: no payload ran, none became an element, and the page is styled.
const INSPECT: &str = r#"
const injected = document.querySelectorAll(
  'script:not([src]), [onerror], [onload], [onclick], [onmouseover], iframe, object, embed, a[href^="javascript:" i], form[action^="javascript:" i]'
).length;
const bar = document.querySelector('header.bar');
const styled = bar
  ? getComputedStyle(bar).backgroundColor === 'rgb(31, 58, 95)'
  : getComputedStyle(document.body).fontFamily.includes('system-ui');
return [typeof window.__xss, injected, styled, document.title];
"#;

/// Opens `url` and checks it as [`INSPECT`] says; returns the page's text.
async fn check(client: &Client, url: &str) -> String {
    client.goto(url).await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("h1"))
        .await
        .unwrap_or_else(|e| panic!("{url}: no heading ({e})"));
    // onerror and onload fire after the page's own load; give them the chance.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let v = client.execute(INSPECT, vec![]).await.unwrap();
    let text = body_text(client).await;
    assert_eq!(v[0], "undefined", "{url}: a payload ran\n{text}");
    assert_eq!(v[1], 0, "{url}: a payload became markup\n{text}");
    assert_eq!(v[2], true, "{url}: the page is not styled\n{text}");
    assert!(
        v[3].as_str().unwrap().contains(HOSTILE),
        "{url}: the practice's name is not in the title as written: {}",
        v[3]
    );
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn no_typed_or_configured_text_runs_as_script_in_chromium() {
    let s = start();
    let ward = &s.ward;

    // Hostile text from people: a name typed at sign-in, a break-glass reason.
    let own = Browser::on(ward, WARD_HOST);
    let r = own.get("/.ward/login").await.text().await.unwrap();
    let csrf = input_value(&r, "csrf");
    own.post(
        "/.ward/login",
        &[
            ("csrf", &csrf),
            ("return", "/"),
            ("username", HOSTILE),
            ("password", "x"),
        ],
    )
    .await;
    let lee = Browser::on(ward, WARD_HOST);
    assert_eq!(sign_in_with(&lee, "dr_lee", PW, &s.lee, 0).await, 303);
    let form = lee.get("/.ward/break-glass").await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    let r = lee
        .post(
            "/.ward/break-glass",
            &[
                ("csrf", &csrf),
                ("reason", &format!("Patient in distress {HOSTILE}")),
            ],
        )
        .await;
    let page = r.text().await.unwrap();
    assert!(page.contains("Emergency access is on"), "{page}");

    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let client = open_browser(&driver, profile.path()).await;
    let result = tokio::time::timeout(Duration::from_secs(240), async {
        walk(&client, ward, &s.boss).await;
    })
    .await;
    client.close().await.unwrap();
    if result.is_err() {
        panic!(
            "the walk took over 240 s; ward's log:\n{}",
            ward.logs().join("\n")
        );
    }
}

async fn walk(client: &Client, ward: &Ward, boss: &[u8]) {
    let at = |path: &str| ward.url_for(WARD_HOST, path);
    // Sign-in pages, with hostile query parameters.
    check(
        client,
        &at(&format!(
            "/.ward/login?return={}&reason={}",
            enc(JS_URL),
            enc(HOSTILE)
        )),
    )
    .await;
    check(
        client,
        &at(&format!("/.ward/logged-out?reason={}", enc(HOSTILE))),
    )
    .await;
    check(
        client,
        &at(&format!("/.ward/enroll?token={}", enc(HOSTILE))),
    )
    .await;
    check(
        client,
        &ward.url_for("localhost", &format!("/.ward/x{}", enc(HOSTILE))),
    )
    .await;

    // The officer signs in and types hostile text into the console's forms.
    sign_in_on_ward_host(client, ward, "boss", &code_at(boss, unix_now())).await;
    let text = check(client, &at("/.ward/officer/users")).await;
    assert!(
        text.contains(HOSTILE),
        "the display name as written:\n{text}"
    );
    add_vendor_in_console(client, HOSTILE, HOSTILE_ORG).await;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#link"))
        .await
        .unwrap_or_else(|e| panic!("no one-time link ({e})"));

    client.goto(&at("/.ward/officer/grants")).await.unwrap();
    client
        .find(Locator::Css("#user"))
        .await
        .unwrap()
        .select_by_value("acme_jo")
        .await
        .unwrap();
    fill(client, "#route", "/reports/**").await;
    fill(client, "#duration", "4h").await;
    fill(client, "#reason", &format!("Auditors want it {HOSTILE}")).await;
    click(
        client,
        "form[action='/.ward/officer/grants/export'] button[type=submit]",
    )
    .await;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".notice"))
        .await
        .unwrap();

    // Every console page, with all of it on show.
    let overview = check(client, &at("/.ward/officer/")).await;
    assert!(overview.contains("Overview"), "{overview}");
    let people = check(client, &at("/.ward/officer/users")).await;
    assert!(
        people.contains(HOSTILE_ORG),
        "the organization as typed:\n{people}"
    );
    let person = check(client, &at("/.ward/officer/users/acme_pat")).await;
    assert!(person.contains(HOSTILE), "{person}");
    check(client, &at("/.ward/officer/users/acme_jo")).await;
    check(client, &at("/.ward/officer/sessions")).await;
    let grants = check(client, &at("/.ward/officer/grants")).await;
    assert!(
        grants.contains(&format!("Auditors want it {HOSTILE}")),
        "{grants}"
    );
    assert!(
        grants.contains("Patient in distress"),
        "the break-glass grant:\n{grants}"
    );
    let audit = check(client, &at("/.ward/officer/audit?since=1h")).await;
    assert!(audit.contains("Patient in distress"), "{audit}");
    check(
        client,
        &at(&format!(
            "/.ward/officer/audit?user={0}&path={0}&since={0}&decision={0}&kind={0}",
            enc(HOSTILE)
        )),
    )
    .await;
    let review = check(client, &at("/.ward/officer/review")).await;
    assert!(review.contains(HOSTILE_ORG), "{review}");
    client
        .goto(&at("/.ward/officer/review.html"))
        .await
        .unwrap();
    let v = client.execute(INSPECT, vec![]).await.unwrap();
    assert_eq!(v[0], "undefined", "review.html: a payload ran");
    assert_eq!(v[1], 0, "review.html: a payload became markup");
    let printable = body_text(client).await;
    assert!(
        printable.contains("<svg onload=window.__xss=7>.toml"),
        "{printable}"
    );
    let policy = check(client, &at("/.ward/officer/policy")).await;
    assert!(
        policy.contains("window.__xss=7"),
        "the file's name:\n{policy}"
    );
    let lockdown = check(client, &at("/.ward/officer/lockdown")).await;
    assert!(lockdown.contains(HOSTILE_ORG), "{lockdown}");
    check(client, &at("/.ward/officer/nothing")).await;
    check(client, &at("/")).await;
}
