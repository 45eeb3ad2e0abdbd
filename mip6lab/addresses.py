"""Address values as every layer meets them: parsed once, formatted once.

:mod:`ipaddress` is exact but not cheap: parsing an IPv6 address's text costs ~10 us,
formatting one ~8 us, and ``ip_address()`` on an IPv6 text first fails as IPv4. A
registration names the same few addresses dozens of times, as text (IKE datagrams,
routes, selectors given by the coupling) and as objects (packets read from bytes). The
values are immutable, so one object and one text serve every caller.

The caches are bounded: a cache of the moment (the addresses of the exchanges in
progress), not a table that grows with the number of nodes. Any layer may import this
module; it imports nothing of the project.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

_ADDRESS_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address)
_NETWORK_TYPES = (ipaddress.IPv4Network, ipaddress.IPv6Network)
_INTERFACE_TYPES = (ipaddress.IPv4Interface, ipaddress.IPv6Interface)
_CACHEABLE = frozenset(_ADDRESS_TYPES + _NETWORK_TYPES + _INTERFACE_TYPES)
_CACHED = 4096


@functools.lru_cache(maxsize=_CACHED)
def _from_text(text: str) -> IPAddress:
    # the version from the text itself: ip_address() would try IPv4 first and fail
    return ipaddress.IPv6Address(text) if ":" in text else ipaddress.IPv4Address(text)


@functools.lru_cache(maxsize=_CACHED)
def _network_from_text(text: str) -> IPNetwork:
    return ipaddress.ip_network(text, strict=False)


@functools.lru_cache(maxsize=_CACHED)
def _interface_from_text(text: str):
    return ipaddress.IPv6Interface(text) if ":" in text else ipaddress.IPv4Interface(text)


def address(value: str | bytes | int | IPAddress) -> IPAddress:
    """``ipaddress.ip_address(value)``, without its cost on what is already an address,
    on packed bytes (4 octets IPv4, 16 IPv6) or on text met a moment ago. Raises
    ValueError as ``ip_address`` does."""
    if type(value) in _ADDRESS_TYPES:
        return value
    if type(value) is str:
        return _from_text(value)
    if isinstance(value, (bytes, bytearray)):
        if len(value) == 16:
            return ipaddress.IPv6Address(bytes(value))
        if len(value) == 4:
            return ipaddress.IPv4Address(bytes(value))
    return ipaddress.ip_address(value)


#: packed octets -> address object, for the addresses read off every packet (a datagram's,
#: a routed packet's destination, an IPsec selector's): the same few come back on every
#: message of a registration. A dict keyed by bytes hashes in C, where making an
#: ipaddress object is a Python call. Bounded, emptied when full.
_PACKED: dict[bytes, IPAddress] = {}


def from_packed(packed: bytes | bytearray | memoryview) -> IPAddress:
    """The address of 16 (IPv6) or 4 (IPv4) packed octets, one object per value of the
    moment; ValueError for another length, as :func:`address`."""
    if type(packed) is not bytes:
        packed = bytes(packed)          # a bytearray is no dictionary key
    found = _PACKED.get(packed)
    if found is None:
        if len(_PACKED) >= _CACHED:
            _PACKED.clear()
        found = _PACKED[packed] = address(packed)
    return found


def network(value: str | IPNetwork) -> IPNetwork:
    """``ipaddress.ip_network(value, strict=False)``, text met a moment ago reused."""
    if type(value) is str:
        return _network_from_text(value)
    if type(value) in _NETWORK_TYPES:
        return value
    return ipaddress.ip_network(value, strict=False)


def interface(value: str):
    """``ipaddress.ip_interface(value)`` ("address/prefix"), text met a moment ago reused."""
    if type(value) is str:
        return _interface_from_text(value)
    if type(value) in _INTERFACE_TYPES:
        return value
    return ipaddress.ip_interface(value)


def text(value) -> str:
    """``str(value)``: for an address, network or interface (RFC 5952 text for IPv6)
    made once per value of the moment; anything else (None, text, a peer's CP value
    that is a list) is simply ``str()``-ed."""
    if type(value) in _CACHEABLE:
        return _text(value)
    return str(value)


@functools.lru_cache(maxsize=_CACHED)
def _text(value: IPAddress | IPNetwork) -> str:
    return str(value)
