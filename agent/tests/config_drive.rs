//! The config drive against real tools: GPT images made by sfdisk, written by the image writer
//! onto loop devices larger than the image; the result checked by sfdisk, blkid and a FAT
//! reader. Needs root (losetup), python3, sfdisk and blkid.
//!
//! Test code: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::io::{Cursor, Read};
use std::path::Path;

use agent::config_drive::{self, ConfigDrive, Marker};
use agent::image::{self, ImageFormat, ImageSource, WriteOptions};
use agent::run::{Decision, decide};
use common::{HttpServer, LoopDevice, MIB, TempDir, blkid_at, checksum_of, pattern, tool};
use proto::agent_v1::FailureReason;

const SECTOR: usize = 512;

fn sfdisk(target: &Path, script: &str) {
    let out = tool(
        "sfdisk",
        &[
            "-q",
            "--no-reread",
            "--no-tell-kernel",
            target.to_str().unwrap(),
        ],
        Some(script),
    );
    assert!(
        out.status.success(),
        "sfdisk failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The files in the root directory of the FAT in `partition`, with their contents.
fn fat_files(partition: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    let fs = fatfs::FileSystem::new(Cursor::new(partition), fatfs::FsOptions::new()).unwrap();
    let mut files: Vec<(String, Vec<u8>)> = fs
        .root_dir()
        .iter()
        .map(|e| {
            let e = e.unwrap();
            let mut content = Vec::new();
            e.to_file().read_to_end(&mut content).unwrap();
            (e.file_name(), content)
        })
        .collect();
    files.sort();
    files
}

fn read_at(device: &Path, offset: usize, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    std::os::unix::fs::FileExt::read_exact_at(
        &fs::File::open(device).unwrap(),
        &mut buf,
        offset as u64,
    )
    .unwrap();
    buf
}

const MARKER: &str = "server-uid=5f0c9e2a\nserver=fra1/a01-u01\nchecksum=sha256:IMAGE\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_drive_is_appended_after_the_written_image() {
    const IMAGE: usize = 24 * MIB;
    const DISK: usize = 64 * MIB;
    let dir = TempDir::new();
    let www = dir.path("www");
    fs::create_dir(&www).unwrap();
    // A GPT image: one 16 MiB partition at 1 MiB with recognisable content.
    let image_path = www.join("disk.raw");
    fs::write(
        &image_path,
        pattern(IMAGE).iter().map(|b| b ^ 0x5A).collect::<Vec<u8>>(),
    )
    .unwrap();
    sfdisk(&image_path, "label: gpt\n,16MiB,L\n");
    let image = fs::read(&image_path).unwrap();
    assert_eq!(&image[SECTOR..SECTOR + 8], b"EFI PART");
    let server = HttpServer::serve(&www);
    let disk = LoopDevice::new(&dir.path("disk.loop"), DISK);
    let checksum = checksum_of(&image);
    let report = image::write_image(
        &image::default_client().unwrap(),
        &ImageSource {
            url: server.url("disk.raw"),
            checksum: checksum.clone(),
            format: ImageFormat::Raw,
        },
        disk.path(),
        &WriteOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.image_size, IMAGE as u64);

    let marker = MARKER.replace("IMAGE", &checksum.to_string()["sha256:".len()..]);
    let user_data = b"#cloud-config\nhostname: a01-u01\n".to_vec();
    let meta_data = b"instance-id: 5f0c9e2a\nlocal-hostname: a01-u01\n".to_vec();
    let network_config = b"version: 2\nethernets: {}\n".to_vec();
    let drive = config_drive::write_config_drive(
        disk.path(),
        &ConfigDrive {
            user_data: &user_data,
            meta_data: &meta_data,
            network_config: &network_config,
            marker: &marker,
        },
    )
    .unwrap();
    // After partition 1 (1..17 MiB), on the next MiB.
    assert_eq!((drive.partition, drive.offset), (2, 17 * MIB as u64));

    // sfdisk sees a consistent table with the new partition and a backup at the disk's end.
    let verify = tool("sfdisk", &["--verify", &disk.name], None);
    let (out, err) = (
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr),
    );
    assert!(verify.status.success(), "sfdisk --verify: {out}{err}");
    assert!(
        out.contains("No errors detected"),
        "sfdisk --verify: {out}{err}"
    );
    assert!(
        !err.to_lowercase().contains("corrupt"),
        "sfdisk --verify: {err}"
    );
    let dump = tool("sfdisk", &["-d", &disk.name], None);
    let (dump, err) = (
        String::from_utf8_lossy(&dump.stdout).into_owned(),
        String::from_utf8_lossy(&dump.stderr).into_owned(),
    );
    assert!(err.trim().is_empty(), "sfdisk -d warned: {err}");
    let disk_sectors = DISK / SECTOR;
    assert!(
        dump.contains(&format!("last-lba: {}\n", disk_sectors - 34)),
        "{dump}"
    );
    let cidata = dump
        .lines()
        .find(|l| l.contains("name=\"cidata\""))
        .unwrap_or_else(|| panic!("no cidata partition in\n{dump}"));
    let field = |name: &str| -> String {
        cidata
            .split(',')
            .find_map(|f| {
                f.split_once(':')
                    .map_or(f, |(_, v)| v)
                    .trim()
                    .strip_prefix(name)
            })
            .unwrap_or_else(|| panic!("no {name} in {cidata}"))
            .trim()
            .to_string()
    };
    assert_eq!(field("start="), (17 * MIB / SECTOR).to_string());
    assert_eq!(field("size="), (8 * MIB / SECTOR).to_string());
    assert_eq!(field("type="), "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7");
    let last = read_at(disk.path(), DISK - SECTOR, SECTOR);
    assert_eq!(
        &last[..8],
        b"EFI PART",
        "no backup header in the last sector"
    );
    assert_eq!(
        u64::from_le_bytes(last[24..32].try_into().unwrap()),
        disk_sectors as u64 - 1
    );
    // The image's own backup header (its last sector) is gone.
    assert_ne!(&read_at(disk.path(), IMAGE - SECTOR, 8)[..], b"EFI PART");
    // The image's partition is untouched.
    assert!(read_at(disk.path(), MIB, 16 * MIB) == image[MIB..17 * MIB]);

    // blkid sees the NoCloud volume; a FAT reader finds exactly the files.
    let probe = blkid_at(disk.path(), drive.offset);
    assert!(
        probe.contains("LABEL=\"CIDATA\"") && probe.contains("TYPE=\"vfat\""),
        "blkid at the drive: {probe:?}"
    );
    let files = fat_files(read_at(disk.path(), drive.offset as usize, 8 * MIB));
    let expected: Vec<(String, Vec<u8>)> = vec![
        ("groundwork-marker".into(), marker.clone().into_bytes()),
        ("meta-data".into(), meta_data),
        ("network-config".into(), network_config),
        ("user-data".into(), user_data),
    ];
    assert_eq!(files, expected);

    // The marker reads back and makes the next Provision of the same image adopt the disk.
    let found = config_drive::read_marker(disk.path()).unwrap();
    assert_eq!(found.as_deref(), Some(marker.as_str()));
    let found = Marker::parse(found.as_deref().unwrap()).unwrap();
    let rebuilt_cluster = Marker::parse(&marker.replace("5f0c9e2a", "new-uid")).unwrap();
    assert_eq!(
        decide(Some(&found), Some(&rebuilt_cluster), true),
        Decision::Adopt
    );
}

#[test]
fn mbr_or_blank_disks_are_unsupported() {
    let dir = TempDir::new();
    let disk = LoopDevice::new(&dir.path("disk.loop"), 16 * MIB);
    // Blank (the fill pattern): no table at all.
    let err = config_drive::write_config_drive(disk.path(), &ConfigDrive::default()).unwrap_err();
    assert_eq!(
        err.reason(),
        FailureReason::UnsupportedPartitionTable,
        "{err}"
    );
    assert!(err.to_string().contains("found: none"), "{err}");
    // MBR only.
    sfdisk(disk.path(), "label: dos\n,4MiB,L\n");
    let before = disk.read(16 * MIB);
    let err = config_drive::write_config_drive(disk.path(), &ConfigDrive::default()).unwrap_err();
    assert_eq!(
        err.reason(),
        FailureReason::UnsupportedPartitionTable,
        "{err}"
    );
    assert!(err.to_string().contains("found: MBR"), "{err}");
    assert!(disk.read(16 * MIB) == before, "a refused disk was written");
    assert_eq!(config_drive::read_marker(disk.path()).unwrap(), None);
}

#[test]
fn a_gpt_filling_the_disk_leaves_no_room() {
    let dir = TempDir::new();
    let disk = LoopDevice::new(&dir.path("disk.loop"), 16 * MIB);
    sfdisk(disk.path(), "label: gpt\n,,L\n");
    let before = disk.read(16 * MIB);
    let err = config_drive::write_config_drive(disk.path(), &ConfigDrive::default()).unwrap_err();
    assert_eq!(err.reason(), FailureReason::NoRoomForConfigDrive, "{err}");
    assert!(disk.read(16 * MIB) == before, "a refused disk was written");
    assert_eq!(config_drive::read_marker(disk.path()).unwrap(), None);
}
