//! Finding the kernel to kexec on real images: the lab's test OS (hack/boot/test-os.sh: GPT,
//! an ESP with syslinux.cfg and a UKI), a BLS type #1 layout and an ESP with no boot entry,
//! made by sfdisk and mkfs.vfat/mtools. Loading is not tried here (it would load a kernel into
//! the host's); the QEMU e2e test (tests/tests/standby.rs) does the real kexec.
//!
//! Test code: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use agent::kexec::{self, KexecError};
use common::{TempDir, tool};
use proto::agent_v1::KexecOutcome;

fn test_os(dir: &TempDir) -> PathBuf {
    let raw = dir.path("test-os.raw");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/boot/test-os.sh");
    let out = Command::new(&script).arg(&raw).output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    raw
}

/// A 16 MiB GPT image with one ESP (FAT at 1 MiB) holding `files` (name, content), directories
/// made as needed.
fn esp_image(dir: &TempDir, files: &[(&str, &[u8])]) -> PathBuf {
    let img = dir.path("esp.img");
    let fat = dir.path("fat.img");
    let _ = fs::remove_file(&fat);
    fs::File::create(&img).unwrap().set_len(16 << 20).unwrap();
    let out = tool(
        "sfdisk",
        &[
            "-q",
            "--no-reread",
            "--no-tell-kernel",
            img.to_str().unwrap(),
        ],
        Some("label: gpt\nstart=2048, size=28672, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B\n"),
    );
    assert!(out.status.success(), "{out:?}");
    let out = tool(
        "/usr/sbin/mkfs.vfat",
        &["-C", fat.to_str().unwrap(), "14336"],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    for (name, content) in files {
        let mut made = String::new();
        for part in name.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
            made = format!("{made}/{part}");
            let _ = tool(
                "mmd",
                &["-i", fat.to_str().unwrap(), &format!("::{made}")],
                None,
            );
        }
        let src = dir.path("file");
        fs::write(&src, content).unwrap();
        let out = tool(
            "mcopy",
            &[
                "-i",
                fat.to_str().unwrap(),
                src.to_str().unwrap(),
                &format!("::/{name}"),
            ],
            None,
        );
        assert!(out.status.success(), "{out:?}");
    }
    let out = tool(
        "dd",
        &[
            &format!("if={}", fat.display()),
            &format!("of={}", img.display()),
            "bs=512",
            "seek=2048",
            "conv=notrunc",
            "status=none",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    img
}

#[test]
fn the_test_os_declares_its_kernel_in_syslinux_cfg() {
    let dir = TempDir::new();
    let found = kexec::find(&test_os(&dir)).unwrap();
    assert_eq!(found.partition, 0);
    assert_eq!(found.entry.kernel, "vmlinuz");
    assert_eq!(found.entry.initrds, ["initrd.img"]);
    assert_eq!(
        found.entry.cmdline,
        "console=ttyS0,115200 groundwork.os=test"
    );
    // A bzImage: "HdrS" at 0x202.
    assert_eq!(&found.kernel[0x202..0x206], b"HdrS");
    assert!(!found.initrd.is_empty());
}

#[test]
fn bls_entries_go_before_syslinux_and_the_newest_wins() {
    let dir = TempDir::new();
    let img = esp_image(
        &dir,
        &[
            (
                "syslinux.cfg",
                b"DEFAULT x\nLABEL x\n  KERNEL /old\n  APPEND old\n",
            ),
            (
                "loader/entries/a-6.1.conf",
                b"title A\nversion 6.1.0\nlinux /k61\ninitrd /i61\noptions root=LABEL=a\n",
            ),
            (
                "loader/entries/a-6.12.conf",
                b"title A\nversion 6.12.0\nlinux /k612\ninitrd /ucode\ninitrd /i612\noptions root=LABEL=a quiet\n",
            ),
            ("k612", b"kernel 6.12"),
            ("ucode", b"U"),
            ("i612", b"I"),
        ],
    );
    let found = kexec::find(&img).unwrap();
    assert_eq!(found.entry.kernel, "k612");
    assert_eq!(found.entry.cmdline, "root=LABEL=a quiet");
    assert_eq!(found.kernel, b"kernel 6.12");
    assert_eq!(found.initrd, b"UI", "initrds concatenated in order");
}

#[test]
fn an_esp_without_a_boot_entry_is_no_boot_entry() {
    let dir = TempDir::new();
    let img = esp_image(
        &dir,
        &[("EFI/BOOT/BOOTX64.EFI", b"a UKI is not for kexec yet")],
    );
    let err = kexec::find(&img).unwrap_err();
    assert!(matches!(err, KexecError::NoBootEntry), "{err}");
    assert_eq!(err.outcome(), KexecOutcome::NoBootEntry);
}

#[test]
fn an_entry_naming_a_missing_kernel_fails_the_load() {
    let dir = TempDir::new();
    let img = esp_image(
        &dir,
        &[("syslinux.cfg", b"DEFAULT x\nLABEL x\n  KERNEL /gone\n")],
    );
    let err = kexec::find(&img).unwrap_err();
    assert!(
        matches!(err, KexecError::Read { ref file, .. } if file == "gone"),
        "{err}"
    );
    assert_eq!(err.outcome(), KexecOutcome::LoadFailed);
}
