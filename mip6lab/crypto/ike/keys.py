"""Keying material: SKEYSEED, the seven SK_* keys and child SA KEYMAT (RFC 7296 §2.13-2.18).

::

    SKEYSEED = prf(Ni | Nr, g^ir)                                    (§2.14)
    {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
             = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)
    rekeyed IKE SA:  SKEYSEED = prf_old(SK_d (old), g^ir (new) | Ni | Nr)   (§2.18)
    child SA:        KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr)           (§2.17)

Lengths: SK_d, SK_pi and SK_pr have the PRF's preferred key size (its output size for
HMAC, §2.13); SK_ai/SK_ar the integrity key size (none with an AEAD cipher, RFC 5282
§7.1); SK_ei/SK_er the cipher key, plus the 4-byte salt for AES-GCM. The HMAC PRFs take
the whole Ni | Nr as the SKEYSEED key (only AES-XCBC/CMAC-PRF would cut it, §2.14), and
with an AEAD cipher the PRF is the proposal's explicit PRF transform.

Child KEYMAT is cut in this order (§2.17): initiator-to-responder encryption key, its
integrity key, then responder-to-initiator encryption key, its integrity key. The lengths
come from the ESP suite (:func:`mip6lab.crypto.esp_suites.suite_spec`), so the keys fit
the ESP code that will use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..esp_suites import SUITES, suite_spec
from .errors import UnsupportedTransform
from .prf import Integrity, Prf
from .proposals import Proposal, memoized
from .sk import SkCipher
from .transforms import ENCRYPTION, INTEGRITY, EncrAlgorithm, Protocol, TransformType


@dataclass(frozen=True)
class IkeKeyLengths:
    """Bytes of each SK_* key for a negotiated IKE proposal."""

    sk_d: int
    sk_a: int
    sk_e: int
    sk_p: int

    @property
    def total(self) -> int:
        return self.sk_d + 2 * (self.sk_a + self.sk_e + self.sk_p)


@memoized        # by the proposal's value: a few configured ones in a run
def ike_key_lengths(proposal: Proposal) -> IkeKeyLengths:
    """SK_* lengths for a negotiated IKE proposal (§2.13, §2.14; RFC 5282 §7.1)."""
    prf = Prf.for_proposal(proposal)
    encr = proposal.one(TransformType.ENCR)
    if encr is None or not isinstance(encr.algorithm, EncrAlgorithm):
        raise UnsupportedTransform(f"{proposal.charon}: no supported encryption transform")
    algorithm = encr.algorithm
    sk_e = algorithm.key_material_size(encr.key_length or 0)
    if algorithm.aead:
        sk_a = 0
    else:
        integ = proposal.one(TransformType.INTEG)
        if integ is None:
            raise UnsupportedTransform(f"{proposal.charon}: a classic cipher needs integrity")
        sk_a = Integrity(integ.id).key_size
    return IkeKeyLengths(prf.key_size, sk_a, sk_e, prf.key_size)


@dataclass(frozen=True, slots=True)
class IkeKeys:
    """Everything derived for one IKE SA. ``*_i`` keys protect what the original initiator
    sends; ``*_r`` the other direction (§2.14)."""

    proposal: Proposal
    skeyseed: bytes
    sk_d: bytes
    sk_ai: bytes
    sk_ar: bytes
    sk_ei: bytes
    sk_er: bytes
    sk_pi: bytes
    sk_pr: bytes
    # made from the keys when first asked for (slots, not a dict per IKE SA: a home agent
    # holds thousands); not part of the value
    _prf: Prf | None = field(default=None, init=False, repr=False, compare=False)
    _sk_ciphers: tuple[SkCipher, SkCipher] | None = field(default=None, init=False,
                                                          repr=False, compare=False)

    @property
    def prf(self) -> Prf:
        prf = self._prf
        if prf is None:
            prf = Prf.for_proposal(self.proposal)
            object.__setattr__(self, "_prf", prf)
        return prf

    @property
    def _ciphers(self) -> tuple[SkCipher, SkCipher]:
        # keyed once per IKE SA (an AES key schedule per message otherwise); stateless, so
        # one object serves every message of its direction
        ciphers = self._sk_ciphers
        if ciphers is None:
            ciphers = (SkCipher.for_proposal(self.proposal, self.sk_er, self.sk_ar),
                       SkCipher.for_proposal(self.proposal, self.sk_ei, self.sk_ai))
            object.__setattr__(self, "_sk_ciphers", ciphers)
        return ciphers

    def cipher(self, from_initiator: bool) -> SkCipher:
        """The SK cipher for messages sent by the original initiator (True) or responder."""
        return self._ciphers[bool(from_initiator)]

    def ciphers(self, initiator: bool) -> tuple[SkCipher, SkCipher]:
        """(outbound, inbound) SK ciphers for the side that is (or is not) the initiator."""
        return self.cipher(initiator), self.cipher(not initiator)


def compute_skeyseed(prf: Prf, nonce_i: bytes, nonce_r: bytes, shared_secret: bytes) -> bytes:
    """SKEYSEED = prf(Ni | Nr, g^ir) (§2.14). ``shared_secret`` is the fixed-length g^ir
    that :meth:`KeyExchange.shared_secret` returns."""
    return prf(nonce_i + nonce_r, shared_secret)


def compute_rekey_skeyseed(old_prf: Prf, old_sk_d: bytes, shared_secret: bytes,
                           nonce_i: bytes, nonce_r: bytes) -> bytes:
    """SKEYSEED of an IKE SA made by rekeying (§2.18): prf(SK_d (old), g^ir (new) | Ni | Nr),
    with the *old* IKE SA's PRF ("the rekeying exchange belongs to the old IKE SA")."""
    return old_prf(old_sk_d, shared_secret + nonce_i + nonce_r)


def expand_ike_keys(proposal: Proposal, skeyseed: bytes, nonce_i: bytes, nonce_r: bytes,
                    spi_i: bytes, spi_r: bytes) -> IkeKeys:
    """The seven SK_* from SKEYSEED: prf+(SKEYSEED, Ni | Nr | SPIi | SPIr), cut in order."""
    if len(spi_i) != 8 or len(spi_r) != 8:
        raise ValueError("IKE SPIs are 8 bytes each")
    total, cuts = _ike_key_cuts(proposal)
    stream = Prf.for_proposal(proposal).plus(skeyseed, nonce_i + nonce_r + spi_i + spi_r,
                                            total)
    return IkeKeys(proposal, skeyseed, *[stream[start:end] for start, end in cuts])


@memoized
def _ike_key_cuts(proposal: Proposal) -> tuple[int, tuple[tuple[int, int], ...]]:
    """(bytes of prf+, where SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr are cut)."""
    lengths = ike_key_lengths(proposal)
    return lengths.total, _cuts((lengths.sk_d, lengths.sk_a, lengths.sk_a, lengths.sk_e,
                                 lengths.sk_e, lengths.sk_p, lengths.sk_p))


def _cuts(sizes: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """(start, end) of consecutive pieces of these sizes."""
    cuts, offset = [], 0
    for size in sizes:
        cuts.append((offset, offset + size))
        offset += size
    return tuple(cuts)


def derive_ike_keys(proposal: Proposal, nonce_i: bytes, nonce_r: bytes, shared_secret: bytes,
                    spi_i: bytes, spi_r: bytes) -> IkeKeys:
    """Keys of an IKE SA made by IKE_SA_INIT (§2.14)."""
    skeyseed = compute_skeyseed(Prf.for_proposal(proposal), nonce_i, nonce_r, shared_secret)
    return expand_ike_keys(proposal, skeyseed, nonce_i, nonce_r, spi_i, spi_r)


def derive_rekeyed_ike_keys(old: IkeKeys, proposal: Proposal, nonce_i: bytes, nonce_r: bytes,
                            shared_secret: bytes, spi_i: bytes, spi_r: bytes) -> IkeKeys:
    """Keys of the IKE SA that replaces ``old`` (§2.18): SKEYSEED from the old SA's SK_d and
    PRF, then SK_* with the *new* proposal's PRF, the CREATE_CHILD_SA nonces and the new
    SA's SPIs. (Ni and Nr are those of the rekey exchange's initiator and responder.)"""
    skeyseed = compute_rekey_skeyseed(old.prf, old.sk_d, shared_secret, nonce_i, nonce_r)
    return expand_ike_keys(proposal, skeyseed, nonce_i, nonce_r, spi_i, spi_r)


# ============================================================================ child SAs
@memoized
def esp_suite_name(proposal: Proposal) -> str:
    """strongSwan's keyword of a negotiated ESP proposal's cipher suite (no KE, no ESN):
    ``aes256gcm16``, ``aes256-sha256`` -- the names :mod:`mip6lab.crypto.esp_suites` uses."""
    parts = [t.keyword for t in (proposal.one(TransformType.ENCR),
                                 proposal.one(TransformType.INTEG)) if t is not None]
    return "-".join(parts)


@memoized
def child_key_lengths(proposal: Proposal) -> tuple[int, int]:
    """(encryption key bytes incl. salt, integrity key bytes) per direction for a
    negotiated ESP proposal: from :func:`esp_suites.suite_spec` when the ESP code has the
    suite, else from the transform tables (the same rules)."""
    if proposal.protocol != Protocol.ESP:
        raise UnsupportedTransform(f"{proposal.charon}: child SA keys are for ESP")
    name = esp_suite_name(proposal)
    if name in SUITES:
        spec = suite_spec(name)
        return spec.enc_key_len, spec.integ_key_len
    encr = proposal.one(TransformType.ENCR)
    integ = proposal.one(TransformType.INTEG)
    if encr is None or not isinstance(encr.algorithm, EncrAlgorithm):
        raise UnsupportedTransform(f"{proposal.charon}: no supported encryption transform")
    if integ is not None and integ.id not in INTEGRITY:
        raise UnsupportedTransform(f"{proposal.charon}: integrity {integ.name}")
    integ_len = INTEGRITY[integ.id].key_size if integ is not None else 0
    return ENCRYPTION[encr.id].key_material_size(encr.key_length or 0), integ_len


@dataclass(frozen=True)
class ChildKeys:
    """ESP keys of one child SA. ``*_i``: the SA carrying data from the initiator of the
    exchange that created it to its responder; ``*_r``: the reverse (§2.17)."""

    proposal: Proposal
    encr_i: bytes
    integ_i: bytes
    encr_r: bytes
    integ_r: bytes

    def outbound(self, initiator: bool) -> tuple[bytes, bytes]:
        """(encryption key, integrity key) of our outbound SA."""
        return (self.encr_i, self.integ_i) if initiator else (self.encr_r, self.integ_r)

    def inbound(self, initiator: bool) -> tuple[bytes, bytes]:
        return self.outbound(not initiator)


def derive_child_keys(prf: Prf, sk_d: bytes, proposal: Proposal, nonce_i: bytes,
                      nonce_r: bytes, shared_secret: bytes | None = None) -> ChildKeys:
    """KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), cut as §2.17 says.

    ``prf`` and ``sk_d`` belong to the IKE SA; the nonces are IKE_SA_INIT's for the child
    SA of IKE_AUTH, the CREATE_CHILD_SA exchange's otherwise; ``shared_secret`` is the
    g^ir of a CREATE_CHILD_SA with a KE payload (PFS).
    """
    total, cuts = _child_key_cuts(proposal)
    seed = (shared_secret or b"") + nonce_i + nonce_r
    keymat = prf.plus(sk_d, seed, total)
    return ChildKeys(proposal, *[keymat[start:end] for start, end in cuts])


@memoized
def _child_key_cuts(proposal: Proposal) -> tuple[int, tuple[tuple[int, int], ...]]:
    """(bytes of KEYMAT, where the four keys are cut, in §2.17's order)."""
    encr_len, integ_len = child_key_lengths(proposal)
    return 2 * (encr_len + integ_len), _cuts((encr_len, integ_len, encr_len, integ_len))
