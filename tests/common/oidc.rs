//! The real OpenID provider for tests: `oidc-provider` from npm, run by
//! `tests/oidc/provider.mjs` on loopback (see the comment at its top for the
//! environment it reads and the sign-in steps `Idp::login` takes).

use super::Proc;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `tests/oidc` in the source tree.
pub fn oidc_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc")
}

/// Installs the provider's npm packages (`npm ci`, from the lockfile) if they
/// are missing. Panics with a clear message if node or npm is not installed:
/// these tests never skip.
pub fn ensure_installed() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if *done {
        return;
    }
    let dir = oidc_dir();
    let have = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    assert!(
        have("node"),
        "the OIDC tests need Node.js (`node`) to run the test identity provider; \
         install it (Debian: apt-get install nodejs npm) — tests/run does this"
    );
    if !dir.join("node_modules/oidc-provider/package.json").exists() {
        assert!(
            have("npm"),
            "the OIDC tests need npm to install the test identity provider (oidc-provider) \
             into tests/oidc/node_modules; install it (Debian: apt-get install npm) or run \
             `npm ci --prefix tests/oidc`"
        );
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .status()
            .expect("run npm ci");
        assert!(
            status.success(),
            "`npm ci --prefix tests/oidc` failed ({status}); the OIDC tests cannot run without it"
        );
    }
    *done = true;
}

/// The test provider's certificate and key (for 127.0.0.1 and localhost), made once per
/// test process; the certificate is also the CA ward and [`Idp::client`] trust for it.
pub fn provider_cert() -> &'static (PathBuf, PathBuf) {
    static MADE: std::sync::OnceLock<(PathBuf, PathBuf)> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let (cert, key) = (dir.join("idp.crt"), dir.join("idp.key"));
        ward::tls::write_self_signed(&cert, &key, &["127.0.0.1", "localhost"]).unwrap();
        (cert, key)
    })
}

/// A running identity provider over HTTPS, stopped when dropped.
pub struct Idp {
    /// `https://127.0.0.1:PORT`, also its issuer.
    pub issuer: String,
    /// The PEM file to trust for it (`ca` in `[[login.oidc]]`).
    pub ca: PathBuf,
    pub child: Proc,
}

impl Idp {
    /// Starts the provider with `clients_json` (a JSON array of oidc-provider
    /// client metadata) and `accounts_json` (a JSON object: account id → claims).
    pub fn start(clients_json: &str, accounts_json: &str) -> Idp {
        Idp::start_with(clients_json, accounts_json, &[])
    }

    /// As [`Idp::start`], with more environment (`TOKEN_AUTH_AS`, `CLAIMS_IN_ID_TOKEN`).
    pub fn start_with(clients_json: &str, accounts_json: &str, env: &[(&str, &str)]) -> Idp {
        ensure_installed();
        // reqwest with rustls-tls-no-provider needs a process-wide provider.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        // A provider that has not said it is listening within 30 s is stopped and started
        // again (up to three times): a start once hung in CI with nothing on stderr, and a
        // fresh process is the cure a person would apply too.
        let mut failures = Vec::new();
        let (child, line) = loop {
            let mut child = Proc::spawn(&mut provider_command(clients_json, accounts_json, env));
            match wait_until_listening(&mut child, Duration::from_secs(30)) {
                Ok(line) => break (child, line),
                Err(why) => {
                    child.kill();
                    failures.push(why);
                    assert!(
                        failures.len() < 3,
                        "the test identity provider did not start, three times:\n{}",
                        failures.join("\n---\n")
                    );
                }
            }
        };
        let issuer = line.trim_start_matches("listening on ").trim().to_string();
        Idp {
            issuer,
            ca: provider_cert().0.clone(),
            child,
        }
    }

    /// `issuer` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A client for the provider (trusting its certificate): never follows redirects, 30 s
    /// timeout.
    pub fn client() -> reqwest::Client {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let ca = std::fs::read(&provider_cert().0).unwrap();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// Signs `account` in (any password) at the provider, starting from
    /// `authorize_url`, consenting if asked, and returns the URL the provider
    /// redirects back to (the relying party's redirect URI with `code`, `state`
    /// and `iss`), without following it. `client` must not follow redirects.
    pub async fn login(
        &self,
        client: &reqwest::Client,
        authorize_url: &str,
        account: &str,
    ) -> String {
        self.walk(client, authorize_url, Some(account)).await
    }

    /// Cancels at the provider's sign-in form; returns the redirect back, which
    /// carries `error=access_denied`.
    pub async fn deny(&self, client: &reqwest::Client, authorize_url: &str) -> String {
        self.walk(client, authorize_url, None).await
    }

    async fn walk(
        &self,
        client: &reqwest::Client,
        authorize_url: &str,
        account: Option<&str>,
    ) -> String {
        let mut jar = BTreeMap::<String, String>::new();
        let own = format!("{}/", self.issuer);
        let mut url = authorize_url.to_string();
        let mut form: Option<Vec<(&str, &str)>> = None;
        for _ in 0..20 {
            let cookie = jar
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            let req = match &form {
                Some(fields) => client.post(&url).form(fields),
                None => client.get(&url),
            };
            let req = if cookie.is_empty() {
                req
            } else {
                req.header("cookie", cookie)
            };
            let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            for v in resp.headers().get_all("set-cookie") {
                let text = v.to_str().unwrap_or("");
                let Some((k, val)) = text.split(';').next().and_then(|p| p.split_once('=')) else {
                    continue;
                };
                let expired = text
                    .to_ascii_lowercase()
                    .contains("expires=thu, 01 jan 1970");
                if val.is_empty() || expired {
                    jar.remove(k.trim());
                } else {
                    jar.insert(k.trim().to_string(), val.to_string());
                }
            }
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp.headers()["location"].to_str().unwrap().to_string();
                let next = reqwest::Url::parse(&url)
                    .unwrap()
                    .join(&loc)
                    .unwrap()
                    .to_string();
                if !next.starts_with(&own) {
                    return next;
                }
                url = next;
                form = None;
                continue;
            }
            let body = resp.text().await.unwrap_or_default();
            assert!(
                status.is_success() && url.contains("/interaction/"),
                "the provider answered {status} at {url}:\n{body}"
            );
            let base = url.trim_end_matches('/').to_string();
            match account {
                None => {
                    url = format!("{base}/abort");
                    form = Some(Vec::new());
                }
                Some(account) if body.contains("/login\"") => {
                    url = format!("{base}/login");
                    form = Some(vec![("login", account), ("password", "any password")]);
                }
                Some(_) if body.contains("/confirm\"") => {
                    url = format!("{base}/confirm");
                    form = Some(Vec::new());
                }
                Some(_) => panic!(
                    "an interaction page with neither a login nor a consent form at {url}:\n{body}"
                ),
            }
        }
        panic!("more than 20 steps at the provider from {authorize_url}");
    }

    /// Switches the provider to a new signing key; returns its key id.
    pub async fn rotate_keys(&self) -> String {
        let resp = Idp::client()
            .post(self.url("/__test/rotate-keys"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "rotate-keys: {}", resp.status());
        let v: serde_json::Value = resp.json().await.unwrap();
        v["kid"].as_str().unwrap().to_string()
    }

    /// The key id the provider signs with now.
    pub async fn current_kid(&self) -> String {
        let v: serde_json::Value = Idp::client()
            .get(self.url("/__test/kid"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["kid"].as_str().unwrap().to_string()
    }

    /// A ward provider configuration for one of this provider's clients.
    pub fn provider_config(
        &self,
        client_id: &str,
        client_secret: &str,
        redirect_url: &str,
    ) -> ward::auth::oidc::ProviderConfig {
        ward::auth::oidc::ProviderConfig {
            name: "test-idp".into(),
            issuer: self.issuer.clone(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            scopes: vec!["email".into(), "profile".into(), "groups".into()],
            redirect_url: redirect_url.into(),
            clock_skew: Duration::from_secs(30),
            groups_claim: "groups".into(),
            ca: Some(self.ca.clone()),
        }
    }

    /// Stops the provider now (as an outage would).
    pub fn stop(&mut self) {
        self.child.kill();
    }
}

/// The command that runs `tests/oidc/provider.mjs` with the given clients, accounts and
/// more environment, on a free loopback port over HTTPS.
fn provider_command(clients_json: &str, accounts_json: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(oidc_dir().join("provider.mjs"))
        .env("PORT", "0")
        .env_remove("ISSUER")
        .env("CLIENTS", clients_json)
        .env("ACCOUNTS", accounts_json)
        .env("TLS_CERT", &provider_cert().0)
        .env("TLS_KEY", &provider_cert().1);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Waits for the provider's `listening on https://…` line; panics if it exited (a broken
/// set-up is not retried), or says why it is not up after `limit`.
fn wait_until_listening(child: &mut Proc, limit: Duration) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(l) = child
            .stdout
            .all()
            .into_iter()
            .find(|l| l.starts_with("listening on https://"))
        {
            return Ok(l);
        }
        if let Ok(Some(status)) = child.child.try_wait() {
            panic!(
                "the test identity provider exited ({status}):\n{}",
                child.stderr.all().join("\n")
            );
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not listening after {} s; stdout:\n{}\nstderr:\n{}",
                limit.as_secs(),
                child.stdout.all().join("\n"),
                child.stderr.all().join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
