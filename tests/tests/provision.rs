//! Provisioning end to end against real peers: two QEMU machines with virtual disks behind
//! IPMI BMC simulators netboot through the controller's DHCP/HTTP into the ramdisk, where the
//! Groundwork agent (gRPC) writes the test OS image (served by python's http.server through a
//! throttling proxy) and a NoCloud config drive; the controller then boots their disks through
//! the BMCs and the installed OS checks in with what it read from its config drive.
//! Then the faults: status wiped (adopted, disk untouched), cleaning, a bad checksum, a
//! missing image, an image larger than the disk, the agent killed mid-write and the
//! controller killed mid-provisioning.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crds::Server;
use crds::server::{ServerState, ServerStatus};
use e2e::netlab::{NetLab, run};
use e2e::{RunningController, admin_client, apply_doc, eventually, namespace};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const MACS: [&str; 2] = ["52:54:00:62:00:01", "52:54:00:62:00:02"];
const BOOT_ADDR: &str = "10.62.0.2";
const NODE_GATEWAY: &str = "10.72.0.1";
/// How long a silent ramdisk may stay silent before its attempt is retried.
const RAMDISK_TIMEOUT: &str = "40";

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    out.split_whitespace().next().unwrap().to_string()
}

/// The images the web server offers: the test OS (raw+zstd), and one larger than the disks.
struct Images {
    dir: PathBuf,
    os_zst: String,
    big_zst: String,
}

fn images(lab: &NetLab) -> Images {
    let dir = lab.dir().join("www");
    std::fs::create_dir_all(&dir).unwrap();
    let os = lab.dir().join("test-os.raw");
    run(Command::new(e2e::repo_root().join("hack/boot/test-os.sh")).arg(&os));
    std::fs::copy(format!("{}.zst", os.display()), dir.join("os.raw.zst")).unwrap();
    // 300 MiB: the test OS followed by zeros (the disks have 256 MiB).
    let big = lab.dir().join("big.raw");
    std::fs::copy(&os, &big).unwrap();
    run(Command::new("truncate").args(["-s", "300M"]).arg(&big));
    run(Command::new("zstd")
        .args(["-q", "-f", "-T0", "-o"])
        .arg(dir.join("big.raw.zst"))
        .arg(&big));
    Images {
        os_zst: sha256(&dir.join("os.raw.zst")),
        big_zst: sha256(&dir.join("big.raw.zst")),
        dir,
    }
}

fn image(file: &str, sha: &str) -> serde_json::Value {
    json!({"url": format!("http://{BOOT_ADDR}:8090/{file}"), "checksum": format!("sha256:{sha}"),
        "format": "raw+zstd"})
}

async fn site(client: &kube::Client, ns: &str, bmcs: &[u16; 2], img: &serde_json::Value) {
    for doc in [
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bmc"},
            "stringData": {"username": "admin", "password": "lab-password"}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "user-data"},
            "stringData": {"userData": "#cloud-config\nruncmd: [echo hello]\n"}}),
        json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack", "metadata": {"name": "r1"},
            "spec": {"location": {"site": "lab"}, "networks": {
                "provisioning": {"subnet": "10.62.0.0/24", "gateway": "10.62.0.1"},
                "node": {"subnet": "10.72.0.0/24", "gateway": NODE_GATEWAY, "dns": [NODE_GATEWAY]}}}}),
    ] {
        apply_doc(client, ns, doc).await.unwrap();
    }
    for (i, port) in bmcs.iter().enumerate() {
        apply_doc(
            client,
            ns,
            json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
                "metadata": {"name": format!("s{}", i + 1)},
                "spec": {"rackRef": {"name": "r1"}, "rackUnit": i + 1, "bootMACAddress": MACS[i],
                    "bootMode": "Legacy", "online": true, "image": img,
                    "userData": {"name": "user-data"},
                    "bmc": {"address": format!("ipmi://127.0.0.1:{port}"),
                            "credentialsSecretRef": {"name": "bmc"}}}}),
        )
        .await
        .unwrap();
    }
}

fn boot_flags(lab: &NetLab, boot_ns: &str) -> Vec<String> {
    let artifacts = lab.ramdisk();
    let key = lab.token_key();
    [
        "--boot-services",
        "--dhcp-interface",
        "br0",
        "--boot-netns",
        boot_ns,
        "--boot-artifacts",
        artifacts.to_str().unwrap(),
        "--boot-token-key-file",
        key.to_str().unwrap(),
        "--boot-http-addr",
        "0.0.0.0:8081",
        "--tftp-addr",
        "0.0.0.0:69",
        "--ramdisk-timeout-seconds",
        RAMDISK_TIMEOUT,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn status_of(api: &Api<Server>, name: &str) -> ServerStatus {
    api.get(name).await.unwrap().status.unwrap_or_default()
}

/// Waits for `state` (failing early, with the status, on an unexpected Error).
async fn wait_for(
    lab: &NetLab,
    api: &Api<Server>,
    name: &str,
    state: ServerState,
    secs: u64,
) -> ServerStatus {
    eventually(
        Duration::from_secs(secs),
        &format!("{name} {state:?}"),
        || async {
            let s = api.get(name).await.ok()?.status?;
            if s.state == Some(ServerState::Error) && state != ServerState::Error {
                lab.dump_logs();
                panic!("{name} went to Error: {:?}", s.last_error);
            }
            (s.state == Some(state)).then_some(s)
        },
    )
    .await
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
    e2e::netlab::require("qemu-system-x86_64");
    e2e::netlab::require("zstd");
    let client = admin_client().await;
    let ns = namespace(&client, "provision").await;
    let mut lab = NetLab::new();
    let boot_ns = lab.netns("boot");
    lab.bridge(&boot_ns, "br0", &format!("{BOOT_ADDR}/24"));
    // The node network's gateway sits on the same segment.
    run(Command::new("ip").args([
        "-n",
        &boot_ns,
        "addr",
        "add",
        &format!("{NODE_GATEWAY}/24"),
        "dev",
        "br0",
    ]));
    lab.router_adverts(&boot_ns, "br0", "fd62::");
    let imgs = images(&lab);
    // The image server: python's http.server, behind a throttling proxy on :8090.
    lab.spawn(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &boot_ns,
                "python3",
                "-m",
                "http.server",
                "8091",
            ])
            .args(["--bind", "127.0.0.1", "--directory"])
            .arg(&imgs.dir),
        "www.log",
    );
    let throttle = e2e::netlab::throttled_proxy(
        &boot_ns,
        format!("{BOOT_ADDR}:8090").parse().unwrap(),
        "127.0.0.1:8091".parse().unwrap(),
    )
    .await;
    let mut disks = Vec::new();
    let ports = [free_udp_port(), free_udp_port()];
    for (i, mac) in MACS.iter().enumerate() {
        let tap = format!("tap{i}");
        lab.tap(&boot_ns, "br0", &tap);
        let disk = lab.dir().join(format!("s{}.disk", i + 1));
        run(Command::new("truncate").args(["-s", "256M"]).arg(&disk));
        lab.vm_bmc_with_disk(
            &format!("s{}", i + 1),
            ports[i],
            &boot_ns,
            &tap,
            mac,
            Some(&disk),
        );
        disks.push(disk);
    }
    // A client on the provisioning segment that can take a server's provisioning address.
    let peer_ns = lab.netns("peer");
    lab.veth(
        &boot_ns,
        "pv0",
        Some("br0"),
        None,
        &peer_ns,
        "p0",
        None,
        Some("10.62.0.11/24"),
    );

    let good = image("os.raw.zst", &imgs.os_zst);
    site(&client, &ns, &ports, &good).await;
    let flags = boot_flags(&lab, &boot_ns);
    let mut controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    let api: Api<Server> = Api::namespaced(client.clone(), &ns);

    // 1. Both provision in parallel; the installed OS reports what its config drive said.
    for (i, name) in ["s1", "s2"].iter().enumerate() {
        let s = wait_for(&lab, &api, name, ServerState::Provisioned, 300).await;
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
        let serial = std::fs::read_to_string(lab.dir().join(format!("{name}.serial"))).unwrap();
        let installed = serial.rsplit("SeaBIOS").next().unwrap();
        assert!(
            installed.contains("groundwork-os: checked in"),
            "{installed}"
        );
        assert!(!installed.contains("iPXE"), "{installed}");
    }
    let logs = controller
        .health
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
    let s = wait_for(&lab, &api, "s1", ServerState::Provisioned, 240).await;
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
    let s = wait_for(&lab, &api, "s2", ServerState::Available, 240).await;
    assert!(
        node_address(&s).is_none() && s.provisioned_image.is_none(),
        "{s:?}"
    );
    eventually(
        Duration::from_secs(60),
        "s2 powered off by spec",
        || async {
            (status_of(&api, "s2").await.power_state == Some(crds::server::PowerState::Off))
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
        (image("missing.raw.zst", &imgs.os_zst), "ImageNotFound"),
        (image("big.raw.zst", &imgs.big_zst), "ImageTooLarge"),
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

    // 6. The agent killed mid-write (the VM dies): the attempt times out, a fresh one writes.
    throttle.store(2 << 20, Ordering::Relaxed);
    let before = status_of(&api, "s2").await.boot_attempt;
    set_image(&api, "s2", good.clone()).await;
    writing(&api, "s2", before).await;
    let pid = std::fs::read_to_string(lab.dir().join("s2.pid")).unwrap();
    run(Command::new("kill").args(["-9", pid.trim()]));
    throttle.store(0, Ordering::Relaxed);
    let s = wait_for(&lab, &api, "s2", ServerState::Provisioned, 400).await;
    assert_eq!(s.boot_attempt.as_ref().unwrap().try_number, 2, "{s:?}");
    assert_eq!(node_address(&s).as_deref(), Some("10.72.0.12"));

    // 7. The controller killed mid-provisioning: the new one resumes the same attempt.
    api.patch(
        "s1",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"image": null}})),
    )
    .await
    .unwrap();
    wait_for(&lab, &api, "s1", ServerState::Available, 240).await;
    throttle.store(2 << 20, Ordering::Relaxed);
    let before = status_of(&api, "s1").await.boot_attempt;
    set_image(&api, "s1", good.clone()).await;
    writing(&api, "s1", before).await;
    let attempt = status_of(&api, "s1").await.boot_attempt.unwrap();
    controller.stop().await;
    controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    throttle.store(0, Ordering::Relaxed);
    let s = wait_for(&lab, &api, "s1", ServerState::Provisioned, 300).await;
    let resumed = s.boot_attempt.clone().unwrap();
    assert_eq!((resumed.id, resumed.try_number), (attempt.id, 1), "{s:?}");
    assert_eq!(node_address(&s).as_deref(), Some("10.72.0.11"));
    controller.stop().await;
}
