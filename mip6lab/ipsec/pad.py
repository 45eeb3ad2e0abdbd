"""The Peer Authorization Database (RFC 4301 §4.4.3).

The PAD links the SPD to IKE: for each peer it says how the peer is identified (an ID
of RFC 7296 §3.5 type and value), how it must authenticate (a pre-shared key, or a
certificate under a trust anchor), and which addresses it may negotiate child SAs for
(§4.4.3.1 and §4.4.3.2). It is where a home agent ties a mobile node's IKE identity
to its home address, so that MN A cannot use its SA to send a Binding Update for MN B's
HoA (RFC 4877 §4.2 and §5: "the home address ... MUST be bound to the identity").
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable

from ..errors import Mip6LabError

from ..net.interface import IPAddress, IPNetwork, as_address
from .selectors import address_key

class HomeAddressTaken(Mip6LabError):
    """A home address is bound to another identity in the PAD already."""


ID_TYPES = {"ipv4": 1, "fqdn": 2, "rfc822": 3, "ipv6": 5, "der_asn1_dn": 9, "key_id": 11}


@dataclass
class PeerAuthorizationEntry:
    """One PAD entry: identity, authentication, what the peer may ask for."""

    id_type: str                                   # "fqdn", "rfc822", "ipv4", ...
    identity: str                                  # the ID value ("mn1@mip6lab.example")
    auth_method: str = "psk"                       # "psk" or "certificate"
    psk: bytes | None = None
    trust_anchor: Any = None                       # a cryptography x509 certificate
    allowed: list[IPNetwork] = field(default_factory=list)  # addresses for child SAs
    home_addresses: list[IPAddress] = field(default_factory=list)  # bound HoAs (MIP6)

    def __post_init__(self) -> None:
        if self.id_type not in ID_TYPES:
            raise ValueError(f"id_type is one of {', '.join(ID_TYPES)}")
        if self.auth_method not in ("psk", "certificate"):
            raise ValueError("auth_method is psk or certificate")
        self.allowed = [ipaddress.ip_network(a, strict=False) for a in self.allowed]
        self.home_addresses = [as_address(a) for a in self.home_addresses]

    def matches(self, id_type: str, identity: str) -> bool:
        if id_type != self.id_type:
            return False
        if self.id_type in ("fqdn", "rfc822"):  # DNS names compare case-insensitively
            return identity.lower() == self.identity.lower()
        return identity == self.identity

    def authorizes(self, address: IPAddress) -> bool:
        """May this peer have SAs (and SPD entries) for ``address``?"""
        address = as_address(address)
        return address in self.home_addresses or any(
            address.version == net.version and address in net for net in self.allowed)

    def as_dict(self) -> dict[str, Any]:
        return {"id": f"{self.id_type}:{self.identity}", "auth": self.auth_method,
                "allowed": [str(n) for n in self.allowed],
                "home_addresses": [str(a) for a in self.home_addresses]}


#: the indexes of a PAD without entries: read-only, shared (:meth:`PeerAuthorizationDatabase.add`
#: gives the PAD its own)
_NONE: Any = MappingProxyType({})


class PeerAuthorizationDatabase:
    """An ordered PAD, searched by identity."""

    # slots, not a dict, in every node's PAD (a mobile node is one of thousands)
    __slots__ = ("entries", "_by_identity", "_owners")

    def __init__(self) -> None:
        self.entries: list[PeerAuthorizationEntry] = []
        # the indexes are made at the first entry (a mobile node's PAD stays empty); the
        # bound HoAs by address_key(): an int hashes in C, an address object in Python
        self._by_identity: dict[tuple[str, str], PeerAuthorizationEntry] = _NONE
        self._owners: dict[Any, PeerAuthorizationEntry] = _NONE   # bound HoA -> entry

    def __iter__(self):
        return iter(list(self.entries))

    @staticmethod
    def _key(id_type: str, identity: str) -> tuple[str, str]:
        # DNS names compare case-insensitively (as PeerAuthorizationEntry.matches)
        return id_type, identity.lower() if id_type in ("fqdn", "rfc822") else identity

    def add(self, entry: PeerAuthorizationEntry) -> PeerAuthorizationEntry:
        self.entries.append(entry)
        if self._by_identity is _NONE:
            self._by_identity, self._owners = {}, {}
        # the first entry for an identity is the one a search finds
        self._by_identity.setdefault(self._key(entry.id_type, entry.identity), entry)
        for address in entry.home_addresses:     # configured with its home addresses
            self._owners.setdefault(address_key(as_address(address)), entry)
        return entry

    def lookup(self, id_type: str, identity: str) -> PeerAuthorizationEntry | None:
        return self._by_identity.get(self._key(id_type, identity))

    def bind_home_address(self, id_type: str, identity: str, address: IPAddress) -> None:
        """Tie ``address`` to the peer (the HA learns a MN's HoA, RFC 4877 §7.1).

        A home address has one owner: the HA accepts a BU for it only through an SA of
        that identity (RFC 4877 §4.2), so binding it to a second identity would let that
        one take it over. :class:`HomeAddressTaken` if another entry holds it."""
        entry = self.lookup(id_type, identity)
        if entry is None:
            raise KeyError(f"no PAD entry for {id_type}:{identity}")
        address = as_address(address)
        owner = self.owner_of(address)
        if owner is not None and owner is not entry:
            raise HomeAddressTaken(f"{address} is bound to {owner.id_type}:{owner.identity} "
                                   f"already, not to {id_type}:{identity}")
        if address not in entry.home_addresses:
            entry.home_addresses.append(address)
            self._owners[address_key(address)] = entry

    def unbind_home_addresses(self, id_type: str, identity: str,
                              which: Callable[[IPAddress], bool]) -> list[IPAddress]:
        """Untie the peer's home addresses for which ``which(address)`` holds (its lease
        went back to the pool: RFC 4877 §7.1's "temporary PAD entry" ends); returns them."""
        entry = self.lookup(id_type, identity)
        if entry is None:
            return []
        gone = [a for a in entry.home_addresses if which(a)]
        entry.home_addresses = [a for a in entry.home_addresses if a not in gone]
        for address in gone:
            self._owners.pop(address_key(as_address(address)), None)
        return gone

    def owner_of(self, address: IPAddress) -> PeerAuthorizationEntry | None:
        """The peer a home address is bound to, if any."""
        return self._owners.get(address_key(as_address(address)))

    def table(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.entries]
