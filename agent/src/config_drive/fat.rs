//! The config drive's FAT filesystem, inside one partition of a disk.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

/// The volume label cloud-init's NoCloud datasource looks for.
pub const LABEL: &[u8; 11] = b"CIDATA     ";

/// Largest marker file read back (it is a few short lines).
const MAX_MARKER_BYTES: u64 = 4096;

/// A byte window `[start, start + len)` of a disk, as a seekable stream (positioned I/O).
pub struct Window<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> Window<'a> {
    /// The window over `len` bytes of `file` from `start`.
    pub fn new(file: &'a File, start: u64, len: u64) -> Self {
        Self {
            file,
            start,
            len,
            pos: 0,
        }
    }

    /// How many of `want` bytes fit before the window's end.
    fn clamp(&self, want: usize) -> usize {
        want.min(self.len.saturating_sub(self.pos) as usize)
    }
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.clamp(buf.len());
        let n = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Window<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.clamp(buf.len());
        if n == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the end of the partition",
            ));
        }
        let n = self.file.write_at(&buf[..n], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "seek before the partition")
        })?;
        Ok(self.pos)
    }
}

/// Formats the window FAT (labelled `CIDATA`) and writes `files` into its root directory.
pub fn format(window: Window<'_>, files: &[(&str, &[u8])]) -> io::Result<()> {
    let mut window = window;
    fatfs::format_volume(
        &mut window,
        fatfs::FormatVolumeOptions::new().volume_label(*LABEL),
    )?;
    window.seek(SeekFrom::Start(0))?;
    let fs = fatfs::FileSystem::new(window, fatfs::FsOptions::new())?;
    {
        let root = fs.root_dir();
        for (name, content) in files {
            let mut file = root.create_file(name)?;
            file.truncate()?;
            file.write_all(content)?;
            file.flush()?;
        }
    }
    fs.unmount()
}

/// Whether the first sector of a partition is a FAT boot sector labelled `CIDATA`.
pub fn has_cidata_label(boot_sector: &[u8]) -> bool {
    if boot_sector.len() < 512 || boot_sector[510..512] != [0x55, 0xAA] {
        return false;
    }
    // Extended boot signature 0x29, then serial (4 bytes) and label (11): FAT12/16 at 38,
    // FAT32 at 66.
    [38usize, 66]
        .into_iter()
        .any(|sig| boot_sector[sig] == 0x29 && boot_sector[sig + 5..sig + 16] == LABEL[..])
}

/// Reads `name` from the root directory of the FAT in `window`; `None` when it is absent.
pub fn read_file(window: Window<'_>, name: &str) -> io::Result<Option<Vec<u8>>> {
    let fs = fatfs::FileSystem::new(window, fatfs::FsOptions::new())?;
    let root = fs.root_dir();
    let file = match root.open_file(name) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut content = Vec::new();
    file.take(MAX_MARKER_BYTES).read_to_end(&mut content)?;
    Ok(Some(content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_reads_back_inside_a_window() {
        let path = std::env::temp_dir().join(format!("gw-fat-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(12 << 20).unwrap();
        file.write_all_at(&[0xAB; 4096], (2 << 20) - 4096).unwrap();
        let files: [(&str, &[u8]); 2] = [("meta-data", b"instance-id: x\n"), ("user-data", b"")];
        format(Window::new(&file, 2 << 20, 8 << 20), &files).unwrap();
        let read = |name| read_file(Window::new(&file, 2 << 20, 8 << 20), name).unwrap();
        assert_eq!(read("meta-data").as_deref(), Some(&b"instance-id: x\n"[..]));
        assert_eq!(read("user-data").as_deref(), Some(&b""[..]));
        assert_eq!(read("network-config"), None);
        let mut boot = [0u8; 512];
        file.read_exact_at(&mut boot, 2 << 20).unwrap();
        assert!(has_cidata_label(&boot));
        // Nothing written outside the window.
        let mut before = [0u8; 4096];
        file.read_exact_at(&mut before, (2 << 20) - 4096).unwrap();
        assert_eq!(before, [0xAB; 4096]);
        let mut after = [0u8; 4096];
        file.read_exact_at(&mut after, 10 << 20).unwrap();
        assert_eq!(after, [0; 4096]);
        std::fs::remove_file(path).unwrap();
        assert!(!has_cidata_label(&[0u8; 512]));
    }
}
