//! `ward schema`: the JSON Schemas an officer's editor reads, checked with Taplo (the TOML
//! toolkit behind VS Code's Even Better TOML, from npm, pinned in tests/schema/package.json).
//! The example files pass; what `ward check` refuses for an unknown key or a wrong type, the
//! schema refuses too; the committed schema files are what `ward schema` writes today.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

const WARD: &str = env!("CARGO_BIN_EXE_ward");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Taplo's command, installed by `npm ci` in tests/schema when missing.
fn taplo() -> PathBuf {
    static DONE: Mutex<bool> = Mutex::new(false);
    let dir = root().join("tests/schema");
    let bin = dir.join("node_modules/.bin/taplo");
    let mut done = DONE.lock().unwrap_or_else(|e| e.into_inner());
    if !*done && !bin.exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .status()
            .unwrap_or_else(|e| {
                panic!(
                    "the schema test needs npm to install Taplo (@taplo/cli) into tests/schema: {e}; \
                     install Node.js and npm (Debian: apt-get install nodejs npm) — tests/run does"
                )
            });
        assert!(
            status.success(),
            "`npm ci --prefix tests/schema` failed ({status})"
        );
    }
    *done = true;
    bin
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Taplo's verdict on `file`, which names its schema on its first line (as editors read it).
fn taplo_check(file: &Path) -> Output {
    run(Command::new(taplo())
        .arg("check")
        .arg(file)
        .current_dir(file.parent().unwrap()))
}

/// A folder holding freshly written schemas.
fn schema_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = run(Command::new(WARD).args(["schema", "--dir"]).arg(dir.path()));
    assert!(out.status.success(), "{}", text(&out));
    dir
}

#[test]
fn the_committed_schemas_are_what_ward_schema_writes() {
    let dir = schema_dir();
    for name in ["ward.schema.json", "users.schema.json"] {
        let fresh = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let committed = std::fs::read_to_string(root().join("config").join(name)).unwrap();
        assert!(
            fresh == committed,
            "config/{name} is out of date: run `cargo run -- schema` and commit it"
        );
    }
}

#[test]
fn the_example_policies_name_their_schema_and_pass_it() {
    for name in ["ward.toml", "demo.toml"] {
        let file = root().join("config").join(name);
        let first = std::fs::read_to_string(&file).unwrap();
        assert!(
            first.starts_with("#:schema ./ward.schema.json\n"),
            "config/{name} does not name its schema on its first line"
        );
        let out = taplo_check(&file);
        assert!(out.status.success(), "config/{name}: {}", text(&out));
    }
}

/// A valid small policy, with `extra` added, in a folder with the schemas; returns the
/// folder and the file.
fn policy_with(extra: &str, section: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = schema_dir();
    let file = dir.path().join("ward.toml");
    let body = format!(
        "#:schema ./ward.schema.json\npractice = \"Riverside\"\n\
         [storage]\nusers = \"users.toml\"\nstate = \"state\"\n\
         [audit]\ndir = \"audit\"\n[roles]\nclinician = {{}}\n\
         [server]\ncert = \"c.pem\"\nkey = \"k.pem\"\n{}\
         [[apps]]\nname = \"ehr\"\nupstream = \"http://127.0.0.1:9\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/**\"\nallow = \"public\"\n{}",
        if section == "server" { extra } else { "" },
        if section == "route" { extra } else { "" },
    );
    std::fs::write(&file, body).unwrap();
    std::fs::write(dir.path().join("users.toml"), "").unwrap();
    (dir, file)
}

fn ward_check(file: &Path) -> Output {
    run(Command::new(WARD)
        .args(["check", "--config"])
        .arg(file)
        .current_dir(file.parent().unwrap()))
}

#[test]
fn what_ward_check_refuses_the_schema_refuses() {
    // The control: the same file without a mistake passes the schema.
    let (_dir, good) = policy_with("", "server");
    let out = taplo_check(&good);
    assert!(out.status.success(), "{}", text(&out));

    let mistakes = [
        ("server", "listn = \"0.0.0.0:8443\"\n", "listn"),
        ("server", "max_connections = \"many\"\n", "many"),
        ("server", "hsts = \"yes\"\n", "yes"),
        ("route", "export = [\"block\"]\n", "export"),
        ("route", "alow_roles = [\"clinician\"]\n", "alow_roles"),
    ];
    for (section, line, word) in mistakes {
        let (_dir, file) = policy_with(line, section);
        let checked = ward_check(&file);
        assert!(
            !checked.status.success(),
            "ward check passed {line:?}: {}",
            text(&checked)
        );
        let linted = taplo_check(&file);
        assert!(
            !linted.status.success(),
            "the schema passed {line:?}: {}",
            text(&linted)
        );
        assert!(text(&linted).contains(word), "{}", text(&linted));
    }
}

#[test]
fn a_new_users_file_names_its_schema_and_the_schema_catches_mistakes() {
    let (dir, policy) = policy_with("", "server");
    let add = run(Command::new(WARD)
        .args([
            "user",
            "add",
            "dr_lee",
            "--display-name",
            "Dr. Alex Lee",
            "--roles",
            "clinician",
        ])
        .args(["--config"])
        .arg(&policy)
        .current_dir(dir.path()));
    assert!(add.status.success(), "{}", text(&add));
    let users = dir.path().join("users.toml");
    let written = std::fs::read_to_string(&users).unwrap();
    assert!(
        written.starts_with("#:schema ./users.schema.json\n"),
        "{written}"
    );
    let out = taplo_check(&users);
    assert!(out.status.success(), "{written}\n{}", text(&out));

    for (line, word) in [
        ("sponser = \"m.lopez\"", "sponser"),
        ("status = \"paused\"", "paused"),
        ("roles = \"clinician\"", "clinician"),
    ] {
        std::fs::write(&users, format!("{written}{line}\n")).unwrap();
        let checked = ward_check(&policy);
        assert!(
            !checked.status.success(),
            "ward check passed {line:?}: {}",
            text(&checked)
        );
        let linted = taplo_check(&users);
        assert!(
            !linted.status.success(),
            "the schema passed {line:?}: {}",
            text(&linted)
        );
        assert!(text(&linted).contains(word), "{}", text(&linted));
    }
}
