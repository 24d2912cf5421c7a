//! Provisioning benchmark: power-on → Provisioned for 1 and 2 QEMU servers through the
//! controller (DHCP, iPXE, ramdisk with the agent, image + config drive, disk boot through the
//! BMC, first check-in), per image format. Run through `hack/bench-provision.sh`, which
//! measures the bare cycle (busybox `wget | dd`, then disk boot) in the same run; never a timed
//! test. `--servers 1,2` and `--formats raw,raw+zstd` choose the runs.
//!
//! Each run is followed by its warm twin (issue 16): the same servers and image from a warm
//! pool (`standby: Standby`, inspected and waiting in the ramdisk), timed from `spec.image` set
//! (the Provisioning phase's start, as for the cold run) to Provisioned: the agent writes and
//! kexecs, no firmware, no BMC.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use crds::Server;
use crds::server::{ServerState, ServerStatus};
use e2e::provisioning::{boot_flags, image, rig, sha256, site, standby_pool, wait_for};
use e2e::{RunningController, admin_client, arg_list as list, namespace};
use kube::api::{Api, Patch, PatchParams};

/// When the server entered Provisioning (power-on requested) and Provisioned.
fn span(s: &ServerStatus) -> (jiff::Timestamp, jiff::Timestamp) {
    let start = s.phases.iter().find(|p| p.name == "Provisioning").unwrap();
    let end = s
        .phases
        .iter()
        .rev()
        .find(|p| p.name == "Provisioned")
        .unwrap();
    (start.started_at.0, end.started_at.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let client = admin_client().await;
    for n in list("--servers", "1,2") {
        let n: usize = n.parse().unwrap();
        for format in list("--formats", "raw,raw+zstd") {
            let file = if format == "raw" {
                "os.raw"
            } else {
                "os.raw.zst"
            };
            let rig = rig(n).await;
            let ns = namespace(&client, "bench-provision").await;
            let sha = sha256(&rig.www.join(file));
            let flags = boot_flags(&rig, 900);
            let controller = RunningController::start_with(client.clone(), &ns, &flags).await;
            site(&client, &ns, &rig.ports, &image(file, &sha, &format)).await;
            let api: Api<Server> = Api::namespaced(client.clone(), &ns);
            report(
                &rig,
                &api,
                ("ours", "power_on_to_provisioned_s"),
                n,
                &format,
            )
            .await;
            controller.stop().await;
            warm(&client, n, file, &format).await;
        }
    }
}

/// The warm twin of a run: a pool of `n` standby servers given the same image at once.
async fn warm(client: &kube::Client, n: usize, file: &str, format: &str) {
    let rig = rig(n).await;
    let ns = namespace(client, "bench-provision-warm").await;
    let sha = sha256(&rig.www.join(file));
    let flags = boot_flags(&rig, 900);
    let controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    standby_pool(client, &ns, &rig, &["Legacy"]).await;
    let api: Api<Server> = Api::namespaced(client.clone(), &ns);
    let spec = serde_json::json!({"spec": {"image": image(file, &sha, format), "online": true}});
    for i in 0..n {
        api.patch(
            &format!("s{}", i + 1),
            &PatchParams::default(),
            &Patch::Merge(&spec),
        )
        .await
        .unwrap();
    }
    report(&rig, &api, ("warm", "image_to_provisioned_s"), n, format).await;
    controller.stop().await;
}

/// Waits for the rig's `n` servers to be Provisioned; prints each one's span (Provisioning →
/// Provisioned) and phases, then the run's total, as `label` lines (`hack/bench-provision.sh`
/// reads the `RESULT` line).
async fn report(
    rig: &e2e::provisioning::Rig,
    api: &Api<Server>,
    (label, figure): (&str, &str),
    n: usize,
    format: &str,
) {
    let mut spans = Vec::new();
    for i in 0..n {
        let name = format!("s{}", i + 1);
        let s = wait_for(&rig.lab, api, &name, ServerState::Provisioned, 600).await;
        let (start, end) = span(&s);
        println!(
            "{label} vms={n} format={format} server={name} {figure}={:.1} phases_s: {}",
            end.duration_since(start).as_secs_f64(),
            phases(&s)
        );
        spans.push((start, end));
    }
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    println!(
        "RESULT {label} vms={n} format={format} total_s={:.1}",
        last.duration_since(first).as_secs_f64()
    );
}

/// The sub-phases' durations, `name=seconds`.
fn phases(s: &ServerStatus) -> String {
    s.phases
        .iter()
        .filter(|p| !matches!(p.name.as_str(), "Provisioned" | "Registering" | "Standby"))
        .filter_map(|p| Some(format!("{}={:.1}", p.name, p.duration_ms? as f64 / 1000.0)))
        .collect::<Vec<_>>()
        .join(" ")
}
