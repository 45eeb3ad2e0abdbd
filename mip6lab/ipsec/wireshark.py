"""Wireshark's ESP key table (``esp_sa``), so that tshark decrypts what the lab sends.

One line per SA, in the order and quoting Wireshark's UAT file uses: protocol, source,
destination, SPI, encryption algorithm, encryption key, authentication algorithm,
authentication key. Keys are hex with ``0x``; GCM keys include their 4-byte salt. The
algorithm labels are Wireshark's own strings (in :mod:`mip6lab.crypto.esp_suites`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from .sad import SecurityAssociation


def esp_sa_line(sa: SecurityAssociation) -> str:
    spec = sa.cipher.spec
    family = "IPv6" if sa.dst.version == 6 else "IPv4"
    fields = [family, str(sa.src), str(sa.dst), f"0x{sa.spi:08x}",
              spec.wireshark_encryption, f"0x{sa.enc_key.hex()}",
              spec.wireshark_integrity, f"0x{sa.integ_key.hex()}"]
    return ",".join(f'"{value}"' for value in fields)


def esp_sa_table(sas: Iterable[SecurityAssociation]) -> str:
    """The ``esp_sa`` file's text for these SAs (larval ones have no keys: skipped)."""
    lines = [esp_sa_line(sa) for sa in sas if sa.state != "larval"]
    return "".join(line + "\n" for line in dict.fromkeys(lines))


def write_esp_sa(directory: str | os.PathLike, sas: Iterable[SecurityAssociation]) -> str:
    """Write ``esp_sa`` into a Wireshark configuration directory; its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(os.fspath(directory), "esp_sa")
    with open(path, "w", encoding="ascii") as out:
        out.write(esp_sa_table(sas))
    return path
