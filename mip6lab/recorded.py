"""A run on real namespaces, kept for the machines that cannot make one (notebook 06).

Notebook ``06-real-namespaces`` runs ``dsmip6-nat`` (and, as its what-if, ``dsmip6-v4``)
on the netns backend where the machine allows it
(:func:`mip6lab.testing.prereq.netns_unavailable` is None). Where it does not -- no root,
Binder, a laptop -- it says why in one sentence and shows this recording instead, made
on a machine with root by ``scripts/record-netns-run`` (``python3 -m mip6lab.recorded``)::

    notebooks/recorded/06-real-namespaces/
      recording.json          when, on what (kernel, tools, mip6lab) and how (time scale,
                              options) it was recorded; per run: the report, the
                              namespaces it made and which of them were left after it
      dsmip6-nat.ladder.txt   the registration behind the NAT, as the MN and HA saw it
      dsmip6-nat.tshark.txt   tshark's one line per BU, BA and IKE_AUTH response, decrypted
      dsmip6-nat.pcapng       those frames (and the IKE around them) from dumpcap's capture
      keys/                   esp_sa and ikev2_decryption_table, which decrypt them

The pieces are made by the functions the notebook also uses on a live run --
:func:`registration_ladder`, :func:`tshark_summary` -- and compared with the in-process
run by :func:`facts`, so a recording and a live run tell the same story in the same
words. The deterministic facts of a recording are checked against the stack by the tests
(``tests/notebooks/test_06_real_namespaces.py``), so it cannot drift away unnoticed.

What may differ between a netns run and the in-process one, and why, is the notebook's
subject: times (the wall clock, scaled by ``time_scale``), the NAT's public ports (Linux
picks them at random), and counts that follow from timing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BU_BA_FILTER", "OPTIONS", "RUNS", "Recording", "SUMMARY_COLUMNS", "TIME_SCALE",
           "facts", "record", "registration_ladder", "summary_rows", "tshark_summary"]

#: where the course's recording lives, relative to the notebooks folder
NOTEBOOK_RECORDING = "recorded/06-real-namespaces"
#: simulated seconds per real one: dsmip6-nat's 30 s pass in 3 s of wall clock
TIME_SCALE = 10.0
#: the scenario options of every run, on both backends: an echo request every 0.5 s
#: (instead of 0.1 s) keeps the user-space MN and HA well ahead of the wall clock at x10
OPTIONS: dict[str, Any] = {"data_interval": 0.5}
#: the runs of a recording: the one captured and decrypted, and the what-if
RUNS = ("dsmip6-nat", "dsmip6-v4")
CAPTURED = "dsmip6-nat"
#: the registration of dsmip6-nat made from behind the NAT (0: the first one, on visit1)
BEHIND_THE_NAT = 1

#: tshark's preferences for a capture of the netns backend: decrypt ESP (esp_sa), and no
#: sequence analysis -- dumpcap records on every bridge, so a forwarded ESP packet is
#: there once per link it crossed (README, "On real namespaces")
TSHARK_PREFERENCES = ("esp.enable_encryption_decode:TRUE",
                      "esp.do_esp_sequence_analysis:FALSE")
#: DSMIP6: IPv6 inside IPv4/UDP 4191 (RFC 5555 §4.1)
TSHARK_DECODE_AS = ("udp.port==4191,ipv6",)
#: tshark's columns for the one-line summary: (title, Wireshark column format). The
#: addresses are the first IPv4 and the first IPv6 header's (outer, then inner in DSMIP6)
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("No.", "%m"), ("Time", "%t"), ("Link", "%Cus:frame.interface_name"),
    ("Source", "%Cus:ip.src or ipv6.src:1"), ("Port", "%Cus:udp.srcport:1"),
    ("Destination", "%Cus:ip.dst or ipv6.dst:1"), ("Info", "%i"),
    ("Seq", "%Cus:mip6.bu.seqnr or mip6.ba.seqnr"),
    ("K", "%Cus:mip6.bu.k_flag or mip6.ba.k_flag:0:U"), ("Status", "%Cus:mip6.ba.status:0:U"),
    ("CP address", "%Cus:isakmp.cfg.attr.internal_ip6_address"))
#: the BUs and BAs (inside ESP) and the IKE_AUTH responses that carry the home address
#: (inside IKE's SK payload), on the MN's access links and on the home link
LINKS_FILTER = 'frame.interface_name in {"br-visit1", "br-natlan", "br-v4net", "br-home"}'
BU_BA_FILTER = f"(mipv6 || isakmp.cfg.attr.internal_ip6_address) && {LINKS_FILTER}"


# -- what both backends must agree on ----------------------------------------------------


def facts(report: dict[str, Any]) -> dict[str, Any]:
    """The protocol facts of a mobility scenario's report that do not depend on the clock:
    the home addresses; per registration its network, BA status (RFC 6275 §6.1.8), K bit
    (§6.1.7) and the IKE exchanges it needed; NAT detected (RFC 5555 §4.2), UDP
    encapsulation (§4.1); and the scenario's verdict. The netns run of a scenario must
    give the same as the in-process run."""
    result = report["result"]
    return {
        "home address": result["mn"]["hoa"],
        "IPv4 home address": result["mn"]["ipv4_hoa"],
        "registrations": [
            {"to": h["to"], "BA status": h["ba_status"], "K": h["k_bit"],
             "IKE exchanges": h["ike_exchanges"]} for h in result["handovers"]],
        "NAT detected": result["nat_detected"],
        "UDP encapsulation": result["udp_encapsulation"],
        "ok": report["ok"],
    }


# -- the views of a run ------------------------------------------------------------------


def registration_ladder(scenario: Any, index: int) -> str:
    """The ladder (frames only) of registration ``index`` of a mobility scenario that has
    run, from the moment the MN had the care-of address to the BA that completed it (or
    the end of the run)."""
    handover = scenario.mobile.handovers[index]
    end = handover.completed_us if handover.completed_us is not None \
        else scenario.lab.sim.now_us
    events = scenario.lab.trace.events.filter(
        where=lambda e: handover.started_us <= e.time_us <= end)
    return events.ladder(show_state=False)


def tshark_summary(pcap: str | os.PathLike, keys_dir: str | os.PathLike,
                   display_filter: str = BU_BA_FILTER,
                   columns: tuple[tuple[str, str], ...] = SUMMARY_COLUMNS,
                   write: str | os.PathLike | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that make tshark print ``pcap`` one line per
    packet, tab-separated (``-T tabs``), in ``columns``, keeping the packets of
    ``display_filter`` -- decrypted with the keys ``--keys`` wrote to ``keys_dir`` (used
    as tshark's configuration directory, so no personal preference changes the result).
    With ``write``, tshark writes those packets to that pcapng file instead.
    Run it with ``subprocess.run(argv, env=env, capture_output=True, text=True)``."""
    tshark = shutil.which("tshark") or "tshark"
    argv = [tshark, "-n", "-r", str(pcap)]
    for preference in TSHARK_PREFERENCES:
        argv += ["-o", preference]
    for rule in TSHARK_DECODE_AS:
        argv += ["-d", rule]
    if write is not None:
        return argv + ["-Y", display_filter, "-w", str(write)], _tshark_env(keys_dir)
    layout = ",".join(f'"{title}","{spec}"' for title, spec in columns)
    argv += ["-o", f"gui.column.format:{layout}", "-T", "tabs", "-Y", display_filter]
    return argv, _tshark_env(keys_dir)


def _tshark_env(keys_dir: str | os.PathLike) -> dict[str, str]:
    return {**os.environ, "WIRESHARK_CONFIG_DIR": str(keys_dir)}


def summary_rows(text: str, columns: tuple[tuple[str, str], ...] = SUMMARY_COLUMNS
                 ) -> list[dict[str, str]]:
    """tshark's ``-T tabs`` lines as dicts keyed by the columns' titles."""
    titles = [title for title, _ in columns]
    rows = []
    for line in text.splitlines():
        if line.strip():
            cells = [cell.strip() for cell in line.split("\t")]
            rows.append(dict(zip(titles, cells + [""] * (len(titles) - len(cells)))))
    return rows


# -- the recording -----------------------------------------------------------------------


@dataclass
class Recording:
    """A recording read back: ``meta`` (when, on what, how), each run's ``reports`` and
    the ``namespaces`` it made, the ``ladder`` of the registration behind the NAT, and
    ``tshark`` (the summary lines, as tshark printed them)."""

    directory: Path
    meta: dict[str, Any]
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    namespaces: dict[str, list[str]] = field(default_factory=dict)
    left: dict[str, list[str]] = field(default_factory=dict)
    ladder: str = ""
    tshark: str = ""

    @property
    def pcap(self) -> Path:
        return self.directory / f"{CAPTURED}.pcapng"

    @property
    def keys(self) -> Path:
        return self.directory / "keys"

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Recording:
        directory = Path(directory)
        data = json.loads((directory / "recording.json").read_text())
        runs = data.pop("runs")
        return cls(directory, data,
                   reports={name: run["report"] for name, run in runs.items()},
                   namespaces={name: run["namespaces"] for name, run in runs.items()},
                   left={name: run["left"] for name, run in runs.items()},
                   ladder=(directory / f"{CAPTURED}.ladder.txt").read_text(),
                   tshark=(directory / f"{CAPTURED}.tshark.txt").read_text())

    def describe(self) -> str:
        """When, by what and on what the recording was made, in one sentence."""
        m = self.meta
        tools = ", ".join(m["tools"].values())
        return (f"recorded on {m['recorded']} by {m['by']}, with mip6lab {m['mip6lab']} "
                f"(commit {m['commit']}) on Linux {m['kernel']}, Python {m['python']}, "
                f"{tools}; time_scale {m['time_scale']:g}, options {m['options']}")


def _version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return f"{argv[0]} (version unknown)"
    lines = [line for line in (out.stdout + out.stderr).splitlines()
             if line.strip() and not line.startswith("Running as user")]
    first = lines[0].strip().rstrip(".") if lines else "(version unknown)"
    first = first.removeprefix("Version: ")        # radvd's way of saying it
    return first if argv[0] in first.lower() else f"{argv[0]} {first}"


def _commit() -> str:
    here = Path(__file__).resolve().parents[1]
    try:
        out = subprocess.run(["git", "-C", str(here), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def record(directory: str | os.PathLike, *, time_scale: float = TIME_SCALE,
           options: dict[str, Any] | None = None) -> Recording:
    """Run :data:`RUNS` on the netns backend (root) and write a recording into
    ``directory``: the report of each, ``dsmip6-nat`` captured by dumpcap and decrypted
    by tshark with the keys the run exported. The same calls as the CLI's
    ``scenario run NAME --backend netns --time-scale S --pcap F --keys D``."""
    from . import __version__
    from .net.netns import list_namespaces
    from .scenarios import create
    from .testing.prereq import netns_unavailable

    reason = netns_unavailable("tshark")
    if reason is not None:
        raise RuntimeError(f"cannot record: {reason}")
    options = dict(OPTIONS if options is None else options)
    # the code that makes the recording, read before the recording rewrites its own
    # tracked files (which would make any checkout look "dirty")
    commit = _commit()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    keys = directory / "keys"
    if keys.exists():
        shutil.rmtree(keys)
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mip6lab-record-") as work:
        capture = Path(work) / f"{CAPTURED}.pcapng"
        for name in RUNS:
            started = time.monotonic()
            scenario = create(name, backend="netns", time_scale=time_scale,
                              capture=str(capture) if name == CAPTURED else None, **options)
            report = scenario.run()          # builds, runs against the wall clock, closes
            made = sorted(ns.name for ns in scenario.netns.namespaces.values())
            runs[name] = {"report": report, "namespaces": made,
                          "left": sorted(set(made) & set(list_namespaces())),
                          "wall_seconds": round(time.monotonic() - started, 1)}
            if name == CAPTURED:
                runs[name]["report"]["pcap"] = {"path": capture.name,
                                                "frames": scenario.captured}
                scenario.write_keys(str(keys))
                (directory / f"{CAPTURED}.ladder.txt").write_text(
                    registration_ladder(scenario, BEHIND_THE_NAT))
                # keep the first frame (times stay relative to the capture's start), the
                # summary's frames and the IKE on the same links
                keep = f"frame.number == 1 || ((mipv6 || isakmp) && {LINKS_FILTER})"
                argv, env = tshark_summary(capture, keys, keep, write=directory /
                                           f"{CAPTURED}.pcapng")
                subprocess.run(argv, env=env, capture_output=True, check=True, timeout=120)
        argv, env = tshark_summary(directory / f"{CAPTURED}.pcapng", keys)
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True,
                             timeout=120)
        (directory / f"{CAPTURED}.tshark.txt").write_text(out.stdout)
    meta = {
        "recorded": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "by": "scripts/record-netns-run (python3 -m mip6lab.recorded)",
        "mip6lab": __version__, "commit": commit,
        "kernel": platform.release(), "python": platform.python_version(),
        "tools": {tool: _version([tool, "--version"])
                  for tool in ("tshark", "dumpcap", "radvd", "nft")},
        "time_scale": time_scale, "options": options,
        "runs": runs,
    }
    (directory / "recording.json").write_text(json.dumps(meta, indent=1) + "\n")
    return Recording.load(directory)


def main(argv: list[str] | None = None) -> int:
    """``python3 -m mip6lab.recorded [--out DIR] [--time-scale S]`` (as root)."""
    from .cli import course_notebooks

    notebooks = course_notebooks()
    default = Path(notebooks) / NOTEBOOK_RECORDING if notebooks else None
    parser = argparse.ArgumentParser(
        prog="record-netns-run", description="Record notebook 06's runs on real network "
        "namespaces (needs root, radvd, nftables, conntrack, dumpcap, ethtool, tshark).")
    parser.add_argument("--out", default=default, type=Path, required=default is None,
                        help=f"where to write the recording (default: {default})")
    parser.add_argument("--time-scale", type=float, default=TIME_SCALE, metavar="S",
                        help=f"simulated seconds per real one (default {TIME_SCALE:g})")
    args = parser.parse_args(argv)
    try:
        recording = record(args.out, time_scale=args.time_scale)
    except RuntimeError as exc:
        print(f"record-netns-run: {exc}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in recording.directory.rglob("*") if p.is_file())
    print(f"{recording.directory}: {recording.describe()}; {size} bytes")
    for name, report in recording.reports.items():
        print(f"  {name}: ok={report['ok']}, {facts(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
