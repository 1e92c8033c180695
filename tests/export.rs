//! End to end: export blocking, grants, size caps, redaction, no-store, and
//! blocked request bodies, over real TLS with the sample EHR.

mod common;

use common::*;
use std::time::{Duration, Instant};

const PW: &str = "maple orbit candle harbor 42";

fn policy(upstream: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}\n\
         [roles]\nclinician = {{ export = \"block\" }}\nvendor_biller = {{}}\nofficer = {{ export = \"allow\" }}\n\
         [storage]\nusers = \"config/users.toml\"\nstate = \"state\"\n\
         [export]\ncontact = \"Olive, the security officer\"\n\
         [[apps]]\nname = \"ehr\"\nupstream = \"{upstream}\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\", \"vendor_biller\", \"officer\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/reports/**\"\nallow_roles = [\"clinician\", \"vendor_biller\", \"officer\"]\nexport_endpoint = true\n\
         [[routes]]\napp = \"ehr\"\npath = \"/files/capped\"\nallow_roles = [\"clinician\", \"officer\"]\nmax_response = \"100KB\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/api/patients/*\"\nallow_roles = [\"clinician\", \"vendor_biller\"]\nredact_fields = [\"ssn\", \"/patient/insurance/memberId\"]\nredact_for = [\"vendor_biller\"]\nrate_limit = \"5/minute\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/settings/forwarding\"\nallow_roles = [\"clinician\", \"vendor_biller\"]\nno_body_for = [\"vendor_biller\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/logo.png\"\nallow = \"public\"\n"
    )
}

async fn sign_in(ward: &Ward, user: &str, secret: &[u8], offset: i64, h2: bool) -> Browser {
    let b = if h2 {
        Browser::h2(ward)
    } else {
        Browser::new(ward)
    };
    assert_eq!(
        sign_in_with(&b, user, PW, secret, offset).await,
        303,
        "{user}"
    );
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
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url()));
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let vic = enrolled_user(
        &ward.site,
        "vic",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2099-12-31"),
    );
    let olive = enrolled_user(&ward.site, "olive", &["officer"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;

    for (who, browser) in [
        ("clinician", sign_in(&ward, "dr_lee", &lee, 0, false).await),
        ("vendor", sign_in(&ward, "vic", &vic, 0, true).await),
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
    let o = sign_in(&ward, "olive", &olive, 0, false).await;
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
    let lee_b = sign_in(&ward, "dr_lee", &lee, 30, false).await;
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
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url()));
    let lee = enrolled_user(&ward.site, "dr_lee", &["clinician"], PW, None, None);
    let vic = enrolled_user(
        &ward.site,
        "vic",
        &["vendor_biller"],
        PW,
        Some("Acme Billing"),
        Some("2099-12-31"),
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let c = sign_in(&ward, "dr_lee", &lee, 0, false).await;
    let v = sign_in(&ward, "vic", &vic, 0, true).await;

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
    let ehr = Ehr::start();
    let ward = Ward::start(&policy(&ehr.url()));
    let olive = enrolled_user(&ward.site, "olive", &["officer"], PW, None, None);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let o = sign_in(&ward, "olive", &olive, 0, false).await;
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
