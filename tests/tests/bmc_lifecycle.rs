//! Servers registered through real emulated BMCs (sushy-tools Redfish with a power delay, and
//! the pyghmi IPMI simulator read back with ipmitool): identity and power in status, power
//! following spec.online, a reboot request honoured once (also across a controller restart),
//! wrong credentials reported, and a Secret edit re-registering without a restart.
#![allow(clippy::expect_used, clippy::unwrap_used)]

#[path = "../../bmc/tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{IpmiSim, Sushy, SushyOptions};
use crds::Server;
use e2e::{RunningController, admin_client, apply_doc, eventually, namespace};
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

fn condition(server: &Server, type_: &str) -> Option<(String, String)> {
    server
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

async fn site(client: &kube::Client, ns: &str, servers: &[(&str, String, bool)]) {
    apply_doc(
        client,
        ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bmc"},
        "stringData": {"username": "admin", "password": "s3cret"}}),
    )
    .await
    .unwrap();
    apply_doc(client, ns, json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack", "metadata": {"name": "r1"},
        "spec": {"location": {"site": "lab"}, "networks": {"provisioning": {"subnet": "10.10.0.0/24"}}}})).await.unwrap();
    for (i, (name, address, online)) in servers.iter().enumerate() {
        apply_doc(client, ns, json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "metadata": {"name": name},
            "spec": {"rackRef": {"name": "r1"}, "rackUnit": i + 1, "online": online,
                     "bmc": {"address": address, "credentialsSecretRef": {"name": "bmc"}}}})).await.unwrap();
    }
}

async fn wait_power(api: &Api<Server>, name: &str, power: &str) -> Server {
    eventually(
        Duration::from_secs(40),
        &format!("{name} power {power} and PowerMatchesSpec"),
        || async {
            let s = api.get(name).await.ok()?;
            let st = s.status.as_ref()?;
            let matches = condition(&s, "PowerMatchesSpec").is_some_and(|c| c.0 == "True");
            (matches && format!("{:?}", st.power_state?) == power).then_some(s)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_register_and_follow_spec_online_through_real_bmcs() {
    let sushy = Sushy::start(SushyOptions {
        systems: 2,
        power_delay_secs: 2,
        basic_auth: Some(("admin".into(), "s3cret".into())),
        initial_power: Some("Off"),
        ..Default::default()
    });
    let ipmi = IpmiSim::start(1, "admin", "s3cret");
    let client = admin_client().await;
    let ns = namespace(&client, "bmc").await;
    let redfish = |i: usize| sushy.address_by_name(i);
    site(
        &client,
        &ns,
        &[
            ("rf-1", redfish(0), true),
            ("rf-2", redfish(1), false),
            ("ipmi-1", ipmi.address(0), true),
        ],
    )
    .await;
    let controller = RunningController::start(client.clone(), &ns).await;
    let api: Api<Server> = Api::namespaced(client.clone(), &ns);

    let rf1 = wait_power(&api, "rf-1", "On").await;
    let st = rf1.status.as_ref().unwrap();
    assert_eq!(st.state, Some(crds::ServerState::Available));
    assert_eq!(
        st.identity.as_ref().unwrap().uuid.as_deref(),
        Some(sushy.systems[0].uuid.as_str())
    );
    assert_eq!(condition(&rf1, "Ready").unwrap().0, "True");
    wait_power(&api, "rf-2", "Off").await;
    wait_power(&api, "ipmi-1", "On").await;
    assert!(
        ipmi.ipmitool(0, &["power", "status"]).contains("on"),
        "ipmitool reads the power the controller set"
    );

    // spec.online=false powers rf-1 off; an Event records it.
    let off = json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "spec": {"online": false}});
    api.patch("rf-1", &PatchParams::apply("e2e-user"), &Patch::Merge(&off))
        .await
        .unwrap();
    wait_power(&api, "ipmi-1", "On").await;
    wait_power(&api, "rf-1", "Off").await;

    // A reboot request is honoured once, also after a controller restart.
    let reboot = json!({"metadata": {"annotations": {"groundwork.dev/reboot": "req-1"}}});
    api.patch("ipmi-1", &PatchParams::default(), &Patch::Merge(&reboot))
        .await
        .unwrap();
    eventually(Duration::from_secs(30), "reboot req-1 handled", || async {
        let s = api.get("ipmi-1").await.ok()?;
        (s.status?.last_reboot_request.as_deref() == Some("req-1")).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    controller.stop().await;
    let restarted = RunningController::start(client.clone(), &ns).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cycles = ipmi
        .events_for(0)
        .iter()
        .filter(|e| e.contains("power_cycle") || e.contains("power_reset"))
        .count();
    assert_eq!(
        cycles,
        1,
        "exactly one power cycle for req-1: {:?}",
        ipmi.events_for(0)
    );

    // Wrong credentials: CredentialsValid=False; fixing the Secret re-registers without a restart.
    apply_doc(
        &client,
        &ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bmc"},
        "stringData": {"username": "admin", "password": "wrong"}}),
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(40),
        "CredentialsValid=False after the password changed",
        || async {
            let s = api.get("rf-2").await.ok()?;
            let (status, reason) = condition(&s, "CredentialsValid")?;
            (status == "False" && reason == "AuthenticationFailed").then_some(())
        },
    )
    .await;
    apply_doc(
        &client,
        &ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bmc"},
        "stringData": {"username": "admin", "password": "s3cret"}}),
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(60),
        "CredentialsValid=True after the fix",
        || async {
            let s = api.get("rf-2").await.ok()?;
            (condition(&s, "CredentialsValid")?.0 == "True").then_some(())
        },
    )
    .await;
    restarted.stop().await;
}
