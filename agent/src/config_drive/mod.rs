//! The NoCloud config drive: a small FAT partition labelled `CIDATA`, appended to the image's
//! GPT, holding `user-data`, `meta-data`, `network-config` and the `groundwork-marker`.
//!
//! Images are smaller than disks: their backup GPT sits at the end of the image, not of the
//! disk. Adding the drive moves the backup table to the disk's end (fixing the primary
//! header's alternate and last-usable LBAs and both CRCs), adds the partition after the last
//! one, formats it and writes the files. Order: filesystem, backup table, primary table, sync,
//! so the primary table never points at a partition that is not there yet.

pub(crate) mod fat;
mod marker;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

use proto::agent_v1::FailureReason;
use sha2::{Digest, Sha256};

pub use marker::Marker;

use crate::gpt::{self, Gpt, GptError};
use crate::partition_table::{self, PROBE_BYTES};

/// Size of the config-drive partition.
pub const PARTITION_BYTES: u64 = 8 << 20;
/// GPT name of the config-drive partition.
pub const PARTITION_NAME: &str = "cidata";
/// Name of the marker file on the drive.
pub const MARKER_FILE: &str = "groundwork-marker";

/// Microsoft basic data (`EBD0A0A2-B9E5-4433-87C0-68B6B72699C7`), in on-disk byte order: the
/// type of a FAT data partition.
const BASIC_DATA: [u8; 16] = [
    0xA2, 0xA0, 0xD0, 0xEB, 0xE5, 0xB9, 0x33, 0x44, 0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7,
];

/// What goes onto the drive.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfigDrive<'a> {
    /// `user-data` (always written, possibly empty: cloud-init requires the file).
    pub user_data: &'a [u8],
    /// `meta-data` (always written).
    pub meta_data: &'a [u8],
    /// `network-config`, omitted when empty.
    pub network_config: &'a [u8],
    /// Contents of `groundwork-marker`.
    pub marker: &'a str,
}

impl ConfigDrive<'_> {
    /// The files to write, in order.
    fn files(&self) -> Vec<(&str, &[u8])> {
        let mut files = vec![("meta-data", self.meta_data), ("user-data", self.user_data)];
        if !self.network_config.is_empty() {
            files.push(("network-config", self.network_config));
        }
        files.push((MARKER_FILE, self.marker.as_bytes()));
        files
    }
}

/// Where the drive went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigDriveReport {
    /// Partition number (1-based).
    pub partition: usize,
    /// Byte offset of the partition on the disk.
    pub offset: u64,
    /// Partition size in bytes.
    pub size: u64,
    /// Bytes written (filesystem area plus both partition tables).
    pub bytes_written: u64,
}

/// Why the config drive could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDriveError {
    /// The image has no GPT (MBR only, or no table at all).
    #[error("{device} has no GPT (found: {found}); a config drive needs a GPT image")]
    UnsupportedPartitionTable {
        /// The device.
        device: String,
        /// What was found instead (`MBR` or `none`).
        found: String,
    },
    /// The image's GPT is corrupt.
    #[error("{device}: {source}")]
    InvalidPartitionTable {
        /// The device.
        device: String,
        /// What is wrong.
        source: GptError,
    },
    /// No space (or no free entry) after the last partition.
    #[error("no room for the config drive on {device}: {source}")]
    NoRoom {
        /// The device.
        device: String,
        /// Details.
        source: GptError,
    },
    /// The device could not be opened, read or written.
    #[error("config drive on {device}: {source}")]
    Io {
        /// The device.
        device: String,
        /// The I/O error.
        source: io::Error,
    },
}

impl ConfigDriveError {
    /// The reason reported to the controller.
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::UnsupportedPartitionTable { .. } => FailureReason::UnsupportedPartitionTable,
            Self::InvalidPartitionTable { .. } => FailureReason::InvalidPartitionTable,
            Self::NoRoom { .. } => FailureReason::NoRoomForConfigDrive,
            Self::Io { .. } => FailureReason::ConfigDriveFailed,
        }
    }
}

/// Appends the config drive to the GPT image on `device` (a block device or a file) and
/// syncs it.
pub fn write_config_drive(
    device: &Path,
    drive: &ConfigDrive<'_>,
) -> Result<ConfigDriveReport, ConfigDriveError> {
    let name = device.display().to_string();
    let io_err = |source: io::Error| ConfigDriveError::Io {
        device: name.clone(),
        source,
    };
    let file = open(device, true).map_err(io_err)?;
    let mut table = read_gpt(&file, &name)?;
    let sector = table.sector_size();
    let disk_sectors = disk_size(&file).map_err(io_err)? / sector;
    let old_backup = table.alternate_lba();
    let room = |source| ConfigDriveError::NoRoom {
        device: name.clone(),
        source,
    };
    table.relocate_backup(disk_sectors).map_err(room)?;
    let part = table
        .append(
            PARTITION_BYTES / sector,
            BASIC_DATA,
            partition_guid(&table.disk_guid()),
            PARTITION_NAME,
        )
        .map_err(room)?;
    let offset = part.first_lba * sector;

    // The image's backup header would otherwise linger inside the new partition or free space.
    if old_backup != table.alternate_lba() && old_backup < disk_sectors {
        file.write_all_at(&vec![0u8; sector as usize], old_backup * sector)
            .map_err(io_err)?;
    }
    fat::format(
        fat::Window::new(&file, offset, PARTITION_BYTES),
        &drive.files(),
    )
    .map_err(io_err)?;
    let entries = table.entries();
    file.write_all_at(entries, table.backup_entries_lba() * sector)
        .map_err(io_err)?;
    file.write_all_at(&table.backup_header(), table.alternate_lba() * sector)
        .map_err(io_err)?;
    file.write_all_at(entries, table.primary_entries_lba() * sector)
        .map_err(io_err)?;
    file.write_all_at(&table.primary_header(), sector)
        .map_err(io_err)?;
    let mut mbr = vec![0u8; 512];
    file.read_exact_at(&mut mbr, 0).map_err(io_err)?;
    if gpt::grow_protective_mbr(&mut mbr, disk_sectors) {
        file.write_all_at(&mbr, 0).map_err(io_err)?;
    }
    file.sync_all().map_err(io_err)?;
    tracing::info!(device = %name, partition = part.index + 1, offset, "config drive written");
    Ok(ConfigDriveReport {
        partition: part.index + 1,
        offset,
        size: PARTITION_BYTES,
        bytes_written: PARTITION_BYTES + 2 * (entries.len() as u64 + sector) + 512,
    })
}

/// The `groundwork-marker` on `device`: from the GPT partition named `cidata`, else from a
/// partition whose FAT label is `CIDATA`. `None` when the disk has no GPT or no drive.
pub fn read_marker(device: &Path) -> Result<Option<String>, ConfigDriveError> {
    let name = device.display().to_string();
    let io_err = |source: io::Error| ConfigDriveError::Io {
        device: name.clone(),
        source,
    };
    let file = open(device, false).map_err(io_err)?;
    let table = match gpt::read(&file) {
        Ok(t) => t,
        Err(GptError::Io(source)) => return Err(io_err(source)),
        Err(_) => return Ok(None),
    };
    let sector = table.sector_size();
    let mut partitions = table.partitions();
    // Named ones first; the rest only when their boot sector carries the label.
    partitions.sort_by_key(|p| !p.name.eq_ignore_ascii_case(PARTITION_NAME));
    for p in partitions {
        let offset = p.first_lba * sector;
        let len = (p.last_lba + 1).saturating_sub(p.first_lba) * sector;
        let mut boot = [0u8; 512];
        if gpt::read_full(&file, &mut boot, offset).map_err(io_err)? < boot.len() {
            continue;
        }
        if !fat::has_cidata_label(&boot) && !p.name.eq_ignore_ascii_case(PARTITION_NAME) {
            continue;
        }
        match fat::read_file(fat::Window::new(&file, offset, len), MARKER_FILE) {
            Ok(Some(content)) => {
                return Ok(Some(String::from_utf8_lossy(&content).into_owned()));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(device = %name, partition = p.index + 1, error = %e, "no readable FAT on a cidata partition");
            }
        }
    }
    Ok(None)
}

/// Opens a block device (exclusively, when writing) or an image file.
fn open(device: &Path, write: bool) -> io::Result<File> {
    let is_block = fs::metadata(device)?.file_type().is_block_device();
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(if write && is_block { libc::O_EXCL } else { 0 })
        .open(device)
}

fn disk_size(mut file: &File) -> io::Result<u64> {
    file.seek(SeekFrom::End(0))
}

/// The image's GPT, or why there is none usable.
fn read_gpt(file: &File, name: &str) -> Result<Gpt, ConfigDriveError> {
    match gpt::read(file) {
        Ok(t) => Ok(t),
        Err(GptError::Missing) => {
            let mut start = vec![0u8; PROBE_BYTES];
            let n = gpt::read_full(file, &mut start, 0).map_err(|source| ConfigDriveError::Io {
                device: name.to_string(),
                source,
            })?;
            Err(ConfigDriveError::UnsupportedPartitionTable {
                device: name.to_string(),
                found: partition_table::detect(&start[..n])
                    .map_or_else(|| "none".to_string(), |t| t.to_string()),
            })
        }
        Err(GptError::Io(source)) => Err(ConfigDriveError::Io {
            device: name.to_string(),
            source,
        }),
        Err(source) => Err(ConfigDriveError::InvalidPartitionTable {
            device: name.to_string(),
            source,
        }),
    }
}

/// A stable per-disk GUID for the drive (version 4 layout, derived from the disk GUID), so
/// rewriting the same image yields the same table.
fn partition_guid(disk_guid: &[u8; 16]) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(disk_guid)
        .chain_update(b"groundwork cidata")
        .finalize();
    let mut g = [0u8; 16];
    g.copy_from_slice(&digest[..16]);
    // On disk, the third group is little-endian: its high nibble (version) is in byte 7.
    g[7] = (g[7] & 0x0F) | 0x40;
    g[8] = (g[8] & 0x3F) | 0x80;
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_omit_only_an_empty_network_config() {
        let drive = ConfigDrive {
            marker: "server=a/b\nchecksum=sha256:00\n",
            ..Default::default()
        };
        let names: Vec<&str> = drive.files().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["meta-data", "user-data", MARKER_FILE]);
        let drive = ConfigDrive {
            network_config: b"version: 2\n",
            ..drive
        };
        assert_eq!(drive.files().len(), 4);
    }

    #[test]
    fn partition_guid_is_stable_and_version_4() {
        let a = partition_guid(&[1; 16]);
        assert_eq!(a, partition_guid(&[1; 16]));
        assert_ne!(a, partition_guid(&[2; 16]));
        assert_eq!(a[7] >> 4, 4);
        assert_eq!(a[8] >> 6, 2);
    }
}
