"""NAT44 (NAPT) in the in-process lab: translation, filtering, timeouts, rebinding.

Topology (tests/_topologies.py)::

    inside --[lan4]-- nat ==[wan4]== server, third
    192.0.2.10          203.0.113.2   203.0.113.20, 203.0.113.30
"""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from _topologies import (
    INSIDE4,
    NAT_PUBLIC,
    SERVER4,
    THIRD4,
    Replies,
    Sink,
    drops,
    nat_lab,
    states,
)
from mip6lab.testing.prereq import require_tool
from mip6lab.trace import Event, Events

INSIDE_PORT = 5000
SERVER_PORT = 7


def seconds(t: float) -> int:
    return round(t * 1_000_000)


def _nodes(lab):
    return (lab.nodes["inside"], lab.nodes["nat"], lab.nodes["server"],
            lab.nodes["third"])


def _wan_ipv4(lab):
    """The IPv4 packets carried on the NAT's outside link, dissected."""
    out = []
    for e in lab.trace.filter(kind="tx", link="wan4"):
        frame = Ether(e.packet)
        if IP in frame:
            out.append(frame[IP])
    return out


def _open_mapping(lab, payload=b"hello", until=1.0):
    """inside:5000 -> server:7 once; return the server's sink and the mapping."""
    inside, nat, server, _ = _nodes(lab)
    sink = Sink(server, SERVER_PORT)
    inside.send_udp(SERVER4, SERVER_PORT, payload, INSIDE_PORT)
    lab.run(until=lab.now + until)
    mapping = nat.nat.mappings[("udp", ipaddress.IPv4Address(INSIDE4), INSIDE_PORT)]
    return sink, mapping


def test_udp_is_translated_both_ways():
    lab = nat_lab()
    inside, nat, server, _ = _nodes(lab)
    back = Sink(inside, INSIDE_PORT)
    sink, mapping = _open_mapping(lab)

    [seen] = sink.datagrams
    assert seen.src == ipaddress.IPv4Address(NAT_PUBLIC)
    assert seen.sport == mapping.outside_port
    assert seen.payload == b"hello"
    assert nat.nat.public_address == ipaddress.IPv4Address(NAT_PUBLIC)

    server.send_udp(seen.src, seen.sport, b"answer", SERVER_PORT)
    lab.run(until=lab.now + 1)
    [answer] = back.datagrams
    assert (answer.src, answer.sport) == (ipaddress.IPv4Address(SERVER4), SERVER_PORT)
    assert (answer.dst, answer.dport) == (ipaddress.IPv4Address(INSIDE4), INSIDE_PORT)
    assert answer.payload == b"answer"

    # The inside address never shows on the outside link.
    wan = _wan_ipv4(lab)
    assert wan, "nothing crossed the outside link"
    assert all(INSIDE4 not in (ip.src, ip.dst) for ip in wan)
    assert mapping.packets_out == 1 and mapping.packets_in == 1
    assert nat.nat.stats["translated_out"] == 1 and nat.nat.stats["translated_in"] == 1
    creation = states(lab, node="nat", module="nat")[0]
    assert f"{INSIDE4}:{INSIDE_PORT}" in creation.summary
    assert f"{NAT_PUBLIC}:{mapping.outside_port}" in creation.summary
    assert lab.errors == []


def test_mapping_is_endpoint_independent():
    """One inside endpoint keeps its outside port whoever it talks to (RFC 4787 REQ-1)."""
    lab = nat_lab()
    inside, nat, server, third = _nodes(lab)
    sink_s, sink_t = Sink(server, SERVER_PORT), Sink(third, 9)
    inside.send_udp(SERVER4, SERVER_PORT, b"a", INSIDE_PORT)
    inside.send_udp(THIRD4, 9, b"b", INSIDE_PORT)
    inside.send_udp(SERVER4, SERVER_PORT, b"c", INSIDE_PORT + 1)
    lab.run(until=1)
    ports_s = [d.sport for d in sink_s.datagrams]
    assert len(ports_s) == 2 and ports_s[0] != ports_s[1]
    assert [d.sport for d in sink_t.datagrams] == [ports_s[0]]
    assert len(nat.nat.mappings) == 2


def test_icmp_echo_through_nat_is_mapped_by_identifier():
    lab = nat_lab()
    inside, nat, server, _ = _nodes(lab)
    replies = Replies(inside)
    inside.ping(SERVER4, seq=1, ident=0x1234)
    lab.run(until=1)
    inside.ping(SERVER4, seq=2, ident=0x1234)
    lab.run(until=2)

    mapping = nat.nat.mappings[("icmp", ipaddress.IPv4Address(INSIDE4), 0x1234)]
    requests = [ip for ip in _wan_ipv4(lab) if ICMP in ip and ip[ICMP].type == 8]
    assert len(requests) == 2
    assert all(ip.src == NAT_PUBLIC and ip[ICMP].id == mapping.outside_port
               for ip in requests)
    # The inside host gets its own identifier back, from the server.
    assert [(r.src, r.ident, r.seq) for r in replies.replies] == [
        (ipaddress.IPv4Address(SERVER4), 0x1234, 1),
        (ipaddress.IPv4Address(SERVER4), 0x1234, 2)]
    assert mapping.packets_out == 2 and mapping.packets_in == 2
    assert drops(lab) == []


def test_icmp_echo_reply_from_third_party_is_filtered():
    lab = nat_lab()
    inside, nat, server, third = _nodes(lab)
    replies = Replies(inside)
    inside.ping(SERVER4, seq=1, ident=0x1234)
    lab.run(until=1)
    mapping = nat.nat.mappings[("icmp", ipaddress.IPv4Address(INSIDE4), 0x1234)]
    third.send_ip(IP(dst=NAT_PUBLIC) / ICMP(type=0, id=mapping.outside_port, seq=9))
    lab.run(until=2)
    assert [r.seq for r in replies.replies] == [1]
    [drop] = drops(lab, node="nat", module="nat")
    assert drop.reason.startswith(f"filtered: {THIRD4}")


def test_echo_request_to_the_nat_itself_is_answered():
    lab = nat_lab()
    _, nat, _, third = _nodes(lab)
    replies = Replies(third)
    third.ping(NAT_PUBLIC, seq=3, ident=77)
    lab.run(until=1)
    assert [(r.src, r.seq) for r in replies.replies] == [
        (ipaddress.IPv4Address(NAT_PUBLIC), 3)]
    assert nat.nat.mappings == {}


def test_inbound_without_mapping_is_dropped():
    lab = nat_lab()
    inside, nat, _, third = _nodes(lab)
    sink = Sink(inside, INSIDE_PORT)
    third.send_udp(NAT_PUBLIC, INSIDE_PORT, b"knock", 4444)
    lab.run(until=1)
    assert sink.datagrams == []
    [drop] = drops(lab)
    assert (drop.node, drop.module) == ("nat", "nat")
    assert drop.reason == f"no NAT mapping for udp/{INSIDE_PORT}"
    assert nat.nat.stats["dropped_in"] == 1
    assert lab.trace.filter(kind="tx", link="lan4") == []
    assert lab.errors == []


@pytest.mark.parametrize("filtering, expect", [
    # (same endpoint, same address other port, other address)
    ("endpoint-independent", (True, True, True)),
    ("address-dependent", (True, True, False)),
    ("address-and-port-dependent", (True, False, False)),
])
def test_filtering_modes(filtering, expect):
    lab = nat_lab(filtering=filtering)
    inside, nat, server, third = _nodes(lab)
    back = Sink(inside, INSIDE_PORT)
    _, mapping = _open_mapping(lab)
    port = mapping.outside_port
    senders = [(server, SERVER_PORT, b"same endpoint"),
               (server, SERVER_PORT + 1, b"same address"),
               (third, SERVER_PORT, b"third party")]
    for node, sport, payload in senders:
        node.send_udp(NAT_PUBLIC, port, payload, sport)
        lab.run(until=lab.now + 1)

    got = {d.payload for d in back.datagrams}
    for (_, sport, payload), passes in zip(senders, expect):
        assert (payload in got) is passes, (filtering, payload)
    filtered = [e.reason for e in drops(lab, node="nat", module="nat")]
    assert len(filtered) == expect.count(False)
    assert all(r.startswith("filtered: ") for r in filtered)
    assert nat.nat.stats["dropped_in"] == expect.count(False)


def test_unknown_filtering_mode_is_refused():
    with pytest.raises(ValueError):
        nat_lab(filtering="full-cone")


def test_mapping_expires_after_timeout():
    lab = nat_lab(mapping_timeout=30.0)
    inside, nat, server, _ = _nodes(lab)
    back = Sink(inside, INSIDE_PORT)
    _, mapping = _open_mapping(lab)
    deadline = mapping.last_used_us / 1e6 + 30.0

    lab.run(until=deadline - 0.001)
    assert len(nat.nat.mappings) == 1
    assert not [e for e in states(lab, node="nat") if "expired" in e.summary]

    lab.run(until=deadline)
    assert nat.nat.mappings == {} and nat.nat.by_port == {}
    [expired] = [e for e in states(lab, node="nat", module="nat") if "expired" in e.summary]
    assert expired.time_us == mapping.last_used_us + 30_000_000
    assert expired.data["outside_port"] == mapping.outside_port
    assert nat.nat.stats["expired"] == 1
    assert nat.nat.table() == []

    server.send_udp(NAT_PUBLIC, mapping.outside_port, b"late", SERVER_PORT)
    lab.run(until=lab.now + 1)
    assert back.datagrams == []
    assert [e.reason for e in drops(lab)] == [f"no NAT mapping for udp/{mapping.outside_port}"]


def test_outbound_traffic_refreshes_the_mapping():
    lab = nat_lab(mapping_timeout=30.0)
    inside, nat, server, _ = _nodes(lab)
    sink = Sink(server, SERVER_PORT)
    for k in range(7):  # every 20 s for two minutes: never 30 s idle
        lab.at(20.0 * k, inside.send_udp, SERVER4, SERVER_PORT, b"keepalive %d" % k,
               INSIDE_PORT)
    lab.run(until=125.0)

    assert len(sink.datagrams) == 7
    assert len({d.sport for d in sink.datagrams}) == 1  # the same outside port throughout
    assert nat.nat.stats["mappings"] == 1
    assert not [e for e in states(lab, node="nat") if "expired" in e.summary]
    [mapping] = nat.nat.mappings.values()
    assert mapping.packets_out == 7

    # Idle from the last keepalive on: gone 30 s after it, not 30 s after the first.
    last = mapping.last_used_us
    lab.run(until=last / 1e6 + 31)
    [expired] = [e for e in states(lab, node="nat") if "expired" in e.summary]
    assert expired.time_us == last + 30_000_000


@pytest.mark.parametrize("refresh", [True, False])
def test_refresh_on_inbound(refresh):
    lab = nat_lab(mapping_timeout=30.0, refresh_on_inbound=refresh)
    inside, nat, server, _ = _nodes(lab)
    back = Sink(inside, INSIDE_PORT)
    _, mapping = _open_mapping(lab)   # the only outbound packet
    start = lab.now
    for k in range(1, 7):  # inbound only, every 10 s for a minute
        lab.at(start + 10.0 * k, server.send_udp, NAT_PUBLIC, mapping.outside_port,
               b"push %d" % k, SERVER_PORT)
    lab.run(until=start + 65.0)

    expired = [e for e in states(lab, node="nat") if "expired" in e.summary]
    if refresh:
        assert len(back.datagrams) == 6
        assert expired == [] and len(nat.nat.mappings) == 1
        assert mapping.last_used_us > seconds(start + 59)
    else:
        # 30 s after the outbound packet the mapping is gone, pushes after it dropped.
        assert [d.payload for d in back.datagrams] == [b"push 1", b"push 2"]
        assert len(expired) == 1 and nat.nat.mappings == {}
        reasons = [e.reason for e in drops(lab)]
        assert reasons == [f"no NAT mapping for udp/{mapping.outside_port}"] * 4


def test_rebind_moves_the_mapping_to_a_new_port():
    lab = nat_lab()
    inside, nat, server, _ = _nodes(lab)
    back = Sink(inside, INSIDE_PORT)
    sink, mapping = _open_mapping(lab)
    old = mapping.outside_port

    changed = nat.nat.rebind()
    assert len(changed) == 1
    assert changed[0][0] == old
    new = changed[0][1]
    assert new != old and mapping.outside_port == new
    [event] = [e for e in states(lab, node="nat") if "rebound" in e.summary]
    assert event.data["old_port"] == old and event.data["outside_port"] == new
    assert nat.nat.stats["rebound"] == 1

    # The server sees the same inside host arrive from the new port ...
    inside.send_udp(SERVER4, SERVER_PORT, b"after", INSIDE_PORT)
    lab.run(until=lab.now + 1)
    assert [(d.src, d.sport) for d in sink.datagrams] == [
        (ipaddress.IPv4Address(NAT_PUBLIC), old), (ipaddress.IPv4Address(NAT_PUBLIC), new)]

    # ... the old port is dead, the new one works.
    mark = len(lab.trace)
    server.send_udp(NAT_PUBLIC, old, b"to old", SERVER_PORT)
    lab.run(until=lab.now + 1)
    server.send_udp(NAT_PUBLIC, new, b"to new", SERVER_PORT)
    lab.run(until=lab.now + 1)
    assert [d.payload for d in back.datagrams] == [b"to new"]
    assert [e.reason for e in drops(lab, mark)] == [f"no NAT mapping for udp/{old}"]
    assert lab.errors == []


def test_rebind_forgets_remotes_and_selects_by_inside_endpoint():
    lab = nat_lab()  # address-and-port-dependent filtering
    inside, nat, server, _ = _nodes(lab)
    back = Sink(inside, INSIDE_PORT)
    _open_mapping(lab)
    inside.send_udp(SERVER4, SERVER_PORT, b"other", INSIDE_PORT + 1)
    lab.run(until=lab.now + 1)

    assert nat.nat.rebind(inside=(INSIDE4, 9999)) == []
    assert nat.nat.rebind(protocol="icmp") == []
    [(old, new)] = nat.nat.rebind(inside=(INSIDE4, INSIDE_PORT))
    untouched = nat.nat.mappings[("udp", ipaddress.IPv4Address(INSIDE4), INSIDE_PORT + 1)]
    assert untouched.outside_port not in (old, new)
    # Nothing has been sent from the new port yet: the server is filtered there.
    server.send_udp(NAT_PUBLIC, new, b"too early", SERVER_PORT)
    lab.run(until=lab.now + 1)
    assert back.datagrams == []
    assert drops(lab)[-1].reason.startswith("filtered: ")


def test_esp_cannot_be_translated():
    lab = nat_lab()
    inside, nat, server, _ = _nodes(lab)
    esp = IP(dst=SERVER4, proto=50) / Raw(bytes.fromhex("00001000" "00000001") + b"x" * 24)
    assert inside.send_ip(esp)
    lab.run(until=1)
    [drop] = drops(lab)
    assert (drop.node, drop.module) == ("nat", "nat")
    assert drop.reason == "protocol 50 cannot be translated by NAPT"
    assert nat.nat.stats["dropped_out"] == 1
    assert nat.nat.mappings == {}
    assert not [ip for ip in _wan_ipv4(lab) if ip.proto == 50]


def test_esp_arriving_from_outside_has_no_mapping():
    lab = nat_lab()
    _, nat, _, third = _nodes(lab)
    third.send_ip(IP(dst=NAT_PUBLIC, proto=50) / Raw(b"\x00" * 16))
    lab.run(until=1)
    [drop] = drops(lab)
    assert drop.reason == "no NAT mapping for 50/0"


def test_zero_udp_checksum_stays_zero():
    """RFC 768: a datagram sent without checksum is translated without one."""
    lab = nat_lab()
    inside, _, server, _ = _nodes(lab)
    sink = Sink(server, SERVER_PORT)
    inside.send_ip(IP(dst=SERVER4) / UDP(sport=INSIDE_PORT, dport=SERVER_PORT, chksum=0)
                   / b"no checksum")
    lab.run(until=1)
    assert [d.payload for d in sink.datagrams] == [b"no checksum"]
    [udp] = [ip[UDP] for ip in _wan_ipv4(lab) if UDP in ip]
    assert udp.chksum == 0 and udp.sport != INSIDE_PORT


def test_table_lists_every_mapping():
    lab = nat_lab()
    inside, nat, server, _ = _nodes(lab)
    Sink(server, SERVER_PORT)
    inside.send_udp(SERVER4, SERVER_PORT, b"1", INSIDE_PORT)
    inside.send_udp(SERVER4, SERVER_PORT, b"2", INSIDE_PORT)
    inside.ping(SERVER4, seq=1, ident=42)
    lab.run(until=1)

    table = sorted(nat.nat.table(), key=lambda row: row["protocol"])
    ports = {m.protocol: m.outside_port for m in nat.nat.mappings.values()}
    assert table == [
        {"protocol": "icmp", "inside": f"{INSIDE4}:42", "outside_port": ports["icmp"],
         "packets_out": 1, "packets_in": 1},
        {"protocol": "udp", "inside": f"{INSIDE4}:{INSIDE_PORT}",
         "outside_port": ports["udp"], "packets_out": 2, "packets_in": 0},
    ]
    lo, hi = nat.nat.port_range
    assert all(lo <= row["outside_port"] <= hi for row in table)


def test_outside_ports_are_drawn_from_the_seed():
    def port(seed):
        lab = nat_lab(seed=seed)
        _, mapping = _open_mapping(lab)
        return mapping.outside_port

    assert port(11) == port(11)
    assert len({port(s) for s in (11, 12, 13, 14)}) > 1


@pytest.mark.tshark
def test_translated_packets_have_valid_checksums(tmp_path):
    require_tool("tshark", why="to validate the NAT's checksums")
    from mip6lab.testing.tshark import CaptureCheckError, check_capture, tshark_fields

    lab = nat_lab()
    inside, nat, server, _ = _nodes(lab)
    back = Sink(inside, INSIDE_PORT)
    replies = Replies(inside)
    sink, mapping = _open_mapping(lab, payload=b"odd length!")
    server.send_udp(NAT_PUBLIC, mapping.outside_port, b"even length!", SERVER_PORT)
    inside.ping(SERVER4, seq=1, ident=0xBEEF, payload=b"checksum me")
    lab.run(until=lab.now + 2)
    assert back.datagrams and replies.replies and sink.datagrams

    path = tmp_path / "nat.pcapng"
    count = lab.trace.write_pcapng(path)
    report = check_capture(path)
    assert report.frames == count
    assert {"ip", "udp", "icmp", "arp"} <= report.protocols

    # tshark read the translated ports we meant to write, on the outside link.
    fields = tshark_fields(path, ["udp.srcport", "udp.dstport", "ip.src"],
                           display_filter=f"udp && ip.addr=={NAT_PUBLIC}")
    assert {(f["ip.src"][0], f["udp.srcport"][0]) for f in fields} >= {
        (NAT_PUBLIC, str(mapping.outside_port))}

    # The check is not vacuous: one translated frame with a damaged UDP checksum fails it.
    frame = bytearray(next(e.packet for e in lab.trace.filter(kind="tx", link="wan4")
                           if UDP in Ether(e.packet)))
    frame[14 + 20 + 6] ^= 0xFF   # the UDP checksum's first byte
    broken = tmp_path / "broken.pcapng"
    Events([Event(0, 0, "nat", "link", "tx", packet=bytes(frame), link="wan4")]
           ).write_pcapng(broken)
    with pytest.raises(CaptureCheckError):
        check_capture(broken)
