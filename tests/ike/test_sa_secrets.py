"""IkeSa.secrets(): the negotiated values and secrets of an IKE SA, checked against an
independent derivation written here with the standard library's HMAC and
`cryptography`'s AES-GCM (RFC 7296 §2.13-2.15, RFC 5282 §4-§5), never with mip6lab's own
crypto code."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mip6lab.ikev2.sa import IkeSaRekeyed, IkeSaSecrets

from .test_engine import (I_ID, PSK, Pair, handshake, initiator_config, responder_config)
from .test_engine_exchanges import Pair as ExchangePair


def prf(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.sha256).digest()


def prf_plus(key: bytes, seed: bytes, length: int) -> bytes:
    out, block, n = b"", b"", 1
    while len(out) < length:
        block = prf(key, block + seed + bytes([n]))
        out, n = out + block, n + 1
    return out[:length]


def payloads(data: bytes, first: int, offset: int) -> dict[int, bytes]:
    """Payload type -> body (generic header removed), walking a chain by hand."""
    found = {}
    while first and offset + 4 <= len(data):
        length = struct.unpack("!H", data[offset + 2:offset + 4])[0]
        found[first] = data[offset + 4:offset + length]
        first, offset = data[offset], offset + length
    return found


def open_sk(message: bytes, sk_e: bytes) -> dict[int, bytes]:
    """The inner payloads of an AES-GCM-16 SK payload (RFC 5282): key | 4-byte salt,
    nonce = salt | 8-byte IV, AAD = IKE header .. SK header."""
    assert message[16] == 46                              # the SK payload comes first
    inner_first = message[28]
    body = message[32:]
    nonce = sk_e[-4:] + body[:8]
    plain = AESGCM(sk_e[:-4]).decrypt(nonce, body[8:], message[:32])
    plain = plain[:len(plain) - plain[-1] - 1]             # Padding and Pad Length
    return payloads(plain, inner_first, 0)


@pytest.fixture(scope="module")
def pair():
    pair = handshake()
    assert pair.i.state == pair.r.state == "ESTABLISHED"
    return pair


def test_secrets_hold_the_exchange_values_as_on_the_wire(pair):
    si, sr = pair.i.secrets(), pair.r.secrets()
    assert isinstance(si, IkeSaSecrets) and si.initiator and not sr.initiator
    request, response = pair.sent("I>R")[0], pair.sent("R>I")[0]
    assert si.init_request == sr.init_request == request
    assert si.init_response == sr.init_response == response
    assert (si.spi_i, si.spi_r) == (request[:8], response[8:16]) == (sr.spi_i, sr.spi_r)
    # the nonces are the Nonce payloads' data (payload type 40)
    assert si.nonce_i == sr.nonce_i == payloads(request, request[16], 28)[40]
    assert si.nonce_r == sr.nonce_r == payloads(response, response[16], 28)[40]
    # Diffie-Hellman: the same g^ir on both sides, and it never went on the wire
    assert si.shared_secret == sr.shared_secret and len(si.shared_secret) == 32
    assert all(si.shared_secret not in data for _, data in pair.log)
    assert si.proposal == sr.proposal and si.proposal.ke_group == 31    # Curve25519
    assert si.psk == sr.psk == PSK.encode()
    assert not si.rekeyed and si.keys is pair.i.keys


def test_skeyseed_and_the_seven_keys_from_an_independent_derivation(pair):
    s = pair.i.secrets()
    skeyseed = prf(s.nonce_i + s.nonce_r, s.shared_secret)             # §2.14
    assert skeyseed == s.keys.skeyseed
    # aes256gcm16-prfsha256: SK_d 32, SK_a none (RFC 5282 §7.1), SK_e 32 + 4 salt, SK_p 32
    stream = prf_plus(skeyseed, s.nonce_i + s.nonce_r + s.spi_i + s.spi_r, 32 + 2 * 36 + 64)
    cut = dict(sk_d=stream[:32], sk_ai=b"", sk_ar=b"", sk_ei=stream[32:68],
               sk_er=stream[68:104], sk_pi=stream[104:136], sk_pr=stream[136:168])
    for name, value in cut.items():
        assert getattr(s.keys, name) == value, name
        assert getattr(pair.r.secrets().keys, name) == value, name


def test_auth_of_both_sides_from_the_secrets_and_the_opened_messages(pair):
    s = pair.i.secrets()
    auth_request, auth_response = pair.sent("I>R")[1], pair.sent("R>I")[1]
    sent_i, sent_r = open_sk(auth_request, s.keys.sk_ei), open_sk(auth_response, s.keys.sk_er)
    pad = prf(s.psk, b"Key Pad for IKEv2")                               # §2.15
    # AUTH body: method (1) | 3 reserved | data; ID body: type | 3 reserved | data
    octets_i = s.init_request + s.nonce_r + prf(s.keys.sk_pi, sent_i[35])
    octets_r = s.init_response + s.nonce_i + prf(s.keys.sk_pr, sent_r[36])
    assert sent_i[39][0] == sent_r[39][0] == 2                          # shared key MIC
    assert prf(pad, octets_i) == sent_i[39][4:]
    assert prf(pad, octets_r) == sent_r[39][4:]
    assert sent_i[35][4:] == I_ID.encode()


def test_no_secrets_before_ike_sa_init_is_answered():
    pair = Pair(initiator_config(), responder_config())
    pair.start()
    with pytest.raises(ValueError, match="no keys yet"):
        pair.i.secrets()


def test_a_wrong_psk_leaves_the_init_secrets_readable_with_this_sides_psk():
    pair = handshake(initiator_config(psk="not-the-psk"), responder_config())
    assert pair.i.state == pair.r.state == "CLOSED"
    si, sr = pair.i.secrets(), pair.r.secrets()
    assert si.keys.sk_pi == sr.keys.sk_pi and si.psk != sr.psk
    assert (si.psk, sr.psk) == (b"not-the-psk", PSK.encode())


def test_a_rekeyed_sa_says_so_and_keeps_its_new_g_ir():
    pair = ExchangePair()
    pair.i.initiate(0)
    pair.pump()
    old = pair.i.secrets()
    pair.i.rekey_ike()
    pair.pump()
    new = pair.of("i", IkeSaRekeyed)[-1].new.secrets()
    assert new.rekeyed and not old.rekeyed
    assert new.init_request == new.init_response == b""
    # §2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)
    assert new.keys.skeyseed == prf(old.keys.sk_d, new.shared_secret + new.nonce_i
                                    + new.nonce_r)
    assert new.shared_secret != old.shared_secret
