//! The example site converges, the layout check names servers in conflict, an idle site
//! causes no writes (also after a restart), an unreadable object does not stop the rest, a
//! Rack with IPv6 node and BMC networks reconciles, and Racks whose networks overlap name
//! each other until one moves.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../../bmc/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use crds::{Rack, Server};
use e2e::{
    AuditWindow, RunningController, admin_client, apply_doc, apply_examples, eventually, namespace,
};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

fn condition<'a>(
    rack: &'a Rack,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    rack.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

async fn converged(racks: &Api<Rack>) -> Rack {
    eventually(Duration::from_secs(30), "rack a01 to converge", || async {
        let rack = racks.get("a01").await.ok()?;
        let st = rack.status.as_ref()?;
        let ready = condition(&rack, "Ready").is_some_and(|c| c.status == "True");
        (ready
            && st.server_count == 4
            && st.used_u == 5
            && st.observed_generation == rack.metadata.generation)
            .then_some(rack)
    })
    .await
}

#[tokio::test]
async fn rack_status_converges_and_layout_conflicts_name_both_servers() {
    let client = admin_client().await;
    let ns = namespace(&client, "site").await;
    apply_examples(&client, &ns).await;
    let controller = RunningController::start(client.clone(), &ns).await;
    let racks: Api<Rack> = Api::namespaced(client.clone(), &ns);
    let rack = converged(&racks).await;
    let st = rack.status.unwrap();
    assert_eq!(st.power.unwrap().declared_watts, 2150);
    assert_eq!(st.servers_by_state.get("Registering"), Some(&4));
    assert_eq!(
        st.ip_pool.unwrap().size,
        245,
        "254 hosts minus the reserved .1-.9"
    );
    assert_eq!(st.location_summary.as_deref(), Some("fra1/hall-1/A/01"));

    // Move a01-u05 onto U4, which a01-u03 (2U at U3) occupies.
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    let to_u = |u: u32| json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "spec": {"rackUnit": u}});
    servers
        .patch(
            "a01-u05",
            &PatchParams::apply("e2e-mover").force(),
            &Patch::Apply(to_u(4)),
        )
        .await
        .unwrap();
    let message = eventually(Duration::from_secs(20), "LayoutValid=False", || async {
        let rack = racks.get("a01").await.ok()?;
        let c = condition(&rack, "LayoutValid")?;
        (c.status == "False").then(|| (c.reason.clone(), c.message.clone()))
    })
    .await;
    assert_eq!(message.0, "UOverlap");
    assert!(
        message.1.contains("a01-u03") && message.1.contains("a01-u05") && message.1.contains("U4"),
        "{}",
        message.1
    );
    let stalled = condition(&racks.get("a01").await.unwrap(), "Stalled")
        .cloned()
        .unwrap();
    assert_eq!(stalled.status, "True");

    servers
        .patch(
            "a01-u05",
            &PatchParams::apply("e2e-mover").force(),
            &Patch::Apply(to_u(5)),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "LayoutValid=True again",
        || async {
            let rack = racks.get("a01").await.ok()?;
            condition(&rack, "LayoutValid")
                .is_some_and(|c| c.status == "True")
                .then_some(())
        },
    )
    .await;

    // Deleting a Server updates its Rack (deletions reach the Rack controller too).
    servers
        .delete("a01-u05", &Default::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the rack to count 3 servers after a delete",
        || async {
            let st = racks.get("a01").await.ok()?.status?;
            (st.server_count == 3 && st.slots.iter().all(|s| s.server != "a01-u05")).then_some(())
        },
    )
    .await;
    controller.stop().await;
}

#[tokio::test]
async fn idle_site_sends_no_writes_also_after_restart() {
    let client = admin_client().await;
    let ns = namespace(&client, "idle").await;
    apply_examples(&client, &ns).await;
    // A healthy site: every example Server gets a real emulated BMC with the example credentials.
    let sushy = common::Sushy::start(common::SushyOptions {
        systems: 2,
        basic_auth: Some(("admin".into(), "lab-password".into())),
        ..Default::default()
    });
    let ipmi = common::IpmiSim::start(2, "admin", "lab-password");
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    for (name, address) in [
        ("a01-u01", sushy.address(0)),
        ("a01-u02", sushy.address(1)),
        ("a01-u03", ipmi.address(0)),
        ("a01-u05", ipmi.address(1)),
    ] {
        let patch = json!({"spec": {"bmc": {"address": address}}});
        servers
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    let controller = RunningController::start(client.clone(), &ns).await;
    converged(&Api::namespaced(client.clone(), &ns)).await;
    eventually(
        Duration::from_secs(60),
        "every server's power to match its spec",
        || async {
            let list = servers.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .all(|s| {
                    s.status.as_ref().is_some_and(|st| {
                        st.conditions
                            .iter()
                            .any(|c| c.type_ == "PowerMatchesSpec" && c.status == "True")
                    })
                })
                .then_some(())
        },
    )
    .await;
    // Let in-flight reconciles (triggered by our own status writes) settle, then watch.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let window = AuditWindow::open(&ns);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let writes = window.close::<Server>(&client, "a01-u01").await;
    assert!(writes.is_empty(), "writes while idle: {writes:#?}");
    assert!(
        controller
            .metrics
            .registry_text()
            .contains("groundwork_reconciles_total"),
        "the controller did reconcile"
    );
    controller.stop().await;

    let window = AuditWindow::open(&ns);
    let restarted = RunningController::start(client.clone(), &ns).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let writes = window.close::<Server>(&client, "a01-u01").await;
    assert!(writes.is_empty(), "writes after a restart: {writes:#?}");
    restarted.stop().await;
}

#[tokio::test]
async fn unreadable_object_is_reported_and_does_not_stop_the_others() {
    let client = admin_client().await;
    let ns = namespace(&client, "broken").await;
    apply_examples(&client, &ns).await;
    // Write a Server the types cannot read straight into etcd, past the API server's schema.
    let etcd = std::fs::read_to_string(e2e::controlplane_dir().join("etcd-url")).unwrap();
    let value = json!({
        "apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
        "metadata": {"name": "broken", "namespace": ns, "uid": "6f0e8f3c-0000-4000-8000-000000000001",
                     "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"rackRef": {"name": "a01"}, "rackUnit": "seven", "heightU": "tall"}
    });
    e2e::etcd_put(
        etcd.trim(),
        &format!("/registry/groundwork.dev/servers/{ns}/broken"),
        &value.to_string(),
    )
    .await;
    let servers: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &e2e::resource_of("groundwork.dev/v1alpha1", "Server"),
    );
    eventually(
        Duration::from_secs(10),
        "the API server to serve the broken object",
        || async { servers.get("broken").await.ok().map(|_| ()) },
    )
    .await;

    let controller = RunningController::start(client.clone(), &ns).await;
    converged(&Api::namespaced(client.clone(), &ns)).await;
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let note = eventually(
        Duration::from_secs(20),
        "an InvalidObject event for the broken server",
        || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| {
                    e.reason.as_deref() == Some("InvalidObject")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
                })
                .and_then(|e| e.note)
        },
    )
    .await;
    assert!(note.contains("cannot read"), "{note}");
    assert!(
        controller
            .metrics
            .registry_text()
            .contains("groundwork_invalid_objects{kind=\"Server\"} 1")
    );
    // A new valid server still reconciles.
    let extra = json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "metadata": {"name": "a01-u10"},
                       "spec": {"rackRef": {"name": "a01"}, "rackUnit": 10}});
    apply_doc(&client, &ns, extra).await.unwrap();
    let racks: Api<Rack> = Api::namespaced(client.clone(), &ns);
    eventually(
        Duration::from_secs(20),
        "the rack to count the new server",
        || async { (racks.get("a01").await.ok()?.status?.server_count == 5).then_some(()) },
    )
    .await;
    controller.stop().await;
}

fn rack_doc(name: &str, provisioning: &str, node: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack", "metadata": {"name": name},
           "spec": {"location": {"site": "fra1"},
                    "networks": {"provisioning": {"subnet": provisioning}, "node": node}}})
}

#[tokio::test]
async fn ipv6_node_and_bmc_networks_reconcile() {
    let client = admin_client().await;
    let ns = namespace(&client, "ipv6").await;
    let mut rack = rack_doc(
        "v6",
        "10.73.0.0/24",
        json!({"subnet": "2001:db8:10::/64", "gateway": "2001:db8:10::1", "dns": ["2001:db8:10::53"]}),
    );
    rack["spec"]["networks"]["bmc"] =
        json!({"subnet": "2001:db8:20::/64", "gateway": "2001:db8:20::1"});
    apply_doc(&client, &ns, rack).await.unwrap();
    let controller = RunningController::start(client.clone(), &ns).await;
    let racks: Api<Rack> = Api::namespaced(client.clone(), &ns);
    let rack = eventually(
        Duration::from_secs(30),
        "the IPv6 rack's status",
        || async {
            let rack = racks.get("v6").await.ok()?;
            let ready = condition(&rack, "Ready").is_some_and(|c| c.status == "True");
            let observed = rack.status.as_ref()?.observed_generation == rack.metadata.generation;
            (ready && observed).then_some(rack)
        },
    )
    .await;
    let pool = rack.status.as_ref().unwrap().ip_pool.clone().unwrap();
    assert_eq!(
        (pool.size, pool.used),
        (crds::rack::MAX_POOL_SIZE, 0),
        "a /64 saturates"
    );
    let available = condition(&rack, "IPPoolAvailable").unwrap();
    assert!(
        available
            .message
            .starts_with("18446744073709551613 of 18446744073709551613"),
        "exact in the message: {}",
        available.message
    );
    assert!(
        !controller
            .metrics
            .registry_text()
            .contains("groundwork_reconcile_errors_total{kind=\"Rack\""),
        "no failed reconcile"
    );
    controller.stop().await;
}

#[tokio::test]
async fn overlapping_racks_report_each_other_until_one_moves() {
    let client = admin_client().await;
    let ns = namespace(&client, "overlap").await;
    let node = |subnet: &str, gateway: &str| json!({"subnet": subnet, "gateway": gateway});
    apply_doc(
        &client,
        &ns,
        rack_doc("a01", "10.74.0.0/24", node("10.75.0.0/24", "10.75.0.1")),
    )
    .await
    .unwrap();
    let controller = RunningController::start(client.clone(), &ns).await;
    let racks: Api<Rack> = Api::namespaced(client.clone(), &ns);
    let distinct = |name: &'static str, status: &'static str| {
        let racks = racks.clone();
        async move {
            eventually(
                Duration::from_secs(20),
                &format!("{name} NetworksDistinct={status}"),
                || async {
                    let rack = racks.get(name).await.ok()?;
                    let c = condition(&rack, "NetworksDistinct")?;
                    let ready = condition(&rack, "Ready")?;
                    (c.status == status
                        && rack.status.as_ref()?.observed_generation == rack.metadata.generation)
                        .then(|| (c.reason.clone(), c.message.clone(), ready.status.clone()))
                },
            )
            .await
        }
    };
    distinct("a01", "True").await;

    // b07 declares the same provisioning subnet and a node subnet inside a01's: both racks
    // name both racks, and neither is Ready.
    apply_doc(
        &client,
        &ns,
        rack_doc("b07", "10.74.0.0/24", node("10.75.0.128/25", "10.75.0.129")),
    )
    .await
    .unwrap();
    for (name, other) in [("a01", "b07"), ("b07", "a01")] {
        let (reason, message, ready) = distinct(name, "False").await;
        assert_eq!(
            (reason.as_str(), ready.as_str()),
            ("NetworkOverlap", "False")
        );
        assert!(
            message.contains(&format!("rack {name} provisioning 10.74.0.0/24 overlaps rack {other} provisioning 10.74.0.0/24"))
                && message.contains("node"),
            "{message}"
        );
    }
    let stalled = condition(&racks.get("a01").await.unwrap(), "Stalled")
        .cloned()
        .unwrap();
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "NetworkOverlap")
    );

    // b07 moves to its own networks: a01 is told without a change of its own.
    apply_doc(
        &client,
        &ns,
        rack_doc("b07", "10.76.0.0/24", node("10.77.0.0/24", "10.77.0.1")),
    )
    .await
    .unwrap();
    for name in ["a01", "b07"] {
        let (_, _, ready) = distinct(name, "True").await;
        assert_eq!(ready, "True", "{name}");
    }

    // A third rack overlapping a01 goes away: a01 is told too.
    apply_doc(
        &client,
        &ns,
        rack_doc("c03", "10.74.0.0/25", node("10.78.0.0/24", "10.78.0.1")),
    )
    .await
    .unwrap();
    distinct("a01", "False").await;
    racks.delete("c03", &Default::default()).await.unwrap();
    distinct("a01", "True").await;
    controller.stop().await;
}
