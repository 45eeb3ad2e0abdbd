"""The Encrypted (SK) payload: how IKE_AUTH and everything after it is protected.

Layout (RFC 7296 §3.14, RFC 5282 §3)::

    IKE header | [unencrypted payloads] | SK header | IV | ciphertext | [ICV]
    '---------------- AAD (RFC 5282 §5.1) ----------'

The plaintext is the inner payload chain, then Padding, then a Pad Length octet.

- **AES-CBC + HMAC** (ENCR_AES_CBC with AUTH_HMAC_SHA2_*): a random 16-byte IV; the
  padded plaintext is a whole number of blocks; the ICV is the truncated HMAC (key SK_a)
  over *the whole message* from the first octet of the IKE header through the last octet
  of the ciphertext (§3.14) -- i.e. AAD | IV | ciphertext.
- **AES-GCM-16** (RFC 5282): SK_e is the AES key followed by a 4-byte salt (§7.1); the
  nonce is salt | 8-byte IV (§4); the AAD is the IKE header through the SK payload's
  4-byte header (§5.1); the 16-byte tag is the ICV, the last bytes of the ciphertext.
  There is no block alignment (§3), so no padding is added (Pad Length 0).

:meth:`SkCipher.encrypt` / :meth:`SkCipher.decrypt` work on the SK payload's body (what
follows its 4-byte header); :func:`encrypt_message` and :func:`decrypt_message` do the
whole message (IKE header lengths, the SK header, the AAD). Messages on UDP 4500 carry
a 4-byte non-ESP marker before the IKE header: strip it first, it is not part of the AAD.

A bad ICV raises :class:`IntegrityError` (drop silently, RFC 7296 §2.21.2). Only after the
ICV has verified is the padding looked at, so a forger learns nothing from it.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import IntegrityError, MalformedEncryptedPayload, UnsupportedTransform
from .prf import Integrity
from .proposals import Proposal, memoized
from .transforms import ENCR_AES_CBC, ENCR_AES_GCM_16, ENCRYPTION, TransformType

IKE_HEADER_SIZE = 28
PAYLOAD_HEADER_SIZE = 4
PAYLOAD_NONE = 0
PAYLOAD_SK = 46
PAYLOAD_SKF = 53  # Encrypted Fragment (RFC 7383): not handled here


class SkCipher:
    """Protection of the Encrypted payload in one direction (SK_ei/SK_ai for messages from
    the original initiator, SK_er/SK_ar for the other direction)."""

    aead: bool = False
    iv_size: int = 0
    block_size: int = 1
    icv_size: int = 0

    @classmethod
    def for_proposal(cls, proposal: Proposal, sk_e: bytes, sk_a: bytes = b"") -> SkCipher:
        """The cipher of a negotiated IKE proposal, keyed with SK_e (and SK_a)."""
        encr_id, key_bits, integ_id = _cipher_choice(proposal)
        if encr_id == ENCR_AES_GCM_16:
            return AesGcmSk(sk_e, key_bits)
        return AesCbcSk(sk_e, Integrity(integ_id), sk_a, key_bits)

    # -- sizes ---------------------------------------------------------------------------
    def padded_size(self, payloads_length: int) -> int:
        """Payloads + Padding + Pad Length, aligned to the block size."""
        return -(-(payloads_length + 1) // self.block_size) * self.block_size

    def encrypted_size(self, payloads_length: int, padding_length: int | None = None) -> int:
        """Size of the SK payload's body (IV | ciphertext | ICV) for these payloads."""
        padded = (self.padded_size(payloads_length) if padding_length is None
                  else payloads_length + padding_length + 1)
        return self.iv_size + padded + self.icv_size

    def pad(self, payloads: bytes, padding: bytes | None = None) -> bytes:
        """Payloads | Padding | Pad Length. The Padding "MAY contain any value chosen by
        the sender" (§3.14): by default the fewest zero bytes that align the plaintext;
        a caller may give its own (random, or longer to hide the length), up to 255
        bytes, that keeps the alignment."""
        if padding is None:
            padding = bytes(self.padded_size(len(payloads)) - len(payloads) - 1)
        if len(padding) > 255 or (len(payloads) + len(padding) + 1) % self.block_size:
            raise ValueError(f"{len(padding)} bytes of padding do not align "
                             f"{len(payloads)} bytes of payloads to {self.block_size}")
        return payloads + bytes(padding) + bytes((len(padding),))

    @staticmethod
    def unpad(plaintext: bytes) -> bytes:
        if not plaintext:
            raise MalformedEncryptedPayload("SK payload: empty plaintext, no Pad Length")
        pad_length = plaintext[-1]
        if pad_length + 1 > len(plaintext):
            raise MalformedEncryptedPayload(
                f"SK payload: Pad Length {pad_length} exceeds the plaintext "
                f"({len(plaintext)} bytes)")
        return plaintext[:len(plaintext) - pad_length - 1]

    # -- the two operations --------------------------------------------------------------
    def encrypt(self, payloads: bytes, aad: bytes, iv: bytes,
                padding: bytes | None = None) -> bytes:
        """IV | ciphertext | ICV of the padded ``payloads``. ``aad`` is the message from
        the IKE header through the SK payload header; ``iv`` comes from the caller's
        (seeded) random source and has :attr:`iv_size` bytes; ``padding`` see :meth:`pad`."""
        raise NotImplementedError

    def decrypt(self, body: bytes, aad: bytes) -> bytes:
        """The inner payload chain of an SK payload body (padding removed).
        :class:`IntegrityError` if the ICV does not verify."""
        raise NotImplementedError

    def _check_iv(self, iv: bytes) -> None:
        if len(iv) != self.iv_size:
            raise ValueError(f"{type(self).__name__} needs a {self.iv_size}-byte IV, "
                             f"not {len(iv)}")


@memoized       # by the proposal's value: a few configured ones in a run
def _cipher_choice(proposal: Proposal) -> tuple[int, int, int | None]:
    """(encryption transform ID, key bits, integrity transform ID) of a negotiated IKE
    proposal's SK payload; :class:`UnsupportedTransform` if this stack has no such cipher
    (an exception is not cached: raised every time)."""
    encr = proposal.one(TransformType.ENCR)
    if encr is None or encr.algorithm is None:
        raise UnsupportedTransform(f"{proposal.charon}: no supported encryption")
    if encr.id == ENCR_AES_GCM_16:
        return encr.id, encr.key_length or 0, None
    if encr.id == ENCR_AES_CBC:
        integ = proposal.one(TransformType.INTEG)
        if integ is None:
            raise UnsupportedTransform(f"{proposal.charon}: AES-CBC needs integrity")
        return encr.id, encr.key_length or 0, integ.id
    raise UnsupportedTransform(f"{proposal.charon}: encryption {encr.name}")


_AES_GCM = ENCRYPTION[ENCR_AES_GCM_16]


class AesGcmSk(SkCipher):
    """ENCR_AES_GCM_16 in the SK payload (RFC 5282)."""

    aead = True
    iv_size = 8
    block_size = 1
    icv_size = 16

    def __init__(self, sk_e: bytes, key_bits: int) -> None:
        algorithm = _AES_GCM
        if key_bits not in algorithm.key_sizes or len(sk_e) != algorithm.key_material_size(
                key_bits):
            raise ValueError(f"AES-GCM-{key_bits} takes {key_bits // 8} + 4 (salt) bytes "
                             f"of SK_e, not {len(sk_e)}")
        self._aead = AESGCM(sk_e[:-4])
        self.salt = sk_e[-4:]
        self._sk_e, self._key_bits = sk_e, key_bits

    def __deepcopy__(self, memo: dict) -> AesGcmSk:
        # cryptography's AESGCM cannot be copied: key a new one (an IKE SA is copied
        # whole by the fuzz harness's snapshots)
        return AesGcmSk(self._sk_e, self._key_bits)

    def encrypt(self, payloads: bytes, aad: bytes, iv: bytes,
                padding: bytes | None = None) -> bytes:
        self._check_iv(iv)
        return iv + self._aead.encrypt(self.salt + iv, self.pad(payloads, padding), aad)

    def decrypt(self, body: bytes, aad: bytes) -> bytes:
        if len(body) < self.iv_size + self.icv_size + 1:
            raise MalformedEncryptedPayload(
                f"SK payload: {len(body)} bytes, less than IV + Pad Length + ICV")
        iv = bytes(body[:self.iv_size])
        try:
            plaintext = self._aead.decrypt(self.salt + iv, bytes(body[self.iv_size:]), aad)
        except InvalidTag:
            raise IntegrityError("ICV mismatch (AES-GCM-16 tag)") from None
        return self.unpad(plaintext)


class AesCbcSk(SkCipher):
    """ENCR_AES_CBC with a separate integrity transform (RFC 7296 §3.14)."""

    aead = False
    iv_size = 16
    block_size = 16

    def __init__(self, sk_e: bytes, integrity: Integrity, sk_a: bytes, key_bits: int) -> None:
        if key_bits not in ENCRYPTION[ENCR_AES_CBC].key_sizes or len(sk_e) != key_bits // 8:
            raise ValueError(f"AES-CBC-{key_bits} takes {key_bits // 8} bytes of SK_e, "
                             f"not {len(sk_e)}")
        if len(sk_a) != integrity.key_size:
            raise ValueError(f"{integrity.name} takes {integrity.key_size} bytes of SK_a, "
                             f"not {len(sk_a)}")
        self._key = sk_e
        self.integrity = integrity
        self._sk_a = sk_a
        self.icv_size = integrity.icv_size

    def encrypt(self, payloads: bytes, aad: bytes, iv: bytes,
                padding: bytes | None = None) -> bytes:
        self._check_iv(iv)
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(self.pad(payloads, padding)) + encryptor.finalize()
        return iv + ciphertext + self.integrity.sign(self._sk_a, aad + iv + ciphertext)

    def decrypt(self, body: bytes, aad: bytes) -> bytes:
        body = bytes(body)
        if len(body) < self.iv_size + self.block_size + self.icv_size:
            raise MalformedEncryptedPayload(
                f"SK payload: {len(body)} bytes, less than IV + one block + ICV")
        covered, icv = body[:-self.icv_size], body[-self.icv_size:]
        self.integrity.verify(self._sk_a, aad + covered, icv)
        iv, ciphertext = covered[:self.iv_size], covered[self.iv_size:]
        if len(ciphertext) % self.block_size:
            raise MalformedEncryptedPayload(
                f"SK payload: {len(ciphertext)} bytes of ciphertext, not whole AES blocks")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(iv)).decryptor()
        return self.unpad(decryptor.update(ciphertext) + decryptor.finalize())


# ============================================================================ messages
def find_encrypted_payload(message: bytes) -> int:
    """Offset of the SK payload's generic header in an IKE message (no non-ESP marker).

    Walks the payload chain from the IKE header; the SK payload must be the last one and
    end exactly where the header's Length says the message ends (§3.14: "the Encrypted
    payload, if present in a message, MUST be the last payload").
    """
    if len(message) < IKE_HEADER_SIZE:
        raise MalformedEncryptedPayload(f"{len(message)} bytes: shorter than an IKE header")
    length = int.from_bytes(message[24:28], "big")
    if length < IKE_HEADER_SIZE or length > len(message):
        raise MalformedEncryptedPayload(f"IKE header Length {length}, datagram {len(message)}")
    next_payload, offset = message[16], IKE_HEADER_SIZE
    while next_payload != PAYLOAD_NONE:
        if offset + PAYLOAD_HEADER_SIZE > length:
            raise MalformedEncryptedPayload(f"payload header at {offset} beyond Length")
        payload_length = int.from_bytes(message[offset + 2:offset + 4], "big")
        if payload_length < PAYLOAD_HEADER_SIZE or offset + payload_length > length:
            raise MalformedEncryptedPayload(
                f"payload {next_payload} at {offset}: Payload Length {payload_length}")
        if next_payload == PAYLOAD_SK:
            if offset + payload_length != length:
                raise MalformedEncryptedPayload("SK payload is not the last payload")
            return offset
        if next_payload == PAYLOAD_SKF:
            raise MalformedEncryptedPayload("Encrypted Fragment payloads (RFC 7383) are "
                                            "not supported")
        next_payload, offset = message[offset], offset + payload_length
    raise MalformedEncryptedPayload("no Encrypted payload in the message")


def decrypt_message(cipher: SkCipher, message: bytes) -> tuple[int, bytes]:
    """(type of the first inner payload, inner payload chain) of a protected message."""
    message = bytes(message)
    offset = find_encrypted_payload(message)
    length = int.from_bytes(message[24:28], "big")
    aad = message[:offset + PAYLOAD_HEADER_SIZE]
    inner = cipher.decrypt(message[offset + PAYLOAD_HEADER_SIZE:length], aad)
    return message[offset], inner


def encrypt_message(cipher: SkCipher, header: bytes, first_payload: int, payloads: bytes,
                    iv: bytes, unencrypted: bytes = b"", padding: bytes | None = None) -> bytes:
    """A whole protected message: ``header`` (28 bytes; its Length is rewritten, and its
    Next Payload too when there are no ``unencrypted`` payloads before SK), then the SK
    payload whose plaintext is ``payloads`` starting with a payload of type
    ``first_payload`` (0 for an empty SK payload, e.g. a liveness check). The last
    unencrypted payload's Next Payload must already be 46."""
    if len(header) != IKE_HEADER_SIZE:
        raise ValueError("the IKE header has 28 bytes")
    sk_length = PAYLOAD_HEADER_SIZE + cipher.encrypted_size(
        len(payloads), None if padding is None else len(padding))
    total = IKE_HEADER_SIZE + len(unencrypted) + sk_length
    head = bytearray(header)
    if not unencrypted:
        head[16] = PAYLOAD_SK
    head[24:28] = total.to_bytes(4, "big")
    sk_header = bytes((first_payload, 0)) + sk_length.to_bytes(2, "big")
    aad = bytes(head) + unencrypted + sk_header
    return aad + cipher.encrypt(payloads, aad, iv, padding)
