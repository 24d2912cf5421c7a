//! What the DHCP server knows: each rack's provisioning network and the reservations derived
//! from the Servers. The controller rebuilds it from its caches, so every replica (and a
//! restarted one) answers a known machine identically. Discovery leases are the exception:
//! see [`Leases`].

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;

/// An Ethernet hardware address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Parses `52:54:00:12:34:56` (or with dashes), any case.
    pub fn parse(s: &str) -> Option<Self> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let p = parts.next()?;
            if p.len() != 2 {
                return None;
            }
            *byte = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(Self(out))
    }
}

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// How a rack's provisioning network gets DHCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// We hand out addresses and boot options.
    Authoritative,
    /// Another server hands out addresses; we answer PXE clients with boot options only.
    Proxy,
}

/// One rack's provisioning network.
#[derive(Clone, Debug, PartialEq)]
pub struct RackNet {
    /// `namespace/name` of the Rack (metric label, logs).
    pub id: String,
    /// The provisioning subnet.
    pub subnet: Ipv4Net,
    /// Router option for clients.
    pub gateway: Option<Ipv4Addr>,
    /// Dynamic range for undeclared machines (inclusive), if any.
    pub range: Option<(Ipv4Addr, Ipv4Addr)>,
    /// Authoritative or proxy.
    pub mode: Mode,
}

/// A declared machine's address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// `namespace/name` of the Rack the machine is mounted in.
    pub rack: String,
    /// Its provisioning address.
    pub address: Ipv4Addr,
    /// Host name option.
    pub hostname: String,
}

/// The racks and reservations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Site {
    /// Provisioning networks.
    pub racks: Vec<RackNet>,
    /// Reservations by boot MAC.
    pub reservations: HashMap<Mac, Reservation>,
}

impl Site {
    /// The racks whose provisioning subnet holds any of `addrs`, each once, in site order.
    /// More than one means the request cannot be attributed to a rack (overlapping subnets, or
    /// an interface carrying several racks' subnets): it must not be answered.
    pub fn racks_for(&self, addrs: impl IntoIterator<Item = Ipv4Addr> + Clone) -> Vec<&RackNet> {
        self.racks
            .iter()
            .filter(|r| addrs.clone().into_iter().any(|a| r.subnet.contains(&a)))
            .collect()
    }
}

/// Where a request came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ingress {
    /// Addresses of the interface the packet arrived on (their subnets pick the rack of a
    /// directly attached client).
    pub interface: Vec<Ipv4Net>,
    /// Whether it arrived on the proxyDHCP port (4011).
    pub proxy_port: bool,
}

/// Discovery leases handed out from the dynamic ranges. They live in this process's memory
/// only: a restarted controller or another replica may offer an undeclared machine a
/// different address at its next DISCOVER. The first choice is a hash of the MAC, so replicas
/// usually agree; leases are short so a disagreement heals at renewal. Declared machines never
/// use these.
#[derive(Debug, Default)]
pub struct Leases {
    by_mac: HashMap<Mac, (Ipv4Addr, Instant)>,
    by_addr: HashMap<Ipv4Addr, Mac>,
}

/// How long a discovery lease lasts.
pub const DISCOVERY_LEASE: Duration = Duration::from_secs(600);

impl Leases {
    /// The address for `mac` in `[start, end]`, avoiding reserved and leased addresses; None
    /// when the range is full.
    pub fn address(
        &mut self,
        mac: Mac,
        (start, end): (Ipv4Addr, Ipv4Addr),
        reserved: impl Fn(Ipv4Addr) -> bool,
        now: Instant,
    ) -> Option<Ipv4Addr> {
        let (lo, hi) = (u32::from(start), u32::from(end));
        if lo > hi {
            return None;
        }
        let in_range = |a: Ipv4Addr| (lo..=hi).contains(&u32::from(a));
        if let Some((addr, _)) = self.by_mac.get(&mac).copied()
            && in_range(addr)
        {
            self.by_mac.insert(mac, (addr, now + DISCOVERY_LEASE));
            return Some(addr);
        }
        let size = u64::from(hi - lo) + 1;
        let first = fnv(&mac.0) % size;
        for i in 0..size {
            let addr = Ipv4Addr::from(lo + ((first + i) % size) as u32);
            if reserved(addr) {
                continue;
            }
            let free = match self.by_addr.get(&addr) {
                None => true,
                Some(owner) => {
                    *owner == mac || self.by_mac.get(owner).is_none_or(|(_, exp)| *exp <= now)
                }
            };
            if free {
                if let Some(owner) = self.by_addr.insert(addr, mac)
                    && owner != mac
                {
                    self.by_mac.remove(&owner);
                }
                self.by_mac.insert(mac, (addr, now + DISCOVERY_LEASE));
                return Some(addr);
            }
        }
        None
    }

    /// Forgets `mac`'s lease (RELEASE / DECLINE).
    pub fn release(&mut self, mac: Mac) {
        if let Some((addr, _)) = self.by_mac.remove(&mac) {
            self.by_addr.remove(&addr);
        }
    }

    /// Number of leases held (expired ones included until reused).
    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    /// Whether no lease is held.
    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }
}

/// FNV-1a: a stable hash, the same in every replica and release.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> Mac {
        Mac([0x52, 0x54, 0, 0, 0, n])
    }

    #[test]
    fn mac_parses_and_prints() {
        let m = Mac::parse("52:54:00:AB:cd:01").unwrap();
        assert_eq!(m.to_string(), "52:54:00:ab:cd:01");
        assert_eq!(Mac::parse("52-54-00-ab-cd-01"), Some(m));
        assert!(Mac::parse("52:54:00:ab:cd").is_none());
        assert!(Mac::parse("52:54:00:ab:cd:01:02").is_none());
        assert!(Mac::parse("52:54:00:ab:cd:zz").is_none());
        assert!(Mac::parse("5:54:00:ab:cd:01").is_none());
    }

    #[test]
    fn leases_are_stable_distinct_and_bounded() {
        let range = (Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 12));
        let now = Instant::now();
        let mut l = Leases::default();
        let a = l.address(mac(1), range, |_| false, now).unwrap();
        assert_eq!(l.address(mac(1), range, |_| false, now), Some(a));
        let b = l.address(mac(2), range, |_| false, now).unwrap();
        let c = l.address(mac(3), range, |_| false, now).unwrap();
        assert!(a != b && b != c && a != c);
        assert_eq!(l.address(mac(4), range, |_| false, now), None, "range full");
        // Expired leases are reused.
        let later = now + DISCOVERY_LEASE + Duration::from_secs(1);
        assert!(l.address(mac(4), range, |_| false, later).is_some());
        // Reserved addresses are skipped.
        let mut l = Leases::default();
        let only = Ipv4Addr::new(10, 0, 0, 11);
        let got = l.address(mac(9), range, |a| a != only, now).unwrap();
        assert_eq!(got, only);
        l.release(mac(9));
        assert!(l.is_empty());
        // An inverted range hands out nothing.
        assert_eq!(l.address(mac(1), (range.1, range.0), |_| false, now), None);
    }

    #[test]
    fn racks_for_finds_every_rack_holding_the_address() {
        let rack = |id: &str, subnet: &str| RackNet {
            id: id.into(),
            subnet: subnet.parse().unwrap(),
            gateway: None,
            range: None,
            mode: Mode::Authoritative,
        };
        let site = Site {
            racks: vec![
                rack("ns/a", "10.0.0.0/24"),
                rack("ns/b", "10.0.1.0/24"),
                rack("ns/wide", "10.0.0.0/16"),
            ],
            reservations: HashMap::new(),
        };
        let ids = |addrs: &[Ipv4Addr]| -> Vec<String> {
            site.racks_for(addrs.iter().copied())
                .iter()
                .map(|r| r.id.clone())
                .collect()
        };
        assert_eq!(ids(&[Ipv4Addr::new(10, 0, 0, 9)]), ["ns/a", "ns/wide"]);
        assert_eq!(ids(&[Ipv4Addr::new(10, 0, 7, 9)]), ["ns/wide"]);
        assert!(ids(&[Ipv4Addr::new(10, 1, 0, 9)]).is_empty());
        // One rack reached through two addresses counts once.
        assert_eq!(
            ids(&[Ipv4Addr::new(10, 0, 9, 1), Ipv4Addr::new(10, 0, 9, 2)]),
            ["ns/wide"]
        );
    }
}
