"""The esp-manual scenario: every mode and family, through the NAT, and tshark decrypting it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mip6lab.scenarios import ScenarioError, create
from mip6lab.testing.prereq import require_tool
from mip6lab.testing.tshark import check_capture, tshark_fields

CASES = [
    {"mode": "transport", "family": 6},
    {"mode": "tunnel", "family": 6},
    {"mode": "transport", "family": 4},
    {"mode": "tunnel", "family": 4},
    {"mode": "transport", "family": 4, "nat": True},
    {"mode": "tunnel", "family": 4, "nat": True},
    {"mode": "tunnel", "family": 6, "suite": "aes256-sha256"},
    {"mode": "transport", "family": 6, "suite": "null-sha256"},
]


@pytest.mark.parametrize("options", CASES, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_every_combination_carries_udp_only_inside_esp(options, tmp_path):
    require_tool("tshark")
    scenario = create("esp-manual", seed=3, **{k: str(v) for k, v in options.items()})
    report = scenario.run()
    assert report["ok"], report["result"]
    assert report["result"]["udp"]["replies"] == 4
    assert report["result"]["udp_encapsulation"] == bool(options.get("nat"))
    pcap = tmp_path / "run.pcapng"
    scenario.lab.trace.write_pcapng(pcap)
    keys = scenario.write_keys(tmp_path / "keys")
    # without keys: no UDP to or from port 7 is visible anywhere on the wire
    assert tshark_fields(pcap, ["frame.number"], "udp.port == 7") == []
    # per link: in the combined file a forwarded ESP packet shows twice, and tshark
    # (rightly) warns about a repeated sequence number
    # In transport mode through a NAT the inner UDP checksum covers addresses the NAT
    # rewrote: it is wrong on the wire by design, and the receiver fixes it after
    # decryption (RFC 3948 §3.1.2). Only there is tshark told not to check it.
    nat_transport = options.get("nat") and options["mode"] == "transport"
    prefs = ["udp.check_checksum:FALSE"] if nat_transport else []
    for link_pcap in scenario.lab.trace.write_pcaps(tmp_path / "links").values():
        check_capture(link_pcap, keys_dir=tmp_path / "keys", options=prefs)
    # with the exported keys tshark decrypts all eight datagrams, on both links
    rows = tshark_fields(pcap, ["udp.srcport", "udp.dstport"], "udp.port == 7",
                         keys_dir=tmp_path / "keys")
    assert len(rows) == 16
    assert keys["esp_sa"].endswith("esp_sa")
    if options.get("nat"):
        server_saw = report["result"]["udp"]["server_saw"]
        if options["mode"] == "transport":   # the inner header carries the NAT's address
            assert all(p.startswith("198.51.100.1:") for p in server_saw)
        else:                                # the inner header is untouched by the NAT
            assert server_saw == ["203.0.113.101:5000"]


def test_usage_errors():
    with pytest.raises(ScenarioError):
        create("esp-manual", nat="1", family="6")
    with pytest.raises(ScenarioError):
        create("esp-manual", suite="des-md5")
    with pytest.raises(ScenarioError):
        create("esp-manual", mode="beet")


def test_cli_writes_keys_and_reports_tables(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mip6lab", "scenario", "run", "esp-manual",
                          "--set", "mode=tunnel", "--json", "--keys", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["ok"] and report["keys"]["esp_sa"] == str(tmp_path / "esp_sa")
    lines = (tmp_path / "esp_sa").read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith('"IPv6"') for line in lines)
    sad = report["result"]["sad"]["client"]
    assert {row["direction"] for row in sad} == {"in", "out"}
    assert all(row["mode"] == "tunnel" and row["packets"] == 4 for row in sad)
