//! Validate stage (pure): references that do not resolve.

use super::read::Facts;
use crate::reconcilers::references::Unresolved;

/// Every unresolved reference, in field order.
pub fn validate(rack_name: Option<&str>, facts: &Facts) -> Vec<Unresolved> {
    let mut out = Vec::new();
    if let (Some(false), Some(name)) = (facts.rack_found, rack_name) {
        out.push(Unresolved {
            reason: crds::reasons::RACK_NOT_FOUND,
            message: format!("spec.rackRef: Rack {name:?} does not exist in this namespace"),
        });
    }
    for (field, name, exists) in &facts.secrets {
        if !exists {
            out.push(Unresolved {
                reason: crds::reasons::SECRET_NOT_FOUND,
                message: format!("spec.{field}: Secret {name:?} does not exist in this namespace"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_missing_reference() {
        let facts = Facts {
            rack_found: Some(false),
            secrets: vec![
                ("bmc.credentialsSecretRef", "bmc-a".into(), false),
                ("userData", "ud".into(), true),
            ],
        };
        let problems = validate(Some("r1"), &facts);
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].reason, "RackNotFound");
        assert!(problems[1].message.contains("bmc-a"));
    }

    #[test]
    fn all_resolved_is_empty() {
        assert!(validate(None, &Facts::default()).is_empty());
    }
}
