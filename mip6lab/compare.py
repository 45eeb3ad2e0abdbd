"""``mip6lab compare``: the same mobility scenarios under each security mode, side by
side -- what the talk's slides 9-10 claim, measured in messages, time and state.

:func:`compare` runs every chosen scenario under every chosen :data:`VARIANTS` entry and
seed, on the in-process network, and returns a :class:`Comparison`: one
:class:`RunResult` per scenario x variant x seed, and their aggregate (mean, min, max
over the seeds) per scenario x variant. ``--set KEY=VALUE`` options go to every run.

The variants (a table: a new security mode is one more row)::

    ipsec-k1      security=ipsec, k_bit=1   the IKE SA follows the CoA (RFC 4877 §7.4)
    ipsec-k0      security=ipsec, k_bit=0   IKE runs again from every new CoA
    ipsec-prefix  security=ipsec, hoa_mode=prefix   the HoA from MIP6_HOME_PREFIX (RFC 5026)
    auth-option   security=auth-option      RFC 4285: BU/BA authenticated in the MH itself,
                                            the tunnel unprotected (as RFC 4285 deployments)
    auth-option-esp  security=auth-option, protect_payload=1   the same, the payload in a
                  manually keyed ESP tunnel SA pair: only when named (``--variants``); it
                  separates what the payload's protection costs from what IKE costs

A scenario that has no ``security`` option runs the ipsec variants (ipsec is what it
does) and skips the others with the reason; a scenario that refuses a variant's settings
(DSMIP6 and ``auth-option``) skips it likewise. Skips are reported, never silent.

What is measured, per registration or handover (the scenario's ``result()["handovers"]``
gives the step; the trace between the step's start -- the MN configured its new CoA --
and its end -- the BA arrived, or the end of the run -- gives the counts):

``ike_messages``
    IKE datagrams (UDP 500, or 4500 with the non-ESP marker) put on a link by the MN or
    the HA: every request, response and retransmission, counted once, at its sender.
``mobility_messages``
    Binding Updates and Acknowledgements put on a link by the MN or the HA: Mobility
    Headers to or from the HA, bare or in ESP of a transport-mode (BU/BA) SA, over IPv6
    or in UDP 4191 -- the classification of :mod:`mip6lab.scenarios.mobility`, so that
    these frames and the IKE ones are exactly the ones its ``signalling_bytes`` sums.
``messages``
    ``ike_messages + mobility_messages``.
``bytes``
    The scenario's ``signalling_bytes``: the frames above, Ethernet header included.
``round_trips``
    How many times the signalling turned around on its way from CoA to BA: in time
    order, every frame the HA sends right after one the MN sent ends one round trip.
    Without loss this is the number of request/response exchanges on the critical path
    (K=1: 1, the BU/BA; K=0: 4, IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, BU/BA); a
    retransmission answered twice counts twice, as it cost twice.
``seam_crossings``, ``interruption_ms``, ``data_lost``, ``duration_ms``
    The scenario's own: key-engine and IKE-control crossings of the mobility/security
    seam; the gap in the answered data stream around the move, the requests of that gap
    never answered; the time from the new CoA to the BA.

Per run: the rows every state table holds at the end, summed over all nodes (the MN and
the HA hold them all): SPD, SAD, PAD, IKE SAs, child SAs, binding cache, binding update
list, the auth-option mode's mobility security associations (RFC 4285 §5.1: the HA's
store and the MN's SA, ``mobility_sas``) -- every table of :data:`mip6lab.state.TABLES`
but addresses, interfaces and NAT mappings, read with :func:`mip6lab.state.lab_state`,
so a table added there later is counted too. Rows of what has ended but stays listed
(an IKE SA in state CLOSED, an SA "dead") are not held and not counted.

CPU time per room, ``cpu_ms``: while the scenario is built and run (not while its report
is made), a sampling profile stops the interpreter every 0.5 ms (``SIGALRM``) and walks
the Python stack from the innermost frame outwards to the first frame of mip6lab's own
code; the process CPU time consumed since the previous sample goes to that frame's room
(:func:`room_of`). So the time spent inside scapy, ``cryptography``, ``ipaddress`` or any
library counts for the room of the project function that called it: scapy building an
ESP packet is IPsec's, building a BU is mobility's. The rooms: ``mobility``
(``mobility/`` and ``wire/mip6.py``), ``coupling`` (``mobility/coupling.py``),
``auth-option`` (``mobility/auth_option.py``, ``wire/auth.py``), ``IKE`` (``ikev2/``,
``crypto/ike/``, ``wire/ikev2.py``), ``IPsec`` (``ipsec/``, the rest of ``crypto/``),
``network`` (``net/``: simulator, links, routers, NAT, SLAAC), and ``lab`` (trace,
scenario scripts and applications, everything else). The sum is the CPU time measured.
Where SIGALRM is taken (another timer running, not the main thread), the coarser
``SIGPROF`` is used, or nothing is measured and ``cpu_ms`` is None. CPU time is the one
column that is not identical between two runs of the same seed.

Exit status of the command: 0 when every run's verdict is ok, 1 when one is not, 2 for a
usage error.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .scenarios import SCENARIOS, ScenarioError, create
from .scenarios.mobility import MobilityScenario, _is_ike, _is_mobility

# -- the variants --------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way to secure the same scenario: its security mode and its other options."""

    name: str
    security: str
    settings: dict[str, Any]
    description: str
    #: run when no variants are named
    default: bool = True

    def options_for(self, cls: type) -> dict[str, Any]:
        """The options this variant gives scenario class ``cls``. Raises
        :class:`VariantNotApplicable` when ``cls`` cannot run it."""
        options = dict(self.settings)
        if "security" in cls.options:
            options["security"] = self.security
        elif self.security != "ipsec":      # without the option, ipsec is what it does
            raise VariantNotApplicable(f"scenario {cls.name} has no option security")
        for key, value in options.items():
            if key not in cls.options:
                raise VariantNotApplicable(f"scenario {cls.name} has no option {key}")
            allowed = cls.choices.get(key)
            if allowed is not None and value not in allowed:
                raise VariantNotApplicable(
                    f"scenario {cls.name}: option {key} takes {', '.join(map(repr, allowed))}"
                    f", not {value!r}")
        return options


class VariantNotApplicable(ValueError):
    """A scenario that cannot run a variant (it lacks the option, or refuses the value)."""


VARIANTS: tuple[Variant, ...] = (
    Variant("ipsec-k1", "ipsec", {"k_bit": 1},
            "IPsec/IKEv2 (RFC 4877), K=1: the IKE SA follows the care-of address"),
    Variant("ipsec-k0", "ipsec", {"k_bit": 0},
            "IPsec/IKEv2 (RFC 4877), K=0: IKE runs again from every new care-of address"),
    Variant("ipsec-prefix", "ipsec", {"hoa_mode": "prefix"},
            "IPsec/IKEv2, the home prefix over IKEv2 (RFC 5026 MIP6_HOME_PREFIX)"),
    Variant("auth-option", "auth-option", {},
            "RFC 4285 authentication option: BU/BA authenticated without IPsec/IKEv2"),
    Variant("auth-option-esp", "auth-option", {"protect_payload": 1},
            "RFC 4285, and the payload in a manually keyed ESP tunnel (a what-if: the "
            "payload protected as the ipsec variants protect it)", default=False),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)
#: the variants run when none are named
DEFAULT_VARIANTS = tuple(v.name for v in VARIANTS if v.default)

#: the per-step columns, with what each counts (the JSON's ``definitions``)
STEP_COLUMNS: dict[str, str] = {
    "ike_messages": "IKE datagrams sent by the MN or the HA (requests, responses, "
                    "retransmissions), from the new CoA to the BA",
    "mobility_messages": "BU and BA frames sent by the MN or the HA (bare MH, or ESP of a "
                         "transport-mode BU/BA SA; IPv6 or UDP 4191)",
    "messages": "ike_messages + mobility_messages",
    "bytes": "the scenario's signalling_bytes: those frames' lengths, Ethernet included",
    "round_trips": "times the signalling turned around: an HA frame right after an MN "
                   "frame, in time order",
    "seam_crossings": "crossings of the mobility/security seam at the MN and the HA",
    "interruption_ms": "gap between the last answer before the move and the first after",
    "data_lost": "requests of that gap never answered",
    "duration_ms": "from the new care-of address to the Binding Acknowledgement",
}
#: the state tables not counted as "states held" (addresses and attachments, not state
#: a security mode adds)
_NOT_STATE = ("addresses", "interfaces", "nat_mappings")
ROOMS = ("mobility", "coupling", "auth-option", "IKE", "IPsec", "network", "lab")

# -- where CPU time goes -------------------------------------------------------------------


def room_of(path: str) -> str:
    """The room of a file, from its path inside the package (``ipsec/esp.py``)."""
    path = path.replace("\\", "/")
    if path == "mobility/coupling.py":
        return "coupling"
    if path in ("mobility/auth_option.py", "wire/auth.py"):
        return "auth-option"
    if path.startswith("mobility/") or path == "wire/mip6.py":
        return "mobility"
    if path.startswith(("ikev2/", "crypto/ike/")) or path == "wire/ikev2.py":
        return "IKE"
    if path.startswith(("ipsec/", "crypto/")):
        return "IPsec"
    if path.startswith("net/"):
        return "network"
    return "lab"


_PACKAGE = str(Path(__file__).resolve().parent) + os.sep


class RoomProfiler:
    """A sampling profile of the CPU time, by room (see the module's docstring).

    ``with RoomProfiler() as p: ...`` then ``p.cpu_ms`` (None when it could not
    sample here)."""

    interval = 0.0005

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(ROOMS, 0.0)
        self.samples = 0
        self.total = 0.0
        self.method: str | None = None
        self._rooms: dict[str, str | None] = {}
        self._last = 0.0

    def _room(self, filename: str) -> str | None:
        room = self._rooms.get(filename, "")
        if room == "":
            resolved = os.path.realpath(filename) if filename[:1] != "<" else filename
            room = room_of(resolved[len(_PACKAGE):]) if resolved.startswith(_PACKAGE) \
                else None
            self._rooms[filename] = room
        return room

    def _sample(self, signum, frame) -> None:
        now = time.process_time()
        spent, self._last = now - self._last, now
        room = None
        while frame is not None and room is None:
            room = self._room(frame.f_code.co_filename)
            frame = frame.f_back
        self.seconds[room or "lab"] += spent
        self.samples += 1

    def __enter__(self) -> RoomProfiler:
        self._start = time.process_time()
        self._last = self._start
        if threading.current_thread() is not threading.main_thread() or \
                not hasattr(signal, "setitimer"):
            return self
        for signum, timer in ((signal.SIGALRM, signal.ITIMER_REAL),
                              (signal.SIGPROF, signal.ITIMER_PROF)):
            if signal.getsignal(signum) in (signal.SIG_DFL, None) and \
                    signal.getitimer(timer) == (0.0, 0.0):
                self._signal, self._timer = signum, timer
                signal.signal(signum, self._sample)
                signal.setitimer(timer, self.interval, self.interval)
                self.method = "SIGALRM" if signum == signal.SIGALRM else "SIGPROF"
                break
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.method is not None:
            signal.setitimer(self._timer, 0, 0)
            signal.signal(self._signal, signal.SIG_DFL)
            # what ran after the last sample goes where the last sample went: unknown,
            # so to the lab; it is under one interval
            self._sample(None, None)
            self.samples -= 1
        self.total = time.process_time() - self._start

    @property
    def cpu_ms(self) -> dict[str, float] | None:
        if self.method is None:
            return None
        return {room: round(1000 * seconds, 3) for room, seconds in self.seconds.items()}


# -- one run -------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One scenario under one variant and seed: its steps, its end state, its CPU."""

    scenario: str
    variant: str
    seed: int
    options: dict[str, Any]
    ok: bool
    steps: list[dict[str, Any]]
    states: dict[str, int]
    states_by_node: dict[str, dict[str, int]]
    cpu_ms: dict[str, float] | None
    cpu_total_ms: float
    data: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "variant": self.variant, "seed": self.seed,
                "options": self.options, "ok": self.ok, "steps": self.steps,
                "states": self.states, "states_by_node": self.states_by_node,
                "cpu_ms": self.cpu_ms, "cpu_total_ms": self.cpu_total_ms,
                "data": self.data}


def _kind(index: int, to: str) -> str:
    if index == 0:
        return "registration"
    return "deregistration" if to == "home" else "handover"


def round_trips(senders: Sequence[str]) -> int:
    """How many times signalling sent by ``senders`` (in time order, "mn" or "ha")
    turned around: every "ha" right after an "mn"."""
    return sum(1 for before, now in zip(senders, senders[1:]) if (before, now) == ("mn", "ha"))


def _signalling(scenario: MobilityScenario, start_us: int, end_us: int,
                bu_spis: set[int]) -> tuple[int, int, list[str]]:
    """IKE frames, BU/BA frames and the senders of both in order, sent by the MN or the
    HA between ``start_us`` and ``end_us``."""
    ike = mobility = 0
    senders: list[str] = []
    for event in scenario.lab.events:
        if event.time_us < start_us or event.kind != "tx" or event.node not in ("mn", "ha"):
            continue
        if event.time_us > end_us:
            break
        if _is_ike(event):
            ike += 1
        elif _is_mobility(event, bu_spis):
            mobility += 1
        else:
            continue
        senders.append(event.node)
    return ike, mobility, senders


def _steps(scenario: MobilityScenario, report: dict[str, Any]) -> list[dict[str, Any]]:
    bu_spis = {sa.spi for sa in scenario.security_associations() if sa.mode == "transport"}
    steps = []
    for index, (handover, row) in enumerate(zip(scenario.mobile.handovers,
                                                report["result"]["handovers"])):
        end = handover.completed_us if handover.completed_us is not None \
            else scenario.lab.sim.now_us
        ike, mobility, senders = _signalling(scenario, handover.started_us, end, bu_spis)
        steps.append({
            "step": index + 1, "kind": _kind(index, row["to"]), "to": row["to"],
            "coa": row["coa"], "ba_status": row["ba_status"],
            "ike_messages": ike, "mobility_messages": mobility, "messages": ike + mobility,
            "bytes": row["signalling_bytes"], "round_trips": round_trips(senders),
            "seam_crossings": row["seam_crossings"],
            "interruption_ms": row["interruption_ms"], "data_lost": row["data_lost"],
            "duration_ms": row["duration_ms"], "bu_sent": row["bu_sent"],
            "ike_exchanges": row["ike_exchanges"],
        })
    return steps


def state_tables() -> list[str]:
    """The tables counted as the state a run holds: every table of
    :data:`mip6lab.state.TABLES` but addresses, interfaces and NAT mappings."""
    from .state import TABLES

    return [name for name in TABLES if name not in _NOT_STATE]


#: row states of what is gone but still listed: a closed IKE SA stays in the daemon's
#: table so that a student sees it end; an SA the key engine killed
_ENDED = ("CLOSED", "dead")


def _held(rows) -> int:
    return sum(1 for row in rows if row.get("state") not in _ENDED)


def _states(scenario: MobilityScenario) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    from .state import lab_state

    names = state_tables()
    state = lab_state(scenario.lab)
    by_node = {node: {name: _held(tables[name]) for name in names if name in tables}
               for node, tables in state.tables.items()}
    by_node = {node: counts for node, counts in by_node.items() if counts}
    totals = {name: sum(counts.get(name, 0) for counts in by_node.values()) for name in names}
    return totals, by_node


def run_one(name: str, variant: Variant, seed: int, settings: dict[str, Any] | None = None,
            *, cpu: bool = True) -> RunResult:
    """Run scenario ``name`` under ``variant`` with ``seed`` and the extra ``settings``."""
    cls = _mobility_class(name)
    options = {**(settings or {}), **variant.options_for(cls)}
    profiler = RoomProfiler() if cpu else None
    started = time.process_time()
    if profiler is not None:
        with profiler:
            scenario = create(name, seed=seed, **options)
            scenario.run()
    else:
        scenario = create(name, seed=seed, **options)
        scenario.run()
    spent = time.process_time() - started
    try:
        report = scenario.report()
        states, by_node = _states(scenario)
        return RunResult(name, variant.name, seed, dict(report["options"]), bool(report["ok"]),
                         _steps(scenario, report), states, by_node,
                         profiler.cpu_ms if profiler is not None else None,
                         round(1000 * spent, 3), dict(report["result"]["data"]))
    finally:
        scenario.close()


def _mobility_class(name: str) -> type[MobilityScenario]:
    cls = SCENARIOS.get(name)
    known = ", ".join(mobility_scenarios())
    if cls is None:
        raise ScenarioError(f"no scenario {name!r}; try one of: {known}")
    if not issubclass(cls, MobilityScenario):
        raise ScenarioError(f"compare runs the mobility scenarios ({known}), not {name!r}")
    return cls


def mobility_scenarios() -> list[str]:
    """The scenarios :func:`compare` can run."""
    return sorted(n for n, cls in SCENARIOS.items() if issubclass(cls, MobilityScenario))


# -- many runs -----------------------------------------------------------------------------


def _spread(values: Iterable[Any]) -> dict[str, Any] | None:
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"mean": round(statistics.fmean(present), 3), "min": min(present),
            "max": max(present)}


@dataclass
class Comparison:
    """Every run of :func:`compare`, their aggregate, and what was skipped and why."""

    scenarios: list[str]
    variants: list[str]
    seeds: list[int]
    settings: dict[str, Any]
    runs: list[RunResult]
    skipped: list[dict[str, str]]

    @property
    def ok(self) -> bool:
        return all(run.ok for run in self.runs)

    def aggregate(self) -> list[dict[str, Any]]:
        """One row per scenario x variant that ran: every step's columns and the run's
        states and CPU as ``{"mean", "min", "max"}`` over the seeds (None when no seed
        had a value, e.g. the first registration's interruption)."""
        rows = []
        for name in self.scenarios:
            for variant in self.variants:
                runs = [r for r in self.runs if (r.scenario, r.variant) == (name, variant)]
                if not runs:
                    continue
                steps = []
                for index in range(max(len(r.steps) for r in runs)):
                    present = [r.steps[index] for r in runs if index < len(r.steps)]
                    first = present[0]
                    step = {"step": index + 1, "kind": first["kind"], "to": first["to"],
                            "runs": len(present)}
                    step.update({column: _spread(s[column] for s in present)
                                 for column in STEP_COLUMNS})
                    steps.append(step)
                cpu = [r.cpu_ms for r in runs if r.cpu_ms is not None]
                rows.append({
                    "scenario": name, "variant": variant, "seeds": [r.seed for r in runs],
                    "runs": len(runs), "ok_runs": sum(r.ok for r in runs), "steps": steps,
                    "states": {t: _spread(r.states[t] for r in runs) for t in runs[0].states},
                    "cpu_ms": {room: _spread(c[room] for c in cpu) for room in ROOMS}
                    if cpu else None,
                    "cpu_total_ms": _spread(r.cpu_total_ms for r in runs),
                })
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenarios": self.scenarios, "variants": self.variants, "seeds": self.seeds,
            "settings": self.settings,
            "definitions": {**STEP_COLUMNS,
                            "states": "rows of each state table at the end, all nodes",
                            "cpu_ms": "CPU time per room (sampled; library time to the "
                                      "room of its nearest mip6lab caller)"},
            "variant_settings": {v.name: {"security": v.security, **v.settings}
                                 for v in VARIANTS if v.name in self.variants},
            "runs": [r.to_dict() for r in self.runs],
            "aggregate": self.aggregate(),
            "skipped": self.skipped,
            "ok": self.ok,
        }

    # -- csv ---------------------------------------------------------------------------------

    def csv_rows(self) -> list[dict[str, Any]]:
        """One flat row per step of every run, with the run's states and CPU repeated on
        each (the long format a spreadsheet or pandas reads)."""
        rows = []
        for run in self.runs:
            common = {"scenario": run.scenario, "variant": run.variant, "seed": run.seed,
                      "ok": int(run.ok)}
            extra = {f"state_{t}": n for t, n in run.states.items()}
            extra.update({f"cpu_{room}_ms": (run.cpu_ms or {}).get(room) for room in ROOMS})
            extra["cpu_total_ms"] = run.cpu_total_ms
            for step in run.steps:
                rows.append({**common, **{k: step[k] for k in ("step", "kind", "to", "coa",
                                                               "ba_status")},
                             **{c: step[c] for c in STEP_COLUMNS}, **extra})
        return rows

    def csv(self) -> str:
        rows = self.csv_rows()
        out = io.StringIO()
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        return out.getvalue()

    # -- text --------------------------------------------------------------------------------

    def text(self) -> str:
        total = len(self.runs)
        bad = sum(not r.ok for r in self.runs)
        out = [f"mip6lab compare: {', '.join(self.scenarios)} x {', '.join(self.variants)} "
               f"x seeds {', '.join(map(str, self.seeds))}"
               + (f" with {', '.join(f'{k}={v}' for k, v in self.settings.items())}"
                  if self.settings else "")
               + f": {total} runs, " + (f"{bad} FAILED" if bad else "all ok"),
               "values: mean over the seeds, (min-max) where they differ; messages IKE+BU/BA",
               ""]
        header = ["scenario", "variant", "step", "messages", "bytes", "RTs", "seam",
                  "interrupt ms", "lost", "CoA->BA ms"]
        table = [header]
        notes: list[tuple[int, str]] = []
        for row in self.aggregate():
            first = True
            for step in row["steps"]:
                ike, mh = step["ike_messages"], step["mobility_messages"]
                table.append([row["scenario"] if first else "", row["variant"] if first else "",
                              f"{step['step']} {step['kind']} ({step['to']})",
                              f"{_num(ike)}+{_num(mh)}", _num(step["bytes"]),
                              _num(step["round_trips"]), _num(step["seam_crossings"]),
                              _num(step["interruption_ms"]), _num(step["data_lost"]),
                              _num(step["duration_ms"])])
                first = False
            states = ", ".join(f"{_STATE_LABELS.get(t, t)} {_num(v)}"
                               for t, v in row["states"].items() if v and v["max"])
            cpu = row["cpu_ms"]
            cpu_text = "not measured" if cpu is None else ", ".join(
                f"{room} {cpu[room]['mean']:.0f}" for room in ROOMS if cpu[room]["max"]) + \
                f" (total {row['cpu_total_ms']['mean']:.0f})"
            ok = "" if row["ok_runs"] == row["runs"] else \
                f"   FAILED in {row['runs'] - row['ok_runs']} of {row['runs']} runs"
            notes.append((len(table), f"    states at the end: {states or 'none'}"))
            notes.append((len(table), f"    CPU ms by room: {cpu_text}{ok}"))
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip()
                 for r in table]
        lines.insert(1, "  ".join("-" * w for w in widths))
        for position, note in reversed(notes):
            lines.insert(position + 1, note)
        out.extend(lines)
        for skip in self.skipped:
            out.append(f"skipped {skip['scenario']} x {skip['variant']}: {skip['reason']}")
        return "\n".join(out)


_STATE_LABELS = {"spd": "SPD", "sad": "SAD", "pad": "PAD", "ike_sas": "IKE SAs",
                 "child_sas": "child SAs", "binding_cache": "binding cache",
                 "binding_update_list": "BUL", "mobility_sas": "mobility SAs"}


def _num(spread: dict[str, Any] | None) -> str:
    if spread is None:
        return "-"

    def fmt(x: float) -> str:
        return f"{x:g}" if isinstance(x, int) or float(x).is_integer() else f"{x:.1f}"
    if spread["min"] == spread["max"]:
        return fmt(spread["min"])
    return f"{fmt(spread['mean'])} ({fmt(spread['min'])}-{fmt(spread['max'])})"


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` is those seeds; ``"3"`` is three seeds, 0..2."""
    try:
        if "," in text:
            seeds = [int(part) for part in text.split(",") if part.strip()]
        else:
            count = int(text)
            if count < 1:
                raise ValueError
            seeds = list(range(count))
    except ValueError:
        raise ScenarioError(f"--seeds takes a count (3 = seeds 0..2) or a list (0,1,2), "
                            f"not {text!r}") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ScenarioError(f"--seeds {text!r}: distinct seeds of 0 or more")
    return seeds


def compare(scenarios: Sequence[str] = ("handover",), variants: Sequence[str] | None = None,
            seeds: Sequence[int] = (0, 1, 2), settings: dict[str, Any] | None = None, *,
            cpu: bool = True, progress: Callable[[str], None] | None = None) -> Comparison:
    """Run every scenario x variant x seed; see the module's docstring.

    Raises :class:`~mip6lab.scenarios.ScenarioError` for a usage error: an unknown or
    non-mobility scenario or variant, a setting a scenario refuses, a setting that a
    chosen variant sets itself, or nothing left to run."""
    scenarios = list(dict.fromkeys(scenarios)) or ["handover"]
    names = list(dict.fromkeys(variants)) if variants else list(DEFAULT_VARIANTS)
    unknown = [n for n in names if n not in VARIANT_NAMES]
    if unknown:
        raise ScenarioError(f"no variant {unknown[0]!r}; the variants are "
                            f"{', '.join(VARIANT_NAMES)}")
    chosen = [v for v in VARIANTS if v.name in names]
    settings = dict(settings or {})
    for variant in chosen:
        clash = sorted(({"security"} | set(variant.settings)) & set(settings))
        if clash:
            raise ScenarioError(f"--set {clash[0]}=... clashes with variant {variant.name}, "
                                f"which sets it; choose the variants with --variants")
    seeds = list(seeds)
    plan: list[tuple[str, Variant]] = []
    skipped: list[dict[str, str]] = []
    for name in scenarios:
        cls = _mobility_class(name)
        create(name, seed=seeds[0], **settings).close()   # the settings it refuses: usage
        for variant in chosen:
            try:
                options = variant.options_for(cls)
                create(name, seed=seeds[0], **settings, **options).close()
            except (VariantNotApplicable, ScenarioError) as exc:
                skipped.append({"scenario": name, "variant": variant.name,
                                "reason": str(exc)})
                continue
            plan.append((name, variant))
    if not plan:
        raise ScenarioError("nothing to run: " + "; ".join(
            f"{s['scenario']} x {s['variant']}: {s['reason']}" for s in skipped))
    runs = []
    for name, variant in plan:
        for seed in seeds:
            if progress is not None:
                progress(f"{name} {variant.name} seed {seed}")
            runs.append(run_one(name, variant, seed, settings, cpu=cpu))
    return Comparison(scenarios, [v.name for v in chosen], seeds, settings, runs, skipped)


def dumps(comparison: Comparison) -> str:
    """The comparison as the JSON ``mip6lab compare --json`` prints."""
    return json.dumps(comparison.to_dict(), indent=1)


__all__ = ["DEFAULT_VARIANTS", "ROOMS", "STEP_COLUMNS", "VARIANTS", "Comparison", "RoomProfiler", "RunResult",
           "Variant", "VariantNotApplicable", "compare", "dumps", "mobility_scenarios",
           "parse_seeds", "room_of", "round_trips", "run_one", "state_tables"]
