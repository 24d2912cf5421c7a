//! Compute (pure): the edge-owned status of every UpstreamLink, BorderRouter and
//! BlackholeRoute from what BIRD said, the applied configuration and the time.

use std::time::Duration;

use crds::{BorderRouterStatus, ConditionStatus, UpstreamLinkStatus};
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube_kit::conditions::{Desired, merge, owned};
use routing::status::BfdState;
use routing::{SessionStatus, diagnose};
use serde::Serialize;

use crate::apply::ConfigState;
use crate::conditions::{self, reasons, types};
use crate::map::{BlackholeMapping, LinkMapping};

use super::observe::Observation;

/// A password-protected session that is not up for this long is `WrongPasswordSuspected`.
pub const PASSWORD_GRACE: Duration = Duration::from_secs(20);
/// Condition types the daemon owns on an UpstreamLink.
pub const LINK_CONDITIONS: &[&str] = &[
    types::CONFIG_APPLIED,
    types::SESSION_ESTABLISHED,
    types::BFD_UP,
    types::PREFIX_LIMIT,
];
/// Condition types the daemon owns on a BorderRouter.
pub const ROUTER_CONDITIONS: &[&str] = &[types::CONFIG_APPLIED, types::READY];
/// Condition types the daemon owns on a BlackholeRoute.
pub const BLACKHOLE_CONDITIONS: &[&str] = &[types::ANNOUNCED];

/// The UpstreamLink status fields owned by the edge daemon (what it applies).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkStatus {
    /// BGP FSM state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_state: Option<String>,
    /// When the session became Established.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established_since: Option<Time>,
    /// BIRD's last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Times the session left Established.
    pub flap_count: u32,
    /// Routes imported, all families.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes_imported: Option<u64>,
    /// Routes exported, all families.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routes_exported: Option<u64>,
    /// Hash of the running configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// ConfigApplied, SessionEstablished, BFDUp, PrefixLimit.
    pub conditions: Vec<Condition>,
}

impl LinkStatus {
    /// The edge-owned part of an object's current status.
    pub fn observed(s: Option<&UpstreamLinkStatus>) -> Self {
        let Some(s) = s else { return Self::default() };
        Self {
            session_state: s.session_state.clone(),
            established_since: s.established_since.clone(),
            last_error: s.last_error.clone(),
            flap_count: s.flap_count,
            routes_imported: s.routes_imported,
            routes_exported: s.routes_exported,
            config_hash: s.config_hash.clone(),
            conditions: owned(&s.conditions, LINK_CONDITIONS),
        }
    }

    /// What makes a write urgent: conditions (type, status, reason), established-ness,
    /// establishedSince, flaps and the configuration hash.
    pub fn signature(&self) -> String {
        let conds: Vec<String> = self
            .conditions
            .iter()
            .map(|c| format!("{}={}/{}", c.type_, c.status, c.reason))
            .collect();
        format!(
            "{:?}|{}|{:?}|{}|{:?}",
            self.session_state.as_deref() == Some("Established"),
            conds.join(","),
            self.established_since.as_ref().map(|t| t.0),
            self.flap_count,
            self.config_hash
        )
    }
}

/// Inputs of [`link_status`].
#[derive(Clone, Copy, Debug)]
pub struct LinkInput<'a> {
    /// The object's current status.
    pub current: Option<&'a UpstreamLinkStatus>,
    /// The object's generation.
    pub generation: Option<i64>,
    /// What the mapping did with the link; `None` when the BorderRouter itself is invalid.
    pub mapping: Option<&'a LinkMapping>,
    /// Router-level configuration state (`Err` = the BorderRouter is invalid: reason, message).
    pub config: Result<&'a ConfigState, (&'static str, &'a str)>,
    /// What BIRD says.
    pub observation: &'a Observation,
    /// Now.
    pub now: Timestamp,
}

/// Computes the edge-owned status of one UpstreamLink (pure).
pub fn link_status(input: LinkInput<'_>) -> LinkStatus {
    let current = LinkStatus::observed(input.current);
    let mut wants = Vec::new();

    match (input.config, input.mapping) {
        (Err((reason, message)), _) => {
            wants.push(Desired::new(
                types::CONFIG_APPLIED,
                ConditionStatus::False,
                reasons::ROUTER_INVALID,
                format!("the BorderRouter is invalid ({reason}): {message}"),
            ));
        }
        (
            Ok(ConfigState::Failed {
                reason, message, ..
            }),
            _,
        ) => {
            wants.push(Desired::new(
                types::CONFIG_APPLIED,
                ConditionStatus::False,
                reason,
                message.clone(),
            ));
        }
        (Ok(ConfigState::Applied { .. }), Some(m)) if m.included => match &m.problem {
            Some(p) => wants.push(Desired::new(
                types::CONFIG_APPLIED,
                ConditionStatus::False,
                p.reason,
                p.message.clone(),
            )),
            None => wants.push(Desired::new(
                types::CONFIG_APPLIED,
                ConditionStatus::True,
                reasons::APPLIED,
                "the link's configuration runs on the border router",
            )),
        },
        (Ok(ConfigState::Applied { .. }), Some(m)) => {
            let (reason, message) = m.problem.as_ref().map_or(
                (reasons::NOT_CONFIGURED, "not configured".to_string()),
                |p| (p.reason, p.message.clone()),
            );
            wants.push(Desired::new(
                types::CONFIG_APPLIED,
                ConditionStatus::False,
                reason,
                message,
            ));
        }
        (Ok(ConfigState::Applied { .. }), None) => {
            wants.push(Desired::new(
                types::CONFIG_APPLIED,
                ConditionStatus::False,
                reasons::NOT_CONFIGURED,
                "not configured",
            ));
        }
    }
    let config_hash = input
        .config
        .ok()
        .and_then(|c| c.running_hash().map(str::to_string))
        .or(current.config_hash.clone());
    let bfd = input.mapping.is_some_and(|m| m.bfd);
    let max_prefix = input.mapping.is_some_and(|m| m.max_prefix);
    let password_set = input.mapping.is_some_and(|m| m.password_set);

    let mut out = LinkStatus {
        config_hash,
        flap_count: current.flap_count,
        ..Default::default()
    };
    let was_established = current.session_state.as_deref() == Some("Established");
    match input.observation {
        Observation::BirdUnreachable(e) => {
            out.session_state = current.session_state.clone();
            out.established_since = current.established_since.clone();
            out.last_error = current.last_error.clone();
            out.routes_imported = current.routes_imported;
            out.routes_exported = current.routes_exported;
            let msg = format!("cannot read the session from BIRD: {e}");
            wants.push(Desired::new(
                types::SESSION_ESTABLISHED,
                ConditionStatus::Unknown,
                reasons::BIRD_UNREACHABLE,
                msg.clone(),
            ));
            if bfd {
                wants.push(Desired::new(
                    types::BFD_UP,
                    ConditionStatus::Unknown,
                    reasons::BIRD_UNREACHABLE,
                    msg.clone(),
                ));
            }
            wants.push(Desired::new(
                types::PREFIX_LIMIT,
                ConditionStatus::Unknown,
                reasons::BIRD_UNREACHABLE,
                msg,
            ));
        }
        Observation::NotConfigured => not_configured(&mut out, &mut wants, was_established, bfd),
        Observation::Sessions(sessions) if sessions.is_empty() => {
            not_configured(&mut out, &mut wants, was_established, bfd)
        }
        Observation::Sessions(sessions) => {
            let established = sessions.iter().all(SessionStatus::is_established);
            let primary = sessions
                .iter()
                .find(|s| !s.is_established())
                .unwrap_or(&sessions[0]);
            out.session_state = Some(if established {
                "Established".to_string()
            } else {
                format!("{:?}", primary.state)
            });
            out.established_since = if established {
                sessions
                    .iter()
                    .filter_map(|s| s.since)
                    .max()
                    .map(conditions::to_time)
            } else {
                None
            };
            out.last_error = primary
                .last_error
                .clone()
                .or_else(|| sessions.iter().find_map(|s| s.last_error.clone()));
            out.routes_imported = Some(
                sessions
                    .iter()
                    .flat_map(|s| &s.channels)
                    .map(|c| c.imported)
                    .sum(),
            );
            out.routes_exported = Some(
                sessions
                    .iter()
                    .flat_map(|s| &s.channels)
                    .map(|c| c.exported)
                    .sum(),
            );
            if was_established && !established {
                out.flap_count = out.flap_count.saturating_add(1);
            }
            let d = diagnose(primary, password_set, input.now, PASSWORD_GRACE);
            wants.push(Desired::new(
                types::SESSION_ESTABLISHED,
                ConditionStatus::from_bool(established),
                d.reason,
                d.message,
            ));
            if bfd {
                let up = sessions.iter().all(|s| s.bfd == Some(BfdState::Up));
                let states: Vec<String> = sessions
                    .iter()
                    .map(|s| {
                        format!(
                            "{}: {}",
                            s.protocol,
                            s.bfd.map_or("no session".to_string(), |b| format!("{b:?}"))
                        )
                    })
                    .collect();
                wants.push(Desired::new(
                    types::BFD_UP,
                    ConditionStatus::from_bool(up),
                    if up {
                        reasons::BFD_UP
                    } else {
                        reasons::BFD_DOWN
                    },
                    format!("BFD {}", states.join(", ")),
                ));
            }
            let hit = sessions.iter().any(SessionStatus::import_limit_hit);
            wants.push(if !max_prefix {
                Desired::new(
                    types::PREFIX_LIMIT,
                    ConditionStatus::True,
                    reasons::NO_LIMIT,
                    "no max-prefix limit configured",
                )
            } else if hit {
                Desired::new(
                    types::PREFIX_LIMIT,
                    ConditionStatus::False,
                    "MaxPrefixExceeded",
                    "the peer sent more prefixes than the max-prefix limit",
                )
            } else {
                Desired::new(
                    types::PREFIX_LIMIT,
                    ConditionStatus::True,
                    reasons::WITHIN_LIMIT,
                    "within the max-prefix limit",
                )
            });
        }
    }
    let now = conditions::to_time(input.now);
    out.conditions = merge(&current.conditions, &wants, input.generation, &now);
    out
}

fn not_configured(
    out: &mut LinkStatus,
    wants: &mut Vec<Desired>,
    was_established: bool,
    bfd: bool,
) {
    if was_established {
        out.flap_count = out.flap_count.saturating_add(1);
    }
    wants.push(Desired::new(
        types::SESSION_ESTABLISHED,
        ConditionStatus::False,
        reasons::NOT_CONFIGURED,
        "the link is not configured on the border router",
    ));
    if bfd {
        wants.push(Desired::new(
            types::BFD_UP,
            ConditionStatus::False,
            reasons::NOT_CONFIGURED,
            "the link is not configured on the border router",
        ));
    }
}

/// The BorderRouter status fields owned by the edge daemon.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterStatus {
    /// The generation described.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Hash of the running configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// When that configuration was applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_applied_at: Option<Time>,
    /// ConfigApplied, Ready.
    pub conditions: Vec<Condition>,
}

impl RouterStatus {
    /// The edge-owned part of the current status.
    pub fn observed(s: Option<&BorderRouterStatus>) -> Self {
        let Some(s) = s else { return Self::default() };
        Self {
            observed_generation: s.observed_generation,
            config_hash: s.config_hash.clone(),
            last_applied_at: s.last_applied_at.clone(),
            conditions: owned(&s.conditions, ROUTER_CONDITIONS),
        }
    }
}

/// Computes the BorderRouter status (pure). `config` is `Err((reason, message))` when the
/// router's own spec is invalid; `bird` is the liveness of BIRD's control socket.
pub fn router_status(
    current: Option<&BorderRouterStatus>,
    generation: Option<i64>,
    config: Result<&ConfigState, (&'static str, &str)>,
    bird: Result<(), &str>,
    now: Timestamp,
) -> RouterStatus {
    let cur = RouterStatus::observed(current);
    let mut wants = Vec::new();
    let mut out = RouterStatus {
        observed_generation: generation,
        ..Default::default()
    };
    let applied = match config {
        Err((reason, message)) => {
            wants.push(Desired::new(
                types::CONFIG_APPLIED,
                ConditionStatus::False,
                reason,
                message,
            ));
            false
        }
        Ok(ConfigState::Failed {
            reason, message, ..
        }) => {
            wants.push(Desired::new(
                types::CONFIG_APPLIED,
                ConditionStatus::False,
                reason,
                message.clone(),
            ));
            false
        }
        Ok(ConfigState::Applied { .. }) => {
            wants.push(Desired::new(
                types::CONFIG_APPLIED,
                ConditionStatus::True,
                reasons::APPLIED,
                "BIRD runs the configuration derived from the API",
            ));
            true
        }
    };
    let running = config
        .ok()
        .and_then(|c| c.running_hash().map(str::to_string));
    out.config_hash = running.or(cur.config_hash.clone());
    out.last_applied_at = if out.config_hash.is_some() && out.config_hash == cur.config_hash {
        cur.last_applied_at.clone()
    } else if out.config_hash.is_some() {
        Some(conditions::to_time(now))
    } else {
        None
    };
    wants.push(match (applied, bird) {
        (true, Ok(())) => Desired::new(
            types::READY,
            ConditionStatus::True,
            "Ready",
            "configuration applied and BIRD answers",
        ),
        (_, Err(e)) => Desired::new(
            types::READY,
            ConditionStatus::False,
            reasons::BIRD_UNREACHABLE,
            format!("BIRD does not answer: {e}"),
        ),
        (false, Ok(())) => Desired::new(
            types::READY,
            ConditionStatus::False,
            "ConfigNotApplied",
            "the desired configuration is not applied; see ConfigApplied",
        ),
    });
    out.conditions = merge(
        &cur.conditions,
        &wants,
        generation,
        &conditions::to_time(now),
    );
    out
}

/// The BlackholeRoute status (all of it is edge-owned).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlackholeStatus {
    /// The generation described.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// In the running configuration.
    pub announced: bool,
    /// When last announced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announced_at: Option<Time>,
    /// Announced.
    pub conditions: Vec<Condition>,
}

impl BlackholeStatus {
    /// The current status.
    pub fn observed(s: Option<&crds::BlackholeRouteStatus>) -> Self {
        let Some(s) = s else { return Self::default() };
        Self {
            observed_generation: s.observed_generation,
            announced: s.announced,
            announced_at: s.announced_at.clone(),
            conditions: owned(&s.conditions, BLACKHOLE_CONDITIONS),
        }
    }
}

/// Computes a BlackholeRoute status (pure).
pub fn blackhole_status(
    current: Option<&crds::BlackholeRouteStatus>,
    generation: Option<i64>,
    mapping: Option<&BlackholeMapping>,
    config: Result<&ConfigState, (&'static str, &str)>,
    now: Timestamp,
) -> BlackholeStatus {
    let cur = BlackholeStatus::observed(current);
    let want = match (mapping, config) {
        (_, Err((reason, message))) => Desired::new(
            types::ANNOUNCED,
            ConditionStatus::False,
            reasons::ROUTER_INVALID,
            format!("the BorderRouter is invalid ({reason}): {message}"),
        ),
        (None, _) => Desired::new(
            types::ANNOUNCED,
            ConditionStatus::False,
            reasons::NOT_CONFIGURED,
            "not mapped",
        ),
        (Some(BlackholeMapping::Excluded(p)), _) => Desired::new(
            types::ANNOUNCED,
            ConditionStatus::False,
            p.reason,
            p.message.clone(),
        ),
        (
            Some(BlackholeMapping::Included),
            Ok(ConfigState::Failed {
                reason, message, ..
            }),
        ) => Desired::new(
            types::ANNOUNCED,
            ConditionStatus::False,
            reason,
            message.clone(),
        ),
        (Some(BlackholeMapping::Included), Ok(ConfigState::Applied { .. })) => Desired::new(
            types::ANNOUNCED,
            ConditionStatus::True,
            reasons::ANNOUNCED,
            "announced with BLACKHOLE (65535:666) and NO_EXPORT",
        ),
    };
    let announced = want.status == ConditionStatus::True;
    let announced_at = if announced && !cur.announced {
        Some(conditions::to_time(now))
    } else {
        cur.announced_at.clone()
    };
    BlackholeStatus {
        observed_generation: generation,
        announced,
        announced_at,
        conditions: merge(
            &cur.conditions,
            &[want],
            generation,
            &conditions::to_time(now),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use routing::BgpState;
    use routing::status::ChannelStatus;

    fn mapping() -> LinkMapping {
        LinkMapping {
            included: true,
            problem: None,
            password_set: true,
            bfd: false,
            max_prefix: true,
            families: vec![routing::Family::V4],
        }
    }

    fn session(state: BgpState, since: &str) -> SessionStatus {
        SessionStatus {
            protocol: "gw_isp1_v4".into(),
            proto_state: if state == BgpState::Established {
                "up".into()
            } else {
                "start".into()
            },
            state,
            since: Some(since.parse().unwrap()),
            info: String::new(),
            last_error: None,
            neighbor: None,
            channels: vec![ChannelStatus {
                family: "ipv4".into(),
                imported: 2,
                exported: 1,
                ..Default::default()
            }],
            bfd: None,
        }
    }

    fn to_api(s: &LinkStatus) -> UpstreamLinkStatus {
        serde_json::from_value(serde_json::to_value(s).unwrap()).unwrap()
    }

    #[test]
    fn established_then_flap_then_stable_without_changes() {
        let applied = ConfigState::Applied { hash: "abc".into() };
        let now: Timestamp = "2026-06-01T12:00:10Z".parse().unwrap();
        let m = mapping();
        let obs = Observation::Sessions(vec![session(
            BgpState::Established,
            "2026-06-01T12:00:01.500Z",
        )]);
        let s1 = link_status(LinkInput {
            current: None,
            generation: Some(1),
            mapping: Some(&m),
            config: Ok(&applied),
            observation: &obs,
            now,
        });
        assert_eq!(s1.session_state.as_deref(), Some("Established"));
        assert_eq!(
            s1.established_since,
            Some(Time("2026-06-01T12:00:01Z".parse().unwrap()))
        );
        assert_eq!(
            (s1.routes_imported, s1.routes_exported, s1.flap_count),
            (Some(2), Some(1), 0)
        );
        let cur = to_api(&s1);
        // The same observation later: nothing changes (an idle site writes nothing).
        let later: Timestamp = "2026-06-01T13:00:00Z".parse().unwrap();
        let s2 = link_status(LinkInput {
            current: Some(&cur),
            generation: Some(1),
            mapping: Some(&m),
            config: Ok(&applied),
            observation: &obs,
            now: later,
        });
        assert_eq!(LinkStatus::observed(Some(&cur)), s2);
        // Leaving Established counts a flap.
        let down = Observation::Sessions(vec![session(BgpState::Active, "2026-06-01T12:59:00Z")]);
        let s3 = link_status(LinkInput {
            current: Some(&cur),
            generation: Some(1),
            mapping: Some(&m),
            config: Ok(&applied),
            observation: &down,
            now: later,
        });
        assert_eq!(s3.flap_count, 1);
        assert_eq!(s3.established_since, None);
        let c = s3
            .conditions
            .iter()
            .find(|c| c.type_ == types::SESSION_ESTABLISHED)
            .unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "WrongPasswordSuspected")
        );
        assert_ne!(s3.signature(), s2.signature());
    }

    #[test]
    fn failed_apply_reports_reason_on_link_and_router() {
        let failed = ConfigState::Failed {
            running: Some("old".into()),
            reason: "ConfigSyntaxError",
            message: "bad".into(),
        };
        let now: Timestamp = "2026-06-01T12:00:10Z".parse().unwrap();
        let m = mapping();
        let s = link_status(LinkInput {
            current: None,
            generation: Some(1),
            mapping: Some(&m),
            config: Ok(&failed),
            observation: &Observation::NotConfigured,
            now,
        });
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == types::CONFIG_APPLIED)
            .unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "ConfigSyntaxError")
        );
        assert_eq!(s.config_hash.as_deref(), Some("old"));
        let r = router_status(None, Some(2), Ok(&failed), Ok(()), now);
        assert_eq!(
            r.conditions
                .iter()
                .map(|c| c.status.as_str())
                .collect::<Vec<_>>(),
            ["False", "False"]
        );
    }

    #[test]
    fn blackhole_announced_at_is_kept() {
        let applied = ConfigState::Applied { hash: "abc".into() };
        let t0: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-06-01T12:05:00Z".parse().unwrap();
        let s = blackhole_status(
            None,
            Some(1),
            Some(&BlackholeMapping::Included),
            Ok(&applied),
            t0,
        );
        assert!(s.announced);
        let cur: crds::BlackholeRouteStatus =
            serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        let again = blackhole_status(
            Some(&cur),
            Some(1),
            Some(&BlackholeMapping::Included),
            Ok(&applied),
            t1,
        );
        assert_eq!(again, BlackholeStatus::observed(Some(&cur)));
        let expired = BlackholeMapping::Excluded(crate::map::Problem {
            reason: "Expired",
            message: "x".into(),
        });
        let gone = blackhole_status(Some(&cur), Some(1), Some(&expired), Ok(&applied), t1);
        assert!(!gone.announced);
        assert_eq!(gone.conditions[0].reason, "Expired");
    }
}
