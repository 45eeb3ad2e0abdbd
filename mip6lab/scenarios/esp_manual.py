"""``esp-manual``: ESP with manually keyed SAs, as an administrator would set them with setkey.

::

    client --[lan]-- gw ==[wan]== server          (nat=0: gw is a plain router)
    client --[lan]-- nat ==[wan]== server         (nat=1: an IPv4 NAT, ESP goes in UDP 4500)

The client and the server each get one SPD entry and one SA pair through their key
engine -- the same PF_KEY-like messages IKE will send later -- and exchange UDP:

- ``mode=transport``: ESP between the two hosts' own addresses;
- ``mode=tunnel``: the client's inner address 2001:db8:c1::1 (or 203.0.113.101) is
  carried inside ESP between the hosts' outer addresses.

With ``nat=1`` (IPv4 only) the client is behind a NAT: ESP is UDP-encapsulated
(RFC 3948), the client sends NAT-keepalives, and the server's SAs point at the NAT's
public address and the port the NAT chose -- which a scenario with IKE learns from the
packets, and this one reads from the NAT's table after the first keepalive.

``--keys DIR`` writes Wireshark's ``esp_sa`` so that the capture shows the UDP inside.
"""

from __future__ import annotations

from typing import Any

from ..crypto.esp_suites import suite_spec
from ..ipsec import (PROTECT, IPsecStack, IPsecTemplate, KeyMessage, SecurityAssociation,
                     SecurityPolicy, Selectors)
from ..net.apps import UdpClient, UdpEchoServer
from ..net.lab import Lab
from .base import Scenario, ScenarioError

ADDRESSES = {
    6: {"client": "2001:db8:1::10", "gw_lan": "2001:db8:1::1", "gw_wan": "2001:db8:2::1",
        "server": "2001:db8:2::20", "inner": "2001:db8:c1::1", "plen": 64,
        "default": "::/0"},
    4: {"client": "192.0.2.10", "gw_lan": "192.0.2.1", "gw_wan": "198.51.100.1",
        "server": "198.51.100.20", "inner": "203.0.113.101", "plen": 24,
        "default": "0.0.0.0/0"},
}
SPI_CLIENT_TO_SERVER, SPI_SERVER_TO_CLIENT = 0xC0000001, 0x5E000001


class EspManual(Scenario):
    name = "esp-manual"
    description = ("ESP with manually keyed SAs between a client and a server: transport "
                   "or tunnel mode, IPv6 or IPv4, optionally through a NAT in UDP 4500")
    duration = 6.0
    options = {"mode": "transport", "family": 6, "suite": "aes128gcm16", "nat": False,
               "count": 4, "loss": 0.0}

    def build(self, lab: Lab) -> None:
        s = self.settings
        if s["mode"] not in ("transport", "tunnel"):
            raise ScenarioError("mode is transport or tunnel")
        if s["family"] not in (4, 6):
            raise ScenarioError("family is 4 or 6")
        if s["nat"] and s["family"] != 4:
            raise ScenarioError("nat=1 needs family=4 (the NAT is a NAT44)")
        suite_spec(s["suite"])  # an unknown suite is a usage error, said early
        a = ADDRESSES[s["family"]]
        lab.add_link("lan", loss=s["loss"])
        lab.add_link("wan", "p2p", loss=s["loss"])
        client, server = lab.add_host("client"), lab.add_host("server")
        middle = lab.add_nat("nat") if s["nat"] else lab.add_router("gw")
        lab.connect(client, "lan", addresses=[f"{a['client']}/{a['plen']}"])
        lab.connect(middle, "lan", addresses=[f"{a['gw_lan']}/{a['plen']}"])
        lab.connect(middle, "wan", addresses=[f"{a['gw_wan']}/{a['plen']}"])
        lab.connect(server, "wan", addresses=[f"{a['server']}/{a['plen']}"])
        client.routes.add(a["default"], "eth0", a["gw_lan"])
        server.routes.add(a["default"], "eth0", a["gw_wan"])
        if s["mode"] == "tunnel":
            client.interface().add_address(f"{a['inner']}/{128 if s['family'] == 6 else 32}")
        self.client_stack, self.server_stack = IPsecStack(client), IPsecStack(server)
        self.echo = UdpEchoServer(server, 7)
        self.udp = UdpClient(client, a["server"], 7, count=s["count"], start=1.0, sport=5000,
                             src=a["inner"] if s["mode"] == "tunnel" else None)
        if s["nat"]:
            self.client_stack.start_keepalives(a["client"], a["server"], interval=2.0)
            lab.at(0.5, self._key, lab)       # once the NAT has mapped port 4500
        else:
            self._key(lab)

    def _key(self, lab: Lab) -> None:
        s, a = self.settings, ADDRESSES[self.settings["family"]]
        spec = suite_spec(s["suite"])
        enc_c2s = bytes((0x11 + i) & 0xFF for i in range(spec.enc_key_len))
        enc_s2c = bytes((0x77 + i) & 0xFF for i in range(spec.enc_key_len))
        int_c2s = bytes((0x33 + i) & 0xFF for i in range(spec.integ_key_len))
        int_s2c = bytes((0x99 + i) & 0xFF for i in range(spec.integ_key_len))
        client_inner = a["inner"] if s["mode"] == "tunnel" else a["client"]
        # what the server sees as the client's outer address and port
        peer, port = a["client"], 4500
        if s["nat"]:
            nat = lab.nodes["nat"].nat
            peer = str(nat.public_address)
            port = next(m["outside_port"] for m in nat.table()
                        if m["inside"] == f"{a['client']}:4500")
        encap = s["nat"]
        for stack, local, remote, outer_local, outer_remote, out_spi, in_spi, keys_out, \
                keys_in, ports in (
                (self.client_stack, client_inner, a["server"], a["client"], a["server"],
                 SPI_CLIENT_TO_SERVER, SPI_SERVER_TO_CLIENT, (enc_c2s, int_c2s),
                 (enc_s2c, int_s2c), (4500, 4500)),
                (self.server_stack, a["server"], client_inner, a["server"], peer,
                 SPI_SERVER_TO_CLIENT, SPI_CLIENT_TO_SERVER, (enc_s2c, int_s2c),
                 (enc_c2s, int_c2s), (4500, port))):
            sock = stack.engine.open("setkey")
            remote_selector = remote if not (s["nat"] and stack is self.server_stack
                                             and s["mode"] == "transport") else peer
            tunnel = s["mode"] == "tunnel"
            sock.send(KeyMessage("SPDADD", policy=SecurityPolicy(
                Selectors.make(local=local, remote=remote_selector, protocol="udp"), PROTECT,
                IPsecTemplate(s["mode"], outer_local if tunnel else None,
                              outer_remote if tunnel else None, reqid=1))))
            for spi, direction, src, dst, keys, udp in (
                    (out_spi, "out", outer_local, outer_remote, keys_out, ports),
                    (in_spi, "in", outer_remote, outer_local, keys_in, ports[::-1])):
                sock.send(KeyMessage("ADD", sa=SecurityAssociation(
                    spi, direction, src, dst, s["suite"], *keys, mode=s["mode"], reqid=1,
                    encap=udp if encap else None)))

    def result(self) -> dict[str, Any]:
        return {
            "udp": {"sent": self.udp.sent, "replies": self.udp.received,
                    "server_saw": sorted(self.echo.peers)},
            "client": {"protected": self.client_stack.stats["protected"],
                       "decapsulated": self.client_stack.stats["decapsulated"],
                       "keepalives_sent": self.client_stack.stats["keepalives_sent"]},
            "server": {"protected": self.server_stack.stats["protected"],
                       "decapsulated": self.server_stack.stats["decapsulated"],
                       "dropped_in": self.server_stack.stats["dropped_in"]},
            "sad": {"client": self.client_stack.sad.table(),
                    "server": self.server_stack.sad.table()},
            "spd": {"client": self.client_stack.spd.table(),
                    "server": self.server_stack.spd.table()},
            "udp_encapsulation": bool(self.settings["nat"]),
        }

    def ok(self) -> bool:
        count = self.settings["count"]
        return (self.udp.received == count and self.client_stack.stats["protected"] >= count
                and self.server_stack.stats["decapsulated"] >= count)
