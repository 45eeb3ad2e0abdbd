"""IKEv2 messages built from scratch: exact bytes where the RFC fixes them, and tshark
reading them back by name with no malformed flag.

Every pcap goes through the ``captures`` fixture, which runs ``check_capture`` on it at
teardown (no malformed frame, no expert warning); the fields are read with
``tshark_fields`` so the assertions are about what Wireshark understood.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import tempfile

import pytest
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from mip6lab.crypto.ike import find_encrypted_payload, parse_proposals
from mip6lab.errors import LocalProtocolError
from mip6lab.testing.tshark import find_tshark, tshark_fields
from mip6lab.wire.ikev2 import (
    NON_ESP,
    CfgType,
    ConfigurationAttribute,
    DhGroup,
    EncrId,
    HomePrefix,
    IdType,
    IKEv2,
    IKEv2_Delete,
    IKEv2_Encrypted,
    IKEv2_IDi,
    IKEv2_KE,
    IKEv2_Nonce,
    IKEv2_Notify,
    IKEv2_Payload,
    IKEv2_Proposal,
    IKEv2_SA,
    IKEv2_Transform,
    IKEv2_TSi,
    IPv6TrafficSelector,
    PayloadType,
    Proposal,
    Protocol,
    Transform,
    TransformType,
    build_cp_payload,
    build_inner_payloads,
    build_message,
    build_sa_payload,
    build_ts_payload,
    cp_attribute,
    decode_cp,
    decode_inner_payloads,
    decode_message,
    decode_sa,
    decode_ts,
    find_unknown_critical,
    message_payloads,
    mh_ports,
    mh_traffic_selector,
    mh_types_from_ports,
    payload_class,
    payload_type_of,
    traffic_selector,
    unwrap_udp,
    validate_message,
    wrap_udp,
)

SPI_I, SPI_R = bytes.fromhex("a1a2a3a4a5a6a7a8"), bytes.fromhex("b1b2b3b4b5b6b7b8")
MN, HA = "2001:db8:1::10", "2001:db8:2::1"
NONCE = bytes(range(32))

# Two IKE proposals in strongSwan's notation, numbered 1 and 2 by the crypto module.
IKE_PROPOSALS = parse_proposals("aes128-sha256-modp2048,aes256gcm16-prfsha384-ecp384-curve25519")


def frame(msg, sport=500, dport=500, src=MN, dst=HA):
    return (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IPv6(src=src, dst=dst)
            / UDP(sport=sport, dport=dport) / msg)


def ike_sa_init_request() -> IKEv2:
    return build_message("IKE_SA_INIT", [
        build_sa_payload(IKE_PROPOSALS),
        IKEv2_KE(group=DhGroup.MODP_2048, ke=bytes(range(256))),
        IKEv2_Nonce(nonce=NONCE),
        IKEv2_Notify(type="NAT_DETECTION_SOURCE_IP", notify=bytes(range(20))),
        IKEv2_Notify(type="NAT_DETECTION_DESTINATION_IP", notify=bytes(range(20, 40))),
        IKEv2_Notify(type="SIGNATURE_HASH_ALGORITHMS", hash_algorithms=[2, 3, 4]),
    ], init_spi=SPI_I)


def cfg_request() -> IKEv2:
    cp = build_cp_payload("CFG_REQUEST", [cp_attribute("INTERNAL_IP6_ADDRESS"),
                                          cp_attribute("MIP6_HOME_PREFIX")])
    return build_message("IKE_AUTH", [cp], init_spi=SPI_I, resp_spi=SPI_R, message_id=1)


def cfg_reply() -> IKEv2:
    cp = build_cp_payload(CfgType.CFG_REPLY, [
        cp_attribute("INTERNAL_IP6_ADDRESS", address="2001:db8:aaaa::100", prefix_len=64),
        cp_attribute("MIP6_HOME_PREFIX", prefix_lifetime=86400,
                     home_prefix="2001:db8:aaaa::", prefix_len=64),
        cp_attribute("INTERNAL_IP4_ADDRESS", address="192.0.2.77"),
        cp_attribute("INTERNAL_IP4_NETMASK", address="255.255.255.0"),
        cp_attribute("INTERNAL_IP6_DNS", address="2001:db8::53"),
        cp_attribute("INTERNAL_IP4_SUBNET", address="198.51.100.0", netmask="255.255.255.0"),
        cp_attribute("APPLICATION_VERSION", text=b"mip6lab 0.1"),
    ])
    return build_message("IKE_AUTH", [cp], init_spi=SPI_I, resp_spi=SPI_R, message_id=1,
                         initiator=False, response=True)


def tshark_verbose(path) -> str:
    """tshark's full text dissection, with no user preferences."""
    with tempfile.TemporaryDirectory() as config:
        return subprocess.run([find_tshark(), "-n", "-V", "-r", str(path)],
                              env=dict(os.environ, WIRESHARK_CONFIG_DIR=config),
                              capture_output=True, text=True, check=True).stdout


# -- transforms and proposals -------------------------------------------------------------

def test_aes_transform_carries_its_key_length_without_a_hand_set_length():
    transform = IKEv2_Transform(transform_type="ENCR", transform_id="ENCR_AES_CBC",
                                key_length=128)
    # last, reserved, length 12 | ENCR, reserved, ID 12 | AF=1 type 14, value 128
    assert bytes(transform) == bytes.fromhex("0000000c" "0100000c" "800e0080")
    assert bytes(IKEv2_Transform(transform_type=2, transform_id=5)) == \
        bytes.fromhex("00000008" "02000005")


def test_transform_with_an_unknown_attribute_keeps_it_as_bytes():
    raw = bytes.fromhex("00000010" "0100000c" "800e0100" "00170000")   # + TLV type 23
    transform = IKEv2_Transform(raw)
    assert (transform.key_length, transform.other_attributes) == (256, bytes.fromhex("00170000"))
    assert transform.payload.__class__.__name__ == "NoPayload"
    assert bytes(IKEv2_Transform(transform_type=1, transform_id=12, key_length=256,
                                 other_attributes=bytes.fromhex("00170000"))) == raw


def test_sa_payload_counts_and_numbers_and_decodes_back():
    sa = IKEv2_SA(bytes(build_sa_payload(IKE_PROPOSALS)))
    first, second = message_payloads(sa.prop)
    assert (first.proposal, first.trans_nb, first.next_payload) == (1, 4, 2)
    assert (second.proposal, second.trans_nb, second.next_payload) == (2, 4, 0)
    assert first.length == 8 + 12 + 3 * 8 and sa.length == 4 + first.length + second.length
    assert decode_sa(sa) == IKE_PROPOSALS
    assert [p.number for p in decode_sa(sa)] == [1, 2]
    assert [str(p) for p in decode_sa(sa)] == ["aes128-sha256-modp2048",
                                               "aes256gcm16-prfsha384-ecp384-curve25519"]


def test_child_sa_proposal_with_spi():
    esp = Proposal(Protocol.ESP, (Transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_16, 128),
                                  Transform(TransformType.ESN, 0)), number=3,
                   spi=b"\xc0\x01\x02\x03")
    sa = IKEv2_SA(bytes(build_sa_payload([esp])))
    assert (sa.prop.SPIsize, sa.prop.SPI, sa.prop.proto) == (4, b"\xc0\x01\x02\x03", 3)
    assert sa.prop.proposal == 3                     # a responder echoes the number chosen
    (again,) = decode_sa(sa)
    assert again == esp and (again.number, again.spi) == (3, esp.spi)


@pytest.mark.parametrize("cipher", [EncrId.ENCR_AES_CBC, EncrId.ENCR_AES_GCM_16])
def test_aes_without_key_length_is_refused(cipher):
    with pytest.raises(LocalProtocolError, match="Key Length"):
        build_sa_payload([Proposal(Protocol.IKE, (Transform(TransformType.ENCR, cipher),))])


def test_proposal_without_transforms_is_refused():
    with pytest.raises(LocalProtocolError):
        build_sa_payload([Proposal(Protocol.ESP, ())])


# -- IKE_SA_INIT --------------------------------------------------------------------------

def test_ike_sa_init_request_from_scratch(captures):
    msg = ike_sa_init_request()
    data = bytes(msg)
    validate_message(data)
    assert decode_message(data).length == len(data)
    path = captures.path("ike_sa_init.pcap")
    wrpcap(str(path), [frame(msg)])
    (row,) = tshark_fields(path, [
        "isakmp.ispi", "isakmp.rspi", "isakmp.exchangetype", "isakmp.flag_i", "isakmp.length",
        "isakmp.prop.number", "isakmp.prop.transforms", "isakmp.tf.id.encr",
        "isakmp.ike2.attr.key_length", "isakmp.tf.id.dh", "isakmp.key_exchange.dh_group",
        "isakmp.nonce", "isakmp.notify.msgtype", "isakmp.notify.data.signature_hash_algorithms"])
    assert row["isakmp.ispi"] == [SPI_I.hex()] and row["isakmp.rspi"] == ["0" * 16]
    assert row["isakmp.exchangetype"] == ["34"] and row["isakmp.length"] == [str(len(data))]
    assert row["isakmp.flag_i"] in (["1"], ["True"])
    assert row["isakmp.prop.number"] == ["1", "2"]
    assert row["isakmp.prop.transforms"] == ["4", "4"]
    assert row["isakmp.tf.id.encr"] == ["12", "20"]
    assert row["isakmp.ike2.attr.key_length"] == ["128", "256"]
    assert row["isakmp.tf.id.dh"] == ["14", "20", "31"]
    assert row["isakmp.key_exchange.dh_group"] == ["14"]
    assert row["isakmp.nonce"] == [NONCE.hex()]
    assert row["isakmp.notify.msgtype"] == ["16388", "16389", "16431"]
    assert row["isakmp.notify.data.signature_hash_algorithms"] == ["2", "3", "4"]
    text = tshark_verbose(path)
    for shown in ("Notify Message Type: NAT_DETECTION_SOURCE_IP (16388)",
                  "Notify Message Type: NAT_DETECTION_DESTINATION_IP (16389)",
                  "Transform ID (ENCR): ENCR_AES_CBC (12)", "Key Length: 128",
                  "Transform ID (INTEG): AUTH_HMAC_SHA2_256_128 (12)",
                  "Transform ID (D-H): Curve25519 (31)"):
        assert shown in text


def test_ike_sa_init_shows_names_in_scapy():
    text = ike_sa_init_request().show(dump=True)
    for shown in ("exch_type = IKE_SA_INIT", "transform_id= ENCR_AES_CBC",
                  "key_length= 128 bits", "transform_id= MODP_2048",
                  "type      = NAT_DETECTION_SOURCE_IP",
                  "hash_algorithms= [SHA2_256, SHA2_384, SHA2_512]"):
        assert shown in text


def test_ike_message_on_udp_4500_behind_the_non_esp_marker(captures):
    msg = ike_sa_init_request()
    msg.exch_type, msg.id = "INFORMATIONAL", 7
    datagram = frame(NON_ESP() / msg, 4500, 4500)
    assert bytes(datagram[UDP].payload) == wrap_udp(bytes(msg), 4500)
    assert unwrap_udp(bytes(datagram[UDP].payload), 4500) == bytes(msg)
    reread = Ether(bytes(datagram))
    assert IKEv2 in reread and reread[IKEv2].id == 7          # scapy: UDP 4500 → non-ESP → IKE
    path = captures.path("nat_t.pcap")
    wrpcap(str(path), [datagram])
    (row,) = tshark_fields(path, ["frame.protocols", "udpencap.non_esp_marker",
                                  "isakmp.messageid", "isakmp.exchangetype"])
    assert row["frame.protocols"][0].endswith("udp:udpencap:isakmp")
    assert row["isakmp.messageid"] in (["7"], ["0x00000007"])
    assert row["isakmp.exchangetype"] == ["37"]


# -- configuration payload ----------------------------------------------------------------

def test_cfg_request_bytes():
    (cp,) = message_payloads(cfg_request())
    # generic header | CFG_REQUEST | attr 8 length 0 | attr 16 length 0 (RFC 5026 §8.2)
    assert bytes(cp) == bytes.fromhex("00000010" "01000000" "00080000" "00100000")


def test_mip6_home_prefix_has_the_rfc_5026_layout():
    attribute = cp_attribute("MIP6_HOME_PREFIX", prefix_lifetime=86400,
                             home_prefix="2001:db8:aaaa::", prefix_len=64)
    assert bytes(attribute) == (bytes.fromhex("0010" "0015" "00015180")
                                + ipaddress.ip_address("2001:db8:aaaa::").packed + b"\x40")
    again = ConfigurationAttribute(bytes(attribute))
    assert (again.prefix_lifetime, again.home_prefix, again.prefix_len) == (
        86400, "2001:db8:aaaa::", 64)
    shown = again.show(dump=True)
    assert "type      = MIP6_HOME_PREFIX" in shown and "home_prefix= 2001:db8:aaaa::" in shown


def test_cfg_reply_decodes_into_values():
    (cp,) = message_payloads(decode_message(bytes(cfg_reply())))
    assert decode_cp(cp) == {
        "INTERNAL_IP6_ADDRESS": [ipaddress.IPv6Interface("2001:db8:aaaa::100/64")],
        "MIP6_HOME_PREFIX": [HomePrefix(ipaddress.IPv6Network("2001:db8:aaaa::/64"), 86400)],
        "INTERNAL_IP4_ADDRESS": [ipaddress.IPv4Address("192.0.2.77")],
        "INTERNAL_IP4_NETMASK": [ipaddress.IPv4Address("255.255.255.0")],
        "INTERNAL_IP6_DNS": [ipaddress.IPv6Address("2001:db8::53")],
        "INTERNAL_IP4_SUBNET": [ipaddress.IPv4Network("198.51.100.0/24")],
        "APPLICATION_VERSION": ["mip6lab 0.1"],
    }
    assert [a.length for a in cp.attributes] == [17, 21, 4, 4, 16, 8, 11]


def test_cp_in_tshark(captures):
    path = captures.path("cp.pcap")
    wrpcap(str(path), [frame(cfg_request()), frame(cfg_reply(), src=HA, dst=MN)])
    request, reply = tshark_fields(path, [
        "isakmp.cfg.type", "isakmp.cfg.attr.type", "isakmp.cfg.attr.length",
        "isakmp.cfg.attr.value", "isakmp.cfg.attr.internal_ip6_address",
        "isakmp.cfg.attr.internal_ip6_address.prefix", "isakmp.cfg.attr.internal_ip4_address",
        "isakmp.cfg.attr.internal_ip6_dns", "isakmp.cfg.attr.internal_ip4_subnet_ip",
        "isakmp.cfg.attr.application_version"])
    assert request["isakmp.cfg.type"] == ["1"]
    assert request["isakmp.cfg.attr.type"] == ["8", "16"]
    assert request["isakmp.cfg.attr.length"] == ["0", "0"]
    assert reply["isakmp.cfg.type"] == ["2"]
    assert reply["isakmp.cfg.attr.type"] == ["8", "16", "1", "2", "10", "13", "7"]
    assert reply["isakmp.cfg.attr.length"] == ["17", "21", "4", "4", "16", "8", "11"]
    assert reply["isakmp.cfg.attr.internal_ip6_address"] == ["2001:db8:aaaa::100"]
    assert reply["isakmp.cfg.attr.internal_ip6_address.prefix"] == ["64"]
    assert reply["isakmp.cfg.attr.internal_ip4_address"] == ["192.0.2.77"]
    assert reply["isakmp.cfg.attr.internal_ip6_dns"] == ["2001:db8::53"]
    assert reply["isakmp.cfg.attr.internal_ip4_subnet_ip"] == ["198.51.100.0"]
    assert reply["isakmp.cfg.attr.application_version"] == ["mip6lab 0.1"]
    # tshark has no dissector for MIP6_HOME_PREFIX's value: its raw bytes, as RFC 5026 says
    assert "00015180" "20010db8aaaa0000000000000000000040" in reply["isakmp.cfg.attr.value"]
    text = tshark_verbose(path)
    assert "Type: MIP6_HOME_PREFIX (16)" in text and "Type: CFG_REPLY (2)" in text


def test_cp_values_keep_their_prefix_lengths():
    cp = build_cp_payload("CFG_REPLY", [
        cp_attribute("INTERNAL_IP6_ADDRESS", address="2001:db8::5", prefix_len=128),
        cp_attribute("INTERNAL_IP6_ADDRESS", address="2001:db8:1::5", prefix_len=56),
        cp_attribute("INTERNAL_IP6_SUBNET", address="2001:db8:2::", prefix_len=48),
        cp_attribute("MIP6_HOME_PREFIX", prefix_lifetime=1, home_prefix="2001:db8:3::",
                     prefix_len=60)])
    assert decode_cp(message_payloads(decode_message(bytes(build_message(
        "IKE_AUTH", [cp], init_spi=SPI_I))))[0]) == {
        "INTERNAL_IP6_ADDRESS": [ipaddress.IPv6Interface("2001:db8::5/128"),
                                 ipaddress.IPv6Interface("2001:db8:1::5/56")],
        "INTERNAL_IP6_SUBNET": [ipaddress.IPv6Network("2001:db8:2::/48")],
        "MIP6_HOME_PREFIX": [HomePrefix(ipaddress.IPv6Network("2001:db8:3::/60"), 1)]}


def test_cp_attribute_refuses_fields_its_type_does_not_have():
    with pytest.raises(LocalProtocolError, match="prefix_lifetime"):
        cp_attribute("INTERNAL_IP6_ADDRESS", address="2001:db8::1", prefix_lifetime=5)
    with pytest.raises(LocalProtocolError):
        bytes(cp_attribute("INTERNAL_IP4_ADDRESS", address="2001:db8::1"))


def test_cp_attribute_with_a_length_its_type_does_not_have_stays_bytes():
    # INTERNAL_IP6_ADDRESS without its prefix-length octet: 16 octets, not 17
    attribute = ConfigurationAttribute(bytes.fromhex("00080010") + bytes(16))
    assert "address" not in attribute.fields and attribute.value == bytes(16)


# -- notify ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, data", [
    ({"type": "INVALID_KE_PAYLOAD", "dh_group": DhGroup.ECP_256}, "0013"),
    ({"type": "UNSUPPORTED_CRITICAL_PAYLOAD", "payload_type": 200}, "c8"),
    ({"type": "INVALID_MESSAGE_ID", "message_id": 0x01020304}, "01020304"),
    ({"type": "ADDITIONAL_IP4_ADDRESS", "address": "192.0.2.9"}, "c0000209"),
    ({"type": "ADDITIONAL_IP6_ADDRESS", "address": "2001:db8::9"},
     "20010db8000000000000000000000009"),
    ({"type": "NO_NATS_ALLOWED", "src_address": "192.0.2.1", "dst_address": "192.0.2.2",
      "src_port": 4500, "dst_port": 500}, "c0000201" "c0000202" "1194" "01f4"),
    ({"type": "SIGNATURE_HASH_ALGORITHMS", "hash_algorithms": [2, 4]}, "00020004"),
    ({"type": "COOKIE", "notify": b"\x01" * 8}, "01" * 8),
    ({"type": "UPDATE_SA_ADDRESSES"}, ""),
])
def test_notify_data_layouts(fields, data):
    notify = IKEv2_Notify(**fields)
    wire = bytes(notify)
    assert wire[8:].hex() == data and wire[2:4] == (8 + len(data) // 2).to_bytes(2, "big")
    again = IKEv2_Notify(wire)
    for name, value in fields.items():
        if name != "type":
            assert again.getfieldval(name) == value, name


def test_notify_with_spi_and_data_length_mismatch_stays_bytes():
    rekey = IKEv2_Notify(proto="ESP", SPI=b"\x00\x00\x10\x01", type="REKEY_SA")
    assert bytes(rekey) == bytes.fromhex("0000000c" "03044009" "00001001")
    # INVALID_KE_PAYLOAD whose data is 3 octets: no dh_group, the bytes stay visible
    odd = IKEv2_Notify(bytes.fromhex("0000000b" "00000011" "001300"))
    assert "dh_group" not in odd.fields and odd.notify == bytes.fromhex("001300")


def test_notifies_in_tshark(captures):
    msg = build_message("INFORMATIONAL", [
        IKEv2_Notify(type="INVALID_KE_PAYLOAD", dh_group=DhGroup.CURVE25519),
        IKEv2_Notify(type="COOKIE", notify=bytes(range(16))),
        IKEv2_Notify(type="MOBIKE_SUPPORTED"),
        IKEv2_Notify(type="UPDATE_SA_ADDRESSES"),
        IKEv2_Notify(type="ADDITIONAL_IP6_ADDRESS", address="2001:db8:c0a::10"),
        IKEv2_Notify(type="NO_ADDITIONAL_ADDRESSES"),
        IKEv2_Notify(type="COOKIE2", notify=bytes(8)),
        IKEv2_Notify(type="USE_TRANSPORT_MODE"),
        IKEv2_Notify(type="AUTHENTICATION_FAILED"),
        IKEv2_Notify(type="TS_UNACCEPTABLE"),
        IKEv2_Notify(proto="ESP", SPI=b"\x00\x00\x20\x02", type="CHILD_SA_NOT_FOUND"),
    ], init_spi=SPI_I, resp_spi=SPI_R, message_id=2)
    validate_message(bytes(msg))
    path = captures.path("notify.pcap")
    wrpcap(str(path), [frame(msg)])
    (row,) = tshark_fields(path, ["isakmp.notify.msgtype",
                                  "isakmp.notify.data.accepted_dh_group", "isakmp.spi"])
    assert row["isakmp.notify.msgtype"] == [
        "17", "16390", "16396", "16400", "16398", "16399", "16401", "16391", "24", "38", "44"]
    assert row["isakmp.notify.data.accepted_dh_group"] == ["31"]
    assert row["isakmp.spi"] == ["00002002"]
    text = tshark_verbose(path)
    for name in ("INVALID_KE_PAYLOAD", "MOBIKE_SUPPORTED", "UPDATE_SA_ADDRESSES",
                 "ADDITIONAL_IP6_ADDRESS", "NO_ADDITIONAL_ADDRESSES", "COOKIE2",
                 "AUTHENTICATION_FAILED", "TS_UNACCEPTABLE", "CHILD_SA_NOT_FOUND"):
        assert f"Notify Message Type: {name} (" in text


# -- traffic selectors ---------------------------------------------------------------------

def test_mobility_header_types_in_the_port_fields():
    assert mh_ports("BU") == (5 << 8, 5 << 8) == (0x0500, 0x0500)
    assert mh_ports(6) == (0x0600, 0x0600)
    assert mh_ports(("HoTI", "CoT")) == (0x0100, 0x0400)
    assert mh_ports(None) == mh_ports("ANY") == (0, 0xFFFF)
    assert mh_ports("OPAQUE") == (0xFFFF, 0)
    assert mh_types_from_ports(0x0500, 0x0500) == (5, 5)
    assert mh_types_from_ports(0x0100, 0x0400) == (1, 4)
    assert mh_types_from_ports(0, 0xFFFF) == "ANY"
    assert mh_types_from_ports(0xFFFF, 0) == "OPAQUE"
    with pytest.raises(LocalProtocolError):
        mh_ports(("BA", "BU"))
    with pytest.raises(LocalProtocolError):
        mh_ports("no-such-type")


def test_traffic_selectors_bytes():
    ts = mh_traffic_selector("2001:db8:aaaa::100", "BU")
    assert bytes(ts) == (bytes.fromhex("08" "87" "0028" "0500" "0500")
                         + ipaddress.ip_address("2001:db8:aaaa::100").packed * 2)
    v4 = traffic_selector("203.0.113.0/24", 17, (4500, 4500))
    assert bytes(v4) == bytes.fromhex("07" "11" "0010" "1194" "1194" "cb007100" "cb0071ff")
    assert len(IPv6TrafficSelector()) == IPv6TrafficSelector().length == 40


def test_a_selector_with_a_length_its_type_does_not_have_stays_bytes():
    # scapy dissects without a check: a TS_IPV6_ADDR_RANGE saying 20 octets (scapy's old
    # default) must not be read as 40, or the selector after it would be lost.
    odd = bytes.fromhex("08000014" "0000ffff") + bytes(12)
    good = bytes(traffic_selector("2001:db8::/64"))
    tsi = IKEv2_TSi(bytes.fromhex("2c000044" "02000000") + odd + good)
    first, second = tsi.traffic_selector
    assert type(first).__name__ == "RawTrafficSelector" and bytes(first) == odd
    assert second.starting_address_v6 == "2001:db8::" and bytes(second) == good


def test_ts_payloads_decode_back(captures):
    tsi = build_ts_payload(True, [mh_traffic_selector("2001:db8:aaaa::100", "BU"),
                                  mh_traffic_selector("2001:db8:aaaa::100", "OPAQUE"),
                                  traffic_selector(("192.0.2.10", "192.0.2.20"))])
    tsr = build_ts_payload(False, [mh_traffic_selector(HA, "BA"),
                                   traffic_selector("2001:db8:f2::/48", 6, (80, 443))])
    msg = build_message("CREATE_CHILD_SA", [tsi, tsr], init_spi=SPI_I, resp_spi=SPI_R,
                        message_id=3)
    again = message_payloads(decode_message(bytes(msg)))
    bu, opaque, v4 = decode_ts(again[0])
    assert bu.protocol == 135 and bu.mh_types == (5, 5)
    assert opaque.mh_types == "OPAQUE"
    assert (str(v4.start_address), str(v4.end_address), v4.mh_types) == (
        "192.0.2.10", "192.0.2.20", None)
    ba, web = decode_ts(again[1])
    assert ba.mh_types == (6, 6)
    assert (str(web.start_address), str(web.end_address), web.start_port, web.end_port) == (
        "2001:db8:f2::", "2001:db8:f2:ffff:ffff:ffff:ffff:ffff", 80, 443)
    path = captures.path("ts.pcap")
    wrpcap(str(path), [frame(msg)])
    (row,) = tshark_fields(path, ["isakmp.ts.number", "isakmp.ts.type", "isakmp.ts.protoid",
                                  "isakmp.ts.selector_length", "isakmp.ts.start_port",
                                  "isakmp.ts.end_port", "isakmp.ts.start_ipv6",
                                  "isakmp.ts.start_ipv4"])
    assert row["isakmp.ts.number"] == ["3", "2"]
    assert row["isakmp.ts.type"] == ["8", "8", "7", "8", "8"]
    assert row["isakmp.ts.protoid"] == ["135", "135", "0", "135", "6"]
    assert row["isakmp.ts.selector_length"] == ["40", "40", "16", "40", "40"]
    assert row["isakmp.ts.start_port"] == ["1280", "65535", "0", "1536", "80"]
    assert row["isakmp.ts.end_port"] == ["1280", "0", "65535", "1536", "443"]
    assert row["isakmp.ts.start_ipv6"][0] == "2001:db8:aaaa::100"
    assert row["isakmp.ts.start_ipv4"] == ["192.0.2.10"]


# -- identities, delete ---------------------------------------------------------------------

def test_identities_and_delete(captures):
    msg = build_message("INFORMATIONAL", [
        IKEv2_IDi(IDtype="ID_RFC822_ADDR", ID=b"mn@mip6lab.example"),
        IKEv2_IDi(IDtype=IdType.ID_IPV6_ADDR, ID=MN),
        IKEv2_Delete(proto="ESP", SPI=[b"\x00\x00\x10\x01", b"\x00\x00\x10\x02"]),
        IKEv2_Delete(proto="IKE"),
    ], init_spi=SPI_I, resp_spi=SPI_R, message_id=4)
    rfc822, ipv6, esp, ike = message_payloads(decode_message(bytes(msg)))
    assert (rfc822.IDtype, rfc822.ID, rfc822.length) == (3, b"mn@mip6lab.example", 26)
    assert (ipv6.ID, ipv6.length) == (MN, 24)
    assert (esp.SPIsize, esp.SPInum, esp.length, esp.SPI) == (
        4, 2, 16, [b"\x00\x00\x10\x01", b"\x00\x00\x10\x02"])
    assert (ike.SPIsize, ike.SPInum, ike.length) == (0, 0, 8)
    # An ESP Delete without SPIs still says SPI Size 4 (§3.11: "four for AH and ESP").
    assert bytes(IKEv2_Delete(proto="ESP")) == bytes.fromhex("00000008" "03040000")
    path = captures.path("id_delete.pcap")
    wrpcap(str(path), [frame(msg)])
    (row,) = tshark_fields(path, ["isakmp.id.type", "isakmp.id.data.ipv6_addr",
                                  "isakmp.spinum", "isakmp.delete.spi"])
    assert row["isakmp.id.type"] == ["3", "5"]
    assert row["isakmp.id.data.ipv6_addr"] == [MN]
    assert row["isakmp.spinum"] == ["2", "0"]
    assert row["isakmp.delete.spi"] == ["00001001", "00001002"]


# -- certificates -------------------------------------------------------------------------

def test_certificate_payload_shows_a_der_certificate_and_keeps_anything_else(captures):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from scapy.layers.x509 import X509_Cert

    key = ec.derive_private_key(7, ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ha.mip6lab.example")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    der = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(1001).not_valid_before(start)
           .not_valid_after(start + datetime.timedelta(days=365))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    from mip6lab.wire.ikev2 import IKEv2_CERT
    msg = build_message("IKE_AUTH", [IKEv2_CERT(cert_encoding=4, cert_data=X509_Cert(der)),
                                      IKEv2_CERT(cert_encoding=4, cert_data=der[:-1])],
                        init_spi=SPI_I, resp_spi=SPI_R, message_id=1)
    good, cut = message_payloads(decode_message(bytes(msg)))
    assert isinstance(good.cert_data, X509_Cert) and bytes(good.cert_data) == der
    assert good.cert_data.tbsCertificate.serialNumber.val == 1001
    assert not isinstance(cut.cert_data, X509_Cert) and bytes(cut.cert_data) == der[:-1]
    assert x509.load_der_x509_certificate(bytes(good)[5:good.length]).serial_number == 1001
    path = captures.path("cert.pcap")            # only the good one: tshark flags the other
    wrpcap(str(path), [frame(build_message("IKE_AUTH", [good], init_spi=SPI_I,
                                           resp_spi=SPI_R, message_id=1))])
    (row,) = tshark_fields(path, ["isakmp.cert.encoding", "x509af.serialNumber"])
    assert row["isakmp.cert.encoding"] == ["4"] and row["x509af.serialNumber"] == ["03e9"]


# -- SK payload, unknown and critical payloads ------------------------------------------------

def test_inner_payloads_and_the_sk_payload():
    inner = [IKEv2_IDi(IDtype="ID_FQDN", ID=b"mn.mip6lab.example"),
             build_cp_payload("CFG_REQUEST", [cp_attribute("INTERNAL_IP6_ADDRESS")]),
             build_ts_payload(True, [traffic_selector("::/0")])]
    first, plaintext = build_inner_payloads(inner)
    assert first == PayloadType.IDi
    decoded = decode_inner_payloads(first, plaintext)
    assert [type(p).__name__ for p in decoded] == ["IKEv2_IDi", "IKEv2_CP", "IKEv2_TSi"]
    assert decode_cp(decoded[1]) == {"INTERNAL_IP6_ADDRESS": [None]}
    body = bytes(16) + b"ciphertext" + bytes(16)        # IV | (not really) encrypted | ICV
    msg = build_message("IKE_AUTH", [IKEv2_Encrypted(next_payload=first, load=body)],
                        init_spi=SPI_I, resp_spi=SPI_R, message_id=1)
    data = bytes(msg)
    assert find_encrypted_payload(data) == 28 and data[32:] == body
    assert data[28:32] == bytes([PayloadType.IDi, 0]) + (4 + len(body)).to_bytes(2, "big")
    assert decode_message(data)[IKEv2_Encrypted].next_payload == PayloadType.IDi


def test_unknown_payloads_and_the_critical_bit():
    # Nonce, then an unknown critical payload (type 200), then an unknown one (201)
    unknown = IKEv2_Payload(load=b"future", flags="critical", next_payload=201)
    msg = build_message("INFORMATIONAL", [IKEv2_Nonce(nonce=NONCE, next_payload=200),
                                          unknown, IKEv2_Payload(load=b"skip me")],
                        init_spi=SPI_I, resp_spi=SPI_R)
    again = decode_message(bytes(msg))
    assert [type(p).__name__ for p in message_payloads(again)] == [
        "IKEv2_Nonce", "IKEv2_Payload", "IKEv2_Payload"]
    assert find_unknown_critical(again) == [200]              # 201 is not critical: skipped
    assert find_unknown_critical(again, known={200}) == []
    critical_nonce = IKEv2_Nonce(nonce=NONCE, flags="critical")
    assert find_unknown_critical([critical_nonce], PayloadType.NONCE) == []   # known type
    assert find_unknown_critical([unknown], 99) == [99]


def test_proposal_and_transform_types_are_not_payloads_of_a_message():
    # §3.2: types 1-32 are not IKEv2 payloads; 2 and 3 only exist inside an SA payload.
    assert payload_class(2) is IKEv2_Payload and payload_class(3) is IKEv2_Payload
    assert payload_class(PayloadType.CP).__name__ == "IKEv2_CP"
    assert payload_type_of(IKEv2_Proposal) == 2 and payload_type_of(IKEv2_Transform) == 3
    assert payload_type_of(IKEv2_Notify()) == 41
