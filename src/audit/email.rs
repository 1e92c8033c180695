//! Alerts by e-mail: each alert as a short plain-text message through the practice's SMTP
//! server (`[alerts] email_to`, `smtp`, …), over STARTTLS or TLS with ward's one TLS stack.

use super::alert::{Alert, Receiver};
use super::retry::SendError;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// How ward talks to the SMTP server (`smtp_tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only to a server on this machine (the policy refuses any other).
    None,
}

impl SmtpTls {
    /// The usual port for this way of connecting.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

/// `[alerts] email_to` and the SMTP settings that go with it.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailSettings {
    /// Who gets the alerts.
    pub to: Vec<String>,
    /// The sender address.
    pub from: String,
    /// The SMTP server's host name (checked against its certificate).
    pub host: String,
    /// Its port.
    pub port: u16,
    /// STARTTLS, TLS or none.
    pub tls: SmtpTls,
    /// The account ward signs in to the server with, if any.
    pub user: Option<String>,
    /// Its password, read from `smtp_password_file`.
    pub password: Option<String>,
    /// The authority (PEM) the server's certificate must come from, instead of the public ones.
    pub ca: Option<Vec<u8>>,
}

impl std::fmt::Debug for EmailSettings {
    // The password is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSettings")
            .field("to", &self.to)
            .field("from", &self.from)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The longest one attempt (connect, TLS, send) may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// An SMTP connection's settings and the addresses, ready to send.
pub(crate) struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    /// Checks the addresses and the CA and builds the transport (no connection yet).
    pub(crate) fn new(s: &EmailSettings) -> Result<Email, SendError> {
        let bad = |e: &dyn std::fmt::Display| SendError::Message(e.to_string());
        let from: Mailbox = s.from.parse().map_err(|e| bad(&e))?;
        let to =
            s.to.iter()
                .map(|a| a.parse::<Mailbox>().map_err(|e| bad(&e)))
                .collect::<Result<Vec<_>, _>>()?;
        let tls = match s.tls {
            SmtpTls::None => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(s.host.clone());
                params = match &s.ca {
                    Some(pem) => params
                        .certificate_store(CertificateStore::None)
                        .add_root_certificate(Certificate::from_pem(pem).map_err(|e| bad(&e))?),
                    None => params.certificate_store(CertificateStore::WebpkiRoots),
                };
                let params = params.build_rustls().map_err(|e| bad(&e))?;
                match mode {
                    SmtpTls::Tls => Tls::Wrapper(params),
                    _ => Tls::Required(params),
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .tls(tls)
            .timeout(Some(TIMEOUT));
        if let (Some(user), Some(password)) = (&s.user, &s.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Email {
            transport: builder.build(),
            from,
            to,
        })
    }
}

impl Receiver for Email {
    /// One attempt to send `alert` to every recipient.
    async fn send(&self, alert: &Alert) -> Result<(), SendError> {
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject(alert));
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = message
            .body(body(alert))
            .map_err(|e| SendError::Message(e.to_string()))?;
        match tokio::time::timeout(TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() || e.is_transient() => {
                Err(SendError::Refused(e.to_string()))
            }
            Ok(Err(e)) => Err(SendError::Unreachable(e.to_string())),
            Err(_) => Err(SendError::Timeout(TIMEOUT)),
        }
    }
}

/// `ward alert: EVENT (PRACTICE)`, without control characters.
fn subject(alert: &Alert) -> String {
    format!("ward alert: {} ({})", alert.event, alert.practice)
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// The message: what happened, to whom, when, and where to look further.
fn body(alert: &Alert) -> String {
    let mut text = format!("{}\n\n", alert.detail);
    if !alert.user.is_empty() && alert.user != "-" {
        text.push_str(&format!("Person: {}\n", alert.user));
    }
    text.push_str(&format!(
        "Time: {}\nPractice: {}\nAlert: {}\n\n\
         Sent by ward. The same alert is in ward's log; what happened around it is in the \
         audit trail (ward audit search).\n",
        alert.time, alert.practice, alert.event
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            event: "locked",
            user: "kim".into(),
            detail: "kim's account is locked after 5 failed sign-ins".into(),
            time: "2026-11-30T06:00:00Z".into(),
            practice: "Riverside\r\nBcc: x@evil.example".into(),
            seq: None,
            hash: None,
        }
    }

    #[test]
    fn the_subject_cannot_carry_a_header() {
        let s = subject(&alert());
        assert!(!s.contains('\r') && !s.contains('\n'), "{s}");
        assert!(s.starts_with("ward alert: locked ("));
    }

    #[test]
    fn the_body_names_the_person_and_the_time() {
        let b = body(&alert());
        assert!(b.starts_with("kim's account is locked"));
        assert!(b.contains("Person: kim\n"));
        assert!(b.contains("Time: 2026-11-30T06:00:00Z\n"));
    }

    #[test]
    fn bad_addresses_and_cas_are_refused_before_any_connection() {
        let s = EmailSettings {
            to: vec!["officer@riverside.example".into()],
            from: "ward@riverside.example".into(),
            host: "smtp.riverside.example".into(),
            port: 587,
            tls: SmtpTls::Starttls,
            user: Some("ward".into()),
            password: Some("hunter2".into()),
            ca: None,
        };
        assert!(Email::new(&s).is_ok());
        assert!(!format!("{s:?}").contains("hunter2"));
        let bad_to = EmailSettings {
            to: vec!["not an address".into()],
            ..s.clone()
        };
        assert!(matches!(Email::new(&bad_to), Err(SendError::Message(_))));
        let bad_ca = EmailSettings {
            ca: Some(
                b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".to_vec(),
            ),
            ..s
        };
        assert!(matches!(Email::new(&bad_ca), Err(SendError::Message(_))));
    }
}
