//! Field rules: a route's `hide` and `mask` rules take a field out of (or cut it
//! down in) every answer `hide_for` roles receive, however the app serves it:
//! an HTML page (by CSS selector), a CSV export (by column header) or JSON (by
//! field name). What ward cannot rewrite is refused to them; `ward explain` lists
//! the same rules the proxy applies, and the trail names the rules applied.

use crate::common::browser::*;
use crate::common::*;
use fantoccini::Locator;
use http_body_util::{BodyExt, Full};
use std::time::Duration;

/// A typical chart page of a legacy EHR: a header table, a diagnosis cell, the
/// SSN in text and in a form, a date-of-birth field and a note form that must
/// still work for everyone.
const PAGE: &str = r#"<!doctype html><html><head><title>Chart</title>
<style>body{font-family:sans-serif;margin:2em} td,th{border:1px solid #999;padding:4px 8px} .card{margin:1em 0}</style></head>
<body><h1>Chart: Ann Lee</h1>
<table id="demographics"><tr><th>Name</th><td class="name">Ann Lee</td></tr>
<tr><th>SSN</th><td><span id="ssn" title="123-45-6789">123-45-6789</span></td></tr>
<tr><th>Diagnosis</th><td class="diagnosis">F32.1 <b>major depressive disorder</b></td></tr></table>
<form class="card" method="post" action="/charts/1/notes">
<label>Date of birth <input name="dob" value="1970-01-01"></label>
<label>SSN on file <input name="ssn" class="ssn" value="123-45-6789"></label>
<label>Phone <input name="phone" value="555-0100"></label>
<label>Note <textarea name="note" id="note"></textarea></label>
<button type="submit" id="save">Save note</button></form>
</body></html>"#;

/// What the front desk must never receive in full.
const SECRETS: [&str; 5] = ["F32.1", "depressive", "123-45", "45-6789", "1970-01-01"];

/// The same fields in an export, and in the app's JSON.
const CSV: &str = "Name,Diagnosis,SSN,Date of birth,Phone\r\nAnn Lee,\"F32.1, major depressive disorder\",123-45-6789,1970-01-01,555-0100\r\n";
const JSON: &str = r#"{"patient":{"name":"Ann Lee","ssn":"123-45-6789","dob":"1970-01-01","visits":[{"diagnosis":"F32.1"}]}}"#;

const RULES: &str = "hide = [\"td.diagnosis\", \"input[name=dob]\", \"date_of_birth\"]\n\
                     mask = { \"#ssn\" = \"last4\", \"input.ssn\" = \"last4\" }\n\
                     hide_for = [\"frontdesk\"]\n";

async fn chart_app() -> String {
    small_app(|req: hyper::Request<hyper::body::Incoming>| async move {
        let path = req.uri().path().to_string();
        if req.method() == hyper::Method::POST {
            // The note form: says what it received, by field name.
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let names: Vec<String> = form_urlencoded::parse(&body)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let page = format!(
                "<!doctype html><html><body><h1 id=\"saved\">Note saved</h1><p id=\"got\">{}</p></body></html>",
                names.join(" | ")
            );
            return hyper::Response::builder()
                .header("content-type", "text/html")
                .body(Full::new(bytes::Bytes::from(page)))
                .unwrap();
        }
        let big = format!(
            "<!doctype html><p id=\"ssn\">123-45-6789</p>{}",
            "<p>filler</p>".repeat(10_000)
        );
        let (ctype, encoding, body) = match path.as_str() {
            "/charts/json" => ("application/json", None, JSON.to_string()),
            "/charts/export.csv" => ("text/csv; charset=utf-8", None, CSV.to_string()),
            "/charts/semicolons.csv" => ("text/csv", None, CSV.replace(',', ";")),
            "/charts/gz" => ("text/html", Some("gzip"), PAGE.to_string()),
            "/charts/text" => ("text/plain", None, "123-45-6789".to_string()),
            "/charts/big" => ("text/html", None, big),
            _ => ("text/html; charset=utf-8", None, PAGE.to_string()),
        };
        let mut resp = hyper::Response::builder().header("content-type", ctype);
        if let Some(e) = encoding {
            resp = resp.header("content-encoding", e);
        }
        resp.body(Full::new(bytes::Bytes::from(body))).unwrap()
    })
    .await
}

async fn chart_scenario() -> Running {
    let chart = chart_app().await;
    Scenario::new()
        .toml(&format!(
            "[export]\nredact_max = \"64KB\"\n\
             [roles]\nclinician = {{}}\nfrontdesk = {{}}\n\
             [[apps]]\nname = \"chart\"\nupstream = \"{chart}\"\n\
             [[routes]]\napp = \"chart\"\npath = \"/charts/**\"\n\
             allow_roles = [\"clinician\", \"frontdesk\"]\nexport = \"allow\"\n{RULES}"
        ))
        .route("/other/**", "allow_roles = [\"clinician\"]")
        .user("dr_lee", &["clinician"])
        .user("fd_kim", &["frontdesk"])
        .start()
        .await
}

fn explain(s: &Running, user: &str, path: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
        .current_dir(s.ward.site.dir.path())
        .args(["explain", "--config", "ward.toml", "--ip", "127.0.0.1"])
        .args(["--user", user, "GET", &format!("https://localhost{path}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of one `ward explain` line (`fields on pages:` …).
fn explained<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in:\n{text}"))
        .trim()
}

#[tokio::test(flavor = "multi_thread")]
async fn hidden_and_masked_fields_never_reach_the_roles_they_are_hidden_from() {
    let s = chart_scenario().await;
    let lee = s.browser();
    let kim = s.browser();
    assert_eq!(s.sign_in(&lee, "dr_lee").await, 303);
    assert_eq!(s.sign_in(&kim, "fd_kim").await, 303);

    // The clinician sees the whole chart, export and JSON.
    for path in ["/charts/1", "/charts/export.csv", "/charts/json"] {
        let r = lee.get(path).await;
        assert_eq!(r.status(), 200, "{path}");
        let id = request_id(&r);
        let body = r.text().await.unwrap();
        assert!(body.contains("123-45-6789"), "{path}: {body}");
        assert!(body.contains("F32.1"), "{path}: {body}");
        assert!(audit_of(&s.ward.site, &id)["fields"].is_null());
    }

    // The front desk: the page without the hidden fields (in text or any attribute),
    // the SSN cut to its last 4, the rest of the page as it was.
    let r = kim.get("/charts/1").await;
    assert_eq!(r.status(), 200);
    let id = request_id(&r);
    let page = r.text().await.unwrap();
    for secret in SECRETS {
        assert!(
            !page.contains(secret),
            "{secret} reached the front desk:\n{page}"
        );
    }
    assert!(
        page.contains("Ann Lee") && page.contains("555-0100"),
        "{page}"
    );
    assert!(
        page.contains(r#"<span id="ssn">•••-••-6789</span>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<td class="diagnosis">[hidden]</td>"#),
        "{page}"
    );
    assert!(page.contains(r#"value="•••-••-6789""#), "{page}");
    assert!(page.contains("readonly"), "{page}");
    let rec = audit_of(&s.ward.site, &id);
    let page_rules = [
        "hide td.diagnosis",
        "hide input[name=dob]",
        "mask #ssn last4",
        "mask input.ssn last4",
    ];
    assert_eq!(rec["fields"], serde_json::json!(page_rules), "{rec}");

    // The export: the diagnosis and birth date columns gone, the SSN masked.
    let r = kim.get("/charts/export.csv").await;
    assert_eq!(r.status(), 200);
    let id = request_id(&r);
    let csv = r.text().await.unwrap();
    assert_eq!(csv, "Name,SSN,Phone\r\nAnn Lee,•••-••-6789,555-0100\r\n");
    let rec = audit_of(&s.ward.site, &id);
    let csv_rules = ["hide td.diagnosis", "hide date_of_birth", "mask #ssn last4"];
    assert_eq!(rec["fields"], serde_json::json!(csv_rules), "{rec}");

    // The app's JSON: the same rules by field name.
    let r = kim.get("/charts/json").await;
    assert_eq!(r.status(), 200);
    let id = request_id(&r);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["patient"]["ssn"], "•••-••-6789");
    assert_eq!(v["patient"]["dob"], "[hidden]");
    assert_eq!(v["patient"]["visits"][0]["diagnosis"], "[hidden]");
    assert_eq!(v["patient"]["name"], "Ann Lee");
    let rec = audit_of(&s.ward.site, &id);
    let json_rules = [
        "hide td.diagnosis",
        "hide input[name=dob]",
        "mask #ssn last4",
    ];
    assert_eq!(rec["fields"], serde_json::json!(json_rules), "{rec}");

    // `ward explain` lists the rules the proxy applied, for pages and by name.
    let text = explain(&s, "fd_kim", "/charts/1");
    let on_pages = explained(&text, "fields on pages:");
    for rule in page_rules {
        let (kind, selector) = rule.split_once(' ').unwrap();
        let selector = selector.trim_end_matches(" last4");
        let said = if kind == "hide" {
            format!("{selector} hidden")
        } else {
            format!("{selector} masked (last4)")
        };
        assert!(on_pages.contains(&said), "{said} not in {on_pages}");
    }
    let by_name = explained(&text, "CSV/JSON fields:");
    for said in [
        "diagnosis hidden",
        "dob hidden",
        "date_of_birth hidden",
        "ssn masked (last4)",
    ] {
        assert!(by_name.contains(said), "{said} not in {by_name}");
    }
    let text = explain(&s, "dr_lee", "/charts/1");
    assert_eq!(explained(&text, "fields on pages:"), "none");
    assert_eq!(explained(&text, "CSV/JSON fields:"), "none");

    // What ward cannot rewrite is refused to them, never passed: a compressed page,
    // another type, a CSV split by semicolons, a page over the rewrite limit.
    for path in [
        "/charts/gz",
        "/charts/text",
        "/charts/semicolons.csv",
        "/charts/big",
    ] {
        let r = kim.get(path).await;
        assert_eq!(r.status(), 403, "{path}");
        let id = request_id(&r);
        let body = r.text().await.unwrap();
        assert!(!body.contains("123-45-6789"), "{path}: {body}");
        let rec = audit_of(&s.ward.site, &id);
        assert_eq!(rec["reason"], "redaction-refused", "{rec}");
        // ...and the clinician gets them.
        assert_eq!(lee.get(path).await.status(), 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_selector_mask_or_a_missing_hide_for_is_refused_at_load() {
    let site = Site::new();
    let policy = "practice = \"T\"\n[roles]\nfrontdesk = {}\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"http://127.0.0.1:9\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/a/**\"\nallow_roles = [\"frontdesk\"]\n\
         hide = [\"td[\"]\nhide_for = [\"frontdesk\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/b/**\"\nallow_roles = [\"frontdesk\"]\n\
         hide = [\"#ssn\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/c/**\"\nallow_roles = [\"frontdesk\"]\n\
         mask = { \"#ssn\" = \"first4\" }\nhide_for = [\"frontdesk\"]\n";
    let file = site.path("ward.toml");
    std::fs::write(&file, policy).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ward"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("ward.toml:11:9: 'td[' is not a selector"),
        "{text}"
    );
    assert!(text.contains("hide and hide_for go together"), "{text}");
    assert!(
        text.contains("ward.toml:22:19: 'first4' is not a way ward can mask a field"),
        "{text}"
    );
}

/// A real browser: the front desk's chart page renders, shows the masked SSN,
/// and its note form still submits (without the read-only fields).
#[tokio::test(flavor = "multi_thread")]
async fn the_front_desk_gets_a_working_chart_page_in_a_real_browser() {
    let s = chart_scenario().await;
    let driver = ChromeDriver::start();
    let profile = tempfile::tempdir().unwrap();
    let client = open_browser(&driver, profile.path()).await;
    client.goto(&s.ward.url("/.ward/login")).await.unwrap();
    fill(&client, "#username", "fd_kim").await;
    fill(&client, "#password", PW).await;
    submit(&client).await;
    wait_for_path(&client, "/.ward/mfa", Duration::from_secs(20)).await;
    fill(&client, "#code", &s.code("fd_kim").await).await;
    submit(&client).await;
    wait_until_past_ward_pages(&client, Duration::from_secs(20)).await;

    client.goto(&s.ward.url("/charts/1")).await.unwrap();
    let ssn = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#ssn"))
        .await
        .unwrap();
    assert_eq!(ssn.text().await.unwrap(), "•••-••-6789");
    let text = body_text(&client).await;
    assert!(text.contains("Ann Lee"), "{text}");
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} shown:\n{text}");
    }
    let html = client.source().await.unwrap();
    for secret in SECRETS {
        assert!(!html.contains(secret), "{secret} in the page:\n{html}");
    }
    screenshot(&client, "field_rules/front_desk_chart.png").await;

    // The note form still works; the read-only fields are not sent back.
    fill(&client, "#note", "called back about the appointment").await;
    click(&client, "#save").await;
    let saved = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#saved"))
        .await
        .unwrap();
    assert_eq!(saved.text().await.unwrap(), "Note saved");
    let got = client
        .find(Locator::Css("#got"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        got.contains("note=called back about the appointment"),
        "{got}"
    );
    assert!(got.contains("phone=555-0100"), "{got}");
    assert!(!got.contains("ssn=") && !got.contains("dob="), "{got}");
    screenshot(&client, "field_rules/front_desk_note_saved.png").await;
    client.close().await.unwrap();
}
