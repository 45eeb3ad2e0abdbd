"""The mobile node - home agent tunnel: IPv6/IPv4 in IPv6/IPv4 (RFC 2473, RFC 4213)
and the DSMIP6 UDP format of RFC 5555 §4.1.

A :class:`TunnelEndpoint` says where the other end is and how to reach it: an IPv6
care-of address (IPv6-in-IPv6, next header 41, or IPv4-in-IPv6, 4), an IPv4 care-of
address (IPv6-in-IPv4, protocol 41, or IPv4-in-IPv4, 4), or the same in IPv4/UDP to
port 4191 when a NAT was detected or the home agent forces UDP (RFC 5555 §4.2). The
outer headers are built by scapy.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6

from ..errors import MalformedPacket
from ..net.interface import as_address
from ..wire.mip6 import DSMIP6_UDP_PORT, encapsulate_udp4

IPPROTO_IPV4, IPPROTO_IPV6 = 4, 41


@dataclass(frozen=True)
class TunnelEndpoint:
    """One end's view of the tunnel: our outer address, the peer's, UDP ports if any."""

    local: ipaddress._BaseAddress
    remote: ipaddress._BaseAddress
    udp: tuple[int, int] | None = None       # (our port, peer's port): RFC 5555 §4.1

    def describe(self) -> str:
        kind = "UDP " if self.udp else ""
        ports = f":{self.udp[0]}→:{self.udp[1]}" if self.udp else ""
        return f"{kind}{self.local}→{self.remote}{ports}"


def encapsulate(inner: bytes, tunnel: TunnelEndpoint, hop_limit: int = 64) -> bytes:
    """The outer packet that carries ``inner`` (an IPv6 or IPv4 packet) through ``tunnel``."""
    version = inner[0] >> 4
    if version not in (4, 6):
        raise MalformedPacket(f"cannot tunnel IP version {version}")
    nh = IPPROTO_IPV6 if version == 6 else IPPROTO_IPV4
    if tunnel.udp is not None:
        return bytes(encapsulate_udp4(inner, str(tunnel.local), str(tunnel.remote),
                                      sport=tunnel.udp[0], dport=tunnel.udp[1], ttl=hop_limit))
    if tunnel.remote.version == 6:
        return bytes(IPv6(src=str(tunnel.local), dst=str(tunnel.remote), nh=nh,
                          hlim=hop_limit) / inner)
    return bytes(IP(src=str(tunnel.local), dst=str(tunnel.remote), proto=nh, ttl=hop_limit)
                 / inner)


def inner_packet(payload: bytes) -> bytes:
    """Check that ``payload`` (what followed the outer header) is a whole IP packet."""
    if not payload:
        raise MalformedPacket("empty tunnel payload")
    version = payload[0] >> 4
    if version == 6:
        if len(payload) < 40 or 40 + int.from_bytes(payload[4:6], "big") > len(payload):
            raise MalformedPacket("truncated inner IPv6 packet")
        return payload[:40 + int.from_bytes(payload[4:6], "big")]
    if version == 4:
        total = int.from_bytes(payload[2:4], "big") if len(payload) >= 20 else 0
        if total < 20 or total > len(payload):
            raise MalformedPacket("truncated inner IPv4 packet")
        return payload[:total]
    raise MalformedPacket(f"tunnel payload is IP version {version}")


def inner_source(packet: bytes) -> ipaddress._BaseAddress:
    return as_address(packet[8:24] if packet[0] >> 4 == 6 else packet[12:16])


def inner_destination(packet: bytes) -> ipaddress._BaseAddress:
    return as_address(packet[24:40] if packet[0] >> 4 == 6 else packet[16:20])


__all__ = ["DSMIP6_UDP_PORT", "IPPROTO_IPV4", "IPPROTO_IPV6", "TunnelEndpoint",
           "encapsulate", "inner_destination", "inner_packet", "inner_source"]
