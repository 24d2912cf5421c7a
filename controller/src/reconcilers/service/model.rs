//! The plain facts the Service pipeline works on: families, pools, holders and requests.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;

/// An address family of a Service (`spec.ipFamilies`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// One pool of one BorderRouter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    /// `router/pool`, for messages.
    pub id: String,
    /// The pool's name (what the `groundwork.dev/address-pool` annotation names).
    pub name: String,
    /// Its networks (host bits cleared).
    pub nets: Vec<IpNet>,
    /// Whether Services naming no pool may use it.
    pub auto_assign: bool,
}

impl Pool {
    /// Whether `ip` lies in the pool.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(ip))
    }
}

/// Who may share an address with whom: Services with the same key and no port in common.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sharing {
    /// The `groundwork.dev/allow-shared-ip` annotation.
    pub key: Option<String>,
    /// (protocol, port) of every Service port.
    pub ports: BTreeSet<(String, i32)>,
}

impl Sharing {
    /// Whether two Services may hold the same address.
    pub fn compatible(&self, other: &Sharing) -> bool {
        self.key.is_some() && self.key == other.key && self.ports.is_disjoint(&other.ports)
    }
}

/// Another Service holding addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// `namespace/name`, for messages.
    pub service: String,
    /// The addresses it holds.
    pub addresses: Vec<IpAddr>,
    /// Its sharing terms.
    pub sharing: Sharing,
}

/// What one Service asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// One address per family, in this order.
    pub families: Vec<Family>,
    /// The pool it names, if any.
    pub pool: Option<String>,
    /// Addresses it requests (at most one per family).
    pub requested: Vec<IpAddr>,
    /// Addresses its status holds today (kept when still valid: stable across restarts).
    pub current: Vec<IpAddr>,
    /// Its sharing terms.
    pub sharing: Sharing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sharing_needs_the_same_key_and_distinct_ports() {
        let s = |key: Option<&str>, port: i32| Sharing {
            key: key.map(str::to_string),
            ports: [("TCP".to_string(), port)].into(),
        };
        assert!(s(Some("a"), 80).compatible(&s(Some("a"), 443)));
        assert!(!s(Some("a"), 80).compatible(&s(Some("a"), 80)));
        assert!(!s(Some("a"), 80).compatible(&s(Some("b"), 443)));
        assert!(!s(None, 80).compatible(&s(None, 443)));
    }
}
