"""The Internet checksum on bytes (mip6lab.wire.checksum) against scapy's, which it
replaced on the byte paths: the same value for every length and content, the two
zeros of ones' complement (RFC 1071 §2(1)) included."""

from __future__ import annotations

import random

import pytest
from scapy.utils import checksum as scapy_checksum

from mip6lab.wire.checksum import internet_checksum, ipv6_checksum


@pytest.mark.parametrize("length", [0, 1, 2, 3, 8, 39, 40, 41, 100, 333, 1280, 1501])
def test_the_checksum_is_scapys_for_every_length(length):
    rng = random.Random(length)
    for _ in range(300):
        # runs of 0x00 and 0xFF make sums that fold to either zero
        data = bytes(rng.choice((0, 0xFF, rng.randrange(256))) for _ in range(length))
        assert internet_checksum(data) == scapy_checksum(data), data.hex()


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00", b"\xff", b"\xff\xff",
                                  b"\xff\xff" * 7, b"\xff\xfe\x00\x01", b"\x00\x01"])
def test_the_two_zeros(data):
    assert internet_checksum(data) == scapy_checksum(data)


def test_a_message_with_its_checksum_written_checks_to_zero():
    src = bytes.fromhex("20010db8" + "00" * 11 + "01")
    dst = bytes.fromhex("fe80" + "00" * 13 + "02")
    message = bytearray(b"\x87\x00\x00\x00" + bytes(range(60)))
    value = ipv6_checksum(src, dst, 58, bytes(message))
    message[2:4] = value.to_bytes(2, "big")
    assert ipv6_checksum(src, dst, 58, bytes(message)) == 0
