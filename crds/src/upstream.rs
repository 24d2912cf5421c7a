//! UpstreamLink: one ISP circuit into the site and the BGP session over it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::common::SecretKeyRef;

/// One ISP circuit into the site: the circuit, the BGP session, what we accept and announce.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "groundwork.dev",
    version = "v1alpha1",
    kind = "UpstreamLink",
    namespaced,
    status = "UpstreamLinkStatus",
    shortname = "ul",
    category = "groundwork",
    printcolumn(name = "Provider", type_ = "string", json_path = ".spec.provider"),
    printcolumn(name = "Peer-ASN", type_ = "integer", json_path = ".spec.bgp.peerASN"),
    printcolumn(name = "Session", type_ = "string", json_path = ".status.sessionState"),
    printcolumn(
        name = "Routes-In",
        type_ = "integer",
        json_path = ".status.routesImported"
    ),
    printcolumn(
        name = "Routes-Out",
        type_ = "integer",
        json_path = ".status.routesExported"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamLinkSpec {
    /// What kind of link this is.
    #[serde(default)]
    pub role: LinkRole,
    /// The ISP or exchange, for humans and provider-specific communities.
    #[x_kube(validation = Rule::new("self.size() >= 1").message("provider must not be empty"))]
    #[schemars(length(max = 253))]
    pub provider: String,
    /// The physical circuit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit: Option<Circuit>,
    /// Name of the BorderRouter the circuit lands on (same namespace).
    #[x_kube(validation = Rule::new("self.size() >= 1").message("routerRef must not be empty"))]
    #[schemars(length(max = 253))]
    pub router_ref: String,
    /// Interface on the border router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// VLAN id on that interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 4094").message("vlan must be between 1 and 4094"))]
    pub vlan: Option<u32>,
    /// The BGP session.
    pub bgp: BgpSession,
    /// What we accept from the peer.
    #[serde(default)]
    pub import: ImportPolicy,
    /// What we announce to the peer.
    #[serde(default)]
    pub export: ExportPolicy,
    /// Traffic preference: Primary, or Backup (lower local preference, AS-path prepend).
    #[serde(default)]
    pub failover: FailoverRole,
    /// Up, Down, or Drain (graceful shutdown community, then down).
    #[serde(default)]
    pub admin_state: AdminState,
}

/// Kind of upstream link.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum LinkRole {
    /// Transit: the peer carries our traffic to the whole Internet.
    #[default]
    Transit,
    /// Private or public peering: the peer's own and customer routes only.
    Peering,
    /// An Internet exchange route server.
    RouteServer,
}

/// A physical circuit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Circuit {
    /// The provider's circuit id.
    pub id: String,
    /// Committed bandwidth in Mbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_mbps: Option<u32>,
    /// Port speed in Mbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_speed_mbps: Option<u32>,
    /// Cross-connect / patch panel reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_connect: Option<String>,
}

/// The BGP session of a link.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.ipv4) || has(self.ipv6)").message("at least one of ipv4 or ipv6 must be set"))]
#[x_kube(validation = Rule::new("self.keepaliveSeconds * 3 <= self.holdTimeSeconds || self.holdTimeSeconds == 0").message("keepaliveSeconds must be at most a third of holdTimeSeconds"))]
pub struct BgpSession {
    /// The peer's AS number (1–4294967295, not 23456).
    #[serde(rename = "peerASN")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 4294967295 && self != 23456").message("peerASN must be in 1..4294967295 and not 23456 (AS_TRANS)"))]
    pub peer_asn: u64,
    /// IPv4 session addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<SessionAddresses>,
    /// IPv6 session addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<SessionAddresses>,
    /// Hold time in seconds (0 disables keepalives, else at least 3).
    #[serde(default = "default_hold")]
    #[x_kube(validation = Rule::new("self == 0 || (self >= 3 && self <= 65535)").message("holdTimeSeconds must be 0 or between 3 and 65535"))]
    pub hold_time_seconds: u32,
    /// Keepalive interval in seconds.
    #[serde(default = "default_keepalive")]
    pub keepalive_seconds: u32,
    /// Bidirectional Forwarding Detection for sub-second failure detection.
    #[serde(default)]
    pub bfd: bool,
    /// eBGP multihop TTL; absent means directly connected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 255").message("multihop must be between 1 and 255"))]
    pub multihop: Option<u32>,
    /// Graceful restart.
    #[serde(default)]
    pub graceful_restart: bool,
    /// Secret key with the TCP-MD5 password (key defaults to `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Maximum number of prefixes accepted from the peer, per address family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prefix: Option<MaxPrefix>,
}

fn default_hold() -> u32 {
    90
}

fn default_keepalive() -> u32 {
    30
}

/// Addresses of one address family's session.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!isIP(self.localAddress) || !isIP(self.peerAddress) || ip(self.localAddress).family() == ip(self.peerAddress).family()").message("localAddress and peerAddress must be of the same family"))]
pub struct SessionAddresses {
    /// Our address on the link.
    #[x_kube(validation = Rule::new("isIP(self)").message("localAddress must be an IP address"))]
    #[schemars(length(max = 45))]
    pub local_address: String,
    /// The peer's address.
    #[x_kube(validation = Rule::new("isIP(self)").message("peerAddress must be an IP address"))]
    #[schemars(length(max = 45))]
    pub peer_address: String,
}

/// Maximum-prefix protection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaxPrefix {
    /// Largest number of accepted prefixes.
    #[x_kube(validation = Rule::new("self >= 1").message("maxPrefix.limit must be at least 1"))]
    pub limit: u32,
    /// What to do when the limit is exceeded.
    #[serde(default)]
    pub action: MaxPrefixAction,
}

/// Action when the max-prefix limit is exceeded.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum MaxPrefixAction {
    /// Shut the session down until an operator acts.
    #[default]
    Disable,
    /// Restart the session after a delay.
    Restart,
    /// Only warn.
    Warn,
    /// Drop routes beyond the limit.
    Block,
}

/// What we accept from the peer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.mode) || self.mode != 'PrefixList' || (has(self.prefixes) && size(self.prefixes) > 0)").message("import mode PrefixList needs at least one prefix"))]
pub struct ImportPolicy {
    /// Which routes to accept.
    #[serde(default)]
    pub mode: ImportMode,
    /// Prefixes accepted in PrefixList mode (CIDR; a prefix accepts its more-specifics up to /24 or /48).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(p, isCIDR(p))").message("every import prefix must be a CIDR"))]
    #[schemars(length(max = 256), inner(length(max = 49)))]
    pub prefixes: Vec<String>,
    /// Drop bogons (RFC 1918, documentation, default route unless DefaultOnly, …).
    #[serde(default = "yes")]
    pub bogon_filter: bool,
}

impl Default for ImportPolicy {
    fn default() -> Self {
        Self {
            mode: ImportMode::default(),
            prefixes: Vec::new(),
            bogon_filter: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// Zero is not serialized, so a status written by another field manager (the controller)
/// never claims `flapCount`, which the edge daemon owns.
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Which routes to accept from a peer.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum ImportMode {
    /// The default route only.
    #[default]
    DefaultOnly,
    /// The full table.
    Full,
    /// Only the listed prefixes.
    PrefixList,
    /// Nothing.
    None,
}

/// What we announce to a peer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportPolicy {
    /// Our prefixes to announce (each must lie inside the BorderRouter's own prefixes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(p, isCIDR(p))").message("every export prefix must be a CIDR such as 203.0.113.0/24"))]
    #[schemars(length(max = 256), inner(length(max = 49)))]
    pub prefixes: Vec<String>,
    /// BGP communities to attach, `ASN:value` or large `ASN:x:y`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(c, c.matches('^[0-9]+:[0-9]+(:[0-9]+)?$'))").message("communities must look like 65000:100 or 65000:1:2"))]
    #[schemars(length(max = 32), inner(length(max = 32)))]
    pub communities: Vec<String>,
    /// Times to prepend our ASN (backup links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self <= 10").message("prepend must be at most 10"))]
    pub prepend: Option<u32>,
    /// Local preference for routes learned on this link (overrides the failover default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_preference: Option<u32>,
}

/// Traffic preference of a link.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum FailoverRole {
    /// Preferred.
    #[default]
    Primary,
    /// Used when the primary is down.
    Backup,
}

/// Administrative state of a link.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum AdminState {
    /// The session should be established.
    #[default]
    Up,
    /// The session should be down.
    Down,
    /// Announce the graceful-shutdown community, then go down.
    Drain,
}

/// What was observed about a link.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamLinkStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// BGP FSM state: Idle, Connect, Active, OpenSent, OpenConfirm, Established.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_state: Option<String>,
    /// When the session last became Established (a timestamp, never an uptime).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub established_since: Option<Time>,
    /// The last error the speaker reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Times the session left Established.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flap_count: u32,
    /// Routes imported from the peer, all families.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes_imported: Option<u64>,
    /// Routes exported to the peer, all families.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes_exported: Option<u64>,
    /// Hash of the speaker configuration applied for this link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// Standard conditions: Ready, Reconciling, Stalled, ReferencesResolved, SessionEstablished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
