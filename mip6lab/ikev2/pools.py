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
        taken = set(self.leases.values())
        previous = self.remembered.get(identity)
        if previous is not None and previous not in taken:
            self.leases[identity] = previous
            return previous
        for candidate in self._candidates():
            if candidate not in taken and candidate not in self.remembered.values():
                self.leases[identity] = candidate
                return candidate
        for candidate in self._candidates():   # reuse another peer's remembered one
            if candidate not in taken:
                self.leases[identity] = candidate
                return candidate
        raise PoolExhausted(f"pool {self.network} has nothing left for {identity}")

    def release(self, identity: str) -> Network | Address | None:
        lease = self.leases.pop(identity, None)
        if lease is not None:
            self.remembered[identity] = lease
        return lease
