//! The provisioning rig shared by the provisioning test and benchmark: a provisioning segment
//! (bridge in a netns, the node network's gateway on the same segment, IPv6 router adverts),
//! the test OS image served by python's http.server behind a throttling proxy, and QEMU
//! servers with 256 MiB disks behind IPMI BMC simulators.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use crds::Server;
use crds::server::{ServerState, ServerStatus};
use kube::api::Api;
use serde_json::json;

use crate::netlab::{NetLab, run};
use crate::{apply_doc, eventually};

/// The boot services' address on the provisioning segment (10.62.0.0/24).
pub const BOOT_ADDR: &str = "10.62.0.2";
/// The node network's gateway (10.72.0.0/24), on the same segment.
pub const NODE_GATEWAY: &str = "10.72.0.1";

/// Boot MAC of server `s<i+1>`.
pub fn mac(i: usize) -> String {
    format!("52:54:00:62:00:{:02x}", i + 1)
}

/// SHA-256 of a file, hex.
pub fn sha256(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    out.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free UDP port: {e}"))
}

/// Everything the rig started (removed with `lab`).
pub struct Rig {
    /// Namespaces, processes, scratch directory.
    pub lab: NetLab,
    /// The provisioning segment's namespace (bridge `br0`).
    pub boot_ns: String,
    /// What the image server serves: `os.raw` and `os.raw.zst` (the test OS).
    pub www: PathBuf,
    /// Bytes per second the image server may send (0: unlimited).
    pub throttle: Arc<AtomicU64>,
    /// Server `s<i+1>`'s disk file.
    pub disks: Vec<PathBuf>,
    /// Server `s<i+1>`'s BMC port (IPMI on the lab's `bmc_address`).
    pub ports: Vec<u16>,
    /// This host on the segment (see [`rig_with_host`]).
    pub host: Option<crate::cluster::HostLink>,
}

/// Builds the rig for `servers` QEMU servers.
pub async fn rig(servers: usize) -> Rig {
    rig_with_host(servers, None).await
}

/// Like [`rig`], with this host on the segment as `host_cidr` (an address of the node network,
/// 10.72.0.0/24), where the BMCs listen instead of 127.0.0.1: for controllers running in other
/// namespaces on the segment (Pods of lab nodes).
pub async fn rig_with_host(servers: usize, host_cidr: Option<&str>) -> Rig {
    crate::netlab::require("qemu-system-x86_64");
    crate::netlab::require("zstd");
    let mut lab = NetLab::new();
    let boot_ns = lab.netns("boot");
    lab.bridge(&boot_ns, "br0", &format!("{BOOT_ADDR}/24"));
    let gateway = format!("{NODE_GATEWAY}/24");
    run(Command::new("ip").args(["-n", &boot_ns, "addr", "add", &gateway, "dev", "br0"]));
    let host = host_cidr.map(|cidr| {
        lab.bmc_address = cidr.split('/').next().unwrap_or(cidr).to_string();
        crate::cluster::host_port(&lab, &boot_ns, "br0", cidr)
    });
    lab.router_adverts(&boot_ns, "br0", "fd62::");
    let www = lab.dir().join("www");
    std::fs::create_dir_all(&www).unwrap_or_else(|e| panic!("{}: {e}", www.display()));
    let os = lab.dir().join("test-os.raw");
    run(Command::new(crate::repo_root().join("hack/boot/test-os.sh")).arg(&os));
    for (from, to) in [
        (os.clone(), "os.raw"),
        (os.with_extension("raw.zst"), "os.raw.zst"),
    ] {
        std::fs::copy(&from, www.join(to)).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
    }
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
            .arg(&www),
        "www.log",
    );
    let throttle = crate::netlab::throttled_proxy(
        &boot_ns,
        std::net::SocketAddr::from(([10, 62, 0, 2], 8090)),
        std::net::SocketAddr::from(([127, 0, 0, 1], 8091)),
    )
    .await;
    let (mut disks, mut ports) = (Vec::new(), Vec::new());
    for i in 0..servers {
        let tap = format!("tap{i}");
        lab.tap(&boot_ns, "br0", &tap);
        let disk = lab.dir().join(format!("s{}.disk", i + 1));
        run(Command::new("truncate").args(["-s", "256M"]).arg(&disk));
        let port = free_udp_port();
        let name = format!("s{}", i + 1);
        lab.vm_bmc_with_disk(&name, port, &boot_ns, &tap, &mac(i), Some(&disk));
        disks.push(disk);
        ports.push(port);
    }
    Rig {
        lab,
        boot_ns,
        www,
        throttle,
        disks,
        ports,
        host,
    }
}

/// `spec.image` for a file the rig's image server offers (`format`: `raw`, `raw+zstd`, …).
pub fn image(file: &str, sha: &str, format: &str) -> serde_json::Value {
    json!({"url": format!("http://{BOOT_ADDR}:8090/{file}"), "checksum": format!("sha256:{sha}"),
        "format": format})
}

/// Secrets, Rack `r1` (provisioning and node networks) and one Legacy-boot Server per BMC
/// port, online, with `img`.
pub async fn site(client: &kube::Client, ns: &str, ports: &[u16], img: &serde_json::Value) {
    site_with(
        client,
        ns,
        ports,
        |_| json!({"bootMode": "Legacy", "online": true, "image": img}),
    )
    .await;
}

/// Secrets, Rack `r1` and one Server per BMC port (`s<i+1>`: rack unit, boot MAC, user data,
/// BMC), its spec completed with `spec(i)`.
pub async fn site_with(
    client: &kube::Client,
    ns: &str,
    ports: &[u16],
    spec: impl Fn(usize) -> serde_json::Value,
) {
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
        apply_doc(client, ns, doc)
            .await
            .unwrap_or_else(|e| panic!("apply: {e}"));
    }
    for (i, port) in ports.iter().enumerate() {
        let mut server = json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": format!("s{}", i + 1)},
            "spec": {"rackRef": {"name": "r1"}, "rackUnit": i + 1, "bootMACAddress": mac(i),
                "userData": {"name": "user-data"},
                "bmc": {"address": format!("ipmi://127.0.0.1:{port}"),
                        "credentialsSecretRef": {"name": "bmc"}}}});
        if let (Some(base), serde_json::Value::Object(extra)) =
            (server["spec"].as_object_mut(), spec(i))
        {
            base.extend(extra);
        }
        apply_doc(client, ns, server)
            .await
            .unwrap_or_else(|e| panic!("apply: {e}"));
    }
}

/// Controller flags for the rig's boot services (`timeout`: `--ramdisk-timeout-seconds`).
pub fn boot_flags(rig: &Rig, timeout: u64) -> Vec<String> {
    let artifacts = rig.lab.ramdisk();
    let key = rig.lab.token_key();
    let mut flags: Vec<String> = [
        "--boot-services",
        "--dhcp-interface",
        "br0",
        "--boot-netns",
        &rig.boot_ns,
        "--boot-http-addr",
        "0.0.0.0:8081",
        "--tftp-addr",
        "0.0.0.0:69",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    flags.push("--boot-artifacts".into());
    flags.push(artifacts.display().to_string());
    flags.push("--boot-token-key-file".into());
    flags.push(key.display().to_string());
    flags.push("--ramdisk-timeout-seconds".into());
    flags.push(timeout.to_string());
    flags
}

/// Waits for `state`, failing early (with the lab's logs) on an unexpected Error.
pub async fn wait_for(
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

/// A warm pool: Rack `r1` and one Server per rig machine with `standby: Standby`, off, no
/// image, boot mode `modes[i]` (`Legacy` or `UEFI`), inspected (`groundwork.dev/inspect`) and
/// waited for until all are on `Standby`.
pub async fn standby_pool(
    client: &kube::Client,
    ns: &str,
    rig: &Rig,
    modes: &[&str],
) -> Vec<ServerStatus> {
    site_with(
        client,
        ns,
        &rig.ports,
        |i| json!({"bootMode": modes[i % modes.len()], "online": false, "standby": "Standby"}),
    )
    .await;
    let api: Api<Server> = Api::namespaced(client.clone(), ns);
    let inspect = json!({"metadata": {"annotations": {crds::annotations::INSPECT: "warm-pool"}}});
    for i in 0..rig.ports.len() {
        api.patch(
            &format!("s{}", i + 1),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&inspect),
        )
        .await
        .unwrap_or_else(|e| panic!("inspect s{}: {e}", i + 1));
    }
    let mut pool = Vec::new();
    for i in 0..rig.ports.len() {
        let name = format!("s{}", i + 1);
        pool.push(wait_for(&rig.lab, &api, &name, ServerState::Standby, 300).await);
    }
    pool
}
