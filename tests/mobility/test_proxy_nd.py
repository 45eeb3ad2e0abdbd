"""The home agent's proxy Neighbor Discovery on the home link (RFC 6275 §10.4.1)."""

import ipaddress

from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import Ether

from mip6lab.net.frames import solicited_node
from mip6lab.scenarios import create


def _registered():
    scenario = create("home-registration")
    scenario.lab.run(until=3.0)
    hoa = scenario.mobile.home_address
    assert hoa is not None and hoa in scenario.home_agent.cache
    return scenario, hoa


def _nas_from_ha(scenario, since_us: int):
    frames = [e.packet for e in scenario.lab.events
              if e.kind == "tx" and e.node == "ha" and e.time_us >= since_us and e.packet]
    return [Ether(f)[IPv6] for f in frames if ICMPv6ND_NA in Ether(f)]


def test_the_home_agent_answers_a_multicast_solicitation_for_a_home_address():
    scenario, hoa = _registered()
    ha = scenario.lab.nodes["ha"]
    assert solicited_node(hoa) in ha.interface("eth0").groups6()
    # the home router forgets where the HoA is: its next packet for it needs an NS,
    # sent to the HoA's solicited-node group
    hr = scenario.lab.nodes["hr"]
    hr.neighbors.flush(hr.interface("eth0"))
    since = scenario.lab.sim.now_us
    answered = len(scenario.data6.answered_at)
    scenario.lab.run(until=4.0)
    assert len(scenario.data6.answered_at) > answered + 5
    solicited = [na for na in _nas_from_ha(scenario, since)
                 if ipaddress.IPv6Address(na[ICMPv6ND_NA].tgt) == hoa]
    assert solicited, "the HA did not answer the home router's solicitation for the HoA"
    na = solicited[0]
    # §10.4.1: R clear, the HA's own address as source, its MAC as the target's
    assert na[ICMPv6ND_NA].R == 0 and na[ICMPv6ND_NA].S == 1
    assert ipaddress.IPv6Address(na.src) != hoa and ha.owns(ipaddress.IPv6Address(na.src))


def test_the_unsolicited_advertisement_has_the_rfc_flags():
    scenario, hoa = _registered()
    (na,) = [na for na in _nas_from_ha(scenario, 0)
             if ipaddress.IPv6Address(na[ICMPv6ND_NA].tgt) == hoa and na[ICMPv6ND_NA].S == 0]
    flags = na[ICMPv6ND_NA]
    assert (flags.R, flags.S, flags.O) == (0, 0, 1) and na.dst == "ff02::1"
    assert ipaddress.IPv6Address(na.src) != hoa


def test_a_unicast_solicitation_for_the_home_address_is_answered_not_tunnelled():
    scenario, hoa = _registered()
    hr = scenario.lab.nodes["hr"]
    hr_iface = hr.interface("eth0")
    ns = IPv6(src=str(hr_iface.link_local), dst=str(hoa), hlim=255) / ICMPv6ND_NS(tgt=str(hoa))
    tunnelled = scenario.home_agent.stats["tunnelled_out"]
    since = scenario.lab.sim.now_us
    hr.send_ip(ns, iface=hr_iface, nexthop=ipaddress.IPv6Address(hoa))
    scenario.lab.run(until=scenario.lab.now + 0.01)
    answers = [na for na in _nas_from_ha(scenario, since)
               if ipaddress.IPv6Address(na[ICMPv6ND_NA].tgt) == hoa and na[ICMPv6ND_NA].S]
    assert answers and answers[0].dst == str(hr_iface.link_local)
    assert scenario.home_agent.stats["tunnelled_out"] == tunnelled


def test_the_group_is_left_when_the_binding_goes():
    scenario = create("return-home")
    scenario.run()
    ha = scenario.lab.nodes["ha"]
    hoa = scenario.mobile.home_address
    assert hoa not in scenario.home_agent.cache
    assert solicited_node(hoa) not in ha.interface("eth0").joined


def test_a_bu_without_the_h_flag_is_discarded_and_counted():
    from mip6lab.wire.mip6 import build_bu

    scenario, hoa = _registered()
    ha, mn = scenario.lab.nodes["ha"], scenario.lab.nodes["mn"]
    entry = scenario.home_agent.cache.get(hoa)
    bu = build_bu(str(hoa), str(scenario.mobile.care_of_address), str(ha.interface("eth0")
                  .ipv6()[0]), (entry.sequence_number + 5) % 65536, 40, h=False)
    mn.route_out(bytes(bu))
    scenario.lab.run(until=scenario.lab.now + 0.05)
    assert scenario.home_agent.stats["correspondent_bu"] == 1
    assert scenario.home_agent.cache.get(hoa).sequence_number == entry.sequence_number
