"""The home agent on a router of the in-process network (RFC 6275 §10, RFC 5555 §4.5).

:class:`HomeAgent` is the driver of the sans-I/O :class:`BindingCache`: it reads Binding
Updates off the wire, asks the cache what becomes of them, and does what the answer
says -- the Binding Acknowledgement, the tunnel, proxy Neighbor Discovery -- and tells
the security coupling (:mod:`mip6lab.mobility.coupling`) what security must follow.

On the wire:

- A Binding Update arrives as IPv6 with a Home Address option and ESP in transport mode
  (RFC 4877 §4.1), or, from an IPv4-only network, inside IPv4/UDP to port 4191 with the
  IPv4 Care-of Address option (RFC 5555 §4.2), whose outer address and port are kept
  with the packet through IPsec processing (§5.2.1: "V4ADDR and the sport (Z) need to be
  passed with the packet"). One that did not come through ESP is dropped and counted
  (RFC 4877 §4: "MUST be protected"); the identity of the SA it came through is what
  the PAD check of RFC 4877 §4.2 tests.
- The Binding Acknowledgement goes back to where the BU came from (RFC 5555 §5.1: "to
  the same address from which the BU was received"), with a type 2 routing header, or
  in IPv4/UDP to the NAT's address and port, with the NAT Detection option when the BU
  came in UDP.
- Packets for a registered home address are intercepted on the home link -- the HA
  answers Neighbor Solicitations (and ARP, for an IPv4 home address) for it, §10.4.1 --
  and tunnelled to the care-of address (§10.4.2); packets from the MN come back through
  the reverse tunnel, checked against the registered care-of address (§10.4.5).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from typing import Any

from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.packet import Packet

from ..errors import LocalProtocolError, RemoteProtocolError
from ..ikev2.pools import AddressPool, PoolExhausted
from ..net.frames import solicited_node
from ..addresses import text
from ..net.interface import as_address
from ..net.node import Node, UdpDatagram
from ..net.sim import ScheduledCall
from ..wire.mh_codec import (BU_A, BU_F, BU_H, BU_K, BU_L, AlternateCareOfAddress,
                             IPv4AddressAcknowledgement, IPv4CareOfAddress, IPv4HomeAddress,
                             MobilityMessage, NATDetection, decode_mobility_message,
                             encode_ba, read_on_bytes, read_options)
from ..wire.mip6 import DSMIP6_UDP_PORT, MIP6MH_BU_DSMIP6, check_mobility_message
from ..wire.nd_codec import neighbor_advertisement
from .binding_cache import (DEFAULT_MAX_ENTRIES, DEFAULT_MAX_ENTRIES_PER_IDENTITY,
                            BindingCache, BindingCacheEntry, BindingCreated, BindingDeleted,
                            invalid_care_of_address,
                            BindingExpired, BindingUpdated, BindingUpdateRefused,
                            BindingUpdateRequest, DiscardKeyManagementConnections,
                            HomeAgentConfiguration, MoveKeyManagementEndpoint,
                            SendBindingAcknowledgement)
from .auth_option import BindingUpdateVerdict, HomeAgentAuthOption
from .constants import LIFETIME_UNIT_US
from .coupling import HomeAgentCoupling
from .tunnel import TunnelEndpoint, encapsulate, inner_destination, inner_packet, inner_source

IPv6Address, IPv4Address = ipaddress.IPv6Address, ipaddress.IPv4Address
IPPROTO_MH = 135
ALL_NODES = ipaddress.IPv6Address("ff02::1")


class HomeAgent:
    """RFC 6275 home agent (with RFC 5555's IPv4 extensions) on ``node``.

    ``max_bindings`` and ``max_bindings_per_identity`` bound its binding cache, in all and
    per IKE identity; beyond them a new registration gets BA 130, Insufficient resources
    (RFC 6275 §6.1.8, §10.3.1; see :class:`HomeAgentConfiguration`, docs/security.md)."""

    def __init__(self, node: Node, coupling: HomeAgentCoupling | HomeAgentAuthOption, *,
                 home_interface: str,
                 home_prefix: str, address4: str | None = None,
                 ipv4_pool: str | None = None, max_lifetime: int = 0xFFFF,
                 nat_refresh: int = 30, accept_forced_udp: bool = True,
                 max_bindings: int | None = DEFAULT_MAX_ENTRIES,
                 max_bindings_per_identity: int | None = DEFAULT_MAX_ENTRIES_PER_IDENTITY
                 ) -> None:
        self.node = node
        self.coupling = coupling
        self.home_interface = node.interface(home_interface)
        self.home_prefix = ipaddress.IPv6Network(home_prefix)
        self.address = coupling.home_agent
        self.address4 = IPv4Address(address4) if address4 else None
        self.ipv4_pool = AddressPool.parse(ipv4_pool) if ipv4_pool else None
        self.nat_refresh = nat_refresh          # RFC 5555 §3.2.2 refresh time, seconds
        self.cache = BindingCache(HomeAgentConfiguration(
            home_prefixes={self.home_prefix: None}, max_lifetime=max_lifetime,
            key_management_mobility=coupling.k_bit,
            accept_forced_udp_encapsulation=accept_forced_udp, max_entries=max_bindings,
            max_entries_per_identity=max_bindings_per_identity))
        self.stats: Counter[str] = Counter()
        self.by_ipv4: dict[IPv4Address, IPv6Address] = {}
        self._udp_context: tuple[IPv4Address, int] | None = None
        self._expiry: ScheduledCall | None = None
        node.mobility = self
        node.register_protocol(6, IPPROTO_MH, self._mobility_header)
        node.register_bytes_handler(IPPROTO_MH, self._mobility_bytes)
        for version in (6, 4):
            for proto in (4, 41):
                node.register_protocol(version, proto, self._ip_tunnel)
        node.bind_udp(DSMIP6_UDP_PORT, self._udp_tunnel)
        node.prerouting.insert(0, self._intercept)
        node.answers_nd_for = self._answers_nd_for
        node.answers_arp_for = self._answers_arp_for

    # -- trace -----------------------------------------------------------------------------

    def _announce(self, summary: str, **data: Any) -> None:
        self.node.announce("mip6", summary, **data)

    def _refuse(self, kind: str, reason: str, packet: bytes | None = None) -> None:
        self.stats[kind] += 1
        self.node.drop("mip6", reason, packet)

    # -- proxy Neighbor Discovery (§10.4.1) ------------------------------------------------

    def _answers_nd_for(self, iface, address: IPv6Address) -> bool:
        return iface is self.home_interface and address in self.cache

    def _answers_arp_for(self, iface, address: IPv4Address) -> bool:
        return iface is self.home_interface and address in self.by_ipv4

    def _advertise(self, target: IPv6Address) -> None:
        """An unsolicited NA for ``target`` with our link-layer address, O set (§10.4.1)."""
        source = self.home_interface.source_for(target) or self.home_interface.link_local
        self.node.send_on(self.home_interface, neighbor_advertisement(
            source, ALL_NODES, target, self.home_interface.mac, o=True))

    def _proxy(self, home_address: IPv6Address, on: bool) -> None:
        """Start or stop listening to the home address's solicited-node group, where the
        home link's solicitations for it go (RFC 6275 §10.4.1)."""
        group = solicited_node(home_address)
        if on:
            self.home_interface.joined.add(group)
        elif not any(solicited_node(h) == group for h in self.cache.entries_addresses()
                     if h != home_address):
            self.home_interface.joined.discard(group)

    # -- Binding Updates -------------------------------------------------------------------

    def _mobility_header(self, iface, ip6: IPv6, mh: Packet) -> None:
        """A Mobility Header dissected by scapy (what the byte path left alone)."""
        raw = bytes(ip6)
        udp, self._udp_context = self._udp_context, None
        sa = self.node.ipsec.last_input if self.node.ipsec else None
        try:
            check_mobility_message(raw, bytes(mh))
        except RemoteProtocolError as exc:
            self._refuse("malformed", exc.reason, raw)
            return
        if not isinstance(mh, MIP6MH_BU_DSMIP6):
            self._announce(f"{type(mh).__name__} from {ip6.src} ignored (not a BU)")
            return
        message = decode_mobility_message(raw)
        if message is None:      # a header chain scapy read and the codec does not
            self._refuse("malformed", "Binding Update behind headers not read", raw)
            return
        # the options as scapy cut them (its own way for some types: SCAPY_OWN_OPTIONS)
        message.options = read_options(bytes(option) for option in mh.options)
        self._binding_update(raw, message, udp, sa)

    def _mobility_bytes(self, iface, l3: bytes, offset: int) -> bool:
        """The same for a BU on bytes (the node's byte path): what passes the checks of
        :func:`check_mobility_message` is read by the struct codec; anything else --
        another MH type, a malformed one -- goes to scapy and :meth:`_mobility_header`
        as before, so its drop or announcement is the one it always was."""
        message = read_on_bytes(l3, offset, 5)
        if message is None:
            return False
        udp, self._udp_context = self._udp_context, None
        self._binding_update(l3, message, udp,
                             self.node.ipsec.last_input if self.node.ipsec else None)
        return True

    def _binding_update(self, raw: bytes, bu: MobilityMessage, udp, sa) -> None:
        """A checked BU (RFC 6275 §10.3.1; RFC 5555 §4.2; RFC 4877 §4)."""
        self.stats["bu_received"] += 1
        if not bu.flags & BU_H:
            # a correspondent registration (§9.5.1): without return routability's Binding
            # Authorization Data it is discarded; this node does no route optimization
            self._refuse("correspondent_bu", "BU with H clear: correspondent registration "
                         "(route optimization) is not supported here", raw)
            return
        verdict = None
        if isinstance(self.coupling, HomeAgentAuthOption):
            # RFC 4285: the BU authenticates itself; a silent discard ends here
            verdict = self.coupling.verify_binding_update(raw)
            if verdict.error is not None and verdict.status is None:
                self._refuse("auth_option_discarded", verdict.error.reason, raw)
                return
            identity = verdict.identity
        elif sa is None:
            # RFC 4877 §4: BU/BA "MUST" be protected; nothing to answer with
            self._refuse("unprotected_bu", "Binding Update without IPsec protection "
                         "(RFC 4877 §4.1)", raw)
            return
        else:
            identity = sa.identity
        hao = bu.home_address
        source = IPv6Address(bu.source)
        hoa = IPv6Address(hao) if hao is not None else source
        if verdict is not None and verdict.error is not None:
            self._auth_refused(verdict, hoa, bu.sequence, source)
            return
        v4coa = bu.option(IPv4CareOfAddress)
        v4hoa = bu.option(IPv4HomeAddress)
        coa, problem = self._care_of_address(hao, source, udp,
                                             bu.option(AlternateCareOfAddress),
                                             esp=verdict is None)
        if problem is None:
            problem = invalid_care_of_address(
                coa if coa is not None else IPv4Address(v4coa.address) if v4coa is not None
                else hoa, self._own_addresses())
        if problem is not None:
            # RFC 6275 §6.1.7: silently discarded (no BA to an address we cannot trust)
            self._refuse("invalid_coa", f"BU for {hoa} discarded: {problem}", raw)
            return
        flags = bu.flags
        try:
            request = BindingUpdateRequest(
                home_address=hoa, care_of_address=coa, sequence_number=bu.sequence,
                lifetime=bu.lifetime, a=bool(flags & BU_A), h=bool(flags & BU_H),
                l=bool(flags & BU_L), k=bool(flags & BU_K), f=bool(flags & BU_F),
                ipv4_home_address=self._ipv4_home_address(hoa, v4hoa, identity)
                if v4hoa is not None else None,
                ipv4_care_of_address=IPv4Address(v4coa.address) if v4coa is not None
                else None,
                outer_ipv4_source=udp[0] if udp else None,
                outer_udp_source_port=udp[1] if udp else None)
        except (LocalProtocolError, ValueError) as exc:   # e.g. no care-of address at all
            self._refuse("malformed", f"unusable Binding Update: {exc}", raw)
            return
        existing = self.cache.get(hoa)
        if verdict is not None:
            self.coupling.answering = verdict     # authorizes the HoA, signs the BA
        try:
            result = self.cache.process_bu(request, identity, self.coupling.home_addresses,
                                           self.node.sim.now_us,
                                           duplicate_address=self._duplicate)
            if self.node.keeps_state():    # else counted, no summary made
                self._announce(f"BU from {identity} for {text(hoa)} seq {bu.sequence}: "
                               f"{result.status.name} ({int(result.status)})",
                               status=int(result.status), home_address=text(hoa),
                               identity=identity)
            for event in result.events:
                self._act(event, request, existing, identity, source, udp, v4hoa)
        finally:
            if verdict is not None:
                self.coupling.answering = None
        self._arm_expiry()

    def _auth_refused(self, verdict: BindingUpdateVerdict, hoa: IPv6Address, seq: int,
                      source: IPv6Address) -> None:
        """RFC 4285 §5.1.1 / §6: a BA with 144, 145 or 146, signed; no binding touched."""
        status = verdict.status
        self.stats[f"refused_{int(status)}"] += 1
        self.node.trace.emit(self.node.name, "mip6", "error",
                             f"BU for {hoa} refused: {verdict.error.reason}",
                             status=int(status), error=type(verdict.error).__name__)
        self.coupling.answering = verdict
        try:
            self._send_ba(SendBindingAcknowledgement(hoa, status, seq, 0), None, source, None)
        finally:
            self.coupling.answering = None

    @staticmethod
    def _care_of_address(hao, source: IPv6Address, udp, alternate, *,
                         esp: bool) -> tuple[IPv6Address | None, str | None]:
        """The IPv6 care-of address a BU registers, or why it must be discarded.

        From away (a Home Address option), the care-of address is the Alternate Care-of
        Address option's (RFC 6275 §11.7.1, §6.2.5): ESP in transport mode does not cover
        the outer source, so only the option is protected, and "Mobile IPv6
        implementations MUST use the Alternate Care-of Address mobility option"
        (RFC 4877 §4.1, RFC 3776 §4.1). A protected BU without it, or whose outer source
        differs from it (rewritten on the path), is discarded. An RFC 4285 BU is
        authenticated over its source address itself, so the option is checked only when
        present. Back home (no HAO, not in UDP) the BU comes from the HoA (§11.5.5); from
        an IPv4 care-of address (in UDP) there is no IPv6 one."""
        if hao is None:
            return (None if udp is not None else source), None
        if alternate is None:
            if esp:
                return None, ("a protected BU from away without an Alternate Care-of "
                              "Address option: its outer source is not protected "
                              "(RFC 4877 §4.1)")
            return source, None
        care_of = IPv6Address(alternate.address)
        if care_of != source:
            return None, (f"outer source {source} is not the Alternate Care-of Address "
                          f"{care_of}: rewritten on the path (RFC 4877 §4.1)")
        return care_of, None

    def _own_addresses(self) -> set:
        return {address for iface in self.node.interfaces.values()
                for address in (*iface.ipv6("all"), *iface.ipv4())}

    def _ipv4_home_address(self, hoa: IPv6Address, option, identity: str):
        """RFC 5555 §3.1.1: 0.0.0.0 asks for one; the HA allocates it to this HoA."""
        asked = IPv4Address(option.address)
        if not asked.is_unspecified or self.ipv4_pool is None:
            return asked
        try:
            address = self.ipv4_pool.allocate(text(hoa))
        except PoolExhausted:
            return asked
        # RFC 5555 §5: "the home agent MUST store the IPv4 address corresponding to the
        # IPv6 address that is allocated to a mobile node" -- bound like the HoA
        self.coupling.bind_ipv4_home_address(identity, address)
        return address

    def _duplicate(self, address: IPv6Address) -> bool:
        """§10.3.1 DAD on the home link: does another node hold the address?"""
        link = self.home_interface.link
        return link is not None and any(
            other.node is not self.node and other.has_address(address)
            for other in link.interfaces)

    def _act(self, event, request: BindingUpdateRequest, existing, identity: str,
             source: IPv6Address, udp, v4hoa) -> None:
        if isinstance(event, (BindingCreated, BindingUpdated)):
            entry = event.entry
            if entry.ipv4_home_address is not None:
                self.by_ipv4[entry.ipv4_home_address] = entry.home_address
            if isinstance(event, BindingCreated):
                self._proxy(entry.home_address, True)
                self._advertise(entry.home_address)
            if isinstance(self.coupling, HomeAgentAuthOption):
                self.coupling.binding_registered(entry)     # the what-if's payload SAs
            if self.node.keeps_state():    # else counted, no summary made
                self._announce(f"binding {text(entry.home_address)} → {self._where(entry)}"
                               f"{' (UDP, NAT detected)' if entry.nat_detected else ''}",
                               home_address=text(entry.home_address), coa=self._where(entry))
        elif isinstance(event, (BindingDeleted, BindingExpired)):
            self._forget(event.entry)
        elif isinstance(event, BindingUpdateRefused):
            self.stats[f"refused_{int(event.status)}"] += 1
            self.node.trace.emit(self.node.name, "mip6", "error",
                                 f"BU for {event.home_address} refused: {event.reason}",
                                 status=int(event.status), identity=identity)
        elif isinstance(event, DiscardKeyManagementConnections):
            if existing is not None and existing.care_of_address is not None:
                self.coupling.discard_ike(identity, existing.care_of_address)
        elif isinstance(event, MoveKeyManagementEndpoint):
            # K set: the IKE SA (and the tunnel SAs) follow -- to the new CoA, or to the
            # home address when the MN deregisters from home (§10.3.2)
            self.coupling.binding_moved(request.home_address, identity, event.old_address,
                                        event.new_address, True)
        elif isinstance(event, SendBindingAcknowledgement):
            self._send_ba(event, request, source, udp)

    def _where(self, entry: BindingCacheEntry) -> str:
        if entry.care_of_address is not None:
            return text(entry.care_of_address)
        if entry.nat_ipv4_address is not None:
            return f"{entry.nat_ipv4_address}:{entry.nat_udp_port}"
        return text(entry.ipv4_care_of_address)

    def _forget(self, entry: BindingCacheEntry) -> None:
        self._proxy(entry.home_address, False)
        if entry.ipv4_home_address is not None:
            self.by_ipv4.pop(entry.ipv4_home_address, None)
        self.coupling.binding_deleted(entry.home_address)
        self._announce(f"binding for {text(entry.home_address)} removed",
                       home_address=text(entry.home_address))

    def _send_ba(self, ack: SendBindingAcknowledgement, request: BindingUpdateRequest,
                 source: IPv6Address, udp) -> None:
        options: list = []
        entry = self.cache.get(ack.home_address)
        if ack.ipv4_address_acknowledgement is not None and request.ipv4_home_address:
            options.append(IPv4AddressAcknowledgement(ack.ipv4_address_acknowledgement,
                                                      request.ipv4_home_address.packed))
        if ack.nat_detection is not None:
            options.append(NATDetection(bool(ack.nat_detection), self.nat_refresh
                                        if entry and entry.nat_detected else 0xFFFFFFFF))
        seconds = ack.lifetime * (LIFETIME_UNIT_US // 1_000_000)
        # to the CoA the BU came from with a type 2 RH; straight to the HoA when the BU
        # came from it (home) or inside UDP 4191 (RFC 5555 §4.2: no RH2 in the tunnel)
        via = None if udp is not None or source == ack.home_address else source
        ba = encode_ba(self.address, via, ack.home_address, ack.sequence_number,
                       seconds, status=int(ack.status), k=ack.k, options=options)
        if isinstance(self.coupling, HomeAgentAuthOption):
            ba = self.coupling.sign_binding_acknowledgement(ba, self.coupling.answering)
        self.stats["ba_sent"] += 1
        if udp is None:
            self.node.route_out(bytes(ba))
            return
        # RFC 5555 §5.2.1: IPsec first, then IPv4/UDP to the address and port the BU
        # came from (the NAT's when there is one)
        protected = self.node.ipsec.output(bytes(ba))
        for packet in protected or []:
            self.node.route_out(encapsulate(packet, TunnelEndpoint(
                self.address4, udp[0], (DSMIP6_UDP_PORT, udp[1]))), protect=False)

    # -- a restart ------------------------------------------------------------------------

    def restart(self) -> int:
        """The home agent reboots (a fault for a lab to inject): its binding cache, the
        proxy Neighbor Discovery it did for those bindings and the IPv4 home addresses it
        had allocated are gone -- RFC 6275 keeps the binding cache in memory only
        (§9.1, §10.1). Its security state goes too, as a real reboot's would
        (:meth:`HomeAgentCoupling.restarted`: IKE SAs, child SAs, the SPD entries written
        for them, leases and PAD bindings; under RFC 4285 the configured mobility SAs
        stay, being configuration). No message tells the mobile nodes: each finds out
        when its next BU goes unanswered and registers again (RFC 6275 §11.7.1, §11.8;
        RFC 7296 §2.4 for its IKE SA). Returns how many bindings were lost."""
        lost = self.cache.entries()
        for entry in lost:
            self._proxy(entry.home_address, False)
        self.home_interface.joined.difference_update(
            {solicited_node(entry.home_address) for entry in lost})
        self.cache = BindingCache(self.cache.config)
        self.by_ipv4.clear()
        if self.ipv4_pool is not None:
            self.ipv4_pool = AddressPool(self.ipv4_pool.network, self.ipv4_pool.prefix_length)
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        restarted = getattr(self.coupling, "restarted", None)
        if restarted is not None:
            restarted()
        self.stats["restarts"] += 1
        self._announce(f"home agent restarted: {len(lost)} binding(s) lost",
                       bindings_lost=len(lost))
        return len(lost)

    # -- expiry (§10.3.1) ------------------------------------------------------------------

    def _arm_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        when = self.cache.next_expiry()
        if when is not None:
            self._expiry = self.node.sim.call_at(max(when, self.node.sim.now_us),
                                                 self._expire, label=f"{self.node.name} BC")

    def _expire(self) -> None:
        self._expiry = None
        for event in self.cache.expire(self.node.sim.now_us):
            self._forget(event.entry)
        self._arm_expiry()

    # -- the tunnel (§10.4.2, §10.4.5; RFC 5555 §4.1, §4.5.1) ------------------------------

    def tunnel_to(self, entry: BindingCacheEntry) -> TunnelEndpoint:
        if entry.care_of_address is not None and entry.care_of_address != entry.home_address:
            return TunnelEndpoint(self.address, entry.care_of_address)
        remote = entry.nat_ipv4_address or entry.ipv4_care_of_address
        udp = (DSMIP6_UDP_PORT, entry.nat_udp_port or DSMIP6_UDP_PORT) \
            if entry.udp_encapsulation else None
        return TunnelEndpoint(self.address4, remote, udp)

    def _binding_for(self, destination) -> BindingCacheEntry | None:
        if destination.version == 6:
            return self.cache.get(destination)
        hoa = self.by_ipv4.get(destination)
        return self.cache.get(hoa) if hoa is not None else None

    def _intercept(self, l3: bytes, iface) -> bytes | None:
        """Pre-routing: a packet for a registered home address goes into the tunnel."""
        destination = inner_destination(l3)
        entry = self._binding_for(destination)
        if entry is None or self.node.owns(destination):
            return l3
        if destination.version == 6 and iface is self.home_interface and \
                _is_neighbor_solicitation(l3):
            # a unicast NS for the home address (a neighbor's reachability check): the
            # proxy answers it, it is not the MN's to see
            ip6 = IPv6(l3)
            self.node.receive_icmpv6(iface, ip6, ip6[ICMPv6ND_NS])
            return None
        if entry.care_of_address == entry.home_address:
            return l3
        if destination.version == 6 and entry.care_of_address is not None and \
                self.coupling.payload_protected.get(entry.home_address):
            self.stats["tunnelled_out"] += 1
            return l3       # forwarding hands it to IPsec: the tunnel-mode SA is the tunnel
        hop = l3[7] if l3[0] >> 4 == 6 else l3[8]
        if hop <= 1:
            return l3       # forwarding answers with time exceeded
        self.stats["tunnelled_out"] += 1
        self.node.route_out(encapsulate(l3, self.tunnel_to(entry)), protect=False)
        return None

    def _ip_tunnel(self, iface, outer: Packet, payload: Packet) -> None:
        self._from_tunnel(iface, bytes(payload), as_address(outer.src), None)

    def _udp_tunnel(self, datagram: UdpDatagram) -> None:
        iface = self.node.interfaces[datagram.interface]
        try:
            inner = inner_packet(datagram.payload)
        except RemoteProtocolError as exc:
            self._refuse("malformed", f"UDP 4191: {exc.reason}")
            return
        if inner[0] >> 4 == 6 and inner_destination(inner) == self.address:
            # a BU (RFC 5555 §4.2): the outer address and port travel with it
            self._udp_context = (datagram.src, datagram.sport)
            try:
                self.node.receive_ip(iface, inner)
            finally:
                self._udp_context = None
            return
        self._from_tunnel(iface, inner, datagram.src, datagram.sport)

    def _from_tunnel(self, iface, inner: bytes, outer_source, sport: int | None) -> None:
        """§10.4.5: the reverse tunnel; the outer source must be the registered CoA."""
        try:
            inner = inner_packet(inner)
        except RemoteProtocolError as exc:
            self._refuse("malformed", f"tunnel: {exc.reason}")
            return
        entry = self._binding_for(inner_source(inner))
        expected = self.tunnel_to(entry) if entry is not None else None
        if expected is None or expected.remote != outer_source or \
                (sport is not None and expected.udp is not None and expected.udp[1] != sport):
            self._refuse("tunnel_refused", f"tunnelled packet from {outer_source} for "
                         f"{inner_source(inner)}: not its registered care-of address", inner)
            return
        self.stats["tunnelled_in"] += 1
        self.node.receive_ip(iface, inner)

    # -- inspection ------------------------------------------------------------------------

    def table(self) -> list[dict[str, object]]:
        """The binding cache, one row per home address (for notebooks)."""
        return self.cache.table(self.node.sim.now_us)


def _is_neighbor_solicitation(l3: bytes) -> bool:
    return len(l3) > 40 and l3[6] == 58 and l3[40] == 135

