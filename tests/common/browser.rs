//! Real headless Chromium (Debian `chromium` + `chromedriver`) driven through fantoccini,
//! shared by the browser tests. Needs both programs (`tests/run` installs them when missing);
//! a browser test fails rather than skips without them.

use super::{PW, Proc, WARD_HOST, Ward};
use fantoccini::{Client, ClientBuilder, Locator};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";

/// `name` on PATH, else Debian's place for it.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| Some(Path::new("/usr/bin").join(name)).filter(|p| p.is_file()))
}

/// chromedriver on a free loopback port, with the browsers it starts; all killed on drop.
pub struct ChromeDriver {
    pub proc: Proc,
    pub port: u16,
}

impl ChromeDriver {
    pub fn start() -> ChromeDriver {
        let missing: Vec<&str> = [
            ("chromedriver", find_program("chromedriver").is_none()),
            ("chromium", !Path::new(CHROMIUM).is_file()),
        ]
        .into_iter()
        .filter_map(|(name, missing)| missing.then_some(name))
        .collect();
        // Fail, never skip: a browser test that silently does nothing proves nothing.
        assert!(
            missing.is_empty(),
            "the browser test needs {} (missing: {}). Run tests/run, which installs them, \
             or: apt-get install chromium chromium-driver",
            "chromium and chromedriver",
            missing.join(", ")
        );
        let port = free_port();
        let mut cmd = Command::new(find_program("chromedriver").unwrap());
        cmd.arg(format!("--port={port}"));
        // Its own process group, so that drop ends chromium too even if the test panicked
        // before closing the session.
        cmd.process_group(0);
        let mut proc = Proc::spawn(&mut cmd);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !driver_ready(port) {
            if let Ok(Some(status)) = proc.child.try_wait() {
                panic!(
                    "chromedriver exited ({status}):\n{}\n{}",
                    proc.stdout.all().join("\n"),
                    proc.stderr.all().join("\n")
                );
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on port {port} within 20 s:\n{}",
                proc.stdout.all().join("\n")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        ChromeDriver { proc, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        // The group is chromedriver's own (process_group(0) above): it and its browsers.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.proc.pid())])
            .status();
        self.proc.kill();
    }
}

/// A loopback port nothing listens on (until a test starts something there).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// True once `GET /status` answers 200 with `"ready": true`.
fn driver_ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    // chromedriver ignores HTTP/1.0 and keeps the socket open after answering, so read
    // only until the answer is complete enough to judge.
    let request =
        format!("GET /status HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&answer).replace(' ', "");
        if text.contains("\"ready\":") {
            return text.starts_with("HTTP/1.1200") && text.contains("\"ready\":true");
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A headless chromium session that trusts ward's self-signed test certificate.
pub async fn open_browser(driver: &ChromeDriver, profile: &Path) -> Client {
    open_browser_sized(driver, profile, (1280, 900)).await
}

/// `open_browser` with a window of `size` (width, height).
pub async fn open_browser_sized(driver: &ChromeDriver, profile: &Path, size: (u32, u32)) -> Client {
    // fantoccini's HTTPS connector needs the process-wide crypto provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let caps = serde_json::json!({
        "acceptInsecureCerts": true,
        "timeouts": { "pageLoad": 30_000, "script": 30_000, "implicit": 0 },
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
                format!("--window-size={},{}", size.0, size.1),
            ],
        },
    });
    let caps = caps.as_object().unwrap().clone();
    ClientBuilder::rustls()
        .expect("rustls connector")
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "chromium did not start through chromedriver: {e}\n{}",
                driver.proc.stderr.all().join("\n")
            )
        })
}

/// The page's visible text.
pub async fn body_text(client: &Client) -> String {
    client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits (bounded) until the current URL's path and query start with `prefix`; returns them.
pub async fn wait_for_path(client: &Client, prefix: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let url = client.current_url().await.unwrap();
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        if path.starts_with(prefix) {
            return path;
        }
        assert!(
            Instant::now() < deadline,
            "still at {url}, not {prefix}, after {timeout:?}; the page says:\n{}",
            body_text(client).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until the browser has left ward's own pages (`/.ward/…`): after the code
/// step, the sign-in is complete only then (`wait_for_path(…, "/")` would match the code page).
pub async fn wait_until_past_ward_pages(client: &Client, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let url = client.current_url().await.unwrap();
        if !url.path().starts_with("/.ward/") {
            return url.path().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "still at {url} after {timeout:?}; the page says:\n{}",
            body_text(client).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Types `text` into the field `css` (after clearing it).
pub async fn fill(client: &Client, css: &str, text: &str) {
    let field = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

/// Clicks the first form's submit button.
pub async fn submit(client: &Client) {
    click(client, "form button[type=submit]").await;
}

/// Clicks the element `css`.
pub async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Saves a screenshot of the window as `target/screenshots/{name}` (`name` may hold folders).
pub async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/screenshots")
        .join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(&path, png).unwrap();
    println!("screenshot: {}", path.display());
    path
}

/// Signs `user` in on ward's own host's sign-in page (password [`PW`], then `code`) and
/// waits (bounded) until the browser has left the code page.
pub async fn sign_in_on_ward_host(client: &Client, ward: &Ward, user: &str, code: &str) {
    client
        .goto(&ward.url_for(WARD_HOST, "/.ward/login"))
        .await
        .unwrap();
    fill(client, "#username", user).await;
    fill(client, "#password", PW).await;
    submit(client).await;
    wait_for_path(client, "/.ward/mfa", Duration::from_secs(20)).await;
    fill(client, "#code", code).await;
    submit(client).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.current_url().await.unwrap().path() == "/.ward/mfa" {
        assert!(Instant::now() < deadline, "{}", body_text(client).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Fills and sends the officer's console form for a new vendor biller account (`acme_pat`,
/// sponsored by `boss`, ending 2031-06-30) with this display name and organisation.
pub async fn add_vendor_in_console(client: &Client, display_name: &str, org: &str) {
    fill(client, "#name", "acme_pat").await;
    fill(client, "#display_name", display_name).await;
    click(client, "#add-role-vendor_biller").await;
    fill(client, "#org", org).await;
    // A date field takes typing in the browser's locale; set its value the way a picker does.
    client
        .execute(
            "document.getElementById('expires').value = arguments[0];",
            vec![serde_json::json!("2031-06-30")],
        )
        .await
        .unwrap();
    fill(client, "#sponsor", "boss").await;
    click(
        client,
        "form[action='/.ward/officer/users'] button[type=submit]",
    )
    .await;
}
