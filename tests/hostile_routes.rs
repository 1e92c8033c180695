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
        emergency: false,
        vendor: false,
        device_required: false,
        export_grants: Vec::new(),
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
