//! `ward demo`: a self-signed certificate, the sample EHR on loopback, and ward
//! in front of it, with nothing to set up.

pub mod ehr;

use crate::config::{self, Certs, Overrides};
use std::net::SocketAddr;
use std::path::Path;

/// The built-in demo policy, written to `config/demo.toml` when that file is absent.
pub const DEMO_POLICY: &str = include_str!("../../config/demo.toml");

/// The demo accounts' shared password (a demo on loopback only).
pub const DEMO_PASSWORD: &str = "riverside demo passphrase";

/// The demo accounts: name, role, authenticator key (base32; public, demo only).
pub const DEMO_ACCOUNTS: [(&str, &str, &str); 4] = [
    ("officer", "officer", "QH2MOIXPJ3HD3RF67OF2FYW2TAKDZPFN"),
    ("dr_lee", "clinician", "WIP2RR5W5AHBLG2I2XGQ5J3L7GQHPVAT"),
    ("billing_bea", "biller", "XZ2DUWEODVDOS5FVLXM4W6Y43XXED2DC"),
    (
        "acme_vic",
        "vendor_biller",
        "A7CZR6G7XH4QERBYIIU2INJ5JHNNIALM",
    ),
];

/// Makes the demo accounts, signed up and ready, when the demo's accounts file is absent.
fn make_accounts(policy: &crate::policy::Policy) -> Result<(), String> {
    use crate::users::{Admin, NewAccount, SecretStore};
    if policy.storage.users.exists() {
        return Ok(());
    }
    let store = SecretStore::open(&policy.storage.state).map_err(|e| e.to_string())?;
    let admin = Admin::new(&policy.storage.users, store.clone(), &policy.practice);
    let now = crate::clock::now();
    let next_year = now
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(365))
        .map_err(|e| e.to_string())?;
    let hash = crate::auth::password::hash(DEMO_PASSWORD).map_err(|e| e.to_string())?;
    for (name, role, key) in DEMO_ACCOUNTS {
        let vendor = role == "vendor_biller";
        let new = NewAccount {
            name: name.into(),
            display_name: match name {
                "officer" => "Olive Officer (security officer)".into(),
                "dr_lee" => "Dr. Alex Lee".into(),
                "billing_bea" => "Bea Biller".into(),
                _ => "Vic Vendor (Acme Billing)".into(),
            },
            roles: vec![role.into()],
            org: vendor.then(|| "Acme Billing".into()),
            expires: vendor.then_some(next_year),
            sponsor: vendor.then(|| "officer".into()),
            allow_from: if vendor {
                vec!["this_machine".into()]
            } else {
                Vec::new()
            },
        };
        admin.add(new, now.as_second()).map_err(|e| e.to_string())?;
        store
            .update(|s| {
                if let Some(u) = s.users.get_mut(name) {
                    u.password = Some(hash.clone());
                    u.totp = Some(key.to_string());
                    u.enroll = None;
                }
            })
            .map_err(|e| e.to_string())?;
    }
    println!(
        "Made four demo accounts in {}",
        policy.storage.users.display()
    );
    Ok(())
}

/// Everything the demo set up before ward starts serving.
pub struct Prepared {
    /// Ports moved by the command line.
    pub overrides: Overrides,
    ehr: std::net::TcpListener,
    ehr_addr: SocketAddr,
}

/// Makes the certificate and demo policy if absent and binds the sample EHR.
pub fn prepare(
    file: &Path,
    listen: Option<String>,
    ehr_listen: Option<String>,
) -> Result<Prepared, String> {
    if !file.exists() {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(file, DEMO_POLICY).map_err(|e| format!("{}: {e}", file.display()))?;
        println!("Wrote the demo policy to {}", file.display());
    }
    let cert = Path::new("certs/ward.crt");
    let key = Path::new("certs/ward.key");
    if !cert.exists() || !key.exists() {
        crate::tls::write_self_signed(
            cert,
            key,
            &["localhost", "ward.localhost", "127.0.0.1", "::1"],
        )
        .map_err(|e| e.to_string())?;
        println!(
            "Made a self-signed certificate for localhost and ward.localhost in certs/ (your browser will warn about it)"
        );
    }
    let loaded = config::load(file, Certs::Skip).map_err(|d| d.to_string())?;
    make_accounts(&loaded.policy)?;
    let app = loaded
        .policy
        .apps
        .iter()
        .find(|a| a.name == "ehr")
        .ok_or("the demo policy has no app named \"ehr\"")?;
    let ehr_at = ehr_listen.unwrap_or_else(|| app.authority.to_string());
    let ehr = std::net::TcpListener::bind(&ehr_at)
        .map_err(|e| format!("the sample EHR cannot listen on {ehr_at}: {e}"))?;
    ehr.set_nonblocking(true).map_err(|e| e.to_string())?;
    let ehr_addr = ehr.local_addr().map_err(|e| e.to_string())?;
    let overrides = Overrides {
        listen,
        upstreams: vec![("ehr".into(), format!("http://{ehr_addr}"))],
    };
    Ok(Prepared {
        overrides,
        ehr,
        ehr_addr,
    })
}

impl Prepared {
    /// Starts the sample EHR and prints what to open.
    pub fn start(self, ward_addr: SocketAddr) {
        match tokio::net::TcpListener::from_std(self.ehr) {
            Ok(listener) => {
                tokio::spawn(async move {
                    if let Err(e) = ehr::serve(listener).await {
                        tracing::error!(error = %e, "the sample EHR stopped");
                    }
                });
            }
            Err(e) => tracing::error!(error = %e, "the sample EHR could not start"),
        }
        let url = format!("https://localhost:{}/", ward_addr.port());
        let own = format!("https://ward.localhost:{}/", ward_addr.port());
        println!();
        println!("ward demo is running.");
        println!("  Open {url} (the certificate is self-signed: accept the browser's warning).");
        println!(
            "  You sign in at ward's own address, {own}, once for every app; the officer's console is {own}.ward/officer/"
        );
        println!(
            "  Sample EHR (reachable only through ward): http://{}",
            self.ehr_addr
        );
        println!(
            "  Sign in as any demo account; the password for all of them is \"{DEMO_PASSWORD}\"."
        );
        println!("  Each has an authenticator key: add it to an authenticator app, or print");
        println!("  the current code with `cargo run --release -- totp-code --key KEY`.");
        for (name, role, key) in DEMO_ACCOUNTS {
            println!("    {name:<12} {role:<14} key {key}");
        }
        println!(
            "  Try: {url}patients/1001/chart (clinician), {url}billing (biller, or acme_vic the vendor),"
        );
        println!("       {url}notifications (WebSocket), {url}admin/ (officer only).");
        println!("  Export blocking: as billing_bea, {url}reports/patients.csv is refused;");
        println!(
            "       grant it with `cargo run --release -- grant --config config/demo.toml export --user billing_bea \\"
        );
        println!(
            "       --route '/reports/**' --for 1h --reason \"quarterly audit\"` and it downloads."
        );
        println!("  ward's health: {url}.ward/healthz");
        println!("  Stop with Ctrl-C.");
        println!();
    }
}
