//! Rack: one physical rack, its power, its switches and its networks.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::server::StandbyPolicy;

/// A physical rack in a site. Servers reference it by name and declare the U they occupy.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "groundwork.dev",
    version = "v1alpha1",
    kind = "Rack",
    namespaced,
    status = "RackStatus",
    shortname = "rk",
    category = "groundwork",
    printcolumn(
        name = "Location",
        type_ = "string",
        json_path = ".status.locationSummary"
    ),
    printcolumn(name = "Height", type_ = "integer", json_path = ".spec.heightU"),
    printcolumn(name = "Servers", type_ = "integer", json_path = ".status.serverCount"),
    printcolumn(
        name = "Power-W",
        type_ = "integer",
        json_path = ".status.power.declaredWatts"
    ),
    printcolumn(
        name = "Budget-W",
        type_ = "integer",
        json_path = ".spec.power.budgetWatts"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RackSpec {
    /// Where the rack stands.
    pub location: Location,
    /// Height of the rack in rack units (U). Servers must fit between U1 and this.
    #[serde(default = "default_height")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("heightU must be between 1 and 100"))]
    pub height_u: u32,
    /// Power available to the rack.
    #[serde(default)]
    pub power: PowerSpec,
    /// The warm pool: whether the rack's servers wait powered on in the ramdisk when idle
    /// (each Server's `spec.standby` overrides the policy), and how many may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby: Option<RackStandby>,
    /// Failure-domain label value given to nodes in this rack (for topology spread), e.g. `rack-a01`:
    /// a Kubernetes label value (at most 63 letters, digits, `-`, `_` or `.`, starting and
    /// ending with a letter or digit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$')").message("failureDomain must be a label value: letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))]
    #[schemars(length(max = 63))]
    pub failure_domain: Option<String>,
    /// Top-of-rack switches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub tor_switches: Vec<TorSwitch>,
    /// The rack's networks: where servers netboot, where BMCs live, where nodes get addresses.
    pub networks: RackNetworks,
}

fn default_height() -> u32 {
    42
}

/// Where a rack stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// Site (building or datacenter) name.
    #[x_kube(validation = Rule::new("self.size() >= 1").message("site must not be empty"))]
    #[schemars(length(max = 253))]
    pub site: String,
    /// Room or hall inside the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// Row inside the room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row: Option<String>,
    /// Position inside the row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// The highest rack unit a device occupies when mounted with its lowest unit at `bottom_u`
/// and `height_u` units tall (a height of 0 counts as 1). The one place rack geometry is
/// computed: the Rack reconciler, the rack view and the kubectl plugin all use it.
pub fn top_unit(bottom_u: u32, height_u: u32) -> u32 {
    bottom_u.saturating_add(height_u.max(1) - 1)
}

impl Location {
    /// `site/room/row/position`, skipping what is absent (shown as a printer column).
    pub fn summary(&self) -> String {
        [
            Some(&self.site),
            self.room.as_ref(),
            self.row.as_ref(),
            self.position.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("/")
    }
}

/// Power available to a rack.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PowerSpec {
    /// Total power budget of the rack in watts; 0 means not declared (no budget check).
    #[serde(default)]
    pub budget_watts: u32,
    /// Power feeds (PDUs / circuits) into the rack.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub feeds: Vec<PowerFeed>,
}

/// A rack's warm pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RackStandby {
    /// The default for the rack's servers that set no `spec.standby`.
    #[serde(default)]
    pub policy: StandbyPolicy,
    /// At most this many of the rack's servers on standby at once (absent: as many as the
    /// power budget allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_servers: Option<u32>,
}

/// One power feed into a rack.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct PowerFeed {
    /// Name of the feed, e.g. `A` or `B`.
    pub name: String,
    /// Circuit or PDU identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit: Option<String>,
    /// Maximum load on this feed in watts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_watts: Option<u32>,
}

/// A top-of-rack switch.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TorSwitch {
    /// Name of the switch.
    pub name: String,
    /// Vendor model, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Management IP address of the switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self)").message("managementAddress must be an IP address"))]
    #[schemars(length(max = 45))]
    pub management_address: Option<String>,
    /// U the switch occupies, if it takes a slot the servers cannot use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("rackUnit must be at least 1"))]
    pub rack_unit: Option<u32>,
}

/// The networks of a rack.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RackNetworks {
    /// The provisioning network where servers netboot (DHCP, TFTP, HTTP boot). IPv4 only.
    pub provisioning: ProvisioningNetwork,
    /// The network the BMCs sit on (IPv4 or IPv6). For the record: the controller reaches
    /// each BMC at the address in its Server's `spec.bmc.address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc: Option<Subnet>,
    /// The network nodes get their addresses from once provisioned (an IP pool, IPv4 or IPv6;
    /// the installed OS gets the address, prefix, gateway and DNS through its network-config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeNetwork>,
}

/// How the boot services answer DHCP on the provisioning network.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum DhcpMode {
    /// Groundwork is the DHCP server of the network.
    #[default]
    Authoritative,
    /// Another DHCP server hands out addresses; Groundwork only adds boot options (proxyDHCP).
    Proxy,
}

/// Addresses at the start of a rack subnet kept for infrastructure (gateway, boot servers,
/// relays): the server in U`n` gets the subnet's address number `RESERVED_HEAD + n`, on the
/// provisioning network (its DHCP reservation) and, by preference, on the node network.
pub const RESERVED_HEAD: u32 = 10;

/// The provisioning network of a rack.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!isCIDR(self.subnet) || !has(self.gateway) || !isIP(self.gateway) || cidr(self.subnet).containsIP(ip(self.gateway))").message("gateway must be inside subnet"))]
#[x_kube(validation = Rule::new("!isCIDR(self.subnet) || !has(self.dhcpRange) || !isIP(self.dhcpRange.start) || !isIP(self.dhcpRange.end) || (cidr(self.subnet).containsIP(ip(self.dhcpRange.start)) && cidr(self.subnet).containsIP(ip(self.dhcpRange.end)))").message("dhcpRange must be inside subnet"))]
pub struct ProvisioningNetwork {
    /// The subnet in CIDR notation, e.g. `10.10.0.0/24`. IPv4 only: the boot services answer
    /// DHCPv4 and machines netboot over IPv4.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("subnet must be a CIDR such as 10.0.0.0/24"))]
    #[x_kube(validation = Rule::new("!isCIDR(self) || cidr(self).ip().family() == 4").message("the provisioning subnet must be IPv4: the boot services answer DHCPv4 only (the node and BMC networks may be IPv6)"))]
    #[schemars(length(max = 49))]
    pub subnet: String,
    /// Default gateway (the relay's address when the rack is reached through a DHCP relay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self)").message("gateway must be an IP address"))]
    #[schemars(length(max = 45))]
    pub gateway: Option<String>,
    /// Addresses handed out dynamically to machines that are not declared (discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp_range: Option<IpRange>,
    /// VLAN id of the network on the top-of-rack switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 4094").message("vlan must be between 1 and 4094"))]
    pub vlan: Option<u32>,
    /// Authoritative DHCP, or proxyDHCP beside an existing DHCP server.
    #[serde(default)]
    pub dhcp_mode: DhcpMode,
}

/// A plain subnet with an optional gateway.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!isCIDR(self.subnet) || !has(self.gateway) || !isIP(self.gateway) || cidr(self.subnet).containsIP(ip(self.gateway))").message("gateway must be inside subnet"))]
pub struct Subnet {
    /// The subnet in CIDR notation.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("subnet must be a CIDR such as 10.0.0.0/24"))]
    #[schemars(length(max = 49))]
    pub subnet: String,
    /// Default gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isIP(self)").message("gateway must be an IP address"))]
    #[schemars(length(max = 45))]
    pub gateway: Option<String>,
    /// VLAN id on the top-of-rack switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 4094").message("vlan must be between 1 and 4094"))]
    pub vlan: Option<u32>,
}

/// The node network: an IP pool provisioned servers get their addresses from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!isCIDR(self.subnet) || !isIP(self.gateway) || cidr(self.subnet).containsIP(ip(self.gateway))").message("gateway must be inside subnet"))]
pub struct NodeNetwork {
    /// The subnet in CIDR notation.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("subnet must be a CIDR such as 10.0.0.0/24"))]
    #[schemars(length(max = 49))]
    pub subnet: String,
    /// Default gateway of the nodes.
    #[x_kube(validation = Rule::new("isIP(self)").message("gateway must be an IP address"))]
    #[schemars(length(max = 45))]
    pub gateway: String,
    /// DNS servers given to the nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(a, isIP(a))").message("every dns entry must be an IP address"))]
    #[schemars(length(max = 8), inner(length(max = 45)))]
    pub dns: Vec<String>,
    /// Ranges inside the subnet that are never handed out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub reserved: Vec<IpRange>,
    /// VLAN id on the top-of-rack switch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 4094").message("vlan must be between 1 and 4094"))]
    pub vlan: Option<u32>,
}

/// An inclusive range of addresses.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!isIP(self.start) || !isIP(self.end) || ip(self.start).family() == ip(self.end).family()").message("start and end must be of the same address family"))]
pub struct IpRange {
    /// First address of the range.
    #[x_kube(validation = Rule::new("isIP(self)").message("start must be an IP address"))]
    #[schemars(length(max = 45))]
    pub start: String,
    /// Last address of the range (inclusive).
    #[x_kube(validation = Rule::new("isIP(self)").message("end must be an IP address"))]
    #[schemars(length(max = 45))]
    pub end: String,
}

/// What the controller observed about a rack.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RackStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `site/room/row/position` of the rack, for display.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_summary: Option<String>,
    /// Number of Servers that reference this rack.
    #[serde(default)]
    pub server_count: u32,
    /// Number of Servers per lifecycle state.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub servers_by_state: BTreeMap<String, u32>,
    /// Rack units occupied by servers.
    #[serde(default)]
    pub used_u: u32,
    /// The U occupancy map: which server sits where, bottom U first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<RackSlot>,
    /// Declared power against the budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<PowerUsage>,
    /// Usage of the node IP pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_pool: Option<IpPoolUsage>,
    /// Standard conditions: Ready, Reconciling, Stalled, LayoutValid, PowerWithinBudget,
    /// IPPoolAvailable, NetworksDistinct.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// One server's place in the rack.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct RackSlot {
    /// Lowest U the server occupies.
    pub bottom_u: u32,
    /// Height of the server in U.
    pub height_u: u32,
    /// Name of the Server.
    pub server: String,
    /// Lifecycle state of the Server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// Declared power of a rack's servers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PowerUsage {
    /// Sum of the servers' `maxPowerWatts`.
    pub declared_watts: u64,
    /// The rack's budget (from spec), 0 when not declared.
    pub budget_watts: u64,
}

/// The largest pool size status reports: 2^53 − 1, the largest integer every JSON client
/// (JavaScript dashboards included) reads exactly. An IPv6 node network of /75 or wider holds
/// more addresses than that; its `size` saturates here.
pub const MAX_POOL_SIZE: u64 = (1 << 53) - 1;

/// Usage of the node IP pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IpPoolUsage {
    /// Addresses the pool can hand out (subnet minus network, broadcast, gateway, DNS and
    /// reserved), saturating at 9007199254740991 (2^53 − 1) for wide IPv6 networks.
    pub size: u64,
    /// Addresses allocated to Servers.
    pub used: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_occupies_its_height_from_its_bottom_unit() {
        assert_eq!(top_unit(1, 2), 2);
        assert_eq!(top_unit(40, 1), 40);
        // A height of 0 still occupies its unit; no overflow at the edge of u32.
        assert_eq!(top_unit(7, 0), 7);
        assert_eq!(top_unit(u32::MAX, 4), u32::MAX);
    }
}
