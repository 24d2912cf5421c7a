//! The reconcilers wing: the caches and the four controllers (Rack, Server, UpstreamLink and
//! LoadBalancer Service), run by the leader until shutdown. Nothing here imports the boot services wing.

pub mod apply;
pub mod bmc_pool;
pub mod context;
pub mod invalid;
pub mod rack;
pub mod reconcile;
pub mod references;
pub mod server;
pub mod service;
pub mod upstream;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crds::{BorderRouter, Rack, Server, UpstreamLink};
use futures::{Stream, StreamExt, future};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::core::{DeserializeGuard, PartialObjectMeta};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{info, warn};

use crate::config::Config;
use crate::health::Health;
use crate::metrics::Metrics;
use context::Context;

const BUFFER: usize = 1024;

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Passes an object on only when its spec (generation), its annotations or what `external`
/// picks out changed, or on first sight. A reconciler's own status writes then do not
/// re-trigger it, so its requeue (and backoff) decides when it looks again; annotations carry
/// the reboot and inspect requests, `external` the status fields other components write.
fn intent_changed<K: Resource>(
    stream: impl Stream<Item = Arc<K>>,
    external: fn(&K) -> Option<String>,
) -> impl Stream<Item = Arc<K>> {
    let seen: Mutex<HashMap<String, (Option<i64>, u64)>> = Mutex::default();
    stream.filter(move |obj| {
        use std::hash::{Hash, Hasher};
        let meta = obj.meta();
        let key = meta.uid.clone().unwrap_or_default();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        meta.annotations.hash(&mut hasher);
        external(obj).hash(&mut hasher);
        let intent = (meta.generation, hasher.finish());
        let changed = seen
            .lock()
            .map(|mut s| s.insert(key, intent) != Some(intent))
            .unwrap_or(true);
        future::ready(changed)
    })
}

/// What the boot services record that moves a Server on (the ramdisk calling back, the
/// agent's result, the installed OS checking in), and its deletion.
fn boot_callback(s: &DeserializeGuard<Server>) -> Option<String> {
    let server = s.0.as_ref().ok()?;
    let progress = server
        .status
        .as_ref()
        .and_then(|s| s.boot_progress.as_ref());
    Some(format!(
        "{:?}:{:?}:{:?}:{:?}:{:?}",
        server.metadata.deletion_timestamp.as_ref().map(|t| t.0),
        progress.map(|p| &p.attempt),
        progress
            .and_then(|p| p.called_back_at.as_ref())
            .map(|t| t.0),
        progress.and_then(|p| p.result_at.as_ref()).map(|t| t.0),
        progress.and_then(|p| p.checked_in_at.as_ref()).map(|t| t.0),
    ))
}

/// Runs until `shutdown` resolves or the caches fail for good.
pub async fn run(
    client: Client,
    config: &Config,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let ns = config.namespace.as_deref();
    let wc = watcher::Config::default().any_semantic();

    let (racks, rack_writer) = reflector::store_shared::<DeserializeGuard<Rack>>(BUFFER);
    let (servers, server_writer) = reflector::store_shared::<DeserializeGuard<Server>>(BUFFER);
    let (links, link_writer) = reflector::store_shared::<DeserializeGuard<UpstreamLink>>(BUFFER);
    let (secrets, secret_writer) = reflector::store_shared::<PartialObjectMeta<Secret>>(BUFFER);
    let (routers, router_writer) =
        reflector::store_shared::<DeserializeGuard<BorderRouter>>(BUFFER);
    let (services, service_writer) = reflector::store_shared::<Service>(BUFFER);

    let subscribe = |w: &reflector::store::Writer<_>| w.subscribe();
    let (Some(racks_for_racks), Some(racks_for_peers), Some(racks_for_servers)) = (
        subscribe(&rack_writer),
        subscribe(&rack_writer),
        subscribe(&rack_writer),
    ) else {
        return;
    };
    let (Some(servers_for_servers), Some(servers_for_racks)) =
        (server_writer.subscribe(), server_writer.subscribe())
    else {
        return;
    };
    let (Some(links_for_links), Some(secrets_for_servers), Some(secrets_for_links)) = (
        link_writer.subscribe(),
        secret_writer.subscribe(),
        secret_writer.subscribe(),
    ) else {
        return;
    };

    let (Some(services_for_services), Some(routers_for_services)) =
        (service_writer.subscribe(), router_writer.subscribe())
    else {
        return;
    };

    let synced = Arc::new(Synced::new(health.clone(), 6));
    let (s1, s2, s3, s4) = (
        synced.clone(),
        synced.clone(),
        synced.clone(),
        synced.clone(),
    );
    let (s5, s6) = (synced.clone(), synced);
    // A deleted Rack reaches no subscriber: the Racks that overlapped it are sent from here.
    let (rack_gone, racks_to_recheck) = futures::channel::mpsc::unbounded();
    let racks_after_delete = racks.clone();
    let rack_watch = watcher(api::<DeserializeGuard<Rack>>(&client, ns), wc.clone())
        .default_backoff()
        .modify(kube_kit::store::without_managed_fields)
        .reflect_shared(rack_writer)
        .inspect(move |event| {
            if let Ok(watcher::Event::Delete(DeserializeGuard(Ok(rack)))) = event {
                for peer in rack::recheck(&racks_after_delete, rack) {
                    let _ = rack_gone.unbounded_send(peer);
                }
            }
        })
        .for_each(move |r| s1.observe("Rack", r));
    let server_watch = watcher(api::<DeserializeGuard<Server>>(&client, ns), wc.clone())
        .default_backoff()
        .modify(kube_kit::store::without_managed_fields)
        .reflect_shared(server_writer)
        .for_each(move |r| s2.observe("Server", r));
    let link_watch = watcher(
        api::<DeserializeGuard<UpstreamLink>>(&client, ns),
        wc.clone(),
    )
    .default_backoff()
    .modify(kube_kit::store::without_managed_fields)
    .reflect_shared(link_writer)
    .for_each(move |r| s3.observe("UpstreamLink", r));
    let secret_watch = watcher(api::<PartialObjectMeta<Secret>>(&client, ns), wc.clone())
        .default_backoff()
        .modify(kube_kit::store::without_managed_fields)
        .reflect_shared(secret_writer)
        .for_each(move |r| s4.observe("Secret", r));
    let router_watch = watcher(
        api::<DeserializeGuard<BorderRouter>>(&client, ns),
        wc.clone(),
    )
    .default_backoff()
    .modify(kube_kit::store::without_managed_fields)
    .reflect_shared(router_writer)
    .for_each(move |r| s5.observe("BorderRouter", r));
    // A deleted Service frees its addresses: the Services still waiting for one look again.
    let (service_gone, services_to_retry) = futures::channel::mpsc::unbounded();
    let services_after_delete = services.clone();
    let service_watch = watcher(api::<Service>(&client, ns), wc)
        .default_backoff()
        .modify(kube_kit::store::without_managed_fields)
        .reflect_shared(service_writer)
        .inspect(move |event| {
            if let Ok(watcher::Event::Delete(_)) = event {
                for waiting in service::waiting(&services_after_delete) {
                    let _ = service_gone.unbounded_send(waiting);
                }
            }
        })
        .for_each(move |r| s6.observe("Service", r));
    let watches = tokio::spawn(async move {
        tokio::join!(
            rack_watch,
            server_watch,
            link_watch,
            secret_watch,
            router_watch,
            service_watch
        );
    });

    let reporter = Reporter {
        controller: crds::field_managers::CONTROLLER.into(),
        instance: config.identity.clone(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics: metrics.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        racks: racks.clone(),
        servers: servers.clone(),
        links: links.clone(),
        secrets: secrets.clone(),
        routers: routers.clone(),
        services: services.clone(),
        service_grants: tokio::sync::Mutex::default(),
        load_balancer_default_class: config.load_balancer_default_class,
        resync: Duration::from_secs(config.resync_seconds),
        reported_invalid: Mutex::default(),
        health: health.clone(),
        bmcs: bmc_pool::BmcPool::new(config.bmc_concurrency, bmc_pool::driver_config()),
        ipam: crate::ipam::Allocator::default(),
        ramdisk_timeout: Duration::from_secs(config.ramdisk_timeout_seconds),
        standby_heartbeat_timeout: Duration::from_secs(
            config.boot.standby_heartbeat_timeout_seconds,
        ),
        ramdisk: boot::ramdisk::Ramdisk::new(&config.boot.boot_artifacts),
        refreshes: crate::refresh_slots::Slots::default(),
    });

    let cc = ControllerConfig::default().concurrency(config.concurrency);
    let rack_members = servers.clone();
    let rack_peers = racks.clone();
    let rack_controller = Controller::for_shared_stream(racks_for_racks, racks.clone())
        .with_config(cc.clone())
        .watches_shared_stream(servers_for_racks, |s: Arc<DeserializeGuard<Server>>| {
            let server = s.0.as_ref().ok();
            let rack = server.and_then(|s| s.spec.rack_ref.as_ref().map(|r| r.name.clone()));
            let ns = server.and_then(ResourceExt::namespace);
            rack.zip(ns).map(|(r, ns)| ObjectRef::new(&r).within(&ns))
        })
        // A Rack's networks changed: the Racks of its site that overlap(ped) them look again.
        .watches_shared_stream(
            intent_changed(racks_for_peers, |_| None),
            move |r: Arc<DeserializeGuard<Rack>>| match &r.0 {
                Ok(rack) => rack::recheck(&rack_peers, rack),
                Err(_) => Vec::new(),
            },
        )
        .reconcile_on(racks_to_recheck)
        .graceful_shutdown_on(shutdown.clone())
        .run(
            rack::reconcile,
            |_, e: &reconcile::Error, ctx: Arc<Context>| {
                backoff(&ctx, rack::KIND, e.metric_label(), e)
            },
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));
    drop(rack_members);

    let by_rack = servers.clone();
    let by_secret = servers.clone();
    let server_controller = Controller::for_shared_stream(
        intent_changed(servers_for_servers, boot_callback),
        servers.clone(),
    )
    .with_config(cc.clone())
    .watches_shared_stream(
        intent_changed(racks_for_servers, |_| None),
        move |r: Arc<DeserializeGuard<Rack>>| {
            let ns = r.namespace().unwrap_or_default();
            server::in_rack(&by_rack, &ns, &r.name_any())
        },
    )
    .watches_shared_stream(
        secrets_for_servers,
        move |s: Arc<PartialObjectMeta<Secret>>| {
            let ns = s.namespace().unwrap_or_default();
            server::referencing_secret(&by_secret, &ns, &s.name_any())
        },
    )
    .graceful_shutdown_on(shutdown.clone())
    .run(
        server::reconcile,
        |_, e: &reconcile::Error, ctx: Arc<Context>| {
            backoff(&ctx, server::KIND, e.metric_label(), e)
        },
        ctx.clone(),
    )
    .for_each(|_| future::ready(()));

    let services_waiting = services.clone();
    let service_controller = Controller::for_shared_stream(services_for_services, services)
        .with_config(cc.clone())
        // A pool changed: the Services still waiting for an address look again.
        .watches_shared_stream(
            intent_changed(routers_for_services, |_| None),
            move |_: Arc<DeserializeGuard<BorderRouter>>| service::waiting(&services_waiting),
        )
        .reconcile_on(services_to_retry)
        .graceful_shutdown_on(shutdown.clone())
        .run(
            service::reconcile,
            |_, e: &reconcile::Error, ctx: Arc<Context>| {
                backoff(&ctx, service::KIND, e.metric_label(), e)
            },
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));

    let link_peers: Store<DeserializeGuard<UpstreamLink>> = links.clone();
    let link_controller = Controller::for_shared_stream(links_for_links, links.clone())
        .with_config(cc)
        .watches_shared_stream(
            secrets_for_links,
            move |s: Arc<PartialObjectMeta<Secret>>| {
                let ns = s.namespace().unwrap_or_default();
                let name = s.name_any();
                link_peers
                    .state()
                    .iter()
                    .filter_map(|g| g.0.as_ref().ok())
                    .filter(|l| l.namespace().as_deref() == Some(ns.as_str()))
                    .filter(|l| {
                        l.spec
                            .bgp
                            .password_secret_ref
                            .as_ref()
                            .is_some_and(|r| r.name == name)
                    })
                    .map(|l| ObjectRef::new(&l.name_any()).within(&ns))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(
            upstream::reconcile,
            |_, e: &reconcile::Error, ctx: Arc<Context>| {
                backoff(&ctx, upstream::KIND, e.metric_label(), e)
            },
            ctx.clone(),
        )
        .for_each(|_| future::ready(()));

    tokio::join!(
        rack_controller,
        server_controller,
        link_controller,
        service_controller
    );
    health.ready.store(false, Ordering::Relaxed);
    watches.abort();
    info!("controllers stopped");
}

/// Marks the controller ready once every watch has delivered its initial list.
struct Synced {
    health: Arc<Health>,
    pending: Mutex<HashSet<&'static str>>,
    watches: usize,
}

impl Synced {
    fn new(health: Arc<Health>, watches: usize) -> Self {
        Self {
            health,
            pending: Mutex::default(),
            watches,
        }
    }

    fn observe<K, E: std::fmt::Display>(
        &self,
        kind: &'static str,
        event: Result<watcher::Event<K>, E>,
    ) -> future::Ready<()> {
        match event {
            Ok(watcher::Event::InitDone) => {
                let all = self
                    .pending
                    .lock()
                    .map(|mut seen| {
                        seen.insert(kind);
                        seen.len() == self.watches
                    })
                    .unwrap_or(false);
                info!(kind, "cache synced");
                if all {
                    info!("all caches synced: ready");
                    self.health.ready.store(true, Ordering::Relaxed);
                }
            }
            Ok(_) => {}
            Err(e) => warn!(kind, error = %e, "watch error; retrying with backoff"),
        }
        future::ready(())
    }
}

/// Error policy: count the failure and retry later (never a hot loop).
fn backoff(
    ctx: &Context,
    kind: &'static str,
    reason: &'static str,
    e: &dyn std::fmt::Display,
) -> Action {
    warn!(kind, reason, error = %e, "reconcile failed");
    ctx.metrics.failed(kind, reason);
    Action::requeue(Duration::from_secs(5))
}
