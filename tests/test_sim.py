"""The discrete-event simulator: ordering, cancellation, the clock, the seeded random."""

from __future__ import annotations

import pytest

from mip6lab.net.sim import Simulator, seconds_to_us


def test_seconds_to_us_is_exact_for_decimal_seconds():
    assert seconds_to_us(0.001) == 1_000
    assert seconds_to_us(1.5) == 1_500_000
    assert seconds_to_us(0.1 + 0.2) == 300_000  # float noise rounds away


def test_events_run_in_time_order_not_scheduling_order():
    sim = Simulator()
    ran = []
    for t in (30, 10, 20, 5):
        sim.call_at(t, ran.append, t)
    while sim.step():
        pass
    assert ran == [5, 10, 20, 30]


def test_same_time_events_run_in_scheduling_order():
    sim = Simulator()
    ran = []
    for name in "dcbae":
        sim.call_at(100, ran.append, name)
    sim.call_at(50, ran.append, "first")
    while sim.step():
        pass
    assert ran == ["first", "d", "c", "b", "a", "e"]


def test_step_sets_clock_to_event_time_and_returns_the_call():
    sim = Simulator()
    seen_at = []
    call = sim.call_at(1_234, lambda: seen_at.append(sim.now_us), label="tick")
    assert sim.now_us == 0
    ran = sim.step()
    assert ran is call and ran.label == "tick"
    assert seen_at == [1_234]
    assert sim.now_us == 1_234 and sim.now == pytest.approx(0.001234)
    assert sim.executed == 1
    assert sim.step() is None  # nothing left
    assert sim.executed == 1


def test_call_later_is_relative_to_now():
    sim = Simulator()
    times = []
    sim.call_at(2_000_000, lambda: sim.call_later(0.25, lambda: times.append(sim.now_us)))
    while sim.step():
        pass
    assert times == [2_250_000]


def test_event_scheduled_by_an_event_for_the_same_time_runs_after_pending_peers():
    sim = Simulator()
    ran = []
    sim.call_at(10, lambda: (ran.append("a"), sim.call_at(10, ran.append, "c")))
    sim.call_at(10, ran.append, "b")
    while sim.step():
        pass
    assert ran == ["a", "b", "c"]


def test_cancelled_call_never_runs_and_is_not_pending():
    sim = Simulator()
    ran = []
    keep = sim.call_at(10, ran.append, "keep")
    gone = sim.call_at(5, ran.append, "gone")
    assert sim.pending() == 2
    gone.cancel()
    assert sim.pending() == 1
    assert sim.peek_time_us() == 10  # the cancelled head is skipped
    assert sim.step() is keep
    assert ran == ["keep"]
    assert sim.step() is None
    assert sim.executed == 1


def test_cancel_from_inside_an_earlier_event():
    sim = Simulator()
    ran = []
    later = sim.call_at(20, ran.append, "later")
    sim.call_at(10, later.cancel)
    while sim.step():
        pass
    assert ran == []
    assert sim.now_us == 10  # the clock never reached the cancelled event


def test_scheduling_in_the_past_raises():
    sim = Simulator()
    sim.call_at(100, lambda: None)
    sim.step()
    with pytest.raises(ValueError, match="past"):
        sim.call_at(99, lambda: None)
    with pytest.raises(ValueError, match="past"):
        sim.call_later(-0.001, lambda: None)
    sim.call_at(100, lambda: None)  # "now" itself is allowed
    assert sim.pending() == 1


def test_advance_to_moves_forward_only_and_runs_nothing():
    sim = Simulator()
    ran = []
    sim.call_at(50, ran.append, 1)
    sim.advance_to(30)
    assert sim.now_us == 30 and ran == []
    sim.advance_to(10)
    assert sim.now_us == 30


def test_peek_time_and_pending_on_empty_simulator():
    sim = Simulator()
    assert sim.peek_time_us() is None
    assert sim.pending() == 0


def _draws(seed: int) -> list[float]:
    sim = Simulator(seed)
    return [sim.random.random() for _ in range(20)]


def test_seeded_random_is_reproducible_and_seed_dependent():
    assert _draws(42) == _draws(42)
    assert _draws(42) != _draws(43)
    assert Simulator(7).seed == 7


def test_random_source_is_per_simulator_not_global():
    import random

    one = Simulator(5)
    first = one.random.random()
    random.seed(999)          # the global generator must not matter
    random.random()
    two = Simulator(5)
    assert two.random.random() == first


def _busy(sim: Simulator, ran: list) -> None:
    """Timers of every kind: cancelled ones (enough to make call_at sweep the heap in the
    middle of a run), same-time ones, some scheduled by the events themselves."""
    def chain(n):
        ran.append(("chain", n, sim.now_us))
        if n < 40:
            sim.call_later(0.000_003, chain, n + 1, label=("chain", n + 1))
            for i in range(30):      # 1200 cancelled calls: call_at sweeps on the way
                sim.call_later(0.5, ran.append, "never").cancel()
    for t in (30, 10, 20, 10, 5):
        sim.call_at(t, ran.append, ("at", t))
    sim.call_at(7, ran.append, "cancelled").cancel()
    sim.call_at(1, chain, 0)


@pytest.mark.parametrize("limit, max_steps", [(None, None), (60, None), (None, 7), (10, 3)])
def test_run_does_what_peek_and_step_do_in_a_loop(limit, max_steps):
    stepped, ran_step = Simulator(), []
    _busy(stepped, ran_step)
    steps = 0
    while max_steps is None or steps < max_steps:
        due = stepped.peek_time_us()
        if due is None or (limit is not None and due > limit):
            break
        stepped.step()
        steps += 1
    run, ran_run = Simulator(), []
    _busy(run, ran_run)
    assert run.run(limit, max_steps) == steps
    assert ran_run == ran_step and "never" not in ran_run
    assert (run.now_us, run.executed, run.pending(), run.scheduled()) == \
        (stepped.now_us, stepped.executed, stepped.pending(), stepped.scheduled())
