"""tshark as the oracle: clean captures pass, malformed ones raise CaptureCheckError."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import HAO, IPv6, ICMPv6EchoRequest, IPv6ExtHdrDestOpt, MIP6MH_BU
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from mip6lab.testing.prereq import require_tool
from mip6lab.testing.tshark import (
    CaptureCheckError,
    CaptureReport,
    TsharkError,
    check_capture,
    tshark_fields,
)

pytestmark = pytest.mark.tshark

MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


@pytest.fixture(autouse=True)
def _tshark():
    require_tool("tshark", "dissecting captures")


def _write(tmp_path, name, packets):
    path = tmp_path / name
    wrpcap(str(path), packets)
    return path


def _good_packets():
    return [
        Ether(**MACS) / IPv6(src="2001:db8:1::1", dst="2001:db8:1::2")
        / ICMPv6EchoRequest(id=7, seq=1, data=b"mip6lab"),
        Ether(**MACS) / IP(src="192.0.2.1", dst="192.0.2.2")
        / UDP(sport=40000, dport=40001) / Raw(b"hello"),
    ]


def test_good_capture_passes_and_reports(tmp_path):
    report = check_capture(_write(tmp_path, "good.pcap", _good_packets()))
    assert isinstance(report, CaptureReport)
    assert report.frames == 2
    assert {"eth", "ipv6", "icmpv6", "ip", "udp"} <= report.protocols
    assert report.frame_protocols[0].endswith("ipv6:icmpv6:data")
    assert report.problems == ()


def test_pcapng_is_read_too(tmp_path):
    from scapy.utils import PcapNgWriter

    path = tmp_path / "good.pcapng"
    with PcapNgWriter(str(path)) as writer:
        for pkt in _good_packets():
            writer.write(pkt)
    assert check_capture(path).frames == 2


def test_empty_capture_has_no_frames(tmp_path):
    assert check_capture(_write(tmp_path, "empty.pcap", [])).frames == 0


def test_wrong_udp_checksum_fails(tmp_path):
    bad = _good_packets()
    bad[1][UDP].chksum = 0x1234
    with pytest.raises(CaptureCheckError) as info:
        check_capture(_write(tmp_path, "badudp.pcap", bad))
    [problem] = info.value.problems
    assert problem.frame == 2 and problem.group == "checksum"
    assert "frame 2" in str(info.value)


@pytest.mark.parametrize("layer", [ICMPv6EchoRequest, ICMP])
def test_wrong_icmp_checksum_fails_although_tshark_says_warning(tmp_path, layer):
    if layer is ICMP:
        pkt = Ether(**MACS) / IP(src="192.0.2.1", dst="192.0.2.2") / ICMP(chksum=1)
    else:
        pkt = _good_packets()[0]
        pkt[ICMPv6EchoRequest].cksum = 1
    with pytest.raises(CaptureCheckError) as info:
        check_capture(_write(tmp_path, "badicmp.pcap", [pkt]), fail_on="error")
    assert info.value.problems[0].severity == "warning"


def test_ipv4_header_checksum_is_checked(tmp_path):
    pkt = _good_packets()[1]
    pkt[IP].chksum = 1
    with pytest.raises(CaptureCheckError):
        check_capture(_write(tmp_path, "badip.pcap", [pkt]))


def test_ipv6_payload_length_beyond_data(tmp_path):
    wire = bytes(_good_packets()[0])
    pkt = Ether(wire)
    pkt[IPv6].plen = 200  # more than the 15 bytes that follow
    path = _write(tmp_path, "plen.pcap", [pkt])
    with pytest.raises(CaptureCheckError) as info:
        check_capture(path)
    assert "payload length" in info.value.problems[0].message
    # tshark rates it a warning: with fail_on="error" it is reported, not fatal.
    report = check_capture(path, fail_on="error")
    assert report.problems and report.problems[0].severity == "warning"


def test_udp_length_beyond_ip_payload_is_malformed(tmp_path):
    pkt = Ether(bytes(Ether(**MACS) / IP(src="192.0.2.1", dst="192.0.2.2")
                      / UDP(sport=40000, dport=40001, len=60) / Raw(b"x")))
    with pytest.raises(CaptureCheckError) as info:
        check_capture(_write(tmp_path, "udplen.pcap", [pkt]), fail_on="error")
    assert any(p.group == "malformed" for p in info.value.problems)


def test_truncated_file_fails_on_tshark_exit_status(tmp_path):
    path = _write(tmp_path, "cut.pcap", _good_packets())
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CaptureCheckError) as info:
        check_capture(path)
    assert info.value.returncode != 0


def test_unknown_preference_is_an_error_not_a_silent_pass(tmp_path):
    path = _write(tmp_path, "good.pcap", _good_packets())
    with pytest.raises(CaptureCheckError):
        check_capture(path, options=["udp.no_such_pref:TRUE"])


def test_fields_and_decode_as_for_dsmip6(tmp_path):
    bu = (
        Ether(**MACS) / IP(src="192.0.2.10", dst="198.51.100.1")
        / UDP(sport=4191, dport=4191)
        / IPv6(src="2001:db8:1::100", dst="2001:db8:1::1")
        / IPv6ExtHdrDestOpt(options=[HAO(hoa="2001:db8:1::100")])
        / MIP6MH_BU(seq=42, mhtime=60)
    )
    path = _write(tmp_path, "dsmip6.pcap", _good_packets() + [bu])

    # Without -d nothing dissects UDP 4191 as IPv6.
    plain = tshark_fields(path, ["frame.number", "mip6.bu.seqnr"])
    assert [f["mip6.bu.seqnr"] for f in plain] == [[], [], []]

    rows = tshark_fields(
        path,
        ["ip.src", "ipv6.src", "mip6.bu.seqnr"],
        display_filter="mipv6",  # protocol "mipv6", fields "mip6.*"
        decode_as=["udp.port==4191,ipv6"],
    )
    assert rows == [{"ip.src": ["192.0.2.10"], "ipv6.src": ["2001:db8:1::100"],
                     "mip6.bu.seqnr": ["42"]}]
    report = check_capture(path, decode_as=["udp.port==4191,ipv6"])
    assert "mipv6" in report.protocols


def test_unknown_field_raises(tmp_path):
    path = _write(tmp_path, "good.pcap", _good_packets())
    with pytest.raises(TsharkError):
        tshark_fields(path, ["no.such.field"])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        check_capture(tmp_path / "nope.pcap")
