//! Condition types and reasons the edge daemon owns (building them: `kube_kit::conditions`).

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Condition types written by the edge daemon.
pub mod types {
    /// The speaker runs the configuration derived from the API.
    pub const CONFIG_APPLIED: &str = "ConfigApplied";
    /// BorderRouter: configuration applied and BIRD answers.
    pub const READY: &str = "Ready";
    /// UpstreamLink: the BGP session is Established.
    pub const SESSION_ESTABLISHED: &str = "SessionEstablished";
    /// UpstreamLink: the BFD session is Up (only when BFD is enabled).
    pub const BFD_UP: &str = "BFDUp";
    /// UpstreamLink: True while the peer stays within the max-prefix limit.
    pub const PREFIX_LIMIT: &str = "PrefixLimit";
    /// BlackholeRoute: announced to the upstreams.
    pub const ANNOUNCED: &str = "Announced";
}

/// Condition reasons written by the edge daemon (CamelCase, stable).
pub mod reasons {
    /// The configuration was applied.
    pub const APPLIED: &str = "Applied";
    /// The object is not part of the running configuration because another object failed.
    pub const ROUTER_CONFIG_NOT_APPLIED: &str = "RouterConfigNotApplied";
    /// The link is not configured on the router.
    pub const NOT_CONFIGURED: &str = "NotConfigured";
    /// BIRD's control socket does not answer.
    pub const BIRD_UNREACHABLE: &str = "BirdUnreachable";
    /// Within the max-prefix limit.
    pub const WITHIN_LIMIT: &str = "WithinLimit";
    /// No max-prefix limit configured.
    pub const NO_LIMIT: &str = "NoLimit";
    /// BFD up.
    pub const BFD_UP: &str = "BFDUp";
    /// BFD not up.
    pub const BFD_DOWN: &str = "BFDDown";
    /// The blackhole is announced.
    pub const ANNOUNCED: &str = "Announced";
    /// The blackhole is past `expiresAt`.
    pub const EXPIRED: &str = "Expired";
    /// The referenced Secret does not exist.
    pub const SECRET_NOT_FOUND: &str = "SecretNotFound";
    /// The referenced Secret lacks the key.
    pub const SECRET_KEY_MISSING: &str = "SecretKeyMissing";
    /// The spec cannot be mapped onto the routing model.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// The BorderRouter does not exist or is invalid.
    pub const ROUTER_INVALID: &str = "RouterInvalid";
}

/// A timestamp truncated to whole seconds (what the API server stores).
pub fn to_time(ts: Timestamp) -> Time {
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}
