"""Traffic selectors as IKEv2 negotiates them (RFC 7296 §2.9, §3.13.1).

A :class:`TrafficSelector` is an address range, a port range and an IP protocol. The
responder *narrows* what the initiator proposes: it keeps the intersection of each
proposed selector with each of its own, and refuses (TS_UNACCEPTABLE) only when nothing
is left (§2.9).

The Mobility Header case (RFC 4301 §4.4.1.1, RFC 7296 §3.13.1, used by RFC 4877 for
BU/BA-only SAs): the MH type travels in the most significant byte of the port fields,
so a selector for "MH type 5 (Binding Update)" is protocol 135 with ports
0x0500-0x0500. The helpers
:func:`mh_type_selector` and :attr:`TrafficSelector.mh_types` do that translation.

Conversions to and from the SPD's selectors live here too, because a child SA's
traffic selectors are what IKE writes into the SPD.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Union

from .. import addresses

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
_ADDRESS_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address)
IPPROTO_MH = 135
ANY_PROTOCOL = 0


@dataclass(frozen=True, slots=True)
class TrafficSelector:
    """One traffic selector: [start, end] addresses, [start_port, end_port], protocol.

    With ``__slots__``: every child SA of a home agent holds its selectors."""

    start: IPAddress
    end: IPAddress
    protocol: int = ANY_PROTOCOL
    start_port: int = 0
    end_port: int = 0xFFFF

    def __post_init__(self) -> None:
        start, end = self.start, self.end
        if type(start) not in _ADDRESS_TYPES:     # text or a number (an IKE engine's
            start = ipaddress.ip_address(start)   # selectors are addresses already)
        if type(end) not in _ADDRESS_TYPES:
            end = ipaddress.ip_address(end)
        if start.version != end.version or int(start) > int(end):
            raise ValueError(f"bad address range {start}-{end}")
        if not 0 <= self.start_port <= self.end_port <= 0xFFFF:
            raise ValueError(f"bad port range {self.start_port}-{self.end_port}")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @classmethod
    def from_network(cls, network: str, protocol: int = ANY_PROTOCOL, port: int | None = None,
                     ) -> TrafficSelector:
        """A selector for a CIDR network (``"2001:db8::/64"``) or a single address."""
        net = addresses.network(network)
        ports = (0, 0xFFFF) if port is None else (port, port)
        return cls(net.network_address, net.broadcast_address, protocol, *ports)

    @property
    def version(self) -> int:
        return self.start.version

    def wire(self) -> tuple[int, int, int, int, bytes, bytes]:
        """(TS type, IP protocol, start port, end port, starting and ending address as
        octets): its TS_IPV4_ADDR_RANGE (7) / TS_IPV6_ADDR_RANGE (8), RFC 7296 §3.13.1.
        Made on each call, not kept: a child SA's selectors live as long as the SA, and
        a kept tuple with its octets would cost more than a home agent's few calls."""
        start = self.start
        return (7 if start.version == 4 else 8, self.protocol, self.start_port,
                self.end_port, start.packed, self.end.packed)

    @property
    def mh_types(self) -> tuple[int, int] | None:
        """The MH type range carried in the ports, for a Mobility Header selector."""
        if self.protocol != IPPROTO_MH:
            return None
        return self.start_port >> 8, self.end_port >> 8

    def intersect(self, other: TrafficSelector) -> TrafficSelector | None:
        """The traffic both selectors cover, or None (§2.9 narrowing)."""
        if self.version != other.version:
            return None
        if self.protocol and other.protocol and self.protocol != other.protocol:
            return None
        # compared as integers: the same order, without ipaddress's type checks per call
        start = self.start if int(self.start) >= int(other.start) else other.start
        end = self.end if int(self.end) <= int(other.end) else other.end
        low, high = max(self.start_port, other.start_port), min(self.end_port, other.end_port)
        if int(start) > int(end) or low > high:
            return None
        protocol = self.protocol or other.protocol
        for whole in (self, other):     # one contains the other (the usual case): a value
            if (start is whole.start and end is whole.end and protocol == whole.protocol
                    and low == whole.start_port and high == whole.end_port):
                return whole            # object already made and checked
        return TrafficSelector(start, end, protocol, low, high)

    def contains(self, other: TrafficSelector) -> bool:
        return self.intersect(other) == other

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        """The range as one CIDR network, when it is one (SPD selectors are networks)."""
        # a CIDR block is 2^k addresses starting on a multiple of 2^k; the network comes
        # from the shared cache of the moment (no summarize_address_range per call)
        start = int(self.start)
        size = int(self.end) - start + 1
        if size & (size - 1) or start & (size - 1):
            return None
        bits = self.start.max_prefixlen
        key = (start, size, bits)       # ints: hashed in C, unlike the addresses
        found = _NETWORKS.get(key)
        if found is None:
            if len(_NETWORKS) >= _NETWORKS_KEPT:
                _NETWORKS.clear()
            found = _NETWORKS[key] = addresses.network(
                f"{addresses.text(self.start)}/{bits - (size.bit_length() - 1)}")
        return found

    def __str__(self) -> str:
        addresses = str(self.network() or f"{self.start}-{self.end}")
        proto = f" proto {self.protocol}" if self.protocol else ""
        if self.mh_types is not None:
            lo, hi = self.mh_types
            ports = f" MH type {lo}" if lo == hi else f" MH types {lo}-{hi}"
        elif (self.start_port, self.end_port) != (0, 0xFFFF):
            ports = f" port {self.start_port}" if self.start_port == self.end_port \
                else f" ports {self.start_port}-{self.end_port}"
        else:
            ports = ""
        return addresses + proto + ports


#: the networks of the ranges met a moment ago, by (start, size, address bits): a child
#: SA's selectors are turned into SPD selectors on both ends, several times each
_NETWORKS: dict[tuple[int, int, int], ipaddress.IPv4Network | ipaddress.IPv6Network] = {}
_NETWORKS_KEPT = 4096


def mh_type_selector(address: str, mh_type: int | str) -> TrafficSelector:
    """A selector for one address and one Mobility Header type (RFC 4301 §4.4.1.1, the
    port encoding of :func:`mip6lab.wire.ikev2.mh_ports`)."""
    from ..wire.ikev2 import mh_ports

    net = addresses.network(address)
    return TrafficSelector(net.network_address, net.broadcast_address, IPPROTO_MH,
                           *mh_ports(mh_type))


def narrow(proposed: list[TrafficSelector],
           acceptable: list[TrafficSelector]) -> list[TrafficSelector]:
    """What the responder returns: every non-empty intersection, in proposal order."""
    result: list[TrafficSelector] = []
    for ts in proposed:
        for mine in acceptable:
            common = ts.intersect(mine)
            if common is not None and common not in result:
                result.append(common)
    return result
