"""Routers: forwarding plus Router Advertisements (RFC 4861 §6.2, RFC 6275 §7.3-7.5).

A router forwards between its interfaces by its routing table (static routes, plus the
connected prefixes) and, on the interfaces where it is told to, sends unsolicited RAs
at random intervals in [MinRtrAdvInterval, MaxRtrAdvInterval] and answers a Router
Solicitation after a random delay of up to MAX_RA_DELAY_TIME. Mobile IPv6 lets those
intervals go far below RFC 4861's limits so that a mobile node notices movement quickly
(RFC 6275 §7.5); our defaults are RFC 4861's, a scenario sets faster ones.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from scapy.layers.inet6 import (
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptAdvInterval,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
)
from scapy.packet import Packet

from .frames import ETH_P_IPV6
from .interface import Interface
from .node import Node, require_hop_limit_255
from .sim import ScheduledCall, seconds_to_us

MAX_RA_DELAY_TIME = 0.5   # RFC 4861 §10


@dataclass
class AdvertisementConfig:
    """What a router advertises on one interface (RFC 4861 §6.2.1 variables)."""

    prefixes: list[ipaddress.IPv6Network]
    min_interval: float = 200.0          # MinRtrAdvInterval
    max_interval: float = 600.0          # MaxRtrAdvInterval
    router_lifetime: int = 1800          # AdvDefaultLifetime, seconds
    valid_lifetime: int = 86400          # AdvValidLifetime
    preferred_lifetime: int = 14400      # AdvPreferredLifetime
    home_agent: bool = False             # the H bit (RFC 6275 §7.1)
    interval_option: bool = True         # Advertisement Interval option (RFC 6275 §7.3)
    timer: ScheduledCall | None = field(default=None, repr=False)
    last_sent_us: int | None = field(default=None, repr=False)


class Router(Node):
    """A forwarding node that can advertise prefixes."""

    kind = "router"

    def __init__(self, lab, name: str) -> None:
        super().__init__(lab, name)
        self.forwarding = True
        self.advertising: dict[str, AdvertisementConfig] = {}
        #: interface -> (what the RA was built from, its bytes): an RA that would come out
        #: the same is not built again by scapy (it was most of a long run's time)
        self._ra_built: dict[str, tuple[tuple, bytes]] = {}

    def advertise(self, ifname: str, prefixes: list[str], *,
                  interval: tuple[float, float] = (200.0, 600.0), **options) -> None:
        """Send RAs for ``prefixes`` on ``ifname`` every ``interval`` seconds (min, max)."""
        lo, hi = interval
        if not 0 < lo <= hi:
            raise ValueError("interval must be (min, max) with 0 < min <= max")
        config = AdvertisementConfig([ipaddress.IPv6Network(p) for p in prefixes],
                                     lo, hi, **options)
        self.advertising[ifname] = config
        self._schedule(ifname, self.sim.random.uniform(0, lo))

    def _schedule(self, ifname: str, delay: float) -> None:
        config = self.advertising[ifname]
        if config.timer is not None:
            config.timer.cancel()
        config.timer = self.sim.call_later(delay, self._periodic, ifname,
                                           label=f"{self.name} RA on {ifname}")

    def _periodic(self, ifname: str) -> None:
        config = self.advertising[ifname]
        self.send_ra(ifname)
        self._schedule(ifname, self.sim.random.uniform(config.min_interval,
                                                       config.max_interval))

    def build_ra(self, iface: Interface, config: AdvertisementConfig) -> Packet:
        ra = (IPv6(src=str(iface.link_local), dst="ff02::1", hlim=255)
              / ICMPv6ND_RA(routerlifetime=config.router_lifetime, H=int(config.home_agent))
              / ICMPv6NDOptSrcLLAddr(lladdr=iface.mac))
        if config.interval_option:
            ra /= ICMPv6NDOptAdvInterval(advint=int(config.max_interval * 1000))
        for prefix in config.prefixes:
            ra /= ICMPv6NDOptPrefixInfo(prefix=str(prefix.network_address),
                                        prefixlen=prefix.prefixlen, L=1, A=1,
                                        validlifetime=config.valid_lifetime,
                                        preferredlifetime=config.preferred_lifetime)
        return ra

    def send_ra(self, ifname: str) -> None:
        iface = self.interfaces[ifname]
        config = self.advertising[ifname]
        if iface.link is None:
            return
        config.last_sent_us = self.sim.now_us
        key = (iface.link_local, iface.mac, tuple(config.prefixes), config.router_lifetime,
               config.home_agent, config.interval_option, config.max_interval,
               config.valid_lifetime, config.preferred_lifetime)
        built = self._ra_built.get(ifname)
        if built is None or built[0] != key:
            built = self._ra_built[ifname] = (key, bytes(self.build_ra(iface, config)))
        self.output(built[1], ifname, ipaddress.IPv6Address("ff02::1"), ETH_P_IPV6)

    def receive_other_icmpv6(self, iface: Interface, ip6: IPv6, icmp: Packet) -> None:
        if isinstance(icmp, ICMPv6ND_RS):
            require_hop_limit_255(ip6.hlim, "RS")
            config = self.advertising.get(iface.name)
            if config is None:
                return
            if ICMPv6NDOptSrcLLAddr in icmp and ip6.src != "::":
                self.neighbors.learn(iface, ipaddress.IPv6Address(ip6.src),
                                     icmp[ICMPv6NDOptSrcLLAddr].lladdr)
            # RFC 4861 §6.2.6: answer after a random delay, never faster than
            # MinRtrAdvInterval after the previous RA (as RFC 6275 §7.5 lets it be low).
            delay = self.sim.random.uniform(0, min(MAX_RA_DELAY_TIME, config.min_interval))
            if config.last_sent_us is not None:
                earliest = config.last_sent_us + seconds_to_us(config.min_interval)
                delay = max(delay, (earliest - self.sim.now_us) / 1e6)
            pending = config.timer
            if pending is None or pending.time_us > self.sim.now_us + seconds_to_us(delay):
                self._schedule(iface.name, delay)
        elif isinstance(icmp, ICMPv6ND_RA):
            return  # routers do not configure themselves from other routers' RAs
        else:
            super().receive_other_icmpv6(iface, ip6, icmp)
