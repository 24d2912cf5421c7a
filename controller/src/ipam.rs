//! IP pool arithmetic for a Rack's node network (pure), and the allocator that hands node
//! addresses to Servers: one address per Server, never the same address to two Servers, also
//! when several Servers start provisioning at once.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

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

    /// Number of addresses the pool can hand out (exact for any prefix, IPv6 /0 included).
    pub fn size(&self) -> u128 {
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
        hi - lo + 1 - excluded
    }

    /// The address with `ordinal`, in the pool's family.
    fn address(&self, ordinal: u128) -> IpAddr {
        match self.net {
            IpNet::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(
                u32::try_from(ordinal).unwrap_or(u32::MAX),
            )),
            IpNet::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(ordinal)),
        }
    }

    /// Whether the pool may hand out `ip` (inside the bounds, not excluded).
    pub fn assignable(&self, ip: IpAddr) -> bool {
        let (lo, hi) = self.bounds();
        let o = ordinal(ip);
        self.net.contains(&ip)
            && (lo..=hi).contains(&o)
            && !self.excluded.iter().any(|(s, e)| (*s..=*e).contains(&o))
    }

    /// The subnet's address number `n` (`10.0.0.0/24`, 15 → `10.0.0.15`).
    pub fn nth(&self, n: u32) -> Option<IpAddr> {
        let o = ordinal(self.net.network()).checked_add(u128::from(n))?;
        let ip = self.address(o);
        self.net.contains(&ip).then_some(ip)
    }

    /// The subnet's prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.net.prefix_len()
    }

    /// The lowest assignable address `taken` does not hold (scans at most 2^16 addresses).
    pub fn first_free(&self, taken: impl Fn(IpAddr) -> bool) -> Option<IpAddr> {
        let (lo, hi) = self.bounds();
        (lo..=hi)
            .take(1 << 16)
            .map(|o| self.address(o))
            .find(|ip| self.assignable(*ip) && !taken(*ip))
    }

    /// Whether `address` is inside the subnet.
    pub fn contains(&self, address: &str) -> bool {
        address
            .parse::<IpAddr>()
            .is_ok_and(|ip| self.net.contains(&ip))
    }
}

/// Whether two networks share an address (one holds the other's first address).
pub fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Why no address was allocated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocateError {
    /// The pool does not compute.
    #[error(transparent)]
    Pool(#[from] IpamError),
    /// Every assignable address is taken.
    #[error("the node IP pool {0} has no free address")]
    Exhausted(String),
}

impl AllocateError {
    /// CamelCase reason for conditions and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Pool(_) => "InvalidIPPool",
            Self::Exhausted(_) => "IPPoolExhausted",
        }
    }
}

/// Who holds which node address, per pool (`namespace/rack`). Seeded from the addresses the
/// Servers' status records (the cache) on every call and kept in memory between a grant and
/// its status write, so two concurrent grants never collide. One per controller process; only
/// the leader allocates.
#[derive(Debug, Default)]
pub struct Allocator {
    granted: Mutex<BTreeMap<String, BTreeMap<IpAddr, String>>>,
}

impl Allocator {
    /// The address of `holder` (a Server UID) in `pool_id`: the one it already holds, else
    /// `preferred` when assignable and free, else the lowest free one. `recorded` lists the
    /// (address, holder) pairs the Servers' status records.
    pub fn allocate(
        &self,
        pool_id: &str,
        pool: &Pool,
        holder: &str,
        preferred: Option<IpAddr>,
        recorded: &[(IpAddr, String)],
    ) -> Result<IpAddr, AllocateError> {
        let mut all = self
            .granted
            .lock()
            .map_err(|_| AllocateError::Exhausted(pool_id.to_string()))?;
        let granted = all.entry(pool_id.to_string()).or_default();
        for (ip, h) in recorded {
            granted.entry(*ip).or_insert_with(|| h.clone());
        }
        if let Some((ip, _)) = granted.iter().find(|(_, h)| *h == holder) {
            return Ok(*ip);
        }
        let free = |ip: IpAddr| pool.assignable(ip) && !granted.contains_key(&ip);
        let ip = preferred
            .filter(|ip| free(*ip))
            .or_else(|| pool.first_free(|ip| granted.contains_key(&ip)))
            .ok_or_else(|| AllocateError::Exhausted(pool_id.to_string()))?;
        granted.insert(ip, holder.to_string());
        Ok(ip)
    }

    /// Releases whatever `holder` holds in any pool.
    pub fn release(&self, holder: &str) {
        if let Ok(mut all) = self.granted.lock() {
            for granted in all.values_mut() {
                granted.retain(|_, h| h != holder);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_prefer_the_rack_unit_never_collide_and_are_released() {
        let pool = Pool::new(
            "10.20.0.0/28",
            "10.20.0.1",
            &[],
            &[("10.20.0.2".into(), "10.20.0.9".into())],
        )
        .unwrap();
        let a = Allocator::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(pool.nth(15), Some(ip("10.20.0.15")));
        assert_eq!(pool.nth(16), None);
        // Preferred and free.
        assert_eq!(
            a.allocate("p", &pool, "x", Some(ip("10.20.0.11")), &[]),
            Ok(ip("10.20.0.11"))
        );
        // Same holder again: the same address, whatever it prefers now.
        assert_eq!(
            a.allocate("p", &pool, "x", Some(ip("10.20.0.12")), &[]),
            Ok(ip("10.20.0.11"))
        );
        // Preferred is taken (by status) or excluded: the lowest free one.
        assert_eq!(
            a.allocate(
                "p",
                &pool,
                "y",
                Some(ip("10.20.0.11")),
                &[(ip("10.20.0.10"), "z".into())]
            ),
            Ok(ip("10.20.0.12"))
        );
        assert_eq!(
            a.allocate("p", &pool, "w", Some(ip("10.20.0.3")), &[]),
            Ok(ip("10.20.0.13"))
        );
        a.allocate("p", &pool, "v", None, &[]).unwrap(); // .14
        assert_eq!(
            a.allocate("p", &pool, "u", None, &[]).unwrap_err().reason(),
            "IPPoolExhausted"
        );
        a.release("y");
        assert_eq!(a.allocate("p", &pool, "u", None, &[]), Ok(ip("10.20.0.12")));
    }

    #[test]
    fn concurrent_allocations_get_distinct_addresses() {
        let pool = std::sync::Arc::new(Pool::new("10.30.0.0/24", "10.30.0.1", &[], &[]).unwrap());
        let a = std::sync::Arc::new(Allocator::default());
        let threads: Vec<_> = (0..64)
            .map(|i| {
                let (a, pool) = (a.clone(), pool.clone());
                std::thread::spawn(move || {
                    // Everyone prefers the same address.
                    a.allocate("p", &pool, &format!("s{i}"), pool.nth(20), &[])
                        .unwrap()
                })
            })
            .collect();
        let mut got: Vec<IpAddr> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 64);
    }

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

    #[test]
    fn wide_ipv6_pools_are_counted_exactly() {
        // A /64 without its subnet-router anycast address and gateway.
        let v6 = Pool::new("2001:db8:10::/64", "2001:db8:10::1", &[], &[]).unwrap();
        assert_eq!(v6.size(), (1u128 << 64) - 2);
        let all = Pool::new("::/0", "::1", &[], &[]).unwrap();
        assert_eq!(all.size(), u128::MAX - 1);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(v6.nth(15), Some(ip("2001:db8:10::f")));
        assert_eq!(v6.first_free(|_| false), Some(ip("2001:db8:10::2")));
    }

    #[test]
    fn overlap_is_shared_addresses_in_either_direction() {
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(overlap(&net("10.0.0.0/24"), &net("10.0.0.0/24")));
        assert!(overlap(&net("10.0.0.0/16"), &net("10.0.5.0/24")));
        assert!(overlap(&net("10.0.5.0/24"), &net("10.0.0.0/16")));
        assert!(!overlap(&net("10.0.0.0/24"), &net("10.0.1.0/24")));
        assert!(!overlap(&net("10.0.0.0/24"), &net("2001:db8::/64")));
        assert!(overlap(&net("2001:db8::/48"), &net("2001:db8:0:1::/64")));
    }
}
