//! Exfiltration: an export grant is one person's, for one route, for a while; nobody else
//! rides on it. The recording upstream shows the app answered; ward's answer and the audit
//! trail show the export was stopped, or let out under which grant.

mod common;

use common::*;

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
