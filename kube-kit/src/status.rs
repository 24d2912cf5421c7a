//! Writing a status with server-side apply, only when it changed.

use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Applies `desired` to the status subresource of `name` under the field manager `manager`
/// (forced: each manager owns its own status fields). Returns whether a request was sent: none
/// when `current == desired`, so an idle object costs no write.
pub async fn apply_if_changed<K, S>(
    api: &Api<K>,
    manager: &str,
    name: &str,
    current: Option<&S>,
    desired: &S,
) -> Result<bool, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(desired) {
        return Ok(false);
    }
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": desired,
    });
    api.patch_status(
        name,
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(true)
}
