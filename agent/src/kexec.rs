//! Booting the written image with kexec (a warm provisioning, `docs/standby.md`): the boot
//! entry the image declares is read from its FAT partitions (the EFI System Partition first),
//! its kernel and initrds are loaded with `kexec_file_load(2)`, and the agent executes the
//! loaded kernel once its result is delivered. No firmware runs in between.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use proto::agent_v1::KexecOutcome;

use crate::boot_entry::{self, BootEntry};
use crate::config_drive::fat::Window;
use crate::gpt;

/// The EFI System Partition's type GUID (C12A7328-F81F-11D2-BA4B-00A0C93EC93B) in on-disk
/// byte order.
const ESP_TYPE: [u8; 16] = [
    0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b,
];
/// Largest configuration file read (boot entries are a few lines).
const MAX_CONFIG_BYTES: u64 = 64 * 1024;
/// Largest kernel or initrd read.
const MAX_IMAGE_BYTES: u64 = 1 << 30;
/// `kexec_file_load` flag: no initrd is passed.
const KEXEC_FILE_NO_INITRAMFS: libc::c_ulong = 0x4;

/// Why the written image was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum KexecError {
    /// No partition holds a boot entry kexec can use.
    #[error(
        "the image declares no boot entry kexec can use (no BLS entry, no syslinux/extlinux config)"
    )]
    NoBootEntry,
    /// A file the entry names could not be read.
    #[error("reading {file} from the image: {source}")]
    Read {
        /// The file, relative to the partition.
        file: String,
        /// Cause.
        source: io::Error,
    },
    /// The running kernel refused the load.
    #[error("kexec_file_load refused {kernel}: {source}")]
    Load {
        /// The kernel's path on the partition.
        kernel: String,
        /// Cause.
        source: io::Error,
    },
}

impl KexecError {
    /// The outcome the controller is told.
    pub fn outcome(&self) -> KexecOutcome {
        match self {
            Self::NoBootEntry => KexecOutcome::NoBootEntry,
            Self::Read { .. } | Self::Load { .. } => KexecOutcome::LoadFailed,
        }
    }
}

/// The boot entry a written image declares, with the files it names read.
#[derive(Debug)]
pub struct Found {
    /// The entry.
    pub entry: BootEntry,
    /// Index of the partition it is on (the partition number minus one).
    pub partition: usize,
    /// The kernel image.
    pub kernel: Vec<u8>,
    /// The entry's initrds, concatenated (empty: none).
    pub initrd: Vec<u8>,
}

/// Finds the boot entry on `device` (a written disk or an image file) and reads its files:
/// the EFI System Partition first, then the other partitions in table order; on each FAT, BLS
/// type #1 entries first, then syslinux/extlinux.
pub fn find(device: &Path) -> Result<Found, KexecError> {
    let disk = File::open(device).map_err(|source| KexecError::Read {
        file: device.display().to_string(),
        source,
    })?;
    let table = gpt::read(&disk).map_err(|_| KexecError::NoBootEntry)?;
    let mut partitions = table.partitions();
    partitions.sort_by_key(|p| (p.type_guid != ESP_TYPE, p.index));
    for p in partitions {
        let window = Window::new(
            &disk,
            p.first_lba * table.sector_size(),
            (p.last_lba + 1 - p.first_lba) * table.sector_size(),
        );
        let Ok(fs) = fatfs::FileSystem::new(window, fatfs::FsOptions::new()) else {
            continue;
        };
        let Some(entry) = entry_on(&fs) else {
            continue;
        };
        let root = fs.root_dir();
        let kernel = read_file(&root, &entry.kernel, MAX_IMAGE_BYTES)?;
        let mut initrd = Vec::new();
        for i in &entry.initrds {
            initrd.extend(read_file(&root, i, MAX_IMAGE_BYTES)?);
        }
        return Ok(Found {
            entry,
            partition: p.index,
            kernel,
            initrd,
        });
    }
    Err(KexecError::NoBootEntry)
}

/// Loads what [`find`] found as the kernel the next [`execute`] boots.
pub fn load(found: &Found) -> Result<(), KexecError> {
    let failed = |source| KexecError::Load {
        kernel: found.entry.kernel.clone(),
        source,
    };
    let kernel = memfd("kernel", &found.kernel).map_err(failed)?;
    let initrd = if found.initrd.is_empty() {
        None
    } else {
        Some(memfd("initrd", &found.initrd).map_err(failed)?)
    };
    file_load(&kernel, initrd.as_ref(), &found.entry.cmdline).map_err(failed)
}

type Dir<'a, 'b> = fatfs::Dir<'b, Window<'a>>;

/// The entry a partition's file system declares: BLS entries first, then syslinux/extlinux.
fn entry_on(fs: &fatfs::FileSystem<Window<'_>>) -> Option<BootEntry> {
    let root = fs.root_dir();
    if let Ok(dir) = root.open_dir(boot_entry::BLS_DIR) {
        let texts: Vec<(String, String)> = dir
            .iter()
            .filter_map(Result::ok)
            .filter(|e| e.is_file())
            .filter_map(|e| {
                let name = e.file_name();
                let text = read_file(&dir, &name, MAX_CONFIG_BYTES).ok()?;
                Some((name, String::from_utf8_lossy(&text).into_owned()))
            })
            .collect();
        if let Some(e) = boot_entry::from_bls(texts.iter().map(|(n, t)| (n.as_str(), t.as_str()))) {
            return Some(e);
        }
    }
    boot_entry::SYSLINUX_PATHS.iter().find_map(|path| {
        let text = read_file(&root, path, MAX_CONFIG_BYTES).ok()?;
        boot_entry::from_syslinux(&String::from_utf8_lossy(&text))
    })
}

fn read_file(dir: &Dir<'_, '_>, path: &str, max: u64) -> Result<Vec<u8>, KexecError> {
    let mut content = Vec::new();
    dir.open_file(path)
        .and_then(|f| f.take(max).read_to_end(&mut content))
        .map_err(|source| KexecError::Read {
            file: path.to_string(),
            source,
        })?;
    Ok(content)
}

/// An anonymous in-memory file holding `bytes` (what `kexec_file_load` reads from).
fn memfd(name: &str, bytes: &[u8]) -> io::Result<OwnedFd> {
    let name = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: memfd_create with a NUL-terminated name; the fd is owned from here on.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by memfd_create and is not owned elsewhere.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = File::from(fd);
    file.write_all(bytes)?;
    Ok(file.into())
}

fn file_load(kernel: &OwnedFd, initrd: Option<&OwnedFd>, cmdline: &str) -> io::Result<()> {
    let cmdline = std::ffi::CString::new(cmdline).map_err(io::Error::other)?;
    let flags = if initrd.is_none() {
        KEXEC_FILE_NO_INITRAMFS
    } else {
        0
    };
    // SAFETY: kexec_file_load(kernel_fd, initrd_fd, cmdline_len, cmdline, flags); the length
    // counts the terminating NUL, as the kernel requires; the fds stay open for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            kernel.as_raw_fd(),
            initrd.map_or(-1, AsRawFd::as_raw_fd),
            cmdline.as_bytes_with_nul().len(),
            cmdline.as_ptr(),
            flags,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Executes the loaded kernel; returns only if the kernel refused.
pub fn execute() -> io::Error {
    // SAFETY: sync(2) and reboot(2) with LINUX_REBOOT_CMD_KEXEC: the disk was synced when the
    // write was committed; this flushes what the agent wrote since.
    unsafe {
        libc::sync();
        libc::reboot(libc::LINUX_REBOOT_CMD_KEXEC);
    }
    io::Error::last_os_error()
}
