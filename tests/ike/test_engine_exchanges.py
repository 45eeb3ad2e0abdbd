"""CREATE_CHILD_SA, IKE SA rekey, liveness, COOKIE and MOBIKE on two engines in memory."""

from __future__ import annotations

import itertools
import random

import pytest

from mip6lab.ikev2.config import IkeConfig
from mip6lab.ikev2.pools import AddressPool
from mip6lab.ikev2.sa import (ChildSaDeleted, ChildSaEstablished, ChildSaRekeyed, IkeSa,
                              IkeSaDeleted, IkeSaMoved, IkeSaRekeyed, cookie_check)
from mip6lab.wire.ikev2 import unwrap_udp

PSK = "exchanges-psk"


class Pair:
    def __init__(self, seed=1, **initiator_options):
        rng = random.Random(seed)
        spis = itertools.count(0x1000)
        self.i = IkeSa(IkeConfig.make("mn@mip6lab.example", PSK, "ha.mip6lab.example",
                                      request=("ipv6",), **initiator_options),
                       True, "2001:db8:2::10", "2001:db8:1::1", rng.randbytes,
                       lambda: next(spis))
        self.r = IkeSa(IkeConfig.make("ha.mip6lab.example", PSK, "mn@mip6lab.example",
                                      pool6=AddressPool.parse("2001:db8:aaaa::/64")),
                       False, "2001:db8:1::1", "2001:db8:2::10", rng.randbytes,
                       lambda: next(spis))
        self.events = {"i": [], "r": []}
        self.wire = []

    def deliver(self, to, d):
        data = unwrap_udp(d.data, 4500) if d.dport == 4500 else d.data
        to.receive(data, d.src, d.sport, 0, d.dport)

    def pump(self):
        for _ in range(6):
            for d in self.i.datagrams_to_send():
                self.wire.append(d)
                self.deliver(self.r, d)
            for d in self.r.datagrams_to_send():
                self.wire.append(d)
                self.deliver(self.i, d)
        for key, sa in (("i", self.i), ("r", self.r)):
            while (event := sa.next_event()) is not None:
                self.events[key].append(event)

    def of(self, key, cls):
        return [e for e in self.events[key] if isinstance(e, cls)]

    def follow_rekey(self):
        self.i = self.of("i", IkeSaRekeyed)[-1].new
        self.r = self.of("r", IkeSaRekeyed)[-1].new


@pytest.fixture
def pair():
    p = Pair()
    p.i.initiate(0)
    p.pump()
    assert p.i.state == p.r.state == "ESTABLISHED"
    return p


def crosswise(a, b):
    """Each side's outbound keys are the other's inbound keys, SPIs mirrored."""
    ca = {c.inbound_spi: c for c in a.children.values()}
    cb = {c.inbound_spi: c for c in b.children.values()}
    assert len(ca) == len(cb)
    for spi, child in ca.items():
        peer = cb[child.outbound_spi]
        assert peer.outbound_spi == spi
        assert (child.encr_out, child.integ_out) == (peer.encr_in, peer.integ_in)
        assert (child.encr_in, child.integ_in) == (peer.encr_out, peer.integ_out)


def test_a_second_child_sa_gets_its_own_spis_and_keys(pair):
    first = pair.i.child
    pair.i.create_child()
    pair.pump()
    new_i = pair.of("i", ChildSaEstablished)[-1]
    assert new_i.inbound_spi != first.inbound_spi and new_i.encr_out != first.encr_out
    assert len(pair.i.children) == len(pair.r.children) == 2
    crosswise(pair.i, pair.r)


@pytest.mark.parametrize("who", ["i", "r"])
def test_child_rekey_from_either_side_replaces_and_deletes_the_old_pair(pair, who):
    sa = getattr(pair, who)
    old = sa.child.inbound_spi
    sa.create_child(rekey=old)
    pair.pump()
    rekeyed = pair.of(who, ChildSaRekeyed)
    assert [e.old_inbound_spi for e in rekeyed] == [old]
    other = "r" if who == "i" else "i"
    assert pair.of(other, ChildSaRekeyed)             # the peer saw it as a rekey too
    deleted = pair.of(who, ChildSaDeleted) + pair.of(other, ChildSaDeleted)
    assert {d.by_peer for d in deleted} == {False, True}
    assert old not in sa.children and len(pair.i.children) == len(pair.r.children) == 1
    crosswise(pair.i, pair.r)


def test_rekeying_an_unknown_child_is_refused(pair):
    with pytest.raises(ValueError):
        pair.i.create_child(rekey=0xDEAD)


@pytest.mark.parametrize("who", ["i", "r"])
def test_ike_sa_rekey_moves_the_children_and_deletes_the_old_sa(pair, who):
    old_spis = (pair.i.spi_i, pair.i.spi_r)
    children = set(pair.i.children)
    getattr(pair, who).rekey_ike()
    pair.pump()
    assert pair.i.state == pair.r.state == "CLOSED"       # the old IKE SA is gone
    assert pair.of("i", IkeSaDeleted) and pair.of("r", IkeSaDeleted)
    pair.follow_rekey()
    assert (pair.i.spi_i, pair.i.spi_r) == (pair.r.spi_i, pair.r.spi_r) != old_spis
    assert pair.i.initiator == (who == "i") and pair.r.initiator == (who == "r")
    assert pair.i.keys.sk_d == pair.r.keys.sk_d and pair.i.keys.sk_ei == pair.r.keys.sk_ei
    assert set(pair.i.children) == children
    # the new IKE SA works: a child rekey over it
    pair.i.create_child(rekey=next(iter(children)))
    pair.pump()
    crosswise(pair.i, pair.r)


def test_liveness_check_is_answered_and_changes_nothing(pair):
    pair.i.check_liveness()
    pair.pump()
    assert pair.i.pending is None and pair.i.state == pair.r.state == "ESTABLISHED"
    assert len(pair.wire) == 6


def test_cookie_under_load_is_asked_and_returned():
    """RFC 7296 §2.6: a stateless responder asks for a cookie, the initiator repeats with it."""
    p = Pair()
    secret = b"s" * 32
    p.i.initiate(0)
    first = p.i.datagrams_to_send()[0]
    answer = cookie_check(first.data, first.src, secret, 1)
    assert answer is not None                          # no cookie yet: one is asked for
    p.i.receive(answer, "2001:db8:1::1", 500, 0)
    retry = p.i.datagrams_to_send()[0]
    assert cookie_check(retry.data, retry.src, secret, 1) is None   # it carries ours
    assert cookie_check(retry.data, "2001:db8:9::9", secret, 1) is not None  # bound to IPi
    p.deliver(p.r, retry)
    p.pump()
    assert p.i.state == p.r.state == "ESTABLISHED"


def test_mobike_update_moves_both_ends_to_the_new_address(pair):
    pair.i.update_addresses("2001:db8:3::10")
    pair.pump()
    moved_i, moved_r = pair.of("i", IkeSaMoved), pair.of("r", IkeSaMoved)
    assert moved_i and moved_r
    assert moved_r[0].old_remote == "2001:db8:2::10" and moved_r[0].remote == "2001:db8:3::10"
    assert str(pair.r.remote) == "2001:db8:3::10"
    assert pair.i.local_port == pair.r.local_port == 4500


def test_only_the_initiator_of_a_mobike_sa_may_move_it(pair):
    with pytest.raises(ValueError):
        pair.r.update_addresses("2001:db8:1::99")
    q = Pair(mobike=False)
    q.i.initiate(0)
    q.pump()
    with pytest.raises(ValueError):
        q.i.update_addresses("2001:db8:3::10")


def test_when_the_initiator_refuses_the_responder_neither_side_keeps_an_sa():
    """RFC 7296 §2.21.2: the responder had installed its child SA; the initiator's
    INFORMATIONAL AUTHENTICATION_FAILED makes it drop the SA and the child again."""
    from mip6lab.ikev2.sa import IkeSaFailed

    p = Pair()
    p.i.config.remote_id = ("fqdn", "other-ha.mip6lab.example")
    p.i.initiate(0)
    p.pump()
    assert p.i.state == p.r.state == "CLOSED"
    assert [e.notify for e in p.of("i", IkeSaFailed)] == ["AUTHENTICATION_FAILED"]
    assert [e.notify for e in p.of("r", IkeSaFailed)] == ["AUTHENTICATION_FAILED"]
    established = p.of("r", ChildSaEstablished)
    deleted = p.of("r", ChildSaDeleted)
    assert [c.inbound_spi for c in established] == [d.inbound_spi for d in deleted]
    assert not p.r.children and not p.i.children


def _forged(sa: IkeSa, data: bytes, *, spi_i: bytes | None = None,
            spi_r: bytes | None = None) -> bytes:
    """``data``, a protected message ``sa`` sent, sealed again with ``sa``'s own keys under
    other SPIs in its header: a forgery only the SPI check can catch (the ICV is right)."""
    from mip6lab.crypto.ike.sk import decrypt_message, encrypt_message

    cipher = sa.keys.cipher(from_initiator=sa.initiator)
    first, inner = decrypt_message(cipher, data)
    header = bytearray(data[:28])
    header[0:8] = spi_i if spi_i is not None else header[0:8]
    header[8:16] = spi_r if spi_r is not None else header[8:16]
    return encrypt_message(cipher, bytes(header), first, inner, bytes(cipher.iv_size))


@pytest.mark.parametrize("spis", [{"spi_r": bytes.fromhex("00000000deadbeef")},
                                  {"spi_r": bytes(8)},
                                  {"spi_i": bytes.fromhex("0123456789abcdef")}],
                         ids=["wrong-spi-r", "zero-spi-r", "wrong-spi-i"])
def test_a_request_under_another_spi_pair_is_dropped_with_the_sa_intact(pair, spis):
    """RFC 7296 §3.1: the two SPIs identify the IKE SA; §2.21: a message that names an SA
    we do not have is dropped, here even though it decrypts with the right keys."""
    from mip6lab.ikev2.sa import MessageDropped

    pair.i.create_child()
    (good,) = pair.i.datagrams_to_send()
    expected, children = pair.r.expected_request_id, dict(pair.r.children)
    forged = _forged(pair.i, good.data, **spis)
    assert forged != good.data
    pair.r.receive(forged, good.src, good.sport, 0, good.dport)
    dropped = [e for e in iter(pair.r.next_event, None)]
    assert len(dropped) == 1 and isinstance(dropped[0], MessageDropped)
    assert "SPI" in dropped[0].reason and "§3.1" in dropped[0].reason
    assert pair.r.datagrams_to_send() == []                   # silent: no answer
    assert (pair.r.expected_request_id, pair.r.children, pair.r.state) == \
        (expected, children, "ESTABLISHED")
    # the genuine request is still answered: the forgery cost the SA nothing
    pair.deliver(pair.r, good)
    pair.pump()
    assert len(pair.i.children) == len(pair.r.children) == 2
    crosswise(pair.i, pair.r)


def _resealed(sa: IkeSa, data: bytes, change) -> bytes:
    """``data``, a protected message ``sa`` sent, its payloads changed by ``change`` (on
    the dissected scapy payloads) and sealed again with ``sa``'s keys: what an
    authenticated peer could send."""
    from mip6lab.crypto.ike.sk import decrypt_message, encrypt_message
    from mip6lab.wire import ikev2 as w

    cipher = sa.keys.cipher(from_initiator=sa.initiator)
    payloads = w.decode_inner_payloads(*decrypt_message(cipher, data))
    change(payloads)
    first, inner = w.build_inner_payloads([p.copy() for p in payloads])
    return encrypt_message(cipher, data[:28], first, inner, bytes(cipher.iv_size))


def _tsi(payloads):
    from mip6lab.wire import ikev2 as w
    return next(p for p in payloads if isinstance(p, w.IKEv2_TSi))


def _swap_addresses(payloads):     # start above end (RFC 7296 §3.13.1: smallest, largest)
    ts = _tsi(payloads).traffic_selector[0]
    ts.starting_address_v6, ts.ending_address_v6 = "2001:db8:ffff::", "2001:db8::1"


def _opaque_ports(payloads):       # start port 65535, end port 0: OPAQUE (§3.13.1)
    ts = _tsi(payloads).traffic_selector[0]
    ts.start_port, ts.end_port = 65535, 0


@pytest.mark.parametrize("change", [_swap_addresses, _opaque_ports],
                         ids=["start-above-end", "opaque-ports"])
def test_an_unusable_traffic_selector_gets_ts_unacceptable_with_the_sa_intact(pair, change):
    """Found by fuzzing: a selector whose range the engine cannot hold raised ValueError
    out of the engine. It is narrowed away instead, and the request that is left with no
    selector is answered TS_UNACCEPTABLE (RFC 7296 §2.9); the IKE SA goes on."""
    from mip6lab.crypto.ike.sk import decrypt_message
    from mip6lab.wire import ikev2 as w

    pair.i.create_child()
    (good,) = pair.i.datagrams_to_send()
    children = dict(pair.r.children)
    pair.r.receive(_resealed(pair.i, good.data, change), good.src, good.sport, 0, good.dport)
    (answer,) = pair.r.datagrams_to_send()
    reply = w.decode_inner_payloads(*decrypt_message(
        pair.r.keys.cipher(from_initiator=False), answer.data))
    assert [w.notify_name(n) for n in w.find_notifies(reply)] == ["TS_UNACCEPTABLE"]
    assert pair.r.children == children and pair.r.state == "ESTABLISHED"
    # the initiator hears the refusal; both SAs carry on with their one child
    pair.deliver(pair.i, answer)
    pair.pump()
    assert pair.i.state == pair.r.state == "ESTABLISHED"
    assert len(pair.i.children) == len(pair.r.children) == 1
    assert any(e.notify == "TS_UNACCEPTABLE" for e in pair.events["i"]
               if hasattr(e, "notify"))


def test_a_response_with_unusable_selectors_makes_no_child_sa(pair):
    """The other direction: the responder's CREATE_CHILD_SA response narrows to a
    selector with no usable range; the initiator installs no child SA and says why."""
    from mip6lab.ikev2.sa import IkeSaFailed

    pair.i.create_child()
    (request,) = pair.i.datagrams_to_send()
    pair.deliver(pair.r, request)
    (response,) = pair.r.datagrams_to_send()
    pair.i.receive(_resealed(pair.r, response.data, _swap_addresses), response.src,
                   response.sport, 0, response.dport)
    failed = [e for e in iter(pair.i.next_event, None) if isinstance(e, IkeSaFailed)]
    assert len(failed) == 1 and failed[0].notify == "TS_UNACCEPTABLE"
    assert "§3.13.1" in failed[0].reason
    assert len(pair.i.children) == 1 and pair.i.state == "ESTABLISHED"
