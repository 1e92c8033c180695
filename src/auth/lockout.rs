//! Counting failed sign-in steps and locking: one rule for real accounts and
//! unknown names alike, so that the answers never tell which names exist.

use std::net::IpAddr;

/// Failures of one kind (passwords, or second-factor codes) for one name.
///
/// Failures older than the window are forgotten; reaching the limit locks the
/// name for the lock time and starts the count afresh.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Strikes {
    /// Failures counted in the current window.
    pub count: u32,
    /// Unix seconds of the last counted failure.
    pub last: Option<i64>,
}

impl Strikes {
    /// Counts one failure at `now`. Returns `Some(until)` when this failure
    /// reaches `limit` and locks the name until `until` (unix seconds).
    pub fn fail(&mut self, now: i64, limit: u32, window_secs: i64) -> Option<i64> {
        if self
            .last
            .is_some_and(|t| now.saturating_sub(t) > window_secs)
        {
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.last = Some(now);
        if self.count >= limit.max(1) {
            *self = Strikes::default();
            Some(now.saturating_add(window_secs))
        } else {
            None
        }
    }

    /// Failures that still count at `now`.
    pub fn current(&self, now: i64, window_secs: i64) -> u32 {
        match self.last {
            Some(t) if now.saturating_sub(t) <= window_secs => self.count,
            _ => 0,
        }
    }
}

/// The key that per-address limits count under: an IPv4 address, or the IPv6
/// /64 (one subscriber's prefix, whose addresses are free to rotate).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(bits.into())
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_locks_and_starts_afresh() {
        let mut s = Strikes::default();
        for i in 0..4 {
            assert_eq!(s.fail(100 + i, 5, 900), None);
        }
        assert_eq!(s.current(104, 900), 4);
        assert_eq!(s.fail(105, 5, 900), Some(1005));
        assert_eq!(s, Strikes::default());
    }

    #[test]
    fn old_failures_are_forgotten() {
        let mut s = Strikes::default();
        for i in 0..4 {
            s.fail(100 + i, 5, 900);
        }
        assert_eq!(s.current(103 + 901, 900), 0);
        // The fifth failure, long after the others, does not lock.
        assert_eq!(s.fail(103 + 901, 5, 900), None);
        assert_eq!(s.count, 1);
    }

    #[test]
    fn ipv6_addresses_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        assert_eq!(
            address_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            address_key("192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }
}
