"""State made at its first use, and crossings counted at once (issue 14, round 3): a mobile
node's PAD and its stack's ACQUIRE and lifetime tables stay unmade until used; each
economy must leave the behaviour as it was."""

from __future__ import annotations

import ipaddress

import pytest

from mip6lab.ipsec.keyengine import KeyEngine, KeyMessage
from mip6lab.ipsec.pad import HomeAddressTaken, PeerAuthorizationDatabase, \
    PeerAuthorizationEntry
from mip6lab.ipsec.sad import Lifetime, SecurityAssociation, SecurityAssociationDatabase
from mip6lab.ipsec.spd import SecurityPolicyDatabase

from ._util import COA6, HA6, keys
from .test_stack import pair_lab


def _entry(identity: str, *homes: str) -> PeerAuthorizationEntry:
    return PeerAuthorizationEntry("fqdn", identity, psk=b"k" * 16,
                                  home_addresses=[ipaddress.ip_address(h) for h in homes])


def test_an_empty_pad_answers_without_indexes_of_its_own():
    pad = PeerAuthorizationDatabase()
    other = PeerAuthorizationDatabase()
    assert pad._owners is other._owners and not isinstance(pad._owners, dict)
    assert pad.lookup("fqdn", "mn1.example") is None
    assert pad.owner_of("2001:db8::1") is None
    assert pad.unbind_home_addresses("fqdn", "mn1.example", lambda a: True) == []
    with pytest.raises(KeyError):
        pad.bind_home_address("fqdn", "mn1.example", "2001:db8::1")
    pad.add(_entry("mn1.example"))
    assert type(pad._owners) is dict and other.lookup("fqdn", "mn1.example") is None


def test_home_addresses_are_owned_by_value_whatever_form_they_are_given_in():
    pad = PeerAuthorizationDatabase()
    mn1 = pad.add(_entry("MN1.example", "2001:db8::1"))
    mn2 = pad.add(_entry("mn2.example"))
    assert pad.owner_of("2001:db8::1") is mn1
    assert pad.owner_of(ipaddress.ip_address("2001:db8:0:0::1")) is mn1
    pad.bind_home_address("fqdn", "mn2.example", "2001:db8::2")
    assert pad.owner_of(ipaddress.IPv6Address("2001:db8::2")) is mn2
    with pytest.raises(HomeAddressTaken):
        pad.bind_home_address("fqdn", "mn2.example", "2001:db8::1")
    # ::1.2.3.4 and 1.2.3.4 are two addresses, not one
    pad.bind_home_address("fqdn", "mn2.example", "::c000:201")
    pad.bind_home_address("fqdn", "mn1.example", "192.0.2.1")
    assert pad.owner_of("::c000:201") is mn2 and pad.owner_of("192.0.2.1") is mn1
    gone = pad.unbind_home_addresses("fqdn", "mn2.example", lambda a: a.version == 6)
    assert gone == [ipaddress.ip_address("2001:db8::2"), ipaddress.ip_address("::c000:201")]
    assert pad.owner_of("2001:db8::2") is None and pad.owner_of("192.0.2.1") is mn1


@pytest.mark.parametrize("kept", [True, False])
def test_a_request_and_its_reply_are_counted_as_two_crossings(kept):
    counted, events = [], []
    engine = KeyEngine("mn", SecurityAssociationDatabase(), SecurityPolicyDatabase(),
                       lambda: 1, lambda: 0x1234,
                       lambda kind, summary, **data: events.append(summary))
    engine.keeps = lambda kind: kept
    engine.count = lambda kind, n=1: counted.append((kind, n))
    mobility, ike = engine.open("mip6d"), engine.open("iked")
    sa = SecurityAssociation(0x1001, "out", COA6, HA6, "aes128gcm16", *keys("aes128gcm16"))
    reply = mobility.send(KeyMessage("ADD", sa=sa))
    assert reply.error is None and engine.crossings == 2
    if kept:
        assert counted == [] and len(events) == 2 and all(events)
        assert mobility.received == ike.received == [reply]
    else:
        assert sum(n for kind, n in counted if kind == "seam") == 2 and events == []
        assert mobility.received == ike.received == []
    error = mobility.send(KeyMessage("ADD", sa=sa))     # EEXIST: a reply all the same
    assert error.error == "EEXIST" and engine.crossings == 4


def test_lifetime_timers_are_kept_in_a_table_made_for_the_first_sa_with_a_lifetime():
    plain = pair_lab(suite="aes128gcm16")
    plain.run(until=2)
    assert plain.nodes["a"].ipsec._timers is None
    assert plain.nodes["a"].ipsec._last_acquire is None
    lab = pair_lab(suite="aes128gcm16", lifetime=Lifetime(soft_seconds=2, hard_seconds=3))
    stack = lab.nodes["a"].ipsec
    sa = stack.sad.get(0x1001, "out")
    assert len(stack._timers[id(sa)]) == 2
    lab.run(until=5)
    assert sa.state == "dead" and id(sa) not in stack._timers
