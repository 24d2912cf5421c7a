//! Periodic refresh of the warm pool (`docs/standby.md`, "Periodic refresh"): a server on
//! standby whose agent runs another ramdisk than the one the boot services serve now is
//! netbooted again, one server per rack at a time, keeping its standby seat.
//!
//! Which servers refresh is decided from the caches, which lag the writes by moments: the
//! rack's refresh slot is also held in [`crate::refresh_slots::Slots`].

use crds::server::ServerState;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Whether a server is refreshing: back in the ramdisk for an inspection while it keeps its
/// standby seat (`standbySince` stays set through a refresh, and only through one).
pub fn refreshing(state: Option<ServerState>, standby_since: Option<&Time>) -> bool {
    state == Some(ServerState::Inspecting) && standby_since.is_some()
}

/// Whether an agent that runs ramdisk `running` should be refreshed to `served`. An unknown
/// running version (its initrd step was not recorded) is left alone: refreshing on doubt could
/// netboot the same server again and again.
pub fn due(running: Option<&str>, served: &str) -> bool {
    running.is_some_and(|r| r != served)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_known_other_version_is_due() {
        assert!(due(Some("sha256:old"), "sha256:new"));
        assert!(!due(Some("sha256:new"), "sha256:new"));
        assert!(!due(None, "sha256:new"));
    }

    #[test]
    fn refreshing_is_inspecting_with_a_seat_kept() {
        let t = Time(jiff::Timestamp::from_second(1_800_000_000).unwrap());
        assert!(refreshing(Some(ServerState::Inspecting), Some(&t)));
        assert!(!refreshing(Some(ServerState::Inspecting), None));
        assert!(!refreshing(Some(ServerState::Standby), Some(&t)));
    }
}
