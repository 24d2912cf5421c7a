//! The warm pool end to end (issue 16), against real peers: a BIOS and a UEFI QEMU machine
//! behind IPMI BMC simulators, netbooted by the controller's boot services into the ramdisk,
//! where the agent inspects them and stays on standby holding its NextTask poll. Then:
//! 0. the pool survives a controller restart, and a new ramdisk served after it refreshes the
//!    pool one server at a time (each netbooted again, its standby seat kept; the other keeps
//!    waiting on its heartbeat meanwhile);
//! 1. a warm provisioning: `spec.image` set → the waiting agent writes the test OS and kexecs
//!    into it — no BMC power or boot-device change, no firmware banner on the console between
//!    the agent and the installed OS, the image on disk byte for byte, `StandbyToWrite`,
//!    `Image` and `Kexec` phases;
//! 2. release → cleaned → back on standby, not powered off;
//! 3. an image that declares no boot entry kexec can use (the UEFI machine: the test OS without
//!    its syslinux.cfg still boots its UKI) → the BMC boots the disk, still `Provisioned`;
//! 4. a standby machine whose agent goes silent (QEMU stopped with SIGSTOP) → `Available`,
//!    powered off through the BMC.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crds::Server;
use crds::server::{ServerState, ServerStatus};
use e2e::netlab::run;
use e2e::provisioning::{boot_flags, image, rig, sha256, standby_pool, wait_for};
use e2e::{RunningController, admin_client, eventually, namespace};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// How long a silent ramdisk may stay silent before its attempt is retried.
const RAMDISK_TIMEOUT: u64 = 90;
/// How long a standby agent may stay silent before its server is given up (longer than an
/// in-process controller restart plus the agent's reconnect backoff).
const HEARTBEAT_TIMEOUT: u64 = 20;
const MIB: u64 = 1 << 20;

async fn patch_spec(api: &Api<Server>, name: &str, spec: serde_json::Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "spec": spec })),
    )
    .await
    .unwrap();
}

/// The ramdisk version recorded with the initrd of the attempt that booted the agent.
fn ramdisk_version(s: &ServerStatus) -> String {
    s.boot_progress
        .as_ref()
        .and_then(|p| p.ramdisk_version.clone())
        .unwrap_or_else(|| panic!("no ramdisk version recorded: {s:?}"))
}

fn bmc_events(lab_dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(lab_dir.join(format!("{name}-bmc.log")))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(str::to_string)
        .collect()
}

/// The BMC events that change power or what the machine boots.
fn power_changes(events: &[String]) -> Vec<&String> {
    events
        .iter()
        .filter(|e| {
            ["power_", "set_boot", "vm_started", "vm_killed"]
                .iter()
                .any(|k| e.contains(k))
        })
        .collect()
}

/// Bytes [from, to) of a file.
fn range(path: &Path, from: u64, to: u64) -> Vec<u8> {
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(from)).unwrap();
    let mut buf = vec![0u8; (to - from) as usize];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// The phases of the last provisioning (the history holds every earlier one too).
fn phases(s: &ServerStatus) -> Vec<&str> {
    let all: Vec<&str> = s.phases.iter().map(|p| p.name.as_str()).collect();
    let last = all.iter().rposition(|p| *p == "Provisioning").unwrap_or(0);
    all[last..].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_servers_provision_with_kexec_and_fall_back_when_they_must() {
    let client = admin_client().await;
    let ns = namespace(&client, "standby").await;
    let rig = rig(2).await;
    let lab = &rig.lab;
    let os_raw = rig.www.join("os.raw");
    let os_zst = sha256(&rig.www.join("os.raw.zst"));
    // The test OS without syslinux.cfg: nothing kexec can use (its UKI still boots on UEFI).
    let nokexec = rig.www.join("nokexec.raw");
    std::fs::write(&nokexec, std::fs::read(&os_raw).unwrap()).unwrap();
    run(Command::new("mdel")
        .env("MTOOLS_SKIP_CHECK", "1")
        .arg("-i")
        .arg(format!("{}@@1M", nokexec.display()))
        .arg("::/syslinux.cfg"));
    let nokexec_sha = sha256(&nokexec);

    // s1 BIOS, s2 UEFI; both wait warm once inspected.
    let mut flags = boot_flags(&rig, RAMDISK_TIMEOUT);
    flags.push("--standby-heartbeat-timeout-seconds".into());
    flags.push(HEARTBEAT_TIMEOUT.to_string());
    let controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    let api: Api<Server> = Api::namespaced(client.clone(), &ns);
    let names = ["s1", "s2"];
    let pool = standby_pool(&client, &ns, &rig, &["Legacy", "UEFI"]).await;
    // Standby after inspection: powered on once, never off.
    for (name, s) in names.iter().zip(&pool) {
        assert!(s.standby_since.is_some(), "{name}: {s:?}");
        assert!(s.hardware.is_some(), "{name}: inspected");
        let events = bmc_events(lab.dir(), name);
        let ons = events.iter().filter(|e| e.contains("\"power_on\"")).count();
        assert_eq!(ons, 1, "{name}: {events:?}");
        assert!(
            !events.iter().any(|e| e.contains("\"power_off\"")),
            "{name}: {events:?}"
        );
    }
    let old_version = ramdisk_version(&pool[0]);
    assert_eq!(ramdisk_version(&pool[1]), old_version);

    let pxe_boots = |name: &str| {
        bmc_events(lab.dir(), name)
            .iter()
            .filter(|e| e.contains("vm_started") && e.contains("\"pxe\""))
            .count()
    };
    let boots_before: Vec<usize> = names.iter().map(|n| pxe_boots(n)).collect();
    // 0. A controller restart keeps the pool; the ramdisk it serves after the restart is new
    // (trailing zeros after the initrd's cpio archives: the same files, another version).
    controller.stop().await;
    let initrd = lab.dir().join("artifacts/initrd.img");
    let mut bytes = std::fs::read(&initrd).unwrap();
    bytes.extend_from_slice(&[0u8; 512]);
    let next = initrd.with_extension("next");
    std::fs::write(&next, bytes).unwrap();
    std::fs::rename(&next, &initrd).unwrap();
    let _controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    let refreshed: Vec<ServerStatus> = eventually(
        Duration::from_secs(360),
        "both standby servers on the new ramdisk",
        || async {
            let mut now = Vec::new();
            for name in names {
                now.push(api.get(name).await.ok()?.status?);
            }
            for (name, s) in names.iter().zip(&now) {
                assert!(
                    matches!(
                        s.state,
                        Some(ServerState::Standby | ServerState::Inspecting)
                    ),
                    "{name} left the pool: {s:?}"
                );
            }
            let inspecting = now
                .iter()
                .filter(|s| s.state == Some(ServerState::Inspecting))
                .count();
            assert!(inspecting <= 1, "both servers of the rack refresh at once");
            now.iter()
                .all(|s| s.state == Some(ServerState::Standby) && ramdisk_version(s) != old_version)
                .then_some(now)
        },
    )
    .await;
    let new_version = ramdisk_version(&refreshed[0]);
    assert_eq!(ramdisk_version(&refreshed[1]), new_version);
    let mut windows = Vec::new();
    for (i, (name, s)) in names.iter().zip(&refreshed).enumerate() {
        assert_eq!(s.standby_since, pool[i].standby_since, "{name}: seat kept");
        assert_eq!(pxe_boots(name), boots_before[i] + 1, "{name}: one netboot");
        let inspecting = s
            .phases
            .iter()
            .rev()
            .find(|p| p.name == "Inspecting")
            .unwrap_or_else(|| panic!("{name}: {:?}", s.phases));
        windows.push((
            inspecting.started_at.0,
            inspecting.finished_at.clone().unwrap().0,
        ));
    }
    // One at a time: the refreshes' Inspecting phases do not overlap.
    windows.sort();
    assert!(windows[0].1 <= windows[1].0, "{windows:?}");

    // 1. Warm provisioning with kexec: no BMC power or boot change.
    let before: Vec<usize> = names
        .iter()
        .map(|n| bmc_events(lab.dir(), n).len())
        .collect();
    let good = image("os.raw.zst", &os_zst, "raw+zstd");
    for name in names {
        patch_spec(&api, name, json!({"image": good, "online": true})).await;
    }
    for (i, name) in names.iter().enumerate() {
        let s = wait_for(lab, &api, name, ServerState::Provisioned, 240).await;
        let events = bmc_events(lab.dir(), name);
        let changes = power_changes(&events[before[i]..]);
        assert!(changes.is_empty(), "{name}: {changes:?}");
        let got = phases(&s);
        for phase in ["StandbyToWrite", "Image", "Kexec"] {
            assert!(got.contains(&phase), "{name}: {got:?}");
        }
        for phase in ["PowerOnToDHCP", "DiskBootToCheckIn"] {
            assert!(!got.contains(&phase), "{name}: {got:?}");
        }
        let p = s.boot_progress.clone().unwrap();
        assert_eq!(p.check_in.unwrap().hostname, *name);
        // The installed OS's console line, after the agent's kexec line, with no firmware
        // between them.
        let serial = lab.dir().join(format!("{name}.serial"));
        let console = eventually(
            Duration::from_secs(30),
            &format!("{name}'s console to say it checked in"),
            || async {
                let text = String::from_utf8_lossy(&std::fs::read(&serial).unwrap()).into_owned();
                let after = text.rsplit("booting the installed OS with kexec").next()?;
                after
                    .contains("groundwork-os: checked in")
                    .then(|| after.to_string())
            },
        )
        .await;
        for banner in ["SeaBIOS", "iPXE", "BdsDxe"] {
            assert!(
                !console.contains(banner),
                "{name}: {banner} after the kexec"
            );
        }
        // The ESP is the image's, byte for byte (the agent rewrites only the GPT around it).
        let disk = &rig.disks[i];
        assert!(
            range(disk, MIB, 47 * MIB) == range(&os_raw, MIB, 47 * MIB),
            "{name}: the ESP on disk differs from the image's"
        );
    }

    // 2. Release → cleaned → back on standby, never powered off.
    let before: Vec<usize> = names
        .iter()
        .map(|n| bmc_events(lab.dir(), n).len())
        .collect();
    for name in names {
        patch_spec(&api, name, json!({"image": null})).await;
    }
    for (i, name) in names.iter().enumerate() {
        wait_for(lab, &api, name, ServerState::Deprovisioning, 60).await;
        let s = wait_for(lab, &api, name, ServerState::Standby, 300).await;
        assert!(s.node_address().is_none(), "{name}: address freed");
        assert!(
            range(&rig.disks[i], 0, MIB).iter().all(|b| *b == 0),
            "{name}: cleaned"
        );
        let events = bmc_events(lab.dir(), name);
        let last_on = events.iter().rposition(|e| e.contains("vm_started"));
        let last_off = events.iter().rposition(|e| e.contains("vm_killed"));
        assert!(last_on > last_off, "{name}: {:?}", &events[before[i]..]);
    }

    // 3. (UEFI) No boot entry for kexec → the BMC boots the disk; still Provisioned.
    let before = bmc_events(lab.dir(), "s2").len();
    patch_spec(
        &api,
        "s2",
        json!({"image": image("nokexec.raw", &nokexec_sha, "raw"), "online": true}),
    )
    .await;
    // 4. (BIOS) The standby agent goes silent: QEMU stopped.
    let pid: i32 = {
        let events = bmc_events(lab.dir(), "s1");
        let started = events
            .iter()
            .rev()
            .find(|e| e.contains("vm_started"))
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(started).unwrap();
        v["pid"].as_i64().unwrap() as i32
    };
    run(Command::new("kill").args(["-STOP", &pid.to_string()]));

    let s = wait_for(lab, &api, "s2", ServerState::Provisioned, 240).await;
    let got = phases(&s);
    assert!(got.contains(&"DiskBootToCheckIn"), "{got:?}");
    assert!(!got.contains(&"Kexec"), "{got:?}");
    let events = bmc_events(lab.dir(), "s2");
    assert!(
        events[before..]
            .iter()
            .any(|e| e.contains("\"bootdev\": \"disk\"")),
        "{:?}",
        &events[before..]
    );

    let s = wait_for(
        lab,
        &api,
        "s1",
        ServerState::Available,
        HEARTBEAT_TIMEOUT + 90,
    )
    .await;
    assert!(
        s.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("silent"),
        "{s:?}"
    );
    eventually(Duration::from_secs(30), "s1's BMC to kill it", || async {
        bmc_events(lab.dir(), "s1")
            .iter()
            .any(|e| e.contains("vm_killed") && e.contains(&pid.to_string()))
            .then_some(())
    })
    .await;
}
