"""RFC 4285 / RFC 4283 on the wire: the three options through scapy, the authenticator
of RFC 4285 §5.1 computed again here from the RFC's field list, the placement rules,
and tshark's dissection of an auth-option registration by field name.

The known-answer tests build "care-of address | home address | MH Data" byte by byte
with struct (RFC 6275 §6.1.7's BU fields, RFC 4283 §3's and RFC 4285 §5-6's option
layouts, the padding their alignments need) and run hmac/hashlib over it; nothing of
mip6lab's wire code is used to make the expected value.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet6 import (IPv6, MIP6MH_BA, MIP6MH_BU, MIP6OptMNID, MIP6OptMsgAuth,
                                MIP6OptReplayProtection)

from mip6lab.errors import MalformedPacket
from mip6lab.testing.prereq import require_tool
from mip6lab.testing.tshark import check_capture, tshark_fields
from mip6lab.wire.auth import (MIP6OptMobilityAuth, MIP6OptReplayProtectionNTP,
                               add_authentication, authenticator, ntp_seconds,
                               ntp_timestamp, read_authentication)
from mip6lab.wire.mip6 import (build_ba, build_bu, validate_mobility_options,
                               verify_mh_checksum)

REPO = Path(__file__).resolve().parents[1]
KEY = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
COA, HOA, HA = "2001:db8:a1::5", "2001:db8:0:1::1001", "2001:db8:0:1::2"
NAI = "mn1@mip6lab.example"
SPI = 0x00004285
TIMESTAMP = 0xCE17_7A80_1234_5678      # 2009-07-27 00:00:00 UTC + a fraction


def signer(key: bytes):
    return lambda data: hmac.new(key, data, hashlib.sha1).digest()[:12]


def expected_bu_mobility_data(seq: int, lifetime_units: int, flags: int) -> bytes:
    """RFC 4285 §5.1's Mobility Data of a BU, by hand: CoA | HoA | MH up to the SPI."""
    nai = NAI.encode()
    mn_id = struct.pack("!BBB", 8, 1 + len(nai), 1) + nai            # RFC 4283 §3
    # the MH is 12 bytes of BU, then the MN-ID at 12 (no alignment)
    at = 12 + len(mn_id)
    pad_replay = (2 - at) % 8                                          # 8n+2
    replay = struct.pack("!BBQ", 10, 8, TIMESTAMP)
    at += pad_replay + len(replay)
    pad_auth = (1 - at) % 4                                            # 4n+1
    auth_head = struct.pack("!BBBI", 9, 5 + 12, 1, SPI)               # through the SPI
    at += pad_auth + len(auth_head) + 12
    trailing = (-at) % 8
    mh_len_units = (at + trailing) // 8 - 1

    def pad(n: int) -> bytes:
        return b"" if n == 0 else b"\x00" if n == 1 else bytes([1, n - 2]) + bytes(n - 2)

    header = struct.pack("!BBBBHHHH", 59, mh_len_units, 5, 0, 0, seq, flags, lifetime_units)
    mh_to_spi = header + mn_id + pad(pad_replay) + replay + pad(pad_auth) + auth_head
    return (ipaddress.IPv6Address(COA).packed + ipaddress.IPv6Address(HOA).packed
            + mh_to_spi)


def signed_bu(seq: int = 7, key: bytes = KEY):
    bu = build_bu(HOA, COA, HA, seq, 60, k=False)
    return add_authentication(bu, SPI, signer(key), nai=NAI, timestamp=TIMESTAMP)


# -- known answers (RFC 4285 §5.1) ---------------------------------------------------------


def test_bu_authenticator_is_hmac_sha1_96_over_the_rfc_field_list():
    packet = signed_bu()
    data = expected_bu_mobility_data(7, 15, 0xC000)       # A and H set, K clear; 60 s
    expected = hmac.new(KEY, data, hashlib.sha1).digest()[:12]
    bu = packet[MIP6MH_BU]
    [auth] = [o for o in bu.options if isinstance(o, MIP6OptMsgAuth)]
    assert auth.authdata == expected
    assert auth.mspi == SPI and auth.subtype == 1 and auth.olen == 17
    # the library's own function agrees, from the MH bytes and the SPI's end
    mh = bytes(bu)
    assert authenticator(KEY, COA, HOA, mh, len(data) - 32) == expected
    # the MH up to the SPI is exactly the hand-built one, checksum aside
    assert mh[:4] + b"\x00\x00" + mh[6:len(data) - 32] == data[32:]
    assert verify_mh_checksum(bytes(packet))


def test_a_known_answer_written_down():
    """The Mobility Data and authenticator of that BU as literal bytes (checked once by
    hand against RFC 4285 §5.1's list: CoA, HoA, then the MH with checksum 0 -- the MN-ID
    at 12, the replay option at 34 = 8n+2, a Pad1, the MN-HA option at 45 = 4n+1 -- up
    to the SPI 0x00004285), so that a change in the hand-built helper shows too."""
    data = bytes.fromhex(
        "20010db800a100000000000000000005" "20010db8000000010000000000001001"
        "3b07050000000007c000000f" "0814016d6e31406d6970366c61622e6578616d706c65"
        "0a08ce177a8012345678" "00" "09110100004285")
    assert expected_bu_mobility_data(7, 15, 0xC000) == data
    assert hmac.new(KEY, data, hashlib.sha1).digest()[:12].hex() == "84546114efcafc16357df8ab"
    assert signed_bu()[MIP6MH_BU].options[-1].authdata.hex() == "84546114efcafc16357df8ab"


def test_checksum_is_zero_in_the_mobility_data_and_the_key_matters():
    packet = signed_bu()
    auth = read_authentication(bytes(packet))
    assert auth.mobility_data()[32 + 4:32 + 6] == b"\x00\x00"
    assert bytes(packet[MIP6MH_BU])[4:6] != b"\x00\x00"        # the real one is set
    other = signed_bu(key=bytes(16))
    assert read_authentication(bytes(other)).authenticator != auth.authenticator


def test_ba_authenticator_uses_the_destination_coa_and_the_rh2_hoa():
    ba = build_ba(HA, COA, HOA, 7, 60, status=0, k=False)
    packet = add_authentication(ba, SPI, signer(KEY), nai=NAI, timestamp=TIMESTAMP)
    found = read_authentication(bytes(packet))
    assert (str(found.care_of_address), str(found.home_address)) == (COA, HOA)
    assert found.mh_type == 6 and found.sequence_number == 7
    mh = bytes(packet[MIP6MH_BA])
    data = (ipaddress.IPv6Address(COA).packed + ipaddress.IPv6Address(HOA).packed
            + mh[:4] + b"\x00\x00" + mh[6:found.spi_end])
    assert found.authenticator == hmac.new(KEY, data, hashlib.sha1).digest()[:12]
    assert verify_mh_checksum(bytes(packet))


def test_deregistration_from_home_has_coa_equal_to_hoa():
    bu = build_bu(HOA, None, HA, 9, 0, k=False)       # from the HoA, no HAO (§11.5.5)
    packet = add_authentication(bu, SPI, signer(KEY), nai=NAI, timestamp=TIMESTAMP)
    found = read_authentication(bytes(packet))
    assert found.care_of_address == found.home_address == ipaddress.IPv6Address(HOA)


# -- the options through scapy -----------------------------------------------------------


@pytest.mark.parametrize("option, raw", [
    (MIP6OptMNID(subtype=1, id=NAI.encode()),
     bytes([8, 1 + len(NAI), 1]) + NAI.encode()),
    (MIP6OptMobilityAuth(mspi=SPI, authdata=bytes(range(12))),
     bytes([9, 17, 1]) + SPI.to_bytes(4, "big") + bytes(range(12))),
    (MIP6OptReplayProtectionNTP(timestamp=TIMESTAMP),
     bytes([10, 8]) + TIMESTAMP.to_bytes(8, "big")),
])
def test_each_option_round_trips_through_scapy(option, raw):
    assert bytes(option) == raw
    bu = build_bu(HOA, COA, HA, 1, 60, options=[option])
    again = IPv6(bytes(bu))[MIP6MH_BU]
    [found] = [o for o in again.options if o.otype == raw[0]]
    assert type(found) is type(option)
    assert bytes(found) == raw
    assert found.fields == option.__class__(raw).fields


def test_the_replaced_classes_still_answer_to_scapys_names():
    packet = IPv6(bytes(signed_bu()))
    options = packet[MIP6MH_BU].options
    assert any(isinstance(o, MIP6OptMsgAuth) for o in options)
    assert any(isinstance(o, MIP6OptReplayProtection) for o in options)
    assert MIP6OptMsgAuth in packet and MIP6OptReplayProtection in packet


def test_alignment_of_the_options_in_a_signed_bu():
    mh = bytes(signed_bu()[MIP6MH_BU])
    found = {o.type: o.offset for o in validate_mobility_options(mh[12:], 12)}
    assert found[10] % 8 == 2 and found[9] % 4 == 1 and len(mh) % 8 == 0
    assert list(found) == [8, 10, 9]             # MN-ID, replay, authentication last


def test_ntp_timestamp_and_its_display():
    assert ntp_timestamp(3_457_641_600) >> 32 == 3_457_641_600
    assert ntp_timestamp(1.5) == (1 << 32) | (1 << 31)
    assert ntp_seconds(ntp_timestamp(12.25)) == 12.25
    shown = MIP6OptReplayProtectionNTP(timestamp=3_457_641_600 << 32).show2(dump=True)
    assert "2009-07-27 00:00:00" in shown


# -- placement and lengths refused ---------------------------------------------------------


def build_with(options):
    return bytes(build_bu(HOA, COA, HA, 1, 60, options=options))


@pytest.mark.parametrize("options, words", [
    ([MIP6OptMobilityAuth(mspi=SPI), MIP6OptMNID(id=b"x@y")], "not the last"),
    ([MIP6OptMobilityAuth(mspi=SPI), MIP6OptMobilityAuth(mspi=SPI)], "2 mobility message"),
    ([MIP6OptMobilityAuth(subtype=2, mspi=SPI)], "MN-AAA"),
    ([MIP6OptMobilityAuth(mspi=SPI, authdata=b"short")], "not 12"),
    ([MIP6OptMNID(subtype=2, id=b"opaque"), MIP6OptMobilityAuth(mspi=SPI)], "NAI subtype"),
    ([MIP6OptReplayProtectionNTP(), MIP6OptReplayProtectionNTP(),
      MIP6OptMobilityAuth(mspi=SPI)], "more than one replay"),
])
def test_bad_placement_is_a_typed_error(options, words):
    with pytest.raises(MalformedPacket, match=words):
        read_authentication(build_with(options))


def test_misaligned_replay_option_is_malformed():
    # the replay option right at offset 12 of a BU (12 = 8n+4), then PadN to 24
    area = bytes([10, 8]) + (1).to_bytes(8, "big") + bytes([1, 0])
    with pytest.raises(MalformedPacket, match="alignment 8n\\+2"):
        validate_mobility_options(area, 12)
    # shifted by a PadN of 6 it is at 18 = 8n+2, and accepted
    assert [o.type for o in validate_mobility_options(bytes([1, 4, 0, 0, 0, 0]) + area[:10]
                                                      + bytes([1, 2, 0, 0]), 12)] == [10]


def test_no_authentication_option_reads_as_none():
    assert read_authentication(build_with([MIP6OptMNID(id=b"a@b")])) is None


# -- tshark (DESIGN rule 5) ----------------------------------------------------------------

AUTH_FIELDS = ["frame.number", "mip6.mhtype", "mip6.bu.seqnr", "mip6.ba.seqnr",
               "mip6.ba.status", "mip6.mnid.subtype", "mip6.mnid.identifier",
               "mip6.auth.subtype", "mip6.auth.mobility_spi", "mip6.auth.auth_data",
               "mip6.mseg_id.timestamp", "ipv6.src", "ipv6.dst"]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    require_tool("tshark", "to dissect the auth-option capture")
    tmp = tmp_path_factory.mktemp("auth-option")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    pcap = tmp / "all.pcapng"
    proc = subprocess.run(
        [sys.executable, "-m", "mip6lab", "scenario", "run", "return-home", "--json",
         "--pcap", str(pcap), "--set", "security=auth-option"],
        capture_output=True, text=True, env=env, cwd=tmp, timeout=180)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True
    return pcap, report


def test_tshark_dissects_the_auth_option_bu_and_ba_by_name(capture):
    pcap, _report = capture
    check = check_capture(pcap)                 # no malformed frame, no warning
    assert check.frames > 0 and "mipv6" in check.protocols
    rows = tshark_fields(pcap, AUTH_FIELDS, "mipv6")
    bus = [r for r in rows if r["mip6.mhtype"] == ["5"]]
    bas = [r for r in rows if r["mip6.mhtype"] == ["6"]]
    # three registrations (visit1, visit2, home), each BU answered
    assert len(bus) >= 3 and len(bas) >= 3
    for row in bus + bas:
        assert row["mip6.mnid.subtype"] == ["1"]
        assert row["mip6.mnid.identifier"] == ["mn1@mip6lab.example"]
        assert row["mip6.auth.subtype"] == ["1"]
        assert row["mip6.auth.mobility_spi"] == [str(0x4285)]
        # tshark 4.0 shows Option Length - 7 bytes of Authentication Data (10 of the 12
        # that RFC 4285 §5's Option Length of 17 counts); the bytes it shows are ours
        assert len(row["mip6.auth.auth_data"][0].replace(":", "")) in (20, 24)
        # the lab clock starts 2009-07-27 (NTP era 0, RFC 1305); tshark 4.0 reads the
        # high 32 bits from 1970 instead of 1900, hence 2079 -- 70 years on, same seconds
        assert row["mip6.mseg_id.timestamp"][0].startswith(("Jul 27, 2009", "Jul 27, 2079"))
    assert {r["mip6.ba.status"][0] for r in bas} == {"0"}
    # each BA's timestamp is its BU's (RFC 4285 §6: copied when valid)
    bu_times = {r["mip6.bu.seqnr"][0]: r["mip6.mseg_id.timestamp"][0] for r in bus}
    for ba in bas:
        assert ba["mip6.mseg_id.timestamp"][0] == bu_times[ba["mip6.ba.seqnr"][0]]


def test_tshark_sees_no_malformed_frame_and_the_authenticators_verify(capture):
    pcap, _report = capture
    rows = tshark_fields(pcap, ["frame.number", "_ws.malformed", "mip6.auth.auth_data"],
                         "mipv6")
    assert rows and all(not r.get("_ws.malformed") for r in rows)
    from scapy.utils import rdpcap
    frames = rdpcap(str(pcap))
    checked = 0
    for row in rows:
        frame = frames[int(row["frame.number"][0]) - 1]
        found = read_authentication(bytes(frame[IPv6]))
        expected = hmac.new(b"mip6lab-rfc4285!", found.mobility_data(),
                            hashlib.sha1).digest()[:12]
        assert found.authenticator == expected
        assert expected.hex().startswith(row["mip6.auth.auth_data"][0].replace(":", ""))
        checked += 1
    assert checked >= 6
