//! `boot::dhcp::answer` must never panic, whatever arrives on port 67 or 4011, and every reply
//! it builds must encode to a packet that decodes again and passes our own framing check.
//!
//! Each input is answered as if it arrived on three sockets in turn (directly on authoritative
//! rack A, on the proxy rack's port 4011, on an interface in no rack), sharing one lease table
//! whose clock moves forward between the calls so discovery leases expire.

#![no_main]

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use boot::dhcp::client::BootServer;
use boot::dhcp::decide::{type_label, well_formed};
use boot::dhcp::site::Mode;
use boot::dhcp::{Drop, Ingress, Leases, Mac, Outcome, RackNet, Reservation, Site, answer};
use dhcproto::v4::{Message, Opcode};
use dhcproto::{Decodable, Encodable};
use libfuzzer_sys::fuzz_target;

/// Reserved on rack A (10.1.0.4, inside A's dynamic range), rack B, the proxy rack, and a rack
/// that does not exist. The seed corpus (gen_corpus.py) uses the first two.
const A_MAC: [u8; 6] = [0x52, 0x54, 0, 0xa0, 0, 1];
const B_MAC: [u8; 6] = [0x52, 0x54, 0, 0xb0, 0, 1];
const P_MAC: [u8; 6] = [0x52, 0x54, 0, 0xc0, 0, 1];
const GONE_MAC: [u8; 6] = [0x52, 0x54, 0, 0xd0, 0, 1];

/// Rack B's dynamic range, filled with these two at the start of each run.
const B_RANGE: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 2, 0, 100), Ipv4Addr::new(10, 2, 0, 101));
const B_HOLDERS: [[u8; 6]; 2] = [[2, 0, 0, 0, 0xb0, 1], [2, 0, 0, 0, 0xb0, 2]];

static SITE: LazyLock<Site> = LazyLock::new(|| {
    let net = |s: &str| s.parse().expect("subnet");
    let racks = vec![
        // Small range that holds the gateway (.1), our address (.2) and a reservation (.4),
        // so only .3 and .5 are free for unknown machines.
        RackNet {
            id: "fra1/a".into(),
            subnet: net("10.1.0.0/24"),
            gateway: Some(Ipv4Addr::new(10, 1, 0, 1)),
            range: Some((Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 5))),
            mode: Mode::Authoritative,
        },
        // No router; its range is full until the holders' leases expire.
        RackNet {
            id: "fra1/b".into(),
            subnet: net("10.2.0.0/24"),
            gateway: None,
            range: Some(B_RANGE),
            mode: Mode::Authoritative,
        },
        RackNet {
            id: "fra1/p".into(),
            subnet: net("10.3.0.0/24"),
            gateway: Some(Ipv4Addr::new(10, 3, 0, 1)),
            range: None,
            mode: Mode::Proxy,
        },
    ];
    let reserve = |mac, rack: &str, address, hostname: &str| {
        let reservation = Reservation {
            rack: rack.into(),
            address,
            hostname: hostname.into(),
        };
        (Mac(mac), reservation)
    };
    let reservations = HashMap::from([
        reserve(A_MAC, "fra1/a", Ipv4Addr::new(10, 1, 0, 4), "a-u01"),
        reserve(B_MAC, "fra1/b", Ipv4Addr::new(10, 2, 0, 11), "b-u01"),
        reserve(P_MAC, "fra1/p", Ipv4Addr::new(10, 3, 0, 11), "p-u01"),
        reserve(GONE_MAC, "fra1/gone", Ipv4Addr::new(10, 9, 0, 11), "gone"),
    ]);
    Site {
        racks,
        reservations,
    }
});

/// Directly on rack A; on the proxy rack's port 4011; on a routed uplink in no rack (only
/// relayed packets get an answer there).
static INGRESSES: LazyLock<[Ingress; 3]> = LazyLock::new(|| {
    let on = |net: &str, proxy_port| Ingress {
        interface: vec![net.parse().expect("interface address")],
        proxy_port,
    };
    [
        on("10.1.0.2/24", false),
        on("10.3.0.2/24", true),
        on("192.168.50.2/24", false),
    ]
});

/// Our address as the DHCP sockets pick it (boot::dhcp::server): the arrival interface's
/// address in the rack's subnet, else the interface's first address.
fn server_for(ingress: &Ingress) -> impl Fn(&RackNet) -> Option<BootServer> + '_ {
    move |rack| {
        let address = ingress
            .interface
            .iter()
            .map(|net| net.addr())
            .find(|a| rack.subnet.contains(a))
            .or_else(|| ingress.interface.first().map(|net| net.addr()))?;
        Some(BootServer {
            address,
            http_base: format!("http://{address}:8081"),
        })
    }
}

/// What must hold of every outcome.
fn check(input: &[u8], out: &Outcome) {
    let Outcome::Reply { reply, sent, .. } = out else {
        if !well_formed(input) {
            assert!(
                matches!(
                    out,
                    Outcome::Dropped {
                        reason: Drop::Malformed,
                        ..
                    }
                ),
                "badly framed input not dropped as malformed: {out:?}"
            );
        }
        return;
    };
    assert!(well_formed(input), "answered a badly framed packet");
    let bytes = match reply.to_vec() {
        Ok(b) => b,
        Err(e) => panic!("reply does not encode: {e}\n{reply:?}"),
    };
    assert!(
        well_formed(&bytes),
        "reply fails our own framing check: {bytes:02x?}"
    );
    let back = match Message::from_bytes(&bytes) {
        Ok(m) => m,
        Err(e) => panic!("reply does not decode: {e}\n{bytes:02x?}"),
    };
    assert_eq!(back.opcode(), Opcode::BootReply);
    assert_eq!(back.xid(), reply.xid());
    assert_eq!(back.chaddr(), reply.chaddr());
    assert_eq!(back.opts().msg_type().map(type_label), Some(*sent));
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut leases = Leases::default();
    for holder in B_HOLDERS {
        leases.address(Mac(holder), B_RANGE, |_| false, now);
    }
    for (i, ingress) in (0u64..).zip(INGRESSES.iter()) {
        // 0 s, 400 s, 800 s: the last call comes after the holders' leases (600 s) expired.
        let at = now + Duration::from_secs(400 * i);
        let out = answer(data, ingress, &SITE, server_for(ingress), &mut leases, at);
        check(data, &out);
    }
});
