"""Mobile IPv6 constants, Binding Acknowledgement status codes and sequence arithmetic.

One place for what both ends of a home registration share: the protocol constants of
RFC 6275 §12 and §13, the Binding Acknowledgement status codes of §6.1.8, the Lifetime
time unit of §6.1.7 (4 seconds), and the modulo-2**16 Sequence Number comparison of
§9.5.1. The home agent's rules are in :mod:`.binding_cache`, the mobile node's in
:mod:`.binding_update_list`.
"""

from __future__ import annotations

from enum import IntEnum

SECOND_US = 1_000_000
#: RFC 6275 §6.1.7: "one time unit is 4 seconds" (Lifetime field of BU and BA).
LIFETIME_UNIT_US = 4 * SECOND_US

#: RFC 6275 §12.
INITIAL_BINDACK_TIMEOUT_US = 1 * SECOND_US
MAX_BINDACK_TIMEOUT_US = 32 * SECOND_US
#: RFC 6275 §13 (configuration variable), used for the first registration (§11.8).
INITIAL_BINDACK_TIMEOUT_FIRST_REG_US = 1_500_000

SEQUENCE_MODULUS = 1 << 16
_HALF = SEQUENCE_MODULUS // 2


class BindingAckStatus(IntEnum):
    """Binding Acknowledgement Status values (RFC 6275 §6.1.8, RFC 5555 §8, RFC 4285 §8).

    144 has two meanings in the RFCs: IANA registered it as RFC 4285's
    MIPV6-ID-MISMATCH, and RFC 5555 §4.5's text reuses it for a refused F flag. Both are
    kept (the second name an alias of the first value); they never meet here, since
    DSMIP6 scenarios refuse the ``auth-option`` mode (``mobility/auth_option.py`` names
    RFC 4285's three codes itself in its trace)."""

    ACCEPTED = 0
    ACCEPTED_PREFIX_DISCOVERY_NECESSARY = 1
    REASON_UNSPECIFIED = 128
    ADMINISTRATIVELY_PROHIBITED = 129
    INSUFFICIENT_RESOURCES = 130
    HOME_REGISTRATION_NOT_SUPPORTED = 131
    NOT_HOME_SUBNET = 132
    NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE = 133
    DUPLICATE_ADDRESS_DETECTION_FAILED = 134
    SEQUENCE_NUMBER_OUT_OF_WINDOW = 135
    EXPIRED_HOME_NONCE_INDEX = 136
    EXPIRED_CARE_OF_NONCE_INDEX = 137
    EXPIRED_NONCES = 138
    REGISTRATION_TYPE_CHANGE_DISALLOWED = 139
    # RFC 5555 §4.5 / §8: the HA does not accept the F flag's forced UDP encapsulation
    FORCED_UDP_ENCAPSULATION_REFUSED = 144
    # RFC 4285 §6, §5.3, §8: timestamp invalid, replay option required, authentication
    MIPV6_ID_MISMATCH = 144
    MIPV6_MESG_ID_REQD = 145
    MIPV6_AUTH_FAIL = 146

    @property
    def accepted(self) -> bool:
        """§6.1.8: "Values of the Status field less than 128 indicate that the Binding
        Update was accepted"."""
        return self < 128


def next_sequence_number(sequence: int) -> int:
    """The Sequence Number after ``sequence``: a free-running counter modulo 2**16."""
    return (sequence + 1) % SEQUENCE_MODULUS


def sequence_number_greater(received: int, last: int) -> bool:
    """True if ``received`` is greater than ``last`` modulo 2**16 (RFC 6275 §9.5.1).

    §9.5.1: a number "is considered less than or equal to the last received number if
    its value lies in the range of the last received number and the preceding 32768
    values, inclusive" -- e.g. after 15, the values 0..15 and 32783..65535. Everything
    else (the 32767 values after ``last``) is greater.
    """
    if not (0 <= received < SEQUENCE_MODULUS and 0 <= last < SEQUENCE_MODULUS):
        raise ValueError("sequence numbers are 16-bit")
    return 0 < (received - last) % SEQUENCE_MODULUS < _HALF


def lifetime_units_to_us(units: int) -> int:
    return units * LIFETIME_UNIT_US
