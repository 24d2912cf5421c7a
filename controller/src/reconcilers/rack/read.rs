//! Read stage: the Rack, the Servers that reference it and the other Racks of its site, from
//! the caches.

use std::sync::Arc;

use crds::condition_types::NETWORKS_DISTINCT;
use crds::rack::RackNetworks;
use crds::{Rack, Server, ServerState};
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::reflector::Store;

use crate::reconcilers::context::Context;

/// Everything the Rack's decision needs.
pub struct Inputs {
    /// The Rack.
    pub rack: Arc<Rack>,
    /// Servers that reference it.
    pub members: Vec<Member>,
    /// The other Racks of its site (namespace).
    pub peers: Vec<Peer>,
}

/// What a Rack needs to know about one of its Servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Server name.
    pub name: String,
    /// Lowest U it occupies.
    pub bottom_u: u32,
    /// Height in U.
    pub height_u: u32,
    /// Declared maximum power.
    pub max_power_watts: u32,
    /// Lifecycle state (Registering until the controller has written one).
    pub state: ServerState,
    /// Whether it holds an address from the node pool.
    pub holds_node_address: bool,
}

impl Member {
    /// The Member view of a Server.
    pub fn of(server: &Server) -> Self {
        let status = server.status.as_ref();
        Self {
            name: server.name_any(),
            bottom_u: server.spec.rack_unit.unwrap_or(0),
            height_u: server.spec.height_u,
            max_power_watts: server.spec.max_power_watts.unwrap_or(0),
            state: status.and_then(|s| s.state).unwrap_or_default(),
            holds_node_address: status
                .is_some_and(|s| s.addresses.iter().any(|a| a.network == "node")),
        }
    }
}

/// Another Rack of the same site, as far as network overlaps go.
#[derive(Clone, Debug, PartialEq)]
pub struct Peer {
    /// Rack name.
    pub name: String,
    /// Its networks.
    pub networks: RackNetworks,
    /// Whether its status reports an overlap (`NetworksDistinct=False`).
    pub reports_overlap: bool,
}

/// The readable Racks of `namespace` other than `name`, by name.
pub fn peers(racks: &Store<DeserializeGuard<Rack>>, namespace: &str, name: &str) -> Vec<Peer> {
    let mut peers: Vec<Peer> = racks
        .state()
        .iter()
        .filter_map(|guard| guard.0.as_ref().ok())
        .filter(|r| r.namespace().as_deref() == Some(namespace) && r.name_any() != name)
        .map(|r| Peer {
            name: r.name_any(),
            networks: r.spec.networks.clone(),
            reports_overlap: r.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == NETWORKS_DISTINCT && c.status == "False")
            }),
        })
        .collect();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    peers
}

/// Collects the Rack's members from the Server cache (readable Servers only; unreadable ones
/// are reported by the Server controller) and its peers from the Rack cache.
pub fn read(ctx: &Context, rack: Arc<Rack>) -> Inputs {
    let namespace = rack.namespace().unwrap_or_default();
    let name = rack.name_any();
    let mut members: Vec<Member> = ctx
        .servers
        .state()
        .iter()
        .filter_map(|guard| guard.0.as_ref().ok())
        .filter(|s| s.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|s| s.spec.rack_ref.as_ref().is_some_and(|r| r.name == name))
        .map(Member::of)
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let peers = peers(&ctx.racks, &namespace, &name);
    Inputs {
        rack,
        members,
        peers,
    }
}
