"""The care-of address a home agent binds: the protected one, and only a usable one.

Two findings of an outside probe (issue 15):

- ESP in transport mode does not cover the outer IPv6 source of a Binding Update. With
  the source of a genuine sealed BU rewritten on the path, the HA bound the home address
  there. RFC 4877 §4.1 (and RFC 3776 §4.1): "Mobile IPv6 implementations MUST use the
  Alternate Care-of Address mobility option in Binding Updates" -- the care-of address
  travels inside the protected BU, and the HA takes it from there (RFC 6275 §11.7.1).
- The HA stored 0.0.0.0, 255.255.255.255, 127.0.0.1, 224.0.0.1 and its own address as an
  IPv4 care-of address. RFC 6275 §6.1.7: "Binding Updates for a care-of address that is
  not a unicast routable address MUST be silently discarded" (RFC 5555 has no status of
  its own for a bad IPv4 care-of address).
"""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet6 import MIP6OptAltCoA

from mip6lab.inspection import KeyRing
from mip6lab.scenarios import create
from mip6lab.scenarios.mobility import HA4, HA6
from mip6lab.wire.mip6 import (DSMIP6_UDP_PORT, MIP6OptIPv4CareOfAddress,
                               MIP6OptIPv4HomeAddress, build_bu)
from mip6lab.mobility.tunnel import TunnelEndpoint, encapsulate

from .test_attacks import bu_sa, protect, registered, run_a_little

EVE = "2001:db8:a1::e7e"


def _sealed_bu(scenario, *, alternate: str | None, source: str | None = None) -> bytes:
    """A BU for the MN's HoA, sealed with the MN's own BU/BA SA; its outer source then
    set to ``source`` (what a router on the path can do: ESP does not cover it)."""
    mobile, mn = scenario.mobile, scenario.lab.nodes["mn"]
    hoa, coa = mobile.home_address, mobile.care_of_address
    seq = (scenario.home_agent.cache.get(hoa).sequence_number + 1) % 65536
    options = [] if alternate is None else [MIP6OptAltCoA(acoa=alternate)]
    sealed = bytearray(protect(bu_sa(mn, "out"), bytes(build_bu(str(hoa), str(coa), HA6, seq,
                                                                60, options=options))))
    if source is not None:
        sealed[8:24] = ipaddress.IPv6Address(source).packed
    return bytes(sealed)


def _send(scenario, packet: bytes) -> list:
    start = len(scenario.lab.events)
    assert scenario.lab.nodes["mn"].route_out(packet, protect=False)
    run_a_little(scenario)
    return scenario.lab.events[start:]


def test_the_mobile_node_puts_its_care_of_address_inside_the_protected_bu():
    scenario = registered()
    keys = KeyRing(scenario.lab)
    bus = [e for e in scenario.lab.events if e.kind == "tx" and e.node == "mn"
           and (opened := keys.open_esp(e.packet)) is not None and opened.packet is not None
           and MIP6OptAltCoA in opened.packet]
    assert bus, "no BU of the MN carried an Alternate Care-of Address option"
    inner = keys.open_esp(bus[0].packet).packet
    assert ipaddress.IPv6Address(inner[MIP6OptAltCoA].acoa) == scenario.mobile.care_of_address


def test_a_rewritten_outer_source_is_refused_and_the_binding_unchanged():
    scenario = registered()
    ha, hoa = scenario.home_agent, scenario.mobile.home_address
    before, sent = ha.cache.get(hoa), ha.stats["ba_sent"]
    coa = str(scenario.mobile.care_of_address)
    events = _send(scenario, _sealed_bu(scenario, alternate=coa, source=EVE))
    # ESP accepted it (its ICV does not cover the outer header): the mobility check stops it
    assert any(e.node == "ha" and e.module == "ipsec" and "accepted by mip6-bu-" in e.summary
               for e in events)
    drops = [e for e in events if e.node == "ha" and e.kind == "drop" and e.module == "mip6"]
    assert len(drops) == 1 and "rewritten on the path" in drops[0].reason
    assert EVE in drops[0].reason and coa in drops[0].reason
    assert ha.cache.get(hoa) == before and ha.stats["invalid_coa"] == 1
    assert ha.stats["ba_sent"] == sent                     # nothing answered to EVE
    assert scenario.lab.errors == []


def test_the_same_bu_not_rewritten_is_accepted():
    """Control: the harness's BU, its source left alone, moves the binding on."""
    scenario = registered()
    ha, hoa = scenario.home_agent, scenario.mobile.home_address
    before = ha.cache.get(hoa)
    _send(scenario, _sealed_bu(scenario, alternate=str(scenario.mobile.care_of_address)))
    assert ha.cache.get(hoa).sequence_number == (before.sequence_number + 1) % 65536
    assert ha.stats["invalid_coa"] == 0


def test_a_protected_bu_without_the_alternate_care_of_address_is_refused():
    scenario = registered()
    ha, hoa = scenario.home_agent, scenario.mobile.home_address
    before = ha.cache.get(hoa)
    events = _send(scenario, _sealed_bu(scenario, alternate=None))
    drops = [e for e in events if e.node == "ha" and e.kind == "drop" and e.module == "mip6"]
    assert len(drops) == 1 and "without an Alternate Care-of Address" in drops[0].reason
    assert ha.cache.get(hoa) == before


@pytest.mark.parametrize("alternate", ["::", "::1", "ff02::1", "fe80::1", "::ffff:192.0.2.9",
                                       HA6], ids=["unspecified", "loopback", "multicast",
                                                  "link-local", "ipv4-mapped", "own"])
def test_an_unusable_ipv6_care_of_address_is_refused(alternate):
    scenario = registered()
    ha, hoa = scenario.home_agent, scenario.mobile.home_address
    before = ha.cache.get(hoa)
    # the outer source agrees with the option, as a sender of such a BU would make it
    # (but no router forwards a multicast source: that one keeps the MN's)
    source = None if ipaddress.ip_address(alternate).is_multicast else alternate
    events = _send(scenario, _sealed_bu(scenario, alternate=alternate, source=source))
    drops = [e for e in events if e.node == "ha" and e.kind == "drop" and e.module == "mip6"
             and "discarded" in (e.reason or "")]
    assert len(drops) == 1, [e.summary for e in events if e.node == "ha"]
    assert ha.cache.get(hoa) == before


# -- the IPv4 care-of address of DSMIP6 ------------------------------------------------------


def _dsmip6_registered():
    scenario = create("dsmip6-v4")
    scenario.lab.run(until=3.0)
    assert scenario.mobile.registered is not None
    return scenario


def _send_v4coa(scenario, v4coa: str) -> list:
    """A BU from the MN's real IPv4 care-of address, sealed with its own SA, naming
    ``v4coa`` in its IPv4 CoA option (RFC 5555 §3.1.2), in IPv4/UDP 4191 (§4.1)."""
    mobile, mn = scenario.mobile, scenario.lab.nodes["mn"]
    hoa = mobile.home_address
    seq = (scenario.home_agent.cache.get(hoa).sequence_number + 1) % 65536
    bu = build_bu(str(hoa), None, HA6, seq, 60, options=[
        MIP6OptIPv4HomeAddress(hoa=str(mobile.ipv4_home_address)),
        MIP6OptIPv4CareOfAddress(coa=v4coa)])
    sealed = protect(bu_sa(mn, "out"), bytes(bu))
    real = mobile.care_of_address
    packet = encapsulate(sealed, TunnelEndpoint(real, ipaddress.IPv4Address(HA4),
                                                (DSMIP6_UDP_PORT, DSMIP6_UDP_PORT)))
    return _send(scenario, packet)


@pytest.mark.parametrize("v4coa", ["0.0.0.0", "255.255.255.255", "127.0.0.1", "224.0.0.1",
                                   HA4, "169.254.1.1"])
def test_an_unusable_ipv4_care_of_address_is_refused(v4coa):
    scenario = _dsmip6_registered()
    ha, hoa = scenario.home_agent, scenario.mobile.home_address
    before = ha.cache.get(hoa)
    events = _send_v4coa(scenario, v4coa)
    drops = [e for e in events if e.node == "ha" and e.kind == "drop" and e.module == "mip6"]
    assert len(drops) == 1 and v4coa in drops[0].reason, [e.summary for e in events
                                                            if e.node == "ha"]
    assert ha.cache.get(hoa) == before and ha.stats["invalid_coa"] == 1
    assert scenario.lab.errors == []


def test_a_usable_ipv4_care_of_address_is_still_accepted():
    """Control: the same crafted BU naming the MN's own IPv4 care-of address."""
    scenario = _dsmip6_registered()
    ha, hoa = scenario.home_agent, scenario.mobile.home_address
    before = ha.cache.get(hoa)
    _send_v4coa(scenario, str(scenario.mobile.care_of_address))
    after = ha.cache.get(hoa)
    assert after.sequence_number == (before.sequence_number + 1) % 65536
    assert after.ipv4_care_of_address == scenario.mobile.care_of_address
    assert ha.stats["invalid_coa"] == 0
