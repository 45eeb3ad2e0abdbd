"""The struct-level Mobility Header codec against scapy (RFC 6275 §6.1, §6.2; RFC 5555 §3).

:mod:`mip6lab.wire.mh_codec` is what the mobile node and the home agent build and read
BUs and BAs with; :mod:`mip6lab.wire.mip6` (scapy) is what a person is shown. Both must
mean the same octets the same way:

- a BU or BA written by the codec is octet for octet the one ``build_bu``/``build_ba``
  write with the same values (alignment padding, lengths, checksum included);
- the codec reads scapy's BU or BA back to the values it was built from, and scapy's
  dissection of the codec's bytes agrees field by field;
- any octets that pass ``check_mobility_message`` -- mutated ones included -- are read by
  the codec as scapy reads them, and bad input makes the node's byte path step aside so
  that the scapy path gives the drop it always gave.
"""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (HAO, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, MIP6MH_BA,
                                MIP6OptAltCoA, MIP6OptBRAdvice, _MobilityHeader)

from mip6lab.errors import LocalProtocolError, MalformedPacket
from mip6lab.wire import mh_codec as c
from mip6lab.wire.mip6 import (MIP6MH_BU_DSMIP6, MIP6OptIPv4AddrAck, MIP6OptIPv4CareOfAddress,
                               MIP6OptIPv4HomeAddress, MIP6OptNATDetection, _locate_mh,
                               build_ba, build_bu, check_mobility_message, mh_checksum)

import pytest

ROUNDS = settings(max_examples=300, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

_v6 = st.binary(min_size=16, max_size=16).map(ipaddress.IPv6Address)
_v4 = st.binary(min_size=4, max_size=4)
_u16, _u32 = st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)

# each option the stack writes or reads, as (codec value, the same built by scapy)
_option = st.one_of(
    _u16.map(lambda v: (c.BindingRefreshAdvice(v), MIP6OptBRAdvice(rinter=v))),
    _v6.map(lambda a: (c.AlternateCareOfAddress(a.packed), MIP6OptAltCoA(acoa=str(a)))),
    st.builds(lambda a, plen, p: (c.IPv4HomeAddress(a, plen, p),
                                  MIP6OptIPv4HomeAddress(hoa=str(ipaddress.IPv4Address(a)),
                                                         plen=plen, P=int(p))),
              _v4, st.integers(0, 63), st.booleans()),
    st.builds(lambda s, a, plen: (c.IPv4AddressAcknowledgement(s, a, plen),
                                  MIP6OptIPv4AddrAck(status=s, plen=plen,
                                                     hoa=str(ipaddress.IPv4Address(a)))),
              st.integers(0, 255), _v4, st.integers(0, 63)),
    st.builds(lambda f, r: (c.NATDetection(f, r), MIP6OptNATDetection(F=int(f), refresh=r)),
              st.booleans(), _u32),
    _v4.map(lambda a: (c.IPv4CareOfAddress(a),
                       MIP6OptIPv4CareOfAddress(coa=str(ipaddress.IPv4Address(a))))),
)
_options = st.lists(_option, max_size=4)
_lifetime = st.integers(0, 0xFFFF).map(lambda units: 4 * units)


def _scapy_reading(raw: bytes) -> tuple:
    """What scapy's dissection says of a BU or BA: the values the codec reads."""
    ip6 = IPv6(raw)
    mh = ip6
    while not isinstance(mh, _MobilityHeader):
        mh = mh.payload
    hao = None
    if IPv6ExtHdrDestOpt in ip6:
        hao = next((o.hoa for o in ip6[IPv6ExtHdrDestOpt].options if isinstance(o, HAO)),
                   None)
    routed = None
    if IPv6ExtHdrRouting in ip6 and ip6[IPv6ExtHdrRouting].type == 2:
        routed = ip6[IPv6ExtHdrRouting].addresses[0]
    if isinstance(mh, MIP6MH_BU_DSMIP6):
        flags, status = (int(mh.flags) << 1) | mh.F, 0
    else:
        assert isinstance(mh, MIP6MH_BA)
        flags, status = (int(mh.flags) << 5) | mh.res2, mh.status
    options = [(bytes(o)[0], bytes(o)[2:2 + bytes(o)[1]]) for o in mh.options
               if bytes(o)[0] not in (0, 1)]
    return (ip6.src, hao, routed, mh.mhtype, mh.seq, flags, status, mh.mhtime, options)


def _codec_reading(raw: bytes) -> tuple:
    m = c.decode_mobility_message(raw)
    assert m is not None
    text = lambda b: None if b is None else str(ipaddress.IPv6Address(b))  # noqa: E731
    return (text(m.source), text(m.home_address), text(m.routed_to), m.mh_type, m.sequence,
            m.flags, m.status, m.lifetime, [(o.TYPE, o.data()) for o in m.options])


@ROUNDS
@given(hoa=_v6, coa=st.none() | _v6, ha=_v6, seq=_u16, lifetime=_lifetime,
       flags=st.tuples(*[st.booleans()] * 5), options=_options)
def test_binding_update_same_octets_both_ways(hoa, coa, ha, seq, lifetime, flags, options):
    a, h, l, k, f = flags  # noqa: E741
    ours = c.encode_bu(hoa, coa, ha, seq, lifetime, a=a, h=h, l=l, k=k, f=f,
                       options=[o for o, _ in options])
    theirs = bytes(build_bu(str(hoa), None if coa is None else str(coa), str(ha), seq,
                            lifetime, a=a, h=h, l=l, k=k, f=f, options=[s for _, s in options]))
    assert ours == theirs
    check_mobility_message(ours, ours[64 if coa is not None else 40:])
    assert _codec_reading(theirs) == _scapy_reading(ours)
    message = c.decode_mobility_message(theirs)
    assert message.options == [o for o, _ in options]
    assert (message.sequence, message.lifetime) == (seq, lifetime // 4)
    assert message.home_address == (hoa.packed if coa is not None else None)


@ROUNDS
@given(ha=_v6, coa=st.none() | _v6, hoa=_v6, seq=_u16, lifetime=_lifetime,
       status=st.integers(0, 255), k=st.booleans(), options=_options)
def test_binding_acknowledgement_same_octets_both_ways(ha, coa, hoa, seq, lifetime, status,
                                                       k, options):
    ours = c.encode_ba(ha, coa, hoa, seq, lifetime, status=status, k=k,
                       options=[o for o, _ in options])
    theirs = bytes(build_ba(str(ha), None if coa is None else str(coa), str(hoa), seq,
                            lifetime, status=status, k=k, options=[s for _, s in options]))
    assert ours == theirs
    assert _codec_reading(theirs) == _scapy_reading(ours)
    message = c.decode_mobility_message(theirs)
    assert message.options == [o for o, _ in options]
    assert message.routed_to == (hoa.packed if coa is not None else None)
    assert (message.status, bool(message.flags & c.BA_K)) == (status, k)


def _valid() -> list[bytes]:
    hoa, coa, ha = "2001:db8:0:1::10", "2001:db8:5::1", "2001:db8:0:1::2"
    return [
        c.encode_bu(hoa, coa, ha, 7, 60, options=[
            c.AlternateCareOfAddress(ipaddress.IPv6Address(coa).packed),
            c.IPv4HomeAddress(bytes(4))]),
        c.encode_bu(hoa, None, ha, 3, 60, options=[c.IPv4CareOfAddress(bytes([192, 0, 2, 1]))]),
        c.encode_ba(ha, coa, hoa, 7, 60, options=[
            c.IPv4AddressAcknowledgement(0, bytes([10, 0, 0, 1])), c.NATDetection(True, 30),
            c.BindingRefreshAdvice(5)]),
    ]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(which=st.integers(0, 2), edits=st.lists(
    st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 100), fix_checksum=st.booleans())
def test_mutated_octets_read_alike_or_go_to_scapy(which, edits, cut, fix_checksum):
    """Whatever passes the receiver's checks, the codec reads as scapy does; whatever
    does not, the byte path never reads (the handlers step aside to scapy's path)."""
    raw = bytearray(_valid()[which])
    for position, value in edits:
        raw[position % len(raw)] = value
    raw = bytes(raw[:len(raw) - cut % 9])
    if len(raw) < 40 or raw[0] >> 4 != 6:
        return
    try:
        _, _, offset, _ = _locate_mh(raw)
        if fix_checksum:    # most mutations break the checksum: mend it to reach the rest
            raw = bytearray(raw)
            raw[offset + 4:offset + 6] = mh_checksum(bytes(raw)).to_bytes(2, "big")
            raw = bytes(raw)
        check_mobility_message(raw, raw[offset:])
    except MalformedPacket:
        return
    if raw[offset + 2] not in (5, 6):
        assert c.decode_mobility_message(raw) is None
        return
    if offset + 8 * (raw[offset + 1] + 1) != len(raw):
        return          # trailing octets: the handlers leave those to scapy
    message = c.decode_mobility_message(raw)
    if not message.read_as_scapy:
        # an option scapy cuts its own way: the handlers leave the MH to scapy, and read
        # the options as scapy cut them
        ip6 = IPv6(raw)
        mh = ip6
        while not isinstance(mh, _MobilityHeader):
            mh = mh.payload
        assert [(o.TYPE, o.data()) for o in c.read_options(bytes(o) for o in mh.options)] \
            == _scapy_reading(raw)[8]
        return
    assert _codec_reading(raw) == _scapy_reading(raw)
    READ.append(1)


READ: list[int] = []


def test_mutations_reach_the_reading():
    """The mutation test above is not vacuous: a fair share of its inputs passed the
    checks and were compared (it runs first in this module)."""
    assert len(READ) >= 100


def test_an_option_scapy_reads_its_own_way_leaves_the_message_to_scapy():
    """scapy dissects some option types (RFC 4285's MN-ID, authentication, replay
    protection; link-layer address ...) with classes of their own that do not follow the
    option's length; an MH holding one is not read by the byte path."""
    from mip6lab.wire import auth

    bu = c.encode_bu("2001:db8::1", "2001:db8:5::1", "2001:db8::2", 1, 60)
    signed = bytes(auth.add_authentication(bu, 0x100, lambda data: bytes(12),
                                           nai="mn@example", timestamp=1))
    assert c.decode_mobility_message(bu).read_as_scapy
    message = c.decode_mobility_message(signed)
    assert {o.TYPE for o in message.options} >= {8, 9, 10}
    assert not message.read_as_scapy
    assert c.SCAPY_OWN_OPTIONS.isdisjoint({0, 1, 2, 3, 29, 30, 31, 32})


def test_bad_values_are_local_errors():
    for call in (lambda: c.encode_bu("::1", None, "::2", 70000, 60),
                 lambda: c.encode_bu("::1", None, "::2", 1, 61),
                 lambda: c.encode_ba("::1", None, "::2", 1, 60, status=256),
                 lambda: c.encode_bu("10.0.0.1", None, "::2", 1, 60)):
        with pytest.raises(LocalProtocolError):
            call()
