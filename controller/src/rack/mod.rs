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

use crate::apply;
use crate::context::Context;
use crate::reconcile::{self, Admission, Error};

/// Kind name for logs and metric labels.
pub const KIND: &str = "Rack";

/// Reconciles one Rack.
pub async fn reconcile(
    obj: Arc<DeserializeGuard<Rack>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let rack = match reconcile::admit(&ctx, KIND, &obj, &ctx.racks).await {
        Admission::Proceed(rack) => rack,
        Admission::Done(action) => return Ok(action),
    };
    let started = Instant::now();
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
