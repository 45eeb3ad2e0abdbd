"""Shared material for the IKEv2 wire tests.

- the IKE datagrams of the strongSwan 5.9.8 pair capture (tests/data), extracted here
  without the code under test: UDP 500 payloads as they are, UDP 4500 payloads only
  after a non-ESP marker, checked by hand;
- the plaintexts of their SK payloads, as tshark decrypts them with the pair's
  ``ikev2_decryption_table`` (tshark is the oracle; no crypto of ours is involved);
- :func:`rebuild`, which makes a fresh packet from a dissection's field values with every
  length, count and Next Payload left for the builder to compute.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from scapy.layers.inet import UDP
from scapy.packet import NoPayload, Packet, Raw
from scapy.utils import rdpcap

from mip6lab.testing.prereq import require_tool
from mip6lab.wire.ikev2 import IKEv2, IKEv2_Encrypted, IKEv2_Payload

PAIR = Path(__file__).resolve().parent.parent / "data" / "strongswan-5.9.8-pair"
PCAP = PAIR / "pair.pcapng"
DECRYPTION_TABLE = PAIR / "ikev2_decryption_table"


@dataclass(frozen=True)
class Captured:
    """One IKE message of the capture: tshark's frame number (from 1), UDP port."""

    frame: int
    port: int
    data: bytes


@functools.cache
def captured() -> tuple[Captured, ...]:
    found = []
    for number, packet in enumerate(rdpcap(str(PCAP)), start=1):
        if UDP not in packet:
            continue
        udp = packet[UDP]
        payload = bytes(udp.payload)
        if (udp.sport, udp.dport) == (500, 500):
            found.append(Captured(number, 500, payload))
        elif (udp.sport, udp.dport) == (4500, 4500) and payload[:4] == bytes(4):
            found.append(Captured(number, 4500, payload[4:]))
    return tuple(found)


def message(frame: int) -> bytes:
    return next(c.data for c in captured() if c.frame == frame)


_FRAME_LINE = re.compile(r"^\s*(\d+)\s+\d+\.\d+\s")
_HEX_LINE = re.compile(r"^[0-9a-f]{4}  ((?:[0-9a-f]{2} ){1,16})")


@functools.cache
def _tshark_decrypted() -> dict[int, bytes]:
    tshark = require_tool("tshark", "to decrypt the capture's SK payloads")
    with tempfile.TemporaryDirectory(prefix="m6l-ike-") as config:
        shutil.copy(DECRYPTION_TABLE, config)
        env = dict(os.environ, WIRESHARK_CONFIG_DIR=config)
        out = subprocess.run([tshark, "-n", "-r", str(PCAP), "-Y", "isakmp.nextpayload == 46",
                              "-P", "-x"], env=env, capture_output=True, text=True,
                             check=True).stdout
    result: dict[int, bytes] = {}
    frame, in_decrypted = None, False
    for line in out.splitlines():
        if m := _FRAME_LINE.match(line):
            frame, in_decrypted = int(m.group(1)), False
        elif line.startswith("Decrypted Data"):
            in_decrypted = True
            result[frame] = b""
        elif in_decrypted and (m := _HEX_LINE.match(line)):
            result[frame] += bytes.fromhex(m.group(1))
        elif not line.strip():
            in_decrypted = False
    return result


def sk_plaintext(frame: int) -> bytes:
    """The payload chain inside frame's SK payload: tshark's decrypted data without the
    padding and the pad length octet (RFC 7296 §3.14)."""
    decrypted = _tshark_decrypted()[frame]
    return decrypted[:len(decrypted) - decrypted[-1] - 1]


# Fields the builder computes; rebuild() leaves them unset so that the builder must.
_COMPUTED = {"length", "trans_nb", "number_of_TSs", "SPInum", "SPIsize", "gw_id_len"}


def _fresh(layer: Packet) -> Packet:
    values = {}
    for name, value in layer.fields.items():
        if name in _COMPUTED:
            continue
        if isinstance(value, Raw):              # a sub-packet kept as bytes (CERT)
            value = Raw(load=value.load)
        elif isinstance(value, Packet):
            value = rebuild(value)
        elif isinstance(value, list) and value and isinstance(value[0], Packet):
            value = [rebuild(v) for v in value]
        values[name] = value
    return type(layer)(**values)


def rebuild(packet: Packet) -> Packet:
    """A new packet with the field values of ``packet`` (and of its payloads and
    sub-packets), but no length, count, SPI size or Next Payload: those come from the
    builder. Kept: the Next Payload of the SK payload (the first inner type) and of a
    payload followed by one of unknown type (no class to derive it from)."""
    layers = []
    layer = packet
    while isinstance(layer, Packet) and not isinstance(layer, NoPayload):
        if isinstance(layer, Raw):
            raise AssertionError(f"undissected bytes left: {bytes(layer)!r}")
        fresh = _fresh(layer)
        following = layer.payload
        keep_next = isinstance(layer, IKEv2_Encrypted) or type(following) is IKEv2_Payload
        if not keep_next and "next_payload" in fresh.fields:
            del fresh.fields["next_payload"]
        layers.append(fresh)
        layer = following
    result = layers[0]
    for fresh in layers[1:]:
        result = result / fresh
    return result


def rebuilt_bytes(packet: Packet) -> bytes:
    return bytes(rebuild(packet))


__all__ = ["IKEv2", "Captured", "captured", "message", "sk_plaintext", "rebuild",
           "rebuilt_bytes", "PAIR", "PCAP", "DECRYPTION_TABLE"]


@functools.cache
def built_messages() -> tuple[bytes, ...]:
    """Well-formed messages built from scratch with every payload kind the capture's
    cleartext lacks (CP, TS, ID, AUTH, CERTREQ, Delete, typed notifies, an unknown
    critical payload): seeds for the mutation fuzzers."""
    from mip6lab.wire import ikev2 as w

    spi_i, spi_r = bytes(range(1, 9)), bytes(range(9, 17))

    def build(exchange, payloads, **kw):
        return bytes(w.build_message(exchange, payloads, init_spi=spi_i, resp_spi=spi_r, **kw))

    cp = w.build_cp_payload("CFG_REPLY", [
        w.cp_attribute("INTERNAL_IP6_ADDRESS", address="2001:db8:aaaa::100", prefix_len=64),
        w.cp_attribute("MIP6_HOME_PREFIX", prefix_lifetime=600, home_prefix="2001:db8:aa::",
                       prefix_len=48),
        w.cp_attribute("INTERNAL_IP4_ADDRESS", address="192.0.2.1"),
        w.cp_attribute("INTERNAL_IP4_SUBNET", address="10.0.0.0", netmask="255.0.0.0"),
        w.cp_attribute("INTERNAL_IP6_SUBNET", address="2001:db8::", prefix_len=32),
        w.cp_attribute("SUPPORTED_ATTRIBUTES", attribute_types=[1, 8, 16]),
        w.cp_attribute("APPLICATION_VERSION", text=b"v1"),
        w.cp_attribute("INTERNAL_IP6_DNS"),
        w.cp_attribute(99, value=b"\x01\x02"),
    ])
    ts = [w.build_ts_payload(True, [w.mh_traffic_selector("2001:db8::1", "BU"),
                                    w.traffic_selector("192.0.2.0/24", 17, (500, 4500))]),
          w.build_ts_payload(False, [w.traffic_selector("::/0")])]
    sa = w.build_sa_payload([w.Proposal(w.Protocol.ESP, (
        w.Transform(w.TransformType.ENCR, w.EncrId.ENCR_AES_GCM_16, 128),
        w.Transform(w.TransformType.ESN, 0), w.Transform(w.TransformType.ESN, 1)),
        spi=b"\x01\x02\x03\x04")])
    auth_payloads = [w.IKEv2_IDi(IDtype="ID_FQDN", ID=b"mn.example"), w.IKEv2_CERTREQ(
        cert_encoding=4, cert_authority=bytes(20)), w.IKEv2_IDr(IDtype="ID_IPV4_ADDR",
        ID="192.0.2.2"), w.IKEv2_AUTH(auth_type=2, load=bytes(32)), cp, sa, *ts,
        w.IKEv2_Notify(type="USE_TRANSPORT_MODE")]
    informational = [
        w.IKEv2_Notify(type="INVALID_KE_PAYLOAD", dh_group=19),
        w.IKEv2_Notify(type="ADDITIONAL_IP6_ADDRESS", address="2001:db8::7"),
        w.IKEv2_Notify(type="NO_NATS_ALLOWED", src_address="2001:db8::1",
                       dst_address="2001:db8::2", src_port=500, dst_port=500),
        w.IKEv2_Notify(type="UNSUPPORTED_CRITICAL_PAYLOAD", payload_type=200),
        w.IKEv2_Notify(type="COOKIE2", notify=bytes(8)),
        w.IKEv2_Delete(proto="ESP", SPI=[b"\x00\x00\x00\x01"]),
        w.IKEv2_Delete(proto="IKE"),
        w.IKEv2_VendorID(vendorID=b"mip6lab"),
        w.IKEv2_Payload(flags="critical", load=b"?", next_payload=0),
    ]
    informational[-2].next_payload = 200
    return (build("IKE_AUTH", auth_payloads, message_id=1),
            build("INFORMATIONAL", informational, message_id=2))
