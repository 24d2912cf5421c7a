//! Pure choices of Redfish enumeration values: reset types, boot targets,
//! override persistence and boot modes, honouring `@Redfish.AllowableValues`
//! (or an ActionInfo's `AllowableValues`) when the BMC publishes them.
//!
//! Without a published list the first (standard) candidate is used and the
//! BMC gets the final word.

use super::model::Vendor;
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

/// The `ResetType`s to try for `action`, in order. With a published list,
/// only the first allowed one (the BMC said what it takes). Without one, every
/// candidate, so a BMC that refuses `ForceRestart` as "not in the list" is
/// asked for `PowerCycle` next instead of failing the request.
pub(crate) fn reset_order(
    action: PowerAction,
    allowed: Option<&[String]>,
) -> Result<Vec<&'static str>, BmcError> {
    match allowed {
        Some(_) => reset_type(action, allowed).map(|t| vec![t]),
        None => Ok(reset_candidates(action).to_vec()),
    }
}

/// `BootSourceOverrideTarget` candidates for a device, in order of
/// preference: the standard value first, then the vendor variants some BMCs
/// list instead (`UefiPxe`, `UefiHdd`, `UsbCd`). Supermicro X11/X12 list both
/// `Cd` and `UsbCd` but boot virtual media only from `UsbCd` (sushy's
/// `set_system_boot_options`), so there `UsbCd` comes first.
pub(crate) fn target_candidates(device: BootDevice, vendor: Vendor) -> &'static [&'static str] {
    match (device, vendor) {
        (BootDevice::Pxe, _) => &["Pxe", "UefiPxe"],
        (BootDevice::UefiHttp, _) => &["UefiHttp"],
        (BootDevice::Disk, _) => &["Hdd", "UefiHdd"],
        (BootDevice::VirtualCd, Vendor::Supermicro) => &["UsbCd", "Cd"],
        (BootDevice::VirtualCd, Vendor::Other) => &["Cd", "UsbCd"],
    }
}

/// The `BootSourceOverrideTarget` for a device, chosen from what the system
/// lists; the standard value when it lists nothing (a vendor variant is only
/// ever sent when the system offers it).
pub(crate) fn boot_target(
    device: BootDevice,
    vendor: Vendor,
    allowed: Option<&[String]>,
) -> Result<&'static str, BmcError> {
    let vendor = if allowed.is_some() {
        vendor
    } else {
        Vendor::Other
    };
    pick(
        &format!("boot device {device:?}"),
        target_candidates(device, vendor),
        allowed,
    )
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
        assert_eq!(
            boot_target(BootDevice::Disk, Vendor::Other, None).ok(),
            Some("Hdd")
        );
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
            boot_target(BootDevice::UefiHttp, Vendor::Other, Some(&targets)),
            Err(BmcError::NotSupported(_))
        ));
        assert_eq!(
            boot_target(BootDevice::Pxe, Vendor::Other, Some(&targets)).ok(),
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

    #[test]
    fn vendor_targets_from_the_published_list() {
        // Supermicro SYS-821GE-TNHR (libredfish mockup): both Cd and UsbCd listed.
        let smc = list(&[
            "None",
            "Pxe",
            "Floppy",
            "Cd",
            "Usb",
            "Hdd",
            "BiosSetup",
            "UsbCd",
            "UefiBootNext",
            "UefiHttp",
        ]);
        assert_eq!(
            boot_target(BootDevice::VirtualCd, Vendor::Supermicro, Some(&smc)).ok(),
            Some("UsbCd")
        );
        assert_eq!(
            boot_target(BootDevice::VirtualCd, Vendor::Other, Some(&smc)).ok(),
            Some("Cd")
        );
        // A BMC that lists only the UEFI-prefixed variants.
        let uefi_only = list(&["None", "UefiPxe", "UefiHdd", "UsbCd"]);
        assert_eq!(
            boot_target(BootDevice::Pxe, Vendor::Other, Some(&uefi_only)).ok(),
            Some("UefiPxe")
        );
        assert_eq!(
            boot_target(BootDevice::Disk, Vendor::Other, Some(&uefi_only)).ok(),
            Some("UefiHdd")
        );
        assert_eq!(
            boot_target(BootDevice::VirtualCd, Vendor::Other, Some(&uefi_only)).ok(),
            Some("UsbCd")
        );
        // Nothing listed: the standard value.
        assert_eq!(
            boot_target(BootDevice::VirtualCd, Vendor::Supermicro, None).ok(),
            Some("Cd")
        );
    }

    #[test]
    fn reset_order_tries_every_candidate_only_without_a_list() {
        assert_eq!(
            reset_order(PowerAction::Reset, None).ok(),
            Some(vec!["ForceRestart", "PowerCycle"])
        );
        let l = list(&["On", "ForceOff", "PowerCycle"]);
        assert_eq!(
            reset_order(PowerAction::Reset, Some(&l)).ok(),
            Some(vec!["PowerCycle"])
        );
        assert!(matches!(
            reset_order(PowerAction::GracefulOff, Some(&l)),
            Err(BmcError::NotSupported(_))
        ));
    }
}
