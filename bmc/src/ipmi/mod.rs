//! IPMI-over-LAN driver through `ipmitool -I lanplus`, as Ironic does.
//!
//! - The password reaches `ipmitool` only through the `IPMI_PASSWORD`
//!   environment variable (`-E`), never through its argument list.
//! - The configured cipher suite (default 17) is tried first; when the session
//!   fails in a way that looks like a cipher or authentication negotiation
//!   problem the driver retries with suite 3 and, if that works, remembers
//!   suite 3 for the endpoint (process-wide).
//! - Every run is bounded by the request timeout; the child is killed when it
//!   expires. "No answer" failures are retried with backoff.
//! - Virtual media and UEFI HTTP boot do not exist in IPMI: `NotSupported`.

mod parse;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{LazyLock, Mutex};

use async_trait::async_trait;
use tokio::process::Command;

use parse::Failure;
pub use parse::{BootFlags, boot_flags};

use crate::serialize::EndpointLock;
use crate::{
    Bmc, BmcAddress, BmcError, BootDevice, BootMode, BootPersistence, Credentials, DriverConfig,
    PowerAction, PowerState, SystemIdentity,
};

/// The environment variable `ipmitool -E` reads the password from.
pub const PASSWORD_ENV: &str = "IPMI_PASSWORD";
/// The cipher suite used when the configured one is refused.
pub const FALLBACK_CIPHER_SUITE: u8 = 3;

/// Cipher suites learnt per endpoint key.
static LEARNT_CIPHER: LazyLock<Mutex<HashMap<String, u8>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// An IPMI BMC driven through `ipmitool`.
#[derive(Debug)]
pub struct IpmiBmc {
    address: BmcAddress,
    host: String,
    port: u16,
    creds: Credentials,
    config: DriverConfig,
    lock: EndpointLock,
}

impl IpmiBmc {
    /// A driver for an `ipmi://` address. Nothing runs until the first call.
    pub fn new(
        address: BmcAddress,
        creds: Credentials,
        config: DriverConfig,
    ) -> Result<Self, BmcError> {
        let BmcAddress::Ipmi { host, port } = &address else {
            return Err(BmcError::Protocol(format!(
                "{address} is not an IPMI address"
            )));
        };
        let (host, port) = (host.clone(), *port);
        let lock = EndpointLock::for_endpoint(&address.endpoint_key());
        Ok(Self {
            address,
            host,
            port,
            creds,
            config,
            lock,
        })
    }

    /// The cipher suite the next run will use for this endpoint.
    pub fn cipher_suite(&self) -> u8 {
        LEARNT_CIPHER
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&self.address.endpoint_key())
            .copied()
            .unwrap_or(self.config.ipmi_cipher_suite)
    }

    fn learn_cipher(&self, suite: u8) {
        LEARNT_CIPHER
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(self.address.endpoint_key(), suite);
    }

    /// The `ipmitool` command for `args` with the given cipher suite. The
    /// password is only in the child's environment.
    pub fn command(&self, cipher_suite: u8, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.config.ipmitool_path);
        cmd.arg("-I")
            .arg("lanplus")
            .arg("-H")
            .arg(&self.host)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg(&self.creds.username)
            .arg("-E")
            .arg("-C")
            .arg(cipher_suite.to_string())
            // ipmitool's own per-packet timeout and retries; the whole run is
            // additionally bounded by `request_timeout`.
            .arg("-N")
            .arg("1")
            .arg("-R")
            .arg("2")
            // -v makes the failure reasons (RAKP, HMAC, ...) visible on stderr.
            .arg("-v")
            .args(args)
            .env(PASSWORD_ENV, &self.creds.password)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// One `ipmitool` run; `Ok(stdout)` on exit status 0.
    async fn run_once(&self, cipher_suite: u8, args: &[&str]) -> Result<String, RunError> {
        let what = args.join(" ");
        let child = self.command(cipher_suite, args).spawn().map_err(|e| {
            RunError::Fatal(BmcError::Protocol(format!(
                "cannot run {}: {e}",
                self.config.ipmitool_path.display()
            )))
        })?;
        // Dropping the future on timeout drops the child, which kills it.
        let output =
            match tokio::time::timeout(self.config.request_timeout, child.wait_with_output()).await
            {
                Ok(Ok(o)) => o,
                Ok(Err(e)) => {
                    return Err(RunError::Fatal(BmcError::Protocol(format!(
                        "ipmitool {what}: {e}"
                    ))));
                }
                Err(_) => {
                    return Err(RunError::Fatal(BmcError::Timeout(format!(
                        "ipmitool {what} against {}: no result within {:?}",
                        self.address, self.config.request_timeout
                    ))));
                }
            };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok(stdout);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let failure = parse::classify(&stderr);
        tracing::debug!(bmc = %self.address, command = %what, cipher_suite, ?failure, "ipmitool failed");
        Err(RunError::Failed(failure))
    }

    /// Run `ipmitool` with cipher fallback and retries of "no answer" failures.
    async fn run(&self, args: &[&str]) -> Result<String, BmcError> {
        let what = args.join(" ");
        let mut attempt = 0u32;
        loop {
            let suite = self.cipher_suite();
            let mut result = self.run_once(suite, args).await;
            if suite != FALLBACK_CIPHER_SUITE
                && matches!(
                    result,
                    Err(RunError::Failed(
                        Failure::CipherNegotiation(_) | Failure::Authentication(_)
                    ))
                )
            {
                tracing::info!(bmc = %self.address, from = suite, to = FALLBACK_CIPHER_SUITE, "retrying IPMI with the fallback cipher suite");
                result = self.run_once(FALLBACK_CIPHER_SUITE, args).await;
                if result.is_ok() {
                    tracing::warn!(bmc = %self.address, cipher_suite = FALLBACK_CIPHER_SUITE, "BMC refused cipher suite {suite}; using {FALLBACK_CIPHER_SUITE} from now on");
                    self.learn_cipher(FALLBACK_CIPHER_SUITE);
                }
            }
            let failure = match result {
                Ok(out) => return Ok(out),
                Err(RunError::Fatal(e)) => return Err(e),
                Err(RunError::Failed(f)) => f,
            };
            match failure {
                Failure::Unreachable(m) if attempt < self.config.retries => {
                    attempt += 1;
                    let delay = self.config.backoff(attempt);
                    tracing::warn!(bmc = %self.address, command = %what, attempt, ?delay, reason = %m, "retrying ipmitool");
                    tokio::time::sleep(delay).await;
                }
                f => return Err(to_error(&self.address, &what, f)),
            }
        }
    }

    async fn power_status(&self) -> Result<PowerState, BmcError> {
        let out = self.run(&["power", "status"]).await?;
        parse::power_status(&out).ok_or_else(|| {
            BmcError::Protocol(format!(
                "unexpected `power status` output: {:?}",
                out.trim()
            ))
        })
    }

    /// Run an optional read: `None` when the BMC does not have it.
    async fn optional(&self, args: &[&str]) -> Result<Option<String>, BmcError> {
        match self.run(args).await {
            Ok(out) => Ok(Some(out)),
            Err(BmcError::NotSupported(_) | BmcError::Protocol(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

enum RunError {
    Failed(Failure),
    Fatal(BmcError),
}

fn to_error(address: &BmcAddress, what: &str, failure: Failure) -> BmcError {
    match failure {
        Failure::CipherNegotiation(m) => BmcError::Protocol(format!(
            "ipmitool {what} against {address}: cipher suite negotiation failed: {m}"
        )),
        Failure::Authentication(m) => {
            BmcError::AuthenticationFailed(format!("ipmitool {what} against {address}: {m}"))
        }
        Failure::Unreachable(m) => {
            BmcError::Unreachable(format!("ipmitool {what} against {address}: {m}"))
        }
        Failure::NotSupported(m) => {
            BmcError::NotSupported(format!("ipmitool {what} against {address}: {m}"))
        }
        Failure::Other(m) => BmcError::Protocol(format!("ipmitool {what} against {address}: {m}")),
    }
}

#[async_trait]
impl Bmc for IpmiBmc {
    fn address(&self) -> &BmcAddress {
        &self.address
    }

    async fn identity(&self) -> Result<SystemIdentity, BmcError> {
        let _guard = self.lock.acquire().await;
        let info = parse::mc_info(&self.run(&["mc", "info"]).await?);
        let uuid = self
            .optional(&["mc", "guid"])
            .await?
            .as_deref()
            .and_then(parse::guid);
        let fru = self
            .optional(&["fru", "print", "0"])
            .await?
            .as_deref()
            .map(parse::fru)
            .unwrap_or_default();
        Ok(SystemIdentity {
            manufacturer: fru.manufacturer.or(info.manufacturer_name),
            model: fru.model.or(info.product_name),
            serial_number: fru.serial_number,
            uuid,
            bios_version: None,
            bmc_firmware_version: info.firmware_revision,
            mac_addresses: Vec::new(),
        })
    }

    async fn power_state(&self) -> Result<PowerState, BmcError> {
        let _guard = self.lock.acquire().await;
        self.power_status().await
    }

    async fn power(&self, action: PowerAction) -> Result<(), BmcError> {
        let _guard = self.lock.acquire().await;
        let current = self.power_status().await?;
        let word = match (action, current) {
            (PowerAction::On, PowerState::On)
            | (PowerAction::Off | PowerAction::GracefulOff, PowerState::Off) => return Ok(()),
            // A restart of a machine that is off: power it on (BMCs refuse
            // `power cycle` in that state).
            (PowerAction::On | PowerAction::Reset | PowerAction::Cycle, PowerState::Off) => "on",
            (PowerAction::On, _) => "on",
            (PowerAction::Off, _) => "off",
            (PowerAction::GracefulOff, _) => "soft",
            (PowerAction::Reset, _) => "reset",
            (PowerAction::Cycle, _) => "cycle",
        };
        tracing::info!(bmc = %self.address, ?action, command = word, "IPMI power");
        self.run(&["power", word]).await.map(|_| ())
    }

    async fn set_boot(
        &self,
        device: BootDevice,
        persistence: BootPersistence,
        mode: BootMode,
    ) -> Result<(), BmcError> {
        let Some(dev) = parse::bootdev_word(device) else {
            return Err(BmcError::NotSupported(format!(
                "IPMI cannot boot from {device:?}"
            )));
        };
        if mode == BootMode::UefiSecureBoot {
            return Err(BmcError::NotSupported(
                "IPMI cannot select UEFI Secure Boot".to_string(),
            ));
        }
        let mut options: Vec<&str> = Vec::new();
        if persistence == BootPersistence::Persistent {
            options.push("persistent");
        }
        if mode == BootMode::Uefi {
            options.push("efiboot");
        }
        let opt = format!("options={}", options.join(","));
        let mut args = vec!["chassis", "bootdev", dev];
        if !options.is_empty() {
            args.push(&opt);
        }
        let _guard = self.lock.acquire().await;
        tracing::info!(bmc = %self.address, ?device, ?persistence, ?mode, "IPMI boot device");
        self.run(&args).await.map(|_| ())
    }

    async fn insert_virtual_media(&self, _url: &str) -> Result<(), BmcError> {
        Err(BmcError::NotSupported(
            "virtual media is not available over IPMI".to_string(),
        ))
    }

    async fn eject_virtual_media(&self) -> Result<(), BmcError> {
        Err(BmcError::NotSupported(
            "virtual media is not available over IPMI".to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_is_in_env_not_argv() {
        let addr = BmcAddress::parse("ipmi://127.0.0.1:6230").unwrap();
        let bmc = IpmiBmc::new(
            addr,
            Credentials::new("admin", "s3cr3t-pw"),
            DriverConfig::default(),
        )
        .unwrap();
        let cmd = bmc.command(17, &["power", "status"]);
        let std = cmd.as_std();
        let args: Vec<String> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.iter().all(|a| !a.contains("s3cr3t-pw")), "{args:?}");
        assert!(!args.iter().any(|a| a == "-P"), "{args:?}");
        assert!(args.windows(2).any(|w| w == ["-C", "17"]), "{args:?}");
        assert!(args.contains(&"-E".to_string()));
        assert_eq!(&args[args.len() - 2..], &["power", "status"]);
        let env: Vec<_> = std.get_envs().collect();
        assert!(
            env.iter()
                .any(|(k, v)| *k == PASSWORD_ENV && v.map(|v| v == "s3cr3t-pw").unwrap_or(false))
        );
        let shown = format!("{bmc:?}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
    }

    #[tokio::test]
    async fn unsupported_requests_fail_fast() {
        let addr = BmcAddress::parse("ipmi://127.0.0.1:6230").unwrap();
        let bmc = IpmiBmc::new(addr, Credentials::new("a", "b"), DriverConfig::default()).unwrap();
        assert!(matches!(
            bmc.insert_virtual_media("http://x/y.iso").await,
            Err(BmcError::NotSupported(_))
        ));
        assert!(matches!(
            bmc.eject_virtual_media().await,
            Err(BmcError::NotSupported(_))
        ));
        assert!(matches!(
            bmc.set_boot(BootDevice::UefiHttp, BootPersistence::Once, BootMode::Uefi)
                .await,
            Err(BmcError::NotSupported(_))
        ));
        assert!(matches!(
            bmc.set_boot(
                BootDevice::Pxe,
                BootPersistence::Once,
                BootMode::UefiSecureBoot
            )
            .await,
            Err(BmcError::NotSupported(_))
        ));
    }
}
