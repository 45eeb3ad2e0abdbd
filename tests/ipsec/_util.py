"""Shared builders for the IPsec tests: keyed SA pairs and test packets (made with scapy)."""

from __future__ import annotations

import itertools
from pathlib import Path

from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import HAO, ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt

from mip6lab.crypto.esp_suites import SUITES, suite_spec
from mip6lab.ipsec.sad import SecurityAssociation, SecurityAssociationDatabase

DATA = Path(__file__).resolve().parent.parent / "data"
STRONGSWAN = DATA / "strongswan-5.9.8-pair"

ALL_SUITES = ("aes128gcm16", "aes256gcm16", "aes128-sha256", "aes256-sha256", "null-sha256")
assert set(ALL_SUITES) == set(SUITES)

# Addresses: a mobile node (home address, care-of address) and a home agent.
MN6, HA6, CN6 = "2001:db8:1::10", "2001:db8:2::1", "2001:db8:3::30"
HOA6, COA6 = "2001:db8:100::10", "2001:db8:c0a::10"
MN4, HA4, CN4 = "192.0.2.10", "198.51.100.1", "203.0.113.30"

_counter = itertools.count(1)


def keys(suite: str, tag: int = 0) -> tuple[bytes, bytes]:
    """Deterministic (encryption key, integrity key) of the right lengths for ``suite``."""
    spec = suite_spec(suite)
    enc = bytes((tag * 7 + i * 13 + 1) & 0xFF for i in range(spec.enc_key_len))
    integ = bytes((tag * 5 + i * 11 + 3) & 0xFF for i in range(spec.integ_key_len))
    return enc, integ


def sa_pair(suite: str = "aes128gcm16", src: str = MN6, dst: str = HA6, *,
            spi: int | None = None, mode: str = "transport", **kw):
    """(outbound SA, inbound SAD, inbound SA): the two ends of one direction."""
    spi = spi if spi is not None else 0x1000 + next(_counter)
    enc, integ = keys(suite, spi & 0xFF)
    out = SecurityAssociation(spi, "out", src, dst, suite, enc, integ, mode=mode, **kw)
    inb = SecurityAssociation(spi, "in", src, dst, suite, enc, integ, mode=mode, **kw)
    sad = SecurityAssociationDatabase()
    sad.add(inb)
    return out, sad, inb


def iv_for(sa: SecurityAssociation) -> bytes:
    """An IV of the suite's size; CBC needs one, GCM derives its own from the sequence."""
    size = sa.cipher.spec.iv_size
    return bytes((sa.seq * 31 + i * 7 + 0x5A) & 0xFF for i in range(size))


def udp6(src: str = MN6, dst: str = HA6, payload: bytes = b"hello over ESP",
         sport: int = 40000, dport: int = 9) -> bytes:
    return bytes(IPv6(src=src, dst=dst, hlim=64) / UDP(sport=sport, dport=dport) / payload)


def udp4(src: str = MN4, dst: str = HA4, payload: bytes = b"hello over ESP",
         sport: int = 40000, dport: int = 9) -> bytes:
    return bytes(IP(src=src, dst=dst, ttl=64, id=7) / UDP(sport=sport, dport=dport) / payload)


def echo6(src: str = MN6, dst: str = CN6, seq: int = 1) -> bytes:
    return bytes(IPv6(src=src, dst=dst) / ICMPv6EchoRequest(id=0x42, seq=seq, data=b"ping6"))


def echo4(src: str = MN4, dst: str = CN4, seq: int = 1) -> bytes:
    return bytes(IP(src=src, dst=dst, id=9) / ICMP(id=0x42, seq=seq) / b"ping4")


def hao_udp6(coa: str = COA6, hoa: str = HOA6, dst: str = HA6) -> bytes:
    """A packet from the CoA carrying the HoA in a Home Address option (RFC 6275 §6.3)."""
    return bytes(IPv6(src=coa, dst=dst) / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)])
                 / UDP(sport=40000, dport=9) / b"with a home address")


def ipv6_chain(packet: bytes) -> list[int]:
    """The next-header values of an IPv6 packet's header chain, up to ESP/upper layer."""
    chain, nh, offset = [packet[6]], packet[6], 40
    while nh in (0, 43, 44, 60):
        length = 8 if nh == 44 else (packet[offset + 1] + 1) * 8
        nh = packet[offset]
        chain.append(nh)
        offset += length
    return chain


def esp_offset(packet: bytes) -> int:
    """Offset of the ESP header (direct or in UDP) in an IPv6/IPv4 packet we built."""
    from mip6lab.ipsec.esp import locate_esp

    return locate_esp(packet)[0]
