//! Apply stage shared by the reconcilers: write a status when it changed and announce each
//! condition transition as an Event.

use crds::field_managers::CONTROLLER;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::Api;
use kube::{Resource, ResourceExt};
use kube_kit::events::{self, FirstStatus};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::reconcilers::context::Context;

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
    let written =
        kube_kit::status::apply_if_changed(&api, CONTROLLER, &obj.name_any(), current, desired)
            .await?;
    if written {
        ctx.metrics.status_written(kind);
        let old = current.map(HasConditions::conditions).unwrap_or_default();
        let (new, first) = (desired.conditions(), FirstStatus::ProblemsOnly);
        events::announce(&ctx.recorder, obj, old, new, first).await;
    }
    Ok(written)
}
