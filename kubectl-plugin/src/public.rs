//! Which servers carry which public (LoadBalancer Service) addresses, as the edge daemons route
//! them. Pure: the next hops come from [`edge::services::select`], the very function the edge
//! daemon of each BorderRouter uses, so this view and the routers never disagree; all that is
//! added here is the way from a next hop's Node to the site's Server.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crds::service::conditions::announced;
use crds::{BorderRouter, Server};
use edge::problem::Problem;
use edge::services::{ServiceKey, ServiceMapping, select};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

/// What the public addresses are computed from: the site's BorderRouters, and the Services,
/// EndpointSlices and Nodes of the cluster.
#[derive(Default)]
pub struct Inputs {
    /// The BorderRouters of the site (namespace).
    pub routers: Vec<BorderRouter>,
    /// Every Service, all namespaces.
    pub services: Vec<Service>,
    /// Every EndpointSlice, all namespaces.
    pub slices: Vec<EndpointSlice>,
    /// Every Node.
    pub nodes: Vec<Node>,
}

/// The public addresses of a site, or why they are not shown.
#[derive(Clone, Debug, PartialEq)]
pub enum Public {
    /// Read and selected.
    Shown(Addresses),
    /// Not read (for instance RBAC denies listing Services cluster-wide): the reason, one line.
    Unavailable(String),
}

/// A next hop of a public address: a Server of the site, or a Node that is none.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Carrier {
    /// The Server (by name) the Node runs on.
    Server(String),
    /// A Node that is no Server of this site (by name).
    Node(String),
}

impl fmt::Display for Carrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server(name) => f.write_str(name),
            Self::Node(name) => write!(f, "node/{name}"),
        }
    }
}

/// One routed address of one Service.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// The host route (`/32` or `/128`).
    pub prefix: IpNet,
    /// The Service (`namespace/name`).
    pub service: ServiceKey,
    /// The BorderRouter routing it.
    pub router: String,
    /// The machines that are next hops of the address for this Service, sorted.
    pub carriers: Vec<Carrier>,
    /// The router's `Announced` condition on the Service, as its edge daemon wrote it.
    pub announced: Option<Condition>,
}

/// A Service of a router's pools that is not routed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawn {
    /// The Service (`namespace/name`).
    pub service: ServiceKey,
    /// The BorderRouter.
    pub router: String,
    /// Why (`NoNextHop`, …).
    pub problem: Problem,
}

/// The public addresses of a site.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Addresses {
    /// Every routed (address, Service), by router, address and Service.
    pub routes: Vec<Route>,
    /// The Services holding addresses of the routers' pools that are not routed.
    pub withdrawn: Vec<Withdrawn>,
}

impl Addresses {
    /// The routes one Server carries.
    pub fn of_server(&self, server: &str) -> Vec<&Route> {
        self.routes
            .iter()
            .filter(|r| {
                r.carriers
                    .iter()
                    .any(|c| matches!(c, Carrier::Server(s) if s == server))
            })
            .collect()
    }
}

/// The Server of the site in `namespace` a Node runs on: the one its `spec.providerID` names
/// (`groundwork://<namespace>/<server>`, [`crds::provider::provider_id`]); for a Node without
/// a Groundwork providerID, the Server of its name (the cluster names Nodes after their
/// Server). A Node whose providerID names a Server of another site is none of ours.
fn server_of(node: &Node, namespace: &str, servers: &BTreeSet<String>) -> Option<String> {
    let provider_id = node.spec.as_ref().and_then(|s| s.provider_id.as_deref());
    match provider_id {
        Some(id) if id.starts_with(crds::provider::PROVIDER_ID_PREFIX) => servers
            .iter()
            .find(|s| crds::provider::provider_id(namespace, s) == id)
            .cloned(),
        _ => servers.get(&node.name_any()).cloned(),
    }
}

/// The public addresses of the site in `namespace`: for every BorderRouter, what
/// [`edge::services::select`] routes, with each next hop's Node mapped to its Server.
pub fn addresses(namespace: &str, servers: &[Server], inputs: &Inputs) -> Addresses {
    let server_names: BTreeSet<String> = servers.iter().map(|s| s.name_any()).collect();
    let carrier_of: BTreeMap<String, Carrier> = inputs
        .nodes
        .iter()
        .map(|n| {
            let carrier = server_of(n, namespace, &server_names)
                .map_or_else(|| Carrier::Node(n.name_any()), Carrier::Server);
            (n.name_any(), carrier)
        })
        .collect();
    let services: BTreeMap<ServiceKey, &Service> = inputs
        .services
        .iter()
        .map(|s| (edge::services::key(s), s))
        .collect();
    let mut out = Addresses::default();
    for router in &inputs.routers {
        let router_name = router.name_any();
        let selection = select(
            &router.spec,
            &inputs.services,
            &inputs.slices,
            &inputs.nodes,
        );
        for (key, mapping) in &selection.services {
            match mapping {
                ServiceMapping::Withdrawn(problem) => out.withdrawn.push(Withdrawn {
                    service: key.clone(),
                    router: router_name.clone(),
                    problem: problem.clone(),
                }),
                ServiceMapping::Routed {
                    prefixes,
                    next_hops,
                } => {
                    let announced = services
                        .get(key)
                        .and_then(|s| s.status.as_ref())
                        .and_then(|s| s.conditions.as_ref())
                        .and_then(|c| c.iter().find(|c| c.type_ == announced(&router_name)))
                        .cloned();
                    for prefix in prefixes {
                        // The address's next hops (all Services sharing it) that are this
                        // Service's: those of the address's family.
                        let hops = selection.routes.get(prefix).into_iter().flatten();
                        let carriers: BTreeSet<Carrier> = hops
                            .filter(|h| next_hops.contains(h))
                            .filter_map(|h| selection.next_hop_nodes.get(h))
                            .flatten()
                            .map(|node| {
                                carrier_of
                                    .get(node)
                                    .cloned()
                                    .unwrap_or_else(|| Carrier::Node(node.clone()))
                            })
                            .collect();
                        out.routes.push(Route {
                            prefix: *prefix,
                            service: key.clone(),
                            router: router_name.clone(),
                            carriers: carriers.into_iter().collect(),
                            announced: announced.clone(),
                        });
                    }
                }
            }
        }
    }
    out.routes
        .sort_by(|a, b| (&a.router, a.prefix, &a.service).cmp(&(&b.router, b.prefix, &b.service)));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crds::service::{SERVICE_NAME_LABEL, conditions::ADDRESS_ALLOCATED};
    use serde_json::json;

    fn router() -> BorderRouter {
        serde_json::from_value(json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "BorderRouter",
            "metadata": {"name": "edge1", "namespace": "fra1"},
            "spec": {"localASN": 65000, "routerID": "192.0.2.1",
                "ownPrefixes": ["203.0.113.0/24", "2001:db8:100::/48"],
                "serviceAddressPools": [{"name": "web", "cidrs": ["203.0.113.64/28", "2001:db8:100:64::/120"]}],
                "nodeNetworks": ["10.20.0.0/24", "2001:db8:20::/64"]}
        }))
        .unwrap()
    }

    fn server(name: &str) -> Server {
        serde_json::from_value(json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": name, "namespace": "fra1"},
            "spec": {"heightU": 1, "online": true}
        }))
        .unwrap()
    }

    fn svc(name: &str, ips: &[&str], announced: Option<&str>) -> Service {
        let ingress: Vec<_> = ips.iter().map(|ip| json!({"ip": ip})).collect();
        let mut conditions = vec![json!({"type": ADDRESS_ALLOCATED, "status": "True",
            "reason": "Allocated", "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"})];
        if let Some(message) = announced {
            conditions.push(json!({"type": "edge1.border.groundwork.dev/Announced",
                "status": "True", "reason": "Announced", "message": message,
                "lastTransitionTime": "2026-01-01T00:00:00Z"}));
        }
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "app"},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
            "status": {"loadBalancer": {"ingress": ingress}, "conditions": conditions}
        }))
        .unwrap()
    }

    fn node(name: &str, provider_id: Option<&str>, ips: &[&str]) -> Node {
        let addresses: Vec<_> = ips
            .iter()
            .map(|ip| json!({"type": "InternalIP", "address": ip}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"providerID": provider_id},
            "status": {"addresses": addresses, "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap()
    }

    fn slice(service: &str, nodes: &[&str]) -> EndpointSlice {
        let eps: Vec<_> = nodes
            .iter()
            .map(|n| json!({"addresses": ["10.244.0.5"], "nodeName": n, "conditions": {"ready": true}}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": format!("{service}-x"), "namespace": "app",
                         "labels": {SERVICE_NAME_LABEL: service}},
            "addressType": "IPv4", "endpoints": eps
        }))
        .unwrap()
    }

    fn inputs() -> Inputs {
        Inputs {
            routers: vec![router()],
            services: vec![
                svc(
                    "web",
                    &["203.0.113.64", "2001:db8:100:64::1"],
                    Some("203.0.113.64/32 announced on isp-a via 10.20.0.11"),
                ),
                svc("idle", &["203.0.113.65"], None),
            ],
            slices: vec![
                slice("web", &["k-1", "a01-u07", "vm-1"]),
                slice("idle", &[]),
            ],
            nodes: vec![
                // Named otherwise, but its providerID says a01-u06.
                node(
                    "k-1",
                    Some("groundwork://fra1/a01-u06"),
                    &["10.20.0.11", "2001:db8:20::11"],
                ),
                // No providerID: by name.
                node("a01-u07", None, &["10.20.0.12"]),
                // A server of another site with the same name: not ours.
                node("vm-1", Some("groundwork://ams1/a01-u08"), &["10.20.0.13"]),
            ],
        }
    }

    fn carriers(a: &Addresses, prefix: &str) -> Vec<String> {
        a.routes
            .iter()
            .find(|r| r.prefix.to_string() == prefix)
            .unwrap_or_else(|| panic!("{prefix} not routed: {a:?}"))
            .carriers
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn next_hops_map_to_servers_by_provider_id_then_name() {
        let servers = [server("a01-u06"), server("a01-u07"), server("a01-u08")];
        let a = addresses("fra1", &servers, &inputs());
        assert_eq!(
            carriers(&a, "203.0.113.64/32"),
            ["a01-u06", "a01-u07", "node/vm-1"]
        );
        assert_eq!(
            carriers(&a, "2001:db8:100:64::1/128"),
            ["a01-u06"],
            "only a01-u06 has an IPv6 next hop"
        );
        let mine: Vec<String> = a
            .of_server("a01-u06")
            .iter()
            .map(|r| format!("{} {}", r.prefix, r.service))
            .collect();
        assert_eq!(
            mine,
            ["203.0.113.64/32 app/web", "2001:db8:100:64::1/128 app/web"]
        );
        assert!(a.of_server("a01-u08").is_empty());
        let announced = a.routes[0].announced.as_ref().unwrap();
        assert_eq!(announced.reason, "Announced");
        assert_eq!(a.withdrawn.len(), 1);
        assert_eq!(a.withdrawn[0].service, "app/idle");
        assert_eq!(a.withdrawn[0].problem.reason, "NoNextHop");
    }

    #[test]
    fn no_router_no_addresses() {
        let mut inputs = inputs();
        inputs.routers.clear();
        assert_eq!(addresses("fra1", &[], &inputs), Addresses::default());
    }
}
