//! The ramdisk reporting in (the agent's gRPC Register): the boot token must be the one issued
//! for this server's open attempt; the inventory and the step are recorded once. A Register
//! repeated after the step was recorded (its answer lost to a restart or a timeout) is answered
//! again until the agent's result is in.

use crds::Server;
use crds::server::HardwareInventory;
use kube::ResourceExt;
use kube::runtime::events::Recorder;
use tracing::{info, warn};

use super::shared::Shared;
use super::steps::{self, Details, Step};
use super::target::{Registration, registration};

/// Why a report was refused (the gRPC code follows from it).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    /// No Server of that name.
    #[error("unknown server")]
    UnknownServer,
    /// The server has no open boot attempt (finished, or never asked for), or its agent
    /// reported the result already.
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
    let (attempt, again) = match registration(server.status.as_ref()) {
        Registration::First(a) => (a.id.clone(), false),
        Registration::Again(a) => (a.id.clone(), true),
        Registration::Closed => return Err(ReportError::NoOpenAttempt),
    };
    if !key.verify(&server.uid().unwrap_or_default(), &attempt, token) {
        warn!(server = %id, "ramdisk report with a wrong token refused");
        return Err(ReportError::TokenRefused);
    }
    if again {
        // The first answer never reached the agent (this replica restarted, or the call timed
        // out after the step was written): answer again, record nothing twice.
        info!(server = %id, %attempt, "ramdisk reported in again; its first answer was lost");
        return Ok((server, attempt));
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
        hardware,
        ..Details::default()
    };
    if steps::record(client, recorder, &server, Step::CalledBack, details).await {
        Ok((server, attempt))
    } else {
        Err(ReportError::NotRecorded)
    }
}
