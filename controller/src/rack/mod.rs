//! The Rack reconciler: read → validate → decide → apply (status only; a Rack has no children).

mod decide;
mod read;
mod validate;

use std::sync::Arc;
use std::time::Instant;

use crds::Rack;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;

use crate::context::Context;
use crate::{apply, invalid, paused};

/// Kind name for logs and metric labels.
pub const KIND: &str = "Rack";

/// Why a Rack reconciliation failed.
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

/// Reconciles one Rack.
pub async fn reconcile(
    obj: Arc<DeserializeGuard<Rack>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !ctx.synced() {
        return Ok(Context::wait_for_sync());
    }
    let started = Instant::now();
    let rack = match &obj.0 {
        Ok(rack) => rack,
        Err(bad) => {
            invalid::report(&ctx, KIND, bad, &ctx.racks).await;
            return Ok(Action::await_change());
        }
    };
    if paused(rack) {
        return Ok(Action::await_change());
    }
    let inputs = read::read(&ctx, Arc::new(rack.clone()));
    let pool = validate::validate(&inputs.rack.spec);
    let now = Time(jiff::Timestamp::now());
    let current = inputs.rack.status.as_ref();
    let desired = decide::decide(
        &inputs.rack.spec,
        inputs.rack.metadata.generation,
        &inputs.members,
        &pool,
        current,
        &now,
    );
    apply::status(&ctx, KIND, inputs.rack.as_ref(), current, &desired).await?;
    ctx.metrics.reconciled(KIND, started.elapsed());
    Ok(Action::requeue(ctx.resync))
}
