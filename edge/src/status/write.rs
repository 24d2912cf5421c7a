//! Write: server-side apply under the `groundwork-edge` field manager, only when the status
//! changed, minor changes rate-limited per object.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kube::Resource;
use kube::api::Api;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Writes that change no condition status/reason and no established-ness wait this long
/// after the previous write of the same object (no write storms from a flapping FSM).
pub const MIN_MINOR_WRITE_INTERVAL: Duration = Duration::from_secs(15);

/// Writes status with server-side apply, only when it differs from what the object shows and
/// from what was last sent; minor changes are rate-limited per object.
#[derive(Default)]
pub struct StatusWriter {
    last: HashMap<(String, String), (serde_json::Value, Instant)>,
}

impl StatusWriter {
    /// Applies `desired` as the status of object `name` unless nothing changed. `current` is
    /// the object's current edge-owned status, `urgent` whether the change must not wait.
    pub async fn write<K, S>(
        &mut self,
        api: &Api<K>,
        name: &str,
        desired: &S,
        current: &S,
        urgent: bool,
    ) -> Result<bool, crate::error::Error>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
        S: Serialize + PartialEq,
    {
        let kind = K::kind(&()).into_owned();
        let value = serde_json::to_value(desired)?;
        let key = (kind, name.to_string());
        if let Some((sent, at)) = self.last.get(&key)
            && (*sent == value || (!urgent && at.elapsed() < MIN_MINOR_WRITE_INTERVAL))
        {
            return Ok(false);
        }
        let manager = crds::field_managers::EDGE;
        if !kube_kit::status::apply_if_changed(api, manager, name, Some(current), desired).await? {
            return Ok(false);
        }
        tracing::debug!(kind = %key.0, name, "status written");
        self.last.insert(key, (value, Instant::now()));
        Ok(true)
    }

    /// Forgets objects that no longer exist.
    pub fn retain(&mut self, alive: impl Fn(&str, &str) -> bool) {
        self.last.retain(|(k, n), _| alive(k, n));
    }
}
