//! Read: watch this router's objects into in-memory stores.
//!
//! Seven reflectors: the BorderRouter named on the command line, the namespace's
//! UpstreamLinks and BlackholeRoutes (filtered to this router when read), the namespace's
//! Secrets (only the ones referenced by a link are handed on; their data never leaves the
//! process except into BIRD's 0600 secrets file), and, for LoadBalancer Services, the
//! cluster's Services, EndpointSlices and Nodes. Every watch event wakes the reconcile loop.

use std::collections::BTreeMap;
use std::sync::Arc;

use crds::{BlackholeRoute, BorderRouter, UpstreamLink};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::error::Error;

/// The watched objects.
#[derive(Clone)]
pub struct Stores {
    routers: Store<BorderRouter>,
    links: Store<UpstreamLink>,
    blackholes: Store<BlackholeRoute>,
    secrets: Store<Secret>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    nodes: Store<Node>,
    namespace: String,
}

/// One consistent-enough view of the inputs of a reconcile.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The BorderRouter, when it exists.
    pub router: Option<BorderRouter>,
    /// UpstreamLinks whose `routerRef` names the router.
    pub links: Vec<UpstreamLink>,
    /// BlackholeRoutes whose `routerRef` names the router.
    pub blackholes: Vec<BlackholeRoute>,
    /// The Secrets those links reference, by name.
    pub secrets: BTreeMap<String, Secret>,
    /// Every Service that is not being deleted (in the watched namespaces): the LoadBalancer
    /// ones are candidates, the others may carry a condition of ours to clear (type changed).
    pub services: Vec<Service>,
    /// Every EndpointSlice (any namespace).
    pub slices: Vec<EndpointSlice>,
    /// Every Node.
    pub nodes: Vec<Node>,
}

fn spawn_watch<K>(
    api: Api<K>,
    config: watcher::Config,
    notify: Arc<Notify>,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&()).to_string();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(kube_kit::store::without_managed_fields)
        .reflect(writer);
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => notify.notify_one(),
                Err(e) => {
                    tracing::warn!(%kind, error = %e, reason = "WatchFailed", "watch error; retrying")
                }
            }
        }
    });
    (reader, task)
}

/// An API of one namespace, or of all.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Every object of a store.
fn cloned<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.state().into_iter().map(|o| (*o).clone()).collect()
}

impl Stores {
    /// Starts the watches; every event notifies `notify`.
    pub fn start(
        client: &Client,
        namespace: &str,
        service_namespace: Option<&str>,
        router: &str,
        notify: Arc<Notify>,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let by_name = watcher::Config::default().fields(&format!("metadata.name={router}"));
        let (routers, t1) = spawn_watch(
            Api::namespaced(client.clone(), namespace),
            by_name,
            notify.clone(),
        );
        let (links, t2) = spawn_watch(
            Api::namespaced(client.clone(), namespace),
            watcher::Config::default(),
            notify.clone(),
        );
        let (blackholes, t3) = spawn_watch(
            Api::namespaced(client.clone(), namespace),
            watcher::Config::default(),
            notify.clone(),
        );
        let (secrets, t4) = spawn_watch(
            Api::namespaced(client.clone(), namespace),
            watcher::Config::default(),
            notify.clone(),
        );
        let (services, t5) = spawn_watch(
            scoped(client, service_namespace),
            watcher::Config::default(),
            notify.clone(),
        );
        let (slices, t6) = spawn_watch(
            scoped(client, service_namespace),
            watcher::Config::default(),
            notify.clone(),
        );
        let (nodes, t7) = spawn_watch(Api::all(client.clone()), watcher::Config::default(), notify);
        (
            Self {
                routers,
                links,
                blackholes,
                secrets,
                services,
                slices,
                nodes,
                namespace: namespace.to_string(),
            },
            vec![t1, t2, t3, t4, t5, t6, t7],
        )
    }

    /// Waits until every store has its initial list (so the first apply never sees a
    /// half-empty world and withdraws sessions by accident after a restart).
    pub async fn wait_ready(&self) -> Result<(), Error> {
        let err = |kind: &'static str| {
            move |e: reflector::store::WriterDropped| Error::Watch {
                kind,
                message: e.to_string(),
            }
        };
        self.routers
            .wait_until_ready()
            .await
            .map_err(err("BorderRouter"))?;
        self.links
            .wait_until_ready()
            .await
            .map_err(err("UpstreamLink"))?;
        self.blackholes
            .wait_until_ready()
            .await
            .map_err(err("BlackholeRoute"))?;
        self.secrets
            .wait_until_ready()
            .await
            .map_err(err("Secret"))?;
        self.services
            .wait_until_ready()
            .await
            .map_err(err("Service"))?;
        self.slices
            .wait_until_ready()
            .await
            .map_err(err("EndpointSlice"))?;
        self.nodes.wait_until_ready().await.map_err(err("Node"))?;
        Ok(())
    }

    /// The inputs of router `name`.
    pub fn snapshot(&self, name: &str) -> Snapshot {
        let router = self
            .routers
            .get(&ObjectRef::new(name).within(&self.namespace))
            .map(|r| (*r).clone());
        let links: Vec<UpstreamLink> = self
            .links
            .state()
            .into_iter()
            .filter(|l| l.spec.router_ref == name && l.metadata.deletion_timestamp.is_none())
            .map(|l| (*l).clone())
            .collect();
        let blackholes = self
            .blackholes
            .state()
            .into_iter()
            .filter(|b| b.spec.router_ref == name && b.metadata.deletion_timestamp.is_none())
            .map(|b| (*b).clone())
            .collect();
        let mut secrets = BTreeMap::new();
        for l in &links {
            if let Some(r) = &l.spec.bgp.password_secret_ref
                && let Some(s) = self
                    .secrets
                    .get(&ObjectRef::new(&r.name).within(&self.namespace))
            {
                secrets.insert(r.name.clone(), (*s).clone());
            }
        }
        let services = self
            .services
            .state()
            .into_iter()
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .map(|s| (*s).clone())
            .collect();
        Snapshot {
            router,
            links,
            blackholes,
            secrets,
            services,
            slices: cloned(&self.slices),
            nodes: cloned(&self.nodes),
        }
    }
}
