"""The dashboard: latency and bytes to the browser per action, memory, recorder's overhead.

    python benchmarks/dashboard.py                     # handover and dsmip6-nat (about 2 min)
    python benchmarks/dashboard.py --rounds 3          # fewer samples (about 1 min)
    python benchmarks/dashboard.py --scenarios handover --repeat 1
    python benchmarks/dashboard.py --profile           # cProfile of step and back
    python benchmarks/dashboard.py --profile-run       # cProfile of "run to the end"
    python benchmarks/run.py dashboard --rounds=3      # the same, from the one command

What a student waits for after a click is the kernel's Python side: the callback doing
the work (the timeline moving, the lab running on) and every part of the dashboard
redrawn (ladder, topology, inspector, tables, seam, controls). Each action comes in as
the browser sends it, through ``Widget._handle_msg``: a click is the button's "custom"
message, which calls what the button does (``dash.controls.step.click()``,
``dash.ladder.view.click(i)`` ...); a value typed or chosen is an "update" of the
control's state (so ipywidgets' echo_update back to the browser is counted too).
What the kernel sends back is recorded by a comm installed as ``comm.create_comm``
(without a kernel the comm is a dummy that sends nothing): per message, the size of its
content and metadata as jupyter_client packs them (``json.dumps(..., ensure_ascii=False)``
in UTF-8) plus its binary buffers; the envelope of each message (header, parent header,
signature: about half a kilobyte) is not counted, the number of messages is printed.
The latency includes that one ``json.dumps`` per message, as a kernel's session does.

Per scenario, in a fresh process, seeded (``--seed``): ``--rounds`` rounds (8), each
in the next eighth of the run: jump ahead to a random event there (the lab runs on to
it), ``--steps`` steps (25), as many backs, as many steps again (over what is recorded),
``--jumps`` (10) jumps back to random recorded events, as many selects (a click on a
random row the ladder draws), two filter changes (the protocols shown: a random subset,
then all again); then ``--rebuilds`` (2) pairs of what-if rebuilds (k_bit 0 then 1:
the option chosen, then "rebuild with these options"). A step that made the lab run
(new events recorded) is "step (runs the lab)", one that moved over recorded events
"step (recorded)"; a jump to an event already recorded is "jump back (recorded)",
to one ahead "jump ahead (runs the lab)". Percentiles are nearest-rank (p95 of fewer
than 20 samples is the largest but at most one).

Run to the end (``--repeat`` times, 2, alternating, best counts, each in a fresh
process): the dashboard's "run to the end" button (``Session.run_all``: the whole run
recorded, the tables read at every event, then every part redrawn once) against
``scenario.run()`` of the same scenario and seed without a dashboard -- the ratio is
the recorder's overhead; and the kernel process's resident memory (VmRSS of
/proc/self/status) after it, against the same after ``scenario.run()``; then, in the
dashboard's process, the first protocol filter (IKE and MH only), which classifies every
frame recorded so far: the worst case of a filter change.

Targets (the dashboard issue): step and back p95 < 100 ms, what-if rebuild < 2 s
(p95), RSS < 500 MB after recording the whole longest scenario (dsmip6-nat); printed
PASS/FAIL beside the figures. Run alone, this file exits with status 1 if a target
fails; from benchmarks/run.py (where no target is a test) they are printed only.
Latencies also name a baseline of the same process: the lab's own time per event
(``scenario.run()``'s wall time over its events), which takes the machine's speed out.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import pathlib
import pstats
import random
import subprocess
import sys
import time
from collections import defaultdict

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import Result  # noqa: E402

DEFAULT_SCENARIOS = ("handover", "dsmip6-nat")
STEP_BACK_MS, REBUILD_S, RSS_MB = 100.0, 2.0, 500.0
FIRST_FILTER = ("IKE", "MH")      # the protocols chosen after run to the end

ACTIONS = ("step (runs the lab)", "step (recorded)", "back", "jump back (recorded)",
           "jump ahead (runs the lab)", "select (ladder row click)",
           "filter change (subset and back)", "what-if rebuild (k_bit 0/1)",
           "build the dashboard (comms opened)")


# -- what is sent to the browser ---------------------------------------------------------

SENT: list[tuple[str, int]] = []      # (what, bytes) of every message, in order


def _install_recorder() -> None:
    """Make every widget's comm one that records what it would send (before any widget
    is made: ipywidgets calls ``comm.create_comm`` when a widget opens)."""
    import comm
    from comm import DummyComm
    from ipywidgets.widgets.widget import _instances

    class RecordingComm(DummyComm):
        def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
            content = {"comm_id": self.comm_id, "data": data or {}, **keys}
            size = len(json.dumps(content, ensure_ascii=False, default=str).encode(
                "utf8", errors="surrogateescape"))
            size += len(json.dumps(metadata or {}).encode())
            size += sum(len(memoryview(b).cast("B")) for b in buffers or ())
            SENT.append((_label(msg_type, data or {}, _instances.get(self.comm_id)), size))

    comm.create_comm = RecordingComm


def _label(msg_type: str, data: dict, widget) -> str:
    """What a message is about: the widget (its type and first CSS class) and the keys."""
    state = data.get("state", {}) if isinstance(data, dict) else {}
    if msg_type == "comm_open":
        return f"open {state.get('_model_name', '?')}"
    if msg_type == "comm_close":
        return "close"
    name = type(widget).__name__ if widget is not None else "?"
    classes = getattr(widget, "_dom_classes", ())
    if classes:
        name += f"[{classes[0]}]"
    method = data.get("method", "?")
    return f"{name} {method} {','.join(sorted(state))}".rstrip()


# -- the browser's side of an action ---------------------------------------------------


def _custom(widget, content: dict) -> None:
    widget._handle_msg({"content": {"data": {"method": "custom", "content": content}},
                        "buffers": []})


def _update(widget, **state) -> None:
    widget._handle_msg({"content": {"data": {"method": "update", "state": state,
                                             "buffer_paths": []}}, "buffers": []})


def _click(button) -> None:
    _custom(button, {"event": "click"})


# -- measurements (each in a child process) --------------------------------------------


def _rss_kb() -> tuple[int, int]:
    """VmRSS and VmHWM of this process, kB."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line.split(":")[0]] = int(line.split()[1])
    return values["VmRSS"], values["VmHWM"]


class Meter:
    """Samples per action: seconds, bytes sent, messages sent; bytes by part."""

    def __init__(self) -> None:
        self.samples: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
        self.parts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.extra: dict[str, list[int]] = defaultdict(list)

    def measure(self, action, work) -> None:
        mark = len(SENT)
        start = time.perf_counter()
        work()
        elapsed = time.perf_counter() - start
        sent = SENT[mark:]
        self.samples[action].append((elapsed, sum(s for _, s in sent), len(sent)))
        for what, size in sent:
            self.parts[action][what] += size


def _bare_run(name: str, seed: int) -> tuple[float, int]:
    """scenario.run() without a dashboard: wall seconds and events."""
    from mip6lab.scenarios import create

    scenario = create(name, seed)
    start = time.perf_counter()
    report = scenario.run()
    elapsed = time.perf_counter() - start
    assert report["ok"], f"{name} did not reach its goal without a dashboard"
    scenario.close()
    return elapsed, report["events"]


def measure_actions(name: str, args: argparse.Namespace) -> dict:
    """Every dashboard action on ``name``, as the browser sends it (see the docstring)."""
    _install_recorder()
    from mip6lab.inspection import PROTOCOLS
    from mip6lab.widgets import Dashboard
    from mip6lab.widgets.ladder import window
    from ipywidgets.widgets.widget import _instances

    bare_s, total = _bare_run(name, args.seed)
    gc.collect()
    rng = random.Random(args.seed)
    meter = Meter()
    holder = {}
    meter.measure(ACTIONS[8], lambda: holder.setdefault("dash", Dashboard(name, args.seed)))
    dash = holder["dash"]
    session, timeline, controls = dash.session, dash.timeline, dash.controls
    widgets_built = len(_instances)

    def step() -> None:
        before = timeline.recorded
        mark, start = len(SENT), time.perf_counter()
        _click(controls.step)
        elapsed = time.perf_counter() - start
        sent = SENT[mark:]
        action = ACTIONS[0] if timeline.recorded > before else ACTIONS[1]
        meter.samples[action].append((elapsed, sum(s for _, s in sent), len(sent)))
        for what, size in sent:
            meter.parts[action][what] += size

    def jump(index: int) -> None:
        def work() -> None:
            _update(controls.index, value=index)
            _click(controls.jump)
        ahead = index >= timeline.recorded
        before = timeline.recorded
        meter.measure(ACTIONS[4] if ahead else ACTIONS[3], work)
        if ahead:
            meter.extra["events run per jump ahead"].append(timeline.recorded - before)
        assert timeline.cursor == index, (timeline.cursor, index, session.message)

    protocols = list(PROTOCOLS)
    for r in range(args.rounds):
        lo, hi = r * total // args.rounds, (r + 1) * total // args.rounds - 1
        jump(rng.randint(max(lo, timeline.recorded), max(hi, timeline.recorded)))
        for _ in range(args.steps):
            step()
        for _ in range(args.steps):
            meter.measure(ACTIONS[2], lambda: _click(controls.back))
        for _ in range(args.steps):
            step()
        for _ in range(args.jumps):
            jump(rng.randrange(0, timeline.recorded))
        for _ in range(args.jumps):
            rows = window(session, dash.ladder.size)[0]
            rows = [i for i in rows if i != timeline.cursor] or rows
            index = rng.choice(rows)
            meter.measure(ACTIONS[5], lambda: _custom(dash.ladder.view, {"select": index}))
            assert timeline.cursor == index, (timeline.cursor, index)
        subset = sorted(rng.sample(range(len(protocols)), rng.randint(1, len(protocols) - 1)))
        for chosen in (subset, list(range(len(protocols)))):
            meter.measure(ACTIONS[6], lambda: _update(dash.ladder.protocols, index=chosen))
        assert session.protocols_shown is None
    run_total = timeline.recorded
    widgets_before = len(_instances)
    for _ in range(args.rebuilds):
        for k in (0, 1):
            def rebuild() -> None:
                control = dash.whatif.controls["k_bit"]
                _update(control, index=list(control.options).index(k))
                _click(dash.whatif.apply)
            meter.measure(ACTIONS[7], rebuild)
            assert dash.scenario.settings["k_bit"] == k, session.message
    return {"name": name, "seed": args.seed, "events": total, "recorded": run_total,
            "bare_s": bare_s, "samples": meter.samples,
            "parts": {a: dict(p) for a, p in meter.parts.items()},
            "extra": meter.extra, "widgets": widgets_built,
            "widgets_per_rebuild": (len(_instances) - widgets_before) / max(
                2 * args.rebuilds, 1)}


def measure_run(name: str, mode: str, seed: int) -> dict:
    """Run to the end: the dashboard's button ("dash") or scenario.run() ("bare")."""
    if mode == "bare":
        from mip6lab.scenarios import create

        scenario = create(name, seed)
        gc.collect()
        rss_before, _ = _rss_kb()
        start = time.perf_counter()
        report = scenario.run()
        elapsed = time.perf_counter() - start
        events, ok = report["events"], report["ok"]
        sent, messages = 0, 0
    else:
        _install_recorder()
        from mip6lab.widgets import Dashboard

        dash = Dashboard(name, seed)
        gc.collect()
        rss_before, _ = _rss_kb()
        mark = len(SENT)
        start = time.perf_counter()
        _click(dash.controls.end)           # Session.run_all, then every part redrawn
        elapsed = time.perf_counter() - start
        events, ok = dash.timeline.recorded, dash.session.verdict() == "verdict: ok"
        sent, messages = sum(s for _, s in SENT[mark:]), len(SENT) - mark
    rss, hwm = _rss_kb()
    out = {"name": name, "mode": mode, "seconds": elapsed, "events": events, "ok": ok,
           "rss_before_kb": rss_before, "rss_kb": rss, "hwm_kb": hwm, "bytes": sent,
           "messages": messages}
    if mode == "dash":     # then the first protocol filter: every recorded frame classified
        from mip6lab.inspection import PROTOCOLS

        chosen = [list(PROTOCOLS).index(p) for p in FIRST_FILTER]
        start = time.perf_counter()
        _update(dash.ladder.protocols, index=chosen)
        out["first_filter_s"] = time.perf_counter() - start
    return out


# -- child processes ---------------------------------------------------------------------


def _spawn(flags: list[str]) -> dict:
    """One child, alone on the machine (what is timed)."""
    command = [sys.executable, str(pathlib.Path(__file__).resolve()), *flags]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _common_flags(args: argparse.Namespace) -> list[str]:
    return ["--seed", str(args.seed), "--rounds", str(args.rounds), "--steps",
            str(args.steps), "--jumps", str(args.jumps), "--rebuilds", str(args.rebuilds)]


# -- the report ------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)) - 1, 0)]


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _targets(action: str) -> tuple[str, float] | None:
    """(label, limit in seconds) of an action's p95 target."""
    if action.startswith(("step", "back")):
        return f"p95 < {STEP_BACK_MS:g} ms", STEP_BACK_MS / 1000
    if action.startswith("what-if"):
        return f"p95 < {REBUILD_S:g} s", REBUILD_S
    return None


def _action_table(out: dict) -> list[str]:
    per_event_us = 1e6 * out["bare_s"] / out["events"]
    lines = [f"{out['name']} (seed {out['seed']}, {out['events']} events in the run, "
             f"{out['recorded']} recorded before the what-ifs; the lab alone "
             f"{per_event_us:.0f} us/event; {out['widgets']} widgets)",
             f"{'action':<36} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} "
             f"{'p50 KB':>7} {'p95 KB':>7} {'msgs':>5}  target"]
    lines.append("-" * len(lines[-1]))
    for action in ACTIONS:
        samples = out["samples"].get(action)
        if not samples:
            continue
        seconds = [s for s, _, _ in samples]
        sizes = [b for _, b, _ in samples]
        messages = [m for _, _, m in samples]
        target = _targets(action)
        verdict = ""
        if target:
            verdict = f"{target[0]}: {_verdict(percentile(seconds, 95) < target[1])}"
        lines.append(f"{action:<36} {len(samples):>4} {1000 * percentile(seconds, 50):>8.1f} "
                     f"{1000 * percentile(seconds, 95):>8.1f} {1000 * max(seconds):>8.1f} "
                     f"{percentile(sizes, 50) / 1000:>7.1f} {percentile(sizes, 95) / 1000:>7.1f} "
                     f"{percentile(messages, 50):>5}  {verdict}")
    ahead = out["extra"].get("events run per jump ahead")
    if ahead:
        lines.append(f"jump ahead: {percentile(ahead, 50)} events recorded per jump (p50), "
                     f"{min(ahead)} to {max(ahead)}")
    lines.append(f"what-if rebuild: {out['widgets_per_rebuild']:.0f} more widgets alive "
                 "after each (ipywidgets keeps every widget not closed)")
    for action in (ACTIONS[0], ACTIONS[2]):
        parts, samples = out["parts"].get(action), out["samples"].get(action)
        if parts and samples:
            top = sorted(parts.items(), key=lambda kv: -kv[1])[:6]
            lines.append(f"bytes per {action.split(' ')[0]} by part (mean): " + ", ".join(
                f"{what} {size / len(samples) / 1000:.1f} KB" for what, size in top))
    return lines


def run(argv: list[str] | None = None) -> list[Result]:
    """For benchmarks/run.py: the tables are printed, the results are returned."""
    args = _parser().parse_args(argv or [])
    names = args.scenarios.split(",")
    flags = _common_flags(args)
    results: list[Result] = []
    print("   latency of the kernel's Python side per action (the callback and every widget "
          "update), and what it sends to the browser (message contents, KB = 1000 B); "
          "each scenario in a fresh process")
    for name in names:
        out = _spawn(["--child-actions", name, *flags])
        for line in _action_table(out):
            print("   " + line)
        per_event_us = 1e6 * out["bare_s"] / out["events"]
        for action in (ACTIONS[0], ACTIONS[1], ACTIONS[2], ACTIONS[7]):
            samples = out["samples"].get(action)
            if not samples:
                continue
            p95 = percentile([s for s, _, _ in samples], 95)
            label, limit = _targets(action)
            results.append(Result(f"{name}: {action.split(' (')[0]} p95"
                                  + (" (runs the lab)" if action == ACTIONS[0] else
                                     " (recorded)" if action == ACTIONS[1] else ""),
                                  1e6 * p95, "us", "the lab's time per event", per_event_us,
                                  target=f"{label}: {_verdict(p95 < limit)}"))
    print(f"   run to the end: the dashboard's button (Session.run_all) against "
          f"scenario.run(), {args.repeat} time(s) each, alternating, each in a fresh "
          "process; best time, RSS of the last")
    header = (f"{'scenario':<12} {'events':>7} {'run() s':>8} {'dash s':>7} {'x':>5} "
              f"{'RSS run() MB':>12} {'RSS dash MB':>11} {'x':>5} {'growth x':>8} "
              f"{'HWM MB':>7} {'sent KB':>8} {'msgs':>5} {'filter s':>8}  target")
    print("   " + header)
    print("   " + "-" * len(header))
    for name in names:
        bare, dash = [], []
        for _ in range(args.repeat):
            bare.append(_spawn(["--child-run", name, "--mode", "bare", *flags]))
            dash.append(_spawn(["--child-run", name, "--mode", "dash", *flags]))
        b = min(bare, key=lambda o: o["seconds"])
        d = min(dash, key=lambda o: o["seconds"])
        assert b["events"] == d["events"], (b["events"], d["events"])
        assert b["ok"] and d["ok"], (b["ok"], d["ok"])
        rss_b, rss_d = bare[-1]["rss_kb"] * 1024 / 1e6, dash[-1]["rss_kb"] * 1024 / 1e6
        growth = (dash[-1]["rss_kb"] - dash[-1]["rss_before_kb"]) / max(
            bare[-1]["rss_kb"] - bare[-1]["rss_before_kb"], 1)
        verdict = f"RSS < {RSS_MB:g} MB: {_verdict(rss_d < RSS_MB)}"
        print(f"   {name:<12} {d['events']:>7} {b['seconds']:>8.2f} {d['seconds']:>7.2f} "
              f"{d['seconds'] / b['seconds']:>5.2f} {rss_b:>12.0f} {rss_d:>11.0f} "
              f"{rss_d / rss_b:>5.2f} {growth:>8.2f} {dash[-1]['hwm_kb'] * 1024 / 1e6:>7.0f} "
              f"{d['bytes'] / 1000:>8.1f} {d['messages']:>5} "
              f"{max(o['first_filter_s'] for o in dash):>8.2f}  {verdict}")
        results.append(Result(f"{name}: run to the end with the dashboard",
                              1000 * d["seconds"], "ms", "scenario.run()",
                              1000 * b["seconds"]))
        results.append(Result(f"{name}: RSS after it", rss_d, "MB",
                              "after scenario.run()", rss_b, target=verdict))
    print("   x: dashboard over scenario.run() (time: the recorder's overhead); growth x: "
          "RSS growth during the run, dashboard over scenario.run(); HWM: peak RSS; sent, "
          "msgs: what the button sent to the browser; filter s: then the first protocol "
          f"filter ({' and '.join(FIRST_FILTER)} only: every recorded frame classified), the "
          "slowest")
    return results


# -- profiling -------------------------------------------------------------------------


def _print_profile(profiler: cProfile.Profile, top: int, title: str) -> None:
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(top)
        print(f"{title}, by {order}:")
        lines = text.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        print("\n".join(line.replace(str(HERE.parent) + "/", "")
                        for line in lines[start:] if line.strip()))
        print()


def profile(args: argparse.Namespace) -> None:
    """cProfile of the steps and backs of the first rounds (or of run to the end)."""
    _install_recorder()
    from mip6lab.widgets import Dashboard

    for name in args.scenarios.split(","):
        dash = Dashboard(name, args.seed)
        if args.profile_run:
            profiler = cProfile.Profile()
            profiler.enable()
            _click(dash.controls.end)
            profiler.disable()
            _print_profile(profiler, args.top, f"{name}: run to the end")
            continue
        _, total = _bare_run(name, args.seed)
        _update(dash.controls.index, value=total // 2)
        _click(dash.controls.jump)
        profilers = {"step": cProfile.Profile(), "back": cProfile.Profile()}
        for _ in range(args.rounds):
            for what in ("step", "back", "step"):
                button = getattr(dash.controls, what)
                for _ in range(args.steps):
                    profilers[what].enable()
                    _click(button)
                    profilers[what].disable()
        for what, profiler in profilers.items():
            count = args.rounds * args.steps * (2 if what == "step" else 1)
            _print_profile(profiler, args.top, f"{name}: {count} x {what} from event "
                           f"{total // 2}")


# -- command line ----------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                   help="comma-separated scenario names")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=8, help="rounds of actions, each in the "
                   "next part of the run")
    p.add_argument("--steps", type=int, default=25, help="steps (and backs) per round")
    p.add_argument("--jumps", type=int, default=10, help="jumps back (and selects) per round")
    p.add_argument("--rebuilds", type=int, default=2, help="pairs of what-if rebuilds")
    p.add_argument("--repeat", type=int, default=2, help="runs to the end of each kind")
    p.add_argument("--profile", action="store_true", help="cProfile of step and back")
    p.add_argument("--profile-run", action="store_true", help="cProfile of run to the end")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--child-actions", help=argparse.SUPPRESS)
    p.add_argument("--child-run", help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=("bare", "dash"), help=argparse.SUPPRESS)
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv[1:])
    if args.child_actions:
        print(json.dumps(measure_actions(args.child_actions, args)))
        return 0
    if args.child_run:
        print(json.dumps(measure_run(args.child_run, args.mode, args.seed)))
        return 0
    if args.profile or args.profile_run:
        profile(args)
        return 0
    print(f"== dashboard: {__doc__.strip().splitlines()[0]}")
    results = run(argv[1:])
    for result in results:
        print("   " + result.line())
    return 1 if any("FAIL" in r.target for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
