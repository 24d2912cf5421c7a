//! What a task can fail with, and the pure decisions behind a Provision task.

use std::io;

use proto::agent_v1::{self as api, FailureReason};

use crate::clean::CleanError;
use crate::config_drive::{ConfigDriveError, Marker};
use crate::disks::{RootDeviceHints, SelectError};
use crate::image::WriteError;
use crate::image::decompress::{ImageFormat, UnknownFormat};

/// Why a task failed; [`TaskError::reason`] is what the controller records.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The task is malformed (e.g. a Clean without a mode).
    #[error("invalid task: {0}")]
    InvalidTask(String),
    /// The disks could not be listed.
    #[error("listing disks failed: {0}")]
    Disks(io::Error),
    /// No disk matches the root device hints.
    #[error(transparent)]
    Select(#[from] SelectError),
    /// The chosen disk holds partitions and no matching marker.
    #[error(
        "{device} holds a partition table and no marker of this server and image; clean it first"
    )]
    DiskHasPartitions {
        /// The disk.
        device: String,
    },
    /// The image format is not known at all.
    #[error(transparent)]
    UnknownFormat(#[from] UnknownFormat),
    /// Writing the image failed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// Writing the config drive failed.
    #[error(transparent)]
    ConfigDrive(#[from] ConfigDriveError),
    /// Cleaning failed.
    #[error(transparent)]
    Clean(#[from] CleanError),
    /// A worker thread died (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl TaskError {
    /// The reason reported to the controller.
    pub fn reason(&self) -> FailureReason {
        match self {
            Self::InvalidTask(_) => FailureReason::InvalidTask,
            Self::Disks(_) => FailureReason::DiskInventoryFailed,
            Self::Select(e) => e.reason(),
            Self::DiskHasPartitions { .. } => FailureReason::DiskHasPartitions,
            Self::UnknownFormat(_) => FailureReason::UnsupportedFormat,
            Self::Write(e) => e.reason(),
            Self::ConfigDrive(e) => e.reason(),
            Self::Clean(e) => e.reason(),
            Self::Internal(_) => FailureReason::InternalError,
        }
    }
}

impl From<tokio::task::JoinError> for TaskError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Internal(format!("worker died: {e}"))
    }
}

/// What to do with the chosen disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Its marker names this server and image: it already holds the image; write nothing.
    Adopt,
    /// It holds partitions of something else: refuse.
    Refuse,
    /// It is blank: write.
    Write,
}

/// Adopt when the disk's marker matches the task's; otherwise refuse a disk with partitions.
pub fn decide(found: Option<&Marker>, expected: Option<&Marker>, has_partitions: bool) -> Decision {
    match (found, expected) {
        (Some(found), Some(expected)) if found.matches(expected) => Decision::Adopt,
        _ if has_partitions => Decision::Refuse,
        _ => Decision::Write,
    }
}

/// The task's hints in the selector's terms (empty strings and zero mean "no hint").
pub fn hints(h: Option<&proto::agent_v1::RootDeviceHints>) -> RootDeviceHints {
    let Some(h) = h else {
        return RootDeviceHints::default();
    };
    let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    RootDeviceHints {
        device_name: text(&h.device_name),
        hctl: text(&h.hctl),
        model: text(&h.model),
        vendor: text(&h.vendor),
        serial_number: text(&h.serial_number),
        wwn: text(&h.wwn),
        min_size_gigabytes: (h.min_size_gigabytes > 0).then_some(u64::from(h.min_size_gigabytes)),
        rotational: h.rotational,
    }
}

/// The writer's format of the task's format (the one conversion from the API's enum).
pub fn format(format: i32) -> Result<ImageFormat, UnknownFormat> {
    match api::ImageFormat::try_from(format) {
        Ok(api::ImageFormat::Raw) => Ok(ImageFormat::Raw),
        Ok(api::ImageFormat::RawGzip) => Ok(ImageFormat::RawGzip),
        Ok(api::ImageFormat::RawZstd) => Ok(ImageFormat::RawZstd),
        Ok(api::ImageFormat::Qcow2) => Ok(ImageFormat::Qcow2),
        Ok(api::ImageFormat::Unspecified) | Err(_) => {
            Err(UnknownFormat(format!("enum value {format}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marker(server: &str, checksum: &str) -> Marker {
        Marker::parse(&format!(
            "server-uid=u\nserver={server}\nchecksum={checksum}\n"
        ))
        .unwrap()
    }

    #[test]
    fn adoption_decision() {
        let mine = marker("fra1/a", "sha256:aa");
        let other_image = marker("fra1/a", "sha256:bb");
        let other_server = marker("fra1/b", "sha256:aa");
        // A matching marker wins even though the disk has partitions (it always does).
        assert_eq!(decide(Some(&mine), Some(&mine), true), Decision::Adopt);
        assert_eq!(
            decide(Some(&other_image), Some(&mine), true),
            Decision::Refuse
        );
        assert_eq!(
            decide(Some(&other_server), Some(&mine), true),
            Decision::Refuse
        );
        assert_eq!(decide(None, Some(&mine), true), Decision::Refuse);
        // A task without a marker never adopts.
        assert_eq!(decide(Some(&mine), None, true), Decision::Refuse);
        assert_eq!(decide(None, Some(&mine), false), Decision::Write);
        assert_eq!(
            decide(Some(&other_image), Some(&mine), false),
            Decision::Write
        );
    }

    #[test]
    fn hints_map_empty_to_none() {
        assert_eq!(hints(None), RootDeviceHints::default());
        let h = hints(Some(&proto::agent_v1::RootDeviceHints {
            device_name: "/dev/sda".into(),
            model: " ".into(),
            min_size_gigabytes: 100,
            rotational: Some(false),
            ..Default::default()
        }));
        assert_eq!(h.device_name.as_deref(), Some("/dev/sda"));
        assert_eq!((h.model, h.serial_number), (None, None));
        assert_eq!(
            (h.min_size_gigabytes, h.rotational),
            (Some(100), Some(false))
        );
    }

    #[test]
    fn formats() {
        let raw = api::ImageFormat::Raw as i32;
        assert_eq!(format(raw).unwrap(), ImageFormat::Raw);
        let zstd = api::ImageFormat::RawZstd as i32;
        assert_eq!(format(zstd).unwrap(), ImageFormat::RawZstd);
        assert_eq!(
            format(api::ImageFormat::Qcow2 as i32).unwrap(),
            ImageFormat::Qcow2
        );
        for unknown in [api::ImageFormat::Unspecified as i32, 99] {
            let err = TaskError::from(format(unknown).unwrap_err());
            assert_eq!(err.reason(), FailureReason::UnsupportedFormat);
        }
        assert_eq!(
            TaskError::DiskHasPartitions {
                device: "/dev/sda".into()
            }
            .reason(),
            FailureReason::DiskHasPartitions
        );
    }
}
