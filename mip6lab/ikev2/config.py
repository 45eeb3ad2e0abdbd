"""What an IKE peer is configured with: identities, key, proposals, selectors, pools.

Proposals are written in strongSwan's notation (``aes256gcm16-prfsha256-curve25519``,
``aes128-sha256-modp2048``; ESP ``aes256gcm16``) so that a student can hold our
configuration next to a swanctl.conf.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ..crypto.ike.proposals import Proposal, parse_proposals
from .pools import AddressPool
from .ts import TrafficSelector

ID_TYPE_NUMBERS = {"ipv4": 1, "fqdn": 2, "rfc822": 3, "ipv6": 5, "der_asn1_dn": 9,
                   "key_id": 11}
#: ``auth_method`` values: how we authenticate ourselves (what we accept from the peer
#: follows from what we have: a PSK, or trust anchors for its certificate).
AUTH_METHODS = ("psk", "signature", "rsa", "ecdsa")


def identity(text: str) -> tuple[str, str]:
    """An identity from text, typed as strongSwan types it: an address is ipv4/ipv6,
    ``user@domain`` is rfc822, anything else an FQDN; ``fqdn:`` etc. force a type."""
    import ipaddress

    kind, sep, value = text.partition(":")
    if sep and kind == "dn":     # strongSwan writes a DN ID as text; "dn:" forces it here
        kind = "der_asn1_dn"
    if sep and kind in ID_TYPE_NUMBERS and not _looks_like_ipv6(text):
        return kind, value
    if _could_be_address(text):
        try:
            address = ipaddress.ip_address(text)
            return ("ipv4" if address.version == 4 else "ipv6"), str(address)
        except ValueError:
            pass
    return ("rfc822", text) if "@" in text else ("fqdn", text)


#: what the text of an address is made of (an IPv6 scope after "%" may be anything)
_ADDRESS_CHARACTERS = frozenset("0123456789abcdefABCDEF:.")


def _could_be_address(text: str) -> bool:
    """False for text that no address is written as (``mn0@example``, a domain name):
    ip_address() would fail on it twice, as IPv4 then as IPv6, each failure costly."""
    head = text.partition("%")[0]
    return bool(head) and _ADDRESS_CHARACTERS.issuperset(head)


def _looks_like_ipv6(text: str) -> bool:
    return text.count(":") >= 2


@dataclass
class IkeConfig:
    """One side's configuration of an IKE SA and its first child SA."""

    local_id: tuple[str, str]
    psk: bytes | None
    remote_id: tuple[str, str] | None = None
    ike_proposals: list[Proposal] = field(default_factory=lambda: parse_proposals(
        "aes256gcm16-prfsha256-curve25519", "ike"))
    esp_proposals: list[Proposal] = field(default_factory=lambda: parse_proposals(
        "aes256gcm16", "esp"))
    local_ts: list[TrafficSelector] = field(default_factory=list)   # empty: our address
    remote_ts: list[TrafficSelector] = field(default_factory=list)  # empty: the peer's
    mode: str = "tunnel"
    request: tuple[str, ...] = ()           # initiator: "ipv6", "ipv4", "home-prefix"
    pool6: AddressPool | None = None        # responder: INTERNAL_IP6_ADDRESS
    pool4: AddressPool | None = None        # responder: INTERNAL_IP4_ADDRESS
    home_prefixes: AddressPool | None = None  # responder: MIP6_HOME_PREFIX
    reqid: int = 1
    retransmit_timeout: float = 0.5         # first retransmission (RFC 7296 §2.1)
    retransmit_tries: int = 5               # then give up
    nat_keepalive: float = 20.0
    mobike: bool = True                     # offer MOBIKE_SUPPORTED (RFC 4555), as charon does
    # RFC 5555 §5: "the mobile node MUST establish the security association over port
    # 4500, regardless of the presence of a NAT" (RFC 7296 §2.23 allows the move)
    always_nat_t: bool = False
    # initiator: IKE_AUTH carries a child SA (False: childless, as RFC 5026 §5.3.2 does
    # before the HoA exists; the child SAs come with CREATE_CHILD_SA)
    first_child: bool = True
    # the reqid of a child SA by its mode, when tunnel and transport SAs belong to
    # different policies (RFC 4877: BU/BA in transport, payload in tunnel); else reqid
    reqid_by_mode: dict = field(default_factory=dict)
    # certificates (RFC 7296 §3.6-3.8, RFC 7427): our certificate and its private key, the
    # CA certificates a peer's certificate must chain to, how we sign ("psk" for a shared
    # key; "signature" = RFC 7427 method 14, the default with a certificate; "rsa" =
    # method 1; "ecdsa" = methods 9/10/11 by curve), and the time certificates are
    # validated at (None: the wall clock now; the in-memory lab, whose clock starts at
    # 0 = 1970, passes a fixed time inside its test certificates' validity)
    certificate: Any = None                 # cryptography.x509.Certificate
    private_key: Any = None                 # RSA or EC private key
    trust_anchors: list = field(default_factory=list)   # x509.Certificate CAs
    auth_method: str | None = None
    validation_time: dt.datetime | None = None
    intermediates: list = field(default_factory=list)   # sent as more CERT payloads
    # responder: a pre-shared key per peer identity ("rfc822:mn1@example" or the bare
    # value), so that holding one key proves one identity; when set, a peer not listed
    # fails authentication. Without it every peer shares ``psk`` and any holder of that
    # key may claim any identity (docs/security.md)
    peer_psks: dict = field(default_factory=dict)
    # responder: at most this many distinct peer identities hold IKE SAs at once under
    # this configuration (one shared PSK is one group); None: no limit
    max_identities: int | None = None

    def __post_init__(self) -> None:
        self.peer_psks = {str(who): key.encode() if isinstance(key, str) else bytes(key)
                          for who, key in self.peer_psks.items()}
        if self.max_identities is not None and self.max_identities < 1:
            raise ValueError("max_identities must be at least 1 (or None: no limit)")
        if self.auth_method is None:
            self.auth_method = "signature" if self.certificate is not None else "psk"
        if self.auth_method not in AUTH_METHODS:
            raise ValueError(f"auth_method is one of {', '.join(AUTH_METHODS)}")
        if self.auth_method == "psk":
            if not self.psk:
                raise ValueError("pre-shared key authentication needs a psk")
        elif self.certificate is None or self.private_key is None:
            raise ValueError(f"auth_method {self.auth_method} needs a certificate and "
                             "its private key")
        else:
            self._check_key()
        if self.psk is None and not self.trust_anchors:
            raise ValueError("without a psk, trust_anchors are needed to verify the peer")
        if self.mode not in ("tunnel", "transport"):
            raise ValueError("mode is tunnel or transport")
        unknown = set(self.request) - {"ipv6", "ipv4", "home-prefix"}
        if unknown:
            raise ValueError(f"cannot request {', '.join(sorted(unknown))}")

    def _check_key(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec, rsa

        key, public = self.private_key, self.certificate.public_key()
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise ValueError("the private key must be RSA or ECDSA")
        if key.public_key().public_numbers() != getattr(public, "public_numbers",
                                                        lambda: None)():
            raise ValueError("the private key does not belong to the certificate")
        if self.auth_method == "rsa" and not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("auth_method rsa (method 1) needs an RSA key")
        if self.auth_method == "ecdsa" and not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("auth_method ecdsa (methods 9-11) needs an ECDSA key")

    @property
    def uses_certificates(self) -> bool:
        """We sign with a certificate or verify the peer's (CERT, CERTREQ, RFC 7427)."""
        return self.auth_method != "psk" or bool(self.trust_anchors)

    @classmethod
    def make(cls, local_id: str, psk: str | bytes | None = None, remote_id: str | None = None,
             ike: str = "aes256gcm16-prfsha256-curve25519", esp: str = "aes256gcm16", *,
             cert: str | None = None, key: str | None = None,
             ca: str | list[str] | tuple[str, ...] | None = None,
             **options) -> IkeConfig:
        """A configuration from text, as the CLI takes it. ``cert``/``key``/``ca`` are
        PEM file paths (``ca`` one path or several; a file may hold several CAs)."""
        if cert is not None:
            options["certificate"], options["intermediates"] = _load_certificates(cert)
        if key is not None:
            options["private_key"] = load_private_key(key)
        if ca is not None:
            paths = [ca] if isinstance(ca, str) else list(ca)
            options["trust_anchors"] = [c for p in paths for c in load_certificates(p)]
        return cls(identity(local_id), psk.encode() if isinstance(psk, str) else psk,
                   identity(remote_id) if remote_id else None,
                   parse_proposals(ike, "ike"), parse_proposals(esp, "esp"), **options)


def load_certificates(path: str) -> list:
    """Every X.509 certificate in a PEM file (or one DER certificate)."""
    from cryptography import x509

    with open(path, "rb") as f:
        data = f.read()
    if b"-----BEGIN" in data:
        certificates = x509.load_pem_x509_certificates(data)
    else:
        certificates = [x509.load_der_x509_certificate(data)]
    if not certificates:
        raise ValueError(f"no certificate in {path}")
    return certificates


def _load_certificates(path: str) -> tuple[Any, list]:
    """Our certificate (the first in the file) and any intermediates after it."""
    first, *rest = load_certificates(path)
    return first, rest


def load_private_key(path: str, password: bytes | None = None):
    """A PEM (PKCS#8, PKCS#1 or SEC1) or DER private key."""
    from cryptography.hazmat.primitives import serialization

    with open(path, "rb") as f:
        data = f.read()
    if b"-----BEGIN" in data:
        return serialization.load_pem_private_key(data, password)
    return serialization.load_der_private_key(data, password)
