"""The key engine: PF_KEY-like messages (RFC 2367) and MIGRATE (draft-sugimoto-mip6-pfkey-
migrate-04), each crossing of the seam traced with both ends named."""

from __future__ import annotations

import ipaddress
import random

import pytest

from mip6lab.ipsec.keyengine import (KERNEL, KeyEngine, KeyMessage, MigrateRequest)
from mip6lab.ipsec.sad import SecurityAssociation, SecurityAssociationDatabase
from mip6lab.ipsec.spd import (PROTECT, IPsecTemplate, SecurityPolicy,
                               SecurityPolicyDatabase, Selectors)

from ._util import COA6, HA6, HOA6, keys

A = ipaddress.ip_address
NEW_COA = "2001:db8:c0b::10"


class World:
    """One node's engine with a recording trace and a settable clock."""

    def __init__(self, seed: int = 7) -> None:
        self.events: list[tuple[str, str, dict]] = []
        self.now = 1_000
        rng = random.Random(seed)
        self.sad = SecurityAssociationDatabase()
        self.spd = SecurityPolicyDatabase()
        self.engine = KeyEngine("mn", self.sad, self.spd, lambda: self.now,
                                lambda: rng.randint(0x100, 0xFFFFFFFF), self.trace)

    def trace(self, kind: str, summary: str, **data) -> None:
        self.events.append((kind, summary, data))


@pytest.fixture
def world():
    return World()


def sa(spi, direction="out", src=COA6, dst=HA6, suite="aes128gcm16", **kw):
    return SecurityAssociation(spi, direction, src, dst, suite, *keys(suite), **kw)


def tunnel_policy(reqid=2, local=COA6, remote=HA6):
    return SecurityPolicy(Selectors.make(local=HOA6, remote="any"), PROTECT,
                          IPsecTemplate("tunnel", A(local), A(remote), reqid), name="payload")


def test_open_returns_one_socket_per_name(world):
    a = world.engine.open("mobility")
    assert world.engine.open("mobility") is a
    assert set(world.engine.sockets) == {"mobility"}
    assert a.name == "mobility" and a.engine is world.engine


def test_getspi_makes_a_larval_sa_and_update_completes_it(world):
    ike = world.engine.open("ike")
    reply = ike.send(KeyMessage("GETSPI", src=HA6, dst=COA6))
    assert reply.error is None
    spi = reply.spi
    assert 0x100 <= spi <= 0xFFFFFFFF
    larval = world.sad.get(spi, "in")
    assert larval is reply.sa and larval.state == "larval"
    assert (larval.src, larval.dst, larval.created_us) == (A(HA6), A(COA6), 1_000)
    # Deterministic: the same seed draws the same SPI.
    assert World(seed=7).engine.open("ike").send(
        KeyMessage("GETSPI", src=HA6, dst=COA6)).spi == spi
    assert World(seed=8).engine.open("ike").send(
        KeyMessage("GETSPI", src=HA6, dst=COA6)).spi != spi

    world.now = 2_000
    complete = sa(spi, "in", HA6, COA6)
    reply = ike.send(KeyMessage("UPDATE", sa=complete))
    assert reply.error is None
    assert world.sad.get(spi, "in") is complete
    assert complete.state == "mature" and complete.created_us == 2_000
    assert len(world.sad) == 1


def test_getspi_never_reuses_a_taken_spi():
    spis = iter([0x50, 0x1234, 0x1234, 0x5678])   # 0x50 is reserved (< 256)
    sad, spd = SecurityAssociationDatabase(), SecurityPolicyDatabase()
    engine = KeyEngine("ha", sad, spd, lambda: 0, lambda: next(spis))
    sock = engine.open("ike")
    assert sock.send(KeyMessage("GETSPI", src=COA6, dst=HA6)).spi == 0x1234
    assert sock.send(KeyMessage("GETSPI", src=COA6, dst=HA6)).spi == 0x5678


def test_getspi_gives_up_with_eexist():
    engine = KeyEngine("ha", SecurityAssociationDatabase(), SecurityPolicyDatabase(),
                       lambda: 0, lambda: 5)          # never a valid SPI
    reply = engine.open("ike").send(KeyMessage("GETSPI", src=COA6, dst=HA6))
    assert reply.error == "EEXIST" and "no free SPI" in reply.note


def test_update_of_an_unknown_sa_is_enoent(world):
    reply = world.engine.open("ike").send(KeyMessage("UPDATE", sa=sa(0x999, "in", HA6, COA6)))
    assert reply.error == "ENOENT"
    assert len(world.sad) == 0
    assert world.engine.open("ike").send(KeyMessage("UPDATE")).error == "EINVAL"


def test_add_then_eexist(world):
    ike = world.engine.open("ike")
    first = sa(0x1001)
    assert ike.send(KeyMessage("ADD", sa=first)).error is None
    assert first.created_us == 1_000
    reply = ike.send(KeyMessage("ADD", sa=sa(0x1001)))
    assert reply.error == "EEXIST"
    assert world.sad.get(0x1001, "out", HA6) is first
    # The same SPI towards another destination is another outbound SA.
    assert ike.send(KeyMessage("ADD", sa=sa(0x1001, dst="2001:db8:9::1"))).error is None
    assert ike.send(KeyMessage("ADD")).error == "EINVAL"


def test_on_sa_added_callbacks(world):
    added = []
    world.engine.on_sa_added.append(added.append)
    ike = world.engine.open("ike")
    x = sa(0x1001)
    ike.send(KeyMessage("ADD", sa=x))
    ike.send(KeyMessage("ADD", sa=sa(0x1001)))       # refused: no callback
    assert added == [x]


def test_delete_and_enoent(world):
    ike = world.engine.open("ike")
    x = sa(0x1001)
    ike.send(KeyMessage("ADD", sa=x))
    reply = ike.send(KeyMessage("DELETE", spi=0x1001, direction="out", dst=HA6))
    assert reply.error is None and reply.sa is x
    assert x.state == "dead" and world.sad.get(0x1001, "out", HA6) is None
    assert ike.send(KeyMessage("DELETE", spi=0x1001, direction="out",
                               dst=HA6)).error == "ENOENT"
    assert ike.send(KeyMessage("DELETE")).error == "ENOENT"


def test_get(world):
    ike = world.engine.open("ike")
    x = sa(0x2002, "in", HA6, COA6)
    ike.send(KeyMessage("ADD", sa=x))
    assert ike.send(KeyMessage("GET", spi=0x2002, direction="in")).sa is x
    assert ike.send(KeyMessage("GET", spi=0x2003, direction="in")).error == "ENOENT"


def test_flush_and_dump(world):
    ike = world.engine.open("ike")
    a, b = sa(0x1001), sa(0x2002, "in", HA6, COA6)
    ike.send(KeyMessage("ADD", sa=a))
    ike.send(KeyMessage("ADD", sa=b))
    dump = ike.send(KeyMessage("DUMP")).dump
    assert {row["spi"] for row in dump} == {"0x00001001", "0x00002002"}
    assert {row["direction"] for row in dump} == {"in", "out"}
    reply = ike.send(KeyMessage("FLUSH"))
    assert reply.error is None and "2 SAs removed" in reply.note
    assert len(world.sad) == 0 and a.state == b.state == "dead"
    assert ike.send(KeyMessage("DUMP")).dump == []


def test_unknown_message_type_rejected():
    with pytest.raises(ValueError, match="unknown key message type"):
        KeyMessage("SPDGET")


def test_expire_cannot_be_sent_by_a_module(world):
    assert world.engine.open("ike").send(KeyMessage("EXPIRE")).error == "EINVAL"


# -- policies ------------------------------------------------------------------------------


def bu_selectors():
    return Selectors.make(local=HOA6, remote=HA6, protocol="mh", local_mh_type="BU",
                          remote_mh_type="BA")


def test_spdadd_records_the_owner_and_refuses_a_second_installer(world):
    """RFC 4877 leaves open who installs the BU/BA entry: if both the mobility module and
    the IKE daemon do, the second gets EEXIST naming the first."""
    mobility, ike = world.engine.open("mobility"), world.engine.open("ike")
    policy = SecurityPolicy(bu_selectors(), PROTECT, IPsecTemplate(reqid=1))
    reply = mobility.send(KeyMessage("SPDADD", policy=policy))
    assert reply.error is None
    assert policy.owner == "mobility" and policy.index == 1
    clash = ike.send(KeyMessage("SPDADD", policy=SecurityPolicy(bu_selectors(), PROTECT)))
    assert clash.error == "EEXIST"
    assert "installed by mobility" in clash.note and "same selectors" in clash.note
    assert len(world.spd) == 1
    # Same selectors but another direction is another entry.
    assert ike.send(KeyMessage("SPDADD", policy=SecurityPolicy(
        bu_selectors(), PROTECT, direction="out"))).error is None
    assert [p.owner for p in world.spd] == ["mobility", "ike"]
    assert ike.send(KeyMessage("SPDADD")).error == "EINVAL"


def test_spdadd_keeps_an_explicit_owner(world):
    policy = SecurityPolicy(bu_selectors(), PROTECT, owner="setkey")
    world.engine.open("ike").send(KeyMessage("SPDADD", policy=policy))
    assert policy.owner == "setkey"


def test_spddelete_spddump_spdflush(world):
    sock = world.engine.open("mobility")
    p1 = SecurityPolicy(bu_selectors(), PROTECT, name="bu")
    p2 = tunnel_policy()
    sock.send(KeyMessage("SPDADD", policy=p1))
    sock.send(KeyMessage("SPDADD", policy=p2))
    dump = sock.send(KeyMessage("SPDDUMP")).dump
    assert [row["name"] for row in dump] == ["bu", "payload"]
    assert [row["owner"] for row in dump] == ["mobility", "mobility"]
    reply = sock.send(KeyMessage("SPDDELETE", policy_index=p1.index))
    assert reply.error is None and reply.policy is p1
    assert list(world.spd) == [p2]
    assert sock.send(KeyMessage("SPDDELETE", policy_index=p1.index)).error == "ENOENT"
    assert sock.send(KeyMessage("SPDDELETE")).error == "ENOENT"
    reply = sock.send(KeyMessage("SPDFLUSH"))
    assert "1 policies removed" in reply.note and len(world.spd) == 0


# -- who hears what ------------------------------------------------------------------------


def test_register_and_acquire_reaches_only_registered_sockets(world):
    ike, mobility = world.engine.open("ike"), world.engine.open("mobility")
    ike.register()
    assert ike.registered == {"ACQUIRE"}
    acquire = KeyMessage("ACQUIRE", policy=tunnel_policy(), src=COA6, dst=HA6)
    receivers = world.engine.notify(acquire, only_registered=True)
    assert receivers == ["ike"]
    assert ike.received[-1] is acquire and acquire.sender == KERNEL
    assert all(m.type != "ACQUIRE" for m in mobility.received)
    nobody = World()
    nobody.engine.open("mobility")
    assert nobody.engine.notify(KeyMessage("ACQUIRE"), only_registered=True) == []


def test_expire_goes_to_all(world):
    ike, mobility = world.engine.open("ike"), world.engine.open("mobility")
    ike.register()
    x = sa(0x1001)
    expire = KeyMessage("EXPIRE", sa=x, lifetime_kind="soft")
    assert world.engine.notify(expire) == ["ike", "mobility"]
    assert ike.received[-1] is expire and mobility.received[-1] is expire
    assert "soft lifetime" in expire.describe()


@pytest.mark.parametrize("kind", ["ADD", "DELETE", "MIGRATE"])
def test_changes_are_broadcast_to_the_other_sockets(world, kind):
    ike, mobility, monitor = (world.engine.open(n) for n in ("ike", "mobility", "monitor"))
    heard = []
    monitor.on_message(heard.append)
    x = sa(0x1001, reqid=2)
    policy = tunnel_policy()
    if kind != "ADD":
        ike.send(KeyMessage("ADD", sa=x))
        mobility.send(KeyMessage("SPDADD", policy=policy))
    before = len(heard)
    message = {
        "ADD": KeyMessage("ADD", sa=x),
        "DELETE": KeyMessage("DELETE", spi=0x1001, direction="out", dst=HA6),
        "MIGRATE": KeyMessage("MIGRATE", selectors=policy.selectors, k_bit=True,
                              migrate=[MigrateRequest(COA6, HA6, NEW_COA, HA6, reqid=2)]),
    }[kind]
    sender = mobility if kind == "MIGRATE" else ike
    reply = sender.send(message)
    assert reply.error is None
    assert sender.received[-1] is reply
    others = [s for s in (ike, mobility, monitor) if s is not sender]
    for other in others:
        assert other.received[-1] is reply
    assert len(heard) == before + 1 and heard[-1].type == kind
    assert reply.sender == KERNEL and reply.seq == message.seq


def test_answers_and_errors_are_not_broadcast(world):
    ike, mobility = world.engine.open("ike"), world.engine.open("mobility")
    ike.send(KeyMessage("DUMP"))
    ike.send(KeyMessage("GET", spi=0x5, direction="in"))            # ENOENT
    ike.send(KeyMessage("DELETE", spi=0x5, direction="in"))         # ENOENT: not news
    assert mobility.received == []
    assert [m.type for m in ike.received] == ["DUMP", "GET", "DELETE"]


def test_every_crossing_is_a_seam_event_naming_both_ends(world):
    ike = world.engine.open("ike")
    world.engine.open("mobility")
    ike.register()
    ike.send(KeyMessage("ADD", sa=sa(0x1001)))
    ike.send(KeyMessage("GET", spi=0x77, direction="in"))
    world.engine.notify(KeyMessage("ACQUIRE", src=COA6, dst=HA6), only_registered=True)
    kinds = {kind for kind, _, _ in world.events}
    assert kinds == {"seam"}
    summary = [(d["sender"], tuple(d["receivers"]), d["message"], d["error"])
               for _, _, d in world.events]
    assert summary == [
        ("ike", (KERNEL,), "REGISTER", None),
        (KERNEL, ("ike",), "REGISTER", None),
        ("ike", (KERNEL,), "ADD", None),
        (KERNEL, ("ike", "mobility"), "ADD", None),
        ("ike", (KERNEL,), "GET", None),
        (KERNEL, ("ike",), "GET", "ENOENT"),
        (KERNEL, ("ike",), "ACQUIRE", None),
    ]
    assert world.engine.crossings == 7 == len(world.events)
    text = world.events[3][1]
    assert text.startswith("kernel → ike, mobility: ADD spi=0x00001001 out")
    assert "error=ENOENT" in world.events[5][1]


def test_sequence_numbers_pair_requests_and_replies(world):
    ike = world.engine.open("ike")
    r1 = ike.send(KeyMessage("DUMP"))
    r2 = ike.send(KeyMessage("DUMP", seq=42))
    assert r1.seq == 1 and r2.seq == 42


def test_works_without_a_trace():
    engine = KeyEngine("n", SecurityAssociationDatabase(), SecurityPolicyDatabase(),
                       lambda: 0, lambda: 0x1000)
    engine.open("x").send(KeyMessage("DUMP"))
    assert engine.crossings == 2


# -- MIGRATE -------------------------------------------------------------------------------


def migrate_setup(world):
    """The MN's tunnel policy with its SA pair (reqid 2) and an unrelated SA."""
    mobility, ike = world.engine.open("mobility"), world.engine.open("ike")
    policy = tunnel_policy()
    mobility.send(KeyMessage("SPDADD", policy=policy))
    out = sa(0x1001, "out", COA6, HA6, mode="tunnel", reqid=2)
    inb = sa(0x2002, "in", HA6, COA6, mode="tunnel", reqid=2)
    other = sa(0x3003, "out", COA6, "2001:db8:9::9", mode="tunnel", reqid=9)
    for x in (out, inb, other):
        ike.send(KeyMessage("ADD", sa=x))
    return mobility, ike, policy, out, inb, other


def snapshot(world):
    return ([(p.template.tunnel_local, p.template.tunnel_remote) for p in world.spd],
            sorted((x.spi, x.direction, str(x.src), str(x.dst)) for x in world.sad))


def test_migrate_without_selectors_or_endpoints_is_einval(world):
    mobility, *_ = migrate_setup(world)
    before = snapshot(world)
    assert mobility.send(KeyMessage("MIGRATE", migrate=[
        MigrateRequest(COA6, HA6, NEW_COA, HA6)])).error == "EINVAL"
    assert mobility.send(KeyMessage("MIGRATE",
                                    selectors=tunnel_policy().selectors)).error == "EINVAL"
    assert snapshot(world) == before


def test_migrate_unknown_selectors_is_enoent_and_changes_nothing(world):
    mobility, *_ = migrate_setup(world)
    before = snapshot(world)
    reply = mobility.send(KeyMessage("MIGRATE", selectors=Selectors.make(local="2001:db8::1"),
                                     migrate=[MigrateRequest(COA6, HA6, NEW_COA, HA6)]))
    assert reply.error == "ENOENT"
    assert snapshot(world) == before


def test_migrate_moves_the_template_and_both_sas(world):
    mobility, ike, policy, out, inb, other = migrate_setup(world)
    reply = mobility.send(KeyMessage(
        "MIGRATE", selectors=tunnel_policy().selectors, k_bit=True,
        migrate=[MigrateRequest(COA6, HA6, NEW_COA, HA6, reqid=2)]))
    assert reply.error is None and "2 SAs moved" in reply.note
    assert (policy.template.tunnel_local, policy.template.tunnel_remote) == \
        (A(NEW_COA), A(HA6))
    assert (out.src, out.dst) == (A(NEW_COA), A(HA6))       # outbound: CoA -> HA
    assert (inb.src, inb.dst) == (A(HA6), A(NEW_COA))       # inbound: HA -> CoA
    assert (other.src, other.dst) == (A(COA6), A("2001:db8:9::9"))   # other reqid: kept
    assert world.sad.get(0x2002, "in") is inb
    assert world.sad.get(0x1001, "out", HA6) is out
    # K bit: IKE hears the MIGRATE (with K) and learns it must move the IKE SA too.
    heard = ike.received[-1]
    assert heard is reply and heard.type == "MIGRATE" and heard.k_bit is True
    assert "K=1" in heard.describe()


def test_migrate_refiles_an_outbound_sa_under_its_new_destination(world):
    """On the HA, the outbound SA goes to the MN's CoA: after MIGRATE the SAD must find it
    under the new CoA (and no longer under the old one)."""
    mobility, ike = world.engine.open("mobility"), world.engine.open("ike")
    policy = SecurityPolicy(Selectors.make(local="any", remote=HOA6), PROTECT,
                            IPsecTemplate("tunnel", A(HA6), A(COA6), 4))
    mobility.send(KeyMessage("SPDADD", policy=policy))
    out = sa(0x4004, "out", HA6, COA6, mode="tunnel", reqid=4)
    inb = sa(0x5005, "in", COA6, HA6, mode="tunnel", reqid=4)
    ike.send(KeyMessage("ADD", sa=out))
    ike.send(KeyMessage("ADD", sa=inb))
    reply = mobility.send(KeyMessage("MIGRATE", selectors=policy.selectors, k_bit=False,
                                     migrate=[MigrateRequest(HA6, COA6, HA6, NEW_COA)]))
    assert reply.error is None and reply.k_bit is False
    assert world.sad.get(0x4004, "out", NEW_COA) is out
    assert world.sad.get(0x4004, "out", COA6) is None
    assert (inb.src, inb.dst) == (A(NEW_COA), A(HA6))
    assert (policy.template.tunnel_local, policy.template.tunnel_remote) == \
        (A(HA6), A(NEW_COA))
    assert world.sad.outbound_for(4, A(NEW_COA)) is out


def test_migrate_with_no_matching_sa_still_succeeds(world):
    """The draft: success even if no SA matched (only the policy moved)."""
    mobility, _, policy, out, _, _ = migrate_setup(world)
    reply = mobility.send(KeyMessage("MIGRATE", selectors=policy.selectors, migrate=[
        MigrateRequest(COA6, HA6, NEW_COA, HA6, reqid=77)]))
    assert reply.error is None and "0 SAs moved" in reply.note
    assert policy.template.tunnel_local == A(NEW_COA)
    assert out.src == A(COA6)
