//! BorderRouter and BlackholeRoute: the edge routing side of the site.
//!
//! A [`BorderRouter`] is the one home of the local ASN, the router ID and our own prefixes;
//! every UpstreamLink export and every [`BlackholeRoute`] is validated against them. The edge
//! daemon (`groundwork-edge`) running on that router writes their `status`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A border router running the site's BGP speaker: its identity and the prefixes it may announce.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "groundwork.dev",
    version = "v1alpha1",
    kind = "BorderRouter",
    namespaced,
    status = "BorderRouterStatus",
    shortname = "br",
    category = "groundwork",
    printcolumn(name = "ASN", type_ = "integer", json_path = ".spec.localASN"),
    printcolumn(name = "Router-ID", type_ = "string", json_path = ".spec.routerID"),
    printcolumn(
        name = "Applied",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"ConfigApplied\")].status"
    ),
    printcolumn(
        name = "Config",
        type_ = "string",
        json_path = ".status.configHash",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.serviceAddressPools) || self.serviceAddressPools.all(p, p.cidrs.all(c, !isCIDR(c) || self.ownPrefixes.exists(o, isCIDR(o) && cidr(o).containsCIDR(c))))").message("every service address pool CIDR must lie inside one of ownPrefixes").field_path(".serviceAddressPools"))]
pub struct BorderRouterSpec {
    /// Our autonomous system number (1–4294967295, not 23456).
    #[serde(rename = "localASN")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 4294967295 && self != 23456").message("localASN must be in 1..4294967295 and not 23456 (AS_TRANS)"))]
    pub local_asn: u64,
    /// The BGP router ID: an IPv4 address, usually one of the router's own.
    #[serde(rename = "routerID")]
    #[x_kube(validation = Rule::new("isIP(self) && ip(self).family() == 4").message("routerID must be an IPv4 address such as 192.0.2.1"))]
    #[schemars(length(max = 15))]
    pub router_id: String,
    /// Our own prefixes (CIDR). They are originated by this router, and every export prefix
    /// and blackhole must lie inside one of them.
    #[x_kube(validation = Rule::new("self.all(p, isCIDR(p))").message("every own prefix must be a CIDR such as 203.0.113.0/24"))]
    #[schemars(length(min = 1, max = 64), inner(length(max = 49)))]
    pub own_prefixes: Vec<String>,
    /// Address pools for Services of type LoadBalancer with the class `groundwork.dev/border`
    /// (see docs/load-balancer.md). Every pool CIDR must lie inside `ownPrefixes` (checked at
    /// admission); each allocated address is announced as a /32 or /128 on every UpstreamLink
    /// of this router, with that link's export communities and prepends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub service_address_pools: Vec<ServiceAddressPool>,
    /// Networks (CIDR) directly attached to this router on which the nodes' InternalIP
    /// addresses live. A Service address is routed to the nodes that can serve it by static
    /// routes whose next hops are those nodes' InternalIPs (several nodes: ECMP); nodes whose
    /// InternalIP lies in none of these networks are never used as next hops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(n, isCIDR(n))").message("every node network must be a CIDR such as 10.20.0.0/24"))]
    #[schemars(length(max = 16), inner(length(max = 49)))]
    pub node_networks: Vec<String>,
}

/// A named pool of our own addresses handed to LoadBalancer Services.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAddressPool {
    /// The pool's name (a DNS label), which a Service may ask for with the
    /// `groundwork.dev/address-pool` annotation.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("name must be a DNS label such as public-web"))]
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The pool's addresses as CIDRs (IPv4 and IPv6 may mix); every address of a CIDR,
    /// network and broadcast included, is assignable, since each is routed as a host route.
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every pool CIDR must be a CIDR such as 203.0.113.64/28"))]
    #[schemars(length(min = 1, max = 16), inner(length(max = 49)))]
    pub cidrs: Vec<String>,
    /// Whether Services that name no pool get addresses from this one (default true); a pool
    /// with `autoAssign: false` serves only Services that name it.
    #[serde(default = "auto_assign_default")]
    pub auto_assign: bool,
}

fn auto_assign_default() -> bool {
    true
}

/// What the edge daemon observed on a border router.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BorderRouterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Hash of the BGP speaker configuration running on the router.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// When the configuration with `configHash` was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_at: Option<Time>,
    /// Conditions: ConfigApplied (the speaker runs the configuration derived from the API) and Ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// A remotely triggered blackhole (RTBH) request: ask the upstreams to drop traffic to one of
/// our host addresses, for example during a DDoS attack.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "groundwork.dev",
    version = "v1alpha1",
    kind = "BlackholeRoute",
    namespaced,
    status = "BlackholeRouteStatus",
    shortname = "bh",
    category = "groundwork",
    printcolumn(name = "Prefix", type_ = "string", json_path = ".spec.prefix"),
    printcolumn(name = "Router", type_ = "string", json_path = ".spec.routerRef"),
    printcolumn(name = "Announced", type_ = "boolean", json_path = ".status.announced"),
    printcolumn(name = "Expires", type_ = "date", json_path = ".spec.expiresAt"),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".spec.reason",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BlackholeRouteSpec {
    /// The host route to blackhole: a /32 or /128 inside the BorderRouter's own prefixes.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("prefix must be a CIDR such as 203.0.113.66/32"))]
    #[x_kube(validation = Rule::new("!isCIDR(self) || cidr(self).prefixLength() == (cidr(self).ip().family() == 4 ? 32 : 128)").message("prefix must be a host route (/32 or /128)"))]
    #[schemars(length(max = 49))]
    pub prefix: String,
    /// Name of the BorderRouter that announces it (same namespace).
    #[x_kube(validation = Rule::new("self.size() >= 1").message("routerRef must not be empty"))]
    #[schemars(length(max = 253))]
    pub router_ref: String,
    /// Names of the UpstreamLinks to announce it on; empty means every link of the router.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub links: Vec<String>,
    /// When the request ends: afterwards the route is withdrawn (the object stays, for the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// Why the blackhole was requested (ticket, attack description), for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 1024))]
    pub reason: String,
}

/// What the edge daemon observed about a blackhole request.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlackholeRouteStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Whether the blackhole is in the configuration running on the router.
    #[serde(default)]
    pub announced: bool,
    /// When it was last announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced_at: Option<Time>,
    /// Conditions: Announced (with reason Announced, Expired, BlackholeNotOwned, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
