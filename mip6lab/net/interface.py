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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from ..addresses import address as as_address, interface as ip_interface, network as as_network
from .frames import (ALL_NODES, ALL_ROUTERS, SOLICITED_NODE_PREFIX, link_local_from_mac,
                     solicited_node)

if TYPE_CHECKING:
    from .link import Link
    from .node import Node

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

_ALL_NODES, _ALL_ROUTERS = int(ALL_NODES), int(ALL_ROUTERS)   # ff02::1, ff02::2 as numbers

INFINITE = None  # a lifetime that never ends


#: network objects met a moment ago, by value: every link-local address is in fe80::/64,
#: every host of a link in its prefix, so they share one object. Bounded, and emptied
#: when full (networks are immutable, so sharing one object is safe).
_SHARED: dict[tuple, IPNetwork] = {}
_SHARED_MAX = 1024


def _shared(network: IPNetwork) -> IPNetwork:
    """An equal network object met a moment ago, or ``network`` itself (kept for next
    time)."""
    key = (network.version, int(network.network_address), network.prefixlen)
    found = _SHARED.get(key)
    if found is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        found = _SHARED[key] = network
    return found


#: A count of the changes that may change which cards pass a multicast group other than
#: a solicited-node one (:meth:`Interface.listens_to_mac`): a group of that kind joined
#: or left, a node's forwarding turned on or off. A link keeps, per group, which of its
#: stations hear it, and trusts it while this count (and its own stations) stay the same.
#: A solicited-node group depends on the interface's addresses as well: it is not kept.
LISTENING = [0]


def listening_changed() -> None:
    """Say that some card may now pass, or filter, a group it did not before."""
    LISTENING[0] += 1


def _numbers(network: IPNetwork) -> tuple[int, int]:
    """A network's address and mask as numbers: ``address in network`` is then
    ``int(address) & mask == prefix`` (same version)."""
    return int(network.network_address), int(network.netmask)


@dataclass(slots=True)
class Address6:
    """An IPv6 address on an interface (RFC 4862 terms)."""

    interface: ipaddress.IPv6Interface
    origin: str                        # "link-local", "static", "slaac"
    valid_until_us: int | None = INFINITE
    preferred_until_us: int | None = INFINITE
    # ``interface.ip`` makes a new address object at every call; every received frame
    # asks for it (is it ours?), so it is made once
    ip: ipaddress.IPv6Address = field(init=False, repr=False, compare=False)
    # and as a number, compared without ipaddress's __eq__ (a Python call per address)
    number: int = field(init=False, repr=False, compare=False)
    prefix: int = field(init=False, repr=False, compare=False)     # its network's, and
    mask: int = field(init=False, repr=False, compare=False)       # mask, as numbers
    # its prefix length, or -1 for a link-local address (fe80::/10, RFC 4291 §2.5.6):
    # what the route lookup asks of each address of each interface, for every packet
    routing_prefixlen: int = field(init=False, repr=False, compare=False)
    # the connected route of its prefix, made when the route lookup first returns it
    # (a router returns it for every packet it forwards onto the link), not per packet
    connected_route: Route | None = field(default=None, init=False, repr=False,
                                          compare=False)

    def __post_init__(self) -> None:
        interface = self.interface
        self.ip = interface.ip
        self.number = int(self.ip)
        # every link-local address is in fe80::/64, every host of a link in its prefix:
        # one network object each, not one per address (an equal one, so nothing changes)
        network = _shared(interface.network)
        if network is not interface.network:
            interface.network, interface.netmask = network, network.netmask
        self.prefix, self.mask = _numbers(network)
        self.routing_prefixlen = -1 if self.number >> 118 == 0x3FA else network.prefixlen

    def preferred(self, now_us: int) -> bool:
        return self.preferred_until_us is None or now_us < self.preferred_until_us


class Interface:
    """A network interface of a node."""

    def __init__(self, node: Node, name: str, mac: str) -> None:
        self.node = node
        self.name = name
        self.mac = mac
        self.link: Link | None = None
        # made from numbers, not text; the address object is the Address6's own (one
        # object per interface: every node has one or more, a lab thousands)
        link_local = Address6(ipaddress.IPv6Interface((int(link_local_from_mac(mac)), 64)),
                              "link-local")
        self.link_local = link_local.ip
        self.addresses6: list[Address6] = [link_local]
        self.addresses4: list[ipaddress.IPv4Interface] = []
        self.mac_bytes = bytes.fromhex(mac.replace(":", ""))
        self._joined: MulticastGroups | None = None     # see joined

    @property
    def joined(self) -> MulticastGroups:
        """Groups joined for addresses the node answers for without holding them (a home
        agent's proxy ND listens to each home address's solicited-node group); made
        when first asked for, as most interfaces never join one."""
        if self._joined is None:
            self._joined = MulticastGroups()
        return self._joined

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
            number = int(address)
            for a in self.addresses6:
                if a.number == number:
                    return True
            return False
        return any(a.ip == address for a in self.addresses4)

    def find6(self, address: ipaddress.IPv6Address) -> Address6 | None:
        if not isinstance(address, ipaddress.IPv6Address):
            return None             # what comparing with each IPv6 address would find
        number = int(address)
        for a in self.addresses6:
            if a.number == number:
                return a
        return None

    def add_address(self, text: str, origin: str = "static") -> None:
        """Add a static address written as ``"2001:db8::1/64"`` or ``"192.0.2.1/24"``."""
        iface = ip_interface(text)
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
        groups = {ALL_NODES} | {solicited_node(a.ip) for a in self.addresses6}
        if self._joined:
            groups.update(self._joined)
        if self.node.forwarding:
            groups.add(ALL_ROUTERS)
        return groups

    # The two tests below answer what ``groups6()`` would, without building it: a home
    # agent's interface has joined a group per home address, and every multicast frame
    # on the home link is tested.

    def listens_to(self, group: ipaddress.IPv6Address) -> bool:
        """Whether ``group`` is one of :meth:`groups6`."""
        joined = self._joined
        value = group._ip                  # int(group), compared as numbers below
        if value == _ALL_NODES or (joined is not None and group in joined):
            return True
        if value == _ALL_ROUTERS:
            return self.node.forwarding
        if value >> 24 != SOLICITED_NODE_PREFIX >> 24:
            return False
        low = value & 0xFFFFFF     # RFC 4291 §2.7.1: the address's low 24 bits
        return any(a.number & 0xFFFFFF == low for a in self.addresses6)

    def listens_to_mac(self, low32: int) -> bool:
        """Whether the network card passes a frame for ``33:33:`` + ``low32`` (RFC 2464
        §7): some group of :meth:`groups6` has those low 32 bits."""
        joined = self._joined
        if low32 == 1 or (joined is not None and low32 in joined.low32):   # 1: ff02::1
            return True
        if low32 == 2:
            return self.node.forwarding
        if low32 >> 24 != 0xFF:                           # solicited-node: 33:33:ff:...
            return False
        low = low32 & 0xFFFFFF
        return any(a.number & 0xFFFFFF == low for a in self.addresses6)

    def source_for(self, dst: IPAddress) -> IPAddress | None:
        """Source address selection, simplified from RFC 6724: same family, same scope,
        a preferred address before a deprecated one, a matching prefix first."""
        now = self.node.sim.now_us
        if dst.version == 4:
            for a in self.addresses4:
                if dst in a.network:
                    return a.ip
            return self.addresses4[0].ip if self.addresses4 else None
        # read off the number (ipaddress's is_link_local, is_multicast and ``in network``
        # are Python calls each): fe80::/10, or a multicast of scope 1 or 2 (RFC 4291
        # §2.7, the low 4 bits of the second byte); an address's network as numbers
        number = dst._ip
        want_link_local = number >> 118 == 0x3FA or (number >> 120 == 0xFF
                                                     and (number >> 112) & 0x0F <= 2)
        candidates = [a for a in self.addresses6
                      if (a.number >> 118 == 0x3FA) == want_link_local]
        if not candidates:
            return None
        candidates.sort(key=lambda a: (not a.preferred(now), number & a.mask != a.prefix))
        return candidates[0].ip


class MulticastGroups(set):
    """A set of IPv6 multicast groups that also counts their Ethernet filters (the low 32
    bits of each group, RFC 2464 §7) in :attr:`low32`, kept up to date by every method
    that changes the set."""

    __slots__ = ("low32",)

    def __init__(self, groups=()) -> None:
        super().__init__()
        self.low32: dict[int, int] = {}
        self.update(groups)

    def _count(self, group, step: int) -> None:
        key = int(group) & 0xFFFFFFFF
        left = self.low32.get(key, 0) + step
        if left:
            self.low32[key] = left
        else:
            self.low32.pop(key, None)
        if key >> 24 != 0xFF:       # not a solicited-node filter: see LISTENING
            listening_changed()

    def add(self, group) -> None:
        if group not in self:
            super().add(group)
            self._count(group, 1)

    def discard(self, group) -> None:
        if group in self:
            super().discard(group)
            self._count(group, -1)

    def remove(self, group) -> None:
        if group not in self:
            raise KeyError(group)
        self.discard(group)

    def pop(self):
        group = super().pop()
        self._count(group, -1)
        return group

    def clear(self) -> None:
        super().clear()
        self.low32.clear()
        listening_changed()

    def update(self, *others) -> None:
        for other in others:
            for group in other:
                self.add(group)

    def difference_update(self, *others) -> None:
        for other in others:
            for group in list(other):
                self.discard(group)

    def intersection_update(self, *others) -> None:
        keep = set(self).intersection(*others)
        self.difference_update([g for g in self if g not in keep])

    def symmetric_difference_update(self, other) -> None:
        for group in set(other):
            if group in self:
                self.discard(group)
            else:
                self.add(group)

    def __ior__(self, other):
        self.update(other)
        return self

    def __isub__(self, other):
        self.difference_update(other)
        return self

    def __iand__(self, other):
        self.intersection_update(other)
        return self

    def __ixor__(self, other):
        self.symmetric_difference_update(other)
        return self


@dataclass(slots=True)
class Route:
    """A route: destinations in ``network`` leave by ``interface``, via ``gateway``."""

    network: IPNetwork
    interface: str
    gateway: IPAddress | None = None
    origin: str = "static"   # "static", "connected", "ra"
    metric: int = 0
    # the network as numbers, for the lookup: ``dst in network`` without its Python calls
    prefix: int = field(init=False, repr=False, compare=False)
    mask: int = field(init=False, repr=False, compare=False)
    version: int = field(init=False, repr=False, compare=False)
    prefixlen: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        network = self.network
        self.prefix, self.mask = _numbers(network)
        self.version, self.prefixlen = network.version, network.prefixlen

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
        net = as_network(network)
        gw = as_address(gateway) if isinstance(gateway, str) else gateway
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
        """The most specific route to ``dst`` whose interface is attached, or None.

        The routes of :meth:`all`, in its order (the first of equally good ones wins),
        without making a Route object of every connected prefix for every packet: the
        winner, if it is a connected IPv6 one, is the one its address keeps; an IPv4 one
        is made."""
        interfaces = self.node.interfaces
        best_key: tuple[int, int] | None = None
        connected = None   # (address or network, interface name) of the best so far
        # the number ``int(dst)`` returns, read without its call (35 lookups per MN)
        number, version = dst._ip, dst.version
        best = None
        if version == 6:
            best_len = -1              # a link-local address (-1) is no connected route
            for iface in interfaces.values():
                if iface.link is None:
                    continue
                for a in iface.addresses6:
                    if a.routing_prefixlen > best_len and number & a.mask == a.prefix:
                        best_len, connected = a.routing_prefixlen, (a, iface.name)
            if connected is not None:
                best_key = (best_len, 0)
                best = _connected_route(*connected)
        else:
            for iface in interfaces.values():
                if iface.link is None:
                    continue
                for a4 in iface.addresses4:
                    network = a4.network
                    if (best_key is None or network.prefixlen > best_key[0]) and \
                            dst in network:
                        best_key, connected = (network.prefixlen, 0), (network, iface.name)
            if connected is not None:
                best = Route(connected[0], connected[1], None, "connected")
        for route in self.routes:
            if number & route.mask != route.prefix or route.version != version:
                continue
            if best_key is not None and route.prefixlen < best_key[0]:
                continue               # less specific than the best: never the winner
            iface = interfaces.get(route.interface)
            if iface is None or iface.link is None:
                continue
            key = (route.prefixlen, -route.metric)
            if best_key is None or key > best_key:
                best, best_key = route, key
        return best


def _connected_route(address: Address6, ifname: str) -> Route:
    """The connected route of ``address``'s prefix on interface ``ifname``: made once
    per address and kept (a route is not changed once made)."""
    route = address.connected_route
    if route is None or route.interface != ifname:
        route = address.connected_route = Route(address.interface.network, ifname, None,
                                                "connected")
    return route
