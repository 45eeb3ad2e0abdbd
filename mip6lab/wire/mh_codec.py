"""Binding Update and Binding Acknowledgement as plain values, written and read with
``struct`` (RFC 6275 §6.1, §6.2; RFC 5555 §3).

What this module is for: the mobile node's and the home agent's own build and parse, on
their hot path. :mod:`mip6lab.wire.mip6` declares the same messages as scapy layers, and
that is what a person is shown (the trace at level ``full``, pcaps, the inspector,
widgets); but building one BU with scapy and rebuilding it for the checksum costs about
a millisecond. Here a BU or BA is a few ``struct`` calls. ``tests/mobility/
test_mh_codec.py`` checks, with hypothesis, that both give the same octets and read them
the same way.

Writing follows what scapy writes, octet for octet: the options of a Mobility Header are
laid out from offset 12 (BU and BA) with each option's alignment ``xn+y`` met by a Pad1 or
PadN in front of it (§6.2), and the header padded to a multiple of 8 octets (§6.1.1);
the Home Address option sits after a PadN of 4 in its Destination Options header (8n+6,
RFC 6275 §6.3); the type 2 routing header carries one address (§6.4); the MH checksum is
the Internet checksum over the pseudo-header of the home address and the final
destination (§6.1.1).

Reading (:func:`decode_mobility_message`) takes an IPv6 packet as bytes whose Mobility
Header has passed :func:`mip6lab.wire.mip6.check_mobility_message` and returns
:class:`MobilityMessage` -- the Home Address option of the first Destination Options
header, as scapy's ``pkt[IPv6ExtHdrDestOpt]`` finds it, the type 2 routing header's
address, the MH's fields and options, reserved bits kept -- or None for anything it
does not read (another MH type, another extension header): the caller then goes the
scapy way, as before.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence

from scapy.layers import inet6

from ..errors import LocalProtocolError, RemoteProtocolError
from .checksum import ipv6_checksum

__all__ = [
    "AlternateCareOfAddress", "BindingRefreshAdvice", "IPv4AddressAcknowledgement",
    "IPv4CareOfAddress", "IPv4HomeAddress", "MobilityMessage", "NATDetection",
    "OtherOption", "decode_mobility_message", "decode_options", "encode_ba", "encode_bu",
    "encode_options",
]

MH_PROTO = 135
NO_NEXT_HEADER = 59
MH_BU, MH_BA = 5, 6
_HLIM = 64                       # scapy's IPv6 default hop limit, what build_bu sends

_IPV6 = struct.Struct("!IHBB16s16s")           # version/class/flow, plen, nh, hlim
_BU = struct.Struct("!BBBBHHBBH")              # nh, len, type, res, cksum, seq, flags, res, life
_BA = struct.Struct("!BBBBHBBHH")              # nh, len, type, res, cksum, status, flags, seq, life
_HAO_HEADER = bytes((1, 2, 0, 0, 0xC9, 16))    # PadN(2) then the HAO's type and length
_RH2 = struct.Struct("!BBBBI16s")              # nh, len 2, type 2, segleft 1, reserved, HoA

# BU flags (§6.1.7; F: RFC 5555 §3.1.3), BA flags (§6.1.8)
BU_A, BU_H, BU_L, BU_K, BU_F = 0x80, 0x40, 0x20, 0x10, 0x01
BA_K = 0x80


def _packed(address: str | bytes | ipaddress._BaseAddress, size: int) -> bytes:
    if isinstance(address, bytes):
        if len(address) != size:
            raise LocalProtocolError(f"address of {len(address)} octets, not {size}")
        return address
    if isinstance(address, str):
        address = ipaddress.ip_address(address)
    packed = address.packed
    if len(packed) != size:
        raise LocalProtocolError(f"{address} is not an IPv{4 if size == 4 else 6} address")
    return packed


# -- options (§6.2; RFC 5555 §3) ---------------------------------------------------------

class _Option:
    """A mobility option: its type, alignment xn+y (§6.2) and data."""

    __slots__ = ()
    TYPE = 0
    X, Y = 0, 0

    def data(self) -> bytes:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.data() == self.data()

    def __hash__(self) -> int:
        return hash((self.TYPE, self.data()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class BindingRefreshAdvice(_Option):
    """Binding Refresh Advice (§6.2.4): type 2, 2n, the refresh interval in 4 s units."""

    __slots__ = ("interval",)
    TYPE, X, Y = 2, 2, 0

    def __init__(self, interval: int) -> None:
        self.interval = interval

    def data(self) -> bytes:
        return struct.pack("!H", self.interval)


class AlternateCareOfAddress(_Option):
    """Alternate Care-of Address (§6.2.5): type 3, 8n+6, an IPv6 address (packed)."""

    __slots__ = ("address",)
    TYPE, X, Y = 3, 8, 6

    def __init__(self, address: bytes) -> None:
        self.address = address

    def data(self) -> bytes:
        return self.address


class IPv4HomeAddress(_Option):
    """IPv4 Home Address (RFC 5555 §3.1.1): type 29, 4n: prefix length, P, address."""

    __slots__ = ("address", "prefix_length", "p", "reserved")
    TYPE, X, Y = 29, 4, 0

    def __init__(self, address: bytes, prefix_length: int = 32, p: bool = False,
                 reserved: int = 0) -> None:
        self.address, self.prefix_length, self.p = address, prefix_length, p
        self.reserved = reserved

    def data(self) -> bytes:
        return struct.pack("!H4s", (self.prefix_length << 10) | (0x200 if self.p else 0)
                           | self.reserved, self.address)


class IPv4AddressAcknowledgement(_Option):
    """IPv4 Address Acknowledgement (RFC 5555 §3.2.1): type 30, 4n."""

    __slots__ = ("status", "prefix_length", "address", "reserved")
    TYPE, X, Y = 30, 4, 0

    def __init__(self, status: int, address: bytes, prefix_length: int = 32,
                 reserved: int = 0) -> None:
        self.status, self.address, self.prefix_length = status, address, prefix_length
        self.reserved = reserved

    def data(self) -> bytes:
        return struct.pack("!BB4s", self.status, (self.prefix_length << 2) | self.reserved,
                           self.address)


class NATDetection(_Option):
    """NAT Detection (RFC 5555 §3.2.2): type 31, 4n: F, the refresh time in seconds."""

    __slots__ = ("f", "refresh", "reserved")
    TYPE, X, Y = 31, 4, 0

    def __init__(self, f: bool, refresh: int, reserved: int = 0) -> None:
        self.f, self.refresh, self.reserved = f, refresh, reserved

    def data(self) -> bytes:
        return struct.pack("!HI", (0x8000 if self.f else 0) | self.reserved, self.refresh)


class IPv4CareOfAddress(_Option):
    """IPv4 Care-of Address (RFC 5555 §3.1.2): type 32, 4n."""

    __slots__ = ("address", "reserved")
    TYPE, X, Y = 32, 4, 0

    def __init__(self, address: bytes, reserved: int = 0) -> None:
        self.address, self.reserved = address, reserved

    def data(self) -> bytes:
        return struct.pack("!H4s", self.reserved, self.address)


class OtherOption(_Option):
    """Any other option, as it is (no alignment: scapy's MIP6OptUnknown has none)."""

    __slots__ = ("type", "value")

    def __init__(self, type: int, value: bytes) -> None:  # noqa: A002 - the RFC's name
        self.type, self.value = type, value

    @property
    def TYPE(self) -> int:  # type: ignore[override]
        return self.type

    def data(self) -> bytes:
        return self.value


def _pad(n: int) -> bytes:
    """Pad1 for one octet, PadN for more (§6.2.1, §6.2.2)."""
    return b"\x00" if n == 1 else bytes((1, n - 2)) + bytes(n - 2) if n else b""


def encode_options(options: Iterable[_Option], start: int = 12) -> bytes:
    """The options area of a Mobility Header whose options begin ``start`` octets in:
    each option aligned (§6.2: ``xn+y`` from the start of the header), the whole padded
    to a multiple of 8 octets (§6.1.1)."""
    out = []
    position = start
    for option in options:
        x, y = option.X, option.Y
        if x:
            delta = x * ((position - y + x - 1) // x) + y - position
            if delta:
                out.append(_pad(delta))
                position += delta
        data = option.data()
        out.append(bytes((option.TYPE, len(data))) + data)
        position += 2 + len(data)
    out.append(_pad(-position % 8))
    return b"".join(out)


_READERS = {
    2: lambda d: BindingRefreshAdvice(struct.unpack("!H", d)[0]),
    3: AlternateCareOfAddress,
    # reserved bits are kept: what is read writes back the same octets
    29: lambda d: IPv4HomeAddress(d[2:6], d[0] >> 2, bool(d[0] & 2),
                                  ((d[0] & 1) << 8) | d[1]),
    30: lambda d: IPv4AddressAcknowledgement(d[0], d[2:6], d[1] >> 2, d[1] & 3),
    31: lambda d: NATDetection(bool(d[0] & 0x80), struct.unpack("!I", d[2:6])[0],
                               ((d[0] & 0x7F) << 8) | d[1]),
    32: lambda d: IPv4CareOfAddress(d[2:6], (d[0] << 8) | d[1]),
}
_LENGTHS = {2: 2, 3: 16, 29: 6, 30: 6, 31: 6, 32: 6}
#: option types scapy dissects with a class of its own whose reading is not driven by the
#: option's length (RFC 6275 §6.2.1), and does not read as this codec does: an MH that
#: holds one is left to scapy (the mobile node's and home agent's byte paths step aside)
SCAPY_OWN_OPTIONS = frozenset(set(inet6.moboptcls) | set(range(2, 17))) - {0, 1, *_READERS}


def _read_option(otype: int, data: bytes) -> _Option:
    reader = _READERS.get(otype)
    return reader(data) if reader is not None and _LENGTHS[otype] == len(data) \
        else OtherOption(otype, data)


def read_options(options: Iterable[bytes]) -> list[_Option]:
    """Options given one by one as octets (type, length, data): scapy's dissected
    options, for instance, so that scapy's own cut of an options area is kept."""
    found = []
    for raw in options:
        raw = bytes(raw)
        if len(raw) >= 2 and raw[0] not in (0, 1):
            found.append(_read_option(raw[0], raw[2:2 + raw[1]]))
    return found


def decode_options(area: bytes) -> list[_Option]:
    """The options of an options area that passed :func:`validate_mobility_options`
    (Pad1 and PadN left out, every other option in order)."""
    found: list[_Option] = []
    i, end = 0, len(area)
    while i < end:
        otype = area[i]
        if otype == 0:
            i += 1
            continue
        olen = area[i + 1]
        if otype != 1:
            found.append(_read_option(otype, area[i + 2:i + 2 + olen]))
        i += 2 + olen
    return found


# -- messages ----------------------------------------------------------------------------

def _lifetime_units(lifetime: int) -> int:
    if lifetime < 0 or lifetime % 4 or lifetime // 4 > 0xFFFF:
        raise LocalProtocolError(
            f"lifetime {lifetime} s is not a multiple of 4 s in 0..{4 * 0xFFFF}"
        )
    return lifetime // 4


def _packet(src: bytes, dst: bytes, pseudo_src: bytes, pseudo_dst: bytes, nh: int,
            extension: bytes, mh: bytearray) -> bytes:
    """IPv6 header + extension header + the MH with its checksum (§6.1.1)."""
    mh[1] = len(mh) // 8 - 1
    mh[4:6] = ipv6_checksum(pseudo_src, pseudo_dst, MH_PROTO, bytes(mh)).to_bytes(2, "big")
    return (_IPV6.pack(0x60000000, len(extension) + len(mh), nh, _HLIM, src, dst)
            + extension + bytes(mh))


def encode_bu(hoa, coa, ha, seq: int, lifetime: int, *, a: bool = True, h: bool = True,
              l: bool = False, k: bool = True, f: bool = False,  # noqa: E741 - RFC name
              options: Sequence[_Option] = ()) -> bytes:
    """The bytes :func:`mip6lab.wire.mip6.build_bu` builds (RFC 6275 §6.1.7, §11.7.1):
    ``IPv6(coa -> ha) / DestOpt(HAO(hoa)) / BU``, or ``IPv6(hoa -> ha) / BU`` with
    ``coa=None``. Addresses as strings, packed bytes or ``ipaddress`` objects."""
    if not 0 <= seq <= 0xFFFF:
        raise LocalProtocolError(f"sequence number {seq} out of range")
    units = _lifetime_units(lifetime)
    flags = (BU_A if a else 0) | (BU_H if h else 0) | (BU_L if l else 0) | \
        (BU_K if k else 0) | (BU_F if f else 0)
    hoa_b, ha_b = _packed(hoa, 16), _packed(ha, 16)
    mh = bytearray(_BU.pack(NO_NEXT_HEADER, 0, MH_BU, 0, 0, seq, flags, 0, units)
                   + encode_options(options, 12))
    if coa is None:
        return _packet(hoa_b, ha_b, hoa_b, ha_b, MH_PROTO, b"", mh)
    extension = bytes((MH_PROTO, 2)) + _HAO_HEADER + hoa_b
    return _packet(_packed(coa, 16), ha_b, hoa_b, ha_b, 60, extension, mh)


def encode_ba(ha, coa, hoa, seq: int, lifetime: int, *, status: int = 0, k: bool = True,
              options: Sequence[_Option] = ()) -> bytes:
    """The bytes :func:`mip6lab.wire.mip6.build_ba` builds (RFC 6275 §6.1.8, §10.3.1):
    ``IPv6(ha -> coa) / RH2(hoa) / BA``, or ``IPv6(ha -> hoa) / BA`` with ``coa=None``."""
    if not 0 <= seq <= 0xFFFF:
        raise LocalProtocolError(f"sequence number {seq} out of range")
    if not 0 <= status <= 255:
        raise LocalProtocolError(f"status {status} out of range")
    units = _lifetime_units(lifetime)
    ha_b, hoa_b = _packed(ha, 16), _packed(hoa, 16)
    mh = bytearray(_BA.pack(NO_NEXT_HEADER, 0, MH_BA, 0, 0, status, BA_K if k else 0, seq,
                            units) + encode_options(options, 12))
    if coa is None:
        return _packet(ha_b, hoa_b, ha_b, hoa_b, MH_PROTO, b"", mh)
    return _packet(ha_b, _packed(coa, 16), ha_b, hoa_b, 43,
                   _RH2.pack(MH_PROTO, 2, 2, 1, 0, hoa_b), mh)


class MobilityMessage:
    """A received BU or BA, read off its bytes.

    ``source``: the IPv6 source; ``home_address``: the Home Address option's address
    (None without one); ``routed_to``: the type 2 routing header's address (None without
    one); then the Mobility Header's fields and its options (Pad1/PadN left out)."""

    __slots__ = ("source", "home_address", "routed_to", "mh_type", "sequence", "flags",
                 "status", "lifetime", "options", "read_as_scapy")

    def __init__(self, source: bytes, home_address: bytes | None, routed_to: bytes | None,
                 mh_type: int, sequence: int, flags: int, status: int, lifetime: int,
                 options: list[_Option]) -> None:
        self.source, self.home_address, self.routed_to = source, home_address, routed_to
        self.mh_type, self.sequence, self.flags = mh_type, sequence, flags
        self.status, self.lifetime, self.options = status, lifetime, options
        #: False when an option is one scapy reads its own way (SCAPY_OWN_OPTIONS)
        self.read_as_scapy = not any(o.TYPE in SCAPY_OWN_OPTIONS for o in options)

    def option(self, cls: type) -> _Option | None:
        """The last option of that class (a later one overrides an earlier one)."""
        found = None
        for option in self.options:
            if type(option) is cls:
                found = option
        return found

    def __repr__(self) -> str:
        return (f"MobilityMessage(type={self.mh_type}, seq={self.sequence}, "
                f"flags=0x{self.flags:02x}, status={self.status}, "
                f"lifetime={self.lifetime}, options={self.options!r})")


def decode_mobility_message(packet: bytes) -> MobilityMessage | None:
    """Read a BU or BA whose Mobility Header passed ``check_mobility_message``.

    None when the Mobility Header is not a BU or BA, or an extension header in front of
    it is not a hop-by-hop, destination options or routing header, or is cut short: the
    caller reads those with scapy, as it always has. (An option of a known type with
    another length than its own is read as :class:`OtherOption`; the check refuses such
    options before this is reached.)"""
    nh, off = packet[6], 40
    end = len(packet)
    hoa = routed = None
    seen_destination_options = False
    while nh != MH_PROTO:
        if nh not in (0, 43, 60) or off + 8 > end:
            return None
        hlen = 8 * (packet[off + 1] + 1)
        if off + hlen > end:
            return None
        if nh == 60 and not seen_destination_options:
            # as scapy's reading: the HAO of the first Destination Options header
            seen_destination_options = True
            i = off + 2
            while i < off + hlen:
                otype = packet[i]
                if otype == 0:
                    i += 1
                    continue
                if i + 2 > off + hlen:
                    return None
                olen = packet[i + 1]
                if otype == 0xC9 and hoa is None:
                    if olen != 16 or i + 18 > off + hlen:
                        return None
                    hoa = packet[i + 2:i + 18]
                i += 2 + olen
        elif nh == 43 and packet[off + 2] == 2 and hlen == 24 and routed is None:
            routed = packet[off + 8:off + 24]
        nh, off = packet[off], off + hlen
    if off + 12 > end:
        return None
    mh_type = packet[off + 2]
    mh_end = off + 8 * (packet[off + 1] + 1)
    if mh_type == MH_BU:
        _, _, _, _, _, seq, flags, _, life = _BU.unpack_from(packet, off)
        status = 0
    elif mh_type == MH_BA:
        _, _, _, _, _, status, flags, seq, life = _BA.unpack_from(packet, off)
    else:
        return None
    options = decode_options(packet[off + 12:mh_end])
    return MobilityMessage(packet[8:24], hoa, routed, mh_type, seq, flags, status, life,
                           options)


def read_on_bytes(l3: bytes, offset: int, mh_type: int) -> MobilityMessage | None:
    """The node's byte path for one MH type: the BU (5) or BA (6) at ``offset`` in the
    IPv6 packet ``l3``, read by this codec when it is the whole rest of the packet, passes
    :func:`~mip6lab.wire.mip6.check_mobility_message` and reads as scapy would read it.
    None otherwise -- another MH type, a malformed one, an option scapy cuts its own way:
    the caller hands those to scapy, so their drop or announcement stays what it was."""
    from .mip6 import check_mobility_message      # mip6 names this module: no cycle

    if len(l3) < offset + 12 or l3[offset + 2] != mh_type or \
            offset + 8 * (l3[offset + 1] + 1) != len(l3):
        return None
    try:
        check_mobility_message(l3, l3[offset:])
    except RemoteProtocolError:
        return None
    message = decode_mobility_message(l3)
    if message is None or not message.read_as_scapy:
        return None
    return message
