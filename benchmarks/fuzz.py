"""Long-run fuzzing of every decoder and engine entry point (DESIGN rule 6), inputs/s.

    python3 benchmarks/fuzz.py --inputs 1000000 --jobs 2      # every target, 10^6 each
    python3 benchmarks/fuzz.py --inputs 1000000 --target esp   # one (repeat for more)
    python3 benchmarks/fuzz.py --inputs 10000 --seconds 60 --seed 7
    python3 benchmarks/run.py fuzz --inputs=2000                # the small default: 1 000

The targets are :mod:`mip6lab.testing.fuzz`'s, the ones ``tests/test_fuzz_entry_points.py``
runs with hypothesis; here a plain seeded loop of random mutations (:func:`mutate`) runs
each for ``--inputs`` inputs or ``--seconds`` seconds, whichever ends first (the default
has no time limit: a long run is meant to reach its count). ``--jobs N`` runs N targets
at once, each in its own process (each builds its own IKE pair or lab). A rate is given
as a ratio to a baseline measured in the same process just before: the same entry point
fed its unmutated seeds. An exception other than the typed ones an API documents is a
crash: counted per target, one example of each distinct crash (type and place) printed
with its input in hex, and the exit status is 1 if there was any. After each target,
what its harness did besides feeding (a pair or lab rebuilt, state copied, the lab's
consistency checks) is printed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import pathlib
import random
import sys
import time
import traceback
from dataclasses import dataclass, field

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import Result  # noqa: E402

from mip6lab.testing import fuzz  # noqa: E402

BASELINE_INPUTS = 200
#: inputs per target of ``benchmarks/run.py fuzz`` (a smoke run, a minute or so)
SMALL = 1_000


def _where(exc: BaseException) -> tuple[str, str, int]:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return type(exc).__name__, frame.filename, frame.lineno or 0


def baseline(target: fuzz.FuzzTarget, inputs: int, seconds: float) -> float:
    """Inputs/s of the entry point on its unmutated seeds."""
    done, start = 0, time.perf_counter()
    while done < inputs and time.perf_counter() - start < seconds:
        target.run(target.input(done, [], False))
        done += 1
    return done / (time.perf_counter() - start)


def campaign(target: fuzz.FuzzTarget, inputs: int, seconds: float, seed: int
             ) -> tuple[int, float, dict[tuple[str, str, int], tuple[BaseException, bytes]],
                        int]:
    """(inputs fed, inputs/s, first example of each distinct crash, crash count)."""
    rng = random.Random(f"{seed}:{target.name}")
    crashes: dict[tuple[str, str, int], tuple[BaseException, bytes]] = {}
    count = done = 0
    start = time.perf_counter()
    while done < inputs and time.perf_counter() - start < seconds:
        data = target.input(rng.randrange(len(target.seeds)), fuzz.random_mutations(rng),
                            rng.random() < 0.5)
        try:
            target.run(data)
        except Exception as exc:        # noqa: BLE001 - a crash is what we look for
            count += 1
            crashes.setdefault(_where(exc), (exc, data))
        done += 1
    return done, done / (time.perf_counter() - start), crashes, count


@dataclass
class Outcome:
    """One target's run, as plain values (it crosses a process boundary)."""

    name: str
    done: int
    rate: float
    baseline: float
    count: int
    seconds: float
    crashes: list[str] = field(default_factory=list)   # one text per distinct crash
    stats: dict = field(default_factory=dict)

    def result(self) -> Result:
        return Result(f"{self.name} ({self.done:,} inputs, {self.count} crashes)",
                      self.rate, "inputs/s", f"unmutated {self.name}", self.baseline)

    def lines(self) -> list[str]:
        out = ["   " + self.result().line()]
        out += [f"      {line}" for crash in self.crashes for line in crash.splitlines()]
        if self.stats:
            out.append(f"      {self.name} harness: " + ", ".join(f"{k} {v}" for k, v in self.stats.items())
                       + f"; {self.seconds:,.0f} s")
        return out


def measure(name: str, inputs: int, seconds: float, seed: int) -> Outcome:
    """Build target ``name`` in this process, measure its baseline, run its campaign."""
    target = fuzz.targets([name])[name]
    base = baseline(target, BASELINE_INPUTS, min(10.0, seconds))
    start = time.perf_counter()
    done, rate, crashes, count = campaign(target, inputs, seconds, seed)
    texts = [f"CRASH {kind} at {filename}:{line}: {exc}\n      input {data.hex()}"
             for (kind, filename, line), (exc, data) in crashes.items()]
    return Outcome(name, done, rate, base, count, time.perf_counter() - start, texts,
                   dict(target.stats()))


def measure_all(names: list[str], inputs: int, seconds: float, seed: int, jobs: int,
                report=print) -> list[Outcome]:
    """Every target of ``names``, ``jobs`` at a time; ``report`` gets each one's lines
    as it ends."""
    outcomes: list[Outcome] = []
    if jobs <= 1:
        for name in names:
            outcomes.append(measure(name, inputs, seconds, seed))
            for line in outcomes[-1].lines():
                report(line)
        return outcomes
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs) as pool:
        running = [pool.submit(measure, name, inputs, seconds, seed) for name in names]
        for future in concurrent.futures.as_completed(running):
            outcomes.append(future.result())
            for line in outcomes[-1].lines():
                report(line)
    return sorted(outcomes, key=lambda o: names.index(o.name))


def run(argv: list[str] | None = None) -> list[Result]:
    """``benchmarks/run.py fuzz``: every target, :data:`SMALL` inputs each unless
    ``--inputs=N``; ``--jobs=N`` as here."""
    options = dict(a.removeprefix("--").split("=", 1) for a in argv or [] if "=" in a)
    outcomes = measure_all(list(fuzz.NAMES), int(options.get("inputs", SMALL)),
                           float("inf"), 1, int(options.get("jobs", 1)),
                           report=lambda line: None)
    for outcome in outcomes:           # a crash must be seen in the summary, not lost
        for line in outcome.lines()[1:]:
            print(line)
    results = [o.result() for o in outcomes]
    for result in results:
        result.target = "0 crashes"
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs per target")
    parser.add_argument("--seconds", type=float, default=float("inf"),
                        help="time limit per target (default: none)")
    parser.add_argument("--target", action="append", choices=fuzz.NAMES,
                        help="only this target (may be repeated)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="targets run at once, each in its own process")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    names = args.target or list(fuzz.NAMES)
    print(f"== fuzz: {args.inputs:,} inputs per target (at most {args.seconds:g} s), "
          f"seed {args.seed}, {args.jobs} job(s)", flush=True)
    outcomes = measure_all(names, args.inputs, args.seconds, args.seed, args.jobs,
                           report=lambda line: print(line, flush=True))
    total = sum(o.count for o in outcomes)
    print(f"inputs: {sum(o.done for o in outcomes):,}; unhandled exceptions: {total}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
