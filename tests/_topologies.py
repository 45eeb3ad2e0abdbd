"""Small topologies and helpers shared by test_nat, test_slaac and test_bad_input.

Every builder returns a :class:`~mip6lab.net.lab.Lab` with static addresses (except the
SLAAC host, which must learn its own), so the tests know every address in advance.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from mip6lab.net.frames import address_in_prefix
from mip6lab.net.lab import Lab
from mip6lab.net.node import EchoReply, Node, UdpDatagram

# -- NAT44 -----------------------------------------------------------------------------
#
#   inside --[lan4]-- nat ==[wan4 segment]== server, third
#   192.0.2.10     .1 | 203.0.113.2         203.0.113.20, 203.0.113.30

INSIDE4 = "192.0.2.10"
INSIDE4_GW = "192.0.2.1"
NAT_PUBLIC = "203.0.113.2"
SERVER4 = "203.0.113.20"
THIRD4 = "203.0.113.30"


def nat_lab(seed: int = 1, **nat_options: Any) -> Lab:
    def build(lab: Lab) -> None:
        lab.add_link("lan4")
        lab.add_link("wan4")
        inside = lab.add_node(Node(lab, "inside"))
        nat = lab.add_nat("nat", outside="eth1", **nat_options)
        server = lab.add_node(Node(lab, "server"))
        third = lab.add_node(Node(lab, "third"))
        lab.connect(inside, "lan4", addresses=[f"{INSIDE4}/24"])
        lab.connect(nat, "lan4", addresses=[f"{INSIDE4_GW}/24"])
        lab.connect(nat, "wan4", addresses=[f"{NAT_PUBLIC}/24"])
        lab.connect(server, "wan4", addresses=[f"{SERVER4}/24"])
        lab.connect(third, "wan4", addresses=[f"{THIRD4}/24"])
        inside.routes.add("0.0.0.0/0", "eth0", INSIDE4_GW)

    return Lab(seed=seed, build=build)


# -- SLAAC and movement ------------------------------------------------------------------
#
#   host --[lan_a]-- r --[lan_b]   (r advertises 2001:db8:a::/64 and 2001:db8:b::/64)
#                    |
#                 [dmz]-- server 2001:db8:c::10

PREFIX_A = ipaddress.IPv6Network("2001:db8:a::/64")
PREFIX_B = ipaddress.IPv6Network("2001:db8:b::/64")
SERVER6 = "2001:db8:c::10"


def slaac_lab(seed: int = 3, *, advertise_b: bool = True,
              ra_options: dict[str, Any] | None = None,
              interval: tuple[float, float] = (0.5, 1.5)) -> Lab:
    ra_options = ra_options or {}

    def build(lab: Lab) -> None:
        for name in ("lan_a", "lan_b", "dmz"):
            lab.add_link(name)
        host = lab.add_host("host")
        r = lab.add_router("r")
        server = lab.add_node(Node(lab, "server"))
        lab.connect(r, "lan_a", "eth0", addresses=["2001:db8:a::1/64"])
        lab.connect(r, "lan_b", "eth1", addresses=["2001:db8:b::1/64"])
        lab.connect(r, "dmz", "eth2", addresses=["2001:db8:c::1/64"])
        lab.connect(server, "dmz", addresses=[f"{SERVER6}/64"])
        server.routes.add("::/0", "eth0", "2001:db8:c::1")
        lab.connect(host, "lan_a")
        r.advertise("eth0", [str(PREFIX_A)], interval=interval, **ra_options)
        if advertise_b:
            r.advertise("eth1", [str(PREFIX_B)], interval=interval, **ra_options)

    return Lab(seed=seed, build=build)


def slaac_address(lab: Lab, prefix: ipaddress.IPv6Network,
                  node: str = "host") -> ipaddress.IPv6Address:
    return address_in_prefix(prefix, lab.nodes[node].interface().mac)


# -- bad input ---------------------------------------------------------------------------
#
#   x (injector) --+
#   h  ------------+--[lan]-- r --[far]-- s
#   2001:db8:1::10    ::1       2001:db8:2::1 / ::20
#   10.1.0.10         10.1.0.1  10.2.0.1 / 10.2.0.20

H6, R6_LAN, R6_FAR, S6, X6 = ("2001:db8:1::10", "2001:db8:1::1", "2001:db8:2::1",
                              "2001:db8:2::20", "2001:db8:1::99")
H4, R4_LAN, R4_FAR, S4, X4 = "10.1.0.10", "10.1.0.1", "10.2.0.1", "10.2.0.20", "10.1.0.99"


def stack_lab(seed: int = 5, **lan_conditions: Any) -> Lab:
    def build(lab: Lab) -> None:
        lab.add_link("lan", **lan_conditions)
        lab.add_link("far")
        h = lab.add_node(Node(lab, "h"))
        x = lab.add_node(Node(lab, "x"))
        r = lab.add_router("r")
        s = lab.add_node(Node(lab, "s"))
        lab.connect(h, "lan", addresses=[f"{H6}/64", f"{H4}/24"])
        lab.connect(x, "lan", addresses=[f"{X6}/64", f"{X4}/24"])
        lab.connect(r, "lan", "eth0", addresses=[f"{R6_LAN}/64", f"{R4_LAN}/24"])
        lab.connect(r, "far", "eth1", addresses=[f"{R6_FAR}/64", f"{R4_FAR}/24"])
        lab.connect(s, "far", addresses=[f"{S6}/64", f"{S4}/24"])
        for node, gw6, gw4 in ((h, R6_LAN, R4_LAN), (x, R6_LAN, R4_LAN),
                               (s, R6_FAR, R4_FAR)):
            node.routes.add("::/0", "eth0", gw6)
            node.routes.add("0.0.0.0/0", "eth0", gw4)

    return Lab(seed=seed, build=build)


# -- helpers -----------------------------------------------------------------------------


class Replies:
    """Collect the echo replies a node receives."""

    def __init__(self, node: Node) -> None:
        self.replies: list[EchoReply] = []
        node.echo_listeners.append(self.replies.append)

    def seqs(self, src: str | None = None) -> list[int]:
        return [r.seq for r in self.replies
                if src is None or r.src == ipaddress.ip_address(src)]


class Sink:
    """A UDP port that records every datagram."""

    def __init__(self, node: Node, port: int) -> None:
        self.datagrams: list[UdpDatagram] = []
        node.bind_udp(port, self.datagrams.append)


def ping_ok(lab: Lab, src: str, dst: str, seq: int = 4242, timeout: float = 5.0,
            ident: int = 0x7e57) -> bool:
    """Ping ``dst`` from node ``src`` once and run until the reply arrives."""
    node = lab.nodes[src]
    got: list[EchoReply] = []

    def listener(reply: EchoReply) -> None:
        if reply.seq == seq and reply.ident == ident \
                and reply.src == ipaddress.ip_address(dst):
            got.append(reply)

    node.echo_listeners.append(listener)
    try:
        node.ping(dst, seq, ident)
        lab.run_until(lambda _: bool(got), timeout=timeout)
    finally:
        node.echo_listeners.remove(listener)
    return bool(got)


def drops(lab: Lab, since_index: int = 0, **criteria: Any):
    """Drop events (after trace index ``since_index``) matching ``criteria``."""
    return [e for e in lab.trace.filter(kind="drop", **criteria) if e.index >= since_index]


def states(lab: Lab, **criteria: Any):
    return lab.trace.filter(kind="state", **criteria)
