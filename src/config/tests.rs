use super::*;
use crate::policy::SessionStoreKind;
use std::path::PathBuf;

const GOOD: &str = r#"
practice = "Riverside Family Clinic"

[server]
listen = "127.0.0.1:8443"

[networks]
office = ["203.0.113.0/24"]

[roles]
clinician = {}
biller = { export = "block" }

[[apps]]
name = "ehr"
upstream = "http://127.0.0.1:8081"

[[routes]]
app = "ehr"
path = "/billing/**"
allow_roles = ["biller"]
from = ["office"]

[[routes]]
app = "ehr"
path = "/logo.png"
allow = "public"
"#;

fn load(text: &str) -> Result<Loaded, Diagnostics> {
    load_str(&PathBuf::from("ward.toml"), text, Certs::Skip)
}

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => Vec::new(),
        Err(d) => d.items.iter().map(|i| d.format(i)).collect(),
    }
}

#[test]
fn good_policy_loads() {
    let loaded = load(GOOD).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(loaded.policy.practice, "Riverside Family Clinic");
    assert_eq!(loaded.policy.routes.len(), 2);
    assert_eq!(loaded.policy.routes[0].line, 18);
}

#[test]
fn all_errors_are_reported_with_places() {
    let bad = GOOD
        .replace("listen =", "lisen =")
        .replace("203.0.113.0/24", "203.0.113.0/33")
        .replace(
            "app = \"ehr\"\npath = \"/logo.png\"",
            "app = \"emr\"\npath = \"/logo.png\"",
        );
    let errs = errors(&bad);
    assert_eq!(errs.len(), 3, "{errs:#?}");
    assert!(
        errs[0].starts_with(
            "ward.toml:5:1: unknown setting 'lisen' in [server]; did you mean 'listen'?"
        ),
        "{errs:#?}"
    );
    assert!(
        errs[1].starts_with("ward.toml:8:11: '203.0.113.0/33' is not a network"),
        "{errs:#?}"
    );
    assert!(
        errs[2].starts_with("ward.toml:25:7: unknown app 'emr'; did you mean 'ehr'?"),
        "{errs:#?}"
    );
}

#[test]
fn bad_values_are_explained() {
    let cases = [
        (
            "[sessions]\nidle_timeout = \"15 minutes please\"\n",
            "is not a length of time",
        ),
        ("[sessions]\nidle_timeout = \"0s\"\n", "is zero"),
        ("[server]\nlisten = \"8443\"\n", "not an address and port"),
        (
            "[[apps]]\nname = \"x\"\nupstream = \"ftp://x\"\n",
            "must start with http://",
        ),
        (
            "[[apps]]\nname = \"x\"\nupstream = \"http://x/app\"\n",
            "must not have a path",
        ),
        (
            "[[apps]]\nname = \"x\"\nupstream = \"http://u:p@x\"\n",
            "user name",
        ),
        (
            "[[apps]]\nname = \"x\"\nupstream = \"http://x\"\nca = \"c.pem\"\n",
            "only used with an https",
        ),
        (
            "[[apps]]\nname = \"x\"\nupstream = \"http://x\"\nhost = \"https://x\"\n",
            "is not a host name",
        ),
        ("[login]\nmfa = \"never\"\n", "mfa must be"),
        (
            "[login]\nmore_time_form = \"1h\"\n",
            "more_time_form must be between",
        ),
        (
            "[login]\nmore_time_form = \"soon\"\n",
            "is not a length of time",
        ),
        ("[roles]\nr = { mfa = \"passkey\" }\n", "phishing-resistant"),
        ("[login]\npasskey_domain = \"com\"\n", "too broad"),
        (
            "[login]\npasskey_domain = \"https://x.example\"\n",
            "is not a host name",
        ),
        (
            "[login]\npasswordless = \"yes\"\n",
            "expected true or false",
        ),
        (
            "[roles]\nr = { export = \"sometimes\" }\n",
            "export must be",
        ),
        (
            "allow_from = [\"ofice\"]\n[networks]\noffice = [\"10.0.0.0/8\"]\n",
            "did you mean 'office'",
        ),
        (
            "[networks]\noffice = [\"10.0.0.5/8\"]\n",
            "did you mean 10.0.0.0/8",
        ),
        ("[server]\nmax_headers = 0\n", "between"),
        ("[server]\nmax_headers = \"lots\"\n", "wrong kind of value"),
        ("[log]\nformat = \"xml\"\n", "log format"),
        (
            "[[apps]]\nname = \"a\"\nupstream = \"http://x\"\nhost = \"h.example\"\n[[apps]]\nname = \"b\"\nupstream = \"http://y\"\nhost = \"h.example\"\n",
            "already answers for host",
        ),
        ("x = [\n", "not valid TOML"),
    ];
    for (extra, want) in cases {
        let text = format!("practice = \"P\"\n{extra}");
        let errs = errors(&text);
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{extra:?}: wanted {want:?} in {errs:#?}"
        );
        assert!(
            errs.iter().all(|e| e.starts_with("ward.toml:")),
            "{errs:#?}"
        );
    }
}

#[test]
fn route_errors() {
    let base = "practice = \"P\"\n[roles]\nbiller = {}\n[[apps]]\nname = \"ehr\"\nupstream = \"http://x\"\n";
    let cases = [
        (
            "[[routes]]\napp = \"ehr\"\npath = \"/a\"\n",
            "does not say who may use it",
        ),
        (
            "[[routes]]\napp = \"ehr\"\npath = \"/a\"\nallow = \"everyone\"\n",
            "allow can only be",
        ),
        (
            "[[routes]]\napp = \"ehr\"\npath = \"/a\"\nallow = \"public\"\nallow_roles = [\"biller\"]\n",
            "not both",
        ),
        (
            "[[routes]]\napp = \"ehr\"\npath = \"/a\"\nallow_roles = [\"bilers\"]\n",
            "unknown role 'bilers'; did you mean 'biller'",
        ),
        (
            "[[routes]]\napp = \"ehr\"\npath = \"a\"\nallow = \"public\"\n",
            "must start with /",
        ),
        (
            "[[routes]]\napp = \"ehr\"\npath = \"/.ward/x\"\nallow = \"public\"\n",
            "belongs to ward",
        ),
        (
            "[[routes]]\napp = \"ehr\"\npath = \"/a\"\nmethods = [\"FETCH\"]\nallow = \"public\"\n",
            "not a method",
        ),
        (
            "[[routes]]\napp = \"ehr\"\npath = \"/a/**\"\nallow = \"public\"\n[[routes]]\napp = \"ehr\"\npath = \"/a/**\"\nallow_roles = [\"biller\"]\n",
            "can never apply: the route at line 7",
        ),
        (
            "[[routes]]\npath = \"/a\"\nallow = \"public\"\n",
            "which app",
        ),
        (
            "[[routes]]\napp = \"ehr\"\npath = \"/a\"\nallow = \"public\"\npth = \"/b\"\n",
            "did you mean 'path'",
        ),
    ];
    for (extra, want) in cases {
        let errs = errors(&format!("{base}{extra}"));
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{extra:?}: wanted {want:?} in {errs:#?}"
        );
    }
}

#[test]
fn methods_and_hosts_do_not_shadow() {
    let text = "practice = \"P\"\n[roles]\nbiller = {}\n[[apps]]\nname = \"ehr\"\nupstream = \"http://x\"\n\
        [[routes]]\napp = \"ehr\"\npath = \"/a/**\"\nallow = \"public\"\nmethods = [\"get\"]\n\
        [[routes]]\napp = \"ehr\"\npath = \"/a/**\"\nallow_roles = [\"biller\"]\n\
        [[routes]]\napp = \"ehr\"\nhost = \"b.example\"\npath = \"/a/**\"\nallow_roles = [\"biller\"]\n";
    let loaded = load(text).unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(loaded.policy.routes.len(), 3);
}

#[test]
fn every_known_key_is_accepted() {
    // Guards the "did you mean" lists against drifting from the model.
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "s3cret").unwrap();
    let text = r#"
practice = "P"
allow_from = ["10.0.0.0/8"]
[server]
listen = "127.0.0.1:1"
redirect_http = "127.0.0.1:2"
public_port = 443
public_url = "https://ehr.example"
cert = "c"
key = "k"
trusted_proxies = []
max_connections = 10
max_header_bytes = 9000
max_headers = 50
header_read_timeout = "5s"
handshake_timeout = "5s"
keepalive_timeout = "5s"
hsts = true
device_orgs = ["Acme"]
ward_host = "ward.example"
device_ca = "ca.pem"
device_crl = "crl.pem"
[metrics]
listen = "127.0.0.1:9464"
[review]
period = "30 days"
[sessions]
idle_timeout = "1m"
max_lifetime = "1h"
max_per_user = 1
on_too_many = "refuse"
background_paths = ["/poll/**"]
background_headers = ["X-Requested-With: XMLHttpRequest"]
store = "memory"
store_password_file = "SECRET"
store_ca_file = "SECRET"
activity_every = "5s"
store_down_grace = "1m"
idle_warning = true
bind_to = "network"
[login]
mfa = "required"
passwordless = true
passkey_domain = "example.com"
saml_signing_key = "saml.key"
saml_signing_cert = "saml.crt"
saml_encrypted_assertions = false
lockout_after = 5
lockout_time = "15m"
more_time_form = "10m"
attempts_per_minute = 30
[[login.oidc]]
name = "entra"
label = "Sign in with Microsoft"
issuer = "https://login.example/tenant/v2.0"
client_id = "abc"
client_secret_file = "SECRET"
scopes = ["email"]
groups_claim = "groups"
role_map = { "g1" = ["r"] }
allowed_domains = ["example.org"]
username_claim = "email"
accounts = "existing"
mfa_amr = ["mfa"]
mfa_acr = ["x"]
without_mfa = "refuse"
clock_skew = "30s"
ca = "ca.pem"
logout = true
[[login.saml]]
name = "adfs"
label = "Sign in with ADFS"
idp_metadata = "METADATA"
groups_attribute = "groups"
username_attribute = "upn"
name_attribute = "displayName"
role_map = { "g1" = ["r"] }
allowed_domains = ["example.org"]
accounts = "existing"
mfa_authn_context = ["urn:x"]
without_mfa = "refuse"
clock_skew = "30s"
logout = true
sign_requests = true
[storage]
users = "u.toml"
state = "state"
[alerts]
webhook = "https://hooks.example/ward"
denials = 20
vendor_hours = "07:00-19:00"
timezone = "America/New_York"
email_to = ["officer@clinic.example"]
email_from = "ward@clinic.example"
smtp = "smtp.clinic.example:587"
smtp_tls = "starttls"
smtp_user = "ward"
smtp_password_file = "SECRET"
smtp_ca_file = "certs/mail-ca.pem"
[audit]
dir = "audit"
on_failure = "refuse"
max_file_size = "100MB"
fsync_every = "200ms"
checkpoint_every = 1000
instance = "ward-a"
syslog = "tls://siem.clinic.example:6514"
syslog_ca_file = "certs/siem-ca.pem"
[export]
types = ["text/csv"]
extra_types = ["application/dicom"]
vendors = "block"
redact_max = "1MB"
contact = "Olive"
[break_glass]
allowed_roles = ["r"]
emergency_roles = ["r"]
duration = "1h"
[log]
format = "json"
level = "debug"
paths = true
[networks]
n = ["10.0.0.0/8"]
[roles]
r = { description = "d", idle_timeout = "1m", export = "allow", mfa = "optional", device = "optional", allow_from = ["n"] }
[[apps]]
name = "a"
upstream = "https://x"
host = "h.example"
ca = "ca.pem"
connect_timeout = "1s"
response_timeout = "1s"
preserve_host = false
rewrite_redirects = true
rewrite_cookies = true
ward_keeps_cookies = true
case_insensitive = false
identity_headers = { npi = "X-Provider-Npi" }
upstream_auth = { basic_user = "ward", basic_password_file = "SECRET" }
[[routes]]
app = "a"
host = "h.example"
path = "/x"
methods = ["GET"]
allow_roles = ["r"]
allow_users = ["u"]
from = ["n"]
idle_timeout = "1m"
export = "block"
mfa = "required"
export_endpoint = false
max_response = "10MB"
rate_limit = "60/minute"
redact_fields = ["ssn"]
redact_for = ["r"]
hide = ["td.dx"]
mask = { "td.ssn" = "last4" }
hide_for = ["r"]
no_body_for = ["r"]
device = "required"
watermark = true
print = "block"
[[routes]]
app = "a"
path = "/y"
allow = "public"
[[routes]]
app = "a"
path = "/y"
query = { route = "/export" }
form = { output_format = "astext" }
allow = "public"
"#;
    let metadata = idp_metadata_file();
    let text = &text
        .replace("SECRET", &secret.path().display().to_string())
        .replace("METADATA", &metadata.path().display().to_string());
    let errs = errors(text);
    assert!(errs.is_empty(), "{errs:#?}");
    for section in [
        raw::Section::Root,
        raw::Section::Server,
        raw::Section::Sessions,
        raw::Section::Login,
        raw::Section::Saml,
        raw::Section::Log,
        raw::Section::Metrics,
        raw::Section::Review,
        raw::Section::Role,
        raw::Section::App,
        raw::Section::Route,
        raw::Section::Export,
        raw::Section::Audit,
        raw::Section::Alerts,
    ] {
        for key in known_keys(section) {
            assert!(
                text.contains(&format!("\n{key} ="))
                    || text.contains(&format!("{key} = "))
                    || text.contains(&format!("[{key}]"))
                    || text.contains(&format!("[[{key}]]"))
                    || text.contains(&format!(".{key}]]")),
                "{key}"
            );
        }
    }
}

#[test]
fn risky_but_valid_settings_are_warned_about() {
    let text = "practice = \"P\"\nallow_from = []\n[[apps]]\nname = \"ehr\"\nupstream = \"http://x\"\nhost = \"a.example\"\n\
        [[routes]]\napp = \"ehr\"\npath = \"/a\"\nallow = \"public\"\nfrom = []\n";
    let loaded = load(text).unwrap_or_else(|d| panic!("{d}"));
    let warnings: Vec<String> = loaded
        .warnings
        .items
        .iter()
        .map(|i| loaded.warnings.format(i))
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0]
            .starts_with("ward.toml:2:14: warning: an empty list of networks refuses every client"),
        "{warnings:#?}"
    );
    let errs = errors(&text.replace("from = []", "methods = []\nhost = \"b.example\""));
    assert!(
        errs.iter()
            .any(|e| e.contains("methods = [] allows no method")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("is not the host its app answers for")),
        "{errs:#?}"
    );
    let errs = errors(&text.replace("path = \"/a\"", "path = \"/caf\u{e9}\""));
    assert!(
        errs.iter().any(|e| e.contains("must not contain 'é'")),
        "{errs:#?}"
    );
}

/// A policy with one `[[apps]]` entry whose extra lines are `app`, and `tail` after it.
fn with_app(app: &str, tail: &str) -> String {
    format!(
        "practice = \"P\"\n[roles]\nr = {{}}\n[[apps]]\nname = \"pacs\"\nhost = \"pacs.example\"\nupstream = \"http://127.0.0.1:9\"\n{app}\n{tail}"
    )
}

#[test]
fn export_types_add_to_the_defaults_and_must_be_able_to_match() {
    use crate::policy::media::{MediaType, TypePattern};
    let types = |export: &str| -> Vec<String> {
        let text = with_app("", &format!("[export]\n{export}\n"));
        load(&text)
            .unwrap_or_else(|d| panic!("{d}"))
            .policy
            .export
            .types
            .iter()
            .map(TypePattern::to_string)
            .collect()
    };
    let defaults = types("");
    assert_eq!(defaults.len(), crate::policy::DEFAULT_EXPORT_TYPES.len());
    assert!(defaults.contains(&"application/dicom".to_string()));
    // extra_types adds, without copying the list; a repeat is kept once.
    let more = types("extra_types = [\"application/x-custom-chart\", \"text/csv\"]");
    assert_eq!(more.len(), defaults.len() + 1);
    assert_eq!(more[..defaults.len()], defaults[..]);
    // types replaces; extra_types still adds to it.
    assert_eq!(
        types("types = [\"text/csv\"]\nextra_types = [\"application/pdf\"]"),
        ["text/csv", "application/pdf"]
    );
    // A parameter as the officer writes it, quoted or not, matches as meant.
    let text = with_app(
        "",
        "[export]\ntypes = [\"multipart/related; type=application/dicom\"]\n",
    );
    let policy = load(&text).unwrap_or_else(|d| panic!("{d}")).policy;
    let answer =
        MediaType::parse("multipart/related; type=\"application/dicom\"; boundary=x").unwrap();
    assert!(policy.export.types[0].matches(&answer));
    // Patterns that could never match are errors, at their place.
    for (bad, why) in [
        ("dicom", "not written as type/subtype"),
        ("text/*", "a '*' matches no answer"),
        ("multipart/related; type", "has no value"),
        ("", "empty"),
    ] {
        let text = with_app("", &format!("[export]\nextra_types = [\"{bad}\"]\n"));
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{bad}: {errs:#?}");
        assert!(
            errs[0].starts_with("ward.toml:10:16: export type") && errs[0].contains(why),
            "{bad}: {errs:#?}"
        );
    }
}

#[test]
fn one_mistake_in_an_app_gives_one_error() {
    let routes = "[[routes]]\napp = \"pacs\"\npath = \"/a/**\"\nallow_roles = [\"r\"]\n\
        [[routes]]\napp = \"pacs\"\npath = \"/b/**\"\nallow_roles = [\"r\"]\n\
        [[routes]]\napp = \"pacs\"\npath = \"/**\"\nallow_roles = [\"r\"]\n\
        [[apps]]\nname = \"ehr\"\nhost = \"ehr.example\"\nupstream = \"http://127.0.0.1:8\"\n\
        [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"r\"]\n";
    let good = with_app("", routes);
    assert!(errors(&good).is_empty(), "{:#?}", errors(&good));
    for bad in [
        good.replace("http://127.0.0.1:9", "http://admin@127.0.0.1:9"),
        good.replace("http://127.0.0.1:9", "127.0.0.1:9"),
        good.replace("upstream = \"http://127.0.0.1:9\"\n", ""),
    ] {
        let errs = errors(&bad);
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].contains("upstream"), "{errs:#?}");
    }
    // A route naming an app that does not exist at all is still an error.
    let errs = errors(&good.replacen("app = \"pacs\"", "app = \"pac\"", 1));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains("unknown app 'pac'; did you mean 'pacs'?"),
        "{errs:#?}"
    );
}

#[test]
fn webdav_methods_are_known() {
    let text = with_app(
        "",
        "[[routes]]\napp = \"pacs\"\npath = \"/dav/**\"\nallow_roles = [\"r\"]\n\
         methods = [\"GET\", \"propfind\", \"PROPPATCH\", \"MKCOL\", \"COPY\", \"MOVE\", \"LOCK\", \"UNLOCK\", \"REPORT\"]\n",
    );
    let policy = load(&text).unwrap_or_else(|d| panic!("{d}")).policy;
    let dav = |m: &str| http::Method::from_bytes(m.as_bytes()).unwrap();
    for m in ["PROPFIND", "MKCOL", "UNLOCK", "HEAD"] {
        assert_eq!(
            policy
                .table
                .lookup("pacs.example", &dav(m), "/dav/x")
                .route(),
            Some(0),
            "{m}"
        );
    }
    assert_eq!(
        policy
            .table
            .lookup("pacs.example", &dav("DELETE"), "/dav/x")
            .route(),
        None
    );
    let errs = errors(&text.replace("\"REPORT\"", "\"SEARCH\""));
    assert!(
        errs.len() == 1
            && errs[0].contains("'SEARCH' is not a method ward knows")
            && errs[0].contains("PROPFIND"),
        "{errs:#?}"
    );
}

#[test]
fn roles_may_name_their_networks() {
    let text = "practice = \"P\"\n[networks]\nacme_vpn = [\"198.51.100.7/32\"]\n\
        [roles]\nvendor_biller = { allow_from = [\"acme_vpn\", \"192.0.2.0/24\"] }\nclinician = {}\n";
    let policy = load(text).unwrap_or_else(|d| panic!("{d}")).policy;
    let nets = policy.roles["vendor_biller"].allow_from.as_ref().unwrap();
    assert!(nets.contains("198.51.100.7".parse().unwrap()));
    assert!(nets.contains("192.0.2.9".parse().unwrap()));
    assert!(!nets.contains("203.0.113.1".parse().unwrap()));
    assert!(policy.roles["clinician"].allow_from.is_none());
    let errs = errors(&text.replace("\"acme_vpn\", ", "\"acme_vnp\", "));
    assert!(
        errs.len() == 1 && errs[0].contains("unknown network 'acme_vnp'; did you mean 'acme_vpn'?"),
        "{errs:#?}"
    );
    let loaded = load(&text.replace("[\"acme_vpn\", \"192.0.2.0/24\"]", "[]")).unwrap();
    assert!(
        loaded.warnings.items[0]
            .message
            .contains("an empty list of networks")
    );
}

#[test]
fn upstream_credentials_come_from_a_file_or_the_environment() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "s3cret pass\n").unwrap();
    let file = secret.path().display().to_string();
    // Serving and `ward check` read the certificate too: give them one.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("ward.crt"), dir.path().join("ward.key"));
    crate::tls::write_self_signed(&cert, &key, &["localhost"]).unwrap();
    let server = format!(
        "[server]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let load_as = |auth: &str, certs: Certs| {
        load_str(
            &PathBuf::from("ward.toml"),
            &with_app(&format!("upstream_auth = {auth}"), &server),
            certs,
        )
    };
    let auth_of = |auth: &str| {
        load_as(auth, Certs::Load(&crate::tls::Files))
            .unwrap_or_else(|d| panic!("{d}"))
            .policy
            .apps[0]
            .upstream_auth
            .clone()
            .unwrap()
    };
    let basic = auth_of(&format!(
        "{{ basic_user = \"ward\", basic_password_file = \"{file}\" }}"
    ));
    assert_eq!(basic.header, http::header::AUTHORIZATION);
    // "ward:s3cret pass", the file's final newline dropped.
    assert_eq!(basic.value, "Basic d2FyZDpzM2NyZXQgcGFzcw==");
    assert!(basic.value.is_sensitive());
    assert!(!format!("{basic:?}").contains("d2Fy"));
    let key = auth_of(&format!(
        "{{ header = \"X-Api-Key\", value_file = \"{file}\" }}"
    ));
    assert_eq!(
        (key.header.as_str(), key.value.to_str().unwrap()),
        ("x-api-key", "s3cret pass")
    );

    // The secret stays out of the policy: a missing variable is named, never guessed.
    let missing = "WARD_TEST_SURELY_UNSET_VARIABLE";
    let errs: Vec<String> = match load_as(
        &format!("{{ basic_user = \"ward\", basic_password_env = \"{missing}\" }}"),
        Certs::Load(&crate::tls::Files),
    ) {
        Ok(_) => Vec::new(),
        Err(d) => d.items.iter().map(|i| d.format(i)).collect(),
    };
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert!(
        errs[0].contains(&format!(
            "the environment variable {missing} holding app 'pacs's basic_password is not set"
        )),
        "{errs:#?}"
    );
    // Commands that never forward load the policy without the secret.
    assert!(
        load_as(
            &format!("{{ header = \"X-Api-Key\", value_env = \"{missing}\" }}"),
            Certs::Skip
        )
        .is_ok()
    );
    for (bad, why) in [
        (
            "{ basic_user = \"ward\" }".to_string(),
            "needs basic_password_env",
        ),
        (
            format!("{{ basic_password_file = \"{file}\" }}"),
            "needs basic_user",
        ),
        (
            format!("{{ basic_user = \"a:b\", basic_password_file = \"{file}\" }}"),
            "without ':'",
        ),
        (
            format!("{{ basic_user = \"w\", header = \"X-Api-Key\", value_file = \"{file}\" }}"),
            "not both or neither",
        ),
        ("{}".to_string(), "not both or neither"),
        (format!("{{ value_file = \"{file}\" }}"), "needs header"),
        (
            format!("{{ header = \"Cookie\", value_file = \"{file}\" }}"),
            "cannot carry",
        ),
        (
            format!("{{ header = \"X-Ward-User\", value_file = \"{file}\" }}"),
            "cannot carry",
        ),
        (
            format!("{{ header = \"X-Api-Key\", value_file = \"{file}\", value_env = \"V\" }}"),
            "not both",
        ),
        (
            "{ header = \"X-Api-Key\", value_file = \"/nonexistent/ward-secret\" }".to_string(),
            "cannot read the file",
        ),
        (
            format!("{{ header = \"X-Api-Key\", value = \"{file}\" }}"),
            "unknown setting 'value'",
        ),
        (
            format!("{{ header = \"X-Api-Key\", password = \"x\", value_file = \"{file}\" }}"),
            "unknown setting 'password'",
        ),
    ] {
        let errs: Vec<String> = match load_as(&bad, Certs::Load(&crate::tls::Files)) {
            Ok(_) => Vec::new(),
            Err(d) => d.items.iter().map(|i| d.format(i)).collect(),
        };
        assert!(
            !errs.is_empty() && errs.iter().any(|e| e.contains(why)),
            "{bad}: {errs:#?}"
        );
    }
    // A line break inside the secret cannot become a header: said without the secret.
    std::fs::write(secret.path(), "line one\nline two").unwrap();
    let errs: Vec<String> = match load_as(
        &format!("{{ header = \"X-Api-Key\", value_file = \"{file}\" }}"),
        Certs::Load(&crate::tls::Files),
    ) {
        Ok(_) => Vec::new(),
        Err(d) => d.items.iter().map(|i| d.format(i)).collect(),
    };
    assert!(
        errs.len() == 1 && errs[0].contains("line break") && !errs[0].contains("line one"),
        "{errs:#?}"
    );
}

#[test]
fn a_metrics_listener_off_loopback_is_warned_about_and_a_bad_one_refused() {
    let base = "practice = \"P\"\n[metrics]\n";
    let loaded =
        load(&format!("{base}listen = \"127.0.0.1:9464\"\n")).unwrap_or_else(|d| panic!("{d}"));
    assert!(loaded.warnings.items.is_empty());
    assert_eq!(
        loaded.policy.metrics.listen,
        Some("127.0.0.1:9464".parse().unwrap())
    );
    let loaded =
        load(&format!("{base}listen = \"0.0.0.0:9464\"\n")).unwrap_or_else(|d| panic!("{d}"));
    let w = loaded.warnings.format(&loaded.warnings.items[0]);
    assert!(w.contains(":3:") && w.contains("127.0.0.1:9464"), "{w}");
    let errs = errors(&format!("{base}listen = \"9464\"\n"));
    assert!(
        errs.iter()
            .any(|e| e.contains(":3:") && e.contains("address and port")),
        "{errs:#?}"
    );
    assert_eq!(
        load("practice = \"P\"\n")
            .unwrap_or_else(|d| panic!("{d}"))
            .policy
            .metrics
            .listen,
        None
    );
}

#[test]
fn a_redis_store_is_read_with_its_password_file_and_mistakes_are_placed() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "s3cret\n").unwrap();
    let base = "practice = \"P\"\n[sessions]\n";
    let text = format!(
        "{base}store = \"rediss://redis.example:6380/2\"\nstore_password_file = \"{}\"\nactivity_every = \"2s\"\n",
        secret.path().display()
    );
    let loaded = load(&text).unwrap_or_else(|d| panic!("{d}"));
    assert!(loaded.warnings.items.is_empty());
    let SessionStoreKind::Redis(r) = &loaded.policy.sessions.store else {
        panic!("not redis");
    };
    assert_eq!(r.url, "rediss://redis.example:6380/2");
    assert_eq!(r.password.as_deref(), Some("s3cret"));
    assert_eq!(r.activity_every, std::time::Duration::from_secs(2));
    assert!(!format!("{r:?}").contains("s3cret"));
    // Several instances: each audit chain is named for its machine unless the policy names it.
    assert_eq!(loaded.policy.audit.instance, crate::audit::host_instance());
    let named = load(&format!("{text}[audit]\ninstance = \"ward-a\"\n")).unwrap();
    assert_eq!(named.policy.audit.instance.as_deref(), Some("ward-a"));
    assert_eq!(
        load("practice = \"P\"\n").unwrap().policy.audit.instance,
        None
    );
    let errs = errors("practice = \"P\"\n[audit]\ninstance = \"a/b\"\n");
    assert!(
        errs.iter()
            .any(|e| e.contains(":3:") && e.contains("instance must be")),
        "{errs:#?}"
    );
    // Mistakes, each at its line.
    for (line, why) in [
        ("store = \"mysql://db\"", "\"memory\" or a Redis address"),
        ("store = \"redis://\"", "\"memory\" or a Redis address"),
        ("activity_every = \"5m\"", "between \"1s\" and \"60s\""),
        ("store_down_grace = \"2h\"", "at most \"1h\""),
        (
            "store = \"redis://r:1\"\nstore_password_file = \"/nonexistent/pw\"",
            "cannot read the Redis password file",
        ),
    ] {
        let errs = errors(&format!("{base}{line}\n"));
        assert!(
            errs.iter().any(|e| e.contains(":3:") || e.contains(":4:")),
            "{line}: {errs:#?}"
        );
        assert!(errs.iter().any(|e| e.contains(why)), "{line}: {errs:#?}");
    }
    // A password in the URL works, with a warning.
    let loaded =
        load(&format!("{base}store = \"redis://:pw@r:6379\"\n")).unwrap_or_else(|d| panic!("{d}"));
    let w = loaded.warnings.format(&loaded.warnings.items[0]);
    assert!(
        w.contains(":3:") && w.contains("store_password_file"),
        "{w}"
    );
    assert_eq!(
        load("practice = \"P\"\n")
            .unwrap_or_else(|d| panic!("{d}"))
            .policy
            .sessions
            .store,
        SessionStoreKind::Memory
    );
}

#[test]
fn field_rules_name_their_columns_and_bad_masks_are_placed() {
    let base = "practice = \"P\"\n[roles]\nfd = {}\n[[apps]]\nname = \"ehr\"\nupstream = \"http://x\"\n[[routes]]\napp = \"ehr\"\npath = \"/a\"\nallow_roles = [\"fd\"]\nhide_for = [\"fd\"]\n";
    let good = format!(
        "{base}hide = [\"td.diagnosis\", \"#ssn\", \"input[name=dob]\", \"form input[name='pin']\", \"div > span.x.insurance_id\", \"date_of_birth\", \"table tr:nth-child(2) td\"]\nmask = {{ \"p#phone\" = \"last4\" }}\n"
    );
    let loaded = load(&good).unwrap_or_else(|d| panic!("{d}"));
    let names: Vec<(String, Option<String>, crate::policy::Show)> = loaded.policy.routes[0]
        .fields
        .iter()
        .map(|f| (f.selector.clone(), f.name.clone(), f.show))
        .collect();
    let name = |s: &str| names.iter().find(|n| n.0 == s).and_then(|n| n.1.clone());
    assert_eq!(name("td.diagnosis").as_deref(), Some("diagnosis"));
    assert_eq!(name("#ssn").as_deref(), Some("ssn"));
    assert_eq!(name("input[name=dob]").as_deref(), Some("dob"));
    assert_eq!(name("form input[name='pin']").as_deref(), Some("pin"));
    assert_eq!(
        name("div > span.x.insurance_id").as_deref(),
        Some("insurance_id")
    );
    assert_eq!(name("date_of_birth").as_deref(), Some("date_of_birth"));
    assert_eq!(name("table tr:nth-child(2) td"), None);
    assert_eq!(name("p#phone").as_deref(), Some("phone"));
    assert!(
        names
            .iter()
            .any(|n| n.0 == "p#phone" && n.2 == crate::policy::Show::Last4)
    );

    for (extra, want) in [
        (
            "mask = { \"#ssn\" = \"first4\" }\n",
            "ward.toml:12:19: 'first4' is not a way ward can mask a field; write \"#ssn\" = \"last4\"",
        ),
        (
            "mask = { \"td[\" = \"last4\" }\n",
            "ward.toml:12:18: 'td[' is not a selector",
        ),
        (
            "hide = [\"#ssn\"]\nmask = { \"#ssn\" = \"last4\" }\n",
            "'#ssn' is both in hide and in mask",
        ),
    ] {
        let errs = errors(&format!("{base}{extra}"));
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{extra:?}: wanted {want:?} in {errs:#?}"
        );
    }
    // A mask without hide_for is as incomplete as a hide without it.
    let errs = errors(&base.replace("hide_for = [\"fd\"]\n", "mask = { \"#ssn\" = \"last4\" }\n"));
    assert!(
        errs.iter()
            .any(|e| e.contains("hide and hide_for go together")),
        "{errs:#?}"
    );
}

/// A SAML IdP metadata file with a fresh signing certificate.
fn idp_metadata_file() -> tempfile::NamedTempFile {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    crate::tls::write_self_signed(&cert, &key, &["idp.example"]).unwrap();
    let pem = std::fs::read_to_string(&cert).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let md = format!(
        r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example/">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/slo"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>"#
    );
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, md.as_bytes()).unwrap();
    f
}

#[test]
fn saml_providers_need_a_usable_metadata_file_and_a_unique_name() {
    let metadata = idp_metadata_file();
    let md = metadata.path().display().to_string();
    let entry =
        format!("[login]\n[[login.saml]]\nname = \"adfs\"\nidp_metadata = \"{md}\"\n[[apps]]");
    // Without public_url the error says what to add.
    let no_url = errors(&GOOD.replace("[[apps]]", &entry)).join("\n");
    assert!(no_url.contains("public_url"), "{no_url}");
    let server = "[server]\npublic_url = \"https://ehr.example\"\n";
    let good = GOOD.replacen("[server]\n", server, 1);
    let errs = |entries: &str| {
        errors(&good.replace("[[apps]]", &format!("[login]\n{entries}\n[[apps]]"))).join("\n")
    };
    assert_eq!(
        errs(&format!(
            "[[login.saml]]\nname = \"adfs\"\nidp_metadata = \"{md}\""
        )),
        ""
    );
    let missing = errs("[[login.saml]]\nname = \"adfs\"\nidp_metadata = \"/nonexistent/md.xml\"");
    assert!(
        missing.contains("cannot read the metadata file"),
        "{missing}"
    );
    // An address is fetched when first used; plain http only to this machine.
    assert_eq!(
        errs("[[login.saml]]\nname = \"adfs\"\nidp_metadata = \"https://idp.example/md.xml\""),
        ""
    );
    let plain =
        errs("[[login.saml]]\nname = \"adfs\"\nidp_metadata = \"http://idp.example/md.xml\"");
    assert!(plain.contains("must be https"), "{plain}");
    let skew = errs(&format!(
        "[[login.saml]]\nname = \"adfs\"\nidp_metadata = \"{md}\"\nclock_skew = \"1h\""
    ));
    assert!(skew.contains("at most \"5m\""), "{skew}");
    let none = errs("[[login.saml]]\nname = \"adfs\"");
    assert!(none.contains("idp_metadata"), "{none}");
    let not_xml = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(not_xml.path(), "<html>sign in</html>").unwrap();
    let bad = errs(&format!(
        "[[login.saml]]\nname = \"adfs\"\nidp_metadata = \"{}\"",
        not_xml.path().display()
    ));
    assert!(bad.contains("metadata cannot be used"), "{bad}");
    let twice = errs(&format!(
        "[[login.saml]]\nname = \"adfs\"\nidp_metadata = \"{md}\"\n[[login.saml]]\nname = \"adfs\"\nidp_metadata = \"{md}\""
    ));
    assert!(twice.contains("already a provider named 'adfs'"), "{twice}");
    let role = errs(&format!(
        "[[login.saml]]\nname = \"adfs\"\nidp_metadata = \"{md}\"\nrole_map = {{ g = [\"clinican\"] }}"
    ));
    assert!(role.contains("unknown role 'clinican'"), "{role}");
}

#[test]
fn the_saml_signing_key_files_come_together_and_must_match() {
    let metadata = idp_metadata_file();
    let md = metadata.path().display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    crate::tls::write_self_signed(
        dir.path().join("ward.crt").as_path(),
        dir.path().join("ward.key").as_path(),
        &["localhost"],
    )
    .unwrap();
    crate::auth::saml_key::SpKey::load_or_create(
        dir.path().join("k1").as_path(),
        dir.path().join("c1").as_path(),
    )
    .unwrap();
    crate::auth::saml_key::SpKey::load_or_create(
        dir.path().join("k2").as_path(),
        dir.path().join("c2").as_path(),
    )
    .unwrap();
    let server = format!(
        "[server]\npublic_url = \"https://ehr.example\"\ncert = \"{}\"\nkey = \"{}\"\n",
        p("ward.crt"),
        p("ward.key")
    );
    let load_with = |login: &str, saml: &str| {
        let text = GOOD.replacen("[server]\n", &server, 1).replace(
            "[[apps]]",
            &format!(
                "[login]\n{login}\n[[login.saml]]\nname = \"adfs\"\nidp_metadata = \"{md}\"\n{saml}\n[[apps]]"
            ),
        );
        load_str(
            &PathBuf::from("ward.toml"),
            &text,
            Certs::Load(&crate::tls::Files),
        )
    };
    let errs = |login: &str| match load_with(login, "") {
        Ok(_) => String::new(),
        Err(d) => d
            .items
            .iter()
            .map(|i| d.format(i))
            .collect::<Vec<_>>()
            .join("\n"),
    };
    // Neither: ward's own, in the state folder; requests signed by default.
    let own = load_with("", "").unwrap_or_else(|d| panic!("{d}")).policy;
    assert!(!own.login.saml_signing.given);
    assert!(own.login.saml_signing.key.ends_with("saml-signing.key"));
    assert!(own.login.saml[0].sign_requests);
    let off = load_with("", "sign_requests = false")
        .unwrap_or_else(|d| panic!("{d}"))
        .policy;
    assert!(!off.login.saml[0].sign_requests);
    // Both, matching.
    let given = load_with(
        &format!(
            "saml_signing_key = \"{}\"\nsaml_signing_cert = \"{}\"",
            p("k1"),
            p("c1")
        ),
        "",
    )
    .unwrap_or_else(|d| panic!("{d}"))
    .policy;
    assert!(given.login.saml_signing.given);
    // One without the other, a certificate for another key, a missing file.
    let alone = errs(&format!("saml_signing_key = \"{}\"", p("k1")));
    assert!(alone.contains("needs saml_signing_cert"), "{alone}");
    let alone = errs(&format!("saml_signing_cert = \"{}\"", p("c1")));
    assert!(alone.contains("needs saml_signing_key"), "{alone}");
    let other = errs(&format!(
        "saml_signing_key = \"{}\"\nsaml_signing_cert = \"{}\"",
        p("k1"),
        p("c2")
    ));
    assert!(
        other.contains("not for the key") && other.contains(":19:"),
        "{other}"
    );
    let gone = errs(&format!(
        "saml_signing_key = \"{}\"\nsaml_signing_cert = \"{}\"",
        p("nothing"),
        p("c1")
    ));
    assert!(gone.contains("nothing") && gone.contains(":18:"), "{gone}");
}

#[test]
fn the_review_period_reads_like_a_duration() {
    let base = "practice = \"P\"\n[server]\nlisten = \"127.0.0.1:0\"\n[review]\n";
    let errs = errors(&format!("{base}period = \"every quarter\"\n"));
    assert!(
        errs.iter()
            .any(|e| e.contains(":5:") && e.contains("not a length of time")),
        "{errs:#?}"
    );
    let errs = errors(&format!("{base}period = \"0 days\"\n"));
    assert!(errs.iter().any(|e| e.contains("is zero")), "{errs:#?}");
}

#[test]
fn alert_email_is_read_with_its_password_file_and_mistakes_are_placed() {
    use crate::audit::email::SmtpTls;
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "mail-s3cret\n").unwrap();
    let base = "practice = \"P\"\n[alerts]\n";
    let text = format!(
        "{base}email_to = [\"officer@riverside.example\", \"Dr Lee <lee@riverside.example>\"]\nemail_from = \"ward@riverside.example\"\nsmtp = \"smtp.riverside.example\"\nsmtp_user = \"ward\"\nsmtp_password_file = \"{}\"\n",
        secret.path().display()
    );
    let loaded = load(&text).unwrap_or_else(|d| panic!("{d}"));
    let e = loaded.policy.alerts.email.clone().unwrap();
    assert_eq!(e.to.len(), 2);
    assert_eq!(
        (e.host.as_str(), e.port, e.tls),
        ("smtp.riverside.example", 587, SmtpTls::Starttls)
    );
    assert_eq!(e.password.as_deref(), Some("mail-s3cret"));
    assert!(!format!("{:?}", loaded.policy.alerts).contains("mail-s3cret"));
    assert!(loaded.warnings.items.is_empty());
    // A password file others can read works, with a warning at its line.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(secret.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let loose = load(&text).unwrap_or_else(|d| panic!("{d}"));
    let w = loose.warnings.format(&loose.warnings.items[0]);
    assert!(w.contains(":7:") && w.contains("chmod 600"), "{w}");
    let tls = load(&format!("{base}email_to = [\"o@r.example\"]\nemail_from = \"w@r.example\"\nsmtp = \"[::1]\"\nsmtp_tls = \"tls\"\n")).unwrap();
    let e = tls.policy.alerts.email.unwrap();
    assert_eq!((e.host.as_str(), e.port, e.tls), ("::1", 465, SmtpTls::Tls));
    // No encryption only to this machine.
    let local = load(&format!("{base}email_to = [\"o@r.example\"]\nemail_from = \"w@r.example\"\nsmtp = \"127.0.0.1:2525\"\nsmtp_tls = \"none\"\n")).unwrap();
    assert_eq!(local.policy.alerts.email.unwrap().port, 2525);
    let mail = "email_to = [\"o@r.example\"]\nemail_from = \"w@r.example\"\n";
    for (lines, why) in [
        (
            format!("{mail}smtp = \"smtp.r.example\"\nsmtp_tls = \"none\""),
            "only allowed to a mail server on this machine",
        ),
        (
            format!("{mail}smtp = \"smtp.r.example\"\nsmtp_tls = \"ssl\""),
            "\"starttls\", \"tls\" or \"none\"",
        ),
        (
            format!("{mail}smtp = \"user@smtp.r.example:25\""),
            "server name or address",
        ),
        (
            format!("{mail}smtp = \"smtp.r.example:99999\""),
            "server name or address",
        ),
        (mail.to_string(), "add smtp ="),
        (
            "email_to = [\"o@r.example\"]\nsmtp = \"s\"".to_string(),
            "add email_from",
        ),
        (
            "email_to = [\"not an address\"]\nemail_from = \"w@r.example\"\nsmtp = \"s\""
                .to_string(),
            "not an e-mail address",
        ),
        (
            "email_to = []\nemail_from = \"w@r.example\"\nsmtp = \"s\"".to_string(),
            "email_to is empty",
        ),
        ("smtp = \"smtp.r.example\"".to_string(), "add email_to"),
        (
            format!("{mail}smtp = \"s\"\nsmtp_user = \"ward\""),
            "needs smtp_password_file",
        ),
        (
            format!("{mail}smtp = \"s\"\nsmtp_password_file = \"/x\""),
            "needs smtp_user",
        ),
        (
            format!(
                "{mail}smtp = \"s\"\nsmtp_user = \"w\"\nsmtp_password_file = \"/nonexistent/pw\""
            ),
            "cannot read the SMTP password file",
        ),
        (
            format!("{mail}smtp = \"127.0.0.1\"\nsmtp_tls = \"none\"\nsmtp_ca_file = \"ca.pem\""),
            "only used with smtp_tls",
        ),
    ] {
        let errs = errors(&format!("{base}{lines}\n"));
        assert!(errs.iter().any(|e| e.contains(why)), "{lines}: {errs:#?}");
        assert!(
            errs.iter()
                .all(|e| !e.contains(":1:") && !e.contains(":2:")),
            "{lines}: {errs:#?}"
        );
    }
}

#[test]
fn audit_syslog_is_parsed_and_mistakes_are_placed() {
    use crate::audit::syslog::Transport;
    let base = "practice = \"P\"\n[audit]\n";
    let loaded = load(&format!(
        "{base}syslog = \"tls://siem.riverside.example:6514\"\n"
    ))
    .unwrap_or_else(|d| panic!("{d}"));
    let s = loaded.policy.audit.syslog.unwrap();
    assert_eq!(
        (s.transport, s.host.as_str(), s.port),
        (Transport::Tls, "siem.riverside.example", 6514)
    );
    assert!(loaded.warnings.items.is_empty());
    let tcp = load(&format!("{base}syslog = \"tcp://10.0.0.9:514\"\n")).unwrap();
    assert_eq!(tcp.policy.audit.syslog.unwrap().transport, Transport::Tcp);
    // Plain TCP off this machine works, with a warning.
    let w = tcp.warnings.format(&tcp.warnings.items[0]);
    assert!(w.contains(":3:") && w.contains("unencrypted"), "{w}");
    let local = load(&format!("{base}syslog = \"tcp://127.0.0.1:514\"\n")).unwrap();
    assert!(local.warnings.items.is_empty());
    for (line, why) in [
        ("syslog = \"udp://siem:514\"", "syslog must be like"),
        ("syslog = \"siem:514\"", "syslog must be like"),
        ("syslog = \"tls://siem\"", "needs the collector's port"),
        ("syslog = \"tls://siem:6514/x\"", "syslog must be like"),
        (
            "syslog = \"tcp://127.0.0.1:514\"\nsyslog_ca_file = \"ca.pem\"",
            "only used with a tls:// collector",
        ),
        ("syslog_ca_file = \"ca.pem\"", "only used with syslog ="),
    ] {
        let errs = errors(&format!("{base}{line}\n"));
        assert!(
            errs.iter()
                .any(|e| e.contains(why) && (e.contains(":3:") || e.contains(":4:"))),
            "{line}: {errs:#?}"
        );
    }
}
