"""Forged, replayed and malformed Binding Updates against the home agent (RFC 4877 §4,
RFC 6275 §9.5.1 / §10.3.1, RFC 4303 §3.4.3), and a NAT rebinding in DSMIP6 (RFC 5555).

Each test starts from the home-registration scenario run to t = 3 s (the MN is
registered from visit1) and injects packets: from the MN's node, from an attacker host on
visit2, or as a frame replayed on the HA's home interface. "Bad input is data" (DESIGN
rule 6): every one must end in a drop or a refusal with its reason in the trace and a
counter, never in an exception, and the binding cache must not change unless the BU was
legitimate.
"""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest
from scapy.layers.inet6 import IPv6, MIP6MH_BA, MIP6OptAltCoA

from mip6lab.ikev2.config import IkeConfig
from mip6lab.ikev2.daemon import IkeDaemon
from mip6lab.ipsec import IPsecStack
from mip6lab.ipsec.esp import decapsulate, encapsulate, esp_spi
from mip6lab.ipsec.sad import SecurityAssociationDatabase
from mip6lab.mobility.coupling import BU_REQID, MobileNodeCoupling
from mip6lab.mobility.mobile_node import MobileNode
from mip6lab.scenarios import create
from mip6lab.scenarios.mobility import HA4, HA6, HA_ID, HOME_PREFIX, MN_ID, PSK
from mip6lab.wire.mip6 import (MIP6OptIPv4CareOfAddress, MIP6OptIPv4HomeAddress, build_bu,
                               mh_checksum)

REGISTERED_AT = 3.0
MN2_ID = "mn2@mip6lab.example"
MN2_PSK = "the-key-of-mn2-0123"


# -- helpers ---------------------------------------------------------------------------------


def registered(build=None):
    """home-registration run to REGISTERED_AT; ``build(scenario)`` may add nodes first."""
    scenario = create("home-registration")
    if build is not None:
        build(scenario)
    scenario.lab.run(until=REGISTERED_AT)
    assert scenario.mobile.registered is not None, "the MN did not register"
    return scenario


def bu_sa(node, direction: str):
    """The node's BU/BA SA (transport mode, reqid 1) in ``direction``."""
    (sa,) = [sa for sa in node.ipsec.sad if sa.direction == direction
             and sa.reqid == BU_REQID and sa.mode == "transport"]
    return sa


def fix_mh_checksum(packet: bytearray) -> bytes:
    """Recompute the MH checksum of a BU built by build_bu (IPv6 + DestOpt(HAO) + MH)."""
    mh = 40 + 8 * (packet[41] + 1)
    packet[mh + 4:mh + 6] = b"\x00\x00"
    packet[mh + 4:mh + 6] = mh_checksum(bytes(packet)).to_bytes(2, "big")
    return bytes(packet)


def protect(sa, packet: bytes) -> bytes:
    """ESP transport mode with ``sa`` (AES-GCM: no IV from us)."""
    return encapsulate(sa, packet, b"")


def new_events(scenario, since: int):
    return scenario.lab.events[since:]


def run_a_little(scenario, seconds: float = 0.5) -> None:
    scenario.lab.run(until=scenario.lab.now + seconds)


# -- (a) a Binding Update without IPsec ------------------------------------------------------


def add_attacker(scenario):
    attacker = scenario.lab.add_host("eve")
    scenario.lab.connect(attacker, "visit2")


def eve_address(scenario) -> ipaddress.IPv6Address:
    eth0 = scenario.lab.nodes["eve"].interface("eth0")
    return next(a.ip for a in eth0.addresses6 if not a.ip.is_link_local)


def test_unprotected_bu_for_a_registered_hoa_is_dropped_by_ipsec():
    """The HA's SPD has a PROTECT entry for the HoA's BUs: a clear one never reaches the
    mobility module (RFC 4877 §4.1 "MUST be protected")."""
    scenario = registered(add_attacker)
    ha, ha_node = scenario.home_agent, scenario.lab.nodes["ha"]
    hoa = scenario.mobile.home_address
    before = ha.cache.get(hoa)
    stats, dropped = dict(ha.stats), ha_node.ipsec.stats["dropped_in"]
    eve = eve_address(scenario)
    forged = build_bu(str(hoa), str(eve), HA6, (before.sequence_number + 1) % 65536, 60)
    start = len(scenario.lab.events)
    assert scenario.lab.nodes["eve"].route_out(bytes(forged), protect=False)
    run_a_little(scenario)
    drops = [e for e in new_events(scenario, start) if e.node == "ha" and e.kind == "drop"
             and e.module == "ipsec" and "requires ESP" in (e.reason or "")]
    assert len(drops) == 1
    assert ha_node.ipsec.stats["dropped_in"] == dropped + 1
    assert ha.cache.get(hoa) == before                    # same CoA, same sequence number
    assert ha.stats["bu_received"] == stats.get("bu_received", 0)   # never got that far
    assert scenario.lab.errors == []


def test_unprotected_bu_for_an_unknown_hoa_is_refused_by_the_home_agent():
    """No SPD entry covers a HoA nobody registered, so IPsec lets it through; the HA's
    own check (no SA it came through) drops it and counts it."""
    scenario = registered(add_attacker)
    ha = scenario.home_agent
    victim = ipaddress.IPv6Network(HOME_PREFIX).network_address + 0xBEEF
    table = ha.table()
    eve = eve_address(scenario)
    forged = build_bu(str(victim), str(eve), HA6, 7, 60)
    start = len(scenario.lab.events)
    scenario.lab.nodes["eve"].route_out(bytes(forged), protect=False)
    run_a_little(scenario)
    assert ha.stats["unprotected_bu"] == 1
    drops = [e for e in new_events(scenario, start) if e.node == "ha" and e.kind == "drop"
             and e.module == "mip6"]
    assert len(drops) == 1 and "without IPsec" in drops[0].reason
    assert victim not in ha.cache
    assert [r["hoa"] for r in ha.table()] == [r["hoa"] for r in table]
    assert ha.stats["ba_sent"] == 1                        # only the real registration's
    assert scenario.lab.errors == []


# -- (b) MN A's SA used for MN B's home address ----------------------------------------------


def add_second_mobile_node(scenario):
    """A second MN, its own identity, on visit2: what MobilityScenario._mobile_node does."""
    lab = scenario.lab
    mn2 = lab.add_host("mn2")
    lab.connect(mn2, "visit2")
    IPsecStack(mn2)
    daemon = IkeDaemon(mn2, IkeConfig.make(MN2_ID, MN2_PSK, HA_ID, mobike=False))
    # the HA gives each mobile node its own key (docs/security.md)
    scenario.lab.nodes["ha"].ike.config.peer_psks[f"rfc822:{MN2_ID}"] = MN2_PSK.encode()
    coupling = MobileNodeCoupling(mn2, daemon, HA6, home_agent4=HA4)
    scenario.mobile2 = MobileNode(mn2, coupling, lifetime=60)


def read_ba(receiver, frame: bytes):
    """Decrypt an ESP-protected BA with a fresh copy of ``receiver``'s inbound SA (the
    receiver's own replay window is not touched); the dissected MH."""
    l3 = frame[14:]
    sa = receiver.ipsec.sad.inbound(esp_spi(l3))
    sad = SecurityAssociationDatabase()
    sad.add(dataclasses.replace(sa, replay=None, _cipher=None, _shape=None))
    return IPv6(decapsulate(sad, l3, 0).packet)[MIP6MH_BA]


def test_an_sa_of_mn_a_cannot_move_the_binding_of_mn_b():
    """RFC 4877 §4.2: both BU/BA SAs have reqid 1, so the SPD check passes; only the PAD
    binding of HoA to identity stops A. Status 129, an error event, B untouched."""
    scenario = registered(add_second_mobile_node)
    lab, ha = scenario.lab, scenario.home_agent
    a, b = scenario.mobile, scenario.mobile2
    assert b.registered is not None and a.home_address != b.home_address
    assert ha.cache.get(b.home_address).ike_identity == f"rfc822:{MN2_ID}"
    b_before = ha.cache.get(b.home_address)
    a_before = ha.cache.get(a.home_address)
    mn = lab.nodes["mn"]
    forged = build_bu(str(b.home_address), str(a.care_of_address), HA6,
                      (b_before.sequence_number + 1) % 65536, 60,
                      options=[MIP6OptAltCoA(acoa=str(a.care_of_address))])
    start = len(lab.events)
    assert mn.route_out(protect(bu_sa(mn, "out"), bytes(forged)), protect=False)
    run_a_little(scenario)
    events = new_events(scenario, start)
    # the ESP was good: IPsec accepted it on A's SA, under B's BU entry
    assert any(e.node == "ha" and e.module == "ipsec" and "accepted by mip6-bu-"
               f"{b.home_address}" in e.summary for e in events)
    assert ha.stats["refused_129"] == 1
    errors = [e for e in events if e.node == "ha" and e.kind == "error" and e.module == "mip6"]
    assert len(errors) == 1
    assert errors[0].data["status"] == 129
    assert errors[0].data["identity"] == f"rfc822:{MN_ID}"
    assert ha.cache.get(b.home_address) == b_before
    assert ha.cache.get(a.home_address) == a_before
    # the BA that answers it says 129, for B's HoA, with B's unchanged sequence number
    ha_bu_spis = {sa.spi for sa in lab.nodes["ha"].ipsec.sad
                  if sa.direction == "out" and sa.reqid == BU_REQID}
    bas = [e for e in events if e.node == "ha" and e.kind == "tx"
           and esp_spi(e.packet[14:]) in ha_bu_spis]
    assert len(bas) == 1
    spi = esp_spi(bas[0].packet[14:])
    receiver = next(n for n in (mn, lab.nodes["mn2"]) if n.ipsec.sad.inbound(spi))
    ba = read_ba(receiver, bas[0].packet)
    assert ba.status == 129
    assert ba.seq == (b_before.sequence_number + 1) % 65536
    assert scenario.lab.errors == []


# -- (c) replay, and a stale sequence number -------------------------------------------------


def test_a_replayed_bu_frame_is_dropped_by_esp_anti_replay():
    scenario = registered()
    lab, ha, ha_node = scenario.lab, scenario.home_agent, scenario.lab.nodes["ha"]
    hoa = scenario.mobile.home_address
    spi = bu_sa(lab.nodes["mn"], "out").spi
    # the first BU as it reached the HA: the router's frame on the home link
    (first,) = [e for e in lab.events.filter(kind="tx", node="hr", link="home")
                if esp_spi(e.packet[14:]) == spi]
    before, stats = ha.cache.get(hoa), dict(ha.stats)
    dropped = ha_node.ipsec.stats["dropped_in"]
    start = len(lab.events)
    ha_node.receive_frame(ha_node.interface("eth0"), first.packet)
    drops = [e for e in new_events(scenario, start) if e.kind == "drop" and e.node == "ha"]
    assert len(drops) == 1 and "replay" in drops[0].reason
    assert ha_node.ipsec.stats["dropped_in"] == dropped + 1
    assert ha_node.ipsec.sad.inbound(spi).errors.get("replay") == 1
    assert dict(ha.stats) == stats                          # the MH never got there
    assert ha.cache.get(hoa) == before
    assert lab.errors == []


def test_an_old_sequence_number_gets_135_and_the_mn_resynchronises():
    """§9.5.1: a BU whose sequence number is not greater than the cache's gets 135 with
    the last accepted number; §11.7.3: the MN takes that number and its next BU is
    accepted."""
    scenario = registered()
    lab, ha, mobile = scenario.lab, scenario.home_agent, scenario.mobile
    hoa = mobile.home_address
    accepted = ha.cache.get(hoa).sequence_number
    stale = (accepted - 5) % 65536          # "less than or equal" modulo 2**16
    entry = mobile.bul.get(hoa)
    entry.sequence_number = (stale - 1) % 65536            # the next BU carries ``stale``
    start = len(lab.events)
    mobile._register()
    run_a_little(scenario)
    events = new_events(scenario, start)
    assert ha.stats["refused_135"] == 1
    refusals = [e for e in events if e.node == "ha" and e.kind == "error"]
    assert [e.data["status"] for e in refusals] == [135]
    bas = [e.data["status"] for e in events if e.node == "mn" and e.module == "mip6"
           and e.summary.startswith("BA seq")]
    assert bas == [135, 0]
    resync = [e for e in events if e.node == "mn" and "135 from the HA" in e.summary]
    assert len(resync) == 1 and resync[0].summary.endswith(f"{stale} → {accepted}")
    cache = ha.cache.get(hoa)
    assert cache.sequence_number == (accepted + 1) % 65536
    assert cache.care_of_address == mobile.care_of_address
    assert entry.state.value == "registered"
    assert lab.errors == []


# -- (d) a malformed option inside a properly protected BU -----------------------------------


def _wrong_ipv4_coa_length(packet: bytearray, mh: int) -> None:
    i = packet.index(bytes([32, 6]), mh)
    packet[i + 1] = 4


def _option_past_the_end(packet: bytearray, mh: int) -> None:
    i = packet.index(bytes([32, 6]), mh)
    packet[i], packet[i + 1] = 99, 200


def _wrong_ipv4_hoa_length(packet: bytearray, mh: int) -> None:
    i = packet.index(bytes([29, 6]), mh)
    packet[i + 1] = 2


MALFORMED = {
    "ipv4-coa-length-4": (MIP6OptIPv4CareOfAddress(coa="198.51.100.99"),
                          _wrong_ipv4_coa_length, "type 32"),
    "option-past-the-end": (MIP6OptIPv4CareOfAddress(coa="198.51.100.99"),
                            _option_past_the_end, "runs past the end"),
    "ipv4-hoa-length-2": (MIP6OptIPv4HomeAddress(hoa="0.0.0.0"),
                          _wrong_ipv4_hoa_length, "type 29"),
}
ATTACK_COA = "2001:db8:a1::bad"


def send_crafted_bu(scenario, option, mutate=None):
    mobile, mn = scenario.mobile, scenario.lab.nodes["mn"]
    hoa = mobile.home_address
    seq = (scenario.home_agent.cache.get(hoa).sequence_number + 1) % 65536
    packet = bytearray(bytes(build_bu(str(hoa), ATTACK_COA, HA6, seq, 60,
                                      options=[MIP6OptAltCoA(acoa=ATTACK_COA), option])))
    if mutate is not None:
        mutate(packet, 40 + 8 * (packet[41] + 1))
    mn.route_out(protect(bu_sa(mn, "out"), fix_mh_checksum(packet)), protect=False)
    run_a_little(scenario)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_option_in_a_protected_bu_is_refused(case):
    option, mutate, reason = MALFORMED[case]
    scenario = registered()
    ha, hoa = scenario.home_agent, scenario.mobile.home_address
    before, stats = ha.cache.get(hoa), dict(ha.stats)
    start = len(scenario.lab.events)
    send_crafted_bu(scenario, option, mutate)
    events = new_events(scenario, start)
    # it passed ESP and the policy check, and was refused by the option validator
    assert any(e.node == "ha" and e.module == "ipsec" and "accepted by mip6-bu-" in e.summary
               for e in events)
    drops = [e for e in events if e.node == "ha" and e.kind == "drop" and e.module == "mip6"]
    assert len(drops) == 1
    assert "malformed mobility option" in drops[0].reason and reason in drops[0].reason
    assert ha.stats["malformed"] == stats.get("malformed", 0) + 1
    assert ha.stats["bu_received"] == stats["bu_received"]
    assert ha.cache.get(hoa) == before
    assert scenario.lab.errors == []


def test_the_same_crafted_bu_unmutated_is_accepted():
    """Control for the malformed cases: the harness's BU, left intact, does reach the
    binding cache (so the refusals above are the options' doing)."""
    scenario = registered()
    ha, hoa = scenario.home_agent, scenario.mobile.home_address
    before = ha.cache.get(hoa)
    send_crafted_bu(scenario, MIP6OptIPv4CareOfAddress(coa="198.51.100.99"))
    after = ha.cache.get(hoa)
    assert ha.stats.get("malformed", 0) == 0
    assert after.sequence_number == (before.sequence_number + 1) % 65536
    assert str(after.care_of_address) == ATTACK_COA


# -- (e) NAT rebinding in DSMIP6 -------------------------------------------------------------


@pytest.fixture(scope="module")
def nat():
    """dsmip6-nat, with the binding's NAT port read just before and after the rebinding."""
    scenario = create("dsmip6-nat")
    lab = scenario.lab
    lab.run(until=scenario.rebind_at - 0.05)
    hoa = scenario.mobile.home_address
    port_before = scenario.home_agent.cache.get(hoa).nat_udp_port
    lab.run(until=scenario.moves[-1][0] - 0.05)        # just before the MN goes home
    port_after = scenario.home_agent.cache.get(hoa).nat_udp_port
    report = scenario.run()
    return scenario, report, port_before, port_after


def test_nat_rebinding_is_recovered_from(nat):
    scenario, report, port_before, port_after = nat
    assert report["ok"] is True, report["result"]
    rebinding = report["result"]["nat_rebinding"]
    assert rebinding["answers_after"] > 0
    mappings = {old: new for old, new in rebinding["ports"]}
    assert port_before in mappings                     # the NAT did rebind the 4191 flow
    # the HA learned the new outside port from a BU (RFC 5555 §4.4) ...
    assert port_after == mappings[port_before] != port_before
    # ... and data came back while the MN was still behind the NAT, within one refresh
    rebind_us = scenario.rebind_at * 1e6
    home_us = scenario.moves[-1][0] * 1e6
    behind = sorted(t for t in scenario.data6.answered_at.values() if rebind_us < t < home_us)
    assert len(behind) > 20
    refresh_us = scenario.settings["nat_refresh"] * 1e6
    assert behind[0] - rebind_us <= refresh_us + 1e6
    v4_behind = [t for t in scenario.data4.answered_at.values() if rebind_us < t < home_us]
    assert len(v4_behind) > 20
