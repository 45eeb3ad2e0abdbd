"""Interfaces and their addresses; the routing table.

An :class:`Interface` belongs to a node, has a MAC, may be attached to one link, and
holds IPv6 addresses (each with where it came from and its lifetimes, RFC 4862 §5.5.3)
and IPv4 addresses. The link-local address is formed from the MAC (RFC 4862 §5.3) and
stays for the life of the interface.

The :class:`RoutingTable` holds static and learned routes; connected routes are derived
from the interfaces' addresses, so that an address that goes also takes its route.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from .frames import ALL_NODES, ALL_ROUTERS, link_local_from_mac, solicited_node

if TYPE_CHECKING:
    from .link import Link
    from .node import Node

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

INFINITE = None  # a lifetime that never ends


@dataclass
class Address6:
    """An IPv6 address on an interface (RFC 4862 terms)."""

    interface: ipaddress.IPv6Interface
    origin: str                        # "link-local", "static", "slaac"
    valid_until_us: int | None = INFINITE
    preferred_until_us: int | None = INFINITE

    @property
    def ip(self) -> ipaddress.IPv6Address:
        return self.interface.ip

    def preferred(self, now_us: int) -> bool:
        return self.preferred_until_us is None or now_us < self.preferred_until_us


class Interface:
    """A network interface of a node."""

    def __init__(self, node: Node, name: str, mac: str) -> None:
        self.node = node
        self.name = name
        self.mac = mac
        self.link: Link | None = None
        self.link_local = link_local_from_mac(mac)
        self.addresses6: list[Address6] = [
            Address6(ipaddress.IPv6Interface(f"{self.link_local}/64"), "link-local")]
        self.addresses4: list[ipaddress.IPv4Interface] = []
        self.ethernet_headers: dict[tuple[str, int], bytes] = {}
        # groups joined for addresses the node answers for without holding them (a home
        # agent's proxy ND listens to each home address's solicited-node group)
        self.joined: set[ipaddress.IPv6Address] = set()

    @property
    def fullname(self) -> str:
        return f"{self.node.name}.{self.name}"

    def __repr__(self) -> str:
        where = self.link.name if self.link else "detached"
        return f"<Interface {self.fullname} {self.mac} on {where}>"

    # -- addresses ---------------------------------------------------------------------

    def ipv6(self, scope: str = "global") -> list[ipaddress.IPv6Address]:
        """The interface's IPv6 addresses of one scope ("global", "link-local", "all")."""
        return [a.ip for a in self.addresses6
                if scope == "all" or (scope == "link-local") == a.ip.is_link_local]

    def ipv4(self) -> list[ipaddress.IPv4Address]:
        return [a.ip for a in self.addresses4]

    def has_address(self, address: IPAddress) -> bool:
        if address.version == 6:
            return any(a.ip == address for a in self.addresses6)
        return any(a.ip == address for a in self.addresses4)

    def find6(self, address: ipaddress.IPv6Address) -> Address6 | None:
        return next((a for a in self.addresses6 if a.ip == address), None)

    def add_address(self, text: str, origin: str = "static") -> None:
        """Add a static address written as ``"2001:db8::1/64"`` or ``"192.0.2.1/24"``."""
        iface = ipaddress.ip_interface(text)
        if iface.version == 6:
            if not self.find6(iface.ip):
                self.addresses6.append(Address6(iface, origin))
        elif iface not in self.addresses4:
            self.addresses4.append(iface)

    def remove_address(self, address: IPAddress) -> None:
        if address.version == 6:
            self.addresses6 = [a for a in self.addresses6 if a.ip != address]
        else:
            self.addresses4 = [a for a in self.addresses4 if a.ip != address]

    def groups6(self) -> set[ipaddress.IPv6Address]:
        """Multicast groups the interface listens to (RFC 4861 §7.2.1, RFC 4291 §2.8)."""
        groups = {ALL_NODES} | {solicited_node(a.ip) for a in self.addresses6} | self.joined
        if self.node.forwarding:
            groups.add(ALL_ROUTERS)
        return groups

    def source_for(self, dst: IPAddress) -> IPAddress | None:
        """Source address selection, simplified from RFC 6724: same family, same scope,
        a preferred address before a deprecated one, a matching prefix first."""
        now = self.node.sim.now_us
        if dst.version == 4:
            for a in self.addresses4:
                if dst in a.network:
                    return a.ip
            return self.addresses4[0].ip if self.addresses4 else None
        want_link_local = dst.is_link_local or (dst.is_multicast and (dst.packed[1] & 0x0F) <= 2)
        candidates = [a for a in self.addresses6 if a.ip.is_link_local == want_link_local]
        if not candidates:
            return None
        candidates.sort(key=lambda a: (not a.preferred(now), dst not in a.interface.network))
        return candidates[0].ip


@dataclass
class Route:
    """A route: destinations in ``network`` leave by ``interface``, via ``gateway``."""

    network: IPNetwork
    interface: str
    gateway: IPAddress | None = None
    origin: str = "static"   # "static", "connected", "ra"
    metric: int = 0

    def __str__(self) -> str:
        via = f" via {self.gateway}" if self.gateway else ""
        return f"{self.network}{via} dev {self.interface} ({self.origin})"


class RoutingTable:
    """Longest-prefix-match routing for both address families."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.routes: list[Route] = []

    def add(self, network: str | IPNetwork, interface: str,
            gateway: str | IPAddress | None = None, origin: str = "static",
            metric: int = 0) -> Route:
        net = ipaddress.ip_network(network, strict=False)
        gw = ipaddress.ip_address(gateway) if isinstance(gateway, str) else gateway
        route = Route(net, interface, gw, origin, metric)
        self.routes.append(route)
        return route

    def remove(self, *, origin: str | None = None, interface: str | None = None,
               network: IPNetwork | None = None) -> list[Route]:
        gone = [r for r in self.routes
                if (origin is None or r.origin == origin)
                and (interface is None or r.interface == interface)
                and (network is None or r.network == network)]
        self.routes = [r for r in self.routes if r not in gone]
        return gone

    def connected(self) -> list[Route]:
        routes = []
        for iface in self.node.interfaces.values():
            if iface.link is None:
                continue
            for a in iface.addresses6:
                if not a.ip.is_link_local:
                    routes.append(Route(a.interface.network, iface.name, None, "connected"))
            for a4 in iface.addresses4:
                routes.append(Route(a4.network, iface.name, None, "connected"))
        return routes

    def all(self) -> list[Route]:
        return self.connected() + self.routes

    def lookup(self, dst: IPAddress) -> Route | None:
        """The most specific route to ``dst`` whose interface is attached, or None."""
        best: Route | None = None
        for route in self.all():
            if route.network.version != dst.version or dst not in route.network:
                continue
            iface = self.node.interfaces.get(route.interface)
            if iface is None or iface.link is None:
                continue
            if best is None or (route.network.prefixlen, -route.metric) > \
                    (best.network.prefixlen, -best.metric):
                best = route
        return best
