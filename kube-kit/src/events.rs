//! Events: one per condition transition (a steady object produces none), and single Events
//! published without ever failing the caller.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use crds::condition_types::{READY, RECONCILING, STALLED};

/// Longest note sent (the API server limits notes to 1 kB).
const MAX_NOTE: usize = 1000;

/// What an object's first status (no earlier conditions of ours) announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstStatus {
    /// Only what is wrong: thousands of objects created at once must not cost thousands of
    /// "all good" Events (the controller's reconcilers).
    ProblemsOnly,
    /// Every condition, good or bad (the edge daemon: a handful of objects per router, where
    /// "configuration applied" on a new link is news).
    Everything,
}

/// The Events announcing how `new` differs from `old` (pure). Only new conditions and changes
/// of status or reason produce one. `Reconciling` is never announced, and neither is
/// Ready=False while Reconciling=True (progress, not news). Warning when the condition is bad
/// (Stalled=True, any other False), Normal otherwise.
pub fn transitions(old: &[Condition], new: &[Condition], first: FirstStatus) -> Vec<Event> {
    let quiet_start = old.is_empty() && first == FirstStatus::ProblemsOnly;
    let progressing = new
        .iter()
        .any(|c| c.type_ == RECONCILING && c.status == "True");
    new.iter()
        .filter(|c| c.type_ != RECONCILING)
        .filter(|c| !(progressing && c.type_ == READY && c.status == "False"))
        .filter(|c| {
            old.iter()
                .find(|o| o.type_ == c.type_)
                .is_none_or(|o| o.status != c.status || o.reason != c.reason)
        })
        .filter_map(|c| {
            let bad = if c.type_ == STALLED {
                c.status == "True"
            } else {
                c.status == "False"
            };
            if quiet_start && !bad {
                return None;
            }
            Some(Event {
                type_: if bad {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: c.reason.clone(),
                note: Some(truncate(&format!(
                    "{} is {}: {}",
                    c.type_, c.status, c.message
                ))),
                action: "Reconcile".into(),
                secondary: None,
            })
        })
        .collect()
}

fn truncate(s: &str) -> String {
    let mut end = s.len().min(MAX_NOTE);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Logs and publishes the [`transitions`] from `old` to `new` about `object`.
pub async fn announce<K>(
    recorder: &Recorder,
    object: &K,
    old: &[Condition],
    new: &[Condition],
    first: FirstStatus,
) where
    K: Resource<DynamicType = ()>,
{
    let reference = object.object_ref(&());
    for event in transitions(old, new, first) {
        info!(kind = %K::kind(&()), name = %object.name_any(), reason = %event.reason, note = ?event.note, "condition changed");
        send(recorder, &reference, &event).await;
    }
}

/// Publishes one Event about `object`; a failure is logged, never fatal.
pub async fn publish<K>(
    recorder: &Recorder,
    object: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    send(recorder, &object.object_ref(&()), &event).await;
}

/// Publishes `event` about `reference`; a failure is logged, never fatal.
pub async fn send(recorder: &Recorder, reference: &ObjectReference, event: &Event) {
    if let Err(e) = recorder.publish(event, reference).await {
        warn!(kind = ?reference.kind, name = ?reference.name, reason = %event.reason, error = %e, "could not publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn c(t: &str, s: &str, r: &str) -> Condition {
        Condition {
            type_: t.into(),
            status: s.into(),
            reason: r.into(),
            message: "m".into(),
            observed_generation: None,
            last_transition_time: Time("2026-01-01T00:00:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn steady_conditions_emit_nothing() {
        let now = [
            c("Ready", "True", "Reconciled"),
            c("LayoutValid", "True", "Reconciled"),
        ];
        assert!(transitions(&now, &now, FirstStatus::ProblemsOnly).is_empty());
        assert!(transitions(&now, &now, FirstStatus::Everything).is_empty());
    }

    #[test]
    fn a_new_objects_first_status_announces_only_problems() {
        let progressing = [
            c("Ready", "False", "Pending"),
            c("Reconciling", "True", "Pending"),
            c("Stalled", "False", "Progressing"),
        ];
        assert!(transitions(&[], &progressing, FirstStatus::ProblemsOnly).is_empty());
        let stalled = [
            c("Ready", "False", "RackNotFound"),
            c("Stalled", "True", "RackNotFound"),
        ];
        let ev = transitions(&[], &stalled, FirstStatus::ProblemsOnly);
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| matches!(e.type_, EventType::Warning)));
    }

    #[test]
    fn everything_announces_a_good_first_status_too() {
        let applied = [c("ConfigApplied", "True", "Applied")];
        let ev = transitions(&[], &applied, FirstStatus::Everything);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].type_, EventType::Normal);
        assert!(transitions(&[], &applied, FirstStatus::ProblemsOnly).is_empty());
    }

    #[test]
    fn flip_to_false_is_a_warning() {
        let old = [c("LayoutValid", "True", "Reconciled")];
        let new = [c("LayoutValid", "False", "UOverlap")];
        let ev = transitions(&old, &new, FirstStatus::ProblemsOnly);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].reason, "UOverlap");
        assert!(matches!(ev[0].type_, EventType::Warning));
    }

    #[test]
    fn long_notes_are_cut_on_a_character_boundary() {
        let mut long = c("Ready", "False", "Broken");
        // After "Ready is False: x" (17 bytes) byte MAX_NOTE falls inside a two-byte "é".
        long.message = format!("x{}", "é".repeat(MAX_NOTE));
        let ev = transitions(&[], &[long], FirstStatus::Everything);
        let note = ev[0].note.as_deref().unwrap();
        assert_eq!(note.len(), MAX_NOTE - 1);
    }
}
