"""AUTH (RFC 7296 §2.15): signed octets, pre-shared key MIC, and signatures (methods 1,
9-11 and the RFC 7427 Digital Signature method with its AlgorithmIdentifier blobs)."""

from __future__ import annotations

import datetime
import hashlib
import hmac

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from mip6lab.crypto.ike import (KEY_PAD, SIGNATURE_SCHEMES, AuthenticationFailed,
                                AuthMethod, Prf, maced_id, psk_auth, sign_auth,
                                signed_octets, verify_auth, verify_psk_auth)

OCTETS = b"IKE_SA_INIT message" + b"N" * 32 + b"M" * 32


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_keys():
    return {name: ec.generate_private_key(curve) for name, curve in
            (("p256", ec.SECP256R1()), ("p384", ec.SECP384R1()), ("p521", ec.SECP521R1()))}


def test_signed_octets_and_psk_auth():
    prf = Prf(6)
    sk_pi = b"P" * 48
    id_body = b"\x03\x00\x00\x00mn@mip6lab.example"
    message, nonce = b"\x01" * 60, b"\x02" * 32
    mac = hmac.new(sk_pi, id_body, hashlib.sha384).digest()
    assert maced_id(prf, sk_pi, id_body) == mac
    octets = signed_octets(message, nonce, prf, sk_pi, id_body)
    assert octets == message + nonce + mac
    assert KEY_PAD == b"Key Pad for IKEv2" and len(KEY_PAD) == 17
    inner = hmac.new(b"secret", b"Key Pad for IKEv2", hashlib.sha384).digest()
    expected = hmac.new(inner, octets, hashlib.sha384).digest()
    assert psk_auth(prf, b"secret", octets) == expected
    verify_psk_auth(prf, b"secret", octets, expected)
    for wrong in (expected[:-1], expected[:-1] + bytes((expected[-1] ^ 1,)), b""):
        with pytest.raises(AuthenticationFailed) as caught:
            verify_psk_auth(prf, b"secret", octets, wrong)
        assert caught.value.notify == 24
    with pytest.raises(AuthenticationFailed):
        verify_psk_auth(prf, b"Secret", octets, expected)


def test_algorithm_identifiers_have_rfc7427_lengths():
    lengths = {name: len(s.algorithm_identifier) for name, s in SIGNATURE_SCHEMES.items()}
    assert lengths == {"sha256WithRSAEncryption": 15, "sha384WithRSAEncryption": 15,
                       "sha512WithRSAEncryption": 15, "ecdsa-with-SHA256": 12,
                       "ecdsa-with-SHA384": 12, "ecdsa-with-SHA512": 12,
                       "RSASSA-PSS-SHA256": 67}
    # RFC 7427 A.4.3 spells PSS with the DEFAULT trailerField written out (72 bytes)
    assert [len(b) for b in SIGNATURE_SCHEMES["RSASSA-PSS-SHA256"].also_accepted] == [72]


def _certificate_der(key, hash_, **sign_options) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ha.mip6lab.example")])
    when = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(1).not_valid_before(when)
               .not_valid_after(when + datetime.timedelta(days=1)))
    return builder.sign(key, hash_, **sign_options).public_bytes(serialization.Encoding.DER)


def test_algorithm_identifiers_are_what_x509_writes(rsa_key, ec_keys):
    """`cryptography`'s X.509 encoder writes the same AlgorithmIdentifier DER."""
    blob = {name: s.algorithm_identifier for name, s in SIGNATURE_SCHEMES.items()}
    assert blob["sha256WithRSAEncryption"] in _certificate_der(rsa_key, hashes.SHA256())
    assert blob["sha384WithRSAEncryption"] in _certificate_der(rsa_key, hashes.SHA384())
    assert blob["ecdsa-with-SHA256"] in _certificate_der(ec_keys["p256"], hashes.SHA256())
    assert blob["ecdsa-with-SHA384"] in _certificate_der(ec_keys["p384"], hashes.SHA384())
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    assert blob["RSASSA-PSS-SHA256"] in _certificate_der(rsa_key, hashes.SHA256(),
                                                         rsa_padding=pss)


@pytest.mark.parametrize("scheme", ["sha256WithRSAEncryption", "sha512WithRSAEncryption",
                                    "RSASSA-PSS-SHA256"])
def test_digital_signature_rsa(rsa_key, scheme):
    data = sign_auth(rsa_key, OCTETS, AuthMethod.DIGITAL_SIGNATURE, scheme)
    s = SIGNATURE_SCHEMES[scheme]
    assert data[0] == len(s.algorithm_identifier) and data[1:1 + data[0]] == \
        s.algorithm_identifier
    signature = data[1 + data[0]:]
    pad = (padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32) if s.pss
           else padding.PKCS1v15())
    rsa_key.public_key().verify(signature, OCTETS, pad, s.hash())  # independent check
    verify_auth(rsa_key.public_key(), OCTETS, 14, data)
    with pytest.raises(AuthenticationFailed):
        verify_auth(rsa_key.public_key(), OCTETS + b"x", 14, data)


@pytest.mark.parametrize("curve, scheme", [("p256", "ecdsa-with-SHA256"),
                                           ("p384", "ecdsa-with-SHA384"),
                                           ("p521", "ecdsa-with-SHA512")])
def test_digital_signature_ecdsa_defaults_by_curve(ec_keys, curve, scheme):
    key = ec_keys[curve]
    data = sign_auth(key, OCTETS)  # method 14, scheme from the key
    blob = SIGNATURE_SCHEMES[scheme].algorithm_identifier
    assert data[1:1 + data[0]] == blob
    decode_dss_signature(data[1 + data[0]:])  # DER Ecdsa-Sig-Value
    verify_auth(key.public_key(), OCTETS, AuthMethod.DIGITAL_SIGNATURE, data)
    tampered = data[:-1] + bytes((data[-1] ^ 1,))
    with pytest.raises(AuthenticationFailed):
        verify_auth(key.public_key(), OCTETS, AuthMethod.DIGITAL_SIGNATURE, tampered)


def test_pss_identifier_as_rfc7427_writes_it_is_accepted(rsa_key):
    data = sign_auth(rsa_key, OCTETS, 14, "RSASSA-PSS-SHA256")
    rfc_form = SIGNATURE_SCHEMES["RSASSA-PSS-SHA256"].also_accepted[0]
    assert rfc_form.endswith(bytes.fromhex("a303020101"))
    verify_auth(rsa_key.public_key(), OCTETS, 14, bytes((72,)) + rfc_form + data[68:])


def test_default_rsa_scheme(rsa_key):
    data = sign_auth(rsa_key, OCTETS)
    assert data[:16] == bytes((15,)) + SIGNATURE_SCHEMES[
        "sha256WithRSAEncryption"].algorithm_identifier


@pytest.mark.parametrize("method, curve, size, hash_", [
    (AuthMethod.ECDSA_SHA256_P256, "p256", 64, hashes.SHA256),
    (AuthMethod.ECDSA_SHA384_P384, "p384", 96, hashes.SHA384),
    (AuthMethod.ECDSA_SHA512_P521, "p521", 132, hashes.SHA512)])
def test_rfc4754_ecdsa_methods(ec_keys, method, curve, size, hash_):
    key = ec_keys[curve]
    data = sign_auth(key, OCTETS, method)
    assert len(data) == size  # r | s, fixed length
    verify_auth(key.public_key(), OCTETS, method, data)
    with pytest.raises(AuthenticationFailed):
        verify_auth(key.public_key(), OCTETS[1:], method, data)
    other = "p384" if curve == "p256" else "p256"
    with pytest.raises(TypeError):
        sign_auth(ec_keys[other], OCTETS, method)


def test_rsa_method_1_is_pkcs1_sha1(rsa_key):
    data = sign_auth(rsa_key, OCTETS, AuthMethod.RSA_SIGNATURE)
    rsa_key.public_key().verify(data, OCTETS, padding.PKCS1v15(), hashes.SHA1())
    verify_auth(rsa_key.public_key(), OCTETS, 1, data)


def test_mismatches_are_authentication_failures(rsa_key, ec_keys):
    rsa_auth = sign_auth(rsa_key, OCTETS)
    with pytest.raises(AuthenticationFailed, match="does not fit"):
        verify_auth(ec_keys["p256"].public_key(), OCTETS, 14, rsa_auth)
    with pytest.raises(AuthenticationFailed, match="unknown AlgorithmIdentifier"):
        verify_auth(rsa_key.public_key(), OCTETS, 14, b"\x03\x30\x01\x00" + rsa_auth[16:])
    with pytest.raises(AuthenticationFailed):
        verify_auth(rsa_key.public_key(), OCTETS, 14, b"")
    with pytest.raises(AuthenticationFailed):
        verify_auth(ec_keys["p256"].public_key(), OCTETS, AuthMethod.RSA_SIGNATURE, b"x")
    with pytest.raises(TypeError):
        sign_auth(ec_keys["p256"], OCTETS, 14, "sha256WithRSAEncryption")
    with pytest.raises(ValueError):
        sign_auth(rsa_key, OCTETS, AuthMethod.SHARED_KEY_MIC)
