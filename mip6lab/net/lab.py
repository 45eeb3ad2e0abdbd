"""The Lab: build a topology, run it one event at a time, read what happened.

A :class:`Lab` owns the simulator (clock, event heap, seeded random source), the trace,
and the nodes and links. It is the object a notebook holds::

    lab = Lab(seed=7, build=my_topology)
    lab.step()                      # one event
    lab.run(until=2.0)              # everything up to t = 2 s
    lab.run_until(lambda lab: ...)  # until a condition holds
    lab.reset()                     # rebuild from scratch: the same seed replays exactly

``Lab(..., trace_level="events")`` (or ``"counts"``) keeps less of the trace, for runs at
scale; the default, ``"full"``, keeps every frame (see :mod:`mip6lab.trace`).

A lab whose links include real devices (:meth:`Lab.add_packet_link`, root only) holds
sockets: :meth:`Lab.close` (or ``with Lab(...) as lab:``) releases them, and such a lab
is run against the wall clock by :class:`~mip6lab.net.realtime.RealTimeRunner`.

The topology is a networkx graph (:attr:`Lab.graph`): one vertex per node and one per
link, an edge per attached interface, so shared segments draw as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx

from ..trace import Event, Events, Trace
from .frames import mac_for_index
from .interface import Interface
from .link import Link, LinkConditions
from .nat import NatRouter
from .node import Node
from .packet_link import NamespaceRef, PacketLink
from .router import Router
from .sim import ScheduledCall, Simulator, seconds_to_us
from .slaac import Host


@dataclass(frozen=True)
class Step:
    """What one :meth:`Lab.step` did: the event it ran and the trace events it caused."""

    time: float
    label: str
    events: Events


class Lab:
    """A simulated network, stepped on a simulated clock."""

    backend = "inproc"

    def __init__(self, seed: int = 0, build: Callable[[Lab], Any] | None = None, *,
                 trace_level: str = "full") -> None:
        self._build = build
        self.seed = seed
        #: what the trace keeps ("full", "events", "counts": mip6lab.trace's LEVELS)
        self.trace_level = trace_level
        self.reset()

    def reset(self, seed: int | None = None) -> None:
        """Throw everything away and build the topology again (with ``seed`` if given)."""
        if seed is not None:
            self.seed = seed
        if getattr(self, "links", None):
            self.close()  # the sockets of the old topology's packet links
        self.sim = Simulator(self.seed)
        self.trace = Trace(lambda: self.sim.now_us, self.trace_level)
        self.nodes: dict[str, Node] = {}
        self.links: dict[str, Link] = {}
        self.errors: list[tuple[str, Exception, str]] = []
        self._macs = 0
        if self._build is not None:
            self._build(self)

    # -- building --------------------------------------------------------------------------

    def allocate_mac(self) -> str:
        self._macs += 1
        return mac_for_index(self._macs)

    def _add(self, node: Node) -> Node:
        if node.name in self.nodes or node.name in self.links:
            raise ValueError(f"name {node.name!r} is already used in this lab")
        self.nodes[node.name] = node
        return node

    def add_host(self, name: str, **slaac_options: Any) -> Host:
        return self._add(Host(self, name, **slaac_options))

    def add_router(self, name: str) -> Router:
        return self._add(Router(self, name))

    def add_nat(self, name: str, outside: str = "eth1", **nat_options: Any) -> NatRouter:
        return self._add(NatRouter(self, name, outside, **nat_options))

    def add_node(self, node: Node) -> Node:
        """Add a node of a class of one's own (a mobile node, a home agent ...)."""
        return self._add(node)

    def add_link(self, name: str, kind: str = "segment", **conditions: Any) -> Link:
        if name in self.links or name in self.nodes:
            raise ValueError(f"name {name!r} is already used in this lab")
        link = Link(self, name, kind, LinkConditions(**conditions))
        self.links[name] = link
        return link

    def add_packet_link(self, name: str, netns: NamespaceRef, device: str,
                        peer: str = "kernel", allow_own_namespace: bool = False
                        ) -> PacketLink:
        """A link that is the real ``device`` in network namespace ``netns`` (root
        only; see :mod:`mip6lab.net.packet_link`). Connect one node interface to it."""
        if name in self.links or name in self.nodes:
            raise ValueError(f"name {name!r} is already used in this lab")
        link = PacketLink(self, name, netns, device, peer=peer,
                          allow_own_namespace=allow_own_namespace)
        self.links[name] = link
        return link

    def connect(self, node: str | Node, link: str | Link, ifname: str | None = None,
                addresses: tuple[str, ...] | list[str] = ()) -> Interface:
        """Give ``node`` a new interface on ``link`` with static ``addresses``."""
        node = self.nodes[node] if isinstance(node, str) else node
        link = self.links[link] if isinstance(link, str) else link
        iface = node.add_interface(ifname)
        for address in addresses:
            iface.add_address(address)
        node.attach(iface, link)
        return iface

    def move(self, node: str | Node, link: str | Link, ifname: str | None = None) -> None:
        """Move an interface of ``node`` to another link (a handover, for a host)."""
        node = self.nodes[node] if isinstance(node, str) else node
        link = self.links[link] if isinstance(link, str) else link
        node.attach(node.interface(ifname), link)

    @property
    def graph(self) -> nx.Graph:
        """The topology: node and link vertices (attribute ``kind``), interface edges."""
        graph = nx.Graph()
        for name, link in self.links.items():
            graph.add_node(name, kind="link", link_kind=link.kind)
        for name, node in self.nodes.items():
            graph.add_node(name, kind=node.kind)
            for iface in node.interfaces.values():
                if iface.link is not None:
                    graph.add_edge(name, iface.link.name, interface=iface.name,
                                   mac=iface.mac,
                                   addresses=[str(a) for a in iface.ipv6("all")
                                              + iface.ipv4()])
        return graph

    # -- scheduling ------------------------------------------------------------------------

    def at(self, time: float, action: Callable[..., Any], *args: Any,
           label: str = "") -> ScheduledCall:
        """Run ``action(*args)`` at simulated time ``time`` (seconds)."""
        return self.sim.call_at(seconds_to_us(time), action, *args,
                                label=label or getattr(action, "__name__", "action"))

    def after(self, delay: float, action: Callable[..., Any], *args: Any,
              label: str = "") -> ScheduledCall:
        return self.sim.call_later(delay, action, *args,
                                   label=label or getattr(action, "__name__", "action"))

    # -- running ---------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.sim.now

    def step(self) -> Step | None:
        """Run exactly one scheduled event; None when nothing is left to run."""
        first = len(self.trace.events)
        call = self.sim.step()
        if call is None:
            return None
        return Step(call.time_us / 1e6, call.label, Events(self.trace.events[first:]))

    def run(self, until: float | None = None, max_steps: int | None = None) -> int:
        """Run every event due at or before ``until`` seconds (all, if None); count."""
        limit = None if until is None else seconds_to_us(until)
        steps = self.sim.run(limit, max_steps)
        if limit is not None:
            self.sim.advance_to(limit)
        return steps

    def run_until(self, predicate: Callable[[Lab], bool], timeout: float | None = None,
                  max_steps: int = 10_000_000) -> bool:
        """Step until ``predicate(lab)`` holds (True), or time/events run out (False)."""
        limit = None if timeout is None else self.sim.now_us + seconds_to_us(timeout)
        for _ in range(max_steps):
            if predicate(self):
                return True
            due = self.sim.peek_time_us()
            if due is None or (limit is not None and due > limit):
                if limit is not None:
                    self.sim.advance_to(limit)
                return predicate(self)
            self.sim.step()
        return predicate(self)

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Release what the lab holds outside this process: the sockets of its packet
        links. Idempotent; a lab of simulated links holds nothing."""
        for link in self.links.values():
            close = getattr(link, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    @property
    def events(self) -> Events:
        return self.trace.events

    def last(self, **criteria: Any) -> Event | None:
        found = self.trace.filter(**criteria)
        return found[-1] if found else None
