//! The wiring `main.rs` and the end-to-end harness share: one configuration, one set of metrics
//! and agent logs, the two wings (boot services on every replica, reconcilers on the leader) and
//! the endpoints. Leader election and signals stay in `main.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use kube::Client;
use kube::client::ClientBuilder;

use crate::agent_logs::Logs;
use crate::boot_services::{self, BootError};
use crate::config::Config;
use crate::health::{self, Health, SiteSource};
use crate::metrics::Metrics;
use crate::{provider, reconcilers};

/// The API client for `config`, limited to `qps` requests per second (0: unlimited).
pub fn client(config: kube::Config, qps: u64) -> Result<Client, kube::Error> {
    let builder = ClientBuilder::try_from(config)?;
    Ok(if qps == 0 {
        builder.build()
    } else {
        builder
            .with_layer(&tower::limit::RateLimitLayer::new(
                qps,
                Duration::from_secs(1),
            ))
            .build()
    })
}

/// One controller process's parts.
pub struct App {
    /// API client.
    pub client: Client,
    /// Configuration.
    pub config: Config,
    /// Prometheus metrics of both wings.
    pub metrics: Arc<Metrics>,
    /// Readiness (the reconcilers' caches synced).
    pub health: Arc<Health>,
    /// The agents' recent log lines, as this replica's boot services received them.
    pub logs: Arc<Logs>,
}

impl App {
    /// The parts, nothing started.
    pub fn new(client: Client, config: Config) -> Self {
        let metrics = Arc::new(Metrics::default());
        Self {
            client,
            config,
            health: Arc::new(Health::new(metrics.clone())),
            metrics,
            logs: Arc::default(),
        }
    }

    /// `/metrics`, `/healthz`, `/readyz`, the agents' logs and the rack view.
    pub fn router(&self) -> Router {
        let site = SiteSource {
            client: self.client.clone(),
            namespace: self.config.namespace.clone(),
        };
        health::router(self.health.clone(), self.logs.clone(), site)
    }

    /// Runs the boot services and the agent API until `shutdown`, when `--boot-services` asks
    /// for them (otherwise returns at once). Errors only at start.
    pub async fn boot_services(
        &self,
        identity: &str,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), BootError> {
        if !self.config.boot.boot_services || self.config.provider {
            return Ok(());
        }
        boot_services::serve(
            self.client.clone(),
            self.config.namespace.as_deref(),
            identity,
            &self.config.boot,
            self.metrics.clone(),
            self.logs.clone(),
            shutdown,
        )
        .await
    }

    /// Runs the caches and the reconcilers until `shutdown`: the site's, or with `--provider`
    /// the Cluster API provider's.
    pub async fn reconcilers(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
    ) {
        if self.config.provider {
            return provider::run(
                self.client.clone(),
                &self.config,
                self.metrics.clone(),
                self.health.clone(),
                shutdown,
            )
            .await;
        }
        reconcilers::run(
            self.client.clone(),
            &self.config,
            self.metrics.clone(),
            self.health.clone(),
            shutdown,
        )
        .await;
    }
}
