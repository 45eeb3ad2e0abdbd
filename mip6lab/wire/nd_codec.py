"""Neighbor Discovery messages a node sends, written with ``struct`` (RFC 4861 §4).

The hosts and routers of a lab send Router Solicitations, Neighbor Solicitations and
Neighbor Advertisements by the thousand at scale (every MN solicits, announces its
care-of address, is resolved by its router). scapy builds each in about a millisecond;
here each is a few ``struct`` calls. They are octet for octet what the same scapy
layers build -- ``IPv6(src, dst, hlim=255) / ICMPv6ND_* / ICMPv6NDOpt*LLAddr``, which
the trace at level ``full`` and the notebooks show -- as ``tests/test_nd_codec.py``
checks with hypothesis.

Every message here goes with hop limit 255 (§7.1.1, §6.1.1: a receiver drops anything
else) and carries the sender's link-layer address option (§4.6.1).
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from .checksum import ipv6_checksum

__all__ = ["NdMessage", "PrefixInformation", "neighbor_advertisement", "neighbor_solicitation",
           "read_nd", "router_solicitation"]

_IPV6 = struct.Struct("!IHBB16s16s")
ICMPV6 = 58
RS, NS, NA = 133, 135, 136
OPT_SOURCE_LLADDR, OPT_TARGET_LLADDR = 1, 2
NA_R, NA_S, NA_O = 0x80, 0x40, 0x20          # §4.4 flags


def _packed(address) -> bytes:
    if isinstance(address, bytes):
        return address
    if isinstance(address, str):
        address = ipaddress.IPv6Address(address)
    return address.packed


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _icmpv6(src: bytes, dst: bytes, message: bytearray) -> bytes:
    """IPv6 header (hop limit 255) + the ICMPv6 message with its checksum (RFC 4443
    §2.3, over the pseudo-header of RFC 8200 §8.1)."""
    message[2:4] = ipv6_checksum(src, dst, ICMPV6, bytes(message)).to_bytes(2, "big")
    return _IPV6.pack(0x60000000, len(message), ICMPV6, 255, src, dst) + bytes(message)


def neighbor_advertisement(src, dst, target, mac: str, *, r: bool = False,
                           s: bool = False, o: bool = False) -> bytes:
    """``IPv6(src, dst, hlim=255) / ICMPv6ND_NA(tgt, R, S, O) / DstLLAddr(mac)``
    (RFC 4861 §4.4, the Target Link-Layer Address option §4.6.1)."""
    flags = (NA_R if r else 0) | (NA_S if s else 0) | (NA_O if o else 0)
    message = bytearray(struct.pack("!BBHB3x16sBB6s", NA, 0, 0, flags, _packed(target),
                                    OPT_TARGET_LLADDR, 1, _mac(mac)))
    return _icmpv6(_packed(src), _packed(dst), message)


def neighbor_solicitation(src, dst, target, mac: str) -> bytes:
    """``IPv6(src, dst, hlim=255) / ICMPv6ND_NS(tgt) / SrcLLAddr(mac)`` (RFC 4861 §4.3)."""
    message = bytearray(struct.pack("!BBH4x16sBB6s", NS, 0, 0, _packed(target),
                                    OPT_SOURCE_LLADDR, 1, _mac(mac)))
    return _icmpv6(_packed(src), _packed(dst), message)


def router_solicitation(src, dst, mac: str) -> bytes:
    """``IPv6(src, dst, hlim=255) / ICMPv6ND_RS() / SrcLLAddr(mac)`` (RFC 4861 §4.1)."""
    message = bytearray(struct.pack("!BBH4xBB6s", RS, 0, 0, OPT_SOURCE_LLADDR, 1,
                                    _mac(mac)))
    return _icmpv6(_packed(src), _packed(dst), message)


# -- reading (RFC 4861 §4.2-§4.4, §4.6) ---------------------------------------------------

#: the option types read here and the one length (in 8-octet units) each may have
_OPTION_LENGTHS = {1: 1, 2: 1, 3: 4, 5: 1, 7: 1}
#: the fixed part of each message read here (§4.2, §4.3, §4.4)
_FIXED = {134: 16, 135: 24, 136: 24}


class PrefixInformation:
    """A Prefix Information option (§4.6.2), with the field names of scapy's
    ``ICMPv6NDOptPrefixInfo`` (``prefix`` as the text scapy gives)."""

    __slots__ = ("prefixlen", "L", "A", "validlifetime", "preferredlifetime", "prefix")

    def __init__(self, option: bytes) -> None:
        (self.prefixlen, flags, self.validlifetime, self.preferredlifetime,
         packed) = struct.unpack_from("!xxBBII4x16s", option)
        self.L, self.A = flags >> 7, (flags >> 6) & 1
        self.prefix = socket.inet_ntop(socket.AF_INET6, packed)


class NdMessage:
    """An RA, NS or NA read off its bytes: what a host or router uses of it. The first
    Source and Target Link-Layer Address options count (as ``pkt[option]`` in scapy)."""

    __slots__ = ("type", "source", "hop_limit", "router_lifetime", "target",
                 "source_lladdr", "target_lladdr", "prefixes")

    def __init__(self, l3: bytes) -> None:
        self.type = l3[40]
        self.hop_limit = l3[7]
        self.source = l3[8:24]
        self.router_lifetime = int.from_bytes(l3[46:48], "big") if self.type == 134 else 0
        self.target = l3[48:64] if self.type != 134 else None
        self.source_lladdr = self.target_lladdr = None
        self.prefixes: list[PrefixInformation] = []


def read_nd(l3: bytes) -> NdMessage | None:
    """An RA, NS or NA straight after the IPv6 header, read off the bytes; None for
    anything else or anything unusual -- an option of another type, of another length
    than its type's, or running past the end -- which the caller leaves to scapy's
    dissection, as before. The ICMPv6 checksum is not checked here."""
    if len(l3) < 44 or l3[6] != ICMPV6:
        return None
    fixed = _FIXED.get(l3[40])
    if fixed is None or len(l3) < 40 + fixed:
        return None
    message = NdMessage(l3)
    i, end = 40 + fixed, len(l3)
    while i < end:
        if i + 2 > end:
            return None
        otype, olen = l3[i], l3[i + 1]
        if _OPTION_LENGTHS.get(otype) != olen or i + 8 * olen > end:
            return None
        if otype == 1 and message.source_lladdr is None:
            message.source_lladdr = l3[i + 2:i + 8].hex(":")
        elif otype == 2 and message.target_lladdr is None:
            message.target_lladdr = l3[i + 2:i + 8].hex(":")
        elif otype == 3:
            message.prefixes.append(PrefixInformation(l3[i:i + 32]))
        i += 8 * olen
    return message
