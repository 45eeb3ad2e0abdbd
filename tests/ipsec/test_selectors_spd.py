"""Packet selectors (RFC 4301 §4.4.1.1, RFC 4877 §4.2) and the SPD's matching rules."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (HAO, ICMPv6DestUnreach, ICMPv6EchoRequest, IPv6,
                                IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting,
                                MIP6MH_BA, MIP6MH_BU, MIP6MH_HoTI, PadN)

from mip6lab.errors import MalformedPacket
from mip6lab.ipsec.selectors import MH_TYPES, packet_selectors
from mip6lab.ipsec.spd import (BYPASS, DISCARD, PROTECT, IPsecTemplate, SecurityPolicy,
                               SecurityPolicyDatabase, Selectors)

from ._util import CN6, COA6, HA4, HA6, HOA6, MN4, MN6

A = ipaddress.ip_address


def bu(coa=COA6, hoa=HOA6, ha=HA6) -> bytes:
    """A Binding Update from the care-of address with the HoA in a HAO (RFC 6275 §6.1.7)."""
    return bytes(IPv6(src=coa, dst=ha) / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)])
                 / MIP6MH_BU(seq=1, flags="AHK"))


def ba(coa=COA6, hoa=HOA6, ha=HA6) -> bytes:
    """A Binding Ack to the care-of address with the HoA in a type 2 routing header."""
    return bytes(IPv6(src=ha, dst=coa) / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[hoa])
                 / MIP6MH_BA(seq=1))


def udp6(src=MN6, dst=HA6, sport=40000, dport=9) -> bytes:
    return bytes(IPv6(src=src, dst=dst) / UDP(sport=sport, dport=dport) / b"x")


# -- packet_selectors ----------------------------------------------------------------------


def test_udp_and_tcp_ports():
    s = packet_selectors(udp6(sport=1234, dport=53))
    assert (s.src, s.dst, s.protocol, s.sport, s.dport) == (A(MN6), A(HA6), 17, 1234, 53)
    assert s.wire_src is None and s.wire_dst is None and s.mh_type is None
    t = packet_selectors(bytes(IP(src=MN4, dst=HA4) / TCP(sport=5555, dport=443)))
    assert (t.src, t.dst, t.protocol, t.sport, t.dport) == (A(MN4), A(HA4), 6, 5555, 443)
    assert t.icmp_type is None


def test_icmp_and_icmpv6_type_and_code():
    s = packet_selectors(bytes(IP(src=MN4, dst=HA4) / ICMP(type=3, code=4)))
    assert (s.protocol, s.icmp_type, s.icmp_code, s.sport) == (1, 3, 4, None)
    s = packet_selectors(bytes(IPv6(src=MN6, dst=HA6) / ICMPv6EchoRequest()))
    assert (s.protocol, s.icmp_type, s.icmp_code) == (58, 128, 0)
    s = packet_selectors(bytes(IPv6(src=MN6, dst=HA6) / ICMPv6DestUnreach(code=3)))
    assert (s.icmp_type, s.icmp_code) == (1, 3)


def test_upper_layer_found_after_extension_headers():
    packet = bytes(IPv6(src=MN6, dst=HA6) / IPv6ExtHdrHopByHop()
                   / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 4)])
                   / UDP(sport=7, dport=8))
    s = packet_selectors(packet)
    assert (s.protocol, s.sport, s.dport, s.src) == (17, 7, 8, A(MN6))


def test_binding_update_with_hao_is_from_the_home_address():
    s = packet_selectors(bu())
    assert s.src == A(HOA6)          # RFC 4877 §4.2: the HoA is the selector address
    assert s.wire_src == A(COA6)     # what the IP header says
    assert s.dst == A(HA6) and s.wire_dst is None
    assert (s.protocol, s.mh_type) == (135, MH_TYPES["BU"]) == (135, 5)


def test_binding_ack_with_type_2_routing_header_is_to_the_home_address():
    s = packet_selectors(ba())
    assert s.dst == A(HOA6)
    assert s.wire_dst == A(COA6)
    assert s.src == A(HA6) and s.wire_src is None
    assert (s.protocol, s.mh_type) == (135, 6)


def test_type_0_routing_header_does_not_change_the_destination():
    packet = bytes(IPv6(src=MN6, dst=HA6) / IPv6ExtHdrRouting(type=0, addresses=[CN6])
                   / UDP(sport=1, dport=2))
    s = packet_selectors(packet)
    assert s.dst == A(HA6) and s.wire_dst is None


def test_hoti_mh_type():
    s = packet_selectors(bytes(IPv6(src=HOA6, dst=CN6) / MIP6MH_HoTI()))
    assert s.mh_type == MH_TYPES["HoTI"] == 1


def test_malformed_inputs():
    good = bu()
    with pytest.raises(MalformedPacket):
        packet_selectors(b"")
    with pytest.raises(MalformedPacket):
        packet_selectors(good[:30])                      # IPv6 header cut
    with pytest.raises(MalformedPacket, match="extension header truncated"):
        packet_selectors(good[:40 + 10])                 # DestOpt cut
    bad_hao = bytearray(good)
    bad_hao[40 + 7] = 8                                  # HAO option length 8, not 16
    with pytest.raises(MalformedPacket, match="Home Address option"):
        packet_selectors(bytes(bad_hao))
    with pytest.raises(MalformedPacket):
        packet_selectors(bytes(IP(src=MN4, dst=HA4) / UDP())[:12])
    with pytest.raises(MalformedPacket):
        packet_selectors(b"\x42" + bytes(50))            # IPv4 with IHL 2
    with pytest.raises(MalformedPacket):
        packet_selectors(b"\x10" + bytes(50))            # version 1


def test_short_upper_layer_gives_no_ports():
    s = packet_selectors(bytes(IPv6(src=MN6, dst=HA6, nh=17)) + b"\x00\x07")
    assert s.protocol == 17 and s.sport is None and s.dport is None


# -- Selectors.matches ---------------------------------------------------------------------


def test_local_and_remote_both_ways():
    sel = Selectors.make(local=MN6, remote=HA6, protocol="udp", remote_port=9)
    out = packet_selectors(udp6(MN6, HA6, 40000, 9))
    back = packet_selectors(udp6(HA6, MN6, 9, 40000))
    assert sel.matches(out, outbound=True)
    assert sel.matches(back, outbound=False)        # inbound: local is the destination
    assert not sel.matches(out, outbound=False)     # the same packet arriving: reversed
    assert not sel.matches(back, outbound=True)
    assert not sel.matches(packet_selectors(udp6(MN6, HA6, 40000, 10)), outbound=True)


def test_prefixes_any_and_address_families():
    sel = Selectors.make(local="2001:db8:1::/48", remote="any")
    assert sel.local == ipaddress.ip_network("2001:db8:1::/48") and sel.remote is None
    assert sel.matches(packet_selectors(udp6(MN6, CN6)), True)
    assert not sel.matches(packet_selectors(udp6(CN6, MN6)), True)
    v4 = Selectors.make(local="0.0.0.0/0")
    assert not v4.matches(packet_selectors(udp6()), True)   # never across families
    assert v4.matches(packet_selectors(bytes(IP(src=MN4, dst=HA4) / UDP())), True)
    assert Selectors.make().matches(packet_selectors(udp6()), True)   # all ANY


def test_port_ranges():
    sel = Selectors.make(protocol="udp", remote_port=(1000, 2000))
    assert [sel.matches(packet_selectors(udp6(dport=p)), True)
            for p in (999, 1000, 1500, 2000, 2001)] == [False, True, True, True, False]
    local = Selectors.make(protocol=17, local_port=(5000, 5001))
    assert local.matches(packet_selectors(udp6(sport=5001, dport=1)), True)
    assert local.matches(packet_selectors(udp6(sport=1, dport=5000)), False)
    assert not local.matches(packet_selectors(udp6(sport=1, dport=5000)), True)
    # A port selector never matches a packet without ports.
    icmp = packet_selectors(bytes(IPv6(src=MN6, dst=HA6) / ICMPv6EchoRequest()))
    assert not Selectors.make(remote_port=(0, 65535)).matches(icmp, True)


def test_icmp_type_and_code_selectors():
    sel = Selectors.make(protocol="icmpv6", icmp_type=128)
    echo = packet_selectors(bytes(IPv6(src=MN6, dst=HA6) / ICMPv6EchoRequest()))
    unreach = packet_selectors(bytes(IPv6(src=MN6, dst=HA6) / ICMPv6DestUnreach(code=3)))
    assert sel.matches(echo, True) and not sel.matches(unreach, True)
    code = Selectors.make(protocol="icmpv6", icmp_type=1, icmp_code=4)
    assert not code.matches(unreach, True)
    assert Selectors.make(protocol="icmpv6", icmp_type=1, icmp_code=3).matches(unreach, True)


def test_rfc4877_mh_type_selectors_on_the_mobile_node():
    """RFC 4877 §7.2, MN: local = HoA, remote = HA, proto MH, local_mh_type = BU,
    remote_mh_type = BA. It covers the BU the MN sends and the BA it receives."""
    sel = Selectors.make(local=HOA6, remote=HA6, protocol="mh", local_mh_type="BU",
                         remote_mh_type="BA")
    assert (sel.local_mh_type, sel.remote_mh_type, sel.protocol) == (5, 6, 135)
    assert sel.matches(packet_selectors(bu()), outbound=True)
    assert sel.matches(packet_selectors(ba()), outbound=False)
    assert not sel.matches(packet_selectors(ba()), outbound=True)   # a BA the MN sent?
    assert not sel.matches(packet_selectors(bu()), outbound=False)  # a BU it received?
    # An MH packet of another type from the HoA does not match either.
    assert not sel.matches(packet_selectors(bytes(IPv6(src=HOA6, dst=HA6) / MIP6MH_HoTI())),
                           outbound=True)


def test_rfc4877_mh_type_selectors_on_the_home_agent():
    sel = Selectors.make(local=HA6, remote=HOA6, protocol="mh", local_mh_type="BA",
                         remote_mh_type="BU")
    assert sel.matches(packet_selectors(bu()), outbound=False)
    assert sel.matches(packet_selectors(ba()), outbound=True)
    assert not sel.matches(packet_selectors(bu()), outbound=True)


def test_one_sided_mh_type_selector():
    only_out = Selectors.make(protocol="mh", local_mh_type="BU")
    assert only_out.matches(packet_selectors(bu()), outbound=True)
    assert not only_out.matches(packet_selectors(bu()), outbound=False)
    assert Selectors.make(protocol="mh", local_mh_type=5) == only_out


def test_describe():
    sel = Selectors.make(local=HOA6, remote=HA6, protocol="mh", local_mh_type="BU",
                         remote_mh_type="BA", remote_port=(1, 2))
    text = sel.describe()
    for part in (f"local={HOA6}/128", f"remote={HA6}/128", "proto=mh", "remote_port=1-2",
                 "local_mh_type=BU", "remote_mh_type=BA"):
        assert part in text
    assert Selectors.make().describe() == "local=any remote=any"


# -- the SPD -------------------------------------------------------------------------------


def test_first_match_wins_and_position():
    spd = SecurityPolicyDatabase()
    broad = spd.add(SecurityPolicy(Selectors.make(remote=HA6), BYPASS, name="broad"))
    narrow = spd.add(SecurityPolicy(Selectors.make(remote=HA6, protocol="udp"), PROTECT,
                                    name="narrow"))
    packet = packet_selectors(udp6())
    assert spd.lookup(packet, True) is broad
    first = spd.add(SecurityPolicy(Selectors.make(remote=HA6, protocol="udp"), DISCARD,
                                   name="first"), position=0)
    assert spd.lookup(packet, True) is first
    assert [p.name for p in spd] == ["first", "broad", "narrow"]
    assert [p.index for p in spd] == [3, 1, 2]          # indexes are stable identities
    assert spd.remove(3) is first and spd.remove(3) is None
    assert spd.lookup(packet, True) is broad
    assert narrow.template is not None and narrow.template.mode == "transport"


def test_direction_limited_entries():
    spd = SecurityPolicyDatabase()
    out_only = spd.add(SecurityPolicy(Selectors.make(protocol="udp"), DISCARD, direction="out"))
    in_only = spd.add(SecurityPolicy(Selectors.make(protocol="udp"), BYPASS, direction="in"))
    packet = packet_selectors(udp6())
    assert spd.lookup(packet, outbound=True) is out_only
    assert spd.lookup(packet, outbound=False) is in_only
    with pytest.raises(ValueError):
        SecurityPolicy(Selectors(), BYPASS, direction="sideways")


def test_default_action_and_no_match():
    spd = SecurityPolicyDatabase()
    assert spd.default_action == DISCARD                 # RFC 4301 §4.4.1
    assert SecurityPolicyDatabase(BYPASS).default_action == BYPASS
    with pytest.raises(ValueError):
        SecurityPolicyDatabase(PROTECT)
    spd.add(SecurityPolicy(Selectors.make(remote=CN6), PROTECT))
    assert spd.lookup(packet_selectors(udp6()), True) is None
    with pytest.raises(ValueError):
        SecurityPolicy(Selectors(), "encrypt")


def test_hits_are_counted_on_the_first_match_only():
    spd = SecurityPolicyDatabase()
    a = spd.add(SecurityPolicy(Selectors.make(protocol="udp"), BYPASS))
    b = spd.add(SecurityPolicy(Selectors.make(), BYPASS))
    for _ in range(3):
        spd.lookup(packet_selectors(udp6()), True)
    spd.lookup(packet_selectors(udp6(HA6, MN6)), False)
    spd.lookup(packet_selectors(bu()), True)            # MH: not udp, so b
    assert a.hits == {"out": 3, "in": 1}
    assert b.hits == {"out": 1, "in": 0}


def test_mobile_node_spd_of_rfc4877():
    """The BU/BA transport entry first, then a tunnel entry for all HoA traffic."""
    spd = SecurityPolicyDatabase()
    bu_ba = spd.add(SecurityPolicy(
        Selectors.make(local=HOA6, remote=HA6, protocol="mh", local_mh_type="BU",
                       remote_mh_type="BA"),
        PROTECT, IPsecTemplate("transport", reqid=1), name="BU/BA"))
    payload = spd.add(SecurityPolicy(
        Selectors.make(local=HOA6, remote="any"),
        PROTECT, IPsecTemplate("tunnel", A(COA6), A(HA6), reqid=2), name="payload"))
    assert spd.lookup(packet_selectors(bu()), True) is bu_ba
    assert spd.lookup(packet_selectors(ba()), False) is bu_ba
    assert spd.lookup(packet_selectors(udp6(HOA6, CN6)), True) is payload
    assert spd.lookup(packet_selectors(udp6(COA6, CN6)), True) is None
    assert "ESP tunnel" in payload.describe() and f"{COA6}<->{HA6}" in payload.describe()


def test_table_and_find():
    spd = SecurityPolicyDatabase()
    spd.add(SecurityPolicy(Selectors.make(local=HOA6, remote=HA6, protocol="mh",
                                          local_mh_type="BU", remote_mh_type="BA"),
                           PROTECT, IPsecTemplate("transport", reqid=7), name="bu",
                           owner="mobility"))
    spd.add(SecurityPolicy(Selectors.make(protocol="icmpv6"), BYPASS, direction="in"))
    spd.lookup(packet_selectors(bu()), True)
    rows = spd.table()
    assert rows[0] == {"index": 1, "name": "bu", "direction": "both",
                       "selectors": rows[0]["selectors"], "action": "protect",
                       "template": "ESP transport reqid=7", "owner": "mobility",
                       "hits": {"out": 1, "in": 0}}
    assert "local_mh_type=BU" in rows[0]["selectors"]
    assert rows[1]["action"] == "bypass" and rows[1]["template"] is None
    assert rows[1]["direction"] == "in"
    assert [p.index for p in spd.find(action=BYPASS)] == [2]
    assert len(spd.flush()) == 2 and len(spd) == 0 and spd.table() == []
