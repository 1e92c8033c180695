//! Identity spoofing: a client that says who it is, where it is, which scheme and port it
//! used, or which roles it holds, in headers only ward may set; and roles gained in an
//! emergency used to open the officer's console. What reached the app is read from the
//! recording upstream (over HTTP and HTTPS) and what was decided from the audit trail, or, in
//! the table of spellings (`common::wire`), from the sample EHR's echo of what it received.

use crate::common::wire::{self, *};
use crate::common::*;

/// Headers a client forges, with the value it hopes the app believes.
const FORGED: [(&str, &str); 16] = [
    ("X-Forwarded-Port", "80"),
    ("X-Forwarded-Proto", "http"),
    ("X-Forwarded-Scheme", "http"),
    ("X-Forwarded-Ssl", "off"),
    ("Front-End-Https", "off"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-For", "203.0.113.5"),
    ("X-Real-IP", "203.0.113.5"),
    ("Forwarded", "for=203.0.113.5;proto=http;host=evil.example"),
    ("X-Ward-User", "olive"),
    ("X-Ward-Roles", "officer"),
    ("X_Ward_Session", "forged"),
    ("X-Remote-User", "olive"),
    ("Remote-User", "olive"),
    ("X-Forwarded-User", "olive"),
    ("X-Client-Cert", "forged"),
];

fn scenario(https: bool) -> Scenario {
    Scenario::new()
        .https(https)
        .toml(
            "[networks]\noffice = [\"203.0.113.0/24\"]\nhere = [\"127.0.0.0/8\"]\n\
             [roles]\nclinician = {}\nofficer = {}\n",
        )
        .route("/patients/**", "allow_roles = [\"clinician\"]")
        .route(
            "/office/**",
            "allow_roles = [\"clinician\"]\nfrom = [\"office\"]",
        )
        .route(
            "/here/**",
            "allow_roles = [\"clinician\"]\nfrom = [\"here\"]",
        )
        .user("dr_lee", &["clinician"])
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_forwarding_and_identity_headers_never_reach_the_app() {
    for https in [false, true] {
        let s = scenario(https).start().await;
        for h2 in [false, true] {
            let b = if h2 {
                Browser::h2(&s.ward)
            } else {
                s.browser()
            };
            assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
            for (name, value) in FORGED {
                b.header(name, value);
            }
            s.up.clear();
            let r = b.get("/patients/1").await;
            assert_eq!(r.status(), 200);
            let seen = s.up.last();
            assert_eq!(seen.tls, https);
            // Only ward's own values, whatever the client said.
            assert_eq!(seen.all("x-forwarded-proto"), vec!["https"]);
            assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1"]);
            assert_eq!(
                seen.all("x-forwarded-host"),
                vec![format!("localhost:{}", s.ward.port())]
            );
            assert_eq!(
                seen.all("forwarded"),
                vec![format!(
                    "for=127.0.0.1;proto=https;host=\"localhost:{}\"",
                    s.ward.port()
                )]
            );
            assert_eq!(seen.all("x-ward-user"), vec!["dr_lee"]);
            assert_eq!(seen.all("x-ward-roles"), vec!["clinician"]);
            let session = seen.header("x-ward-session").unwrap_or_default();
            assert!(!session.is_empty() && session != "forged");
            for (name, value) in FORGED {
                let lower = name.to_ascii_lowercase();
                if [
                    "x-forwarded-proto",
                    "x-forwarded-for",
                    "x-forwarded-host",
                    "forwarded",
                ]
                .contains(&lower.as_str())
                    || lower.replace('_', "-").starts_with("x-ward-")
                {
                    continue;
                }
                assert!(
                    !seen.has_header_starting(name),
                    "{name}: {value} reached the app (h2={h2}, https={https}): {:?}",
                    seen.headers
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn client_identity_and_forwarding_headers_never_reach_the_upstream() {
    for tls in [false, true] {
        let s = Scenario::new()
            .https(tls)
            .route("/**", "allow = \"public\"")
            .start()
            .await;
        let (ward, up) = (&s.ward, &s.up);
        for h2 in [false, true] {
            up.clear();
            let resp = ward
                .client(h2)
                .get(ward.url("/debug/headers?a=1"))
                .header("X-Ward-User", "officer")
                .header("x_ward_user", "officer")
                .header("X_Ward_Roles", "officer")
                .header("X-Ward-Session", "forged")
                .header("X-Original-URL", "/admin")
                .header("X-Rewrite-URL", "/admin")
                .header("X-Forwarded-Uri", "/admin")
                .header("X-Forwarded-For", "10.9.9.9")
                .header("X-Forwarded-Host", "evil.example")
                .header("X-Forwarded-Port", "1")
                .header("X-Forwarded-Proto", "http")
                .header("Forwarded", "for=10.9.9.9")
                .header("Cookie", "theme=dark; __Host-ward-session=secret")
                .header("X-Custom", "kept")
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let seen = up.wait_for(1).await;
            assert_eq!(seen.len(), 1, "one request, one arrival: {seen:?}");
            let seen = &seen[0];
            assert_eq!(seen.tls, tls, "scheme to the upstream");
            assert_eq!(
                (seen.method.as_str(), seen.path.as_str()),
                ("GET", "/debug/headers")
            );
            assert_eq!(seen.query.as_deref(), Some("a=1"));
            for forbidden in [
                "x-ward-",
                "x-original-url",
                "x-rewrite-url",
                "x-forwarded-uri",
                "x-forwarded-port",
            ] {
                assert!(
                    !seen.has_header_starting(forbidden),
                    "{forbidden} reached the upstream: {:?}",
                    seen.headers
                );
            }
            assert_eq!(seen.all("x-forwarded-for"), vec!["127.0.0.1"]);
            assert_eq!(seen.all("x-forwarded-proto"), vec!["https"]);
            // ward's own Forwarded (RFC 7239), never the client's.
            assert_eq!(
                seen.all("forwarded"),
                vec![format!(
                    "for=127.0.0.1;proto=https;host=\"localhost:{}\"",
                    ward.port()
                )]
            );
            assert_eq!(
                seen.all("x-forwarded-host"),
                vec![format!("localhost:{}", ward.port())]
            );
            assert_eq!(seen.all("cookie"), vec!["theme=dark"]);
            assert_eq!(seen.all("x-custom"), vec!["kept"]);
            assert_eq!(seen.all("host"), vec![up.url.split("://").nth(1).unwrap()]);
            assert_eq!(seen.version, "HTTP/1.1");
            assert_eq!(seen.body_len, 0);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forged_address_does_not_satisfy_a_network_rule() {
    let s = scenario(false).start().await;
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    // ward has no trusted proxies: the office address in these headers is the client's word.
    for (name, value) in FORGED {
        b.header(name, value);
    }
    let r = b.get("/office/schedule").await;
    assert_eq!(r.status(), 403);
    let rec = audit_of(&s.ward.site, &request_id(&r));
    assert_eq!(
        (rec["reason"].as_str(), rec["client_ip"].as_str()),
        (Some("network"), Some("127.0.0.1")),
        "{rec}"
    );
    assert!(s.up.saw("/office/schedule").is_empty());
    // The control: the network the connection really comes from is allowed.
    let r = b.get("/here/schedule").await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.up.saw("/here/schedule").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn emergency_roles_never_open_the_officers_console() {
    let s = Scenario::new()
        .own_host()
        .toml(
            "[roles]\nclinician = {}\nofficer = {}\n\
             [break_glass]\nallowed_roles = [\"clinician\"]\nemergency_roles = [\"officer\"]\nduration = \"1h\"\n",
        )
        .route("/", "allow_roles = [\"clinician\", \"officer\"]")
        .route("/officer-only/**", "allow_roles = [\"officer\"]")
        .user("dr_lee", &["clinician"])
        .user("olive", &["officer"])
        .user("oscar", &["officer"])
        .start()
        .await;
    let own = |p: &str| s.ward.url_for(WARD_HOST, p);
    let b = s.browser();
    assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
    let form = b
        .get(&own("/.ward/break-glass"))
        .await
        .text()
        .await
        .unwrap();
    let r = b
        .post(
            &own("/.ward/break-glass"),
            &[
                ("csrf", &input_value(&form, "csrf")),
                ("reason", "code blue in room 4, need everything"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    // The emergency role is in force for the apps...
    assert_eq!(b.get("/officer-only/x").await.status(), 200);
    assert_eq!(
        s.up.last().header("x-ward-roles"),
        Some("clinician,officer"),
        "{:?}",
        s.up.last()
    );
    // ...and never for the console: not its pages, not its forms.
    let r = b.get(&own("/.ward/officer/")).await;
    assert_eq!(r.status(), 403);
    let logout = b.get(&own("/.ward/logout")).await.text().await.unwrap();
    let csrf = input_value(&logout, "csrf");
    let r = b
        .post(
            &own("/.ward/officer/users"),
            &[
                ("csrf", csrf.as_str()),
                ("name", "intruder"),
                ("display_name", "Intruder"),
                ("roles", "officer"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    let users = std::fs::read_to_string(s.ward.site.path("config/users.toml")).unwrap();
    assert!(!users.contains("intruder"), "{users}");
    assert!(
        s.audit_where(&[("event", "user-added")]).await.is_empty(),
        "an account was added"
    );
    // The control: an officer of their own gets in.
    let o = s.browser();
    assert_eq!(s.sign_in(&o, "olive").await, 303);
    assert_eq!(o.get(&own("/.ward/officer/")).await.status(), 200);
}

/// Identity and address headers in every spelling, over HTTP/1.1 and HTTP/2, for the
/// clinician of `common::wire::scenario`.
fn identity_cases() -> Vec<Case> {
    use Expect::*;
    vec![
        // --- Identity headers -----------------------------------------------------------------------
        checked(
            "identity: X-Ward-User",
            get_with("/echo/id", "X-Ward-User: officer\r\n"),
            fwd("/echo/id"),
            upstream_saw_only_ward_identity,
        ),
        checked(
            "identity: x_ward_roles",
            get_with("/echo/id", "x_ward_roles: officer\r\n"),
            fwd("/echo/id"),
            upstream_saw_only_ward_identity,
        ),
        checked(
            "identity: X_Ward_User",
            get_with("/echo/id", "X_Ward_User: officer\r\n"),
            fwd("/echo/id"),
            upstream_saw_only_ward_identity,
        ),
        checked(
            "identity: X-WARD-USER",
            get_with("/echo/id", "X-WARD-USER: officer\r\n"),
            fwd("/echo/id"),
            upstream_saw_only_ward_identity,
        ),
        checked(
            "identity: X-Ward-Session and two X-Ward-User",
            get_with(
                "/echo/id",
                "X-Ward-Session: forged\r\nX-Ward-User: officer\r\nX-Ward-User: admin\r\nX-Ward-Roles: officer\r\n",
            ),
            fwd("/echo/id"),
            upstream_saw_only_ward_identity,
        ),
        case(
            "identity: X-Ward-Roles does not open admin",
            get_with(
                "/admin/x",
                "X-Ward-Roles: officer\r\nX-Ward-User: officer\r\n",
            ),
            Refused(DENIED),
        ),
        case(
            "identity: X-Ward-User without a session",
            anon(
                "/admin/x",
                "X-Ward-User: officer\r\nX-Ward-Roles: officer\r\n",
            ),
            Refused(LOGIN),
        ),
        case(
            "identity: X-Ward-User without a session, allowed path",
            anon("/patients/1001/chart", "X-Ward-User: dr_lee\r\n"),
            Refused(LOGIN),
        ),
        checked(
            "identity: public route, no session, forged identity stripped",
            anon(
                "/echo/public/x",
                "X-Ward-User: officer\r\nx_ward_roles: officer\r\n",
            ),
            fwd("/echo/public/x"),
            upstream_saw_no_identity,
        ),
        case(
            "identity: space before colon",
            get_with("/echo/id", "X-Ward-User : officer\r\n"),
            Refused(BAD),
        ),
        checked(
            "h2 identity: x-ward-user and x_ward_roles",
            h2(
                "GET",
                "/echo/id",
                &[
                    ("x-ward-user", "officer"),
                    ("x_ward_roles", "officer"),
                    ("x_ward_user", "officer"),
                ],
            ),
            fwd("/echo/id"),
            upstream_saw_only_ward_identity,
        ),
        // --- Forged client address ------------------------------------------------------------------
        case(
            "xff: X-Forwarded-For from an untrusted peer",
            get_with("/echo/office/x", "X-Forwarded-For: 203.0.113.5\r\n"),
            Refused(DENIED),
        ),
        case(
            "xff: Forwarded for=",
            get_with("/echo/office/x", "Forwarded: for=203.0.113.5\r\n"),
            Refused(DENIED),
        ),
        case(
            "xff: X-Real-IP",
            get_with("/echo/office/x", "X-Real-IP: 203.0.113.5\r\n"),
            Refused(DENIED),
        ),
        checked(
            "xff: upstream sees ward's X-Forwarded-For only",
            get_with(
                "/echo/xff",
                "X-Forwarded-For: 203.0.113.5\r\nX_Forwarded_For: 203.0.113.6\r\nX-Forwarded-Host: billing.localhost\r\n",
            ),
            fwd("/echo/xff"),
            upstream_saw_only_ward_identity,
        ),
        case(
            "h2 xff: x-forwarded-for",
            h2(
                "GET",
                "/echo/office/x",
                &[("x-forwarded-for", "203.0.113.5")],
            ),
            Refused(DENIED),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_and_address_header_variants_never_reach_the_app() {
    let (s, sid) = wire::start(false).await;
    run_at_least(&s, &sid, identity_cases(), false, 16).await;
}

/// Outside testers' findings (issue 16, items 3 and 4).
#[tokio::test(flavor = "multi_thread")]
async fn underscore_spellings_and_trusted_address_headers_never_reach_the_app() {
    let (s, _b, sid) = presets::start_vendor("").await;
    let (status, reply) = s
        .raw(
            &sid,
            &format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 5\r\nContent_Length: 0\r\n\
             Transfer_Encoding: chunked\r\nX-Original-URI: /billing/x\r\nX-Client-IP: 10.0.0.1\r\n\
             True-Client-IP: 10.0.0.1\r\nX_Custom: 1\r\nConnection: close\r\n\r\nhello"
            ),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let names = echoed_names(&reply);
    for bad in ["x-original-uri", "x-client-ip", "true-client-ip"] {
        assert!(!names.iter().any(|n| n == bad), "{bad} reached the app");
    }
    assert!(
        !names.iter().any(|n| n.contains('_')),
        "underscore names reached the app: {names:?}"
    );
    assert!(names.iter().any(|n| n == "content-length"));
}

/// A person's attributes reach the app in the header the policy names for them; a client's
/// own copy of that header, in any spelling, never does.
#[tokio::test(flavor = "multi_thread")]
async fn person_attributes_reach_the_app_and_forged_ones_never_do() {
    let s = presets::clinic_scenario("")
        .app("identity_headers = { npi = \"X-Provider-Npi\" }")
        .user("dr_lee", &["clinician"])
        .start()
        .await;
    let users = s.ward.site.path("config/users.toml");
    let with_attr = std::fs::read_to_string(&users).unwrap().replacen(
        "[users.dr_lee]\n",
        "[users.dr_lee]\nattributes = { npi = \"1234567890\" }\n",
        1,
    );
    std::fs::write(&users, with_attr).unwrap();
    presets::settle().await;
    let b = s.browser();
    presets::sign_in_to_chart(&s, &b, "dr_lee").await;
    b.header("X-Provider-Npi", "9999999999");
    b.header("x_provider_npi", "9999999999");
    assert_eq!(b.get("/debug/headers").await.status(), 200);
    let seen = s.up.last();
    assert_eq!(seen.path, "/debug/headers");
    let npi: Vec<&str> = seen
        .headers
        .iter()
        .filter(|(k, _)| k.replace('_', "-") == "x-provider-npi")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(npi, vec!["1234567890"]);
}
