//! `ward user …`: the officer's account commands.
//!
//! Everything here is presentation: the changes themselves are made by `users::Admin`, which
//! keeps the officer's users.toml layout and the secret store consistent. This module checks
//! what only the policy knows (roles, networks), turns results into plain words, and prints
//! the one-time links. No secret other than such a link is ever printed.

use crate::config::{self, Certs};
use crate::csv;
use crate::policy::Policy;
use crate::suggest::closest;
use crate::users::directory::parse_day as parse_date;
use crate::users::{
    Account, Admin, AdminError, Directory, EnrollLink, NewAccount, Purpose, SecretStore, Status,
    UserSecrets, directory,
};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// The policy file `ward user` reads when `--config` is not given.
const DEFAULT_CONFIG: &str = "config/ward.toml";

/// `ward user …`: the officer's account commands.
#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Add an account and print its one-time enrollment link (valid 24 hours).
    Add {
        /// Sign-in name: lower-case letters, digits, '.', '_' or '-' (for example dr_lee).
        name: String,
        /// Roles from the policy, comma-separated (for example clinician,biller).
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// The person's name as shown on pages and in the audit log (for example "Dr. Alex Lee").
        #[arg(long, required = true)]
        display_name: String,
        /// The organisation the person works for, if not the practice (vendors need --expires).
        #[arg(long)]
        org: Option<String>,
        /// The last day the account works, YYYY-MM-DD.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date)]
        expires: Option<Date>,
        /// Who at the practice vouches for this person.
        #[arg(long)]
        sponsor: Option<String>,
        /// Networks from the policy, or address ranges, the person may sign in from (comma-separated).
        #[arg(long, value_delimiter = ',')]
        allow_from: Vec<String>,
    },
    /// List every account: status, roles, organization, end date, MFA enrolled, last sign-in.
    List {
        /// Print CSV (with a header row) for a spreadsheet or another program.
        #[arg(long)]
        csv: bool,
    },
    /// Show everything about one account (never its secrets).
    Show {
        /// The account's sign-in name.
        name: String,
    },
    /// Replace an account's roles.
    SetRoles {
        /// The account's sign-in name.
        name: String,
        /// The new roles, comma-separated; they replace the old ones.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
    },
    /// Stop an account signing in, and end its sessions, until it is reactivated.
    Deactivate {
        /// The account's sign-in name.
        name: String,
    },
    /// Let a deactivated account sign in again.
    Reactivate {
        /// The account's sign-in name.
        name: String,
    },
    /// End an account for good (needs --yes): sessions end and its password and MFA are deleted.
    Terminate {
        /// The account's sign-in name.
        name: String,
        /// Confirm: terminating cannot be undone.
        #[arg(long)]
        yes: bool,
    },
    /// Void an account's password, end its sessions, and print a one-time link to set a new one.
    ResetPassword {
        /// The account's sign-in name.
        name: String,
    },
    /// Void an account's MFA, end its sessions, and print a one-time link to set it up again.
    ResetMfa {
        /// The account's sign-in name.
        name: String,
    },
    /// Set an account's last day; with neither --on nor --never the account ends now.
    Expire {
        /// The account's sign-in name.
        name: String,
        /// The last day the account works, YYYY-MM-DD.
        #[arg(long, value_name = "YYYY-MM-DD", value_parser = parse_date, conflicts_with = "never")]
        on: Option<Date>,
        /// Remove the end date (not allowed for vendor accounts).
        #[arg(long)]
        never: bool,
    },
    /// Clear failed sign-ins and any lockout.
    Unlock {
        /// The account's sign-in name.
        name: String,
    },
    /// List an account's passkeys and security keys: name, where it works, added, last used, id.
    Passkeys {
        /// The account's sign-in name.
        name: String,
    },
    /// Remove one of an account's passkeys or security keys and end the account's sessions.
    RemovePasskey {
        /// The account's sign-in name.
        name: String,
        /// The key's name (as `ward user passkeys` shows it), or its id when names repeat.
        key: String,
    },
}

/// Runs one command against the policy at `config`; prints results for the officer and returns the exit code.
pub fn run(config: &Path, cmd: UserCommand) -> ExitCode {
    let loaded = match config::load(config, Certs::Skip) {
        Ok(l) => l,
        Err(d) => {
            eprintln!("{d}");
            eprintln!(
                "ward user: the policy {} has problems; fix them first (ward check --config {})",
                config.display(),
                config.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let policy = &loaded.policy;
    let store = match SecretStore::open(&policy.storage.state) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ward user: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now = crate::clock::now();
    let tz = TimeZone::system();
    // End dates are days in UTC, as the proxy reads them; times are shown in local time.
    let today = now.to_zoned_datetime(TimeZone::UTC).date();
    // What goes in the audit trail, before the change, if the command changes something.
    let action = match &cmd {
        UserCommand::Add { name, .. } => Some(("user-added", name.clone())),
        UserCommand::SetRoles { name, .. } => Some(("roles-changed", name.clone())),
        UserCommand::Deactivate { name } => Some(("user-deactivated", name.clone())),
        UserCommand::Reactivate { name } => Some(("user-reactivated", name.clone())),
        UserCommand::Terminate { name, yes: true } => Some(("user-terminated", name.clone())),
        UserCommand::ResetPassword { name } => Some(("password-reset", name.clone())),
        UserCommand::ResetMfa { name } => Some(("mfa-reset", name.clone())),
        UserCommand::Expire { name, .. } => Some(("end-date-changed", name.clone())),
        UserCommand::Unlock { name } => Some(("user-unlocked", name.clone())),
        UserCommand::RemovePasskey { name, .. } => Some(("passkey-removed", name.clone())),
        _ => None,
    };
    // The key's name goes in the trail (it is no secret: the officer sees it everywhere).
    let detail = match &cmd {
        UserCommand::RemovePasskey { key, .. } => Some(format!("key \"{}\"", plain(key))),
        _ => None,
    };
    let ctx = Ctx {
        config,
        policy,
        admin: Admin::new(&policy.storage.users, store.clone(), &policy.practice),
        store,
        now,
        today,
        tz,
        action,
        detail,
    };
    match ctx.exec(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("ward user: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// What one command needs.
struct Ctx<'a> {
    config: &'a Path,
    policy: &'a Policy,
    admin: Admin,
    store: SecretStore,
    now: Timestamp,
    today: Date,
    tz: TimeZone,
    /// The audit event and account of this command, if it changes something.
    action: Option<(&'static str, String)>,
    /// More words for that record (which key), if any.
    detail: Option<String>,
}

type Outcome = Result<(), String>;

impl Ctx<'_> {
    /// Makes an account change with `f`, its audit record written first: when the record
    /// cannot be written and `[audit] on_failure` is "refuse", nothing is changed. A change
    /// that fails after its record is recorded as not made. `explain` words `f`'s error.
    fn change<T>(
        &self,
        f: impl FnOnce(&Admin) -> Result<T, AdminError>,
        explain: impl FnOnce(AdminError) -> String,
    ) -> Result<T, String> {
        let Some((event, target)) = &self.action else {
            return f(&self.admin).map_err(explain);
        };
        let event: &'static str = event;
        let mut record =
            crate::audit::Record::officer(super::cli_actor(), event).user(target.clone());
        if let Some(d) = &self.detail {
            record = record.detail(d.clone());
        }
        if let Err(e) = crate::audit::append_blocking_with(&self.policy.audit, record) {
            match self.policy.audit.on_failure {
                crate::audit::OnFailure::Refuse => {
                    return Err(format!(
                        "nothing was changed, because the audit trail cannot record the change: {e}"
                    ));
                }
                crate::audit::OnFailure::Continue => eprintln!(
                    "ward user: the audit trail cannot record this change ({e}); making it anyway, as the policy's [audit] on_failure = \"continue\" allows"
                ),
            }
        }
        f(&self.admin).map_err(|e| {
            let why = explain(e);
            let record = crate::audit::Record::officer(super::cli_actor(), "change-failed")
                .user(target.clone())
                .detail(format!("{event} was not made: {why}"));
            if let Err(e) = crate::audit::append_blocking_with(&self.policy.audit, record) {
                eprintln!("ward user: the audit trail cannot record that the change failed: {e}");
            }
            why
        })
    }

    fn exec(&self, cmd: UserCommand) -> Outcome {
        match cmd {
            UserCommand::Add {
                name,
                roles,
                display_name,
                org,
                expires,
                sponsor,
                allow_from,
            } => self.add(NewAccount {
                name,
                display_name,
                roles,
                org,
                expires,
                sponsor,
                allow_from,
            }),
            UserCommand::List { csv } => self.list(csv),
            UserCommand::Show { name } => self.show(&name),
            UserCommand::SetRoles { name, roles } => self.set_roles(&name, roles),
            UserCommand::Deactivate { name } => self.deactivate(&name),
            UserCommand::Reactivate { name } => self.reactivate(&name),
            UserCommand::Terminate { name, yes } => self.terminate(&name, yes),
            UserCommand::ResetPassword { name } => self.reset_password(&name),
            UserCommand::ResetMfa { name } => self.reset_mfa(&name),
            UserCommand::Expire { name, on, never } => self.expire(&name, on, never),
            UserCommand::Unlock { name } => self.unlock(&name),
            UserCommand::Passkeys { name } => self.passkeys(&name),
            UserCommand::RemovePasskey { name, key } => self.remove_passkey(&name, &key),
        }
    }

    // --- the commands -------------------------------------------------------------------

    fn passkeys(&self, name: &str) -> Outcome {
        let keys = self.admin.passkeys(name).map_err(|e| self.explain(e))?;
        if keys.is_empty() {
            println!("{name} has no passkeys or security keys.");
            return Ok(());
        }
        println!("{name}'s passkeys and security keys:");
        for k in &keys {
            println!(
                "  {}  works on {}  added {}  last used {}  id {}",
                plain(&k.name),
                k.rp_id,
                self.short_when(k.added),
                k.last_used
                    .map(|t| self.short_when(t))
                    .unwrap_or_else(|| "never".into()),
                k.id_text()
            );
        }
        println!("Remove one with: ward user remove-passkey {name} NAME-OR-ID");
        Ok(())
    }

    fn remove_passkey(&self, name: &str, key: &str) -> Outcome {
        let removed = self.change(|a| a.remove_passkey(name, key), |e| self.explain(e))?;
        println!(
            "Removed {name}'s passkey \"{}\"; it no longer signs {name} in, and {name}'s sessions have ended.",
            plain(&removed)
        );
        Ok(())
    }

    fn add(&self, mut new: NewAccount) -> Outcome {
        new.roles = self.check_roles(&new.roles)?;
        new.allow_from = self.check_networks(&new.allow_from)?;
        new.display_name = new.display_name.trim().to_string();
        if new.display_name.is_empty() {
            return Err("--display-name is empty; give the person's name".into());
        }
        for (flag, value) in [("--org", &mut new.org), ("--sponsor", &mut new.sponsor)] {
            if let Some(v) = value {
                *v = v.trim().to_string();
                if v.is_empty() {
                    return Err(format!("{flag} is empty; fill it in or leave it out"));
                }
            }
        }
        if let Some(last) = new.expires
            && last < self.today
        {
            return Err(format!(
                "the end date {last} has already passed; give the last day the account should work, today or later"
            ));
        }
        let to_add = new.clone();
        let link = self.change(|a| a.add(to_add, self.now.as_second()), |e| self.explain(e))?;
        println!(
            "Added {} ({}) with roles {}.",
            new.name,
            plain(&new.display_name),
            new.roles.join(", ")
        );
        if let Some(last) = new.expires {
            println!("The account works until the end of {last}.");
        }
        self.print_link(
            &link,
            &format!(
                "Give {} this one-time link to set a password and MFA",
                plain(&new.display_name)
            ),
        );
        Ok(())
    }

    fn list(&self, csv: bool) -> Outcome {
        let dir = self.directory()?;
        let secrets = self.store.read().map_err(|e| e.to_string())?;
        let none = UserSecrets::default();
        // The CSV keeps one plain column per fact; the table says the second factors in words.
        let row = |a: &Account, csv: bool| -> Vec<String> {
            let s = secrets.users.get(&a.name).unwrap_or(&none);
            let mut row = vec![
                a.name.clone(),
                self.status_word(a).to_string(),
                a.roles.join(","),
                a.org.clone().unwrap_or_default(),
                a.expires.map(|d| d.to_string()).unwrap_or_default(),
            ];
            if csv {
                row.push(yes_no(s.totp.is_some()).to_string());
                row.push(s.passkeys.len().to_string());
            } else {
                row.push(s.second_factors());
            }
            row.push(match s.last_login {
                Some(t) if csv => self.when(t),
                Some(t) => self.short_when(t),
                None => "never".to_string(),
            });
            row
        };
        if csv {
            let mut out =
                String::from("name,status,roles,org,expires,mfa,passkeys,last_sign_in\r\n");
            for a in dir.accounts.values() {
                out.push_str(&csv::row(row(a, true)));
                out.push_str("\r\n");
            }
            print!("{out}");
            return Ok(());
        }
        let rows: Vec<Vec<String>> = dir.accounts.values().map(|a| row(a, false)).collect();
        if rows.is_empty() {
            println!(
                "There are no accounts yet. Add one with: {}",
                self.command("add NAME --roles ROLE --display-name \"FULL NAME\"")
            );
            return Ok(());
        }
        let header = [
            "NAME",
            "STATUS",
            "ROLES",
            "ORG",
            "EXPIRES",
            "SECOND FACTOR",
            "LAST SIGN-IN",
        ];
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|f| if f.is_empty() { "-".into() } else { plain(&f) })
                    .collect()
            })
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
        for row in &rows {
            for (w, f) in widths.iter_mut().zip(row) {
                *w = (*w).max(f.chars().count());
            }
        }
        let line = |fields: &[&str]| {
            let mut out = String::new();
            for (i, (f, w)) in fields.iter().zip(&widths).enumerate() {
                if i + 1 == fields.len() {
                    out.push_str(f);
                } else {
                    let pad = w - f.chars().count();
                    let _ = write!(out, "{f}{}  ", " ".repeat(pad));
                }
            }
            out
        };
        let mut out = line(&header);
        out.push('\n');
        for row in &rows {
            let fields: Vec<&str> = row.iter().map(String::as_str).collect();
            out.push_str(&line(&fields));
            out.push('\n');
        }
        print!("{out}");
        Ok(())
    }

    fn show(&self, name: &str) -> Outcome {
        let dir = self.directory()?;
        let a = dir.get(name).ok_or_else(|| self.no_account(name, &dir))?;
        let secrets = self.store.read().map_err(|e| e.to_string())?;
        let s = secrets.users.get(name).cloned().unwrap_or_default();
        let now = self.now.as_second();
        let or = |v: &Option<String>, dflt: &str| v.as_deref().map(plain).unwrap_or(dflt.into());

        let mut status = a.status.to_string();
        if a.status == Status::Active && !a.usable_on(self.today) {
            status.push_str(" (but its end date has passed, so it cannot sign in)");
        }
        let attributes = if a.attributes.is_empty() {
            "(none)".to_string()
        } else {
            let pairs: Vec<String> = a
                .attributes
                .iter()
                .map(|(k, v)| format!("{} = {}", plain(k), plain(v)))
                .collect();
            pairs.join(", ")
        };
        let locked = match s.locked_until {
            Some(t) if t > now => format!("locked until {}", self.when(t)),
            _ => "not locked".to_string(),
        };
        let pending = match &s.enroll {
            None => "none".to_string(),
            Some(p) => {
                let what = match p.purpose {
                    Purpose::Enroll => "enrollment",
                    Purpose::ResetPassword => "password reset",
                    Purpose::ResetMfa => "MFA reset",
                };
                if p.expires > now {
                    format!("{what} link, works until {}", self.when(p.expires))
                } else {
                    format!("{what} link, expired {}", self.when(p.expires))
                }
            }
        };
        let last_login = match s.last_login {
            Some(t) => match &s.last_login_ip {
                Some(ip) => format!("{} from {}", self.when(t), plain(ip)),
                None => self.when(t),
            },
            None => "never".to_string(),
        };
        let fields: [(&str, String); 18] = [
            ("name", a.name.clone()),
            ("display name", plain(&a.display_name)),
            ("status", status),
            ("roles", or_none(&a.roles.join(", "))),
            ("organization", or(&a.org, "(the practice)")),
            (
                "end date",
                a.expires.map(|d| d.to_string()).unwrap_or("none".into()),
            ),
            ("sponsor", or(&a.sponsor, "(none)")),
            (
                "allowed from",
                if a.allow_from.is_empty() {
                    "(wherever the policy allows)".into()
                } else {
                    plain(&a.allow_from.join(", "))
                },
            ),
            ("attributes", attributes),
            ("password set", yes_no(s.password.is_some()).into()),
            ("MFA enrolled", yes_no(s.totp.is_some()).into()),
            (
                "passkeys",
                if s.passkeys.is_empty() {
                    "none".into()
                } else {
                    s.passkeys
                        .iter()
                        .map(|k| plain(&k.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ),
            ("recovery codes", format!("{} left", s.recovery.len())),
            ("failed sign-ins", s.failed_logins.to_string()),
            ("lockout", locked),
            ("pending link", pending),
            ("last sign-in", last_login),
            (
                "last activity",
                s.last_activity
                    .map(|t| self.when(t))
                    .unwrap_or("never".into()),
            ),
        ];
        let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in &fields {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        print!("{out}");
        Ok(())
    }

    fn set_roles(&self, name: &str, roles: Vec<String>) -> Outcome {
        let roles = self.check_roles(&roles)?;
        let before = self.directory()?.get(name).map(|a| a.roles.join(", "));
        self.change(|a| a.set_roles(name, &roles), |e| self.explain(e))?;
        let now = roles.join(", ");
        match before {
            Some(b) if b == now => println!("{name} already has roles {now}; nothing changed."),
            Some(b) => println!("{name} now has roles {now} (before: {}).", or_none(&b)),
            None => println!("{name} now has roles {now}."),
        }
        Ok(())
    }

    fn deactivate(&self, name: &str) -> Outcome {
        self.change(|a| a.deactivate(name), |e| self.explain(e))?;
        println!("{name} is deactivated: they cannot sign in, and their sessions have ended.");
        println!(
            "To let them back in: {}",
            self.command(&format!("reactivate {name}"))
        );
        Ok(())
    }

    fn reactivate(&self, name: &str) -> Outcome {
        let before = self.directory()?.get(name).map(|a| a.status);
        self.change(|a| a.reactivate(name), |e| self.explain(e))?;
        if before == Some(Status::Active) {
            println!("{name} is already active; nothing changed.");
        } else {
            println!("{name} is active again and can sign in.");
        }
        let dir = self.directory()?;
        if let Some(a) = dir.get(name)
            && !a.usable_on(self.today)
            && let Some(last) = a.expires
        {
            println!(
                "Note: its end date ({last}) has passed, so it still cannot sign in; give it a new one with: {}",
                self.command(&format!("expire {name} --on YYYY-MM-DD"))
            );
        }
        Ok(())
    }

    fn terminate(&self, name: &str, yes: bool) -> Outcome {
        let dir = self.directory()?;
        let a = dir.get(name).ok_or_else(|| self.no_account(name, &dir))?;
        if a.status == Status::Terminated {
            println!("{name} is already terminated; nothing changed.");
            return Ok(());
        }
        if !yes {
            return Err(format!(
                "terminating {name} is permanent, so it needs --yes.\n\
                 It ends every session of {name} now and deletes their password, MFA and recovery codes. \
                 The account can never be reactivated, and the name '{name}' can never be given to anyone else. \
                 The record stays in the accounts file for the audit trail.\n\
                 To stop {name} signing in for now instead: {}\n\
                 To terminate: {}",
                self.command(&format!("deactivate {name}")),
                self.command(&format!("terminate {name} --yes"))
            ));
        }
        self.change(|a| a.terminate(name), |e| self.explain(e))?;
        println!(
            "{name} is terminated: their sessions have ended and their password and MFA are deleted. \
             This cannot be undone; the record stays for the audit trail."
        );
        Ok(())
    }

    fn reset_password(&self, name: &str) -> Outcome {
        let link = self.change(
            |a| a.reset_password(name, self.now.as_second()),
            |e| self.explain(e),
        )?;
        println!("{name}'s password no longer works, and their sessions have ended.");
        let intro = match self.pending_purpose(name) {
            Some(Purpose::Enroll) => {
                format!(
                    "{name} had not finished setting up MFA, so this link sets up both. Give {name} this one-time link"
                )
            }
            _ => format!("Give {name} this one-time link to choose a new password"),
        };
        self.print_link(&link, &intro);
        Ok(())
    }

    fn reset_mfa(&self, name: &str) -> Outcome {
        let link = self.change(
            |a| a.reset_mfa(name, self.now.as_second()),
            |e| self.explain(e),
        )?;
        println!(
            "{name}'s authenticator app and recovery codes no longer work, and their sessions have ended."
        );
        let intro = match self.pending_purpose(name) {
            Some(Purpose::Enroll) => {
                format!(
                    "{name} has no password yet either, so this link sets up both. Give {name} this one-time link"
                )
            }
            _ => format!("Give {name} this one-time link to set up MFA again"),
        };
        self.print_link(&link, &intro);
        Ok(())
    }

    fn expire(&self, name: &str, on: Option<Date>, never: bool) -> Outcome {
        let date = match (on, never) {
            (_, true) => None,
            (Some(d), false) => Some(d),
            (None, false) => Some(
                self.today
                    .yesterday()
                    .map_err(|_| "cannot work out yesterday's date".to_string())?,
            ),
        };
        self.change(
            |a| a.set_expiry(name, date),
            |e| match e {
                AdminError::VendorNeedsExpiry(_) => format!(
                    "{name} works for another organisation, so the account must keep an end date; \
                 change it with --on YYYY-MM-DD, or end the account now with: {}",
                    self.command(&format!("expire {name}"))
                ),
                e => self.explain(e),
            },
        )?;
        match (on, date) {
            (_, None) => println!("{name} no longer has an end date."),
            (None, Some(d)) => {
                println!(
                    "{name}'s account has ended now: its last day is set to {d}, the day before today (UTC), so it can no longer sign in."
                );
                println!(
                    "To give it a later end date: {}",
                    self.command(&format!("expire {name} --on YYYY-MM-DD"))
                );
            }
            (Some(d), _) if d < self.today => println!(
                "{name}'s last day is now {d}, which has passed, so it can no longer sign in."
            ),
            (Some(d), _) => println!("{name}'s account now works until the end of {d}."),
        }
        Ok(())
    }

    fn unlock(&self, name: &str) -> Outcome {
        let before = self.store.read().map_err(|e| e.to_string())?;
        self.change(|a| a.unlock(name), |e| self.explain(e))?;
        let now = self.now.as_second();
        match before.users.get(name) {
            Some(s) if s.locked_until.is_some_and(|t| t > now) => {
                println!("{name} is unlocked and can sign in again.");
            }
            Some(s) if s.failed_logins > 0 => println!(
                "{name} was not locked; their {} failed sign-in{} {} cleared.",
                s.failed_logins,
                plural(s.failed_logins as usize),
                if s.failed_logins == 1 { "was" } else { "were" }
            ),
            _ => println!("{name} was not locked; nothing changed."),
        }
        Ok(())
    }

    // --- checks against the policy ------------------------------------------------------

    /// The roles, trimmed and without repeats, each one defined in the policy.
    fn check_roles(&self, roles: &[String]) -> Result<Vec<String>, String> {
        let out = self.policy.known_roles(roles)?;
        if out.is_empty() {
            return Err("--roles needs at least one role from the policy".into());
        }
        Ok(out)
    }

    /// The entries, trimmed and without repeats, each a network of the policy or an address range.
    fn check_networks(&self, nets: &[String]) -> Result<Vec<String>, String> {
        self.policy
            .known_networks(nets)
            .map_err(|e| format!("--allow-from: {}", plain(&e.to_string())))
    }

    // --- helpers ------------------------------------------------------------------------

    fn directory(&self) -> Result<Directory, String> {
        directory::load(&self.policy.storage.users)
            .map_err(|d| format!("the accounts file has problems; fix them first:\n{d}"))
    }

    /// "there is no account named 'x'", with the closest name if one is near.
    fn no_account(&self, name: &str, dir: &Directory) -> String {
        let names: Vec<&str> = dir.accounts.keys().map(String::as_str).collect();
        let mut msg = format!("there is no account named '{}'", plain(name));
        if let Some(best) = closest(name, &names) {
            let _ = write!(msg, "; did you mean '{best}'?");
        }
        msg
    }

    /// An `AdminError` in words, with what to do about it where that helps.
    fn explain(&self, e: AdminError) -> String {
        match e {
            AdminError::NoAccount(name) => match self.directory() {
                Ok(dir) => self.no_account(&name, &dir),
                Err(_) => format!("there is no account named '{}'", plain(&name)),
            },
            AdminError::VendorNeedsExpiry(_) => {
                format!("{e}; give the last day of the contract with --expires YYYY-MM-DD")
            }
            other => plain_lines(&other.to_string()),
        }
    }

    /// The purpose of the account's pending link, if the store can be read.
    fn pending_purpose(&self, name: &str) -> Option<Purpose> {
        let secrets = self.store.read().ok()?;
        secrets.users.get(name)?.enroll.as_ref().map(|p| p.purpose)
    }

    fn print_link(&self, link: &EnrollLink, intro: &str) {
        println!(
            "{intro}; it works once, until {} (24 hours from now):",
            self.when(link.expires)
        );
        println!();
        println!(
            "    {}/.ward/enroll?token={}",
            self.policy.server.public_url, link.token
        );
        println!();
        println!(
            "Hand it over yourself or by a channel only they can read: whoever opens it first gets the account."
        );
    }

    /// `ward user [--config FILE] ARGS`, to suggest a next step.
    fn command(&self, args: &str) -> String {
        if self.config == Path::new(DEFAULT_CONFIG) {
            format!("ward user {args}")
        } else {
            format!("ward user --config {} {args}", self.config.display())
        }
    }

    /// "active", "deactivated", "terminated", or "expired" for an active account past its end date.
    fn status_word(&self, a: &Account) -> &'static str {
        if a.status == Status::Active && !a.usable_on(self.today) {
            "expired"
        } else {
            a.status.as_str()
        }
    }

    /// Unix seconds as RFC 3339 in the local time zone.
    fn when(&self, secs: i64) -> String {
        match Timestamp::from_second(secs) {
            Ok(ts) => {
                let offset = ts.to_zoned_datetime(self.tz.clone()).offset();
                ts.display_with_offset(offset).to_string()
            }
            Err(_) => format!("(unreadable time {secs})"),
        }
    }

    /// Unix seconds as a short local date and time, for tables.
    fn short_when(&self, secs: i64) -> String {
        match Timestamp::from_second(secs) {
            Ok(ts) => ts
                .to_zoned_datetime(self.tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string(),
            Err(_) => "?".to_string(),
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "(none)".into()
    } else {
        plain(s)
    }
}

/// `s` with control characters replaced, so a value from a file cannot drive the terminal.
fn plain(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// Like `plain`, keeping line breaks (for multi-line messages).
fn plain_lines(s: &str) -> String {
    s.split('\n').map(plain).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_strict() {
        assert_eq!(
            parse_date("2027-03-31").unwrap(),
            jiff::civil::date(2027, 3, 31)
        );
        assert!(
            parse_date("2027-02-30")
                .unwrap_err()
                .to_string()
                .contains("not a real date")
        );
        for bad in [
            "2027-3-31",
            "31/03/2027",
            "2027-03-31T00:00",
            "next week",
            "",
            "+027-03-31",
        ] {
            assert!(parse_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn control_characters_are_not_printed() {
        assert_eq!(plain("a\u{1b}[2Jb\tc"), "a\u{fffd}[2Jb\u{fffd}c");
        assert_eq!(plain_lines("a\nb\u{7}"), "a\nb\u{fffd}");
    }
}
