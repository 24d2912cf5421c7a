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

/// Records when connections arrive and closes them at once: a BMC that is "there" but never
/// answers a request (the controller sees it unreachable); the timestamps show its backoff.
async fn slamming_door() -> (
    u16,
    std::sync::Arc<std::sync::Mutex<Vec<std::time::Instant>>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            record.lock().unwrap().push(std::time::Instant::now());
            drop(stream);
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_reported_bounded_and_secrets_never_leak() {
    const PASSWORD: &str = "pw-Zq8-no-print";
    const WRONG: &str = "pw-Wr0ng-no-print";
    let sushy = Sushy::start(SushyOptions {
        systems: 3,
        basic_auth: Some(("admin".into(), PASSWORD.into())),
        initial_power: Some("Off"),
        ..Default::default()
    });
    let ipmi = IpmiSim::start(1, "admin", PASSWORD);
    let proxy_auth = common::proxy::Proxy::start(&sushy.http_base()).await;
    let proxy_500 = common::proxy::Proxy::start(&sushy.http_base()).await;
    let (door, knocks) = slamming_door().await;
    let client = admin_client().await;
    let ns = namespace(&client, "bmcfault").await;
    apply_doc(
        &client,
        &ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bmc"},
        "stringData": {"username": "admin", "password": PASSWORD}}),
    )
    .await
    .unwrap();
    apply_doc(
        &client,
        &ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bmc-wrong"},
        "stringData": {"username": "admin", "password": WRONG}}),
    )
    .await
    .unwrap();
    apply_doc(&client, &ns, json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack", "metadata": {"name": "r1"},
        "spec": {"location": {"site": "lab"}, "networks": {"provisioning": {"subnet": "10.10.0.0/24"}}}})).await.unwrap();
    let servers = [
        (
            "wrong-pw",
            proxy_auth.address_for(&sushy.address(0), sushy.port),
            "bmc-wrong",
        ),
        (
            "flaky",
            proxy_500.address_for(&sushy.address(1), sushy.port),
            "bmc",
        ),
        (
            "gone",
            format!("redfish+http://127.0.0.1:{door}/redfish/v1/Systems/1"),
            "bmc",
        ),
        ("ipmi", ipmi.address(0), "bmc"),
    ];
    for (i, (name, address, secret)) in servers.iter().enumerate() {
        apply_doc(&client, &ns, json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "metadata": {"name": name},
            "spec": {"rackRef": {"name": "r1"}, "rackUnit": i + 1, "online": true,
                     "bmc": {"address": address, "credentialsSecretRef": {"name": secret}}}})).await.unwrap();
    }
    // The flaky BMC answers 500 to its first requests, then recovers.
    proxy_500
        .state
        .fail_next
        .store(2, std::sync::atomic::Ordering::SeqCst);

    // Sample every process's argv while ipmitool runs: the password must never be there.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let leaked_argv = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut leaks = Vec::new();
            let mut samples = 0u32;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                    if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
                        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                        if cmdline.contains("ipmitool") {
                            samples += 1;
                        }
                        // The simulator is the peer (it is given the password to check against).
                        let ours = !cmdline.contains("ipmi_sim.py");
                        if ours
                            && (cmdline.contains(PASSWORD) || cmdline.contains(WRONG))
                            && !leaks.contains(&cmdline)
                        {
                            leaks.push(cmdline);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (leaks, samples)
        })
    };

    let controller = RunningController::start(client.clone(), &ns).await;
    let api: Api<Server> = Api::namespaced(client.clone(), &ns);
    eventually(
        Duration::from_secs(30),
        "wrong-pw: CredentialsValid=False AuthenticationFailed",
        || async {
            let s = api.get("wrong-pw").await.ok()?;
            (condition(&s, "CredentialsValid")? == ("False".into(), "AuthenticationFailed".into()))
                .then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "gone: BMCReachable=False",
        || async {
            let s = api.get("gone").await.ok()?;
            (condition(&s, "BMCReachable")?.0 == "False").then_some(())
        },
    )
    .await;
    wait_power(&api, "flaky", "On").await;
    wait_power(&api, "ipmi", "On").await;
    assert!(
        proxy_500
            .state
            .injected
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 2,
        "the 500s were served"
    );

    // Bounded: over 25 s the rejected BMC sees a handful of requests, not a hot loop.
    proxy_auth.state.reset_counters();
    tokio::time::sleep(Duration::from_secs(25)).await;
    let requests = proxy_auth
        .state
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        requests <= 12,
        "{requests} requests to a BMC that rejects the credentials in 25 s"
    );
    // Backoff: the gaps between attempts on the unreachable BMC grow.
    let times = knocks.lock().unwrap().clone();
    let bursts: Vec<std::time::Instant> = times
        .iter()
        .enumerate()
        .filter(|(i, t)| *i == 0 || t.duration_since(times[i - 1]) > Duration::from_secs(2))
        .map(|(_, t)| *t)
        .collect();
    assert!(
        bursts.len() >= 3,
        "expected several attempts, saw {} connections",
        times.len()
    );
    let gaps: Vec<Duration> = bursts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.last().unwrap() > gaps.first().unwrap(),
        "backoff grows: {gaps:?}"
    );

    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let (leaks, samples) = leaked_argv.join().unwrap();
    assert!(
        samples > 0,
        "never caught ipmitool running: the argv check saw nothing"
    );
    assert!(leaks.is_empty(), "password in process arguments: {leaks:?}");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let events = serde_json::to_string(&events.list(&Default::default()).await.unwrap()).unwrap();
    assert!(
        events.contains("AuthenticationFailed"),
        "events were published"
    );
    let status = serde_json::to_string(&api.list(&Default::default()).await.unwrap()).unwrap();
    let log = e2e::captured_log();
    assert!(log.contains("power action"), "the log was captured");
    for (what, text) in [("events", &events), ("status", &status), ("logs", &log)] {
        assert!(
            !text.contains(PASSWORD) && !text.contains(WRONG),
            "a password appears in {what}"
        );
    }
    controller.stop().await;
}
