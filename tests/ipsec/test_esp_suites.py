"""ESP cipher suites (mip6lab.crypto.esp_suites): seal/open, keys, ICV, known answers.

Known-answer vectors:

* AES-GCM in ESP: draft-mcgrew-gcm-test-01 ("Test Cases for the use of GCM in IPsec
  ESP"), whose AAD is exactly SPI || sequence number (|| with the ESN high bits in the
  middle) and whose 12-byte nonce is the 4-byte salt || 8-byte explicit IV (RFC 4106
  §4, §5). The vectors were checked against ``cryptography``'s AESGCM before use.
* HMAC-SHA-256-128: RFC 4868 §2.7.2.1 test case AUTH256-1 ("Hi There"), and the ICV of
  whole packets recomputed independently with the standard library's ``hmac``.
* AES-CBC: RFC 3602 §4 cases #1 and #2.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mip6lab.crypto.esp_suites import (SUITES, AesCbcHmacSuite, AesGcmSuite, IntegrityError,
                                       NullHmacSuite, make_suite, suite_spec)

from ._util import ALL_SUITES, keys

HEADER = bytes.fromhex("00001234" "00000007")   # SPI 0x1234, sequence number 7


def _iv(suite: str) -> bytes:
    return bytes(range(0xA0, 0xA0 + suite_spec(suite).iv_size))


def _padded(suite: str, n: int = 37) -> bytes:
    """A plaintext of whole blocks for ``suite`` (what esp.py hands a suite)."""
    align = suite_spec(suite).alignment
    size = n + (-n) % align
    return bytes((i * 3) & 0xFF for i in range(size))


# -- roundtrips and key lengths -----------------------------------------------------------


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_seal_open_roundtrip(suite):
    spec = suite_spec(suite)
    cipher = make_suite(suite, *keys(suite))
    plaintext = _padded(suite)
    body = cipher.seal(HEADER, b"", _iv(suite), plaintext)
    assert len(body) == spec.iv_size + len(plaintext) + spec.icv_size
    assert body[:spec.iv_size] == _iv(suite)
    if spec.enc_key_len:   # encrypted: the plaintext does not appear on the wire
        assert plaintext not in body
    else:                  # NULL: it does, right after the (empty) IV
        assert body[:len(plaintext)] == plaintext
    # A second instance with the same keys (the receiver) opens it.
    assert make_suite(suite, *keys(suite)).open(HEADER, b"", body) == plaintext


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_other_keys_do_not_open(suite):
    body = make_suite(suite, *keys(suite)).seal(HEADER, b"", _iv(suite), _padded(suite))
    with pytest.raises(IntegrityError):
        make_suite(suite, *keys(suite, tag=9)).open(HEADER, b"", body)


def test_suite_table():
    assert set(SUITES) == set(ALL_SUITES)
    assert {n: (s.enc_key_len, s.integ_key_len, s.iv_size, s.icv_size)
            for n, s in SUITES.items()} == {
        "aes128gcm16": (20, 0, 8, 16), "aes256gcm16": (36, 0, 8, 16),
        "aes128-sha256": (16, 32, 16, 16), "aes256-sha256": (32, 32, 16, 16),
        "null-sha256": (0, 32, 0, 16)}
    assert suite_spec("AES128GCM16").name == "aes128gcm16"   # keywords are case-blind
    with pytest.raises(ValueError, match="unknown ESP suite"):
        suite_spec("aes128ccm16")
    assert isinstance(make_suite("aes256gcm16", *keys("aes256gcm16")), AesGcmSuite)
    assert isinstance(make_suite("aes256-sha256", *keys("aes256-sha256")), AesCbcHmacSuite)
    assert isinstance(make_suite("null-sha256", *keys("null-sha256")), NullHmacSuite)


WRONG_KEYS = [(suite, which, delta) for suite in ALL_SUITES for which in ("enc", "integ")
              for delta in (-1, +1)
              if len(keys(suite)[which == "integ"]) + delta >= 0]


@pytest.mark.parametrize("suite,which,delta", WRONG_KEYS)
def test_wrong_key_lengths_rejected(suite, which, delta):
    enc, integ = keys(suite)
    if which == "enc":
        enc = bytes(len(enc) + delta)
    else:
        integ = bytes(len(integ) + delta)
    with pytest.raises(ValueError, match="takes a"):
        make_suite(suite, enc, integ)


def test_gcm_key_sizes_are_aes_plus_salt():
    # The AES-128 key with its salt is 20 bytes; an AES-256 key (32) without salt is not
    # accepted as anything, and 36 bytes is not AES-128 + salt.
    with pytest.raises(ValueError):
        make_suite("aes128gcm16", bytes(16))
    with pytest.raises(ValueError):
        make_suite("aes256gcm16", bytes(32))
    with pytest.raises(ValueError):
        make_suite("aes128gcm16", bytes(36))


# -- integrity -----------------------------------------------------------------------------


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_every_flipped_bit_is_an_integrity_error(suite):
    """Any single bit flipped in IV, ciphertext or ICV -- or in the ESP header, which is
    authenticated too -- makes open() raise IntegrityError."""
    cipher = make_suite(suite, *keys(suite))
    plaintext = _padded(suite, 20)
    body = cipher.seal(HEADER, b"", _iv(suite), plaintext)
    assert cipher.open(HEADER, b"", body) == plaintext
    for i in range(len(body)):
        for bit in range(8):
            forged = bytearray(body)
            forged[i] ^= 1 << bit
            with pytest.raises(IntegrityError):
                cipher.open(HEADER, b"", bytes(forged))
    for i in range(len(HEADER)):
        header = bytearray(HEADER)
        header[i] ^= 0x01
        with pytest.raises(IntegrityError):
            cipher.open(bytes(header), b"", body)


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_truncated_or_extended_body_is_an_integrity_error(suite):
    cipher = make_suite(suite, *keys(suite))
    body = cipher.seal(HEADER, b"", _iv(suite), _padded(suite, 40))
    for cut in (1, 4, 16):
        with pytest.raises(IntegrityError):
            cipher.open(HEADER, b"", body[:-cut])
    with pytest.raises(IntegrityError):
        cipher.open(HEADER, b"", body + b"\x00")


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_esn_high_bits_change_the_icv(suite):
    """RFC 4303 §2.2.1: the high 32 bits are never sent but are covered by the ICV."""
    cipher = make_suite(suite, *keys(suite))
    plaintext = _padded(suite)
    icv = suite_spec(suite).icv_size
    sealed = {high: cipher.seal(HEADER, high.to_bytes(4, "big"), _iv(suite), plaintext)
              for high in (0, 1, 0x80000000)}
    tags = {body[-icv:] for body in sealed.values()}
    assert len(tags) == 3
    # Without ESN (no high bits at all) the ICV differs from ESN with high bits 0.
    assert cipher.seal(HEADER, b"", _iv(suite), plaintext)[-icv:] != sealed[0][-icv:]
    assert cipher.open(HEADER, (1).to_bytes(4, "big"), sealed[1]) == plaintext
    with pytest.raises(IntegrityError):   # receiver guessed the wrong subspace
        cipher.open(HEADER, (2).to_bytes(4, "big"), sealed[1])
    with pytest.raises(IntegrityError):
        cipher.open(HEADER, b"", sealed[0])


def test_gcm_primitives_equal_seal_without_esn():
    """The ESP hot path calls the bare primitives; they must compute what seal does."""
    cipher = make_suite("aes128gcm16", *keys("aes128gcm16"))
    encrypt, decrypt, salt = cipher.primitives()
    iv = (7).to_bytes(8, "big")
    sealed = iv + encrypt(salt + iv, _padded("aes128gcm16"), HEADER)
    assert sealed == cipher.seal(HEADER, b"", iv, _padded("aes128gcm16"))
    assert decrypt(salt + iv, sealed[8:], HEADER) == _padded("aes128gcm16")


# -- known answers -------------------------------------------------------------------------

# draft-mcgrew-gcm-test-01 §4 (the ESP test cases). aad = SPI || [ESN high] || seq low.
GCM_VECTORS = {
    "case 1: AES-128, ESN": dict(
        key="4c80cdefbb5d10da906ac73c3613a634", salt="2e443b68", iv="4956ed7e3b244cfe",
        spi="00004321", esn_high="87654321", seq="00000000",
        plaintext="45000048699a000080114db7c0a80102c0a801010a9bf15638d30100000100000000"
                  "0000045f736970045f756470037369700963796265726369747902646b000021000101"
                  "020201",
        ciphertext="fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34cfa2"
                   "436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce61bc17d768"
                   "fd9732",
        tag="459018148f6cbe722fd04796562dfdb4"),
    "case 2: AES-128": dict(
        key="feffe9928665731c6d6a8f9467308308", salt="cafebabe", iv="facedbaddecaf888",
        spi="0000a5f8", esn_high="", seq="0000000a",
        plaintext="4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d001000001"
                  "000000000000037369700963796265726369747902646b00000100010001",
        ciphertext="deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c3de8"
                   "1827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1",
        tag="83b70d3aa8bc6ee4c309e9d85a41ad4a"),
    "case 3: AES-256": dict(
        key="abbccddef00112233445566778899aababbccddef00112233445566778899aab",
        salt="11223344", iv="0102030405060708", spi="4a2cbfe3", esn_high="",
        seq="00000002",
        plaintext="4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee0000000007002"
                  "400020bf0000020405b40101040201020201",
        ciphertext="ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763748a"
                   "637985771d347f0545659f14e99def842d8e",
        tag="b335f4eecfdbf831824b4c4915956c96"),
    "case 13: AES-256, ESN": dict(
        key="6c6567616c697a656d6172696a75616e61616e64646f69746265666f72656961",
        salt="7475726e", iv="333021696765746d", spi="796b6963", esn_high="ffffffff",
        seq="ffffffff",
        plaintext="45000030da3a00008001df3bc0a80005c0a800010800c6cd02000700616263646566"
                  "6768696a6b6c6d6e6f707172737401020201",
        ciphertext="f97ab2aa356d8edce17644ac8c78e25dd24dedbb29ebf1b64a274b39b49c3a864cd3"
                   "d78ca4ae68a32b42458fb57dbe821dcc63b9",
        tag="d0937ba2945f669368661a329fb4c053"),
}


def gcm_vector(name: str) -> dict[str, bytes]:
    return {k: bytes.fromhex(v) for k, v in GCM_VECTORS[name].items()}


@pytest.mark.parametrize("name", sorted(GCM_VECTORS))
def test_gcm_known_answer(name):
    v = gcm_vector(name)
    suite = "aes128gcm16" if len(v["key"]) == 16 else "aes256gcm16"
    cipher = make_suite(suite, v["key"] + v["salt"])   # RFC 4106 §8.1: key || salt
    header = v["spi"] + v["seq"]
    body = cipher.seal(header, v["esn_high"], v["iv"], v["plaintext"])
    assert body == v["iv"] + v["ciphertext"] + v["tag"]
    assert cipher.open(header, v["esn_high"], body) == v["plaintext"]
    if not v["esn_high"]:
        encrypt, _, salt = cipher.primitives()
        assert v["iv"] + encrypt(salt + v["iv"], v["plaintext"], header) == body


def test_hmac_sha256_128_rfc4868_auth256_1():
    # RFC 4868 §2.7.2.1, AUTH256-1: key 0x0b * 32, data "Hi There"; HMAC-SHA-256-128 is
    # the first 128 bits of 198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3... With NULL
    # encryption and an empty payload the ICV covers exactly the 8 "header" bytes.
    cipher = make_suite("null-sha256", b"", b"\x0b" * 32)
    assert cipher.seal(b"Hi There", b"", b"", b"") == \
        bytes.fromhex("198a607eb44bfbc69903a0f1cf2bbdc5")


@pytest.mark.parametrize("suite", ["aes128-sha256", "aes256-sha256", "null-sha256"])
@pytest.mark.parametrize("esn_high", [b"", b"\x00\x00\x00\x05"])
def test_hmac_icv_matches_stdlib(suite, esn_high):
    """ICV = HMAC-SHA-256(integ key, header || IV || ciphertext || ESN high)[:16]."""
    enc, integ = keys(suite)
    body = make_suite(suite, enc, integ).seal(HEADER, esn_high, _iv(suite), _padded(suite))
    covered, icv = body[:-16], body[-16:]
    expected = hmac.new(integ, HEADER + covered + esn_high, hashlib.sha256).digest()
    assert len(icv) == 16
    assert icv == expected[:16]


@pytest.mark.parametrize("key,iv,plaintext,ciphertext", [
    # RFC 3602 §4, case #1 and case #2
    ("06a9214036b8a15b512e03d534120006", "3dafba429d9eb430b422da802c9fac41",
     b"Single block msg".hex(), "e353779c1079aeb82708942dbe77181a"),
    ("c286696d887c9aa0611bbb3e2025a45a", "562e17996d093d28ddb3ba695a2e6f58",
     bytes(range(32)).hex(),
     "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1"),
])
def test_aes_cbc_rfc3602_known_answer(key, iv, plaintext, ciphertext):
    integ = bytes(32)
    cipher = make_suite("aes128-sha256", bytes.fromhex(key), integ)
    body = cipher.seal(HEADER, b"", bytes.fromhex(iv), bytes.fromhex(plaintext))
    assert body[:16] == bytes.fromhex(iv)
    assert body[16:-16] == bytes.fromhex(ciphertext)
    assert cipher.open(HEADER, b"", body) == bytes.fromhex(plaintext)
