//! Types and names shared by every kind: references, condition types and reasons, annotations.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key inside a Secret in the same namespace as the referencing object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret, in the object's own namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret's data. Defaults differ per use and are documented there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A reference to a Secret by name, in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret, in the object's own namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Values of a Condition's `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// The condition holds.
    True,
    /// The condition does not hold.
    False,
    /// The controller cannot tell.
    Unknown,
}

impl ConditionStatus {
    /// The string the API stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }

    /// True maps to `True`, false to `False`.
    pub fn from_bool(b: bool) -> Self {
        if b { Self::True } else { Self::False }
    }
}

/// Condition types. `Ready`, `Reconciling` and `Stalled` follow kstatus so Flux and Argo CD read
/// health without plugins.
pub mod condition_types {
    /// The object is fully what its spec asks for.
    pub const READY: &str = "Ready";
    /// The controller is working towards the spec (kstatus).
    pub const RECONCILING: &str = "Reconciling";
    /// The controller cannot make progress without a change from a human (kstatus).
    pub const STALLED: &str = "Stalled";
    /// Rack: no two servers share a U and every server fits inside the rack.
    pub const LAYOUT_VALID: &str = "LayoutValid";
    /// Rack: the servers' declared power fits the rack's budget.
    pub const POWER_WITHIN_BUDGET: &str = "PowerWithinBudget";
    /// Rack: the node IP pool has free addresses.
    pub const IP_POOL_AVAILABLE: &str = "IPPoolAvailable";
    /// Rack: its provisioning and node networks overlap no other Rack's in the site.
    pub const NETWORKS_DISTINCT: &str = "NetworksDistinct";
    /// Server/UpstreamLink: every object it references exists and is usable.
    pub const REFERENCES_RESOLVED: &str = "ReferencesResolved";
    /// Server: the BMC answers.
    pub const BMC_REACHABLE: &str = "BMCReachable";
    /// Server: the BMC accepts the credentials.
    pub const CREDENTIALS_VALID: &str = "CredentialsValid";
    /// Server: the observed power state matches `spec.online`.
    pub const POWER_MATCHES_SPEC: &str = "PowerMatchesSpec";
    /// Server (with a standby policy): the server is on standby, or why it may not be.
    pub const STANDBY: &str = "Standby";
    /// UpstreamLink: the BGP session is Established.
    pub const SESSION_ESTABLISHED: &str = "SessionEstablished";
}

/// Condition reasons (CamelCase, stable: alerts and dashboards key on them).
pub mod reasons {
    /// Everything is as the spec asks.
    pub const RECONCILED: &str = "Reconciled";
    /// Work is in progress.
    pub const PROGRESSING: &str = "Progressing";
    /// Two or more servers claim the same U.
    pub const U_OVERLAP: &str = "UOverlap";
    /// A server does not fit inside the rack's height.
    pub const OUT_OF_RANGE: &str = "OutOfRange";
    /// The declared power exceeds the rack's budget.
    pub const OVER_BUDGET: &str = "OverBudget";
    /// The node IP pool is exhausted.
    pub const POOL_EXHAUSTED: &str = "PoolExhausted";
    /// A Rack's provisioning or node network overlaps another Rack's in the same site.
    pub const NETWORK_OVERLAP: &str = "NetworkOverlap";
    /// A referenced Rack does not exist.
    pub const RACK_NOT_FOUND: &str = "RackNotFound";
    /// A referenced Secret does not exist.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// A referenced Secret lacks a required key.
    pub const SECRET_KEY_MISSING: &str = "SecretKeyMissing";
    /// The spec is inconsistent in a way CEL cannot see.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The `groundwork.dev/paused` annotation is set.
    pub const PAUSED: &str = "Paused";
    /// The work of a later capability has not started for this object yet.
    pub const PENDING: &str = "Pending";
    /// Another UpstreamLink on the same router already peers with this address.
    pub const DUPLICATE_PEER: &str = "DuplicatePeer";
}

/// Field managers of Groundwork's status writes (and the Event reporters): the reconcilers own
/// some fields, the boot services (every replica) others, so neither's writes reset the other's.
pub mod field_managers {
    /// The reconcilers (server-side apply).
    pub const CONTROLLER: &str = "groundwork-controller";
    /// The boot services and agent API (`status.bootProgress`, enrolment).
    pub const BOOT: &str = "groundwork-boot";
    /// The edge daemon on a border router (BGP session state in UpstreamLink and BorderRouter
    /// status, alongside the controller's conditions).
    pub const EDGE: &str = "groundwork-edge";
    /// The Cluster API provider: Server claims (`spec.consumerRef`, image, user-data,
    /// cleaning) written as intent, the way a person would, and the provider's own kinds.
    pub const PROVIDER: &str = "groundwork-provider";
    /// The kubectl plugin (spec and annotation edits a person asked for).
    pub const KUBECTL: &str = "kubectl-groundwork";
}

/// Annotations the controller honours.
pub mod annotations {
    /// Any value: the controller leaves the object alone (no BMC, boot or status work).
    pub const PAUSED: &str = "groundwork.dev/paused";
    /// A request id: power-cycle the server once per new id.
    pub const REBOOT: &str = "groundwork.dev/reboot";
    /// A request id: re-inspect the server once per new id.
    pub const INSPECT: &str = "groundwork.dev/inspect";
    /// Set by the controller on a Server it created for an unknown machine that netbooted
    /// (auto-enrolment): the Server starts in state Discovered. The chart's admission policy
    /// lets the controller create only Servers carrying it (and nothing else).
    pub const DISCOVERED: &str = "groundwork.dev/discovered";
}
