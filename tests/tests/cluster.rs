//! Servers become Kubernetes nodes through Cluster API, end to end, against real peers (its
//! own control plane with kube-controller-manager and kube-scheduler, Cluster API as processes,
//! the site controller and the provider as processes, two racks with one QEMU server each behind
//! IPMI BMCs). Driven only by Cluster API objects: a MachineDeployment of two (no failure domain: the
//! provider spreads it), the node OS image written by the agent, `kubeadm join` from CABPK's
//! bootstrap data, Nodes Ready with providerIDs and zone labels, an app spread across zones
//! answering from the host; scaled to one (the released server cleaned, back in the pool, its
//! address free); the remaining node partitioned from the API server (a MachineHealthCheck
//! replaces its Machine, its server is powered off through its BMC and wiped before it returns
//! to the pool); the Cluster deleted (no Machine, claim, address or bootstrap token left).
//! (The rig: `e2e::cluster`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use crds::provider::GroundworkMachine;
use crds::{Server, ServerState};
use e2e::cluster::{
    CLUSTER, NS, Rig, app, cluster, http_get, machines_api, node_ip, nodes_ready, ready, rig,
};
use e2e::netlab::run;
use e2e::{apply_doc, eventually, eventually_every, resource_of};
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// Whether a server's disk has no partition table left (no MBR signature, so no GPT either).
fn wiped(disk: &std::path::Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 512];
    std::fs::File::open(disk)
        .and_then(|mut f| f.read_exact(&mut head))
        .unwrap();
    head[510..512] != [0x55, 0xaa]
}

/// The index of server `name`'s disk in the rig.
fn disk_of(name: &str) -> usize {
    usize::from(name != "r1-u01")
}

/// Drops every packet to and from `ip` where the site namespace forwards it (between the node
/// networks and this host): the node cannot reach the API server, nor the API server it.
fn partition(site_ns: &str, ip: &str) {
    let nft = |args: &[&str]| {
        run(Command::new("ip")
            .args(["netns", "exec", site_ns, "nft"])
            .args(args));
    };
    nft(&["add", "table", "inet", "partition"]);
    nft(&[
        "add",
        "chain",
        "inet",
        "partition",
        "cut",
        "{ type filter hook forward priority 0 ; }",
    ]);
    nft(&[
        "add",
        "rule",
        "inet",
        "partition",
        "cut",
        "ip",
        "saddr",
        ip,
        "drop",
    ]);
    nft(&[
        "add",
        "rule",
        "inet",
        "partition",
        "cut",
        "ip",
        "daddr",
        ip,
        "drop",
    ]);
}

/// Servers claimed, and Servers holding a node address.
async fn claims_and_addresses(client: &Client) -> (Vec<String>, Vec<String>) {
    let servers: Api<Server> = Api::namespaced(client.clone(), NS);
    let list = servers.list(&ListParams::default()).await.unwrap();
    let claimed = list
        .iter()
        .filter(|s| s.spec.consumer_ref.is_some())
        .map(ResourceExt::name_any)
        .collect();
    let addressed = list
        .iter()
        .filter(|s| s.status.as_ref().is_some_and(|st| !st.addresses.is_empty()))
        .map(ResourceExt::name_any)
        .collect();
    (claimed, addressed)
}

#[tokio::test(flavor = "multi_thread")]
async fn machine_deployment_becomes_nodes_that_run_the_app() {
    let rig = rig().await;
    let Rig {
        client,
        version,
        image,
        disks,
        lab,
        site_ns,
        ..
    } = &rig;
    let servers: Api<Server> = Api::namespaced(client.clone(), NS);

    // 1. A MachineDeployment of two: both servers claimed, one per rack, imaged, joined.
    let t0 = Instant::now();
    cluster(client, image, version, 2).await;
    let (nodes, _) = nodes_ready(client, lab, 2, t0).await;
    let mut zones: Vec<String> = Vec::new();
    for node in &nodes {
        let name = node.name_any();
        assert_eq!(
            node.spec.as_ref().and_then(|s| s.provider_id.clone()),
            Some(format!("groundwork://{NS}/{name}")),
            "{name}'s providerID"
        );
        let labels = node.labels();
        zones.push(
            labels
                .get("topology.kubernetes.io/zone")
                .cloned()
                .unwrap_or_default(),
        );
        assert_eq!(
            labels
                .get("topology.kubernetes.io/region")
                .map(String::as_str),
            Some("lab"),
            "{name}'s region"
        );
    }
    zones.sort();
    assert_eq!(
        zones,
        ["r1", "r2"],
        "one node per rack, labelled with its zone"
    );
    let machines = machines_api(client);
    eventually(
        Duration::from_secs(120),
        "both Machines Running with a nodeRef",
        || async {
            let list = machines.list(&ListParams::default()).await.unwrap();
            (list.items.len() == 2
                && list.iter().all(|m| {
                    m.data["status"]["phase"] == "Running"
                        && m.data["status"]["nodeRef"]["name"].is_string()
                }))
            .then_some(())
        },
    )
    .await;

    // 2. The app, spread across both racks, answers from this host.
    app(client, 2).await;
    for node in &nodes {
        let url = format!("http://{}:8080/", node_ip(node));
        let answer = eventually(
            Duration::from_secs(240),
            &format!("the app on {url}"),
            || {
                let url = url.clone();
                async move { http_get(&url) }
            },
        )
        .await;
        assert_eq!(answer, format!("hello from {}", node.name_any()));
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let on: Vec<String> = pods
        .list(&ListParams::default().labels("app=hello"))
        .await
        .unwrap()
        .iter()
        .filter_map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
        .collect();
    assert_eq!(on.len(), 2, "{on:?}");
    assert_ne!(on[0], on[1], "both replicas on one node: {on:?}");

    // 3. Scaled to one: the released server is cleaned and back in the pool, its address free.
    let mds: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NS,
        &resource_of("cluster.x-k8s.io/v1beta2", "MachineDeployment"),
    );
    mds.patch(
        "workers",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let released = eventually_every(
        Duration::from_secs(2),
        Duration::from_secs(600),
        "one server released, cleaned and Available",
        || async {
            let list = servers.list(&ListParams::default()).await.unwrap();
            let free: Vec<&Server> = list
                .iter()
                .filter(|s| {
                    s.spec.consumer_ref.is_none()
                        && s.spec.image.is_none()
                        && s.status.as_ref().and_then(|st| st.state) == Some(ServerState::Available)
                })
                .collect();
            (free.len() == 1
                && machines
                    .list(&ListParams::default())
                    .await
                    .unwrap()
                    .items
                    .len()
                    == 1)
                .then(|| free[0].clone())
        },
    )
    .await;
    let st = released.status.clone().unwrap_or_default();
    assert!(
        st.addresses.is_empty(),
        "released server keeps {:?}",
        st.addresses
    );
    assert!(
        wiped(&disks[disk_of(&released.name_any())]),
        "cleaning left a partition table on {}",
        released.name_any()
    );
    let nodes_api: Api<Node> = Api::all(client.clone());
    assert!(
        nodes_api
            .get_opt(&released.name_any())
            .await
            .unwrap()
            .is_none(),
        "Node {} still exists",
        released.name_any()
    );

    // 4. The remaining node cut off from the API server (its packets dropped in the site
    // namespace, as a partitioned or hung node): NotReady, a MachineHealthCheck remediates. The
    // Machine is replaced, and its server is fenced through its BMC (powered off, its disk
    // wiped) before it returns to the pool: the cut-off OS cannot come back as a second node.
    let gone = released.name_any();
    let victim = if gone == "r1-u01" { "r2-u01" } else { "r1-u01" };
    let victim_ip = node_ip(&nodes_api.get(victim).await.unwrap());
    apply_doc(
        client,
        NS,
        json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineHealthCheck",
        "metadata": {"name": "workers"},
        "spec": {"clusterName": CLUSTER, "selector": {"matchLabels": {"pool": "workers"}},
            "checks": {"nodeStartupTimeoutSeconds": 900, "unhealthyNodeConditions": [
                {"type": "Ready", "status": "Unknown", "timeoutSeconds": 10},
                {"type": "Ready", "status": "False", "timeoutSeconds": 10}]}}}),
    )
    .await
    .unwrap();
    let bmc_log = lab.dir().join(format!("{victim}-bmc.log"));
    let events_before = std::fs::read_to_string(&bmc_log).unwrap().lines().count();
    partition(site_ns, &victim_ip);
    let t_cut = Instant::now();
    eventually_every(
        Duration::from_secs(2),
        Duration::from_secs(300),
        &format!("Node {victim} NotReady"),
        || async {
            let node = nodes_api.get_opt(victim).await.unwrap();
            (!node.as_ref().is_some_and(ready)).then_some(())
        },
    )
    .await;
    let (replacement, _) = nodes_ready(client, lab, 1, t_cut).await;
    assert_eq!(
        replacement[0].name_any(),
        gone,
        "the replacement runs on the free server"
    );
    let fenced = eventually_every(
        Duration::from_secs(2),
        Duration::from_secs(600),
        &format!("{victim} fenced, cleaned and back in the pool"),
        || async {
            let s = servers.get(victim).await.unwrap();
            let free = s.spec.consumer_ref.is_none()
                && s.status.as_ref().and_then(|st| st.state) == Some(ServerState::Available);
            free.then_some(s)
        },
    )
    .await;
    println!(
        "remediation: replacement Ready, {victim} back in the pool {:.0} s after the cut",
        t_cut.elapsed().as_secs_f64()
    );
    let events: Vec<String> = std::fs::read_to_string(&bmc_log)
        .unwrap()
        .lines()
        .skip(events_before)
        .map(str::to_string)
        .collect();
    // The BMC killed the machine running the cut-off OS (a power cycle into the cleaning
    // ramdisk, or a power off).
    assert!(
        events.iter().any(|e| e.contains("\"vm_killed\"")),
        "{victim}'s BMC never stopped the cut-off OS: {events:?}"
    );
    assert!(
        wiped(&disks[disk_of(victim)]),
        "{victim}'s disk still holds the cut-off OS"
    );
    assert!(fenced.status.unwrap_or_default().addresses.is_empty());
    assert!(
        nodes_api.get_opt(victim).await.unwrap().is_none(),
        "Node {victim} still exists"
    );

    // 5. The Cluster deleted: no Machine, no claim, no node address, no bootstrap token left.
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NS,
        &resource_of("cluster.x-k8s.io/v1beta2", "Cluster"),
    );
    clusters
        .delete(CLUSTER, &DeleteParams::default())
        .await
        .unwrap();
    eventually_every(
        Duration::from_secs(2),
        Duration::from_secs(600),
        "the Cluster gone, every server free",
        || async {
            let gone = clusters.get_opt(CLUSTER).await.unwrap().is_none();
            let (claimed, addressed) = claims_and_addresses(client).await;
            (gone && claimed.is_empty() && addressed.is_empty()).then_some(())
        },
    )
    .await;
    assert!(
        machines
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let gms: Api<GroundworkMachine> = Api::namespaced(client.clone(), NS);
    assert!(
        gms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let tokens: Vec<String> = Api::<Secret>::namespaced(client.clone(), "kube-system")
        .list(&ListParams::default().fields("type=bootstrap.kubernetes.io/token"))
        .await
        .unwrap()
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    assert!(tokens.is_empty(), "bootstrap tokens left: {tokens:?}");
    // Restarts after a lost Lease are allowed (a Deployment's Pod would restart too), a panic
    // is not.
    for (name, process) in [("controller", &rig.controller), ("provider", &rig.provider)] {
        let log = process.text();
        assert!(!log.contains("panicked at"), "the {name} panicked:\n{log}");
        let restarts = log.matches("supervisor: exited").count();
        eprintln!("{name}: {restarts} restarts");
    }
}
