"""The PRF, prf+ and the integrity transform of IKEv2 (RFC 7296 §2.13, §3.14; RFC 4868).

All three are HMAC over SHA-2, computed by OpenSSL through the standard library's
one-shot ``hmac.digest`` (the same primitive as `cryptography`'s ``hmac.HMAC``, without
an object per call: an IKE handshake computes a few dozen of them):

- ``prf(K, S)`` is HMAC(K, S), full length (PRF_HMAC_SHA2_256 gives 32 bytes). HMAC takes
  keys of any length, which is why SKEYSEED can be keyed with the whole Ni | Nr (§2.14:
  only the fixed-key PRFs AES-XCBC/CMAC would take 64 bits of each nonce; we have none).
- ``prf+(K, S) = T1 | T2 | ...`` with ``T1 = prf(K, S | 0x01)``,
  ``Tn = prf(K, Tn-1 | S | n)``: at most 255 blocks.
- integrity (``AUTH_HMAC_SHA2_256_128`` ...) is HMAC truncated to half the hash length
  (RFC 4868 §2.6), with a key as long as the hash output.
"""

from __future__ import annotations

import hmac as _stdlib_hmac
from functools import lru_cache

from cryptography.hazmat.primitives import constant_time

from .errors import IntegrityError, UnsupportedTransform
from .proposals import Proposal, Transform
from .transforms import INTEGRITY, PRFS, HashAlgorithm, TransformType


class Prf:
    """A negotiated PRF: ``prf(key, data)`` and ``prf.plus(key, seed, length)``."""

    def __init__(self, transform_id: int) -> None:
        try:
            self.algorithm: HashAlgorithm = PRFS[transform_id]
        except KeyError:
            raise UnsupportedTransform(f"PRF transform {transform_id} is not supported") from None
        self.id = transform_id
        self._hash = self.algorithm.hash
        self._digest = self._hash.name          # "sha256": hashlib's name of the hash

    @classmethod
    @lru_cache(maxsize=256)      # by the proposal's value; a Prf holds no state
    def for_proposal(cls, proposal: Proposal) -> Prf:
        prf = proposal.one(TransformType.PRF)
        if prf is None:
            raise UnsupportedTransform(f"{proposal.charon} has no PRF")
        return cls(prf.id)

    @property
    def output_size(self) -> int:
        return self.algorithm.output_size

    @property
    def key_size(self) -> int:
        """The preferred key size: the length of SK_d, SK_pi and SK_pr (§2.13)."""
        return self.algorithm.key_size

    @property
    def name(self) -> str:
        return self.algorithm.iana

    def __call__(self, key: bytes, data: bytes) -> bytes:
        return _stdlib_hmac.digest(key, data, self._digest)

    def plus(self, key: bytes, seed: bytes, length: int) -> bytes:
        """prf+ (K, S), the first ``length`` bytes (§2.13)."""
        return prf_plus(self, key, seed, length)

    def __repr__(self) -> str:
        return f"Prf({self.name})"


def prf_plus(prf: Prf, key: bytes, seed: bytes, length: int) -> bytes:
    """prf+ (K, S) = T1 | T2 | ... cut to ``length`` bytes (RFC 7296 §2.13).

    "The prf+ function is not defined beyond 255 times the size of the prf function
    output": asking for more is a ValueError.
    """
    if length < 0 or length > 255 * prf.output_size:
        raise ValueError(f"prf+ of {prf.name} yields 0..{255 * prf.output_size} bytes, "
                         f"not {length}")
    out = bytearray()
    block = b""
    counter = 1
    digest = _stdlib_hmac.digest
    while len(out) < length:
        block = digest(key, block + seed + bytes((counter,)), prf._digest)
        out += block
        counter += 1
    return bytes(out[:length])


class Integrity:
    """A negotiated integrity transform: ``sign(key, data)`` gives the truncated ICV,
    ``verify(key, data, icv)`` raises :class:`IntegrityError` if it does not match."""

    def __init__(self, transform_id: int) -> None:
        try:
            self.algorithm: HashAlgorithm = INTEGRITY[transform_id]
        except KeyError:
            raise UnsupportedTransform(
                f"integrity transform {transform_id} is not supported") from None
        self.id = transform_id
        self._hash = self.algorithm.hash
        self._digest = self._hash.name

    @classmethod
    def for_transform(cls, transform: Transform) -> Integrity:
        return cls(transform.id)

    @property
    def key_size(self) -> int:
        return self.algorithm.key_size

    @property
    def icv_size(self) -> int:
        return self.algorithm.output_size

    @property
    def name(self) -> str:
        return self.algorithm.iana

    def sign(self, key: bytes, data: bytes) -> bytes:
        if len(key) != self.key_size:
            raise ValueError(f"{self.name} takes a {self.key_size}-byte key, not {len(key)}")
        return _stdlib_hmac.digest(key, data, self._digest)[:self.icv_size]

    def verify(self, key: bytes, data: bytes, icv: bytes) -> None:
        if not constant_time.bytes_eq(self.sign(key, data), bytes(icv)):
            raise IntegrityError(f"ICV mismatch ({self.name})")

    def __repr__(self) -> str:
        return f"Integrity({self.name})"
