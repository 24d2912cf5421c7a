//! Network boot against real peers: QEMU machines (SeaBIOS + iPXE ROM, and OVMF's UEFI HTTP
//! boot) powered by an IPMI BMC simulator, booting through the controller's own DHCP, HTTP and
//! iPXE scripts into the test ramdisk, whose agent registers over the agent API and lands its
//! inventory in the Server's status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

use crds::Server;
use e2e::netlab::NetLab;
use e2e::{RunningController, admin_client, apply_doc, eventually, namespace};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

const BIOS_MAC: &str = "52:54:00:61:00:01";
const UEFI_MAC: &str = "52:54:00:61:00:02";

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn site(client: &kube::Client, ns: &str, bmcs: &[(&str, u16, &str, &str, u32)]) {
    apply_doc(
        client,
        ns,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bmc"},
            "stringData": {"username": "admin", "password": "lab-password"}}),
    )
    .await
    .unwrap();
    apply_doc(
        client,
        ns,
        json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack", "metadata": {"name": "r1"},
            "spec": {"location": {"site": "lab"}, "networks": {"provisioning": {
                "subnet": "10.61.0.0/24", "gateway": "10.61.0.1"}}}}),
    )
    .await
    .unwrap();
    for (name, port, mac, mode, unit) in bmcs {
        apply_doc(
            client,
            ns,
            json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "metadata": {"name": name},
                "spec": {"rackRef": {"name": "r1"}, "rackUnit": unit, "bootMACAddress": mac,
                    "bootMode": mode, "online": false,
                    "bmc": {"address": format!("ipmi://127.0.0.1:{port}"),
                            "credentialsSecretRef": {"name": "bmc"}}}}),
        )
        .await
        .unwrap();
    }
}

fn boot_flags(lab: &NetLab, boot_ns: &str, interface: &str) -> Vec<String> {
    let artifacts = lab.ramdisk();
    let key = lab.token_key();
    [
        "--boot-services",
        "--dhcp-interface",
        interface,
        "--boot-netns",
        boot_ns,
        "--boot-artifacts",
        artifacts.to_str().unwrap(),
        "--boot-token-key-file",
        key.to_str().unwrap(),
        "--boot-http-addr",
        "0.0.0.0:8081",
        "--tftp-addr",
        "0.0.0.0:69",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn curl_in(ns: &str, url: &str) -> String {
    let out = tokio::task::block_in_place(|| {
        Command::new("ip")
            .args(["netns", "exec", ns, "curl", "-sS", "--max-time", "5", url])
            .output()
    })
    .unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bios_and_uefi_machines_netboot_into_the_ramdisk_and_report_in() {
    e2e::netlab::require("qemu-system-x86_64");
    let client = admin_client().await;
    let ns = namespace(&client, "netboot").await;
    let mut lab = NetLab::new();
    let boot_ns = lab.netns("boot");
    lab.bridge(&boot_ns, "br0", "10.61.0.2/24");
    lab.router_adverts(&boot_ns, "br0", "fd61::");
    lab.tap(&boot_ns, "br0", "tap1");
    lab.tap(&boot_ns, "br0", "tap2");
    let (p1, p2) = (free_udp_port(), free_udp_port());
    lab.vm_bmc("bios", p1, &boot_ns, "tap1", BIOS_MAC);
    lab.vm_bmc("uefi", p2, &boot_ns, "tap2", UEFI_MAC);
    site(
        &client,
        &ns,
        &[
            ("bios", p1, BIOS_MAC, "Legacy", 1),
            ("uefi", p2, UEFI_MAC, "UEFI", 2),
        ],
    )
    .await;
    let flags = boot_flags(&lab, &boot_ns, "br0");
    let controller = RunningController::start_with(client.clone(), &ns, &flags).await;
    let api: Api<Server> = Api::namespaced(client.clone(), &ns);
    for name in ["bios", "uefi"] {
        eventually(
            Duration::from_secs(60),
            &format!("{name} Available"),
            || async {
                let s = api.get(name).await.ok()?;
                (s.status?.state? == crds::ServerState::Available).then_some(())
            },
        )
        .await;
        // While Available, the machine is sent to its disk, never to the ramdisk.
        let mac = if name == "bios" { BIOS_MAC } else { UEFI_MAC };
        let script = curl_in(&boot_ns, &format!("http://10.61.0.2:8081/boot/{mac}.ipxe"));
        assert!(script.contains("\nexit\n"), "{script}");
    }

    let inspect = json!({"metadata": {"annotations": {"groundwork.dev/inspect": "r1"}}});
    for name in ["bios", "uefi"] {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&inspect))
            .await
            .unwrap();
    }
    for (name, mac, firmware) in [("bios", BIOS_MAC, "ipxe"), ("uefi", UEFI_MAC, "uefi-http")] {
        let s = eventually(
            Duration::from_secs(150),
            &format!("{name} inspected through the ramdisk"),
            || async {
                let s = api.get(name).await.ok()?;
                let st = s.status.as_ref()?;
                (st.state? == crds::ServerState::Available && st.hardware.is_some()).then_some(s)
            },
        )
        .await;
        let st = s.status.unwrap();
        let p = st.boot_progress.expect("boot progress");
        assert_eq!(p.attempt, "inspect-r1");
        for (step, at) in [
            ("dhcp", &p.dhcp_at),
            ("script", &p.script_at),
            ("kernel", &p.kernel_at),
            ("initrd", &p.initrd_at),
            ("callback", &p.called_back_at),
        ] {
            assert!(at.is_some(), "{name}: step {step} missing: {p:?}");
        }
        assert_eq!(p.firmware.as_deref(), Some(firmware), "{name}");
        assert!(
            p.dhcp_address.unwrap().starts_with("10.61.0.1"),
            "U1/U2 → .11/.12"
        );
        let hw = st.hardware.unwrap();
        assert!(hw.cpu_count >= 1 && hw.memory_bytes > 0, "{hw:?}");
        assert!(hw.nics.iter().any(|n| n.mac == mac), "{hw:?}");
        assert!(
            st.phases
                .iter()
                .any(|ph| ph.name == "Inspecting" && ph.duration_ms.is_some())
        );
        // Inspected: back to the disk; the token of the finished attempt is refused.
        let script = curl_in(&boot_ns, &format!("http://10.61.0.2:8081/boot/{mac}.ipxe"));
        assert!(script.contains("\nexit\n"), "{script}");
    }

    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for r in [
        "DHCPAcknowledged",
        "BootScriptServed",
        "KernelFetched",
        "RamdiskCalledBack",
    ] {
        assert!(
            reasons.iter().any(|x| x == r),
            "event {r} missing: {reasons:?}"
        );
    }
    let metrics = controller.metrics.registry_text();
    assert!(
        metrics.contains("groundwork_ipxe_scripts_served_total{kind=\"ramdisk\"} "),
        "{metrics}"
    );
    assert!(metrics.contains("groundwork_boot_http_sent_bytes_total{file=\"vmlinuz\"}"));
    let rack = format!("{ns}/r1");
    assert!(metrics.contains(&format!(
        "groundwork_dhcp_messages_total{{rack=\"{rack}\",message=\"ack\"}}"
    )));
    controller.stop().await;
}
