//! Decide stage (pure): the controller's part of an UpstreamLink's status. Session facts
//! (state, routes, established since) belong to the edge daemon's field manager.

use crds::condition_types::{
    READY, RECONCILING, REFERENCES_RESOLVED, SESSION_ESTABLISHED, STALLED,
};
use crds::reasons::PENDING;
use crds::upstream::UpstreamLinkStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::reconcilers::references::{Unresolved, references_resolved};
use kube_kit::conditions::{self, Blocker, Desired, kstatus, merge};

/// The desired status.
pub fn decide(
    generation: Option<i64>,
    problems: &[Unresolved],
    current: Option<&UpstreamLinkStatus>,
    now: &Time,
) -> UpstreamLinkStatus {
    let references = references_resolved(problems);
    let established = current
        .and_then(|c| c.conditions.iter().find(|c| c.type_ == SESSION_ESTABLISHED))
        .is_some_and(|c| c.status == "True");
    let blocker = match problems.first() {
        Some(first) => Err(Blocker::Stalled {
            reason: first.reason,
            message: references.message.clone(),
        }),
        None if established => Ok(()),
        None => Err(Blocker::Progressing {
            reason: PENDING,
            message: "waiting for the edge daemon to establish the session".into(),
        }),
    };
    let mut desired: Vec<Desired> = kstatus(blocker).into();
    desired.push(references);
    let current_conditions = current.map(|c| c.conditions.as_slice()).unwrap_or_default();
    UpstreamLinkStatus {
        observed_generation: generation,
        conditions: merge(current_conditions, &desired, generation, now),
        ..Default::default()
    }
}

/// The part of a status the controller owns (the edge daemon owns the session facts and its
/// own conditions); compared with the desired status to skip writes that change nothing.
pub fn owned(status: &UpstreamLinkStatus) -> UpstreamLinkStatus {
    UpstreamLinkStatus {
        observed_generation: status.observed_generation,
        conditions: conditions::owned(&status.conditions, &CONTROLLER_CONDITIONS),
        ..Default::default()
    }
}

const CONTROLLER_CONDITIONS: [&str; 4] = [READY, RECONCILING, STALLED, REFERENCES_RESOLVED];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_link_does_not_change() {
        let now = Time("2026-01-01T00:00:00Z".parse().unwrap());
        let first = decide(Some(1), &[], None, &now);
        let later = Time("2026-01-01T01:00:00Z".parse().unwrap());
        assert_eq!(decide(Some(1), &[], Some(&first), &later), first);
        assert_eq!(owned(&first), first);
        let reconciling = first
            .conditions
            .iter()
            .find(|c| c.type_ == "Reconciling")
            .unwrap();
        assert_eq!(reconciling.status, "True");
    }
}
