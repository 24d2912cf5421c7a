//! Condition types and reasons the edge daemon owns, and a helper that keeps
//! `lastTransitionTime` stable while a condition's status does not flip.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

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

/// A desired condition before times are filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    /// The type.
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: String,
    /// Human message (never contains secrets).
    pub message: String,
}

impl Want {
    /// A condition with a boolean status.
    pub fn new(type_: &'static str, ok: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: if ok { "True" } else { "False" },
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// A condition whose status is `Unknown`.
    pub fn unknown(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: "Unknown",
            reason: reason.to_string(),
            message: message.into(),
        }
    }
}

/// A timestamp truncated to whole seconds (what the API server stores).
pub fn to_time(ts: Timestamp) -> Time {
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

/// Builds conditions, keeping `lastTransitionTime` of `previous` entries whose status did not
/// change. The result is sorted by type.
pub fn build(
    wants: Vec<Want>,
    previous: &[Condition],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = wants
        .into_iter()
        .map(|w| {
            let last = previous
                .iter()
                .find(|c| c.type_ == w.type_ && c.status == w.status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| to_time(now));
            Condition {
                type_: w.type_.to_string(),
                status: w.status.to_string(),
                reason: w.reason,
                message: w.message,
                observed_generation: generation,
                last_transition_time: last,
            }
        })
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The conditions of `all` whose type is one of `owned`, sorted by type.
pub fn owned(all: &[Condition], owned: &[&str]) -> Vec<Condition> {
    let mut out: Vec<Condition> = all
        .iter()
        .filter(|c| owned.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_transition_time_when_status_is_unchanged() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let first = build(
            vec![Want::new(
                types::SESSION_ESTABLISHED,
                true,
                "Established",
                "up",
            )],
            &[],
            Some(1),
            t0,
        );
        let again = build(
            vec![Want::new(
                types::SESSION_ESTABLISHED,
                true,
                "Established",
                "still up",
            )],
            &first,
            Some(1),
            t1,
        );
        assert_eq!(again[0].last_transition_time, to_time(t0));
        let flipped = build(
            vec![Want::new(
                types::SESSION_ESTABLISHED,
                false,
                "NotEstablished",
                "down",
            )],
            &again,
            Some(1),
            t1,
        );
        assert_eq!(flipped[0].last_transition_time, to_time(t1));
    }
}
