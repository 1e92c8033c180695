//! Attacks through forms and redirects: cross-site and forged posts to ward's own forms
//! (MFA, break-glass, sign-out), an open redirect through a whole sign-in, and a client's
//! `Host` turned into a redirect to another site; and a script in an app's page (an XSS in a
//! legacy app) reaching for ward's forms, tokens and origin, over TLS clients and in real
//! Chromium (security review #20, high 2). Each attack is
//! followed by its control (the same request done right succeeds), so a test that passes
//! because nothing works at all is caught; what reached the app is read from the recording
//! upstream and what happened from the audit trail.

use crate::common::browser::*;
use crate::common::presets::PUBLIC;
use crate::common::*;
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const EVIL: &str = "https://evil.example";

fn scenario() -> Scenario {
    Scenario::new()
        .own_host()
        .toml(
            "[roles]\nclinician = {}\nemergency = {}\nvendor_biller = {}\n\
             [break_glass]\nallowed_roles = [\"clinician\"]\nemergency_roles = [\"emergency\"]\nduration = \"1h\"\n",
        )
        .route("/", "allow_roles = [\"clinician\", \"vendor_biller\"]")
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .route("/emergency/**", "allow_roles = [\"emergency\"]")
        .route("/billing/**", "allow_roles = [\"vendor_biller\"]")
        .user("dr_lee", &["clinician"])
        .user("nurse0", &["clinician"])
        .person("vic", &["vendor_biller"], Some("Acme Billing"), &[])
}

/// ward's own origin, `https://ward.localhost:PORT`.
fn ward_origin(s: &Running) -> String {
    s.ward.url_for(WARD_HOST, "")
}

/// The password step for `user` in `b`; returns the MFA form's CSRF token.
async fn password_step(s: &Running, b: &Browser, user: &str) -> String {
    let form = b.get_following("/.ward/login?return=/patients/1").await;
    assert_eq!(form.url().host_str(), Some(WARD_HOST));
    let form = form.text().await.unwrap();
    let r = b
        .post(
            "/.ward/login",
            &[
                ("csrf", &input_value(&form, "csrf")),
                ("return", &input_value(&form, "return")),
                ("username", user),
                ("password", PW),
            ],
        )
        .await;
    assert_eq!(r.status(), 303, "password step");
    let form = b.get("/.ward/mfa").await.text().await.unwrap();
    let _ = s;
    input_value(&form, "csrf")
}

/// Whether `b` gets through to the app at `path`, and the upstream saw it.
async fn reaches(s: &Running, b: &Browser, path: &str) -> bool {
    let before = s.up.saw(path).len();
    let r = b.get(path).await;
    let arrived = s.up.saw(path).len() > before;
    assert_eq!(
        r.status() == 200,
        arrived,
        "{path}: status {} but arrived={arrived}",
        r.status()
    );
    arrived
}

/// Whether a code-step answer completes the sign-in (a redirect on, not back to sign-in).
fn completes(r: &reqwest::Response) -> bool {
    r.status() == 303
        && r.headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .is_some_and(|l| !l.contains("/.ward/login") && !l.contains("/.ward/mfa"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mfa_form_takes_no_forged_or_cross_site_post() {
    let s = scenario().start().await;
    let b = s.browser();
    let csrf = password_step(&s, &b, "dr_lee").await;
    let code = s.code("dr_lee").await;
    let mfa = format!("{}/.ward/mfa", ward_origin(&s));
    let fields = [("csrf", csrf.as_str()), ("code", code.as_str())];

    // From another site: the Lax session cookie stays home, so there is nothing to complete.
    let r = b.post_from(EVIL, &mfa, &fields).await;
    assert!(!completes(&r), "cross-site MFA post was taken");
    // From an app's page on the same site (same-site cookies go): Origin is not ward's.
    let r = b
        .post_with_origin(&s.ward.url_for("localhost", ""), &mfa, &fields)
        .await;
    assert!(!completes(&r), "MFA post from another origin was taken");
    // From ward's origin, but with a token that is not the session's.
    let forged = [("csrf", "0123456789abcdef"), ("code", code.as_str())];
    let r = b.post(&mfa, &forged).await;
    assert!(!completes(&r), "MFA post with a forged token was taken");
    let r = b.post(&mfa, &[("code", code.as_str())]).await;
    assert!(!completes(&r), "MFA post without a token was taken");

    assert!(!reaches(&s, &b, "/patients/1").await);
    assert!(s.audit_where(&[("event", "login-ok")]).await.is_empty());
    s.up.assert_nothing("before the second step");

    // The control: a current code with the session's token, from ward's page, signs in
    // (a fresh code: on a loaded machine the first may have left its time window).
    let code = s.code("dr_lee").await;
    let fields = [("csrf", csrf.as_str()), ("code", code.as_str())];
    let r = b.post(&mfa, &fields).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    s.assert_audit(&[("event", "login-ok"), ("user", "dr_lee")])
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn break_glass_takes_no_forged_or_cross_site_post() {
    let s = scenario().start().await;
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    let page = format!("{}/.ward/break-glass", ward_origin(&s));
    let form = b.get(&page).await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    let reason = "unconscious patient in room 3, chart needed";
    let fields = [("csrf", csrf.as_str()), ("reason", reason)];

    let r = b.post_from(EVIL, &page, &fields).await;
    assert_ne!(r.status(), 200, "cross-site break-glass was taken");
    let r = b
        .post_with_origin(&s.ward.url_for("localhost", ""), &page, &fields)
        .await;
    assert_ne!(r.status(), 200, "break-glass from another origin was taken");
    let r = b
        .post(&page, &[("csrf", "0123456789abcdef"), ("reason", reason)])
        .await;
    assert_ne!(r.status(), 200, "break-glass with a forged token was taken");

    assert!(!reaches(&s, &b, "/emergency/chart").await);
    assert!(s.audit_where(&[("event", "break-glass")]).await.is_empty());

    // The control: from ward's page with the session's token, it starts, and is recorded.
    let r = b.post(&page, &fields).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(reaches(&s, &b, "/emergency/chart").await);
    let rec = s
        .assert_audit(&[("event", "break-glass"), ("user", "dr_lee")])
        .await;
    assert!(
        rec["grant"].as_str().is_some_and(|g| g.contains(reason)),
        "{rec}"
    );
    // The emergency roles are dr_lee's alone: another clinician gets nothing from them.
    let other = s.browser();
    assert_eq!(s.sign_in(&other, "nurse0").await, 303);
    assert!(!reaches(&s, &other, "/emergency/chart").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vendor_cannot_start_break_glass_with_their_own_token() {
    let s = scenario().start().await;
    let v = s.browser();
    assert_eq!(s.sign_in(&v, "vic").await, 303);
    let page = format!("{}/.ward/break-glass", ward_origin(&s));
    // The break-glass form is not theirs; the sign-out form gives them their session's token.
    assert_eq!(v.get(&page).await.status(), 403);
    let logout = v
        .get(&format!("{}/.ward/logout", ward_origin(&s)))
        .await
        .text()
        .await
        .unwrap();
    let own = input_value(&logout, "csrf");
    let r = v
        .post(
            &page,
            &[
                ("csrf", own.as_str()),
                ("reason", "need the charts for billing now"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(!reaches(&s, &v, "/emergency/chart").await);
    assert!(s.audit_where(&[("event", "break-glass")]).await.is_empty());
    let grants = std::fs::read_to_string(s.ward.site.path("state/grants.json")).unwrap_or_default();
    assert!(!grants.contains("vic"), "{grants}");
    // Still signed in and working where they may: the refusal was the rule, not a broken session.
    assert!(reaches(&s, &v, "/billing/claims").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_out_takes_no_forged_or_cross_site_post() {
    let s = scenario().start().await;
    let out = format!("{}/.ward/logout", ward_origin(&s));
    let token_of = |page: String| input_value(&page, "csrf");

    // Another site's form, even knowing the token, sends no session cookie: the session stands.
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    let csrf = token_of(b.get(&out).await.text().await.unwrap());
    let held = b.cookie_at(&ward_origin(&s), "__Host-ward-session");
    assert!(held.is_some());
    let r = b.post_from(EVIL, &out, &[("csrf", &csrf)]).await;
    assert!(r.headers().get("set-cookie").is_none(), "{:?}", r.headers());
    assert!(
        reaches(&s, &b, "/patients/1").await,
        "a cross-site post signed out"
    );
    // Nor does a link from another site to the signed-out page clear a standing session's
    // cookie (the person would believe they had signed out while the session lived on).
    let logged_out = format!("{}/.ward/logged-out", ward_origin(&s));
    let r = b.get_from(EVIL, &logged_out).await;
    assert!(
        r.headers().get("clear-site-data").is_none(),
        "{:?}",
        r.headers()
    );
    assert!(r.headers().get("set-cookie").is_none(), "{:?}", r.headers());
    assert!(r.text().await.unwrap().contains("still signed in"));
    assert_eq!(b.cookie_at(&ward_origin(&s), "__Host-ward-session"), held);
    assert!(reaches(&s, &b, "/patients/1").await);

    // A forged token does not sign out.
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "nurse0").await, 303);
    let csrf = token_of(b.get(&out).await.text().await.unwrap());
    b.post(&out, &[("csrf", "0123456789abcdef")]).await;
    assert!(
        reaches(&s, &b, "/patients/1").await,
        "a forged token signed out"
    );
    assert!(s.audit_where(&[("event", "logout")]).await.is_empty());

    // The control: the session's own token from ward's page ends it, on every host.
    let r = b.post(&out, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), 303);
    assert!(!reaches(&s, &b, "/patients/1").await);
    s.assert_audit(&[("event", "logout"), ("user", "nurse0")])
        .await;
}

/// Signs `user` in from `/.ward/login?return=RET`, posting `posted` (or what the page
/// carries forward) as the return; follows every redirect, asserting none leaves ward's hosts,
/// and returns where the browser ends.
async fn land(s: &Running, user: &str, ret: &str, posted: Option<&str>) -> reqwest::Url {
    let b = s.browser();
    let q = serde_urlencoded::to_string([("return", ret)]).unwrap();
    // From the app host's sign-in link, as a page load there leads.
    let form = b
        .get_following(&s.ward.url_for("localhost", &format!("/.ward/login?{q}")))
        .await
        .text()
        .await
        .unwrap();
    let carried = input_value(&form, "return");
    let r = b
        .post(
            "/.ward/login",
            &[
                ("csrf", &input_value(&form, "csrf")),
                ("return", posted.unwrap_or(&carried)),
                ("username", user),
                ("password", PW),
            ],
        )
        .await;
    assert_eq!(r.status(), 303);
    let mfa = b.get("/.ward/mfa").await.text().await.unwrap();
    let code = s.code(user).await;
    let mut r = b
        .post(
            "/.ward/mfa",
            &[("csrf", &input_value(&mfa, "csrf")), ("code", &code)],
        )
        .await;
    assert_eq!(r.status(), 303, "{ret}");
    for _ in 0..10 {
        let Some(loc) = r.headers().get("location") else {
            break;
        };
        let next = r.url().join(loc.to_str().unwrap()).unwrap();
        assert!(
            matches!(next.host_str(), Some("localhost" | WARD_HOST)) && next.scheme() == "https",
            "{ret} led to {next}"
        );
        r = b.get(next.as_str()).await;
    }
    assert_eq!(r.status(), 200, "{ret} ended at {}", r.url());
    r.url().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_sign_in_never_ends_on_another_site() {
    const EVIL_RETURNS: [&str; 6] = [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/",
        "/%2F%2Fevil.example",
        "/%09/evil.example",
        "javascript:alert(1)",
    ];
    // One account per sign-in, so no test waits for a fresh authenticator code.
    let mut sc = scenario();
    for i in 1..=2 * EVIL_RETURNS.len() + 1 {
        sc = sc.user(&format!("nurse{i}"), &["clinician"]);
    }
    let s = sc.start().await;
    let mut n = 1;
    for evil in EVIL_RETURNS {
        // What the page carries forward, and what an attacker posts instead.
        for posted in [None, Some(evil)] {
            let end = land(&s, &format!("nurse{n}"), evil, posted).await;
            n += 1;
            // The start page of an app host or of ward's own host, nowhere else.
            assert!(
                matches!(end.host_str(), Some("localhost" | WARD_HOST)) && end.path() == "/",
                "{evil} posted as {posted:?} ended at {end}"
            );
        }
    }
    // The control: an ordinary return path is honoured through the same steps.
    let end = land(&s, &format!("nurse{n}"), "/patients/42?tab=notes", None).await;
    assert_eq!(
        (end.host_str(), end.path(), end.query()),
        (Some("localhost"), "/patients/42", Some("tab=notes"))
    );
    assert_eq!(s.up.last().target, "/patients/42?tab=notes");
}

/// An outside tester's finding (issue 16, item 7).
#[tokio::test(flavor = "multi_thread")]
async fn redirects_name_configured_hosts_only() {
    let (s, _b, sid) = presets::start_vendor("").await;
    let ward = &s.ward;
    let port = ward.port();
    // A host the certificate names is kept; any other becomes the public address.
    for (host, want) in [
        (
            format!("localhost:{port}"),
            format!("https://localhost:{port}/"),
        ),
        (
            format!("ehr.localhost:{port}"),
            format!("https://ehr.localhost:{port}/"),
        ),
        ("evil.example".to_string(), format!("https://{PUBLIC}/")),
        (format!("evil.example:{port}"), format!("https://{PUBLIC}/")),
    ] {
        let (status, reply) = s
            .raw(
                &sid,
                &format!("GET /legacy/login HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
            )
            .await;
        assert_eq!(status, 302, "{host}: {reply}");
        let location = reply
            .lines()
            .find_map(|l| l.strip_prefix("location: "))
            .unwrap_or_default();
        assert_eq!(location, want, "{host}");
    }
    // Nor does the app hear of the client's host.
    let (_, reply) = s.raw(
        &sid,
        "GET /echo/a HTTP/1.1\r\nHost: evil.example\r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!reply.contains("evil.example"), "{reply}");
    assert!(reply.contains(PUBLIC), "{reply}");

    // The plain-HTTP listener does the same.
    let line = ward
        .proc
        .stderr
        .wait_for("redirecting plain HTTP", Duration::from_secs(5));
    let addr: std::net::SocketAddr = json_field(&line, "addr").parse().unwrap();
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (host, want) in [
        ("evil.example", format!("https://{PUBLIC}/x?y=1")),
        (
            "ehr.localhost",
            "https://ehr.localhost:8443/x?y=1".to_string(),
        ),
        (PUBLIC, format!("https://{PUBLIC}:8443/x?y=1")),
    ] {
        let resp = c
            .get(format!("http://{addr}/x?y=1"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 308, "{host}");
        assert_eq!(resp.headers()["location"], want.as_str(), "{host}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_origin_holds_no_token_that_opens_wards_forms() {
    let s = presets::own_host_scenario("")
        .user("boss", &["officer"])
        .start()
        .await;
    let ward = &s.ward;
    let app = ward.url("");
    let own = ward.url_for(WARD_HOST, "");

    // The officer signs in once, on ward's host, and lands back on the app.
    let b = Browser::new(ward);
    assert_eq!(s.sign_in(&b, "boss").await, 303);
    assert_eq!(b.get("/patients/1001/chart").await.status(), 200);
    // The session's form token, as ward's own host shows it.
    let logout = b
        .get(&format!("{own}/.ward/logout"))
        .await
        .text()
        .await
        .unwrap();
    let csrf = input_value(&logout, "csrf");

    // What a script in the app's origin can read: the status, with a token that only keeps alive.
    let status: serde_json::Value = b.get("/.ward/session").await.json().await.unwrap();
    assert_eq!(status["signed_in"], true);
    assert!(status.get("csrf").is_none(), "{status}");
    let keepalive = status["keepalive"].as_str().unwrap().to_string();
    assert_ne!(keepalive, csrf);
    assert!(!status.to_string().contains(&csrf));

    // ward's forms are not in the app's origin: a script's fetch gets a redirect to
    // another origin (which the browser will not let it read), and posts go nowhere.
    for path in [
        "/.ward/officer/",
        "/.ward/officer/users",
        "/.ward/break-glass",
        "/.ward/logout",
        "/.ward/mfa",
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status(), 303, "{path}");
        let to = r.headers()["location"].to_str().unwrap().to_string();
        assert!(to.starts_with(&own), "{path} -> {to}");
        let html = r.text().await.unwrap();
        assert!(!html.contains(&csrf) && !html.contains("csrf"), "{path}");
    }
    for token in [keepalive.as_str(), csrf.as_str()] {
        let r = b
            .post(
                "/.ward/officer/users",
                &[
                    ("csrf", token),
                    ("name", "intruder"),
                    ("display_name", "Intruder"),
                    ("roles", "officer"),
                ],
            )
            .await;
        assert_eq!(r.status(), 404);
        let r = b
            .post(
                "/.ward/break-glass",
                &[
                    ("csrf", token),
                    ("reason", "planted by a script in an app page"),
                ],
            )
            .await;
        assert_eq!(r.status(), 404);
    }
    // The same posts sent across to ward's host from the app's origin: refused.
    b.header("origin", &app);
    for token in [keepalive.as_str(), csrf.as_str()] {
        let r = b
            .post(
                &format!("{own}/.ward/officer/users"),
                &[
                    ("csrf", token),
                    ("name", "intruder"),
                    ("display_name", "Intruder"),
                    ("roles", "officer"),
                ],
            )
            .await;
        assert_eq!(r.status(), 403);
        let r = b
            .post(
                &format!("{own}/.ward/break-glass"),
                &[
                    ("csrf", token),
                    ("reason", "planted by a script in an app page"),
                ],
            )
            .await;
        assert_ne!(r.status(), 200);
    }
    assert!(!presets::users_toml(&s).contains("intruder"));
    assert!(!presets::grants(&s).contains("planted"));

    // The keep-alive token does what it is for, and only on the app's host.
    let client = ward.client(false);
    let cookie = format!(
        "__Host-ward-session={}",
        b.cookie("__Host-ward-session").unwrap()
    );
    let r = client
        .post(format!("{app}/.ward/keepalive"))
        .header("cookie", &cookie)
        .header("x-ward-keepalive", &keepalive)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = client
        .post(format!("{app}/.ward/keepalive"))
        .header("cookie", &cookie)
        .header("x-ward-keepalive", "guess")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // An app cannot install a service worker over its origin (and ward's pages in it).
    let r = client
        .get(format!("{app}/sw.js"))
        .header("cookie", &cookie)
        .header("service-worker", "script")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(!r.text().await.unwrap().contains("x-upstream"));
    assert!(
        s.up.saw("/sw.js").is_empty(),
        "the worker's script reached the app"
    );
}

/// A sample app page with a script that tries everything high 2 of the review did.
async fn hostile_app() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    let url = small_app(move |req: hyper::Request<hyper::body::Incoming>| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(req.uri().path().to_string());
            let (kind, text) = match req.uri().path() {
                "/sw.js" => ("text/javascript", SERVICE_WORKER),
                _ => ("text/html; charset=utf-8", HOSTILE_PAGE),
            };
            let _ = req.into_body().collect().await;
            let mut resp = hyper::Response::new(http_body_util::Full::new(
                bytes::Bytes::from_static(text.as_bytes()),
            ));
            resp.headers_mut()
                .insert("content-type", kind.parse().unwrap());
            resp.headers_mut()
                .insert("service-worker-allowed", "/".parse().unwrap());
            resp
        }
    })
    .await;
    (url, seen)
}

const SERVICE_WORKER: &str =
    "self.addEventListener('fetch', function (e) { e.respondWith(new Response('taken over')); });";

/// The attack: read whatever token ward's status gives, post it to the console and
/// the break-glass page, read the console from ward's host, install a service worker.
const HOSTILE_PAGE: &str = r#"<!doctype html><html><head><title>chart</title></head><body>
<pre id="out">running</pre>
<script>
var WARD = 'https://ward.localhost:' + location.port;
(async function () {
  var out = {};
  function form(o) { return new URLSearchParams(o).toString(); }
  try {
    var s = await (await fetch('/.ward/session', { credentials: 'same-origin' })).json();
    out.token = s.csrf || s.keepalive || '';
    out.gotCsrf = !!s.csrf;
  } catch (e) { out.token = ''; out.session = String(e); }
  try {
    var r = await fetch('/.ward/break-glass', { method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form({ csrf: out.token, reason: 'planted by a script in an app page' }) });
    out.breakGlass = r.status;
  } catch (e) { out.breakGlass = 'error'; }
  try {
    var r = await fetch('/.ward/officer/users', { method: 'POST', credentials: 'same-origin',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form({ csrf: out.token, name: 'intruder', display_name: 'Intruder', roles: 'officer' }) });
    out.console = r.status;
  } catch (e) { out.console = 'error'; }
  try {
    var r = await fetch(WARD + '/.ward/officer/users', { credentials: 'include' });
    out.readConsole = (await r.text()).indexOf('csrf') >= 0 ? 'read' : 'empty';
  } catch (e) { out.readConsole = 'blocked'; }
  try {
    await fetch(WARD + '/.ward/officer/users', { method: 'POST', mode: 'no-cors', credentials: 'include',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form({ csrf: out.token, name: 'intruder2', display_name: 'Intruder', roles: 'officer' }) });
  } catch (e) {}
  try {
    await navigator.serviceWorker.register('/sw.js', { scope: '/' });
    out.worker = 'installed';
  } catch (e) { out.worker = String(e); }
  document.getElementById('out').textContent = 'done ' + JSON.stringify(out);
})();
</script></body></html>"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_script_in_an_app_page_cannot_use_wards_pages_in_chromium() {
    let (upstream, seen) = hostile_app().await;
    let s = presets::own_host_scenario("")
        .app_at(&upstream)
        .user("boss", &["officer"])
        .start()
        .await;
    let ward = &s.ward;
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let client = open_browser(&driver, profile.path()).await;

    // The officer opens the app, signs in on ward's host, and is sent back to the page.
    client.goto(&ward.url("/chart")).await.unwrap();
    wait_for_path(&client, "/.ward/login", Duration::from_secs(20)).await;
    let at = client.current_url().await.unwrap();
    assert_eq!(at.host_str(), Some(WARD_HOST));
    fill(&client, "#username", "boss").await;
    fill(&client, "#password", PW).await;
    submit(&client).await;
    wait_for_path(&client, "/.ward/mfa", Duration::from_secs(20)).await;
    fill(&client, "#code", &s.code("boss").await).await;
    submit(&client).await;
    wait_for_path(&client, "/chart", Duration::from_secs(20)).await;
    assert_eq!(
        client.current_url().await.unwrap().host_str(),
        Some("localhost")
    );

    // The page's script runs its attack; wait for its report.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let report = loop {
        let text = body_text(&client).await;
        if let Some(r) = text.strip_prefix("done ") {
            break r.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let out: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(out["gotCsrf"], false, "{out}");
    assert_eq!(out["breakGlass"], 404, "{out}");
    assert_eq!(out["console"], 404, "{out}");
    assert_eq!(out["readConsole"], "blocked", "{out}");
    assert!(
        out["worker"].as_str().unwrap().contains("403"),
        "the service worker's script must be refused by ward: {out}"
    );
    // Nothing changed, and the app never served its worker script.
    assert!(!presets::users_toml(&s).contains("intruder"));
    assert!(!presets::grants(&s).contains("planted"));
    assert!(!seen.lock().unwrap().iter().any(|p| p == "/sw.js"));
    let _ = client.close().await;
}
