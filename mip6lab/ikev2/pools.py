"""Address pools for the configuration payload (RFC 7296 §3.15, RFC 4877 §9, RFC 5026).

A responder hands out, per IKE SA: an IPv6 address (INTERNAL_IP6_ADDRESS, the home
address of RFC 4877 §9), an IPv4 address (INTERNAL_IP4_ADDRESS, the DSMIP6 IPv4 home
address), or a home prefix (MIP6_HOME_PREFIX, RFC 5026 §8.2, from which the mobile node
forms its HoA itself). A lease is tied to the peer's identity and released when its IKE
SA goes (§3.15.4: "the address is returned to the pool").

Allocation is sequential from the start of the pool, so a lab is deterministic; a peer
that comes back with the same identity gets its previous address if it is free.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class PoolExhausted(Exception):
    """No address is left: the responder answers INTERNAL_ADDRESS_FAILURE (§3.15.4)."""


@dataclass
class AddressPool:
    """Addresses (``prefix_length=None``) or prefixes of a length, from one network."""

    network: Network
    prefix_length: int | None = None        # hand out /N prefixes instead of addresses
    leases: dict[str, Network | Address] = field(default_factory=dict)   # identity -> lease
    remembered: dict[str, Network | Address] = field(default_factory=dict)
    _cursor: object = field(default=None, repr=False, compare=False)  # fresh candidates
    _taken_set: set | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, text: str, prefix_length: int | None = None) -> AddressPool:
        return cls(ipaddress.ip_network(text, strict=False), prefix_length)

    def _candidates(self):
        if self.prefix_length is None:
            hosts = self.network.hosts() if self.network.version == 4 else \
                (self.network.network_address + i for i in range(1, self.network.num_addresses))
            return hosts
        return self.network.subnets(new_prefix=self.prefix_length)

    def allocate(self, identity: str) -> Network | Address:
        """The lease for ``identity`` (the one it has, its previous one, or a new one)."""
        if identity in self.leases:
            return self.leases[identity]
        taken = self._taken
        previous = self.remembered.get(identity)
        if previous is not None and previous not in taken:
            return self._lease(identity, previous)
        # never handed out yet, in pool order: from where the last fresh one came from, so
        # that a home agent with ten thousand leases does not walk them all each time
        remembered = set(self.remembered.values())
        for candidate in self._fresh():
            if candidate not in taken and candidate not in remembered:
                return self._lease(identity, candidate)
        for candidate in self._candidates():   # reuse another peer's remembered one
            if candidate not in taken:
                return self._lease(identity, candidate)
        raise PoolExhausted(f"pool {self.network} has nothing left for {identity}")

    def _fresh(self):
        if self._cursor is None:
            self._cursor = self._candidates()
        return self._cursor

    @property
    def _taken(self) -> set:
        if self._taken_set is None:
            self._taken_set = set(self.leases.values())
        return self._taken_set

    def _lease(self, identity: str, lease: Network | Address) -> Network | Address:
        self.leases[identity] = lease
        self._taken.add(lease)
        return lease

    def release(self, identity: str) -> Network | Address | None:
        lease = self.leases.pop(identity, None)
        if lease is not None:
            self.remembered[identity] = lease
            self._taken.discard(lease)
        return lease
