"""Shared helpers of the benchmarks: a best-of-N timer and the result line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable


def best_rate(work: Callable[[], int], repeat: int = 5) -> float:
    """Items per second of ``work`` (which returns how many items it did), best of N."""
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        items = work()
        elapsed = time.perf_counter() - start
        best = max(best, items / elapsed)
    return best


@dataclass
class Result:
    name: str
    rate: float
    unit: str
    baseline_name: str | None = None
    baseline_rate: float | None = None
    target: str = ""

    def line(self) -> str:
        text = f"{self.name:<44} {self.rate:>12,.0f} {self.unit}"
        if self.baseline_rate:
            text += (f"   = {self.rate / self.baseline_rate:.3f} x {self.baseline_name}"
                     f" ({self.baseline_rate:,.0f} {self.unit})")
        if self.target:
            text += f"   [target: {self.target}]"
        return text
