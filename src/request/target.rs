//! What a request asks for: its method, host and canonical path, or why the
//! request is too ambiguous to decide on (it is then refused with 400).

use crate::path::{self, PathError};
use crate::policy::ServerSettings;
use http::{HeaderMap, Method, Uri, header};

/// The parts of a request target that decisions are made on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host, lower case, without port.
    pub host: String,
    /// `host[:port]` as the client wrote it (lower case), for public URLs.
    pub authority: String,
    /// The canonical path.
    pub path: String,
}

/// Why a request was refused before any decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the request names no host")]
    NoHost,
    #[error("the request names more than one host")]
    ConflictingHost,
    #[error("the host in the request is malformed")]
    BadHost,
    #[error("the method is not an upper-case HTTP method")]
    BadMethod,
    #[error("this method is not allowed through ward")]
    ForbiddenMethod,
    #[error("the request gives both Content-Length and Transfer-Encoding")]
    AmbiguousLength,
    #[error("{0}")]
    Path(#[from] PathError),
}

/// Reads and checks a request's method, host and path.
pub fn read(method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Target, TargetError> {
    check_method(method)?;
    // Two framings for one body: servers disagree on which wins (RFC 9112 6.3
    // lets a server refuse it, and ward does, rather than pick one).
    if headers.contains_key(header::CONTENT_LENGTH)
        && headers.contains_key(header::TRANSFER_ENCODING)
    {
        return Err(TargetError::AmbiguousLength);
    }
    let authority = host_of(uri, headers)?;
    let host = host_without_port(&authority).ok_or(TargetError::BadHost)?;
    let path = path::canonicalize(uri.path())?;
    Ok(Target {
        host,
        authority,
        path,
    })
}

/// Methods are upper-case tokens; TRACE and plain CONNECT never pass.
fn check_method(method: &Method) -> Result<(), TargetError> {
    let m = method.as_str();
    if m.is_empty()
        || !m
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
    {
        return Err(TargetError::BadMethod);
    }
    if *method == Method::TRACE || *method == Method::CONNECT {
        return Err(TargetError::ForbiddenMethod);
    }
    Ok(())
}

/// The one host the request names, from the `Host` header and/or the request
/// URI (absolute-form in HTTP/1.1, `:authority` in HTTP/2). Both must agree.
fn host_of(uri: &Uri, headers: &HeaderMap) -> Result<String, TargetError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    let header_host = match (hosts.next(), hosts.next()) {
        (None, _) => None,
        (Some(h), None) => Some(
            h.to_str()
                .map_err(|_| TargetError::BadHost)?
                .trim()
                .to_ascii_lowercase(),
        ),
        (Some(_), Some(_)) => return Err(TargetError::ConflictingHost),
    };
    let uri_host = uri.authority().map(|a| a.as_str().to_ascii_lowercase());
    let authority = match (header_host, uri_host) {
        (Some(h), Some(u)) if h != u => return Err(TargetError::ConflictingHost),
        (Some(h), _) => h,
        (None, Some(u)) => u,
        (None, None) => return Err(TargetError::NoHost),
    };
    if authority.contains('@') || authority.is_empty() {
        return Err(TargetError::BadHost);
    }
    Ok(authority)
}

/// The `host[:port]` to write into URLs for this request (rewritten redirects,
/// `X-Forwarded-Host`, a preserved `Host`, the plain-HTTP redirect): the
/// request's own when its host is one the policy or certificate names, else
/// the policy's `public_url`. A client's `Host: evil.example` never comes back
/// to it, or to a cache, as a link.
pub fn public_authority<'a>(server: &'a ServerSettings, target: &'a Target) -> &'a str {
    if names_host(&server.public_hosts, &target.host) {
        &target.authority
    } else {
        server
            .public_url
            .strip_prefix("https://")
            .unwrap_or(&server.public_url)
    }
}

/// True when `host` is one of `names`, or under a `*.` wildcard among them (one label).
pub fn names_host(names: &[String], host: &str) -> bool {
    names.iter().any(|n| match n.strip_prefix("*.") {
        Some(parent) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => n == host,
    })
}

/// `host[:port]` → `host`, checking that it is a host name or IP literal.
fn host_without_port(authority: &str) -> Option<String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        (format!("[{v6}]"), after.strip_prefix(':'))
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let host = host.trim_end_matches('.').to_string();
    let ok = host.starts_with('[')
        || (!host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }));
    ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn read_with(method: &str, uri: &str, hosts: &[&str]) -> Result<Target, TargetError> {
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(header::HOST, HeaderValue::from_str(v).unwrap());
        }
        read(
            &Method::from_bytes(method.as_bytes()).unwrap(),
            &uri.parse().unwrap(),
            &h,
        )
    }

    #[test]
    fn plain_requests_read() {
        let t = read_with("GET", "/a/../b", &["EHR.example:8443"]).unwrap();
        assert_eq!(t.host, "ehr.example");
        assert_eq!(t.authority, "ehr.example:8443");
        assert_eq!(t.path, "/b");
        let t = read_with("GET", "https://ehr.example/x", &[]).unwrap();
        assert_eq!(t.host, "ehr.example");
        let t = read_with("GET", "/", &["[::1]:8443"]).unwrap();
        assert_eq!(t.host, "[::1]");
        assert_eq!(
            read_with("GET", "/", &["ehr.example."]).unwrap().host,
            "ehr.example"
        );
    }

    #[test]
    fn ambiguous_requests_are_refused() {
        use TargetError::*;
        assert_eq!(read_with("GET", "/", &[]), Err(NoHost));
        assert_eq!(
            read_with("GET", "/", &["a.example", "b.example"]),
            Err(ConflictingHost)
        );
        assert_eq!(
            read_with("GET", "http://a.example/", &["b.example"]),
            Err(ConflictingHost)
        );
        assert_eq!(read_with("GET", "/", &["a.example:x"]), Err(BadHost));
        assert_eq!(read_with("GET", "/", &["a_b.example"]), Err(BadHost));
        assert_eq!(read_with("GET", "/", &["[zz]"]), Err(BadHost));
        assert_eq!(read_with("GET", "/", &["a..example"]), Err(BadHost));
        assert_eq!(read_with("get", "/", &["a.example"]), Err(BadMethod));
        assert_eq!(read_with("Get", "/", &["a.example"]), Err(BadMethod));
        assert_eq!(
            read_with("TRACE", "/", &["a.example"]),
            Err(ForbiddenMethod)
        );
        assert!(matches!(
            read_with("GET", "/%2e%2e/x", &["a.example"]),
            Err(Path(_))
        ));
        assert!(matches!(
            read_with("OPTIONS", "*", &["a.example"]),
            Err(Path(_))
        ));
        let mut both = HeaderMap::new();
        both.insert(header::HOST, HeaderValue::from_static("a.example"));
        both.insert(header::CONTENT_LENGTH, HeaderValue::from_static("4"));
        both.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        assert_eq!(
            read(&Method::POST, &"/".parse().unwrap(), &both),
            Err(AmbiguousLength)
        );
    }

    #[test]
    fn only_configured_hosts_are_written_back() {
        let names = vec!["*.clinic.example".to_string(), "ehr.example".to_string()];
        assert!(names_host(&names, "ehr.example"));
        assert!(names_host(&names, "billing.clinic.example"));
        assert!(!names_host(&names, "clinic.example"));
        assert!(!names_host(&names, "a.b.clinic.example"));
        assert!(!names_host(&names, "evil.example"));
        assert!(!names_host(&names, "ehr.example.evil"));
    }
}
