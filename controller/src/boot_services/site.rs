//! The DHCP view of the site (pure): each Rack's provisioning network, and a reservation for
//! every Server with a boot MAC in a rack. Derived only from the API objects, so every replica
//! and every restart answers a declared machine identically.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use boot::dhcp::site::Mode;
use boot::dhcp::{Mac, RackNet, Reservation, Site};
use crds::rack::{DhcpMode, RESERVED_HEAD};
use crds::{Rack, Server};
use ipnet::Ipv4Net;
use kube::ResourceExt;

/// The boot-relevant index: the DHCP site and which Server owns each boot MAC.
#[derive(Debug, Default, PartialEq)]
pub struct Index {
    /// What DHCP answers from.
    pub site: Site,
    /// `(namespace, name)` of the Server with each boot MAC.
    pub servers: HashMap<Mac, (String, String)>,
    /// MACs declared by more than one Server (never answered: which one would it be?).
    pub conflicts: Vec<Mac>,
    /// Pairs of racks (`namespace/name`) with overlapping provisioning subnets: a request
    /// matching both is never answered.
    pub overlapping: Vec<(String, String)>,
}

/// The provisioning address of the server occupying `rack_unit`, if the subnet has it outside
/// the dynamic range.
pub fn reserved_address(net: &RackNet, rack_unit: u32) -> Option<Ipv4Addr> {
    let n = u32::from(net.subnet.network()).checked_add(RESERVED_HEAD.checked_add(rack_unit)?)?;
    let addr = Ipv4Addr::from(n);
    let in_range = net
        .range
        .is_some_and(|(s, e)| (u32::from(s)..=u32::from(e)).contains(&n));
    (net.subnet.contains(&addr) && addr != net.subnet.broadcast() && !in_range).then_some(addr)
}

fn v4(s: &str) -> Option<Ipv4Addr> {
    match s.parse::<IpAddr>().ok()? {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    }
}

/// The provisioning network of a rack (None when it is not IPv4 or does not parse).
pub fn rack_net(rack: &Rack) -> Option<RackNet> {
    let p = &rack.spec.networks.provisioning;
    let subnet: Ipv4Net = p.subnet.parse().ok()?;
    Some(RackNet {
        id: format!(
            "{}/{}",
            rack.namespace().unwrap_or_default(),
            rack.name_any()
        ),
        subnet: subnet.trunc(),
        gateway: p.gateway.as_deref().and_then(v4),
        range: p
            .dhcp_range
            .as_ref()
            .and_then(|r| Some((v4(&r.start)?, v4(&r.end)?))),
        mode: match p.dhcp_mode {
            DhcpMode::Authoritative => Mode::Authoritative,
            DhcpMode::Proxy => Mode::Proxy,
        },
    })
}

/// Builds the index from the cached Racks and Servers.
pub fn index<'a>(
    racks: impl IntoIterator<Item = &'a Rack>,
    servers: impl IntoIterator<Item = &'a Server>,
) -> Index {
    let mut racks: Vec<RackNet> = racks.into_iter().filter_map(rack_net).collect();
    racks.sort_by(|a, b| a.id.cmp(&b.id));
    let mut idx = Index::default();
    let mut seen: HashMap<Mac, usize> = HashMap::new();
    for s in servers {
        let Some(mac) = s.spec.boot_mac_address.as_deref().and_then(Mac::parse) else {
            continue;
        };
        let ns = s.namespace().unwrap_or_default();
        *seen.entry(mac).or_default() += 1;
        idx.servers.insert(mac, (ns.clone(), s.name_any()));
        let rack = s
            .spec
            .rack_ref
            .as_ref()
            .map(|r| format!("{ns}/{}", r.name))
            .and_then(|id| racks.iter().find(|r| r.id == id));
        let (Some(rack), Some(unit)) = (rack, s.spec.rack_unit) else {
            continue;
        };
        if let Some(address) = reserved_address(rack, unit) {
            idx.site.reservations.insert(
                mac,
                Reservation {
                    rack: rack.id.clone(),
                    address,
                    hostname: s.name_any(),
                },
            );
        }
    }
    for (mac, n) in seen {
        if n > 1 {
            idx.servers.remove(&mac);
            idx.site.reservations.remove(&mac);
            idx.conflicts.push(mac);
        }
    }
    idx.conflicts.sort();
    for (i, a) in racks.iter().enumerate() {
        for b in &racks[i + 1..] {
            if crate::ipam::overlap(&a.subnet.into(), &b.subnet.into()) {
                idx.overlapping.push((a.id.clone(), b.id.clone()));
            }
        }
    }
    idx.site.racks = racks;
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rack(name: &str, subnet: &str, range: Option<(&str, &str)>) -> Rack {
        let mut spec: crds::RackSpec = serde_json::from_value(serde_json::json!({
            "location": {"site": "fra1"},
            "networks": {"provisioning": {"subnet": subnet}}
        }))
        .unwrap();
        spec.networks.provisioning.dhcp_range = range.map(|(s, e)| crds::rack::IpRange {
            start: s.into(),
            end: e.into(),
        });
        let mut r = Rack::new(name, spec);
        r.metadata.namespace = Some("fra1".into());
        r
    }

    fn server(name: &str, rack: &str, unit: u32, mac: &str) -> Server {
        let spec: crds::ServerSpec = serde_json::from_value(serde_json::json!({
            "rackRef": {"name": rack}, "rackUnit": unit, "bootMACAddress": mac
        }))
        .unwrap();
        let mut s = Server::new(name, spec);
        s.metadata.namespace = Some("fra1".into());
        s
    }

    #[test]
    fn reservations_follow_the_rack_unit_and_skip_the_range() {
        let racks = [
            rack("a", "10.1.0.0/24", Some(("10.1.0.100", "10.1.0.199"))),
            rack("b", "10.2.0.0/24", None),
        ];
        let servers = [
            server("a-u01", "a", 1, "52:54:00:00:0a:01"),
            server("a-u95", "a", 95, "52:54:00:00:0a:95"),
            server("b-u03", "b", 3, "52:54:00:00:0b:03"),
        ];
        let idx = index(&racks, &servers);
        let get = |m: &str| idx.site.reservations.get(&Mac::parse(m).unwrap()).cloned();
        let a1 = get("52:54:00:00:0a:01").unwrap();
        assert_eq!(
            (a1.rack.as_str(), a1.address),
            ("fra1/a", Ipv4Addr::new(10, 1, 0, 11))
        );
        assert_eq!(
            get("52:54:00:00:0b:03").unwrap().address,
            Ipv4Addr::new(10, 2, 0, 13)
        );
        assert!(
            get("52:54:00:00:0a:95").is_none(),
            "U95 would land in the dynamic range"
        );
        assert_eq!(idx.servers.len(), 3);
        // Same input, same answer (another replica, a restart).
        assert_eq!(index(&racks, &servers), idx);
    }

    #[test]
    fn overlapping_provisioning_subnets_are_listed() {
        let racks = [
            rack("a", "10.1.0.0/24", None),
            rack("b", "10.1.0.0/25", None),
            rack("c", "10.2.0.0/24", None),
        ];
        let idx = index(&racks, &[]);
        assert_eq!(
            idx.overlapping,
            [("fra1/a".to_string(), "fra1/b".to_string())]
        );
    }

    #[test]
    fn duplicate_macs_are_answered_for_neither() {
        let racks = [rack("a", "10.1.0.0/24", None)];
        let servers = [
            server("x", "a", 1, "52:54:00:00:00:01"),
            server("y", "a", 2, "52:54:00:00:00:01"),
        ];
        let idx = index(&racks, &servers);
        assert!(idx.site.reservations.is_empty());
        assert!(idx.servers.is_empty());
        assert_eq!(idx.conflicts.len(), 1);
    }
}
