"""Router discovery, SLAAC and movement detection of a Host.

Topology (tests/_topologies.py)::

    host --[lan_a]-- r --[lan_b]        r advertises 2001:db8:a::/64 on lan_a
                     |                  and 2001:db8:b::/64 on lan_b
                  [dmz]-- server 2001:db8:c::10
"""

from __future__ import annotations

import ipaddress

import pytest
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.layers.l2 import Ether

from _topologies import (
    PREFIX_A,
    PREFIX_B,
    SERVER6,
    drops,
    ping_ok,
    slaac_address,
    slaac_lab,
    states,
)
from mip6lab.net.frames import interface_id_from_mac
from mip6lab.net.node import Node
from mip6lab.net.router import MAX_RA_DELAY_TIME
from mip6lab.net.slaac import Movement

ALL_NODES_MAC = "33:33:00:00:00:01"


def _slaac(host):
    return [a for a in host.interface().addresses6 if a.origin == "slaac"]


def _ra_routes(host):
    return [r for r in host.routes.routes if r.origin == "ra"]


def _configured(lab, prefix):
    host = lab.nodes["host"]
    return lambda _: any(a.ip in prefix for a in _slaac(host))


def _movements(lab):
    return states(lab, node="host", module="movement")


def test_address_from_prefix_and_eui64_and_default_route():
    lab = slaac_lab()
    host, r = lab.nodes["host"], lab.nodes["r"]
    assert _slaac(host) == [] and host.routes.lookup(ipaddress.ip_address(SERVER6)) is None
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)

    [address] = _slaac(host)
    mac = host.interface().mac
    # prefix + modified EUI-64: the MAC with the U/L bit flipped and ff:fe in the middle
    assert address.ip == ipaddress.IPv6Address("2001:db8:a::5eff:fe00:5") == \
        slaac_address(lab, PREFIX_A)
    assert int(address.ip) & (2**64 - 1) == interface_id_from_mac(mac)
    assert mac == "02:00:5e:00:00:05"  # so the literal above is the EUI-64 of this MAC
    assert address.interface.network == PREFIX_A
    # lifetimes from the RA (defaults: 86400 s valid, 14400 s preferred)
    formed = next(e for e in states(lab, node="host", module="slaac")
                  if e.summary.startswith("formed"))
    assert address.valid_until_us == formed.time_us + 86_400_000_000
    assert address.preferred_until_us == formed.time_us + 14_400_000_000
    assert formed.data == {"interface": "eth0", "address": str(address.ip),
                           "prefix": str(PREFIX_A)}

    [route] = _ra_routes(host)
    assert route.network == ipaddress.IPv6Network("::/0")
    assert route.gateway == r.interface("eth0").link_local
    assert host.routes.lookup(ipaddress.ip_address(SERVER6)) is route
    assert ping_ok(lab, "host", SERVER6)
    assert lab.errors == []


def test_router_solicitation_on_link_up_is_answered():
    # RAs only every 200-600 s: without the RS the host would wait minutes.
    lab = slaac_lab(interval=(200, 600))
    host, r = lab.nodes["host"], lab.nodes["r"]
    unsolicited_at = r.advertising["eth0"].timer.time_us
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)

    frames = lab.trace.filter(kind="tx", link="lan_a")
    [rs] = [e for e in frames if ICMPv6ND_RS in Ether(e.packet)]
    assert rs.node == "host"
    rs_ip = Ether(rs.packet)[IPv6]
    assert (rs_ip.dst, rs_ip.hlim, rs_ip.src) == ("ff02::2", 255,
                                                  str(host.interface().link_local))
    assert rs.time < host.slaac.solicitation_delay
    [ra] = [e for e in frames if ICMPv6ND_RA in Ether(e.packet)]
    assert ra.node == "r" and Ether(ra.packet)[IPv6].hlim == 255
    # the RA answers the RS: within MAX_RA_DELAY_TIME of it, long before the schedule
    assert 0 < ra.time_us - rs.time_us <= (MAX_RA_DELAY_TIME + 0.002) * 1e6
    assert ra.time_us < unsolicited_at
    assert lab.errors == []


def test_solicitations_stop_after_max_when_no_router_answers():
    lab = slaac_lab(advertise_b=False)
    lab.move("host", "lan_b")       # a link whose router interface does not advertise
    host = lab.nodes["host"]
    lab.run(until=30)
    rss = [e for e in lab.trace.filter(kind="tx", node="host", link="lan_b")
           if ICMPv6ND_RS in Ether(e.packet)]
    assert len(rss) == host.slaac.max_solicitations == 3
    gaps = [b.time - a.time for a, b in zip(rss, rss[1:])]
    assert gaps == pytest.approx([host.slaac.solicitation_interval] * 2)
    assert any(e.summary == "no router answered on eth0"
               for e in states(lab, node="host", module="slaac"))
    assert _slaac(host) == [] and _ra_routes(host) == []


def test_moving_changes_address_route_and_reports_movement():
    lab = slaac_lab()
    host, r = lab.nodes["host"], lab.nodes["r"]
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)
    old = slaac_address(lab, PREFIX_A)
    new = slaac_address(lab, PREFIX_B)
    mark = len(lab.trace)

    lab.move("host", "lan_b")
    # Leaving: the address and default router of lan_a go at once.
    assert _slaac(host) == [] and _ra_routes(host) == []
    gone = [e.summary for e in states(lab, node="host") if e.index >= mark]
    assert f"removed {old} from eth0: its link is gone" in gone
    assert "default router on eth0 forgotten" in gone

    assert lab.run_until(_configured(lab, PREFIX_B), timeout=5)
    assert [a.ip for a in _slaac(host)] == [new]
    [route] = _ra_routes(host)
    assert route.gateway == r.interface("eth1").link_local
    # An RS went out on the new link.
    assert any(ICMPv6ND_RS in Ether(e.packet)
               for e in lab.trace.filter(kind="tx", node="host", link="lan_b"))

    first, moved = _movements(lab)
    assert first.data["moved"] is False and first.data["new"] == [str(PREFIX_A)]
    assert moved.data == {"interface": "eth0", "moved": True, "old": [str(PREFIX_A)],
                          "new": [str(PREFIX_B)]}
    assert moved.summary.startswith("movement detected on eth0")
    assert lab.errors == []


def test_moving_back_is_movement_again():
    lab = slaac_lab()
    host = lab.nodes["host"]
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)
    lab.move("host", "lan_b")
    assert lab.run_until(_configured(lab, PREFIX_B), timeout=5)
    lab.move("host", "lan_a")
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)

    assert [a.ip for a in _slaac(host)] == [slaac_address(lab, PREFIX_A)]
    moves = [(e.data["moved"], e.data["old"], e.data["new"]) for e in _movements(lab)]
    assert moves == [(False, [], [str(PREFIX_A)]),
                     (True, [str(PREFIX_A)], [str(PREFIX_B)]),
                     (True, [str(PREFIX_B)], [str(PREFIX_A)])]


def test_reattaching_to_the_same_link_is_not_movement():
    lab = slaac_lab()
    host = lab.nodes["host"]
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)
    iface = host.interface()
    host.detach(iface)
    assert _slaac(host) == []
    host.attach(iface, lab.links["lan_a"])
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)
    last = _movements(lab)[-1]
    assert last.data["moved"] is False
    assert "no movement" in last.summary


def test_on_movement_and_on_address_callbacks():
    lab = slaac_lab()
    host, r = lab.nodes["host"], lab.nodes["r"]
    movements: list[Movement] = []
    addresses: list[tuple[str, ipaddress.IPv6Address, bool]] = []
    host.slaac.on_movement.append(movements.append)
    host.slaac.on_address.append(lambda iface, a, up: addresses.append((iface.name, a, up)))

    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)
    lab.move("host", "lan_b")
    assert lab.run_until(_configured(lab, PREFIX_B), timeout=5)

    a, b = slaac_address(lab, PREFIX_A), slaac_address(lab, PREFIX_B)
    assert addresses == [("eth0", a, True), ("eth0", a, False), ("eth0", b, True)]
    assert [m.moved for m in movements] == [False, True]
    m = movements[1]
    assert (m.interface, m.link) == ("eth0", "lan_b")
    assert m.old_prefixes == frozenset({PREFIX_A})
    assert m.new_prefixes == frozenset({PREFIX_B})
    assert m.router == r.interface("eth1").link_local


def test_short_valid_lifetime_expires():
    # One RA (the answer to the RS), then none for 200 s: nothing refreshes the address.
    lab = slaac_lab(interval=(200, 600),
                    ra_options={"valid_lifetime": 5, "preferred_lifetime": 3})
    host = lab.nodes["host"]
    addresses = []
    host.slaac.on_address.append(lambda iface, a, up: addresses.append((a, up)))
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)
    [entry] = _slaac(host)
    formed = lab.now
    assert entry.valid_until_us == round(formed * 1e6) + 5_000_000
    assert entry.preferred(host.sim.now_us)

    lab.run(until=formed + 3.5)   # deprecated, still valid
    assert _slaac(host) == [entry] and not entry.preferred(host.sim.now_us)
    lab.run(until=formed + 4.999)
    assert _slaac(host) == [entry]
    lab.run(until=formed + 5.0)
    assert _slaac(host) == []
    [gone] = [e for e in states(lab, node="host", module="slaac")
              if e.summary.startswith("removed")]
    assert gone.summary == f"removed {entry.ip} from eth0: valid lifetime ended"
    assert gone.time_us == entry.valid_until_us
    assert addresses == [(entry.ip, True), (entry.ip, False)]
    assert host.interface().source_for(ipaddress.ip_address(SERVER6)) is None


def test_periodic_ras_keep_a_short_lifetime_alive():
    lab = slaac_lab(ra_options={"valid_lifetime": 5, "preferred_lifetime": 3})
    host = lab.nodes["host"]
    lab.run(until=20)
    [entry] = _slaac(host)
    assert entry.valid_until_us > host.sim.now_us
    assert not [e for e in states(lab, node="host", module="slaac")
                if "valid lifetime ended" in e.summary]


# -- RA validation (RFC 4861 §6.1.2) -------------------------------------------------------


def _rogue(lab):
    x = lab.add_node(Node(lab, "x"))
    lab.connect(x, "lan_a")
    return x


def _forged_ra(x, *, src=None, hlim=255, prefix="2001:db8:f::", prefixlen=64, **opts):
    iface = x.interface()
    return bytes(Ether(src=iface.mac, dst=ALL_NODES_MAC)
                 / IPv6(src=src or str(iface.link_local), dst="ff02::1", hlim=hlim)
                 / ICMPv6ND_RA(routerlifetime=1800)
                 / ICMPv6NDOptSrcLLAddr(lladdr=iface.mac)
                 / ICMPv6NDOptPrefixInfo(prefix=prefix, prefixlen=prefixlen, **opts))


@pytest.mark.parametrize("forgery, reason", [
    ({"hlim": 64}, "RA with hop limit 64, not 255"),
    ({"hlim": 254}, "RA with hop limit 254, not 255"),
    ({"src": "2001:db8:a::99"}, "RA from 2001:db8:a::99, not a link-local address"),
])
def test_invalid_ra_is_dropped(forgery, reason):
    lab = slaac_lab()
    host = lab.nodes["host"]
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)
    x = _rogue(lab)
    before_routes = list(host.routes.routes)
    mark = len(lab.trace)
    x.interface().link.transmit(x.interface(), _forged_ra(x, **forgery), ALL_NODES_MAC)
    lab.run(until=lab.now + 0.01)

    [drop] = drops(lab, mark, node="host")
    assert drop.reason == reason and drop.module == "ip" and drop.link == "lan_a"
    assert [a.ip for a in _slaac(host)] == [slaac_address(lab, PREFIX_A)]
    assert host.routes.routes == before_routes
    assert lab.errors == []


def test_valid_ra_from_a_second_router_is_used():
    """The control for the test above: the same RA with hop limit 255 is accepted."""
    lab = slaac_lab()
    host = lab.nodes["host"]
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)
    x = _rogue(lab)
    x.interface().link.transmit(x.interface(), _forged_ra(x), ALL_NODES_MAC)
    lab.run(until=lab.now + 0.01)
    assert slaac_address(lab, ipaddress.IPv6Network("2001:db8:f::/64")) in \
        [a.ip for a in _slaac(host)]


@pytest.mark.parametrize("options, why", [
    ({"prefixlen": 48}, "SLAAC needs a /64"),
    ({"prefixlen": 200}, "prefix length over 128"),
    ({"validlifetime": 10, "preferredlifetime": 20}, None),
    ({"A": 0}, None),
    ({"prefix": "fe80::", "prefixlen": 64}, None),
])
def test_unusable_prefix_options_are_ignored(options, why):
    lab = slaac_lab()
    host = lab.nodes["host"]
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)
    x = _rogue(lab)
    mark = len(lab.trace)
    x.interface().link.transmit(x.interface(), _forged_ra(x, **options), ALL_NODES_MAC)
    lab.run(until=lab.now + 0.01)
    assert [a.ip for a in _slaac(host)] == [slaac_address(lab, PREFIX_A)]
    notes = [e.summary for e in states(lab, node="host", module="slaac")
             if e.index >= mark and "ignored" in e.summary]
    if why is None:
        assert notes == []
    else:
        assert len(notes) == 1 and why in notes[0]
    assert drops(lab, mark, node="host") == [] and lab.errors == []


def test_zero_valid_lifetime_removes_the_address():
    lab = slaac_lab(interval=(200, 600))
    host, r = lab.nodes["host"], lab.nodes["r"]
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)
    r.advertising["eth0"].valid_lifetime = 0
    r.advertising["eth0"].preferred_lifetime = 0
    r.send_ra("eth0")
    lab.run(until=lab.now + 0.01)
    assert _slaac(host) == []
    assert any(e.summary.endswith("valid lifetime 0")
               for e in states(lab, node="host", module="slaac"))


def test_router_lifetime_zero_withdraws_the_default_route():
    lab = slaac_lab(interval=(200, 600))
    host, r = lab.nodes["host"], lab.nodes["r"]
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)
    assert _ra_routes(host)
    r.advertising["eth0"].router_lifetime = 0
    r.send_ra("eth0")
    lab.run(until=lab.now + 0.01)
    assert _ra_routes(host) == []
    assert _slaac(host)  # the address stays: only the router withdrew


def test_ping_works_from_the_new_address_after_moving():
    lab = slaac_lab()
    host = lab.nodes["host"]
    assert lab.run_until(_configured(lab, PREFIX_A), timeout=5)
    assert ping_ok(lab, "host", SERVER6, seq=1)
    lab.move("host", "lan_b")
    assert lab.run_until(_configured(lab, PREFIX_B), timeout=5)
    mark = len(lab.trace)
    assert ping_ok(lab, "host", SERVER6, seq=2)

    new = str(slaac_address(lab, PREFIX_B))
    assert str(host.interface().source_for(ipaddress.ip_address(SERVER6))) == new
    sent = [Ether(e.packet)[IPv6] for e in lab.trace.filter(kind="tx", link="lan_b")
            if e.index >= mark and ICMPv6EchoRequest in Ether(e.packet)]
    assert [ip.src for ip in sent] == [new]
    arrived = [Ether(e.packet)[IPv6] for e in lab.trace.filter(kind="rx", node="server")
               if e.index >= mark and ICMPv6EchoRequest in Ether(e.packet)]
    assert [ip.src for ip in arrived] == [new]
    assert lab.errors == []


def test_same_seed_replays_the_same_slaac_run():
    def run(seed):
        lab = slaac_lab(seed=seed)
        lab.run(until=3)
        lab.move("host", "lan_b")
        lab.run(until=6)
        return [(e.time_us, e.node, e.kind, e.summary) for e in lab.trace.events]

    assert run(9) == run(9)
    assert run(9) != run(10)
