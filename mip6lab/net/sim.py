"""The discrete-event simulator under the in-process network.

Time is simulated and counted in whole microseconds (the resolution of a pcapng
timestamp), so that no float rounding can make two runs differ. Events are kept in a
heap ordered by (time, sequence number): two events due at the same microsecond run in
the order they were scheduled, which makes a run with the same seed replay exactly.
The heap holds ``(time, sequence, call)`` tuples, compared by the interpreter's tuple
order (the sequence is unique, so the call itself is never compared): a lab at scale
pushes and pops millions of them.

The simulator owns the only random source of a lab (``sim.random``, seeded). Every
module that needs randomness -- loss on a link, a NAT's port choice, later SPIs and
nonces -- draws from it, never from the global ``random`` module or the wall clock.
"""

from __future__ import annotations

import heapq
import random
from typing import Any, Callable

US_PER_S = 1_000_000
_heappush = heapq.heappush


def seconds_to_us(seconds: float) -> int:
    """Convert a duration in seconds (what users write) to simulator microseconds."""
    return round(seconds * US_PER_S)


#: a label given as text, or as the parts of its text (joined by spaces when read)
Label = str | tuple


class ScheduledCall:
    """One pending event: call ``callback(*args)`` at ``time_us``.

    ``label`` names the call for a person (a step of the lab, :meth:`Simulator.scheduled`).
    It may be given as a tuple of parts, made into their text joined by spaces only when
    it is read: most timers are never looked at, and an address made into text costs
    more than the rest of scheduling it."""

    __slots__ = ("time_us", "seq", "callback", "args", "_label", "cancelled", "_sim")

    def __init__(self, time_us: int, seq: int, callback: Callable[..., Any],
                 args: tuple = (), label: Label = "", cancelled: bool = False,
                 sim: Simulator | None = None) -> None:
        self.time_us = time_us
        self.seq = seq
        self.callback = callback
        self.args = args
        self._label = label
        self.cancelled = cancelled
        self._sim = sim

    @property
    def label(self) -> str:
        label = self._label
        if type(label) is tuple:
            label = self._label = " ".join(map(str, label))
        return label

    @label.setter
    def label(self, label: Label) -> None:
        self._label = label

    def __repr__(self) -> str:
        state = " cancelled" if self.cancelled else ""
        return f"<ScheduledCall {self.time_us} us #{self.seq} {self.label!r}{state}>"

    def __lt__(self, other: ScheduledCall) -> bool:
        return (self.time_us, self.seq) < (other.time_us, other.seq)

    def cancel(self) -> None:
        """Cancel the call; a cancelled call is skipped when its time comes.

        What it would have called is let go at once -- a timer cancelled early would
        otherwise keep its target (an old SA, a queued packet) alive until its time --
        and the simulator is told, so that it can sweep its heap of cancelled calls."""
        if self.cancelled:
            return
        self.cancelled = True
        self.callback, self.args = _cancelled, ()
        if self._sim is not None:
            self._sim._cancelled += 1


def _cancelled(*args: Any) -> None:
    """What a cancelled call holds instead of its callback (never run: step skips it)."""


class Simulator:
    """A clock, an event heap and a seeded random source."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.random = random.Random(seed)
        self.now_us = 0
        self._heap: list[tuple[int, int, ScheduledCall]] = []
        self._seq = 0
        self._cancelled = 0     # cancelled calls still in the heap
        self.executed = 0

    @property
    def now(self) -> float:
        """The current simulated time in seconds."""
        return self.now_us / US_PER_S

    def call_at(self, time_us: int, callback: Callable[..., Any], *args: Any,
                label: Label = "") -> ScheduledCall:
        """Schedule ``callback(*args)`` at absolute time ``time_us`` (``label``: see
        :class:`ScheduledCall`)."""
        if time_us < self.now_us:
            raise ValueError(f"cannot schedule in the past ({time_us} < {self.now_us})")
        seq = self._seq = self._seq + 1
        call = ScheduledCall(time_us, seq, callback, args, label, False, self)
        if self._cancelled > 512 and 2 * self._cancelled > len(self._heap):
            self._sweep()
        _heappush(self._heap, (time_us, seq, call))
        return call

    def _sweep(self) -> None:
        """Take the cancelled calls out of the heap (when they are half of it): at scale
        most timers are cancelled long before their time (a retransmission answered, an
        expiry re-armed) and would sit there until then. The live calls keep their
        (time, sequence) order, so nothing runs otherwise than it would have."""
        self._heap = [entry for entry in self._heap if not entry[2].cancelled]
        heapq.heapify(self._heap)
        self._cancelled = 0

    def call_later(self, delay_s: float, callback: Callable[..., Any], *args: Any,
                   label: Label = "") -> ScheduledCall:
        """Schedule ``callback(*args)`` ``delay_s`` simulated seconds from now."""
        return self.call_at(self.now_us + seconds_to_us(delay_s), callback, *args,
                            label=label)

    def _drop_cancelled(self) -> None:
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
            self._cancelled -= 1

    def peek_time_us(self) -> int | None:
        """Time of the next live event, or None when nothing is pending."""
        self._drop_cancelled()
        return self._heap[0][0] if self._heap else None

    def pending(self) -> int:
        """Number of live pending events."""
        return sum(1 for _, _, call in self._heap if not call.cancelled)

    def scheduled(self, label: str = "") -> list[tuple[int, str]]:
        """The live pending calls whose label contains ``label`` (all with ""), as
        (time_us, label) in the order they will run: the timers a lab holds now -- a
        binding's refresh, a NAT mapping's timeout, a keepalive (RFC 5555 §4.3,
        RFC 3948 §2.3) -- for a notebook to count. Reading them changes nothing."""
        return [(call.time_us, call.label) for _, _, call in sorted(self._heap)
                if not call.cancelled and label in call.label]

    def step(self) -> ScheduledCall | None:
        """Run the next live event; return it, or None when the heap is empty."""
        self._drop_cancelled()
        if not self._heap:
            return None
        call = heapq.heappop(self._heap)[2]
        call._sim = None            # out of the heap: a late cancel() counts nothing
        self.now_us = call.time_us
        self.executed += 1
        call.callback(*call.args)
        return call

    def run(self, limit_us: int | None = None, max_steps: int | None = None) -> int:
        """Run the live events due at or before ``limit_us`` (all, if None), at most
        ``max_steps`` of them; their number. What :meth:`peek_time_us` and :meth:`step`
        do in a loop, without their two calls per event (a lab at scale runs millions)."""
        steps = 0
        pop = heapq.heappop
        while max_steps is None or steps < max_steps:
            heap = self._heap           # a call may sweep it into a new list
            while heap and heap[0][2].cancelled:
                pop(heap)
                self._cancelled -= 1
            if not heap or (limit_us is not None and heap[0][0] > limit_us):
                break
            call = pop(heap)[2]
            call._sim = None
            self.now_us = call.time_us
            self.executed += 1
            call.callback(*call.args)
            steps += 1
        return steps

    def advance_to(self, time_us: int) -> None:
        """Move the clock forward to ``time_us`` without running anything."""
        if time_us > self.now_us:
            self.now_us = time_us
