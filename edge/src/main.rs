//! `groundwork-edge`: runs one BorderRouter's BIRD from the API. Wiring only.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use edge::run::{Options, run};

/// The edge daemon of one border router.
#[derive(Debug, Parser)]
#[command(name = "groundwork-edge", version, about)]
struct Flags {
    /// Name of the BorderRouter this daemon runs.
    #[arg(long, env = "GROUNDWORK_ROUTER")]
    router: String,
    /// Namespace (site) of the BorderRouter, its UpstreamLinks and BlackholeRoutes.
    #[arg(long, env = "GROUNDWORK_NAMESPACE")]
    namespace: String,
    /// Announce only the LoadBalancer Services of this namespace (default: every namespace);
    /// set it when the controller serves one namespace (`--namespace`), so the two agree.
    #[arg(long, env = "GROUNDWORK_SERVICE_NAMESPACE")]
    service_namespace: Option<String>,
    /// Directory the BIRD configuration is written to (BIRD must be able to read it).
    #[arg(long, default_value = "/etc/bird/groundwork")]
    config_dir: PathBuf,
    /// BIRD's control socket.
    #[arg(long, default_value = "/run/bird/bird.ctl")]
    bird_socket: PathBuf,
    /// The `bird` binary used for the syntax check (`bird -p`).
    #[arg(long, default_value = "bird")]
    bird_binary: PathBuf,
    /// File BIRD logs to (default: syslog).
    #[arg(long)]
    bird_log_file: Option<String>,
    /// Milliseconds between BIRD status polls.
    #[arg(long, default_value_t = 1000)]
    poll_interval_ms: u64,
    /// Address `/metrics` (Prometheus) is served on.
    #[arg(
        long,
        env = "GROUNDWORK_METRICS_ADDR",
        default_value = "127.0.0.1:8090"
    )]
    metrics_addr: std::net::SocketAddr,
    /// Log output.
    #[command(flatten)]
    log: logging::LogArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let flags = Flags::parse();
    logging::init(flags.log.log_format, "info");
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, reason = "ClientConfigInvalid", "cannot build the Kubernetes client (KUBECONFIG or in-cluster)");
            return std::process::ExitCode::FAILURE;
        }
    };
    let metrics = edge::metrics::Metrics::new();
    let listener = match tokio::net::TcpListener::bind(flags.metrics_addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, addr = %flags.metrics_addr, reason = "MetricsBindFailed", "cannot listen for /metrics");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving /metrics");
    }
    let server = tokio::spawn(edge::metrics::serve(
        listener,
        metrics.clone(),
        std::future::pending(),
    ));
    let opts = Options {
        router: flags.router,
        namespace: flags.namespace,
        service_namespace: flags.service_namespace,
        config_dir: flags.config_dir,
        bird_socket: flags.bird_socket,
        bird_binary: flags.bird_binary,
        bird_log_file: flags.bird_log_file,
        poll_interval: Duration::from_millis(flags.poll_interval_ms.max(100)),
        metrics,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down; BIRD keeps its configuration");
    };
    let result = run(client, opts, shutdown).await;
    server.abort();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(reason = e.reason(), error = %e, "edge daemon failed");
            std::process::ExitCode::FAILURE
        }
    }
}
