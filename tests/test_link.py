"""Links: impairment statistics, reordering, queue limit, misaddressed frames, detaching.

The statistical tests send a few thousand numbered UDP datagrams over one
point-to-point link and compare the observed rates with the configured ones, within
4 standard deviations of the binomial distribution (a false alarm about once in 16 000
runs -- and the seed is fixed, so a given seed either always passes or always fails).
"""

from __future__ import annotations

from collections import Counter

import pytest

from mip6lab.net.link import LinkConditions
from mip6lab.net.sim import seconds_to_us

from conftest import B6, Sink, blast, small_lab, wire_lab, within_binomial, H2_6

N = 3000
LOSS, DUPLICATE, REORDER = 0.2, 0.1, 0.15


@pytest.fixture(scope="module")
def impaired():
    """One run of N datagrams over a link with loss, duplication and reordering."""
    lab = wire_lab(seed=21, loss=LOSS, duplicate=DUPLICATE, reorder=REORDER,
                   reorder_delay=0.005)
    sink = Sink(lab.nodes["b"])
    blast(lab, N, interval=0.001)
    lab.run()
    return lab, sink


def _comments(event) -> list[str]:
    return list(event.data.get("comments", ()))


def test_the_statistics_agree_with_each_other(impaired):
    lab, sink = impaired
    stats = lab.links["wire"].stats
    assert stats["sent"] == N
    # every surviving frame arrives once, a duplicated one twice
    assert stats["delivered"] == N - stats["lost"] + stats["duplicated"]
    assert len(sink.datagrams) == stats["delivered"]
    assert stats["queue_drops"] == 0
    assert lab.errors == []


def test_loss_rate_matches_the_configuration(impaired):
    lab, sink = impaired
    stats = lab.links["wire"].stats
    assert within_binomial(stats["lost"], N, LOSS), stats
    # the same count seen three other ways: drop events, comments, missing numbers
    drops = lab.trace.filter(kind="drop", link="wire")
    assert all(e.reason == "lost on link" and e.node == "a" for e in drops)
    assert len(drops) == stats["lost"]
    commented = [e for e in lab.events.frames() if "lost on this link" in _comments(e)]
    assert len(commented) == stats["lost"]
    assert N - len(set(sink.numbers())) == stats["lost"]


def test_duplication_rate_matches_the_configuration(impaired):
    lab, sink = impaired
    stats = lab.links["wire"].stats
    survivors = N - stats["lost"]
    # duplication is only visible on frames that were not lost
    assert within_binomial(stats["duplicated"], survivors, DUPLICATE), stats
    twice = [n for n, c in Counter(sink.numbers()).items() if c == 2]
    assert len(twice) == stats["duplicated"]
    assert max(Counter(sink.numbers()).values()) == 2
    commented = [e for e in lab.events.frames()
                 if "duplicated by this link" in _comments(e)]
    assert len(commented) == stats["duplicated"]
    rx = lab.trace.filter(kind="rx", link="wire", node="b")
    assert len(rx) == stats["delivered"]
    assert all(e.peer == "a" for e in rx)


def test_reordering_rate_matches_the_configuration(impaired):
    lab, _ = impaired
    stats = lab.links["wire"].stats
    survivors = N - stats["lost"]
    assert within_binomial(stats["reordered"], survivors, REORDER), stats
    held = [e for e in lab.events.frames()
            if "held back by this link (reordering)" in _comments(e)]
    assert len(held) == stats["reordered"]


def test_reordering_makes_later_frames_overtake(impaired):
    lab, sink = impaired
    arrived = list(dict.fromkeys(sink.numbers()))   # first arrival of each number
    assert arrived != sorted(arrived)
    # a held-back frame (5 ms) is overtaken by the ones sent in the next 5 ms
    overtaken = sum(1 for i in range(len(arrived) - 1) if arrived[i] > arrived[i + 1])
    assert overtaken >= 0.5 * lab.links["wire"].stats["reordered"]
    # and the rx events on the link show it too: payload numbers out of order
    rx_numbers = [int(e.scapy().load) for e in lab.trace.filter(kind="rx", link="wire")]
    assert rx_numbers == sink.numbers()


def test_a_perfect_link_keeps_every_frame_in_order():
    lab = wire_lab(seed=21)
    sink = Sink(lab.nodes["b"])
    blast(lab, 300)
    lab.run()
    assert sink.numbers() == list(range(300))
    stats = lab.links["wire"].stats
    assert stats == {"sent": 300, "delivered": 300, "lost": 0, "duplicated": 0,
                     "reordered": 0, "queue_drops": 0}
    assert lab.trace.filter(kind="drop") == []
    assert all(_comments(e) == [] for e in lab.events.frames())


def test_jitter_without_reordering_keeps_delays_in_range():
    lab = wire_lab(seed=3, delay=0.002, jitter=0.004)
    Sink(lab.nodes["b"])
    blast(lab, 200, interval=0.01)
    lab.run()
    sent = {int(e.scapy().load): e.time_us for e in lab.trace.filter(kind="tx")}
    delays = [e.time_us - sent[int(e.scapy().load)]
              for e in lab.trace.filter(kind="rx")]
    assert min(delays) >= 2_000 and max(delays) <= 6_000
    assert len(set(delays)) > 50      # really drawn, not constant


def test_total_loss_and_changing_conditions_while_running():
    lab = wire_lab(seed=4)
    sink = Sink(lab.nodes["b"])
    blast(lab, 100, interval=0.01)
    lab.run(until=0.495)                  # numbers 0..49 sent
    lab.links["wire"].conditions.loss = 1.0
    lab.run()
    assert sorted(sink.numbers()) == list(range(50))
    assert lab.links["wire"].stats["lost"] == 50


def test_losses_are_reproducible_per_seed():
    def lost(seed):
        lab = wire_lab(seed=seed, loss=0.3)
        sink = Sink(lab.nodes["b"])
        blast(lab, 200)
        lab.run()
        return sorted(set(range(200)) - set(sink.numbers()))

    assert lost(8) == lost(8)
    assert lost(8) != lost(9)


# -- queue limit and bandwidth ---------------------------------------------------------------


def test_queue_limit_with_bandwidth_drops_with_queue_full():
    lab = wire_lab(seed=5, bandwidth=1_000_000, queue_limit=4, delay=0.001)
    sink = Sink(lab.nodes["b"])
    for seq in range(10):            # ten datagrams at the same instant
        lab.at(0.0, lab.nodes["a"].send_udp, B6, 9, b"%d" % seq, 40000)
    lab.run()
    drops = lab.trace.filter(kind="drop", link="wire")
    assert [e.reason for e in drops] == ["queue full"] * 6
    assert all(e.node == "a" and e.packet for e in drops)
    assert lab.links["wire"].stats["queue_drops"] == 6
    assert lab.links["wire"].stats["sent"] == 4
    assert sink.numbers() == [0, 1, 2, 3]


def test_bandwidth_serialises_frames_one_after_another():
    bandwidth = 1_000_000
    lab = wire_lab(seed=5, bandwidth=bandwidth, delay=0.001)
    Sink(lab.nodes["b"])
    for seq in range(5):
        lab.at(0.0, lab.nodes["a"].send_udp, B6, 9, b"%d" % seq, 40000)
    lab.run()
    rx = lab.trace.filter(kind="rx", link="wire")
    assert len(rx) == 5
    frame_us = seconds_to_us(len(rx[0].packet) * 8 / bandwidth)
    assert frame_us > 0
    arrivals = [e.time_us for e in rx]
    assert arrivals[0] == frame_us + 1_000
    assert [b - a for a, b in zip(arrivals, arrivals[1:])] == [frame_us] * 4


def test_queue_drains_so_later_frames_pass_again():
    lab = wire_lab(seed=5, bandwidth=1_000_000, queue_limit=2)
    sink = Sink(lab.nodes["b"])
    for seq in range(4):
        lab.at(0.0, lab.nodes["a"].send_udp, B6, 9, b"%d" % seq, 40000)
    lab.at(0.5, lab.nodes["a"].send_udp, B6, 9, b"99", 40000)
    lab.run()
    assert lab.links["wire"].stats["queue_drops"] == 2
    assert sink.numbers() == [0, 1, 99]


def test_without_bandwidth_the_queue_limit_counts_frames_in_flight():
    lab = wire_lab(seed=5, queue_limit=3, delay=0.01)
    sink = Sink(lab.nodes["b"])
    for seq in range(5):
        lab.at(seq * 0.001, lab.nodes["a"].send_udp, B6, 9, b"%d" % seq, 40000)
    lab.run()
    assert [e.reason for e in lab.trace.filter(kind="drop")] == ["queue full"] * 2
    assert sink.numbers() == [0, 1, 2]


# -- misaddressed frames and receivers that leave -------------------------------------------


def test_frame_to_a_mac_not_on_the_link_is_dropped():
    lab = wire_lab(seed=6)
    a, b = lab.nodes["a"], lab.nodes["b"]
    stranger = "02:00:5e:ff:ff:01"
    sink = Sink(b)
    frame_of_b = []
    lab.trace.subscribe(lambda e: frame_of_b.append(e) if e.kind == "tx" else None)
    a.send_udp(B6, 9, b"probe", 40000)            # learn a real frame from a to b
    lab.run()
    template = frame_of_b[-1].packet
    misaddressed = bytes.fromhex(stranger.replace(":", "")) + template[6:]
    a.interface().link.transmit(a.interface(), misaddressed, stranger)
    lab.run()
    drops = lab.trace.filter(kind="drop", link="wire")
    assert len(drops) == 1
    assert drops[0].node == "a"
    assert drops[0].reason == f"no station with MAC {stranger} on wire"
    assert drops[0].packet == misaddressed
    # nothing more reached b than the one correctly addressed datagram
    assert len(lab.trace.filter(kind="rx", node="b")) == 1
    assert [d.payload for d in sink.datagrams] == [b"probe"]
    assert b.interface().mac != stranger


def test_node_detached_while_frame_in_flight_gets_receiver_left_drop():
    lab = wire_lab(seed=7, delay=0.010)
    a, b = lab.nodes["a"], lab.nodes["b"]
    sink = Sink(b)
    lab.at(0.0, a.send_udp, B6, 9, b"1", 40000)
    lab.at(0.005, b.detach, b.interface())        # halfway through the 10 ms flight
    lab.run()
    assert sink.datagrams == []
    drops = lab.trace.filter(kind="drop")
    assert len(drops) == 1
    assert drops[0].reason == "receiver left the link"
    assert drops[0].node == "b" and drops[0].peer == "a" and drops[0].link == "wire"
    assert drops[0].time_us == 10_000
    assert lab.trace.filter(kind="rx") == []
    assert lab.links["wire"].stats["delivered"] == 0


def test_receiver_that_moved_to_another_link_gets_receiver_left_drop():
    lab = small_lab(seed=8, delay=0.010)
    h1, h2 = lab.nodes["h1"], lab.nodes["h2"]
    lab.links["lan1"].conditions.delay = 0.001
    # resolve everything first, then send while h2 moves to lan1
    assert _ping(lab, "h1", H2_6, 1)
    sink = Sink(h2)
    start = lab.now
    lab.at(start, h1.send_udp, H2_6, 9, b"x", 40000)
    # the datagram is on lan2 between start+1 ms and start+11 ms
    lab.at(start + 0.005, lab.move, "h2", "lan1")
    lab.run(until=start + 1.0)
    assert sink.datagrams == []
    left = lab.trace.filter(kind="drop", where=lambda e: e.reason == "receiver left the link")
    assert len(left) == 1 and left[0].link == "lan2" and left[0].node == "h2"


def _ping(lab, src, dst, seq):
    got = []
    lab.nodes[src].echo_listeners.append(got.append)
    lab.nodes[src].ping(dst, seq)
    return lab.run_until(lambda _: bool(got), timeout=5.0)


# -- segments and conditions ------------------------------------------------------------------


def test_segment_broadcast_reaches_every_other_station_and_unicast_one():
    lab = small_lab(seed=9)
    h1 = lab.nodes["h1"]
    extra = lab.add_router("x")
    lab.connect(extra, "lan1", addresses=["2001:db8:1::99/64"])
    iface = h1.interface()
    h1.transmit(iface, "ff:ff:ff:ff:ff:ff", 0x0806, bytes(28))   # junk ARP, broadcast
    lab.run()
    rx = lab.trace.filter(kind="rx", link="lan1")
    assert sorted(e.node for e in rx) == ["r", "x"]
    before = len(lab.trace.filter(kind="rx"))
    h1.transmit(iface, extra.interface().mac, 0x0806, bytes(28))  # unicast to x only
    lab.run()
    rx = lab.trace.filter(kind="rx")[before:]
    assert [e.node for e in rx] == ["x"]


def test_point_to_point_link_takes_two_ends_only():
    lab = wire_lab()
    from mip6lab.net.node import Node

    third = lab.add_node(Node(lab, "c"))
    with pytest.raises(ValueError, match="two ends"):
        lab.connect(third, "wire")


@pytest.mark.parametrize("bad", [{"loss": 1.5}, {"duplicate": -0.1}, {"reorder": 2},
                                 {"delay": -1}, {"jitter": -0.1}, {"queue_limit": 0}])
def test_conditions_reject_impossible_values(bad):
    with pytest.raises(ValueError):
        LinkConditions(**bad)


def test_link_kind_is_checked():
    lab = wire_lab()
    with pytest.raises(ValueError):
        lab.add_link("weird", "bus")
