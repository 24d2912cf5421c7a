//! `/metrics`, `/healthz`, `/readyz` and the read-only rack view (`/racks`,
//! `/racks/{namespace}/{name}`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use crds::{Rack, Server, UpstreamLink};
use kube::api::ListParams;
use kube::core::DeserializeGuard;
use kube::{Api, Client, ResourceExt};

use crate::agent_logs::Logs;
use crate::metrics::Metrics;
use crate::view;

/// What the endpoints report.
pub struct Health {
    /// Metrics to encode.
    pub metrics: Arc<Metrics>,
    /// Set once every cache has synced (and cleared on shutdown).
    pub ready: AtomicBool,
    /// Set while this replica waits for the Lease: a standby serves boot requests (it is one of
    /// the Service's endpoints), so it is ready too.
    pub standby: AtomicBool,
}

impl Health {
    /// Not ready yet.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            ready: AtomicBool::new(false),
            standby: AtomicBool::new(false),
        }
    }
}

/// Where the rack view reads its objects: the API (read-only: list only), in the namespace the
/// controller watches, or all namespaces.
#[derive(Clone)]
pub struct SiteSource {
    /// API client.
    pub client: Client,
    /// The watched namespace (`--namespace`); all namespaces when absent.
    pub namespace: Option<String>,
}

/// The router serving the health endpoints, the agents' log lines this replica received and
/// the rack view.
pub fn router(health: Arc<Health>, logs: Arc<Logs>, site: SiteSource) -> Router {
    let view = Router::new()
        .route("/racks", get(racks))
        .route("/racks/{namespace}/{name}", get(rack))
        .with_state(site);
    let logs = Router::new()
        .route("/servers/{namespace}/{name}/logs", get(agent_logs))
        .with_state(logs);
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
        .merge(logs)
        .merge(view)
}

async fn metrics(State(h): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        h.metrics.registry_text(),
    )
}

/// The agent's log lines of one Server as plain text, oldest first.
async fn agent_logs(
    State(logs): State<Arc<Logs>>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let lines = logs.tail(&format!("{namespace}/{name}"), crate::agent_logs::KEEP);
    if lines.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            format!("no agent log lines for {namespace}/{name} on this replica\n"),
        )
            .into_response();
    }
    let mut body = lines.join("\n");
    body.push('\n');
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn readyz(State(h): State<Arc<Health>>) -> impl IntoResponse {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else if h.standby.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready (standby)")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches not synced")
    }
}

/// Lists one kind, skipping (and counting) objects the types cannot read.
async fn list<K>(client: &Client, namespace: Option<&str>) -> Result<(Vec<K>, usize), kube::Error>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let api: Api<DeserializeGuard<K>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let items = api.list(&ListParams::default()).await?.items;
    let total = items.len();
    let readable: Vec<K> = items.into_iter().filter_map(|g| g.0.ok()).collect();
    let unreadable = total - readable.len();
    Ok((readable, unreadable))
}

async fn page(site: &SiteSource, only: Option<(&str, &str)>) -> Response {
    let namespace = match (only, site.namespace.as_deref()) {
        (Some((ns, _)), Some(watched)) if ns != watched => {
            return (
                StatusCode::NOT_FOUND,
                "namespace not watched by this controller",
            )
                .into_response();
        }
        (Some((ns, _)), _) => Some(ns),
        (None, watched) => watched,
    };
    let listed = futures::try_join!(
        list::<Rack>(&site.client, namespace),
        list::<Server>(&site.client, namespace),
        list::<UpstreamLink>(&site.client, namespace),
    );
    let ((mut racks, r), (servers, s), (links, l)) = match listed {
        Ok(listed) => listed,
        Err(e) => {
            tracing::warn!(error = %e, "rack view: listing failed");
            return (
                StatusCode::BAD_GATEWAY,
                format!("listing from the API server failed: {e}"),
            )
                .into_response();
        }
    };
    let title = match only {
        Some((ns, name)) => {
            racks.retain(|rk| rk.name_any() == name);
            if racks.is_empty() {
                return (StatusCode::NOT_FOUND, "no such rack").into_response();
            }
            format!("{ns}/{name}")
        }
        None => namespace.unwrap_or("all namespaces").to_string(),
    };
    Html(view::render(&view::Site {
        title: &title,
        racks: &racks,
        servers: &servers,
        links: &links,
        unreadable: r + s + l,
    }))
    .into_response()
}

async fn racks(State(site): State<SiteSource>) -> Response {
    page(&site, None).await
}

async fn rack(
    State(site): State<SiteSource>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    page(&site, Some((&namespace, &name))).await
}
