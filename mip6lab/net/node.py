"""A node of the in-process network and its small IPv6/IPv4 stack.

What a node does with a frame, in order (each step either passes the packet on, or
ends it with a trace event saying why):

1. Ethernet: accept frames for our MAC, broadcast, or multicast; hand ARP to the
   neighbour table, IPv6 and IPv4 to their input.
2. Check the IP header against the bytes (RFC 8200 §3 payload length, RFC 791 total
   length and header checksum): a frame that lies about its length is malformed.
3. Pre-routing hooks (the NAT translates replies here).
4. Local delivery if the destination is ours (or a group we joined); else forwarding
   if the node is a router (hop limit, route, ICMP errors of RFC 4443 / RFC 792);
   else drop.
5. Local delivery hands ICMPv6 to :meth:`receive_icmpv6` (echo, ND, RA), UDP to the
   bound port, anything else to a registered protocol handler (the place later issues
   plug in ESP, the Mobility Header and tunnels). The plain cases are read off the
   bytes, without scapy (issue 14 point 4): UDP to a bound port, Neighbor Discovery
   (NS, NA and, on a host, RA: :mod:`mip6lab.wire.nd_codec`, which also writes the
   RS, NS and NA a node sends) and what a handler registered with
   :meth:`register_bytes_handler` takes (the mobile node's BA, the home agent's BU);
   anything unusual goes to scapy's dissection as before, so drops and their reasons
   are the same either way (tests/mobility/test_byte_path.py runs whole scenarios both
   ways and compares their traces).

Output: :meth:`send_ip` picks a source address if none was given, looks up the route,
runs the post-routing hooks (the NAT's source translation) and resolves the next hop.

Bad input never escapes as an exception: :class:`~mip6lab.errors.RemoteProtocolError`
becomes a ``drop`` event with its reason; any other exception while handling a received
frame becomes an ``error`` event (and is kept in ``lab.errors``) -- a bug of ours, made
visible, not a crash of the lab.
"""

from __future__ import annotations

import ipaddress
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scapy.layers.inet import ICMP, IP, UDP, in4_chksum
from scapy.layers.inet6 import (
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6TimeExceeded,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    HAO,
)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Packet

from ..addresses import from_packed as packed_address
from ..errors import MalformedPacket, RemoteProtocolError
from ..wire.checksum import internet_checksum, ipv6_checksum
from ..wire.nd_codec import neighbor_advertisement, read_nd
from .frames import (ETH_HEADER_LEN, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, build_udp,
                     ethernet_header)
from .interface import Interface, IPAddress, RoutingTable, as_address, listening_changed
from .neighbor import NeighborTable

if TYPE_CHECKING:
    from .lab import Lab

IPPROTO_ICMP = 1
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
IPV6_MIN_MTU = 1280
_BROADCAST4 = ipaddress.IPv4Address("255.255.255.255")
_ALL_NODES = ipaddress.IPv6Address("ff02::1")
_HANDLER_KEYS: dict[tuple[int, int], tuple[int, int]] = {}

# A hook sees the IP packet as bytes with the interface it came in on / leaves by, and
# returns the (possibly rewritten) bytes, or None when it consumed or dropped the packet.
Hook = Callable[[bytes, Interface], "bytes | None"]


@dataclass(frozen=True)
class UdpDatagram:
    """A UDP datagram delivered to a bound port."""

    src: IPAddress
    sport: int
    dst: IPAddress
    dport: int
    payload: bytes
    interface: str


@dataclass(frozen=True)
class EchoReply:
    """An ICMP/ICMPv6 echo reply as the pinging application sees it."""

    src: IPAddress
    ident: int
    seq: int
    payload: bytes
    time_us: int


class Node:
    """A host or router in the in-process network."""

    kind = "host"

    def __init__(self, lab: Lab, name: str) -> None:
        self.lab = lab
        self.sim = lab.sim
        self.trace = lab.trace
        self.name = name
        self._forwarding = False
        self.interfaces: dict[str, Interface] = {}
        self.routes = RoutingTable(self)
        self.neighbors = NeighborTable(self)
        self.prerouting: list[Hook] = []
        self.postrouting: list[Hook] = []
        self.protocol_handlers: dict[tuple[int, int], Callable[..., None]] = {}
        self.byte_handlers: dict[int, Callable[[Interface, bytes, int], bool]] = {}
        self.udp_ports: dict[int, Callable[[UdpDatagram], None]] = {}
        self.echo_listeners: list[Callable[[EchoReply], None]] = []
        self.link_listeners: list[Callable[[Interface, bool], None]] = []
        self.ipsec: Any = None   # an IPsecStack plugs itself in here (mip6lab.ipsec)
        self.ike: Any = None     # and an IkeDaemon here (mip6lab.ikev2)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- trace helpers -------------------------------------------------------------------

    def announce(self, module: str, summary: str, **data: Any) -> None:
        """Report a change of state of one of this node's modules."""
        self.trace.emit(self.name, module, "state", summary, **data)

    def keeps_state(self) -> bool:
        """Whether the trace keeps an announcement (a ``state`` event) now. When it does
        not, the announcement is counted here, as :meth:`announce` would count it, and
        the caller makes none: its summary (addresses made into text) would be thrown
        away unread."""
        trace = self.trace
        if trace.keeps("state"):
            return True
        trace.count("state")
        return False

    def drop(self, module: str, reason: str, l3: bytes | None = None, *,
             ethertype: int = ETH_P_IPV6, link: str | None = None) -> None:
        """Report that a packet was discarded, and why (the packet's summary, made by
        dissecting it, only when the trace keeps the event)."""
        trace = self.trace
        if not trace.keeps("drop"):
            trace.count("drop")
            return
        summary = _describe_l3(l3, ethertype) if l3 is not None else reason
        trace.emit(self.name, module, "drop", summary, link=link, reason=reason)

    # -- interfaces ------------------------------------------------------------------------

    def add_interface(self, name: str | None = None) -> Interface:
        name = name or f"eth{len(self.interfaces)}"
        if name in self.interfaces:
            raise ValueError(f"{self.name} already has an interface {name}")
        iface = Interface(self, name, self.lab.allocate_mac())
        self.interfaces[name] = iface
        return iface

    def interface(self, name: str | None = None) -> Interface:
        """The named interface, or the only one."""
        if name is None:
            if len(self.interfaces) != 1:
                raise ValueError(f"{self.name} has {len(self.interfaces)} interfaces; "
                                 "name one")
            return next(iter(self.interfaces.values()))
        return self.interfaces[name]

    @property
    def forwarding(self) -> bool:
        """Whether the node forwards packets not addressed to it (a router, RFC 8200
        §1); such a node also listens to the all-routers group (RFC 4291 §2.8)."""
        return self._forwarding

    @forwarding.setter
    def forwarding(self, forwarding: bool) -> None:
        self._forwarding = forwarding
        listening_changed()         # its cards pass ff02::2 now, or no longer

    def attach(self, iface: Interface, link) -> None:
        """Plug ``iface`` into ``link`` (leaving its current link first)."""
        if iface.link is link:
            return
        if iface.link is not None:
            self.detach(iface)
        link.attach(iface)
        iface.link = link
        self.announce("link", f"{iface.name} up on {link.name}", interface=iface.name,
                      link=link.name)
        for listener in list(self.link_listeners):
            listener(iface, True)

    def detach(self, iface: Interface) -> None:
        """Unplug ``iface`` from its link."""
        link = iface.link
        if link is None:
            return
        link.detach(iface)
        iface.link = None
        self.neighbors.flush(iface)
        self.announce("link", f"{iface.name} down (left {link.name})",
                      interface=iface.name, link=link.name)
        for listener in list(self.link_listeners):
            listener(iface, False)

    def addresses(self) -> list[IPAddress]:
        """Every address of every interface (link-local included)."""
        out: list[IPAddress] = []
        for iface in self.interfaces.values():
            out += iface.ipv6("all") + iface.ipv4()
        return out

    def owns(self, address: IPAddress) -> bool:
        return any(iface.has_address(address) for iface in self.interfaces.values())

    def answers_arp_for(self, iface: Interface, address: ipaddress.IPv4Address) -> bool:
        """Whether to answer ARP for an address not on ``iface`` (proxy ARP: no)."""
        return False

    def answers_nd_for(self, iface: Interface, address: ipaddress.IPv6Address) -> bool:
        """Whether to answer NS for an address not on ``iface`` (proxy ND: no)."""
        return False

    def register_protocol(self, version: int, proto: int,
                          handler: Callable[[Interface, Packet, Packet], None]) -> None:
        """Deliver packets of IP protocol / next header ``proto`` to ``handler``."""
        key = (version, proto)
        # one key object for all nodes: every mobile node registers the same five
        self.protocol_handlers[_HANDLER_KEYS.setdefault(key, key)] = handler

    def register_bytes_handler(self, nh: int,
                               handler: Callable[[Interface, bytes, int], bool]) -> None:
        """Offer IPv6 packets of upper-layer protocol ``nh`` to ``handler`` as bytes first
        (with the offset of the upper-layer header), before scapy dissects them: the
        handler returns True when it dealt with the packet, False to have it go the
        scapy way to the protocol handler (:meth:`register_protocol`), untouched."""
        self.byte_handlers[nh] = handler

    # -- frames in -------------------------------------------------------------------------

    def receive_frame(self, iface: Interface, frame: bytes) -> None:
        """Entry point from the link. Never raises for bad input."""
        try:
            self._receive_frame(iface, frame)
        except RemoteProtocolError as exc:
            self.trace.emit(self.name, "ip", "drop", None, packet=frame,
                            link=iface.link.name if iface.link else None,
                            reason=exc.reason)
        except Exception as exc:  # a bug of ours: visible in the trace, the lab goes on
            self.lab.errors.append((self.name, exc, traceback.format_exc()))
            self.trace.emit(self.name, "ip", "error", None, packet=frame,
                            reason=f"{type(exc).__name__}: {exc}")

    def _receive_frame(self, iface: Interface, frame: bytes) -> None:
        if len(frame) < ETH_HEADER_LEN:
            raise MalformedPacket("frame shorter than an Ethernet header")
        if frame[0] & 1:     # multicast or broadcast
            if frame[:2] == b"\x33\x33" and \
                    not iface.listens_to_mac(int.from_bytes(frame[2:6], "big")):
                return  # the network card's multicast filter: a group we did not join
        elif frame[:6] != iface.mac_bytes:
            dst_mac = ":".join("%02x" % b for b in frame[:6])
            raise RemoteProtocolError(f"frame for {dst_mac}, not {iface.mac}")
        ethertype = int.from_bytes(frame[12:14], "big")
        l3 = frame[ETH_HEADER_LEN:]
        if ethertype == ETH_P_IPV6:
            self.receive_ip(iface, _check_ipv6(l3))
        elif ethertype == ETH_P_IP:
            self.receive_ip(iface, _check_ipv4(l3))
        elif ethertype == ETH_P_ARP:
            _check_arp(l3)
            parsed = _dissect(Ether, frame, "ARP packet")
            if ARP not in parsed:
                raise MalformedPacket("truncated ARP packet")
            self.neighbors.receive_arp(iface, parsed)
        else:
            raise RemoteProtocolError(f"unknown ethertype 0x{ethertype:04x}")

    def receive_ip(self, iface: Interface, l3: bytes) -> None:
        """An IPv6 or IPv4 packet arrived on ``iface`` (or left a tunnel): pre-routing
        hooks, then local delivery through IPsec input, or forwarding, or a drop."""
        for hook in self.prerouting:
            l3 = hook(l3, iface)
            if l3 is None:
                return
        version = l3[0] >> 4
        if version == 6:
            # read off the bytes (RFC 4291 §2.4: ff00::/8 multicast, fe80::/10 link-local);
            # an address object only for a group, whose test needs one
            if l3[24] == 0xFF:
                local = self.is_local6(iface, packed_address(l3[24:40]))
                forwardable = False
            else:
                local = self._owns6(int.from_bytes(l3[24:40], "big"))
                forwardable = self._forwarding and not (l3[24] == 0xFE
                                                       and l3[25] & 0xC0 == 0x80)
        else:
            dst = ipaddress.IPv4Address(l3[16:20])
            local = self.is_local4(iface, dst)
            forwardable = self.forwarding
        if local:
            if self.ipsec is not None:
                l3 = self.ipsec.input(iface, l3)
                if l3 is None:
                    return
            if version == 6:
                if l3[6] == IPPROTO_UDP and self._deliver_udp6(iface, l3):
                    return
                if self._deliver_bytes6(iface, l3):
                    return
                self.deliver_ipv6(iface, _dissect(IPv6, l3, "IPv6 packet"))
            else:
                self.deliver_ipv4(iface, _dissect(IP, l3, "IPv4 packet"))
        elif forwardable:
            self.forward(iface, l3, version)
        else:
            dst = as_address(l3[24:40] if version == 6 else l3[16:20])
            raise RemoteProtocolError(f"IPv{version} packet for {dst}: not addressed to "
                                      f"{self.name}")

    def is_local6(self, iface: Interface, dst: ipaddress.IPv6Address) -> bool:
        if dst._ip >> 120 == 0xFF:   # is_multicast (ff00::/8), without its network test
            return iface.listens_to(dst)
        return self._owns6(int(dst))

    def _owns6(self, number: int) -> bool:
        """:meth:`owns` for an IPv6 address given as a number (read off a packet)."""
        for iface in self.interfaces.values():
            for a in iface.addresses6:
                if a.number == number:
                    return True
        return False

    def is_local4(self, iface: Interface, dst: ipaddress.IPv4Address) -> bool:
        if dst == ipaddress.IPv4Address("255.255.255.255"):
            return True
        return self.owns(dst) or any(dst == a.network.broadcast_address
                                     for a in iface.addresses4)

    # -- local delivery --------------------------------------------------------------------

    def deliver_ipv6(self, iface: Interface, ip6: IPv6) -> None:
        upper = ip6.payload
        while isinstance(upper, (IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting)):
            if isinstance(upper, IPv6ExtHdrRouting):
                # RFC 6275 §6.4 / §11.3.3: only the type 2 header, one address, which
                # must be our own home address; anything else we do not route
                if upper.type != 2 or len(upper.addresses) != 1 or \
                        not self.owns(ipaddress.IPv6Address(upper.addresses[0])):
                    raise RemoteProtocolError("routing header we do not process "
                                              f"(type {upper.type})")
            upper = upper.payload
        nh = upper.underlayer.nh if upper.underlayer is not None else ip6.nh
        if nh == IPPROTO_ICMPV6:
            _verify_checksum6(ip6, upper, IPPROTO_ICMPV6)
            self.receive_icmpv6(iface, ip6, upper)
        elif nh == IPPROTO_UDP:
            _verify_checksum6(ip6, upper, IPPROTO_UDP)
            self._deliver_udp(iface, ip6, upper)
        elif (6, nh) in self.protocol_handlers:
            self.protocol_handlers[(6, nh)](iface, ip6, upper)
        else:
            raise RemoteProtocolError(f"no handler for next header {nh}")

    def deliver_ipv4(self, iface: Interface, ip4: IP) -> None:
        proto = ip4.proto
        if ip4.frag or ip4.flags.MF:
            raise RemoteProtocolError("IPv4 fragment: reassembly is not supported")
        if proto == IPPROTO_ICMP:
            if ICMP not in ip4 or len(ip4[ICMP]) < 8:
                raise MalformedPacket("truncated ICMP header")
            if internet_checksum(bytes(ip4.payload)) != 0:
                raise MalformedPacket("bad ICMP checksum")
            self.receive_icmp(iface, ip4)
        elif proto == IPPROTO_UDP:
            if UDP not in ip4 or len(ip4[UDP]) < 8:
                raise MalformedPacket("truncated UDP header")
            udp = ip4[UDP]
            if udp.chksum != 0 and _udp4_checksum(ip4) != 0:
                raise MalformedPacket("bad UDP checksum")
            self._deliver_udp(iface, ip4, udp)
        elif (4, proto) in self.protocol_handlers:
            self.protocol_handlers[(4, proto)](iface, ip4, ip4.payload)
        else:
            raise RemoteProtocolError(f"no handler for IP protocol {proto}")

    def _deliver_udp(self, iface: Interface, ip: Packet, udp: Packet) -> None:
        if not isinstance(udp, UDP):
            raise MalformedPacket("truncated UDP header")
        handler = self.udp_ports.get(udp.dport)
        if handler is None:
            self.drop("udp", f"no socket on UDP port {udp.dport}", bytes(ip),
                      ethertype=ETH_P_IPV6 if ip.version == 6 else ETH_P_IP)
            self.icmp_error(bytes(ip), ETH_P_IPV6 if ip.version == 6 else ETH_P_IP,
                            "port-unreachable", iface)
            return
        handler(UdpDatagram(ipaddress.ip_address(ip.src), udp.sport,
                            ipaddress.ip_address(ip.dst), udp.dport,
                            bytes(udp.payload), iface.name))

    def _deliver_udp6(self, iface: Interface, l3: bytes) -> bool:
        """UDP right after the IPv6 header, to a bound port, read off the bytes: what
        :meth:`deliver_ipv6` and :meth:`_deliver_udp` do with scapy's dissection, with
        the same checks (RFC 8200 §8.1: checksum over the pseudo-header, never zero).
        False, having done nothing, for whatever is not that plain case (a length field
        that disagrees with the packet, no socket on the port): the scapy path answers."""
        if len(l3) < 48 or int.from_bytes(l3[44:46], "big") != len(l3) - 40:
            return False
        handler = self.udp_ports.get(int.from_bytes(l3[42:44], "big"))
        if handler is None:
            return False
        if l3[46:48] == b"\x00\x00":
            raise MalformedPacket("UDP over IPv6 with a zero checksum")
        if ipv6_checksum(l3[8:24], l3[24:40], IPPROTO_UDP, l3[40:]) != 0:
            raise MalformedPacket("bad UDP checksum")
        handler(UdpDatagram(packed_address(l3[8:24]),
                            int.from_bytes(l3[40:42], "big"),
                            packed_address(l3[24:40]),
                            int.from_bytes(l3[42:44], "big"), l3[48:], iface.name))
        return True

    def _deliver_bytes6(self, iface: Interface, l3: bytes) -> bool:
        """What :meth:`deliver_ipv6` does up to a protocol handler, on the bytes, for
        Neighbor Discovery and a handler registered with :meth:`register_bytes_handler`:
        destination options headers are passed over, a routing header must be of type 2
        with one address, our own (RFC 6275 §6.4, §11.3.3). False, having done nothing,
        for anything else (a hop-by-hop header, another routing header, a length that
        does not add up): the scapy path answers, as it always has."""
        nh, off, end = l3[6], 40, len(l3)
        while nh == 60 or nh == 43:
            if off + 8 > end:
                return False
            hlen = 8 * (l3[off + 1] + 1)
            if off + hlen > end:
                return False
            if nh == 43 and (l3[off + 2] != 2 or hlen != 24 or
                             not self.owns(ipaddress.IPv6Address(l3[off + 8:off + 24]))):
                return False
            nh, off = l3[off], off + hlen
        if nh == IPPROTO_ICMPV6:      # Neighbor Discovery is read off the bytes too
            return self._neighbor_discovery_bytes(iface, l3, off)
        handler = self.byte_handlers.get(nh)
        return handler is not None and handler(iface, l3, off)

    def receive_icmpv6(self, iface: Interface, ip6: IPv6, icmp: Packet) -> None:
        # scapy's ICMPv6EchoReply subclasses ICMPv6EchoRequest: test the reply first.
        if isinstance(icmp, ICMPv6EchoReply):
            self._echo_reply(ip6.src, icmp.id, icmp.seq, bytes(icmp.data))
        elif isinstance(icmp, ICMPv6EchoRequest):
            src = ipaddress.IPv6Address(ip6.src)
            dst = ipaddress.IPv6Address(ip6.dst)
            if src.is_unspecified:
                raise RemoteProtocolError(f"echo request from {src}: nobody to answer")
            reply_src = dst if not dst.is_multicast else iface.source_for(src)
            if reply_src is None:
                raise RemoteProtocolError(f"echo request to {dst}: no address on "
                                          f"{iface.name} to answer {src} from")
            self.send_ip(IPv6(src=str(reply_src), dst=str(src))
                         / ICMPv6EchoReply(id=icmp.id, seq=icmp.seq, data=icmp.data),
                         iface=iface if src.is_link_local else None)
        elif isinstance(icmp, ICMPv6ND_NS):
            self._receive_ns(iface, ipaddress.IPv6Address(ip6.src), ip6.hlim,
                             ipaddress.IPv6Address(icmp.tgt),
                             icmp[ICMPv6NDOptSrcLLAddr].lladdr
                             if ICMPv6NDOptSrcLLAddr in icmp else None)
        elif isinstance(icmp, ICMPv6ND_NA):
            self._receive_na(iface, ip6.hlim, icmp.tgt,
                             icmp[ICMPv6NDOptDstLLAddr].lladdr
                             if ICMPv6NDOptDstLLAddr in icmp else None)
        else:
            self.receive_other_icmpv6(iface, ip6, icmp)

    def receive_other_icmpv6(self, iface: Interface, ip6: IPv6, icmp: Packet) -> None:
        """RS/RA and ICMPv6 errors; routers and hosts override what they understand."""
        self.trace.emit(self.name, "icmpv6", "state",
                        f"received {type(icmp).__name__} from {ip6.src}")

    def _neighbor_discovery_bytes(self, iface: Interface, l3: bytes, offset: int) -> bool:
        """An NS, NA (or, for a host, RA) right after the IPv6 header, read off the bytes
        (:func:`~mip6lab.wire.nd_codec.read_nd`) and checked as :meth:`deliver_ipv6`
        checks it (RFC 8200 §8.1 checksum). False, having done nothing, for any other
        ICMPv6 message and anything unusual: scapy's path answers."""
        if offset != 40:
            return False
        message = read_nd(l3)
        if message is None or (message.type == 134 and not self.reads_ra_bytes):
            return False
        if ipv6_checksum(l3[8:24], l3[24:40], IPPROTO_ICMPV6, l3[40:]) != 0:
            raise MalformedPacket("bad ICMPv6 checksum")
        if message.type == 135:
            self._receive_ns(iface, packed_address(message.source),
                             message.hop_limit, packed_address(message.target),
                             message.source_lladdr)
        elif message.type == 136:
            self._receive_na(iface, message.hop_limit, message.target, message.target_lladdr)
        else:
            self.receive_ra_message(iface, message)
        return True

    #: whether :meth:`receive_ra_message` takes RAs read off the bytes (a host's does)
    reads_ra_bytes = False

    def receive_ra_message(self, iface: Interface, message) -> None:
        """An RA read off the bytes (only when :attr:`reads_ra_bytes`)."""
        raise NotImplementedError

    def _receive_na(self, iface: Interface, hop_limit: int, target, lladdr: str | None) -> None:
        require_hop_limit_255(hop_limit, "NA")
        if lladdr is not None:
            # the byte path's target is packed, scapy's text
            self.neighbors.learn(iface, packed_address(target) if type(target) is bytes
                                 else ipaddress.IPv6Address(target), lladdr)

    def _receive_ns(self, iface: Interface, src: ipaddress.IPv6Address, hop_limit: int,
                    target: ipaddress.IPv6Address, lladdr: str | None) -> None:
        require_hop_limit_255(hop_limit, "NS")
        if not (iface.has_address(target) or self.answers_nd_for(iface, target)):
            return  # RFC 4861 §7.2.3: not our target, silently ignored
        if lladdr is not None and not src.is_unspecified:
            self.neighbors.learn(iface, src, lladdr)
        dst = _ALL_NODES if src.is_unspecified else src
        own = iface.has_address(target)
        # a proxy (RFC 4861 §7.2.8, RFC 6275 §10.4.1) answers from its own address, with
        # R clear: the target is a host's address, not the router's
        self.send_on(iface, neighbor_advertisement(
            target if own else iface.link_local, dst, target, iface.mac,
            r=self.forwarding and own, s=not src.is_unspecified, o=own))

    def receive_icmp(self, iface: Interface, ip4: IP) -> None:
        icmp = ip4[ICMP]
        if icmp.type == 8:
            src4, dst4 = ipaddress.IPv4Address(ip4.src), ipaddress.IPv4Address(ip4.dst)
            if src4.is_unspecified or src4.is_multicast or src4 == _BROADCAST4:
                raise RemoteProtocolError(f"echo request from {src4}: nobody to answer")
            reply_src = dst4 if self.owns(dst4) else iface.source_for(src4)  # broadcast
            if reply_src is None:
                raise RemoteProtocolError(f"echo request to {dst4}: no address on "
                                          f"{iface.name} to answer {src4} from")
            self.send_ip(IP(src=str(reply_src), dst=ip4.src)
                         / ICMP(type=0, id=icmp.id, seq=icmp.seq) / bytes(icmp.payload))
        elif icmp.type == 0:
            self._echo_reply(ip4.src, icmp.id, icmp.seq, bytes(icmp.payload))
        else:
            self.trace.emit(self.name, "icmp", "state",
                            f"received ICMP type {icmp.type} code {icmp.code} "
                            f"from {ip4.src}")

    def _echo_reply(self, src: str, ident: int, seq: int, payload: bytes) -> None:
        reply = EchoReply(ipaddress.ip_address(src), ident, seq, payload, self.sim.now_us)
        for listener in list(self.echo_listeners):
            listener(reply)

    # -- forwarding ------------------------------------------------------------------------

    def forward(self, iface_in: Interface, l3: bytes, version: int) -> None:
        """Forward a packet not addressed to us (RFC 8200 §3 hop limit, RFC 791 TTL)."""
        ethertype = ETH_P_IPV6 if version == 6 else ETH_P_IP
        ttl_offset = 7 if version == 6 else 8
        if l3[ttl_offset] <= 1:
            self.drop("ip", "hop limit exceeded", l3, ethertype=ethertype)
            self.icmp_error(l3, ethertype, "time-exceeded", iface_in)
            return
        out = bytearray(l3)
        out[ttl_offset] -= 1
        if version == 4:  # recompute the header checksum after the TTL change
            ihl = (out[0] & 0x0F) * 4
            out[10:12] = b"\x00\x00"
            out[10:12] = internet_checksum(bytes(out[:ihl])).to_bytes(2, "big")
        self.route_out(bytes(out), arrived_on=iface_in)

    def route_out(self, l3: bytes, protect: bool = True,
                  arrived_on: Interface | None = None) -> bool:
        """Send an IP packet by the routing table, through IPsec output processing first
        (RFC 4301 §5.1) when the node has IPsec -- so a tunnel-mode gateway needs a route
        to the outer destination only. A forwarded packet (``arrived_on``) that has no
        route is answered with ICMP destination unreachable. False if nothing went."""
        packets = [l3]
        if protect and self.ipsec is not None:
            packets = self.ipsec.output(l3)
            if packets is None:
                return False
        sent = False
        for packet in packets:
            version = packet[0] >> 4
            ethertype = ETH_P_IPV6 if version == 6 else ETH_P_IP
            dst = packed_address(packet[24:40] if version == 6 else packet[16:20])
            route = self.routes.lookup(dst)
            if route is None:
                self.drop("ip", f"no route to {dst}", packet, ethertype=ethertype)
                if arrived_on is not None:
                    self.icmp_error(packet, ethertype, "no-route", arrived_on)
                continue
            self.output(packet, route.interface, route.gateway or dst, ethertype)
            sent = True
        return sent

    # -- output ----------------------------------------------------------------------------

    def send_ip(self, packet: Packet, iface: Interface | None = None,
                nexthop: IPAddress | None = None) -> bool:
        """Send a scapy IPv6 or IP packet built by this node. False if it could not go.

        The source address is chosen when the packet does not set one (scapy would
        otherwise ask the host machine's routing table). A packet sent on an explicit
        interface (Neighbor Discovery, router discovery, link-local answers) leaves
        by it directly; any other goes through IPsec output processing and routing.
        """
        version = 6 if isinstance(packet, IPv6) else 4
        ethertype = ETH_P_IPV6 if version == 6 else ETH_P_IP
        dst = ipaddress.ip_address(packet.dst)
        explicit = iface is not None
        if iface is None:
            route = self.routes.lookup(dst)
            if route is None and self.ipsec is not None and "src" in packet.fields:
                # a tunnel may carry it where no route goes: IPsec decides first
                return self.route_out(bytes(packet))
            if route is None:
                self.drop("ip", f"no route to {dst}", bytes(_with_src(packet, "::"
                          if version == 6 else "0.0.0.0")), ethertype=ethertype)
                return False
            iface = self.interfaces[route.interface]
            nexthop = nexthop or route.gateway or dst
        nexthop = nexthop or dst
        if "src" not in packet.fields:
            src = iface.source_for(dst)
            if src is None:
                self.drop("ip", f"no source address on {iface.name} for {dst}",
                          ethertype=ethertype)
                return False
            packet.src = str(src)
        if self.ipsec is not None and not explicit:
            return self.route_out(bytes(packet))
        self.output(bytes(packet), iface.name, nexthop, ethertype)
        return True

    def send_on(self, iface: Interface, l3: bytes) -> None:
        """What :meth:`send_ip` does with a packet given an interface, for an IPv6
        packet built on bytes with its source set (Neighbor Discovery's): out of
        ``iface`` to its destination, no routing, no IPsec."""
        self.output(l3, iface.name, packed_address(l3[24:40]), ETH_P_IPV6)

    def output(self, l3: bytes, ifname: str, nexthop: IPAddress, ethertype: int) -> None:
        iface = self.interfaces[ifname]
        for hook in self.postrouting:
            l3 = hook(l3, iface)
            if l3 is None:
                return
        if iface.link is None:
            self.drop("ip", f"{iface.name} is not attached", l3, ethertype=ethertype)
            return
        self.neighbors.resolve_and_send(iface, nexthop, l3, ethertype)

    def transmit(self, iface: Interface, dst_mac: str, ethertype: int, l3: bytes) -> None:
        """Frame ``l3`` in Ethernet and put it on the interface's link."""
        if iface.link is None:
            self.drop("link", f"{iface.name} is not attached", l3, ethertype=ethertype)
            return
        # Ether(dst, src, type), written on bytes: cheaper than keeping it per destination
        iface.link.transmit(iface, ethernet_header(dst_mac, iface.mac_bytes, ethertype) + l3,
                            dst_mac)

    # -- applications' API -----------------------------------------------------------------

    def bind_udp(self, port: int, handler: Callable[[UdpDatagram], None]) -> None:
        if port in self.udp_ports:
            raise ValueError(f"UDP port {port} already bound on {self.name}")
        self.udp_ports[port] = handler

    def unbind_udp(self, port: int) -> None:
        self.udp_ports.pop(port, None)

    def ephemeral_port(self) -> int:
        """A free port from the dynamic range (RFC 6335 §6), drawn from the lab's seed."""
        while True:
            port = self.sim.random.randint(49152, 65535)
            if port not in self.udp_ports:
                return port

    def send_udp(self, dst: str | IPAddress, dport: int, payload: bytes, sport: int,
                 src: str | IPAddress | None = None) -> bool:
        """Send a UDP datagram, as :meth:`send_ip` would send it built by scapy. Built
        on bytes (:func:`~mip6lab.net.frames.build_udp`) when a route exists: every
        IKE message takes this path."""
        dst = as_address(dst)
        route = self.routes.lookup(dst)
        if route is not None:
            iface = self.interfaces[route.interface]
            source = iface.source_for(dst) if src is None else as_address(src)
            if source is not None and source.version == dst.version:
                l3 = build_udp(source, dst, sport, dport, bytes(payload))
                if self.ipsec is not None:
                    return self.route_out(l3)
                self.output(l3, iface.name, route.gateway or dst,
                            ETH_P_IPV6 if dst.version == 6 else ETH_P_IP)
                return True
        # no route, or no source address: scapy's packet and send_ip's answers
        ip = IPv6(dst=str(dst)) if dst.version == 6 else IP(dst=str(dst))
        if src is not None:
            ip.src = str(src)
        return self.send_ip(ip / UDP(sport=sport, dport=dport) / payload)

    def ping(self, dst: str | IPAddress, seq: int, ident: int = 0x6d6c,
             payload: bytes = b"mip6lab") -> bool:
        """Send one ICMP(v6) echo request; replies reach :attr:`echo_listeners`."""
        dst = ipaddress.ip_address(dst)
        if dst.version == 6:
            packet = IPv6(dst=str(dst)) / ICMPv6EchoRequest(id=ident, seq=seq, data=payload)
        else:
            packet = IP(dst=str(dst)) / ICMP(type=8, id=ident, seq=seq) / payload
        return self.send_ip(packet)

    # -- ICMP errors -----------------------------------------------------------------------

    _ERRORS6 = {"no-route": (ICMPv6DestUnreach, 0), "address-unreachable": (ICMPv6DestUnreach, 3),
                "port-unreachable": (ICMPv6DestUnreach, 4), "time-exceeded": (ICMPv6TimeExceeded, 0)}
    _ERRORS4 = {"no-route": (3, 0), "address-unreachable": (3, 1),
                "port-unreachable": (3, 3), "time-exceeded": (11, 0)}

    def icmp_error(self, offending: bytes, ethertype: int, error: str,
                   iface: Interface) -> None:
        """Answer a packet we could not deliver (RFC 4443 §2.4, RFC 1122 §3.2.2).

        Never about an ICMP error, a multicast or broadcast, an unspecified source, a
        non-first IPv4 fragment, nor a packet this node sent itself (the drop event
        already says why it did not go). The offending packet is read as bytes, not
        dissected: whatever it holds, the answer cannot fail on it.
        """
        if ethertype == ETH_P_IPV6:
            if len(offending) < 40:
                return
            src = ipaddress.IPv6Address(offending[8:24])
            dst = ipaddress.IPv6Address(offending[24:40])
            if src.is_unspecified or src.is_multicast or dst.is_multicast or self.owns(src):
                return
            if offending[6] == IPPROTO_ICMPV6 and len(offending) > 40 and offending[40] < 128:
                return  # an ICMPv6 error message (types 0-127)
            our = self._error_source(iface, src)
            if our is None:
                return
            layer, code = self._ERRORS6[error]
            quote = offending[:IPV6_MIN_MTU - 48]
            self.send_ip(IPv6(src=str(our), dst=str(src)) / layer(code=code) / quote)
        else:
            if len(offending) < 20:
                return
            ihl = (offending[0] & 0x0F) * 4
            src4 = ipaddress.IPv4Address(offending[12:16])
            dst4 = ipaddress.IPv4Address(offending[16:20])
            if src4.is_unspecified or src4.is_multicast or src4 == _BROADCAST4 \
                    or dst4.is_multicast or dst4 == _BROADCAST4 or self.owns(src4) \
                    or any(dst4 == a.network.broadcast_address for a in iface.addresses4):
                return
            if int.from_bytes(offending[6:8], "big") & 0x1FFF:
                return  # not the first fragment
            if offending[9] == IPPROTO_ICMP and len(offending) > ihl \
                    and offending[ihl] not in (0, 8):
                return  # an ICMP error (only echoes are answered with errors here)
            our4 = self._error_source(iface, src4)
            if our4 is None:
                return
            icmp_type, code = self._ERRORS4[error]
            self.send_ip(IP(src=str(our4), dst=str(src4))
                         / ICMP(type=icmp_type, code=code) / offending[:ihl + 8])

    def _error_source(self, iface: Interface, dst: IPAddress) -> IPAddress | None:
        """Source of an ICMP error to ``dst``: an address of ``iface`` if it has one of
        the right family and scope, else one of another interface, else None."""
        our = iface.source_for(dst)
        if our is not None:
            return our
        for other in self.interfaces.values():
            candidate = other.source_for(dst)
            if candidate is not None and (dst.version == 4
                                          or candidate.is_link_local == dst.is_link_local):
                return candidate
        return None


# -- checks on received bytes ------------------------------------------------------------


def _check_ipv6(l3: bytes) -> bytes:
    """Validate the fixed IPv6 header against the bytes; return the packet, trimmed."""
    if len(l3) < 40:
        raise MalformedPacket("IPv6 header truncated")
    if l3[0] >> 4 != 6:
        raise MalformedPacket("IPv6 ethertype but IP version is not 6")
    if l3[8] == 0xFF:  # RFC 4291 §2.7: never a source
        raise MalformedPacket("IPv6 source address is multicast")
    plen = int.from_bytes(l3[4:6], "big")
    if 40 + plen > len(l3):
        raise MalformedPacket(f"IPv6 payload length {plen} exceeds the "
                              f"{len(l3) - 40} bytes received")
    return l3[:40 + plen]


def _check_arp(l3: bytes) -> None:
    """Only Ethernet/IPv4 ARP (RFC 826 with htype 1, ptype 0x0800, 6 and 4 byte lengths)."""
    if len(l3) < 28:
        raise MalformedPacket("truncated ARP packet")
    if l3[0:2] != b"\x00\x01" or l3[2:4] != b"\x08\x00" or l3[4] != 6 or l3[5] != 4:
        raise MalformedPacket(f"ARP for hardware type {int.from_bytes(l3[0:2], 'big')}, "
                              f"protocol 0x{int.from_bytes(l3[2:4], 'big'):04x}, "
                              f"lengths {l3[4]}/{l3[5]}: not Ethernet/IPv4")


def _dissect(cls: type[Packet], data: bytes, what: str) -> Packet:
    """scapy's dissection of bytes that passed our checks; its failure is bad input."""
    try:
        return cls(data)
    except Exception as exc:
        raise MalformedPacket(f"{what} does not dissect ({type(exc).__name__})") from exc


def _check_ipv4(l3: bytes) -> bytes:
    """Validate the IPv4 header (RFC 791, RFC 1122 §3.2.1.2); return the packet, trimmed."""
    if len(l3) < 20:
        raise MalformedPacket("IPv4 header truncated")
    if l3[0] >> 4 != 4:
        raise MalformedPacket("IPv4 ethertype but IP version is not 4")
    ihl = (l3[0] & 0x0F) * 4
    total = int.from_bytes(l3[2:4], "big")
    if ihl < 20 or total < ihl or total > len(l3):
        raise MalformedPacket(f"IPv4 lengths inconsistent (ihl {ihl}, total {total}, "
                              f"received {len(l3)})")
    if internet_checksum(l3[:ihl]) != 0:
        raise MalformedPacket("bad IPv4 header checksum")
    return l3[:total]


def _verify_checksum6(ip6: IPv6, upper: Packet, proto: int) -> None:
    """Upper-layer checksum over the IPv6 pseudo-header (RFC 8200 §8.1)."""
    data = bytes(upper)
    if proto == IPPROTO_UDP and len(data) >= 8 and data[6:8] == b"\x00\x00":
        raise MalformedPacket("UDP over IPv6 with a zero checksum")
    src, dst = pseudo_header_addresses(ip6)
    if ipv6_checksum(src.packed, dst.packed, proto, data) != 0:
        raise MalformedPacket(f"bad {'UDP' if proto == IPPROTO_UDP else 'ICMPv6'} checksum")


def pseudo_header_addresses(ip6: IPv6) -> tuple[ipaddress.IPv6Address, ipaddress.IPv6Address]:
    """The addresses of the upper-layer pseudo-header (RFC 8200 §8.1): the home address
    of a Home Address option stands for the source (RFC 6275 §6.3), the last address of
    a routing header for the destination (a type 2 header carries the home address).
    Written here because scapy's in6_chksum misses a HAO that follows a PadN option."""
    src, dst = ipaddress.IPv6Address(ip6.src), ipaddress.IPv6Address(ip6.dst)
    layer = ip6.payload
    while isinstance(layer, (IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting)):
        if isinstance(layer, IPv6ExtHdrDestOpt):
            for option in layer.options:
                if isinstance(option, HAO):
                    src = ipaddress.IPv6Address(option.hoa)
        elif isinstance(layer, IPv6ExtHdrRouting) and layer.addresses:
            dst = ipaddress.IPv6Address(layer.addresses[-1])
        layer = layer.payload
    return src, dst


def _udp4_checksum(ip4: IP) -> int:
    return in4_chksum(IPPROTO_UDP, ip4, bytes(ip4[UDP]))


def require_hop_limit_255(hop_limit: int, what: str) -> None:
    """RFC 4861 §6.1, §7.1: a Neighbor Discovery message (``what``: RS, RA, NS, NA) is
    valid only with hop limit 255, which proves its sender is on the link."""
    if hop_limit != 255:
        raise RemoteProtocolError(f"{what} with hop limit {hop_limit}, not 255")


def _with_src(packet: Packet, src: str) -> Packet:
    if "src" not in packet.fields:
        packet = packet.copy()
        packet.src = src
    return packet


def _describe_l3(l3: bytes, ethertype: int) -> str:
    from .frames import describe

    try:
        return describe(Ether(type=ethertype) / (IPv6(l3) if ethertype == ETH_P_IPV6
                                                  else IP(l3) if ethertype == ETH_P_IP
                                                  else ARP(l3)))
    except Exception:  # a summary must never hide the drop it describes
        return f"{len(l3)} bytes"


__all__ = ["Node", "UdpDatagram", "EchoReply"]
