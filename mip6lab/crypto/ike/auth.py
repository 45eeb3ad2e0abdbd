"""The AUTH payload (RFC 7296 §2.15): what each peer signs, or MACs with a pre-shared key.

The octets each side authenticates::

    InitiatorSignedOctets = RealMessage1 | NonceRData | prf(SK_pi, RestOfInitIDPayload)
    ResponderSignedOctets = RealMessage2 | NonceIData | prf(SK_pr, RestOfRespIDPayload)

``RealMessage1/2`` is the whole IKE_SA_INIT request/response as sent (from the first
octet of SPIi, no non-ESP marker), the nonce is the *peer's* (just its data), and
``RestOf...IDPayload`` is the ID payload after its 4-byte generic header: ID Type, three
reserved octets, identification data (what charon's log calls ``IDx'``).

Pre-shared key (method 2)::

    AUTH = prf( prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets> )

Signatures over `cryptography`: RSA (method 1, RSASSA-PKCS1-v1_5 with SHA-1, the hash
RFC 7296 implies), ECDSA (methods 9/10/11 = P-256/SHA-256, P-384/SHA-384, P-521/SHA-512,
signature r | s, RFC 4754 §7), and the Digital Signature method 14 of RFC 7427: the
Authentication Data is a length octet, an ASN.1 AlgorithmIdentifier (the DER blobs of
RFC 7427 Appendix A; for RSASSA-PSS the strict DER form, see :data:`SIGNATURE_SCHEMES`)
and the signature (ECDSA there in DER, as in X.509).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from enum import IntEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import constant_time, hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                             encode_dss_signature)

from .errors import AuthenticationFailed
from .prf import Prf

KEY_PAD = b"Key Pad for IKEv2"  # 17 ASCII characters, no NUL (§2.15)


class AuthMethod(IntEnum):
    """Auth Method of the AUTH payload (RFC 7296 §3.8, RFC 4754, RFC 7427)."""

    RSA_SIGNATURE = 1
    SHARED_KEY_MIC = 2
    DSS_SIGNATURE = 3
    ECDSA_SHA256_P256 = 9
    ECDSA_SHA384_P384 = 10
    ECDSA_SHA512_P521 = 11
    DIGITAL_SIGNATURE = 14


# ============================================================================ signed octets
def maced_id(prf: Prf, sk_p: bytes, id_payload_body: bytes) -> bytes:
    """MACedIDForI/R = prf(SK_pi/SK_pr, RestOfIDPayload)."""
    return prf(sk_p, id_payload_body)


def signed_octets(message: bytes, peer_nonce: bytes, prf: Prf, sk_p: bytes,
                  id_payload_body: bytes) -> bytes:
    """The octets a side authenticates: its own IKE_SA_INIT message | the peer's nonce data
    | prf(its SK_p, its ID payload body). The initiator passes (request, Nr, SK_pi, IDi'),
    the responder (response, Ni, SK_pr, IDr')."""
    return bytes(message) + bytes(peer_nonce) + maced_id(prf, sk_p, id_payload_body)


def psk_auth(prf: Prf, shared_secret: bytes, octets: bytes) -> bytes:
    """AUTH data for a pre-shared key: prf(prf(Shared Secret, "Key Pad for IKEv2"), octets).
    ``shared_secret`` is used as given (no NUL added; hex decoding is the caller's)."""
    mac = _padded_key(prf, bytes(shared_secret)).copy()
    mac.update(octets)
    return mac.finalize()


@lru_cache(maxsize=64)
def _padded_key(prf: Prf, shared_secret: bytes):
    """prf(Shared Secret, "Key Pad for IKEv2") (§2.15), as the PRF keyed with it (never
    finalized: callers copy it): the same for every AUTH made or checked with one key and
    PRF -- twice per IKE SA on each side -- so computed and keyed once. (The few keys of a
    configuration; it holds nothing the configuration does not.)"""
    return prf.keyed(prf(shared_secret, KEY_PAD))


def verify_psk_auth(prf: Prf, shared_secret: bytes, octets: bytes, auth_data: bytes) -> None:
    """:class:`AuthenticationFailed` unless ``auth_data`` is the PSK AUTH of ``octets``."""
    if not constant_time.bytes_eq(psk_auth(prf, shared_secret, octets), bytes(auth_data)):
        raise AuthenticationFailed("AUTH (shared key MIC) does not verify: wrong pre-shared "
                                   "key or altered IKE_SA_INIT/ID")


# ============================================================================ signatures
@dataclass(frozen=True)
class SignatureScheme:
    """An RFC 7427 signature scheme: its AlgorithmIdentifier DER and how to compute it."""

    name: str
    algorithm_identifier: bytes   # DER, RFC 7427 Appendix A: what we send
    key_type: str                 # "rsa" or "ecdsa"
    hash: type[hashes.HashAlgorithm]
    pss: bool = False
    also_accepted: tuple[bytes, ...] = ()  # other encodings a peer may send

    def matches(self, blob: bytes) -> bool:
        return blob == self.algorithm_identifier or blob in self.also_accepted

    @property
    def auth_prefix(self) -> bytes:
        """ASN.1 Length octet | AlgorithmIdentifier: the start of the Authentication Data."""
        return bytes((len(self.algorithm_identifier),)) + self.algorithm_identifier


SIGNATURE_SCHEMES: dict[str, SignatureScheme] = {s.name: s for s in (
    SignatureScheme("sha256WithRSAEncryption", bytes.fromhex(
        "300d06092a864886f70d01010b0500"), "rsa", hashes.SHA256),
    SignatureScheme("sha384WithRSAEncryption", bytes.fromhex(
        "300d06092a864886f70d01010c0500"), "rsa", hashes.SHA384),
    SignatureScheme("sha512WithRSAEncryption", bytes.fromhex(
        "300d06092a864886f70d01010d0500"), "rsa", hashes.SHA512),
    SignatureScheme("ecdsa-with-SHA256", bytes.fromhex("300a06082a8648ce3d040302"),
                    "ecdsa", hashes.SHA256),
    SignatureScheme("ecdsa-with-SHA384", bytes.fromhex("300a06082a8648ce3d040303"),
                    "ecdsa", hashes.SHA384),
    SignatureScheme("ecdsa-with-SHA512", bytes.fromhex("300a06082a8648ce3d040304"),
                    "ecdsa", hashes.SHA512),
    # RSASSA-PSS, SHA-256, MGF1-SHA-256, salt 32 (RFC 4055). We send the strict DER form,
    # which omits trailerField = 1 (a DEFAULT value), as strongSwan and X.509 encoders do;
    # RFC 7427 A.4.3 lists the form with "a3 03 02 01 01", accepted as well.
    SignatureScheme("RSASSA-PSS-SHA256", bytes.fromhex(
        "304106092a864886f70d01010a3034a00f300d0609608648016503040201"
        "0500a11c301a06092a864886f70d010108300d06096086480165030402010500"
        "a203020120"), "rsa", hashes.SHA256, pss=True, also_accepted=(bytes.fromhex(
            "304606092a864886f70d01010a3039a00f300d0609608648016503040201"
            "0500a11c301a06092a864886f70d010108300d06096086480165030402010500"
            "a203020120a303020101"),)),
)}

# RFC 4754 §7: the hash and curve are fixed by the method.
_ECDSA_METHODS = {AuthMethod.ECDSA_SHA256_P256: (hashes.SHA256, "secp256r1"),
                  AuthMethod.ECDSA_SHA384_P384: (hashes.SHA384, "secp384r1"),
                  AuthMethod.ECDSA_SHA512_P521: (hashes.SHA512, "secp521r1")}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


def default_scheme(key: PrivateKey | PublicKey) -> SignatureScheme:
    """sha256WithRSAEncryption for RSA; ecdsa-with-SHA256/384/512 by curve size."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return SIGNATURE_SCHEMES["sha256WithRSAEncryption"]
    size = key.curve.key_size
    bits = 256 if size <= 256 else 384 if size <= 384 else 512
    return SIGNATURE_SCHEMES[f"ecdsa-with-SHA{bits}"]


def _pss(hash_: type[hashes.HashAlgorithm]) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hash_()), salt_length=hash_.digest_size)


def _sign_raw(key: PrivateKey, octets: bytes, scheme: SignatureScheme) -> bytes:
    if scheme.key_type == "rsa":
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError(f"{scheme.name} needs an RSA key")
        pad = _pss(scheme.hash) if scheme.pss else padding.PKCS1v15()
        return key.sign(octets, pad, scheme.hash())
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{scheme.name} needs an EC key")
    return key.sign(octets, ec.ECDSA(scheme.hash()))  # DER Ecdsa-Sig-Value


def sign_auth(key: PrivateKey, octets: bytes, method: AuthMethod = AuthMethod.DIGITAL_SIGNATURE,
              scheme: SignatureScheme | str | None = None) -> bytes:
    """The Authentication Data of a signature AUTH payload over ``octets``.

    Method 14 (default): ``scheme`` (a name of :data:`SIGNATURE_SCHEMES`, default by key
    type) decides the algorithm. Method 1: RSA PKCS#1 v1.5 with SHA-1. Methods 9-11:
    ECDSA with the method's hash, signature r | s.
    """
    method = AuthMethod(method)
    if method == AuthMethod.DIGITAL_SIGNATURE:
        if isinstance(scheme, str):
            scheme = SIGNATURE_SCHEMES[scheme]
        scheme = scheme or default_scheme(key)
        return scheme.auth_prefix + _sign_raw(key, octets, scheme)
    if method == AuthMethod.RSA_SIGNATURE:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise TypeError("method 1 needs an RSA key")
        return key.sign(octets, padding.PKCS1v15(), hashes.SHA1())
    if method in _ECDSA_METHODS:
        hash_, curve = _ECDSA_METHODS[method]
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != curve:
            raise TypeError(f"method {method.value} needs a {curve} key")
        r, s = decode_dss_signature(key.sign(octets, ec.ECDSA(hash_())))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    raise ValueError(f"{method.name} is not a signature method we sign with")


def verify_auth(key: PublicKey, octets: bytes, method: AuthMethod, auth_data: bytes) -> None:
    """:class:`AuthenticationFailed` unless ``auth_data`` is a valid signature AUTH of
    ``octets`` by ``key`` with ``method`` (1, 9, 10, 11 or 14)."""
    method = AuthMethod(method)
    auth_data = bytes(auth_data)
    try:
        if method == AuthMethod.DIGITAL_SIGNATURE:
            if not auth_data:
                raise AuthenticationFailed("empty Digital Signature AUTH")
            blob = auth_data[1:1 + auth_data[0]]
            scheme = next((s for s in SIGNATURE_SCHEMES.values() if s.matches(blob)), None)
            if scheme is None:
                raise AuthenticationFailed(f"unknown AlgorithmIdentifier {blob.hex()}")
            signature = auth_data[1 + auth_data[0]:]
            if scheme.key_type == "rsa" and isinstance(key, rsa.RSAPublicKey):
                pad = _pss(scheme.hash) if scheme.pss else padding.PKCS1v15()
                key.verify(signature, octets, pad, scheme.hash())
            elif scheme.key_type == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, octets, ec.ECDSA(scheme.hash()))
            else:
                raise AuthenticationFailed(f"{scheme.name} does not fit the peer's key")
        elif method == AuthMethod.RSA_SIGNATURE and isinstance(key, rsa.RSAPublicKey):
            key.verify(auth_data, octets, padding.PKCS1v15(), hashes.SHA1())
        elif method in _ECDSA_METHODS and isinstance(key, ec.EllipticCurvePublicKey):
            hash_, curve = _ECDSA_METHODS[method]
            size = (key.curve.key_size + 7) // 8
            if key.curve.name != curve or len(auth_data) != 2 * size:
                raise AuthenticationFailed(f"method {method.value}: wrong curve or length")
            r = int.from_bytes(auth_data[:size], "big")
            s = int.from_bytes(auth_data[size:], "big")
            key.verify(encode_dss_signature(r, s), octets, ec.ECDSA(hash_()))
        else:
            raise AuthenticationFailed(f"method {method.name} does not fit the peer's key")
    except InvalidSignature:
        raise AuthenticationFailed(f"signature ({method.name}) does not verify") from None
