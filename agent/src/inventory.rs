//! The machine's inventory from /proc and /sys, in the agent API's terms.

use std::fs;
use std::path::Path;

use proto::agent_v1::{Disk, Dmi, Inventory, Nic};

use crate::config_drive;
use crate::disks::{self, BlockDevice};
use crate::partition_table;

/// Reads CPUs and memory from `proc`, disks and NICs from `sys` (normally /proc and /sys).
pub fn collect(proc: &Path, sys: &Path) -> Inventory {
    let cpuinfo = fs::read_to_string(proc.join("cpuinfo")).unwrap_or_default();
    let cpu_count = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count() as u32;
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let memory_bytes = fs::read_to_string(proc.join("meminfo"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024);
    let disks = disks::read_sysfs(&sys.join("block"))
        .unwrap_or_default()
        .into_iter()
        .filter(|d| !d.is_virtual())
        .map(|d| disk(d, Path::new("/dev")))
        .collect();
    Inventory {
        cpu_count,
        cpu_model,
        memory_bytes,
        disks,
        nics: nics(&sys.join("class/net")),
        dmi: dmi(&sys.join("class/dmi/id")),
    }
}

/// System, board and firmware identity from the DMI tables the kernel exports (`id` is
/// `/sys/class/dmi/id`); None when there are none (some VMs, non-x86).
fn dmi(id: &Path) -> Option<Dmi> {
    let read = |name: &str| {
        fs::read_to_string(id.join(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let d = Dmi {
        system_manufacturer: read("sys_vendor"),
        system_product: read("product_name"),
        system_serial: read("product_serial"),
        system_uuid: read("product_uuid"),
        board_vendor: read("board_vendor"),
        board_product: read("board_name"),
        bios_vendor: read("bios_vendor"),
        bios_version: read("bios_version"),
    };
    (d != Dmi::default()).then_some(d)
}

/// One disk in the API's terms; `dev` holds its device node (`/dev` on a host). The marker
/// and the on-disk table check are best effort: an unreadable disk reports neither.
fn disk(d: BlockDevice, dev: &Path) -> Disk {
    let node = dev.join(&d.name);
    let on_disk_table = partition_table::probe(&node).ok().flatten().is_some();
    let marker = config_drive::read_marker(&node)
        .unwrap_or_else(|e| {
            tracing::debug!(disk = %d.name, error = %e, "no marker read");
            None
        })
        .map(|m| m.trim().to_string())
        .unwrap_or_default();
    Disk {
        has_partitions: d.has_partitions || on_disk_table,
        marker,
        name: d.name,
        size_bytes: d.size_bytes,
        model: d.model,
        vendor: d.vendor,
        serial_number: d.serial,
        wwn: d.wwn,
        rotational: d.rotational,
        hctl: d.hctl.unwrap_or_default(),
    }
}

fn nics(class_net: &Path) -> Vec<Nic> {
    let Ok(entries) = fs::read_dir(class_net) else {
        return Vec::new();
    };
    let read = |dir: &Path, attr: &str| {
        fs::read_to_string(dir.join(attr))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let mut nics: Vec<Nic> = entries
        .flatten()
        .filter(|e| e.file_name() != "lo")
        .map(|e| {
            let dir = e.path();
            Nic {
                name: e.file_name().to_string_lossy().into_owned(),
                mac: read(&dir, "address"),
                speed_mbps: read(&dir, "speed")
                    .parse::<i64>()
                    .ok()
                    .filter(|s| *s > 0)
                    .map_or(0, |s| s as u32),
                link_up: read(&dir, "operstate") == "up" || read(&dir, "carrier") == "1",
                lldp_neighbor: String::new(),
            }
        })
        .collect();
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    nics
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fake_proc_and_sys() {
        let root = std::env::temp_dir().join(format!("gw-inv-{}", std::process::id()));
        let (proc, sys) = (root.join("proc"), root.join("sys"));
        fs::create_dir_all(&proc).unwrap();
        fs::create_dir_all(sys.join("block/vda")).unwrap();
        fs::create_dir_all(sys.join("class/net/eth0")).unwrap();
        fs::create_dir_all(sys.join("class/net/lo")).unwrap();
        fs::write(
            proc.join("cpuinfo"),
            "processor\t: 0\nmodel name\t: QEMU Virtual CPU\nprocessor\t: 1\n",
        )
        .unwrap();
        fs::write(
            proc.join("meminfo"),
            "MemTotal:        2048 kB\nMemFree: 1 kB\n",
        )
        .unwrap();
        fs::write(sys.join("block/vda/size"), "2048\n").unwrap();
        fs::write(sys.join("block/vda/serial"), "gw-1\n").unwrap();
        fs::write(sys.join("class/net/eth0/address"), "52:54:00:00:00:01\n").unwrap();
        fs::write(sys.join("class/net/eth0/operstate"), "up\n").unwrap();
        assert_eq!(collect(&proc, &sys).dmi, None, "no DMI tables, no identity");
        fs::create_dir_all(sys.join("class/dmi/id")).unwrap();
        fs::write(sys.join("class/dmi/id/sys_vendor"), "QEMU\n").unwrap();
        fs::write(sys.join("class/dmi/id/bios_version"), "1.16.2\n").unwrap();
        let inv = collect(&proc, &sys);
        let dmi = inv.dmi.clone().unwrap();
        assert_eq!(
            (dmi.system_manufacturer.as_str(), dmi.bios_version.as_str()),
            ("QEMU", "1.16.2")
        );
        assert!(dmi.system_serial.is_empty());
        assert_eq!(
            (inv.cpu_count, inv.cpu_model.as_str()),
            (2, "QEMU Virtual CPU")
        );
        assert_eq!(inv.memory_bytes, 2048 * 1024);
        assert_eq!(inv.disks.len(), 1);
        assert_eq!(
            (inv.disks[0].size_bytes, inv.disks[0].serial_number.as_str()),
            (2048 * 512, "gw-1")
        );
        assert_eq!(inv.nics.len(), 1);
        assert!(inv.nics[0].link_up && inv.nics[0].mac == "52:54:00:00:00:01");
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn disk_reads_table_and_marker_from_the_device_node() {
        let dev = std::env::temp_dir().join(format!("gw-inv-dev-{}", std::process::id()));
        fs::create_dir_all(&dev).unwrap();
        // An MBR with one partition: a table, no marker.
        let mut sector0 = vec![0u8; 4096];
        sector0[510] = 0x55;
        sector0[511] = 0xAA;
        sector0[446 + 4] = 0x83;
        sector0[446 + 12] = 8;
        fs::write(dev.join("sdz"), &sector0).unwrap();
        let d = disk(
            BlockDevice {
                name: "sdz".into(),
                ..Default::default()
            },
            &dev,
        );
        assert!(d.has_partitions);
        assert_eq!(d.marker, "");
        // A missing node: nothing found, nothing fails.
        let d = disk(
            BlockDevice {
                name: "sdy".into(),
                ..Default::default()
            },
            &dev,
        );
        assert!(!d.has_partitions && d.marker.is_empty());
        fs::remove_dir_all(dev).unwrap();
    }
}
