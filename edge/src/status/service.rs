//! The edge daemon's part of a LoadBalancer Service's status (pure): this router's
//! `<router>.border.groundwork.dev/Announced` condition, saying which links carry the
//! Service's addresses toward which nodes, and since when.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube_kit::conditions::{Desired, merge, owned};
use serde::Serialize;

use crate::apply::ConfigState;
use crate::conditions;
use crate::services::ServiceMapping;
use crate::status::observe::Observation;
use crds::ConditionStatus;
use crds::service::reasons;

/// What this router writes into a Service's status (server-side apply under its own field
/// manager): its condition, or nothing (which removes a condition it wrote before).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ServiceStatus {
    /// This router's Announced condition.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl ServiceStatus {
    /// What `svc` shows of this router's condition `type_`.
    pub fn observed(svc: &Service, type_: &str) -> Self {
        let all = svc
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        Self {
            conditions: owned(all, &[type_]),
        }
    }

    /// Whether the condition says announced.
    pub fn announced(&self) -> bool {
        self.conditions.iter().any(|c| c.status == "True")
    }
}

/// The links with an Established session, per address family: they carry every Service
/// route of that family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Carrying {
    /// Links with an Established IPv4 session.
    pub v4: Vec<String>,
    /// Links with an Established IPv6 session.
    pub v6: Vec<String>,
}

impl Carrying {
    /// From what BIRD says about every link (a session's family is its neighbor's).
    pub fn observed(observations: &BTreeMap<String, Observation>) -> Self {
        let mut out = Self::default();
        for (link, observation) in observations {
            let Observation::Sessions(sessions) = observation else {
                continue;
            };
            for session in sessions.iter().filter(|s| s.is_established()) {
                match session.neighbor {
                    Some(IpAddr::V4(_)) => out.v4.push(link.clone()),
                    Some(IpAddr::V6(_)) => out.v6.push(link.clone()),
                    None => {}
                }
            }
        }
        out
    }

    /// The links carrying `prefix`.
    pub fn of(&self, prefix: &IpNet) -> &[String] {
        match prefix {
            IpNet::V4(_) => &self.v4,
            IpNet::V6(_) => &self.v6,
        }
    }
}

/// The inputs of one Service's status.
pub struct ServiceInput<'a> {
    /// This router's condition type.
    pub type_: &'a str,
    /// What the Service shows today.
    pub current: &'a ServiceStatus,
    /// Its generation.
    pub generation: Option<i64>,
    /// What the mapping made of it (`None`: not a candidate of this router).
    pub mapping: Option<&'a ServiceMapping>,
    /// The router's configuration state.
    pub config: Result<&'a ConfigState, (&'static str, &'a str)>,
    /// The links carrying each family.
    pub carrying: &'a Carrying,
    /// Now.
    pub now: Timestamp,
}

/// The desired status of one Service.
pub fn service_status(input: ServiceInput<'_>) -> ServiceStatus {
    let desired = match (input.mapping, input.config) {
        (None, _) => return ServiceStatus::default(),
        (Some(ServiceMapping::Withdrawn(p)), _) => Desired::new(
            input.type_.to_string(),
            ConditionStatus::False,
            p.reason,
            p.message.clone(),
        ),
        (Some(ServiceMapping::Routed { .. }), Err((reason, message))) => Desired::new(
            input.type_.to_string(),
            ConditionStatus::False,
            reason,
            format!("the BorderRouter is invalid: {message}"),
        ),
        (
            Some(ServiceMapping::Routed { .. }),
            Ok(ConfigState::Failed {
                reason, message, ..
            }),
        ) => Desired::new(
            input.type_.to_string(),
            ConditionStatus::False,
            reason,
            message.clone(),
        ),
        (
            Some(ServiceMapping::Routed {
                prefixes,
                next_hops,
            }),
            Ok(ConfigState::Applied { .. }),
        ) => {
            let carried: Vec<String> = prefixes
                .iter()
                .filter(|p| !input.carrying.of(p).is_empty())
                .map(|p| format!("{p} announced on {}", input.carrying.of(p).join(", ")))
                .collect();
            let missing: Vec<String> = prefixes
                .iter()
                .filter(|p| input.carrying.of(p).is_empty())
                .map(|p| format!("{p} not announced (no Established session of its family)"))
                .collect();
            if carried.is_empty() {
                Desired::new(
                    input.type_.to_string(),
                    ConditionStatus::False,
                    reasons::NO_LINK,
                    format!(
                        "no UpstreamLink of the router has an Established session of the address family: {}",
                        missing.join("; ")
                    ),
                )
            } else {
                let all: Vec<String> = carried.into_iter().chain(missing).collect();
                Desired::new(
                    input.type_.to_string(),
                    ConditionStatus::True,
                    reasons::ANNOUNCED,
                    format!("{} via {}", all.join("; "), join(next_hops)),
                )
            }
        }
    };
    ServiceStatus {
        conditions: merge(
            &input.current.conditions,
            &[desired],
            input.generation,
            &conditions::to_time(input.now),
        ),
    }
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::problem::Problem;

    const TYPE: &str = "edge1.border.groundwork.dev/Announced";

    fn applied() -> ConfigState {
        ConfigState::Applied { hash: "h".into() }
    }

    fn routed() -> ServiceMapping {
        ServiceMapping::Routed {
            prefixes: vec!["203.0.113.64/32".parse().unwrap()],
            next_hops: vec!["10.20.0.11".parse().unwrap()],
        }
    }

    fn input<'a>(
        current: &'a ServiceStatus,
        mapping: Option<&'a ServiceMapping>,
        config: &'a ConfigState,
        carrying: &'a Carrying,
        now: &str,
    ) -> ServiceInput<'a> {
        ServiceInput {
            type_: TYPE,
            current,
            generation: Some(1),
            mapping,
            config: Ok(config),
            carrying,
            now: now.parse().unwrap(),
        }
    }

    #[test]
    fn announced_names_links_and_next_hops_and_keeps_its_time() {
        let cfg = applied();
        let links = Carrying {
            v4: vec!["isp-a".to_string(), "isp-b".to_string()],
            v6: vec!["isp-a".to_string()],
        };
        let none = ServiceStatus::default();
        let m = routed();
        let first = service_status(input(&none, Some(&m), &cfg, &links, "2026-01-01T00:00:00Z"));
        let c = &first.conditions[0];
        assert_eq!((c.type_.as_str(), c.status.as_str()), (TYPE, "True"));
        assert_eq!(
            c.message,
            "203.0.113.64/32 announced on isp-a, isp-b via 10.20.0.11"
        );
        let later = service_status(input(
            &first,
            Some(&m),
            &cfg,
            &links,
            "2026-01-01T01:00:00Z",
        ));
        assert_eq!(later, first, "steady: no write");
    }

    #[test]
    fn withdrawn_no_link_and_not_ours() {
        let cfg = applied();
        let none = ServiceStatus::default();
        let m = routed();
        let v6_only = Carrying {
            v4: vec![],
            v6: vec!["isp-a".to_string()],
        };
        let s = service_status(input(
            &none,
            Some(&m),
            &cfg,
            &v6_only,
            "2026-01-01T00:00:00Z",
        ));
        assert_eq!(
            s.conditions[0].reason, "NoLink",
            "an IPv6 session carries no /32"
        );
        let w = ServiceMapping::Withdrawn(Problem::new("NoNextHop", "no ready endpoint"));
        let none_up = Carrying::default();
        let s = service_status(input(&s, Some(&w), &cfg, &none_up, "2026-01-01T00:00:00Z"));
        assert_eq!(s.conditions[0].reason, "NoNextHop");
        assert!(!s.announced());
        assert_eq!(
            service_status(input(&s, None, &cfg, &none_up, "2026-01-01T00:00:00Z")),
            ServiceStatus::default()
        );
    }
}
