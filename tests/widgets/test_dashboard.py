"""The dashboard driven from Python as a student drives it: buttons, clicks, filters,
what-ifs -- and after each, what the parts show.

Clicks are the widgets' own (``Button.click()``, ``SvgView.click(index)``, setting a
control's ``value``), so the handlers under test are the ones the browser calls. The
browser itself is tests/browser's business.
"""

from __future__ import annotations

import re

import pytest

from mip6lab.net.lab import Lab
from mip6lab.scenarios import ScenarioError, create
from mip6lab.widgets import Dashboard, Session

HOA = "2001:db8:0:1::1001"
ROW = re.compile(r"^(?:▶ |  )#(\d+) ")


def _current(svg: str) -> list[int]:
    return [int(n) for n in re.findall(r'<g class="row current[^"]*" data-event="(\d+)"', svg)]


def _drawn(svg: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-event="(\d+)"', svg)]


def _rows(text: str) -> list[int]:
    """The event indices of the text ladder's rows."""
    return [int(m.group(1)) for line in text.splitlines() if (m := ROW.match(line))]


def _panel(html: str, name: str) -> str:
    """The HTML of one state panel."""
    start = html.index(f"mip6lab-panel-{name}")
    end = html.find('<div class="mip6lab-panel ', start)
    return html[start:end if end != -1 else None]


def _position(dash) -> tuple[int, str]:
    text = dash.controls.text()
    found = re.match(r"event (-?\d+) / \d+ · t = (\d+\.\d{6}) s", text)
    assert found, text
    return int(found.group(1)), found.group(2)


@pytest.fixture(scope="module")
def home():
    return Dashboard("home-registration")


@pytest.fixture(scope="module")
def handover():
    return Dashboard("handover")


@pytest.fixture(scope="module")
def marks(home):
    """The indices of the BU, the BA and the binding cache's new row in home-registration."""
    t = home.timeline
    t.jump(400)
    reader = t.reader
    bu = next(e.index for e in t.events if e.kind == "tx" and reader.mobility_message(e) == "BU")
    ba = next(e.index for e in t.events if e.kind == "tx" and reader.mobility_message(e) == "BA")
    cache = next(i for i in range(t.recorded) if any(
        c.node == "ha" and c.table == "binding_cache" and c.change == "added"
        for c in t.changes_at(i)))
    home.reset()
    return {"bu": bu, "ba": ba, "cache": cache}


# -- the controls ------------------------------------------------------------------------


def test_step_back_and_jump_buttons(home):
    c = home.controls
    c.reset.click()
    assert _position(home) == (-1, "0.000000")
    assert "Before the first event" in home.inspector.html.value
    c.step.click()
    assert _position(home)[0] == 0 and "event 0 / " in c.position.value
    assert _current(home.ladder.view.svg) == [0]
    c.step.click()
    c.step.click()
    assert _position(home)[0] == 2
    c.back.click()
    assert _position(home)[0] == 1 and _current(home.ladder.view.svg) == [1]
    assert c.index.value == 1

    c.index.value = 150
    c.jump.click()
    event = home.timeline.events[150]
    assert _position(home) == (150, f"{event.time:.6f}")
    assert '<div class="mip6lab-summary">#150 ' in home.inspector.html.value
    assert home.inspector.text().startswith(f"Event #150 at {event.time:.6f} s")
    assert _current(home.ladder.view.svg) == [150]
    assert "▶ #150 " in home.ladder.text()
    assert c.message.value == ""


def test_back_after_jump_does_not_run_the_lab(home):
    home.jump(600)
    sim = home.lab.sim
    before = (sim.executed, sim.now_us, home.timeline.recorded)
    home.controls.back.click()
    home.ladder.view.click(120)             # a click on a row travels there
    assert _position(home)[0] == 120
    home.ladder.view.click(500)             # a faded, already recorded row
    assert _position(home)[0] == 500
    home.controls.reset.click()
    assert (sim.executed, sim.now_us, home.timeline.recorded) == before


def test_play_and_run_to_time(home):
    c = home.controls
    home.jump(10)
    c.per_tick.value = 5
    c.play.value = 1                        # one tick of the browser's Play
    assert _position(home)[0] == 15
    c.per_tick.value = 1
    c.time.value = 0.05
    c.run_to.click()
    index, _ = _position(home)
    events = home.timeline.events
    assert events[index].time_us <= 50_000 < events[index + 1].time_us


def test_next_bu_shows_it_decrypted(home, marks):
    c = home.controls
    c.reset.click()
    c.kind.value = "bu-ba"
    c.next.click()
    assert _position(home)[0] == marks["bu"]
    html = home.inspector.html.value
    assert 'class="mip6lab-decrypted"' in html and "Binding Update" in html
    labels = [label for label, _ in home.inspector.layer.options]
    assert labels[0] == "Ethernet [0:14]" and labels[1] == "IPv6 [14:54]"
    assert labels[-1].startswith("ESP [") and len(labels) == 4
    assert home.inspector.layer.value == 3                  # the innermost header
    start, end = map(int, re.search(r"\[(\d+):(\d+)\]", labels[-1]).groups())
    frame_dump = html.split('class="mip6lab-decrypted"')[0]
    assert frame_dump.count("<mark>") == end - start        # its bytes are marked
    home.inspector.layer.value = 1                          # mark the IPv6 header instead
    html = home.inspector.html.value
    assert html.split('class="mip6lab-decrypted"')[0].count("<mark>") == 40
    assert "Hexdump (IPv6 marked)" in home.inspector.text()
    assert "Binding Update" in home.inspector.text()

    c.next.click()
    c.next.click()
    c.next.click()                                          # the BU on 3 links, then the BA
    assert _position(home)[0] == marks["ba"]
    assert "Binding ACK" in home.inspector.html.value
    c.kind.value = "packet"


def test_tables_show_the_binding_cache_row(home, marks):
    home.ladder.view.click(marks["cache"] - 1)
    assert HOA not in _panel(home.tables.html.value, "ha-binding_cache")
    home.ladder.view.click(marks["cache"])
    panel = _panel(home.tables.html.value, "ha-binding_cache")
    assert HOA in panel and '<tr class="added">' in panel
    home.tables.show_diff.value = True
    assert f"Changed by event #{marks['cache']}" in home.tables.html.value
    assert f"ha binding_cache: added {HOA}" in home.tables.html.value
    home.tables.show_diff.value = False
    assert f"Changed by event #{marks['cache']}" not in home.tables.html.value

    home.jump(marks["ba"])
    panel = _panel(home.tables.html.value, "ha-binding_cache")
    assert HOA in panel and "(1 row)" in panel
    assert "ha — Binding cache (RFC 6275 §9.1): 1 row(s)\n  hoa=" + HOA in home.tables.text()
    home.jump(400)                   # the MN's BUL: registered, the row was changed at the BA
    bul = _panel(home.tables.html.value, "mn-binding_update_list")
    assert HOA in bul and "registered" in bul
    changed = next(i for i in range(marks["ba"], 400)
                   if any(c.table == "binding_update_list" and c.change == "changed"
                          for c in home.timeline.changes_at(i)))
    home.jump(changed)
    assert '<tr class="changed">' in _panel(home.tables.html.value, "mn-binding_update_list")


def test_ladder_is_windowed(home):
    home.jump(1700)
    home.jump(1500)                      # rows recorded on both sides of the cursor
    svg = home.ladder.view.svg
    drawn = _drawn(svg)
    assert len(drawn) == 41 and drawn == sorted(drawn) and 1500 in drawn
    assert drawn.index(1500) == 20                          # 20 before, 20 after
    assert _current(svg) == [1500] and svg.count("row current") == 1
    assert 'aria-label="sequence diagram, 41 events"' in svg
    home.back(5)
    svg = home.ladder.view.svg
    assert _current(svg) == [1495]
    future = re.findall(r'<g class="row future" data-event="(\d+)"', svg)
    assert future and all(int(n) > 1495 for n in future)
    text = home.ladder.text()
    assert "▶ #1495 " in text and len(_rows(text)) == len(_drawn(svg))
    assert "current event #1495" in text


def test_filters_of_kind_node_and_protocol(home):
    ladder = home.ladder
    home.jump(700)
    events = home.timeline.events
    reader = home.session.reader
    try:
        ladder.kinds.value = ("seam",)
        rows = _rows(ladder.text())
        assert rows and all(events[i].kind == "seam" for i in rows)
        assert all(events[i].kind == "seam" for i in _drawn(ladder.view.svg))
        assert "(the current event #700 is hidden by the filters)" in ladder.text() \
            or events[700].kind == "seam"
        ladder.nodes.value = ("ha",)
        rows = _rows(ladder.text())
        assert rows and all(events[i].kind == "seam" and events[i].node == "ha" for i in rows)

        ladder.kinds.value = ("sent", "seam", "state", "drop")
        ladder.nodes.value = tuple(home.session.columns)
        ladder.protocols.value = ("IKE",)
        home.jump(80)
        rows = _rows(ladder.text())
        packets = [i for i in rows if events[i].packet is not None]
        assert packets and all("IKE" in reader.protocols(events[i]) for i in packets)
        # events without a frame are not filtered by protocol: they stay
        assert all(events[i].kind in ("seam", "state", "drop", "error")
                   for i in rows if events[i].packet is None)
        assert any(events[i].packet is None for i in rows)
        ladder.kinds.value = ("sent",)
        rows = _rows(ladder.text())
        assert rows and all(events[i].kind == "tx" and "IKE" in reader.protocols(events[i])
                            for i in rows)
        ladder.protocols.value = ("MH",)             # found inside ESP
        home.jump(400)
        rows = _rows(ladder.text())
        assert rows and all(reader.mobility_message(events[i]) in ("BU", "BA") for i in rows)
    finally:
        ladder.kinds.value = ("sent", "seam", "state", "drop")
        ladder.protocols.value = tuple(ladder.protocols.options)
        ladder.nodes.value = tuple(home.session.columns)
    assert home.session.protocols_shown is None and home.session.nodes_shown is None


def test_an_unknown_kind_filter_is_a_message():
    session = Session("ping-nat")
    session.set_filters(kinds=["nope"])
    assert session.message == "no event kind nope"
    assert "nope" not in session.kinds


def test_text_alternative_has_every_part(home):
    home.jump(200)
    text = home.text()
    for title in ("event 200 / ", "Ladder of home-registration", "Topology of "
                  "home-registration at event #200", "Event #200 at ", "State at event #200",
                  "Seam: ", "What-if: home-registration seed 0"):
        assert title in text
    accordion = home.children[-1]
    button, area = accordion.children[0].children
    button.click()
    assert area.value == home.text()


# -- the handover: topology and seam over time ------------------------------------------


def test_topology_and_seam_travel_in_time(handover):
    handover.jump(1500)
    assert "- mn (MN) on visit1 (eth0)" in handover.topology.text()
    assert "overlay mn ↔ ha" in handover.topology.text()
    seam_before = handover.seam.text()
    total_before = int(re.search(r"Seam: (\d+) crossings", seam_before).group(1))
    assert "handover 1" not in seam_before
    handover.jump(2300)
    assert "- mn (MN) on visit2 (eth0)" in handover.topology.text()
    seam_after = handover.seam.text()
    total_after = int(re.search(r"Seam: (\d+) crossings", seam_after).group(1))
    assert total_after > total_before
    assert "handover 1 → visit2" in seam_after and "MIGRATE" in seam_after
    assert "first registration → visit1" in seam_after
    sim = handover.lab.sim
    now = sim.now_us
    handover.jump(1500)                          # back: the MN stands on visit1 again
    assert "- mn (MN) on visit1 (eth0)" in handover.topology.text()
    assert handover.seam.text() == seam_before and sim.now_us == now
    svg = handover.topology.view.svg
    assert "<title>mn (MN)</title>" in svg and "Topology of handover" in svg


# -- what-if -----------------------------------------------------------------------------


def test_whatif_rebuild_with_k_bit_0():
    dash = Dashboard("handover")
    dash.jump(50)
    old = dash.scenario
    parts = (dash.session, dash.controls, dash.ladder, dash.topology, dash.inspector,
             dash.tables, dash.seam, dash.whatif)
    k_bit = dash.whatif.controls["k_bit"]
    assert list(k_bit.options) == [0, 1] and k_bit.value == 1
    k_bit.value = 0
    dash.whatif.apply.click()
    assert dash.scenario is not old and dash.session.scenario is dash.scenario
    assert dash.scenario.settings["k_bit"] == 0 and dash.scenario.name == "handover"
    assert dash.lab is dash.scenario.lab and dash.lab is not old.lab
    assert (dash.session, dash.controls, dash.ladder, dash.topology, dash.inspector,
            dash.tables, dash.seam, dash.whatif) == parts       # the same dashboard
    assert dash.timeline.lab is dash.lab and dash.timeline.recorded == len(dash.lab.events)
    assert f"of {dash.timeline.recorded} recorded events" in dash.ladder.text()
    assert "current event #-1" in dash.ladder.text()
    assert "Inspector: before the first event" in dash.inspector.text()
    assert _position(dash) == (-1, "0.000000")
    assert "rebuilt handover with seed 0, k_bit=0" in dash.whatif.message.value
    assert dash.whatif.controls["k_bit"].value == 0          # the new scenario's controls
    assert "k_bit=0" in dash.whatif.text()
    dash.step()
    assert _position(dash)[0] == 0 and _current(dash.ladder.view.svg) == [0]

    # refused: the old scenario stays, with a message
    current = dash.scenario
    dash.whatif.controls["loss"].value = 5.0
    dash.whatif.apply.click()
    assert dash.scenario is current and dash.scenario.settings["loss"] == 0.0
    assert "not rebuilt" in dash.whatif.message.value and "loss" in dash.whatif.message.value
    assert "not rebuilt" in dash.controls.message.value
    assert _position(dash)[0] == 0
    dash.whatif.controls["loss"].value = 0.0
    assert dash.session.rebuild(hoa_mode="nonsense") is False
    assert dash.scenario is current
    assert "is not one of" in dash.controls.message.value and "nonsense" in \
        dash.controls.message.value.replace("&#x27;", "'")
    assert dash.rebuild(no_such_option=1) is False
    assert "has no option no_such_option" in dash.whatif.message.value
    assert dash.rebuild(k_bit=7) is False                    # not one of its choices
    assert "k_bit: 7 is not one of 0, 1" in dash.whatif.message.value \
        and dash.scenario is current


def test_option_choices_are_checked():
    with pytest.raises(ScenarioError, match=r"option k_bit: 2 is not one of 0, 1"):
        create("handover", 0, k_bit=2)
    with pytest.raises(ScenarioError, match="option hoa_mode: 'nonsense' is not one of"):
        create("home-registration", 0, hoa_mode="nonsense")
    with pytest.raises(ScenarioError, match="option spd_owner"):
        create("home-registration", 0, spd_owner="kernel-please")
    assert create("handover", 0, k_bit="0").settings["k_bit"] == 0      # text converted
    assert create("home-registration", 0, hoa_mode="prefix").settings["hoa_mode"] == "prefix"
    dash = Dashboard("handover", k_bit=2)
    assert dash.session.name == "home-registration"
    assert "is not one of" in dash.controls.message.value


# -- bad input ---------------------------------------------------------------------------


def test_a_lab_without_ipsec():
    dash = Dashboard("ping-nat")
    assert "no IPsec" in dash.tables.html.value and "no IPsec" in dash.tables.text()
    for _ in range(3):
        dash.controls.step.click()
    assert _position(dash)[0] == 2 and dash.controls.message.value == ""
    assert "no IPsec" in dash.tables.html.value
    dash.controls.kind.value = "packet"
    dash.controls.next.click()
    assert dash.timeline.event.packet is not None
    assert 'class="mip6lab-layer"' in dash.inspector.html.value
    assert 'class="mip6lab-decrypted"' not in dash.inspector.html.value
    dash.controls.end.click()
    assert "verdict: ok" in dash.controls.message.value
    assert _position(dash)[0] == dash.timeline.recorded - 1
    dash.jump(10**6)
    message = dash.controls.message.value
    assert "event 1000000 does not exist" in message
    assert _position(dash)[0] == dash.timeline.recorded - 1
    dash.controls.index.value = -1
    dash.controls.jump.click()
    assert _position(dash)[0] == -1 and "does not exist" not in dash.controls.message.value
    dash.jump(-5)
    assert "event -5 does not exist" in dash.controls.message.value
    assert _position(dash)[0] == -1
    dash.controls.step.click()                 # the message goes with the next move
    assert _position(dash)[0] == 0 and "does not exist" not in dash.controls.message.value


def test_an_empty_lab():
    dash = Dashboard(Lab(seed=0))
    assert "the trace is empty" in dash.ladder.text()
    assert "the trace is empty" in dash.ladder.view.svg
    dash.controls.step.click()
    assert _position(dash)[0] == -1
    assert "nothing more to do" in dash.controls.message.value
    dash.controls.kind.value = "bu-ba"
    dash.controls.next.click()
    assert "no further bu-ba event" in dash.controls.message.value
    assert "a bare lab has no options" in dash.whatif.text()
    assert dash.rebuild() is False
    assert "a bare lab has no options to change" in dash.controls.message.value
    assert "What-if: a bare lab has no options." in dash.text()
    assert "no IPsec" in dash.tables.text()


def test_a_frame_scapy_cannot_dissect():
    lab = Lab(seed=0)
    lab.trace.emit("x", "link", "tx", packet=b"\xff" * 7, link="l")
    dash = Dashboard(lab)
    dash.jump(0)
    assert _position(dash)[0] == 0 and dash.controls.message.value == ""
    html = dash.inspector.html.value
    assert "mip6lab-warning" in html and "could not dissect" in html
    assert "dissection stopped" in dash.inspector.text()
    assert "#0 " in dash.ladder.text() and _current(dash.ladder.view.svg) == [0]
    assert "current frame on link l" in dash.topology.text()


def test_an_unknown_scenario_is_a_message():
    dash = Dashboard("no-such-scenario")
    message = dash.controls.message.value.replace("&#x27;", "'")
    assert "no scenario 'no-such-scenario'" in message
    assert "showing home-registration instead" in message
    assert dash.session.name == "home-registration"
    dash.step()
    assert _position(dash)[0] == 0 and dash.controls.message.value == ""


def test_a_failed_verdict_is_shown():
    dash = Dashboard("home-registration", loss=1.0)     # the MN's radio loses everything
    assert "verdict" not in dash.controls.message.value
    dash.session.run_all()
    assert "FAILED" in dash.controls.message.value
    assert "verdict: FAILED" in dash.controls.text()
    assert dash.timeline.exhausted and dash.scenario.ok() is False


def test_a_stuck_option_is_refused_before_it_can_hang_the_kernel():
    dash = Dashboard("handover")
    assert dash.rebuild(data_interval=0.0) is False
    assert "data_interval: must be above 0" in dash.session.message
    assert "must be above 0" in dash.controls.message.value
    assert dash.whatif.controls["data_interval"].value == 0.1     # back to the running value
    assert dash.scenario.settings["data_interval"] == 0.1


def test_a_failing_breakpoint_is_a_message_and_keeps_the_cursor():
    dash = Dashboard("home-registration")
    dash.jump(50)
    assert dash.run_to(predicate=lambda event: 1 / 0) is None
    assert "ZeroDivisionError" in dash.controls.message.value
    assert dash.timeline.cursor == 50
    dash.run_to(time=0.0)                               # back to the start: a time behind
    assert dash.timeline.event.time_us == 0 and dash.timeline.cursor < 50


def test_a_scenario_that_already_ran_is_built_again_so_its_past_is_shown():
    from mip6lab.scenarios import create

    scenario = create("home-registration")
    scenario.run()
    dash = Dashboard(scenario)
    assert dash.scenario is not scenario and dash.lab.now == 0
    assert "had already run" in dash.controls.message.value
    assert dash.timeline.state.table("ha", "binding_cache") == ()
