"""How mip6lab's tests deal with missing prerequisites (tools, root, namespaces).

One rule for the whole test suite:

* on a user's machine a missing prerequisite *skips* the test, with a reason that says
  what is missing and how to get it, so ``pytest`` stays green on a laptop or on Binder;
* in CI (environment variable ``CI`` set to ``true``) the same missing prerequisite
  *fails* the test, because there it means the CI image is broken and a silent skip
  would hide lost coverage.

Usage inside a test or fixture::

    from mip6lab.testing.prereq import require_netns, require_tool

    def test_interop():
        require_tool("tshark", why="to dissect the capture")
        require_netns()
        ...

pytest is imported inside the functions only: importing this module never requires
pytest, so the package has no runtime dependency on it.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

__all__ = ["in_ci", "require_tool", "require_root", "require_netns", "missing",
           "netns_unavailable", "RECORDED_ENV"]

#: ``MIP6LAB_RECORDED=1`` makes :func:`netns_unavailable` answer that a recorded run is
#: wanted, so that a notebook shows its recording even on a machine that could run live
#: (how the tests run both paths of notebook 06)
RECORDED_ENV = "MIP6LAB_RECORDED"

INSTALL_HINT = "run scripts/install-system-deps (as root) or apt-get install {package}"

# Command name -> Debian package that provides it (for the hint in the skip reason).
_DEBIAN_PACKAGE = {
    "tshark": "tshark",
    "ip": "iproute2",
    "ping": "iputils-ping",
    "tcpdump": "tcpdump",
    "iptables": "iptables",
    "nft": "nftables",
    "swanctl": "strongswan-swanctl",
    "charon": "strongswan-charon",
    "qemu-system-x86_64": "qemu-system-x86",
    "modprobe": "kmod",
    "radvd": "radvd",
    "conntrack": "conntrack",
    "ethtool": "ethtool",
    "dumpcap": "tshark",
}


def in_ci() -> bool:
    """True when running in continuous integration (environment ``CI=true``)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def missing(reason: str) -> NoReturn:
    """Report a missing prerequisite: skip for a user, fail in CI.

    ``reason`` should name what is missing and how to get it.
    """
    import pytest

    if in_ci():
        pytest.fail(f"missing prerequisite in CI (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)
    raise AssertionError("unreachable")  # pragma: no cover - pytest.skip raises


def _why(why: str) -> str:
    return f" ({why})" if why else ""


def require_tool(name: str, why: str = "") -> str:
    """Require the executable ``name`` on PATH; return its full path."""
    path = shutil.which(name)
    if path is None:
        package = _DEBIAN_PACKAGE.get(name, name)
        missing(
            f"tool {name!r} not found on PATH{_why(why)}; "
            + INSTALL_HINT.format(package=package)
        )
    return path


def require_root(why: str = "") -> None:
    """Require an effective user id of 0 (root)."""
    if os.geteuid() != 0:
        missing(
            f"needs root{_why(why)}; run the tests as root, e.g. in the lab VM: "
            "sudo -E python3 -m pytest"
        )


def require_netns(why: str = "") -> None:
    """Require root and working Linux network namespaces (``ip netns add`` succeeds).

    The check really creates and deletes one namespace (once per process, cached), since
    ``ip netns list`` alone also works where creating one is forbidden (containers).
    """
    from mip6lab.net.netns import netns_available

    reason = why or "Linux network namespaces"
    require_root(reason)
    require_tool("ip", reason)
    ok, detail = netns_available()
    if not ok:
        missing(
            f"cannot create a network namespace{_why(why)}: {detail}; needs root with "
            "CAP_SYS_ADMIN and a kernel with CONFIG_NET_NS (in a container: --privileged)"
        )


def netns_unavailable(*tools: str) -> str | None:
    """Why the netns backend of the scenarios cannot run here, in one sentence; None when
    it can.

    For notebooks and scripts, which do not skip but fall back to a recorded run and say
    why: first ``MIP6LAB_RECORDED=1`` (:data:`RECORDED_ENV`) in the environment, then the
    backend's own check (:func:`mip6lab.scenarios.netns_topology.check_prerequisites`:
    root, ``ip``, ``radvd``, ``nft``, ``conntrack``, ``dumpcap``, ``ethtool`` and a network
    namespace that can really be created), then each of ``tools`` (e.g. ``"tshark"``) on
    PATH. Never raises and never imports pytest.
    """
    if os.environ.get(RECORDED_ENV, "").strip() == "1":
        return f"{RECORDED_ENV}=1 is set, which asks for the recorded run instead of a live one"
    from mip6lab.scenarios.base import ScenarioError
    from mip6lab.scenarios.netns_topology import check_prerequisites

    try:
        check_prerequisites(rebinding=True, capture=True)
    except ScenarioError as exc:
        return str(exc)
    for tool in tools:
        if shutil.which(tool) is None:
            package = _DEBIAN_PACKAGE.get(tool, tool)
            return (f"the live run also needs {tool!r}, which is not on PATH; "
                    + INSTALL_HINT.format(package=package))
    return None
