//! Path confusion: requests spelled to reach a route the policy denies, or ward's own
//! `/.ward/` pages, through another route: encodings, dot segments, look-alike characters, `;`
//! parameters, letter case, trailing dots, fragments, override headers, ward's own prefix.
//! End to end through the table harness (`common::wire`: each spelling refused, or forwarded
//! with exactly the canonical path ward decided on) and the recording upstream; then property
//! tests of `canonicalize` and `decide` with thousands of generated respellings.

use crate::common::wire::*;
use crate::common::*;

/// Respellings of denied paths, for the clinician of `common::wire::scenario`.
fn cases() -> Vec<Case> {
    use Expect::*;
    vec![
        // --- Encoded dot segments -----------------------------------------------------------
        case(
            "dot: %2e%2e",
            get("/patients/%2e%2e/admin/x"),
            Refused(DENIED),
        ),
        case(
            "dot: %2E%2E",
            get("/patients/%2E%2E/admin/x"),
            Refused(DENIED),
        ),
        case("dot: .%2e", get("/patients/.%2e/admin/x"), Refused(DENIED)),
        case(
            "dot: %2e. mixed",
            get("/patients/%2e./billing/"),
            Refused(DENIED),
        ),
        case(
            "dot: %2e%2E from public",
            get("/public/%2e%2E/admin"),
            Refused(DENIED),
        ),
        case(
            "dot: %2e inside admin",
            get("/admin/%2e/x"),
            Refused(DENIED),
        ),
        case(
            "dot: out of admin into patients is forwarded canonical",
            get("/admin/%2e%2e/patients/1001/chart"),
            fwd("/patients/1001/chart"),
        ),
        case(
            "dot: single dots removed",
            get("/public/./a/%2e/logo"),
            fwd("/public/a/logo"),
        ),
        case(
            "h2 dot: %2e%2e",
            h2get("/patients/%2e%2e/admin/x"),
            Refused(DENIED),
        ),
        case(
            "h2 dot: .%2E",
            h2get("/patients/.%2E/billing/x"),
            Refused(DENIED),
        ),
        case(
            "h2 dot: out of billing is forwarded canonical",
            h2get("/billing/%2E%2E/patients/1001/chart"),
            fwd("/patients/1001/chart"),
        ),
        // --- `..` above the root ----------------------------------------------------------------
        case("root: /../admin", get("/../admin/x"), Refused(BAD)),
        case(
            "root: two up from one",
            get("/patients/../../admin/x"),
            Refused(BAD),
        ),
        case("root: %2e%2e at root", get("/%2e%2e/admin"), Refused(BAD)),
        case("root: bare /..", get("/.."), Refused(BAD)),
        case("h2 root: /../admin", h2get("/../admin/x"), Refused(BAD)),
        case(
            "h2 root: public up twice",
            h2get("/public/../../admin"),
            Refused(BAD),
        ),
        // --- Encoded slash and backslash --------------------------------------------------------
        case(
            "enc sep: %2f",
            get("/patients%2f..%2fadmin/x"),
            Refused(BAD),
        ),
        case("enc sep: ..%2F", get("/patients/..%2Fadmin"), Refused(BAD)),
        case("enc sep: admin%2fx", get("/admin%2fx"), Refused(BAD)),
        case("enc sep: %5c", get("/patients/..%5cadmin"), Refused(BAD)),
        case("enc sep: %5C", get("/patients/..%5Cadmin"), Refused(BAD)),
        case(
            "enc sep: double %252e",
            get("/patients/%252e%252e/admin"),
            Refused(BAD),
        ),
        case(
            "enc sep: double %252f",
            get("/patients/..%252fadmin"),
            Refused(BAD),
        ),
        case("enc sep: leading %2f", get("/%2fadmin/x"), Refused(BAD)),
        case(
            "h2 enc sep: %2f",
            h2get("/patients/..%2fadmin"),
            Refused(BAD),
        ),
        case(
            "h2 enc sep: %5c",
            h2get("/patients%5c..%5cadmin"),
            Refused(BAD),
        ),
        case(
            "h2 enc sep: %252f",
            h2get("/patients/..%252fadmin"),
            Refused(BAD),
        ),
        // --- Literal backslash ------------------------------------------------------------------
        case(
            "backslash: ..\\admin",
            get("/patients/..\\admin/x"),
            Refused(BAD),
        ),
        case("backslash: all", get("/patients\\..\\admin"), Refused(BAD)),
        case("backslash: leading", get("\\admin\\x"), Refused(BAD)),
        case("h2 backslash", h2get("/patients/..\\admin"), Refused(BAD)),
        // --- Overlong and look-alike UTF-8 -------------------------------------------------------
        case(
            "utf8: %c0%ae overlong dot",
            get("/patients/%c0%ae%c0%ae/admin"),
            Refused(BAD),
        ),
        case(
            "utf8: %c0%af overlong slash",
            get("/patients%c0%af..%c0%afadmin"),
            Refused(BAD),
        ),
        case(
            "utf8: %e0%80%ae three-byte overlong dot",
            get("/patients/%e0%80%ae%e0%80%ae/admin"),
            Refused(BAD),
        ),
        case(
            "utf8: %e0%80%af three-byte overlong slash",
            get("/patients%e0%80%af..%e0%80%afadmin"),
            Refused(BAD),
        ),
        case(
            "utf8: raw overlong bytes",
            get_bytes(b"/patients/\xc0\xae\xc0\xae/admin", "", true),
            Refused(BAD),
        ),
        case(
            "utf8: fullwidth solidus",
            get("/%ef%bc%8fadmin"),
            Refused(BAD),
        ),
        case(
            "utf8: fullwidth full stops",
            get("/patients/%ef%bc%8e%ef%bc%8e/admin"),
            Refused(BAD),
        ),
        case(
            "utf8: lone continuation",
            get("/patients/%80/../../admin"),
            Refused(BAD),
        ),
        case(
            "utf8: dotless i (upper-cases to ASCII I)",
            get("/adm%C4%B1n/x"),
            Refused(BAD),
        ),
        case(
            "utf8: long s (upper-cases to ASCII S)",
            get("/adminU%C5%BF/x"),
            Refused(BAD),
        ),
        case(
            "utf8: Kelvin sign (lower-cases to k)",
            get("/%E2%84%AAey"),
            Refused(BAD),
        ),
        case(
            "utf8: full-width b (NFKC b)",
            get("/%EF%BD%82illing/x"),
            Refused(BAD),
        ),
        case(
            "utf8: mathematical bold b (NFKC b)",
            get("/%F0%9D%90%9Billing/x"),
            Refused(BAD),
        ),
        case(
            "utf8: modifier letter small b (NFKC b)",
            get("/%E1%B5%87illing/x"),
            Refused(BAD),
        ),
        case(
            "utf8: i with macron (best-fit i)",
            get("/b%C4%ABlling/x"),
            Refused(BAD),
        ),
        case(
            "utf8: soft hyphen inside a denied name",
            get("/bil%C2%ADling/x"),
            Refused(BAD),
        ),
        case(
            "h2 utf8: full-width a in admin",
            h2get("/%EF%BD%81dmin/x"),
            Refused(BAD),
        ),
        case(
            "h2 utf8: combining mark on an ASCII letter",
            h2get("/b%CC%B2illing/x"),
            Refused(BAD),
        ),
        case(
            "h2 utf8: %c0%ae",
            h2get("/patients/%c0%ae%c0%ae/admin"),
            Refused(BAD),
        ),
        case(
            "utf8: raw dotless i bytes",
            get_bytes(b"/adm\xc4\xb1n/x", "", true),
            Refused(BAD),
        ),
        case(
            "utf8: IIS %u002e escapes",
            get("/patients/%u002e%u002e/admin"),
            Refused(BAD),
        ),
        // --- `;` path parameters ------------------------------------------------------------------
        case("semi: /admin;x/", get("/admin;x/y"), Refused(BAD)),
        case("semi: /..;/admin", get("/..;/admin"), Refused(BAD)),
        case(
            "semi: /patients/..;/admin",
            get("/patients/..;/admin/x"),
            Refused(BAD),
        ),
        case("semi: /billing;/", get("/billing;/"), Refused(BAD)),
        case(
            "semi: jsessionid then ..",
            get("/patients;jsessionid=1/../admin"),
            Refused(BAD),
        ),
        case(
            "semi: %2e%2e;",
            get("/patients/%2e%2e;/admin"),
            Refused(BAD),
        ),
        case("semi: ..%3b", get("/patients/..%3b/admin"), Refused(BAD)),
        case(
            "semi: even on an allowed path",
            get("/patients/1001/chart;x"),
            Refused(BAD),
        ),
        case(
            "semi: %3B is refused like a literal ;",
            get("/admin%3Bx/"),
            Refused(BAD),
        ),
        case("h2 semi: /..;/admin", h2get("/..;/admin"), Refused(BAD)),
        case("h2 semi: /billing;x/", h2get("/billing;x/"), Refused(BAD)),
        // --- `//` and `/./` -----------------------------------------------------------------------
        case("slashes: //admin", get("//admin/x"), Refused(DENIED)),
        case("slashes: /./admin", get("/./admin/x"), Refused(DENIED)),
        case(
            "slashes: ///admin///x",
            get("///admin///x"),
            Refused(DENIED),
        ),
        case(
            "slashes: mixed",
            get("/patients/.//..//admin"),
            Refused(DENIED),
        ),
        case(
            "slashes: merged on an allowed path",
            get("//patients//1001///chart"),
            fwd("/patients/1001/chart"),
        ),
        case(
            "slashes: /./public/./x",
            get("/./public/./x"),
            fwd("/public/x"),
        ),
        case("h2 slashes: //admin", h2get("//admin/x"), Refused(DENIED)),
        case(
            "h2 slashes: /./billing/",
            h2get("/./billing/"),
            Refused(DENIED),
        ),
        case(
            "h2 slashes: //public//x",
            h2get("//public//x"),
            fwd("/public/x"),
        ),
        // --- Letter case (case-sensitive app) -----------------------------------------------------
        case(
            "case: /ADMIN is another path",
            get("/ADMIN/x"),
            fwd("/ADMIN/x"),
        ),
        case("case: /Admin is another path", get("/Admin"), fwd("/Admin")),
        case(
            "case: %41dmin decodes to Admin",
            get("/%41dmin/x"),
            fwd("/Admin/x"),
        ),
        case(
            "case: %61dmin decodes to admin",
            get("/%61dmin/x"),
            Refused(DENIED),
        ),
        case(
            "case: all encoded",
            get("/%61%64%6d%69%6e/"),
            Refused(DENIED),
        ),
        case("case: /BILLING/", get("/BILLING/"), fwd("/BILLING/")),
        case("h2 case: /ADMIN", h2get("/ADMIN/x"), fwd("/ADMIN/x")),
        case("h2 case: %62illing", h2get("/%62illing/x"), Refused(DENIED)),
        // --- Trailing dot and space -----------------------------------------------------------------
        case("trail: /admin./", get("/admin./x"), Refused(BAD)),
        case("trail: /admin%20/", get("/admin%20/x"), Refused(BAD)),
        case("trail: /admin%2e/", get("/admin%2e/x"), Refused(BAD)),
        case("trail: /admin.../", get("/admin.../x"), Refused(BAD)),
        case(
            "trail: /billing%20%20/",
            get("/billing%20%20/"),
            Refused(BAD),
        ),
        case("trail: /admin%2E%20/", get("/admin%2E%20/"), Refused(BAD)),
        case("trail: literal space", get("/admin. /x"), Refused(BAD)),
        case("h2 trail: /admin./", h2get("/admin./x"), Refused(BAD)),
        case(
            "h2 trail: /billing%20/",
            h2get("/billing%20/"),
            Refused(BAD),
        ),
        // --- Path-override headers ------------------------------------------------------------------
        checked(
            "override: X-Original-URL",
            get_with("/echo/o", "X-Original-URL: /admin/x\r\n"),
            fwd("/echo/o"),
            upstream_saw_only_ward_identity,
        ),
        checked(
            "override: X-Rewrite-URL",
            get_with("/echo/o", "X-Rewrite-URL: /admin/x\r\n"),
            fwd("/echo/o"),
            upstream_saw_only_ward_identity,
        ),
        checked(
            "override: X-Forwarded-Uri",
            get_with("/echo/o", "X-Forwarded-Uri: /admin/x\r\n"),
            fwd("/echo/o"),
            upstream_saw_only_ward_identity,
        ),
        checked(
            "override: X-Forwarded-Prefix",
            get_with("/echo/o", "X-Forwarded-Prefix: /admin\r\n"),
            fwd("/echo/o"),
            upstream_saw_only_ward_identity,
        ),
        checked(
            "override: X_Original_URL",
            get_with(
                "/echo/o",
                "X_Original_URL: /admin/x\r\nX-Original_Url: /admin\r\n",
            ),
            fwd("/echo/o"),
            upstream_saw_only_ward_identity,
        ),
        checked(
            "override: X-HTTP-Method-Override on a GET-only route",
            get_with(
                "/echo/readonly/x",
                "X-HTTP-Method-Override: DELETE\r\nX-HTTP-Method: DELETE\r\nX-Method-Override: DELETE\r\n",
            ),
            fwd("/echo/readonly/x"),
            upstream_saw_only_ward_identity,
        ),
        checked(
            "override: X-Script-Name (WSGI prefix recipe strips it from the path)",
            get_with(
                "/echo/s",
                "X-Script-Name: /echo\r\nX_Script_Name: /echo\r\n",
            ),
            fwd("/echo/s"),
            upstream_saw_only_ward_identity,
        ),
        case(
            "override: X-Original-URL does not open admin",
            get_with("/admin/x", "X-Original-URL: /patients/1001/chart\r\n"),
            Refused(DENIED),
        ),
        checked(
            "h2 override: x-original-url and x-rewrite-url",
            h2(
                "GET",
                "/echo/o",
                &[
                    ("x-original-url", "/admin/x"),
                    ("x-rewrite-url", "/admin/x"),
                ],
            ),
            fwd("/echo/o"),
            upstream_saw_only_ward_identity,
        ),
        // --- Fragments --------------------------------------------------------------------------------
        // `http` drops a fragment while parsing the target, before ward sees it; what
        // matters is that the remaining path is what is decided on and forwarded.
        case(
            "fragment: #/../../admin after an allowed path",
            get("/patients/1001/chart#/../../admin"),
            Expect::RefusedOr(BAD, "/patients/1001/chart".into()),
        ),
        case("fragment: /admin#x", get("/admin#x"), Refused(&[400, 403])),
        case(
            "fragment: /public#/../admin",
            anon("/public#/../admin", ""),
            Expect::RefusedOr(BAD, "/public".into()),
        ),
        case(
            "fragment: in the query",
            anon("/public?x#/../../admin", ""),
            Expect::RefusedOr(BAD, "/public?x".into()),
        ),
        case("fragment: only", get("#/admin"), Refused(BAD)),
        case(
            "fragment: %23 is not a fragment",
            get("/patients%23/../admin"),
            Refused(DENIED),
        ),
        // --- Query strings that look like paths ---------------------------------------------------
        case(
            "query: /public?/admin",
            anon("/public?/admin", ""),
            fwd("/public?/admin"),
        ),
        case(
            "query: /public?x=/../admin",
            anon("/public?x=/../admin", ""),
            fwd("/public?x=/../admin"),
        ),
        case(
            "query: /public/?/../../admin/x",
            anon("/public/?/../../admin/x", ""),
            fwd("/public/?/../../admin/x"),
        ),
        case(
            "query: /admin?/public",
            get("/admin?/public"),
            Refused(DENIED),
        ),
        case(
            "query: /admin/?x=/public/../",
            get("/admin/?x=/public/../"),
            Refused(DENIED),
        ),
        case(
            "query: /admin?/public without a session",
            anon("/admin?/public", ""),
            Refused(LOGIN),
        ),
        case(
            "query: /logo.png?/admin/x",
            anon("/logo.png?/admin/x", ""),
            fwd("/logo.png?/admin/x"),
        ),
        case(
            "query: %3F is not a query",
            get("/public%3F/../admin"),
            Refused(DENIED),
        ),
        case(
            "query: target starting with ?",
            get("?/admin"),
            Refused(BAD),
        ),
        case(
            "h2 query: /public?/admin",
            h2get("/public?/admin"),
            fwd("/public?/admin"),
        ),
        case(
            "h2 query: /admin?/public",
            h2get("/admin?/public"),
            Refused(DENIED),
        ),
        // --- Long paths and many slashes ----------------------------------------------------------
        case(
            "long: climb out of 3000 segments into admin",
            get(&format!(
                "/{}{}admin/x",
                "a/".repeat(3000),
                "../".repeat(3000)
            )),
            Refused(DENIED),
        ),
        case(
            "long: 5000 slashes before admin",
            get(&format!("/{}admin/x", "/".repeat(5000))),
            Refused(DENIED),
        ),
        case(
            "long: 2000 slashes inside public",
            anon(&format!("/public{}x", "/".repeat(2000)), ""),
            fwd("/public/x"),
        ),
        case(
            "long: 40 KB path",
            get(&format!("/admin/{}", "a".repeat(40_000))),
            Refused(TOO_LONG),
        ),
        case(
            "long: 70 KB path",
            get(&format!("/patients/{}/../../admin", "a".repeat(70_000))),
            Refused(TOO_LONG),
        ),
        case(
            "h2 long: climb out of 1000 segments",
            h2get(&format!(
                "/{}{}admin/x",
                "a/".repeat(1000),
                "../".repeat(1000)
            )),
            Refused(DENIED),
        ),
        case(
            "h2 long: 40 KB path",
            h2get(&format!("/admin/{}", "a".repeat(40_000))),
            Refused(TOO_LONG),
        ),
        // --- ward's own prefix ----------------------------------------------------------------------
        case(
            "ward: /.WARD/healthz/../../admin",
            get("/.WARD/healthz/../../admin"),
            Refused(DENIED),
        ),
        case(
            "ward: /.ward/../admin",
            get("/.ward/../admin/x"),
            Refused(DENIED),
        ),
        case(
            "ward: /.ward/login/../../billing/",
            get("/.ward/login/../../billing/"),
            Refused(DENIED),
        ),
        case(
            "ward: /%2eward/../admin",
            get("/%2eward/../admin"),
            Refused(DENIED),
        ),
        case(
            "ward: /.ward/%2e%2e/admin",
            get("/.ward/%2e%2e/admin"),
            Refused(DENIED),
        ),
        case(
            "ward: /.Ward/healthz never forwarded",
            get("/.Ward/healthz"),
            WardPage,
        ),
        case(
            "ward: /%2Eward/healthz never forwarded",
            get("/%2Eward/healthz"),
            WardPage,
        ),
        case(
            "ward: /x/../.ward/nothing",
            get("/x/../.ward/nothing"),
            WardPage,
        ),
        case("ward: bare /.ward", get("/.ward"), WardPage),
        case(
            "ward: /.ward%2fhealthz",
            get("/.ward%2fhealthz"),
            Refused(BAD),
        ),
        case("ward: /.ward;/admin", get("/.ward;/admin"), Refused(BAD)),
        case("ward: /.ward./admin", get("/.ward./admin"), Refused(BAD)),
        case(
            "h2 ward: /.WARD/healthz/../../admin",
            h2get("/.WARD/healthz/../../admin"),
            Refused(DENIED),
        ),
        case("h2 ward: /.wArD/nothing", h2get("/.wArD/nothing"), WardPage),
    ]
}

/// Variants for the second ward, whose app is case-insensitive (legacy IIS).
fn case_insensitive_cases() -> Vec<Case> {
    use Expect::*;
    vec![
        case("ci: /ADMIN/x", get("/ADMIN/x"), Refused(DENIED)),
        case("ci: /Admin", get("/Admin"), Refused(DENIED)),
        case("ci: /BiLLing/", get("/BiLLing/"), Refused(DENIED)),
        case("ci: /%41DMIN/x", get("/%41DMIN/x"), Refused(DENIED)),
        case(
            "ci: /PATIENTS/../ADMIN/",
            get("/PATIENTS/../ADMIN/"),
            Refused(DENIED),
        ),
        case(
            "ci: /.WARD/healthz/../../ADMIN",
            get("/.WARD/healthz/../../ADMIN"),
            Refused(DENIED),
        ),
        case("ci: dotless i", get("/adm%C4%B1n/x"), Refused(BAD)),
        case(
            "ci: long s",
            get("/billing%C5%BF/../%C5%BFecret"),
            Refused(BAD),
        ),
        case("ci: /ADMIN./", get("/ADMIN./x"), Refused(BAD)),
        case(
            "ci: allowed path keeps its case upstream",
            get("/PATIENTS/1001/chart"),
            fwd("/PATIENTS/1001/chart"),
        ),
        case(
            "ci: /Public is public",
            anon("/Public/x", ""),
            fwd("/Public/x"),
        ),
        case(
            "ci: /ADMIN without a session",
            anon("/ADMIN/x", ""),
            Refused(LOGIN),
        ),
        case("h2 ci: /ADMIN/x", h2get("/ADMIN/x"), Refused(DENIED)),
        case("h2 ci: /bIlLiNg", h2get("/bIlLiNg"), Refused(DENIED)),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn path_variants_are_refused_or_forwarded_canonical() {
    let (s, sid) = start(false).await;
    run_at_least(&s, &sid, cases(), false, 137).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn case_insensitive_app_is_matched_ignoring_case() {
    let (s, sid) = start(true).await;
    run_at_least(&s, &sid, case_insensitive_cases(), true, 14).await;
}

/// Unicode look-alikes of `/billing` (an outside tester's finding, issue 16): refused, never
/// passed on.
#[tokio::test(flavor = "multi_thread")]
async fn unicode_look_alikes_of_denied_paths_are_refused() {
    let (s, _b, sid) = presets::start_vendor("").await;

    // Control: the session reaches the app, and /billing is the officer's.
    let (status, reply) = s
        .raw(
            &sid,
            &format!("GET /echo/a HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let (status, _) = s
        .raw(
            &sid,
            &format!("GET /billing/x HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"),
        )
        .await;
    assert_eq!(status, 403);

    for path in [
        "/%EF%BD%82illing/x",
        "/%F0%9D%90%9Billing/x",
        "/%E1%B5%87illing/x",
        "/b%C4%ABlling/x",
        "/bil%C2%ADling/x",
        "/bil%E2%80%8Bling/x",
        "/b%CC%B2illing/x",
    ] {
        let (status, reply) = s
            .raw(
                &sid,
                &format!("GET {path} HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"),
            )
            .await;
        assert_eq!(status, 400, "{path}: {reply}");
        assert!(
            !reply.to_ascii_lowercase().contains("x-upstream-target"),
            "{path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ward_paths_never_reach_the_upstream() {
    let s = Scenario::new()
        .route("/**", "allow = \"public\"")
        .start()
        .await;
    let (ward, up) = (&s.ward, &s.up);
    let c = ward.client(false);
    let health = c.get(ward.url("/.ward/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let json: serde_json::Value = health.json().await.unwrap();
    assert_eq!(json["status"], "ok");
    for path in [
        "/.ward/",
        "/.ward/login",
        "/.WARD/x",
        "/%2eward/x",
        "/a/../.ward/x",
        "/.ward",
        "/.Ward/healthz/..",
    ] {
        let resp = c.get(ward.url(path)).send().await.unwrap();
        assert!(
            resp.status() == 404 || resp.status() == 200,
            "{path}: {}",
            resp.status()
        );
    }
    // The control: an ordinary path does arrive.
    let resp = c.get(ward.url("/ward/x")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = up.wait_for(1).await;
    assert_eq!(
        seen.iter().map(|s| s.target.as_str()).collect::<Vec<_>>(),
        vec!["/ward/x"],
        "only the ordinary path reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn default_deny_and_role_routes_without_sign_in() {
    for tls in [false, true] {
        let s = Scenario::new()
            .https(tls)
            .toml("[roles]\nbiller = {}\n")
            .route("/patients/**", "allow = \"public\"")
            .route("/billing/**", "allow_roles = [\"biller\"]")
            .start()
            .await;
        let (ward, up) = (&s.ward, &s.up);
        let c = ward.client(true);
        for (path, status) in [
            ("/", 403),
            ("/reports/patients.csv", 403),
            ("/Patients/1001/chart", 403),
        ] {
            let resp = c.get(ward.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), status, "{path}");
            let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
            assert!(resp.text().await.unwrap().contains(&id));
        }
        // Role routes send a page load to sign in, and an app's script gets 401.
        for path in ["/billing", "/patients/../billing"] {
            let resp = c
                .get(ward.url(path))
                .header("accept", "text/html")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 303, "{path}");
            assert_eq!(resp.headers()["location"], "/.ward/login?return=%2Fbilling");
            let resp = c.post(ward.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), 401, "{path}");
        }
        up.assert_nothing("refused requests");
        // The control: the public route does arrive, over the app's scheme.
        let ok = c
            .get(ward.url("/patients/1001/chart"))
            .send()
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let seen = up.last();
        assert_eq!(
            (seen.target.as_str(), seen.tls),
            ("/patients/1001/chart", tls)
        );
        assert_eq!(up.count(), 1);
    }
}

mod respellings {
    //! Property tests for route matching: no path whose canonical form a route
    //! denies is ever allowed through another spelling.
    //!
    //! A path is built from parts the policy cares about (`admin`, `billing`,
    //! `patients`, …), then respelled by transformations that some server behind
    //! a proxy reads back as the same path: percent-encoding, dot segments,
    //! doubled slashes, Unicode compatibility and best-fit look-alikes, invisible
    //! characters, combining marks, `;` parameters, trailing dots and spaces,
    //! encoded or backslash separators, double encoding, and (for a
    //! case-insensitive app) letter case. Each respelling must either be refused
    //! by `path::canonicalize`, or canonicalize to exactly the original's
    //! canonical form, so `decide` sees the same path and gives the same answer;
    //! with case folding, `decide` must give the same verdict and route.

    use proptest::prelude::*;
    use std::path::Path;
    use ward::path::canonicalize;
    use ward::policy::{Facts, Identity, Policy, decide, decide_traced};

    fn policy(case_insensitive: bool) -> Policy {
        let text = format!(
            r#"practice = "P"
    [server]
    listen = "127.0.0.1:0"
    [roles]
    clinician = {{}}
    biller = {{}}
    officer = {{}}
    [[apps]]
    name = "ehr"
    upstream = "http://127.0.0.1:9"
    case_insensitive = {case_insensitive}
    [[routes]]
    app = "ehr"
    path = "/**"
    allow_roles = ["clinician"]
    [[routes]]
    app = "ehr"
    path = "/admin/**"
    allow_roles = ["officer"]
    [[routes]]
    app = "ehr"
    path = "/billing/**"
    allow_roles = ["biller"]
    [[routes]]
    app = "ehr"
    path = "/patients/*/chart"
    allow_roles = ["clinician"]
    methods = ["GET"]
    [[routes]]
    app = "ehr"
    path = "/public/**"
    allow = "public"
    "#
        );
        match ward::config::load_str(Path::new("t.toml"), &text, ward::config::Certs::Skip) {
            Ok(l) => l.policy,
            Err(d) => panic!("{d}"),
        }
    }

    fn clinician() -> Identity {
        Identity {
            user: "dr_lee".into(),
            roles: vec!["clinician".into()],
            allow_from: None,
            mfa: true,
            passkey: true,
            emergency: false,
            vendor: false,
            device_required: false,
            export_grants: Vec::new(),
            access_grants: Vec::new(),
        }
    }

    /// The verdict and route for a canonical path, from `decide` and from the
    /// traced `decide` that `ward explain` prints (they must agree).
    fn verdict(policy: &Policy, who: &Identity, path: &str) -> String {
        let facts = Facts {
            client_ip: "127.0.0.1".parse().unwrap(),
            method: &http::Method::GET,
            host: "ehr.example",
            path,
            identity: Some(who),
            device: false,
            device_people: &[],
            device_revoked: false,
            query: &[],
            form: &[],
        };
        let d = decide(&facts, policy);
        let mut checks = Vec::new();
        let traced = decide_traced(&facts, policy, &mut checks);
        assert_eq!(d.verdict, traced.verdict, "{path}");
        assert_eq!(d.route, traced.route, "{path}");
        format!("{:?} {:?}", d.verdict, d.route)
    }

    const PARTS: &[&str] = &[
        "admin", "billing", "patients", "1001", "chart", "public", "x", "a.b", "~u", "Report-7",
    ];

    /// Letters' look-alikes that NFKC maps back to the letter (full-width and
    /// mathematical bold), or that Windows best-fit maps back (Latin Extended-A).
    fn lookalikes(c: char) -> Vec<char> {
        let mut out = Vec::new();
        if c.is_ascii_lowercase() {
            let i = u32::from(c) - u32::from('a');
            out.extend(char::from_u32(0xFF41 + i)); // full-width
            out.extend(char::from_u32(0x1D41A + i)); // mathematical bold
        }
        let best_fit = match c {
            'a' => Some('\u{0101}'),
            'e' => Some('\u{0113}'),
            'i' => Some('\u{012B}'),
            'o' => Some('\u{014D}'),
            'u' => Some('\u{016B}'),
            'c' => Some('\u{0107}'),
            'g' => Some('\u{011D}'),
            'n' => Some('\u{0144}'),
            's' => Some('\u{015B}'),
            'l' => Some('\u{013A}'),
            'r' => Some('\u{0155}'),
            't' => Some('\u{0163}'),
            'h' => Some('\u{0125}'),
            'd' => Some('\u{010F}'),
            'b' => Some('\u{1E03}'),
            'p' => Some('\u{1E57}'),
            'm' => Some('\u{1E41}'),
            _ => None,
        };
        out.extend(best_fit);
        out
    }

    fn encode(c: char, lower_hex: bool) -> String {
        let mut buf = [0u8; 4];
        c.encode_utf8(&mut buf)
            .bytes()
            .map(|b| {
                if lower_hex {
                    format!("%{b:02x}")
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// Byte positions in `s` of literal characters (not inside a `%XX` escape).
    fn literal_positions(s: &str, want: impl Fn(u8) -> bool) -> Vec<usize> {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                i += 3;
                continue;
            }
            if want(bytes[i]) {
                out.push(i);
            }
            i += 1;
        }
        out
    }

    /// How one respelling step changes the path.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Percent-encode an unreserved character (upper or lower hex).
        Encode(bool),
        /// `./`, `%2e/`, `x/../` or `x/%2E%2e/` before a part.
        DotDetour(u8),
        /// `//` for `/`.
        DoubleSlash,
        /// A letter's NFKC or best-fit look-alike.
        Lookalike(u8),
        /// Soft hyphen, zero-width space or BOM inside a part.
        Invisible(u8),
        /// A combining mark after a letter.
        Combining,
        /// `;x` after a part (Tomcat) or `%3Bx`.
        Semicolon(bool),
        /// A trailing `.` or `%20` on a part (Windows).
        TrailingDotOrSpace(bool),
        /// A separator spelled `%2F`, `%5C` or `\`.
        Separator(u8),
        /// `%25` in front of an escape (double encoding).
        DoubleEncode,
        /// A letter in the other case (only for the case-insensitive app).
        Case,
    }

    /// Whether the step keeps the path's meaning for every server (so the
    /// respelling must be accepted) or only for some (so it may be refused).
    fn is_benign(step: Step) -> bool {
        matches!(
            step,
            Step::Encode(_) | Step::DotDetour(_) | Step::DoubleSlash
        )
    }

    fn apply(s: &str, step: Step, at: usize) -> String {
        let pick = |positions: Vec<usize>| positions.get(at % positions.len().max(1)).copied();
        let mut out = s.to_string();
        match step {
            Step::Encode(lower) => {
                if let Some(i) = pick(literal_positions(s, |b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
                })) {
                    let c = char::from(s.as_bytes()[i]);
                    out.replace_range(i..=i, &encode(c, lower));
                }
            }
            Step::DotDetour(kind) => {
                if let Some(i) = pick(literal_positions(s, |b| b == b'/')) {
                    let detour = ["./", "%2e/", "x/../", "x/%2E%2e/"][usize::from(kind % 4)];
                    out.insert_str(i + 1, detour);
                }
            }
            Step::DoubleSlash => {
                if let Some(i) = pick(literal_positions(s, |b| b == b'/')) {
                    out.insert(i, '/');
                }
            }
            Step::Lookalike(k) => {
                if let Some(i) = pick(literal_positions(s, |b| b.is_ascii_lowercase())) {
                    let alts = lookalikes(char::from(s.as_bytes()[i]));
                    if let Some(alt) = alts.get(usize::from(k) % alts.len().max(1)) {
                        out.replace_range(i..=i, &encode(*alt, k % 2 == 0));
                    }
                }
            }
            Step::Invisible(k) => {
                if let Some(i) = pick(literal_positions(s, |b| b.is_ascii_alphabetic())) {
                    let c = ['\u{00AD}', '\u{200B}', '\u{FEFF}'][usize::from(k % 3)];
                    out.insert_str(i, &encode(c, false));
                }
            }
            Step::Combining => {
                if let Some(i) = pick(literal_positions(s, |b| b.is_ascii_alphabetic())) {
                    out.insert_str(i + 1, "%CC%B2");
                }
            }
            Step::Semicolon(encoded) => {
                if let Some(i) = pick(literal_positions(s, |b| b.is_ascii_alphanumeric())) {
                    out.insert_str(i + 1, if encoded { "%3Bx" } else { ";x" });
                }
            }
            Step::TrailingDotOrSpace(space) => {
                // After a literal letter or digit of a name, not after a `.` or an
                // escape such as `%2e` (that would make `..`, another path).
                let names = literal_positions(s, |b| b.is_ascii_alphanumeric());
                let mut ends = literal_positions(s, |b| b == b'/');
                ends.push(s.len());
                ends.retain(|&i| i > 1 && names.contains(&(i - 1)));
                if let Some(i) = pick(ends) {
                    out.insert_str(i, if space { "%20" } else { "." });
                }
            }
            Step::Separator(k) => {
                let slashes: Vec<usize> = literal_positions(s, |b| b == b'/')
                    .into_iter()
                    .filter(|&i| i > 0)
                    .collect();
                if let Some(i) = pick(slashes) {
                    out.replace_range(i..=i, ["%2F", "%5C", "\\", "%2f"][usize::from(k % 4)]);
                }
            }
            Step::DoubleEncode => {
                if let Some(i) = pick(literal_positions(s, |b| b.is_ascii_alphanumeric())) {
                    let c = char::from(s.as_bytes()[i]);
                    out.replace_range(i..=i, &format!("%25{:02X}", u32::from(c)));
                }
            }
            Step::Case => {
                if let Some(i) = pick(literal_positions(s, |b| b.is_ascii_alphabetic())) {
                    let b = s.as_bytes()[i];
                    let flipped = if b.is_ascii_lowercase() {
                        b.to_ascii_uppercase()
                    } else {
                        b.to_ascii_lowercase()
                    };
                    out.replace_range(i..=i, &char::from(flipped).to_string());
                }
            }
        }
        out
    }

    fn step(case: bool) -> impl Strategy<Value = Step> {
        let base = prop_oneof![
            any::<bool>().prop_map(Step::Encode),
            any::<u8>().prop_map(Step::DotDetour),
            Just(Step::DoubleSlash),
            any::<u8>().prop_map(Step::Lookalike),
            any::<u8>().prop_map(Step::Invisible),
            Just(Step::Combining),
            any::<bool>().prop_map(Step::Semicolon),
            any::<bool>().prop_map(Step::TrailingDotOrSpace),
            any::<u8>().prop_map(Step::Separator),
            Just(Step::DoubleEncode),
        ];
        if case {
            prop_oneof![9 => base, 1 => Just(Step::Case)].boxed()
        } else {
            base.boxed()
        }
    }

    fn original() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop::sample::select(PARTS), 0..5),
            any::<bool>(),
        )
            .prop_map(|(parts, trailing)| {
                let mut p = String::new();
                for part in &parts {
                    p.push('/');
                    p.push_str(part);
                }
                if trailing || p.is_empty() {
                    p.push('/');
                }
                p
            })
    }

    /// Checks one respelling; `Err` says how it slipped through.
    fn check(
        policy: &Policy,
        who: &Identity,
        original: &str,
        steps: &[(Step, usize)],
        fold: bool,
    ) -> Result<(), TestCaseError> {
        let canonical = canonicalize(original).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&canonical, original);
        let want = verdict(policy, who, &canonical);
        let mut spelled = original.to_string();
        let mut benign = true;
        for &(step, at) in steps {
            spelled = apply(&spelled, step, at);
            benign &= is_benign(step);
        }
        match canonicalize(&spelled) {
            Ok(c) => {
                // Accepted: it is the same path (or, folded, the same decision).
                if !fold {
                    prop_assert_eq!(&c, &canonical, "{} read as a different path", spelled);
                } else if c != canonical {
                    prop_assert_eq!(
                        c.to_ascii_lowercase(),
                        canonical.to_ascii_lowercase(),
                        "{} read as a different path",
                        spelled
                    );
                }
                prop_assert_eq!(verdict(policy, who, &c), want, "{}", spelled);
                // And the canonical form is stable.
                prop_assert_eq!(canonicalize(&c).ok(), Some(c));
            }
            Err(e) => prop_assert!(!benign, "{} refused ({}) though harmless", spelled, e),
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        #[test]
        fn no_respelling_reaches_a_different_route(
            original in original(),
            steps in prop::collection::vec((step(false), any::<usize>()), 0..6),
        ) {
            static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
            let policy = POLICY.get_or_init(|| policy(false));
            check(policy, &clinician(), &original, &steps, false)?;
        }

        #[test]
        fn no_respelling_reaches_a_different_route_ignoring_case(
            original in original(),
            steps in prop::collection::vec((step(true), any::<usize>()), 0..6),
        ) {
            static POLICY: std::sync::OnceLock<Policy> = std::sync::OnceLock::new();
            let policy = POLICY.get_or_init(|| policy(true));
            check(policy, &clinician(), &original, &steps, true)?;
        }

        /// Whatever the bytes, an accepted path is a fixed point of canonicalization.
        #[test]
        fn canonical_forms_are_stable(raw in "(/|[a-z]|\\.|%|[0-9A-Fa-f]|;|\\\\|~|:|@)*") {
            if let Ok(c) = canonicalize(&raw) {
                prop_assert_eq!(canonicalize(&c).ok(), Some(c.clone()));
                prop_assert!(c.starts_with('/') && !c.contains("//"));
            }
        }
    }

    #[test]
    fn the_denied_routes_really_deny_the_clinician() {
        // Without this the properties above could hold for a policy that allows everything.
        let p = policy(false);
        let who = clinician();
        assert!(verdict(&p, &who, "/admin/x").starts_with("Deny"));
        assert!(verdict(&p, &who, "/billing/").starts_with("Deny"));
        assert!(verdict(&p, &who, "/patients/1/chart").starts_with("Allow"));
        let ci = policy(true);
        assert!(verdict(&ci, &who, "/ADMIN/x").starts_with("Deny"));
    }
}
