"""Run a lab against the wall clock, with frames from real devices fed in as they come.

:meth:`Lab.run <mip6lab.net.lab.Lab.run>` jumps from one event to the next: simulated
time costs no real time. A lab with :class:`~mip6lab.net.packet_link.PacketLink`\\ s
talks to real kernels, which keep their own time, so it must be driven in step with the
wall clock. :class:`RealTimeRunner` does that::

    runner = RealTimeRunner(lab, time_scale=10)   # 10 simulated seconds per real second
    runner.run(until=5.0)                         # returns after ~0.5 s of wall time
    runner.run_until(lambda lab: ping.received == 3, timeout=30)

While it runs, simulated time = the lab's time when the call began + (wall time since
the call began) x ``time_scale``. The runner sleeps in :mod:`selectors` on the sockets of
every packet link of the lab (any link with ``fileno()`` and ``receive_pending()``) until
the next scheduled event is due or a frame arrives; a frame is handed to its node at the
present simulated time. ``time_scale`` above 1 compresses protocol timers (a 30 s
binding lifetime passes in 3 s with ``time_scale=10``); the kernels on the other side do
not compress theirs, so keep it at 1 where their timers matter (neighbour reachability,
NAT mapping timeouts, ping's own timeout).

Between calls the lab's clock stands still: frames that arrive meanwhile wait in the
socket and are delivered, at the lab's then-present time, when the next call starts.
When the process is late (a long handler, a loaded machine), due events run late, each
at its own simulated time; ``max_lateness`` keeps the worst delay seen, in simulated
seconds.

The protocol engines do not know about any of this: the wall clock and the sockets live
here and in :mod:`mip6lab.net.packet_link` only.
"""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .sim import US_PER_S, seconds_to_us

if TYPE_CHECKING:
    from .lab import Lab

__all__ = ["RealTimeRunner"]


def _socket_links(lab: Lab) -> list[Any]:
    """The links of ``lab`` that read from a socket (open ones only)."""
    return [link for link in lab.links.values()
            if callable(getattr(link, "receive_pending", None))
            and callable(getattr(link, "fileno", None)) and link.fileno() >= 0]


class RealTimeRunner:
    """Drive ``lab``'s simulator against the wall clock (``time_scale`` x real time)."""

    def __init__(self, lab: Lab, time_scale: float = 1.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be positive, not {time_scale}")
        self.lab = lab
        self.time_scale = float(time_scale)
        self._clock = clock
        self.max_lateness = 0.0   # worst delay of an event behind its due time (sim s)
        self.frames = 0           # frames read from sockets so far
        self.wakeups = 0          # times the selector returned

    def __repr__(self) -> str:
        return f"<RealTimeRunner x{self.time_scale:g} at t={self.lab.now:.6f}s>"

    def run(self, until: float | None = None, max_steps: int | None = None) -> int:
        """Run in real time up to simulated time ``until`` (seconds); the number of
        events run. With ``until=None``, return as soon as no event is scheduled
        (frames are still read until then)."""
        limit = None if until is None else seconds_to_us(until)
        if limit is not None and limit < self.lab.sim.now_us:
            return 0
        _, steps = self._drive(limit, None, max_steps, stop_when_idle=True)
        return steps

    def run_until(self, predicate: Callable[[Lab], bool], timeout: float | None = None,
                  max_steps: int = 10_000_000, poll: float | None = 0.05) -> bool:
        """Run in real time until ``predicate(lab)`` holds (True) or ``timeout``
        simulated seconds have passed (False). Without a timeout it waits for frames
        as long as any packet link is open.

        The predicate is checked after every event and every batch of frames, and, for
        conditions outside the lab (a process that ends), at least every ``poll``
        seconds of wall time (None: only after events and frames)."""
        limit = None if timeout is None else self.lab.sim.now_us + seconds_to_us(timeout)
        held, _ = self._drive(limit, predicate, max_steps, stop_when_idle=False,
                              poll=poll)
        return held

    # -- the loop --------------------------------------------------------------------------

    def _drive(self, limit: int | None, predicate: Callable[[Lab], bool] | None,
               max_steps: int | None, *, stop_when_idle: bool,
               poll: float | None = None) -> tuple[bool, int]:
        lab, sim, scale = self.lab, self.lab.sim, self.time_scale
        start_wall, start_us = self._clock(), sim.now_us

        def present() -> int:
            """Simulated time that corresponds to this instant of the wall clock."""
            now = start_us + int((self._clock() - start_wall) * scale * US_PER_S)
            return now if limit is None else min(now, limit)

        def holds() -> bool:
            return predicate is not None and bool(predicate(lab))

        steps = 0
        links = _socket_links(lab)
        with selectors.DefaultSelector() as selector:
            for link in links:
                selector.register(link.fileno(), selectors.EVENT_READ, link)
            ready = [key.data for key, _ in selector.select(0)] if links else []
            if holds():
                return True, steps
            while True:
                now = present()
                # 1. every event due by now, each at its own time
                while max_steps is None or steps < max_steps:
                    due = sim.peek_time_us()
                    if due is None or due > now:
                        break
                    self.max_lateness = max(self.max_lateness,
                                            (present() - due) / US_PER_S)
                    sim.step()
                    steps += 1
                    if holds():
                        return True, steps
                sim.advance_to(now)
                # 2. the frames that arrived, at the present time
                for link in ready:
                    self.frames += link.receive_pending()
                    if holds():
                        return True, steps
                if holds():   # also for what changed outside the lab
                    return True, steps
                if limit is not None and now >= limit:
                    return holds(), steps
                if max_steps is not None and steps >= max_steps:
                    return holds(), steps
                # 3. sleep until the next event is due or a frame arrives
                due = sim.peek_time_us()
                wake = due if limit is None else (limit if due is None else min(due, limit))
                if wake is None and (stop_when_idle or not links):
                    return holds(), steps
                timeout = None if wake is None else \
                    max(0.0, (wake - present()) / US_PER_S / scale)
                if poll is not None:
                    timeout = poll if timeout is None else min(timeout, poll)
                ready = [key.data for key, _ in selector.select(timeout)]
                self.wakeups += 1
                ready = [link for link in ready if link.fileno() >= 0]
