//! Read stage: the Rack and the Servers that reference it, from the caches.

use std::sync::Arc;

use crds::{Rack, Server, ServerState};
use kube::ResourceExt;

use crate::context::Context;

/// Everything the Rack's decision needs.
pub struct Inputs {
    /// The Rack.
    pub rack: Arc<Rack>,
    /// Servers that reference it.
    pub members: Vec<Member>,
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

/// Collects the Rack's members from the Server cache (readable Servers only; unreadable ones
/// are reported by the Server controller).
pub fn read(ctx: &Context, rack: Arc<Rack>) -> Inputs {
    let namespace = rack.namespace();
    let name = rack.name_any();
    let mut members: Vec<Member> = ctx
        .servers
        .state()
        .iter()
        .filter_map(|guard| guard.0.as_ref().ok())
        .filter(|s| s.namespace() == namespace)
        .filter(|s| s.spec.rack_ref.as_ref().is_some_and(|r| r.name == name))
        .map(Member::of)
        .collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    Inputs { rack, members }
}
