"""A Binding Update flood at a running home agent (issue 14.2, docs/security.md).

While the legitimate MN registers from visit1, the HA's home interface receives a flood
of protected BUs: forged ones (ESP under the MN's own BU SA SPI, with an ICV that does not
verify, RFC 4303 §3.4.4), replays of genuine BU frames (RFC 4303 §3.4.3 anti-replay),
and valid ones from other MNs, each with its own identity and SA (RFC 4877 §4.2): a
refresh storm from one of them, and more MNs than the binding cache may hold
(RFC 6275 §10.3.1, status 130). What must hold: every forged and replayed BU dropped by
IPsec before the mobility code, counted; the cache never above its bound; the flooding
MNs' entries within their identity's bound; and the legitimate MN's BA arrives and its
binding is the one it asked for. Bad input is data (DESIGN rule 6): ``lab.errors`` empty.
"""

from __future__ import annotations

import pytest

from mip6lab.ikev2.config import IkeConfig
from mip6lab.ikev2.daemon import IkeDaemon
from mip6lab.ipsec import IPsecStack
from mip6lab.ipsec.esp import esp_spi
from mip6lab.mobility.coupling import MobileNodeCoupling
from mip6lab.mobility.mobile_node import MobileNode
from mip6lab.scenarios import create
from mip6lab.scenarios.mobility import HA4, HA6, HA_ID

FLOODERS = 4                      # MNs of their own identity, besides the legitimate one
MAX_BINDINGS = 4                  # the cache's bound here: three flooders and the MN fit,
#                                   the fourth flooder (it registers last) gets BA 130
FORGED, REPLAYED = 600, 600
FLOOD_START, FLOOD_SPACING = 0.2, 0.002     # 1 200 frames in 2.4 s
HANDOVER = 1.5                    # the legitimate MN moves to visit2 amid the flood


def add_flooding_mobile_nodes(scenario) -> list[MobileNode]:
    """``FLOODERS`` MNs on visit2, each with its own identity and key at the HA."""
    lab, ha = scenario.lab, scenario.lab.nodes["ha"]
    nodes = []
    for n in range(FLOODERS):
        identity, key = f"flood{n}@mip6lab.example", f"key-of-flood{n}-0123"
        node = lab.add_host(f"flood{n}")
        lab.connect(node, "visit2")
        IPsecStack(node)
        daemon = IkeDaemon(node, IkeConfig.make(identity, key, HA_ID, mobike=False))
        ha.ike.config.peer_psks[f"rfc822:{identity}"] = key.encode()
        nodes.append(MobileNode(node, MobileNodeCoupling(node, daemon, HA6, home_agent4=HA4),
                                lifetime=60))
    return nodes


def forged_frame(template: bytes, n: int) -> bytes:
    """``template`` (a genuine ESP-protected BU frame) with a fresh sequence number, so
    that anti-replay lets it through to the ICV check, and its ICV changed: it fails."""
    frame = bytearray(template)
    at = 14 + bytes(frame[14:]).find(esp_spi(bytes(frame[14:])).to_bytes(4, "big"))
    frame[at + 4:at + 8] = (10_000 + n).to_bytes(4, "big")
    frame[-1 - n % 8] ^= 0x5A
    return bytes(frame)


def _bu_frames(lab, spis: set[int]) -> list[bytes]:
    """ESP frames under ``spis`` the home router put on the home link."""
    frames = []
    for event in lab.events.filter(kind="tx", node="hr", link="home"):
        try:
            if esp_spi(event.packet[14:]) in spis:
                frames.append(event.packet)
        except Exception:       # noqa: BLE001 - not ESP
            continue
    return frames


@pytest.fixture(scope="module")
def flood():
    scenario = create("home-registration")
    flooders = add_flooding_mobile_nodes(scenario)
    lab, ha = scenario.lab, scenario.home_agent
    ha.cache.config.max_entries = MAX_BINDINGS
    ha_node = lab.nodes["ha"]
    home = ha_node.interface("eth0")
    genuine: list[bytes] = []        # every MN's BU frames of the first registrations
    sent = {"forged": 0, "replayed": 0}

    def capture() -> None:
        spis = {sa.spi for sa in ha_node.ipsec.sad
                if sa.direction == "in" and sa.mode == "transport"}
        genuine[:] = _bu_frames(lab, spis)

    def inject(n: int) -> None:
        template = genuine[n % len(genuine)]
        if n % 2:
            ha_node.receive_frame(home, forged_frame(template, n))
            sent["forged"] += 1
        else:
            ha_node.receive_frame(home, template)
            sent["replayed"] += 1

    lab.at(FLOOD_START - 0.001, capture)
    for n in range(FORGED + REPLAYED):
        lab.at(FLOOD_START + n * FLOOD_SPACING, inject, n)
    lab.at(HANDOVER, scenario.move, "visit2")
    sizes: list[int] = []
    for k in range(400):
        lab.at(k * 0.01, lambda: sizes.append(len(ha.cache)))
    lab.run(until=4.0)
    return scenario, flooders, sizes, sent, genuine


def test_the_legitimate_mn_registers_through_the_flood(flood):
    """The MN's handover BU amid the flood is accepted: its BA arrives (the MN says
    registered at its visit2 care-of address) and the HA binds that address."""
    scenario, _flooders, _sizes, sent, genuine = flood
    mobile, ha, lab = scenario.mobile, scenario.home_agent, scenario.lab
    assert len(genuine) >= FLOODERS                  # every MN's first BU was captured
    assert sent == {"forged": FORGED, "replayed": REPLAYED}
    coa = mobile.care_of_address
    assert str(coa).startswith("2001:db8:a2:")       # visit2
    assert any(e.node == "mn" and e.time > HANDOVER and f"registered at {coa}" in e.summary
               for e in lab.events)
    entry = ha.cache.get(mobile.home_address)
    assert entry is not None and entry.coa == coa
    assert lab.errors == []


def test_forged_and_replayed_bus_are_dropped_by_ipsec_and_counted(flood):
    """RFC 4303 §3.4.3 / §3.4.4: every replay fails the window, every forged BU its ICV,
    before the mobility code sees a BU; the SAs' counters say so."""
    scenario, _flooders, _sizes, sent, _genuine = flood
    ha_node = scenario.lab.nodes["ha"]
    errors: dict[str, int] = {}
    for sa in ha_node.ipsec.sad:
        if sa.direction == "in":
            for kind, count in sa.errors.items():
                errors[kind] = errors.get(kind, 0) + count
    assert errors.get("replay", 0) == sent["replayed"], errors
    assert sum(v for k, v in errors.items() if k != "replay") == sent["forged"], errors
    drops = [e for e in scenario.lab.events if e.node == "ha" and e.kind == "drop"
             and FLOOD_START <= e.time and ("replay" in (e.reason or "")
                                            or "integrity" in (e.reason or "").lower()
                                            or "icv" in (e.reason or "").lower())]
    assert len(drops) == FORGED + REPLAYED
    # the BUs the mobility code saw are the genuine ones: a handful, not 1 200
    assert scenario.home_agent.stats["bu_received"] < 20


def test_the_cache_stays_within_its_bounds(flood):
    """RFC 6275 §10.3.1: the cache never holds more than ``max_entries``; the MN that
    would go beyond gets BA 130 and keeps no binding; no identity holds more than its
    ``max_entries_per_identity``."""
    scenario, flooders, sizes, _sent, _genuine = flood
    ha = scenario.home_agent
    assert max(sizes) == MAX_BINDINGS and len(ha.cache) == MAX_BINDINGS
    refused = [m for m in flooders if m.registered is None]
    assert len(refused) == FLOODERS + 1 - MAX_BINDINGS
    assert all(m.home_address not in ha.cache for m in refused)
    assert any(e.node == "ha" and e.module == "mip6" and "(130)" in e.summary
               for e in scenario.lab.events)
    per_identity: dict[object, int] = {}
    for entry in ha.cache.entries():
        per_identity[entry.ike_identity] = per_identity.get(entry.ike_identity, 0) + 1
    assert max(per_identity.values()) <= ha.cache.config.max_entries_per_identity
