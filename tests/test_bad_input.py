"""Bad input is data (DESIGN.md, rule 6): every malformed or undeliverable packet becomes
a ``drop`` event with a precise reason (and the ICMP answer the RFCs ask for), never an
exception out of ``step()``, never an ``error`` event, and the node keeps working.

Topology (tests/_topologies.py)::

    x (injector) --+
    h  ------------+--[lan]-- r --[far]-- s
    2001:db8:1::10    ::1   2001:db8:2::1   2001:db8:2::20
    10.1.0.10         .1    10.2.0.1        10.2.0.20
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6TimeExceeded,
    IPerror6,
    IPv6,
    in6_chksum,
)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from scapy.utils import checksum

from _topologies import (
    H4,
    H6,
    R4_LAN,
    R6_FAR,
    R6_LAN,
    S4,
    S6,
    X4,
    X6,
    nat_lab,
    ping_ok,
    slaac_lab,
    stack_lab,
)
from mip6lab.net.neighbor import MAX_MULTICAST_SOLICIT, QUEUE_PER_NEIGHBOR, RETRANS_TIMER

# Another node's Neighbor Solicitation reaches every station of a segment (its group's
# MAC is multicast) and is dropped there as not ours: background noise for these tests.
NOT_FOR_US = "IPv6 packet for ff02::1:ff"


# -- helpers -------------------------------------------------------------------------------


def run_steps(lab, seconds: float) -> None:
    """Advance with :meth:`Lab.step` (the call that must never raise) for ``seconds``."""
    limit = lab.sim.now_us + round(seconds * 1e6)
    while (due := lab.sim.peek_time_us()) is not None and due <= limit:
        assert lab.step() is not None
    lab.sim.advance_to(limit)


def inject(lab, frame: bytes, to: str = "h", ifname: str | None = None,
           seconds: float = 0.5):
    """Put ``frame`` on the link from x, towards ``to``'s MAC; run; return new events."""
    x = lab.nodes["x"].interface()
    frame = bytes(frame)
    # the link delivers by the destination MAC it is given: the frame's own, if it has one
    dst_mac = (":".join(f"{b:02x}" for b in frame[:6]) if len(frame) >= 6
               else lab.nodes[to].interface(ifname).mac)
    mark = len(lab.trace)
    x.link.transmit(x, frame, dst_mac)
    run_steps(lab, seconds)
    return lab.trace.events[mark:]


def interesting_drops(events):
    return [e for e in events if e.kind == "drop" and not (e.reason or "").startswith(NOT_FOR_US)]


def assert_clean(lab) -> None:
    """No bug of ours showed, and every event still renders."""
    assert lab.errors == []
    assert lab.trace.filter(kind="error") == []
    for e in lab.trace.events:
        assert isinstance(e.summary, str)
        e.to_dict()
        repr(e)
    lab.trace.ladder()


def assert_works(lab, node: str = "h") -> None:
    """The node still answers and reaches the far side, over IPv6 and IPv4."""
    assert ping_ok(lab, node, S6, seq=901)
    assert ping_ok(lab, node, S4, seq=902)
    assert ping_ok(lab, "x", H6 if node != "h" else R6_LAN, seq=903)


@pytest.fixture
def lab():
    lab = stack_lab()
    # Let x and h learn each other and the router before the bad input starts.
    assert ping_ok(lab, "x", H6, seq=1) and ping_ok(lab, "x", H4, seq=2)
    assert ping_ok(lab, "h", S6, seq=3) and ping_ok(lab, "h", S4, seq=4)
    assert ping_ok(lab, "x", S6, seq=5) and ping_ok(lab, "x", S4, seq=6)
    return lab


def _eth(lab, to="h", ifname=None, ethertype=None):
    x = lab.nodes["x"].interface()
    dst = lab.nodes[to].interface(ifname).mac
    return Ether(src=x.mac, dst=dst) if ethertype is None else \
        Ether(src=x.mac, dst=dst, type=ethertype)


def _ns(target, **kw):
    return ICMPv6ND_NS(tgt=target, **kw)


# -- malformed frames: a silent drop with a precise reason ---------------------------------

Builder = Callable[..., bytes]

MALFORMED: list[tuple[str, Builder, str]] = [
    ("truncated frame",
     lambda lab, e: bytes(e)[:10],
     "frame shorter than an Ethernet header"),
    ("truncated IPv6 header",
     lambda lab, e: bytes(e / IPv6(src=X6, dst=H6) / ICMPv6EchoRequest())[:14 + 30],
     "IPv6 header truncated"),
    ("IPv6 payload length larger than the data",
     lambda lab, e: bytes(e / IPv6(src=X6, dst=H6, plen=200) / ICMPv6EchoRequest()),
     "IPv6 payload length 200 exceeds the 8 bytes received"),
    ("IPv6 ethertype, version 4",
     lambda lab, e: bytes(_eth(lab, ethertype=0x86DD)
                          / Raw(b"\x40" + bytes(IPv6(src=X6, dst=H6) / ICMPv6EchoRequest())[1:])),
     "IPv6 ethertype but IP version is not 6"),
    ("IPv6 multicast source",
     lambda lab, e: bytes(e / IPv6(src="ff02::1", dst=H6) / ICMPv6EchoRequest()),
     "IPv6 source address is multicast"),
    ("bad IPv4 header checksum",
     lambda lab, e: bytes(e / IP(src=X4, dst=H4, chksum=0x1234) / ICMP()),
     "bad IPv4 header checksum"),
    ("IPv4 total length larger than the data",
     lambda lab, e: bytes(e / IP(src=X4, dst=H4, len=200) / ICMP()),
     "IPv4 lengths inconsistent (ihl 20, total 200, received 28)"),
    ("IPv4 total length shorter than the header",
     lambda lab, e: bytes(e / IP(src=X4, dst=H4, len=12) / ICMP()),
     "IPv4 lengths inconsistent (ihl 20, total 12, received 28)"),
    ("IPv4 header length under 20",
     lambda lab, e: bytes(e / IP(src=X4, dst=H4, ihl=4) / ICMP()),
     "IPv4 lengths inconsistent (ihl 16, total 28, received 28)"),
    ("IPv4 truncated header",
     lambda lab, e: bytes(e / IP(src=X4, dst=H4) / ICMP())[:14 + 12],
     "IPv4 header truncated"),
    ("bad UDP checksum over IPv6",
     lambda lab, e: bytes(e / IPv6(src=X6, dst=H6) / UDP(sport=1, dport=9, chksum=0x1234)
                          / b"data"),
     "bad UDP checksum"),
    ("zero UDP checksum over IPv6",
     lambda lab, e: bytes(e / IPv6(src=X6, dst=H6) / UDP(sport=1, dport=9, chksum=0)
                          / b"data"),
     "UDP over IPv6 with a zero checksum"),
    ("bad UDP checksum over IPv4",
     lambda lab, e: bytes(e / IP(src=X4, dst=H4) / UDP(sport=1, dport=9, chksum=0x1234)
                          / b"data"),
     "bad UDP checksum"),
    ("truncated UDP header over IPv4",
     lambda lab, e: bytes(e / IP(src=X4, dst=H4, proto=17) / Raw(b"\x00\x01\x00")),
     "truncated UDP header"),
    ("bad ICMPv6 checksum",
     lambda lab, e: bytes(e / IPv6(src=X6, dst=H6) / ICMPv6EchoRequest(cksum=0x1234)),
     "bad ICMPv6 checksum"),
    ("bad ICMP checksum",
     lambda lab, e: bytes(e / IP(src=X4, dst=H4) / ICMP(chksum=0x1234)),
     "bad ICMP checksum"),
    ("truncated ICMP header",
     lambda lab, e: bytes(e / IP(src=X4, dst=H4, proto=1) / Raw(b"\x08\x00\xf7\xff")),
     "truncated ICMP header"),
    ("IPv4 fragment",
     lambda lab, e: bytes(e / IP(src=X4, dst=H4, flags="MF") / ICMP() / (b"x" * 16)),
     "IPv4 fragment: reassembly is not supported"),
    ("unknown ethertype",
     lambda lab, e: bytes(_eth(lab, ethertype=0x88B5) / b"hello, anyone?"),
     "unknown ethertype 0x88b5"),
    ("truncated ARP",
     lambda lab, e: bytes(_eth(lab, ethertype=0x0806) / bytes(ARP(pdst=H4))[:20]),
     "truncated ARP packet"),
    ("ARP that is not Ethernet/IPv4",
     lambda lab, e: bytes(_eth(lab, ethertype=0x0806) / Raw(b"\x00\x06"
                                                              + bytes(ARP(pdst=H4))[2:])),
     "ARP for hardware type 6, protocol 0x0800, lengths 6/4: not Ethernet/IPv4"),
    ("NS with hop limit 64",
     lambda lab, e: bytes(e / IPv6(src=X6, dst=H6, hlim=64) / _ns(H6)
                          / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:66")),
     "NS with hop limit 64, not 255"),
    ("NA with hop limit 64",
     lambda lab, e: bytes(e / IPv6(src=X6, dst=H6, hlim=64) / ICMPv6ND_NA(tgt=X6, S=1)
                          / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:66")),
     "NA with hop limit 64, not 255"),
    ("IPv6 next header without a handler",
     lambda lab, e: bytes(e / IPv6(src=X6, dst=H6, nh=50) / (b"\x00" * 24)),
     "no handler for next header 50"),
    ("IPv4 protocol without a handler",
     lambda lab, e: bytes(e / IP(src=X4, dst=H4, proto=50) / (b"\x00" * 24)),
     "no handler for IP protocol 50"),
    ("IPv6 for an address h does not own",
     lambda lab, e: bytes(e / IPv6(src=X6, dst="2001:db8:1::55") / ICMPv6EchoRequest()),
     "IPv6 packet for 2001:db8:1::55: not addressed to h"),
    ("unicast frame for another MAC",
     lambda lab, e: bytes(Ether(src="02:00:00:00:00:66", dst="02:00:00:00:00:77")
                          / IPv6(src=X6, dst=H6) / ICMPv6EchoRequest()),
     "frame for 02:00:00:00:00:77, not 02:00:5e:00:00:01"),
]


@pytest.mark.parametrize("build, reason", [(b, r) for _, b, r in MALFORMED],
                         ids=[name for name, _, _ in MALFORMED])
def test_malformed_frame_is_dropped_with_reason(lab, build, reason):
    h = lab.nodes["h"]
    neighbours = dict(h.neighbors.entries)
    frame = build(lab, _eth(lab))
    if reason.startswith("frame for"):  # sent to h's interface whatever the MAC says
        mark = len(lab.trace)
        h.receive_frame(h.interface(), frame)
        run_steps(lab, 0.5)
        events = lab.trace.events[mark:]
    else:
        events = inject(lab, frame)

    [drop] = interesting_drops(events)
    assert (drop.node, drop.kind, drop.reason) == ("h", "drop", reason)
    assert drop.module == "ip"
    # a silent drop: h answered nothing, learned nothing
    assert [e for e in events if e.kind == "tx" and e.node == "h"] == []
    assert h.neighbors.entries == neighbours
    assert_clean(lab)
    assert_works(lab)


def test_raw_bytes_straight_into_receive_frame(lab):
    h = lab.nodes["h"]
    for junk in (b"", b"\x00", b"\xff" * 13, b"\xff" * 14, b"\xff" * 60, bytes(range(256))):
        h.receive_frame(h.interface(), junk)
    reasons = [e.reason for e in lab.trace.filter(kind="drop", node="h")]
    assert reasons[:3] == ["frame shorter than an Ethernet header"] * 3
    assert reasons[3:] == ["unknown ethertype 0xffff"] * 2 + [
        f"frame for 00:01:02:03:04:05, not {h.interface().mac}"]
    assert_clean(lab)
    assert_works(lab)


# -- the protocol's answers: ICMP errors back to the sender --------------------------------


def _received(events, node, layer):
    return [Ether(e.packet) for e in events
            if e.kind == "rx" and e.node == node and layer in Ether(e.packet)]


def test_no_route_drops_and_answers_destination_unreachable(lab):
    nowhere = "2001:db8:99::1"
    events = inject(lab, _eth(lab, "r", "eth0") / IPv6(src=X6, dst=nowhere)
                    / ICMPv6EchoRequest(id=5, seq=6), to="r", ifname="eth0")
    [drop] = interesting_drops(events)
    assert (drop.node, drop.module, drop.reason) == ("r", "ip", f"no route to {nowhere}")
    [answer] = _received(events, "x", ICMPv6DestUnreach)
    assert answer[IPv6].src == R6_LAN and answer[IPv6].dst == X6
    assert answer[ICMPv6DestUnreach].code == 0     # no route to destination
    quoted = answer[IPerror6]
    assert (quoted.src, quoted.dst) == (X6, nowhere)
    assert in6_chksum(58, answer[IPv6], bytes(answer[ICMPv6DestUnreach])) == 0  # valid
    assert_clean(lab)
    assert_works(lab, "x")


def test_no_route_ipv4_answers_destination_unreachable(lab):
    nowhere = "10.99.0.1"
    events = inject(lab, _eth(lab, "r", "eth0") / IP(src=X4, dst=nowhere) / ICMP(id=5),
                    to="r", ifname="eth0")
    [drop] = interesting_drops(events)
    assert (drop.node, drop.reason) == ("r", f"no route to {nowhere}")
    [answer] = [p for p in _received(events, "x", ICMP) if p[ICMP].type == 3]
    assert (answer[IP].src, answer[ICMP].code) == (R4_LAN, 0)
    assert (answer[IPerror].src, answer[IPerror].dst) == (X4, nowhere)
    assert_clean(lab)


def test_hop_limit_1_through_router_answers_time_exceeded(lab):
    s_before = len(lab.trace.filter(kind="rx", node="s"))
    events = inject(lab, _eth(lab, "r", "eth0") / IPv6(src=X6, dst=S6, hlim=1)
                    / ICMPv6EchoRequest(id=7), to="r", ifname="eth0")
    [drop] = interesting_drops(events)
    assert (drop.node, drop.reason) == ("r", "hop limit exceeded")
    [answer] = _received(events, "x", ICMPv6TimeExceeded)
    assert answer[IPv6].src == R6_LAN and answer[ICMPv6TimeExceeded].code == 0
    assert answer[IPerror6].hlim == 1 and answer[IPerror6].dst == S6
    assert len(lab.trace.filter(kind="rx", node="s")) == s_before
    assert_clean(lab)
    assert_works(lab, "x")


def test_hop_limit_2_through_router_arrives_with_1(lab):
    events = inject(lab, _eth(lab, "r", "eth0") / IPv6(src=X6, dst=S6, hlim=2)
                    / ICMPv6EchoRequest(id=7), to="r", ifname="eth0")
    [arrived] = _received(events, "s", ICMPv6EchoRequest)
    assert arrived[IPv6].hlim == 1
    assert interesting_drops(events) == []


def test_ttl_1_through_router_answers_time_exceeded(lab):
    events = inject(lab, _eth(lab, "r", "eth0") / IP(src=X4, dst=S4, ttl=1) / ICMP(id=8),
                    to="r", ifname="eth0")
    [drop] = interesting_drops(events)
    assert (drop.node, drop.reason) == ("r", "hop limit exceeded")
    [answer] = [p for p in _received(events, "x", ICMP) if p[ICMP].type == 11]
    assert answer[IP].src == R4_LAN and answer[ICMP].code == 0
    assert answer[IPerror].ttl == 1
    assert_clean(lab)


def test_forwarded_ipv4_gets_a_valid_header_checksum(lab):
    events = inject(lab, _eth(lab, "r", "eth0") / IP(src=X4, dst=S4, ttl=9) / ICMP(id=8),
                    to="r", ifname="eth0")
    [arrived] = [p for p in _received(events, "s", ICMP) if p[ICMP].type == 8]
    assert arrived[IP].ttl == 8
    header = bytes(arrived[IP])[:20]
    assert checksum(header) == 0


@pytest.mark.parametrize("version", [6, 4])
def test_udp_to_closed_port_answers_port_unreachable(lab, version):
    ip = IPv6(src=X6, dst=H6) if version == 6 else IP(src=X4, dst=H4)
    events = inject(lab, _eth(lab) / ip / UDP(sport=4444, dport=9) / b"anyone?")
    [drop] = interesting_drops(events)
    assert (drop.node, drop.module, drop.reason) == ("h", "udp", "no socket on UDP port 9")
    if version == 6:
        [answer] = _received(events, "x", ICMPv6DestUnreach)
        assert answer[ICMPv6DestUnreach].code == 4 and answer[IPv6].src == H6
        assert answer[IPerror6].dst == H6
    else:
        [answer] = [p for p in _received(events, "x", ICMP) if p[ICMP].type == 3]
        assert answer[ICMP].code == 3 and answer[IP].src == H4
        assert answer[UDPerror].dport == 9
    assert_clean(lab)
    assert_works(lab)


def test_no_port_unreachable_for_multicast_or_broadcast(lab):
    events = inject(lab, Ether(src=lab.nodes["x"].interface().mac, dst="33:33:00:00:00:01")
                    / IPv6(src=X6, dst="ff02::1") / UDP(sport=1, dport=9) / b"all")
    events += inject(lab, Ether(src=lab.nodes["x"].interface().mac, dst="ff:ff:ff:ff:ff:ff")
                     / IP(src=X4, dst="255.255.255.255") / UDP(sport=1, dport=9) / b"all")
    udp_drops = [e for e in events if e.kind == "drop" and e.module == "udp"]
    assert {e.node for e in udp_drops} == {"h", "r"} and len(udp_drops) == 4
    assert [e for e in events if e.kind == "tx" and e.node in ("h", "r")] == []
    assert_clean(lab)


@pytest.mark.parametrize("error", [
    IPv6(src=X6, dst="2001:db8:99::1") / ICMPv6DestUnreach(code=1)
    / IPerror6(src="2001:db8:99::1", dst=X6) / UDPerror(),
    IPv6(src=X6, dst=S6, hlim=1) / ICMPv6TimeExceeded()
    / IPerror6(src=S6, dst=X6) / UDPerror(),
], ids=["unreachable-no-route", "time-exceeded-hop-limit"])
def test_icmpv6_errors_are_never_answered_with_errors(lab, error):
    """RFC 4443 §2.4 (e): an undeliverable ICMPv6 error is dropped, not answered."""
    events = inject(lab, _eth(lab, "r", "eth0") / error, to="r", ifname="eth0")
    [drop] = interesting_drops(events)
    assert drop.node == "r"
    assert [e for e in events if e.kind == "tx" and e.node == "r"] == []
    assert_clean(lab)


def test_address_resolution_failure_answers_address_unreachable(lab):
    ghost = "2001:db8:2::77"
    r = lab.nodes["r"]
    events = inject(lab, _eth(lab, "r", "eth0") / IPv6(src=X6, dst=ghost)
                    / ICMPv6EchoRequest(id=9), to="r", ifname="eth0",
                    seconds=MAX_MULTICAST_SOLICIT * RETRANS_TIMER + 1)
    solicitations = [e for e in events if e.kind == "tx" and e.node == "r"
                     and ICMPv6ND_NS in Ether(e.packet)
                     and Ether(e.packet)[ICMPv6ND_NS].tgt == ghost]
    assert len(solicitations) == MAX_MULTICAST_SOLICIT == 3
    assert all(Ether(e.packet)[ICMPv6ND_NS].tgt == ghost and e.link == "far"
               and Ether(e.packet)[IPv6].dst == "ff02::1:ff00:77" for e in solicitations)
    gaps = [b.time - a.time for a, b in zip(solicitations, solicitations[1:])]
    assert gaps == pytest.approx([RETRANS_TIMER] * 2)

    [failed] = [e for e in events if e.kind == "state" and e.module == "nd"]
    assert failed.summary == f"address resolution of {ghost} on eth1 failed"
    [drop] = interesting_drops(events)
    assert (drop.node, drop.module, drop.reason) == ("r", "nd",
                                                      f"address resolution of {ghost} failed")
    assert drop.time_us - solicitations[-1].time_us == round(RETRANS_TIMER * 1e6)
    [answer] = _received(events, "x", ICMPv6DestUnreach)
    assert answer[ICMPv6DestUnreach].code == 3   # address unreachable
    assert answer[IPerror6].dst == ghost
    assert r.neighbors.pending == {}
    assert_clean(lab)
    assert_works(lab, "x")


def test_arp_failure_answers_host_unreachable(lab):
    ghost = "10.2.0.77"
    events = inject(lab, _eth(lab, "r", "eth0") / IP(src=X4, dst=ghost) / ICMP(id=9),
                    to="r", ifname="eth0", seconds=4)
    requests = [e for e in events if e.kind == "tx" and e.node == "r"
                and ARP in Ether(e.packet) and Ether(e.packet)[ARP].pdst == ghost]
    assert len(requests) == 3 and all(e.link == "far" for e in requests)
    [drop] = interesting_drops(events)
    assert drop.reason == f"address resolution of {ghost} failed"
    [answer] = [p for p in _received(events, "x", ICMP) if p[ICMP].type == 3]
    assert answer[ICMP].code == 1
    assert_clean(lab)


def test_own_packet_failing_resolution_is_not_answered_to_itself(lab):
    """A node does not send itself an ICMP error about its own packet."""
    h = lab.nodes["h"]
    mark = len(lab.trace)
    h.ping("2001:db8:1::77", seq=1)
    run_steps(lab, 10)
    events = lab.trace.events[mark:]
    [drop] = interesting_drops(events)
    assert drop.reason == "address resolution of 2001:db8:1::77 failed"
    sent = [Ether(e.packet) for e in events if e.kind == "tx" and e.node == "h"]
    assert len(sent) == 3 and all(p[ICMPv6ND_NS].tgt == "2001:db8:1::77" for p in sent)
    assert_clean(lab)


def test_neighbour_queue_full(lab):
    ghost = "2001:db8:2::77"
    x = lab.nodes["x"]
    mark = len(lab.trace)
    for seq in range(5):
        x.ping(ghost, seq=seq)
    run_steps(lab, 5)
    events = lab.trace.events[mark:]
    reasons = [e.reason for e in interesting_drops(events)]
    assert reasons == (["resolution queue full: oldest packet replaced"]
                       * (5 - QUEUE_PER_NEIGHBOR)
                       + [f"address resolution of {ghost} failed"] * QUEUE_PER_NEIGHBOR)
    assert all(e.node == "r" and e.module == "nd" for e in interesting_drops(events))
    # RFC 4861 §7.2.2: the newest replace the oldest, so the last ones (seq 2-4) are
    # still queued when resolution fails and are answered; the replaced ones are not
    answers = _received(events, "x", ICMPv6DestUnreach)
    assert sorted(p[ICMPv6DestUnreach].payload[ICMPv6EchoRequest].seq for p in answers) \
        == list(range(5 - QUEUE_PER_NEIGHBOR, 5))
    assert_clean(lab)
    assert_works(lab, "x")


def test_link_queue_full():
    lab = stack_lab(queue_limit=1, bandwidth=1_000_000)
    x = lab.nodes["x"]
    assert ping_ok(lab, "x", S6, seq=1)   # neighbours resolved: one frame per ping
    got = []
    x.echo_listeners.append(lambda reply: got.append(reply.seq))
    mark = len(lab.trace)
    x.ping(S6, seq=2)
    x.ping(S6, seq=3)          # the first is still being sent: no room
    run_steps(lab, 1)
    events = lab.trace.events[mark:]
    [drop] = interesting_drops(events)
    assert (drop.node, drop.module, drop.link, drop.reason) == ("x", "link", "lan",
                                                                "queue full")
    assert ICMPv6EchoRequest in Ether(drop.packet)
    assert Ether(drop.packet)[ICMPv6EchoRequest].seq == 3
    assert got == [2]
    assert lab.links["lan"].stats["queue_drops"] == 1
    assert_clean(lab)
    assert ping_ok(lab, "x", S6, seq=4)


# -- property: nothing a peer can send makes the stack fail ------------------------------


def _fix_icmp6(ip: IPv6, body: bytes) -> bytes:
    body = body[:2] + b"\0\0" + body[4:]
    return body[:2] + in6_chksum(58, ip / Raw(body), body).to_bytes(2, "big") + body[4:]


def _fix_icmp4(body: bytes) -> bytes:
    body = body[:2] + b"\0\0" + body[4:]
    return body[:2] + checksum(body).to_bytes(2, "big") + body[4:]


LABS = {"stack": (stack_lab, ["h", "r", "x"]),
        "nat": (nat_lab, ["inside", "nat", "server"]),
        "slaac": (slaac_lab, ["host", "r"])}
TARGETS = [(name, node, ifname) for name, (build, nodes) in LABS.items()
           for node in nodes for ifname in build().nodes[node].interfaces]


@st.composite
def frames_for(draw, lab, node, ifname):
    """A frame a peer could send ``node``: random, mutated-valid, or checksum-correct
    nonsense that gets past the checksums into the handlers."""
    iface = lab.nodes[node].interface(ifname)
    dst_mac = draw(st.sampled_from([iface.mac, "ff:ff:ff:ff:ff:ff", "33:33:00:00:00:01",
                                    "33:33:ff:00:00:10"]))
    eth = Ether(src="02:00:00:00:00:99", dst=dst_mac)
    own6 = [str(a) for a in iface.ipv6("all")]
    own4 = [str(a) for a in iface.ipv4()] or ["10.0.0.1"]
    dst6 = draw(st.sampled_from(own6 + ["ff02::1", "ff02::2", S6, "2001:db8:99::1"]))
    src6 = draw(st.sampled_from(["fe80::99", X6, "::", S6]))
    dst4 = draw(st.sampled_from(own4 + ["255.255.255.255", S4, "10.99.0.1"]))
    src4 = draw(st.sampled_from([X4, "0.0.0.0", S4, "203.0.113.20"]))
    hlim = draw(st.sampled_from([255, 64, 1]))
    body = draw(st.binary(max_size=96))
    kind = draw(st.sampled_from(["random", "icmp6", "ip6", "icmp4", "ip4", "arp"]))
    if kind == "random":
        return bytes(eth) + body
    if kind == "icmp6":
        icmp_type = draw(st.sampled_from([1, 2, 3, 4, 128, 129, 133, 134, 135, 136, 137]))
        ip = IPv6(src=src6, dst=dst6, hlim=hlim, nh=58)
        frame = bytes(eth / ip / Raw(_fix_icmp6(ip, bytes([icmp_type]) + body.ljust(3, b"\0"))))
    elif kind == "ip6":
        nh = draw(st.sampled_from([0, 17, 43, 44, 50, 60, 135, 59]))
        if nh == 17:
            frame = bytes(eth / IPv6(src=src6, dst=dst6, hlim=hlim)
                          / UDP(sport=draw(st.integers(0, 65535)),
                                dport=draw(st.sampled_from([7, 9, 500, 4500]))) / body)
        else:
            frame = bytes(eth / IPv6(src=src6, dst=dst6, hlim=hlim, nh=nh) / Raw(body))
    elif kind == "icmp4":
        icmp_type = draw(st.sampled_from([0, 3, 5, 8, 11, 13]))
        frame = bytes(eth / IP(src=src4, dst=dst4, proto=1, ttl=hlim % 200)
                      / Raw(_fix_icmp4(bytes([icmp_type]) + body.ljust(3, b"\0"))))
    elif kind == "ip4":
        proto = draw(st.sampled_from([6, 17, 50, 1]))
        flags = draw(st.sampled_from([0, 1]))
        frag = draw(st.sampled_from([0, 0, 3]))
        if proto == 17 and not (flags or frag):
            frame = bytes(eth / IP(src=src4, dst=dst4, ttl=hlim % 200)
                          / UDP(sport=draw(st.integers(0, 65535)),
                                dport=draw(st.integers(0, 65535))) / body)
        else:
            frame = bytes(eth / IP(src=src4, dst=dst4, proto=proto, flags=flags, frag=frag,
                                   ttl=hlim % 200) / Raw(body))
    else:
        frame = bytes(eth / ARP(op=draw(st.integers(0, 3)), hwsrc="02:00:00:00:00:99",
                                psrc=src4, pdst=dst4) / body[:8])
    # mutate: overwrite a few bytes, then maybe cut or extend
    data = bytearray(frame)
    for position, value in draw(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)),
                                         max_size=3)):
        if position < len(data):
            data[position] = value
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))
    if cut is not None:
        data = data[:cut]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_property_no_frame_makes_the_stack_fail(data):
    name, node, ifname = data.draw(st.sampled_from(TARGETS), label="target")
    build, _ = LABS[name]
    lab = build()
    frames = data.draw(st.lists(frames_for(lab, node, ifname), min_size=1, max_size=3),
                       label="frames")
    target = lab.nodes[node]
    iface = target.interface(ifname)
    for frame in frames:
        target.receive_frame(iface, frame)   # must not raise
    run_steps(lab, 4)                        # nor must what it set off
    assert lab.errors == [], lab.errors[0][2]
    assert lab.trace.filter(kind="error") == []
    for e in lab.trace.events:
        e.summary, e.to_dict()


def test_property_targets_cover_every_kind_of_node():
    kinds = {LABS[name][0]().nodes[node].kind for name, node, _ in TARGETS}
    assert kinds == {"host", "router", "nat"}
    assert ("nat", "nat", "eth1") in TARGETS   # the NAT's outside, where its hooks run


def test_describe_never_fails_on_junk():
    from mip6lab.net.frames import describe

    assert describe(b"\x00" * 4) == "undecodable frame, 4 bytes"
    # an error quoting an echo request is labelled as the error, not as an echo
    label = describe(bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
                           / IPv6(src=R6_FAR, dst=X6) / ICMPv6DestUnreach(code=3)
                           / IPerror6(src=X6, dst=S6) / ICMPv6EchoRequest()))
    assert label == f"ICMPv6 destination unreachable code=3 {R6_FAR} → {X6}"
