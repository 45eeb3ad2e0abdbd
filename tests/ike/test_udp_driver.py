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


def _run_staying(ci, cr, respond: dict, **initiate):
    """Both ends stay after establishment; the responder's events are collected too."""
    require_root("UDP port 500")
    seen = []
    responder = udp.UdpDriver(cr, "127.0.0.2",
                              on_event=lambda result, sa, event: seen.append((sa, event)))
    results = []
    thread = threading.Thread(target=lambda: results.extend(
        responder.respond(once=True, timeout=10, **respond)))
    thread.start()
    try:
        mine = udp.initiate(ci, "127.0.0.2", "127.0.0.1", timeout=10, **initiate)
    finally:
        thread.join(20)
        responder.close()
    return mine, results, seen


def test_loopback_stay_rekey_child_rekey_ike_delete():
    from mip6lab.ikev2.sa import ChildSaRekeyed, IkeSaDeleted, IkeSaRekeyed

    mine, (theirs,), seen = _run_staying(
        *_pair(), {"until_deleted": True, "stay": 10},
        schedule=[(0.1, "rekey-child"), (0.3, "rekey-ike"), (0.5, "rekey-child"),
                  (0.6, "liveness"), (0.8, "delete")], until_deleted=True, stay=10)
    ours = mine.to_dict()
    assert ours["state"] == "CLOSED" and ours["deleted"] and not ours["deleted_by_peer"]
    assert [c["state"] for c in ours["child_sas"]] == ["rekeyed", "rekeyed", "deleted"]
    assert len(mine.previous) == 1 and mine.previous[0].state == "CLOSED"
    # the responder followed the rekeyed IKE SA: same SPIs, deleted by us (its peer)
    assert theirs.sa.spi_pair == mine.sa.spi_pair and theirs.previous
    assert theirs.deleted is not None and theirs.deleted.by_peer
    kinds = [type(e).__name__ for _, e in seen]
    assert kinds.count("ChildSaRekeyed") == 2 and kinds.count("IkeSaRekeyed") == 1
    rekeyed = [e for _, e in seen if isinstance(e, ChildSaRekeyed)]
    assert rekeyed[-1].new_inbound_spi == int(ours["child_sas"][-1]["spi_out"], 16)
    (new,) = [e.new for _, e in seen if isinstance(e, IkeSaRekeyed)]
    assert new is theirs.sa and not new.initiator
    # two IKE SA deletions seen by the responder: the old SA's and the current one's
    assert [e.by_peer for _, e in seen if isinstance(e, IkeSaDeleted)] == [True, True]
    assert ours["dropped"] == [] and theirs.to_dict()["dropped"] == []


def test_loopback_show_keys_only_when_asked():
    mine, _ = _run(*_pair())
    (plain,) = mine.to_dict()["child_sas"]
    assert "keys" not in plain
    (secret,) = mine.to_dict(keys=True)["child_sas"]
    child = mine.children[0]
    assert secret["keys"] == {"secret": True, "encr_in": child.encr_in.hex(),
                              "integ_in": child.integ_in.hex(),
                              "encr_out": child.encr_out.hex(),
                              "integ_out": child.integ_out.hex()}
    assert "keys" not in udp.event_dict(mine.sa, child)["child"]
    assert udp.event_dict(mine.sa, child, keys=True)["child"]["keys"]["secret"] is True
