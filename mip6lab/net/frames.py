"""Frames on the simulated wire: Ethernet framing, link-layer addresses, short labels.

Every frame on an in-process link is real bytes (Ethernet II), built and dissected by
scapy, so that the trace can be written to a pcap that Wireshark opens as it is.

The helpers here are the few facts about addresses that the stack needs everywhere:
modified EUI-64 interface identifiers (RFC 4291 §2.5.1, Appendix A), solicited-node
multicast addresses (RFC 4291 §2.7.1) and the Ethernet mapping of IPv6 multicast
(RFC 2464 §7), plus :func:`describe`, the one-line label of a frame that the trace
and the ladder diagram show.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Union

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptPrefixInfo,
    ICMPv6ParamProblem,
    ICMPv6TimeExceeded,
    IPv6,
)
from scapy.layers.ipsec import ESP  # also binds ESP to IP, IPv6 and UDP 4500
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet

from ..wire.checksum import internet_checksum, ipv6_checksum

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ETH_HEADER_LEN = 14

ALL_NODES = ipaddress.IPv6Address("ff02::1")
ALL_ROUTERS = ipaddress.IPv6Address("ff02::2")


#: MAC text -> its 6 octets, for the destinations of every frame sent (a few per link:
#: the router's, the groups'); bounded, emptied when full
_MAC_OCTETS: dict[str, bytes] = {}
_MAC_OCTETS_MAX = 4096
_ETHERTYPES = {ETH_P_IPV6: ETH_P_IPV6.to_bytes(2, "big"), ETH_P_IP: ETH_P_IP.to_bytes(2, "big"),
               ETH_P_ARP: ETH_P_ARP.to_bytes(2, "big")}


def ethernet_header(dst_mac: str, src: bytes, ethertype: int) -> bytes:
    """An Ethernet II header (destination, source, type), as scapy's ``Ether`` writes it."""
    dst = _MAC_OCTETS.get(dst_mac)
    if dst is None:
        if len(_MAC_OCTETS) >= _MAC_OCTETS_MAX:
            _MAC_OCTETS.clear()
        dst = _MAC_OCTETS[dst_mac] = bytes.fromhex(dst_mac.replace(":", ""))
    kind = _ETHERTYPES.get(ethertype)
    return dst + src + (kind if kind is not None else ethertype.to_bytes(2, "big"))


def mac_for_index(index: int) -> str:
    """A locally administered unicast MAC for the ``index``-th interface of a lab."""
    return "02:00:5e:%02x:%02x:%02x" % ((index >> 16) & 0xFF, (index >> 8) & 0xFF,
                                         index & 0xFF)


def interface_id_from_mac(mac: str) -> int:
    """Modified EUI-64 interface identifier of a 48-bit MAC (RFC 4291 Appendix A)."""
    octets = bytes.fromhex(mac.replace(":", ""))
    eui = bytes([octets[0] ^ 0x02]) + octets[1:3] + b"\xff\xfe" + octets[3:]
    return int.from_bytes(eui, "big")


def address_in_prefix(prefix: ipaddress.IPv6Network, mac: str) -> ipaddress.IPv6Address:
    """The SLAAC address formed from a /64 prefix and a MAC (RFC 4862 §5.5.3)."""
    return ipaddress.IPv6Address(int(prefix.network_address) | interface_id_from_mac(mac))


LINK_LOCAL_PREFIX = ipaddress.IPv6Network("fe80::/64")


def link_local_from_mac(mac: str) -> ipaddress.IPv6Address:
    """The fe80::/64 link-local address of an interface (RFC 4862 §5.3)."""
    return address_in_prefix(LINK_LOCAL_PREFIX, mac)


#: ff02::1:ff00:0, the prefix of the solicited-node groups (RFC 4291 §2.7.1), as a number
SOLICITED_NODE_PREFIX = int(ipaddress.IPv6Address("ff02::1:ff00:0"))


def solicited_node(address: ipaddress.IPv6Address) -> ipaddress.IPv6Address:
    """The solicited-node multicast group of ``address`` (RFC 4291 §2.7.1)."""
    return ipaddress.IPv6Address(SOLICITED_NODE_PREFIX | (int(address) & 0xFFFFFF))


def multicast_mac(group: ipaddress.IPv6Address) -> str:
    """Ethernet destination for an IPv6 multicast group (RFC 2464 §7)."""
    low = group.packed[-4:]
    return "33:33:" + ":".join("%02x" % b for b in low)


#: the group bit (I/G, IEEE 802 §8.2) of every first octet as text, so that a frame's
#: destination is told without parsing it for every frame sent
_GROUP_BIT = {text: bool(octet & 0x01) for octet in range(256)
              for text in {"%02x" % octet, "%02X" % octet}}


def is_multicast_mac(mac: str) -> bool:
    group = _GROUP_BIT.get(mac[:2])
    return group if group is not None else bool(int(mac[:2], 16) & 0x01)


# -- IP/UDP on bytes -----------------------------------------------------------------------
# The hot paths of a lab at scale (every IKE message is a UDP datagram) build and read
# UDP without scapy; the bytes are the ones scapy makes with its defaults (hop limit 64,
# IPv4 identification 1, TTL 64), which tests/test_trace.py checks against scapy.

IPPROTO_UDP = 17
_IPV6_UDP = struct.Struct("!IHBB16s16s")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")


def udp_checksum(src: bytes, dst: bytes, segment: bytes) -> int:
    """The UDP checksum of ``segment`` (its checksum field zero) over the pseudo-header of
    packed addresses ``src`` and ``dst`` (RFC 768; RFC 8200 §8.1 for IPv6); a computed 0
    is sent as 0xFFFF (RFC 768, RFC 8200 §8.1)."""
    if len(src) == 16:
        return ipv6_checksum(src, dst, IPPROTO_UDP, segment) or 0xFFFF
    pseudo = src + dst + b"\x00\x11" + len(segment).to_bytes(2, "big")
    return internet_checksum(pseudo + segment) or 0xFFFF


def build_udp(src: IPAddress, dst: IPAddress, sport: int, dport: int,
              payload: bytes) -> bytes:
    """An IPv6 or IPv4 packet carrying one UDP datagram, as bytes."""
    length = 8 + len(payload)
    source, destination = src.packed, dst.packed     # a property call each: read once
    ck = udp_checksum(source, destination, _UDP.pack(sport, dport, length, 0) + payload)
    segment = _UDP.pack(sport, dport, length, ck) + payload
    if src.version == 6:
        return _IPV6_UDP.pack(0x60000000, length, IPPROTO_UDP, 64, source,
                              destination) + segment
    header = _IPV4.pack(0x45, 0, 20 + length, 1, 0, 64, IPPROTO_UDP, 0, source,
                        destination)
    return header[:10] + internet_checksum(header).to_bytes(2, "big") + header[12:] + segment


def dissect(frame: bytes) -> Ether:
    """Dissect wire bytes with scapy."""
    return Ether(frame)


def _ip_label(ip: Packet) -> str:
    return f"{ip.src} → {ip.dst}"


def describe(frame: bytes | Packet) -> str:
    """A one-line, human label for a frame: what a student wants to read in a ladder.

    Never raises: a frame too short or too broken for scapy (bad input is data, and the
    trace records it) is labelled by its length.
    """
    try:
        return _describe(frame)
    except Exception:
        size = len(frame) if isinstance(frame, (bytes, bytearray)) else len(bytes(frame))
        return f"undecodable frame, {size} bytes"


def _describe(frame: bytes | Packet) -> str:
    pkt = dissect(frame) if isinstance(frame, (bytes, bytearray)) else frame
    if ARP in pkt:
        arp = pkt[ARP]
        if arp.op == 1:
            return f"ARP who-has {arp.pdst} tell {arp.psrc}"
        return f"ARP {arp.psrc} is-at {arp.hwsrc}"
    if IPv6 in pkt:
        ip = pkt[IPv6]
        # An error first: it quotes the packet it is about, whose layers scapy also finds.
        for layer, name in ((ICMPv6DestUnreach, "destination unreachable"),
                            (ICMPv6TimeExceeded, "time exceeded"),
                            (ICMPv6ParamProblem, "parameter problem")):
            if layer in pkt:
                return f"ICMPv6 {name} code={pkt[layer].code} {_ip_label(ip)}"
        if ICMPv6ND_RA in pkt:
            prefixes = [f"{o.prefix}/{o.prefixlen}" for o in options_of(pkt, ICMPv6NDOptPrefixInfo)]
            return f"RA {ip.src} prefix {', '.join(prefixes) or '-'}"
        if ICMPv6ND_RS in pkt:
            return f"RS {_ip_label(ip)}"
        if ICMPv6ND_NS in pkt:
            return f"NS who-has {pkt[ICMPv6ND_NS].tgt}"
        if ICMPv6ND_NA in pkt:
            return f"NA {pkt[ICMPv6ND_NA].tgt} is-at {pkt[Ether].src}"
        for layer, name in ((ICMPv6EchoReply, "echo reply"),  # a subclass of the request
                            (ICMPv6EchoRequest, "echo request")):
            if layer in pkt:
                echo = pkt[layer]
                return f"ICMPv6 {name} {_ip_label(ip)} id={echo.id} seq={echo.seq}"
        special = _ipsec_label(pkt, f"[{ip.src}]", f"[{ip.dst}]")
        if special:
            return special
        if UDP in pkt:
            udp = pkt[UDP]
            return (f"UDP [{ip.src}]:{udp.sport} → [{ip.dst}]:{udp.dport} "
                    f"{len(udp.payload)} B")
        return f"IPv6 {_ip_label(ip)} nh={ip.nh}"
    if IP in pkt:
        ip = pkt[IP]
        if ICMP in pkt:
            icmp = pkt[ICMP]
            names = {0: "echo reply", 8: "echo request", 3: "destination unreachable",
                     11: "time exceeded"}
            name = names.get(icmp.type, f"type {icmp.type}")
            extra = f" id={icmp.id} seq={icmp.seq}" if icmp.type in (0, 8) else \
                f" code={icmp.code}"
            return f"ICMP {name} {_ip_label(ip)}{extra}"
        special = _ipsec_label(pkt, ip.src, ip.dst)
        if special:
            return special
        if UDP in pkt:
            udp = pkt[UDP]
            return f"UDP {ip.src}:{udp.sport} → {ip.dst}:{udp.dport} {len(udp.payload)} B"
        return f"IPv4 {_ip_label(ip)} proto={ip.proto}"
    return pkt.summary()


def _ipsec_label(pkt: Packet, src: str, dst: str) -> str | None:
    """ESP, ESP in UDP (RFC 3948), NAT-keepalives and IKE on 4500, by name."""
    udp = pkt.getlayer(UDP)
    if udp is not None and 500 in (udp.sport, udp.dport):
        return _ike_label(bytes(udp.payload), f"{src}:{udp.sport} → {dst}:{udp.dport}")
    if udp is not None and 4500 in (udp.sport, udp.dport):
        raw = bytes(udp.payload)
        where = f"{src}:{udp.sport} → {dst}:{udp.dport}"
        if raw == b"\xff":
            return f"NAT-keepalive {where}"
        if raw[:4] == b"\x00\x00\x00\x00":
            return _ike_label(raw[4:], where)
        if len(raw) >= 8:
            return (f"ESP-in-UDP spi=0x{int.from_bytes(raw[:4], 'big'):08x} "
                    f"seq={int.from_bytes(raw[4:8], 'big')} {where}")
    if ESP in pkt and udp is None:
        esp = pkt[ESP]
        return f"ESP spi=0x{esp.spi:08x} seq={esp.seq} {src} → {dst}"
    return None


_EXCHANGES = {34: "IKE_SA_INIT", 35: "IKE_AUTH", 36: "CREATE_CHILD_SA", 37: "INFORMATIONAL"}


def _ike_label(message: bytes, where: str) -> str:
    """``IKE_AUTH request #1 ...``: exchange, direction and message ID from the header."""
    if len(message) < 28:
        return f"IKE (truncated) {where}"
    exchange = _EXCHANGES.get(message[18], f"exchange {message[18]}")
    kind = "response" if message[19] & 0x20 else "request"
    message_id = int.from_bytes(message[20:24], "big")
    return f"IKE {exchange} {kind} #{message_id} {where} {len(message)} B"


def options_of(pkt: Packet, option_class: type) -> list[Packet]:
    """Every layer of ``option_class`` in ``pkt``, in order (ND options repeat)."""
    found = []
    layer = pkt.getlayer(option_class)
    while layer is not None:
        found.append(layer)
        layer = layer.payload.getlayer(option_class)
    return found
