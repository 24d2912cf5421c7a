//! Events: one per condition transition, and one per unreadable object version.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType};

use crds::condition_types::{READY, RECONCILING, STALLED};

/// The Events announcing how `new` differs from `old` (pure). Only status flips and new
/// conditions produce one, so a steady object produces none.
pub fn transitions(old: &[Condition], new: &[Condition]) -> Vec<Event> {
    let first_status = old.is_empty();
    let progressing = new
        .iter()
        .any(|c| c.type_ == RECONCILING && c.status == "True");
    new.iter()
        .filter(|c| c.type_ != RECONCILING)
        // Not ready while the controller is still working is progress, not news.
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
            // A new object's first status announces only what is wrong: thousands of objects
            // created at once must not cost thousands of "all good" Events.
            if first_status && !bad {
                return None;
            }
            Some(Event {
                type_: if bad {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: c.reason.clone(),
                note: Some(truncate(
                    &format!("{} is {}: {}", c.type_, c.status, c.message),
                    1000,
                )),
                action: "Reconcile".into(),
                secondary: None,
            })
        })
        .collect()
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Publishes one Event about `object`; a failure is logged, never fatal.
pub async fn publish<K>(
    recorder: &kube::runtime::events::Recorder,
    object: &K,
    type_: kube::runtime::events::EventType,
    reason: &str,
    action: &str,
    note: String,
) where
    K: kube::Resource<DynamicType = ()>,
{
    let event = kube::runtime::events::Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish event");
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
        assert!(transitions(&now, &now).is_empty());
    }

    #[test]
    fn a_new_objects_first_status_announces_only_problems() {
        let progressing = [
            c("Ready", "False", "Pending"),
            c("Reconciling", "True", "Pending"),
            c("Stalled", "False", "Progressing"),
        ];
        assert!(transitions(&[], &progressing).is_empty());
        let stalled = [
            c("Ready", "False", "RackNotFound"),
            c("Stalled", "True", "RackNotFound"),
        ];
        let ev = transitions(&[], &stalled);
        assert_eq!(ev.len(), 2);
        assert!(ev.iter().all(|e| matches!(e.type_, EventType::Warning)));
    }

    #[test]
    fn flip_to_false_is_a_warning() {
        let old = [c("LayoutValid", "True", "Reconciled")];
        let new = [c("LayoutValid", "False", "UOverlap")];
        let ev = transitions(&old, &new);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].reason, "UOverlap");
        assert!(matches!(ev[0].type_, EventType::Warning));
    }
}
