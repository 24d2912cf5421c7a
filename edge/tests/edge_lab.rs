//! End-to-end: the edge daemon against a real kube-apiserver (from
//! `GROUNDWORK_TEST_CONTROLPLANE`), a real BIRD in a "border" network namespace and GoBGP as
//! the ISP. Needs root, bird/birdc/gobgpd/gobgp and the control plane; panics without them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../routing/tests/support/mod.rs"]
mod support;

mod common;

use std::time::Duration;

use edge::metrics::Metrics;

use common::{
    condition, event_seen, install_crds, scrape, series, serve_metrics, start_daemon, stop_daemon,
};
use crds::{BlackholeRoute, BorderRouter, UpstreamLink};
use e2e::{AuditWindow, admin_client, eventually, namespace};
use kube::api::{Api, DeleteParams, PostParams};
use support::{GobgpNeighbor, Lab, serial};

const OWN: &str = "203.0.113.0/24";
const HOST: &str = "203.0.113.66/32";

/// BorderRouter + UpstreamLink → session Established and our prefix at the ISP, with the
/// status written by the daemon; a BlackholeRoute shows up at the ISP with 65535:666 and is
/// withdrawn when deleted; an expired one is never announced; an idle site causes no writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_link_established_and_rtbh_from_the_api() {
    let _g = serial().await;
    let mut lab = Lab::new();
    let client = admin_client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "edge").await;

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
        .create(&pp, &serde_json::from_value(serde_json::json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "BorderRouter",
            "metadata": {"name": "edge1"},
            "spec": {"localASN": 65000, "routerID": "192.0.2.1", "ownPrefixes": [OWN, "2001:db8:100::/48"]}
        })).unwrap())
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

    let metrics = Metrics::new();
    let metrics_addr = serve_metrics(metrics.clone()).await;
    let (stop, daemon) = start_daemon(&client, &ns, &lab, &bird, metrics);

    // The session comes up and the daemon reports it.
    let status = eventually(
        Duration::from_secs(40),
        "UpstreamLink isp1 Established in status",
        || {
            let links = links.clone();
            async move {
                let s = links.get("isp1").await.ok()?.status?;
                let up = s.session_state.as_deref() == Some("Established")
                    && s.established_since.is_some()
                    && s.routes_exported.unwrap_or(0) >= 1
                    && condition(&s.conditions, "SessionEstablished")
                        .is_some_and(|c| c.status == "True");
                up.then_some(s)
            }
        },
    )
    .await;
    eprintln!(
        "UpstreamLink status: {}",
        serde_json::to_string(&status).unwrap()
    );
    assert_eq!(
        condition(&status.conditions, "ConfigApplied").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(status.flap_count, 0);
    assert!(status.config_hash.is_some());
    let r = isp.wait_route(OWN, Duration::from_secs(10)).await;
    assert_eq!(r.as_path, vec![65000]);
    let br = routers.get("edge1").await.unwrap().status.unwrap();
    assert_eq!(
        condition(&br.conditions, "ConfigApplied").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(br.config_hash, status.config_hash);

    // The per-link metrics say the same, over HTTP.
    let link_labels = format!("namespace=\"{ns}\",link=\"isp1\"");
    let body = eventually(Duration::from_secs(5), "/metrics: isp1 established", || {
        let labels = link_labels.clone();
        async move {
            let body = scrape(metrics_addr).await;
            (series(&body, "groundwork_edge_link_session_established", &labels) == Some(1.0))
                .then_some(body)
        }
    })
    .await;
    assert_eq!(
        series(
            &body,
            "groundwork_edge_link_bgp_state",
            &format!("{link_labels},state=\"Established\"")
        ),
        Some(1.0),
        "{body}"
    );
    assert!(
        series(&body, "groundwork_edge_link_routes_exported", &link_labels).unwrap_or(0.0) >= 1.0,
        "{body}"
    );
    assert_eq!(
        series(&body, "groundwork_edge_link_flaps_total", &link_labels),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        series(&body, "groundwork_edge_link_bfd_up", &link_labels),
        Some(0.0),
        "{body}"
    );
    assert!(
        series(
            &body,
            "groundwork_edge_config_applies_total",
            &format!("namespace=\"{ns}\",router=\"edge1\",outcome=\"ok\",reason=\"\"")
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{body}"
    );
    assert!(
        body.contains("groundwork_edge_config_apply_last_duration_seconds{"),
        "{body}"
    );
    // The controller's field manager is not used by the daemon.
    let managers: Vec<String> = links
        .get("isp1")
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.iter().any(|m| m == "groundwork-edge"),
        "managers: {managers:?}"
    );

    // The transition was announced as an Event on the UpstreamLink.
    event_seen(&client, &ns, "Established", "isp1").await;

    // Idle: nothing changes, nothing is written.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = AuditWindow::open(&ns);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let writes = window.close::<BorderRouter>(&client, "edge1").await;
    assert!(
        writes.is_empty(),
        "an idle site must cause no writes, got {writes:?}"
    );

    // RTBH from the API.
    blackholes
        .create(
            &pp,
            &serde_json::from_value(serde_json::json!({
                "apiVersion": "groundwork.dev/v1alpha1", "kind": "BlackholeRoute",
                "metadata": {"name": "ddos-66"},
                "spec": {"prefix": HOST, "routerRef": "edge1", "reason": "e2e: DDoS on .66"}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let r = isp.wait_route(HOST, Duration::from_secs(10)).await;
    for c in [(65535, 666), (65535, 65281)] {
        assert!(r.communities.contains(&c), "missing {c:?} in {r:?}");
    }
    eventually(
        Duration::from_secs(10),
        "BlackholeRoute announced in status",
        || {
            let b = blackholes.clone();
            async move {
                b.get("ddos-66")
                    .await
                    .ok()?
                    .status
                    .filter(|s| s.announced && s.announced_at.is_some())
                    .map(|_| ())
            }
        },
    )
    .await;

    // (Metrics are set at the end of the reconcile that wrote the status.)
    eventually(
        Duration::from_secs(5),
        "/metrics: one blackhole announced on isp1",
        || {
            let labels = link_labels.clone();
            async move {
                let body = scrape(metrics_addr).await;
                (series(&body, "groundwork_edge_link_blackholes_announced", &labels) == Some(1.0))
                    .then_some(())
            }
        },
    )
    .await;

    // A request with expiresAt a few seconds ahead is announced, then withdrawn when it
    // expires, without being deleted, and says why.
    let expires = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(6))
        .unwrap()
        .round(jiff::Unit::Second)
        .unwrap();
    blackholes
        .create(&pp, &serde_json::from_value(serde_json::json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "BlackholeRoute",
            "metadata": {"name": "ttl-68"},
            "spec": {"prefix": "203.0.113.68/32", "routerRef": "edge1", "reason": "e2e: expires",
                     "expiresAt": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}
        })).unwrap())
        .await
        .unwrap();
    let r = isp
        .wait_route("203.0.113.68/32", Duration::from_secs(5))
        .await;
    assert!(r.communities.contains(&(65535, 666)), "{r:?}");
    assert!(
        jiff::Timestamp::now() < expires,
        "announced only after expiresAt"
    );
    isp.wait_gone("203.0.113.68/32", Duration::from_secs(15))
        .await;
    assert!(
        jiff::Timestamp::now() >= expires,
        "withdrawn before expiresAt"
    );
    eprintln!(
        "ttl-68 withdrawn {} after expiresAt",
        jiff::Timestamp::now().duration_since(expires)
    );
    eventually(
        Duration::from_secs(10),
        "ttl-68 reported announced=false Expired",
        || {
            let b = blackholes.clone();
            async move {
                let s = b.get("ttl-68").await.ok()?.status?;
                (!s.announced
                    && condition(&s.conditions, "Announced").is_some_and(|c| c.reason == "Expired"))
                .then_some(())
            }
        },
    )
    .await;
    assert!(
        isp.route(HOST).is_some(),
        "the other blackhole was withdrawn"
    );

    // An expired request is never announced and says why.
    blackholes
        .create(&pp, &serde_json::from_value(serde_json::json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "BlackholeRoute",
            "metadata": {"name": "old-67"},
            "spec": {"prefix": "203.0.113.67/32", "routerRef": "edge1", "reason": "e2e: expired", "expiresAt": "2020-01-01T00:00:00Z"}
        })).unwrap())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "expired BlackholeRoute reported Expired",
        || {
            let b = blackholes.clone();
            async move {
                let s = b.get("old-67").await.ok()?.status?;
                (!s.announced
                    && condition(&s.conditions, "Announced").is_some_and(|c| c.reason == "Expired"))
                .then_some(())
            }
        },
    )
    .await;
    assert!(isp.route("203.0.113.67/32").is_none());

    blackholes
        .delete("ddos-66", &DeleteParams::default())
        .await
        .unwrap();
    isp.wait_gone(HOST, Duration::from_secs(10)).await;
    assert!(
        isp.route(OWN).is_some(),
        "withdrawing the blackhole must not touch our prefix"
    );
    let after = links.get("isp1").await.unwrap().status.unwrap();
    assert_eq!(
        after.established_since, status.established_since,
        "the session was reset"
    );
    assert_eq!(after.flap_count, 0);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), daemon)
        .await
        .expect("daemon did not stop")
        .unwrap()
        .unwrap();
}

/// Objects that cannot be rendered are reported on themselves while the rest runs (an export
/// outside our prefixes, a missing password Secret); a daemon restart resets no session and
/// writes nothing when nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_objects_reported_and_restart_is_silent() {
    let _g = serial().await;
    let mut lab = Lab::new();
    let client = admin_client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "edge").await;

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
    // isp1 also asks to export 198.51.100.0/24, which is not ours.
    links
        .create(&pp, &serde_json::from_value(serde_json::json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "UpstreamLink",
            "metadata": {"name": "isp1"},
            "spec": {"provider": "isp-one", "routerRef": "edge1",
                     "bgp": {"peerASN": 64500, "ipv4": {"localAddress": "192.0.2.1", "peerAddress": "192.0.2.2"},
                             "holdTimeSeconds": 3, "keepaliveSeconds": 1},
                     "import": {"mode": "DefaultOnly", "bogonFilter": false},
                     "export": {"prefixes": [OWN, "198.51.100.0/24"]}}
        })).unwrap())
        .await
        .unwrap();
    // isp2 references a password Secret that does not exist.
    links
        .create(&pp, &serde_json::from_value(serde_json::json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "UpstreamLink",
            "metadata": {"name": "isp2"},
            "spec": {"provider": "isp-two", "routerRef": "edge1",
                     "bgp": {"peerASN": 64501, "ipv4": {"localAddress": "192.0.2.5", "peerAddress": "192.0.2.6"},
                             "passwordSecretRef": {"name": "isp2-md5"}},
                     "export": {"prefixes": [OWN]}}
        })).unwrap())
        .await
        .unwrap();

    // The controller runs too: it owns Ready/Reconciling/Stalled/ReferencesResolved on the
    // same status, under its own field manager.
    let controller = e2e::RunningController::start(client.clone(), &ns).await;
    let (stop, daemon) = start_daemon(&client, &ns, &lab, &bird, Metrics::new());
    let status = eventually(
        Duration::from_secs(40),
        "isp1 Established with ExportPrefixNotOwned",
        || {
            let links = links.clone();
            async move {
                let s = links.get("isp1").await.ok()?.status?;
                let ok = s.session_state.as_deref() == Some("Established")
                    && condition(&s.conditions, "ConfigApplied").is_some_and(|c| {
                        c.status == "False"
                            && c.reason == "ExportPrefixNotOwned"
                            && c.message.contains("198.51.100.0/24")
                    });
                ok.then_some(s)
            }
        },
    )
    .await;
    isp.wait_route(OWN, Duration::from_secs(10)).await;
    assert!(
        isp.route("198.51.100.0/24").is_none(),
        "a prefix that is not ours reached the ISP"
    );
    eventually(Duration::from_secs(10), "isp2 SecretNotFound", || {
        let links = links.clone();
        async move {
            let s = links.get("isp2").await.ok()?.status?;
            let ok = condition(&s.conditions, "ConfigApplied")
                .is_some_and(|c| c.status == "False" && c.reason == "SecretNotFound")
                && condition(&s.conditions, "SessionEstablished")
                    .is_some_and(|c| c.status == "False");
            ok.then_some(())
        }
    })
    .await;
    let before = routers.get("edge1").await.unwrap().status.unwrap();

    // Restart: the new daemon re-applies the same configuration (no session reset) and, since
    // nothing changed, writes nothing.
    stop_daemon(stop, daemon).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let window = AuditWindow::open(&ns);
    let (stop, daemon) = start_daemon(&client, &ns, &lab, &bird, Metrics::new());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = links.get("isp1").await.unwrap().status.unwrap();
    assert_eq!(
        after.established_since, status.established_since,
        "the restart reset the session"
    );
    assert_eq!(after.flap_count, 0);
    assert_eq!(
        routers
            .get("edge1")
            .await
            .unwrap()
            .status
            .unwrap()
            .last_applied_at,
        before.last_applied_at
    );
    let writes = window.close::<BorderRouter>(&client, "edge1").await;
    assert!(
        writes.is_empty(),
        "a restart with nothing changed must write nothing, got {writes:?}"
    );

    // The ISP goes away: the daemon reports the flap.
    lab.kill(&isp.name);
    let down = eventually(Duration::from_secs(20), "isp1 flap reported", || {
        let links = links.clone();
        async move {
            let s = links.get("isp1").await.ok()?.status?;
            (s.flap_count == 1
                && s.session_state.as_deref() != Some("Established")
                && s.established_since.is_none())
            .then_some(s)
        }
    })
    .await;
    assert_eq!(
        condition(&down.conditions, "SessionEstablished").map(|c| c.status.as_str()),
        Some("False")
    );
    // The controller reacts to the flap (its Ready follows SessionEstablished) without
    // touching the daemon's fields.
    eventually(
        Duration::from_secs(20),
        "controller Ready=False after the flap",
        || {
            let links = links.clone();
            async move {
                let s = links.get("isp1").await.ok()?.status?;
                condition(&s.conditions, "Ready")
                    .is_some_and(|c| c.status == "False")
                    .then_some(())
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let last = links.get("isp1").await.unwrap().status.unwrap();
    assert_eq!(
        last.flap_count, 1,
        "another field manager reset flapCount: {last:?}"
    );
    assert!(condition(&last.conditions, "SessionEstablished").is_some());
    stop_daemon(stop, daemon).await;
    controller.stop().await;
}
