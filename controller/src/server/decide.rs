//! Decide stage (pure): the Server's state machine, the power action to take, and its status.

use std::time::Duration;

use crds::ConditionStatus;
use crds::condition_types::{
    BMC_REACHABLE, CREDENTIALS_VALID, POWER_MATCHES_SPEC, REFERENCES_RESOLVED,
};
use crds::reasons::{PENDING, PROGRESSING, RECONCILED};
use crds::server::{PhaseTiming, PowerState, ServerState, ServerStatus, SystemIdentity};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::validate::Unresolved;
use crate::conditions::{Blocker, Desired, kstatus, merge};

/// A state change the apply stage logs.
#[derive(Debug, PartialEq, Eq)]
pub struct Transition {
    /// State before (None for a new Server).
    pub from: Option<ServerState>,
    /// State after.
    pub to: ServerState,
}

/// A power action the apply stage performs (after writing status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerAction {
    /// Power on.
    On,
    /// Power off.
    Off,
    /// Power-cycle for a reboot request.
    Reboot,
}

impl PowerAction {
    /// Event reason.
    pub fn reason(self) -> &'static str {
        match self {
            Self::On => "PowerOn",
            Self::Off => "PowerOff",
            Self::Reboot => "Reboot",
        }
    }
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
    /// Current status.
    pub current: Option<&'a ServerStatus>,
    /// Now.
    pub now: &'a Time,
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
}

/// Retry delay after `errors` consecutive failures: 5 s doubling up to 5 min.
pub fn backoff(errors: u32) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << errors.min(6)).min(300))
}

/// While a power change is pending, poll the BMC this often (BMCs apply changes seconds later).
pub const POWER_POLL: Duration = Duration::from_secs(2);

/// Decides the next status and action.
pub fn decide(inp: &Inputs<'_>, resync: Duration) -> Decision {
    let previous = inp.current.and_then(|c| c.state);
    let mut status = inp.current.cloned().unwrap_or_default();
    status.observed_generation = inp.generation;
    let mut conditions: Vec<Desired> = Vec::new();
    let mut action = None;
    let mut requeue = resync;

    let references = match inp.unresolved.first() {
        None => Desired::new(
            REFERENCES_RESOLVED,
            ConditionStatus::True,
            RECONCILED,
            "every reference resolves",
        ),
        Some(first) => Desired::new(
            REFERENCES_RESOLVED,
            ConditionStatus::False,
            first.reason,
            inp.unresolved
                .iter()
                .map(|u| u.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    let mut state = previous.unwrap_or(ServerState::Registering);
    let blocker = if let Some(first) = inp.unresolved.first() {
        Err(Blocker::Stalled {
            reason: first.reason,
            message: references.message.clone(),
        })
    } else {
        match &inp.bmc {
            Bmc::Absent => Err(Blocker::Progressing {
                reason: PENDING,
                message: "no BMC configured".into(),
            }),
            Bmc::CredentialsRejected { reason, message } => {
                conditions.push(bmc_answers());
                conditions.push(Desired::new(
                    CREDENTIALS_VALID,
                    ConditionStatus::False,
                    reason,
                    message.clone(),
                ));
                status.error_count = status.error_count.saturating_add(1);
                status.last_error = Some(message.clone());
                requeue = backoff(status.error_count);
                Err(Blocker::Stalled {
                    reason,
                    message: format!("BMC credentials rejected: {message}"),
                })
            }
            Bmc::Unreachable { reason, message } => {
                conditions.push(Desired::new(
                    BMC_REACHABLE,
                    ConditionStatus::False,
                    reason,
                    message.clone(),
                ));
                conditions.push(Desired::new(
                    CREDENTIALS_VALID,
                    ConditionStatus::Unknown,
                    reason,
                    "the BMC did not answer",
                ));
                status.error_count = status.error_count.saturating_add(1);
                status.last_error = Some(message.clone());
                status.power_state = Some(PowerState::Unknown);
                requeue = backoff(status.error_count);
                Err(Blocker::Progressing {
                    reason,
                    message: format!(
                        "BMC unreachable, retrying in {}s: {message}",
                        requeue.as_secs()
                    ),
                })
            }
            Bmc::Observed { power, identity } => {
                conditions.push(bmc_answers());
                conditions.push(Desired::new(
                    CREDENTIALS_VALID,
                    ConditionStatus::True,
                    RECONCILED,
                    "the BMC accepts the credentials",
                ));
                status.error_count = 0;
                status.last_error = None;
                status.power_state = Some(*power);
                if let Some(id) = identity {
                    status.identity = Some(id.clone());
                }
                if state == ServerState::Registering && status.identity.is_some() {
                    state = ServerState::Available;
                }
                let wanted = if inp.online {
                    PowerState::On
                } else {
                    PowerState::Off
                };
                let reboot = inp
                    .reboot_request
                    .filter(|id| status.last_reboot_request.as_deref() != Some(*id));
                if let Some(id) = reboot {
                    // Recorded before acting: a request is honoured at most once, even across restarts.
                    status.last_reboot_request = Some(id.to_string());
                    if inp.online {
                        action = Some(PowerAction::Reboot);
                    }
                } else if *power != wanted {
                    action = Some(if inp.online {
                        PowerAction::On
                    } else {
                        PowerAction::Off
                    });
                }
                if *power == wanted && action.is_none() {
                    conditions.push(Desired::new(
                        POWER_MATCHES_SPEC,
                        ConditionStatus::True,
                        RECONCILED,
                        format!("power is {power:?} as spec.online asks"),
                    ));
                    Ok(())
                } else {
                    requeue = POWER_POLL;
                    let message = format!(
                        "power is {power:?}, spec.online asks for {wanted:?}; waiting for the BMC"
                    );
                    conditions.push(Desired::new(
                        POWER_MATCHES_SPEC,
                        ConditionStatus::False,
                        "PowerChangePending",
                        message.clone(),
                    ));
                    Err(Blocker::Progressing {
                        reason: PROGRESSING,
                        message,
                    })
                }
            }
        }
    };

    let transition = (previous != Some(state)).then_some(Transition {
        from: previous,
        to: state,
    });
    if transition.is_some() {
        if let Some(open) = status.phases.last_mut().filter(|p| p.finished_at.is_none()) {
            open.finished_at = Some(inp.now.clone());
            open.duration_ms = duration_ms(&open.started_at, inp.now);
        }
        status.phases.push(PhaseTiming {
            name: state.as_str().to_string(),
            started_at: inp.now.clone(),
            finished_at: None,
            duration_ms: None,
        });
        status.state_since = Some(inp.now.clone());
    }
    status.state = Some(state);

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
            current,
            now,
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
            current: None,
            now: &now,
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
}
