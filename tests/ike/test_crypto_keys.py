"""SKEYSEED, SK_* lengths and order, IKE SA rekey, child SA KEYMAT (RFC 7296 §2.13-2.18),
against a plain re-implementation on ``hmac``."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from mip6lab.crypto.esp_suites import SUITES, suite_spec
from mip6lab.crypto.ike import (IntegrityError, Prf, ProposalError, child_key_lengths,
                                compute_rekey_skeyseed, derive_child_keys, derive_ike_keys,
                                derive_rekeyed_ike_keys, encrypt_message, decrypt_message,
                                esp_suite_name, ike_key_lengths, parse_proposal,
                                UnsupportedTransform)

NI, NR = bytes(range(32)), bytes(range(100, 132))
SPI_I, SPI_R = bytes.fromhex("0102030405060708"), bytes.fromhex("1112131415161718")
G_IR = bytes(range(200, 232)) + bytes(range(64))
HASH = {5: hashlib.sha256, 6: hashlib.sha384, 7: hashlib.sha512}


def prf_plus(digest, key, seed, n):
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(key, t + seed + bytes([i]), digest).digest()
        out, i = out + t, i + 1
    return out[:n]


@pytest.mark.parametrize("text, lengths", [
    ("aes256gcm16-prfsha256-curve25519", (32, 0, 36, 32)),
    ("aes128gcm16-prfsha512-ecp256", (64, 0, 20, 64)),
    ("aes256gcm16-prfsha384-ecp384", (48, 0, 36, 48)),
    ("aes128-sha256-modp2048", (32, 32, 16, 32)),
    ("aes256-sha512-prfsha256-ecp256", (32, 64, 32, 32)),
    ("aes192-sha384-modp2048", (48, 48, 24, 48)),
])
def test_ike_key_lengths(text, lengths):
    got = ike_key_lengths(parse_proposal(text))
    assert (got.sk_d, got.sk_a, got.sk_e, got.sk_p) == lengths
    assert got.total == lengths[0] + 2 * sum(lengths[1:])


@pytest.mark.parametrize("text", ["aes256-sha384-prfsha512-ecp384",
                                  "aes128gcm16-prfsha256-curve25519"])
def test_ike_keys_against_reference(text):
    proposal = parse_proposal(text)
    prf_id = proposal.one(2).id
    digest = HASH[prf_id]
    keys = derive_ike_keys(proposal, NI, NR, G_IR, SPI_I, SPI_R)
    skeyseed = hmac.new(NI + NR, G_IR, digest).digest()  # key = the full Ni | Nr
    assert keys.skeyseed == skeyseed
    lengths = ike_key_lengths(proposal)
    stream = prf_plus(digest, skeyseed, NI + NR + SPI_I + SPI_R, lengths.total)
    order = [("sk_d", lengths.sk_d), ("sk_ai", lengths.sk_a), ("sk_ar", lengths.sk_a),
             ("sk_ei", lengths.sk_e), ("sk_er", lengths.sk_e), ("sk_pi", lengths.sk_p),
             ("sk_pr", lengths.sk_p)]
    offset = 0
    for name, size in order:
        assert getattr(keys, name) == stream[offset:offset + size], name
        offset += size
    assert keys.sk_ei != keys.sk_er and keys.sk_pi != keys.sk_pr


def test_swapping_nonces_or_spis_changes_everything():
    proposal = parse_proposal("aes256gcm16-prfsha256-curve25519")
    base = derive_ike_keys(proposal, NI, NR, G_IR, SPI_I, SPI_R)
    assert derive_ike_keys(proposal, NR, NI, G_IR, SPI_I, SPI_R).skeyseed != base.skeyseed
    swapped = derive_ike_keys(proposal, NI, NR, G_IR, SPI_R, SPI_I)
    assert swapped.skeyseed == base.skeyseed and swapped.sk_d != base.sk_d
    with pytest.raises(ValueError):
        derive_ike_keys(proposal, NI, NR, G_IR, SPI_I[:4], SPI_R)
    with pytest.raises(ProposalError):  # alternatives left: not negotiated
        derive_ike_keys(parse_proposal("aes256gcm16-aes128gcm16-prfsha256-ecp256"),
                        NI, NR, G_IR, SPI_I, SPI_R)


def test_ike_sa_rekey_uses_the_old_prf_then_the_new():
    old = derive_ike_keys(parse_proposal("aes256gcm16-prfsha256-curve25519"),
                          NI, NR, G_IR, SPI_I, SPI_R)
    new_proposal = parse_proposal("aes256-sha384-ecp384")
    ni2, nr2, g2 = b"n" * 32, b"m" * 32, b"g" * 48
    spi_i2, spi_r2 = b"I" * 8, b"R" * 8
    new = derive_rekeyed_ike_keys(old, new_proposal, ni2, nr2, g2, spi_i2, spi_r2)
    skeyseed = hmac.new(old.sk_d, g2 + ni2 + nr2, hashlib.sha256).digest()
    assert new.skeyseed == skeyseed == compute_rekey_skeyseed(Prf(5), old.sk_d, g2, ni2, nr2)
    stream = prf_plus(hashlib.sha384, skeyseed, ni2 + nr2 + spi_i2 + spi_r2, 48)
    assert new.sk_d == stream and len(new.sk_ai) == 48


def test_sk_ciphers_per_direction():
    keys = derive_ike_keys(parse_proposal("aes128-sha256-modp2048"), NI, NR, G_IR, SPI_I,
                           SPI_R)
    header = SPI_I + SPI_R + bytes((46, 0x20, 35, 0x08)) + bytes(8)
    out_i, in_i = keys.ciphers(initiator=True)
    out_r, in_r = keys.ciphers(initiator=False)
    message = encrypt_message(out_i, header, 35, b"\x00\x00\x00\x05x", bytes(16))
    assert decrypt_message(in_r, message) == (35, b"\x00\x00\x00\x05x")
    with pytest.raises(IntegrityError):
        decrypt_message(in_i, message)  # the initiator's inbound keys are SK_er/SK_ar


@pytest.mark.parametrize("name", [n for n in SUITES if not n.startswith("null")])
def test_child_key_lengths_are_the_esp_suites(name):
    proposal = parse_proposal(name, "esp")
    assert esp_suite_name(proposal) == name
    spec = suite_spec(name)
    assert child_key_lengths(proposal) == (spec.enc_key_len, spec.integ_key_len)


def test_child_key_lengths_beyond_the_esp_suites():
    assert child_key_lengths(parse_proposal("aes128-sha384", "esp")) == (16, 48)
    assert child_key_lengths(parse_proposal("aes192gcm16-ecp256", "esp")) == (28, 0)
    with pytest.raises(UnsupportedTransform):
        child_key_lengths(parse_proposal("aes128-sha256-modp2048"))  # IKE, not ESP


@pytest.mark.parametrize("esp, sizes", [("aes256gcm16", (36, 0)), ("aes128-sha256", (16, 32)),
                                        ("aes256-sha512", (32, 64))])
def test_child_keymat_order(esp, sizes):
    sk_d = b"D" * 32
    keys = derive_child_keys(Prf(5), sk_d, parse_proposal(esp, "esp"), NI, NR)
    enc, integ = sizes
    keymat = prf_plus(hashlib.sha256, sk_d, NI + NR, 2 * (enc + integ))
    assert keys.encr_i == keymat[:enc]
    assert keys.integ_i == keymat[enc:enc + integ]
    assert keys.encr_r == keymat[enc + integ:2 * enc + integ]
    assert keys.integ_r == keymat[2 * enc + integ:]
    assert keys.outbound(True) == keys.inbound(False) == (keys.encr_i, keys.integ_i)
    assert keys.outbound(False) == (keys.encr_r, keys.integ_r)


def test_child_keymat_with_pfs():
    sk_d, g_new = b"D" * 48, b"G" * 32
    proposal = parse_proposal("aes128gcm16-curve25519", "esp")
    pfs = derive_child_keys(Prf(6), sk_d, proposal, NI, NR, g_new)
    keymat = prf_plus(hashlib.sha384, sk_d, g_new + NI + NR, 40)
    assert pfs.encr_i + pfs.encr_r == keymat
    assert derive_child_keys(Prf(6), sk_d, proposal, NI, NR).encr_i != pfs.encr_i
