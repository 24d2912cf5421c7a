//! Decide stage (pure): the Rack's status from its spec and its members.

use std::collections::{BTreeMap, BTreeSet};

use crds::ConditionStatus;
use crds::condition_types::{
    IP_POOL_AVAILABLE, LAYOUT_VALID, NETWORKS_DISTINCT, POWER_WITHIN_BUDGET,
};
use crds::rack::{IpPoolUsage, MAX_POOL_SIZE, PowerUsage, RackSlot, RackSpec, RackStatus};
use crds::reasons::{
    INVALID_SPEC, NETWORK_OVERLAP, OUT_OF_RANGE, OVER_BUDGET, POOL_EXHAUSTED, RECONCILED, U_OVERLAP,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::read::Member;
use super::validate::{Overlap, SpecProblem};
use crate::ipam::Pool;
use kube_kit::conditions::{Blocker, Desired, kstatus, merge};

/// What is wrong with where the servers sit.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Groups of servers sharing U, with the shared units: (units, servers).
    pub overlaps: Vec<(Vec<u32>, Vec<String>)>,
    /// Servers that do not fit inside the rack: (server, top U).
    pub out_of_range: Vec<(String, u32)>,
}

impl Layout {
    /// Whether every server fits and none shares a U.
    pub fn is_valid(&self) -> bool {
        self.overlaps.is_empty() && self.out_of_range.is_empty()
    }

    /// A message naming every server in conflict.
    pub fn message(&self) -> String {
        let mut parts: Vec<String> = self
            .overlaps
            .iter()
            .map(|(units, servers)| format!("{} share {}", servers.join(", "), units_text(units)))
            .collect();
        parts.extend(
            self.out_of_range
                .iter()
                .map(|(server, top)| format!("{server} reaches U{top}, above the rack's top")),
        );
        parts.join("; ")
    }
}

fn units_text(units: &[u32]) -> String {
    match (units.first(), units.last()) {
        (Some(a), Some(b)) if a == b => format!("U{a}"),
        (Some(a), Some(b)) => format!("U{a}-U{b}"),
        _ => String::new(),
    }
}

/// Finds overlaps and servers beyond the rack's height (switches with a U count as occupants).
pub fn layout(height: u32, members: &[Member], switches: &[(String, u32)]) -> Layout {
    let mut occupants: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
    let mut out_of_range = Vec::new();
    for m in members {
        let top = crds::rack::top_unit(m.bottom_u, m.height_u);
        if m.bottom_u == 0 || top > height {
            out_of_range.push((m.name.clone(), top));
        }
        for u in m.bottom_u..=top.min(height) {
            occupants.entry(u).or_default().insert(m.name.clone());
        }
    }
    for (name, u) in switches {
        occupants
            .entry(*u)
            .or_default()
            .insert(format!("switch/{name}"));
    }
    // Group the shared units by the exact set of servers sharing them.
    let mut groups: BTreeMap<Vec<String>, Vec<u32>> = BTreeMap::new();
    for (u, names) in occupants {
        if names.len() > 1 {
            groups
                .entry(names.into_iter().collect())
                .or_default()
                .push(u);
        }
    }
    let overlaps = groups
        .into_iter()
        .map(|(servers, units)| (units, servers))
        .collect();
    Layout {
        overlaps,
        out_of_range,
    }
}

/// The complete desired status.
pub fn decide(
    spec: &RackSpec,
    generation: Option<i64>,
    members: &[Member],
    pool: &Result<Option<Pool>, Vec<SpecProblem>>,
    overlaps: &[Overlap],
    current: Option<&RackStatus>,
    now: &Time,
) -> RackStatus {
    let switches: Vec<(String, u32)> = spec
        .tor_switches
        .iter()
        .filter_map(|s| s.rack_unit.map(|u| (s.name.clone(), u)))
        .collect();
    let layout = layout(spec.height_u, members, &switches);

    let mut servers_by_state: BTreeMap<String, u32> = BTreeMap::new();
    for m in members {
        *servers_by_state
            .entry(m.state.as_str().to_string())
            .or_default() += 1;
    }
    let mut slots: Vec<RackSlot> = members
        .iter()
        .map(|m| RackSlot {
            bottom_u: m.bottom_u,
            height_u: m.height_u,
            server: m.name.clone(),
            state: Some(m.state.as_str().to_string()),
        })
        .collect();
    slots.sort();
    let used_u = {
        let mut units = BTreeSet::new();
        for m in members {
            let top = crds::rack::top_unit(m.bottom_u, m.height_u);
            units.extend(m.bottom_u.max(1)..=top.min(spec.height_u));
        }
        u32::try_from(units.len()).unwrap_or(u32::MAX)
    };
    let declared: u64 = members.iter().map(|m| u64::from(m.max_power_watts)).sum();
    let budget = u64::from(spec.power.budget_watts);
    let over_budget = budget > 0 && declared > budget;
    let used_addresses = members.iter().filter(|m| m.holds_node_address).count() as u64;
    // Exact in the condition's message; saturated in status, whose integers must stay readable.
    let pool_size = match pool {
        Ok(Some(p)) => Some(p.size()),
        _ => None,
    };
    let ip_pool = pool_size.map(|size| IpPoolUsage {
        size: u64::try_from(size).map_or(MAX_POOL_SIZE, |s| s.min(MAX_POOL_SIZE)),
        used: used_addresses,
    });

    let layout_condition = if layout.is_valid() {
        Desired::new(
            LAYOUT_VALID,
            ConditionStatus::True,
            RECONCILED,
            "every server fits and no U is shared",
        )
    } else {
        let reason = if layout.overlaps.is_empty() {
            OUT_OF_RANGE
        } else {
            U_OVERLAP
        };
        Desired::new(
            LAYOUT_VALID,
            ConditionStatus::False,
            reason,
            layout.message(),
        )
    };
    let power_condition = if over_budget {
        Desired::new(
            POWER_WITHIN_BUDGET,
            ConditionStatus::False,
            OVER_BUDGET,
            format!("servers declare {declared} W, the rack's budget is {budget} W"),
        )
    } else if budget == 0 {
        Desired::new(
            POWER_WITHIN_BUDGET,
            ConditionStatus::True,
            RECONCILED,
            "no budget declared",
        )
    } else {
        Desired::new(
            POWER_WITHIN_BUDGET,
            ConditionStatus::True,
            RECONCILED,
            format!("{declared} W of {budget} W declared"),
        )
    };
    let pool_condition = match pool_size {
        Some(size) if u128::from(used_addresses) >= size => Desired::new(
            IP_POOL_AVAILABLE,
            ConditionStatus::False,
            POOL_EXHAUSTED,
            format!("all {size} node addresses are allocated"),
        ),
        Some(size) => Desired::new(
            IP_POOL_AVAILABLE,
            ConditionStatus::True,
            RECONCILED,
            format!(
                "{} of {size} node addresses free",
                size - u128::from(used_addresses)
            ),
        ),
        None => Desired::new(
            IP_POOL_AVAILABLE,
            ConditionStatus::True,
            RECONCILED,
            "no node network declared",
        ),
    };

    let networks_condition = if overlaps.is_empty() {
        Desired::new(
            NETWORKS_DISTINCT,
            ConditionStatus::True,
            RECONCILED,
            "no other rack of the site shares the provisioning or node network",
        )
    } else {
        Desired::new(
            NETWORKS_DISTINCT,
            ConditionStatus::False,
            NETWORK_OVERLAP,
            format!(
                "{}; a DHCP request that matches two racks is not answered and no node address is granted from an overlapping pool until one of the networks changes",
                super::validate::describe(overlaps)
            ),
        )
    };

    let blocker = match pool {
        Err(problems) => Err(Blocker::Stalled {
            reason: INVALID_SPEC,
            message: problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        }),
        Ok(_) if !overlaps.is_empty() => Err(Blocker::Stalled {
            reason: NETWORK_OVERLAP,
            message: networks_condition.message.clone(),
        }),
        Ok(_) if !layout.is_valid() => Err(Blocker::Stalled {
            reason: layout_condition.reason,
            message: layout_condition.message.clone(),
        }),
        Ok(_) if over_budget => Err(Blocker::Stalled {
            reason: OVER_BUDGET,
            message: power_condition.message.clone(),
        }),
        Ok(_) => Ok(()),
    };
    let mut desired: Vec<Desired> = kstatus(blocker).into();
    desired.extend([
        layout_condition,
        power_condition,
        pool_condition,
        networks_condition,
    ]);

    let current_conditions = current.map(|c| c.conditions.as_slice()).unwrap_or_default();
    RackStatus {
        observed_generation: generation,
        location_summary: Some(spec.location.summary()),
        server_count: u32::try_from(members.len()).unwrap_or(u32::MAX),
        servers_by_state,
        used_u,
        slots,
        power: Some(PowerUsage {
            declared_watts: declared,
            budget_watts: budget,
        }),
        ip_pool,
        conditions: merge(current_conditions, &desired, generation, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::ServerState;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn m(name: &str, u: u32, h: u32) -> Member {
        Member {
            name: name.into(),
            bottom_u: u,
            height_u: h,
            max_power_watts: 500,
            state: ServerState::Registering,
            holds_node_address: false,
        }
    }

    #[test]
    fn overlap_names_both_servers() {
        let l = layout(42, &[m("a", 10, 2), m("b", 11, 1), m("c", 20, 1)], &[]);
        assert_eq!(
            l.overlaps,
            vec![(vec![11], vec!["a".to_string(), "b".to_string()])]
        );
        assert_eq!(l.message(), "a, b share U11");
    }

    #[test]
    fn server_taller_than_rack_is_out_of_range() {
        let l = layout(42, &[m("big", 41, 4)], &[]);
        assert_eq!(l.out_of_range, vec![("big".to_string(), 44)]);
        assert!(!l.is_valid());
    }

    #[test]
    fn switch_slot_conflicts_with_server() {
        let l = layout(42, &[m("a", 42, 1)], &[("tor1".into(), 42)]);
        assert_eq!(
            l.overlaps[0].1,
            vec!["a".to_string(), "switch/tor1".to_string()]
        );
    }

    #[test]
    fn power_and_counts() {
        let spec: RackSpec = serde_json::from_value(serde_json::json!({
            "location": {"site": "fra1"}, "heightU": 42, "power": {"budgetWatts": 900},
            "networks": {"provisioning": {"subnet": "10.0.0.0/24"}}
        }))
        .unwrap();
        let now = Time("2026-01-01T00:00:00Z".parse().unwrap());
        let members = [m("a", 1, 1), m("b", 2, 1)];
        let st = decide(&spec, Some(1), &members, &Ok(None), &[], None, &now);
        assert_eq!(st.server_count, 2);
        assert_eq!(st.used_u, 2);
        assert_eq!(st.servers_by_state["Registering"], 2);
        let power = st
            .conditions
            .iter()
            .find(|c| c.type_ == "PowerWithinBudget")
            .unwrap();
        assert_eq!(power.reason, "OverBudget");
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        // Deciding again from the written status changes nothing: no write at rest.
        let later = Time("2026-01-02T00:00:00Z".parse().unwrap());
        assert_eq!(
            decide(&spec, Some(1), &members, &Ok(None), &[], Some(&st), &later),
            st
        );
    }

    fn spec(networks: serde_json::Value) -> RackSpec {
        serde_json::from_value(serde_json::json!({
            "location": {"site": "fra1"}, "heightU": 42, "networks": networks
        }))
        .unwrap()
    }

    fn condition<'a>(st: &'a RackStatus, type_: &str) -> &'a Condition {
        st.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn ipv6_node_pool_saturates_in_status_and_is_exact_in_the_message() {
        let spec = spec(serde_json::json!({
            "provisioning": {"subnet": "10.0.0.0/24"},
            "node": {"subnet": "2001:db8:10::/64", "gateway": "2001:db8:10::1"}
        }));
        let now = Time("2026-01-01T00:00:00Z".parse().unwrap());
        let pool = super::super::validate::validate(&spec);
        let st = decide(&spec, Some(1), &[], &pool, &[], None, &now);
        assert_eq!(
            st.ip_pool,
            Some(IpPoolUsage {
                size: MAX_POOL_SIZE,
                used: 0
            })
        );
        // The API server reads status integers as int64: the JSON must hold one.
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json["ipPool"]["size"].as_i64(), Some(9_007_199_254_740_991));
        assert_eq!(
            condition(&st, "IPPoolAvailable").message,
            "18446744073709551614 of 18446744073709551614 node addresses free"
        );
        assert_eq!(condition(&st, "Ready").status, "True");
    }

    #[test]
    fn overlapping_networks_stall_the_rack() {
        let spec = spec(serde_json::json!({"provisioning": {"subnet": "10.0.0.0/24"}}));
        let now = Time("2026-01-01T00:00:00Z".parse().unwrap());
        let overlap = Overlap {
            rack: "a01".into(),
            network: "provisioning",
            subnet: "10.0.0.0/24".parse().unwrap(),
            peer: "b07".into(),
            peer_network: "provisioning",
            peer_subnet: "10.0.0.0/24".parse().unwrap(),
        };
        let st = decide(&spec, Some(1), &[], &Ok(None), &[overlap], None, &now);
        let distinct = condition(&st, "NetworksDistinct");
        assert_eq!(
            (distinct.status.as_str(), distinct.reason.as_str()),
            ("False", "NetworkOverlap")
        );
        assert!(distinct.message.starts_with(
            "rack a01 provisioning 10.0.0.0/24 overlaps rack b07 provisioning 10.0.0.0/24; "
        ));
        assert_eq!(condition(&st, "Ready").status, "False");
        let stalled = condition(&st, "Stalled");
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "NetworkOverlap")
        );
        let alone = decide(&spec, Some(1), &[], &Ok(None), &[], None, &now);
        assert_eq!(condition(&alone, "NetworksDistinct").status, "True");
        assert_eq!(condition(&alone, "Ready").status, "True");
    }
}
