"""The ``mip6lab`` command.

::

    mip6lab --version
    mip6lab scenario list
    mip6lab scenario run NAME [--seed N] [--set KEY=VALUE ...] [--json]
                              [--pcap FILE] [--pcap-dir DIR] [--keys DIR] [--ladder]

``scenario run`` exits 0 when the scenario's own verdict is good, 1 when it is not, and
2 for a usage error (an unknown scenario or option).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__
from .scenarios import SCENARIOS, ScenarioError, create


def _parse_settings(pairs: Sequence[str]) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ScenarioError(f"--set takes KEY=VALUE, not {pair!r}")
        settings[key.strip()] = value.strip()
    return settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mip6lab", description=(
        "A working Mobile IPv6 / DSMIP6 + IKEv2/IPsec stack to learn from."))
    parser.add_argument("--version", action="version", version=f"mip6lab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    scenario = commands.add_parser("scenario", help="list or run the named scenarios")
    actions = scenario.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the scenarios and what each shows")
    run = actions.add_parser("run", help="run one scenario to its end")
    run.add_argument("name")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--set", dest="settings", action="append", default=[],
                     metavar="KEY=VALUE", help="a scenario option; repeatable")
    run.add_argument("--backend", choices=["inproc"], default="inproc",
                     help="where the network runs (default: in-process)")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--pcap", metavar="FILE", help="write every frame to a pcapng file")
    run.add_argument("--pcap-dir", metavar="DIR", help="write one pcap per link")
    run.add_argument("--keys", metavar="DIR", help="write Wireshark's key tables (esp_sa) "
                     "into DIR; use it as WIRESHARK_CONFIG_DIR or copy it to your profile")
    run.add_argument("--ladder", action="store_true", help="print a sequence diagram")
    return parser


def _list() -> int:
    width = max(len(name) for name in SCENARIOS)
    for name, cls in sorted(SCENARIOS.items()):
        print(f"{name:<{width}}  {cls.description}")
        if cls.options:
            print(" " * width + "  options: " + ", ".join(
                f"{k}={v}" for k, v in cls.options.items()))
    return 0


def _run(args: argparse.Namespace) -> int:
    scenario = create(args.name, seed=args.seed, **_parse_settings(args.settings))
    report = scenario.run()
    if args.pcap:
        report["pcap"] = {"path": args.pcap,
                          "frames": scenario.lab.trace.write_pcapng(args.pcap)}
    if args.pcap_dir:
        report["pcap_dir"] = scenario.lab.trace.write_pcaps(args.pcap_dir)
    if args.keys:
        report["keys"] = scenario.write_keys(args.keys)
    if args.ladder:
        print(scenario.lab.trace.ladder(), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        verdict = "ok" if report["ok"] else "FAILED"
        print(f"{report['scenario']} (seed {report['seed']}, {report['backend']}): "
              f"{verdict} after {report['time']:g} s simulated, {report['events']} events, "
              f"{report['packets']} frames, {report['drops']} drops")
        print(json.dumps(report["result"], indent=2))
    return 0 if report["ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.action == "list":
            return _list()
        return _run(args)
    except ScenarioError as exc:
        print(f"mip6lab: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a capture file that cannot be written
        print(f"mip6lab: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
