//! Turns the raw policy into a `Policy`, checking every value and collecting
//! every problem (not only the first).

use super::closest;
use super::diag::{Collector, line_col};
use super::raw::{RawApp, RawPolicy, RawRoute, RawUpstreamAuth, Text};
use super::spanned::Spanned;
use super::{CertFile, Certs};
use crate::policy::media::TypePattern;
use crate::policy::net::{NetSet, parse_cidr};
use crate::policy::routes::{Matcher, Pattern, RouteTable};
use crate::policy::{
    Access, App, BreakGlass, Conditions, DEFAULT_EXPORT_TYPES, Export, ExportSettings, FieldRule,
    LogFormat, LogSettings, LoginSettings, MetricsSettings, Mfa, Policy, Role, Route,
    ServerSettings, SessionBinding, SessionSettings, Show, StorageSettings, TooMany, UpstreamAuth,
};
use crate::policy::{
    OidcProvider, RedisStoreSettings, SamlProvider, SamlSigning, SamlSource, SessionStoreKind,
    SsoRules, WithoutMfa,
};
use http::Method;
use http::uri::{Authority, Scheme, Uri};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Compiles `raw`; `None` (with errors in `c`) when it cannot be used.
pub fn compile(
    file: &Path,
    text: &str,
    raw: RawPolicy,
    certs: Certs<'_>,
    c: &mut Collector<'_>,
) -> Option<Policy> {
    let practice = match &raw.practice {
        Some(p) if !p.get_ref().trim().is_empty() => p.get_ref().trim().to_string(),
        Some(p) => {
            c.error(p.span(), "practice must not be empty");
            String::new()
        }
        None => {
            c.error(
                0..0,
                "practice = \"…\" is missing: name the practice, as it should appear on ward's pages",
            );
            String::new()
        }
    };
    let networks = networks(&raw, c);
    let roles = roles(&raw, &networks, c);
    let server = server(&raw, &networks, certs, c);
    let sessions = sessions(&raw, certs, c);
    let login = LoginSettings {
        mfa: raw
            .login
            .mfa
            .as_ref()
            .and_then(|m| mfa(m, c))
            .unwrap_or(Mfa::Required),
        lockout_after: count(&raw.login.lockout_after, 1, 100, 5, "lockout_after", c) as u32,
        lockout_time: duration_or(&raw.login.lockout_time, Duration::from_secs(15 * 60), c),
        more_time_form: more_time_form(&raw.login.more_time_form, c),
        oidc: Vec::new(),
        passwordless: raw
            .login
            .passwordless
            .as_ref()
            .is_some_and(|b| *b.get_ref()),
        passkey_domain: raw
            .login
            .passkey_domain
            .as_ref()
            .and_then(|h| passkey_domain(h, c)),
        saml: Vec::new(),
        saml_signing: saml_signing(&raw, certs, c),
        attempts_per_minute: count(
            &raw.login.attempts_per_minute,
            1,
            10_000,
            30,
            "attempts_per_minute",
            c,
        ) as u32,
    };
    let mut login = login;
    login.oidc = oidc_providers(&raw, &roles, c);
    login.saml = saml_providers(&raw, &roles, &login.oidc, c);
    let log = log(&raw, c);
    let review = crate::policy::ReviewSettings {
        period: duration_or(&raw.review.period, crate::policy::DEFAULT_REVIEW_PERIOD, c),
    };
    let break_glass = raw.break_glass.as_ref().map(|bg| {
        let b = bg.get_ref();
        let mut list = |v: &Option<Vec<Text>>, what: &str| -> Vec<String> {
            let items: Vec<String> = v.iter().flatten().map(|t| t.get_ref().clone()).collect();
            for t in v.iter().flatten() {
                if !roles.contains_key(t.get_ref()) {
                    c.error(
                        t.span(),
                        format!(
                            "unknown role '{}' in [break_glass]; roles are declared in [roles]",
                            t.get_ref()
                        ),
                    );
                }
            }
            if items.is_empty() {
                c.error(bg.span(), format!("[break_glass] needs {what} = [\"…\"]"));
            }
            items
        };
        let allowed_roles = list(&b.allowed_roles, "allowed_roles");
        let emergency_roles = list(&b.emergency_roles, "emergency_roles");
        BreakGlass {
            allowed_roles,
            emergency_roles,
            duration: duration_or(&b.duration, Duration::from_secs(3600), c),
        }
    });
    let export_settings = ExportSettings {
        types: export_types(&raw, c),
        vendors: raw
            .export
            .vendors
            .as_ref()
            .and_then(|v| export(v, c))
            .unwrap_or(Export::Block),
        redact_max: raw
            .export
            .redact_max
            .as_ref()
            .and_then(|v| size(v, c))
            .unwrap_or(5 * 1000 * 1000),
        contact: raw
            .export
            .contact
            .as_ref()
            .map(|t| t.get_ref().clone())
            .unwrap_or_else(|| "the practice's security officer".into()),
    };
    let audit = {
        let a = &raw.audit;
        let defaults = crate::audit::AuditSettings::default();
        crate::audit::AuditSettings {
            dir: a
                .dir
                .as_ref()
                .map(|d| PathBuf::from(d.get_ref()))
                .unwrap_or(defaults.dir),
            on_failure: match &a.on_failure {
                None => defaults.on_failure,
                Some(v) => match v.get_ref().as_str() {
                    "refuse" => crate::audit::OnFailure::Refuse,
                    "continue" => crate::audit::OnFailure::Continue,
                    other => {
                        c.error(
                            v.span(),
                            format!("on_failure must be \"refuse\" or \"continue\", not '{other}'"),
                        );
                        defaults.on_failure
                    }
                },
            },
            max_file_bytes: a
                .max_file_size
                .as_ref()
                .and_then(|v| size(v, c))
                .unwrap_or(defaults.max_file_bytes),
            fsync_every: duration_or(&a.fsync_every, defaults.fsync_every, c),
            checkpoint_every: count(
                &a.checkpoint_every,
                10,
                1_000_000,
                defaults.checkpoint_every as usize,
                "checkpoint_every",
                c,
            ) as u64,
            instance: audit_instance(&raw, c),
            syslog: super::delivery::syslog(a, certs, c),
        }
    };
    let alerts = {
        let a = &raw.alerts;
        let webhook = a.webhook.as_ref().map(|w| {
            let url = w.get_ref().trim().to_string();
            let ok = url.parse::<Uri>().is_ok_and(|u| {
                u.scheme_str() == Some("https")
                    || (u.scheme_str() == Some("http")
                        && u.host()
                            .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]"))
            });
            if !ok {
                c.error(
                    w.span(),
                    "webhook must be an https:// address (http:// only to this machine)",
                );
            }
            url
        });
        let vendor_hours = a.vendor_hours.as_ref().and_then(|h| {
            let parsed = h.get_ref().split_once('-').and_then(|(s, e)| {
                let hour = |t: &str| {
                    t.trim()
                        .split(':')
                        .next()?
                        .parse::<u8>()
                        .ok()
                        .filter(|h| *h <= 24)
                };
                Some((hour(s)?, hour(e)?))
            });
            if parsed.is_none_or(|(s, e)| s >= e) {
                c.error(h.span(), "vendor_hours must be like \"07:00-19:00\"");
            }
            parsed
        });
        if let Some(tz) = &a.timezone
            && jiff::tz::TimeZone::get(tz.get_ref()).is_err()
        {
            c.error(
                tz.span(),
                format!(
                    "'{}' is not a time zone; write it like America/New_York",
                    tz.get_ref()
                ),
            );
        }
        crate::audit::alerts::AlertSettings {
            webhook,
            email: super::delivery::email(a, certs, c),
            denials: count(&a.denials, 1, 10_000, 20, "denials", c) as u32,
            vendor_hours,
            timezone: a.timezone.as_ref().map(|t| t.get_ref().clone()),
        }
    };
    let metrics = MetricsSettings {
        listen: raw.metrics.listen.as_ref().and_then(|v| {
            let addr = socket(v, c)?;
            if !addr.ip().is_loopback() {
                c.warning(
                    v.span(),
                    format!(
                        "the metrics listener {addr} can be reached from other machines; metrics show how busy each app is and how many people are signed in, so use 127.0.0.1:{} unless a firewall limits who reaches it",
                        addr.port()
                    ),
                );
            }
            Some(addr)
        }),
    };
    let storage = StorageSettings {
        users: path_or(&raw.storage.users, "config/users.toml"),
        state: path_or(&raw.storage.state, "state"),
    };
    let allow_from = raw.allow_from.as_ref().map(|list| {
        if list.get_ref().is_empty() {
            c.warning(list.span(), EMPTY_NETWORKS);
        }
        net_refs(list.get_ref(), &networks, c)
    });
    let (apps, broken_apps) = apps(&raw, certs, c);
    // ward's own host must be no app's, or an app's pages would share its origin.
    if let (Some(span), Some(h)) = (
        raw.server.ward_host.as_ref().map(|h| h.span()),
        server.as_ref().and_then(|s| s.ward_host.as_ref()),
    ) && let Some(app) = apps.iter().find(|a| a.host.as_ref() == Some(h))
    {
        c.error(
            span,
            format!(
                "ward_host '{h}' is also the host of app '{}'; ward's own host must be one that no app uses, like ward.riverside.example",
                app.name
            ),
        );
    }
    if raw.server.ward_host.is_some() {
        for entry in raw.apps.iter().filter(|a| a.get_ref().host.is_none()) {
            let name = entry.get_ref().name.as_ref().map(|n| n.get_ref().as_str());
            c.error(
                entry.span(),
                format!(
                    "app '{}' needs a host (like host = \"ehr.riverside.example\"): with ward_host set, ward hands each sign-in to the apps' hosts by name",
                    name.unwrap_or("?")
                ),
            );
        }
    } else if roles.contains_key("officer") {
        c.warning(
            0..0,
            "the officer's console and the break-glass page are served only on ward's own host name, which this policy does not set; add ward_host = \"ward.riverside.example\" under [server] (a name no app uses, pointed at ward)",
        );
    }
    let routes = routes(text, &raw, &apps, &broken_apps, &roles, &networks, c);
    let mut table = route_table(&raw.routes, &routes, &apps, c);
    let conditional: Vec<usize> = routes
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.when.is_empty())
        .map(|(id, _)| id)
        .collect();
    table.set_conditional(&conditional);
    let needs_devices = routes.iter().any(|r| r.device_required)
        || roles.values().any(|r| r.device_required)
        || raw
            .server
            .device_orgs
            .as_ref()
            .is_some_and(|o| !o.is_empty());
    if needs_devices && raw.server.device_ca.is_none() {
        c.error(
            0..0,
            "the policy requires enrolled devices (device = \"required\" or \"own\", or device_orgs) but [server] has no device_ca, so nobody could meet it; add device_ca = \"certs/device-ca.pem\"",
        );
    }
    if let (Some(crl), None) = (&raw.server.device_crl, &raw.server.device_ca) {
        c.error(
            crl.span(),
            "device_crl lists revoked device certificates, but [server] has no device_ca to enroll devices with; add device_ca = \"certs/device-ca.pem\" or remove device_crl",
        );
    }
    if c.has_errors() {
        return None;
    }
    let mut server = server;
    if let Some(s) = server.as_mut() {
        let route_hosts = raw
            .routes
            .iter()
            .filter_map(|r| r.get_ref().host.as_ref())
            .map(|h| h.get_ref().trim().to_ascii_lowercase());
        let app_hosts = apps.iter().filter_map(|a| a.host.clone());
        s.public_hosts
            .extend(app_hosts.chain(route_hosts).chain(s.ward_host.clone()));
        s.public_hosts.sort();
        s.public_hosts.dedup();
    }
    Some(Policy {
        review,
        conditional,
        file: file.to_path_buf(),
        practice,
        server: server?,
        sessions,
        login,
        log,
        storage,
        metrics,
        break_glass,
        export: export_settings,
        audit,
        alerts,
        allow_from,
        networks,
        roles,
        apps,
        routes,
        table,
    })
}

/// `[export] types` (or the default list) and `extra_types`, each a media type
/// that can match an answer; one that never could is an error.
fn export_types(raw: &RawPolicy, c: &mut Collector<'_>) -> Vec<TypePattern> {
    let mut out: Vec<TypePattern> = match &raw.export.types {
        Some(_) => Vec::new(),
        // The built-in list always parses (a unit test holds it to that).
        None => DEFAULT_EXPORT_TYPES
            .iter()
            .filter_map(|t| TypePattern::parse(t).ok())
            .collect(),
    };
    for t in raw
        .export
        .types
        .iter()
        .flatten()
        .chain(raw.export.extra_types.iter().flatten())
    {
        match TypePattern::parse(t.get_ref()) {
            Ok(p) if out.contains(&p) => {}
            Ok(p) => out.push(p),
            Err(why) => c.error(
                t.span(),
                format!("export type '{}': {why}", t.get_ref().trim()),
            ),
        }
    }
    out
}

const EMPTY_NETWORKS: &str =
    "an empty list of networks refuses every client; name networks here or remove the line";

fn duration(value: &Text, c: &mut Collector<'_>) -> Option<Duration> {
    let text = value.get_ref().trim();
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => {
            c.error(
                value.span(),
                format!("'{text}' is zero; give a time longer than that"),
            );
            None
        }
        Ok(d) => Some(d),
        Err(_) => {
            c.error(
                value.span(),
                format!("'{text}' is not a length of time; write it like 30s, 15m, 12h or 1h 30m"),
            );
            None
        }
    }
}

/// `[login] more_time_form`: at most (and by default) 15 minutes, as the form stands in
/// for a sign-in that opens nothing else.
fn more_time_form(value: &Option<Text>, c: &mut Collector<'_>) -> Duration {
    let most = Duration::from_secs(15 * 60);
    let d = duration_or(value, most, c);
    match value {
        Some(t) if d > most || d.is_zero() => {
            c.error(
                t.span(),
                "more_time_form must be between \"1s\" and \"15m\": how long a person whose account has ended has to send the form",
            );
            most
        }
        _ => d,
    }
}

fn duration_or(value: &Option<Text>, default: Duration, c: &mut Collector<'_>) -> Duration {
    value
        .as_ref()
        .and_then(|v| duration(v, c))
        .unwrap_or(default)
}

fn count(
    value: &Option<Spanned<i64>>,
    min: i64,
    max: i64,
    default: usize,
    what: &str,
    c: &mut Collector<'_>,
) -> usize {
    match value {
        None => default,
        Some(v) if (min..=max).contains(v.get_ref()) => {
            usize::try_from(*v.get_ref()).unwrap_or(default)
        }
        Some(v) => {
            c.error(v.span(), format!("{what} must be between {min} and {max}"));
            default
        }
    }
}

fn socket(value: &Text, c: &mut Collector<'_>) -> Option<SocketAddr> {
    match value.get_ref().trim().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            c.error(
                value.span(),
                format!(
                    "'{}' is not an address and port; write it like 0.0.0.0:8443 or [::]:8443",
                    value.get_ref()
                ),
            );
            None
        }
    }
}

fn mfa(value: &Text, c: &mut Collector<'_>) -> Option<Mfa> {
    match value.get_ref().as_str() {
        "required" => Some(Mfa::Required),
        "optional" => Some(Mfa::Optional),
        "phishing-resistant" => Some(Mfa::PhishingResistant),
        other => {
            c.error(
                value.span(),
                format!("mfa must be \"required\", \"optional\" or \"phishing-resistant\" (a passkey or security key only), not '{other}'"),
            );
            None
        }
    }
}

fn export(value: &Text, c: &mut Collector<'_>) -> Option<Export> {
    match value.get_ref().as_str() {
        "allow" => Some(Export::Allow),
        "block" => Some(Export::Block),
        other => {
            c.error(
                value.span(),
                format!("export must be \"allow\" or \"block\", not '{other}'"),
            );
            None
        }
    }
}

/// A name for a thing the officer names: letters, digits, `_`, `-`, `.`.
fn check_name(name: &str, span: std::ops::Range<usize>, what: &str, c: &mut Collector<'_>) -> bool {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-' | '.'));
    if !ok {
        c.error(
            span,
            format!("{what} name '{name}' may only use letters, digits, '_', '-' and '.'"),
        );
    }
    ok
}

fn networks(raw: &RawPolicy, c: &mut Collector<'_>) -> BTreeMap<String, NetSet> {
    let mut out = BTreeMap::new();
    for (name, list) in &raw.networks {
        check_name(name, list.span(), "network", c);
        let mut nets = Vec::new();
        for item in list.get_ref() {
            match parse_cidr(item.get_ref()) {
                Ok(n) => nets.push(n),
                Err(e) => c.error(item.span(), e.to_string()),
            }
        }
        if nets.is_empty() && list.get_ref().is_empty() {
            c.error(list.span(), format!("network '{name}' lists no addresses"));
        }
        out.insert(name.clone(), NetSet::new(nets));
    }
    out
}

/// A list of network names or CIDRs, flattened into one set.
fn net_refs(list: &[Text], networks: &BTreeMap<String, NetSet>, c: &mut Collector<'_>) -> NetSet {
    let mut nets = Vec::new();
    for item in list {
        let text = item.get_ref().trim();
        if let Some(named) = networks.get(text) {
            nets.extend_from_slice(named.ranges());
        } else if text.contains('.') || text.contains(':') {
            match parse_cidr(text) {
                Ok(n) => nets.push(n),
                Err(e) => c.error(item.span(), e.to_string()),
            }
        } else {
            let names: Vec<&str> = networks.keys().map(String::as_str).collect();
            let hint = match closest(text, &names) {
                Some(best) => format!("; did you mean '{best}'?"),
                None => {
                    "; name it in [networks] or write an address range like 203.0.113.0/24".into()
                }
            };
            c.error(item.span(), format!("unknown network '{text}'{hint}"));
        }
    }
    NetSet::new(nets)
}

fn roles(
    raw: &RawPolicy,
    networks: &BTreeMap<String, NetSet>,
    c: &mut Collector<'_>,
) -> BTreeMap<String, Role> {
    let mut out = BTreeMap::new();
    for (name, role) in &raw.roles {
        check_name(name, role.span(), "role", c);
        let role = role.get_ref();
        let dev = role
            .device
            .as_ref()
            .map(|d| device(d, c))
            .unwrap_or_default();
        let r = Role {
            description: role
                .description
                .as_ref()
                .map(|d| d.get_ref().clone())
                .unwrap_or_default(),
            idle_timeout: role.idle_timeout.as_ref().and_then(|d| duration(d, c)),
            export: role.export.as_ref().and_then(|e| export(e, c)),
            mfa: role.mfa.as_ref().and_then(|m| mfa(m, c)),
            device_required: dev.required,
            own_device: dev.own,
            allow_from: role.allow_from.as_ref().map(|list| {
                if list.get_ref().is_empty() {
                    c.warning(list.span(), EMPTY_NETWORKS);
                }
                net_refs(list.get_ref(), networks, c)
            }),
        };
        out.insert(name.clone(), r);
    }
    out
}

fn server(
    raw: &RawPolicy,
    networks: &BTreeMap<String, NetSet>,
    certs: Certs<'_>,
    c: &mut Collector<'_>,
) -> Option<ServerSettings> {
    let s = &raw.server;
    let listen = match &s.listen {
        Some(v) => socket(v, c),
        None => Some(SocketAddr::from(([0, 0, 0, 0], 8443))),
    };
    let redirect_http = s.redirect_http.as_ref().and_then(|v| socket(v, c));
    let cert = path_or(&s.cert, "certs/ward.crt");
    let key = path_or(&s.key, "certs/ward.key");
    let device_crl = s.device_crl.as_ref().map(|p| PathBuf::from(p.get_ref()));
    let mut revoked_devices = Vec::new();
    let tls = match certs {
        Certs::Skip => None,
        Certs::Load(files) => match files.server(
            &cert,
            &key,
            s.device_ca
                .as_ref()
                .map(|p| Path::new(p.get_ref().as_str())),
            device_crl.as_deref(),
        ) {
            Ok(tls) => {
                revoked_devices = tls.revoked;
                Some(Arc::new(tls.config))
            }
            Err(e) => {
                let span = match e.file {
                    CertFile::Key => s.key.as_ref().map(|k| k.span()),
                    CertFile::Ca => s.device_ca.as_ref().map(|k| k.span()),
                    CertFile::Crl => s.device_crl.as_ref().map(|k| k.span()),
                    CertFile::Cert => s.cert.as_ref().map(|k| k.span()),
                };
                c.error(span.unwrap_or(0..0), e.to_string());
                None
            }
        },
    };
    let trusted_proxies = s
        .trusted_proxies
        .as_ref()
        .map(|l| net_refs(l, networks, c))
        .unwrap_or_default();
    let max_header_bytes = count(
        &s.max_header_bytes,
        8192,
        1 << 20,
        32 * 1024,
        "max_header_bytes",
        c,
    );
    let listen = listen?;
    let public_port = s
        .public_port
        .as_ref()
        .map(|p| *p.get_ref())
        .unwrap_or(listen.port());
    let public_url = match &s.public_url {
        Some(u) => {
            let text = u.get_ref().trim().trim_end_matches('/').to_string();
            if !text.starts_with("https://") || text.parse::<Uri>().is_err() {
                c.error(
                    u.span(),
                    "public_url must be the https:// address people use, like https://ehr.riverside.example",
                );
            }
            text
        }
        None if public_port == 443 => "https://localhost".to_string(),
        None => format!("https://localhost:{public_port}"),
    };
    // Names ward may write into redirects: the certificate's and `public_url`'s
    // (apps', routes' and `ward_host` are added once those are read).
    let mut public_hosts = match certs {
        Certs::Load(files) => files.names(&cert),
        Certs::Skip => Vec::new(),
    };
    public_hosts.extend(
        public_url
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_ascii_lowercase)),
    );
    Some(ServerSettings {
        listen,
        redirect_http,
        public_port,
        public_url,
        tls,
        trusted_proxies,
        max_connections: count(
            &s.max_connections,
            1,
            1_000_000,
            10_000,
            "max_connections",
            c,
        ),
        max_header_bytes,
        max_headers: count(&s.max_headers, 8, 1000, 100, "max_headers", c),
        header_read_timeout: duration_or(&s.header_read_timeout, Duration::from_secs(10), c),
        handshake_timeout: duration_or(&s.handshake_timeout, Duration::from_secs(10), c),
        keepalive_timeout: duration_or(&s.keepalive_timeout, Duration::from_secs(60), c),
        hsts: s.hsts.as_ref().map(|h| *h.get_ref()).unwrap_or(true),
        device_orgs: s
            .device_orgs
            .iter()
            .flatten()
            .map(|o| o.get_ref().clone())
            .collect(),
        device_crl,
        revoked_devices,
        ward_host: s.ward_host.as_ref().and_then(|h| public_host(h, c)),
        public_hosts,
    })
}

/// A route's `query` or `form` table: names and the exact values they must have.
fn conditions(
    table: &Option<Spanned<std::collections::BTreeMap<String, Text>>>,
    what: &str,
    c: &mut Collector<'_>,
) -> Vec<(String, String)> {
    let Some(table) = table else {
        return Vec::new();
    };
    if table.get_ref().is_empty() {
        c.error(
            table.span(),
            format!("an empty {what} list never narrows the route; remove it or name a {what}"),
        );
    }
    let mut out = Vec::new();
    for (name, value) in table.get_ref() {
        if name.trim().is_empty() || value.get_ref().is_empty() {
            c.error(
                value.span(),
                format!(
                    "a {what} needs a name and the value it must have, like route = \"/export\""
                ),
            );
            continue;
        }
        out.push((name.clone(), value.get_ref().clone()));
    }
    out
}

fn path_or(value: &Option<Text>, default: &str) -> PathBuf {
    PathBuf::from(
        value
            .as_ref()
            .map(|v| v.get_ref().as_str())
            .unwrap_or(default),
    )
}

fn sessions(raw: &RawPolicy, certs: Certs<'_>, c: &mut Collector<'_>) -> SessionSettings {
    let s = &raw.sessions;
    let on_too_many = match &s.on_too_many {
        None => TooMany::EndOldest,
        Some(v) => match v.get_ref().as_str() {
            "end-oldest" => TooMany::EndOldest,
            "refuse" => TooMany::Refuse,
            other => {
                c.error(
                    v.span(),
                    format!("on_too_many must be \"end-oldest\" or \"refuse\", not '{other}'"),
                );
                TooMany::EndOldest
            }
        },
    };
    let mut background = Vec::new();
    for p in s.background_paths.iter().flatten() {
        match Pattern::parse(p.get_ref(), false) {
            Ok(pattern) => background.push(Matcher {
                pattern,
                host: None,
                methods: None,
                fold_case: false,
            }),
            Err(e) => c.error(p.span(), e.to_string()),
        }
    }
    let mut headers = Vec::new();
    for h in s.background_headers.iter().flatten() {
        let (name, value) = match h.get_ref().split_once(':') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_string())),
            None => (h.get_ref().trim(), None),
        };
        match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(n) => headers.push((n, value)),
            Err(_) => c.error(
                h.span(),
                format!("'{name}' is not a header name; write it like \"X-Requested-With: XMLHttpRequest\""),
            ),
        }
    }
    SessionSettings {
        idle_timeout: duration_or(&s.idle_timeout, Duration::from_secs(15 * 60), c),
        max_lifetime: duration_or(&s.max_lifetime, Duration::from_secs(12 * 3600), c),
        max_per_user: count(&s.max_per_user, 1, 100, 1, "max_per_user", c),
        on_too_many,
        background_paths: RouteTable::new(background),
        background_headers: headers,
        idle_warning: s
            .idle_warning
            .as_ref()
            .map(|b| *b.get_ref())
            .unwrap_or(true),
        bind_to: match &s.bind_to {
            None => SessionBinding::None,
            Some(v) => match v.get_ref().as_str() {
                "none" => SessionBinding::None,
                "network" => SessionBinding::Network,
                "address" => SessionBinding::Address,
                other => {
                    c.error(
                        v.span(),
                        format!(
                            "bind_to must be \"none\", \"network\" (the sign-in's /24 or /64) or \"address\", not '{other}'"
                        ),
                    );
                    SessionBinding::None
                }
            },
        },
        store: session_store(s, certs, c),
    }
}

/// `[sessions] store` with its password file and activity interval.
fn session_store(
    s: &crate::config::raw::RawSessions,
    certs: Certs<'_>,
    c: &mut Collector<'_>,
) -> SessionStoreKind {
    let every = duration_or(&s.activity_every, Duration::from_secs(5), c);
    if let Some(v) = &s.activity_every
        && !(Duration::from_secs(1)..=Duration::from_secs(60)).contains(&every)
    {
        c.error(
            v.span(),
            "activity_every must be between \"1s\" and \"60s\": idle logoff is only as exact as this",
        );
    }
    let grace = duration_or(&s.store_down_grace, Duration::ZERO, c);
    if let Some(v) = &s.store_down_grace
        && grace > Duration::from_secs(3600)
    {
        c.error(
            v.span(),
            "store_down_grace must be at most \"1h\": while Redis is away, a sign-out or a closed account does not reach the other instances",
        );
    }
    let Some(v) = &s.store else {
        return SessionStoreKind::Memory;
    };
    let url = v.get_ref().trim();
    if url == "memory" {
        return SessionStoreKind::Memory;
    }
    let parsed = redis::parse_redis_url(url)
        .filter(|u| matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some());
    let Some(parsed) = parsed else {
        c.error(
            v.span(),
            "store must be \"memory\" or a Redis address like \"redis://10.0.0.9:6379\" or \"rediss://redis.riverside.example:6380\" (TLS)",
        );
        return SessionStoreKind::Memory;
    };
    if parsed.password().is_some() {
        c.warning(
            v.span(),
            "the Redis password is written in the policy; put it in a file readable by ward alone and name it with store_password_file",
        );
    }
    let password = s
        .store_password_file
        .as_ref()
        .and_then(|f| super::delivery::secret_file(f, "Redis password", c));
    let ca = s
        .store_ca_file
        .as_ref()
        .and_then(|f| store_ca(f, parsed.scheme(), certs, c));
    SessionStoreKind::Redis(RedisStoreSettings {
        url: url.to_string(),
        password,
        ca,
        activity_every: every,
        down_grace: grace,
    })
}

/// `[audit] instance`: given, or with several instances (a Redis session store) this
/// machine's host name; else none (one instance, one unnamed chain).
fn audit_instance(raw: &RawPolicy, c: &mut Collector<'_>) -> Option<String> {
    match &raw.audit.instance {
        Some(v) if crate::audit::valid_instance(v.get_ref()) => Some(v.get_ref().clone()),
        Some(v) => {
            c.error(
                v.span(),
                "instance must be 1 to 40 letters, digits, '-' or '_', such as \"ward-a\"",
            );
            None
        }
        None if raw
            .sessions
            .store
            .as_ref()
            .is_some_and(|s| s.get_ref().trim() != "memory") =>
        {
            crate::audit::host_instance()
        }
        None => None,
    }
}

/// `[sessions] store_ca_file`: the authority Redis's certificate must come from (PEM), checked
/// as the apps' `ca` files are.
fn store_ca(
    file: &Spanned<String>,
    scheme: &str,
    certs: Certs<'_>,
    c: &mut Collector<'_>,
) -> Option<Vec<u8>> {
    if scheme != "rediss" {
        c.error(
            file.span(),
            "store_ca_file is only used with a rediss:// (TLS) store; write the store as \"rediss://…\"",
        );
        return None;
    }
    if let Certs::Load(files) = certs
        && let Err(e) = files.client(Some(std::path::Path::new(file.get_ref())))
    {
        c.error(file.span(), e.to_string());
        return None;
    }
    match std::fs::read(file.get_ref()) {
        Ok(pem) => Some(pem),
        Err(e) => {
            c.error(
                file.span(),
                format!(
                    "cannot read the Redis authority file {}: {e}",
                    file.get_ref()
                ),
            );
            None
        }
    }
}

fn log(raw: &RawPolicy, c: &mut Collector<'_>) -> LogSettings {
    let format = match &raw.log.format {
        None => LogFormat::Human,
        Some(f) => match f.get_ref().as_str() {
            "human" => LogFormat::Human,
            "json" => LogFormat::Json,
            other => {
                c.error(
                    f.span(),
                    format!("log format must be \"human\" or \"json\", not '{other}'"),
                );
                LogFormat::Human
            }
        },
    };
    let level = match &raw.log.level {
        None => tracing::Level::INFO,
        Some(l) => match l.get_ref().parse() {
            Ok(level) => level,
            Err(_) => {
                c.error(
                    l.span(),
                    "log level must be one of \"error\", \"warn\", \"info\", \"debug\", \"trace\"",
                );
                tracing::Level::INFO
            }
        },
    };
    LogSettings {
        format,
        level,
        paths: raw.log.paths.as_ref().is_some_and(|p| *p.get_ref()),
    }
}

/// A route's `hide` and `mask` entries as field rules. Each is a CSS selector,
/// checked by the HTML rewriter that will use it (so a selector it cannot match
/// is refused here, not at a request), and names the CSV column / JSON field
/// of the same field when it can.
fn field_rules(r: &RawRoute, c: &mut Collector<'_>) -> Vec<FieldRule> {
    let mut out: Vec<FieldRule> = Vec::new();
    for item in r.hide.iter().flatten() {
        if let Some(selector) = selector(item.get_ref(), item.span(), c) {
            out.push(FieldRule {
                name: field_name(&selector),
                selector,
                show: Show::Nothing,
            });
        }
    }
    for (key, kind) in r.mask.iter().flat_map(|m| m.get_ref()) {
        let show = match kind.get_ref().trim() {
            "last4" => Show::Last4,
            other => {
                c.error(
                    kind.span(),
                    format!(
                        "'{other}' is not a way ward can mask a field; write \"{key}\" = \"last4\" (the last 4 letters or digits stay), or move \"{key}\" to hide to remove it whole"
                    ),
                );
                continue;
            }
        };
        let Some(selector) = selector(key, kind.span(), c) else {
            continue;
        };
        if out.iter().any(|f| f.selector == selector) {
            c.error(
                kind.span(),
                format!("'{selector}' is both in hide and in mask; keep it in one: hide removes it, mask shows part of it"),
            );
            continue;
        }
        out.push(FieldRule {
            name: field_name(&selector),
            selector,
            show,
        });
    }
    out
}

/// One field rule's CSS selector, if the HTML rewriter can use it.
fn selector(text: &str, span: std::ops::Range<usize>, c: &mut Collector<'_>) -> Option<String> {
    let text = text.trim();
    match text.parse::<lol_html::Selector>() {
        Ok(_) if !text.is_empty() => Some(text.to_string()),
        Ok(_) => {
            c.error(
                span,
                "an empty selector hides nothing; write it like \"#ssn\" or \"td.diagnosis\"",
            );
            None
        }
        Err(e) => {
            c.error(
                span,
                format!("'{text}' is not a selector ward can use ({e}); write it like \"#ssn\", \"td.diagnosis\" or \"input[name=dob]\""),
            );
            None
        }
    }
}

/// The field a selector names, for CSV columns and JSON fields: the id, the
/// `name` attribute or the last class of its last element (`#ssn`,
/// `input[name=dob]`, `td.diagnosis`), or the selector itself when it is one
/// plain word (`diagnosis`, `date_of_birth`). None for anything else.
fn field_name(selector: &str) -> Option<String> {
    let word = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|ch| ch.is_alphanumeric() || ch == '_' || ch == '-')
    };
    if word(selector) {
        return Some(selector.to_string());
    }
    // The last compound selector: after the last combinator outside brackets.
    let mut depth = 0usize;
    let mut start = 0;
    for (i, ch) in selector.char_indices() {
        match ch {
            '[' | '(' => depth += 1,
            ']' | ')' => depth = depth.saturating_sub(1),
            ' ' | '>' | '+' | '~' if depth == 0 => start = i + 1,
            _ => {}
        }
    }
    let last = &selector[start..];
    let ident = |s: &str| -> Option<String> {
        let end = s
            .find(|ch: char| !(ch.is_alphanumeric() || ch == '_' || ch == '-'))
            .unwrap_or(s.len());
        word(&s[..end]).then(|| s[..end].to_string())
    };
    if let Some(at) = last.find('#') {
        return ident(&last[at + 1..]);
    }
    if let Some(at) = last.find("[name=") {
        let value = last[at + 6..].trim_start_matches(['"', '\'']);
        return ident(value);
    }
    last.rfind('.').and_then(|at| ident(&last[at + 1..]))
}

/// The apps that compiled, and the names of those that did not (their
/// errors are reported already; routes naming them add none of their own).
fn apps(raw: &RawPolicy, certs: Certs<'_>, c: &mut Collector<'_>) -> (Vec<App>, Vec<String>) {
    let mut out: Vec<App> = Vec::new();
    let mut broken: Vec<String> = Vec::new();
    let mut hosts: BTreeMap<String, String> = BTreeMap::new();
    for entry in &raw.apps {
        let a = entry.get_ref();
        let Some(app) = app(a, entry.span(), certs, c) else {
            broken.extend(a.name.as_ref().map(|n| n.get_ref().clone()));
            continue;
        };
        if out.iter().any(|o| o.name == app.name)
            && let Some(n) = &a.name
        {
            c.error(
                n.span(),
                format!("there is already an app named '{}'", app.name),
            );
        }
        if let (Some(h), Some(span)) = (&app.host, a.host.as_ref().map(|h| h.span()))
            && let Some(other) = hosts.insert(h.clone(), app.name.clone())
        {
            c.error(
                span,
                format!("app '{other}' already answers for host '{h}'"),
            );
        }
        out.push(app);
    }
    (out, broken)
}

fn app(
    a: &RawApp,
    span: std::ops::Range<usize>,
    certs: Certs<'_>,
    c: &mut Collector<'_>,
) -> Option<App> {
    let name = match &a.name {
        Some(n) => {
            check_name(n.get_ref(), n.span(), "app", c);
            n.get_ref().clone()
        }
        None => {
            c.error(span.clone(), "this app has no name = \"…\"");
            return None;
        }
    };
    let Some(upstream) = &a.upstream else {
        c.error(span, format!("app '{name}' has no upstream = \"http://…\""));
        return None;
    };
    let (scheme, authority) = upstream_parts(upstream, c)?;
    let host = a.host.as_ref().and_then(|h| public_host(h, c));
    let client_tls = match certs {
        _ if scheme != Scheme::HTTPS => {
            if let Some(ca) = &a.ca {
                c.error(ca.span(), "ca is only used with an https:// upstream");
            }
            None
        }
        Certs::Skip => None,
        Certs::Load(files) => {
            let ca = a.ca.as_ref().map(|p| PathBuf::from(p.get_ref()));
            match files.client(ca.as_deref()) {
                Ok(cfg) => Some(Arc::new(cfg)),
                Err(e) => {
                    let at = a.ca.as_ref().map(|p| p.span()).unwrap_or(upstream.span());
                    c.error(at, e.to_string());
                    None
                }
            }
        }
    };
    let flag = |v: &Option<Spanned<bool>>, default: bool| {
        v.as_ref().map(|b| *b.get_ref()).unwrap_or(default)
    };
    let upstream_auth = a
        .upstream_auth
        .as_ref()
        .and_then(|u| upstream_auth(u, &name, certs, c));
    Some(App {
        name,
        scheme,
        authority,
        host,
        client_tls,
        connect_timeout: duration_or(&a.connect_timeout, Duration::from_secs(5), c),
        response_timeout: duration_or(&a.response_timeout, Duration::from_secs(60), c),
        preserve_host: flag(&a.preserve_host, false),
        rewrite_redirects: flag(&a.rewrite_redirects, true),
        rewrite_cookies: flag(&a.rewrite_cookies, true),
        ward_keeps_cookies: flag(&a.ward_keeps_cookies, true),
        case_insensitive: flag(&a.case_insensitive, false),
        identity_headers: identity_headers(a, c),
        upstream_auth,
    })
}

/// `upstream_auth = { basic_user = "…", basic_password_env = "VAR" }` or
/// `{ header = "X-Api-Key", value_env = "VAR" }` (`_file` instead of `_env`
/// for a file): the credential ward sends to the app. The secret itself is
/// never in the policy; with `Certs::Skip` it is not read at all.
fn upstream_auth(
    u: &Spanned<RawUpstreamAuth>,
    app: &str,
    certs: Certs<'_>,
    c: &mut Collector<'_>,
) -> Option<UpstreamAuth> {
    let raw = u.get_ref();
    let span = u.span();
    let basic = raw.basic_user.is_some()
        || raw.basic_password_env.is_some()
        || raw.basic_password_file.is_some();
    let named = raw.header.is_some() || raw.value_env.is_some() || raw.value_file.is_some();
    let (header, secret_env, secret_file, what) = match (basic, named) {
        (true, false) => (
            http::header::AUTHORIZATION,
            &raw.basic_password_env,
            &raw.basic_password_file,
            "basic_password",
        ),
        (false, true) => {
            let Some(h) = &raw.header else {
                c.error(span, format!("app '{app}': upstream_auth needs header = \"X-Api-Key\" (the header the app reads the credential from)"));
                return None;
            };
            (
                upstream_auth_header(h, c)?,
                &raw.value_env,
                &raw.value_file,
                "value",
            )
        }
        _ => {
            c.error(
                span,
                format!("app '{app}': upstream_auth is either {{ basic_user = \"…\", basic_password_env = \"VARIABLE\" }} or {{ header = \"X-Api-Key\", value_env = \"VARIABLE\" }}, not both or neither"),
            );
            return None;
        }
    };
    let user = if basic {
        match &raw.basic_user {
            Some(u)
                if !u.get_ref().is_empty()
                    && !u.get_ref().contains(':')
                    && !u.get_ref().chars().any(char::is_control) =>
            {
                Some(u.get_ref().clone())
            }
            Some(u) => {
                c.error(u.span(), "basic_user must be a user name without ':'");
                return None;
            }
            None => {
                c.error(span, format!("app '{app}': upstream_auth needs basic_user = \"…\" beside basic_password_env"));
                return None;
            }
        }
    } else {
        None
    };
    let secret = match (secret_env, secret_file) {
        (Some(_), Some(f)) => {
            c.error(
                f.span(),
                format!("give {what}_env or {what}_file, not both"),
            );
            return None;
        }
        (None, None) => {
            c.error(
                span,
                format!("app '{app}': upstream_auth needs {what}_env = \"VARIABLE\" (or {what}_file = \"/etc/ward/{app}.secret\"); the secret itself never goes in the policy"),
            );
            return None;
        }
        // Commands that never forward (explain, user, report) need not see it.
        _ if certs.skipped() => String::new(),
        (Some(v), None) => match std::env::var(v.get_ref().trim()) {
            Ok(s) if !s.is_empty() => s,
            _ => {
                c.error(
                    v.span(),
                    format!(
                        "the environment variable {} holding app '{app}'s {what} is not set (or is empty)",
                        v.get_ref().trim()
                    ),
                );
                return None;
            }
        },
        (None, Some(f)) => match std::fs::read_to_string(f.get_ref()) {
            // A file ends with a newline more often than a secret does.
            Ok(s) if !s.trim_end_matches(['\r', '\n']).is_empty() => {
                s.trim_end_matches(['\r', '\n']).to_string()
            }
            Ok(_) => {
                c.error(
                    f.span(),
                    format!(
                        "the file {} holding app '{app}'s {what} is empty",
                        f.get_ref()
                    ),
                );
                return None;
            }
            Err(e) => {
                c.error(
                    f.span(),
                    format!(
                        "cannot read the file {} holding app '{app}'s {what}: {e}",
                        f.get_ref()
                    ),
                );
                return None;
            }
        },
    };
    let text = match user {
        Some(user) => format!(
            "Basic {}",
            data_encoding::BASE64.encode(format!("{user}:{secret}").as_bytes())
        ),
        None => secret,
    };
    let mut value = match http::HeaderValue::from_str(&text) {
        Ok(v) => v,
        Err(_) => {
            // Say where, never what: the value is a secret.
            let at = secret_env
                .as_ref()
                .or(secret_file.as_ref())
                .map(|t| t.span())
                .unwrap_or(span);
            c.error(
                at,
                format!(
                    "app '{app}'s {what} has a line break or other character a header cannot carry"
                ),
            );
            return None;
        }
    };
    value.set_sensitive(true);
    Some(UpstreamAuth { header, value })
}

/// The header an `upstream_auth` credential goes in: any but those that carry
/// the request's framing, cookies or host, and those ward sets itself.
fn upstream_auth_header(h: &Text, c: &mut Collector<'_>) -> Option<http::HeaderName> {
    let name = h.get_ref().trim();
    let reserved = [
        "host",
        "cookie",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
    ];
    match http::HeaderName::from_bytes(name.as_bytes()) {
        Ok(n) if !reserved.contains(&n.as_str()) && !crate::policy::headers::is_controlled(&n) => {
            Some(n)
        }
        _ => {
            c.error(
                h.span(),
                format!("'{name}' cannot carry an app's credential; name the header the app reads it from, like X-Api-Key or Authorization"),
            );
            None
        }
    }
}

/// `identity_headers = { provider_id = "X-Provider-Id" }`: attribute → header.
fn identity_headers(a: &RawApp, c: &mut Collector<'_>) -> Vec<(String, http::HeaderName)> {
    let mut out = Vec::new();
    for (attribute, header) in a.identity_headers.iter().flatten() {
        let name = header.get_ref().trim();
        let reserved = [
            "host",
            "cookie",
            "authorization",
            "content-length",
            "transfer-encoding",
            "connection",
        ];
        match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(h)
                if !reserved.contains(&h.as_str())
                    && !crate::policy::headers::is_controlled(&h) =>
            {
                out.push((attribute.clone(), h))
            }
            Ok(h) if crate::policy::headers::is_controlled(&h) => c.error(
                header.span(),
                format!(
                    "'{name}' is a header ward sets itself; pick another name, like X-Provider-Id"
                ),
            ),
            _ => c.error(
                header.span(),
                format!(
                    "'{name}' cannot be used as a header name here; write it like X-Provider-Id"
                ),
            ),
        }
    }
    out
}

fn upstream_parts(value: &Text, c: &mut Collector<'_>) -> Option<(Scheme, Authority)> {
    let text = value.get_ref().trim();
    let bad = |c: &mut Collector<'_>, why: &str| {
        c.error(
            value.span(),
            format!("upstream '{text}' {why}; write it like http://10.0.0.5:8080"),
        );
        None
    };
    let Ok(uri) = text.parse::<Uri>() else {
        return bad(c, "is not a web address");
    };
    let scheme = match uri.scheme() {
        Some(s) if *s == Scheme::HTTP || *s == Scheme::HTTPS => s.clone(),
        _ => return bad(c, "must start with http:// or https://"),
    };
    let Some(authority) = uri.authority().cloned() else {
        return bad(c, "has no host");
    };
    if authority.as_str().contains('@') {
        return bad(c, "must not contain a user name or password");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return bad(c, "must not have a path after the host and port");
    }
    Some((scheme, authority))
}

fn public_host(value: &Text, c: &mut Collector<'_>) -> Option<String> {
    let host = value.get_ref().trim().to_ascii_lowercase();
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-'));
    if ok {
        Some(host)
    } else {
        c.error(
            value.span(),
            format!(
                "host '{}' is not a host name; write it like ehr.riverside.example (no https://, no port)",
                value.get_ref()
            ),
        );
        None
    }
}

/// `[login] passkey_domain`: a host name with at least two labels (a passkey made for a
/// bare top-level name such as `example` would be offered to every site under it).
fn passkey_domain(value: &Text, c: &mut Collector<'_>) -> Option<String> {
    let host = public_host(value, c)?;
    if host.contains('.') || host == "localhost" {
        return Some(host);
    }
    c.error(
        value.span(),
        format!(
            "passkey_domain '{host}' is too broad: name the practice's own domain, like riverside.example, that every host people sign in on ends with"
        ),
    );
    None
}

fn routes(
    text: &str,
    raw: &RawPolicy,
    apps: &[App],
    broken_apps: &[String],
    roles: &BTreeMap<String, Role>,
    networks: &BTreeMap<String, NetSet>,
    c: &mut Collector<'_>,
) -> Vec<Route> {
    let app_names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
    let role_names: Vec<&str> = roles.keys().map(String::as_str).collect();
    let mut out = Vec::new();
    for entry in &raw.routes {
        let r = entry.get_ref();
        let (line, _) = line_col(text, entry.span().start);
        let app = match &r.app {
            None => {
                c.error(
                    entry.span(),
                    "this route does not say which app it is for (app = \"…\")",
                );
                None
            }
            Some(name) => {
                let found = apps.iter().position(|a| a.name == *name.get_ref());
                // An app with its own error is not unknown: one mistake, one error.
                if found.is_none() && !broken_apps.contains(name.get_ref()) {
                    let hint = match closest(name.get_ref(), &app_names) {
                        Some(best) => format!("; did you mean '{best}'?"),
                        None if app_names.is_empty() => {
                            "; declare it in an [[apps]] section".into()
                        }
                        None => format!("; the apps are: {}", app_names.join(", ")),
                    };
                    c.error(
                        name.span(),
                        format!("unknown app '{}'{hint}", name.get_ref()),
                    );
                }
                found
            }
        };
        if r.path.is_none() {
            c.error(entry.span(), "this route has no path = \"/…\"");
        }
        let access = access(r, entry.span(), &role_names, c);
        if let Some(h) = &r.host
            && let Some(host) = public_host(h, c)
            && let Some(app_host) = app.and_then(|i| apps.get(i)).and_then(|a| a.host.as_ref())
            && *app_host != host
        {
            c.error(
                h.span(),
                format!("this route's host '{host}' is not the host its app answers for ('{app_host}'); remove one of them"),
            );
        }
        let dev = r.device.as_ref().map(|d| device(d, c)).unwrap_or_default();
        let route = Route {
            line,
            app: app.unwrap_or(0),
            path: r
                .path
                .as_ref()
                .map(|p| p.get_ref().clone())
                .unwrap_or_default(),
            access: access.unwrap_or(Access::Public),
            from: r.from.as_ref().map(|l| {
                if l.is_empty() {
                    c.warning(entry.span(), EMPTY_NETWORKS);
                }
                net_refs(l, networks, c)
            }),
            idle_timeout: r.idle_timeout.as_ref().and_then(|d| duration(d, c)),
            export: r.export.as_ref().and_then(|e| export(e, c)),
            mfa: r.mfa.as_ref().and_then(|m| mfa(m, c)),
            export_endpoint: r
                .export_endpoint
                .as_ref()
                .map(|b| *b.get_ref())
                .unwrap_or(false),
            max_response: r.max_response.as_ref().and_then(|v| size(v, c)),
            rate_limit: r.rate_limit.as_ref().and_then(|v| rate(v, c)),
            redact_fields: r
                .redact_fields
                .iter()
                .flatten()
                .map(|f| f.get_ref().clone())
                .collect(),
            redact_for: role_list(&r.redact_for, &role_names, c),
            fields: field_rules(r, c),
            hide_for: role_list(&r.hide_for, &role_names, c),
            no_body_for: role_list(&r.no_body_for, &role_names, c),
            device_required: dev.required,
            own_device: dev.own,
            watermark: r.watermark.as_ref().is_some_and(|b| *b.get_ref()),
            print_blocked: r.print.as_ref().and_then(|p| print(p, c)).unwrap_or(false),
            when: Conditions {
                query: conditions(&r.query, "query parameter", c),
                form: conditions(&r.form, "form field", c),
            },
        };
        if !route.redact_fields.is_empty() && route.redact_for.is_empty() {
            c.error(entry.span(), "redact_fields needs redact_for = [\"role\", …]: the roles whose answers are masked");
        }
        if route.fields.is_empty() != route.hide_for.is_empty() {
            c.error(
                entry.span(),
                "hide and hide_for go together: hide = [\"#ssn\", \"td.diagnosis\"] (or mask = { \"#ssn\" = \"last4\" }) lists what is hidden, hide_for = [\"role\", …] from whom",
            );
        }
        out.push(route);
    }
    out
}

/// A route's `print`: whether printing its pages is blocked.
fn print(v: &Text, c: &mut Collector<'_>) -> Option<bool> {
    match v.get_ref().as_str() {
        "allow" => Some(false),
        "block" => Some(true),
        other => {
            c.error(
                v.span(),
                format!("print must be \"allow\" or \"block\", not '{other}'"),
            );
            None
        }
    }
}

fn access(
    r: &RawRoute,
    span: std::ops::Range<usize>,
    role_names: &[&str],
    c: &mut Collector<'_>,
) -> Option<Access> {
    let has_members = r.allow_roles.is_some() || r.allow_users.is_some();
    match (&r.allow, has_members) {
        (Some(a), _) if a.get_ref() != "public" => {
            c.error(
                a.span(),
                format!(
                    "allow can only be \"public\" (no login needed); to let roles in, write allow_roles = [\"…\"] instead of allow = '{}'",
                    a.get_ref()
                ),
            );
            None
        }
        (Some(a), true) => {
            c.error(
                a.span(),
                "a route is either public (allow = \"public\") or for named roles/users (allow_roles, allow_users), not both",
            );
            None
        }
        (Some(_), false) => Some(Access::Public),
        (None, false) => {
            c.error(
                span,
                "this route does not say who may use it: add allow_roles = [\"…\"], allow_users = [\"…\"], or allow = \"public\"",
            );
            None
        }
        (None, true) => {
            let mut roles = Vec::new();
            for role in r.allow_roles.iter().flatten() {
                if role_names.contains(&role.get_ref().as_str()) {
                    roles.push(role.get_ref().clone());
                } else {
                    let hint = match closest(role.get_ref(), role_names) {
                        Some(best) => format!("; did you mean '{best}'?"),
                        None => "; roles are declared in [roles]".into(),
                    };
                    c.error(
                        role.span(),
                        format!("unknown role '{}'{hint}", role.get_ref()),
                    );
                }
            }
            let users = r
                .allow_users
                .iter()
                .flatten()
                .map(|u| u.get_ref().clone())
                .collect();
            Some(Access::Members { roles, users })
        }
    }
}

/// The `[[login.oidc]]` providers, with their client secrets read.
fn oidc_providers(
    raw: &RawPolicy,
    roles: &BTreeMap<String, Role>,
    c: &mut Collector<'_>,
) -> Vec<OidcProvider> {
    let mut out: Vec<OidcProvider> = Vec::new();
    let public_url = public_url(raw);
    for entry in raw.login.oidc.iter().flatten() {
        let o = entry.get_ref();
        let need = |v: &Option<Text>, what: &str, c: &mut Collector<'_>| -> String {
            match v {
                Some(t) if !t.get_ref().trim().is_empty() => t.get_ref().trim().to_string(),
                _ => {
                    c.error(
                        entry.span(),
                        format!("this [[login.oidc]] provider needs {what} = \"…\""),
                    );
                    String::new()
                }
            }
        };
        let name = need(&o.name, "name", c);
        let issuer = need(&o.issuer, "issuer", c);
        let client_id = need(&o.client_id, "client_id", c);
        if out.iter().any(|p| p.config.name == name) {
            c.error(
                entry.span(),
                format!("there is already a provider named '{name}'"),
            );
        }
        // The secret never sits in the policy: a file ward reads, or an environment variable.
        let secret = match (&o.client_secret_file, &o.client_secret_env) {
            (Some(f), None) => match std::fs::read_to_string(f.get_ref()) {
                Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
                Ok(_) => {
                    c.error(
                        f.span(),
                        format!("the client secret file {} is empty", f.get_ref()),
                    );
                    String::new()
                }
                Err(e) => {
                    c.error(
                        f.span(),
                        format!("cannot read the client secret file {}: {e}", f.get_ref()),
                    );
                    String::new()
                }
            },
            (None, Some(v)) => match std::env::var(v.get_ref()) {
                Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
                _ => {
                    c.error(
                        v.span(),
                        format!(
                            "the environment variable {} holding the client secret is not set",
                            v.get_ref()
                        ),
                    );
                    String::new()
                }
            },
            _ => {
                c.error(
                    entry.span(),
                    "give the client secret with client_secret_file = \"/etc/ward/NAME.secret\" or client_secret_env = \"VARIABLE\" (one of them; never the secret itself)",
                );
                String::new()
            }
        };
        let username_claim = one_of(
            &o.username_claim,
            &["email", "preferred_username"],
            "email",
            "username_claim",
            c,
        );
        let rules = sso_rules(
            RawRules {
                name: &name,
                label: &o.label,
                role_map: &o.role_map,
                allowed_domains: &o.allowed_domains,
                accounts: &o.accounts,
                without_mfa: &o.without_mfa,
                logout: &o.logout,
            },
            username_claim,
            match &o.mfa_amr {
                Some(_) => texts(&o.mfa_amr),
                None => ["mfa", "otp", "hwk", "swk", "fido", "sc", "pop"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            },
            texts(&o.mfa_acr),
            roles,
            c,
        );
        let redirect_url = match &public_url {
            Some(u) => format!("{u}/.ward/callback"),
            None => {
                c.error(entry.span(), "single sign-on needs [server] public_url = \"https://…\": the provider sends people back there");
                String::new()
            }
        };
        out.push(OidcProvider {
            config: crate::auth::oidc::ProviderConfig {
                name: name.clone(),
                issuer,
                client_id,
                client_secret: secret,
                scopes: match &o.scopes {
                    Some(s) => texts(&Some(s.clone())),
                    None => vec!["email".into(), "profile".into()],
                },
                redirect_url,
                clock_skew: duration_or(&o.clock_skew, Duration::from_secs(60), c),
                groups_claim: o
                    .groups_claim
                    .as_ref()
                    .map(|g| g.get_ref().clone())
                    .unwrap_or_else(|| "groups".into()),
                ca: o.ca.as_ref().map(|p| PathBuf::from(p.get_ref())),
            },
            rules,
        });
    }
    out
}

/// `[server] public_url` without a trailing `/`, if set.
fn public_url(raw: &RawPolicy) -> Option<String> {
    raw.server
        .public_url
        .as_ref()
        .map(|u| u.get_ref().trim().trim_end_matches('/').to_string())
}

/// The trimmed texts of a list setting (none when absent).
fn texts(v: &Option<Vec<Text>>) -> Vec<String> {
    v.iter()
        .flatten()
        .map(|t| t.get_ref().trim().to_string())
        .collect()
}

/// A provider's settings that [`sso_rules`] reads, OpenID Connect or SAML alike.
struct RawRules<'a> {
    name: &'a str,
    label: &'a Option<Text>,
    role_map: &'a Option<BTreeMap<String, Vec<Text>>>,
    allowed_domains: &'a Option<Vec<Text>>,
    accounts: &'a Option<Text>,
    without_mfa: &'a Option<Text>,
    logout: &'a Option<Spanned<bool>>,
}

/// What ward makes of a provider's answer: the officer's rules, with roles checked.
fn sso_rules(
    r: RawRules<'_>,
    username_claim: String,
    mfa_amr: Vec<String>,
    mfa_acr: Vec<String>,
    roles: &BTreeMap<String, Role>,
    c: &mut Collector<'_>,
) -> SsoRules {
    let role_names: Vec<&str> = roles.keys().map(String::as_str).collect();
    let mut role_map = BTreeMap::new();
    for (group, mapped) in r.role_map.iter().flatten() {
        let mut list = Vec::new();
        for role in mapped {
            if role_names.contains(&role.get_ref().as_str()) {
                list.push(role.get_ref().clone());
            } else {
                let hint = closest(role.get_ref(), &role_names)
                    .map(|b| format!("; did you mean '{b}'?"))
                    .unwrap_or_default();
                c.error(
                    role.span(),
                    format!("unknown role '{}'{hint}", role.get_ref()),
                );
            }
        }
        role_map.insert(group.clone(), list);
    }
    let accounts = one_of(
        r.accounts,
        &["existing", "create"],
        "existing",
        "accounts",
        c,
    );
    let without = one_of(
        r.without_mfa,
        &["ward-totp", "refuse"],
        "ward-totp",
        "without_mfa",
        c,
    );
    SsoRules {
        label: r
            .label
            .as_ref()
            .map(|l| l.get_ref().clone())
            .unwrap_or_else(|| format!("Sign in with {}", r.name)),
        role_map,
        allowed_domains: r
            .allowed_domains
            .iter()
            .flatten()
            .map(|d| d.get_ref().trim().to_ascii_lowercase())
            .collect(),
        username_claim,
        create_accounts: accounts == "create",
        mfa_amr,
        mfa_acr,
        without_mfa: if without == "refuse" {
            WithoutMfa::Refuse
        } else {
            WithoutMfa::WardTotp
        },
        logout: r.logout.as_ref().map(|b| *b.get_ref()).unwrap_or(true),
    }
}

/// `value` when it is one of `allowed`, else `default` (with an error if it was given).
fn one_of(
    value: &Option<Text>,
    allowed: &[&str],
    default: &str,
    what: &str,
    c: &mut Collector<'_>,
) -> String {
    match value {
        None => default.to_string(),
        Some(t) if allowed.contains(&t.get_ref().as_str()) => t.get_ref().clone(),
        Some(t) => {
            c.error(
                t.span(),
                format!(
                    "{what} must be one of {}, not '{}'",
                    allowed.join(", "),
                    t.get_ref()
                ),
            );
            default.to_string()
        }
    }
}

/// The `[[login.saml]]` identity providers, with their metadata files read.
fn saml_providers(
    raw: &RawPolicy,
    roles: &BTreeMap<String, Role>,
    oidc: &[OidcProvider],
    c: &mut Collector<'_>,
) -> Vec<SamlProvider> {
    let mut out: Vec<SamlProvider> = Vec::new();
    let public_url = public_url(raw);
    for entry in raw.login.saml.iter().flatten() {
        let o = entry.get_ref();
        let name = match &o.name {
            Some(t) if !t.get_ref().trim().is_empty() => t.get_ref().trim().to_string(),
            _ => {
                c.error(
                    entry.span(),
                    "this [[login.saml]] provider needs name = \"…\" (a short word, e.g. \"adfs\")",
                );
                continue;
            }
        };
        if out.iter().any(|p| p.name == name) || oidc.iter().any(|p| p.config.name == name) {
            c.error(
                entry.span(),
                format!("there is already a provider named '{name}'"),
            );
        }
        if !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            c.error(
                entry.span(),
                format!("the provider name '{name}' may hold only letters, digits, - and _"),
            );
        }
        let rules = sso_rules(
            RawRules {
                name: &name,
                label: &o.label,
                role_map: &o.role_map,
                allowed_domains: &o.allowed_domains,
                accounts: &o.accounts,
                without_mfa: &o.without_mfa,
                logout: &o.logout,
            },
            "email".into(),
            Vec::new(),
            match &o.mfa_authn_context {
                Some(_) => texts(&o.mfa_authn_context),
                None => vec![
                    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract".into(),
                    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken".into(),
                    "http://schemas.microsoft.com/claims/multipleauthn".into(),
                ],
            },
            roles,
            c,
        );
        let Some(public_url) = &public_url else {
            c.error(entry.span(), "SAML single sign-on needs [server] public_url = \"https://…\": the identity provider sends people back there");
            continue;
        };
        let mut clock_skew = duration_or(&o.clock_skew, Duration::from_secs(60), c);
        // A wide allowance would take expired assertions: at most five minutes.
        if clock_skew > Duration::from_secs(300)
            && let Some(t) = &o.clock_skew
        {
            c.error(
                t.span(),
                "clock_skew may be at most \"5m\": fix the identity provider's clock instead",
            );
            clock_skew = Duration::from_secs(300);
        }
        let Some(file) = &o.idp_metadata else {
            c.error(
                entry.span(),
                "this [[login.saml]] provider needs idp_metadata = \"/etc/ward/NAME-metadata.xml\": the identity provider's metadata file (federation metadata), saved from its admin pages",
            );
            continue;
        };
        let sp = crate::auth::saml::sp_addresses(public_url);
        let spec = file.get_ref().trim();
        let source = if spec.starts_with("https://") || spec.starts_with("http://") {
            // Fetched when first used: an IdP that is down does not stop ward starting.
            let loopback = ["http://127.", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| spec.starts_with(p));
            if spec.starts_with("http://") && !loopback {
                c.error(
                    file.span(),
                    format!("the metadata address {spec} must be https (plain http only to this machine)"),
                );
                continue;
            }
            SamlSource::Url(spec.to_string())
        } else {
            let xml = match std::fs::read_to_string(spec) {
                Ok(x) => x,
                Err(e) => {
                    c.error(
                        file.span(),
                        format!("cannot read the metadata file {spec}: {e}"),
                    );
                    continue;
                }
            };
            match crate::auth::saml::Idp::from_metadata(&xml, &sp.0, &sp.1, &sp.2, clock_skew) {
                Ok(idp) => SamlSource::File(Box::new(idp)),
                Err(e) => {
                    c.error(file.span(), format!("{spec}: {e}"));
                    continue;
                }
            }
        };
        let attr = |v: &Option<Text>, default: &str| -> String {
            v.as_ref()
                .map(|t| t.get_ref().trim().to_string())
                .unwrap_or_else(|| default.to_string())
        };
        out.push(SamlProvider {
            name,
            source,
            sp,
            clock_skew,
            groups_attribute: attr(&o.groups_attribute, "groups"),
            username_attribute: attr(&o.username_attribute, ""),
            name_attribute: attr(&o.name_attribute, ""),
            sign_requests: o.sign_requests.as_ref().is_none_or(|b| *b.get_ref()),
            rules,
        });
    }
    out
}

/// `[login] saml_signing_key` and `saml_signing_cert`: both or neither; when given (and the
/// files are read) the key must load and the certificate be its own. Neither: ward's own, in
/// the state folder, made when first needed.
fn saml_signing(raw: &RawPolicy, certs: Certs<'_>, c: &mut Collector<'_>) -> SamlSigning {
    let l = &raw.login;
    let decrypt = l
        .saml_encrypted_assertions
        .as_ref()
        .is_some_and(|b| *b.get_ref());
    match (&l.saml_signing_key, &l.saml_signing_cert) {
        (Some(k), Some(cert)) => {
            let key = PathBuf::from(k.get_ref().trim());
            let crt = PathBuf::from(cert.get_ref().trim());
            if !certs.skipped()
                && let Err(e) = crate::auth::saml_key::SpKey::load(&key, &crt)
            {
                let span = if e.path == key { k.span() } else { cert.span() };
                c.error(span, format!("{e}"));
            }
            SamlSigning {
                key,
                cert: crt,
                given: true,
                decrypt,
            }
        }
        (None, None) => {
            let state = path_or(&raw.storage.state, "state");
            SamlSigning {
                key: state.join("saml-signing.key"),
                cert: state.join("saml-signing.crt"),
                given: false,
                decrypt,
            }
        }
        (Some(k), None) => {
            c.error(
                k.span(),
                "saml_signing_key needs saml_signing_cert = \"…\" too (the key's certificate, PEM)",
            );
            SamlSigning::default()
        }
        (None, Some(cert)) => {
            c.error(
                cert.span(),
                "saml_signing_cert needs saml_signing_key = \"…\" too (the certificate's private key, PEM)",
            );
            SamlSigning::default()
        }
    }
}

/// What a `device` setting asks for.
#[derive(Debug, Clone, Copy, Default)]
struct DeviceRule {
    /// An enrolled device.
    required: bool,
    /// The person's own enrolled device (its certificate names them).
    own: bool,
}

/// `device = "required" | "own" | "optional"`.
fn device(value: &Text, c: &mut Collector<'_>) -> DeviceRule {
    match value.get_ref().as_str() {
        "required" => DeviceRule {
            required: true,
            own: false,
        },
        "own" => DeviceRule {
            required: true,
            own: true,
        },
        "optional" => DeviceRule::default(),
        other => {
            c.error(
                value.span(),
                format!("device must be \"required\" (an enrolled device), \"own\" (the person's own enrolled device) or \"optional\", not '{other}'"),
            );
            DeviceRule::default()
        }
    }
}

/// Role names that must exist.
fn role_list(list: &Option<Vec<Text>>, role_names: &[&str], c: &mut Collector<'_>) -> Vec<String> {
    let mut out = Vec::new();
    for role in list.iter().flatten() {
        if role_names.contains(&role.get_ref().as_str()) {
            out.push(role.get_ref().clone());
        } else {
            let hint = match closest(role.get_ref(), role_names) {
                Some(best) => format!("; did you mean '{best}'?"),
                None => "; roles are declared in [roles]".into(),
            };
            c.error(
                role.span(),
                format!("unknown role '{}'{hint}", role.get_ref()),
            );
        }
    }
    out
}

/// A size such as `10MB`, `512KiB` or `1GB`.
fn size(value: &Text, c: &mut Collector<'_>) -> Option<u64> {
    let text = value.get_ref().trim();
    let split = text
        .find(|ch: char| !ch.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1024,
        "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        _ => 0,
    };
    match num.parse::<u64>() {
        Ok(n) if factor > 0 && n > 0 => Some(n.saturating_mul(factor)),
        _ => {
            c.error(
                value.span(),
                format!("'{text}' is not a size; write it like 500KB, 10MB or 1GB"),
            );
            None
        }
    }
}

/// A rate such as `60/minute`.
fn rate(value: &Text, c: &mut Collector<'_>) -> Option<(u32, Duration)> {
    let text = value.get_ref().trim();
    let parsed = text.split_once('/').and_then(|(n, per)| {
        let n: u32 = n.trim().parse().ok().filter(|n| *n > 0)?;
        let per = match per.trim() {
            "second" | "s" => Duration::from_secs(1),
            "minute" | "min" | "m" => Duration::from_secs(60),
            "hour" | "h" => Duration::from_secs(3600),
            "day" | "d" => Duration::from_secs(86400),
            _ => return None,
        };
        Some((n, per))
    });
    if parsed.is_none() {
        c.error(
            value.span(),
            format!("'{text}' is not a rate; write it like 60/minute, 10/second or 500/hour"),
        );
    }
    parsed
}

fn methods(
    list: &[Text],
    span: std::ops::Range<usize>,
    c: &mut Collector<'_>,
) -> Option<Vec<Method>> {
    if list.is_empty() {
        c.error(span, "methods = [] allows no method; list the methods (like [\"GET\"]) or remove the line to allow all");
        return None;
    }
    // WebDAV's methods (RFC 4918, and REPORT from RFC 3253) too, so that a
    // file-sharing or calendar app can be allowed one without allowing DELETE.
    const KNOWN: [&str; 15] = [
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "REPORT",
    ];
    let mut out = Vec::new();
    for m in list {
        let upper = m.get_ref().trim().to_ascii_uppercase();
        if KNOWN.contains(&upper.as_str()) {
            if let Ok(method) = upper.parse::<Method>() {
                out.push(method);
            }
        } else {
            c.error(
                m.span(),
                format!(
                    "'{}' is not a method ward knows; use {}",
                    m.get_ref(),
                    KNOWN.join(", ")
                ),
            );
        }
    }
    // A route for GET also serves HEAD, as every web server does.
    if out.contains(&Method::GET) && !out.contains(&Method::HEAD) {
        out.push(Method::HEAD);
    }
    if out.is_empty() { None } else { Some(out) }
}

fn route_table(
    raw: &[Spanned<RawRoute>],
    routes: &[Route],
    apps: &[App],
    c: &mut Collector<'_>,
) -> RouteTable {
    let mut matchers: Vec<Matcher> = Vec::new();
    let mut resolved_apps: Vec<bool> = Vec::new();
    for (entry, route) in raw.iter().zip(routes) {
        let r = entry.get_ref();
        // A route whose app did not compile has its error already; it must
        // not borrow another app's host and then clash with that app's routes.
        let resolved = r
            .app
            .as_ref()
            .is_some_and(|n| apps.get(route.app).is_some_and(|a| a.name == *n.get_ref()));
        let fold = apps.get(route.app).is_some_and(|a| a.case_insensitive);
        let pattern = match &r.path {
            Some(p) => match Pattern::parse(p.get_ref(), fold) {
                Ok(pattern) => pattern,
                Err(e) => {
                    c.error(p.span(), e.to_string());
                    Pattern {
                        segments: Vec::new(),
                        globstar: false,
                    }
                }
            },
            None => Pattern {
                segments: Vec::new(),
                globstar: false,
            },
        };
        let host = r
            .host
            .as_ref()
            .map(|h| h.get_ref().trim().to_ascii_lowercase())
            .or_else(|| apps.get(route.app).and_then(|a| a.host.clone()));
        let methods = r.methods.as_ref().and_then(|m| methods(m, entry.span(), c));
        let matcher = Matcher {
            pattern,
            host: host.map(Into::into),
            methods,
            fold_case: fold,
        };
        // A route with conditions narrows another on the same path; it shadows nothing.
        let conditional = r.query.is_some() || r.form.is_some();
        let plain = |id: usize| {
            raw.get(id)
                .is_some_and(|e| e.get_ref().query.is_none() && e.get_ref().form.is_none())
        };
        if resolved
            && let Some(earlier) =
                matchers
                    .iter()
                    .zip(&resolved_apps)
                    .enumerate()
                    .position(|(id, (m, ok))| {
                        *ok && !conditional && plain(id) && matcher.shadowed_by(m)
                    })
            && let Some(path) = &r.path
        {
            c.error(
                path.span(),
                format!(
                    "this route can never apply: the route at line {} has the same path and covers the same host and methods; merge them or delete one",
                    routes.get(earlier).map(|r| r.line).unwrap_or(0)
                ),
            );
        }
        matchers.push(matcher);
        resolved_apps.push(resolved);
    }
    RouteTable::new(matchers)
}
