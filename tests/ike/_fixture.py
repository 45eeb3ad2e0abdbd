"""The strongSwan 5.9.8 pair fixture as the IKE crypto tests read it: charon's logged keys,
the IKE messages of pair.pcapng, and a minimal reader of IKEv2 payload chains.

The payload reader is deliberately tiny and independent of mip6lab (RFC 7296 §3.2 generic
header, §3.3 SA payload): it is the tests' own view of the wire."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.utils import rdpcap

from mip6lab.crypto.ike import Proposal, Transform
from mip6lab.testing.strongswan import CharonKeys, HexDump, parse_charon_log, parse_hexdumps

DATA = Path(__file__).resolve().parent.parent / "data" / "strongswan-5.9.8-pair"
PSK = b"mip6lab-psk-0123456789"

# Payload types (RFC 7296 §3.2)
SA, KE, IDI, IDR, AUTH, NONCE, NOTIFY, DELETE, TSI, TSR, SK, CP = (
    33, 34, 35, 36, 39, 40, 41, 42, 44, 45, 46, 47)
IKE_SA_INIT, IKE_AUTH, INFORMATIONAL = 34, 35, 37
FLAG_INITIATOR, FLAG_RESPONSE = 0x08, 0x20


@functools.lru_cache(maxsize=None)
def log_text(side: str) -> str:
    return (DATA / f"{side}-charon.log").read_text()


@functools.lru_cache(maxsize=None)
def charon_keys(side: str) -> CharonKeys:
    return parse_charon_log(log_text(side))


@functools.lru_cache(maxsize=None)
def hexdumps(side: str) -> tuple[HexDump, ...]:
    return tuple(parse_hexdumps(log_text(side)))


@dataclass(frozen=True)
class IkeMessage:
    frame: int
    src: str
    dst: str
    sport: int
    dport: int
    data: bytes  # the IKE message, non-ESP marker removed

    @property
    def spi_i(self) -> bytes:
        return self.data[:8]

    @property
    def spi_r(self) -> bytes:
        return self.data[8:16]

    @property
    def exchange(self) -> int:
        return self.data[18]

    @property
    def flags(self) -> int:
        return self.data[19]

    @property
    def from_initiator(self) -> bool:
        return bool(self.flags & FLAG_INITIATOR)

    @property
    def response(self) -> bool:
        return bool(self.flags & FLAG_RESPONSE)


@functools.lru_cache(maxsize=None)
def ike_messages() -> tuple[IkeMessage, ...]:
    """Every IKE message of pair.pcapng (UDP 500, and UDP 4500 with the non-ESP marker)."""
    out = []
    for frame, packet in enumerate(rdpcap(str(DATA / "pair.pcapng"))):
        if UDP not in packet:
            continue
        udp = packet[UDP]
        payload = bytes(udp.payload)
        if 4500 in (udp.sport, udp.dport):
            if payload[:4] != bytes(4):
                continue  # ESP
            payload = payload[4:]
        elif 500 not in (udp.sport, udp.dport):
            continue
        ip = packet[IPv6] if IPv6 in packet else packet[IP]
        out.append(IkeMessage(frame, ip.src, ip.dst, udp.sport, udp.dport, payload))
    return tuple(out)


def payload_chain(first: int, data: bytes) -> list[tuple[int, bytes]]:
    """(type, body) of each payload of a chain (generic headers removed)."""
    out, next_payload, offset = [], first, 0
    while next_payload:
        length = int.from_bytes(data[offset + 2:offset + 4], "big")
        assert length >= 4 and offset + length <= len(data), "broken payload chain"
        out.append((next_payload, bytes(data[offset + 4:offset + length])))
        next_payload, offset = data[offset], offset + length
    assert offset == len(data), "bytes after the last payload"
    return out


def message_payloads(message: bytes) -> list[tuple[int, bytes]]:
    length = int.from_bytes(message[24:28], "big")
    return payload_chain(message[16], message[28:length])


def sa_proposals(body: bytes) -> list[Proposal]:
    """The proposals of an SA payload body (RFC 7296 §3.3.1-3.3.5)."""
    proposals, offset = [], 0
    while offset < len(body):
        last, length = body[offset], int.from_bytes(body[offset + 2:offset + 4], "big")
        number, protocol, spi_size, count = body[offset + 4:offset + 8]
        spi = body[offset + 8:offset + 8 + spi_size]
        transforms, t_off = [], offset + 8 + spi_size
        for _ in range(count):
            t_len = int.from_bytes(body[t_off + 2:t_off + 4], "big")
            t_type, t_id = body[t_off + 4], int.from_bytes(body[t_off + 6:t_off + 8], "big")
            key_length = None
            attrs = body[t_off + 8:t_off + t_len]
            if attrs[:2] == b"\x80\x0e":  # TV Key Length
                key_length = int.from_bytes(attrs[2:4], "big")
            transforms.append(Transform(t_type, t_id, key_length))
            t_off += t_len
        assert t_off == offset + length
        proposals.append(Proposal.from_transforms(protocol, transforms, number, spi))
        offset += length
        if last == 0:
            break
    return proposals
