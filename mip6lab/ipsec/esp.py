"""ESP packet processing (RFC 4303), in transport and tunnel mode, optionally in UDP.

This is the data path: IP packets in, IP packets out, as bytes. It is kept off scapy
on purpose (STYLE: scapy costs ~0.3 ms a packet; an ESP path must not): the headers it
emits are built by scapy once per SA as templates and only their length and checksum
fields are patched per packet; scapy's ``ESP`` layer dissects what we send, in the
trace and in pcaps.

Outbound (§3.3): take the sequence number, pad so that payload || padding || pad length
|| next header fills whole blocks (padding bytes 1, 2, 3 ... as §2.4 says), seal with the
SA's suite, and put the ESP header where the mode says:

- transport, IPv6: after the extension headers that the routers on the path or the
  destination must see first -- Hop-by-Hop, Routing, Fragment, and a Destination Options
  header that carries a Home Address option (RFC 6275 §6.3: HAO comes before ESP);
- transport, IPv4: after the IP header;
- tunnel: a new outer IPv6 or IPv4 header from the SA's endpoints, next header 41 / 4.

With UDP encapsulation (RFC 3948 §2.1) a UDP header goes between the outer IP header and
ESP: checksum zero over IPv4, computed over IPv6 (RFC 8200 §8.1 forbids zero there).

Inbound (§3.4): the SA by SPI, the replay pre-check, the ICV, the replay window update,
then the trailer checks (pad length within the payload, padding bytes as sent, next
header known), and the packet is rebuilt. Every failure raises :class:`EspError` with
the RFC's reason; the caller drops the packet, counts it on the SA and traces it.
"""

from __future__ import annotations

import copy
import struct
from typing import NamedTuple

from cryptography.exceptions import InvalidTag
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.utils import checksum

from ..crypto.esp_suites import IntegrityError
from ..errors import MalformedPacket, RemoteProtocolError
from .replay import MASK32, ReplayError, ReplayWindow
from .sad import SecurityAssociation, SecurityAssociationDatabase
from .selectors import HAO_OPTION, extension_length, find_option, packet_selectors

IPPROTO_IPIP = 4
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_IPV6 = 41
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ESP = 50
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60
IPPROTO_HOPOPTS = 0
IPV6_HEADER = 40
ESP_HEADER = 8
UDP_HEADER = 8
NAT_T_PORT = 4500
_EXTENSIONS = frozenset((IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS))


class EspError(RemoteProtocolError):
    """An inbound ESP packet refused, with the reason RFC 4303 gives.

    ``kind`` is the short, stable name the SA counts the refusal under in
    ``sa.errors`` ("integrity check failed", "replay", "bad pad length" ...); ``reason``
    is the full sentence, with the numbers of this packet, for the trace.
    """

    def __init__(self, reason: str, kind: str | None = None) -> None:
        super().__init__(reason)
        self.kind = kind or reason.split(" (")[0].split(":")[0]


class Decapsulated(NamedTuple):
    """What inbound processing found: the SA, the packet rebuilt, its next header."""

    sa: SecurityAssociation
    packet: bytes
    next_header: int
    udp_encapsulated: bool


# -- header walking ----------------------------------------------------------------------


def ipv6_esp_offset(packet: bytes) -> tuple[int, int]:
    """Where ESP goes in an IPv6 packet in transport mode: (offset, offset of the next
    header field to rewrite). ESP follows Hop-by-Hop, Routing, Fragment, and every
    Destination Options header that comes before them or carries a Home Address option.
    """
    nh_field, nh, offset = 6, packet[6], IPV6_HEADER
    insert_at, insert_field = offset, nh_field
    while nh in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS):
        length = extension_length(packet, offset, nh)
        following = packet[offset]
        hao = find_option(packet[offset + 2:offset + length], HAO_OPTION)
        before_esp = (nh != IPPROTO_DSTOPTS or following in (IPPROTO_ROUTING, IPPROTO_FRAGMENT)
                      or hao is not None)
        nh_field, nh = offset, following
        offset += length
        if before_esp:
            insert_at, insert_field = offset, nh_field
    return insert_at, insert_field


# -- outbound ----------------------------------------------------------------------------


class _Templates:
    """Outer headers of one SA, built by scapy once, patched per packet."""

    def __init__(self, sa: SecurityAssociation) -> None:
        proto = IPPROTO_UDP if sa.encap else IPPROTO_ESP
        if sa.dst.version == 6:
            self.ip = bytes(IPv6(src=str(sa.src), dst=str(sa.dst), nh=proto, hlim=64, plen=0))
        else:
            self.ip = bytes(IP(src=str(sa.src), dst=str(sa.dst), proto=proto, ttl=64,
                               flags="DF", id=0, len=20, chksum=0))
        self.udp = bytes(UDP(sport=sa.encap[0], dport=sa.encap[1], len=0, chksum=0)) \
            if sa.encap else b""


def _template(sa: SecurityAssociation) -> _Templates:
    cached = getattr(sa, "_templates", None)
    if cached is None or cached[0] != (sa.src, sa.dst, sa.encap):
        cached = ((sa.src, sa.dst, sa.encap), _Templates(sa))
        sa._templates = cached  # type: ignore[attr-defined]
    return cached[1]


_U32 = struct.Struct(">I")
_PADDING = [bytes(range(1, n + 1)) for n in range(256)]   # RFC 4303 §2.4: 1, 2, 3 ...
# padding || pad length || next header, for every pad length a suite can need
_TRAILERS = [[_PADDING[n] + bytes((n, nh)) for nh in range(256)] for n in range(16)]


def seal(sa: SecurityAssociation, payload: bytes, next_header: int, iv: bytes = b"") -> bytes:
    """ESP header || IV || ciphertext || ICV for ``payload`` on outbound SA ``sa``
    (RFC 4303 §3.3). Kept lean: it runs for every packet."""
    seq = sa.seq + 1
    if seq > sa.seq_limit:
        sa.next_seq()  # raises SaExhausted with the explanation
    sa.seq = seq
    cipher, _, _, alignment, gcm, salt = sa._shape or _shape_of(sa)
    pad_len = (-(len(payload) + 2)) % alignment
    plaintext = payload + _TRAILERS[pad_len][next_header]
    sa.packets += 1
    sa.bytes_processed += len(plaintext)
    if gcm is not None:  # the 64-bit sequence number is GCM's unique IV (RFC 4106 §3)
        iv = seq.to_bytes(8, "big")
        header = sa.spi_bytes + iv[4:]
        return header + iv + gcm.encrypt(salt + iv, plaintext, header)
    if cipher.spec.iv_size == 8:
        iv = seq.to_bytes(8, "big")
    header = sa.spi_bytes + (seq & MASK32).to_bytes(4, "big")
    esn_high = (seq >> 32).to_bytes(4, "big") if sa.esn else b""
    return header + cipher.seal(header, esn_high, iv, plaintext)


def _ipv4_fix(header: bytes, total_length: int, proto: int | None = None) -> bytes:
    out = bytearray(header)
    out[2:4] = total_length.to_bytes(2, "big")
    if proto is not None:
        out[9] = proto
    out[10:12] = b"\x00\x00"
    out[10:12] = checksum(bytes(out)).to_bytes(2, "big")
    return bytes(out)


def _udp_wrap(sa: SecurityAssociation, esp: bytes, src: bytes, dst: bytes) -> bytes:
    """Put ``esp`` in the SA's UDP header (RFC 3948 §2.1)."""
    udp = bytearray(_template(sa).udp)
    length = UDP_HEADER + len(esp)
    udp[4:6] = length.to_bytes(2, "big")
    if sa.dst.version == 6:  # RFC 8200 §8.1: a UDP checksum is mandatory over IPv6
        pseudo = src + dst + length.to_bytes(4, "big") + b"\x00\x00\x00\x11"
        value = checksum(pseudo + bytes(udp) + esp) or 0xFFFF
        udp[6:8] = value.to_bytes(2, "big")
    return bytes(udp) + esp


def encapsulate(sa: SecurityAssociation, packet: bytes, iv: bytes = b"") -> bytes:
    """Protect the IP packet ``packet`` with outbound SA ``sa``; the new IP packet.

    ``iv`` is used by suites that need a random IV (AES-CBC); the caller draws it from
    its random source, so a simulated lab stays deterministic.
    """
    version = packet[0] >> 4
    if sa.mode == "tunnel":
        esp = seal(sa, packet, IPPROTO_IPV6 if version == 6 else IPPROTO_IPIP, iv)
        outer = _template(sa).ip
        if sa.encap:
            esp = _udp_wrap(sa, esp, sa.src.packed, sa.dst.packed)
        if sa.dst.version == 6:
            return outer[:4] + len(esp).to_bytes(2, "big") + outer[6:] + esp
        return _ipv4_fix(outer, 20 + len(esp)) + esp
    if version != sa.dst.version:
        raise ValueError("a transport-mode SA carries packets of its own address family")
    if version == 6:
        if packet[6] in _EXTENSIONS:
            at, nh_field = ipv6_esp_offset(packet)
        else:
            at, nh_field = IPV6_HEADER, 6
        esp = seal(sa, packet[at:], packet[nh_field], iv)
        head = bytearray(packet[:at])
        if sa.encap:
            src, dst = packet[8:24], packet[24:40]
            if at > IPV6_HEADER:  # a HAO or type 2 routing header before the UDP header:
                # its pseudo-header holds the home address (RFC 6275 §11.3.1, RFC 8200 §8.1)
                selectors = packet_selectors(packet)
                src, dst = selectors.src.packed, selectors.dst.packed
            esp = _udp_wrap(sa, esp, src, dst)
        head[nh_field] = IPPROTO_UDP if sa.encap else IPPROTO_ESP
        head[4:6] = (len(head) - IPV6_HEADER + len(esp)).to_bytes(2, "big")
        return bytes(head) + esp
    ihl = (packet[0] & 0x0F) * 4
    esp = seal(sa, packet[ihl:], packet[9], iv)
    if sa.encap:
        esp = _udp_wrap(sa, esp, packet[12:16], packet[16:20])
    proto = IPPROTO_UDP if sa.encap else IPPROTO_ESP
    return _ipv4_fix(packet[:ihl], ihl + len(esp), proto) + esp


# -- inbound -----------------------------------------------------------------------------


def locate_esp(packet: bytes) -> tuple[int, int, bool]:
    """(offset of the ESP header, offset of the next-header field before it, in UDP?)

    Raises EspError when the packet carries no ESP (a non-ESP marker, a keepalive),
    MalformedPacket when its IP header is truncated or not IPv4/IPv6.
    """
    version = packet[0] >> 4 if packet else 0
    if version == 6:
        if len(packet) < IPV6_HEADER:
            raise MalformedPacket("IPv6 header truncated")
        offset, nh_field, nh = IPV6_HEADER, 6, packet[6]
        while nh in (IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS):
            length = extension_length(packet, offset, nh)
            nh_field, nh = offset, packet[offset]
            offset += length
    elif version == 4:
        offset, nh_field = (packet[0] & 0x0F) * 4, 9
        if offset < 20 or len(packet) < offset:
            raise MalformedPacket("IPv4 header truncated or IHL below 5")
        nh = packet[9]
    else:
        raise MalformedPacket(f"not an IP packet (version {version})")
    if nh == IPPROTO_ESP:
        return offset, nh_field, False
    if nh == IPPROTO_UDP and len(packet) >= offset + UDP_HEADER and \
            int.from_bytes(packet[offset + 2:offset + 4], "big") == NAT_T_PORT:
        body = packet[offset + UDP_HEADER:]
        if len(body) == 1 and body[0] == 0xFF:
            raise EspError("NAT-keepalive (RFC 3948 §2.3), not ESP")
        if len(body) >= 4 and body[:4] == b"\x00\x00\x00\x00":
            raise EspError("non-ESP marker: an IKE message (RFC 3948 §2.2)")
        return offset + UDP_HEADER, nh_field, True
    raise EspError(f"next header {nh} is not ESP" if nh != IPPROTO_UDP
                   else "UDP, not to port 4500: not ESP")


def decapsulate(sad: SecurityAssociationDatabase, packet: bytes,
                now_us: int = 0) -> Decapsulated:
    """Process an inbound ESP packet (RFC 4303 §3.4); raise EspError on any refusal."""
    if len(packet) >= IPV6_HEADER and packet[0] >> 4 == 6 and packet[6] == IPPROTO_ESP:
        # the common case, no walking
        at, nh_field, in_udp = IPV6_HEADER, 6, False
    else:
        at, nh_field, in_udp = locate_esp(packet)
    esp = packet[at:]
    if len(esp) < ESP_HEADER + 4:
        raise EspError("ESP packet truncated")
    spi = int.from_bytes(esp[:4], "big")
    sa = sad.inbound(spi)
    if sa is None:
        raise EspError(f"no SA for SPI 0x{spi:08x} (RFC 4303 §3.4.2: discard, audit)")
    try:
        return _decapsulate(sa, packet, at, nh_field, in_udp, esp)
    except EspError as exc:
        sa.count_error(exc.kind)
        raise


def unseal(sa: SecurityAssociation, esp: bytes, in_udp: bool = False) -> tuple[bytes, int]:
    """Open one ESP packet (ESP header .. ICV) on inbound SA ``sa``: (payload, next header).

    RFC 4303 §3.4 in order: SA state and encapsulation, lengths, the replay pre-check,
    the ICV, the window update, then the trailer. Raises EspError (not counted here).
    """
    state = sa.state
    if state != "mature" and state != "dying":
        if state == "dead":
            raise EspError(f"SA 0x{sa.spi:08x} reached its hard lifetime", "hard lifetime")
        raise EspError(f"SA 0x{sa.spi:08x} is larval: reserved by GETSPI, no keys yet",
                       "larval SA")
    if (sa.encap is not None) != in_udp:
        raise EspError("UDP encapsulation does not match the SA" if not in_udp
                       else "UDP-encapsulated ESP on an SA without encapsulation")
    cipher, min_body, overhead, alignment, gcm, salt = sa._shape or _shape_of(sa)
    body_len = len(esp) - ESP_HEADER
    if body_len < min_body:
        raise EspError("ESP packet truncated: shorter than IV, trailer and ICV")
    if (body_len - overhead) % alignment:
        raise EspError("ESP payload is not a whole number of blocks")
    seq = _U32.unpack_from(esp, 4)[0]
    replay = sa.replay
    if sa.esn:
        seq |= replay.infer_high(seq) << 32
    top = replay.top
    if seq <= top or seq == 0:   # only then can the window refuse it
        try:
            replay.check(seq)
        except ReplayError as exc:
            raise EspError(exc.reason, exc.kind) from None
    try:
        if gcm is not None:
            # a plain slice: cheaper than a memoryview at these sizes (measured)
            plaintext = gcm.decrypt(salt + esp[8:16], esp[16:], esp[:8])
        else:
            esn_high = (seq >> 32).to_bytes(4, "big") if sa.esn else b""
            plaintext = cipher.open(esp[:ESP_HEADER], esn_high, esp[ESP_HEADER:])
    except (IntegrityError, InvalidTag) as exc:
        why = exc if isinstance(exc, IntegrityError) else "ICV mismatch (AES-GCM tag)"
        raise EspError(f"integrity check failed: {why} (RFC 4303 §3.4.4)") from None
    shift = seq - top
    if 0 < shift < replay.size:   # in order: the window slides, inline
        replay.bitmap = ((replay.bitmap << shift) | 1) & replay.mask
        replay.top = seq
    else:
        replay.accept(seq)
    size = len(plaintext)
    sa.packets += 1
    sa.bytes_processed += size
    pad_len = plaintext[-2]
    if pad_len + 2 > size:
        raise EspError(f"pad length {pad_len} exceeds the payload (RFC 4303 §2.5)",
                       "bad pad length")
    if pad_len and plaintext[-2 - pad_len:-2] != _PADDING[pad_len]:
        raise EspError("padding bytes are not 1, 2, 3 ... (RFC 4303 §2.4)")
    next_header = plaintext[-1]
    if next_header == IPPROTO_NONE:
        raise EspError("dummy packet (next header 59, RFC 4303 §2.6): discarded")
    return plaintext[:-2 - pad_len], next_header


def _shape_of(sa: SecurityAssociation) -> tuple:
    """What ``seal`` and ``unseal`` need of an SA's suite, looked up once per SA: the
    cipher, the shortest body, the IV + ICV overhead, the alignment, and for AES-GCM
    without ESN the keyed AESGCM and the salt, called inline per packet (one flat tuple:
    an SA that carried a packet keeps it)."""
    cipher = sa.cipher
    spec = cipher.spec
    gcm, salt = cipher.keyed() if spec.iv_size == 8 and not sa.esn else (None, None)
    sa._shape = (cipher, spec.iv_size + spec.icv_size + 2, spec.iv_size + spec.icv_size,
                 spec.alignment, gcm, salt)
    return sa._shape


def _decapsulate(sa: SecurityAssociation, packet: bytes, at: int, nh_field: int,
                 in_udp: bool, esp: bytes) -> Decapsulated:
    payload, next_header = unseal(sa, esp, in_udp)
    if sa.mode == "tunnel":
        expected = IPPROTO_IPV6 if payload[:1] and payload[0] >> 4 == 6 else IPPROTO_IPIP
        if next_header != expected:
            raise EspError(f"next header {next_header} is not the inner IP packet",
                           "bad next header")
        return Decapsulated(sa, _inner_packet(payload), next_header, in_udp)
    if next_header in (IPPROTO_IPV6, IPPROTO_IPIP, IPPROTO_ESP):
        raise EspError(f"next header {next_header} in transport mode", "bad next header")
    return Decapsulated(sa, _rebuild_transport(packet, at, nh_field, in_udp, payload,
                                               next_header), next_header, in_udp)


def _inner_packet(inner: bytes) -> bytes:
    """The tunnelled packet, without TFC padding: bytes after the inner packet's own length
    are padding the sender may add (RFC 4303 §2.7), which the receiver discards."""
    if len(inner) < 20 or (inner[0] >> 4 == 6 and len(inner) < IPV6_HEADER):
        raise EspError("inner packet truncated", "inner packet truncated")
    length = IPV6_HEADER + int.from_bytes(inner[4:6], "big") if inner[0] >> 4 == 6 \
        else int.from_bytes(inner[2:4], "big")
    if length > len(inner):
        raise EspError("inner packet longer than the ESP payload", "inner packet truncated")
    return inner[:length]


def _rebuild_transport(packet: bytes, at: int, nh_field: int, in_udp: bool,
                       payload: bytes, next_header: int) -> bytes:
    """The packet as it was before ESP was inserted."""
    head = bytearray(packet[:at - UDP_HEADER] if in_udp else packet[:at])
    head[nh_field] = next_header
    if head[0] >> 4 == 6:
        head[4:6] = (len(head) - IPV6_HEADER + len(payload)).to_bytes(2, "big")
        rebuilt = bytes(head) + payload
    else:
        rebuilt = _ipv4_fix(bytes(head), len(head) + len(payload), next_header) + payload
    if in_udp and rebuilt[0] >> 4 == 4:  # only IPv4 meets a NAT44 on the way
        rebuilt = _fix_inner_checksum(rebuilt, len(head), next_header)
    return rebuilt


def _fix_inner_checksum(packet: bytes, offset: int, next_header: int) -> bytes:
    """RFC 3948 §3.1.2 option 2: after a NAT rewrote the outer addresses, recompute the
    transport checksum (UDP or TCP) over the addresses the packet now carries.

    On the bytes, the rest of the packet left as it came: a rebuild through scapy
    re-encoded the TCP options it had dissected and raised on options it could not
    (a Timestamp option of another length: TypeError, found by fuzzing)."""
    at = {IPPROTO_UDP: 6, IPPROTO_TCP: 16}.get(next_header)
    segment = packet[offset:]
    if at is None or len(segment) < (UDP_HEADER if next_header == IPPROTO_UDP else 20):
        return packet
    zeroed = segment[:at] + b"\0\0" + segment[at + 2:]
    pseudo = packet[12:20] + bytes([0, next_header]) + len(segment).to_bytes(2, "big")
    value = checksum(pseudo + zeroed)
    if next_header == IPPROTO_UDP and value == 0:
        value = 0xFFFF                  # RFC 768: zero means "no checksum"
    return packet[:offset] + zeroed[:at] + value.to_bytes(2, "big") + zeroed[at + 2:]


def open_copy(sa: SecurityAssociation, packet: bytes) -> Decapsulated:
    """Decrypt ``packet`` (an IP packet carrying ESP, perhaps in UDP 4500) on a copy of
    inbound SA ``sa`` with a fresh replay window: for a reader of a trace who holds the
    keys, so that a packet can be opened again, in any order, without touching the SA
    the node uses. Raises EspError as :func:`decapsulate` does."""
    at, nh_field, in_udp = locate_esp(packet)
    esp = packet[at:]
    if len(esp) < ESP_HEADER + 4:
        raise EspError("ESP packet truncated")
    reader = copy.copy(sa)
    reader.replay = ReplayWindow(sa.replay_window_size, sa.esn)
    reader.state = "mature"
    return _decapsulate(reader, packet, at, nh_field, in_udp, esp)


def esp_spi(packet: bytes) -> int | None:
    """The SPI of an ESP packet, or None if it carries no ESP."""
    try:
        at, _, _ = locate_esp(packet)
    except RemoteProtocolError:
        return None
    return int.from_bytes(packet[at:at + 4], "big") if len(packet) >= at + 4 else None


__all__ = ["EspError", "Decapsulated", "encapsulate", "decapsulate", "locate_esp", "open_copy",
           "ipv6_esp_offset", "esp_spi", "NAT_T_PORT"]
