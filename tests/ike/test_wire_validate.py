"""The strict validator: scapy dissects nearly anything, the IKE engine must not act on it.

Every truncation and every wrong length of the capture's real messages is refused with
MalformedIKEMessage (a MalformedPacket, a RemoteProtocolError); so is each inconsistency
RFC 7296 §3 names, one small case each, built on a well-formed message.
"""

from __future__ import annotations

import struct

import pytest
from scapy.contrib import ikev2 as scapy_ikev2

from mip6lab.errors import MalformedPacket, RemoteProtocolError
from mip6lab.wire.ikev2 import (
    DhGroup,
    EncrId,
    IKEv2_Delete,
    IKEv2_Encrypted,
    IKEv2_KE,
    IKEv2_Nonce,
    IKEv2_Notify,
    IKEv2_Payload,
    IKEv2_TSi,
    InvalidMajorVersion,
    MalformedIKEMessage,
    PayloadType,
    Proposal,
    Protocol,
    Transform,
    TransformType,
    build_message,
    build_sa_payload,
    cp_attribute,
    build_cp_payload,
    decode_inner_payloads,
    decode_message,
    traffic_selector,
    unwrap_udp,
    validate_inner_payloads,
    validate_message,
)

from ._wire import captured, message

SPI = bytes.fromhex("0102030405060708")
NONCE = IKEv2_Nonce(nonce=bytes(32))


def payload_offsets(data: bytes) -> list[tuple[int, int]]:
    """(payload type, offset) of each payload of a well-formed message, walked by hand."""
    offsets, offset, kind = [], 28, data[16]
    while kind:
        offsets.append((kind, offset))
        if kind == PayloadType.SK:
            break
        kind, offset = data[offset], offset + struct.unpack_from("!H", data, offset + 2)[0]
    return offsets


def refused(data: bytes, match: str | None = None) -> MalformedIKEMessage:
    with pytest.raises(MalformedIKEMessage, match=match) as info:
        decode_message(data)
    return info.value


def msg(*payloads, exchange="INFORMATIONAL") -> bytes:
    return bytes(build_message(exchange, list(payloads), init_spi=SPI, resp_spi=SPI))


def with_byte(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + bytes([value]) + data[offset + 1:]


def with_u16(data: bytes, offset: int, value: int) -> bytes:
    return data[:offset] + struct.pack("!H", value) + data[offset + 2:]


@pytest.mark.parametrize("captured_message", captured(), ids=lambda c: f"frame{c.frame}")
def test_the_capture_is_accepted_and_every_truncation_refused(captured_message):
    data = captured_message.data
    validate_message(data)
    for cut in range(len(data)):
        with pytest.raises(MalformedIKEMessage):
            validate_message(data[:cut])
    # Even with the header's Length corrected to the truncated size, a cut payload is seen.
    for kind, offset in payload_offsets(data):
        cut = data[:offset + 3]
        with pytest.raises(MalformedIKEMessage):
            validate_message(cut[:24] + struct.pack("!I", len(cut)) + cut[28:])


@pytest.mark.parametrize("captured_message", captured(), ids=lambda c: f"frame{c.frame}")
def test_every_wrong_payload_length_is_refused(captured_message):
    data = captured_message.data
    for kind, offset in payload_offsets(data):
        length = struct.unpack_from("!H", data, offset + 2)[0]
        for wrong in {length - 1, length + 1, 3, 0, 0xFFFF} - {length}:
            error = refused(with_u16(data, offset + 2, wrong))
            assert error.offset is not None and error.offset >= offset


@pytest.mark.parametrize("captured_message", captured(), ids=lambda c: f"frame{c.frame}")
def test_wrong_header_length_and_trailing_octets(captured_message):
    data = captured_message.data
    refused(data + b"\x00", "Length")
    refused(data[:24] + struct.pack("!I", len(data) + 1) + data[28:], "Length")
    refused(data[:24] + struct.pack("!I", len(data) - 1) + data[28:], "Length")


def test_errors_are_remote_protocol_errors_with_a_place():
    error = refused(message(1)[:20])
    assert isinstance(error, MalformedPacket) and isinstance(error, RemoteProtocolError)
    assert error.offset == 0 and "truncated IKE header" in error.reason


@pytest.mark.parametrize("version, major", [(0x10, 1), (0x30, 3), (0x00, 0)])
def test_other_major_versions(version, major):
    error = refused(with_byte(message(1), 17, version))
    assert isinstance(error, InvalidMajorVersion) and error.major == major


def test_minor_version_is_ignored():
    decode_message(with_byte(message(1), 17, 0x21))          # §3.1: MUST ignore


def test_sa_payload_inconsistencies():
    good = msg(build_sa_payload([Proposal(Protocol.IKE, (
        Transform(TransformType.ENCR, EncrId.ENCR_AES_CBC, 128),
        Transform(TransformType.PRF, 5), Transform(TransformType.INTEG, 12),
        Transform(TransformType.KE, DhGroup.ECP_256)))]))
    decode_message(good)
    sa, proposal, transform = 28, 32, 40
    refused(with_byte(good, proposal + 7, 3), "Num Transforms says 3")
    refused(with_byte(good, proposal + 7, 5), "Num Transforms says 5")
    refused(with_byte(good, proposal + 7, 0), "Num Transforms 0")
    refused(with_byte(good, proposal, 1), "Last Substruc")
    refused(with_byte(good, proposal, 2), "announces a proposal")
    refused(with_byte(good, transform, 0), "after the last transform")
    refused(with_byte(good, transform + 12 + 8 + 8, 3), "announces a transform")
    refused(with_byte(good, proposal + 6, 40), "Proposal Length")        # SPI size
    refused(with_u16(good, transform + 2, 8), "Last Substruc 128")     # 0x80 0x0e read next
    refused(with_u16(good, transform + 8, 0x000E), "attribute")          # TLV, length 128
    empty_sa = msg(IKEv2_Payload(), NONCE)
    refused(with_byte(empty_sa, 16, PayloadType.SA), "no proposal")
    assert good[sa + 4:proposal + 4] == bytes.fromhex("0000002c")     # proposal: 8 + 12 + 3 × 8


def test_nonce_sizes():
    decode_message(msg(IKEv2_Nonce(nonce=bytes(16))))
    decode_message(msg(IKEv2_Nonce(nonce=bytes(256))))
    refused(msg(IKEv2_Nonce(nonce=bytes(15))), "16..256")
    refused(msg(IKEv2_Nonce(nonce=bytes(257))), "16..256")


@pytest.mark.parametrize("notify, match", [
    (IKEv2_Notify(type="INVALID_KE_PAYLOAD", notify=b"\x00\x13\x00"), "INVALID_KE_PAYLOAD"),
    (IKEv2_Notify(type="NAT_DETECTION_SOURCE_IP", notify=bytes(19)), "NAT_DETECTION"),
    (IKEv2_Notify(type="COOKIE", notify=b""), "COOKIE"),
    (IKEv2_Notify(type="COOKIE", notify=bytes(65)), "COOKIE"),
    (IKEv2_Notify(type="COOKIE2", notify=bytes(7)), "COOKIE2"),
    (IKEv2_Notify(type="ADDITIONAL_IP6_ADDRESS", notify=bytes(4)), "ADDITIONAL_IP6"),
    (IKEv2_Notify(type="UNSUPPORTED_CRITICAL_PAYLOAD", notify=b""), "UNSUPPORTED"),
    (IKEv2_Notify(type="SIGNATURE_HASH_ALGORITHMS", notify=b"\x00\x02\x00"), "SIGNATURE"),
])
def test_notify_data_of_the_wrong_size(notify, match):
    refused(msg(notify), match)


def raw_payload(kind: int, body: bytes) -> bytes:
    """A message whose only payload is ``kind`` with ``body`` after its generic header."""
    return with_byte(msg(IKEv2_Payload(load=body)), 16, kind)


def test_redirect_notify_structure():
    # RFC 5685: GW Ident Type, GW Ident Len, the identity (4 octets for IPv4)
    good = raw_payload(PayloadType.NOTIFY, bytes.fromhex("00004018" "0104c0000202"))
    assert decode_message(good)[IKEv2_Notify].gw_id == "192.0.2.2"
    refused(raw_payload(PayloadType.NOTIFY, bytes.fromhex("00004018" "0104c00002")),
            "GW Ident Len 4 inconsistent")
    refused(raw_payload(PayloadType.NOTIFY, bytes.fromhex("00004018" "0103c00002")),
            "GW Ident Len 3 for identity type 1")


def test_notify_spi_size_past_the_payload():
    data = msg(IKEv2_Notify(type="REKEY_SA", proto="ESP", SPI=bytes(4)))
    decode_message(data)
    refused(with_byte(data, 28 + 5, 5), "SPI Size")


def test_delete_inconsistencies():
    esp = msg(IKEv2_Delete(proto="ESP", SPI=[bytes(4), bytes(4)]))
    decode_message(esp)
    refused(with_u16(esp, 28 + 6, 3), "3 SPIs")
    refused(with_byte(esp, 28 + 5, 8), "SPI Size 8")
    refused(with_byte(esp, 28 + 4, 9), "Protocol ID 9")
    ike = msg(IKEv2_Delete(proto="IKE"))
    refused(with_byte(ike, 28 + 5, 8), "SPI Size 8 for IKE")


def test_ts_inconsistencies():
    good = msg(IKEv2_TSi(traffic_selector=[traffic_selector("2001:db8::/64")]))
    decode_message(good)
    refused(with_byte(good, 28 + 4, 2), "Number of TSs says 2")
    refused(with_byte(good, 28 + 4, 0), "Number of TSs 0")
    refused(with_u16(good, 28 + 8 + 2, 20), "Selector Length 20")
    # scapy's own IPv6 selector says 20 octets: a message built with it is refused
    scapy_ts = scapy_ikev2.IPv6TrafficSelector(IP_protocol_ID=0)
    assert scapy_ts.length == 20
    refused(msg(IKEv2_TSi(traffic_selector=[scapy_ts])), "Selector Length 20")


def test_cp_inconsistencies():
    good = msg(build_cp_payload("CFG_REPLY", [
        cp_attribute("INTERNAL_IP6_ADDRESS", address="2001:db8::1", prefix_len=64)]))
    decode_message(good)
    attribute = 28 + 8
    refused(with_u16(good, attribute + 2, 18), "runs past")
    short = good[:attribute + 2] + struct.pack("!H", 16) + good[attribute + 4:-1]
    short = with_u16(short, 30, len(short) - 28)
    short = short[:24] + struct.pack("!I", len(short)) + short[28:]
    refused(short, "INTERNAL_IP6_ADDRESS with a value of 16 octets")
    home = msg(build_cp_payload("CFG_REPLY", [cp_attribute(
        "MIP6_HOME_PREFIX", prefix_lifetime=1, home_prefix="2001:db8::", prefix_len=64)]))
    decode_message(home)
    truncated = home[:-1]
    truncated = with_u16(truncated, attribute + 2, 20)
    truncated = with_u16(truncated, 30, len(truncated) - 28)
    truncated = truncated[:24] + struct.pack("!I", len(truncated)) + truncated[28:]
    refused(truncated, "MIP6_HOME_PREFIX with a value of 20 octets")


@pytest.mark.parametrize("attribute, match", [
    (cp_attribute("INTERNAL_IP6_ADDRESS", address="2001:db8::1", prefix_len=129),
     "prefix length 129"),
    (cp_attribute("MIP6_HOME_PREFIX", home_prefix="2001:db8::", prefix_len=200),
     "prefix length 200"),
    (cp_attribute("INTERNAL_IP4_SUBNET", address="10.0.0.0", netmask="255.0.255.0"),
     "not contiguous"),
])
def test_cp_values_out_of_range(attribute, match):
    refused(msg(build_cp_payload("CFG_REPLY", [attribute])), match)


def test_cp_values_at_the_edges_of_their_range():
    decode_message(msg(build_cp_payload("CFG_REPLY", [
        cp_attribute("INTERNAL_IP6_ADDRESS", address="2001:db8::1", prefix_len=128),
        cp_attribute("INTERNAL_IP4_SUBNET", address="0.0.0.0", netmask="0.0.0.0"),
        cp_attribute("INTERNAL_IP4_SUBNET", address="10.0.0.1", netmask="255.255.255.255")])))


def test_deleting_the_ike_sa_names_no_spi():
    ike = msg(IKEv2_Delete(proto="IKE"))
    refused(with_u16(ike, 28 + 6, 1), "1 SPIs to delete the IKE SA")


def test_payload_length_below_the_generic_header():
    refused(with_u16(msg(IKEv2_KE(group=19, ke=bytes(64))), 30, 2), "below")


def test_encrypted_payload_must_be_last_and_not_nested():
    sk = IKEv2_Encrypted(next_payload=PayloadType.NONCE, load=bytes(32))
    decode_message(msg(sk))
    # SK followed by a Nonce: the chain goes on past the SK payload
    followed = msg(IKEv2_Encrypted(next_payload=PayloadType.NONCE, load=bytes(32)), NONCE)
    refused(followed, "Encrypted payload is not the last")
    with pytest.raises(MalformedIKEMessage, match="inside an Encrypted"):
        validate_inner_payloads(PayloadType.SK, bytes(sk))


def test_inner_payload_chains():
    plaintext = bytes(NONCE)
    (nonce,) = decode_inner_payloads(PayloadType.NONCE, plaintext)
    assert nonce.nonce == bytes(32)
    with pytest.raises(MalformedIKEMessage):
        decode_inner_payloads(PayloadType.NONCE, plaintext[:-1])
    with pytest.raises(MalformedIKEMessage):
        decode_inner_payloads(PayloadType.NONCE, plaintext + b"\x00")
    with pytest.raises(MalformedIKEMessage):
        decode_inner_payloads(PayloadType.NONE, b"\x00")
    assert decode_inner_payloads(PayloadType.NONE, b"") == []


def test_unknown_payloads_are_checked_only_for_their_generic_header():
    unknown = IKEv2_Payload(load=b"\xff" * 5, next_payload=0)
    data = msg(IKEv2_Nonce(nonce=bytes(32), next_payload=99), unknown)
    decode_message(data)
    refused(with_u16(data, 28 + 36 + 2, 10), "runs 1 octets past")


def test_udp_4500_framing():
    assert unwrap_udp(b"\xff", 4500) is None                      # NAT keepalive
    assert unwrap_udp(bytes.fromhex("00001001") + bytes(20), 4500) is None   # ESP, SPI 0x1001
    assert unwrap_udp(bytes(4) + b"ike", 4500) == b"ike"
    assert unwrap_udp(b"\x01\x02", 500) == b"\x01\x02"
    with pytest.raises(MalformedIKEMessage):
        unwrap_udp(b"\x00\x00", 4500)


def test_not_bytes():
    with pytest.raises(MalformedIKEMessage):
        validate_message("not bytes")          # type: ignore[arg-type]
