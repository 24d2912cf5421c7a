//! The plugin against the real API server started by `hack/controlplane.sh` (or `hack/test.sh`):
//! a small site (one Rack, two Servers), the rack elevation, `power off` and `reboot`; the
//! public addresses a server carries (a LoadBalancer Service, its Nodes and endpoints), and the
//! view of a user who may not list Services.
//!
//! Test helpers panic on purpose: a missing peer must fail the test, never skip it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use crds::service::conditions::{ADDRESS_ALLOCATED, announced};
use crds::service::{LOAD_BALANCER_CLASS, SERVICE_NAME_LABEL};
use crds::{BorderRouter, Rack, Server};
use k8s_openapi::api::core::v1::{Node, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Config, ResourceExt};
use serde_json::json;

fn kubeconfig() -> PathBuf {
    let dir = std::env::var("GROUNDWORK_TEST_CONTROLPLANE").expect(
        "GROUNDWORK_TEST_CONTROLPLANE is not set: run through hack/test.sh or point it at a hack/controlplane.sh dir",
    );
    let path = PathBuf::from(dir).join("kubeconfig");
    assert!(path.exists(), "no kubeconfig at {}", path.display());
    path
}

async fn client() -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig()).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn plugin(args: &[&str]) -> String {
    plugin_as(&kubeconfig(), args)
}

/// Runs the plugin with the identity of `kubeconfig`.
fn plugin_as(kubeconfig: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-groundwork"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kubectl-groundwork {args:?} failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A fresh namespace `prefix-<pid>-<ms>`: a bare API server never finishes deleting one, so
/// every run gets its own.
async fn namespace(client: &Client, prefix: &str) -> String {
    let ns = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            % 1_000_000
    );
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    ns
}

/// Creates `doc` (any namespaced kind) in `ns`.
async fn create<K>(client: &Client, ns: &str, doc: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(doc).unwrap(),
    )
    .await
    .unwrap();
}

/// The line of the elevation for U `u` (`U04`, …).
fn line(out: &str, u: &str) -> String {
    out.lines()
        .find(|l| l.starts_with(&format!("{u} |")))
        .unwrap_or_else(|| panic!("no {u} line in:\n{out}"))
        .to_string()
}

#[tokio::test]
async fn rack_power_and_reboot_against_the_api_server() {
    let client = client().await;
    let ns = namespace(&client, "plugin").await;

    let racks: Api<Rack> = Api::namespaced(client.clone(), &ns);
    let rack: Rack = serde_json::from_value(json!({
        "apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack",
        "metadata": {"name": "rack-a01"},
        "spec": {
            "location": {"site": "lab", "room": "r1"},
            "heightU": 12,
            "power": {"budgetWatts": 2000},
            "torSwitches": [{"name": "tor-a01", "rackUnit": 12}],
            "networks": {"provisioning": {"subnet": "10.10.0.0/24"}}
        }
    }))
    .unwrap();
    racks.create(&PostParams::default(), &rack).await.unwrap();

    let servers: Api<Server> = Api::namespaced(client.clone(), &ns);
    for (name, unit, height) in [("srv-low", 3, 2), ("srv-high", 10, 1)] {
        let server: Server = serde_json::from_value(json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
            "metadata": {"name": name},
            "spec": {"rackRef": {"name": "rack-a01"}, "rackUnit": unit, "heightU": height,
                "online": true, "maxPowerWatts": 400}
        }))
        .unwrap();
        servers
            .create(&PostParams::default(), &server)
            .await
            .unwrap();
    }

    let out = plugin(&["rack", "rack-a01", "-n", &ns]);
    let line = |u: &str| line(&out, u);
    assert!(line("U12").contains("[switch] tor-a01"), "{out}");
    assert!(line("U10").contains("srv-high"), "{out}");
    assert!(line("U04").contains("srv-low"), "{out}");
    assert!(line("U03").contains("^ srv-low"), "{out}");
    for u in ["U11", "U09", "U05", "U02", "U01"] {
        assert_eq!(line(u), format!("{u} |"), "{out}");
    }
    assert!(
        out.contains("Power: 800 W declared of 2000 W budget (40%)"),
        "{out}"
    );

    let status = plugin(&["status", "-n", &ns]);
    assert!(status.contains("rack-a01"), "{status}");
    assert!(status.contains("srv-low"), "{status}");

    plugin(&["power", "off", "srv-high", "-n", &ns]);
    let s = servers.get("srv-high").await.unwrap();
    assert!(!s.spec.online, "power off did not set spec.online=false");
    assert!(servers.get("srv-low").await.unwrap().spec.online);
    let managers: Vec<String> = s
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(
        managers.iter().any(|m| m == "kubectl-groundwork"),
        "{managers:?}"
    );

    plugin(&["reboot", "srv-low", "-n", &ns]);
    let first = servers
        .get("srv-low")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default()
        .get("groundwork.dev/reboot")
        .cloned()
        .expect("reboot annotation missing");
    plugin(&["reboot", "srv-low", "-n", &ns]);
    let second = servers
        .get("srv-low")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default()
        .get("groundwork.dev/reboot")
        .cloned()
        .expect("reboot annotation missing");
    assert_ne!(first, second, "each reboot must carry a fresh request id");
}

/// The label on the test's cluster-wide objects (Nodes) and its Services, so a run removes
/// what an earlier, failed run left: the router's selection sees every namespace.
const LB_TEST_LABEL: &str = "groundwork.dev/test=plugin-lb";

/// Deletes the Nodes and Services an earlier run of the public-address test left.
async fn remove_lb_test_objects(client: &Client) {
    let lp = ListParams::default().labels(LB_TEST_LABEL);
    let nodes: Api<Node> = Api::all(client.clone());
    for n in nodes.list(&lp).await.unwrap() {
        let _ = nodes.delete(&n.name_any(), &DeleteParams::default()).await;
    }
    for s in Api::<Service>::all(client.clone()).list(&lp).await.unwrap() {
        let api: Api<Service> = Api::namespaced(client.clone(), &s.namespace().unwrap());
        let _ = api.delete(&s.name_any(), &DeleteParams::default()).await;
    }
}

/// A Node as the kubelet registers it: `providerID` (when given), Ready, one InternalIP.
async fn node(client: &Client, name: &str, provider_id: Option<&str>, ip: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"groundwork.dev/test": "plugin-lb"}},
                "spec": {"providerID": provider_id}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": ip}],
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "test", "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// A kubeconfig for ServiceAccount `sa` of `ns` (a token request), written next to the
/// control plane's.
async fn kubeconfig_of(client: &Client, ns: &str, sa: &str) -> PathBuf {
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let request = serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).unwrap();
    let token = sas
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let kc = kube::config::Kubeconfig::read_from(kubeconfig()).unwrap();
    let path = kubeconfig().with_file_name(format!("{ns}-{sa}.kubeconfig"));
    // The admin's cluster and context, the ServiceAccount's token as the user. JSON is YAML:
    // the plugin reads it like any kubeconfig.
    let mut doc = serde_json::to_value(&kc).unwrap();
    for user in doc["users"].as_array_mut().unwrap() {
        user["user"] = json!({"token": token});
    }
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    path
}

/// A LoadBalancer Service with an allocated address (its status written as the controller
/// writes it, and the edge daemon's Announced condition), its endpoints on two Nodes: the
/// servers those Nodes run on show the address in `rack` and `status`, the server whose Node
/// holds no endpoint does not. A user who may read the site but not list Services cluster-wide
/// still gets the rack, with one line saying why the addresses are missing.
#[tokio::test]
async fn rack_and_status_show_the_public_addresses_servers_carry() {
    let client = client().await;
    remove_lb_test_objects(&client).await;
    let ns = namespace(&client, "plugin-lb").await;
    create::<Rack>(
        &client,
        &ns,
        json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack",
            "metadata": {"name": "rack-b01"},
            "spec": {"location": {"site": "lab", "room": "r1"}, "heightU": 8,
                "networks": {"provisioning": {"subnet": "10.10.0.0/24"}}}
        }),
    )
    .await;
    // by-id: its Node is named otherwise and found by providerID; by-name: its Node has no
    // providerID and its name; idle: its Node is Ready but holds no endpoint.
    let by_name = format!("{ns}-u05");
    for (name, unit) in [("by-id", 2), (by_name.as_str(), 5), ("idle", 7)] {
        create::<Server>(
            &client,
            &ns,
            json!({
                "apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
                "metadata": {"name": name},
                "spec": {"rackRef": {"name": "rack-b01"}, "rackUnit": unit, "heightU": 1,
                    "online": true}
            }),
        )
        .await;
    }
    let node_by_id = format!("{ns}-k1");
    let node_idle = format!("{ns}-k3");
    node(
        &client,
        &node_by_id,
        Some(&crds::provider::provider_id(&ns, "by-id")),
        "10.88.0.11",
    )
    .await;
    node(&client, &by_name, None, "10.88.0.12").await;
    node(
        &client,
        &node_idle,
        Some(&crds::provider::provider_id(&ns, "idle")),
        "10.88.0.13",
    )
    .await;

    create::<BorderRouter>(
        &client,
        &ns,
        json!({
            "apiVersion": "groundwork.dev/v1alpha1", "kind": "BorderRouter",
            "metadata": {"name": "edge1"},
            "spec": {"localASN": 65000, "routerID": "192.0.2.1", "ownPrefixes": ["198.51.100.0/24"],
                "serviceAddressPools": [{"name": "public", "cidrs": ["198.51.100.224/28"]}],
                "nodeNetworks": ["10.88.0.0/24"]}
        }),
    )
    .await;
    create::<Service>(
        &client,
        &ns,
        json!({
            "metadata": {"name": "hello", "labels": {"groundwork.dev/test": "plugin-lb"}},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": LOAD_BALANCER_CLASS,
                "externalTrafficPolicy": "Local", "ports": [{"port": 80, "protocol": "TCP"}]}
        }),
    )
    .await;
    // Addresses and networks no other test uses: the selection sees every namespace.
    let address = "198.51.100.230";
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let message = format!("{address}/32 announced on isp-a via 10.88.0.11, 10.88.0.12");
    let status = json!({"apiVersion": "v1", "kind": "Service", "status": {
        "loadBalancer": {"ingress": [{"ip": address}]},
        "conditions": [
            {"type": ADDRESS_ALLOCATED, "status": "True", "reason": "Allocated",
             "message": format!("allocated {address}"), "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": announced("edge1"), "status": "True", "reason": "Announced",
             "message": message, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    services
        .patch_status(
            "hello",
            &PatchParams::apply(crds::field_managers::CONTROLLER).force(),
            &Patch::Apply(&status),
        )
        .await
        .unwrap();
    create::<EndpointSlice>(
        &client,
        &ns,
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "hello-1", "labels": {SERVICE_NAME_LABEL: "hello"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.244.1.5"], "nodeName": node_by_id, "conditions": {"ready": true}},
                {"addresses": ["10.244.2.5"], "nodeName": by_name, "conditions": {"ready": true}}],
            "ports": [{"port": 8080, "protocol": "TCP"}]
        }),
    )
    .await;

    let out = plugin(&["rack", "rack-b01", "-n", &ns]);
    println!("{out}");
    let public = format!("public: {address} ({ns}/hello)");
    assert!(line(&out, "U2").contains(&public), "{out}");
    assert!(line(&out, "U5").contains(&public), "{out}");
    assert!(line(&out, "U7").starts_with("U7 | idle"), "{out}");
    assert!(!line(&out, "U7").contains("public"), "{out}");
    assert!(!out.contains("not shown"), "{out}");

    let status = plugin(&["status", "-n", &ns]);
    println!("{status}");
    let section = status
        .split("PUBLIC ADDRESSES\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no PUBLIC ADDRESSES in:\n{status}"));
    let row = section
        .lines()
        .find(|l| l.starts_with(address))
        .unwrap_or_else(|| panic!("no row of {address} in:\n{status}"));
    let cells: Vec<&str> = row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        cells[..4],
        [
            address,
            format!("{ns}/hello").as_str(),
            "edge1",
            format!("by-id, {by_name}").as_str()
        ],
        "{status}"
    );
    assert!(
        row.contains(&format!("True Announced: {message}")),
        "{status}"
    );

    // A viewer of the site who may not list Services (nor Nodes) cluster-wide.
    create::<ServiceAccount>(&client, &ns, json!({"metadata": {"name": "viewer"}})).await;
    create::<Role>(
        &client,
        &ns,
        json!({
            "metadata": {"name": "viewer"},
            "rules": [{"apiGroups": ["groundwork.dev"], "verbs": ["get", "list"],
                "resources": ["racks", "servers", "upstreamlinks", "borderrouters"]}]
        }),
    )
    .await;
    create::<RoleBinding>(
        &client,
        &ns,
        json!({
            "metadata": {"name": "viewer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "viewer"},
            "subjects": [{"kind": "ServiceAccount", "name": "viewer", "namespace": ns}]
        }),
    )
    .await;
    let viewer = kubeconfig_of(&client, &ns, "viewer").await;
    let out = plugin_as(&viewer, &["rack", "rack-b01", "-n", &ns]);
    println!("{out}");
    let why: Vec<&str> = out.lines().filter(|l| l.contains("not shown")).collect();
    assert_eq!(why.len(), 1, "{out}");
    assert!(
        why[0].starts_with(
            "Public addresses not shown: cannot list services in all namespaces: services is forbidden"
        ),
        "{out}"
    );
    assert!(line(&out, "U2").starts_with("U2 | by-id"), "{out}");
    assert!(!out.contains("public:"), "{out}");
    let status = plugin_as(&viewer, &["status", "-n", &ns]);
    assert!(
        status.contains("PUBLIC ADDRESSES\nnot shown: cannot list services"),
        "{status}"
    );
    let _ = std::fs::remove_file(&viewer);

    remove_lb_test_objects(&client).await;
}
