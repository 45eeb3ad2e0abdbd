"""The mobile node on a host of the in-process network (RFC 6275 §11, RFC 5555 §4.4).

:class:`MobileNode` is the driver of the sans-I/O :class:`BindingUpdateList`. It learns
that it moved from Router Advertisements (the host's SLAAC reports a movement, §11.5.1),
takes the new address as its care-of address, asks the security coupling whether the
Binding Update may go now (K=1) or IKE must run again first (K=0), sends the BU with the
Home Address option -- or, from an IPv4-only network, in IPv4/UDP to port 4191 with the
IPv4 Care-of Address option (RFC 5555 §4.2) -- retransmits it with back-off (§11.8),
refreshes it before it expires, and processes the Binding Acknowledgement. Back on the
home link it deregisters (§11.5.5) and advertises its home address itself again.

The home address lives on a tunnel interface (``ip6tnl0``) while the MN is away, with
routes that send everything else into the tunnel to the home agent; the tunnel's
post-routing hook encapsulates (IPv6-in-IPv6, IP-in-IPv4, or UDP) unless the payload
is protected by a tunnel-mode SA, which then *is* the tunnel.

RFC 5555 §5.1's forwarding subtlety is explicit here: a BU always leaves from the newest
care-of address (the MN builds it, has IPsec protect it, and tunnels it itself), while
data keeps using the registered tunnel until the Binding Acknowledgement arrives.

An IPv4-only visited network has no Router Advertisements; :meth:`attach_ipv4` is the
in-process stand-in for DHCPv4 that gives the MN its IPv4 care-of address.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from scapy.layers.inet6 import IPv6, MIP6MH_BA
from scapy.packet import Packet

from ..errors import RemoteProtocolError
from ..net.frames import ALL_NODES
from ..addresses import text
from ..net.interface import as_address
from ..net.node import Node, UdpDatagram
from ..net.sim import ScheduledCall
from ..net.slaac import Movement
from ..wire.mh_codec import (BA_K, AlternateCareOfAddress, BindingRefreshAdvice,
                             IPv4AddressAcknowledgement, IPv4CareOfAddress, IPv4HomeAddress,
                             MobilityMessage, NATDetection, decode_mobility_message,
                             encode_bu, read_on_bytes, read_options)
from ..wire.mip6 import DSMIP6_UDP_PORT, NATD_NO_KEEPALIVE, check_mobility_message
from ..wire.nd_codec import neighbor_advertisement
from .binding_update_list import (BindingUpdateList, Deregistered, RegistrationAccepted,
                                  RegistrationRejected, SendBindingUpdate,
                                  SequenceNumberResynchronized, UseUdpEncapsulation)
from .auth_option import MobileNodeAuthOption
from .constants import LIFETIME_UNIT_US
from .coupling import MobileNodeCoupling
from .tunnel import TunnelEndpoint, encapsulate, inner_packet

IPv6Address, IPv4Address = ipaddress.IPv6Address, ipaddress.IPv4Address
IPPROTO_MH = 135
TUNNEL = "ip6tnl0"
UNITS = LIFETIME_UNIT_US // 1_000_000


class _TunnelDevice:
    """The 'link' of the tunnel interface: nothing is framed on it; the MN's post-routing
    hook takes every packet routed to it into the tunnel."""

    kind = "tunnel"

    def __init__(self, name: str) -> None:
        self.name = name
        self.interfaces: list = []

    def attach(self, iface) -> None:
        self.interfaces.append(iface)

    def detach(self, iface) -> None:
        self.interfaces.remove(iface)

    def transmit(self, iface, frame: bytes, dst_mac: str) -> None:
        """Never reached: the hook consumes the packet before Neighbor Discovery."""


@dataclass(slots=True)
class Handover:
    """One registration: where to, and what it took (filled in as it happens)."""

    to: str
    coa: str
    started_us: int
    k_bit: bool
    ike_before: int = 0              # the coupling's IKE exchanges when it started
    link_changed_us: int = 0         # when the MN changed links (before it noticed)
    ike_exchanges: int = 0
    ba_status: int | None = None
    completed_us: int | None = None
    bu_sent: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class MobileNode:
    """RFC 6275 mobile node (with RFC 5555's IPv4 care-of and home addresses) on a Host."""

    def __init__(self, host: Node, coupling: MobileNodeCoupling | MobileNodeAuthOption, *,
                 interface: str = "eth0",
                 lifetime: int = 60, request_ipv4_home_address: bool = False) -> None:
        if lifetime <= 0 or lifetime % UNITS:
            raise ValueError(f"lifetime is a positive multiple of {UNITS} s")
        self.node = host
        self.coupling = coupling
        self.iface = host.interface(interface)
        self.lifetime_units = lifetime // UNITS
        self.request_ipv4_home_address = request_ipv4_home_address
        self.bul = BindingUpdateList()
        self.stats: Counter[str] = Counter()
        self.home_address: IPv6Address | None = None
        self.home_prefix: ipaddress.IPv6Network | None = None
        self.ipv4_home_address: IPv4Address | None = None
        self.care_of_address: ipaddress._BaseAddress | None = None    # the newest
        self.registered: ipaddress._BaseAddress | None = None         # the tunnel's
        self.tunnel: TunnelEndpoint | None = None
        self.udp_encapsulation = False
        self.nat_detected = False
        self.at_home = False
        self.link_name: str | None = self.iface.link.name if self.iface.link else None
        self.link_changed_us = 0          # when the MN last left or joined a link
        self.ipv4_gateway: IPv4Address | None = None
        self.handovers: list[Handover] = []
        self._timer: ScheduledCall | None = None
        self.tunnel_iface = host.add_interface(TUNNEL)
        host.attach(self.tunnel_iface, _TunnelDevice(f"{host.name}-{TUNNEL}"))
        host.mobility = self
        host.slaac.on_movement.append(self._movement)
        host.link_listeners.append(self._link_changed)
        host.register_protocol(6, IPPROTO_MH, self._mobility_header)
        host.register_bytes_handler(IPPROTO_MH, self._mobility_bytes)
        for version in (6, 4):
            for proto in (4, 41):
                host.register_protocol(version, proto, self._ip_tunnel)
        host.bind_udp(DSMIP6_UDP_PORT, self._udp_tunnel)
        host.postrouting.append(self._tunnel_out)
        coupling.on_ready.append(self._security_ready)
        if hasattr(coupling, "current_care_of_address"):   # IKE's: where to start anew
            coupling.current_care_of_address = self._away_at

    @property
    def home_agent(self) -> IPv6Address:
        return self.coupling.home_agent

    def _announce(self, summary: str, **data: Any) -> None:
        self.node.announce("mip6", summary, **data)

    # -- movement (§11.5) ------------------------------------------------------------------

    def _link_changed(self, iface, up: bool) -> None:
        if iface is not self.iface:
            return
        self.link_changed_us = self.node.sim.now_us
        if up:
            self.link_name = iface.link.name
            return
        # the DHCPv4 lease of the network we left goes with it
        for address in [a.ip for a in iface.addresses4]:
            iface.remove_address(address)
        self.node.routes.remove(origin="dhcp")
        self.ipv4_gateway = None

    def _movement(self, movement: Movement) -> None:
        if movement.interface != self.iface.name:
            return
        if self.home_prefix is not None and self.home_prefix in movement.new_prefixes:
            self._returned_home(movement)
            return
        coa = next((a.ip for a in self.iface.addresses6 if not a.ip.is_link_local
                    and a.interface.network in movement.new_prefixes), None)
        if coa is None:
            return
        self._router = movement.router
        self._new_care_of_address(coa, movement.link)

    def attach_ipv4(self, address: str, gateway: str) -> None:
        """The stand-in for DHCPv4 in an IPv4-only network (RFC 5555 §4.4.4): an address
        and a default router; the address becomes the IPv4 care-of address."""
        interface = ipaddress.IPv4Interface(address)
        self.iface.add_address(str(interface), origin="dhcp")
        self.ipv4_gateway = IPv4Address(gateway)
        self.node.routes.add("0.0.0.0/0", self.iface.name, gateway, origin="dhcp", metric=10)
        self._announce(f"DHCPv4: {interface} on {self.link_name}, router {gateway}")
        if not any(not a.ip.is_link_local for a in self.iface.addresses6):
            self._new_care_of_address(interface.ip, self.link_name or "?")

    def _new_care_of_address(self, coa, link: str) -> None:
        old = self.care_of_address
        self.care_of_address = coa
        self.at_home = False
        k = self.coupling.ike_survives(coa) if self.home_address is not None \
            else self.coupling.k_bit
        handover = Handover(link, text(coa), self.node.sim.now_us, k,
                            ike_before=self.coupling.ike_exchanges_started,
                            link_changed_us=self.link_changed_us)
        self.handovers.append(handover)
        if self.node.keeps_state():    # else counted, no summary made
            self._announce(f"care-of address {text(coa)} on {link}"
                           + (f" (was {old})" if old else ""), coa=text(coa), link=link)
        if self.home_address is not None and self.tunnel is not None:
            self._routes(away=True)               # the HA by way of the new router
        if self.home_address is None:
            self.coupling.start(coa)              # bootstrap: IKE from the CoA
        elif self.coupling.before_binding_update(coa):
            self._register()
        # else: IKE runs again from the new CoA; _security_ready sends the BU

    def _away_at(self):
        """The newest care-of address while away from home and still held; else None."""
        coa = self.care_of_address
        if self.at_home or coa is None:
            return None
        held = self.iface.find6(coa) if coa.version == 6 else \
            next((a for a in self.iface.addresses4 if a.ip == coa), None)
        return coa if held is not None else None

    def _security_ready(self) -> None:
        if self.home_address is None:
            self.home_address = self.coupling.home_address
            self.home_prefix = self.coupling.home_prefix
            if self.node.keeps_state():    # else counted, no summary made
                self._announce(f"home address {text(self.home_address)} "
                               f"(prefix {text(self.home_prefix)})",
                               home_address=text(self.home_address))
        if self.at_home:
            self._deregister()
        else:
            self._register()

    # -- registration (§11.7.1) ------------------------------------------------------------

    def _place_home_address(self, away: bool) -> None:
        """The HoA on the tunnel interface while away, on the home link's at home."""
        hoa = self.home_address
        for iface in (self.tunnel_iface, self.iface):
            if iface.find6(hoa) is not None and iface.find6(hoa).origin == "mip6":
                iface.remove_address(hoa)
        if away:
            self.tunnel_iface.add_address(f"{text(hoa)}/128", origin="mip6")
        elif self.iface.find6(hoa) is None:
            self.iface.add_address(f"{text(hoa)}/{self.home_prefix.prefixlen}", origin="mip6")

    def _routes(self, away: bool) -> None:
        self.node.routes.remove(origin="mip6")
        if not away:
            return
        for half in ("::/1", "8000::/1"):
            self.node.routes.add(half, TUNNEL, origin="mip6")
        if self.care_of_address is not None and self.care_of_address.version == 6:
            self.node.routes.add(f"{text(self.home_agent)}/128", self.iface.name,
                                 getattr(self, "_router", None), origin="mip6")
        if self.ipv4_home_address is not None:
            for half in ("0.0.0.0/1", "128.0.0.0/1"):
                self.node.routes.add(half, TUNNEL, origin="mip6")
            if self.coupling.home_agent4 is not None and self.ipv4_gateway is not None:
                self.node.routes.add(f"{self.coupling.home_agent4}/32", self.iface.name,
                                     self.ipv4_gateway, origin="mip6")

    def _register(self) -> None:
        coa = self.care_of_address
        if self.tunnel is None:
            self._place_home_address(away=True)
            self._routes(away=True)
        v4 = coa.version == 4
        ipv4_hoa = self.ipv4_home_address or (IPv4Address("0.0.0.0")
                                              if self.request_ipv4_home_address else None)
        handover = self.handovers[-1] if self.handovers else None
        k = handover.k_bit if handover else self.coupling.k_bit
        self._perform(self.bul.register(
            self.home_agent, self.home_address, None if v4 else coa, self.lifetime_units,
            self.node.sim.now_us, k=k, ipv4_home_address=ipv4_hoa,
            ipv4_care_of_address=coa if v4 else None))

    def _perform(self, events: list) -> None:
        for event in events:
            if isinstance(event, SendBindingUpdate):
                self._send_bu(event)
            elif isinstance(event, RegistrationAccepted):
                self._accepted(event)
            elif isinstance(event, Deregistered):
                self._deregistered()
            elif isinstance(event, RegistrationRejected):
                self._finish(int(event.status))
                self.node.trace.emit(self.node.name, "mip6", "error",
                                     f"registration rejected: {event.status.name} "
                                     f"({int(event.status)})", status=int(event.status))
            elif isinstance(event, SequenceNumberResynchronized):
                self._announce(f"135 from the HA: sequence number {event.old} → {event.new}")
            elif isinstance(event, UseUdpEncapsulation):
                # RFC 5555 §4.2: "sets the tunnel to the home agent to UDP encapsulation"
                self.udp_encapsulation = event.nat_detected
                if self.tunnel is not None and self.tunnel.remote.version == 4:
                    self.tunnel = TunnelEndpoint(
                        self.tunnel.local, self.tunnel.remote,
                        (DSMIP6_UDP_PORT, DSMIP6_UDP_PORT) if event.nat_detected else None)
            else:
                self._announce(type(event).__name__)
        self._arm()

    def _send_bu(self, bu: SendBindingUpdate) -> None:
        if self.home_address is not None and not getattr(self.coupling, "ready", True):
            # a new IKE SA is being made (the old one was lost): without its BU/BA SA this
            # BU would only wake the key daemon's ACQUIRE; the SA's readiness sends a new one
            self.stats["bu_held"] += 1
            self._announce(f"held BU seq {bu.sequence_number}: the BU/BA SA is being "
                           "negotiated again", sequence=bu.sequence_number)
            return
        self.stats["bu_sent"] += 1
        if self.handovers:
            self.handovers[-1].bu_sent += 1
        options: list = []
        if bu.ipv4_home_address is not None:
            options.append(IPv4HomeAddress(bu.ipv4_home_address.packed))
        seconds = bu.lifetime * UNITS
        if self.node.keeps_state():    # else counted, no summary made
            self._announce(f"BU seq {bu.sequence_number} lifetime {seconds} s "
                           f"{'K ' if bu.k else ''}"
                           f"CoA {bu.care_of_address or bu.ipv4_care_of_address}"
                           f"{' (retransmission)' if bu.retransmission else ''}",
                           sequence=bu.sequence_number)
        home = bu.care_of_address == bu.home_address   # §11.5.5: from the HoA, no HAO
        in_udp = bu.ipv4_care_of_address is not None and not home
        if in_udp:
            options.append(IPv4CareOfAddress(bu.ipv4_care_of_address.packed))
        # the HAO carries the HoA from an IPv6 CoA; from the HoA or from IPv4 there is none
        hao_from = None if home or in_udp else bu.care_of_address
        if hao_from is not None:
            # ESP in transport mode leaves the outer source unprotected: the CoA goes inside
            # the BU too (RFC 6275 §11.7.1, §6.2.5; RFC 4877 §4.1 "MUST use the Alternate
            # Care-of Address mobility option"), first, so RFC 4285's options stay last
            options.insert(0, AlternateCareOfAddress(hao_from.packed))
        unanswered = getattr(self.coupling, "binding_update_unanswered", None)
        if bu.retransmission and unanswered is not None:
            unanswered(bu.retransmission + 1)   # RFC 7296 §2.4: is the HA's IKE alive?
        packet = encode_bu(bu.home_address, hao_from, bu.home_agent, bu.sequence_number,
                           seconds, k=bu.k, options=options)
        if isinstance(self.coupling, MobileNodeAuthOption):
            packet = self.coupling.sign_binding_update(packet)    # RFC 4285 §5.1
        if not in_udp:
            self.node.route_out(packet)
            return
        # RFC 5555 §5.1: IPsec first, then IPv4/UDP from the *new* CoA
        for protected in self.node.ipsec.output(packet) or []:
            self.node.route_out(encapsulate(protected, TunnelEndpoint(
                bu.ipv4_care_of_address, self.coupling.home_agent4,
                (DSMIP6_UDP_PORT, DSMIP6_UDP_PORT))), protect=False)

    def _accepted(self, event: RegistrationAccepted) -> None:
        new = self.care_of_address
        self.registered = new
        entry = self.bul.get(self.home_address)
        if new.version == 6:
            self.tunnel = TunnelEndpoint(new, self.home_agent)
        else:
            self.tunnel = TunnelEndpoint(new, self.coupling.home_agent4,
                                         (DSMIP6_UDP_PORT, DSMIP6_UDP_PORT)
                                         if self.udp_encapsulation else None)
        self._routes(away=True)
        self.coupling.after_binding_acknowledgement(new, entry.k if entry else False)
        if self.node.keeps_state():    # else counted, no summary made
            self._announce(f"registered at {text(new)} for {event.lifetime * UNITS} s "
                           f"({event.status.name})", coa=text(new))
        self._finish(int(event.status))

    def _finish(self, status: int) -> None:
        handover = self.handovers[-1] if self.handovers else None
        if handover is not None and handover.completed_us is None:
            handover.ba_status = status
            handover.completed_us = self.node.sim.now_us
            handover.ike_exchanges = self.coupling.ike_exchanges_started - handover.ike_before

    # -- return home (§11.5.5) -------------------------------------------------------------

    def _returned_home(self, movement: Movement) -> None:
        self.at_home = True
        self.care_of_address = self.home_address
        handover = Handover(movement.link, text(self.home_address), self.node.sim.now_us,
                            self.coupling.ike_survives(self.home_address),
                            ike_before=self.coupling.ike_exchanges_started,
                            link_changed_us=self.link_changed_us)
        self.handovers.append(handover)
        self._announce(f"back on the home link {movement.link}: deregistering",
                       link=movement.link)
        self.tunnel = None
        self._routes(away=False)
        self._place_home_address(away=False)
        if self.coupling.before_binding_update(self.home_address):
            self._deregister()

    def _deregister(self) -> None:
        entry = self.bul.get(self.home_address)
        if entry is None or entry.state.value == "not registered":
            self._finish(0)
            return
        entry.k = self.handovers[-1].k_bit if self.handovers else entry.k
        self._perform(self.bul.deregister(self.home_address, self.node.sim.now_us))

    def _deregistered(self) -> None:
        self.registered = None
        self.coupling.after_binding_acknowledgement(self.home_address,
                                                    self.handovers[-1].k_bit)
        # §11.5.5: "multicast onto the home link ... a Neighbor Advertisement" with O set
        self.node.send_on(self.iface, neighbor_advertisement(
            self.home_address, ALL_NODES, self.home_address, self.iface.mac, o=True))
        self.coupling.returned_home()
        self._announce(f"deregistered: {self.home_address} is on the home link again")
        self._finish(0)

    # -- timers (§11.8, §11.7.1) -----------------------------------------------------------

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        when = self.bul.get_timer()
        if when is not None:
            self._timer = self.node.sim.call_at(max(when, self.node.sim.now_us), self._fire,
                                                label=f"{self.node.name} BUL")

    def _fire(self) -> None:
        self._timer = None
        self._perform(self.bul.handle_timer(self.node.sim.now_us))

    # -- Binding Acknowledgements (§11.7.3) ------------------------------------------------

    def _mobility_header(self, iface, ip6: IPv6, mh: Packet) -> None:
        """A Mobility Header dissected by scapy (what the byte path left alone)."""
        raw = bytes(ip6)
        sa = self.node.ipsec.last_input if self.node.ipsec else None
        try:
            check_mobility_message(raw, bytes(mh))
        except RemoteProtocolError as exc:
            self.stats["malformed"] += 1
            self.node.drop("mip6", exc.reason, raw)
            return
        if not isinstance(mh, MIP6MH_BA):
            self._announce(f"{type(mh).__name__} from {ip6.src} ignored")
            return
        message = decode_mobility_message(raw)
        if message is None:      # a header chain scapy read and the codec does not
            self.stats["malformed"] += 1
            self.node.drop("mip6", "Binding Acknowledgement behind headers not read", raw)
            return
        # the options as scapy cut them (its own way for some types: SCAPY_OWN_OPTIONS)
        message.options = read_options(bytes(option) for option in mh.options)
        self._binding_acknowledgement(raw, message, sa)

    def _mobility_bytes(self, iface, l3: bytes, offset: int) -> bool:
        """The same for a BA on bytes (the node's byte path); anything else -- another MH
        type, a malformed one -- goes to scapy and :meth:`_mobility_header` as before."""
        message = read_on_bytes(l3, offset, 6)
        if message is None:
            return False
        self._binding_acknowledgement(
            l3, message, self.node.ipsec.last_input if self.node.ipsec else None)
        return True

    def _binding_acknowledgement(self, raw: bytes, ba: MobilityMessage, sa) -> None:
        """A checked BA (RFC 6275 §11.7.3; RFC 5555 §4.3; RFC 4877 §4)."""
        if isinstance(self.coupling, MobileNodeAuthOption):
            try:        # RFC 4285 §5.1.1, §6: authenticated, and answering our BU
                if not self.coupling.verify_binding_acknowledgement(raw):
                    return          # 144: the clock adjusted, the retransmission follows
            except RemoteProtocolError as exc:
                self.stats["ba_refused"] += 1
                self.node.drop("mip6", exc.reason, raw)
                return
        elif sa is None:     # §11.7.3: "MUST be discarded" unless IPsec-protected
            self.stats["unprotected_ba"] += 1
            self.node.drop("mip6", "Binding Acknowledgement without IPsec protection", raw)
            return
        refresh = None
        nat = None
        for option in ba.options:
            if type(option) is BindingRefreshAdvice:
                refresh = option.interval
            elif type(option) is NATDetection:
                nat = option.f
                self.nat_detected = option.refresh != NATD_NO_KEEPALIVE
                if option.refresh not in (0, NATD_NO_KEEPALIVE):
                    # RFC 5555 §4.3: keep the NAT's mapping with BUs at the HA's interval
                    refresh = max(1, option.refresh // UNITS)
            elif type(option) is IPv4AddressAcknowledgement and option.status < 128:
                self._ipv4_home_address(IPv4Address(option.address))
        self.stats["ba_received"] += 1
        k = bool(ba.flags & BA_K)
        if self.node.keeps_state():    # else counted, no summary made
            self._announce(f"BA seq {ba.sequence} status {ba.status}"
                           f"{' K' if k else ''}", status=ba.status)
        self._perform(self.bul.process_ba(
            self.home_address, ba.status, ba.sequence, ba.lifetime, self.node.sim.now_us,
            k=k, refresh_interval=refresh, nat_detection=nat))

    def _ipv4_home_address(self, address: IPv4Address) -> None:
        if self.ipv4_home_address == address:
            return
        self.ipv4_home_address = address
        self.tunnel_iface.add_address(f"{address}/32", origin="mip6")
        self._announce(f"IPv4 home address {address} acknowledged (RFC 5555 §3.2.1)",
                       ipv4_home_address=text(address))

    # -- the tunnel ------------------------------------------------------------------------

    def _tunnel_out(self, l3: bytes, iface) -> bytes | None:
        if iface is not self.tunnel_iface:
            return l3
        version = l3[0] >> 4
        source = as_address(l3[8:24] if version == 6 else l3[12:16])
        if self.tunnel is None or source.is_link_local or source.is_unspecified:
            if not source.is_link_local:
                self.stats["no_tunnel"] += 1
                self.node.drop("mip6", "no binding yet: nothing to tunnel with", l3,
                               ethertype=0x86DD if version == 6 else 0x0800)
            return None
        route = self.node.routes.lookup(self.tunnel.remote)
        if route is None or route.interface == TUNNEL:
            # the registered tunnel's end is out of reach from here (the MN moved and the
            # new binding is not acknowledged yet, RFC 5555 §5.1): the packet is lost
            self.stats["tunnel_unreachable"] += 1
            self.node.drop("mip6", f"tunnel {self.tunnel.describe()} unreachable from this "
                           "network until the new binding", l3,
                           ethertype=0x86DD if version == 6 else 0x0800)
            return None
        self.stats["tunnelled_out"] += 1
        self.node.route_out(encapsulate(l3, self.tunnel), protect=False)
        return None

    def _ip_tunnel(self, iface, outer: Packet, payload: Packet) -> None:
        self._from_tunnel(iface, bytes(payload), as_address(outer.src))

    def _udp_tunnel(self, datagram: UdpDatagram) -> None:
        self._from_tunnel(self.node.interfaces[datagram.interface], datagram.payload,
                          datagram.src)

    def _from_tunnel(self, iface, payload: bytes, outer_source) -> None:
        if outer_source not in (self.home_agent, self.coupling.home_agent4):
            self.stats["tunnel_refused"] += 1
            self.node.drop("mip6", f"tunnelled packet from {outer_source}, not the home agent")
            return
        try:
            inner = inner_packet(payload)
        except RemoteProtocolError as exc:
            self.stats["malformed"] += 1
            self.node.drop("mip6", f"tunnel: {exc.reason}")
            return
        self.stats["tunnelled_in"] += 1
        self.node.receive_ip(iface, inner)

    # -- inspection ------------------------------------------------------------------------

    def table(self) -> list[dict[str, object]]:
        """The binding update list as rows (for notebooks)."""
        rows = []
        for hoa in [self.home_address] if self.home_address else []:
            entry = self.bul.get(hoa)
            if entry is not None:
                rows.append({"home_address": str(hoa), "home_agent": str(entry.home_agent),
                             "care_of_address": str(entry.care_of_address
                                                    or entry.ipv4_care_of_address),
                             "state": entry.state.value, "sequence": entry.sequence_number,
                             "lifetime": entry.granted_lifetime * UNITS, "k": entry.k})
        return rows
