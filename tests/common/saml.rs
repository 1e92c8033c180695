//! A real SAML 2.0 identity provider for tests: Debian's SimpleSAMLphp (1.19) with its
//! `exampleauth:UserPass` source, under PHP's built-in server on loopback, its whole
//! configuration (config, metadata, signing key) written into a temp dir per provider.

use super::Proc;
use super::browser::free_port;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Where Debian installs SimpleSAMLphp.
const SSP: &str = "/usr/share/simplesamlphp";

/// One person at the IdP: user name, password, `mail`, `groups`.
pub struct Person<'a> {
    pub user: &'a str,
    pub mail: &'a str,
    pub groups: &'a [&'a str],
}

/// An SP the IdP knows: its entity id, where its answers go, and, when given, the certificate
/// (base64 DER) its requests must be signed with: the IdP then refuses unsigned sign-in and
/// logout requests from it, and signs the logout requests it sends it.
pub struct KnownSp<'a> {
    pub entity_id: &'a str,
    pub acs: &'a str,
    pub slo: &'a str,
    pub cert: Option<&'a str>,
    /// The IdP encrypts its assertions to `cert` (AES-128-CBC, RSA-OAEP).
    pub encrypt: bool,
}

/// The body of SimpleSAMLphp's `saml20-sp-remote.php` for `sps`.
fn sp_remote(sps: &[KnownSp<'_>]) -> String {
    let mut remote = String::from("<?php\n");
    for sp in sps {
        let signing = match sp.cert {
            Some(c) => format!(
                "'certData' => {},\n 'validate.authnrequest' => true,\n 'validate.logout' => true,\n 'sign.logout' => true,\n",
                lit(c)
            ),
            None => "'validate.logout' => false,\n".to_string(),
        };
        let signing = if sp.encrypt {
            format!(
                "{signing} 'assertion.encryption' => true,\n 'sharedkey_algorithm' => 'http://www.w3.org/2001/04/xmlenc#aes128-cbc',\n"
            )
        } else {
            signing
        };
        remote.push_str(&format!(
            "$metadata[{id}] = [\n\
             'AssertionConsumerService' => {acs},\n\
             'SingleLogoutService' => [['Binding' => 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect', 'Location' => {slo}]],\n\
             'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',\n\
             'simplesaml.nameidattribute' => 'mail',\n\
             'simplesaml.attributes' => true,\n\
             {signing}\
             ];\n",
            id = lit(sp.entity_id),
            acs = lit(sp.acs),
            slo = lit(sp.slo),
        ));
    }
    remote
}

/// The running IdP.
pub struct SamlIdp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its metadata as it serves it (the file ward's `idp_metadata` names).
    pub metadata: String,
    _dir: tempfile::TempDir,
    pub child: Proc,
}

/// Panics, saying what to install, if PHP or SimpleSAMLphp is missing: these tests never skip.
pub fn ensure_installed() {
    let php = Command::new("php")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let dom = Command::new("php")
        .arg("-m")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l == "dom")
        })
        .unwrap_or(false);
    assert!(
        php && dom && Path::new(SSP).join("www/saml2/idp/SSOService.php").exists(),
        "the SAML tests need PHP (with its XML module) and SimpleSAMLphp to run the test \
         identity provider; install them (Debian: apt-get install php-cli php-xml simplesamlphp) \
         — tests/run does this"
    );
}

/// A PHP string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl SamlIdp {
    /// Starts an IdP for `people` that answers `sps`; its assertions live `lifetime` seconds
    /// and say the person signed in by `authn_context` (else SimpleSAMLphp's password class).
    pub fn start(
        people: &[Person<'_>],
        sps: &[KnownSp<'_>],
        lifetime: u32,
        authn_context: Option<&str>,
    ) -> SamlIdp {
        ensure_installed();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["config", "metadata", "cert", "sessions", "tmp", "log"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let key = d.join("cert/idp.key");
        let crt = d.join("cert/idp.crt");
        let ok = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            ])
            .arg("/CN=test-idp")
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .output()
            .expect("run openssl to make the test IdP's signing key");
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        let p = |sub: &str| format!("{}/", d.join(sub).display());
        std::fs::write(
            d.join("config/config.php"),
            format!(
                "<?php\n$config = [\n\
                 'baseurlpath' => {base},\n\
                 'certdir' => {cert},\n\
                 'metadatadir' => {md},\n\
                 'tempdir' => {tmp},\n\
                 'loggingdir' => {log},\n\
                 'logging.handler' => 'errorlog',\n\
                 'logging.level' => SimpleSAML\\Logger::WARNING,\n\
                 'secretsalt' => 'test-salt-not-secret',\n\
                 'auth.adminpassword' => 'not-used-here',\n\
                 'technicalcontact_email' => 'it@example.org',\n\
                 'timezone' => 'UTC',\n\
                 'enable.saml20-idp' => true,\n\
                 'module.enable' => ['exampleauth' => true, 'core' => true, 'saml' => true],\n\
                 'store.type' => 'phpsession',\n\
                 'session.phpsession.savepath' => {sessions},\n\
                 'session.cookie.secure' => false,\n\
                 'metadata.sources' => [['type' => 'flatfile']],\n\
                 'trusted.url.regex' => true,\n\
                 'trusted.url.domains' => ['.*'],\n\
                 ];\n",
                base = lit(&format!("{base}/")),
                cert = lit(&p("cert")),
                md = lit(&p("metadata")),
                tmp = lit(&p("tmp")),
                log = lit(&p("log")),
                sessions = lit(&d.join("sessions").display().to_string()),
            ),
        )
        .unwrap();
        let mut users = String::new();
        for person in people {
            let groups: Vec<String> = person.groups.iter().map(|g| lit(g)).collect();
            users.push_str(&format!(
                "  {} => ['uid' => [{}], 'mail' => [{}], 'groups' => [{}], 'displayName' => [{}]],\n",
                lit(&format!("{}:{}", person.user, person.user)),
                lit(person.user),
                lit(person.mail),
                groups.join(", "),
                lit(person.user),
            ));
        }
        std::fs::write(
            d.join("config/authsources.php"),
            format!(
                "<?php\n$config = [\n 'admin' => ['core:AdminPassword'],\n 'users' => ['exampleauth:UserPass',\n{users} ],\n];\n"
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("metadata/saml20-idp-hosted.php"),
            format!(
                "<?php\n$metadata['__DYNAMIC:1__'] = [\n\
                 'host' => '__DEFAULT__',\n\
                 'privatekey' => 'idp.key',\n\
                 'certificate' => 'idp.crt',\n\
                 'auth' => 'users',\n\
                 'signature.algorithm' => 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',\n\
                 'assertion.lifetime' => {lifetime},\n\
                 'NameIDFormat' => 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress',\n\
                 {authproc}\
                 ];\n",
                authproc = match authn_context {
                    Some(c) => format!(
                        "'authproc' => [10 => ['class' => 'saml:AuthnContextClassRef', 'AuthnContextClassRef' => {}]],\n",
                        lit(c)
                    ),
                    None => String::new(),
                },
            ),
        )
        .unwrap();
        let remote = sp_remote(sps);
        std::fs::write(d.join("metadata/saml20-sp-remote.php"), remote).unwrap();

        let mut cmd = Command::new("php");
        cmd.arg("-S")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-t")
            .arg(format!("{SSP}/www"))
            .env("SIMPLESAMLPHP_CONFIG_DIR", d.join("config"));
        let child = Proc::spawn(&mut cmd);
        let mut idp = SamlIdp {
            base,
            metadata: String::new(),
            _dir: dir,
            child,
        };
        idp.metadata = idp.wait_for_metadata();
        idp
    }

    /// Waits (at most 30 s) for the IdP to serve its metadata, and returns it.
    fn wait_for_metadata(&mut self) -> String {
        let url = format!("{}/saml2/idp/metadata.php", self.base);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.child.try_wait() {
                panic!(
                    "the test SAML IdP (php -S) exited ({status}):\n{}",
                    self.child.stderr.all().join("\n")
                );
            }
            if let Ok(body) = blocking_get(&url)
                && body.contains("EntityDescriptor")
            {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "the test SAML IdP did not serve its metadata within 30 s:\n{}",
                self.child.stderr.all().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Replaces the SPs the IdP knows (it reads them again at each request).
    pub fn set_sps(&self, sps: &[KnownSp<'_>]) {
        std::fs::write(
            self._dir.path().join("metadata/saml20-sp-remote.php"),
            sp_remote(sps),
        )
        .unwrap();
    }

    /// Writes the IdP's metadata to `path` (for `idp_metadata`).
    pub fn write_metadata(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.metadata).unwrap();
        path.to_path_buf()
    }
}

/// One person's browser at the IdP: its cookies (the IdP's session) kept by hand.
#[derive(Default)]
pub struct IdpBrowser {
    cookies: std::sync::Mutex<std::collections::BTreeMap<String, String>>,
}

impl IdpBrowser {
    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> reqwest::Response {
        let header = self
            .cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let r = req.header("cookie", header).send().await.unwrap();
        let mut jar = self.cookies.lock().unwrap();
        for v in r.headers().get_all("set-cookie") {
            let text = v.to_str().unwrap_or("");
            let pair = text.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                jar.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        r
    }

    /// Follows the IdP's pages from `sso_url` (ward's redirect with the AuthnRequest), signs
    /// `user` in (password = user name) if asked, and returns the auto-posting form's
    /// `(action, SAMLResponse, RelayState)`.
    pub async fn login(&self, sso_url: &str, user: &str) -> (String, String, String) {
        let (at, mut page) = self.follow(sso_url).await;
        if page.contains("name=\"password\"") {
            let state = super::input_value(&page, "AuthState");
            let form = [
                ("username", user),
                ("password", user),
                ("AuthState", state.as_str()),
            ];
            let r = self.send(Self::client().post(&at).form(&form)).await;
            page = if r.status().is_redirection() {
                let loc = r.headers()["location"].to_str().unwrap().to_string();
                let next = r.url().join(&loc).unwrap().to_string();
                self.follow(&next).await.1
            } else {
                r.text().await.unwrap()
            };
        }
        assert!(
            page.contains("SAMLResponse"),
            "the IdP did not answer with a SAMLResponse form:\n{page}"
        );
        let action = page
            .split("action=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap()
            .replace("&amp;", "&");
        (
            action,
            super::input_value(&page, "SAMLResponse"),
            super::input_value(&page, "RelayState"),
        )
    }

    /// The page the IdP ends on for `url`, after its redirects.
    pub async fn page(&self, url: &str) -> String {
        self.follow(url).await.1
    }

    /// Follows redirects from `url` (at most 10) while they stay on `base`; the first address
    /// off it.
    pub async fn follow_off(&self, base: &str, url: &str) -> String {
        let client = Self::client();
        let mut url = url.to_string();
        for _ in 0..10 {
            let r = self.send(client.get(&url)).await;
            let loc = match r.headers().get("location") {
                Some(l) => l.to_str().unwrap().to_string(),
                None => panic!("{url} did not redirect:\n{}", r.text().await.unwrap()),
            };
            url = r.url().join(&loc).unwrap().to_string();
            if !url.starts_with(base) {
                return url;
            }
        }
        panic!("too many redirects from {url}");
    }

    /// Whether the IdP, sent `sso_url`, asks for a password (no session there).
    pub async fn shows_login_form(&self, sso_url: &str) -> bool {
        self.follow(sso_url).await.1.contains("name=\"password\"")
    }

    /// GETs `url` and follows redirects (at most 10); the last address and its page.
    async fn follow(&self, url: &str) -> (String, String) {
        let client = Self::client();
        let mut url = url.to_string();
        for _ in 0..10 {
            let r = self.send(client.get(&url)).await;
            if r.status().is_redirection() {
                let loc = r.headers()["location"].to_str().unwrap().to_string();
                url = r.url().join(&loc).unwrap().to_string();
                continue;
            }
            return (url, r.text().await.unwrap());
        }
        panic!("too many redirects from {url}");
    }

    /// Follows a redirect to the IdP's single logout; returns where the IdP sends the person
    /// back to (the first address off the IdP).
    pub async fn logout(&self, idp_base: &str, slo_url: &str) -> String {
        self.follow_off(idp_base, slo_url).await
    }
}

/// A GET with a plain blocking socket (before any runtime is up).
fn blocking_get(url: &str) -> Result<String, std::io::Error> {
    use std::io::{Read, Write};
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut s = std::net::TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET /{path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// The XML of a base64 `SAMLResponse`.
pub fn decode(saml_response: &str) -> String {
    let bytes = data_encoding::BASE64
        .decode(saml_response.as_bytes())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// The base64 of a response's XML.
pub fn encode(xml: &str) -> String {
    data_encoding::BASE64.encode(xml.as_bytes())
}
