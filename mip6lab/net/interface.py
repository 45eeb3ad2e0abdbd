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

from .frames import (ALL_NODES, ALL_ROUTERS, SOLICITED_NODE_PREFIX, link_local_from_mac,
                     solicited_node)

if TYPE_CHECKING:
    from .link import Link
    from .node import Node

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

INFINITE = None  # a lifetime that never ends

_ADDRESS_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address)


#: text -> address or network already parsed: the same few addresses come back as text
#: on every message of a registration (the IKE daemon's peers, routes being added).
#: Bounded, and emptied when full: a cache of the moment, not a table that grows with
#: the number of nodes (addresses are immutable, so sharing one object is safe).
_PARSED: dict[tuple, object] = {}
_PARSED_MAX = 1024


def _parsed(text: str, network: bool):
    key = (text, network)
    found = _PARSED.get(key)
    if found is None:
        found = ipaddress.ip_network(text, strict=False) if network \
            else ipaddress.ip_address(text)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[key] = found
    return found


def _shared(network: IPNetwork) -> IPNetwork:
    """An equal network object met a moment ago, or ``network`` itself (kept for next
    time); in the same bounded cache as the parsed text."""
    key = (network.version, int(network.network_address), network.prefixlen)
    found = _PARSED.get(key)
    if found is None:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        found = _PARSED[key] = network
    return found


def as_address(value: str | bytes | int | IPAddress) -> IPAddress:
    """``ipaddress.ip_address(value)``, without its cost on what is already an address
    (it tries IPv4 first by formatting the object as text, then parses that text as
    IPv6), on packed bytes (4 octets IPv4, 16 IPv6), or on text parsed a moment ago:
    the per-packet paths have those."""
    if type(value) in _ADDRESS_TYPES:
        return value
    if isinstance(value, (bytes, bytearray)):
        if len(value) == 16:
            return ipaddress.IPv6Address(bytes(value))
        if len(value) == 4:
            return ipaddress.IPv4Address(bytes(value))
    if type(value) is str:
        return _parsed(value, False)
    return ipaddress.ip_address(value)


def as_network(value: str | IPNetwork) -> IPNetwork:
    """``ipaddress.ip_network(value, strict=False)``, text parsed a moment ago reused."""
    if type(value) is str:
        return _parsed(value, True)
    return ipaddress.ip_network(value, strict=False)


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
        if group == ALL_NODES or (joined is not None and group in joined):
            return True
        if group == ALL_ROUTERS:
            return self.node.forwarding
        value = int(group)
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
        want_link_local = dst.is_link_local or (dst.is_multicast and (dst.packed[1] & 0x0F) <= 2)
        candidates = [a for a in self.addresses6 if _is_link_local6(a.ip) == want_link_local]
        if not candidates:
            return None
        candidates.sort(key=lambda a: (not a.preferred(now), dst not in a.interface.network))
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

    def __post_init__(self) -> None:
        self.prefix, self.mask = _numbers(self.network)

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
        without making a Route object of every connected prefix for every packet: only
        the winner, if it is a connected one, is made."""
        interfaces = self.node.interfaces
        best_key: tuple[int, int] | None = None
        connected = None               # (network, interface name) of the best so far
        number, version = int(dst), dst.version
        for iface in interfaces.values():
            if iface.link is None:
                continue
            if version == 6:
                for a in iface.addresses6:
                    if number & a.mask != a.prefix:
                        continue
                    network = a.interface.network
                    if (best_key is None or network.prefixlen > best_key[0]) and \
                            not _is_link_local6(a.ip):
                        best_key, connected = (network.prefixlen, 0), (network, iface.name)
            else:
                for a4 in iface.addresses4:
                    network = a4.network
                    if (best_key is None or network.prefixlen > best_key[0]) and \
                            dst in network:
                        best_key, connected = (network.prefixlen, 0), (network, iface.name)
        best = Route(connected[0], connected[1], None, "connected") \
            if connected is not None else None
        for route in self.routes:
            if number & route.mask != route.prefix or route.network.version != version:
                continue
            iface = interfaces.get(route.interface)
            if iface is None or iface.link is None:
                continue
            key = (route.network.prefixlen, -route.metric)
            if best_key is None or key > best_key:
                best, best_key = route, key
        return best


def _is_link_local6(address: ipaddress.IPv6Address) -> bool:
    """fe80::/10 (RFC 4291 §2.5.6), without the network object ``is_link_local`` makes."""
    return int(address) >> 118 == 0x3FA
