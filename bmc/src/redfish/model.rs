//! Tolerant readers for Redfish documents.
//!
//! Documents are read as untyped JSON: unknown fields, OEM sections, missing
//! optional properties and `null`s are all fine; a wrong type for a property
//! reads as "absent" instead of failing the whole document.

use serde_json::Value;

use crate::{PowerState, SystemIdentity};

/// A non-empty string property.
pub(crate) fn string(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The `@odata.id` of a link property (`{"Key": {"@odata.id": "..."}}`).
pub(crate) fn link(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(|l| l.get("@odata.id"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The `@odata.id`s of a collection's `Members`, or of a link array.
pub(crate) fn ids(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| m.get("@odata.id").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `Members` of a collection.
pub(crate) fn members(v: &Value) -> Vec<String> {
    ids(v.get("Members"))
}

/// `<prop>@Redfish.AllowableValues`, when published.
pub(crate) fn allowable(v: &Value, prop: &str) -> Option<Vec<String>> {
    v.get(format!("{prop}@Redfish.AllowableValues"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
}

/// The allowable values of one parameter in an ActionInfo document.
pub(crate) fn action_info_allowable(info: &Value, parameter: &str) -> Option<Vec<String>> {
    info.get("Parameters")?
        .as_array()?
        .iter()
        .find(|p| p.get("Name").and_then(Value::as_str) == Some(parameter))?
        .get("AllowableValues")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
}

/// A Redfish action of a resource: its target, inline allowable values of
/// `parameter`, and the ActionInfo link, when present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ActionRef {
    pub target: Option<String>,
    pub allowed: Option<Vec<String>>,
    pub action_info: Option<String>,
}

/// Read `Actions["#<name>"]`.
pub(crate) fn action(resource: &Value, name: &str, parameter: &str) -> ActionRef {
    let Some(a) = resource
        .get("Actions")
        .and_then(|x| x.get(format!("#{name}")))
    else {
        return ActionRef::default();
    };
    ActionRef {
        target: string(a, "target"),
        allowed: allowable(a, parameter),
        action_info: string(a, "@Redfish.ActionInfo"),
    }
}

/// `PowerState` of a ComputerSystem. Transitional states count as the state
/// being entered (`PoweringOn` → On, `PoweringOff` → Off), as Ironic does.
pub(crate) fn power_state(system: &Value) -> PowerState {
    match system.get("PowerState").and_then(Value::as_str) {
        Some("On" | "PoweringOn") => PowerState::On,
        Some("Off" | "PoweringOff") => PowerState::Off,
        _ => PowerState::Unknown,
    }
}

/// The identity fields found on the ComputerSystem itself.
pub(crate) fn identity(system: &Value) -> SystemIdentity {
    SystemIdentity {
        manufacturer: string(system, "Manufacturer"),
        model: string(system, "Model"),
        serial_number: string(system, "SerialNumber"),
        uuid: string(system, "UUID").map(|u| u.to_ascii_lowercase()),
        bios_version: string(system, "BiosVersion"),
        bmc_firmware_version: None,
        mac_addresses: Vec::new(),
    }
}

/// The MAC of an EthernetInterface (`MACAddress`, else `PermanentMACAddress`),
/// lower case; all-zero and empty values are skipped.
pub(crate) fn mac(interface: &Value) -> Option<String> {
    string(interface, "MACAddress")
        .or_else(|| string(interface, "PermanentMACAddress"))
        .map(|m| m.to_ascii_lowercase())
        .filter(|m| m.chars().any(|c| c.is_ascii_hexdigit() && c != '0'))
}

/// The first `Links.ManagedBy` manager.
pub(crate) fn managed_by(system: &Value) -> Option<String> {
    ids(system.get("Links").and_then(|l| l.get("ManagedBy")))
        .into_iter()
        .next()
}

/// The sessions collection advertised by a service root: `Links.Sessions`,
/// else `SessionService` + `/Sessions`.
pub(crate) fn sessions_link(root: &Value) -> Option<String> {
    root.get("Links")
        .and_then(|l| link(l, "Sessions"))
        .or_else(|| {
            link(root, "SessionService").map(|s| format!("{}/Sessions", s.trim_end_matches('/')))
        })
}

/// Whether a VirtualMedia resource can hold a CD/DVD image.
pub(crate) fn is_cd(media: &Value) -> bool {
    match media.get("MediaTypes").and_then(Value::as_array) {
        Some(types) => types
            .iter()
            .filter_map(Value::as_str)
            .any(|t| t.eq_ignore_ascii_case("CD") || t.eq_ignore_ascii_case("DVD")),
        None => string(media, "Id").is_some_and(|id| id.to_ascii_lowercase().contains("cd")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_dmtf_style_system_with_oem_and_nulls() {
        let sys = json!({
            "@odata.id": "/redfish/v1/Systems/437XR1138R2",
            "Manufacturer": "Contoso", "Model": "3500RX", "SerialNumber": "437XR1138R2",
            "UUID": "38947555-7742-3448-3784-823347823834", "BiosVersion": "P79 v1.33 (02/28/2015)",
            "PowerState": "PoweringOn", "SKU": null, "Oem": {"Contoso": {"Anything": [1, 2]}},
            "Links": {"ManagedBy": [{"@odata.id": "/redfish/v1/Managers/BMC"}]},
            "Actions": {"#ComputerSystem.Reset": {
                "target": "/redfish/v1/Systems/437XR1138R2/Actions/ComputerSystem.Reset",
                "@Redfish.ActionInfo": "/redfish/v1/Systems/437XR1138R2/ResetActionInfo"}}
        });
        let id = identity(&sys);
        assert_eq!(id.manufacturer.as_deref(), Some("Contoso"));
        assert_eq!(
            id.uuid.as_deref(),
            Some("38947555-7742-3448-3784-823347823834")
        );
        assert_eq!(power_state(&sys), PowerState::On);
        assert_eq!(
            managed_by(&sys).as_deref(),
            Some("/redfish/v1/Managers/BMC")
        );
        let a = action(&sys, "ComputerSystem.Reset", "ResetType");
        assert_eq!(a.allowed, None);
        assert_eq!(
            a.action_info.as_deref(),
            Some("/redfish/v1/Systems/437XR1138R2/ResetActionInfo")
        );
    }

    #[test]
    fn wrong_types_read_as_absent() {
        let sys = json!({"Manufacturer": 42, "Model": "", "PowerState": null, "Links": "nope"});
        let id = identity(&sys);
        assert_eq!(id, SystemIdentity::default());
        assert_eq!(power_state(&sys), PowerState::Unknown);
        assert_eq!(managed_by(&sys), None);
    }

    #[test]
    fn allowable_values_inline_and_action_info() {
        let sys =
            json!({"Boot": {"BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Hdd"]}});
        assert_eq!(
            allowable(&sys["Boot"], "BootSourceOverrideTarget"),
            Some(vec!["Pxe".to_string(), "Hdd".to_string()])
        );
        assert_eq!(allowable(&sys["Boot"], "BootSourceOverrideMode"), None);
        let info = json!({"Parameters": [{"Name": "ResetType", "Required": true,
            "AllowableValues": ["On", "ForceOff", "PowerCycle"]}]});
        assert_eq!(
            action_info_allowable(&info, "ResetType"),
            Some(vec![
                "On".to_string(),
                "ForceOff".to_string(),
                "PowerCycle".to_string()
            ])
        );
        assert_eq!(action_info_allowable(&info, "Other"), None);
    }

    #[test]
    fn macs_sessions_and_media() {
        assert_eq!(
            mac(&json!({"MACAddress": "52:54:00:AA:BB:CC"})).as_deref(),
            Some("52:54:00:aa:bb:cc")
        );
        assert_eq!(
            mac(&json!({"MACAddress": "", "PermanentMACAddress": "52:54:00:AA:BB:CD"})).as_deref(),
            Some("52:54:00:aa:bb:cd")
        );
        assert_eq!(mac(&json!({"MACAddress": "00:00:00:00:00:00"})), None);
        assert_eq!(
            sessions_link(&json!({"Links": {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}})).as_deref(),
            Some("/redfish/v1/SessionService/Sessions")
        );
        assert_eq!(
            sessions_link(&json!({"SessionService": {"@odata.id": "/redfish/v1/SessionService/"}}))
                .as_deref(),
            Some("/redfish/v1/SessionService/Sessions")
        );
        assert_eq!(
            sessions_link(&json!({"Systems": {"@odata.id": "/redfish/v1/Systems"}})),
            None
        );
        assert!(is_cd(&json!({"MediaTypes": ["CD", "DVD"]})));
        assert!(!is_cd(&json!({"MediaTypes": ["Floppy", "USBStick"]})));
        assert!(is_cd(&json!({"Id": "Cd"})));
    }
}
