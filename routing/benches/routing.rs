//! Timing figures for the routing pipeline against real peers in network
//! namespaces (not a test; prints numbers). Run as root:
//! `cargo bench -p routing` or `hack/bench-routing.sh`.
//!
//! Each figure is measured for our `Applier` (render, `bird -p`, `configure
//! timeout`, verify, `configure confirm`) and, in the same run, for the same
//! change made by hand: a hand-written config file and `birdc configure`.
//! "Seen at the ISP" is polled with the gobgp CLI (one `ip netns exec gobgp`
//! per poll, ~10-30 ms resolution), the same way for both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use routing::{
    AddressPair, AdminState, Applier, Blackhole, ExportPolicy, Failover, ImportMode, ImportPolicy,
    Link, LinkRole, RenderOptions, RouterConfig,
};
use support::wait::eventually_every;
use support::{Bird, Gobgp, GobgpNeighbor, Lab, POLL};

const RUNS: usize = 3;

fn link(bfd: bool, hold: u16, keepalive: u16) -> Link {
    Link {
        name: "isp1".into(),
        role: LinkRole::Transit,
        peer_asn: 64500,
        ipv4: Some(AddressPair {
            local: Ipv4Addr::new(192, 0, 2, 1),
            peer: Ipv4Addr::new(192, 0, 2, 2),
        }),
        ipv6: None,
        hold_time: hold,
        keepalive,
        bfd,
        multihop: None,
        graceful_restart: false,
        password: None,
        import: ImportPolicy {
            mode: ImportMode::DefaultOnly,
            prefixes: vec![],
            bogon_filter: false,
        },
        max_prefix: None,
        export: ExportPolicy {
            prefixes: vec!["203.0.113.0/24".parse().unwrap()],
            ..Default::default()
        },
        failover: Failover::Primary,
        admin_state: AdminState::Up,
    }
}

fn config(l: Link) -> RouterConfig {
    RouterConfig {
        local_asn: 65000,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        own_prefixes: vec!["203.0.113.0/24".parse().unwrap()],
        links: vec![l],
        blackholes: vec![],
        service_routes: vec![],
    }
}

/// A hand-written config, as an operator would keep it.
fn hand_config(extra_prefix: bool, blackhole: bool) -> String {
    let mut s = String::from(
        "router id 192.0.2.1;\nprotocol device gw_device {\n  scan time 10;\n}\nprotocol static own4 {\n  ipv4;\n  route 203.0.113.0/24 unreachable;\n",
    );
    if extra_prefix {
        s.push_str("  route 203.0.113.64/26 unreachable;\n");
    }
    if blackhole {
        s.push_str("  route 203.0.113.99/32 blackhole;\n");
    }
    s.push_str("}\nfilter to_isp1 {\n");
    if blackhole {
        s.push_str("  if net = 203.0.113.99/32 then { bgp_community.add((65535,666)); bgp_community.add((65535,65281)); accept; }\n");
    }
    s.push_str("  if net = 203.0.113.0/24 then accept;\n");
    if extra_prefix {
        s.push_str("  if net = 203.0.113.64/26 then accept;\n");
    }
    s.push_str("  reject;\n}\nprotocol bgp hand_isp1 {\n  local 192.0.2.1 as 65000;\n  neighbor 192.0.2.2 as 64500;\n  hold time 3;\n  keepalive time 1;\n  connect delay time 1;\n  ipv4 { import all; export filter to_isp1; };\n}\n");
    s
}

fn birdc_configure(bird: &Bird, file: &std::path::Path) {
    let out = Command::new(support::binary("birdc"))
        .arg("-s")
        .arg(&bird.socket)
        .arg("configure")
        .arg(format!("\"{}\"", file.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

async fn seen(isp: &Gobgp, prefix: &str) {
    isp.wait_route(prefix, Duration::from_secs(10)).await;
}

async fn gone(isp: &Gobgp, prefix: &str) {
    isp.wait_gone(prefix, Duration::from_secs(10)).await;
}

fn ms(d: Duration) -> String {
    format!("{:>8.1} ms", d.as_secs_f64() * 1000.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn changes() {
    let mut lab = Lab::new();
    let border = lab.netns("border");
    let isp1 = lab.netns("isp1");
    lab.veth(
        (&border, "up1", &["192.0.2.1/30"]),
        (&isp1, "toborder", &["192.0.2.2/30"]),
    );
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let isp = lab
        .start_gobgp(
            &isp1,
            64500,
            "192.0.2.2",
            &[GobgpNeighbor {
                address: "192.0.2.1".parse().unwrap(),
                peer_as: 65000,
            }],
        )
        .await;
    let hand_dir = lab.dir.join("hand");
    std::fs::create_dir_all(&hand_dir).unwrap();
    let hand_file = hand_dir.join("bird.conf");

    let mut ours_create = vec![];
    let mut hand_create = vec![];
    let mut ours_filter = vec![];
    let mut hand_filter = vec![];
    let mut ours_rtbh = vec![];
    let mut hand_rtbh = vec![];
    for run in 0..RUNS {
        // --- ours
        let mut applier = Applier::new(bird.dir.join(format!("conf{run}")), &bird.socket)
            .with_render_options(RenderOptions::default());
        let mut cfg = config(link(false, 3, 1));
        let t = Instant::now();
        applier.apply(&cfg).await.unwrap();
        bird.wait_established("gw_isp1_v4", Duration::from_secs(15))
            .await;
        ours_create.push(t.elapsed());
        seen(&isp, "203.0.113.0/24").await;
        gone(&isp, "203.0.113.64/26").await;
        gone(&isp, "203.0.113.99/32").await;

        cfg.links[0]
            .export
            .prefixes
            .push("203.0.113.64/26".parse().unwrap());
        let t = Instant::now();
        applier.apply(&cfg).await.unwrap();
        seen(&isp, "203.0.113.64/26").await;
        ours_filter.push(t.elapsed());

        cfg.blackholes.push(Blackhole {
            prefix: "203.0.113.99/32".parse().unwrap(),
            links: vec![],
            extra_communities: vec![],
        });
        let t = Instant::now();
        applier.apply(&cfg).await.unwrap();
        seen(&isp, "203.0.113.99/32").await;
        ours_rtbh.push(t.elapsed());

        // --- by hand (replaces our protocols: a new session)
        std::fs::write(&hand_file, hand_config(false, false)).unwrap();
        let t = Instant::now();
        birdc_configure(&bird, &hand_file);
        bird.wait_established("hand_isp1", Duration::from_secs(15))
            .await;
        hand_create.push(t.elapsed());
        gone(&isp, "203.0.113.64/26").await;
        gone(&isp, "203.0.113.99/32").await;

        std::fs::write(&hand_file, hand_config(true, false)).unwrap();
        let t = Instant::now();
        birdc_configure(&bird, &hand_file);
        seen(&isp, "203.0.113.64/26").await;
        hand_filter.push(t.elapsed());

        std::fs::write(&hand_file, hand_config(true, true)).unwrap();
        let t = Instant::now();
        birdc_configure(&bird, &hand_file);
        seen(&isp, "203.0.113.99/32").await;
        hand_rtbh.push(t.elapsed());
    }
    println!(
        "{:<34} {:>11} {:>11}   (median of {RUNS})",
        "figure", "ours", "by hand"
    );
    for (name, o, h) in [
        ("create -> Established", ours_create, hand_create),
        ("filter change -> seen at ISP", ours_filter, hand_filter),
        ("RTBH add -> seen at ISP", ours_rtbh, hand_rtbh),
    ] {
        println!("{name:<34} {} {}", ms(median(o)), ms(median(h)));
    }
}

/// Silent cut (nftables drop in the ISP namespace) -> BIRD leaves Established.
async fn failover(bfd: bool) -> Duration {
    let mut lab = Lab::new();
    let border = lab.netns("border");
    let isp1 = lab.netns("isp1");
    lab.veth(
        (&border, "up1", &["192.0.2.1/30"]),
        (&isp1, "toborder", &["192.0.2.2/30"]),
    );
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let (hold, keepalive) = (3, 1);
    if bfd {
        let conf = "frr defaults datacenter\nbfd\n peer 192.0.2.1\n  receive-interval 100\n  transmit-interval 100\n exit\nexit\nrouter bgp 64500\n bgp router-id 192.0.2.2\n no bgp ebgp-requires-policy\n neighbor 192.0.2.1 remote-as 65000\n neighbor 192.0.2.1 timers 1 3\n neighbor 192.0.2.1 timers connect 1\n neighbor 192.0.2.1 bfd\nexit\n";
        lab.start_frr(&isp1, conf).await;
    } else {
        lab.start_gobgp(
            &isp1,
            64500,
            "192.0.2.2",
            &[GobgpNeighbor {
                address: "192.0.2.1".parse().unwrap(),
                peer_as: 65000,
            }],
        )
        .await;
    }
    let mut applier = Applier::new(bird.dir.join("conf"), &bird.socket);
    applier
        .apply(&config(link(bfd, hold, keepalive)))
        .await
        .unwrap();
    bird.wait_established("gw_isp1_v4", Duration::from_secs(15))
        .await;
    if bfd {
        let b = bird.clone();
        eventually_every(POLL, Duration::from_secs(10), "BFD up", || {
            let b = b.clone();
            async move {
                (b.status("gw_isp1_v4").await.bfd == Some(routing::status::BfdState::Up))
                    .then_some(())
            }
        })
        .await;
    }
    let t = Instant::now();
    lab.nft_drop_all(&isp1);
    let b = bird.clone();
    eventually_every(POLL, Duration::from_secs(10), "leaves Established", || {
        let b = b.clone();
        async move { (!b.status("gw_isp1_v4").await.is_established()).then_some(()) }
    })
    .await;
    t.elapsed()
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass other flags.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("routing benchmark (BIRD vs GoBGP/FRR in network namespaces)");
    changes().await;
    let without = failover(false).await;
    let with = failover(true).await;
    println!(
        "{:<34} {} {:>11}   (hold 3 s; by hand: same BIRD timers, n/a)",
        "silent cut detected, no BFD",
        ms(without),
        "-"
    );
    println!(
        "{:<34} {} {:>11}   (BFD 100 ms x 3, FRR as ISP)",
        "silent cut detected, BFD",
        ms(with),
        "-"
    );
    println!("targets: RTBH < 100 ms, failover < 1 s with BFD");
}
