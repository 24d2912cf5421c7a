//! Why an object (or part of it) is not in the running configuration.

/// A reason and a message, shown in the object's condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Stable CamelCase reason (the `routing::validate` reasons where they apply).
    pub reason: &'static str,
    /// Human message (never contains a password).
    pub message: String,
}

impl Problem {
    /// A problem with `reason` and `message`.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}
