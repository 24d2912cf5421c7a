//! The Groundwork controller binary: wires configuration, the API client, leader election, the
//! HTTP endpoints and the controllers together.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use clap::Parser;
use controller::app::{self, App};
use controller::boot_services::capabilities;
use controller::config::Config;
use controller::leader::Elector;
use futures::FutureExt;
use tracing::{error, info};

fn main() -> std::process::ExitCode {
    let config = Config::parse();
    logging::init(config.log.log_format, "info,kube=warn");
    // Before the runtime's threads exist: they inherit the raised capabilities.
    if config.boot.boot_services {
        match capabilities::raise() {
            Ok(raised) if !raised.is_empty() => {
                info!(?raised, "raised the boot services' file capabilities");
            }
            Ok(_) => {}
            Err(e) => {
                error!(error = %e, reason = e.reason(), "boot services cannot start");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!(error = %e, "no async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %e, "controller stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(mut config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let kube_config = kube::Config::infer().await?;
    let lease_namespace = config
        .lease_namespace
        .clone()
        .unwrap_or_else(|| kube_config.default_namespace.clone());
    let identity = config
        .identity
        .get_or_insert_with(|| format!("{}-{}", hostname(), std::process::id()))
        .clone();
    let client = app::client(kube_config, config.kube_qps)?;
    let app = Arc::new(App::new(client.clone(), config));
    let config = &app.config;
    let listener = tokio::net::TcpListener::bind(config.metrics_addr).await?;
    info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz, /racks");
    let shutdown = shutdown_signal().shared();
    let http_shutdown = shutdown.clone();
    let router = app.router();
    tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(http_shutdown)
            .await;
        if let Err(e) = served {
            error!(error = %e, "http server failed");
        }
    });

    if let Some(policy) = config
        .admission_policy
        .as_ref()
        .filter(|_| !config.provider)
    {
        tokio::select! {
            () = controller::admission::wait_enforced(&client, &lease_namespace, policy) => {}
            () = shutdown.clone() => return Ok(()),
        }
    }

    // Boot services run on every replica, leader or not: losing the leader loses no boot.
    let (boot_app, boot_shutdown, boot_id) = (app.clone(), shutdown.clone(), identity.clone());
    tokio::spawn(async move {
        if let Err(e) = boot_app.boot_services(&boot_id, boot_shutdown).await {
            error!(error = %e, "boot services failed to start");
            std::process::exit(1);
        }
    });

    let elector = Elector::new(
        client.clone(),
        &lease_namespace,
        &config.lease_name(),
        &identity,
        Duration::from_secs(config.lease_seconds),
    );
    // Ready while waiting only when another replica leads: a replica that takes the Lease at
    // once is ready when its caches have synced.
    if !elector.try_acquire().await.unwrap_or(false) {
        app.health.standby.store(true, Ordering::Relaxed);
        info!(%identity, lease = %config.lease_name(), namespace = %lease_namespace, "waiting for leadership");
        tokio::select! {
            () = elector.acquire() => {}
            () = shutdown.clone() => return Ok(()),
        }
        app.health.standby.store(false, Ordering::Relaxed);
    }
    info!(%identity, "leading");
    let outcome = tokio::select! {
        () = app.reconcilers(shutdown.clone()) => Ok(()),
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
