//! The plain input model: what the edge daemon wants the border router to do.
//!
//! Nothing here knows about Kubernetes; the edge daemon maps `BorderRouter`,
//! `UpstreamLink` and `BlackholeRoute` objects onto these structs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Everything one border router should run: its identity, the prefixes it
/// originates, its upstream links, the active blackhole (RTBH) requests and the
/// LoadBalancer Service addresses it routes to the nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterConfig {
    /// Our autonomous system number.
    pub local_asn: u32,
    /// The BGP router ID.
    pub router_id: Ipv4Addr,
    /// Our own prefixes: originated as `unreachable` static routes; every
    /// export and blackhole must lie inside one of them.
    pub own_prefixes: Vec<IpNet>,
    /// Upstream links (one BGP session per address family each).
    pub links: Vec<Link>,
    /// Remotely triggered blackhole requests.
    pub blackholes: Vec<Blackhole>,
    /// Service addresses routed to the nodes that serve them and announced on
    /// every link with the link's export communities and prepends.
    #[serde(default)]
    pub service_routes: Vec<ServiceRoute>,
}

/// What the far end of a link is to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LinkRole {
    /// An upstream that sells us transit (we are its customer).
    Transit,
    /// A bilateral settlement-free peer.
    Peering,
    /// An internet exchange route server (we are its client).
    RouteServer,
}

/// A local/peer address pair of one address family on a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressPair<A> {
    /// Our address on the link (also the BGP source address).
    pub local: A,
    /// The neighbor's address.
    pub peer: A,
}

/// A TCP-MD5 password. `Debug` never shows it; it is only ever written into
/// the 0600 secrets file that the main configuration includes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself: only for writing the secrets file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Which routes we accept from a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImportMode {
    /// Only the default route (0.0.0.0/0, ::/0).
    DefaultOnly,
    /// The full table (minus bogons when `bogon_filter` is on).
    Full,
    /// Only the exact prefixes listed in `prefixes`.
    PrefixList,
    /// Nothing.
    None,
}

/// Import policy of a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportPolicy {
    /// What to accept.
    pub mode: ImportMode,
    /// Prefixes accepted in [`ImportMode::PrefixList`] (exact match).
    #[serde(default)]
    pub prefixes: Vec<IpNet>,
    /// Reject bogon prefixes, too specific/too short prefixes and bogon ASNs in
    /// the AS path (applies to `Full` and `PrefixList`).
    #[serde(default)]
    pub bogon_filter: bool,
}

impl Default for ImportPolicy {
    fn default() -> Self {
        Self {
            mode: ImportMode::DefaultOnly,
            prefixes: Vec::new(),
            bogon_filter: true,
        }
    }
}

/// What BIRD does when a link sends more routes than the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaxPrefixAction {
    /// Shut the session down and keep it down until an operator acts.
    Disable,
    /// Shut the session down and restart it after the error wait time.
    Restart,
    /// Log a warning only.
    Warn,
    /// Keep the session, drop routes beyond the limit.
    Block,
}

/// A max-prefix guard (BIRD `import limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaxPrefix {
    /// Maximum number of imported routes per address family.
    pub limit: u32,
    /// What to do when it is exceeded.
    pub action: MaxPrefixAction,
}

/// A BGP community: standard `a:b` (RFC 1997) or large `a:b:c` (RFC 8092).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Community {
    /// A standard community `asn:value`.
    Standard(u16, u16),
    /// A large community `global:local1:local2`.
    Large(u32, u32, u32),
}

impl Community {
    /// RFC 8326 GRACEFUL_SHUTDOWN (65535:0).
    pub const GRACEFUL_SHUTDOWN: Community = Community::Standard(65535, 0);
    /// RFC 7999 BLACKHOLE (65535:666).
    pub const BLACKHOLE: Community = Community::Standard(65535, 666);
    /// RFC 1997 NO_EXPORT (65535:65281).
    pub const NO_EXPORT: Community = Community::Standard(65535, 65281);
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Community::Standard(a, b) => write!(f, "{a}:{b}"),
            Community::Large(a, b, c) => write!(f, "{a}:{b}:{c}"),
        }
    }
}

/// A community string that is neither `a:b` (16-bit parts) nor `a:b:c` (32-bit parts).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid community {0:?}: expected a:b (0-65535) or a:b:c (0-4294967295)")]
pub struct CommunityParseError(pub String);

impl FromStr for Community {
    type Err = CommunityParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CommunityParseError(s.to_string());
        let parts: Vec<&str> = s.trim().split(':').collect();
        match parts.as_slice() {
            [a, b] => Ok(Community::Standard(
                a.parse().map_err(|_| err())?,
                b.parse().map_err(|_| err())?,
            )),
            [a, b, c] => Ok(Community::Large(
                a.parse().map_err(|_| err())?,
                b.parse().map_err(|_| err())?,
                c.parse().map_err(|_| err())?,
            )),
            _ => Err(err()),
        }
    }
}

impl Serialize for Community {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Community {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What we announce on a link.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportPolicy {
    /// Our prefixes to announce (each inside one of `own_prefixes`).
    #[serde(default)]
    pub prefixes: Vec<IpNet>,
    /// Communities attached to every announced prefix.
    #[serde(default)]
    pub communities: Vec<Community>,
    /// Extra copies of our ASN prepended to the AS path. `None` means 0 for a
    /// primary link and [`DEFAULT_BACKUP_PREPEND`] for a backup link.
    #[serde(default)]
    pub prepend: Option<u8>,
    /// LOCAL_PREF given to routes learned over this link. `None` means
    /// [`DEFAULT_PRIMARY_LOCAL_PREF`] or [`DEFAULT_BACKUP_LOCAL_PREF`].
    #[serde(default)]
    pub local_preference: Option<u32>,
}

/// Prepend count used on a backup link when `prepend` is not set.
pub const DEFAULT_BACKUP_PREPEND: u8 = 3;
/// LOCAL_PREF of routes learned over a primary link when not set.
pub const DEFAULT_PRIMARY_LOCAL_PREF: u32 = 100;
/// LOCAL_PREF of routes learned over a backup link when not set.
pub const DEFAULT_BACKUP_LOCAL_PREF: u32 = 50;

/// Failover preference of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failover {
    /// Preferred in both directions.
    #[default]
    Primary,
    /// Less preferred: lower LOCAL_PREF inbound, AS-path prepend outbound.
    Backup,
}

/// Administrative state of a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdminState {
    /// Normal operation.
    #[default]
    Up,
    /// Session configured but disabled.
    Down,
    /// Graceful shutdown (RFC 8326): exports carry 65535:0 and routes learned
    /// over the link get LOCAL_PREF 0, so traffic moves away before a shutdown.
    Drain,
}

/// One upstream circuit with its BGP session(s).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// A DNS-1123 label (the UpstreamLink name); sanitized into BIRD names.
    pub name: String,
    /// What the far end is to us.
    pub role: LinkRole,
    /// The neighbor's ASN.
    pub peer_asn: u32,
    /// IPv4 session addresses, if the link has an IPv4 session.
    #[serde(default)]
    pub ipv4: Option<AddressPair<Ipv4Addr>>,
    /// IPv6 session addresses, if the link has an IPv6 session.
    #[serde(default)]
    pub ipv6: Option<AddressPair<Ipv6Addr>>,
    /// BGP hold time in seconds (0, or 3 and more).
    pub hold_time: u16,
    /// BGP keepalive interval in seconds (below the hold time).
    pub keepalive: u16,
    /// Run BFD with the neighbor.
    #[serde(default)]
    pub bfd: bool,
    /// eBGP multihop TTL; `None` means a directly connected neighbor.
    #[serde(default)]
    pub multihop: Option<u8>,
    /// Graceful restart (RFC 4724).
    #[serde(default)]
    pub graceful_restart: bool,
    /// TCP-MD5 password.
    #[serde(default)]
    pub password: Option<Password>,
    /// What to accept.
    #[serde(default)]
    pub import: ImportPolicy,
    /// Max-prefix guard.
    #[serde(default)]
    pub max_prefix: Option<MaxPrefix>,
    /// What to announce.
    #[serde(default)]
    pub export: ExportPolicy,
    /// Failover preference.
    #[serde(default)]
    pub failover: Failover,
    /// Administrative state.
    #[serde(default)]
    pub admin_state: AdminState,
}

/// A remotely triggered blackhole request for one of our host addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blackhole {
    /// A /32 or /128 inside our own prefixes.
    pub prefix: IpNet,
    /// Link names to announce it on; empty means all links.
    #[serde(default)]
    pub links: Vec<String>,
    /// Communities added to BLACKHOLE and NO_EXPORT (e.g. a provider's own RTBH community).
    #[serde(default)]
    pub extra_communities: Vec<Community>,
}

/// One LoadBalancer Service address: a host route inside our own prefixes,
/// forwarded to the nodes that can serve it (equal-cost multipath) and
/// announced on every link. A blackhole for the same prefix wins: the service
/// route is then neither installed nor announced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRoute {
    /// A /32 or /128 inside our own prefixes.
    pub prefix: IpNet,
    /// Node addresses of the prefix's family on networks directly attached to
    /// the router (at least one); BIRD forwards to all of them.
    pub next_hops: Vec<IpAddr>,
}

/// An address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of a prefix.
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    /// `"v4"` or `"v6"`, as used in BIRD object names.
    pub fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }

    /// BIRD's channel keyword: `ipv4` or `ipv6`.
    pub fn channel(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

impl Link {
    /// The families this link has sessions for, v4 first.
    pub fn families(&self) -> Vec<Family> {
        let mut out = Vec::new();
        if self.ipv4.is_some() {
            out.push(Family::V4);
        }
        if self.ipv6.is_some() {
            out.push(Family::V6);
        }
        out
    }

    /// The effective AS-path prepend count (see [`ExportPolicy::prepend`]).
    pub fn effective_prepend(&self) -> u8 {
        match (self.export.prepend, self.failover) {
            (Some(n), _) => n,
            (None, Failover::Primary) => 0,
            (None, Failover::Backup) => DEFAULT_BACKUP_PREPEND,
        }
    }

    /// The effective LOCAL_PREF for routes learned here (see [`ExportPolicy::local_preference`]).
    pub fn effective_local_pref(&self) -> u32 {
        match (self.export.local_preference, self.failover) {
            (Some(n), _) => n,
            (None, Failover::Primary) => DEFAULT_PRIMARY_LOCAL_PREF,
            (None, Failover::Backup) => DEFAULT_BACKUP_LOCAL_PREF,
        }
    }
}
