"""What an IKE peer is configured with: identities, key, proposals, selectors, pools.

Proposals are written in strongSwan's notation (``aes256gcm16-prfsha256-curve25519``,
``aes128-sha256-modp2048``; ESP ``aes256gcm16``) so that a student can hold our
configuration next to a swanctl.conf.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..crypto.ike.proposals import Proposal, parse_proposals
from .pools import AddressPool
from .ts import TrafficSelector

ID_TYPE_NUMBERS = {"ipv4": 1, "fqdn": 2, "rfc822": 3, "ipv6": 5, "key_id": 11}


def identity(text: str) -> tuple[str, str]:
    """An identity from text, typed as strongSwan types it: an address is ipv4/ipv6,
    ``user@domain`` is rfc822, anything else an FQDN; ``fqdn:`` etc. force a type."""
    import ipaddress

    kind, sep, value = text.partition(":")
    if sep and kind in ID_TYPE_NUMBERS and not _looks_like_ipv6(text):
        return kind, value
    try:
        address = ipaddress.ip_address(text)
        return ("ipv4" if address.version == 4 else "ipv6"), str(address)
    except ValueError:
        pass
    return ("rfc822", text) if "@" in text else ("fqdn", text)


def _looks_like_ipv6(text: str) -> bool:
    return text.count(":") >= 2


@dataclass
class IkeConfig:
    """One side's configuration of an IKE SA and its first child SA."""

    local_id: tuple[str, str]
    psk: bytes
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

    def __post_init__(self) -> None:
        if self.mode not in ("tunnel", "transport"):
            raise ValueError("mode is tunnel or transport")
        unknown = set(self.request) - {"ipv6", "ipv4", "home-prefix"}
        if unknown:
            raise ValueError(f"cannot request {', '.join(sorted(unknown))}")

    @classmethod
    def make(cls, local_id: str, psk: str | bytes, remote_id: str | None = None,
             ike: str = "aes256gcm16-prfsha256-curve25519", esp: str = "aes256gcm16",
             **options) -> IkeConfig:
        """A configuration from text, as the CLI takes it."""
        return cls(identity(local_id), psk.encode() if isinstance(psk, str) else psk,
                   identity(remote_id) if remote_id else None,
                   parse_proposals(ike, "ike"), parse_proposals(esp, "esp"), **options)
