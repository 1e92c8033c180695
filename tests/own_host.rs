//! Security review #20, high 2: ward's own pages on a host of their own. A script
//! in an app's page (an XSS in a legacy EHR) runs in the app's origin; it must not
//! be able to read a form token of ward's, post to the console or the break-glass
//! page, take over ward's pages with a service worker, or ride the hand-off that
//! carries a sign-in from ward's host to the app's. Tried over plain TLS clients and
//! in real Chromium with a hostile app page.

mod common;

use common::browser::*;
use common::*;
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ward::auth::totp::code_at;

const PW: &str = "maple orbit candle harbor 42";

fn policy(upstream: &str, extra: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}ward_host = \"{WARD_HOST}\"\n\
         trusted_proxies = []\n{extra}\n\
         [roles]\nofficer = {{}}\nclinician = {{}}\nemergency = {{}}\n\
         [break_glass]\nallowed_roles = [\"clinician\", \"officer\"]\nemergency_roles = [\"emergency\"]\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"ehr\"\nhost = \"localhost\"\nupstream = \"{upstream}\"\n\
         [[apps]]\nname = \"billing\"\nhost = \"billing.localhost\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\", \"officer\"]\n\
         [[routes]]\napp = \"billing\"\npath = \"/**\"\nallow_roles = [\"clinician\", \"officer\"]\n"
    )
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(700)).await;
}

fn grants(ward: &Ward) -> String {
    std::fs::read_to_string(ward.site.path("state/grants.json")).unwrap_or_default()
}

fn users_toml(ward: &Ward) -> String {
    std::fs::read_to_string(ward.site.path("config/users.toml")).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_origin_holds_no_token_that_opens_wards_forms() {
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url(), ""));
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    settle().await;
    let app = ward.url("");
    let own = ward.url_for(WARD_HOST, "");

    // The officer signs in once, on ward's host, and lands back on the app.
    let b = Browser::new(&ward);
    assert_eq!(sign_in_with(&b, "boss", PW, &boss, 0).await, 303);
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
    assert!(!users_toml(&ward).contains("intruder"));
    assert!(!grants(&ward).contains("planted"));

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
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hand_off_cannot_be_replayed_moved_or_planted() {
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url(), "[sessions]\nmax_per_user = 1\n"));
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    settle().await;
    let own = ward.url_for(WARD_HOST, "");

    // One sign-in covers both app hosts, and counts once against max_per_user = 1.
    let b = Browser::new(&ward);
    assert_eq!(sign_in_with(&b, "dr_lee", PW, &lee, 0).await, 303);
    assert_eq!(b.get("/patients/1001/chart").await.status(), 200);
    let billing = ward.url_for("billing.localhost", "/patients/1001/chart");
    let r = b.get_following(&billing).await;
    assert_eq!(r.status(), 200, "{}", r.url());
    assert_eq!(r.url().host_str(), Some("billing.localhost"));
    assert_eq!(
        b.get("/patients/1001/chart").await.status(),
        200,
        "still signed in"
    );

    // A code, caught on its way, for the app host.
    let start = b.get("/.ward/login?return=/patients/1001/chart").await;
    let go = start.headers()["location"].to_str().unwrap().to_string();
    let r = b.get(&go).await;
    let handoff = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        handoff.starts_with(&ward.url("/.ward/handoff?code=")),
        "{handoff}"
    );

    // Planted in another browser (without the state cookie set by the real start): refused.
    let victim = Browser::new(&ward);
    let r = victim.get(&handoff).await;
    assert_eq!(r.status(), 303);
    assert!(victim.cookie("__Host-ward-session").is_none());
    assert_eq!(victim.get("/patients/1001/chart").await.status(), 303);
    // ... and the code is used up, also for its own browser.
    let r = b.get(&handoff).await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/.ward/login")
    );

    // Moved to another app's host: refused.
    let start = b.get("/.ward/login?return=/").await;
    let go = start.headers()["location"].to_str().unwrap().to_string();
    let handoff = b.get(&go).await.headers()["location"]
        .to_str()
        .unwrap()
        .to_string();
    let moved = handoff.replace("://localhost:", "://billing.localhost:");
    assert_ne!(moved, handoff);
    let other = Browser::new(&ward);
    let r = other.get(&moved).await;
    assert_eq!(r.status(), 303);
    assert!(other.cookie("__Host-ward-session").is_none());

    // Never to a host that is not an app's: no open redirect from ward's host.
    for to in [
        "evil.example",
        "evil.example:443",
        "localhost.evil.example",
        "localhost:1",
        "ward.localhost",
    ] {
        let q =
            serde_urlencoded::to_string([("to", to), ("state", &"a".repeat(64)), ("return", "/")])
                .unwrap();
        let r = b.get(&format!("{own}/.ward/go?{q}")).await;
        assert_eq!(r.status(), 400, "{to}");
    }

    // Signing out on ward's host ends the session on every host.
    let logout = b
        .get(&format!("{own}/.ward/logout"))
        .await
        .text()
        .await
        .unwrap();
    let csrf = input_value(&logout, "csrf");
    assert_eq!(
        b.post(&format!("{own}/.ward/logout"), &[("csrf", &csrf)])
            .await
            .status(),
        303
    );
    assert_eq!(b.get("/patients/1001/chart").await.status(), 303);
    assert_eq!(b.get(&billing).await.status(), 303);
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
    let ward = Ward::start(&policy(&upstream, ""));
    let boss = enrolled_user(&ward.site, "boss", &["officer"], PW, None, None);
    settle().await;
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
    fill(&client, "#code", &code_at(&boss, unix_now())).await;
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
    assert!(!users_toml(&ward).contains("intruder"));
    assert!(!grants(&ward).contains("planted"));
    assert!(!seen.lock().unwrap().iter().any(|p| p == "/sw.js"));
    let _ = client.close().await;
}
