"""IKEv2 cryptography over `cryptography`: transforms, proposals, PRF/prf+, the SK payload,
key exchange, key derivation, AUTH and NAT detection (RFC 7296 §2.13-2.17, §2.23, §3.14;
RFC 5282; RFC 5903; RFC 8031; RFC 7427).

Sans-I/O and deterministic: nothing here draws randomness by itself; IVs and private
values come from the caller (a seeded source in a simulated lab).

=================  ==========================================================
module             what
=================  ==========================================================
``transforms``     IANA ids, algorithm tables, the three spellings of a name
``proposals``      Transform / Proposal, strongSwan notation, responder choice
``prf``            Prf (prf, prf+), Integrity (truncated HMAC)
``sk``             the Encrypted payload: AES-CBC + HMAC, AES-GCM-16
``dh``             key exchange groups 14, 19, 20, 31
``keys``           SKEYSEED, SK_*, rekey, child SA KEYMAT
``auth``           signed octets, PSK AUTH, signature AUTH (RFC 7427)
``natd``           NAT detection hashes
=================  ==========================================================
"""

from .auth import (KEY_PAD, SIGNATURE_SCHEMES, AuthMethod, SignatureScheme, default_scheme,
                   maced_id, psk_auth, sign_auth, signed_octets, verify_auth,
                   verify_psk_auth)
from .dh import (MODP_2048_GENERATOR, MODP_2048_PRIME, EcpKeyExchange, KeyExchange,
                 ModpKeyExchange, RandomSource, X25519KeyExchange, generate_key_exchange)
from .errors import (AuthenticationFailed, IntegrityError, InvalidKeyExchange,
                     MalformedEncryptedPayload, NoProposalChosen, ProposalError,
                     UnsupportedTransform)
from .keys import (ChildKeys, IkeKeyLengths, IkeKeys, child_key_lengths,
                   compute_rekey_skeyseed, compute_skeyseed, derive_child_keys,
                   derive_ike_keys, derive_rekeyed_ike_keys, esp_suite_name,
                   expand_ike_keys, ike_key_lengths)
from .natd import (NAT_DETECTION_DESTINATION_IP, NAT_DETECTION_SOURCE_IP,
                   nat_detection_data, nat_detection_hash)
from .prf import Integrity, Prf, prf_plus
from .proposals import (KEYWORDS, Proposal, Transform, format_proposal,
                        parse_charon_proposal, parse_proposal, parse_proposals,
                        select_proposal)
from .sk import (PAYLOAD_SK, AesCbcSk, AesGcmSk, SkCipher, decrypt_message, encrypt_message,
                 find_encrypted_payload)
from .transforms import (ATTR_KEY_LENGTH, AUTH_HMAC_SHA2_256_128, AUTH_HMAC_SHA2_384_192,
                         AUTH_HMAC_SHA2_512_256, AUTH_NONE, CURVE25519, ECP_256, ECP_384,
                         ENCR_AES_CBC, ENCR_AES_GCM_16, ENCRYPTION, ESN, INTEGRITY,
                         KE_NONE, KEY_EXCHANGE, MODP_2048, NO_ESN, PRF_HMAC_SHA2_256,
                         PRF_HMAC_SHA2_384, PRF_HMAC_SHA2_512, PRFS, Protocol,
                         TransformType, transform_name)

__all__ = [
    "ATTR_KEY_LENGTH", "AUTH_HMAC_SHA2_256_128", "AUTH_HMAC_SHA2_384_192",
    "AUTH_HMAC_SHA2_512_256", "AUTH_NONE", "CURVE25519", "ECP_256", "ECP_384",
    "ENCRYPTION", "ENCR_AES_CBC", "ENCR_AES_GCM_16", "ESN", "INTEGRITY", "KEYWORDS",
    "KEY_EXCHANGE", "KEY_PAD", "KE_NONE", "MODP_2048", "MODP_2048_GENERATOR",
    "MODP_2048_PRIME", "NAT_DETECTION_DESTINATION_IP", "NAT_DETECTION_SOURCE_IP", "NO_ESN",
    "PAYLOAD_SK", "PRFS", "PRF_HMAC_SHA2_256", "PRF_HMAC_SHA2_384", "PRF_HMAC_SHA2_512",
    "SIGNATURE_SCHEMES",
    "AesCbcSk", "AesGcmSk", "AuthMethod", "AuthenticationFailed", "ChildKeys",
    "EcpKeyExchange", "IkeKeyLengths", "IkeKeys", "Integrity", "IntegrityError",
    "InvalidKeyExchange", "KeyExchange", "MalformedEncryptedPayload", "ModpKeyExchange",
    "NoProposalChosen", "Prf", "Proposal", "ProposalError", "Protocol", "RandomSource",
    "SignatureScheme", "SkCipher", "Transform", "TransformType", "UnsupportedTransform",
    "X25519KeyExchange",
    "child_key_lengths", "compute_rekey_skeyseed", "compute_skeyseed", "decrypt_message",
    "default_scheme", "derive_child_keys", "derive_ike_keys", "derive_rekeyed_ike_keys",
    "encrypt_message", "esp_suite_name", "expand_ike_keys", "find_encrypted_payload",
    "format_proposal", "generate_key_exchange", "ike_key_lengths", "maced_id",
    "nat_detection_data", "nat_detection_hash", "parse_charon_proposal", "parse_proposal",
    "parse_proposals", "prf_plus", "psk_auth", "select_proposal", "sign_auth",
    "signed_octets", "transform_name", "verify_auth", "verify_psk_auth",
]
