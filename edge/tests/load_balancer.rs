//! End-to-end: LoadBalancer Services over our own BGP edge. A real kube-apiserver (from
//! `GROUNDWORK_TEST_CONTROLPLANE`), the controller and the edge daemon in-process, BIRD in a
//! "border" network namespace, two ISPs (GoBGP) and a "nodes" namespace holding the node
//! addresses the border routes Service addresses to. The controller and the daemon run under
//! the chart's ServiceAccounts (helm install). Nodes and EndpointSlices are created by the
//! test, as the kubelet and the endpoint controller would. Needs root, the peers and helm;
//! panics without them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../routing/tests/support/mod.rs"]
mod support;

mod common;

use std::process::Command;
use std::time::Duration;

use common::{
    condition, event_seen, install_crds, obj, scrape, series, serve_metrics, start_daemon,
    stop_daemon,
};
use crds::service::{LOAD_BALANCER_CLASS, annotations, conditions};
use crds::{BorderRouter, UpstreamLink};
use e2e::{
    AuditWindow, RunningController, admin_client, client_as_service_account, eventually, helm,
    namespace, repo_root,
};
use edge::metrics::Metrics;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{Gobgp, GobgpNeighbor, Lab, serial};

const OWN: &str = "203.0.113.0/24";
/// Four addresses: enough to exhaust in a test.
const POOL: &str = "203.0.113.64/30";
const NODE_NET: &str = "10.99.0.0/24";
const OWN6: &str = "2001:db8:100::/48";
const POOL6: &str = "2001:db8:100:64::/126";
const NODE_NET6: &str = "2001:db8:99::/64";
/// How fast a withdrawal must reach both ISPs.
const WITHDRAW: Duration = Duration::from_secs(5);

/// A Node with an InternalIP and a Ready condition (its status written as the kubelet would).
async fn node(client: &Client, name: &str, ips: &[&str], ready: bool) {
    let nodes: Api<Node> = Api::all(client.clone());
    let _ = nodes
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": name}})),
        )
        .await;
    node_ready(client, name, ips, ready).await;
}

async fn node_ready(client: &Client, name: &str, ips: &[&str], ready: bool) {
    let nodes: Api<Node> = Api::all(client.clone());
    let addresses: Vec<_> = ips
        .iter()
        .map(|ip| json!({"type": "InternalIP", "address": ip}))
        .collect();
    let status = json!({"status": {
        "addresses": addresses,
        "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                        "reason": "KubeletReady", "message": "test",
                        "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// A LoadBalancer Service of our class with `externalTrafficPolicy: Local`.
async fn service(client: &Client, ns: &str, name: &str, port: i32) {
    service_with(client, ns, name, port, "Local", json!({})).await;
}

/// A LoadBalancer Service of our class with the given `externalTrafficPolicy` and annotations.
/// No selector: its EndpointSlices are the test's alone, also where a kube-controller-manager
/// runs.
async fn service_with(
    client: &Client,
    ns: &str,
    name: &str,
    port: i32,
    policy: &str,
    annotations: serde_json::Value,
) {
    let api: Api<Service> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &obj(json!({
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": LOAD_BALANCER_CLASS,
                     "externalTrafficPolicy": policy,
                     "ports": [{"port": port, "protocol": "TCP"}]}
        })),
    )
    .await
    .unwrap();
}

/// The EndpointSlice of Service `name`: one ready endpoint on each of `nodes`.
async fn endpoints(client: &Client, ns: &str, name: &str, nodes: &[&str]) {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let eps: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"addresses": [format!("10.244.{i}.5")], "nodeName": n, "conditions": {"ready": true}}))
        .collect();
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-1"), "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4", "endpoints": eps,
        "ports": [{"port": 8080, "protocol": "TCP"}]
    });
    api.patch(
        &format!("{name}-1"),
        &PatchParams::apply("lb-e2e").force(),
        &Patch::Apply(&slice),
    )
    .await
    .unwrap();
}

/// Waits up to `within` until Service `name` holds an allocated address; returns it.
async fn allocated_within(api: &Api<Service>, name: &str, within: Duration) -> String {
    eventually(within, &format!("{name} allocated"), || {
        let api = api.clone();
        let name = name.to_string();
        async move {
            let s = api.get(&name).await.ok()?.status?;
            let ok = condition(s.conditions.as_deref()?, conditions::ADDRESS_ALLOCATED)?.status
                == "True";
            let ip = s.load_balancer?.ingress?.first()?.ip.clone()?;
            ok.then_some(ip)
        }
    })
    .await
}

/// [`allocated_within`] 20 s.
async fn allocated(api: &Api<Service>, name: &str) -> String {
    allocated_within(api, name, Duration::from_secs(20)).await
}

/// Waits until Service `name`'s Announced condition has `status`, `reason` and, when given,
/// `message`.
async fn announced(
    api: &Api<Service>,
    name: &str,
    status: &str,
    reason: &str,
    message: Option<&str>,
) {
    let type_ = conditions::announced("edge1");
    eventually(
        Duration::from_secs(20),
        &format!("{name} {type_}={status} ({reason})"),
        || {
            let (api, name, type_) = (api.clone(), name.to_string(), type_.clone());
            async move {
                let s = api.get(&name).await.ok()?.status?;
                let c = condition(s.conditions.as_deref()?, &type_)?;
                (c.status == status && c.reason == reason && message.is_none_or(|m| m == c.message))
                    .then_some(())
            }
        },
    )
    .await
}

/// The kernel route of `prefix` in namespace `ns` (`ip route show`).
fn kernel_route(ns: &str, prefix: &str) -> String {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    let out = Command::new(support::binary("ip"))
        .args([family, "-n", ns, "route", "show", prefix])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the daemon's `/metrics` shows `expected` (announced, next hops) for the
/// Service with `labels` (`None`: no series).
async fn service_series(addr: std::net::SocketAddr, labels: &str, expected: Option<(f64, f64)>) {
    eventually(
        Duration::from_secs(5),
        &format!("service series {labels} = {expected:?}"),
        || async move {
            let body = scrape(addr).await;
            let announced = series(&body, "groundwork_edge_service_announced", labels);
            let hops = series(&body, "groundwork_edge_service_next_hops", labels);
            (announced.zip(hops) == expected && (expected.is_some() || announced.is_none()))
                .then_some(())
        },
    )
    .await;
}

/// Waits until the controller's metric `name{labels}` satisfies `ok`.
async fn controller_series(
    controller: &RunningController,
    name: &str,
    labels: &str,
    ok: impl Fn(f64) -> bool,
) {
    eventually(
        Duration::from_secs(10),
        &format!("controller {name}{{{labels}}}"),
        || {
            let mut body = String::new();
            let encoded =
                prometheus_client::encoding::text::encode(&mut body, &controller.metrics.registry);
            let done = encoded.is_ok() && series(&body, name, labels).is_some_and(&ok);
            async move { done.then_some(()) }
        },
    )
    .await;
}

/// Waits until `prefix` has left every ISP's RIB (at most [`WITHDRAW`]) and prints how long it
/// took.
async fn both_gone(isps: &[&Gobgp], prefix: &str) {
    let started = std::time::Instant::now();
    for isp in isps {
        isp.wait_gone(prefix, WITHDRAW).await;
    }
    eprintln!(
        "{prefix} withdrawn from every ISP in {:?}",
        started.elapsed()
    );
}

/// Service → address from the pool → announced to both ISPs with each link's communities and
/// prepends, routed to the node with the endpoint; endpoints gone, node NotReady, Service
/// deleted → withdrawn within seconds; the address survives a controller restart; an exhausted
/// pool is a condition and an Event; a deleted Service's address goes to the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_service_announced_to_both_isps() {
    let _g = serial().await;
    let mut lab = Lab::new();
    let client = admin_client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "lb").await;

    let border = lab.netns("border");
    let isp_a_ns = lab.netns("ispa");
    let isp_b_ns = lab.netns("ispb");
    let nodes_ns = lab.netns("nodes");
    lab.veth(
        (&border, "upa", &["192.0.2.1/30", "2001:db8:a::1/64"]),
        (&isp_a_ns, "toborder", &["192.0.2.2/30", "2001:db8:a::2/64"]),
    );
    lab.veth(
        (&border, "upb", &["192.0.2.5/30", "2001:db8:b::1/64"]),
        (&isp_b_ns, "toborder", &["192.0.2.6/30", "2001:db8:b::2/64"]),
    );
    lab.veth(
        (&border, "nodes", &["10.99.0.1/24", "2001:db8:99::1/64"]),
        (
            &nodes_ns,
            "nodes",
            &["10.99.0.11/24", "10.99.0.12/24", "2001:db8:99::11/64"],
        ),
    );
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let neighbor = |address: &str| GobgpNeighbor {
        address: address.parse().unwrap(),
        peer_as: 65000,
    };
    let isp_a = lab
        .start_gobgp(
            &isp_a_ns,
            64500,
            "192.0.2.2",
            &[neighbor("192.0.2.1"), neighbor("2001:db8:a::1")],
        )
        .await;
    let isp_b = lab
        .start_gobgp(
            &isp_b_ns,
            64510,
            "192.0.2.6",
            &[neighbor("192.0.2.5"), neighbor("2001:db8:b::1")],
        )
        .await;

    let pp = PostParams::default();
    let routers: Api<BorderRouter> = Api::namespaced(client.clone(), &ns);
    // Admission: a pool outside ownPrefixes is refused by the API server (CEL).
    let router = |pools: &[&str]| {
        obj::<BorderRouter>(json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "BorderRouter",
            "metadata": {"name": "edge1"},
            "spec": {"localASN": 65000, "routerID": "192.0.2.1", "ownPrefixes": [OWN, OWN6],
                     "serviceAddressPools": [{"name": "public", "cidrs": pools}],
                     "nodeNetworks": [NODE_NET, NODE_NET6]}
        }))
    };
    let refused = routers
        .create(&pp, &router(&[POOL, "198.51.100.0/30"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, kube::Error::Api(e) if e.code == 422
            && e.message.contains("every service address pool CIDR must lie inside one of ownPrefixes")),
        "{refused:?}"
    );
    routers.create(&pp, &router(&[POOL, POOL6])).await.unwrap();
    let links: Api<UpstreamLink> = Api::namespaced(client.clone(), &ns);
    for (name, peer_asn, (local, peer), (local6, peer6), export) in [
        (
            "isp-a",
            64500,
            ("192.0.2.1", "192.0.2.2"),
            ("2001:db8:a::1", "2001:db8:a::2"),
            json!({"prefixes": [OWN, OWN6], "communities": ["64500:100"]}),
        ),
        (
            "isp-b",
            64510,
            ("192.0.2.5", "192.0.2.6"),
            ("2001:db8:b::1", "2001:db8:b::2"),
            json!({"prefixes": [OWN, OWN6], "communities": ["64510:7:1"], "prepend": 2}),
        ),
    ] {
        links
            .create(&pp, &obj(json!({
                "apiVersion": "groundwork.dev/v1alpha1", "kind": "UpstreamLink",
                "metadata": {"name": name},
                "spec": {"provider": name, "routerRef": "edge1",
                         "bgp": {"peerASN": peer_asn, "ipv4": {"localAddress": local, "peerAddress": peer},
                                 "ipv6": {"localAddress": local6, "peerAddress": peer6},
                                 "holdTimeSeconds": 3, "keepaliveSeconds": 1},
                         "import": {"mode": "DefaultOnly", "bogonFilter": false},
                         "export": export}
            })))
            .await
            .unwrap();
    }

    let n1 = format!("{ns}-n1");
    let n2 = format!("{ns}-n2");
    let n1_ips = ["10.99.0.11", "2001:db8:99::11"];
    node(&client, &n1, &n1_ips, true).await;
    node(&client, &n2, &["10.99.0.12"], true).await;

    // The controller and the daemon run under the chart's ServiceAccounts: exactly its RBAC.
    let release_ns = namespace(&client, "lb-system").await;
    // Unique like the namespace (a PID alone repeats, and a failed run leaves its ClusterRoles).
    let release = release_ns.replace("lb-system-", "lb");
    let chart = repo_root().join("charts/groundwork");
    helm(&[
        "install",
        &release,
        chart.to_str().unwrap(),
        "--namespace",
        &release_ns,
    ]);
    let controller_sa =
        client_as_service_account(&release_ns, &format!("{release}-controller")).await;
    let edge_sa = client_as_service_account(&release_ns, &format!("{release}-edge")).await;
    let mut controller = RunningController::start(controller_sa.clone(), &ns).await;
    let metrics = Metrics::new();
    let metrics_addr = serve_metrics(metrics.clone()).await;
    let (stop, daemon) = start_daemon(&edge_sa, &ns, &lab, &bird, metrics);
    isp_a.wait_route(OWN, Duration::from_secs(40)).await;
    isp_b.wait_route(OWN, Duration::from_secs(40)).await;

    // "early" takes the pool's lowest address, so web gets another one; early goes again
    // before the controller restarts below, so a controller that forgot web's address would
    // move it.
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    service(&client, &ns, "early", 80).await;
    let early_ip = allocated(&services, "early").await;
    // A Service with a ready endpoint on n1: an address from the pool, announced on both links.
    service(&client, &ns, "web", 80).await;
    endpoints(&client, &ns, "web", &[&n1]).await;
    let ip = allocated(&services, "web").await;
    assert!(
        POOL.parse::<ipnet::IpNet>()
            .unwrap()
            .contains(&ip.parse::<std::net::IpAddr>().unwrap()),
        "{ip} not in {POOL}"
    );
    let host = format!("{ip}/32");
    let at_a = isp_a.wait_route(&host, Duration::from_secs(10)).await;
    assert_eq!(at_a.as_path, vec![65000]);
    assert_eq!(at_a.communities, vec![(64500, 100)]);
    let at_b = isp_b.wait_route(&host, Duration::from_secs(10)).await;
    assert_eq!(at_b.as_path, vec![65000, 65000, 65000], "prepend 2");
    assert_eq!(at_b.large_communities, vec![(64510, 7, 1)]);
    let first = format!("{host} announced on isp-a, isp-b via 10.99.0.11");
    announced(&services, "web", "True", "Announced", Some(&first)).await;
    // The border's forwarding table sends it to the node.
    let route = kernel_route(&border, &host);
    assert!(route.contains("via 10.99.0.11"), "kernel route: {route:?}");
    let labels = format!("namespace=\"{ns}\",service=\"web\"");
    service_series(metrics_addr, &labels, Some((1.0, 1.0))).await;

    // Idle: nothing changes, so neither the controller nor the daemon writes anything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = AuditWindow::open_with_core(&ns);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = window.close::<Service>(&client, "web").await;
    assert!(
        writes.is_empty(),
        "an idle site must cause no writes, got {writes:?}"
    );

    // The controller restarts: web keeps its address (read back from its status) although a
    // lower one is free now; the next Service gets that one, never web's.
    services
        .delete("early", &DeleteParams::default())
        .await
        .unwrap();
    controller.stop().await;
    controller = RunningController::start(controller_sa, &ns).await;
    controller_series(
        &controller,
        "groundwork_reconciles_total",
        "kind=\"Service\"",
        |v| v >= 1.0,
    )
    .await;
    assert_eq!(
        allocated(&services, "web").await,
        ip,
        "address changed across a restart"
    );
    service(&client, &ns, "api", 443).await;
    assert_eq!(allocated(&services, "api").await, early_ip);
    assert_ne!(early_ip, ip, "two Services never share an address unasked");

    // Local policy: the endpoint moves to n2 → next hop n2; endpoints gone → withdrawn.
    endpoints(&client, &ns, "web", &[&n2]).await;
    let moved = format!("{host} announced on isp-a, isp-b via 10.99.0.12");
    announced(&services, "web", "True", "Announced", Some(&moved)).await;
    let route = kernel_route(&border, &host);
    assert!(
        route.contains("via 10.99.0.12") && !route.contains("10.99.0.11"),
        "kernel route: {route:?}"
    );
    endpoints(&client, &ns, "web", &[]).await;
    both_gone(&[&isp_a, &isp_b], &host).await;
    announced(&services, "web", "False", "NoNextHop", None).await;

    // Back on n1, then n1 goes NotReady → withdrawn.
    endpoints(&client, &ns, "web", &[&n1]).await;
    isp_a.wait_route(&host, Duration::from_secs(10)).await;
    isp_b.wait_route(&host, Duration::from_secs(10)).await;
    node_ready(&client, &n1, &n1_ips, false).await;
    both_gone(&[&isp_a, &isp_b], &host).await;
    announced(&services, "web", "False", "NoNextHop", None).await;
    node_ready(&client, &n1, &n1_ips, true).await;
    isp_a.wait_route(&host, Duration::from_secs(10)).await;

    // web asks for api's address: refused (AddressInUse), and web keeps its working address,
    // still announced; asking for nothing again makes it whole.
    let ask = |address: Option<&str>| json!({"metadata": {"annotations": {annotations::ADDRESS: address}}});
    let pp_merge = PatchParams::default();
    services
        .patch("web", &pp_merge, &Patch::Merge(&ask(Some(&early_ip))))
        .await
        .unwrap();
    let refused = eventually(Duration::from_secs(10), "web: AddressInUse", || {
        let services = services.clone();
        async move {
            let s = services.get("web").await.ok()?.status?;
            let c = condition(s.conditions.as_deref()?, conditions::ADDRESS_ALLOCATED)?;
            let kept = s.load_balancer?.ingress?.first()?.ip.clone()?;
            (c.reason == "AddressInUse").then_some(kept)
        }
    })
    .await;
    assert_eq!(refused, ip, "a refused change keeps the working address");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(isp_a.route(&host).is_some() && isp_b.route(&host).is_some());
    announced(&services, "web", "True", "Announced", None).await;
    services
        .patch("web", &pp_merge, &Patch::Merge(&ask(None)))
        .await
        .unwrap();
    assert_eq!(allocated(&services, "web").await, ip);

    // Exhaust the pool (4 addresses: api, web, two more), then one too many. fourth asks for
    // the pool's last address (the annotation is honoured: it is free and in the pool), third
    // gets the lowest free one.
    service_with(
        &client,
        &ns,
        "fourth",
        80,
        "Local",
        json!({annotations::ADDRESS: "203.0.113.67"}),
    )
    .await;
    assert_eq!(allocated(&services, "fourth").await, "203.0.113.67");
    // third (policy Cluster) has an endpoint on n1: routed to every Ready node, ECMP.
    let shared = json!({annotations::SHARING_KEY: "third"});
    service_with(&client, &ns, "third", 80, "Cluster", shared.clone()).await;
    endpoints(&client, &ns, "third", &[&n1]).await;
    let third = format!("{}/32", allocated(&services, "third").await);
    let ecmp = format!("{third} announced on isp-a, isp-b via 10.99.0.11, 10.99.0.12");
    announced(&services, "third", "True", "Announced", Some(&ecmp)).await;
    let route = kernel_route(&border, &third);
    assert!(
        route.contains("nexthop via 10.99.0.11") && route.contains("nexthop via 10.99.0.12"),
        "kernel route: {route:?}"
    );
    assert_eq!(third, "203.0.113.66/32");
    // With the same sharing key and another port, a Service shares third's address (asked
    // for); its endpoint on n2 adds n2 for the shared /32 (union of the Services' next hops).
    service_with(&client, &ns, "third-tls", 443, "Local", shared).await;
    endpoints(&client, &ns, "third-tls", &[&n2]).await;
    assert_eq!(
        format!("{}/32", allocated(&services, "third-tls").await),
        third
    );
    let alone = format!("{third} announced on isp-a, isp-b via 10.99.0.12");
    announced(&services, "third-tls", "True", "Announced", Some(&alone)).await;
    service(&client, &ns, "late", 80).await;
    let exhausted = eventually(Duration::from_secs(20), "late: PoolExhausted", || {
        let services = services.clone();
        async move {
            let s = services.get("late").await.ok()?.status?;
            let c = condition(s.conditions.as_deref()?, conditions::ADDRESS_ALLOCATED)?;
            (c.status == "False" && c.reason == "PoolExhausted").then(|| c.message.clone())
        }
    })
    .await;
    assert!(exhausted.contains("edge1/public"), "{exhausted}");
    event_seen(&client, &ns, "PoolExhausted", "late").await;
    let pool = "pool=\"edge1/public\"";
    controller_series(
        &controller,
        "groundwork_service_pool_addresses_used",
        pool,
        |v| v == 4.0,
    )
    .await;
    controller_series(
        &controller,
        "groundwork_service_pool_addresses",
        pool,
        |v| v == 8.0,
    )
    .await;

    // Deleting web withdraws its address at once and frees it for the waiting Service.
    isp_b.wait_route(&host, Duration::from_secs(10)).await;
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    both_gone(&[&isp_a, &isp_b], &host).await;
    // At once: the deletion wakes the Services waiting for an address (no retry timer).
    assert_eq!(
        allocated_within(&services, "late", Duration::from_secs(5)).await,
        ip,
        "the freed address goes to late"
    );
    service_series(metrics_addr, &labels, None).await;

    // A Service that stops being a LoadBalancer loses what the controller wrote (its address
    // and condition), by an empty server-side apply under the controller's field manager.
    let to_cluster_ip = json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": null,
                                        "loadBalancerClass": null, "allocateLoadBalancerNodePorts": null,
                                        "ports": [{"port": 443, "protocol": "TCP", "nodePort": null}]}});
    services
        .patch(
            "api",
            &PatchParams::default(),
            &Patch::Merge(&to_cluster_ip),
        )
        .await
        .unwrap();
    eventually(Duration::from_secs(10), "api's status cleared", || {
        let services = services.clone();
        async move {
            let s = services.get("api").await.ok()?.status.unwrap_or_default();
            let ingress = s
                .load_balancer
                .and_then(|lb| lb.ingress)
                .unwrap_or_default();
            let ours = s
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_.contains("groundwork.dev/"));
            (ingress.is_empty() && !ours).then_some(())
        }
    })
    .await;

    // IPv6: the API server is dual-stack (hack/controlplane.sh), so an IPv6 Service gets its
    // address from the pool's IPv6 CIDR by the controller itself.
    isp_a.wait_route(OWN6, Duration::from_secs(20)).await;
    isp_b.wait_route(OWN6, Duration::from_secs(20)).await;
    let api: Api<Service> = Api::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &obj(json!({
            "metadata": {"name": "web6"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": LOAD_BALANCER_CLASS,
                     "externalTrafficPolicy": "Local", "ipFamilies": ["IPv6"],
                     "ipFamilyPolicy": "SingleStack",
                     "ports": [{"port": 80, "protocol": "TCP"}]}
        })),
    )
    .await
    .unwrap();
    endpoints(&client, &ns, "web6", &[&n1]).await;
    let ip6 = allocated(&services, "web6").await;
    assert!(
        POOL6
            .parse::<ipnet::IpNet>()
            .unwrap()
            .contains(&ip6.parse::<std::net::IpAddr>().unwrap()),
        "{ip6} not in {POOL6}"
    );
    let host6 = format!("{ip6}/128");
    let at_a = isp_a.wait_route(&host6, Duration::from_secs(10)).await;
    assert_eq!(
        (at_a.as_path, at_a.communities),
        (vec![65000], vec![(64500, 100)])
    );
    let at_b = isp_b.wait_route(&host6, Duration::from_secs(10)).await;
    assert_eq!(
        (at_b.as_path, at_b.large_communities),
        (vec![65000, 65000, 65000], vec![(64510, 7, 1)])
    );
    let v6 = format!("{host6} announced on isp-a, isp-b via 2001:db8:99::11");
    announced(&services, "web6", "True", "Announced", Some(&v6)).await;
    let route = kernel_route(&border, &host6);
    assert!(
        route.contains("via 2001:db8:99::11"),
        "kernel route: {route:?}"
    );
    services
        .delete("web6", &DeleteParams::default())
        .await
        .unwrap();
    both_gone(&[&isp_a, &isp_b], &host6).await;

    stop_daemon(stop, daemon).await;
    controller.stop().await;
    helm(&["uninstall", &release, "--namespace", &release_ns]);
    let nodes: Api<Node> = Api::all(client.clone());
    for n in [&n1, &n2] {
        let _ = nodes.delete(n, &DeleteParams::default()).await;
    }
}
