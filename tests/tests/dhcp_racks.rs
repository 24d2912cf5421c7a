//! DHCP for several racks from one controller process, against real clients and a real relay:
//! busybox udhcpc on veths plugged into each rack's bridge, ISC dhcrelay as a top-of-rack
//! relay (giaddr + option 82), and malformed datagrams sent at the server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

use e2e::netlab::{NetLab, require};
use e2e::{RunningController, admin_client, apply_doc, eventually, namespace};
use serde_json::json;

const MAC_A: &str = "52:54:00:62:0a:01";
const MAC_B: &str = "52:54:00:62:0b:01";
const MAC_C: &str = "52:54:00:62:0c:01";
const UNKNOWN: &str = "52:54:00:62:ff:01";

async fn rack(
    client: &kube::Client,
    ns: &str,
    name: &str,
    subnet: &str,
    gw: &str,
    range: Option<(&str, &str)>,
) {
    let mut prov = json!({"subnet": subnet, "gateway": gw});
    if let Some((s, e)) = range {
        prov["dhcpRange"] = json!({"start": s, "end": e});
    }
    apply_doc(
        client,
        ns,
        json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Rack", "metadata": {"name": name},
            "spec": {"location": {"site": "lab"}, "networks": {"provisioning": prov}}}),
    )
    .await
    .unwrap();
}

async fn server(client: &kube::Client, ns: &str, name: &str, rack: &str, mac: &str) {
    apply_doc(
        client,
        ns,
        json!({"apiVersion": "groundwork.dev/v1alpha1", "kind": "Server", "metadata": {"name": name},
            "spec": {"rackRef": {"name": rack}, "rackUnit": 1, "bootMACAddress": mac}}),
    )
    .await
    .unwrap();
}

fn metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rack_answers_only_its_own_machines_directly_and_through_a_relay() {
    require("busybox");
    require("dhcrelay");
    let client = admin_client().await;
    let ns = namespace(&client, "dhcp").await;
    let mut lab = NetLab::new();
    let boot = lab.netns("boot");
    let (ca, cb, cc, tor) = (
        lab.netns("ca"),
        lab.netns("cb"),
        lab.netns("cc"),
        lab.netns("tor"),
    );
    lab.bridge(&boot, "br-a", "10.62.1.2/24");
    lab.bridge(&boot, "br-b", "10.62.2.2/24");
    // Rack A's machine, on its own rack; the same MAC plugged into rack B; rack B's machine;
    // an undeclared machine on rack B (which has a discovery range).
    lab.veth(
        &boot,
        "pa1",
        Some("br-a"),
        None,
        &ca,
        "a1",
        Some(MAC_A),
        None,
    );
    lab.veth(
        &boot,
        "pb1",
        Some("br-b"),
        None,
        &cb,
        "a1",
        Some(MAC_A),
        None,
    );
    lab.veth(
        &boot,
        "pb2",
        Some("br-b"),
        None,
        &cb,
        "b1",
        Some(MAC_B),
        None,
    );
    lab.veth(
        &boot,
        "pb3",
        Some("br-b"),
        None,
        &cb,
        "u1",
        Some(UNKNOWN),
        None,
    );
    // Rack C sits behind a top-of-rack relay reached over a routed uplink.
    lab.veth(
        &boot,
        "up0",
        None,
        Some("10.62.9.2/24"),
        &tor,
        "r-up",
        None,
        Some("10.62.9.1/24"),
    );
    lab.veth(
        &tor,
        "r-down",
        None,
        Some("10.62.3.1/24"),
        &cc,
        "c1",
        Some(MAC_C),
        None,
    );
    e2e::netlab::run(Command::new("ip").args([
        "-n",
        &boot,
        "route",
        "add",
        "10.62.3.0/24",
        "via",
        "10.62.9.1",
    ]));
    lab.spawn(
        Command::new("ip")
            .args(["netns", "exec", &tor])
            .arg(require("dhcrelay"))
            .args([
                "-d",
                "-4",
                "-a",
                "--no-pid",
                "-id",
                "r-down",
                "-iu",
                "r-up",
                "10.62.9.2",
            ]),
        "dhcrelay.log",
    );

    rack(&client, &ns, "a", "10.62.1.0/24", "10.62.1.1", None).await;
    rack(
        &client,
        &ns,
        "b",
        "10.62.2.0/24",
        "10.62.2.1",
        Some(("10.62.2.100", "10.62.2.110")),
    )
    .await;
    rack(&client, &ns, "c", "10.62.3.0/24", "10.62.3.1", None).await;
    server(&client, &ns, "a-u01", "a", MAC_A).await;
    server(&client, &ns, "b-u01", "b", MAC_B).await;
    server(&client, &ns, "c-u01", "c", MAC_C).await;

    let key = lab.token_key();
    let flags: Vec<String> = [
        "--boot-services",
        "--dhcp-interface",
        "br-a,br-b,up0",
        "--boot-netns",
        &boot,
        "--boot-artifacts",
        "/nonexistent",
        "--boot-token-key-file",
        key.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let controller = RunningController::start_with(client.clone(), &ns, &flags).await;

    // Reservations are built from the API objects: wait until rack A answers its machine.
    let lab_ref = &lab;
    let a = eventually(
        Duration::from_secs(30),
        "rack A answers its machine",
        || {
            let ca = ca.clone();
            async move { dhcp(lab_ref, &ca, "a1") }
        },
    )
    .await;
    assert_eq!(a, Ipv4Addr::new(10, 62, 1, 11), "U1 of rack A");
    assert_eq!(dhcp(&lab, &cb, "b1"), Some(Ipv4Addr::new(10, 62, 2, 11)));
    // Rack A's machine plugged into rack B: no offer, although rack B has a discovery range.
    assert_eq!(
        dhcp(&lab, &cb, "a1"),
        None,
        "a machine in the wrong rack must get nothing"
    );
    let unknown = dhcp(&lab, &cb, "u1").expect("undeclared machine gets a discovery lease");
    assert!((100..=110).contains(&unknown.octets()[3]) && unknown.octets()[2] == 2);
    // Relayed: rack C (the giaddr's subnet) answers, through the relay.
    assert_eq!(dhcp(&lab, &cc, "c1"), Some(Ipv4Addr::new(10, 62, 3, 11)));

    let text = controller.metrics.registry_text();
    let rack_a = format!("{ns}/a");
    let rack_b = format!("{ns}/b");
    assert!(
        metric(
            &text,
            &format!("groundwork_dhcp_messages_total{{rack=\"{rack_a}\",message=\"ack\"}}")
        ) >= 1
    );
    assert!(
        metric(
            &text,
            &format!("groundwork_dhcp_dropped_total{{rack=\"{rack_b}\",reason=\"wrong_rack\"}}")
        ) >= 1,
        "{text}"
    );
    assert!(
        metric(
            &text,
            &format!("groundwork_dhcp_messages_total{{rack=\"{ns}/c\",message=\"ack\"}}")
        ) >= 1
    );

    // Malformed datagrams are dropped and counted; the server keeps answering.
    e2e::netlab::run(Command::new("ip").args([
        "-n",
        &ca,
        "addr",
        "add",
        "10.62.1.50/24",
        "dev",
        "a1",
    ]));
    let good = discover_bytes();
    let mut bad_option = good.clone();
    let end = bad_option.len() - 1;
    bad_option[end] = 12; // hostname ...
    bad_option.push(200); // ... claiming 200 bytes that are not there
    let mut oversized = good.clone();
    oversized.truncate(oversized.len() - 1);
    oversized.extend([43, 255]);
    oversized.extend([0xAA; 100]); // vendor option claiming 255 bytes, 100 present
    let packets: Vec<Vec<u8>> = vec![
        vec![],
        vec![1, 1, 6, 0],
        good[..150].to_vec(),
        good[..good.len() - 1].to_vec(), // no END
        bad_option,
        oversized,
        vec![0xFF; 1400],
    ];
    let sent = packets.len() as u64;
    boot::netns::within(Some(&boot::netns::named(&ca)), move || {
        let s = std::net::UdpSocket::bind("10.62.1.50:0").unwrap();
        for p in &packets {
            s.send_to(p, "10.62.1.2:67").unwrap();
        }
    })
    .unwrap();
    eventually(Duration::from_secs(10), "malformed packets counted", || {
        let text = controller.metrics.registry_text();
        async move {
            (metric(
                &text,
                "groundwork_dhcp_dropped_total{rack=\"\",reason=\"malformed\"}",
            ) >= sent)
                .then_some(())
        }
    })
    .await;
    assert_eq!(
        dhcp(&lab, &cb, "b1"),
        Some(Ipv4Addr::new(10, 62, 2, 11)),
        "still answering"
    );
    controller.stop().await;
}

/// udhcpc without stalling the runtime the in-process controller runs on.
fn dhcp(lab: &NetLab, ns: &str, iface: &str) -> Option<Ipv4Addr> {
    tokio::task::block_in_place(|| lab.udhcpc(ns, iface))
}

/// A well-formed DISCOVER (BOOTP header, magic cookie, message type, END).
fn discover_bytes() -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[0] = 1; // BOOTREQUEST
    p[1] = 1; // Ethernet
    p[2] = 6;
    p[28..34].copy_from_slice(&[0x52, 0x54, 0, 0x62, 0xee, 1]);
    p.extend([99, 130, 83, 99, 53, 1, 1, 255]);
    p
}
