//! What every reconciler does before its pipeline, and how it fails.

use kube::Resource;
use kube::core::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;

use super::invalid;
use crate::paused;
use crate::reconcilers::context::Context;

/// Why a reconciliation failed.
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

/// Whether a reconciliation goes ahead.
pub enum Admission<'a, K> {
    /// Run the pipeline on this object.
    Proceed(&'a K),
    /// Stop here with this action.
    Done(Action),
}

/// Waits for the caches, reports an unreadable object (and skips it), and leaves paused
/// objects alone; otherwise hands the object to the pipeline.
pub async fn admit<'a, K>(
    ctx: &Context,
    kind: &'static str,
    obj: &'a DeserializeGuard<K>,
    store: &Store<DeserializeGuard<K>>,
) -> Admission<'a, K>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + 'static,
{
    if !ctx.synced() {
        return Admission::Done(Context::wait_for_sync());
    }
    match &obj.0 {
        Err(bad) => {
            invalid::report(ctx, kind, bad, store).await;
            Admission::Done(Action::await_change())
        }
        Ok(k) if paused(k) => Admission::Done(Action::await_change()),
        Ok(k) => Admission::Proceed(k),
    }
}
