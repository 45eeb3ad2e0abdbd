"""Address resolution: IPv6 Neighbor Discovery (RFC 4861 §7) and ARP (RFC 826).

A node resolves the link-layer address of a next hop before it can send a frame. A
miss queues the packet (a few per neighbour, the newest replacing the oldest when the
queue is full, RFC 4861 §7.2.2), keeps them across the retries, sends a Neighbor
Solicitation to the solicited-node group or an ARP request to broadcast, retries every
RetransTimer and gives up after MAX_MULTICAST_SOLICIT tries, answering the queued
packets' sources with ICMP "address unreachable" (RFC 4861 §7.2.2, RFC 4443 §3.1).

Simplification, said here so nobody is surprised: an entry is simply valid for
ReachableTime after it was learned; the STALE/DELAY/PROBE states of Neighbor
Unreachability Detection are not modelled, and there is no Duplicate Address Detection.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from scapy.layers.l2 import ARP, Ether

from ..wire.nd_codec import neighbor_solicitation
from .frames import BROADCAST_MAC, ETH_P_ARP, solicited_node, multicast_mac
from .interface import IPAddress
from .sim import ScheduledCall, seconds_to_us

if TYPE_CHECKING:
    from .interface import Interface
    from .node import Node

REACHABLE_TIME = 30.0        # RFC 4861 §10 REACHABLE_TIME
RETRANS_TIMER = 1.0          # RFC 4861 §10 RETRANS_TIMER
MAX_MULTICAST_SOLICIT = 3    # RFC 4861 §10
QUEUE_PER_NEIGHBOR = 3       # packets held while resolving (RFC 4861 §7.2.2: "small")
_BROADCAST4 = ipaddress.IPv4Address("255.255.255.255")


@dataclass(slots=True)
class NeighborEntry:
    mac: str
    expires_us: int


@dataclass(slots=True)
class PendingResolution:
    queue: list[tuple[bytes, int]] = field(default_factory=list)  # (l3 bytes, ethertype)
    tries: int = 0
    timer: ScheduledCall | None = None


class NeighborTable:
    """The neighbour cache and ARP cache of one node, keyed by (interface, address)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.entries: dict[tuple[str, IPAddress], NeighborEntry] = {}
        self.pending: dict[tuple[str, IPAddress], PendingResolution] = {}

    def lookup(self, iface: Interface, address: IPAddress) -> str | None:
        entry = self.entries.get((iface.name, address))
        if entry is None or entry.expires_us <= self.node.sim.now_us:
            return None
        return entry.mac

    def learn(self, iface: Interface, address: IPAddress, mac: str) -> None:
        """Record ``address`` is-at ``mac`` and send whatever waited for it."""
        if address.is_unspecified or mac in (None, BROADCAST_MAC):
            return
        key = (iface.name, address)
        self.entries[key] = NeighborEntry(mac, self.node.sim.now_us
                                          + seconds_to_us(REACHABLE_TIME))
        pending = self.pending.pop(key, None)
        if pending:
            if pending.timer:
                pending.timer.cancel()
            for l3, ethertype in pending.queue:
                self.node.transmit(iface, mac, ethertype, l3)

    def flush(self, iface: Interface) -> None:
        """Forget everything learned on ``iface`` (it left its link)."""
        for key in [k for k in self.entries if k[0] == iface.name]:
            del self.entries[key]
        for key in [k for k in self.pending if k[0] == iface.name]:
            pending = self.pending.pop(key)
            if pending.timer:
                pending.timer.cancel()

    def resolve_and_send(self, iface: Interface, nexthop: IPAddress, l3: bytes,
                         ethertype: int) -> None:
        """Send ``l3`` to ``nexthop`` on ``iface``, resolving its MAC first if needed."""
        if isinstance(nexthop, ipaddress.IPv6Address):
            if nexthop._ip >> 120 == 0xFF:     # ff00::/8 (RFC 4291 §2.7); _ip: int()'s
                self.node.transmit(iface, multicast_mac(nexthop), ethertype, l3)
                return
        elif nexthop == _BROADCAST4:
            self.node.transmit(iface, BROADCAST_MAC, ethertype, l3)
            return
        key = (iface.name, nexthop)
        entry = self.entries.get(key)        # what lookup() answers, the key made once
        if entry is not None and entry.expires_us > self.node.sim.now_us:
            self.node.transmit(iface, entry.mac, ethertype, l3)
            return
        pending = self.pending.get(key)
        if pending is None:
            pending = self.pending[key] = PendingResolution()
            pending.queue.append((l3, ethertype))
            self._solicit(iface, nexthop, l3)
            return
        if len(pending.queue) >= QUEUE_PER_NEIGHBOR:
            # RFC 4861 §7.2.2: "When a queue overflows, the new arrival SHOULD replace
            # the oldest entry" -- the newest is the likeliest still wanted (a BA after
            # the data packets that filled the queue, a retransmission after its original)
            oldest, old_type = pending.queue.pop(0)
            self.node.drop("nd", "resolution queue full: oldest packet replaced", oldest,
                           ethertype=old_type)
        pending.queue.append((l3, ethertype))

    def _solicit(self, iface: Interface, nexthop: IPAddress, trigger: bytes) -> None:
        key = (iface.name, nexthop)
        pending = self.pending.get(key)
        if pending is None or iface.link is None:
            return
        if pending.tries >= MAX_MULTICAST_SOLICIT:
            del self.pending[key]
            self.node.announce("nd", f"address resolution of {nexthop} on {iface.name} "
                               "failed", neighbor=str(nexthop))
            for l3, ethertype in pending.queue:
                self.node.drop("nd", f"address resolution of {nexthop} failed", l3,
                               ethertype=ethertype)
                if self.node.forwarding:   # a router's answer about a packet it forwarded;
                    # a host's own packet (perhaps from an address it no longer has, after
                    # a move) gets no ICMP error from itself
                    self.node.icmp_error(l3, ethertype, "address-unreachable", iface)
            return
        pending.tries += 1
        if nexthop.version == 6:
            src = iface.source_for(nexthop) or iface.link_local
            self.node.send_on(iface, neighbor_solicitation(src, solicited_node(nexthop),
                                                           nexthop, iface.mac))
        else:
            src4 = iface.source_for(nexthop)
            request = ARP(op=1, hwsrc=iface.mac, psrc=str(src4 or "0.0.0.0"),
                          pdst=str(nexthop))
            self.node.transmit(iface, BROADCAST_MAC, ETH_P_ARP, bytes(request))
        pending.timer = self.node.sim.call_later(
            RETRANS_TIMER, self._solicit, iface, nexthop, trigger,
            label=(self.node.name, "resolve", nexthop))

    # -- ARP (RFC 826) ---------------------------------------------------------------------

    def receive_arp(self, iface: Interface, frame: Ether) -> None:
        arp = frame[ARP]
        sender = ipaddress.IPv4Address(arp.psrc)
        target = ipaddress.IPv4Address(arp.pdst)
        if iface.has_address(target) or self.node.answers_arp_for(iface, target):
            self.learn(iface, sender, arp.hwsrc)
            if arp.op == 1:
                reply = ARP(op=2, hwsrc=iface.mac, psrc=str(target), hwdst=arp.hwsrc,
                            pdst=str(sender))
                self.node.transmit(iface, arp.hwsrc, ETH_P_ARP, bytes(reply))
        elif arp.op == 2 and (iface.name, sender) in self.pending:
            self.learn(iface, sender, arp.hwsrc)
