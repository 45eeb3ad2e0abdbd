"""The prerequisite rule: skip for a user, fail in CI."""

from __future__ import annotations

import pytest

from mip6lab.testing import prereq

MISSING = "m6l-no-such-tool-xyz"


@pytest.mark.parametrize("value,expected", [("true", True), ("TRUE", True), ("", False),
                                            ("false", False), ("1", False)])
def test_in_ci(monkeypatch, value, expected):
    monkeypatch.setenv("CI", value)
    assert prereq.in_ci() is expected


def test_missing_tool_skips_for_a_user(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{MISSING}.*scripts/install-system-deps"):
        prereq.require_tool(MISSING, "for the test")


def test_missing_tool_fails_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=MISSING):
        prereq.require_tool(MISSING)


def test_present_tool_returns_its_path():
    assert prereq.require_tool("sh").endswith("/sh")


def test_debian_package_named_in_hint(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(prereq.shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="iputils-ping"):
        prereq.require_tool("ping")


def test_not_root(monkeypatch):
    monkeypatch.setattr(prereq.os, "geteuid", lambda: 1000)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="root"):
        prereq.require_root("namespaces")
    with pytest.raises(pytest.skip.Exception, match="root"):
        prereq.require_netns()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="root"):
        prereq.require_root()


def test_importing_the_package_does_not_import_pytest():
    import subprocess
    import sys

    code = ("import sys, mip6lab.testing.prereq, mip6lab.testing.tshark, "
            "mip6lab.net.netns; print('pytest' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"


# -- netns_unavailable: the one-sentence reason a notebook gives for its recorded run ------


def _one_sentence(text: str) -> bool:
    import re

    return "\n" not in text and len(re.findall(r"[.!?](\s|$)", text)) <= 1


def test_netns_unavailable_without_root(monkeypatch):
    from mip6lab.scenarios import netns_topology

    monkeypatch.delenv(prereq.RECORDED_ENV, raising=False)
    monkeypatch.setattr(netns_topology.os, "geteuid", lambda: 1000)
    reason = prereq.netns_unavailable("tshark")
    assert reason == netns_topology.NOT_ROOT
    assert _one_sentence(reason) and "root" in reason


def test_netns_unavailable_names_a_missing_tool(monkeypatch):
    from mip6lab.scenarios import netns_topology

    monkeypatch.delenv(prereq.RECORDED_ENV, raising=False)
    monkeypatch.setattr(netns_topology.os, "geteuid", lambda: 0)
    monkeypatch.setattr(netns_topology.shutil, "which", lambda name: None)
    reason = prereq.netns_unavailable()
    assert "'ip'" in reason and "iproute2" in reason and _one_sentence(reason)
    # (prereq and netns_topology share the shutil module: only tshark is missing now)
    monkeypatch.setattr(netns_topology.shutil, "which",
                        lambda name: None if name == "tshark" else f"/usr/bin/{name}")
    monkeypatch.setattr(netns_topology, "netns_available", lambda: (True, "ok"))
    reason = prereq.netns_unavailable("tshark")
    assert reason.startswith("the live run also needs 'tshark'") and _one_sentence(reason)
    monkeypatch.setattr(prereq.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert prereq.netns_unavailable("tshark") is None


def test_netns_unavailable_when_the_recording_is_asked_for(monkeypatch):
    monkeypatch.setenv(prereq.RECORDED_ENV, "1")
    reason = prereq.netns_unavailable("tshark")
    assert reason.startswith("MIP6LAB_RECORDED=1 is set") and _one_sentence(reason)
