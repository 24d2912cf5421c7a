//! What the reconcilers' validate stages find (pure) and the `ReferencesResolved` condition it
//! comes to, one copy for every kind.

use crds::ConditionStatus;
use crds::condition_types::REFERENCES_RESOLVED;
use crds::reasons::RECONCILED;
use kube_kit::conditions::Desired;

/// A reference that does not resolve (or another problem CEL cannot see), with the reason it
/// maps to.
#[derive(Debug, PartialEq, Eq)]
pub struct Unresolved {
    /// Condition reason.
    pub reason: &'static str,
    /// Human message naming the field and the object.
    pub message: String,
}

/// `ReferencesResolved`: True, or False with the first reason and every message.
pub fn references_resolved(unresolved: &[Unresolved]) -> Desired {
    match unresolved.first() {
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
    }
}
