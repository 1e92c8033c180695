//! Sets of networks (parsed CIDRs) and client-address matching.

use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// A list of CIDR ranges; an address is in the set when any range holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetSet {
    nets: Vec<IpNetwork>,
}

impl NetSet {
    /// A set of these ranges.
    pub fn new(nets: Vec<IpNetwork>) -> NetSet {
        NetSet { nets }
    }

    /// True when `ip` (IPv4-mapped IPv6 read as IPv4) is in one of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = normalize(ip);
        self.nets.iter().any(|n| n.contains(ip))
    }

    /// True when the set has no ranges.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The ranges.
    pub fn ranges(&self) -> &[IpNetwork] {
        &self.nets
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are the IPv4 address they carry.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Why a network in the policy could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not an address or a CIDR at all.
    #[error("'{0}' is not a network address; write it like 203.0.113.0/24 or 2001:db8::/32")]
    NotANetwork(String),
    /// Host bits set: almost always a typo for a narrower range.
    #[error("'{text}' has host bits set; did you mean {network}/{prefix}?")]
    HostBits {
        /// As written.
        text: String,
        /// The network the prefix gives.
        network: IpAddr,
        /// The prefix length.
        prefix: u8,
    },
}

/// Parses one CIDR (or a bare address, read as a single host).
pub fn parse_cidr(text: &str) -> Result<IpNetwork, CidrError> {
    let text = text.trim();
    let net: IpNetwork = text
        .parse()
        .map_err(|_| CidrError::NotANetwork(text.to_string()))?;
    // A CIDR with host bits set (10.0.0.5/8) is almost always a typo for a narrower range.
    if net.network() != net.ip() {
        return Err(CidrError::HostBits {
            text: text.to_string(),
            network: net.network(),
            prefix: net.prefix(),
        });
    }
    Ok(match net {
        IpNetwork::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) if v6.prefix() >= 96 => {
                IpNetwork::new(IpAddr::V4(v4), v6.prefix() - 96).unwrap_or(net)
            }
            _ => net,
        },
        v4 => v4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_are_ipv4() {
        let set = NetSet::new(vec![parse_cidr("203.0.113.0/24").unwrap()]);
        assert!(set.contains("203.0.113.9".parse().unwrap()));
        assert!(set.contains("::ffff:203.0.113.9".parse().unwrap()));
        assert!(!set.contains("203.0.114.9".parse().unwrap()));
        assert!(!set.contains("2001:db8::1".parse().unwrap()));
        let mapped = NetSet::new(vec![parse_cidr("::ffff:198.51.100.0/120").unwrap()]);
        assert!(mapped.contains("198.51.100.7".parse().unwrap()));
    }

    #[test]
    fn bad_cidrs_are_explained() {
        assert!(parse_cidr("203.0.113.0/33").is_err());
        assert!(parse_cidr("office").is_err());
        assert!(
            parse_cidr("10.0.0.5/8")
                .unwrap_err()
                .to_string()
                .contains("10.0.0.0/8")
        );
        assert_eq!(
            parse_cidr("198.51.100.7").unwrap(),
            parse_cidr("198.51.100.7/32").unwrap()
        );
        assert!(parse_cidr("2001:db8::/32").is_ok());
    }
}
