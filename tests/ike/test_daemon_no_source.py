"""An IKE daemon with no address to start from does not start IKE (issue 14, found by
fuzzing a DSMIP6/NAT run: an ACQUIRE for the home agent's IPv4 address came while the
mobile node had no IPv4 care-of address yet, and ``IkeSa`` was made with ``local=None``)."""

from __future__ import annotations

import ipaddress

from mip6lab.ikev2.config import IkeConfig
from mip6lab.ikev2.daemon import IkeDaemon
from mip6lab.ipsec import KeyMessage
from mip6lab.net.lab import Lab

HA6, HA4 = "2001:db8:2::1", "192.0.2.2"


def lab_v6_only() -> Lab:
    def build(lab):
        lab.add_link("lan")
        mn = lab.add_host("mn")
        lab.connect(mn, "lan", addresses=["2001:db8:2::10/64"])      # no IPv4 address
        lab.mnd = IkeDaemon(mn, IkeConfig.make("mn@mip6lab.example", "psk-0123",
                                               "ha.mip6lab.example"))
    return Lab(seed=1, build=build)


def test_no_source_address_no_ike_sa_and_a_trace_event():
    lab = lab_v6_only()
    assert lab.mnd.initiate(HA4) is None
    assert lab.mnd.sas == {}
    (event,) = [e for e in lab.trace.filter(node="mn") if e.data.get("error") == "no_source"]
    assert HA4 in event.summary
    assert lab.errors == []
    # with an address of that family, the same call starts IKE
    lab.nodes["mn"].interface("eth0").add_address("192.0.2.10/24")
    sa = lab.mnd.initiate(HA4)
    assert sa is not None and sa.local == ipaddress.ip_address("192.0.2.10")


def test_an_acquire_towards_an_unreachable_family_is_no_crash():
    lab = lab_v6_only()
    mn = lab.nodes["mn"]
    mn.ipsec.engine.notify(KeyMessage("ACQUIRE", src=ipaddress.ip_address("2001:db8:2::10"),
                                      dst=ipaddress.ip_address(HA4)), only_registered=True)
    lab.run(until=1.0)
    assert lab.mnd.sas == {} and lab.errors == []
    assert any(e.data.get("error") == "no_source" for e in lab.trace.filter(node="mn"))
