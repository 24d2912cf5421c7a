//! Pure choices of Redfish enumeration values: reset types, boot targets,
//! override persistence and boot modes, honouring `@Redfish.AllowableValues`
//! (or an ActionInfo's `AllowableValues`) when the BMC publishes them.
//!
//! Without a published list the first (standard) candidate is used and the
//! BMC gets the final word.

use crate::{BmcError, BootDevice, BootMode, BootPersistence, PowerAction};

/// Pick the first candidate the BMC allows; with no list, the first candidate.
pub(crate) fn pick(
    what: &str,
    candidates: &[&'static str],
    allowed: Option<&[String]>,
) -> Result<&'static str, BmcError> {
    let Some(first) = candidates.first() else {
        return Err(BmcError::NotSupported(format!("{what}: no Redfish value")));
    };
    match allowed {
        None => Ok(first),
        Some(list) => candidates
            .iter()
            .find(|c| list.iter().any(|a| a == *c))
            .copied()
            .ok_or_else(|| {
                BmcError::NotSupported(format!(
                    "{what}: the BMC allows only {list:?}, needed one of {candidates:?}"
                ))
            }),
    }
}

/// `ResetType` candidates for a power action, in order of preference.
///
/// - `On`: `On`, else `ForceOn`.
/// - `Off`: `ForceOff`.
/// - `GracefulOff`: `GracefulShutdown` only: never silently escalated to a hard
///   power-off (the caller may issue [`PowerAction::Off`] after a
///   `NotSupported` error or a shutdown that does not complete).
/// - `Reset`: `ForceRestart`, else `PowerCycle`.
/// - `Cycle`: `PowerCycle`, else `ForceRestart`.
pub(crate) fn reset_candidates(action: PowerAction) -> &'static [&'static str] {
    match action {
        PowerAction::On => &["On", "ForceOn"],
        PowerAction::Off => &["ForceOff"],
        PowerAction::GracefulOff => &["GracefulShutdown"],
        PowerAction::Reset => &["ForceRestart", "PowerCycle"],
        PowerAction::Cycle => &["PowerCycle", "ForceRestart"],
    }
}

/// The `ResetType` to send for `action`.
pub(crate) fn reset_type(
    action: PowerAction,
    allowed: Option<&[String]>,
) -> Result<&'static str, BmcError> {
    pick(
        &format!("power {action:?}"),
        reset_candidates(action),
        allowed,
    )
}

/// The `BootSourceOverrideTarget` for a device.
pub(crate) fn boot_target(
    device: BootDevice,
    allowed: Option<&[String]>,
) -> Result<&'static str, BmcError> {
    let candidates: &[&'static str] = match device {
        BootDevice::Pxe => &["Pxe"],
        BootDevice::UefiHttp => &["UefiHttp"],
        BootDevice::Disk => &["Hdd"],
        BootDevice::VirtualCd => &["Cd"],
    };
    pick(&format!("boot device {device:?}"), candidates, allowed)
}

/// The `BootSourceOverrideEnabled` value for a persistence.
pub(crate) fn override_enabled(
    persistence: BootPersistence,
    allowed: Option<&[String]>,
) -> Result<&'static str, BmcError> {
    let candidates: &[&'static str] = match persistence {
        BootPersistence::Once => &["Once"],
        BootPersistence::Persistent => &["Continuous"],
    };
    pick(
        &format!("boot persistence {persistence:?}"),
        candidates,
        allowed,
    )
}

/// The `BootSourceOverrideMode` value for a boot mode (Secure Boot is a
/// separate resource; its override mode is `UEFI`).
pub(crate) fn boot_mode(
    mode: BootMode,
    allowed: Option<&[String]>,
) -> Result<&'static str, BmcError> {
    let candidates: &[&'static str] = match mode {
        BootMode::Uefi | BootMode::UefiSecureBoot => &["UEFI"],
        BootMode::Legacy => &["Legacy"],
    };
    pick(&format!("boot mode {mode:?}"), candidates, allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_without_allowable_values() {
        assert_eq!(reset_type(PowerAction::On, None).ok(), Some("On"));
        assert_eq!(reset_type(PowerAction::Off, None).ok(), Some("ForceOff"));
        assert_eq!(
            reset_type(PowerAction::GracefulOff, None).ok(),
            Some("GracefulShutdown")
        );
        assert_eq!(
            reset_type(PowerAction::Reset, None).ok(),
            Some("ForceRestart")
        );
        assert_eq!(
            reset_type(PowerAction::Cycle, None).ok(),
            Some("PowerCycle")
        );
        assert_eq!(boot_target(BootDevice::Disk, None).ok(), Some("Hdd"));
        assert_eq!(
            override_enabled(BootPersistence::Once, None).ok(),
            Some("Once")
        );
        assert_eq!(boot_mode(BootMode::UefiSecureBoot, None).ok(), Some("UEFI"));
    }

    #[test]
    fn sushy_tools_list_falls_back_where_needed() {
        // What sushy-tools 2.2 publishes.
        let sushy = list(&[
            "On",
            "ForceOff",
            "GracefulShutdown",
            "GracefulRestart",
            "ForceRestart",
            "Nmi",
            "ForceOn",
        ]);
        assert_eq!(
            reset_type(PowerAction::Cycle, Some(&sushy)).ok(),
            Some("ForceRestart")
        );
        assert_eq!(
            reset_type(PowerAction::Reset, Some(&sushy)).ok(),
            Some("ForceRestart")
        );
        assert_eq!(
            reset_type(PowerAction::GracefulOff, Some(&sushy)).ok(),
            Some("GracefulShutdown")
        );
    }

    #[test]
    fn restricted_lists() {
        let only_force_on = list(&["ForceOn", "ForceOff", "PowerCycle"]);
        assert_eq!(
            reset_type(PowerAction::On, Some(&only_force_on)).ok(),
            Some("ForceOn")
        );
        assert_eq!(
            reset_type(PowerAction::Reset, Some(&only_force_on)).ok(),
            Some("PowerCycle")
        );
        let err = reset_type(PowerAction::GracefulOff, Some(&only_force_on));
        assert!(matches!(err, Err(BmcError::NotSupported(_))), "{err:?}");
        let targets = list(&["None", "Pxe", "Hdd"]);
        assert!(matches!(
            boot_target(BootDevice::UefiHttp, Some(&targets)),
            Err(BmcError::NotSupported(_))
        ));
        assert_eq!(
            boot_target(BootDevice::Pxe, Some(&targets)).ok(),
            Some("Pxe")
        );
        let continuous_only = list(&["Disabled", "Continuous"]);
        assert!(matches!(
            override_enabled(BootPersistence::Once, Some(&continuous_only)),
            Err(BmcError::NotSupported(_))
        ));
        let uefi_only = list(&["UEFI"]);
        assert!(matches!(
            boot_mode(BootMode::Legacy, Some(&uefi_only)),
            Err(BmcError::NotSupported(_))
        ));
    }
}
