"""The mobility scenarios on real namespaces (``--backend netns``) agree with the
in-process network on the protocol facts, record a capture tshark decrypts, clean up
after themselves (also after Ctrl-C and SIGTERM), run again right away, and refuse
without root.

What must agree, run for run: the home address (and the IPv4 one), every registration's
network, BA status, K bit and IKE exchanges, NAT detected, UDP encapsulation, and the
verdict. Timing (interruption_ms, duration_ms) and counts that follow from it (data
lost, frames, events) are the wall clock's and may differ.

The runs (each once per module): home-registration twice by the CLI, back to back;
handover with k_bit=1 and k_bit=0 by the Python API; dsmip6-nat by the CLI with
``--pcap`` and ``--keys``. At the default time scale (4) they take 2 to 8 s each.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from mip6lab import cli
from mip6lab.net.netns import list_namespaces
from mip6lab.scenarios import ScenarioError, create
from mip6lab.scenarios import netns_topology
from mip6lab.testing.prereq import require_netns, require_tool
from mip6lab.testing.tshark import check_capture, tshark_fields

pytestmark = pytest.mark.netns

REPO = Path(__file__).resolve().parents[2]
PREFIX = netns_topology.PREFIX
BU, BA = "5", "6"                      # Mobility Header types
DSMIP6 = ("udp.port==4191,ipv6",)
# the combined capture holds a forwarded ESP packet once per link it crossed
ONCE_PER_LINK = ("esp.do_esp_sequence_analysis:FALSE",
                 "esp.enable_encryption_decode:TRUE")


def _require_backend() -> None:
    require_netns("the netns backend of the scenarios")
    for tool, why in (("radvd", "Router Advertisements of the kernel routers"),
                      ("nft", "the NAT's masquerade"), ("conntrack", "the NAT rebinding"),
                      ("dumpcap", "--pcap on the bridges"),
                      ("ethtool", "software checksums for the capture"),
                      ("tshark", "to read the capture")):
        require_tool(tool, why)


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "mip6lab", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def _ours(pid: int) -> list[str]:
    """Namespaces the netns backend of process ``pid`` made and left."""
    return [n for n in list_namespaces() if n.startswith(f"{PREFIX}-{pid}-")]


def _scratch_dirs() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("mip6lab-netns-")}


def _processes_with(text: str) -> list[int]:
    """PIDs whose command line mentions ``text`` (radvd's has its scratch directory)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if text.encode() in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def facts(report: dict) -> dict:
    """The protocol facts both backends must agree on."""
    result = report["result"]
    return {
        "hoa": result["mn"]["hoa"], "ipv4_hoa": result["mn"]["ipv4_hoa"],
        "at_home": result["mn"]["at_home"],
        "handovers": [(h["to"], h["ba_status"], h["k_bit"], h["ike_exchanges"])
                      for h in result["handovers"]],
        "nat_detected": result["nat_detected"],
        "udp_encapsulation": result["udp_encapsulation"],
        "ok": report["ok"],
    }


# -- the runs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inproc():
    cache: dict = {}

    def run(name: str, **options) -> dict:
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = create(name, **options).run()
        return cache[key]

    return run


@pytest.fixture(scope="module")
def api_runs():
    """handover on the netns backend through the Python API, each k_bit once."""
    _require_backend()
    cache: dict = {}

    def run(name: str, **options) -> dict:
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            scenario = create(name, backend="netns", time_scale=4, **options)
            cache[key] = scenario.run()
            assert scenario.netns._closed      # run() closed it
        return cache[key]

    return run


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """home-registration by the CLI twice, the second right after the first."""
    _require_backend()
    before = _scratch_dirs()
    runs = []
    for i in range(2):
        proc = _cli("scenario", "run", "home-registration", "--backend", "netns", "--json")
        runs.append(proc)
    return runs, before


@pytest.fixture(scope="module")
def nat_run(tmp_path_factory):
    """dsmip6-nat by the CLI, recorded with --pcap and its keys written by --keys."""
    _require_backend()
    tmp = tmp_path_factory.mktemp("dsmip6-nat")
    proc = _cli("scenario", "run", "dsmip6-nat", "--backend", "netns", "--json",
                "--pcap", str(tmp / "all.pcapng"), "--keys", str(tmp / "keys"))
    assert proc.returncode == 0, proc.stderr + proc.stdout[-2000:]
    return json.loads(proc.stdout), tmp


# -- agreement with the in-process backend -------------------------------------------------


def test_home_registration_agrees_and_runs_twice(two_runs, inproc):
    runs, before = two_runs
    for proc in runs:
        assert proc.returncode == 0, proc.stderr + proc.stdout[-2000:]
    first, second = (json.loads(p.stdout) for p in runs)
    expected = facts(inproc("home-registration"))
    assert facts(first) == expected
    assert facts(second) == expected
    assert first["backend"] == second["backend"] == "netns"
    # everything they made is gone: namespaces, scratch files, radvd and the others
    assert _scratch_dirs() <= before
    assert not [n for n in list_namespaces() if n.startswith(f"{PREFIX}-")
                and not n.startswith(f"{PREFIX}-{os.getpid()}-")]
    assert not _processes_with("mip6lab-netns-")


@pytest.mark.parametrize("k_bit", [1, 0])
def test_handover_agrees(api_runs, inproc, k_bit):
    netns = api_runs("handover", k_bit=k_bit)
    expected = facts(inproc("handover", k_bit=k_bit))
    assert facts(netns) == expected
    ike = [h["ike_exchanges"] for h in netns["result"]["handovers"]]
    # the K bit's point, on real links too: later handovers run IKE again only with K=0
    assert ike[1:] == ([0, 0, 0] if k_bit else [2, 2, 2])
    assert not _ours(os.getpid())


def test_dsmip6_nat_agrees(nat_run, inproc):
    report, _ = nat_run
    assert facts(report) == facts(inproc("dsmip6-nat"))
    assert report["result"]["nat_detected"] is True
    assert report["result"]["udp_encapsulation"] is True
    # the rebinding is a conntrack flush: at least one flow came back on a new port
    pairs = report["result"]["nat_rebinding"]["ports"]
    assert any(new is not None and new != old for old, new in pairs), pairs
    assert report["result"]["nat_rebinding"]["answers_after"] > 0


def test_the_report_keeps_the_contract(api_runs, inproc):
    netns, local = api_runs("handover", k_bit=1), inproc("handover", k_bit=1)
    assert netns["backend"] == "netns" and local["backend"] == "inproc"
    assert set(local) <= set(netns)
    assert set(netns) - set(local) == {"realtime"}
    assert netns["realtime"]["time_scale"] == 4.0
    assert set(netns["result"]) == set(local["result"])
    for ours, theirs in zip(netns["result"]["handovers"], local["result"]["handovers"]):
        assert set(ours) == set(theirs)
    assert netns["time"] == local["time"] == 21.0   # simulated seconds, on both
    assert netns["errors"] == 0


# -- the capture ---------------------------------------------------------------------------


def test_the_capture_is_clean_and_holds_every_link(nat_run):
    report, tmp = nat_run
    pcap = tmp / "all.pcapng"
    assert report["pcap"]["path"] == str(pcap) and report["pcap"]["frames"] > 1000
    # the IPv4 payload in UDP 4191 is no IPv6: the whole-file check goes without -d
    capture = check_capture(pcap, options=ONCE_PER_LINK, keys_dir=tmp / "keys")
    assert capture.frames == report["pcap"]["frames"]
    assert {"esp", "isakmp", "icmpv6", "udpencap", "arp"} <= capture.protocols
    links = {row["frame.interface_name"][0] for row in
             tshark_fields(pcap, ["frame.interface_name"], options=ONCE_PER_LINK)}
    assert {"br-home", "br-visit1", "br-natlan", "br-natwan", "br-uplink",
            "br-cnlan"} <= links


def test_the_keys_decrypt_every_binding_update_and_acknowledgement(nat_run):
    report, tmp = nat_run
    rows = tshark_fields(tmp / "all.pcapng",
                         ["frame.interface_name", "mip6.mhtype", "mip6.bu.seqnr",
                          "mip6.bu.k_flag", "mip6.ba.status", "ip.src", "udp.srcport"],
                         display_filter="mipv6", decode_as=DSMIP6, options=ONCE_PER_LINK,
                         keys_dir=tmp / "keys")
    assert rows, "no BU or BA decrypted"
    types = [r["mip6.mhtype"][0] for r in rows]
    assert set(types) == {BU, BA}
    assert all(s == "0" for r in rows for s in r["mip6.ba.status"])
    # one BU per registration at least, on the MN's own access link
    access = {"visit1", "natlan", "home"}
    first_hop = [r for r in rows if r["mip6.mhtype"] == [BU]
                 and r["frame.interface_name"][0] in {f"br-{a}" for a in access}]
    assert len({r["mip6.bu.seqnr"][0] for r in first_hop}) >= \
        len(report["result"]["handovers"])
    # the K bit the report shows is the one on the wire
    k_bits = {r["mip6.bu.seqnr"][0]: r["mip6.bu.k_flag"][0] for r in first_hop}
    assert k_bits["0"] == "1"           # the first registration, K set (k_bit=1)
    # behind the NAT the BU leaves from 203.0.113.10:4191 and reaches the HA from the
    # NAT's public address, and the port it arrives from changes at the rebinding
    natlan = [r for r in rows if r["frame.interface_name"] == ["br-natlan"]
              and r["mip6.mhtype"] == [BU]]
    assert natlan and all(r["ip.src"] == ["203.0.113.10"] and r["udp.srcport"] == ["4191"]
                          for r in natlan)
    outside = [r["udp.srcport"][0] for r in rows if r["frame.interface_name"] == ["br-home"]
               and r["mip6.mhtype"] == [BU] and r["ip.src"] == ["198.51.100.50"]]
    assert len(set(outside)) >= 2, outside


# -- clean-up on interruption --------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_leaves_nothing(signum):
    _require_backend()
    before = _scratch_dirs()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "mip6lab", "scenario", "run",
                             "handover", "--backend", "netns"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(_ours(proc.pid)) < 7:      # sw, hr, inet, cn, nat, ha, mn
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the namespaces never appeared"
            time.sleep(0.05)
        time.sleep(1.0)                      # into the run: IKE, BU/BA, data
        os.kill(proc.pid, signum)            # Ctrl-C is SIGINT to the process
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if signum == signal.SIGINT:
        assert proc.returncode == 130, stderr
        assert "interrupted" in stderr
    else:
        assert proc.returncode == -signal.SIGTERM, stderr
    assert not _ours(proc.pid)
    assert _scratch_dirs() <= before
    assert not _processes_with("mip6lab-netns-")


# -- without root, and where there is no netns backend -------------------------------------


def test_without_root_the_command_refuses_in_one_sentence(monkeypatch, capsys):
    monkeypatch.setattr(netns_topology.os, "geteuid", lambda: 65534)
    status = cli.main(["scenario", "run", "handover", "--backend", "netns"])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err == f"mip6lab: {netns_topology.NOT_ROOT}"
    assert "\n" not in err and len(re.findall(r"[.!?](\s|$)", err)) <= 1
    assert "in-process backend" in err and "--backend inproc" in err
    with pytest.raises(ScenarioError, match="needs root"):
        create("home-registration", backend="netns")


def test_scenarios_without_a_netns_build_say_so(capsys):
    assert cli.main(["scenario", "run", "ping-nat", "--backend", "netns"]) == 2
    assert "ping-nat runs on the inproc backend, not 'netns'" in capsys.readouterr().err
    assert cli.main(["scenario", "run", "handover", "--time-scale", "0"]) == 2
    assert "time_scale must be a positive number" in capsys.readouterr().err


def test_the_capture_holds_the_first_frames_on_every_link(nat_run):
    """dumpcap opens its bridges one after the other; the run starts only when all of them
    record, so the first IKE_SA_INIT is on each link it crossed: the MN's, the uplink
    and the home link."""
    _, tmp = nat_run
    rows = tshark_fields(tmp / "all.pcapng", ["frame.interface_name"],
                         display_filter="isakmp.exchangetype == 34 && isakmp.flag_i == 1 && "
                                        "ipv6.src == 2001:db8:a1::5eff:fe00:f",
                         options=ONCE_PER_LINK)
    links = sorted(r["frame.interface_name"][0] for r in rows)
    assert links == ["br-home", "br-uplink", "br-visit1"], links
