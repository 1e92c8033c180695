//! ward's end-to-end tests, one binary: each file beside this one is a module here.
//!
//! One binary instead of one per file: the build links ward and its dependencies once, not 45
//! times, which saves minutes of linking and gigabytes of disk on the CI machine (a full disk once
//! killed the linker there). The soak and sign-in load tests stay binaries of their own so their
//! load does not run beside the timing-sensitive tests here.

mod common;

mod alerts;
mod attack_brute_force;
mod attack_csrf_redirects;
mod attack_exfiltration;
mod attack_identity_spoofing;
mod attack_path_confusion;
mod attack_policy_files;
mod attack_sessions;
mod attack_smuggling;
mod audit;
mod audit_instances;
mod audit_integrity;
mod audit_kill;
mod audit_syslog;
mod browser;
mod cli;
mod cli_diff;
mod clinical_apps;
mod console;
mod console_browser;
mod devices;
mod explain;
mod faults;
mod field_rules;
mod head;
mod hostile_h2;
mod hostile_tls;
mod launcher;
mod login;
mod metrics;
mod more_time;
mod oidc_provider;
mod page_safety;
mod passkeys_browser;
mod proxy;
mod redis;
mod reload;
mod requests;
mod restart;
mod restart_settings;
mod saml;
mod schema;
mod sso;
mod users_cli;
mod watermark;
