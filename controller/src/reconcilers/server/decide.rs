//! Decide stage (pure): the Server's state machine, the power action to take, and its status.

use std::time::Duration;

use crds::ConditionStatus;
use crds::condition_types::{BMC_REACHABLE, CREDENTIALS_VALID, POWER_MATCHES_SPEC, STANDBY};
use crds::reasons::{PENDING, PROGRESSING, RECONCILED};
use crds::server::{
    BootAttempt, BootPurpose, PhaseTiming, PowerState, ServerState, ServerStatus, SystemIdentity,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::action::PowerAction;
use super::lifecycle::{self, Lifecycle, Step};
use super::refresh;
use super::standby::Gate;
use crate::reconcilers::references::{Unresolved, references_resolved};
use kube_kit::conditions::{Blocker, Desired, kstatus, merge};

/// A state change the apply stage logs.
#[derive(Debug, PartialEq, Eq)]
pub struct Transition {
    /// State before (None for a new Server).
    pub from: Option<ServerState>,
    /// State after.
    pub to: ServerState,
}

/// What the BMC observation came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bmc {
    /// The spec has no BMC.
    Absent,
    /// Power state and, when read, identity.
    Observed {
        /// Power.
        power: PowerState,
        /// Identity.
        identity: Option<SystemIdentity>,
    },
    /// The BMC answered but refused the credentials (or they are incomplete).
    CredentialsRejected {
        /// Reason.
        reason: &'static str,
        /// Message.
        message: String,
    },
    /// The BMC could not be reached or answered nonsense.
    Unreachable {
        /// Reason.
        reason: &'static str,
        /// Message.
        message: String,
    },
}

/// Everything decide needs.
pub struct Inputs<'a> {
    /// metadata.generation.
    pub generation: Option<i64>,
    /// Unresolved references.
    pub unresolved: &'a [Unresolved],
    /// The BMC observation.
    pub bmc: Bmc,
    /// spec.online.
    pub online: bool,
    /// The `groundwork.dev/reboot` request id, if any.
    pub reboot_request: Option<&'a str>,
    /// The `groundwork.dev/inspect` request id, if any.
    pub inspect_request: Option<&'a str>,
    /// Whether spec.bootMACAddress is set (the boot services can only answer a known MAC).
    pub boot_mac: bool,
    /// The Server was created by auto-enrolment: it starts Discovered.
    pub discovered: bool,
    /// Current status.
    pub current: Option<&'a ServerStatus>,
    /// Now.
    pub now: &'a Time,
    /// The provisioning lifecycle's inputs.
    pub lifecycle: Lifecycle<'a>,
}

/// The outcome of deciding.
#[derive(Debug, PartialEq)]
pub struct Decision {
    /// Desired status.
    pub status: ServerStatus,
    /// State change, if any.
    pub transition: Option<Transition>,
    /// Power action to take after writing the status.
    pub action: Option<PowerAction>,
    /// When to look again.
    pub requeue: Duration,
    /// Requests refused, as (reason, message), for Warning Events.
    pub refused: Vec<(&'static str, String)>,
}

/// Retry delay after `errors` consecutive failures: 5 s doubling up to 5 min.
pub fn backoff(errors: u32) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << errors.min(6)).min(300))
}

/// While a power change is pending, poll the BMC this often (BMCs apply changes seconds later).
pub const POWER_POLL: Duration = Duration::from_secs(2);

/// How long an inspection may wait for the ramdisk's callback.
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// Phases kept in status.
pub const MAX_PHASES: usize = 32;

/// After a ramdisk attempt ends, its agent powers the machine off by itself (no BMC command
/// of ours): the BMC is polled this long after the agent's last report, so the power-off is
/// seen (and spec.online enforced again) in seconds rather than at the next resync.
pub const AGENT_POWER_OFF_WINDOW: Duration = Duration::from_secs(60);

/// While waiting for the ramdisk, look again this often (its callback also triggers a look).
pub const RAMDISK_POLL: Duration = Duration::from_secs(30);

/// While on standby, look again this often (the heartbeat timeout is counted in minutes).
pub const STANDBY_POLL: Duration = Duration::from_secs(60);

/// A condition reason and its message.
type Note = (&'static str, String);

/// What the decide stages build up as they go: the status being written, the state, the
/// conditions beside the kstatus trio, the action for the apply stage and when to look again.
struct Draft {
    status: ServerStatus,
    state: ServerState,
    conditions: Vec<Desired>,
    action: Option<PowerAction>,
    requeue: Duration,
    refused: Vec<(&'static str, String)>,
}

/// Decides the Server's status and the next power action, as a sequence of stages: references,
/// the BMC's answer, a pending inspection request, the ramdisk of an inspection, the
/// provisioning lifecycle, power against spec.online, then the phase timeline and conditions.
pub fn decide(inp: &Inputs<'_>, resync: Duration) -> Decision {
    let previous = inp.current.and_then(|c| c.state);
    let mut status = inp.current.cloned().unwrap_or_default();
    status.observed_generation = inp.generation;
    let state = match previous {
        Some(s) => s,
        None if inp.discovered => ServerState::Discovered,
        None => ServerState::Registering,
    };
    let mut d = Draft {
        status,
        state,
        conditions: Vec::new(),
        action: None,
        requeue: resync,
        refused: Vec::new(),
    };
    let references = references_resolved(inp.unresolved);
    let blocker = match inp.unresolved.first() {
        Some(first) => Err(Blocker::Stalled {
            reason: first.reason,
            message: references.message.clone(),
        }),
        None => match &inp.bmc {
            Bmc::Absent => Err(Blocker::Progressing {
                reason: PENDING,
                message: "no BMC configured".into(),
            }),
            Bmc::CredentialsRejected { reason, message } => d.credentials_rejected(reason, message),
            Bmc::Unreachable { reason, message } => d.unreachable(reason, message),
            Bmc::Observed { power, identity } => d.observed(inp, *power, identity.as_ref()),
        },
    };

    let Draft {
        mut status,
        state,
        conditions,
        action,
        requeue,
        refused,
    } = d;
    let transition = (previous != Some(state)).then_some(Transition {
        from: previous,
        to: state,
    });
    if transition.is_some() {
        record_phase(&mut status, state, inp.now);
    }
    status.state = Some(state);
    status.standby_since = match state {
        // Kept through a refresh (Standby → Inspecting → Standby): the seat is the server's.
        ServerState::Standby => status.standby_since.or_else(|| Some(inp.now.clone())),
        ServerState::Inspecting => status.standby_since,
        _ => None,
    };

    let mut desired: Vec<Desired> = kstatus(blocker).into();
    desired.push(references);
    desired.extend(conditions);
    let current_conditions = inp
        .current
        .map(|c| c.conditions.as_slice())
        .unwrap_or_default();
    status.conditions = merge(current_conditions, &desired, inp.generation, inp.now);
    Decision {
        status,
        transition,
        action,
        requeue,
        refused,
    }
}

/// Closes the open phase and opens the one of `state` (keeping the most recent phases only:
/// a server cycles for years).
fn record_phase(status: &mut ServerStatus, state: ServerState, now: &Time) {
    for open in status.phases.iter_mut().filter(|p| p.finished_at.is_none()) {
        open.finished_at = Some(now.clone());
        open.duration_ms = duration_ms(&open.started_at, now);
    }
    let excess = status.phases.len().saturating_sub(MAX_PHASES - 1);
    status.phases.drain(..excess);
    status.phases.push(PhaseTiming {
        name: state.as_str().to_string(),
        started_at: now.clone(),
        finished_at: None,
        duration_ms: None,
    });
    status.state_since = Some(now.clone());
}

impl Draft {
    fn count_error(&mut self, message: &str) {
        self.status.error_count = self.status.error_count.saturating_add(1);
        self.status.last_error = Some(message.to_string());
        self.requeue = backoff(self.status.error_count);
    }

    fn credentials_rejected(&mut self, reason: &'static str, message: &str) -> Result<(), Blocker> {
        self.conditions.push(bmc_answers());
        self.conditions.push(Desired::new(
            CREDENTIALS_VALID,
            ConditionStatus::False,
            reason,
            message.to_string(),
        ));
        self.count_error(message);
        Err(Blocker::Stalled {
            reason,
            message: format!("BMC credentials rejected: {message}"),
        })
    }

    fn unreachable(&mut self, reason: &'static str, message: &str) -> Result<(), Blocker> {
        self.conditions.push(Desired::new(
            BMC_REACHABLE,
            ConditionStatus::False,
            reason,
            message.to_string(),
        ));
        self.conditions.push(Desired::new(
            CREDENTIALS_VALID,
            ConditionStatus::Unknown,
            reason,
            "the BMC did not answer",
        ));
        self.count_error(message);
        self.status.power_state = Some(PowerState::Unknown);
        Err(Blocker::Progressing {
            reason,
            message: format!(
                "BMC unreachable, retrying in {}s: {message}",
                self.requeue.as_secs()
            ),
        })
    }

    /// The BMC answered: identity, requests, the ramdisk, the lifecycle, then power.
    fn observed(
        &mut self,
        inp: &Inputs<'_>,
        power: PowerState,
        identity: Option<&SystemIdentity>,
    ) -> Result<(), Blocker> {
        self.conditions.push(bmc_answers());
        self.conditions.push(Desired::new(
            CREDENTIALS_VALID,
            ConditionStatus::True,
            RECONCILED,
            "the BMC accepts the credentials",
        ));
        if self.state != ServerState::Error {
            self.status.error_count = 0;
            self.status.last_error = None;
            self.status.last_error_reason = None;
        }
        self.status.power_state = Some(power);
        if let Some(id) = identity {
            self.status.identity = Some(id.clone());
        }
        if self.state == ServerState::Registering && self.status.identity.is_some() {
            self.state = ServerState::Available;
        }
        self.inspect_request(inp);
        let waiting = self.inspection(inp);
        let (work, blocked) = self.lifecycle(inp);
        self.standby_condition(&inp.lifecycle.standby);
        self.power(inp, power, work, waiting, blocked)
    }

    /// The `Standby` condition, for servers whose policy asks for standby.
    fn standby_condition(&mut self, gate: &Gate) {
        let condition = match (gate, self.state) {
            (Gate::Off, _) => return,
            (_, ServerState::Standby) => {
                self.requeue = self.requeue.min(STANDBY_POLL);
                Desired::new(
                    STANDBY,
                    ConditionStatus::True,
                    "OnStandby",
                    "powered on in the ramdisk, the agent waiting for a task",
                )
            }
            (_, state) if refresh::refreshing(Some(state), self.status.standby_since.as_ref()) => {
                Desired::new(
                    STANDBY,
                    ConditionStatus::False,
                    "Refreshing",
                    "netbooted into the current ramdisk; back on standby once inspected",
                )
            }
            (Gate::Refuse(reason, message), _) => {
                Desired::new(STANDBY, ConditionStatus::False, reason, message.clone())
            }
            (Gate::Admit, state) => Desired::new(
                STANDBY,
                ConditionStatus::False,
                "NotIdle",
                format!(
                    "the server is {}; it waits on standby once inspected or cleaned",
                    state.as_str()
                ),
            ),
        };
        self.conditions.push(condition);
    }

    /// A new inspection request: acted upon (or refused) once.
    fn inspect_request(&mut self, inp: &Inputs<'_>) {
        let Some(id) = inp
            .inspect_request
            .filter(|id| self.status.last_inspect_request.as_deref() != Some(*id))
        else {
            return;
        };
        self.status.last_inspect_request = Some(id.to_string());
        if !inp.boot_mac {
            self.refused.push((
                "InspectionRefused",
                format!("inspection request {id:?} needs spec.bootMACAddress: the boot services answer only known MACs"),
            ));
        } else if matches!(self.state, ServerState::Available | ServerState::Error) {
            self.state = ServerState::Inspecting;
            self.status.boot_attempt = Some(BootAttempt {
                id: format!("inspect-{id}"),
                purpose: BootPurpose::Inspect,
                requested_at: inp.now.clone(),
                try_number: 1,
                disk_boot_at: None,
                ramdisk_attempt: None,
                kexec_at: None,
            });
            self.action = Some(PowerAction::Netboot);
        } else {
            self.refused.push((
                "InspectionRefused",
                format!(
                    "inspection request {id:?} refused while the server is {}",
                    self.state.as_str()
                ),
            ));
        }
    }

    /// An inspection under way: its ramdisk's outcome, or what it is waiting for.
    fn inspection(&mut self, inp: &Inputs<'_>) -> Option<String> {
        if self.state != ServerState::Inspecting || self.action.is_some() {
            return None;
        }
        match ramdisk_outcome(&self.status, inp.now) {
            Ramdisk::CalledBack => self.state = lifecycle::idle_state(&inp.lifecycle),
            Ramdisk::TimedOut(message) => {
                self.state = ServerState::Error;
                self.status.error_count = self.status.error_count.saturating_add(1);
                self.status.last_error = Some(message);
                self.status.last_error_reason = Some("RamdiskTimedOut".into());
            }
            Ramdisk::Waiting(message) => return Some(message),
        }
        None
    }

    /// One step of the provisioning lifecycle: work under way, or what blocks it.
    fn lifecycle(&mut self, inp: &Inputs<'_>) -> (Option<Note>, Option<Note>) {
        if self.action.is_some() || self.state == ServerState::Inspecting {
            return (None, None);
        }
        let (next, step) =
            lifecycle::advance(self.state, &mut self.status, &inp.lifecycle, inp.now);
        self.state = next;
        match step {
            Step::Idle => (None, None),
            Step::Act(a, message) => {
                self.action = Some(a);
                (Some((PROGRESSING, message)), None)
            }
            Step::Wait(reason, message) => (Some((reason, message)), None),
            Step::Blocked(reason, message) => (None, Some((reason, message))),
        }
    }

    /// Power against spec.online (and a reboot request), unless boot work holds it.
    fn power(
        &mut self,
        inp: &Inputs<'_>,
        power: PowerState,
        work: Option<Note>,
        waiting: Option<String>,
        blocked: Option<Note>,
    ) -> Result<(), Blocker> {
        let wanted =
            if inp.online || matches!(self.state, ServerState::Inspecting | ServerState::Standby) {
                PowerState::On
            } else {
                PowerState::Off
            };
        if self.action == Some(PowerAction::Netboot) && work.is_none() {
            self.requeue = POWER_POLL;
            return Err(Blocker::Progressing {
                reason: PROGRESSING,
                message: "network boot into the ramdisk requested through the BMC".into(),
            });
        }
        if let Some((reason, message)) = work {
            self.requeue = if self.action.is_some() {
                POWER_POLL
            } else {
                RAMDISK_POLL
            };
            return Err(Blocker::Progressing { reason, message });
        }
        if let Some(message) = waiting.filter(|_| power == PowerState::On) {
            self.requeue = RAMDISK_POLL;
            return Err(Blocker::Progressing {
                reason: "WaitingForRamdisk",
                message,
            });
        }
        let reboot = inp
            .reboot_request
            .filter(|id| self.status.last_reboot_request.as_deref() != Some(*id));
        if let Some(id) = reboot {
            // Recorded before acting: a request is honoured at most once, even across restarts.
            self.status.last_reboot_request = Some(id.to_string());
            if inp.online {
                self.action = Some(PowerAction::Reboot);
            }
        } else if power != wanted {
            self.action = Some(if wanted == PowerState::On {
                PowerAction::On
            } else {
                PowerAction::Off
            });
        }
        let power_result = if power == wanted && self.action.is_none() {
            self.conditions.push(Desired::new(
                POWER_MATCHES_SPEC,
                ConditionStatus::True,
                RECONCILED,
                format!("power is {power:?} as spec.online asks"),
            ));
            Ok(())
        } else {
            self.requeue = POWER_POLL;
            let message =
                format!("power is {power:?}, spec.online asks for {wanted:?}; waiting for the BMC");
            self.conditions.push(Desired::new(
                POWER_MATCHES_SPEC,
                ConditionStatus::False,
                "PowerChangePending",
                message.clone(),
            ));
            Err(Blocker::Progressing {
                reason: PROGRESSING,
                message,
            })
        };
        if power == PowerState::On && agent_powering_off(self.state, &self.status, inp.now) {
            self.requeue = self.requeue.min(POWER_POLL);
        }
        match (&self.status.last_error, blocked) {
            (Some(message), _) if self.state == ServerState::Error => Err(Blocker::Stalled {
                reason: lifecycle::known_reason(self.status.last_error_reason.as_deref()),
                message: message.clone(),
            }),
            (_, Some((reason, message))) => Err(Blocker::Stalled { reason, message }),
            _ => power_result,
        }
    }
}

/// Whether the agent of an attempt that just ended (inspection or cleaning: no controller
/// action follows it) is about to power the machine off, so power must be watched closely.
fn agent_powering_off(state: ServerState, status: &ServerStatus, now: &Time) -> bool {
    // On standby the agent stays: nothing powers off.
    let ramdisk_state = matches!(
        state,
        ServerState::Inspecting
            | ServerState::Provisioning
            | ServerState::Deprovisioning
            | ServerState::Standby
    );
    let Some(attempt) = status.boot_attempt.as_ref().filter(|a| {
        !ramdisk_state && matches!(a.purpose, BootPurpose::Inspect | BootPurpose::Clean)
    }) else {
        return false;
    };
    let ended = status
        .boot_progress
        .as_ref()
        .filter(|p| p.attempt == attempt.id)
        .and_then(|p| {
            [p.result_at.as_ref(), p.called_back_at.as_ref()]
                .into_iter()
                .flatten()
                .max_by_key(|t| t.0)
        });
    ended
        .and_then(|t| duration_ms(t, now))
        .is_some_and(|ms| ms <= AGENT_POWER_OFF_WINDOW.as_millis() as u64)
}

enum Ramdisk {
    CalledBack,
    TimedOut(String),
    Waiting(String),
}

/// Where the open boot attempt stands, from the boot services' progress.
fn ramdisk_outcome(status: &ServerStatus, now: &Time) -> Ramdisk {
    let Some(attempt) = &status.boot_attempt else {
        return Ramdisk::TimedOut("inspecting without a boot attempt".into());
    };
    let progress = status
        .boot_progress
        .as_ref()
        .filter(|p| p.attempt == attempt.id);
    if progress.is_some_and(|p| p.called_back_at.is_some()) {
        return Ramdisk::CalledBack;
    }
    let last = progress
        .and_then(|p| {
            [
                (p.initrd_at.as_ref(), "initrd fetched"),
                (p.kernel_at.as_ref(), "kernel fetched"),
                (p.script_at.as_ref(), "iPXE script served"),
                (p.dhcp_at.as_ref(), "DHCP acknowledged"),
            ]
            .into_iter()
            .find_map(|(t, step)| t.map(|_| step))
        })
        .unwrap_or("no DHCP request seen yet");
    let waited = duration_ms(&attempt.requested_at, now).unwrap_or(0);
    if waited > INSPECT_TIMEOUT.as_millis() as u64 {
        Ramdisk::TimedOut(format!(
            "the ramdisk did not call back within {} min; last step: {last}",
            INSPECT_TIMEOUT.as_secs() / 60
        ))
    } else {
        Ramdisk::Waiting(format!("waiting for the ramdisk; last step: {last}"))
    }
}

fn bmc_answers() -> Desired {
    Desired::new(
        BMC_REACHABLE,
        ConditionStatus::True,
        RECONCILED,
        "the BMC answers",
    )
}

fn duration_ms(start: &Time, end: &Time) -> Option<u64> {
    u64::try_from(end.0.duration_since(start.0).as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    fn inputs<'a>(
        bmc: Bmc,
        online: bool,
        reboot: Option<&'a str>,
        current: Option<&'a ServerStatus>,
        now: &'a Time,
    ) -> Inputs<'a> {
        Inputs {
            generation: Some(1),
            unresolved: &[],
            bmc,
            online,
            reboot_request: reboot,
            inspect_request: None,
            boot_mac: true,
            discovered: false,
            current,
            now,
            lifecycle: Lifecycle::idle(),
        }
    }

    fn observed(power: PowerState) -> Bmc {
        Bmc::Observed {
            power,
            identity: Some(SystemIdentity {
                uuid: Some("u".into()),
                ..Default::default()
            }),
        }
    }

    const RESYNC: Duration = Duration::from_secs(600);

    #[test]
    fn inspection_netboots_once_waits_for_the_ramdisk_then_times_out() {
        let now = t("2026-01-01T00:00:00Z");
        let available = decide(
            &inputs(observed(PowerState::Off), false, None, None, &now),
            RESYNC,
        )
        .status;
        let mut inp = inputs(
            observed(PowerState::Off),
            false,
            None,
            Some(&available),
            &now,
        );
        inp.inspect_request = Some("r1");
        let d = decide(&inp, RESYNC);
        assert_eq!(d.status.state, Some(ServerState::Inspecting));
        assert_eq!(d.action, Some(PowerAction::Netboot));
        let attempt = d.status.boot_attempt.clone().unwrap();
        assert_eq!(attempt.id, "inspect-r1");
        // The same request again: no second netboot; powered on, waiting for the ramdisk
        // even though spec.online is false.
        let later = t("2026-01-01T00:00:10Z");
        let mut inp = inputs(
            observed(PowerState::On),
            false,
            None,
            Some(&d.status),
            &later,
        );
        inp.inspect_request = Some("r1");
        let waiting = decide(&inp, RESYNC);
        assert_eq!(waiting.action, None);
        assert_eq!(waiting.requeue, RAMDISK_POLL);
        assert_eq!(waiting.status.state, Some(ServerState::Inspecting));
        // Called back for another attempt: still waiting. For this attempt: Available, and
        // then powered off as spec.online says.
        let mut progressed = waiting.status.clone();
        progressed.boot_progress = Some(crds::server::BootProgress {
            attempt: "inspect-r0".into(),
            called_back_at: Some(later.clone()),
            ..Default::default()
        });
        let inp = inputs(
            observed(PowerState::On),
            false,
            None,
            Some(&progressed),
            &later,
        );
        assert_eq!(
            decide(&inp, RESYNC).status.state,
            Some(ServerState::Inspecting)
        );
        progressed.boot_progress.as_mut().unwrap().attempt = attempt.id.clone();
        let inp = inputs(
            observed(PowerState::On),
            false,
            None,
            Some(&progressed),
            &later,
        );
        let done = decide(&inp, RESYNC);
        assert_eq!(done.status.state, Some(ServerState::Available));
        assert_eq!(done.action, Some(PowerAction::Off));
        // No callback within the timeout: Error with the last step seen, stalled.
        let late = t("2026-01-01T00:20:00Z");
        let inp = inputs(
            observed(PowerState::On),
            false,
            None,
            Some(&waiting.status),
            &late,
        );
        let failed = decide(&inp, RESYNC);
        assert_eq!(failed.status.state, Some(ServerState::Error));
        assert!(
            failed
                .status
                .last_error
                .as_deref()
                .unwrap()
                .contains("no DHCP request seen yet")
        );
        let again = decide(
            &inputs(
                observed(PowerState::Off),
                false,
                None,
                Some(&failed.status),
                &late,
            ),
            RESYNC,
        );
        assert!(
            again.status.last_error.is_some(),
            "the error stays until a new request"
        );
    }

    #[test]
    fn a_refresh_netboots_a_standby_server_and_keeps_its_seat() {
        let since = t("2026-01-01T00:00:00Z");
        let on_standby = ServerStatus {
            state: Some(ServerState::Standby),
            standby_since: Some(since.clone()),
            boot_attempt: Some(BootAttempt {
                id: "inspect-r1".into(),
                purpose: BootPurpose::Inspect,
                requested_at: since.clone(),
                try_number: 1,
                disk_boot_at: None,
                ramdisk_attempt: None,
                kexec_at: None,
            }),
            boot_progress: Some(crds::server::BootProgress {
                attempt: "inspect-r1".into(),
                called_back_at: Some(since.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let now = t("2026-01-01T00:00:20Z");
        let mut inp = inputs(
            observed(PowerState::On),
            false,
            None,
            Some(&on_standby),
            &now,
        );
        inp.lifecycle.standby = Gate::Admit;
        inp.lifecycle.refresh = Some("the agent runs ramdisk sha256:old".into());
        let d = decide(&inp, RESYNC);
        assert_eq!(d.status.state, Some(ServerState::Inspecting));
        assert_eq!(d.action, Some(PowerAction::Netboot));
        assert_eq!(
            d.status.standby_since,
            Some(since.clone()),
            "the seat is kept"
        );
        let attempt = d.status.boot_attempt.clone().unwrap();
        assert!(attempt.id.starts_with("inspect-"), "{attempt:?}");
        assert_eq!(attempt.purpose, BootPurpose::Inspect);
        let standby = d.status.conditions.iter().find(|c| c.type_ == "Standby");
        assert_eq!(standby.map(|c| c.reason.as_str()), Some("Refreshing"));
        // The new ramdisk calls back: on standby again, since the first arrival.
        let mut refreshed = d.status.clone();
        let later = t("2026-01-01T00:00:50Z");
        refreshed.boot_progress = Some(crds::server::BootProgress {
            attempt: attempt.id.clone(),
            called_back_at: Some(later.clone()),
            ramdisk_version: Some("sha256:new".into()),
            ..Default::default()
        });
        let mut inp = inputs(
            observed(PowerState::On),
            false,
            None,
            Some(&refreshed),
            &later,
        );
        inp.lifecycle.standby = Gate::Admit;
        let back = decide(&inp, RESYNC);
        assert_eq!(back.status.state, Some(ServerState::Standby));
        assert_eq!(back.status.standby_since, Some(since));
        assert_eq!(back.action, None);
    }

    #[test]
    fn inspection_ends_on_standby_powered_on_whatever_spec_online_says() {
        let now = t("2026-01-01T00:00:00Z");
        let available = decide(
            &inputs(observed(PowerState::Off), false, None, None, &now),
            RESYNC,
        )
        .status;
        let mut inp = inputs(
            observed(PowerState::Off),
            false,
            None,
            Some(&available),
            &now,
        );
        inp.inspect_request = Some("r1");
        let inspecting = decide(&inp, RESYNC).status;
        let mut called_back = inspecting.clone();
        let later = t("2026-01-01T00:00:10Z");
        called_back.boot_progress = Some(crds::server::BootProgress {
            attempt: "inspect-r1".into(),
            called_back_at: Some(later.clone()),
            ..Default::default()
        });
        let mut inp = inputs(
            observed(PowerState::On),
            false,
            None,
            Some(&called_back),
            &later,
        );
        inp.lifecycle.standby = Gate::Admit;
        let d = decide(&inp, RESYNC);
        assert_eq!(d.status.state, Some(ServerState::Standby));
        assert_eq!(d.status.standby_since, Some(later.clone()));
        assert_eq!(
            d.action, None,
            "stays on: no power-off for spec.online=false"
        );
        assert_eq!(d.requeue, STANDBY_POLL);
        let cond = |s: &ServerStatus, type_: &str| {
            s.conditions
                .iter()
                .find(|c| c.type_ == type_)
                .map(|c| (c.status.clone(), c.reason.clone()))
        };
        assert_eq!(
            cond(&d.status, "Standby"),
            Some(("True".into(), "OnStandby".into()))
        );
        assert_eq!(
            cond(&d.status, "Ready"),
            Some(("True".into(), "Reconciled".into()))
        );
        // Steady on standby: standbySince kept, nothing changes (no write).
        let much_later = t("2026-01-01T00:00:40Z");
        let mut inp = inputs(
            observed(PowerState::On),
            false,
            None,
            Some(&d.status),
            &much_later,
        );
        inp.lifecycle.standby = Gate::Admit;
        let steady = decide(&inp, RESYNC);
        assert_eq!(steady.status, d.status);
        // An inspection request on standby is refused (the inventory is fresh).
        inp.inspect_request = Some("r2");
        let refused = decide(&inp, RESYNC);
        assert_eq!(refused.refused.len(), 1);
        assert_eq!(refused.status.state, Some(ServerState::Standby));
        // Refused by the budget: Available with the reason, then power follows spec.online.
        let mut inp = inputs(
            observed(PowerState::On),
            false,
            None,
            Some(&called_back),
            &later,
        );
        inp.lifecycle.standby = Gate::Refuse("OverBudget", "no room".into());
        let d = decide(&inp, RESYNC);
        assert_eq!(d.status.state, Some(ServerState::Available));
        assert_eq!(d.status.standby_since, None);
        assert_eq!(d.action, Some(PowerAction::Off));
        assert_eq!(
            cond(&d.status, "Standby"),
            Some(("False".into(), "OverBudget".into()))
        );
    }

    #[test]
    fn inspection_without_boot_mac_is_refused_once() {
        let now = t("2026-01-01T00:00:00Z");
        let available = decide(
            &inputs(observed(PowerState::On), true, None, None, &now),
            RESYNC,
        )
        .status;
        let mut inp = inputs(observed(PowerState::On), true, None, Some(&available), &now);
        inp.inspect_request = Some("r1");
        inp.boot_mac = false;
        let d = decide(&inp, RESYNC);
        assert_eq!(d.status.state, Some(ServerState::Available));
        assert_eq!(d.refused.len(), 1);
        let mut inp = inputs(observed(PowerState::On), true, None, Some(&d.status), &now);
        inp.inspect_request = Some("r1");
        inp.boot_mac = false;
        assert!(decide(&inp, RESYNC).refused.is_empty());
    }

    #[test]
    fn registration_then_power_on_then_steady() {
        let now = t("2026-01-01T00:00:00Z");
        let d = decide(
            &inputs(observed(PowerState::Off), true, None, None, &now),
            RESYNC,
        );
        assert_eq!(d.status.state, Some(ServerState::Available));
        assert_eq!(d.action, Some(PowerAction::On));
        assert_eq!(d.requeue, POWER_POLL);
        let pending = d
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "PowerMatchesSpec")
            .unwrap();
        assert_eq!(pending.reason, "PowerChangePending");
        let later = t("2026-01-01T00:00:05Z");
        let on = decide(
            &inputs(
                Bmc::Observed {
                    power: PowerState::On,
                    identity: None,
                },
                true,
                None,
                Some(&d.status),
                &later,
            ),
            RESYNC,
        );
        assert_eq!(on.action, None);
        let ready = on
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "True");
        let again = decide(
            &inputs(
                Bmc::Observed {
                    power: PowerState::On,
                    identity: None,
                },
                true,
                None,
                Some(&on.status),
                &t("2026-01-01T01:00:00Z"),
            ),
            RESYNC,
        );
        assert_eq!(again.status, on.status, "steady: no write");
    }

    #[test]
    fn reboot_once_per_request_id() {
        let now = t("2026-01-01T00:00:00Z");
        let d = decide(
            &inputs(observed(PowerState::On), true, Some("r1"), None, &now),
            RESYNC,
        );
        assert_eq!(d.action, Some(PowerAction::Reboot));
        assert_eq!(d.status.last_reboot_request.as_deref(), Some("r1"));
        let again = decide(
            &inputs(
                observed(PowerState::On),
                true,
                Some("r1"),
                Some(&d.status),
                &now,
            ),
            RESYNC,
        );
        assert_eq!(again.action, None, "the same id never reboots twice");
        let next = decide(
            &inputs(
                observed(PowerState::On),
                true,
                Some("r2"),
                Some(&again.status),
                &now,
            ),
            RESYNC,
        );
        assert_eq!(next.action, Some(PowerAction::Reboot));
    }

    #[test]
    fn power_is_watched_while_the_agent_of_an_ended_attempt_powers_off() {
        // Cleaning just ended (its result recorded) on a server that spec.online wants on.
        let done = t("2026-01-01T00:00:00Z");
        let status = ServerStatus {
            state: Some(ServerState::Available),
            power_state: Some(PowerState::On),
            boot_attempt: Some(BootAttempt {
                id: "clean-1".into(),
                purpose: BootPurpose::Clean,
                requested_at: t("2025-12-31T23:59:00Z"),
                try_number: 1,
                disk_boot_at: None,
                ramdisk_attempt: None,
                kexec_at: None,
            }),
            boot_progress: Some(crds::server::BootProgress {
                attempt: "clean-1".into(),
                result_at: Some(done.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        // Still on: the agent's power-off is coming, so look again soon, not at the resync.
        let soon = t("2026-01-01T00:00:01Z");
        let d = decide(
            &inputs(observed(PowerState::On), true, None, Some(&status), &soon),
            RESYNC,
        );
        assert_eq!((d.action, d.requeue), (None, POWER_POLL));
        // Seen off: power follows spec.online again.
        let d = decide(
            &inputs(observed(PowerState::Off), true, None, Some(&status), &soon),
            RESYNC,
        );
        assert_eq!(d.status.power_state, Some(PowerState::Off));
        assert_eq!(d.action, Some(PowerAction::On));
        // Long after the attempt, or for a provisioning attempt (the controller boots the disk
        // itself), nothing is expected: the resync applies.
        let late = t("2026-01-01T00:05:00Z");
        let d = decide(
            &inputs(observed(PowerState::On), true, None, Some(&status), &late),
            RESYNC,
        );
        assert_eq!(d.requeue, RESYNC);
        let mut provision = status.clone();
        provision.state = Some(ServerState::Provisioned);
        provision.boot_attempt.as_mut().unwrap().purpose = BootPurpose::Provision;
        assert!(!agent_powering_off(
            ServerState::Provisioned,
            &provision,
            &soon
        ));
        assert!(agent_powering_off(ServerState::Available, &status, &soon));
        assert!(!agent_powering_off(
            ServerState::Deprovisioning,
            &status,
            &soon
        ));
    }

    #[test]
    fn wrong_credentials_stall_with_backoff() {
        let now = t("2026-01-01T00:00:00Z");
        let bad = Bmc::CredentialsRejected {
            reason: "AuthenticationFailed",
            message: "401".into(),
        };
        let d = decide(&inputs(bad.clone(), true, None, None, &now), RESYNC);
        let creds = d
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "CredentialsValid")
            .unwrap();
        assert_eq!(
            (creds.status.as_str(), creds.reason.as_str()),
            ("False", "AuthenticationFailed")
        );
        assert_eq!(d.action, None);
        let d2 = decide(&inputs(bad, true, None, Some(&d.status), &now), RESYNC);
        assert!(d2.requeue > d.requeue, "exponential backoff");
        assert_eq!(backoff(20), Duration::from_secs(300));
    }

    #[test]
    fn unresolved_reference_stalls_without_bmc_calls() {
        let u = [Unresolved {
            reason: "RackNotFound",
            message: "spec.rackRef: nope".into(),
        }];
        let now = t("2026-01-01T00:00:00Z");
        let inp = Inputs {
            generation: Some(1),
            unresolved: &u,
            bmc: Bmc::Absent,
            online: true,
            reboot_request: None,
            inspect_request: None,
            boot_mac: true,
            discovered: false,
            current: None,
            now: &now,
            lifecycle: Lifecycle::idle(),
        };
        let d = decide(&inp, RESYNC);
        let stalled = d
            .status
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled")
            .unwrap();
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "RackNotFound")
        );
        assert_eq!(d.status.state, Some(ServerState::Registering));
    }

    #[test]
    fn an_enrolled_server_starts_discovered_and_stays() {
        let now = t("2026-01-01T00:00:00Z");
        let mut inp = inputs(Bmc::Absent, false, None, None, &now);
        inp.discovered = true;
        let d = decide(&inp, RESYNC);
        assert_eq!(d.status.state, Some(ServerState::Discovered));
        let mut again = inputs(Bmc::Absent, false, None, Some(&d.status), &now);
        again.discovered = true;
        assert_eq!(
            decide(&again, RESYNC).status.state,
            Some(ServerState::Discovered)
        );
    }
}
