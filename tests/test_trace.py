"""The trace: filtering, the ladder diagram, and the pcapng / pcap exports (checked by tshark).

Every capture written here goes through the ``captures`` fixture, which runs the tshark
check on it when the test ends.
"""

from __future__ import annotations

import json
import re
import subprocess
from decimal import Decimal

import pytest

from mip6lab.net.lab import Lab
from mip6lab.testing.tshark import check_capture, tshark_fields
from mip6lab.trace import Event, Events

from conftest import H1_6, H2_6, build_small, small_lab

TIME_COLUMN = 12   # "time (s)    " and "%-11.6f " are both 12 characters wide
WIDTH = 12         # the ladder's default column width


def _pinged(seed: int = 11, count: int = 3, **conditions) -> Lab:
    """h1 pings h2 ``count`` times (one per 0.5 s), run to the end."""
    lab = small_lab(seed=seed, **conditions)
    for seq in range(1, count + 1):
        lab.at(0.5 * (seq - 1), lab.nodes["h1"].ping, H2_6, seq)
    lab.run(until=0.5 * count + 3.0)
    return lab


@pytest.fixture(scope="module")
def pinged() -> Lab:
    return _pinged()


# -- events and filter ---------------------------------------------------------------------


def test_emit_numbers_events_and_stamps_the_clock():
    lab = Lab()
    lab.run(until=1.5)
    seen = []
    unsubscribe = lab.trace.subscribe(seen.append)
    first = lab.trace.emit("n1", "mod", "state", "hello", answer=42)
    assert isinstance(first, Event)
    assert first.index == 0 and first.time_us == 1_500_000 and first.time == 1.5
    assert first.data == {"answer": 42}
    unsubscribe()
    second = lab.trace.emit("n1", "mod", "state", "again")
    assert second.index == 1
    assert seen == [first]               # unsubscribed before the second
    assert len(lab.trace) == 2 and list(lab.trace) == [first, second]


def test_filter_by_node_module_kind_link(pinged):
    events = pinged.events
    assert isinstance(events.filter(node="h1"), Events)
    assert {e.node for e in events.filter(node="h1")} == {"h1"}
    assert events.filter(node="h1") == [e for e in events if e.node == "h1"]
    assert events.filter(node=["h1", "h2"]) == [e for e in events if e.node in ("h1", "h2")]
    assert events.filter(module="link") == [e for e in events if e.module == "link"]
    assert events.filter(kind="rx") == [e for e in events if e.kind == "rx"]
    assert events.filter(kind={"rx", "tx"}) == [e for e in events if e.kind in ("rx", "tx")]
    assert events.filter(link="lan2") == [e for e in events if e.link == "lan2"]
    combined = events.filter(node="r", kind="tx", link="lan2")
    assert combined and all(e.node == "r" and e.kind == "tx" and e.link == "lan2"
                            for e in combined)
    assert combined == events.filter(node="r").filter(kind="tx").filter(link="lan2")
    assert events.filter(node="nobody") == []
    assert pinged.trace.filter(kind="rx") == events.filter(kind="rx")


def test_filter_by_time_is_inclusive(pinged):
    events = pinged.events
    times = sorted({e.time for e in events.frames()})
    lo, hi = times[1], times[-2]
    window = events.filter(since=lo, until=hi)
    assert window == [e for e in events if lo <= e.time <= hi]
    assert any(e.time == lo for e in window) and any(e.time == hi for e in window)
    assert all(e.time >= 1.0 for e in events.filter(since=1.0))
    assert all(e.time <= 0.5 for e in events.filter(until=0.5))
    assert events.filter(since=hi, until=lo) == []


def test_filter_with_a_predicate(pinged):
    events = pinged.events
    replies = events.filter(kind="rx", where=lambda e: "echo reply" in e.summary)
    assert len(replies) == 3 * 2          # each reply crosses lan2 then lan1
    assert {e.node for e in replies} == {"r", "h1"}


def test_frames_and_links(pinged):
    frames = pinged.events.frames()
    assert frames and all(e.kind == "tx" and e.packet for e in frames)
    assert pinged.events.links() == ["lan1", "lan2"]


def test_packet_events_describe_and_dissect(pinged):
    request = pinged.events.filter(kind="tx", node="h1",
                                   where=lambda e: "echo request" in e.summary)[0]
    assert request.summary == f"ICMPv6 echo request {H1_6} → {H2_6} id=28012 seq=1"
    from scapy.layers.inet6 import ICMPv6EchoRequest

    assert request.scapy()[ICMPv6EchoRequest].seq == 1
    as_dict = request.to_dict()
    assert as_dict["link"] == "lan1" and as_dict["length"] == len(request.packet)
    json.dumps([e.to_dict() for e in pinged.events])   # every event is JSON-ready
    rx = pinged.events.filter(kind="rx", node="r")[0]
    assert rx.to_dict()["peer"] == "h1"


# -- ladder --------------------------------------------------------------------------------


def _diagram_cell(line: str, column: int) -> str:
    return line[TIME_COLUMN + column * WIDTH]


def test_ladder_draws_an_arrow_for_each_delivery(pinged):
    text = pinged.events.ladder(nodes=["h1", "r", "h2"])
    lines = text.splitlines()
    assert lines[0].split() == ["time", "(s)", "h1", "r", "h2"]
    assert set(lines[1]) == {"-"}
    requests = [l for l in lines if "ICMPv6 echo request" in l]
    # h1 -> r on lan1, then r -> h2 on lan2, for each of the 3 pings
    assert len(requests) == 6
    first = requests[0]
    assert _diagram_cell(first, 0) == "|"
    assert first[TIME_COLUMN + 1: TIME_COLUMN + WIDTH - 1] == "-" * (WIDTH - 2)
    assert _diagram_cell(first, 1)[0] == "|" and first[TIME_COLUMN + WIDTH - 1] == ">"
    second = requests[1]
    assert second[TIME_COLUMN + 2 * WIDTH - 1] == ">"
    replies = [l for l in lines if "ICMPv6 echo reply" in l]
    assert len(replies) == 6
    # a reply goes right to left: the arrow head is at the receiver's side
    assert replies[0][TIME_COLUMN + WIDTH + 1] == "<"   # h2 -> r
    assert replies[1][TIME_COLUMN + 1] == "<"            # r -> h1
    first_rx = pinged.events.filter(kind="rx", node="r",
                                    where=lambda e: "echo request" in e.summary)[0]
    assert float(first.split()[0]) == pytest.approx(first_rx.time, abs=1e-6)
    assert first.rstrip().endswith(first_rx.summary)


def test_ladder_marks_a_drop_with_an_x():
    lab = small_lab(seed=3)
    lab.links["lan2"].conditions.loss = 1.0
    lab.at(0.0, lab.nodes["h1"].ping, H2_6, 1)
    lab.run(until=5.0)
    drops = lab.events.filter(kind="drop")
    lost = drops.filter(where=lambda e: e.reason == "lost on link")
    assert lost and all(e.node == "r" for e in lost)      # r's NS for h2, every try
    text = lab.events.ladder(nodes=["h1", "r", "h2"])
    x_lines = [l for l in text.splitlines() if "[lost on link]" in l]
    assert len(x_lines) == len(lost)
    assert all(_diagram_cell(l, 1) == "x" for l in x_lines)
    assert all(_diagram_cell(l, 0) == "|" and _diagram_cell(l, 2) == "|" for l in x_lines)
    # then r gives up resolving h2 and drops the queued echo request: another x
    unresolved = [l for l in text.splitlines() if "[address resolution" in l]
    assert len(unresolved) == 1 and _diagram_cell(unresolved[0], 1) == "x"
    assert len([l for l in text.splitlines() if _diagram_cell(l, 1) == "x"]) == len(drops)


def test_ladder_state_rows_and_default_columns(pinged):
    lab = small_lab()
    lab.trace.emit("h2", "app", "state", "something changed")
    text = lab.events.ladder(nodes=["h1", "r", "h2"])
    star = [l for l in text.splitlines() if "something changed" in l]
    assert len(star) == 1 and _diagram_cell(star[0], 2) == "*"
    assert "something changed" not in lab.events.ladder(nodes=["h1", "r", "h2"],
                                                         show_state=False)
    header = pinged.events.ladder().splitlines()[0].split()
    assert set(header[2:]) == {"h1", "r", "h2"}   # columns found from the events


def test_ladder_with_a_subset_of_nodes_marks_deliveries_from_hidden_senders(pinged):
    text = pinged.events.ladder(nodes=["r", "h2"])
    lines = text.splitlines()
    assert lines[0].split() == ["time", "(s)", "r", "h2"]
    from_h1 = [l for l in lines if l.endswith("[from h1]")]
    # what h1 sent r: its NS, then one echo request per ping
    assert len(from_h1) == 1 + 3
    assert all(_diagram_cell(l, 0) == ">" for l in from_h1)
    arrows = [l for l in lines if "echo request" in l and "[from" not in l]
    assert len(arrows) == 3 and all(l[TIME_COLUMN + WIDTH - 1] == ">" for l in arrows)
    # deliveries to a node that is not shown (r's NA to h1) are left out
    assert "NA 2001:db8:1::1 is-at" not in text


# -- pcapng ---------------------------------------------------------------------------------


def _capinfos_interfaces(path) -> list[str]:
    out = subprocess.run(["capinfos", "-I", str(path)], capture_output=True, text=True,
                         check=True).stdout
    count = int(re.search(r"Number of interfaces in file:\s*(\d+)", out).group(1))
    names = re.findall(r"^\s*Name = (.*)$", out, re.MULTILINE)
    assert len(names) == count
    return names


def test_pcapng_has_one_interface_per_link_that_carried_frames(captures):
    def build(lab):
        build_small(lab)
        lab.add_link("idle")                       # attached, but silent
        lab.connect(lab.add_router("quiet"), "idle")

    lab = Lab(seed=2, build=build)
    lab.at(0.0, lab.nodes["h1"].ping, H2_6, 1)
    lab.run(until=3.0)
    path = captures.path("lab.pcapng")
    frames = lab.events.frames()
    assert lab.trace.write_pcapng(path) == len(frames)
    assert _capinfos_interfaces(path) == ["lan1", "lan2"]
    rows = tshark_fields(path, ["frame.interface_name", "frame.time_epoch", "frame.len"])
    assert [r["frame.interface_name"] for r in rows] == [[e.link] for e in frames]
    assert [Decimal(r["frame.time_epoch"][0]) for r in rows] == \
        [Decimal(e.time_us) / 1_000_000 for e in frames]
    assert [int(r["frame.len"][0]) for r in rows] == [len(e.packet) for e in frames]
    report = check_capture(path)
    assert report.frames == len(frames)
    assert {"eth", "ipv6", "icmpv6"} <= report.protocols


def test_pcapng_comments_say_which_frames_were_lost_or_duplicated(captures):
    lab = _pinged(seed=5, count=12, loss=0.25, duplicate=0.2)
    frames = lab.events.frames()
    lost = [i for i, e in enumerate(frames) if "lost on this link" in e.data["comments"]]
    dup = [i for i, e in enumerate(frames)
           if "duplicated by this link" in e.data["comments"]]
    assert lost and dup   # the seed gives both
    path = captures.path("lossy.pcapng")
    lab.trace.write_pcapng(path)
    rows = tshark_fields(path, ["frame.comment"])
    assert len(rows) == len(frames)
    assert [i for i, r in enumerate(rows) if "lost on this link" in r["frame.comment"]] \
        == lost
    assert [i for i, r in enumerate(rows)
            if "duplicated by this link" in r["frame.comment"]] == dup
    # every lost frame has a drop event at the same time on the same link
    drops = lab.events.filter(kind="drop", where=lambda e: e.reason == "lost on link")
    assert [(d.time_us, d.link) for d in drops] == \
        [(frames[i].time_us, frames[i].link) for i in lost]


def test_pcapng_of_an_empty_trace_is_still_a_valid_file(captures):
    lab = Lab()
    path = captures.path("empty.pcapng")
    assert lab.trace.write_pcapng(path) == 0
    assert check_capture(path).frames == 0
    out = subprocess.run(["capinfos", "-c", "-t", str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert re.search(r"Number of packets:\s*0\b", out)
    assert "pcapng" in out


def test_pcapng_of_ping_nat_passes_tshark(captures):
    from mip6lab.scenarios import create

    scenario = create("ping-nat", seed=1, loss=0.1)
    scenario.run()
    path = captures.path("ping-nat.pcapng")
    count = scenario.lab.trace.write_pcapng(path)
    report = check_capture(path)
    assert report.frames == count > 0
    assert {"ipv6", "icmpv6", "ip", "udp", "arp"} <= report.protocols
    assert set(_capinfos_interfaces(path)) == set(scenario.lab.events.links())
    assert len(_capinfos_interfaces(path)) == len(scenario.lab.events.links()) == 5


# -- pcaps ----------------------------------------------------------------------------------


def test_write_pcaps_writes_one_classic_pcap_per_link(captures):
    lab = _pinged(seed=7, loss=0.1)
    directory = captures.path("per-link")
    paths = lab.trace.write_pcaps(directory)
    assert set(paths) == {"lan1", "lan2"}
    assert sorted(p.name for p in directory.iterdir()) == ["lan1.pcap", "lan2.pcap"]
    for link, path in paths.items():
        data = open(path, "rb").read()
        assert data[:4] in (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4")  # classic pcap
        frames = lab.events.frames().filter(link=link)
        report = check_capture(path)
        assert report.frames == len(frames) > 0
        rows = tshark_fields(path, ["frame.len", "frame.time_epoch"])
        assert [int(r["frame.len"][0]) for r in rows] == [len(e.packet) for e in frames]
        assert [Decimal(r["frame.time_epoch"][0]) for r in rows] == \
            [Decimal(e.time_us) / 1_000_000 for e in frames]


# -- trace levels ---------------------------------------------------------------------------


def _pinged_at(level: str) -> Lab:
    lab = Lab(seed=11, build=build_small, trace_level=level)
    for seq in range(1, 4):
        lab.at(0.5 * (seq - 1), lab.nodes["h1"].ping, H2_6, seq)
    lab.run(until=4.5)
    return lab


def _kinds(events) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in events:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    return counts


def _module_events(events) -> list[tuple]:
    return [(e.time_us, e.node, e.module, e.kind, e.summary, e.reason) for e in events
            if e.kind not in ("tx", "rx")]


def test_the_default_level_is_full_and_keeps_every_frame_with_its_bytes(pinged):
    assert Lab().trace.level == "full" and Lab().trace_level == "full"
    assert pinged.trace.level == "full"
    frames = pinged.events.filter(kind={"tx", "rx"})
    assert frames and all(isinstance(e.packet, bytes) and e.packet for e in frames)
    # every event emitted is kept: the counts and the list agree
    assert pinged.trace.counts == _kinds(pinged.events)
    assert pinged.trace.keeps("tx") and pinged.trace.keeps("state")


def test_events_level_keeps_what_the_modules_did_and_counts_the_frames(pinged):
    lab = _pinged_at("events")
    assert lab.trace.level == "events"
    assert not lab.events.filter(kind={"tx", "rx"})
    assert not lab.trace.keeps("tx") and not lab.trace.keeps("rx")
    assert lab.trace.keeps("state") and lab.trace.keeps("drop")
    # the same run (a level changes what is recorded, never what happens) ...
    assert lab.sim.executed == pinged.sim.executed
    assert lab.trace.counts == pinged.trace.counts
    # ... and every event that is not a frame, as the full trace has it, numbered anew
    assert _module_events(lab.events) == _module_events(pinged.events)
    assert [e.index for e in lab.events] == list(range(len(lab.events)))


def test_counts_level_keeps_no_event_and_calls_no_subscriber(pinged):
    lab = _pinged_at("counts")
    assert len(lab.trace) == 0 and list(lab.events) == []
    assert lab.trace.counts == pinged.trace.counts
    assert lab.trace.counts["tx"] > 0 and lab.trace.counts["rx"] > 0
    seen = []
    lab.trace.subscribe(seen.append)
    assert lab.trace.emit("h1", "mod", "state", "hello") is None
    assert seen == [] and lab.trace.counts["state"] == pinged.trace.counts["state"] + 1
    assert not lab.trace.keeps("state")


def test_level_can_change_while_the_lab_runs_and_reset_keeps_the_labs_level():
    lab = Lab(seed=3, build=build_small, trace_level="counts")
    lab.nodes["h1"].ping(H2_6, 1)
    lab.run(until=1.0)
    assert len(lab.events) == 0
    lab.trace.level = "full"
    lab.nodes["h1"].ping(H2_6, 2)
    lab.run(until=2.0)
    assert lab.events.filter(kind="tx") and lab.events[0].index == 0
    lab.reset()
    assert lab.trace.level == "counts" and len(lab.events) == 0
    assert lab.trace.counts == Lab(seed=3, build=build_small).trace.counts   # the build's


def test_a_level_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="trace level"):
        Lab(trace_level="some")
    lab = Lab()
    with pytest.raises(ValueError, match="trace level"):
        lab.trace.level = "verbose"
    assert lab.trace.level == "full"


def test_a_scenario_takes_the_level_and_the_dashboard_still_gets_everything():
    from mip6lab.scenarios import ScenarioError, create
    from mip6lab.timeline import Timeline, TimelineError
    from mip6lab.widgets.session import Session

    quiet = create("home-registration", seed=1, trace_level="events")
    assert quiet.lab.trace.level == "events"
    with pytest.raises(TimelineError, match="full trace"):
        Timeline(quiet.lab)
    with pytest.raises(ScenarioError):
        create("home-registration", seed=1, trace_level="loud")
    # the dashboard's default: a full trace, every event recorded by the timeline
    session = Session("home-registration", seed=1)
    assert session.lab.trace.level == "full"
    session.lab.run(until=session.scenario.duration)
    lab = session.lab
    assert len(lab.events) == sum(lab.trace.counts.values())
    assert session.timeline.recorded == len(lab.events)
    assert lab.events.filter(kind="tx") and all(e.packet for e in lab.events.frames())
    # the events level keeps exactly the full trace's module events, same run
    quiet.lab.run(until=quiet.duration)
    assert quiet.lab.trace.counts == lab.trace.counts
    assert _module_events(quiet.lab.events) == _module_events(lab.events)
