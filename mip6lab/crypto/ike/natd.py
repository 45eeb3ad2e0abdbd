"""NAT detection (RFC 7296 §2.23): the hashes in NAT_DETECTION_SOURCE/DESTINATION_IP.

Each is ``SHA-1(SPIi | SPIr | IP | Port)`` over the address and UDP port the sender sees
for itself (source) or for the peer (destination): 4 or 16 address bytes, the port as two
bytes in network order. In the IKE_SA_INIT request SPIr is still zero. A receiver
recomputes them from the datagram's real addresses: a mismatch means a NAT rewrote that
side, and the endpoints then move to UDP 4500 and encapsulate ESP (RFC 3948).
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct

NAT_DETECTION_SOURCE_IP = 16388
NAT_DETECTION_DESTINATION_IP = 16389


_ADDRESS_TYPES = (ipaddress.IPv4Address, ipaddress.IPv6Address)
_PORT = struct.Struct("!H")


def nat_detection_data(spi_i: bytes, spi_r: bytes, address: str | ipaddress.IPv4Address
                       | ipaddress.IPv6Address, port: int) -> bytes:
    """The hashed input: SPIi | SPIr | IP | Port."""
    if len(spi_i) != 8 or len(spi_r) != 8:
        raise ValueError("IKE SPIs are 8 bytes each")
    packed = address.packed if isinstance(address, _ADDRESS_TYPES) \
        else ipaddress.ip_address(address).packed
    return b"".join((spi_i, spi_r, packed, _PORT.pack(int(port))))


def nat_detection_hash(spi_i: bytes, spi_r: bytes, address: str | ipaddress.IPv4Address
                       | ipaddress.IPv6Address, port: int) -> bytes:
    """SHA-1(SPIi | SPIr | IP | Port), 20 bytes (SHA-1 is what §2.23 fixes)."""
    # hashlib: the same OpenSSL SHA-1 as `cryptography`, without an object per digest
    return hashlib.sha1(nat_detection_data(spi_i, spi_r, address, port)).digest()
