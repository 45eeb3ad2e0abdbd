"""The home agent's Binding Cache: RFC 6275 §9.5.1, §10.3.1, §10.3.2; RFC 4877 §4.2; RFC 5555 §4.2."""

from ipaddress import IPv4Address as V4, IPv6Address as V6, IPv6Network

import pytest

from mip6lab.mobility.binding_cache import (
    DEFAULT_MAX_ENTRIES, DEFAULT_MAX_ENTRIES_PER_IDENTITY,
    HOME_REGISTRATION_CHECKS, BindingCache, BindingCreated, BindingDeleted, BindingExpired,
    BindingUpdateRefused, BindingUpdateRequest, DiscardKeyManagementConnections,
    HomeAgentConfiguration, MoveKeyManagementEndpoint, SendBindingAcknowledgement,
    link_local_of)
from mip6lab.mobility.constants import BindingAckStatus as S, sequence_number_greater

S_US = 1_000_000
HOA_A, HOA_B = V6("2001:db8:1::a"), V6("2001:db8:1::b")
COA1, COA2 = V6("2001:db8:99::1"), V6("2001:db8:98::1")
PAD = {"mn-a": {HOA_A, V4("192.0.2.10")}, "mn-b": {HOA_B}}


def pad(identity):
    return PAD.get(identity, set())


def cache(**kw):
    kw.setdefault("home_prefixes", {IPv6Network("2001:db8:1::/64"): None})
    return BindingCache(HomeAgentConfiguration(**kw))


def bu(seq=10, lifetime=100, hoa=HOA_A, coa=COA1, **kw):
    return BindingUpdateRequest(home_address=hoa, care_of_address=coa, sequence_number=seq,
                                lifetime=lifetime, **kw)


def ba(events):
    (ack,) = [e for e in events if isinstance(e, SendBindingAcknowledgement)]
    return ack


def test_accepted_creates_entry_and_acknowledges():
    bc = cache()
    status, entry, events = bc.process_bu(bu(), "mn-a", pad, now=5 * S_US)
    assert status is S.ACCEPTED
    assert bc.get(HOA_A) == entry and entry.coa == COA1 and entry.sequence_number == 10
    assert entry.ike_identity == "mn-a" and entry.h and entry.a
    assert entry.expiry_us == 5 * S_US + 100 * 4 * S_US
    assert isinstance(events[0], BindingCreated)
    ack = ba(events)
    assert (ack.status, ack.sequence_number, ack.lifetime) == (S.ACCEPTED, 10, 100)


def test_not_home_agent_131():
    bc = cache(is_home_agent=False)
    status, entry, events = bc.process_bu(bu(), "mn-a", pad, 0)
    assert status is S.HOME_REGISTRATION_NOT_SUPPORTED and entry is None and len(bc) == 0
    assert ba(events).status == 131


def test_hoa_off_home_prefix_132():
    bc = cache()
    status, _, events = bc.process_bu(bu(hoa=V6("2001:db8:2::a")), "mn-a",
                                      lambda i: {V6("2001:db8:2::a")}, 0)
    assert status == 132 and len(bc) == 0


def test_hoa_on_expired_prefix_132():
    bc = cache(home_prefixes={IPv6Network("2001:db8:1::/64"): 10 * S_US})
    assert bc.process_bu(bu(), "mn-a", pad, 10 * S_US).status == 132
    assert bc.process_bu(bu(), "mn-a", pad, 9 * S_US).status < 128


def test_bu_claiming_another_mns_hoa_refused_129_cache_unchanged():
    bc = cache()
    _, b_entry, _ = bc.process_bu(bu(hoa=HOA_B, seq=7), "mn-b", pad, 0)
    before = bc.table(1)
    # MN A's SA carries a BU for MN B's HoA, with a newer sequence number and a new CoA.
    status, entry, events = bc.process_bu(bu(hoa=HOA_B, seq=8, coa=COA2), "mn-a", pad, 1)
    assert status is S.ADMINISTRATIVELY_PROHIBITED
    assert entry is b_entry and bc.get(HOA_B) is b_entry and bc.table(1) == before
    refused = [e for e in events if isinstance(e, BindingUpdateRefused)]
    assert refused and refused[0].ike_identity == "mn-a" and "PAD" in refused[0].reason
    # The refusal does not leak B's sequence number (a 135 would carry 7).
    assert ba(events).sequence_number == 8


def test_pad_checked_before_sequence_number():
    bc = cache()
    bc.process_bu(bu(hoa=HOA_B, seq=7), "mn-b", pad, 0)
    assert bc.process_bu(bu(hoa=HOA_B, seq=3), "mn-a", pad, 1).status == 129


def test_unauthorized_ipv4_hoa_refused():
    bc = cache()
    r = bc.process_bu(bu(hoa=HOA_B, ipv4_home_address=V4("192.0.2.10")), "mn-b", pad, 0)
    assert r.status == 129 and len(bc) == 0
    r = bc.process_bu(bu(ipv4_home_address=V4("192.0.2.10")), "mn-a", pad, 0)
    assert r.status == 0 and r.entry.ipv4_hoa == V4("192.0.2.10")
    assert ba(r.events).ipv4_address_acknowledgement == 0


def test_insufficient_resources_130_only_for_new_entries():
    bc = cache(max_entries=1)
    assert bc.process_bu(bu(), "mn-a", pad, 0).status == 0
    assert bc.process_bu(bu(hoa=HOA_B), "mn-b", pad, 0).status == 130
    assert HOA_B not in bc
    assert bc.process_bu(bu(seq=11), "mn-a", pad, 1).status == 0  # an update still fits


def test_the_cache_is_bounded_by_default():
    """RFC 6275 §10.3.1, docs/security.md: no configuration leaves the cache unbounded."""
    config = HomeAgentConfiguration()
    assert config.max_entries == DEFAULT_MAX_ENTRIES == 4096
    assert config.max_entries_per_identity == DEFAULT_MAX_ENTRIES_PER_IDENTITY == 4


def test_bindings_per_identity_130_beyond_the_limit_and_others_unaffected():
    """§6.1.8 status 130: an identity authorized for a whole prefix (RFC 5026) registers
    one home address after another; the 5th is refused, another identity still fits,
    its own entries can still be refreshed, and a freed place can be taken again."""
    prefix = [V6(f"2001:db8:1::{i:x}") for i in range(0x100, 0x106)]
    authorized = {"mn-p": set(prefix), "mn-b": {HOA_B}}
    lookup = lambda identity: authorized.get(identity, set())
    bc = cache()
    statuses = [bc.process_bu(bu(hoa=hoa), "mn-p", lookup, 0).status for hoa in prefix[:5]]
    assert statuses == [0, 0, 0, 0, 130]
    assert prefix[4] not in bc and len(bc) == 4
    refused = [e for e in bc.process_bu(bu(hoa=prefix[5]), "mn-p", lookup, 1).events
               if isinstance(e, BindingUpdateRefused)]
    assert "limit per identity is 4" in refused[0].reason
    assert bc.process_bu(bu(hoa=HOA_B), "mn-b", lookup, 1).status == 0
    assert bc.process_bu(bu(hoa=prefix[0], seq=11), "mn-p", lookup, 2).status == 0
    assert bc.process_bu(bu(hoa=prefix[0], seq=12, lifetime=0), "mn-p", lookup, 3).status == 0
    assert bc.process_bu(bu(hoa=prefix[4], seq=13), "mn-p", lookup, 4).status == 0


def test_registration_type_change_139():
    bc = cache()
    bc.process_bu(bu(), "mn-a", pad, 0)
    r = bc.process_bu(bu(seq=11, h=False), "mn-a", pad, 1)
    assert r.status == 139 and bc.get(HOA_A).h is True and bc.get(HOA_A).sequence_number == 10


def test_replayed_old_bu_135_entry_unchanged():
    bc = cache()
    bc.process_bu(bu(seq=10, coa=COA1), "mn-a", pad, 0)
    _, current, _ = bc.process_bu(bu(seq=11, coa=COA2), "mn-a", pad, 1)
    status, entry, events = bc.process_bu(bu(seq=10, coa=COA1), "mn-a", pad, 2)  # replay
    assert status is S.SEQUENCE_NUMBER_OUT_OF_WINDOW
    assert entry is current and bc.get(HOA_A) is current and current.coa == COA2
    # §9.5.1: the BA carries the last accepted sequence number.
    assert ba(events).sequence_number == 11
    # An equal number is also out of window.
    assert bc.process_bu(bu(seq=11, coa=COA1), "mn-a", pad, 3).status == 135


@pytest.mark.parametrize("last,received,greater", [
    (15, 16, True), (15, 15, False), (15, 0, False), (15, 32783, False),
    (15, 32782, True), (65535, 0, True), (65535, 1, True), (0, 65535, False),
    (65530, 5, True), (5, 65530, False), (0, 32767, True), (0, 32768, False),
])
def test_sequence_comparison_modulo_2_16(last, received, greater):
    assert sequence_number_greater(received, last) is greater


def test_sequence_wrap_accepted_by_cache():
    bc = cache()
    bc.process_bu(bu(seq=65535), "mn-a", pad, 0)
    assert bc.process_bu(bu(seq=0, coa=COA2), "mn-a", pad, 1).status == 0
    assert bc.get(HOA_A).sequence_number == 0 and bc.get(HOA_A).coa == COA2
    assert bc.process_bu(bu(seq=65535), "mn-a", pad, 2).status == 135


def test_no_entry_accepts_any_sequence_number():
    bc = cache()
    assert bc.process_bu(bu(seq=40000), "mn-a", pad, 0).status == 0


@pytest.mark.parametrize("dereg", [dict(lifetime=0), dict(coa=HOA_A)])
def test_deregistration_removes_entry(dereg):
    bc = cache()
    bc.process_bu(bu(), "mn-a", pad, 0)
    status, entry, events = bc.process_bu(bu(seq=11, **dereg), "mn-a", pad, 1)
    assert status == 0 and entry is None and HOA_A not in bc
    assert any(isinstance(e, BindingDeleted) for e in events)
    assert ba(events).lifetime == 0 and ba(events).sequence_number == 11


def test_deregistration_without_binding_133():
    bc = cache()
    r = bc.process_bu(bu(lifetime=0), "mn-a", pad, 0)
    assert r.status is S.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE and len(bc) == 0


def test_deregistration_with_old_sequence_135_keeps_entry():
    bc = cache()
    bc.process_bu(bu(seq=10), "mn-a", pad, 0)
    assert bc.process_bu(bu(seq=9, lifetime=0), "mn-a", pad, 1).status == 135
    assert HOA_A in bc


def test_dad_failure_134_and_l_flag_link_local():
    bc = cache()
    taken = {link_local_of(HOA_A)}
    assert link_local_of(HOA_A) == V6("fe80::a")
    assert bc.process_bu(bu(l=False), "mn-a", pad, 0, duplicate_address=taken.__contains__).status == 0
    bc2 = cache()
    r = bc2.process_bu(bu(l=True), "mn-a", pad, 0, duplicate_address=taken.__contains__)
    assert r.status is S.DUPLICATE_ADDRESS_DETECTION_FAILED and len(bc2) == 0
    # DAD only for a new binding: an update of an existing one skips it.
    r = bc.process_bu(bu(seq=11, l=True), "mn-a", pad, 1, duplicate_address=lambda a: True)
    assert r.status == 0


def test_lifetime_capped_by_policy_and_prefix():
    bc = cache(max_lifetime=50)
    r = bc.process_bu(bu(lifetime=100), "mn-a", pad, 0)
    assert r.entry.lifetime == 50 and ba(r.events).lifetime == 50
    assert r.entry.expiry_us == 50 * 4 * S_US
    assert bc.process_bu(bu(seq=11, lifetime=20), "mn-a", pad, 0).entry.lifetime == 20
    bc = cache(home_prefixes={IPv6Network("2001:db8:1::/64"): 80 * S_US})
    r = bc.process_bu(bu(lifetime=100), "mn-a", pad, 0)
    assert r.entry.lifetime == 20 and r.status is S.ACCEPTED_PREFIX_DISCOVERY_NECESSARY


def test_expiry():
    bc = cache()
    bc.process_bu(bu(lifetime=10), "mn-a", pad, 0)
    bc.process_bu(bu(hoa=HOA_B, lifetime=20), "mn-b", pad, 0)
    assert bc.next_expiry() == 40 * S_US
    assert bc.expire(40 * S_US - 1) == [] and len(bc) == 2
    events = bc.expire(40 * S_US)
    assert [e.entry.hoa for e in events] == [HOA_A] and HOA_A not in bc and HOA_B in bc
    assert isinstance(events[0], BindingExpired)


@pytest.mark.parametrize("bu_k,dynamic,ha_k,expected", [
    (True, True, True, True), (False, True, True, False),
    (True, False, True, False), (True, True, False, False)])
def test_k_flag_only_if_all_conditions(bu_k, dynamic, ha_k, expected):
    bc = cache(key_management_mobility=ha_k)
    bc.process_bu(bu(k=bu_k), "mn-a", pad, 0, dynamic_keying=dynamic)
    r = bc.process_bu(bu(seq=11, coa=COA2, k=bu_k), "mn-a", pad, 1, dynamic_keying=dynamic)
    assert r.entry.k is expected and ba(r.events).k is expected
    moves = [e for e in r.events if isinstance(e, MoveKeyManagementEndpoint)]
    discards = [e for e in r.events if isinstance(e, DiscardKeyManagementConnections)]
    if expected:
        assert moves == [MoveKeyManagementEndpoint("mn-a", COA1, COA2)] and not discards
    else:
        assert discards == [DiscardKeyManagementConnections("mn-a", COA1)] and not moves


def test_nat_detected_udp_encapsulation():
    bc = cache()
    r = bc.process_bu(bu(coa=None, ipv4_care_of_address=V4("10.0.0.5"),
                         outer_ipv4_source=V4("198.51.100.7"), outer_udp_source_port=40001),
                      "mn-a", pad, 0)
    assert r.status == 0 and r.entry.nat_detected and r.entry.udp_encapsulation
    assert (r.entry.nat_ipv4_address, r.entry.nat_udp_port) == (V4("198.51.100.7"), 40001)
    assert ba(r.events).nat_detection is True


def test_no_nat_no_forced_udp():
    bc = cache()
    r = bc.process_bu(bu(coa=None, ipv4_care_of_address=V4("203.0.113.5"),
                         outer_ipv4_source=V4("203.0.113.5"), outer_udp_source_port=4191),
                      "mn-a", pad, 0)
    assert not r.entry.nat_detected and not r.entry.udp_encapsulation
    assert ba(r.events).nat_detection is False  # option present (BU was in UDP), F clear
    r = bc.process_bu(bu(seq=11, coa=None, f=True, ipv4_care_of_address=V4("203.0.113.5"),
                         outer_ipv4_source=V4("203.0.113.5"), outer_udp_source_port=4191),
                      "mn-a", pad, 1)
    assert r.entry.udp_encapsulation and not r.entry.nat_detected


def test_check_order_is_the_rfc_order():
    assert [int(s) for s, _ in HOME_REGISTRATION_CHECKS] == [131, 132, 129, 130, 139, 135, 144,
                                                             133, 134]


def test_forced_udp_refused_144_when_the_ha_does_not_accept_it():
    bc = cache(accept_forced_udp_encapsulation=False)
    v4 = dict(coa=None, ipv4_care_of_address=V4("203.0.113.5"),
              outer_ipv4_source=V4("203.0.113.5"), outer_udp_source_port=4191)
    status, entry, events = bc.process_bu(bu(f=True, **v4), "mn-a", pad, 0)
    assert status == 144 and entry is None and len(bc) == 0 and ba(events).status == 144
    # RFC 5555 §4.4.2: the MN "MAY resend the binding update without setting the F flag"
    status, entry, _ = bc.process_bu(bu(seq=11, **v4), "mn-a", pad, 1)
    assert status == 0 and not entry.udp_encapsulation


def test_table_rows():
    bc = cache(key_management_mobility=True)
    bc.process_bu(bu(hoa=HOA_B, k=True), "mn-b", pad, 0)
    bc.process_bu(bu(), "mn-a", pad, 0)
    rows = bc.table(4 * S_US)
    assert [r["hoa"] for r in rows] == [str(HOA_A), str(HOA_B)]
    assert rows[1]["flags"] == "HAK" and rows[0]["flags"] == "HA"
    assert rows[0]["lifetime_s"] == 396 and rows[0]["ike_identity"] == "mn-a"


def test_next_expiry_follows_refreshes_and_deletions():
    bc = cache()
    bc.process_bu(bu(seq=1, lifetime=10), "mn-a", pad, 0)
    bc.process_bu(bu(seq=1, lifetime=20, hoa=HOA_B), "mn-b", pad, 0)
    assert bc.next_expiry() == 10 * 4 * S_US
    bc.process_bu(bu(seq=2, lifetime=30), "mn-a", pad, S_US)      # refreshed: later
    assert bc.next_expiry() == 20 * 4 * S_US
    bc.process_bu(bu(seq=2, lifetime=0, hoa=HOA_B, coa=HOA_B), "mn-b", pad, 2 * S_US)
    assert bc.next_expiry() == S_US + 30 * 4 * S_US
    assert [e.entry.home_address for e in bc.expire(S_US + 30 * 4 * S_US)] == [HOA_A]
    assert bc.next_expiry() is None
