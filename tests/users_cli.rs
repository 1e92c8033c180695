//! `ward user …` (and the access review of its accounts) as the officer runs it: a real
//! binary, a policy and users.toml in a folder.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

const POLICY: &str = r#"practice = "Test Clinic"

[server]
public_url = "https://ehr.test.example"

[storage]
users = "config/users.toml"
state = "state"

[networks]
office = ["203.0.113.0/24"]
acme_vpn = ["198.51.100.7/32"]

[roles]
clinician = {}
biller = {}
vendor_biller = { export = "block" }
"#;

const USERS: &str = r#"# Test Clinic: everyone who may use ward.
# Ask the office manager before adding anyone.

[users.dr_lee]
display_name = "Dr. Alex Lee"
roles = ["clinician"]   # front desk too?
status = "active"       # active | deactivated | terminated

# Billing vendor, contract ends in 2099.
[users.jsmith]
display_name = "Jo Smith (Acme Billing)"
roles = ["vendor_biller"]
org = "Acme Billing"
expires = 2099-03-31    # last day
sponsor = "dr_lee"
allow_from = ["acme_vpn"]

# Keep this list short!
"#;

const LINK: &str = "https://ehr.test.example/.ward/enroll?token=";

/// 2023-11-14T22:13:20Z.
const LAST_LOGIN: i64 = 1_700_000_000;
/// 2100-01-01T00:00:00Z.
const FAR_FUTURE: i64 = 4_102_444_800;

struct Clinic {
    site: Site,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn ok(self) -> Out {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    fn fails(self) -> Out {
        assert_eq!(
            self.code, 1,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(self.stderr.starts_with("ward user: "), "{}", self.stderr);
        self
    }
    /// The token of the one enrollment link printed.
    fn token(&self) -> String {
        let lines: Vec<&str> = self.stdout.lines().filter(|l| l.contains(LINK)).collect();
        assert_eq!(lines.len(), 1, "{}", self.stdout);
        let token = lines[0].trim().strip_prefix(LINK).unwrap().to_string();
        assert_eq!(token.len(), 43, "{token}");
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{token}"
        );
        token
    }
}

impl Clinic {
    fn new() -> Clinic {
        let site = Site::new();
        std::fs::write(site.path("ward.toml"), POLICY).unwrap();
        std::fs::create_dir_all(site.path("config")).unwrap();
        std::fs::write(site.path("config/users.toml"), USERS).unwrap();
        Clinic { site }
    }

    /// `ward user --config ward.toml ARGS` in the clinic's folder, in UTC.
    fn ward(&self, args: &[&str]) -> Out {
        let out = Command::new(WARD)
            .args(["user", "--config", "ward.toml"])
            .args(args)
            .current_dir(self.site.dir.path())
            .env("TZ", "UTC")
            .output()
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    fn users(&self) -> String {
        std::fs::read_to_string(self.site.path("config/users.toml")).unwrap()
    }

    fn secrets_path(&self) -> std::path::PathBuf {
        self.site.path("state/secrets.json")
    }

    fn secrets_text(&self) -> String {
        std::fs::read_to_string(self.secrets_path()).unwrap()
    }

    fn secrets(&self, name: &str) -> serde_json::Value {
        let all: serde_json::Value = serde_json::from_str(&self.secrets_text()).unwrap();
        all["users"][name].clone()
    }

    fn secrets_mode(&self) -> u32 {
        std::fs::metadata(self.secrets_path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    /// Gives dr_lee a password, MFA, two recovery codes, a sign-in and a lockout.
    fn seed(&self) {
        let state = self.site.path("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let json = serde_json::json!({"users": {"dr_lee": {
            "password": "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
            "totp": "JBSWY3DPEHPK3PXP",
            "recovery": ["aa", "bb"],
            "epoch": 3,
            "last_login": LAST_LOGIN,
            "last_login_ip": "203.0.113.9",
            "failed_logins": 5,
            "locked_until": FAR_FUTURE,
        }}});
        std::fs::write(self.secrets_path(), json.to_string()).unwrap();
        std::fs::set_permissions(self.secrets_path(), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
}

/// Today's date in UTC, as the command computes it.
fn today() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
}

#[test]
fn add_prints_a_link_and_keeps_the_officers_file() {
    let c = Clinic::new();
    let out = c
        .ward(&[
            "add",
            "kpatel",
            "--roles",
            "biller,clinician",
            "--display-name",
            "K. Patel",
            "--org",
            "Acme, Inc.",
            "--expires",
            "2099-12-31",
            "--sponsor",
            "dr_lee",
            "--allow-from",
            "acme_vpn,192.0.2.0/24",
        ])
        .ok();
    let token = out.token();
    assert!(
        out.stdout.contains("Added kpatel (K. Patel)"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("24 hours"), "{}", out.stdout);
    // The officer's text is untouched; the new account follows it.
    let users = c.users();
    assert_eq!(
        users,
        format!(
            "{USERS}\n[users.kpatel]\ndisplay_name = \"K. Patel\"\nroles = [\"biller\", \"clinician\"]\norg = \"Acme, Inc.\"\nexpires = 2099-12-31\nsponsor = \"dr_lee\"\nallow_from = [\"acme_vpn\", \"192.0.2.0/24\"]\n"
        )
    );
    // Only the token's hash is stored, owner-only.
    assert!(!c.secrets_text().contains(&token));
    assert_eq!(c.secrets_mode(), 0o600);
    assert_eq!(c.secrets("kpatel")["enroll"]["purpose"], "enroll");

    // A second add of the same name is refused and changes nothing.
    let out = c
        .ward(&["add", "kpatel", "--roles", "biller", "--display-name", "K"])
        .fails();
    assert!(
        out.stderr.contains("already an account named 'kpatel'"),
        "{}",
        out.stderr
    );
    assert_eq!(c.users(), users);
}

#[test]
fn config_may_follow_the_action() {
    let c = Clinic::new();
    let out = Command::new(WARD)
        .args([
            "user",
            "add",
            "nurse.ann",
            "--roles",
            "clinician",
            "--display-name",
            "Ann",
            "--config",
            "ward.toml",
        ])
        .current_dir(c.site.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(c.users().contains("[users.\"nurse.ann\"]"));
    // Without --config, config/ward.toml is read, and its absence is reported.
    let out = Command::new(WARD)
        .args(["user", "list"])
        .current_dir(c.site.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config/ward.toml"));
}

#[test]
fn add_checks_roles_networks_and_dates_against_the_policy() {
    let c = Clinic::new();
    let add = |extra: &[&str]| {
        let mut args = vec!["add", "kpatel", "--display-name", "K. Patel"];
        args.extend_from_slice(extra);
        c.ward(&args).fails().stderr
    };
    let err = add(&["--roles", "clinican"]);
    assert!(
        err.contains("unknown role 'clinican'; did you mean 'clinician'?"),
        "{err}"
    );
    let err = add(&["--roles", "clinician,dentist"]);
    assert!(
        err.contains(
            "unknown role 'dentist'; the roles in ward.toml are: biller, clinician, vendor_biller"
        ),
        "{err}"
    );
    let err = add(&["--roles", "clinician", "--allow-from", "offfice"]);
    assert!(err.contains("did you mean 'office'?"), "{err}");
    let err = add(&["--roles", "clinician", "--allow-from", "10.0.0.5/8"]);
    assert!(err.contains("did you mean 10.0.0.0/8?"), "{err}");
    // A malformed date is a usage error, reported by the argument parser (exit 2).
    let out = c.ward(&[
        "add",
        "kpatel",
        "--roles",
        "biller",
        "--display-name",
        "K",
        "--expires",
        "2027-02-30",
    ]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("'2027-02-30' is not a real date"),
        "{}",
        out.stderr
    );
    let err = add(&["--roles", "clinician", "--expires", "2001-01-01"]);
    assert!(err.contains("already passed"), "{err}");
    let err = c
        .ward(&["add", "kpatel", "--roles", "biller", "--display-name", " "])
        .fails()
        .stderr;
    assert!(err.contains("--display-name is empty"), "{err}");
    let err = add(&["--roles", "clinician", "--org", "Acme Billing"]);
    assert!(err.contains("needs an end date"), "{err}");
    assert!(err.contains("--expires YYYY-MM-DD"), "{err}");
    // Missing --roles is a usage error.
    let out = c.ward(&["add", "kpatel", "--display-name", "K"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--roles"), "{}", out.stderr);
    // The practice's own staff need no end date.
    c.ward(&[
        "add",
        "kpatel",
        "--display-name",
        "K. Patel",
        "--roles",
        "biller",
        "--org",
        "test clinic",
    ])
    .ok();
    assert!(c.users().starts_with(USERS));
}

#[test]
fn list_as_a_table_and_as_csv() {
    let c = Clinic::new();
    c.seed();
    c.ward(&[
        "add",
        "a_vendor",
        "--roles",
        "biller,vendor_biller",
        "--display-name",
        "V",
        "--org",
        "Say \"Hi\", Inc.",
        "--expires",
        "2099-01-02",
    ])
    .ok();
    let out = c.ward(&["list"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    let cols = [
        "NAME",
        "STATUS",
        "ROLES",
        "ORG",
        "EXPIRES",
        "SECOND FACTOR",
        "LAST SIGN-IN",
    ];
    let mut at = 0;
    for col in cols {
        let i = lines[0][at..].find(col).unwrap() + at;
        at = i + col.len();
    }
    // Sorted by name, every column starting where its header does.
    assert!(lines[1].starts_with("a_vendor "));
    assert!(lines[2].starts_with("dr_lee "));
    assert!(lines[3].starts_with("jsmith "));
    for col in &cols[1..] {
        let i = lines[0].find(col).unwrap();
        for l in &lines[1..] {
            assert_eq!(&l[i - 2..i], "  ", "{col} in {l:?}");
            assert_ne!(&l[i..i + 1], " ", "{col} in {l:?}");
        }
    }
    assert!(
        lines[2].contains("active")
            && lines[2].contains(" app ")
            && lines[2].contains("2023-11-14 22:13"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].contains("Acme Billing")
            && lines[3].contains("2099-03-31")
            && lines[3]
                .split_whitespace()
                .rev()
                .take(2)
                .eq(["never", "no"]),
        "{}",
        lines[3]
    );
    assert!(!out.stdout.contains("JBSWY3DP"));

    let out = c.ward(&["list", "--csv"]).ok();
    assert_eq!(
        out.stdout,
        "name,status,roles,org,expires,mfa,passkeys,last_sign_in\r\n\
         a_vendor,active,\"biller,vendor_biller\",\"Say \"\"Hi\"\", Inc.\",2099-01-02,no,0,never\r\n\
         dr_lee,active,clinician,,,yes,0,2023-11-14T22:13:20+00:00\r\n\
         jsmith,active,vendor_biller,Acme Billing,2099-03-31,no,0,never\r\n"
    );
}

/// A value in users.toml that a spreadsheet would run as a formula is defused in every CSV
/// made from the accounts: `ward user list --csv` and `ward report access --format csv`.
#[test]
fn csv_exports_defuse_formulas() {
    let c = Clinic::new();
    let cases = [
        (
            "f_eq",
            "=HYPERLINK(\"http://x.example\")",
            "\"'=HYPERLINK(\"\"http://x.example\"\")\"",
        ),
        ("f_plus", "+1+1", "'+1+1"),
        ("f_minus", "-1+1", "'-1+1"),
        ("f_at", "@SUM(A1)", "'@SUM(A1)"),
        ("f_tab", "\tx", "'\tx"),
        ("f_cr", "\rx", "\"'\rx\""),
    ];
    let mut users = USERS.to_string();
    for (name, value, _) in cases {
        // Rust's escapes for these values are TOML's too.
        users.push_str(&format!(
            "\n[users.{name}]\ndisplay_name = {value:?}\nroles = [\"biller\"]\norg = {value:?}\nexpires = 2099-01-02\n"
        ));
    }
    std::fs::write(c.site.path("config/users.toml"), users).unwrap();

    let out = c.ward(&["list", "--csv"]).ok();
    for (name, value, cell) in cases {
        let row = format!("\r\n{name},active,biller,{cell},2099-01-02,no,0,never\r\n");
        assert!(out.stdout.contains(&row), "{value:?}:\n{}", out.stdout);
    }

    let out = Command::new(WARD)
        .args([
            "report",
            "access",
            "--config",
            "ward.toml",
            "--format",
            "csv",
        ])
        .current_dir(c.site.dir.path())
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(out.status.success(), "{stderr}");
    for (name, value, cell) in cases {
        let row = format!("\r\n{name},{cell},active,biller,{cell},,no,,,,2099-01-02,");
        assert!(stdout.contains(&row), "{value:?}:\n{stdout}");
    }
}

#[test]
fn an_empty_or_missing_accounts_file_lists_nothing() {
    let c = Clinic::new();
    std::fs::remove_file(c.site.path("config/users.toml")).unwrap();
    let out = c.ward(&["list"]).ok();
    assert!(out.stdout.contains("no accounts yet"), "{}", out.stdout);
    let out = c.ward(&["list", "--csv"]).ok();
    assert_eq!(
        out.stdout,
        "name,status,roles,org,expires,mfa,passkeys,last_sign_in\r\n"
    );
}

#[test]
fn show_tells_everything_but_secrets() {
    let c = Clinic::new();
    c.seed();
    let out = c.ward(&["show", "dr_lee"]).ok();
    for want in [
        "display name     Dr. Alex Lee",
        "status           active",
        "roles            clinician",
        "password set     yes",
        "MFA enrolled     yes",
        "recovery codes   2 left",
        "failed sign-ins  5",
        "lockout          locked until 2100-01-01T00:00:00+00:00",
        "pending link     none",
        "last sign-in     2023-11-14T22:13:20+00:00 from 203.0.113.9",
    ] {
        assert!(out.stdout.contains(want), "{want:?} not in\n{}", out.stdout);
    }
    for secret in ["JBSWY3DP", "argon2"] {
        assert!(!out.stdout.contains(secret), "{secret} in\n{}", out.stdout);
    }
    let out = c.ward(&["show", "jsmith"]).ok();
    for want in [
        "organization     Acme Billing",
        "end date         2099-03-31",
        "sponsor          dr_lee",
        "allowed from     acme_vpn",
        "MFA enrolled     no",
        "last sign-in     never",
    ] {
        assert!(out.stdout.contains(want), "{want:?} not in\n{}", out.stdout);
    }
    let err = c.ward(&["show", "jsmth"]).fails().stderr;
    assert!(
        err.contains("there is no account named 'jsmth'; did you mean 'jsmith'?"),
        "{err}"
    );
}

#[test]
fn set_roles_replaces_only_the_roles() {
    let c = Clinic::new();
    let out = c
        .ward(&["set-roles", "dr_lee", "--roles", "clinician,biller"])
        .ok();
    assert!(out.stdout.contains("clinician, biller"), "{}", out.stdout);
    assert_eq!(
        c.users(),
        USERS.replace(
            "roles = [\"clinician\"]   # front desk too?",
            "roles = [\"clinician\", \"biller\"]   # front desk too?"
        )
    );
    let err = c
        .ward(&["set-roles", "dr_lee", "--roles", "biler"])
        .fails()
        .stderr;
    assert!(err.contains("did you mean 'biller'?"), "{err}");
    let err = c
        .ward(&["set-roles", "nobody", "--roles", "biller"])
        .fails()
        .stderr;
    assert!(err.contains("no account named 'nobody'"), "{err}");
}

#[test]
fn deactivate_and_reactivate() {
    let c = Clinic::new();
    c.seed();
    let out = c.ward(&["deactivate", "dr_lee"]).ok();
    assert!(out.stdout.contains("sessions have ended"), "{}", out.stdout);
    assert_eq!(
        c.users(),
        USERS.replace(
            "status = \"active\"       # active",
            "status = \"deactivated\"       # active"
        )
    );
    assert_eq!(c.secrets("dr_lee")["epoch"], 4);
    assert_eq!(c.secrets("dr_lee")["totp"], "JBSWY3DPEHPK3PXP");
    assert_eq!(c.secrets_mode(), 0o600);
    let out = c.ward(&["list"]).ok();
    assert!(out.stdout.contains("deactivated"), "{}", out.stdout);

    let out = c.ward(&["reactivate", "dr_lee"]).ok();
    assert!(out.stdout.contains("active again"), "{}", out.stdout);
    assert_eq!(c.users(), USERS);
    let out = c.ward(&["reactivate", "dr_lee"]).ok();
    assert!(out.stdout.contains("already active"), "{}", out.stdout);
}

#[test]
fn terminate_needs_yes_and_is_permanent() {
    let c = Clinic::new();
    c.seed();
    let out = c.ward(&["terminate", "dr_lee"]).fails();
    assert!(out.stderr.contains("permanent"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("ward user --config ward.toml terminate dr_lee --yes"),
        "{}",
        out.stderr
    );
    assert_eq!(c.users(), USERS);
    assert_eq!(c.secrets("dr_lee")["epoch"], 3);

    let out = c.ward(&["terminate", "dr_lee", "--yes"]).ok();
    assert!(out.stdout.contains("terminated"), "{}", out.stdout);
    assert!(c.users().contains("status = \"terminated\"       # active"));
    let s = c.secrets("dr_lee");
    assert!(s["totp"].is_null() && s["password"].is_null(), "{s}");
    assert_eq!(s["epoch"], 4);

    let err = c.ward(&["reactivate", "dr_lee"]).fails().stderr;
    assert!(err.contains("cannot be reactivated"), "{err}");
    let err = c.ward(&["reset-password", "dr_lee"]).fails().stderr;
    assert!(err.contains("terminated"), "{err}");
    let err = c
        .ward(&[
            "add",
            "dr_lee",
            "--roles",
            "clinician",
            "--display-name",
            "New Lee",
        ])
        .fails()
        .stderr;
    assert!(err.contains("never reused"), "{err}");
    let err = c.ward(&["terminate", "nobody", "--yes"]).fails().stderr;
    assert!(err.contains("no account named 'nobody'"), "{err}");
}

/// No ward runs here: this proves the store's side (new links, a new epoch, credentials
/// voided). That a running ward ends the live sessions and refuses the old link is proved end
/// to end by `attack_sessions.rs`: `resets_end_live_sessions_and_void_old_links`.
#[test]
fn resets_print_new_links_and_bump_the_epoch() {
    let c = Clinic::new();
    c.seed();
    let out = c.ward(&["reset-password", "dr_lee"]).ok();
    let first = out.token();
    assert!(out.stdout.contains("new password"), "{}", out.stdout);
    let s = c.secrets("dr_lee");
    assert_eq!(s["epoch"], 4);
    assert!(s["password"].is_null());
    assert_eq!(s["totp"], "JBSWY3DPEHPK3PXP");
    assert_eq!(s["enroll"]["purpose"], "reset_password");
    assert_eq!(s["failed_logins"], 0);
    assert_eq!(c.secrets_mode(), 0o600);

    let out = c.ward(&["reset-mfa", "dr_lee"]).ok();
    let second = out.token();
    assert_ne!(first, second);
    let s = c.secrets("dr_lee");
    assert_eq!(s["epoch"], 5);
    assert!(s["totp"].is_null());
    assert_eq!(s["recovery"], serde_json::json!([]));
    // Both credentials are gone now, so the link is a full enrollment.
    assert_eq!(s["enroll"]["purpose"], "enroll");
    assert!(out.stdout.contains("sets up both"), "{}", out.stdout);
    let text = c.secrets_text();
    assert!(!text.contains(&first) && !text.contains(&second));
    assert_eq!(c.secrets_mode(), 0o600);
    assert_eq!(c.users(), USERS);

    let out = c.ward(&["show", "dr_lee"]).ok();
    assert!(
        out.stdout.contains("enrollment link, works until"),
        "{}",
        out.stdout
    );
}

#[test]
fn expire_now_on_a_date_and_never() {
    let c = Clinic::new();
    let before = today();
    let out = c.ward(&["expire", "jsmith"]).ok();
    let after = today();
    assert!(out.stdout.contains("has ended now"), "{}", out.stdout);
    let users = c.users();
    let ok = [before, after].iter().any(|d| {
        let y = d.yesterday().unwrap();
        users == USERS.replace("expires = 2099-03-31    #", &format!("expires = {y}    #"))
    });
    assert!(ok, "{users}");
    let out = c.ward(&["list"]).ok();
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("jsmith"))
        .unwrap();
    assert!(line.contains("expired"), "{line}");

    let out = c.ward(&["expire", "jsmith", "--on", "2100-01-31"]).ok();
    assert!(
        out.stdout.contains("until the end of 2100-01-31"),
        "{}",
        out.stdout
    );
    assert_eq!(
        c.users(),
        USERS.replace("expires = 2099-03-31    #", "expires = 2100-01-31    #")
    );
    // A vendor keeps an end date.
    let err = c.ward(&["expire", "jsmith", "--never"]).fails().stderr;
    assert!(err.contains("must keep an end date"), "{err}");

    c.ward(&["expire", "dr_lee", "--on", "2100-01-31"]).ok();
    assert!(c.users().contains(
        "status = \"active\"       # active | deactivated | terminated\nexpires = 2100-01-31\n"
    ));
    let out = c.ward(&["expire", "dr_lee", "--never"]).ok();
    assert!(
        out.stdout.contains("no longer has an end date"),
        "{}",
        out.stdout
    );
    assert_eq!(
        c.users(),
        USERS.replace("expires = 2099-03-31    #", "expires = 2100-01-31    #")
    );
    // --on and --never together make no sense.
    let out = c.ward(&["expire", "dr_lee", "--on", "2100-01-31", "--never"]);
    assert_ne!(out.code, 0);
}

#[test]
fn unlock_clears_the_lockout() {
    let c = Clinic::new();
    c.seed();
    let out = c.ward(&["unlock", "dr_lee"]).ok();
    assert!(out.stdout.contains("unlocked"), "{}", out.stdout);
    let s = c.secrets("dr_lee");
    assert_eq!(s["failed_logins"], 0);
    assert!(s["locked_until"].is_null());
    assert_eq!(s["epoch"], 3, "sessions are not ended by an unlock");
    let out = c.ward(&["unlock", "dr_lee"]).ok();
    assert!(out.stdout.contains("was not locked"), "{}", out.stdout);
    assert_eq!(c.users(), USERS);
}

#[test]
fn a_broken_policy_or_accounts_file_changes_nothing() {
    let c = Clinic::new();
    std::fs::write(
        c.site.path("ward.toml"),
        POLICY.replace("[roles]", "[rolls]"),
    )
    .unwrap();
    let out = c.ward(&["list"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("ward.toml:"), "{}", out.stderr);

    let c = Clinic::new();
    let broken = USERS.replace("status = \"active\"", "status = \"on leave\"");
    std::fs::write(c.site.path("config/users.toml"), &broken).unwrap();
    let err = c.ward(&["deactivate", "jsmith"]).fails().stderr;
    assert!(err.contains("config/users.toml:7:"), "{err}");
    assert_eq!(c.users(), broken);
    let err = c.ward(&["list"]).fails().stderr;
    assert!(err.contains("status must be one of"), "{err}");
}
