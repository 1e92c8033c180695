//! Passkeys and security keys (WebAuthn), through `webauthn-rs`: which relying party a
//! host's sign-in pages speak for, and each ceremony's start and finish.
//!
//! The relying party id is the host the person signs in on (ward's own host when
//! `[server] ward_host` is set), so a passkey made on one host is never offered or accepted
//! on another. With `[login] passkey_domain` the officer names a shared parent domain
//! instead: every host under it then shares the same passkeys.

use serde_json::Value;
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, DiscoverableKey, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    Url, Uuid, Webauthn, WebauthnBuilder,
};

/// Why a passkey ceremony did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// The browser's answer is not a WebAuthn credential.
    #[error("the browser's answer could not be read")]
    Unreadable,
    /// webauthn-rs refused it (wrong origin, signature, challenge, user verification …).
    #[error("the passkey was not accepted: {0}")]
    Refused(#[from] webauthn_rs::prelude::WebauthnError),
    /// The options could not be turned into JSON for the page.
    #[error("the passkey options could not be written")]
    Options,
}

/// The relying party that the sign-in pages on one host speak for.
pub struct Rp {
    /// The relying party id (a domain): the host, or the officer's `passkey_domain`.
    pub id: String,
    webauthn: Webauthn,
}

impl std::fmt::Debug for Rp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rp({})", self.id)
    }
}

/// The relying party id for `host`: `domain` when the host is it or under it, else the host
/// itself when no domain is set. None when passkeys cannot be offered there (an address, or
/// a host outside the officer's domain).
pub fn rp_id(domain: Option<&str>, host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() || host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return None;
    }
    match domain {
        None => Some(host),
        Some(d) if host == d || host.ends_with(&format!(".{d}")) => Some(d.to_string()),
        Some(_) => None,
    }
}

impl Rp {
    /// The relying party for a page on `host` reached at `origin` (`https://host[:port]`);
    /// `name` is what the browser shows the person (the practice's name).
    pub fn for_page(domain: Option<&str>, host: &str, origin: &str, name: &str) -> Option<Rp> {
        let id = rp_id(domain, host)?;
        let url = Url::parse(origin).ok()?;
        let webauthn = WebauthnBuilder::new(&id, &url)
            .ok()?
            .rp_name(name)
            .build()
            .ok()?;
        Some(Rp { id, webauthn })
    }

    /// Starts adding a passkey for the account known to passkeys as `user`; `existing` are
    /// the account's keys, which the browser is told not to make again. Returns the options
    /// for the page's script and the state to keep on the server.
    pub fn start_registration(
        &self,
        user: Uuid,
        name: &str,
        display_name: &str,
        existing: &[Passkey],
    ) -> Result<(Value, PasskeyRegistration), PasskeyError> {
        let exclude = existing.iter().map(|k| k.cred_id().clone()).collect();
        let (ccr, state) =
            self.webauthn
                .start_passkey_registration(user, name, display_name, Some(exclude))?;
        let mut options = serde_json::to_value(ccr).map_err(|_| PasskeyError::Options)?;
        // A passkey that the authenticator can find by itself lets the person sign in
        // without a name where the officer allows it; a security key without room for one
        // still works as a second factor ("preferred", never "required").
        if let Some(sel) = options
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(Value::as_object_mut)
        {
            sel.insert("residentKey".into(), "preferred".into());
        }
        Ok((options, state))
    }

    /// Checks the browser's answer to `start_registration`; the new passkey.
    pub fn finish_registration(
        &self,
        answer: &str,
        state: &PasskeyRegistration,
    ) -> Result<Passkey, PasskeyError> {
        let reg: RegisterPublicKeyCredential =
            serde_json::from_str(answer).map_err(|_| PasskeyError::Unreadable)?;
        Ok(self.webauthn.finish_passkey_registration(&reg, state)?)
    }

    /// Starts a sign-in step with one of `keys` (the account's, for this relying party).
    pub fn start_authentication(
        &self,
        keys: &[Passkey],
    ) -> Result<(Value, PasskeyAuthentication), PasskeyError> {
        let (rcr, state) = self.webauthn.start_passkey_authentication(keys)?;
        let options = serde_json::to_value(rcr).map_err(|_| PasskeyError::Options)?;
        Ok((options, state))
    }

    /// Checks the browser's answer to `start_authentication`.
    pub fn finish_authentication(
        &self,
        answer: &PublicKeyCredential,
        state: &PasskeyAuthentication,
    ) -> Result<AuthenticationResult, PasskeyError> {
        Ok(self.webauthn.finish_passkey_authentication(answer, state)?)
    }

    /// Starts a sign-in without a name: the authenticator offers the passkeys it holds for
    /// this relying party, and its answer says whose it is.
    pub fn start_discoverable(&self) -> Result<(Value, DiscoverableAuthentication), PasskeyError> {
        let (mut rcr, state) = self.webauthn.start_discoverable_authentication()?;
        // Started by the person's click on a button, not by the browser's autofill.
        rcr.mediation = None;
        let options = serde_json::to_value(rcr).map_err(|_| PasskeyError::Options)?;
        Ok((options, state))
    }

    /// Checks a name-less sign-in's answer against `key`, the passkey it names.
    pub fn finish_discoverable(
        &self,
        answer: &PublicKeyCredential,
        state: DiscoverableAuthentication,
        key: &Passkey,
    ) -> Result<AuthenticationResult, PasskeyError> {
        #[allow(deprecated)]
        // the newer call needs a type webauthn-rs hides behind a "danger" feature
        let result = self.webauthn.finish_discoverable_authentication(
            answer,
            state,
            &[DiscoverableKey::from(key)],
        )?;
        Ok(result)
    }
}

/// Reads a sign-in answer from the page's script.
pub fn read_answer(answer: &str) -> Result<PublicKeyCredential, PasskeyError> {
    serde_json::from_str(answer).map_err(|_| PasskeyError::Unreadable)
}

/// The account handle and credential id a name-less sign-in's answer names.
pub fn identify(answer: &PublicKeyCredential) -> Option<(Uuid, Vec<u8>)> {
    let handle = answer.get_user_unique_id()?;
    let user = Uuid::from_slice(handle).ok()?;
    Some((user, answer.get_credential_id().to_vec()))
}

/// A new random account handle for passkeys (never the account's name, which a passkey
/// would carry to any site that asked).
pub fn new_user_handle() -> Result<Uuid, crate::auth::codes::RngError> {
    let mut bytes = [0u8; 16];
    crate::auth::codes::fill_random(&mut bytes)?;
    Ok(Uuid::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relying_party_is_the_host_unless_a_domain_is_shared() {
        assert_eq!(
            rp_id(None, "ward.riverside.example").as_deref(),
            Some("ward.riverside.example")
        );
        assert_eq!(
            rp_id(None, "EHR.Riverside.Example.").as_deref(),
            Some("ehr.riverside.example")
        );
        let d = Some("riverside.example");
        assert_eq!(
            rp_id(d, "ehr.riverside.example").as_deref(),
            Some("riverside.example")
        );
        assert_eq!(
            rp_id(d, "riverside.example").as_deref(),
            Some("riverside.example")
        );
        // Not under the domain: no passkeys there, rather than another site's.
        assert_eq!(rp_id(d, "evilriverside.example"), None);
        assert_eq!(rp_id(d, "riverside.example.evil.test"), None);
        // Addresses have no relying party.
        assert_eq!(rp_id(None, "127.0.0.1"), None);
        assert_eq!(rp_id(None, "[::1]"), None);
        assert_eq!(rp_id(None, ""), None);
    }

    #[test]
    fn a_page_builds_its_relying_party_from_its_own_origin() {
        let rp = Rp::for_page(
            None,
            "ward.localhost",
            "https://ward.localhost:8443",
            "Clinic",
        );
        assert_eq!(rp.map(|r| r.id).as_deref(), Some("ward.localhost"));
        assert!(Rp::for_page(None, "127.0.0.1", "https://127.0.0.1:8443", "Clinic").is_none());
        // An origin outside the relying party is refused by webauthn-rs itself.
        assert!(Rp::for_page(None, "ward.localhost", "https://other.localhost", "C").is_none());
    }

    #[test]
    fn registration_options_prefer_a_discoverable_passkey_and_require_verification() {
        let rp = Rp::for_page(None, "ward.localhost", "https://ward.localhost", "Clinic")
            .expect("relying party");
        let (options, _) = rp
            .start_registration(Uuid::from_bytes([7; 16]), "lee", "Dr Lee", &[])
            .expect("options");
        let sel = &options["publicKey"]["authenticatorSelection"];
        assert_eq!(sel["residentKey"], "preferred");
        assert_eq!(sel["userVerification"], "required");
        assert_eq!(options["publicKey"]["rp"]["id"], "ward.localhost");
    }

    #[test]
    fn answers_that_are_not_credentials_are_unreadable() {
        assert!(matches!(read_answer("{}"), Err(PasskeyError::Unreadable)));
        assert!(matches!(
            read_answer("not json"),
            Err(PasskeyError::Unreadable)
        ));
    }
}
