//! Controller settings: flags, each also readable from the environment.

use std::net::SocketAddr;

use clap::Parser;

/// The Groundwork controller.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Config {
    /// Watch only this namespace (one site); all namespaces when absent.
    #[arg(long, env = "GROUNDWORK_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address of the metrics, health and readiness endpoints.
    #[arg(
        long,
        env = "GROUNDWORK_METRICS_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub metrics_addr: SocketAddr,
    /// Client requests per second to the API server (0: unlimited).
    #[arg(long, env = "GROUNDWORK_KUBE_QPS", default_value_t = 500)]
    pub kube_qps: u64,
    /// Objects of one kind reconciled at once.
    #[arg(long, env = "GROUNDWORK_CONCURRENCY", default_value_t = 64)]
    pub concurrency: u16,
    /// BMC conversations in flight at once, over all servers (each BMC endpoint is also
    /// limited to one request at a time).
    #[arg(long, env = "GROUNDWORK_BMC_CONCURRENCY", default_value_t = 64)]
    pub bmc_concurrency: usize,
    /// Seconds between re-checks of an object when nothing changes (checks never write when
    /// nothing changed).
    #[arg(long, env = "GROUNDWORK_RESYNC_SECONDS", default_value_t = 600)]
    pub resync_seconds: u64,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "GROUNDWORK_LEASE_NAME",
        default_value = "groundwork-controller"
    )]
    pub lease_name: String,
    /// Namespace of the leader-election Lease (defaults to the pod's namespace, else `default`).
    #[arg(long, env = "GROUNDWORK_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Seconds a Lease is valid without renewal.
    #[arg(long, env = "GROUNDWORK_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u64,
    /// Identity in the Lease (defaults to the host name and process id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Log as JSON lines.
    #[arg(long, env = "GROUNDWORK_LOG_JSON")]
    pub log_json: bool,
}

/// Field manager for everything the controller writes (server-side apply).
pub const FIELD_MANAGER: &str = "groundwork-controller";
