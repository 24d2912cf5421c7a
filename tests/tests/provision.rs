//! Provisioning end to end against real peers: two QEMU machines with virtual disks behind
//! IPMI BMC simulators netboot through the controller's DHCP/HTTP into the ramdisk, where the
//! Groundwork agent (gRPC) writes the test OS image (served by python's http.server through a
//! throttling proxy) and a NoCloud config drive; the controller then boots their disks through
//! the BMCs and the installed OS checks in with what it read from its config drive.
//! Then the faults: status wiped (adopted, disk untouched), cleaning, a bad checksum, a
//! missing image, an image larger than the disk, the agent killed mid-write and the
//! controller process SIGKILLed during cleaning, the ramdisk boot and the image write.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crds::Server;
use crds::server::{ServerState, ServerStatus};
use e2e::netlab::{NetLab, run};
use e2e::process::ControllerProcess;
use e2e::provisioning::{BOOT_ADDR, Rig, boot_flags, image, rig, sha256, site, wait_for};
use e2e::{RunningController, admin_client, eventually, namespace};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// How long a silent ramdisk may stay silent before its attempt is retried.
const RAMDISK_TIMEOUT: u64 = 40;
/// The controller processes' Lease: a SIGKILLed leader's is taken over after this.
const LEASE_SECONDS: u64 = 5;

fn big_image(rig: &Rig) -> String {
    // 300 MiB: the test OS followed by zeros (the disks have 256 MiB).
    let big = rig.lab.dir().join("big.raw");
    std::fs::copy(rig.www.join("os.raw"), &big).unwrap();
    run(Command::new("truncate").args(["-s", "300M"]).arg(&big));
    let zst = rig.www.join("big.raw.zst");
    run(Command::new("zstd")
        .args(["-q", "-f", "-T0", "-o"])
        .arg(&zst)
        .arg(&big));
    sha256(&zst)
}

async fn status_of(api: &Api<Server>, name: &str) -> ServerStatus {
    api.get(name).await.unwrap().status.unwrap_or_default()
}

async fn set_image(api: &Api<Server>, name: &str, img: serde_json::Value) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"image": img}})),
    )
    .await
    .unwrap();
}

/// Waits until the agent of a new attempt (not `before`) reports written bytes.
async fn writing(api: &Api<Server>, name: &str, before: Option<crds::server::BootAttempt>) {
    eventually(
        Duration::from_secs(240),
        &format!("{name} writing"),
        || async {
            let s = status_of(api, name).await;
            let attempt = s.boot_attempt?;
            let p = s.boot_progress?;
            let new = before.as_ref().is_none_or(|b| b.id != attempt.id);
            (new && p.attempt == attempt.id && p.progress?.bytes_done > 0).then_some(())
        },
    )
    .await;
}

/// Waits for a moment of a new attempt (not `before`) of `name`: returns the attempt once
/// `reached(status, its boot progress)` holds.
async fn moment(
    api: &Api<Server>,
    name: &str,
    what: &str,
    before: Option<crds::server::BootAttempt>,
    reached: impl Fn(&ServerStatus, &crds::server::BootProgress) -> bool,
) -> crds::server::BootAttempt {
    eventually(
        Duration::from_secs(240),
        &format!("{name} {what}"),
        || async {
            let s = status_of(api, name).await;
            let attempt = s.boot_attempt.clone()?;
            let p = s.boot_progress.as_ref()?;
            let new = before.as_ref().is_none_or(|b| b.id != attempt.id);
            (new && p.attempt == attempt.id && reached(&s, p)).then_some(attempt)
        },
    )
    .await
}

fn node_address(s: &ServerStatus) -> Option<String> {
    s.addresses
        .iter()
        .find(|a| a.network == "node")
        .map(|a| a.address.clone())
}

/// The first MiB of a disk file is all zeros: nothing there a firmware could boot.
fn unbootable(disk: &Path) -> bool {
    let bytes = std::fs::read(disk).unwrap();
    bytes[..1 << 20].iter().all(|b| *b == 0)
}

fn metadata_as(ns: &str, url: &str) -> (String, String) {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-sS",
            "--max-time",
            "5",
            "-w",
            "\n%{http_code}",
            url,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_string(), body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rack_provisions_itself_and_survives_faults() {
    let client = admin_client().await;
    let ns = namespace(&client, "provision").await;
    let rig = rig(2).await;
    let (lab, boot_ns, disks, throttle) = (&rig.lab, &rig.boot_ns, &rig.disks, &rig.throttle);
    let os_zst = sha256(&rig.www.join("os.raw.zst"));
    let big_zst = big_image(&rig);
    // A client on the provisioning segment that can take a server's provisioning address.
    let mut peer_lab = NetLab::new();
    let peer_ns = peer_lab.netns("peer");
    peer_lab.veth(
        boot_ns,
        "pv0",
        Some("br0"),
        None,
        &peer_ns,
        "p0",
        None,
        Some("10.62.0.11/24"),
    );

    let good = image("os.raw.zst", &os_zst, "raw+zstd");
    site(&client, &ns, &rig.ports, &good).await;
    let flags = boot_flags(&rig, RAMDISK_TIMEOUT);
    let controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    let api: Api<Server> = Api::namespaced(client.clone(), &ns);

    // 1. Both provision in parallel; the installed OS reports what its config drive said.
    for (i, name) in ["s1", "s2"].iter().enumerate() {
        let s = wait_for(lab, &api, name, ServerState::Provisioned, 300).await;
        let want = format!("10.72.0.{}", 11 + i);
        assert_eq!(node_address(&s).as_deref(), Some(want.as_str()));
        let p = s.boot_progress.clone().unwrap();
        let checkin = p.check_in.clone().unwrap();
        assert_eq!(checkin.hostname, *name);
        assert_eq!(checkin.addresses, vec![format!("{want}/24")]);
        assert_eq!(
            p.result.as_ref().unwrap().device.as_deref(),
            Some("/dev/vda")
        );
        assert!(!s.provisioned_image.as_ref().unwrap().adopted);
        // The inventory came from the agent: the VM's disk, NIC and DMI tables (SeaBIOS).
        let hw = s.hardware.clone().unwrap();
        assert_eq!(
            hw.disks[0].serial_number.as_deref(),
            Some(format!("gw-{name}").as_str())
        );
        assert_eq!(hw.dmi.unwrap().system_manufacturer.as_deref(), Some("QEMU"));
        let phases: Vec<&str> = s.phases.iter().map(|p| p.name.as_str()).collect();
        for phase in [
            "Provisioning",
            "PowerOnToDHCP",
            "RamdiskBoot",
            "Image",
            "DiskBootToCheckIn",
        ] {
            assert!(phases.contains(&phase), "{name}: {phases:?}");
        }
        // The last power-on booted the disk only (no network boot, no -kernel).
        let bmc_log = std::fs::read_to_string(lab.dir().join(format!("{name}-bmc.log"))).unwrap();
        let last_start = bmc_log
            .lines()
            .rev()
            .find(|l| l.contains("vm_started"))
            .unwrap();
        assert!(last_start.contains("\"bootdev\": \"disk\""), "{last_start}");
        // The installed OS prints its line once its check-in request returned, which can be
        // after the controller recorded the check-in.
        let serial_log = lab.dir().join(format!("{name}.serial"));
        let installed = eventually(
            Duration::from_secs(30),
            &format!("{name}'s console to say it checked in"),
            || async {
                let serial = std::fs::read_to_string(&serial_log).unwrap();
                let installed = serial.rsplit("SeaBIOS").next().unwrap().to_string();
                installed
                    .contains("groundwork-os: checked in")
                    .then_some(installed)
            },
        )
        .await;
        assert!(!installed.contains("iPXE"), "{installed}");
    }
    let logs = controller
        .app
        .logs
        .tail(&format!("{ns}/s1"), 1000)
        .join("\n");
    assert!(
        logs.contains("image written and verified"),
        "agent logs: {logs}"
    );

    // 2. The metadata service answers a server by its address, and nobody else.
    let (code, meta) = metadata_as(
        &peer_ns,
        &format!("http://{BOOT_ADDR}:8081/metadata/meta-data"),
    );
    assert_eq!(code, "200");
    assert!(meta.contains("local-hostname: s1"), "{meta}");
    let (code, user) = metadata_as(
        &peer_ns,
        &format!("http://{BOOT_ADDR}:8081/metadata/user-data"),
    );
    assert_eq!(
        (code.as_str(), user.as_str()),
        ("200", "#cloud-config\nruncmd: [echo hello]\n")
    );
    run(Command::new("ip").args(["-n", &peer_ns, "addr", "add", "10.62.0.99/24", "dev", "p0"]));
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &peer_ns,
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--interface",
            "10.62.0.99",
            &format!("http://{BOOT_ADDR}:8081/metadata/meta-data"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
    // Give s1's provisioning address back before it netboots again.
    run(Command::new("ip").args(["-n", &peer_ns, "addr", "flush", "dev", "p0"]));

    // 3. Status wiped (a management cluster rebuilt from Git): adopted, the disk untouched.
    let before = sha256(&disks[0]);
    let s1_uid = api.get("s1").await.unwrap().metadata.uid.unwrap();
    api.patch_status(
        "s1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": null})),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(30), "s1 status rebuilt", || async {
        let s = status_of(&api, "s1").await;
        (s.state != Some(ServerState::Provisioned)).then_some(())
    })
    .await;
    let s = wait_for(lab, &api, "s1", ServerState::Provisioned, 240).await;
    assert!(s.provisioned_image.as_ref().unwrap().adopted, "{s:?}");
    assert_eq!(node_address(&s).as_deref(), Some("10.72.0.11"));
    assert_eq!(
        sha256(&disks[0]),
        before,
        "adoption must not write the disk"
    );
    assert_eq!(api.get("s1").await.unwrap().metadata.uid.unwrap(), s1_uid);

    // 4. Image removed: cleaned (partition table gone), address released.
    api.patch(
        "s2",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"image": null}})),
    )
    .await
    .unwrap();
    let s = wait_for(lab, &api, "s2", ServerState::Available, 240).await;
    assert!(
        node_address(&s).is_none() && s.provisioned_image.is_none(),
        "{s:?}"
    );
    // The agent powered the machine off after cleaning (no BMC command of ours): the
    // controller sees it within seconds, not at the next resync, and spec.online (true) puts
    // the power back on through the BMC.
    let bmc_log = lab.dir().join("s2-bmc.log");
    // A power-on through the BMC after the VM of the cleaning ramdisk (netbooted) started.
    let powered_on_after_cleaning = || {
        let log = std::fs::read_to_string(&bmc_log).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        let ramdisk = lines
            .iter()
            .rposition(|l| l.contains("vm_started") && l.contains("\"bootdev\": \"pxe\""))
            .unwrap();
        lines[ramdisk..]
            .iter()
            .any(|l| l.contains("\"event\": \"power_on\""))
    };
    eventually(
        Duration::from_secs(30),
        "s2's power-off seen and spec.online enforced again",
        || async {
            let s = status_of(&api, "s2").await;
            let matches = s
                .conditions
                .iter()
                .any(|c| c.type_ == "PowerMatchesSpec" && c.status == "True");
            (powered_on_after_cleaning()
                && s.power_state == Some(crds::server::PowerState::On)
                && matches)
                .then_some(())
        },
    )
    .await;
    assert!(unbootable(&disks[1]), "cleaning left a partition table");

    // 5. Failures, each with its reason; none leaves a bootable disk.
    let mut bad = good.clone();
    bad["checksum"] = json!(format!("sha256:{}", "0".repeat(64)));
    for (img, reason) in [
        (bad, "ChecksumMismatch"),
        (
            image("missing.raw.zst", &os_zst, "raw+zstd"),
            "ImageNotFound",
        ),
        (image("big.raw.zst", &big_zst, "raw+zstd"), "ImageTooLarge"),
    ] {
        set_image(&api, "s2", img).await;
        let s = eventually(
            Duration::from_secs(240),
            &format!("s2 Error {reason}"),
            || async {
                let s = api.get("s2").await.ok()?;
                let fresh = s.status.as_ref()?.observed_generation == s.metadata.generation;
                let st = s.status?;
                (fresh
                    && st.state == Some(ServerState::Error)
                    && st.last_error_reason.as_deref() == Some(reason))
                .then_some(st)
            },
        )
        .await;
        let stalled = s.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
        assert_eq!(stalled.reason, reason);
        assert!(unbootable(&disks[1]), "{reason} left a bootable disk");
    }

    let metrics = controller.metrics.registry_text();
    for line in [
        "groundwork_provisioning_phase_seconds_count{phase=\"Image\"} 3",
        "groundwork_provisioning_phase_seconds_count{phase=\"DiskBootToCheckIn\"}",
        "groundwork_provisioning_failures_total{reason=\"ChecksumMismatch\"} 1",
        "groundwork_provisioning_failures_total{reason=\"ImageTooLarge\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }

    // 6. The agent killed mid-write (the VM dies): the attempt times out, a fresh one writes.
    throttle.store(2 << 20, Ordering::Relaxed);
    let before = status_of(&api, "s2").await.boot_attempt;
    set_image(&api, "s2", good.clone()).await;
    writing(&api, "s2", before).await;
    let pid = std::fs::read_to_string(lab.dir().join("s2.pid")).unwrap();
    run(Command::new("kill").args(["-9", pid.trim()]));
    throttle.store(0, Ordering::Relaxed);
    let s = wait_for(lab, &api, "s2", ServerState::Provisioned, 400).await;
    assert_eq!(s.boot_attempt.as_ref().unwrap().try_number, 2, "{s:?}");
    assert_eq!(node_address(&s).as_deref(), Some("10.72.0.12"));

    // 7. The controller SIGKILLed (a process: no graceful stop, its Lease left held) at three
    // moments: during cleaning, once the ramdisk was fetched, and while the agent writes. Each
    // time the next process resumes the same attempt: no retry, nothing written twice.
    controller.stop().await;
    let log = lab.dir().join("controller-process.log");
    let start = || ControllerProcess::start(&ns, &flags, LEASE_SECONDS, &log);
    let mut process = start().await;
    let before = status_of(&api, "s1").await.boot_attempt;
    api.patch(
        "s1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"image": null}})),
    )
    .await
    .unwrap();
    // Once its ramdisk has called back: killed earlier, the machine's network boot meets a
    // restarting boot service, which the iPXE script rides out by retrying its fetch.
    let clean = moment(&api, "s1", "cleaning", before, |_, p| {
        p.called_back_at.is_some()
    })
    .await;
    process.kill();
    process = start().await;
    let s = wait_for(lab, &api, "s1", ServerState::Available, 240).await;
    assert_eq!(
        s.boot_attempt.as_ref().map(|a| (&a.id, a.try_number)),
        Some((&clean.id, 1)),
        "{s:?}"
    );
    assert!(unbootable(&disks[0]), "cleaning left a partition table");

    // The initrd missing for a moment (a boot service restarting, a file being replaced): the
    // iPXE script retries its fetch instead of falling through to the disk.
    let initrd = lab.dir().join("artifacts").join(boot::ipxe::INITRD);
    let aside = initrd.with_extension("aside");
    std::fs::rename(&initrd, &aside).unwrap();
    let serial_log = lab.dir().join("s1.serial");
    let serial_len = std::fs::metadata(&serial_log).unwrap().len() as usize;
    throttle.store(2 << 20, Ordering::Relaxed);
    let before = status_of(&api, "s1").await.boot_attempt;
    set_image(&api, "s1", good.clone()).await;
    eventually(
        Duration::from_secs(120),
        "s1's iPXE to retry the missing initrd",
        || async {
            let serial = std::fs::read(&serial_log).unwrap();
            String::from_utf8_lossy(&serial[serial_len.min(serial.len())..])
                .contains("Groundwork: fetching the ramdisk failed")
                .then_some(())
        },
    )
    .await;
    std::fs::rename(&aside, &initrd).unwrap();
    let attempt = moment(&api, "s1", "ramdisk fetched", before.clone(), |_, p| {
        p.initrd_at.is_some()
    })
    .await;
    process.kill();
    process = start().await;
    writing(&api, "s1", before).await;
    process.kill();
    process = start().await;
    throttle.store(0, Ordering::Relaxed);
    let s = wait_for(lab, &api, "s1", ServerState::Provisioned, 300).await;
    let resumed = s.boot_attempt.clone().unwrap();
    assert_eq!((resumed.id, resumed.try_number), (attempt.id, 1), "{s:?}");
    assert_eq!(node_address(&s).as_deref(), Some("10.72.0.11"));
    process.kill();
}
