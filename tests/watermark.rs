//! Watermarked patient pages: a route with `watermark = true` gets a faint overlay naming the
//! person, the time and the request on every HTML page, and with `print = "block"` the page
//! prints as a notice instead of the chart. Checked in real Chromium (a screenshot, the
//! overlay letting clicks through, print media emulated through chromedriver) and over the
//! wire (what is added, where, and that a page that cannot be marked is refused).

use crate::common::browser::*;
use crate::common::*;
use fantoccini::{Client, Locator};
use http_body_util::Full;
use std::time::Duration;

/// The same chart page on every path; `/gz/…` claims gzip (an app that ignores ward's
/// request for a plain answer), `/json/…` is JSON.
async fn chart_app() -> String {
    small_app(|req: hyper::Request<hyper::body::Incoming>| async move {
        let path = req.uri().path().to_string();
        let page = "<!doctype html><html><head><title>Chart</title></head><body>\
                    <h1 id=\"title\">Chart: Ann Lee</h1><p>F32.1 major depressive disorder</p>\
                    <a id=\"next\" href=\"next\">Next visit</a></body></html>";
        let (ctype, encoding, body) = if path.starts_with("/charts/gz") {
            ("text/html", Some("gzip"), page.to_string())
        } else if path.starts_with("/charts/json") {
            (
                "application/json",
                None,
                "{\"name\":\"Ann Lee\"}".to_string(),
            )
        } else {
            ("text/html; charset=utf-8", None, page.to_string())
        };
        let mut resp = hyper::Response::builder().header("content-type", ctype);
        if let Some(e) = encoding {
            resp = resp.header("content-encoding", e);
        }
        resp.body(Full::new(bytes::Bytes::from(body))).unwrap()
    })
    .await
}

async fn scenario() -> Running {
    let app = chart_app().await;
    Scenario::new()
        .app_at(&app)
        .toml("[roles]\nclinician = {}\n")
        .route(
            "/charts/**",
            "allow_roles = [\"clinician\"]\nwatermark = true\nprint = \"block\"",
        )
        .route("/plain/**", "allow_roles = [\"clinician\"]")
        .route(
            "/only-print/**",
            "allow_roles = [\"clinician\"]\nprint = \"block\"",
        )
        .user("dr_lee", &["clinician"])
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn marked_pages_name_the_person_and_request_and_unmarked_routes_are_untouched() {
    let s = scenario().await;
    let (b, _) = s.signed_in("dr_lee").await;

    let plain = b.get("/plain/1").await;
    assert_eq!(plain.status(), 200);
    let plain = plain.text().await.unwrap();
    assert!(!plain.contains("ward-watermark") && !plain.contains("ward-print-blocked"));

    let resp = b.get("/charts/1").await;
    assert_eq!(resp.status(), 200);
    let page = resp.text().await.unwrap();
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(page.contains("href=\"/.ward/watermark.css\""), "{page}");
    let overlay = page
        .split("<div class=\"ward-watermark\" aria-hidden=\"true\"><span>")
        .nth(1)
        .expect("an overlay");
    let text = overlay.split("</span>").next().unwrap();
    // The person's display name from users.toml, the minute, and the request's id as the
    // trail records it.
    let parts: Vec<&str> = text.split(" · ").collect();
    assert_eq!(parts.len(), 3, "{text}");
    assert_eq!(parts[0], "Test dr_lee", "{text}");
    assert!(parts[1].ends_with(" UTC"), "{text}");
    let record = s
        .audit()
        .into_iter()
        .rev()
        .find(|r| r["path"] == "/charts/1")
        .expect("a record of the chart");
    assert_eq!(record["request_id"].as_str(), Some(parts[2]), "{text}");
    assert!(page.contains("class=\"ward-print-blocked\""), "{page}");

    // Print blocking alone: the notice, no overlay.
    let only_print = b.get("/only-print/1").await.text().await.unwrap();
    assert!(only_print.contains("ward-print-blocked"));
    assert!(!only_print.contains("ward-watermark"));

    // Not HTML: left as it is.
    let json = b.get("/charts/json").await.text().await.unwrap();
    assert_eq!(json, "{\"name\":\"Ann Lee\"}");

    // An app that sends the page compressed although ward asked for a plain one cannot be
    // marked: refused, never passed on without its watermark.
    let gz = b.get("/charts/gz").await;
    assert_eq!(gz.status(), 403);

    // The stylesheet is served on the app's host, to anyone (it holds nothing private).
    let css = reqwest_client(&s)
        .get(s.ward.url("/.ward/watermark.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.text().await.unwrap().contains(".ward-watermark"));
}

fn reqwest_client(s: &Running) -> reqwest::Client {
    s.ward.client(false)
}

/// Emulates print (or screen) media in the browser through chromedriver's Chrome DevTools
/// command endpoint.
async fn emulate_media(driver: &ChromeDriver, client: &Client, media: &str) {
    let sid = client.session_id().await.unwrap().expect("a session id");
    let resp = reqwest::Client::new()
        .post(format!("{}/session/{sid}/goog/cdp/execute", driver.url()))
        .json(&serde_json::json!({
            "cmd": "Emulation.setEmulatedMedia",
            "params": { "media": media },
        }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.text().await.unwrap());
}

async fn displayed(client: &Client, css: &str) -> bool {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .is_displayed()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_shows_the_watermark_lets_clicks_through_and_prints_only_the_notice() {
    let s = scenario().await;
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let client = open_browser(&driver, profile.path()).await;
    client.goto(&s.ward.url("/.ward/login")).await.unwrap();
    fill(&client, "#username", "dr_lee").await;
    fill(&client, "#password", PW).await;
    submit(&client).await;
    wait_for_path(&client, "/.ward/mfa", Duration::from_secs(20)).await;
    fill(&client, "#code", &s.code("dr_lee").await).await;
    submit(&client).await;
    wait_until_past_ward_pages(&client, Duration::from_secs(20)).await;

    // The control: the same page without marks gives the same picture twice.
    client.goto(&s.ward.url("/plain/1")).await.unwrap();
    let plain = client.screenshot().await.unwrap();
    client.goto(&s.ward.url("/plain/1")).await.unwrap();
    assert_eq!(plain, client.screenshot().await.unwrap());

    client.goto(&s.ward.url("/charts/1")).await.unwrap();
    let overlay = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(".ward-watermark"))
        .await
        .unwrap();
    assert!(overlay.is_displayed().await.unwrap());
    let text = overlay.text().await.unwrap();
    assert!(text.starts_with("Test dr_lee · "), "{text}");
    let style = client
        .execute(
            "const s = getComputedStyle(document.querySelector('.ward-watermark'));\
             return [s.position, s.pointerEvents, s.opacity];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(style[0], "fixed", "{style}");
    assert_eq!(style[1], "none", "{style}");
    let opacity: f64 = style[2].as_str().unwrap().parse().unwrap();
    assert!(opacity > 0.0 && opacity < 0.5, "{style}");
    let marked = screenshot(&client, "watermark/chart.png").await;
    assert_ne!(
        std::fs::read(&marked).unwrap(),
        plain,
        "the watermarked chart looks exactly like the unmarked one"
    );
    // The chart is still there to read, and the overlay does not take the clicks.
    assert!(displayed(&client, "#title").await);
    assert!(!displayed(&client, ".ward-print-blocked").await);
    click(&client, "#next").await;
    wait_for_path(&client, "/charts/next", Duration::from_secs(10)).await;

    // Printed: only the notice. The unmarked page prints as it is (the control).
    emulate_media(&driver, &client, "print").await;
    client.goto(&s.ward.url("/charts/1")).await.unwrap();
    assert!(!displayed(&client, "#title").await, "the chart would print");
    assert!(displayed(&client, ".ward-print-blocked").await);
    screenshot(&client, "watermark/chart_printed.png").await;
    client.goto(&s.ward.url("/plain/1")).await.unwrap();
    assert!(displayed(&client, "#title").await);
    emulate_media(&driver, &client, "").await;
    client.goto(&s.ward.url("/charts/1")).await.unwrap();
    assert!(displayed(&client, "#title").await);
    client.close().await.unwrap();
}
