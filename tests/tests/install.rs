//! Groundwork installed the way platform teams install it: `helm install` of the chart with the
//! image built here (hack/image/build.sh, imported into containerd: no registry), onto two nodes
//! of a real cluster (hack/lab-node.sh: Debian containerd + runc, kubelet and kube-proxy from Go
//! modules, each node in a network namespace on the rack's provisioning segment), then operated:
//!
//! 1. both controller Pods Ready (their probes pass) on different nodes, one holding the Lease;
//! 2. a QEMU server behind an IPMI BMC netboots through the Pods' DHCP/TFTP/HTTP (host network,
//!    NET_BIND_SERVICE + NET_RAW only) and is being provisioned when the leader Pod is deleted:
//!    the standby leads within the lease time and the provisioning completes;
//! 3. the CRDs upgraded the documented way (`kubectl apply --server-side`), `helm upgrade` to
//!    changed values rolls both Pods, no reconcile error is logged, the server stays Provisioned;
//! 4. `helm uninstall` leaves only the CRDs and what the user created.
//!
//! Network (namespace `<lab>-boot`, bridge br0): provisioning 10.62.0.0/24 (image server
//! 10.62.0.2), node network 10.72.0.0/24; this host 10.72.0.254 on the bridge (the API server and
//! the BMC listen there); node infra-<i> 10.62.0.<2+i> + 10.72.0.24<i> on its interface `prov`
//! (outside the addresses the site hands out: provisioning .11 + rack unit, node network from .2).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crds::Server;
use crds::server::ServerState;
use e2e::cluster::{ControlPlane, LabNode, kubectl};
use e2e::netlab::{require, run};
use e2e::provisioning::{self, Rig};
use e2e::{client_for, eventually, repo_root};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;

const HOST: &str = "10.72.0.254";
const RELEASE: &str = "gw";
const SYSTEM: &str = "groundwork-system";
const SITE: &str = "site";
const LEASE_SECONDS: u64 = 10;

/// Node `infra-<i>` in a new namespace on the rig's segment with `10.62.0.<2+i>`
/// (provisioning) and `10.72.0.24<i>` (its InternalIP), the image archive imported.
fn lab_node(rig: &mut Rig, cp: &ControlPlane, i: u8, archive: &Path) -> LabNode {
    let ns = rig.lab.netns(&format!("n{i}"));
    let boot_ns = rig.boot_ns.clone();
    let prov = format!("10.62.0.{}/24", 2 + i);
    rig.lab.veth(
        &boot_ns,
        &format!("n{i}"),
        Some("br0"),
        None,
        &ns,
        "prov",
        None,
        Some(&prov),
    );
    let address = format!("10.72.0.24{i}");
    run(Command::new("ip").args([
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{address}/24"),
        "dev",
        "prov",
    ]));
    run(Command::new("ip").args([
        "-n",
        &ns,
        "route",
        "add",
        "default",
        "via",
        provisioning::NODE_GATEWAY,
    ]));
    LabNode::up(
        rig.lab.dir().join(format!("node-{i}")),
        cp,
        &format!("infra-{i}"),
        &ns,
        &address,
        &[
            "--label",
            "groundwork.dev/infra=true",
            "--taint",
            "groundwork.dev/infra=true:NoSchedule",
            "--image",
            &archive.display().to_string(),
        ],
    )
}

fn helm(cp: &ControlPlane, args: &[&str]) -> String {
    run(Command::new("helm")
        .arg("--kubeconfig")
        .arg(cp.kubeconfig())
        .args(args))
}

/// Every object the API server lists, as `kind.group/name` (namespaced: `ns/kind.group/name`).
fn all_objects(cp: &ControlPlane) -> BTreeSet<String> {
    let kinds = kubectl(cp, &["api-resources", "--verbs=list", "-o", "name"]);
    let kinds: Vec<&str> = kinds.lines().collect();
    let listed = kubectl(
        cp,
        &[
            "get",
            &kinds.join(","),
            "-A",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.kind}/{.metadata.name}{\"\\n\"}{end}",
        ],
    );
    listed.lines().map(str::to_string).collect()
}

/// What is left of the install: anything but the CRDs' own API registrations, the user's site,
/// the nodes' and the cluster's own objects (those existed before, or are the cluster's), Events.
fn left_by(before: &BTreeSet<String>, after: &BTreeSet<String>) -> Vec<String> {
    after
        .difference(before)
        .filter(|o| {
            !o.starts_with(&format!("{SITE}/"))
                && !o.starts_with(&format!("/Namespace/{SITE}"))
                && !o.starts_with(&format!("/Namespace/{SYSTEM}"))
                && !o.starts_with(&format!("{SYSTEM}/ConfigMap/kube-root-ca.crt"))
                && !o.starts_with(&format!("{SYSTEM}/ServiceAccount/default"))
                && !o.starts_with("/CustomResourceDefinition/")
                && !o.starts_with("/APIService/")
                && !o.contains("/Event/")
                && !o.starts_with("kube-node-lease/")
        })
        .cloned()
        .collect()
}

async fn leader(leases: &Api<Lease>) -> Option<String> {
    let lease = leases.get(&format!("{RELEASE}-controller")).await.ok()?;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

async fn ready_pods(pods: &Api<Pod>) -> Vec<Pod> {
    let lp = ListParams::default().labels("app.kubernetes.io/component=controller");
    let list = pods.list(&lp).await.map(|l| l.items).unwrap_or_default();
    list.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .collect()
}

fn node_of(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_install_runs_the_site_through_its_pods_and_survives_leader_loss_upgrade_and_uninstall()
 {
    require("kubectl");
    require("helm");
    let mut rig = provisioning::rig_with_host(1, Some(&format!("{HOST}/24"))).await;
    // The Pods' user (65532) reads the ramdisk through a hostPath below the lab's directory.
    run(Command::new("chmod").arg("0755").arg(rig.lab.dir()));
    // The installed OS (node network) checks in to the boot services (provisioning network) of
    // a node's namespace through the segment's gateway: forwarding on.
    run(Command::new("ip").args([
        "netns",
        "exec",
        &rig.boot_ns,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]));
    let ramdisk = rig.lab.ramdisk();
    let cp = ControlPlane::up_at(rig.lab.dir().join("cp"), HOST);
    let client = client_for(&cp.kubeconfig()).await;

    // The image, built without a container engine (cached: the static release build is the cost).
    let built =
        run(Command::new(repo_root().join("hack/image/build.sh")).arg(rig.lab.dir().join("image")));
    let fields: Vec<&str> = built.split_whitespace().collect();
    let [archive, digest, reference] = fields[..] else {
        panic!("hack/image/build.sh printed {built:?}");
    };
    let (repository, tag) = reference.rsplit_once(':').unwrap();
    println!("image {reference} {digest}");

    let mut nodes = Vec::new();
    for i in 1..=2 {
        nodes.push(lab_node(&mut rig, &cp, i, Path::new(archive)));
    }
    let before = all_objects(&cp);

    // 1. helm install.
    let values = rig.lab.dir().join("values.yaml");
    let values_doc = json!({
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "replicas": 2,
        "leaseSeconds": LEASE_SECONDS,
        "hostNetwork": true,
        "nodeSelector": {"groundwork.dev/infra": "true"},
        "tolerations": [{"key": "groundwork.dev/infra", "operator": "Exists", "effect": "NoSchedule"}],
        "boot": {"enabled": true, "dhcpInterfaces": ["prov"],
                 "artifactsHostPath": ramdisk.display().to_string(), "ramdiskTimeoutSeconds": 600},
    });
    std::fs::write(&values, serde_json::to_string_pretty(&values_doc).unwrap()).unwrap();
    let chart = repo_root().join("charts/groundwork");
    let t0 = Instant::now();
    helm(
        &cp,
        &[
            "install",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            SYSTEM,
            "--create-namespace",
            "-f",
            values.to_str().unwrap(),
            "--wait",
            "--timeout",
            "3m",
        ],
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), SYSTEM);
    let leases: Api<Lease> = Api::namespaced(client.clone(), SYSTEM);
    // helm's --wait accepts replicas - maxUnavailable (1 here, the host network's rollout).
    let ready = eventually(
        Duration::from_secs(120),
        "two Ready controller Pods",
        || async {
            let ready = ready_pods(&pods).await;
            (ready.len() == 2).then_some(ready)
        },
    )
    .await;
    assert_ne!(
        node_of(&ready[0]),
        node_of(&ready[1]),
        "one replica per node"
    );
    let first = eventually(Duration::from_secs(30), "a leader", || leader(&leases)).await;
    println!(
        "installed: 2 Pods Ready in {:.1} s, leader {first}",
        t0.elapsed().as_secs_f64()
    );

    // 2. A server provisioned through the Pods; the leader deleted half-way.
    kubectl(&cp, &["create", "namespace", SITE]);
    let www = &rig.www;
    let img = provisioning::image(
        "os.raw.zst",
        &provisioning::sha256(&www.join("os.raw.zst")),
        "raw+zstd",
    );
    let port = rig.ports[0];
    provisioning::site_with(&client, SITE, &[port], |_| {
        json!({"bootMode": "Legacy", "online": true, "image": img,
            "bmc": {"address": format!("ipmi://{HOST}:{port}"), "credentialsSecretRef": {"name": "bmc"}}})
    })
    .await;
    let servers: Api<Server> = Api::namespaced(client.clone(), SITE);
    eventually(
        Duration::from_secs(240),
        "s1 provisioning, its ramdisk's agent connected",
        || async {
            let s = servers.get("s1").await.ok()?.status?;
            (s.state == Some(ServerState::Provisioning)
                && s.boot_progress.as_ref()?.called_back_at.is_some())
            .then_some(())
        },
    )
    .await;
    let killed = Instant::now();
    pods.delete(&first, &DeleteParams::default()).await.unwrap();
    let next = eventually(Duration::from_secs(60), "a new leader", || async {
        leader(&leases).await.filter(|h| *h != first)
    })
    .await;
    let handover = killed.elapsed();
    println!(
        "leader {first} deleted: {next} leads after {:.1} s",
        handover.as_secs_f64()
    );
    assert!(
        handover <= Duration::from_secs(LEASE_SECONDS + 5),
        "handover took {handover:?} (lease {LEASE_SECONDS} s)"
    );
    let status =
        provisioning::wait_for(&rig.lab, &servers, "s1", ServerState::Provisioned, 300).await;
    println!(
        "s1 Provisioned {:.1} s after the leader was deleted (attempt {:?})",
        killed.elapsed().as_secs_f64(),
        status.boot_progress.map(|b| b.attempt)
    );
    eventually(Duration::from_secs(120), "two Ready Pods again", || async {
        (ready_pods(&pods).await.len() == 2).then_some(())
    })
    .await;

    // 3. Upgrade: CRDs the documented way, then the release with changed values.
    kubectl(
        &cp,
        &[
            "apply",
            "--server-side",
            "-f",
            repo_root().join("charts/groundwork/crds").to_str().unwrap(),
        ],
    );
    let old: BTreeSet<String> = ready_pods(&pods)
        .await
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    helm(
        &cp,
        &[
            "upgrade",
            RELEASE,
            chart.to_str().unwrap(),
            "--namespace",
            SYSTEM,
            "-f",
            values.to_str().unwrap(),
            "--set",
            "logFormat=json",
            "--set",
            "resyncSeconds=120",
            "--wait",
            "--timeout",
            "3m",
        ],
    );
    let upgraded = eventually(
        Duration::from_secs(120),
        "two Ready Pods after the upgrade",
        || async {
            let ready = ready_pods(&pods).await;
            (ready.len() == 2
                && ready
                    .iter()
                    .all(|p| !old.contains(p.metadata.name.as_deref().unwrap_or_default())))
            .then_some(ready)
        },
    )
    .await;
    for pod in &upgraded {
        let name = pod.metadata.name.clone().unwrap_or_default();
        assert!(
            !old.contains(&name),
            "{name} was not replaced by the upgrade"
        );
        let args = pod.spec.as_ref().unwrap().containers[0]
            .args
            .clone()
            .unwrap_or_default();
        assert!(args.contains(&"--log-format=json".to_string()), "{args:?}");
    }
    eventually(
        Duration::from_secs(30),
        "a leader after the upgrade",
        || leader(&leases),
    )
    .await;
    // A few reconcile rounds on the new Pods: no reconcile error counted, no error logged.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut reconciles = 0.0;
    for pod in &upgraded {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let log = kubectl(&cp, &["-n", SYSTEM, "logs", &name]);
        assert!(
            log.contains("\"level\":\"INFO\""),
            "{name} logs no JSON: {log}"
        );
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("\"level\":\"ERROR\""))
            .collect();
        assert!(errors.is_empty(), "{name} after the upgrade: {errors:#?}");
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_default();
        let metrics = e2e::cluster::http_get(&format!("http://{ip}:8080/metrics"))
            .unwrap_or_else(|| panic!("no metrics from {name} at {ip}"));
        let sum = |prefix: &str| -> f64 {
            metrics
                .lines()
                .filter(|l| l.starts_with(prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        assert_eq!(
            sum("groundwork_reconcile_errors_total"),
            0.0,
            "{name}: {metrics}"
        );
        reconciles += sum("groundwork_reconciles_total");
    }
    assert!(reconciles > 0.0, "the new leader reconciled nothing");
    let s1 = servers.get("s1").await.unwrap();
    assert_eq!(
        s1.status.and_then(|s| s.state),
        Some(ServerState::Provisioned)
    );

    // 4. Uninstall: only the CRDs and the user's objects stay.
    helm(
        &cp,
        &["uninstall", RELEASE, "--namespace", SYSTEM, "--wait"],
    );
    eventually(
        Duration::from_secs(60),
        "the release's Pods gone",
        || async {
            let all = pods.list(&ListParams::default()).await.ok()?;
            all.items.is_empty().then_some(())
        },
    )
    .await;
    let after = all_objects(&cp);
    let left = left_by(&before, &after);
    assert!(left.is_empty(), "left behind by helm uninstall: {left:#?}");
    assert!(
        after
            .iter()
            .any(|o| o == "/CustomResourceDefinition/servers.groundwork.dev"),
        "the CRDs stay"
    );
    assert!(
        after.iter().any(|o| o == &format!("{SITE}/Server/s1")),
        "the user's Server stays"
    );
    drop(nodes);
}
