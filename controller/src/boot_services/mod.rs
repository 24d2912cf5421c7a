//! The network boot services, run on every replica (leader or not): DHCP answers from the
//! site index, TFTP for the iPXE binaries, HTTP for scripts and the ramdisk (which reports in
//! over the agent API).
//! They watch Racks and Servers themselves, so a standby replica answers boots too.

pub mod agent_api;
pub mod ca;
pub mod capabilities;
pub mod http;
pub mod nocloud;
pub mod report;
pub mod shared;
pub mod site;
pub mod steps;
pub mod target;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use boot::dhcp::server::{Advertise, Seen};
use boot::token::TokenKey;
use crds::{Rack, Server};
use futures::StreamExt;
use kube::core::DeserializeGuard;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::{Notify, mpsc};
use tracing::{info, warn};

use crate::agent_logs::Logs;
use crate::config::BootConfig;
use crate::metrics::Metrics;
use shared::{AgentContext, Shared, reindex};

/// Errors starting the boot services.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The token key file is missing, unreadable or too short.
    #[error("boot token key: {0}")]
    Key(String),
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] boot::netns::NetnsError),
    /// A DHCP socket failed.
    #[error(transparent)]
    Dhcp(#[from] boot::dhcp::server::DhcpError),
    /// The iPXE binaries are not there.
    #[error(transparent)]
    Tftp(#[from] boot::tftp::TftpError),
    /// The agent API's CA or certificate is not available.
    #[error(transparent)]
    AgentCa(#[from] ca::CaError),
    /// Binding a socket failed.
    #[error("{what} on {addr}: {source}")]
    Bind {
        /// Which service.
        what: &'static str,
        /// Where.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
}

fn read_key(path: Option<&Path>) -> Result<TokenKey, BootError> {
    let path = path.ok_or_else(|| {
        BootError::Key("--boot-token-key-file is required with --boot-services".into())
    })?;
    let bytes = std::fs::read(path)
        .map_err(|e| BootError::Key(format!("cannot read {}: {e}", path.display())))?;
    TokenKey::new(bytes.trim_ascii())
        .ok_or_else(|| BootError::Key(format!("{} holds fewer than 32 bytes", path.display())))
}

fn netns_path(ns: Option<&str>) -> Option<PathBuf> {
    ns.map(|n| {
        if n.contains('/') {
            PathBuf::from(n)
        } else {
            boot::netns::named(n)
        }
    })
}

/// Starts the boot services and the agent API beside them, from the same caches, and runs them
/// until `shutdown`; the agents' log lines go to `logs`. Errors only at start.
pub async fn serve(
    client: Client,
    namespace: Option<&str>,
    identity: &str,
    config: &BootConfig,
    metrics: Arc<Metrics>,
    logs: Arc<Logs>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), BootError> {
    let key = read_key(config.boot_token_key_file.as_deref())?;
    let ca_namespace = config
        .agent_ca_namespace
        .as_deref()
        .or(namespace)
        .unwrap_or(client.default_namespace())
        .to_string();
    let ca = ca::load_or_create(&client, &ca_namespace, &config.agent_ca_secret).await?;
    let tls = ca::issue(&ca, config.boot_advertise_address)?;
    let ns_path = netns_path(config.boot_netns.as_deref());
    let tftp_root = Arc::new(boot::tftp::TftpRoot::new(
        config.ipxe_dir.clone(),
        &[boot::dhcp::client::BIOS_FILE, boot::dhcp::client::UEFI_FILE],
    )?);

    // Every socket is opened inside the boot namespace (when given).
    let interfaces = config.dhcp_interfaces.clone();
    let (http_addr, tftp_addr, agent_addr) = (
        config.boot_http_addr,
        config.tftp_addr,
        config.agent_grpc_addr,
    );
    let (bound, http_listener, tftp_socket, agent_listener) =
        boot::netns::within(ns_path.as_deref(), move || {
            let bound = interfaces
                .iter()
                .map(|i| boot::dhcp::server::bind(i))
                .collect::<Result<Vec<_>, _>>()?;
            let http =
                std::net::TcpListener::bind(http_addr).map_err(|source| BootError::Bind {
                    what: "HTTP boot",
                    addr: http_addr,
                    source,
                })?;
            let tftp = std::net::UdpSocket::bind(tftp_addr).map_err(|source| BootError::Bind {
                what: "TFTP",
                addr: tftp_addr,
                source,
            })?;
            let agent =
                std::net::TcpListener::bind(agent_addr).map_err(|source| BootError::Bind {
                    what: "agent API",
                    addr: agent_addr,
                    source,
                })?;
            for s in [
                http.set_nonblocking(true),
                tftp.set_nonblocking(true),
                agent.set_nonblocking(true),
            ] {
                s.map_err(|source| BootError::Bind {
                    what: "boot socket",
                    addr: http_addr,
                    source,
                })?;
            }
            Ok::<_, BootError>((bound, http, tftp, agent))
        })??;
    let bind_err = |what, addr| move |source| BootError::Bind { what, addr, source };
    let http_listener = tokio::net::TcpListener::from_std(http_listener)
        .map_err(bind_err("HTTP boot", http_addr))?;
    let tftp_socket =
        tokio::net::UdpSocket::from_std(tftp_socket).map_err(bind_err("TFTP", tftp_addr))?;
    let agent_listener = tokio::net::TcpListener::from_std(agent_listener)
        .map_err(bind_err("agent API", agent_addr))?;

    let (servers, server_writer) = reflector::store::<DeserializeGuard<Server>>();
    let (racks, rack_writer) = reflector::store::<DeserializeGuard<Rack>>();
    let shared = Arc::new(Shared::new(servers.clone(), racks.clone(), logs));
    let changed = Arc::new(Notify::new());
    let wc = watcher::Config::default().any_semantic();
    let (c1, c2) = (changed.clone(), changed.clone());
    let server_watch = watcher(
        api::<DeserializeGuard<Server>>(&client, namespace),
        wc.clone(),
    )
    .default_backoff()
    .modify(kube_kit::store::without_managed_fields)
    .reflect(server_writer)
    .for_each(move |_| {
        c1.notify_one();
        futures::future::ready(())
    });
    let rack_watch = watcher(api::<DeserializeGuard<Rack>>(&client, namespace), wc)
        .default_backoff()
        .modify(kube_kit::store::without_managed_fields)
        .reflect(rack_writer)
        .for_each(move |_| {
            c2.notify_one();
            futures::future::ready(())
        });
    let indexer = reindex(shared.clone(), racks, servers, changed);

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: crds::field_managers::BOOT.into(),
            instance: Some(identity.to_string()),
        },
    );
    let (seen_tx, seen_rx) = mpsc::channel::<Seen>(1024);
    let dhcp = boot::dhcp::server::serve(
        bound,
        shared.dhcp_site(),
        Advertise {
            http_port: config.boot_http_addr.port(),
            address: config.boot_advertise_address,
        },
        metrics.boot.clone(),
        seen_tx,
    );
    let dhcp_steps = report_dhcp(shared.clone(), client.clone(), recorder.clone(), seen_rx);
    let tftp = boot::tftp::serve(tftp_socket, tftp_root, metrics.boot.clone());
    let agent = agent_api::serve(AgentContext {
        shared: shared.clone(),
        client: client.clone(),
        recorder: recorder.clone(),
        key: key.clone(),
        listener: agent_listener,
        identity: tls.identity,
        http_port: http_addr.port(),
        enroll_namespace: config
            .auto_enroll
            .then(|| namespace.unwrap_or("default").to_string()),
        standby_heartbeat_timeout: std::time::Duration::from_secs(
            config.standby_heartbeat_timeout_seconds,
        ),
    });
    let state = Arc::new(http::BootHttp {
        shared,
        client,
        recorder,
        key,
        ramdisk: boot::ramdisk::Ramdisk::new(&config.boot_artifacts),
        ipxe_dir: config.ipxe_dir.clone(),
        auto_enroll: config.auto_enroll,
        kernel_args: config.boot_kernel_args.clone(),
        agent_port: agent_addr.port(),
        agent_ca_pem: tls.ca_pem,
        agent_ca_pin: tls.ca_pin,
        metrics: metrics.boot.clone(),
    });
    info!(http = %http_addr, tftp = %tftp_addr, agent = %agent_addr, agent_ca_secret = %format!("{ca_namespace}/{}", config.agent_ca_secret), dhcp = ?config.dhcp_interfaces, netns = ?ns_path, "boot services listening");
    let http = axum::serve(
        http_listener,
        http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    );
    tokio::select! {
        () = shutdown => {}
        _ = server_watch => warn!("server watch ended"),
        _ = rack_watch => warn!("rack watch ended"),
        () = indexer => {}
        r = dhcp => if let Err(e) = r { warn!(error = %e, "DHCP stopped") },
        () = dhcp_steps => {}
        () = tftp => warn!("TFTP stopped"),
        r = http => if let Err(e) = r { warn!(error = %e, "HTTP boot stopped") },
        () = agent => warn!("agent API stopped"),
    }
    info!("boot services stopped");
    Ok(())
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Turns DHCP acknowledgements into boot steps of the Servers that own the MACs.
async fn report_dhcp(
    shared: Arc<Shared>,
    client: Client,
    recorder: Recorder,
    mut seen: mpsc::Receiver<Seen>,
) {
    while let Some(s) = seen.recv().await {
        if s.sent != "ack" || s.address == Ipv4Addr::UNSPECIFIED {
            continue;
        }
        let Some(server) = shared.server_by_mac(s.mac) else {
            continue;
        };
        let details = steps::Details {
            note: format!(
                "DHCP acknowledged {} with {} ({} firmware, rack {})",
                s.mac, s.address, s.firmware, s.rack
            ),
            dhcp: Some((s.address.to_string(), s.firmware.to_string())),
            ..steps::Details::default()
        };
        steps::record(&client, &recorder, &server, steps::Step::Dhcp, details).await;
    }
}
