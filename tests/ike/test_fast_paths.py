"""What the IKE engine keeps instead of recomputing (issue 14.4): each shortcut must give
what the long way gives -- the same octets, the same values -- and never mix up two
proposals, keys or selectors that differ."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given, settings, strategies as st

from mip6lab.crypto.ike import Prf, auth, parse_proposal, parse_proposals
from mip6lab.crypto.ike.keys import child_key_lengths, derive_child_keys, esp_suite_name
from mip6lab.crypto.ike.proposals import Proposal, memoized, select_proposal
from mip6lab.ikev2.ts import TrafficSelector, narrow
from mip6lab.wire import ikev2_codec as c

from .test_engine import handshake

PROPOSAL_TEXTS = [("aes256gcm16-prfsha256-curve25519", "ike"), ("default", "ike"),
                  ("default", "esp"), ("aes128-sha256,aes256gcm16-aes128gcm16", "esp")]


# -- SA payloads written once, SPI put in -------------------------------------------------

@pytest.mark.parametrize("text,protocol", PROPOSAL_TEXTS)
@pytest.mark.parametrize("spi", [b"", b"\x01\x02\x03\x04", bytes(range(8))])
def test_sa_segments_give_the_sa_payload_of_any_spi(text, protocol, spi):
    proposals = parse_proposals(text, protocol)
    expected = c.sa_payload([p.with_(spi=spi) for p in proposals]).body()
    assert spi.join(c.sa_segments(proposals, len(spi))) == expected
    assert c.sa_payload(proposals, spi).body() == expected


def test_encoded_payload_is_written_like_the_payload_it_holds():
    sa = c.sa_payload(parse_proposals("default", "esp"), b"\xaa\xbb\xcc\xdd")
    nonce = c.Nonce(bytes(32))
    plain = c.encode_payloads([sa, nonce])
    encoded = c.encode_payloads([c.Encoded(c.PayloadType.SA, sa.body()), nonce])
    assert encoded == plain
    first, chain = plain
    assert [type(p) for p in c.decode_payloads(first, chain)] == [c.SA, c.Nonce]


def test_firsts_is_first_of_each_class():
    payloads = [c.Notify(16388, bytes(20)), c.Nonce(b"a" * 16), c.Notify(16389, bytes(20)),
                c.Nonce(b"b" * 16)]
    found = c.firsts(payloads)
    for cls in (c.Notify, c.Nonce, c.SA):
        assert found.get(cls) is c.first(payloads, cls)


# -- proposals: copies share what is computed from their value ----------------------------

def test_with_keeps_the_value_and_its_readings():
    p = parse_proposal("aes256gcm16-prfsha256-curve25519")
    q = p.with_(number=3, spi=b"\x01" * 8)
    assert (q.number, q.spi) == (3, b"\x01" * 8)
    assert q == p and hash(q) == hash(p)
    assert q.transforms is p.transforms and q.keyword == p.keyword
    assert q.ke_group == p.ke_group == 31
    assert Proposal(q.protocol, q.transforms, 3, q.spi) == q    # what replace() made


def test_memoized_is_by_value_and_keeps_no_exception():
    calls = []

    @memoized
    def name(proposal):
        calls.append(proposal)
        if proposal.protocol.name == "IKE":
            raise ValueError("refused")
        return proposal.keyword

    esp = parse_proposal("aes256gcm16", "esp")
    assert name(esp.with_(spi=b"1234")) == name(esp.with_(number=2)) == "aes256gcm16"
    assert len(calls) == 1                    # copies share the memo
    other = parse_proposal("aes128gcm16", "esp")
    assert name(other) == "aes128gcm16"       # another value: its own entry
    ike = parse_proposal("aes256gcm16-prfsha256-curve25519")
    for _ in range(2):
        with pytest.raises(ValueError):
            name(ike)
    assert len(calls) == 4                    # the refusal was computed each time


def test_memoized_lookups_tell_suites_apart():
    for text, name in [("aes256gcm16", "aes256gcm16"), ("aes128-sha256", "aes128-sha256"),
                       ("aes256-sha512", "aes256-sha512")]:
        proposal = parse_proposal(text, "esp").with_(spi=b"\0\0\0\1")
        assert esp_suite_name(proposal) == name
    assert child_key_lengths(parse_proposal("aes128-sha256", "esp")) == (16, 32)
    assert child_key_lengths(parse_proposal("aes256gcm16", "esp")) == (36, 0)


def test_selection_memo_puts_back_the_offered_number_and_spi():
    ours = parse_proposals("aes128gcm16,aes256gcm16", "esp")
    for number, spi in [(1, b"\0\0\0\1"), (7, b"\0\0\0\2"), (1, b"\0\0\0\1")]:
        offered = [p.with_(number=number + i, spi=spi)
                   for i, p in enumerate(parse_proposals("aes256gcm16,aes128gcm16", "esp"))]
        chosen = select_proposal(offered, ours, prefer="configured")
        assert chosen.keyword == "aes128gcm16"
        assert (chosen.number, chosen.spi) == (number + 1, spi)
        chosen = select_proposal(offered, ours)            # the peer's preference
        assert chosen.keyword == "aes256gcm16" and chosen.number == number


# -- PRF: the keyed-once paths are HMAC --------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(key=st.binary(max_size=80), seed=st.binary(max_size=100),
       length=st.integers(0, 300))
def test_prf_plus_keyed_once_is_the_chained_hmac(key, seed, length):
    out, block, n = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(key, block + seed + bytes((n,)), "sha256")
        out, n = out + block, n + 1
    assert Prf(5).plus(key, seed, length) == out[:length]


def test_psk_auth_keeps_keys_apart():
    prf, octets = Prf(5), b"signed octets"
    for psk in (b"one key", b"another key", b"one key"):
        pad = hmac.digest(psk, b"Key Pad for IKEv2", "sha256")
        assert auth.psk_auth(prf, psk, octets) == hmac.digest(pad, octets, "sha256")
    assert auth.psk_auth(Prf(6), b"one key", octets) != auth.psk_auth(prf, b"one key", octets)


def test_child_keys_cut_in_order():
    prf, sk_d, ni, nr = Prf(5), bytes(range(32)), b"i" * 32, b"r" * 32
    proposal = parse_proposal("aes128-sha256", "esp")
    keymat = prf.plus(sk_d, ni + nr, 2 * (16 + 32))
    keys = derive_child_keys(prf, sk_d, proposal, ni, nr)
    assert (keys.encr_i, keys.integ_i, keys.encr_r, keys.integ_r) == (
        keymat[:16], keymat[16:48], keymat[48:64], keymat[64:])


# -- selectors ----------------------------------------------------------------------------

def test_intersection_that_is_one_side_is_that_selector():
    host = TrafficSelector.from_network("2001:db8::1/128")
    wide = TrafficSelector.from_network("2001:db8::/64")
    assert host.intersect(wide) is host and wide.intersect(host) is host
    ports = TrafficSelector.from_network("2001:db8::/64", protocol=17, port=500)
    common = ports.intersect(host)
    assert (common.start, common.end, common.protocol, common.start_port,
            common.end_port) == (host.start, host.end, 17, 500, 500)
    assert narrow([host], [wide, host]) == [host]


def test_selector_wire_fields():
    ts = TrafficSelector.from_network("192.0.2.0/24", protocol=6, port=80)
    assert ts.wire() == (7, 6, 80, 80, bytes([192, 0, 2, 0]), bytes([192, 0, 2, 255]))
    # made per call, not kept: a selector holds its five values in slots and nothing else
    assert not hasattr(ts, "__dict__") and ts.wire() == ts.wire()


# -- the engine ---------------------------------------------------------------------------

def test_private_dh_value_is_forgotten_once_keys_are_made():
    """RFC 7296 §2.12: nothing that could recompute the keys is kept longer than needed;
    what the SA reports of its keys (secrets()) does not need it."""
    pair = handshake()
    i, r = pair.i, pair.r
    assert i.state == r.state == "ESTABLISHED"
    assert i.ke is None and r.ke is None
    assert i.secrets().shared_secret == r.secrets().shared_secret


def test_events_come_out_in_order():
    pair = handshake()         # its pump reads each side's events with next_event()
    kinds = [type(event).__name__ for event in pair.events["R"]]
    assert kinds == ["IkeSaEstablished", "ChildSaEstablished"]
    assert pair.r.next_event() is None


def test_an_sa_takes_attributes_a_driver_attaches():
    i = handshake().i
    i.note = "attached by a driver"
    assert i.note == "attached by a driver"
