//! Nodes benchmark (root; run through `hack/bench-nodes.sh`, never a timed test): a
//! MachineDeployment scaled 0 → N on the cluster rig (`e2e::cluster`) until N Nodes are Ready
//! and N replicas of the app Running, beside the baseline measured in the same run on the same
//! machine, networks and control plane: the same node OS booted straight from its kernel and
//! initrd (QEMU `-kernel`, no firmware, no netboot, no image write) with a hand-written kubeadm
//! JoinConfiguration on its config drive — no Groundwork, no Cluster API. Prints the phase
//! breakdown of both and the ratio (target ≤ 2×). `--nodes 1,2` chooses the runs.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crds::{Server, ServerState};
use e2e::cluster::{NS, Rig, app, cluster, nodes_ready, rig};
use e2e::netlab::run;
use e2e::{arg_list, eventually_every, resource_of};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::json;

/// Seconds since `t0` when `n` app Pods run.
async fn app_running(client: &Client, n: usize, t0: Instant) -> f64 {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually_every(
        Duration::from_millis(500),
        Duration::from_secs(300),
        "the app's Pods Running",
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=hello"))
                .await
                .unwrap();
            let running = list
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            (running >= n).then_some(())
        },
    )
    .await;
    t0.elapsed().as_secs_f64()
}

/// Groundwork: MachineDeployment 0 → `n`. Returns the total and the mean phase ends.
async fn groundwork(rig: &Rig, n: usize) -> (f64, Vec<(String, f64)>) {
    let mds: Api<DynamicObject> = Api::namespaced_with(
        rig.client.clone(),
        NS,
        &resource_of("cluster.x-k8s.io/v1beta2", "MachineDeployment"),
    );
    let t0 = Instant::now();
    mds.patch(
        "workers",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": n}})),
    )
    .await
    .unwrap();
    app(&rig.client, n).await;
    let (_, timeline) = nodes_ready(&rig.client, &rig.lab, n, t0).await;
    let app_at = app_running(&rig.client, n, t0).await;
    let mut phases: Vec<(String, f64)> = Vec::new();
    for steps in timeline.0.values() {
        for (what, t) in steps {
            let what = if what.starts_with("claimed") {
                "claimed".to_string()
            } else {
                what.clone()
            };
            match phases.iter_mut().find(|(w, _)| *w == what) {
                Some((_, max)) => *max = max.max(*t),
                None => phases.push((what, *t)),
            }
        }
    }
    phases.push(("app Running".into(), app_at));
    // Back to zero: the Machines go, the servers are cleaned and Available again.
    mds.patch(
        "workers",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 0}})),
    )
    .await
    .unwrap();
    app(&rig.client, 0).await;
    let servers: Api<Server> = Api::namespaced(rig.client.clone(), NS);
    eventually_every(
        Duration::from_secs(2),
        Duration::from_secs(600),
        "the servers back in the pool",
        || async {
            let list = servers.list(&ListParams::default()).await.unwrap();
            list.iter()
                .all(|s| {
                    s.spec.consumer_ref.is_none()
                        && s.status.as_ref().and_then(|st| st.state) == Some(ServerState::Available)
                })
                .then_some(())
        },
    )
    .await;
    (app_at, phases)
}

/// The kernel, initrd and command line on the image's first (EFI System) partition.
fn kernel_of(raw: &Path, dir: &Path) -> (PathBuf, PathBuf, String) {
    let table: serde_json::Value =
        serde_json::from_str(&run(Command::new("sfdisk").arg("--json").arg(raw))).unwrap();
    let start = table["partitiontable"]["partitions"][0]["start"]
        .as_u64()
        .unwrap()
        * 512;
    let fat = format!("{}@@{start}", raw.display());
    for f in ["vmlinuz", "initrd.img", "syslinux.cfg"] {
        run(Command::new("mcopy")
            .env("MTOOLS_SKIP_CHECK", "1")
            .args(["-o", "-i", &fat, &format!("::/{f}")])
            .arg(dir.join(f)));
    }
    let cfg = std::fs::read_to_string(dir.join("syslinux.cfg")).unwrap();
    let cmdline = cfg
        .lines()
        .find_map(|l| l.trim().strip_prefix("APPEND "))
        .unwrap()
        .to_string();
    (dir.join("vmlinuz"), dir.join("initrd.img"), cmdline)
}

/// A VM booted straight from the node OS's kernel (no firmware, no network boot).
struct Direct {
    pidfile: PathBuf,
    name: String,
}

impl Drop for Direct {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(&self.pidfile) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

/// Baseline: `n` VMs, each on rack r<i+1>'s node network, joined by a hand-written kubeadm
/// JoinConfiguration. Returns the total and the phase ends.
async fn baseline(rig: &Rig, n: usize) -> (f64, Vec<(String, f64)>) {
    let dir = rig.lab.dir().join("direct");
    std::fs::create_dir_all(&dir).unwrap();
    let raw = rig.lab.dir().join("node-os.raw");
    let (kernel, initrd, cmdline) = kernel_of(&raw, &dir);
    let join = run(Command::new("kubeadm")
        .args([
            "token",
            "create",
            "--ttl",
            "30m",
            "--print-join-command",
            "--kubeconfig",
        ])
        .arg(rig.cp.kubeconfig()));
    let words: Vec<&str> = join.split_whitespace().collect();
    let after = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .map(|i| words[i + 1].to_string())
            .unwrap()
    };
    let (endpoint, token, hash) = (
        words[2].to_string(),
        after("--token"),
        after("--discovery-token-ca-cert-hash"),
    );
    let t0 = Instant::now();
    let mut vms = Vec::new();
    for i in 0..n {
        let rack = i + 1;
        let name = format!("direct-{i}");
        let mac = format!("52:54:00:63:d{i}:01");
        let seed = dir.join(format!("{name}-seed"));
        std::fs::create_dir_all(&seed).unwrap();
        std::fs::write(
            seed.join("meta-data"),
            format!(
                "instance-id: {name}-{}\nlocal-hostname: {name}\n",
                std::process::id()
            ),
        )
        .unwrap();
        std::fs::write(
            seed.join("network-config"),
            format!(
                "version: 2\nethernets:\n  id0:\n    match:\n      macaddress: \"{mac}\"\n    addresses:\n      - 10.83.{rack}.50/24\n    routes:\n      - to: default\n        via: 10.83.{rack}.1\n"
            ),
        )
        .unwrap();
        std::fs::write(
            seed.join("user-data"),
            format!(
                "#cloud-config\nwrite_files:\n- path: /run/kubeadm/join.yaml\n  content: |\n    apiVersion: kubeadm.k8s.io/v1beta4\n    kind: JoinConfiguration\n    discovery:\n      bootstrapToken:\n        apiServerEndpoint: {endpoint}\n        token: {token}\n        caCertHashes: [\"{hash}\"]\n    nodeRegistration:\n      name: {name}\n      taints: []\n      kubeletExtraArgs:\n      - name: node-labels\n        value: topology.kubernetes.io/zone=r{rack}\nruncmd:\n- kubeadm join --config /run/kubeadm/join.yaml\n"
            ),
        )
        .unwrap();
        let cidata = dir.join(format!("{name}-cidata.img"));
        run(Command::new("truncate").args(["-s", "8M"]).arg(&cidata));
        run(Command::new("mkfs.vfat")
            .args(["-n", "CIDATA"])
            .arg(&cidata));
        for f in ["meta-data", "network-config", "user-data"] {
            run(Command::new("mcopy")
                .env("MTOOLS_SKIP_CHECK", "1")
                .arg("-i")
                .arg(&cidata)
                .arg(seed.join(f))
                .arg("::/"));
        }
        let disk = dir.join(format!("{name}.qcow2"));
        run(Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&raw)
            .arg(&disk));
        let tap = format!("tapd{n}-{i}");
        rig.lab.tap(&rig.site_ns, &format!("br{rack}"), &tap);
        let pidfile = dir.join(format!("{name}.pid"));
        run(Command::new("ip")
            .args([
                "netns",
                "exec",
                &rig.site_ns,
                "qemu-system-x86_64",
                "-name",
                &name,
            ])
            .args([
                "-accel",
                "tcg",
                "-m",
                "1536",
                "-nodefaults",
                "-display",
                "none",
            ])
            .args([
                "-vga",
                "none",
                "-monitor",
                "none",
                "-no-reboot",
                "-daemonize",
            ])
            .arg("-serial")
            .arg(format!(
                "file:{}",
                dir.join(format!("{name}.serial")).display()
            ))
            .arg("-kernel")
            .arg(&kernel)
            .arg("-initrd")
            .arg(&initrd)
            .args(["-append", &format!("{cmdline} console=ttyS0")])
            .args([
                "-netdev",
                &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
            ])
            .args([
                "-device",
                &format!("virtio-net-pci,netdev=n0,mac={mac},romfile="),
            ])
            .arg("-drive")
            .arg(format!("if=virtio,format=qcow2,file={}", disk.display()))
            .arg("-drive")
            .arg(format!("if=virtio,format=raw,file={}", cidata.display()))
            .arg("-pidfile")
            .arg(&pidfile));
        vms.push(Direct { pidfile, name });
    }
    let nodes: Api<Node> = Api::all(rig.client.clone());
    let mut registered = 0.0f64;
    let mut ready_at = 0.0f64;
    for vm in &vms {
        let nodes = &nodes;
        eventually_every(
            Duration::from_millis(500),
            Duration::from_secs(600),
            &format!("Node {} registered", vm.name),
            || async move { nodes.get_opt(&vm.name).await.unwrap().map(|_| ()) },
        )
        .await;
        registered = registered.max(t0.elapsed().as_secs_f64());
        eventually_every(
            Duration::from_millis(500),
            Duration::from_secs(600),
            &format!("Node {} Ready", vm.name),
            || async move {
                let node = nodes.get_opt(&vm.name).await.unwrap()?;
                node.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                    .then_some(())
            },
        )
        .await;
        ready_at = ready_at.max(t0.elapsed().as_secs_f64());
    }
    app(&rig.client, n).await;
    let app_at = app_running(&rig.client, n, t0).await;
    app(&rig.client, 0).await;
    for vm in vms {
        let name = vm.name.clone();
        drop(vm);
        let _ = nodes.delete(&name, &DeleteParams::default()).await;
    }
    (
        app_at,
        vec![
            ("Node registered".into(), registered),
            ("Node Ready".into(), ready_at),
            ("app Running".into(), app_at),
        ],
    )
}

fn show(phases: &[(String, f64)]) -> String {
    phases
        .iter()
        .map(|(w, t)| format!("{w} {t:.1} s"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rig = rig().await;
    cluster(&rig.client, &rig.image, &rig.version, 0).await;
    for n in arg_list("--nodes", "1,2") {
        let n: usize = n.parse().unwrap();
        assert!(
            n <= rig.disks.len(),
            "the rig has {} servers",
            rig.disks.len()
        );
        let (gw, gw_phases) = groundwork(&rig, n).await;
        let (base, base_phases) = baseline(&rig, n).await;
        println!(
            "nodes {n}: Groundwork (MachineDeployment 0 -> {n}) {gw:.1} s [{}]",
            show(&gw_phases)
        );
        println!(
            "nodes {n}: baseline (kernel + initrd straight, hand-written join) {base:.1} s [{}]",
            show(&base_phases)
        );
        println!(
            "nodes {n}: Groundwork / baseline = {:.2}x (target <= 2.0x)",
            gw / base
        );
    }
}
