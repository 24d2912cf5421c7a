//! The cluster rig, shared by `tests/tests/cluster.rs` and the nodes benchmark: its own control
//! plane with kube-controller-manager and kube-scheduler (`hack/controlplane.sh up
//! --cluster`), Cluster API core + the kubeadm bootstrap provider as processes
//! (`hack/capi.sh`), the lab's API server as the workload cluster's control plane
//! (`hack/workload-cluster.sh`), the site controller with its boot services and the provider as
//! two `groundwork-controller` processes, and two racks with one QEMU server each behind IPMI
//! BMCs.
//!
//! Network (all inside namespace `<lab>-site`, which routes between its bridges):
//! - rack r1: bridge br1, provisioning 10.63.1.0/24 (boot services 10.63.1.2), nodes
//!   10.83.1.0/24 (gateway 10.83.1.1); rack r2: br2, 10.63.2.0/24 (10.63.2.2), 10.83.2.0/24;
//! - this host 10.83.0.1/30 on a veth into the namespace (routes to both node networks): the
//!   API server listens there only (`--node-address`), the nodes reach it through their gateway.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crds::provider::GroundworkMachine;
use crds::server::BootPurpose;
use crds::{Server, ServerState};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::netlab::{NetLab, require, run};
use crate::process::ControllerProcess;
use crate::provisioning::sha256;
use crate::{apply_doc, client_for, eventually, repo_root, resource_of};

pub const NS: &str = "lab";
pub const CLUSTER: &str = "c1";
pub const HOST: &str = "10.83.0.1";
pub const IMAGE_SERVER: &str = "10.63.1.2:8090";

/// A control plane of its own (the node network must reach it), stopped on drop.
pub struct ControlPlane {
    /// Its directory (kubeconfig, logs, PKI).
    pub dir: PathBuf,
}

impl ControlPlane {
    /// `hack/controlplane.sh up DIR --cluster --node-address` [`HOST`].
    pub fn up(dir: PathBuf) -> Self {
        Self::up_at(dir, HOST)
    }

    /// `hack/controlplane.sh up DIR --cluster --node-address ADDRESS` (one of this host's).
    pub fn up_at(dir: PathBuf, address: &str) -> Self {
        Self::up_with(dir, address, &[])
    }

    /// [`Self::up_at`] with more options of `hack/controlplane.sh up` (e.g. `--node-grace 15`).
    pub fn up_with(dir: PathBuf, address: &str, options: &[&str]) -> Self {
        let cp = Self { dir };
        let path = cp.path();
        let mut args = vec!["up", &path, "--cluster", "--node-address", address];
        args.extend_from_slice(options);
        script("hack/controlplane.sh", &args);
        cp
    }

    /// Its directory, as a string.
    pub fn path(&self) -> String {
        self.dir.display().to_string()
    }

    /// The admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // Its logs go with its directory: a failing test shows them first.
        if std::thread::panicking() {
            crate::netlab::dump_logs_of(&self.dir);
        }
        // Cluster API's processes too.
        let _ = Command::new(repo_root().join("hack/controlplane.sh"))
            .args(["down", &self.path()])
            .status();
    }
}

pub fn script(path: &str, args: &[&str]) -> String {
    run(Command::new(repo_root().join(path)).args(args))
}

pub fn kubectl(cp: &ControlPlane, args: &[&str]) -> String {
    run(Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(cp.kubeconfig())
        .args(args))
}

pub fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// This host's end of the veth into the site namespace, deleted on drop (a namespace's own
/// deletion removes it only asynchronously, and the next run would meet its routes).
pub struct HostLink(String);

impl Drop for HostLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// This host on `bridge` of namespace `ns` with address `cidr` (a veth named after the lab, its
/// far end a port of the bridge), as hack/lib.sh's `gw_host_veth` does: Pods of lab nodes on that
/// bridge reach an API server or BMCs listening there. Removed on drop.
pub fn host_port(lab: &NetLab, ns: &str, bridge: &str, cidr: &str) -> HostLink {
    let address = cidr.split('/').next().unwrap_or(cidr);
    let taken = run(Command::new("ip").args(["-o", "-4", "addr", "show"]));
    assert!(
        !taken.contains(&format!(" {address}/")),
        "this host already has {address} (a rig left over, or running): {taken}"
    );
    let host_if = format!("{}p", lab.dir().file_name().unwrap().to_string_lossy());
    ip(&[
        "link", "add", &host_if, "type", "veth", "peer", "name", &host_if, "netns", ns,
    ]);
    let link = HostLink(host_if.clone());
    ip(&["-n", ns, "link", "set", &host_if, "master", bridge, "up"]);
    ip(&["addr", "add", cidr, "dev", &host_if]);
    ip(&["link", "set", &host_if, "up"]);
    link
}

/// Namespace `<lab>-site`: both racks' bridges, boot addresses, node gateways, router adverts,
/// forwarding, and the veth to this host.
pub fn network(lab: &mut NetLab) -> (String, HostLink) {
    let site = lab.netns("site");
    for r in 1..=2 {
        let br = format!("br{r}");
        lab.bridge(&site, &br, &format!("10.63.{r}.2/24"));
        ip(&[
            "-n",
            &site,
            "addr",
            "add",
            &format!("10.83.{r}.1/24"),
            "dev",
            &br,
        ]);
        lab.router_adverts(&site, &br, &format!("fd63:{r}::"));
    }
    run(Command::new("ip").args([
        "netns",
        "exec",
        &site,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]));
    let taken = run(Command::new("ip").args(["-o", "-4", "addr", "show"]));
    assert!(
        !taken.contains(&format!(" {HOST}/")),
        "this host already has {HOST} (a cluster rig left over, or running): {taken}"
    );
    let host_if = format!("{}h", lab.dir().file_name().unwrap().to_string_lossy());
    ip(&[
        "link", "add", &host_if, "type", "veth", "peer", "name", "up0", "netns", &site,
    ]);
    let link = HostLink(host_if.clone());
    ip(&["addr", "add", &format!("{HOST}/30"), "dev", &host_if]);
    ip(&["link", "set", &host_if, "up"]);
    ip(&["-n", &site, "addr", "add", "10.83.0.2/30", "dev", "up0"]);
    ip(&["-n", &site, "link", "set", "up0", "up"]);
    for r in 1..=2 {
        ip(&[
            "route",
            "replace",
            &format!("10.83.{r}.0/24"),
            "via",
            "10.83.0.2",
            "dev",
            &host_if,
        ]);
    }
    (site, link)
}

/// The node OS image (hack/node-os/build.sh, cached; `<lab>/node-os.raw` stays) served from
/// the site namespace; its `spec.image`.
pub fn image_server(lab: &mut NetLab, site: &str) -> serde_json::Value {
    let www = lab.dir().join("www");
    std::fs::create_dir_all(&www).unwrap();
    let raw = lab.dir().join("node-os.raw");
    script("hack/node-os/build.sh", &[raw.to_str().unwrap()]);
    let zst = www.join("node-os.raw.zst");
    std::fs::rename(raw.with_extension("raw.zst"), &zst).unwrap();
    lab.spawn(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                site,
                "python3",
                "-m",
                "http.server",
                "8090",
            ])
            .args(["--bind", "10.63.1.2", "--directory"])
            .arg(&www),
        "www.log",
    );
    json!({"url": format!("http://{IMAGE_SERVER}/node-os.raw.zst"),
        "checksum": format!("sha256:{}", sha256(&zst)), "format": "raw+zstd"})
}

pub fn mac(rack: u8) -> String {
    format!("52:54:00:63:0{rack}:01")
}

/// Racks r1, r2 and one QEMU server in each (1536 MiB, 3 GiB disk, Legacy boot) behind an
/// IPMI BMC; returns the disks.
pub async fn site(client: &Client, lab: &mut NetLab, site_ns: &str) -> Vec<PathBuf> {
    apply_doc(
        client,
        NS,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bmc"},
        "stringData": {"username": "admin", "password": "lab-password"}}),
    )
    .await
    .unwrap();
    let mut disks = Vec::new();
    for r in 1..=2u8 {
        apply_doc(client, NS, json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack",
            "metadata": {"name": format!("r{r}")},
            "spec": {"location": {"site": "lab"}, "networks": {
                "provisioning": {"subnet": format!("10.63.{r}.0/24"), "gateway": format!("10.63.{r}.2")},
                "node": {"subnet": format!("10.83.{r}.0/24"), "gateway": format!("10.83.{r}.1")}}}}))
        .await
        .unwrap();
        let name = format!("r{r}-u01");
        let tap = format!("tap{r}");
        lab.tap(site_ns, &format!("br{r}"), &tap);
        let disk = lab.dir().join(format!("{name}.disk"));
        run(Command::new("truncate").args(["-s", "3G"]).arg(&disk));
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        lab.vm_bmc_sized(&name, port, site_ns, &tap, &mac(r), Some(&disk), Some(1536));
        apply_doc(
            client,
            NS,
            json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": name},
            "spec": {"rackRef": {"name": format!("r{r}")}, "rackUnit": 1, "bootMACAddress": mac(r),
                "bootMode": "Legacy",
                "bmc": {"address": format!("ipmi://127.0.0.1:{port}"),
                        "credentialsSecretRef": {"name": "bmc"}}}}),
        )
        .await
        .unwrap();
        disks.push(disk);
    }
    disks
}

/// The workload cluster: Cluster + GroundworkCluster, and a MachineDeployment of `replicas`
/// workers (GroundworkMachineTemplate with the node OS image, KubeadmConfigTemplate).
pub async fn cluster(client: &Client, image: &serde_json::Value, version: &str, replicas: u32) {
    for doc in [
        json!({"apiVersion": "infrastructure.groundwork.dev/v1alpha1", "kind": "GroundworkCluster",
            "metadata": {"name": CLUSTER}, "spec": {}}),
        json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Cluster",
            "metadata": {"name": CLUSTER},
            "spec": {
                "controlPlaneRef": {"apiGroup": "controlplane.lab.groundwork.dev", "kind": "ExternalControlPlane", "name": CLUSTER},
                "infrastructureRef": {"apiGroup": "infrastructure.groundwork.dev", "kind": "GroundworkCluster", "name": CLUSTER}}}),
        json!({"apiVersion": "infrastructure.groundwork.dev/v1alpha1", "kind": "GroundworkMachineTemplate",
            "metadata": {"name": "workers"},
            "spec": {"template": {"spec": {"image": image}}}}),
        json!({"apiVersion": "bootstrap.cluster.x-k8s.io/v1beta2", "kind": "KubeadmConfigTemplate",
            "metadata": {"name": "workers"},
            "spec": {"template": {"spec": {"joinConfiguration": {"nodeRegistration": {
                // cloud-init jinja over the config drive's meta-data, which Groundwork writes.
                "name": "{{ ds.meta_data.local_hostname }}",
                "kubeletExtraArgs": [{"name": "provider-id", "value": "{{ ds.meta_data.provider_id }}"}]}}}}}}),
        json!({"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "MachineDeployment",
            "metadata": {"name": "workers"},
            "spec": {"clusterName": CLUSTER, "replicas": replicas,
                "selector": {"matchLabels": {"pool": "workers"}},
                "template": {"metadata": {"labels": {"pool": "workers"}}, "spec": {
                    "clusterName": CLUSTER, "version": version,
                    "bootstrap": {"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "KubeadmConfigTemplate", "name": "workers"}},
                    "infrastructureRef": {"apiGroup": "infrastructure.groundwork.dev", "kind": "GroundworkMachineTemplate", "name": "workers"}}}}}),
    ] {
        apply_doc(client, NS, doc).await.unwrap();
    }
}

/// The app: `replicas` of the node OS's hello image, spread across zones, on hostPort 8080.
pub async fn app(client: &Client, replicas: usize) {
    apply_doc(client, "default", json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "hello"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "hello"}},
            "template": {"metadata": {"labels": {"app": "hello"}}, "spec": {
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "hello"}}}],
                "containers": [{"name": "hello", "image": "groundwork.dev/hello:v1", "imagePullPolicy": "Never",
                    "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                    "ports": [{"containerPort": 8080, "hostPort": 8080}]}]}}}}))
    .await
    .unwrap();
}

pub fn machines_api(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        NS,
        &resource_of("cluster.x-k8s.io/v1beta2", "Machine"),
    )
}

pub fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Milestones per Machine, seconds since `t0`, each recorded once.
#[derive(Default)]
pub struct Timeline(pub BTreeMap<String, Vec<(String, f64)>>);

impl Timeline {
    /// Records `what` for `machine` once.
    pub fn mark(&mut self, machine: &str, what: &str, t0: Instant) {
        let steps = self.0.entry(machine.to_string()).or_default();
        if !steps.iter().any(|(w, _)| w == what) {
            steps.push((what.to_string(), t0.elapsed().as_secs_f64()));
        }
    }

    /// Prints one line per Machine.
    pub fn print(&self) {
        for (machine, steps) in &self.0 {
            let line: Vec<String> = steps.iter().map(|(w, t)| format!("{w} {t:.0} s")).collect();
            println!("timeline {machine}: {}", line.join(" → "));
        }
    }
}

/// Polls until `replicas` Machines have Ready Nodes, recording each Machine's timeline
/// (claimed → image written → OS checked in → Node Ready). Fails early when a server errs.
pub async fn nodes_ready(
    client: &Client,
    lab: &NetLab,
    replicas: usize,
    t0: Instant,
) -> (Vec<Node>, Timeline) {
    let gms: Api<GroundworkMachine> = Api::namespaced(client.clone(), NS);
    let servers: Api<Server> = Api::namespaced(client.clone(), NS);
    let nodes: Api<Node> = Api::all(client.clone());
    let mut timeline = Timeline::default();
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let mut ready_nodes = Vec::new();
        for gm in gms.list(&ListParams::default()).await.unwrap() {
            let name = gm.name_any();
            let Some(server) = gm.status.as_ref().and_then(|s| s.server_ref.as_ref()) else {
                continue;
            };
            timeline.mark(&name, &format!("claimed {}", server.name), t0);
            let s = servers.get(&server.name).await.unwrap();
            let st = s.status.clone().unwrap_or_default();
            // Progress of the current provisioning only (a reused server still shows the
            // cleaning of its release).
            let attempt = st
                .boot_attempt
                .as_ref()
                .filter(|a| a.purpose == BootPurpose::Provision)
                .map(|a| a.id.as_str());
            let progress = st
                .boot_progress
                .as_ref()
                .filter(|p| Some(p.attempt.as_str()) == attempt);
            if progress.is_some_and(|p| p.result_at.is_some()) {
                timeline.mark(&name, "image written", t0);
            }
            if progress.is_some_and(|p| p.checked_in_at.is_some()) {
                timeline.mark(&name, "OS checked in", t0);
            }
            assert_ne!(
                st.state,
                Some(ServerState::Error),
                "{} failed: {:?}",
                server.name,
                st.last_error
            );
            if let Some(node) = nodes.get_opt(&server.name).await.unwrap() {
                timeline.mark(&name, "Node registered", t0);
                if ready(&node) {
                    timeline.mark(&name, "Node Ready", t0);
                    ready_nodes.push(node);
                }
            }
        }
        if ready_nodes.len() == replicas {
            timeline.print();
            return (ready_nodes, timeline);
        }
        if Instant::now() > deadline {
            timeline.print();
            lab.dump_logs();
            panic!("{replicas} Ready Nodes not reached in 900 s");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

pub fn http_get(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "3", url])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn node_ip(node: &Node) -> String {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address.clone())
        .unwrap_or_default()
}

/// Everything the cluster tests and the nodes benchmark run on (stopped on drop).
pub struct Rig {
    /// The site's processes (controller, provider) first: dropped before the API server.
    pub controller: ControllerProcess,
    /// The Cluster API provider process.
    pub provider: ControllerProcess,
    /// Admin client of the rig's own API server.
    pub client: Client,
    /// The Kubernetes version (the Machines' `spec.version`).
    pub version: String,
    /// The node OS image as `spec.image`.
    pub image: serde_json::Value,
    /// Server r1-u01's and r2-u01's disks.
    pub disks: Vec<PathBuf>,
    /// The site namespace.
    pub site_ns: String,
    /// Its control plane.
    pub cp: ControlPlane,
    _host_link: HostLink,
    /// Namespaces, BMCs, VMs, scratch directory (last: the VMs go with it).
    pub lab: NetLab,
}

/// Brings the rig up until both servers are Available.
pub async fn rig() -> Rig {
    require("qemu-system-x86_64");
    require("zstd");
    require("kubectl");
    let mut lab = NetLab::new();
    let (site_ns, host_link) = network(&mut lab);
    let image = image_server(&mut lab, &site_ns);
    let cp = ControlPlane::up(lab.dir().join("cp"));
    let client = client_for(&cp.kubeconfig()).await;
    kubectl(&cp, &["create", "namespace", NS]);
    kubectl(
        &cp,
        &[
            "apply",
            "--server-side",
            "-f",
            repo_root().join("charts/groundwork/crds").to_str().unwrap(),
        ],
    );
    script("hack/capi.sh", &["up", &cp.path()]);
    script("hack/workload-cluster.sh", &["up", &cp.path(), NS, CLUSTER]);
    let version = kubectl(&cp, &["version", "--client", "-o", "json"]);
    let version: serde_json::Value = serde_json::from_str(&version).unwrap();
    let version = version["clientVersion"]["gitVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let artifacts = lab.ramdisk();
    let key = lab.token_key();
    let site_flags: Vec<String> = [
        "--boot-services",
        "--dhcp-interface",
        "br1,br2",
        "--boot-netns",
        &site_ns,
        "--boot-http-addr",
        "0.0.0.0:8081",
        "--tftp-addr",
        "0.0.0.0:69",
        "--boot-artifacts",
        artifacts.to_str().unwrap(),
        "--boot-token-key-file",
        key.to_str().unwrap(),
        "--ramdisk-timeout-seconds",
        "600",
        "--lease-seconds",
        "15",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let kubeconfig = cp.kubeconfig();
    let controller = ControllerProcess::supervised_on(
        &kubeconfig,
        NS,
        "groundwork-site",
        &site_flags,
        &lab.dir().join("controller.log"),
    )
    .ready(15)
    .await;
    let provider_flags = ["--provider", "--lease-seconds", "15"].map(String::from);
    let provider = ControllerProcess::supervised_on(
        &kubeconfig,
        NS,
        "groundwork-provider",
        &provider_flags,
        &lab.dir().join("provider.log"),
    )
    .ready(15)
    .await;
    let disks = site(&client, &mut lab, &site_ns).await;
    let servers: Api<Server> = Api::namespaced(client.clone(), NS);
    eventually(
        Duration::from_secs(120),
        "both servers Available",
        || async {
            let list = servers.list(&ListParams::default()).await.unwrap();
            list.iter()
                .all(|s| s.status.as_ref().and_then(|st| st.state) == Some(ServerState::Available))
                .then_some(())
        },
    )
    .await;

    Rig {
        controller,
        provider,
        client,
        version,
        image,
        disks,
        site_ns,
        cp,
        _host_link: host_link,
        lab,
    }
}

/// A node of hack/lab-node.sh (containerd, kubelet and kube-proxy on this kernel, in a network
/// namespace the caller made), stopped (every process of its cgroup) on drop; its logs are
/// printed first when the test is failing.
pub struct LabNode {
    dir: PathBuf,
}

impl LabNode {
    /// `hack/lab-node.sh up DIR --cp CP --name NAME --netns NS --address ADDRESS EXTRA...`;
    /// returns once the Node is Ready.
    pub fn up(
        dir: PathBuf,
        cp: &ControlPlane,
        name: &str,
        netns: &str,
        address: &str,
        extra: &[&str],
    ) -> Self {
        let node = Self { dir };
        run(Command::new(repo_root().join("hack/lab-node.sh"))
            .arg("up")
            .arg(&node.dir)
            .args(["--cp", &cp.path(), "--name", name])
            .args(["--netns", netns, "--address", address])
            .args(extra));
        node
    }
}

impl Drop for LabNode {
    fn drop(&mut self) {
        if std::thread::panicking() {
            crate::netlab::dump_logs_of(&self.dir.join("logs"));
        }
        let _ = Command::new(repo_root().join("hack/lab-node.sh"))
            .arg("down")
            .arg(&self.dir)
            .status();
    }
}
