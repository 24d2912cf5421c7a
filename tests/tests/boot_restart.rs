//! Boot tokens need no shared state: a controller restarted between a machine's DHCP and its
//! script fetch still completes the boot, and a token only works for its own server and
//! attempt. Real peers: busybox udhcpc and curl in a namespace, the agent API reached from
//! there, the IPMI BMC simulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../bmc/tests/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::process::Command;
use std::time::Duration;

use agent::cmdline::BootParams;
use agent::run::RetryPolicy;
use common::IpmiSim;
use crds::{Server, ServerState};
use e2e::netlab::{NetLab, require};
use e2e::{RunningController, admin_client, eventually, inspection_site, namespace, wait_state};
use kube::api::Api;
use proto::agent_v1::agent_client::AgentClient;
use proto::agent_v1::{Disk, Inventory, Nic, RegisterRequest};
use tonic::Code;

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

/// Registers `server` with `token` from inside the machine's namespace, as its agent would
/// (the agent API over TLS to the CA pinned in the script it booted): the answer's code.
fn register_from(machine: &str, params: &BootParams, server: &str, token: &str) -> Code {
    let request = RegisterRequest {
        server: server.into(),
        boot_token: token.into(),
        boot_mac: MAC_X.into(),
        inventory: Some(Inventory {
            cpu_count: 2,
            memory_bytes: 1 << 30,
            disks: vec![Disk {
                name: "vda".into(),
                size_bytes: 8 << 30,
                ..Default::default()
            }],
            nics: vec![Nic {
                name: "eth0".into(),
                mac: MAC_X.into(),
                link_up: true,
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    let params = params.clone();
    let netns = boot::netns::named(machine);
    tokio::task::block_in_place(|| {
        boot::netns::within(Some(&netns), move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let channel = agent::run::channel(&params, RetryPolicy::default())
                    .await
                    .unwrap();
                match AgentClient::new(channel).register(request).await {
                    Ok(_) => Code::Ok,
                    Err(status) => status.code(),
                }
            })
        })
        .unwrap()
    })
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
    let kernel = script.lines().find(|l| l.starts_with("kernel ")).unwrap();
    let params = agent::cmdline::parse(kernel).expect("groundwork.agent on the command line");
    assert_eq!(params.server, format!("{ns}/x"));
    let token = params.token.clone();
    for artifact in ["vmlinuz", "initrd.img"] {
        let (code, body) = curl(
            &machine,
            &[&format!("http://10.63.0.2:8081/boot/{MAC_X}/{artifact}")],
        );
        assert_eq!(code, 200);
        assert!(body.ends_with("bytes"));
    }
    // x's token does not work for y, nor does a made-up one for x.
    let register = |server: &str, token: &str| register_from(&machine, &params, server, token);
    assert_eq!(register(&format!("{ns}/y"), &token), Code::PermissionDenied);
    assert_eq!(
        register(&format!("{ns}/x"), &"0".repeat(64)),
        Code::PermissionDenied
    );
    assert_eq!(register(&format!("{ns}/x"), &token), Code::Ok);

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
    assert_eq!(
        register(&format!("{ns}/x"), &token),
        Code::FailedPrecondition
    );
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
