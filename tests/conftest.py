"""Shared fixtures for the foundation's tests: small labs, traffic helpers, capture checks.

Topologies (all addresses static, so every test knows them in advance; nodes are plain
:class:`~mip6lab.net.node.Node` objects, so nothing speaks unless a test makes it):

``small_lab``::

    h1 --[lan1]-- r --[lan2]-- h2
    2001:db8:1::10   ::1 | 2001:db8:2::1   2001:db8:2::20
    10.1.0.10     10.1.0.1 | 10.2.0.1      10.2.0.20

``wire_lab``: two nodes ``a`` and ``b`` on one point-to-point link ``wire`` whose
impairments the test chooses; ``a`` already knows ``b``'s MAC (no Neighbor Discovery
traffic), so every frame on the wire is a test datagram.

Every capture a test writes goes through the ``captures`` fixture, which hands out paths
in a temporary directory and, when the test ends, runs the tshark check on every
pcap/pcapng file found there.
"""

from __future__ import annotations

import ipaddress
import math
from pathlib import Path
from typing import Any

import pytest

from mip6lab.net.lab import Lab
from mip6lab.net.node import Node, UdpDatagram

# -- small_lab -----------------------------------------------------------------------------

H1_6, R_LAN1_6, R_LAN2_6, H2_6 = ("2001:db8:1::10", "2001:db8:1::1", "2001:db8:2::1",
                                  "2001:db8:2::20")
H1_4, R_LAN1_4, R_LAN2_4, H2_4 = "10.1.0.10", "10.1.0.1", "10.2.0.1", "10.2.0.20"


def build_small(lab: Lab, **lan_conditions: Any) -> None:
    """Two hosts and a router; ``lan_conditions`` apply to both LANs."""
    lab.add_link("lan1", **lan_conditions)
    lab.add_link("lan2", **lan_conditions)
    h1 = lab.add_node(Node(lab, "h1"))
    r = lab.add_router("r")
    h2 = lab.add_node(Node(lab, "h2"))
    lab.connect(h1, "lan1", addresses=[f"{H1_6}/64", f"{H1_4}/24"])
    lab.connect(r, "lan1", "eth0", addresses=[f"{R_LAN1_6}/64", f"{R_LAN1_4}/24"])
    lab.connect(r, "lan2", "eth1", addresses=[f"{R_LAN2_6}/64", f"{R_LAN2_4}/24"])
    lab.connect(h2, "lan2", addresses=[f"{H2_6}/64", f"{H2_4}/24"])
    h1.routes.add("::/0", "eth0", R_LAN1_6)
    h1.routes.add("0.0.0.0/0", "eth0", R_LAN1_4)
    h2.routes.add("::/0", "eth0", R_LAN2_6)
    h2.routes.add("0.0.0.0/0", "eth0", R_LAN2_4)


def small_lab(seed: int = 11, **lan_conditions: Any) -> Lab:
    return Lab(seed=seed, build=lambda lab: build_small(lab, **lan_conditions))


@pytest.fixture
def small() -> Lab:
    """A fresh :func:`small_lab` with perfect links."""
    return small_lab()


# -- wire_lab ------------------------------------------------------------------------------

A6, B6 = "2001:db8:ab::a", "2001:db8:ab::b"
SINK_PORT = 9


def build_wire(lab: Lab, **conditions: Any) -> None:
    lab.add_link("wire", "p2p", **conditions)
    a = lab.add_node(Node(lab, "a"))
    b = lab.add_node(Node(lab, "b"))
    lab.connect(a, "wire", addresses=[f"{A6}/64"])
    lab.connect(b, "wire", addresses=[f"{B6}/64"])
    # a knows b's MAC already (valid for ReachableTime, 30 s): no NS/NA on the wire.
    a.neighbors.learn(a.interface(), ipaddress.IPv6Address(B6), b.interface().mac)


def wire_lab(seed: int = 1, **conditions: Any) -> Lab:
    return Lab(seed=seed, build=lambda lab: build_wire(lab, **conditions))


class Sink:
    """A UDP port that records every datagram it receives, in arrival order."""

    def __init__(self, node: Node, port: int = SINK_PORT) -> None:
        self.datagrams: list[UdpDatagram] = []
        node.bind_udp(port, self.datagrams.append)

    def numbers(self) -> list[int]:
        """The payloads read as the sequence numbers :func:`blast` wrote."""
        return [int(d.payload) for d in self.datagrams]


def blast(lab: Lab, count: int, interval: float = 0.001, start: float = 0.0,
          src: str = "a", dst: str = B6, port: int = SINK_PORT) -> None:
    """Schedule ``count`` UDP datagrams numbered 0.. from ``src``, one per ``interval``."""
    node = lab.nodes[src]
    for seq in range(count):
        lab.at(start + seq * interval, node.send_udp, dst, port, b"%d" % seq, 40000,
               label=f"send {seq}")


def within_binomial(observed: int, trials: int, p: float, sigmas: float = 4.0) -> bool:
    """Whether ``observed`` successes out of ``trials`` are within ``sigmas`` standard
    deviations of a Binomial(trials, p) mean."""
    sd = math.sqrt(trials * p * (1 - p))
    return abs(observed - trials * p) <= sigmas * sd


# -- captures ------------------------------------------------------------------------------


class Captures:
    """Paths for capture files; each one written is checked by tshark at teardown."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, name: str) -> Path:
        return self.directory / name

    def written(self) -> list[Path]:
        return sorted(p for p in self.directory.rglob("*")
                      if p.is_file() and p.suffix in (".pcap", ".pcapng"))


@pytest.fixture
def tshark() -> str:
    """Require tshark: skip on a user's machine, fail under CI=true."""
    from mip6lab.testing.prereq import require_tool

    return require_tool("tshark", "to check that every capture we write dissects cleanly")


@pytest.fixture
def captures(tmp_path: Path, tshark: str):
    """Hand out capture paths; at teardown run check_capture on every capture written."""
    from mip6lab.testing.tshark import check_capture

    directory = tmp_path / "captures"
    directory.mkdir()
    handle = Captures(directory)
    yield handle
    for path in handle.written():
        check_capture(path)  # raises CaptureCheckError on any malformed frame
