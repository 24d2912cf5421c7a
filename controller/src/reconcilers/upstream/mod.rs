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

use crate::reconcilers::apply;
use crate::reconcilers::context::Context;
use crate::reconcilers::reconcile::{self, Admission, Error};

/// Kind name for logs and metric labels.
pub const KIND: &str = "UpstreamLink";

/// Reconciles one UpstreamLink.
pub async fn reconcile(
    obj: Arc<DeserializeGuard<UpstreamLink>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let link = match reconcile::admit(&ctx, KIND, &obj, &ctx.links).await {
        Admission::Proceed(link) => link,
        Admission::Done(action) => return Ok(action),
    };
    let started = Instant::now();
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
