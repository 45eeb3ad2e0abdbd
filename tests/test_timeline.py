"""Time travel over the course scenarios: the cursor, the recorded tables, breakpoints.

The issue's criterion: the tables shown at event *i* after jumping around (forward far,
back, to many indices in any order) are the tables a fresh run reaches going forward to
*i*. "Reaches" is checked three ways: a second timeline stepping forward only, an
unoptimised recorder that reads the whole lab at every event (so a change that
:func:`~mip6lab.state.change_marker` misses shows as a difference), and the live lab
after each simulator step.
"""

from __future__ import annotations

import random

import pytest

from mip6lab.net.lab import Lab
from mip6lab.scenarios import create
from mip6lab.state import LabState, lab_state, state_diff
from mip6lab.timeline import Timeline, TimelineError

COURSE = ["home-registration", "handover", "return-home", "dsmip6-v4", "dsmip6-nat"]
#: how far timeline A runs ahead: past the first handover (t = 5 s) of handover and
#: return-home, where a binding's remaining lifetime ticks between two packets
FAR = 2500
HOA = "2001:db8:0:1::1001"


class FullRecorder:
    """The recording rule of the timeline without its shortcut: the whole lab is read as
    every event is emitted, and again for the last event of each simulator step."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.states: dict[int, LabState] = {}
        lab.trace.subscribe(self._emitted)

    def _emitted(self, event) -> None:
        self.states[event.index] = lab_state(self.lab)

    def end_of_step(self) -> None:
        if self.lab.trace.events:
            self.states[len(self.lab.trace.events) - 1] = lab_state(self.lab)


def _timeline(name: str) -> Timeline:
    scenario = create(name, 0)
    return Timeline(scenario.lab, until=scenario.duration)


def _first(timeline: Timeline, predicate, start: int = 0) -> int:
    return next(i for i in range(start, timeline.recorded) if predicate(timeline.events[i]))


@pytest.fixture(scope="module")
def far() -> dict[str, Timeline]:
    """Timeline A of each course scenario, run ahead to event FAR (built on demand)."""
    class Lazy(dict):
        def __missing__(self, name: str) -> Timeline:
            timeline = self[name] = _timeline(name)
            timeline.jump(FAR)
            return timeline

    return Lazy()


def _indices(a: Timeline) -> list[int]:
    """25 or so indices spread over [0, FAR], with the events a student stops at."""
    reader = a.reader
    events = a.events
    built = next(i for i in range(a.recorded) if events[i].time_us > 0)
    picks = {0, built, FAR, FAR - 1}
    picks |= {round(k * FAR / 16) for k in range(17)}
    picks.add(_first(a, lambda e: e.kind == "seam", built))
    picks.add(_first(a, lambda e: e.kind == "state", built))
    # the BU and BA as the mobility modules announce them (the frames' classification is
    # tested in test_inspection.py; a DSMIP6 BU travels in UDP 4191 over IPv4)
    bu = _first(a, lambda e: e.kind == "state" and e.node == "mn"
                and e.summary.startswith("BU seq"))
    ba = _first(a, lambda e: e.kind == "state" and e.node == "mn"
                and e.summary.startswith("BA seq"))
    sent = _first(a, lambda e: e.kind == "tx" and e.node == "mn", bu)
    picks |= {bu, sent, sent + 1, ba - 1, ba}
    cache_row = next(i for i in range(a.recorded) if any(
        c.node == "ha" and c.table == "binding_cache" for c in a.changes_at(i)))
    picks |= {cache_row - 1, cache_row}
    return sorted(picks)


@pytest.mark.parametrize("name", COURSE)
def test_time_travel_shows_the_tables_a_forward_run_reaches(far, name):
    a = far[name]
    assert a.recorded > FAR
    a.jump(FAR)
    indices = _indices(a)
    assert len(indices) >= 22

    # back, then to every index in a shuffled order: nothing re-runs
    now, count, executed = a.lab.sim.now_us, len(a.events), a.lab.sim.executed
    a.back(FAR // 2)
    assert a.cursor == FAR - FAR // 2
    shown = {}
    for index in random.Random(name).sample(indices, len(indices)):
        a.jump(index)
        assert a.cursor == index and a.event is a.events[index]
        shown[index] = a.state
    assert (a.lab.sim.now_us, len(a.events), a.lab.sim.executed) == (now, count, executed)

    # B: a fresh run, forward only, with every event's tables read in full
    b = _timeline(name)
    full = FullRecorder(b.lab)
    live_checks = 0
    steps = 0
    while b.recorded <= FAR:
        assert b.advance(), f"{name} ended before event {FAR}"
        full.end_of_step()
        steps += 1
        if steps % 5 == 0:         # the live lab, just after a simulator step
            assert lab_state(b.lab).tables == b.state_at(b.recorded - 1).tables, \
                f"{name}: the live lab differs from the state recorded at event " \
                f"{b.recorded - 1}"
            live_checks += 1
    assert live_checks > 100
    for index in indices:
        b.jump(index)                                # already recorded: forward only
        assert b.cursor == index
        assert shown[index].tables == b.state.tables, f"{name} event {index}"
        assert shown[index].time_us == b.state.time_us

    # every event of the run: the shared states are the ones a full read gives
    first_read = min(full.states)
    for index in range(first_read):        # emitted while the scenario was built
        assert a.state_at(index).tables == a.state_at(-1).tables
    for index in range(first_read, FAR + 1):
        if a.state_at(index).tables != full.states[index].tables:
            missed = state_diff(a.state_at(index), full.states[index])
            pytest.fail(f"{name}: at event {index} ({a.events[index].kind} "
                        f"{a.events[index].summary[:60]}) the recorder missed: "
                        + "; ".join(c.describe() for c in missed))


def test_states_share_the_tables_that_did_not_change(far):
    a = far["home-registration"]
    # the home router's interfaces never change: one tuple for the whole run
    first = a.state_at(0).tables["hr"]["interfaces"]
    assert all(a.state_at(i).tables["hr"]["interfaces"] is first for i in range(0, FAR, 97))
    # and a state that did change is a new object
    assert a.state_at(FAR).tables["ha"]["sad"] != a.state_at(0).tables["ha"]["sad"]


def test_back_and_jump_do_not_run_the_lab(far):
    a = far["home-registration"]
    a.jump(1200)
    sim = a.lab.sim
    before = (sim.now_us, sim.executed, len(a.events), a.recorded)
    kept = a.state_at(700)
    assert a.back() is a.events[1199]
    assert a.back(5000) is None and a.cursor == -1 and a.state is a.state_at(-1)
    assert a.step(10) is a.events[9] and a.cursor == 9
    assert a.jump(1100) is a.events[1100]
    a.reset()
    assert a.cursor == -1 and a.event is None
    assert a.jump(700) is a.events[700] and a.state is kept
    assert a.time_us == a.events[700].time_us
    assert (sim.now_us, sim.executed, len(a.events), a.recorded) == before
    # going past the recording does run it on
    a.jump(a.recorded + 3)
    assert sim.executed > before[1] and a.cursor == before[3] + 3


def test_changes_at_the_binding_cache_entry_and_the_spdadd(far):
    a = far["home-registration"]
    events = a.events
    added = [i for i in range(a.recorded) for c in a.changes_at(i)
             if (c.node, c.table, c.change) == ("ha", "binding_cache", "added")]
    assert added, "no event added the home agent's binding cache row"
    at = added[0]
    change = next(c for c in a.changes_at(at) if c.table == "binding_cache")
    assert change.key == HOA and change.row["hoa"] == HOA
    assert a.state_at(at - 1).table("ha", "binding_cache") == ()
    assert a.state_at(at).table("ha", "binding_cache")[0]["hoa"] == HOA
    assert events[at].node == "ha" and "ACCEPTED" in events[at].summary
    ba = _first(a, lambda e: e.kind == "tx" and a.reader.mobility_message(e) == "BA")
    assert events[ba].node == "ha" and at < ba      # accepted, then acknowledged

    # the key engine traces SPDADD, then answers: the row is there at the answer
    name = f"mip6-bu-{HOA}"
    request = _first(a, lambda e: e.kind == "seam" and e.node == "ha"
                     and f"SPDADD {name}" in e.summary)
    answer = _first(a, lambda e: e.kind == "seam" and e.node == "ha"
                    and f"SPDADD {name}" in e.summary, request + 1)
    assert events[request].summary.startswith("mip6d → kernel")
    assert events[answer].summary.startswith("kernel →")
    spd = [c for c in a.changes_at(answer) if c.table == "spd"]
    assert [(c.node, c.change, c.key) for c in spd] == [("ha", "added", name)]
    assert spd[0].row["action"] == "protect"
    assert name not in {r["name"] for r in a.state_at(request).table("ha", "spd")}
    assert name in {r["name"] for r in a.state_at(answer).table("ha", "spd")}
    assert a.changes_at(-1) == []
    assert all(c.describe().startswith(f"{c.node} {c.table}: ") for c in a.changes_at(at))


def test_next_finds_the_protected_bu_and_ike(far):
    from mip6lab.inspection import mobility_message

    a = far["home-registration"]
    reader = a.reader
    a.reset()
    bu = a.next("bu-ba")
    assert bu is not None and a.cursor == bu.index
    assert bu.kind == "tx" and bu.node == "mn"
    assert reader.mobility_message(bu) == "BU"
    assert "ESP" in reader.protocols(bu) and "MH" in reader.protocols(bu)
    assert mobility_message(bu.packet) is None      # the outer headers say only ESP
    assert all(reader.mobility_message(e) is None for e in a.events[:bu.index])
    ba = a.next("bu-ba", node="ha")
    assert ba.node == "ha" and reader.mobility_message(ba) == "BA"

    a.reset()
    ike = a.next("ike")
    assert ike.kind == "tx" and ike.node == "mn"
    assert "IKE_SA_INIT request" in ike.summary and reader.protocols(ike) == {"IKE"}
    assert all(not (e.kind == "tx" and "IKE" in reader.protocols(e))
               for e in a.events[:ike.index])
    seam = a.next("seam", node="mn")
    assert seam.kind == "seam" and seam.node == "mn" and seam.index > ike.index
    with pytest.raises(TimelineError, match="no event class 'bogus'"):
        a.next("bogus")
    assert a.cursor == seam.index                   # an error leaves the cursor


def test_run_to_time_index_and_predicate(far):
    a = far["handover"]
    a.reset()
    event = a.run_to(time=1.0)
    assert event.time_us <= 1_000_000 < a.events[event.index + 1].time_us
    event = a.run_to(time=0.5)              # behind the cursor: back in time
    assert event.time_us <= 500_000 < a.events[event.index + 1].time_us
    event = a.run_to(time=0.0)
    assert event.time_us == 0 and a.events[event.index + 1].time_us > 0
    event = a.run_to(time=2.0)
    assert event.time_us <= 2_000_000 < a.events[event.index + 1].time_us
    assert a.run_to(index=321) is a.events[321] and a.cursor == 321

    a.reset()
    migrate = a.run_to(predicate=lambda e: e.kind == "seam" and "MIGRATE" in e.summary)
    assert migrate is not None and a.cursor == migrate.index
    assert migrate.time_us >= 5_000_000                     # the move to visit2 at 5 s
    assert not any(e.kind == "seam" and "MIGRATE" in e.summary
                   for e in a.events[:migrate.index])
    with pytest.raises(TimelineError, match="needs a time, an index or a predicate"):
        a.run_to()


def test_run_to_a_breakpoint_never_reached():
    timeline = _timeline("home-registration")
    assert timeline.run_to(predicate=lambda e: e.kind == "error") is None
    assert timeline.cursor == -1 and timeline.exhausted
    assert timeline.events[-1].time_us <= timeline.until_us
    assert timeline.next("event", node="no-such-node") is None and timeline.cursor == -1
    last = timeline.run_to(time=10**6)
    assert last is timeline.events[-1] and timeline.cursor == timeline.recorded - 1


def test_out_of_range_jumps_say_why(far):
    a = far["home-registration"]
    a.jump(50)
    with pytest.raises(TimelineError) as caught:
        a.jump(10**6)
    text = str(caught.value)
    assert "event 1000000 does not exist" in text
    assert f"0 to {a.recorded - 1}" in text and a.exhausted
    assert a.cursor == 50
    with pytest.raises(TimelineError, match="event -2 does not exist"):
        a.jump(-2)
    with pytest.raises(TimelineError):
        a.state_at(a.recorded)
    with pytest.raises(TimelineError):
        a.state_at(-2)
    assert a.cursor == 50
    assert a.jump(-1) is None and a.state is a.state_at(-1)
    # the run is over: stepping stays on the last event
    a.jump(a.recorded - 1)
    assert a.step() is a.events[-1] and a.run_all() == a.recorded


def test_timeline_over_an_empty_lab():
    lab = Lab(seed=0)
    timeline = Timeline(lab)
    assert timeline.step() is None and timeline.cursor == -1 and timeline.exhausted
    assert timeline.recorded == 0 and timeline.event is None
    state = timeline.state_at(-1)
    assert isinstance(state, LabState) and state.tables == {} and state.time_us == 0
    assert timeline.state is state and timeline.changes_at(-1) == []
    assert timeline.next("packet") is None and timeline.run_all() == 0
    with pytest.raises(TimelineError, match="the trace is empty"):
        timeline.jump(0)
    assert timeline.back() is None and timeline.time_us == 0


def test_events_before_the_timeline_and_after_close():
    lab = Lab(seed=0)
    lab.trace.emit("x", "test", "state", "before")
    timeline = Timeline(lab)
    assert timeline.recorded == 1 and timeline.state_at(0) is timeline.state_at(-1)
    lab.trace.emit("x", "test", "state", "while recording")
    assert timeline.recorded == 2
    timeline.close()
    lab.trace.emit("x", "test", "state", "after close")
    assert timeline.recorded == 2 and len(lab.trace.events) == 3


def test_a_lab_that_runs_without_events_is_stopped_not_followed_forever(monkeypatch):
    monkeypatch.setattr(Timeline, "SILENT_STEPS", 500)
    lab = Lab(seed=0)

    def spin():                       # a timer that reschedules itself at the same instant
        lab.sim.call_at(lab.sim.now_us, spin)

    lab.sim.call_at(0, spin)
    timeline = Timeline(lab)
    with pytest.raises(TimelineError, match="500 steps .* without a single event"):
        timeline.step()
    assert timeline.cursor == -1
