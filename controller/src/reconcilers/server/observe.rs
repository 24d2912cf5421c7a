//! Observe stage: what the BMC says (power, identity), through the shared pool.

use std::sync::Arc;

use bmc::{Bmc, BmcError, Credentials, PowerState, SystemIdentity};
use crds::Server;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use crate::reconcilers::bmc_pool::{CONVERSATION_DEADLINE, DriverKey};
use crate::reconcilers::context::Context;

/// What the BMC reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// Power state.
    pub power: PowerState,
    /// Identity, read when the driver is new (registration, or new credentials).
    pub identity: Option<SystemIdentity>,
}

/// Why the BMC could not be observed.
#[derive(Debug, thiserror::Error)]
pub enum ObserveError {
    /// The credentials Secret lacks `username` or `password`.
    #[error("credentials Secret {0:?} must hold the keys username and password")]
    CredentialsIncomplete(String),
    /// Reading a Secret failed.
    #[error("reading Secret {0:?} failed: {1}")]
    SecretRead(String, kube::Error),
    /// The BMC failed.
    #[error("{0}")]
    Bmc(#[from] BmcError),
}

impl ObserveError {
    /// Condition reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::CredentialsIncomplete(_) => crds::reasons::SECRET_KEY_MISSING,
            Self::SecretRead(..) => "SecretReadFailed",
            Self::Bmc(e) => e.reason(),
        }
    }
}

fn key_of(ctx: &Context, server: &Server) -> Option<DriverKey> {
    let bmc = server.spec.bmc.as_ref()?;
    let ns = server.namespace().unwrap_or_default();
    let version = |name: &str| {
        ctx.secrets
            .get(&ObjectRef::new(name).within(&ns))
            .and_then(|s| s.metadata.resource_version.clone())
            .unwrap_or_default()
    };
    Some(DriverKey {
        address: bmc.address.clone(),
        credentials_version: version(&bmc.credentials_secret_ref.name),
        ca_version: bmc.ca_bundle_secret_ref.as_ref().map(|r| version(&r.name)),
        insecure: bmc.disable_certificate_verification.unwrap_or(false),
    })
}

async fn secret_value(
    api: &Api<Secret>,
    name: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, ObserveError> {
    let secret = api
        .get(name)
        .await
        .map_err(|e| ObserveError::SecretRead(name.to_string(), e))?;
    Ok(secret.data.and_then(|mut d| d.remove(key)).map(|b| b.0))
}

/// Reads power (and identity for a new driver). `None` when the spec has no BMC.
pub async fn observe(ctx: &Context, server: &Server) -> Option<Result<Observed, ObserveError>> {
    let key = key_of(ctx, server)?;
    let bmc_spec = server.spec.bmc.as_ref()?;
    Some(
        async {
            let (driver, fresh) = match ctx.bmcs.cached(&key) {
                Some(d) => (d, false),
                None => {
                    let api: Api<Secret> = Api::namespaced(
                        ctx.client.clone(),
                        &server.namespace().unwrap_or_default(),
                    );
                    let name = &bmc_spec.credentials_secret_ref.name;
                    let username = secret_value(&api, name, "username").await?;
                    let password = secret_value(&api, name, "password").await?;
                    let (Some(username), Some(password)) = (username, password) else {
                        return Err(ObserveError::CredentialsIncomplete(name.clone()));
                    };
                    let ca = match &bmc_spec.ca_bundle_secret_ref {
                        Some(r) => {
                            secret_value(&api, &r.name, r.key.as_deref().unwrap_or("ca.crt"))
                                .await?
                        }
                        None => None,
                    };
                    let credentials = Credentials::new(
                        String::from_utf8_lossy(&username).into_owned(),
                        String::from_utf8_lossy(&password).into_owned(),
                    );
                    (ctx.bmcs.create(key, credentials, ca)?, true)
                }
            };
            let _permit = ctx.bmcs.permit().await;
            let needs_identity =
                fresh || server.status.as_ref().is_none_or(|s| s.identity.is_none());
            if needs_identity {
                let (identity, power) = driver.inspect().await?;
                Ok(Observed {
                    power,
                    identity: Some(identity),
                })
            } else {
                let power = driver.power_state().await?;
                Ok(Observed {
                    power,
                    identity: None,
                })
            }
        }
        .await,
    )
}

fn deadline_passed() -> BmcError {
    BmcError::Timeout(format!(
        "no answer within {}s",
        CONVERSATION_DEADLINE.as_secs()
    ))
}

/// The driver an observation made for the server; `None` when the spec has no BMC.
fn driver(ctx: &Context, server: &Server) -> Result<Option<Arc<dyn Bmc>>, ObserveError> {
    let Some(key) = key_of(ctx, server) else {
        return Ok(None);
    };
    match ctx.bmcs.cached(&key) {
        Some(driver) => Ok(Some(driver)),
        None => Err(ObserveError::Bmc(BmcError::Protocol(
            "no BMC session; will retry".into(),
        ))),
    }
}

/// Reads the power state again (after an action), through the driver an observation made.
pub async fn power_state(ctx: &Context, server: &Server) -> Result<PowerState, ObserveError> {
    let Some(driver) = driver(ctx, server)? else {
        return Ok(PowerState::Unknown);
    };
    let _permit = ctx.bmcs.permit().await;
    Ok(
        tokio::time::timeout(CONVERSATION_DEADLINE, driver.power_state())
            .await
            .map_err(|_| deadline_passed())??,
    )
}

/// Performs a power action on the server's BMC.
pub async fn power(
    ctx: &Context,
    server: &Server,
    action: bmc::PowerAction,
) -> Result<(), ObserveError> {
    let Some(driver) = driver(ctx, server)? else {
        return Ok(());
    };
    let _permit = ctx.bmcs.permit().await;
    tokio::time::timeout(CONVERSATION_DEADLINE, driver.power(action))
        .await
        .map_err(|_| deadline_passed())??;
    Ok(())
}

/// Sets a one-time network boot in the spec's boot mode, then powers on (or cycles).
pub async fn netboot(
    ctx: &Context,
    server: &Server,
    power: crds::server::PowerState,
) -> Result<(), ObserveError> {
    boot_once(ctx, server, power, bmc::BootDevice::Pxe).await
}

/// Boots the installed disk once: power off when on, a one-time disk override, power on
/// (robust under UEFI, whose firmware may ignore an override given to a running machine).
pub async fn disk_boot(
    ctx: &Context,
    server: &Server,
    power: crds::server::PowerState,
) -> Result<(), ObserveError> {
    boot_once(ctx, server, power, bmc::BootDevice::Disk).await
}

async fn boot_once(
    ctx: &Context,
    server: &Server,
    power: crds::server::PowerState,
    device: bmc::BootDevice,
) -> Result<(), ObserveError> {
    let Some(driver) = driver(ctx, server)? else {
        return Ok(());
    };
    let mode = match server.spec.boot_mode {
        crds::server::BootMode::Uefi => bmc::BootMode::Uefi,
        crds::server::BootMode::UefiSecureBoot => bmc::BootMode::UefiSecureBoot,
        crds::server::BootMode::Legacy => bmc::BootMode::Legacy,
    };
    // Secure Boot changes only as the spec's own intent: on for UEFISecureBoot, off for Legacy
    // (which cannot boot with it); UEFI leaves it as the firmware has it.
    let secure_boot = match server.spec.boot_mode {
        crds::server::BootMode::UefiSecureBoot => Some(true),
        crds::server::BootMode::Legacy => Some(false),
        crds::server::BootMode::Uefi => None,
    };
    let on = power == crds::server::PowerState::On;
    let _permit = ctx.bmcs.permit().await;
    let secure_boot_changed = tokio::time::timeout(CONVERSATION_DEADLINE, async {
        match device {
            bmc::BootDevice::Disk if on => driver.power(bmc::PowerAction::Off).await?,
            _ => {}
        }
        let changed = match secure_boot {
            Some(enable) => match driver.set_secure_boot(enable).await {
                Ok(changed) => changed,
                // Nothing to turn off on a BMC without Secure Boot control.
                Err(BmcError::NotSupported(_)) if !enable => false,
                Err(e) => return Err(e),
            },
            None => false,
        };
        driver
            .set_boot(device, bmc::BootPersistence::Once, mode)
            .await?;
        let action = if on && device != bmc::BootDevice::Disk {
            bmc::PowerAction::Cycle
        } else {
            bmc::PowerAction::On
        };
        driver.power(action).await?;
        Ok(changed)
    })
    .await
    .map_err(|_| deadline_passed())??;
    if let (true, Some(enabled)) = (secure_boot_changed, secure_boot) {
        let (reason, state) = if enabled {
            ("SecureBootEnabled", "on")
        } else {
            ("SecureBootDisabled", "off")
        };
        kube_kit::events::publish(
            &ctx.recorder,
            server,
            kube::runtime::events::EventType::Normal,
            reason,
            "Boot",
            format!(
                "UEFI Secure Boot turned {state} through the BMC, as spec.bootMode {:?} asks",
                server.spec.boot_mode
            ),
        )
        .await;
    }
    Ok(())
}
