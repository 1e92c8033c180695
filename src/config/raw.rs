//! The policy file as written: every value keeps its place in the file so that
//! validation can point at it. `compile` turns this into a `Policy`.

use super::spanned::Spanned;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A string with its place in the file.
pub type Text = Spanned<String>;

/// The whole policy file.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawPolicy {
    pub practice: Option<Text>,
    pub allow_from: Option<Spanned<Vec<Text>>>,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub sessions: RawSessions,
    #[serde(default)]
    pub login: RawLogin,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub storage: RawStorage,
    pub break_glass: Option<Spanned<RawBreakGlass>>,
    #[serde(default)]
    pub export: RawExport,
    #[serde(default)]
    pub audit: RawAudit,
    #[serde(default)]
    pub alerts: RawAlerts,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub review: RawReview,
    #[serde(default)]
    pub networks: BTreeMap<String, Spanned<Vec<Text>>>,
    #[serde(default)]
    pub roles: BTreeMap<String, Spanned<RawRole>>,
    #[serde(default)]
    pub apps: Vec<Spanned<RawApp>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
}

/// `[server]`: listeners, certificate and connection limits.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Text>,
    pub redirect_http: Option<Text>,
    pub public_port: Option<Spanned<u16>>,
    pub public_url: Option<Text>,
    pub cert: Option<Text>,
    pub key: Option<Text>,
    pub trusted_proxies: Option<Vec<Text>>,
    pub max_connections: Option<Spanned<i64>>,
    pub max_header_bytes: Option<Spanned<i64>>,
    pub max_headers: Option<Spanned<i64>>,
    pub header_read_timeout: Option<Text>,
    pub handshake_timeout: Option<Text>,
    pub keepalive_timeout: Option<Text>,
    pub hsts: Option<Spanned<bool>>,
    pub device_ca: Option<Text>,
    pub device_crl: Option<Text>,
    pub device_orgs: Option<Vec<Text>>,
    pub ward_host: Option<Text>,
}

/// `[sessions]`: idle logoff and session lifetime.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawSessions {
    pub idle_timeout: Option<Text>,
    pub max_lifetime: Option<Text>,
    pub max_per_user: Option<Spanned<i64>>,
    pub on_too_many: Option<Text>,
    pub background_paths: Option<Vec<Text>>,
    pub background_headers: Option<Vec<Text>>,
    pub idle_warning: Option<Spanned<bool>>,
    pub bind_to: Option<Text>,
    pub store: Option<Text>,
    pub store_password_file: Option<Text>,
    pub store_ca_file: Option<Text>,
    pub activity_every: Option<Text>,
    pub store_down_grace: Option<Text>,
}

/// `[login]`: how people prove who they are.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawLogin {
    pub mfa: Option<Text>,
    pub lockout_after: Option<Spanned<i64>>,
    pub lockout_time: Option<Text>,
    pub more_time_form: Option<Text>,
    pub attempts_per_minute: Option<Spanned<i64>>,
    pub oidc: Option<Vec<Spanned<RawOidc>>>,
    pub passwordless: Option<Spanned<bool>>,
    pub passkey_domain: Option<Text>,
    pub saml: Option<Vec<Spanned<RawSaml>>>,
    pub saml_signing_key: Option<Text>,
    pub saml_signing_cert: Option<Text>,
    pub saml_encrypted_assertions: Option<Spanned<bool>>,
}

/// One `[[login.saml]]` identity provider.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawSaml {
    pub name: Option<Text>,
    pub label: Option<Text>,
    pub idp_metadata: Option<Text>,
    pub groups_attribute: Option<Text>,
    pub username_attribute: Option<Text>,
    pub name_attribute: Option<Text>,
    pub role_map: Option<BTreeMap<String, Vec<Text>>>,
    pub allowed_domains: Option<Vec<Text>>,
    pub accounts: Option<Text>,
    pub mfa_authn_context: Option<Vec<Text>>,
    pub without_mfa: Option<Text>,
    pub clock_skew: Option<Text>,
    pub logout: Option<Spanned<bool>>,
    pub sign_requests: Option<Spanned<bool>>,
}

/// One `[[login.oidc]]` identity provider.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawOidc {
    pub name: Option<Text>,
    pub label: Option<Text>,
    pub issuer: Option<Text>,
    pub client_id: Option<Text>,
    pub client_secret_file: Option<Text>,
    pub client_secret_env: Option<Text>,
    pub scopes: Option<Vec<Text>>,
    pub groups_claim: Option<Text>,
    pub role_map: Option<BTreeMap<String, Vec<Text>>>,
    pub allowed_domains: Option<Vec<Text>>,
    pub username_claim: Option<Text>,
    pub accounts: Option<Text>,
    pub mfa_amr: Option<Vec<Text>>,
    pub mfa_acr: Option<Vec<Text>>,
    pub without_mfa: Option<Text>,
    pub clock_skew: Option<Text>,
    pub ca: Option<Text>,
    pub logout: Option<Spanned<bool>>,
}

/// `[break_glass]`: the emergency access procedure.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawBreakGlass {
    pub allowed_roles: Option<Vec<Text>>,
    pub emergency_roles: Option<Vec<Text>>,
    pub duration: Option<Text>,
}

/// `[review]`: the periodic access review.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawReview {
    pub period: Option<Text>,
}

/// `[storage]`: where accounts and ward's own state live.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawStorage {
    pub users: Option<Text>,
    pub state: Option<Text>,
}

/// `[metrics]`: the Prometheus listener.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<Text>,
}

/// `[log]`: how ward writes its own log.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<Text>,
    pub level: Option<Text>,
    pub paths: Option<Spanned<bool>>,
}

/// One entry of `[roles]`.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawRole {
    pub description: Option<Text>,
    pub idle_timeout: Option<Text>,
    pub export: Option<Text>,
    pub mfa: Option<Text>,
    pub device: Option<Text>,
    pub allow_from: Option<Spanned<Vec<Text>>>,
}

/// One `[[apps]]` entry: an upstream web system.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawApp {
    pub name: Option<Text>,
    pub upstream: Option<Text>,
    pub host: Option<Text>,
    pub ca: Option<Text>,
    pub connect_timeout: Option<Text>,
    pub response_timeout: Option<Text>,
    pub preserve_host: Option<Spanned<bool>>,
    pub rewrite_redirects: Option<Spanned<bool>>,
    pub rewrite_cookies: Option<Spanned<bool>>,
    pub ward_keeps_cookies: Option<Spanned<bool>>,
    pub case_insensitive: Option<Spanned<bool>>,
    pub identity_headers: Option<BTreeMap<String, Text>>,
    pub upstream_auth: Option<Spanned<RawUpstreamAuth>>,
}

/// An app's `upstream_auth`: a shared credential ward sends, named here and
/// read from the environment or a file.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawUpstreamAuth {
    pub basic_user: Option<Text>,
    pub basic_password_env: Option<Text>,
    pub basic_password_file: Option<Text>,
    pub header: Option<Text>,
    pub value_env: Option<Text>,
    pub value_file: Option<Text>,
}

/// One `[[routes]]` entry: who may use which paths of an app, from where.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRoute {
    pub app: Option<Text>,
    pub host: Option<Text>,
    pub path: Option<Text>,
    pub methods: Option<Vec<Text>>,
    pub allow: Option<Text>,
    pub allow_roles: Option<Vec<Text>>,
    pub allow_users: Option<Vec<Text>>,
    pub from: Option<Vec<Text>>,
    pub idle_timeout: Option<Text>,
    pub export: Option<Text>,
    pub mfa: Option<Text>,
    pub export_endpoint: Option<Spanned<bool>>,
    pub max_response: Option<Text>,
    pub rate_limit: Option<Text>,
    pub redact_fields: Option<Vec<Text>>,
    pub redact_for: Option<Vec<Text>>,
    pub hide: Option<Vec<Text>>,
    pub mask: Option<Spanned<std::collections::BTreeMap<String, Text>>>,
    pub hide_for: Option<Vec<Text>>,
    pub no_body_for: Option<Vec<Text>>,
    pub device: Option<Text>,
    pub watermark: Option<Spanned<bool>>,
    pub print: Option<Text>,
    pub query: Option<Spanned<std::collections::BTreeMap<String, Text>>>,
    pub form: Option<Spanned<std::collections::BTreeMap<String, Text>>>,
}

/// `[alerts]`: events the officer must see.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawAlerts {
    pub webhook: Option<Text>,
    pub denials: Option<Spanned<i64>>,
    pub vendor_hours: Option<Text>,
    pub timezone: Option<Text>,
    pub email_to: Option<Spanned<Vec<Text>>>,
    pub email_from: Option<Text>,
    pub smtp: Option<Text>,
    pub smtp_tls: Option<Text>,
    pub smtp_user: Option<Text>,
    pub smtp_password_file: Option<Text>,
    pub smtp_ca_file: Option<Text>,
}

/// `[audit]`: the audit trail.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawAudit {
    pub dir: Option<Text>,
    pub on_failure: Option<Text>,
    pub max_file_size: Option<Text>,
    pub fsync_every: Option<Text>,
    pub checkpoint_every: Option<Spanned<i64>>,
    pub instance: Option<Text>,
    pub syslog: Option<Text>,
    pub syslog_ca_file: Option<Text>,
}

/// `[export]`: what counts as an export.
#[derive(Debug, Deserialize, JsonSchema, Default)]
#[schemars(deny_unknown_fields)]
pub struct RawExport {
    pub types: Option<Vec<Text>>,
    pub extra_types: Option<Vec<Text>>,
    pub vendors: Option<Text>,
    pub redact_max: Option<Text>,
    pub contact: Option<Text>,
}

/// The kinds of table in a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Root,
    Server,
    Sessions,
    Login,
    Oidc,
    Saml,
    Storage,
    BreakGlass,
    Export,
    Audit,
    Alerts,
    Log,
    Metrics,
    Review,
    Role,
    App,
    UpstreamAuth,
    Route,
    Other,
}
