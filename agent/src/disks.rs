//! Block-device inventory from sysfs and root-device selection by hints.
//!
//! [`select_root_device`] is pure: the smallest disk that matches every hint. [`read_sysfs`]
//! builds the list from a sysfs tree (`/sys/block` on a host, a temporary tree in tests).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use proto::agent_v1::FailureReason;

/// Bytes in a GiB: `min_size_gigabytes` counts GiB, as Ironic's root device hints do.
const GIB: u64 = 1 << 30;

/// Kernel name prefixes of devices that are never a root disk unless named explicitly.
const VIRTUAL_PREFIXES: &[&str] = &["loop", "ram", "zram", "sr"];

/// A block device as the inventory reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockDevice {
    /// Kernel name, e.g. `sda`, `nvme0n1`, `vda`.
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Model string (trimmed), empty if unknown.
    pub model: String,
    /// Vendor string (trimmed), empty if unknown.
    pub vendor: String,
    /// Serial number (trimmed), empty if unknown.
    pub serial: String,
    /// World wide name (`0x…` for NAA identifiers, else the kernel's wwid), empty if unknown.
    pub wwn: String,
    /// Whether the kernel reports the device as rotational.
    pub rotational: bool,
    /// SCSI host:channel:target:lun, when the device has one.
    pub hctl: Option<String>,
    /// Whether the kernel sees partitions on it.
    pub has_partitions: bool,
}

impl BlockDevice {
    /// `/dev/<name>`.
    pub fn path(&self) -> PathBuf {
        Path::new("/dev").join(&self.name)
    }

    /// Loop, RAM, zram and optical devices: skipped unless a `deviceName` hint names them.
    pub fn is_virtual(&self) -> bool {
        VIRTUAL_PREFIXES.iter().any(|p| {
            self.name
                .strip_prefix(p)
                .is_some_and(|rest| rest.chars().all(|c| c.is_ascii_digit()))
        })
    }
}

/// Root device hints (the Metal3 `rootDeviceHints` vocabulary); every given hint must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RootDeviceHints {
    /// Kernel name, with or without `/dev/` (`sda`, `/dev/sda`).
    pub device_name: Option<String>,
    /// SCSI address `H:C:T:L`, exact.
    pub hctl: Option<String>,
    /// Substring of the model, case-insensitive.
    pub model: Option<String>,
    /// Substring of the vendor, case-insensitive.
    pub vendor: Option<String>,
    /// Serial number, exact.
    pub serial_number: Option<String>,
    /// World wide name, exact.
    pub wwn: Option<String>,
    /// Minimum size in GiB.
    pub min_size_gigabytes: Option<u64>,
    /// Rotational (true) or solid-state (false).
    pub rotational: Option<bool>,
}

impl RootDeviceHints {
    /// The kernel name the `device_name` hint refers to, without `/dev/`.
    fn device_name(&self) -> Option<&str> {
        self.device_name
            .as_deref()
            .map(|n| n.strip_prefix("/dev/").unwrap_or(n))
    }

    /// Whether `device` satisfies every hint (virtual devices need a matching `device_name`).
    pub fn matches(&self, device: &BlockDevice) -> bool {
        fn contains_ci(haystack: &str, needle: &str) -> bool {
            haystack
                .to_lowercase()
                .contains(needle.trim().to_lowercase().as_str())
        }
        let name = self.device_name();
        if device.is_virtual() && name != Some(device.name.as_str()) {
            return false;
        }
        name.is_none_or(|n| n == device.name)
            && self
                .hctl
                .as_deref()
                .is_none_or(|h| device.hctl.as_deref() == Some(h.trim()))
            && self
                .model
                .as_deref()
                .is_none_or(|m| contains_ci(&device.model, m))
            && self
                .vendor
                .as_deref()
                .is_none_or(|v| contains_ci(&device.vendor, v))
            && self
                .serial_number
                .as_deref()
                .is_none_or(|s| device.serial == s.trim())
            && self.wwn.as_deref().is_none_or(|w| device.wwn == w.trim())
            && self
                .min_size_gigabytes
                .is_none_or(|g| device.size_bytes >= g.saturating_mul(GIB))
            && self.rotational.is_none_or(|r| device.rotational == r)
    }
}

/// Why no root device was chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectError {
    /// No usable disk at all (none, or all empty/virtual).
    #[error("no disks found")]
    NoDisks,
    /// Disks exist, none matches every hint.
    #[error("none of the {candidates} disks matches the root device hints {hints:?}")]
    NoMatch {
        /// Number of non-empty disks considered.
        candidates: usize,
        /// The hints, for the message.
        hints: Box<RootDeviceHints>,
    },
}

impl SelectError {
    /// The reason reported to the controller.
    pub fn reason(&self) -> FailureReason {
        match self {
            SelectError::NoDisks => FailureReason::NoDisks,
            SelectError::NoMatch { .. } => FailureReason::NoMatchingDisk,
        }
    }
}

/// The smallest non-empty disk matching every hint; ties go to the lowest kernel name.
pub fn select_root_device<'a>(
    devices: &'a [BlockDevice],
    hints: &RootDeviceHints,
) -> Result<&'a BlockDevice, SelectError> {
    let usable = || devices.iter().filter(|d| d.size_bytes > 0);
    let candidates = usable().filter(|d| !d.is_virtual()).count();
    let chosen = usable()
        .filter(|d| hints.matches(d))
        .min_by(|a, b| (a.size_bytes, &a.name).cmp(&(b.size_bytes, &b.name)));
    match chosen {
        Some(d) => Ok(d),
        None if candidates == 0 && hints.device_name.is_none() => Err(SelectError::NoDisks),
        None => Err(SelectError::NoMatch {
            candidates,
            hints: Box::new(hints.clone()),
        }),
    }
}

/// Reads every block device under `sys_block` (normally `/sys/block`), sorted by name.
///
/// Virtual devices are included (flagged by [`BlockDevice::is_virtual`]) so an explicit
/// `device_name` hint can still pick one; [`select_root_device`] skips them otherwise.
pub fn read_sysfs(sys_block: &Path) -> io::Result<Vec<BlockDevice>> {
    let mut devices = Vec::new();
    for entry in fs::read_dir(sys_block)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        devices.push(read_sysfs_device(&entry.path(), &name));
    }
    devices.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(devices)
}

/// Reads one device directory (`/sys/block/<name>`); missing attributes are left empty.
pub fn read_sysfs_device(dir: &Path, name: &str) -> BlockDevice {
    let attr = |rel: &str| -> Option<String> {
        fs::read_to_string(dir.join(rel))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    // Some drivers put identity under the block directory (virtio: serial; NVMe: wwid),
    // SCSI/ATA/NVMe controllers under device/.
    let first = |names: &[&str]| names.iter().find_map(|n| attr(n)).unwrap_or_default();
    let sectors: u64 = attr("size").and_then(|s| s.parse().ok()).unwrap_or(0);
    let wwid = first(&["wwid", "device/wwid"]);
    BlockDevice {
        name: name.to_string(),
        size_bytes: sectors.saturating_mul(512),
        model: first(&["device/model", "model"]),
        vendor: first(&["device/vendor", "vendor"]),
        serial: first(&["serial", "device/serial"]),
        wwn: normalize_wwn(&wwid),
        rotational: attr("queue/rotational").as_deref() == Some("1"),
        hctl: fs::canonicalize(dir.join("device"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .filter(|n| is_hctl(n)),
        has_partitions: !sysfs_partitions(dir, name).is_empty(),
    }
}

/// Names of the partitions the kernel lists for `name` (`sda1`, `nvme0n1p1`, …).
pub fn sysfs_partitions(dir: &Path, name: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut parts: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|child| {
            child.strip_prefix(name).is_some_and(|rest| {
                let digits = rest.strip_prefix('p').unwrap_or(rest);
                !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit())
            })
        })
        .collect();
    parts.sort();
    parts
}

/// `naa.5000c500…` → `0x5000c500…` (the form udev and Ironic use); others unchanged.
fn normalize_wwn(wwid: &str) -> String {
    match wwid.strip_prefix("naa.") {
        Some(hex) => format!("0x{}", hex.to_lowercase()),
        None => wwid.to_string(),
    }
}

fn is_hctl(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(name: &str, gib: u64) -> BlockDevice {
        BlockDevice {
            name: name.into(),
            size_bytes: gib * GIB,
            ..Default::default()
        }
    }

    fn fleet() -> Vec<BlockDevice> {
        vec![
            BlockDevice {
                model: "SAMSUNG MZ7LH960".into(),
                vendor: "ATA".into(),
                serial: "S1".into(),
                wwn: "0x5002538e000000a1".into(),
                hctl: Some("0:0:0:0".into()),
                ..disk("sda", 960)
            },
            BlockDevice {
                model: "ST4000NM0035".into(),
                vendor: "SEAGATE".into(),
                serial: "Z1".into(),
                rotational: true,
                hctl: Some("1:0:0:0".into()),
                ..disk("sdb", 4000)
            },
            BlockDevice {
                model: "INTEL SSDPE2KX040T8".into(),
                serial: "N1".into(),
                ..disk("nvme0n1", 480)
            },
            disk("loop0", 1),
            disk("sr0", 0),
        ]
    }

    fn pick(hints: RootDeviceHints) -> Result<String, SelectError> {
        let devices = fleet();
        select_root_device(&devices, &hints).map(|d| d.name.clone())
    }

    #[test]
    fn no_hints_picks_the_smallest_real_disk() {
        assert_eq!(pick(RootDeviceHints::default()).unwrap(), "nvme0n1");
    }

    #[test]
    fn every_hint_must_match() {
        let h = |f: fn(&mut RootDeviceHints)| {
            let mut hints = RootDeviceHints::default();
            f(&mut hints);
            pick(hints)
        };
        assert_eq!(h(|h| h.model = Some("samsung".into())).unwrap(), "sda");
        assert_eq!(h(|h| h.vendor = Some("seag".into())).unwrap(), "sdb");
        assert_eq!(h(|h| h.serial_number = Some("Z1".into())).unwrap(), "sdb");
        assert_eq!(
            h(|h| h.wwn = Some("0x5002538e000000a1".into())).unwrap(),
            "sda"
        );
        assert_eq!(h(|h| h.hctl = Some("1:0:0:0".into())).unwrap(), "sdb");
        assert_eq!(h(|h| h.rotational = Some(true)).unwrap(), "sdb");
        assert_eq!(h(|h| h.min_size_gigabytes = Some(500)).unwrap(), "sda");
        assert_eq!(
            h(|h| h.device_name = Some("/dev/sdb".into())).unwrap(),
            "sdb"
        );
        // Serial numbers are exact: a prefix is not enough.
        assert!(matches!(
            h(|h| h.serial_number = Some("S".into())),
            Err(SelectError::NoMatch { candidates: 3, .. })
        ));
        // Two hints that single out different disks match nothing.
        let err = h(|h| {
            h.model = Some("SAMSUNG".into());
            h.rotational = Some(true);
        })
        .unwrap_err();
        assert_eq!(err.reason(), FailureReason::NoMatchingDisk);
    }

    #[test]
    fn ties_go_to_the_lowest_name() {
        let devices = vec![disk("sdc", 100), disk("sdb", 100), disk("sdd", 200)];
        let d = select_root_device(&devices, &RootDeviceHints::default()).unwrap();
        assert_eq!(d.name, "sdb");
    }

    #[test]
    fn virtual_devices_only_when_named() {
        let devices = vec![disk("loop0", 1), disk("zram0", 1), disk("ram0", 1)];
        assert_eq!(
            select_root_device(&devices, &RootDeviceHints::default()),
            Err(SelectError::NoDisks)
        );
        let named = RootDeviceHints {
            device_name: Some("/dev/loop0".into()),
            ..Default::default()
        };
        assert_eq!(select_root_device(&devices, &named).unwrap().name, "loop0");
        // A device_name hint still has to agree with the others.
        let conflicting = RootDeviceHints {
            min_size_gigabytes: Some(2),
            ..named
        };
        assert!(matches!(
            select_root_device(&devices, &conflicting),
            Err(SelectError::NoMatch { .. })
        ));
        assert!(disk("loop12", 1).is_virtual());
        assert!(!disk("looper", 1).is_virtual());
        assert!(!disk("sda", 1).is_virtual());
    }

    #[test]
    fn empty_list_is_no_disks() {
        assert_eq!(
            select_root_device(&[], &RootDeviceHints::default())
                .unwrap_err()
                .reason(),
            FailureReason::NoDisks
        );
    }

    #[test]
    fn reads_a_sysfs_tree() {
        let root = std::env::temp_dir().join(format!("agent-sysfs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let block = root.join("block");
        let write = |rel: &str, content: &str| {
            let p = block.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, content).unwrap();
        };
        // sda: a SCSI disk with a partition; device/ links to its H:C:T:L directory.
        let hctl_dir = root.join("devices/host0/target0:0:0/0:0:0:0");
        fs::create_dir_all(&hctl_dir).unwrap();
        fs::write(hctl_dir.join("model"), "SAMSUNG MZ7LH960  \n").unwrap();
        fs::write(hctl_dir.join("vendor"), "ATA     \n").unwrap();
        fs::write(hctl_dir.join("wwid"), "naa.5002538E000000A1\n").unwrap();
        fs::create_dir_all(block.join("sda")).unwrap();
        std::os::unix::fs::symlink(&hctl_dir, block.join("sda/device")).unwrap();
        write("sda/size", "1875385008\n");
        write("sda/queue/rotational", "0\n");
        write("sda/sda1/partition", "1\n");
        // nvme0n1: wwid and serial in different places, partitions named p1.
        write("nvme0n1/size", "1000\n");
        write("nvme0n1/wwid", "eui.0025388b91b1a2c3\n");
        write("nvme0n1/device/serial", "N1  \n");
        write("nvme0n1/queue/rotational", "0\n");
        write("nvme0n1/nvme0n1p1/partition", "1\n");
        // vda: virtio, serial under the block directory, rotational, no partitions.
        write("vda/size", "2048\n");
        write("vda/serial", "VIRT1\n");
        write("vda/queue/rotational", "1\n");

        let devices = read_sysfs(&block).unwrap();
        fs::remove_dir_all(&root).unwrap();
        let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["nvme0n1", "sda", "vda"]);
        let sda = &devices[1];
        assert_eq!(sda.size_bytes, 1_875_385_008 * 512);
        assert_eq!(sda.model, "SAMSUNG MZ7LH960");
        assert_eq!(sda.vendor, "ATA");
        assert_eq!(sda.wwn, "0x5002538e000000a1");
        assert_eq!(sda.hctl.as_deref(), Some("0:0:0:0"));
        assert!(sda.has_partitions && !sda.rotational);
        let nvme = &devices[0];
        assert_eq!(nvme.serial, "N1");
        assert_eq!(nvme.wwn, "eui.0025388b91b1a2c3");
        assert!(nvme.has_partitions && nvme.hctl.is_none());
        let vda = &devices[2];
        assert_eq!((vda.serial.as_str(), vda.rotational), ("VIRT1", true));
        assert_eq!(vda.size_bytes, 2048 * 512);
        assert!(!vda.has_partitions);
    }
}
