"""Hosts: router discovery, stateless address autoconfiguration and movement detection.

A :class:`Host` solicits routers when an interface comes up (RFC 4861 §6.3.7: after a
random delay, up to MAX_RTR_SOLICITATIONS), and configures itself from Router
Advertisements (RFC 4861 §6.3.4, RFC 4862 §5.5.3): a default route via the RA's
sender, and for every prefix with the A flag an address made of the /64 prefix and the
interface's modified EUI-64 identifier, with its valid and preferred lifetimes.

Each address formed is announced to the routers with unsolicited Neighbor Advertisements
(gratuitous Neighbor Discovery, RFC 9131), so that the first packet for it does not wait
on -- or, on a lossy link, die in -- the router's address resolution.

Movement detection (RFC 6275 §11.5.1, in its simplest form): when an interface comes up
on a link, the first RA received there tells the host which prefixes it is on. If none of
them was on the link it left, the host has moved; it says so in the trace and tells the
listeners in :attr:`Slaac.on_movement` (the mobile node of a later issue is one). When
an interface leaves its link, the addresses formed there and the routes learned there
go with it (a simulation choice: real hosts keep them until their lifetimes end or NUD
fails, which only delays the same outcome).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field

from scapy.layers.inet6 import (
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.packet import Packet

from ..addresses import network
from ..errors import RemoteProtocolError
from ..wire.nd_codec import neighbor_advertisement, router_solicitation
from .frames import ALL_ROUTERS, address_in_prefix, options_of
from .interface import Address6, Interface
from .neighbor import RETRANS_TIMER
from .node import Node, packed_address, require_hop_limit_255
from .sim import ScheduledCall, seconds_to_us

MAX_RTR_SOLICITATION_DELAY = 1.0   # RFC 4861 §10
RTR_SOLICITATION_INTERVAL = 4.0
MAX_RTR_SOLICITATIONS = 3
MAX_NEIGHBOR_ADVERTISEMENT = 3     # RFC 4861 §10
INFINITY_LIFETIME = 0xFFFFFFFF

Prefixes = frozenset[ipaddress.IPv6Network]


@dataclass(slots=True)
class Attachment:
    """What one interface has learned on its current link."""

    link: str
    prefixes: set[ipaddress.IPv6Network] = field(default_factory=set)
    router: ipaddress.IPv6Address | None = None
    solicitations: int = 0
    solicit_timer: ScheduledCall | None = None
    seen_ra: bool = False


@dataclass(frozen=True)
class Movement:
    """A host found itself on a link with other prefixes than the one it left."""

    interface: str
    link: str
    old_prefixes: Prefixes
    new_prefixes: Prefixes
    router: ipaddress.IPv6Address

    @property
    def moved(self) -> bool:
        return bool(self.old_prefixes) and not (self.old_prefixes & self.new_prefixes)


class Slaac:
    """Router discovery and address autoconfiguration for every interface of a host."""

    def __init__(self, node: Node, *, solicitation_delay: float = MAX_RTR_SOLICITATION_DELAY,
                 solicitation_interval: float = RTR_SOLICITATION_INTERVAL,
                 max_solicitations: int = MAX_RTR_SOLICITATIONS,
                 announce_addresses: bool = True) -> None:
        self.node = node
        #: gratuitous Neighbor Discovery for each address formed (RFC 9131)
        self.announce_addresses = announce_addresses
        self.solicitation_delay = solicitation_delay
        self.solicitation_interval = solicitation_interval
        self.max_solicitations = max_solicitations
        self.attachments: dict[str, Attachment] = {}
        self.previous_prefixes: dict[str, Prefixes] = {}
        self.on_movement: list[Callable[[Movement], None]] = []
        self.on_address: list[Callable[[Interface, ipaddress.IPv6Address, bool], None]] = []
        self._expiry: dict[tuple[str, ipaddress.IPv6Address], ScheduledCall] = {}
        node.link_listeners.append(self._link_changed)

    # -- link up / down --------------------------------------------------------------------

    def _link_changed(self, iface: Interface, up: bool) -> None:
        if up:
            attachment = Attachment(iface.link.name)
            self.attachments[iface.name] = attachment
            delay = self.node.sim.random.uniform(0, self.solicitation_delay)
            attachment.solicit_timer = self.node.sim.call_later(
                delay, self._solicit, iface, attachment, label=f"{self.node.name} RS")
            return
        attachment = self.attachments.pop(iface.name, None)
        if attachment is None:
            return
        if attachment.solicit_timer:
            attachment.solicit_timer.cancel()
        if attachment.prefixes:
            self.previous_prefixes[iface.name] = frozenset(attachment.prefixes)
        for address in [a for a in iface.addresses6 if a.origin == "slaac"]:
            self._remove(iface, address, "its link is gone")
        if self.node.routes.remove(origin="ra", interface=iface.name):
            self.node.announce("slaac", f"default router on {iface.name} forgotten",
                               interface=iface.name)

    def _solicit(self, iface: Interface, attachment: Attachment) -> None:
        if self.attachments.get(iface.name) is not attachment or attachment.seen_ra:
            return
        if attachment.solicitations >= self.max_solicitations:
            self.node.announce("slaac", f"no router answered on {iface.name}",
                               interface=iface.name)
            return
        attachment.solicitations += 1
        self.node.send_on(iface, router_solicitation(iface.link_local, ALL_ROUTERS,
                                                     iface.mac))
        attachment.solicit_timer = self.node.sim.call_later(
            self.solicitation_interval, self._solicit, iface, attachment,
            label=f"{self.node.name} RS")

    # -- router advertisements -------------------------------------------------------------

    def receive_ra(self, iface: Interface, ip6: IPv6, ra: ICMPv6ND_RA) -> None:
        """Process an RA dissected by scapy (see :meth:`receive_ra_fields`)."""
        self.receive_ra_fields(iface, ipaddress.IPv6Address(ip6.src), ip6.hlim,
                               ra.routerlifetime,
                               ra[ICMPv6NDOptSrcLLAddr].lladdr
                               if ICMPv6NDOptSrcLLAddr in ra else None,
                               options_of(ra, ICMPv6NDOptPrefixInfo))

    def receive_ra_fields(self, iface: Interface, src: ipaddress.IPv6Address,
                          hop_limit: int, router_lifetime: int, lladdr: str | None,
                          prefixes: list) -> None:
        """Process an RA (RFC 4861 §6.1.2 validity, §6.3.4 and RFC 4862 §5.5.3): its
        source, hop limit, router lifetime, first Source Link-Layer Address option and
        Prefix Information options (scapy's or :class:`~mip6lab.wire.nd_codec.
        PrefixInformation`, the same field names)."""
        require_hop_limit_255(hop_limit, "RA")
        if not src.is_link_local:
            raise RemoteProtocolError(f"RA from {src}, not a link-local address")
        attachment = self.attachments.get(iface.name)
        if attachment is None:
            return
        if lladdr is not None:
            self.node.neighbors.learn(iface, src, lladdr)
        self._default_router(iface, attachment, src, router_lifetime)
        first = not attachment.seen_ra
        attachment.seen_ra = True
        for info in prefixes:
            self._prefix(iface, attachment, info)
        if first:
            self._detect_movement(iface, attachment, src)

    def _default_router(self, iface: Interface, attachment: Attachment,
                        router: ipaddress.IPv6Address, lifetime: int) -> None:
        if lifetime == 0:
            if attachment.router == router:
                self.node.routes.remove(origin="ra", interface=iface.name)
                attachment.router = None
                self.node.announce("slaac", f"router {router} withdrew as default router")
            return
        if attachment.router != router:
            self.node.routes.remove(origin="ra", interface=iface.name)
            self.node.routes.add("::/0", iface.name, router, origin="ra")
            attachment.router = router
            if self.node.keeps_state():
                self.node.announce("slaac", f"default router {router} on {iface.name}",
                                   interface=iface.name, router=str(router))

    def _prefix(self, iface: Interface, attachment: Attachment, info: Packet) -> None:
        if info.prefixlen > 128:  # bad input: the option is ignored, the RA is not
            self.node.announce("slaac", f"prefix {info.prefix}/{info.prefixlen} ignored: "
                               "prefix length over 128")
            return
        prefix = _prefix_network(info.prefix, info.prefixlen)
        if prefix.is_link_local or not info.A:
            return
        if info.preferredlifetime > info.validlifetime:
            return  # RFC 4862 §5.5.3 c): silently ignored
        if prefix.prefixlen != 64:
            self.node.announce("slaac", f"prefix {prefix} ignored: SLAAC needs a /64")
            return
        attachment.prefixes.add(prefix)
        address = address_in_prefix(prefix, iface.mac)
        now = self.node.sim.now_us
        valid = _deadline(now, info.validlifetime)
        preferred = _deadline(now, info.preferredlifetime)
        existing = iface.find6(address)
        if existing is not None:
            if info.validlifetime == 0:
                self._remove(iface, existing, "valid lifetime 0")
                return
            existing.valid_until_us, existing.preferred_until_us = valid, preferred
            address = existing.ip    # the entry's own object: one per address, not per RA
        elif info.validlifetime > 0:
            entry = Address6(ipaddress.IPv6Interface((int(address), 64)), "slaac", valid,
                             preferred)
            iface.addresses6.append(entry)
            address = entry.ip
            if self.node.keeps_state():
                self.node.announce("slaac", f"formed {address} from {prefix} on "
                                   f"{iface.name}", interface=iface.name,
                                   address=str(address), prefix=str(prefix))
            if self.announce_addresses:
                self._announce_address(iface, address, MAX_NEIGHBOR_ADVERTISEMENT)
            for listener in list(self.on_address):
                listener(iface, address, True)
        else:
            return
        self._arm_expiry(iface, address, valid)

    def _announce_address(self, iface: Interface, address: ipaddress.IPv6Address,
                          left: int) -> None:
        """Gratuitous Neighbor Discovery (RFC 9131 §3.1): an unsolicited Neighbor
        Advertisement of a new address to the all-routers group, so that the router has
        a neighbour cache entry before a packet for the address arrives -- otherwise that
        packet waits on address resolution, whose three solicitations a lossy link may
        all lose (RFC 4861 §7.2.2: then it is dropped). Override clear: it must not take
        an address from its owner. Sent ``left`` times, RetransTimer apart (RFC 4861
        §7.2.6's rule for unsolicited advertisements)."""
        if left <= 0 or self.attachments.get(iface.name) is None \
                or iface.find6(address) is None:
            return
        self.node.send_on(iface, neighbor_advertisement(address, ALL_ROUTERS, address,
                                                        iface.mac))
        if left > 1:
            self.node.sim.call_later(RETRANS_TIMER, self._announce_address, iface, address,
                                     left - 1, label=(self.node.name, "NA", address))

    def _arm_expiry(self, iface: Interface, address: ipaddress.IPv6Address,
                    valid_until_us: int | None) -> None:
        key = (iface.name, address)
        old = self._expiry.pop(key, None)
        if old:
            old.cancel()
        if valid_until_us is not None:
            self._expiry[key] = self.node.sim.call_at(
                valid_until_us, self._expire, iface, address,
                label=(self.node.name, address, "expires"))

    def _expire(self, iface: Interface, address: ipaddress.IPv6Address) -> None:
        entry = iface.find6(address)
        if entry is not None and entry.valid_until_us is not None \
                and entry.valid_until_us <= self.node.sim.now_us:
            self._remove(iface, entry, "valid lifetime ended")

    def _remove(self, iface: Interface, entry: Address6, why: str) -> None:
        iface.remove_address(entry.ip)
        timer = self._expiry.pop((iface.name, entry.ip), None)
        if timer:
            timer.cancel()
        self.node.announce("slaac", f"removed {entry.ip} from {iface.name}: {why}",
                           interface=iface.name, address=str(entry.ip))
        for listener in list(self.on_address):
            listener(iface, entry.ip, False)

    def _detect_movement(self, iface: Interface, attachment: Attachment,
                         router: ipaddress.IPv6Address) -> None:
        old = self.previous_prefixes.get(iface.name, frozenset())
        movement = Movement(iface.name, attachment.link, old,
                            frozenset(attachment.prefixes), router)
        if self.node.keeps_state():
            self._announce_movement(iface, movement)
        for listener in list(self.on_movement):
            listener(movement)

    def _announce_movement(self, iface: Interface, movement: Movement) -> None:
        """The trace's ``movement`` event: moved, back, or first attached."""
        old = movement.old_prefixes
        if movement.moved:
            summary = (f"movement detected on {iface.name}: left "
                       f"{_fmt(old)}, now on {_fmt(movement.new_prefixes)}")
        elif old:
            summary = f"{iface.name} is back on {_fmt(movement.new_prefixes)} (no movement)"
        else:
            summary = f"{iface.name} attached to {_fmt(movement.new_prefixes)}"
        self.node.announce("movement", summary, interface=iface.name,
                           moved=movement.moved, old=sorted(map(str, old)),
                           new=sorted(map(str, movement.new_prefixes)))


class Host(Node):
    """An end host: a node that configures itself from Router Advertisements."""

    kind = "host"
    reads_ra_bytes = True

    def __init__(self, lab, name: str, **slaac_options) -> None:
        super().__init__(lab, name)
        self.slaac = Slaac(self, **slaac_options)

    def receive_ra_message(self, iface: Interface, message) -> None:
        self.slaac.receive_ra_fields(iface, packed_address(message.source),
                                     message.hop_limit, message.router_lifetime,
                                     message.source_lladdr, message.prefixes)

    def receive_other_icmpv6(self, iface: Interface, ip6: IPv6, icmp: Packet) -> None:
        if isinstance(icmp, ICMPv6ND_RA):
            self.slaac.receive_ra(iface, ip6, icmp)
        elif isinstance(icmp, ICMPv6ND_RS):
            return  # hosts ignore solicitations (RFC 4861 §6.2.6 is for routers)
        else:
            super().receive_other_icmpv6(iface, ip6, icmp)


def _prefix_network(prefix: str, length: int) -> ipaddress.IPv6Network:
    """The network of a Prefix Information option's prefix (text, as scapy gives it) and
    length: one shared object per prefix (:func:`mip6lab.addresses.network`), as every
    host of a link reads the same prefix from every RA."""
    return network(f"{prefix}/{length}")


def _deadline(now_us: int, lifetime: int) -> int | None:
    return None if lifetime == INFINITY_LIFETIME else now_us + seconds_to_us(lifetime)


def _fmt(prefixes: Prefixes) -> str:
    return ", ".join(sorted(map(str, prefixes))) or "-"
