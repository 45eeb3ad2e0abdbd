"""What a packet looks like to the SPD: its selector values (RFC 4301 §4.4.1.1).

:func:`packet_selectors` reads, from an IP packet's bytes, the values the SPD matches
on: source and destination address, next-layer protocol, ports, ICMP type and code, and
the Mobility Header type. It walks IPv6 extension headers to find the upper layer.

Two Mobile IPv6 rules live here because they are about which address *is* the
packet's (RFC 4877 §4.2, and RFC 6275 §6.3 and §6.4): a Home Address option in a
Destination Options header makes the home address the packet's source for policy
purposes, and a type 2 Routing header makes the home address its destination. So an
SPD entry written for the HoA matches a BU sent from the CoA.

The parser works on bytes (it is on every packet's path); the field positions are the
RFCs': RFC 8200 §4 for extension headers, RFC 6275 §6.1.1 for the MH type at offset 2.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..addresses import from_packed
from ..errors import MalformedPacket
from ..net.interface import IPAddress

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPPROTO_MH = 135
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_DSTOPTS = 60
IPPROTO_HOPOPTS = 0
HAO_OPTION = 0xC9
ROUTING_TYPE_2 = 2

MH_TYPES = {"BRR": 0, "HoTI": 1, "CoTI": 2, "HoT": 3, "CoT": 4, "BU": 5, "BA": 6, "BE": 7}


@dataclass(frozen=True, slots=True)
class PacketSelectors:
    """The selector values of one packet, as its sender wrote them."""

    src: IPAddress               # the home address if a HAO carries one
    dst: IPAddress               # the home address if a type 2 routing header carries one
    protocol: int                # next-layer protocol (upper layer, after extensions)
    sport: int | None = None
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    mh_type: int | None = None
    wire_src: IPAddress | None = None   # the addresses in the IP header, when they differ
    wire_dst: IPAddress | None = None


#: where IPv4 addresses go among :func:`address_key`'s ints: above every IPv6 value
_IPV4_KEYS = 1 << 128


def address_key(address: IPAddress):
    """An address as an internal dict key: an int, which hashes in C, where an ipaddress
    object's ``__hash__`` is a Python call on every lookup. IPv6 keeps its value, IPv4 is
    put above every IPv6 value (::1.2.3.4 and 1.2.3.4 stay apart); a scoped IPv6 address
    (fe80::1%eth0) stays itself, as its scope is part of its identity."""
    if type(address) is ipaddress.IPv6Address:
        return address._ip if address._scope_id is None else address
    return address._ip | _IPV4_KEYS


def packet_selectors(packet: bytes) -> PacketSelectors:
    """Selector values of an IPv6 or IPv4 packet."""
    if not packet:
        raise MalformedPacket("empty packet")
    if packet[0] >> 4 == 4:
        ihl = (packet[0] & 0x0F) * 4
        if ihl < 20 or len(packet) < ihl:
            raise MalformedPacket("IPv4 header truncated or IHL below 5")
        src, dst = from_packed(packet[12:16]), from_packed(packet[16:20])
        later_fragment = int.from_bytes(packet[6:8], "big") & 0x1FFF != 0
        return _upper(packet, ihl, packet[9], src, dst, None, None, opaque=later_fragment)
    if packet[0] >> 4 != 6:
        raise MalformedPacket(f"not an IP packet (version {packet[0] >> 4})")
    if len(packet) < 40:
        raise MalformedPacket("IPv6 header truncated")
    src = from_packed(packet[8:24])
    dst = from_packed(packet[24:40])
    home_src = home_dst = None
    later_fragment = False
    nh, offset = packet[6], 40
    while nh in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS):
        length = extension_length(packet, offset, nh)
        if nh == IPPROTO_DSTOPTS:
            home_src = _home_address_option(packet[offset + 2:offset + length]) or home_src
        elif nh == IPPROTO_ROUTING and packet[offset + 2] == ROUTING_TYPE_2 and length >= 24:
            home_dst = from_packed(packet[offset + 8:offset + 24])
        elif nh == IPPROTO_FRAGMENT:
            later_fragment = int.from_bytes(packet[offset + 2:offset + 4], "big") >> 3 != 0
        nh = packet[offset]
        offset += length
    return _upper(packet, offset, nh, home_src or src, home_dst or dst,
                  src if home_src else None, dst if home_dst else None,
                  opaque=later_fragment)


def extension_length(packet: bytes, offset: int, nh: int) -> int:
    """Length of the IPv6 extension header of type ``nh`` at ``offset`` (RFC 8200 §4:
    8 octets for a Fragment header, else (Hdr Ext Len + 1) * 8); MalformedPacket if the
    packet ends before it does."""
    if offset + 2 > len(packet):
        raise MalformedPacket("IPv6 extension header truncated")
    length = 8 if nh == IPPROTO_FRAGMENT else (packet[offset + 1] + 1) * 8
    if offset + length > len(packet):
        raise MalformedPacket("IPv6 extension header truncated")
    return length


def find_option(options: bytes, kind: int) -> tuple[int, int] | None:
    """(offset, data length) of the first TLV option ``kind`` in an options area (RFC 8200
    §4.2; Pad1 has no length octet), or None; a truncated option ends the search."""
    i = 0
    while i < len(options):
        if options[i] == 0:    # Pad1
            i += 1
            continue
        if i + 1 >= len(options):
            return None
        if options[i] == kind:
            return i, options[i + 1]
        i += 2 + options[i + 1]
    return None


def _home_address_option(options: bytes) -> ipaddress.IPv6Address | None:
    found = find_option(options, HAO_OPTION)
    if found is None:
        return None
    i, size = found
    if size != 16 or i + 18 > len(options):
        raise MalformedPacket("Home Address option with a wrong length")
    return from_packed(options[i + 2:i + 18])


def _upper(packet: bytes, offset: int, protocol: int, src: IPAddress, dst: IPAddress,
           wire_src: IPAddress | None, wire_dst: IPAddress | None,
           opaque: bool = False) -> PacketSelectors:
    """Ports, ICMP type/code or MH type; none for a non-initial fragment, whose ports
    are OPAQUE (RFC 4301 §4.4.1.1): only an entry with ANY ports can match it."""
    # positional, without slicing the rest of the packet: this runs on every packet
    left = len(packet) - offset
    if opaque:
        pass
    elif protocol in (IPPROTO_TCP, IPPROTO_UDP) and left >= 4:
        return PacketSelectors(src, dst, protocol,
                               packet[offset] << 8 | packet[offset + 1],
                               packet[offset + 2] << 8 | packet[offset + 3],
                               None, None, None, wire_src, wire_dst)
    elif protocol in (IPPROTO_ICMP, IPPROTO_ICMPV6) and left >= 2:
        return PacketSelectors(src, dst, protocol, None, None, packet[offset],
                               packet[offset + 1], None, wire_src, wire_dst)
    elif protocol == IPPROTO_MH and left >= 3:
        return PacketSelectors(src, dst, protocol, None, None, None, None,
                               packet[offset + 2], wire_src, wire_dst)
    return PacketSelectors(src, dst, protocol, None, None, None, None, None,
                           wire_src, wire_dst)
