"""The ``mip6lab`` command, run as a real process and through ``mip6lab.cli.main``.

Exit status contract: 0 when the scenario's verdict is good, 1 when it is not, 2 for a
usage error (unknown scenario, unknown option, bad value, malformed arguments).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mip6lab
from mip6lab.cli import main
from mip6lab.testing.tshark import check_capture

REPO = Path(__file__).resolve().parent.parent


def mip6lab_cmd(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "mip6lab", *args], capture_output=True,
                          text=True, env=env, cwd=cwd or REPO, timeout=120)


# -- as a process ----------------------------------------------------------------------------


def test_version():
    proc = mip6lab_cmd("--version")
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"mip6lab {mip6lab.__version__}"
    assert mip6lab.__version__[0].isdigit()


def test_scenario_list_names_ping_nat():
    proc = mip6lab_cmd("scenario", "list")
    assert proc.returncode == 0, proc.stderr
    first_words = [line.split()[0] for line in proc.stdout.splitlines()
                   if line and not line[0].isspace()]
    assert "ping-nat" in first_words
    assert "loss=0.0" in proc.stdout      # the options and their defaults are shown


def test_run_json_prints_one_report(tmp_path):
    proc = mip6lab_cmd("scenario", "run", "ping-nat", "--seed", "3", "--json",
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)          # the whole of stdout is one JSON object
    assert isinstance(report, dict)
    assert report["scenario"] == "ping-nat"
    assert report["seed"] == 3
    assert report["backend"] == "inproc"
    assert isinstance(report["events"], int) and report["events"] > report["packets"] > 0
    assert report["ok"] is True
    result = report["result"]
    assert result["ping6"]["sent"] == result["ping6"]["replies"] == 4
    assert result["udp4"]["sent"] == result["udp4"]["replies"] == 4
    assert result["nat"]["mappings_made"] == 1
    assert all(peer.startswith("203.0.113.2:") for peer in result["udp4"]["server_saw"])
    assert list(tmp_path.iterdir()) == []     # no capture unless asked


def test_run_with_pcap_writes_a_capture_tshark_accepts(captures):
    path = captures.path("run.pcapng")
    proc = mip6lab_cmd("scenario", "run", "ping-nat", "--json", "--pcap", str(path))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert path.is_file()
    assert report["pcap"] == {"path": str(path), "frames": report["packets"]}
    assert check_capture(path).frames == report["packets"]


def test_run_ladder_prints_the_diagram():
    proc = mip6lab_cmd("scenario", "run", "ping-nat", "--ladder")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("time (s)")
    for name in ("host6", "r1", "r2", "server", "host4", "nat"):
        assert name in lines[0].split()
    assert any("|" in l and ">" in l and "ICMPv6 echo request" in l for l in lines)
    assert any("<" in l and "ICMPv6 echo reply" in l for l in lines)
    assert "ping-nat (seed 0, inproc): ok" in proc.stdout


def test_failed_outcome_exits_1():
    proc = mip6lab_cmd("scenario", "run", "ping-nat", "--set", "loss=1.0", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    assert report["result"]["ping6"]["replies"] == 0
    assert report["result"]["udp4"]["replies"] == 0
    assert report["options"]["loss"] == 1.0


@pytest.mark.parametrize("args", [
    ("scenario", "run", "no-such-scenario"),
    ("scenario", "run", "ping-nat", "--set", "bogus=1"),
    ("scenario", "run", "ping-nat", "--set", "count=many"),
    ("scenario", "run", "ping-nat", "--frobnicate"),
], ids=["unknown-scenario", "unknown-option", "bad-value", "unknown-flag"])
def test_usage_errors_exit_2(args):
    proc = mip6lab_cmd(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip()
    assert "Traceback" not in proc.stderr


# -- through main() ----------------------------------------------------------------------------


def test_main_json_report_and_text_report(capsys):
    assert main(["scenario", "run", "ping-nat", "--seed", "5", "--json"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out)
    assert report["seed"] == 5 and report["ok"] is True
    assert main(["scenario", "run", "ping-nat", "--seed", "5"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"ping-nat (seed 5, inproc): ok after {report['time']:g} s")
    assert f"{report['events']} events, {report['packets']} frames" in text
    assert json.loads(text[text.index("{"):]) == report["result"]


def test_main_same_seed_same_report(capsys):
    main(["scenario", "run", "ping-nat", "--seed", "9", "--json", "--set", "loss=0.2"])
    one = capsys.readouterr().out
    main(["scenario", "run", "ping-nat", "--seed", "9", "--json", "--set", "loss=0.2"])
    two = capsys.readouterr().out
    assert one == two


def test_main_ladder_goes_to_stderr_with_json(capsys):
    assert main(["scenario", "run", "ping-nat", "--json", "--ladder"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"] is True
    assert captured.err.startswith("time (s)")
    assert "ICMPv6 echo reply" in captured.err


def test_main_pcap_dir_writes_one_pcap_per_link(captures, capsys):
    directory = captures.path("links")
    assert main(["scenario", "run", "ping-nat", "--json", "--pcap-dir",
                 str(directory)]) == 0
    report = json.loads(capsys.readouterr().out)
    paths = report["pcap_dir"]
    assert set(paths) == {"lan6", "core", "dmz", "lan4", "wan4"}
    assert sorted(p.name for p in directory.iterdir()) == sorted(f"{l}.pcap" for l in paths)
    assert sum(check_capture(p).frames for p in paths.values()) == report["packets"]


def test_main_options_are_converted_and_reported(capsys):
    assert main(["scenario", "run", "ping-nat", "--json", "--set", "count=2",
                 "--set", "interval=0.5", "--set", "filtering=endpoint-independent"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["options"]["count"] == 2 and report["options"]["interval"] == 0.5
    assert report["options"]["filtering"] == "endpoint-independent"
    assert report["result"]["ping6"]["sent"] == 2
    assert report["result"]["udp4"]["sent"] == 2


def test_main_loss_one_exits_1(capsys):
    assert main(["scenario", "run", "ping-nat", "--set", "loss=1.0"]) == 1
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize("settings,message", [
    (["bogus=1"], "no option bogus"),
    (["count=many"], "count"),
    (["loss=abc"], "loss"),
    (["loss=2.0"], "loss"),                       # a float, but not a probability
    (["filtering=sideways"], "filtering"),        # a string the NAT does not know
    (["count"], "KEY=VALUE"),
    (["=3"], "KEY=VALUE"),
])
def test_main_bad_settings_exit_2(capsys, settings, message):
    argv = ["scenario", "run", "ping-nat"]
    for setting in settings:
        argv += ["--set", setting]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("mip6lab: ") and message in captured.err


def test_main_unknown_scenario_exits_2_and_names_the_known_ones(capsys):
    assert main(["scenario", "run", "ping-pong"]) == 2
    err = capsys.readouterr().err
    assert "ping-pong" in err and "ping-nat" in err


@pytest.mark.parametrize("argv", [
    ["scenario", "run", "ping-nat", "--seed", "abc"],
    ["scenario", "run", "ping-nat", "--backend", "carrier-pigeon"],
    ["scenario", "run"],
    ["scenario"],
    [],
])
def test_main_argument_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_main_list(capsys):
    assert main(["scenario", "list"]) == 0
    out = capsys.readouterr().out
    from mip6lab.scenarios import SCENARIOS

    names = [line.split()[0] for line in out.splitlines() if not line.startswith(" ")]
    assert names == sorted(SCENARIOS) and "ping-nat" in names
    for cls in SCENARIOS.values():
        assert cls.description in out
