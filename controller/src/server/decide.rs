//! Decide stage (pure): the Server's state machine and its status.

use crds::ConditionStatus;
use crds::condition_types::REFERENCES_RESOLVED;
use crds::reasons::{PENDING, RECONCILED};
use crds::server::{PhaseTiming, ServerState, ServerStatus};
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

/// The next state. Until the BMC capability registers servers, every Server waits in
/// Registering (or keeps the state a later stage recorded).
pub fn next_state(current: Option<ServerState>) -> ServerState {
    current.unwrap_or(ServerState::Registering)
}

/// The complete desired status, and the transition if the state changes.
pub fn decide(
    generation: Option<i64>,
    unresolved: &[Unresolved],
    current: Option<&ServerStatus>,
    now: &Time,
) -> (ServerStatus, Option<Transition>) {
    let previous = current.and_then(|c| c.state);
    let state = next_state(previous);
    let mut status = current.cloned().unwrap_or_default();
    let transition = (previous != Some(state)).then_some(Transition {
        from: previous,
        to: state,
    });
    if transition.is_some() {
        if let Some(open) = status.phases.last_mut().filter(|p| p.finished_at.is_none()) {
            open.finished_at = Some(now.clone());
            open.duration_ms = duration_ms(&open.started_at, now);
        }
        status.phases.push(PhaseTiming {
            name: state.as_str().to_string(),
            started_at: now.clone(),
            finished_at: None,
            duration_ms: None,
        });
        status.state_since = Some(now.clone());
    }
    status.state = Some(state);
    status.observed_generation = generation;

    let references = match unresolved.first() {
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
            unresolved
                .iter()
                .map(|u| u.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    let blocker = match unresolved.first() {
        Some(first) => Blocker::Stalled {
            reason: first.reason,
            message: references.message.clone(),
        },
        None => Blocker::Progressing {
            reason: PENDING,
            message: format!("{}: waiting for BMC registration", state.as_str()),
        },
    };
    let mut desired: Vec<Desired> = kstatus(Err(blocker)).into();
    desired.push(references);
    let current_conditions = current.map(|c| c.conditions.as_slice()).unwrap_or_default();
    status.conditions = merge(current_conditions, &desired, generation, now);
    (status, transition)
}

fn duration_ms(start: &Time, end: &Time) -> Option<u64> {
    let span = end.0.duration_since(start.0);
    u64::try_from(span.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn new_server_enters_registering_once() {
        let (st, tr) = decide(Some(1), &[], None, &t("2026-01-01T00:00:00Z"));
        assert_eq!(st.state, Some(ServerState::Registering));
        assert_eq!(
            tr,
            Some(Transition {
                from: None,
                to: ServerState::Registering
            })
        );
        assert_eq!(st.phases.len(), 1);
        let (again, tr2) = decide(Some(1), &[], Some(&st), &t("2026-01-01T00:05:00Z"));
        assert_eq!(tr2, None);
        assert_eq!(again, st, "a steady server's status does not change");
    }

    #[test]
    fn unresolved_reference_stalls() {
        let u = [Unresolved {
            reason: "RackNotFound",
            message: "spec.rackRef: nope".into(),
        }];
        let (st, _) = decide(Some(1), &u, None, &t("2026-01-01T00:00:00Z"));
        let stalled = st.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
        assert_eq!(
            (stalled.status.as_str(), stalled.reason.as_str()),
            ("True", "RackNotFound")
        );
    }
}
