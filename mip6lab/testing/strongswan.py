"""strongSwan (charon) as an oracle: daemons in network namespaces, and every key they use.

Later work needs real IKEv2 and ESP peers to test against (DESIGN.md rule 5): our IKEv2
initiator/responder against charon, our ESP against charon's user-space ESP. This module is
the harness for that, in three layers that can be used apart:

1. **Keys from charon's log** (no root needed). charon has no key export in Debian's build
   (no ``save-keys`` plugin), but a filelog at ``ike = 4`` and ``chd = 4`` prints every
   secret as a hex dump (``Sk_ei secret => 36 bytes @ 0x7f...`` followed by lines
   ``   0: EB E2 1F 84 ...  ascii``). :func:`parse_hexdumps` reads those dumps,
   :func:`parse_charon_log` turns them into :class:`IkeSaKeys` (SPIs, nonces, g^ir,
   SKEYSEED, SK_d/ai/ar/ei/er/pi/pr, RFC 7296 §2.13-2.14) and :class:`ChildSaKeys` (ESP keys
   per direction with SPIs and addresses, RFC 7296 §2.17). The IKE SPIs and nonces are not
   printed as such: they are read from the IKE_SA_INIT messages that charon dumps as the
   start of the AUTH octets (``octets = message + nonce + prf(Sk_px, IDx')``, §2.15).

2. **Wireshark key tables** from parsed keys: :func:`esp_sa_table` and
   :func:`ikev2_decryption_table` write the ``esp_sa`` and ``ikev2_decryption_table`` UAT
   files, with the algorithm names exactly as tshark 4.0 spells them (checked against the
   strings of libwireshark 4.0.17). Put them in a directory and hand it to
   :mod:`mip6lab.testing.tshark` as ``keys_dir``.

3. **Running charon** (root, namespaces): :class:`Charon` is one daemon in one namespace of
   a :class:`~mip6lab.net.netns.NetnsSet`, with its own directory (``strongswan.conf``,
   ``swanctl.conf``, vici socket, log), configured from a small Python description
   (:class:`SwanctlConfig`, :class:`Connection`, :class:`Child`, :class:`Pool`,
   :class:`SharedKey`) or raw text, driven with ``swanctl``::

       with NetnsSet() as s:
           mn, ha = s.add_namespace("mn"), s.add_namespace("ha")
           ...
           with Charon(s, ha, tmp / "ha", swanctl=ha_conf) as responder, \\
                Charon(s, mn, tmp / "mn", swanctl=mn_conf) as initiator:
               responder.load(); initiator.load()
               initiator.initiate("hoachild")
               sa = initiator.wait_established(ike="hoa")
               keys = initiator.keys()                 # every secret of every SA
               write_wireshark_keys(tmp / "keys", keys)

Facts this module relies on (strongSwan 5.9.8 as packaged by Debian 12; see
the shared interop-notes.md):

* The pid file ``/var/run/charon.pid`` is compiled in: each charon runs inside
  ``unshare -m`` with a private tmpfs on ``/run``, started through ``ip netns exec``, and
  the process we hold *is* charon (``ip netns exec`` → ``unshare`` → ``sh`` all ``exec``),
  so it is stopped by its own PID.
* Our kernel has no ESP, so charon uses ``kernel-libipsec`` (ESP in user space, on a TUN
  device ``ipsec0``). In 5.9.8 that means tunnel mode only, and it fakes a NAT so ESP is
  always UDP-encapsulated on port 4500 (both sides log "behind NAT").
* ``swanctl`` takes the command first, then the options; it talks to charon over the
  vici UNIX socket in the instance's directory, so it needs no namespace of its own.
* The plugin set (``load_modular = no`` and an explicit ``load``) needs the Debian packages
  strongswan-charon, strongswan-swanctl, libstrongswan-standard-plugins (openssl, gcm),
  libstrongswan-extra-plugins (curve25519) and libcharon-extra-plugins (kernel-libipsec).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from mip6lab.net.netns import Namespace, NetnsSet

__all__ = [
    "CHARON_CANDIDATES",
    "DEFAULT_LOG_LEVELS",
    "DEFAULT_PLUGINS",
    "REQUIRED_PLUGINS",
    "Charon",
    "CharonError",
    "CharonKeys",
    "Child",
    "ChildSaInfo",
    "ChildSaKeys",
    "Connection",
    "EspSa",
    "HexDump",
    "IkeSaInfo",
    "IkeSaKeys",
    "LogLine",
    "Pool",
    "SharedKey",
    "SwanctlConfig",
    "Proposal",
    "UnsupportedAlgorithm",
    "available_plugins",
    "esp_sa_table",
    "find_charon",
    "ikev2_decryption_table",
    "missing_plugins",
    "parse_charon_log",
    "parse_hexdumps",
    "parse_log_line",
    "parse_list_sas",
    "parse_proposal",
    "parse_vici_pretty",
    "wireshark_esp_algorithms",
    "wireshark_ike_algorithms",
    "write_wireshark_keys",
]


class CharonError(RuntimeError):
    """charon or swanctl failed; the message carries their output (and the log's tail)."""


class UnsupportedAlgorithm(ValueError):
    """An algorithm for which tshark 4.0 has no decryption-table name."""


# =========================================================================== log lines
@dataclass(frozen=True)
class LogLine:
    """One line of a charon filelog.

    ``thread`` and ``group`` come from ``14[CHD]``; ``ike_sa`` is the IKE SA's unique id
    from the ``<name|3>`` (or ``<3>``) prefix that ``ike_name = yes`` adds, ``ike_name``
    its name (``None`` until charon knows it: a responder logs ``<3>`` first).
    """

    number: int
    thread: int
    group: str
    ike_name: str | None
    ike_sa: int | None
    message: str


# "02:49:13 14[CHD] <v6psk|1> message" - time format, level digit and IKE tag optional.
_LINE_RE = re.compile(
    r"^(?:(?P<time>.*?) )?(?P<thread>\d+)\[(?P<group>[A-Z]{3})\d?\] "
    r"(?:<(?P<tag>[^<>]*)> )?(?P<msg>.*)$"
)
_TAG_RE = re.compile(r"^(?:(?P<name>.*)\|)?(?P<uid>\d+)$")
# The header of a %B dump: "label => 36 bytes @ 0x7f4990007cc0" ("(nil)" when empty).
_DUMP_HEAD_RE = re.compile(r"^(?P<label>.*?) => (?P<size>\d+) bytes @ (?P<addr>\S+)$")
# A dump line: offset right-aligned in 4 columns, then 16 "XX " cells, two spaces, ASCII.
_DUMP_LINE_RE = re.compile(r"^\s*(?P<offset>\d+): (?P<rest>.*)$")
_HEX_PAIR_RE = re.compile(r"^[0-9A-Fa-f]{2}$")


def parse_log_line(line: str, number: int = 0) -> LogLine | None:
    """Split one filelog line; ``None`` for lines that are not charon log lines."""
    match = _LINE_RE.match(line.rstrip("\r\n"))
    if not match:
        return None
    name = uid = None
    tag = match.group("tag")
    if tag is not None:
        tag_match = _TAG_RE.match(tag)
        if tag_match:
            name = tag_match.group("name")
            uid = int(tag_match.group("uid"))
    return LogLine(number, int(match.group("thread")), match.group("group"), name, uid,
                   match.group("msg"))


@dataclass(frozen=True)
class HexDump:
    """One ``%B`` dump: ``label => N bytes`` and the bytes of the lines below it."""

    label: str
    data: bytes
    line: LogLine  # the header line (thread, group, IKE SA, line number)


def _dump_line_bytes(rest: str, count: int) -> bytes | None:
    """The ``count`` bytes at the start of a dump line's hex area, or None if it is not one.

    charon writes 16 cells of three characters (``"XX "``, blanks for missing bytes), then
    two spaces and the printable rendering; reading exactly ``count`` cells means the ASCII
    column can never be mistaken for hex.
    """
    cells = [rest[3 * i:3 * i + 2] for i in range(count)]
    if not all(_HEX_PAIR_RE.match(cell) for cell in cells):
        return None
    if any(rest[3 * i + 2:3 * i + 3] not in (" ", "") for i in range(count)):
        return None
    return bytes.fromhex("".join(cells))


def parse_hexdumps(lines: Iterable[str] | str) -> Iterator[HexDump]:
    """Yield every complete hex dump of a charon log, each as soon as its last line is read.

    Dump lines are matched to their header by thread number, so interleaved lines of other
    threads do no harm; a dump cut short (log truncated) is dropped.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    pending: dict[int, tuple[LogLine, int, bytearray]] = {}  # thread -> header, size, data
    for number, raw in enumerate(lines, start=1):
        line = parse_log_line(raw, number)
        if line is None:
            continue
        current = pending.get(line.thread)
        if current is not None:
            head, size, data = current
            body = _DUMP_LINE_RE.match(line.message)
            if body and int(body.group("offset")) == len(data):
                chunk = _dump_line_bytes(body.group("rest"), min(16, size - len(data)))
                if chunk is not None:
                    data += chunk
                    if len(data) == size:
                        del pending[line.thread]
                        label = _DUMP_HEAD_RE.match(head.message).group("label")
                        yield HexDump(label, bytes(data), head)
                    continue
            del pending[line.thread]  # not a continuation: the dump was cut short
        head_match = _DUMP_HEAD_RE.match(line.message)
        if head_match:
            size = int(head_match.group("size"))
            if size == 0:
                yield HexDump(head_match.group("label"), b"", line)
            else:
                pending[line.thread] = (line, size, bytearray())


# =========================================================================== proposals
@dataclass(frozen=True)
class Proposal:
    """A strongSwan proposal string split into its transforms.

    ``"ESP:AES_GCM_16_256/NO_EXT_SEQ"`` → protocol ``ESP``, encryption ``AES_GCM_16``,
    key size 256, no integrity; ``"IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/
    MODP_2048"`` → ``AES_CBC``/256, integrity ``HMAC_SHA2_256_128``, PRF, DH group.
    """

    text: str
    protocol: str
    encryption: str | None
    key_size: int | None
    integrity: str | None
    prf: str | None
    dh_group: str | None
    esn: bool

    @property
    def aead(self) -> bool:
        return bool(self.encryption) and re.match(
            r"^(AES_GCM|AES_CCM|CHACHA20_POLY1305|NULL_AES_GMAC)", self.encryption) is not None


_INTEG_PREFIXES = ("HMAC_", "AES_XCBC", "AES_CMAC", "AES_128_GMAC", "AES_192_GMAC",
                   "AES_256_GMAC", "CAMELLIA_XCBC")
_DH_PREFIXES = ("MODP_", "ECP_", "CURVE_", "ECP", "NTRU", "NEWHOPE", "KE_")


def parse_proposal(text: str) -> Proposal:
    """Split a proposal as charon prints it (``selected proposal: ...``)."""
    protocol, _, rest = text.partition(":")
    if not rest:
        protocol, rest = "", text
    encryption = integrity = prf = dh = None
    key_size = None
    esn = False
    for token in rest.split("/"):
        if token in ("NO_EXT_SEQ",):
            continue
        if token == "EXT_SEQ":
            esn = True
        elif token.startswith("PRF_"):
            prf = prf or token
        elif token.startswith(_INTEG_PREFIXES):
            integrity = integrity or token
        elif token.startswith(_DH_PREFIXES):
            dh = dh or token
        elif encryption is None:
            # AES_GCM_16_256 -> AES_GCM_16 / 256, AES_CBC_128 -> AES_CBC / 128, 3DES_CBC
            # alone. Key sizes have three digits, ICV lengths (the 16 of GCM_16) fewer.
            match = re.match(r"^(?P<alg>.+?)_(?P<size>\d{3})$", token)
            if match:
                encryption, key_size = match.group("alg"), int(match.group("size"))
            else:
                encryption = token
    return Proposal(text, protocol, encryption, key_size, integrity, prf, dh, esn)


# Wireshark 4.0 names (strings of libwireshark 4.0.17; packet-ipsec.c, packet-isakmp.c).
_WS_ESP_ENCR = {
    "NULL": "NULL",
    "3DES_CBC": "TripleDES-CBC [RFC2451]",
    "AES_CBC": "AES-CBC [RFC3602]",
    "AES_CTR": "AES-CTR [RFC3686]",
    "DES_CBC": "DES-CBC [RFC2405]",
    "CAST_CBC": "CAST5-CBC [RFC2144]",
    "BLOWFISH_CBC": "BLOWFISH-CBC [RFC2451]",
    "TWOFISH_CBC": "TWOFISH-CBC",
    "AES_GCM_8": "AES-GCM with 8 octet ICV [RFC4106]",
    "AES_GCM_12": "AES-GCM with 12 octet ICV [RFC4106]",
    "AES_GCM_16": "AES-GCM with 16 octet ICV [RFC4106]",
}
_WS_ESP_INTEG = {
    None: "NULL",
    "HMAC_SHA1_96": "HMAC-SHA-1-96 [RFC2404]",
    "HMAC_SHA2_256_96": "HMAC-SHA-256-96 [draft-ietf-ipsec-ciph-sha-256-00]",
    "HMAC_SHA2_256_128": "HMAC-SHA-256-128 [RFC4868]",
    "HMAC_SHA2_384_192": "HMAC-SHA-384-192 [RFC4868]",
    "HMAC_SHA2_512_256": "HMAC-SHA-512-256 [RFC4868]",
    "HMAC_MD5_96": "HMAC-MD5-96 [RFC2403]",
}
_WS_IKE_INTEG = {
    "HMAC_MD5_96": "HMAC_MD5_96 [RFC2403]",
    "HMAC_SHA1_96": "HMAC_SHA1_96 [RFC2404]",
    "HMAC_MD5_128": "HMAC_MD5_128 [RFC4595]",
    "HMAC_SHA1_160": "HMAC_SHA1_160 [RFC4595]",
    "HMAC_SHA2_256_128": "HMAC_SHA2_256_128 [RFC4868]",
    "HMAC_SHA2_384_192": "HMAC_SHA2_384_192 [RFC4868]",
    "HMAC_SHA2_512_256": "HMAC_SHA2_512_256 [RFC4868]",
    "HMAC_SHA2_256_96": "HMAC_SHA2_256_96 [draft-ietf-ipsec-ciph-sha-256-00]",
}
_WS_IKE_NO_INTEG = "NONE [RFC4306]"


def _as_proposal(proposal: Proposal | str) -> Proposal:
    return parse_proposal(proposal) if isinstance(proposal, str) else proposal


def wireshark_esp_algorithms(proposal: Proposal | str) -> tuple[str, str]:
    """(encryption, authentication) names for an ``esp_sa`` line of this ESP proposal."""
    p = _as_proposal(proposal)
    try:
        encryption = _WS_ESP_ENCR[p.encryption or ""]
    except KeyError:
        raise UnsupportedAlgorithm(
            f"tshark 4.0 cannot decrypt ESP with {p.encryption!r} (proposal {p.text!r}); "
            f"supported: {', '.join(sorted(_WS_ESP_ENCR))}") from None
    integrity = None if p.aead else p.integrity
    try:
        authentication = _WS_ESP_INTEG[integrity]
    except KeyError:
        raise UnsupportedAlgorithm(
            f"tshark 4.0 has no ESP integrity {integrity!r} (proposal {p.text!r}); supported: "
            f"{', '.join(sorted(k for k in _WS_ESP_INTEG if k))}") from None
    return encryption, authentication


def wireshark_ike_algorithms(proposal: Proposal | str) -> tuple[str, str]:
    """(encryption, integrity) names for an ``ikev2_decryption_table`` line."""
    p = _as_proposal(proposal)
    size = p.key_size
    encryption = None
    if p.encryption == "AES_CBC" and size in (128, 192, 256):
        encryption = f"AES-CBC-{size} [RFC3602]"
    elif p.encryption == "AES_CTR" and size in (128, 192, 256):
        encryption = f"AES-CTR-{size} [RFC5930]"
    elif p.encryption and size in (128, 192, 256):
        match = re.match(r"^AES_(GCM|CCM)_(8|12|16)$", p.encryption)
        if match:
            encryption = f"AES-{match.group(1)}-{size} with {match.group(2)} octet ICV [RFC5282]"
    elif p.encryption == "3DES_CBC":
        encryption = "3DES [RFC2451]"
    elif p.encryption == "NULL":
        encryption = "NULL [RFC2410]"
    if encryption is None:
        raise UnsupportedAlgorithm(
            f"tshark 4.0 cannot decrypt IKEv2 with {p.encryption!r}/{size} "
            f"(proposal {p.text!r})")
    if p.aead:
        return encryption, _WS_IKE_NO_INTEG
    try:
        return encryption, _WS_IKE_INTEG[p.integrity or ""]
    except KeyError:
        raise UnsupportedAlgorithm(
            f"tshark 4.0 has no IKEv2 integrity {p.integrity!r} (proposal {p.text!r})") from None


# =========================================================================== parsed keys
@dataclass
class IkeSaKeys:
    """The secrets of one IKE SA as one charon logged them (RFC 7296 §2.13-2.14).

    ``unique_id`` is charon's IKE SA number (``<name|N>``, ``uniqueid`` in list-sas);
    ``initiator`` is this charon's role (``None`` if the log does not say). ``spi_i`` and
    ``spi_r`` are 8 bytes each; ``nonce_i``/``nonce_r`` and the IKE_SA_INIT messages come
    from the AUTH octets charon dumps. An IKE SA created by a rekey (CREATE_CHILD_SA) has
    keys but no SPIs or nonces in the log: :meth:`Charon.keys` fills its SPIs from
    ``list-sas`` when it can; ``rekeyed_from`` names the IKE SA it replaced.
    """

    unique_id: int | None
    name: str | None = None
    initiator: bool | None = None
    spi_i: bytes | None = None
    spi_r: bytes | None = None
    nonce_i: bytes | None = None
    nonce_r: bytes | None = None
    shared_secret: bytes | None = None
    skeyseed: bytes | None = None
    sk_d: bytes | None = None
    sk_ai: bytes | None = None
    sk_ar: bytes | None = None
    sk_ei: bytes | None = None
    sk_er: bytes | None = None
    sk_pi: bytes | None = None
    sk_pr: bytes | None = None
    proposal: str | None = None
    local_host: str | None = None
    remote_host: str | None = None
    local_id: str | None = None
    remote_id: str | None = None
    ike_sa_init_request: bytes | None = None
    ike_sa_init_response: bytes | None = None
    rekeyed_from: int | None = None

    @property
    def spis(self) -> tuple[str, str] | None:
        """(SPIi, SPIr) as 16 lowercase hex digits each, as list-sas and Wireshark show them."""
        if self.spi_i is None or self.spi_r is None:
            return None
        return self.spi_i.hex(), self.spi_r.hex()

    def ikev2_decryption_line(self) -> str:
        """This SA's line of Wireshark's ``ikev2_decryption_table``."""
        if self.spis is None:
            raise ValueError(f"IKE SA {self.unique_id}: SPIs unknown")
        if self.sk_ei is None or self.sk_er is None or self.proposal is None:
            raise ValueError(f"IKE SA {self.unique_id}: keys or proposal missing")
        encryption, integrity = wireshark_ike_algorithms(self.proposal)
        aead = integrity == _WS_IKE_NO_INTEG
        sk_ai = "" if aead or self.sk_ai is None else self.sk_ai.hex()
        sk_ar = "" if aead or self.sk_ar is None else self.sk_ar.hex()
        spi_i, spi_r = self.spis
        return (f'{spi_i},{spi_r},{self.sk_ei.hex()},{self.sk_er.hex()},"{encryption}",'
                f'{sk_ai},{sk_ar},"{integrity}"')


@dataclass(frozen=True)
class EspSa:
    """One direction of a CHILD SA: what a receiver needs to decrypt (RFC 4303).

    Addresses are the outer (tunnel) addresses; ``encryption_key`` includes the 4-byte
    salt for AES-GCM and the nonce for AES-CTR (RFC 4106 §8.1, RFC 3686 §5.1), as both
    charon and Wireshark expect.
    """

    spi: int
    src: str
    dst: str
    proposal: str
    encryption_key: bytes
    integrity_key: bytes

    def esp_sa_line(self) -> str:
        """This SA's line of Wireshark's ``esp_sa`` table."""
        encryption, authentication = wireshark_esp_algorithms(self.proposal)
        family = "IPv6" if ipaddress.ip_address(self.src).version == 6 else "IPv4"
        integrity_key = "" if authentication == "NULL" else self.integrity_key.hex()
        return (f'"{family}","{self.src}","{self.dst}","0x{self.spi:08x}","{encryption}",'
                f'"0x{self.encryption_key.hex()}","{authentication}","0x{integrity_key}"')


@dataclass
class ChildSaKeys:
    """The ESP keys of one CHILD SA as one charon logged them (RFC 7296 §2.17).

    ``initiator`` tells whether this charon initiated the exchange that created the CHILD
    SA: the ``*_i`` keys protect traffic from that exchange's initiator to its responder.
    ``spi_in``/``spi_out`` and the addresses are this charon's inbound and outbound SAs.
    """

    ike_sa: int | None
    name: str | None = None
    unique_id: int | None = None
    initiator: bool | None = None
    proposal: str | None = None
    encr_i: bytes | None = None
    encr_r: bytes | None = None
    integ_i: bytes = b""
    integ_r: bytes = b""
    seed: bytes | None = None
    shared_secret: bytes | None = None  # PFS (a KE payload in CREATE_CHILD_SA)
    spi_in: int | None = None
    spi_out: int | None = None
    in_src: str | None = None
    in_dst: str | None = None
    out_src: str | None = None
    out_dst: str | None = None
    local_ts: list[str] = field(default_factory=list)
    remote_ts: list[str] = field(default_factory=list)

    def _direction(self, outbound: bool) -> EspSa:
        spi = self.spi_out if outbound else self.spi_in
        src = self.out_src if outbound else self.in_src
        dst = self.out_dst if outbound else self.in_dst
        if spi is None or src is None or dst is None:
            raise ValueError(f"CHILD SA {self.name}{{{self.unique_id}}}: "
                             f"{'outbound' if outbound else 'inbound'} SA not in the log")
        if self.initiator is None or self.proposal is None:
            raise ValueError(f"CHILD SA {self.name}{{{self.unique_id}}}: role or proposal unknown")
        # Our outbound traffic uses the initiator's keys if we initiated the exchange.
        use_i = outbound == self.initiator
        key = self.encr_i if use_i else self.encr_r
        if key is None:
            raise ValueError(f"CHILD SA {self.name}{{{self.unique_id}}}: keys not in the log")
        return EspSa(spi, src, dst, self.proposal, key, self.integ_i if use_i else self.integ_r)

    @property
    def outbound(self) -> EspSa:
        return self._direction(True)

    @property
    def inbound(self) -> EspSa:
        return self._direction(False)

    def esp_sas(self) -> tuple[EspSa, EspSa]:
        """(initiator → responder, responder → initiator) of the creating exchange.

        The same order whichever side's log it came from, as Wireshark's tables are
        usually written.
        """
        if self.initiator:
            return self.outbound, self.inbound
        return self.inbound, self.outbound


@dataclass
class CharonKeys:
    """Everything :func:`parse_charon_log` found, in the order charon derived it."""

    ike_sas: list[IkeSaKeys] = field(default_factory=list)
    child_sas: list[ChildSaKeys] = field(default_factory=list)

    def ike_sa(self, unique_id: int | None = None, *, name: str | None = None) -> IkeSaKeys:
        """The (last) IKE SA with this unique id and/or name."""
        for sa in reversed(self.ike_sas):
            if ((unique_id is None or sa.unique_id == unique_id)
                    and (name is None or sa.name == name)):
                return sa
        raise KeyError(f"no IKE SA with unique id {unique_id!r} and name {name!r}")

    def child_sa(self, name: str | None = None, *, unique_id: int | None = None,
                 spi: int | None = None) -> ChildSaKeys:
        """The (last) CHILD SA with this name, unique id and/or SPI (either direction)."""
        for sa in reversed(self.child_sas):
            if ((name is None or sa.name == name)
                    and (unique_id is None or sa.unique_id == unique_id)
                    and (spi is None or spi in (sa.spi_in, sa.spi_out))):
                return sa
        raise KeyError(f"no CHILD SA named {name!r} with unique id {unique_id!r}, SPI {spi!r}")


_IKE_KEY_LABELS = {
    "shared Diffie Hellman secret": "shared_secret",
    "SKEYSEED": "skeyseed",
    "Sk_d secret": "sk_d",
    "Sk_ai secret": "sk_ai",
    "Sk_ar secret": "sk_ar",
    "Sk_ei secret": "sk_ei",
    "Sk_er secret": "sk_er",
    "Sk_pi secret": "sk_pi",
    "Sk_pr secret": "sk_pr",
}
_CHILD_KEY_LABELS = {
    "encryption initiator key": "encr_i",
    "encryption responder key": "encr_r",
    "integrity initiator key": "integ_i",
    "integrity responder key": "integ_r",
}
_IKE_SA_INIT = 34
_PAYLOAD_NONCE = 40


def _ike_sa_init_parts(message: bytes) -> tuple[bytes, bytes, bool, bytes | None, bytes] | None:
    """(SPIi, SPIr, is_response, nonce, whole message) of an IKE_SA_INIT, else None."""
    if len(message) < 28 or message[18] != _IKE_SA_INIT:
        return None
    length = int.from_bytes(message[24:28], "big")
    if length < 28 or length > len(message):
        return None
    nonce = None
    next_payload, offset = message[16], 28
    while next_payload and offset + 4 <= length:
        payload_length = int.from_bytes(message[offset + 2:offset + 4], "big")
        if payload_length < 4 or offset + payload_length > length:
            break
        if next_payload == _PAYLOAD_NONCE:
            nonce = message[offset + 4:offset + payload_length]
        next_payload, offset = message[offset], offset + payload_length
    return message[0:8], message[8:16], bool(message[19] & 0x20), nonce, message[:length]


class _LogState:
    """Bookkeeping per IKE SA tag while reading one log (tag = unique id, -1 if none)."""

    def __init__(self) -> None:
        self.ike: dict[int, IkeSaKeys] = {}
        self.deriving: dict[int, IkeSaKeys] = {}  # the SA receiving Sk_* dumps now
        self.pending_dh: dict[int, bytes] = {}
        self.pending_ike_proposal: dict[int, str] = {}  # for the SA an IKE rekey makes
        self.last_parsed: dict[int, str] = {}  # "request" / "response"
        self.esp_proposal: dict[int, str] = {}
        self.child: dict[int, ChildSaKeys] = {}  # the CHILD SA being installed
        self.pending_spi: dict[int, str] = {}  # thread -> "inbound"/"outbound"
        self.result = CharonKeys()

    def ike_sa(self, line: LogLine) -> IkeSaKeys:
        uid = _uid(line)
        sa = self.ike.get(uid)
        if sa is None:
            sa = IkeSaKeys(line.ike_sa)
            self.ike[uid] = sa
            self.result.ike_sas.append(sa)
        if line.ike_name:
            sa.name = line.ike_name
        return sa

    def role(self, line: LogLine) -> bool | None:
        """Whether we initiated the exchange being processed (last message parsed)."""
        parsed = self.last_parsed.get(_uid(line))
        return None if parsed is None else parsed == "response"

    def new_child(self, line: LogLine, name: str | None = None,
                  unique_id: int | None = None) -> ChildSaKeys:
        uid = _uid(line)
        child = ChildSaKeys(line.ike_sa, name, unique_id, initiator=self.role(line),
                            proposal=self.esp_proposal.get(uid))
        self.child[uid] = child
        self.result.child_sas.append(child)
        return child

    def current_child(self, line: LogLine) -> ChildSaKeys:
        child = self.child.get(_uid(line))
        return child if child is not None else self.new_child(line)


def _uid(line: LogLine) -> int:
    return line.ike_sa if line.ike_sa is not None else -1


_STATE_CHANGE_RE = re.compile(
    r"^CHILD_SA (?P<name>.+?)\{(?P<uid>\d+)\} state change: CREATED => INSTALLING$")
_ESTABLISHED_CHILD_RE = re.compile(
    r"^(?:inbound |outbound )?CHILD_SA (?P<name>.+?)\{(?P<uid>\d+)\} established with SPIs "
    r"(?P<spi_in>[0-9a-f]+)_i(?: \([^)]*\))? (?P<spi_out>[0-9a-f]+)_o(?: \([^)]*\))? "
    r"and TS (?P<local>.*) === (?P<remote>.*)$")
_ADDING_SA_RE = re.compile(r"^(?:adding|registering) (?P<dir>inbound|outbound) (?:ESP|AH) SA$")
_SA_SPI_RE = re.compile(r"^\s+SPI 0x(?P<spi>[0-9a-f]+), src (?P<src>\S+) dst (?P<dst>\S+)$")
_PARSED_RE = re.compile(r"^parsed (?P<exchange>\S+) (?P<kind>request|response) \d+ ")
_SELECTED_RE = re.compile(r"^selected proposal: (?P<proposal>(?P<proto>IKE|ESP|AH):\S+)$")
_INITIATING_RE = re.compile(r"^initiating IKE_SA (?P<name>.+?)\[(?P<uid>\d+)\] to ")
_IKE_ESTABLISHED_RE = re.compile(
    r"^IKE_SA (?P<name>.+?)\[(?P<uid>\d+)\] (?P<how>established|rekeyed) between "
    r"(?P<lhost>[^\[\s]+)\[(?P<lid>.*?)\]\.\.\.(?P<rhost>[^\[\s]+)\[(?P<rid>.*)\]$")


def parse_charon_log(text: str | Iterable[str]) -> CharonKeys:
    """Read every IKE and CHILD SA secret from a charon filelog at ``ike = 4``, ``chd = 4``.

    Needs ``ike_name = yes`` in the filelog (lines without an IKE SA tag are ignored); a
    CHILD SA's direction needs the ``parsed ... request/response`` lines (``enc`` at level
    1, the default) and its SPIs the ``adding inbound ESP SA`` lines (``chd`` ≥ 2).

    IKE SA rekeys (CREATE_CHILD_SA) are logged under the old SA's tag: they yield a new
    :class:`IkeSaKeys` with ``rekeyed_from`` set and the unique id from the "IKE_SA
    name[N] rekeyed between" line, but without SPIs or nonces (charon does not print them).
    """
    lines = text.splitlines() if isinstance(text, str) else list(text)
    state = _LogState()
    dumps = {dump.line.number: dump for dump in parse_hexdumps(lines)}
    for number, raw in enumerate(lines, start=1):
        dump = dumps.get(number)
        line = dump.line if dump is not None else parse_log_line(raw, number)
        if line is None or line.ike_sa is None:
            continue
        if dump is not None:
            _take_dump(state, line, dump)
        else:
            _take_message(state, line)
    return state.result


def _take_dump(state: _LogState, line: LogLine, dump: HexDump) -> None:
    uid, label = _uid(line), dump.label
    if label in _CHILD_KEY_LABELS:
        setattr(state.current_child(line), _CHILD_KEY_LABELS[label], dump.data)
    elif label == "seed":
        child = state.current_child(line)
        child.seed = dump.data
        if uid in state.pending_dh:  # PFS: the new g^ir came just before the seed
            child.shared_secret = state.pending_dh.pop(uid)
    elif label == "shared Diffie Hellman secret":
        state.pending_dh[uid] = dump.data
    elif label == "SKEYSEED":
        sa = state.ike_sa(line)
        if sa.skeyseed is None:
            target = sa
        else:  # a rekey of this IKE SA: the keys of its successor (RFC 7296 §2.18)
            target = IkeSaKeys(None, sa.name, initiator=state.role(line),
                               proposal=state.pending_ike_proposal.pop(uid, sa.proposal),
                               rekeyed_from=sa.unique_id)
            state.result.ike_sas.append(target)
        target.skeyseed = dump.data
        target.shared_secret = state.pending_dh.pop(uid, None)
        state.deriving[uid] = target
    elif label in _IKE_KEY_LABELS:
        target = state.deriving.get(uid) or state.ike_sa(line)
        setattr(target, _IKE_KEY_LABELS[label], dump.data)
        if label == "Sk_pr secret":
            state.deriving.pop(uid, None)
    elif label.startswith("octets = message + nonce"):
        parts = _ike_sa_init_parts(dump.data)
        if parts is None:
            return
        sa = state.ike_sa(line)
        spi_i, spi_r, response, nonce, message = parts
        sa.spi_i = spi_i
        if any(spi_r):
            sa.spi_r = spi_r
        if response:
            sa.nonce_r, sa.ike_sa_init_response = nonce, message
        else:
            sa.nonce_i, sa.ike_sa_init_request = nonce, message


def _take_message(state: _LogState, line: LogLine) -> None:
    uid, message = _uid(line), line.message
    direction = state.pending_spi.pop(line.thread, None)
    if direction is not None and (match := _SA_SPI_RE.match(message)):
        _assign_spi(state, uid, direction, int(match.group("spi"), 16),
                    match.group("src"), match.group("dst"))
    elif match := _PARSED_RE.match(message):
        state.last_parsed[uid] = match.group("kind")
    elif match := _SELECTED_RE.match(message):
        if match.group("proto") != "IKE":
            state.esp_proposal[uid] = match.group("proposal")
        elif (sa := state.ike_sa(line)).skeyseed is None:
            sa.proposal = match.group("proposal")
        else:  # selected for the SA a rekey creates
            state.pending_ike_proposal[uid] = match.group("proposal")
    elif match := _STATE_CHANGE_RE.match(message):
        child = state.child.get(uid)
        if child is not None and child.unique_id is None and child.encr_i is None:
            child.name, child.unique_id = match.group("name"), int(match.group("uid"))
        else:
            state.new_child(line, match.group("name"), int(match.group("uid")))
    elif match := _ADDING_SA_RE.match(message):
        state.pending_spi[line.thread] = match.group("dir")
    elif match := _ESTABLISHED_CHILD_RE.match(message):
        child = _find_child(state, uid, int(match.group("uid")))
        if child is not None:
            child.name = child.name or match.group("name")
            if child.spi_in is None:
                child.spi_in = int(match.group("spi_in"), 16)
            if child.spi_out is None:
                child.spi_out = int(match.group("spi_out"), 16)
            child.local_ts = match.group("local").split()
            child.remote_ts = match.group("remote").split()
    elif match := _INITIATING_RE.match(message):
        if int(match.group("uid")) == uid:  # not the successor of a rekey
            state.ike_sa(line).initiator = True
    elif message.endswith(" is initiating an IKE_SA"):
        state.ike_sa(line).initiator = False
    elif match := _IKE_ESTABLISHED_RE.match(message):
        if match.group("how") == "established":
            sa = state.ike_sa(line)
        else:
            successors = [s for s in state.result.ike_sas
                          if s.rekeyed_from == line.ike_sa and s.unique_id is None]
            if not successors:
                return
            sa = successors[-1]
            sa.unique_id = int(match.group("uid"))
        sa.name = match.group("name")
        sa.local_host, sa.local_id = match.group("lhost"), match.group("lid")
        sa.remote_host, sa.remote_id = match.group("rhost"), match.group("rid")


def _find_child(state: _LogState, ike_uid: int, child_uid: int) -> ChildSaKeys | None:
    for child in reversed(state.result.child_sas):
        if child.unique_id == child_uid:
            return child
    return state.child.get(ike_uid)


def _assign_spi(state: _LogState, uid: int, direction: str, spi: int, src: str,
                dst: str) -> None:
    attr = "spi_in" if direction == "inbound" else "spi_out"
    mine = [c for c in state.result.child_sas
            if (c.ike_sa if c.ike_sa is not None else -1) == uid]
    if any(getattr(c, attr) == spi for c in mine):
        return  # "registering outbound" first, "adding outbound" later: the same SA
    # The CHILD SA being installed, else the newest one of this IKE SA lacking it (a
    # rekey responder installs its outbound SA only when the old one is deleted).
    for child in [state.child.get(uid), *reversed(mine)]:
        if child is not None and getattr(child, attr) is None:
            setattr(child, attr, spi)
            if direction == "inbound":
                child.in_src, child.in_dst = src, dst
            else:
                child.out_src, child.out_dst = src, dst
            return


# =========================================================================== key tables
def _child_list(source: CharonKeys | Iterable[CharonKeys | ChildSaKeys]) -> list[ChildSaKeys]:
    items = [source] if isinstance(source, CharonKeys) else list(source)
    children: list[ChildSaKeys] = []
    for item in items:
        children.extend(item.child_sas if isinstance(item, CharonKeys) else [item])
    return children


def _ike_list(source: CharonKeys | Iterable[CharonKeys | IkeSaKeys]) -> list[IkeSaKeys]:
    items = [source] if isinstance(source, CharonKeys) else list(source)
    sas: list[IkeSaKeys] = []
    for item in items:
        sas.extend(item.ike_sas if isinstance(item, CharonKeys) else [item])
    return sas


def esp_sa_table(source: CharonKeys | Iterable[CharonKeys | ChildSaKeys]) -> str:
    """Wireshark's ``esp_sa`` file for these CHILD SAs (two lines each, i→r then r→i).

    Accepts one :class:`CharonKeys`, or several (both ends of a tunnel: duplicates are
    written once), or CHILD SAs. CHILD SAs whose SPIs or keys the log lacks are skipped.
    """
    lines: list[str] = []
    seen: set[tuple[int, str, str]] = set()
    for child in _child_list(source):
        try:
            sas = child.esp_sas()
        except ValueError:
            continue
        for sa in sas:
            if (sa.spi, sa.src, sa.dst) not in seen:
                seen.add((sa.spi, sa.src, sa.dst))
                lines.append(sa.esp_sa_line())
    return "".join(line + "\n" for line in lines)


def ikev2_decryption_table(source: CharonKeys | Iterable[CharonKeys | IkeSaKeys]) -> str:
    """Wireshark's ``ikev2_decryption_table`` for these IKE SAs (one line each).

    IKE SAs without known SPIs (rekeyed, not merged with list-sas) are skipped; duplicates
    (the same SA from both ends) are written once.
    """
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    for sa in _ike_list(source):
        if sa.spis is None or sa.sk_ei is None or sa.proposal is None or sa.spis in seen:
            continue
        seen.add(sa.spis)
        lines.append(sa.ikev2_decryption_line())
    return "".join(line + "\n" for line in lines)


def write_wireshark_keys(directory: str | os.PathLike[str],
                         *sources: CharonKeys | Iterable[CharonKeys]) -> Path:
    """Write ``esp_sa`` and ``ikev2_decryption_table`` into ``directory``; return it.

    Use the directory as tshark's configuration directory (``WIRESHARK_CONFIG_DIR``,
    ``keys_dir=`` of :mod:`mip6lab.testing.tshark`) with
    ``-o esp.enable_encryption_decode:TRUE``.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    flat: list[CharonKeys] = []
    for source in sources:
        flat.extend([source] if isinstance(source, CharonKeys) else list(source))
    (path / "esp_sa").write_text(esp_sa_table(flat))
    (path / "ikev2_decryption_table").write_text(ikev2_decryption_table(flat))
    return path


# =========================================================================== swanctl.conf
_NEEDS_QUOTES = re.compile(r'[{}#="\n\\]|^\s|\s$|^$')


def _value(value: Any) -> str:
    """A swanctl.conf value: lists comma-separated, booleans yes/no, quoted if needed."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value)
    text = str(value)
    if _NEEDS_QUOTES.search(text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _section(name: str, body: list[str], indent: int) -> list[str]:
    pad = "  " * indent
    return [f"{pad}{name} {{", *body, f"{pad}}}"]


def _settings(items: Mapping[str, Any], indent: int) -> list[str]:
    pad = "  " * indent
    return [f"{pad}{key} = {_value(value)}" for key, value in items.items() if value is not None]


@dataclass
class Child:
    """A CHILD SA configuration (``connections.<conn>.children.<name>``).

    ``esp_proposals`` in strongSwan notation (``"aes256gcm16"``,
    ``"aes256-sha256-modp2048"``); traffic selectors as CIDR or ``dynamic``;
    ``start_action`` ``none``/``trap``/``start``; ``options`` adds any other setting.
    """

    name: str
    esp_proposals: str | Sequence[str] = "aes256gcm16"
    local_ts: str | Sequence[str] = "dynamic"
    remote_ts: str | Sequence[str] = "dynamic"
    mode: str | None = None
    start_action: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def render(self, indent: int) -> list[str]:
        items = {"esp_proposals": self.esp_proposals, "local_ts": self.local_ts,
                 "remote_ts": self.remote_ts, "mode": self.mode,
                 "start_action": self.start_action, **self.options}
        return _section(self.name, _settings(items, indent + 1), indent)


@dataclass
class Connection:
    """An IKE connection (``connections.<name>``), PSK-authenticated unless told otherwise.

    ``vips = ["::"]`` asks the responder for an IPv6 address (CFG_REQUEST with
    INTERNAL_IP6_ADDRESS, RFC 7296 §3.15); ``pools`` on the responder answers it.
    ``mobike``/``encap`` ``None`` keep strongSwan's defaults (MOBIKE on, no forced
    encapsulation). ``options``/``local_options``/``remote_options`` add other settings.
    """

    name: str
    local_addrs: str | Sequence[str] | None = None
    remote_addrs: str | Sequence[str] | None = None
    proposals: str | Sequence[str] = "aes256gcm16-prfsha256-curve25519"
    local_id: str | None = None
    remote_id: str | None = None
    local_auth: str = "psk"
    remote_auth: str = "psk"
    children: Sequence[Child] = ()
    vips: Sequence[str] = ()
    pools: Sequence[str] = ()
    mobike: bool | None = None
    encap: bool | None = None
    version: int = 2
    options: Mapping[str, Any] = field(default_factory=dict)
    local_options: Mapping[str, Any] = field(default_factory=dict)
    remote_options: Mapping[str, Any] = field(default_factory=dict)

    def render(self, indent: int) -> list[str]:
        items = {"version": self.version, "local_addrs": self.local_addrs,
                 "remote_addrs": self.remote_addrs, "proposals": self.proposals,
                 "vips": list(self.vips) or None, "pools": list(self.pools) or None,
                 "mobike": self.mobike, "encap": self.encap, **self.options}
        body = _settings(items, indent + 1)
        body += _section("local", _settings({"auth": self.local_auth, "id": self.local_id,
                                             **self.local_options}, indent + 2), indent + 1)
        body += _section("remote", _settings({"auth": self.remote_auth, "id": self.remote_id,
                                              **self.remote_options}, indent + 2), indent + 1)
        children: list[str] = []
        for child in self.children:
            children += child.render(indent + 2)
        body += _section("children", children, indent + 1)
        return _section(self.name, body, indent)


@dataclass
class Pool:
    """A virtual IP pool (``pools.<name>``): ``addrs`` as CIDR or ``first-last`` range."""

    name: str
    addrs: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def render(self, indent: int) -> list[str]:
        return _section(self.name, _settings({"addrs": self.addrs, **self.options},
                                             indent + 1), indent)


@dataclass
class SharedKey:
    """An IKE pre-shared key (``secrets.ike-<name>``) for the given identities."""

    secret: str
    ids: Sequence[str] = ()
    name: str = "psk"

    def render(self, indent: int) -> list[str]:
        pad = "  " * (indent + 1)
        body = [f"{pad}id-{i} = {_value(identity)}" for i, identity in enumerate(self.ids)]
        body.append(f"{pad}secret = {_quoted(self.secret)}")
        return _section(f"ike-{self.name}", body, indent)


@dataclass
class SwanctlConfig:
    """A whole swanctl.conf: connections, pools and IKE pre-shared keys."""

    connections: Sequence[Connection] = ()
    pools: Sequence[Pool] = ()
    secrets: Sequence[SharedKey] = ()

    def render(self) -> str:
        lines: list[str] = []
        for title, items in (("connections", self.connections), ("pools", self.pools),
                             ("secrets", self.secrets)):
            if items:
                body: list[str] = []
                for item in items:
                    body += item.render(1)
                lines += _section(title, body, 0)
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.render()


# =========================================================================== list-sas
def parse_vici_pretty(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Parse ``swanctl --pretty`` output into (message label, body) pairs.

    ``swanctl --list-sas --pretty`` prints one ``list-sa event { ... }`` per IKE SA and a
    final ``list-sas reply { }``. Sections become dicts, lists lists, values strings. The
    format is line-based (``key = value``, ``key = [`` ... ``]``, ``name {`` ... ``}``),
    so values with spaces (distinguished names) survive, unlike in ``--raw``.
    """
    messages: list[tuple[str, dict[str, Any]]] = []
    stack: list[dict[str, Any]] = []
    current_list: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if current_list is not None:
            if line == "]":
                current_list = None
            else:
                current_list.append(line)
            continue
        if line == "}":
            if stack:
                stack.pop()
            continue
        key, sep, value = line.partition(" = ")
        if sep and " " not in key and stack:
            if value == "[":
                current_list = []
                stack[-1][key] = current_list
            else:
                stack[-1][key] = value
            continue
        if line.endswith("{"):
            name = line[:-1].rstrip()
            body: dict[str, Any] = {}
            if stack:
                stack[-1][name] = body
            else:
                messages.append((name, body))
            stack.append(body)
            if line.endswith("{}"):  # never printed by --pretty, but cheap to allow
                stack.pop()
    return messages


@dataclass
class ChildSaInfo:
    """A CHILD SA as ``list-sas`` reports it; ``raw`` is the whole vici section."""

    name: str
    unique_id: int
    state: str
    mode: str | None
    protocol: str | None
    encap: bool
    spi_in: int | None
    spi_out: int | None
    proposal: str
    local_ts: list[str]
    remote_ts: list[str]
    packets_in: int
    packets_out: int
    raw: dict[str, Any]


@dataclass
class IkeSaInfo:
    """An IKE SA as ``list-sas`` reports it; ``raw`` is the whole vici section.

    ``local_vips`` are the virtual IPs this end was given (the initiator's HoA),
    ``remote_vips`` those it handed out to the peer.
    """

    name: str
    unique_id: int
    state: str
    initiator: bool
    local_host: str | None
    local_port: int | None
    remote_host: str | None
    remote_port: int | None
    local_id: str | None
    remote_id: str | None
    spi_i: str
    spi_r: str
    proposal: str
    local_vips: list[str]
    remote_vips: list[str]
    nat: bool
    child_sas: list[ChildSaInfo]
    raw: dict[str, Any]

    def child(self, name: str) -> ChildSaInfo:
        for child in self.child_sas:
            if child.name == name:
                return child
        raise KeyError(f"IKE SA {self.name}[{self.unique_id}] has no CHILD SA {name!r}")


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _vici_proposal(section: Mapping[str, Any], protocol: str) -> str:
    parts = []
    encr = section.get("encr-alg")
    if encr:
        size = section.get("encr-keysize")
        parts.append(f"{encr}_{size}" if size else encr)
    integ = section.get("integ-alg")
    if integ:
        size = section.get("integ-keysize")
        parts.append(f"{integ}_{size}" if size and not re.search(r"_\d+$", integ) else integ)
    if section.get("prf-alg"):
        parts.append(section["prf-alg"])
    if section.get("dh-group"):
        parts.append(section["dh-group"])
    if protocol != "IKE":
        parts.append("EXT_SEQ" if section.get("esn") == "1" else "NO_EXT_SEQ")
    return f"{protocol}:" + "/".join(parts)


def _child_info(section: Mapping[str, Any]) -> ChildSaInfo:
    protocol = section.get("protocol", "ESP")

    def spi(key: str) -> int | None:
        value = section.get(key)
        return int(value, 16) if value else None

    return ChildSaInfo(
        name=section.get("name", ""), unique_id=_int(section.get("uniqueid")) or 0,
        state=section.get("state", ""), mode=section.get("mode"), protocol=protocol,
        encap=section.get("encap") == "yes", spi_in=spi("spi-in"), spi_out=spi("spi-out"),
        proposal=_vici_proposal(section, protocol),
        local_ts=list(section.get("local-ts", [])), remote_ts=list(section.get("remote-ts", [])),
        packets_in=_int(section.get("packets-in")) or 0,
        packets_out=_int(section.get("packets-out")) or 0, raw=dict(section))


def _ike_info(name: str, section: Mapping[str, Any]) -> IkeSaInfo:
    children = section.get("child-sas", {})
    return IkeSaInfo(
        name=name, unique_id=_int(section.get("uniqueid")) or 0,
        state=section.get("state", ""), initiator=section.get("initiator") == "yes",
        local_host=section.get("local-host"), local_port=_int(section.get("local-port")),
        remote_host=section.get("remote-host"), remote_port=_int(section.get("remote-port")),
        local_id=section.get("local-id"), remote_id=section.get("remote-id"),
        spi_i=section.get("initiator-spi", ""), spi_r=section.get("responder-spi", ""),
        proposal=_vici_proposal(section, "IKE"),
        local_vips=list(section.get("local-vips", [])),
        remote_vips=list(section.get("remote-vips", [])),
        nat=any(section.get(k) == "yes" for k in ("nat-local", "nat-remote", "nat-fake",
                                                  "nat-any")),
        child_sas=[_child_info(c) for c in children.values() if isinstance(c, dict)],
        raw=dict(section))


def parse_list_sas(text: str) -> list[IkeSaInfo]:
    """The IKE SAs in ``swanctl --list-sas --pretty`` output."""
    sas = []
    for label, body in parse_vici_pretty(text):
        if label != "list-sa event":
            continue
        for name, section in body.items():
            if isinstance(section, dict):
                sas.append(_ike_info(name, section))
    return sas


# =========================================================================== Charon
#: Where Debian and others install the daemon (it is not on PATH).
CHARON_CANDIDATES = ("/usr/lib/ipsec/charon", "/usr/libexec/ipsec/charon",
                     "/usr/lib/strongswan/charon", "/usr/libexec/strongswan/charon")
PLUGIN_DIRS = ("/usr/lib/ipsec/plugins", "/usr/lib/x86_64-linux-gnu/ipsec/plugins",
               "/usr/libexec/ipsec/plugins", "/usr/lib/strongswan/plugins")

#: The plugins loaded (in this order) when present; the set charon 5.9.8 needs for PSK,
#: AES-CBC/GCM, SHA-1/2, MODP and X25519, vici, and user-space ESP (kernel-libipsec must
#: come before kernel-netlink, which then serves routes and addresses only).
DEFAULT_PLUGINS = ("random", "nonce", "openssl", "pem", "pkcs1", "pkcs8", "x509", "pubkey",
                   "curve25519", "aes", "sha1", "sha2", "hmac", "gcm", "kdf", "kernel-libipsec",
                   "kernel-netlink", "socket-default", "vici", "attr")
#: Plugins without which the harness cannot work, with the Debian package shipping each.
REQUIRED_PLUGINS = {
    "random": "libstrongswan", "nonce": "libstrongswan", "openssl":
    "libstrongswan-standard-plugins", "gcm": "libstrongswan-standard-plugins",
    "curve25519": "libstrongswan-extra-plugins", "kernel-libipsec": "libcharon-extra-plugins",
    "kernel-netlink": "libstrongswan", "socket-default": "strongswan-libcharon",
    "vici": "strongswan-swanctl", "hmac": "libstrongswan", "sha2": "libstrongswan",
}
#: filelog levels: ike/chd at 4 print every secret; the rest stays readable.
DEFAULT_LOG_LEVELS = {"default": 1, "ike": 4, "chd": 4, "cfg": 1, "knl": 1, "net": 1,
                      "enc": 1, "lib": 1, "esp": 1, "job": 1, "mgr": 1, "dmn": 1}


def find_charon() -> str | None:
    """Full path of the charon daemon, or None."""
    for candidate in CHARON_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("charon")


def _plugin_dir() -> Path | None:
    for directory in PLUGIN_DIRS:
        if os.path.isdir(directory):
            return Path(directory)
    return None


def available_plugins() -> set[str]:
    """Names of the plugins installed (``libstrongswan-<name>.so``)."""
    directory = _plugin_dir()
    if directory is None:
        return set()
    return {p.name[len("libstrongswan-"):-len(".so")]
            for p in directory.glob("libstrongswan-*.so")}


def missing_plugins() -> dict[str, str]:
    """Required plugins not installed: {plugin: Debian package}. Empty when all is well."""
    present = available_plugins()
    return {name: package for name, package in REQUIRED_PLUGINS.items() if name not in present}


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class Charon:
    """One strongSwan charon daemon in one network namespace.

    ``directory`` holds everything of this instance (created if needed; a temporary one
    when ``None``): ``strongswan.conf``, ``swanctl.conf``, the vici socket
    ``charon.vici``, the filelog ``charon.log`` (every secret, at ``ike = 4``/``chd = 4``)
    and charon's own output ``charon.out``. ``swanctl`` is a :class:`SwanctlConfig` or raw
    swanctl.conf text; ``plugins`` overrides :data:`DEFAULT_PLUGINS`, ``log_levels`` merges
    into :data:`DEFAULT_LOG_LEVELS`, ``charon_options`` adds settings to the ``charon``
    section (``{"retransmit_tries": 2}``).

    The process is spawned through the :class:`NetnsSet`, so it is also ended when the
    set closes; :meth:`stop` ends it earlier, by its PID only. Use as a context manager
    (start on enter, stop on exit) or call :meth:`start`/:meth:`stop`.

    One charon per namespace: each binds UDP 500/4500 and creates the TUN device
    ``ipsec0`` there. The directory is left in place after :meth:`stop` (the log is the
    post-mortem); the caller owns it.
    """

    def __init__(self, netns: NetnsSet, ns: Namespace | str,
                 directory: str | os.PathLike[str] | None = None, *,
                 swanctl: SwanctlConfig | str | None = None,
                 charon_bin: str | None = None, swanctl_bin: str | None = None,
                 plugins: Sequence[str] | None = None,
                 log_levels: Mapping[str, int] | None = None,
                 charon_options: Mapping[str, Any] | None = None) -> None:
        self.netns = netns
        self.ns = netns.namespace(ns)
        self.directory = Path(directory).absolute() if directory is not None else Path(
            tempfile.mkdtemp(prefix=f"m6l-charon-{self.ns.label}-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.swanctl_config = swanctl
        self.charon_bin = charon_bin or find_charon()
        self.swanctl_bin = swanctl_bin or shutil.which("swanctl")
        self.plugins = list(plugins) if plugins is not None else None
        self.log_levels = {**DEFAULT_LOG_LEVELS, **(log_levels or {})}
        # Fail fast and retransmit little: a missing peer costs seconds, not minutes.
        self.charon_options: dict[str, Any] = {
            "retransmit_tries": 3, "retransmit_timeout": 1.0, "retransmit_base": 1.4,
            **(charon_options or {})}
        self.process: subprocess.Popen | None = None
        self._last_sas: dict[int, IkeSaInfo] = {}
        if len(str(self.vici_socket)) > 100:  # sun_path holds 108 bytes
            raise ValueError(f"directory path too long for a UNIX socket: {self.vici_socket}")

    # -- paths ---------------------------------------------------------------------
    @property
    def conf_path(self) -> Path:
        return self.directory / "strongswan.conf"

    @property
    def swanctl_conf_path(self) -> Path:
        return self.directory / "swanctl.conf"

    @property
    def log_path(self) -> Path:
        return self.directory / "charon.log"

    @property
    def output_path(self) -> Path:
        return self.directory / "charon.out"

    @property
    def vici_socket(self) -> Path:
        return self.directory / "charon.vici"

    @property
    def uri(self) -> str:
        return f"unix://{self.vici_socket}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Charon {self.ns.label} pid={self.pid} {state} {self.directory}>"

    # -- configuration -------------------------------------------------------------
    def plugin_list(self) -> list[str]:
        if self.plugins is not None:
            return list(self.plugins)
        present = available_plugins()
        return [p for p in DEFAULT_PLUGINS if p in present]

    def strongswan_conf(self) -> str:
        """The text of this instance's strongswan.conf."""
        levels = "\n".join(f"      {group} = {level}" for group, level in self.log_levels.items())
        options = "\n".join(f"  {key} = {_value(value)}"
                            for key, value in self.charon_options.items())
        return f"""\
# mip6lab.testing.strongswan: one charon in namespace {self.ns.name}
charon {{
  load_modular = no
  load = {' '.join(self.plugin_list())}
{options}
  plugins {{
    vici {{
      socket = {self.uri}
    }}
  }}
  filelog {{
    keys {{
      path = {self.log_path}
      time_format = %T
      ike_name = yes
      append = no
      flush_line = yes
{levels}
    }}
  }}
}}
"""

    def write_swanctl(self, config: SwanctlConfig | str | None = None) -> Path:
        """Write swanctl.conf (from ``config`` or the one given at construction)."""
        if config is not None:
            self.swanctl_config = config
        if self.swanctl_config is None:
            raise ValueError("no swanctl configuration given")
        text = self.swanctl_config if isinstance(self.swanctl_config, str) \
            else self.swanctl_config.render()
        self.swanctl_conf_path.write_text(text)
        return self.swanctl_conf_path

    # -- life cycle ----------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> Charon:
        """Start charon and wait until its vici socket answers."""
        if self.running:
            return self
        if self.charon_bin is None:
            raise CharonError("charon not found (Debian package strongswan-charon)")
        if self.swanctl_bin is None:
            raise CharonError("swanctl not found (Debian package strongswan-swanctl)")
        if self.plugins is None and (missing := missing_plugins()):
            raise CharonError("strongSwan plugins missing: " + ", ".join(
                f"{name} ({package})" for name, package in sorted(missing.items())))
        self.conf_path.write_text(self.strongswan_conf())
        if self.swanctl_config is not None:
            self.write_swanctl()
        for stale in (self.vici_socket, self.log_path):
            stale.unlink(missing_ok=True)
        env = {**os.environ, "STRONGSWAN_CONF": str(self.conf_path)}
        # ip netns exec -> unshare -> sh -> charon, each exec'ing: our PID is charon's.
        script = 'mount -t tmpfs -o mode=0755 m6l-run /run && exec "$0"'
        with open(self.output_path, "wb") as out:
            self.process = self.netns.spawn(
                self.ns, ["unshare", "--mount", "--propagation", "private", "--",
                          "sh", "-c", script, self.charon_bin],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise CharonError(f"charon in {self.ns.name} exited with status "
                                  f"{self.process.returncode}:\n{_tail(self.output_path)}\n"
                                  f"{_tail(self.log_path)}")
            if self.vici_socket.exists():
                probe = self._swanctl("--stats", check=False, timeout=5)
                if probe.returncode == 0:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise CharonError(f"charon in {self.ns.name} did not answer on {self.uri} "
                                  f"within {timeout} s:\n{_tail(self.log_path)}")
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM this charon (by PID), SIGKILL after ``timeout``; reap it; return status."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            try:
                process.terminate()
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        return process.returncode

    def __enter__(self) -> Charon:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop()

    # -- swanctl -------------------------------------------------------------------
    def _swanctl(self, command: str, *args: str, check: bool = True, timeout: float = 30
                 ) -> subprocess.CompletedProcess[str]:
        if self.swanctl_bin is None:
            raise CharonError("swanctl not found (Debian package strongswan-swanctl)")
        # swanctl only talks to the vici socket (a path): it needs no namespace.
        argv = [self.swanctl_bin, command, "--uri", self.uri, *args]
        env = {**os.environ, "STRONGSWAN_CONF": str(self.conf_path)}
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL, check=False)
        if check and proc.returncode != 0:
            raise CharonError(f"{' '.join(argv)} failed with status {proc.returncode}:\n"
                              f"{proc.stdout}{proc.stderr}\n--- {self.log_path}:\n"
                              f"{_tail(self.log_path)}")
        return proc

    def swanctl(self, command: str, *args: str, timeout: float = 30) -> str:
        """Run ``swanctl <command> --uri <ours> <args>``; return its output."""
        return self._swanctl(command, *args, timeout=timeout).stdout

    def load(self, config: SwanctlConfig | str | None = None) -> str:
        """Write swanctl.conf (if ``config`` is given) and load it all into charon."""
        if config is not None or not self.swanctl_conf_path.exists():
            self.write_swanctl(config)
        return self.swanctl("--load-all", "--noprompt", "--file", str(self.swanctl_conf_path))

    def initiate(self, child: str | None = None, *, ike: str | None = None,
                 timeout: float = 15) -> str:
        """Initiate a CHILD SA (and its IKE SA); returns when it is up or failed."""
        args = []
        if child is not None:
            args += ["--child", child]
        if ike is not None:
            args += ["--ike", ike]
        if not args:
            raise ValueError("initiate needs child= or ike=")
        return self.swanctl("--initiate", *args, "--timeout", str(max(1, round(timeout))),
                            timeout=timeout + 5)

    def terminate(self, *, ike: str | None = None, child: str | None = None,
                  ike_id: int | None = None, child_id: int | None = None,
                  force: bool = False, timeout: float = 10) -> str:
        """Terminate an IKE SA (with its CHILD SAs) or a CHILD SA, by name or unique id."""
        args = []
        for flag, value in (("--ike", ike), ("--child", child), ("--ike-id", ike_id),
                            ("--child-id", child_id)):
            if value is not None:
                args += [flag, str(value)]
        if not args:
            raise ValueError("terminate needs ike=, child=, ike_id= or child_id=")
        if force:
            args.append("--force")
        return self.swanctl("--terminate", *args, "--timeout", str(max(1, round(timeout))),
                            timeout=timeout + 5)

    def list_sas_raw(self) -> list[tuple[str, dict[str, Any]]]:
        """``swanctl --list-sas --pretty`` as (label, dict) pairs (see parse_vici_pretty)."""
        return parse_vici_pretty(self.swanctl("--list-sas", "--pretty"))

    def list_sas(self) -> list[IkeSaInfo]:
        """The IKE SAs (with their CHILD SAs) charon holds now."""
        sas = parse_list_sas(self.swanctl("--list-sas", "--pretty"))
        for sa in sas:
            self._last_sas[sa.unique_id] = sa
        return sas

    def wait_established(self, timeout: float = 10.0, *, ike: str | None = None,
                         child: str | None = None, interval: float = 0.05) -> IkeSaInfo:
        """Wait for an ESTABLISHED IKE SA (named ``ike``) with an INSTALLED CHILD SA
        (named ``child``, or any); return it."""
        deadline = time.monotonic() + timeout
        while True:
            for sa in self.list_sas():
                if sa.state != "ESTABLISHED" or (ike is not None and sa.name != ike):
                    continue
                if any(c.state == "INSTALLED" and (child is None or c.name == child)
                       for c in sa.child_sas):
                    return sa
            if not self.running:
                raise CharonError(f"charon in {self.ns.name} is not running:\n"
                                  f"{_tail(self.log_path)}")
            if time.monotonic() > deadline:
                raise CharonError(f"no established IKE SA {ike or ''} with CHILD SA "
                                  f"{child or ''} in {self.ns.name} after {timeout} s:\n"
                                  f"{_tail(self.log_path)}")
            time.sleep(interval)

    # -- keys ------------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def keys(self) -> CharonKeys:
        """Every IKE and CHILD SA secret in this charon's log.

        SPIs that the log lacks (IKE SAs created by a rekey) are taken from the last
        :meth:`list_sas` seen for the same unique id, if any.
        """
        keys = parse_charon_log(self.log_text())
        if self.running:
            try:
                self.list_sas()
            except CharonError:
                pass
        for sa in keys.ike_sas:
            info = self._last_sas.get(sa.unique_id) if sa.unique_id is not None else None
            if info is not None and sa.spis is None and info.spi_i and info.spi_r:
                sa.spi_i, sa.spi_r = bytes.fromhex(info.spi_i), bytes.fromhex(info.spi_r)
        return keys

    def write_wireshark_keys(self, directory: str | os.PathLike[str]) -> Path:
        """Write this charon's ``esp_sa`` and ``ikev2_decryption_table`` into ``directory``."""
        return write_wireshark_keys(directory, self.keys())
