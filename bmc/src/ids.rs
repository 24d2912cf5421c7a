//! Hardware identifiers as BMCs report them, normalized, with placeholders
//! read as "absent".
//!
//! Firmware fills unknown identifiers with filler values: SMBIOS defines an
//! all-zero UUID as "present but not set" and all-`FF` as "not present", and
//! BMCs of DPUs and blades report `00:00:00:00:00:00` for ports without a
//! burnt-in address. Taken as identity, one such value would make every
//! machine of a fleet the same machine, so they read as absent.

/// A UUID, lower case; `None` for all-zero, all-`FF` and malformed values
/// (anything but 32 hex digits once the dashes are removed).
pub(crate) fn uuid(raw: &str) -> Option<String> {
    let u = raw.trim().to_ascii_lowercase();
    let hex: String = u.chars().filter(|c| *c != '-').collect();
    let well_formed = hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit());
    (well_formed && !is_filler(&hex)).then_some(u)
}

/// A MAC address, lower case; `None` for empty, all-zero and all-`FF`
/// (broadcast) values.
pub(crate) fn mac(raw: &str) -> Option<String> {
    let m = raw.trim().to_ascii_lowercase();
    let hex: String = m.chars().filter(char::is_ascii_hexdigit).collect();
    (!hex.is_empty() && !is_filler(&hex)).then_some(m)
}

fn is_filler(hex: &str) -> bool {
    hex.chars().all(|c| c == '0') || hex.chars().all(|c| c == 'f')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids() {
        assert_eq!(
            uuid("38947555-7742-3448-3784-823347823834").as_deref(),
            Some("38947555-7742-3448-3784-823347823834")
        );
        // Supermicro's real shape: zero-padded, MAC in the last group. Not a filler.
        assert_eq!(
            uuid("00000000-0000-0000-0000-7CC25550A8FF").as_deref(),
            Some("00000000-0000-0000-0000-7cc25550a8ff")
        );
        assert_eq!(uuid("00000000-0000-0000-0000-000000000000"), None);
        assert_eq!(uuid("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"), None);
        assert_eq!(uuid(""), None);
        assert_eq!(uuid("not-a-uuid"), None);
    }

    #[test]
    fn macs() {
        assert_eq!(
            mac("52:54:00:AA:BB:CC").as_deref(),
            Some("52:54:00:aa:bb:cc")
        );
        assert_eq!(mac("00:00:00:00:00:00"), None);
        assert_eq!(mac("FF:FF:FF:FF:FF:FF"), None);
        assert_eq!(mac(" "), None);
    }
}
