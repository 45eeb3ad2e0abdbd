"""ESP encrypt + decrypt of 1400-byte packets with AES-GCM-128.

Three measurements on the same payloads in one run:

- the floor: `cryptography`'s AESGCM encrypting and decrypting the payload directly;
- mip6lab's ESP processing, ``seal`` + ``unseal`` (RFC 4303 §3.3/§3.4: sequence
  number, padding and trailer, IV, AEAD, anti-replay window, trailer checks) on the
  1400-byte payload -- what the targets are about;
- the same inside whole IPv6 packets, ``encapsulate`` + ``decapsulate`` (transport mode:
  header insertion, SPI lookup, packet rebuilt), for information;
- scapy's ``SecurityAssociation`` doing encrypt + decrypt of the same packet.

Targets (the IPsec issue): ESP processing at least 0.5 x the floor, and at least 100 x
scapy.
"""

from __future__ import annotations

import os

from common import Result, best_rate
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from scapy.layers.inet6 import IPv6
from scapy.layers.inet import UDP
from scapy.layers.ipsec import SecurityAssociation as ScapySA
from scapy.layers.ipsec import ESP

from mip6lab.ipsec.esp import decapsulate, encapsulate, seal, unseal
from mip6lab.ipsec.sad import SecurityAssociation, SecurityAssociationDatabase

N = 20_000
N_SCAPY = 300
KEY = bytes(range(20))  # 16-byte AES key + 4-byte salt
SRC, DST = "2001:db8:1::1", "2001:db8:1::2"
PAYLOAD = os.urandom(1400)                      # what ESP protects
PACKET = bytes(IPv6(src=SRC, dst=DST) / UDP(sport=1000, dport=2000) / os.urandom(1352))  # 1400 B


def _raw() -> int:
    aead = AESGCM(KEY[:16])
    aad = b"\x00\x00\x10\x00\x00\x00\x00\x01"
    for i in range(N):
        nonce = KEY[16:] + i.to_bytes(8, "big")
        aead.decrypt(nonce, aead.encrypt(nonce, PAYLOAD, aad), aad)
    return N


def _esp() -> int:
    out = SecurityAssociation(0x1000, "out", SRC, DST, "aes128gcm16", KEY)
    inbound = SecurityAssociation(0x1000, "in", SRC, DST, "aes128gcm16", KEY)
    for _ in range(N):
        unseal(inbound, seal(out, PAYLOAD, 17))
    return N


def _ours() -> int:
    out = SecurityAssociation(0x1000, "out", SRC, DST, "aes128gcm16", KEY)
    sad = SecurityAssociationDatabase()
    sad.add(SecurityAssociation(0x1000, "in", SRC, DST, "aes128gcm16", KEY))
    for _ in range(N):
        decapsulate(sad, encapsulate(out, PACKET))
    return N


def _scapy() -> int:
    sa_out = ScapySA(ESP, spi=0x1000, crypt_algo="AES-GCM", crypt_key=KEY)
    sa_in = ScapySA(ESP, spi=0x1000, crypt_algo="AES-GCM", crypt_key=KEY)
    packet = IPv6(PACKET)
    for i in range(N_SCAPY):
        sa_in.decrypt(sa_out.encrypt(packet, seq_num=i + 1))
    return N_SCAPY


def run() -> list[Result]:
    raw = best_rate(_raw)
    esp = best_rate(_esp)
    ours = best_rate(_ours)
    scapy = best_rate(_scapy, repeat=3)
    return [
        Result("raw AESGCM encrypt+decrypt (floor)", raw, "packets/s"),
        Result("scapy SecurityAssociation", scapy, "packets/s", "raw AESGCM", raw),
        Result("mip6lab ESP seal+unseal", esp, "packets/s", "raw AESGCM", raw,
               target=">= 0.5 x raw"),
        Result("mip6lab ESP seal+unseal vs scapy", esp, "packets/s", "scapy", scapy,
               target=">= 100 x scapy"),
        Result("mip6lab IPv6 encapsulate+decapsulate", ours, "packets/s", "raw AESGCM",
               raw),
    ]
