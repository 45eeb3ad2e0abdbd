"""The Internet checksum of an upper-layer message over the IPv6 pseudo-header (RFC 8200
§8.1: source, destination, upper-layer length, next header), on bytes: what the byte
paths write into ICMPv6, Mobility Header and UDP messages and check on arrival.

The ones' complement sum of 16-bit words (RFC 1071) is taken on the whole message read
as one big-endian number: 2**16 is 1 modulo 0xFFFF, so the number modulo 0xFFFF is the
sum folded to 16 bits -- but for a nonzero sum that folds to 0xFFFF, which the modulo
gives as 0 (RFC 1071 §2(1): the two zeros of ones' complement). One division in C
instead of a Python pass over the words; the value is the one scapy's ``checksum``
gives for the same bytes."""

from __future__ import annotations


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum of ``data`` (an odd length padded with a zero byte), as the
    number to write big-endian in the message's checksum field."""
    number = int.from_bytes(data, "big")
    if len(data) & 1:
        number <<= 8
    folded = number % 0xFFFF
    if folded == 0 and number:
        folded = 0xFFFF
    return ~folded & 0xFFFF


def ipv6_checksum(src: bytes, dst: bytes, next_header: int, message: bytes) -> int:
    """The checksum of ``message`` over the pseudo-header of the packed addresses ``src``
    and ``dst``: the value to write when its checksum field is zero, 0 when the field
    already holds the right one."""
    return internet_checksum(src + dst + len(message).to_bytes(4, "big")
                             + bytes((0, 0, 0, next_header)) + message)
