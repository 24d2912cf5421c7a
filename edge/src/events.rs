//! Events: one per condition of ours that appears or changes status or reason, so a steady
//! object produces none. Messages never contain secrets (they are the condition messages).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType};

/// Longest note sent (the API server limits notes to 1 kB).
const MAX_NOTE: usize = 1000;

/// The Events announcing how `new` differs from `old` (pure).
pub fn transitions(old: &[Condition], new: &[Condition]) -> Vec<Event> {
    new.iter()
        .filter(|c| {
            old.iter()
                .find(|o| o.type_ == c.type_)
                .is_none_or(|o| o.status != c.status || o.reason != c.reason)
        })
        .map(|c| {
            let mut note = format!("{} is {}: {}", c.type_, c.status, c.message);
            if note.len() > MAX_NOTE {
                let mut cut = MAX_NOTE;
                while !note.is_char_boundary(cut) {
                    cut -= 1;
                }
                note.truncate(cut);
            }
            Event {
                type_: if c.status == "False" {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: c.reason.clone(),
                note: Some(note),
                action: "Reconcile".into(),
                secondary: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::conditions::{Want, build};

    #[test]
    fn only_changes_produce_events() {
        let now = "2026-06-01T12:00:00Z".parse().unwrap();
        let up = build(
            vec![Want::new("SessionEstablished", true, "Established", "up")],
            &[],
            None,
            now,
        );
        let down = build(
            vec![Want::new(
                "SessionEstablished",
                false,
                "NotEstablished",
                "down",
            )],
            &up,
            None,
            now,
        );
        assert_eq!(transitions(&up, &up).len(), 0);
        let ev = transitions(&up, &down);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].type_, EventType::Warning);
        assert_eq!(ev[0].reason, "NotEstablished");
    }
}
