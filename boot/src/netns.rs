//! Opening sockets inside a network namespace. A socket stays in the namespace it was created
//! in, so the boot services can listen on a lab's bridges while the process talks to the API
//! server from its own namespace. Production runs with hostNetwork and needs none of this.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Errors entering or leaving a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The namespace file could not be opened.
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// setns(2) failed.
    #[error("cannot enter network namespace {path}: {source}")]
    Enter {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The helper thread died.
    #[error("the namespace thread panicked")]
    Thread,
}

/// The path of a named namespace (`ip netns add NAME`).
pub fn named(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// Runs `f` on a fresh thread that has entered the namespace at `path` (or stays in the
/// current one when `path` is None) and returns its result. Only that thread switches.
pub fn within<T: Send + 'static>(
    path: Option<&Path>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NetnsError> {
    let Some(path) = path else {
        return Ok(f());
    };
    let path = path.to_path_buf();
    let ns = File::open(&path).map_err(|source| NetnsError::Open {
        path: path.clone(),
        source,
    })?;
    std::thread::spawn(move || {
        // SAFETY: setns on this thread only, with a valid namespace descriptor.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            return Err(NetnsError::Enter {
                path,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(f())
    })
    .join()
    .map_err(|_| NetnsError::Thread)?
}
