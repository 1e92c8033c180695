//! `ward check --diff OLD NEW` as the officer runs it: who gains and who loses
//! access, worked out with ward's own decisions over the people in users.toml.

use crate::common::*;
use std::process::Command;

const USERS: &str = r#"
[users.dr_lee]
display_name = "Dr Lee"
roles = ["clinician"]

[users.bo]
display_name = "Bo Biller"
roles = ["biller"]

[users.acme_pat]
display_name = "Pat (Acme)"
roles = ["vendor_biller"]
org = "Acme Billing"
sponsor = "officer"
expires = 2099-12-31
allow_from = ["acme_vpn"]
"#;

fn policy(site: &Site, routes: &str, roles: &str) -> String {
    format!(
        "practice = \"Test Clinic\"\n{}\n\
         [sessions]\nidle_timeout = \"15m\"\n\
         [networks]\noffice = [\"203.0.113.0/24\"]\nacme_vpn = [\"198.51.100.7/32\"]\n\
         [roles]\n{roles}\n\
         [[apps]]\nname = \"ehr\"\nhost = \"ehr.example\"\nupstream = \"http://127.0.0.1:9\"\n\
         [[apps]]\nname = \"billing\"\nhost = \"billing.example\"\nupstream = \"http://127.0.0.1:9\"\n\
         [[routes]]\napp = \"ehr\"\npath = \"/patients/**\"\nallow_roles = [\"clinician\"]\n\
         [[routes]]\napp = \"ehr\"\npath = \"/reports/**\"\nallow_roles = [\"clinician\", \"biller\"]\n\
         {routes}",
        server_section(site)
    )
}

const ROLES: &str = "clinician = { idle_timeout = \"30m\" }\nbiller = {}\nvendor_biller = {}\n";

/// Writes both policies and users.toml into a site and runs `ward check --diff`.
fn diff(old: &str, new: &str) -> (i32, String, String) {
    let site = Site::new();
    std::fs::create_dir_all(site.path("config")).unwrap();
    std::fs::write(site.path("config/users.toml"), USERS).unwrap();
    let old = old.replace("{server}", &server_section(&site));
    let new = new.replace("{server}", &server_section(&site));
    std::fs::write(site.path("config/old.toml"), old).unwrap();
    std::fs::write(site.path("config/new.toml"), new).unwrap();
    let out = Command::new(WARD)
        .args(["check", "--diff", "config/old.toml", "config/new.toml"])
        .current_dir(site.dir.path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn both(
    routes_old: &str,
    roles_old: &str,
    routes_new: &str,
    roles_new: &str,
) -> (i32, String, String) {
    let site = Site::new();
    diff(
        &policy(&site, routes_old, roles_old).replace(&server_section(&site), "{server}"),
        &policy(&site, routes_new, roles_new).replace(&server_section(&site), "{server}"),
    )
}

#[test]
fn the_same_access_written_differently_is_no_change() {
    let a = "[[routes]]\napp = \"billing\"\npath = \"/billing/**\"\nallow_roles = [\"biller\", \"vendor_biller\"]\n";
    // Keys in another order, roles in another order, a comment: the same access.
    let b = "# billing, for our billers and Acme's\n[[routes]]\npath = \"/billing/**\"\nallow_roles = [\"vendor_biller\", \"biller\"]\napp = \"billing\"\n";
    let (code, out, err) = both(a, ROLES, b, ROLES);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no one gains or loses access"), "{out}");
}

#[test]
fn a_diff_lists_exactly_the_gains_and_losses() {
    let old = "[[routes]]\napp = \"billing\"\npath = \"/billing/**\"\nallow_roles = [\"biller\", \"vendor_biller\"]\nmethods = [\"GET\"]\n";
    // New: clinicians may read statements from the office (and so billers only from
    // there); Acme loses billing; billers may also POST; billers may no longer export;
    // billers' idle logoff is shortened.
    let new = "[[routes]]\napp = \"billing\"\npath = \"/billing/**\"\nallow_roles = [\"biller\"]\nmethods = [\"GET\", \"POST\"]\n\
               [[routes]]\napp = \"billing\"\npath = \"/billing/statements/*\"\nallow_roles = [\"biller\", \"clinician\"]\nmethods = [\"GET\"]\nfrom = [\"office\"]\n";
    let new_roles = ROLES.replace(
        "biller = {}",
        "biller = { export = \"block\", idle_timeout = \"10m\" }",
    );
    let (code, out, err) = both(old, ROLES, new, &new_roles);
    assert_eq!(code, 1, "{out}{err}");
    let lines: Vec<&str> = out.lines().skip(1).map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "acme_pat (vendor_biller): loses GET, HEAD /billing/** on billing (from acme_vpn); \
             loses GET, HEAD /billing/statements/* on billing (from acme_vpn)",
            "bo (biller): gains POST /billing/** on billing (from any network); \
             loses GET, HEAD /billing/statements/* on billing (from acme_vpn, other networks); \
             loses export on billing /billing/**; loses export on billing /billing/statements/*; \
             loses export on ehr /reports/**; \
             idle logoff goes from 15m to 10m on billing /billing/**, billing /billing/statements/*, ehr /reports/**",
            "dr_lee (clinician): gains GET, HEAD /billing/statements/* on billing (from office)",
            "role biller: gains POST /billing/** on billing (from any network); \
             loses GET, HEAD /billing/statements/* on billing (from acme_vpn, other networks); \
             loses export on billing /billing/**; loses export on billing /billing/statements/*; \
             loses export on ehr /reports/**; \
             idle logoff goes from 15m to 10m on billing /billing/**, billing /billing/statements/*, ehr /reports/**",
            "role clinician: gains GET, HEAD /billing/statements/* on billing (from office)",
            "role vendor_biller: loses GET, HEAD /billing/** on billing (from any network); \
             loses GET, HEAD /billing/statements/* on billing (from any network)",
        ],
        "{out}"
    );
    assert!(
        out.starts_with("config/old.toml → config/new.toml: who gains and who loses access"),
        "{out}"
    );
}

#[test]
fn a_policy_that_does_not_load_is_not_compared() {
    let site = Site::new();
    let good = policy(&site, "", ROLES).replace(&server_section(&site), "{server}");
    let (code, out, err) = diff(
        &good,
        &format!("{good}\n[[routes]]\napp = \"nope\"\npath = \"/x\"\nallow = \"public\"\n"),
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("config/new.toml:"), "{err}");
    assert!(err.contains("fix this policy first"), "{err}");
    assert!(out.is_empty(), "{out}");
}
