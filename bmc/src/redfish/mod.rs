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

mod boot;
mod model;
mod power;
mod precondition;
mod select;
mod service;
mod tls;
mod transport;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::{StatusCode, Url};
use serde_json::{Value, json};

use crate::serialize::EndpointLock;
use crate::{
    Bmc, BmcAddress, BmcError, BootDevice, BootMode, BootPersistence, Credentials, DriverConfig,
    PowerAction, PowerState, SystemIdentity, TlsOptions,
};
use service::Service;
use transport::{Reply, Transport, status_error};

/// A Redfish BMC.
#[derive(Debug)]
pub struct RedfishBmc {
    address: BmcAddress,
    service: Arc<Service>,
    lock: EndpointLock,
    /// The system resource URL, once known (after discovery and redirects).
    system: Mutex<Option<Url>>,
    /// What a power request needs of the system as last read: a power request right after an
    /// observation decides from it instead of reading the system again. Used once; dropped by
    /// every PATCH.
    last_read: Mutex<Option<PowerView>>,
    /// The BMC answered 428 (or 412) to a PATCH without `If-Match`: send it
    /// on every PATCH from now on (see [`precondition`]).
    needs_if_match: AtomicBool,
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
        let service = Service::shared(&base, credentials, tls, config)?;
        let lock = EndpointLock::for_endpoint(&address.endpoint_key());
        Ok(Self {
            address,
            service,
            lock,
            system: Mutex::new(None),
            last_read: Mutex::new(None),
            needs_if_match: AtomicBool::new(false),
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

    fn transport(&self) -> &Transport {
        &self.service.transport
    }

    /// Find the system: the address's path, else the service's only system.
    async fn discover(&self) -> Result<Url, BmcError> {
        if let Some(url) = self.cached_system() {
            return Ok(url);
        }
        let root = self.service.root().await?;
        let system = match &self.address {
            BmcAddress::Redfish {
                system_path: Some(p),
                ..
            } => self.transport().url(p)?,
            _ => {
                let reply = self
                    .transport()
                    .get(&self.transport().url(&root.systems)?)
                    .await?;
                let coll = success_json("list systems", &reply)?;
                match model::members(&coll).as_slice() {
                    [only] => self.transport().url(only)?,
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

    /// The system's power view: the one read within [`RECENT`], else a fresh read.
    async fn power_view(&self) -> Result<PowerView, BmcError> {
        let recent = self
            .last_read
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .filter(|v| v.at.elapsed() < RECENT);
        match recent {
            Some(view) => Ok(view),
            None => {
                let sys = self.read_system().await?;
                self.forget_read();
                Ok(PowerView::of(sys.url, &sys.doc))
            }
        }
    }

    fn forget_read(&self) {
        *self.last_read.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// GET the ComputerSystem, remembering where redirects led.
    async fn get_system(&self) -> Result<(Url, Value), BmcError> {
        self.read_system().await.map(|s| (s.url, s.doc))
    }

    /// GET the ComputerSystem with its ETag.
    async fn read_system(&self) -> Result<Resource, BmcError> {
        let url = self.discover().await?;
        let reply = self.transport().get(&url).await?;
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
        *self.last_read.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(PowerView::of(reply.url.clone(), &system));
        Ok(Resource::new(reply.url.clone(), system, &reply))
    }

    /// GET a resource with its ETag.
    async fn read_resource(&self, url: &Url) -> Result<Resource, BmcError> {
        let reply = self.transport().get(url).await?;
        let doc = success_json("read", &reply)?;
        Ok(Resource::new(reply.url.clone(), doc, &reply))
    }

    /// PATCH a resource read before. `If-Match` is sent once the BMC has
    /// asked for it (see [`precondition`]); the resource's ETag is refreshed
    /// from the answer, or read again when a PATCH needs one and none is known.
    async fn patch_resource(&self, res: &mut Resource, body: &Value) -> Result<Reply, BmcError> {
        self.forget_read();
        let mut retried = false;
        loop {
            let if_match = if self.needs_if_match.load(Ordering::Relaxed) {
                if res.etag.is_none() {
                    res.etag = self.read_resource(&res.url).await?.etag;
                }
                if res.etag.is_none() {
                    return Err(BmcError::Protocol(format!(
                        "{}: the BMC requires If-Match but publishes no ETag",
                        res.url.path()
                    )));
                }
                res.etag.clone()
            } else {
                None
            };
            let reply = self
                .transport()
                .patch(&res.url, body, if_match.as_deref())
                .await?;
            match precondition::after_patch(reply.status.as_u16(), if_match.is_some(), retried) {
                precondition::Step::Done => {
                    // The resource changed: its next PATCH needs the new ETag.
                    res.etag = model::etag(header(&reply, "etag"), &Value::Null);
                    return Ok(reply);
                }
                precondition::Step::RequireIfMatch => {
                    tracing::info!(bmc = %self.address, status = reply.status.as_u16(), "BMC requires If-Match on PATCH");
                    self.needs_if_match.store(true, Ordering::Relaxed);
                }
                precondition::Step::Refresh => res.etag = None,
            }
            retried = true;
        }
    }

    /// PATCH the system's boot settings; `Err(refusal)` keeps the BMC's
    /// answer for the fallback decision.
    async fn patch_boot(
        &self,
        sys: &mut Resource,
        body: &Value,
    ) -> Result<Result<(), Refusal>, BmcError> {
        let reply = self.patch_resource(sys, body).await?;
        Ok(refusal("set boot override", &reply).map_or(Ok(()), Err))
    }

    /// The firmware version of the system's manager (read once per service).
    async fn manager_firmware(&self, system: &Value) -> Result<Option<String>, BmcError> {
        let Some(manager) = model::managed_by(system) else {
            return Ok(None);
        };
        Ok(self
            .service
            .described(&manager)
            .await?
            .and_then(|m| model::string(&m, "FirmwareVersion")))
    }

    /// The second PATCH after a separate mode switch: target and persistence.
    /// When the BMC refuses it, the mode is switched back, so a refused boot
    /// request leaves the boot mode as it found it.
    async fn finish_after_switch(
        &self,
        sys: &mut Resource,
        plan: &boot::BootPlan,
        from: Option<&str>,
    ) -> Result<(), BmcError> {
        match self.patch_boot(sys, &plan.body()).await? {
            Ok(()) => Ok(()),
            Err(r) => Err(self.restore_mode(sys, from, r.error).await),
        }
    }

    /// Switch the boot mode back to `from` after `err`; returns `err`, with a
    /// note when the mode could not be restored.
    async fn restore_mode(
        &self,
        sys: &mut Resource,
        from: Option<&str>,
        err: BmcError,
    ) -> BmcError {
        let Some(from) = from else {
            return with_note(
                err,
                "the boot mode was changed and its previous value is unknown",
            );
        };
        match self.patch_boot(sys, &boot::mode_body(from)).await {
            Ok(Ok(())) => {
                tracing::info!(bmc = %self.address, mode = from, "boot request refused: boot mode restored");
                err
            }
            Ok(Err(r)) => with_note(
                err,
                &format!("restoring {} = {from} failed: {}", boot::MODE, r.error),
            ),
            Err(e) => with_note(
                err,
                &format!("restoring {} = {from} failed: {e}", boot::MODE),
            ),
        }
    }

    /// The reset action's target and the allowed reset types (inline or via
    /// ActionInfo). A system that advertises no reset action (GPU baseboards,
    /// some DPUs) cannot be reset: `NotSupported`, not a 404 from a guessed URL.
    async fn reset_action(
        &self,
        url: &Url,
        reset: Option<model::ActionRef>,
    ) -> Result<(Url, Option<Vec<String>>), BmcError> {
        let a = reset.ok_or_else(|| {
            BmcError::NotSupported(format!(
                "{} advertises no ComputerSystem.Reset action",
                url.path()
            ))
        })?;
        let target = match &a.target {
            Some(t) => self.transport().url(t)?,
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
            && let Some(doc) = self.service.described(info).await?
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
            && let Some(manager) = self.service.get_optional(&m).await?
            && let Some(l) = model::link(&manager, "VirtualMedia")
            && !collections.contains(&l)
        {
            collections.push(l);
        }
        for coll in collections {
            let Some(doc) = self.service.get_optional(&coll).await? else {
                continue;
            };
            for member in model::members(&doc) {
                if let Some(media) = self.service.get_optional(&member).await?
                    && model::is_cd(&media)
                {
                    return Ok((self.transport().url(&member)?, media));
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
        let target = model::action(media, "VirtualMedia.EjectMedia", "").and_then(|a| a.target);
        let reply = match target {
            Some(t) => {
                self.transport()
                    .post(&self.transport().url(&t)?, &json!({}))
                    .await?
            }
            None => {
                let mut res = Resource::unread(url.clone());
                self.patch_resource(&mut res, &json!({"Image": null, "Inserted": false}))
                    .await?
            }
        };
        expect_success("eject virtual media", &reply)
    }
}

/// How long an observation stands in for a read of the system by a power request.
const RECENT: Duration = Duration::from_secs(2);

/// What a power request needs of the system: where it is, its power state, its reset action.
#[derive(Debug)]
struct PowerView {
    at: Instant,
    url: Url,
    power: PowerState,
    reset: Option<model::ActionRef>,
}

impl PowerView {
    fn of(url: Url, system: &Value) -> Self {
        Self {
            at: Instant::now(),
            url,
            power: model::power_state(system),
            reset: model::action(system, "ComputerSystem.Reset", "ResetType"),
        }
    }
}

/// A resource as read, with where it lives and its ETag.
#[derive(Debug)]
struct Resource {
    url: Url,
    doc: Value,
    etag: Option<String>,
}

impl Resource {
    fn new(url: Url, doc: Value, reply: &Reply) -> Self {
        let etag = model::etag(header(reply, "etag"), &doc);
        Self { url, doc, etag }
    }

    /// A resource known only by URL (its ETag is read when a PATCH needs one).
    fn unread(url: Url) -> Self {
        Self {
            url,
            doc: Value::Null,
            etag: None,
        }
    }
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A refused request: the typed error and the BMC's error body.
#[derive(Debug)]
struct Refusal {
    error: BmcError,
    body: Value,
}

/// The refusal in an answer, if any: a non-2xx status, or a 2xx whose body
/// is an error (iDRAC 8, see [`model::error_in_success`]).
fn refusal(what: &str, reply: &Reply) -> Option<Refusal> {
    let body = reply.json().unwrap_or(Value::Null);
    if reply.status.is_success() && !model::error_in_success(&body) {
        return None;
    }
    let error = if reply.status.is_success() {
        BmcError::Protocol(format!(
            "{what} ({}): HTTP {} with an error body: {}",
            reply.url.path(),
            reply.status.as_u16(),
            transport::redfish_error_message(&body).unwrap_or_default()
        ))
    } else {
        status_error(what, reply)
    };
    Some(Refusal { error, body })
}

/// The BMC refuses to change the boot mode: the request cannot be done here.
fn mode_refused(from: Option<&str>, to: &str, r: Refusal) -> BmcError {
    BmcError::NotSupported(format!(
        "the BMC refuses to change {} from {} to {to}: {}",
        boot::MODE,
        from.unwrap_or("(unpublished)"),
        r.error.message()
    ))
}

/// `err` with `note` appended to its message, same variant.
fn with_note(err: BmcError, note: &str) -> BmcError {
    let msg = format!("{}; {note}", err.message());
    match err {
        BmcError::Unreachable(_) => BmcError::Unreachable(msg),
        BmcError::AuthenticationFailed(_) => BmcError::AuthenticationFailed(msg),
        BmcError::NotSupported(_) => BmcError::NotSupported(msg),
        BmcError::Protocol(_) => BmcError::Protocol(msg),
        BmcError::Timeout(_) => BmcError::Timeout(msg),
    }
}

fn success_json(what: &str, reply: &Reply) -> Result<Value, BmcError> {
    if !reply.status.is_success() {
        return Err(status_error(what, reply));
    }
    reply.json()
}

fn expect_success(what: &str, reply: &Reply) -> Result<(), BmcError> {
    refusal(what, reply).map_or(Ok(()), |r| Err(r.error))
}

#[async_trait]
impl Bmc for RedfishBmc {
    fn address(&self) -> &BmcAddress {
        &self.address
    }

    async fn identity(&self) -> Result<SystemIdentity, BmcError> {
        Ok(self.inspect().await?.0)
    }

    /// Identity and power from one read of the system.
    async fn inspect(&self) -> Result<(SystemIdentity, PowerState), BmcError> {
        let _guard = self.lock.acquire().await;
        let (_, system) = self.get_system().await?;
        let mut id = model::identity(&system);
        id.bmc_firmware_version = self.manager_firmware(&system).await?;
        id.mac_addresses = self.service.nic_macs(&system).await?;
        Ok((id, model::power_state(&system)))
    }

    async fn power_state(&self) -> Result<PowerState, BmcError> {
        let _guard = self.lock.acquire().await;
        let (_, system) = self.get_system().await?;
        Ok(model::power_state(&system))
    }

    async fn power(&self, action: PowerAction) -> Result<(), BmcError> {
        let _guard = self.lock.acquire().await;
        let view = self.power_view().await?;
        let current = view.power;
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
        let (target, allowed) = self.reset_action(&view.url, view.reset).await?;
        let order = select::reset_order(action, allowed.as_deref())?;
        let mut refused: Vec<String> = Vec::new();
        for reset_type in order {
            tracing::info!(bmc = %self.address, ?action, reset_type, "Redfish reset");
            let reply = self
                .transport()
                .post(&target, &json!({ "ResetType": reset_type }))
                .await?;
            let body = reply.json().unwrap_or(Value::Null);
            match power::classify(reply.status.as_u16(), &body) {
                power::ResetAnswer::Accepted => return Ok(()),
                power::ResetAnswer::TypeRefused => {
                    tracing::debug!(bmc = %self.address, reset_type, "ResetType refused, trying the next one");
                    refused.push(reset_type.to_string());
                }
                power::ResetAnswer::StateConflict => {
                    let err = refusal(&format!("reset {reset_type}"), &reply)
                        .map_or_else(|| status_error("reset", &reply), |r| r.error);
                    let (_, now) = self.get_system().await?;
                    let state = model::power_state(&now);
                    if power::settled(action, state) {
                        tracing::info!(bmc = %self.address, ?action, ?state, "reset refused because the machine already is in that state");
                        return Ok(());
                    }
                    return Err(err);
                }
                power::ResetAnswer::Failed => {
                    return Err(refusal(&format!("reset {reset_type}"), &reply)
                        .map_or_else(|| status_error("reset", &reply), |r| r.error));
                }
            }
        }
        Err(BmcError::NotSupported(format!(
            "power {action:?}: the BMC refused every ResetType tried ({refused:?})"
        )))
    }

    async fn set_boot(
        &self,
        device: BootDevice,
        persistence: BootPersistence,
        mode: BootMode,
    ) -> Result<(), BmcError> {
        let _guard = self.lock.acquire().await;
        let mut sys = self.read_system().await?;
        let plan = match boot::plan(&sys.doc, device, persistence, mode)? {
            boot::Plan::Patch(p) => p,
            boot::Plan::SwitchModeFirst { from, to } => {
                tracing::debug!(bmc = %self.address, ?from, to, "target offered only in the other mode: switching the mode first");
                if let Err(r) = self.patch_boot(&mut sys, &boot::mode_body(to)).await? {
                    return Err(mode_refused(from.as_deref(), to, r));
                }
                sys = self.read_system().await?;
                let err = match boot::plan(&sys.doc, device, persistence, mode) {
                    Ok(boot::Plan::Patch(p)) => {
                        return self
                            .finish_after_switch(&mut sys, &p, from.as_deref())
                            .await;
                    }
                    Ok(boot::Plan::SwitchModeFirst { .. }) => BmcError::Protocol(format!(
                        "the BMC accepted {} = {to} but still reports the old mode",
                        boot::MODE
                    )),
                    Err(e) => e,
                };
                return Err(self.restore_mode(&mut sys, from.as_deref(), err).await);
            }
        };
        tracing::info!(bmc = %self.address, target = plan.target, enabled = plan.enabled, mode = ?plan.mode, "Redfish boot override");
        let Err(refused) = self.patch_boot(&mut sys, &plan.body()).await? else {
            return Ok(());
        };
        let names_mode = model::names_property(&refused.body, boot::MODE);
        match boot::after_refusal(&plan.mode, names_mode) {
            boot::Fallback::Fail => Err(refused.error),
            boot::Fallback::RetryWithoutMode => {
                tracing::info!(bmc = %self.address, "BMC refuses BootSourceOverrideMode in the boot PATCH; sending it without");
                self.patch_boot(&mut sys, &plan.without_mode().body())
                    .await?
                    .map_err(|r| r.error)
            }
            boot::Fallback::ModeAlone { from, to } => {
                tracing::info!(bmc = %self.address, ?from, to, "BMC refuses the boot mode with the target; switching it alone first");
                if let Err(r) = self.patch_boot(&mut sys, &boot::mode_body(to)).await? {
                    return Err(mode_refused(from.as_deref(), to, r));
                }
                self.finish_after_switch(&mut sys, &plan.without_mode(), from.as_deref())
                    .await
            }
        }
    }

    async fn set_secure_boot(&self, enabled: bool) -> Result<bool, BmcError> {
        let _guard = self.lock.acquire().await;
        let (_, system) = self.get_system().await?;
        let link = model::link(&system, "SecureBoot").ok_or_else(|| {
            BmcError::NotSupported("the system has no SecureBoot resource".into())
        })?;
        let mut sb = self.read_resource(&self.transport().url(&link)?).await?;
        let current = sb.doc.get("SecureBootEnable").and_then(Value::as_bool);
        if current == Some(enabled) {
            return Ok(false);
        }
        tracing::info!(bmc = %self.address, from = ?current, to = enabled, "changing UEFI Secure Boot");
        let reply = self
            .patch_resource(&mut sb, &json!({ "SecureBootEnable": enabled }))
            .await?;
        expect_success("set Secure Boot", &reply)?;
        Ok(true)
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
        let target = model::action(&media, "VirtualMedia.InsertMedia", "").and_then(|a| a.target);
        let body = json!({"Image": image_url, "Inserted": true, "WriteProtected": true});
        let reply = match target {
            Some(t) => {
                self.transport()
                    .post(&self.transport().url(&t)?, &body)
                    .await?
            }
            None => {
                let mut res = Resource::unread(url.clone());
                self.patch_resource(&mut res, &body).await?
            }
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
        self.transport().logout().await
    }
}
