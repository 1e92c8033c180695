//! Test harness: real ward and sample-EHR processes on loopback, real TLS clients.
#![allow(dead_code)]

pub mod browser;
pub mod oidc;
pub mod presets;
pub mod saml;
pub mod scenario;
pub mod upstream;
pub mod wire;

#[allow(unused_imports)]
pub use browser::free_port;
#[allow(unused_imports)]
pub use scenario::{Running, SESSION_COOKIE, Scenario};
#[allow(unused_imports)]
pub use upstream::{Seen, Upstream};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const WARD: &str = env!("CARGO_BIN_EXE_ward");

/// Host names the test certificate covers; all resolve to 127.0.0.1 in the clients.
pub const NAMES: [&str; 5] = [
    "localhost",
    "ehr.localhost",
    "billing.localhost",
    "ward.localhost",
    "127.0.0.1",
];

/// The password of the scenario builder's accounts.
pub const PW: &str = "maple orbit candle harbor 42";

/// ward's own host name in tests that set `[server] ward_host`.
pub const WARD_HOST: &str = "ward.localhost";

/// Lines a child process printed, collected by a reader thread.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn collect(stream: impl std::io::Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                sink.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits for a line containing `needle` and returns it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        self.wait_for_all(&[needle], timeout)
    }

    /// Waits for a line containing every one of `needles` and returns it.
    pub fn wait_for_all(&self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self
                .all()
                .into_iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needles:?} in:\n{}",
                self.all().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub stdout: Lines,
    pub stderr: Lines,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = Lines::collect(child.stdout.take().unwrap());
        let stderr = Lines::collect(child.stderr.take().unwrap());
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident memory in KiB, from /proc.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The sample EHR as its own process (so a test can kill it for real).
pub struct Ehr {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl Ehr {
    pub fn start() -> Ehr {
        let proc = Proc::spawn(Command::new(WARD).args(["sample-ehr", "--listen", "127.0.0.1:0"]));
        let line = proc
            .stdout
            .wait_for("listening on http://", Duration::from_secs(20));
        let addr = line
            .rsplit("http://")
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Ehr { proc, addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A temporary directory with a certificate for `NAMES`.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        ward::tls::write_self_signed(
            &dir.path().join("certs/ward.crt"),
            &dir.path().join("certs/ward.key"),
            &NAMES,
        )
        .unwrap();
        Site { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.path("certs/ward.crt")).unwrap()
    }
}

/// A running ward.
pub struct Ward {
    pub proc: Proc,
    pub addr: SocketAddr,
    pub site: Site,
    pub config: PathBuf,
}

/// The `[server]` lines every test policy starts with.
pub fn server_section(site: &Site) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n",
        site.path("certs/ward.crt").display(),
        site.path("certs/ward.key").display()
    )
}

impl Ward {
    /// Starts ward with `policy`, where `{server}` is replaced by a `[server]`
    /// header with listen/cert/key lines (more server keys may follow it).
    pub fn start(policy: &str) -> Ward {
        let site = Site::new();
        let config = site.path("ward.toml");
        std::fs::write(&config, policy.replace("{server}", &server_section(&site))).unwrap();
        Ward::start_in(site, config)
    }

    pub fn start_in(site: Site, config: PathBuf) -> Ward {
        // Plain reqwest clients in tests need a process-wide crypto provider.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let (proc, addr) = serve(&site, &config);
        Ward {
            proc,
            addr,
            site,
            config,
        }
    }

    /// Stops ward as systemd does (SIGTERM), waits for it to exit (it must exit
    /// cleanly within 20 s) and returns its log lines.
    pub fn stop(&mut self) -> Vec<String> {
        let pid = self.proc.pid().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        self.wait_stopped()
    }

    /// Waits for ward to exit (cleanly, within 20 s) and returns its log lines.
    pub fn wait_stopped(&mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.proc.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "ward did not stop within 20 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader thread may still hold the last lines for a moment.
        std::thread::sleep(Duration::from_millis(100));
        let logs = self.logs();
        assert!(
            status.success(),
            "ward exited with {status}:\n{}",
            logs.join("\n")
        );
        logs
    }

    /// Starts ward again (after [`Ward::stop`]) with the same policy, folders and port.
    pub fn start_again(&mut self) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let text = text.replace(
            "listen = \"127.0.0.1:0\"",
            &format!("listen = \"{}\"", self.addr),
        );
        std::fs::write(&self.config, text).unwrap();
        let (proc, addr) = serve(&self.site, &self.config);
        assert_eq!(addr, self.addr);
        self.proc = proc;
    }

    /// Stops ward (SIGTERM) and starts it again on the same port; the old run's log lines.
    pub fn restart(&mut self) -> Vec<String> {
        let logs = self.stop();
        self.start_again();
        logs
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://localhost:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port())
    }

    /// `https://HOST:PORT{path}` for one of `NAMES`.
    pub fn url_for(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port())
    }

    /// A client that trusts the test certificate; `h2` picks the protocol via ALPN.
    pub fn client(&self, h2: bool) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .use_preconfigured_tls(tls_client(
                &self.site.cert_pem(),
                if h2 { &[b"h2"] } else { &[b"http/1.1"] },
            ))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60));
        for name in NAMES {
            if name != "127.0.0.1" {
                b = b.resolve(name, self.addr);
            }
        }
        if h2 {
            b = b.http2_prior_knowledge();
        } else {
            b = b.http1_only();
        }
        b.build().unwrap()
    }

    /// Replaces the policy file (atomically, as editors that rename do).
    pub fn write_policy(&self, policy: &str) {
        let text = policy.replace("{server}", &server_section(&self.site));
        let tmp = self.site.path("ward.toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config).unwrap();
    }

    pub fn logs(&self) -> Vec<String> {
        self.proc.stderr.all()
    }
}

/// `ward serve` on `config` in `site`; the process and its address once it listens.
fn serve(site: &Site, config: &Path) -> (Proc, SocketAddr) {
    let proc = Proc::spawn(
        Command::new(WARD)
            .args(["serve", "--log-format", "json", "--config"])
            .arg(config)
            .current_dir(site.dir.path()),
    );
    let line = proc
        .stderr
        .wait_for("\"listening\"", Duration::from_secs(20));
    let addr = json_field(&line, "addr").parse().unwrap();
    (proc, addr)
}

/// A rustls client config that trusts `cert_pem`, offering `alpn`.
pub fn tls_client(cert_pem: &[u8], alpn: &[&[u8]]) -> rustls::ClientConfig {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(ward::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    cfg
}

/// A raw TLS connection to ward, for requests no HTTP client would send.
pub async fn raw_tls(
    ward: &Ward,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let cfg = std::sync::Arc::new(tls_client(&ward.site.cert_pem(), alpn));
    let tcp = tokio::net::TcpStream::connect(ward.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap()
}

/// Sends raw bytes over TLS and reads until the server closes or `timeout` passes.
pub async fn raw_exchange(ward: &Ward, request: &[u8], timeout: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = raw_tls(ward, &[b"http/1.1"]).await;
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(timeout, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A string field of a JSON log line.
pub fn json_field(line: &str, field: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    v[field]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v[field].to_string())
}

/// The headers the sample EHR saw, from its `/debug/headers` JSON.
pub fn seen_headers(json: &serde_json::Value) -> Vec<(String, String)> {
    json["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap().to_string(),
                p[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The header names the sample EHR echoed under `/echo/…`, lower case, from a raw reply.
pub fn echoed_names(reply: &str) -> Vec<String> {
    let body = &reply[reply.find("\r\n\r\n").expect("a head") + 4..];
    let start = body.find('{').expect("a JSON echo");
    let end = body.rfind('}').expect("a JSON echo");
    let json: serde_json::Value = serde_json::from_str(&body[start..=end]).unwrap();
    seen_headers(&json)
        .into_iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .collect()
}

/// Whether a raw reply came from the app (the test apps mark theirs with `x-upstream-target`).
pub fn reached_upstream(reply: &str) -> bool {
    reply.to_ascii_lowercase().contains("x-upstream-target")
}

/// `ward audit verify` on the trail in `dir` passes.
pub fn verify_trail(dir: &Path) {
    let out = Command::new(WARD)
        .args(["audit", "verify", "--dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ward audit verify failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A minimal policy: one app at `upstream`, everything public.
pub fn open_policy(upstream: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{{server}}\n[[apps]]\nname = \"ehr\"\nupstream = \"{upstream}\"\n\n[[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow = \"public\"\n"
    )
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}

/// A browser stand-in: never follows redirects, sends `Accept: text/html`, sends `Origin` on
/// a POST (as browsers do), and keeps cookies as a browser does: host-only and `Domain`
/// matching, `Path`, `Secure` (https only), expiry and `Max-Age` (the `cookie_store` crate),
/// plus what that crate leaves out: the `__Host-` and `__Secure-` prefixes and `SameSite`
/// (checked by the `*_from` methods, which send a request from another site's page).
pub struct Browser {
    client: reqwest::Client,
    base: String,
    jar: Mutex<cookie_store::CookieStore>,
    /// With `[server] ward_host`: ward's own pages are asked for there.
    ward_base: Option<String>,
    extra: Mutex<Vec<(String, String)>>,
}

/// Where a request comes from, for `SameSite`.
#[derive(Clone, Copy, PartialEq)]
enum Context {
    /// Typed in, or from a page of the same site: every cookie goes.
    SameSite,
    /// A top-level GET from another site's page: `Lax` and `None` cookies go, `Strict` do not.
    CrossSiteNavigation,
    /// Any other request from another site's page (a form POST): only `SameSite=None`.
    CrossSite,
}

impl Browser {
    fn make(client: reqwest::Client, base: String) -> Browser {
        Browser {
            client,
            base,
            jar: Mutex::default(),
            extra: Mutex::default(),
            ward_base: None,
        }
    }

    pub fn new(ward: &Ward) -> Browser {
        Browser::make(ward.client(false), ward.url(""))
    }

    /// A browser that talks to `host` (one of `NAMES`).
    pub fn on(ward: &Ward, host: &str) -> Browser {
        Browser::make(ward.client(false), ward.url_for(host, ""))
    }

    /// This browser, asking for ward's own pages (`/.ward/…`, but for those
    /// that live on app hosts) at ward's own host, as the links there lead.
    pub fn pages_on(mut self, ward: &Ward, host: &str) -> Browser {
        self.ward_base = Some(ward.url_for(host, ""));
        self
    }

    /// A browser on a client of your own (client certificates, say).
    pub fn with_client(client: reqwest::Client, base: String) -> Browser {
        Browser::make(client, base)
    }

    pub fn h2(ward: &Ward) -> Browser {
        Browser::make(ward.client(true), ward.url(""))
    }

    /// A GET that reports connection failures instead of panicking.
    pub async fn try_get(&self, path: &str) -> Result<reqwest::Response, reqwest::Error> {
        let url = self.full(path);
        self.client
            .get(&url)
            .header("cookie", self.cookie_header_for(&url, Context::SameSite))
            .send()
            .await
    }

    /// The full URL for `path`: a path on this browser's base, or an absolute URL.
    fn full(&self, path: &str) -> String {
        const ON_APP_HOSTS: [&str; 5] = [
            "/.ward/session",
            "/.ward/keepalive",
            "/.ward/idle.js",
            "/.ward/handoff",
            "/.ward/healthz",
        ];
        if path.starts_with("https://") || path.starts_with("http://") {
            return path.to_string();
        }
        match &self.ward_base {
            Some(w)
                if path.starts_with("/.ward/")
                    && !ON_APP_HOSTS.iter().any(|p| path.starts_with(p)) =>
            {
                format!("{w}{path}")
            }
            _ => format!("{}{path}", self.base),
        }
    }

    fn url(url: &str) -> reqwest::Url {
        reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    /// The `Cookie` header a browser sends to `url` in `context`.
    fn cookie_header_for(&self, url: &str, context: Context) -> String {
        use cookie::SameSite;
        let url = Self::url(url);
        let jar = self.jar.lock().unwrap();
        let mut found: Vec<_> = jar
            .matches(&url)
            .into_iter()
            .filter(|c| match (context, c.same_site()) {
                (Context::SameSite, _) => true,
                (_, Some(SameSite::None)) => c.secure() == Some(true),
                // No SameSite attribute is Lax, as browsers now treat it.
                (Context::CrossSiteNavigation, Some(SameSite::Lax) | None) => true,
                _ => false,
            })
            .collect();
        // Longer paths first, as browsers order them.
        found.sort_by_key(|c| std::cmp::Reverse(c.path().map(str::len).unwrap_or(0)));
        found
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether a browser accepts `c` from `url`: the cookie-prefix rules (RFC 6265bis 4.1.3)
    /// and no `Secure` cookie from a plain-HTTP page.
    fn admissible(c: &cookie::Cookie<'_>, url: &reqwest::Url) -> bool {
        let secure_page = url.scheme() == "https";
        let secure = c.secure() == Some(true);
        if secure && !secure_page {
            return false;
        }
        let name = c.name().to_ascii_lowercase();
        if name.starts_with("__secure-") && !secure {
            return false;
        }
        if name.starts_with("__host-") {
            return secure && c.domain().is_none() && c.path() == Some("/");
        }
        // SameSite=None without Secure is refused by today's browsers.
        c.same_site() != Some(cookie::SameSite::None) || secure
    }

    fn keep(&self, resp: &reqwest::Response) {
        let url = resp.url().clone();
        let mut jar = self.jar.lock().unwrap();
        for v in resp.headers().get_all("set-cookie") {
            let Ok(text) = v.to_str() else { continue };
            let Ok(c) = cookie::Cookie::parse(text.to_string()) else {
                continue;
            };
            if Self::admissible(&c, &url) {
                // The jar itself ignores what a browser ignores (a foreign Domain, say).
                let _ignored = jar.insert_raw(&c, &url);
            }
        }
    }

    /// GETs `path` and follows redirects (across hosts, as a browser does) to the end.
    pub async fn get_following(&self, path: &str) -> reqwest::Response {
        let mut resp = self.get(path).await;
        for _ in 0..10 {
            if !resp.status().is_redirection() {
                break;
            }
            let next = resp
                .url()
                .join(resp.headers()["location"].to_str().unwrap())
                .unwrap();
            resp = self.get(next.as_str()).await;
        }
        resp
    }

    /// Sends this header with every request from now on (replacing an earlier value).
    pub fn header(&self, name: &str, value: &str) {
        let mut extra = self.extra.lock().unwrap();
        extra.retain(|(n, _)| n != name);
        extra.push((name.to_string(), value.to_string()));
    }

    fn with_extra(&self, mut req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (n, v) in self.extra.lock().unwrap().iter() {
            req = req.header(n.as_str(), v.as_str());
        }
        req
    }

    /// A cookie this browser would send to its base host's `/`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookie_at(&self.base, name)
    }

    /// A cookie this browser would send to `url` (a path on the base, or absolute).
    pub fn cookie_at(&self, url: &str, name: &str) -> Option<String> {
        let url = Self::url(&self.full(url));
        let jar = self.jar.lock().unwrap();
        jar.matches(&url)
            .into_iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_string())
    }

    /// Plants a cookie for the base host (`Secure`, `Path=/`), as an attacker with the
    /// value would.
    pub fn set_cookie(&self, name: &str, value: &str) {
        let url = Self::url(&self.base);
        let c = cookie::Cookie::build((name.to_string(), value.to_string()))
            .path("/")
            .secure(true)
            .build();
        let _ignored = self.jar.lock().unwrap().insert_raw(&c, &url);
    }

    /// Plants a cookie for `url`'s host (`Secure`, `Path=/`).
    pub fn set_cookie_at(&self, url: &str, name: &str, value: &str) {
        let url = Self::url(&self.full(url));
        let c = cookie::Cookie::build((name.to_string(), value.to_string()))
            .path("/")
            .secure(true)
            .build();
        let _ignored = self.jar.lock().unwrap().insert_raw(&c, &url);
    }

    /// Forgets every cookie, as closing the browser does.
    pub fn clear_cookies(&self) {
        self.jar.lock().unwrap().clear();
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_in(path, Context::SameSite, None).await
    }

    async fn get_in(&self, path: &str, context: Context, from: Option<&str>) -> reqwest::Response {
        let url = self.full(path);
        let mut req = self
            .client
            .get(&url)
            .header("accept", "text/html")
            .header("cookie", self.cookie_header_for(&url, context));
        if let Some(page) = from {
            req = req.header("referer", page);
        }
        // As browsers say of a navigation from another site's page.
        if matches!(context, Context::CrossSiteNavigation) {
            req = req.header("sec-fetch-site", "cross-site");
        }
        let resp = self.with_extra(req).send().await.unwrap();
        self.keep(&resp);
        resp
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let url = self.full(path);
        let origin = Self::url(&url).origin().ascii_serialization();
        self.post_in(&url, fields, Context::SameSite, &origin).await
    }

    async fn post_in(
        &self,
        url: &str,
        fields: &[(&str, &str)],
        context: Context,
        origin: &str,
    ) -> reqwest::Response {
        let body = serde_urlencoded::to_string(fields).unwrap();
        let mut req = self
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", self.cookie_header_for(url, context))
            .body(body);
        // An Origin set with `header` (a test playing a script) stands instead.
        if !self
            .extra
            .lock()
            .unwrap()
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("origin"))
        {
            req = req.header("origin", origin);
        }
        let resp = self.with_extra(req).send().await.unwrap();
        self.keep(&resp);
        resp
    }

    /// A form on a page of `site` (say `https://evil.example`) posting to `path`: the request
    /// carries that `Origin`, and only the cookies a browser sends cross-site.
    pub async fn post_from(
        &self,
        site: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let url = self.full(path);
        self.post_in(&url, fields, Context::CrossSite, site).await
    }

    /// A form on a page of a sibling host of the same site (another app's host, say) posting
    /// to `path`: same-site cookies go, with that `Origin`.
    pub async fn post_with_origin(
        &self,
        origin: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let url = self.full(path);
        self.post_in(&url, fields, Context::SameSite, origin).await
    }

    /// A link on a page of `site` followed to `path` (a top-level GET): `Strict` cookies
    /// stay home.
    pub async fn get_from(&self, site: &str, path: &str) -> reqwest::Response {
        self.get_in(path, Context::CrossSiteNavigation, Some(site))
            .await
    }
}

/// The `value` of the input named `name` (or with id `name`) in a page.
pub fn input_value(html: &str, name: &str) -> String {
    for key in [format!("name=\"{name}\""), format!("id=\"{name}\"")] {
        if let Some(at) = html.find(&key) {
            let tag_start = html[..at].rfind('<').unwrap();
            let tag = &html[tag_start..tag_start + html[tag_start..].find('>').unwrap()];
            if let Some(v) = tag.split("value=\"").nth(1) {
                // Attribute text, unescaped as a browser would.
                return v
                    .split('"')
                    .next()
                    .unwrap()
                    .replace("&quot;", "\"")
                    .replace("&#39;", "'")
                    .replace("&lt;", "<")
                    .replace("&gt;", ">")
                    .replace("&amp;", "&");
            }
        }
    }
    panic!("no input {name} in {html}");
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Adds an enrolled account directly through the account store (fast: no browser flow).
/// Returns the TOTP secret.
pub fn enrolled_user(
    site: &Site,
    name: &str,
    roles: &[&str],
    password: &str,
    org: Option<&str>,
    expires: Option<&str>,
) -> Vec<u8> {
    enrolled_user_from(site, name, roles, password, org, expires, &[])
}

/// `enrolled_user` with the person's own networks (`allow_from`).
pub fn enrolled_user_from(
    site: &Site,
    name: &str,
    roles: &[&str],
    password: &str,
    org: Option<&str>,
    expires: Option<&str>,
    allow_from: &[&str],
) -> Vec<u8> {
    use ward::users::{Admin, NewAccount, SecretStore};
    let store = SecretStore::open(&site.path("state")).unwrap();
    let admin = Admin::new(
        &site.path("config/users.toml"),
        store.clone(),
        "Test Clinic",
    );
    let new = NewAccount {
        name: name.into(),
        display_name: format!("Test {name}"),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        org: org.map(str::to_string),
        expires: expires.map(|d| d.parse().unwrap()),
        sponsor: org.map(|_| "officer".to_string()),
        allow_from: allow_from.iter().map(|a| a.to_string()).collect(),
    };
    admin.add(new, unix_now() as i64).unwrap();
    let secret = ward::auth::totp::new_secret().unwrap();
    let hash = ward::auth::password::hash(password).unwrap();
    let key = data_encoding::BASE32_NOPAD.encode(&secret);
    store
        .update(|s| {
            let u = s.users.get_mut(name).unwrap();
            u.password = Some(hash);
            u.totp = Some(key);
            u.enroll = None;
        })
        .unwrap();
    secret
}

/// Signs `user` in through ward's own pages in `b`: the password step, then the
/// authenticator code for `offset` seconds from now (ward takes a code once, so
/// a second sign-in in the same 30 s uses another offset). Returns the status of
/// the last step: 303 when signed in.
pub async fn sign_in_with(
    b: &Browser,
    user: &str,
    password: &str,
    secret: &[u8],
    offset: i64,
) -> u16 {
    let code = ward::auth::totp::code_at(secret, (unix_now() as i64 + offset) as u64);
    sign_in_with_code(b, user, password, &code).await
}

/// As [`sign_in_with`], with the authenticator code given.
pub async fn sign_in_with_code(b: &Browser, user: &str, password: &str, code: &str) -> u16 {
    // With a ward_host, the app host's sign-in page leads to ward's own host.
    let form = b.get_following(&format!("{}/.ward/login", b.base)).await;
    let origin = form.url().origin().ascii_serialization();
    let on_app_host = !b.base.starts_with(&origin);
    let form = form.text().await.unwrap();
    let csrf = input_value(&form, "csrf");
    let ret = input_value(&form, "return");
    let r = b
        .post(
            &format!("{origin}/.ward/login"),
            &[
                ("csrf", &csrf),
                ("return", if on_app_host { &ret } else { "/" }),
                ("username", user),
                ("password", password),
            ],
        )
        .await;
    if r.status() != 303 {
        return r.status().as_u16();
    }
    let form = b
        .get(&format!("{origin}/.ward/mfa"))
        .await
        .text()
        .await
        .unwrap();
    let csrf = input_value(&form, "csrf");
    let r = b
        .post(
            &format!("{origin}/.ward/mfa"),
            &[("csrf", &csrf), ("code", code)],
        )
        .await;
    if r.status() != 303 || !on_app_host {
        return r.status().as_u16();
    }
    // Back to the app host through the hand-off.
    let next = r
        .url()
        .join(r.headers()["location"].to_str().unwrap())
        .unwrap();
    let mut resp = b.get(next.as_str()).await;
    while resp.status().is_redirection() && !resp.url().as_str().starts_with(&b.base) {
        let next = resp
            .url()
            .join(resp.headers()["location"].to_str().unwrap())
            .unwrap();
        resp = b.get(next.as_str()).await;
    }
    303
}

/// Every line of the audit trail in `site`'s `audit/` folder, as one text.
pub fn audit_text(site: &Site) -> String {
    let mut files: Vec<PathBuf> = std::fs::read_dir(site.path("audit"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// An HTTP/1.1 client like `Ward::client` whose connections come from `local`
/// (any 127.x.y.z address works on loopback), for address-bound checks.
pub fn client_from(ward: &Ward, local: std::net::IpAddr) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_preconfigured_tls(tls_client(&ward.site.cert_pem(), &[b"http/1.1"]))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .local_address(local)
        .http1_only();
    for name in NAMES {
        if name != "127.0.0.1" {
            b = b.resolve(name, ward.addr);
        }
    }
    b.build().unwrap()
}

/// Runs `ward grant --config CONFIG export …` in `dir` as the officer would and
/// waits until ward has read the grant. Panics with ward's words if it fails.
pub async fn grant_export(
    dir: &Path,
    config: &str,
    user: &str,
    route: &str,
    period: &str,
    reason: &str,
) {
    run_ward(
        dir,
        &[
            "grant", "--config", config, "export", "--user", user, "--route", route, "--for",
            period, "--reason", reason,
        ],
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
}

/// Runs the `ward` command with `args` in `dir`, as the officer would; panics with ward's
/// words if it fails.
pub fn run_ward(dir: &Path, args: &[&str]) {
    let out = Command::new(WARD)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ward ARGS --config CONFIG` in ward's folder: (success, stdout, stderr).
pub fn ward_cli(ward: &Ward, config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(WARD)
        .args(args)
        .arg("--config")
        .arg(config)
        .current_dir(ward.site.dir.path())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value of one sample of ward's metrics, named as in the text with its labels
/// (`ward_deliveries_total{sink="email",outcome="sent"}`); 0 when absent. The policy must
/// have `[metrics] listen`.
pub async fn metric(ward: &Ward, sample: &str) -> f64 {
    let line = ward
        .proc
        .stderr
        .wait_for("serving metrics", Duration::from_secs(5));
    let addr = json_field(&line, "addr");
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// A small app on loopback (plain HTTP/1.1) that answers every request with
/// `answer`; returns its base URL. For tests that need an app of a particular
/// kind (a cookie login, a hostile page, a database tool).
pub async fn small_app<F, Fut>(answer: F) -> String
where
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = hyper::Response<http_body_util::Full<bytes::Bytes>>>
        + Send
        + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let answer = answer.clone();
                    async move { Ok::<_, std::convert::Infallible>(answer(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    url
}

/// The audit record of the request whose `x-request-id` was `id` (waits up to 5 s for it).
pub fn audit_of(site: &Site, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = audit_text(site)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| r["request_id"] == id);
        if let Some(r) = found {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no audit record for request {id} in:\n{}",
            audit_text(site)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `x-request-id` of a response.
pub fn request_id(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no x-request-id on {}", resp.url()))
        .to_string()
}

/// A real passkey (public key only) that Chromium's virtual authenticator made for ward's own
/// host `ward.localhost` in `passkeys_browser`, and the account handle it carries.
pub fn chromium_passkey() -> (
    Option<webauthn_rs::prelude::Uuid>,
    ward::users::PasskeyEntry,
) {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/passkey.json")).expect("passkey.json");
    (
        serde_json::from_value(fixture["passkey_user"].clone()).unwrap(),
        serde_json::from_value(fixture["entry"].clone()).unwrap(),
    )
}
