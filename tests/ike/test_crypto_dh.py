"""Key exchange: RFC 5903 §8 (ECP 256/384), RFC 7748 §6.1 (X25519), MODP-2048 (RFC 3526),
peer-value validation, and determinism from an injected random source."""

from __future__ import annotations

import random

import pytest

from mip6lab.crypto.ike import (CURVE25519, ECP_256, ECP_384, MODP_2048, MODP_2048_PRIME,
                                EcpKeyExchange, InvalidKeyExchange, ModpKeyExchange,
                                UnsupportedTransform, X25519KeyExchange,
                                generate_key_exchange)
from mip6lab.errors import RemoteProtocolError


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


def source(*chunks: bytes):
    """A random source that hands out the given byte strings, in order."""
    queue = list(chunks)

    def draw(n: int) -> bytes:
        chunk = queue.pop(0)
        assert len(chunk) == n, f"asked for {n} bytes, vector has {len(chunk)}"
        return chunk
    return draw


RFC5903 = {
    ECP_256: dict(
        i=h("C88F01F5 10D9AC3F 70A292DA A2316DE5 44E9AAB8 AFE84049 C62A9C57 862D1433"),
        gi=h("DAD0B653 94221CF9 B051E1FE CA5787D0 98DFE637 FC90B9EF 945D0C37 72581180"
             "5271A046 1CDB8252 D61F1C45 6FA3E59A B1F45B33 ACCF5F58 389E0577 B8990BB3"),
        r=h("C6EF9C5D 78AE012A 011164AC B397CE20 88685D8F 06BF9BE0 B283AB46 476BEE53"),
        gr=h("D12DFB52 89C8D4F8 1208B702 70398C34 2296970A 0BCCB74C 736FC755 4494BF63"
             "56FBF3CA 366CC23E 8157854C 13C58D6A AC23F046 ADA30F83 53E74F33 039872AB"),
        girx=h("D6840F6B 42F6EDAF D13116E0 E1256520 2FEF8E9E CE7DCE03 812464D0 4B9442DE")),
    ECP_384: dict(
        i=h("099F3C70 34D4A2C6 99884D73 A375A67F 7624EF7C 6B3C0F16 0647B674 14DCE655"
            "E35B5380 41E649EE 3FAEF896 783AB194"),
        gi=h("667842D7 D180AC2C DE6F74F3 7551F557 55C7645C 20EF73E3 1634FE72 B4C55EE6"
             "DE3AC808 ACB4BDB4 C88732AE E95F41AA 9482ED1F C0EEB9CA FC498462 5CCFC23F"
             "65032149 E0E144AD A0241815 35A0F38E EB9FCFF3 C2C947DA E69B4C63 4573A81C"),
        r=h("41CB0779 B4BDB85D 47846725 FBEC3C94 30FAB46C C8DC5060 855CC9BD A0AA2942"
            "E0308312 916B8ED2 960E4BD5 5A7448FC"),
        gr=h("E558DBEF 53EECDE3 D3FCCFC1 AEA08A89 A987475D 12FD950D 83CFA417 32BC509D"
             "0D1AC43A 0336DEF9 6FDA41D0 774A3571 DCFBEC7A ACF31964 72169E83 8430367F"
             "66EEBE3C 6E70C416 DD5F0C68 759DD1FF F83FA401 42209DFF 5EAAD96D B9E6386C"),
        girx=h("11187331 C279962D 93D60424 3FD592CB 9D0A926F 422E4718 7521287E 7156C5C4"
               "D6031355 69B9E9D0 9CF5D4A2 70F59746")),
}


@pytest.mark.parametrize("group", RFC5903)
def test_rfc5903_vectors(group):
    v = RFC5903[group]
    initiator = generate_key_exchange(group, source(v["i"]))
    responder = generate_key_exchange(group, source(v["r"]))
    assert initiator.public_value == v["gi"]   # KE payload data: x || y
    assert responder.public_value == v["gr"]
    assert initiator.shared_secret(v["gr"]) == v["girx"]   # g^ir = x only
    assert responder.shared_secret(v["gi"]) == v["girx"]


# Field primes and base points, to check the group orders we carry (FIPS 186-4 D.1.2).
CURVES = {
    ECP_256: (2**256 - 2**224 + 2**192 + 2**96 - 1,
              0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296),
    ECP_384: (2**384 - 2**128 - 2**96 + 2**32 - 1,
              int("AA87CA22BE8B05378EB1C71EF320AD746E1D3B628BA79B9859F741E082542A38"
                  "5502F25DBF55296C3A545E3872760AB7", 16)),
}


@pytest.mark.parametrize("group", CURVES)
def test_private_scalar_range_is_the_group_order(group):
    p, gx = CURVES[group]
    size = len(RFC5903[group]["girx"])
    one = EcpKeyExchange(group, 1).public_value
    assert one[:size] == gx.to_bytes(size, "big")
    order = {ECP_256: 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
             ECP_384: int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
                          "581A0DB248B0A77AECEC196ACCC52973", 16)}[group]
    minus_one = EcpKeyExchange(group, order - 1).public_value  # (n-1)G = -G
    assert minus_one[:size] == one[:size]
    assert int.from_bytes(minus_one[size:], "big") == p - int.from_bytes(one[size:], "big")
    with pytest.raises(ValueError):
        EcpKeyExchange(group, order)
    with pytest.raises(ValueError):
        EcpKeyExchange(group, 0)
    # out-of-range draws are redrawn (rejection sampling), not reduced
    ke = generate_key_exchange(group, source(bytes(size), order.to_bytes(size, "big"),
                                             (2).to_bytes(size, "big")))
    assert ke.public_value == EcpKeyExchange(group, 2).public_value


@pytest.mark.parametrize("group", CURVES)
def test_ecp_peer_validation(group):
    v = RFC5903[group]
    ke = generate_key_exchange(group, source(v["i"]))
    off_curve = v["gr"][:-1] + bytes((v["gr"][-1] ^ 1,))
    for bad in (off_curve, bytes(len(v["gr"])), v["gr"][:-1], v["gr"] + b"\x00",
                b"\xff" * len(v["gr"])):
        with pytest.raises(InvalidKeyExchange) as caught:
            ke.shared_secret(bad)
        assert isinstance(caught.value, RemoteProtocolError) and caught.value.notify == 7


# RFC 7748 §6.1
ALICE = h("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
ALICE_PUB = h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
BOB = h("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
BOB_PUB = h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
SHARED = h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")


def test_rfc7748_x25519_vector():
    alice = generate_key_exchange(CURVE25519, source(ALICE))
    bob = generate_key_exchange(CURVE25519, source(BOB))
    assert (alice.public_value, bob.public_value) == (ALICE_PUB, BOB_PUB)
    assert alice.shared_secret(BOB_PUB) == bob.shared_secret(ALICE_PUB) == SHARED


def test_x25519_low_order_points_and_lengths_are_refused():
    alice = X25519KeyExchange(ALICE)
    # u = 0 and u = 1 are of low order: the result is all zeros (RFC 7748 §6.1, RFC 8031)
    for bad in (bytes(32), (1).to_bytes(32, "little")):
        with pytest.raises(InvalidKeyExchange, match="all-zero"):
            alice.shared_secret(bad)
    for bad in (BOB_PUB[:31], BOB_PUB + b"\x00"):
        with pytest.raises(InvalidKeyExchange, match="33|31"):
            alice.shared_secret(bad)


# ---------------------------------------------------------------------------- MODP
def _pi_times_2_pow(bits: int) -> int:
    """floor(pi * 2**bits) by Machin's formula in integers (64 guard bits)."""
    one = 1 << (bits + 64)

    def arctan_inv(x: int) -> int:
        total, term, k, sign = 0, one // x, 1, 1
        while term:
            total += sign * (term // k)
            term //= x * x
            k += 2
            sign = -sign
        return total
    return (16 * arctan_inv(5) - 4 * arctan_inv(239)) >> 64


def test_modp_2048_prime_is_rfc3526():
    expected = 2**2048 - 2**1984 - 1 + 2**64 * (_pi_times_2_pow(1918) + 124476)
    assert MODP_2048_PRIME == expected
    q = (MODP_2048_PRIME - 1) // 2
    assert pow(3, MODP_2048_PRIME - 1, MODP_2048_PRIME) == 1   # Fermat, base 3
    assert pow(2, q, MODP_2048_PRIME) == 1   # 2 generates the prime-order subgroup


def test_modp_roundtrip_is_deterministic():
    rng_a, rng_b = random.Random(1), random.Random(2)
    a = generate_key_exchange(MODP_2048, rng_a.randbytes)
    b = generate_key_exchange(MODP_2048, rng_b.randbytes)
    assert len(a.public_value) == len(b.public_value) == 256
    secret = a.shared_secret(b.public_value)
    assert secret == b.shared_secret(a.public_value) and len(secret) == 256
    again = generate_key_exchange(MODP_2048, random.Random(1).randbytes)
    assert again.public_value == a.public_value
    assert generate_key_exchange(MODP_2048, random.Random(3).randbytes).public_value \
        != a.public_value


def test_modp_private_exponent_is_the_drawn_bytes():
    drawn = bytes(range(1, 65))
    ke = generate_key_exchange(MODP_2048, source(drawn))
    x = int.from_bytes(drawn, "big")
    assert ke.public_value == pow(2, x, MODP_2048_PRIME).to_bytes(256, "big")
    redrawn = generate_key_exchange(MODP_2048, source(bytes(64), b"\x00" * 63 + b"\x01",
                                                      drawn))
    assert redrawn.public_value == ke.public_value  # 0 and 1 are not exponents


def test_modp_values_keep_leading_zeros():
    ke = ModpKeyExchange(5)
    assert ke.public_value == (32).to_bytes(256, "big")
    assert ke.shared_secret((3).to_bytes(256, "big")) == (243).to_bytes(256, "big")


def test_modp_peer_validation():
    ke = ModpKeyExchange(12345)
    p = MODP_2048_PRIME
    for bad in (0, 1, p - 1, p, 2**2048 - 1):
        with pytest.raises(InvalidKeyExchange, match="1 < y < p - 1"):
            ke.shared_secret(bad.to_bytes(256, "big"))
    for length in (255, 257):
        with pytest.raises(InvalidKeyExchange, match="expected 256"):
            ke.shared_secret((7).to_bytes(length, "big"))
    assert ke.shared_secret((p - 2).to_bytes(256, "big")) == pow(p - 2, 12345, p).to_bytes(
        256, "big")
    with pytest.raises(ValueError):
        ModpKeyExchange(1)


def test_group_objects():
    assert generate_key_exchange(ECP_256, random.Random(0).randbytes).group == ECP_256
    assert generate_key_exchange(CURVE25519, random.Random(0).randbytes).algorithm.keyword \
        == "curve25519"
    with pytest.raises(UnsupportedTransform):
        generate_key_exchange(15, random.Random(0).randbytes)  # MODP-3072: not ours
