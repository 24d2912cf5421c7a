//! The writer's typed errors and their stable condition reasons.

use std::io;

use proto::agent_v1::FailureReason;

use super::checksum::ChecksumParseError;
use super::decompress::ImageFormat;

/// Why writing an image failed. Each variant has a stable [`WriteError::reason`].
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The checksum string could not be parsed.
    #[error("invalid checksum: {0}")]
    InvalidChecksum(#[from] ChecksumParseError),
    /// A known format the writer does not handle yet (qcow2).
    #[error("image format {format} is not supported by the streaming writer yet")]
    UnsupportedFormat {
        /// The format.
        format: ImageFormat,
    },
    /// The server answered 404.
    #[error("image not found: {url} answered 404")]
    ImageNotFound {
        /// The image URL.
        url: String,
    },
    /// The download failed (connection, HTTP status, stall, or the body ended early).
    #[error("download of {url} failed: {detail}")]
    DownloadFailed {
        /// The image URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// The downloaded artifact's digest differs from the expected one.
    #[error("checksum mismatch: expected {expected}, the downloaded image has {actual}")]
    ChecksumMismatch {
        /// The expected checksum (`algo:hex`).
        expected: String,
        /// The digest of what was downloaded (`algo:hex`).
        actual: String,
    },
    /// The (decompressed) image is larger than the device.
    #[error(
        "image does not fit the device: device holds {device_size} bytes, image has at least {image_size} bytes"
    )]
    ImageTooLarge {
        /// Usable bytes on the device.
        device_size: u64,
        /// Lower bound of the image size when the writer stopped.
        image_size: u64,
    },
    /// The image decompressed to nothing.
    #[error("the image is empty")]
    ImageEmpty,
    /// The target device holds partitions and the caller did not allow overwriting them.
    #[error("{device} holds a {table} partition table; clean the disk first")]
    DeviceHasPartitions {
        /// The device path.
        device: String,
        /// What was found (`GPT`, `MBR`, or the kernel's partition names).
        table: String,
    },
    /// The target is mounted or exclusively held by someone else.
    #[error("{device} is in use (mounted or held by another process)")]
    DeviceBusy {
        /// The device path.
        device: String,
    },
    /// The target could not be opened or inspected.
    #[error("cannot use {device}: {source}")]
    DeviceUnavailable {
        /// The device path.
        device: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The compressed stream is corrupt or truncated.
    #[error("decompressing the {format} image failed: {source}")]
    DecompressFailed {
        /// The format being decoded.
        format: ImageFormat,
        /// The decoder's error.
        source: io::Error,
    },
    /// Writing or syncing the device failed.
    #[error("writing {device} at offset {offset} failed: {source}")]
    WriteFailed {
        /// The device path.
        device: String,
        /// Byte offset of the failed write (0 for the final sync).
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// A pipeline stage died unexpectedly (a bug).
    #[error("internal error in the image writer: {0}")]
    Internal(String),
}

impl WriteError {
    /// The reason reported to the controller (a condition reason in Server status).
    pub fn reason(&self) -> FailureReason {
        match self {
            WriteError::InvalidChecksum(_) => FailureReason::InvalidChecksum,
            WriteError::UnsupportedFormat { .. } => FailureReason::UnsupportedFormat,
            WriteError::ImageNotFound { .. } => FailureReason::ImageNotFound,
            WriteError::DownloadFailed { .. } => FailureReason::DownloadFailed,
            WriteError::ChecksumMismatch { .. } => FailureReason::ChecksumMismatch,
            WriteError::ImageTooLarge { .. } => FailureReason::ImageTooLarge,
            WriteError::ImageEmpty => FailureReason::ImageEmpty,
            WriteError::DeviceHasPartitions { .. } => FailureReason::DeviceHasPartitions,
            WriteError::DeviceBusy { .. } => FailureReason::DeviceBusy,
            WriteError::DeviceUnavailable { .. } => FailureReason::DeviceUnavailable,
            WriteError::DecompressFailed { .. } => FailureReason::DecompressFailed,
            WriteError::WriteFailed { .. } => FailureReason::WriteFailed,
            WriteError::Internal(_) => FailureReason::InternalError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct() {
        let io = || io::Error::other("x");
        let all = [
            WriteError::InvalidChecksum(ChecksumParseError::InvalidHex),
            WriteError::UnsupportedFormat {
                format: ImageFormat::Qcow2,
            },
            WriteError::ImageNotFound { url: "u".into() },
            WriteError::DownloadFailed {
                url: "u".into(),
                detail: "d".into(),
            },
            WriteError::ChecksumMismatch {
                expected: "a".into(),
                actual: "b".into(),
            },
            WriteError::ImageTooLarge {
                device_size: 1,
                image_size: 2,
            },
            WriteError::ImageEmpty,
            WriteError::DeviceHasPartitions {
                device: "/dev/x".into(),
                table: "GPT".into(),
            },
            WriteError::DeviceBusy { device: "d".into() },
            WriteError::DeviceUnavailable {
                device: "d".into(),
                source: io(),
            },
            WriteError::DecompressFailed {
                format: ImageFormat::RawZstd,
                source: io(),
            },
            WriteError::WriteFailed {
                device: "d".into(),
                offset: 0,
                source: io(),
            },
            WriteError::Internal("x".into()),
        ];
        let mut reasons: Vec<FailureReason> = all.iter().map(WriteError::reason).collect();
        assert!(!reasons.contains(&FailureReason::Unspecified));
        reasons.sort();
        reasons.dedup();
        assert_eq!(reasons.len(), all.len());
    }
}
