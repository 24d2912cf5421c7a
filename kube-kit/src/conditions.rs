//! Building a status's conditions: desired conditions are merged with the current ones so a
//! condition's `lastTransitionTime` only moves when its status flips (no write storms).

use std::borrow::Cow;

use crds::ConditionStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition the decide stage wants, without timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type, e.g. `Ready` (owned when derived at run time, e.g. per router).
    pub type_: Cow<'static, str>,
    /// True, False or Unknown.
    pub status: ConditionStatus,
    /// CamelCase reason.
    pub reason: &'static str,
    /// Human message (never contains secrets).
    pub message: String,
}

impl Desired {
    /// A condition of `type_` with the given status, reason and message.
    pub fn new(
        type_: impl Into<Cow<'static, str>>,
        status: ConditionStatus,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.into(),
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Merges `desired` into full conditions, keeping `lastTransitionTime` from `current` when the
/// status did not change. Output is sorted by type, so equal inputs give equal outputs.
pub fn merge(
    current: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = desired
        .iter()
        .map(|d| {
            let previous = current.iter().find(|c| c.type_ == d.type_);
            let last_transition_time = match previous {
                Some(p) if p.status == d.status.as_str() => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: d.type_.to_string(),
                status: d.status.as_str().to_string(),
                reason: d.reason.to_string(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The conditions of `all` whose type is one of `owned` (what one field manager writes),
/// sorted by type like [`merge`]'s output, so the two compare equal when nothing changed.
pub fn owned(all: &[Condition], owned: &[&str]) -> Vec<Condition> {
    let mut out: Vec<Condition> = all
        .iter()
        .filter(|c| owned.contains(&c.type_.as_str()))
        .cloned()
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The kstatus trio derived from whether the object is ready and whether a human must act.
///
/// Ready=True → Reconciling=False, Stalled=False. Stalled (human must act) → Ready=False,
/// Reconciling=False, Stalled=True. Otherwise the controller is still working: Reconciling=True.
pub fn kstatus(ready: Result<(), Blocker>) -> [Desired; 3] {
    use crds::condition_types::{READY, RECONCILING, STALLED};
    use crds::reasons::{PROGRESSING, RECONCILED};
    match ready {
        Ok(()) => [
            Desired::new(READY, ConditionStatus::True, RECONCILED, "ready"),
            Desired::new(
                RECONCILING,
                ConditionStatus::False,
                RECONCILED,
                "nothing to do",
            ),
            Desired::new(STALLED, ConditionStatus::False, RECONCILED, "not stalled"),
        ],
        Err(Blocker::Stalled { reason, message }) => [
            Desired::new(READY, ConditionStatus::False, reason, message.clone()),
            Desired::new(
                RECONCILING,
                ConditionStatus::False,
                reason,
                "waiting for a change to the spec or its references",
            ),
            Desired::new(STALLED, ConditionStatus::True, reason, message),
        ],
        Err(Blocker::Progressing { reason, message }) => [
            Desired::new(READY, ConditionStatus::False, reason, message.clone()),
            Desired::new(RECONCILING, ConditionStatus::True, reason, message),
            Desired::new(STALLED, ConditionStatus::False, PROGRESSING, "not stalled"),
        ],
    }
}

/// Why an object is not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// A human must change something (bad spec, missing reference).
    Stalled {
        /// CamelCase reason.
        reason: &'static str,
        /// Human message.
        message: String,
    },
    /// The controller is still working.
    Progressing {
        /// CamelCase reason.
        reason: &'static str,
        /// Human message.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Time {
        Time(s.parse().unwrap())
    }

    #[test]
    fn transition_time_kept_while_status_unchanged() {
        let first = merge(
            &[],
            &[Desired::new("Ready", ConditionStatus::False, "A", "m")],
            Some(1),
            &t("2026-01-01T00:00:00Z"),
        );
        let again = merge(
            &first,
            &[Desired::new("Ready", ConditionStatus::False, "B", "n")],
            Some(2),
            &t("2026-01-02T00:00:00Z"),
        );
        assert_eq!(again[0].last_transition_time, t("2026-01-01T00:00:00Z"));
        assert_eq!(again[0].reason, "B");
        let flipped = merge(
            &again,
            &[Desired::new("Ready", ConditionStatus::True, "C", "o")],
            Some(2),
            &t("2026-01-03T00:00:00Z"),
        );
        assert_eq!(flipped[0].last_transition_time, t("2026-01-03T00:00:00Z"));
    }

    #[test]
    fn output_sorted_and_deterministic() {
        let d = [
            Desired::new("Stalled", ConditionStatus::False, "R", ""),
            Desired::new("Ready", ConditionStatus::True, "R", ""),
        ];
        let a = merge(&[], &d, None, &t("2026-01-01T00:00:00Z"));
        assert_eq!(
            a.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["Ready", "Stalled"]
        );
        assert_eq!(merge(&a, &d, None, &t("2026-02-01T00:00:00Z")), a);
    }

    #[test]
    fn owned_keeps_only_the_managers_types_sorted() {
        let now = t("2026-01-01T00:00:00Z");
        let mine = merge(
            &[],
            &[
                Desired::new("Ready", ConditionStatus::True, "R", ""),
                Desired::new("Announced", ConditionStatus::True, "R", ""),
            ],
            None,
            &now,
        );
        let theirs = merge(
            &[],
            &[Desired::new("Stalled", ConditionStatus::False, "R", "")],
            None,
            &now,
        );
        // As the API server may store them: another manager's condition in between, unsorted.
        let stored = [mine[1].clone(), theirs[0].clone(), mine[0].clone()];
        assert_eq!(owned(&stored, &["Announced", "Ready"]), mine);
    }

    #[test]
    fn kstatus_stalled_is_not_reconciling() {
        let [ready, reconciling, stalled] = kstatus(Err(Blocker::Stalled {
            reason: "X",
            message: "m".into(),
        }));
        assert_eq!(ready.status, ConditionStatus::False);
        assert_eq!(reconciling.status, ConditionStatus::False);
        assert_eq!(stalled.status, ConditionStatus::True);
    }
}
