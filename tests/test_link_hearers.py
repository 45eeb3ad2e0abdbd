"""A segment's index of the stations that hear a multicast group (``Link._hearers``).

At the trace levels that keep no ``rx`` event a frame to a group other than a
solicited-node one (an RS to all-routers, a frame to a group a node joined) goes from
one station whose card passes it to the next, instead of asking every card. These
tests run labs where who hears what changes while frames fly -- a host turns into a
router, joins and leaves a group, leaves the link, a station is attached -- even in the
middle of one frame's deliveries, and check that every frame is handed to the same
nodes, with the same counts before each, as when every card is asked.
"""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6

from mip6lab.net.interface import LISTENING
from mip6lab.net.lab import Lab
from mip6lab.net.link import Link
from mip6lab.net.node import Node

HOSTS = 8
GROUP = ipaddress.IPv6Address("ff02::1:2")     # not a solicited-node group


def _card_by_card(self, sender, receivers, frame, copies, group):
    """The loop every frame took before the index: each card asked in turn."""
    filtered = 0
    for _ in range(copies):
        for receiver in receivers:
            if receiver is sender:
                continue
            if receiver.link is self and not receiver.listens_to_mac(group):
                filtered += 1
                continue
            if filtered:
                self._count_filtered(filtered)
                filtered = 0
            self._deliver(sender, receiver, frame)
    if filtered:
        self._count_filtered(filtered)


def _to(node: Node, group: str) -> None:
    """A UDP datagram from ``node`` to ``group`` (no socket listens: it is dropped)."""
    iface = node.interface()
    if iface.link is not None:
        node.send_on(iface, bytes(IPv6(src=str(iface.link_local), dst=group)
                                  / UDP(sport=5000, dport=5000) / b"hello"))


def _lab(level: str, handed: list, **conditions) -> Lab:
    """A router on a segment of hosts that come and go, turn into routers and back,
    join GROUP and leave it, between frames and while frames fly; frames go to
    all-routers (ff02::2) and to GROUP. ``handed`` gets, for every frame handed to a
    node, the node and the counts of deliveries at that moment."""

    def build(lab: Lab) -> None:
        lab.add_link("lan", **conditions)
        router = lab.add_router("r")
        lab.connect(router, "lan", addresses=["2001:db8:7::1/64"])
        router.advertise("eth0", ["2001:db8:7::/64"], interval=(3.0, 4.0))
        for i in range(HOSTS):
            lab.connect(lab.add_host(f"h{i}"), "lan")
        lab.add_host("late")

    lab = Lab(seed=7, build=build, trace_level=level)
    h = [lab.nodes[f"h{i}"] for i in range(HOSTS)]
    late, lan = lab.nodes["late"], lab.links["lan"]
    routers, group = "ff02::2", str(GROUP)

    def become_router(node: Node, on: bool) -> None:
        node.forwarding = on

    original = Node.receive_frame

    def receive_frame(self, iface, frame):
        handed.append((self.name, lan.stats["delivered"], lab.trace.counts.get("rx", 0)))
        # the router's delivery of a frame makes h6 a router: the cards after it in the
        # same frame's deliveries are asked anew
        if self.name == "r" and frame[:6] == b"\x33\x33\x00\x00\x00\x02" \
                and lab.sim.now_us > 9_000_000 and not h[6].forwarding:
            h[6].forwarding = True
        return original(self, iface, frame)

    Node.receive_frame = receive_frame
    try:
        lab.at(1.0, _to, h[0], routers)
        lab.at(1.5, _to, h[0], group)                    # nobody hears it
        lab.at(2.0, h[2].interface().joined.add, GROUP)
        lab.at(2.5, _to, h[0], group)                    # h2 does now
        lab.at(3.0, become_router, h[4], True)
        lab.at(3.5, _to, h[0], routers)                  # r and h4
        lab.at(4.0, _to, h[1], routers)
        lab.at(4.0005, h[3].detach, h[3].interface())    # in flight: "left the link"
        lab.at(4.5, h[5].interface().joined.add, GROUP)
        lab.at(5.0, _to, h[0], group)
        lab.at(5.0, become_router, h[4], False)
        lab.at(5.5, h[5].interface().joined.discard, GROUP)
        lab.at(6.0, _to, h[0], group)                    # h2 alone again
        lab.at(6.5, lab.connect, late, "lan")            # a station added, and its RS
        lab.at(7.0, lambda: late.interface().joined.add(GROUP))
        lab.at(7.5, _to, h[0], group)
        lab.at(7.5, _to, h[7], routers)
        lab.at(8.0, h[3].attach, h[3].interface(), lan)
        lab.at(8.5, _to, h[3], routers)
        lab.at(9.5, _to, h[0], routers)                  # h6 turns router mid-frame
        lab.at(10.0, _to, h[7], routers)
        lab.at(10.0005, h[2].interface().joined.discard, GROUP)
        lab.at(10.0005, _to, late, group)
        lab.run(until=14.0)
    finally:
        Node.receive_frame = original
    return lab


def _state(lab: Lab):
    return (dict(lab.trace.counts), list(lab.trace.counts),
            {name: dict(link.stats) for name, link in lab.links.items()},
            {name: [str(a) for a in node.addresses()] for name, node in lab.nodes.items()},
            lab.sim.now_us, lab.sim.executed, lab.errors)


@pytest.mark.parametrize("conditions", [{}, {"duplicate": 0.3, "reorder": 0.2}])
def test_the_index_hands_every_frame_as_asking_every_card_does(monkeypatch, conditions):
    indexed: list = []
    lab = _lab("counts", indexed, **conditions)
    with monkeypatch.context() as patch:
        patch.setattr(Link, "_arrive_indexed", _card_by_card)
        asked: list = []
        reference = _lab("counts", asked, **conditions)
    assert indexed == asked
    assert _state(lab) == _state(reference)
    assert lab.errors == []
    # the lab is one where it matters: h6 became a router in the middle of a frame's
    # deliveries, frames to both groups went by the index
    assert lab.nodes["h6"].forwarding
    assert set(lab.links["lan"]._hearing) == {2, int(GROUP) & 0xFFFFFFFF}


def test_the_counts_are_those_of_the_full_trace(monkeypatch):
    counted: list = []
    full_handed: list = []
    lab = _lab("counts", counted)
    full = _lab("full", full_handed)
    assert _state(lab)[:3] == _state(full)[:3]
    assert len(counted) < len(full_handed)        # frames were filtered at the card
    assert any(e.reason == "receiver left the link" for e in full.trace.filter(kind="drop"))


def test_a_station_attached_after_a_frame_was_sent_is_not_among_its_receivers():
    lab = Lab(seed=1, trace_level="counts")
    lab.add_link("lan")
    router, other = lab.add_router("r"), lab.add_router("r2")
    lab.connect(router, "lan")
    host = lab.add_host("h")
    lab.connect(host, "lan")
    lab.run(until=0.0)
    link = lab.links["lan"]
    rs = bytes(IPv6(src=str(host.interface().link_local), dst="ff02::2")
               / UDP(sport=1, dport=1))
    host.send_on(host.interface(), rs)
    lab.connect(other, "lan")          # attached while the frame flies: not a receiver
    handed = []
    original = Node.receive_frame
    try:
        Node.receive_frame = lambda self, iface, frame: handed.append(self.name)
        lab.sim.run(limit_us=lab.sim.now_us + 1500)
    finally:
        Node.receive_frame = original
    assert handed == ["r"]
    assert link._hearers(2, (link._detaches, LISTENING[0])) == [0, 2]   # r, r2


def _stray_lab() -> Lab:
    """A segment with a router, a host, and an interface attached to the link but not
    plugged in by its node (its ``link`` is None); the host sends to all-routers."""
    lab = Lab(seed=1, trace_level="counts")
    lab.add_link("lan")
    router, host, stray = lab.add_router("r"), lab.add_host("h"), lab.add_host("s")
    lab.connect(router, "lan")
    lab.connect(host, "lan")
    lab.links["lan"].attach(stray.add_interface())
    lab.run(until=3.0)
    _to(host, "ff02::2")
    lab.run(until=3.1)
    return lab


def test_a_station_on_the_list_but_not_on_the_link_is_told_its_drop(monkeypatch):
    lab = _stray_lab()
    with monkeypatch.context() as patch:
        patch.setattr(Link, "_arrive_indexed", _card_by_card)
        reference = _stray_lab()
    assert _state(lab) == _state(reference)
    link = lab.links["lan"]
    assert link._hearers(2, (link._detaches, LISTENING[0])) == [0, 2]   # r, the stray
