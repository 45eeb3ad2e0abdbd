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
