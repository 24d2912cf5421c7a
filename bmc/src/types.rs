//! Plain data exchanged with the drivers: identities, power and boot settings,
//! credentials and configuration.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What the BMC reports about the machine it manages. Every field is optional
/// because BMCs differ widely in what they expose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemIdentity {
    /// System manufacturer (Redfish `Manufacturer`, IPMI FRU board/product manufacturer
    /// or the IANA enterprise name from `mc info`).
    pub manufacturer: Option<String>,
    /// System model (Redfish `Model`, IPMI FRU product name).
    pub model: Option<String>,
    /// Serial number (Redfish `SerialNumber`, IPMI FRU product/chassis serial).
    pub serial_number: Option<String>,
    /// System UUID, lower case (Redfish `UUID`, IPMI `mc guid`).
    pub uuid: Option<String>,
    /// BIOS / firmware version of the host (Redfish `BiosVersion`).
    pub bios_version: Option<String>,
    /// Firmware version of the BMC itself (Redfish Manager `FirmwareVersion`,
    /// IPMI `mc info` firmware revision).
    pub bmc_firmware_version: Option<String>,
    /// MAC addresses of the host's NICs, lower case, as reported (may be empty).
    pub mac_addresses: Vec<String>,
}

/// Power state as reported by the BMC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerState {
    /// Powered on (Redfish `On` and `PoweringOn`).
    On,
    /// Powered off (Redfish `Off` and `PoweringOff`).
    Off,
    /// The BMC reported nothing usable.
    Unknown,
}

/// A power request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PowerAction {
    /// Power on.
    On,
    /// Hard power off, without asking the OS.
    Off,
    /// Ask the OS to shut down (ACPI). Never silently escalated to a hard
    /// off: when the BMC cannot do it the call fails with
    /// [`BmcError::NotSupported`](crate::BmcError::NotSupported), and a caller
    /// that wants the fallback issues [`PowerAction::Off`] itself.
    GracefulOff,
    /// Force a restart (hard reset) of a powered-on machine.
    Reset,
    /// Power cycle: off, then on. Redfish `PowerCycle` when offered, else
    /// `ForceRestart`; IPMI `power cycle`.
    Cycle,
}

/// Boot device for the override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BootDevice {
    /// Network boot (PXE).
    Pxe,
    /// UEFI HTTP boot (Redfish only).
    UefiHttp,
    /// Local disk.
    Disk,
    /// Virtual CD/DVD (virtual media).
    VirtualCd,
}

/// Whether the boot override applies to the next boot only or to all boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BootPersistence {
    /// Next boot only (Redfish `Once`).
    Once,
    /// Every following boot (Redfish `Continuous`, IPMI `options=persistent`).
    Persistent,
}

/// Firmware boot mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BootMode {
    /// UEFI without Secure Boot.
    Uefi,
    /// UEFI with Secure Boot enabled (Redfish only, needs a `SecureBoot` resource).
    UefiSecureBoot,
    /// Legacy BIOS.
    Legacy,
}

/// Credentials for a BMC. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password. Never logged, never put into a process argument list.
    pub password: String,
}

impl Credentials {
    /// Convenience constructor.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// TLS verification options for Redfish over HTTPS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsOptions {
    /// PEM bundle of CA certificates to trust instead of the system roots.
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// Accept any certificate (no verification at all). An explicit opt-out
    /// for labs and BMCs with factory self-signed certificates.
    pub insecure: bool,
}

/// Timeouts, retries and protocol knobs for the drivers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DriverConfig {
    /// Time limit for one HTTP request (connect + response), or one `ipmitool` run.
    pub request_timeout: Duration,
    /// Time limit for establishing a TCP/TLS connection (Redfish).
    pub connect_timeout: Duration,
    /// Extra attempts after a connection error or a 5xx answer (0 = no retry).
    /// Timeouts and 4xx answers are never retried.
    pub retries: u32,
    /// Delay before the first retry; doubled for each following one.
    pub backoff_initial: Duration,
    /// Upper bound of the retry delay.
    pub backoff_max: Duration,
    /// IPMI RMCP+ cipher suite tried first (`ipmitool -C`). When it fails in a way
    /// that looks like a cipher/authentication negotiation problem, the driver
    /// falls back to suite 3 and remembers that for the endpoint.
    pub ipmi_cipher_suite: u8,
    /// The `ipmitool` binary to run.
    pub ipmitool_path: PathBuf,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retries: 3,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            ipmi_cipher_suite: 17,
            ipmitool_path: PathBuf::from("ipmitool"),
        }
    }
}

impl DriverConfig {
    /// The delay before retry number `attempt` (1-based): exponential, capped.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff_initial
            .checked_mul(factor)
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_redacts_password() {
        let c = Credentials::new("admin", "hunter2-secret");
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("admin"));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let cfg = DriverConfig {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
            ..DriverConfig::default()
        };
        assert_eq!(cfg.backoff(1), Duration::from_millis(100));
        assert_eq!(cfg.backoff(2), Duration::from_millis(200));
        assert_eq!(cfg.backoff(3), Duration::from_millis(400));
        assert_eq!(cfg.backoff(4), Duration::from_millis(500));
        assert_eq!(cfg.backoff(60), Duration::from_millis(500));
    }
}
