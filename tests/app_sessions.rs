//! Issue #11.3: an app's own session must not outlive the ward session that
//! opened it. ward keeps the apps' cookies in the ward session; the browser never
//! holds them, so the next person at the same browser cannot use them.

mod common;

use common::*;
use http_body_util::BodyExt;
use std::time::Duration;

const PW: &str = "maple orbit candle harbor 42";

/// An app with a cookie login of its own: `/login?as=NAME` sets its session
/// cookie, `/logout` deletes it, `/whoami` says whose app session the cookie is.
async fn cookie_app() -> String {
    small_app(|req: hyper::Request<hyper::body::Incoming>| async move {
        let cookies = req
            .headers()
            .get_all("cookie")
            .iter()
            .map(|v| v.to_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join("; ");
        let query = req.uri().query().unwrap_or("").to_string();
        let path = req.uri().path().to_string();
        let _ = req.into_body().collect().await;
        let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(
            format!("cookies: [{cookies}]\n"),
        )));
        let h = resp.headers_mut();
        h.insert("content-type", "text/plain".parse().unwrap());
        match path.as_str() {
            "/login" => {
                let who = query.strip_prefix("as=").unwrap_or("nobody");
                h.append(
                    "set-cookie",
                    format!("app_sid=session-of-{who}; Path=/; HttpOnly")
                        .parse()
                        .unwrap(),
                );
                h.append("set-cookie", "app_theme=dark; Path=/".parse().unwrap());
            }
            "/logout" => {
                h.append("set-cookie", "app_sid=; Path=/; Max-Age=0".parse().unwrap());
            }
            _ => {}
        }
        resp
    })
    .await
}

fn policy(upstream: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}ward_host = \"{WARD_HOST}\"\n\
         [sessions]\nidle_timeout = \"3s\"\n\
         [roles]\nclinician = {{}}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [[apps]]\nname = \"db\"\nhost = \"localhost\"\nupstream = \"{upstream}\"\n\
         [[apps]]\nname = \"legacy\"\nhost = \"billing.localhost\"\nupstream = \"{upstream}\"\nward_keeps_cookies = false\n\
         [[routes]]\napp = \"db\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n\
         [[routes]]\napp = \"legacy\"\npath = \"/**\"\nallow_roles = [\"clinician\"]\n"
    )
}

async fn text(b: &Browser, path: &str) -> String {
    b.get(path).await.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_people_at_one_browser_never_share_an_app_session() {
    let app = cookie_app().await;
    let ward = Ward::start(&policy(&app));
    let ann = enrolled_user(&ward.site, "ann", &["clinician"], PW, None, None);
    let ben = enrolled_user(&ward.site, "ben", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let b = Browser::new(&ward);

    // Ann signs in to ward, then to the app; the app's cookies stay with ward.
    assert_eq!(sign_in_with(&b, "ann", PW, &ann, 0).await, 303);
    let r = b.get("/login?as=ann").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-cookie").is_none(), "{:?}", r.headers());
    assert!(b.cookie("app_sid").is_none());
    let seen = text(&b, "/whoami").await;
    assert!(seen.contains("app_sid=session-of-ann"), "{seen}");
    assert!(seen.contains("app_theme=dark"), "{seen}");
    assert!(!seen.contains("__Host-ward"), "{seen}");

    // Ann walks away: the idle logoff ends her ward session.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(b.get("/whoami").await.status(), 303);

    // Ben signs in at the same browser: the app never sees Ann's session.
    assert_eq!(sign_in_with(&b, "ben", PW, &ben, 0).await, 303);
    let seen = text(&b, "/whoami").await;
    assert!(!seen.contains("session-of-ann"), "{seen}");
    assert_eq!(seen.trim(), "cookies: []");
    // Cookies the browser itself sends (planted, or left from elsewhere) never reach the app.
    b.set_cookie("app_sid", "session-of-ann");
    let seen = text(&b, "/whoami").await;
    assert!(!seen.contains("session-of-ann"), "{seen}");
    // Ben's own app session works, and the app can end it.
    text(&b, "/login?as=ben").await;
    assert!(text(&b, "/whoami").await.contains("app_sid=session-of-ben"));
    text(&b, "/logout").await;
    let seen = text(&b, "/whoami").await;
    assert!(!seen.contains("app_sid"), "{seen}");
    assert!(seen.contains("app_theme=dark"), "{seen}");

    // An app the officer left to the browser (ward_keeps_cookies = false) gets its cookies there.
    let legacy = ward.url_for("billing.localhost", "/login?as=ben");
    let r = b.get_following(&legacy).await;
    assert_eq!(r.url().host_str(), Some("billing.localhost"));
    let r = b.get(&legacy).await;
    assert!(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("app_sid=session-of-ben")),
        "{:?}",
        r.headers()
    );

    // The signed-out page tells the browser to drop what the origin left.
    let r = b.get("/.ward/logged-out?reason=idle").await;
    assert_eq!(
        r.headers()["clear-site-data"],
        "\"cache\", \"cookies\", \"storage\""
    );
}

/// Security review #20, finding 7: a WebSocket does not outlive the session that
/// opened it: signing out (or an idle logoff, a closed account) closes it.
#[tokio::test(flavor = "multi_thread")]
async fn a_websocket_closes_when_its_session_ends() {
    use futures_util::{SinkExt, StreamExt};
    let ehr = Ehr::start();
    let ward =
        Ward::start(&policy(&ehr.url()).replace("idle_timeout = \"3s\"", "idle_timeout = \"15m\""));
    let ann = enrolled_user(&ward.site, "ann", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let b = Browser::new(&ward);
    assert_eq!(sign_in_with(&b, "ann", PW, &ann, 0).await, 303);
    let cookie = format!(
        "__Host-ward-session={}",
        b.cookie("__Host-ward-session").unwrap()
    );

    let open = || async {
        let tls = raw_tls(&ward, &[b"http/1.1"]).await;
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("wss://localhost:{}/ws/notifications", ward.port()),
            )
            .unwrap();
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::client_async(request, tls).await.unwrap();
        assert_eq!(resp.status(), 101);
        let first = ws.next().await.unwrap().unwrap();
        assert_eq!(first.to_text().unwrap(), "notifications: connected");
        ws
    };
    let mut ws = open().await;
    ws.send(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap().to_text().unwrap(),
        "echo: hi"
    );

    // Ann signs out on ward's own host.
    let own = ward.url_for(WARD_HOST, "/.ward/logout");
    let form = b.get(&own).await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    assert_eq!(b.post(&own, &[("csrf", &csrf)]).await.status(), 303);
    // The tunnel closes within a few seconds, whatever the app does.
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the WebSocket stayed open after sign-out");
}

/// Signs `user` in from the app page the browser is on (it is sent to ward's own
/// host, then back), in real Chromium.
async fn sign_in_in_chromium(
    client: &fantoccini::Client,
    user: &str,
    secret: &[u8],
    offset: i64,
    back_to: &str,
) {
    use common::browser::*;
    wait_for_path(client, "/.ward/login", Duration::from_secs(20)).await;
    fill(client, "#username", user).await;
    fill(client, "#password", PW).await;
    submit(client).await;
    wait_for_path(client, "/.ward/mfa", Duration::from_secs(20)).await;
    let code = ward::auth::totp::code_at(secret, (unix_now() as i64 + offset) as u64);
    fill(client, "#code", &code).await;
    submit(client).await;
    wait_for_path(client, back_to, Duration::from_secs(20)).await;
}

/// Issue #11.3 in a real browser: Ann uses the app, walks away; Ben signs in at
/// the same Chromium and never lands in Ann's app session.
#[tokio::test(flavor = "multi_thread")]
async fn two_people_at_one_chromium_never_share_an_app_session() {
    use common::browser::*;
    let app = cookie_app().await;
    let ward = Ward::start(&policy(&app));
    let ann = enrolled_user(&ward.site, "ann", &["clinician"], PW, None, None);
    let ben = enrolled_user(&ward.site, "ben", &["clinician"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let client = open_browser(&driver, profile.path()).await;

    // Ann opens the app and logs in to it.
    client.goto(&ward.url("/login?as=ann")).await.unwrap();
    sign_in_in_chromium(&client, "ann", &ann, 0, "/login").await;
    client.goto(&ward.url("/whoami")).await.unwrap();
    let seen = body_text(&client).await;
    assert!(seen.contains("app_sid=session-of-ann"), "{seen}");
    // The browser itself holds no cookie of the app's.
    let cookies = client.get_all_cookies().await.unwrap();
    assert!(
        cookies.iter().all(|c| !c.name().starts_with("app_")),
        "{:?}",
        cookies
            .iter()
            .map(|c| c.name().to_string())
            .collect::<Vec<_>>()
    );

    // Ann walks away: idle logoff (3 s here; the idle script clears the screen).
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Ben sits down at the same browser and signs in.
    client.goto(&ward.url("/whoami")).await.unwrap();
    sign_in_in_chromium(&client, "ben", &ben, 30, "/whoami").await;
    let seen = body_text(&client).await;
    assert!(!seen.contains("session-of-ann"), "{seen}");
    assert!(seen.contains("cookies: []"), "{seen}");
    let _ = client.close().await;
}
