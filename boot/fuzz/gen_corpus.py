#!/usr/bin/env python3
"""Writes the seed corpus of the `dhcp_answer` fuzz target: small real DHCPv4 packets from each
kind of boot client the server meets (BIOS PXE, UEFI PXE, UEFI HTTP, iPXE, relayed, plain), and
a few malformed ones. Deterministic: run it again and the corpus is byte-for-byte the same.

    python3 boot/fuzz/gen_corpus.py        # rewrites boot/fuzz/corpus/dhcp_answer/

The addresses and MACs match the fixed site in fuzz_targets/dhcp_answer.rs (rack A 10.1.0.0/24,
rack B 10.2.0.0/24, proxy rack P 10.3.0.0/24, our address .2 on each).
"""

import os
import struct
import sys

# Message types (option 53).
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)

COOKIE = bytes([99, 130, 83, 99])
END = 255

# Reserved in the harness: A_MAC in rack A (10.1.0.4), B_MAC in rack B (10.2.0.11).
A_MAC = bytes([0x52, 0x54, 0x00, 0xA0, 0x00, 0x01])
B_MAC = bytes([0x52, 0x54, 0x00, 0xB0, 0x00, 0x01])
# Unknown machines (take a dynamic address, or a proxyDHCP answer).
NEW_MAC = bytes([0x02, 0x00, 0x00, 0x00, 0x00, 0x07])
NEW_MAC2 = bytes([0x02, 0x00, 0x00, 0x00, 0x00, 0x08])

PXE_BIOS = b"PXEClient:Arch:00000:UNDI:002001"
PXE_UEFI = b"PXEClient:Arch:00007:UNDI:003016"
HTTP_UEFI = b"HTTPClient:Arch:00016:UNDI:003001"
UUID = bytes([0]) + bytes(range(0x10, 0x20))  # option 97: type 0 + 16-byte GUID


def ip(s):
    return bytes(int(x) for x in s.split("."))


def opt(code, value):
    value = bytes(value)
    assert len(value) <= 255, (code, len(value))
    return bytes([code, len(value)]) + value


def header(mac, *, op=1, htype=1, hlen=6, hops=0, xid=0x1D2C3B4A, secs=4, flags=0x8000,
           ciaddr="0.0.0.0", yiaddr="0.0.0.0", siaddr="0.0.0.0", giaddr="0.0.0.0"):
    """The 236-byte BOOTP header (RFC 951 / 2131)."""
    h = struct.pack("!BBBBIHH", op, htype, hlen, hops, xid, secs, flags)
    h += ip(ciaddr) + ip(yiaddr) + ip(siaddr) + ip(giaddr)
    h += mac.ljust(16, b"\0")  # chaddr
    h += bytes(64)  # sname
    h += bytes(128)  # file
    assert len(h) == 236
    return h


def packet(kind, mac, options=(), end=True, **hdr):
    body = header(mac, **hdr) + COOKIE + opt(53, [kind])
    for o in options:
        body += o
    if end:
        body += bytes([END])
    return body


def pxe(vendor, arch):
    """What PXE ROMs send: vendor class, architecture (93), NDI (94), UUID (97), PRL, max size."""
    return [
        opt(57, struct.pack("!H", 1260)),
        opt(93, struct.pack("!H", arch)),
        opt(94, [1, 3, 16]),
        opt(97, UUID),
        opt(55, [1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54,
                 58, 59, 60, 66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135]),
        opt(60, vendor),
    ]


def ipxe():
    """iPXE 1.21: user class "iPXE" (77), its feature option 175, and PXEClient vendor class."""
    features = bytes([0x10, 1, 2, 0x11, 1, 1, 0x13, 1, 1, 0x14, 1, 1, 0x15, 1, 1, 0x18, 1, 1,
                      0x19, 1, 1, 0x21, 1, 1, 0x23, 1, 1, 0xEB, 3, 1, 21, 1])
    return [
        opt(57, struct.pack("!H", 1472)),
        opt(93, struct.pack("!H", 7)),
        opt(94, [1, 3, 16]),
        opt(60, PXE_UEFI),
        opt(77, b"iPXE"),
        opt(55, [1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133,
                 134, 135, 175, 203]),
        opt(175, features),
        opt(61, b"\x01" + A_MAC),
    ]


def relay_info(*subs):
    return opt(82, b"".join(opt(code, value) for code, value in subs))


def corpus():
    c = {}
    # Legacy BIOS PXE: an unknown machine on rack A, then the reserved one requesting.
    c["bios_pxe_discover"] = packet(DISCOVER, NEW_MAC, pxe(PXE_BIOS, 0))
    c["bios_pxe_request"] = packet(
        REQUEST, A_MAC, pxe(PXE_BIOS, 0) + [opt(50, ip("10.1.0.4")), opt(54, ip("10.1.0.2"))])
    # UEFI PXE (x64, architecture 7): DISCOVER, and the proxyDHCP REQUEST to port 4011.
    c["uefi_pxe_discover"] = packet(DISCOVER, NEW_MAC2, pxe(PXE_UEFI, 7))
    c["uefi_pxe_proxy_request"] = packet(
        REQUEST, NEW_MAC2, pxe(PXE_UEFI, 7), ciaddr="10.3.0.50", flags=0)
    # UEFI HTTP boot (architecture 16).
    c["uefi_http_discover"] = packet(DISCOVER, NEW_MAC, pxe(HTTP_UEFI, 16))
    # iPXE after chainloading: DISCOVER and REQUEST for its reserved address.
    c["ipxe_discover"] = packet(DISCOVER, A_MAC, ipxe() + [opt(12, b"a-u01")])
    c["ipxe_request"] = packet(
        REQUEST, A_MAC, ipxe() + [opt(50, ip("10.1.0.4")), opt(54, ip("10.1.0.2"))])
    # Relayed through rack B's router: giaddr + option 82 (circuit id, remote id).
    c["relayed_discover_opt82"] = packet(
        DISCOVER, B_MAC, pxe(PXE_UEFI, 7)
        + [relay_info((1, b"tor-b:eth1"), (2, b"\x00\x06" + bytes([0xAA] * 6)))],
        hops=1, giaddr="10.2.0.1")
    # Relayed from rack B for an unknown machine: B's range is full until its leases expire.
    c["relayed_discover_range_full"] = packet(
        DISCOVER, NEW_MAC, [opt(61, b"\x01" + NEW_MAC), relay_info((1, b"tor-b:eth9"))],
        hops=1, giaddr="10.2.0.1")
    # Relayed from the proxy rack: a proxyDHCP OFFER (boot options, no address) to the relay.
    c["relayed_proxy_discover"] = packet(DISCOVER, NEW_MAC2, pxe(PXE_BIOS, 0), hops=1,
                                         giaddr="10.3.0.1")
    # Relayed with RFC 3527 link selection naming rack A's subnet (giaddr in no rack).
    c["relayed_request_link_selection"] = packet(
        REQUEST, NEW_MAC, [opt(50, ip("10.1.0.5")), opt(54, ip("192.168.50.2")),
                           relay_info((1, b"spine1:eth7"), (5, ip("10.1.0.0")))],
        hops=2, giaddr="192.168.50.1")
    # An installed OS: DISCOVER with host name and client id, renewal REQUEST, INFORM, RELEASE.
    c["plain_discover"] = packet(
        DISCOVER, NEW_MAC, [opt(61, b"\x01" + NEW_MAC), opt(12, b"node7"),
                            opt(55, [1, 3, 6, 15, 28, 42, 119, 121])])
    c["plain_renew"] = packet(REQUEST, NEW_MAC, [opt(61, b"\x01" + NEW_MAC)],
                              ciaddr="10.1.0.5", flags=0)
    c["plain_inform"] = packet(INFORM, A_MAC, [opt(55, [1, 3, 6, 15])], ciaddr="10.1.0.4",
                               flags=0)
    c["plain_release"] = packet(RELEASE, NEW_MAC, [opt(54, ip("10.1.0.2"))],
                                ciaddr="10.1.0.5", flags=0)
    # RFC 3396: a long vendor class split over two consecutive option 60s (the decoder joins them).
    c["concatenated_vendor_class"] = packet(
        DISCOVER, NEW_MAC2, [opt(93, struct.pack("!H", 7)), opt(60, PXE_UEFI[:10]),
                             opt(60, PXE_UEFI[10:])])
    # Another server's OFFER (BOOTREPLY) seen on the segment.
    c["foreign_offer"] = packet(OFFER, NEW_MAC, [opt(54, ip("10.1.0.77")), opt(51, [0, 0, 14, 16])],
                                op=2, yiaddr="10.1.0.60", siaddr="10.1.0.77")
    # Malformed framing.
    good = c["bios_pxe_discover"]
    c["bad_truncated_header"] = good[:100]
    # Host name claiming 200 bytes where 2 are left.
    c["bad_option_past_end"] = packet(DISCOVER, NEW_MAC, end=False) + bytes([12, 200]) + b"ab"
    c["bad_no_end"] = packet(DISCOVER, NEW_MAC, pxe(PXE_BIOS, 0), end=False)
    # Oversized values: a 255-byte vendor class, a 7-byte address, a 3-byte message type.
    c["bad_oversized_options"] = (
        header(NEW_MAC) + COOKIE + opt(53, [DISCOVER, 0, 0]) + opt(60, b"PXEClient" + bytes(246))
        + opt(50, ip("10.1.0.3") + b"xyz") + bytes([END]))
    c["bad_cookie"] = header(NEW_MAC) + bytes([99, 130, 83, 98]) + opt(53, [DISCOVER]) + b"\xff"
    return c


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "dhcp_answer")
    os.makedirs(out, exist_ok=True)
    entries = corpus()
    for name in os.listdir(out):
        if name not in entries:
            os.remove(os.path.join(out, name))
    for name, data in sorted(entries.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"{len(entries)} seeds in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
