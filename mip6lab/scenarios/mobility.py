"""The mobility scenarios' common ground: one topology, one mobile node, one home agent.

::

                 cn (2001:db8:c::10, 198.51.100.20)
                  |  [cnlan]
   [visit1..4] -- inet -- [uplink] -- hr --[home]-- ha (2001:db8:0:1::2, 192.0.2.2)
   [v4net]    --/  \\-- [natwan] -- nat --[natlan]   (hr: 2001:db8:0:1::1, 192.0.2.1)

- ``home`` is the home link (2001:db8:0:1::/64, 192.0.2.0/25). The home router ``hr``
  advertises the prefix; the home agent ``ha`` is another node on the link, so packets
  for a mobile node's home address reach it by proxy Neighbor Discovery (or proxy ARP
  for an IPv4 home address), as RFC 6275 §10.4.1 says.
- ``visit1`` .. ``visit4`` are IPv6 visited networks (2001:db8:a1::/64 ...), each
  advertised by ``inet``; ``v4net`` is an IPv4-only network with public addresses
  (198.51.100.32/28); ``natlan`` (203.0.113.0/24) is an IPv4-only network behind ``nat``,
  which masquerades it as 198.51.100.50.
- ``cn`` is the correspondent node: a UDP echo server on both families.

The mobile node ``mn`` gets its home address over IKEv2 from the home agent and keeps a
numbered UDP exchange going with ``cn`` from that address (ten requests a second); what
it gets back through the home agent is the data the handovers interrupt.

``security`` chooses how BU and BA are protected: ``ipsec`` (the default: IKEv2 and
ESP coupled as RFC 4877 says, :mod:`mip6lab.mobility.coupling`) or ``auth-option``
(RFC 4285's authentication and replay protection options with the MN-NAI of RFC 4283,
a mobility SA configured at both ends, a configured home address, no IKE:
:mod:`mip6lab.mobility.auth_option`). Under ``auth-option`` the tunnel carries the
payload unprotected unless ``protect_payload=1`` is set explicitly, which puts it in
a manually keyed ESP tunnel SA pair; ``k_bit``, ``hoa_mode``, ``spd_owner``,
``strict_spd`` and ``mn_psk`` are IKE's and change nothing there. RFC 4285 says
nothing of DSMIP6 (its Mobility Data has a 128-bit care-of address; RFC 5555 §5 says
"the binding update message MUST be protected using ESP transport mode"), so the
DSMIP6 runs refuse ``auth-option``.

Options besides the coupling's own (``k_bit``, ``hoa_mode``, ``spd_owner``,
``protect_payload``: :mod:`mip6lab.mobility.coupling`): ``strict_spd=1`` makes both IKE
daemons treat an SPDADD refused with EEXIST as the failure of the child SA, as a key
daemon that cannot install its policy does (the default, 0, goes on with the entry the
other module wrote) -- what ``spd_owner=both`` then breaks (draft-patil-mext-
mip6issueswithipsec §6.6, §6.7); ``mn_psk``, the MN's pre-shared key.

Options for trying the stack under a bad radio (docs/reliability.md): ``loss``,
``duplicate`` (a frame delivered twice), ``reorder`` (a frame held back by
``reorder_delay`` s so that later ones overtake it) on the MN's access links; ``visit``,
the seconds between moves (5 by default; every time of the script is scaled with it);
``ha_restart_at``, a time at which the home agent restarts and loses its binding cache
(:meth:`~mip6lab.mobility.home_agent.HomeAgent.restart`), 0 for never;
``gratuitous_na`` (``auto``, ``on``, ``off``): the MN announces each address it forms to
the access router (RFC 9131) -- ``auto`` does so when the access links are impaired.

Every scenario reports, besides the foundation's fields, ``mn``, ``handovers`` (one per
registration, the first included), ``nat_detected``, ``udp_encapsulation``, ``data``
(requests sent, answered, lost and still in flight at the end), ``access_links`` (what
the impaired links did) and ``ha_restart``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..ikev2.config import IkeConfig
from ..ikev2.daemon import IkeDaemon
from ..ikev2.pools import AddressPool
from ..ikev2.ts import TrafficSelector
from ..ipsec import IPsecStack
from ..mobility.auth_option import (SECURITY_MODES, HomeAgentAuthOption, ManualPayloadKeys,
                                    MobileNodeAuthOption, MobilitySecurityAssociation,
                                    MobilitySecurityAssociationStore)
from ..mobility.coupling import (BU_REQID, HOA_MODES, PAYLOAD_REQID, SPD_OWNERS,
                                 HomeAgentCoupling, MobileNodeCoupling)
from ..mobility.home_agent import HomeAgent
from ..mobility.mobile_node import MobileNode
from ..net.lab import Lab
from ..net.node import Node, UdpDatagram
from ..trace import Event
from .base import Scenario, ScenarioError

HOME_PREFIX = "2001:db8:0:1::/64"
HA6, HA4 = "2001:db8:0:1::2", "192.0.2.2"
HR6, HR4 = "2001:db8:0:1::1", "192.0.2.1"
CN6, CN4 = "2001:db8:c::10", "198.51.100.20"
NAT_PUBLIC = "198.51.100.50"
VISITED = {f"visit{i}": f"2001:db8:a{i}::/64" for i in range(1, 5)}
PSK = "mip6lab-course-psk"
MN_ID, HA_ID = "mn1@mip6lab.example", "ha.mip6lab.example"
ECHO_PORT = 7
#: auth-option: the MN's mobility SA (RFC 4285 §5.1) and configured home address -- the
#: address IKE's pool hands out first in the ipsec mode, so both modes use the same HoA
MOBILITY_SPI = 0x4285
MOBILITY_KEY = b"mip6lab-rfc4285!"
STATIC_HOA = "2001:db8:0:1::1001"
#: auth-option with protect_payload=1: the manually keyed payload SA pair (RFC 4877 §6)
MANUAL_PAYLOAD = ManualPayloadKeys(
    0x42850001, 0x42850002, bytes(range(0x10, 0x24)), bytes(range(0x60, 0x74)))
IPV4_LINKS = ("v4net", "natlan")
#: the length of a visit the scripts below are written for (``visit`` scales them)
BASE_VISIT = 5.0
#: a request still unanswered this long before the end is counted as in flight, not lost
IN_FLIGHT_US = 1_000_000
IKE_PORTS = (500, 4500)


class EchoStream:
    """Numbered UDP requests from the MN's home address to the CN's echo server; the
    answers come back through the home agent. Records when each was sent and answered."""

    def __init__(self, node: Node, mobile: MobileNode, dst: str, *, interval: float,
                 version: int = 6) -> None:
        self.node, self.mobile, self.dst = node, mobile, dst
        self.interval, self.version = interval, version
        self.sport = 40000 + version
        self.sent_at: dict[int, int] = {}
        self.answered_at: dict[int, int] = {}
        node.bind_udp(self.sport, self._answer)
        node.sim.call_later(interval, self._send, label=f"{node.name} data")

    def _source(self):
        if self.version == 6:
            return self.mobile.home_address if self.mobile.registered or \
                self.mobile.at_home else None
        return self.mobile.ipv4_home_address if self.mobile.registered else None

    def _send(self) -> None:
        source = self._source()
        if source is not None:
            number = len(self.sent_at) + 1
            self.sent_at[number] = self.node.sim.now_us
            self.node.send_udp(self.dst, ECHO_PORT, b"mip6lab %06d" % number, self.sport,
                               src=source)
        self.node.sim.call_later(self.interval, self._send, label=f"{self.node.name} data")

    def _answer(self, datagram: UdpDatagram) -> None:
        try:
            number = int(datagram.payload.split()[-1])
        except (ValueError, IndexError):
            return
        if number in self.sent_at and number not in self.answered_at:
            self.answered_at[number] = self.node.sim.now_us


class MobilityScenario(Scenario):
    """Builds the topology above; subclasses script where the MN goes."""

    duration = 20.0
    options: dict[str, Any] = {
        "k_bit": 1, "hoa_mode": "address", "spd_owner": "mobility", "protect_payload": 1,
        "loss": 0.0, "delay": 0.002, "lifetime": 60, "data_interval": 0.1,
        "ipv4_home_address": 0, "nat_timeout": 30.0, "nat_refresh": 12,
        "mn_psk": PSK, "strict_spd": 0, "security": "ipsec",
        "duplicate": 0.0, "reorder": 0.0, "reorder_delay": 0.005, "visit": 5.0,
        "ha_restart_at": 0.0, "gratuitous_na": "auto",
    }
    positive = ("lifetime", "data_interval", "nat_timeout", "nat_refresh", "visit")
    choices = {"k_bit": (0, 1), "hoa_mode": HOA_MODES, "spd_owner": SPD_OWNERS,
               "protect_payload": (0, 1), "ipv4_home_address": (0, 1), "strict_spd": (0, 1),
               "security": SECURITY_MODES, "gratuitous_na": ("auto", "on", "off")}
    #: where the MN is when the scenario starts, and (time, place) moves after that
    start_on = "visit1"
    moves: list[tuple[float, str]] = []
    backends = ("inproc", "netns")
    #: the scenario's real network on the netns backend (None in process)
    netns = None

    def __init__(self, seed: int = 0, **options: Any) -> None:
        if options.get("security") == "auth-option" and "protect_payload" not in options:
            # RFC 4285 deployments leave the tunnel unprotected; ESP is the what-if
            options["protect_payload"] = 0
        # ``visit`` stretches the script: every time of it (moves, the end, a NAT
        # rebinding) is scaled by visit / 5, the length of a visit the script is written
        # for, so that RFC 6275 §11.8 back-off has room under heavy loss (docs/reliability.md)
        visit = options.get("visit", self.options["visit"])
        try:
            scale = float(visit) / BASE_VISIT
        except (TypeError, ValueError):
            scale = 1.0                   # the option's own check reports the bad value
        if scale > 0 and scale != 1.0:
            self.duration = type(self).duration * scale
            self.moves = [(when * scale, where) for when, where in type(self).moves]
            if getattr(type(self), "rebind_at", None) is not None:
                self.rebind_at = type(self).rebind_at * scale
        super().__init__(seed, **options)

    def _refuse_dsmip6(self) -> None:
        """RFC 4285 defines no authentication for DSMIP6 (see the module docstring)."""
        s = self.settings
        if s["security"] != "auth-option":
            return
        ipv4 = [where for where in (self.start_on, *(w for _t, w in self.moves))
                if where in IPV4_LINKS]
        if ipv4 or s["ipv4_home_address"]:
            what = f"an IPv4 care-of address ({', '.join(ipv4)})" if ipv4 \
                else "an IPv4 home address (ipv4_home_address=1)"
            raise ScenarioError(
                f"{self.name}: security=auth-option cannot run DSMIP6 -- this run needs "
                f"{what}. RFC 4285 authenticates a BU over 'care-of address | home "
                "address | MH Data' with 128-bit IPv6 addresses and says nothing of an "
                "IPv4 care-of address in an option or of a BU in IPv4/UDP, whose outer "
                "header a NAT rewrites; and RFC 5555 §5 requires the BU to be 'protected "
                "using ESP transport mode'. Use security=ipsec.")

    # -- topology --------------------------------------------------------------------------

    def build(self, lab: Lab) -> None:
        self._refuse_dsmip6()
        if self.backend == "netns":
            # the same topology as namespaces, kernel routers, radvd, a real NAT; the MN
            # and the HA stay nodes of this lab (scenarios/netns_topology.py)
            from .netns_topology import NetnsMobilityNetwork

            if self.netns is not None:     # Lab.reset(): the old namespaces go first
                self.netns.close()
            self.netns = NetnsMobilityNetwork(self, lab)
            ha, mn = self.netns.build()
        else:
            ha, mn = self._inproc_topology(lab)
        self._home_agent(ha)
        self._mobile_node(mn)
        if self.start_on in ("v4net", "natlan"):
            lab.at(0.05, self._dhcp, self.start_on)
        for when, where in self.moves:
            lab.at(when, self.move, where)
        if self.settings["ha_restart_at"] > 0:
            lab.at(self.settings["ha_restart_at"], self._restart_home_agent)

    @property
    def gratuitous_na(self) -> bool:
        """Whether the MN announces each address it forms (RFC 9131). ``auto``: when its
        access links are impaired -- on clean links it only saves the router one NS/NA
        (a few ms), and the notebooks' figures were measured without it."""
        s = self.settings
        if s["gratuitous_na"] != "auto":
            return s["gratuitous_na"] == "on"
        return bool(s["loss"] or s["duplicate"] or s["reorder"])

    def _restart_home_agent(self) -> None:
        """The HA reboots: its binding cache (and IKE/IPsec state) is gone, the MN must
        notice and register again (:meth:`HomeAgent.restart`)."""
        self.restarted_at_us = self.lab.sim.now_us
        self.home_agent.restart()

    def _inproc_topology(self, lab: Lab) -> tuple[Node, Node]:
        """The simulated routers, NAT and CN; the HA and MN nodes, not yet assembled."""
        s = self.settings
        # ``loss``, ``duplicate`` and ``reorder`` are the visited access links' (the MN's
        # radio); the rest is clean
        access = {"loss": s["loss"], "delay": s["delay"], "duplicate": s["duplicate"],
                  "reorder": s["reorder"], "reorder_delay": s["reorder_delay"]}
        for name in (*VISITED, "v4net", "natlan"):
            lab.add_link(name, "segment", **access)
        for name in ("home", "cnlan"):     # the home link carries the HA's proxy ND too
            lab.add_link(name, "segment", delay=s["delay"])
        for name in ("uplink", "natwan"):
            lab.add_link(name, "p2p", delay=s["delay"])
        hr, inet = lab.add_router("hr"), lab.add_router("inet")
        ha = lab.add_router("ha")
        cn = lab.add_host("cn")
        nat = lab.add_nat("nat", outside="eth1", mapping_timeout=s["nat_timeout"],
                          filtering="endpoint-independent")
        mn = lab.add_host("mn", announce_addresses=self.gratuitous_na)

        lab.connect(hr, "home", addresses=[f"{HR6}/64", f"{HR4}/25"])
        lab.connect(hr, "uplink", addresses=["2001:db8:ff:1::1/64", "198.51.100.1/30"])
        lab.connect(ha, "home", addresses=[f"{HA6}/64", f"{HA4}/25"])
        lab.connect(inet, "uplink", addresses=["2001:db8:ff:1::2/64", "198.51.100.2/30"])
        lab.connect(inet, "cnlan", addresses=["2001:db8:c::1/64", "198.51.100.17/28"])
        lab.connect(cn, "cnlan", addresses=[f"{CN6}/64", f"{CN4}/28"])
        for i, (link, prefix) in enumerate(VISITED.items(), start=2):
            network = ipaddress.IPv6Network(prefix)
            lab.connect(inet, link, ifname=f"eth{i}",
                        addresses=[f"{network.network_address + 1}/64"])
            inet.advertise(f"eth{i}", [prefix], interval=(0.05, 0.15))
        lab.connect(inet, "v4net", ifname="eth6", addresses=["198.51.100.33/28"])
        lab.connect(inet, "natwan", ifname="eth7", addresses=["198.51.100.49/28"])
        lab.connect(nat, "natlan", addresses=["203.0.113.1/24"])
        lab.connect(nat, "natwan", addresses=[f"{NAT_PUBLIC}/28"])
        hr.advertise("eth0", [HOME_PREFIX], interval=(0.05, 0.15))

        hr.routes.add("::/0", "eth1", "2001:db8:ff:1::2")
        hr.routes.add("0.0.0.0/0", "eth1", "198.51.100.2")
        inet.routes.add(HOME_PREFIX, "eth0", "2001:db8:ff:1::1")
        inet.routes.add("192.0.2.0/25", "eth0", "198.51.100.1")
        ha.routes.add("::/0", "eth0", HR6)
        ha.routes.add("0.0.0.0/0", "eth0", HR4)
        cn.routes.add("::/0", "eth0", "2001:db8:c::1")
        cn.routes.add("0.0.0.0/0", "eth0", "198.51.100.17")
        nat.routes.add("0.0.0.0/0", "eth1", "198.51.100.49")

        lab.connect(mn, self.start_on)
        self._echo(cn)
        return ha, mn

    def _home_agent(self, ha: Node) -> None:
        s = self.settings
        if s["security"] == "auth-option":
            self._auth_option_home_agent(ha)
            return
        IPsecStack(ha)
        # a key per mobile node, not one for any identity (docs/security.md): holding
        # the course's key proves mn1's identity and no other
        config = IkeConfig.make(HA_ID, PSK, mode="transport", mobike=False,
                                peer_psks={f"rfc822:{MN_ID}": PSK},
                                pool6=AddressPool.parse("2001:db8:0:1::1000/116"),
                                home_prefixes=AddressPool.parse(HOME_PREFIX, 64),
                                local_ts=[TrafficSelector.from_network("::/0"),
                                          TrafficSelector.from_network("0.0.0.0/0")],
                                reqid_by_mode={"transport": BU_REQID, "tunnel": PAYLOAD_REQID})
        daemon = IkeDaemon(ha, config, strict_policies=bool(s["strict_spd"]))
        coupling = HomeAgentCoupling(ha, daemon, HA6, spd_owner=s["spd_owner"],
                                     k_bit=bool(s["k_bit"]))
        self.home_agent = HomeAgent(ha, coupling, home_interface="eth0",
                                    home_prefix=HOME_PREFIX, address4=HA4,
                                    ipv4_pool="192.0.2.64/26", nat_refresh=s["nat_refresh"])

    def _auth_option_home_agent(self, ha: Node) -> None:
        """RFC 4285: the HA's mobility SA store; IPsec only for the payload what-if."""
        s = self.settings
        if s["protect_payload"]:
            IPsecStack(ha)
        store = MobilitySecurityAssociationStore([MobilitySecurityAssociation(
            MOBILITY_SPI, MOBILITY_KEY, MN_ID, STATIC_HOA)])
        security = HomeAgentAuthOption(ha, HA6, store, payload=MANUAL_PAYLOAD
                                       if s["protect_payload"] else None)
        self.home_agent = HomeAgent(ha, security, home_interface="eth0",
                                    home_prefix=HOME_PREFIX, address4=HA4,
                                    nat_refresh=s["nat_refresh"])

    def _mobile_node(self, mn: Node) -> None:
        s = self.settings
        if s["security"] == "auth-option":
            if s["protect_payload"]:
                IPsecStack(mn)
            coupling = MobileNodeAuthOption(
                mn, HA6, MobilitySecurityAssociation(MOBILITY_SPI, MOBILITY_KEY, MN_ID,
                                                     STATIC_HOA),
                home_prefix=HOME_PREFIX,
                payload=MANUAL_PAYLOAD if s["protect_payload"] else None)
        else:
            IPsecStack(mn)
            # the HA keeps the lab's PSK; another ``mn_psk`` makes its AUTH check fail
            config = IkeConfig.make(MN_ID, s["mn_psk"], HA_ID, mobike=False)
            daemon = IkeDaemon(mn, config, strict_policies=bool(s["strict_spd"]))
            coupling = MobileNodeCoupling(mn, daemon, HA6, home_agent4=HA4,
                                          hoa_mode=s["hoa_mode"], spd_owner=s["spd_owner"],
                                          k_bit=bool(s["k_bit"]),
                                          protect_payload=bool(s["protect_payload"]))
        self.mobile = MobileNode(mn, coupling, lifetime=s["lifetime"],
                                 request_ipv4_home_address=bool(s["ipv4_home_address"]))
        self.data6 = EchoStream(mn, self.mobile, CN6, interval=s["data_interval"])
        self.data4 = EchoStream(mn, self.mobile, CN4, interval=s["data_interval"], version=4) \
            if s["ipv4_home_address"] else None

    def _echo(self, cn: Node) -> None:
        def answer(datagram: UdpDatagram) -> None:
            cn.send_udp(datagram.src, datagram.sport, datagram.payload, ECHO_PORT,
                        src=datagram.dst)
        cn.bind_udp(ECHO_PORT, answer)

    # -- the script ------------------------------------------------------------------------

    def move(self, where: str) -> None:
        """Move the MN to link ``where`` (an IPv4-only link also gets its 'DHCP')."""
        if self.netns is not None:
            self.netns.move(where)         # its veth re-homed to another bridge
        else:
            self.lab.move("mn", where, "eth0")
        if where in ("v4net", "natlan"):
            self.lab.after(0.05, self._dhcp, where)

    def _dhcp(self, where: str) -> None:
        if where == "v4net":
            self.mobile.attach_ipv4("198.51.100.40/28", "198.51.100.33")
        else:
            self.mobile.attach_ipv4("203.0.113.10/24", "203.0.113.1")

    # -- the report ------------------------------------------------------------------------

    def _window(self, start: int, end: int | None) -> list[Event]:
        end = end if end is not None else self.lab.sim.now_us
        return [e for e in self.lab.events if start <= e.time_us <= end]

    def _handover_report(self, index: int) -> dict[str, Any]:
        handover = self.mobile.handovers[index]
        events = self._window(handover.started_us, handover.completed_us)
        sent = [e for e in events if e.kind == "tx" and e.node in ("mn", "ha")]
        ike_frames = [e for e in sent if _is_ike(e)]
        # the SPIs of the transport-mode (BU/BA) SAs: ESP with another SPI is payload
        bu_spis = {sa.spi for sa in self.security_associations() if sa.mode == "transport"}
        mh_frames = [e for e in sent if _is_mobility(e, bu_spis)]
        seam = [e for e in events if e.kind == "seam" and e.node in ("mn", "ha")]
        lost, interruption = self._data_effect(handover)
        # counted from the trace: unknown (None), not 0, when its level did not keep them
        frames_kept, seams_kept = self.lab.trace.keeps("tx"), self.lab.trace.keeps("seam")
        return {
            "to": handover.to, "coa": handover.coa, "ba_status": handover.ba_status,
            "k_bit": int(handover.k_bit),
            "ike_exchanges": handover.ike_exchanges if handover.completed_us is not None
            else self.mobile.coupling.ike_exchanges_started - handover.ike_before,
            "ike_messages": len(ike_frames) if frames_kept else None,
            "seam_crossings": len(seam) if seams_kept else None,
            "signalling_bytes": sum(len(e.packet) for e in ike_frames + mh_frames)
            if frames_kept else None,
            "bu_sent": handover.bu_sent,
            "duration_ms": None if handover.completed_us is None
            else round((handover.completed_us - handover.started_us) / 1000, 3),
            "interruption_ms": interruption, "data_lost": lost,
        }

    def _data_effect(self, handover) -> tuple[int, float | None]:
        """What the handover cost the data: the requests between the last one answered
        before the MN left its link and the first one answered after, that were never
        answered; and the gap between those two answers (ms)."""
        stream = self.data6
        moved = handover.link_changed_us
        answered = stream.answered_at
        before = [n for n, t in answered.items() if t < moved]
        last_before = max(before, default=0)
        after = [n for n, t in answered.items() if t >= moved and n > last_before]
        first_after = min(after, default=None)
        upper = first_after if first_after is not None else len(stream.sent_at) + 1
        lost = sum(1 for n in range(last_before + 1, upper) if n not in answered)
        if not before or first_after is None:
            return lost, None
        return lost, round((answered[first_after] - answered[last_before]) / 1000, 3)

    def result(self) -> dict[str, Any]:
        mobile = self.mobile
        streams = [s for s in (self.data6, self.data4) if s is not None]
        return {
            "mn": {"hoa": str(mobile.home_address) if mobile.home_address else None,
                   "coa": str(mobile.care_of_address) if mobile.care_of_address else None,
                   "ipv4_hoa": str(mobile.ipv4_home_address)
                   if mobile.ipv4_home_address else None,
                   "at_home": mobile.at_home},
            "handovers": [self._handover_report(i) for i in range(len(mobile.handovers))],
            "nat_detected": mobile.nat_detected,
            "udp_encapsulation": mobile.udp_encapsulation,
            "data": self._data_totals(streams),
            "access_links": self._access_link_totals(),
            "ha_restart": None if getattr(self, "restarted_at_us", None) is None else
            {"at": self.restarted_at_us / 1e6, "recovered": self.recovered_after_restart()},
            "binding_cache": self.home_agent.table(),
            "home_agent": dict(self.home_agent.stats),
            "spd_conflicts": sum(1 for e in self.lab.events
                                 if e.kind == "seam" and e.data.get("error") == "EEXIST"),
        }

    def _data_totals(self, streams) -> dict[str, int]:
        """Requests sent, answered, lost (never answered) and in flight (sent in the last
        second, not answered yet) over the whole run, both families."""
        end = self.lab.sim.now_us
        sent = sum(len(s.sent_at) for s in streams)
        received = sum(len(s.answered_at) for s in streams)
        in_flight = sum(1 for s in streams for n, t in s.sent_at.items()
                        if n not in s.answered_at and t > end - IN_FLIGHT_US)
        return {"sent": sent, "received": received, "lost": sent - received - in_flight,
                "in_flight": in_flight}

    def _access_link_totals(self) -> dict[str, int]:
        """What the impaired links did to frames (the MN's visited links)."""
        totals = {"sent": 0, "lost": 0, "duplicated": 0, "reordered": 0}
        for name in (*VISITED, *IPV4_LINKS):
            link = self.lab.links.get(name)
            for key in totals:
                totals[key] += getattr(link, "stats", {}).get(key, 0)
        return totals

    def recovered_after_restart(self) -> bool | None:
        """None without an HA restart; else whether a Binding Acknowledgement accepted a
        registration after it and the binding is in the cache again (or the MN is home)."""
        restarted = getattr(self, "restarted_at_us", None)
        if restarted is None:
            return None
        accepted = [e for e in self.lab.events.filter(node="mn", module="mip6", kind="state")
                    if e.time_us > restarted and e.summary.startswith("registered at")]
        home = self.mobile.home_address
        return bool(accepted) and (self.mobile.at_home or home in self.home_agent.cache)

    def finish(self) -> None:
        if self.netns is not None:
            self.netns.finish()

    def close(self) -> None:
        super().close()
        if self.netns is not None:
            self.netns.close()

    def ok(self) -> bool:
        handovers = self.mobile.handovers
        return (bool(handovers) and all(h.ba_status is not None and h.ba_status < 128
                                        for h in handovers)
                and self.data6.answered_at != {}
                and self.recovered_after_restart() is not False)


def _payload(event: Event) -> bytes:
    return event.packet or b""


def _is_ike(event: Event) -> bool:
    """A frame carrying IKE: UDP 500, or UDP 4500 with the non-ESP marker."""
    frame = _payload(event)
    if len(frame) < 14:
        return False
    ethertype = int.from_bytes(frame[12:14], "big")
    l3 = frame[14:]
    if ethertype == 0x86DD and len(l3) >= 48 and l3[6] == 17:
        udp = l3[40:]
    elif ethertype == 0x0800 and len(l3) >= 28 and l3[9] == 17:
        udp = l3[(l3[0] & 0x0F) * 4:]
    else:
        return False
    ports = {int.from_bytes(udp[0:2], "big"), int.from_bytes(udp[2:4], "big")}
    if 500 in ports:
        return True
    return 4500 in ports and udp[8:12] == b"\x00\x00\x00\x00" and len(udp) > 12


def _is_mobility(event: Event, bu_spis: frozenset[int] | set[int] = frozenset()) -> bool:
    """A frame carrying a BU or BA: to or from the HA, a Mobility Header or ESP of one of
    ``bu_spis`` (the transport-mode SAs of RFC 4877 §7.2 that protect BU and BA; the
    tunnel-mode payload SA's ESP is data, not signalling) inside IPv6 (directly, after a
    HAO or RH2) or in UDP 4191."""
    frame = _payload(event)
    if len(frame) < 54:
        return False
    ethertype = int.from_bytes(frame[12:14], "big")
    l3 = frame[14:]
    if ethertype == 0x0800 and l3[9] == 17:
        udp = l3[(l3[0] & 0x0F) * 4:]
        ports = {int.from_bytes(udp[0:2], "big"), int.from_bytes(udp[2:4], "big")}
        if 4191 not in ports or len(udp) < 48 or udp[8] >> 4 != 6:
            return False
        l3 = udp[8:]
    if l3[0] >> 4 != 6:
        return False
    addresses = {str(ipaddress.IPv6Address(l3[8:24])), str(ipaddress.IPv6Address(l3[24:40]))}
    if HA6 not in addresses:
        return False
    nh, offset = l3[6], 40
    while nh in (0, 43, 60) and offset + 2 <= len(l3):
        nh, offset = l3[offset], offset + 8 * (l3[offset + 1] + 1)
    if nh == 50:
        return int.from_bytes(l3[offset:offset + 4], "big") in bu_spis
    return nh == 135


# -- the five scenarios -----------------------------------------------------------------


class HomeRegistration(MobilityScenario):
    name = "home-registration"
    description = ("MN boots in a visited IPv6 network: IKEv2 from its CoA gets it a home "
                   "address, the BU/BA go in ESP, and a CN talks to the HoA through the HA")
    duration = 8.0


class Handover(MobilityScenario):
    name = "handover"
    description = ("MN boots in visit1, then moves to visit2, visit3 and visit4; "
                   "--set k_bit=0|1 shows what the K bit saves")
    duration = 21.0
    moves = [(5.0, "visit2"), (10.0, "visit3"), (15.0, "visit4")]


class ReturnHome(MobilityScenario):
    name = "return-home"
    description = "MN registers from visit1, moves to visit2, then comes home and deregisters"
    duration = 15.0
    moves = [(5.0, "visit2"), (10.0, "home")]

    def ok(self) -> bool:
        return super().ok() and self.mobile.at_home and len(self.home_agent.cache) == 0


class Dsmip6V4(MobilityScenario):
    name = "dsmip6-v4"
    description = ("DSMIP6 from a public IPv4-only network: IKEv2 over IPv4, the BU in "
                   "IPv4/UDP 4191 with the IPv4 CoA option, an IPv4 home address, no NAT")
    duration = 10.0
    start_on = "v4net"
    options = {**MobilityScenario.options, "ipv4_home_address": 1, "protect_payload": 0}

    def ok(self) -> bool:
        return super().ok() and not self.mobile.nat_detected and \
            self.mobile.ipv4_home_address is not None and bool(self.data4.answered_at)


class Dsmip6Nat(MobilityScenario):
    name = "dsmip6-nat"
    description = ("DSMIP6 through a NAT: from IPv6 into an IPv4-only network behind a NAT "
                   "(NAT detected, UDP encapsulation, keepalives), a NAT rebinding, then home")
    duration = 30.0
    options = {**MobilityScenario.options, "ipv4_home_address": 1, "protect_payload": 0}
    moves = [(5.0, "natlan"), (24.0, "home")]
    rebind_at = 13.0

    def build(self, lab: Lab) -> None:
        super().build(lab)
        lab.at(self.rebind_at, self._rebind)

    def _rebind(self) -> None:
        if self.netns is not None:         # conntrack -F: new ports on the next packets
            self.rebound = self.netns.rebind_nat()
        else:
            self.rebound = self.lab.nodes["nat"].nat.rebind()

    def result(self) -> dict[str, Any]:
        result = super().result()
        stream = self.data6
        after = [t for t in stream.answered_at.values() if t > self.rebind_at * 1e6]
        result["nat_rebinding"] = {"ports": getattr(self, "rebound", []),
                                   "answers_after": len(after)}
        return result

    def ok(self) -> bool:
        natlan = [h for h in self.mobile.handovers if h.to == "natlan"]
        return super().ok() and bool(natlan) and bool(getattr(self, "rebound", [])) and \
            self.result()["nat_rebinding"]["answers_after"] > 0 and self.mobile.at_home


MOBILITY_SCENARIOS = (HomeRegistration, Handover, ReturnHome, Dsmip6V4, Dsmip6Nat)
