//! Provisioning lifecycle (pure): Available → Provisioning → Provisioned → Deprovisioning →
//! Available, driven by `spec.image`, the agent's results and the installed OS's check-in;
//! and the warm pool (`docs/standby.md`): Deprovisioning → Standby, Standby → Provisioning
//! without a power cycle (a warm attempt, kexec into the installed OS), Standby → Available
//! when the agent falls silent or the policy or budget no longer allow it.
//!
//! Each ramdisk visit is a [`BootAttempt`]; the boot services record what happened to it in
//! `status.bootProgress` (DHCP … agent registered, progress, result, first check-in). This
//! module reads that record and says what comes next.

use std::time::Duration;

use crds::server::{
    AllocatedAddress, BootAttempt, BootProgress, BootPurpose, CleaningMode, Image, KexecOutcome,
    NODE_NETWORK, PhaseTiming, ProvisionedImage, ServerState, ServerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proto::agent_v1::FailureReason;

use super::action::PowerAction;
use super::standby::Gate;

/// A timed-out ramdisk visit is retried this many times in all before the server goes to Error.
pub const MAX_TRIES: u32 = 3;

/// The lifecycle's own failure reasons; the agent's are [`FailureReason`]s.
const OWN_REASONS: &[&str] = &["RamdiskTimedOut", "FirstBootTimedOut", "NoBootAttempt"];

/// After the agent kexecs into the installed OS, the OS must check in within this long;
/// otherwise the controller boots the disk through the BMC (once).
pub const KEXEC_CHECKIN_TIMEOUT: Duration = Duration::from_secs(180);

/// A failed provisioning the agent gave no reason for.
const PROVISIONING_FAILED: &str = "ProvisioningFailed";

/// The reason for conditions (which take static reasons) of a stored failure reason:
/// unknown ones become `ProvisioningFailed`.
pub fn known_reason(reason: Option<&str>) -> &'static str {
    OWN_REASONS
        .iter()
        .copied()
        .chain(FailureReason::condition_reasons())
        .find(|k| Some(*k) == reason)
        .unwrap_or(PROVISIONING_FAILED)
}

/// What the lifecycle needs beyond the status.
pub struct Lifecycle<'a> {
    /// spec.image.
    pub image: Option<&'a Image>,
    /// spec.externallyProvisioned.
    pub externally_provisioned: bool,
    /// The Server is being deleted.
    pub deleting: bool,
    /// spec.cleaning.
    pub cleaning: CleaningMode,
    /// Whether spec.bootMACAddress is set.
    pub boot_mac: bool,
    /// The node address granted for provisioning: `Ok(None)` when the rack has no node
    /// network (the OS configures itself), `Err((reason, message))` when none could be granted.
    pub allocation: Result<Option<String>, (&'static str, String)>,
    /// How long a ramdisk may stay silent, and the installed OS may take to check in.
    pub timeout: Duration,
    /// The spec changed since the status was written (an Error is retried after an edit).
    pub spec_changed: bool,
    /// What the standby policy and the rack's budget allow this server.
    pub standby: Gate,
    /// A standby agent silent this long is given up (powered off, Available); a warm attempt
    /// whose agent has not taken its task within this long is retried cold.
    pub heartbeat_timeout: Duration,
    /// Set when this server's standby agent runs an older ramdisk and the server holds its
    /// rack's refresh slot: why it is netbooted again (`refresh.rs`).
    pub refresh: Option<String>,
}

#[cfg(test)]
impl Lifecycle<'_> {
    /// No image, nothing to do.
    pub fn idle() -> Self {
        Self {
            image: None,
            externally_provisioned: false,
            deleting: false,
            cleaning: CleaningMode::Metadata,
            boot_mac: true,
            allocation: Ok(None),
            timeout: Duration::from_secs(900),
            spec_changed: false,
            standby: Gate::Off,
            heartbeat_timeout: Duration::from_secs(300),
            refresh: None,
        }
    }
}

/// What the lifecycle asks of the rest of decide.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Nothing to do here: power follows spec.online.
    Idle,
    /// Perform this power action (after writing status).
    Act(PowerAction, String),
    /// Work is under way outside the controller (ramdisk, first boot): leave power alone.
    Wait(&'static str, String),
    /// Cannot go on until something changes.
    Blocked(&'static str, String),
}

/// Whether a server in `state` with this spec needs a node address granted now.
pub fn needs_address(status: Option<&ServerStatus>, lc: &Lifecycle<'_>) -> bool {
    let state = status.and_then(|s| s.state).unwrap_or_default();
    let holds = status.is_some_and(|s| s.node_address().is_some());
    lc.image.is_some()
        && !lc.deleting
        && !lc.externally_provisioned
        && !holds
        // Registering too: a new Server with an image goes on to Provisioning in the same pass.
        && matches!(
            state,
            ServerState::Registering
                | ServerState::Available
                | ServerState::Error
                | ServerState::Standby
        )
}

/// Advances the lifecycle from `state`; updates `status` (attempts, addresses, image, error).
pub fn advance(
    state: ServerState,
    status: &mut ServerStatus,
    lc: &Lifecycle<'_>,
    now: &Time,
) -> (ServerState, Step) {
    let wanted = lc.image.filter(|_| !lc.deleting);
    match state {
        ServerState::Error if lc.deleting || (wanted.is_none() && imaging(status)) => {
            release(status);
            (ServerState::Available, Step::Idle)
        }
        ServerState::Error if lc.spec_changed => advance(ServerState::Available, status, lc, now),
        ServerState::Available if lc.deleting => {
            release(status);
            (ServerState::Available, Step::Idle)
        }
        ServerState::Available if lc.externally_provisioned => {
            status.provisioned_image = lc.image.map(|i| provisioned(i, None, true));
            (ServerState::Provisioned, Step::Idle)
        }
        ServerState::Available => match wanted {
            None => (ServerState::Available, Step::Idle),
            Some(_) if !lc.boot_mac => (
                ServerState::Available,
                Step::Blocked(
                    "NoBootMAC",
                    "spec.image needs spec.bootMACAddress: the server is imaged from the network"
                        .into(),
                ),
            ),
            Some(_) => match &lc.allocation {
                Err((reason, message)) => (
                    ServerState::Available,
                    Step::Blocked(reason, message.clone()),
                ),
                Ok(address) => {
                    grant(status, address.as_deref());
                    status.error_count = 0;
                    let step = open_attempt(status, BootPurpose::Provision, 1, now);
                    (ServerState::Provisioning, step)
                }
            },
        },
        ServerState::Provisioned => {
            let installed = status.provisioned_image.as_ref();
            let same = matches!((wanted, installed), (Some(w), Some(i)) if w.url == i.url && w.checksum == i.checksum);
            if same || (lc.externally_provisioned && !lc.deleting) {
                (ServerState::Provisioned, Step::Idle)
            } else {
                leave(status, lc, now)
            }
        }
        ServerState::Provisioning => {
            let target = status.boot_attempt.as_ref().and(wanted);
            let Some(image) = target else {
                return leave(status, lc, now);
            };
            provisioning(status, image, lc, now)
        }
        ServerState::Deprovisioning => deprovisioning(status, lc, now),
        ServerState::Standby => standby(status, lc, now),
        other => (other, Step::Idle),
    }
}

/// Where a server that may wait warm goes once the ramdisk's work is done (inspection or
/// cleaning): Standby when the gate admits it, else Available.
pub fn idle_state(lc: &Lifecycle<'_>) -> ServerState {
    if lc.standby == Gate::Admit && !lc.deleting {
        ServerState::Standby
    } else {
        ServerState::Available
    }
}

/// On standby: hand an image to the waiting agent, give up a silent agent, or leave when the
/// policy or the budget no longer allow it.
fn standby(status: &mut ServerStatus, lc: &Lifecycle<'_>, now: &Time) -> (ServerState, Step) {
    let Some(attempt) = status.boot_attempt.clone() else {
        return (
            ServerState::Available,
            Step::Act(
                PowerAction::Off,
                "on standby without a boot attempt: no agent to hand work to; powering off".into(),
            ),
        );
    };
    let heard = last_heartbeat(status, &attempt);
    if elapsed(&heard, now) > lc.heartbeat_timeout {
        status.last_error = Some(format!(
            "the standby agent was silent for more than {} s; powered off",
            lc.heartbeat_timeout.as_secs()
        ));
        return (
            ServerState::Available,
            Step::Act(
                PowerAction::Off,
                format!(
                    "standby agent silent since {}; powering off through the BMC",
                    heard.0
                ),
            ),
        );
    }
    // An image goes to the waiting agent even when the gate now refuses standby: provisioning
    // commits the power either way, and the warm path is the faster one.
    let wanted = lc
        .image
        .filter(|_| !lc.deleting && !lc.externally_provisioned);
    let Some(image) = wanted else {
        if lc.deleting || lc.standby != Gate::Admit {
            // The agent's next task is PowerOff (the server is no longer Standby).
            return (ServerState::Available, Step::Idle);
        }
        if let Some(why) = &lc.refresh {
            // Back through the ramdisk as an inspection; standbySince (the seat) is kept.
            open_attempt(status, BootPurpose::Inspect, 1, now);
            return (
                ServerState::Inspecting,
                Step::Act(PowerAction::Netboot, why.clone()),
            );
        }
        return (ServerState::Standby, Step::Idle);
    };
    match &lc.allocation {
        Err((reason, message)) => (ServerState::Standby, Step::Blocked(reason, message.clone())),
        Ok(address) => {
            grant(status, address.as_deref());
            status.error_count = 0;
            let stamp = now.0.as_millisecond();
            status.boot_attempt = Some(BootAttempt {
                id: format!("{}-{stamp}-1", BootPurpose::Provision.mode()),
                purpose: BootPurpose::Provision,
                requested_at: now.clone(),
                try_number: 1,
                disk_boot_at: None,
                ramdisk_attempt: Some(attempt.credential_attempt().to_string()),
                kexec_at: None,
            });
            (
                ServerState::Provisioning,
                Step::Wait(
                    "HandingOver",
                    format!("handing {} to the agent waiting on standby", image.url),
                ),
            )
        }
    }
}

/// The standby agent's last sign of life: its heartbeat, registration or last result in the
/// record of the attempt that booted its ramdisk (or the attempt itself, when nothing is
/// recorded).
fn last_heartbeat(status: &ServerStatus, attempt: &BootAttempt) -> Time {
    let ramdisk = attempt.credential_attempt();
    status
        .boot_progress
        .as_ref()
        .filter(|p| p.attempt == attempt.id || p.attempt == ramdisk)
        .and_then(|p| {
            [
                p.heartbeat_at.as_ref(),
                p.result_at.as_ref(),
                p.called_back_at.as_ref(),
            ]
            .into_iter()
            .flatten()
            .max_by_key(|t| t.0)
            .cloned()
        })
        .unwrap_or_else(|| attempt.requested_at.clone())
}

/// Records the node address granted for provisioning.
fn grant(status: &mut ServerStatus, address: Option<&str>) {
    if let Some(a) = address {
        status.addresses.retain(|x| x.network != NODE_NETWORK);
        status.addresses.push(AllocatedAddress {
            network: NODE_NETWORK.into(),
            address: a.to_string(),
        });
    }
}

/// The server was being imaged or cleaned (not inspected) when it failed.
fn imaging(status: &ServerStatus) -> bool {
    status
        .boot_attempt
        .as_ref()
        .is_some_and(|a| a.purpose != BootPurpose::Inspect)
        || status.node_address().is_some()
}

/// The record of the open attempt, when the boot services wrote one for it.
fn progress_of(status: &ServerStatus) -> Option<&BootProgress> {
    let attempt = status.boot_attempt.as_ref()?;
    status
        .boot_progress
        .as_ref()
        .filter(|p| p.attempt == attempt.id)
}

fn provisioning(
    status: &mut ServerStatus,
    image: &Image,
    lc: &Lifecycle<'_>,
    now: &Time,
) -> (ServerState, Step) {
    let progress = progress_of(status).cloned();
    let result = progress.as_ref().and_then(|p| p.result.clone());
    let disk_boot = status
        .boot_attempt
        .as_ref()
        .and_then(|a| a.disk_boot_at.clone());
    let kexec_at = status
        .boot_attempt
        .as_ref()
        .and_then(|a| a.kexec_at.clone());
    let checked_in = progress.as_ref().is_some_and(|p| p.checked_in_at.is_some());
    match (result, disk_boot) {
        (Some(r), _) if !r.ok => fail(
            status,
            r.reason.as_deref().unwrap_or(PROVISIONING_FAILED),
            format!(
                "writing the image failed: {}",
                r.message.as_deref().unwrap_or("no message")
            ),
        ),
        (Some(r), None) => match (kexec_at, r.kexec) {
            (None, Some(KexecOutcome::Loaded)) => {
                if let Some(a) = status.boot_attempt.as_mut() {
                    a.kexec_at = Some(now.clone());
                }
                (
                    ServerState::Provisioning,
                    Step::Wait(
                        "WaitingForFirstBoot",
                        "the agent kexecs into the installed OS; waiting for it to check in".into(),
                    ),
                )
            }
            (Some(_), _) if checked_in => done(status, image, r, progress.as_ref()),
            (Some(k), _) if elapsed(&k, now) <= KEXEC_CHECKIN_TIMEOUT => (
                ServerState::Provisioning,
                Step::Wait(
                    "WaitingForFirstBoot",
                    "kexec into the installed OS; waiting for it to check in".into(),
                ),
            ),
            (kexec, outcome) => {
                if let Some(a) = status.boot_attempt.as_mut() {
                    a.disk_boot_at = Some(now.clone());
                }
                let what = match (kexec, outcome, r.adopted) {
                    (Some(_), _, _) => format!(
                        "no check-in {} s after the kexec",
                        KEXEC_CHECKIN_TIMEOUT.as_secs()
                    ),
                    (None, Some(KexecOutcome::NoBootEntry), _) => {
                        "image written; it declares no boot entry kexec can use".into()
                    }
                    (None, Some(KexecOutcome::LoadFailed), _) => {
                        "image written; the ramdisk's kernel refused to kexec it".into()
                    }
                    (None, _, true) => "the disk already holds the image (adopted)".into(),
                    (None, _, false) => "image written".into(),
                };
                (
                    ServerState::Provisioning,
                    Step::Act(
                        PowerAction::DiskBoot,
                        format!("{what}; booting the installed disk through the BMC"),
                    ),
                )
            }
        },
        (Some(r), Some(asked)) => {
            if checked_in {
                done(status, image, r, progress.as_ref())
            } else if elapsed(&asked, now) > lc.timeout {
                fail(
                    status,
                    "FirstBootTimedOut",
                    format!(
                        "the installed OS did not check in within {} s of the disk boot",
                        lc.timeout.as_secs()
                    ),
                )
            } else {
                (
                    ServerState::Provisioning,
                    Step::Wait(
                        "WaitingForFirstBoot",
                        "booting the installed disk; waiting for the OS to check in".into(),
                    ),
                )
            }
        }
        (None, _) => ramdisk_wait(status, ServerState::Provisioning, lc, now),
    }
}

/// The installed OS checked in: Provisioned, with the provisioning's sub-phases.
fn done(
    status: &mut ServerStatus,
    image: &Image,
    r: crds::server::TaskOutcome,
    progress: Option<&BootProgress>,
) -> (ServerState, Step) {
    status.provisioned_image = Some(provisioned(image, r.device, r.adopted));
    if let (Some(a), Some(p)) = (status.boot_attempt.clone(), progress) {
        record_phases(status, &a, p);
    }
    (ServerState::Provisioned, Step::Idle)
}

fn deprovisioning(
    status: &mut ServerStatus,
    lc: &Lifecycle<'_>,
    now: &Time,
) -> (ServerState, Step) {
    match progress_of(status).and_then(|p| p.result.clone()) {
        Some(r) if r.ok => {
            release(status);
            (idle_state(lc), Step::Idle)
        }
        Some(r) => fail(
            status,
            r.reason
                .as_deref()
                .or(FailureReason::CleaningFailed.condition_reason())
                .unwrap_or(PROVISIONING_FAILED),
            format!(
                "cleaning failed: {}",
                r.message.as_deref().unwrap_or("no message")
            ),
        ),
        None => ramdisk_wait(status, ServerState::Deprovisioning, lc, now),
    }
}

/// Waiting for the agent's result: times out (and retries with a fresh attempt) when neither
/// the boot nor the agent made progress within the timeout.
fn ramdisk_wait(
    status: &mut ServerStatus,
    state: ServerState,
    lc: &Lifecycle<'_>,
    now: &Time,
) -> (ServerState, Step) {
    let Some(attempt) = status.boot_attempt.clone() else {
        return fail(
            status,
            "NoBootAttempt",
            format!("{} without a boot attempt", state.as_str()),
        );
    };
    let progress = progress_of(status);
    let (last_at, last) = last_sign_of_life(&attempt, progress);
    // A warm attempt whose agent has not taken the task yet is retried cold soon: the agent
    // on standby answers within a long-poll, or it is gone.
    let timeout = if attempt.ramdisk_attempt.is_some() && progress.is_none() {
        lc.timeout.min(lc.heartbeat_timeout)
    } else {
        lc.timeout
    };
    if elapsed(&last_at, now) <= timeout {
        let message = match progress.and_then(|p| p.progress.as_ref()) {
            Some(p) if p.bytes_total > 0 => format!(
                "agent {}: {} of {} MiB at {} MiB/s",
                p.phase,
                p.bytes_done >> 20,
                p.bytes_total >> 20,
                p.bytes_per_second >> 20
            ),
            Some(p) => format!("agent {}: {} MiB", p.phase, p.bytes_done >> 20),
            None => format!("waiting for the ramdisk; last step: {last}"),
        };
        return (state, Step::Wait("WaitingForRamdisk", message));
    }
    let message = format!(
        "no sign of the ramdisk for {} s (try {} of {MAX_TRIES}); last step: {last}",
        timeout.as_secs(),
        attempt.try_number
    );
    if attempt.try_number < MAX_TRIES {
        status.last_error = Some(message);
        let step = open_attempt(status, attempt.purpose, attempt.try_number + 1, now);
        (state, step)
    } else {
        fail(status, "RamdiskTimedOut", message)
    }
}

/// The latest thing the boot services saw of the attempt, and its name.
fn last_sign_of_life(attempt: &BootAttempt, p: Option<&BootProgress>) -> (Time, &'static str) {
    let seen = p.map(|p| {
        [
            (p.progress.as_ref().map(|x| &x.at), "agent progress"),
            (p.called_back_at.as_ref(), "agent registered"),
            (p.initrd_at.as_ref(), "initrd fetched"),
            (p.kernel_at.as_ref(), "kernel fetched"),
            (p.script_at.as_ref(), "iPXE script served"),
            (p.dhcp_at.as_ref(), "DHCP acknowledged"),
        ]
    });
    seen.into_iter()
        .flatten()
        .filter_map(|(t, name)| t.map(|t| (t.clone(), name)))
        .max_by_key(|(t, _)| t.0)
        .unwrap_or((attempt.requested_at.clone(), "no DHCP request seen yet"))
}

/// Leaves Provisioning/Provisioned: clean first unless cleaning is disabled.
fn leave(status: &mut ServerStatus, lc: &Lifecycle<'_>, now: &Time) -> (ServerState, Step) {
    if lc.cleaning == CleaningMode::Disabled || lc.externally_provisioned {
        release(status);
        return (ServerState::Available, Step::Idle);
    }
    let step = open_attempt(status, BootPurpose::Clean, 1, now);
    (ServerState::Deprovisioning, step)
}

fn open_attempt(
    status: &mut ServerStatus,
    purpose: BootPurpose,
    try_number: u32,
    now: &Time,
) -> Step {
    let stamp = now.0.as_millisecond();
    status.boot_attempt = Some(BootAttempt {
        id: format!("{}-{stamp}-{try_number}", purpose.mode()),
        purpose,
        requested_at: now.clone(),
        try_number,
        disk_boot_at: None,
        ramdisk_attempt: None,
        kexec_at: None,
    });
    Step::Act(
        PowerAction::Netboot,
        format!(
            "network boot into the ramdisk to {} (try {try_number})",
            purpose.mode()
        ),
    )
}

fn fail(status: &mut ServerStatus, reason: &str, message: String) -> (ServerState, Step) {
    status.error_count = status.error_count.saturating_add(1);
    status.last_error = Some(message);
    status.last_error_reason = Some(reason.to_string());
    (ServerState::Error, Step::Idle)
}

/// Gives the node address back and forgets the installed image.
fn release(status: &mut ServerStatus) {
    status.addresses.retain(|a| a.network != NODE_NETWORK);
    status.provisioned_image = None;
}

fn provisioned(image: &Image, device: Option<String>, adopted: bool) -> ProvisionedImage {
    ProvisionedImage {
        url: image.url.clone(),
        checksum: image.checksum.clone(),
        device,
        adopted,
    }
}

/// The provisioning's sub-phases, from the boot services' record: a cold one from the power-on
/// through DHCP and the ramdisk, a warm one from the handoff to the agent on standby; the OS
/// boot by kexec or by the BMC (a kexec that never checked in is followed by a disk boot).
fn record_phases(status: &mut ServerStatus, a: &BootAttempt, p: &BootProgress) {
    let warm = a.ramdisk_attempt.is_some();
    let kexec_end = if a.disk_boot_at.is_none() {
        p.checked_in_at.as_ref()
    } else {
        None
    };
    let spans = [
        (
            "PowerOnToDHCP",
            Some(&a.requested_at).filter(|_| !warm),
            p.dhcp_at.as_ref(),
        ),
        ("RamdiskBoot", p.dhcp_at.as_ref(), p.called_back_at.as_ref()),
        (
            "StandbyToWrite",
            Some(&a.requested_at).filter(|_| warm),
            p.called_back_at.as_ref(),
        ),
        ("Image", p.called_back_at.as_ref(), p.result_at.as_ref()),
        ("Kexec", a.kexec_at.as_ref(), kexec_end),
        (
            "DiskBootToCheckIn",
            a.disk_boot_at.as_ref(),
            p.checked_in_at.as_ref(),
        ),
    ];
    for (name, start, end) in spans {
        if let (Some(s), Some(e)) = (start, end) {
            status.phases.push(PhaseTiming {
                name: name.into(),
                started_at: s.clone(),
                finished_at: Some(e.clone()),
                duration_ms: Some(elapsed(s, e).as_millis() as u64),
            });
        }
    }
}

fn elapsed(from: &Time, to: &Time) -> Duration {
    Duration::try_from(to.0.duration_since(from.0)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::server::{CheckIn, TaskOutcome, TaskProgress};

    fn t(secs: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_800_000_000 + secs).unwrap())
    }

    fn image() -> Image {
        Image {
            url: "http://img/os.raw".into(),
            checksum: format!("sha256:{}", "a".repeat(64)),
            ..Default::default()
        }
    }

    fn lc(image: Option<&Image>) -> Lifecycle<'_> {
        Lifecycle {
            image,
            externally_provisioned: false,
            deleting: false,
            cleaning: CleaningMode::Metadata,
            boot_mac: true,
            allocation: Ok(Some("10.20.0.15".into())),
            timeout: Duration::from_secs(60),
            spec_changed: false,
            standby: Gate::Off,
            heartbeat_timeout: Duration::from_secs(30),
            refresh: None,
        }
    }

    fn record(status: &mut ServerStatus, f: impl FnOnce(&mut BootProgress)) {
        let id = status.boot_attempt.as_ref().unwrap().id.clone();
        let p = status.boot_progress.get_or_insert_with(|| BootProgress {
            attempt: id.clone(),
            ..Default::default()
        });
        if p.attempt != id {
            *p = BootProgress {
                attempt: id,
                ..Default::default()
            };
        }
        f(p);
    }

    #[test]
    fn provisions_through_ramdisk_disk_boot_and_check_in_then_cleans_and_releases() {
        let img = image();
        let mut s = ServerStatus::default();
        let (state, step) = advance(ServerState::Available, &mut s, &lc(Some(&img)), &t(0));
        assert_eq!(state, ServerState::Provisioning);
        assert!(matches!(step, Step::Act(PowerAction::Netboot, _)));
        assert_eq!(s.addresses[0].address, "10.20.0.15");
        // Waiting while the agent writes.
        record(&mut s, |p| {
            p.dhcp_at = Some(t(5));
            p.called_back_at = Some(t(12));
            p.progress = Some(TaskProgress {
                phase: "write".into(),
                bytes_done: 10 << 20,
                bytes_total: 40 << 20,
                bytes_per_second: 5 << 20,
                at: t(50),
            });
        });
        let (state, step) = advance(state, &mut s, &lc(Some(&img)), &t(100));
        assert_eq!(state, ServerState::Provisioning);
        assert_eq!(
            step,
            Step::Wait(
                "WaitingForRamdisk",
                "agent write: 10 of 40 MiB at 5 MiB/s".into()
            )
        );
        // Result: boot the disk, once.
        record(&mut s, |p| {
            p.result_at = Some(t(110));
            p.result = Some(TaskOutcome {
                ok: true,
                device: Some("/dev/vda".into()),
                ..Default::default()
            });
        });
        let (state, step) = advance(state, &mut s, &lc(Some(&img)), &t(111));
        assert!(matches!(step, Step::Act(PowerAction::DiskBoot, _)));
        let (state, step) = advance(state, &mut s, &lc(Some(&img)), &t(112));
        assert!(matches!(step, Step::Wait("WaitingForFirstBoot", _)));
        record(&mut s, |p| {
            p.checked_in_at = Some(t(120));
            p.check_in = Some(CheckIn::default());
        });
        let (state, step) = advance(state, &mut s, &lc(Some(&img)), &t(121));
        assert_eq!((state, step), (ServerState::Provisioned, Step::Idle));
        let installed = s.provisioned_image.clone().unwrap();
        assert_eq!(installed.device.as_deref(), Some("/dev/vda"));
        let names: Vec<_> = s.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["PowerOnToDHCP", "RamdiskBoot", "Image", "DiskBootToCheckIn"]
        );
        assert_eq!(s.phases[2].duration_ms, Some(98_000));
        // Stays provisioned; removing the image cleans, then releases the address.
        assert_eq!(
            advance(state, &mut s, &lc(Some(&img)), &t(130)).0,
            ServerState::Provisioned
        );
        let (state, step) = advance(state, &mut s, &lc(None), &t(140));
        assert_eq!(state, ServerState::Deprovisioning);
        assert!(matches!(step, Step::Act(PowerAction::Netboot, _)));
        assert_eq!(s.boot_attempt.as_ref().unwrap().purpose, BootPurpose::Clean);
        record(&mut s, |p| {
            p.result = Some(TaskOutcome {
                ok: true,
                ..Default::default()
            })
        });
        let (state, _) = advance(state, &mut s, &lc(None), &t(150));
        assert_eq!(state, ServerState::Available);
        assert!(s.addresses.is_empty());
        assert!(s.provisioned_image.is_none());
    }

    /// A server on standby after inspection attempt `inspect-r1`, its agent registered at 0 s.
    fn on_standby() -> ServerStatus {
        let mut s = ServerStatus {
            boot_attempt: Some(BootAttempt {
                id: "inspect-r1".into(),
                purpose: BootPurpose::Inspect,
                requested_at: t(-10),
                try_number: 1,
                disk_boot_at: None,
                ramdisk_attempt: None,
                kexec_at: None,
            }),
            ..Default::default()
        };
        record(&mut s, |p| p.called_back_at = Some(t(0)));
        s
    }

    fn admitted(image: Option<&Image>) -> Lifecycle<'_> {
        Lifecycle {
            standby: Gate::Admit,
            ..lc(image)
        }
    }

    #[test]
    fn a_refresh_yields_to_an_image_and_to_a_closed_gate() {
        let refresh = || Some("the agent runs ramdisk sha256:old".to_string());
        // Due and admitted: back through the ramdisk as an inspection.
        let mut s = on_standby();
        let due = Lifecycle {
            refresh: refresh(),
            ..admitted(None)
        };
        let (state, step) = advance(ServerState::Standby, &mut s, &due, &t(5));
        assert_eq!(state, ServerState::Inspecting);
        assert!(matches!(step, Step::Act(PowerAction::Netboot, ref m) if m.contains("sha256:old")));
        // An image goes to the waiting agent, however old its ramdisk.
        let img = image();
        let mut s = on_standby();
        let wanted = Lifecycle {
            refresh: refresh(),
            ..admitted(Some(&img))
        };
        let (state, _) = advance(ServerState::Standby, &mut s, &wanted, &t(5));
        assert_eq!(state, ServerState::Provisioning);
        // A closed gate powers it off instead: nothing to refresh.
        let mut s = on_standby();
        let closed = Lifecycle {
            refresh: refresh(),
            standby: Gate::Refuse("OverBudget", "full".into()),
            ..lc(None)
        };
        let (state, step) = advance(ServerState::Standby, &mut s, &closed, &t(5));
        assert_eq!((state, step), (ServerState::Available, Step::Idle));
    }

    #[test]
    fn cleaning_ends_on_standby_when_admitted_else_available() {
        let img = image();
        for (gate, to) in [
            (Gate::Admit, ServerState::Standby),
            (Gate::Off, ServerState::Available),
            (
                Gate::Refuse("OverBudget", "no room".into()),
                ServerState::Available,
            ),
        ] {
            let mut s = ServerStatus::default();
            advance(ServerState::Available, &mut s, &lc(Some(&img)), &t(0));
            record(&mut s, |p| {
                p.result = Some(TaskOutcome {
                    ok: true,
                    ..Default::default()
                })
            });
            s.provisioned_image = Some(provisioned(&img, None, false));
            let (state, step) = advance(ServerState::Provisioned, &mut s, &lc(None), &t(2));
            assert_eq!(state, ServerState::Deprovisioning);
            assert!(matches!(step, Step::Act(PowerAction::Netboot, _)));
            record(&mut s, |p| {
                p.result = Some(TaskOutcome {
                    ok: true,
                    ..Default::default()
                })
            });
            let release = Lifecycle {
                standby: gate.clone(),
                ..lc(None)
            };
            let (state, step) = advance(state, &mut s, &release, &t(3));
            assert_eq!((state, step), (to, Step::Idle), "{gate:?}");
            assert!(s.addresses.is_empty());
        }
        assert_eq!(idle_state(&admitted(None)), ServerState::Standby);
        let deleting = Lifecycle {
            deleting: true,
            ..admitted(None)
        };
        assert_eq!(idle_state(&deleting), ServerState::Available);
    }

    #[test]
    fn standby_waits_while_the_agent_beats_and_falls_back_when_it_falls_silent() {
        let mut s = on_standby();
        // 30 s heartbeat timeout in tests: silent for 20 s is fine.
        assert_eq!(
            advance(ServerState::Standby, &mut s, &admitted(None), &t(20)),
            (ServerState::Standby, Step::Idle)
        );
        record(&mut s, |p| p.heartbeat_at = Some(t(25)));
        assert_eq!(
            advance(ServerState::Standby, &mut s, &admitted(None), &t(50)),
            (ServerState::Standby, Step::Idle)
        );
        // Silent past the timeout: Available, powered off through the BMC (nobody else will).
        let (state, step) = advance(ServerState::Standby, &mut s, &admitted(None), &t(56));
        assert_eq!(state, ServerState::Available);
        assert!(matches!(step, Step::Act(PowerAction::Off, ref m) if m.contains("silent")));
        assert!(s.last_error.as_deref().unwrap().contains("silent"));
    }

    #[test]
    fn standby_ends_when_the_gate_closes_or_the_server_goes() {
        for lc in [
            lc(None),
            Lifecycle {
                standby: Gate::Refuse("OverBudget", "a cold provisioning needs the power".into()),
                ..lc(None)
            },
            Lifecycle {
                deleting: true,
                ..admitted(None)
            },
        ] {
            let mut s = on_standby();
            // The agent is told PowerOff by the agent API once the server is not Standby.
            assert_eq!(
                advance(ServerState::Standby, &mut s, &lc, &t(5)),
                (ServerState::Available, Step::Idle)
            );
        }
    }

    #[test]
    fn an_image_on_standby_opens_a_warm_attempt_without_a_power_action() {
        let img = image();
        let mut s = on_standby();
        // Even with the gate closed: provisioning commits the power anyway, warm is faster.
        let closed = Lifecycle {
            standby: Gate::Refuse("OverBudget", "full".into()),
            ..lc(Some(&img))
        };
        let (state, step) = advance(ServerState::Standby, &mut s, &closed, &t(5));
        assert_eq!(state, ServerState::Provisioning);
        assert!(matches!(step, Step::Wait("HandingOver", _)), "{step:?}");
        let warm = s.boot_attempt.clone().unwrap();
        assert_eq!(warm.purpose, BootPurpose::Provision);
        assert_eq!(warm.ramdisk_attempt.as_deref(), Some("inspect-r1"));
        assert_eq!(warm.credential_attempt(), "inspect-r1");
        assert_ne!(warm.id, "inspect-r1");
        assert_eq!(s.addresses[0].address, "10.20.0.15");
        // A warm attempt handed over again (say a second warm attempt) keeps naming the
        // attempt that booted the ramdisk, never itself.
        let mut again = s.clone();
        let (_, _) = advance(
            ServerState::Standby,
            &mut again,
            &admitted(Some(&img)),
            &t(6),
        );
        assert_eq!(
            again.boot_attempt.unwrap().ramdisk_attempt.as_deref(),
            Some("inspect-r1")
        );
        // No address: blocked, still on standby, nothing opened.
        let mut s = on_standby();
        let full = Lifecycle {
            allocation: Err(("PoolExhausted", "no free address".into())),
            ..admitted(Some(&img))
        };
        assert!(matches!(
            advance(ServerState::Standby, &mut s, &full, &t(5)),
            (ServerState::Standby, Step::Blocked("PoolExhausted", _))
        ));
        assert_eq!(s.boot_attempt.unwrap().id, "inspect-r1");
    }

    #[test]
    fn warm_provisioning_kexecs_and_records_warm_phases() {
        let img = image();
        let mut s = on_standby();
        let (state, _) = advance(ServerState::Standby, &mut s, &admitted(Some(&img)), &t(10));
        // The agent API starts the new attempt's record at the handoff.
        record(&mut s, |p| p.called_back_at = Some(t(11)));
        record(&mut s, |p| {
            p.result_at = Some(t(15));
            p.result = Some(TaskOutcome {
                ok: true,
                device: Some("/dev/vda".into()),
                kexec: Some(KexecOutcome::Loaded),
                ..Default::default()
            });
        });
        let (state, step) = advance(state, &mut s, &lc(Some(&img)), &t(16));
        assert_eq!(state, ServerState::Provisioning);
        assert!(
            matches!(step, Step::Wait("WaitingForFirstBoot", _)),
            "{step:?}"
        );
        let a = s.boot_attempt.clone().unwrap();
        assert_eq!((a.kexec_at, a.disk_boot_at), (Some(t(16)), None));
        // Still waiting within the kexec check-in timeout: no BMC action.
        assert!(matches!(
            advance(state, &mut s, &lc(Some(&img)), &t(100)).1,
            Step::Wait("WaitingForFirstBoot", _)
        ));
        record(&mut s, |p| p.checked_in_at = Some(t(20)));
        let (state, step) = advance(state, &mut s, &lc(Some(&img)), &t(101));
        assert_eq!((state, step), (ServerState::Provisioned, Step::Idle));
        let phases: Vec<_> = s
            .phases
            .iter()
            .map(|p| (p.name.as_str(), p.duration_ms))
            .collect();
        assert_eq!(
            phases,
            [
                ("StandbyToWrite", Some(1_000)),
                ("Image", Some(4_000)),
                ("Kexec", Some(4_000))
            ]
        );
    }

    #[test]
    fn kexec_unavailable_or_silent_falls_back_to_the_bmc_disk_boot() {
        let img = image();
        for outcome in [
            None,
            Some(KexecOutcome::NoBootEntry),
            Some(KexecOutcome::LoadFailed),
        ] {
            let mut s = on_standby();
            let (state, _) = advance(ServerState::Standby, &mut s, &admitted(Some(&img)), &t(10));
            record(&mut s, |p| {
                p.called_back_at = Some(t(11));
                p.result = Some(TaskOutcome {
                    ok: true,
                    kexec: outcome,
                    ..Default::default()
                });
            });
            let (_, step) = advance(state, &mut s, &lc(Some(&img)), &t(16));
            assert!(
                matches!(step, Step::Act(PowerAction::DiskBoot, _)),
                "{outcome:?}: {step:?}"
            );
        }
        // Loaded, but the OS never checks in: one BMC disk boot after the kexec timeout.
        let mut s = on_standby();
        let (state, _) = advance(ServerState::Standby, &mut s, &admitted(Some(&img)), &t(10));
        record(&mut s, |p| {
            p.called_back_at = Some(t(11));
            p.result = Some(TaskOutcome {
                ok: true,
                kexec: Some(KexecOutcome::Loaded),
                ..Default::default()
            });
        });
        let (state, _) = advance(state, &mut s, &lc(Some(&img)), &t(16));
        let late = t(16 + KEXEC_CHECKIN_TIMEOUT.as_secs() as i64 + 1);
        let (state, step) = advance(state, &mut s, &lc(Some(&img)), &late);
        assert!(
            matches!(step, Step::Act(PowerAction::DiskBoot, ref m) if m.contains("after the kexec"))
        );
        // Then the ordinary first-boot wait; the check-in records the disk boot's phase.
        assert!(matches!(
            advance(state, &mut s, &lc(Some(&img)), &late).1,
            Step::Wait("WaitingForFirstBoot", _)
        ));
        record(&mut s, |p| p.checked_in_at = Some(late.clone()));
        let (state, _) = advance(state, &mut s, &lc(Some(&img)), &late);
        assert_eq!(state, ServerState::Provisioned);
        let names: Vec<_> = s.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["StandbyToWrite", "DiskBootToCheckIn"]);
    }

    #[test]
    fn a_warm_handoff_nobody_takes_is_retried_cold() {
        let img = image();
        let mut s = on_standby();
        let (state, _) = advance(ServerState::Standby, &mut s, &admitted(Some(&img)), &t(10));
        // Within the heartbeat timeout (30 s here): waiting for the agent.
        assert!(matches!(
            advance(state, &mut s, &lc(Some(&img)), &t(35)).1,
            Step::Wait("WaitingForRamdisk", _)
        ));
        // Past it, well before the ramdisk timeout (60 s): try 2, a network boot.
        let (state, step) = advance(state, &mut s, &lc(Some(&img)), &t(41));
        assert_eq!(state, ServerState::Provisioning);
        assert!(
            matches!(step, Step::Act(PowerAction::Netboot, _)),
            "{step:?}"
        );
        let cold = s.boot_attempt.unwrap();
        assert_eq!((cold.try_number, cold.ramdisk_attempt), (2, None));
    }

    #[test]
    fn every_agent_failure_reason_is_a_condition_reason_as_is() {
        for r in FailureReason::condition_reasons().chain(OWN_REASONS.iter().copied()) {
            assert_eq!(known_reason(Some(r)), r);
        }
        assert_eq!(known_reason(Some("CleaningFailed")), "CleaningFailed");
        assert_eq!(known_reason(Some("SomethingNew")), PROVISIONING_FAILED);
        assert_eq!(known_reason(None), PROVISIONING_FAILED);
    }

    #[test]
    fn agent_failure_is_an_error_with_its_reason_and_an_edit_retries() {
        let img = image();
        let mut s = ServerStatus::default();
        let (state, _) = advance(ServerState::Available, &mut s, &lc(Some(&img)), &t(0));
        record(&mut s, |p| {
            p.result = Some(TaskOutcome {
                ok: false,
                reason: Some("ChecksumMismatch".into()),
                message: Some("sha256 differs".into()),
                ..Default::default()
            })
        });
        let (state, step) = advance(state, &mut s, &lc(Some(&img)), &t(10));
        assert_eq!((state, step), (ServerState::Error, Step::Idle));
        assert_eq!(s.last_error_reason.as_deref(), Some("ChecksumMismatch"));
        assert!(s.last_error.as_deref().unwrap().contains("sha256 differs"));
        // Error holds until the spec changes; the address is kept for the retry.
        assert_eq!(
            advance(state, &mut s, &lc(Some(&img)), &t(20)).0,
            ServerState::Error
        );
        let mut edited = lc(Some(&img));
        edited.spec_changed = true;
        let (state, step) = advance(state, &mut s, &edited, &t(30));
        assert_eq!(state, ServerState::Provisioning);
        assert!(matches!(step, Step::Act(PowerAction::Netboot, _)));
    }

    #[test]
    fn a_silent_ramdisk_is_retried_then_fails() {
        let img = image();
        let mut s = ServerStatus::default();
        let (mut state, _) = advance(ServerState::Available, &mut s, &lc(Some(&img)), &t(0));
        let first = s.boot_attempt.clone().unwrap();
        // Progress keeps it alive past the timeout counted from the request.
        record(&mut s, |p| {
            p.progress = Some(TaskProgress {
                phase: "write".into(),
                bytes_done: 0,
                bytes_total: 0,
                bytes_per_second: 0,
                at: t(50),
            })
        });
        assert!(matches!(
            advance(state, &mut s, &lc(Some(&img)), &t(100)).1,
            Step::Wait(..)
        ));
        for try_number in 2..=MAX_TRIES {
            let now = t(1000 * i64::from(try_number));
            let (next, step) = advance(state, &mut s, &lc(Some(&img)), &now);
            state = next;
            assert_eq!(state, ServerState::Provisioning);
            assert!(matches!(step, Step::Act(PowerAction::Netboot, _)));
            let a = s.boot_attempt.clone().unwrap();
            assert_eq!(a.try_number, try_number);
            assert_ne!(a.id, first.id);
        }
        let (state, _) = advance(state, &mut s, &lc(Some(&img)), &t(9000));
        assert_eq!(state, ServerState::Error);
        assert_eq!(s.last_error_reason.as_deref(), Some("RamdiskTimedOut"));
        // The address stays with the server until the image is removed or it is deleted.
        assert_eq!(s.addresses.len(), 1);
        let mut deleting = lc(Some(&img));
        deleting.deleting = true;
        assert_eq!(
            advance(state, &mut s, &deleting, &t(9001)).0,
            ServerState::Available
        );
        assert!(s.addresses.is_empty());
    }

    #[test]
    fn adoption_and_external_provisioning_write_nothing() {
        let img = image();
        let mut s = ServerStatus::default();
        let mut ext = lc(Some(&img));
        ext.externally_provisioned = true;
        assert!(!needs_address(None, &ext));
        let (state, step) = advance(ServerState::Available, &mut s, &ext, &t(0));
        assert_eq!((state, step), (ServerState::Provisioned, Step::Idle));
        assert!(s.provisioned_image.as_ref().unwrap().adopted);
        assert!(s.boot_attempt.is_none());
        // Deleting an externally provisioned server never cleans it.
        ext.deleting = true;
        assert_eq!(
            advance(state, &mut s, &ext, &t(1)),
            (ServerState::Available, Step::Idle)
        );
    }

    #[test]
    fn refusals_block_without_an_attempt() {
        let img = image();
        let mut s = ServerStatus::default();
        let mut no_mac = lc(Some(&img));
        no_mac.boot_mac = false;
        assert!(matches!(
            advance(ServerState::Available, &mut s, &no_mac, &t(0)).1,
            Step::Blocked("NoBootMAC", _)
        ));
        let mut full = lc(Some(&img));
        full.allocation = Err(("IPPoolExhausted", "no free address".into()));
        assert!(matches!(
            advance(ServerState::Available, &mut s, &full, &t(0)).1,
            Step::Blocked("IPPoolExhausted", _)
        ));
        assert!(s.boot_attempt.is_none());
        // Cleaning disabled: removing the image releases at once.
        let mut s = ServerStatus {
            provisioned_image: Some(provisioned(&img, None, false)),
            addresses: vec![AllocatedAddress {
                network: NODE_NETWORK.into(),
                address: "10.20.0.15".into(),
            }],
            ..Default::default()
        };
        let mut none = lc(None);
        none.cleaning = CleaningMode::Disabled;
        assert_eq!(
            advance(ServerState::Provisioned, &mut s, &none, &t(0)),
            (ServerState::Available, Step::Idle)
        );
        assert!(s.addresses.is_empty());
    }
}
