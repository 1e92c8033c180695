//! Exfiltration: exports in any disguise refused without a grant and let out with one; an
//! export grant is one person's, for one route, for a while, and nobody else rides on it;
//! exports an app selects by a query parameter or form field; size caps, redaction, rate caps
//! and bodies a vendor may not send. The recording upstream (or the sample EHR) shows the app
//! answered; ward's answer and the audit trail show the export was stopped, or let out under
//! which grant. An allowed gigabyte still streams.

use crate::common::*;
use http_body_util::BodyExt;
use std::time::{Duration, Instant};

fn scenario() -> Scenario {
    Scenario::new()
        .toml("[roles]\nclinician = { export = \"block\" }\n")
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .route("/reports/**", "allow_roles = [\"clinician\"]")
        .user("dr_lee", &["clinician"])
        .user("dr_ray", &["clinician"])
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_grant_is_only_its_holders() {
    let s = scenario().start().await;
    let reason = "records request from the patient's lawyer";
    grant_export(
        s.ward.site.dir.path(),
        "ward.toml",
        "dr_lee",
        "/reports/**",
        "1h",
        reason,
    )
    .await;
    let lee = s.browser();
    let ray = s.browser();
    assert_eq!(s.sign_in(&lee, "dr_lee").await, 303);
    assert_eq!(s.sign_in(&ray, "dr_ray").await, 303);

    // Another clinician, same role, same route: the grant is not theirs.
    let r = ray.get("/reports/patients.csv").await;
    assert_eq!(r.status(), 403);
    let id = request_id(&r);
    assert!(!r.text().await.unwrap().contains("upstream saw"));
    let rec = audit_of(&s.ward.site, &id);
    assert_eq!(rec["user"], "dr_ray");
    assert!(rec["grant"].is_null(), "{rec}");
    assert_eq!(rec["reason"], "export-blocked", "{rec}");
    // Nor on another browser holding a copy of nothing but their own session: the holder's
    // grant is not in any cookie.
    assert!(ray.cookie("__Host-ward-session") != lee.cookie("__Host-ward-session"));

    // The holder, only on the granted route: the record names the grant and its reason.
    let r = lee.get("/reports/patients.csv").await;
    assert_eq!(r.status(), 200);
    let id = request_id(&r);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("upstream saw GET /reports/patients.csv")
    );
    let rec = audit_of(&s.ward.site, &id);
    let grant = rec["grant"].as_str().unwrap_or_default();
    assert!(grant.contains(reason), "{rec}");
    let r = lee.get("/patients/1/summary.pdf").await;
    assert_eq!(r.status(), 403, "the grant reached beyond its route");
    // The app answered all three: the stop is on the way out.
    assert_eq!(s.up.saw("/reports/patients.csv").len(), 2);
}

/// A database admin tool: `/index.php` answers every request with a page that
/// says what it was asked (query and body) and, for an export, the table dump.
async fn db_tool() -> String {
    small_app(|req: hyper::Request<hyper::body::Incoming>| async move {
        let query = req.uri().query().unwrap_or("").to_string();
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body).to_string();
        let dump = query.contains("route=%2Fexport")
            || query.contains("route=/export")
            || body.contains("output_format=astext");
        let text = format!(
            "<html><body><p>query: {query}</p><p>body: {body}</p>{}</body></html>",
            if dump {
                "<pre>INSERT INTO patients VALUES (1001, 'Ellison');</pre>"
            } else {
                ""
            }
        );
        let mut resp = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(text)));
        resp.headers_mut()
            .insert("content-type", "text/html; charset=utf-8".parse().unwrap());
        resp
    })
    .await
}

/// Issue #11.2: exports an app selects by a query parameter or a form field (a database
/// tool's "view output as text", answered as an ordinary page) are caught by routes with
/// `query` and `form` conditions.
#[tokio::test(flavor = "multi_thread")]
async fn exports_chosen_by_a_parameter_or_a_form_field_are_blocked_and_can_be_granted() {
    let app = db_tool().await;
    let s = Scenario::new()
        .app_at(&app)
        .app("ward_keeps_cookies = false")
        .toml("[roles]\ndba = { export = \"block\" }\n")
        .route("/index.php", "allow_roles = [\"dba\"]")
        .route(
            "/index.php",
            "query = { route = \"/export\" }\nallow_roles = [\"dba\"]\nexport_endpoint = true",
        )
        .route(
            "/index.php",
            "methods = [\"POST\"]\nform = { output_format = \"astext\" }\nallow_roles = [\"dba\"]\nexport_endpoint = true",
        )
        .user("dan", &["dba"])
        .start()
        .await;
    let ward = &s.ward;
    let (b, _sid) = s.signed_in("dan").await;

    // The tool itself works.
    let r = b.get("/index.php?route=/table&db=clinic").await;
    assert_eq!(r.status(), 200);
    // The export, chosen in the query, in any spelling a form decoder reads alike.
    for q in [
        "route=/export",
        "route=%2Fexport",
        "db=clinic&route=/export",
    ] {
        let r = b.get(&format!("/index.php?{q}")).await;
        assert_eq!(r.status(), 403, "{q}");
        assert!(!r.text().await.unwrap().contains("Ellison"), "{q}");
    }
    // The export, chosen in a posted form.
    let r = b
        .post(
            "/index.php",
            &[("db", "clinic"), ("output_format", "astext")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(!r.text().await.unwrap().contains("Ellison"));
    // Other posts pass, and the app gets the form whole.
    let r = b
        .post(
            "/index.php",
            &[("db", "clinic"), ("output_format", "sql-file")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("body: db=clinic&output_format=sql-file"),
        "{page}"
    );
    // A form ward cannot read on such a page is refused, not guessed at.
    let client = ward.client(false);
    let r = client
        .post(ward.url("/index.php"))
        .header("cookie", format!("__Host-ward-session={}", b.cookie("__Host-ward-session").unwrap()))
        .header("content-type", "multipart/form-data; boundary=x")
        .body("--x\r\nContent-Disposition: form-data; name=\"output_format\"\r\n\r\nastext\r\n--x--\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);

    // The officer grants the export: it passes, and is recorded with the grant.
    grant_export(
        ward.site.dir.path(),
        "ward.toml",
        "dan",
        "/index.php",
        "1h",
        "records request 2026-114",
    )
    .await;
    // The grant itself is in the audit trail, with its reason and who gave it.
    let trail = audit_text(&ward.site);
    let issued = trail
        .lines()
        .find(|l| l.contains("\"grant-issued\""))
        .unwrap_or_else(|| panic!("no grant-issued record in:\n{trail}"));
    assert!(
        issued.contains("\"user\":\"dan\"") && issued.contains("records request 2026-114"),
        "{issued}"
    );
    assert!(issued.contains("command line"), "{issued}");
    let r = b.get("/index.php?route=/export").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Ellison"));
}

/// Export blocking, grants, size caps, redaction, rate caps and blocked bodies in front of the
/// sample EHR (whose `/files/custom` answers with any type, disposition and size asked for).
fn export_scenario() -> Scenario {
    let all = "allow_roles = [\"clinician\", \"vendor_biller\", \"officer\"]";
    Scenario::new()
        .sample_ehr()
        .toml(
            "[roles]\nclinician = { export = \"block\" }\nvendor_biller = {}\nofficer = { export = \"allow\" }\n\
             [export]\ncontact = \"Olive, the security officer\"\n",
        )
        .route("/**", all)
        .route("/reports/**", &format!("{all}\nexport_endpoint = true"))
        .route(
            "/files/capped",
            "allow_roles = [\"clinician\", \"officer\"]\nmax_response = \"100KB\"",
        )
        .route(
            "/api/patients/*",
            "allow_roles = [\"clinician\", \"vendor_biller\"]\n\
             redact_fields = [\"ssn\", \"/patient/insurance/memberId\"]\n\
             redact_for = [\"vendor_biller\"]\nrate_limit = \"5/minute\"",
        )
        .route(
            "/settings/forwarding",
            "allow_roles = [\"clinician\", \"vendor_biller\"]\nno_body_for = [\"vendor_biller\"]",
        )
        .route("/logo.png", "allow = \"public\"")
        .user("dr_lee", &["clinician"])
        .person("vic", &["vendor_biller"], Some("Acme Billing"), &[])
        .user("olive", &["officer"])
}

/// A browser (HTTP/2 when `h2`) with `user` signed in.
async fn signed_in(s: &Running, user: &str, h2: bool) -> Browser {
    let b = if h2 {
        Browser::h2(&s.ward)
    } else {
        s.browser()
    };
    assert_eq!(s.sign_in(&b, user).await, 303, "{user}");
    b
}

/// Status and whether the body came from the upstream.
async fn fetch(b: &Browser, path: &str) -> (u16, bool, String) {
    let r = b.get(path).await;
    let status = r.status().as_u16();
    let upstream = r.headers().contains_key("x-upstream-target");
    (status, upstream, r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_are_refused_without_a_grant_and_pass_with_one() {
    let s = export_scenario().start().await;
    let ward = &s.ward;

    for (who, browser) in [
        ("clinician", signed_in(&s, "dr_lee", false).await),
        ("vendor", signed_in(&s, "vic", true).await),
    ] {
        // Viewing is fine, with no-store.
        let r = browser.get("/patients/1001/chart").await;
        assert_eq!(r.status(), 200, "{who}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.headers()["pragma"], "no-cache");
        // Exports are not, whatever their disguise.
        for path in [
            "/reports/patients.csv",
            "/patients/1001/summary.pdf",
            "/files/custom?type=text/csv",
            "/files/custom?type=Text/CSV%3B+charset%3Dutf-8",
            "/files/custom?type=APPLICATION/PDF",
            "/files/custom?type=application/octet-stream",
            "/files/custom?type=text/html&disposition=attachment%3B+filename%3D%22x.html%22",
            "/files/custom?type=text/plain&disposition=attachment%3B+filename*%3DUTF-8%27%27notes.txt",
            "/files/custom",
            "/files/custom?type=application/zip&encoding=gzip",
            "/files/custom?type=text/csv&chunked=1&bytes=5000000",
        ] {
            let (status, upstream, body) = fetch(&browser, path).await;
            assert_eq!(status, 403, "{who} {path}");
            assert!(
                !upstream,
                "{who} {path}: the upstream's answer was passed on"
            );
            assert!(
                body.contains("Download not permitted") && body.contains("Olive"),
                "{who} {path}"
            );
            assert!(
                !body.contains("aaaa") && !body.contains("Margaret"),
                "{who} {path}: body leaked"
            );
        }
        // Ordinary pages on the export endpoint route are exports too.
        assert_eq!(fetch(&browser, "/reports").await.0, 403, "{who}");
    }

    // The officer's role allows exports.
    let o = signed_in(&s, "olive", false).await;
    let (status, upstream, body) = fetch(&o, "/reports/patients.csv").await;
    assert_eq!((status, upstream), (200, true));
    assert!(body.contains("Ellison"));

    // A grant lets the clinician export from /reports/** for a while, and is logged with its reason.
    grant_export(
        ward.site.dir.path(),
        "ward.toml",
        "dr_lee",
        "/reports/**",
        "3s",
        "records request from the patient's lawyer",
    )
    .await;
    let lee_b = signed_in(&s, "dr_lee", false).await;
    let r = lee_b.get("/reports/patients.csv").await;
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(r.text().await.unwrap().contains("Ellison"));
    let line = ward
        .proc
        .stderr
        .wait_for_all(&[&id, "\"message\":\"request\""], Duration::from_secs(5));
    // The log names the grant; its reason (which may name a patient) is in the audit trail only.
    let grant = json_field(&line, "grant");
    assert!(!grant.is_empty() && !line.contains("lawyer"), "{line}");
    // The record's own `grant` field holds the grant and its reason.
    let record = audit_of(&ward.site, &id);
    let field = record["grant"].as_str().unwrap_or_default();
    assert!(
        field.contains("lawyer") && field.contains(&grant),
        "{record}"
    );
    // Only the granted routes.
    assert_eq!(fetch(&lee_b, "/patients/1001/summary.pdf").await.0, 403);
    // Until it expires.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(fetch(&lee_b, "/reports/patients.csv").await.0, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn caps_redaction_rate_limits_and_sharing_settings() {
    let s = export_scenario().start().await;
    let c = signed_in(&s, "dr_lee", false).await;
    let v = signed_in(&s, "vic", true).await;

    // Size cap, declared and streamed.
    assert_eq!(
        fetch(&c, "/files/capped?type=text/html&bytes=50000")
            .await
            .0,
        200
    );
    for path in [
        "/files/capped?type=text/html&bytes=200000",
        "/files/capped?type=text/html&bytes=200000&chunked=1",
    ] {
        let (status, upstream, body) = fetch(&c, path).await;
        assert_eq!((status, upstream), (403, false), "{path}");
        assert!(body.contains("larger than this page"), "{path}");
    }

    // Redaction for the vendor, not for the clinician.
    let r = v.get("/api/patients/1001").await;
    assert_eq!(r.status(), 200);
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["patient"]["ssn"], "[hidden]");
    assert_eq!(j["visits"][0]["ssn"], "[hidden]");
    assert_eq!(j["patient"]["insurance"]["memberId"], "[hidden]");
    assert_eq!(j["patient"]["name"], "Margaret Ellison");
    let j: serde_json::Value = c.get("/api/patients/1001").await.json().await.unwrap();
    assert_eq!(j["patient"]["ssn"], "000-12-3456");

    // Rate cap per person and route: 5 a minute (one was used above).
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(v.get("/api/patients/1002").await.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429]);
    // Another person's budget is their own.
    assert_eq!(c.get("/api/patients/1002").await.status(), 200);

    // Sharing settings: the vendor may look but not change.
    assert_eq!(v.get("/settings/forwarding").await.status(), 200);
    let r = v
        .post(
            "/settings/forwarding",
            &[("forward_to", "me@vendor.example")],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert!(!r.headers().contains_key("x-upstream-target"));
    assert_eq!(
        c.post(
            "/settings/forwarding",
            &[("forward_to", "nurse@clinic.example")]
        )
        .await
        .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_gigabyte_answers_still_stream_with_flat_memory() {
    let s = export_scenario().start().await;
    let ward = &s.ward;
    let o = signed_in(&s, "olive", false).await;
    let size: u64 = 1 << 30;
    let mut r = o.get(&format!("/stream?bytes={size}")).await;
    assert_eq!(r.status(), 200);
    let (mut got, mut max_rss, mut last) = (0u64, 0u64, Instant::now());
    while let Some(chunk) = r.chunk().await.unwrap() {
        got += chunk.len() as u64;
        if last.elapsed() > Duration::from_millis(100) {
            max_rss = max_rss.max(ward.proc.rss_kib());
            last = Instant::now();
        }
    }
    assert_eq!(got, size);
    assert!(
        max_rss > 0 && max_rss < 100 * 1024,
        "ward's RSS reached {max_rss} KiB"
    );
}
