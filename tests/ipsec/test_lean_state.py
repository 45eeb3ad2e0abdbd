"""What the IPsec state keeps per mobile node, and what it makes only when asked (issue 14
point 4, the memory per MN): each economy must leave the behaviour as it was."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mip6lab.ikev2.ts import TrafficSelector
from mip6lab.ipsec.esp import decapsulate, encapsulate
from mip6lab.ipsec.keyengine import KeyEngine, KeyMessage
from mip6lab.ipsec.replay import ReplayWindow
from mip6lab.ipsec.sad import SecurityAssociation, SecurityAssociationDatabase
from mip6lab.ipsec.selectors import address_key
from mip6lab.ipsec.spd import SecurityPolicyDatabase

from ._util import COA6, HA6, iv_for, keys, sa_pair, udp6

A = ipaddress.ip_address


def K(text):
    return address_key(A(text))


def sa(spi, direction="out", src=COA6, dst=HA6, **kw):
    return SecurityAssociation(spi, direction, src, dst, "aes128gcm16",
                               *keys("aes128gcm16"), **kw)


# -- key sockets ---------------------------------------------------------------------------


@pytest.mark.parametrize("kept", [True, False])
def test_a_key_socket_keeps_its_messages_only_where_the_trace_keeps_the_seam(kept):
    events = []
    engine = KeyEngine("mn", SecurityAssociationDatabase(), SecurityPolicyDatabase(),
                       lambda: 1, lambda: 0x1234,
                       lambda kind, summary, **data: events.append((kind, summary, data)))
    engine.keeps = lambda kind: kept
    mobility, ike = engine.open("mip6d"), engine.open("iked")
    heard = []
    ike.on_message(heard.append)
    reply = mobility.send(KeyMessage("ADD", sa=sa(0x1001)))
    assert reply.error is None and heard == [reply]          # listeners hear it always
    assert mobility.received == ike.received == ([reply] if kept else [])
    assert engine.crossings == len(events) == 2              # counted at every level
    assert all(kind == "seam" and (summary is not None) == kept
               for kind, summary, _ in events)


# -- security associations -----------------------------------------------------------------


def test_an_sa_checks_its_keys_at_once_and_keys_its_cipher_at_the_first_packet():
    with pytest.raises(ValueError, match="20-byte encryption key"):
        SecurityAssociation(0x1001, "out", COA6, HA6, "aes128gcm16", b"short")
    out, sad, inbound = sa_pair()
    assert out._cipher is None and inbound._cipher is None
    packet = udp6()
    wire = encapsulate(out, packet, iv_for(out))
    assert out._cipher is not None and decapsulate(sad, wire).packet == packet
    assert inbound._cipher is not None


def test_only_an_inbound_sa_has_an_anti_replay_window():
    out, back = sa(0x1001, "out"), sa(0x1002, "in", HA6, COA6)
    assert out.replay is None and isinstance(back.replay, ReplayWindow)
    assert out.as_dict()["seq"] == 0 and back.as_dict()["seq"] == 0


def test_spi_octets_and_sequence_limit_follow_the_sa():
    a = sa(0x1001)
    assert a.spi_bytes == bytes.fromhex("00001001") and a.seq_limit == 2**32 - 1
    a.spi = 0xABCDEF01
    assert a.spi_bytes == bytes.fromhex("abcdef01")
    assert sa(0x1002, esn=True).seq_limit == 2**64 - 1


def test_a_lone_sa_is_its_own_bucket_and_several_share_a_list_in_filing_order():
    PAIR = (K(COA6), K(HA6))   # the indexes are keyed by address_key()
    sad = SecurityAssociationDatabase()
    first, second = sa(0x1001, reqid=1), sa(0x1002, reqid=1)
    sad.add(first)
    assert sad._between[PAIR] is first and sad._outbound_to[K(HA6)] is first
    sad.add(second)
    assert sad._between[PAIR] == [first, second]
    assert sad.between(A(HA6), A(COA6)) == [first, second]
    sad.remove(first)
    assert sad._between[PAIR] is second and sad._outbound_to[K(HA6)] is second
    assert sad.outbound_for(1, HA6) is second


# -- traffic selectors ---------------------------------------------------------------------


def _summarized(ts):
    nets = list(ipaddress.summarize_address_range(ts.start, ts.end))
    return nets[0] if len(nets) == 1 else None


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([4, 6]), st.integers(0, 2**32 - 1), st.integers(0, 40),
       st.integers(-2, 2), st.booleans())
def test_a_range_is_a_network_exactly_when_summarize_says_it_is_one(
        version, seed, bits, skew, aligned):
    top = 2**32 if version == 4 else 2**128
    size = max(1, (1 << bits) + skew)
    start = (seed * (1 << bits) if aligned else seed) % top
    end = min(start + size - 1, top - 1)
    cls = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    ts = TrafficSelector(cls(start), cls(end))
    assert ts.network() == _summarized(ts)
    assert str(ts).split(" ")[0] == str(_summarized(ts) or f"{ts.start}-{ts.end}")


def test_a_selector_keeps_only_its_values():
    ts = TrafficSelector.from_network("2001:db8::/64", protocol=135)
    assert not hasattr(ts, "__dict__")
    assert ts.wire()[4:] == (A("2001:db8::").packed, A("2001:db8::ffff:ffff:ffff:ffff").packed)
