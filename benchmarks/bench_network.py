"""Simulated events per second of the in-process network.

Three measurements in one run:

- the floor: a bare ``heapq`` loop calling a no-op function, the least any Python
  discrete-event simulator can cost per event;
- mip6lab's :class:`Simulator` running the same no-op events (the cost of our
  scheduling: ordering, cancellation, labels);
- a whole lab (the ping-nat topology pinging flat out): simulator events per second with
  every frame built, put on a link, traced and dissected by scapy on arrival.
"""

from __future__ import annotations

import heapq

from common import Result, best_rate

from mip6lab.net.sim import Simulator
from mip6lab.scenarios import create

N = 50_000


def _noop() -> None:
    pass


def _bare_heapq() -> int:
    heap = [(t, i, _noop) for i, t in enumerate(range(N))]
    heapq.heapify(heap)
    while heap:
        _, _, callback = heapq.heappop(heap)
        callback()
    return N


def _simulator() -> int:
    sim = Simulator(seed=1)
    for t in range(N):
        sim.call_at(t, _noop)
    while sim.step() is not None:
        pass
    return N


def _lab() -> int:
    scenario = create("ping-nat", seed=1, count=400, interval=0.01)
    scenario.lab.run(until=scenario.duration)
    return scenario.lab.sim.executed


def run() -> list[Result]:
    floor = best_rate(_bare_heapq)
    ours = best_rate(_simulator)
    lab = best_rate(_lab, repeat=3)
    return [
        Result("bare heapq no-op events", floor, "events/s"),
        Result("Simulator no-op events", ours, "events/s", "bare heapq", floor),
        Result("ping-nat lab, full stack", lab, "events/s", "bare heapq", floor),
    ]
