"""mip6lab.wire.mip6: DSMIP6 options, the BU F flag, BU/BA builders, MH checksum,
IPv4/UDP 4191 tunnelling and the strict mobility-option validator.

Expected values come from the RFC figures (RFC 5555 §3, RFC 6275 §6.1, §6.3, §6.4) and
from tshark 4.0.17's mip6 dissector, not from the code under test.
"""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    HAO,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrRouting,
    MIP6MH_BA,
    MIP6MH_BU,
    MIP6OptAltCoA,
    MIP6OptUnknown,
)
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from mip6lab.errors import LocalProtocolError, MalformedPacket
from mip6lab.testing.prereq import require_tool
from mip6lab.testing.tshark import check_capture, tshark_fields
from mip6lab.wire.mip6 import (
    MIP6MH_BU_DSMIP6,
    MIP6OptIPv4AddrAck,
    MIP6OptIPv4CareOfAddress,
    MIP6OptIPv4HomeAddress,
    MIP6OptNATDetection,
    build_ba,
    build_bu,
    build_dsmip6_bu,
    decapsulate_udp4,
    encapsulate_udp4,
    mh_checksum,
    validate_mobility_header,
    validate_mobility_options,
    verify_mh_checksum,
)

HOA = "2001:db8:1::100"
HA = "2001:db8:1::1"
COA = "2001:db8:2::5"
V4COA = "192.0.2.5"
HA_V4 = "198.51.100.1"
DECODE = ("udp.port==4191,ipv6",)
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def _mh(pkt) -> bytes:
    """Bytes of the Mobility Header (and what follows) in an IPv6 packet."""
    for cls in (MIP6MH_BU, MIP6MH_BA):
        if cls in pkt:
            return bytes(pkt[cls])
    raise AssertionError("no BU/BA in packet")


def _ref_checksum(src: str, dst: str, mh: bytes) -> int:
    """RFC 6275 §6.1.1 / RFC 2460 §8.1 checksum, written independently of the code."""
    mh = mh[:4] + b"\x00\x00" + mh[6:]
    pseudo = (
        ipaddress.IPv6Address(src).packed
        + ipaddress.IPv6Address(dst).packed
        + len(mh).to_bytes(4, "big")
        + bytes([0, 0, 0, 135])
    )
    data = pseudo + mh + (b"\x00" if len(mh) % 2 else b"")
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return (~total) & 0xFFFF


# -- options: exact bytes from the RFC 5555 figures ----------------------------------


def test_ipv4_home_address_option_bytes_and_dissection():
    opt = MIP6OptIPv4HomeAddress(plen=24, P=1, hoa="10.9.0.7")
    # Type 29, Length 6, Prefix-len (6 bits)=24 | P=1 | 9 reserved bits, IPv4 HoA.
    assert bytes(opt) == bytes([29, 6, (24 << 2) | 0b10, 0x00, 10, 9, 0, 7])
    back = MIP6OptUnknown(bytes(opt))
    assert isinstance(back, MIP6OptIPv4HomeAddress)
    assert (back.plen, back.P, back.hoa) == (24, 1, "10.9.0.7")
    assert MIP6OptIPv4HomeAddress().plen == 32  # single address: prefix-len 32


def test_ipv4_address_ack_option_bytes_and_dissection():
    opt = MIP6OptIPv4AddrAck(status=130, plen=24, hoa="10.9.0.7")
    assert bytes(opt) == bytes([30, 6, 130, 24 << 2, 10, 9, 0, 7])
    back = MIP6OptUnknown(bytes(opt))
    assert isinstance(back, MIP6OptIPv4AddrAck)
    assert (back.status, back.plen, back.hoa) == (130, 24, "10.9.0.7")


def test_nat_detection_option_bytes_and_dissection():
    opt = MIP6OptNATDetection(F=1, refresh=110)
    assert bytes(opt) == bytes([31, 6, 0x80, 0x00]) + struct.pack("!I", 110)
    back = MIP6OptUnknown(bytes([31, 6, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]))
    assert isinstance(back, MIP6OptNATDetection)
    assert (back.F, back.refresh) == (0, 0xFFFFFFFF)


def test_ipv4_coa_option_bytes_and_dissection():
    opt = MIP6OptIPv4CareOfAddress(coa=V4COA)
    assert bytes(opt) == bytes([32, 6, 0, 0, 192, 0, 2, 5])
    back = MIP6OptUnknown(bytes(opt))
    assert isinstance(back, MIP6OptIPv4CareOfAddress)
    assert back.coa == V4COA


def test_options_are_aligned_4n_inside_bu():
    # After an Alternate CoA (8n+6, 18 bytes) the next 4n option needs padding.
    bu = MIP6MH_BU_DSMIP6(
        seq=1, options=[MIP6OptAltCoA(acoa=COA), MIP6OptIPv4CareOfAddress(coa=V4COA)]
    )
    raw = bytes(bu)
    found = validate_mobility_header(raw)
    assert [o.type for o in found] == [3, 32]
    assert found[1].offset % 4 == 0
    assert raw[found[1].offset] == 32


# -- the BU's F flag -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "flag_byte"),
    [
        ({"f": True}, 0b1101_0001),  # A H . K . . . F
        ({"f": False}, 0b1101_0000),
        ({"a": False, "h": False, "k": False, "l": True, "f": True}, 0b0010_0001),
    ],
)
def test_bu_flag_bits_on_the_wire(kwargs, flag_byte):
    bu = build_bu(HOA, COA, HA, 7, 400, **kwargs)
    mh = _mh(bu)
    # RFC 5555 Figure 3: seq at MH offset 6..7, then A|H|L|K|M|R|P|F, reserved, lifetime
    assert mh[8] == flag_byte
    assert mh[9] == 0
    assert struct.unpack("!H", mh[6:8])[0] == 7
    assert struct.unpack("!H", mh[10:12])[0] == 100  # 400 s in units of 4 s


def test_f_flag_keeps_scapy_flags_field_unchanged():
    ours = MIP6MH_BU_DSMIP6(seq=3, flags="AK", F=1)
    theirs = MIP6MH_BU(seq=3, flags="AK")
    # Same bytes except the F bit (0x01 of byte 8).
    a, b = bytes(ours), bytes(theirs)
    assert a[8] == b[8] | 0x01
    assert a[:4] == b[:4] and a[6:8] == b[6:8] and a[9:] == b[9:]
    assert int(ours.flags) == int(theirs.flags)
    # A dissected BU is ours, and scapy's own class still finds it.
    pkt = IPv6(bytes(IPv6(src=HOA, dst=HA) / ours))
    assert isinstance(pkt.payload, MIP6MH_BU_DSMIP6)
    assert MIP6MH_BU in pkt and pkt[MIP6MH_BU].F == 1
    assert pkt[MIP6MH_BU].flags.A and pkt[MIP6MH_BU].flags.K and not pkt[MIP6MH_BU].flags.H


# -- BU / BA builders: structure and round trips -----------------------------------------


def test_build_bu_structure_and_round_trip():
    opts = [MIP6OptIPv4HomeAddress(hoa="0.0.0.0", plen=24, P=1)]
    bu = build_bu(HOA, COA, HA, 0xBEEF, 4 * 0xFFFF, f=True, options=opts)
    assert (bu.src, bu.dst, bu.nh) == (COA, HA, 60)
    dest = bu[IPv6ExtHdrDestOpt]
    haos = [o for o in dest.options if isinstance(o, HAO)]
    assert len(haos) == 1 and haos[0].hoa == HOA
    raw_dest = bytes(dest)[: 8 * (dest.len + 1)]
    hao_at = raw_dest.index(b"\xc9\x10")
    assert hao_at % 8 == 6  # HAO alignment 8n+6 (RFC 6275 §6.3)
    m = bu[MIP6MH_BU_DSMIP6]
    assert (m.seq, m.mhtime, m.F, m.mhtype, m.nh) == (0xBEEF, 0xFFFF, 1, 5, 59)
    assert isinstance(m.options[0], MIP6OptIPv4HomeAddress)
    assert (m.options[0].P, m.options[0].plen) == (1, 24)
    assert bytes(IPv6(bytes(bu))) == bytes(bu)
    assert len(_mh(bu)) % 8 == 0


def test_build_ba_has_type2_routing_header():
    opts = [MIP6OptIPv4AddrAck(hoa="10.9.0.7", plen=32), MIP6OptNATDetection(F=1, refresh=110)]
    ba = build_ba(HA, COA, HOA, 9, 200, status=0, options=opts)
    assert (ba.src, ba.dst, ba.nh) == (HA, COA, 43)
    raw = bytes(ba)
    rh = raw[40:64]
    # RFC 6275 §6.4: next header 135, hdr ext len 2, type 2, segments left 1, HoA
    assert rh[:4] == bytes([135, 2, 2, 1])
    assert rh[4:8] == b"\x00" * 4
    assert rh[8:24] == ipaddress.IPv6Address(HOA).packed
    m = ba[MIP6MH_BA]
    assert (m.status, m.seq, m.mhtime, m.mhtype) == (0, 9, 50, 6)
    assert m.flags.K
    assert [type(o) for o in m.options[:2]] == [MIP6OptIPv4AddrAck, MIP6OptNATDetection]
    assert bytes(IPv6(raw)) == raw
    ba0 = build_ba(HA, COA, HOA, 9, 200, status=135, k=False)
    assert ba0[MIP6MH_BA].status == 135 and not ba0[MIP6MH_BA].flags.K


def test_builders_refuse_bad_arguments():
    with pytest.raises(LocalProtocolError):
        build_bu(HOA, COA, HA, 1, 401)  # not a multiple of 4 s
    with pytest.raises(LocalProtocolError):
        build_bu(HOA, COA, HA, 0x10000, 400)
    with pytest.raises(LocalProtocolError):
        build_ba(HA, COA, HOA, 1, 400, status=256)


# -- MH checksum ---------------------------------------------------------------------------


def test_bu_checksum_uses_hao_home_address_as_source():
    bu = build_bu(HOA, COA, HA, 7, 400, options=[MIP6OptIPv4CareOfAddress(coa=V4COA)])
    mh = _mh(bu)
    stored = struct.unpack("!H", mh[4:6])[0]
    assert stored == _ref_checksum(HOA, HA, mh)
    assert stored != _ref_checksum(COA, HA, mh)  # the CoA would be the wrong source
    assert mh_checksum(bytes(bu)) == stored
    assert verify_mh_checksum(bu)


def test_ba_checksum_uses_rh2_home_address_as_destination():
    ba = build_ba(HA, COA, HOA, 7, 400, options=[MIP6OptNATDetection(refresh=20)])
    mh = _mh(ba)
    stored = struct.unpack("!H", mh[4:6])[0]
    assert stored == _ref_checksum(HA, HOA, mh)
    assert stored != _ref_checksum(HA, COA, mh)
    assert verify_mh_checksum(bytes(ba))


def test_checksum_over_hand_written_packet_and_wrong_checksum_detected():
    # Built by hand with scapy's classes only, our checksum field set explicitly.
    mh = MIP6MH_BU_DSMIP6(seq=42, F=1, mhtime=10, cksum=0,
                          options=[MIP6OptIPv4HomeAddress(hoa="10.0.0.1")])
    pkt = IPv6(src=COA, dst=HA) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)]) / mh
    raw = bytearray(bytes(pkt))
    off = 40 + 24  # IPv6 + 24-byte destination options header
    assert raw[off + 2] == 5
    good = _ref_checksum(HOA, HA, bytes(raw[off:]))
    assert mh_checksum(bytes(raw)) == good
    assert not verify_mh_checksum(bytes(raw))  # field still 0
    raw[off + 4 : off + 6] = struct.pack("!H", good)
    assert verify_mh_checksum(bytes(raw))
    wrong = bytearray(raw)
    wrong[off + 4 : off + 6] = struct.pack("!H", good ^ 0x0100)
    assert not verify_mh_checksum(bytes(wrong))
    tampered = bytearray(raw)
    tampered[off + 7] ^= 0x01  # sequence number changed after the checksum
    assert not verify_mh_checksum(bytes(tampered))
    swapped = bytearray(raw)  # a different home address in the HAO
    swapped[40 + 8 + 15] ^= 0x01
    assert not verify_mh_checksum(bytes(swapped))


def test_checksum_of_truncated_packet_is_malformed():
    raw = bytes(build_bu(HOA, COA, HA, 7, 400))
    with pytest.raises(MalformedPacket):
        mh_checksum(raw[:-8])
    with pytest.raises(MalformedPacket):
        verify_mh_checksum(bytes(IPv6(src=HOA, dst=HA) / UDP()))


# -- DSMIP6 over IPv4/UDP 4191 ---------------------------------------------------------


def test_dsmip6_bu_encapsulation_and_decapsulation():
    pkt = build_dsmip6_bu(HOA, HA, V4COA, HA_V4, 8, 400, ipv4_hoa="0.0.0.0", f=True)
    assert (pkt[IP].src, pkt[IP].dst, pkt[IP].proto) == (V4COA, HA_V4, 17)
    assert pkt[UDP].dport == 4191
    raw = bytes(pkt)
    inner_raw = raw[28:]
    assert inner_raw[0] >> 4 == 6
    inner = decapsulate_udp4(raw)
    assert isinstance(inner, IPv6)
    assert bytes(inner) == inner_raw
    # RFC 5555 §4.1: inner src is the IPv6 HoA, no HAO; CoA in the IPv4 CoA option.
    assert (inner.src, inner.dst, inner.nh) == (HOA, HA, 135)
    bu = inner[MIP6MH_BU_DSMIP6]
    assert bu.F == 1
    kinds = [type(o) for o in bu.options if o.otype not in (0, 1)]
    assert kinds == [MIP6OptIPv4HomeAddress, MIP6OptIPv4CareOfAddress]
    assert bu.options[1].coa == V4COA and bu.options[0].hoa == "0.0.0.0"
    assert _ref_checksum(HOA, HA, bytes(bu)) == bu.cksum
    # scapy dissects UDP 4191 into the inner packet too (bind_layers)
    assert IP(raw)[MIP6MH_BU].seq == 8


def test_encapsulate_ba_and_ipv4_inner():
    ba = build_ba(HA, None, HOA, 8, 400, options=[MIP6OptNATDetection(F=1, refresh=15)])
    assert IPv6ExtHdrRouting not in ba and (ba.src, ba.dst) == (HA, HOA)
    out = encapsulate_udp4(ba, HA_V4, "203.0.113.7", sport=4191, dport=61000)
    assert bytes(decapsulate_udp4(out)) == bytes(ba)
    v4 = IP(src="10.9.0.7", dst="10.1.1.1") / UDP(sport=1, dport=2) / b"x"
    back = decapsulate_udp4(encapsulate_udp4(v4, V4COA, HA_V4))
    assert isinstance(back, IP) and bytes(back) == bytes(v4)


def test_decapsulate_rejects_non_dsmip6():
    ba = build_ba(HA, None, HOA, 8, 400)
    good = bytes(encapsulate_udp4(ba, V4COA, HA_V4))
    with pytest.raises(MalformedPacket, match="port"):
        decapsulate_udp4(bytes(IP(src=V4COA, dst=HA_V4) / UDP(sport=5, dport=6) / ba))
    with pytest.raises(MalformedPacket, match="UDP"):
        decapsulate_udp4(bytes(IP(src=V4COA, dst=HA_V4, proto=6) / bytes(ba)))
    bad_version = bytearray(good)
    bad_version[28] = 0x50
    with pytest.raises(MalformedPacket, match="version"):
        decapsulate_udp4(bytes(bad_version))
    with pytest.raises(MalformedPacket):
        decapsulate_udp4(good[:40])  # truncated: IPv4 total length exceeds the bytes
    with pytest.raises(MalformedPacket):
        decapsulate_udp4(bytes(ba))  # IPv6, not IPv4


# -- tshark: every RFC 5555 option by name, the F flag, no malformed packet ---------------


def _capture(tmp_path):
    frames = [
        # 1: DSMIP6 BU from an IPv4 network: IPv4 HoA (request) + IPv4 CoA, F=1
        ETH / build_dsmip6_bu(HOA, HA, V4COA, HA_V4, 8, 400,
                                  ipv4_hoa="10.9.0.7", ipv4_plen=24, f=True),
        # 2: DSMIP6 BA: IPv4 Address Ack + NAT Detection
        ETH / encapsulate_udp4(
            build_ba(HA, None, HOA, 8, 400, options=[
                MIP6OptIPv4AddrAck(status=0, plen=24, hoa="10.9.0.7"),
                MIP6OptNATDetection(F=1, refresh=110)]),
            HA_V4, V4COA),
        # 3: native IPv6 BU with HAO, F=0, IPv4 HoA option with P flag
        ETH / build_bu(HOA, COA, HA, 9, 400, f=False, options=[
            MIP6OptIPv4HomeAddress(hoa="0.0.0.0", plen=16, P=1)]),
        # 4: native IPv6 BA with RH2, a failure status in the IPv4 Address Ack
        ETH / build_ba(HA, COA, HOA, 9, 400, options=[
            MIP6OptIPv4AddrAck(status=132, plen=0, hoa="0.0.0.0")]),
    ]
    path = tmp_path / "dsmip6.pcap"
    wrpcap(str(path), frames)
    return path


def test_tshark_dissects_every_rfc5555_option_and_f_flag(tmp_path):
    require_tool("tshark", why="to dissect the DSMIP6 capture")
    path = _capture(tmp_path)
    report = check_capture(path, decode_as=DECODE)
    assert report.frames == 4
    assert report.frame_protocols == (
        "eth:ethertype:ip:udp:ipv6:mipv6",
        "eth:ethertype:ip:udp:ipv6:mipv6",
        "eth:ethertype:ipv6:ipv6.dstopts:mipv6",
        "eth:ethertype:ipv6:ipv6.routing:mipv6",
    )

    fields = [
        "mip6.mhtype", "mip6.bu.f_flag", "mip6.bu.a_flag", "mip6.bu.k_flag",
        "mip6.ipv4ha.ha", "mip6.ipv4ha.preflen", "mip6.ipv4ha.p_flag",
        "mip6.ipv4aa.sts", "mip6.natd.f_flag", "mip6.natd.refresh_t",
        "mip6.ipv4coa.addr", "ipv6.opt.mipv6.home_address", "ipv6.routing.type",
        "ipv6.src", "udp.dstport",
    ]
    rows = tshark_fields(path, fields, decode_as=DECODE)
    bu4, ba4, bu6, ba6 = rows
    assert bu4["mip6.mhtype"] == ["5"] and bu4["udp.dstport"] == ["4191"]
    assert bu4["mip6.bu.f_flag"] == ["1"] and bu4["mip6.bu.a_flag"] == ["1"]
    assert bu4["mip6.ipv4ha.ha"] == ["10.9.0.7"] and bu4["mip6.ipv4ha.preflen"] == ["24"]
    assert bu4["mip6.ipv4ha.p_flag"] == ["0"]
    assert bu4["mip6.ipv4coa.addr"] == [V4COA]
    assert bu4["ipv6.src"] == [HOA]
    assert ba4["mip6.mhtype"] == ["6"]
    assert ba4["mip6.ipv4aa.sts"] == ["0"]
    assert ba4["mip6.natd.f_flag"] == ["1"] and ba4["mip6.natd.refresh_t"] == ["110"]
    assert bu6["mip6.bu.f_flag"] == ["0"] and bu6["mip6.bu.k_flag"] == ["1"]
    assert bu6["ipv6.opt.mipv6.home_address"] == [HOA]
    assert bu6["mip6.ipv4ha.p_flag"] == ["1"] and bu6["mip6.ipv4ha.preflen"] == ["16"]
    assert ba6["ipv6.routing.type"] == ["2"] and ba6["mip6.ipv4aa.sts"] == ["132"]

    # The option subtrees by name, per frame.
    for name, frames in [
        ("mip6.options.ipv4ha", ["1", "3"]),
        ("mip6.options.ipv4aa", ["2", "4"]),
        ("mip6.options.natd", ["2"]),
        ("mip6.options.ipv4coa", ["1"]),
    ]:
        seen = tshark_fields(path, ["frame.number"], display_filter=name, decode_as=DECODE)
        assert [r["frame.number"][0] for r in seen] == frames, name
    # tshark does not verify the MH checksum (interop notes): ours must hold on every frame
    from scapy.utils import rdpcap

    for frame in rdpcap(str(path)):
        inner = decapsulate_udp4(frame) if IP in frame else frame[IPv6]
        assert verify_mh_checksum(inner)


# -- the strict validator ------------------------------------------------------------------


def test_validator_accepts_built_messages():
    bu = build_dsmip6_bu(HOA, HA, V4COA, HA_V4, 1, 400, ipv4_hoa="0.0.0.0")
    found = validate_mobility_header(_mh(bu))
    assert [(o.type, o.offset) for o in found] == [(29, 12), (32, 20)]
    assert found[1].data == bytes([0, 0, 192, 0, 2, 5])
    ba = build_ba(HA, COA, HOA, 1, 400, options=[MIP6OptIPv4AddrAck(), MIP6OptNATDetection()])
    assert [o.type for o in validate_mobility_header(_mh(ba))] == [30, 31]


@pytest.mark.parametrize(
    ("options", "start", "reason"),
    [
        (bytes([29, 4, 0x80, 0, 10, 0, 1, 2, 0, 0, 0, 0]), 12, "length 4, expected 6"),
        (bytes([32, 8, 0, 0, 1, 2, 3, 4, 0, 0]) + b"\x00" * 2, 12, "expected 6"),
        (bytes([0, 0, 31, 6, 0, 0, 0, 0, 0, 1, 0, 0]), 12, "alignment 4n"),
        (bytes([1, 0, 30, 6, 0, 0, 0, 0, 0, 0, 0, 0]), 12, "alignment 4n"),
        (bytes([30, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 29]), 12, "truncated"),
        (bytes([30, 6, 0, 0, 0, 0, 0, 0, 1, 4, 0, 0]), 12, "runs past"),
        (bytes([30, 6, 0, 0, 0, 0, 0, 0]), 12, "not a multiple of 8"),
        (bytes([3, 16]) + b"\x00" * 16 + b"\x00" * 2, 12, "alignment 8n\\+6"),
    ],
)
def test_validator_rejects_malformed_options(options, start, reason):
    with pytest.raises(MalformedPacket, match=reason):
        validate_mobility_options(options, start)


def test_validator_rejects_malformed_headers_and_unknown_types_pass():
    good = bytearray(_mh(build_bu(HOA, COA, HA, 1, 400,
                                  options=[MIP6OptIPv4CareOfAddress(coa=V4COA)])))
    assert [o.type for o in validate_mobility_header(bytes(good))] == [32]
    with pytest.raises(MalformedPacket, match="length field"):
        validate_mobility_header(bytes(good[:-8]))
    proto = bytearray(good)
    proto[0] = 6
    with pytest.raises(MalformedPacket, match="payload proto"):
        validate_mobility_header(bytes(proto))
    with pytest.raises(MalformedPacket, match="truncated"):
        validate_mobility_header(bytes(good[:6]))
    bad_len = bytearray(good)
    bad_len[13] = 7  # IPv4 CoA option length 6 -> 7
    with pytest.raises(MalformedPacket):
        validate_mobility_header(bytes(bad_len))
    # An unknown option type (200) with a consistent length is kept, not refused.
    unknown = bytes([200, 2, 0xAA, 0xBB])
    found = validate_mobility_options(unknown, 12)
    assert [(o.type, o.offset, o.data) for o in found] == [(200, 12, b"\xaa\xbb")]


# -- fuzz ------------------------------------------------------------------------------------

_DSMIP6 = st.one_of(
    st.builds(MIP6OptIPv4HomeAddress, plen=st.integers(1, 32), P=st.integers(0, 1),
              hoa=st.ip_addresses(v=4).map(str)),
    st.builds(MIP6OptIPv4AddrAck, status=st.integers(0, 255), plen=st.integers(0, 32),
              hoa=st.ip_addresses(v=4).map(str)),
    st.builds(MIP6OptNATDetection, F=st.integers(0, 1), refresh=st.integers(0, 2**32 - 1)),
    st.builds(MIP6OptIPv4CareOfAddress, coa=st.ip_addresses(v=4).map(str)),
    st.builds(MIP6OptAltCoA, acoa=st.ip_addresses(v=6).map(str)),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_DSMIP6, max_size=5), st.data())
def test_fuzz_validator(options, data):
    mh = bytes(MIP6MH_BU_DSMIP6(seq=1, options=options))
    area = mh[12:]
    found = validate_mobility_options(area, 12)
    assert [o.type for o in found] == [o.otype for o in options]
    for o in found:
        assert o.offset % (8 if o.type == 3 else 4) == (6 if o.type == 3 else 0)

    # Any corruption of one option's length byte must be refused.
    if found:
        victim = data.draw(st.sampled_from(found))
        new_len = data.draw(st.integers(0, 255).filter(lambda n: n != len(victim.data)))
        broken = bytearray(area)
        broken[victim.offset - 12 + 1] = new_len
        with pytest.raises(MalformedPacket):
            validate_mobility_options(bytes(broken), 12)

    # Arbitrary bytes: either MalformedPacket or a result that obeys the rules.
    junk = data.draw(st.binary(max_size=40))
    try:
        result = validate_mobility_options(junk, 12)
    except MalformedPacket:
        return
    assert (12 + len(junk)) % 8 == 0
    for o in result:
        assert o.offset + 2 + len(o.data) <= 12 + len(junk)
        if o.type in (29, 30, 31, 32):
            assert len(o.data) == 6 and o.offset % 4 == 0
