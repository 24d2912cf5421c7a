//! Server: one machine, its BMC, how it boots and what should be installed on it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::common::{SecretKeyRef, SecretRef};

/// CEL rule on a Server's `metadata.name`: the name becomes the installed OS's hostname (DHCP
/// option 12, NoCloud `local-hostname`) and its Kubernetes node's name, so it must be one
/// RFC 1123 DNS label. [`crate::crds`] declares it in the root schema.
pub const NAME_RULE: &str = "self.size() <= 63 && self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')";
/// The message of [`NAME_RULE`].
pub const NAME_MESSAGE: &str = "a Server's name becomes its hostname: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit (no dots)";

/// One machine. `spec` says what it should be; the controller reports what it is in `status`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "groundwork.dev",
    version = "v1alpha1",
    kind = "Server",
    namespaced,
    status = "ServerStatus",
    shortname = "srv",
    category = "groundwork",
    printcolumn(name = "Rack", type_ = "string", json_path = ".spec.rackRef.name"),
    printcolumn(name = "U", type_ = "integer", json_path = ".spec.rackUnit"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Power", type_ = "string", json_path = ".status.powerState"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.state) || !(oldSelf.status.state in ['Provisioning', 'Provisioned', 'Deprovisioning']) || (has(self.spec.bootMACAddress) == has(oldSelf.spec.bootMACAddress) && (!has(self.spec.bootMACAddress) || self.spec.bootMACAddress == oldSelf.spec.bootMACAddress))").message("spec.bootMACAddress cannot change while the server is provisioned; deprovision it first"),
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.state) || !(oldSelf.status.state in ['Provisioning', 'Provisioned', 'Deprovisioning']) || (has(self.spec.rackRef) == has(oldSelf.spec.rackRef) && (!has(self.spec.rackRef) || self.spec.rackRef.name == oldSelf.spec.rackRef.name))").message("spec.rackRef cannot change while the server is provisioned; deprovision it first"),
    printcolumn(name = "Consumer", type_ = "string", json_path = ".spec.consumerRef.name", priority = 1)
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.rackRef) == has(self.rackUnit)").message("rackRef and rackUnit must be set together"))]
#[x_kube(validation = Rule::new("!has(self.image) || !self.externallyProvisioned").message("an externally provisioned server is never imaged: remove image or externallyProvisioned"))]
#[x_kube(validation = Rule::new("!has(self.standby) || self.standby != 'Standby' || !self.externallyProvisioned").message("an externally provisioned server never waits in the ramdisk: remove standby or externallyProvisioned"))]
#[x_kube(validation = Rule::new("!has(oldSelf.consumerRef) || !has(self.consumerRef) || self.consumerRef.uid == oldSelf.consumerRef.uid").message("spec.consumerRef cannot move to another consumer: release the server (remove consumerRef) first"))]
pub struct ServerSpec {
    /// The Rack the server is mounted in (same namespace). Absent for discovered machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack_ref: Option<RackRef>,
    /// Lowest rack unit the server occupies (U1 is the bottom of the rack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("rackUnit must be at least 1"))]
    pub rack_unit: Option<u32>,
    /// Height of the server in rack units.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 20").message("heightU must be between 1 and 20"))]
    pub height_u: u32,
    /// How to reach the server's baseboard management controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc: Option<BmcSpec>,
    /// MAC address of the NIC the server network-boots from, e.g. `52:54:00:12:34:56`.
    #[serde(
        default,
        rename = "bootMACAddress",
        skip_serializing_if = "Option::is_none"
    )]
    #[x_kube(validation = Rule::new("self.matches('^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$')").message("bootMACAddress must be a MAC address such as 52:54:00:12:34:56"))]
    #[schemars(length(max = 17))]
    pub boot_mac_address: Option<String>,
    /// Desired power state: true powers the server on, false off.
    #[serde(default)]
    pub online: bool,
    /// Firmware boot mode.
    #[serde(default)]
    pub boot_mode: BootMode,
    /// The image to install. Setting it provisions the server; removing it deprovisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Image>,
    /// Which disk the image is written to; the smallest disk matching every hint wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_device_hints: Option<RootDeviceHints>,
    /// Secret key holding cloud-init user-data (key defaults to `userData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<SecretKeyRef>,
    /// Secret key holding cloud-init network-config (key defaults to `networkData`); generated
    /// from the Rack's node network when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_data: Option<SecretKeyRef>,
    /// What happens to the disks when the server is deprovisioned.
    #[serde(default)]
    pub cleaning: CleaningMode,
    /// The server was installed by other means: adopt it, never write its disks.
    #[serde(default)]
    pub externally_provisioned: bool,
    /// Maximum power draw in watts, counted against the Rack's budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_power_watts: Option<u32>,
    /// Labels and taints the server's Kubernetes node gets when it joins a cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeTemplate>,
    /// Whether the server waits powered on in the ramdisk (state `Standby`) after inspection
    /// and after cleaning, so that setting `image` provisions it without a power cycle and
    /// boots the installed OS with kexec. Absent: the Rack's `spec.standby.policy`. A standby
    /// server on a Rack with a power budget needs `maxPowerWatts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby: Option<StandbyPolicy>,
    /// Who uses the server: set by whoever claims it (the Cluster API provider, for a
    /// GroundworkMachine) and removed when it is released. A claimed server is never claimed
    /// by anyone else; the reference cannot move to another consumer without being removed
    /// first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_ref: Option<ConsumerRef>,
}

/// Whether a server waits warm in the ramdisk when it has nothing to do.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum StandbyPolicy {
    /// Power off when idle (state `Available`).
    #[default]
    Off,
    /// Stay powered on in the ramdisk, inspected and clean, its agent waiting for a task
    /// (state `Standby`), as far as the Rack's power budget and standby limit allow.
    Standby,
}

impl StandbyPolicy {
    /// The effective policy: the Server's own, else its Rack's, else Off.
    pub fn effective(server: Option<Self>, rack: Option<Self>) -> Self {
        server.or(rack).unwrap_or_default()
    }
}

/// The object a Server is claimed by.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerRef {
    /// API version of the consumer, e.g. `infrastructure.groundwork.dev/v1alpha1`.
    #[schemars(length(min = 1, max = 253))]
    pub api_version: String,
    /// Kind of the consumer, e.g. `GroundworkMachine`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Name of the consumer, in the Server's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// UID of the consumer: a consumer deleted and created again under the same name is
    /// another consumer.
    #[schemars(length(min = 1, max = 64))]
    pub uid: String,
}

fn one() -> u32 {
    1
}

/// A reference to a Rack in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RackRef {
    /// Name of the Rack.
    #[x_kube(validation = Rule::new("self.size() >= 1").message("rackRef.name must not be empty"))]
    #[schemars(length(max = 253))]
    pub name: String,
}

/// How to reach a BMC.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.disableCertificateVerification) && self.disableCertificateVerification && has(self.caBundleSecretRef))").message("caBundleSecretRef has no effect when disableCertificateVerification is true"))]
pub struct BmcSpec {
    /// BMC URL: `redfish://host/redfish/v1/Systems/ID` (HTTPS), `redfish+http://…`,
    /// `redfish+https://…`, or `ipmi://host[:port]`.
    #[x_kube(validation = Rule::new("self.matches('^(redfish|redfish\\\\+http|redfish\\\\+https|ipmi)://[^/?#]+')").message("address must start with redfish://, redfish+http://, redfish+https:// or ipmi:// followed by a host"))]
    #[schemars(length(max = 2048))]
    pub address: String,
    /// Secret with the keys `username` and `password`.
    pub credentials_secret_ref: SecretRef,
    /// Skip TLS certificate verification for this BMC (explicit opt-out; logged as a warning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable_certificate_verification: Option<bool>,
    /// Secret key holding a PEM CA bundle to verify the BMC with (key defaults to `ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle_secret_ref: Option<SecretKeyRef>,
}

/// Firmware boot mode.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum BootMode {
    /// UEFI. Secure Boot is left as the firmware has it: a boot never turns it off.
    #[default]
    #[serde(rename = "UEFI")]
    Uefi,
    /// UEFI with Secure Boot: the controller turns Secure Boot on through the BMC before a
    /// boot when it is off (and says so in an Event).
    #[serde(rename = "UEFISecureBoot")]
    UefiSecureBoot,
    /// Legacy BIOS: the controller turns Secure Boot off through the BMC before a boot when
    /// it is on (and says so in an Event).
    Legacy,
}

/// An OS image.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Where to download the image: an http:// or https:// URL.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("image url must start with http:// or https://"))]
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("isURL(self)").message("image url must be a valid URL"))]
    pub url: String,
    /// Checksum of the downloaded file: `sha256:<64 hex>` or `sha512:<128 hex>`.
    #[x_kube(validation = Rule::new("self.matches('^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$')").message("checksum must be sha256:<64 lowercase hex> or sha512:<128 lowercase hex>"))]
    #[schemars(length(max = 135))]
    pub checksum: String,
    /// Format of the downloaded file: `raw` (the default), `raw+zstd`, `raw+gzip`, or `qcow2`
    /// (versions 2 and 3, compressed clusters included; no backing file, no encryption).
    #[serde(default)]
    pub format: ImageFormat,
}

/// Format of a downloaded image.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum ImageFormat {
    /// A raw disk image.
    #[default]
    #[serde(rename = "raw")]
    Raw,
    /// A raw disk image compressed with zstd.
    #[serde(rename = "raw+zstd")]
    RawZstd,
    /// A raw disk image compressed with gzip.
    #[serde(rename = "raw+gzip")]
    RawGzip,
    /// A qcow2 image, written as the raw disk it describes.
    #[serde(rename = "qcow2")]
    Qcow2,
}

/// Hints selecting the root disk; every given hint must match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RootDeviceHints {
    /// Kernel device name, e.g. `/dev/vda`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/dev/')").message("deviceName must start with /dev/"))]
    #[schemars(length(max = 256))]
    pub device_name: Option<String>,
    /// SCSI address `host:channel:target:lun`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hctl: Option<String>,
    /// Disk model (substring match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Disk vendor (substring match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    /// Disk serial number (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// World Wide Name (exact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wwn: Option<String>,
    /// Minimum size in GiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size_gigabytes: Option<u32>,
    /// True selects spinning disks only, false solid-state only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotational: Option<bool>,
}

/// What deprovisioning does to the disks.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum CleaningMode {
    /// Wipe partition tables and filesystem signatures (fast).
    #[default]
    Metadata,
    /// Overwrite whole disks (slow, thorough).
    Full,
    /// Leave the disks untouched.
    Disabled,
}

/// What a server's Kubernetes node is given when it joins.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeTemplate {
    /// Labels for the node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Taints for the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

/// Lifecycle state of a Server.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    schemars::JsonSchema,
)]
pub enum ServerState {
    /// Reading identity and power state from the BMC.
    #[default]
    Registering,
    /// Booted into the ramdisk, collecting hardware inventory.
    Inspecting,
    /// Inspected and idle, ready to be provisioned.
    Available,
    /// Writing the image.
    Provisioning,
    /// The image is installed (or the server was adopted).
    Provisioned,
    /// Cleaning the disks after the image was removed.
    Deprovisioning,
    /// An unknown machine that netbooted and registered itself (auto-enrolment).
    Discovered,
    /// Something failed; see `lastError` and the conditions.
    Error,
    /// Inspected (or cleaned) and powered on in the ramdisk, its agent waiting: setting
    /// `spec.image` provisions it without a power cycle.
    Standby,
}

impl ServerState {
    /// Every state, in lifecycle order.
    pub const ALL: [ServerState; 9] = [
        Self::Registering,
        Self::Inspecting,
        Self::Available,
        Self::Standby,
        Self::Provisioning,
        Self::Provisioned,
        Self::Deprovisioning,
        Self::Discovered,
        Self::Error,
    ];

    /// The name the API stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registering => "Registering",
            Self::Inspecting => "Inspecting",
            Self::Available => "Available",
            Self::Provisioning => "Provisioning",
            Self::Provisioned => "Provisioned",
            Self::Deprovisioning => "Deprovisioning",
            Self::Discovered => "Discovered",
            Self::Error => "Error",
            Self::Standby => "Standby",
        }
    }
}

/// Observed power state.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum PowerState {
    /// Powered on.
    On,
    /// Powered off.
    Off,
    /// Not known (BMC unreachable or not yet read).
    #[default]
    Unknown,
}

/// What the controller observed about a server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ServerState>,
    /// When the server entered its current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_since: Option<Time>,
    /// When the server last entered `Standby` (absent when it is not on standby). Standby
    /// seats under the Rack's power budget go in this order: the latest arrival leaves first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_since: Option<Time>,
    /// Power state as last reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_state: Option<PowerState>,
    /// Identity as reported by the BMC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<SystemIdentity>,
    /// Hardware inventory from inspection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareInventory>,
    /// Addresses allocated to the server from its Rack's networks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<AllocatedAddress>,
    /// The image installed on the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_image: Option<ProvisionedImage>,
    /// Name of the Kubernetes node the server became.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The network boot the controller asked for: the server is sent to the Groundwork
    /// ramdisk while this attempt is open (Inspecting, Provisioning, Deprovisioning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_attempt: Option<BootAttempt>,
    /// What the boot services saw of the current attempt, step by step (written by the boot
    /// services, which may run on any controller replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_progress: Option<BootProgress>,
    /// Start, end and duration of each lifecycle phase, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseTiming>,
    /// Failures since the server last succeeded (drives the backoff).
    #[serde(default)]
    pub error_count: u32,
    /// The last error, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// CamelCase reason of the last error (also the Stalled condition's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error_reason: Option<String>,
    /// The last `groundwork.dev/reboot` request id acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reboot_request: Option<String>,
    /// The last `groundwork.dev/inspect` request id acted upon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inspect_request: Option<String>,
    /// Standard conditions: Ready, Reconciling, Stalled, ReferencesResolved, BMCReachable,
    /// CredentialsValid, PowerMatchesSpec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Identity of a system as its BMC reports it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemIdentity {
    /// Manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manufacturer: Option<String>,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// System UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// BIOS / UEFI firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_version: Option<String>,
    /// BMC firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_firmware_version: Option<String>,
    /// MAC addresses of the NICs the BMC exposes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mac_addresses: Vec<String>,
}

/// Hardware found by inspection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HardwareInventory {
    /// CPU model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_model: Option<String>,
    /// Logical CPUs.
    #[serde(default)]
    pub cpu_count: u32,
    /// Memory in bytes.
    #[serde(default)]
    pub memory_bytes: u64,
    /// Disks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<Disk>,
    /// Network interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<Nic>,
    /// System, board and firmware identity from the DMI tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dmi: Option<DmiIdentity>,
}

/// What the machine's DMI (SMBIOS) tables say about it; absent fields were empty.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DmiIdentity {
    /// System manufacturer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_manufacturer: Option<String>,
    /// System product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_product: Option<String>,
    /// System serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_serial: Option<String>,
    /// System UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_uuid: Option<String>,
    /// Board vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_vendor: Option<String>,
    /// Board product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board_product: Option<String>,
    /// Firmware vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_vendor: Option<String>,
    /// Firmware version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bios_version: Option<String>,
}

/// A disk found by inspection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Disk {
    /// Kernel device name.
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Serial number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_number: Option<String>,
    /// World Wide Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wwn: Option<String>,
    /// Spinning disk.
    #[serde(default)]
    pub rotational: bool,
}

/// A network interface found by inspection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Nic {
    /// Interface name.
    pub name: String,
    /// MAC address.
    pub mac: String,
    /// Link speed in Mbit/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_mbps: Option<u32>,
    /// Link detected.
    #[serde(default)]
    pub link_up: bool,
}

/// Name of the node network in `status.addresses`.
pub const NODE_NETWORK: &str = "node";

impl ServerStatus {
    /// The node address the Server holds, if any.
    pub fn node_address(&self) -> Option<&AllocatedAddress> {
        self.addresses.iter().find(|a| a.network == NODE_NETWORK)
    }
}

/// An address allocated to a server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocatedAddress {
    /// Which rack network the address is from (`node`, `provisioning`, `bmc`).
    pub network: String,
    /// The address.
    pub address: String,
}

/// The image installed on a server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProvisionedImage {
    /// URL it was downloaded from.
    pub url: String,
    /// Verified checksum.
    pub checksum: String,
    /// The device the image is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The disk already held this image (its config-drive marker matched), so nothing was
    /// written: the server was adopted.
    #[serde(default)]
    pub adopted: bool,
}

/// Why a server is sent to the ramdisk.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum BootPurpose {
    /// Collect the hardware inventory.
    #[default]
    Inspect,
    /// Write the image.
    Provision,
    /// Clean the disks.
    Clean,
}

impl BootPurpose {
    /// The ramdisk's `groundwork.mode`.
    pub fn mode(self) -> &'static str {
        match self {
            Self::Inspect => "inspect",
            Self::Provision => "provision",
            Self::Clean => "clean",
        }
    }
}

/// One network boot the controller asked for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootAttempt {
    /// Identifies the attempt; its boot token is only valid for it.
    pub id: String,
    /// What the ramdisk is for.
    pub purpose: BootPurpose,
    /// When the controller asked the BMC for the network boot.
    pub requested_at: Time,
    /// Which try this is for the same purpose (a timed-out attempt is retried with a new one).
    #[serde(default = "one")]
    pub try_number: u32,
    /// When the controller asked the BMC to boot the installed disk (provisioning only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_boot_at: Option<Time>,
    /// A warm attempt (provisioning from `Standby`): the id of the earlier attempt whose
    /// ramdisk is still running. No network boot was asked for; the agent's credential,
    /// issued for that attempt, stays valid for this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramdisk_attempt: Option<String>,
    /// When the agent reported that it loaded the installed OS's kernel and kexecs into it
    /// (warm provisioning only): the OS boots without the BMC and without firmware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kexec_at: Option<Time>,
}

impl BootAttempt {
    /// The attempt the agent's credential was issued for: the one that booted its ramdisk.
    pub fn credential_attempt(&self) -> &str {
        self.ramdisk_attempt.as_deref().unwrap_or(&self.id)
    }
}

/// Boot steps of one attempt as the boot services saw them; absent steps did not happen.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootProgress {
    /// The attempt these steps belong to.
    pub attempt: String,
    /// When DHCP acknowledged the server's boot MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp_at: Option<Time>,
    /// The provisioning address DHCP gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp_address: Option<String>,
    /// The firmware that asked (`bios-pxe`, `uefi-pxe`, `uefi-http`, `ipxe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// When the iPXE script was served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_at: Option<Time>,
    /// When the kernel was fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_at: Option<Time>,
    /// When the initrd was fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd_at: Option<Time>,
    /// The version of the ramdisk the boot services served with the initrd (`sha256:` and the
    /// first 16 hex digits of the SHA-256 of its kernel and initrd): a standby server whose
    /// agent runs another version than the one served now is netbooted again (a refresh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramdisk_version: Option<String>,
    /// When the ramdisk called back (the agent registered with its inventory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub called_back_at: Option<Time>,
    /// The agent's latest progress report on its task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<TaskProgress>,
    /// When the agent reported its task's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_at: Option<Time>,
    /// The agent's task result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<TaskOutcome>,
    /// When the installed OS checked in on its first boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_in_at: Option<Time>,
    /// What the installed OS reported it read from its config drive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_in: Option<CheckIn>,
    /// The agent's last sign of life while it waits on standby (written at most once a
    /// minute by the replica serving its task long-poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_at: Option<Time>,
}

/// One field of a merge patch: left as it is (absent from the patch), cleared (`null`), or set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Field<T> {
    /// Not in the patch.
    #[default]
    Keep,
    /// `null`: removed.
    Clear,
    /// Set to this value.
    Set(T),
}

impl<T> Field<T> {
    /// Whether the field stays out of the patch.
    pub fn is_keep(&self) -> bool {
        matches!(self, Self::Keep)
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Set(v) => v.serialize(serializer),
            Self::Keep | Self::Clear => serializer.serialize_none(),
        }
    }
}

/// A precise instant for the boot timeline: RFC 3339 with nanoseconds (a `Time` would round
/// to whole seconds, and boot steps are milliseconds apart). Reads back as a `Time`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instant(pub k8s_openapi::jiff::Timestamp);

impl Serialize for Instant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// The merge patch the boot services write to `status.bootProgress` (under their own field
/// manager): one typed field per [`BootProgress`] field, so a field cannot be misspelt and a
/// new attempt clears exactly what an earlier one left.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BootProgressPatch {
    /// The attempt the patch belongs to.
    pub attempt: String,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub dhcp_at: Field<Instant>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub dhcp_address: Field<String>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub firmware: Field<String>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub script_at: Field<Instant>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub kernel_at: Field<Instant>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub initrd_at: Field<Instant>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub ramdisk_version: Field<String>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub called_back_at: Field<Instant>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub progress: Field<TaskProgress>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub result_at: Field<Instant>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub result: Field<TaskOutcome>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub checked_in_at: Field<Instant>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub check_in: Field<CheckIn>,
    /// The [`BootProgress`] field of the same name.
    #[serde(skip_serializing_if = "Field::is_keep")]
    pub heartbeat_at: Field<Instant>,
}

impl BootProgressPatch {
    /// A patch of `attempt` that changes nothing yet.
    pub fn of(attempt: &str) -> Self {
        Self {
            attempt: attempt.to_string(),
            ..Self::default()
        }
    }

    /// A patch that starts `attempt` afresh: everything an earlier attempt recorded cleared.
    pub fn fresh(attempt: &str) -> Self {
        Self {
            attempt: attempt.to_string(),
            dhcp_at: Field::Clear,
            dhcp_address: Field::Clear,
            firmware: Field::Clear,
            script_at: Field::Clear,
            kernel_at: Field::Clear,
            initrd_at: Field::Clear,
            ramdisk_version: Field::Clear,
            called_back_at: Field::Clear,
            progress: Field::Clear,
            result_at: Field::Clear,
            result: Field::Clear,
            checked_in_at: Field::Clear,
            check_in: Field::Clear,
            heartbeat_at: Field::Clear,
        }
    }
}

/// Progress of the agent's task.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskProgress {
    /// `download`, `write`, `verify`, `config-drive`, `sync` or `clean`.
    pub phase: String,
    /// Bytes done in this phase.
    #[serde(default)]
    pub bytes_done: u64,
    /// Bytes the phase has in all (0 when unknown).
    #[serde(default)]
    pub bytes_total: u64,
    /// Current rate in bytes per second.
    #[serde(default)]
    pub bytes_per_second: u64,
    /// When the agent reported it.
    pub at: Time,
}

/// The outcome of the agent's task.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutcome {
    /// The task succeeded.
    pub ok: bool,
    /// CamelCase reason on failure, e.g. `ChecksumMismatch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What happened, for humans (with the agent's last log lines on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The device written or cleaned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The disk already held the image (marker matched): nothing was written.
    #[serde(default)]
    pub adopted: bool,
    /// Bytes written.
    #[serde(default)]
    pub bytes_written: u64,
    /// What became of the kexec into the installed OS a warm provisioning asked for (absent:
    /// not asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kexec: Option<KexecOutcome>,
}

/// What the agent did about booting the written image with kexec.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum KexecOutcome {
    /// The installed OS's kernel and initrd are loaded; the agent kexecs into them right
    /// after reporting.
    Loaded,
    /// The image declares no boot entry kexec can use: the BMC boots the disk.
    NoBootEntry,
    /// The running kernel refused to load it (e.g. lockdown wants a signed kernel): the BMC
    /// boots the disk.
    LoadFailed,
}

/// What the installed OS reported on its first boot.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckIn {
    /// The hostname it set from its config drive.
    #[serde(default)]
    pub hostname: String,
    /// The addresses it configured (CIDR notation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// The instance id its config drive carried.
    #[serde(default)]
    pub instance_id: String,
}

/// Start, end and duration of one phase (timestamps, never a ticking counter).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PhaseTiming {
    /// Phase name, e.g. `Registering`, `PowerOn`, `DHCP`, `Write`.
    pub name: String,
    /// When the phase started.
    pub started_at: Time,
    /// When the phase ended; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Duration in milliseconds, once finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_address_is_the_one_on_the_node_network() {
        let on = |network: &str, address: &str| AllocatedAddress {
            network: network.into(),
            address: address.into(),
        };
        let mut status = ServerStatus {
            addresses: vec![on("provisioning", "10.0.0.5")],
            ..Default::default()
        };
        assert_eq!(status.node_address(), None);
        status.addresses.push(on(NODE_NETWORK, "10.1.0.5"));
        assert_eq!(
            status.node_address().map(|a| a.address.as_str()),
            Some("10.1.0.5")
        );
    }
}

#[cfg(test)]
mod patch_tests {
    use super::*;

    #[test]
    fn a_boot_progress_patch_keeps_clears_and_sets_by_type() {
        let at = Instant("2026-12-05T15:24:20.431813895Z".parse().unwrap());
        let mut step = BootProgressPatch::of("a-1");
        step.dhcp_at = Field::Set(at);
        step.dhcp_address = Field::Set("10.62.0.11".into());
        assert_eq!(
            serde_json::to_value(&step).unwrap(),
            serde_json::json!({
                "attempt": "a-1",
                "dhcpAt": "2026-12-05T15:24:20.431813895Z",
                "dhcpAddress": "10.62.0.11",
            })
        );
        // A fresh attempt names every field of BootProgress, cleared.
        let fresh = serde_json::to_value(BootProgressPatch::fresh("a-2")).unwrap();
        let full = serde_json::to_value(BootProgress {
            attempt: "a-2".into(),
            dhcp_at: Some(Time(at.0)),
            dhcp_address: Some(String::new()),
            firmware: Some(String::new()),
            script_at: Some(Time(at.0)),
            kernel_at: Some(Time(at.0)),
            initrd_at: Some(Time(at.0)),
            ramdisk_version: Some(String::new()),
            called_back_at: Some(Time(at.0)),
            progress: Some(TaskProgress {
                phase: String::new(),
                bytes_done: 0,
                bytes_total: 0,
                bytes_per_second: 0,
                at: Time(at.0),
            }),
            result_at: Some(Time(at.0)),
            result: Some(TaskOutcome::default()),
            checked_in_at: Some(Time(at.0)),
            check_in: Some(CheckIn::default()),
            heartbeat_at: Some(Time(at.0)),
        })
        .unwrap();
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(&fresh), keys(&full));
        assert!(
            fresh
                .as_object()
                .unwrap()
                .iter()
                .all(|(k, v)| k == "attempt" || v.is_null())
        );
        // A value that reads back as a Time.
        let read: Time = serde_json::from_value(serde_json::json!(at_text(at))).unwrap();
        assert_eq!(read.0, at.0);
    }

    fn at_text(at: Instant) -> String {
        serde_json::to_value(at)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }
}
