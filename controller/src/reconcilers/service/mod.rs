//! The LoadBalancer Service reconciler: read → validate → decide (pure) → apply. A Service of
//! type LoadBalancer with the class `groundwork.dev/border` (or none, with
//! `--load-balancer-default-class`) gets one address per family from a BorderRouter's
//! `serviceAddressPools`, written to `status.loadBalancer.ingress` with the condition
//! `groundwork.dev/AddressAllocated`. The status is the record: a restarted controller reads
//! the addresses back, and a deleted Service's addresses are free again.

mod decide;
mod error;
mod model;
mod read;
mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::paused;
use crate::reconcilers::apply::{self, HasConditions};
use crate::reconcilers::context::Context;
use crate::reconcilers::reconcile::Error;

/// Kind name for logs and metric labels.
pub const KIND: &str = "Service";

/// How soon a Service whose allocation failed is looked at again (besides the watches).
const RETRY: Duration = Duration::from_secs(15);

impl HasConditions for decide::OwnedStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

/// Reconciles one Service.
pub async fn reconcile(svc: Arc<Service>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.synced() {
        return Ok(Context::wait_for_sync());
    }
    if paused(svc.as_ref()) {
        return Ok(Action::await_change());
    }
    let served = validate::served(&svc, ctx.load_balancer_default_class);
    let current = decide::OwnedStatus::observed(&svc);
    if !served && current == decide::OwnedStatus::default() {
        // Not ours, nothing of ours on it: most Services of a cluster end here.
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    // One allocation at a time: read, decide and write under the lock, so a grant is visible
    // to the next Service before the cache has caught up.
    let mut grants = ctx.service_grants.lock().await;
    let facts = read::read(&ctx, &svc, &grants);
    let outcome =
        served.then(|| decide::outcome(validate::request(&svc), &facts.pools, &facts.holders));
    let desired = decide::status(
        outcome.as_ref(),
        &current,
        svc.metadata.generation,
        &Time(jiff::Timestamp::now()),
    );
    apply::status(&ctx, KIND, svc.as_ref(), Some(&current), &desired).await?;
    ctx.metrics.pools(&decide::usage(
        &facts.pools,
        &facts.holders,
        &desired.addresses(),
    ));
    if let Some(uid) = svc.uid() {
        grants.insert(uid, desired.addresses());
    }
    let live: std::collections::BTreeSet<String> = ctx
        .services
        .state()
        .iter()
        .filter_map(|s| s.uid())
        .collect();
    grants.retain(|uid, _| live.contains(uid));
    drop(grants);
    ctx.metrics.reconciled(KIND, started.elapsed());
    Ok(match outcome.map(|o| o.result) {
        Some(Err(e)) => {
            // The transition was logged and announced once (condition + Event); retries are quiet.
            tracing::debug!(service = %svc.name_any(), reason = e.reason(), error = %e, "no address allocated; retrying");
            Action::requeue(RETRY)
        }
        _ => Action::requeue(ctx.resync),
    })
}

/// The LoadBalancer Services without a working allocation (retried when a pool changes or
/// another Service goes).
pub fn waiting(services: &Store<Service>) -> Vec<ObjectRef<Service>> {
    services
        .state()
        .iter()
        .filter(|s| s.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"))
        .filter(|s| {
            !decide::OwnedStatus::observed(s)
                .conditions
                .iter()
                .any(|c| c.status == "True")
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}
