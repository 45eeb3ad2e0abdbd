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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .frames import BROADCAST_MAC, is_multicast_mac
from .sim import seconds_to_us

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

    def detach(self, interface: Interface) -> None:
        if interface in self.interfaces:
            self.interfaces.remove(interface)

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
        arrival = start + seconds_to_us(cond.delay + jitter
                                        + (cond.reorder_delay if held else 0.0))
        comments = []
        if lost:
            comments.append("lost on this link")
        elif copies == 2:
            comments.append("duplicated by this link")
        if held and not lost:
            comments.append("held back by this link (reordering)")
        self.stats["sent"] += 1
        trace.emit(node, "link", "tx", link=self.name, packet=frame, comments=comments)
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
        sim.call_at(arrival, self._arrive, sender, receivers, frame, copies,
                    label=f"{self.name} delivery")

    def _receivers(self, sender: Interface, dst_mac: str) -> list[Interface]:
        if dst_mac == BROADCAST_MAC or is_multicast_mac(dst_mac):
            return [i for i in self.interfaces if i is not sender]
        return [i for i in self.interfaces if i.mac == dst_mac and i is not sender]

    def _arrive(self, sender: Interface, receivers: list[Interface], frame: bytes,
                copies: int) -> None:
        key = id(sender)
        self._in_flight[key] -= 1
        for _ in range(copies):
            for receiver in receivers:
                self._deliver(sender, receiver, frame)

    def _deliver(self, sender: Interface, receiver: Interface, frame: bytes) -> None:
        trace = self.lab.trace
        if receiver.link is not self:
            trace.emit(receiver.node.name, "link", "drop", link=self.name, packet=frame,
                       peer=sender.node.name, reason="receiver left the link")
            return
        self.stats["delivered"] += 1
        trace.emit(receiver.node.name, "link", "rx", link=self.name, packet=frame,
                   peer=sender.node.name)
        receiver.node.receive_frame(receiver, frame)
