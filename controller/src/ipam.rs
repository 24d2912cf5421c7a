//! IP pool arithmetic for a Rack's node network (pure).

use std::net::IpAddr;

use ipnet::IpNet;

/// Why a pool cannot be computed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    /// The subnet does not parse.
    #[error("subnet {0:?} is not a CIDR")]
    BadSubnet(String),
    /// An address does not parse.
    #[error("address {0:?} is not an IP address")]
    BadAddress(String),
    /// A reserved range ends before it starts.
    #[error("reserved range {0}-{1} ends before it starts")]
    InvertedRange(String, String),
}

/// A node network's usable addresses.
#[derive(Debug)]
pub struct Pool {
    net: IpNet,
    excluded: Vec<(u128, u128)>,
}

fn ordinal(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn parse_ip(s: &str) -> Result<IpAddr, IpamError> {
    s.parse().map_err(|_| IpamError::BadAddress(s.to_string()))
}

impl Pool {
    /// A pool over `subnet` without the network and broadcast addresses, the gateway, the DNS
    /// servers and the reserved ranges.
    pub fn new(
        subnet: &str,
        gateway: &str,
        dns: &[String],
        reserved: &[(String, String)],
    ) -> Result<Self, IpamError> {
        let net: IpNet = subnet
            .parse()
            .map_err(|_| IpamError::BadSubnet(subnet.to_string()))?;
        let mut excluded = Vec::new();
        for single in std::iter::once(gateway).chain(dns.iter().map(String::as_str)) {
            let o = ordinal(parse_ip(single)?);
            excluded.push((o, o));
        }
        for (start, end) in reserved {
            let (s, e) = (ordinal(parse_ip(start)?), ordinal(parse_ip(end)?));
            if e < s {
                return Err(IpamError::InvertedRange(start.clone(), end.clone()));
            }
            excluded.push((s, e));
        }
        Ok(Self { net, excluded })
    }

    /// First and last assignable ordinals (IPv4 skips network and broadcast below /31).
    fn bounds(&self) -> (u128, u128) {
        let (first, last) = (ordinal(self.net.network()), ordinal(self.net.broadcast()));
        match self.net {
            IpNet::V4(n) if n.prefix_len() < 31 => (first + 1, last - 1),
            IpNet::V6(_) => (first + 1, last),
            IpNet::V4(_) => (first, last),
        }
    }

    /// Number of addresses the pool can hand out.
    pub fn size(&self) -> u64 {
        let (lo, hi) = self.bounds();
        if hi < lo {
            return 0;
        }
        // Merge the exclusions clipped to the bounds, then subtract their total length.
        let mut ranges: Vec<(u128, u128)> = self
            .excluded
            .iter()
            .filter(|(s, e)| *e >= lo && *s <= hi)
            .map(|(s, e)| ((*s).max(lo), (*e).min(hi)))
            .collect();
        ranges.sort_unstable();
        let mut excluded: u128 = 0;
        let mut cursor: Option<u128> = None;
        for (s, e) in ranges {
            let s = match cursor {
                Some(c) if s <= c => c + 1,
                _ => s,
            };
            if s <= e {
                excluded += e - s + 1;
            }
            cursor = Some(cursor.map_or(e, |c| c.max(e)));
        }
        let total = hi - lo + 1 - excluded;
        u64::try_from(total).unwrap_or(u64::MAX)
    }

    /// Whether `address` is inside the subnet.
    pub fn contains(&self, address: &str) -> bool {
        address
            .parse::<IpAddr>()
            .is_ok_and(|ip| self.net.contains(&ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash24_minus_gateway_dns_reserved() {
        let pool = Pool::new(
            "10.1.0.0/24",
            "10.1.0.1",
            &["10.1.0.2".into()],
            &[
                ("10.1.0.1".into(), "10.1.0.10".into()),
                ("10.1.0.200".into(), "10.1.0.254".into()),
            ],
        )
        .unwrap();
        // 254 hosts, minus .1–.10 (gateway and DNS inside) and .200–.254.
        assert_eq!(pool.size(), 254 - 10 - 55);
    }

    #[test]
    fn rejects_inverted_and_garbage() {
        assert_eq!(
            Pool::new(
                "10.0.0.0/24",
                "10.0.0.1",
                &[],
                &[("10.0.0.9".into(), "10.0.0.3".into())]
            )
            .err(),
            Some(IpamError::InvertedRange(
                "10.0.0.9".into(),
                "10.0.0.3".into()
            ))
        );
        assert!(Pool::new("10.0.0.0/33", "10.0.0.1", &[], &[]).is_err());
    }

    #[test]
    fn ipv6_and_point_to_point() {
        assert_eq!(
            Pool::new("10.0.0.0/31", "10.0.0.0", &[], &[])
                .unwrap()
                .size(),
            1
        );
        let v6 = Pool::new("2001:db8::/120", "2001:db8::1", &[], &[]).unwrap();
        assert_eq!(v6.size(), 254);
        assert!(v6.contains("2001:db8::20"));
    }
}
