//! Pure selection of the LoadBalancer Service addresses this router announces, and the nodes
//! it forwards them to.
//!
//! A Service is a candidate when it is of type LoadBalancer, the controller reports its
//! addresses managed (it carries `groundwork.dev/AddressAllocated`, True or — while a change
//! fails and the working addresses are kept — False) and they lie in one of this router's
//! `serviceAddressPools`. Its next hops are the InternalIPs, on the router's
//! `nodeNetworks`, of the Ready nodes that can serve it: with `externalTrafficPolicy: Local`
//! the nodes holding a ready endpoint in its EndpointSlices; otherwise every Ready node, as
//! long as the Service has a ready endpoint at all. No next hop, no announcement.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crds::BorderRouterSpec;
use crds::service::{SERVICE_NAME_LABEL, conditions::ADDRESS_ALLOCATED, reasons};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::problem::Problem;

/// `namespace/name` of a Service.
pub type ServiceKey = String;

/// What this router does with one candidate Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceMapping {
    /// Its addresses are routed to these next hops (all families, sorted).
    Routed {
        /// Its host routes.
        prefixes: Vec<IpNet>,
        /// The nodes' addresses.
        next_hops: Vec<IpAddr>,
    },
    /// Not routed, with the reason (`NoNextHop`, or a validation reason).
    Withdrawn(Problem),
}

/// The candidate Services of this router and the next hops of every address (shared
/// addresses get the union of their Services' next hops).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Every candidate Service, by key.
    pub services: BTreeMap<ServiceKey, ServiceMapping>,
    /// Every routed address with its next hops.
    pub routes: BTreeMap<IpNet, BTreeSet<IpAddr>>,
    /// The Node (by name) of every next hop in [`Self::routes`]: which machines carry an
    /// address, for views of the site (the router itself needs only the addresses).
    pub next_hop_nodes: BTreeMap<IpAddr, BTreeSet<String>>,
}

/// The key of a Service.
pub fn key(svc: &Service) -> ServiceKey {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Parses CIDRs, leaving out what does not parse (admission checked them).
fn nets(cidrs: &[String]) -> Vec<IpNet> {
    cidrs
        .iter()
        .filter_map(|c| c.parse::<IpNet>().ok().map(|n| n.trunc()))
        .collect()
}

/// The addresses of `svc` inside this router's pools, when it is a candidate.
fn candidate_addresses(svc: &Service, pools: &[IpNet]) -> Option<Vec<IpAddr>> {
    let spec = svc.spec.as_ref()?;
    let status = svc.status.as_ref()?;
    // The controller's condition says the addresses are its own; a False one still comes
    // with the addresses that keep working.
    let managed = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == ADDRESS_ALLOCATED);
    if spec.type_.as_deref() != Some("LoadBalancer") || !managed {
        return None;
    }
    let addresses: Vec<IpAddr> = status
        .load_balancer
        .as_ref()?
        .ingress
        .iter()
        .flatten()
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .filter(|ip| pools.iter().any(|p| p.contains(ip)))
        .collect();
    (!addresses.is_empty()).then_some(addresses)
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn internal_ips(node: &Node) -> impl Iterator<Item = IpAddr> + '_ {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
}

/// The nodes holding a ready endpoint, by Service (`namespace/name`, from the slices'
/// `kubernetes.io/service-name` label); an endpoint without a `ready` condition counts as
/// ready, as the API documents. One pass over the slices for all Services.
fn endpoint_nodes(slices: &[EndpointSlice]) -> BTreeMap<ServiceKey, BTreeSet<&str>> {
    let mut out: BTreeMap<ServiceKey, BTreeSet<&str>> = BTreeMap::new();
    for slice in slices {
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
        else {
            continue;
        };
        let key = format!(
            "{}/{service}",
            slice.metadata.namespace.as_deref().unwrap_or_default()
        );
        let nodes = slice
            .endpoints
            .iter()
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
            .filter_map(|e| e.node_name.as_deref());
        out.entry(key).or_default().extend(nodes);
    }
    out
}

/// Selects the candidates of the router `spec` among `services`.
pub fn select(
    spec: &BorderRouterSpec,
    services: &[Service],
    slices: &[EndpointSlice],
    nodes: &[Node],
) -> Selection {
    let pools: Vec<IpNet> = spec
        .service_address_pools
        .iter()
        .flat_map(|p| nets(&p.cidrs))
        .collect();
    let node_networks = nets(&spec.node_networks);
    let ready_nodes: BTreeMap<&str, &Node> = nodes
        .iter()
        .filter(|n| ready(n))
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n)))
        .collect();
    let endpoints_by_service = endpoint_nodes(slices);
    let no_endpoints = BTreeSet::new();
    let mut out = Selection::default();
    for svc in services {
        let Some(addresses) = candidate_addresses(svc, &pools) else {
            continue;
        };
        let endpoints = endpoints_by_service.get(&key(svc)).unwrap_or(&no_endpoints);
        let local = svc
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
            == Some("Local");
        let serving: Vec<&Node> = if local {
            endpoints
                .iter()
                .filter_map(|n| ready_nodes.get(n).copied())
                .collect()
        } else if endpoints.is_empty() {
            Vec::new()
        } else {
            ready_nodes.values().copied().collect()
        };
        let mut hop_nodes: BTreeMap<IpAddr, BTreeSet<&str>> = BTreeMap::new();
        for node in &serving {
            let name = node.metadata.name.as_deref().unwrap_or_default();
            for ip in internal_ips(node).filter(|ip| node_networks.iter().any(|n| n.contains(ip))) {
                hop_nodes.entry(ip).or_default().insert(name);
            }
        }
        let hops: BTreeSet<IpAddr> = hop_nodes.keys().copied().collect();
        let mut prefixes = Vec::new();
        let mut used = BTreeSet::new();
        for ip in &addresses {
            let family_hops: BTreeSet<IpAddr> = hops
                .iter()
                .filter(|h| h.is_ipv4() == ip.is_ipv4())
                .copied()
                .collect();
            if !family_hops.is_empty() {
                let prefix = IpNet::from(*ip);
                used.extend(family_hops.iter().copied());
                out.routes.entry(prefix).or_default().extend(family_hops);
                prefixes.push(prefix);
            }
        }
        for hop in &used {
            let names = hop_nodes.get(hop).into_iter().flatten();
            out.next_hop_nodes
                .entry(*hop)
                .or_default()
                .extend(names.map(|n| n.to_string()));
        }
        let mapping = if prefixes.is_empty() {
            ServiceMapping::Withdrawn(Problem::new(
                reasons::NO_NEXT_HOP,
                no_next_hop(local, endpoints, serving.len()),
            ))
        } else {
            ServiceMapping::Routed {
                prefixes,
                next_hops: used.into_iter().collect(),
            }
        };
        out.services.insert(key(svc), mapping);
    }
    out
}

fn no_next_hop(local: bool, endpoints: &BTreeSet<&str>, serving: usize) -> String {
    if endpoints.is_empty() {
        "no ready endpoint on any node: withdrawn".into()
    } else if serving == 0 {
        format!(
            "no Ready node among the nodes with ready endpoints ({}){}: withdrawn",
            endpoints.iter().copied().collect::<Vec<_>>().join(", "),
            if local {
                " (externalTrafficPolicy Local)"
            } else {
                ""
            }
        )
    } else {
        "no serving node has an InternalIP of the address family on the BorderRouter's nodeNetworks: withdrawn".into()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn spec() -> BorderRouterSpec {
        serde_json::from_value(json!({
            "localASN": 65000, "routerID": "192.0.2.1",
            "ownPrefixes": ["203.0.113.0/24", "2001:db8:100::/48"],
            "serviceAddressPools": [{"name": "web", "cidrs": ["203.0.113.64/28", "2001:db8:100:64::/120"]}],
            "nodeNetworks": ["10.20.0.0/24", "2001:db8:20::/64"]
        }))
        .unwrap()
    }

    fn svc(name: &str, ips: &[&str], policy: &str) -> Service {
        let ingress: Vec<_> = ips.iter().map(|ip| json!({"ip": ip})).collect();
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "app"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy},
            "status": {"loadBalancer": {"ingress": ingress},
                       "conditions": [{"type": ADDRESS_ALLOCATED, "status": "True", "reason": "Allocated",
                                       "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        }))
        .unwrap()
    }

    fn node(name: &str, ready: bool, ips: &[&str]) -> Node {
        let addresses: Vec<_> = ips
            .iter()
            .map(|ip| json!({"type": "InternalIP", "address": ip}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"addresses": addresses,
                       "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap()
    }

    fn slice(service: &str, endpoints: &[(&str, bool)]) -> EndpointSlice {
        let eps: Vec<_> = endpoints
            .iter()
            .map(|(n, r)| json!({"addresses": ["10.244.0.5"], "nodeName": n, "conditions": {"ready": r}}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": format!("{service}-x"), "namespace": "app",
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4", "endpoints": eps
        }))
        .unwrap()
    }

    fn nodes() -> Vec<Node> {
        vec![
            node("n1", true, &["10.20.0.11", "2001:db8:20::11"]),
            node("n2", true, &["10.20.0.12"]),
            node("n3", false, &["10.20.0.13"]),
            node("n4", true, &["192.168.9.9"]),
        ]
    }

    fn hops(sel: &Selection, prefix: &str) -> Vec<String> {
        sel.routes[&prefix.parse::<IpNet>().unwrap()]
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn cluster_policy_uses_every_ready_node_on_the_node_networks() {
        let s = svc("web", &["203.0.113.64", "2001:db8:100:64::1"], "Cluster");
        let sel = select(&spec(), &[s], &[slice("web", &[("n3", true)])], &nodes());
        assert_eq!(hops(&sel, "203.0.113.64/32"), ["10.20.0.11", "10.20.0.12"]);
        assert_eq!(hops(&sel, "2001:db8:100:64::1/128"), ["2001:db8:20::11"]);
    }

    #[test]
    fn next_hops_of_the_service_families_only() {
        let s = svc("web", &["203.0.113.64"], "Local");
        let sel = select(&spec(), &[s], &[slice("web", &[("n1", true)])], &nodes());
        assert_eq!(
            sel.services["app/web"],
            ServiceMapping::Routed {
                prefixes: vec!["203.0.113.64/32".parse().unwrap()],
                next_hops: vec!["10.20.0.11".parse().unwrap()],
            },
            "n1's IPv6 address is no next hop of an IPv4-only Service"
        );
    }

    #[test]
    fn local_policy_uses_ready_endpoint_nodes_only() {
        let s = svc("web", &["203.0.113.64"], "Local");
        let slices = [slice("web", &[("n2", true), ("n1", false), ("n3", true)])];
        let sel = select(&spec(), std::slice::from_ref(&s), &slices, &nodes());
        assert_eq!(hops(&sel, "203.0.113.64/32"), ["10.20.0.12"]);
        // Endpoints gone: withdrawn with a reason.
        let sel = select(&spec(), &[s], &[slice("web", &[])], &nodes());
        assert!(sel.routes.is_empty());
        match &sel.services["app/web"] {
            ServiceMapping::Withdrawn(p) => assert_eq!(p.reason, "NoNextHop"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_managed_addresses_in_our_pools_are_candidates() {
        let mut foreign_ingress = svc("a", &["203.0.113.65"], "Cluster");
        foreign_ingress.status.as_mut().unwrap().conditions = None;
        let other_pool = svc("b", &["198.51.100.7"], "Cluster");
        let mut kept = svc("c", &["203.0.113.66"], "Cluster");
        kept.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        let slices = [
            slice("a", &[("n1", true)]),
            slice("b", &[("n1", true)]),
            slice("c", &[("n1", true)]),
        ];
        let sel = select(
            &spec(),
            &[foreign_ingress, other_pool, kept],
            &slices,
            &nodes(),
        );
        assert_eq!(
            sel.services.keys().collect::<Vec<_>>(),
            ["app/c"],
            "an address kept while a change fails stays announced"
        );
    }

    #[test]
    fn next_hops_name_their_nodes() {
        let s = svc("web", &["203.0.113.64", "2001:db8:100:64::1"], "Local");
        let slices = [slice("web", &[("n1", true), ("n3", true)])];
        let sel = select(&spec(), &[s], &slices, &nodes());
        let named: Vec<(String, Vec<&str>)> = sel
            .next_hop_nodes
            .iter()
            .map(|(ip, n)| (ip.to_string(), n.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            named,
            [
                ("10.20.0.11".to_string(), vec!["n1"]),
                ("2001:db8:20::11".to_string(), vec!["n1"]),
            ],
            "every next hop named, and only next hops (n3 is NotReady)"
        );
        // A Service without next hops names no node.
        let sel = select(
            &spec(),
            &[svc("web", &["203.0.113.64"], "Local")],
            &[],
            &nodes(),
        );
        assert!(sel.next_hop_nodes.is_empty());
    }

    #[test]
    fn shared_address_gets_the_union_of_next_hops() {
        let a = svc("a", &["203.0.113.66"], "Local");
        let b = svc("b", &["203.0.113.66"], "Local");
        let slices = [slice("a", &[("n1", true)]), slice("b", &[("n2", true)])];
        let sel = select(&spec(), &[a, b], &slices, &nodes());
        assert_eq!(hops(&sel, "203.0.113.66/32"), ["10.20.0.11", "10.20.0.12"]);
        assert_eq!(sel.services.len(), 2);
    }
}
