//! What every reconciler shares: the client, the caches, metrics and the event recorder.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crds::{BorderRouter, Rack, Server, UpstreamLink};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::Client;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use crate::health::Health;
use crate::metrics::Metrics;

/// LoadBalancer addresses written by this process, by Service UID, until the cache shows
/// them: two Services allocated one after the other never get the same address.
pub type ServiceGrants = std::collections::BTreeMap<String, Vec<std::net::IpAddr>>;

/// Shared state handed to every reconciliation.
pub struct Context {
    /// API client (rate limited).
    pub client: Client,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Cached Racks.
    pub racks: Store<DeserializeGuard<Rack>>,
    /// Cached Servers.
    pub servers: Store<DeserializeGuard<Server>>,
    /// Cached UpstreamLinks.
    pub links: Store<DeserializeGuard<UpstreamLink>>,
    /// Cached BorderRouters (their Service address pools).
    pub routers: Store<DeserializeGuard<BorderRouter>>,
    /// Cached Services (LoadBalancer addresses in their status).
    pub services: Store<Service>,
    /// Service addresses granted by this process that the cache may not show yet; the lock
    /// also makes allocations one at a time.
    pub service_grants: tokio::sync::Mutex<ServiceGrants>,
    /// Serve LoadBalancer Services without a class too.
    pub load_balancer_default_class: bool,
    /// Cached Secret metadata (never their data).
    pub secrets: Store<PartialObjectMeta<Secret>>,
    /// Re-check interval when nothing changes.
    pub resync: Duration,
    /// Unreadable objects already reported, by (uid, resourceVersion).
    pub reported_invalid: Mutex<HashSet<(String, String)>>,
    /// Shared BMC drivers and the global BMC concurrency limit.
    pub bmcs: crate::reconcilers::bmc_pool::BmcPool,
    /// Readiness, set once every cache has synced.
    pub health: Arc<Health>,
    /// Node address grants.
    pub ipam: crate::ipam::Allocator,
    /// How long a ramdisk may stay silent, and a first boot may take.
    pub ramdisk_timeout: Duration,
    /// How long a standby agent may stay silent.
    pub standby_heartbeat_timeout: Duration,
    /// The ramdisk the boot services serve (its version, for the warm pool's refresh).
    pub ramdisk: boot::ramdisk::Ramdisk,
    /// Each rack's refresh slot (one standby server refreshes at a time per rack).
    pub refreshes: crate::refresh_slots::Slots,
}

impl Context {
    /// Until every cache has synced, a reconciler would see missing references that exist:
    /// reconcilers wait for this (requeueing) rather than write wrong conditions.
    pub fn synced(&self) -> bool {
        self.health.ready.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The action to take while the caches sync.
    pub fn wait_for_sync() -> kube::runtime::controller::Action {
        kube::runtime::controller::Action::requeue(Duration::from_millis(500))
    }

    /// Whether a Secret with this name exists in `namespace`.
    pub fn secret_exists(&self, namespace: &str, name: &str) -> bool {
        self.secrets
            .get(&kube::runtime::reflector::ObjectRef::new(name).within(namespace))
            .is_some()
    }
}
