//! Validate stage (pure): what CEL cannot check about a Rack's own spec.

use crds::rack::RackSpec;

use crate::ipam::{IpamError, Pool};

/// A problem with the Rack's spec.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecProblem {
    /// The node network's pool cannot be computed.
    #[error("node network: {0}")]
    NodePool(#[from] IpamError),
    /// The DHCP range ends before it starts.
    #[error("provisioning dhcpRange {0}-{1} ends before it starts")]
    DhcpRangeInverted(String, String),
    /// A switch sits outside the rack.
    #[error("switch {name} at U{unit} is outside the rack's {height} U")]
    SwitchOutOfRange {
        /// Switch name.
        name: String,
        /// Its U.
        unit: u32,
        /// Rack height.
        height: u32,
    },
}

/// The node pool when the spec declares one; every problem found otherwise.
pub fn validate(spec: &RackSpec) -> Result<Option<Pool>, Vec<SpecProblem>> {
    let mut problems = Vec::new();
    if let Some(range) = &spec.networks.provisioning.dhcp_range {
        let parsed = (
            range.start.parse::<std::net::IpAddr>(),
            range.end.parse::<std::net::IpAddr>(),
        );
        if let (Ok(start), Ok(end)) = parsed
            && end < start
        {
            problems.push(SpecProblem::DhcpRangeInverted(
                range.start.clone(),
                range.end.clone(),
            ));
        }
    }
    for switch in &spec.tor_switches {
        if let Some(unit) = switch.rack_unit
            && unit > spec.height_u
        {
            problems.push(SpecProblem::SwitchOutOfRange {
                name: switch.name.clone(),
                unit,
                height: spec.height_u,
            });
        }
    }
    let pool = spec.networks.node.as_ref().map(|node| {
        let reserved: Vec<(String, String)> = node
            .reserved
            .iter()
            .map(|r| (r.start.clone(), r.end.clone()))
            .collect();
        Pool::new(&node.subnet, &node.gateway, &node.dns, &reserved)
    });
    let pool = match pool.transpose() {
        Ok(pool) => pool,
        Err(e) => {
            problems.push(e.into());
            None
        }
    };
    if problems.is_empty() {
        Ok(pool)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::rack::{IpRange, NodeNetwork, ProvisioningNetwork, RackNetworks, TorSwitch};

    fn spec() -> RackSpec {
        RackSpec {
            location: Default::default(),
            height_u: 42,
            power: Default::default(),
            failure_domain: None,
            tor_switches: vec![],
            networks: RackNetworks {
                provisioning: ProvisioningNetwork {
                    subnet: "10.0.0.0/24".into(),
                    ..Default::default()
                },
                bmc: None,
                node: Some(NodeNetwork {
                    subnet: "10.1.0.0/24".into(),
                    gateway: "10.1.0.1".into(),
                    ..Default::default()
                }),
            },
        }
    }

    #[test]
    fn valid_spec_gives_its_pool() {
        let pool = validate(&spec()).unwrap().unwrap();
        assert_eq!(pool.size(), 253);
    }

    #[test]
    fn every_problem_is_reported() {
        let mut s = spec();
        s.networks.provisioning.dhcp_range = Some(IpRange {
            start: "10.0.0.50".into(),
            end: "10.0.0.10".into(),
        });
        s.tor_switches.push(TorSwitch {
            name: "tor1".into(),
            rack_unit: Some(43),
            ..Default::default()
        });
        let problems = validate(&s).unwrap_err();
        assert_eq!(problems.len(), 2);
        assert!(problems[1].to_string().contains("tor1 at U43"));
    }
}
