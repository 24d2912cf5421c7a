//! The GroundworkCluster reconciler: read (the site's Racks from the cache) → decide (pure:
//! the failure domains) → status. It writes nothing else: the control-plane endpoint is the
//! user's, and Racks are never touched.

pub mod decide;

use std::sync::Arc;
use std::time::Instant;

use crds::GroundworkCluster;
use crds::Rack;
use crds::field_managers::PROVIDER;
use crds::provider::CAPI_PAUSED;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;

use super::context::Context;
use super::machine::Error;

/// Kind name for logs and metric labels.
pub const KIND: &str = "GroundworkCluster";

/// Reconciles one GroundworkCluster.
pub async fn reconcile(
    obj: Arc<DeserializeGuard<GroundworkCluster>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let Ok(gc) = &obj.0 else {
        return Ok(Action::await_change());
    };
    let started = Instant::now();
    let namespace = gc.namespace().unwrap_or_default();
    let racks = ctx.racks.state();
    let racks: Vec<&Rack> = racks
        .iter()
        .filter_map(|g| g.0.as_ref().ok())
        .filter(|r| r.namespace().as_deref() == Some(namespace.as_str()))
        .collect();
    let now = Time(jiff::Timestamp::now());
    let paused = gc.annotations().contains_key(CAPI_PAUSED);
    let desired = decide::decide(gc, &racks, paused, gc.status.as_ref(), &now);
    let api: Api<GroundworkCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let written = kube_kit::status::apply_if_changed(
        &api,
        PROVIDER,
        &gc.name_any(),
        gc.status.as_ref(),
        &desired,
    )
    .await?;
    if written {
        ctx.metrics.status_written(KIND);
        let old = gc
            .status
            .as_ref()
            .map(|s| s.conditions.as_slice())
            .unwrap_or_default();
        kube_kit::events::announce(
            &ctx.recorder,
            gc,
            old,
            &desired.conditions,
            kube_kit::events::FirstStatus::ProblemsOnly,
        )
        .await;
    }
    ctx.metrics.reconciled(KIND, started.elapsed());
    Ok(Action::requeue(ctx.resync))
}
