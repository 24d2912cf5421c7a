//! The Groundwork controller: reconcilers for Rack, Server and UpstreamLink, and the plumbing
//! they share. `main.rs` wires these together.

pub mod admission;
pub mod agent_api;
pub mod apply;
pub mod bmc_pool;
pub mod config;
pub mod context;
pub mod http;
pub mod invalid;
pub mod ipam;
pub mod leader;
pub mod metrics;
pub mod netboot;
pub mod rack;
pub mod reconcile;
pub mod run;
pub mod server;
pub mod upstream;
pub mod view;

/// Whether the object carries the `groundwork.dev/paused` annotation (hands off).
pub fn paused<K: kube::Resource>(obj: &K) -> bool {
    obj.meta()
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(crds::annotations::PAUSED))
}
