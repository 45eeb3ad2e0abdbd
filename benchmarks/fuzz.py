"""Long-run fuzzing of every decoder and engine entry point (DESIGN rule 6), inputs/s.

    python3 benchmarks/fuzz.py --inputs 1000000                # every target
    python3 benchmarks/fuzz.py --inputs 1000000 --target esp   # one (repeat for more)
    python3 benchmarks/fuzz.py --inputs 10000 --seconds 60 --seed 7

The targets are :mod:`mip6lab.testing.fuzz`'s, the ones ``tests/test_fuzz_entry_points.py``
runs with hypothesis; here a plain seeded loop of random mutations (:func:`mutate`) runs
each for ``--inputs`` inputs or ``--seconds`` seconds, whichever ends first. Its rate is
given as a ratio to a baseline measured in the same run: the same entry point fed its
unmutated seeds. An exception other than the typed ones an API documents is a crash:
counted per target, one example of each distinct crash (type and place) printed with
its input in hex, and the exit status is 1 if there was any.
"""

from __future__ import annotations

import argparse
import pathlib
import random
import sys
import time
import traceback

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from common import Result  # noqa: E402

from mip6lab.testing import fuzz  # noqa: E402

BASELINE_INPUTS = 200


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs per target")
    parser.add_argument("--seconds", type=float, default=600.0,
                        help="time limit per target (default 600)")
    parser.add_argument("--target", action="append", choices=fuzz.NAMES,
                        help="only this target (may be repeated)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    names = args.target or list(fuzz.NAMES)
    targets = fuzz.targets(names)
    total = 0
    print(f"== fuzz: {args.inputs:,} inputs per target (at most {args.seconds:g} s), "
          f"seed {args.seed}")
    for name in names:
        target = targets[name]
        base = baseline(target, BASELINE_INPUTS, min(10.0, args.seconds))
        done, rate, crashes, count = campaign(target, args.inputs, args.seconds, args.seed)
        total += count
        result = Result(f"{name} ({done:,} inputs, {count} crashes)", rate, "inputs/s",
                        f"unmutated {name}", base)
        print("   " + result.line())
        for (kind, filename, line), (exc, data) in crashes.items():
            print(f"      CRASH {kind} at {filename}:{line}: {exc}")
            print(f"            input {data.hex()}")
    print(f"unhandled exceptions: {total}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
