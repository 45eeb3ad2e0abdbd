"""The real-socket driver (mip6lab.ikev2.udp) on loopback: our initiator and our
responder on 127.0.0.1 / 127.0.0.2, UDP 500 (so root), the responder in a thread."""

from __future__ import annotations

import threading

from mip6lab.ikev2 import udp
from mip6lab.ikev2.config import IkeConfig
from mip6lab.ikev2.pools import AddressPool
from mip6lab.testing.prereq import require_root


def _pair(psk_r: str = "k"):
    ci = IkeConfig.make("mn@mip6lab.example", "k", remote_id="ha.mip6lab.example",
                        request=("ipv6",))
    cr = IkeConfig.make("ha.mip6lab.example", psk_r,
                        pool6=AddressPool.parse("2001:db8:aaaa::/64"))
    return ci, cr


def _run(ci, cr, **initiate):
    require_root("UDP port 500")
    responder = udp.UdpDriver(cr, "127.0.0.2")
    results = []
    thread = threading.Thread(target=lambda: results.extend(responder.respond(once=True,
                                                                              timeout=10)))
    thread.start()
    try:
        mine = udp.initiate(ci, "127.0.0.2", "127.0.0.1", timeout=10, **initiate)
    finally:
        thread.join(15)
        responder.close()
    return mine, results


def test_loopback_established_with_hoa():
    mine, (theirs,) = _run(*_pair())
    ours = mine.to_dict()
    assert ours["established"] and theirs.established
    assert ours["ike_sa"]["spi_i"] == theirs.sa.spi_i.hex()
    assert ours["assigned"] == [{"attribute": "INTERNAL_IP6_ADDRESS",
                                 "value": "2001:db8:aaaa::1", "prefix_length": 64}]
    (child,) = ours["child_sas"]
    assert int(child["spi_out"], 16) == theirs.children[0].inbound_spi
    assert int(child["spi_in"], 16) >= 256
    assert not ours["nat_detected"] and ours["ike_sa"]["remote_port"] == 500


def test_loopback_wrong_psk():
    mine, (theirs,) = _run(*_pair(psk_r="other"))
    assert not mine.established and mine.failure.notify == "AUTHENTICATION_FAILED"
    assert not theirs.established and theirs.failure.notify == "AUTHENTICATION_FAILED"


def test_spi_allocator_random_and_unique():
    allocate = udp.SpiAllocator()
    spis = [allocate() for _ in range(1000)]
    assert len(set(spis)) == 1000 and min(spis) >= 256 and max(spis) < 2 ** 32
