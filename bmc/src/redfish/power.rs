//! Pure decisions for `ComputerSystem.Reset`: what an answer to a reset means.
//!
//! - A ResetType the BMC does not take (400 `ActionParameterValueNotInList`,
//!   `ActionParameterNotSupported`, `PropertyValueNotInList`, or 501) means
//!   "ask for the next candidate" when the BMC published no list.
//! - iDRAC answers 409 `PSU501` "Server is already powered ON"
//!   (dellemc-openmanage-ansible-modules#132) and iLO 400
//!   `InvalidOperationForSystemState` (goldyfruit/ansible-ilo#1) when the
//!   machine is already where the request would take it: read the power state
//!   again and succeed if it is.

use serde_json::Value;

use super::model;
use crate::{PowerAction, PowerState};

/// What the BMC's answer to one reset POST means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetAnswer {
    /// Accepted (2xx without an error body).
    Accepted,
    /// This ResetType is not one the BMC takes.
    TypeRefused,
    /// Refused for the machine's state (409, or a 400 about the state): the
    /// machine may already be where the request would take it.
    StateConflict,
    /// Any other failure.
    Failed,
}

const TYPE_REFUSALS: &[&str] = &[
    "ActionParameterValueNotInList",
    "ActionParameterNotSupported",
    "PropertyValueNotInList",
    "ActionParameterValueFormatError",
];

const STATE_REFUSALS: &[&str] = &["InvalidOperationForSystemState", "PSU501", "PSU502"];

/// Classify the answer to a reset POST.
pub(crate) fn classify(status: u16, body: &Value) -> ResetAnswer {
    let ids = model::message_ids(body);
    let has = |needles: &[&str]| ids.iter().any(|id| needles.iter().any(|n| id.contains(n)));
    match status {
        200..=299 if !model::error_in_success(body) => ResetAnswer::Accepted,
        501 => ResetAnswer::TypeRefused,
        400 if has(TYPE_REFUSALS) => ResetAnswer::TypeRefused,
        409 => ResetAnswer::StateConflict,
        400 | 200..=299 if has(STATE_REFUSALS) => ResetAnswer::StateConflict,
        _ => ResetAnswer::Failed,
    }
}

/// Whether `state` already is the end state of `action` (only On and Off have
/// one: a restart that was refused did not happen).
pub(crate) fn settled(action: PowerAction, state: PowerState) -> bool {
    matches!(
        (action, state),
        (PowerAction::On, PowerState::On)
            | (PowerAction::Off | PowerAction::GracefulOff, PowerState::Off)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn answers() {
        assert_eq!(classify(204, &Value::Null), ResetAnswer::Accepted);
        assert_eq!(
            classify(200, &json!({"@Message.ExtendedInfo": []})),
            ResetAnswer::Accepted
        );
        // sushy-tools: 501 for a ResetType it does not implement.
        assert_eq!(classify(501, &Value::Null), ResetAnswer::TypeRefused);
        let not_in_list = json!({"error": {"code": "Base.1.0.GeneralError", "@Message.ExtendedInfo": [
            {"MessageId": "Base.1.8.ActionParameterValueNotInList", "MessageArgs": ["ForceRestart", "ResetType", "Reset"]}]}});
        assert_eq!(classify(400, &not_in_list), ResetAnswer::TypeRefused);
        let idrac_on = json!({"error": {"code": "Base.1.2.GeneralError", "@Message.ExtendedInfo": [
            {"Message": "Server is already powered ON.", "MessageId": "IDRAC.1.6.PSU501"}]}});
        assert_eq!(classify(409, &idrac_on), ResetAnswer::StateConflict);
        let ilo_off = json!({"error": {"code": "iLO.0.10.ExtendedInfo", "@Message.ExtendedInfo": [
            {"MessageArgs": ["Power is off"], "MessageId": "iLO.0.10.InvalidOperationForSystemState"}]}});
        assert_eq!(classify(400, &ilo_off), ResetAnswer::StateConflict);
        assert_eq!(
            classify(400, &json!({"error": {"code": "Base.1.0.MalformedJSON"}})),
            ResetAnswer::Failed
        );
        assert_eq!(classify(404, &Value::Null), ResetAnswer::Failed);
        // An error body in a 200 (iDRAC 8) is not an acceptance.
        assert_eq!(
            classify(200, &json!({"error": {"code": "Base.1.0.GeneralError"}})),
            ResetAnswer::Failed
        );
    }

    #[test]
    fn settled_states() {
        assert!(settled(PowerAction::On, PowerState::On));
        assert!(settled(PowerAction::GracefulOff, PowerState::Off));
        assert!(!settled(PowerAction::Reset, PowerState::On));
        assert!(!settled(PowerAction::Off, PowerState::Unknown));
    }
}
