//! The request headers only ward may set: the policy refuses them as an app's
//! identity headers, and the proxy removes them from every client request.

use http::header::HeaderName;

/// Client headers ward controls; compared after folding `_` to `-`, because
/// WSGI and PHP apps read `X_Ward_User` as `X-Ward-User`. The method-override
/// headers would let a request ward allowed as `GET` (or `POST`) run as
/// `DELETE` in apps that honour them (Rails, Laravel, Symfony, Express
/// middleware), past a route's `methods` list. `X-Script-Name` is the WSGI
/// "reverse proxied" recipe's prefix, which it cuts off the path the app routes on.
/// The rest are what frameworks and apps behind proxies are known to trust for
/// the client's address, scheme, host or path (nginx, IIS ARR, Akamai,
/// Cloudflare, Envoy), for a person's identity (auth-proxy conventions) and for
/// a client certificate: only ward may say any of these.
const CONTROLLED: [&str; 54] = [
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-original-url",
    "x-rewrite-url",
    "x-real-ip",
    "forwarded",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-script-name",
    // Path and host.
    "x-original-uri",
    "x-original-host",
    "x-original-method",
    "x-envoy-original-path",
    "x-forwarded-path",
    "x-forwarded-server",
    "x-host",
    // Scheme.
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-protocol",
    "x-url-scheme",
    "front-end-https",
    // Client address.
    "x-client-ip",
    "true-client-ip",
    "client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-originating-ip",
    "x-remote-ip",
    "x-remote-addr",
    "x-proxyuser-ip",
    "x-forwarded",
    "forwarded-for",
    "x-envoy-external-address",
    // Identity, as auth proxies hand it to apps.
    "remote-user",
    "x-remote-user",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-auth-request-user",
    "x-auth-request-email",
    "x-webauth-user",
    // Client certificates.
    "x-ssl-client-cert",
    "x-client-cert",
    "ssl-client-cert",
    "x-arr-clientcert",
    "x-forwarded-client-cert",
];

/// `name` (lower case, as `HeaderName` keeps it) equals `want` with `_` read as `-`.
pub fn folded_eq(name: &str, want: &str) -> bool {
    name.len() == want.len()
        && name
            .bytes()
            .zip(want.bytes())
            .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
}

/// True for a header name ward owns or that could smuggle a path, address or identity.
pub fn is_controlled(name: &HeaderName) -> bool {
    let n = name.as_str();
    n.get(..7).is_some_and(|p| folded_eq(p, "x-ward-"))
        || CONTROLLED.iter().any(|c| folded_eq(n, c))
}
