//! The Groundwork controller: one process, two wings over a shared floor.
//!
//! - The floor: [`config`], [`metrics`], [`health`] (the endpoints), [`agent_logs`],
//!   [`ipam`], [`refresh_slots`], [`leader`], [`admission`], [`view`]. They import nothing else of this crate
//!   ([`health`] only the floor: metrics, agent logs, the view).
//! - The [`reconcilers`] wing: the caches and the Rack, Server, UpstreamLink and LoadBalancer
//!   Service controllers, run by the leader. The [`boot_services`] wing: DHCP, TFTP, HTTP boot, metadata and the
//!   agent API, run by every replica from their own caches. They talk only through the API
//!   objects (a Server's `status.bootProgress` and the contracts in `crds` and `proto`):
//!   **neither wing imports the other**, and inside a wing a folder's children import
//!   siblings, never their parent.
//! - The [`provider`] wing: the Cluster API infrastructure provider (GroundworkCluster,
//!   GroundworkMachine), run instead of the other two by `--provider`, as its own component
//!   with its own identity: it writes Server intent, which the controller never does.
//! - [`app`] wires the floor and both wings, for `main.rs` (which adds leader election and
//!   signals) and the end-to-end harness alike.

pub mod admission;
pub mod agent_logs;
pub mod app;
pub mod boot_services;
pub mod config;
pub mod health;
pub mod ipam;
pub mod leader;
pub mod metrics;
pub mod provider;
pub mod reconcilers;
pub mod refresh_slots;
pub mod view;

/// Whether the object carries the `groundwork.dev/paused` annotation (hands off).
pub fn paused<K: kube::Resource>(obj: &K) -> bool {
    obj.meta()
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(crds::annotations::PAUSED))
}
