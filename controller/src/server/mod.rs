//! The Server reconciler: read → validate → decide → apply. This slice resolves
//! references and keeps the state machine; BMC, boot and provisioning work plug into decide.

mod decide;
mod read;
mod validate;

use std::sync::Arc;
use std::time::Instant;

use crds::Server;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::info;

pub use read::secret_refs;

use crate::context::Context;
use crate::{apply, invalid, paused};

/// Kind name for logs and metric labels.
pub const KIND: &str = "Server";

/// Why a Server reconciliation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("API request failed: {0}")]
    Kube(#[from] kube::Error),
}

impl Error {
    /// Label for the errors metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "KubeError",
        }
    }
}

/// Reconciles one Server.
pub async fn reconcile(
    obj: Arc<DeserializeGuard<Server>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !ctx.synced() {
        return Ok(Context::wait_for_sync());
    }
    let started = Instant::now();
    let server = match &obj.0 {
        Ok(server) => server,
        Err(bad) => {
            invalid::report(&ctx, KIND, bad, &ctx.servers).await;
            return Ok(Action::await_change());
        }
    };
    if paused(server) {
        return Ok(Action::await_change());
    }
    let facts = read::read(&ctx, server);
    let rack_name = server.spec.rack_ref.as_ref().map(|r| r.name.as_str());
    let unresolved = validate::validate(rack_name, &facts);
    let now = Time(jiff::Timestamp::now());
    let current = server.status.as_ref();
    let (desired, transition) =
        decide::decide(server.metadata.generation, &unresolved, current, &now);
    if let Some(t) = &transition {
        info!(server = %server.name_any(), namespace = ?server.namespace(), from = ?t.from, to = ?t.to, "state transition");
    }
    apply::status(&ctx, KIND, server, current, &desired).await?;
    ctx.metrics.reconciled(KIND, started.elapsed());
    Ok(Action::requeue(ctx.resync))
}

/// Servers to re-check when a Secret changes: those that reference it.
pub fn referencing_secret(
    servers: &Store<DeserializeGuard<Server>>,
    namespace: &str,
    secret: &str,
) -> Vec<ObjectRef<DeserializeGuard<Server>>> {
    servers
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|s| s.namespace().as_deref() == Some(namespace))
        .filter(|s| secret_refs(s).iter().any(|(_, name)| name == secret))
        .map(|s| ObjectRef::new(&s.name_any()).within(namespace))
        .collect()
}

/// Servers to re-check when a Rack changes: those in it.
pub fn in_rack(
    servers: &Store<DeserializeGuard<Server>>,
    namespace: &str,
    rack: &str,
) -> Vec<ObjectRef<DeserializeGuard<Server>>> {
    servers
        .state()
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|s| s.namespace().as_deref() == Some(namespace))
        .filter(|s| s.spec.rack_ref.as_ref().is_some_and(|r| r.name == rack))
        .map(|s| ObjectRef::new(&s.name_any()).within(namespace))
        .collect()
}
