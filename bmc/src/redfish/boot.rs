//! Pure decisions for a boot override: whether the system has one at all,
//! which values to send, how `BootSourceOverrideMode` travels, and what to do
//! when the BMC refuses part of the request.
//!
//! Vendor behaviours handled here (public trackers cited where they are
//! documented):
//! - iLO 5 and iDRAC 8 (13G) refuse `BootSourceOverrideMode` in the boot
//!   PATCH, even unchanged, with a 400 naming the property
//!   (community.general#3509, #5091): the mode is only sent when it changes,
//!   and a refusal that names it is retried without it (unchanged) or as a
//!   separate PATCH (changed).
//! - Supermicro resets the mode to its default unless every boot PATCH
//!   carries it (DMTF Redfishtool#106, metal-operator#607): the mode is echoed.
//! - DPUs, GPU baseboards and some blades publish no boot override, or a
//!   `Boot` with only `BootOptions`/`BootOrder`: `NotSupported`, never a blind
//!   PATCH that a lenient BMC accepts and ignores.
//! - A refused request must not leave the mode changed: a separate mode
//!   switch is undone when the target PATCH that follows it is refused.
//! - Secure Boot is not touched here; it is its own request
//!   ([`crate::Bmc::set_secure_boot`]).

use serde_json::{Map, Value, json};

use super::model::{self, Vendor};
use super::select;
use crate::{BmcError, BootDevice, BootMode, BootPersistence};

/// The boot properties of a ComputerSystem.
pub(crate) const TARGET: &str = "BootSourceOverrideTarget";
pub(crate) const ENABLED: &str = "BootSourceOverrideEnabled";
pub(crate) const MODE: &str = "BootSourceOverrideMode";

/// How `BootSourceOverrideMode` is handled in the boot PATCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModeStep {
    /// Not sent: the system publishes no mode, or already has the wanted one.
    Omit,
    /// Sent unchanged, because the vendor resets it otherwise (Supermicro).
    Echo(&'static str),
    /// Changed from `from` (`None`: not published) to `to`.
    Switch {
        from: Option<String>,
        to: &'static str,
    },
}

/// One boot PATCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BootPlan {
    pub target: &'static str,
    pub enabled: &'static str,
    pub mode: ModeStep,
}

impl BootPlan {
    /// `{"Boot": {...}}` with the mode as [`ModeStep`] says.
    pub fn body(&self) -> Value {
        let mut boot = Map::new();
        boot.insert(TARGET.into(), json!(self.target));
        boot.insert(ENABLED.into(), json!(self.enabled));
        match &self.mode {
            ModeStep::Omit => {}
            ModeStep::Echo(m) | ModeStep::Switch { to: m, .. } => {
                boot.insert(MODE.into(), json!(m));
            }
        }
        json!({ "Boot": boot })
    }

    /// The same PATCH without the mode.
    pub fn without_mode(&self) -> BootPlan {
        BootPlan {
            mode: ModeStep::Omit,
            ..self.clone()
        }
    }
}

/// What to do for a boot request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// One PATCH.
    Patch(BootPlan),
    /// The target is offered only in the other mode (sushy-tools lists
    /// `UefiHttp` in UEFI mode only): switch the mode alone, read the system
    /// again and plan once more; undo the switch if that fails.
    SwitchModeFirst {
        from: Option<String>,
        to: &'static str,
    },
}

/// A PATCH body that sets only the mode.
pub(crate) fn mode_body(mode: &str) -> Value {
    json!({ "Boot": { MODE: mode } })
}

/// Plan a boot request against the ComputerSystem document.
pub(crate) fn plan(
    system: &Value,
    device: BootDevice,
    persistence: BootPersistence,
    mode: BootMode,
) -> Result<Plan, BmcError> {
    let boot = system
        .get("Boot")
        .filter(|b| b.is_object())
        .ok_or_else(|| {
            BmcError::NotSupported("the system publishes no boot override (no Boot)".into())
        })?;
    let targets = model::allowable(boot, TARGET);
    if boot.get(TARGET).is_none() && targets.is_none() {
        return Err(BmcError::NotSupported(format!(
            "the system publishes no boot override ({TARGET} absent; Boot has only {:?})",
            boot.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        )));
    }
    let vendor = model::vendor(system);
    let enabled =
        select::override_enabled(persistence, model::allowable(boot, ENABLED).as_deref())?;
    let mode_step = mode_step(boot, vendor, mode)?;
    match select::boot_target(device, vendor, targets.as_deref()) {
        Ok(target) => Ok(Plan::Patch(BootPlan {
            target,
            enabled,
            mode: mode_step,
        })),
        Err(e) => match mode_step {
            ModeStep::Switch { from, to } => Ok(Plan::SwitchModeFirst { from, to }),
            _ => Err(e),
        },
    }
}

fn mode_step(boot: &Value, vendor: Vendor, mode: BootMode) -> Result<ModeStep, BmcError> {
    let allowed = model::allowable(boot, MODE);
    let current = model::string(boot, MODE);
    if current.is_none() && allowed.is_none() {
        return Ok(ModeStep::Omit);
    }
    let wanted = select::boot_mode(mode, allowed.as_deref())?;
    Ok(match current {
        Some(c) if c == wanted => match vendor {
            Vendor::Supermicro => ModeStep::Echo(wanted),
            Vendor::Other => ModeStep::Omit,
        },
        from => ModeStep::Switch { from, to: wanted },
    })
}

/// What to do after the BMC refused a boot PATCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// Nothing: the refusal stands.
    Fail,
    /// The mode was only echoed and the BMC refuses it: send the PATCH again
    /// without it (the mode is already right).
    RetryWithoutMode,
    /// The mode must change and the BMC refuses it together with the target
    /// (iDRAC 8): switch it alone first, then send target and persistence;
    /// undo the switch if the second PATCH is refused.
    ModeAlone {
        from: Option<String>,
        to: &'static str,
    },
}

/// The fallback for a refused boot PATCH: only when the refusal names the
/// mode, never for other refusals (those are the BMC's answer).
pub(crate) fn after_refusal(step: &ModeStep, refusal_names_mode: bool) -> Fallback {
    match (step, refusal_names_mode) {
        (ModeStep::Echo(_), true) => Fallback::RetryWithoutMode,
        (ModeStep::Switch { from, to }, true) => Fallback::ModeAlone {
            from: from.clone(),
            to,
        },
        _ => Fallback::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sys(boot: Value) -> Value {
        json!({"Manufacturer": "Contoso", "Boot": boot})
    }

    fn patch(p: Result<Plan, BmcError>) -> BootPlan {
        match p {
            Ok(Plan::Patch(b)) => b,
            other => panic!("expected one PATCH, got {other:?}"),
        }
    }

    #[test]
    fn unchanged_mode_is_not_sent() {
        // HPE iLO 5 (libredfish mockup, DL385 Gen10 Plus v2): mode UEFI, no list.
        let ilo = sys(
            json!({"BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideMode": "UEFI",
            "BootSourceOverrideTarget": "None",
            "BootSourceOverrideTarget@Redfish.AllowableValues": ["None", "Cd", "Hdd", "Usb", "Pxe", "UefiHttp"]}),
        );
        let p = patch(plan(
            &ilo,
            BootDevice::Pxe,
            BootPersistence::Once,
            BootMode::Uefi,
        ));
        assert_eq!(p.mode, ModeStep::Omit);
        assert_eq!(
            p.body(),
            json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}})
        );
    }

    #[test]
    fn supermicro_gets_the_mode_echoed() {
        let mut smc = sys(
            json!({"BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideMode": "UEFI",
            "BootSourceOverrideTarget": "Pxe",
            "BootSourceOverrideTarget@Redfish.AllowableValues": ["None", "Pxe", "Cd", "Hdd", "UsbCd", "UefiHttp"]}),
        );
        smc["Manufacturer"] = json!("Supermicro");
        let p = patch(plan(
            &smc,
            BootDevice::VirtualCd,
            BootPersistence::Once,
            BootMode::Uefi,
        ));
        assert_eq!(p.mode, ModeStep::Echo("UEFI"));
        assert_eq!(p.target, "UsbCd");
        assert_eq!(p.body()["Boot"]["BootSourceOverrideMode"], "UEFI");
        assert_eq!(after_refusal(&p.mode, true), Fallback::RetryWithoutMode);
        assert_eq!(p.without_mode().body()["Boot"].get(MODE), None);
    }

    #[test]
    fn changed_mode_is_sent_and_split_when_refused() {
        let legacy = sys(
            json!({"BootSourceOverrideMode": "Legacy", "BootSourceOverrideTarget": "None",
            "BootSourceOverrideMode@Redfish.AllowableValues": ["Legacy", "UEFI"]}),
        );
        let p = patch(plan(
            &legacy,
            BootDevice::Pxe,
            BootPersistence::Once,
            BootMode::UefiSecureBoot,
        ));
        let step = ModeStep::Switch {
            from: Some("Legacy".into()),
            to: "UEFI",
        };
        assert_eq!(p.mode, step);
        assert_eq!(p.body()["Boot"]["BootSourceOverrideMode"], "UEFI");
        assert_eq!(
            after_refusal(&p.mode, true),
            Fallback::ModeAlone {
                from: Some("Legacy".into()),
                to: "UEFI"
            }
        );
        // A refusal about something else is the BMC's answer.
        assert_eq!(after_refusal(&p.mode, false), Fallback::Fail);
        assert_eq!(after_refusal(&ModeStep::Omit, true), Fallback::Fail);
    }

    #[test]
    fn unlisted_mode_is_not_supported() {
        let uefi_only = sys(
            json!({"BootSourceOverrideMode": "UEFI", "BootSourceOverrideTarget": "None",
            "BootSourceOverrideMode@Redfish.AllowableValues": ["UEFI"]}),
        );
        let err = plan(
            &uefi_only,
            BootDevice::Pxe,
            BootPersistence::Once,
            BootMode::Legacy,
        );
        assert!(matches!(err, Err(BmcError::NotSupported(_))), "{err:?}");
    }

    #[test]
    fn no_mode_published_means_none_sent() {
        let old = sys(
            json!({"BootSourceOverrideTarget": "None", "BootSourceOverrideEnabled": "Disabled"}),
        );
        let p = patch(plan(
            &old,
            BootDevice::Disk,
            BootPersistence::Persistent,
            BootMode::Legacy,
        ));
        assert_eq!(p.mode, ModeStep::Omit);
        assert_eq!(p.target, "Hdd");
        assert_eq!(p.enabled, "Continuous");
    }

    #[test]
    fn systems_without_boot_override_are_not_supported() {
        // NVIDIA HGX baseboard (libredfish viking mockup): no Boot at all.
        let hgx = json!({"Manufacturer": "NVIDIA", "PowerState": "On"});
        // IBM OpenBMC GA (bmcweb #939): Boot without the override properties.
        let ibm = sys(
            json!({"AutomaticRetryConfig": "Disabled", "BootOptions": {"@odata.id": "/x"},
            "BootOrder": ["Boot0001"]}),
        );
        for s in [hgx, ibm, json!({"Boot": null})] {
            let r = plan(&s, BootDevice::Pxe, BootPersistence::Once, BootMode::Uefi);
            assert!(matches!(r, Err(BmcError::NotSupported(_))), "{s}: {r:?}");
        }
    }

    #[test]
    fn target_offered_only_in_the_other_mode_switches_first() {
        // sushy-tools: UefiHttp is listed only while the mode is UEFI.
        let sushy = sys(
            json!({"BootSourceOverrideMode": "Legacy", "BootSourceOverrideTarget": "None",
            "BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Cd", "Hdd"]}),
        );
        assert_eq!(
            plan(
                &sushy,
                BootDevice::UefiHttp,
                BootPersistence::Once,
                BootMode::Uefi
            ),
            Ok(Plan::SwitchModeFirst {
                from: Some("Legacy".into()),
                to: "UEFI"
            })
        );
        // Already in UEFI and still not listed: not supported.
        let uefi = sys(
            json!({"BootSourceOverrideMode": "UEFI", "BootSourceOverrideTarget": "None",
            "BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Cd", "Hdd"]}),
        );
        assert!(matches!(
            plan(
                &uefi,
                BootDevice::UefiHttp,
                BootPersistence::Once,
                BootMode::Uefi
            ),
            Err(BmcError::NotSupported(_))
        ));
    }

    #[test]
    fn persistence_must_be_listed() {
        let continuous_only = sys(json!({"BootSourceOverrideTarget": "None",
            "BootSourceOverrideEnabled@Redfish.AllowableValues": ["Disabled", "Continuous"]}));
        assert!(matches!(
            plan(
                &continuous_only,
                BootDevice::Pxe,
                BootPersistence::Once,
                BootMode::Uefi
            ),
            Err(BmcError::NotSupported(_))
        ));
    }
}
