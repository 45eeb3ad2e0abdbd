"""RFC 4285 / RFC 4283 wire formats: the Binding Update authenticated without IPsec.

scapy 2.8 already declares the three options (``scapy.layers.inet6``): the Mobile Node
Identifier option ``MIP6OptMNID`` (RFC 4283 §3, type 8, no alignment), the Mobility
Message Authentication option ``MIP6OptMsgAuth`` (RFC 4285 §5, type 9, 4n+1) and the
Mobility Message Replay Protection option ``MIP6OptReplayProtection`` (RFC 4285 §6,
type 10, 8n+2), and dispatches them inside any Mobility Header. This module keeps
them and only fixes what is wrong for the course:

* :class:`MIP6OptMobilityAuth`: scapy's option with an all-zero Authentication Data by
  default (the value it holds while the authenticator is computed; scapy puts
  ``"AAAA..."`` there) and the subtype names of RFC 4285 §8.
* :class:`MIP6OptReplayProtectionNTP`: scapy's option whose timestamp shows the right
  date (scapy's ``NTPTimestampField`` counts from a wrong epoch, off by a day).

Both replace scapy's classes in the option dispatch (``match_subclass``, so
``MIP6OptMsgAuth in pkt`` still finds them), as :mod:`mip6lab.wire.mip6` does for the
BU's F flag. The strict validator of :mod:`mip6lab.wire.mip6` learns the three types'
lengths and alignments here.

Then the computation of RFC 4285 §5.1 and what both ends need around it:

* :func:`mobility_data` / :func:`authenticator`: "Authentication Data = First (96,
  HMAC_SHA1(MN-HA Shared key, Mobility Data))", "Mobility Data = care-of address | home
  address | Mobility Header (MH) Data", MH Data up to and including the SPI, checksum 0.
* :func:`read_authentication`: the options of an authenticated BU or BA, checked (the
  MN-HA option last, once; the MN-ID before it, RFC 4283 §3.2).
* :func:`add_authentication`: a built BU or BA with MN-ID, replay protection and the
  MN-HA option appended, the authenticator computed by a signer, the checksum redone.
* :func:`ntp_timestamp` / :func:`ntp_seconds`: the 64-bit NTP format of RFC 1305 that
  §6 puts in the Timestamp field.

Which care-of and home address: for a BU, the IPv6 source and the Home Address option
(the source when there is none: a deregistration from home, RFC 6275 §11.5.5); for a
BA, the IPv6 destination and the type 2 routing header's address (the destination
when there is none). So both messages of one registration are computed over the same
two addresses, as the MN and the HA each know them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass
from time import gmtime, strftime

from scapy.fields import ByteEnumField, ByteField, FieldLenField, IntField, LongField, StrLenField
from scapy.layers import inet6
from scapy.layers.inet6 import (IPv6, MIP6OptMNID, MIP6OptMsgAuth, MIP6OptReplayProtection,
                                PadN, Pad1, _MobilityHeader)
from scapy.packet import Packet

from ..errors import MalformedPacket
from . import mip6
from .mip6 import _locate_mh, _with_checksum, validate_mobility_header

__all__ = [
    "AUTHENTICATOR_LENGTH",
    "AUTH_SUBTYPES",
    "MIP6OptMNID",
    "MIP6OptMobilityAuth",
    "MIP6OptReplayProtectionNTP",
    "MNID_NAI",
    "MobilityAuthentication",
    "NTP_UNIX_OFFSET",
    "OPT_AUTH",
    "OPT_MN_ID",
    "OPT_REPLAY",
    "SUBTYPE_MN_AAA",
    "SUBTYPE_MN_HA",
    "add_authentication",
    "authenticator",
    "mobility_data",
    "ntp_seconds",
    "ntp_timestamp",
    "read_authentication",
]

#: IANA mobility option types (RFC 4283 §5, RFC 4285 §8).
OPT_MN_ID, OPT_AUTH, OPT_REPLAY = 8, 9, 10
#: RFC 4283 §3.1: subtype 1 is the MN-NAI.
MNID_NAI = 1
#: RFC 4285 §8: the subtypes of the Mobility Message Authentication option.
SUBTYPE_MN_HA, SUBTYPE_MN_AAA = 1, 2
AUTH_SUBTYPES = {SUBTYPE_MN_HA: "MN-HA (RFC 4285 §5.1)", SUBTYPE_MN_AAA: "MN-AAA (RFC 4285 §5.2)"}
#: RFC 4285 §5.1: "The first 96 bits from the MAC result".
AUTHENTICATOR_LENGTH = 12
#: Subtype (1) + Mobility SPI (4): what Option Length counts besides the data (§5).
_AUTH_FIXED = 5
#: Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
NTP_UNIX_OFFSET = 2_208_988_800


# -- the options --------------------------------------------------------------------------


class NTPTimestamp64Field(LongField):
    """RFC 1305's 64-bit timestamp: seconds since 1900 (high 32 bits) and a binary
    fraction (low 32 bits), shown as a UTC date."""

    def i2repr(self, pkt, x):
        if x is None:
            return "None"
        seconds = ntp_seconds(x) - NTP_UNIX_OFFSET
        if seconds < 0:
            return f"{ntp_seconds(x):.6f} s after 1900 (0x{x:016x})"
        text = strftime("%Y-%m-%d %H:%M:%S", gmtime(int(seconds)))
        return f"{text}.{int((seconds % 1) * 1e6):06d} UTC (0x{x:016x})"


class MIP6OptMobilityAuth(MIP6OptMsgAuth):
    """Mobility Message Authentication option (RFC 4285 §5), type 9, alignment 4n+1.

    ``mspi`` is the Mobility SPI, ``authdata`` the Authentication Data: for the MN-HA
    subtype the 96-bit authenticator of §5.1, all zero until :func:`add_authentication`
    computes it.
    """

    name = "MIPv6 Option - Mobility Message Authentication (RFC 4285)"
    match_subclass = True
    fields_desc = [
        ByteEnumField("otype", OPT_AUTH, inet6._mobopttypes),
        FieldLenField("olen", None, length_of="authdata", fmt="B",
                      adjust=lambda pkt, x: x + _AUTH_FIXED),
        ByteEnumField("subtype", SUBTYPE_MN_HA, AUTH_SUBTYPES),
        IntField("mspi", 0),
        StrLenField("authdata", b"\x00" * AUTHENTICATOR_LENGTH,
                    length_from=lambda pkt: pkt.olen - _AUTH_FIXED),
    ]
    x = 4
    y = 1


class MIP6OptReplayProtectionNTP(MIP6OptReplayProtection):
    """Mobility Message Replay Protection option (RFC 4285 §6), type 10, alignment 8n+2:
    a 64-bit timestamp in NTP format."""

    name = "MIPv6 Option - Mobility Message Replay Protection (RFC 4285)"
    match_subclass = True
    fields_desc = [
        ByteEnumField("otype", OPT_REPLAY, inet6._mobopttypes),
        ByteField("olen", 8),
        NTPTimestamp64Field("timestamp", 0),
    ]
    x = 8
    y = 2


inet6.moboptcls[OPT_AUTH] = MIP6OptMobilityAuth
inet6.moboptcls[OPT_REPLAY] = MIP6OptReplayProtectionNTP
# the strict validator: (exact data length or None, alignment x, y). The MN-ID has no
# alignment (RFC 4283 §3); the authentication option's length depends on its subtype.
mip6._OPTION_RULES.update({OPT_MN_ID: (None, 0, 0), OPT_AUTH: (None, 4, 1),
                           OPT_REPLAY: (8, 8, 2)})


# -- NTP time (RFC 1305, as RFC 4285 §6 asks) -----------------------------------------------


def ntp_timestamp(seconds: float | int, fraction_noise: int = 0) -> int:
    """The NTP 64-bit value of ``seconds`` since 1900. ``fraction_noise`` fills the
    fraction bits below the time source's resolution (§6: "SHOULD be generated from a
    good source of randomness"); it is added, so it must be below one resolution step."""
    whole = int(seconds)
    fraction = int(round((seconds - whole) * (1 << 32)))
    if fraction >= 1 << 32:
        whole, fraction = whole + 1, fraction - (1 << 32)
    value = (whole << 32) | fraction
    return (value + fraction_noise) & 0xFFFFFFFFFFFFFFFF


def ntp_seconds(timestamp: int) -> float:
    """Seconds since 1900 of an NTP 64-bit timestamp."""
    return (timestamp >> 32) + (timestamp & 0xFFFFFFFF) / (1 << 32)


# -- the authenticator (RFC 4285 §5.1) ------------------------------------------------------


def mobility_data(care_of_address, home_address, mh: bytes, spi_end: int) -> bytes:
    """RFC 4285 §5.1's Mobility Data: "care-of address | home address | MH Data", where
    MH Data is the Mobility Header up to and including the mobility SPI (``spi_end``
    bytes from its start) with "The Checksum field ... set to 0"."""
    if not 6 <= spi_end <= len(mh):
        raise MalformedPacket(f"mobility SPI ends at {spi_end}, outside the "
                              f"{len(mh)}-byte Mobility Header")
    coa = ipaddress.IPv6Address(care_of_address).packed
    hoa = ipaddress.IPv6Address(home_address).packed
    return coa + hoa + mh[:4] + b"\x00\x00" + mh[6:spi_end]


def authenticator(key: bytes, care_of_address, home_address, mh: bytes,
                  spi_end: int) -> bytes:
    """First(96, HMAC_SHA1(key, Mobility Data)) (RFC 4285 §5.1)."""
    data = mobility_data(care_of_address, home_address, mh, spi_end)
    return hmac.new(key, data, hashlib.sha1).digest()[:AUTHENTICATOR_LENGTH]


@dataclass(frozen=True)
class MobilityAuthentication:
    """What an authenticated BU or BA carries, read from its bytes.

    ``care_of_address`` / ``home_address``: the two addresses of the Mobility Data (see
    the module docstring); ``mh``: the Mobility Header's bytes; ``spi_end``: where the
    MN-HA option's SPI ends in it; ``nai``: the MN-NAI (None without an MN-ID option);
    ``timestamp``: the replay protection option's (None without one)."""

    mh_type: int
    sequence_number: int
    care_of_address: ipaddress.IPv6Address
    home_address: ipaddress.IPv6Address
    mh: bytes
    subtype: int
    spi: int
    authenticator: bytes
    spi_end: int
    nai: str | None
    timestamp: int | None

    def mobility_data(self) -> bytes:
        return mobility_data(self.care_of_address, self.home_address, self.mh, self.spi_end)


def _addresses(data: bytes, mh_type: int) -> tuple[ipaddress.IPv6Address, ipaddress.IPv6Address]:
    pseudo_src, pseudo_dst, _off, _len = _locate_mh(data)
    if mh_type == 6:    # BA: to the CoA (IPv6 destination), the HoA in the RH2
        return ipaddress.IPv6Address(data[24:40]), ipaddress.IPv6Address(pseudo_dst)
    # BU (and anything else from the MN): from the CoA, the HoA in the HAO
    return ipaddress.IPv6Address(data[8:24]), ipaddress.IPv6Address(pseudo_src)


def read_authentication(packet: bytes | Packet) -> MobilityAuthentication | None:
    """The RFC 4285 options of an IPv6 packet's Mobility Header, checked.

    Returns None when there is no Mobility Message Authentication option (§5: the
    receiver that expects one "should silently discard" the message). Raises
    :class:`MalformedPacket` when the options break the RFCs' placement rules: more than
    one MN-HA option (§5 "Only one instance"), the MN-HA option not the last option
    (§5.1 "MUST be the last option"), an MN-AAA option (§5.2: only in a BU, and this
    lab has no AAA server), an MN-ID after it (RFC 4283 §3.2), an authentication
    option too short for its SPI, an MN-HA option whose data is not 96 bits, two
    replay protection options, an MN-ID that is not an NAI.
    """
    data = bytes(packet[IPv6]) if isinstance(packet, Packet) else bytes(packet)
    _src, _dst, off, mh_len = _locate_mh(data)
    mh = data[off:off + mh_len]
    options = validate_mobility_header(mh)
    auths = [o for o in options if o.type == OPT_AUTH]
    if not auths:
        return None
    if any(len(o.data) < _AUTH_FIXED for o in auths):
        raise MalformedPacket("authentication option shorter than its subtype and SPI")
    if len(auths) > 1:
        raise MalformedPacket(f"{len(auths)} mobility message authentication options "
                              "(RFC 4285 §5: one MN-HA option)")
    auth = auths[0]
    subtype = auth.data[0]
    if subtype != SUBTYPE_MN_HA:
        raise MalformedPacket(f"authentication subtype {subtype} "
                              f"({AUTH_SUBTYPES.get(subtype, 'unknown')}): only MN-HA "
                              "(RFC 4285 §5.1) is supported between MN and HA here")
    if options[-1] is not auth:
        raise MalformedPacket("the MN-HA authentication option is not the last option "
                              "(RFC 4285 §5.1)")
    if len(auth.data) != _AUTH_FIXED + AUTHENTICATOR_LENGTH:
        raise MalformedPacket(f"MN-HA authentication data of {len(auth.data) - _AUTH_FIXED}"
                              f" bytes, not {AUTHENTICATOR_LENGTH} (First(96, ...), §5.1)")
    identifiers = [o for o in options if o.type == OPT_MN_ID]
    if len(identifiers) > 1:
        raise MalformedPacket("more than one Mobile Node Identifier option")
    nai = None
    if identifiers:
        ident = identifiers[0]
        if not ident.data or ident.data[0] != MNID_NAI:
            raise MalformedPacket("Mobile Node Identifier option without the NAI subtype "
                                  "(RFC 4283 §3.1)")
        try:
            nai = ident.data[1:].decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPacket("MN-NAI is not UTF-8 text (RFC 4282)") from None
    replays = [o for o in options if o.type == OPT_REPLAY]
    if len(replays) > 1:
        raise MalformedPacket("more than one replay protection option")
    timestamp = struct.unpack("!Q", replays[0].data)[0] if replays else None
    mh_type = mh[2]
    if mh_type not in (5, 6):
        raise MalformedPacket(f"MH type {mh_type}: RFC 4285 authenticates BU and BA only")
    sequence = struct.unpack("!H", mh[6:8] if mh_type == 5 else mh[8:10])[0]
    coa, hoa = _addresses(data, mh_type)
    spi_end = auth.offset + 2 + _AUTH_FIXED
    spi = struct.unpack("!I", auth.data[1:5])[0]
    return MobilityAuthentication(mh_type, sequence, coa, hoa, mh, subtype, spi,
                                  auth.data[_AUTH_FIXED:], spi_end, nai, timestamp)


def add_authentication(packet: bytes | Packet, spi: int,
                       sign: Callable[[bytes], bytes], *, nai: str | None = None,
                       timestamp: int | None = None) -> IPv6:
    """``packet`` (an IPv6 BU or BA built by :mod:`mip6lab.wire.mip6`) with the MN-ID
    option (``nai``), the replay protection option (``timestamp``) and, last, the MN-HA
    authentication option appended to its Mobility Header -- in the order of RFC 4285
    Figure 1 and RFC 4283 §3.2 -- the authenticator set to ``sign(mobility data)`` (the
    key stays with the signer) and the MH checksum computed again.
    """
    pkt = IPv6(bytes(packet[IPv6] if isinstance(packet, Packet) else packet))
    mh = pkt
    while not isinstance(mh, _MobilityHeader):
        if not mh.payload:
            raise MalformedPacket("no Mobility Header to authenticate")
        mh = mh.payload
    options = [o for o in mh.options if not isinstance(o, (Pad1, PadN))]
    if nai is not None:
        options.append(MIP6OptMNID(subtype=MNID_NAI, id=nai.encode()))
    if timestamp is not None:
        options.append(MIP6OptReplayProtectionNTP(timestamp=timestamp))
    options.append(MIP6OptMobilityAuth(subtype=SUBTYPE_MN_HA, mspi=spi))
    mh.options = options
    mh.len = None
    pkt.plen = None
    unsigned = IPv6(bytes(pkt))
    found = read_authentication(unsigned)
    assert found is not None
    data = bytearray(bytes(unsigned))
    _src, _dst, mh_off, _len = _locate_mh(bytes(data))
    start = mh_off + found.spi_end
    data[start:start + AUTHENTICATOR_LENGTH] = sign(found.mobility_data())
    return _with_checksum(IPv6(bytes(data)))
