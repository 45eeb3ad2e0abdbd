"""What the IPsec databases share between entries to stay small per mobile node (issue 14
point 4) must never leak one entry's state into another's: error counters, lifetimes,
hit counters, registrations, and the SAD's indexes."""

from __future__ import annotations

import dataclasses
import ipaddress
import random

import pytest

from mip6lab.ipsec.keyengine import KeyEngine, KeyMessage
from mip6lab.ipsec.replay import ReplayWindow
from mip6lab.ipsec.sad import (NO_ERRORS, NO_LIMITS, Lifetime, SecurityAssociation,
                               SecurityAssociationDatabase)
from mip6lab.ipsec.selectors import PacketSelectors
from mip6lab.ipsec.spd import (BYPASS, DISCARD, PROTECT, Hits, SecurityPolicy,
                               SecurityPolicyDatabase, Selectors)

from ._util import COA6, HA6, HOA6, keys

A = ipaddress.ip_address
NEW_COA = "2001:db8:c0b::10"


def sa(spi, direction="out", src=COA6, dst=HA6, **kw):
    return SecurityAssociation(spi, direction, src, dst, "aes128gcm16",
                               *keys("aes128gcm16"), **kw)


# -- the SA --------------------------------------------------------------------------------


def test_error_counters_are_per_sa_from_the_first_error():
    a, b = sa(0x1001, "in"), sa(0x1002, "in")
    assert a.errors == {} and a.errors is NO_ERRORS       # nothing allocated yet
    a.count_error("replay")
    a.count_error("replay")
    assert a.errors == {"replay": 2} and b.errors == {} and NO_ERRORS == {}
    assert a.as_dict()["errors"] == {"replay": 2} and b.as_dict()["errors"] == {}
    with pytest.raises(TypeError):                          # the shared one is read-only
        NO_ERRORS["replay"] = 1                             # type: ignore[index]


def test_sas_without_limits_share_one_immutable_lifetime():
    a, b = sa(0x1001), sa(0x1002)
    assert a.lifetime is b.lifetime is NO_LIMITS
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.lifetime.hard_seconds = 1                         # type: ignore[misc]
    assert a.lifetime_reached(10**12) is None               # no limit, however old
    c = sa(0x1003, lifetime=Lifetime(hard_seconds=1))
    assert c.lifetime_reached(1_000_000) == "hard" and a.lifetime_reached(10**12) is None


def test_replay_windows_of_one_size_share_their_mask_not_their_state():
    a, b = ReplayWindow(64), ReplayWindow(64)
    assert a.mask is b.mask and a.mask == (1 << 64) - 1 and ReplayWindow(32).mask == 2**32 - 1
    a.accept(5)
    assert (a.top, a.bitmap) == (5, 1) and (b.top, b.bitmap) == (0, 0)


# -- the SAD's indexes ---------------------------------------------------------------------


def test_a_replaced_outbound_sa_keeps_its_place_among_equals():
    """outbound_for picks the first of equally good SAs: a replacement (same SPI and
    destination) takes its predecessor's place, as the SAD's dict index always did."""
    sad = SecurityAssociationDatabase()
    first, second = sa(0x1001, reqid=1, created_us=5), sa(0x1002, reqid=1, created_us=5)
    sad.add(first)
    sad.add(second)
    assert sad.outbound_for(1, HA6) is first
    again = sa(0x1001, reqid=1, created_us=5)
    sad.replace(again)
    assert sad.outbound_for(1, HA6) is again and len(sad) == 2
    assert [id(x) for x in sad.between(A(COA6), A(HA6))] == [id(second), id(again)]
    sad.remove(again)
    sad.remove(second)
    assert sad.outbound_for(1, HA6) is None and sad.between(A(COA6), A(HA6)) == []
    assert not sad._outbound_to and not sad._between        # no empty buckets left


def test_migrated_sas_are_found_under_their_new_pair_only():
    sad = SecurityAssociationDatabase()
    out, back = sa(0x1001, "out"), sa(0x1002, "in", HA6, COA6)
    sad.add(out)
    sad.add(back)
    for x in (out, back):
        key = x.spi if x.direction == "in" else (x.spi, x.dst)
        if x.direction == "out":
            x.src = A(NEW_COA)
        else:
            x.dst = A(NEW_COA)
        sad.rekey(x, key)
    assert sad.between(A(COA6), A(HA6)) == []
    assert {id(x) for x in sad.between(A(NEW_COA), A(HA6))} == {id(out), id(back)}
    sad.remove(out)
    assert [id(x) for x in sad.between(A(HA6), A(NEW_COA))] == [id(back)]


def test_one_sa_object_in_two_sads_stays_consistent_in_both():
    one, two = SecurityAssociationDatabase(), SecurityAssociationDatabase()
    x = sa(0x1001)
    one.add(x)
    two.add(x)
    one.remove(x)
    assert one.between(A(COA6), A(HA6)) == [] and two.between(A(COA6), A(HA6)) == [x]
    two.remove(x)
    assert two.between(A(COA6), A(HA6)) == [] and not two._between


def test_flush_then_refile():
    sad = SecurityAssociationDatabase()
    x = sa(0x1001)
    sad.add(x)
    assert sad.flush() == [x] and sad.between(A(COA6), A(HA6)) == []
    sad.add(x)
    assert sad.between(A(COA6), A(HA6)) == [x] and sad.outbound_for(0, HA6) is x


# -- the SPD -------------------------------------------------------------------------------


def test_hits_are_a_two_key_mapping_per_policy():
    a = SecurityPolicy(Selectors.make(remote=f"{HA6}/128"), BYPASS)
    b = dataclasses.replace(a, hits={"out": 0, "in": 0})   # as the coupling copies one
    assert isinstance(b.hits, Hits) and a.hits == b.hits == {"out": 0, "in": 0}
    spd = SecurityPolicyDatabase()
    spd.add(a)
    packet = PacketSelectors(A(COA6), A(HA6), 17)
    assert spd.lookup(packet, outbound=True) is a
    assert a.hits == {"out": 1, "in": 0} and b.hits == {"out": 0, "in": 0}
    a.hits["in"] += 2
    assert dict(a.hits) == {"out": 1, "in": 2} == a.as_dict()["hits"]
    assert repr(a.hits) == "{'out': 1, 'in': 2}"
    with pytest.raises(KeyError):
        a.hits["sideways"] = 1
    with pytest.raises(ValueError):
        SecurityPolicy(Selectors(), BYPASS, hits={"up": 1})


def test_spd_order_holds_across_insert_remove_and_flush():
    """Appended entries are ranked by their index, an insertion at a position switches
    to an explicit rank, a flush back: the first match is the list's every time."""
    rng = random.Random(3)
    spd = SecurityPolicyDatabase()
    nets = ["::/0", f"{HA6}/128", "2001:db8:2::/64"]
    packet = PacketSelectors(A(COA6), A(HA6), 17)

    def scan():
        return next((p for p in spd.policies if p.applies(packet, True)), None)

    for round_ in range(3):
        for step in range(40):
            policy = SecurityPolicy(Selectors.make(remote=rng.choice(nets),
                                                   protocol=rng.choice([None, "udp"])),
                                    rng.choice([PROTECT, BYPASS, DISCARD]))
            what = rng.random()
            if what < 0.2 and spd.policies:
                spd.remove(rng.choice(spd.policies).index)
            elif what < 0.35 and round_:
                spd.add(policy, position=rng.randrange(len(spd.policies) + 1))
            else:
                spd.add(policy)
            assert spd.lookup(packet, True) is scan()
        spd.flush()
        assert spd.lookup(packet, True) is None


# -- the key engine ------------------------------------------------------------------------


def test_messages_default_to_empty_sequences_and_registrations_are_per_socket():
    engine = KeyEngine("ha", SecurityAssociationDatabase(), SecurityPolicyDatabase(),
                       lambda: 0, lambda: 0x2000)
    m = KeyMessage("GET")
    assert (m.migrate, m.dump) == ((), ()) and not KeyMessage("DUMP").dump
    assert engine.open("x").send(KeyMessage("GET", spi=0x999)).dump == ()
    ike1, ike2, mip6d = engine.open("ike1"), engine.open("ike2"), engine.open("mip6d")
    ike1.register()
    ike2.register("ACQUIRE")
    assert ike1.registered == ike2.registered == {"ACQUIRE"} and not mip6d.registered
    ike2.register("MIGRATE")
    assert ike2.registered == {"ACQUIRE", "MIGRATE"} and ike1.registered == {"ACQUIRE"}
    acquire = KeyMessage("ACQUIRE", src=A(HOA6), dst=A(HA6))
    assert engine.notify(acquire, only_registered=True) == ["ike1", "ike2"]
