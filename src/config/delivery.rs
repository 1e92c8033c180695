//! The settings that send things off the machine: alert e-mail (`[alerts] email_to`, `smtp…`)
//! and audit forwarding to syslog (`[audit] syslog`, `syslog_ca_file`); and the password
//! files such connections use.

use super::Certs;
use super::diag::Collector;
use super::raw::{RawAlerts, RawAudit, Text};
use crate::audit::email::{EmailSettings, SmtpTls};
use crate::audit::syslog::{SyslogSettings, Transport};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// `[alerts] email_to` with its SMTP settings; `None` when alerts are not e-mailed (or the
/// settings have errors, which are in `c`).
pub(super) fn email(
    a: &RawAlerts,
    certs: Certs<'_>,
    c: &mut Collector<'_>,
) -> Option<EmailSettings> {
    let Some(to) = &a.email_to else {
        let stray = [
            &a.email_from,
            &a.smtp,
            &a.smtp_tls,
            &a.smtp_user,
            &a.smtp_password_file,
            &a.smtp_ca_file,
        ];
        if let Some(v) = stray.into_iter().flatten().next() {
            c.error(
                v.span(),
                "this SMTP setting is only used to e-mail alerts; add email_to = [\"officer@riverside.example\"] or remove it",
            );
        }
        return None;
    };
    if to.get_ref().is_empty() {
        c.error(
            to.span(),
            "email_to is empty; list who gets the alerts, like [\"officer@riverside.example\"], or remove it",
        );
    }
    for addr in to.get_ref() {
        mailbox(addr, "email_to", c);
    }
    let from = match &a.email_from {
        Some(f) => {
            mailbox(f, "email_from", c);
            f.get_ref().trim().to_string()
        }
        None => {
            c.error(
                to.span(),
                "e-mailed alerts need the address they come from: add email_from = \"ward@riverside.example\"",
            );
            String::new()
        }
    };
    let tls = match &a.smtp_tls {
        None => SmtpTls::Starttls,
        Some(v) => match v.get_ref().as_str() {
            "starttls" => SmtpTls::Starttls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            other => {
                c.error(
                    v.span(),
                    format!("smtp_tls must be \"starttls\", \"tls\" or \"none\", not '{other}'"),
                );
                SmtpTls::Starttls
            }
        },
    };
    let (host, port) = match &a.smtp {
        Some(v) => server(
            v,
            tls.default_port(),
            "smtp",
            "smtp.riverside.example:587",
            c,
        )
        .unwrap_or_default(),
        None => {
            c.error(
                to.span(),
                "e-mailed alerts need the mail server: add smtp = \"smtp.riverside.example:587\"",
            );
            (String::new(), 0)
        }
    };
    if tls == SmtpTls::None
        && !host.is_empty()
        && !loopback(&host)
        && let Some(v) = &a.smtp_tls
    {
        c.error(
            v.span(),
            "smtp_tls = \"none\" would send alerts and the SMTP password unencrypted; it is only allowed to a mail server on this machine (127.0.0.1 or localhost): use \"starttls\" or \"tls\"",
        );
    }
    let user = a.smtp_user.as_ref().map(|u| u.get_ref().trim().to_string());
    let password = match (&a.smtp_user, &a.smtp_password_file) {
        (Some(_), Some(f)) => secret_file(f, "SMTP password", c),
        (None, None) => None,
        (Some(u), None) => {
            c.error(
                u.span(),
                "smtp_user needs smtp_password_file = \"/etc/ward/smtp-password\" (a file readable by ward alone that holds the password)",
            );
            None
        }
        (None, Some(f)) => {
            c.error(
                f.span(),
                "smtp_password_file needs smtp_user = \"…\", the account ward signs in to the mail server with",
            );
            None
        }
    };
    let ca = a.smtp_ca_file.as_ref().and_then(|f| {
        if tls == SmtpTls::None {
            c.error(
                f.span(),
                "smtp_ca_file is only used with smtp_tls = \"starttls\" or \"tls\"",
            );
            return None;
        }
        if certs.skipped() {
            // `ward explain` and unit tests: nothing is sent, the file is left alone.
            return None;
        }
        ca_file(f, "mail server", certs, c).and_then(|path| match std::fs::read(&path) {
            Ok(pem) => Some(pem),
            Err(e) => {
                c.error(f.span(), format!("cannot read {}: {e}", path.display()));
                None
            }
        })
    });
    Some(EmailSettings {
        to: to
            .get_ref()
            .iter()
            .map(|t| t.get_ref().trim().to_string())
            .collect(),
        from,
        host,
        port,
        tls,
        user,
        password,
        ca,
    })
}

/// `[audit] syslog` and `syslog_ca_file`.
pub(super) fn syslog(
    a: &RawAudit,
    certs: Certs<'_>,
    c: &mut Collector<'_>,
) -> Option<SyslogSettings> {
    let Some(v) = &a.syslog else {
        if let Some(f) = &a.syslog_ca_file {
            c.error(
                f.span(),
                "syslog_ca_file is only used with syslog = \"tls://collector.riverside.example:6514\"",
            );
        }
        return None;
    };
    let text = v.get_ref().trim();
    let example = "syslog must be like \"tls://collector.riverside.example:6514\" (or \"tcp://…\" for a collector on a trusted network)";
    let (transport, rest) = if let Some(rest) = text.strip_prefix("tls://") {
        (Transport::Tls, rest)
    } else if let Some(rest) = text.strip_prefix("tcp://") {
        (Transport::Tcp, rest)
    } else {
        c.error(v.span(), example);
        return None;
    };
    let Some((host, port)) = authority(rest.strip_suffix('/').unwrap_or(rest)) else {
        c.error(v.span(), example);
        return None;
    };
    let Some(port) = port else {
        c.error(
            v.span(),
            format!("syslog needs the collector's port, like \"{text}:6514\""),
        );
        return None;
    };
    if transport == Transport::Tcp && !loopback(&host) {
        c.warning(
            v.span(),
            "tcp:// sends the audit records (who opened which record, from where) unencrypted; use tls:// unless the network between ward and the collector is one the practice trusts",
        );
    }
    let ca = match &a.syslog_ca_file {
        Some(f) if transport == Transport::Tcp => {
            c.error(
                f.span(),
                "syslog_ca_file is only used with a tls:// collector",
            );
            None
        }
        Some(f) => Some(ca_file(f, "syslog collector", certs, c)?),
        None => None,
    };
    Some(SyslogSettings {
        transport,
        host,
        port,
        ca,
    })
}

/// A `host` or `host:port` server setting; the port defaults to `default_port`.
fn server(
    v: &Text,
    default_port: u16,
    key: &str,
    example: &str,
    c: &mut Collector<'_>,
) -> Option<(String, u16)> {
    match authority(v.get_ref().trim()) {
        Some((host, port)) => Some((host, port.unwrap_or(default_port))),
        None => {
            c.error(
                v.span(),
                format!("{key} must be a server name or address with an optional port, like \"{example}\""),
            );
            None
        }
    }
}

/// The host (without IPv6 brackets) and port of `host[:port]`; none for anything else
/// (user names, paths, a port out of range).
fn authority(text: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            host.parse::<std::net::Ipv6Addr>().ok()?;
            match after {
                "" => (host, None),
                p => (host, Some(p.strip_prefix(':')?)),
            }
        }
        None => match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0)?),
        None => None,
    };
    let name = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.';
    if host.is_empty() || !(text.starts_with('[') || host.bytes().all(name)) {
        return None;
    }
    Some((host.to_ascii_lowercase(), port))
}

/// Whether `host` is this machine.
fn loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks an e-mail address (`Name <a@b>` or `a@b`).
fn mailbox(v: &Text, key: &str, c: &mut Collector<'_>) {
    if v.get_ref()
        .trim()
        .parse::<lettre::message::Mailbox>()
        .is_err()
    {
        c.error(
            v.span(),
            format!(
                "'{}' in {key} is not an e-mail address like officer@riverside.example",
                v.get_ref()
            ),
        );
    }
}

/// A CA file for a TLS server ward connects to, checked as the apps' `ca` files are.
fn ca_file(
    f: &Spanned<String>,
    what: &str,
    certs: Certs<'_>,
    c: &mut Collector<'_>,
) -> Option<PathBuf> {
    let path = PathBuf::from(f.get_ref());
    if let Certs::Load(files) = certs
        && let Err(e) = files.client(Some(&path))
    {
        c.error(f.span(), format!("the {what}'s authority file: {e}"));
        return None;
    }
    Some(path)
}

/// A password (`what`) read from a file (trimmed), which should be readable by ward alone.
pub(super) fn secret_file(f: &Text, what: &str, c: &mut Collector<'_>) -> Option<String> {
    let path = Path::new(f.get_ref());
    match std::fs::read_to_string(path) {
        Ok(p) if !p.trim().is_empty() => {
            use std::os::unix::fs::MetadataExt;
            if std::fs::metadata(path).is_ok_and(|m| m.mode() & 0o077 != 0) {
                c.warning(
                    f.span(),
                    format!("{} can be read by other accounts on this machine; make it readable by ward alone (chmod 600)", f.get_ref()),
                );
            }
            Some(p.trim().to_string())
        }
        Ok(_) => {
            c.error(
                f.span(),
                format!("the {what} file {} is empty", f.get_ref()),
            );
            None
        }
        Err(e) => {
            c.error(
                f.span(),
                format!("cannot read the {what} file {}: {e}", f.get_ref()),
            );
            None
        }
    }
}
