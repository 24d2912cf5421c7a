//! Apply stage shared by the reconcilers: write a status when it changed and announce each
//! condition transition as an Event.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::context::Context;
use crate::{events, patch};

/// A status type that carries standard conditions.
pub trait HasConditions {
    /// The status's conditions.
    fn conditions(&self) -> &[Condition];
}

macro_rules! has_conditions {
    ($($t:ty),*) => {$(
        impl HasConditions for $t {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
        }
    )*};
}
has_conditions!(
    crds::RackStatus,
    crds::ServerStatus,
    crds::UpstreamLinkStatus
);

/// Writes `desired` when it differs from `current`, then publishes one Event per condition
/// transition. Returns whether a write happened.
pub async fn status<K, S>(
    ctx: &Context,
    kind: &'static str,
    obj: &K,
    current: Option<&S>,
    desired: &S,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    S: Serialize + PartialEq + HasConditions,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &obj.namespace().unwrap_or_default());
    let written = patch::apply_status(&api, obj, current, desired).await?;
    if written {
        ctx.metrics.status_written(kind);
        let old = current.map(HasConditions::conditions).unwrap_or_default();
        let reference = obj.object_ref(&());
        for event in events::transitions(old, desired.conditions()) {
            info!(kind, name = %obj.name_any(), reason = %event.reason, note = ?event.note, "condition changed");
            if let Err(e) = ctx.recorder.publish(&event, &reference).await {
                warn!(kind, name = %obj.name_any(), error = %e, "could not publish event");
            }
        }
    }
    Ok(written)
}
