"""tshark as the oracle for the mobility scenarios' captures (DESIGN rule 5).

The CLI writes the capture (``--pcap``, and ``--pcap-dir`` for one file per link) and
Wireshark's key tables (``--keys``); tshark, given the keys, must decrypt every Binding
Update and Binding Acknowledgement and show them with its own Mobile IPv6 dissector --
sequence numbers, K flags, status, the Home Address option and the type 2 routing header,
and for DSMIP6 the RFC 5555 options by name inside IPv4/UDP 4191. Without the keys not
one BU or BA is visible.

Facts about tshark 4.0 these tests rely on: the protocol filter is ``mipv6`` (the fields
are ``mip6.*``); the RFC 5555 options are the protocols ``mip6.options.ipv4coa``,
``mip6.options.ipv4ha``, ``mip6.options.ipv4aa`` and ``mip6.options.natd``; UDP 4191 is
not dissected as IPv6 unless told (``-d udp.port==4191,ipv6``). The combined pcapng holds
a forwarded ESP packet once per link, which tshark reports as a repeated ESP sequence
number (an expert *warning*), so the whole-file check fails on errors only; sequence
warnings are then the only ones allowed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mip6lab.testing.prereq import require_tool
from mip6lab.testing.tshark import check_capture, tshark_fields

REPO = Path(__file__).resolve().parents[2]
DSMIP6 = ("udp.port==4191,ipv6",)
BU, BA = "5", "6"          # Mobility Header types (RFC 6275 §6.1.7, §6.1.8)
MH_FIELDS = ["frame.number", "mip6.mhtype", "mip6.bu.seqnr", "mip6.bu.k_flag",
             "mip6.bu.h_flag", "mip6.bu.a_flag", "mip6.ba.seqnr", "mip6.ba.k_flag",
             "mip6.ba.status", "ipv6.src", "ipv6.dst", "ipv6.opt.mipv6.home_address",
             "ipv6.routing.mipv6.home_address", "esp.spi", "udp.srcport", "udp.dstport"]


def run_cli(tmp: Path, name: str, *settings: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    argv = [sys.executable, "-m", "mip6lab", "scenario", "run", name, "--json",
            "--pcap", str(tmp / "all.pcapng"), "--pcap-dir", str(tmp / "links"),
            "--keys", str(tmp / "keys")]
    for setting in settings:
        argv += ["--set", setting]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True, report["result"]
    return report


@pytest.fixture(scope="module")
def handover(tmp_path_factory):
    require_tool("tshark", "to dissect the mobility captures")
    tmp = tmp_path_factory.mktemp("handover")
    return tmp, run_cli(tmp, "handover", "k_bit=1")


@pytest.fixture(scope="module")
def dsmip6_v4(tmp_path_factory):
    require_tool("tshark", "to dissect the mobility captures")
    tmp = tmp_path_factory.mktemp("dsmip6-v4")
    return tmp, run_cli(tmp, "dsmip6-v4")


def only_sequence_warnings(report) -> None:
    others = [p for p in report.problems if p.group != "sequence"]
    assert others == [], [str(p) for p in others]


def mobility_rows(pcap, keys, decode_as=()):
    rows = tshark_fields(pcap, MH_FIELDS, "mipv6", decode_as, keys_dir=keys)
    return ([r for r in rows if r["mip6.mhtype"] == [BU]],
            [r for r in rows if r["mip6.mhtype"] == [BA]])


# -- handover, K=1 ----------------------------------------------------------------------------


def test_handover_capture_dissects_cleanly(handover):
    tmp, report = handover
    assert report["pcap"]["frames"] > 1000 and (tmp / "keys" / "esp_sa").is_file()
    whole = check_capture(tmp / "all.pcapng", keys_dir=tmp / "keys", fail_on="error")
    assert {"mipv6", "esp", "isakmp"} <= whole.protocols
    only_sequence_warnings(whole)
    for path in report["pcap_dir"].values():
        per_link = check_capture(path, keys_dir=tmp / "keys", fail_on="error")
        only_sequence_warnings(per_link)
        # on one link an ESP sequence number never repeats or goes back; a gap is the
        # packet a move stranded (sent through the old router just as the MN left)
        assert all(p.message.endswith("missing") for p in per_link.problems), \
            [str(p) for p in per_link.problems]


def test_handover_every_bu_and_ba_is_decrypted_and_dissected(handover):
    tmp, report = handover
    result = report["result"]
    hoa = result["mn"]["hoa"]
    handovers = result["handovers"]
    home = Path(report["pcap_dir"]["home"])      # every BU and BA crosses the home link
    bus, bas = mobility_rows(home, tmp / "keys")
    n = sum(h["bu_sent"] for h in handovers)
    assert n == len(handovers) == 4               # no loss: one BU per registration
    assert len(bus) == len(bas) == n
    # BU: sequence numbers counting up, H, A and K set, sent from the CoA with the HoA in
    # its Home Address option (RFC 6275 §6.1.7, §11.7.1)
    assert [r["mip6.bu.seqnr"] for r in bus] == [[str(i)] for i in range(n)]
    for row, h in zip(bus, handovers):
        assert row["mip6.bu.k_flag"] == row["mip6.bu.h_flag"] == row["mip6.bu.a_flag"] == ["1"]
        assert row["ipv6.src"] == [h["coa"]]
        assert row["ipv6.opt.mipv6.home_address"] == [hoa]
    # BA: the same numbers, status 0, K set, to the CoA with the HoA in the type 2
    # routing header (§6.1.8, §10.3.1)
    assert [r["mip6.ba.seqnr"] for r in bas] == [[str(i)] for i in range(n)]
    for row, h in zip(bas, handovers):
        assert row["mip6.ba.status"] == ["0"] and row["mip6.ba.k_flag"] == ["1"]
        assert row["ipv6.dst"] == [h["coa"]]
        assert row["ipv6.routing.mipv6.home_address"] == [hoa]
    # K=1: one BU/BA SA pair from the first registration to the last
    assert len({r["esp.spi"][0] for r in bus}) == len({r["esp.spi"][0] for r in bas}) == 1


def test_handover_bus_are_invisible_without_the_keys(handover):
    tmp, report = handover
    home = Path(report["pcap_dir"]["home"])
    bus, bas = mobility_rows(home, tmp / "keys")
    spis = {int(r["esp.spi"][0], 16) for r in bus + bas}
    assert tshark_fields(home, ["frame.number"], "mipv6") == []
    # the same frames are there, as ESP that nobody can read
    esp = tshark_fields(home, ["esp.spi"], "esp")
    carrying = [r for r in esp if int(r["esp.spi"][0], 16) in spis]
    assert len(carrying) == len(bus) + len(bas)
    # nor the data on a visited link: it travels in the tunnel-mode SA (the HA forwards
    # it in the clear on the home link, as it should); with the keys it shows on the
    # link where the SAs ended (their endpoints then are the ones exported)
    last = Path(report["pcap_dir"]["visit4"])
    assert tshark_fields(last, ["frame.number"], "udp.port == 7") == []
    assert len(tshark_fields(last, ["frame.number"], "udp.port == 7",
                             keys_dir=tmp / "keys")) > 50


def test_handover_keys_decrypt_the_data_on_every_visited_link(handover):
    tmp, report = handover
    for link in ("visit1", "visit2", "visit3", "visit4"):
        path = Path(report["pcap_dir"][link])
        data = tshark_fields(path, ["frame.number"], "udp.port == 7", keys_dir=tmp / "keys")
        assert len(data) > 50, link


# -- dsmip6-v4 -------------------------------------------------------------------------------


def test_dsmip6_capture_dissects_cleanly(dsmip6_v4):
    tmp, report = dsmip6_v4
    whole = check_capture(tmp / "all.pcapng", keys_dir=tmp / "keys", decode_as=DSMIP6,
                          fail_on="error")
    assert {"mipv6", "esp", "udp", "ip", "ipv6"} <= whole.protocols
    only_sequence_warnings(whole)
    for path in report["pcap_dir"].values():
        # one file per link: nothing repeated, so warnings fail too
        check_capture(path, keys_dir=tmp / "keys", decode_as=DSMIP6)


def test_dsmip6_bu_and_ba_carry_the_rfc5555_options(dsmip6_v4):
    tmp, report = dsmip6_v4
    result = report["result"]
    v4net = Path(report["pcap_dir"]["v4net"])
    bus, bas = mobility_rows(v4net, tmp / "keys", DSMIP6)
    assert len(bus) == len(bas) == result["handovers"][0]["bu_sent"] == 1
    (bu,), (ba,) = bus, bas
    for row in (bu, ba):                      # IPv4/UDP 4191 / IPv6 / ESP / MH
        assert row["udp.srcport"] == row["udp.dstport"] == ["4191"]
        assert row["esp.spi"]
    assert bu["mip6.bu.seqnr"] == ba["mip6.ba.seqnr"] == ["0"]
    assert bu["mip6.bu.k_flag"] == ba["mip6.ba.k_flag"] == ["1"]
    assert ba["mip6.ba.status"] == ["0"]
    # from the IPv6 HoA (no HAO: the CoA is IPv4, RFC 5555 §4.1), to it without an RH2
    assert bu["ipv6.src"] == [result["mn"]["hoa"]] and bu["ipv6.opt.mipv6.home_address"] == []
    assert ba["ipv6.dst"] == [result["mn"]["hoa"]] and ba["ipv6.routing.mipv6.home_address"] == []

    def options(display_filter, fields):
        rows = tshark_fields(v4net, ["mip6.mhtype", *fields], display_filter, DSMIP6,
                             keys_dir=tmp / "keys")
        return {r["mip6.mhtype"][0]: r for r in rows}

    # BU: IPv4 Care-of Address and IPv4 Home Address 0.0.0.0 (asking for one, §3.1.1)
    coa = options("mip6.options.ipv4coa", ["mip6.ipv4coa.addr"])
    assert list(coa) == [BU] and coa[BU]["mip6.ipv4coa.addr"] == [result["mn"]["coa"]]
    hoa4 = options("mip6.options.ipv4ha", ["mip6.ipv4ha.ha"])
    assert hoa4[BU]["mip6.ipv4ha.ha"] == ["0.0.0.0"]
    # BA: IPv4 Address Acknowledgement (success, the address given) and NAT Detection
    # (no NAT: F clear, refresh all ones, RFC 5555 §3.2.2)
    ack = options("mip6.options.ipv4aa", ["mip6.ipv4aa.sts", "mip6.ipv4ha.ha"])
    assert list(ack) == [BA]
    assert ack[BA]["mip6.ipv4aa.sts"] == ["0"]
    assert ack[BA]["mip6.ipv4ha.ha"] == [result["mn"]["ipv4_hoa"]]
    natd = options("mip6.options.natd", ["mip6.natd.f_flag", "mip6.natd.refresh_t"])
    assert list(natd) == [BA]
    assert natd[BA]["mip6.natd.f_flag"] == ["0"]
    assert natd[BA]["mip6.natd.refresh_t"] == [str(0xFFFFFFFF)]


def test_dsmip6_bu_is_invisible_without_the_keys(dsmip6_v4):
    tmp, report = dsmip6_v4
    v4net = Path(report["pcap_dir"]["v4net"])
    assert tshark_fields(v4net, ["frame.number"], "mipv6", DSMIP6) == []
    inside = tshark_fields(v4net, ["udp.srcport", "esp.spi"], "esp && udp.port == 4191",
                           DSMIP6)
    assert len(inside) == 2                  # the BU and the BA, as ESP in UDP 4191
