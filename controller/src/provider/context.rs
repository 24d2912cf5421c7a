//! What the provider's reconcilers share: the client, the caches, metrics and its own Event
//! reporter (`groundwork-provider`).

use std::sync::Arc;
use std::time::Duration;

use crds::{GroundworkMachine, Rack, Server};
use kube::Client;
use kube::core::DeserializeGuard;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use crate::metrics::Metrics;

/// Shared state handed to every reconciliation.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Event recorder (reporter `groundwork-provider`).
    pub recorder: Recorder,
    /// Cached Racks (failure domains).
    pub racks: Store<DeserializeGuard<Rack>>,
    /// Cached Servers (the pool claims come from).
    pub servers: Store<DeserializeGuard<Server>>,
    /// Cached GroundworkMachines (a Machine's peers, to spread them).
    pub machines: Store<DeserializeGuard<GroundworkMachine>>,
    /// Re-check interval when nothing changes.
    pub resync: Duration,
}
