"""Reading a trace event as a student does: its layers, its bytes, and what ESP and IKE hide.

:func:`dissect` turns a frame into scapy's layer tree with the byte range of every
layer's header (so a hexdump can mark the layer selected); :class:`KeyRing` holds every
key the lab used -- each SA as added and as every MIGRATE left it (the key engines'
history), and every IKE SA's SK_e/SK_a -- and opens ESP packets (RFC 4303 §3.4, on a
copy of the SA, so the nodes' replay windows are not touched) and IKE SK payloads
(RFC 7296 §3.14). :func:`protocols` says which protocols a frame carries, the
decrypted ones included, for filters: a BU inside ESP is both "ESP" and "MH".
:meth:`KeyRing.ike_message` gives an IKE message as values (:class:`IkeMessage`:
exchange, request or response, Message ID, the payloads with CP and TS decoded), so
that a notebook can ask "which message carried the home address?".

Nothing here changes the lab.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Padding

from .errors import RemoteProtocolError

if TYPE_CHECKING:
    from .net.lab import Lab
    from .trace import Event

#: the protocol names filters use, in the order a dashboard lists them
PROTOCOLS = ("IKE", "ESP", "MH", "ND/RA", "data", "other")

IKE_PORTS = (500, 4500)
DSMIP6_UDP_PORT = 4191
ETHER_HEADER = 14


@dataclass(frozen=True)
class Layer:
    """One layer of a dissected frame: its scapy name, depth, header bytes and fields."""

    name: str
    depth: int
    start: int                 # offset of the layer's first byte in the frame
    end: int                   # offset just after its own header (its payload follows)
    fields: tuple[tuple[str, str], ...]

    def text(self) -> str:
        inner = ", ".join(f"{name}={value}" for name, value in self.fields)
        return f"{'  ' * self.depth}{self.name} [{self.start}:{self.end}] {inner}"


@dataclass(frozen=True)
class Dissection:
    """A frame as layers; ``error`` says why scapy could not go further (None if it did)."""

    data: bytes
    layers: tuple[Layer, ...]
    error: str | None = None

    def text(self) -> str:
        lines = [layer.text() for layer in self.layers]
        if self.error:
            lines.append(f"(dissection stopped: {self.error})")
        return "\n".join(lines)


def _field_text(layer: Packet, fld) -> str:
    value = layer.getfieldval(fld.name)
    if isinstance(value, list) and value and all(isinstance(v, Packet) for v in value):
        return _options_text(value)
    try:
        text = fld.i2repr(layer, value)
    except Exception:          # a field scapy cannot show: its raw value, not a crash
        text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _options_text(options: list[Packet]) -> str:
    """A list of options (IPv6 extension header options, mobility options: RFC 6275
    §6.2, RFC 4283, RFC 4285) as one entry per option, its name and fields, so that the
    last option -- RFC 4285 §5.1's authenticator is always the last -- is not cut off
    behind the first ones. The type is the entry's name; each entry is cut at 200
    characters, not the list."""
    entries = []
    for option in options:
        inner = ", ".join(f"{fld.name}={_field_text(option, fld)}"
                          for fld in option.fields_desc if fld.name != "otype")
        entry = f"{option.name}({inner})"
        entries.append(entry if len(entry) <= 200 else entry[:197] + "...")
    return "[" + "; ".join(entries) + "]"


def dissect_packet(packet: Packet, data: bytes) -> Dissection:
    """The layers of ``packet`` (dissected from ``data``), each with its header's bytes:
    they follow one another from the first byte, each as long as its own fields build
    (so trailing padding, which scapy keeps apart, does not shift them)."""
    layers: list[Layer] = []
    layer, depth, at = packet, 0, 0
    while layer is not None and layer.name != "NoPayload":
        try:   # scapy builds a Padding layer as nothing: its bytes are its load
            length = len(layer.load) if isinstance(layer, Padding) else len(layer.self_build())
        except Exception:              # a layer that cannot build itself: the rest
            length = len(data) - at
        end = min(at + length, len(data))
        fields = tuple((fld.name, _field_text(layer, fld)) for fld in layer.fields_desc)
        layers.append(Layer(layer.name, depth, at, end, fields))
        at = end
        payload = layer.payload
        if not payload:
            break
        layer, depth = payload, depth + 1
    return Dissection(data, tuple(layers))


def dissect(frame: bytes) -> Dissection:
    """An Ethernet frame as scapy's layers; a frame scapy fails on gives its bytes as one
    raw layer and the reason, never an exception."""
    try:
        packet = Ether(frame)
    except Exception as exc:            # scapy raises many kinds; the reader gets text
        return Dissection(frame, (Layer("Raw", 0, 0, len(frame), (("load", frame.hex()),)),),
                          f"scapy could not dissect this frame: {exc}")
    return dissect_packet(packet, frame)


def hexdump_rows(data: bytes, width: int = 16) -> list[tuple[int, bytes]]:
    """(offset, bytes) per row of a hexdump."""
    return [(offset, data[offset:offset + width]) for offset in range(0, len(data), width)]


def hexdump_text(data: bytes, mark: tuple[int, int] | None = None, width: int = 16) -> str:
    """A hexdump; with ``mark`` (start, end) the marked bytes are in [brackets]."""
    lines = []
    for offset, chunk in hexdump_rows(data, width):
        cells = []
        for i, byte in enumerate(chunk):
            at = offset + i
            cell = f"{byte:02x}"
            if mark and mark[0] <= at < mark[1]:
                cell = f"[{cell}]"
            cells.append(cell)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:04x}  {' '.join(cells)}  {text}")
    return "\n".join(lines)


# -- decryption ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Decrypted:
    """What an encrypted part of a frame holds, opened with the lab's own keys."""

    what: str                  # "ESP payload" or "IKE SK payload"
    key: str                   # which SA's keys opened it
    dissection: Dissection | None
    payloads: tuple[str, ...] = ()     # IKE: the inner payloads, one line each
    error: str | None = None           # why it could not be opened
    packet: Packet | None = field(default=None, repr=False, compare=False)  # ESP: scapy's

    def text(self) -> str:
        head = f"Decrypted {self.what} (with {self.key})"
        if self.error:
            return f"{head}: cannot open: {self.error}"
        body = self.dissection.text() if self.dissection is not None else "\n".join(self.payloads)
        return f"{head}:\n{body}"


@dataclass(frozen=True)
class IkeMessage:
    """One IKE message as values (RFC 7296 §3.1): its exchange, request or response,
    Message ID, who sent it, and its payloads as scapy's classes -- those inside the SK
    payload decrypted with the lab's keys (``encrypted``: there was an SK payload;
    ``error``: why it could not be opened, its payloads then left out)."""

    exchange: str              # "IKE_SA_INIT", "IKE_AUTH", "CREATE_CHILD_SA", ...
    response: bool
    message_id: int
    from_initiator: bool       # the I flag: sent by the IKE SA's original initiator
    payloads: tuple[Packet, ...]
    encrypted: bool = False
    error: str | None = None

    @property
    def name(self) -> str:
        """"IKE_AUTH request", "CREATE_CHILD_SA response" ..."""
        return f"{self.exchange} {'response' if self.response else 'request'}"

    def find(self, kind: type | str) -> list[Packet]:
        """The payloads of a scapy class, given as the class or its name ("IKEv2_CP")."""
        return [p for p in self.payloads
                if (type(p).__name__ == kind if isinstance(kind, str) else isinstance(p, kind))]

    def cp(self) -> tuple[str, dict[str | int, list[Any]]] | None:
        """The Configuration payload (§3.15) as (CFG type, :func:`~mip6lab.wire.ikev2.
        decode_cp`'s attributes), or None when the message has none."""
        from .wire.ikev2 import CfgType, decode_cp

        found = self.find("IKEv2_CP")
        if not found:
            return None
        kind = found[0].CFGType
        return (CfgType(kind).name if kind in CfgType._value2member_map_ else str(kind),
                decode_cp(found[0]))

    def ts(self) -> tuple[list, list] | None:
        """(TSi, TSr) as :class:`~mip6lab.ikev2.ts.TrafficSelector` lists (§3.13), or None
        when the message carries no traffic selectors."""
        from .ikev2.ts import TrafficSelector
        from .wire.ikev2 import decode_ts

        def selectors(kind: str) -> list:
            return [TrafficSelector(r.start_address, r.end_address, r.protocol,
                                    r.start_port, r.end_port)
                    for payload in self.find(kind) for r in decode_ts(payload)]
        tsi, tsr = selectors("IKEv2_TSi"), selectors("IKEv2_TSr")
        return (tsi, tsr) if self.find("IKEv2_TSi") or self.find("IKEv2_TSr") else None

    def text(self) -> str:
        """The message in one line, then one line per payload (CP and TS decoded)."""
        sender = "initiator" if self.from_initiator else "responder"
        how = "" if not self.encrypted else \
            f"; SK payload {'not opened: ' + self.error if self.error else 'decrypted'}"
        lines = [f"{self.name} #{self.message_id} (from the {sender}{how})"]
        for payload in self.payloads:
            lines.append("  " + _ike_payload_line(payload, self))
        return "\n".join(lines)


def _ike_payload_line(payload: Packet, message: IkeMessage) -> str:
    name = type(payload).__name__
    if name == "IKEv2_CP":
        kind, attributes = message.cp()
        values = [f"{attr} " + ("(empty: a request)" if value is None else
                                f"{value.prefix} lifetime {value.lifetime} s"
                                if hasattr(value, "lifetime") else str(value))
                  for attr, found in attributes.items() for value in found]
        return f"CP({kind}): " + ("; ".join(values) or "no attributes")
    if name in ("IKEv2_TSi", "IKEv2_TSr"):
        tsi, tsr = message.ts()
        return f"{name[6:]}: " + ", ".join(str(t) for t in (tsi if name == "IKEv2_TSi" else tsr))
    if name in ("IKEv2_IDi", "IKEv2_IDr"):
        ident = payload.ID.decode(errors="replace") if isinstance(payload.ID, bytes) \
            else str(payload.ID)
        return f"{name[6:]}: {payload.get_field('IDtype').i2repr(payload, payload.IDtype)} {ident}"
    if name == "IKEv2_Notify":
        from .wire.ikev2 import notify_name
        return f"N({notify_name(payload)})"
    if name == "IKEv2_SA":
        return f"SA: {_count_proposals(payload)} proposal(s)"
    return name[6:] if name.startswith("IKEv2_") else payload.summary().split(" / ")[0]


def _count_proposals(sa: Packet) -> int:
    from .wire.ikev2 import decode_sa
    try:
        return len(decode_sa(sa))
    except Exception:
        return 0


def _ip_packet(frame: bytes) -> bytes | None:
    """The IP packet of an Ethernet frame, out of the DSMIP6 tunnel if it is in one:
    IPv4/UDP 4191 (RFC 5555 §4.1) or IPv6-in-IPv4 (protocol 41) -- a BU sent from an
    IPv4 care-of address is IPv4 / UDP 4191 / IPv6 / ESP."""
    if len(frame) < ETHER_HEADER:
        return None
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype not in (0x0800, 0x86DD):
        return None
    packet = frame[ETHER_HEADER:]
    if packet[:1] and packet[0] >> 4 == 4 and len(packet) >= 20:
        header = (packet[0] & 0x0F) * 4
        proto = packet[9]
        if proto == 41 and len(packet) > header:
            return packet[header:]
        if proto == 17 and len(packet) >= header + 8 + 40:
            ports = (int.from_bytes(packet[header:header + 2], "big"),
                     int.from_bytes(packet[header + 2:header + 4], "big"))
            inner = packet[header + 8:]
            if DSMIP6_UDP_PORT in ports and inner[0] >> 4 in (4, 6):
                return inner
    return packet


def _ike_message(frame: bytes) -> bytes | None:
    """The IKE message a frame carries in UDP 500 or 4500 (non-ESP marker removed)."""
    try:
        packet = Ether(frame)
    except Exception:
        return None
    udp = packet.getlayer(UDP)
    if udp is None or not (udp.sport in IKE_PORTS or udp.dport in IKE_PORTS):
        return None
    data = bytes(udp.payload)
    if 4500 in (udp.sport, udp.dport):
        if len(data) < 4 or data[:4] != b"\0\0\0\0":
            return None
        data = data[4:]
    return data if len(data) >= 28 else None


class KeyRing:
    """Every key ``lab`` used, to open what its frames hide."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def _esp_sas(self, spi: int) -> list:
        found = []
        for node in self.lab.nodes.values():
            if node.ipsec is None:
                continue
            for sa in [*node.ipsec.sad, *reversed(node.ipsec.engine.history)]:
                if sa.spi == spi and sa.direction == "in" and sa not in found:
                    found.append(sa)
        return found

    def _ike_sas(self, spi_i: bytes) -> list:
        return [node.ike.sas[spi_i] for node in self.lab.nodes.values()
                if node.ike is not None and spi_i in node.ike.sas
                and node.ike.sas[spi_i].keys is not None]

    def open_esp(self, frame: bytes) -> Decrypted | None:
        """The ESP payload of ``frame`` decrypted (None if the frame carries no ESP)."""
        from .ipsec.esp import EspError, esp_spi, open_copy

        packet = _ip_packet(frame)
        spi = esp_spi(packet) if packet is not None else None
        if spi is None:
            return None
        candidates = self._esp_sas(spi)
        if not candidates:
            return Decrypted("ESP payload", f"SPI 0x{spi:08x}", None,
                             error="the lab holds no inbound SA with this SPI")
        reason = ""
        for sa in candidates:
            try:
                opened = open_copy(sa, packet)
            except (EspError, RemoteProtocolError) as exc:
                reason = exc.reason if hasattr(exc, "reason") else str(exc)
                continue
            inner = opened.packet
            layer = IPv6 if inner[:1] and inner[0] >> 4 == 6 else IP
            try:
                parsed = layer(inner)
                dissection = dissect_packet(parsed, inner)
            except Exception as exc:
                parsed, dissection = None, Dissection(inner, (), f"scapy could not dissect "
                                                                 f"it: {exc}")
            return Decrypted("ESP payload", f"SA 0x{spi:08x} {sa.mode} mode, {sa.suite}",
                             dissection, packet=parsed)
        return Decrypted("ESP payload", f"SPI 0x{spi:08x}", None, error=reason)

    def open_ike(self, frame: bytes) -> Decrypted | None:
        """The SK payload of an IKE message in ``frame`` decrypted (None if the frame
        carries no IKE message, or one without SK, as IKE_SA_INIT)."""
        from .crypto.ike.sk import decrypt_message, find_encrypted_payload
        from .wire.ikev2 import decode_inner_payloads

        message = _ike_message(frame)
        if message is None:
            return None
        try:
            find_encrypted_payload(message)
        except Exception:
            return None                     # no SK payload: nothing is hidden
        spi_i = message[:8]
        from_initiator = bool(message[19] & 0x08)
        sas = self._ike_sas(spi_i)
        key = f"IKE SA {spi_i.hex()}"
        if not sas:
            return Decrypted("IKE SK payload", key, None,
                             error="the lab holds no keys for this IKE SA")
        reason = ""
        for sa in sas:
            try:
                first, inner = decrypt_message(sa.keys.cipher(from_initiator=from_initiator),
                                               message)
                payloads = decode_inner_payloads(first, inner)
            except Exception as exc:        # a forged or damaged message: say why
                reason = str(exc) or type(exc).__name__
                continue
            side = "SK_ei/SK_ai" if from_initiator else "SK_er/SK_ar"
            lines, layers = [], []
            for payload in payloads:
                one = dissect_packet(payload, bytes(payload))
                layers.extend(Layer(l.name, l.depth, 0, 0, l.fields) for l in one.layers[:1])
                lines.append(payload.summary().split(" / ")[0])  # this payload, not the chain
            return Decrypted("IKE SK payload", f"{key}, {side}",
                             Dissection(inner, tuple(layers)), tuple(lines))
        return Decrypted("IKE SK payload", key, None, error=reason)

    def open(self, frame: bytes) -> Decrypted | None:
        """Whatever ``frame`` hides: its ESP payload or its IKE SK payload."""
        return self.open_esp(frame) or self.open_ike(frame)

    def ike_message(self, frame: bytes) -> IkeMessage | None:
        """The IKE message ``frame`` carries (UDP 500, or 4500 after the non-ESP marker)
        as an :class:`IkeMessage`, its SK payload opened with the lab's keys; None for a
        frame without one, or one that is not a well-formed IKE message."""
        from .crypto.ike.sk import decrypt_message
        from .wire.ikev2 import (ExchangeType, IKEv2_Encrypted, decode_inner_payloads,
                                 decode_message, message_payloads)

        data = _ike_message(frame)
        if data is None:
            return None
        try:
            header = decode_message(data)
        except Exception:                   # not ours to read: no message, not a crash
            return None
        kind = header.exch_type
        exchange = ExchangeType(kind).name if kind in ExchangeType._value2member_map_ \
            else str(kind)
        flags = data[19]
        outer = [p for p in message_payloads(header) if not isinstance(p, IKEv2_Encrypted)]
        encrypted = len(outer) < len(message_payloads(header))
        inner: list = []
        error = None
        if encrypted:
            from_initiator = bool(flags & 0x08)
            sas = self._ike_sas(data[:8])
            error = "the lab holds no keys for this IKE SA" if not sas else None
            for sa in sas:
                try:
                    first, plain = decrypt_message(
                        sa.keys.cipher(from_initiator=from_initiator), data)
                    inner, error = decode_inner_payloads(first, plain), None
                    break
                except Exception as exc:    # a forged or damaged message: say why
                    error = str(exc) or type(exc).__name__
        return IkeMessage(exchange, bool(flags & 0x20), int.from_bytes(data[20:24], "big"),
                          bool(flags & 0x08), tuple(outer + list(inner)), encrypted, error)


# -- classification ----------------------------------------------------------------------


def _protocols_of(packet: Packet) -> tuple[set[str], str | None]:
    """The protocols one dissected packet shows, and "BU"/"BA" if it carries one."""
    from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, ICMPv6ND_RS,
                                    MIP6MH_BA, MIP6MH_BE, MIP6MH_BU, MIP6MH_Generic)
    from scapy.layers.ipsec import ESP

    found: set[str] = set()
    udp = packet.getlayer(UDP)
    if udp is not None and (udp.sport in IKE_PORTS or udp.dport in IKE_PORTS):
        data = bytes(udp.payload)
        if data == b"\xff":
            found.add("other")     # a NAT-keepalive (RFC 3948 §2.3): neither IKE nor ESP
        elif 4500 in (udp.sport, udp.dport) and data[:4] != b"\0\0\0\0":
            found.add("ESP")       # ESP in UDP 4500 (RFC 3948 §2.1)
        else:
            found.add("IKE")
    if packet.haslayer(ESP):
        found.add("ESP")
    message = "BU" if packet.haslayer(MIP6MH_BU) else "BA" if packet.haslayer(MIP6MH_BA) \
        else None
    # (UDP 4191 says nothing by itself: RFC 5555 §4.1 tunnels data in it too; scapy
    # dissects what it carries, which wire/mip6.py binds to the port)
    if message or packet.haslayer(MIP6MH_BE) or packet.haslayer(MIP6MH_Generic):
        found.add("MH")
    if any(packet.haslayer(kind) for kind in (ICMPv6ND_RA, ICMPv6ND_RS, ICMPv6ND_NS,
                                              ICMPv6ND_NA)):
        found.add("ND/RA")
    return found, message


def classify(frame: bytes, keyring: KeyRing | None = None) -> tuple[frozenset[str], str | None]:
    """(the protocols ``frame`` carries, "BU"/"BA" or None), looking inside ESP when
    ``keyring`` is given: one dissection of the frame and at most one decryption.

    Protocols are names of :data:`PROTOCOLS`: IKE, ESP, MH, ND/RA, data (anything else
    over IP: the traffic the scenario's applications send) or other (ARP ...)."""
    try:
        packet = Ether(frame)
    except Exception:
        return frozenset({"other"}), None
    found, message = _protocols_of(packet)
    if "ESP" in found and keyring is not None:
        opened = keyring.open_esp(frame)
        if opened is not None and opened.packet is not None:
            inside, inner_message = _protocols_of(opened.packet)
            found |= inside or {"data"}
            message = message or inner_message
    if not found:
        found.add("data" if packet.haslayer(IP) or packet.haslayer(IPv6) else "other")
    return frozenset(found), message


def protocols(frame: bytes, keyring: KeyRing | None = None) -> frozenset[str]:
    """The protocols of :func:`classify`."""
    return classify(frame, keyring)[0]


def mobility_message(frame: bytes, keyring: KeyRing | None = None) -> str | None:
    """"BU" or "BA" when ``frame`` carries a Binding Update or Acknowledgement (in clear,
    in ESP, or in UDP 4191), else None."""
    return classify(frame, keyring)[1]


@dataclass
class EventView:
    """What an inspector shows of one event, as data (and :meth:`text`)."""

    event: Event
    dissection: Dissection | None = None
    decrypted: Decrypted | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        e = self.event
        lines = [f"Event #{e.index} at {e.time:.6f} s: {e.node}/{e.module} {e.kind}",
                 e.summary]
        if e.link:
            lines.append(f"link {e.link}" + (f", from {e.peer}" if e.peer else ""))
        if e.reason:
            lines.append(f"reason: {e.reason}")
        for key, value in self.details.items():
            lines.append(f"{key}: {value}")
        if self.dissection is not None:
            lines.append(self.dissection.text())
        if self.decrypted is not None:
            lines.append(self.decrypted.text())
        return "\n".join(lines)


def view(event: Event, keyring: KeyRing | None = None) -> EventView:
    """Everything an inspector shows of ``event``; never raises on a bad frame."""
    details = {key: value for key, value in event.data.items()}
    if event.packet is None:
        return EventView(event, details=details)
    dissection = dissect(event.packet)
    decrypted = keyring.open(event.packet) if keyring is not None else None
    return EventView(event, dissection, decrypted, details)


class TraceReader:
    """:func:`classify` and :func:`view` for the events of one lab, each frame
    classified once (a dashboard asks again at every redraw)."""

    def __init__(self, lab: Lab) -> None:
        self.keyring = KeyRing(lab)
        self._classes: dict[int, tuple[frozenset[str], str | None]] = {}

    def _classify(self, event: Event) -> tuple[frozenset[str], str | None]:
        found = self._classes.get(event.index)
        if found is None:
            found = self._classes[event.index] = classify(event.packet, self.keyring)
        return found

    def protocols(self, event: Event) -> frozenset[str]:
        """The protocols of a packet event (empty for other events)."""
        return self._classify(event)[0] if event.packet is not None else frozenset()

    def mobility_message(self, event: Event) -> str | None:
        """"BU" or "BA" for a packet event carrying one, else None."""
        return self._classify(event)[1] if event.packet is not None else None

    def ike_message(self, event: Event) -> IkeMessage | None:
        """The IKE message of a packet event, decrypted (:meth:`KeyRing.ike_message`)."""
        return self.keyring.ike_message(event.packet) if event.packet is not None else None

    def view(self, event: Event) -> EventView:
        return view(event, self.keyring)
