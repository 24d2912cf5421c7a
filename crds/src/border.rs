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
