//! Disk cleaning between owners.
//!
//! [`CleanMode::Metadata`] zeroes what makes a disk look used: the first and last MiB (MBR,
//! primary and backup GPT), the backup GPT wherever the primary header says it is, and the
//! first MiB of every partition (filesystem, LVM, RAID and swap signatures). [`CleanMode::Full`]
//! zeroes every byte. Either way the kernel is asked to re-read the (now empty) table.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use proto::agent_v1::FailureReason;

use crate::disks;
use crate::gpt;
use crate::image::holdback::Sink;
use crate::image::{AlignedBuf, Device, DirectIo, WriteError};
use crate::partition_table;

const MIB: u64 = 1 << 20;
/// Size of each zero write.
const CHUNK: usize = 4 << 20;
/// `_IO(0x12, 95)`: re-read the partition table (not exported by libc).
const BLKRRPART: libc::Ioctl = 0x125F;

/// How thoroughly to clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanMode {
    /// Partition tables and filesystem signatures.
    Metadata,
    /// Every byte.
    Full,
}

/// Why cleaning failed.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// The device could not be opened exclusively (busy, missing).
    #[error(transparent)]
    Open(#[from] WriteError),
    /// Reading the partition table, writing zeros or syncing failed.
    #[error("cleaning {device} failed: {source}")]
    Io {
        /// The device.
        device: String,
        /// The I/O error.
        source: io::Error,
    },
}

impl CleanError {
    /// The reason reported to the controller.
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::Open(e) => e.reason(),
            Self::Io { .. } => FailureReason::CleaningFailed,
        }
    }
}

/// The disks a Clean task cleans: every non-empty, non-virtual disk under `sys_block`
/// (normally `/sys/block`), as `/dev/<name>`.
pub fn target_disks(sys_block: &Path) -> io::Result<Vec<PathBuf>> {
    Ok(disks::read_sysfs(sys_block)?
        .into_iter()
        .filter(|d| !d.is_virtual() && d.size_bytes > 0)
        .map(|d| d.path())
        .collect())
}

/// Cleans each of `devices` (block devices or files) in turn. `progress(done, total)` is
/// called after every write, counting bytes over all devices. Returns the bytes zeroed.
pub fn clean_devices(
    devices: &[PathBuf],
    mode: CleanMode,
    mut progress: impl FnMut(u64, u64),
) -> Result<u64, CleanError> {
    let mut opened = Vec::with_capacity(devices.len());
    for path in devices {
        let device = Device::open(path, DirectIo::Auto)?;
        let size = match device.size() {
            Some(size) => size,
            None => fs::metadata(path).map_err(io_error(path))?.len(),
        };
        opened.push((path, device, size));
    }
    let total = match mode {
        CleanMode::Full => opened.iter().map(|(_, _, size)| size).sum(),
        CleanMode::Metadata => 0,
    };
    let zeros = AlignedBuf::new(CHUNK);
    let mut done = 0u64;
    for (path, mut device, size) in opened {
        let ranges = match mode {
            CleanMode::Full => vec![(0, size)],
            CleanMode::Metadata => metadata_ranges(size, &signature_areas(path)?),
        };
        for (start, end) in ranges {
            let mut at = start;
            while at < end {
                let n = (end - at).min(CHUNK as u64) as usize;
                device
                    .write_at(&zeros.as_slice()[..n], at)
                    .map_err(io_error(path))?;
                at += n as u64;
                done += n as u64;
                progress(done, total.max(done));
            }
        }
        device.sync().map_err(io_error(path))?;
        drop(device);
        reread_partitions(path);
        tracing::info!(device = %path.display(), ?mode, "disk cleaned");
    }
    Ok(done)
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> CleanError + '_ {
    move |source| CleanError::Io {
        device: path.display().to_string(),
        source,
    }
}

/// Byte ranges `(offset, len)` holding signatures beyond the first and last MiB: each GPT or
/// MBR partition's start and the backup GPT the primary header points at.
fn signature_areas(path: &Path) -> Result<Vec<(u64, u64)>, CleanError> {
    let file = File::open(path).map_err(io_error(path))?;
    let mut areas = Vec::new();
    match gpt::read(&file) {
        Ok(table) => {
            let sector = table.sector_size();
            for p in table.partitions() {
                let len = (p.last_lba + 1).saturating_sub(p.first_lba) * sector;
                areas.push((p.first_lba * sector, len));
            }
            let backup = table.backup_entries_lba() * sector;
            areas.push((backup, (table.alternate_lba() + 1) * sector - backup));
        }
        Err(gpt::GptError::Io(source)) => return Err(io_error(path)(source)),
        Err(_) => {}
    }
    let mut sector0 = [0u8; 512];
    if gpt::read_full(&file, &mut sector0, 0).map_err(io_error(path))? == sector0.len() {
        for (first, sectors) in partition_table::mbr_partitions(&sector0) {
            areas.push((first * 512, sectors * 512));
        }
    }
    Ok(areas)
}

/// The sorted, merged `[start, end)` ranges to zero on a disk of `size` bytes: the first and
/// last MiB plus the first MiB of each area `(offset, len)`, clipped to the disk.
fn metadata_ranges(size: u64, areas: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut ranges = vec![(0, MIB.min(size)), (size.saturating_sub(MIB), size)];
    ranges.extend(
        areas
            .iter()
            .map(|&(offset, len)| (offset, offset.saturating_add(len.min(MIB)))),
    );
    let mut ranges: Vec<(u64, u64)> = ranges
        .into_iter()
        .map(|(s, e)| (s.min(size), e.min(size)))
        .filter(|(s, e)| s < e)
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Asks the kernel to re-read a block device's partition table (best effort: loop devices
/// without partition scanning refuse, and the machine powers off next anyway).
fn reread_partitions(path: &Path) {
    let is_block = fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device());
    if !is_block {
        return;
    }
    let Ok(file) = File::open(path) else {
        return;
    };
    // SAFETY: BLKRRPART takes no argument; the descriptor is open for the whole call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKRRPART) };
    if rc != 0 {
        tracing::debug!(device = %path.display(), error = %io::Error::last_os_error(), "partition table re-read refused");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_covers_ends_and_partition_starts() {
        let size = 100 * MIB;
        assert_eq!(
            metadata_ranges(size, &[]),
            [(0, MIB), (99 * MIB, 100 * MIB)]
        );
        // Partitions: one at 1 MiB (merges with the first MiB), one small one, one past the
        // end (a table from a larger disk), the backup GPT just before the last MiB.
        let areas = [
            (MIB, 40 * MIB),
            (50 * MIB, 4096),
            (200 * MIB, MIB),
            (98 * MIB, MIB),
        ];
        assert_eq!(
            metadata_ranges(size, &areas),
            [
                (0, 2 * MIB),
                (50 * MIB, 50 * MIB + 4096),
                (98 * MIB, 100 * MIB)
            ]
        );
    }

    #[test]
    fn targets_are_the_real_disks() {
        let root = std::env::temp_dir().join(format!("gw-clean-sys-{}", std::process::id()));
        for (name, sectors) in [
            ("sda", "2048"),
            ("nvme0n1", "4096"),
            ("loop0", "2048"),
            ("sr0", "2048"),
            ("sdb", "0"),
        ] {
            fs::create_dir_all(root.join(name)).unwrap();
            fs::write(root.join(name).join("size"), sectors).unwrap();
        }
        let targets = target_disks(&root).unwrap();
        fs::remove_dir_all(&root).unwrap();
        assert_eq!(
            targets,
            [PathBuf::from("/dev/nvme0n1"), PathBuf::from("/dev/sda")]
        );
    }

    #[test]
    fn tiny_disks_are_zeroed_once() {
        assert_eq!(metadata_ranges(4096, &[(512, 512)]), [(0, 4096)]);
        assert!(metadata_ranges(0, &[]).is_empty());
    }
}
