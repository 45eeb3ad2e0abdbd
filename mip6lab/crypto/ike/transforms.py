"""IKEv2 transforms: IANA numbers, what each algorithm needs, and the names people use.

Every transform has three spellings, and a student meets all of them:

- IANA's registry name and number ("IKEv2 Transform Type 1..5" registries, RFC 7296 §3.3.2):
  ``ENCR_AES_GCM_16`` = 20, what goes on the wire;
- strongSwan's proposal keyword (swanctl.conf ``proposals``): ``aes256gcm16``;
- charon's log name (``selected proposal: IKE:AES_GCM_16_256/...``): ``AES_GCM_16`` plus
  ``_256`` for the key size.

Supported here (RFC 8247 §2.1-2.4 MUST/SHOULD for IKEv2, RFC 8221 for ESP):

====================  ====  =====================  =========================
type 1 ENCR           id    keyword                notes
====================  ====  =====================  =========================
ENCR_AES_CBC          12    aes128/aes192/aes256   Key Length attribute; block 16
ENCR_AES_GCM_16       20    aes128gcm16 ...        AEAD, 8-byte IV, 4-byte salt, ICV 16
type 2 PRF
PRF_HMAC_SHA2_256     5     prfsha256              key = output = 32 bytes
PRF_HMAC_SHA2_384     6     prfsha384              48 bytes
PRF_HMAC_SHA2_512     7     prfsha512              64 bytes
type 3 INTEG
AUTH_HMAC_SHA2_256_128  12  sha256                 key 32, ICV 16 (RFC 4868)
AUTH_HMAC_SHA2_384_192  13  sha384                 key 48, ICV 24
AUTH_HMAC_SHA2_512_256  14  sha512                 key 64, ICV 32
type 4 KE (D-H group)
MODP 2048-bit         14    modp2048               RFC 3526; public value 256 bytes
256-bit random ECP    19    ecp256                 RFC 5903; x || y, 64 bytes
384-bit random ECP    20    ecp384                 RFC 5903; x || y, 96 bytes
Curve25519            31    curve25519 (x25519)    RFC 8031; 32 bytes
type 5 ESN
No ESN                0     noesn
ESN                   1     esn
====================  ====  =====================  =========================

Transforms with other numbers can still be *represented* (a peer may offer anything);
they simply never match our configured proposals.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives import hashes


class Protocol(IntEnum):
    """Security Protocol Identifier of a Proposal substructure (RFC 7296 §3.3.1)."""

    IKE = 1
    AH = 2
    ESP = 3


class TransformType(IntEnum):
    """Transform Type (RFC 7296 §3.3.2). Type 4 is "Diffie-Hellman Group", renamed
    "Key Exchange Method" by RFC 9370; we say KE."""

    ENCR = 1
    PRF = 2
    INTEG = 3
    KE = 4
    ESN = 5


# --- Transform IDs ------------------------------------------------------------- type 1
ENCR_AES_CBC = 12
ENCR_AES_GCM_16 = 20
# --- type 2
PRF_HMAC_SHA2_256 = 5
PRF_HMAC_SHA2_384 = 6
PRF_HMAC_SHA2_512 = 7
# --- type 3
AUTH_NONE = 0
AUTH_HMAC_SHA2_256_128 = 12
AUTH_HMAC_SHA2_384_192 = 13
AUTH_HMAC_SHA2_512_256 = 14
# --- type 4
KE_NONE = 0
MODP_2048 = 14
ECP_256 = 19
ECP_384 = 20
CURVE25519 = 31
# --- type 5
NO_ESN = 0
ESN = 1

# Transform attribute "Key Length" (RFC 7296 §3.3.5): TV format, type 14, value in bits.
ATTR_KEY_LENGTH = 14


@dataclass(frozen=True)
class EncrAlgorithm:
    """An encryption transform family; the key size comes from the Key Length attribute."""

    id: int
    iana: str
    charon: str              # charon's name without the key size ("AES_GCM_16")
    keyword_format: str      # strongSwan keyword with {bits} ("aes{bits}gcm16")
    key_sizes: tuple[int, ...]
    block_size: int          # the Encrypted payload aligns to this (RFC 7296 §3.14)
    iv_size: int
    aead: bool
    salt_size: int = 0       # RFC 5282 §7.1: SK_e = AES key || salt
    icv_size: int = 0        # for AEAD: the tag, part of the ciphertext

    def keyword(self, bits: int) -> str:
        return self.keyword_format.format(bits=bits)

    def key_material_size(self, bits: int) -> int:
        """Bytes of SK_e / ESP key: the cipher key plus any salt."""
        return bits // 8 + self.salt_size


@dataclass(frozen=True)
class HashAlgorithm:
    """A PRF or an integrity transform: both HMAC over a SHA-2 hash here."""

    id: int
    iana: str
    charon: str
    keyword: str
    hash: type[hashes.HashAlgorithm]
    key_size: int            # bytes; RFC 7296 §2.13: HMAC keys = hash output length
    output_size: int         # PRF output, or the truncated ICV length for integrity


@dataclass(frozen=True)
class KeAlgorithm:
    """A key exchange method (D-H group)."""

    id: int
    iana: str
    charon: str
    keyword: str
    public_size: int         # bytes of the KE payload's Key Exchange Data
    secret_size: int         # bytes of g^ir


ENCRYPTION: dict[int, EncrAlgorithm] = {a.id: a for a in (
    EncrAlgorithm(ENCR_AES_CBC, "ENCR_AES_CBC", "AES_CBC", "aes{bits}", (128, 192, 256),
                  block_size=16, iv_size=16, aead=False),
    EncrAlgorithm(ENCR_AES_GCM_16, "ENCR_AES_GCM_16", "AES_GCM_16", "aes{bits}gcm16",
                  (128, 192, 256), block_size=1, iv_size=8, aead=True, salt_size=4,
                  icv_size=16),
)}

PRFS: dict[int, HashAlgorithm] = {a.id: a for a in (
    HashAlgorithm(PRF_HMAC_SHA2_256, "PRF_HMAC_SHA2_256", "PRF_HMAC_SHA2_256", "prfsha256",
                  hashes.SHA256, 32, 32),
    HashAlgorithm(PRF_HMAC_SHA2_384, "PRF_HMAC_SHA2_384", "PRF_HMAC_SHA2_384", "prfsha384",
                  hashes.SHA384, 48, 48),
    HashAlgorithm(PRF_HMAC_SHA2_512, "PRF_HMAC_SHA2_512", "PRF_HMAC_SHA2_512", "prfsha512",
                  hashes.SHA512, 64, 64),
)}

INTEGRITY: dict[int, HashAlgorithm] = {a.id: a for a in (
    HashAlgorithm(AUTH_HMAC_SHA2_256_128, "AUTH_HMAC_SHA2_256_128", "HMAC_SHA2_256_128",
                  "sha256", hashes.SHA256, 32, 16),
    HashAlgorithm(AUTH_HMAC_SHA2_384_192, "AUTH_HMAC_SHA2_384_192", "HMAC_SHA2_384_192",
                  "sha384", hashes.SHA384, 48, 24),
    HashAlgorithm(AUTH_HMAC_SHA2_512_256, "AUTH_HMAC_SHA2_512_256", "HMAC_SHA2_512_256",
                  "sha512", hashes.SHA512, 64, 32),
)}

KEY_EXCHANGE: dict[int, KeAlgorithm] = {a.id: a for a in (
    KeAlgorithm(MODP_2048, "2048-bit MODP Group", "MODP_2048", "modp2048", 256, 256),
    KeAlgorithm(ECP_256, "256-bit random ECP group", "ECP_256", "ecp256", 64, 32),
    KeAlgorithm(ECP_384, "384-bit random ECP group", "ECP_384", "ecp384", 96, 48),
    KeAlgorithm(CURVE25519, "Curve25519", "CURVE_25519", "curve25519", 32, 32),
)}

ESN_NAMES = {NO_ESN: ("No Extended Sequence Numbers", "NO_EXT_SEQ", "noesn"),
             ESN: ("Extended Sequence Numbers", "EXT_SEQ", "esn")}

# strongSwan's mapping of an integrity algorithm to the PRF of the same hash, used when an
# IKE proposal names no PRF (libstrongswan/crypto/proposal/proposal.c, integ_prf_map).
INTEG_TO_PRF = {AUTH_HMAC_SHA2_256_128: PRF_HMAC_SHA2_256,
                AUTH_HMAC_SHA2_384_192: PRF_HMAC_SHA2_384,
                AUTH_HMAC_SHA2_512_256: PRF_HMAC_SHA2_512}


def transform_name(type_: int, id_: int, key_length: int | None = None) -> str:
    """IANA's name of a transform (``ENCR_AES_GCM_16 (256)``); ``UNKNOWN_<type>_<id>``."""
    table = {TransformType.ENCR: ENCRYPTION, TransformType.PRF: PRFS,
             TransformType.INTEG: INTEGRITY, TransformType.KE: KEY_EXCHANGE}.get(type_)
    if type_ == TransformType.INTEG and id_ == AUTH_NONE:
        name = "NONE"
    elif type_ == TransformType.KE and id_ == KE_NONE:
        name = "NONE"
    elif type_ == TransformType.ESN and id_ in ESN_NAMES:
        name = ESN_NAMES[id_][0]
    elif table is not None and id_ in table:
        name = table[id_].iana
    else:
        name = f"UNKNOWN_{int(type_)}_{id_}"
    return f"{name} ({key_length})" if key_length else name
