"""The per-hop shortcuts of mip6lab.net answer what the longer paths they replace answer:
the group bit of a MAC read from a table, a neighbour entry's expiry checked inline
(RFC 4861 §7.3.3: an entry past its reachable time is resolved again), the all-nodes and
all-routers groups compared as numbers (RFC 4291 §2.7.1), the source address chosen on
numbers (RFC 6724, as simplified by Interface.source_for)."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import example, given, settings, strategies as st

from mip6lab.net.frames import is_multicast_mac
from mip6lab.net.lab import Lab
from mip6lab.net.neighbor import REACHABLE_TIME
from mip6lab.net.node import Node

from conftest import B6, SINK_PORT, Sink, small_lab, wire_lab


@pytest.mark.parametrize("octet", range(256))
def test_the_group_bit_is_the_parsed_one(octet):
    for first in ("%02x" % octet, "%02X" % octet):
        mac = first + ":00:5e:00:00:01"
        assert is_multicast_mac(mac) is bool(int(first, 16) & 1)


def test_a_malformed_mac_still_raises():
    with pytest.raises(ValueError):
        is_multicast_mac("zz:00:00:00:00:00")


def test_a_fresh_entry_sends_at_once_and_an_expired_one_is_resolved_again():
    lab = wire_lab()
    a, b = lab.nodes["a"], lab.nodes["b"]
    sink = Sink(b)
    key = (a.interface().name, ipaddress.IPv6Address(B6))
    a.send_udp(B6, SINK_PORT, b"0", 40000)
    assert key not in a.neighbors.pending          # known: no resolution
    lab.run(until=REACHABLE_TIME + 1.0)             # the entry has expired
    assert a.neighbors.lookup(a.interface(), key[1]) is None
    a.send_udp(B6, SINK_PORT, b"1", 40000)
    assert key in a.neighbors.pending               # queued behind a solicitation
    lab.run(until=REACHABLE_TIME + 3.0)
    assert sink.numbers() == [0, 1]
    assert a.neighbors.lookup(a.interface(), key[1]) == b.interface().mac


def test_all_nodes_and_all_routers_as_numbers():
    lab = small_lab()
    host, router = lab.nodes["h1"].interface(), lab.nodes["r"].interface("eth0")
    all_nodes, all_routers = (ipaddress.IPv6Address("ff02::1"),
                              ipaddress.IPv6Address("ff02::2"))
    assert host.listens_to(all_nodes) and router.listens_to(all_nodes)
    assert router.listens_to(all_routers) and not host.listens_to(all_routers)
    assert not host.listens_to(ipaddress.IPv6Address("ff02::3"))
    assert lab.nodes["r"].is_local6(router, all_routers)
    assert not lab.nodes["h1"].is_local6(host, all_routers)
    assert lab.nodes["h1"].is_local6(host, ipaddress.IPv6Address("2001:db8:1::10"))
    assert not lab.nodes["h1"].is_local6(host, ipaddress.IPv6Address("2001:db8:1::11"))


# -- source address selection on numbers -------------------------------------------------

_PREFIXES = ["2001:db8:1::", "2001:db8:2::", "fe80::", "fec0::"]
_addresses = st.tuples(st.sampled_from(_PREFIXES), st.integers(1, 2**16),
                       st.sampled_from([48, 64, 96]), st.booleans())
_destinations = st.one_of(
    st.tuples(st.sampled_from(_PREFIXES), st.integers(1, 2**16)).map(
        lambda t: ipaddress.IPv6Address(int(ipaddress.IPv6Address(t[0])) + t[1])),
    st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address),
    st.integers(0, 2**112 - 1).map(lambda v: ipaddress.IPv6Address((0xFF << 120) | v)))


def _reference_source(iface, dst, now):
    """What source_for answered when it asked ipaddress (before the numbers)."""
    want = dst.is_link_local or (dst.is_multicast and (dst.packed[1] & 0x0F) <= 2)
    candidates = [a for a in iface.addresses6 if a.ip.is_link_local == want]
    if not candidates:
        return None
    candidates.sort(key=lambda a: (not a.preferred(now), dst not in a.interface.network))
    return candidates[0].ip


@settings(max_examples=300, deadline=None)
@given(st.lists(_addresses, max_size=4), _destinations)
@example([("2001:db8:1::", 5, 64, False)], ipaddress.IPv6Address("ff02::1"))  # scope 2
@example([("2001:db8:1::", 5, 64, False)], ipaddress.IPv6Address("ff01::1"))  # scope 1
@example([("2001:db8:1::", 5, 64, False)], ipaddress.IPv6Address("ff05::1:3"))
@example([("2001:db8:1::", 5, 64, True), ("2001:db8:2::", 6, 48, False)],
         ipaddress.IPv6Address("2001:db8:1::9"))     # on-prefix but deprecated
@example([("2001:db8:1::", 5, 64, False), ("2001:db8:2::", 6, 48, False)],
         ipaddress.IPv6Address("2001:db8:2:ff::9"))  # the second's prefix matches
def test_source_selection_answers_as_ipaddress_did(addresses, dst):
    lab = Lab()
    iface = lab.add_node(Node(lab, "n")).add_interface()
    for prefix, host, length, deprecated in addresses:
        ip = ipaddress.IPv6Address(int(ipaddress.IPv6Address(prefix)) + host)
        if not iface.has_address(ip):
            iface.add_address(f"{ip}/{length}")
            if deprecated:
                iface.addresses6[-1].preferred_until_us = 0
    assert iface.source_for(dst) == _reference_source(iface, dst, lab.sim.now_us)
