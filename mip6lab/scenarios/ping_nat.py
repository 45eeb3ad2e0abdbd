"""``ping-nat``: the foundation's first scenario, IPv6 routing and IPv4 NAT side by side.

::

    host6 --[lan6]-- r1 ==[core]== r2 --[dmz]-- server
                                     |  (dual stack: 2001:db8:2::10, 198.51.100.10)
    host4 --[lan4]-- nat ==[wan4]====+

- ``host6`` knows nothing at start: it solicits a router on ``lan6``, forms an address
  from r1's RA (SLAAC), and pings ``server`` across r1 and r2.
- ``host4`` sits behind ``nat`` (192.0.2.0/24 inside, 203.0.113.2 outside) and sends
  numbered UDP datagrams to the server's echo port; the server sees them come from the
  NAT's public address and port, and its answers find their way back through the mapping.

The verdict: every echo and every datagram answered, the server saw only the NAT's
public address, and the NAT made a mapping.
"""

from __future__ import annotations

from typing import Any

from ..net.apps import Pinger, UdpClient, UdpEchoServer
from ..net.lab import Lab
from .base import Scenario

SERVER6 = "2001:db8:2::10"
SERVER4 = "198.51.100.10"
NAT_PUBLIC = "203.0.113.2"


class PingNat(Scenario):
    name = "ping-nat"
    description = ("IPv6 host pings a server across two routers (SLAAC on its link); "
                   "an IPv4 host behind a NAT exchanges UDP with the same server")
    duration = 8.0
    options = {"count": 4, "interval": 1.0, "loss": 0.0, "delay": 0.002,
               "nat_timeout": 30.0, "filtering": "address-and-port-dependent"}

    def build(self, lab: Lab) -> None:
        s = self.settings
        impairments = {"loss": s["loss"], "delay": s["delay"]}
        for name, kind in (("lan6", "segment"), ("core", "p2p"), ("dmz", "segment"),
                           ("lan4", "segment"), ("wan4", "p2p")):
            lab.add_link(name, kind, **impairments)

        host6 = lab.add_host("host6")
        r1, r2 = lab.add_router("r1"), lab.add_router("r2")
        server = lab.add_host("server")
        host4 = lab.add_host("host4")
        nat = lab.add_nat("nat", outside="eth1", mapping_timeout=s["nat_timeout"],
                          filtering=s["filtering"])

        lab.connect(host6, "lan6")
        lab.connect(r1, "lan6", addresses=["2001:db8:1::1/64"])
        lab.connect(r1, "core", addresses=["2001:db8:ff::1/64"])
        lab.connect(r2, "core", addresses=["2001:db8:ff::2/64"])
        lab.connect(r2, "dmz", addresses=["2001:db8:2::1/64", "198.51.100.1/24"])
        lab.connect(r2, "wan4", addresses=["203.0.113.1/24"])
        lab.connect(server, "dmz", addresses=[f"{SERVER6}/64", f"{SERVER4}/24"])
        lab.connect(host4, "lan4", addresses=["192.0.2.10/24"])
        lab.connect(nat, "lan4", addresses=["192.0.2.1/24"])
        lab.connect(nat, "wan4", addresses=[f"{NAT_PUBLIC}/24"])

        r1.advertise("eth0", ["2001:db8:1::/64"], interval=(0.5, 1.5))
        r2.advertise("eth1", ["2001:db8:2::/64"], interval=(0.5, 1.5))
        r1.routes.add("2001:db8:2::/64", "eth1", "2001:db8:ff::2")
        r2.routes.add("2001:db8:1::/64", "eth0", "2001:db8:ff::1")
        host4.routes.add("0.0.0.0/0", "eth0", "192.0.2.1")
        nat.routes.add("0.0.0.0/0", "eth1", "203.0.113.1")
        server.routes.add("0.0.0.0/0", "eth0", "198.51.100.1")

        self.echo = UdpEchoServer(server, port=7)
        self.pinger = Pinger(host6, SERVER6, count=s["count"], interval=s["interval"],
                             start=2.0)
        self.client = UdpClient(host4, SERVER4, port=7, count=s["count"],
                                interval=s["interval"], start=0.5)

    def result(self) -> dict[str, Any]:
        host6 = self.lab.nodes["host6"]
        nat = self.lab.nodes["nat"].nat
        rtts = sorted(self.pinger.rtts.values())
        return {
            "host6_address": [str(a) for a in host6.interface().ipv6()],
            "ping6": {"sent": self.pinger.sent, "replies": self.pinger.received,
                      "median_rtt_ms": round(rtts[len(rtts) // 2] * 1000, 3) if rtts else None},
            "udp4": {"sent": self.client.sent, "replies": self.client.received,
                     "server_saw": sorted(self.echo.peers)},
            "nat": {"public_address": str(nat.public_address),
                    "mappings_made": nat.stats["mappings"], "table": nat.table(),
                    "dropped_inbound": nat.stats["dropped_in"]},
        }

    def ok(self) -> bool:
        nat = self.lab.nodes["nat"].nat
        return (self.pinger.received == self.pinger.sent == self.settings["count"]
                and self.client.received == self.client.sent == self.settings["count"]
                and bool(self.echo.peers)
                and all(p.startswith(NAT_PUBLIC + ":") for p in self.echo.peers)
                and nat.stats["mappings"] >= 1)
