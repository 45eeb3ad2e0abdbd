"""RealTimeRunner without real devices (no root needed): the wall clock, time_scale,
run / run_until like Lab's; and PacketLink's refusal to touch this process's own
namespace. The tests with sockets are in tests/netns/test_packet_link.py."""

from __future__ import annotations

import time

import pytest

from mip6lab.net.lab import Lab
from mip6lab.net.realtime import RealTimeRunner


def test_a_timer_fires_after_its_time_divided_by_time_scale():
    lab = Lab(seed=4)
    fired: list[float] = []
    lab.after(3.0, lambda: fired.append(time.monotonic()))
    start = time.monotonic()
    assert RealTimeRunner(lab, time_scale=10).run(until=5.0) == 1
    assert 0.28 <= fired[0] - start <= 1.5     # 3 s / 10, never early
    assert 0.48 <= time.monotonic() - start <= 2.0 and lab.now == 5.0


def test_run_until_and_run_behave_like_lab():
    lab = Lab(seed=4)
    ticks: list[float] = []
    for n in range(1, 4):
        lab.after(n * 0.1, lambda: ticks.append(lab.now))
    runner = RealTimeRunner(lab, time_scale=5)
    assert runner.run_until(lambda lab: len(ticks) == 2, timeout=5)
    assert ticks == [0.1, 0.2] and lab.now == 0.2
    assert not runner.run_until(lambda lab: len(ticks) == 9, timeout=0.5)
    assert ticks == [0.1, 0.2, 0.3] and lab.now == pytest.approx(0.7)
    assert runner.run(until=0.1) == 0                 # in the past: nothing to do
    lab.after(0.05, lambda: ticks.append(lab.now))
    start = time.monotonic()
    assert runner.run() == 1                          # None: until nothing is scheduled
    assert time.monotonic() - start < 1.0 and ticks[-1] == pytest.approx(0.75)
    assert runner.max_lateness < 0.5


def test_time_scale_must_be_positive():
    for bad in (0, -1.0):
        with pytest.raises(ValueError):
            RealTimeRunner(Lab(), time_scale=bad)


def test_packet_link_refuses_a_device_in_our_own_namespace():
    # A device that does not exist: had the guard failed, binding fails before any
    # device of this machine is touched.
    with Lab() as lab, pytest.raises(ValueError, match="own network namespace"):
        lab.add_packet_link("uplink", "/proc/self/ns/net", "m6lnosuchdev0")
    assert "uplink" not in lab.links
