//! The Clean task: every real disk, metadata or every byte.

use std::path::Path;
use std::time::Instant;

use proto::agent_v1::Clean;
use proto::agent_v1::clean::Mode;

use super::progress::{Reporter, Update};
use super::task::TaskError;
use crate::clean::{self, CleanMode};

/// What a successful Clean did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// The disks cleaned, comma-separated.
    pub devices: String,
    /// Bytes zeroed.
    pub bytes_written: u64,
}

/// Cleans every non-virtual disk under `sys_block`.
pub async fn clean(
    task: &Clean,
    sys_block: &Path,
    progress: &Reporter,
) -> Result<Cleaned, TaskError> {
    let mode = match task.mode() {
        Mode::Metadata => CleanMode::Metadata,
        Mode::Full => CleanMode::Full,
        Mode::Unspecified => {
            return Err(TaskError::InvalidTask("Clean without a mode".into()));
        }
    };
    let devices = clean::target_disks(sys_block).map_err(TaskError::Disks)?;
    let names = devices
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    tracing::info!(devices = %names, ?mode, "cleaning disks");
    progress.post(Update::phase("clean"));
    let reporter = progress.clone();
    let bytes_written = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        clean::clean_devices(&devices, mode, |done, total| {
            reporter.post(Update::bytes("clean", done, total, started.elapsed()));
        })
    })
    .await??;
    Ok(Cleaned {
        devices: names,
        bytes_written,
    })
}
