//! Provisioning lifecycle (pure): Available → Provisioning → Provisioned → Deprovisioning →
//! Available, driven by `spec.image`, the agent's results and the installed OS's check-in.
//!
//! Each ramdisk visit is a [`BootAttempt`]; the boot services record what happened to it in
//! `status.bootProgress` (DHCP … agent registered, progress, result, first check-in). This
//! module reads that record and says what comes next.

use std::time::Duration;

use crds::server::{
    AllocatedAddress, BootAttempt, BootProgress, BootPurpose, CleaningMode, Image, NODE_NETWORK,
    PhaseTiming, ProvisionedImage, ServerState, ServerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use proto::agent_v1::FailureReason;

use super::action::PowerAction;

/// A timed-out ramdisk visit is retried this many times in all before the server goes to Error.
pub const MAX_TRIES: u32 = 3;

/// The lifecycle's own failure reasons; the agent's are [`FailureReason`]s.
const OWN_REASONS: &[&str] = &["RamdiskTimedOut", "FirstBootTimedOut", "NoBootAttempt"];

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
            ServerState::Registering | ServerState::Available | ServerState::Error
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
                    if let Some(a) = address {
                        status.addresses.retain(|x| x.network != NODE_NETWORK);
                        status.addresses.push(AllocatedAddress {
                            network: NODE_NETWORK.into(),
                            address: a.clone(),
                        });
                    }
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
        other => (other, Step::Idle),
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
    match (result, disk_boot) {
        (Some(r), _) if !r.ok => fail(
            status,
            r.reason.as_deref().unwrap_or(PROVISIONING_FAILED),
            format!(
                "writing the image failed: {}",
                r.message.as_deref().unwrap_or("no message")
            ),
        ),
        (Some(r), None) => {
            if let Some(a) = status.boot_attempt.as_mut() {
                a.disk_boot_at = Some(now.clone());
            }
            let what = if r.adopted {
                "the disk already holds the image (adopted)"
            } else {
                "image written"
            };
            (
                ServerState::Provisioning,
                Step::Act(
                    PowerAction::DiskBoot,
                    format!("{what}; booting the installed disk through the BMC"),
                ),
            )
        }
        (Some(r), Some(asked)) => {
            if progress.as_ref().is_some_and(|p| p.checked_in_at.is_some()) {
                status.provisioned_image = Some(provisioned(image, r.device, r.adopted));
                if let (Some(a), Some(p)) = (status.boot_attempt.clone(), progress.as_ref()) {
                    record_phases(status, &a, p);
                }
                (ServerState::Provisioned, Step::Idle)
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

fn deprovisioning(
    status: &mut ServerStatus,
    lc: &Lifecycle<'_>,
    now: &Time,
) -> (ServerState, Step) {
    match progress_of(status).and_then(|p| p.result.clone()) {
        Some(r) if r.ok => {
            release(status);
            (ServerState::Available, Step::Idle)
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
    if elapsed(&last_at, now) <= lc.timeout {
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
        lc.timeout.as_secs(),
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

/// The provisioning's sub-phases, from the boot services' record.
fn record_phases(status: &mut ServerStatus, a: &BootAttempt, p: &BootProgress) {
    let spans = [
        ("PowerOnToDHCP", Some(&a.requested_at), p.dhcp_at.as_ref()),
        ("RamdiskBoot", p.dhcp_at.as_ref(), p.called_back_at.as_ref()),
        ("Image", p.called_back_at.as_ref(), p.result_at.as_ref()),
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
