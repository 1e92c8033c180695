//! The loaded policy and the one function that decides about a request.
//!
//! `decide` is pure: it reads only the request facts and the policy, so the
//! proxy, `ward explain` and the tests all get the same answer.

#[cfg(test)]
mod decide_tests;
pub mod headers;
pub mod media;
pub mod net;
pub mod routes;

use http::Method;
use http::uri::{Authority, Scheme};
use net::NetSet;
use routes::RouteTable;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A validated, compiled policy file. Immutable; replaced whole on reload.
#[derive(Debug)]
pub struct Policy {
    /// The file it was loaded from.
    pub file: PathBuf,
    /// The practice's name, shown on ward's pages.
    pub practice: String,
    /// Listeners, certificate and limits.
    pub server: ServerSettings,
    /// Idle logoff and session lifetime.
    pub sessions: SessionSettings,
    /// Login requirements.
    pub login: LoginSettings,
    /// ward's own log.
    pub log: LogSettings,
    /// Where accounts and state live.
    pub storage: StorageSettings,
    /// The Prometheus metrics listener.
    pub metrics: MetricsSettings,
    /// The emergency access procedure, if the practice has one.
    pub break_glass: Option<BreakGlass>,
    /// Export rules.
    pub export: ExportSettings,
    /// The audit trail.
    pub audit: crate::audit::AuditSettings,
    /// Alerts for the officer.
    pub alerts: crate::audit::alerts::AlertSettings,
    /// The periodic access review.
    pub review: ReviewSettings,
    /// Networks the whole proxy may be used from, if restricted.
    pub allow_from: Option<NetSet>,
    /// Named networks.
    pub networks: BTreeMap<String, NetSet>,
    /// Roles and their settings.
    pub roles: BTreeMap<String, Role>,
    /// Upstream apps.
    pub apps: Vec<App>,
    /// Routes, in file order; ids index this list.
    pub routes: Vec<Route>,
    /// Ids of the routes with conditions, in file order.
    pub conditional: Vec<usize>,
    /// The routes compiled for lookup.
    pub table: RouteTable,
}

/// `[review]`: the periodic access review.
#[derive(Debug, Clone)]
pub struct ReviewSettings {
    /// Each person's access is reviewed at least this often; later, it is overdue.
    pub period: Duration,
}

/// The review period when the policy names none (a quarter).
pub const DEFAULT_REVIEW_PERIOD: Duration = Duration::from_secs(90 * 24 * 3600);

/// `[server]`.
#[derive(Debug)]
pub struct ServerSettings {
    /// HTTPS listener.
    pub listen: SocketAddr,
    /// Optional plain-HTTP listener that only redirects.
    pub redirect_http: Option<SocketAddr>,
    /// The HTTPS port clients use, for redirects (defaults to `listen`'s port).
    pub public_port: u16,
    /// The address people use to reach ward, for enrollment links.
    pub public_url: String,
    /// TLS settings with the certificate; absent when loaded without certificates.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Load balancers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: NetSet,
    /// Concurrent client connections at most.
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Most request headers.
    pub max_headers: usize,
    /// Time a client has to send a request's headers (slowloris).
    pub header_read_timeout: Duration,
    /// Time a client has to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    pub keepalive_timeout: Duration,
    /// Send `Strict-Transport-Security`.
    pub hsts: bool,
    /// Organizations whose staff must connect from an enrolled device.
    pub device_orgs: Vec<String>,
    /// The officer's revoked-devices file (`device_crl`), watched for changes.
    pub device_crl: Option<std::path::PathBuf>,
    /// The device certificates it revokes (refused on connections already open).
    pub revoked_devices: Vec<crate::certs::RevokedDevice>,
    /// ward's own host name (no app answers for it): sign-in, the officer's
    /// console and break-glass are served there and nowhere else.
    pub ward_host: Option<String>,
    /// Host names the practice configured (apps, routes, `ward_host`,
    /// `public_url`, the certificate's names; `*.` for a wildcard): only these
    /// are written into redirects and forwarded host headers.
    pub public_hosts: Vec<String>,
}

/// `[sessions]`.
#[derive(Debug)]
pub struct SessionSettings {
    /// Idle logoff.
    pub idle_timeout: Duration,
    /// A session ends after this long whatever its activity.
    pub max_lifetime: Duration,
    /// Concurrent sessions per person.
    pub max_per_user: usize,
    /// What a sign-in beyond `max_per_user` does.
    pub on_too_many: TooMany,
    /// Requests to these paths do not count as activity (an app's own polling).
    pub background_paths: RouteTable,
    /// Requests with one of these headers (`Name` or `Name: value`) do not count as activity.
    pub background_headers: Vec<(http::HeaderName, Option<String>)>,
    /// Warn a minute before idle logoff and clear the screen after it (script added to HTML pages).
    pub idle_warning: bool,
    /// Whether a session works only from where it was signed in.
    pub bind_to: SessionBinding,
    /// Where sessions live.
    pub store: SessionStoreKind,
}

/// `[sessions] store`: where sessions live.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SessionStoreKind {
    /// In this process's memory, saved in the state folder across restarts.
    #[default]
    Memory,
    /// In Redis, shared by every instance.
    Redis(RedisStoreSettings),
}

/// How to reach the shared Redis store.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisStoreSettings {
    /// `redis://` or `rediss://` (TLS) URL.
    pub url: String,
    /// The password from `store_password_file`, if given.
    pub password: Option<String>,
    /// The authority (PEM) from `store_ca_file`, trusted instead of the system's, if given.
    pub ca: Option<Vec<u8>>,
    /// The longest a session's last activity waits before it is written to Redis.
    pub activity_every: Duration,
    /// How long signed-in sessions carry on while Redis cannot be reached (zero: refused at once).
    pub down_grace: Duration,
}

impl std::fmt::Debug for RedisStoreSettings {
    // The URL may carry a password: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RedisStoreSettings(every {:?}, grace {:?})",
            self.activity_every, self.down_grace
        )
    }
}

/// `[sessions] bind_to`: where a session cookie is honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionBinding {
    /// From any address (the default: people's addresses change while they work).
    #[default]
    None,
    /// From the sign-in's network: the same IPv4 /24 or IPv6 /64.
    Network,
    /// From the sign-in's address only.
    Address,
}

impl SessionBinding {
    /// True when a session signed in from `signed_in` may be used from `now_from`.
    pub fn allows(self, signed_in: std::net::IpAddr, now_from: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        let (a, b) = (net::normalize(signed_in), net::normalize(now_from));
        match (self, a, b) {
            (SessionBinding::None, _, _) => true,
            (SessionBinding::Address, a, b) => a == b,
            (SessionBinding::Network, V4(a), V4(b)) => a.octets()[..3] == b.octets()[..3],
            (SessionBinding::Network, V6(a), V6(b)) => a.segments()[..4] == b.segments()[..4],
            (SessionBinding::Network, _, _) => false,
        }
    }
}

/// What happens when someone signs in with all their sessions in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooMany {
    /// The oldest session ends.
    EndOldest,
    /// The new sign-in is refused.
    Refuse,
}

/// `[break_glass]`: who may invoke emergency access, what it gives, for how long.
#[derive(Debug, Clone)]
pub struct BreakGlass {
    /// Roles whose holders may invoke it.
    pub allowed_roles: Vec<String>,
    /// Roles added while it lasts.
    pub emergency_roles: Vec<String>,
    /// How long it lasts.
    pub duration: Duration,
}

/// `[metrics]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where `/metrics` is served; none: no metrics listener.
    pub listen: Option<SocketAddr>,
}

/// `[storage]`.
#[derive(Debug, Clone)]
pub struct StorageSettings {
    /// The accounts file the officer edits.
    pub users: PathBuf,
    /// The folder for ward's own state (secrets), readable by ward alone.
    pub state: PathBuf,
}

/// Whether a second factor is needed, and which kind. Ordered from weakest to strictest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mfa {
    /// Whatever the global setting says is not tightened here.
    Optional,
    /// Password and a second factor.
    Required,
    /// Only a passkey or security key (WebAuthn) meets it: an authenticator code can be phished.
    PhishingResistant,
}

/// `[login]`.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// Global MFA requirement.
    pub mfa: Mfa,
    /// Failed sign-ins in a row before an account is locked.
    pub lockout_after: u32,
    /// How long a locked account stays locked (the officer can unlock it sooner).
    pub lockout_time: Duration,
    /// How long the "ask for more time" form of an account past its end date stays usable.
    pub more_time_form: Duration,
    /// Sign-in attempts one address may make per minute.
    pub attempts_per_minute: u32,
    /// Identity providers for single sign-on.
    pub oidc: Vec<OidcProvider>,
    /// A passkey alone (no password) may sign a person in.
    pub passwordless: bool,
    /// The shared parent domain passkeys are made for (`passkey_domain`); when None, each
    /// host ward signs people in on has passkeys of its own.
    pub passkey_domain: Option<String>,
    /// SAML 2.0 identity providers for single sign-on.
    pub saml: Vec<SamlProvider>,
    /// ward's SAML signing key and certificate files.
    pub saml_signing: SamlSigning,
}

/// Where ward's SAML signing key and certificate are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SamlSigning {
    /// The private key (PEM).
    pub key: std::path::PathBuf,
    /// Its certificate (PEM), the one in ward's metadata.
    pub cert: std::path::PathBuf,
    /// Named by the officer (else ward's own, made in the state folder when missing).
    pub given: bool,
    /// IdPs may encrypt assertions to this key (`saml_encrypted_assertions`).
    pub decrypt: bool,
}

/// What to do when ward requires MFA and the provider shows no second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutMfa {
    /// Ask for ward's own authenticator code (the account must have one).
    WardTotp,
    /// Refuse the sign-in.
    Refuse,
}

/// One `[[login.oidc]]` provider.
#[derive(Debug, Clone)]
pub struct OidcProvider {
    /// Connection settings (the client secret already read).
    pub config: crate::auth::oidc::ProviderConfig,
    /// What ward makes of what the provider says.
    pub rules: SsoRules,
}

/// One `[[login.saml]]` identity provider.
#[derive(Debug, Clone)]
pub struct SamlProvider {
    /// The policy's name for it (in `/.ward/sso/NAME`).
    pub name: String,
    /// Where the IdP's metadata comes from.
    pub source: SamlSource,
    /// ward's entity id, answer (ACS) and logout addresses for this IdP.
    pub sp: (String, String, String),
    /// Tolerance for the IdP's clock.
    pub clock_skew: Duration,
    /// The attribute holding the person's groups.
    pub groups_attribute: String,
    /// The attribute naming the account; empty: the NameID.
    pub username_attribute: String,
    /// The attribute holding the display name; empty: none.
    pub name_attribute: String,
    /// Sign the requests sent to it (`AuthnRequest`, `LogoutRequest`, `LogoutResponse`).
    pub sign_requests: bool,
    /// What ward makes of what the provider says.
    pub rules: SsoRules,
}

/// Where a SAML IdP's metadata comes from.
#[derive(Debug, Clone)]
pub enum SamlSource {
    /// A file, read when the policy loaded.
    File(Box<crate::auth::saml::Idp>),
    /// The IdP's published address, fetched on first use and again once a day.
    Url(String),
}

/// The officer's rules for a single sign-on provider, OpenID Connect or SAML alike.
#[derive(Debug, Clone)]
pub struct SsoRules {
    /// The button's words, e.g. "Sign in with Microsoft".
    pub label: String,
    /// Provider group → ward roles.
    pub role_map: BTreeMap<String, Vec<String>>,
    /// E-mail domains allowed to sign in (empty: any).
    pub allowed_domains: Vec<String>,
    /// The claim that names the account: `email` (its part before @) or `preferred_username`.
    pub username_claim: String,
    /// Make an account on first sign-in (with the mapped roles) instead of requiring one in users.toml.
    pub create_accounts: bool,
    /// `amr` values that show a second factor (OpenID Connect).
    pub mfa_amr: Vec<String>,
    /// `acr` values (OpenID Connect) or `AuthnContextClassRef` values (SAML) that show a second factor.
    pub mfa_acr: Vec<String>,
    /// When MFA is required and not shown.
    pub without_mfa: WithoutMfa,
    /// Send people to the provider's sign-out too, when it offers one.
    pub logout: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Line format.
    pub format: LogFormat,
    /// Least severe level written.
    pub level: tracing::Level,
    /// Whether request lines carry an app's path (which may hold a patient's
    /// number); the audit trail always does.
    pub paths: bool,
}

/// Whether downloads and exports pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Export {
    /// Exports pass.
    Allow,
    /// Exports are refused.
    Block,
}

/// One role of `[roles]`.
#[derive(Debug, Clone, Default)]
pub struct Role {
    /// What the role is for, in the officer's words.
    pub description: String,
    /// Idle logoff for sessions with this role.
    pub idle_timeout: Option<Duration>,
    /// Export rule for this role.
    pub export: Option<Export>,
    /// MFA rule for this role.
    pub mfa: Option<Mfa>,
    /// People with this role must connect from an enrolled device.
    pub device_required: bool,
    /// People with this role must connect from their own enrolled device.
    pub own_device: bool,
    /// People with this role may use the apps only from these networks.
    pub allow_from: Option<NetSet>,
}

/// One upstream web system.
#[derive(Debug)]
pub struct App {
    /// The officer's name for it.
    pub name: String,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// Upstream host and port.
    pub authority: Authority,
    /// The public host it answers for (lower case, no port), if set.
    pub host: Option<String>,
    /// TLS settings for an `https` upstream.
    pub client_tls: Option<Arc<rustls::ClientConfig>>,
    /// Time to connect to the upstream.
    pub connect_timeout: Duration,
    /// Time for the upstream to start answering.
    pub response_timeout: Duration,
    /// Send the client's `Host` upstream instead of the upstream's own.
    pub preserve_host: bool,
    /// Rewrite `Location`, `Content-Location` and `Refresh` that point at the upstream.
    pub rewrite_redirects: bool,
    /// Drop a `Set-Cookie` `Domain` that names the upstream, so the cookie belongs to the
    /// public host. (`Path` needs no rewrite: upstreams are always mounted at `/`.)
    pub rewrite_cookies: bool,
    /// ward keeps the app's cookies in the person's ward session (the browser
    /// never holds them), so an app session ends with the ward session.
    pub ward_keeps_cookies: bool,
    /// Match paths ignoring ASCII case (legacy IIS).
    pub case_insensitive: bool,
    /// Account attributes sent to this app: (attribute name, header name).
    pub identity_headers: Vec<(String, http::HeaderName)>,
    /// The app's shared credential, sent by ward on every request, if set.
    pub upstream_auth: Option<UpstreamAuth>,
}

/// A shared credential ward sends to an app (`upstream_auth`): the header and
/// its value, read from the environment or a file, never from the policy.
#[derive(Clone)]
pub struct UpstreamAuth {
    /// `Authorization` for HTTP Basic, or the header the officer named.
    pub header: http::HeaderName,
    /// The secret value (marked sensitive; never printed).
    pub value: http::HeaderValue,
}

impl std::fmt::Debug for UpstreamAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value is a password: debug output (and so any log) shows only the header.
        f.debug_struct("UpstreamAuth")
            .field("header", &self.header)
            .field("value", &"[hidden]")
            .finish()
    }
}

/// Who may use a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// No login needed.
    Public,
    /// Signed-in people with one of these roles, or named here.
    Members {
        /// Roles allowed.
        roles: Vec<String>,
        /// Users allowed by name.
        users: Vec<String>,
    },
}

/// One field a route hides or masks, wherever the app shows it: on HTML pages
/// by its CSS selector, in CSV columns and JSON fields by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRule {
    /// The CSS selector as written (`#ssn`, `td.diagnosis`, `input[name=dob]`).
    pub selector: String,
    /// The CSV column / JSON field name the selector names (`ssn`, `diagnosis`,
    /// `dob`), if it names one.
    pub name: Option<String>,
    /// What is left of the field.
    pub show: Show,
}

/// What a field rule leaves of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// Nothing: the content is removed (`hide`).
    Nothing,
    /// The last 4 letters or digits; the rest replaced (`mask = { … = "last4" }`).
    Last4,
}

impl Show {
    /// The kinds an officer may write in `mask`, as written.
    pub const MASK_KINDS: [&str; 1] = ["last4"];

    /// The kind as the officer writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Show::Nothing => "hidden",
            Show::Last4 => "last4",
        }
    }
}

/// Whether a CSV column header or JSON field name is the field `name`: case,
/// spaces, `_` and `-` do not count ("Date of Birth" is `date_of_birth`).
pub fn same_field(header: &str, name: &str) -> bool {
    let fold = |s: &str| {
        s.chars()
            .filter(|c| !matches!(c, ' ' | '_' | '-' | '\t'))
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    fold(header.trim()) == fold(name)
}

/// One `[[routes]]` entry.
#[derive(Debug)]
pub struct Route {
    /// Line of the route in the policy file.
    pub line: usize,
    /// Index into `Policy::apps`.
    pub app: usize,
    /// The path pattern as written.
    pub path: String,
    /// Who may use it.
    pub access: Access,
    /// Networks it may be used from, if restricted.
    pub from: Option<NetSet>,
    /// Route-specific idle logoff.
    pub idle_timeout: Option<Duration>,
    /// Route-specific export rule.
    pub export: Option<Export>,
    /// Route-specific MFA rule.
    pub mfa: Option<Mfa>,
    /// Every answer of this route is an export (`/reports/*/export`).
    pub export_endpoint: bool,
    /// Answers larger than this many bytes are refused (bulk pulls).
    pub max_response: Option<u64>,
    /// Requests per person on this route: (count, per period).
    pub rate_limit: Option<(u32, Duration)>,
    /// JSON fields (names or JSON pointers) masked for `redact_for` roles.
    pub redact_fields: Vec<String>,
    /// Roles whose answers are redacted.
    pub redact_for: Vec<String>,
    /// Fields (`hide` and `mask`) that `hide_for` roles never see in full.
    pub fields: Vec<FieldRule>,
    /// Roles from whom the `fields` are hidden or masked.
    pub hide_for: Vec<String>,
    /// Roles that may not send request bodies here (forwarding/sharing settings).
    pub no_body_for: Vec<String>,
    /// Only from an enrolled device (a client certificate from the device CA).
    pub device_required: bool,
    /// Only from the person's own enrolled device (its certificate names them).
    pub own_device: bool,
    /// HTML pages carry a faint overlay naming the person, the time and the request.
    pub watermark: bool,
    /// HTML pages print as a notice instead of their content.
    pub print_blocked: bool,
    /// Query parameters and form fields the request must carry for this route
    /// to apply (an export an app selects by parameter); empty: always.
    pub when: Conditions,
}

/// What a request must carry for a route with conditions to apply: each named
/// query parameter or form field with exactly this value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    /// Query parameters (name, value).
    pub query: Vec<(String, String)>,
    /// Form fields of a url-encoded POST body (name, value).
    pub form: Vec<(String, String)>,
}

impl Conditions {
    /// No conditions: the route applies on its path alone.
    pub fn is_empty(&self) -> bool {
        self.query.is_empty() && self.form.is_empty()
    }

    /// Whether a request with these query pairs and form fields meets every condition.
    pub fn hold(&self, query: &[(String, String)], form: &[(String, String)]) -> bool {
        let has = |pairs: &[(String, String)], (k, v): &(String, String)| {
            pairs.iter().any(|(pk, pv)| pk == k && pv == v)
        };
        self.query.iter().all(|c| has(query, c)) && self.form.iter().all(|c| has(form, c))
    }
}

/// `[export]`: what counts as an export, and the defaults.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// Media types (with any parameters they require) whose answers are exports.
    pub types: Vec<media::TypePattern>,
    /// Whether vendor accounts may export where nothing else says.
    pub vendors: Export,
    /// Largest JSON answer ward redacts; larger ones are refused for redacted roles.
    pub redact_max: u64,
    /// Who to ask for an export grant, shown on the refusal page.
    pub contact: String,
}

/// Media types that are exports unless the officer lists others (`types`);
/// `extra_types` adds to them. Imaging (DICOM files, DICOMweb answers and their
/// bulk data) is patient data like any spreadsheet.
pub const DEFAULT_EXPORT_TYPES: [&str; 25] = [
    "text/csv",
    "text/tab-separated-values",
    "application/csv",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/pdf",
    "application/zip",
    "application/x-zip-compressed",
    "application/gzip",
    "application/x-gzip",
    "application/x-tar",
    "application/x-7z-compressed",
    "application/vnd.rar",
    "application/octet-stream",
    "application/hl7-v2",
    "application/fhir+json",
    "application/fhir+xml",
    "application/xml",
    "application/dicom",
    "application/dicom+json",
    "application/dicom+xml",
    "multipart/related; type=\"application/dicom\"",
    "multipart/related; type=\"application/dicom+xml\"",
    "multipart/related; type=\"application/octet-stream\"",
];

/// The signed-in person a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Account name.
    pub user: String,
    /// Roles in force.
    pub roles: Vec<String>,
    /// The person's own networks (vendors), if restricted.
    pub allow_from: Option<NetSet>,
    /// Whether this sign-in included a second factor.
    pub mfa: bool,
    /// Whether that factor (or a passwordless sign-in) was a passkey or security key.
    pub passkey: bool,
    /// Emergency (break-glass) access is in force: its roles are in `roles`.
    pub emergency: bool,
    /// The person works for a vendor (their organization is not the practice).
    pub vendor: bool,
    /// The person must connect from an enrolled device (role or organization says so).
    pub device_required: bool,
    /// The officer's export grants for this person in force now.
    pub export_grants: Vec<ExportGrant>,
    /// The officer's access grants (approved access requests) for this person in force now.
    pub access_grants: Vec<AccessGrant>,
}

/// An officer's time-limited permission to open an app's pages matching a pattern that the
/// person's roles do not open (every other rule of the route still applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessGrant {
    /// The grant's id.
    pub id: String,
    /// Why it was granted (may name a patient: audit trail only).
    pub reason: String,
    /// The app it is for, by name.
    pub app: String,
    /// The paths it covers.
    pub pattern: routes::Pattern,
}

/// An officer's time-limited permission to export from paths matching a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportGrant {
    /// The grant's id.
    pub id: String,
    /// Why it was granted (may name a patient: audit trail only).
    pub reason: String,
    /// The paths it covers.
    pub pattern: routes::Pattern,
}

/// Whether `people` (from a device certificate) names this person or one of their roles.
pub fn owns_device(who: &Identity, people: &[String]) -> bool {
    people.iter().any(|p| match p.strip_prefix("role:") {
        Some(role) => who.roles.iter().any(|r| r == role),
        None => *p == who.user,
    })
}

/// What ward knows about a request when it decides.
#[derive(Debug, Clone)]
pub struct Facts<'r, 'i> {
    /// The client's address (after trusted-proxy handling).
    pub client_ip: IpAddr,
    /// Request method.
    pub method: &'r Method,
    /// Requested host, lower case, no port.
    pub host: &'r str,
    /// Canonical path.
    pub path: &'r str,
    /// Who is signed in, if anyone.
    pub identity: Option<&'i Identity>,
    /// The people (account names) and groups (`role:NAME`) the connection's
    /// device certificate names; empty when it names nobody or there is none.
    pub device_people: &'r [String],
    /// The connection's device certificate is on the officer's revocation list.
    pub device_revoked: bool,
    /// The connection presented a client certificate from the device CA.
    pub device: bool,
    /// The query's parameters, decoded (for routes with query conditions).
    pub query: &'r [(String, String)],
    /// The fields of a url-encoded form body, when ward read it (routes with form conditions).
    pub form: &'r [(String, String)],
}

impl<'r> Facts<'r, 'r> {
    /// A request `who` would make from their own enrolled device (never a revoked one), with
    /// no query or form: what the policy diff and the launcher ask about.
    pub fn on_own_device(
        client_ip: IpAddr,
        method: &'r Method,
        host: &'r str,
        path: &'r str,
        who: Option<&'r Identity>,
    ) -> Self {
        Facts {
            client_ip,
            method,
            host,
            path,
            identity: who,
            device_people: who.map_or(&[], |w| std::slice::from_ref(&w.user)),
            device_revoked: false,
            device: true,
            query: &[],
            form: &[],
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The client address is outside the networks allowed.
    Network,
    /// No route covers this host and path.
    NoRoute,
    /// The routes for this path do not allow this method.
    Method,
    /// The signed-in person has no role or name the route allows.
    Role,
    /// The route or the person needs an enrolled device and the connection has none.
    Device,
    /// The device is enrolled to someone else, or a person's own device is needed
    /// and this one names nobody.
    OtherDevice,
    /// The device's certificate is on the officer's revocation list.
    DeviceRevoked,
    /// The route or a role needs a passkey or security key, and this sign-in used none.
    Passkey,
}

impl Refusal {
    /// A short machine-readable name, for logs and audit.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Network => "network",
            Refusal::NoRoute => "no-route",
            Refusal::Method => "method",
            Refusal::Device => "device",
            Refusal::OtherDevice => "device-other-person",
            Refusal::DeviceRevoked => "device-revoked",
            Refusal::Role => "role",
            Refusal::Passkey => "passkey-needed",
        }
    }

    /// The reason in plain words, for the refusal page.
    pub fn explain(self) -> &'static str {
        match self {
            Refusal::Network => {
                "This system can only be used from the practice's approved networks."
            }
            Refusal::NoRoute => "The practice's access policy does not cover this page.",
            Refusal::Method => {
                "The practice's access policy does not allow this kind of request here."
            }
            Refusal::Role => "Your account's roles do not include access to this page.",
            Refusal::Device => {
                "This page can only be used from a computer the practice (or your company) has enrolled."
            }
            Refusal::OtherDevice => {
                "This page can only be used from your own enrolled computer, and this computer is enrolled to someone else."
            }
            Refusal::DeviceRevoked => {
                "This computer's enrollment has been withdrawn by the practice."
            }
            Refusal::Passkey => {
                "This page needs a sign-in with your passkey or security key; an authenticator code is not enough here. Sign out (/.ward/logout), then sign in again and choose \"Use a passkey or security key\". If you have none yet, add one at /.ward/passkeys."
            }
        }
    }
}

/// The outcome of `decide`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward to the route's app.
    Allow,
    /// Ask the person to sign in first.
    Login,
    /// Refuse.
    Deny(Refusal),
}

/// Whether an answer that is an export (a download of patient data) may pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportRule<'a> {
    /// Exports pass: nothing blocks them.
    Allowed,
    /// Exports pass because of this officer's grant (recorded with each export).
    Granted(&'a ExportGrant),
    /// Exports are refused, for this reason.
    Blocked(ExportBlock),
}

/// What blocks exports for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportBlock {
    /// The route says `export = "block"`.
    Route,
    /// A role of the person says `export = "block"` (a blocking role outweighs an allowing one).
    Role,
    /// `[export] vendors = "block"` and nothing allows it for this vendor's staff.
    Vendor,
}

impl ExportBlock {
    /// The rule in words, for `ward explain` and the refusal page.
    pub fn explain(self) -> &'static str {
        match self {
            ExportBlock::Route => "the route blocks exports",
            ExportBlock::Role => "a role of the person blocks exports",
            ExportBlock::Vendor => {
                "vendor staff may not export unless a role or the route allows it"
            }
        }
    }
}

/// Everything ward settles about a request before it is forwarded: whether it
/// goes, by which route, and what the later stages must enforce on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    /// What to do.
    pub verdict: Verdict,
    /// The route that applied, by id, if any did.
    pub route: Option<usize>,
    /// The sign-in must have included a second factor.
    pub mfa_needed: bool,
    /// That factor must have been a passkey or security key (`mfa = "phishing-resistant"`).
    pub passkey_needed: bool,
    /// The idle logoff in force: the person's (shortest of their roles, else
    /// the policy's), shortened by the route's own. None when nobody is signed in.
    pub idle_limit: Option<Duration>,
    /// Whether exports pass.
    pub export: ExportRule<'a>,
    /// Every answer of the route counts as an export.
    pub export_endpoint: bool,
    /// Answers larger than this are refused.
    pub max_response: Option<u64>,
    /// Requests per person: (count, per period).
    pub rate_limit: Option<(u32, Duration)>,
    /// JSON fields are masked for this person.
    pub redact: bool,
    /// The route's field rules (`hide`, `mask`) apply to this person's answers.
    pub hide: bool,
    /// This person may not send a request body here.
    pub no_body: bool,
    /// The officer's access grant that let this person in where their roles do not.
    pub access_grant: Option<&'a AccessGrant>,
}

impl Decision<'_> {
    fn refused(verdict: Verdict, route: Option<usize>) -> Decision<'static> {
        Decision {
            verdict,
            route,
            mfa_needed: false,
            passkey_needed: false,
            idle_limit: None,
            export: ExportRule::Blocked(ExportBlock::Route),
            export_endpoint: false,
            max_response: None,
            rate_limit: None,
            redact: false,
            hide: false,
            no_body: true,
            access_grant: None,
        }
    }
}

/// The export rule for `who` on `route` at `path`: blocked when the route,
/// any of the person's roles, or (for vendor staff, unless a role or the route
/// allows it) the vendor default blocks, unless an officer's grant covers `path`.
pub fn export_rule<'a>(
    policy: &Policy,
    route: &Route,
    who: Option<&'a Identity>,
    path: &str,
) -> ExportRule<'a> {
    let roles = who.map(|w| w.roles.as_slice()).unwrap_or(&[]);
    let block = if route.export == Some(Export::Block) {
        Some(ExportBlock::Route)
    } else {
        match role_export(policy, roles) {
            Some(Export::Block) => Some(ExportBlock::Role),
            role => {
                let allowed = role == Some(Export::Allow) || route.export == Some(Export::Allow);
                (who.is_some_and(|w| w.vendor)
                    && policy.export.vendors == Export::Block
                    && !allowed)
                    .then_some(ExportBlock::Vendor)
            }
        }
    };
    let Some(block) = block else {
        return ExportRule::Allowed;
    };
    match who.and_then(|w| w.export_grants.iter().find(|g| g.pattern.matches(path))) {
        Some(g) => ExportRule::Granted(g),
        None => ExportRule::Blocked(block),
    }
}

/// What a person's roles say about exports together: `Block` if any role
/// blocks (the stricter rule wins), else `Allow` if any allows, else nothing.
pub fn role_export(policy: &Policy, roles: &[String]) -> Option<Export> {
    let mut rule = None;
    for r in roles {
        match policy.roles.get(r).and_then(|role| role.export) {
            Some(Export::Block) => return Some(Export::Block),
            Some(Export::Allow) => rule = Some(Export::Allow),
            None => {}
        }
    }
    rule
}

impl Policy {
    /// Whether a route with form conditions may apply to this request, so that
    /// its url-encoded body must be read before deciding.
    pub fn wants_form(&self, host: &str, method: &Method, path: &str) -> bool {
        self.conditional.iter().any(|&id| {
            self.routes.get(id).is_some_and(|r| !r.when.form.is_empty())
                && self.table.covers(id, host, method, path)
        })
    }

    /// The idle logoff for a person with `roles`: the shortest their roles set, else the policy's.
    pub fn idle_limit(&self, roles: &[String]) -> Duration {
        roles
            .iter()
            .filter_map(|r| self.roles.get(r).and_then(|role| role.idle_timeout))
            .min()
            .unwrap_or(self.sessions.idle_timeout)
    }

    /// Whether a person with `roles` must show a second factor at sign-in.
    pub fn mfa_required(&self, roles: &[String]) -> bool {
        self.mfa_level(roles) >= Mfa::Required
    }

    /// The strictest second factor the policy and a person's `roles` ask for.
    pub fn mfa_level(&self, roles: &[String]) -> Mfa {
        roles
            .iter()
            .filter_map(|r| self.roles.get(r).and_then(|role| role.mfa))
            .fold(self.login.mfa, Mfa::max)
    }
}

impl Policy {
    /// Role names, trimmed and without repeats, each one a role of this policy;
    /// otherwise what is wrong, in words (used by `ward user` and the console alike).
    pub fn known_roles(&self, roles: &[String]) -> Result<Vec<String>, String> {
        let known: Vec<&str> = self.roles.keys().map(String::as_str).collect();
        let mut out: Vec<String> = Vec::new();
        for role in roles.iter().map(|r| r.trim()).filter(|r| !r.is_empty()) {
            if !known.contains(&role) {
                let role = role.chars().filter(|c| !c.is_control()).collect::<String>();
                let hint = match crate::suggest::closest(&role, &known) {
                    Some(best) => format!("; did you mean '{best}'?"),
                    None if known.is_empty() => format!(
                        "; {} defines no roles yet (add them under [roles])",
                        self.file.display()
                    ),
                    None => format!(
                        "; the roles in {} are: {}",
                        self.file.display(),
                        known.join(", ")
                    ),
                };
                return Err(format!("unknown role '{role}'{hint}"));
            }
            if !out.iter().any(|r| r == role) {
                out.push(role.to_string());
            }
        }
        Ok(out)
    }

    /// Network names of this policy or address ranges, trimmed and without
    /// repeats; otherwise what is wrong.
    pub fn known_networks(&self, nets: &[String]) -> Result<Vec<String>, NetworkRefError> {
        let known: Vec<&str> = self.networks.keys().map(String::as_str).collect();
        let mut out: Vec<String> = Vec::new();
        for net in nets.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
            if !known.contains(&net) {
                if net.contains(['.', ':', '/']) {
                    net::parse_cidr(net)?;
                } else {
                    let shown = net.chars().filter(|c| !c.is_control()).collect::<String>();
                    let hint = match crate::suggest::closest(net, &known) {
                        Some(best) => format!("; did you mean '{best}'?"),
                        None if known.is_empty() => {
                            "; give an address range like 203.0.113.0/24 instead".to_string()
                        }
                        None => format!(
                            "; the networks there are: {} (or give an address range like 203.0.113.0/24)",
                            known.join(", ")
                        ),
                    };
                    return Err(NetworkRefError::Unknown {
                        name: shown,
                        file: self.file.display().to_string(),
                        hint,
                    });
                }
            }
            if !out.iter().any(|n| n == net) {
                out.push(net.to_string());
            }
        }
        Ok(out)
    }
}

/// A network named for a person that the policy does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkRefError {
    /// An address range that does not read.
    #[error(transparent)]
    Cidr(#[from] net::CidrError),
    /// A name that is not in the policy's `[networks]`.
    #[error("'{name}' is not a network in {file}{hint}")]
    Unknown {
        /// The name as given (control characters removed).
        name: String,
        /// The policy file.
        file: String,
        /// A suggestion, starting with "; ".
        hint: String,
    },
}

/// Decides what to do with a request. Pure: no I/O, no clock.
pub fn decide<'i>(facts: &Facts<'_, 'i>, policy: &Policy) -> Decision<'i> {
    decide_traced(facts, policy, &mut NoTrace)
}

/// One check `decide` made, for `ward explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// The facts behind the answer.
    pub detail: String,
}

/// Where `decide` reports its checks; the proxy's tracer does nothing.
pub trait Trace {
    /// Records one check; `detail` is only called when the tracer keeps it.
    fn check(&mut self, name: &'static str, passed: bool, detail: impl FnOnce() -> String);
}

/// The proxy's tracer: keeps nothing, costs nothing.
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline]
    fn check(&mut self, _: &'static str, _: bool, _: impl FnOnce() -> String) {}
}

impl Trace for Vec<Check> {
    fn check(&mut self, name: &'static str, passed: bool, detail: impl FnOnce() -> String) {
        self.push(Check {
            name,
            passed,
            detail: detail(),
        });
    }
}

/// `decide`, reporting every check to `trace` (the same code the proxy runs).
pub fn decide_traced<'i>(
    facts: &Facts<'_, 'i>,
    policy: &Policy,
    trace: &mut impl Trace,
) -> Decision<'i> {
    let deny = |refusal, route| Decision::refused(Verdict::Deny(refusal), route);
    // Network first, so a stolen password is useless from elsewhere.
    if let Some(allowed) = &policy.allow_from {
        let ok = allowed.contains(facts.client_ip);
        trace.check("network (allow_from)", ok, || {
            format!(
                "{} {} the networks ward may be used from",
                facts.client_ip,
                if ok { "is in" } else { "is not in" }
            )
        });
        if !ok {
            return deny(Refusal::Network, None);
        }
    }
    // A route with conditions that hold comes first; the first in the file wins.
    let conditional = policy.conditional.iter().copied().find(|&id| {
        policy
            .table
            .covers(id, facts.host, facts.method, facts.path)
            && policy
                .routes
                .get(id)
                .is_some_and(|r| r.when.hold(facts.query, facts.form))
    });
    let lookup = match conditional {
        Some(id) => routes::Lookup::Route(id),
        None => policy.table.lookup(facts.host, facts.method, facts.path),
    };
    let id = match lookup {
        routes::Lookup::Route(id) => id,
        routes::Lookup::MethodNotAllowed(id) => {
            trace.check("method", false, || {
                let line = policy.routes.get(id).map(|r| r.line).unwrap_or(0);
                format!(
                    "the routes for this path (line {line}) do not allow {}",
                    facts.method
                )
            });
            return deny(Refusal::Method, Some(id));
        }
        routes::Lookup::None => {
            trace.check("route", false, || {
                format!(
                    "no route covers host {} path {}: refused by default",
                    facts.host, facts.path
                )
            });
            return deny(Refusal::NoRoute, None);
        }
    };
    let Some(route) = policy.routes.get(id) else {
        return deny(Refusal::NoRoute, None);
    };
    trace.check("route", true, || {
        format!(
            "{}:{} (path \"{}\") applies",
            policy.file.display(),
            route.line,
            route.path
        )
    });
    if let Some(from) = &route.from {
        let ok = from.contains(facts.client_ip);
        trace.check("network (route from)", ok, || {
            format!(
                "{} {} the route's networks",
                facts.client_ip,
                if ok { "is in" } else { "is not in" }
            )
        });
        if !ok {
            return deny(Refusal::Network, Some(id));
        }
    }
    if facts.device_revoked {
        trace.check("enrolled device", false, || {
            "the connection's device certificate is on the practice's revocation list".into()
        });
        return deny(Refusal::DeviceRevoked, Some(id));
    }
    // A device enrolled to people is theirs alone, wherever it is used.
    if let Some(w) = facts.identity
        && facts.device
        && !facts.device_people.is_empty()
    {
        let ok = owns_device(w, facts.device_people);
        trace.check("whose device", ok, || {
            format!(
                "the device is enrolled to {}; {} {}",
                facts.device_people.join(", "),
                w.user,
                if ok { "is one of them" } else { "is not" }
            )
        });
        if !ok {
            return deny(Refusal::OtherDevice, Some(id));
        }
    }
    let own_needed = route.own_device
        || facts.identity.is_some_and(|w| {
            w.roles
                .iter()
                .any(|r| policy.roles.get(r).is_some_and(|role| role.own_device))
        });
    if let Some(w) = facts.identity
        && own_needed
        && facts.device
        && facts.device_people.is_empty()
    {
        trace.check("whose device", false, || {
            format!(
                "{}'s own device is required and the device certificate names nobody",
                w.user
            )
        });
        return deny(Refusal::OtherDevice, Some(id));
    }
    let device_needed =
        route.device_required || own_needed || facts.identity.is_some_and(|w| w.device_required);
    if device_needed {
        trace.check("enrolled device", facts.device, || {
            if facts.device {
                "the connection presented a certificate from the practice's device CA".into()
            } else {
                "an enrolled device is required and the connection presented no device certificate"
                    .into()
            }
        });
        if !facts.device {
            return deny(Refusal::Device, Some(id));
        }
    }
    let mut by_grant: Option<&'i AccessGrant> = None;
    let verdict = match (&route.access, facts.identity) {
        (Access::Public, _) => {
            trace.check("who", true, || {
                "the route is public: no sign-in needed".into()
            });
            Verdict::Allow
        }
        (Access::Members { .. }, None) => {
            trace.check("sign-in", false, || {
                "the route needs a signed-in person".into()
            });
            Verdict::Login
        }
        (Access::Members { roles, users }, Some(who)) => {
            let own_network = who
                .allow_from
                .as_ref()
                .is_none_or(|n| n.contains(facts.client_ip));
            if who.allow_from.is_some() {
                trace.check("network (person's allow_from)", own_network, || {
                    format!(
                        "{} {} {}'s own networks",
                        facts.client_ip,
                        if own_network { "is in" } else { "is not in" },
                        who.user
                    )
                });
            }
            // Every role in force that names networks must allow this address
            // (vendor staff of one company share that company's networks).
            let mut role_networks = true;
            for name in &who.roles {
                let Some(nets) = policy.roles.get(name).and_then(|r| r.allow_from.as_ref()) else {
                    continue;
                };
                let ok = nets.contains(facts.client_ip);
                trace.check("network (role's allow_from)", ok, || {
                    format!(
                        "{} {} the networks of role {name}",
                        facts.client_ip,
                        if ok { "is in" } else { "is not in" },
                    )
                });
                role_networks &= ok;
            }
            let own_network = own_network && role_networks;
            let by_role = who.roles.iter().any(|r| roles.contains(r));
            let by_name = users.contains(&who.user);
            // An access grant opens this route's pages of this app only; nothing else it
            // lifts (networks above, device, MFA below still hold).
            let app_name = policy.apps.get(route.app).map(|a| a.name.as_str());
            by_grant = (!by_role && !by_name)
                .then(|| {
                    who.access_grants
                        .iter()
                        .find(|g| app_name == Some(g.app.as_str()) && g.pattern.matches(facts.path))
                })
                .flatten();
            if own_network {
                trace.check("role", by_role || by_name, || {
                    format!(
                        "{} has roles [{}]; the route allows roles [{}]{}",
                        who.user,
                        who.roles.join(", "),
                        roles.join(", "),
                        if users.is_empty() {
                            String::new()
                        } else {
                            format!(" and people [{}]", users.join(", "))
                        }
                    )
                });
            }
            let level = route.mfa.map_or(policy.mfa_level(&who.roles), |m| {
                m.max(policy.mfa_level(&who.roles))
            });
            let mfa_needed = level >= Mfa::Required;
            if let (true, Some(g)) = (own_network, by_grant) {
                trace.check("access grant", true, || {
                    format!(
                        "grant {} of {} opens {} of app {}",
                        g.id, who.user, facts.path, g.app
                    )
                });
            }
            if !own_network {
                Verdict::Deny(Refusal::Network)
            } else if !(by_role || by_name || by_grant.is_some()) {
                Verdict::Deny(Refusal::Role)
            } else if level == Mfa::PhishingResistant && !(who.mfa && who.passkey) {
                trace.check("MFA (phishing-resistant)", false, || {
                    "only a passkey or security key meets this rule, and this sign-in used none"
                        .into()
                });
                // Never a pass: a code, however fresh, is not a passkey.
                Verdict::Deny(Refusal::Passkey)
            } else if mfa_needed && !who.mfa {
                trace.check("MFA", false, || {
                    "a second factor is required and this sign-in had none".into()
                });
                // Step up: sign in again with the second factor.
                Verdict::Login
            } else {
                if level == Mfa::PhishingResistant {
                    trace.check("MFA (phishing-resistant)", true, || {
                        "a passkey or security key is required and was used".into()
                    });
                } else if mfa_needed {
                    trace.check("MFA", true, || {
                        "a second factor is required and was given".into()
                    });
                }
                Verdict::Allow
            }
        }
    };
    if verdict != Verdict::Allow {
        return Decision::refused(verdict, Some(id));
    }
    // Allowed: what the later stages enforce, settled here once.
    let who = facts.identity;
    let has_role = |list: &[String]| who.is_some_and(|w| w.roles.iter().any(|r| list.contains(r)));
    let idle_limit = who.map(|w| {
        let own = policy.idle_limit(&w.roles);
        route.idle_timeout.map_or(own, |r| r.min(own))
    });
    Decision {
        verdict,
        route: Some(id),
        mfa_needed: who
            .is_some_and(|w| route.mfa >= Some(Mfa::Required) || policy.mfa_required(&w.roles)),
        passkey_needed: who.is_some_and(|w| {
            route.mfa == Some(Mfa::PhishingResistant)
                || policy.mfa_level(&w.roles) == Mfa::PhishingResistant
        }),
        idle_limit,
        export: export_rule(policy, route, who, facts.path),
        export_endpoint: route.export_endpoint,
        max_response: route.max_response,
        rate_limit: route.rate_limit,
        redact: !route.redact_fields.is_empty() && has_role(&route.redact_for),
        hide: !route.fields.is_empty() && has_role(&route.hide_for),
        no_body: has_role(&route.no_body_for),
        access_grant: by_grant,
    }
}
