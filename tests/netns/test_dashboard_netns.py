"""The dashboard on a live netns lab: it follows the real network as the student steps,
and time travel covers what was recorded."""

from __future__ import annotations

import os

import pytest

from mip6lab.scenarios import create
from mip6lab.scenarios import netns_topology
from mip6lab.net.netns import list_namespaces
from mip6lab.state import lab_state
from mip6lab.testing.prereq import missing, require_netns, require_tool

pytestmark = pytest.mark.netns


def test_dashboard_follows_a_netns_lab_and_travels_back():
    require_netns("the netns backend under the dashboard")
    require_tool("radvd", "Router Advertisements of the kernel routers")
    try:
        from mip6lab.widgets import Dashboard
    except ImportError as exc:
        missing(f"the dashboard's packages ({exc}): pip install -e '.[course]'")

    scenario = create("home-registration", backend="netns")
    try:
        dash = Dashboard(scenario)
        assert dash.timeline.runner is not None          # wall-clock slices, not sim steps
        bu = dash.next("bu-ba", node="mn")
        assert bu is not None and dash.timeline.reader.mobility_message(bu) == "BU"
        ba = dash.next("bu-ba", node="ha")
        assert ba is not None and dash.timeline.reader.mobility_message(ba) == "BA"
        rows = dash.timeline.state.table("ha", "binding_cache")
        assert [row["hoa"] for row in rows] == ["2001:db8:0:1::1001"]
        recorded = dash.timeline.recorded
        dash.jump(bu.index)                               # back: nothing re-run
        assert dash.timeline.recorded == recorded
        assert dash.timeline.state.table("ha", "binding_cache") == ()
        assert "Binding Update" in dash.inspector.html.value
        dash.jump(recorded - 1)       # the last recorded event: the live lab as it is now
        assert dash.timeline.state.tables == lab_state(dash.lab).tables
    finally:
        scenario.close()
    prefix = f"{netns_topology.PREFIX}-{os.getpid()}-"
    assert not [n for n in list_namespaces() if n.startswith(prefix)]
