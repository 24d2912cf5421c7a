//! The Rack reconciler: read → validate → decide → apply (status only; a Rack has no children).

mod decide;
mod read;
mod validate;

use std::sync::Arc;
use std::time::Instant;

use crds::Rack;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};

pub use validate::{Overlap, describe};

use crate::reconcilers::apply;
use crate::reconcilers::context::Context;
use crate::reconcilers::reconcile::{self, Admission, Error};

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
    let overlaps = validate::overlaps(
        &inputs.rack.name_any(),
        &inputs.rack.spec.networks,
        &inputs.peers,
    );
    let now = Time(jiff::Timestamp::now());
    let current = inputs.rack.status.as_ref();
    let desired = decide::decide(
        &inputs.rack.spec,
        inputs.rack.metadata.generation,
        &inputs.members,
        &pool,
        &overlaps,
        current,
        &now,
    );
    apply::status(&ctx, KIND, inputs.rack.as_ref(), current, &desired).await?;
    ctx.metrics.reconciled(KIND, started.elapsed());
    Ok(Action::requeue(ctx.resync))
}

/// Where `rack`'s provisioning and node networks overlap those of other Racks of its site.
pub fn overlaps(racks: &Store<DeserializeGuard<Rack>>, rack: &Rack) -> Vec<Overlap> {
    let (namespace, name) = (rack.namespace().unwrap_or_default(), rack.name_any());
    let peers = read::peers(racks, &namespace, &name);
    validate::overlaps(&name, &rack.spec.networks, &peers)
}

/// The other Racks of `rack`'s site to look at again after it changed or went away: those its
/// networks overlap now, and those reporting an overlap (perhaps with its former networks).
pub fn recheck(
    racks: &Store<DeserializeGuard<Rack>>,
    rack: &Rack,
) -> Vec<ObjectRef<DeserializeGuard<Rack>>> {
    let (namespace, name) = (rack.namespace().unwrap_or_default(), rack.name_any());
    read::peers(racks, &namespace, &name)
        .into_iter()
        .filter(|peer| {
            peer.reports_overlap
                || !validate::overlaps(&name, &rack.spec.networks, std::slice::from_ref(peer))
                    .is_empty()
        })
        .map(|peer| ObjectRef::new(&peer.name).within(&namespace))
        .collect()
}
