"""The short cuts of the per-packet and per-message paths (second round of issue 14):
each must give the answer of the long way it replaces."""

from __future__ import annotations

import ipaddress
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrRouting

from mip6lab.errors import RemoteProtocolError
from mip6lab.ikev2.ts import TrafficSelector
from mip6lab.ipsec.esp import EspError, locate_esp
from mip6lab.ipsec.keyengine import KeyEngine, KeyMessage
from mip6lab.ipsec.sad import SecurityAssociationDatabase
from mip6lab.ipsec.selectors import PacketSelectors, address_key, packet_selectors
from mip6lab.ipsec.spd import (BYPASS, PROTECT, SecurityPolicy, SecurityPolicyDatabase,
                               Selectors)
from mip6lab.ipsec.stack import _plainly_clear
from mip6lab.trace import Trace

from ._util import COA6, HA6, udp6

A = ipaddress.ip_address


# -- address keys --------------------------------------------------------------------------


def test_address_keys_keep_families_and_scopes_apart():
    assert address_key(A("2001:db8::1")) == address_key(A("2001:db8::1"))
    assert address_key(A("::102:304")) != address_key(A("1.2.3.4"))
    assert address_key(A("1.2.3.4")) == address_key(A("1.2.3.4"))
    assert address_key(A("fe80::1%eth0")) != address_key(A("fe80::1"))
    assert address_key(A("fe80::1%eth0")) == address_key(A("fe80::1%eth0"))


def test_the_spd_files_an_ipv4_host_apart_from_its_ipv4_compatible_twin():
    spd = SecurityPolicyDatabase(BYPASS)
    four = spd.add(SecurityPolicy(Selectors.make(remote="1.2.3.4"), PROTECT))
    six = spd.add(SecurityPolicy(Selectors.make(remote="::102:304"), PROTECT))
    assert spd.lookup(PacketSelectors(A("10.0.0.1"), A("1.2.3.4"), 17), True) is four
    assert spd.lookup(PacketSelectors(A("::1"), A("::102:304"), 17), True) is six


# -- packet selectors ----------------------------------------------------------------------


def test_packet_selectors_read_the_same_values_from_bytes_and_bytearrays():
    packet = bytes(IPv6(src=COA6, dst=HA6) / IPv6ExtHdrRouting() / ICMPv6EchoRequest())
    a, b = packet_selectors(packet), packet_selectors(bytearray(packet))
    assert a == b == PacketSelectors(A(COA6), A(HA6), 58, icmp_type=128, icmp_code=0)
    assert a.src is b.src      # one address object per value of the moment


@pytest.mark.parametrize("packet, expected", [
    (udp6(sport=500, dport=4500), dict(protocol=17, sport=500, dport=4500)),
    (bytes(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2)),
     dict(protocol=17, sport=1, dport=2)),
    (bytes(IP(src="192.0.2.1", dst="192.0.2.2", proto=17)) + b"\x00", dict(protocol=17)),
    (bytes(IPv6(src=COA6, dst=HA6, nh=135)) + b"\x3b\x00\x05\x00",
     dict(protocol=135, mh_type=5)),
])
def test_packet_selectors_read_ports_and_types_only_where_the_packet_has_them(packet,
                                                                              expected):
    found = packet_selectors(packet)
    for name in ("sport", "dport", "icmp_type", "icmp_code", "mh_type"):
        assert getattr(found, name) == expected.get(name), name
    assert found.protocol == expected["protocol"]


# -- SPD matching and the selectors' hash ----------------------------------------------------


def _reference_matches(sel: Selectors, packet: PacketSelectors, outbound: bool) -> bool:
    """The matching rule written out plainly, test by test (RFC 4301 §4.4.1.1)."""
    local, remote = (packet.src, packet.dst) if outbound else (packet.dst, packet.src)
    lport, rport = (packet.sport, packet.dport) if outbound else (packet.dport, packet.sport)

    def within(address, net):
        return net is None or (address.version == net.version and address in net)

    def port_within(port, wanted):
        return wanted is None or (port is not None and wanted[0] <= port <= wanted[1])

    mh = sel.local_mh_type if outbound else sel.remote_mh_type
    return (within(local, sel.local) and within(remote, sel.remote)
            and sel.protocol in (None, packet.protocol)
            and port_within(lport, sel.local_port) and port_within(rport, sel.remote_port)
            and sel.icmp_type in (None, packet.icmp_type)
            and sel.icmp_code in (None, packet.icmp_code)
            and ((sel.local_mh_type is None and sel.remote_mh_type is None)
                 or (mh is not None and packet.mh_type == mh)))


ADDRESSES = ["2001:db8::1", "2001:db8::2", "192.0.2.1", "::c000:201"]
maybe = lambda values: st.one_of(st.none(), st.sampled_from(values))  # noqa: E731
selectors = st.builds(
    Selectors.make, maybe(ADDRESSES + ["2001:db8::/64", "192.0.2.0/24"]),
    maybe(ADDRESSES + ["::/0"]), maybe([17, 58, 135]), maybe([500, (400, 600)]),
    maybe([4500, (0, 1000)]), maybe([128, 129]), maybe([0]), maybe([5, 6]), maybe([5, 6]))
packets = st.builds(
    lambda src, dst, *rest: PacketSelectors(A(src), A(dst), *rest),
    st.sampled_from(ADDRESSES), st.sampled_from(ADDRESSES), st.sampled_from([17, 58, 135]),
    maybe([500, 4500, 700]), maybe([500, 4500, 700]), maybe([128, 129]), maybe([0, 1]),
    maybe([5, 6]))


@settings(max_examples=400, deadline=None)
@given(selectors, packets, st.booleans())
def test_selectors_match_as_the_plain_rule_says(sel, packet, outbound):
    assert sel.matches(packet, outbound) == _reference_matches(sel, packet, outbound)


@settings(max_examples=100, deadline=None)
@given(selectors)
def test_the_kept_hash_is_the_hash_of_equal_selectors_made_anew(sel):
    again = pickle.loads(pickle.dumps(sel))
    fresh = Selectors(sel.local, sel.remote, sel.protocol, sel.local_port, sel.remote_port,
                      sel.icmp_type, sel.icmp_code, sel.local_mh_type, sel.remote_mh_type)
    hash(sel)
    assert again == sel == fresh and hash(again) == hash(sel) == hash(fresh)
    assert {sel: 1}[fresh] == 1 and "_hash" not in repr(sel)
    # a copy does not carry the kept hash along (another process hashes text otherwise)
    assert pickle.loads(pickle.dumps(sel))._hash is None


# -- the inbound short cut -------------------------------------------------------------------


def _clear_by_locate_esp(packet: bytes) -> bool:
    try:
        locate_esp(packet)
    except EspError as exc:
        return "keepalive" not in exc.reason
    except RemoteProtocolError:
        return False
    return False


@pytest.mark.parametrize("packet", [
    udp6(dport=4500), udp6(dport=500), udp6(sport=4500, dport=4501),
    bytes(IPv6(src=COA6, dst=HA6) / UDP(sport=4500, dport=4500) / b"\xff"),
    bytes(IPv6(src=COA6, dst=HA6, nh=50)) + bytes(16),
    bytes(IPv6(src=COA6, dst=HA6) / IPv6ExtHdrRouting() / ICMPv6EchoRequest()),
    bytes(IPv6(src=COA6, dst=HA6) / ICMPv6EchoRequest()),
    bytes(IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=1, dport=2)),
    bytes(IPv6(src=COA6, dst=HA6, nh=17)) + b"\x11\x94",
])
def test_a_packet_is_plainly_clear_only_where_locate_esp_says_it_is_not_esp(packet):
    plain = _plainly_clear(packet)
    assert not plain or _clear_by_locate_esp(packet)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=60), st.sampled_from([0, 6, 17, 43, 50, 58, 60]))
def test_plainly_clear_never_hides_esp(tail, nh):
    packet = bytes(IPv6(src=COA6, dst=HA6, nh=nh, plen=len(tail))) + tail
    assert not _plainly_clear(packet) or _clear_by_locate_esp(packet)


# -- the key engine at trace level "counts" ----------------------------------------------------


@pytest.mark.parametrize("level", ["counts", "full"])
def test_the_seam_is_counted_alike_through_count_and_through_the_trace(level):
    counted = {}
    for through_count in (False, True):
        trace = Trace(lambda: 0, level=level)
        engine = KeyEngine("mn", SecurityAssociationDatabase(), SecurityPolicyDatabase(),
                           lambda: 1, lambda: 0x1234,
                           lambda kind, summary, **data: trace.emit("mn", "keyengine",
                                                                    kind, summary, **data))
        engine.keeps = trace.keeps
        if through_count:
            engine.count = trace.count
        sock = engine.open("iked")
        engine.open("mip6d")
        sock.send(KeyMessage("GETSPI", src=A(COA6), dst=A(HA6)))
        sock.send(KeyMessage("SPDADD", policy=SecurityPolicy(Selectors.make(remote=HA6),
                                                             BYPASS)))
        sock.send(KeyMessage("DELETE", spi=0x999))     # an error: told to the sender only
        counted[through_count] = (dict(trace.counts), engine.crossings,
                                  [(e.kind, e.summary) for e in trace.events])
    assert counted[False] == counted[True]
    assert counted[True][0]["seam"] == counted[True][1] == 6


# -- traffic selectors as networks -------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 32), st.booleans())
def test_a_range_is_the_network_it_covers_and_no_other(start, span, six):
    top = 128 if six else 32
    make = ipaddress.IPv6Address if six else ipaddress.IPv4Address
    end = min(start + (1 << span) - 1, 2**top - 1)
    ts = TrafficSelector(make(start), make(end))
    summary = list(ipaddress.summarize_address_range(make(start), make(end)))
    assert ts.network() == (summary[0] if len(summary) == 1 else None)
    assert ts.network() == ts.network()
