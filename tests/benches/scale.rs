//! Scale benchmark: R racks × S servers against the real API server.
//!
//! Prints, beside each other: the time from the last create to every Rack status being correct,
//! the controller's peak RSS, mutating requests in the window after convergence, and the
//! baseline — a plain client writing the same number of status patches (the API server's own
//! ceiling) — with the ratio. Run through `hack/bench-scale.sh`; never a timed test.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crds::Rack;
use e2e::{AuditWindow, admin_client, namespace};
use futures::{StreamExt, stream};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const IN_FLIGHT: usize = 64;

fn arg(name: &str, default: u32) -> u32 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().unwrap())
}

/// Rack `i` with networks of its own (racks sharing a subnet report an overlap, never Ready).
fn rack(i: u32, height: u32) -> serde_json::Value {
    let net = |base: u32| format!("10.{}.{}", base + i / 256, i % 256);
    json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack", "metadata": {"name": format!("r{i:03}")},
           "spec": {"location": {"site": "bench", "row": format!("{}", i / 10)}, "heightU": height,
                    "power": {"budgetWatts": 100_000},
                    "networks": {"provisioning": {"subnet": format!("{}.0/24", net(10))},
                                 "node": {"subnet": format!("{}.0/24", net(100)), "gateway": format!("{}.1", net(100))}}}})
}

fn server(r: u32, u: u32) -> serde_json::Value {
    json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "metadata": {"name": format!("r{r:03}-u{u:03}")},
           "spec": {"rackRef": {"name": format!("r{r:03}")}, "rackUnit": u, "maxPowerWatts": 400,
                    "bootMACAddress": format!("52:54:00:{:02x}:{:02x}:{:02x}", r % 256, u / 256, u % 256)}})
}

async fn create_all(client: &kube::Client, ns: &str, racks: u32, servers: u32) {
    let docs: Vec<serde_json::Value> = (0..racks)
        .map(|r| rack(r, servers.max(42)))
        .chain((0..racks).flat_map(|r| (1..=servers).map(move |u| server(r, u))))
        .collect();
    stream::iter(docs)
        .for_each_concurrent(IN_FLIGHT, |doc| async move {
            let ar = e2e::resource_of("groundwork.dev/v1alpha1", doc["kind"].as_str().unwrap());
            let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            let obj: kube::api::DynamicObject = serde_json::from_value(doc).unwrap();
            api.create(&PostParams::default(), &obj).await.unwrap();
        })
        .await;
}

/// The API server's ceiling: a plain client writes one status patch per server.
async fn baseline(client: &kube::Client, racks: u32, servers: u32) -> Duration {
    let ns = namespace(client, "bench-baseline").await;
    create_all(client, &ns, racks, servers).await;
    let api: Api<crds::Server> = Api::namespaced(client.clone(), &ns);
    let names: Vec<String> = (0..racks)
        .flat_map(|r| (1..=servers).map(move |u| format!("r{r:03}-u{u:03}")))
        .collect();
    let started = Instant::now();
    stream::iter(names)
        .for_each_concurrent(IN_FLIGHT, |name| {
            let api = api.clone();
            async move {
                let status = json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server",
                    "status": {"state": "Registering", "observedGeneration": 1, "conditions": [
                        {"type": "Ready", "status": "False", "reason": "Pending", "message": "baseline",
                         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
                api.patch_status(&name, &PatchParams::apply("bench-baseline").force(), &Patch::Apply(&status)).await.unwrap();
            }
        })
        .await;
    started.elapsed()
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let racks = arg("--racks", 100);
    let servers = arg("--servers", 100);
    let quiet_secs = arg("--quiet-seconds", 60);
    let bin = std::env::var("GROUNDWORK_CONTROLLER_BIN")
        .expect("GROUNDWORK_CONTROLLER_BIN: path of the controller binary");
    let client = admin_client().await;
    let total = racks * servers;
    println!("scale benchmark: {racks} racks x {servers} servers = {total} Servers");

    let base = baseline(&client, racks, servers).await;

    let ns = namespace(&client, "bench").await;
    let kubeconfig = e2e::controlplane_dir().join("kubeconfig");
    let mut child = std::process::Command::new(&bin)
        .args([
            "--namespace",
            &ns,
            "--metrics-addr",
            "127.0.0.1:0",
            "--lease-name",
            &format!("bench-{ns}"),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("controller binary");
    let pid = child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;

    create_all(&client, &ns, racks, servers).await;
    let last_create = Instant::now();
    let rack_api: Api<Rack> = Api::namespaced(client.clone(), &ns);
    loop {
        let list = rack_api.list(&ListParams::default()).await.unwrap();
        let correct = list
            .items
            .iter()
            .filter(|r| {
                r.status.as_ref().is_some_and(|s| {
                    s.server_count == servers
                        && s.servers_by_state.get("Registering") == Some(&servers)
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status == "True")
                })
            })
            .count();
        if correct == racks as usize {
            break;
        }
        assert!(
            last_create.elapsed() < Duration::from_secs(900),
            "not converged after 900 s ({correct}/{racks})"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let converge = last_create.elapsed();
    // At rest only once every Server carries the status the controller writes.
    let server_api: Api<crds::Server> = Api::namespaced(client.clone(), &ns);
    loop {
        let list = server_api.list(&ListParams::default()).await.unwrap();
        let done = list
            .items
            .iter()
            .filter(|s| s.status.as_ref().is_some_and(|st| st.state.is_some()))
            .count();
        if done == total as usize {
            break;
        }
        assert!(
            last_create.elapsed() < Duration::from_secs(900),
            "server statuses not written after 900 s ({done}/{total})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all_status = last_create.elapsed();
    // Let the last status writes' own watch events settle before counting writes at rest.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let window = AuditWindow::open(&ns);
    tokio::time::sleep(Duration::from_secs(u64::from(quiet_secs))).await;
    let writes = window.close::<Rack>(&client, "r000").await.len();
    let rss_mib = peak_rss_kib(pid) as f64 / 1024.0;
    let _ = child.kill();
    let _ = child.wait();

    let ratio = all_status.as_secs_f64() / base.as_secs_f64();
    println!("{:<52} {:>12} {:>14}", "figure", "measured", "target");
    println!(
        "{:<52} {:>10.1} s {:>14}",
        "last create -> all Rack statuses correct",
        converge.as_secs_f64(),
        "<= 60 s"
    );
    println!(
        "{:<52} {:>10.1} s {:>14}",
        "last create -> every Server status written",
        all_status.as_secs_f64(),
        "-"
    );
    println!(
        "{:<52} {:>10.1} s {:>14}",
        format!("baseline: plain client, {total} status patches"),
        base.as_secs_f64(),
        "-"
    );
    println!(
        "{:<52} {:>11.2}x {:>14}",
        "ratio (every Server status) / baseline", ratio, "<= 2x"
    );
    println!(
        "{:<52} {:>8.1} MiB {:>14}",
        "controller peak RSS (VmHWM)", rss_mib, "<= 256 MiB"
    );
    println!(
        "{:<52} {:>12} {:>14}",
        format!("mutating requests in {quiet_secs} s after convergence"),
        writes,
        "0"
    );
}
