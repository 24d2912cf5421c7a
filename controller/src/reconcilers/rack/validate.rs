//! Validate stage (pure): what CEL cannot check about a Rack's own spec, and whether its
//! networks overlap another Rack's of the same site.

use crds::rack::{RackNetworks, RackSpec};
use ipnet::IpNet;

use super::read::Peer;
use crate::ipam::{IpamError, Pool, overlap};

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

/// The networks an address plan is made from: provisioning (DHCP reservations at 10 + U) and
/// node (the IP pool). BMC networks are often shared by a whole site and are not compared.
pub fn addressed(networks: &RackNetworks) -> Vec<(&'static str, IpNet)> {
    let node = networks.node.as_ref().map(|n| ("node", n.subnet.as_str()));
    std::iter::once(("provisioning", networks.provisioning.subnet.as_str()))
        .chain(node)
        .filter_map(|(kind, subnet)| Some((kind, subnet.parse::<IpNet>().ok()?)))
        .collect()
}

/// One of a Rack's networks sharing addresses with another Rack's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The Rack.
    pub rack: String,
    /// Which of its networks: `provisioning` or `node`.
    pub network: &'static str,
    /// Its subnet.
    pub subnet: IpNet,
    /// The other Rack.
    pub peer: String,
    /// Which of the other Rack's networks.
    pub peer_network: &'static str,
    /// The other Rack's subnet.
    pub peer_subnet: IpNet,
}

impl std::fmt::Display for Overlap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rack {} {} {} overlaps rack {} {} {}",
            self.rack, self.network, self.subnet, self.peer, self.peer_network, self.peer_subnet
        )
    }
}

/// Overlaps a message names; the rest are counted (a condition message holds at most 32 KiB,
/// and a site whose racks all share one subnet has overlaps by the thousand).
const LISTED_OVERLAPS: usize = 8;

/// `overlaps` for a message: the first few, then how many more.
pub fn describe(overlaps: &[Overlap]) -> String {
    let mut listed: Vec<String> = overlaps
        .iter()
        .take(LISTED_OVERLAPS)
        .map(ToString::to_string)
        .collect();
    if overlaps.len() > LISTED_OVERLAPS {
        listed.push(format!("and {} more", overlaps.len() - LISTED_OVERLAPS));
    }
    listed.join("; ")
}

/// Every pair of addressed networks that `rack` (named `name`) shares with a peer: DHCP could
/// not tell the racks apart and their address plans would hand out the same addresses.
pub fn overlaps(name: &str, networks: &RackNetworks, peers: &[Peer]) -> Vec<Overlap> {
    let own = addressed(networks);
    let mut found = Vec::new();
    for peer in peers {
        for (peer_network, peer_subnet) in addressed(&peer.networks) {
            for (network, subnet) in &own {
                if overlap(subnet, &peer_subnet) {
                    found.push(Overlap {
                        rack: name.to_string(),
                        network,
                        subnet: *subnet,
                        peer: peer.name.clone(),
                        peer_network,
                        peer_subnet,
                    });
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::rack::{IpRange, NodeNetwork, ProvisioningNetwork, TorSwitch};

    fn spec() -> RackSpec {
        RackSpec {
            location: Default::default(),
            height_u: 42,
            power: Default::default(),
            standby: None,
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

    fn peer(name: &str, provisioning: &str, node: Option<&str>) -> Peer {
        let mut networks = spec().networks;
        networks.provisioning.subnet = provisioning.into();
        networks.node = node.map(|subnet| NodeNetwork {
            subnet: subnet.into(),
            gateway: String::new(),
            ..Default::default()
        });
        Peer {
            name: name.into(),
            networks,
            reports_overlap: false,
        }
    }

    #[test]
    fn overlapping_networks_name_both_racks() {
        let own = spec().networks; // provisioning 10.0.0.0/24, node 10.1.0.0/24
        let peers = [
            peer("b07", "10.0.0.0/24", Some("10.1.0.0/25")),
            peer("c01", "10.9.0.0/24", Some("10.0.0.128/25")),
            peer("d01", "10.8.0.0/24", Some("2001:db8::/64")),
        ];
        let found = overlaps("a01", &own, &peers);
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "rack a01 provisioning 10.0.0.0/24 overlaps rack b07 provisioning 10.0.0.0/24",
                "rack a01 node 10.1.0.0/24 overlaps rack b07 node 10.1.0.0/25",
                "rack a01 provisioning 10.0.0.0/24 overlaps rack c01 node 10.0.0.128/25",
            ]
        );
        assert!(overlaps("a01", &own, &peers[2..]).is_empty());
        assert_eq!(describe(&found[..1]), text[0]);
        let many: Vec<Peer> = (0..20)
            .map(|i| peer(&format!("r{i:02}"), "10.0.0.0/24", None))
            .collect();
        let message = describe(&overlaps("a01", &own, &many));
        assert!(message.contains("rack r07") && !message.contains("rack r08"));
        assert!(message.ends_with("; and 12 more"), "{message}");
    }
}
