"""IKEv2 messages and payloads as plain values, read and written with ``struct`` (RFC 7296 §3).

What this module is for: the IKE engine's own parse and build. :mod:`mip6lab.wire.ikev2`
declares the same formats as scapy classes, which is what a person sees (``show()``,
pcaps, the inspector); but a scapy ``Packet`` costs tens of microseconds to build or
dissect per layer, and an IKE_AUTH has a dozen layers. Here each payload is a small
``__slots__`` record and each format a few ``struct`` calls, so a whole handshake's
messages cost less than one scapy dissection. ``tests/ike/test_codec_roundtrip.py``
checks, with hypothesis, that both readings agree field by field.

Reading is strict and never raises anything but :class:`MalformedIKEMessage`: the bytes
first pass the structure checks of :func:`mip6lab.wire.ikev2.validate_message` (lengths
and counts that add up, §3.2, §3.3; fixed sizes), and only then are they cut into values.

The payloads (each ``TYPE`` is its payload type, §3.2; ``critical`` is the generic
header's critical bit; lengths, counts, SPI sizes and Next Payload are computed when
written, never stored):

====================  ==========  =====================================================
:class:`SA`           §3.3        proposals (:class:`SaProposal`) of transforms
                                  (:class:`SaTransform`, the Key Length attribute §3.3.5)
:class:`KE`           §3.4        DH group, key exchange data
:class:`IDi`/`IDr`    §3.5        ID type, identification data
:class:`CERT`         §3.6        encoding, certificate data
:class:`CERTREQ`      §3.7        encoding, certification authority (SHA-1 hashes)
:class:`AUTH`         §3.8        method, authentication data
:class:`Nonce`        §3.9        nonce data
:class:`Notify`       §3.10       protocol, SPI, type, data (typed readings by type)
:class:`Delete`       §3.11       protocol, SPIs
:class:`VendorID`     §3.12       vendor ID
:class:`TSi`/`TSr`    §3.13       selectors (:class:`AddressSelector`, §3.13.1, or
                                  :class:`RawSelector` for other TS types)
:class:`Encrypted`    §3.14       first inner payload type, IV | ciphertext | ICV
:class:`CP`           §3.15       CFG type, attributes (:class:`CpAttribute`)
:class:`EAP`          §3.16       the EAP message
:class:`UnknownPayload`           any other type, as bytes (§2.5)
====================  ==========  =====================================================
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Union

from .. import addresses
from ..crypto.ike.proposals import Proposal, Transform, memoized
from ..crypto.ike.transforms import Protocol, TransformType
from ..errors import LocalProtocolError
from . import ikev2 as _w
from .ikev2 import (MalformedIKEMessage, NotifyType, PayloadType, validate_inner_payloads,
                    validate_message)

__all__ = [
    "Message", "Payload", "SA", "SaProposal", "SaTransform", "KE", "IDi", "IDr", "CERT",
    "CERTREQ", "AUTH", "Nonce", "Notify", "Delete", "VendorID", "TSi", "TSr",
    "AddressSelector", "RawSelector", "Encrypted", "CP", "CpAttribute", "EAP",
    "UnknownPayload", "Encoded", "sa_segments", "decode_message", "decode_header",
    "decode_payloads",
    "encode_message", "encode_payloads", "encode_header", "PayloadType", "sa_payload",
    "cp_attribute", "notify",
    "find_notifies", "first", "firsts", "unknown_critical", "MalformedIKEMessage",
]

_HEADER = struct.Struct("!8s8sBBBBII")          # §3.1: SPIs, next, version, exchange,
                                                 # flags, message ID, length
_GENERIC = struct.Struct("!BBH")                 # §3.2: next payload, flags, length
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_KEY_LENGTH_ATTRIBUTE = 0x800E                   # §3.3.5: AF=1, type 14 (Key Length)
_HH = struct.Struct("!HH")
_BBH = struct.Struct("!BBH")
_PROPOSAL = struct.Struct("!BBHBBBB")            # §3.3.1: last, reserved, length, number,
                                                 # protocol, SPI size, transforms
_PROPOSAL_READ = struct.Struct("!xxHBBBB")
_TRANSFORM = struct.Struct("!BBHBBH")            # §3.3.2: last, reserved, length, type,
                                                 # reserved, transform ID
_TRANSFORM_READ = struct.Struct("!xxHBxH")
_SELECTOR = struct.Struct("!BBHHH")              # §3.13.1: type, protocol, length, ports


@dataclass(slots=True)
class Payload:
    """A payload of a message or of an SK payload's plaintext (§3.2)."""

    TYPE: ClassVar[int] = 0
    critical: bool = field(default=False, kw_only=True)

    @property
    def payload_type(self) -> int:
        return self.TYPE

    def body(self) -> bytes:
        """What follows the generic payload header."""
        raise NotImplementedError


# -- SA (§3.3) ----------------------------------------------------------------------------------

@dataclass(slots=True)
class SaTransform:
    """A Transform substructure (§3.3.2); ``key_length`` is the Key Length attribute in bits
    (§3.3.5, None when absent), ``attributes`` any further attribute octets as they are."""

    type: int
    id: int
    key_length: int | None = None
    attributes: bytes = b""


@dataclass(slots=True)
class SaProposal:
    """A Proposal substructure (§3.3.1): number, protocol ID, SPI, transforms."""

    number: int
    protocol: int
    spi: bytes
    transforms: tuple[SaTransform, ...]


@dataclass(slots=True)
class SA(Payload):
    """Security Association payload (§3.3)."""

    TYPE: ClassVar[int] = PayloadType.SA
    proposals: tuple[SaProposal, ...]

    def body(self) -> bytes:
        parts = []
        last_proposal = len(self.proposals) - 1
        for p_index, proposal in enumerate(self.proposals):
            transforms = []
            last_transform = len(proposal.transforms) - 1
            for t_index, t in enumerate(proposal.transforms):
                attributes = t.attributes if t.key_length is None else \
                    _HH.pack(_KEY_LENGTH_ATTRIBUTE, t.key_length) + t.attributes
                transforms.append(_TRANSFORM.pack(0 if t_index == last_transform else 3,
                                                  0, 8 + len(attributes), t.type, 0, t.id)
                                  + attributes)
            inner = b"".join(transforms)
            spi = proposal.spi
            parts.append(_PROPOSAL.pack(0 if p_index == last_proposal else 2, 0,
                                        8 + len(spi) + len(inner), proposal.number,
                                        proposal.protocol, len(spi), len(transforms))
                         + spi + inner)
        return b"".join(parts)

    def to_proposals(self) -> list[Proposal]:
        """The proposals as :class:`~mip6lab.crypto.ike.proposals.Proposal` values (number
        and SPI kept); one for a protocol other than IKE, AH or ESP is left out, since it
        cannot be chosen (§3.3.6)."""
        result = []
        for p in self.proposals:
            if p.protocol not in _PROTOCOLS:
                continue
            shape = tuple([(t.type, t.id, t.key_length) for t in p.transforms])
            if len(shape) <= _SHAPE_TRANSFORMS:
                template = _proposal_of(p.protocol, shape)
            else:
                template = _proposal_of.__wrapped__(p.protocol, shape)
            result.append(template if p.number == 1 and not p.spi   # as it is
                          else template.with_(number=p.number, spi=p.spi))
        return result


_PROTOCOLS = frozenset(int(p) for p in Protocol)
_SHAPE_TRANSFORMS = 32         # longer proposals are read without the cache


@lru_cache(maxsize=256)
def _proposal_of(protocol: int, shape: tuple[tuple[int, int, int | None], ...]) -> Proposal:
    """The :class:`Proposal` of a protocol and (type, ID, key length) transforms, number 1
    and no SPI: a peer sends the same few proposals again and again, so the value (and
    what it caches: its hash, its transforms by type) is made once per shape."""
    proposal = Proposal.from_transforms(protocol, [Transform(*t) for t in shape])
    hash(proposal)         # cached on it, so on every copy with_() makes
    return proposal


def sa_payload(proposals: Sequence[Proposal], spi: bytes | None = None) -> SA:
    """An SA payload from :class:`~mip6lab.crypto.ike.proposals.Proposal` values, each with
    its own number and SPI (or every one with ``spi``, §3.3.1: the SPI of the SA that
    the proposals would make). AES or Camellia without a Key Length is refused: §3.3.5
    makes it mandatory (strongSwan answers NO_PROPOSAL_CHOSEN without it)."""
    if not proposals:
        raise LocalProtocolError("an SA payload needs at least one proposal")
    result = []
    for proposal in proposals:
        protocol, shape = _wire_shape(proposal)
        result.append(SaProposal(proposal.number, protocol,
                                 bytes(proposal.spi if spi is None else spi),
                                 tuple([SaTransform(*t) for t in shape])))
    return SA(tuple(result))


@memoized
def _wire_shape(proposal: Proposal) -> tuple[int, tuple[tuple[int, int, int | None], ...]]:
    """(protocol, (type, ID, key length) of each transform) of a proposal's value, checked
    once: our SA payloads offer the few configured proposals again and again. (A refusal
    is an exception, which is not cached: it is raised every time.)"""
    if not proposal.transforms:
        raise LocalProtocolError(f"proposal {proposal.number} has no transform")
    shape = []
    for t in proposal.transforms:
        if (t.type == TransformType.ENCR and t.id in _w._KEY_LENGTH_REQUIRED
                and t.key_length is None):
            raise LocalProtocolError(f"{_w.EncrId(t.id).name} needs a Key Length "
                                     "attribute (RFC 7296 §3.3.5)")
        shape.append((int(t.type), int(t.id), t.key_length))
    return int(proposal.protocol), tuple(shape)


def _read_sa(body: bytes) -> SA:
    proposals, pos, end = [], 0, len(body)
    while pos < end:
        length, number, protocol, spi_size, count = _PROPOSAL_READ.unpack_from(body, pos)
        spi = body[pos + 8:pos + 8 + spi_size]
        transforms, t_pos, t_end = [], pos + 8 + spi_size, pos + length
        while t_pos < t_end:
            t_length, t_type, t_id = _TRANSFORM_READ.unpack_from(body, t_pos)
            attributes = body[t_pos + 8:t_pos + t_length]
            key_length = None
            if len(attributes) >= 4 and attributes[:2] == b"\x80\x0e":
                key_length = _U16.unpack_from(attributes, 2)[0]
                attributes = attributes[4:]
            transforms.append(SaTransform(t_type, t_id, key_length, attributes))
            t_pos += t_length
        proposals.append(SaProposal(number, protocol, spi, tuple(transforms)))
        pos += length
    return SA(tuple(proposals))


# -- payloads of a type and some data ---------------------------------------------------------

@dataclass(slots=True)
class KE(Payload):
    """Key Exchange payload (§3.4)."""

    TYPE: ClassVar[int] = PayloadType.KE
    group: int
    data: bytes

    def body(self) -> bytes:
        return _U16.pack(self.group) + b"\0\0" + self.data


@dataclass(slots=True)
class IDi(Payload):
    """Identification - Initiator (§3.5); ``body()`` is RestOfInitIDPayload (§2.15)."""

    TYPE: ClassVar[int] = PayloadType.IDi
    id_type: int
    data: bytes

    def body(self) -> bytes:
        return bytes((self.id_type, 0, 0, 0)) + self.data


@dataclass(slots=True)
class IDr(Payload):
    """Identification - Responder (§3.5); ``body()`` is RestOfRespIDPayload (§2.15)."""

    TYPE: ClassVar[int] = PayloadType.IDr
    id_type: int
    data: bytes

    def body(self) -> bytes:
        return bytes((self.id_type, 0, 0, 0)) + self.data


@dataclass(slots=True)
class CERT(Payload):
    """Certificate payload (§3.6)."""

    TYPE: ClassVar[int] = PayloadType.CERT
    encoding: int
    data: bytes

    def body(self) -> bytes:
        return bytes((self.encoding,)) + self.data


@dataclass(slots=True)
class CERTREQ(Payload):
    """Certificate Request payload (§3.7): the certification authority field."""

    TYPE: ClassVar[int] = PayloadType.CERTREQ
    encoding: int
    data: bytes

    def body(self) -> bytes:
        return bytes((self.encoding,)) + self.data


@dataclass(slots=True)
class AUTH(Payload):
    """Authentication payload (§3.8)."""

    TYPE: ClassVar[int] = PayloadType.AUTH
    method: int
    data: bytes

    def body(self) -> bytes:
        return bytes((self.method, 0, 0, 0)) + self.data


@dataclass(slots=True)
class Nonce(Payload):
    """Nonce payload (§3.9): 16 to 256 octets."""

    TYPE: ClassVar[int] = PayloadType.NONCE
    data: bytes

    def body(self) -> bytes:
        return self.data


@dataclass(slots=True)
class VendorID(Payload):
    """Vendor ID payload (§3.12)."""

    TYPE: ClassVar[int] = PayloadType.VENDOR_ID
    data: bytes

    def body(self) -> bytes:
        return self.data


@dataclass(slots=True)
class EAP(Payload):
    """EAP payload (§3.16): one EAP message (RFC 3748 §4), whose own Length is checked."""

    TYPE: ClassVar[int] = PayloadType.EAP
    data: bytes

    def body(self) -> bytes:
        return self.data


@dataclass(slots=True)
class Encrypted(Payload):
    """Encrypted payload (SK, §3.14): ``first_inner`` is its Next Payload, the type of the
    first payload inside; ``data`` is IV | ciphertext | ICV (see
    :mod:`mip6lab.crypto.ike.sk`)."""

    TYPE: ClassVar[int] = PayloadType.SK
    first_inner: int
    data: bytes

    def body(self) -> bytes:
        return self.data


@dataclass(slots=True)
class UnknownPayload(Payload):
    """A payload of a type this codec does not read (§2.5: skipped unless critical)."""

    type: int
    data: bytes

    @property
    def payload_type(self) -> int:
        return self.type

    def body(self) -> bytes:
        return self.data


@dataclass(slots=True)
class Encoded(UnknownPayload):
    """A payload to send given by its type and its body, already encoded: what an engine
    sends again and again with the same octets (an SA offer of its configured proposals,
    where only the SPI changes) is encoded once. Reading never makes one."""


def sa_segments(proposals: Sequence[Proposal], spi_size: int) -> tuple[bytes, ...]:
    """The body of :func:`sa_payload` ``(proposals, spi)`` for any SPI of ``spi_size``
    octets, cut around the SPI fields: ``spi.join(segments)`` is that body (every proposal
    carries the same SPI, §3.3.1). Raises what :func:`sa_payload` raises."""
    body = sa_payload(proposals, bytes(spi_size)).body()
    segments, pos, piece = [], 0, b""
    while pos < len(body):
        length = _U16.unpack_from(body, pos + 2)[0]     # Proposal Length (§3.3.1)
        segments.append(piece + body[pos:pos + 8])      # ... up to the SPI
        piece = body[pos + 8 + spi_size:pos + length]   # its transforms
        pos += length
    segments.append(piece)
    return tuple(segments)


# -- Notify (§3.10) -----------------------------------------------------------------------------

@dataclass(slots=True)
class Notify(Payload):
    """Notify payload (§3.10). ``data`` is the notification data as bytes; the readings of
    the types that have a layout are the properties below and :meth:`fields`."""

    TYPE: ClassVar[int] = PayloadType.NOTIFY
    type: int
    data: bytes = b""
    protocol: int = 0
    spi: bytes = b""

    def body(self) -> bytes:
        return _BBH.pack(self.protocol, len(self.spi), self.type) + self.spi \
            + self.data

    @property
    def name(self) -> str:
        return _w.notify_name(self.type)

    @property
    def dh_group(self) -> int | None:
        """INVALID_KE_PAYLOAD's accepted group (§1.2, §3.10.1)."""
        return _U16.unpack(self.data)[0] if len(self.data) == 2 else None

    @property
    def hash_algorithms(self) -> tuple[int, ...]:
        """SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4): 16-bit hash identifiers."""
        return struct.unpack(f"!{len(self.data) // 2}H", self.data[:len(self.data) & ~1])

    def fields(self) -> dict[str, Any]:
        """The typed reading of the data under scapy's field names (``dh_group``,
        ``hash_algorithms``, ``address`` ...), as :class:`mip6lab.wire.ikev2.IKEv2_Notify`
        reads it; empty when the type has no layout or the data not its length."""
        layout = _w._NOTIFY_LAYOUTS.get(self.type)
        if layout is None or not layout.fits(len(self.data)):
            return {}
        return _NOTIFY_READERS[self.type](self.data)


def _address_text(data: bytes) -> str:
    return str(ipaddress.ip_address(data))


def _read_no_nats(data: bytes) -> dict[str, Any]:
    size = 4 if len(data) == 12 else 16
    return {"src_address": _address_text(data[:size]),
            "dst_address": _address_text(data[size:2 * size]),
            "src_port": _U16.unpack_from(data, 2 * size)[0],
            "dst_port": _U16.unpack_from(data, 2 * size + 2)[0]}


_N = NotifyType
_NOTIFY_READERS = {
    _N.UNSUPPORTED_CRITICAL_PAYLOAD: lambda d: {"payload_type": d[0]},
    _N.INVALID_MESSAGE_ID: lambda d: {"message_id": _U32.unpack(d)[0]},
    _N.INVALID_SPI: lambda d: {"invalid_spi": _U32.unpack(d)[0]},
    _N.INVALID_KE_PAYLOAD: lambda d: {"dh_group": _U16.unpack(d)[0]},
    _N.SET_WINDOW_SIZE: lambda d: {"window_size": _U32.unpack(d)[0]},
    _N.IPCOMP_SUPPORTED: lambda d: {"cpi": _U16.unpack_from(d)[0], "ipcomp_transform": d[2]},
    _N.AUTH_LIFETIME: lambda d: {"auth_lifetime": _U32.unpack(d)[0]},
    _N.ADDITIONAL_IP4_ADDRESS: lambda d: {"address": _address_text(d)},
    _N.ADDITIONAL_IP6_ADDRESS: lambda d: {"address": _address_text(d)},
    _N.NO_NATS_ALLOWED: _read_no_nats,
    _N.SIGNATURE_HASH_ALGORITHMS: lambda d: {
        "hash_algorithms": list(struct.unpack(f"!{len(d) // 2}H", d))},
}


def _packed(address: Any) -> bytes:
    return addresses.address(address).packed


_NOTIFY_WRITERS = {
    "payload_type": lambda v: bytes((v,)),
    "message_id": _U32.pack,
    "invalid_spi": _U32.pack,
    "dh_group": _U16.pack,
    "window_size": _U32.pack,
    "auth_lifetime": _U32.pack,
    "address": _packed,
    "hash_algorithms": lambda v: struct.pack(f"!{len(v)}H", *v),
}


def notify(notify_type: int | str, data: bytes = b"", *, protocol: int = 0,
           spi: bytes = b"", **values: Any) -> Notify:
    """A Notify of ``notify_type`` (number or IANA name) with raw ``data``, or with its
    typed value: ``notify("INVALID_KE_PAYLOAD", dh_group=19)``,
    ``notify("SIGNATURE_HASH_ALGORITHMS", hash_algorithms=(2, 3, 4))``,
    ``notify("IPCOMP_SUPPORTED", cpi=..., ipcomp_transform=...)``, NO_NATS_ALLOWED with
    ``src_address``, ``dst_address``, ``src_port``, ``dst_port``."""
    number = NotifyType[notify_type] if isinstance(notify_type, str) else int(notify_type)
    if values:
        if "cpi" in values:
            data = _U16.pack(values["cpi"]) + bytes((values["ipcomp_transform"],))
        elif "src_address" in values:
            data = (_packed(values["src_address"]) + _packed(values["dst_address"])
                    + struct.pack("!HH", values["src_port"], values["dst_port"]))
        else:
            ((name, value),) = values.items()
            data = _NOTIFY_WRITERS[name](value)
    return Notify(number, bytes(data), protocol, bytes(spi))


# -- Delete (§3.11) -----------------------------------------------------------------------------

@dataclass(slots=True)
class Delete(Payload):
    """Delete payload (§3.11): the IKE SA (protocol 1, no SPI) or child SAs by SPI."""

    TYPE: ClassVar[int] = PayloadType.DELETE
    protocol: int
    spis: tuple[bytes, ...] = ()

    def body(self) -> bytes:
        size = 0 if self.protocol == Protocol.IKE else 4
        return struct.pack("!BBH", self.protocol, size, len(self.spis)) + b"".join(self.spis)


# -- traffic selectors (§3.13) -----------------------------------------------------------------

@dataclass(slots=True)
class AddressSelector:
    """TS_IPV4_ADDR_RANGE (7) or TS_IPV6_ADDR_RANGE (8), §3.13.1: the addresses packed."""

    ts_type: int
    protocol: int
    start_port: int
    end_port: int
    start_address: bytes
    end_address: bytes

    def encode(self) -> bytes:
        return _SELECTOR.pack(self.ts_type, self.protocol, 8 + 2 * len(self.start_address),
                              self.start_port, self.end_port) \
            + self.start_address + self.end_address

    @classmethod
    def of(cls, start: Any, end: Any, protocol: int = 0, start_port: int = 0,
           end_port: int = 0xFFFF) -> AddressSelector:
        """From two addresses of one family (text or ``ipaddress``)."""
        start, end = ipaddress.ip_address(start), ipaddress.ip_address(end)
        if start.version != end.version:
            raise LocalProtocolError(f"{start}-{end} mixes address families")
        return cls(7 if start.version == 4 else 8, protocol, start_port, end_port,
                   start.packed, end.packed)


@dataclass(slots=True)
class RawSelector:
    """A traffic selector of another type (§3.13.1: it is narrowed away), as bytes."""

    ts_type: int
    protocol: int
    data: bytes

    def encode(self) -> bytes:
        return struct.pack("!BBH", self.ts_type, self.protocol, 4 + len(self.data)) + self.data


Selector = Union[AddressSelector, RawSelector]


@dataclass(slots=True)
class TSi(Payload):
    """Traffic Selector - Initiator (§3.13)."""

    TYPE: ClassVar[int] = PayloadType.TSi
    selectors: tuple[Selector, ...]

    def body(self) -> bytes:
        return bytes((len(self.selectors), 0, 0, 0)) + b"".join(
            [s.encode() for s in self.selectors])


@dataclass(slots=True)
class TSr(Payload):
    """Traffic Selector - Responder (§3.13)."""

    TYPE: ClassVar[int] = PayloadType.TSr
    selectors: tuple[Selector, ...]

    def body(self) -> bytes:
        return bytes((len(self.selectors), 0, 0, 0)) + b"".join(
            [s.encode() for s in self.selectors])


def _read_selectors(body: bytes) -> tuple[Selector, ...]:
    result, pos, end = [], 4, len(body)
    while pos < end:
        ts_type, protocol, length = _BBH.unpack_from(body, pos)
        if ts_type in (7, 8):
            size = (length - 8) // 2
            start_port, end_port = _HH.unpack_from(body, pos + 4)
            result.append(AddressSelector(ts_type, protocol, start_port, end_port,
                                          body[pos + 8:pos + 8 + size],
                                          body[pos + 8 + size:pos + length]))
        else:
            result.append(RawSelector(ts_type, protocol, body[pos + 4:pos + length]))
        pos += length
    return tuple(result)


# -- CP (§3.15) ---------------------------------------------------------------------------------

@dataclass(slots=True)
class CpAttribute:
    """A configuration attribute (§3.15.1): its type, its value octets (empty: a request),
    and the reserved R bit as it was."""

    type: int
    value: bytes = b""
    reserved: int = 0

    def encode(self) -> bytes:
        return _HH.pack((self.reserved << 15) | self.type, len(self.value)) \
            + self.value

    @property
    def name(self) -> str | int:
        return _w._CP_ATTRIBUTE_NAMES.get(self.type, self.type)

    def decoded(self) -> Any:
        """The value as :func:`mip6lab.wire.ikev2.decode_cp` gives it: None for a request,
        an ``ipaddress`` address, interface or network, a :class:`~mip6lab.wire.ikev2.
        HomePrefix`, text, a list of attribute names, or bytes."""
        value, kind = self.value, self.type
        if not value:
            return None
        layout = _w._CP_LAYOUTS.get(kind)
        if layout is None or not layout.fits(len(value)):
            return value
        A = _w.CpAttributeType
        if kind == A.MIP6_HOME_PREFIX:
            prefix = ipaddress.IPv6Network((value[4:20], value[20]), strict=False)
            return _w.HomePrefix(prefix, _U32.unpack_from(value)[0])
        if kind == A.INTERNAL_IP6_ADDRESS:
            return ipaddress.IPv6Interface((value[:16], value[16]))
        if kind in _w._IP6_WITH_PREFIX:
            return ipaddress.IPv6Network((value[:16], value[16]), strict=False)
        if kind == A.INTERNAL_IP4_SUBNET:
            return ipaddress.IPv4Network((value[:4], str(ipaddress.IPv4Address(value[4:]))),
                                         strict=False)
        if "text" in layout.fields:
            return value.decode("ascii", "replace")
        if "attribute_types" in layout.fields:
            return [_w._CP_ATTRIBUTE_NAMES.get(t, t)
                    for t in struct.unpack(f"!{len(value) // 2}H", value)]
        return ipaddress.ip_address(value)


def cp_attribute(attribute_type: int | str, **values: Any) -> CpAttribute:
    """A configuration attribute: without values a request; else the fields of its type
    (``address`` [+ ``prefix_len`` | ``netmask``], ``prefix_lifetime`` + ``home_prefix``
    + ``prefix_len``, ``text``, ``attribute_types``) or raw ``value`` bytes."""
    number = _w.CpAttributeType[attribute_type] if isinstance(attribute_type, str) \
        else int(attribute_type)
    if not values:
        return CpAttribute(number)
    if "value" in values:
        return CpAttribute(number, bytes(values["value"]))
    if "home_prefix" in values:
        return CpAttribute(number, _U32.pack(values.get("prefix_lifetime", 0))
                           + _packed(values["home_prefix"])
                           + bytes((values.get("prefix_len", 64),)))
    if "text" in values:
        text = values["text"]
        return CpAttribute(number, text.encode() if isinstance(text, str) else bytes(text))
    if "attribute_types" in values:
        types = values["attribute_types"]
        return CpAttribute(number, struct.pack(f"!{len(types)}H", *types))
    value = _packed(values["address"])
    if "prefix_len" in values:
        value += bytes((values["prefix_len"],))
    if "netmask" in values:
        value += _packed(values["netmask"])
    return CpAttribute(number, value)


@dataclass(slots=True)
class CP(Payload):
    """Configuration payload (§3.15)."""

    TYPE: ClassVar[int] = PayloadType.CP
    cfg_type: int
    attributes: tuple[CpAttribute, ...] = ()

    def body(self) -> bytes:
        return bytes((self.cfg_type, 0, 0, 0)) + b"".join(
            [a.encode() for a in self.attributes])

    def values(self) -> dict[str | int, list[Any]]:
        """Attributes by name, each with the list of its decoded values in order
        (attributes may repeat, §3.15.1): :func:`mip6lab.wire.ikev2.decode_cp`'s result."""
        result: dict[str | int, list[Any]] = {}
        for attribute in self.attributes:
            result.setdefault(attribute.name, []).append(attribute.decoded())
        return result


def _read_cp(body: bytes) -> CP:
    attributes, pos, end = [], 4, len(body)
    while pos < end:
        raw_type, length = _HH.unpack_from(body, pos)
        attributes.append(CpAttribute(raw_type & 0x7FFF, body[pos + 4:pos + 4 + length],
                                      raw_type >> 15))
        pos += 4 + length
    return CP(body[0], tuple(attributes))


# -- reading a payload chain --------------------------------------------------------------------

_READERS = {
    PayloadType.SA: _read_sa,
    PayloadType.KE: lambda b: KE(_U16.unpack_from(b)[0], b[4:]),
    PayloadType.IDi: lambda b: IDi(b[0], b[4:]),
    PayloadType.IDr: lambda b: IDr(b[0], b[4:]),
    PayloadType.CERT: lambda b: CERT(b[0], b[1:]),
    PayloadType.CERTREQ: lambda b: CERTREQ(b[0], b[1:]),
    PayloadType.AUTH: lambda b: AUTH(b[0], b[4:]),
    PayloadType.NONCE: Nonce,
    PayloadType.NOTIFY: lambda b: Notify(_U16.unpack_from(b, 2)[0], b[4 + b[1]:], b[0],
                                         b[4:4 + b[1]]),
    PayloadType.DELETE: lambda b: Delete(b[0], tuple(
        b[i:i + b[1]] for i in range(4, len(b), b[1])) if b[1] else ()),
    PayloadType.VENDOR_ID: VendorID,
    PayloadType.TSi: lambda b: TSi(_read_selectors(b)),
    PayloadType.TSr: lambda b: TSr(_read_selectors(b)),
    PayloadType.CP: _read_cp,
    PayloadType.EAP: EAP,
}


_SK = int(PayloadType.SK)      # a plain int: an enum member is a slower lookup per payload


def _read_chain(data: bytes, pos: int, payload_type: int) -> list[Payload]:
    """The payloads of an already validated chain starting at ``pos``."""
    payloads = []
    try:
        while payload_type:
            next_type, flags, length = _GENERIC.unpack_from(data, pos)
            body = data[pos + 4:pos + length]
            if payload_type == _SK:
                payload = Encrypted(next_type, body)
                next_type = 0
            else:
                reader = _READERS.get(payload_type)
                payload = reader(body) if reader is not None else \
                    UnknownPayload(payload_type, body)
            if flags & 0x80:
                payload.critical = True
            payloads.append(payload)
            pos += length
            payload_type = next_type
    except (IndexError, struct.error, ValueError) as exc:   # only if the checks missed it
        raise MalformedIKEMessage(f"payload type {payload_type}: {exc}", offset=pos,
                                  payload_type=payload_type) from None
    return payloads


# -- messages -----------------------------------------------------------------------------------

@dataclass(slots=True)
class Message:
    """An IKE message (§3.1): header fields and payloads. ``flags``: 0x08 Initiator,
    0x10 Version, 0x20 Response; ``version``: major and minor version octet (0x20)."""

    spi_i: bytes
    spi_r: bytes
    exchange: int
    flags: int
    message_id: int
    payloads: list[Payload] = field(default_factory=list)
    version: int = 0x20

    @property
    def response(self) -> bool:
        return bool(self.flags & 0x20)

    @property
    def initiator(self) -> bool:
        return bool(self.flags & 0x08)

    @property
    def next_payload(self) -> int:
        return self.payloads[0].payload_type if self.payloads else 0

    def encode(self) -> bytes:
        return encode_message(self)


def encode_header(spi_i: bytes, spi_r: bytes, next_payload: int, exchange: int, flags: int,
                  message_id: int, length: int) -> bytes:
    """The 28-octet IKE header (§3.1), version 2.0."""
    return _HEADER.pack(spi_i, spi_r, next_payload, 0x20, exchange, flags, message_id, length)


def decode_header(data: bytes) -> tuple:
    """(SPIi, SPIr, next payload, version, exchange, flags, message ID, length) of the
    first 28 octets; the caller has checked there are 28."""
    return _HEADER.unpack_from(data)


def decode_message(data: bytes) -> Message:
    """Validate (:func:`mip6lab.wire.ikev2.validate_message`) and read one IKE message,
    from its header on (strip UDP 4500's non-ESP marker first). Raises
    :class:`MalformedIKEMessage`; an SK payload stays :class:`Encrypted`."""
    validate_message(data)
    data = bytes(data)
    spi_i, spi_r, next_payload, version, exchange, flags, message_id, _ = \
        _HEADER.unpack_from(data)
    return Message(spi_i, spi_r, exchange, flags, message_id,
                   _read_chain(data, 28, next_payload), version)


def decode_payloads(first_type: int, plaintext: bytes) -> list[Payload]:
    """Validate and read the payload chain of a decrypted SK payload (padding removed;
    ``first_type`` is the SK payload's Next Payload). Raises :class:`MalformedIKEMessage`."""
    plaintext = bytes(plaintext)
    validate_inner_payloads(first_type, plaintext)
    if not first_type:
        if plaintext:
            raise MalformedIKEMessage("no first payload but data in the SK payload")
        return []
    return _read_chain(plaintext, 0, first_type)


def encode_payloads(payloads: Sequence[Payload]) -> tuple[int, bytes]:
    """(type of the first payload, the chained payloads): each generic header's Next
    Payload is the following payload's type (an SK payload's, the first inner type)."""
    if not payloads:
        return 0, b""
    types = [payload.payload_type for payload in payloads]
    types.append(0)                              # after the last payload: none
    parts = []
    pack = _GENERIC.pack
    for index, payload in enumerate(payloads):
        body = payload.body()
        following = payload.first_inner if type(payload) is Encrypted else types[index + 1]
        parts.append(pack(following, 0x80 if payload.critical else 0, 4 + len(body)))
        parts.append(body)
    return types[0], b"".join(parts)


def encode_message(message: Message) -> bytes:
    """The message's octets, lengths and Next Payload fields computed (§3.1, §3.2)."""
    if len(message.spi_i) != 8 or len(message.spi_r) != 8:
        raise LocalProtocolError("IKE SPIs are 8 octets")
    first, chain = encode_payloads(message.payloads)
    return _HEADER.pack(message.spi_i, message.spi_r, first, message.version,
                        message.exchange, message.flags, message.message_id,
                        28 + len(chain)) + chain


# -- looking things up --------------------------------------------------------------------------

def first(payloads: Iterable[Payload], cls: type) -> Any:
    """The first payload of class ``cls``, or None."""
    for payload in payloads:
        if type(payload) is cls:
            return payload
    return None


def firsts(payloads: Iterable[Payload]) -> dict[type, Payload]:
    """The first payload of each class, by class: one pass for a reader that wants
    several (``firsts(payloads).get(SA)`` is ``first(payloads, SA)``)."""
    found: dict[type, Payload] = {}
    for payload in payloads:
        found.setdefault(type(payload), payload)
    return found


def find_notifies(payloads: Iterable[Payload], notify_type: int | None = None
                  ) -> list[Notify]:
    """The Notify payloads, optionally only those of one type."""
    return [p for p in payloads if type(p) is Notify
            and (notify_type is None or p.type == notify_type)]


def unknown_critical(payloads: Iterable[Payload],
                     known: Iterable[int] = _w.RFC7296_PAYLOADS) -> list[int]:
    """Types of payloads this side does not know that carry the critical bit (§2.5): a
    request with one is answered UNSUPPORTED_CRITICAL_PAYLOAD with the first type."""
    known = frozenset(known)
    return [p.payload_type for p in payloads
            if p.critical and p.payload_type not in known]
