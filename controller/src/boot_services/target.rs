//! What a netbooting Server is sent to (pure): the ramdisk only while an open boot attempt
//! awaits ramdisk work; its local disk in every other state, so a provisioned server that
//! reboots never re-images itself by accident. And what its agent's Register may do: call
//! back once, and be answered again while the attempt waits for its result (an answer lost to
//! a replica's restart must not strand the agent).

use crds::server::{BootAttempt, BootProgress, ServerState, ServerStatus};

/// Where a machine's iPXE script sends it.
#[derive(Clone, Debug, PartialEq)]
pub enum Target<'a> {
    /// Boot the Groundwork ramdisk for this attempt.
    Ramdisk(&'a BootAttempt),
    /// Boot the local disk; the reason is shown on the console.
    LocalDisk(String),
}

/// The attempt awaiting ramdisk work, if any (the Server's state asks for a ramdisk).
fn open_attempt(status: Option<&ServerStatus>) -> Option<&BootAttempt> {
    let state = status.and_then(|s| s.state).unwrap_or_default();
    let awaits_ramdisk = matches!(
        state,
        ServerState::Inspecting | ServerState::Provisioning | ServerState::Deprovisioning
    );
    status
        .and_then(|s| s.boot_attempt.as_ref())
        .filter(|_| awaits_ramdisk)
}

/// The boot progress of `attempt`, if the boot services recorded any.
fn progress_of<'a>(
    status: Option<&'a ServerStatus>,
    attempt: &BootAttempt,
) -> Option<&'a BootProgress> {
    status
        .and_then(|s| s.boot_progress.as_ref())
        .filter(|p| p.attempt == attempt.id)
}

/// The target for a Server with this status.
pub fn target(status: Option<&ServerStatus>) -> Target<'_> {
    match open_attempt(status) {
        Some(a) => {
            let done = progress_of(status, a).is_some_and(|p| p.called_back_at.is_some());
            if done {
                Target::LocalDisk(format!("the ramdisk finished attempt {}", a.id))
            } else {
                Target::Ramdisk(a)
            }
        }
        None => Target::LocalDisk(format!(
            "server is {}",
            status.and_then(|s| s.state).unwrap_or_default().as_str()
        )),
    }
}

/// What the agent's Register (with a token for the attempt) may do.
#[derive(Clone, Debug, PartialEq)]
pub enum Registration<'a> {
    /// The ramdisk calls back for this attempt: record it.
    First(&'a BootAttempt),
    /// It called back already but no result came yet: the agent did not get the answer (the
    /// replica died or the call timed out after the step was recorded) and asks again. It gets
    /// the same credential; nothing is recorded twice.
    Again(&'a BootAttempt),
    /// No attempt awaits its ramdisk, or its agent delivered a result already.
    Closed,
}

/// Whether a Register for this status opens the attempt, repeats it, or is too late.
pub fn registration(status: Option<&ServerStatus>) -> Registration<'_> {
    let Some(a) = open_attempt(status) else {
        return Registration::Closed;
    };
    match progress_of(status, a) {
        Some(p) if p.result.is_some() => Registration::Closed,
        Some(p) if p.called_back_at.is_some() => Registration::Again(a),
        _ => Registration::First(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::server::{BootPurpose, TaskOutcome};
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

    #[test]
    fn a_register_whose_answer_was_lost_is_answered_again_until_the_result() {
        for state in [
            ServerState::Inspecting,
            ServerState::Provisioning,
            ServerState::Deprovisioning,
        ] {
            let first = status(state, true, false);
            assert!(
                matches!(registration(Some(&first)), Registration::First(a) if a.id == "inspect-1")
            );
            // Called back, then the replica died (or the call timed out) before the answer
            // left: the retry is the same registration, not a closed attempt.
            let again = status(state, true, true);
            assert!(
                matches!(registration(Some(&again)), Registration::Again(a) if a.id == "inspect-1"),
                "{state:?}"
            );
            // The iPXE script still sends a rebooting machine to its disk.
            assert!(matches!(target(Some(&again)), Target::LocalDisk(_)));
            // Once the agent's result is in, the token registers nothing more.
            let mut done = again.clone();
            if let Some(p) = done.boot_progress.as_mut() {
                p.result = Some(TaskOutcome {
                    ok: true,
                    ..Default::default()
                });
            }
            assert_eq!(registration(Some(&done)), Registration::Closed);
            // Progress of an earlier attempt does not count for this one.
            let mut stale = again.clone();
            if let Some(p) = stale.boot_progress.as_mut() {
                p.attempt = "inspect-0".into();
            }
            assert!(matches!(registration(Some(&stale)), Registration::First(_)));
        }
        for state in [
            ServerState::Available,
            ServerState::Provisioned,
            ServerState::Error,
        ] {
            assert_eq!(
                registration(Some(&status(state, true, true))),
                Registration::Closed,
                "{state:?}"
            );
        }
        assert_eq!(registration(None), Registration::Closed);
    }
}
