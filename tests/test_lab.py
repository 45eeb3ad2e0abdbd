"""The Lab: stepping, running to a time or a condition, reset and replay, the graph."""

from __future__ import annotations

import networkx as nx
import pytest

from mip6lab.net.lab import Lab, Step
from mip6lab.scenarios import create

from conftest import H2_6, build_small, small_lab


def _ping_h2(lab: Lab, seq: int = 1, at: float = 0.0) -> list:
    replies = []
    lab.nodes["h1"].echo_listeners.append(replies.append)
    lab.at(at, lab.nodes["h1"].ping, H2_6, seq, label="ping h2")
    return replies


# -- step ------------------------------------------------------------------------------------


def test_step_runs_exactly_one_event_and_returns_its_trace_events():
    lab = Lab(seed=1)
    ran = []

    def noisy(tag):
        ran.append(tag)
        lab.trace.emit("n", "test", "state", f"{tag} one")
        lab.trace.emit("n", "test", "state", f"{tag} two")

    lab.at(0.5, noisy, "A", label="first")
    lab.at(0.7, noisy, "B", label="second")
    step = lab.step()
    assert isinstance(step, Step)
    assert ran == ["A"]                       # exactly one event ran
    assert step.time == 0.5 and lab.now == 0.5
    assert step.label == "first"
    assert [e.summary for e in step.events] == ["A one", "A two"]
    assert list(step.events) == list(lab.events)
    assert lab.sim.pending() == 1
    step = lab.step()
    assert ran == ["A", "B"]
    assert [e.summary for e in step.events] == ["B one", "B two"]
    assert lab.step() is None


def test_step_on_a_network_partitions_the_trace(small):
    """Every trace event after the build is returned by exactly one step, in order."""
    built = len(small.events)
    replies = _ping_h2(small)
    collected = []
    steps = 0
    while (step := small.step()) is not None:
        steps += 1
        collected += list(step.events)
        assert all(e.time == step.time for e in step.events)
    assert steps == small.sim.executed
    assert collected == list(small.events)[built:]
    assert [r.seq for r in replies] == [1]
    assert any(e.kind == "rx" for e in collected)


def test_step_label_defaults_to_the_action_name():
    lab = Lab()

    def my_action():
        pass

    lab.after(0.1, my_action)
    assert lab.step().label == "my_action"


# -- run(until=) ---------------------------------------------------------------------------


def test_run_until_time_stops_there_and_advances_the_clock():
    lab = Lab()
    ran = []
    for t in (1.0, 2.0, 3.0):
        lab.at(t, ran.append, t)
    assert lab.run(until=2.0) == 2           # the event at exactly 2.0 runs
    assert ran == [1.0, 2.0]
    assert lab.now == 2.0
    assert lab.run(until=2.5) == 0
    assert lab.now == 2.5                    # the clock moves even with nothing to run
    assert ran == [1.0, 2.0]
    assert lab.sim.pending() == 1
    assert lab.run() == 1
    assert ran == [1.0, 2.0, 3.0] and lab.now == 3.0


def test_run_until_time_on_an_empty_lab_still_moves_the_clock():
    lab = Lab()
    assert lab.run(until=4.25) == 0
    assert lab.now == 4.25
    assert lab.sim.now_us == 4_250_000


def test_run_max_steps_limits_the_count():
    lab = Lab()
    ran = []
    for t in range(5):
        lab.at(t, ran.append, t)
    assert lab.run(max_steps=3) == 3
    assert ran == [0, 1, 2]


def test_run_until_time_on_a_network_only_runs_what_is_due(small):
    replies = _ping_h2(small, at=1.0)
    small.run(until=0.999)
    assert small.events.frames() == []
    assert replies == []
    small.run(until=2.0)
    assert [r.seq for r in replies] == [1]
    assert all(e.time <= 2.0 for e in small.events)
    assert small.now == 2.0


# -- run_until(predicate) ------------------------------------------------------------------


def test_run_until_predicate_true_stops_as_soon_as_it_holds(small):
    replies = _ping_h2(small)
    small.at(50.0, lambda: None, label="far future")
    assert small.run_until(lambda lab: bool(replies), timeout=5.0) is True
    assert len(replies) == 1
    assert small.now == replies[0].time_us / 1e6   # not a microsecond further
    assert small.now < 1.0
    assert small.sim.pending() >= 1                # the far-future event is untouched


def test_run_until_predicate_already_true_runs_nothing():
    lab = Lab()
    ran = []
    lab.at(0.0, ran.append, 1)
    assert lab.run_until(lambda lab: True) is True
    assert ran == [] and lab.sim.executed == 0


def test_run_until_predicate_false_at_timeout():
    lab = Lab()
    lab.at(0.2, lambda: None)
    late = []
    lab.at(5.0, late.append, "late")
    assert lab.run_until(lambda lab: bool(late), timeout=1.0) is False
    assert late == []                  # the event after the timeout did not run
    assert lab.now == 1.0              # the clock is at the end of the timeout
    assert lab.sim.executed == 1
    assert lab.run_until(lambda lab: bool(late), timeout=10.0) is True
    assert lab.now == 5.0


def test_run_until_predicate_false_when_nothing_is_left():
    lab = Lab()
    lab.at(0.1, lambda: None)
    assert lab.run_until(lambda lab: False) is False
    assert lab.sim.pending() == 0


def test_run_until_timeout_is_relative_to_now():
    lab = Lab()
    lab.run(until=3.0)
    assert lab.run_until(lambda lab: False, timeout=0.5) is False
    assert lab.now == 3.5


def test_run_until_lost_reply_is_false(small):
    small.links["lan2"].conditions.loss = 1.0
    replies = _ping_h2(small)
    assert small.run_until(lambda lab: bool(replies), timeout=2.0) is False
    assert small.trace.filter(kind="drop", link="lan2")


# -- reset and replay ----------------------------------------------------------------------


def test_reset_rebuilds_from_scratch(small):
    old_h1 = small.nodes["h1"]
    _ping_h2(small)
    small.run(until=1.0)
    assert small.events.frames()
    built_events = len(small_lab().events)
    small.reset()
    assert small.now == 0.0
    assert small.sim.pending() == 0            # the ping scheduled before is gone
    assert small.sim.executed == 0
    assert small.nodes["h1"] is not old_h1
    assert set(small.nodes) == {"h1", "r", "h2"}
    assert set(small.links) == {"lan1", "lan2"}
    assert len(small.events) == built_events   # only the build's own events
    assert small.events.frames() == []
    assert small.errors == []


def test_reset_with_a_new_seed_keeps_it():
    lab = small_lab(seed=3)
    lab.reset(seed=9)
    assert lab.seed == 9 and lab.sim.seed == 9
    lab.reset()
    assert lab.seed == 9


def test_names_are_unique_across_nodes_and_links():
    lab = small_lab()
    with pytest.raises(ValueError):
        lab.add_link("h1")
    with pytest.raises(ValueError):
        lab.add_router("lan1")
    with pytest.raises(ValueError):
        lab.add_router("r")


def _scenario_pcap(tmp_path, name, seed=0, **options) -> tuple[bytes, dict]:
    scenario = create("ping-nat", seed=seed, **options)
    report = scenario.run()
    path = tmp_path / name
    scenario.lab.trace.write_pcapng(path)
    return path.read_bytes(), report


def test_same_seed_replays_ping_nat_byte_for_byte(captures):
    one, report_one = _scenario_pcap(captures.directory, "one.pcapng", seed=4, loss=0.1)
    two, report_two = _scenario_pcap(captures.directory, "two.pcapng", seed=4, loss=0.1)
    assert report_one["packets"] > 20
    assert one == two
    assert report_one == report_two


def test_reset_lab_replays_byte_for_byte(captures):
    scenario = create("ping-nat", seed=2, loss=0.15)
    scenario.run()
    first = captures.path("first.pcapng")
    frames = scenario.lab.trace.write_pcapng(first)
    summaries = [(e.time_us, e.node, e.kind, e.summary) for e in scenario.lab.events]
    scenario.lab.reset()
    assert scenario.lab.events.frames() == []
    scenario.run()
    second = captures.path("second.pcapng")
    assert scenario.lab.trace.write_pcapng(second) == frames
    assert first.read_bytes() == second.read_bytes()
    assert [(e.time_us, e.node, e.kind, e.summary) for e in scenario.lab.events] \
        == summaries


def test_a_different_seed_gives_a_different_run(captures):
    zero, _ = _scenario_pcap(captures.directory, "seed0.pcapng", seed=0)
    one, _ = _scenario_pcap(captures.directory, "seed1.pcapng", seed=1)
    assert zero != one


def test_a_different_seed_changes_losses():
    def lost(seed):
        scenario = create("ping-nat", seed=seed, loss=0.3)
        scenario.run()
        return [(e.time_us, e.summary) for e in scenario.lab.trace.filter(kind="drop")]

    assert lost(5) == lost(5)
    assert lost(5) != lost(6)


def test_reset_with_another_seed_differs_and_reset_back_replays():
    lab = small_lab(seed=1, loss=0.3)

    def run(lab):
        for seq in range(20):
            lab.at(seq * 0.5, lab.nodes["h1"].ping, H2_6, seq)
        lab.run(until=15.0)
        return [(e.time_us, e.link, e.kind, e.summary) for e in lab.events]

    first = run(lab)
    lab.reset(seed=2)
    other = run(lab)
    lab.reset(seed=1)
    again = run(lab)
    assert first == again
    assert first != other


# -- graph -----------------------------------------------------------------------------------


def test_graph_has_node_and_link_vertices_and_interface_edges(small):
    graph = small.graph
    assert isinstance(graph, nx.Graph)
    assert set(graph.nodes) == {"h1", "r", "h2", "lan1", "lan2"}
    assert graph.nodes["lan1"]["kind"] == "link"
    assert graph.nodes["lan1"]["link_kind"] == "segment"
    assert graph.nodes["r"]["kind"] == "router"
    assert graph.nodes["h1"]["kind"] == "host"
    edges = {frozenset(e) for e in graph.edges}
    assert edges == {frozenset(p) for p in (("h1", "lan1"), ("r", "lan1"),
                                            ("r", "lan2"), ("h2", "lan2"))}
    edge = graph.edges["r", "lan2"]
    assert edge["interface"] == "eth1"
    assert edge["mac"] == small.nodes["r"].interface("eth1").mac
    assert "2001:db8:2::1" in edge["addresses"] and "10.2.0.1" in edge["addresses"]
    assert nx.shortest_path(graph, "h1", "h2") == ["h1", "lan1", "r", "lan2", "h2"]
    kinds = nx.get_node_attributes(graph, "kind")
    assert all((kinds[u] == "link") != (kinds[v] == "link") for u, v in graph.edges)


def test_graph_shared_segment_and_detached_interface():
    def build(lab):
        build_small(lab)
        lab.add_link("p", "p2p")
        extra = lab.add_router("r2")
        lab.connect(extra, "lan1")       # a third station on lan1
        lab.connect(extra, "p")

    lab = Lab(build=build)
    graph = lab.graph
    assert graph.degree["lan1"] == 3
    assert graph.nodes["p"]["link_kind"] == "p2p"
    assert graph.has_edge("r2", "p")
    node = lab.nodes["r2"]
    node.detach(node.interface("eth1"))
    graph = lab.graph
    assert not graph.has_edge("r2", "p")
    assert "p" in graph.nodes and graph.degree["p"] == 0
    assert "r2" in graph.nodes


def test_graph_follows_a_move(small):
    assert small.graph.has_edge("h2", "lan2")
    small.move("h2", "lan1")
    graph = small.graph
    assert graph.has_edge("h2", "lan1") and not graph.has_edge("h2", "lan2")
    assert graph.degree["lan1"] == 3 and graph.degree["lan2"] == 1
