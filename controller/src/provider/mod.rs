//! The provider wing: Groundwork as a Cluster API infrastructure provider (contract v1beta2).
//! Its own component: run by `groundwork-controller --provider` under its own ServiceAccount,
//! Lease and field manager (`groundwork-provider`), because it writes Server intent (claims,
//! image, user-data), which the site controller's admission policy forbids the controller.
//! It imports neither other wing.
//!
//! - [`cluster`]: GroundworkCluster → failure domains from the site's Racks.
//! - [`machine`]: GroundworkMachine → one claimed Server, provisioned with the Machine's
//!   bootstrap data, released (cleaned, back to the pool) when the Machine goes.

pub mod capi;
pub mod cluster;
pub mod context;
pub mod machine;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crds::provider::MachineState;
use crds::{GroundworkCluster, GroundworkMachine, Rack, Server};
use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::Secret;
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::config::Config;
use crate::health::Health;
use crate::metrics::Metrics;
use context::Context;

const BUFFER: usize = 1024;

/// Runs the provider's controllers until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: &Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        ns.map_or_else(
            || Api::all(client.clone()),
            |ns| Api::namespaced(client.clone(), ns),
        )
    }
    let ns = config.namespace.as_deref();
    let wc = watcher::Config::default().any_semantic();
    let (racks, rack_writer) = reflector::store_shared::<DeserializeGuard<Rack>>(BUFFER);
    let (servers, server_writer) = reflector::store_shared::<DeserializeGuard<Server>>(BUFFER);
    let (machines, machine_writer) =
        reflector::store_shared::<DeserializeGuard<GroundworkMachine>>(BUFFER);
    let (clusters, cluster_writer) =
        reflector::store_shared::<DeserializeGuard<GroundworkCluster>>(BUFFER);
    let (Some(racks_for_clusters), Some(servers_for_machines)) =
        (rack_writer.subscribe(), server_writer.subscribe())
    else {
        return;
    };
    let (Some(machines_sub), Some(clusters_sub)) =
        (machine_writer.subscribe(), cluster_writer.subscribe())
    else {
        return;
    };
    let rack_watch = watcher(api::<DeserializeGuard<Rack>>(&client, ns), wc.clone())
        .default_backoff()
        .modify(kube_kit::store::without_managed_fields)
        .reflect_shared(rack_writer)
        .for_each(watch("Rack"));
    let server_watch = watcher(api::<DeserializeGuard<Server>>(&client, ns), wc.clone())
        .default_backoff()
        .modify(kube_kit::store::without_managed_fields)
        .reflect_shared(server_writer)
        .for_each(watch("Server"));
    let machine_watch = watcher(
        api::<DeserializeGuard<GroundworkMachine>>(&client, ns),
        wc.clone(),
    )
    .default_backoff()
    .modify(kube_kit::store::without_managed_fields)
    .reflect_shared(machine_writer)
    .for_each(watch(machine::KIND));
    let cluster_watch = watcher(api::<DeserializeGuard<GroundworkCluster>>(&client, ns), wc)
        .default_backoff()
        .modify(kube_kit::store::without_managed_fields)
        .reflect_shared(cluster_writer)
        .for_each(watch(cluster::KIND));
    let watches = tokio::spawn(async move {
        tokio::join!(rack_watch, server_watch, machine_watch, cluster_watch);
    });
    // Claims are decided on the caches: start only once every one holds the whole site.
    let ready = async {
        let _ = tokio::join!(
            racks.wait_until_ready(),
            servers.wait_until_ready(),
            machines.wait_until_ready(),
            clusters.wait_until_ready()
        );
    };
    tokio::select! {
        () = ready => {}
        () = shutdown.clone() => { watches.abort(); return; }
    }
    info!("provider caches synced: ready");
    health.ready.store(true, Ordering::Relaxed);

    let reporter = Reporter {
        controller: crds::field_managers::PROVIDER.into(),
        instance: config.identity.clone(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics,
        recorder: Recorder::new(client.clone(), reporter),
        racks: racks.clone(),
        servers: servers.clone(),
        machines: machines.clone(),
        resync: Duration::from_secs(config.resync_seconds),
    });
    let cc = ControllerConfig::default().concurrency(config.concurrency);
    let machine_controller = Controller::for_shared_stream(machines_sub, machines.clone())
        .with_config(cc.clone())
        // A Server changing (state, its consumer) wakes the Machine claiming it; a Server
        // freed or added wakes every Machine still looking.
        .watches_shared_stream(servers_for_machines, {
            let machines = machines.clone();
            move |s: Arc<DeserializeGuard<Server>>| {
                let Ok(server) = &s.0 else { return Vec::new() };
                let ns = server.namespace().unwrap_or_default();
                match &server.spec.consumer_ref {
                    Some(c) => vec![ObjectRef::new(&c.name).within(&ns)],
                    None => machines
                        .state()
                        .iter()
                        .filter_map(|g| g.0.as_ref().ok())
                        .filter(|m| m.namespace().as_deref() == Some(ns.as_str()))
                        .filter(|m| {
                            m.status
                                .as_ref()
                                .and_then(|s| s.server_ref.as_ref())
                                .is_none()
                        })
                        .map(|m| ObjectRef::new(&m.name_any()).within(&ns))
                        .collect(),
                }
            }
        })
        // The Machine gets its bootstrap Secret's name (or is created after us): wake its
        // GroundworkMachine.
        .watches(
            api::<capi::Machine>(&client, ns),
            watcher::Config::default(),
            |m: capi::Machine| {
                let ns = m.namespace()?;
                m.spec
                    .infrastructure_ref
                    .filter(|r| r.kind == machine::KIND)
                    .map(|r| ObjectRef::new(&r.name).within(&ns))
            },
        )
        // A Secret appears (the bootstrap data): wake the Machines waiting for theirs.
        .watches(
            api::<PartialObjectMeta<Secret>>(&client, ns),
            watcher::Config::default(),
            {
                let machines = machines.clone();
                move |s: PartialObjectMeta<Secret>| {
                    let ns = s.namespace().unwrap_or_default();
                    machines
                        .state()
                        .iter()
                        .filter_map(|g| g.0.as_ref().ok())
                        .filter(|m| m.namespace().as_deref() == Some(ns.as_str()))
                        .filter(|m| {
                            m.status.as_ref().and_then(|s| s.state)
                                == Some(MachineState::WaitingForBootstrapData)
                        })
                        .map(|m| ObjectRef::new(&m.name_any()).within(&ns))
                        .collect::<Vec<_>>()
                }
            },
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(
            machine::reconcile,
            |_, e: &machine::Error, ctx: Arc<Context>| backoff(&ctx, machine::KIND, e),
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));
    let cluster_controller = Controller::for_shared_stream(clusters_sub, clusters.clone())
        .with_config(cc)
        .watches_shared_stream(racks_for_clusters, {
            let clusters = clusters.clone();
            move |r: Arc<DeserializeGuard<Rack>>| {
                let ns = r.namespace().unwrap_or_default();
                clusters
                    .state()
                    .iter()
                    .filter_map(|g| g.0.as_ref().ok())
                    .filter(|c| c.namespace().as_deref() == Some(ns.as_str()))
                    .map(|c| ObjectRef::new(&c.name_any()).within(&ns))
                    .collect::<Vec<_>>()
            }
        })
        .graceful_shutdown_on(shutdown)
        .run(
            cluster::reconcile,
            |_, e: &machine::Error, ctx: Arc<Context>| backoff(&ctx, cluster::KIND, e),
            ctx,
        )
        .for_each(|_| future::ready(()));
    tokio::join!(machine_controller, cluster_controller);
    health.ready.store(false, Ordering::Relaxed);
    watches.abort();
    info!("provider stopped");
}

/// A watch stream's consumer that logs its errors (the watcher retries with backoff).
fn watch<T>(kind: &'static str) -> impl FnMut(Result<T, watcher::Error>) -> future::Ready<()> {
    move |r| {
        if let Err(e) = r {
            warn!(kind, error = %e, "watch error; retrying with backoff");
        }
        future::ready(())
    }
}

/// Error policy: count the failure and retry soon (a lost claim selects again at once).
fn backoff(ctx: &Context, kind: &'static str, e: &machine::Error) -> Action {
    let reason = e.metric_label();
    warn!(kind, reason, error = %e, "reconcile failed");
    ctx.metrics.failed(kind, reason);
    Action::requeue(match e {
        machine::Error::ClaimLost(_) => Duration::from_millis(100),
        machine::Error::Kube(_) | machine::Error::Node(_) => Duration::from_secs(5),
    })
}
