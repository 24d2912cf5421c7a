//! Integration tests against real BGP speakers in network namespaces:
//! BIRD (ours, driven through `Applier` and `BirdClient`) versus GoBGP or FRR
//! (the ISP). Needs root and the binaries from `hack/deps/routing.sh`; fails
//! loudly without them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use routing::{
    AddressPair, AdminState, Applier, ApplyError, ApplyOutcome, BgpState, Blackhole, Community,
    ExportPolicy, Failover, ImportMode, ImportPolicy, Link, LinkRole, MaxPrefix, MaxPrefixAction,
    Password, RenderOptions, RouterConfig, diagnose, render_with,
};
use support::wait::eventually_every;
use support::{Bird, Gobgp, GobgpNeighbor, Lab, POLL, serial};

const OWN: &str = "203.0.113.0/24";
const OWN6: &str = "2001:db8:100::/48";
const ISP_AS: u32 = 64500;
const ISP2_AS: u32 = 64501;
const P1_V4: &str = "gw_isp1_v4";

/// The session was not reset: its "since" is the one seen before. BIRD prints it from its
/// monotonic clock converted to wall time at each `show protocols`, so two readings of one
/// session may differ by a millisecond; a reset moves it by at least the reconnect time.
fn same_session(after: Option<jiff::Timestamp>, before: Option<jiff::Timestamp>, what: &str) {
    let (Some(a), Some(b)) = (after, before) else {
        panic!("{what}: since {after:?} vs {before:?}");
    };
    let drift = a.duration_since(b).abs();
    assert!(
        drift <= jiff::SignedDuration::from_millis(50),
        "{what}: since {a} vs {b}"
    );
}

fn link(name: &str, local: [u8; 4], peer: [u8; 4], peer_asn: u32) -> Link {
    Link {
        name: name.into(),
        role: LinkRole::Transit,
        peer_asn,
        ipv4: Some(AddressPair {
            local: Ipv4Addr::from(local),
            peer: Ipv4Addr::from(peer),
        }),
        ipv6: None,
        hold_time: 3,
        keepalive: 1,
        bfd: false,
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
            prefixes: vec![OWN.parse().unwrap()],
            ..Default::default()
        },
        failover: Failover::Primary,
        admin_state: AdminState::Up,
    }
}

fn isp1_link() -> Link {
    link("isp1", [192, 0, 2, 1], [192, 0, 2, 2], ISP_AS)
}

fn config(links: Vec<Link>) -> RouterConfig {
    RouterConfig {
        local_asn: 65000,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        own_prefixes: vec![OWN.parse().unwrap(), OWN6.parse().unwrap()],
        links,
        blackholes: vec![],
        service_routes: vec![],
    }
}

fn render_options(lab: &Lab) -> RenderOptions {
    RenderOptions {
        log_file: Some(lab.dir.join("bird-daemon.log").display().to_string()),
        ..Default::default()
    }
}

fn applier(lab: &Lab, bird: &Bird) -> Applier {
    Applier::new(bird.dir.join("conf"), &bird.socket).with_render_options(render_options(lab))
}

/// border (BIRD) <-> isp1 (192.0.2.0/30, 2001:db8::/64).
fn border_and_isp1(lab: &mut Lab) -> (String, String) {
    let border = lab.netns("border");
    let isp1 = lab.netns("isp1");
    lab.veth(
        (&border, "up1", &["192.0.2.1/30", "2001:db8::1/64"]),
        (&isp1, "toborder", &["192.0.2.2/30", "2001:db8::2/64"]),
    );
    (border, isp1)
}

async fn gobgp_isp1(lab: &mut Lab, ns: &str, v6: bool) -> Gobgp {
    let mut neighbors = vec![GobgpNeighbor {
        address: "192.0.2.1".parse().unwrap(),
        peer_as: 65000,
    }];
    if v6 {
        neighbors.push(GobgpNeighbor {
            address: "2001:db8::1".parse().unwrap(),
            peer_as: 65000,
        });
    }
    lab.start_gobgp(ns, ISP_AS, "192.0.2.2", &neighbors).await
}

/// Session comes up (IPv4 and IPv6) and the ISP sees our prefixes with our
/// ASN; the ISP's extra routes are filtered (default-only import); a second
/// apply of the same input is skipped by hash.
#[tokio::test]
async fn session_established_and_prefix_at_isp() {
    let _g = serial().await;
    let mut lab = Lab::new();
    let (border, isp1) = border_and_isp1(&mut lab);
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let isp = gobgp_isp1(&mut lab, &isp1, true).await;
    isp.announce("0.0.0.0/0");
    isp.announce("11.0.0.0/24");

    let mut l = isp1_link();
    l.ipv6 = Some(AddressPair {
        local: "2001:db8::1".parse().unwrap(),
        peer: "2001:db8::2".parse().unwrap(),
    });
    l.export.prefixes.push(OWN6.parse().unwrap());
    let cfg = config(vec![l]);
    let mut applier = applier(&lab, &bird);
    let started = Instant::now();
    let outcome = applier.apply(&cfg).await.unwrap();
    assert!(
        matches!(outcome, ApplyOutcome::Applied { .. }),
        "{outcome:?}"
    );

    let s4 = bird.wait_established(P1_V4, Duration::from_secs(10)).await;
    bird.wait_established("gw_isp1_v6", Duration::from_secs(10))
        .await;
    eprintln!("apply -> Established in {:?}", started.elapsed());
    assert!(s4.since.is_some(), "since parsed: {s4:?}");

    let r = isp.wait_route(OWN, Duration::from_secs(5)).await;
    assert_eq!(r.as_path, vec![65000]);
    let r6 = isp.wait_route(OWN6, Duration::from_secs(5)).await;
    assert_eq!(r6.as_path, vec![65000]);

    // Default-only import: the default is imported, 11.0.0.0/24 is not.
    let status = eventually_every(
        POLL,
        Duration::from_secs(5),
        "default route imported",
        || {
            let bird = bird.clone();
            async move {
                let s = bird.status(P1_V4).await;
                (s.channels.first().map(|c| c.imported) == Some(1)).then_some(s)
            }
        },
    )
    .await;
    assert_eq!(status.channels[0].exported, 1);

    // Same input again: nothing to do.
    let again = applier.apply(&cfg).await.unwrap();
    assert!(matches!(again, ApplyOutcome::Unchanged { .. }), "{again:?}");
}

/// Adding an export prefix (a filter change) reaches the ISP without a session
/// reset: established-since stays the same.
#[tokio::test]
async fn filter_change_without_session_reset() {
    let _g = serial().await;
    let mut lab = Lab::new();
    let (border, isp1) = border_and_isp1(&mut lab);
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let isp = gobgp_isp1(&mut lab, &isp1, false).await;
    let mut cfg = config(vec![isp1_link()]);
    let mut applier = applier(&lab, &bird);
    applier.apply(&cfg).await.unwrap();
    let before = bird.wait_established(P1_V4, Duration::from_secs(10)).await;
    isp.wait_route(OWN, Duration::from_secs(5)).await;
    assert!(isp.route("203.0.113.128/25").is_none());

    // Only the prefix set changes (BIRD 2.0.12 misses such a change unless
    // the filter text carries a revision: see render::emit_filter).
    cfg.links[0]
        .export
        .prefixes
        .push("203.0.113.128/25".parse().unwrap());
    let t = Instant::now();
    applier.apply(&cfg).await.unwrap();
    isp.wait_route("203.0.113.128/25", Duration::from_secs(5))
        .await;
    eprintln!("filter change -> seen at ISP in {:?}", t.elapsed());

    // A community change is re-announced too.
    cfg.links[0]
        .export
        .communities
        .push("65000:42".parse().unwrap());
    applier.apply(&cfg).await.unwrap();
    let isp2 = isp.clone();
    eventually_every(POLL, Duration::from_secs(5), "community at the ISP", || {
        let r = isp2
            .route("203.0.113.128/25")
            .filter(|r| r.communities.contains(&(65000, 42)));
        async move { r }
    })
    .await;

    let after = bird.status(P1_V4).await;
    assert_eq!(after.state, BgpState::Established);
    same_session(
        after.since,
        before.since,
        "session was reset by a filter change",
    );
}

/// GoBGP announces more prefixes than the max-prefix limit: BIRD disables the
/// session and the status says why.
#[tokio::test]
async fn max_prefix_exceeded_disables_session() {
    let _g = serial().await;
    let mut lab = Lab::new();
    let (border, isp1) = border_and_isp1(&mut lab);
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let isp = gobgp_isp1(&mut lab, &isp1, false).await;
    let mut l = isp1_link();
    l.import = ImportPolicy {
        mode: ImportMode::Full,
        prefixes: vec![],
        bogon_filter: false,
    };
    l.max_prefix = Some(MaxPrefix {
        limit: 5,
        action: MaxPrefixAction::Disable,
    });
    let mut applier = applier(&lab, &bird);
    applier.apply(&config(vec![l])).await.unwrap();
    bird.wait_established(P1_V4, Duration::from_secs(10)).await;

    for i in 0..8 {
        isp.announce(&format!("11.0.{i}.0/24"));
    }
    let s = eventually_every(
        POLL,
        Duration::from_secs(5),
        "session disabled by the limit",
        || {
            let bird = bird.clone();
            async move {
                let s = bird.status(P1_V4).await;
                (s.state == BgpState::Down).then_some(s)
            }
        },
    )
    .await;
    assert!(s.import_limit_hit(), "{s:?}");
    assert_eq!(s.channels[0].import_limit, Some(5));
    let d = diagnose(&s, false, Timestamp::now(), Duration::from_secs(30));
    assert_eq!(d.reason, "MaxPrefixExceeded", "{d:?}");
    // Disabled means it stays down.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(bird.status(P1_V4).await.state, BgpState::Down);
}

/// An RTBH /32 shows up at the ISP with BLACKHOLE + NO_EXPORT (and extras),
/// and disappears when the request is removed; the session is not reset.
#[tokio::test]
async fn rtbh_announced_and_withdrawn() {
    let _g = serial().await;
    let mut lab = Lab::new();
    let (border, isp1) = border_and_isp1(&mut lab);
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let isp = gobgp_isp1(&mut lab, &isp1, false).await;
    let mut cfg = config(vec![isp1_link()]);
    let mut applier = applier(&lab, &bird);
    applier.apply(&cfg).await.unwrap();
    let before = bird.wait_established(P1_V4, Duration::from_secs(10)).await;
    isp.wait_route(OWN, Duration::from_secs(5)).await;

    cfg.blackholes.push(Blackhole {
        prefix: "203.0.113.66/32".parse().unwrap(),
        links: vec!["isp1".into()],
        extra_communities: vec![Community::Standard(64500, 666)],
    });
    let t = Instant::now();
    applier.apply(&cfg).await.unwrap();
    let r = isp
        .wait_route("203.0.113.66/32", Duration::from_secs(5))
        .await;
    eprintln!("RTBH add -> seen at ISP in {:?}", t.elapsed());
    for c in [(65535, 666), (65535, 65281), (64500, 666)] {
        assert!(r.communities.contains(&c), "missing {c:?} in {r:?}");
    }

    cfg.blackholes.clear();
    applier.apply(&cfg).await.unwrap();
    isp.wait_gone("203.0.113.66/32", Duration::from_secs(5))
        .await;
    assert!(isp.route(OWN).is_some());
    same_session(
        bird.status(P1_V4).await.since,
        before.since,
        "session reset by an RTBH",
    );
}

/// A rendered config with a syntax error is refused before BIRD sees it
/// (typed error, old config still running, files on disk unchanged); a config
/// that fails verification after `configure` is rolled back.
#[tokio::test]
async fn broken_config_rejected_old_config_keeps_running() {
    let _g = serial().await;
    let mut lab = Lab::new();
    let (border, isp1) = border_and_isp1(&mut lab);
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let isp = gobgp_isp1(&mut lab, &isp1, false).await;
    let cfg = config(vec![isp1_link()]);
    let mut applier = applier(&lab, &bird).with_confirm_timeout(30);
    applier.apply(&cfg).await.unwrap();
    let before = bird.wait_established(P1_V4, Duration::from_secs(10)).await;
    isp.wait_route(OWN, Duration::from_secs(5)).await;
    let good_on_disk = std::fs::read_to_string(applier.main_path()).unwrap();

    // 1. Syntax error.
    let mut changed = cfg.clone();
    changed.links[0]
        .export
        .prefixes
        .push("203.0.113.128/25".parse().unwrap());
    let mut broken = render_with(&changed, &render_options(&lab)).unwrap();
    broken
        .main
        .push_str("protocol bgp oops { this is not bird; }\n");
    let err = applier.apply_rendered(&broken).await.unwrap_err();
    assert!(matches!(err, ApplyError::Syntax { .. }), "{err:?}");
    assert_eq!(err.reason(), "ConfigSyntaxError");
    assert_eq!(
        std::fs::read_to_string(applier.main_path()).unwrap(),
        good_on_disk
    );

    // 2. Parses, is configured, but verification fails: rolled back.
    let mut unverifiable = render_with(&changed, &render_options(&lab)).unwrap();
    unverifiable.bgp_protocols.push("gw_missing_v4".into());
    let err = applier.apply_rendered(&unverifiable).await.unwrap_err();
    assert!(matches!(err, ApplyError::VerifyFailed { .. }), "{err:?}");
    assert_eq!(
        std::fs::read_to_string(applier.main_path()).unwrap(),
        good_on_disk
    );
    // After the undo the new prefix is (again) not exported.
    isp.wait_gone("203.0.113.128/25", Duration::from_secs(5))
        .await;

    let mut c = bird.client().await;
    c.show_status().await.unwrap();
    let after = bird.status(P1_V4).await;
    assert_eq!(after.state, BgpState::Established);
    same_session(
        after.since,
        before.since,
        "session reset by a refused config",
    );
    assert!(isp.route(OWN).is_some());

    // And a good config still applies afterwards.
    applier.apply(&changed).await.unwrap();
    isp.wait_route("203.0.113.128/25", Duration::from_secs(5))
        .await;
}

/// The ISP process is killed: BIRD's status leaves Established within the hold time.
#[tokio::test]
async fn isp_killed_detected_within_hold_time() {
    let _g = serial().await;
    let mut lab = Lab::new();
    let (border, isp1) = border_and_isp1(&mut lab);
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let isp = gobgp_isp1(&mut lab, &isp1, false).await;
    let mut applier = applier(&lab, &bird);
    applier.apply(&config(vec![isp1_link()])).await.unwrap();
    bird.wait_established(P1_V4, Duration::from_secs(10)).await;

    let t = Instant::now();
    lab.kill(&isp.name);
    let s = eventually_every(POLL, Duration::from_secs(4), "leaves Established", || {
        let bird = bird.clone();
        async move {
            let s = bird.status(P1_V4).await;
            (!s.is_established()).then_some(s)
        }
    })
    .await;
    let took = t.elapsed();
    eprintln!(
        "ISP killed -> detected in {took:?} ({:?}, {:?})",
        s.state, s.last_error
    );
    assert!(
        took < Duration::from_secs(3),
        "took {took:?}, hold time is 3 s"
    );
}

/// Primary/backup: the backup link's export carries the AS-path prepend.
#[tokio::test]
async fn backup_link_export_is_prepended() {
    let _g = serial().await;
    let mut lab = Lab::new();
    let (border, isp1) = border_and_isp1(&mut lab);
    let isp2 = lab.netns("isp2");
    lab.veth(
        (&border, "up2", &["198.51.100.1/30"]),
        (&isp2, "toborder", &["198.51.100.2/30"]),
    );
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let g1 = gobgp_isp1(&mut lab, &isp1, false).await;
    let g2 = lab
        .start_gobgp(
            &isp2,
            ISP2_AS,
            "198.51.100.2",
            &[GobgpNeighbor {
                address: "198.51.100.1".parse().unwrap(),
                peer_as: 65000,
            }],
        )
        .await;
    let mut backup = link("isp2", [198, 51, 100, 1], [198, 51, 100, 2], ISP2_AS);
    backup.failover = Failover::Backup;
    let mut applier = applier(&lab, &bird);
    applier
        .apply(&config(vec![isp1_link(), backup]))
        .await
        .unwrap();
    bird.wait_established(P1_V4, Duration::from_secs(10)).await;
    bird.wait_established("gw_isp2_v4", Duration::from_secs(10))
        .await;

    let primary = g1.wait_route(OWN, Duration::from_secs(5)).await;
    let secondary = g2.wait_route(OWN, Duration::from_secs(5)).await;
    assert_eq!(primary.as_path, vec![65000]);
    assert_eq!(secondary.as_path, vec![65000, 65000, 65000, 65000]);
}

fn frr_config(password: Option<&str>, bfd: bool) -> String {
    let mut c = String::from("frr defaults datacenter\nhostname isp1\n");
    if bfd {
        c.push_str("bfd\n peer 192.0.2.1\n  receive-interval 100\n  transmit-interval 100\n  detect-multiplier 3\n exit\nexit\n");
    }
    c.push_str("router bgp 64500\n bgp router-id 192.0.2.2\n no bgp ebgp-requires-policy\n no bgp network import-check\n neighbor 192.0.2.1 remote-as 65000\n neighbor 192.0.2.1 timers 3 9\n neighbor 192.0.2.1 timers connect 1\n");
    if let Some(pw) = password {
        c.push_str(&format!(" neighbor 192.0.2.1 password {pw}\n"));
    }
    if bfd {
        c.push_str(" neighbor 192.0.2.1 bfd\n");
    }
    c.push_str(" address-family ipv4 unicast\n  network 0.0.0.0/0\n exit-address-family\nexit\n");
    c
}

/// TCP-MD5 against FRR: the right password establishes; a wrong one leaves
/// BIRD in Connect/Active and the pure diagnosis says WrongPasswordSuspected.
#[tokio::test]
async fn wrong_md5_password_suspected() {
    let _g = serial().await;
    let mut lab = Lab::new();
    let (border, isp1) = border_and_isp1(&mut lab);
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let frr = lab
        .start_frr(&isp1, &frr_config(Some("right-pass"), false))
        .await;

    let mut l = isp1_link();
    l.hold_time = 9;
    l.keepalive = 3;
    l.password = Some(Password::new("right-pass"));
    let mut cfg = config(vec![l]);
    let mut applier = applier(&lab, &bird);
    applier.apply(&cfg).await.unwrap();
    bird.wait_established(P1_V4, Duration::from_secs(15)).await;
    assert_eq!(frr.bgp_state("192.0.2.1"), "Established");
    // The secrets file is private and the main file has no password.
    let main = std::fs::read_to_string(applier.main_path()).unwrap();
    assert!(!main.contains("right-pass"));
    let secrets = bird
        .dir
        .join("conf")
        .join(routing::render::DEFAULT_SECRETS_FILE);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&secrets).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    cfg.links[0].password = Some(Password::new("wrong-pass"));
    applier.apply(&cfg).await.unwrap();
    let grace = Duration::from_secs(4);
    let s = eventually_every(
        POLL,
        Duration::from_secs(20),
        "wrong password suspected",
        || {
            let bird = bird.clone();
            async move {
                let s = bird.status(P1_V4).await;
                let d = diagnose(&s, true, Timestamp::now(), grace);
                (d.reason == "WrongPasswordSuspected").then_some(s)
            }
        },
    )
    .await;
    assert!(
        matches!(s.state, BgpState::Connect | BgpState::Active),
        "{s:?}"
    );
    assert_ne!(frr.bgp_state("192.0.2.1"), "Established");
}

/// A silent cut (nftables drops everything in the ISP namespace) is detected
/// by BFD (100 ms x 3) in under a second, far below the 9 s hold time.
#[tokio::test]
async fn bfd_detects_silent_cut_under_one_second() {
    let _g = serial().await;
    let mut lab = Lab::new();
    let (border, isp1) = border_and_isp1(&mut lab);
    let bird = lab.start_bird(&border, "192.0.2.1").await;
    let _frr = lab.start_frr(&isp1, &frr_config(None, true)).await;
    let mut l = isp1_link();
    l.hold_time = 9;
    l.keepalive = 3;
    l.bfd = true;
    let mut applier = applier(&lab, &bird);
    applier.apply(&config(vec![l])).await.unwrap();
    bird.wait_established(P1_V4, Duration::from_secs(15)).await;
    eventually_every(POLL, Duration::from_secs(10), "BFD up", || {
        let bird = bird.clone();
        async move {
            (bird.status(P1_V4).await.bfd == Some(routing::status::BfdState::Up)).then_some(())
        }
    })
    .await;

    let t = Instant::now();
    lab.nft_drop_all(&isp1);
    let s = eventually_every(POLL, Duration::from_secs(12), "leaves Established", || {
        let bird = bird.clone();
        async move {
            let s = bird.status(P1_V4).await;
            (!s.is_established()).then_some(s)
        }
    })
    .await;
    let took = t.elapsed();
    eprintln!(
        "silent cut with BFD -> detected in {took:?} ({:?}, {:?})",
        s.state, s.last_error
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
}
