"""The frame path's byte-level shortcuts, each checked against what it replaces.

A lab at scale reads and writes most packets without scapy (issue 14 point 4): UDP is
built and delivered on bytes, the multicast filter and the route lookup no longer build
their sets and Route lists per frame, the simulator's heap holds tuples, the binding
cache counts bindings per identity. Each test here compares the shortcut with the slow
definition it stands for (scapy's bytes, ``groups6()``, ``all()``), so a difference
fails a test rather than a run.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from mip6lab.mobility.binding_cache import (BindingCache, BindingUpdateRequest,
                                            HomeAgentConfiguration)
from mip6lab.mobility.constants import BindingAckStatus
from mip6lab.net.frames import build_udp, multicast_mac, solicited_node
from mip6lab.net.interface import MulticastGroups, Route
from mip6lab.net.lab import Lab
from mip6lab.net.node import Node
from mip6lab.net.sim import Simulator

from conftest import A6, B6, SINK_PORT, Sink, wire_lab

ipv6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
ipv4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
port = st.integers(0, 65535)


# -- UDP on bytes -----------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.tuples(ipv6, ipv6), st.tuples(ipv4, ipv4)), port, port,
       st.binary(max_size=300))
def test_build_udp_makes_scapys_bytes(addresses, sport, dport, payload):
    src, dst = addresses
    layer = IPv6 if src.version == 6 else IP
    expected = bytes(layer(src=str(src), dst=str(dst)) / UDP(sport=sport, dport=dport)
                     / payload)
    assert build_udp(src, dst, sport, dport, payload) == expected


def _udp6(payload: bytes, sport: int = 40000, dport: int = SINK_PORT) -> bytearray:
    return bytearray(build_udp(ipaddress.IPv6Address(A6), ipaddress.IPv6Address(B6),
                               sport, dport, payload))


def _deliver(lab: Lab, l3: bytes) -> None:
    b = lab.nodes["b"]
    b.receive_ip(b.interface(), bytes(l3))


def test_a_udp_datagram_is_delivered_with_the_fields_scapy_read():
    lab = wire_lab()
    sink = Sink(lab.nodes["b"])
    lab.nodes["a"].send_udp(B6, SINK_PORT, b"hello", 40000)
    lab.run(until=1.0)
    (datagram,) = sink.datagrams
    assert (datagram.src, datagram.sport, datagram.dst, datagram.dport, datagram.payload,
            datagram.interface) == (ipaddress.IPv6Address(A6), 40000,
                                    ipaddress.IPv6Address(B6), SINK_PORT, b"hello", "eth0")
    # what went on the wire is what scapy would have sent
    tx = lab.events.filter(kind="tx", node="a")[-1]
    assert bytes(tx.scapy()[IPv6]) == bytes(IPv6(src=A6, dst=B6)
                                            / UDP(sport=40000, dport=SINK_PORT) / b"hello")


def test_bad_and_zero_udp_checksums_are_dropped_as_before():
    lab = wire_lab()
    sink = Sink(lab.nodes["b"])
    bad = _udp6(b"data")
    bad[-1] ^= 0xFF
    zero = _udp6(b"data")
    zero[46:48] = b"\x00\x00"
    for packet in (bad, zero):
        try:
            _deliver(lab, packet)
        except Exception as exc:   # receive_ip raises; receive_frame turns it into a drop
            assert "checksum" in str(exc)
        else:
            raise AssertionError("accepted a packet with a wrong checksum")
    assert sink.datagrams == []


def test_an_unbound_port_and_a_lying_length_take_the_scapy_path():
    lab = wire_lab()
    Sink(lab.nodes["b"])
    lab.nodes["a"].send_udp(B6, 7777, b"nobody", 40000)           # no socket on 7777
    lab.run(until=1.0)
    drop = lab.last(kind="drop", node="b")
    assert drop is not None and "no socket on UDP port 7777" in drop.reason
    unreachable = lab.events.filter(kind="rx", node="a")
    assert any("destination unreachable" in e.summary for e in unreachable)
    # a UDP length below the packet's: scapy's reading (trailing bytes are padding)
    short = _udp6(b"data")
    short[44:46] = (8 + 2).to_bytes(2, "big")
    lab2 = wire_lab()
    sink2 = Sink(lab2.nodes["b"])
    try:
        _deliver(lab2, short)
    except Exception:
        pass   # a checksum over the shorter datagram no longer matches: a drop
    assert all(d.payload != b"data" for d in sink2.datagrams)
    assert not lab.errors and not lab2.errors


# -- the multicast filter ----------------------------------------------------------------------


def _interface_with(addresses, joined, forwarding):
    lab = Lab()
    node = lab.add_node(Node(lab, "n"))
    node.forwarding = forwarding
    iface = node.add_interface()
    for address in addresses:
        iface.add_address(f"{address}/64")
    for group in joined:
        iface.joined.add(group)
    return iface


groups = st.one_of(
    ipv6.map(solicited_node), st.sampled_from([ipaddress.IPv6Address("ff02::1"),
                                              ipaddress.IPv6Address("ff02::2"),
                                              ipaddress.IPv6Address("ff05::2"),
                                              ipaddress.IPv6Address("ff02::1:2")]),
    st.integers(0, 2**112 - 1).map(lambda v: ipaddress.IPv6Address((0xFF02 << 112) | v)))


@settings(max_examples=200, deadline=None)
@given(st.lists(ipv6.filter(lambda a: not a.is_multicast), max_size=3),
       st.lists(groups, max_size=4), st.booleans(), groups)
def test_the_multicast_filter_answers_as_groups6(addresses, joined, forwarding, probe):
    iface = _interface_with(addresses, joined, forwarding)
    every = iface.groups6()
    candidates = [probe, *every, *(solicited_node(a) for a in addresses)]
    for group in candidates:
        assert iface.listens_to(group) == (group in every)
        mac = multicast_mac(group)
        low32 = int(mac.replace(":", "")[4:], 16)
        assert iface.listens_to_mac(low32) == (mac in {multicast_mac(g) for g in every})


def test_multicast_groups_keep_their_mac_counts_through_every_change():
    # two groups with one Ethernet address (the same low 32 bits, RFC 2464 §7)
    a, b = ipaddress.IPv6Address("ff02::1:ff00:1"), ipaddress.IPv6Address("ff05::1:ff00:1")
    groups = MulticastGroups([a])
    groups |= {b}
    assert groups.low32 == {int(a) & 0xFFFFFFFF: 2} and groups == {a, b}
    groups.discard(a)
    assert groups.low32 == {int(a) & 0xFFFFFFFF: 1}
    groups.difference_update({b})
    assert groups.low32 == {} and not groups
    groups.update([a, b])
    groups -= {a}
    groups.clear()
    assert groups.low32 == {}


# -- the route lookup --------------------------------------------------------------------------


def _reference_lookup(table, dst):
    """RoutingTable.lookup as it was: every route of all(), the best one."""
    best = None
    for route in table.all():
        if route.network.version != dst.version or dst not in route.network:
            continue
        iface = table.node.interfaces.get(route.interface)
        if iface is None or iface.link is None:
            continue
        if best is None or (route.network.prefixlen, -route.metric) > \
                (best.network.prefixlen, -best.metric):
            best = route
    return best


prefixes = st.tuples(st.sampled_from(["2001:db8::", "2001:db8:0:1::", "2001:db8:a::",
                                      "::", "fe80::"]), st.sampled_from([0, 32, 48, 64]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(prefixes, st.integers(0, 2), st.integers(-1, 1)), max_size=5),
       st.lists(st.tuples(st.integers(0, 2), st.sampled_from(
           ["2001:db8::5/64", "2001:db8:0:1::5/64", "2001:db8::6/48", "fe80::9/64"])),
           max_size=4),
       st.sampled_from(["2001:db8::7", "2001:db8:0:1::1", "2001:db8:a::1", "fe80::1",
                        "2001:db9::1"]))
def test_route_lookup_picks_the_route_all_would(statics, addresses, destination):
    lab = Lab()
    lab.add_link("l0")
    lab.add_link("l1")
    node = lab.add_node(Node(lab, "n"))
    for k in range(3):
        iface = node.add_interface()
        if k < 2:           # eth2 stays detached: its routes never win
            node.attach(iface, lab.links[f"l{k}"])
    for k, address in addresses:
        node.interfaces[f"eth{k}"].add_address(address)
    for (network, length), k, metric in statics:
        node.routes.add(f"{network}/{length}", f"eth{k}", metric=metric)
    dst = ipaddress.IPv6Address(destination)
    found, expected = node.routes.lookup(dst), _reference_lookup(node.routes, dst)
    if expected is None:
        assert found is None
    else:
        assert isinstance(found, Route)
        assert (found.network, found.interface, found.gateway, found.origin,
                found.metric) == (expected.network, expected.interface, expected.gateway,
                                  expected.origin, expected.metric)


# -- the simulator's heap ----------------------------------------------------------------------


def test_simulator_runs_calls_by_time_then_by_scheduling_order():
    sim = Simulator()
    ran = []
    sim.call_at(5, ran.append, "late")
    for name in ("first", "second", "third"):
        sim.call_at(2, ran.append, name)
    dropped = sim.call_at(1, ran.append, "cancelled", label="gone")
    dropped.cancel()
    assert sim.pending() == 4 and sim.peek_time_us() == 2
    assert [label for _, label in sim.scheduled()] == ["", "", "", ""]
    while sim.step() is not None:
        pass
    assert ran == ["first", "second", "third", "late"] and sim.now_us == 5


# -- the binding cache's index -----------------------------------------------------------------

HOME = ipaddress.IPv6Network("2001:db8:0:1::/64")


def _bu(host: int, seq: int = 1, lifetime: int = 10) -> BindingUpdateRequest:
    return BindingUpdateRequest(home_address=HOME[host],
                                care_of_address=ipaddress.IPv6Address(f"2001:db8:a::{host:x}"),
                                sequence_number=seq, lifetime=lifetime)


def test_bindings_per_identity_are_counted_without_a_walk_and_bounded():
    cache = BindingCache(HomeAgentConfiguration(home_prefixes={HOME: None},
                                                max_entries_per_identity=2))
    allow = lambda identity: [HOME[h] for h in range(1, 10)]  # noqa: E731
    for host in (1, 2):
        assert cache.process_bu(_bu(host), "alice", allow, 0).status < 128
    assert cache.held_by("alice") == 2 and cache.held_by("bob") == 0
    refused = cache.process_bu(_bu(3), "alice", allow, 0)
    assert refused.status == BindingAckStatus.INSUFFICIENT_RESOURCES
    assert cache.process_bu(_bu(3), "bob", allow, 0).status < 128
    # a refresh keeps the count; a deregistration gives a place back
    assert cache.process_bu(_bu(1, seq=2), "alice", allow, 0).status < 128
    assert cache.held_by("alice") == 2
    assert cache.process_bu(_bu(2, seq=2, lifetime=0), "alice", allow, 0).status < 128
    assert cache.held_by("alice") == 1
    assert cache.process_bu(_bu(3 + 1), "alice", allow, 0).status < 128


def test_expiry_takes_the_due_entries_only_and_their_counts():
    cache = BindingCache(HomeAgentConfiguration(home_prefixes={HOME: None}))
    allow = lambda identity: [HOME[h] for h in range(1, 10)]  # noqa: E731
    cache.process_bu(_bu(1, lifetime=1), "alice", allow, 0)         # 4 s
    cache.process_bu(_bu(2, lifetime=2), "alice", allow, 0)         # 8 s
    cache.process_bu(_bu(1, seq=2, lifetime=3), "alice", allow, 0)  # refreshed: 12 s
    assert cache.next_expiry() == 8_000_000
    assert cache.expire(7_999_999) == []
    (gone,) = cache.expire(8_000_000)
    assert gone.entry.home_address == HOME[2] and cache.held_by("alice") == 1
    assert cache.next_expiry() == 12_000_000
    assert [e.entry.home_address for e in cache.expire(20_000_000)] == [HOME[1]]
    assert len(cache) == 0 and cache.held_by("alice") == 0 and cache.next_expiry() is None


# -- what the key engine keeps -----------------------------------------------------------------


def test_a_key_socket_keeps_its_newest_messages_only():
    from mip6lab.ipsec.keyengine import RECEIVED_KEPT, KeyEngine, KeyMessage
    from mip6lab.ipsec.sad import SecurityAssociationDatabase
    from mip6lab.ipsec.spd import SecurityPolicyDatabase

    engine = KeyEngine("n", SecurityAssociationDatabase(), SecurityPolicyDatabase(),
                       lambda: 0, lambda: 0x1000)
    socket = engine.open("ike")
    replies = [socket.send(KeyMessage("SPDDUMP")) for _ in range(RECEIVED_KEPT + 5)]
    assert isinstance(socket.received, list) and len(socket.received) == RECEIVED_KEPT
    assert socket.received == replies[-RECEIVED_KEPT:]


def test_the_sa_history_is_kept_while_the_trace_keeps_frames():
    from mip6lab.ipsec import IPsecStack
    from mip6lab.ipsec.keyengine import KeyMessage
    from mip6lab.ipsec.sad import SecurityAssociation

    for level, kept in (("full", 1), ("events", 0), ("counts", 0)):
        lab = Lab(trace_level=level)
        node = lab.add_node(Node(lab, "n"))
        stack = IPsecStack(node)
        sa = SecurityAssociation(0x1234, "out", A6, B6, "aes128gcm16", bytes(20))
        reply = stack.engine.open("ike").send(KeyMessage("ADD", sa=sa))
        assert reply.error is None and len(stack.engine.history) == kept, level
        # the crossing is counted at every level
        assert lab.trace.counts["seam"] == 2


def test_the_sad_finds_the_sas_between_two_addresses_through_a_migrate():
    from mip6lab.ipsec.sad import SecurityAssociation, SecurityAssociationDatabase

    sad = SecurityAssociationDatabase()
    a, b, c = (ipaddress.IPv6Address(x) for x in (A6, B6, "2001:db8:ab::c"))
    out = SecurityAssociation(0x1001, "out", a, b, "aes128gcm16", bytes(20))
    back = SecurityAssociation(0x1002, "in", b, a, "aes128gcm16", bytes(20))
    other = SecurityAssociation(0x1003, "in", c, a, "aes128gcm16", bytes(20))
    for sa in (out, back, other):
        sad.add(sa)
    assert set(map(id, sad.between(a, b))) == {id(out), id(back)}
    assert sad.between(b, a) and sad.between(a, c) == [other]
    key = (out.spi, out.dst)
    out.dst = c                       # what MIGRATE does, then re-files it
    sad.rekey(out, key)
    assert sad.between(a, b) == [back]
    assert set(map(id, sad.between(a, c))) == {id(out), id(other)}
    sad.remove(back)
    assert sad.between(a, b) == []
    sad.flush()
    assert sad.between(a, c) == []


# -- Ethernet headers on bytes ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=6, max_size=6), st.binary(min_size=6, max_size=6),
       st.sampled_from([0x86DD, 0x0800, 0x0806]), st.booleans())
def test_ethernet_header_is_scapys(dst, src, ethertype, upper):
    from scapy.layers.l2 import Ether

    from mip6lab.net.frames import ethernet_header

    dst_mac = dst.hex(":").upper() if upper else dst.hex(":")
    assert ethernet_header(dst_mac, src, ethertype) == bytes(
        Ether(dst=dst_mac, src=src.hex(":"), type=ethertype))


def test_cancelled_calls_let_go_and_are_swept_without_changing_the_order():
    """Cancelled timers drop their target at once and leave the heap once they are half
    of it; the live ones still run by (time, scheduling order), each once."""
    sim = Simulator(0)
    ran: list[int] = []
    calls = [sim.call_at(1000 + (i * 7919) % 2000, ran.append, i, label=f"t{i}")
             for i in range(3000)]
    keep = {i for i in range(3000) if i % 3 == 0}
    for i, call in enumerate(calls):
        if i not in keep:
            call.cancel()
            call.cancel()                      # twice: counted once
            assert call.args == ()
    assert sim._cancelled == 2000
    sim.call_at(5000, ran.append, -1)          # the next push sweeps the heap
    assert sim._cancelled == 0 and len(sim._heap) == len(keep) + 1
    assert sim.pending() == len(keep) + 1
    while sim.step() is not None:
        pass
    expected = sorted(keep, key=lambda i: (1000 + (i * 7919) % 2000, i)) + [-1]
    assert ran == expected
    calls[0].cancel()                          # after it ran: nothing to count
    assert sim._cancelled == 0
