//! The Cluster API infrastructure provider: `infrastructure.groundwork.dev/v1alpha1`.
//!
//! [`GroundworkCluster`], [`GroundworkMachine`] and [`GroundworkMachineTemplate`] follow the
//! Cluster API **v1beta2** InfraCluster, InfraMachine and InfraMachineTemplate contracts. Their
//! CRDs carry the contract label `cluster.x-k8s.io/v1beta2: v1alpha1` ([`CONTRACT_LABEL`]).
//!
//! **Why `infrastructure.groundwork.dev`** and not `infrastructure.cluster.x-k8s.io` (used by
//! providers under the Kubernetes SIGs) nor `groundwork.dev` (the site API):
//! - we own `groundwork.dev`; `*.x-k8s.io` groups belong to Kubernetes SIG projects;
//! - a group of its own keeps the Cluster API adapter apart from the site API: Cluster API core
//!   needs full read/write on the provider's kinds (the aggregated ClusterRole of the chart
//!   grants it on this group only), and must never get write access to Racks or Servers;
//! - the `infrastructure.` prefix says what the kinds are to anyone listing a cluster's groups,
//!   as every other infrastructure provider's group does.
//!
//! These objects live in the site's namespace (one namespace = one site, as for Racks and
//! Servers): a GroundworkMachine claims Servers of its own namespace, and the bootstrap data
//! Secret Cluster API writes there is what the claimed Server's `spec.userData` refers to.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::server::{CleaningMode, Image, RootDeviceHints};

/// The API group of the provider's kinds.
pub const GROUP: &str = "infrastructure.groundwork.dev";
/// The Cluster API contract label the provider's CRDs carry (contract version → our versions).
pub const CONTRACT_LABEL: (&str, &str) = ("cluster.x-k8s.io/v1beta2", "v1alpha1");
/// Finalizer on a GroundworkMachine holding a Server: the Server is released before it goes.
pub const MACHINE_FINALIZER: &str = "infrastructure.groundwork.dev/release";
/// The scheme of the provider IDs: `groundwork://<namespace>/<server>`.
pub const PROVIDER_ID_PREFIX: &str = "groundwork://";
/// Cluster API's pause annotation (on an infrastructure object, or its Cluster's `spec.paused`).
pub const CAPI_PAUSED: &str = "cluster.x-k8s.io/paused";
/// The label Cluster API puts on every object of a cluster: the Cluster's name.
pub const CAPI_CLUSTER_NAME: &str = "cluster.x-k8s.io/cluster-name";
/// The labels Cluster API puts on the infrastructure Machines a MachineDeployment or a
/// MachineSet makes: the peers a Machine without a failure domain is spread among.
pub const CAPI_PEER_LABELS: [&str; 2] = [
    "cluster.x-k8s.io/deployment-name",
    "cluster.x-k8s.io/set-name",
];

/// The provider ID of `server` in `namespace`, as Nodes and Machines carry it.
pub fn provider_id(namespace: &str, server: &str) -> String {
    format!("{PROVIDER_ID_PREFIX}{namespace}/{server}")
}

/// The infrastructure of one Cluster API cluster in a site: its control-plane endpoint and the
/// failure domains (the site's Racks, or a chosen subset) its Machines are spread over.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.groundwork.dev",
    version = "v1alpha1",
    kind = "GroundworkCluster",
    namespaced,
    status = "GroundworkClusterStatus",
    shortname = "gwc",
    category = "groundwork",
    category = "cluster-api",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".spec.controlPlaneEndpoint.host"
    ),
    printcolumn(
        name = "Provisioned",
        type_ = "boolean",
        json_path = ".status.initialization.provisioned"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.controlPlaneEndpoint) || has(self.controlPlaneEndpoint) && self.controlPlaneEndpoint == oldSelf.controlPlaneEndpoint").message("spec.controlPlaneEndpoint cannot change once set"))]
pub struct GroundworkClusterSpec {
    /// Where the cluster's API server is reached. Groundwork does not create load balancers:
    /// set it to the address in front of the control plane (a VIP, a DNS name, or the
    /// externally managed control plane's endpoint). Cannot change once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<ApiEndpoint>,
    /// Which Racks are the cluster's failure domains. Absent: every Rack of the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_domains: Option<FailureDomainSelection>,
}

/// A host and port.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiEndpoint {
    /// Host name or IP address.
    #[schemars(length(min = 1, max = 512))]
    pub host: String,
    /// TCP port.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("port must be between 1 and 65535"))]
    pub port: i32,
}

/// The Racks a cluster may place Machines in. A Rack's failure domain is its
/// `spec.failureDomain`, or its name when that is absent; Racks sharing a failure domain form
/// one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureDomainSelection {
    /// Racks whose labels match. Absent: every Rack of the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack_selector: Option<LabelSelector>,
    /// Failure domains that must not host control-plane Machines (Cluster API places control
    /// planes only where `controlPlane` is true).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100))]
    pub workers_only: Vec<String>,
}

/// What the provider observed about a GroundworkCluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroundworkClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Cluster API contract: `provisioned` is true once the cluster's infrastructure is ready
    /// (at least one failure domain holds Racks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<Initialization>,
    /// The failure domains (Cluster API v1beta2 shape), one per failure domain of the selected
    /// Racks, with the Racks and their site in `attributes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub failure_domains: Vec<FailureDomain>,
    /// Ready, Reconciling, Stalled, Paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Cluster API contract: whether the infrastructure object finished its initial provisioning.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Initialization {
    /// True once provisioned; Cluster API waits for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned: Option<bool>,
}

/// A failure domain (Cluster API v1beta2 `FailureDomain`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailureDomain {
    /// The failure domain's name: the Racks' `spec.failureDomain` (or the Rack's name).
    pub name: String,
    /// Whether control-plane Machines may be placed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<bool>,
    /// `racks` (comma-separated Rack names) and `site`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// One Cluster API Machine's server: which Servers of the site may be claimed for it and what
/// is installed on the one claimed. The provider claims a Server by writing its intent (image,
/// user-data, `consumerRef`) and releases it when this object goes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.groundwork.dev",
    version = "v1alpha1",
    kind = "GroundworkMachine",
    namespaced,
    status = "GroundworkMachineStatus",
    shortname = "gwm",
    category = "groundwork",
    category = "cluster-api",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".metadata.labels['cluster\\.x-k8s\\.io/cluster-name']"
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Server",
        type_ = "string",
        json_path = ".status.serverRef.name"
    ),
    printcolumn(name = "Domain", type_ = "string", json_path = ".status.failureDomain"),
    printcolumn(
        name = "ProviderID",
        type_ = "string",
        json_path = ".spec.providerID",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.providerID) || has(self.providerID) && self.providerID == oldSelf.providerID").message("spec.providerID cannot change once set"))]
pub struct GroundworkMachineSpec {
    /// `groundwork://<namespace>/<server>`: set by the provider once it claimed a Server (the
    /// Cluster API contract has the provider write it here); cannot change once set.
    #[serde(
        default,
        rename = "providerID",
        skip_serializing_if = "Option::is_none"
    )]
    #[x_kube(validation = Rule::new("self.startsWith('groundwork://')").message("providerID must be groundwork://<namespace>/<server>"))]
    #[schemars(length(max = 512))]
    pub provider_id: Option<String>,
    /// Only Servers whose labels match may be claimed. Absent: any Server of the site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_selector: Option<LabelSelector>,
    /// Minimums a Server's inspected hardware must meet (`status.hardware`). A Server never
    /// inspected meets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareRequirements>,
    /// The image installed on the claimed Server (its `spec.image`).
    pub image: Image,
    /// Which disk the image is written to (the Server's `spec.rootDeviceHints`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_device_hints: Option<RootDeviceHints>,
    /// What happens to the Server's disks when this Machine releases it (the Server's
    /// `spec.cleaning` while deprovisioning): `Metadata` (default) wipes partition tables and
    /// signatures of every disk, `Full` overwrites every disk, `Disabled` leaves them as they
    /// are. Keeping data disks while cleaning the root disk needs per-disk cleaning in the agent
    /// and is not offered yet: use `Disabled` to keep every disk.
    #[serde(default)]
    pub cleaning: CleaningMode,
}

/// Hardware minimums, compared with a Server's inspection (`status.hardware`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HardwareRequirements {
    /// At least this many logical CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cpus: Option<u32>,
    /// At least this much memory, in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_memory_gigabytes: Option<u32>,
    /// At least one disk of this size, in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_disk_gigabytes: Option<u32>,
    /// At least this many network interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_nics: Option<u32>,
}

/// Where a GroundworkMachine is in its life (each change is logged, an Event, and timed by
/// `stateSince`).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum MachineState {
    /// Looking for a Server that fits (the `ServerClaimed` condition says what is missing).
    #[default]
    Pending,
    /// A Server is claimed; waiting for Cluster API's bootstrap data Secret.
    WaitingForBootstrapData,
    /// The Server has its image and user-data and is being provisioned.
    Provisioning,
    /// The Server is Provisioned: `initialization.provisioned` is true.
    Provisioned,
    /// The Machine is going: its Server is being cleaned and returned to the pool.
    Releasing,
}

impl MachineState {
    /// The name the API stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::WaitingForBootstrapData => "WaitingForBootstrapData",
            Self::Provisioning => "Provisioning",
            Self::Provisioned => "Provisioned",
            Self::Releasing => "Releasing",
        }
    }
}

/// A reference to a Server in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerRef {
    /// Name of the Server.
    pub name: String,
}

/// An address of a Machine (Cluster API `MachineAddress`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MachineAddress {
    /// `Hostname`, `ExternalIP`, `InternalIP`, `ExternalDNS` or `InternalDNS`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The address.
    pub address: String,
}

/// What the provider observed about a GroundworkMachine.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroundworkMachineStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Where the Machine is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<MachineState>,
    /// When the Machine entered its current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_since: Option<Time>,
    /// The Server claimed for this Machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ref: Option<ServerRef>,
    /// The failure domain (Rack) of the claimed Server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_domain: Option<String>,
    /// Cluster API contract: `provisioned` is true once the Server is Provisioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization: Option<Initialization>,
    /// The Server's node address (`InternalIP`) and hostname (`Hostname`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<MachineAddress>,
    /// Ready (mirrored by Cluster API into the Machine's `InfrastructureReady`), Reconciling,
    /// Stalled, ServerClaimed, BootstrapDataReady, ServerProvisioned, Paused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Machines Cluster API stamps out of one template: `spec.template.spec` is a
/// GroundworkMachine's spec. Templates are immutable, as Cluster API expects.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "infrastructure.groundwork.dev",
    version = "v1alpha1",
    kind = "GroundworkMachineTemplate",
    namespaced,
    shortname = "gwmt",
    category = "groundwork",
    category = "cluster-api",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct GroundworkMachineTemplateSpec {
    /// The Machines' template.
    #[x_kube(validation = Rule::new("self == oldSelf").message("a GroundworkMachineTemplate is immutable: create a new one and point the MachineDeployment at it"))]
    pub template: GroundworkMachineTemplateResource,
}

/// The template of a GroundworkMachine.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroundworkMachineTemplateResource {
    /// The spec every GroundworkMachine made from this template gets.
    pub spec: GroundworkMachineSpec,
}
