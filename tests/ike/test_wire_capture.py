"""Every IKE message of a real strongSwan 5.9.8 pair, dissected and rebuilt.

The capture (tests/data/strongswan-5.9.8-pair) holds three IKE SAs set up by two charon
daemons -- v6psk (IPv6, aes256gcm16-prfsha256-curve25519), v4psk (IPv4,
aes256-sha256-modp2048) and hoa (IPv6, a virtual IPv6 address from a pool: HoA
assignment) -- IKE_SA_INIT on UDP 500, IKE_AUTH and INFORMATIONAL on UDP 4500 after the
non-ESP marker (MOBIKE moves to 4500). The expected values below come from the swanctl
configurations and charon logs next to the capture, not from our code.

The SK payloads are opened by tshark with the pair's ``ikev2_decryption_table``: our
decoder then reads the same plaintext tshark read, including the CFG_REPLY that assigned
2001:db8:aaaa::100/64.
"""

from __future__ import annotations

import ipaddress

import pytest

from mip6lab.crypto.ike import AuthMethod, find_encrypted_payload, parse_proposal
from mip6lab.testing.tshark import tshark_fields
from mip6lab.wire.ikev2 import (
    CfgType,
    DhGroup,
    EncrId,
    EsnId,
    IdType,
    IKEv2_AUTH,
    IKEv2_CP,
    IKEv2_Encrypted,
    IKEv2_IDi,
    IKEv2_IDr,
    IKEv2_KE,
    IKEv2_Nonce,
    IKEv2_SA,
    IKEv2_TSi,
    IKEv2_TSr,
    IntegId,
    PayloadType,
    Protocol,
    Transform,
    TransformType,
    decode_cp,
    decode_inner_payloads,
    decode_message,
    decode_sa,
    decode_ts,
    find_notifies,
    find_unknown_critical,
    message_payloads,
    notify_name,
    payload_types,
    unwrap_udp,
    wrap_udp,
)

from ._wire import DECRYPTION_TABLE, captured, message, rebuild, sk_plaintext

V6PSK = (bytes.fromhex("b5c7326aaf8979ad"), bytes.fromhex("2351bff79041d1b6"))
V4PSK = (bytes.fromhex("0c240f084e499af1"), bytes.fromhex("52e7cdba25fe4998"))
HOA = (bytes.fromhex("9709113e2ac8aabe"), bytes.fromhex("87b89118fa388ccb"))
INIT, RESP = 0x08, 0x20
SA_INIT, AUTH, INFO = 34, 35, 37

# frame: (IKE SA, exchange, flags, message ID, port)
EXPECTED = {
    1: (V6PSK, SA_INIT, INIT, 0, 500),
    2: (V6PSK, SA_INIT, RESP, 0, 500),
    3: (V6PSK, AUTH, INIT, 1, 4500),
    4: (V6PSK, AUTH, RESP, 1, 4500),
    12: (V4PSK, SA_INIT, INIT, 0, 500),
    13: (V4PSK, SA_INIT, RESP, 0, 500),
    14: (V4PSK, AUTH, INIT, 1, 4500),
    15: (V4PSK, AUTH, RESP, 1, 4500),
    22: (HOA, SA_INIT, INIT, 0, 500),
    23: (HOA, SA_INIT, RESP, 0, 500),
    25: (HOA, AUTH, INIT, 1, 4500),
    26: (HOA, AUTH, RESP, 1, 4500),
    # MOBIKE address updates: the responder's requests (I clear, R clear) and answers
    29: (V6PSK, INFO, 0, 0, 4500),
    30: (V4PSK, INFO, 0, 0, 4500),
    31: (V6PSK, INFO, INIT | RESP, 0, 4500),
    32: (HOA, INFO, 0, 0, 4500),
    33: (HOA, INFO, INIT | RESP, 0, 4500),
    34: (V4PSK, INFO, INIT | RESP, 0, 4500),
}
SA_INIT_FRAMES = [f for f, e in EXPECTED.items() if e[1] == SA_INIT]
SK_FRAMES = [f for f, e in EXPECTED.items() if e[1] != SA_INIT]

# The proposals as the swanctl.conf files next to the capture write them.
IKE_PROPOSAL = {V6PSK: "aes256gcm16-prfsha256-curve25519", V4PSK: "aes256-sha256-modp2048",
                HOA: "aes256gcm16-prfsha256-curve25519"}
ESP_PROPOSAL = {V6PSK: "aes256gcm16", V4PSK: "aes256-sha256", HOA: "aes256gcm16"}
SA_INIT_NOTIFIES_REQUEST = ["NAT_DETECTION_SOURCE_IP", "NAT_DETECTION_DESTINATION_IP",
                            "IKEV2_FRAGMENTATION_SUPPORTED", "SIGNATURE_HASH_ALGORITHMS",
                            "REDIRECT_SUPPORTED"]
SA_INIT_NOTIFIES_RESPONSE = ["NAT_DETECTION_SOURCE_IP", "NAT_DETECTION_DESTINATION_IP",
                             "IKEV2_FRAGMENTATION_SUPPORTED", "SIGNATURE_HASH_ALGORITHMS",
                             "CHILDLESS_IKEV2_SUPPORTED", "MULTIPLE_AUTH_SUPPORTED"]


def test_the_capture_holds_the_expected_ike_messages():
    assert [(c.frame, c.port) for c in captured()] == [(f, e[4]) for f, e in
                                                       EXPECTED.items()]


def test_spis_agree_with_the_key_table_charon_logged():
    table = [line.split(",")[:2] for line in DECRYPTION_TABLE.read_text().splitlines()
             if line.strip()]
    assert {(bytes.fromhex(i), bytes.fromhex(r)) for i, r in table} == {V6PSK, V4PSK, HOA}


@pytest.mark.parametrize("frame", list(EXPECTED))
def test_header(frame):
    (init_spi, resp_spi), exchange, flags, message_id, _ = EXPECTED[frame]
    msg = decode_message(message(frame))
    assert msg.init_SPI == init_spi
    # The responder's SPI is zero only in the first message (RFC 7296 §3.1).
    assert msg.resp_SPI == (bytes(8) if frame in (1, 12, 22) else resp_spi)
    assert msg.exch_type == exchange
    assert int(msg.flags) == flags
    assert msg.id == message_id
    assert msg.length == len(message(frame))


@pytest.mark.parametrize("frame", SA_INIT_FRAMES)
def test_ike_sa_init(frame):
    msg = decode_message(message(frame))
    payloads = message_payloads(msg)
    types = payload_types(msg.next_payload, payloads)
    assert types[:3] == [PayloadType.SA, PayloadType.KE, PayloadType.NONCE]
    assert set(types[3:]) == {PayloadType.NOTIFY}

    # What charon put on the wire is what swanctl.conf says, read by the crypto module.
    (offered,) = decode_sa(payloads[0])
    assert offered == parse_proposal(IKE_PROPOSAL[EXPECTED[frame][0]])
    assert (offered.number, offered.spi) == (1, b"")
    proposal = payloads[0].prop
    assert proposal.trans_nb == len(offered.transforms) and proposal.SPIsize == 0

    ke = payloads[1]
    group = DhGroup.MODP_2048 if EXPECTED[frame][0] == V4PSK else DhGroup.CURVE25519
    assert isinstance(ke, IKEv2_KE) and ke.group == group
    assert len(ke.ke) == {DhGroup.MODP_2048: 256, DhGroup.CURVE25519: 32}[group]
    assert isinstance(payloads[2], IKEv2_Nonce) and len(payloads[2].nonce) == 32

    response = bool(msg.flags & 0x20)
    names = [notify_name(n) for n in find_notifies(msg)]
    assert names == (SA_INIT_NOTIFIES_RESPONSE if response else SA_INIT_NOTIFIES_REQUEST)
    for nat_d in find_notifies(msg, "NAT_DETECTION_SOURCE_IP") + find_notifies(
            msg, "NAT_DETECTION_DESTINATION_IP"):
        assert len(nat_d.notify) == 20                      # SHA-1, RFC 7296 §2.23
    (hashes,) = find_notifies(msg, "SIGNATURE_HASH_ALGORITHMS")
    assert hashes.hash_algorithms == [2, 3, 4, 5]           # SHA2-256/384/512, Identity
    assert "notify" not in hashes.fields
    assert find_unknown_critical(msg) == []


def test_aes_transforms_carry_the_key_length_attribute_on_the_wire():
    # The bytes charon sent: ENCR (1), ENCR_AES_GCM_16 (20), then AF=1 type 14 = 256.
    assert bytes.fromhex("0300000c01000014800e0100") in message(1)
    transform = decode_message(message(1))[IKEv2_SA].prop.trans
    assert (transform.length, transform.key_length) == (12, 256)


@pytest.mark.parametrize("frame", SK_FRAMES)
def test_encrypted_messages(frame):
    data = message(frame)
    msg = decode_message(data)
    (sk,) = message_payloads(msg)
    assert isinstance(sk, IKEv2_Encrypted) and msg.next_payload == PayloadType.SK
    exchange, flags = EXPECTED[frame][1], EXPECTED[frame][2]
    if exchange == AUTH:
        assert sk.next_payload == (PayloadType.IDr if flags & RESP else PayloadType.IDi)
    # The crypto module finds the same SK payload (it cuts the AAD there, RFC 5282 §5.1).
    assert find_encrypted_payload(data) == 28
    assert data[28 + 4:] == sk.load and sk.length == len(data) - 28


@pytest.mark.parametrize("captured_message", captured(), ids=lambda c: f"frame{c.frame}")
def test_rebuilt_from_its_dissection_with_every_length_recomputed(captured_message):
    msg = decode_message(captured_message.data)
    assert bytes(msg) == captured_message.data
    rebuilt = rebuild(msg)
    assert rebuilt.length is None                      # really recomputed
    assert bytes(rebuilt) == captured_message.data


@pytest.mark.parametrize("captured_message", captured(), ids=lambda c: f"frame{c.frame}")
def test_udp_framing(captured_message):
    port, data = captured_message.port, captured_message.data
    assert unwrap_udp(wrap_udp(data, port), port) == data
    assert (wrap_udp(data, port) == bytes(4) + data) == (port == 4500)


# -- inside the SK payloads (decrypted by tshark) -------------------------------------------

def inner(frame: int):
    sk = message_payloads(decode_message(message(frame)))[-1]
    return sk.next_payload, decode_inner_payloads(sk.next_payload, sk_plaintext(frame))


@pytest.mark.parametrize("frame", [f for f in SK_FRAMES if f not in (31, 33, 34)])
def test_inner_chain_rebuilt_with_every_length_recomputed(frame):
    first_type, payloads = inner(frame)
    assert payloads, "tshark decrypted nothing"
    assert bytes(rebuild(payloads[0])) == sk_plaintext(frame)
    assert find_unknown_critical(payloads, first_type) == []


@pytest.mark.parametrize("frame", [31, 33, 34])
def test_empty_informational_answers(frame):
    # Answers to MOBIKE's address updates: an SK payload with nothing inside.
    assert inner(frame) == (PayloadType.NONE, [])


def test_ike_auth_request_v6psk():
    first_type, payloads = inner(3)
    types = payload_types(first_type, payloads)
    assert types[:7] == [PayloadType.IDi, PayloadType.NOTIFY, PayloadType.IDr,
                         PayloadType.AUTH, PayloadType.SA, PayloadType.TSi, PayloadType.TSr]
    idi, initial_contact, idr, auth, sa, tsi, tsr = payloads[:7]
    assert isinstance(idi, IKEv2_IDi) and isinstance(idr, IKEv2_IDr)
    # strongSwan sends an e-mail-like identity as ID_RFC822_ADDR, a host name as ID_FQDN.
    assert (idi.IDtype, idi.ID) == (IdType.ID_RFC822_ADDR, b"v6@mip6lab.example")
    assert (idr.IDtype, idr.ID) == (IdType.ID_FQDN, b"ha.mip6lab.example")
    assert notify_name(initial_contact) == "INITIAL_CONTACT"
    assert isinstance(auth, IKEv2_AUTH) and auth.auth_type == AuthMethod.SHARED_KEY_MIC
    assert len(auth.load) == 32                               # PRF_HMAC_SHA2_256 output
    (proposal,) = decode_sa(sa)
    assert proposal.protocol == Protocol.ESP and len(proposal.spi) == 4
    assert proposal == parse_proposal(ESP_PROPOSAL[V6PSK], "esp")
    assert proposal.transforms == (Transform(TransformType.ENCR, EncrId.ENCR_AES_GCM_16, 256),
                                   Transform(TransformType.ESN, EsnId.NO_ESN))
    assert isinstance(tsi, IKEv2_TSi) and isinstance(tsr, IKEv2_TSr)
    (ts_i,), (ts_r,) = decode_ts(tsi), decode_ts(tsr)
    assert (ts_i.start_address, ts_i.end_address) == (ipaddress.ip_address("2001:db8:f1::1"),) * 2
    assert (ts_r.start_address, ts_r.end_address) == (ipaddress.ip_address("2001:db8:f2::1"),) * 2
    assert (ts_i.protocol, ts_i.start_port, ts_i.end_port) == (0, 0, 65535)
    assert [notify_name(n) for n in find_notifies(payloads[7:])] == [
        "MOBIKE_SUPPORTED", "ADDITIONAL_IP4_ADDRESS", "MULTIPLE_AUTH_SUPPORTED",
        "EAP_ONLY_AUTHENTICATION", "IKEV2_MESSAGE_ID_SYNC_SUPPORTED"]
    (additional,) = find_notifies(payloads, "ADDITIONAL_IP4_ADDRESS")
    assert additional.address == "192.0.2.1"                  # RFC 4555 §4.2.2


def test_ike_auth_v4psk_child_sa_and_mobike_addresses():
    _, request = inner(14)
    (proposal,) = decode_sa(request[4])
    assert proposal == parse_proposal(ESP_PROPOSAL[V4PSK], "esp")
    assert proposal.transforms == (
        Transform(TransformType.ENCR, EncrId.ENCR_AES_CBC, 256),
        Transform(TransformType.INTEG, IntegId.AUTH_HMAC_SHA2_256_128),
        Transform(TransformType.ESN, EsnId.NO_ESN))
    assert [str(ts.start_address) for ts in decode_ts(request[5])] == ["203.0.113.1"]
    (additional,) = find_notifies(request, "ADDITIONAL_IP6_ADDRESS")
    assert additional.address == "2001:db8:1::1"
    _, response = inner(15)
    assert decode_sa(response[2])[0].transforms == proposal.transforms
    assert find_notifies(response, "ADDITIONAL_IP6_ADDRESS")[0].address == "2001:db8:1::2"


def test_home_address_assignment_through_the_configuration_payload():
    first_type, request = inner(25)
    assert first_type == PayloadType.IDi
    (cp,) = [p for p in request if isinstance(p, IKEv2_CP)]
    assert cp.CFGType == CfgType.CFG_REQUEST
    assert decode_cp(cp) == {"INTERNAL_IP6_ADDRESS": [None]}      # "give me any address"
    (ts_i,) = decode_ts(request[request.index(cp) + 2])          # dynamic: all of IPv6
    assert (str(ts_i.start_address), str(ts_i.end_address)) == (
        "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")

    first_type, response = inner(26)
    assert first_type == PayloadType.IDr
    (cp,) = [p for p in response if isinstance(p, IKEv2_CP)]
    assert cp.CFGType == CfgType.CFG_REPLY
    (attribute,) = cp.attributes
    assert (attribute.length, attribute.address, attribute.prefix_len) == (
        17, "2001:db8:aaaa::100", 64)
    assert decode_cp(cp) == {
        "INTERNAL_IP6_ADDRESS": [ipaddress.IPv6Interface("2001:db8:aaaa::100/64")]}
    (ts_i,) = decode_ts(response[response.index(cp) + 2])        # narrowed to the HoA
    assert str(ts_i.start_address) == str(ts_i.end_address) == "2001:db8:aaaa::100"


def test_notify_types_agree_with_tshark(tshark, tmp_path):
    (tmp_path / "ikev2_decryption_table").write_bytes(DECRYPTION_TABLE.read_bytes())
    from ._wire import PCAP
    rows = tshark_fields(PCAP, ["frame.number", "isakmp.notify.msgtype"],
                         display_filter="isakmp", keys_dir=tmp_path)
    theirs = {int(r["frame.number"][0]): [int(t) for t in r["isakmp.notify.msgtype"]]
              for r in rows}
    ours = {}
    for frame in EXPECTED:
        msg = decode_message(message(frame))
        payloads = message_payloads(msg)
        if frame in SK_FRAMES and frame not in (31, 33, 34):
            payloads = payloads[:-1] + inner(frame)[1]
        ours[frame] = [int(n.type) for n in find_notifies(payloads)]
    assert ours == theirs
    assert sum(map(len, ours.values())) == 60        # 3 × (5 + 6 + 6 + 2) + 3 MOBIKE
