//! Starting a session once the person is known: what every way of signing in
//! (password, passkey, single sign-on) does after the person has proved who they are.

use crate::body::Body;
use crate::policy::Policy;
use crate::session::Stage;
use crate::users::accounts;
use crate::web::kit::PageRequest;
use crate::web::login_page::locked_page;
use crate::web::state::Gate;
use http::Response;
use std::net::IpAddr;

/// Second-step sessions one account may have open at once; a new one ends the oldest.
const MAX_PENDING: usize = 3;

/// Whether `name` may sign in from `ip`: anywhere, unless the account names
/// its own networks (`allow_from` in users.toml) or one of its roles does
/// (`allow_from` in `[roles]`); then only from there.
pub(crate) fn signs_in_from_here(gate: &Gate, policy: &Policy, name: &str, ip: IpAddr) -> bool {
    let snap = gate.accounts.snapshot();
    let own = snap.networks.get(name).is_none_or(|nets| nets.contains(ip));
    let roles = snap.directory.get(name).is_none_or(|a| {
        a.roles.iter().all(|r| {
            policy
                .roles
                .get(r)
                .and_then(|role| role.allow_from.as_ref())
                .is_none_or(|nets| nets.contains(ip))
        })
    });
    own && roles
}

/// Ends the oldest second-step sessions of `name` so that a new one stays within `MAX_PENDING`.
pub(crate) fn make_room_for_pending(gate: &Gate, name: &str) {
    let pending: Vec<_> = gate
        .sessions
        .of_user(name)
        .into_iter()
        .filter(|s| s.stage == Stage::NeedsMfa)
        .collect();
    for old in pending
        .iter()
        .take((pending.len() + 1).saturating_sub(MAX_PENDING))
    {
        gate.sessions.remove_public(&old.public_id);
    }
}

pub(crate) async fn record_login(gate: &Gate, req: &PageRequest<'_>, name: &str) {
    let (now, ip) = (req.now, req.client_ip);
    let owned = name.to_string();
    let previous = gate
        .accounts
        .store()
        .update_async(move |s| {
            let entry = s.users.entry(owned).or_default();
            let before = entry.last_login_ip.clone();
            entry.last_login = Some(now);
            entry.last_login_ip = Some(ip.to_string());
            before
        })
        .await
        .ok()
        .flatten();
    let alerts = &gate.alerts;
    if let Some(prev) = previous.and_then(|p| p.parse::<IpAddr>().ok())
        && crate::audit::alerts::different_network(prev, ip)
    {
        alerts.raise(
            "new-network",
            name,
            format!("signed in from {ip}; the last sign-in was from {prev}"),
        );
    }
    let elsewhere = gate
        .sessions
        .of_user(name)
        .into_iter()
        .filter(|s| s.stage == Stage::Complete)
        .find(|s| crate::audit::alerts::different_network(s.client_ip, ip));
    if let Some(other) = elsewhere {
        alerts.raise(
            "two-places",
            name,
            format!(
                "signed in from {ip} while also signed in from {}",
                other.client_ip
            ),
        );
    }
    let vendor = gate
        .accounts
        .snapshot()
        .directory
        .get(name)
        .is_some_and(|a| a.is_vendor(&req.policy.practice));
    if vendor && crate::audit::alerts::after_hours(&req.policy.alerts, now) {
        alerts.raise(
            "after-hours",
            name,
            format!("vendor account signed in outside working hours, from {ip}"),
        );
    }
}

/// Makes room for a new complete session under `max_per_user`, or refuses it.
pub(crate) fn admit(
    gate: &Gate,
    req: &PageRequest<'_>,
    name: &str,
) -> Result<(), Box<Response<Body>>> {
    // Only sessions that still stand count: an idle one kept to explain the
    // sign-out must not hold a place.
    let snap = gate.accounts.snapshot();
    let existing = gate.sessions.of_user(name);
    let complete: Vec<_> = existing
        .into_iter()
        .filter(|s| s.stage == Stage::Complete)
        .filter(|s| accounts::identity_of(s, &snap, req.policy, req.now).is_ok())
        .collect();
    let max = req.policy.sessions.max_per_user;
    if complete.len() < max {
        return Ok(());
    }
    match req.policy.sessions.on_too_many {
        crate::policy::TooMany::Refuse => {
            tracing::warn!(user = %name, "sign-in refused: already signed in elsewhere");
            Err(Box::new(locked_page(
                req,
                "This account is already signed in elsewhere. Sign out there first, or ask the practice's security officer.",
            )))
        }
        crate::policy::TooMany::EndOldest => {
            for old in complete.iter().take(complete.len() + 1 - max) {
                gate.sessions.remove_public(&old.public_id);
                tracing::warn!(user = %name, session = %old.public_id, "older session ended by a new sign-in");
                // Shared passwords show up here: one person, two places, one session each.
                let record = crate::audit::Record::signin("session-ended-by-new-sign-in")
                    .user(name)
                    .session(old.public_id.clone())
                    .client_ip(req.client_ip)
                    .detail(format!("the ended session came from {}", old.client_ip));
                let audit = gate.audit.clone();
                tokio::spawn(async move {
                    if let Err(e) = audit.record(record).await {
                        tracing::error!(error = %e, "cannot record an ended session in the audit trail");
                    }
                });
            }
            Ok(())
        }
    }
}
