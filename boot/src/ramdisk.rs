//! The ramdisk's version: what a standby agent is compared against, so a warm pool never keeps
//! running an agent older than the one the boot services serve (`docs/standby.md`, "Periodic
//! refresh").
//!
//! The version is derived from the files themselves (the SHA-256 of the kernel then the
//! initrd), never declared: a new controller image, or new files in a mounted directory, is a
//! new version. The files are hashed again only when their size, modification time or inode
//! changed, so asking is a `stat` of two files.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::ipxe::{INITRD, KERNEL};

/// Why the version could not be read.
#[derive(Debug, thiserror::Error)]
#[error("ramdisk {path}: {source}")]
pub struct VersionError {
    /// The file that failed.
    pub path: PathBuf,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// Identity of a file as `stat` sees it: a change of any part means its bytes may differ.
type Stamp = (u64, u64, i64, i64);

/// The ramdisk in a directory (`vmlinuz`, `initrd.img`) and its last computed version.
#[derive(Debug)]
pub struct Ramdisk {
    dir: PathBuf,
    last: Mutex<Option<([Stamp; 2], String)>>,
}

impl Ramdisk {
    /// The ramdisk served from `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            last: Mutex::new(None),
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `sha256:` and the first 16 hex digits of the SHA-256 of the kernel then the initrd.
    pub fn version(&self) -> Result<String, VersionError> {
        let files = [self.dir.join(KERNEL), self.dir.join(INITRD)];
        let stamps = [stamp(&files[0])?, stamp(&files[1])?];
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, version)) = last.as_ref()
            && *seen == stamps
        {
            return Ok(version.clone());
        }
        let mut hash = Sha256::new();
        for path in &files {
            digest_file(&mut hash, path)?;
        }
        let version = format!("sha256:{}", &hex::encode(hash.finalize())[..16]);
        *last = Some((stamps, version.clone()));
        Ok(version)
    }
}

fn error(path: &Path) -> impl FnOnce(std::io::Error) -> VersionError + '_ {
    move |source| VersionError {
        path: path.to_path_buf(),
        source,
    }
}

fn stamp(path: &Path) -> Result<Stamp, VersionError> {
    let m = std::fs::metadata(path).map_err(error(path))?;
    Ok((m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
}

fn digest_file(hash: &mut Sha256, path: &Path) -> Result<(), VersionError> {
    let mut file = std::fs::File::open(path).map_err(error(path))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(error(path))?;
        if n == 0 {
            return Ok(());
        }
        hash.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory of this test process, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!("gw-ramdisk-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_version_follows_the_bytes_of_both_files() {
        let dir = TempDir::new("bytes");
        std::fs::write(dir.path().join(KERNEL), b"kernel").unwrap();
        std::fs::write(dir.path().join(INITRD), b"initrd").unwrap();
        let ramdisk = Ramdisk::new(dir.path());
        let first = ramdisk.version().unwrap();
        assert!(
            first.starts_with("sha256:") && first.len() == 7 + 16,
            "{first}"
        );
        assert_eq!(ramdisk.version().unwrap(), first, "unchanged files");
        // A new initrd put in place (as an upgrade or the e2e test does): a new version.
        let next = dir.path().join("next");
        std::fs::write(&next, b"initrd\0\0\0\0").unwrap();
        std::fs::rename(&next, dir.path().join(INITRD)).unwrap();
        let second = ramdisk.version().unwrap();
        assert_ne!(second, first);
        // The same bytes read by a fresh reader give the same version.
        assert_eq!(Ramdisk::new(dir.path()).version().unwrap(), second);
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let dir = TempDir::new("missing");
        std::fs::write(dir.path().join(KERNEL), b"kernel").unwrap();
        let e = Ramdisk::new(dir.path()).version().unwrap_err();
        assert!(e.to_string().contains(INITRD), "{e}");
    }
}
