"""What notebook 05 (DSMIP6 through a NAT) reads from the stack besides the trace: a
NAT's mappings as a table of the lab's state (RFC 4787 §4), the simulator's pending
timers, and the router's Router Advertisements built once and sent as the same bytes."""

from __future__ import annotations

from _topologies import INSIDE4, NAT_PUBLIC, SERVER4, nat_lab, slaac_lab
from mip6lab.net.router import Router
from mip6lab.net.sim import Simulator
from mip6lab.state import TABLES, lab_state, state_diff
from mip6lab.timeline import Timeline

PORT = 40000


def test_a_nat_mapping_is_a_row_of_the_lab_state_and_follows_a_rebinding():
    lab = nat_lab()
    timeline = Timeline(lab)
    assert lab_state(lab).table("nat", "nat_mappings") == ()
    assert "nat_mappings" in TABLES
    lab.nodes["inside"].send_udp(SERVER4, 7, b"x", PORT)
    lab.run(until=1.0)
    [row] = lab_state(lab).table("nat", "nat_mappings")
    assert row["protocol"] == "udp" and row["inside"] == f"{INSIDE4}:{PORT}"
    old = int(row["outside"].rsplit(":", 1)[1])
    assert row["outside"] == f"{NAT_PUBLIC}:{old}"
    before = lab_state(lab)
    [(was, new)] = lab.nodes["nat"].nat.rebind()     # emits its event at once
    after = lab_state(lab)
    assert was == old
    assert after.table("nat", "nat_mappings")[0]["outside"] == f"{NAT_PUBLIC}:{new}"
    [change] = state_diff(before, after)
    assert (change.node, change.table, change.change) == ("nat", "nat_mappings", "changed")
    assert f"outside {NAT_PUBLIC}:{old} → {NAT_PUBLIC}:{new}" in change.describe()
    # the recorder saw it at the rebinding's own event
    event = next(e for e in lab.events if "rebound" in e.summary)
    assert timeline.state_at(event.index).table("nat", "nat_mappings") == \
        after.table("nat", "nat_mappings")


def test_other_nodes_have_no_nat_table():
    lab = nat_lab()
    state = lab_state(lab)
    assert state.nodes_with("nat_mappings") == ["nat"]


def test_scheduled_lists_live_timers_in_order_and_by_label():
    sim = Simulator()
    sim.call_at(30, lambda: None, label="mn BUL")
    cancelled = sim.call_at(10, lambda: None, label="mn keepalive")
    sim.call_at(20, lambda: None, label="nat NAT timeout")
    cancelled.cancel()
    assert sim.scheduled() == [(20, "nat NAT timeout"), (30, "mn BUL")]
    assert sim.scheduled("BUL") == [(30, "mn BUL")]
    assert sim.pending() == 2                  # reading them changed nothing
    sim.step()
    assert sim.scheduled() == [(30, "mn BUL")]


def test_router_advertisements_are_the_bytes_build_ra_makes_and_follow_the_config():
    lab = slaac_lab()
    lab.run(until=3.0)
    router: Router = lab.nodes["r"]
    iface, config = router.interfaces["eth0"], router.advertising["eth0"]
    sent = [e for e in lab.events if e.kind == "tx" and e.node == "r" and e.link == "lan_a"
            and e.summary.startswith("RA")]
    assert len(sent) >= 2
    built = bytes(router.build_ra(iface, config))
    assert all(e.packet[14:] == built for e in sent)
    # a changed configuration is advertised at once, not the cached RA
    config.router_lifetime = 0
    router.send_ra("eth0")
    last = [e for e in lab.events if e.kind == "tx" and e.node == "r" and e.link == "lan_a"][-1]
    assert last.packet[14:] == bytes(router.build_ra(iface, config)) != built
