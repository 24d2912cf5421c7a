//! BMC connections shared by reconciles: one driver per (address, credentials version), a
//! global limit on BMC conversations in flight (the drivers serialize per endpoint).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bmc::{Bmc, BmcAddress, BmcError, Credentials, DriverConfig, TlsOptions};
use tokio::sync::{Semaphore, SemaphorePermit};

/// What identifies a driver: a new Secret version makes a new driver (re-registration).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct DriverKey {
    /// The BMC URL from the spec.
    pub address: String,
    /// resourceVersion of the credentials Secret.
    pub credentials_version: String,
    /// resourceVersion of the CA bundle Secret, if any.
    pub ca_version: Option<String>,
    /// TLS verification disabled.
    pub insecure: bool,
}

/// Longest a whole BMC conversation (observe or act) may take in one reconcile; the reconciler's
/// own backoff handles what is left, so shutdown never waits on a dead BMC for long.
pub const CONVERSATION_DEADLINE: std::time::Duration = std::time::Duration::from_secs(15);

/// Driver settings for the controller: short per-request timeouts and few retries, because the
/// reconciler retries with its own exponential backoff.
pub fn driver_config() -> DriverConfig {
    DriverConfig {
        request_timeout: std::time::Duration::from_secs(10),
        connect_timeout: std::time::Duration::from_secs(5),
        retries: 1,
        ..DriverConfig::default()
    }
}

/// Shared BMC drivers.
pub struct BmcPool {
    drivers: Mutex<HashMap<DriverKey, Arc<dyn Bmc>>>,
    limit: Semaphore,
    config: DriverConfig,
}

impl BmcPool {
    /// A pool allowing `concurrency` BMC conversations at once.
    pub fn new(concurrency: usize, config: DriverConfig) -> Self {
        Self {
            drivers: Mutex::default(),
            limit: Semaphore::new(concurrency.max(1)),
            config,
        }
    }

    /// The driver for `key` if one exists (no Secret read needed).
    pub fn cached(&self, key: &DriverKey) -> Option<Arc<dyn Bmc>> {
        self.drivers.lock().ok()?.get(key).cloned()
    }

    /// Creates the driver for `key`, dropping drivers of older credentials for the address.
    pub fn create(
        &self,
        key: DriverKey,
        credentials: Credentials,
        ca_pem: Option<Vec<u8>>,
    ) -> Result<Arc<dyn Bmc>, BmcError> {
        let address = BmcAddress::parse(&key.address)?;
        let tls = TlsOptions {
            ca_bundle_pem: ca_pem,
            insecure: key.insecure,
        };
        let driver = bmc::connect(address, credentials, tls, self.config.clone())?;
        if let Ok(mut drivers) = self.drivers.lock() {
            drivers.retain(|k, _| k.address != key.address);
            drivers.insert(key, driver.clone());
        }
        Ok(driver)
    }

    /// Waits for a slot under the global limit.
    pub async fn permit(&self) -> Option<SemaphorePermit<'_>> {
        self.limit.acquire().await.ok()
    }
}
