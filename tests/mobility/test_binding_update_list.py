"""The mobile node's Binding Update List: RFC 6275 §11.7.1, §11.7.3, §11.8."""

from ipaddress import IPv6Address as V6, IPv6Network

import pytest

from mip6lab.errors import LocalProtocolError
from mip6lab.mobility.binding_cache import (BindingCache, BindingUpdateRequest,
                                            HomeAgentConfiguration, SendBindingAcknowledgement)
from mip6lab.mobility.binding_update_list import (
    BindingUpdateList, Deregistered, DiscardKeyManagementConnections, MoveKeyManagementEndpoint,
    RegistrationAccepted, RegistrationRejected, RegistrationState as St, SendBindingUpdate,
    SequenceNumberResynchronized, UseUdpEncapsulation)

S_US = 1_000_000
HA, HOA, COA1, COA2 = (V6("2001:db8:1::1"), V6("2001:db8:1::a"), V6("2001:db8:99::1"),
                       V6("2001:db8:98::1"))


def sends(events):
    return [e for e in events if isinstance(e, SendBindingUpdate)]


def run_timers(bul, until):
    """Drive the timers; return (time, BU) for every transmission."""
    out = []
    while (t := bul.get_timer()) is not None and t <= until:
        out += [(t, e) for e in sends(bul.handle_timer(t))]
    return out


def test_first_bu_flags_and_sequence():
    bul = BindingUpdateList(initial_sequence_number=100)
    (b,) = bul.register(HA, HOA, COA1, 100, now=0, k=True)
    assert (b.h, b.a, b.k, b.sequence_number, b.lifetime, b.care_of_address) == \
        (True, True, True, 100, 100, COA1)
    assert bul.get(HOA).state is St.REGISTERING


def test_zero_lifetime_registration_is_a_local_error():
    with pytest.raises(LocalProtocolError):
        BindingUpdateList().register(HA, HOA, COA1, 0, now=0)


def test_retransmission_timeline_doubles_and_caps_at_32s():
    bul = BindingUpdateList(initial_sequence_number=0)
    bul.register(HA, HOA, COA1, 100, now=0)
    bul.process_ba(HOA, 0, 0, 100, now=10)           # registered: next BU is not first
    (first,) = bul.register(HA, HOA, COA2, 100, now=S_US)
    sent = run_timers(bul, S_US + 200 * S_US)
    times = [(t - S_US) // S_US for t, _ in sent]
    assert times[:8] == [1, 3, 7, 15, 31, 63, 95, 127]  # gaps 1,2,4,8,16,32,32,32
    seqs = [first.sequence_number] + [b.sequence_number for _, b in sent]
    assert seqs[:4] == [1, 2, 3, 4]                    # §11.8: each one greater
    assert [b.retransmission for _, b in sent[:3]] == [1, 2, 3]


def test_first_registration_uses_initial_bindack_timeout_first_reg():
    bul = BindingUpdateList()
    bul.register(HA, HOA, COA1, 100, now=0)
    times = [t for t, _ in run_timers(bul, 100 * S_US)]
    assert times[:6] == [1_500_000, 4_500_000, 10_500_000, 22_500_000, 46_500_000, 78_500_000]


def test_ba_stops_retransmission_and_sets_expiry_from_send_time():
    bul = BindingUpdateList(initial_sequence_number=5)
    bul.register(HA, HOA, COA1, 100, now=0)
    run_timers(bul, 2 * S_US)                          # one retransmission (seq 6) at 1.5 s
    events = bul.process_ba(HOA, 0, 5, 50, now=2 * S_US)   # late BA for the first one
    (acc,) = [e for e in events if isinstance(e, RegistrationAccepted)]
    e = bul.get(HOA)
    assert e.state is St.REGISTERED and e.next_retransmission_us is None
    assert acc.lifetime == 50 and e.expiry_us == 0 + 50 * 4 * S_US  # counted from BU sent
    assert bul.get_timer() == e.refresh_at_us == int(0.75 * 200 * S_US)


def test_ba_with_unknown_sequence_or_when_idle_is_ignored():
    bul = BindingUpdateList(initial_sequence_number=5)
    assert bul.process_ba(HOA, 0, 5, 50, now=0) == []
    bul.register(HA, HOA, COA1, 100, now=0)
    assert bul.process_ba(HOA, 0, 99, 50, now=1) == []
    assert bul.get(HOA).state is St.REGISTERING


def test_refresh_before_expiry_then_expiry_if_unanswered():
    bul = BindingUpdateList(initial_sequence_number=1, refresh_fraction=0.5)
    bul.register(HA, HOA, COA1, 25, now=0)             # 100 s
    bul.process_ba(HOA, 0, 1, 25, now=S_US)
    events = bul.handle_timer(50 * S_US)
    (refresh,) = sends(events)
    assert refresh.sequence_number == 2 and refresh.care_of_address == COA1
    assert bul.get(HOA).state is St.REFRESHING
    assert bul.handle_timer(49 * S_US) == []           # nothing before its time
    run_timers(bul, 100 * S_US)
    assert bul.get(HOA).state is St.REGISTERING        # binding lost, still trying


def test_binding_refresh_advice_shortens_refresh():
    bul = BindingUpdateList(initial_sequence_number=1)
    bul.register(HA, HOA, COA1, 100, now=0)
    bul.process_ba(HOA, 0, 1, 100, now=0, refresh_interval=10)
    assert bul.get(HOA).refresh_at_us == 40 * S_US


def test_status_135_resyncs_sequence_and_retries():
    bul = BindingUpdateList(initial_sequence_number=3)
    bul.register(HA, HOA, COA1, 100, now=0)
    events = bul.process_ba(HOA, 135, 5000, 0, now=10)
    assert SequenceNumberResynchronized(HOA, 3, 5000) in events
    (retry,) = sends(events)
    assert retry.sequence_number == 5001 and bul.get(HOA).state is St.REGISTERING


def test_135_resync_against_a_real_cache_then_accepted():
    ha = BindingCache(HomeAgentConfiguration(home_prefixes={IPv6Network("2001:db8:1::/64"): None}))
    pad = lambda i: {HOA}  # noqa: E731
    ha.process_bu(BindingUpdateRequest(HOA, COA1, 40000, 100), "mn", pad, 0)
    bul = BindingUpdateList(initial_sequence_number=10000)  # MN rebooted, counter behind
    (b,) = bul.register(HA, HOA, COA2, 100, now=S_US)
    while True:
        r = ha.process_bu(BindingUpdateRequest(HOA, b.care_of_address, b.sequence_number,
                                               b.lifetime), "mn", pad, S_US)
        ack = [e for e in r.events if isinstance(e, SendBindingAcknowledgement)][0]
        events = bul.process_ba(HOA, ack.status, ack.sequence_number, ack.lifetime, now=S_US)
        if not sends(events):
            break
        (b,) = sends(events)
        assert [e for e in events if isinstance(e, SequenceNumberResynchronized)]
    assert r.status == 0 and ha.get(HOA).coa == COA2 and ha.get(HOA).sequence_number == 40001
    assert bul.get(HOA).state is St.REGISTERED


def test_sequence_number_wraps_at_2_16():
    bul = BindingUpdateList(initial_sequence_number=65535)
    (b,) = bul.register(HA, HOA, COA1, 100, now=0)
    (b2,) = sends(bul.handle_timer(bul.get_timer()))
    assert (b.sequence_number, b2.sequence_number) == (65535, 0)


def test_rejection_stops_and_marks_rejected():
    bul = BindingUpdateList(initial_sequence_number=1)
    bul.register(HA, HOA, COA1, 100, now=0)
    assert bul.process_ba(HOA, 129, 1, 0, now=1) == [RegistrationRejected(HOA, 129)]
    assert bul.get(HOA).state is St.REJECTED and bul.get_timer() is None


def test_deregistration():
    bul = BindingUpdateList(initial_sequence_number=1)
    bul.register(HA, HOA, COA1, 100, now=0)
    bul.process_ba(HOA, 0, 1, 100, now=0)
    (d,) = bul.deregister(HOA, now=5)
    assert d.lifetime == 0 and d.care_of_address == HOA and d.sequence_number == 2
    events = bul.process_ba(HOA, 0, 2, 0, now=6, k=True)
    assert Deregistered(HOA) in events and MoveKeyManagementEndpoint(HA, HOA) in events
    assert bul.get(HOA).state is St.NOT_REGISTERED and bul.get_timer() is None


def test_k_bit_and_nat_detection_events():
    bul = BindingUpdateList(initial_sequence_number=1)
    bul.register(HA, HOA, COA1, 100, now=0, k=True)
    ev = bul.process_ba(HOA, 0, 1, 100, now=0, k=True, nat_detection=True)
    assert MoveKeyManagementEndpoint(HA, COA1) in ev and bul.get(HOA).udp_encapsulation
    assert any(isinstance(e, UseUdpEncapsulation) for e in ev)
    bul.register(HA, HOA, COA2, 100, now=1)
    ev = bul.process_ba(HOA, 0, 2, 100, now=2, k=False)
    assert DiscardKeyManagementConnections(HA) in ev
    assert not any(isinstance(e, MoveKeyManagementEndpoint) for e in ev)


def test_deregister_unknown_hoa_is_local_error():
    with pytest.raises(LocalProtocolError):
        BindingUpdateList().deregister(HOA, now=0)
