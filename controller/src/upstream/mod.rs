//! The UpstreamLink reconciler: read → validate → decide → apply. This slice checks references
//! and duplicate peers; the edge daemon reports the session into its own status fields.

mod decide;
mod read;
mod validate;

use std::sync::Arc;
use std::time::Instant;

use crds::UpstreamLink;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;

use crate::context::Context;
use crate::{apply, invalid, paused};

/// Kind name for logs and metric labels.
pub const KIND: &str = "UpstreamLink";

/// Why an UpstreamLink reconciliation failed.
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

/// Reconciles one UpstreamLink.
pub async fn reconcile(
    obj: Arc<DeserializeGuard<UpstreamLink>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !ctx.synced() {
        return Ok(Context::wait_for_sync());
    }
    let started = Instant::now();
    let link = match &obj.0 {
        Ok(link) => link,
        Err(bad) => {
            invalid::report(&ctx, KIND, bad, &ctx.links).await;
            return Ok(Action::await_change());
        }
    };
    if paused(link) {
        return Ok(Action::await_change());
    }
    let facts = read::read(&ctx, link);
    let problems = validate::validate(&link.spec.router_ref, &read::peer_addresses(link), &facts);
    let now = Time(jiff::Timestamp::now());
    let current = link.status.as_ref().map(decide::owned);
    let desired = decide::decide(
        link.metadata.generation,
        &problems,
        link.status.as_ref(),
        &now,
    );
    apply::status(&ctx, KIND, link, current.as_ref(), &desired).await?;
    ctx.metrics.reconciled(KIND, started.elapsed());
    Ok(Action::requeue(ctx.resync))
}
