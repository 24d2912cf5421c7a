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
    /// Seconds a ramdisk may stay silent (no boot step, no agent progress) before its attempt
    /// is retried, and the installed OS may take to check in after the disk boot.
    #[arg(
        long,
        env = "GROUNDWORK_RAMDISK_TIMEOUT_SECONDS",
        default_value_t = 900
    )]
    pub ramdisk_timeout_seconds: u64,
    /// Run the Cluster API infrastructure provider (GroundworkCluster, GroundworkMachine)
    /// instead of the site controller: no boot services, its own Lease and field manager
    /// (`groundwork-provider`). Deploy it under its own ServiceAccount: it writes Server intent.
    #[arg(long, env = "GROUNDWORK_PROVIDER")]
    pub provider: bool,
    /// Name of the leader-election Lease (default `groundwork-controller`, or
    /// `groundwork-provider` with `--provider`).
    #[arg(long, env = "GROUNDWORK_LEASE_NAME")]
    pub lease_name: Option<String>,
    /// Namespace of the leader-election Lease (defaults to the pod's namespace, else `default`).
    #[arg(long, env = "GROUNDWORK_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Seconds a Lease is valid without renewal.
    #[arg(long, env = "GROUNDWORK_LEASE_SECONDS", default_value_t = 15)]
    pub lease_seconds: u64,
    /// Identity in the Lease (defaults to the host name and process id).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Name of the chart's ValidatingAdmissionPolicy narrowing this controller's writes to
    /// Servers. When set, nothing is written (no boot service, no reconcile) before a dry-run
    /// probe shows the API server enforcing it. Unset: no check (a controller run by hand).
    #[arg(long, env = "GROUNDWORK_ADMISSION_POLICY")]
    pub admission_policy: Option<String>,
    /// Also serve LoadBalancer Services that set no `spec.loadBalancerClass` (Groundwork as
    /// the cluster's default load balancer); Services of our class `groundwork.dev/border`
    /// are always served.
    #[arg(long, env = "GROUNDWORK_LOAD_BALANCER_DEFAULT_CLASS")]
    pub load_balancer_default_class: bool,
    /// Log output.
    #[command(flatten)]
    pub log: logging::LogArgs,
    /// Network boot services (DHCP, TFTP, HTTP boot); they run on every replica.
    #[command(flatten)]
    pub boot: BootConfig,
}

/// Settings of the network boot services.
#[derive(clap::Args, Debug, Clone)]
pub struct BootConfig {
    /// Run the boot services (HTTP boot and TFTP; DHCP on each `--dhcp-interface`).
    #[arg(long, env = "GROUNDWORK_BOOT_SERVICES")]
    pub boot_services: bool,
    /// Answer DHCP on this provisioning interface (repeat for several racks' networks).
    #[arg(
        long = "dhcp-interface",
        env = "GROUNDWORK_DHCP_INTERFACES",
        value_delimiter = ','
    )]
    pub dhcp_interfaces: Vec<String>,
    /// Open the boot services' sockets inside this network namespace (a name under
    /// /run/netns or a path); for labs and tests, production uses hostNetwork.
    #[arg(long, env = "GROUNDWORK_BOOT_NETNS")]
    pub boot_netns: Option<String>,
    /// Address of the HTTP boot service (iPXE scripts, kernel, initrd, the agent API's CA,
    /// NoCloud metadata and first-boot check-ins).
    #[arg(
        long,
        env = "GROUNDWORK_BOOT_HTTP_ADDR",
        default_value = "0.0.0.0:8081"
    )]
    pub boot_http_addr: SocketAddr,
    /// Address of the agent API (gRPC) the ramdisk's agent calls.
    #[arg(
        long,
        env = "GROUNDWORK_AGENT_GRPC_ADDR",
        default_value = "0.0.0.0:9443"
    )]
    pub agent_grpc_addr: SocketAddr,
    /// Secret holding the agent API's CA (`ca.crt`, `ca.key`; created when absent).
    #[arg(
        long,
        env = "GROUNDWORK_AGENT_CA_SECRET",
        default_value = "groundwork-agent-ca"
    )]
    pub agent_ca_secret: String,
    /// Namespace of that Secret (default: `--namespace`, else the client's default namespace,
    /// i.e. the pod's own in a cluster).
    #[arg(long, env = "GROUNDWORK_AGENT_CA_NAMESPACE")]
    pub agent_ca_namespace: Option<String>,
    /// Address of the TFTP service (the iPXE binaries only).
    #[arg(long, env = "GROUNDWORK_TFTP_ADDR", default_value = "0.0.0.0:69")]
    pub tftp_addr: SocketAddr,
    /// Our address as told to machines behind DHCP relays (default: the arrival
    /// interface's address).
    #[arg(long, env = "GROUNDWORK_BOOT_ADVERTISE_ADDRESS")]
    pub boot_advertise_address: Option<std::net::Ipv4Addr>,
    /// Directory holding the ramdisk: `vmlinuz` and `initrd.img`.
    #[arg(
        long,
        env = "GROUNDWORK_BOOT_ARTIFACTS",
        default_value = "/var/lib/groundwork/boot"
    )]
    pub boot_artifacts: std::path::PathBuf,
    /// Directory holding Debian's iPXE binaries (`undionly.kpxe`, `ipxe.efi`).
    #[arg(long, env = "GROUNDWORK_IPXE_DIR", default_value = "/usr/lib/ipxe")]
    pub ipxe_dir: std::path::PathBuf,
    /// File holding the key boot tokens are signed with (at least 32 bytes; the same on
    /// every replica, e.g. a mounted Secret).
    #[arg(long, env = "GROUNDWORK_BOOT_TOKEN_KEY_FILE")]
    pub boot_token_key_file: Option<std::path::PathBuf>,
    /// Netboot machines nobody declared into the discovery ramdisk (otherwise they are told
    /// to exit).
    #[arg(long, env = "GROUNDWORK_AUTO_ENROLL")]
    pub auto_enroll: bool,
    /// Extra kernel arguments for the ramdisk.
    #[arg(
        long,
        env = "GROUNDWORK_BOOT_KERNEL_ARGS",
        default_value = "console=ttyS0,115200"
    )]
    pub boot_kernel_args: String,
    /// Seconds a standby agent may stay silent before its server is given up (powered off,
    /// `Available`, Event `StandbyLost`). Longer than a controller restart plus the agent's
    /// retry backoff, so a restart keeps the pool; the agent's heartbeat is written every
    /// quarter of it (at most every minute).
    #[arg(
        long,
        env = "GROUNDWORK_STANDBY_HEARTBEAT_TIMEOUT_SECONDS",
        default_value_t = 300
    )]
    pub standby_heartbeat_timeout_seconds: u64,
}

impl Config {
    /// The leader-election Lease's name: the controller and the provider never share one.
    pub fn lease_name(&self) -> String {
        self.lease_name.clone().unwrap_or_else(|| {
            if self.provider {
                crds::field_managers::PROVIDER.into()
            } else {
                crds::field_managers::CONTROLLER.into()
            }
        })
    }
}
