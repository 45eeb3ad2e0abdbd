"""Certificates in IKEv2 (RFC 7296 §3.6-3.7, RFC 4945): what the engine sends and checks.

* :func:`certreq_data` -- the Certification Authority field of a CERTREQ with encoding 4
  (X.509 signature): the concatenated SHA-1 hashes of the trust anchors'
  SubjectPublicKeyInfo (§3.7), which is how strongSwan picks the certificate to send.
* :func:`verify_chain` -- the peer's end-entity certificate (the first CERT) must chain,
  through any further CERTs, to one of our trust anchors: each signature checked with
  ``cryptography``, every certificate valid at the validation time, issuers CAs.
* :func:`id_matches` -- the peer's ID payload must be in its certificate (RFC 4945
  §3.1): FQDN as a dNSName, RFC822 as an rfc822Name, an address as an iPAddress
  subjectAltName, a DER_ASN1_DN as the subject.

Failures raise :class:`AuthenticationFailed`, which the engine answers with
AUTHENTICATION_FAILED exactly as for a wrong pre-shared key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..crypto.ike.errors import AuthenticationFailed

CERT_ENCODING_X509_SIGNATURE = 4
MAX_CHAIN = 6


def spki_sha1(certificate: x509.Certificate) -> bytes:
    """SHA-1 of the DER SubjectPublicKeyInfo (the CERTREQ/Hash and URL key identifier)."""
    return hashlib.sha1(certificate.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)).digest()


def certreq_data(trust_anchors: list[x509.Certificate]) -> bytes:
    return b"".join(spki_sha1(c) for c in trust_anchors)


def certreq_hashes(data: bytes) -> list[bytes]:
    return [data[i:i + 20] for i in range(0, len(data) - len(data) % 20, 20)]


def _utc(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


def _check_validity(certificate: x509.Certificate, when: dt.datetime) -> None:
    if not certificate.not_valid_before_utc <= when <= certificate.not_valid_after_utc:
        raise AuthenticationFailed(
            f"certificate {certificate.subject.rfc4514_string()} is not valid at "
            f"{when.isoformat()} (valid {certificate.not_valid_before_utc.isoformat()} to "
            f"{certificate.not_valid_after_utc.isoformat()})")


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
        return True
    except Exception:    # name mismatch, bad signature, unsupported algorithm
        return False


def verify_chain(end_entity: x509.Certificate, intermediates: list[x509.Certificate],
                 trust_anchors: list[x509.Certificate], when: dt.datetime | None = None
                 ) -> list[x509.Certificate]:
    """The chain end entity .. trust anchor, or :class:`AuthenticationFailed`."""
    when = _utc(when or dt.datetime.now(dt.timezone.utc))
    chain = [end_entity]
    current = end_entity
    _check_validity(current, when)
    for _ in range(MAX_CHAIN):
        anchor = next((a for a in trust_anchors if _issued_by(current, a)), None)
        if anchor is not None:
            _check_validity(anchor, when)
            return chain + [anchor]
        step = next((c for c in intermediates if c not in chain and _is_ca(c)
                     and _issued_by(current, c)), None)
        if step is None:
            break
        _check_validity(step, when)
        chain.append(step)
        current = step
    raise AuthenticationFailed(
        f"certificate {end_entity.subject.rfc4514_string()} (issuer "
        f"{current.issuer.rfc4514_string()}) does not chain to a trusted CA")


def id_matches(certificate: x509.Certificate, kind: str, data: bytes) -> bool:
    """Is the ID payload (type name, identification data) in the certificate?"""
    if kind == "der_asn1_dn":
        return certificate.subject.public_bytes() == data
    try:
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    if kind in ("ipv4", "ipv6"):
        try:
            address = ipaddress.ip_address(data)
        except ValueError:
            return False
        return names is not None and address in names.get_values_for_type(x509.IPAddress)
    text = data.decode(errors="replace").lower()
    if kind == "fqdn":
        return names is not None and text in [n.lower() for n in
                                              names.get_values_for_type(x509.DNSName)]
    if kind == "rfc822":
        return names is not None and text in [n.lower() for n in
                                              names.get_values_for_type(x509.RFC822Name)]
    return False


def name_der(text: str) -> bytes:
    """The DER of a DN written in RFC 4514 (``CN=ha,O=mip6lab``)."""
    return x509.Name.from_rfc4514_string(text).public_bytes()


def normalized_dn(text: str) -> str:
    """A DN text in cryptography's RFC 4514 form (for comparing configured IDs)."""
    try:
        return x509.Name.from_rfc4514_string(text).rfc4514_string()
    except ValueError:
        return text


__all__ = ["spki_sha1", "certreq_data", "certreq_hashes", "verify_chain", "id_matches",
           "name_der", "normalized_dn", "CERT_ENCODING_X509_SIGNATURE"]
