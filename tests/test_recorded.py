"""mip6lab.recorded: the facts both backends must agree on, tshark's one-line summary, and a
recording written by record() (root) and read back by Recording.load()."""

from __future__ import annotations

import json
import subprocess

import pytest

from mip6lab import recorded
from mip6lab.recorded import (BU_BA_FILTER, OPTIONS, SUMMARY_COLUMNS, Recording, facts,
                              registration_ladder, summary_rows, tshark_summary)
from mip6lab.scenarios import create
from mip6lab.testing.prereq import require_netns, require_tool


@pytest.fixture(scope="module")
def nat():
    scenario = create("dsmip6-nat", **OPTIONS)
    return scenario, scenario.run()


def test_facts_are_the_protocol_decisions(nat):
    _, report = nat
    assert facts(report) == {
        "home address": "2001:db8:0:1::1001", "IPv4 home address": "192.0.2.65",
        "registrations": [{"to": "visit1", "BA status": 0, "K": 1, "IKE exchanges": 1},
                          {"to": "natlan", "BA status": 0, "K": 0, "IKE exchanges": 1},
                          {"to": "home", "BA status": 0, "K": 0, "IKE exchanges": 1}],
        "NAT detected": True, "UDP encapsulation": True, "ok": True}
    # the clock is not a fact: another data rate, other durations, the same facts
    other = create("dsmip6-nat", data_interval=1.0).run()
    assert facts(other) == facts(report)


def test_registration_ladder_is_the_window_of_one_registration(nat):
    scenario, _ = nat
    ladder = registration_ladder(scenario, 1)
    lines = ladder.splitlines()
    assert lines[0].split()[:2] == ["time", "(s)"]
    times = [float(line.split()[0]) for line in lines[2:]]
    handover = scenario.mobile.handovers[1]
    assert handover.started_us / 1e6 <= min(times) and max(times) <= handover.completed_us / 1e6
    assert "IKE_SA_INIT request #0 203.0.113.10:500 → 192.0.2.2:500" in ladder
    assert "*" not in "".join(line[:60] for line in lines[2:])    # frames only, no states


def test_tshark_summary_command(tmp_path):
    argv, env = tshark_summary(tmp_path / "x.pcapng", tmp_path / "keys")
    assert env["WIRESHARK_CONFIG_DIR"] == str(tmp_path / "keys")
    assert argv[argv.index("-r") + 1] == str(tmp_path / "x.pcapng")
    assert argv[argv.index("-T") + 1] == "tabs" and argv[-1] == BU_BA_FILTER
    assert "esp.enable_encryption_decode:TRUE" in argv and "udp.port==4191,ipv6" in argv
    layout = next(a for a in argv if a.startswith("gui.column.format:"))
    assert layout.count('","') == 2 * len(SUMMARY_COLUMNS) - 1
    written, _ = tshark_summary("a.pcapng", "k", "mipv6", write="b.pcapng")
    assert written[-4:] == ["-Y", "mipv6", "-w", "b.pcapng"] and "-T" not in written


def test_summary_rows_pads_the_empty_columns():
    rows = summary_rows("  6\t0.03\tbr-home\t2001:db8::1\t\t2001:db8::2\tBinding Update\t0\t1\n\n")
    assert rows == [{"No.": "6", "Time": "0.03", "Link": "br-home", "Source": "2001:db8::1",
                     "Port": "", "Destination": "2001:db8::2", "Info": "Binding Update",
                     "Seq": "0", "K": "1", "Status": "", "CP address": ""}]


def test_a_recording_reads_back(tmp_path, nat):
    _, report = nat
    (tmp_path / "dsmip6-nat.ladder.txt").write_text("ladder\n")
    (tmp_path / "dsmip6-nat.tshark.txt").write_text("lines\n")
    meta = {"recorded": "2026-01-01 00:00 UTC", "by": "a test", "mip6lab": "0", "commit": "x",
            "kernel": "6.1", "python": "3.11", "tools": {"tshark": "TShark 4"},
            "time_scale": 10.0, "options": OPTIONS,
            "runs": {"dsmip6-nat": {"report": report, "namespaces": ["m6lnet-1-2-sw"],
                                    "left": [], "wall_seconds": 4.0}}}
    (tmp_path / "recording.json").write_text(json.dumps(meta))
    recording = Recording.load(tmp_path)
    assert recording.reports["dsmip6-nat"]["result"]["mn"]["hoa"] == "2001:db8:0:1::1001"
    assert recording.namespaces == {"dsmip6-nat": ["m6lnet-1-2-sw"]}
    assert recording.left == {"dsmip6-nat": []}
    assert (recording.ladder, recording.tshark) == ("ladder\n", "lines\n")
    assert recording.pcap == tmp_path / "dsmip6-nat.pcapng"
    assert recording.describe().startswith("recorded on 2026-01-01 00:00 UTC by a test, with "
                                           "mip6lab 0 (commit x) on Linux 6.1, Python 3.11, "
                                           "TShark 4; time_scale 10")


@pytest.mark.netns
def test_record_on_real_namespaces(tmp_path):
    """What scripts/record-netns-run does, into a scratch directory (about 8 s)."""
    require_netns("the netns backend")
    for tool in ("radvd", "nft", "conntrack", "dumpcap", "ethtool", "tshark"):
        require_tool(tool, "a recording of notebook 06")
    assert recorded.main(["--out", str(tmp_path)]) == 0
    recording = Recording.load(tmp_path)
    for name in recorded.RUNS:
        assert facts(recording.reports[name]) == facts(create(name, **OPTIONS).run())
        assert len(recording.namespaces[name]) == 7 and recording.left[name] == []
    rows = summary_rows(recording.tshark)
    # the first registration's BU and BA on the MN's link and on the home link alike
    first = {(r["Link"], r["Info"]) for r in rows if r["Seq"] == "0"}
    assert first == {(link, info) for link in ("br-visit1", "br-home")
                     for info in ("Binding Update", "Binding Acknowledgement")}
    # the kept frames give the same lines again
    argv, env = tshark_summary(recording.pcap, recording.keys)
    again = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    assert summary_rows(again.stdout) == rows
