//! One scenario builder for the attack tests: a policy, enrolled accounts, a ward and a
//! recording upstream, set up in a few lines.
//!
//! ```ignore
//! let s = Scenario::new()
//!     .toml("[roles]\nclinician = {}\n")
//!     .route("/patients/**", "allow_roles = [\"clinician\"]")
//!     .user("dr_lee", &["clinician"])
//!     .start()
//!     .await;
//! let b = s.browser();
//! assert_eq!(s.sign_in(&b, "dr_lee").await, 303);
//! ```

use super::{
    Browser, Ehr, PW, Site, Upstream, WARD_HOST, Ward, audit_text, enrolled_user_from, raw_exchange,
};

/// ward's session cookie.
pub const SESSION_COOKIE: &str = "__Host-ward-session";
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// One account to enroll before ward starts.
struct Person {
    name: String,
    roles: Vec<String>,
    org: Option<String>,
    allow_from: Vec<String>,
}

/// The parts of a policy and its accounts, put together by [`Scenario::start`].
#[derive(Default)]
pub struct Scenario {
    top: String,
    server: String,
    toml: String,
    app: String,
    routes: String,
    people: Vec<Person>,
    https: bool,
    sample_ehr: bool,
    app_url: Option<String>,
    /// More apps (name, host, keys) on the same upstream as `ehr`.
    others: Vec<(String, String, String)>,
}

impl Scenario {
    pub fn new() -> Scenario {
        Scenario::default()
    }

    /// Top-level keys (`allow_from = …`), written before any table.
    pub fn top(mut self, lines: &str) -> Scenario {
        self.top.push_str(lines);
        self.top.push('\n');
        self
    }

    /// More `[server]` keys.
    pub fn server(mut self, lines: &str) -> Scenario {
        self.server.push_str(lines);
        self.server.push('\n');
        self
    }

    /// ward's own host `ward.localhost`, with the app on `localhost`.
    pub fn own_host(self) -> Scenario {
        self.server(&format!("ward_host = \"{WARD_HOST}\""))
            .app("host = \"localhost\"")
    }

    /// Whole tables (`[sessions]`, `[roles]`, `[networks]`, `[break_glass]` …).
    pub fn toml(mut self, text: &str) -> Scenario {
        self.toml.push_str(text);
        self.toml.push('\n');
        self
    }

    /// More keys of the one app, `ehr`.
    pub fn app(mut self, lines: &str) -> Scenario {
        self.app.push_str(lines);
        self.app.push('\n');
        self
    }

    /// A route of `ehr` for `path` with `keys` (`allow_roles = […]`, `from = […]` …).
    pub fn route(self, path: &str, keys: &str) -> Scenario {
        self.route_of("ehr", path, keys)
    }

    /// A route of `app` (`ehr` or one added with [`Scenario::other_app`]).
    pub fn route_of(mut self, app: &str, path: &str, keys: &str) -> Scenario {
        self.routes.push_str(&format!(
            "\n[[routes]]\napp = \"{app}\"\npath = \"{path}\"\n{keys}\n"
        ));
        self
    }

    /// Another app, `name` on `host`, served by the same upstream as `ehr`.
    pub fn other_app(self, name: &str, host: &str) -> Scenario {
        self.other_app_with(name, host, "")
    }

    /// [`Scenario::other_app`] with more keys (`ward_keeps_cookies = false` …).
    pub fn other_app_with(mut self, name: &str, host: &str, keys: &str) -> Scenario {
        self.others.push((name.into(), host.into(), keys.into()));
        self
    }

    /// The app is at `url` (an app of a particular kind, from `small_app`) instead of the
    /// recording upstream, which still runs unused.
    pub fn app_at(mut self, url: &str) -> Scenario {
        self.app_url = Some(url.into());
        self
    }

    /// The upstream over HTTPS (trusted through the app's `ca`).
    pub fn https(mut self, on: bool) -> Scenario {
        self.https = on;
        self
    }

    /// The app is the sample EHR (its own process: charts, `/echo/…` JSON of what it received,
    /// legacy redirects) instead of the recording upstream, which still runs unused.
    pub fn sample_ehr(mut self) -> Scenario {
        self.sample_ehr = true;
        self
    }

    /// An enrolled staff account (password [`PW`] and an authenticator).
    pub fn user(self, name: &str, roles: &[&str]) -> Scenario {
        self.person(name, roles, None, &[])
    }

    /// An enrolled account with an `org` (vendor staff when not the practice) and networks.
    pub fn person(
        mut self,
        name: &str,
        roles: &[&str],
        org: Option<&str>,
        allow_from: &[&str],
    ) -> Scenario {
        self.people.push(Person {
            name: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            org: org.map(str::to_string),
            allow_from: allow_from.iter().map(|a| a.to_string()).collect(),
        });
        self
    }

    /// The policy text (with `{server}` standing for the `[server]` header) for the app at
    /// `app_keys` (its `upstream = …` lines).
    fn policy(&self, app_keys: &str) -> String {
        let others: String = self
            .others
            .iter()
            .map(|(name, host, keys)| {
                format!("[[apps]]\nname = \"{name}\"\nhost = \"{host}\"\n{app_keys}{keys}\n")
            })
            .collect();
        format!(
            "practice = \"Test Clinic\"\n{}{{server}}{}\n{}\n[[apps]]\nname = \"ehr\"\n{}{}\n{}{}",
            self.top, self.server, self.toml, app_keys, self.app, others, self.routes
        )
    }

    /// Starts the upstream, enrolls the accounts, writes the policy and starts ward.
    pub async fn start(self) -> Running {
        let up = Upstream::start(self.https).await;
        let ehr = self.sample_ehr.then(Ehr::start);
        let site = Site::new();
        let mut secrets = BTreeMap::new();
        for p in &self.people {
            let roles: Vec<&str> = p.roles.iter().map(String::as_str).collect();
            let from: Vec<&str> = p.allow_from.iter().map(String::as_str).collect();
            // Vendor staff must have an end date.
            let expires = p.org.as_ref().map(|_| "2099-12-31");
            let secret =
                enrolled_user_from(&site, &p.name, &roles, PW, p.org.as_deref(), expires, &from);
            secrets.insert(p.name.clone(), secret);
        }
        let config = site.path("ward.toml");
        let app_keys = match (&ehr, &self.app_url) {
            (Some(e), _) => format!("upstream = \"{}\"\n", e.url()),
            (None, Some(url)) => format!("upstream = \"{url}\"\n"),
            (None, None) => up.app_keys(),
        };
        let policy = self.policy(&app_keys);
        std::fs::write(
            &config,
            policy.replace("{server}", &super::server_section(&site)),
        )
        .unwrap();
        let ward = Ward::start_in(site, config);
        Running {
            ward,
            up,
            ehr,
            secrets,
            policy,
            last_step: Mutex::default(),
        }
    }
}

/// A started scenario.
pub struct Running {
    pub ward: Ward,
    pub up: Upstream,
    /// The sample EHR, when the scenario asked for it ([`Scenario::sample_ehr`]).
    pub ehr: Option<Ehr>,
    /// Each account's authenticator secret.
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// The policy as written (with `{server}` in place of the `[server]` header).
    pub policy: String,
    /// The last authenticator step used per account (ward takes each code once).
    last_step: Mutex<BTreeMap<String, u64>>,
}

impl Running {
    /// A browser on the app host (`localhost`), asking for ward's pages on ward's own host
    /// when the policy has one.
    pub fn browser(&self) -> Browser {
        let b = Browser::on(&self.ward, "localhost");
        if self.policy.contains("ward_host") {
            b.pages_on(&self.ward, WARD_HOST)
        } else {
            b
        }
    }

    /// A fresh authenticator code for `user`, never one used before in this scenario
    /// (waits for the next 30 s step when the window is used up).
    pub async fn code(&self, user: &str) -> String {
        let secret = &self.secrets[user];
        loop {
            let now = super::unix_now() / 30;
            // The last step's code is still taken (one step of skew) until this step ends:
            // use it only while at least 15 s of that are left, since a slow browser
            // sign-in can take that long to send it.
            let oldest = if super::unix_now() % 30 < 15 {
                now.saturating_sub(1)
            } else {
                now
            };
            let taken = {
                let mut last = self.last_step.lock().unwrap();
                let next = last.get(user).map_or(oldest, |l| (l + 1).max(oldest));
                (next <= now + 1).then(|| {
                    last.insert(user.to_string(), next);
                    next
                })
            };
            match taken {
                Some(step) => return ward::auth::totp::code_at(secret, step * 30),
                None => tokio::time::sleep(Duration::from_secs(1)).await,
            }
        }
    }

    /// Signs `user` in through ward's pages in `b` (password [`PW`], a fresh code);
    /// returns the last step's status, 303 when signed in.
    pub async fn sign_in(&self, b: &Browser, user: &str) -> u16 {
        let code = self.code(user).await;
        super::sign_in_with_code(b, user, PW, &code).await
    }

    /// A fresh browser with `user` signed in, and its session cookie (for requests built by
    /// hand).
    pub async fn signed_in(&self, user: &str) -> (Browser, String) {
        let b = self.browser();
        assert_eq!(
            self.sign_in(&b, user).await,
            303,
            "{user} could not sign in"
        );
        let sid = b.cookie(SESSION_COOKIE).expect("a session cookie");
        (b, sid)
    }

    /// A raw HTTP/1.1 exchange over TLS, `{host}` and `{sid}` in `text` filled in with ward's
    /// `localhost:PORT` and `sid`; the status (0 when none) and the whole reply.
    pub async fn raw(&self, sid: &str, text: &str) -> (u16, String) {
        let text = text
            .replace("{host}", &format!("localhost:{}", self.ward.port()))
            .replace("{sid}", sid);
        let reply = raw_exchange(&self.ward, text.as_bytes(), Duration::from_secs(5)).await;
        let status = reply
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, reply)
    }

    /// Runs `ward user --config ward.toml ARGS…` in the scenario's folder, as the officer
    /// would; asserts it succeeded and returns what it printed.
    pub fn ward_user(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(super::WARD)
            .current_dir(self.ward.site.dir.path())
            .args(["user", "--config", "ward.toml"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Every audit record so far, parsed.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        audit_text(&self.ward.site)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The audit records whose fields equal every `(field, value)` pair given (waits up to
    /// 5 s for at least one).
    pub async fn audit_where(&self, fields: &[(&str, &str)]) -> Vec<serde_json::Value> {
        let matching = |all: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
            all.into_iter()
                .filter(|r| {
                    fields.iter().all(|(k, v)| match &r[*k] {
                        serde_json::Value::String(s) => s == v,
                        serde_json::Value::Null => false,
                        other => {
                            serde_json::from_str::<serde_json::Value>(v).ok().as_ref()
                                == Some(other)
                        }
                    })
                })
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let found = matching(self.audit());
            if !found.is_empty() || std::time::Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Panics unless some audit record has every `(field, value)` given; returns the first.
    pub async fn assert_audit(&self, fields: &[(&str, &str)]) -> serde_json::Value {
        let found = self.audit_where(fields).await;
        assert!(
            !found.is_empty(),
            "no audit record with {fields:?} in:\n{}",
            audit_text(&self.ward.site)
        );
        found[0].clone()
    }
}
