"""The PRF, prf+ and the integrity transform of IKEv2 (RFC 7296 §2.13, §3.14; RFC 4868).

All three are HMAC over SHA-2, computed by OpenSSL: a single ``prf(K, S)`` through the
standard library's one-shot ``hmac.digest`` (the same primitive as `cryptography`'s
``hmac.HMAC``, without an object per call: an IKE handshake computes a few dozen of
them); a key used for several blocks (prf+, and the "Key Pad" of a pre-shared key) is
keyed once as `cryptography`'s ``hmac.HMAC`` and copied per block, which skips the key
schedule each time (:meth:`Prf.keyed`):

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

from cryptography.hazmat.primitives import constant_time, hmac as _hmac

from .errors import IntegrityError, UnsupportedTransform
from .proposals import Proposal, Transform, memoized
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
        self._hash_instance = self._hash()

    @classmethod
    def for_proposal(cls, proposal: Proposal) -> Prf:
        if cls is Prf:
            return _prf_of(proposal)      # by the proposal's value; a Prf holds no state
        return cls(_prf_id(proposal))

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

    def keyed(self, key: bytes) -> _hmac.HMAC:
        """``prf(key, .)`` keyed once: ``.copy()``, ``update(S)``, ``finalize()`` give
        prf(key, S) for any S, without keying HMAC again."""
        return _hmac.HMAC(key, self._hash_instance)

    def plus(self, key: bytes, seed: bytes, length: int) -> bytes:
        """prf+ (K, S), the first ``length`` bytes (§2.13)."""
        return prf_plus(self, key, seed, length)

    def __repr__(self) -> str:
        return f"Prf({self.name})"


def _prf_id(proposal: Proposal) -> int:
    prf = proposal.one(TransformType.PRF)
    if prf is None:
        raise UnsupportedTransform(f"{proposal.charon} has no PRF")
    return prf.id


@memoized
def _prf_of(proposal: Proposal) -> Prf:
    return Prf(_prf_id(proposal))


def prf_plus(prf: Prf, key: bytes, seed: bytes, length: int) -> bytes:
    """prf+ (K, S) = T1 | T2 | ... cut to ``length`` bytes (RFC 7296 §2.13).

    "The prf+ function is not defined beyond 255 times the size of the prf function
    output": asking for more is a ValueError.
    """
    if length < 0 or length > 255 * prf.output_size:
        raise ValueError(f"prf+ of {prf.name} yields 0..{255 * prf.output_size} bytes, "
                         f"not {length}")
    blocks = []
    block = b""
    keyed = prf.keyed(key)        # every block has the same key K
    for counter in _COUNTERS[1:1 - (-length // prf.output_size)]:
        mac = keyed.copy()
        mac.update(block + seed + counter)
        block = mac.finalize()
        blocks.append(block)
    return b"".join(blocks)[:length]


_COUNTERS = [bytes((n,)) for n in range(256)]    # the octet n of prf+'s T_n


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
