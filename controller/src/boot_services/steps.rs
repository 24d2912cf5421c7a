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
    /// The version of the ramdisk served (the initrd step).
    pub ramdisk_version: Option<String>,
}

/// The current time, precise enough for the boot timeline.
pub fn now() -> Instant {
    Instant(Timestamp::now())
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

/// Applies `patch` to `status.bootProgress` (and `hardware` to `status.hardware`) under the
/// boot services' field manager.
pub async fn write(
    client: &kube::Client,
    server: &Server,
    patch: &BootProgressPatch,
    hardware: Option<&HardwareInventory>,
) -> Result<(), kube::Error> {
    write_at(client, server, patch, hardware, None).await
}

/// [`write`], refused (409) unless the Server is still at `resource_version` when one is given.
async fn write_at(
    client: &kube::Client,
    server: &Server,
    patch: &BootProgressPatch,
    hardware: Option<&HardwareInventory>,
    resource_version: Option<String>,
) -> Result<(), kube::Error> {
    let mut status = json!({ "bootProgress": patch });
    if let Some(hw) = hardware {
        status["hardware"] = json!(hw);
    }
    let mut body = json!({ "status": status });
    if let Some(rv) = resource_version {
        body["metadata"] = json!({ "resourceVersion": rv });
    }
    let api: Api<Server> = Api::namespaced(client.clone(), &server.namespace().unwrap_or_default());
    api.patch_status(
        &server.name_any(),
        &PatchParams {
            field_manager: Some(crds::field_managers::BOOT.into()),
            ..Default::default()
        },
        &Patch::Merge(body),
    )
    .await
    .map(|_| ())
}

/// What recording a step on a Server as it is known means (pure).
#[derive(Debug, PartialEq)]
enum Plan {
    /// No open attempt awaits the ramdisk.
    NoAttempt,
    /// The attempt's record holds the step already.
    Recorded,
    /// Add the step to the attempt's record.
    Add(String),
    /// Start the attempt's record (clearing an earlier attempt's) with the step.
    Start(String),
}

fn plan(server: &Server, step: Step) -> Plan {
    let status = server.status.as_ref();
    let Target::Ramdisk(attempt) = target(status) else {
        return Plan::NoAttempt;
    };
    match status
        .and_then(|s| s.boot_progress.as_ref())
        .filter(|p| p.attempt == attempt.id)
    {
        Some(p) if step.recorded(p) => Plan::Recorded,
        Some(_) => Plan::Add(attempt.id.clone()),
        None => Plan::Start(attempt.id.clone()),
    }
}

/// Tries to record one step: a stale cache, and another step of the same new attempt being
/// recorded at the same moment, each cost one more read.
const RECORD_TRIES: usize = 4;

/// Records `step` for `server` if it has an open attempt and the step is new for it. Returns
/// whether it was recorded. Starting an attempt's record is decided on a fresh read and
/// written with its resourceVersion: two steps of a new attempt (the DHCP report and the
/// script request race) never clear each other.
pub async fn record(
    client: &kube::Client,
    recorder: &Recorder,
    server: &Server,
    step: Step,
    details: Details,
) -> bool {
    let api: Api<Server> = Api::namespaced(client.clone(), &server.namespace().unwrap_or_default());
    let mut current = server.clone();
    let mut read = false;
    for _ in 0..RECORD_TRIES {
        let (attempt, mut patch, precondition) = match plan(&current, step) {
            Plan::Recorded => return false,
            Plan::NoAttempt | Plan::Start(_) if !read => {
                match api.get(&server.name_any()).await {
                    Ok(now) => current = now,
                    Err(e) => {
                        warn!(server = %server.name_any(), step = step.reason(), error = %e, "boot step not recorded: server not read");
                        return false;
                    }
                }
                read = true;
                continue;
            }
            Plan::NoAttempt => return false,
            Plan::Add(a) => {
                let patch = BootProgressPatch::of(&a);
                (a, patch, None)
            }
            Plan::Start(a) => {
                let patch = BootProgressPatch::fresh(&a);
                (a, patch, current.resource_version())
            }
        };
        *step.field(&mut patch) = Field::Set(now());
        if let Some((address, firmware)) = &details.dhcp {
            patch.dhcp_address = Field::Set(address.clone());
            patch.firmware = Field::Set(firmware.clone());
        }
        if let Some(version) = &details.ramdisk_version {
            patch.ramdisk_version = Field::Set(version.clone());
        }
        match write_at(
            client,
            &current,
            &patch,
            details.hardware.as_ref(),
            precondition,
        )
        .await
        {
            Ok(()) => {
                info!(server = %server.name_any(), attempt = %attempt, step = step.reason(), note = %details.note, "boot step");
                kube_kit::events::publish(
                    recorder,
                    &current,
                    EventType::Normal,
                    step.reason(),
                    "Netboot",
                    details.note,
                )
                .await;
                return true;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => read = false,
            Err(e) => {
                warn!(server = %server.name_any(), step = step.reason(), error = %e, "boot step not recorded");
                return false;
            }
        }
    }
    warn!(server = %server.name_any(), step = step.reason(), "boot step not recorded: the server kept changing");
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::server::{
        BootAttempt, BootProgress, BootPurpose, ServerSpec, ServerState, ServerStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn server(state: ServerState, progress: Option<BootProgress>) -> Server {
        let mut s = Server::new(
            "s1",
            serde_json::from_value::<ServerSpec>(json!({})).unwrap(),
        );
        s.status = Some(ServerStatus {
            state: Some(state),
            boot_attempt: Some(BootAttempt {
                id: "inspect-2".into(),
                purpose: BootPurpose::Inspect,
                requested_at: Time(Timestamp::now()),
                try_number: 1,
                disk_boot_at: None,
                ramdisk_attempt: None,
                kexec_at: None,
            }),
            boot_progress: progress,
            ..Default::default()
        });
        s
    }

    #[test]
    fn only_a_step_of_an_attempt_without_a_record_starts_one() {
        let earlier = BootProgress {
            attempt: "inspect-1".into(),
            ..Default::default()
        };
        let mine = |dhcp: bool| BootProgress {
            attempt: "inspect-2".into(),
            dhcp_at: dhcp.then(|| Time(Timestamp::now())),
            ..Default::default()
        };
        let start = Plan::Start("inspect-2".into());
        assert_eq!(
            plan(&server(ServerState::Inspecting, None), Step::Dhcp),
            start
        );
        assert_eq!(
            plan(&server(ServerState::Inspecting, Some(earlier)), Step::Dhcp),
            start
        );
        assert_eq!(
            plan(
                &server(ServerState::Inspecting, Some(mine(false))),
                Step::Dhcp
            ),
            Plan::Add("inspect-2".into())
        );
        assert_eq!(
            plan(
                &server(ServerState::Inspecting, Some(mine(true))),
                Step::Dhcp
            ),
            Plan::Recorded
        );
        assert_eq!(
            plan(&server(ServerState::Available, None), Step::Dhcp),
            Plan::NoAttempt
        );
    }
}
