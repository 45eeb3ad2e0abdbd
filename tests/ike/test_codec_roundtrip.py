"""The engine's struct-level IKEv2 codec against scapy's reading (RFC 7296 §3).

:mod:`mip6lab.wire.ikev2_codec` is what the IKE engine parses and builds with;
:mod:`mip6lab.wire.ikev2` (scapy) is what a person is shown. They must mean the same
bytes the same way:

- random payloads and messages written by the codec dissect in scapy to the same field
  values (and scapy's typed readings of notifies and CP attributes agree with the
  codec's);
- the same values built by scapy give the same octets, and the codec reads them back;
- ``decode(encode(x)) == x``;
- every message of the strongSwan capture (and the plaintext of each SK payload, as
  tshark decrypts it) decodes and re-encodes byte for byte;
- bad input raises :class:`MalformedIKEMessage` and nothing else.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mip6lab.errors import LocalProtocolError
from mip6lab.wire import ikev2 as w
from mip6lab.wire import ikev2_codec as c

from ._wire import built_messages, captured, sk_plaintext

ROUNDS = settings(max_examples=300, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
N = w.NotifyType
A = w.CpAttributeType


# -- strategies: codec values that are well-formed (they pass validate_message) ---------------

def _bytes(low: int = 0, high: int = 40) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=low, max_size=high)


_critical = st.booleans()
_u8, _u16, _u32 = (st.integers(0, 2 ** bits - 1) for bits in (8, 16, 32))

# a TV attribute other than Key Length (§3.3.5), so it is never read as one
_other_attribute = st.builds(lambda t, v: struct.pack("!HH", 0x8000 | t, v),
                             _u16.filter(lambda t: (t & 0x7FFF) != 14).map(lambda t: t & 0x7FFF),
                             _u16)
_transform = st.builds(c.SaTransform, st.integers(1, 5), _u16,
                       st.none() | _u16, st.just(b"") | _other_attribute)
_proposal = st.builds(c.SaProposal, st.integers(1, 255), st.integers(0, 4),
                      st.sampled_from([b"", bytes(4), b"\x01\x02\x03\x04",
                                       bytes(range(8))]),
                      st.lists(_transform, min_size=1, max_size=4).map(tuple))
_sa = st.builds(c.SA, st.lists(_proposal, min_size=1, max_size=3).map(tuple),
                critical=_critical)

_id_data = st.one_of(
    st.tuples(st.just(1), _bytes(4, 4)), st.tuples(st.just(5), _bytes(16, 16)),
    st.tuples(st.sampled_from([2, 3]), st.text("abcdefgh.@-", min_size=1, max_size=20)
              .map(str.encode)),
    st.tuples(st.sampled_from([9, 10, 11, 12]), _bytes(0, 30)))
_idi = _id_data.map(lambda t: c.IDi(*t))
_idr = _id_data.map(lambda t: c.IDr(*t))

_typed_notify = st.one_of(
    st.builds(lambda g: c.notify(N.INVALID_KE_PAYLOAD, dh_group=g), _u16),
    st.builds(lambda t: c.notify(N.UNSUPPORTED_CRITICAL_PAYLOAD, payload_type=t), _u8),
    st.builds(lambda v: c.notify(N.INVALID_MESSAGE_ID, message_id=v), _u32),
    st.builds(lambda v: c.notify(N.INVALID_SPI, invalid_spi=v), _u32),
    st.builds(lambda v: c.notify(N.SET_WINDOW_SIZE, window_size=v), _u32),
    st.builds(lambda v: c.notify(N.AUTH_LIFETIME, auth_lifetime=v), _u32),
    st.builds(lambda cpi, t: c.notify(N.IPCOMP_SUPPORTED, cpi=cpi, ipcomp_transform=t),
              _u16, _u8),
    st.builds(lambda a: c.notify(N.ADDITIONAL_IP4_ADDRESS, address=ipaddress.IPv4Address(a)),
              _bytes(4, 4)),
    st.builds(lambda a: c.notify(N.ADDITIONAL_IP6_ADDRESS, address=ipaddress.IPv6Address(a)),
              _bytes(16, 16)),
    st.builds(lambda size, a, b, p, q: c.notify(
        N.NO_NATS_ALLOWED, src_address=ipaddress.ip_address(a[:size]),
        dst_address=ipaddress.ip_address(b[:size]), src_port=p, dst_port=q),
        st.sampled_from([4, 16]), _bytes(16, 16), _bytes(16, 16), _u16, _u16),
    st.builds(lambda hashes: c.notify(N.SIGNATURE_HASH_ALGORITHMS, hash_algorithms=hashes),
              st.lists(st.integers(0, 5), min_size=1, max_size=5).map(tuple)),
)
_sized_notify = st.one_of(
    st.builds(lambda d: c.Notify(N.NAT_DETECTION_SOURCE_IP, d), _bytes(20, 20)),
    st.builds(lambda d: c.Notify(N.NAT_DETECTION_DESTINATION_IP, d), _bytes(20, 20)),
    st.builds(lambda d: c.Notify(N.COOKIE, d), _bytes(1, 64)),
    st.builds(lambda d, spi: c.Notify(N.REKEY_SA, d, 3, spi), _bytes(0, 8), _bytes(4, 4)),
    st.builds(lambda t, d: c.Notify(t, d), st.sampled_from(
        [N.USE_TRANSPORT_MODE, N.MOBIKE_SUPPORTED, N.INITIAL_CONTACT, N.EAP_ONLY_AUTHENTICATION,
         N.NO_PROPOSAL_CHOSEN, N.TS_UNACCEPTABLE, 40000, 50000]), _bytes(0, 20)),
)


def _with_critical(strategy):
    return st.tuples(strategy, _critical).map(lambda pc: _set_critical(*pc))


def _set_critical(payload, critical):
    payload.critical = critical
    return payload


_notify = _with_critical(_typed_notify | _sized_notify)

_prefix_len = st.integers(0, 128)
_cp_attribute = st.one_of(
    st.sampled_from([A.INTERNAL_IP6_ADDRESS, A.INTERNAL_IP4_ADDRESS, A.MIP6_HOME_PREFIX,
                     A.INTERNAL_IP6_DNS, A.APPLICATION_VERSION]).map(c.cp_attribute),
    st.builds(lambda a, n: c.cp_attribute(A.INTERNAL_IP6_ADDRESS,
                                          address=ipaddress.IPv6Address(a), prefix_len=n),
              _bytes(16, 16), _prefix_len),
    st.builds(lambda a: c.cp_attribute(A.INTERNAL_IP4_ADDRESS,
                                       address=ipaddress.IPv4Address(a)), _bytes(4, 4)),
    st.builds(lambda a: c.cp_attribute(A.INTERNAL_IP6_DNS,
                                       address=ipaddress.IPv6Address(a)), _bytes(16, 16)),
    st.builds(lambda a, n: c.cp_attribute(A.INTERNAL_IP4_SUBNET, address=ipaddress.IPv4Address(a),
                                          netmask=ipaddress.IPv4Network(f"0.0.0.0/{n}").netmask),
              _bytes(4, 4), st.integers(0, 32)),
    st.builds(lambda life, a, n: c.cp_attribute(
        A.MIP6_HOME_PREFIX, prefix_lifetime=life, home_prefix=ipaddress.IPv6Address(a),
        prefix_len=n), _u32, _bytes(16, 16), _prefix_len),
    st.builds(lambda t: c.cp_attribute(A.APPLICATION_VERSION, text=t),
              st.text("abc 123.", min_size=1, max_size=12)),
    st.builds(lambda ts: c.cp_attribute(A.SUPPORTED_ATTRIBUTES, attribute_types=ts),
              st.lists(st.integers(1, 30), min_size=1, max_size=4)),
    st.builds(lambda t, v: c.CpAttribute(t, v), st.integers(30, 0x7FFF), _bytes(0, 12)),
)
_cp = st.builds(c.CP, st.integers(1, 4), st.lists(_cp_attribute, max_size=4).map(tuple),
                critical=_critical)

_selector = st.one_of(
    st.builds(lambda p, a, b, s, e: c.AddressSelector(7, p, a, b, s, e),
              _u8, _u16, _u16, _bytes(4, 4), _bytes(4, 4)),
    st.builds(lambda p, a, b, s, e: c.AddressSelector(8, p, a, b, s, e),
              _u8, _u16, _u16, _bytes(16, 16), _bytes(16, 16)),
    st.builds(c.RawSelector, st.sampled_from([9, 10, 200]), _u8, _bytes(0, 20)),
)
_selectors = st.lists(_selector, min_size=1, max_size=3).map(tuple)

_eap = st.builds(lambda code, ident, rest: c.EAP(
    bytes((code, ident)) + struct.pack("!H", 4 + len(rest)) + rest),
    _u8, _u8, _bytes(0, 20))
# unknown payload types: not RFC 7296's, not SK/SKF (those must be last), 2 and 3 included
_unknown_type = st.sampled_from([2, 3, 49, 50, 51, 52, 54, 128, 200, 255])

_payload = st.one_of(
    _sa,
    st.builds(c.KE, _u16, _bytes(0, 64), critical=_critical),
    _idi, _idr,
    st.builds(c.CERT, st.sampled_from([1, 2, 4, 12]), _bytes(0, 40), critical=_critical),
    st.builds(c.CERTREQ, st.sampled_from([4, 12]), _bytes(0, 40), critical=_critical),
    st.builds(c.AUTH, st.sampled_from([1, 2, 9, 14]), _bytes(4, 40), critical=_critical),
    st.builds(c.Nonce, _bytes(16, 256), critical=_critical),
    _notify,
    st.builds(c.Delete, st.just(1), st.just(())),
    st.builds(c.Delete, st.sampled_from([2, 3]), st.lists(_bytes(4, 4), max_size=4).map(tuple)),
    st.builds(c.VendorID, _bytes(0, 30), critical=_critical),
    st.builds(c.TSi, _selectors), st.builds(c.TSr, _selectors),
    _cp, _eap,
    st.builds(c.UnknownPayload, _unknown_type, _bytes(0, 30), critical=_critical),
)
_payloads = st.lists(_payload, max_size=6)
_encrypted = st.builds(c.Encrypted, st.sampled_from([0, 35, 36, 41]), _bytes(8, 60))


@st.composite
def _messages(draw):
    payloads = draw(_payloads)
    if draw(st.booleans()):
        payloads.append(draw(_encrypted))
    return c.Message(draw(_bytes(8, 8)), draw(_bytes(8, 8)), draw(st.sampled_from(
        [34, 35, 36, 37, 43])), draw(st.sampled_from([0, 0x08, 0x20, 0x28])), draw(_u32),
        payloads)


# -- scapy's reading as codec values, and codec values as scapy packets ----------------------

def _packed(address) -> bytes:
    return address if isinstance(address, bytes) else ipaddress.ip_address(address).packed


def _body(pkt) -> bytes:
    """Octets of one scapy payload after its generic header, as scapy builds them."""
    return bytes(w._alone(pkt))[4:]


def _selector_of(ts):
    if isinstance(ts, w.IPv4TrafficSelector):
        return c.AddressSelector(7, ts.IP_protocol_ID, ts.start_port, ts.end_port,
                                 _packed(ts.starting_address_v4), _packed(ts.ending_address_v4))
    if isinstance(ts, w.IPv6TrafficSelector):
        return c.AddressSelector(8, ts.IP_protocol_ID, ts.start_port, ts.end_port,
                                 _packed(ts.starting_address_v6), _packed(ts.ending_address_v6))
    return c.RawSelector(ts.TS_type, ts.IP_protocol_ID, bytes(ts.load))


def from_scapy(pkt, payload_type: int):
    """The codec value of a dissected scapy payload, read from scapy's fields."""
    critical = bool(int(pkt.flags) & 0x80)
    if isinstance(pkt, w.IKEv2_SA):
        proposals = tuple(
            c.SaProposal(p.proposal, p.proto, bytes(p.SPI or b""), tuple(
                c.SaTransform(t.transform_type, t.transform_id, t.key_length,
                              bytes(t.other_attributes))
                for t in w.message_payloads(p.trans)))
            for p in w.message_payloads(pkt.prop))
        return c.SA(proposals, critical=critical)
    if isinstance(pkt, w.IKEv2_KE):
        return c.KE(pkt.group, bytes(pkt.ke), critical=critical)
    if isinstance(pkt, (w.IKEv2_IDi, w.IKEv2_IDr)):
        cls = c.IDi if isinstance(pkt, w.IKEv2_IDi) else c.IDr
        data = _packed(pkt.ID) if pkt.IDtype in (1, 5) else bytes(pkt.ID)
        return cls(pkt.IDtype, data, critical=critical)
    if isinstance(pkt, w.IKEv2_CERT):
        data = b"" if pkt.cert_data is None else bytes(pkt.cert_data)   # None: empty
        return c.CERT(pkt.cert_encoding, data, critical=critical)
    if isinstance(pkt, w.IKEv2_CERTREQ):
        return c.CERTREQ(pkt.cert_encoding, bytes(pkt.cert_authority), critical=critical)
    if isinstance(pkt, w.IKEv2_AUTH):
        return c.AUTH(pkt.auth_type, bytes(pkt.load), critical=critical)
    if isinstance(pkt, w.IKEv2_Nonce):
        return c.Nonce(bytes(pkt.nonce), critical=critical)
    if isinstance(pkt, w.IKEv2_Notify):
        spi = bytes(pkt.SPI or b"")
        return c.Notify(pkt.type, _body(pkt)[4 + len(spi):], pkt.proto, spi, critical=critical)
    if isinstance(pkt, w.IKEv2_Delete):
        return c.Delete(pkt.proto, tuple(bytes(s) for s in pkt.SPI or []), critical=critical)
    if isinstance(pkt, w.IKEv2_VendorID):
        return c.VendorID(bytes(pkt.vendorID), critical=critical)
    if isinstance(pkt, (w.IKEv2_TSi, w.IKEv2_TSr)):
        cls = c.TSi if isinstance(pkt, w.IKEv2_TSi) else c.TSr
        return cls(tuple(map(_selector_of, pkt.traffic_selector)), critical=critical)
    if isinstance(pkt, w.IKEv2_CP):
        return c.CP(pkt.CFGType, tuple(c.CpAttribute(a.type, bytes(a)[4:], a.R)
                                       for a in pkt.attributes or []), critical=critical)
    if isinstance(pkt, w.IKEv2_EAP):
        return c.EAP(bytes(pkt.load), critical=critical)
    if isinstance(pkt, w.IKEv2_Encrypted):
        return c.Encrypted(pkt.next_payload, bytes(pkt.load), critical=critical)
    # the generic payload, or one of scapy's classes for types beyond RFC 7296 (GSPM ...)
    return c.UnknownPayload(payload_type, _body(pkt), critical=critical)


def to_scapy(payload, following: int):
    """A scapy payload built from the codec value's fields (typed notify fields where the
    codec has a typed reading), its Next Payload set to ``following``."""
    common = {"next_payload": following, "flags": 0x80 if payload.critical else 0}
    kind = type(payload)
    if kind is c.SA:
        return w.IKEv2_SA(prop=w.chain_payloads([
            w.IKEv2_Proposal(proposal=p.number, proto=p.protocol, SPI=p.spi,
                             trans=w.chain_payloads([
                                 w.IKEv2_Transform(transform_type=t.type, transform_id=t.id,
                                                   key_length=t.key_length,
                                                   other_attributes=t.attributes)
                                 for t in p.transforms]))
            for p in payload.proposals]), **common)
    if kind is c.KE:
        return w.IKEv2_KE(group=payload.group, ke=payload.data, **common)
    if kind in (c.IDi, c.IDr):
        cls = w.IKEv2_IDi if kind is c.IDi else w.IKEv2_IDr
        value = str(ipaddress.ip_address(payload.data)) if payload.id_type in (1, 5) \
            else payload.data
        return cls(IDtype=payload.id_type, ID=value, **common)
    if kind is c.CERT:
        return w.IKEv2_CERT(cert_encoding=payload.encoding, cert_data=payload.data, **common)
    if kind is c.CERTREQ:
        return w.IKEv2_CERTREQ(cert_encoding=payload.encoding, cert_authority=payload.data,
                               **common)
    if kind is c.AUTH:
        return w.IKEv2_AUTH(auth_type=payload.method, load=payload.data, **common)
    if kind is c.Nonce:
        return w.IKEv2_Nonce(nonce=payload.data, **common)
    if kind is c.Notify:
        typed = payload.fields()
        values = typed if typed else {"notify": payload.data}
        return w.IKEv2_Notify(type=payload.type, proto=payload.protocol, SPI=payload.spi,
                              **values, **common)
    if kind is c.Delete:
        return w.IKEv2_Delete(proto=payload.protocol, SPI=list(payload.spis), **common)
    if kind is c.VendorID:
        return w.IKEv2_VendorID(vendorID=payload.data, **common)
    if kind in (c.TSi, c.TSr):
        selectors = []
        for s in payload.selectors:
            if type(s) is c.RawSelector:
                selectors.append(w.RawTrafficSelector(TS_type=s.ts_type,
                                                      IP_protocol_ID=s.protocol, load=s.data))
            else:
                selectors.append(w.traffic_selector(
                    (ipaddress.ip_address(s.start_address), ipaddress.ip_address(s.end_address))
                    if s.start_address <= s.end_address else _never_ordered(s),
                    s.protocol, (s.start_port, s.end_port)))
        cls = w.IKEv2_TSi if kind is c.TSi else w.IKEv2_TSr
        return cls(traffic_selector=selectors, **common)
    if kind is c.CP:
        return w.IKEv2_CP(CFGType=payload.cfg_type, attributes=[
            w.ConfigurationAttribute(type=a.type, R=a.reserved, value=a.value)
            if a.value else w.ConfigurationAttribute(type=a.type, R=a.reserved, length=0)
            for a in payload.attributes], **common)
    if kind is c.EAP:
        return w.IKEv2_EAP(load=payload.data, **common)
    if kind is c.Encrypted:
        return w.IKEv2_Encrypted(load=payload.data, **{**common,
                                                        "next_payload": payload.first_inner})
    return w.IKEv2_Payload(load=payload.data, **common)


def _never_ordered(s):
    raise _Unordered


class _Unordered(Exception):
    """traffic_selector() refuses a range whose start is above its end; built by hand."""


def scapy_chain_bytes(payloads) -> bytes:
    out = []
    for index, payload in enumerate(payloads):
        following = payloads[index + 1].payload_type if index + 1 < len(payloads) else 0
        try:
            out.append(bytes(to_scapy(payload, following)))
        except _Unordered:        # a selector with start > end: scapy's own field classes
            out.append(bytes(_tsx_by_fields(payload, following)))
    return b"".join(out)


def _tsx_by_fields(payload, following):
    selectors = []
    for s in payload.selectors:
        if type(s) is c.RawSelector:
            selectors.append(w.RawTrafficSelector(TS_type=s.ts_type, IP_protocol_ID=s.protocol,
                                                  load=s.data))
        elif s.ts_type == 7:
            selectors.append(w.IPv4TrafficSelector(
                IP_protocol_ID=s.protocol, start_port=s.start_port, end_port=s.end_port,
                starting_address_v4=str(ipaddress.IPv4Address(s.start_address)),
                ending_address_v4=str(ipaddress.IPv4Address(s.end_address))))
        else:
            selectors.append(w.IPv6TrafficSelector(
                IP_protocol_ID=s.protocol, start_port=s.start_port, end_port=s.end_port,
                starting_address_v6=str(ipaddress.IPv6Address(s.start_address)),
                ending_address_v6=str(ipaddress.IPv6Address(s.end_address))))
    cls = w.IKEv2_TSi if type(payload) is c.TSi else w.IKEv2_TSr
    return cls(traffic_selector=selectors, next_payload=following,
               flags=0x80 if payload.critical else 0)


def _scapy_readings_agree(codec_payload, pkt) -> None:
    """scapy's typed readings (notify data, CP values, SA proposals, TS ranges) are the
    codec's."""
    if type(codec_payload) is c.Notify:
        for name, value in codec_payload.fields().items():
            assert getattr(pkt, name) == value, name
    elif type(codec_payload) is c.CP:
        assert w.decode_cp(pkt) == codec_payload.values()
    elif type(codec_payload) is c.SA:
        assert w.decode_sa(pkt) == codec_payload.to_proposals()


# -- the properties --------------------------------------------------------------------------

@ROUNDS
@given(_payloads)
def test_codec_payloads_dissect_in_scapy_to_the_same_fields(payloads):
    first, data = c.encode_payloads(payloads)
    dissected = w.decode_inner_payloads(first, data)      # validates, then scapy dissects
    types = w.payload_types(first, dissected)
    assert [from_scapy(p, t) for p, t in zip(dissected, types)] == payloads
    for codec_payload, pkt in zip(payloads, dissected):
        _scapy_readings_agree(codec_payload, pkt)


@ROUNDS
@given(_payloads)
def test_scapy_built_payloads_are_the_codec_octets_and_decode_to_the_values(payloads):
    built = scapy_chain_bytes(payloads)
    first, data = c.encode_payloads(payloads)
    assert built == data
    assert c.decode_payloads(first, built) == payloads


@ROUNDS
@given(_messages())
def test_messages_round_trip_and_agree_with_scapy(message):
    data = c.encode_message(message)
    assert c.decode_message(data) == message
    scapy_message = w.decode_message(data)
    assert (bytes(scapy_message.init_SPI), bytes(scapy_message.resp_SPI),
            scapy_message.exch_type, scapy_message.flags, scapy_message.id,
            scapy_message.length) == (message.spi_i, message.spi_r, message.exchange,
                                      message.flags, message.message_id, len(data))
    payloads = w.message_payloads(scapy_message)
    types = w.payload_types(scapy_message.next_payload, payloads)
    assert [from_scapy(p, t) for p, t in zip(payloads, types)] == message.payloads


@ROUNDS
@given(st.binary(max_size=200) | _messages().map(c.encode_message).flatmap(
    lambda d: st.tuples(st.just(d), st.integers(0, len(d) - 1), _u8).map(
        lambda t: t[0][:t[1]] + bytes((t[2],)) + t[0][t[1] + 1:])))
def test_bad_input_is_malformed_or_agrees_with_scapy(data):
    try:
        message = c.decode_message(data)
    except c.MalformedIKEMessage:
        with pytest.raises(w.MalformedIKEMessage):
            w.decode_message(data)
        return
    # reserved bits and octets are not kept (RFC 7296 §3.2: ignored on receipt), so the
    # octets written again may differ there, never in a value
    assert c.decode_message(c.encode_message(message)) == message
    w.decode_message(data)      # scapy accepts what the codec accepts


def test_strongswan_capture_round_trips_byte_for_byte():
    for message in captured():
        decoded = c.decode_message(message.data)
        assert c.encode_message(decoded) == message.data, message.frame
        dissected = w.decode_message(message.data)
        payloads = w.message_payloads(dissected)
        types = w.payload_types(dissected.next_payload, payloads)
        assert [from_scapy(p, t) for p, t in zip(payloads, types)] == decoded.payloads


def test_strongswan_sk_plaintexts_round_trip_byte_for_byte():
    seen = 0
    for message in captured():
        decoded = c.decode_message(message.data)
        if not decoded.payloads or type(decoded.payloads[-1]) is not c.Encrypted:
            continue
        plaintext = sk_plaintext(message.frame)
        first = decoded.payloads[-1].first_inner
        inner = c.decode_payloads(first, plaintext)
        assert c.encode_payloads(inner) == (first, plaintext) if inner else plaintext == b""
        seen += 1
    assert seen >= 8


def test_built_seed_messages_round_trip():
    for data in built_messages():
        assert c.encode_message(c.decode_message(data)) == data


def test_engine_values():
    """The readings the engine relies on."""
    sa = c.sa_payload(w.decode_sa(w.IKEv2_SA(bytes(w.build_sa_payload(
        __import__("mip6lab.crypto.ike.proposals", fromlist=["parse_proposals"])
        .parse_proposals("aes256gcm16-prfsha256-curve25519,aes128-sha256-modp2048"))))))
    assert len(sa.proposals) == 2 and sa.proposals[0].transforms[0].key_length == 256
    assert c.notify("INVALID_KE_PAYLOAD", dh_group=31).dh_group == 31
    assert c.notify(N.SIGNATURE_HASH_ALGORITHMS, hash_algorithms=(2, 3, 4)).hash_algorithms \
        == (2, 3, 4)
    with pytest.raises(LocalProtocolError):
        c.sa_payload([w.Proposal(1, (w.Transform(1, 12),))])    # AES without Key Length
    with pytest.raises(c.MalformedIKEMessage):
        c.decode_payloads(0, b"\x00")
