//! End-to-end: traffic from an ISP reaches a Pod through a LoadBalancer Service announced over
//! our own BGP edge. Everything on the path is real:
//!
//! - a control plane of its own (kube-apiserver, etcd, kube-controller-manager, scheduler) and
//!   two nodes of hack/lab-node.sh (containerd, kubelet, **kube-proxy** in iptables mode) running
//!   the app `groundwork.dev/hello:v1` (answers `hello from <node>`);
//! - the border router: BIRD in its own namespace, driven by the edge daemon (in-process),
//!   directly attached to the node network 10.75.0.0/24 (the BorderRouter's `nodeNetworks`);
//! - ISP A: GoBGP (AS 64500, community 64500:100 on our exports); ISP B: FRR (AS 64510, our
//!   exports prepended twice), whose zebra installs what it learns into its namespace's kernel,
//!   so a request made there follows the route the ISP learned from us;
//! - the controller (in-process) allocating the address from the BorderRouter's pool.
//!
//! The Service's address appears at both ISPs with each link's attributes; an HTTP request from
//! ISP B's namespace reaches the Pod; the address survives a controller restart; scaling to zero
//! withdraws it (Local policy) and scaling back announces it again; the node that serves it is
//! killed and traffic moves to the other node once the Node is NotReady; deleting the Service
//! withdraws it and frees the address for a waiting Service; ISP A fails and the address stays
//! reachable through ISP B. Needs root and the peers.
//!
//! `hack/bench-lb.sh` runs [`bench_lb`] on the same site: announce and withdrawal times beside
//! the same steps done by hand with `birdc`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../routing/tests/support/mod.rs"]
mod support;

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{condition, install_crds, obj, serve_metrics, start_daemon, stop_daemon};
use crds::service::{LOAD_BALANCER_CLASS, SERVICE_NAME_LABEL, conditions, reasons};
use crds::{BorderRouter, UpstreamLink};
use e2e::cluster::{ControlPlane, HostLink, LabNode, host_port};
use e2e::netlab::{NetLab, require, run};
use e2e::{RunningController, client_for, eventually, namespace};
use edge::metrics::Metrics;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Bird, Frr, Gobgp, GobgpNeighbor, Lab, serial};

/// This host on the node network: the API server the nodes register with.
const HOST: &str = "10.75.0.254";
/// The border router on the node network: the nodes' default gateway.
const BORDER: &str = "10.75.0.1";
const NODE_NET: &str = "10.75.0.0/24";
const OWN: &str = "203.0.113.0/24";
/// One address: a second Service waits for it.
const POOL: &str = "203.0.113.64/32";
const ADDRESS: &str = "203.0.113.64";
/// ISP B's end of its link: where the requests come from.
const ISP_B: &str = "192.0.2.6";
/// Bound on a withdrawal or an announcement reaching both ISPs.
const SECONDS: Duration = Duration::from_secs(10);

/// The site: fields drop in order, the nodes before their control plane, the control plane
/// before the network it listens on.
struct Site {
    nodes: Vec<Option<LabNode>>,
    _cp: ControlPlane,
    _host: HostLink,
    _net: NetLab,
    lab: Lab,
    client: Client,
    ns: String,
    /// Node names and their namespaces, by index.
    node_names: Vec<String>,
    node_ns: Vec<String>,
    isp_b: String,
    isp_a: Gobgp,
    frr: Frr,
    bird: Bird,
}

impl Site {
    async fn up() -> Self {
        require("curl");
        let mut net = NetLab::new();
        let id = net.dir().file_name().unwrap().to_string_lossy().to_string();
        // The node network: a bridge (the racks' top-of-rack switch) that this host, the border
        // router and the nodes join.
        let tor = net.netns("tor");
        net.bridge(&tor, "br0", "10.75.0.2/24");
        let host = host_port(&net, &tor, "br0", &format!("{HOST}/24"));
        // A dead node is NotReady after 15 s (Kubernetes' default: 50 s).
        let cp = ControlPlane::up_with(net.dir().join("cp"), HOST, &["--node-grace", "15"]);
        let client = client_for(&cp.kubeconfig()).await;
        install_crds(&client).await;

        let mut lab = Lab::new();
        let border = lab.netns("border");
        let isp_a_ns = lab.netns("ispa");
        let isp_b = lab.netns("ispb");
        lab.veth(
            (&border, "upa", &["192.0.2.1/30"]),
            (&isp_a_ns, "toborder", &["192.0.2.2/30"]),
        );
        lab.veth(
            (&border, "upb", &["192.0.2.5/30"]),
            (&isp_b, "toborder", &[&format!("{ISP_B}/30")]),
        );
        net.veth(
            &tor,
            &format!("{id}b"),
            Some("br0"),
            None,
            &border,
            "nodes",
            None,
            Some(&format!("{BORDER}/24")),
        );
        sysctl(&border, "net.ipv4.ip_forward=1");

        let (mut nodes, mut node_names, mut node_ns) = (Vec::new(), Vec::new(), Vec::new());
        for i in 1..=2u8 {
            let ns = net.netns(&format!("n{i}"));
            let address = format!("10.75.0.1{i}");
            net.veth(
                &tor,
                &format!("{id}n{i}"),
                Some("br0"),
                None,
                &ns,
                "eth0",
                None,
                Some(&format!("{address}/24")),
            );
            run(Command::new("ip").args(["-n", &ns, "route", "add", "default", "via", BORDER]));
            let name = format!("{id}-n{i}");
            nodes.push(Some(LabNode::up(
                net.dir().join(format!("node-{i}")),
                &cp,
                &name,
                &ns,
                &address,
                &["--pod-cidr", &format!("10.251.{i}.0/24")],
            )));
            node_names.push(name);
            node_ns.push(ns);
        }

        let bird = lab.start_bird(&border, "192.0.2.1").await;
        let isp_a = lab
            .start_gobgp(
                &isp_a_ns,
                64500,
                "192.0.2.2",
                &[GobgpNeighbor {
                    address: "192.0.2.1".parse().unwrap(),
                    peer_as: 65000,
                }],
            )
            .await;
        let frr = lab
            .start_frr(
                &isp_b,
                &format!(
                    "frr defaults datacenter\nhostname ispb\nrouter bgp 64510\n bgp router-id {ISP_B}\n no bgp ebgp-requires-policy\n neighbor 192.0.2.5 remote-as 65000\n neighbor 192.0.2.5 timers 3 9\n neighbor 192.0.2.5 timers connect 1\nexit\n"
                ),
            )
            .await;

        let ns = namespace(&client, "traffic").await;
        Site {
            nodes,
            _cp: cp,
            _host: host,
            _net: net,
            lab,
            client,
            ns,
            node_names,
            node_ns,
            isp_b,
            isp_a,
            frr,
            bird,
        }
    }

    /// The BorderRouter (pool [`POOL`], node network [`NODE_NET`]) and its two UpstreamLinks.
    async fn declare_edge(&self) {
        let pp = PostParams::default();
        let routers: Api<BorderRouter> = Api::namespaced(self.client.clone(), &self.ns);
        let router = |pools: &[&str]| {
            obj::<BorderRouter>(json!({
                "apiVersion": "groundwork.dev/v1alpha1", "kind": "BorderRouter",
                "metadata": {"name": "edge1"},
                "spec": {"localASN": 65000, "routerID": "192.0.2.1", "ownPrefixes": [OWN],
                         "serviceAddressPools": [{"name": "public", "cidrs": pools}],
                         "nodeNetworks": [NODE_NET]}
            }))
        };
        // Admission: a pool outside ownPrefixes is refused by the API server (CEL).
        let refused = routers
            .create(&pp, &router(&["198.51.100.0/30"]))
            .await
            .unwrap_err();
        assert!(
            matches!(&refused, kube::Error::Api(e) if e.code == 422
                && e.message.contains("every service address pool CIDR must lie inside one of ownPrefixes")),
            "{refused:?}"
        );
        routers.create(&pp, &router(&[POOL])).await.unwrap();
        let links: Api<UpstreamLink> = Api::namespaced(self.client.clone(), &self.ns);
        for (name, peer_asn, (local, peer), timers, export) in [
            (
                "isp-a",
                64500,
                ("192.0.2.1", "192.0.2.2"),
                (3, 1),
                json!({"prefixes": [OWN], "communities": ["64500:100"]}),
            ),
            (
                "isp-b",
                64510,
                ("192.0.2.5", ISP_B),
                (9, 3),
                json!({"prefixes": [OWN], "prepend": 2}),
            ),
        ] {
            links
                .create(&pp, &obj(json!({
                    "apiVersion": "groundwork.dev/v1alpha1", "kind": "UpstreamLink",
                    "metadata": {"name": name},
                    "spec": {"provider": name, "routerRef": "edge1",
                             "bgp": {"peerASN": peer_asn, "ipv4": {"localAddress": local, "peerAddress": peer},
                                     "holdTimeSeconds": timers.0, "keepaliveSeconds": timers.1},
                             "import": {"mode": "DefaultOnly", "bogonFilter": false},
                             "export": export}
                })))
                .await
                .unwrap();
        }
    }

    /// The app: `replicas` Pods of hello, one per node at most.
    async fn app(&self, replicas: i32) {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.ns);
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "hello"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "hello"}},
                "template": {"metadata": {"labels": {"app": "hello"}}, "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"topologyKey": "kubernetes.io/hostname",
                         "labelSelector": {"matchLabels": {"app": "hello"}}}]}},
                    "containers": [{"name": "hello", "image": "groundwork.dev/hello:v1",
                        "imagePullPolicy": "Never",
                        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 1}}]}}}
        });
        api.patch(
            "hello",
            &PatchParams::apply("traffic-e2e").force(),
            &Patch::Apply(&d),
        )
        .await
        .unwrap();
    }

    /// A LoadBalancer Service of our class for the Pods labelled `app: <app>`,
    /// `externalTrafficPolicy: Local`, port 80.
    async fn service(&self, name: &str, app: &str) {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &self.ns);
        api.create(
            &PostParams::default(),
            &obj(json!({
                "metadata": {"name": name},
                "spec": {"type": "LoadBalancer", "loadBalancerClass": LOAD_BALANCER_CLASS,
                         "externalTrafficPolicy": "Local", "selector": {"app": app},
                         "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}
            })),
        )
        .await
        .unwrap();
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// GET http://ADDRESS/ from inside ISP B's namespace: the body, or None.
    fn fetch(&self) -> Option<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.isp_b,
                "curl",
                "-sf",
                "--max-time",
                "1",
            ])
            .arg(format!("http://{ADDRESS}/"))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Waits until a request from ISP B is answered; the answering node's index.
    async fn answered(&self, within: Duration) -> usize {
        eventually(within, "the app answers a request from ISP B", || {
            let body = self.fetch();
            let node = body.and_then(|b| {
                self.node_names
                    .iter()
                    .position(|n| b == format!("hello from {n}"))
            });
            async move { node }
        })
        .await
    }

    /// ISP B's route to the address: FRR's RIB entry (AS path) once its zebra installed it
    /// in the namespace's kernel.
    async fn at_isp_b(&self, within: Duration) -> Vec<u64> {
        let prefix = format!("{ADDRESS}/32");
        eventually(within, "the /32 in ISP B's kernel (proto bgp)", || {
            let kernel =
                run(Command::new("ip").args(["-n", &self.isp_b, "route", "show", &prefix]));
            let rib = self
                .frr
                .vtysh(&format!("show bgp ipv4 unicast {prefix} json"));
            let path = serde_json::from_str::<serde_json::Value>(&rib)
                .ok()
                .and_then(|v| {
                    v["paths"][0]["aspath"]["segments"][0]["list"]
                        .as_array()
                        .map(|l| l.iter().filter_map(|a| a.as_u64()).collect::<Vec<_>>())
                });
            let installed = kernel.contains("proto bgp") && kernel.contains("via 192.0.2.5");
            async move { path.filter(|_| installed) }
        })
        .await
    }

    /// Waits until neither ISP has the address (ISP B: not in its kernel either).
    async fn gone_at_both(&self, within: Duration) {
        let prefix = format!("{ADDRESS}/32");
        self.isp_a.wait_gone(&prefix, within).await;
        eventually(within, "the /32 gone from ISP B's kernel", || {
            let kernel =
                run(Command::new("ip").args(["-n", &self.isp_b, "route", "show", &prefix]));
            async move { kernel.trim().is_empty().then_some(()) }
        })
        .await;
    }

    /// Waits until Service `name` holds an address; returns it.
    async fn allocated(&self, name: &str) -> String {
        let api = self.services();
        eventually(
            Duration::from_secs(20),
            &format!("{name} allocated"),
            || {
                let api = api.clone();
                let name = name.to_string();
                async move {
                    let s = api.get(&name).await.ok()?.status?;
                    let ok = condition(s.conditions.as_deref()?, conditions::ADDRESS_ALLOCATED)?
                        .status
                        == "True";
                    let ip = s.load_balancer?.ingress?.first()?.ip.clone()?;
                    ok.then_some(ip)
                }
            },
        )
        .await
    }

    /// Waits until Service `name`'s condition `type_` has `reason` and a message that
    /// satisfies `ok`; returns the message.
    async fn condition(
        &self,
        name: &str,
        type_: &str,
        reason: &str,
        ok: impl Fn(&str) -> bool,
    ) -> String {
        let api = self.services();
        eventually(
            Duration::from_secs(20),
            &format!("{name} {type_} ({reason})"),
            || {
                let api = api.clone();
                let name = name.to_string();
                let ok = &ok;
                async move {
                    let s = api.get(&name).await.ok()?.status?;
                    let c = condition(s.conditions.as_deref()?, type_)?;
                    (c.reason == reason && ok(&c.message)).then(|| c.message.clone())
                }
            },
        )
        .await
    }

    async fn scale(&self, replicas: i32) {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.ns);
        api.patch(
            "hello",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
    }
}

fn sysctl(ns: &str, setting: &str) {
    run(Command::new("ip").args(["netns", "exec", ns, "sysctl", "-qw", setting]));
}

/// The address travels from the pool to both ISPs and traffic from ISP B reaches the Pods,
/// through restarts, scaling, a node's death and the Service's deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_from_an_isp_reaches_the_pods_through_our_border() {
    let _g = serial().await;
    let mut site = Site::up().await;
    site.declare_edge().await;
    let mut controller = RunningController::start(site.client.clone(), &site.ns).await;
    let (stop, daemon) = start_daemon(
        &site.client,
        &site.ns,
        &site.lab,
        &site.bird,
        Metrics::new(),
    );
    site.isp_a.wait_route(OWN, Duration::from_secs(40)).await;

    site.app(2).await;
    site.service("hello", "hello").await;
    assert_eq!(site.allocated("hello").await, ADDRESS);
    let prefix = format!("{ADDRESS}/32");
    let at_a = site
        .isp_a
        .wait_route(&prefix, Duration::from_secs(60))
        .await;
    assert_eq!(at_a.communities, vec![(64500, 100)]);
    assert_eq!(at_a.as_path, vec![65000]);
    assert_eq!(
        site.at_isp_b(SECONDS).await,
        vec![65000, 65000, 65000],
        "prepend 2"
    );
    let announced = conditions::announced("edge1");
    let both = format!("{prefix} announced on isp-a, isp-b via 10.75.0.11, 10.75.0.12");
    site.condition("hello", &announced, reasons::ANNOUNCED, |m| m == both)
        .await;
    let serving = site.answered(SECONDS).await;
    eprintln!(
        "ISP B's requests are served by {}",
        site.node_names[serving]
    );

    // The controller restarts: the address stays, the route never leaves.
    controller.stop().await;
    controller = RunningController::start(site.client.clone(), &site.ns).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(site.allocated("hello").await, ADDRESS);
    assert!(
        site.isp_a.route(&prefix).is_some(),
        "withdrawn across a controller restart"
    );
    site.answered(SECONDS).await;

    // Local policy: no endpoint, no route; endpoints back, route back.
    site.scale(0).await;
    site.gone_at_both(SECONDS).await;
    assert_eq!(site.fetch(), None, "answered with no Pod");
    site.condition("hello", &announced, reasons::NO_NEXT_HOP, |_| true)
        .await;
    site.scale(2).await;
    site.isp_a
        .wait_route(&prefix, Duration::from_secs(60))
        .await;
    site.at_isp_b(SECONDS).await;
    let serving = site.answered(SECONDS).await;

    // The serving node dies (its processes killed, its link down): once its Node is NotReady
    // the border routes to the other node only.
    let other = 1 - serving;
    site.nodes[serving].take();
    run(Command::new("ip").args(["-n", &site.node_ns[serving], "link", "set", "eth0", "down"]));
    let killed = Instant::now();
    let moved = site.answered(Duration::from_secs(150)).await;
    assert_eq!(moved, other);
    eprintln!(
        "node {} killed: traffic on {} after {:?} (the Node's NotReady grace period: 15 s)",
        site.node_names[serving],
        site.node_names[other],
        killed.elapsed()
    );
    let only = format!(
        "{prefix} announced on isp-a, isp-b via 10.75.0.1{}",
        other + 1
    );
    site.condition("hello", &announced, reasons::ANNOUNCED, |m| m == only)
        .await;

    // A second Service (no Pod yet) waits for the pool's only address; deleting the first
    // withdraws it and hands the address over; once it selects the app, it is announced.
    site.service("late", "none-yet").await;
    site.condition(
        "late",
        conditions::ADDRESS_ALLOCATED,
        reasons::POOL_EXHAUSTED,
        |_| true,
    )
    .await;
    site.services()
        .delete("hello", &DeleteParams::default())
        .await
        .unwrap();
    let deleted = Instant::now();
    site.gone_at_both(SECONDS).await;
    eprintln!(
        "Service deleted: withdrawn from both ISPs in {:?}",
        deleted.elapsed()
    );
    assert_eq!(site.allocated("late").await, ADDRESS);
    site.services()
        .patch(
            "late",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"selector": {"app": "hello"}}})),
        )
        .await
        .unwrap();
    site.isp_a.wait_route(&prefix, SECONDS).await;
    site.answered(SECONDS).await;

    // ISP A fails: the address stays announced through ISP B, the requests are answered, and
    // the condition names the link that carries it.
    let isp_a = site.isp_a.name.clone();
    site.lab.kill(&isp_a);
    site.condition("late", &announced, reasons::ANNOUNCED, |m| {
        m.starts_with(&format!("{prefix} announced on isp-b via"))
    })
    .await;
    site.at_isp_b(SECONDS).await;
    site.answered(SECONDS).await;

    stop_daemon(stop, daemon).await;
    controller.stop().await;
}

/// Polls `done` every 5 ms from `t0` until it holds; the time since `t0`.
async fn until(t0: Instant, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let within = Duration::from_secs(60);
    loop {
        if done() {
            return t0.elapsed();
        }
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl Site {
    fn at_both(&self) -> bool {
        self.isp_a.route(&format!("{ADDRESS}/32")).is_some() && self.in_isp_b_kernel()
    }

    fn gone_from_both(&self) -> bool {
        self.isp_a.route(&format!("{ADDRESS}/32")).is_none() && !self.in_isp_b_kernel()
    }

    /// The address Service `name` holds, if any.
    async fn address(&self, name: &str) -> Option<String> {
        let s = self.services().get(name).await.ok()?.status?;
        s.load_balancer?.ingress?.first()?.ip.clone()
    }

    /// How many ready endpoints Service `name`'s EndpointSlices list.
    async fn ready_endpoints(&self, name: &str) -> usize {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.ns);
        let lp = ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}={name}"));
        api.list(&lp)
            .await
            .unwrap()
            .items
            .iter()
            .flat_map(|s| &s.endpoints)
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count()
    }

    fn in_isp_b_kernel(&self) -> bool {
        run(Command::new("ip").args(["-n", &self.isp_b, "route", "show", &format!("{ADDRESS}/32")]))
            .contains("proto bgp")
    }

    /// `birdc configure` of the border's configuration after `edit` changed its text.
    fn birdc_configure(&self, edit: impl FnOnce(String) -> String) {
        let main = self.bird.dir.join("conf").join(routing::apply::MAIN_FILE);
        let text = std::fs::read_to_string(&main).unwrap();
        std::fs::write(&main, edit(text)).unwrap();
        let out = run(Command::new(support::binary("birdc"))
            .arg("-s")
            .arg(&self.bird.socket)
            .arg("configure")
            .arg(format!("\"{}\"", main.display())));
        assert!(out.contains("Reconfigured"), "birdc configure: {out}");
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `hack/bench-lb.sh`: a Service created → its address at both ISPs → the first answered
/// request from ISP B, and the endpoints lost (scaled to zero) → the address gone from both
/// ISPs; beside the same announcement and withdrawal made by hand (the route line in BIRD's
/// configuration, `birdc configure`, the edge daemon stopped) on the same site. Medians of
/// `GW_BENCH_LB_ROUNDS` rounds (default 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: hack/bench-lb.sh"]
async fn bench_lb() {
    let rounds: usize = std::env::var("GW_BENCH_LB_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let _g = serial().await;
    let site = Site::up().await;
    site.declare_edge().await;
    let controller = RunningController::start(site.client.clone(), &site.ns).await;
    let metrics = Metrics::new();
    let _metrics = serve_metrics(metrics.clone()).await;
    let (stop, daemon) = start_daemon(&site.client, &site.ns, &site.lab, &site.bird, metrics);
    site.isp_a.wait_route(OWN, Duration::from_secs(40)).await;
    site.app(2).await;
    // Warm-up: both Pods ready and the path proven once.
    site.service("hello", "hello").await;
    site.answered(Duration::from_secs(120)).await;
    let prefix = format!("{ADDRESS}/32");

    let (mut alloc, mut both, mut first, mut withdraw, mut scaled) =
        (vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        site.services()
            .delete("hello", &DeleteParams::default())
            .await
            .unwrap();
        until(Instant::now(), "deleted Service withdrawn", || {
            site.gone_from_both()
        })
        .await;
        // Every probe every 5 ms from the API write on, each until it holds.
        let t0 = Instant::now();
        site.service("hello", "hello").await;
        let (mut t_alloc, mut t_a, mut t_b, mut t_req) = (None, None, None, None);
        while t_req.is_none() || t_a.is_none() || t_b.is_none() || t_alloc.is_none() {
            let now = || Some(t0.elapsed());
            if t_alloc.is_none() && site.address("hello").await.is_some() {
                t_alloc = now();
            }
            if t_a.is_none() && site.isp_a.route(&prefix).is_some() {
                t_a = now();
            }
            if t_b.is_none() && site.in_isp_b_kernel() {
                t_b = now();
            }
            if t_req.is_none() && site.fetch().is_some() {
                t_req = now();
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "announcement not within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        alloc.push(t_alloc.unwrap());
        both.push(t_a.max(t_b).unwrap());
        first.push(t_req.unwrap());
        // Endpoint loss: from the moment the EndpointSlice has no ready endpoint left.
        let t0 = Instant::now();
        site.scale(0).await;
        let (mut t_eps, mut t_gone) = (None, None);
        while t_gone.is_none() || t_eps.is_none() {
            if t_eps.is_none() && site.ready_endpoints("hello").await == 0 {
                t_eps = Some(t0.elapsed());
            }
            if t_gone.is_none() && site.gone_from_both() {
                t_gone = Some(t0.elapsed());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "withdrawal not within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (t_eps, t_gone) = (t_eps.unwrap(), t_gone.unwrap());
        withdraw.push(t_gone.saturating_sub(t_eps));
        scaled.push(t_gone);
        site.scale(2).await;
        site.answered(Duration::from_secs(60)).await;
        eprintln!(
            "round {round}: allocated {:?}, at both ISPs {:?}, first request {:?}; scaled to zero: endpoints gone {t_eps:?}, withdrawn {t_gone:?}",
            alloc[round], both[round], first[round]
        );
    }

    // By hand, on the same site: the edge daemon stopped, its route line taken out of BIRD's
    // configuration and put back, `birdc configure` each time.
    stop_daemon(stop, daemon).await;
    let line = std::fs::read_to_string(site.bird.dir.join("conf").join(routing::apply::MAIN_FILE))
        .unwrap()
        .lines()
        .find(|l| l.contains(&format!("route {prefix} via")))
        .expect("the edge's route line")
        .to_string();
    let (mut hand_withdraw, mut hand_both, mut hand_first) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        let t0 = Instant::now();
        site.birdc_configure(|t| t.replace(&format!("{line}\n"), ""));
        hand_withdraw.push(until(t0, "withdrawn by hand", || site.gone_from_both()).await);
        let t0 = Instant::now();
        site.birdc_configure(|t| {
            t.replace(
                "protocol static gw_svc_v4 {\n  ipv4;\n",
                &format!("protocol static gw_svc_v4 {{\n  ipv4;\n{line}\n"),
            )
        });
        let (mut t_both, mut t_req) = (None, None);
        while t_both.is_none() || t_req.is_none() {
            if t_both.is_none() && site.at_both() {
                t_both = Some(t0.elapsed());
            }
            if t_req.is_none() && site.fetch().is_some() {
                t_req = Some(t0.elapsed());
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "not announced by hand within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        hand_both.push(t_both.unwrap());
        hand_first.push(t_req.unwrap());
        eprintln!(
            "hand round {round}: withdrawn {:?}, at both ISPs {:?}, first request {:?}",
            hand_withdraw[round], hand_both[round], hand_first[round]
        );
    }

    let row = |what: &str, ours: Duration, hand: Option<Duration>, target: &str| {
        let (hand, ratio) = hand.map_or(("-".to_string(), "-".to_string()), |h| {
            (
                format!("{:.0} ms", h.as_secs_f64() * 1e3),
                format!("{:.2}x", ours.as_secs_f64() / h.as_secs_f64()),
            )
        });
        println!(
            "{what:<52} {:>9.0} ms {hand:>12} {ratio:>7}   {target}",
            ours.as_secs_f64() * 1e3
        );
    };
    println!(
        "\nbench-lb ({rounds} rounds, medians): Groundwork vs the same by hand with birdc, same site"
    );
    println!(
        "{:<52} {:>12} {:>12} {:>7}   target",
        "", "groundwork", "by hand", "ratio"
    );
    row(
        "Service created -> address allocated",
        median(&mut alloc),
        None,
        "",
    );
    row(
        "announce: -> at both ISPs (RIB, ISP B's kernel)",
        median(&mut both),
        Some(median(&mut hand_both)),
        "<= 2 s, <= 1.5x",
    );
    row(
        "announce: -> first request from ISP B answered",
        median(&mut first),
        Some(median(&mut hand_first)),
        "<= 2 s, <= 1.5x",
    );
    row(
        "withdraw: endpoints lost -> gone from both ISPs",
        median(&mut withdraw),
        Some(median(&mut hand_withdraw)),
        "<= 2 s, <= 1.5x",
    );
    println!(
        "(by hand: from `birdc configure`; Groundwork: from the Service's creation, from the EndpointSlice's last ready endpoint leaving)"
    );
    controller.stop().await;
}
