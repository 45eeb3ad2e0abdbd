"""Key exchange (Diffie-Hellman) for the KE payload: groups 14, 19, 20 and 31.

One object per exchange: made from the private value, it knows its public value (the Key
Exchange Data of the KE payload, RFC 7296 §3.4) and computes g^ir from the peer's::

    ke = generate_key_exchange(19, sim.random.randbytes)     # seeded: replays exactly
    ke.public_value                  # 64 bytes: x || y
    g_ir = ke.shared_secret(peer_public_value)               # 32 bytes: x only

Determinism (DESIGN.md rule 4): the private value is drawn from an injected random
source, a callable ``random(n) -> n bytes`` (``os.urandom``, ``random.Random.randbytes``),
and *is* those bytes read big-endian (X25519: the 32 bytes as they are), redrawn when out
of range. A source that returns a test vector's private key therefore reproduces the
vector.

Encodings:

- MODP-2048 (RFC 3526 group 14, RFC 7296 §3.4): public value and g^ir are big-endian
  integers zero-padded to the 256-byte length of the prime.
- ECP-256/384 (RFC 5903 §7): the public value is x || y, each coordinate zero-padded to
  the field size; g^ir is the x coordinate of the shared point only.
- Curve25519 (RFC 8031 §2): 32-byte u-coordinates, as X25519 gives them.

Peer values are validated (RFC 6989, RFC 8031 §2.1) before use, and a failure is an
:class:`InvalidKeyExchange`: MODP needs 1 < y < p - 1 and the exact length; an ECP point
must be on the curve (`cryptography` checks it when decoding); an X25519 exchange whose
result is all zeros (a low-order point) is refused.

Why MODP is ``pow(g, x, p)``: `cryptography` marks its finite-field ``dh`` module as
deprecated (removal announced from release 50 on), yet RFC 8247 §2.4 still makes group 14
a MUST and strongSwan configs use it. Python's built-in three-argument ``pow`` *is* the
MODP operation, exact and available everywhere. It is not constant-time, which is
acceptable for a teaching stack and stated here so nobody copies it into production. The
elliptic-curve groups use `cryptography` as usual.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .errors import InvalidKeyExchange, UnsupportedTransform
from .transforms import CURVE25519, ECP_256, ECP_384, KEY_EXCHANGE, MODP_2048, KeAlgorithm

RandomSource = Callable[[int], bytes]

# RFC 3526 §3: 2^2048 - 2^1984 - 1 + 2^64 * { [2^1918 pi] + 124476 }, generator 2.
MODP_2048_PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
    "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
    "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
    "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF", 16)
MODP_2048_GENERATOR = 2

# Group orders n of P-256 and P-384 (SEC 2 / FIPS 186-4 D.1.2): private scalars are in
# [1, n - 1].
_EC_CURVES: dict[int, tuple[ec.EllipticCurve, int]] = {
    ECP_256: (ec.SECP256R1(),
              0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551),
    ECP_384: (ec.SECP384R1(),
              int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF"
                  "581A0DB248B0A77AECEC196ACCC52973", 16)),
}

_MAX_DRAWS = 64


class KeyExchange(ABC):
    """One side of one key exchange: a private value, its public value, and g^ir."""

    group: int

    @property
    def algorithm(self) -> KeAlgorithm:
        return KEY_EXCHANGE[self.group]

    @property
    @abstractmethod
    def public_value(self) -> bytes:
        """The Key Exchange Data of our KE payload."""

    @abstractmethod
    def shared_secret(self, peer_public_value: bytes) -> bytes:
        """g^ir from the peer's Key Exchange Data; :class:`InvalidKeyExchange` if that
        value is unusable."""

    def _check_length(self, peer: bytes) -> bytes:
        peer = bytes(peer)
        if len(peer) != self.algorithm.public_size:
            raise InvalidKeyExchange(
                f"{self.algorithm.iana}: Key Exchange Data of {len(peer)} bytes, "
                f"expected {self.algorithm.public_size}")
        return peer

    def __repr__(self) -> str:
        return f"{type(self).__name__}(group={self.group})"


class ModpKeyExchange(KeyExchange):
    """MODP group 14 (RFC 3526), computed with Python's ``pow`` (see the module doc)."""

    group = MODP_2048
    prime = MODP_2048_PRIME
    generator = MODP_2048_GENERATOR
    #: Bytes of private exponent drawn. RFC 3526 §8 puts group 14 at 110-160 bits of
    #: strength and asks for an exponent of at least twice that; 512 bits leaves margin
    #: and keeps ``pow`` fast (a full-size exponent costs four times as much).
    exponent_size = 64

    def __init__(self, private_exponent: int) -> None:
        if not 1 < private_exponent < self.prime - 1:
            raise ValueError("the private exponent must be in [2, p - 2]")
        self._x = private_exponent
        self._public = pow(self.generator, private_exponent, self.prime).to_bytes(
            self.algorithm.public_size, "big")

    @classmethod
    def generate(cls, random: RandomSource) -> ModpKeyExchange:
        for _ in range(_MAX_DRAWS):
            x = int.from_bytes(random(cls.exponent_size), "big")
            if 1 < x < cls.prime - 1:
                return cls(x)
        raise RuntimeError("the random source keeps returning unusable exponents")

    @property
    def public_value(self) -> bytes:
        return self._public

    def shared_secret(self, peer_public_value: bytes) -> bytes:
        y = int.from_bytes(self._check_length(peer_public_value), "big")
        if not 1 < y < self.prime - 1:
            raise InvalidKeyExchange("MODP public value outside 1 < y < p - 1 (RFC 6989 §2.1)")
        return pow(y, self._x, self.prime).to_bytes(self.algorithm.secret_size, "big")


class EcpKeyExchange(KeyExchange):
    """ECP groups 19 and 20 (RFC 5903) over `cryptography`'s ECDH."""

    def __init__(self, group: int, private_scalar: int) -> None:
        if group not in _EC_CURVES:
            raise UnsupportedTransform(f"group {group} is not an ECP group we support")
        self.group = group
        self._curve, order = _EC_CURVES[group]
        if not 0 < private_scalar < order:
            raise ValueError("the private scalar must be in [1, n - 1]")
        self._key = ec.derive_private_key(private_scalar, self._curve)
        point = self._key.public_key().public_bytes(serialization.Encoding.X962,
                                                    serialization.PublicFormat.UncompressedPoint)
        self._public = point[1:]  # drop the 0x04 of the uncompressed SEC1 encoding

    @classmethod
    def generate(cls, group: int, random: RandomSource) -> EcpKeyExchange:
        _, order = _EC_CURVES[group]
        size = KEY_EXCHANGE[group].secret_size
        for _ in range(_MAX_DRAWS):
            d = int.from_bytes(random(size), "big")
            if 0 < d < order:  # rejection sampling: FIPS 186-4 B.4.2
                return cls(group, d)
        raise RuntimeError("the random source keeps returning unusable scalars")

    @property
    def public_value(self) -> bytes:
        return self._public

    def shared_secret(self, peer_public_value: bytes) -> bytes:
        peer = self._check_length(peer_public_value)
        try:
            point = ec.EllipticCurvePublicKey.from_encoded_point(self._curve, b"\x04" + peer)
        except ValueError:
            raise InvalidKeyExchange(f"{self.algorithm.iana}: the public value is not a "
                                     "point on the curve (RFC 5903 §7)") from None
        return self._key.exchange(ec.ECDH(), point)


class X25519KeyExchange(KeyExchange):
    """Curve25519 (group 31, RFC 8031) over `cryptography`'s X25519."""

    group = CURVE25519

    def __init__(self, private_bytes: bytes) -> None:
        self._key = X25519PrivateKey.from_private_bytes(bytes(private_bytes))
        self._public = self._key.public_key().public_bytes_raw()    # RFC 8031 §2: 32 octets

    @classmethod
    def generate(cls, random: RandomSource) -> X25519KeyExchange:
        return cls(random(32))

    @property
    def public_value(self) -> bytes:
        return self._public

    def shared_secret(self, peer_public_value: bytes) -> bytes:
        peer = X25519PublicKey.from_public_bytes(self._check_length(peer_public_value))
        try:
            secret = self._key.exchange(peer)
        except ValueError:  # `cryptography` refuses an all-zero result itself
            secret = bytes(32)
        if not any(secret):
            raise InvalidKeyExchange("Curve25519: all-zero shared secret, the peer sent a "
                                     "low-order point (RFC 8031 §2.1)")
        return secret


def generate_key_exchange(group: int, random: RandomSource) -> KeyExchange:
    """A fresh key exchange for the KE payload of ``group``, private value from ``random``."""
    if group == MODP_2048:
        return ModpKeyExchange.generate(random)
    if group in _EC_CURVES:
        return EcpKeyExchange.generate(group, random)
    if group == CURVE25519:
        return X25519KeyExchange.generate(random)
    raise UnsupportedTransform(f"key exchange method {group} is not supported; "
                               f"supported: {sorted(KEY_EXCHANGE)}")
