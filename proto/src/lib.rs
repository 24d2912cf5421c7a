//! The agent API, generated from `groundwork/agent/v1/agent.proto`.

/// `groundwork.agent.v1`: messages, the client the agent uses and the server the controller
/// implements.
#[allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod agent_v1 {
    tonic::include_proto!("groundwork.agent.v1");
}

use sha2::Digest as _;

use agent_v1::FailureReason;

impl FailureReason {
    /// The Server condition reason this failure is recorded under; `None` for
    /// [`FailureReason::Unspecified`] (the controller's generic reason applies).
    pub fn condition_reason(self) -> Option<&'static str> {
        Some(match self {
            Self::Unspecified => return None,
            Self::InvalidTask => "InvalidTask",
            Self::DiskInventoryFailed => "DiskInventoryFailed",
            Self::NoDisks => "NoDisks",
            Self::NoMatchingDisk => "NoMatchingDisk",
            Self::DiskHasPartitions => "DiskHasPartitions",
            Self::UnsupportedFormat => "UnsupportedFormat",
            Self::InvalidChecksum => "InvalidChecksum",
            Self::ImageNotFound => "ImageNotFound",
            Self::DownloadFailed => "DownloadFailed",
            Self::ChecksumMismatch => "ChecksumMismatch",
            Self::ImageTooLarge => "ImageTooLarge",
            Self::ImageEmpty => "ImageEmpty",
            Self::DeviceHasPartitions => "DeviceHasPartitions",
            Self::DeviceBusy => "DeviceBusy",
            Self::DeviceUnavailable => "DeviceUnavailable",
            Self::DecompressFailed => "DecompressFailed",
            Self::WriteFailed => "WriteFailed",
            Self::UnsupportedPartitionTable => "UnsupportedPartitionTable",
            Self::InvalidPartitionTable => "InvalidPartitionTable",
            Self::NoRoomForConfigDrive => "NoRoomForConfigDrive",
            Self::ConfigDriveFailed => "ConfigDriveFailed",
            Self::CleaningFailed => "CleaningFailed",
            Self::InternalError => "InternalError",
        })
    }

    /// Every condition reason a failure can carry, for reading a stored reason back.
    pub fn condition_reasons() -> impl Iterator<Item = &'static str> {
        // The values are numbered from 0 without gaps (a test checks the proto agrees).
        (0..)
            .map_while(|n| Self::try_from(n).ok())
            .filter_map(Self::condition_reason)
    }
}

/// How the ramdisk pins the agent API's CA (`groundwork.ca=` on its kernel command line):
/// `sha256:` and the lowercase hex SHA-256 of the CA certificate's DER.
pub fn ca_pin(ca_der: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(ca_der)))
}

#[cfg(test)]
mod tests {
    use super::FailureReason;

    #[test]
    fn every_failure_reason_has_a_distinct_camel_case_condition_reason() {
        let reasons: Vec<&str> = FailureReason::condition_reasons().collect();
        // Every value the proto declares is reached (no gaps in the numbering), and only
        // Unspecified has no condition reason.
        let declared = include_str!("../groundwork/agent/v1/agent.proto")
            .matches("  FAILURE_REASON_")
            .count();
        assert_eq!(reasons.len() + 1, declared);
        assert_eq!(FailureReason::Unspecified.condition_reason(), None);
        for r in &reasons {
            assert!(r.starts_with(|c: char| c.is_ascii_uppercase()), "{r}");
            assert!(r.chars().all(|c| c.is_ascii_alphanumeric()), "{r}");
        }
        let mut distinct = reasons.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), reasons.len());
    }

    #[test]
    fn pins_are_sha256_of_the_der() {
        assert_eq!(
            super::ca_pin(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
