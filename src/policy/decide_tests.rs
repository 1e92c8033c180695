//! `decide` row by row: roles, named people, networks (policy, route, person),
//! methods, MFA, devices, break-glass roles, export grants and what an allowed
//! request carries (idle limit, export rule, caps, redaction, body rule).

use super::*;
use std::path::Path;

const POLICY: &str = r#"
practice = "Test Clinic"
allow_from = ["office", "vpn", "home"]
[server]
listen = "127.0.0.1:0"
device_ca = "devices.pem"
[sessions]
idle_timeout = "15m"
[login]
mfa = "optional"
[export]
vendors = "block"
[networks]
office = ["10.0.0.0/8"]
vpn = ["198.51.100.7/32"]
home = ["203.0.113.0/24"]
[roles]
clinician = { idle_timeout = "30m" }
biller = { export = "block" }
reports = { export = "allow" }
vendor_biller = {}
frontdesk = { idle_timeout = "5m" }
admin = { mfa = "required" }
officer = { mfa = "phishing-resistant" }
kiosk = { device = "required" }
emergency = {}
acme_biller = { allow_from = ["vpn"] }
night_shift = { allow_from = ["home", "10.9.0.0/16"] }
[[apps]]
name = "ehr"
host = "ehr.example"
upstream = "http://127.0.0.1:9"
[[apps]]
name = "billing"
host = "billing.example"
upstream = "http://127.0.0.1:9"
[[routes]]
app = "ehr"
path = "/logo.png"
allow = "public"
[[routes]]
app = "ehr"
path = "/patients/**"
allow_roles = ["clinician", "emergency"]
[[routes]]
app = "ehr"
path = "/patients/*/chart"
allow_roles = ["clinician", "frontdesk"]
idle_timeout = "10m"
redact_fields = ["ssn"]
redact_for = ["frontdesk"]
[[routes]]
app = "ehr"
path = "/admin/**"
methods = ["GET"]
allow_roles = ["admin"]
[[routes]]
app = "ehr"
path = "/prescribe/**"
allow_roles = ["clinician"]
mfa = "required"
[[routes]]
app = "ehr"
path = "/controlled/**"
allow_roles = ["clinician", "officer"]
mfa = "phishing-resistant"
[[routes]]
app = "ehr"
path = "/officer/**"
allow_roles = ["officer"]
[[routes]]
app = "ehr"
path = "/reports/**"
allow_roles = ["biller", "reports", "clinician", "vendor_biller"]
max_response = "1MB"
rate_limit = "10/minute"
[[routes]]
app = "ehr"
path = "/reports/export/**"
allow_roles = ["biller", "reports"]
export_endpoint = true
[[routes]]
app = "ehr"
path = "/forwarding/**"
allow_roles = ["clinician", "vendor_biller"]
no_body_for = ["vendor_biller"]
[[routes]]
app = "ehr"
path = "/kiosk/**"
allow_roles = ["kiosk", "clinician"]
[[routes]]
app = "ehr"
path = "/devices-only/**"
allow_roles = ["clinician"]
device = "required"
[[routes]]
app = "ehr"
path = "/office-only/**"
allow_roles = ["clinician"]
from = ["office"]
[[routes]]
app = "ehr"
path = "/acme/**"
allow_roles = ["acme_biller", "night_shift"]
[[routes]]
app = "ehr"
path = "/dav/**"
allow_roles = ["clinician"]
methods = ["GET", "PROPFIND", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "PROPPATCH", "REPORT"]
[[routes]]
app = "ehr"
path = "/named/**"
allow_users = ["dr_lee"]
[[routes]]
app = "billing"
path = "/**"
allow_roles = ["biller", "vendor_biller"]
export = "block"
[[routes]]
app = "billing"
path = "/statements/**"
allow_roles = ["biller", "vendor_biller", "reports"]
export = "allow"
"#;

fn policy() -> Policy {
    match crate::config::load_str(Path::new("t.toml"), POLICY, crate::config::Certs::Skip) {
        Ok(l) => l.policy,
        Err(d) => panic!("{d}"),
    }
}

/// A person: name, roles, own networks, second factor shown, vendor, export grants.
struct Who {
    name: &'static str,
    roles: &'static [&'static str],
    own: Option<&'static str>,
    mfa: bool,
    /// The second factor was a passkey or security key.
    passkey: bool,
    vendor: bool,
    grants: &'static [&'static str],
}

const fn who(name: &'static str, roles: &'static [&'static str]) -> Who {
    Who {
        name,
        roles,
        own: None,
        mfa: true,
        passkey: false,
        vendor: false,
        grants: &[],
    }
}

const LEE: Who = who("dr_lee", &["clinician"]);
const KIM: Who = who("kim", &["clinician"]);
const BEA: Who = who("bea", &["biller"]);
const FAY: Who = who("fay", &["frontdesk"]);
const ADA: Who = who("ada", &["admin"]);
const ADA_NO_MFA: Who = Who {
    mfa: false,
    ..who("ada", &["admin"])
};
const LEE_NO_MFA: Who = Who { mfa: false, ..LEE };
const LEE_PASSKEY: Who = Who {
    passkey: true,
    ..LEE
};
/// A passkey flag without a completed second factor is no passkey sign-in.
const LEE_PASSKEY_NO_MFA: Who = Who {
    mfa: false,
    passkey: true,
    ..LEE
};
const OLA: Who = who("ola", &["officer"]);
const OLA_PASSKEY: Who = Who {
    passkey: true,
    ..OLA
};
const VIC: Who = Who {
    own: Some("198.51.100.7/32"),
    vendor: true,
    ..who("vic", &["vendor_biller"])
};
const VIC_REPORTS: Who = Who {
    roles: &["vendor_biller", "reports"],
    ..VIC
};
const BEA_REPORTS: Who = who("bea", &["biller", "reports"]);
const BEA_GRANTED: Who = Who {
    grants: &["/reports/**"],
    ..BEA
};
const VIC_GRANTED: Who = Who {
    grants: &["/statements/**", "/reports/export/**"],
    ..VIC
};
const KIOSK: Who = who("terminal", &["kiosk"]);
/// Vendor staff whose role names the company's network, not the person.
const ANN: Who = Who {
    vendor: true,
    ..who("ann", &["acme_biller"])
};
/// A role without networks does not lift another role's.
const ANN_CLIN: Who = who("ann2", &["acme_biller", "clinician"]);
/// Two roles with networks: both must allow the address.
const NED: Who = who("ned", &["night_shift"]);
const NED_ACME: Who = who("ned2", &["night_shift", "acme_biller"]);
/// A role's networks and the person's own: both must allow the address.
const ANN_OWN: Who = Who {
    own: Some("10.0.0.0/8"),
    ..ANN
};
const ER: Who = who("er", &["emergency"]);
const NOBODY: Who = who("none", &[]);

/// What the row expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Allow,
    Login,
    Deny(Refusal),
}
use Want::*;

const OFFICE: &str = "10.1.2.3";
const VPN: &str = "198.51.100.7";
const HOME: &str = "203.0.113.9";
const ELSEWHERE: &str = "192.0.2.1";

/// (person or nobody, address, method, host, path, device, expected)
type Row = (
    Option<&'static Who>,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    Want,
);

const E: &str = "ehr.example";
const B: &str = "billing.example";

const ROWS: &[Row] = &[
    // Public pages: anyone on an allowed network, nobody on others.
    (None, OFFICE, "GET", E, "/logo.png", false, Allow),
    (None, HOME, "GET", E, "/logo.png", false, Allow),
    (
        None,
        ELSEWHERE,
        "GET",
        E,
        "/logo.png",
        false,
        Deny(Refusal::Network),
    ),
    (Some(&LEE), OFFICE, "GET", E, "/logo.png", false, Allow),
    (None, OFFICE, "POST", E, "/logo.png", false, Allow),
    // Members-only pages ask nobody to sign in, and refuse elsewhere first.
    (None, OFFICE, "GET", E, "/patients/1001", false, Login),
    (None, HOME, "GET", E, "/patients/1001/chart", false, Login),
    (
        None,
        ELSEWHERE,
        "GET",
        E,
        "/patients/1001",
        false,
        Deny(Refusal::Network),
    ),
    (None, OFFICE, "GET", E, "/admin/users", false, Login),
    // Default deny: no route, another host, an unknown host.
    (None, OFFICE, "GET", E, "/", false, Deny(Refusal::NoRoute)),
    (
        Some(&LEE),
        OFFICE,
        "GET",
        E,
        "/unrouted",
        false,
        Deny(Refusal::NoRoute),
    ),
    (
        Some(&LEE),
        OFFICE,
        "GET",
        "other.example",
        "/patients/1",
        false,
        Deny(Refusal::NoRoute),
    ),
    (
        Some(&LEE),
        OFFICE,
        "GET",
        B,
        "/patients/1",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&BEA),
        OFFICE,
        "GET",
        E,
        "/billing",
        false,
        Deny(Refusal::NoRoute),
    ),
    // Roles.
    (Some(&LEE), OFFICE, "GET", E, "/patients/1001", false, Allow),
    (Some(&LEE), HOME, "GET", E, "/patients/1001", false, Allow),
    (
        Some(&LEE),
        ELSEWHERE,
        "GET",
        E,
        "/patients/1001",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&LEE),
        OFFICE,
        "GET",
        E,
        "/patients/1001/chart",
        false,
        Allow,
    ),
    (
        Some(&LEE),
        OFFICE,
        "POST",
        E,
        "/patients/1001/chart",
        false,
        Allow,
    ),
    (
        Some(&FAY),
        OFFICE,
        "GET",
        E,
        "/patients/1001/chart",
        false,
        Allow,
    ),
    (
        Some(&FAY),
        OFFICE,
        "GET",
        E,
        "/patients/1001",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&FAY),
        OFFICE,
        "GET",
        E,
        "/patients/1001/chart/x",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&BEA),
        OFFICE,
        "GET",
        E,
        "/patients/1001",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&BEA),
        OFFICE,
        "GET",
        E,
        "/patients/1001/chart",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&VIC),
        VPN,
        "GET",
        E,
        "/patients/1001",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&NOBODY),
        OFFICE,
        "GET",
        E,
        "/patients/1001",
        false,
        Deny(Refusal::Role),
    ),
    (Some(&ER), OFFICE, "GET", E, "/patients/1001", false, Allow),
    (
        Some(&ER),
        OFFICE,
        "GET",
        E,
        "/patients/1001/chart",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&ER),
        OFFICE,
        "GET",
        E,
        "/prescribe/1",
        false,
        Deny(Refusal::Role),
    ),
    // Named people.
    (Some(&LEE), OFFICE, "GET", E, "/named/notes", false, Allow),
    (
        Some(&KIM),
        OFFICE,
        "GET",
        E,
        "/named/notes",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&ADA),
        OFFICE,
        "GET",
        E,
        "/named/notes",
        false,
        Deny(Refusal::Role),
    ),
    (None, OFFICE, "GET", E, "/named/notes", false, Login),
    // Methods: a method-limited route never falls through to a broader one.
    (Some(&ADA), OFFICE, "GET", E, "/admin/users", false, Allow),
    (Some(&ADA), OFFICE, "HEAD", E, "/admin/users", false, Allow),
    (
        Some(&ADA),
        OFFICE,
        "POST",
        E,
        "/admin/users",
        false,
        Deny(Refusal::Method),
    ),
    (
        Some(&ADA),
        OFFICE,
        "DELETE",
        E,
        "/admin/users",
        false,
        Deny(Refusal::Method),
    ),
    (
        Some(&ADA),
        OFFICE,
        "PUT",
        E,
        "/admin",
        false,
        Deny(Refusal::Method),
    ),
    (
        None,
        OFFICE,
        "POST",
        E,
        "/admin/users",
        false,
        Deny(Refusal::Method),
    ),
    (
        Some(&LEE),
        OFFICE,
        "GET",
        E,
        "/admin/users",
        false,
        Deny(Refusal::Role),
    ),
    // MFA: role and route rules; a sign-in without a second factor steps up.
    (
        Some(&ADA_NO_MFA),
        OFFICE,
        "GET",
        E,
        "/admin/users",
        false,
        Login,
    ),
    (Some(&LEE), OFFICE, "GET", E, "/prescribe/1", false, Allow),
    (
        Some(&LEE_NO_MFA),
        OFFICE,
        "GET",
        E,
        "/prescribe/1",
        false,
        Login,
    ),
    (
        Some(&LEE_NO_MFA),
        OFFICE,
        "GET",
        E,
        "/patients/1001",
        false,
        Allow,
    ),
    (
        Some(&BEA),
        OFFICE,
        "GET",
        E,
        "/prescribe/1",
        false,
        Deny(Refusal::Role),
    ),
    // Phishing-resistant: only a passkey sign-in passes; a code sign-in is refused, not
    // sent round the sign-in again; the role's rule holds on a route that asks for less.
    (
        Some(&LEE),
        OFFICE,
        "GET",
        E,
        "/controlled/1",
        false,
        Deny(Refusal::Passkey),
    ),
    (
        Some(&LEE_PASSKEY),
        OFFICE,
        "GET",
        E,
        "/controlled/1",
        false,
        Allow,
    ),
    (
        Some(&LEE_PASSKEY_NO_MFA),
        OFFICE,
        "GET",
        E,
        "/controlled/1",
        false,
        Deny(Refusal::Passkey),
    ),
    (
        Some(&LEE_NO_MFA),
        OFFICE,
        "GET",
        E,
        "/controlled/1",
        false,
        Deny(Refusal::Passkey),
    ),
    (
        Some(&BEA),
        OFFICE,
        "GET",
        E,
        "/controlled/1",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&OLA),
        OFFICE,
        "GET",
        E,
        "/controlled/1",
        false,
        Deny(Refusal::Passkey),
    ),
    (
        Some(&OLA_PASSKEY),
        OFFICE,
        "GET",
        E,
        "/controlled/1",
        false,
        Allow,
    ),
    (
        Some(&OLA),
        OFFICE,
        "GET",
        E,
        "/officer/1",
        false,
        Deny(Refusal::Passkey),
    ),
    (
        Some(&OLA_PASSKEY),
        OFFICE,
        "GET",
        E,
        "/officer/1",
        false,
        Allow,
    ),
    (
        Some(&LEE_PASSKEY),
        ELSEWHERE,
        "GET",
        E,
        "/controlled/1",
        false,
        Deny(Refusal::Network),
    ),
    // Route networks.
    (Some(&LEE), OFFICE, "GET", E, "/office-only/x", false, Allow),
    (
        Some(&LEE),
        HOME,
        "GET",
        E,
        "/office-only/x",
        false,
        Deny(Refusal::Network),
    ),
    (
        None,
        HOME,
        "GET",
        E,
        "/office-only/x",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&LEE),
        VPN,
        "GET",
        E,
        "/office-only/x",
        false,
        Deny(Refusal::Network),
    ),
    // A person's own networks.
    (Some(&VIC), VPN, "GET", B, "/invoices", false, Allow),
    (
        Some(&VIC),
        OFFICE,
        "GET",
        B,
        "/invoices",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&VIC),
        HOME,
        "GET",
        B,
        "/invoices",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&VIC),
        ELSEWHERE,
        "GET",
        B,
        "/invoices",
        false,
        Deny(Refusal::Network),
    ),
    (Some(&VIC), VPN, "GET", B, "/statements/1", false, Allow),
    (
        Some(&VIC),
        OFFICE,
        "GET",
        B,
        "/statements/1",
        false,
        Deny(Refusal::Network),
    ),
    (Some(&BEA), HOME, "GET", B, "/invoices", false, Allow),
    // Devices: per route and per role.
    (Some(&LEE), OFFICE, "GET", E, "/devices-only/x", true, Allow),
    (
        Some(&LEE),
        OFFICE,
        "GET",
        E,
        "/devices-only/x",
        false,
        Deny(Refusal::Device),
    ),
    (
        None,
        OFFICE,
        "GET",
        E,
        "/devices-only/x",
        false,
        Deny(Refusal::Device),
    ),
    (Some(&KIOSK), OFFICE, "GET", E, "/kiosk/1", true, Allow),
    (
        Some(&KIOSK),
        OFFICE,
        "GET",
        E,
        "/kiosk/1",
        false,
        Deny(Refusal::Device),
    ),
    (Some(&LEE), OFFICE, "GET", E, "/kiosk/1", false, Allow),
    (
        Some(&KIOSK),
        OFFICE,
        "GET",
        E,
        "/patients/1",
        true,
        Deny(Refusal::Role),
    ),
    // Reports and exports.
    (
        Some(&BEA),
        OFFICE,
        "GET",
        E,
        "/reports/monthly",
        false,
        Allow,
    ),
    (
        Some(&BEA_REPORTS),
        OFFICE,
        "GET",
        E,
        "/reports/monthly",
        false,
        Allow,
    ),
    (
        Some(&BEA_GRANTED),
        OFFICE,
        "GET",
        E,
        "/reports/monthly",
        false,
        Allow,
    ),
    (
        Some(&LEE),
        OFFICE,
        "GET",
        E,
        "/reports/monthly",
        false,
        Allow,
    ),
    (Some(&VIC), VPN, "GET", E, "/reports/monthly", false, Allow),
    (
        Some(&VIC_REPORTS),
        VPN,
        "GET",
        E,
        "/reports/monthly",
        false,
        Allow,
    ),
    (
        Some(&BEA),
        OFFICE,
        "GET",
        E,
        "/reports/export/all",
        false,
        Allow,
    ),
    (
        Some(&LEE),
        OFFICE,
        "GET",
        E,
        "/reports/export/all",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&VIC_GRANTED),
        VPN,
        "GET",
        E,
        "/reports/export/all",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&VIC_GRANTED),
        VPN,
        "GET",
        B,
        "/statements/9",
        false,
        Allow,
    ),
    (Some(&VIC_GRANTED), VPN, "GET", B, "/invoices", false, Allow),
    // Sharing settings.
    (
        Some(&LEE),
        OFFICE,
        "POST",
        E,
        "/forwarding/rules",
        false,
        Allow,
    ),
    (
        Some(&VIC),
        VPN,
        "POST",
        E,
        "/forwarding/rules",
        false,
        Allow,
    ),
    (Some(&VIC), VPN, "GET", E, "/forwarding/rules", false, Allow),
    (
        Some(&BEA),
        OFFICE,
        "POST",
        E,
        "/forwarding/rules",
        false,
        Deny(Refusal::Role),
    ),
    // Path spelling is canonical by now: anything else is another path.
    (
        Some(&FAY),
        OFFICE,
        "GET",
        E,
        "/patients//chart",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&LEE),
        OFFICE,
        "GET",
        E,
        "/Patients/1001",
        false,
        Deny(Refusal::NoRoute),
    ),
    (Some(&LEE), OFFICE, "GET", E, "/patients", false, Allow),
    (
        Some(&FAY),
        OFFICE,
        "GET",
        E,
        "/patients/1001/chart/",
        false,
        Deny(Refusal::Role),
    ),
    // More people and places on the same routes.
    (
        Some(&KIM),
        HOME,
        "GET",
        E,
        "/patients/7/chart",
        false,
        Allow,
    ),
    (
        Some(&KIM),
        ELSEWHERE,
        "GET",
        E,
        "/patients/7/chart",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&FAY),
        HOME,
        "GET",
        E,
        "/patients/7/chart",
        false,
        Allow,
    ),
    (Some(&FAY), VPN, "GET", E, "/patients/7/chart", false, Allow),
    (Some(&ADA), HOME, "GET", E, "/admin", false, Allow),
    (
        Some(&ADA),
        ELSEWHERE,
        "GET",
        E,
        "/admin",
        false,
        Deny(Refusal::Network),
    ),
    (Some(&ER), HOME, "GET", E, "/patients", false, Allow),
    (Some(&BEA), OFFICE, "DELETE", B, "/invoices/3", false, Allow),
    (
        Some(&LEE),
        OFFICE,
        "GET",
        B,
        "/statements/1",
        false,
        Deny(Refusal::Role),
    ),
    (
        Some(&BEA_REPORTS),
        OFFICE,
        "GET",
        B,
        "/statements/1",
        false,
        Allow,
    ),
    (None, OFFICE, "GET", B, "/statements/1", false, Login),
    (
        None,
        ELSEWHERE,
        "GET",
        B,
        "/statements/1",
        false,
        Deny(Refusal::Network),
    ),
    // A person bound to enrolled devices is bound on public pages too.
    (
        Some(&KIOSK),
        OFFICE,
        "GET",
        E,
        "/logo.png",
        false,
        Deny(Refusal::Device),
    ),
    (
        Some(&ADA_NO_MFA),
        OFFICE,
        "POST",
        E,
        "/admin/users",
        false,
        Deny(Refusal::Method),
    ),
    (
        Some(&LEE_NO_MFA),
        OFFICE,
        "GET",
        E,
        "/office-only/x",
        false,
        Allow,
    ),
    (
        Some(&LEE_NO_MFA),
        HOME,
        "GET",
        E,
        "/office-only/x",
        false,
        Deny(Refusal::Network),
    ),
    // IPv6 and IPv4-mapped addresses are held to the same networks.
    (
        Some(&LEE),
        "::ffff:10.1.2.3",
        "GET",
        E,
        "/office-only/x",
        false,
        Allow,
    ),
    (
        Some(&LEE),
        "2001:db8::1",
        "GET",
        E,
        "/patients/1",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&VIC),
        "::ffff:198.51.100.7",
        "GET",
        B,
        "/invoices",
        false,
        Allow,
    ),
    (
        None,
        "::1",
        "GET",
        E,
        "/logo.png",
        false,
        Deny(Refusal::Network),
    ),
    // Networks on roles: every role in force that names networks must allow the address.
    (Some(&ANN), VPN, "GET", E, "/acme/claims", false, Allow),
    (
        Some(&ANN),
        OFFICE,
        "GET",
        E,
        "/acme/claims",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&ANN),
        HOME,
        "GET",
        E,
        "/acme/claims",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&ANN),
        "::ffff:198.51.100.7",
        "GET",
        E,
        "/acme/claims",
        false,
        Allow,
    ),
    (
        Some(&ANN),
        VPN,
        "GET",
        B,
        "/invoices",
        false,
        Deny(Refusal::Role),
    ),
    (Some(&ANN), OFFICE, "GET", E, "/logo.png", false, Allow),
    (
        Some(&ANN_CLIN),
        OFFICE,
        "GET",
        E,
        "/patients/1",
        false,
        Deny(Refusal::Network),
    ),
    (Some(&ANN_CLIN), VPN, "GET", E, "/patients/1", false, Allow),
    (Some(&ANN_CLIN), VPN, "GET", E, "/acme/claims", false, Allow),
    (Some(&NED), HOME, "GET", E, "/acme/claims", false, Allow),
    (
        Some(&NED),
        "10.9.1.1",
        "GET",
        E,
        "/acme/claims",
        false,
        Allow,
    ),
    (
        Some(&NED),
        "10.8.1.1",
        "GET",
        E,
        "/acme/claims",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&NED),
        VPN,
        "GET",
        E,
        "/acme/claims",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&NED_ACME),
        VPN,
        "GET",
        E,
        "/acme/claims",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&NED_ACME),
        HOME,
        "GET",
        E,
        "/acme/claims",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&ANN_OWN),
        VPN,
        "GET",
        E,
        "/acme/claims",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&ANN_OWN),
        OFFICE,
        "GET",
        E,
        "/acme/claims",
        false,
        Deny(Refusal::Network),
    ),
    (
        Some(&ANN),
        ELSEWHERE,
        "GET",
        E,
        "/acme/claims",
        false,
        Deny(Refusal::Network),
    ),
    // WebDAV methods are listed like any other; unlisted ones (DELETE) stay refused.
    (
        Some(&LEE),
        OFFICE,
        "PROPFIND",
        E,
        "/dav/notes/",
        false,
        Allow,
    ),
    (
        Some(&LEE),
        OFFICE,
        "MKCOL",
        E,
        "/dav/notes/new",
        false,
        Allow,
    ),
    (Some(&LEE), OFFICE, "MOVE", E, "/dav/notes/a", false, Allow),
    (
        Some(&LEE),
        OFFICE,
        "UNLOCK",
        E,
        "/dav/notes/a",
        false,
        Allow,
    ),
    (Some(&LEE), OFFICE, "HEAD", E, "/dav/notes/a", false, Allow),
    (
        Some(&LEE),
        OFFICE,
        "DELETE",
        E,
        "/dav/notes/a",
        false,
        Deny(Refusal::Method),
    ),
    (
        Some(&LEE),
        OFFICE,
        "PUT",
        E,
        "/dav/notes/a",
        false,
        Deny(Refusal::Method),
    ),
    (
        Some(&LEE),
        OFFICE,
        "propfind",
        E,
        "/dav/notes/",
        false,
        Deny(Refusal::Method),
    ),
    (
        Some(&BEA),
        OFFICE,
        "PROPFIND",
        E,
        "/dav/notes/",
        false,
        Deny(Refusal::Role),
    ),
    // Break-glass roles open what the emergency role opens, nothing more.
    (
        Some(&ER),
        OFFICE,
        "POST",
        E,
        "/patients/1/notes",
        false,
        Allow,
    ),
    (
        Some(&ER),
        OFFICE,
        "GET",
        B,
        "/invoices",
        false,
        Deny(Refusal::Role),
    ),
];

fn identity(w: &Who) -> Identity {
    let own = w.own.map(|n| {
        net::NetSet::new(vec![
            net::parse_cidr(n).unwrap_or_else(|e| panic!("{n}: {e}")),
        ])
    });
    Identity {
        user: w.name.into(),
        roles: w.roles.iter().map(|r| r.to_string()).collect(),
        allow_from: own,
        mfa: w.mfa,
        passkey: w.passkey,
        emergency: w.roles.contains(&"emergency"),
        vendor: w.vendor,
        device_required: w.roles.contains(&"kiosk"),
        export_grants: w
            .grants
            .iter()
            .enumerate()
            .map(|(i, p)| ExportGrant {
                id: format!("g{i}"),
                reason: "quarterly audit".into(),
                pattern: routes::Pattern::parse(p, false).unwrap_or_else(|e| panic!("{e}")),
            })
            .collect(),
        access_grants: Vec::new(),
    }
}

fn run<'a>(p: &Policy, who: Option<&'a Identity>, row: &Row) -> Decision<'a> {
    let method = Method::from_bytes(row.2.as_bytes()).unwrap();
    let facts = Facts {
        client_ip: row.1.parse().unwrap(),
        method: &method,
        host: row.3,
        path: row.4,
        identity: who,
        device: row.5,
        device_people: &[],
        device_revoked: false,
        query: &[],
        form: &[],
    };
    decide(&facts, p)
}

#[test]
fn every_row_decides_as_written() {
    let p = policy();
    assert!(ROWS.len() >= 100, "{} rows", ROWS.len());
    let mut wrong = Vec::new();
    for row in ROWS {
        let id = row.0.map(identity);
        let d = run(&p, id.as_ref(), row);
        let got = match d.verdict {
            Verdict::Allow => Allow,
            Verdict::Login => Login,
            Verdict::Deny(r) => Deny(r),
        };
        if got != row.6 {
            wrong.push(format!(
                "{} {} {}{} from {}: got {got:?}, want {:?}",
                row.0.map(|w| w.name).unwrap_or("nobody"),
                row.2,
                row.3,
                row.4,
                row.1,
                row.6
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The allowed request at `path` for `w`.
fn allowed<'a>(
    p: &Policy,
    w: &'a Identity,
    method: &'static str,
    host: &'static str,
    path: &'static str,
) -> Decision<'a> {
    let ip = if w.vendor { VPN } else { OFFICE };
    let row: Row = (None, ip, method, host, path, true, Allow);
    let d = run(p, Some(w), &row);
    assert_eq!(d.verdict, Verdict::Allow, "{} {path}", w.user);
    d
}

#[test]
fn idle_limits_come_from_roles_and_the_route() {
    let p = policy();
    let min = |m: u64| Some(Duration::from_secs(60 * m));
    // A clinician's own 30 minutes, shortened to 10 on the chart.
    assert_eq!(
        allowed(&p, &identity(&LEE), "GET", E, "/patients/1").idle_limit,
        min(30)
    );
    assert_eq!(
        allowed(&p, &identity(&LEE), "GET", E, "/patients/1/chart").idle_limit,
        min(10)
    );
    // The front desk's 5 minutes stay shorter than the chart's 10.
    assert_eq!(
        allowed(&p, &identity(&FAY), "GET", E, "/patients/1/chart").idle_limit,
        min(5)
    );
    // No role sets one: the policy's.
    assert_eq!(
        allowed(&p, &identity(&BEA), "GET", B, "/invoices").idle_limit,
        min(15)
    );
    // Public pages for nobody: none.
    let row: Row = (None, OFFICE, "GET", E, "/logo.png", false, Allow);
    assert_eq!(run(&p, None, &row).idle_limit, None);
}

#[test]
fn export_rules_grants_and_mixed_roles() {
    let p = policy();
    let rule = |w: &Who, host, path| {
        let id = identity(w);
        match allowed(&p, &id, "GET", host, path).export {
            ExportRule::Allowed => "allowed".to_string(),
            ExportRule::Granted(g) => format!("granted {}", g.id),
            ExportRule::Blocked(b) => format!("blocked {b:?}"),
        }
    };
    assert_eq!(rule(&LEE, E, "/reports/monthly"), "allowed");
    assert_eq!(rule(&BEA, E, "/reports/monthly"), "blocked Role");
    // A blocking role outweighs an allowing one, as the access review says.
    assert_eq!(rule(&BEA_REPORTS, E, "/reports/monthly"), "blocked Role");
    assert_eq!(
        role_export(&p, &["biller".into(), "reports".into()]),
        Some(Export::Block)
    );
    assert_eq!(role_export(&p, &["reports".into()]), Some(Export::Allow));
    assert_eq!(role_export(&p, &["clinician".into()]), None);
    // A grant covers its paths only.
    assert_eq!(rule(&BEA_GRANTED, E, "/reports/monthly"), "granted g0");
    assert_eq!(rule(&BEA_GRANTED, B, "/invoices"), "blocked Route");
    // Vendor staff: blocked by default, unless a role or the route allows it.
    assert_eq!(rule(&VIC, E, "/reports/monthly"), "blocked Vendor");
    assert_eq!(rule(&VIC_REPORTS, E, "/reports/monthly"), "allowed");
    assert_eq!(rule(&VIC, B, "/statements/1"), "allowed");
    assert_eq!(rule(&VIC, B, "/invoices"), "blocked Route");
    assert_eq!(rule(&VIC_GRANTED, B, "/invoices"), "blocked Route");
    // An export endpoint says so.
    assert!(allowed(&p, &identity(&BEA), "GET", E, "/reports/export/x").export_endpoint);
    assert!(!allowed(&p, &identity(&BEA), "GET", E, "/reports/x").export_endpoint);
}

#[test]
fn caps_redaction_and_body_rules_follow_the_route_and_roles() {
    let p = policy();
    let bea = identity(&BEA);
    let d = allowed(&p, &bea, "GET", E, "/reports/monthly");
    assert_eq!(d.max_response, Some(1_000_000));
    assert_eq!(d.rate_limit, Some((10, Duration::from_secs(60))));
    let lee = identity(&LEE);
    let d = allowed(&p, &lee, "GET", E, "/patients/1");
    assert_eq!((d.max_response, d.rate_limit), (None, None));
    // Redaction for the front desk only.
    assert!(allowed(&p, &identity(&FAY), "GET", E, "/patients/1/chart").redact);
    assert!(!allowed(&p, &identity(&LEE), "GET", E, "/patients/1/chart").redact);
    // Bodies refused to vendor staff on sharing settings only.
    assert!(allowed(&p, &identity(&VIC), "POST", E, "/forwarding/rules").no_body);
    assert!(!allowed(&p, &identity(&LEE), "POST", E, "/forwarding/rules").no_body);
    assert!(!allowed(&p, &identity(&VIC), "GET", B, "/invoices").no_body);
    // MFA need, for the page and the person.
    assert!(allowed(&p, &identity(&LEE), "GET", E, "/prescribe/1").mfa_needed);
    assert!(!allowed(&p, &identity(&LEE), "GET", E, "/patients/1").mfa_needed);
    assert!(allowed(&p, &identity(&ADA), "GET", E, "/admin").mfa_needed);
    // A passkey need, for the page and the person; a code-level page does not ask for one.
    let (lee, ola) = (identity(&LEE_PASSKEY), identity(&OLA_PASSKEY));
    let controlled = allowed(&p, &lee, "GET", E, "/controlled/1");
    assert!(controlled.mfa_needed && controlled.passkey_needed);
    let officer = allowed(&p, &ola, "GET", E, "/officer/1");
    assert!(officer.mfa_needed && officer.passkey_needed);
    assert!(!allowed(&p, &identity(&LEE_PASSKEY), "GET", E, "/prescribe/1").passkey_needed);
}

#[test]
fn the_trace_names_the_role_whose_networks_refused() {
    let p = policy();
    let ned = identity(&NED_ACME);
    let method = Method::GET;
    let facts = Facts {
        client_ip: VPN.parse().unwrap(),
        method: &method,
        host: E,
        path: "/acme/claims",
        identity: Some(&ned),
        device: false,
        device_people: &[],
        device_revoked: false,
        query: &[],
        form: &[],
    };
    let mut checks: Vec<Check> = Vec::new();
    let d = decide_traced(&facts, &p, &mut checks);
    assert_eq!(d.verdict, Verdict::Deny(Refusal::Network));
    let roles: Vec<(bool, &str)> = checks
        .iter()
        .filter(|c| c.name == "network (role's allow_from)")
        .map(|c| (c.passed, c.detail.as_str()))
        .collect();
    assert_eq!(
        roles,
        [
            (
                false,
                "198.51.100.7 is not in the networks of role night_shift"
            ),
            (true, "198.51.100.7 is in the networks of role acme_biller"),
        ]
    );
    // Refused for networks, so the roles are not weighed.
    assert!(!checks.iter().any(|c| c.name == "role"), "{checks:#?}");
}

/// (who, path, what the device certificate names (None: no certificate), revoked, verdict)
type DeviceRow<'a> = (&'a Identity, &'a str, Option<&'a [String]>, bool, Verdict);

#[test]
fn devices_serve_the_people_they_name_and_revoked_ones_nobody() {
    let text = "practice = \"P\"\n[server]\ndevice_ca = \"ca.pem\"\n\
        [roles]\nclinician = {}\nfrontdesk = { device = \"own\" }\n\
        [[apps]]\nname = \"ehr\"\nupstream = \"http://x\"\n\
        [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow_roles = [\"clinician\", \"frontdesk\"]\n\
        [[routes]]\napp = \"ehr\"\npath = \"/rx/**\"\nallow_roles = [\"clinician\"]\ndevice = \"own\"\n";
    let p = crate::config::load_str(
        std::path::Path::new("ward.toml"),
        text,
        crate::config::Certs::Skip,
    )
    .unwrap_or_else(|d| panic!("{d}"))
    .policy;
    let person = |name: &str, role: &str| Identity {
        user: name.into(),
        roles: vec![role.into()],
        allow_from: None,
        mfa: true,
        passkey: true,
        emergency: false,
        vendor: false,
        device_required: false,
        export_grants: Vec::new(),
        access_grants: Vec::new(),
    };
    let lee = person("lee", "clinician");
    let kim = person("kim", "frontdesk");
    let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (lees, desk, nobodys) = (names(&["lee"]), names(&["role:frontdesk"]), names(&[]));
    let method = Method::GET;
    let rows: [DeviceRow<'_>; 12] = [
        (&lee, "/a", Some(&lees), false, Verdict::Allow),
        (&lee, "/rx/1", Some(&lees), false, Verdict::Allow),
        (&lee, "/a", None, false, Verdict::Allow),
        (&lee, "/rx/1", None, false, Verdict::Deny(Refusal::Device)),
        (
            &lee,
            "/rx/1",
            Some(&nobodys),
            false,
            Verdict::Deny(Refusal::OtherDevice),
        ),
        (&lee, "/a", Some(&nobodys), false, Verdict::Allow),
        (
            &lee,
            "/a",
            Some(&desk),
            false,
            Verdict::Deny(Refusal::OtherDevice),
        ),
        (
            &lee,
            "/a",
            Some(&lees),
            true,
            Verdict::Deny(Refusal::DeviceRevoked),
        ),
        (&kim, "/a", Some(&desk), false, Verdict::Allow),
        (
            &kim,
            "/a",
            Some(&lees),
            false,
            Verdict::Deny(Refusal::OtherDevice),
        ),
        (
            &kim,
            "/a",
            Some(&nobodys),
            false,
            Verdict::Deny(Refusal::OtherDevice),
        ),
        (&kim, "/a", None, false, Verdict::Deny(Refusal::Device)),
    ];
    for (who, path, device, revoked, want) in rows {
        let facts = Facts {
            client_ip: OFFICE.parse().unwrap(),
            method: &method,
            host: E,
            path,
            identity: Some(who),
            device: device.is_some(),
            device_people: device.unwrap_or(&[]),
            device_revoked: revoked,
            query: &[],
            form: &[],
        };
        assert_eq!(
            decide(&facts, &p).verdict,
            want,
            "{} {path} {device:?} revoked={revoked}",
            who.user
        );
    }
}

#[test]
fn access_grants_open_their_app_and_pattern_only_and_lift_no_other_rule() {
    let text = "practice = \"P\"\n[login]\nmfa = \"optional\"\n[networks]\noffice = [\"10.0.0.0/8\"]\n\
        [roles]\nclinician = {}\nvendor = { allow_from = [\"office\"] }\nadmin = { mfa = \"required\" }\n\
        [[apps]]\nname = \"ehr\"\nhost = \"ehr.example\"\nupstream = \"http://x\"\n\
        [[apps]]\nname = \"billing\"\nhost = \"billing.example\"\nupstream = \"http://x\"\n\
        [[routes]]\napp = \"ehr\"\npath = \"/billing/**\"\nallow_roles = [\"clinician\"]\n\
        [[routes]]\napp = \"ehr\"\npath = \"/admin/**\"\nallow_roles = [\"admin\"]\nmfa = \"required\"\n\
        [[routes]]\napp = \"billing\"\npath = \"/billing/**\"\nallow_roles = [\"clinician\"]\n";
    let p = crate::config::load_str(Path::new("ward.toml"), text, crate::config::Certs::Skip)
        .unwrap_or_else(|d| panic!("{d}"))
        .policy;
    let grant = |app: &str, pattern: &str| AccessGrant {
        id: "a1".into(),
        reason: "month-end statements".into(),
        app: app.into(),
        pattern: routes::Pattern::parse(pattern, false).unwrap(),
    };
    let jo = Identity {
        user: "jo".into(),
        roles: vec!["vendor".into()],
        allow_from: None,
        mfa: false,
        passkey: false,
        emergency: false,
        vendor: true,
        device_required: false,
        export_grants: Vec::new(),
        access_grants: vec![grant("ehr", "/billing/**"), grant("ehr", "/admin/**")],
    };
    let ask = |host: &str, path: &str, ip: &str| {
        let facts = Facts::on_own_device(ip.parse().unwrap(), &Method::GET, host, path, Some(&jo));
        let d = decide(&facts, &p);
        (d.verdict, d.access_grant.map(|g| g.id.clone()))
    };
    assert_eq!(
        ask("ehr.example", "/billing/1", "10.1.2.3"),
        (Verdict::Allow, Some("a1".to_string()))
    );
    // Another app with the same pattern: the grant names the app.
    assert_eq!(
        ask("billing.example", "/billing/1", "10.1.2.3").0,
        Verdict::Deny(Refusal::Role)
    );
    // A path outside the pattern.
    assert_eq!(
        ask("ehr.example", "/charts/1", "10.1.2.3").0,
        Verdict::Deny(Refusal::NoRoute)
    );
    // The role's networks still hold.
    assert_eq!(
        ask("ehr.example", "/billing/1", "192.0.2.1").0,
        Verdict::Deny(Refusal::Network)
    );
    // The route's MFA still holds: a grant is no second factor.
    assert_eq!(ask("ehr.example", "/admin/x", "10.1.2.3").0, Verdict::Login);
    // Without the grant, refused for roles (the grant is what let it in).
    let mut bare = jo.clone();
    bare.access_grants.clear();
    let facts = Facts::on_own_device(
        "10.1.2.3".parse().unwrap(),
        &Method::GET,
        "ehr.example",
        "/billing/1",
        Some(&bare),
    );
    assert_eq!(decide(&facts, &p).verdict, Verdict::Deny(Refusal::Role));
}
