//! One request at a time per BMC endpoint, many endpoints in parallel.
//!
//! BMCs are small embedded computers: many of them fail or lock up when a
//! second client session talks to them at the same time. Every driver takes
//! the endpoint's lock for the whole duration of one trait call (which may be
//! several HTTP requests or `ipmitool` runs, including retries), so calls to
//! the same endpoint never overlap, even from two driver instances created
//! for the same address. Calls to different endpoints run concurrently.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

type Registry = Mutex<HashMap<String, Weak<AsyncMutex<()>>>>;

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Mutex::new(HashMap::new()));

/// The process-wide lock of one endpoint. Cloning shares the same lock.
#[derive(Clone, Debug)]
pub struct EndpointLock {
    key: String,
    lock: Arc<AsyncMutex<()>>,
}

impl EndpointLock {
    /// The lock for `key` (see [`BmcAddress::endpoint_key`](crate::BmcAddress::endpoint_key)):
    /// the same lock for as long as any holder of it exists.
    pub fn for_endpoint(key: &str) -> Self {
        // A poisoned registry only means another thread panicked while holding
        // the std mutex; the map itself is still consistent.
        let mut map = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(lock) = map.get(key).and_then(Weak::upgrade) {
            return Self {
                key: key.to_string(),
                lock,
            };
        }
        map.retain(|_, weak| weak.strong_count() > 0);
        let lock = Arc::new(AsyncMutex::new(()));
        map.insert(key.to_string(), Arc::downgrade(&lock));
        Self {
            key: key.to_string(),
            lock,
        }
    }

    /// Wait for the endpoint to be free and hold it until the guard drops.
    pub async fn acquire(&self) -> OwnedMutexGuard<()> {
        self.lock.clone().lock_owned().await
    }

    /// The endpoint key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether two handles share one lock.
    pub fn same_as(&self, other: &EndpointLock) -> bool {
        Arc::ptr_eq(&self.lock, &other.lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_lock_different_key_different_lock() {
        let a = EndpointLock::for_endpoint("redfish+http://h/redfish/v1/Systems/a");
        let a2 = EndpointLock::for_endpoint("redfish+http://h/redfish/v1/Systems/a");
        let b = EndpointLock::for_endpoint("redfish+http://h/redfish/v1/Systems/b");
        assert!(a.same_as(&a2));
        assert!(!a.same_as(&b));
    }

    #[tokio::test]
    async fn second_holder_waits() {
        let a = EndpointLock::for_endpoint("ipmi://serialize-test:623");
        let a2 = EndpointLock::for_endpoint("ipmi://serialize-test:623");
        let g = a.acquire().await;
        assert!(a2.lock.try_lock().is_err());
        drop(g);
        assert!(a2.lock.try_lock().is_ok());
    }
}
