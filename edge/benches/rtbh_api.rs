//! RTBH latency through the API: BlackholeRoute created → its /32 in the ISP's RIB, with the
//! edge daemon running in-process against the real kube-apiserver (`GROUNDWORK_TEST_CONTROLPLANE`,
//! CRDs installed), BIRD in a network namespace and GoBGP as the ISP. Beside it, the baseline
//! of the same /32 added by hand: the very configuration the daemon rendered for it, loaded with
//! `birdc configure` (the daemon stopped). Median of 5 each; needs root like the edge lab tests.
//!
//! Run: `GROUNDWORK_TEST_CONTROLPLANE=/tmp/cp cargo bench -p edge --bench rtbh_api`

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../routing/tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crds::{BlackholeRoute, BorderRouter, UpstreamLink};
use kube::api::{Api, DeleteParams, PostParams};
use support::{Gobgp, GobgpNeighbor, Lab};

const OWN: &str = "203.0.113.0/24";
const RUNS: usize = 5;

async fn seen(isp: &Gobgp, prefix: &str, present: bool) {
    let timeout = Duration::from_secs(20);
    if present {
        isp.wait_route(prefix, timeout).await;
    } else {
        isp.wait_gone(prefix, timeout).await;
    }
}

fn birdc_configure(socket: &Path, file: &Path) {
    let out = Command::new(support::binary("birdc"))
        .arg("-s")
        .arg(socket)
        .arg("configure")
        .arg(format!("\"{}\"", file.display()))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("Reconfigur"),
        "birdc configure {}: {text}",
        file.display()
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn show(what: &str, v: &[Duration]) {
    let ms: Vec<String> = v
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
        .collect();
    println!(
        "{what:<44} median {:>7.1} ms   runs [{}] ms",
        median(v.to_vec()).as_secs_f64() * 1e3,
        ms.join(", ")
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut lab = Lab::new();
    let client = e2e::admin_client().await;
    let ns = e2e::namespace(&client, "edge-bench").await;
    let border = lab.netns("border");
    let isp_ns = lab.netns("isp1");
    lab.veth(
        (&border, "up1", &["192.0.2.1/30"]),
        (&isp_ns, "toborder", &["192.0.2.2/30"]),
    );
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let isp = lab
        .start_gobgp(
            &isp_ns,
            64500,
            "192.0.2.2",
            &[GobgpNeighbor {
                address: "192.0.2.1".parse().unwrap(),
                peer_as: 65000,
            }],
        )
        .await;

    let routers: Api<BorderRouter> = Api::namespaced(client.clone(), &ns);
    let links: Api<UpstreamLink> = Api::namespaced(client.clone(), &ns);
    let blackholes: Api<BlackholeRoute> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    routers
        .create(
            &pp,
            &serde_json::from_value(serde_json::json!({
                "apiVersion": "groundwork.dev/v1alpha1", "kind": "BorderRouter",
                "metadata": {"name": "edge1"},
                "spec": {"localASN": 65000, "routerID": "192.0.2.1", "ownPrefixes": [OWN]}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    links
        .create(&pp, &serde_json::from_value(serde_json::json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "UpstreamLink",
            "metadata": {"name": "isp1"},
            "spec": {"provider": "isp-one", "routerRef": "edge1",
                     "bgp": {"peerASN": 64500, "ipv4": {"localAddress": "192.0.2.1", "peerAddress": "192.0.2.2"},
                             "holdTimeSeconds": 3, "keepaliveSeconds": 1},
                     "import": {"mode": "DefaultOnly", "bogonFilter": false},
                     "export": {"prefixes": [OWN]}}
        })).unwrap())
        .await
        .unwrap();

    let conf_dir = bird.dir.join("conf");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let opts = edge::run::Options {
        router: "edge1".into(),
        namespace: ns.clone(),
        service_namespace: Some(ns.clone()),
        config_dir: conf_dir.clone(),
        bird_socket: bird.socket.clone(),
        bird_binary: support::binary("bird"),
        bird_log_file: Some(lab.dir.join("bird-daemon.log").display().to_string()),
        poll_interval: Duration::from_millis(1000),
        metrics: edge::metrics::Metrics::new(),
    };
    let daemon = tokio::spawn(edge::run::run(client.clone(), opts, async move {
        let _ = stopped.await;
    }));
    seen(&isp, OWN, true).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Through the API server and the daemon.
    let main_conf = conf_dir.join(routing::apply::MAIN_FILE);
    let mut api = Vec::new();
    let mut with_conf = Vec::new();
    for i in 0..RUNS {
        let prefix = format!("203.0.113.{}/32", 100 + i);
        let name = format!("bench-{i}");
        let bh: BlackholeRoute = serde_json::from_value(serde_json::json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "BlackholeRoute",
            "metadata": {"name": name},
            "spec": {"prefix": prefix, "routerRef": "edge1", "reason": "bench"}
        }))
        .unwrap();
        let t0 = Instant::now();
        blackholes.create(&pp, &bh).await.unwrap();
        seen(&isp, &prefix, true).await;
        api.push(t0.elapsed());
        let text = std::fs::read_to_string(&main_conf).unwrap();
        assert!(text.contains(&prefix), "rendered config lacks {prefix}");
        with_conf.push(text);
        blackholes
            .delete(&name, &DeleteParams::default())
            .await
            .unwrap();
        seen(&isp, &prefix, false).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    // By hand: the same /32, the same configuration, `birdc configure`.
    let manual = conf_dir.join("manual.conf");
    let mut by_hand = Vec::new();
    for (i, text) in with_conf.iter().enumerate() {
        let prefix = format!("203.0.113.{}/32", 100 + i);
        std::fs::write(&manual, text).unwrap();
        let t0 = Instant::now();
        birdc_configure(&bird.socket, &manual);
        seen(&isp, &prefix, true).await;
        by_hand.push(t0.elapsed());
        birdc_configure(&bird.socket, &main_conf);
        seen(&isp, &prefix, false).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    println!(
        "RTBH /32 → seen at the ISP (GoBGP RIB polled every 10 ms + gobgp CLI), {RUNS} runs each:"
    );
    show("BlackholeRoute create → ISP (API + daemon)", &api);
    show("same /32 by hand (birdc configure) → ISP", &by_hand);
    let overhead = median(api).as_secs_f64() - median(by_hand).as_secs_f64();
    println!(
        "{:<44} {:>7.1} ms",
        "median overhead of the API path",
        overhead * 1e3
    );
}
