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

__all__ = ["in_ci", "require_tool", "require_root", "require_netns", "missing"]

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
