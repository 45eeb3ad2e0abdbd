"""IKEv2 message formats (RFC 7296 §3) on top of ``scapy.contrib.ikev2``.

What this module is for: every IKE message mip6lab shows is built and dissected here,
so that a student can ``show()`` it and Wireshark can read the pcap; and its *strict*
check (:func:`validate_message`; scapy is lenient and will happily dissect a truncated
message into something) guards both this dissection and the IKE engine's own reading,
:mod:`mip6lab.wire.ikev2_codec`, which parses and builds the same formats with
``struct`` at a fraction of scapy's cost.

What scapy 2.8 already has and is used as it is: the IKE header (``IKEv2``, §3.1) with
its dispatch to ISAKMP for version 1, the generic payload with its critical flag (§3.2),
Nonce, AUTH, CERTREQ, Vendor ID, EAP, Encrypted (SK) and Encrypted Fragment payloads,
the notify and configuration attribute names, the REDIRECT notify fields, the UDP 500
binding, and ``NON_ESP`` / ``NAT_KEEPALIVE`` on UDP 4500 (RFC 3948 §2.2) in
``scapy.layers.ipsec``, through which UDP 4500 datagrams already dissect into IKEv2.

What is added or fixed here (each class keeps scapy's name and field names, subclasses
scapy's class, and is bound in its place with ``bind_layers``):

- ``IKEv2_Transform`` (§3.3.2, §3.3.5): scapy's emits the Key Length attribute only when
  ``length`` is set to 12 by hand (strongSwan then answers NO_PROPOSAL_CHOSEN for AES);
  here the length is computed, the attribute is there whenever ``key_length`` is set,
  and any further attribute is kept as bytes instead of being read as the next transform.
  Transform IDs are shown with their IANA names (ENCR_AES_GCM_16, 19 = ECP_256 ...).
- ``IKEv2_Proposal`` (§3.3.1): scapy leaves *Num Transforms* at 0 when building; it is
  counted here.
- ``IKEv2_Notify`` (§3.10, RFC 4555 §4, RFC 7427 §4): notification data decoded by type
  -- INVALID_KE_PAYLOAD's DH group, UNSUPPORTED_CRITICAL_PAYLOAD's payload type,
  INVALID_MESSAGE_ID, INVALID_SPI, SET_WINDOW_SIZE, ADDITIONAL_IP4/IP6_ADDRESS,
  NO_NATS_ALLOWED, SIGNATURE_HASH_ALGORITHMS, AUTH_LIFETIME, IPCOMP_SUPPORTED -- but only
  when the data has that type's length; otherwise it stays bytes, so that a dissection
  never runs past its payload. The few scapy names with an ``IV2_NOTIFY_`` prefix get
  their IANA names.
- Traffic selectors (§3.13.1): scapy's IPv6 selector says length 20 (it is 40), its raw
  selector swallows every following selector; the selector kind is chosen here from the
  type *and* the length. ``mh_ports`` puts a Mobility Header type in the port fields as
  RFC 4301 §4.4.1.1 says.
- Configuration attributes (§3.15.1, RFC 5026 §8.2): decoded into fields --
  INTERNAL_IP6_ADDRESS/IP6_SUBNET/IP6_PREFIX as address + prefix length, IP4_SUBNET as
  address + netmask, MIP6_HOME_PREFIX as prefix lifetime + home prefix + prefix length,
  APPLICATION_VERSION as text, SUPPORTED_ATTRIBUTES as a list of types -- where scapy
  knew only plain IPv4/IPv6 addresses.
- ``IKEv2_IDi``/``IKEv2_IDr`` (§3.5): every RFC 7296 ID type by name, IDs as text for
  ID_FQDN / ID_RFC822_ADDR; ``IKEv2_Delete`` (§3.11): *Num of SPIs* counted (scapy left
  it 0); ``IKEv2_KE`` (§3.4): DH groups by IANA name; ``IKEv2_CERT`` (§3.6): scapy's
  X.509 view only for a certificate that is DER and re-encodes to the same bytes (scapy
  turned anything else into a default certificate when rebuilt).
- Payload types 2 and 3 (Proposal, Transform) are substructures of the SA payload only:
  in a message's payload chain they are unknown payloads, as §3.2 says.

On top of the classes: :func:`validate_message` (the strict length check, raising
:class:`MalformedIKEMessage`; it also refuses the few values the decoders could not
represent: prefix lengths above 128, non-contiguous netmasks, SPIs in an IKE SA Delete),
:func:`decode_message`, :func:`message_payloads`,
:func:`find_unknown_critical` (for UNSUPPORTED_CRITICAL_PAYLOAD, §2.5), the SK payload
helpers (:func:`decode_inner_payloads`, :func:`build_inner_payloads`; the cipher itself
is :mod:`mip6lab.crypto.ike.sk`), builders and decoders for SA payloads (over the
``Proposal``/``Transform`` values of :mod:`mip6lab.crypto.ike.proposals`), CP and TS
payloads, and the non-ESP marker for UDP 4500 (:func:`wrap_udp`, :func:`unwrap_udp`).

Importing this module loads ``scapy.contrib.ikev2`` and re-binds the payload types above
to the classes defined here, for every IKEv2 dissection in the process.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal, NamedTuple, Union

import scapy.contrib.ikev2 as _scapy_ikev2
from scapy.config import conf
from scapy.contrib.ikev2 import (
    IKEv2,
    IKEv2_AUTH,
    IKEv2_CERTREQ,
    IKEv2_EAP,
    IKEv2_Encrypted,
    IKEv2_Encrypted_Fragment,
    IKEv2_Nonce,
    IKEv2_Payload,
    IKEv2_VendorID,
    IKEv2ConfigurationAttributeTypes,
    IKEv2ConfigurationPayloadCFGTypes,
    IKEv2NotifyMessageTypes,
    IKEv2PayloadTypes,
    IPProtocolIDs,
    _IKEv2_Packet,
)
from scapy.fields import (
    BitEnumField,
    BitField,
    ByteEnumField,
    ByteField,
    ConditionalField,
    Field,
    FieldLenField,
    FieldListField,
    FlagsField,
    IntField,
    IP6Field,
    IPField,
    MultiEnumField,
    MultipleTypeField,
    PacketLenField,
    PacketListField,
    ShortEnumField,
    ShortField,
    StrLenField,
    X3BytesField,
    XIntField,
    XStrLenField,
)
from scapy.layers.inet6 import mhtypes as _MH_TYPE_NAMES
from scapy.layers.ipsec import NAT_KEEPALIVE, NON_ESP
from scapy.layers.x509 import X509_CRL, X509_Cert
from scapy.packet import NoPayload, Packet, Raw, bind_layers, split_bottom_up

from ..crypto.ike.proposals import Proposal, Transform
from ..crypto.ike.transforms import Protocol, TransformType
from ..errors import LocalProtocolError, MalformedPacket

__all__ = [
    # numbers and names
    "ExchangeType", "PayloadType", "Protocol", "TransformType", "EncrId", "PrfId",
    "IntegId", "DhGroup", "EsnId", "IdType", "NotifyType", "TsType",
    "CfgType", "CpAttributeType", "HashAlgorithm", "RFC7296_PAYLOADS",
    "IKE_PORT", "NAT_T_PORT", "IKE_HEADER_LENGTH", "IPPROTO_MH",
    # scapy classes (scapy's own and the fixed ones, under scapy's names)
    "IKEv2", "IKEv2_Payload", "IKEv2_SA", "IKEv2_Proposal", "IKEv2_Transform",
    "IKEv2_KE", "IKEv2_IDi", "IKEv2_IDr", "IKEv2_CERT", "IKEv2_CERTREQ", "IKEv2_AUTH",
    "IKEv2_Nonce", "IKEv2_Notify", "IKEv2_Delete", "IKEv2_VendorID", "IKEv2_TSi",
    "IKEv2_TSr", "IKEv2_Encrypted", "IKEv2_Encrypted_Fragment", "IKEv2_CP",
    "IKEv2_EAP", "ConfigurationAttribute", "TrafficSelector", "IPv4TrafficSelector",
    "IPv6TrafficSelector", "RawTrafficSelector", "NON_ESP", "NAT_KEEPALIVE",
    # errors
    "MalformedIKEMessage", "InvalidMajorVersion",
    # message level
    "validate_message", "validate_inner_payloads", "decode_message", "message_payloads",
    "payload_types", "payload_class", "payload_type_of", "find_unknown_critical",
    "is_critical", "build_message", "chain_payloads",
    "decode_inner_payloads", "build_inner_payloads",
    "wrap_udp", "unwrap_udp",
    # SA (Proposal and Transform are mip6lab.crypto.ike.proposals')
    "Transform", "Proposal", "build_sa_payload", "decode_sa",
    # notify
    "notify_name", "find_notifies",
    # CP
    "HomePrefix", "cp_attribute", "build_cp_payload", "decode_cp",
    # TS
    "TrafficSelectorRange", "MhTypes", "mh_ports", "mh_types_from_ports",
    "traffic_selector", "mh_traffic_selector", "build_ts_payload", "decode_ts",
]

IKE_PORT = 500
NAT_T_PORT = 4500
IKE_HEADER_LENGTH = 28
IPPROTO_MH = 135
_NON_ESP_MARKER = b"\x00\x00\x00\x00"


# -- numbers and names (IANA "IKEv2 Parameters"; RFC 7296 §3) -----------------------------

class ExchangeType(IntEnum):
    """Exchange types (§3.1)."""

    IKE_SA_INIT = 34
    IKE_AUTH = 35
    CREATE_CHILD_SA = 36
    INFORMATIONAL = 37
    IKE_SESSION_RESUME = 38
    IKE_INTERMEDIATE = 43


class PayloadType(IntEnum):
    """Payload types (§3.2), with the RFC's notation as names where it has one."""

    NONE = 0
    SA = 33
    KE = 34
    IDi = 35
    IDr = 36
    CERT = 37
    CERTREQ = 38
    AUTH = 39
    NONCE = 40
    NOTIFY = 41
    DELETE = 42
    VENDOR_ID = 43
    TSi = 44
    TSr = 45
    SK = 46
    CP = 47
    EAP = 48
    GSPM = 49
    IDg = 50
    GSA = 51
    KD = 52
    SKF = 53
    PS = 54


#: The payload types RFC 7296 defines (§3.2): every implementation must understand them,
#: so their critical bit is ignored. The default "known" set of find_unknown_critical.
RFC7296_PAYLOADS = frozenset(range(PayloadType.SA, PayloadType.EAP + 1))


class EncrId(IntEnum):
    """Transform type 1, encryption algorithms (IANA names)."""

    ENCR_DES_IV64 = 1
    ENCR_DES = 2
    ENCR_3DES = 3
    ENCR_RC5 = 4
    ENCR_IDEA = 5
    ENCR_CAST = 6
    ENCR_BLOWFISH = 7
    ENCR_3IDEA = 8
    ENCR_DES_IV32 = 9
    ENCR_NULL = 11
    ENCR_AES_CBC = 12
    ENCR_AES_CTR = 13
    ENCR_AES_CCM_8 = 14
    ENCR_AES_CCM_12 = 15
    ENCR_AES_CCM_16 = 16
    ENCR_AES_GCM_8 = 18
    ENCR_AES_GCM_12 = 19
    ENCR_AES_GCM_16 = 20
    ENCR_NULL_AUTH_AES_GMAC = 21
    ENCR_CAMELLIA_CBC = 23
    ENCR_CAMELLIA_CTR = 24
    ENCR_CAMELLIA_CCM_8 = 25
    ENCR_CAMELLIA_CCM_12 = 26
    ENCR_CAMELLIA_CCM_16 = 27
    ENCR_CHACHA20_POLY1305 = 28


class PrfId(IntEnum):
    """Transform type 2, pseudorandom functions."""

    PRF_HMAC_MD5 = 1
    PRF_HMAC_SHA1 = 2
    PRF_HMAC_TIGER = 3
    PRF_AES128_XCBC = 4
    PRF_HMAC_SHA2_256 = 5
    PRF_HMAC_SHA2_384 = 6
    PRF_HMAC_SHA2_512 = 7
    PRF_AES128_CMAC = 8


class IntegId(IntEnum):
    """Transform type 3, integrity algorithms."""

    NONE = 0
    AUTH_HMAC_MD5_96 = 1
    AUTH_HMAC_SHA1_96 = 2
    AUTH_DES_MAC = 3
    AUTH_KPDK_MD5 = 4
    AUTH_AES_XCBC_96 = 5
    AUTH_HMAC_MD5_128 = 6
    AUTH_HMAC_SHA1_160 = 7
    AUTH_AES_CMAC_96 = 8
    AUTH_AES_128_GMAC = 9
    AUTH_AES_192_GMAC = 10
    AUTH_AES_256_GMAC = 11
    AUTH_HMAC_SHA2_256_128 = 12
    AUTH_HMAC_SHA2_384_192 = 13
    AUTH_HMAC_SHA2_512_256 = 14


class DhGroup(IntEnum):
    """Transform type 4, Diffie-Hellman groups (also the KE payload's group number)."""

    NONE = 0
    MODP_768 = 1
    MODP_1024 = 2
    MODP_1536 = 5
    MODP_2048 = 14
    MODP_3072 = 15
    MODP_4096 = 16
    MODP_6144 = 17
    MODP_8192 = 18
    ECP_256 = 19
    ECP_384 = 20
    ECP_521 = 21
    MODP_1024_160 = 22
    MODP_2048_224 = 23
    MODP_2048_256 = 24
    ECP_192 = 25
    ECP_224 = 26
    BRAINPOOL_P224R1 = 27
    BRAINPOOL_P256R1 = 28
    BRAINPOOL_P384R1 = 29
    BRAINPOOL_P512R1 = 30
    CURVE25519 = 31
    CURVE448 = 32


class EsnId(IntEnum):
    """Transform type 5, extended sequence numbers."""

    NO_ESN = 0
    ESN = 1


class IdType(IntEnum):
    """Identification types (§3.5; RFC 4595 for FC_NAME, RFC 7619 for NULL)."""

    ID_IPV4_ADDR = 1
    ID_FQDN = 2
    ID_RFC822_ADDR = 3
    ID_IPV6_ADDR = 5
    ID_DER_ASN1_DN = 9
    ID_DER_ASN1_GN = 10
    ID_KEY_ID = 11
    ID_FC_NAME = 12
    ID_NULL = 13


#: Scapy's notify names, with the IANA names where scapy prefixes them with IV2_NOTIFY_.
_NOTIFY_NAMES = {**IKEv2NotifyMessageTypes, **{
    16434: "PUZZLE",
    16435: "USE_PPK",
    16436: "PPK_IDENTITY",
    16437: "NO_PPK_AUTH",
    16438: "INTERMEDIATE_EXCHANGE_SUPPORTED",
    16439: "IP4_ALLOWED",
    16440: "IP6_ALLOWED",
    16441: "ADDITIONAL_KEY_EXCHANGE",
    16442: "USE_AGGFRAG",
}}
#: Notify message types (§3.10.1; RFC 4555 §4 for MOBIKE; RFC 5026 for USE_ASSIGNED_HoA):
#: errors below 16384, status types from 16384 on.
NotifyType = IntEnum("NotifyType", {name: value for value, name in _NOTIFY_NAMES.items()})
NotifyType.__doc__ = "Notify message types (RFC 7296 §3.10.1 and the IANA registry)."


class TsType(IntEnum):
    """Traffic selector types (§3.13.1)."""

    TS_IPV4_ADDR_RANGE = 7
    TS_IPV6_ADDR_RANGE = 8
    TS_FC_ADDR_RANGE = 9


class CfgType(IntEnum):
    """Configuration payload types (§3.15)."""

    CFG_REQUEST = 1
    CFG_REPLY = 2
    CFG_SET = 3
    CFG_ACK = 4


_CP_ATTRIBUTE_NAMES = {**IKEv2ConfigurationAttributeTypes, 5: "INTERNAL_ADDRESS_EXPIRY"}
#: Configuration attribute types (§3.15.1; RFC 5026 §8.2 for MIP6_HOME_PREFIX = 16).
CpAttributeType = IntEnum(
    "CpAttributeType", {name: value for value, name in sorted(_CP_ATTRIBUTE_NAMES.items())})
CpAttributeType.__doc__ = "Configuration attribute types (RFC 7296 §3.15.1, IANA)."


class HashAlgorithm(IntEnum):
    """Hash algorithms of SIGNATURE_HASH_ALGORITHMS (RFC 7427 §7; 5 = RFC 8420)."""

    SHA1 = 1
    SHA2_256 = 2
    SHA2_384 = 3
    SHA2_512 = 4
    IDENTITY = 5


def _names(enum: type[IntEnum]) -> dict[int, str]:
    return {member.value: member.name for member in enum}


#: Protocol IDs by name, with 0 for notifies that concern no SA (§3.10).
_PROTOCOL_NAMES = {0: "NONE", **_names(Protocol)}

#: IANA's name of every registered transform ID, by transform type: what ``show()``
#: prints for any peer's offer (mip6lab.crypto.ike.transforms holds the ones we implement).
_TRANSFORM_ID_NAMES = {
    TransformType.ENCR: _names(EncrId),
    TransformType.PRF: _names(PrfId),
    TransformType.INTEG: _names(IntegId),
    TransformType.KE: _names(DhGroup),
    TransformType.ESN: _names(EsnId),
}


# -- errors ---------------------------------------------------------------------------------

class MalformedIKEMessage(MalformedPacket):
    """An IKE message (or the plaintext of its SK payload) that is not well-formed:
    lengths and counts that do not add up, or a value out of its range.

    ``offset`` is where the fault is, counted from the start of the checked bytes (the
    IKE header, or the SK plaintext); ``payload_type`` the payload being read then, if
    any. Before an IKE SA is authenticated such a message is dropped; within one the
    answer is INVALID_SYNTAX (RFC 7296 §2.21, §3.10.1).
    """

    def __init__(self, reason: str, *, offset: int | None = None,
                 payload_type: int | None = None) -> None:
        if offset is not None:
            reason = f"{reason} (at octet {offset})"
        super().__init__(reason)
        self.offset = offset
        self.payload_type = payload_type


class InvalidMajorVersion(MalformedIKEMessage):
    """Major version other than 2: IKEv1 (ignore it), or higher (INVALID_MAJOR_VERSION,
    RFC 7296 §2.5)."""

    def __init__(self, version: int) -> None:
        super().__init__(f"IKE major version {version >> 4} (version octet {version:#04x}),"
                         " not 2", offset=17)
        self.version = version
        self.major = version >> 4


# -- field helpers ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Layout:
    """A typed reading of a value: its fields, and which value lengths it applies to."""

    fields: tuple[str, ...]
    fits: Callable[[int], bool]


def _size(*sizes: int) -> Callable[[int], bool]:
    return lambda n: n in sizes


def _at_least(low: int) -> Callable[[int], bool]:
    return lambda n: n >= low


def _even_nonzero(n: int) -> bool:
    return n > 0 and n % 2 == 0


def _choose(pkt: Packet, layouts: Mapping[int, _Layout], key: Any,
            data_length: int | None) -> _Layout | None:
    """The layout that applies to ``pkt``.

    A dissected packet (its length is known): the layout of its type if the value has
    that layout's length, else none (the value stays bytes). A packet being built (length
    None): the layout of its type if one of the layout's fields was given.
    """
    layout = layouts.get(key) if isinstance(key, int) else None
    if layout is None:
        return None
    if data_length is None:   # a list field's default [] is in pkt.fields: not "given"
        return layout if any(pkt.fields.get(name, []) != [] for name in layout.fields) \
            else None
    return layout if layout.fits(data_length) else None


def _typed(layouts: Mapping[int, _Layout], data_length: Callable[[Packet], int | None],
           key: Callable[[Packet], Any], name: str) -> Callable[[Packet], bool]:
    def condition(pkt: Packet) -> bool:
        layout = _choose(pkt, layouts, key(pkt), data_length(pkt))
        return layout is not None and name in layout.fields
    return condition


def _untyped(layouts: Mapping[int, _Layout], data_length: Callable[[Packet], int | None],
             key: Callable[[Packet], Any]) -> Callable[[Packet], bool]:
    return lambda pkt: _choose(pkt, layouts, key(pkt), data_length(pkt)) is None


class _AddressField(Field[str, bytes]):
    """An IPv4 or IPv6 address whose size (4 or 16) the packet decides.

    ``size_from(pkt)`` gives 4, 16, or None (then a built value's own family decides).
    Values are kept as text, as scapy's IPField/IP6Field do.
    """

    __slots__ = ["size_from"]

    def __init__(self, name: str, default: str | None,
                 size_from: Callable[[Packet], int | None]) -> None:
        Field.__init__(self, name, default)
        self.size_from = size_from

    def h2i(self, pkt: Packet | None, x: Any) -> Any:
        if isinstance(x, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            return str(x)
        if isinstance(x, str):
            return str(ipaddress.ip_address(x))
        return x

    def any2i(self, pkt: Packet | None, x: Any) -> Any:
        return self.h2i(pkt, x)

    def i2m(self, pkt: Packet | None, x: Any) -> bytes:
        if x is None:
            x = "0.0.0.0" if pkt is not None and self.size_from(pkt) == 4 else "::"
        packed = ipaddress.ip_address(x).packed
        size = self.size_from(pkt) if pkt is not None else None
        if size is not None and len(packed) != size:
            raise LocalProtocolError(
                f"{self.name}: {x} is not a {'IPv4' if size == 4 else 'IPv6'} address")
        return packed

    def m2i(self, pkt: Packet | None, x: bytes) -> str:
        return str(ipaddress.ip_address(x))

    def addfield(self, pkt: Packet, s: bytes, val: Any) -> bytes:
        return s + self.i2m(pkt, val)

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, str]:
        size = self.size_from(pkt) or 16
        return s[size:], self.m2i(pkt, s[:size])

    def i2len(self, pkt: Packet, x: Any) -> int:
        return len(self.i2m(pkt, x))

    def i2repr(self, pkt: Packet | None, x: Any) -> str:
        return str(x)

    def randval(self) -> Any:  # pragma: no cover - scapy's fuzz() only
        from scapy.volatile import RandIP6
        return RandIP6()


class _KeyLengthAttributeField(Field[Union[int, None], bytes]):
    """The Key Length transform attribute (§3.3.5: AF=1, type 14, 2-octet value).

    Present when the transform's attribute area starts with it; ``None`` = absent. When
    building, it is emitted whenever it is set -- no hand-set transform length needed.
    """

    def __init__(self, name: str) -> None:
        Field.__init__(self, name, None)

    def getfield(self, pkt: Packet, s: bytes) -> tuple[bytes, int | None]:
        room = pkt.length is None or pkt.length >= 12
        if room and len(s) >= 4 and s[:2] == b"\x80\x0e":
            return s[4:], struct.unpack("!H", s[2:4])[0]
        return s, None

    def addfield(self, pkt: Packet, s: bytes, val: int | None) -> bytes:
        if val is None:
            return s
        return s + struct.pack("!HH", 0x800E, val)

    def i2len(self, pkt: Packet, x: int | None) -> int:
        return 0 if x is None else 4

    def i2repr(self, pkt: Packet, x: int | None) -> str:
        return "(none)" if x is None else f"{x} bits"


class _PayloadMixin:
    """Matching by scapy's class too (``pkt[scapy.contrib.ikev2.IKEv2_Notify]``)."""

    match_subclass = True


# -- SA payload: proposals and transforms (§3.3) --------------------------------------------

class IKEv2_Transform(_PayloadMixin, _scapy_ikev2.IKEv2_Transform):
    """Transform substructure (§3.3.2) with its attributes (§3.3.5).

    ``key_length`` is the Key Length attribute (None: absent) and makes the transform 12
    octets long by itself; other attributes (none is defined yet; a transform carrying
    one is unacceptable, §3.3.6) are kept as bytes in ``other_attributes``.
    """

    name = "IKEv2 Transform"
    fields_desc = [
        ByteEnumField("next_payload", None, {0: "last", 3: "Transform"}),
        FlagsField("flags", 0, 8, {0x80: "critical"}),
        ShortField("length", None),
        ByteEnumField("transform_type", None, _names(TransformType)),
        ByteField("res2", 0),
        MultiEnumField("transform_id", None, _TRANSFORM_ID_NAMES,
                       depends_on=lambda pkt: pkt.transform_type, fmt="H"),
        _KeyLengthAttributeField("key_length"),
        XStrLenField("other_attributes", b"",
                     length_from=lambda pkt: pkt.length - 8
                     - (0 if pkt.key_length is None else 4)),
    ]


def _count_chain(first: Any) -> int:
    count = 0
    layer = first
    while isinstance(layer, Packet) and not isinstance(layer, (NoPayload, Raw)):
        count += 1
        layer = layer.payload
    return count


class IKEv2_Proposal(_PayloadMixin, _scapy_ikev2.IKEv2_Proposal):
    """Proposal substructure (§3.3.1); *Num Transforms* is counted when left None."""

    name = "IKEv2 Proposal"
    fields_desc = [
        ByteEnumField("next_payload", None, {0: "last", 2: "Proposal"}),
        FlagsField("flags", 0, 8, {0x80: "critical"}),
        ShortField("length", None),
        ByteField("proposal", 1),
        ByteEnumField("proto", Protocol.IKE, _PROTOCOL_NAMES),
        FieldLenField("SPIsize", None, "SPI", "B"),
        ByteField("trans_nb", None),
        XStrLenField("SPI", b"", length_from=lambda pkt: pkt.SPIsize),
        PacketLenField("trans", None, IKEv2_Transform,
                       length_from=lambda pkt: pkt.length - 8 - pkt.SPIsize),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.trans_nb is None:
            pkt = pkt[:7] + bytes([_count_chain(self.trans) & 0xFF]) + pkt[8:]
        return super().post_build(pkt, pay)


class IKEv2_SA(_PayloadMixin, _scapy_ikev2.IKEv2_SA):
    """Security Association payload (§3.3): one chain of proposals."""

    name = "IKEv2 SA"
    fields_desc = _scapy_ikev2.IKEv2_Payload.fields_desc[:3] + [
        PacketLenField("prop", None, IKEv2_Proposal, length_from=lambda pkt: pkt.length - 4),
    ]


class IKEv2_KE(_PayloadMixin, _scapy_ikev2.IKEv2_KE):
    """Key Exchange payload (§3.4), group by IANA name."""

    name = "IKEv2 Key Exchange"
    fields_desc = _scapy_ikev2.IKEv2_Payload.fields_desc[:3] + [
        ShortEnumField("group", 0, _names(DhGroup)),
        ShortField("res2", 0),
        XStrLenField("ke", b"", length_from=lambda pkt: pkt.length - 8),
    ]


# -- identification (§3.5) ------------------------------------------------------------------

def _id_fields() -> list[Any]:
    return _scapy_ikev2.IKEv2_Payload.fields_desc[:3] + [
        ByteEnumField("IDtype", IdType.ID_FQDN, _names(IdType)),
        X3BytesField("res2", 0),
        MultipleTypeField(
            [
                (IPField("ID", "0.0.0.0"),
                 lambda pkt: pkt.IDtype == IdType.ID_IPV4_ADDR
                 and pkt.length in (None, 12)),
                (IP6Field("ID", "::"),
                 lambda pkt: pkt.IDtype == IdType.ID_IPV6_ADDR
                 and pkt.length in (None, 24)),
                (StrLenField("ID", b"", length_from=lambda pkt: pkt.length - 8),
                 lambda pkt: pkt.IDtype in (IdType.ID_FQDN, IdType.ID_RFC822_ADDR)),
            ],
            XStrLenField("ID", b"", length_from=lambda pkt: pkt.length - 8),
        ),
    ]


class IKEv2_IDi(_PayloadMixin, _scapy_ikev2.IKEv2_IDi):
    """Identification - Initiator (§3.5). strongSwan matches an e-mail-like identity as
    ID_RFC822_ADDR (3) and a host name as ID_FQDN (2)."""

    name = "IKEv2 Identification - Initiator"
    fields_desc = _id_fields()


class IKEv2_IDr(_PayloadMixin, _scapy_ikev2.IKEv2_IDr):
    """Identification - Responder (§3.5)."""

    name = "IKEv2 Identification - Responder"
    fields_desc = _id_fields()


# -- notify (§3.10) ---------------------------------------------------------------------------

def _notify_spi_size(pkt: Packet) -> int:
    return pkt.SPIsize if pkt.SPIsize is not None else len(pkt.SPI or b"")


def _notify_data_length(pkt: Packet) -> int | None:
    return None if pkt.length is None else pkt.length - 8 - _notify_spi_size(pkt)


def _notify_type(pkt: Packet) -> Any:
    return pkt.type


N = NotifyType
#: Notify types whose data has a structure: its fields and the data lengths it has.
_NOTIFY_LAYOUTS: dict[int, _Layout] = {
    N.UNSUPPORTED_CRITICAL_PAYLOAD: _Layout(("payload_type",), _size(1)),       # §2.5
    N.INVALID_MESSAGE_ID: _Layout(("message_id",), _size(4)),                   # §2.3
    N.INVALID_SPI: _Layout(("invalid_spi",), _size(4)),                         # §1.5
    N.INVALID_KE_PAYLOAD: _Layout(("dh_group",), _size(2)),                     # §1.2
    N.SET_WINDOW_SIZE: _Layout(("window_size",), _size(4)),                     # §2.3
    N.IPCOMP_SUPPORTED: _Layout(("cpi", "ipcomp_transform"), _size(3)),         # §2.22
    N.AUTH_LIFETIME: _Layout(("auth_lifetime",), _size(4)),                     # RFC 4478
    N.ADDITIONAL_IP4_ADDRESS: _Layout(("address",), _size(4)),                  # RFC 4555
    N.ADDITIONAL_IP6_ADDRESS: _Layout(("address",), _size(16)),
    N.NO_NATS_ALLOWED: _Layout(("src_address", "dst_address", "src_port", "dst_port"),
                               _size(12, 36)),                                  # RFC 4555
    N.SIGNATURE_HASH_ALGORITHMS: _Layout(("hash_algorithms",), _even_nonzero),  # RFC 7427
}
#: Data lengths for notify types whose data is opaque but sized (checked, kept as bytes).
_NOTIFY_DATA_SIZES: dict[int, Callable[[int], bool]] = {
    N.NAT_DETECTION_SOURCE_IP: _size(20),       # SHA-1 digest, §2.23
    N.NAT_DETECTION_DESTINATION_IP: _size(20),
    N.COOKIE: lambda n: 1 <= n <= 64,           # §2.6
    N.COOKIE2: lambda n: 8 <= n <= 64,          # RFC 4555 §4.2.5
}
_REDIRECTS = (N.REDIRECT, N.REDIRECTED_FROM)    # RFC 5685, decoded by scapy's fields
del N


def _notify_field(field: Any) -> Any:
    return ConditionalField(
        field, _typed(_NOTIFY_LAYOUTS, _notify_data_length, _notify_type, field.name))


def _nat_address_size(pkt: Packet) -> int | None:
    length = _notify_data_length(pkt)
    return None if length is None else (4 if length == 12 else 16)


def _additional_address_size(pkt: Packet) -> int:
    return 4 if pkt.type == NotifyType.ADDITIONAL_IP4_ADDRESS else 16


_SCAPY_REDIRECT_FIELDS = [
    f for f in _scapy_ikev2.IKEv2_Notify.fields_desc
    if f.name in ("gw_id_type", "gw_id_len", "gw_id", "nonce")
]


class IKEv2_Notify(_PayloadMixin, _scapy_ikev2.IKEv2_Notify):
    """Notify payload (§3.10): type by name, data decoded by type where it has a layout.

    The data is in typed fields (``dh_group``, ``payload_type``, ``address``,
    ``hash_algorithms`` ...) only when its length is that type's; any other data, and
    NAT-D hashes and cookies, is in ``notify`` as bytes.
    """

    name = "IKEv2 Notify"
    fields_desc = _scapy_ikev2.IKEv2_Payload.fields_desc[:3] + [
        ByteEnumField("proto", 0, _PROTOCOL_NAMES),
        FieldLenField("SPIsize", None, "SPI", "B"),
        ShortEnumField("type", 0, _NOTIFY_NAMES),
        XStrLenField("SPI", b"", length_from=lambda pkt: pkt.SPIsize),
        _notify_field(ByteEnumField("payload_type", 0, IKEv2PayloadTypes)),
        _notify_field(IntField("message_id", 0)),
        _notify_field(XIntField("invalid_spi", 0)),
        _notify_field(ShortEnumField("dh_group", 0, _names(DhGroup))),
        _notify_field(IntField("window_size", 1)),
        _notify_field(ShortField("cpi", 0)),
        _notify_field(ByteField("ipcomp_transform", 0)),
        _notify_field(IntField("auth_lifetime", 0)),
        _notify_field(_AddressField("address", None, _additional_address_size)),
        _notify_field(_AddressField("src_address", None, _nat_address_size)),
        _notify_field(_AddressField("dst_address", None, _nat_address_size)),
        _notify_field(ShortField("src_port", 0)),
        _notify_field(ShortField("dst_port", 0)),
        _notify_field(FieldListField(
            "hash_algorithms", [], ShortEnumField("", 0, _names(HashAlgorithm)),
            length_from=lambda pkt: _notify_data_length(pkt) or 0)),
        ConditionalField(
            XStrLenField("notify", b"", length_from=_notify_data_length),
            lambda pkt: pkt.type not in _REDIRECTS
            and _untyped(_NOTIFY_LAYOUTS, _notify_data_length, _notify_type)(pkt)),
        *_SCAPY_REDIRECT_FIELDS,
    ]


# -- delete (§3.11) ---------------------------------------------------------------------------

class IKEv2_Delete(_PayloadMixin, _scapy_ikev2.IKEv2_Delete):
    """Delete payload (§3.11); *Num of SPIs* is counted and *SPI Size* derived (from the
    SPIs, or 0 for IKE and 4 for AH/ESP) when left None."""

    name = "IKEv2 Delete"
    fields_desc = _scapy_ikev2.IKEv2_Payload.fields_desc[:3] + [
        ByteEnumField("proto", Protocol.ESP, _PROTOCOL_NAMES),
        ByteField("SPIsize", None),
        FieldLenField("SPInum", None, count_of="SPI", fmt="H"),
        FieldListField("SPI", [],
                       XStrLenField("", b"", length_from=lambda pkt: pkt.SPIsize),
                       count_from=lambda pkt: pkt.SPInum),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.SPIsize is None:
            size = len(self.SPI[0]) if self.SPI else (0 if self.proto == Protocol.IKE else 4)
            pkt = pkt[:5] + bytes([size]) + pkt[6:]
        return super().post_build(pkt, pay)


# -- traffic selectors (§3.13) --------------------------------------------------------------

class TrafficSelector(_PayloadMixin, _scapy_ikev2.TrafficSelector):
    """A traffic selector; dissection picks the kind from the TS type and its length."""

    @classmethod
    def dispatch_hook(cls, _pkt: bytes | None = None, *args: Any, **kargs: Any) -> type:
        if _pkt:
            if len(_pkt) >= 4:
                ts_type = _pkt[0]
                length = struct.unpack("!H", _pkt[2:4])[0]
                if ts_type == TsType.TS_IPV4_ADDR_RANGE and length == 16 <= len(_pkt):
                    return IPv4TrafficSelector
                if ts_type == TsType.TS_IPV6_ADDR_RANGE and length == 40 <= len(_pkt):
                    return IPv6TrafficSelector
            return RawTrafficSelector
        return cls if cls is not TrafficSelector else IPv6TrafficSelector

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        return b"", s


_IP_PROTOCOL_NAMES = {**IPProtocolIDs, 0: "any", 135: "Mobility Header"}


class IPv4TrafficSelector(TrafficSelector, _scapy_ikev2.IPv4TrafficSelector):
    """TS_IPV4_ADDR_RANGE (§3.13.1): protocol, port range, address range."""

    name = "IKEv2 IPv4 Traffic Selector"
    fields_desc = [
        ByteEnumField("TS_type", TsType.TS_IPV4_ADDR_RANGE, _names(TsType)),
        ByteEnumField("IP_protocol_ID", 0, _IP_PROTOCOL_NAMES),
        ShortField("length", 16),
        ShortField("start_port", 0),
        ShortField("end_port", 65535),
        IPField("starting_address_v4", "0.0.0.0"),
        IPField("ending_address_v4", "255.255.255.255"),
    ]


class IPv6TrafficSelector(TrafficSelector, _scapy_ikev2.IPv6TrafficSelector):
    """TS_IPV6_ADDR_RANGE (§3.13.1): 40 octets (scapy's default said 20)."""

    name = "IKEv2 IPv6 Traffic Selector"
    fields_desc = [
        ByteEnumField("TS_type", TsType.TS_IPV6_ADDR_RANGE, _names(TsType)),
        ByteEnumField("IP_protocol_ID", 0, _IP_PROTOCOL_NAMES),
        ShortField("length", 40),
        ShortField("start_port", 0),
        ShortField("end_port", 65535),
        IP6Field("starting_address_v6", "::"),
        IP6Field("ending_address_v6", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ]


class RawTrafficSelector(TrafficSelector, _scapy_ikev2.RawTrafficSelector):
    """Any other selector (unknown type, or a length its type does not have), as bytes."""

    name = "IKEv2 Traffic Selector (undecoded)"
    fields_desc = [
        ByteEnumField("TS_type", 0, _names(TsType)),
        ByteEnumField("IP_protocol_ID", 0, _IP_PROTOCOL_NAMES),
        FieldLenField("length", None, "load", "H", adjust=lambda pkt, x: x + 4),
        XStrLenField("load", b"", length_from=lambda pkt: pkt.length - 4),
    ]


def _ts_fields() -> list[Any]:
    return _scapy_ikev2.IKEv2_Payload.fields_desc[:3] + [
        FieldLenField("number_of_TSs", None, fmt="B", count_of="traffic_selector"),
        X3BytesField("res2", 0),
        PacketListField("traffic_selector", None, TrafficSelector,
                        length_from=lambda pkt: pkt.length - 8,
                        count_from=lambda pkt: pkt.number_of_TSs),
    ]


class IKEv2_TSi(_PayloadMixin, _scapy_ikev2.IKEv2_TSi):
    """Traffic Selector - Initiator (§3.13)."""

    name = "IKEv2 Traffic Selector - Initiator"
    fields_desc = _ts_fields()


class IKEv2_TSr(_PayloadMixin, _scapy_ikev2.IKEv2_TSr):
    """Traffic Selector - Responder (§3.13)."""

    name = "IKEv2 Traffic Selector - Responder"
    fields_desc = _ts_fields()


# -- configuration payload (§3.15) -----------------------------------------------------------

A = CpAttributeType
_IP4_VALUE = (A.INTERNAL_IP4_ADDRESS, A.INTERNAL_IP4_NETMASK, A.INTERNAL_IP4_DNS,
              A.INTERNAL_IP4_NBNS, A.INTERNAL_IP4_DHCP, A.P_CSCF_IP4_ADDRESS)
_IP6_VALUE = (A.INTERNAL_IP6_DNS, A.INTERNAL_IP6_DHCP, A.P_CSCF_IP6_ADDRESS)
_IP6_WITH_PREFIX = (A.INTERNAL_IP6_ADDRESS, A.INTERNAL_IP6_SUBNET, A.INTERNAL_IP6_PREFIX)
_TEXT_VALUE = (A.APPLICATION_VERSION, A.INTERNAL_DNS_DOMAIN)
#: Configuration attributes with a structure: their fields and value lengths (§3.15.1;
#: RFC 5026 §8.2 for MIP6_HOME_PREFIX; RFC 5739 for INTERNAL_IP6_PREFIX; RFC 8598 for
#: INTERNAL_DNS_DOMAIN). A zero-length value (a request) is always allowed.
_CP_LAYOUTS: dict[int, _Layout] = {
    **{t: _Layout(("address",), _size(4)) for t in _IP4_VALUE},
    **{t: _Layout(("address",), _size(16)) for t in _IP6_VALUE},
    **{t: _Layout(("address", "prefix_len"), _size(17)) for t in _IP6_WITH_PREFIX},
    A.INTERNAL_IP4_SUBNET: _Layout(("address", "netmask"), _size(8)),
    A.MIP6_HOME_PREFIX: _Layout(("prefix_lifetime", "home_prefix", "prefix_len"),
                                _size(21)),
    A.SUPPORTED_ATTRIBUTES: _Layout(("attribute_types",), _even_nonzero),
    **{t: _Layout(("text",), _at_least(1)) for t in _TEXT_VALUE},
}
del A


def _cp_type(pkt: Packet) -> Any:
    return pkt.type


def _cp_length(pkt: Packet) -> int | None:
    return pkt.length


def _cp_field(field: Any) -> Any:
    return ConditionalField(field, _typed(_CP_LAYOUTS, _cp_length, _cp_type, field.name))


def _cp_address_size(pkt: Packet) -> int:
    return 4 if pkt.type in _IP4_VALUE or pkt.type == CpAttributeType.INTERNAL_IP4_SUBNET \
        else 16


class ConfigurationAttribute(_PayloadMixin, _scapy_ikev2.ConfigurationAttribute):
    """A configuration attribute (§3.15.1), decoded into fields by type.

    Left without values it is a zero-length request (``ConfigurationAttribute(type=
    "INTERNAL_IP6_ADDRESS")``); given its fields it carries them, e.g.
    ``ConfigurationAttribute(type="MIP6_HOME_PREFIX", prefix_lifetime=3600,
    home_prefix="2001:db8:aaaa::", prefix_len=64)`` (RFC 5026 §8.2, 21 octets).
    """

    name = "IKEv2 Configuration Attribute"
    fields_desc = [
        BitField("R", 0, 1),
        BitEnumField("type", CpAttributeType.INTERNAL_IP6_ADDRESS, 15, _CP_ATTRIBUTE_NAMES),
        ShortField("length", None),
        _cp_field(IntField("prefix_lifetime", 0)),
        _cp_field(_AddressField("address", None, _cp_address_size)),
        _cp_field(IP6Field("home_prefix", "::")),
        _cp_field(IPField("netmask", "255.255.255.255")),
        _cp_field(ByteField("prefix_len", 64)),
        _cp_field(StrLenField("text", b"", length_from=lambda pkt: pkt.length)),
        _cp_field(FieldListField("attribute_types", [],
                                 ShortEnumField("", 0, _CP_ATTRIBUTE_NAMES),
                                 length_from=lambda pkt: pkt.length)),
        ConditionalField(XStrLenField("value", b"", length_from=lambda pkt: pkt.length),
                         _untyped(_CP_LAYOUTS, _cp_length, _cp_type)),
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.length is None:
            pkt = pkt[:2] + struct.pack("!H", len(pkt) - 4) + pkt[4:]
        return pkt + pay


class IKEv2_CP(_PayloadMixin, _scapy_ikev2.IKEv2_CP):
    """Configuration payload (§3.15) with decoded attributes."""

    name = "IKEv2 Configuration"
    fields_desc = _scapy_ikev2.IKEv2_Payload.fields_desc[:3] + [
        ByteEnumField("CFGType", CfgType.CFG_REQUEST, IKEv2ConfigurationPayloadCFGTypes),
        X3BytesField("res2", 0),
        PacketListField("attributes", None, ConfigurationAttribute,
                        length_from=lambda pkt: pkt.length - 8),
    ]


# -- certificates (§3.6) ------------------------------------------------------------------

class _ExactPacketLenField(PacketLenField):
    """A sub-packet (scapy's X.509 certificate or CRL) kept only if it encodes back to
    exactly its bytes; anything else (not DER, trailing octets) stays as bytes, so that
    what is shown is what was received."""

    def m2i(self, pkt: Packet, m: bytes) -> Packet:
        try:
            value = self.cls(m)
            probe = value.copy()
            probe.clear_cache()
            if bytes(probe) == m and not probe.haslayer(Raw) \
                    and not probe.haslayer(conf.padding_layer):
                return value
        except Exception:  # scapy's ASN.1 decoder on bytes that are not a certificate
            pass
        return conf.raw_layer(load=m)


class IKEv2_CERT(_PayloadMixin, _scapy_ikev2.IKEv2_CERT):
    """Certificate payload (§3.6): an X.509 certificate (encoding 4) or CRL (7) is shown
    by scapy's X.509 layer when it is well-formed DER, otherwise as bytes."""

    name = "IKEv2 Certificate"
    fields_desc = _scapy_ikev2.IKEv2_Payload.fields_desc[:3] + [
        ByteEnumField("cert_encoding", 4, _scapy_ikev2.IKEv2CertificateEncodings),
        MultipleTypeField(
            [
                (_ExactPacketLenField("cert_data", None, X509_Cert,
                                      length_from=lambda pkt: pkt.length - 5),
                 lambda pkt: pkt.cert_encoding == 4),
                (_ExactPacketLenField("cert_data", None, X509_CRL,
                                      length_from=lambda pkt: pkt.length - 5),
                 lambda pkt: pkt.cert_encoding == 7),
            ],
            XStrLenField("cert_data", b"", length_from=lambda pkt: pkt.length - 5),
        ),
    ]


# -- bindings ---------------------------------------------------------------------------------

_REPLACED = {
    PayloadType.SA: (_scapy_ikev2.IKEv2_SA, IKEv2_SA),
    PayloadType.KE: (_scapy_ikev2.IKEv2_KE, IKEv2_KE),
    PayloadType.IDi: (_scapy_ikev2.IKEv2_IDi, IKEv2_IDi),
    PayloadType.IDr: (_scapy_ikev2.IKEv2_IDr, IKEv2_IDr),
    PayloadType.CERT: (_scapy_ikev2.IKEv2_CERT, IKEv2_CERT),
    PayloadType.NOTIFY: (_scapy_ikev2.IKEv2_Notify, IKEv2_Notify),
    PayloadType.DELETE: (_scapy_ikev2.IKEv2_Delete, IKEv2_Delete),
    PayloadType.TSi: (_scapy_ikev2.IKEv2_TSi, IKEv2_TSi),
    PayloadType.TSr: (_scapy_ikev2.IKEv2_TSr, IKEv2_TSr),
    PayloadType.CP: (_scapy_ikev2.IKEv2_CP, IKEv2_CP),
}
# Proposal (2) and Transform (3) are substructures of the SA payload: bound under
# themselves only, so that a 2 or 3 in a message's payload chain is an unknown payload.
split_bottom_up(_IKEv2_Packet, _scapy_ikev2.IKEv2_Proposal, next_payload=2)
split_bottom_up(_IKEv2_Packet, _scapy_ikev2.IKEv2_Transform, next_payload=3)
for _type, (_old, _new) in _REPLACED.items():
    split_bottom_up(_IKEv2_Packet, _old, next_payload=int(_type))
    bind_layers(_IKEv2_Packet, _new, next_payload=int(_type))
bind_layers(IKEv2_Proposal, IKEv2_Proposal, next_payload=2)
bind_layers(IKEv2_Transform, IKEv2_Transform, next_payload=3)
del _type, _old, _new


def payload_class(payload_type: int) -> type[Packet]:
    """The scapy class that dissects ``payload_type`` in a payload chain
    (``IKEv2_Payload``, the generic payload, for a type nobody knows)."""
    for fval, cls in _IKEv2_Packet.payload_guess:
        if fval == {"next_payload": payload_type}:
            return cls
    return IKEv2_Payload


def payload_type_of(payload: Packet | type[Packet]) -> int:
    """The payload type number of a payload class (or of a payload built from one);
    2 and 3 for the SA payload's Proposal and Transform substructures."""
    if isinstance(payload, BuiltPayload):
        return payload.payload_type
    cls = payload if isinstance(payload, type) else type(payload)
    for fval, bound in _IKEv2_Packet.payload_guess + cls.payload_guess:
        if bound is cls and set(fval) == {"next_payload"}:
            return int(fval["next_payload"])
    raise LocalProtocolError(f"{cls.__name__} is not an IKEv2 payload with a known type")


# -- strict validation (§3) --------------------------------------------------------------

def _u16(data: bytes, offset: int) -> int:
    return data[offset] << 8 | data[offset + 1]     # callers checked the length


def validate_message(data: bytes) -> None:
    """Check that an IKE message's lengths are exactly consistent (RFC 7296 §3).

    Header (§3.1): 28 octets, major version 2, Length equal to the datagram's length
    (after a non-ESP marker, which is not part of the message). Payload chain (§3.2):
    every Payload Length at least 4 and inside the message, the chain ending exactly at
    the end, an Encrypted payload (SK, or SKF of RFC 7383) last. Inside each payload
    type this module decodes, the internal lengths and counts must add up to the
    Payload Length (§3.3: "an implementation MUST check that the total Payload Length
    is consistent with the payload's internal lengths and counts"), and fixed-size
    values must have their size (ID addresses, nonce 16..256 octets, notify data of the
    types with a layout, configuration attributes, traffic selectors, delete SPIs).

    Raises :class:`MalformedIKEMessage` (or :class:`InvalidMajorVersion`); returns None.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedIKEMessage(f"an IKE message is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) < IKE_HEADER_LENGTH:
        raise MalformedIKEMessage(
            f"truncated IKE header: {len(data)} octets, the header has 28", offset=0)
    if data[17] >> 4 != 2:
        raise InvalidMajorVersion(data[17])
    length = struct.unpack_from("!I", data, 24)[0]
    if length != len(data):
        raise MalformedIKEMessage(
            f"IKE header Length {length} but the message has {len(data)} octets",
            offset=24)
    _validate_chain(data, IKE_HEADER_LENGTH, data[16], inner=False)


def validate_inner_payloads(first_type: int, plaintext: bytes) -> None:
    """Check the payload chain found in a decrypted SK payload (padding removed): the
    same checks as :func:`validate_message`, and no Encrypted payload inside (§3.1)."""
    _validate_chain(bytes(plaintext), 0, first_type, inner=True)


_SK, _SKF = int(PayloadType.SK), int(PayloadType.SKF)   # plain ints: compared per payload


def _validate_chain(data: bytes, offset: int, payload_type: int, *, inner: bool) -> None:
    end = len(data)
    while payload_type:                       # PayloadType.NONE ends the chain
        if end - offset < 4:
            raise MalformedIKEMessage(
                f"truncated: the chain announces payload type {payload_type} but "
                f"{end - offset} octets remain", offset=offset, payload_type=payload_type)
        next_type = data[offset]
        length = _u16(data, offset + 2)
        if length < 4:
            raise MalformedIKEMessage(f"Payload Length {length} is below the generic "
                                      "header's 4 octets", offset=offset + 2,
                                      payload_type=payload_type)
        if offset + length > end:
            raise MalformedIKEMessage(
                f"Payload Length {length} runs {offset + length - end} octets past the end",
                offset=offset + 2, payload_type=payload_type)
        if payload_type == _SK or payload_type == _SKF:
            if inner:
                raise MalformedIKEMessage("an Encrypted payload inside an Encrypted payload",
                                          offset=offset, payload_type=payload_type)
            if offset + length != end:
                raise MalformedIKEMessage("the Encrypted payload is not the last payload",
                                          offset=offset, payload_type=payload_type)
            if payload_type == _SKF and length < 8:
                raise MalformedIKEMessage("Encrypted Fragment payload shorter than 8 octets",
                                          offset=offset, payload_type=payload_type)
            return
        checker = _BODY_CHECKS.get(payload_type)
        if checker is not None:
            problem = checker(data[offset:offset + length])
            if problem is not None:
                where, reason = problem
                raise MalformedIKEMessage(f"{_payload_name(payload_type)}: {reason}",
                                          offset=offset + where, payload_type=payload_type)
        offset += length
        payload_type = next_type
    if offset != end:
        raise MalformedIKEMessage(f"{end - offset} octets after the last payload",
                                  offset=offset)


def _payload_name(payload_type: int) -> str:
    try:
        return f"{PayloadType(payload_type).name} payload"
    except ValueError:
        return f"payload type {payload_type}"


_Problem = Union[tuple[int, str], None]


def _min_length(minimum: int) -> Callable[[bytes], _Problem]:
    def check(body: bytes) -> _Problem:
        if len(body) < minimum:
            return 2, f"Payload Length {len(body)}, at least {minimum} needed"
        return None
    return check


def _check_sa(body: bytes) -> _Problem:
    pos, end = 4, len(body)
    if pos == end:
        return 2, "no proposal"
    while True:
        if end - pos < 8:
            return pos, f"truncated proposal: {end - pos} octets, the header has 8"
        last, length = body[pos], _u16(body, pos + 2)
        spi_size, count = body[pos + 6], body[pos + 7]
        if last not in (0, 2):
            return pos, f"proposal Last Substruc {last}, must be 0 or 2"
        if length < 8 + spi_size or pos + length > end:
            return pos + 2, f"Proposal Length {length} inconsistent (SPI size {spi_size}, " \
                            f"{end - pos} octets left in the SA payload)"
        problem = _check_transforms(body, pos + 8 + spi_size, pos + length, count)
        if problem is not None:
            return problem
        pos += length
        if last == 0:
            if pos != end:
                return pos, f"{end - pos} octets after the last proposal"
            return None
        if pos == end:
            return pos, "Last Substruc 2 announces a proposal, none follows"


def _check_transforms(body: bytes, pos: int, end: int, count: int) -> _Problem:
    if count == 0:
        return pos, "proposal with Num Transforms 0"
    seen = 0
    while True:
        if end - pos < 8:
            return pos, f"truncated transform: {end - pos} octets, the header has 8"
        last, length = body[pos], _u16(body, pos + 2)
        if last not in (0, 3):
            return pos, f"transform Last Substruc {last}, must be 0 or 3"
        if length < 8 or pos + length > end:
            return pos + 2, f"Transform Length {length} inconsistent ({end - pos} octets " \
                            "left in the proposal)"
        attr = pos + 8
        while attr < pos + length:            # §3.3.5: TV (AF=1) or TLV (AF=0)
            if pos + length - attr < 4:
                return attr, "truncated transform attribute"
            if body[attr] & 0x80:
                attr += 4
            else:
                attr += 4 + _u16(body, attr + 2)
                if attr > pos + length:
                    return attr, "transform attribute runs past its transform"
        seen += 1
        pos += length
        if last == 0:
            if pos != end:
                return pos, f"{end - pos} octets after the last transform"
            break
        if pos == end:
            return pos, "Last Substruc 3 announces a transform, none follows"
    if seen != count:
        return 7, f"Num Transforms says {count}, the proposal holds {seen}"
    return None


#: fixed value sizes, by the type octet (plain ints: looked up per payload)
_ID_SIZES = {int(IdType.ID_IPV4_ADDR): 4, int(IdType.ID_IPV6_ADDR): 16}
_DELETE_SPI_SIZES = {int(Protocol.IKE): 0, int(Protocol.AH): 4, int(Protocol.ESP): 4}
_TS_SIZES = {int(TsType.TS_IPV4_ADDR_RANGE): 16, int(TsType.TS_IPV6_ADDR_RANGE): 40}


def _check_id(body: bytes) -> _Problem:
    if len(body) < 8:
        return 2, f"Payload Length {len(body)}, at least 8 needed"
    wanted = _ID_SIZES.get(body[4])
    if wanted is not None and len(body) - 8 != wanted:
        return 8, f"{IdType(body[4]).name} with {len(body) - 8} octets of data, not {wanted}"
    return None


def _check_nonce(body: bytes) -> _Problem:
    if not 16 <= len(body) - 4 <= 256:       # §3.9
        return 4, f"Nonce Data of {len(body) - 4} octets, must be 16..256"
    return None


def _check_notify(body: bytes) -> _Problem:
    if len(body) < 8:
        return 2, f"Payload Length {len(body)}, at least 8 needed"
    spi_size, notify_type = body[5], _u16(body, 6)
    if 8 + spi_size > len(body):
        return 5, f"SPI Size {spi_size} runs past the payload"
    data = body[8 + spi_size:]
    name = _NOTIFY_NAMES.get(notify_type) or str(notify_type)   # (only read on a problem)
    sized = _NOTIFY_DATA_SIZES.get(notify_type)
    layout = _NOTIFY_LAYOUTS.get(notify_type)
    if sized is not None and not sized(len(data)):
        return 8 + spi_size, f"{name} with {len(data)} octets of data"
    if layout is not None and not layout.fits(len(data)):
        return 8 + spi_size, f"{name} with {len(data)} octets of data"
    if notify_type in _REDIRECTS:               # RFC 5685 §8
        if spi_size or len(data) < 2:
            return 5, f"{name} needs SPI Size 0 and a gateway identity"
        gw_type, gw_len = data[0], data[1]
        tail = len(data) - 2 - gw_len
        if tail < 0 or (notify_type == NotifyType.REDIRECTED_FROM and tail):
            return 9, f"{name}: GW Ident Len {gw_len} inconsistent with the data"
        if {1: 4, 2: 16}.get(gw_type, gw_len) != gw_len:
            return 9, f"{name}: GW Ident Len {gw_len} for identity type {gw_type}"
    return None


def _check_delete(body: bytes) -> _Problem:
    if len(body) < 8:
        return 2, f"Payload Length {len(body)}, at least 8 needed"
    protocol, spi_size, count = body[4], body[5], _u16(body, 6)
    wanted = _DELETE_SPI_SIZES.get(protocol)
    if wanted is None:
        return 4, f"Protocol ID {protocol}, must be 1, 2 or 3"
    if spi_size != wanted:
        return 5, f"SPI Size {spi_size} for {Protocol(protocol).name}, must be {wanted}"
    if protocol == Protocol.IKE and count:
        return 6, f"{count} SPIs to delete the IKE SA, which has none (§3.11)"
    if len(body) != 8 + spi_size * count:
        return 2, f"Payload Length {len(body)} for {count} SPIs of {spi_size} octets"
    return None


def _check_ts(body: bytes) -> _Problem:
    if len(body) < 8:
        return 2, f"Payload Length {len(body)}, at least 8 needed"
    count, pos, seen = body[4], 8, 0
    if count == 0:
        return 4, "Number of TSs 0"
    while pos < len(body):
        if len(body) - pos < 4:
            return pos, "truncated traffic selector"
        ts_type, length = body[pos], _u16(body, pos + 2)
        wanted = _TS_SIZES.get(ts_type)
        if (wanted is not None and length != wanted) or length < 4:
            return pos + 2, f"Selector Length {length} for TS type {ts_type}"
        if pos + length > len(body):
            return pos + 2, "traffic selector runs past the payload"
        pos += length
        seen += 1
    if seen != count:
        return 4, f"Number of TSs says {count}, the payload holds {seen}"
    return None


def _check_cp(body: bytes) -> _Problem:
    if len(body) < 8:
        return 2, f"Payload Length {len(body)}, at least 8 needed"
    pos = 8
    while pos < len(body):
        if len(body) - pos < 4:
            return pos, "truncated configuration attribute"
        attr_type, length = _u16(body, pos) & 0x7FFF, _u16(body, pos + 2)
        if pos + 4 + length > len(body):
            return pos + 2, f"attribute Length {length} runs past the payload"
        layout = _CP_LAYOUTS.get(attr_type)
        if length and layout is not None and not layout.fits(length):
            name = _CP_ATTRIBUTE_NAMES.get(attr_type, str(attr_type))
            return pos + 2, f"{name} with a value of {length} octets"
        value_check = _CP_VALUE_CHECKS.get(attr_type)
        if length and value_check is not None:
            problem = value_check(body[pos + 4:pos + 4 + length])
            if problem:
                name = _CP_ATTRIBUTE_NAMES.get(attr_type, str(attr_type))
                return pos + 4, f"{name}: {problem}"
        pos += 4 + length
    return None


def _prefix_length_at(index: int) -> Callable[[bytes], str | None]:
    def check(value: bytes) -> str | None:   # [ADDRIPV6]: a prefix length is 0..128
        return f"prefix length {value[index]}" if value[index] > 128 else None
    return check


def _contiguous_netmask_at(index: int) -> Callable[[bytes], str | None]:
    def check(value: bytes) -> str | None:
        mask = int.from_bytes(value[index:index + 4], "big")
        inverted = ~mask & 0xFFFFFFFF
        contiguous = inverted & (inverted + 1) == 0
        return None if contiguous else f"netmask {ipaddress.IPv4Address(mask)} not contiguous"
    return check


#: Values that are "out of range" (§3.10.1 INVALID_SYNTAX) although of the right length.
_CP_VALUE_CHECKS: dict[int, Callable[[bytes], str | None]] = {
    **{t: _prefix_length_at(16) for t in _IP6_WITH_PREFIX},
    CpAttributeType.MIP6_HOME_PREFIX: _prefix_length_at(20),
    CpAttributeType.INTERNAL_IP4_SUBNET: _contiguous_netmask_at(4),
}


def _check_eap(body: bytes) -> _Problem:
    if len(body) < 8:
        return 2, f"Payload Length {len(body)}, an EAP message needs 4 octets"
    if _u16(body, 6) != len(body) - 4:       # RFC 3748 §4: the EAP Length field
        return 6, f"EAP Length {_u16(body, 6)} in a payload of {len(body) - 4} octets"
    return None


_BODY_CHECKS: dict[int, Callable[[bytes], _Problem]] = {int(t): check for t, check in {
    PayloadType.SA: _check_sa,
    PayloadType.KE: _min_length(8),
    PayloadType.IDi: _check_id,
    PayloadType.IDr: _check_id,
    PayloadType.CERT: _min_length(5),
    PayloadType.CERTREQ: _min_length(5),
    PayloadType.AUTH: _min_length(8),
    PayloadType.NONCE: _check_nonce,
    PayloadType.NOTIFY: _check_notify,
    PayloadType.DELETE: _check_delete,
    PayloadType.TSi: _check_ts,
    PayloadType.TSr: _check_ts,
    PayloadType.CP: _check_cp,
    PayloadType.EAP: _check_eap,
}.items()}


# -- messages ---------------------------------------------------------------------------------

def _dissect(cls: type[Packet], data: bytes) -> Packet:
    try:
        return cls(data)
    except Exception as exc:   # scapy's own failure on bytes that passed the check
        raise MalformedIKEMessage(f"scapy could not dissect it: {exc!r}") from exc


def decode_message(data: bytes) -> IKEv2:
    """Validate (:func:`validate_message`) and dissect one IKE message.

    ``data`` starts at the IKE header (see :func:`unwrap_udp` for UDP 4500). Raises
    :class:`MalformedIKEMessage` for anything that is not exactly a well-formed IKEv2
    message; what it returns is an ``IKEv2`` packet whose payloads can be trusted to
    mean what their lengths say.
    """
    validate_message(data)
    return _dissect(IKEv2, bytes(data))


def message_payloads(msg: Packet) -> list[Packet]:
    """The payloads of ``msg`` (an ``IKEv2`` header or a first payload), in chain order.

    The SK payload is the last one; its contents come from :func:`decode_inner_payloads`
    after decryption.
    """
    payloads = []
    layer = msg.payload if isinstance(msg, IKEv2) else msg
    while isinstance(layer, _IKEv2_Packet):
        payloads.append(layer)
        layer = layer.payload
    return payloads


def payload_types(first_type: int, payloads: Sequence[Packet]) -> list[int]:
    """The payload type of each payload of a chain: the first one's comes from outside
    (the IKE header's or the SK payload's Next Payload), each next one from the previous
    payload's Next Payload (§3.2)."""
    types = [int(first_type)]
    types += [int(p.next_payload or 0) for p in payloads[:-1]]
    return types[:len(payloads)]


def is_critical(payload: Packet) -> bool:
    """Whether the payload's critical bit is set (§3.2)."""
    return bool(int(payload.flags) & 0x80)


def find_unknown_critical(msg: Packet | Sequence[Packet], first_type: int | None = None,
                          known: Iterable[int] = RFC7296_PAYLOADS) -> list[int]:
    """Payload types that are not in ``known`` and carry the critical bit (§2.5).

    If the list is not empty the message MUST be rejected and the response to a request
    carries UNSUPPORTED_CRITICAL_PAYLOAD with the first of these types as its data.
    ``msg`` is an ``IKEv2`` message (its outer chain), or the list of payloads of a chain
    together with ``first_type`` (e.g. from :func:`decode_inner_payloads`).
    """
    if isinstance(msg, IKEv2):
        first_type, payloads = msg.next_payload, message_payloads(msg)
    else:
        payloads = list(msg)
        if first_type is None:
            raise LocalProtocolError("find_unknown_critical needs first_type for a list")
    known = frozenset(int(k) for k in known)
    return [t for t, p in zip(payload_types(first_type, payloads), payloads)
            if t not in known and is_critical(p)]


def _alone(payload: Packet) -> Packet:
    """``payload`` without what follows it: itself when it stands alone and is not yet in
    another chain (the common case when building), else a trimmed copy."""
    if isinstance(payload.payload, NoPayload) and payload.underlayer is None:
        return payload
    layer = payload.copy()
    layer.remove_payload()
    return layer


def chain_payloads(payloads: Sequence[Packet]) -> Packet:
    """Chain copies of ``payloads`` with scapy's ``/`` (each one's own payload dropped,
    so the layers of a dissected chain can be passed). A Next Payload left unset is
    filled from the next payload's class; one that was set (or dissected) is kept."""
    if not payloads:
        raise LocalProtocolError("an empty payload chain")
    result = _alone(payloads[0])
    for payload in payloads[1:]:
        result = result / _alone(payload)
    return result


def build_message(exchange: int | str, payloads: Sequence[Packet], *, init_spi: bytes,
                  resp_spi: bytes = bytes(8), message_id: int = 0, initiator: bool = True,
                  response: bool = False) -> IKEv2:
    """An IKE header (§3.1) followed by ``payloads``; lengths are computed when built.

    For an SK message, ``payloads`` ends with ``IKEv2_Encrypted(next_payload=<first
    inner type>, load=<IV | ciphertext | ICV>)``.
    """
    if len(init_spi) != 8 or len(resp_spi) != 8:
        raise LocalProtocolError("IKE SPIs are 8 octets")
    flags = (0x08 if initiator else 0) | (0x20 if response else 0)
    exch = ExchangeType[exchange] if isinstance(exchange, str) else int(exchange)
    header = IKEv2(init_SPI=init_spi, resp_SPI=resp_spi, exch_type=exch, flags=flags,
                   id=message_id)
    return header / chain_payloads(payloads) if payloads else header


def decode_inner_payloads(first_type: int, plaintext: bytes) -> list[Packet]:
    """Validate and dissect the payload chain of a decrypted SK payload.

    ``plaintext`` is the decrypted content without padding and pad length; ``first_type``
    is the SK payload's Next Payload. Raises :class:`MalformedIKEMessage`.
    """
    plaintext = bytes(plaintext)
    validate_inner_payloads(first_type, plaintext)
    if first_type == PayloadType.NONE:
        if plaintext:
            raise MalformedIKEMessage("no first payload but data in the SK payload")
        return []
    return message_payloads(_dissect(payload_class(first_type), plaintext))


def build_inner_payloads(payloads: Sequence[Packet]) -> tuple[int, bytes]:
    """(first payload type, bytes) of a chain to encrypt into an SK payload."""
    if not payloads:
        return PayloadType.NONE, b""
    return payload_type_of(payloads[0]), chain_bytes(payloads)


class BuiltPayload(NamedTuple):
    """A payload built (by scapy) once and kept as bytes: its type and its bytes, whose
    Next Payload octet :func:`chain_bytes` sets for the place it is used in. The IKE
    engine keeps the payloads that do not change between SAs this way."""

    payload_type: int
    data: bytes


def chain_bytes(payloads: Sequence[Packet | BuiltPayload]) -> bytes:
    """The bytes of ``payloads`` chained: what ``bytes(chain_payloads(...))`` gives,
    built one payload at a time (scapy's ``/`` copies the whole chain at every step,
    which made building the larger IKE messages cost milliseconds). A Next Payload left
    unset is filled from the following payload's type; one that was set is kept."""
    parts = []
    for index, payload in enumerate(payloads):
        if isinstance(payload, BuiltPayload):   # Next Payload is its first octet (§3.2)
            following = payload_type_of(payloads[index + 1]) \
                if index + 1 < len(payloads) else PayloadType.NONE
            parts.append(bytes((following,)) + payload.data[1:])
            continue
        alone = _alone(payload)
        if alone.next_payload is None:     # fill it for this build only: the caller's
            alone.next_payload = payload_type_of(payloads[index + 1]) \
                if index + 1 < len(payloads) else PayloadType.NONE   # packet stays as given
            parts.append(bytes(alone))
            alone.next_payload = None
        else:
            parts.append(bytes(alone))
    return b"".join(parts)


def build_message_bytes(exchange: int | str, payloads: Sequence[Packet], *, init_spi: bytes,
                        resp_spi: bytes = bytes(8), message_id: int = 0,
                        initiator: bool = True, response: bool = False) -> bytes:
    """``bytes(build_message(...))``, built without chaining scapy layers (see
    :func:`chain_bytes`)."""
    body = chain_bytes(payloads) if payloads else b""
    header = build_message(exchange, [], init_spi=init_spi, resp_spi=resp_spi,
                           message_id=message_id, initiator=initiator, response=response)
    header.next_payload = payload_type_of(payloads[0]) if payloads else PayloadType.NONE
    header.length = 28 + len(body)
    return bytes(header) + body


def wrap_udp(message: bytes, port: int) -> bytes:
    """The UDP payload carrying ``message``: on 4500 behind the non-ESP marker
    (RFC 3948 §2.2, RFC 7296 §2.23), on 500 as it is."""
    return _NON_ESP_MARKER + bytes(message) if port == NAT_T_PORT else bytes(message)


def unwrap_udp(payload: bytes, port: int) -> bytes | None:
    """The IKE message in a UDP payload received on ``port``; None when a UDP 4500
    payload is not IKE (ESP, or a NAT keepalive 0xFF). Raises MalformedIKEMessage for a
    4500 payload too short to be either."""
    payload = bytes(payload)
    if port != NAT_T_PORT:
        return payload
    if payload == b"\xff":
        return None
    if len(payload) < 4:
        raise MalformedIKEMessage(f"UDP {NAT_T_PORT} payload of {len(payload)} octets")
    return payload[4:] if payload[:4] == _NON_ESP_MARKER else None


# -- SA payloads: builder and decoder -------------------------------------------------------

#: Encryption transforms that RFC 7296 §3.3.5 / RFC 5282 §8 require a Key Length for.
_KEY_LENGTH_REQUIRED = frozenset({
    EncrId.ENCR_AES_CBC, EncrId.ENCR_AES_CTR, EncrId.ENCR_AES_CCM_8,
    EncrId.ENCR_AES_CCM_12, EncrId.ENCR_AES_CCM_16, EncrId.ENCR_AES_GCM_8,
    EncrId.ENCR_AES_GCM_12, EncrId.ENCR_AES_GCM_16, EncrId.ENCR_NULL_AUTH_AES_GMAC,
    EncrId.ENCR_CAMELLIA_CBC, EncrId.ENCR_CAMELLIA_CTR, EncrId.ENCR_CAMELLIA_CCM_8,
    EncrId.ENCR_CAMELLIA_CCM_12, EncrId.ENCR_CAMELLIA_CCM_16,
})


def build_sa_payload(proposals: Sequence[Proposal]) -> IKEv2_SA:
    """An SA payload (§3.3) from :class:`~mip6lab.crypto.ike.proposals.Proposal` values,
    each with its own number and SPI (``parse_proposals`` numbers them 1..n,
    ``select_proposal`` keeps the offered number, §3.3.1). AES or Camellia without a Key
    Length is refused: RFC 7296 §3.3.5 makes it mandatory and strongSwan answers
    NO_PROPOSAL_CHOSEN without it."""
    if not proposals:
        raise LocalProtocolError("an SA payload needs at least one proposal")
    chain: Packet | None = None
    for proposal in proposals:
        if not proposal.transforms:
            raise LocalProtocolError(f"proposal {proposal.number} has no transform")
        transforms = []
        for t in proposal.transforms:
            if (t.type == TransformType.ENCR and t.id in _KEY_LENGTH_REQUIRED
                    and t.key_length is None):
                raise LocalProtocolError(
                    f"{EncrId(t.id).name} needs a Key Length attribute (RFC 7296 §3.3.5)")
            transforms.append(IKEv2_Transform(transform_type=int(t.type),
                                              transform_id=int(t.id),
                                              key_length=t.key_length))
        prop = IKEv2_Proposal(proposal=proposal.number, proto=int(proposal.protocol),
                              SPI=bytes(proposal.spi), trans=chain_payloads(transforms))
        chain = prop if chain is None else chain / prop
    return IKEv2_SA(prop=chain)


def decode_sa(sa: Packet) -> list[Proposal]:
    """The proposals of an SA payload as :class:`~mip6lab.crypto.ike.proposals.Proposal`
    values (number and SPI included; transforms grouped by type, in wire order within a
    type). A proposal for a protocol other than IKE, AH or ESP is left out: it cannot be
    chosen (§3.3.6)."""
    result = []
    for prop in message_payloads(sa.prop) if sa.prop is not None else []:
        if not isinstance(prop, IKEv2_Proposal) or prop.proto not in _names(Protocol):
            continue
        transforms = [
            Transform(int(t.transform_type), int(t.transform_id), t.key_length)
            for t in (message_payloads(prop.trans) if prop.trans is not None else [])
            if isinstance(t, IKEv2_Transform)]
        result.append(Proposal.from_transforms(int(prop.proto), transforms,
                                               int(prop.proposal), bytes(prop.SPI or b"")))
    return result


# -- notify helpers ---------------------------------------------------------------------------

def notify_name(notify: Packet | int) -> str:
    """The IANA name of a notify's type (its number as text if it has none)."""
    value = int(notify if isinstance(notify, int) else notify.type)
    return _NOTIFY_NAMES.get(value, str(value))


def find_notifies(payloads: Packet | Iterable[Packet],
                  notify_type: int | str | None = None) -> list[IKEv2_Notify]:
    """The Notify payloads of a message (or of a list of payloads), optionally only
    those of one type (number or name)."""
    if isinstance(payloads, Packet):
        payloads = message_payloads(payloads)
    wanted = NotifyType[notify_type] if isinstance(notify_type, str) else notify_type
    return [p for p in payloads if isinstance(p, IKEv2_Notify)
            and (wanted is None or p.type == wanted)]


# -- CP payloads ----------------------------------------------------------------------------

@dataclass(frozen=True)
class HomePrefix:
    """A MIP6_HOME_PREFIX value (RFC 5026 §8.2): the home link's prefix and lifetime."""

    prefix: ipaddress.IPv6Network
    lifetime: int


def cp_attribute(attribute_type: int | str, **values: Any) -> ConfigurationAttribute:
    """One configuration attribute: without values a zero-length request, with values
    the fields of its type (``address``, ``prefix_len``, ``netmask``, ``home_prefix``,
    ``prefix_lifetime``, ``text``, ``attribute_types``) or raw ``value`` bytes."""
    number = CpAttributeType[attribute_type] if isinstance(attribute_type, str) \
        else int(attribute_type)
    if not values:
        return ConfigurationAttribute(type=number, length=0)
    layout = _CP_LAYOUTS.get(number)
    allowed = set(layout.fields) if layout is not None else set()
    if set(values) == {"value"}:
        return ConfigurationAttribute(type=number, value=bytes(values["value"]))
    unknown = set(values) - allowed
    if unknown:
        raise LocalProtocolError(
            f"{_CP_ATTRIBUTE_NAMES.get(number, number)} has no field {sorted(unknown)}; "
            f"its fields: {sorted(allowed) or 'value only'}")
    return ConfigurationAttribute(type=number, **values)


def build_cp_payload(cfg_type: int | str,
                     attributes: Iterable[ConfigurationAttribute]) -> IKEv2_CP:
    """A Configuration payload (§3.15) of ``cfg_type`` (CFG_REQUEST, CFG_REPLY ...)."""
    number = CfgType[cfg_type] if isinstance(cfg_type, str) else int(cfg_type)
    return IKEv2_CP(CFGType=number, attributes=list(attributes))


def _cp_value(attr: Packet) -> Any:
    kind = attr.type
    if attr.length == 0:
        return None
    layout = _choose(attr, _CP_LAYOUTS, kind, attr.length)
    if layout is None:
        return bytes(attr.value)
    if kind == CpAttributeType.MIP6_HOME_PREFIX:
        prefix = ipaddress.IPv6Network(f"{attr.home_prefix}/{attr.prefix_len}", strict=False)
        return HomePrefix(prefix, int(attr.prefix_lifetime))
    if kind == CpAttributeType.INTERNAL_IP6_ADDRESS:
        return ipaddress.IPv6Interface(f"{attr.address}/{attr.prefix_len}")
    if kind in _IP6_WITH_PREFIX:
        return ipaddress.IPv6Network(f"{attr.address}/{attr.prefix_len}", strict=False)
    if kind == CpAttributeType.INTERNAL_IP4_SUBNET:
        return ipaddress.IPv4Network(f"{attr.address}/{attr.netmask}", strict=False)
    if "text" in layout.fields:
        return bytes(attr.text).decode("ascii", "replace")
    if "attribute_types" in layout.fields:
        return [_CP_ATTRIBUTE_NAMES.get(t, t) for t in attr.attribute_types]
    return ipaddress.ip_address(attr.address)


def decode_cp(cp: Packet) -> dict[str | int, list[Any]]:
    """The attributes of a Configuration payload by name, each with the list of its
    values in order (attributes may repeat, §3.15.1).

    Values: ``None`` for a zero-length attribute (a request); ``IPv4Address`` /
    ``IPv6Address``; ``IPv6Interface`` for INTERNAL_IP6_ADDRESS (address and prefix
    length); ``IPv6Network`` / ``IPv4Network`` for the subnet and prefix attributes;
    :class:`HomePrefix` for MIP6_HOME_PREFIX; text; a list of attribute names for
    SUPPORTED_ATTRIBUTES; bytes for anything else. The CFG type is ``cp.CFGType``.
    """
    result: dict[str | int, list[Any]] = {}
    for attr in cp.attributes or []:
        key: str | int = _CP_ATTRIBUTE_NAMES.get(attr.type, attr.type)
        result.setdefault(key, []).append(_cp_value(attr))
    return result


# -- traffic selectors --------------------------------------------------------------------

MhTypes = Union[Literal["ANY", "OPAQUE"], tuple[int, int]]
_MH_TYPE_NUMBERS = {name: number for number, name in _MH_TYPE_NAMES.items()}


def _mh_type_number(value: int | str) -> int:
    number = _MH_TYPE_NUMBERS.get(value) if isinstance(value, str) else int(value)
    if number is None or not 0 <= number <= 255:
        raise LocalProtocolError(f"{value!r} is not a Mobility Header type")
    return number


def mh_ports(mh_types: int | str | tuple[int | str, int | str] | None) -> tuple[int, int]:
    """(start port, end port) of a selector for Mobility Header types.

    RFC 4301 §4.4.1.1 and RFC 7296 §3.13.1: the MH type goes in the most significant
    eight bits of the 16-bit port, the low eight bits zero. A single type ``t`` (number,
    or scapy's name: "BU", "BA", "HoTI" ...) is ``(t << 8, t << 8)``; a range of types
    ``(a, b)`` is ``(a << 8, b << 8)``; ``None`` or "ANY" is any type, ``(0, 65535)``;
    "OPAQUE" (type not available, e.g. non-initial fragments) is ``(65535, 0)``
    (RFC 4301 §4.4.1, RFC 7296 §3.13.1).
    """
    if mh_types is None or mh_types == "ANY":
        return 0, 0xFFFF
    if mh_types == "OPAQUE":
        return 0xFFFF, 0
    if isinstance(mh_types, tuple):
        low, high = (_mh_type_number(v) for v in mh_types)
        if low > high:
            raise LocalProtocolError(f"MH type range {low}..{high} is empty")
        return low << 8, high << 8
    number = _mh_type_number(mh_types)
    return number << 8, number << 8


def mh_types_from_ports(start: int, end: int) -> MhTypes:
    """The MH types a selector's ports stand for (the inverse of :func:`mh_ports`):
    "ANY", "OPAQUE", or an inclusive range of types ``(low, high)`` -- one type when
    ``low == high``."""
    if (start, end) == (0, 0xFFFF):
        return "ANY"
    if (start, end) == (0xFFFF, 0):
        return "OPAQUE"
    return start >> 8, end >> 8


@dataclass(frozen=True)
class TrafficSelectorRange:
    """One traffic selector (§3.13.1) as values: TS type, IP protocol (0 = any), port
    range (or ICMP type/code, MH type in the high octet), address range."""

    ts_type: int
    protocol: int
    start_port: int
    end_port: int
    start_address: ipaddress.IPv4Address | ipaddress.IPv6Address
    end_address: ipaddress.IPv4Address | ipaddress.IPv6Address

    @property
    def mh_types(self) -> MhTypes | None:
        """The Mobility Header types, if this selector is for protocol 135."""
        if self.protocol != IPPROTO_MH:
            return None
        return mh_types_from_ports(self.start_port, self.end_port)


def _address_range(addresses: Any) -> tuple[Any, Any]:
    if isinstance(addresses, tuple):
        start, end = (ipaddress.ip_address(a) for a in addresses)
    else:
        network = ipaddress.ip_network(addresses, strict=False)
        start, end = network.network_address, network.broadcast_address
    if start.version != end.version or start > end:
        raise LocalProtocolError(f"{addresses!r} is not an address range")
    return start, end


def traffic_selector(addresses: Any, protocol: int = 0,
                     ports: tuple[int, int] = (0, 0xFFFF)) -> Packet:
    """A TS_IPV4_ADDR_RANGE / TS_IPV6_ADDR_RANGE from a prefix ("2001:db8::/64", an
    address, an ``ipaddress`` network) or a ``(start, end)`` pair of addresses."""
    start, end = _address_range(addresses)
    low, high = ports
    if start.version == 4:
        return IPv4TrafficSelector(IP_protocol_ID=protocol, start_port=low, end_port=high,
                                   starting_address_v4=str(start),
                                   ending_address_v4=str(end))
    return IPv6TrafficSelector(IP_protocol_ID=protocol, start_port=low, end_port=high,
                               starting_address_v6=str(start), ending_address_v6=str(end))


def mh_traffic_selector(addresses: Any,
                        mh_types: int | str | tuple[int | str, int | str] | None) -> Packet:
    """A selector for Mobility Header messages (protocol 135) of ``mh_types`` (see
    :func:`mh_ports`), e.g. the BU/BA-only SA of RFC 4877 §4.1:
    ``mh_traffic_selector(home_address, "BU")``."""
    return traffic_selector(addresses, IPPROTO_MH, mh_ports(mh_types))


def build_ts_payload(initiator: bool, selectors: Sequence[Packet]) -> Packet:
    """A TSi (``initiator``) or TSr payload holding ``selectors``."""
    cls = IKEv2_TSi if initiator else IKEv2_TSr
    return cls(traffic_selector=list(selectors))


def decode_ts(payload: Packet) -> list[TrafficSelectorRange]:
    """The address-range selectors of a TSi/TSr payload (other TS types are skipped:
    RFC 7296 has the responder narrow them away)."""
    result = []
    for ts in payload.traffic_selector or []:
        if isinstance(ts, IPv4TrafficSelector):
            start, end = ts.starting_address_v4, ts.ending_address_v4
        elif isinstance(ts, IPv6TrafficSelector):
            start, end = ts.starting_address_v6, ts.ending_address_v6
        else:
            continue
        result.append(TrafficSelectorRange(
            int(ts.TS_type), int(ts.IP_protocol_ID), int(ts.start_port), int(ts.end_port),
            ipaddress.ip_address(start), ipaddress.ip_address(end)))
    return result
