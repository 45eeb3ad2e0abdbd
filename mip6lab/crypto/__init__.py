"""Cryptographic transforms for ESP and IKEv2, all over `cryptography`.

- :mod:`mip6lab.crypto.esp_suites`: the ESP cipher suites;
- :mod:`mip6lab.crypto.ike`: IKEv2 proposals, PRF/prf+, the SK payload, key exchange,
  key derivation, AUTH and NAT detection.
"""

from . import esp_suites, ike
from .ike import (IkeKeys, Proposal, derive_child_keys, derive_ike_keys,
                  generate_key_exchange, parse_proposal, select_proposal)

__all__ = ["esp_suites", "ike", "IkeKeys", "Proposal", "derive_child_keys",
           "derive_ike_keys", "generate_key_exchange", "parse_proposal", "select_proposal"]
