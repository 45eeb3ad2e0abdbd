"""The Internet checksum of an upper-layer message over the IPv6 pseudo-header (RFC 8200
§8.1: source, destination, upper-layer length, next header), on bytes: what the byte
paths write into ICMPv6, Mobility Header and UDP messages and check on arrival. scapy's
own ``checksum`` does the summing (RFC 1071)."""

from __future__ import annotations

from scapy.utils import checksum


def ipv6_checksum(src: bytes, dst: bytes, next_header: int, message: bytes) -> int:
    """The checksum of ``message`` over the pseudo-header of the packed addresses ``src``
    and ``dst``: the value to write when its checksum field is zero, 0 when the field
    already holds the right one."""
    return checksum(src + dst + len(message).to_bytes(4, "big")
                    + bytes((0, 0, 0, next_header)) + message)
