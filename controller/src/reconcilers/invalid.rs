//! Objects stored with a shape the types cannot read: reported once per version, never fatal.

use kube::Resource;
use kube::core::DeserializeGuard;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::Store;
use tracing::warn;

use crate::reconcilers::context::Context;

/// Logs, counts and publishes a Warning Event for an unreadable object, once per
/// resourceVersion, so the other objects keep reconciling.
pub async fn report<K>(
    ctx: &Context,
    kind: &'static str,
    invalid: &InvalidObject,
    store: &Store<DeserializeGuard<K>>,
) where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + 'static,
{
    let meta = &invalid.metadata;
    let key = (
        meta.uid.clone().unwrap_or_default(),
        meta.resource_version.clone().unwrap_or_default(),
    );
    ctx.metrics
        .set_invalid(kind, store.state().iter().filter(|g| g.0.is_err()).count());
    let first = ctx
        .reported_invalid
        .lock()
        .map(|mut seen| seen.insert(key))
        .unwrap_or(true);
    if !first {
        return;
    }
    warn!(kind, namespace = ?meta.namespace, name = ?meta.name, error = %invalid.error, "object cannot be read; skipping it");
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        ..Default::default()
    };
    let event = Event {
        type_: EventType::Warning,
        reason: "InvalidObject".into(),
        note: Some(format!(
            "the controller cannot read this object and skips it: {}",
            invalid.error
        )),
        action: "Read".into(),
        secondary: None,
    };
    kube_kit::events::send(&ctx.recorder, &reference, &event).await;
}
