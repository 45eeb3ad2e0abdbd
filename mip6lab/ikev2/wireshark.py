"""Wireshark's IKEv2 key table (``ikev2_decryption_table``) for our IKE SAs.

One line per IKE SA: SPIi, SPIr, SK_ei, SK_er, encryption algorithm, SK_ai, SK_ar,
integrity algorithm -- hex unquoted, algorithm names quoted with Wireshark's own
strings; AES-GCM keys include their salt and the integrity is "NONE" (RFC 5282).
With ``esp_sa`` beside it in a Wireshark configuration directory, tshark shows the
IDs, AUTH, CP, SA and TS payloads of IKE_AUTH and what the child SAs carry.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ..crypto.ike.transforms import (AUTH_HMAC_SHA2_256_128, AUTH_HMAC_SHA2_384_192,
                                     AUTH_HMAC_SHA2_512_256, ENCR_AES_CBC, ENCR_AES_GCM_16,
                                     TransformType)
from .sa import IkeSa

_INTEGRITY = {AUTH_HMAC_SHA2_256_128: "HMAC_SHA2_256_128 [RFC4868]",
              AUTH_HMAC_SHA2_384_192: "HMAC_SHA2_384_192 [RFC4868]",
              AUTH_HMAC_SHA2_512_256: "HMAC_SHA2_512_256 [RFC4868]"}


def ikev2_decryption_line(sa: IkeSa) -> str:
    """The table line of an IKE SA whose keys are derived."""
    proposal, keys = sa.proposal, sa.keys
    encryption = proposal.one(TransformType.ENCR)
    bits = encryption.key_length
    if encryption.id == ENCR_AES_GCM_16:
        cipher, integrity = f'"AES-GCM-{bits} with 16 octet ICV [RFC5282]"', '"NONE [RFC4306]"'
    elif encryption.id == ENCR_AES_CBC:
        cipher = f'"AES-CBC-{bits} [RFC3602]"'
        integrity = f'"{_INTEGRITY[proposal.one(TransformType.INTEG).id]}"'
    else:
        raise ValueError(f"Wireshark cannot decrypt IKE with {encryption}")
    return ",".join([sa.spi_i.hex(), sa.spi_r.hex(), keys.sk_ei.hex(), keys.sk_er.hex(),
                     cipher, keys.sk_ai.hex(), keys.sk_ar.hex(), integrity])


def write_ikev2_decryption_table(directory: str | os.PathLike, sas: Iterable[IkeSa]) -> str:
    """Write the table of every IKE SA that got keys into ``directory``; its path."""
    os.makedirs(directory, exist_ok=True)
    lines = dict.fromkeys(ikev2_decryption_line(sa) for sa in sas if sa.keys is not None)
    path = os.path.join(os.fspath(directory), "ikev2_decryption_table")
    with open(path, "w", encoding="ascii") as out:
        out.write("".join(line + "\n" for line in lines))
    return path
