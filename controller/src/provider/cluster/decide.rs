//! Decide stage (pure): a GroundworkCluster's failure domains from the site's Racks.

use std::collections::BTreeMap;

use crds::ConditionStatus::{False, True};
use crds::Rack;
use crds::provider::{FailureDomain, GroundworkCluster, GroundworkClusterStatus, Initialization};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use kube_kit::conditions::{Blocker, Desired, kstatus, merge};

use crate::provider::machine::decide::{reasons, types};

/// No selected Rack: the cluster has no failure domain.
const NO_RACKS: &str = "NoRacks";
/// `spec.failureDomains.rackSelector` cannot be parsed.
const INVALID_SELECTOR: &str = "InvalidSelector";

/// The desired status: one failure domain per distinct failure domain of the selected Racks.
pub fn decide(
    gc: &GroundworkCluster,
    racks: &[&Rack],
    paused: bool,
    current: Option<&GroundworkClusterStatus>,
    now: &Time,
) -> GroundworkClusterStatus {
    let selection = gc.spec.failure_domains.clone().unwrap_or_default();
    let selector = selection.rack_selector.map(Selector::try_from).transpose();
    let mut domains: BTreeMap<String, FailureDomain> = BTreeMap::new();
    let blocker = match &selector {
        Err(e) => Some(Blocker::Stalled {
            reason: INVALID_SELECTOR,
            message: format!("spec.failureDomains.rackSelector: {e}"),
        }),
        Ok(selector) => {
            for rack in racks {
                if selector.as_ref().is_some_and(|s| !s.matches(rack.labels())) {
                    continue;
                }
                let name = rack
                    .spec
                    .failure_domain
                    .clone()
                    .unwrap_or_else(|| rack.name_any());
                let fd = domains
                    .entry(name.clone())
                    .or_insert_with(|| FailureDomain {
                        control_plane: Some(!selection.workers_only.contains(&name)),
                        name,
                        attributes: BTreeMap::from([(
                            "site".into(),
                            rack.spec.location.site.clone(),
                        )]),
                    });
                let racks = fd.attributes.entry("racks".into()).or_default();
                if !racks.is_empty() {
                    racks.push(',');
                }
                racks.push_str(&rack.name_any());
            }
            domains.is_empty().then(|| Blocker::Stalled {
                reason: NO_RACKS,
                message: "no Rack of the site matches spec.failureDomains".into(),
            })
        }
    };
    let provisioned = blocker.is_none();
    let ready = match (paused, blocker) {
        (true, _) => Err(Blocker::Progressing {
            reason: reasons::PAUSED,
            message: "paused by Cluster API".into(),
        }),
        (false, Some(b)) => Err(b),
        (false, None) => Ok(()),
    };
    let mut desired: Vec<Desired> = kstatus(ready).into();
    desired.push(if paused {
        Desired::new(
            types::PAUSED,
            True,
            reasons::PAUSED,
            "paused by Cluster API",
        )
    } else {
        Desired::new(types::PAUSED, False, reasons::NOT_PAUSED, "not paused")
    });
    let generation = gc.metadata.generation;
    let current_conditions = current.map(|c| c.conditions.as_slice()).unwrap_or_default();
    GroundworkClusterStatus {
        observed_generation: generation,
        initialization: Some(Initialization {
            provisioned: Some(provisioned),
        }),
        failure_domains: domains.into_values().collect(),
        conditions: merge(current_conditions, &desired, generation, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::provider::{FailureDomainSelection, GroundworkClusterSpec};
    use crds::rack::RackSpec;

    fn rack(name: &str, fd: Option<&str>, class: &str) -> Rack {
        let mut spec: RackSpec = serde_json::from_value(serde_json::json!({
            "location": {"site": "fra1"},
            "networks": {"provisioning": {"subnet": "10.0.0.0/24"}},
        }))
        .unwrap();
        spec.failure_domain = fd.map(str::to_string);
        let mut r = Rack::new(name, spec);
        r.metadata.labels = Some([("class".to_string(), class.to_string())].into());
        r
    }

    #[test]
    fn racks_become_failure_domains_shared_by_label() {
        let (a, b, c) = (
            rack("a01", Some("room-1"), "x"),
            rack("a02", Some("room-1"), "x"),
            rack("b01", None, "y"),
        );
        let mut gc = GroundworkCluster::new("c", GroundworkClusterSpec::default());
        let now = Time("2026-01-01T00:00:00Z".parse().unwrap());
        let s = decide(&gc, &[&a, &b, &c], false, None, &now);
        assert_eq!(s.failure_domains.len(), 2);
        assert_eq!(s.failure_domains[1].name, "room-1");
        assert_eq!(s.failure_domains[1].attributes["racks"], "a01,a02");
        assert_eq!(s.initialization.as_ref().unwrap().provisioned, Some(true));
        gc.spec.failure_domains = Some(FailureDomainSelection {
            rack_selector: Some(
                serde_json::from_value(serde_json::json!({"matchLabels": {"class": "y"}})).unwrap(),
            ),
            workers_only: vec!["b01".into()],
        });
        let s = decide(&gc, &[&a, &b, &c], false, Some(&s), &now);
        assert_eq!(s.failure_domains.len(), 1);
        assert_eq!(s.failure_domains[0].control_plane, Some(false));
        gc.spec.failure_domains.as_mut().unwrap().rack_selector = Some(
            serde_json::from_value(serde_json::json!({"matchLabels": {"class": "z"}})).unwrap(),
        );
        let s = decide(&gc, &[&a, &b, &c], false, Some(&s), &now);
        assert_eq!(s.initialization.unwrap().provisioned, Some(false));
        assert!(
            s.conditions
                .iter()
                .any(|c| c.type_ == "Stalled" && c.reason == "NoRacks")
        );
    }
}
