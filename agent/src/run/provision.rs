//! The Provision task: adopt a disk that already holds the image, or write the image and the
//! config drive onto a blank one.

use std::path::Path;
use std::time::Duration;

use proto::agent_v1::Provision;

use super::progress::{Reporter, Update};
use super::task::{self, Decision, TaskError};
use crate::config_drive::{self, ConfigDrive, Marker};
use crate::disks;
use crate::image::{self, Checksum, ImageFormat, ImageSource, Phase, WriteOptions};
use crate::partition_table;

/// What a successful Provision did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The disk (`/dev/…`).
    pub device: String,
    /// The disk already held the image.
    pub adopted: bool,
    /// Bytes written: image plus config drive.
    pub bytes_written: u64,
}

/// Runs `task` on the disk the hints select among `sys_block`'s disks.
pub async fn provision(
    task: &Provision,
    sys_block: &Path,
    progress: &Reporter,
) -> Result<Provisioned, TaskError> {
    let devices = disks::read_sysfs(sys_block).map_err(TaskError::Disks)?;
    let disk = disks::select_root_device(&devices, &task::hints(task.root_device_hints.as_ref()))?;
    let path = disk.path();
    let device = path.display().to_string();

    let found = match config_drive::read_marker(&path) {
        Ok(found) => found.as_deref().and_then(Marker::parse),
        Err(e) => {
            tracing::warn!(%device, error = %e, "reading the disk's marker failed; assuming none");
            None
        }
    };
    let on_disk_table = partition_table::probe(&path).ok().flatten();
    let has_partitions = disk.has_partitions || on_disk_table.is_some();
    match task::decide(
        found.as_ref(),
        Marker::parse(&task.marker).as_ref(),
        has_partitions,
    ) {
        Decision::Adopt => {
            tracing::info!(%device, "the disk's marker matches: adopting it as provisioned");
            return Ok(Provisioned {
                device,
                adopted: true,
                bytes_written: 0,
            });
        }
        Decision::Refuse => return Err(TaskError::DiskHasPartitions { device }),
        Decision::Write => {}
    }

    let format = task::format(task.format)?;
    let checksum: Checksum = task.checksum.parse().map_err(image::WriteError::from)?;
    let source = ImageSource {
        url: task.image_url.clone(),
        checksum,
        format,
    };
    let client = image::default_client()?;
    let reporter = progress.clone();
    let report = image::write_image(
        &client,
        &source,
        &path,
        &WriteOptions::default(),
        move |p: &image::Progress| {
            let total = match format {
                ImageFormat::Raw => p.download_size.unwrap_or(0),
                _ => 0,
            };
            let phase = match p.phase {
                Phase::Streaming => "write",
                Phase::Committing | Phase::Done => "sync",
            };
            reporter.post(Update::bytes(phase, p.written, total, p.elapsed));
        },
    )
    .await?;

    progress.post(Update::phase("config-drive"));
    let drive = config_drive_of(task);
    let target = path.clone();
    let written = tokio::task::spawn_blocking(move || {
        let (user_data, meta_data, network_config, marker) = &drive;
        config_drive::write_config_drive(
            &target,
            &ConfigDrive {
                user_data,
                meta_data,
                network_config,
                marker,
            },
        )
    })
    .await??;
    progress.post(Update::bytes(
        "config-drive",
        written.bytes_written,
        written.bytes_written,
        Duration::ZERO,
    ));
    Ok(Provisioned {
        device,
        adopted: false,
        bytes_written: report.image_size + written.bytes_written,
    })
}

/// The drive's contents, owned (for the blocking thread).
fn config_drive_of(task: &Provision) -> (Vec<u8>, Vec<u8>, Vec<u8>, String) {
    (
        task.user_data.clone(),
        task.meta_data.clone(),
        task.network_config.clone(),
        task.marker.clone(),
    )
}
