//! What the agent is told to do next, from the Server's open boot attempt.

use crds::Server;
use crds::server::{BootPurpose, CleaningMode, ImageFormat, ServerState, StandbyPolicy};
use kube::ResourceExt;
use proto::agent_v1::{self as api, Clean, PowerOff, Provision, RootDeviceHints, Wait, task};

use crate::boot_services::nocloud::{self, SecretError};
use crate::boot_services::shared::Shared;

/// The task name in task ids.
pub fn name(kind: &task::Kind) -> &'static str {
    match kind {
        task::Kind::Wait(_) => "wait",
        task::Kind::Provision(_) => "provision",
        task::Kind::Clean(_) => "clean",
        task::Kind::PowerOff(_) => "power-off",
    }
}

/// How long a standby agent waits before asking again (its poll was held open before).
const STANDBY_WAIT_SECONDS: u32 = 1;

/// The next task for `server`'s agent in `attempt`: wait while on standby; the attempt's work
/// until its result is recorded; then power-off (the controller boots the disk through the BMC,
/// or the agent kexecs into it and never asks again).
pub async fn next(
    client: &kube::Client,
    shared: &Shared,
    server: &Server,
    attempt: &str,
    checkin_url: &str,
) -> Result<task::Kind, SecretError> {
    let off = task::Kind::PowerOff(PowerOff {});
    let Some(status) = server.status.as_ref() else {
        return Ok(off);
    };
    if status.state == Some(ServerState::Standby) {
        return Ok(task::Kind::Wait(Wait {
            seconds: STANDBY_WAIT_SECONDS,
        }));
    }
    let working = matches!(
        status.state,
        Some(ServerState::Provisioning | ServerState::Deprovisioning)
    );
    let done = status
        .boot_progress
        .as_ref()
        .is_some_and(|p| p.attempt == attempt && p.result.is_some());
    let purpose = status.boot_attempt.as_ref().map(|a| a.purpose);
    // Only a warm attempt (the agent waited on standby) kexecs: a cold one has just paid the
    // firmware's POST, and the BMC's disk boot is the proven path.
    let warm = status
        .boot_attempt
        .as_ref()
        .is_some_and(|a| a.ramdisk_attempt.is_some());
    // Work done (inspection, cleaning) on a server whose policy keeps it warm: the agent
    // waits while the reconciler decides between Standby and Available (then power-off).
    let finished_work = status.state == Some(ServerState::Inspecting)
        || (status.state == Some(ServerState::Deprovisioning) && done);
    if finished_work && stays_warm(shared, server) {
        return Ok(task::Kind::Wait(Wait {
            seconds: STANDBY_WAIT_SECONDS,
        }));
    }
    if !working || done {
        return Ok(off);
    }
    Ok(match (purpose, server.spec.cleaning) {
        (Some(BootPurpose::Provision), _) => {
            match provision(client, shared, server, checkin_url, warm).await? {
                Some(p) => task::Kind::Provision(p),
                None => off,
            }
        }
        (Some(BootPurpose::Clean), CleaningMode::Metadata) => task::Kind::Clean(Clean {
            mode: proto::agent_v1::clean::Mode::Metadata.into(),
        }),
        (Some(BootPurpose::Clean), CleaningMode::Full) => task::Kind::Clean(Clean {
            mode: proto::agent_v1::clean::Mode::Full.into(),
        }),
        _ => off,
    })
}

/// Whether `server`'s standby policy (its own, else its Rack's) keeps it warm when idle.
fn stays_warm(shared: &Shared, server: &Server) -> bool {
    let rack = server
        .spec
        .rack_ref
        .as_ref()
        .and_then(|r| shared.rack(&server.namespace().unwrap_or_default(), &r.name));
    let rack_policy = rack.and_then(|r| r.spec.standby.map(|s| s.policy));
    StandbyPolicy::effective(server.spec.standby, rack_policy) == StandbyPolicy::Standby
        && !server.spec.externally_provisioned
}

async fn provision(
    client: &kube::Client,
    shared: &Shared,
    server: &Server,
    checkin_url: &str,
    kexec: bool,
) -> Result<Option<Provision>, SecretError> {
    let Some(image) = server.spec.image.as_ref() else {
        return Ok(None);
    };
    let namespace = server.namespace().unwrap_or_default();
    let user_data = match &server.spec.user_data {
        Some(r) => nocloud::secret_value(client, &namespace, r, "userData").await?,
        None => Vec::new(),
    };
    let docs = nocloud::read(client, shared, server, &image.checksum, checkin_url).await?;
    let hints = server.spec.root_device_hints.clone().unwrap_or_default();
    Ok(Some(Provision {
        image_url: image.url.clone(),
        checksum: image.checksum.clone(),
        format: wire_format(image.format).into(),
        root_device_hints: Some(RootDeviceHints {
            device_name: hints.device_name.unwrap_or_default(),
            hctl: hints.hctl.unwrap_or_default(),
            model: hints.model.unwrap_or_default(),
            vendor: hints.vendor.unwrap_or_default(),
            serial_number: hints.serial_number.unwrap_or_default(),
            wwn: hints.wwn.unwrap_or_default(),
            min_size_gigabytes: hints.min_size_gigabytes.unwrap_or_default(),
            rotational: hints.rotational,
        }),
        user_data,
        meta_data: docs.meta_data.into_bytes(),
        network_config: docs.network_config.into_bytes(),
        marker: docs.marker,
        kexec,
    }))
}

/// The API's name for an image format (the one conversion from the Server spec's).
fn wire_format(format: ImageFormat) -> api::ImageFormat {
    match format {
        ImageFormat::Raw => api::ImageFormat::Raw,
        ImageFormat::RawGzip => api::ImageFormat::RawGzip,
        ImageFormat::RawZstd => api::ImageFormat::RawZstd,
        ImageFormat::Qcow2 => api::ImageFormat::Qcow2,
    }
}
