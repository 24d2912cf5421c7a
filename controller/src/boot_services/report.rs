//! The ramdisk reporting in (the agent's gRPC Register): the boot token must be the one issued
//! for this server's open attempt; the inventory and the step are recorded once.

use crds::Server;
use crds::server::HardwareInventory;
use kube::ResourceExt;
use kube::runtime::events::Recorder;
use tracing::warn;

use super::shared::Shared;
use super::steps::{self, Details, Step};
use super::target::{Target, target};

/// Why a report was refused (the gRPC code follows from it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    /// No Server of that name.
    #[error("unknown server")]
    UnknownServer,
    /// The server has no open boot attempt (finished, or never asked for).
    #[error("no boot attempt is open for this server")]
    NoOpenAttempt,
    /// The token was not issued for this server's open attempt.
    #[error("token refused")]
    TokenRefused,
    /// Recording failed; the ramdisk should retry.
    #[error("not recorded; retry")]
    NotRecorded,
}

/// Verifies `token` for the Server `id` (`namespace/name`) and records its inventory and the
/// callback step. Returns the Server and the attempt id it reported for.
pub async fn report_in(
    shared: &Shared,
    client: &kube::Client,
    recorder: &Recorder,
    key: &boot::token::TokenKey,
    id: &str,
    token: &str,
    hardware: Option<HardwareInventory>,
) -> Result<(Server, String), ReportError> {
    let server = shared
        .server_by_name(id)
        .ok_or(ReportError::UnknownServer)?;
    let Target::Ramdisk(attempt) = target(server.status.as_ref()) else {
        return Err(ReportError::NoOpenAttempt);
    };
    let attempt = attempt.id.clone();
    if !key.verify(&server.uid().unwrap_or_default(), &attempt, token) {
        warn!(server = %id, "ramdisk report with a wrong token refused");
        return Err(ReportError::TokenRefused);
    }
    let note = match &hardware {
        Some(h) => format!(
            "ramdisk up: {} CPUs, {} MiB, {} disks, {} NICs",
            h.cpu_count,
            h.memory_bytes >> 20,
            h.disks.len(),
            h.nics.len()
        ),
        None => "ramdisk up".into(),
    };
    let details = Details {
        note,
        dhcp: None,
        hardware,
    };
    if steps::record(client, recorder, &server, Step::CalledBack, details).await {
        Ok((server, attempt))
    } else {
        Err(ReportError::NotRecorded)
    }
}
