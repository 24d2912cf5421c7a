//! Boot tokens need no shared state: a controller restarted between a machine's DHCP and its
//! script fetch still completes the boot, and a token only works for its own server and
//! attempt. Real peers: busybox udhcpc and curl in a namespace, the IPMI BMC simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../bmc/tests/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::process::Command;
use std::time::Duration;

use common::IpmiSim;
use crds::{Server, ServerState};
use e2e::netlab::{NetLab, require};
use e2e::{RunningController, admin_client, eventually, inspection_site, namespace, wait_state};
use kube::api::Api;
use serde_json::json;

const MAC_X: &str = "52:54:00:63:00:01";
const MAC_Y: &str = "52:54:00:63:00:02";

fn curl(ns: &str, args: &[&str]) -> (u16, String) {
    let out = tokio::task::block_in_place(|| {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "curl",
                "-sS",
                "--max-time",
                "5",
                "-w",
                "\n%{http_code}",
            ])
            .args(args)
            .output()
            .unwrap()
    });
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

fn callback(ns: &str, server: &str, token: &str) -> u16 {
    let body = json!({"server": server, "token": token, "mac": MAC_X, "mode": "inspect",
        "inventory": {"cpuCount": 2, "memoryBytes": 1073741824u64,
            "disks": [{"name": "vda", "sizeBytes": 8589934592u64, "rotational": false}],
            "nics": [{"name": "eth0", "mac": MAC_X, "linkUp": true}]}})
    .to_string();
    curl(
        ns,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data",
            &body,
            "http://10.63.0.2:8081/boot/callback",
        ],
    )
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_completes_across_a_controller_restart_and_tokens_are_per_server() {
    require("busybox");
    require("curl");
    let ipmi = IpmiSim::start(2, "admin", "lab-password");
    let client = admin_client().await;
    let ns = namespace(&client, "bootrs").await;
    let mut lab = NetLab::new();
    let boot = lab.netns("boot");
    let machine = lab.netns("m");
    lab.bridge(&boot, "br0", "10.63.0.2/24");
    lab.veth(
        &boot,
        "p1",
        Some("br0"),
        None,
        &machine,
        "eth0",
        Some(MAC_X),
        None,
    );
    let artifacts = lab.dir.join("artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    std::fs::write(artifacts.join("vmlinuz"), b"kernel bytes").unwrap();
    std::fs::write(artifacts.join("initrd.img"), b"initrd bytes").unwrap();
    let key = lab.token_key();
    let flags: Vec<String> = [
        "--boot-services",
        "--dhcp-interface",
        "br0",
        "--boot-netns",
        &boot,
        "--boot-artifacts",
        artifacts.to_str().unwrap(),
        "--boot-token-key-file",
        key.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    inspection_site(
        &client,
        &ns,
        "10.63.0.0/24",
        &[("x", MAC_X, ipmi.address(0)), ("y", MAC_Y, ipmi.address(1))],
    )
    .await;
    let api: Api<Server> = Api::namespaced(client.clone(), &ns);
    let controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    // Created with an inspection request: registered, then straight to the ramdisk.
    wait_state(&client, &ns, &["x", "y"], ServerState::Inspecting).await;
    eventually(
        Duration::from_secs(20),
        "network boot override set through IPMI",
        || {
            let set = ipmi
                .events_for(0)
                .iter()
                .any(|e| e.contains("set_boot") && e.contains("network"));
            async move { set.then_some(()) }
        },
    )
    .await;

    // DHCP, then the controller goes away before the script is fetched.
    let lab_ref = &lab;
    let leased = eventually(Duration::from_secs(20), "DHCP lease for x", || {
        let m = machine.clone();
        async move { tokio::task::block_in_place(|| lab_ref.udhcpc(&m, "eth0")) }
    })
    .await;
    assert_eq!(leased.to_string(), "10.63.0.11");
    eventually(Duration::from_secs(10), "DHCP step recorded", || async {
        let s = api.get("x").await.ok()?;
        s.status?.boot_progress?.dhcp_at.map(|_| ())
    })
    .await;
    controller.stop().await;
    let controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    e2e::netlab::run(Command::new("ip").args([
        "-n",
        &machine,
        "addr",
        "add",
        "10.63.0.11/24",
        "dev",
        "eth0",
    ]));

    let script_url = format!("http://10.63.0.2:8081/boot/{MAC_X}.ipxe");
    let script = eventually(
        Duration::from_secs(20),
        "ramdisk script from the new process",
        || {
            let (code, body) = curl(&machine, &[&script_url]);
            async move { (code == 200 && body.contains("groundwork.token=")).then_some(body) }
        },
    )
    .await;
    let token = script
        .split_whitespace()
        .find_map(|w| w.strip_prefix("groundwork.token="))
        .unwrap()
        .to_string();
    assert!(script.contains(&format!("groundwork.server={ns}/x")));
    for artifact in ["vmlinuz", "initrd.img"] {
        let (code, body) = curl(
            &machine,
            &[&format!("http://10.63.0.2:8081/boot/{MAC_X}/{artifact}")],
        );
        assert_eq!(code, 200);
        assert!(body.ends_with("bytes"));
    }
    // x's token does not work for y, nor does a made-up one for x.
    assert_eq!(callback(&machine, &format!("{ns}/y"), &token), 403);
    assert_eq!(callback(&machine, &format!("{ns}/x"), &"0".repeat(64)), 403);
    assert_eq!(callback(&machine, &format!("{ns}/x"), &token), 200);

    let x = eventually(Duration::from_secs(30), "x inspected", || async {
        let s = api.get("x").await.ok()?;
        let st = s.status.clone()?;
        (st.state? == ServerState::Available && st.hardware.is_some()).then_some(s)
    })
    .await;
    let st = x.status.unwrap();
    let p = st.boot_progress.unwrap();
    assert!(p.dhcp_at.is_some() && p.script_at.is_some() && p.kernel_at.is_some());
    assert!(p.initrd_at.is_some() && p.called_back_at.is_some());
    assert_eq!(st.hardware.unwrap().cpu_count, 2);
    // The attempt is over: the same token is refused and the machine is sent to its disk.
    assert_eq!(callback(&machine, &format!("{ns}/x"), &token), 409);
    let (_, script) = curl(&machine, &[&script_url]);
    assert!(script.contains("\nexit\n"), "{script}");
    let y = api.get("y").await.unwrap();
    assert_eq!(
        y.status.unwrap().state,
        Some(ServerState::Inspecting),
        "y untouched"
    );
    controller.stop().await;
}
