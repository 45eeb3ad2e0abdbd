"""Real network namespaces: reachability over veth, and clean-up in every way out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from mip6lab.net.netns import NetnsSet, cleanup_stale, list_namespaces
from mip6lab.testing.prereq import require_netns, require_tool

pytestmark = pytest.mark.netns

# A prefix of our own, so these tests never touch namespaces of other runs or tools.
PREFIX = "m6ltest"


@pytest.fixture(autouse=True)
def _prereqs():
    require_netns("veth pairs between namespaces")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Still there: a zombie would be reaped by its parent; check its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _two_hosts(s: NetnsSet):
    a, b = s.add_namespace("a"), s.add_namespace("b")
    s.add_veth(a, "eth0", b, "eth0")
    s.add_address(a, "eth0", "2001:db8:1::1/64")
    s.add_address(b, "eth0", "2001:db8:1::2/64")
    s.add_address(a, "eth0", "192.0.2.1/24")
    s.add_address(b, "eth0", "192.0.2.2/24")
    return a, b


def _ping_both_ways_and_leave_a_process() -> tuple[list[str], int]:
    with NetnsSet(PREFIX) as s:
        a, b = _two_hosts(s)
        for src, dst in ((a, "2001:db8:1::2"), (b, "2001:db8:1::1"),
                         (a, "192.0.2.2"), (b, "192.0.2.1")):
            s.run(src, "ping", "-c", "1", "-W", "2", dst)
        sleeper = s.spawn(b, ["sleep", "60"])
        assert sleeper.poll() is None
        names = s.names
        assert set(names) <= set(list_namespaces())
        assert all(n.startswith(f"{PREFIX}-{os.getpid()}-") for n in names)
    return names, sleeper.pid


def test_veth_ping_both_ways_then_everything_is_gone():
    require_tool("ping", "reachability over the veth pair")
    names, pid = _ping_both_ways_and_leave_a_process()
    assert not set(names) & set(list_namespaces())
    assert _gone(pid)


def test_second_run_right_after_the_first():
    require_tool("ping", "reachability over the veth pair")
    first, _ = _ping_both_ways_and_leave_a_process()
    second, pid = _ping_both_ways_and_leave_a_process()
    assert not set(first) & set(second)  # fresh names each time
    assert not (set(first) | set(second)) & set(list_namespaces())
    assert _gone(pid)


def test_exception_inside_with_still_removes_everything():
    with pytest.raises(RuntimeError, match="boom"):
        with NetnsSet(PREFIX) as s:
            _two_hosts(s)
            sleeper = s.spawn("a", ["sleep", "60"])
            names = s.names
            raise RuntimeError("boom")
    assert not set(names) & set(list_namespaces())
    assert _gone(sleeper.pid)


def test_process_ignoring_sigterm_is_killed():
    with NetnsSet(PREFIX, kill_timeout=0.5) as s:
        a = s.add_namespace("a")
        # An ignored signal stays ignored across exec: `sleep` itself ignores SIGTERM,
        # and no child is left behind (clean-up ends only the PIDs it started).
        stubborn = s.spawn(a, ["sh", "-c", "trap '' TERM; exec sleep 60"])
        time.sleep(0.2)  # let the shell install its trap and exec
    assert stubborn.returncode == -signal.SIGKILL
    assert _gone(stubborn.pid)


def test_close_is_idempotent_and_set_refuses_reuse():
    s = NetnsSet(PREFIX)
    ns = s.add_namespace("a")
    s.close()
    s.close()
    assert ns.name not in list_namespaces()
    with pytest.raises(RuntimeError):
        s.add_namespace("b")


def test_same_label_twice_is_refused_and_labels_resolve():
    with NetnsSet(PREFIX) as s:
        ns = s.add_namespace("mn")
        with pytest.raises(ValueError):
            s.add_namespace("mn")
        assert s.namespace("mn") is ns
        assert s.namespace(ns.name) is ns
        with pytest.raises(KeyError):
            s.namespace("unknown")


def test_router_forwards_between_two_links():
    require_tool("ping", "reachability through a router namespace")
    with NetnsSet(PREFIX) as s:
        mn, r, ha = (s.add_namespace(n) for n in ("mn", "r", "ha"))
        s.add_veth(mn, "eth0", r, "eth0")
        s.add_veth(r, "eth1", ha, "eth0")
        s.add_address(mn, "eth0", "2001:db8:2::10/64")
        s.add_address(r, "eth0", "2001:db8:2::1/64")
        s.add_address(r, "eth1", "2001:db8:1::1/64")
        s.add_address(ha, "eth0", "2001:db8:1::2/64")
        s.add_route(mn, "default", via="2001:db8:2::1")
        s.add_route(ha, "2001:db8:2::/64", via="2001:db8:1::1")
        s.enable_forwarding(r)
        assert s.run(r, "cat", "/proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "1"
        s.run(mn, "ping", "-c", "1", "-W", "2", "2001:db8:1::2")


_SIGNAL_CHILD = textwrap.dedent(
    """
    import sys, time
    from mip6lab.net.netns import NetnsSet
    s = NetnsSet(sys.argv[1])
    ns = s.add_namespace("victim")
    p = s.spawn(ns, ["sleep", "60"])
    print(ns.name, p.pid, flush=True)
    time.sleep(60)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_to_owner_still_cleans_up(signum):
    child = subprocess.Popen([sys.executable, "-c", _SIGNAL_CHILD, PREFIX],
                             stdout=subprocess.PIPE, text=True)
    try:
        name, pid = child.stdout.readline().split()
        assert name in list_namespaces()
        child.send_signal(signum)
        assert child.wait(timeout=15) == -signum  # default action still happens after
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert name not in list_namespaces()
    assert _gone(int(pid))


def test_keyboard_interrupt_cleans_up_via_atexit():
    code = _SIGNAL_CHILD
    child = subprocess.Popen([sys.executable, "-c", code, PREFIX],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        name, pid = child.stdout.readline().split()
        child.send_signal(signal.SIGINT)  # KeyboardInterrupt, then interpreter exit
        child.wait(timeout=15)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert name not in list_namespaces()
    assert _gone(int(pid))


def test_cleanup_stale_removes_only_dead_creators():
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = f"{PREFIX}-{dead.pid}-1-stale"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        with NetnsSet(PREFIX) as s:
            live = s.add_namespace("live")
            removed = cleanup_stale(PREFIX)
            assert stale in removed
            assert live.name not in removed
            assert live.name in list_namespaces()
        assert stale not in list_namespaces()
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True)
