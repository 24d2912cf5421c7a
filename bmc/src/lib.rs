//! BMC drivers for Groundwork: Redfish (HTTPS/HTTP) and IPMI (through
//! `ipmitool`) behind one async trait, [`Bmc`].
//!
//! This crate is an adapter library: it knows nothing about Kubernetes or the
//! controller. The controller parses a Server's BMC address with
//! [`BmcAddress::parse`], builds a driver with [`connect`] and calls the trait;
//! errors carry a stable [`BmcError::reason`] for conditions and metrics.
//!
//! ```no_run
//! # async fn demo() -> Result<(), bmc::BmcError> {
//! use bmc::{BmcAddress, Credentials, DriverConfig, PowerAction, TlsOptions};
//! let address = BmcAddress::parse("redfish+https://10.0.0.5/redfish/v1/Systems/1")?;
//! let bmc = bmc::connect(
//!     address,
//!     Credentials::new("admin", "secret"),
//!     TlsOptions::default(),
//!     DriverConfig::default(),
//! )?;
//! bmc.power(PowerAction::On).await?;
//! # Ok(()) }
//! ```
//!
//! Calls to one endpoint are serialized process-wide (see [`serialize`]);
//! calls to different endpoints run in parallel.

#![warn(missing_docs)]

mod address;
mod error;
mod ids;
pub mod ipmi;
pub mod redfish;
pub mod serialize;
mod types;

use std::sync::Arc;

use async_trait::async_trait;

pub use address::{BmcAddress, HttpScheme, IPMI_DEFAULT_PORT};
pub use error::BmcError;
pub use ipmi::IpmiBmc;
pub use redfish::RedfishBmc;
pub use types::{
    BootDevice, BootMode, BootPersistence, Credentials, DriverConfig, PowerAction, PowerState,
    SystemIdentity, TlsOptions,
};

/// One baseboard management controller, whatever its protocol.
///
/// Every method is one serialized conversation with the BMC (see
/// [`serialize`]). Power and boot requests are idempotent where the protocol
/// allows: asking for the current power state is a no-op, and a restart of a
/// machine that is off powers it on.
#[async_trait]
pub trait Bmc: Send + Sync + std::fmt::Debug {
    /// The address this driver talks to.
    fn address(&self) -> &BmcAddress;

    /// Read what the BMC says about the machine.
    async fn identity(&self) -> Result<SystemIdentity, BmcError>;

    /// Read what the BMC says about the machine and its power state together, in as few
    /// requests as the protocol allows (Redfish: one read of the system).
    async fn inspect(&self) -> Result<(SystemIdentity, PowerState), BmcError> {
        Ok((self.identity().await?, self.power_state().await?))
    }

    /// Read the current power state.
    async fn power_state(&self) -> Result<PowerState, BmcError>;

    /// Request a power change. Returns once the BMC accepted the request; the
    /// state may change later (poll [`Bmc::power_state`]).
    async fn power(&self, action: PowerAction) -> Result<(), BmcError>;

    /// Set the boot override: device, next boot only or persistent, firmware
    /// mode. Never changes UEFI Secure Boot (`UefiSecureBoot` selects the UEFI
    /// override mode; Secure Boot itself is [`Bmc::set_secure_boot`]). Fails
    /// with [`BmcError::NotSupported`] when the machine has no such override.
    async fn set_boot(
        &self,
        device: BootDevice,
        persistence: BootPersistence,
        mode: BootMode,
    ) -> Result<(), BmcError>;

    /// Turn UEFI Secure Boot on or off: an explicit request of its own, never
    /// a side effect of a boot override. Returns whether it changed (it takes
    /// effect at the next boot). [`BmcError::NotSupported`] when the BMC offers
    /// no Secure Boot control (IPMI, Redfish systems without a `SecureBoot`
    /// resource).
    async fn set_secure_boot(&self, enabled: bool) -> Result<bool, BmcError> {
        let _ = enabled;
        Err(BmcError::NotSupported(
            "this BMC offers no UEFI Secure Boot control".to_string(),
        ))
    }

    /// Insert a CD/DVD image (by URL) as virtual media. Redfish only.
    async fn insert_virtual_media(&self, url: &str) -> Result<(), BmcError>;

    /// Eject the virtual CD/DVD, if any. Redfish only.
    async fn eject_virtual_media(&self) -> Result<(), BmcError>;

    /// Close any open session with the BMC (Redfish sessions). Later calls
    /// open a new one when needed. A no-op for protocols without sessions.
    async fn logout(&self) -> Result<(), BmcError> {
        Ok(())
    }
}

/// Build the driver for `address`. No network I/O happens here; the first
/// call discovers the service. Fails only on local configuration problems
/// (e.g. an unreadable CA bundle).
pub fn connect(
    address: BmcAddress,
    credentials: Credentials,
    tls: TlsOptions,
    config: DriverConfig,
) -> Result<Arc<dyn Bmc>, BmcError> {
    match &address {
        BmcAddress::Redfish { .. } => Ok(Arc::new(RedfishBmc::new(
            address,
            credentials,
            &tls,
            config,
        )?)),
        BmcAddress::Ipmi { .. } => Ok(Arc::new(IpmiBmc::new(address, credentials, config)?)),
    }
}
