//! Tolerant readers for Redfish documents.
//!
//! Documents are read as untyped JSON: unknown fields, OEM sections, missing
//! optional properties and `null`s are all fine; a wrong type for a property
//! reads as "absent" instead of failing the whole document.

use serde_json::Value;

use crate::{PowerState, SystemIdentity, ids};

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

/// Read `Actions["#<name>"]`; `None` when the resource does not advertise it.
pub(crate) fn action(resource: &Value, name: &str, parameter: &str) -> Option<ActionRef> {
    let a = resource
        .get("Actions")
        .and_then(|x| x.get(format!("#{name}")))
        .filter(|a| a.is_object())?;
    Some(ActionRef {
        target: string(a, "target"),
        allowed: allowable(a, parameter),
        action_info: string(a, "@Redfish.ActionInfo"),
    })
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
        uuid: string(system, "UUID").and_then(|u| ids::uuid(&u)),
        bios_version: string(system, "BiosVersion"),
        bmc_firmware_version: None,
        mac_addresses: Vec::new(),
    }
}

/// The MAC of an EthernetInterface (`MACAddress`, else `PermanentMACAddress`),
/// lower case; placeholders (empty, all-zero, all-FF) are skipped.
pub(crate) fn mac(interface: &Value) -> Option<String> {
    ["MACAddress", "PermanentMACAddress"]
        .iter()
        .find_map(|k| string(interface, k).and_then(|m| ids::mac(&m)))
}

/// The first `Links.ManagedBy` manager.
pub(crate) fn managed_by(system: &Value) -> Option<String> {
    ids(system.get("Links").and_then(|l| l.get("ManagedBy")))
        .into_iter()
        .next()
}

/// Where a service keeps its sessions collection, as far as the service root
/// tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionsAt {
    /// `Links.Sessions` of the service root (DSP0266 requires it; some
    /// services keep the collection outside the SessionService, e.g. at
    /// `/redfish/v1/Sessions`, and say so only there).
    Collection(String),
    /// Only a `SessionService` is linked: its `Sessions` property names the
    /// collection (read it; do not guess `<service>/Sessions`).
    Service(String),
    /// No sessions: HTTP basic authentication (sushy-tools).
    Nowhere,
}

/// Whether the service root advertises `$expand=.` (subordinate resources, collection members
/// included, without the `Links` section).
pub(crate) fn expands_without_links(root: &Value) -> bool {
    root.pointer("/ProtocolFeaturesSupported/ExpandQuery/NoLinks")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Where the service root says the sessions collection is.
pub(crate) fn sessions_at(root: &Value) -> SessionsAt {
    if let Some(l) = root.get("Links").and_then(|l| link(l, "Sessions")) {
        return SessionsAt::Collection(l);
    }
    match link(root, "SessionService") {
        Some(s) => SessionsAt::Service(s),
        None => SessionsAt::Nowhere,
    }
}

/// The ETag of a resource: the `ETag` response header, else the body's
/// `@odata.etag` (AMI-based BMCs publish it in the body).
pub(crate) fn etag(header: Option<&str>, doc: &Value) -> Option<String> {
    header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_string)
        .or_else(|| string(doc, "@odata.etag"))
}

/// The vendors whose documented behaviour the driver adapts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Vendor {
    /// Supermicro: resets `BootSourceOverrideMode` to its default unless every
    /// boot PATCH carries it (DMTF Redfishtool#106, metal-operator#607), and
    /// presents virtual media as `UsbCd` (sushy `set_system_boot_options`).
    Supermicro,
    /// Anyone else: the standard behaviour.
    Other,
}

/// The vendor of a ComputerSystem, from its `Manufacturer`.
pub(crate) fn vendor(system: &Value) -> Vendor {
    match string(system, "Manufacturer") {
        Some(m) if m.to_ascii_lowercase().contains("supermicro") => Vendor::Supermicro,
        _ => Vendor::Other,
    }
}

/// The `@Message.ExtendedInfo` entries of an error body: under `error`, at
/// the top level, and per property (`<Prop>@Message.ExtendedInfo`, as
/// OpenBMC's bmcweb answers).
fn extended_info(body: &Value) -> Vec<&Value> {
    let scopes = [Some(body), body.get("error"), body.get("Boot")];
    scopes
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|obj| obj.iter())
        .filter(|(k, _)| k.ends_with("@Message.ExtendedInfo"))
        .filter_map(|(_, infos)| infos.as_array())
        .flatten()
        .collect()
}

/// Whether an error body names `property` (in `RelatedProperties`,
/// `MessageArgs`, a message text, or as a `<property>@Message.ExtendedInfo`
/// key): how iLO 5 (`PropertyNotWritable`) and iDRAC 8 (`SYS410`, "read-only
/// and depends on other attributes") say which part of a PATCH they refuse.
pub(crate) fn names_property(body: &Value, property: &str) -> bool {
    let mentions = |v: &Value| match v {
        Value::String(s) => s.contains(property),
        Value::Array(a) => a
            .iter()
            .any(|x| x.as_str().is_some_and(|s| s.contains(property))),
        _ => false,
    };
    let keyed = |v: &Value| {
        v.as_object().is_some_and(|o| {
            o.keys()
                .any(|k| k.starts_with(property) && k.ends_with("@Message.ExtendedInfo"))
        })
    };
    keyed(body)
        || body.get("Boot").is_some_and(keyed)
        || body
            .get("error")
            .and_then(|e| e.get("message"))
            .is_some_and(mentions)
        || extended_info(body).iter().any(|info| {
            ["RelatedProperties", "MessageArgs", "Message"]
                .iter()
                .any(|k| info.get(*k).is_some_and(mentions))
        })
}

/// The `MessageId`s of an error body (e.g. `Base.1.8.ActionParameterValueNotInList`).
pub(crate) fn message_ids(body: &Value) -> Vec<String> {
    let mut ids: Vec<String> = extended_info(body)
        .iter()
        .filter_map(|i| string(i, "MessageId"))
        .collect();
    if let Some(code) = body.get("error").and_then(|e| string(e, "code")) {
        ids.push(code);
    }
    ids
}

/// Whether a 2xx answer still carries an error: some iDRAC 8 firmware answers
/// a refused boot PATCH with 200 and the error in the body
/// (community.general#5091), which would otherwise read as success.
pub(crate) fn error_in_success(body: &Value) -> bool {
    body.get("error").is_some_and(Value::is_object)
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
        let a = action(&sys, "ComputerSystem.Reset", "ResetType").unwrap();
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
        assert_eq!(action(&sys, "ComputerSystem.Reset", "ResetType"), None);
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
        // A placeholder MACAddress falls back to the burnt-in PermanentMACAddress.
        assert_eq!(
            mac(&json!({"MACAddress": "00:00:00:00:00:00", "PermanentMACAddress": "B8:3F:D2:D7:F7:4A"}))
                .as_deref(),
            Some("b8:3f:d2:d7:f7:4a")
        );
        assert_eq!(
            sessions_at(
                &json!({"Links": {"Sessions": {"@odata.id": "/redfish/v1/Sessions"}},
                "SessionService": {"@odata.id": "/redfish/v1/SessionService"}})
            ),
            SessionsAt::Collection("/redfish/v1/Sessions".into())
        );
        assert_eq!(
            sessions_at(&json!({"SessionService": {"@odata.id": "/redfish/v1/SessionService/"}})),
            SessionsAt::Service("/redfish/v1/SessionService/".into())
        );
        assert_eq!(
            sessions_at(&json!({"Systems": {"@odata.id": "/redfish/v1/Systems"}})),
            SessionsAt::Nowhere
        );
        assert!(is_cd(&json!({"MediaTypes": ["CD", "DVD"]})));
        assert!(!is_cd(&json!({"MediaTypes": ["Floppy", "USBStick"]})));
        assert!(is_cd(&json!({"Id": "Cd"})));
    }

    #[test]
    fn placeholder_identity_reads_as_absent() {
        let sys = json!({"UUID": "00000000-0000-0000-0000-000000000000", "Manufacturer": "NVIDIA"});
        assert_eq!(identity(&sys).uuid, None);
        let sys = json!({"UUID": "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"});
        assert_eq!(identity(&sys).uuid, None);
    }

    #[test]
    fn etag_from_header_else_body() {
        let doc = json!({"@odata.etag": "W/\"1682532272\""});
        assert_eq!(etag(Some("\"abc\""), &doc).as_deref(), Some("\"abc\""));
        assert_eq!(etag(None, &doc).as_deref(), Some("W/\"1682532272\""));
        assert_eq!(etag(Some(" "), &json!({})), None);
    }

    #[test]
    fn vendors() {
        assert_eq!(
            vendor(&json!({"Manufacturer": "Supermicro"})),
            Vendor::Supermicro
        );
        assert_eq!(
            vendor(&json!({"Manufacturer": "SUPERMICRO Computer"})),
            Vendor::Supermicro
        );
        assert_eq!(vendor(&json!({"Manufacturer": "HPE"})), Vendor::Other);
        assert_eq!(vendor(&json!({})), Vendor::Other);
    }

    #[test]
    fn refusals_that_name_the_boot_mode() {
        // iLO 5: PropertyNotWritable with the property in MessageArgs.
        let ilo = json!({"error": {"code": "iLO.0.10.ExtendedInfo", "message": "See @Message.ExtendedInfo for more information.",
            "@Message.ExtendedInfo": [{"MessageId": "Base.1.4.PropertyNotWritable", "MessageArgs": ["BootSourceOverrideMode"]}]}});
        assert!(names_property(&ilo, "BootSourceOverrideMode"));
        assert!(!names_property(&ilo, "BootSourceOverrideTarget"));
        // iDRAC 8 (13G): SYS410 with RelatedProperties.
        let idrac = json!({"error": {"@Message.ExtendedInfo": [
            {"Message": "Unable to set the attribute value because it depends on other attribute(s).",
             "MessageId": "IDRAC.1.6.SYS444", "RelatedProperties": ["BootSourceOverrideEnabled"]},
            {"Message": "Unable to modify the attribute because the attribute is read-only and depends on other attributes.",
             "MessageId": "IDRAC.1.6.SYS410", "RelatedProperties": ["#/Boot/BootSourceOverrideMode"]}],
            "code": "Base.1.2.GeneralError", "message": "A general error has occurred."}});
        assert!(names_property(&idrac, "BootSourceOverrideMode"));
        assert_eq!(message_ids(&idrac)[1], "IDRAC.1.6.SYS410");
        // bmcweb: per-property annotation.
        let bmcweb = json!({"BootSourceOverrideMode@Message.ExtendedInfo": [
            {"MessageId": "Base.1.8.1.PropertyNotWritable", "Message": "The property is read only."}]});
        assert!(names_property(&bmcweb, "BootSourceOverrideMode"));
        assert!(!names_property(
            &json!({"error": {"message": "general"}}),
            "BootSourceOverrideMode"
        ));
    }

    #[test]
    fn error_bodies_in_2xx_answers() {
        assert!(error_in_success(
            &json!({"error": {"code": "Base.1.2.GeneralError"}})
        ));
        assert!(!error_in_success(
            &json!({"@Message.ExtendedInfo": [{"MessageId": "Base.1.8.Success"}]})
        ));
        assert!(!error_in_success(&Value::Null));
    }
}
