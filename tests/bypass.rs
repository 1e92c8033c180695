//! End to end: requests built to reach a route the policy denies, or to smuggle
//! an identity, sent over real TLS to a real ward in front of the sample EHR.
//!
//! HTTP/1.1 variants go out as raw bytes (nothing normalizes them first);
//! HTTP/2 variants go through hyper's low-level client, which lets a test set
//! any `:path`, `:authority` and headers that `http` can represent. The sample
//! EHR answers every request with `x-upstream-target` (the exact target it
//! received), so for every variant the test checks both what ward answered and
//! what, if anything, reached the upstream:
//! - a refusal never carries `x-upstream-target`;
//! - a forwarded request reached the upstream with exactly the canonical path
//!   ward decided on (cross-checked against ward's own request log line);
//! - no response at all carries a target under a denied prefix.

mod common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::time::{Duration, Instant};
use ward::auth::totp::code_at;

const PW: &str = "maple orbit candle harbor 42";
const USER: &str = "dr_lee";

/// The suite's policy: `/admin/**` officer, `/billing/**` biller, `/patients/**`,
/// `/` and everything else clinician, `/public/**` and `/logo.png` public, plus
/// `/echo/…` routes that show what the upstream received.
fn policy(upstream: &str, case_insensitive: bool) -> String {
    format!(
        r#"practice = "Test Clinic"
{{server}}
[networks]
office = ["203.0.113.0/24"]

[roles]
clinician = {{}}
biller = {{}}
officer = {{}}

[storage]
users = "config/users.toml"
state = "state"

[[apps]]
name = "ehr"
upstream = "{upstream}"
case_insensitive = {case_insensitive}

[[routes]]
app = "ehr"
path = "/**"
allow_roles = ["clinician"]

[[routes]]
app = "ehr"
path = "/"
allow_roles = ["clinician"]

[[routes]]
app = "ehr"
path = "/patients/**"
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
path = "/public/**"
allow = "public"

[[routes]]
app = "ehr"
path = "/logo.png"
allow = "public"

[[routes]]
app = "ehr"
path = "/echo/public/**"
allow = "public"

[[routes]]
app = "ehr"
path = "/echo/office/**"
allow_roles = ["clinician"]
from = ["office"]

[[routes]]
app = "ehr"
path = "/echo/readonly/**"
allow_roles = ["clinician"]
methods = ["GET"]
"#
    )
}

// ---------------------------------------------------------------------------------------------
// Starting ward and signing in.

async fn password_step(b: &Browser) -> reqwest::Response {
    let form = b
        .get("/.ward/login?return=/patients/1001/chart")
        .await
        .text()
        .await
        .unwrap();
    let csrf = input_value(&form, "csrf");
    b.post(
        "/.ward/login",
        &[
            ("csrf", &csrf),
            ("return", "/patients/1001/chart"),
            ("username", USER),
            ("password", PW),
        ],
    )
    .await
}

async fn code_step(b: &Browser, code: &str) -> reqwest::Response {
    let form = b.get("/.ward/mfa").await.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    b.post("/.ward/mfa", &[("csrf", &csrf), ("code", code)])
        .await
}

/// A ward in front of `ehr` with a signed-in clinician; returns it and the session cookie.
async fn start(ehr: &Ehr, case_insensitive: bool) -> (Ward, String) {
    let site = Site::new();
    let secret = enrolled_user(&site, USER, &["clinician"], PW, None, None);
    let config = site.path("ward.toml");
    std::fs::write(
        &config,
        policy(&ehr.url(), case_insensitive).replace("{server}", &server_section(&site)),
    )
    .unwrap();
    let ward = Ward::start_in(site, config);
    let b = Browser::new(&ward);
    let resp = password_step(&b).await;
    assert_eq!(resp.status(), 303, "password step");
    assert_eq!(resp.headers()["location"], "/.ward/mfa");
    let code = code_at(&secret, unix_now());
    let resp = code_step(&b, &code).await;
    assert_eq!(resp.status(), 303, "{}", resp.text().await.unwrap());
    let sid = b.cookie("__Host-ward-session").expect("session cookie");
    (ward, sid)
}

// ---------------------------------------------------------------------------------------------
// The table.

/// How a variant goes on the wire.
enum Wire {
    /// Raw HTTP/1.1 bytes; `{host}` becomes `localhost:PORT`, `{sid}` the session cookie
    /// and `{bodylen}` the length of everything after the first blank line.
    H1(Vec<u8>),
    /// Like `H1`, then the client ends its side of the stream (TLS close_notify).
    H1Eof(Vec<u8>),
    /// An HTTP/2 request through hyper's client.
    H2(H2),
}

/// An HTTP/2 request. `uri` is absolute (`https://{host}/…`, which becomes `:scheme`,
/// `:authority` and `:path`); `cookie` adds the clinician's session.
struct H2 {
    method: &'static str,
    uri: String,
    headers: Vec<(&'static str, &'static str)>,
    cookie: bool,
}

/// What must happen.
enum Expect {
    /// Every response has one of these statuses and none came from the upstream.
    Refused(&'static [u16]),
    /// One response, from the upstream, which received exactly this target.
    Forwarded(String),
    /// Refused with one of these statuses, or forwarded with exactly this target.
    RefusedOr(&'static [u16], String),
    /// Several requests on one connection: the upstream received exactly these
    /// targets, in order; every other response is a refusal.
    Targets(Vec<String>),
    /// Answered by ward's own pages; nothing reached the upstream.
    WardPage,
    /// The HTTP/2 client cannot express this request (covered over HTTP/1.1).
    Unsendable,
}

/// An extra check on the responses (for example, what the upstream saw).
type Check = fn(&[Reply]) -> Result<(), String>;

struct Case {
    name: String,
    send: Wire,
    expect: Expect,
    check: Option<Check>,
}

/// Statuses for a request refused before any decision.
const BAD: &[u16] = &[400];
/// The policy refused it.
const DENIED: &[u16] = &[403];
/// Sent to sign in (a page load without a session).
const LOGIN: &[u16] = &[303];
/// Too large to parse.
const TOO_LONG: &[u16] = &[400, 414, 431];
/// Refused at the HTTP layer or by ward: anything 4xx that is not from the upstream.
const ANY_REFUSAL: &[u16] = &[400, 403, 404, 405, 411, 413, 414, 431, 501];

fn case(name: impl Into<String>, send: Wire, expect: Expect) -> Case {
    Case {
        name: name.into(),
        send,
        expect,
        check: None,
    }
}

fn checked(name: impl Into<String>, send: Wire, expect: Expect, check: Check) -> Case {
    Case {
        check: Some(check),
        ..case(name, send, expect)
    }
}

/// A GET for `target` with the clinician's session and `extra` header lines.
fn get_with(target: &str, extra: &str) -> Wire {
    get_bytes(target.as_bytes(), extra, true)
}

fn get(target: &str) -> Wire {
    get_with(target, "")
}

/// A GET with no session at all.
fn anon(target: &str, extra: &str) -> Wire {
    get_bytes(target.as_bytes(), extra, false)
}

fn get_bytes(target: &[u8], extra: &str, session: bool) -> Wire {
    let mut out = b"GET ".to_vec();
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\n");
    if session {
        out.extend_from_slice(b"Cookie: __Host-ward-session={sid}\r\n");
    }
    out.extend_from_slice(extra.as_bytes());
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    Wire::H1(out)
}

/// Raw request text, sent as is (after placeholder substitution).
fn raw(text: &str) -> Wire {
    Wire::H1(text.as_bytes().to_vec())
}

fn h2(method: &'static str, path: &str, headers: &[(&'static str, &'static str)]) -> Wire {
    Wire::H2(H2 {
        method,
        uri: format!("https://{{host}}{path}"),
        headers: headers.to_vec(),
        cookie: true,
    })
}

fn h2get(path: &str) -> Wire {
    h2("GET", path, &[])
}

fn fwd(target: &str) -> Expect {
    Expect::Forwarded(target.to_string())
}

/// The standard session lines for raw requests.
const SESSION: &str = "Host: {host}\r\nCookie: __Host-ward-session={sid}\r\n";

fn cases() -> Vec<Case> {
    use Expect::*;
    let mut c = vec![
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
        // --- NUL, control bytes, CRLF injection ---------------------------------------------------
        case(
            "ctl: literal NUL",
            get_bytes(b"/admin\x00/x", "", true),
            Refused(BAD),
        ),
        case("ctl: %00", get("/patients%00/../admin"), Refused(BAD)),
        case(
            "ctl: %0d%0a header injection",
            get("/patients/1001/chart%0d%0aX-Ward-User:%20officer"),
            Refused(BAD),
        ),
        case(
            "ctl: %0a Host injection",
            get("/patients%0aHost:%20billing"),
            Refused(BAD),
        ),
        case(
            "ctl: literal tab",
            get_bytes(b"/admin\t/x", "", true),
            Refused(BAD),
        ),
        case(
            "ctl: literal DEL",
            get_bytes(b"/patients/\x7f/../../admin", "", true),
            Refused(BAD),
        ),
        case("ctl: %09", get("/patients%09/../admin"), Refused(BAD)),
        case("ctl: %7f", get("/patients/%7f/../../admin"), Refused(BAD)),
        checked(
            "ctl: CRLF in the query stays encoded and injects nothing",
            get("/echo/q?q=%0d%0aX-Ward-User:%20officer"),
            fwd("/echo/q?q=%0d%0aX-Ward-User:%20officer"),
            upstream_saw_only_ward_identity,
        ),
        case("h2 ctl: %00", h2get("/patients%00/../admin"), Refused(BAD)),
        case(
            "h2 ctl: %0d%0a",
            h2get("/x%0d%0aX-Ward-User:%20officer"),
            Refused(BAD),
        ),
        case("h2 ctl: literal NUL", h2get("/admin\u{0}/x"), Unsendable),
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
        // --- Absolute-form URLs ---------------------------------------------------------------------
        case(
            "absolute: other host to admin",
            raw(&format!(
                "GET https://evil.example/admin/x HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "absolute: other host to an allowed path",
            raw(&format!(
                "GET https://evil.example/patients/1001/chart HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "absolute: same host still decided on the path",
            raw(&format!(
                "GET https://{{host}}/admin/x HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(DENIED),
        ),
        case(
            "absolute: same host, encoded dots",
            raw(&format!(
                "GET http://{{host}}/patients/%2e%2e/admin HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(DENIED),
        ),
        case(
            "absolute: userinfo",
            raw(&format!(
                "GET https://officer@{{host}}/patients/1001/chart HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "absolute: other port",
            raw(&format!(
                "GET https://localhost:1/patients/1001/chart HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "absolute: no Host header, still decided on the path",
            raw(
                "GET https://evil.example/admin/x HTTP/1.1\r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n",
            ),
            Refused(&[400, 403]),
        ),
        // --- Host conflicts -------------------------------------------------------------------------
        case(
            "host: two identical Host headers",
            raw(&format!(
                "GET /patients/1001/chart HTTP/1.1\r\n{SESSION}Host: {{host}}\r\nConnection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "host: two different Host headers",
            raw(&format!(
                "GET /patients/1001/chart HTTP/1.1\r\n{SESSION}Host: billing.localhost\r\nConnection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "host: comma list",
            raw(
                "GET /patients/1001/chart HTTP/1.1\r\nHost: {host}, billing.localhost\r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n",
            ),
            Refused(BAD),
        ),
        case(
            "host: empty",
            raw(
                "GET /patients/1001/chart HTTP/1.1\r\nHost: \r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n",
            ),
            Refused(BAD),
        ),
        case(
            "host: userinfo",
            raw(
                "GET /patients/1001/chart HTTP/1.1\r\nHost: officer@{host}\r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n",
            ),
            Refused(BAD),
        ),
        case(
            "host: none on HTTP/1.0",
            raw("GET /patients/1001/chart HTTP/1.0\r\nCookie: __Host-ward-session={sid}\r\n\r\n"),
            Refused(BAD),
        ),
        case(
            "h2 host: :authority vs Host",
            h2(
                "GET",
                "/patients/1001/chart",
                &[("host", "billing.localhost")],
            ),
            Refused(BAD),
        ),
        case(
            "h2 body: content-length longer than the data",
            h2("POST", "/echo/a", &[("content-length", "100")]),
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
        // --- Methods ----------------------------------------------------------------------------------
        case(
            "method: get",
            raw(&format!(
                "get /admin/x HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "method: GeT on an allowed path",
            raw(&format!(
                "GeT /patients/1001/chart HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "method: TRACE",
            raw(&format!(
                "TRACE /patients/1001/chart HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "method: CONNECT",
            raw(&format!(
                "CONNECT {{host}} HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "method: FOO on admin",
            raw(&format!(
                "FOO /admin/x HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(DENIED),
        ),
        checked(
            "method: FOO on an allowed path is forwarded as FOO",
            raw(&format!(
                "FOO /echo/m HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            fwd("/echo/m"),
            upstream_saw_foo,
        ),
        case(
            "method: POST on a GET-only route",
            raw(&format!(
                "POST /echo/readonly/x HTTP/1.1\r\n{SESSION}Content-Length: 0\r\nConnection: close\r\n\r\n"
            )),
            Refused(DENIED),
        ),
        case(
            "method: OPTIONS *",
            raw(&format!(
                "OPTIONS * HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "target: GET *",
            raw(&format!(
                "GET * HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "target: authority-form on GET",
            raw(&format!(
                "GET {{host}} HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "target: HTTP/0.9 style",
            raw("GET /admin/x\r\n\r\n"),
            Refused(BAD),
        ),
        case(
            "target: too many headers",
            get_with("/admin/x", &"X-Ward-User: officer\r\n".repeat(150)),
            Refused(&[400, 431]),
        ),
        case(
            "h2 method: get",
            h2("get", "/patients/1001/chart", &[]),
            Refused(BAD),
        ),
        case(
            "h2 method: TRACE",
            h2("TRACE", "/patients/1001/chart", &[]),
            Refused(BAD),
        ),
        case(
            "h2 method: FOO on admin",
            h2("FOO", "/admin/x", &[]),
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
    ];
    c.extend(smuggling_cases());
    c
}

/// HTTP/1.1 framing tricks. The smuggled part always asks for `/admin/…`; the
/// upstream must only ever see the `/echo/…` requests.
fn smuggling_cases() -> Vec<Case> {
    use Expect::*;
    let admin = "GET /admin/x HTTP/1.1\r\nHost: {host}\r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n";
    let targets = |t: &[&str]| Targets(t.iter().map(|s| s.to_string()).collect());
    vec![
        case(
            "smuggle: CL then TE",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: TE then CL covering the smuggled request",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: chunked\r\nContent-Length: {{bodylen}}\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: CL.TE classic, chunk hides the request",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: two different Content-Length",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 0\r\nContent-Length: {{bodylen}}\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: two equal Content-Length, then a pipelined admin request",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello{admin}"
            )),
            targets(&["/echo/a"]),
        ),
        case(
            "smuggle: Content-Length list",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 5, 0\r\n\r\nhello{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: TE chunked, identity",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: chunked, identity\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: TE identity, chunked",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n{admin}"
            )),
            targets(&["/echo/a"]),
        ),
        case(
            "smuggle: TE xchunked",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: TE with a space before the colon",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: obs-fold continuation of Transfer-Encoding",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: identity\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: obs-fold continuation of X-Ward-User",
            raw(&format!(
                "GET /echo/a HTTP/1.1\r\n{SESSION}X-Ward-User: dr_lee\r\n officer\r\nConnection: close\r\n\r\n"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: obs-fold continuation of Host",
            raw(
                "GET /admin/x HTTP/1.1\r\nHost: billing.localhost\r\n\t{host}\r\nCookie: __Host-ward-session={sid}\r\nConnection: close\r\n\r\n",
            ),
            Refused(BAD),
        ),
        case(
            "smuggle: TE on HTTP/1.0",
            raw(&format!(
                "POST /echo/a HTTP/1.0\r\n{SESSION}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: negative Content-Length",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: -1\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: Content-Length with a plus sign",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: +5\r\n\r\nhello{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: Transfer-Encoding split over two lines",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: chunk size overflow",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: body shorter than Content-Length, then end of stream",
            Wire::H1Eof(
                format!("POST /echo/a HTTP/1.1\r\n{SESSION}Content-Length: 500\r\n\r\n{admin}")
                    .into_bytes(),
            ),
            Refused(BAD),
        ),
        case(
            "smuggle: pipelined allowed, admin, allowed",
            raw(&format!(
                "GET /echo/a HTTP/1.1\r\n{SESSION}\r\nGET /admin/x HTTP/1.1\r\n{SESSION}\r\nGET /echo/b HTTP/1.1\r\n{SESSION}Connection: close\r\n\r\n"
            )),
            targets(&["/echo/a", "/echo/b"]),
        ),
        case(
            "smuggle: a GET with a body is refused (CL.0 on pooled connections)",
            raw(&format!(
                "GET /echo/a HTTP/1.1\r\n{SESSION}Content-Length: {{bodylen}}\r\nConnection: close\r\n\r\n{admin}"
            )),
            Refused(BAD),
        ),
        case(
            "smuggle: bare LF line ends",
            raw(
                "GET /admin/x HTTP/1.1\nHost: {host}\nCookie: __Host-ward-session={sid}\nConnection: close\n\n",
            ),
            Refused(&[400, 403]),
        ),
        case(
            "smuggle: chunked body with bare LF framing",
            raw(&format!(
                "POST /echo/a HTTP/1.1\r\n{SESSION}Transfer-Encoding: chunked\r\n\r\n0\n\n{admin}"
            )),
            Refused(BAD),
        ),
        checked(
            "smuggle: h2c upgrade is not passed on",
            raw(&format!(
                "GET /echo/h2c HTTP/1.1\r\n{SESSION}Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\r\n"
            )),
            fwd("/echo/h2c"),
            upstream_saw_no_upgrade,
        ),
        case(
            "smuggle: websocket upgrade to admin",
            raw(&format!(
                "GET /admin/x HTTP/1.1\r\n{SESSION}Upgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )),
            Refused(DENIED),
        ),
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

// ---------------------------------------------------------------------------------------------
// Checks on what the upstream saw (the sample EHR's `/echo/…` JSON).

fn echoed(replies: &[Reply]) -> Result<Vec<(String, String)>, String> {
    let r = replies.first().ok_or("no response")?;
    let json: serde_json::Value = serde_json::from_slice(&r.body)
        .map_err(|e| format!("echo body is not JSON ({e}): {}", r.body_text()))?;
    Ok(seen_headers(&json))
}

/// Exactly one `X-Ward-User` (the clinician), `X-Ward-Roles` and `X-Ward-Session`,
/// no other `X-Ward-*` or path-override header in any spelling, and ward's own
/// `X-Forwarded-For`.
fn upstream_saw_only_ward_identity(replies: &[Reply]) -> Result<(), String> {
    let seen = echoed(replies)?;
    let count = |n: &str| {
        seen.iter()
            .filter(|(k, _)| k.replace('_', "-").eq_ignore_ascii_case(n))
            .count()
    };
    let value = |n: &str| {
        seen.iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    for name in [
        "x-ward-user",
        "x-ward-roles",
        "x-ward-session",
        "x-forwarded-for",
        // ward's own (RFC 7239, #11.6); a client's never passes.
        "forwarded",
    ] {
        if count(name) != 1 {
            return Err(format!(
                "upstream saw {name} {} times: {seen:?}",
                count(name)
            ));
        }
    }
    if value("x-ward-user") != USER || value("x-ward-roles") != "clinician" {
        return Err(format!("upstream saw a forged identity: {seen:?}"));
    }
    if value("x-ward-session") == "forged" {
        return Err(format!("forged session id passed: {seen:?}"));
    }
    if value("x-forwarded-for") != "127.0.0.1" {
        return Err(format!("forged client address passed: {seen:?}"));
    }
    if value("x-forwarded-host").contains("billing") {
        return Err(format!("forged X-Forwarded-Host passed: {seen:?}"));
    }
    if !value("forwarded").starts_with("for=127.0.0.1;proto=https;")
        || value("forwarded").contains("billing")
    {
        return Err(format!("forged Forwarded passed: {seen:?}"));
    }
    let forbidden = [
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-uri",
        "x-forwarded-prefix",
        "x-real-ip",
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-script-name",
    ];
    for (k, v) in &seen {
        let folded = k.replace('_', "-").to_ascii_lowercase();
        if forbidden.contains(&folded.as_str())
            || (folded.starts_with("x-ward-") && k.contains('_'))
        {
            return Err(format!("upstream saw {k}: {v}"));
        }
        if v.contains("officer") {
            return Err(format!("a forged value reached the upstream in {k}: {v}"));
        }
    }
    Ok(())
}

/// Nobody signed in: no identity header of any spelling reaches the upstream.
fn upstream_saw_no_identity(replies: &[Reply]) -> Result<(), String> {
    let seen = echoed(replies)?;
    match seen.iter().find(|(k, _)| {
        k.replace('_', "-")
            .to_ascii_lowercase()
            .starts_with("x-ward-")
    }) {
        Some(h) => Err(format!("upstream saw {h:?}")),
        None => Ok(()),
    }
}

fn upstream_saw_foo(replies: &[Reply]) -> Result<(), String> {
    let r = replies.first().ok_or("no response")?;
    let json: serde_json::Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
    match json["method"].as_str() {
        Some("FOO") => Ok(()),
        other => Err(format!("upstream saw method {other:?}")),
    }
}

fn upstream_saw_no_upgrade(replies: &[Reply]) -> Result<(), String> {
    let r = replies.first().ok_or("no response")?;
    if r.status == 101 {
        return Err("the upstream switched protocols".into());
    }
    let seen = echoed(replies)?;
    match seen
        .iter()
        .find(|(k, _)| matches!(k.as_str(), "upgrade" | "http2-settings" | "connection"))
    {
        Some(h) => Err(format!("upstream saw {h:?}")),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Sending and reading.

/// One response as the client saw it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn upstream_target(&self) -> Option<&str> {
        self.header("x-upstream-target")
    }

    fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body)
            .chars()
            .take(300)
            .collect()
    }
}

/// What came back.
#[derive(Debug)]
enum Outcome {
    Replies(Vec<Reply>),
    /// HTTP/2: the server reset the stream or connection instead of answering.
    Reset(String),
    /// HTTP/2: the client refused to build or send it.
    Unsendable(String),
}

fn substitute(bytes: &[u8], host: &str, sid: &str) -> Vec<u8> {
    let out = substitute_names(bytes, host, sid);
    let Some(head_end) = find(&out, b"\r\n\r\n") else {
        return out;
    };
    let body_len = (out.len() - head_end - 4).to_string();
    let Some(at) = find(&out[..head_end], b"{bodylen}") else {
        return out;
    };
    let mut fixed = out[..at].to_vec();
    fixed.extend_from_slice(body_len.as_bytes());
    fixed.extend_from_slice(&out[at + b"{bodylen}".len()..]);
    fixed
}

fn substitute_names(bytes: &[u8], host: &str, sid: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 64);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"{host}") {
            out.extend_from_slice(host.as_bytes());
            i += 6;
        } else if bytes[i..].starts_with(b"{sid}") {
            out.extend_from_slice(sid.as_bytes());
            i += 5;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

async fn send_h1(ward: &Ward, request: &[u8], eof: bool) -> Outcome {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = raw_tls(ward, &[b"http/1.1"]).await;
    // The server may answer and close before reading everything (a refused head).
    let _ = s.write_all(request).await;
    let _ = s.flush().await;
    if eof {
        let _ = s.shutdown().await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    Outcome::Replies(parse_h1(&out))
}

/// Splits an HTTP/1.1 byte stream into responses.
fn parse_h1(mut buf: &[u8]) -> Vec<Reply> {
    let mut out = Vec::new();
    while let Some(end) = find(buf, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf = &buf[end + 4..];
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body = if (100..200).contains(&status) || status == 204 || status == 304 {
            Vec::new()
        } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let n = len.min(buf.len());
            let b = buf[..n].to_vec();
            buf = &buf[n..];
            b
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let Some(eol) = find(buf, b"\r\n") else {
                    buf = &[];
                    break;
                };
                let size_text = String::from_utf8_lossy(&buf[..eol]).into_owned();
                let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                    .unwrap_or(0);
                buf = &buf[eol + 2..];
                if size == 0 {
                    // Trailers end with an empty line.
                    let end = find(buf, b"\r\n").map(|i| i + 2).unwrap_or(buf.len());
                    buf = &buf[end..];
                    break;
                }
                let n = size.min(buf.len());
                body.extend_from_slice(&buf[..n]);
                buf = &buf[(n + 2).min(buf.len())..];
            }
            body
        } else {
            let b = buf.to_vec();
            buf = &[];
            b
        };
        out.push(Reply {
            status,
            headers,
            body,
        });
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn send_h2(ward: &Ward, req: &H2, host: &str, sid: &str) -> Outcome {
    let uri = req.uri.replace("{host}", host);
    let mut builder = http::Request::builder()
        .method(req.method)
        .uri(uri.as_str());
    for (k, v) in &req.headers {
        builder = builder.header(*k, *v);
    }
    if req.cookie {
        builder = builder.header("cookie", format!("__Host-ward-session={sid}"));
    }
    let request = match builder.body(Empty::<Bytes>::new()) {
        Ok(r) => r,
        Err(e) => return Outcome::Unsendable(e.to_string()),
    };
    let tls = raw_tls(ward, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let sent = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request)).await;
    let resp = match sent {
        Err(_) => return Outcome::Reset("timed out".into()),
        Ok(Err(e)) if e.is_user() => return Outcome::Unsendable(e.to_string()),
        Ok(Err(e)) => return Outcome::Reset(format!("{e:?}")),
        Ok(Ok(resp)) => resp,
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match resp.into_body().collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => return Outcome::Reset(format!("body: {e}")),
    };
    Outcome::Replies(vec![Reply {
        status,
        headers,
        body,
    }])
}

/// True when `path` (no query) is `prefix` or below it.
fn under(path: &str, prefix: &str, fold: bool) -> bool {
    let (p, x) = if fold {
        (path.to_ascii_lowercase(), prefix.to_ascii_lowercase())
    } else {
        (path.to_string(), prefix.to_string())
    };
    p == x || p.starts_with(&format!("{x}/"))
}

/// Checks one outcome against its expectation; `Err` says what went wrong.
fn judge(ward: &Ward, case: &Case, outcome: &Outcome, fold: bool) -> Result<&'static str, String> {
    let replies = match outcome {
        Outcome::Replies(r) => r,
        Outcome::Unsendable(why) => {
            return match case.expect {
                Expect::Unsendable => Ok("unsendable over h2 (covered over HTTP/1.1)"),
                _ => Err(format!("the h2 client could not send it: {why}")),
            };
        }
        Outcome::Reset(why) => {
            return match case.expect {
                Expect::Refused(_) => Ok("reset by ward's HTTP/2 layer"),
                _ => Err(format!("stream reset: {why}")),
            };
        }
    };
    if matches!(case.expect, Expect::Unsendable) {
        return Err(format!(
            "expected the h2 client to refuse it, but it was sent: {replies:?}"
        ));
    }
    if replies.is_empty() {
        return Err("no response at all".into());
    }
    // Whatever the expectation: no 5xx, nothing under a denied prefix upstream.
    for r in replies {
        if r.status >= 500 || r.status == 0 {
            return Err(format!("status {}: {}", r.status, r.body_text()));
        }
        if let Some(t) = r.upstream_target() {
            let path = t.split('?').next().unwrap_or(t);
            for denied in ["/admin", "/billing", "/.ward"] {
                if under(path, denied, fold) {
                    return Err(format!("the upstream received {t:?}"));
                }
            }
        }
    }
    let refused = |r: &Reply, allowed: &[u16]| -> Result<(), String> {
        if let Some(t) = r.upstream_target() {
            return Err(format!(
                "status {} but the upstream received {t:?}",
                r.status
            ));
        }
        if !allowed.contains(&r.status) {
            return Err(format!(
                "status {}, want one of {allowed:?}: {}",
                r.status,
                r.body_text()
            ));
        }
        if r.status == 303
            && !r
                .header("location")
                .is_some_and(|l| l.starts_with("/.ward/login"))
        {
            return Err(format!(
                "303 elsewhere than sign-in: {:?}",
                r.header("location")
            ));
        }
        Ok(())
    };
    let forwarded = |r: &Reply, want: &str| -> Result<(), String> {
        match r.upstream_target() {
            None => Err(format!(
                "not forwarded (status {}): {}",
                r.status,
                r.body_text()
            )),
            Some(t) if t != want => Err(format!("upstream received {t:?}, want {want:?}")),
            Some(t) => same_as_ward_decided(ward, r, t),
        }
    };
    match &case.expect {
        Expect::Refused(allowed) => {
            for r in replies {
                refused(r, allowed)?;
            }
        }
        Expect::Forwarded(want) => {
            if replies.len() != 1 {
                return Err(format!("{} responses: {replies:?}", replies.len()));
            }
            forwarded(&replies[0], want)?;
        }
        Expect::RefusedOr(allowed, want) => {
            if replies.len() != 1 {
                return Err(format!("{} responses: {replies:?}", replies.len()));
            }
            let r = &replies[0];
            if r.upstream_target().is_some() {
                forwarded(r, want)?;
            } else {
                refused(r, allowed)?;
            }
        }
        Expect::Targets(want) => {
            let got: Vec<&str> = replies.iter().filter_map(|r| r.upstream_target()).collect();
            if got != *want {
                return Err(format!("upstream received {got:?}, want {want:?}"));
            }
            for r in replies {
                match r.upstream_target() {
                    Some(t) => same_as_ward_decided(ward, r, t)?,
                    None => refused(r, ANY_REFUSAL)?,
                }
            }
        }
        Expect::WardPage => {
            for r in replies {
                if let Some(t) = r.upstream_target() {
                    return Err(format!("ward's page reached the upstream as {t:?}"));
                }
                if ![200, 303, 404, 405].contains(&r.status) {
                    return Err(format!("status {}", r.status));
                }
            }
        }
        Expect::Unsendable => unreachable!(),
    }
    if let Some(check) = case.check {
        check(replies)?;
    }
    Ok("")
}

/// The path ward recorded for this request (by `x-request-id`, in the audit
/// trail) is the path the upstream received.
fn same_as_ward_decided(ward: &Ward, r: &Reply, target: &str) -> Result<(), String> {
    let id = r.header("x-request-id").ok_or("no x-request-id")?;
    let path = target.split('?').next().unwrap_or(target);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let trail = audit_text(&ward.site);
        let line = trail
            .lines()
            .find(|l| l.contains(&format!("\"request_id\":\"{id}\"")));
        if let Some(line) = line {
            let decided = json_field(line, "path");
            let decision = json_field(line, "decision");
            if decided != path || decision != "allow" {
                return Err(format!(
                    "ward decided {decision} on {decided:?} but the upstream received {target:?}"
                ));
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("no audit record for request {id}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn send(ward: &Ward, wire: &Wire, host: &str, sid: &str) -> Outcome {
    match wire {
        Wire::H1(bytes) => send_h1(ward, &substitute(bytes, host, sid), false).await,
        Wire::H1Eof(bytes) => send_h1(ward, &substitute(bytes, host, sid), true).await,
        Wire::H2(req) => send_h2(ward, req, host, sid).await,
    }
}

async fn run(ward: &Ward, sid: &str, cases: Vec<Case>, fold: bool) -> usize {
    let host = format!("localhost:{}", ward.port());
    let mut failures = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for case in &cases {
        assert!(
            names.insert(case.name.clone()),
            "duplicate case {}",
            case.name
        );
        let outcome = send(ward, &case.send, &host, sid).await;
        match judge(ward, case, &outcome, fold) {
            Ok(note) if !note.is_empty() => eprintln!("{}: {note}", case.name),
            Ok(_) => {}
            Err(why) => failures.push(format!("{}: {why}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} variants failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    cases.len()
}

#[tokio::test(flavor = "multi_thread")]
async fn bypass_variants_are_refused_or_forwarded_canonical() {
    let ehr = Ehr::start();
    let (ward, sid) = start(&ehr, false).await;
    // The session works, so a refusal below is the policy's, not a broken sign-in.
    let host = format!("localhost:{}", ward.port());
    let ok = send(&ward, &get("/patients/1001/chart"), &host, &sid).await;
    let Outcome::Replies(r) = ok else {
        panic!("{ok:?}")
    };
    assert_eq!(r[0].status, 200, "{}", r[0].body_text());
    let n = run(&ward, &sid, cases(), false).await;
    assert!(n >= 60, "only {n} variants");
}

#[tokio::test(flavor = "multi_thread")]
async fn case_insensitive_app_is_matched_ignoring_case() {
    let ehr = Ehr::start();
    let (ward, sid) = start(&ehr, true).await;
    run(&ward, &sid, case_insensitive_cases(), true).await;
}
