//! The plugin against the real API server started by `hack/controlplane.sh` (or `hack/test.sh`):
//! a small site (one Rack, two Servers), the rack elevation, `power off` and `reboot`.
//!
//! Test helpers panic on purpose: a missing peer must fail the test, never skip it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use crds::{Rack, Server};
use kube::api::{Api, PostParams};
use kube::{Client, Config};
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
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-groundwork"))
        .arg("--kubeconfig")
        .arg(kubeconfig())
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

#[tokio::test]
async fn rack_power_and_reboot_against_the_api_server() {
    let client = client().await;
    // A bare API server never finishes deleting a namespace: every run gets its own.
    let ns = format!(
        "plugin-{}-{}",
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
    let line = |u: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("{u} |")))
            .unwrap_or_else(|| panic!("no {u} line in:\n{out}"))
            .to_string()
    };
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
