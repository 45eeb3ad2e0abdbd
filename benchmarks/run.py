"""Run every benchmark of mip6lab and print results as ratios to baselines of the same run.

    python benchmarks/run.py            # all benchmarks
    python benchmarks/run.py network    # only those whose name contains "network"
    python benchmarks/run.py mobility --large   # options (--...) go to mobility.py
    python benchmarks/run.py dashboard --rounds=3   # ... or to dashboard.py (--x=v)
    python benchmarks/run.py fuzz --inputs=2000 --jobs=2   # ... or to fuzz.py

Each benchmark module defines ``run() -> list[Result]`` (``mobility.py``, a home agent
registering N mobile nodes, ``dashboard.py``, the lab dashboard's latency, bytes and
memory, and ``fuzz.py``, every fuzz target for a few inputs (1 000 each by default),
take the ``--`` options: ``run(options)``). A result names
its baseline, measured in the same process (or run) just before or after, so the ratio
means something on any machine. No target here is a test: targets are printed beside
the ratio.
"""

from __future__ import annotations

import importlib
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import Result  # noqa: E402


def main(argv: list[str]) -> int:
    wanted = [a for a in argv[1:] if not a.startswith("--")] or [""]
    options = [a for a in argv[1:] if a.startswith("--")]
    with_options = ("mobility", "dashboard", "fuzz")
    modules = sorted(p.stem for p in HERE.glob("bench_*.py")) + list(with_options)
    selected = [m for m in modules if any(w in m for w in wanted)]
    if not selected:
        print(f"no benchmark matches {wanted}; there are: {', '.join(modules)}")
        return 2
    for name in selected:
        module = importlib.import_module(name)
        print(f"== {name}: {module.__doc__.strip().splitlines()[0]}")
        results: list[Result] = module.run(options) if name in with_options \
            else module.run()
        for result in results:
            print("   " + result.line())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
