"""The ``mip6lab`` command.

::

    mip6lab --version
    mip6lab course [--dir DIR] [--port N] [--ip ADDR] [--no-browser]
    mip6lab scenario list
    mip6lab scenario run NAME [--seed N] [--set KEY=VALUE ...] [--json]
                              [--pcap FILE] [--pcap-dir DIR] [--keys DIR] [--ladder]
                              [--backend inproc|netns] [--time-scale S]
    mip6lab compare [SCENARIO ...] [--variants V,V] [--seeds N|S,S] [--set KEY=VALUE ...]
                    [--json | --csv] [--no-cpu] [--code]
    mip6lab code-split [--json] [--files]
    mip6lab exercises list | release | grade SUBMISSIONS [--csv FILE]   (mip6lab.exercises.cli)
    mip6lab ike initiate --remote ADDR [--local ADDR] --id ID --remote-id ID
                         (--psk-file F | --cert F --key F --ca F [--auth METHOD])
                         [--request ipv6|ipv4|home-prefix ...] [--ike-proposal STR]
                         [--esp-proposal STR] [--mode tunnel|transport] [--timeout S]
                         [--delete] [--json [--events] [--show-keys]] [-v]
                         [--stay S] [--until-deleted] [--rekey-child-after S]
                         [--rekey-ike-after S] [--delete-child-after S]
                         [--liveness-after S] [--delete-after S]
    mip6lab ike respond --listen ADDR --id ID (--psk-file F | --cert F --key F --ca F)
                        [--remote-id ID]
                        [--pool6 PREFIX] [--pool4 CIDR] [--home-prefix PREFIX]
                        [--ike-proposal STR] [--esp-proposal STR] [--mode tunnel|transport]
                        [--once [--stay S] [--until-deleted] [--*-after S]]
                        [--timeout S] [--json [--events] [--show-keys]] [-v]

``course`` starts JupyterLab on the course's notebooks (``notebooks/`` of this checkout,
or ``--dir``); it needs the ``course`` extra (``pip install '.[course]'``) and says so,
with status 2, when it is missing. JupyterLab prints the URL to open, with its token.

``scenario run`` exits 0 when the scenario's own verdict is good, 1 when it is not, and
2 for a usage error (an unknown scenario or option, or ``--backend netns`` without
root). ``--backend netns`` runs a mobility scenario on real network namespaces against
the wall clock, ``--time-scale`` simulated seconds per real one; its ``--pcap`` is
recorded by dumpcap on every link while it runs. Ctrl-C ends a run with status 130,
after everything it made is removed.

``compare`` runs mobility scenarios (default ``handover``) under each security mode and
variant over several seeds and prints one table of messages, bytes, round trips, seam
crossings, interruption and data lost per registration and handover, the states held and
the CPU time per room (:mod:`mip6lab.compare`); 0 when every run's verdict is good, 1
when one is not, 2 for a usage error. ``code-split`` (or ``compare --code``) prints the
lines of code of the mobility protocol against its security integration, per mode
(:mod:`mip6lab.codesplit`).

``ike initiate`` / ``ike respond`` run our IKEv2 engine on real UDP sockets (500 and
4500, :mod:`mip6lab.ikev2.udp`), e.g. against strongSwan. Authentication by pre-shared
key (``--psk-file``) or X.509 certificates (``--cert/--key/--ca``: CERT, CERTREQ and an
RFC 7427 signature AUTH, certificates checked against the wall clock); nothing is
installed in the kernel: the negotiated SAs are reported.
``--json`` prints the IKE SA (SPIs in hex, the chosen proposal), the child SAs (SPIs,
suite, mode, TSi/TSr), the assigned addresses and ``nat_detected``; ``ike respond``
prints one JSON object per IKE SA, one a line. Exit 0 when an SA was established, 1
when none was (the notify or reason is printed), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from . import __version__
from .scenarios import SCENARIOS, ScenarioError, create
from .scenarios.base import DEFAULT_TIME_SCALE


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
    course = commands.add_parser("course", help="open the course: JupyterLab on the notebooks")
    course.add_argument("--dir", help="the folder of notebooks to open (default: the "
                        "course's notebooks/ folder)")
    course.add_argument("--port", type=int, default=8888,
                        help="the port to listen on (default 8888; the next free one if taken)")
    course.add_argument("--ip", default="127.0.0.1", help="the address to listen on "
                        "(default 127.0.0.1: this machine only)")
    course.add_argument("--no-browser", action="store_true",
                        help="do not open a browser; just print the URL")
    scenario = commands.add_parser("scenario", help="list or run the named scenarios")
    actions = scenario.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the scenarios and what each shows")
    run = actions.add_parser("run", help="run one scenario to its end")
    run.add_argument("name")
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    run.add_argument("--set", dest="settings", action="append", default=[],
                     metavar="KEY=VALUE", help="a scenario option; repeatable")
    run.add_argument("--backend", choices=["inproc", "netns"], default="inproc",
                     help="where the network runs: in-process (the default; simulated "
                     "clock, no root) or real Linux network namespaces (root)")
    run.add_argument("--time-scale", type=float, default=DEFAULT_TIME_SCALE, metavar="S",
                     help="netns backend: simulated seconds per real second; every timer "
                     f"of the scenario scales with it (default {DEFAULT_TIME_SCALE:g})")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--pcap", metavar="FILE", help="write every frame to a pcapng file")
    run.add_argument("--pcap-dir", metavar="DIR", help="write one pcap per link")
    run.add_argument("--keys", metavar="DIR", help="write Wireshark's key tables (esp_sa) "
                     "into DIR; use it as WIRESHARK_CONFIG_DIR or copy it to your profile")
    run.add_argument("--ladder", action="store_true", help="print a sequence diagram")
    _compare_parser(commands)
    _chaos_parser(commands)
    from .exercises.cli import add_parser as _exercises_parser
    _exercises_parser(commands)
    _ike_parser(commands)
    return parser


def _chaos_parser(commands) -> None:
    from .chaos import DEFAULT_DUPLICATE, DEFAULT_REORDER, DEFAULT_SCENARIOS

    chaos = commands.add_parser("chaos", help="the mobility scenarios over many seeds "
                                "under loss, duplication and reordering: a completion table")
    chaos.add_argument("--scenario", action="append", dest="scenarios", metavar="NAME",
                       help=f"repeatable (default: {', '.join(DEFAULT_SCENARIOS)})")
    chaos.add_argument("--security", default="ipsec,auth-option", metavar="M,M",
                       help="security modes (default: both, where a scenario has them)")
    chaos.add_argument("--seeds", type=int, default=20, metavar="N",
                       help="seeds 0..N-1 per cell (default 20)")
    chaos.add_argument("--loss", default="0,10,20,30,40", metavar="P,P",
                       help="loss columns in percent (default 0,10,20,30,40)")
    chaos.add_argument("--duplicate", type=float, default=DEFAULT_DUPLICATE * 100,
                       metavar="P", help="duplication column in percent (0: none)")
    chaos.add_argument("--reorder", type=float, default=DEFAULT_REORDER * 100,
                       metavar="P", help="reordering column in percent (0: none)")
    chaos.add_argument("--visit", type=float, default=5.0, metavar="S",
                       help="seconds between the MN's moves (default 5, the scripts')")
    chaos.add_argument("--jobs", type=int, default=None, metavar="N",
                       help="processes (default: one per core)")
    chaos.add_argument("--set", dest="settings", action="append", default=[],
                       metavar="KEY=VALUE", help="a scenario option for every run")
    chaos.add_argument("--json", action="store_true", help="print one JSON object")


def _chaos(args: argparse.Namespace) -> int:
    from .chaos import DEFAULT_SCENARIOS, run_chaos

    try:
        losses = [float(p) / 100 for p in args.loss.split(",") if p.strip()]
    except ValueError:
        raise ScenarioError(f"--loss: {args.loss!r} is not a comma list of percentages")
    table = run_chaos(args.scenarios or DEFAULT_SCENARIOS,
                      [m.strip() for m in args.security.split(",") if m.strip()],
                      losses, args.duplicate / 100, args.reorder / 100, seeds=args.seeds,
                      visit=args.visit, jobs=args.jobs,
                      options=_parse_settings(args.settings))
    if args.json:
        print(json.dumps(table.to_dict(), indent=2))
    else:
        print(table.render())
    return 0


def _compare_parser(commands) -> None:
    from .compare import DEFAULT_VARIANTS, VARIANT_NAMES

    compare = commands.add_parser("compare", help="the mobility scenarios under each "
                                  "security mode and variant, side by side")
    compare.add_argument("scenarios", nargs="*", metavar="SCENARIO",
                         help="mobility scenarios to run (default: handover)")
    compare.add_argument("--variants", metavar="V,V",
                         help=f"comma list of {', '.join(VARIANT_NAMES)} (default: "
                         f"{', '.join(DEFAULT_VARIANTS)})")
    compare.add_argument("--seeds", default="3", metavar="N|S,S",
                         help="a count (3 = seeds 0, 1, 2; the default) or a comma list")
    compare.add_argument("--set", dest="settings", action="append", default=[],
                         metavar="KEY=VALUE", help="a scenario option for every run; "
                         "repeatable (e.g. loss=0.2)")
    output = compare.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object")
    output.add_argument("--csv", action="store_true",
                        help="print CSV: one row per registration/handover of every run")
    compare.add_argument("--no-cpu", action="store_true",
                         help="do not profile the CPU time per room")
    compare.add_argument("--code", action="store_true",
                         help="also print the lines-of-code split (as code-split does; "
                         "on stderr with --csv, in the object with --json)")
    split = commands.add_parser("code-split", help="lines of code: the mobility protocol "
                                "against its security integration (the 10/90 claim)")
    split.add_argument("--json", action="store_true", help="print one JSON object")
    split.add_argument("--files", action="store_true", help="list every file and its count")


def _ike_parser(commands) -> None:
    ike = commands.add_parser("ike", help="IKEv2 on real UDP sockets (500/4500)")
    actions = ike.add_subparsers(dest="action", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--id", required=True, help="our identity (address, FQDN, "
                       "user@domain as RFC822; fqdn:/rfc822:/key_id: force a type)")
        auth = p.add_mutually_exclusive_group(required=True)
        auth.add_argument("--psk-file", metavar="F",
                          help="file holding the pre-shared key (one trailing newline "
                          "dropped)")
        auth.add_argument("--cert", metavar="F", help="our X.509 certificate (PEM; "
                          "intermediates may follow it); needs --key and --ca")
        p.add_argument("--key", metavar="F", help="the private key of --cert (PEM)")
        p.add_argument("--ca", action="append", default=[], metavar="F",
                       help="CA certificate(s) the peer's certificate must chain to "
                       "(PEM); repeatable")
        p.add_argument("--auth", choices=["signature", "rsa", "ecdsa"], default=None,
                       help="with --cert: RFC 7427 digital signature (method 14, the "
                       "default), RSA (method 1) or ECDSA (methods 9-11)")
        p.add_argument("--ike-proposal", default="default", metavar="STR",
                       help="IKE proposals, strongSwan notation, comma list; 'default' "
                       "(the default) offers every algorithm this stack has, as "
                       "strongSwan's 'default' does")
        p.add_argument("--esp-proposal", default="default", metavar="STR",
                       help="ESP proposals, strongSwan notation, comma list; 'default' "
                       "as for --ike-proposal")
        p.add_argument("--mode", choices=["tunnel", "transport"], default="tunnel")
        p.add_argument("--json", action="store_true", help="print JSON")
        keep = p.add_argument_group("after establishment (default: exit once it is up)")
        keep.add_argument("--stay", type=float, metavar="S",
                          help="keep the IKE SA S seconds, answering the peer's rekeys, "
                               "deletes and liveness checks")
        keep.add_argument("--until-deleted", action="store_true",
                          help="keep it until it is deleted (by either end; bounded by "
                               "--stay if given)")
        for action, what in (("rekey-child", "rekey the (first) child SA"),
                             ("rekey-ike", "rekey the IKE SA"),
                             ("delete-child", "delete the (first) child SA"),
                             ("liveness", "send a liveness check (empty INFORMATIONAL)"),
                             ("delete", "delete the IKE SA")):
            keep.add_argument(f"--{action}-after", type=float, action="append", default=[],
                              metavar="S", dest=action.replace("-", "_") + "_after",
                              help=f"{what} S seconds after establishment (repeatable)")
        keep.add_argument("--events", action="store_true",
                          help="with --json: one JSON line per engine event as it happens")
        keep.add_argument("--show-keys", action="store_true",
                          help="with --json: include the child SA keys (SECRET; marked "
                               '"secret": true)')
        p.add_argument("-v", "--verbose", action="store_true",
                       help="log datagrams and events on stderr")

    init = actions.add_parser("initiate", help="establish one IKE SA with a peer")
    init.add_argument("--remote", required=True, metavar="ADDR")
    init.add_argument("--local", metavar="ADDR", help="default: the routing table's source")
    init.add_argument("--remote-id", required=True, metavar="ID")
    init.add_argument("--request", action="append", default=[],
                      choices=["ipv6", "ipv4", "home-prefix"],
                      help="ask for an address in a CFG_REQUEST; repeatable")
    init.add_argument("--remote-ts", action="append", default=[], metavar="PREFIX",
                      help="the peer's traffic selector (default: its address); repeatable")
    init.add_argument("--timeout", type=float, default=30.0, metavar="S")
    init.add_argument("--delete", action="store_true",
                      help="delete the IKE SA (INFORMATIONAL) before exiting")
    common(init)
    resp = actions.add_parser("respond", help="answer IKE initiators")
    resp.add_argument("--listen", required=True, metavar="ADDR")
    resp.add_argument("--remote-id", metavar="ID", help="accept only this peer identity")
    resp.add_argument("--pool6", metavar="PREFIX", help="INTERNAL_IP6_ADDRESS pool")
    resp.add_argument("--pool4", metavar="CIDR", help="INTERNAL_IP4_ADDRESS pool")
    resp.add_argument("--home-prefix", metavar="PREFIX",
                      help="MIP6_HOME_PREFIX pool (/64 prefixes from a shorter prefix, "
                      "or this one prefix)")
    resp.add_argument("--local-ts", action="append", default=[], metavar="PREFIX",
                      help="our traffic selector (default: the --listen address); "
                      "repeatable")
    resp.add_argument("--once", action="store_true",
                      help="exit after the first IKE SA is established or has failed")
    resp.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds")
    common(resp)


class _Usage(Exception):
    """A usage error found after parsing (exit status 2)."""


def _read_psk(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            psk = f.read()
    except OSError as exc:
        raise _Usage(f"cannot read --psk-file {path}: {exc.strerror}") from None
    psk = psk[:-1] if psk.endswith(b"\n") else psk
    if psk.endswith(b"\r"):
        psk = psk[:-1]
    if not psk:
        raise _Usage(f"--psk-file {path} is empty")
    return psk


def _certificate_options(args: argparse.Namespace) -> dict:
    """IkeConfig.make's cert/key/ca/auth_method from --cert/--key/--ca/--auth."""
    if args.psk_file is not None:
        if args.key or args.ca or args.auth:
            raise _Usage("--key, --ca and --auth go with --cert, not --psk-file")
        return {}
    if not args.key or not args.ca:
        raise _Usage("--cert needs --key and --ca")
    options = {"cert": args.cert, "key": args.key, "ca": args.ca}
    if args.auth:
        options["auth_method"] = args.auth
    return options


def _ike_config(args: argparse.Namespace, **options):
    from .ikev2.config import IkeConfig

    certificate = _certificate_options(args)
    try:
        psk = _read_psk(args.psk_file) if args.psk_file is not None else None
        return IkeConfig.make(args.id, psk, args.remote_id,
                              ike=args.ike_proposal, esp=args.esp_proposal, mode=args.mode,
                              **certificate, **options)
    except _Usage:
        raise
    except OSError as exc:
        raise _Usage(f"cannot read {exc.filename}: {exc.strerror}") from None
    except (ValueError, KeyError) as exc:
        raise _Usage(f"bad configuration: {exc}") from None


def _address(text: str | None, option: str) -> str | None:
    import ipaddress

    if text is None:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise _Usage(f"{option} needs an IP address, not {text!r}") from None


def _print_ike_result(result, as_json: bool, keys: bool = False) -> None:
    report = result.to_dict(keys=keys)
    if as_json:
        print(json.dumps(report))
        sys.stdout.flush()
        return
    if report["established"]:
        ike = report["ike_sa"]
        print(f"IKE SA established ({report['role']}) with {ike['peer_id'][1]} at "
              f"{ike['remote']}[{ike['remote_port']}]: {ike['spi_i']}_i {ike['spi_r']}_r "
              f"{ike['proposal']}{', NAT detected' if report['nat_detected'] else ''}")
        for a in report["assigned"]:
            print(f"  {a['attribute']} {a['value']}")
        for c in report["child_sas"]:
            print(f"  child SA {c['mode']} {c['suite']} in {c['spi_in']} out {c['spi_out']} "
                  f"{','.join(c['local_ts'])} === {','.join(c['remote_ts'])}")
    if report["error"]:
        error = report["error"]
        print(f"IKE failed: {error['reason']}"
              + (f" ({error['notify']})" if error["notify"] else ""),
              file=sys.stdout if not report["established"] else sys.stderr)
    sys.stdout.flush()


def _ike(args: argparse.Namespace) -> int:
    from .ikev2 import udp

    log = (lambda text: print(f"mip6lab ike: {text}", file=sys.stderr)) \
        if args.verbose else None
    if args.action == "initiate":
        remote = _address(args.remote, "--remote")
        local = _address(args.local, "--local")
        config = _ike_config(args, request=tuple(dict.fromkeys(args.request)),
                             remote_ts=_selectors(args.remote_ts, "--remote-ts"))
        if args.timeout <= 0:
            raise _Usage("--timeout must be positive")
        result = udp.initiate(config, remote, local, timeout=args.timeout,
                              delete=args.delete, verbose=log, **_keep(args))
        _print_ike_result(result, args.json, args.show_keys)
        return 0 if result.established and not _child_refused(result) else 1
    from .ikev2.pools import AddressPool

    listen = _address(args.listen, "--listen")
    try:
        pools = {
            "pool6": AddressPool.parse(args.pool6) if args.pool6 else None,
            "pool4": AddressPool.parse(args.pool4) if args.pool4 else None,
            "home_prefixes": _home_prefixes(args.home_prefix) if args.home_prefix else None,
        }
    except ValueError as exc:
        raise _Usage(f"bad pool: {exc}") from None
    config = _ike_config(args, local_ts=_selectors(args.local_ts, "--local-ts"), **pools)
    keep = _keep(args)
    if (keep["stay"] is not None or keep["until_deleted"] or keep["schedule"]) \
            and not args.once:
        raise _Usage("--stay, --until-deleted and --*-after need --once")
    keep.pop("on_established")
    results = udp.respond(config, listen, once=args.once, timeout=args.timeout,
                          on_result=lambda r: _print_ike_result(r, args.json, args.show_keys),
                          verbose=log, **keep)
    if args.once and (keep["stay"] is not None or keep["until_deleted"] or keep["schedule"]):
        for result in results:      # the final state, after staying
            _print_ike_result(result, args.json, args.show_keys)
    return 0 if any(r.established for r in results) else 1


def _keep(args: argparse.Namespace) -> dict:
    """The staying options: stay, until_deleted, schedule, on_event, on_established."""
    from .ikev2.udp import event_dict

    if args.stay is not None and args.stay < 0:
        raise _Usage("--stay must not be negative")
    schedule = []
    for action in ("rekey_child", "rekey_ike", "delete_child", "liveness", "delete"):
        for at in getattr(args, action + "_after"):
            if at < 0:
                raise _Usage(f"--{action.replace('_', '-')}-after must not be negative")
            schedule.append((at, action.replace("_", "-")))
    keep: dict = {"stay": args.stay, "until_deleted": args.until_deleted,
                  "schedule": schedule, "on_established": None}
    if args.json and args.events:
        def on_event(result, sa, event) -> None:
            print(json.dumps(event_dict(sa, event, keys=args.show_keys)), flush=True)
        keep["on_event"] = on_event
    return keep


def _selectors(texts, option: str) -> list:
    from .ikev2.ts import TrafficSelector

    try:
        return [TrafficSelector.from_network(t) for t in texts]
    except ValueError as exc:
        raise _Usage(f"{option}: {exc}") from None


def _child_refused(result) -> bool:
    return result.failure is not None


def _home_prefixes(text: str):
    from .ikev2.pools import AddressPool

    pool = AddressPool.parse(text)
    if pool.network.version != 6:
        raise ValueError("--home-prefix must be an IPv6 prefix")
    length = 64 if pool.network.prefixlen < 64 else pool.network.prefixlen
    return AddressPool.parse(text, prefix_length=length)


def _list() -> int:
    width = max(len(name) for name in SCENARIOS)
    for name, cls in sorted(SCENARIOS.items()):
        print(f"{name:<{width}}  {cls.description}")
        if cls.options:
            print(" " * width + "  options: " + ", ".join(
                f"{k}={v}" for k, v in cls.options.items()))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .codesplit import code_split
    from .compare import compare, parse_seeds

    settings = _parse_settings(args.settings)
    seeds = parse_seeds(args.seeds)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()] \
        if args.variants is not None else None
    if variants == []:
        raise ScenarioError("--variants needs at least one variant")
    comparison = compare(args.scenarios or ["handover"], variants, seeds, settings,
                         cpu=not args.no_cpu)
    split = code_split() if args.code else None
    if args.json:
        report = comparison.to_dict()
        if split is not None:
            report["code_split"] = split.to_dict()
        print(json.dumps(report, indent=1))
    elif args.csv:
        sys.stdout.write(comparison.csv())
        if split is not None:
            print(split.text(), file=sys.stderr)
    else:
        print(comparison.text())
        if split is not None:
            print()
            print(split.text())
    return 0 if comparison.ok else 1


def _code_split(args: argparse.Namespace) -> int:
    from .codesplit import code_split

    split = code_split()
    print(json.dumps(split.to_dict(), indent=1) if args.json else split.text(files=args.files))
    return 0


def _run(args: argparse.Namespace) -> int:
    settings = _parse_settings(args.settings)
    reserved = {"backend", "time_scale", "capture"} & set(settings)
    if reserved:
        raise ScenarioError(f"--set {sorted(reserved)[0]}=... is not a scenario option; "
                            "use --backend / --time-scale / --pcap")
    real = args.backend != "inproc"
    scenario = create(args.name, seed=args.seed, backend=args.backend,
                      time_scale=args.time_scale,
                      capture=args.pcap if real else None, **settings)
    try:
        report = scenario.run()
    finally:
        scenario.close()
    if args.pcap and real:      # recorded on the real links while it ran
        report["pcap"] = {"path": args.pcap, "frames": scenario.captured}
    elif args.pcap:
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
        clock = f" at x{args.time_scale:g} real time" if real else ""
        print(f"{report['scenario']} (seed {report['seed']}, {report['backend']}): "
              f"{verdict} after {report['time']:g} s simulated{clock}, {report['events']} "
              f"events, {report['packets']} frames, {report['drops']} drops")
        print(json.dumps(report["result"], indent=2))
    return 0 if report["ok"] else 1


#: what the course needs beyond the stack: the ``course`` extra
COURSE_MODULES = ("jupyterlab", "ipywidgets", "anywidget", "matplotlib", "ipykernel")


def course_notebooks() -> str | None:
    """The course's notebooks folder: ``notebooks/`` in the current folder, or beside
    the package (a checkout installed with ``pip install -e``)."""
    from pathlib import Path

    for candidate in (Path.cwd() / "notebooks", Path(__file__).resolve().parents[1] / "notebooks"):
        if (candidate / "00-start.ipynb").is_file():
            return str(candidate)
    return None


def _course(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [m for m in COURSE_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        print(f"mip6lab course: {', '.join(missing)} missing: the course needs the "
              "'course' extra: python3 -m pip install '.[course]' (from the mip6lab folder)",
              file=sys.stderr)
        return 2
    folder = args.dir or course_notebooks()
    if folder is None or not os.path.isdir(folder):
        print("mip6lab course: no notebooks folder found here; run it from the mip6lab "
              "folder or give --dir", file=sys.stderr)
        return 2
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}",
               f"--ServerApp.ip={args.ip}", f"--ServerApp.port={args.port}",
               "--LabApp.default_url=/lab/tree/00-start.ipynb"]
    if args.no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:   # a lab VM's root: JupyterLab asks
        command.append("--allow-root")
    print(f"mip6lab course: JupyterLab on {folder}, at http://{args.ip}:{args.port}/lab "
          "(or the next free port); open the URL with the token that JupyterLab prints "
          "below. Ctrl-C stops it.", flush=True)
    os.execv(sys.executable, command)
    return 0  # not reached


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "exercises":
        from .exercises.cli import run as _exercises
        return _exercises(args)
    if args.command == "course":
        return _course(args)
    if args.command == "ike":
        try:
            return _ike(args)
        except _Usage as exc:
            print(f"mip6lab ike: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:   # a socket that cannot be bound (port in use, no address)
            print(f"mip6lab ike: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return 1
    try:
        if args.command == "compare":
            return _compare(args)
        if args.command == "chaos":
            return _chaos(args)
        if args.command == "code-split":
            return _code_split(args)
        if args.action == "list":
            return _list()
        return _run(args)
    except ScenarioError as exc:
        print(f"mip6lab: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:   # the reader went away (``| head``): nothing to tell it;
        # stdout goes to /dev/null so the interpreter's last flush stays quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:  # a capture file that cannot be written
        print(f"mip6lab: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:   # the scenario has removed what it made (Scenario.run)
        print("mip6lab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
