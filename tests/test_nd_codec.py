"""Neighbor Discovery on bytes against scapy (RFC 4861 §4).

:mod:`mip6lab.wire.nd_codec` builds the RS, NS and NA a node sends and reads the RA, NS
and NA it receives; scapy's layers are what the trace at level ``full`` and the notebooks
show. Checked here:

- every message built on bytes is octet for octet the one scapy builds from the same
  values;
- what :func:`read_nd` reads of a message -- the router's RAs, random NS/NA, and
  mutated ones -- is what scapy's dissection says, and whatever it does not read
  exactly (an option of another type or length, a cut message) it leaves alone (None)
  for the node's scapy path.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_RS,
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptPrefixInfo,
                                ICMPv6NDOptSrcLLAddr, IPv6)

from mip6lab.net.frames import options_of
from mip6lab.wire import nd_codec as nd

ipv6 = st.binary(min_size=16, max_size=16).map(ipaddress.IPv6Address)
mac = st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":"))


@settings(max_examples=300, deadline=None)
@given(ipv6, ipv6, ipv6, mac, st.booleans(), st.booleans(), st.booleans())
def test_na_ns_rs_are_scapys_octets(src, dst, target, lladdr, r, s, o):
    assert nd.neighbor_advertisement(src, dst, target, lladdr, r=r, s=s, o=o) == bytes(
        IPv6(src=str(src), dst=str(dst), hlim=255)
        / ICMPv6ND_NA(tgt=str(target), R=int(r), S=int(s), O=int(o))
        / ICMPv6NDOptDstLLAddr(lladdr=lladdr))
    assert nd.neighbor_solicitation(src, dst, target, lladdr) == bytes(
        IPv6(src=str(src), dst=str(dst), hlim=255) / ICMPv6ND_NS(tgt=str(target))
        / ICMPv6NDOptSrcLLAddr(lladdr=lladdr))
    assert nd.router_solicitation(src, dst, lladdr) == bytes(
        IPv6(src=str(src), dst=str(dst), hlim=255) / ICMPv6ND_RS()
        / ICMPv6NDOptSrcLLAddr(lladdr=lladdr))


def _scapy_reading(l3: bytes) -> tuple:
    ip6 = IPv6(l3)
    icmp = ip6.payload
    source = icmp[ICMPv6NDOptSrcLLAddr].lladdr if ICMPv6NDOptSrcLLAddr in icmp else None
    target = icmp[ICMPv6NDOptDstLLAddr].lladdr if ICMPv6NDOptDstLLAddr in icmp else None
    prefixes = [(p.prefixlen, p.L, p.A, p.validlifetime, p.preferredlifetime, p.prefix)
                for p in options_of(icmp, ICMPv6NDOptPrefixInfo)]
    return (icmp.type, ipaddress.IPv6Address(ip6.src), ip6.hlim,
            icmp.routerlifetime if isinstance(icmp, ICMPv6ND_RA) else 0,
            None if isinstance(icmp, ICMPv6ND_RA) else ipaddress.IPv6Address(icmp.tgt),
            source, target, prefixes)


def _codec_reading(message: nd.NdMessage) -> tuple:
    return (message.type, ipaddress.IPv6Address(message.source), message.hop_limit,
            message.router_lifetime,
            None if message.target is None else ipaddress.IPv6Address(message.target),
            message.source_lladdr, message.target_lladdr,
            [(p.prefixlen, p.L, p.A, p.validlifetime, p.preferredlifetime, p.prefix)
             for p in message.prefixes])


_prefix = st.builds(
    lambda net, plen, l, a, valid, preferred: ICMPv6NDOptPrefixInfo(
        prefix=str(net), prefixlen=plen, L=l, A=a, validlifetime=valid,
        preferredlifetime=preferred),
    ipv6, st.integers(0, 255), st.integers(0, 1), st.integers(0, 1),
    st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))


@st.composite
def _messages(draw) -> bytes:
    src, dst, target = draw(ipv6), draw(ipv6), draw(ipv6)
    kind = draw(st.sampled_from(["ra", "ns", "na"]))
    ip6 = IPv6(src=str(src), dst=str(dst), hlim=draw(st.sampled_from([255, 64, 1])))
    if kind == "ra":
        packet = ip6 / ICMPv6ND_RA(routerlifetime=draw(st.integers(0, 65535)),
                                   H=draw(st.integers(0, 1)))
    elif kind == "ns":
        packet = ip6 / ICMPv6ND_NS(tgt=str(target))
    else:
        packet = ip6 / ICMPv6ND_NA(tgt=str(target), R=draw(st.integers(0, 1)),
                                   S=draw(st.integers(0, 1)), O=draw(st.integers(0, 1)))
    for option in draw(st.lists(st.one_of(
            mac.map(lambda m: ICMPv6NDOptSrcLLAddr(lladdr=m)),
            mac.map(lambda m: ICMPv6NDOptDstLLAddr(lladdr=m)), _prefix), max_size=4)):
        packet /= option
    return bytes(packet)


@settings(max_examples=500, deadline=None)
@given(_messages())
def test_what_read_nd_reads_is_what_scapy_reads(l3):
    message = nd.read_nd(l3)
    assert message is not None
    assert _codec_reading(message) == _scapy_reading(l3)


@settings(max_examples=1500, deadline=None)
@given(_messages(), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)),
                             min_size=1, max_size=3), st.integers(0, 40))
def test_mutated_nd_is_read_as_scapy_reads_it_or_left_to_scapy(l3, edits, cut):
    raw = bytearray(l3)
    for position, value in edits:
        raw[40 + position % (len(raw) - 40)] = value
    raw = bytes(raw[:max(40, len(raw) - cut)])
    message = nd.read_nd(raw)
    if message is not None:
        assert _codec_reading(message) == _scapy_reading(raw)


def test_unusual_options_are_left_to_scapy():
    ns = bytearray(nd.neighbor_solicitation("fe80::1", "ff02::1:ff00:1", "2001:db8::1",
                                            "02:00:00:00:00:01"))
    assert nd.read_nd(bytes(ns)) is not None
    for change in ({65: 2}, {64: 9}, {65: 0}):        # length 2, unknown type, length 0
        bad = bytearray(ns)
        for where, value in change.items():
            bad[where] = value
        assert nd.read_nd(bytes(bad)) is None
    assert nd.read_nd(bytes(ns[:-1])) is None               # the option cut short
    assert nd.read_nd(bytes(ns[:60])) is None               # the target cut short
