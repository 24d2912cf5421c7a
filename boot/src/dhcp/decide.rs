//! The answer to one DHCP packet (pure: no sockets, no clock beyond the `now` it is given).

use std::net::Ipv4Addr;
use std::time::Instant;

use dhcproto::v4::{
    DhcpOption, DhcpOptions, HType, Message, MessageType, Opcode, OptionCode, relay,
};
use dhcproto::{Decodable, Decoder};

use super::client::{BootServer, Client, boot_file};
use super::site::{Ingress, Leases, Mac, Mode, RackNet, Site};

/// Lease time of a reserved (declared) machine's address.
pub const RESERVED_LEASE_SECS: u32 = 3600;

/// Why a packet got no answer (metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Drop {
    /// Could not be parsed.
    Malformed,
    /// Not a BOOTREQUEST, not Ethernet, or no message type (BOOTP).
    Unsupported,
    /// No rack's provisioning network holds the interface or the relay address.
    NoRack,
    /// Several racks' provisioning networks hold it (overlapping subnets): answering would
    /// mean guessing the rack, and their address plans collide.
    AmbiguousRack,
    /// The MAC is reserved in another rack: never answer a machine plugged into the wrong rack.
    WrongRack,
    /// Unknown MAC and no dynamic range on this rack.
    UnknownClient,
    /// The rack's dynamic range is full.
    RangeExhausted,
    /// The client picked another server (REQUEST naming another server identifier).
    OtherServer,
    /// proxyDHCP answers only network-boot clients.
    NotBootClient,
    /// A message we never answer (RELEASE, DECLINE, or a server's message).
    NoReply,
}

impl Drop {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Unsupported => "unsupported",
            Self::NoRack => "no_rack",
            Self::AmbiguousRack => "ambiguous_rack",
            Self::WrongRack => "wrong_rack",
            Self::UnknownClient => "unknown_client",
            Self::RangeExhausted => "range_exhausted",
            Self::OtherServer => "other_server",
            Self::NotBootClient => "not_boot_client",
            Self::NoReply => "no_reply",
        }
    }
}

/// Where a reply goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Broadcast on the arrival interface, port 68.
    Broadcast,
    /// To the relay (giaddr), port 67.
    Relay(Ipv4Addr),
    /// Back to the sender's address and port (renewals, proxyDHCP on 4011).
    Sender,
}

/// What to do with one packet.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// Send `reply`.
    Reply {
        /// Rack that answered (`namespace/name`).
        rack: String,
        /// Message type received (metric label).
        received: &'static str,
        /// Message type sent (metric label).
        sent: &'static str,
        /// The reply.
        reply: Box<Message>,
        /// Where to send it.
        to: Destination,
        /// The client, and the address it was given (boot-step reporting).
        client: Mac,
        /// The address offered or acknowledged (unspecified for proxyDHCP).
        address: Ipv4Addr,
        /// Firmware kind (label).
        firmware: &'static str,
    },
    /// No reply.
    Dropped {
        /// Rack that claimed the packet, when one did.
        rack: Option<String>,
        /// Message type received, when parsed (metric label).
        received: Option<&'static str>,
        /// Why.
        reason: Drop,
    },
}

fn dropped(rack: Option<&RackNet>, received: Option<&'static str>, reason: Drop) -> Outcome {
    Outcome::Dropped {
        rack: rack.map(|r| r.id.clone()),
        received,
        reason,
    }
}

/// Message type label.
pub fn type_label(t: MessageType) -> &'static str {
    match t {
        MessageType::Discover => "discover",
        MessageType::Offer => "offer",
        MessageType::Request => "request",
        MessageType::Decline => "decline",
        MessageType::Ack => "ack",
        MessageType::Nak => "nak",
        MessageType::Release => "release",
        MessageType::Inform => "inform",
        _ => "other",
    }
}

/// Answers one packet. `server` says where our boot files are for the rack that answers
/// (the caller picks our address on that network); `leases` holds discovery leases.
pub fn answer(
    bytes: &[u8],
    ingress: &Ingress,
    site: &Site,
    server_for: impl Fn(&RackNet) -> Option<BootServer>,
    leases: &mut Leases,
    now: Instant,
) -> Outcome {
    if !well_formed(bytes) {
        return dropped(None, None, Drop::Malformed);
    }
    let Ok(msg) = Message::decode(&mut Decoder::new(bytes)) else {
        return dropped(None, None, Drop::Malformed);
    };
    let Some(kind) = msg.opts().msg_type() else {
        return dropped(None, None, Drop::Unsupported);
    };
    let received = type_label(kind);
    if msg.opcode() != Opcode::BootRequest || msg.htype() != HType::Eth || msg.hlen() != 6 {
        return dropped(None, Some(received), Drop::Unsupported);
    }
    let mut chaddr = [0u8; 6];
    chaddr.copy_from_slice(msg.chaddr().get(..6).unwrap_or(&[0; 6]));
    let mac = Mac(chaddr);

    let relayed = msg.giaddr() != Ipv4Addr::UNSPECIFIED;
    let candidates = if relayed {
        site.racks_for([link_selection(&msg).unwrap_or(msg.giaddr())])
    } else {
        site.racks_for(ingress.interface.iter().map(|net| net.addr()))
    };
    let rack = match candidates.as_slice() {
        [] => return dropped(None, Some(received), Drop::NoRack),
        [rack] => *rack,
        _ => return dropped(None, Some(received), Drop::AmbiguousRack),
    };
    let reservation = site.reservations.get(&mac);
    if reservation.is_some_and(|r| r.rack != rack.id) {
        return dropped(Some(rack), Some(received), Drop::WrongRack);
    }
    let Some(server) = server_for(rack) else {
        return dropped(Some(rack), Some(received), Drop::NoRack);
    };
    let client = Client::of(&msg);

    if rack.mode == Mode::Proxy {
        return proxy(&msg, kind, ingress, rack, &server, client, mac);
    }

    if let Some(id) = requested_server(&msg)
        && id != server.address
    {
        if kind == MessageType::Request {
            // The client chose another server's offer: forget ours.
            leases.release(mac);
        }
        return dropped(Some(rack), Some(received), Drop::OtherServer);
    }
    if matches!(kind, MessageType::Release | MessageType::Decline) {
        if reservation.is_none() {
            leases.release(mac);
        }
        return dropped(Some(rack), Some(received), Drop::NoReply);
    }
    if !matches!(
        kind,
        MessageType::Discover | MessageType::Request | MessageType::Inform
    ) {
        return dropped(Some(rack), Some(received), Drop::NoReply);
    }

    let (address, lease_secs, hostname) = match reservation {
        Some(r) => (r.address, RESERVED_LEASE_SECS, Some(r.hostname.as_str())),
        None => {
            let Some(range) = rack.range else {
                return dropped(Some(rack), Some(received), Drop::UnknownClient);
            };
            let reserved = |a: Ipv4Addr| {
                Some(a) == rack.gateway
                    || a == server.address
                    || site.reservations.values().any(|r| r.address == a)
            };
            match leases.address(mac, range, reserved, now) {
                Some(a) => (a, super::site::DISCOVERY_LEASE.as_secs() as u32, None),
                None => return dropped(Some(rack), Some(received), Drop::RangeExhausted),
            }
        }
    };

    let (sent, yiaddr) = match kind {
        MessageType::Discover => (MessageType::Offer, address),
        MessageType::Inform => (MessageType::Ack, Ipv4Addr::UNSPECIFIED),
        _ => {
            let wanted = requested_address(&msg);
            if wanted == Some(address) {
                (MessageType::Ack, address)
            } else {
                (MessageType::Nak, Ipv4Addr::UNSPECIFIED)
            }
        }
    };
    let mut reply = base_reply(&msg, sent, &server);
    reply.set_yiaddr(yiaddr);
    if sent != MessageType::Nak {
        let opts = reply.opts_mut();
        if kind != MessageType::Inform {
            opts.insert(DhcpOption::AddressLeaseTime(lease_secs));
        }
        opts.insert(DhcpOption::SubnetMask(rack.subnet.netmask()));
        if let Some(gw) = rack.gateway {
            opts.insert(DhcpOption::Router(vec![gw]));
        }
        if let Some(h) = hostname {
            opts.insert(DhcpOption::Hostname(h.to_string()));
        }
        add_boot(&mut reply, client, &server, mac);
    }
    let to = if relayed {
        Destination::Relay(msg.giaddr())
    } else if msg.ciaddr() != Ipv4Addr::UNSPECIFIED && sent != MessageType::Nak {
        Destination::Sender
    } else {
        Destination::Broadcast
    };
    Outcome::Reply {
        rack: rack.id.clone(),
        received,
        sent: type_label(sent),
        reply: Box::new(reply),
        to,
        client: mac,
        address: yiaddr,
        firmware: client.label(),
    }
}

/// proxyDHCP (PXE spec 2.1): answer boot clients' DISCOVER with boot options and no address,
/// and their REQUEST on port 4011 with an ACK.
fn proxy(
    msg: &Message,
    kind: MessageType,
    ingress: &Ingress,
    rack: &RackNet,
    server: &BootServer,
    client: Client,
    mac: Mac,
) -> Outcome {
    let received = type_label(kind);
    if !client.boots() {
        return dropped(Some(rack), Some(received), Drop::NotBootClient);
    }
    let sent = match (kind, ingress.proxy_port) {
        (MessageType::Discover, false) => MessageType::Offer,
        (MessageType::Request | MessageType::Inform, true) => MessageType::Ack,
        _ => return dropped(Some(rack), Some(received), Drop::NoReply),
    };
    let mut reply = base_reply(msg, sent, server);
    reply.set_yiaddr(Ipv4Addr::UNSPECIFIED);
    reply
        .opts_mut()
        .insert(DhcpOption::ClassIdentifier(if client == Client::UefiHttp {
            b"HTTPClient".to_vec()
        } else {
            b"PXEClient".to_vec()
        }));
    // PXE discovery control: no multicast/broadcast discovery, use the boot file given here.
    reply
        .opts_mut()
        .insert(DhcpOption::VendorExtensions(vec![6, 1, 8, 255]));
    add_boot(&mut reply, client, server, mac);
    let to = if msg.giaddr() != Ipv4Addr::UNSPECIFIED {
        Destination::Relay(msg.giaddr())
    } else if ingress.proxy_port {
        Destination::Sender
    } else {
        Destination::Broadcast
    };
    Outcome::Reply {
        rack: rack.id.clone(),
        received,
        sent: type_label(sent),
        reply: Box::new(reply),
        to,
        client: mac,
        address: Ipv4Addr::UNSPECIFIED,
        firmware: client.label(),
    }
}

fn base_reply(msg: &Message, sent: MessageType, server: &BootServer) -> Message {
    let mut reply = msg.clone();
    reply.set_opcode(Opcode::BootReply);
    reply.set_hops(0);
    reply.set_secs(0);
    reply.set_siaddr(server.address);
    reply.clear_fname();
    reply.clear_sname();
    if sent == MessageType::Nak {
        reply.set_ciaddr(Ipv4Addr::UNSPECIFIED);
    }
    let mut opts = DhcpOptions::new();
    opts.insert(DhcpOption::MessageType(sent));
    opts.insert(DhcpOption::ServerIdentifier(server.address));
    // RFC 3046: echo the relay agent information back to the relay.
    if let Some(info) = msg.opts().get(OptionCode::RelayAgentInformation) {
        opts.insert(info.clone());
    }
    reply.set_opts(opts);
    reply
}

fn add_boot(reply: &mut Message, client: Client, server: &BootServer, mac: Mac) {
    let Some(file) = boot_file(client, server, &mac.to_string()) else {
        return;
    };
    if client == Client::UefiHttp {
        reply
            .opts_mut()
            .insert(DhcpOption::ClassIdentifier(b"HTTPClient".to_vec()));
    }
    reply
        .opts_mut()
        .insert(DhcpOption::BootfileName(file.clone().into_bytes()));
    // The BOOTP file field holds 128 bytes; longer URLs travel only in option 67.
    if file.len() < 128 {
        reply.set_fname_str(&file);
    }
}

/// The fixed BOOTP header is 236 bytes, then the magic cookie.
const OPTIONS_START: usize = 240;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Checks the framing the decoder is lenient about (or asserts on): the magic cookie, options
/// that each fit inside the packet and end with END, no option overload (52: clients asking
/// for boot files never need it), and the fixed lengths of the options the decoder expects
/// exact sizes for, where a run of back-to-back same-code options counts as one (RFC 3396).
pub fn well_formed(bytes: &[u8]) -> bool {
    if bytes.len() < OPTIONS_START || bytes[236..OPTIONS_START] != MAGIC_COOKIE {
        return false;
    }
    // The current run of same-code options: (code, total length).
    let mut run: Option<(u8, usize)> = None;
    let mut i = OPTIONS_START;
    while let Some(&code) = bytes.get(i) {
        if code == 0 || code == 255 {
            if !run.is_none_or(length_fits) {
                return false;
            }
            run = None;
            if code == 255 {
                return true;
            }
            i += 1;
            continue;
        }
        let Some(&len) = bytes.get(i + 1) else {
            return false;
        };
        if code == 52 {
            return false;
        }
        run = match run {
            Some((c, total)) if c == code => Some((c, total + usize::from(len))),
            Some(previous) if !length_fits(previous) => return false,
            _ => Some((code, usize::from(len))),
        };
        i += 2 + usize::from(len);
        if i > bytes.len() {
            return false;
        }
    }
    false
}

/// Options with a fixed or minimum length, as the decoder reads them.
fn length_fits((code, len): (u8, usize)) -> bool {
    match code {
        // Rapid commit carries no data.
        80 => len == 0,
        94 => len == 3,
        152..=155 => len == 4,
        81 => len >= 3,
        _ => true,
    }
}

fn requested_server(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(a)) => Some(*a),
        _ => None,
    }
}

fn requested_address(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::RequestedIpAddress) {
        Some(DhcpOption::RequestedIpAddress(a)) => Some(*a),
        _ => (msg.ciaddr() != Ipv4Addr::UNSPECIFIED).then_some(msg.ciaddr()),
    }
}

/// RFC 3527 link selection (option 82.5): the relay names the client's subnet explicitly.
fn link_selection(msg: &Message) -> Option<Ipv4Addr> {
    match msg.opts().get(OptionCode::RelayAgentInformation) {
        Some(DhcpOption::RelayAgentInformation(info)) => {
            match info.get(relay::RelayCode::LinkSelection) {
                Some(relay::RelayInfo::LinkSelection(a)) => Some(*a),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use dhcproto::{Encodable, Encoder};

    use super::super::site::Reservation;
    use super::*;

    const A_MAC: [u8; 6] = [0x52, 0x54, 0, 0xa0, 0, 1];
    const B_MAC: [u8; 6] = [0x52, 0x54, 0, 0xb0, 0, 1];

    fn site() -> Site {
        let rack = |id: &str, net: &str, gw: [u8; 4], mode| RackNet {
            id: id.into(),
            subnet: net.parse().unwrap(),
            gateway: Some(Ipv4Addr::from(gw)),
            range: Some((
                Ipv4Addr::from([gw[0], gw[1], gw[2], 100]),
                Ipv4Addr::from([gw[0], gw[1], gw[2], 101]),
            )),
            mode,
        };
        let mut reservations = HashMap::new();
        reservations.insert(
            Mac(A_MAC),
            Reservation {
                rack: "fra1/a".into(),
                address: Ipv4Addr::new(10, 1, 0, 11),
                hostname: "a-u01".into(),
            },
        );
        reservations.insert(
            Mac(B_MAC),
            Reservation {
                rack: "fra1/b".into(),
                address: Ipv4Addr::new(10, 2, 0, 11),
                hostname: "b-u01".into(),
            },
        );
        Site {
            racks: vec![
                rack("fra1/a", "10.1.0.0/24", [10, 1, 0, 1], Mode::Authoritative),
                rack("fra1/b", "10.2.0.0/24", [10, 2, 0, 1], Mode::Authoritative),
                rack("fra1/p", "10.3.0.0/24", [10, 3, 0, 1], Mode::Proxy),
            ],
            reservations,
        }
    }

    fn on(net: &str) -> Ingress {
        Ingress {
            interface: vec![net.parse().unwrap()],
            proxy_port: false,
        }
    }

    fn server(rack: &RackNet) -> Option<BootServer> {
        let addr = Ipv4Addr::from(u32::from(rack.subnet.network()) + 2);
        Some(BootServer {
            address: addr,
            http_base: format!("http://{addr}:8081"),
        })
    }

    fn packet(mac: [u8; 6], kind: MessageType, opts: Vec<DhcpOption>) -> Message {
        let mut m = Message::new_with_id(
            7,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::UNSPECIFIED,
            &mac,
        );
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        for o in opts {
            m.opts_mut().insert(o);
        }
        m
    }

    fn bytes(m: &Message) -> Vec<u8> {
        let mut buf = Vec::new();
        m.encode(&mut Encoder::new(&mut buf)).unwrap();
        buf
    }

    fn run(m: &Message, ingress: &Ingress, leases: &mut Leases) -> Outcome {
        answer(&bytes(m), ingress, &site(), server, leases, Instant::now())
    }

    fn ipxe() -> DhcpOption {
        DhcpOption::UserClass(b"iPXE".to_vec())
    }

    #[test]
    fn reserved_machine_gets_its_address_and_script_on_its_rack() {
        let mut leases = Leases::default();
        let out = run(
            &packet(A_MAC, MessageType::Discover, vec![ipxe()]),
            &on("10.1.0.2/24"),
            &mut leases,
        );
        let Outcome::Reply {
            reply,
            sent,
            to,
            address,
            ..
        } = out
        else {
            panic!("no reply: {out:?}")
        };
        assert_eq!((sent, to), ("offer", Destination::Broadcast));
        assert_eq!(address, Ipv4Addr::new(10, 1, 0, 11));
        assert_eq!(reply.yiaddr(), address);
        assert_eq!(
            reply.fname_str().unwrap().unwrap(),
            "http://10.1.0.2:8081/boot/52:54:00:a0:00:01.ipxe"
        );
        assert!(
            matches!(reply.opts().get(OptionCode::Hostname), Some(DhcpOption::Hostname(h)) if h == "a-u01")
        );
        // REQUEST for it: ACK; for another address: NAK.
        let req = packet(
            A_MAC,
            MessageType::Request,
            vec![
                DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 1, 0, 11)),
                DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 1, 0, 2)),
            ],
        );
        assert!(matches!(
            run(&req, &on("10.1.0.2/24"), &mut leases),
            Outcome::Reply { sent: "ack", .. }
        ));
        let wrong = packet(
            A_MAC,
            MessageType::Request,
            vec![DhcpOption::RequestedIpAddress(Ipv4Addr::new(10, 1, 0, 99))],
        );
        assert!(matches!(
            run(&wrong, &on("10.1.0.2/24"), &mut leases),
            Outcome::Reply { sent: "nak", .. }
        ));
        assert!(leases.is_empty(), "reservations take no discovery lease");
    }

    #[test]
    fn machine_in_the_wrong_rack_gets_nothing() {
        let out = run(
            &packet(A_MAC, MessageType::Discover, vec![]),
            &on("10.2.0.2/24"),
            &mut Leases::default(),
        );
        assert_eq!(
            out,
            Outcome::Dropped {
                rack: Some("fra1/b".into()),
                received: Some("discover"),
                reason: Drop::WrongRack
            }
        );
    }

    #[test]
    fn relayed_request_is_answered_by_the_giaddr_rack() {
        let mut m = packet(B_MAC, MessageType::Discover, vec![]);
        m.set_giaddr(Ipv4Addr::new(10, 2, 0, 1));
        m.opts_mut().insert(DhcpOption::RelayAgentInformation({
            let mut info = relay::RelayAgentInformation::default();
            info.insert(relay::RelayInfo::AgentCircuitId(b"tor-b:eth1".to_vec()));
            info
        }));
        // Arrives on an interface in no rack (the routed uplink).
        let out = run(&m, &on("192.168.50.2/24"), &mut Leases::default());
        let Outcome::Reply {
            rack,
            to,
            reply,
            address,
            ..
        } = out
        else {
            panic!("no reply: {out:?}")
        };
        assert_eq!(rack, "fra1/b");
        assert_eq!(to, Destination::Relay(Ipv4Addr::new(10, 2, 0, 1)));
        assert_eq!(address, Ipv4Addr::new(10, 2, 0, 11));
        assert!(
            reply
                .opts()
                .get(OptionCode::RelayAgentInformation)
                .is_some(),
            "option 82 echoed"
        );
        // The same machine relayed from rack A's relay: wrong rack.
        m.set_giaddr(Ipv4Addr::new(10, 1, 0, 1));
        assert!(matches!(
            run(&m, &on("192.168.50.2/24"), &mut Leases::default()),
            Outcome::Dropped {
                reason: Drop::WrongRack,
                ..
            }
        ));
    }

    #[test]
    fn a_request_two_racks_could_claim_is_not_answered() {
        // Rack b2 reuses rack a's provisioning subnet: neither is answered there, directly or
        // through a relay, whichever rack the MAC is reserved in; rack b still answers.
        let mut overlapping = site();
        let mut b2 = overlapping.racks[0].clone();
        b2.id = "fra1/b2".into();
        overlapping.racks.push(b2);
        let ask = |m: &Message, ingress: &Ingress| {
            answer(
                &bytes(m),
                ingress,
                &overlapping,
                server,
                &mut Leases::default(),
                Instant::now(),
            )
        };
        let ambiguous = Outcome::Dropped {
            rack: None,
            received: Some("discover"),
            reason: Drop::AmbiguousRack,
        };
        let discover = packet(A_MAC, MessageType::Discover, vec![ipxe()]);
        assert_eq!(ask(&discover, &on("10.1.0.2/24")), ambiguous);
        let unknown = packet([2, 0, 0, 0, 0, 7], MessageType::Discover, vec![]);
        assert_eq!(ask(&unknown, &on("10.1.0.2/24")), ambiguous);
        let mut relayed = discover.clone();
        relayed.set_giaddr(Ipv4Addr::new(10, 1, 0, 1));
        assert_eq!(ask(&relayed, &on("192.168.50.2/24")), ambiguous);
        assert_eq!(Drop::AmbiguousRack.label(), "ambiguous_rack");
        let b = packet(B_MAC, MessageType::Discover, vec![]);
        assert!(matches!(
            ask(&b, &on("10.2.0.2/24")),
            Outcome::Reply { sent: "offer", .. }
        ));
    }

    #[test]
    fn unknown_machines_use_the_range_and_uefi_http_gets_option_60() {
        let mut leases = Leases::default();
        let http = DhcpOption::ClassIdentifier(b"HTTPClient:Arch:00016:UNDI:003001".to_vec());
        let out = run(
            &packet([2, 0, 0, 0, 0, 1], MessageType::Discover, vec![http]),
            &on("10.1.0.2/24"),
            &mut leases,
        );
        let Outcome::Reply {
            reply,
            address,
            firmware,
            ..
        } = out
        else {
            panic!("no reply")
        };
        assert_eq!(firmware, "uefi-http");
        assert!((100..=101).contains(&address.octets()[3]));
        assert!(
            matches!(reply.opts().get(OptionCode::ClassIdentifier), Some(DhcpOption::ClassIdentifier(v)) if v == b"HTTPClient")
        );
        assert_eq!(
            reply.fname_str().unwrap().unwrap(),
            "http://10.1.0.2:8081/boot/ipxe.efi"
        );
        // Range of two: the third unknown machine is refused.
        run(
            &packet([2, 0, 0, 0, 0, 2], MessageType::Discover, vec![]),
            &on("10.1.0.2/24"),
            &mut leases,
        );
        assert!(matches!(
            run(
                &packet([2, 0, 0, 0, 0, 3], MessageType::Discover, vec![]),
                &on("10.1.0.2/24"),
                &mut leases
            ),
            Outcome::Dropped {
                reason: Drop::RangeExhausted,
                ..
            }
        ));
    }

    #[test]
    fn bios_and_uefi_pxe_get_tftp_files() {
        let pxe = |arch: u16| {
            vec![
                DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000:UNDI:002001".to_vec()),
                DhcpOption::ClientSystemArchitecture(arch.into()),
            ]
        };
        for (arch, file) in [(0, "undionly.kpxe"), (7, "ipxe.efi")] {
            let out = run(
                &packet(A_MAC, MessageType::Discover, pxe(arch)),
                &on("10.1.0.2/24"),
                &mut Leases::default(),
            );
            let Outcome::Reply { reply, .. } = out else {
                panic!()
            };
            assert_eq!(reply.fname_str().unwrap().unwrap(), file);
            assert_eq!(reply.siaddr(), Ipv4Addr::new(10, 1, 0, 2));
        }
    }

    #[test]
    fn proxy_mode_answers_only_boot_clients_without_an_address() {
        let pxe = vec![
            DhcpOption::ClassIdentifier(b"PXEClient:Arch:00000:UNDI:002001".to_vec()),
            DhcpOption::ClientSystemArchitecture(0.into()),
        ];
        let out = run(
            &packet([2, 0, 0, 0, 0, 9], MessageType::Discover, pxe.clone()),
            &on("10.3.0.2/24"),
            &mut Leases::default(),
        );
        let Outcome::Reply { reply, sent, .. } = out else {
            panic!()
        };
        assert_eq!(sent, "offer");
        assert_eq!(reply.yiaddr(), Ipv4Addr::UNSPECIFIED);
        assert!(reply.opts().get(OptionCode::AddressLeaseTime).is_none());
        let plain = run(
            &packet([2, 0, 0, 0, 0, 9], MessageType::Discover, vec![]),
            &on("10.3.0.2/24"),
            &mut Leases::default(),
        );
        assert!(matches!(
            plain,
            Outcome::Dropped {
                reason: Drop::NotBootClient,
                ..
            }
        ));
        let port_4011 = Ingress {
            interface: vec!["10.3.0.2/24".parse().unwrap()],
            proxy_port: true,
        };
        let ack = run(
            &packet([2, 0, 0, 0, 0, 9], MessageType::Request, pxe),
            &port_4011,
            &mut Leases::default(),
        );
        assert!(matches!(
            ack,
            Outcome::Reply {
                sent: "ack",
                to: Destination::Sender,
                ..
            }
        ));
    }

    #[test]
    fn garbage_and_foreign_packets_are_dropped() {
        let mut leases = Leases::default();
        let ing = on("10.1.0.2/24");
        let good = bytes(&packet(A_MAC, MessageType::Discover, vec![]));
        for bad in [
            &[][..],
            &[1, 2, 3][..],
            &good[..100],
            &good[..good.len() - 5],
        ] {
            let out = answer(bad, &ing, &site(), server, &mut leases, Instant::now());
            assert!(matches!(out, Outcome::Dropped { .. }), "{out:?}");
        }
        // Option with a length running past the end.
        let mut bad = good.clone();
        let end = bad.len() - 1;
        bad[end] = 12; // replace END by Hostname ...
        bad.push(200); // ... claiming 200 bytes
        bad.push(b'x');
        assert!(matches!(
            answer(&bad, &ing, &site(), server, &mut leases, Instant::now()),
            Outcome::Dropped {
                reason: Drop::Malformed,
                ..
            }
        ));
        // Options the decoder reads with fixed sizes (found by the fuzzer): wrong lengths,
        // also through concatenation of repeated options, are malformed.
        for opts in [
            &[80, 1, 0][..],
            &[94, 2, 1, 3],
            &[94, 3, 1, 3, 16, 94, 3, 1, 3, 16],
            &[152, 0],
            &[81, 2, 0, 0],
            &[94, 3, 1, 3, 16, 12, 1, b'x', 94, 0],
            &[52, 1, 3],
        ] {
            let mut bad = good[..good.len() - 1].to_vec();
            bad.extend_from_slice(opts);
            bad.push(255);
            assert!(!well_formed(&bad), "{opts:?}");
            assert!(matches!(
                answer(&bad, &ing, &site(), server, &mut leases, Instant::now()),
                Outcome::Dropped {
                    reason: Drop::Malformed,
                    ..
                }
            ));
        }
        let mut ok = good[..good.len() - 1].to_vec();
        ok.extend_from_slice(&[94, 3, 1, 3, 16, 80, 0]);
        ok.push(255);
        assert!(well_formed(&ok));
        // A reply (BOOTREPLY) sent by another server.
        let mut offer = packet(A_MAC, MessageType::Offer, vec![]);
        offer.set_opcode(Opcode::BootReply);
        assert!(matches!(
            run(&offer, &ing, &mut leases),
            Outcome::Dropped {
                reason: Drop::Unsupported,
                ..
            }
        ));
        // No rack on this interface.
        assert!(matches!(
            run(
                &packet(A_MAC, MessageType::Discover, vec![]),
                &on("172.16.0.2/24"),
                &mut leases
            ),
            Outcome::Dropped {
                reason: Drop::NoRack,
                ..
            }
        ));
        // The client chose another server.
        let other = packet(
            A_MAC,
            MessageType::Request,
            vec![DhcpOption::ServerIdentifier(Ipv4Addr::new(10, 1, 0, 77))],
        );
        assert!(matches!(
            run(&other, &ing, &mut leases),
            Outcome::Dropped {
                reason: Drop::OtherServer,
                ..
            }
        ));
    }
}
