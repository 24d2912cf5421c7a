//! The Cluster API provider against a real API server (no QEMU: Server states are written here
//! as the Server reconciler would): many Machines at once, from two provider instances, never
//! claim one Server twice; a Machine stays inside its failure domain and names what is missing;
//! the bootstrap Secret becomes the claimed Server's user-data; pause; provisioned and
//! addresses; release on deletion; all of it also as the chart's provider ServiceAccount. Needs Cluster API's CRDs in the control plane
//! (`hack/test.sh` installs them from `hack/capi-bins/build.sh`).
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crds::provider::{GroundworkCluster, GroundworkMachine, MachineState};
use crds::{Server, ServerState};
use e2e::{
    RunningController, admin_client, client_as_service_account, eventually, helm, namespace,
    repo_root, resource_of,
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::json;

fn provider_flags() -> Vec<String> {
    vec!["--provider".to_string()]
}

async fn require_capi_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(
        crds.get_opt("machines.cluster.x-k8s.io")
            .await
            .unwrap()
            .is_some(),
        "Cluster API's CRDs are not installed: kubectl apply --server-side -f \"$(hack/capi-bins/build.sh)/crds/core.yaml\""
    );
}

async fn rack(client: &Client, ns: &str, name: &str, subnet: u8) {
    let api: Api<crds::Rack> = Api::namespaced(client.clone(), ns);
    let rack: crds::Rack = serde_json::from_value(json!({
        "apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack",
        "metadata": {"name": name},
        "spec": {
            "location": {"site": "fra1"},
            "networks": {"provisioning": {"subnet": format!("10.{subnet}.0.0/24")}},
        },
    }))
    .unwrap();
    api.create(&PostParams::default(), &rack).await.unwrap();
}

/// A Server in `rack` at `u`, made Available with an inventory (as inspection would).
async fn server(client: &Client, ns: &str, rack: &str, u: u32, memory_gib: u64) -> String {
    let name = format!("{rack}-u{u:02}");
    let api: Api<Server> = Api::namespaced(client.clone(), ns);
    let server: Server = serde_json::from_value(json!({
        "apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
        "metadata": {"name": name},
        "spec": {"rackRef": {"name": rack}, "rackUnit": u},
    }))
    .unwrap();
    api.create(&PostParams::default(), &server).await.unwrap();
    set_state(client, ns, &name, ServerState::Available, memory_gib).await;
    name
}

async fn set_state(client: &Client, ns: &str, name: &str, state: ServerState, memory_gib: u64) {
    let api: Api<Server> = Api::namespaced(client.clone(), ns);
    let mut status = json!({
        "state": state,
        "hardware": {"cpuCount": 8, "memoryBytes": memory_gib << 30,
            "disks": [{"name": "/dev/vda", "sizeBytes": 100u64 << 30}]},
    });
    if state == ServerState::Provisioned {
        status["addresses"] = json!([{"network": "node", "address": "10.20.0.15"}]);
    }
    api.patch_status(
        name,
        &PatchParams::apply("e2e-server-reconciler").force(),
        &Patch::Apply(
            json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "status": status}),
        ),
    )
    .await
    .unwrap();
}

/// A Cluster API Machine (v1beta2) and the GroundworkMachine it owns.
async fn machine(
    client: &Client,
    ns: &str,
    name: &str,
    failure_domain: &str,
    data_secret: Option<&str>,
    spec: serde_json::Value,
) {
    let ar = resource_of("cluster.x-k8s.io/v1beta2", "Machine");
    let machines: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let mut bootstrap = json!({"configRef": {"apiGroup": "bootstrap.cluster.x-k8s.io", "kind": "KubeadmConfig", "name": name}});
    if let Some(s) = data_secret {
        bootstrap["dataSecretName"] = json!(s);
    }
    let m: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
        "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": "c1"}},
        "spec": {
            "clusterName": "c1",
            "bootstrap": bootstrap,
            "infrastructureRef": {"apiGroup": "infrastructure.groundwork.dev", "kind": "GroundworkMachine", "name": name},
            "failureDomain": failure_domain,
        },
    }))
    .unwrap();
    let m = machines.create(&PostParams::default(), &m).await.unwrap();
    let mut spec = spec;
    spec["image"] =
        json!({"url": "http://10.0.0.1/os.img", "checksum": format!("sha256:{}", "a".repeat(64))});
    let gm: GroundworkMachine = serde_json::from_value(json!({
        "apiVersion": "infrastructure.groundwork.dev/v1alpha1", "kind": "GroundworkMachine",
        "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": "c1"},
            "ownerReferences": [{"apiVersion": "cluster.x-k8s.io/v1beta2", "kind": "Machine",
                "name": name, "uid": m.uid().unwrap(), "controller": true}]},
        "spec": spec,
    }))
    .unwrap();
    Api::<GroundworkMachine>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &gm)
        .await
        .unwrap();
}

fn condition<'a>(
    gm: &'a GroundworkMachine,
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    gm.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

#[tokio::test]
async fn many_machines_at_once_never_claim_one_server_twice() {
    let client = admin_client().await;
    require_capi_crds(&client).await;
    let ns = namespace(&client, "provider-race").await;
    rack(&client, &ns, "a01", 61).await;
    rack(&client, &ns, "a02", 62).await;
    let mut in_a01 = Vec::new();
    for u in 1..=6 {
        in_a01.push(server(&client, &ns, "a01", u, 64).await);
    }
    // Free servers in the other rack: a Machine of a01 must never take them.
    let in_a02 = [
        server(&client, &ns, "a02", 1, 64).await,
        server(&client, &ns, "a02", 2, 64).await,
    ];

    // Every consumerRef each Server ever carried, in order, from a watch started before.
    let history: Arc<Mutex<BTreeMap<String, Vec<Option<String>>>>> = Arc::default();
    let recorder = {
        let history = history.clone();
        let api: Api<Server> = Api::namespaced(client.clone(), &ns);
        tokio::spawn(async move {
            watcher(api, watcher::Config::default())
                .applied_objects()
                .for_each(|s| {
                    if let Ok(s) = s {
                        let uid = s.spec.consumer_ref.as_ref().map(|c| c.uid.clone());
                        let mut h = history.lock().unwrap();
                        let seen = h.entry(s.name_any()).or_default();
                        if seen.last() != Some(&uid) {
                            seen.push(uid);
                        }
                    }
                    futures::future::ready(())
                })
                .await;
        })
    };

    // Two provider instances (a split brain, the worst case), 10 Machines for 6 Servers.
    let flags = provider_flags();
    let (p1, p2) = tokio::join!(
        RunningController::start_with(client.clone(), &ns, &flags),
        RunningController::start_with(client.clone(), &ns, &flags),
    );
    let names: Vec<String> = (0..10).map(|i| format!("w-{i}")).collect();
    futures::future::join_all(
        names
            .iter()
            .map(|n| machine(&client, &ns, n, "a01", None, json!({}))),
    )
    .await;

    let gms: Api<GroundworkMachine> = Api::namespaced(client.clone(), &ns);
    let settled = eventually(
        Duration::from_secs(60),
        "6 claims and 4 NoMatchingServer",
        || async {
            let all = gms.list(&Default::default()).await.ok()?.items;
            let claimed: Vec<(String, String)> = all
                .iter()
                .filter_map(|m| {
                    Some((
                        m.name_any(),
                        m.status.as_ref()?.server_ref.as_ref()?.name.clone(),
                    ))
                })
                .collect();
            let pending = all
                .iter()
                .filter(|m| {
                    condition(m, "ServerClaimed").is_some_and(|c| c.reason == "NoMatchingServer")
                })
                .count();
            (claimed.len() == 6 && pending == 4).then_some((all, claimed))
        },
    )
    .await;
    let (all, claimed) = settled;
    let servers: BTreeSet<&String> = claimed.iter().map(|(_, s)| s).collect();
    assert_eq!(servers.len(), 6, "two Machines share a Server: {claimed:?}");
    assert!(
        servers.iter().all(|s| in_a01.contains(s)),
        "left the failure domain: {claimed:?}"
    );
    let sapi: Api<Server> = Api::namespaced(client.clone(), &ns);
    for (m, s) in &claimed {
        let server = sapi.get(s).await.unwrap();
        let gm = all.iter().find(|g| &g.name_any() == m).unwrap();
        assert_eq!(
            server.spec.consumer_ref.unwrap().uid,
            gm.uid().unwrap(),
            "{s} is not {m}'s"
        );
    }
    for s in &in_a02 {
        assert!(
            sapi.get(s).await.unwrap().spec.consumer_ref.is_none(),
            "{s} is in a02"
        );
    }
    let pending = all
        .iter()
        .find(|m| m.status.as_ref().unwrap().server_ref.is_none())
        .unwrap();
    assert_eq!(
        condition(pending, "ServerClaimed").unwrap().message,
        "failure domain a01: 0 of 6 Servers fit: 6 claimed by another consumer"
    );
    recorder.abort();
    let history = history.lock().unwrap().clone();
    for (server, refs) in &history {
        let owners: BTreeSet<&String> = refs.iter().flatten().collect();
        assert!(
            owners.len() <= 1,
            "{server} was claimed by {owners:?} ({refs:?})"
        );
    }
    p1.stop().await;
    p2.stop().await;
}

#[tokio::test]
async fn claim_waits_for_bootstrap_data_names_what_is_missing_pauses_and_releases() {
    let client = admin_client().await;
    require_capi_crds(&client).await;
    let ns = namespace(&client, "provider-life").await;
    rack(&client, &ns, "a02", 63).await;
    let small = server(&client, &ns, "a02", 5, 64).await;
    let provider = RunningController::start_with(client.clone(), &ns, &provider_flags()).await;
    let gms: Api<GroundworkMachine> = Api::namespaced(client.clone(), &ns);
    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);

    // The cluster's failure domains are the site's Racks.
    let gc: GroundworkCluster = serde_json::from_value(json!({
        "apiVersion": "infrastructure.groundwork.dev/v1alpha1", "kind": "GroundworkCluster",
        "metadata": {"name": "c1"},
        "spec": {"controlPlaneEndpoint": {"host": "10.0.0.1", "port": 6443}},
    }))
    .unwrap();
    let gcs: Api<GroundworkCluster> = Api::namespaced(client.clone(), &ns);
    gcs.create(&PostParams::default(), &gc).await.unwrap();
    eventually(Duration::from_secs(20), "failure domain a02", || async {
        let st = gcs.get("c1").await.ok()?.status?;
        (st.failure_domains.first()?.name == "a02" && st.initialization?.provisioned == Some(true))
            .then_some(())
    })
    .await;

    // 1. Too small: pending, naming the rack and what is missing.
    machine(
        &client,
        &ns,
        "big",
        "a02",
        None,
        json!({"hardware": {"minMemoryGigabytes": 128}}),
    )
    .await;
    let message = eventually(Duration::from_secs(20), "NoMatchingServer", || async {
        let c = condition(&gms.get("big").await.ok()?, "ServerClaimed")?.clone();
        (c.reason == "NoMatchingServer").then_some(c.message)
    })
    .await;
    assert_eq!(
        message,
        "failure domain a02: 0 of 1 Servers fit: 1 with < 128 GiB memory"
    );

    // 2. A fitting Machine claims, sets its providerID, and waits for its bootstrap data.
    machine(
        &client,
        &ns,
        "w",
        "a02",
        Some("w-boot"),
        json!({"cleaning": "Full"}),
    )
    .await;
    let gm = eventually(
        Duration::from_secs(20),
        "claimed, waiting for bootstrap data",
        || async {
            let gm = gms.get("w").await.ok()?;
            (gm.status.as_ref()?.state == Some(MachineState::WaitingForBootstrapData)
                && gm.spec.provider_id.is_some()
                && condition(&gm, "BootstrapDataReady").is_some())
            .then_some(gm)
        },
    )
    .await;
    assert_eq!(
        gm.spec.provider_id.as_deref(),
        Some(format!("groundwork://{ns}/{small}").as_str())
    );
    assert!(
        gm.finalizers()
            .contains(&"infrastructure.groundwork.dev/release".to_string())
    );
    assert!(
        servers.get(&small).await.unwrap().spec.image.is_none(),
        "no image before bootstrap data"
    );

    // 3. The bootstrap Secret arrives: the Server gets image, user-data, cleaning, power.
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "w-boot"},
        "stringData": {"value": "#cloud-config\nruncmd: [echo hi]\n", "format": "cloud-config"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let s = eventually(Duration::from_secs(30), "server intent", || async {
        let s = servers.get(&small).await.ok()?;
        s.spec.image.is_some().then_some(s)
    })
    .await;
    let user = s.spec.user_data.clone().unwrap();
    assert_eq!(
        (user.name.as_str(), user.key.as_deref()),
        ("w-boot", Some("value"))
    );
    assert!(s.spec.online);
    assert_eq!(s.spec.cleaning, crds::server::CleaningMode::Full);
    assert!(
        s.managed_fields()
            .iter()
            .any(|f| f.manager.as_deref() == Some("groundwork-provider")),
        "written under the provider's field manager"
    );

    // 4. Paused: the Paused condition, nothing else moves.
    let pause = |on: bool| json!({"metadata": {"annotations": {"cluster.x-k8s.io/paused": if on { Some("") } else { None }}}});
    gms.patch("w", &PatchParams::default(), &Patch::Merge(pause(true)))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "Paused=True", || async {
        (condition(&gms.get("w").await.ok()?, "Paused")?.status == "True").then_some(())
    })
    .await;
    set_state(&client, &ns, &small, ServerState::Provisioned, 64).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_ne!(
        gms.get("w").await.unwrap().status.unwrap().state,
        Some(MachineState::Provisioned)
    );
    gms.patch("w", &PatchParams::default(), &Patch::Merge(pause(false)))
        .await
        .unwrap();

    // 5. Provisioned: initialization and addresses.
    let st = eventually(Duration::from_secs(20), "provisioned", || async {
        let st = gms.get("w").await.ok()?.status?;
        (st.initialization.as_ref()?.provisioned == Some(true)).then_some(st)
    })
    .await;
    assert_eq!(st.state, Some(MachineState::Provisioned));
    assert_eq!(st.addresses[0].address, "10.20.0.15");
    assert_eq!(st.failure_domain.as_deref(), Some("a02"));

    // 6. Deleted: the image goes (cleaning), then the claim once the Server is Available, then
    // the GroundworkMachine.
    gms.delete("w", &DeleteParams::default()).await.unwrap();
    eventually(Duration::from_secs(20), "image removed", || async {
        servers
            .get(&small)
            .await
            .ok()?
            .spec
            .image
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        servers
            .get(&small)
            .await
            .unwrap()
            .spec
            .consumer_ref
            .is_some(),
        "held while cleaning"
    );
    set_state(&client, &ns, &small, ServerState::Available, 64).await;
    eventually(
        Duration::from_secs(20),
        "server released and machine gone",
        || async {
            let free = servers.get(&small).await.ok()?.spec.consumer_ref.is_none();
            let gone = gms.get_opt("w").await.ok()?.is_none();
            (free && gone).then_some(())
        },
    )
    .await;

    // 7. A Server that fits is added: the waiting Machine is placed.
    let big = server(&client, &ns, "a02", 7, 256).await;
    let placed = eventually(Duration::from_secs(20), "big placed", || async {
        gms.get("big")
            .await
            .ok()?
            .status?
            .server_ref
            .map(|r| r.name)
    })
    .await;
    assert_eq!(placed, big);
    provider.stop().await;
}

#[tokio::test]
async fn the_provider_claims_and_provisions_under_the_charts_rbac() {
    let admin = admin_client().await;
    require_capi_crds(&admin).await;
    let release_ns = namespace(&admin, "gw-provider-system").await;
    let chart = repo_root().join("charts/groundwork");
    let chart = chart.to_str().unwrap();
    let release = format!("gwp{}", std::process::id());
    helm(&[
        "install",
        &release,
        chart,
        "--namespace",
        &release_ns,
        "--set",
        "provider.enabled=true",
    ]);
    // Cluster API's manager role gets the provider's kinds through aggregation.
    let roles: Api<k8s_openapi::api::rbac::v1::ClusterRole> = Api::all(admin.clone());
    let capi = roles
        .get(&format!("{release}-provider-capi"))
        .await
        .unwrap();
    assert_eq!(
        capi.labels()
            .get("cluster.x-k8s.io/aggregate-to-manager")
            .map(String::as_str),
        Some("true")
    );

    let ns = namespace(&admin, "provider-rbac").await;
    rack(&admin, &ns, "b01", 64).await;
    let s = server(&admin, &ns, "b01", 3, 64).await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "m-boot"},
        "stringData": {"value": "#cloud-config\n", "format": "cloud-config"},
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let sa = client_as_service_account(&release_ns, &format!("{release}-provider")).await;
    let provider = RunningController::start_with(sa, &ns, &provider_flags()).await;
    machine(&admin, &ns, "m", "b01", Some("m-boot"), json!({})).await;
    let servers: Api<Server> = Api::namespaced(admin.clone(), &ns);
    eventually(
        Duration::from_secs(30),
        "claimed and given its intent",
        || async {
            let server = servers.get(&s).await.ok()?;
            (server.spec.consumer_ref.is_some() && server.spec.image.is_some()).then_some(())
        },
    )
    .await;
    let gms: Api<GroundworkMachine> = Api::namespaced(admin.clone(), &ns);
    let gm = gms.get("m").await.unwrap();
    assert_eq!(gm.spec.provider_id, Some(format!("groundwork://{ns}/{s}")));
    assert_eq!(gm.status.unwrap().state, Some(MachineState::Provisioning));
    provider.stop().await;
    helm(&["uninstall", &release, "--namespace", &release_ns]);
}
