//! Redfish driver (DSP0266) over HTTPS or HTTP.
//!
//! - Discovery starts at the public service root `/redfish/v1/`. When the root
//!   advertises sessions (`Links.Sessions` or a `SessionService`), the driver
//!   logs in once (`POST` credentials, then `X-Auth-Token`), logs in again once
//!   if the token is rejected, and closes the session in [`Bmc::logout`].
//!   Otherwise (sushy-tools) every request carries HTTP basic auth.
//! - Redirects are followed (sushy-tools answers systems-by-name with a 307 to
//!   the UUID URL) and credentials are re-sent on each hop, but only to the
//!   BMC's own origin. The system URL learnt through a redirect is remembered.
//! - Reset types, boot targets, override persistence and boot modes come from
//!   `@Redfish.AllowableValues` or the action's ActionInfo when present (see
//!   [`select`]).
//! - Each trait call holds the endpoint's lock (see [`crate::serialize`]).

mod model;
mod select;
mod tls;
mod transport;

use std::sync::Mutex;

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use crate::serialize::EndpointLock;
use crate::{
    Bmc, BmcAddress, BmcError, BootDevice, BootMode, BootPersistence, Credentials, DriverConfig,
    PowerAction, PowerState, SystemIdentity, TlsOptions,
};
use transport::{Reply, Transport, status_error};

/// A Redfish BMC.
#[derive(Debug)]
pub struct RedfishBmc {
    address: BmcAddress,
    transport: Transport,
    lock: EndpointLock,
    /// The system resource URL, once known (after discovery and redirects).
    system: Mutex<Option<Url>>,
}

impl RedfishBmc {
    /// A driver for a `redfish…://` address. No network I/O happens here;
    /// discovery runs on the first call.
    pub fn new(
        address: BmcAddress,
        credentials: Credentials,
        tls: &TlsOptions,
        config: DriverConfig,
    ) -> Result<Self, BmcError> {
        let base = address
            .base_url()
            .ok_or_else(|| BmcError::Protocol(format!("{address} is not a Redfish address")))?;
        let transport = Transport::new(&base, credentials, tls, config)?;
        let lock = EndpointLock::for_endpoint(&address.endpoint_key());
        Ok(Self {
            address,
            transport,
            lock,
            system: Mutex::new(None),
        })
    }

    fn cached_system(&self) -> Option<Url> {
        self.system
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn remember_system(&self, url: Url) {
        *self.system.lock().unwrap_or_else(|p| p.into_inner()) = Some(url);
    }

    /// Read the service root, choose the authentication and find the system.
    async fn discover(&self) -> Result<Url, BmcError> {
        if let Some(url) = self.cached_system() {
            return Ok(url);
        }
        let root_url = self.transport.url("/redfish/v1/")?;
        let mut reply = self.transport.get_anonymous(&root_url).await?;
        if matches!(reply.status.as_u16(), 401 | 403) {
            // Not DSP0266-conformant, but seen in the field: a root behind auth.
            reply = self.transport.get(&root_url).await?;
        }
        let root = success_json("read service root", &reply)?;
        match model::sessions_link(&root) {
            Some(link) => {
                let sessions = self.transport.url(&link)?;
                tracing::debug!(bmc = %self.address, "Redfish sessions advertised, using session auth");
                self.transport.use_sessions(sessions).await;
            }
            None => {
                tracing::debug!(bmc = %self.address, "no Redfish SessionService, using basic auth");
                self.transport.use_basic().await;
            }
        }
        let system = match &self.address {
            BmcAddress::Redfish {
                system_path: Some(p),
                ..
            } => self.transport.url(p)?,
            _ => {
                let link =
                    model::link(&root, "Systems").unwrap_or_else(|| "/redfish/v1/Systems".into());
                let reply = self.transport.get(&self.transport.url(&link)?).await?;
                let coll = success_json("list systems", &reply)?;
                match model::members(&coll).as_slice() {
                    [only] => self.transport.url(only)?,
                    other => {
                        return Err(BmcError::Protocol(format!(
                            "the address names no system and the service has {} systems; \
                             use redfish://host/redfish/v1/Systems/<id>",
                            other.len()
                        )));
                    }
                }
            }
        };
        self.remember_system(system.clone());
        Ok(system)
    }

    /// GET the ComputerSystem, remembering where redirects led.
    async fn get_system(&self) -> Result<(Url, Value), BmcError> {
        let url = self.discover().await?;
        let reply = self.transport.get(&url).await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Err(BmcError::Protocol(format!(
                "system {} not found on the BMC (HTTP 404)",
                url.path()
            )));
        }
        let system = success_json("read system", &reply)?;
        if reply.url != url {
            tracing::debug!(
                from = url.path(),
                to = reply.url.path(),
                "system URL redirected"
            );
            self.remember_system(reply.url.clone());
        }
        Ok((reply.url, system))
    }

    /// GET an optional linked resource: `None` on 404 and other 4xx (except
    /// authentication failures), errors for transport problems.
    async fn get_optional(&self, odata_id: &str) -> Result<Option<Value>, BmcError> {
        let url = self.transport.url(odata_id)?;
        let reply = self.transport.get(&url).await?;
        if reply.status.is_success() {
            return reply.json().map(Some);
        }
        let err = status_error("read", &reply);
        match err {
            BmcError::AuthenticationFailed(_) => Err(err),
            _ => {
                tracing::debug!(path = url.path(), error = %err, "optional Redfish resource unavailable");
                Ok(None)
            }
        }
    }

    async fn manager_firmware(&self, system: &Value) -> Result<Option<String>, BmcError> {
        let Some(manager) = model::managed_by(system) else {
            return Ok(None);
        };
        Ok(self
            .get_optional(&manager)
            .await?
            .and_then(|m| model::string(&m, "FirmwareVersion")))
    }

    async fn nic_macs(&self, system: &Value) -> Result<Vec<String>, BmcError> {
        let Some(link) = model::link(system, "EthernetInterfaces") else {
            return Ok(Vec::new());
        };
        let Some(coll) = self.get_optional(&link).await? else {
            return Ok(Vec::new());
        };
        let mut macs: Vec<String> = Vec::new();
        for member in model::members(&coll) {
            if let Some(mac) = self
                .get_optional(&member)
                .await?
                .as_ref()
                .and_then(model::mac)
                && !macs.contains(&mac)
            {
                macs.push(mac);
            }
        }
        Ok(macs)
    }

    /// The reset action's target and the allowed reset types (inline or via
    /// ActionInfo).
    async fn reset_action(
        &self,
        url: &Url,
        system: &Value,
    ) -> Result<(Url, Option<Vec<String>>), BmcError> {
        let a = model::action(system, "ComputerSystem.Reset", "ResetType");
        let target = match &a.target {
            Some(t) => self.transport.url(t)?,
            None => url
                .join(&format!(
                    "{}/Actions/ComputerSystem.Reset",
                    url.path().trim_end_matches('/')
                ))
                .map_err(|e| BmcError::Protocol(format!("reset target: {e}")))?,
        };
        let mut allowed = a.allowed;
        if allowed.is_none()
            && let Some(info) = &a.action_info
            && let Some(doc) = self.get_optional(info).await?
        {
            allowed = model::action_info_allowable(&doc, "ResetType");
        }
        Ok((target, allowed))
    }

    /// Find the CD/DVD virtual media resource of the system (on the system
    /// itself, else on its manager).
    async fn cd_media(&self, system: &Value) -> Result<(Url, Value), BmcError> {
        let mut collections = Vec::new();
        if let Some(l) = model::link(system, "VirtualMedia") {
            collections.push(l);
        }
        if let Some(m) = model::managed_by(system)
            && let Some(manager) = self.get_optional(&m).await?
            && let Some(l) = model::link(&manager, "VirtualMedia")
            && !collections.contains(&l)
        {
            collections.push(l);
        }
        for coll in collections {
            let Some(doc) = self.get_optional(&coll).await? else {
                continue;
            };
            for member in model::members(&doc) {
                if let Some(media) = self.get_optional(&member).await?
                    && model::is_cd(&media)
                {
                    return Ok((self.transport.url(&member)?, media));
                }
            }
        }
        Err(BmcError::NotSupported(
            "the BMC offers no CD/DVD virtual media".to_string(),
        ))
    }

    async fn eject_media(&self, url: &Url, media: &Value) -> Result<(), BmcError> {
        if media.get("Inserted").and_then(Value::as_bool) == Some(false) {
            return Ok(());
        }
        let a = model::action(media, "VirtualMedia.EjectMedia", "");
        let reply = match a.target {
            Some(t) => {
                self.transport
                    .post(&self.transport.url(&t)?, &json!({}))
                    .await?
            }
            None => {
                self.transport
                    .patch(url, &json!({"Image": null, "Inserted": false}))
                    .await?
            }
        };
        expect_success("eject virtual media", &reply)
    }
}

fn success_json(what: &str, reply: &Reply) -> Result<Value, BmcError> {
    if !reply.status.is_success() {
        return Err(status_error(what, reply));
    }
    reply.json()
}

fn expect_success(what: &str, reply: &Reply) -> Result<(), BmcError> {
    if reply.status.is_success() {
        Ok(())
    } else {
        Err(status_error(what, reply))
    }
}

#[async_trait]
impl Bmc for RedfishBmc {
    fn address(&self) -> &BmcAddress {
        &self.address
    }

    async fn identity(&self) -> Result<SystemIdentity, BmcError> {
        let _guard = self.lock.acquire().await;
        let (_, system) = self.get_system().await?;
        let mut id = model::identity(&system);
        id.bmc_firmware_version = self.manager_firmware(&system).await?;
        id.mac_addresses = self.nic_macs(&system).await?;
        Ok(id)
    }

    async fn power_state(&self) -> Result<PowerState, BmcError> {
        let _guard = self.lock.acquire().await;
        let (_, system) = self.get_system().await?;
        Ok(model::power_state(&system))
    }

    async fn power(&self, action: PowerAction) -> Result<(), BmcError> {
        let _guard = self.lock.acquire().await;
        let (url, system) = self.get_system().await?;
        let current = model::power_state(&system);
        let action = match (action, current) {
            (PowerAction::On, PowerState::On)
            | (PowerAction::Off | PowerAction::GracefulOff, PowerState::Off) => {
                tracing::debug!(bmc = %self.address, ?action, "already in the requested power state");
                return Ok(());
            }
            // A restart of a machine that is off: power it on, as Ironic does.
            (PowerAction::Reset | PowerAction::Cycle, PowerState::Off) => PowerAction::On,
            (a, _) => a,
        };
        let (target, allowed) = self.reset_action(&url, &system).await?;
        let reset_type = select::reset_type(action, allowed.as_deref())?;
        tracing::info!(bmc = %self.address, ?action, reset_type, "Redfish reset");
        let reply = self
            .transport
            .post(&target, &json!({ "ResetType": reset_type }))
            .await?;
        expect_success(&format!("reset {reset_type}"), &reply)
    }

    async fn set_boot(
        &self,
        device: BootDevice,
        persistence: BootPersistence,
        mode: BootMode,
    ) -> Result<(), BmcError> {
        let _guard = self.lock.acquire().await;
        let (mut url, mut system) = self.get_system().await?;
        let mut boot = system.get("Boot").cloned().unwrap_or(Value::Null);
        // The allowed targets can depend on the current mode (sushy-tools
        // offers UefiHttp only in UEFI mode): switch the mode first, re-read.
        if select::boot_target(
            device,
            model::allowable(&boot, "BootSourceOverrideTarget").as_deref(),
        )
        .is_err()
            && let Some(current) = model::string(&boot, "BootSourceOverrideMode")
            && let Ok(wanted) = select::boot_mode(
                mode,
                model::allowable(&boot, "BootSourceOverrideMode").as_deref(),
            )
            && current != wanted
        {
            tracing::debug!(bmc = %self.address, from = %current, to = wanted, "switching boot mode before the target");
            let reply = self
                .transport
                .patch(&url, &json!({"Boot": {"BootSourceOverrideMode": wanted}}))
                .await?;
            expect_success("set boot mode", &reply)?;
            (url, system) = self.get_system().await?;
            boot = system.get("Boot").cloned().unwrap_or(Value::Null);
        }
        let target = select::boot_target(
            device,
            model::allowable(&boot, "BootSourceOverrideTarget").as_deref(),
        )?;
        let enabled = select::override_enabled(
            persistence,
            model::allowable(&boot, "BootSourceOverrideEnabled").as_deref(),
        )?;
        let mode_allowed = model::allowable(&boot, "BootSourceOverrideMode");
        let secure_boot = model::link(&system, "SecureBoot");
        if mode == BootMode::UefiSecureBoot && secure_boot.is_none() {
            return Err(BmcError::NotSupported(
                "UEFI Secure Boot requested but the system has no SecureBoot resource".into(),
            ));
        }
        let mut patch = json!({
            "BootSourceOverrideTarget": target,
            "BootSourceOverrideEnabled": enabled,
        });
        if boot.get("BootSourceOverrideMode").is_some() || mode_allowed.is_some() {
            patch["BootSourceOverrideMode"] =
                json!(select::boot_mode(mode, mode_allowed.as_deref())?);
        } else {
            tracing::debug!(bmc = %self.address, "system has no BootSourceOverrideMode; mode left as is");
        }
        tracing::info!(bmc = %self.address, target, enabled, ?mode, "Redfish boot override");
        let reply = self
            .transport
            .patch(&url, &json!({ "Boot": patch }))
            .await?;
        expect_success("set boot override", &reply)?;
        if let Some(sb) = secure_boot {
            let want = mode == BootMode::UefiSecureBoot;
            let Some(doc) = self.get_optional(&sb).await? else {
                if want {
                    return Err(BmcError::NotSupported(
                        "SecureBoot resource unreadable".into(),
                    ));
                }
                return Ok(());
            };
            let current = doc.get("SecureBootEnable").and_then(Value::as_bool);
            if current != Some(want) && (want || current == Some(true)) {
                let reply = self
                    .transport
                    .patch(
                        &self.transport.url(&sb)?,
                        &json!({ "SecureBootEnable": want }),
                    )
                    .await?;
                expect_success("set Secure Boot", &reply)?;
            }
        }
        Ok(())
    }

    async fn insert_virtual_media(&self, image_url: &str) -> Result<(), BmcError> {
        let _guard = self.lock.acquire().await;
        let (_, system) = self.get_system().await?;
        let (url, media) = self.cd_media(&system).await?;
        let inserted = media.get("Inserted").and_then(Value::as_bool) == Some(true);
        if inserted && model::string(&media, "Image").as_deref() == Some(image_url) {
            return Ok(());
        }
        if inserted {
            self.eject_media(&url, &media).await?;
        }
        let a = model::action(&media, "VirtualMedia.InsertMedia", "");
        let body = json!({"Image": image_url, "Inserted": true, "WriteProtected": true});
        let reply = match a.target {
            Some(t) => self.transport.post(&self.transport.url(&t)?, &body).await?,
            None => self.transport.patch(&url, &body).await?,
        };
        expect_success("insert virtual media", &reply)
    }

    async fn eject_virtual_media(&self) -> Result<(), BmcError> {
        let _guard = self.lock.acquire().await;
        let (_, system) = self.get_system().await?;
        let (url, media) = self.cd_media(&system).await?;
        self.eject_media(&url, &media).await
    }

    async fn logout(&self) -> Result<(), BmcError> {
        let _guard = self.lock.acquire().await;
        self.transport.logout().await
    }
}
