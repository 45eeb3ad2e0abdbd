"""A small test CA: a self-signed CA and end-entity certificates for IKEv2 labs.

Made with ``cryptography``: RSA-2048 or ECDSA P-256 keys, subjectAltNames for the
identities IKE uses (FQDN as dNSName, ``user@domain`` as rfc822Name, addresses as
iPAddress), and PEM files laid out for our CLI (``--cert/--key/--ca``) and for swanctl's
directory layout (``x509/``, ``private/``, ``x509ca/``)::

    ca = TestCA.create("mip6lab test CA", key_type="ecdsa")
    ha = ca.issue("ha.mip6lab.example")                 # dNSName SAN
    mn = ca.issue("mn@mip6lab.example", key_type="rsa")  # rfc822Name SAN
    paths = ha.write(tmp_path / "ha")                    # cert.pem, key.pem
    ca.write(tmp_path / "ca.pem")

Validity: ``not_before`` defaults to :data:`LAB_EPOCH` minus a day and certificates last
:data:`DEFAULT_DAYS`, so that the lab's fixed :data:`LAB_VALIDATION_TIME` lies inside
them and a real clock (today) does too until they expire.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: A fixed time inside every certificate made here with the default validity: what the
#: in-memory lab (whose clock starts at 0, i.e. 1970) validates against.
LAB_VALIDATION_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
LAB_EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
DEFAULT_DAYS = 3650

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def generate_key(key_type: str = "ecdsa") -> PrivateKey:
    """An RSA-2048 (``"rsa"``) or ECDSA P-256 (``"ecdsa"``; ``"ecdsa384"`` for P-384) key."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    curves = {"ecdsa": ec.SECP256R1, "ecdsa256": ec.SECP256R1, "ecdsa384": ec.SECP384R1,
              "ecdsa521": ec.SECP521R1}
    if key_type not in curves:
        raise ValueError(f"key type {key_type!r}: rsa, ecdsa, ecdsa384 or ecdsa521")
    return ec.generate_private_key(curves[key_type]())


def san_for(identity: str) -> x509.GeneralName:
    """The subjectAltName entry an IKE identity is matched against (RFC 4945 §3.1)."""
    kind, sep, value = identity.partition(":")
    if sep and kind in ("fqdn", "rfc822", "ipv4", "ipv6") and identity.count(":") < 2:
        identity = value
    try:
        return x509.IPAddress(ipaddress.ip_address(identity))
    except ValueError:
        pass
    return x509.RFC822Name(identity) if "@" in identity else x509.DNSName(identity)


def _pem_key(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


@dataclass
class Issued:
    """An end-entity certificate and its private key."""

    certificate: x509.Certificate
    key: PrivateKey
    identity: str
    key_type: str

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _pem_key(self.key)

    def write(self, directory: str | os.PathLike[str], name: str = "") -> tuple[Path, Path]:
        """``<name>cert.pem`` and ``<name>key.pem`` (0600) in ``directory``."""
        directory = Path(directory)
        return (_write(directory / f"{name}cert.pem", self.cert_pem),
                _write(directory / f"{name}key.pem", self.key_pem, 0o600))


@dataclass
class TestCA:
    """A self-signed CA that issues end-entity certificates."""

    __test__ = False   # not a pytest test class

    certificate: x509.Certificate
    key: PrivateKey
    not_before: dt.datetime = LAB_EPOCH - dt.timedelta(days=1)
    days: int = DEFAULT_DAYS

    @classmethod
    def create(cls, name: str = "mip6lab test CA", key_type: str = "ecdsa", *,
               not_before: dt.datetime | None = None, days: int = DEFAULT_DAYS) -> TestCA:
        key = generate_key(key_type)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mip6lab"),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        start = not_before or LAB_EPOCH - dt.timedelta(days=1)
        cert = (x509.CertificateBuilder()
                .subject_name(subject).issuer_name(subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start)
                .not_valid_after(start + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert, key, start, days)

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def write(self, path: str | os.PathLike[str]) -> Path:
        """The CA certificate as PEM at ``path``."""
        return _write(Path(path), self.cert_pem)

    def issue(self, identity: str, key_type: str = "ecdsa", *,
              extra_identities: tuple[str, ...] = (),
              not_before: dt.datetime | None = None,
              not_after: dt.datetime | None = None,
              subject_cn: str | None = None, san: bool = True) -> Issued:
        """An end-entity certificate for ``identity`` (CN and subjectAltName)."""
        key = generate_key(key_type)
        start = not_before or self.not_before
        end = not_after or start + dt.timedelta(days=self.days)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mip6lab"),
                             x509.NameAttribute(NameOID.COMMON_NAME, subject_cn or identity)])
        builder = (x509.CertificateBuilder()
                   .subject_name(subject).issuer_name(self.certificate.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                  critical=True)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                       self.key.public_key()), critical=False)
                   .add_extension(x509.ExtendedKeyUsage([
                       ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [san_for(i) for i in (identity, *extra_identities)]), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert, key, identity, key_type)

    def write_swanctl(self, directory: str | os.PathLike[str], own: Issued,
                      name: str = "own") -> dict[str, Path]:
        """Lay out ``own`` and this CA for swanctl under ``directory`` (the directory of
        swanctl.conf): ``x509/<name>.pem``, ``private/<name>.pem`` (or ``rsa/``,
        ``ecdsa/``: ``private/`` takes PKCS#8 of either type) and ``x509ca/ca.pem``."""
        directory = Path(directory)
        return {"cert": _write(directory / "x509" / f"{name}.pem", own.cert_pem),
                "key": _write(directory / "private" / f"{name}.pem", own.key_pem, 0o600),
                "ca": _write(directory / "x509ca" / "ca.pem", self.cert_pem)}


__all__ = ["TestCA", "Issued", "generate_key", "san_for", "LAB_VALIDATION_TIME",
           "LAB_EPOCH", "DEFAULT_DAYS"]
