"""ESP cipher suites over `cryptography`: what protects the bytes after the ESP header.

Three suites, the ones RFC 8221 §5 asks for and the course needs:

- ``ENCR_AES_GCM_16`` (RFC 4106): combined mode. The key material is the AES key
  followed by a 4-byte salt (§8.1); the nonce is salt || 8-byte explicit IV (§4); the
  additional authenticated data is SPI || sequence number, with the high 32 bits of an
  extended sequence number between them (§5); the 16-byte ICV is GCM's tag.
- ``ENCR_AES_CBC`` (RFC 3602) with ``AUTH_HMAC_SHA2_256_128`` (RFC 4868): a random
  16-byte IV, CBC over the padded payload, then HMAC-SHA-256 truncated to 128 bits over
  ESP header || IV || ciphertext (|| ESN high bits, which are never sent, RFC 4303
  §2.2.1 and §3.3.2.1).
- ``ENCR_NULL`` (RFC 2410) with ``AUTH_HMAC_SHA2_256_128``: no confidentiality, so a
  student can read the payload on the wire; integrity as above.

A suite seals and opens the part of the packet after the 8-byte ESP header; the
:mod:`mip6lab.ipsec.esp` module does the rest of RFC 4303. Transform identifiers are
IANA's (IKEv2 Transform Type 1 and 3), names are strongSwan's proposal keywords and
Wireshark's ``esp_sa`` labels.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ENCR_NULL = 11
ENCR_AES_CBC = 12
ENCR_AES_GCM_16 = 20
AUTH_NONE = 0
AUTH_HMAC_SHA2_256_128 = 12


class IntegrityError(Exception):
    """The ICV did not verify: the packet was forged, corrupted or keyed differently."""


@dataclass(frozen=True)
class SuiteSpec:
    """What a suite needs: names, transform ids and key lengths."""

    name: str                 # strongSwan's keyword, e.g. "aes128gcm16"
    encryption: int
    enc_key_len: int          # bytes, including GCM's 4-byte salt
    integrity: int
    integ_key_len: int
    iv_size: int
    icv_size: int
    alignment: int            # the padded payload + 2 trailer bytes is a multiple of this
    wireshark_encryption: str
    wireshark_integrity: str


SUITES: dict[str, SuiteSpec] = {s.name: s for s in (
    SuiteSpec("aes128gcm16", ENCR_AES_GCM_16, 20, AUTH_NONE, 0, 8, 16, 4,
              "AES-GCM with 16 octet ICV [RFC4106]", "NULL"),
    SuiteSpec("aes256gcm16", ENCR_AES_GCM_16, 36, AUTH_NONE, 0, 8, 16, 4,
              "AES-GCM with 16 octet ICV [RFC4106]", "NULL"),
    SuiteSpec("aes128-sha256", ENCR_AES_CBC, 16, AUTH_HMAC_SHA2_256_128, 32, 16, 16, 16,
              "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"),
    SuiteSpec("aes256-sha256", ENCR_AES_CBC, 32, AUTH_HMAC_SHA2_256_128, 32, 16, 16, 16,
              "AES-CBC [RFC3602]", "HMAC-SHA-256-128 [RFC4868]"),
    SuiteSpec("null-sha256", ENCR_NULL, 0, AUTH_HMAC_SHA2_256_128, 32, 0, 16, 4,
              "NULL", "HMAC-SHA-256-128 [RFC4868]"),
)}


def suite_spec(name: str) -> SuiteSpec:
    """The suite of a strongSwan-style ESP proposal keyword (``aes128gcm16`` ...)."""
    try:
        return SUITES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown ESP suite {name!r}; known: {', '.join(SUITES)}") from None


def check_keys(spec: SuiteSpec, enc_key: bytes, integ_key: bytes = b"") -> None:
    """ValueError unless the keys have the lengths ``spec`` takes (the check of a keyed
    suite, made without keying one)."""
    if len(enc_key) != spec.enc_key_len or len(integ_key) != spec.integ_key_len:
        raise ValueError(f"{spec.name} takes a {spec.enc_key_len}-byte encryption key "
                         f"and a {spec.integ_key_len}-byte integrity key")


class CipherSuite:
    """Keyed instance of a suite. ``seal``/``open`` work on what follows the ESP header.

    With ``__slots__``: every SA of a home agent holds one."""

    __slots__ = ("spec", "enc_key", "integ_key")

    def __init__(self, spec: SuiteSpec, enc_key: bytes, integ_key: bytes = b"") -> None:
        check_keys(spec, enc_key, integ_key)
        self.spec = spec
        self.enc_key = enc_key
        self.integ_key = integ_key

    def seal(self, header: bytes, esn_high: bytes, iv: bytes, plaintext: bytes) -> bytes:
        """IV || ciphertext || ICV for ``plaintext`` (already padded and trailed)."""
        raise NotImplementedError

    def open(self, header: bytes, esn_high: bytes, body: bytes) -> bytes:
        """The padded plaintext of ``body`` (IV || ciphertext || ICV); IntegrityError."""
        raise NotImplementedError


class AesGcmSuite(CipherSuite):
    __slots__ = ("_aead", "_salt")

    def __init__(self, spec: SuiteSpec, enc_key: bytes, integ_key: bytes = b"") -> None:
        super().__init__(spec, enc_key, integ_key)
        self._aead = AESGCM(enc_key[:-4])
        self._salt = enc_key[-4:]

    def primitives(self) -> tuple:
        """(encrypt, decrypt, salt) for a caller that builds nonce and AAD itself: the
        ESP hot path (:func:`mip6lab.ipsec.esp.seal` / ``unseal``)."""
        return self._aead.encrypt, self._aead.decrypt, self._salt

    def keyed(self) -> tuple:
        """(the keyed AESGCM, salt): what :meth:`primitives` gives, for a caller that
        keeps it per SA -- two bound methods held per SA cost more than the lookup."""
        return self._aead, self._salt

    def seal(self, header: bytes, esn_high: bytes, iv: bytes, plaintext: bytes) -> bytes:
        aad = header[:4] + esn_high + header[4:]
        return iv + self._aead.encrypt(self._salt + iv, plaintext, aad)

    def open(self, header: bytes, esn_high: bytes, body: bytes) -> bytes:
        aad = header[:4] + esn_high + header[4:] if esn_high else header
        try:
            return self._aead.decrypt(self._salt + body[:8], body[8:], aad)
        except InvalidTag:
            raise IntegrityError("ICV mismatch (AES-GCM tag)") from None


class _HmacSuite(CipherSuite):
    """Shared by the suites whose integrity is a separate HMAC over the ESP packet."""

    __slots__ = ("_mac",)

    def __init__(self, spec: SuiteSpec, enc_key: bytes, integ_key: bytes = b"") -> None:
        super().__init__(spec, enc_key, integ_key)
        self._mac = hmac.HMAC(integ_key, hashes.SHA256())

    def _icv(self, covered: bytes, esn_high: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(covered)
        mac.update(esn_high)
        return mac.finalize()[:self.spec.icv_size]

    def _verify(self, covered: bytes, esn_high: bytes, icv: bytes) -> None:
        if not constant_time.bytes_eq(self._icv(covered, esn_high), icv):
            raise IntegrityError("ICV mismatch (HMAC-SHA-256-128)")


class AesCbcHmacSuite(_HmacSuite):
    __slots__ = ()

    def seal(self, header: bytes, esn_high: bytes, iv: bytes, plaintext: bytes) -> bytes:
        encryptor = Cipher(algorithms.AES(self.enc_key), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(plaintext) + encryptor.finalize()
        return iv + ciphertext + self._icv(header + iv + ciphertext, esn_high)

    def open(self, header: bytes, esn_high: bytes, body: bytes) -> bytes:
        icv_size = self.spec.icv_size
        covered_body, icv = body[:-icv_size], body[-icv_size:]
        self._verify(header + covered_body, esn_high, icv)
        iv, ciphertext = covered_body[:16], covered_body[16:]
        if len(ciphertext) % 16:
            raise IntegrityError("ciphertext is not a whole number of AES blocks")
        decryptor = Cipher(algorithms.AES(self.enc_key), modes.CBC(iv)).decryptor()
        return decryptor.update(ciphertext) + decryptor.finalize()


class NullHmacSuite(_HmacSuite):
    __slots__ = ()

    def seal(self, header: bytes, esn_high: bytes, iv: bytes, plaintext: bytes) -> bytes:
        return plaintext + self._icv(header + plaintext, esn_high)

    def open(self, header: bytes, esn_high: bytes, body: bytes) -> bytes:
        icv_size = self.spec.icv_size
        plaintext, icv = body[:-icv_size], body[-icv_size:]
        self._verify(header + plaintext, esn_high, icv)
        return plaintext


def make_suite(name: str, enc_key: bytes, integ_key: bytes = b"") -> CipherSuite:
    """A keyed cipher suite for the ESP proposal keyword ``name``."""
    spec = suite_spec(name)
    cls = {ENCR_AES_GCM_16: AesGcmSuite, ENCR_AES_CBC: AesCbcHmacSuite,
           ENCR_NULL: NullHmacSuite}[spec.encryption]
    return cls(spec, enc_key, integ_key)
