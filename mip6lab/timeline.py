"""Time travel over a lab: a cursor on its trace, and the tables as they were at each event.

A :class:`Timeline` drives a :class:`~mip6lab.net.lab.Lab` forward one trace event at a
time and records, for every event, the lab's tables right after it
(:class:`~mip6lab.state.LabState`). Going back, or jumping to an event already seen,
only moves the cursor: nothing is re-run. Going past the last recorded event runs the
lab on (``lab.step()``, the simulator's next scheduled call) until the event exists.

The recording, and why it is cheap: the state at event *i* is read as event *i* is
emitted (a trace subscriber), and read again for the last event of each simulator
step when the step is over. So a change shows at the first event emitted after it was
made -- the key engine's answer to a request, the home agent's "BU accepted" -- or, if
nothing more was emitted in that step, at the step's last event. A state is read
again only when :func:`~mip6lab.state.change_marker` moved or the event is not a
packet; otherwise the previous state object is shared. Unchanged
tables are shared between states (:func:`~mip6lab.state.lab_state` with ``previous``),
so thousands of states hold each distinct table once.

The same cursor serves a real-time lab (the netns backend): :meth:`Timeline.advance`
then runs the real-time runner for a slice of wall-clock time instead of one simulator
step, and time travel covers what was recorded so far.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .inspection import TraceReader
from .net.lab import Lab
from .state import LabState, RowChange, change_marker, lab_state, state_diff
from .trace import PACKET_KINDS, Event, Events

#: what "step to the next ..." can look for: a label and the test an event must pass
#: (given the event and a :class:`~mip6lab.inspection.TraceReader`, which looks inside
#: ESP: a BU is protected, so its outer header says only "ESP")
EVENT_CLASSES: dict[str, tuple[str, Callable[[Event, TraceReader], bool]]] = {
    "event": ("any event", lambda e, r: True),
    "packet": ("packet", lambda e, r: e.kind in PACKET_KINDS),
    "seam": ("seam crossing", lambda e, r: e.kind == "seam"),
    "state": ("state change", lambda e, r: e.kind == "state"),
    "ike": ("IKE message", lambda e, r: e.kind == "tx" and "IKE" in r.protocols(e)),
    "bu-ba": ("BU/BA", lambda e, r: e.kind == "tx" and r.mobility_message(e) is not None),
    "drop": ("drop or error", lambda e, r: e.kind in ("drop", "error")),
}


class TimelineError(ValueError):
    """An event index out of range, or a breakpoint the lab never reaches."""


class Timeline:
    """A cursor over ``lab``'s trace with the tables recorded at every event.

    ``cursor`` is the index of the current event, -1 before the first one (the lab as
    built). ``until`` (simulated seconds) is where stepping stops: a scenario's duration.
    """

    def __init__(self, lab: Lab, until: float | None = None,
                 runner: Any | None = None, slice_s: float = 0.25) -> None:
        if lab.trace.level != "full":
            # time travel is over every event, frames included (mip6lab.trace levels)
            raise TimelineError(f"a timeline needs the full trace; this lab's trace level "
                                f"is {lab.trace.level!r}")
        self.lab = lab
        self.until_us = None if until is None else int(round(until * 1_000_000))
        #: a real-time runner (``RealTimeRunner``) to advance with, or None (simulator)
        self.runner = runner
        self.slice_s = slice_s
        #: classifies and opens the lab's frames (with every key the lab used)
        self.reader = TraceReader(lab)
        self.cursor = -1
        self._states: list[LabState] = []          # _states[i]: at event i
        self._initial = lab_state(lab)
        self._last = self._initial
        self._marker = change_marker(lab)
        self._recorded = 0                         # events whose state is recorded
        self._unsubscribe = lab.trace.subscribe(self._on_emit)
        self.exhausted = False
        # the events that existed before the timeline was made (those of the lab's
        # build, at t = 0) have no state of their own: they share the state the timeline
        # started from, and ``prehistory`` says how many they are
        self.prehistory = len(lab.trace.events)
        while self._recorded < self.prehistory:
            self._states.append(self._initial)
            self._recorded += 1

    # -- recording -------------------------------------------------------------------------

    def _on_emit(self, event: Event) -> None:
        """Called as ``event`` is emitted: the tables now are the ones at this event."""
        self._record(event)

    def _record(self, event: Event, force: bool = False) -> None:
        marker = change_marker(self.lab)
        if force or marker != self._marker or event.kind not in PACKET_KINDS:
            self._marker = marker
            self._last = lab_state(self.lab, self._last)
        if event.index < len(self._states):
            self._states[event.index] = self._last
        else:
            self._states.append(self._last)
        self._recorded = len(self._states)

    def _end_of_step(self, before: int) -> None:
        """After a simulator step: what the step did after its last event belongs to
        that event, so the state at a step's last event is the lab's state now. A step
        that emitted nothing leaves the earlier events as they were recorded."""
        if self._recorded > before and self._recorded == len(self.lab.trace.events):
            self._record(self.lab.trace.events[self._recorded - 1], force=True)

    def close(self) -> None:
        """Stop recording (the lab goes on without the timeline)."""
        self._unsubscribe()

    # -- reading ---------------------------------------------------------------------------

    @property
    def events(self) -> Events:
        return self.lab.trace.events

    @property
    def recorded(self) -> int:
        """How many events have their state recorded (they can be travelled to)."""
        return self._recorded

    @property
    def event(self) -> Event | None:
        """The current event (None before the first)."""
        return self.events[self.cursor] if self.cursor >= 0 else None

    @property
    def time_us(self) -> int:
        event = self.event
        return event.time_us if event is not None else self._initial.time_us

    def state_at(self, index: int) -> LabState:
        """The tables right after event ``index`` (-1: as built)."""
        if index == -1:
            return self._initial
        self._check(index)
        return self._states[index]

    @property
    def state(self) -> LabState:
        return self.state_at(self.cursor)

    def changes_at(self, index: int) -> list[RowChange]:
        """The rows event ``index`` added, removed or changed."""
        if index < self.prehistory:     # built before the recording: no diff of its own
            return []
        return state_diff(self.state_at(index - 1), self.state_at(index))

    def _check(self, index: int) -> None:
        if not 0 <= index < self._recorded:
            raise TimelineError(f"event {index} does not exist: the trace holds events "
                                f"0 to {self._recorded - 1}" if self._recorded else
                                f"event {index} does not exist: the trace is empty")

    # -- moving ----------------------------------------------------------------------------

    def advance(self) -> bool:
        """Run the lab on by one simulator step (or one slice of wall-clock time on a
        real-time lab) and record what it did; False when the lab has nothing left
        before ``until``."""
        if self.exhausted:
            return False
        if self.runner is not None:
            limit = self.lab.now + self.slice_s * self.runner.time_scale
            if self.until_us is not None:
                limit = min(limit, self.until_us / 1e6)
            if self.lab.now * 1e6 >= (self.until_us or float("inf")):
                self.exhausted = True
                return False
            self.runner.run(until=limit)
        else:
            due = self.lab.sim.peek_time_us()
            if due is None or (self.until_us is not None and due > self.until_us):
                self.exhausted = True
                return False
            before = self._recorded
            self.lab.step()
            self._end_of_step(before)
        return True

    #: simulator steps in a row without a trace event after which the lab is taken to be
    #: stuck (a timer rescheduling itself at the same instant), not merely quiet
    SILENT_STEPS = 200_000

    def _reach(self, index: int) -> bool:
        """Record events until ``index`` exists; False if the lab ends first."""
        silent = 0
        while self._recorded <= index:
            before = self._recorded
            if not self.advance():
                return False
            silent = silent + 1 if self._recorded == before else 0
            if silent >= self.SILENT_STEPS:
                raise TimelineError(f"the lab ran {silent} steps up to t = {self.lab.now:g} s "
                                    "without a single event: it is stuck, not running")
        return True

    def step(self, count: int = 1) -> Event | None:
        """``count`` events forward (fewer at the end of the run); the new current event."""
        self._reach(self.cursor + count)
        self.cursor = min(self.cursor + count, self._recorded - 1)
        return self.event

    def back(self, count: int = 1) -> Event | None:
        """``count`` events back (not before -1); nothing is re-run."""
        self.cursor = max(self.cursor - count, -1)
        return self.event

    def jump(self, index: int) -> Event | None:
        """Make event ``index`` the current one, running the lab on if it is ahead."""
        if index < -1:
            raise TimelineError(f"event {index} does not exist: indices start at 0 "
                                "(-1 is the lab as built)")
        if not self._reach(index):
            self._check(index)
        self.cursor = index
        return self.event

    def reset(self) -> None:
        """Back to before the first event (the recording is kept)."""
        self.cursor = -1

    def find_next(self, predicate: Callable[[Event], bool], limit: int | None = None) -> int | None:
        """The index of the first event after the cursor for which ``predicate`` holds,
        running the lab on as far as needed; None if the run ends (or ``limit`` events
        were looked at) first."""
        index = self.cursor + 1
        looked = 0
        while limit is None or looked < limit:
            if index >= self._recorded and not self._reach(index):
                return None
            if predicate(self.events[index]):
                return index
            index += 1
            looked += 1
        return None

    def find_previous(self, predicate: Callable[[Event], bool]) -> int | None:
        for index in range(self.cursor - 1, -1, -1):
            if predicate(self.events[index]):
                return index
        return None

    def next(self, what: str = "event", node: str | None = None) -> Event | None:
        """Step to the next event of a class of :data:`EVENT_CLASSES` (and of ``node``);
        stays put and returns None if there is none."""
        try:
            test = EVENT_CLASSES[what][1]
        except KeyError:
            raise TimelineError(f"no event class {what!r}; try one of "
                                f"{', '.join(EVENT_CLASSES)}") from None
        reader = self.reader
        found = self.find_next(lambda e: (node is None or e.node == node) and test(e, reader))
        if found is None:
            return None
        self.cursor = found
        return self.event

    def run_to(self, *, time: float | None = None, index: int | None = None,
               predicate: Callable[[Event], bool] | None = None) -> Event | None:
        """Run to a breakpoint: the last event at or before ``time`` seconds, event
        ``index``, or the next event for which ``predicate(event)`` holds."""
        if index is not None:
            return self.jump(index)
        if time is not None:
            if not time >= 0:
                raise TimelineError(f"run to t = {time!r}: a time is a number of seconds >= 0")
            limit = int(round(time * 1_000_000))
            here, self.cursor = self.cursor, -1     # the time may be behind the cursor
            try:
                found = self.find_next(lambda e: e.time_us > limit)
            finally:
                self.cursor = here
            self.cursor = max((found - 1) if found is not None else self._recorded - 1, -1)
            return self.event
        if predicate is not None:
            found = self.find_next(predicate)
            if found is None:
                return None
            self.cursor = found
            return self.event
        raise TimelineError("run_to needs a time, an index or a predicate")

    def run_all(self) -> int:
        """Record the whole run (to ``until``); the number of events."""
        while self._reach(self._recorded):
            pass
        return self._recorded
