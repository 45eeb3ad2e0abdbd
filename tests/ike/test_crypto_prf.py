"""PRF, prf+ (RFC 7296 §2.13) and the integrity transforms (RFC 4868), each checked
against an independent implementation on Python's own ``hmac``/``hashlib``."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mip6lab.crypto import esp_suites
from mip6lab.crypto.ike import (Integrity, IntegrityError, Prf, UnsupportedTransform,
                                prf_plus)
from mip6lab.errors import RemoteProtocolError

PRF_HASHES = {5: hashlib.sha256, 6: hashlib.sha384, 7: hashlib.sha512}
INTEG = {12: (hashlib.sha256, 16), 13: (hashlib.sha384, 24), 14: (hashlib.sha512, 32)}


def reference_prf_plus(digest, key: bytes, seed: bytes, length: int) -> bytes:
    """RFC 7296 §2.13, written out plainly."""
    out, t, n = b"", b"", 1
    while len(out) < length:
        t = hmac.new(key, t + seed + bytes([n]), digest).digest()
        out += t
        n += 1
    return out[:length]


def test_rfc4231_test_case_2():
    prf = Prf(5)
    assert prf(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")


@pytest.mark.parametrize("prf_id", PRF_HASHES)
def test_prf_is_hmac(prf_id):
    prf = Prf(prf_id)
    digest = PRF_HASHES[prf_id]
    assert prf.output_size == prf.key_size == digest().digest_size
    for key in (b"", b"k", bytes(range(200))):  # HMAC takes keys of any length
        assert prf(key, b"data") == hmac.new(key, b"data", digest).digest()


@pytest.mark.parametrize("prf_id", PRF_HASHES)
@pytest.mark.parametrize("length", [0, 1, 31, 32, 33, 48, 64, 65, 100, 232, 1000])
def test_prf_plus_matches_reference(prf_id, length):
    prf = Prf(prf_id)
    key, seed = b"\x0b" * 20, bytes(range(80))
    expected = reference_prf_plus(PRF_HASHES[prf_id], key, seed, length)
    assert prf_plus(prf, key, seed, length) == expected
    assert prf.plus(key, seed, length) == expected
    assert len(expected) == length


def test_prf_plus_limits():
    prf = Prf(5)
    longest = prf.plus(b"k", b"s", 255 * 32)
    assert longest == reference_prf_plus(hashlib.sha256, b"k", b"s", 255 * 32)
    with pytest.raises(ValueError):
        prf.plus(b"k", b"s", 255 * 32 + 1)
    with pytest.raises(ValueError):
        prf.plus(b"k", b"s", -1)


def test_prf_plus_blocks_are_chained():
    prf = Prf(5)
    stream = prf.plus(b"K", b"S", 96)
    t1 = prf(b"K", b"S\x01")
    t2 = prf(b"K", t1 + b"S\x02")
    t3 = prf(b"K", t2 + b"S\x03")
    assert stream == t1 + t2 + t3


@pytest.mark.parametrize("integ_id", INTEG)
def test_integrity_is_truncated_hmac(integ_id):
    digest, icv_size = INTEG[integ_id]
    integrity = Integrity(integ_id)
    key = bytes(range(integrity.key_size))
    assert integrity.key_size == digest().digest_size and integrity.icv_size == icv_size
    icv = integrity.sign(key, b"message")
    assert icv == hmac.new(key, b"message", digest).digest()[:icv_size]
    integrity.verify(key, b"message", icv)
    with pytest.raises(IntegrityError) as caught:
        integrity.verify(key, b"messagf", icv)
    # one "ICV failed" notion for ESP and IKE, and bad input from the wire
    assert isinstance(caught.value, esp_suites.IntegrityError)
    assert isinstance(caught.value, RemoteProtocolError)
    with pytest.raises(IntegrityError):
        integrity.verify(key, b"message", icv[:-1])
    with pytest.raises(ValueError):
        integrity.sign(key[:-1], b"message")


def test_unsupported_ids():
    with pytest.raises(UnsupportedTransform):
        Prf(2)  # PRF_HMAC_SHA1: not in our set
    with pytest.raises(UnsupportedTransform):
        Integrity(2)
