"""Mobile IPv6 / DSMIP6 wire formats on top of ``scapy.layers.inet6`` (DESIGN rule 2).

scapy already declares the Mobility Header messages (``MIP6MH_BU``, ``MIP6MH_BA`` ...),
the mobility options of RFC 6275 with their alignment (``_MIP6OptAlign``), the Home
Address destination option (``HAO``) and the routing header (``IPv6ExtHdrRouting``, used
with ``type=2`` for the type 2 routing header). This module only adds what scapy 2.8
lacks, and a few helpers:

* the RFC 5555 §3 mobility options, registered in scapy's option dispatch table so they
  dissect inside any Mobility Header: :class:`MIP6OptIPv4HomeAddress` (29),
  :class:`MIP6OptIPv4AddrAck` (30), :class:`MIP6OptNATDetection` (31),
  :class:`MIP6OptIPv4CareOfAddress` (32). Each has the 4n alignment of RFC 5555.
* :class:`MIP6MH_BU_DSMIP6`: scapy's Binding Update with the F flag of RFC 5555 §3.1.3
  (``A|H|L|K|M|R|P|F``, the eighth bit of the flags). scapy's ``MIP6MH_BU`` has
  ``flags`` (7 bits, ``"PRMKLHA"``) followed by 9 reserved bits; this subclass keeps
  ``flags`` exactly as it is (same bits, same integer values) and splits the reserved
  bits into ``F`` (1 bit) and ``reserved`` (8 bits). It replaces ``MIP6MH_BU`` in scapy's
  MH-type dispatch, so a dissected BU is an instance of both classes (and
  ``pkt[MIP6MH_BU]`` still finds it).
* :func:`build_bu` / :func:`build_ba`: IPv6 packets with the HAO (BU) or the type 2
  routing header (BA) and a correct MH checksum.
* :func:`mh_checksum` / :func:`verify_mh_checksum`: the MH checksum of RFC 6275 §6.1.1
  computed from the bytes of an IPv6 packet, the pseudo-header source being the home
  address of the HAO when present and the destination the final one (address of a
  routing header with segments left, e.g. the RH2's home address).
* :func:`encapsulate_udp4` / :func:`decapsulate_udp4` / :func:`build_dsmip6_bu`: the
  IPv4/UDP (port 4191) tunnelling of RFC 5555 §4.1; UDP port 4191 is bound (both
  directions) to scapy's ``IPv46`` so the inner IPv6 or IPv4 packet dissects.
* :func:`validate_mobility_options` / :func:`validate_mobility_header`: strict checks of
  option lengths, alignment and truncation, raising
  :class:`~mip6lab.errors.MalformedPacket`.

The mobile node and the home agent do not build or read their BUs and BAs with these
scapy layers on their hot path: :mod:`mip6lab.wire.mh_codec` writes the same octets
with ``struct`` (a hypothesis test holds the two to each other). What is shown to a
person -- the trace at level ``full``, pcaps, the inspector -- is still scapy's reading.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable

from scapy.fields import (
    BitField,
    ByteEnumField,
    ByteField,
    FlagsField,
    IntField,
    IPField,
    XBitField,
    XShortField,
)
from scapy.layers import inet6
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    HAO,
    IPv46,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    LifetimeField,
    MIP6MH_BA,
    MIP6MH_BU,
    MIP6OptUnknown,
    _MIP6OptAlign,
    _OptionsField,
    _PhantomAutoPadField,
    ipv6nh,
    mhtypes,
)
from scapy.packet import Packet, bind_layers
from scapy.utils import checksum

from mip6lab.errors import LocalProtocolError, MalformedPacket

__all__ = [
    "check_mobility_message",
    "DSMIP6_UDP_PORT",
    "IPV4_ADDR_ACK_STATUS",
    "MH_PROTO",
    "MIP6MH_BU_DSMIP6",
    "MIP6OptIPv4AddrAck",
    "MIP6OptIPv4CareOfAddress",
    "MIP6OptIPv4HomeAddress",
    "MIP6OptNATDetection",
    "MobilityOption",
    "NATD_NO_KEEPALIVE",
    "OPT_IPV4_ADDR_ACK",
    "OPT_IPV4_COA",
    "OPT_IPV4_HOA",
    "OPT_NAT_DETECTION",
    "build_ba",
    "build_bu",
    "build_dsmip6_bu",
    "decapsulate_udp4",
    "encapsulate_udp4",
    "mh_checksum",
    "validate_mobility_header",
    "validate_mobility_options",
    "verify_mh_checksum",
]

#: IANA "Mobility Header" protocol number (IPv6 next header).
MH_PROTO = 135
#: UDP port of the DSMIP6 home agent (RFC 5555 §4.1).
DSMIP6_UDP_PORT = 4191

# IANA mobility option types (RFC 5555 §3, §8).
OPT_IPV4_HOA = 29
OPT_IPV4_ADDR_ACK = 30
OPT_NAT_DETECTION = 31
OPT_IPV4_COA = 32

#: NAT Detection refresh time meaning "no NAT, no keepalives needed" (RFC 5555 §3.2.2).
NATD_NO_KEEPALIVE = 0xFFFFFFFF

#: Status values of the IPv4 Address Acknowledgement option (RFC 5555 §3.2.1).
IPV4_ADDR_ACK_STATUS = {
    0: "Success",
    128: "Failure, reason unspecified",
    129: "Administratively prohibited",
    130: "Incorrect IPv4 home address",
    131: "Invalid IPv4 address",
    132: "Dynamic IPv4 home address assignment not available",
    133: "Prefix allocation unauthorized",
}

_mobopttypes = inet6._mobopttypes  # scapy's own name table, extended in place
_mobopttypes.update(
    {
        OPT_IPV4_HOA: "IPv4 Home Address (RFC5555)",
        OPT_IPV4_ADDR_ACK: "IPv4 Address Acknowledgement (RFC5555)",
        OPT_NAT_DETECTION: "NAT Detection (RFC5555)",
        OPT_IPV4_COA: "IPv4 Care-of Address (RFC5555)",
    }
)


# -- RFC 5555 mobility options ----------------------------------------------------------


class MIP6OptIPv4HomeAddress(_MIP6OptAlign):
    """IPv4 Home Address option (RFC 5555 §3.1.1), type 29, length 6, alignment 4n."""

    name = "DSMIPv6 Option - IPv4 Home Address"
    fields_desc = [
        ByteEnumField("otype", OPT_IPV4_HOA, _mobopttypes),
        ByteField("olen", 6),
        BitField("plen", 32, 6),
        BitField("P", 0, 1),
        XBitField("reserved", 0, 9),
        IPField("hoa", "0.0.0.0"),
    ]
    x = 4
    y = 0


class MIP6OptIPv4AddrAck(_MIP6OptAlign):
    """IPv4 Address Acknowledgement option (RFC 5555 §3.2.1), type 30, alignment 4n."""

    name = "DSMIPv6 Option - IPv4 Address Acknowledgement"
    fields_desc = [
        ByteEnumField("otype", OPT_IPV4_ADDR_ACK, _mobopttypes),
        ByteField("olen", 6),
        ByteEnumField("status", 0, IPV4_ADDR_ACK_STATUS),
        BitField("plen", 32, 6),
        XBitField("reserved", 0, 2),
        IPField("hoa", "0.0.0.0"),
    ]
    x = 4
    y = 0


class MIP6OptNATDetection(_MIP6OptAlign):
    """NAT Detection option (RFC 5555 §3.2.2), type 31, alignment 4n.

    ``refresh`` is the suggested keepalive interval in seconds; 0 means "ignore", all
    ones (:data:`NATD_NO_KEEPALIVE`) "no NAT, no keepalives needed".
    """

    name = "DSMIPv6 Option - NAT Detection"
    fields_desc = [
        ByteEnumField("otype", OPT_NAT_DETECTION, _mobopttypes),
        ByteField("olen", 6),
        BitField("F", 0, 1),
        XBitField("reserved", 0, 15),
        IntField("refresh", 0),
    ]
    x = 4
    y = 0


class MIP6OptIPv4CareOfAddress(_MIP6OptAlign):
    """IPv4 Care-of Address option (RFC 5555 §3.1.2), type 32, alignment 4n."""

    name = "DSMIPv6 Option - IPv4 Care-of Address"
    fields_desc = [
        ByteEnumField("otype", OPT_IPV4_COA, _mobopttypes),
        ByteField("olen", 6),
        XShortField("reserved", 0),
        IPField("coa", "0.0.0.0"),
    ]
    x = 4
    y = 0


_DSMIP6_OPTIONS = {
    OPT_IPV4_HOA: MIP6OptIPv4HomeAddress,
    OPT_IPV4_ADDR_ACK: MIP6OptIPv4AddrAck,
    OPT_NAT_DETECTION: MIP6OptNATDetection,
    OPT_IPV4_COA: MIP6OptIPv4CareOfAddress,
}
# scapy's MIP6OptUnknown.dispatch_hook looks option types up in this module-level dict.
inet6.moboptcls.update(_DSMIP6_OPTIONS)


# -- Binding Update with the F flag -----------------------------------------------------


class MIP6MH_BU_DSMIP6(MIP6MH_BU):
    """scapy's Binding Update plus the F flag of RFC 5555 §3.1.3.

    Wire layout of the 16 bits after the sequence number: ``A H L K M R P F`` then 8
    reserved bits, then the lifetime (units of 4 s). ``flags`` is scapy's unchanged
    7-bit field (``"PRMKLHA"``: A is the most significant bit); ``F`` is separate.
    """

    name = "IPv6 Mobility Header - Binding Update (DSMIPv6)"
    # so that ``MIP6MH_BU in pkt`` and ``pkt[MIP6MH_BU]`` still find a dissected BU
    match_subclass = True
    fields_desc = [
        ByteEnumField("nh", 59, ipv6nh),
        ByteField("len", None),
        ByteEnumField("mhtype", 5, mhtypes),
        ByteField("res", None),
        XShortField("cksum", None),
        XShortField("seq", None),
        FlagsField("flags", "KHA", 7, "PRMKLHA"),
        BitField("F", 0, 1),
        XBitField("reserved", 0, 8),
        LifetimeField("mhtime", 3),
        _PhantomAutoPadField("autopad", 1),
        _OptionsField(
            "options", [], MIP6OptUnknown, 12, length_from=lambda pkt: 8 * pkt.len - 4
        ),
    ]


inet6._mip6_mhtype2cls[5] = MIP6MH_BU_DSMIP6


# -- MH checksum (RFC 6275 §6.1.1) -----------------------------------------------------

_EXT_HEADERS = (0, 43, 60)  # hop-by-hop, routing, destination options
_FRAGMENT = 44
_HAO_TYPE = 0xC9


def _to_bytes(packet: bytes | Packet) -> bytes:
    if isinstance(packet, Packet):
        if not isinstance(packet, IPv6):
            if IPv6 not in packet:
                raise MalformedPacket("no IPv6 header in packet")
            packet = packet[IPv6]
        return bytes(packet)
    return bytes(packet)


def _locate_mh(data: bytes) -> tuple[bytes, bytes, int, int]:
    """Return (pseudo src, pseudo dst, offset of the MH, MH length) in an IPv6 packet."""
    if len(data) < 40 or data[0] >> 4 != 6:
        raise MalformedPacket("not an IPv6 packet")
    plen = struct.unpack("!H", data[4:6])[0]
    if 40 + plen > len(data):
        raise MalformedPacket(
            f"IPv6 payload length {plen} exceeds the {len(data) - 40} bytes present"
        )
    end = 40 + plen
    src, dst = data[8:24], data[24:40]
    nh, off = data[6], 40
    hoa: bytes | None = None
    final_dst: bytes | None = None
    while nh != MH_PROTO:
        if nh == _FRAGMENT:
            raise MalformedPacket("fragmented Mobility Header is not supported")
        if nh not in _EXT_HEADERS:
            raise MalformedPacket(f"no Mobility Header (next header {nh})")
        if off + 2 > end:
            raise MalformedPacket("truncated IPv6 extension header")
        hlen = 8 * (data[off + 1] + 1)
        if off + hlen > end:
            raise MalformedPacket("truncated IPv6 extension header")
        hdr = data[off : off + hlen]
        if nh == 60:
            i = 2
            while i < hlen:
                otype = hdr[i]
                if otype == 0:
                    i += 1
                    continue
                if i + 2 > hlen or i + 2 + hdr[i + 1] > hlen:
                    raise MalformedPacket("truncated destination option")
                if otype == _HAO_TYPE:
                    if hdr[i + 1] != 16:
                        raise MalformedPacket("Home Address option length is not 16")
                    hoa = hdr[i + 2 : i + 18]
                i += 2 + hdr[i + 1]
        elif nh == 43 and final_dst is None:
            segleft = hdr[3]
            naddr = (hlen - 8) // 16
            if hdr[2] == 2 and (hdr[1] != 2 or segleft > 1):
                raise MalformedPacket("type 2 routing header must have length 2, segleft <= 1")
            if segleft and naddr:
                final_dst = hdr[8 + 16 * (naddr - 1) : 8 + 16 * naddr]
        nh, off = hdr[0], off + hlen
    if off + 6 > end:
        raise MalformedPacket("truncated Mobility Header")
    mh_len = 8 * (data[off + 1] + 1)
    if off + mh_len > end:
        raise MalformedPacket(
            f"Mobility Header length {mh_len} exceeds the {end - off} bytes present"
        )
    return hoa or src, final_dst or dst, off, mh_len


def _pseudo_checksum(src: bytes, dst: bytes, mh: bytes) -> int:
    """The Internet checksum (scapy's, as the rest of the stack uses) over the IPv6
    pseudo-header for the MH and the MH itself."""
    pseudo = src + dst + struct.pack("!I", len(mh)) + b"\x00\x00\x00" + bytes([MH_PROTO])
    return checksum(pseudo + mh)


def mh_checksum(packet: bytes | Packet) -> int:
    """The MH checksum an IPv6 packet's Mobility Header should carry (RFC 6275 §6.1.1).

    ``packet`` is the IPv6 packet (bytes starting with the IPv6 header, or a scapy packet
    containing an IPv6 layer: its first one is used). The checksum field's current value
    is ignored. Pseudo-header: source = HAO home address if present, else IPv6 source;
    destination = last address of a routing header with segments left (RH2: the home
    address), else IPv6 destination; upper-layer length = MH length; next header 135.
    """
    data = _to_bytes(packet)
    src, dst, off, mh_len = _locate_mh(data)
    mh = data[off : off + 4] + b"\x00\x00" + data[off + 6 : off + mh_len]
    return _pseudo_checksum(src, dst, mh)


def verify_mh_checksum(packet: bytes | Packet) -> bool:
    """True when the Mobility Header's checksum field is correct."""
    data = _to_bytes(packet)
    src, dst, off, mh_len = _locate_mh(data)
    return _pseudo_checksum(src, dst, data[off : off + mh_len]) == 0


def _with_checksum(pkt: IPv6) -> IPv6:
    """Rebuild ``pkt`` with the MH checksum computed by :func:`mh_checksum`."""
    from scapy.layers.inet6 import _MobilityHeader

    mh = pkt
    while not isinstance(mh, _MobilityHeader):
        mh = mh.payload
    mh.cksum = 0
    mh.cksum = mh_checksum(bytes(pkt))
    return IPv6(bytes(pkt))


# -- builders ---------------------------------------------------------------------------


def _lifetime_units(lifetime: int) -> int:
    if lifetime < 0 or lifetime % 4 or lifetime // 4 > 0xFFFF:
        raise LocalProtocolError(
            f"lifetime {lifetime} s is not a multiple of 4 s in 0..{4 * 0xFFFF}"
        )
    return lifetime // 4


def build_bu(
    hoa: str,
    coa: str | None,
    ha: str,
    seq: int,
    lifetime: int,
    *,
    a: bool = True,
    h: bool = True,
    l: bool = False,  # noqa: E741 - the RFC's flag name
    k: bool = True,
    f: bool = False,
    options: Iterable[Packet] = (),
) -> IPv6:
    """A Binding Update from the MN (RFC 6275 §6.1.7, §11.7.1).

    With an IPv6 ``coa``: ``IPv6(src=coa, dst=ha) / DestOpt(HAO(hoa)) / BU``. With
    ``coa=None`` (DSMIP6 from an IPv4 network, RFC 5555 §4.1, the CoA goes in an IPv4
    Care-of Address option): ``IPv6(src=hoa, dst=ha) / BU``. ``lifetime`` is in seconds
    (a multiple of 4). The MH checksum is filled in. Returns the dissected packet.
    """
    if not 0 <= seq <= 0xFFFF:
        raise LocalProtocolError(f"sequence number {seq} out of range")
    flags = "".join(c for c, on in (("A", a), ("H", h), ("L", l), ("K", k)) if on)
    bu = MIP6MH_BU_DSMIP6(
        seq=seq, flags=flags, F=int(f), mhtime=_lifetime_units(lifetime),
        options=list(options),
    )
    if coa is None:
        pkt = IPv6(src=hoa, dst=ha) / bu
    else:
        pkt = IPv6(src=coa, dst=ha) / IPv6ExtHdrDestOpt(options=[HAO(hoa=hoa)]) / bu
    return _with_checksum(pkt)


def build_ba(
    ha: str,
    coa: str | None,
    hoa: str,
    seq: int,
    lifetime: int,
    *,
    status: int = 0,
    k: bool = True,
    options: Iterable[Packet] = (),
) -> IPv6:
    """A Binding Acknowledgement from the HA (RFC 6275 §6.1.8, §10.3.1).

    With an IPv6 ``coa``: ``IPv6(src=ha, dst=coa) / RH2(hoa, segleft=1) / BA``. With
    ``coa=None`` (DSMIP6 over IPv4, RFC 5555 §4.1): ``IPv6(src=ha, dst=hoa) / BA``.
    ``lifetime`` in seconds (multiple of 4). MH checksum filled in.
    """
    if not 0 <= seq <= 0xFFFF:
        raise LocalProtocolError(f"sequence number {seq} out of range")
    if not 0 <= status <= 255:
        raise LocalProtocolError(f"status {status} out of range")
    ba = MIP6MH_BA(
        status=status, flags="K" if k else 0, res2=0, seq=seq,
        mhtime=_lifetime_units(lifetime), options=list(options),
    )
    if coa is None:
        pkt = IPv6(src=ha, dst=hoa) / ba
    else:
        rh2 = IPv6ExtHdrRouting(type=2, segleft=1, addresses=[hoa])
        pkt = IPv6(src=ha, dst=coa) / rh2 / ba
    return _with_checksum(pkt)


# -- DSMIP6 IPv4/UDP tunnelling (RFC 5555 §4.1) -----------------------------------------


# UDP 4191 carries IPv6 or IPv4 (version nibble decides, RFC 5555 §4.1); scapy's IPv46
# dispatches on that nibble, so a dissected tunnel packet shows its inner packet.
bind_layers(UDP, IPv46, dport=DSMIP6_UDP_PORT)
bind_layers(UDP, IPv46, sport=DSMIP6_UDP_PORT)


def encapsulate_udp4(
    inner: bytes | Packet,
    src: str,
    dst: str,
    *,
    sport: int = DSMIP6_UDP_PORT,
    dport: int = DSMIP6_UDP_PORT,
    ttl: int = 64,
) -> IP:
    """``IPv4(src, dst) / UDP(sport, dport) / inner`` (inner: an IPv6 or IPv4 packet)."""
    raw = bytes(inner)
    if not raw or raw[0] >> 4 not in (4, 6):
        raise LocalProtocolError("inner packet is neither IPv4 nor IPv6")
    inner_cls = IPv6 if raw[0] >> 4 == 6 else IP
    outer = IP(src=src, dst=dst, ttl=ttl) / UDP(sport=sport, dport=dport)
    return IP(bytes(outer / inner_cls(raw)))


def decapsulate_udp4(packet: bytes | Packet, *, port: int = DSMIP6_UDP_PORT) -> Packet:
    """The inner IPv6 (or IPv4) packet of an IPv4/UDP DSMIP6 tunnel packet.

    The inner version is read from the first nibble after the UDP header (RFC 5555
    §4.1). Raises :class:`MalformedPacket` when the packet is not IPv4/UDP with ``port``
    as source or destination, or the UDP payload is not an IP packet.
    """
    if isinstance(packet, Packet):
        if IP not in packet:
            raise MalformedPacket("no IPv4 header")
        packet = bytes(packet[IP])
    data = bytes(packet)
    if len(data) < 20 or data[0] >> 4 != 4:
        raise MalformedPacket("not an IPv4 packet")
    ihl = 4 * (data[0] & 0x0F)
    total = struct.unpack("!H", data[2:4])[0]
    if ihl < 20 or total < ihl + 8 or total > len(data):
        raise MalformedPacket("bad IPv4 header or total length")
    if data[9] != 17:
        raise MalformedPacket(f"IPv4 protocol {data[9]} is not UDP")
    sport, dport, ulen = struct.unpack("!HHH", data[ihl : ihl + 6])
    if port not in (sport, dport):
        raise MalformedPacket(f"UDP ports {sport}->{dport} are not DSMIP6 port {port}")
    if ulen < 8 or ihl + ulen > total:
        raise MalformedPacket("bad UDP length")
    inner = data[ihl + 8 : ihl + ulen]
    if not inner:
        raise MalformedPacket("empty UDP payload")
    version = inner[0] >> 4
    if version == 6:
        if len(inner) < 40 or 40 + struct.unpack("!H", inner[4:6])[0] > len(inner):
            raise MalformedPacket("truncated inner IPv6 packet")
        return _dissect_inner(IPv6, inner)
    if version == 4:
        return _dissect_inner(IP, inner)
    raise MalformedPacket(f"UDP payload is IP version {version}")


def _dissect_inner(cls: type[Packet], inner: bytes) -> Packet:
    """scapy's dissection of the tunnelled packet; its failure is bad input.

    scapy 2.8 raises on some headers a peer can send: ``IndexError`` guessing the class
    after a routing header (next header 43) with fewer than 3 bytes left -- it reads the
    Routing Type, RFC 8200 §4.4, to spot a segment routing header, RFC 8754 §2 --
    ``struct.error`` on an IPv4 header cut short. The same rule as the node's own
    dissection (``mip6lab.net.node._dissect``): a packet that does not dissect is
    malformed (RFC 5555 §4.1 has the HA drop what is not an IP packet).
    """
    try:
        return cls(inner)
    except Exception as exc:
        raise MalformedPacket(f"inner {cls.__name__} packet does not dissect "
                              f"({type(exc).__name__})") from exc


def build_dsmip6_bu(
    hoa: str,
    ha: str,
    v4coa: str,
    ha_v4: str,
    seq: int,
    lifetime: int,
    *,
    ipv4_hoa: str | None = None,
    ipv4_plen: int = 32,
    f: bool = False,
    k: bool = True,
    sport: int = DSMIP6_UDP_PORT,
) -> IP:
    """BU from an IPv4-only visited network (RFC 5555 §4.1, §4.2).

    ``IPv4(v4coa -> ha_v4) / UDP(sport -> 4191) / IPv6(hoa -> ha) / BU`` with the IPv4
    Care-of Address option and, when ``ipv4_hoa`` is given ("0.0.0.0" requests one),
    the IPv4 Home Address option.
    """
    options: list[Packet] = []
    if ipv4_hoa is not None:
        options.append(MIP6OptIPv4HomeAddress(hoa=ipv4_hoa, plen=ipv4_plen))
    options.append(MIP6OptIPv4CareOfAddress(coa=v4coa))
    bu = build_bu(hoa, None, ha, seq, lifetime, k=k, f=f, options=options)
    return encapsulate_udp4(bu, v4coa, ha_v4, sport=sport)


# -- strict validation ------------------------------------------------------------------

# type -> (exact option data length or None for "any", alignment x, y)
_OPTION_RULES: dict[int, tuple[int | None, int, int]] = {
    1: (None, 0, 0),  # PadN
    2: (2, 2, 0),  # Binding Refresh Advice, 2n
    3: (16, 8, 6),  # Alternate CoA, 8n+6
    4: (4, 2, 0),  # Nonce Indices, 2n
    5: (12, 8, 2),  # Binding Authorization Data, 8n+2
    6: (18, 8, 4),  # Mobile Network Prefix (RFC 3963), 8n+4
    OPT_IPV4_HOA: (6, 4, 0),
    OPT_IPV4_ADDR_ACK: (6, 4, 0),
    OPT_NAT_DETECTION: (6, 4, 0),
    OPT_IPV4_COA: (6, 4, 0),
}

#: Offset of the first option from the start of the MH, per MH type (RFC 6275 §6.1).
_OPTIONS_START = {0: 8, 1: 16, 2: 16, 3: 24, 4: 24, 5: 12, 6: 12, 7: 24}


@dataclass(frozen=True)
class MobilityOption:
    """One option found by the validator: type, offset from the MH start, data."""

    type: int
    offset: int
    data: bytes


def validate_mobility_options(data: bytes, start: int = 12) -> list[MobilityOption]:
    """Check the options area ``data`` of a Mobility Header strictly.

    ``start`` is the offset of ``data`` from the start of the MH (12 for BU and BA),
    used for the alignment checks. Checks: every option is complete (type and length
    present, data within the area); the length of each known option type is the one
    its RFC fixes; each known option sits at its alignment (xn+y from the MH start);
    the MH (``start + len(data)``) is a multiple of 8 octets. Unknown types are kept
    (RFC 6275 §6.2.1: skipped by the receiver). Pad1/PadN are not returned.
    Raises :class:`MalformedPacket` with the reason.
    """
    data = bytes(data)
    if (start + len(data)) % 8:
        raise MalformedPacket(
            f"Mobility Header length {start + len(data)} is not a multiple of 8"
        )
    found: list[MobilityOption] = []
    i = 0
    while i < len(data):
        otype = data[i]
        pos = start + i
        if otype == 0:  # Pad1
            i += 1
            continue
        if i + 2 > len(data):
            raise MalformedPacket(
                f"option type {otype} at offset {pos} truncated (no length)"
            )
        olen = data[i + 1]
        if i + 2 + olen > len(data):
            raise MalformedPacket(
                f"option type {otype} at offset {pos}: length {olen} runs past the end "
                f"of the options ({len(data) - i - 2} bytes left)"
            )
        rule = _OPTION_RULES.get(otype)
        if rule is not None:
            want, x, y = rule
            if want is not None and olen != want:
                raise MalformedPacket(
                    f"option type {otype} at offset {pos}: length {olen}, expected {want}"
                )
            if x and pos % x != y:
                raise MalformedPacket(
                    f"option type {otype} at offset {pos} violates alignment {x}n+{y}"
                )
        if otype != 1:
            found.append(MobilityOption(otype, pos, data[i + 2 : i + 2 + olen]))
        i += 2 + olen
    return found


def validate_mobility_header(mh: bytes) -> list[MobilityOption]:
    """Check a whole Mobility Header (bytes from its first octet) and its options.

    Payload proto must be 59 (RFC 6275 §6.1.1), the header length field must match the
    bytes given, the fixed part of known MH types must fit; then
    :func:`validate_mobility_options` runs on the options area.
    """
    mh = bytes(mh)
    if len(mh) < 8:
        raise MalformedPacket(f"Mobility Header truncated ({len(mh)} bytes)")
    if mh[0] != 59:
        raise MalformedPacket(f"Mobility Header payload proto {mh[0]} is not 59")
    length = 8 * (mh[1] + 1)
    if length != len(mh):
        raise MalformedPacket(
            f"Mobility Header length field says {length} bytes, {len(mh)} present"
        )
    start = _OPTIONS_START.get(mh[2])
    if start is None:
        return []  # unknown MH type: answered with a Binding Error, not parsed here
    if start > length:
        raise MalformedPacket(f"MH type {mh[2]} needs {start} bytes, has {length}")
    return validate_mobility_options(mh[start:], start)


def check_mobility_message(packet: bytes, mh: bytes) -> list[MobilityOption]:
    """Everything a receiver checks of a Mobility Header message before reading it: the
    checksum over the home address (RFC 6275 §9.2) and the options (§6.2). Raises
    :class:`MalformedPacket` with the reason; returns the options."""
    if not verify_mh_checksum(packet):
        raise MalformedPacket("Mobility Header checksum is wrong (§9.2)")
    try:
        return validate_mobility_header(mh)
    except MalformedPacket as exc:
        raise MalformedPacket(f"malformed mobility option: {exc.reason}") from exc

