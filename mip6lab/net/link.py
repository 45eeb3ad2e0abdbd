"""Simulated links: point-to-point cables and shared segments, with their impairments.

A :class:`Link` carries Ethernet frames between the interfaces attached to it. A
point-to-point link takes two interfaces, a segment any number (it behaves like a
learning switch that already knows every station: unicast goes to the one interface
with that MAC, broadcast and multicast to all the others).

Each frame's fate is drawn from the lab's seeded random source when it is sent, always
in the same order (loss, then duplication, then reordering, then jitter), so that the
same seed gives the same losses. The impairments are per link and can be changed while
the lab runs (``link.conditions.loss = 0.2``).

Every frame put on the link is a ``tx`` event, every delivery an ``rx`` event, every
loss a ``drop`` event with its reason.

A segment hands a multicast to every other station, and each station's network card
filters it by its groups (RFC 2464 §7): on a segment of 100 hosts most of them drop
most multicasts (an RS to all-routers, an NS to another host's solicited-node group).
When the trace keeps no ``rx`` event, such a frame is not handed to the node at all;
it is counted as delivered all the same (``stats["delivered"]``, ``trace.counts``), as
it was: the node would have thrown it away unread. For a group other than a
solicited-node one (an RS to all-routers, above all) the link keeps which stations'
cards pass it, so that such a frame costs what its few hearers cost, not what the
segment's hundred hosts would.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .frames import BROADCAST_MAC, ETH_HEADER_LEN, is_multicast_mac
from .interface import LISTENING
from .sim import US_PER_S, seconds_to_us

if TYPE_CHECKING:
    from .lab import Lab
    from .node import Interface


@dataclass
class LinkConditions:
    """What the link does to frames. Times in seconds, rates as probabilities."""

    delay: float = 0.001          # one-way propagation delay
    jitter: float = 0.0           # extra delay drawn uniformly from [0, jitter]
    loss: float = 0.0             # probability that a frame is lost
    duplicate: float = 0.0        # probability that a frame is delivered twice
    reorder: float = 0.0          # probability that a frame is held back ...
    reorder_delay: float = 0.005  # ... by this much, so later frames overtake it
    bandwidth: float | None = None  # bits per second; None: no serialisation delay
    queue_limit: int = 1000       # frames a sender may have queued or in flight

    def __post_init__(self) -> None:
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability, got {value}")
        for name in ("delay", "jitter", "reorder_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.queue_limit < 1:
            raise ValueError("queue_limit must be at least 1")


class Link:
    """A point-to-point link or a shared segment between interfaces."""

    def __init__(self, lab: Lab, name: str, kind: str = "segment",
                 conditions: LinkConditions | None = None) -> None:
        if kind not in ("p2p", "segment"):
            raise ValueError("kind is 'p2p' or 'segment'")
        self.lab = lab
        self.name = name
        self.kind = kind
        self.conditions = conditions or LinkConditions()
        self.interfaces: list[Interface] = []
        # the receivers of a frame, made once per attachment change rather than per frame:
        # every station as a tuple (a multicast's receivers, the sender passed over when
        # delivering) and the stations by MAC (a unicast's; a station attached is added
        # to it, a station gone makes it anew)
        self._stations: tuple[Interface, ...] | None = None
        self._by_mac: dict[str, tuple[Interface, ...]] | None = None
        # per multicast group (not a solicited-node one), the positions in interfaces of
        # the stations whose cards pass it, kept while the stamp (detaches, LISTENING)
        # holds and extended as stations are attached; see _hearers
        self._hearing: dict[int, list] = {}
        self._detaches = 0          # how many stations left: a frame's receivers (the
        # stations when it was sent) are the first ones of ``interfaces`` while it holds
        self._in_flight: dict[int, int] = {}   # id(interface) -> frames queued or flying
        self._busy_until: dict[int, int] = {}  # id(interface) -> end of transmission (us)
        self.stats = {"sent": 0, "delivered": 0, "lost": 0, "duplicated": 0,
                      "reordered": 0, "queue_drops": 0}

    def __repr__(self) -> str:
        names = ", ".join(i.fullname for i in self.interfaces)
        return f"<Link {self.name} ({self.kind}) [{names}]>"

    # -- attachment ------------------------------------------------------------------

    def attach(self, interface: Interface) -> None:
        if interface in self.interfaces:
            return
        if self.kind == "p2p" and len(self.interfaces) >= 2:
            raise ValueError(f"point-to-point link {self.name} already has two ends")
        self.interfaces.append(interface)
        self._stations = None
        by_mac = self._by_mac      # a station more at the end: what a rebuild would give
        if by_mac is not None:
            by_mac[interface.mac] = by_mac.get(interface.mac, ()) + (interface,)

    def detach(self, interface: Interface) -> None:
        if interface in self.interfaces:
            self.interfaces.remove(interface)
            self._stations = self._by_mac = None
            self._detaches += 1

    # -- transmission ------------------------------------------------------------------

    def transmit(self, sender: Interface, frame: bytes, dst_mac: str) -> None:
        """Put ``frame`` on the link from ``sender``; schedule its deliveries."""
        trace, sim, cond = self.lab.trace, self.lab.sim, self.conditions
        node = sender.node.name
        key = id(sender)
        if self._in_flight.get(key, 0) >= cond.queue_limit:
            self.stats["queue_drops"] += 1
            trace.emit(node, "link", "drop", link=self.name, packet=frame,
                       reason="queue full")
            return
        start = max(sim.now_us, self._busy_until.get(key, 0))
        if cond.bandwidth:
            start += seconds_to_us(len(frame) * 8 / cond.bandwidth)
            self._busy_until[key] = start
        rng = sim.random
        lost = cond.loss > 0 and rng.random() < cond.loss
        copies = 2 if cond.duplicate > 0 and rng.random() < cond.duplicate else 1
        held = cond.reorder > 0 and rng.random() < cond.reorder
        jitter = rng.uniform(0, cond.jitter) if cond.jitter > 0 else 0.0
        arrival = start + round((cond.delay + jitter + (cond.reorder_delay if held else 0.0))
                                * US_PER_S)     # seconds_to_us, without its call
        self.stats["sent"] += 1
        if trace.keeps("tx"):
            comments = []
            if lost:
                comments.append("lost on this link")
            elif copies == 2:
                comments.append("duplicated by this link")
            if held and not lost:
                comments.append("held back by this link (reordering)")
            trace.emit(node, "link", "tx", link=self.name, packet=frame, comments=comments)
        else:
            counts = trace.counts            # trace.count("tx"), without its call
            counts["tx"] = counts.get("tx", 0) + 1
        if lost:
            self.stats["lost"] += 1
            trace.emit(node, "link", "drop", None, link=self.name, packet=frame,
                       reason="lost on link")
            return
        if copies == 2:
            self.stats["duplicated"] += 1
        if held:
            self.stats["reordered"] += 1
        receivers = self._receivers(sender, dst_mac)
        if not receivers:
            if not is_multicast_mac(dst_mac):  # a multicast nobody hears is no loss
                trace.emit(node, "link", "drop", None, link=self.name,
                           packet=frame, reason=f"no station with MAC {dst_mac} on "
                           f"{self.name}")
            return
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        # every station (a multicast's receivers): the first ones of ``interfaces`` for
        # as long as none leaves, which _arrive_indexed needs
        detaches = self._detaches if receivers is self._stations else None
        sim.call_at(arrival, self._arrive, sender, receivers, frame, copies, detaches,
                    label=(self.name, "delivery"))

    def _receivers(self, sender: Interface, dst_mac: str) -> tuple[Interface, ...]:
        """The stations a frame reaches, the sender included when it is a multicast:
        :meth:`_arrive` passes over the sender (a station never hears itself)."""
        if dst_mac == BROADCAST_MAC or is_multicast_mac(dst_mac):
            stations = self._stations
            if stations is None:
                stations = self._stations = tuple(self.interfaces)
            return stations if len(stations) > 1 or (stations and stations[0] is not
                                                     sender) else ()
        by_mac = self._by_mac
        if by_mac is None:
            by_mac = self._by_mac = {}
            for station in self.interfaces:
                by_mac[station.mac] = by_mac.get(station.mac, ()) + (station,)
        found = by_mac.get(dst_mac, ())
        if sender in found:
            found = tuple(i for i in found if i is not sender)
        return found

    def _arrive(self, sender: Interface, receivers: tuple[Interface, ...], frame: bytes,
                copies: int, detaches: int | None) -> None:
        key = id(sender)
        self._in_flight[key] -= 1
        group = self._filterable_group(frame)
        if group is not None and group >> 24 != 0xFF and detaches == self._detaches:
            self._arrive_indexed(sender, receivers, frame, copies, group)
            return
        filtered = 0      # frames filtered by the card, not yet counted
        for _ in range(copies):
            for receiver in receivers:
                if receiver is sender:
                    continue
                if group is not None and receiver.link is self \
                        and not receiver.listens_to_mac(group):
                    filtered += 1
                    continue
                filtered = self._hand_over(sender, receiver, frame, filtered)
        if filtered:
            self._count_filtered(filtered)

    def _hand_over(self, sender: Interface, receiver: Interface, frame: bytes,
                   filtered: int) -> int:
        """Deliver ``frame`` to ``receiver``, the ``filtered`` frames before it counted
        first (in the order they were); 0, the frames now left to count."""
        if filtered:
            self._count_filtered(filtered)
        self._deliver(sender, receiver, frame)
        return 0

    def _arrive_indexed(self, sender: Interface, receivers: tuple[Interface, ...],
                        frame: bytes, copies: int, group: int) -> None:
        """What :meth:`_arrive`'s loop does for a frame to ``group`` (an all-routers RS,
        the frame a segment's hosts filter most) whose receivers are all still on the
        link, going from one station that hears it to the next (:meth:`_hearers`)
        instead of asking every card: the same deliveries, and the same counts of
        filtered frames before each of them. Should a delivery change who hears what (a
        station leaves, a group is joined), the rest is asked card by card, as before."""
        stamp = (self._detaches, LISTENING[0])
        hearers: list[int] | None = self._hearers(group, stamp)
        end = len(receivers)
        mine = receivers.index(sender) if sender in receivers else -1   # the sender's
        filtered = 0
        for _ in range(copies):
            position = 0
            while position < end:
                if hearers is not None and stamp == (self._detaches, LISTENING[0]):
                    index = bisect_left(hearers, position)
                    after = hearers[index] if index < len(hearers) else end
                    if after > end:
                        after = end
                    # the stations passed over filtered the frame; the sender, among
                    # them or not, neither hears it nor counts
                    filtered += after - position - (position <= mine < after)
                    position = after
                    if position == end:
                        break
                else:
                    hearers = None   # the stations changed: card by card from here on
                receiver = receivers[position]
                position += 1
                if receiver is sender:
                    continue
                if hearers is None and receiver.link is self \
                        and not receiver.listens_to_mac(group):
                    filtered += 1
                    continue
                filtered = self._hand_over(sender, receiver, frame, filtered)
        if filtered:
            self._count_filtered(filtered)

    def _hearers(self, group: int, stamp: tuple[int, int]) -> list[int]:
        """The positions in :attr:`interfaces`, in order, of the stations that
        :meth:`_arrive` hands a frame to ``group``: those whose cards pass it
        (:meth:`Interface.listens_to_mac`) -- or whose interface is not on this link
        (:meth:`_deliver` tells their drop). Kept per group while ``stamp`` holds; only
        the stations attached since are asked."""
        kept = self._hearing.get(group)
        if kept is None or kept[0] != stamp:
            kept = self._hearing[group] = [stamp, [], 0]
        stations, positions = self.interfaces, kept[1]
        for position in range(kept[2], len(stations)):
            station = stations[position]    # (one not on the link is told its drop)
            if station.link is not self or station.listens_to_mac(group):
                positions.append(position)
        kept[2] = len(stations)
        return positions

    def _filterable_group(self, frame: bytes) -> int | None:
        """The low 32 bits of an IPv6 multicast frame's destination (33:33:xx:xx:xx:xx,
        RFC 2464 §7) that the cards may filter without the node seeing it: only when the
        trace keeps no ``rx`` event (so nothing of the delivery is recorded but its
        count) and the node's own reception would filter it too (a whole Ethernet
        header; :meth:`Node._receive_frame`). None: hand it to every receiver."""
        if frame[:2] != b"\x33\x33" or len(frame) < ETH_HEADER_LEN \
                or self.lab.trace.keeps("rx"):
            return None
        group = int.from_bytes(frame[2:6], "big")
        return None if group == 1 else group     # ff02::1: every card passes it

    def _count_filtered(self, frames: int) -> None:
        """Count ``frames`` deliveries that the receiving cards filtered, as
        :meth:`_deliver` counts each: a delivery and an ``rx`` event (not kept)."""
        self.stats["delivered"] += frames
        self.lab.trace.count("rx", frames)

    def _deliver(self, sender: Interface, receiver: Interface, frame: bytes) -> None:
        trace = self.lab.trace
        if receiver.link is not self:
            trace.emit(receiver.node.name, "link", "drop", link=self.name, packet=frame,
                       peer=sender.node.name, reason="receiver left the link")
            return
        self.stats["delivered"] += 1
        if trace.keeps("rx"):
            trace.emit(receiver.node.name, "link", "rx", link=self.name, packet=frame,
                       peer=sender.node.name)
        else:
            counts = trace.counts            # trace.count("rx"), without its call
            counts["rx"] = counts.get("rx", 0) + 1
        receiver.node.receive_frame(receiver, frame)
