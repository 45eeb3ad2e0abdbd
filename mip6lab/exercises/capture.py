"""Frames of a run read the way a student's capture would show them: the IKE messages a
node received, with the IP addresses and UDP ports it saw them from (for the exercises)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from ..net.lab import Lab
from ..trace import Event

IKE_SA_INIT, IKE_AUTH = 34, 35


@dataclass(frozen=True)
class IkeDatagram:
    """One IKE message as a node received (or sent) it."""

    event: Event
    message: bytes           # the IKE message (without the non-ESP marker on UDP 4500)
    source: tuple[str, int]  # IP source address and UDP source port, as seen
    destination: tuple[str, int]

    @property
    def exchange(self) -> int:
        return self.message[18]

    @property
    def response(self) -> bool:
        return bool(self.message[19] & 0x20)

    @property
    def spi_i(self) -> bytes:
        return self.message[:8]


def ike_datagrams(lab: Lab, node: str, kind: str = "rx") -> list[IkeDatagram]:
    """The IKE messages ``node`` received (``kind="rx"``) or sent (``"tx"``), in order."""
    found = []
    for event in lab.events:
        if event.kind != kind or event.node != node or not event.packet:
            continue
        frame = Ether(event.packet)
        ip = frame.getlayer(IPv6) or frame.getlayer(IP)
        udp = frame.getlayer(UDP)
        if ip is None or udp is None or 500 not in (udp.sport, udp.dport) and \
                4500 not in (udp.sport, udp.dport):
            continue
        data = bytes(udp.payload)
        if 4500 in (udp.sport, udp.dport):
            if data[:4] != b"\0\0\0\0":
                continue                    # ESP in UDP, not IKE
            data = data[4:]
        if len(data) < 28 or data[17] != 0x20:   # IKEv2's version octet
            continue
        found.append(IkeDatagram(event, data, (str(ipaddress.ip_address(ip.src)), udp.sport),
                                 (str(ipaddress.ip_address(ip.dst)), udp.dport)))
    return found
