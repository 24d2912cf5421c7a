//! What every boot service reads: the Rack and Server caches, the site index built from them
//! (DHCP reservations, boot MACs) and what the agent API is handed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use boot::dhcp::server::SiteHandle;
use boot::dhcp::{Mac, Site};
use boot::token::TokenKey;
use crds::{Rack, Server};
use kube::Client;
use kube::core::DeserializeGuard;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::{Notify, watch};
use tracing::warn;

use super::site;
use crate::agent_logs::Logs;

/// The caches and the index every boot service reads.
pub struct Shared {
    servers: Store<DeserializeGuard<Server>>,
    racks: Store<DeserializeGuard<Rack>>,
    index: RwLock<Arc<site::Index>>,
    dhcp_site: SiteHandle,
    /// Whether the index was built from complete caches: before that, a declared machine
    /// would look unknown.
    synced: AtomicBool,
    /// The agents' recent log lines.
    pub logs: Arc<Logs>,
    /// Counts index rebuilds: a change to any Server or Rack, seen by held agent polls.
    changes: watch::Sender<u64>,
}

impl Shared {
    /// Shared state over the two caches, with an empty index until [`reindex`] built one.
    pub fn new(
        servers: Store<DeserializeGuard<Server>>,
        racks: Store<DeserializeGuard<Rack>>,
        logs: Arc<Logs>,
    ) -> Self {
        Self {
            servers,
            racks,
            logs,
            index: RwLock::default(),
            dhcp_site: Arc::new(RwLock::new(Arc::new(Site::default()))),
            synced: AtomicBool::new(false),
            changes: watch::Sender::new(0),
        }
    }

    /// Fires after each rebuild of the index from changed caches.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The DHCP server's view of the site, swapped whole by [`reindex`].
    pub fn dhcp_site(&self) -> SiteHandle {
        self.dhcp_site.clone()
    }

    fn server(&self, ns: &str, name: &str) -> Option<Server> {
        let guard = self.servers.get(&ObjectRef::new(name).within(ns))?;
        guard.0.as_ref().ok().cloned()
    }

    /// The Rack `name` in `ns`.
    pub fn rack(&self, ns: &str, name: &str) -> Option<Rack> {
        let guard = self.racks.get(&ObjectRef::new(name).within(ns))?;
        guard.0.as_ref().ok().cloned()
    }

    /// The Server a request from `ip` comes from: the one holding `ip` as its node address,
    /// or the one whose provisioning reservation it is.
    pub fn server_by_address(&self, ip: std::net::IpAddr) -> Option<Server> {
        let text = ip.to_string();
        let by_node = self.servers.state().iter().find_map(|g| {
            let s = g.0.as_ref().ok()?;
            s.status
                .as_ref()?
                .addresses
                .iter()
                .any(|a| a.address == text)
                .then(|| s.clone())
        });
        by_node.or_else(|| {
            let std::net::IpAddr::V4(v4) = ip else {
                return None;
            };
            let site = self.dhcp_site.read().ok()?.clone();
            let mac = site
                .reservations
                .iter()
                .find(|(_, r)| r.address == v4)
                .map(|(m, _)| *m)?;
            self.server_by_mac(mac)
        })
    }

    /// Whether the caches were complete once: until then no machine is answered as unknown.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// The Server named `namespace/name`.
    pub fn server_by_name(&self, id: &str) -> Option<Server> {
        let (ns, name) = id.split_once('/')?;
        self.server(ns, name)
    }

    /// The Server that declared this boot MAC.
    pub fn server_by_mac(&self, mac: Mac) -> Option<Server> {
        let index = self.index.read().ok()?.clone();
        let (ns, name) = index.servers.get(&mac)?;
        self.server(ns, name)
    }
}

/// What the agent API (served beside the boot services, from the same caches) is given.
pub struct AgentContext {
    /// Caches and index.
    pub shared: Arc<Shared>,
    /// API client.
    pub client: Client,
    /// Events.
    pub recorder: Recorder,
    /// Token and credential key.
    pub key: TokenKey,
    /// The agent API's listener (opened in the boot namespace).
    pub listener: tokio::net::TcpListener,
    /// The agent API's server certificate and key.
    pub identity: tonic::transport::Identity,
    /// Port of the HTTP boot service (metadata and check-in for the installed OS).
    pub http_port: u16,
    /// Where unknown machines are enrolled (None: auto-enrolment off): the watched
    /// namespace, else `default`.
    pub enroll_namespace: Option<String>,
    /// How long a standby agent may stay silent (its heartbeat is written more often).
    pub standby_heartbeat_timeout: Duration,
}

/// Builds the index once both caches are complete, then rebuilds it after changes, at most
/// every 100 ms (bursts coalesce).
pub async fn reindex(
    shared: Arc<Shared>,
    racks: Store<DeserializeGuard<Rack>>,
    servers: Store<DeserializeGuard<Server>>,
    changed: Arc<Notify>,
) {
    let mut last_conflicts = Vec::new();
    let mut last_overlapping = Vec::new();
    // An error means the watch ended; the index then stays empty, as before.
    let _ = futures::future::try_join(racks.wait_until_ready(), servers.wait_until_ready()).await;
    loop {
        let rack_objs = racks.state();
        let server_objs = servers.state();
        let idx = site::index(
            rack_objs.iter().filter_map(|g| g.0.as_ref().ok()),
            server_objs.iter().filter_map(|g| g.0.as_ref().ok()),
        );
        if idx.conflicts != last_conflicts {
            for mac in &idx.conflicts {
                warn!(%mac, "boot MAC declared by several Servers: not answering it");
            }
            last_conflicts = idx.conflicts.clone();
        }
        if idx.overlapping != last_overlapping {
            for (a, b) in &idx.overlapping {
                warn!(rack = %a, other = %b, "provisioning subnets overlap: DHCP requests matching both racks are not answered");
            }
            last_overlapping = idx.overlapping.clone();
        }
        let dhcp_site = Arc::new(idx.site.clone());
        if let Ok(mut s) = shared.dhcp_site.write() {
            *s = dhcp_site;
        }
        if let Ok(mut i) = shared.index.write() {
            *i = Arc::new(idx);
        }
        shared.synced.store(true, Ordering::Release);
        shared.changes.send_modify(|n| *n += 1);
        changed.notified().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
