//! The few fields of Cluster API's own kinds (`cluster.x-k8s.io/v1beta2`) the provider reads:
//! typed read-only views (no crate for Cluster API types is in our package lists). Unknown
//! fields are ignored; these types are never written.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The API group of Cluster API core.
pub const GROUP: &str = "cluster.x-k8s.io";

/// A Cluster API Machine: the owner of a GroundworkMachine.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "Machine",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct MachineSpec {
    /// The Cluster the Machine belongs to.
    #[serde(default)]
    pub cluster_name: String,
    /// Where the bootstrap data is.
    #[serde(default)]
    pub bootstrap: Bootstrap,
    /// The infrastructure object of the Machine (a GroundworkMachine, for us).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infrastructure_ref: Option<ContractRef>,
    /// The failure domain the Machine must be placed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_domain: Option<String>,
}

/// A reference to an object of a contract (v1beta2: API group, kind, name).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContractRef {
    /// Kind of the object.
    #[serde(default)]
    pub kind: String,
    /// Name of the object, in the Machine's namespace.
    #[serde(default)]
    pub name: String,
}

/// A Machine's bootstrap.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bootstrap {
    /// The Secret (keys `value` and `format`) the bootstrap provider wrote, once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_secret_name: Option<String>,
}

/// A Cluster API Cluster: only whether it is paused.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cluster.x-k8s.io",
    version = "v1beta2",
    kind = "Cluster",
    namespaced,
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// Cluster API and its providers leave a paused cluster's objects alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}
