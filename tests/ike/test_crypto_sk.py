"""The Encrypted payload (RFC 7296 §3.14, RFC 5282): AES-CBC + HMAC and AES-GCM-16,
against independent computations with `cryptography` and ``hmac``."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mip6lab.crypto.ike import (AesCbcSk, AesGcmSk, Integrity, IntegrityError,
                                MalformedEncryptedPayload, Proposal, Protocol, SkCipher,
                                UnsupportedTransform, decrypt_message, encrypt_message,
                                find_encrypted_payload, parse_proposal)

INNER = bytes.fromhex("27000010") + b"\x02\x00\x00\x00hello!!!" + bytes.fromhex(
    "00000009") + b"\x02\x00\x00\x00x"  # IDi-like then AUTH-like, 25 bytes
HEADER = bytes(range(8)) + bytes(range(8, 16)) + bytes((46, 0x20, 35, 0x08)) + bytes(8)


def key(n: int, tag: int = 1) -> bytes:
    return bytes((tag * 31 + i * 7) & 0xFF for i in range(n))


def gcm(bits: int = 256) -> AesGcmSk:
    return AesGcmSk(key(bits // 8 + 4), bits)


def cbc(bits: int = 128, integ: int = 12) -> AesCbcSk:
    integrity = Integrity(integ)
    return AesCbcSk(key(bits // 8), integrity, key(integrity.key_size, 2), bits)


CIPHERS = {"gcm128": lambda: gcm(128), "gcm256": lambda: gcm(256),
           "cbc128-sha256": lambda: cbc(128, 12), "cbc256-sha384": lambda: cbc(256, 13),
           "cbc256-sha512": lambda: cbc(256, 14)}


@pytest.mark.parametrize("name", CIPHERS)
@pytest.mark.parametrize("payloads", [b"", INNER, bytes(range(256)) * 3])
def test_message_roundtrip(name, payloads):
    cipher = CIPHERS[name]()
    iv = bytes(range(cipher.iv_size))
    message = encrypt_message(cipher, HEADER, 35 if payloads else 0, payloads, iv)
    assert int.from_bytes(message[24:28], "big") == len(message)
    assert find_encrypted_payload(message) == 28
    sk_length = int.from_bytes(message[30:32], "big")
    assert sk_length == len(message) - 28 == 4 + cipher.encrypted_size(len(payloads))
    assert decrypt_message(cipher, message) == ((35 if payloads else 0), payloads)
    body = message[32:]
    if cipher.aead:
        assert len(body) == 8 + len(payloads) + 1 + 16  # no alignment for GCM
    else:
        assert (len(body) - 16 - cipher.icv_size) % 16 == 0


def test_gcm_is_rfc5282():
    sk_e = key(36)
    cipher = AesGcmSk(sk_e, 256)
    aad, iv = HEADER + bytes((35, 0, 0, 0)), bytes.fromhex("0102030405060708")
    body = cipher.encrypt(INNER, aad, iv)
    # nonce = salt (last 4 bytes of SK_e) | IV; plaintext = payloads | Pad Length 0
    expected = AESGCM(sk_e[:32]).encrypt(sk_e[32:] + iv, INNER + b"\x00", aad)
    assert body == iv + expected
    assert cipher.decrypt(body, aad) == INNER
    with pytest.raises(IntegrityError, match="GCM"):
        cipher.decrypt(body, aad[:-1] + b"\x01")  # the AAD is authenticated


def test_cbc_is_rfc7296_3_14():
    sk_e, sk_a = key(32), key(48, 3)
    cipher = AesCbcSk(sk_e, Integrity(13), sk_a, 256)
    aad, iv = HEADER + bytes((35, 0, 0, 0)), bytes(range(16, 32))
    body = cipher.encrypt(INNER, aad, iv)
    padded = INNER + bytes(6) + b"\x06"  # 25 + 6 + 1 = 32
    encryptor = Cipher(algorithms.AES(sk_e), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    icv = hmac.new(sk_a, aad + iv + ciphertext, hashlib.sha384).digest()[:24]
    assert body == iv + ciphertext + icv
    assert cipher.decrypt(body, aad) == INNER
    with pytest.raises(IntegrityError):
        cipher.decrypt(body, bytes((aad[0] ^ 1,)) + aad[1:])


def test_caller_chosen_padding():
    cipher = cbc()
    aad, iv = b"A" * 32, bytes(16)
    padding = bytes(range(1, 23))  # 25 + 22 + 1 = 48
    body = cipher.encrypt(INNER, aad, iv, padding=padding)
    assert len(body) == 16 + 48 + 16
    decryptor = Cipher(algorithms.AES(key(16)), modes.CBC(iv)).decryptor()
    plain = decryptor.update(body[16:-16]) + decryptor.finalize()
    assert plain == INNER + padding + bytes((22,))
    assert cipher.decrypt(body, aad) == INNER
    with pytest.raises(ValueError):
        cipher.encrypt(INNER, aad, iv, padding=bytes(5))  # not aligned
    with pytest.raises(ValueError):
        gcm().encrypt(INNER, aad, bytes(8), padding=bytes(256))  # longer than 255
    assert gcm().decrypt(gcm().encrypt(INNER, aad, bytes(8), padding=bytes(7)), aad) == INNER


def test_unencrypted_payloads_before_sk_are_covered():
    cipher = gcm()
    notify = bytes((46, 0, 0, 8)) + bytes(4)  # a payload whose Next Payload is SK
    header = bytearray(HEADER)
    header[16] = 41
    message = encrypt_message(cipher, bytes(header), 35, INNER, bytes(8), unencrypted=notify)
    assert message[16] == 41 and find_encrypted_payload(message) == 36
    assert decrypt_message(cipher, message) == (35, INNER)
    forged = bytearray(message)
    forged[33] ^= 1  # inside the unencrypted payload
    with pytest.raises(IntegrityError):
        decrypt_message(cipher, bytes(forged))


def test_bad_pad_length_after_a_valid_icv_is_malformed():
    sk_e = key(36)
    cipher = AesGcmSk(sk_e, 256)
    aad, iv = b"x" * 32, bytes(8)
    forged = iv + AESGCM(sk_e[:32]).encrypt(sk_e[32:] + iv, b"ab\x05", aad)
    with pytest.raises(MalformedEncryptedPayload, match="Pad Length"):
        cipher.decrypt(forged, aad)
    ok = iv + AESGCM(sk_e[:32]).encrypt(sk_e[32:] + iv, b"ab\x02", aad)
    assert cipher.decrypt(ok, aad) == b""


def test_cbc_ciphertext_not_whole_blocks_is_malformed():
    sk_e, sk_a = key(16), key(32, 2)
    cipher = AesCbcSk(sk_e, Integrity(12), sk_a, 128)
    aad, covered = b"h" * 32, bytes(16) + bytes(20)  # IV + 20 bytes: not whole blocks
    icv = hmac.new(sk_a, aad + covered, hashlib.sha256).digest()[:16]
    with pytest.raises(MalformedEncryptedPayload, match="blocks"):
        cipher.decrypt(covered + icv, aad)


@pytest.mark.parametrize("name", CIPHERS)
def test_short_bodies_are_malformed(name):
    cipher = CIPHERS[name]()
    for size in (0, cipher.iv_size, cipher.iv_size + cipher.icv_size):
        with pytest.raises(MalformedEncryptedPayload):
            cipher.decrypt(bytes(size), b"aad")


def test_message_structure_errors():
    cipher = gcm()
    message = encrypt_message(cipher, HEADER, 35, INNER, bytes(8))
    with pytest.raises(MalformedEncryptedPayload, match="shorter"):
        find_encrypted_payload(message[:20])
    with pytest.raises(MalformedEncryptedPayload, match="Length"):
        find_encrypted_payload(message[:-1])  # header Length beyond the datagram
    no_sk = bytearray(HEADER)
    no_sk[16] = 0
    no_sk[24:28] = (28).to_bytes(4, "big")
    with pytest.raises(MalformedEncryptedPayload, match="no Encrypted"):
        find_encrypted_payload(bytes(no_sk))
    trailing = bytearray(message + bytes(4))
    trailing[24:28] = len(trailing).to_bytes(4, "big")
    with pytest.raises(MalformedEncryptedPayload, match="last"):
        find_encrypted_payload(bytes(trailing))
    broken = bytearray(message)
    broken[30:32] = (3).to_bytes(2, "big")
    with pytest.raises(MalformedEncryptedPayload, match="Payload Length"):
        find_encrypted_payload(bytes(broken))
    fragment = bytearray(message)
    fragment[16] = 53
    with pytest.raises(MalformedEncryptedPayload, match="7383"):
        find_encrypted_payload(bytes(fragment))


def test_key_and_iv_sizes_are_checked():
    with pytest.raises(ValueError):
        AesGcmSk(key(32), 256)  # salt missing
    with pytest.raises(ValueError):
        AesCbcSk(key(32), Integrity(12), key(31), 256)
    with pytest.raises(ValueError):
        gcm().encrypt(INNER, b"", bytes(12))
    with pytest.raises(ValueError):
        encrypt_message(gcm(), HEADER[:27], 35, INNER, bytes(8))


def test_for_proposal():
    g = SkCipher.for_proposal(parse_proposal("aes128gcm16-prfsha256-ecp256"), key(20))
    assert isinstance(g, AesGcmSk) and (g.iv_size, g.icv_size, g.salt) == (8, 16, key(20)[16:])
    c = SkCipher.for_proposal(parse_proposal("aes256-sha512-modp2048"), key(32), key(64))
    assert isinstance(c, AesCbcSk) and (c.iv_size, c.icv_size) == (16, 32)
    with pytest.raises(UnsupportedTransform):
        SkCipher.for_proposal(Proposal.from_transforms(Protocol.IKE, []), b"")
