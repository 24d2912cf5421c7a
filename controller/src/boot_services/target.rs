//! What a netbooting Server is sent to (pure): the ramdisk only while an open boot attempt
//! awaits ramdisk work; its local disk in every other state, so a provisioned server that
//! reboots never re-images itself by accident.

use crds::server::{BootAttempt, ServerState, ServerStatus};

/// Where a machine's iPXE script sends it.
#[derive(Clone, Debug, PartialEq)]
pub enum Target<'a> {
    /// Boot the Groundwork ramdisk for this attempt.
    Ramdisk(&'a BootAttempt),
    /// Boot the local disk; the reason is shown on the console.
    LocalDisk(String),
}

/// The target for a Server with this status.
pub fn target(status: Option<&ServerStatus>) -> Target<'_> {
    let state = status.and_then(|s| s.state).unwrap_or_default();
    let awaits_ramdisk = matches!(
        state,
        ServerState::Inspecting | ServerState::Provisioning | ServerState::Deprovisioning
    );
    let attempt = status.and_then(|s| s.boot_attempt.as_ref());
    match attempt {
        Some(a) if awaits_ramdisk => {
            let done = status
                .and_then(|s| s.boot_progress.as_ref())
                .is_some_and(|p| p.attempt == a.id && p.called_back_at.is_some());
            if done {
                Target::LocalDisk(format!("the ramdisk finished attempt {}", a.id))
            } else {
                Target::Ramdisk(a)
            }
        }
        _ => Target::LocalDisk(format!("server is {}", state.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::server::{BootProgress, BootPurpose};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn status(state: ServerState, attempt: bool, called_back: bool) -> ServerStatus {
        let now = Time(jiff::Timestamp::UNIX_EPOCH);
        ServerStatus {
            state: Some(state),
            boot_attempt: attempt.then(|| BootAttempt {
                id: "inspect-1".into(),
                purpose: BootPurpose::Inspect,
                requested_at: now.clone(),
                try_number: 1,
                disk_boot_at: None,
                ramdisk_attempt: None,
                kexec_at: None,
            }),
            boot_progress: called_back.then(|| BootProgress {
                attempt: "inspect-1".into(),
                called_back_at: Some(now),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ramdisk_only_while_an_attempt_awaits_it() {
        for state in [
            ServerState::Inspecting,
            ServerState::Provisioning,
            ServerState::Deprovisioning,
        ] {
            assert!(matches!(
                target(Some(&status(state, true, false))),
                Target::Ramdisk(_)
            ));
            assert!(matches!(
                target(Some(&status(state, true, true))),
                Target::LocalDisk(_)
            ));
            assert!(matches!(
                target(Some(&status(state, false, false))),
                Target::LocalDisk(_)
            ));
        }
        for state in [
            ServerState::Registering,
            ServerState::Available,
            ServerState::Provisioned,
            ServerState::Error,
            ServerState::Discovered,
        ] {
            // A left-over attempt never sends an installed machine to the ramdisk.
            assert!(
                matches!(
                    target(Some(&status(state, true, false))),
                    Target::LocalDisk(_)
                ),
                "{state:?}"
            );
        }
        assert!(matches!(target(None), Target::LocalDisk(_)));
    }
}
