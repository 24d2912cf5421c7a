//! The Groundwork controller binary: wires configuration, the API client, leader election, the
//! HTTP endpoints and the controllers together.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use controller::config::Config;
use controller::http::{self, Health};
use controller::leader::Elector;
use controller::metrics::Metrics;
use controller::run;
use futures::FutureExt;
use kube::client::ClientBuilder;
use tracing::{error, info};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut config = Config::parse();
    logging::init(config.log.log_format, "info,kube=warn");
    match serve(&mut config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "controller stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(config: &mut Config) -> Result<(), Box<dyn std::error::Error>> {
    let kube_config = kube::Config::infer().await?;
    let lease_namespace = config
        .lease_namespace
        .clone()
        .unwrap_or_else(|| kube_config.default_namespace.clone());
    let identity = config
        .identity
        .get_or_insert_with(|| format!("{}-{}", hostname(), std::process::id()))
        .clone();
    let builder = ClientBuilder::try_from(kube_config)?;
    let client = if config.kube_qps == 0 {
        builder.build()
    } else {
        builder
            .with_layer(&tower::limit::RateLimitLayer::new(
                config.kube_qps,
                Duration::from_secs(1),
            ))
            .build()
    };

    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health {
        metrics: metrics.clone(),
        ready: AtomicBool::new(false),
        logs: Arc::default(),
    });
    let listener = tokio::net::TcpListener::bind(config.metrics_addr).await?;
    info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz, /racks");
    let site = http::SiteSource {
        client: client.clone(),
        namespace: config.namespace.clone(),
    };
    let shutdown = shutdown_signal().shared();
    let http_shutdown = shutdown.clone();
    let served_health = health.clone();
    tokio::spawn(async move {
        let served = axum::serve(listener, http::router(served_health, site))
            .with_graceful_shutdown(http_shutdown)
            .await;
        if let Err(e) = served {
            error!(error = %e, "http server failed");
        }
    });

    if let Some(policy) = &config.admission_policy {
        tokio::select! {
            () = controller::admission::wait_enforced(&client, &lease_namespace, policy) => {}
            () = shutdown.clone() => return Ok(()),
        }
    }

    if config.boot.boot_services {
        // Boot services run on every replica, leader or not: losing the leader loses no boot.
        let boot_shutdown = shutdown.clone();
        let (boot_client, boot_health) = (client.clone(), health.clone());
        let (boot_config, boot_ns, boot_id) = (
            config.boot.clone(),
            config.namespace.clone(),
            identity.clone(),
        );
        tokio::spawn(async move {
            let served = controller::netboot::serve(
                boot_client,
                boot_ns.as_deref(),
                &boot_id,
                &boot_config,
                boot_health,
                boot_shutdown,
                controller::agent_api::serve,
            )
            .await;
            if let Err(e) = served {
                error!(error = %e, "boot services failed to start");
                std::process::exit(1);
            }
        });
    }

    let elector = Elector::new(
        client.clone(),
        &lease_namespace,
        &config.lease_name,
        &identity,
        Duration::from_secs(config.lease_seconds),
    );
    info!(%identity, lease = %config.lease_name, namespace = %lease_namespace, "waiting for leadership");
    tokio::select! {
        () = elector.acquire() => {}
        () = shutdown.clone() => return Ok(()),
    }
    info!(%identity, "leading");
    let outcome = tokio::select! {
        () = run::run(client, config, metrics, health, shutdown.clone()) => Ok(()),
        () = elector.hold() => Err("lost the leader lease".into()),
    };
    elector.release().await;
    outcome
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "groundwork".into())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c().map(|_| ());
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    info!("shutting down");
}
