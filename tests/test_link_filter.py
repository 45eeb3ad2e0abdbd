"""A segment's multicast filter at the trace levels that keep no ``rx`` event.

At ``events`` and ``counts`` a frame that the receiving card would filter (a multicast
for a group its node did not join, RFC 2464 §7) is not handed to the node; it is counted
as delivered all the same. These tests run the same lab at the three levels and check
that nothing but the frames handed to the nodes differs: counts, link statistics, the
events kept, the hosts' state.
"""

from __future__ import annotations

import pytest

from mip6lab.net.lab import Lab
from mip6lab.net.node import Node, packed_address
from mip6lab.net.sim import Simulator
from mip6lab.trace import Trace

HOSTS = 6


def _segment_lab(level: str, **conditions) -> Lab:
    """A router advertising 2001:db8:5::/64 on a segment of hosts that configure
    themselves and ping each other (RS to all-routers, gratuitous NAs, NS to
    solicited-node groups: multicasts most hosts filter); one host leaves mid-run."""

    def build(lab: Lab) -> None:
        lab.add_link("lan", **conditions)
        router = lab.add_router("r")
        lab.connect(router, "lan", addresses=["2001:db8:5::1/64"])
        router.advertise("eth0", ["2001:db8:5::/64"], interval=(3.0, 4.0))
        for i in range(HOSTS):
            lab.connect(lab.add_host(f"h{i}"), "lan")

    lab = Lab(seed=5, build=build, trace_level=level)
    hosts = [lab.nodes[f"h{i}"] for i in range(HOSTS)]

    def ping_around() -> None:
        for i, host in enumerate(hosts):
            peer = hosts[(i + 1) % HOSTS].interface()
            if peer.link is not None and len(peer.ipv6()) and host.interface().link:
                host.ping(peer.ipv6()[0], seq=i)

    lab.at(6.0, ping_around)
    lab.at(6.0005, lab.nodes["h3"].detach, lab.nodes["h3"].interface())   # frames in flight
    lab.at(7.0, ping_around)
    lab.run(until=12.0)
    return lab


def _handed(monkeypatch) -> list[int]:
    """Counts every frame handed to a node (Node.receive_frame), in a one-item list."""
    handed = [0]
    original = Node.receive_frame

    def receive_frame(self, iface, frame):
        handed[0] += 1
        return original(self, iface, frame)

    monkeypatch.setattr(Node, "receive_frame", receive_frame)
    return handed


def _state(lab: Lab):
    return ({name: [str(a) for a in node.addresses()] for name, node in lab.nodes.items()},
            {name: dict(link.stats) for name, link in lab.links.items()},
            lab.sim.now_us, lab.sim.executed, lab.errors)


def _modules_events(events):
    return [(e.time_us, e.node, e.module, e.kind, e.summary, e.reason) for e in events
            if e.kind not in ("tx", "rx")]


@pytest.mark.parametrize("conditions", [{}, {"duplicate": 0.3, "reorder": 0.2}])
def test_filtered_frames_are_counted_as_delivered_at_every_level(monkeypatch, conditions):
    runs = {}
    for level in ("full", "events", "counts"):
        with monkeypatch.context() as patch:
            handed = _handed(patch)
            lab = _segment_lab(level, **conditions)
        runs[level] = lab, handed[0]
    full, handed_full = runs["full"]
    stats = full.links["lan"].stats
    # the lab is one where filtering matters, and every delivery is an rx event
    assert handed_full == stats["delivered"] == full.trace.counts["rx"]
    assert len(full.trace.filter(kind="rx")) == stats["delivered"]
    assert any(e.reason == "receiver left the link" for e in full.trace.filter(kind="drop"))
    for level in ("events", "counts"):
        lab, handed = runs[level]
        assert lab.trace.counts == full.trace.counts
        assert list(lab.trace.counts) == list(full.trace.counts)   # the same order too
        assert _state(lab) == _state(full)
        assert handed < stats["delivered"] / 2      # most multicasts never reach the node
    # what the modules did is the same, event for event
    assert _modules_events(runs["events"][0].trace.events) == \
        _modules_events(full.trace.events)
    assert full.errors == []


def test_a_frame_for_a_group_the_card_passes_still_reaches_the_node(monkeypatch):
    handed = _handed(monkeypatch)
    lab = _segment_lab("counts")
    # every host takes the router's RAs (ff02::1) and its own echo requests' replies
    assert handed[0] >= HOSTS
    assert all(node.interface().ipv6() for name, node in lab.nodes.items()
               if name.startswith("h") and name != "h3")


def test_count_adds_to_the_counts_as_emitting_an_event_not_kept_does():
    trace = Trace(lambda: 0, level="events")
    trace.count("rx", 3)
    trace.emit("n", "link", "rx")
    trace.count("tx")
    assert trace.counts == {"rx": 4, "tx": 1} and len(trace) == 0


def test_a_label_given_in_parts_reads_as_their_text_joined():
    sim = Simulator()
    address = packed_address(bytes.fromhex("20010db8" + "00" * 11 + "01"))
    call = sim.call_at(5, print, label=("h1", address, "expires"))
    assert call.label == "h1 2001:db8::1 expires"
    assert sim.scheduled("expires") == [(5, "h1 2001:db8::1 expires")]
    assert "h1 2001:db8::1 expires" in repr(call)


def test_an_address_read_off_bytes_is_the_same_from_bytes_or_bytearray():
    packed = bytes.fromhex("fe80" + "00" * 12 + "0102")
    first = packed_address(packed)
    assert str(first) == "fe80::102"
    assert packed_address(bytearray(packed)) is first
    assert str(packed_address(bytes([192, 0, 2, 1]))) == "192.0.2.1"
