//! Boot steps of an open attempt: a timestamp in `status.bootProgress` (field manager
//! `groundwork-boot`, so the reconciler's own writes never reset it) and an Event. Steps of
//! machines with no open attempt (an installed OS renewing its lease) write nothing.

use crds::Server;
use crds::server::{BootProgressPatch, Field, HardwareInventory, Instant};
use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{EventType, Recorder};
use serde_json::json;
use tracing::{info, warn};

use super::target::{Target, target};

/// One boot step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// DHCP acknowledged the boot MAC.
    Dhcp,
    /// The iPXE script was served.
    Script,
    /// The kernel was fetched.
    Kernel,
    /// The initrd was fetched.
    Initrd,
    /// The ramdisk called back.
    CalledBack,
}

impl Step {
    fn field(self, patch: &mut BootProgressPatch) -> &mut Field<Instant> {
        match self {
            Self::Dhcp => &mut patch.dhcp_at,
            Self::Script => &mut patch.script_at,
            Self::Kernel => &mut patch.kernel_at,
            Self::Initrd => &mut patch.initrd_at,
            Self::CalledBack => &mut patch.called_back_at,
        }
    }

    /// Event reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Dhcp => "DHCPAcknowledged",
            Self::Script => "BootScriptServed",
            Self::Kernel => "KernelFetched",
            Self::Initrd => "InitrdFetched",
            Self::CalledBack => "RamdiskCalledBack",
        }
    }

    fn recorded(self, p: &crds::server::BootProgress) -> bool {
        match self {
            Self::Dhcp => p.dhcp_at.is_some(),
            Self::Script => p.script_at.is_some(),
            Self::Kernel => p.kernel_at.is_some(),
            Self::Initrd => p.initrd_at.is_some(),
            Self::CalledBack => p.called_back_at.is_some(),
        }
    }
}

/// What a step carries besides its time.
#[derive(Debug, Default)]
pub struct Details {
    /// Human note for the Event.
    pub note: String,
    /// The address DHCP gave and the firmware that asked (the DHCP step).
    pub dhcp: Option<(String, String)>,
    /// The inventory the ramdisk reported.
    pub hardware: Option<HardwareInventory>,
}

/// The current time, precise enough for the boot timeline.
pub fn now() -> Instant {
    Instant(Timestamp::now())
}

/// Applies `patch` to `status.bootProgress` (and `hardware` to `status.hardware`) under the
/// boot services' field manager.
pub async fn write(
    client: &kube::Client,
    server: &Server,
    patch: &BootProgressPatch,
    hardware: Option<&HardwareInventory>,
) -> Result<(), kube::Error> {
    let mut status = json!({ "bootProgress": patch });
    if let Some(hw) = hardware {
        status["hardware"] = json!(hw);
    }
    let api: Api<Server> = Api::namespaced(client.clone(), &server.namespace().unwrap_or_default());
    api.patch_status(
        &server.name_any(),
        &PatchParams {
            field_manager: Some(crds::field_managers::BOOT.into()),
            ..Default::default()
        },
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .map(|_| ())
}

/// `server` as the API has it now when the cached copy shows no open attempt: an attempt
/// opened a moment ago may not have reached the cache yet (a fast firmware asking a loaded
/// controller). Costs one read per request of a machine with no attempt (an installed OS
/// renewing its lease); the cached copy when the read fails.
pub async fn confirmed(client: &kube::Client, server: Server) -> Server {
    if matches!(target(server.status.as_ref()), Target::Ramdisk(_)) {
        return server;
    }
    let api: Api<Server> = Api::namespaced(client.clone(), &server.namespace().unwrap_or_default());
    match api.get(&server.name_any()).await {
        Ok(now) => now,
        Err(e) => {
            warn!(server = %server.name_any(), error = %e, "server not read; its cached copy decides");
            server
        }
    }
}

/// Records `step` for `server` if it has an open attempt and the step is new for it. Returns
/// whether it was recorded.
pub async fn record(
    client: &kube::Client,
    recorder: &Recorder,
    server: &Server,
    step: Step,
    details: Details,
) -> bool {
    let server = &confirmed(client, server.clone()).await;
    let status = server.status.as_ref();
    let Target::Ramdisk(attempt) = target(status) else {
        return false;
    };
    let progress = status
        .and_then(|s| s.boot_progress.as_ref())
        .filter(|p| p.attempt == attempt.id);
    if progress.is_some_and(|p| step.recorded(p)) {
        return false;
    }
    // A new attempt: clear what an earlier attempt left.
    let mut patch = if progress.is_none() {
        BootProgressPatch::fresh(&attempt.id)
    } else {
        BootProgressPatch::of(&attempt.id)
    };
    *step.field(&mut patch) = Field::Set(now());
    if let Some((address, firmware)) = &details.dhcp {
        patch.dhcp_address = Field::Set(address.clone());
        patch.firmware = Field::Set(firmware.clone());
    }
    if let Err(e) = write(client, server, &patch, details.hardware.as_ref()).await {
        warn!(server = %server.name_any(), step = step.reason(), error = %e, "boot step not recorded");
        return false;
    }
    info!(server = %server.name_any(), attempt = %attempt.id, step = step.reason(), note = %details.note, "boot step");
    kube_kit::events::publish(
        recorder,
        server,
        EventType::Normal,
        step.reason(),
        "Netboot",
        details.note,
    )
    .await;
    true
}
