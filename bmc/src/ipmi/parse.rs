//! Pure parsing of `ipmitool` output and classification of its failures.

use crate::{BootDevice, PowerState};

/// `Key : Value` lines of ipmitool's report formats (`mc info`, `fru print`,
/// `mc guid`), trimmed, in order. Continuation lines without a colon are skipped.
pub(crate) fn key_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), v.trim().to_string()))
        })
        .collect()
}

fn value<'a>(kv: &'a [(String, String)], key: &str) -> Option<&'a str> {
    kv.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `power status` → "Chassis Power is on" / "Chassis Power is off".
pub(crate) fn power_status(stdout: &str) -> Option<PowerState> {
    stdout.lines().find_map(|l| {
        let l = l.trim().to_ascii_lowercase();
        let rest = l.strip_prefix("chassis power is ")?;
        match rest.trim() {
            "on" => Some(PowerState::On),
            "off" => Some(PowerState::Off),
            _ => Some(PowerState::Unknown),
        }
    })
}

/// What `mc info` tells about the BMC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct McInfo {
    /// "Firmware Revision".
    pub firmware_revision: Option<String>,
    /// "Manufacturer Name" (IANA enterprise name of the BMC's maker).
    pub manufacturer_name: Option<String>,
    /// "Product Name".
    pub product_name: Option<String>,
}

fn known(v: Option<&str>) -> Option<String> {
    v.filter(|s| !s.starts_with("Unknown") && !s.starts_with("Not available"))
        .map(str::to_string)
}

/// Parse `mc info`.
pub(crate) fn mc_info(stdout: &str) -> McInfo {
    let kv = key_values(stdout);
    McInfo {
        firmware_revision: known(value(&kv, "Firmware Revision")),
        manufacturer_name: known(value(&kv, "Manufacturer Name")),
        product_name: known(value(&kv, "Product Name")),
    }
}

/// Parse `mc guid` ("System GUID : 5a5a0000-..."), lower case; all-zero and
/// all-FF GUIDs mean "not set" (see [`crate::ids::uuid`]).
pub(crate) fn guid(stdout: &str) -> Option<String> {
    let kv = key_values(stdout);
    crate::ids::uuid(value(&kv, "System GUID")?)
}

/// Identity fields from `fru print 0`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fru {
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub serial_number: Option<String>,
}

/// Parse `fru print 0`, preferring product over board/chassis fields.
pub(crate) fn fru(stdout: &str) -> Fru {
    let kv = key_values(stdout);
    let first = |keys: &[&str]| keys.iter().find_map(|k| known(value(&kv, k)));
    Fru {
        manufacturer: first(&["Product Manufacturer", "Board Mfg"]),
        model: first(&["Product Name", "Board Product"]),
        serial_number: first(&["Product Serial", "Chassis Serial", "Board Serial"]),
    }
}

/// The `chassis bootdev` device word.
pub(crate) fn bootdev_word(device: BootDevice) -> Option<&'static str> {
    match device {
        BootDevice::Pxe => Some("pxe"),
        BootDevice::Disk => Some("disk"),
        BootDevice::VirtualCd => Some("cdrom"),
        BootDevice::UefiHttp => None,
    }
}

/// Boot flags as read back with `chassis bootparam get 5`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootFlags {
    /// The "Boot Device Selector" text, e.g. "Force PXE".
    pub device: Option<String>,
    /// "Options apply to all future boots".
    pub persistent: bool,
    /// "BIOS EFI boot".
    pub efi: bool,
}

/// Parse `chassis bootparam get 5` (used by cross-checks and diagnostics).
pub fn boot_flags(stdout: &str) -> BootFlags {
    let mut flags = BootFlags::default();
    for line in stdout.lines() {
        let l = line.trim().trim_start_matches('-').trim();
        if let Some(rest) = l.strip_prefix("Boot Device Selector") {
            flags.device = rest.split_once(':').map(|(_, v)| v.trim().to_string());
        } else if l.eq_ignore_ascii_case("Options apply to all future boots") {
            flags.persistent = true;
        } else if l.eq_ignore_ascii_case("BIOS EFI boot") {
            flags.efi = true;
        }
    }
    flags
}

/// Why an `ipmitool` run failed, judged from its stderr (run with `-v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The RMCP+ session could not agree on a cipher suite / algorithms.
    CipherNegotiation(String),
    /// The BMC rejected user name or password (RAKP).
    Authentication(String),
    /// No answer from the BMC at all.
    Unreachable(String),
    /// The BMC answered "invalid command" / "not supported in present state".
    NotSupported(String),
    /// Anything else.
    Other(String),
}

/// The meaningful stderr lines (ipmitool's `-v` chatter removed), joined.
pub(crate) fn summary(stderr: &str) -> String {
    const NOISE: &[&str] = &[
        "Loading IANA PEN Registry",
        "Running Get VSO Capabilities",
        "Invalid completion code received: Invalid command",
        "Discovered IPMB address",
    ];
    let lines: Vec<&str> = stderr
        .lines()
        .map(|l| l.trim().trim_start_matches('>').trim())
        .filter(|l| !l.is_empty() && !NOISE.iter().any(|n| l.starts_with(n)))
        .collect();
    let mut out: Vec<&str> = Vec::new();
    for l in lines {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out.join("; ")
}

/// Classify a failed run by its stderr.
pub(crate) fn classify(stderr: &str) -> Failure {
    let msg = summary(stderr);
    let lower = msg.to_ascii_lowercase();
    let has = |s: &str| lower.contains(s);
    if has("not what we requested")
        || has("no cipher suite match")
        || has("invalid authentication algorithm")
        || has("invalid integrity algorithm")
        || has("invalid confidentiality algorithm")
        || has("no matching authentication payload")
        || has("no matching integrity payload")
        || has("invalid cipher suite")
        || has("unsupported cipher suite")
    {
        Failure::CipherNegotiation(msg)
    } else if has("hmac is invalid")
        || has("unauthorized name")
        || has("invalid username")
        || has("unauthorized role")
        || has("invalid role")
        || has("no response from rakp")
        || has("authentication type")
    {
        Failure::Authentication(msg)
    } else if has("get auth capabilities error")
        || has("get channel authentication capabilities")
        || has("unable to establish")
        || has("no response from remote controller")
        || has("address lookup")
        || has("connection refused")
    {
        Failure::Unreachable(msg)
    } else if has("not supported in present state")
        || has("invalid command")
        || has("command not supported")
        || has("device not present")
    {
        Failure::NotSupported(msg)
    } else {
        Failure::Other(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_status_lines() {
        assert_eq!(power_status("Chassis Power is on\n"), Some(PowerState::On));
        assert_eq!(power_status("Chassis Power is off"), Some(PowerState::Off));
        assert_eq!(
            power_status("  chassis power is ON  \n"),
            Some(PowerState::On)
        );
        assert_eq!(
            power_status("Chassis Power is unknown"),
            Some(PowerState::Unknown)
        );
        assert_eq!(power_status("Set Boot Device to pxe"), None);
    }

    #[test]
    fn mc_info_and_guid_from_pyghmi_and_real_bmcs() {
        let out = "Device ID                 : 0\nDevice Revision           : 0\nFirmware Revision         : 2.31\n\
IPMI Version              : 2.0\nManufacturer ID           : 6699\nManufacturer Name         : Vulcan Networks\n\
Product ID                : 512 (0x0200)\nProduct Name              : Unknown (0x200)\nDevice Available          : yes\n\
Additional Device Support :\n    Sensor Device\n    SDR Repository Device\nAux Firmware Rev Info     : \n    0x00\n";
        let info = mc_info(out);
        assert_eq!(info.firmware_revision.as_deref(), Some("2.31"));
        assert_eq!(info.manufacturer_name.as_deref(), Some("Vulcan Networks"));
        assert_eq!(info.product_name, None);
        let g = "System GUID   : 5A5A0000-0000-4000-8000-000000003F66\nGUID Encoding : SMBIOS\n";
        assert_eq!(
            guid(g).as_deref(),
            Some("5a5a0000-0000-4000-8000-000000003f66")
        );
        assert_eq!(
            guid("System GUID  : 00000000-0000-0000-0000-000000000000"),
            None
        );
        assert_eq!(guid("garbage"), None);
    }

    #[test]
    fn fru_prefers_product_fields() {
        let out = "FRU Device Description : Builtin FRU Device (ID 0)\n Chassis Type          : Rack Mount Chassis\n\
 Chassis Serial        : CH123\n Board Mfg Date        : Mon Jan  1 00:00:00 2024\n Board Mfg             : Contoso\n\
 Board Product         : X11DPi\n Board Serial          : BS999\n Product Manufacturer  : Contoso Ltd\n\
 Product Name          : RX3500\n Product Serial        : PS777\n";
        let f = fru(out);
        assert_eq!(f.manufacturer.as_deref(), Some("Contoso Ltd"));
        assert_eq!(f.model.as_deref(), Some("RX3500"));
        assert_eq!(f.serial_number.as_deref(), Some("PS777"));
        let board_only = " Board Mfg : Contoso\n Board Product : X11\n Chassis Serial : CH1\n";
        let f = fru(board_only);
        assert_eq!(f.manufacturer.as_deref(), Some("Contoso"));
        assert_eq!(f.serial_number.as_deref(), Some("CH1"));
    }

    #[test]
    fn bootparam_flags() {
        let out = "Boot parameter version: 1\nBoot parameter 5 is valid/unlocked\nBoot parameter data: e004000000\n Boot Flags :\n\
   - Boot Flag Valid\n   - Options apply to all future boots\n   - BIOS EFI boot \n   - Boot Device Selector : Force PXE\n";
        let f = boot_flags(out);
        assert_eq!(f.device.as_deref(), Some("Force PXE"));
        assert!(f.persistent && f.efi);
        let once = "   - Options apply to only next boot\n   - BIOS PC Compatible (legacy) boot\n   - Boot Device Selector : Force Boot from default Hard-Drive\n";
        let f = boot_flags(once);
        assert!(!f.persistent && !f.efi);
        assert_eq!(
            f.device.as_deref(),
            Some("Force Boot from default Hard-Drive")
        );
    }

    #[test]
    fn classifies_stderr_seen_against_pyghmi_and_real_bmcs() {
        let cipher = "Loading IANA PEN Registry...\nAuthentication algorithm 0x01 is not what we requested 0x03\n\nError: Unable to establish IPMI v2 / RMCP+ session\n";
        assert!(matches!(classify(cipher), Failure::CipherNegotiation(_)));
        let rakp_err = "RAKP 2 message indicates an error : no cipher suite match with proposed security algorithms\nError: Unable to establish IPMI v2 / RMCP+ session";
        assert!(matches!(classify(rakp_err), Failure::CipherNegotiation(_)));
        let wrong_pw = "Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\nError: Unable to establish IPMI v2 / RMCP+ session\n";
        match classify(wrong_pw) {
            Failure::Authentication(m) => {
                assert_eq!(
                    m,
                    "RAKP 2 HMAC is invalid; Error: Unable to establish IPMI v2 / RMCP+ session"
                )
            }
            other => panic!("{other:?}"),
        }
        let unknown_user = "> Error: no response from RAKP 1 message\n> Error: no response from RAKP 1 message\nSet Session Privilege Level to ADMINISTRATOR failed\nError: Unable to establish IPMI v2 / RMCP+ session";
        assert!(matches!(classify(unknown_user), Failure::Authentication(_)));
        let unauthorized = "RAKP 2 message indicates an error : unauthorized name\nError: Unable to establish IPMI v2 / RMCP+ session";
        assert!(matches!(classify(unauthorized), Failure::Authentication(_)));
        let down = "Loading IANA PEN Registry...\nGet Auth Capabilities error\nError issuing Get Channel Authentication Capabilities request\nError: Unable to establish IPMI v2 / RMCP+ session\n";
        assert!(matches!(classify(down), Failure::Unreachable(_)));
        let refused =
            "Set Chassis Power Control to Cycle failed: Command not supported in present state";
        assert!(matches!(classify(refused), Failure::NotSupported(_)));
        assert!(matches!(
            classify(" Device not present (Invalid command)"),
            Failure::NotSupported(_)
        ));
        assert!(matches!(classify("something new"), Failure::Other(_)));
    }
}
