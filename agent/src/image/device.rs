//! The write target: a block device (or a regular file), opened for direct I/O when it can be.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::buffer::DIRECT_IO_ALIGN;
use super::error::WriteError;
use super::holdback::{Sink, write_zero_buffers};
use crate::disks::sysfs_partitions;
use crate::partition_table::{self, PROBE_BYTES};

/// Whether to bypass the page cache when writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DirectIo {
    /// O_DIRECT when the target accepts it, buffered otherwise (tmpfs, some files).
    #[default]
    Auto,
    /// O_DIRECT or fail.
    Always,
    /// Buffered writes, made durable by fdatasync at the end.
    Never,
}

/// An open write target.
///
/// Aligned, block-multiple pieces go through an O_DIRECT descriptor; anything unaligned (the
/// tail of an image whose size is not a multiple of 4 KiB) through a buffered one. A block
/// device is opened with O_EXCL, so a mounted or claimed disk is refused. Zero ranges are
/// left to the kernel (`fallocate(FALLOC_FL_ZERO_RANGE)`) where the target takes it.
#[derive(Debug)]
pub struct Device {
    path: PathBuf,
    buffered: File,
    direct: Option<File>,
    size: Option<u64>,
    is_block: bool,
    zero_range: bool,
}

impl Device {
    /// Opens `path` for writing.
    pub fn open(path: &Path, direct_io: DirectIo) -> Result<Self, WriteError> {
        let unavailable = |source: io::Error| WriteError::DeviceUnavailable {
            device: path.display().to_string(),
            source,
        };
        let meta = fs::metadata(path).map_err(unavailable)?;
        let is_block = meta.file_type().is_block_device();
        if !is_block && !meta.is_file() {
            return Err(unavailable(io::Error::new(
                io::ErrorKind::InvalidInput,
                "neither a block device nor a regular file",
            )));
        }
        let open = |flags: libc::c_int| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(flags)
                .open(path)
                .map_err(|e| {
                    if e.raw_os_error() == Some(libc::EBUSY) {
                        WriteError::DeviceBusy {
                            device: path.display().to_string(),
                        }
                    } else {
                        unavailable(e)
                    }
                })
        };
        // O_EXCL on a block device (without O_CREAT) fails with EBUSY while it is mounted or
        // claimed; on regular files it would mean nothing.
        let mut buffered = open(if is_block { libc::O_EXCL } else { 0 })?;
        let direct = match direct_io {
            DirectIo::Never => None,
            DirectIo::Always => Some(open(libc::O_DIRECT)?),
            DirectIo::Auto => match open(libc::O_DIRECT) {
                Ok(f) => Some(f),
                Err(WriteError::DeviceUnavailable { source, .. })
                    if source.raw_os_error() == Some(libc::EINVAL) =>
                {
                    tracing::info!(device = %path.display(), "O_DIRECT not supported, writing buffered");
                    None
                }
                Err(e) => return Err(e),
            },
        };
        let size = if is_block {
            Some(buffered.seek(SeekFrom::End(0)).map_err(unavailable)?)
        } else {
            None
        };
        Ok(Self {
            path: path.to_path_buf(),
            buffered,
            direct,
            size,
            is_block,
            zero_range: true,
        })
    }

    /// The device path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size in bytes of a block device; `None` for a regular file (it grows).
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Whether writes currently bypass the page cache.
    pub fn uses_direct_io(&self) -> bool {
        self.direct.is_some()
    }

    /// The partition table on the device, if any: the kernel's partitions of a block device,
    /// else a GPT/MBR signature in its first sectors.
    pub fn partition_table(&self) -> Result<Option<String>, WriteError> {
        if self.is_block
            && let Some(name) = fs::canonicalize(&self.path)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        {
            let parts = sysfs_partitions(&Path::new("/sys/class/block").join(&name), &name);
            if !parts.is_empty() {
                return Ok(Some(format!("partitions {}", parts.join(","))));
            }
        }
        let mut start = vec![0u8; PROBE_BYTES];
        let mut filled = 0;
        while filled < start.len() {
            match self.buffered.read_at(&mut start[filled..], filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(WriteError::DeviceUnavailable {
                        device: self.path.display().to_string(),
                        source,
                    });
                }
            }
        }
        Ok(partition_table::detect(&start[..filled]).map(|t| t.to_string()))
    }
}

impl Sink for Device {
    fn write_at(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        let mut data = data;
        let mut offset = offset;
        let aligned = offset.is_multiple_of(DIRECT_IO_ALIGN as u64)
            && (data.as_ptr() as usize).is_multiple_of(DIRECT_IO_ALIGN);
        let whole = data.len() / DIRECT_IO_ALIGN * DIRECT_IO_ALIGN;
        if let Some(direct) = &self.direct
            && aligned
            && whole > 0
        {
            match direct.write_all_at(&data[..whole], offset) {
                Ok(()) => {
                    data = &data[whole..];
                    offset += whole as u64;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::warn!(device = %self.path.display(), "O_DIRECT write refused, falling back to buffered writes");
                    self.direct = None;
                }
                Err(e) => return Err(e),
            }
        }
        if !data.is_empty() {
            self.buffered.write_all_at(data, offset)?;
        }
        Ok(())
    }

    fn write_zeroes(&mut self, offset: u64, len: u64, zeros: &[u8]) -> io::Result<()> {
        // Block devices take whole logical blocks (4 KiB covers 512-byte ones too); the
        // unaligned edges are written.
        let align = DIRECT_IO_ALIGN as u64;
        let start = offset.next_multiple_of(align);
        let end = (offset + len) / align * align;
        if self.zero_range && end > start {
            // A block device zeroes with WRITE ZEROES where the disk has it and with its own
            // writes otherwise; either way the range reads as zeros. A file may grow.
            let mode = libc::FALLOC_FL_ZERO_RANGE
                | if self.is_block {
                    libc::FALLOC_FL_KEEP_SIZE
                } else {
                    0
                };
            let (at, n) = (
                libc::off_t::try_from(start).map_err(io::Error::other)?,
                libc::off_t::try_from(end - start).map_err(io::Error::other)?,
            );
            // SAFETY: fallocate takes a descriptor open for the whole call and plain integers.
            let rc = unsafe { libc::fallocate(self.buffered.as_raw_fd(), mode, at, n) };
            if rc == 0 {
                write_zero_buffers(self, offset, start - offset, zeros)?;
                return write_zero_buffers(self, end, offset + len - end, zeros);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENODEV | libc::ENOSYS) => {
                    tracing::info!(device = %self.path.display(), error = %e, "zeroing ranges is not supported, writing zeros");
                    self.zero_range = false;
                }
                _ => return Err(e),
            }
        }
        write_zero_buffers(self, offset, len, zeros)
    }

    fn sync(&mut self) -> io::Result<()> {
        if let Some(direct) = &self.direct {
            // Flushes the device's volatile write cache for the direct writes.
            direct.sync_data()?;
        }
        self.buffered.sync_data()
    }
}
