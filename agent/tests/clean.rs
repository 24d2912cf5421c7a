//! Disk cleaning against real tools: tables made by sfdisk, filesystems by mkfs.ext4 and the
//! config drive, on loop devices; the result checked by sfdisk and blkid. Needs root
//! (losetup), sfdisk, blkid and mkfs.ext4.
//!
//! Test code: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;

use agent::clean::{self, CleanMode};
use agent::config_drive::{self, ConfigDrive};
use common::{LoopDevice, MIB, TempDir, blkid_at, pattern, tool};

fn succeeds(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const DISK: usize = 64 * MIB;

#[test]
fn metadata_cleaning_leaves_no_table_and_no_signatures() {
    let dir = TempDir::new();
    let disk = LoopDevice::new(&dir.path("disk.loop"), DISK);
    let dev = disk.path();
    // GPT: ext4 at 9 MiB, a FAT config drive after it (17 MiB), backup table at the end.
    succeeds(
        &tool(
            "sfdisk",
            &["-q", "--no-reread", "--no-tell-kernel", &disk.name],
            Some("label: gpt\n,8MiB,L\n,8MiB,L\n"),
        ),
        "sfdisk",
    );
    succeeds(
        &tool(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-E",
                &format!("offset={}", 9 * MIB),
                &disk.name,
                "8M",
            ],
            None,
        ),
        "mkfs.ext4",
    );
    let drive = config_drive::write_config_drive(dev, &ConfigDrive::default()).unwrap();
    assert_eq!(drive.offset, 17 * MIB as u64);
    succeeds(
        &tool("sfdisk", &["-d", &disk.name], None),
        "sfdisk -d before",
    );
    assert!(blkid_at(dev, 9 * MIB as u64).contains("TYPE=\"ext4\""));
    assert!(blkid_at(dev, 17 * MIB as u64).contains("TYPE=\"vfat\""));
    let before = disk.read(DISK);

    let zeroed =
        clean::clean_devices(&[dev.to_path_buf()], CleanMode::Metadata, |_, _| {}).unwrap();

    let dump = tool("sfdisk", &["-d", &disk.name], None);
    assert!(
        !dump.status.success(),
        "sfdisk still finds a table: {}",
        String::from_utf8_lossy(&dump.stdout)
    );
    let whole = tool("blkid", &["-p", &disk.name], None);
    assert!(
        whole.stdout.is_empty() && whole.status.code() == Some(2),
        "blkid finds {:?}",
        String::from_utf8_lossy(&whole.stdout)
    );
    for offset in [MIB, 9 * MIB, 17 * MIB] {
        assert_eq!(
            blkid_at(dev, offset as u64),
            "",
            "signature left at {offset}"
        );
    }
    // Only metadata went: first and last MiB and each partition's first MiB (the first one
    // is adjacent to the disk's first MiB).
    let after = disk.read(DISK);
    let zero_ranges = [
        (0, 2 * MIB),
        (9 * MIB, 10 * MIB),
        (17 * MIB, 18 * MIB),
        (DISK - MIB, DISK),
    ];
    for (start, end) in zero_ranges {
        assert!(
            after[start..end].iter().all(|&b| b == 0),
            "{start}..{end} not zeroed"
        );
    }
    assert_eq!(
        zeroed,
        zero_ranges.iter().map(|(s, e)| (e - s) as u64).sum::<u64>()
    );
    assert!(after[2 * MIB..9 * MIB] == before[2 * MIB..9 * MIB]);
    assert!(after[18 * MIB..DISK - MIB] == before[18 * MIB..DISK - MIB]);
}

#[test]
fn full_cleaning_zeroes_every_byte_with_progress() {
    let dir = TempDir::new();
    // Not a multiple of the 4 MiB write size.
    let size = 10 * MIB + 4096;
    let disk = LoopDevice::new(&dir.path("disk.loop"), size);
    assert!(disk.read(size) == pattern(size));
    let mut reports = Vec::new();
    let zeroed = clean::clean_devices(
        &[disk.path().to_path_buf()],
        CleanMode::Full,
        |done, total| {
            reports.push((done, total));
        },
    )
    .unwrap();
    assert_eq!(zeroed, size as u64);
    assert!(disk.read(size).iter().all(|&b| b == 0), "bytes left");
    assert_eq!(reports.len(), 3);
    assert_eq!(reports.last(), Some(&(size as u64, size as u64)));
    assert!(reports.windows(2).all(|w| w[0].0 < w[1].0));
}
