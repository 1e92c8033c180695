//! Header hygiene between client and upstream: what is removed, what ward sets,
//! and how a legacy app's internal addresses are rewritten to the public one.

use crate::policy::headers::{folded_eq, is_controlled};
use crate::policy::net::{NetSet, normalize};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use std::io::Write as _;
use std::net::IpAddr;

/// Prefix of every cookie ward sets; never forwarded upstream, never set by one.
pub const WARD_COOKIE_PREFIX: &str = "__Host-ward-";

/// Headers that belong to one connection and are never forwarded (RFC 9110 7.6.1).
/// Names, not text: a name given as text is parsed again at every removal.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including any the `Connection` header names.
/// `keep_upgrade` keeps `Connection: upgrade` and `Upgrade` for a WebSocket.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the names finds those present: most messages carry none,
    // and a removal by name costs a hash and a lookup each.
    let mut gone: Vec<HeaderName> = headers
        .keys()
        .filter(|k| HOP_BY_HOP.contains(k))
        .cloned()
        .collect();
    if gone.contains(&header::CONNECTION) {
        let named = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok());
        gone.extend(named);
    }
    for name in gone {
        if keep_upgrade && (name == header::CONNECTION || name == header::UPGRADE) {
            continue;
        }
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Sets `Upgrade: websocket` as the one protocol asked for (see [`wants_websocket`]).
pub fn set_websocket_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// True when the request asks to become a WebSocket (HTTP/1.1 upgrade) and
/// nothing else: `Upgrade` must name `websocket` alone, so no other protocol
/// (`h2c`, say) rides along to the app.
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    let tokens = |name: header::HeaderName| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().ok())
            .flat_map(|v| v.unwrap_or("\0").split(','))
            .map(str::trim)
    };
    let mut upgrade = tokens(header::UPGRADE);
    let websocket_only = matches!(
        (upgrade.next(), upgrade.next()),
        (Some(t), None) if t.eq_ignore_ascii_case("websocket")
    );
    websocket_only && tokens(header::CONNECTION).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

/// Removes `name` in every spelling an upstream might fold together (`_` for `-`).
pub fn strip_spellings(headers: &mut HeaderMap, name: &HeaderName) {
    let want = name.as_str();
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| folded_eq(n.as_str(), want) || folded_eq(want, n.as_str()))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

/// Removes every client header ward controls (see `CONTROLLED`), and every
/// header whose name has an `_`: PHP, WSGI and CGI servers read `_` as `-`, so
/// `Content_Length` or `Transfer_Encoding` beside the real header would give
/// the app a second framing (nginx drops such names by default for the same reason).
pub fn strip_controlled(headers: &mut HeaderMap) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().contains('_') || is_controlled(n))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Joins all `Cookie` headers into one (HTTP/2 clients send several) without ward's own cookies.
pub fn strip_ward_cookies(headers: &mut HeaderMap) {
    // Split as the `cookie` crate's `split_parse` does, but keeping the pairs it cannot read
    // (`flag`, without `=`): those are the app's, unless they could be ward's.
    let mut kept = String::new();
    let pairs = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty() && !is_ward_cookie(pair));
    for pair in pairs {
        if !kept.is_empty() {
            kept.push_str("; ");
        }
        kept.push_str(pair);
    }
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Some(v) = value_of(kept)
    {
        headers.insert(header::COOKIE, v);
    }
}

/// A header value made of `text` itself, not a copy of it; none when `text` is not a
/// valid value.
pub fn value_of(text: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text)).ok()
}

/// Whether a `Cookie` pair or a `Set-Cookie` value names one of ward's cookies.
fn is_ward_cookie(text: &str) -> bool {
    match cookie::Cookie::parse(text) {
        Ok(c) => is_ward_name(c.name()),
        // No `=` (or no name): an app may read the whole text as a name, so judge it as one.
        Err(_) => is_ward_name(text.trim()),
    }
}

fn is_ward_name(name: &str) -> bool {
    name.len() >= WARD_COOKIE_PREFIX.len()
        && name
            .get(..WARD_COOKIE_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(WARD_COOKIE_PREFIX))
}

/// Why the client address could not be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("X-Forwarded-For from a trusted proxy is malformed")]
pub struct BadForwardedFor;

/// The client's address: the peer, or, when the peer is a trusted proxy, the
/// rightmost `X-Forwarded-For` hop that is not itself a trusted proxy.
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &NetSet,
) -> Result<IpAddr, BadForwardedFor> {
    let peer = normalize(peer);
    if trusted.is_empty() || !trusted.contains(peer) {
        return Ok(peer);
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all(X_FORWARDED_FOR) {
        let text = value.to_str().map_err(|_| BadForwardedFor)?;
        hops.extend(text.split(',').map(str::trim));
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        let ip: IpAddr = hop.parse().map_err(|_| BadForwardedFor)?;
        client = normalize(ip);
        if !trusted.contains(client) {
            break;
        }
    }
    Ok(client)
}

/// Sets `Forwarded` (RFC 7239) and `X-Forwarded-For`, `-Proto` and `-Host`
/// for the upstream, all built by ward (the client's were removed before).
pub fn set_forwarded(headers: &mut HeaderMap, client: IpAddr, public_host: &str) {
    // IPv4 over IPv6 is written as IPv4, as it is matched.
    let client = normalize(client);
    // The address written once, in place, for both headers; the names are constants: a header
    // name given as text is copied for every insert.
    let mut buf = [0u8; 64];
    let mut rest = &mut buf[..];
    let written = write!(rest, "{client}").is_ok();
    let n = 64 - rest.len();
    let ip = buf
        .get(..n)
        .filter(|_| written)
        .and_then(|b| std::str::from_utf8(b).ok());
    if let Some(ip) = ip {
        if let Ok(v) = HeaderValue::from_str(ip) {
            headers.insert(X_FORWARDED_FOR, v);
        }
        if let Some(v) = value_of(forwarded_value(ip, client.is_ipv6(), public_host)) {
            headers.insert(header::FORWARDED, v);
        }
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
    if let Ok(v) = HeaderValue::from_str(public_host) {
        headers.insert(X_FORWARDED_HOST, v);
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// `for=…;proto=https;host=…` as RFC 7239 writes it, from the client's address as text: an
/// IPv6 address in brackets and quotes, a host with a port (or anything not a token) quoted.
/// A host that cannot be written is left out rather than sent half-made.
fn forwarded_value(ip: &str, ipv6: bool, public_host: &str) -> String {
    let mut out = String::with_capacity(64 + public_host.len());
    if ipv6 {
        out.push_str("for=\"[");
        out.push_str(ip);
        out.push_str("]\";proto=https");
    } else {
        out.push_str("for=");
        out.push_str(ip);
        out.push_str(";proto=https");
    }
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !public_host.is_empty()
        && !public_host
            .chars()
            .any(|c| c.is_ascii_control() || !c.is_ascii())
    {
        if public_host.chars().all(token) {
            out.push_str(";host=");
            out.push_str(public_host);
        } else {
            out.push_str(";host=\"");
            for c in public_host.chars() {
                if c == '\\' || c == '"' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
    }
    out
}

/// Puts an app's shared credential (`upstream_auth`) on a request: whatever
/// the browser sent under that header, in any spelling, is removed first, so
/// no one can pass their own credential to the app past ward's.
pub fn set_upstream_auth(headers: &mut HeaderMap, name: &HeaderName, value: &HeaderValue) {
    strip_spellings(headers, name);
    headers.insert(name.clone(), value.clone());
}

/// The upstream's own address as a legacy app writes it into absolute URLs.
#[derive(Debug, Clone)]
pub struct Rewriter<'a> {
    /// `http` or `https`.
    pub scheme: &'a str,
    /// Upstream `host[:port]` as configured.
    pub authority: &'a str,
    /// Public `host[:port]` the client used.
    pub public: &'a str,
}

impl Rewriter<'_> {
    /// `url` with the upstream's origin replaced by the public one, if it names the upstream.
    pub fn url(&self, url: &str) -> Option<String> {
        let trimmed = url.trim();
        let rest = if let Some((scheme, rest)) = trimmed.split_once("://") {
            if !scheme.eq_ignore_ascii_case(self.scheme) {
                return None;
            }
            rest
        } else {
            trimmed.strip_prefix("//")?
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if !same_authority(authority, self.authority, self.scheme) {
            return None;
        }
        let tail = if tail.is_empty() { "/" } else { tail };
        Some(format!("https://{}{}", self.public, tail))
    }

    /// Rewrites `Location`, `Content-Location` and `Refresh` in place.
    pub fn redirects(&self, headers: &mut HeaderMap) {
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let new = headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| self.url(v));
            if let Some(v) = new.and_then(|n| HeaderValue::from_str(&n).ok()) {
                headers.insert(name, v);
            }
        }
        let refresh = headers
            .get(header::REFRESH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| self.refresh(v));
        if let Some(v) = refresh.and_then(|n| HeaderValue::from_str(&n).ok()) {
            headers.insert(header::REFRESH, v);
        }
    }

    /// `Refresh: 5; url=http://upstream/x` with the URL rewritten.
    fn refresh(&self, value: &str) -> Option<String> {
        let (delay, rest) = value.split_once(';')?;
        let rest = rest.trim_start();
        let (key, url) = rest.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("url") {
            return None;
        }
        let quoted = url.trim().trim_matches(|c| c == '\'' || c == '"');
        Some(format!("{}; url={}", delay.trim(), self.url(quoted)?))
    }

    /// Rewrites every `Set-Cookie`: drops ones that try to set ward's own cookies,
    /// drops a `Domain` naming the upstream (the cookie then belongs to the public
    /// host only) and marks each `Secure`.
    pub fn cookies(&self, headers: &mut HeaderMap, rewrite_domain: bool) {
        let upstream_host = host_only(self.authority);
        let values: Vec<HeaderValue> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        headers.remove(header::SET_COOKIE);
        for value in values {
            let Ok(text) = value.to_str() else { continue };
            if is_ward_cookie(text.trim()) {
                continue;
            }
            let secure = cookie::Cookie::parse(text).is_ok_and(|c| c.secure() == Some(true));
            // The attributes are edited as written, not re-serialised by the crate, which
            // would drop those it does not know (`Priority`, say) and respell the rest.
            let mut parts: Vec<String> = Vec::new();
            for (i, part) in text.split(';').enumerate() {
                let p = part.trim();
                if i > 0 {
                    let name = p.split('=').next().unwrap_or("").trim();
                    if rewrite_domain && name.eq_ignore_ascii_case("domain") {
                        let domain = p.split_once('=').map(|(_, d)| d.trim()).unwrap_or("");
                        let domain = domain.trim_start_matches('.');
                        if domain.eq_ignore_ascii_case(upstream_host) {
                            continue;
                        }
                    }
                }
                parts.push(p.to_string());
            }
            if !secure {
                parts.push("Secure".into());
            }
            if let Ok(v) = HeaderValue::from_str(&parts.join("; ")) {
                headers.append(header::SET_COOKIE, v);
            }
        }
    }
}

fn host_only(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(authority)
}

fn same_authority(a: &str, b: &str, scheme: &str) -> bool {
    let default = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else {
        "80"
    };
    let split = |x: &str| -> (String, String) {
        let host = host_only(x).to_ascii_lowercase();
        let port = x
            .rsplit_once(':')
            .filter(|(h, _)| !h.ends_with('[') && !x.ends_with(']'))
            .map(|(_, p)| p.to_string())
            .filter(|p| !p.contains(']'))
            .unwrap_or_else(|| default.to_string());
        (host, port)
    };
    split(a) == split(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::net::parse_cidr;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn ward_headers_are_stripped_in_every_spelling() {
        let mut h = map(&[
            ("x-ward-user", "officer"),
            ("X_Ward_User", "officer"),
            ("x_ward_roles", "officer"),
            ("x-ward-session", "s"),
            ("x-original-url", "/admin"),
            ("x_rewrite_url", "/admin"),
            ("x-forwarded-uri", "/admin"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x_forwarded_for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("x-http-method-override", "DELETE"),
            ("X_HTTP_Method", "DELETE"),
            ("x-method-override", "PUT"),
            ("x_script_name", "/admin"),
            ("accept", "text/html"),
            ("x-wardrobe", "kept"),
        ]);
        strip_controlled(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, vec!["accept", "x-wardrobe"]);
    }

    #[test]
    fn underscore_names_and_trusted_address_headers_are_stripped() {
        let mut h = map(&[
            ("content_length", "5"),
            ("Transfer_Encoding", "chunked"),
            ("x_custom_thing", "1"),
            ("x-original-uri", "/admin"),
            ("x-client-ip", "10.0.0.1"),
            ("true-client-ip", "10.0.0.1"),
            ("true_client_ip", "10.0.0.1"),
            ("x-arr-clientcert", "MII"),
            ("remote-user", "officer"),
            ("content-length", "0"),
            ("x-requested-with", "XMLHttpRequest"),
        ]);
        strip_controlled(&mut h);
        let mut left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, vec!["content-length", "x-requested-with"]);
        assert!(is_controlled(&HeaderName::from_static("x_ward_anything")));
        assert!(!is_controlled(&HeaderName::from_static("x-wardrobe")));
        assert!(!is_controlled(&HeaderName::from_static("x-ward")));
    }

    #[test]
    fn websocket_means_websocket_alone() {
        for (upgrade, want) in [
            ("websocket", true),
            ("WebSocket", true),
            ("websocket, h2c", false),
            ("h2c, websocket", false),
            ("websocket,", false),
            ("h2c", false),
        ] {
            let h = map(&[("connection", "keep-alive, Upgrade"), ("upgrade", upgrade)]);
            assert_eq!(wants_websocket(&h), want, "{upgrade}");
        }
        let two = map(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket"),
            ("upgrade", "h2c"),
        ]);
        assert!(!wants_websocket(&two));
        assert!(!wants_websocket(&map(&[("upgrade", "websocket")])));
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("accept", "*/*"),
        ]);
        remove_hop_by_hop(&mut h, false);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, vec!["accept"]);

        let mut ws = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_websocket(&ws));
        remove_hop_by_hop(&mut ws, true);
        assert_eq!(ws.get("upgrade").unwrap(), "websocket");
        assert_eq!(ws.get("connection").unwrap(), "upgrade");
    }

    #[test]
    fn ward_cookies_never_go_upstream() {
        let mut h = map(&[
            ("cookie", "a=1; __Host-ward-session=secret"),
            ("cookie", "__host-WARD-csrf=x;b=2"),
        ]);
        strip_ward_cookies(&mut h);
        assert_eq!(h.get_all("cookie").iter().count(), 1);
        assert_eq!(h.get("cookie").unwrap(), "a=1; b=2");
        let mut only = map(&[("cookie", "__Host-ward-session=secret")]);
        strip_ward_cookies(&mut only);
        assert!(only.get("cookie").is_none());
        // Pairs the cookie crate cannot read: the app's go on, anything like ward's does not.
        let mut odd = map(&[(
            "cookie",
            "flag; __Host-ward-session; =x; \t__HOST-ward-sso = y ;c=\"q;r\"",
        )]);
        strip_ward_cookies(&mut odd);
        assert_eq!(odd.get("cookie").unwrap(), "flag; =x; c=\"q; r\"");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = NetSet::new(vec![parse_cidr("10.0.0.0/8").unwrap()]);
        let h = map(&[("x-forwarded-for", "203.0.113.9, 198.51.100.1, 10.0.0.2")]);
        let lb: IpAddr = "10.0.0.1".parse().unwrap();
        let outsider: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_ip(outsider, &h, &trusted), Ok(outsider));
        assert_eq!(client_ip(outsider, &h, &NetSet::default()), Ok(outsider));
        // Rightmost untrusted hop, not the leftmost a client could forge.
        assert_eq!(
            client_ip(lb, &h, &trusted),
            Ok("198.51.100.1".parse().unwrap())
        );
        assert_eq!(client_ip(lb, &map(&[]), &trusted), Ok(lb));
        assert_eq!(
            client_ip(lb, &map(&[("x-forwarded-for", "junk")]), &trusted),
            Err(BadForwardedFor)
        );
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(
                mapped,
                &map(&[("x-forwarded-for", "::ffff:203.0.113.9")]),
                &trusted
            ),
            Ok("203.0.113.9".parse().unwrap())
        );
    }

    #[test]
    fn forwarded_is_built_by_ward_alone() {
        let mut h = map(&[
            ("forwarded", "for=6.6.6.6;proto=http;host=evil.example"),
            ("Forwarded", "for=unknown"),
        ]);
        strip_controlled(&mut h);
        set_forwarded(&mut h, "203.0.113.9".parse().unwrap(), "ehr.example");
        assert_eq!(h.get_all("forwarded").iter().count(), 1);
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.9;proto=https;host=ehr.example"
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "ehr.example");
        set_forwarded(&mut h, "2001:db8::7".parse().unwrap(), "ehr.example:8443");
        assert_eq!(
            h["forwarded"],
            "for=\"[2001:db8::7]\";proto=https;host=\"ehr.example:8443\""
        );
        assert_eq!(h["x-forwarded-for"], "2001:db8::7");
        // IPv4 over IPv6 is written as IPv4, as it is matched.
        set_forwarded(&mut h, "::ffff:192.0.2.1".parse().unwrap(), "[::1]:8443");
        assert_eq!(
            h["forwarded"],
            "for=192.0.2.1;proto=https;host=\"[::1]:8443\""
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.1");
        assert_eq!(
            forwarded_value("192.0.2.1", false, "a\"b"),
            "for=192.0.2.1;proto=https;host=\"a\\\"b\""
        );
        assert_eq!(
            forwarded_value("192.0.2.1", false, ""),
            "for=192.0.2.1;proto=https"
        );
    }

    #[test]
    fn an_apps_shared_credential_replaces_the_browsers() {
        let mut h = map(&[
            ("authorization", "Basic bWU6bWluZQ=="),
            ("Authorization", "Bearer mine"),
            ("x-api-key", "mine"),
            ("X_Api_Key", "mine"),
            ("accept", "*/*"),
        ]);
        let secret = HeaderValue::from_static("Basic d2FyZDpzaGFyZWQ=");
        set_upstream_auth(&mut h, &header::AUTHORIZATION, &secret);
        assert_eq!(
            h.get_all("authorization").iter().collect::<Vec<_>>(),
            [&secret]
        );
        // The app's other header is left to its own setting.
        assert_eq!(h.get_all("x-api-key").iter().count(), 1);
        let key = HeaderName::from_static("x-api-key");
        set_upstream_auth(&mut h, &key, &HeaderValue::from_static("k-1"));
        assert_eq!(h.get_all("x-api-key").iter().collect::<Vec<_>>(), ["k-1"]);
        assert!(!h.keys().any(|k| k.as_str() == "x_api_key"));
        assert_eq!(h["accept"], "*/*");
    }

    #[test]
    fn internal_urls_become_public() {
        let r = Rewriter {
            scheme: "http",
            authority: "10.0.0.5:8080",
            public: "ehr.example",
        };
        assert_eq!(
            r.url("http://10.0.0.5:8080/x?y=1").as_deref(),
            Some("https://ehr.example/x?y=1")
        );
        assert_eq!(
            r.url("HTTP://10.0.0.5:8080").as_deref(),
            Some("https://ehr.example/")
        );
        assert_eq!(
            r.url("//10.0.0.5:8080/a").as_deref(),
            Some("https://ehr.example/a")
        );
        assert_eq!(r.url("http://10.0.0.5/x"), None);
        assert_eq!(r.url("http://10.0.0.5:8080.evil/x"), None);
        assert_eq!(r.url("https://10.0.0.5:8080/x"), None);
        assert_eq!(r.url("/relative"), None);
        assert_eq!(r.url("http://elsewhere.example/"), None);
        let d = Rewriter {
            scheme: "http",
            authority: "backend",
            public: "p.example:8443",
        };
        assert_eq!(
            d.url("http://backend:80/a").as_deref(),
            Some("https://p.example:8443/a")
        );

        let mut h = map(&[
            ("location", "http://10.0.0.5:8080/login"),
            ("content-location", "http://10.0.0.5:8080/doc"),
            ("refresh", "5; url=http://10.0.0.5:8080/"),
        ]);
        r.redirects(&mut h);
        assert_eq!(h.get("location").unwrap(), "https://ehr.example/login");
        assert_eq!(
            h.get("content-location").unwrap(),
            "https://ehr.example/doc"
        );
        assert_eq!(h.get("refresh").unwrap(), "5; url=https://ehr.example/");
    }

    #[test]
    fn upstream_cookies_are_made_safe() {
        let r = Rewriter {
            scheme: "http",
            authority: "10.0.0.5:8080",
            public: "ehr.example",
        };
        let mut h = map(&[
            ("set-cookie", "SID=1; Domain=10.0.0.5; Path=/; HttpOnly"),
            ("set-cookie", "__Host-ward-session=forged; Path=/"),
            ("set-cookie", "T=2; domain=.example.org; secure"),
        ]);
        r.cookies(&mut h, true);
        let got: Vec<&str> = h
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(
            got,
            vec![
                "SID=1; Path=/; HttpOnly; Secure",
                "T=2; domain=.example.org; secure"
            ]
        );
    }
}
