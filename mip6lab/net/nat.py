"""NAT44 with address and port translation (NAPT), the box DSMIP6 must get through.

Behaviour, in the vocabulary of RFC 4787 (NAT behavioural requirements for UDP):

- **Mapping** is endpoint-independent (REQ-1): one inside (address, port) gets one
  outside port, whatever remote endpoint it talks to. ICMP echo is mapped by its
  identifier, as RFC 5508 §3.1 describes.
- **Filtering** is configurable (REQ-8): ``"endpoint-independent"``,
  ``"address-dependent"`` or ``"address-and-port-dependent"`` (the default, the
  strictest): an inbound packet passes only from a remote endpoint the mapping has sent to.
- **Mapping timeout** is configurable (REQ-5 asks for at least 2 minutes; a lab wants
  shorter to show a mapping expire); outbound packets refresh it (REQ-6), inbound ones
  only if ``refresh_on_inbound`` is set.
- **Rebinding**: :meth:`Nat44.rebind` gives a mapping a new outside port at once, as a
  NAT that restarted or ran out of ports would. The old port stops working; the peer
  sees the same inside host arrive from a new port. That is the event DSMIP6 (RFC 5555
  §4.2) and IKEv2 NAT-T (RFC 7296 §2.23) must recover from.

Packets of protocols NAPT cannot map (ESP, protocol 50, among them -- the reason
RFC 3948 exists) are dropped with that reason. Translation happens in the router's
post-routing hook (source, outbound) and pre-routing hook (destination, inbound); each
mapping's creation, refresh-less expiry and rebinding is a ``state`` event of module
``nat``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from scapy.layers.inet import ICMP, IP, TCP, UDP

from .frames import ETH_P_IP
from .node import _dissect
from .interface import Interface
from .router import Router
from .sim import ScheduledCall, seconds_to_us

FILTERING = ("endpoint-independent", "address-dependent", "address-and-port-dependent")
PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp"}


@dataclass
class NatMapping:
    """One translation: inside (address, port) <-> outside port, per protocol."""

    protocol: str
    inside: tuple[ipaddress.IPv4Address, int]
    outside_port: int
    created_us: int
    last_used_us: int
    remotes: set[tuple[ipaddress.IPv4Address, int]] = field(default_factory=set)
    packets_out: int = 0
    packets_in: int = 0
    timer: ScheduledCall | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict:
        return {"protocol": self.protocol, "inside": f"{self.inside[0]}:{self.inside[1]}",
                "outside_port": self.outside_port, "packets_out": self.packets_out,
                "packets_in": self.packets_in}


class Nat44:
    """The NAPT function of a router: translation tables and the two hooks."""

    def __init__(self, router: Router, outside: str, *, mapping_timeout: float = 120.0,
                 filtering: str = "address-and-port-dependent",
                 refresh_on_inbound: bool = False,
                 port_range: tuple[int, int] = (1024, 65535)) -> None:
        if mapping_timeout <= 0:
            raise ValueError("mapping_timeout must be positive")
        if filtering not in FILTERING:
            raise ValueError(f"filtering is one of {FILTERING}")
        self.router = router
        self.outside = outside
        self.mapping_timeout = mapping_timeout
        self.filtering = filtering
        self.refresh_on_inbound = refresh_on_inbound
        self.port_range = port_range
        self.mappings: dict[tuple[str, ipaddress.IPv4Address, int], NatMapping] = {}
        self.by_port: dict[tuple[str, int], NatMapping] = {}
        self.stats = {"mappings": 0, "expired": 0, "rebound": 0, "translated_out": 0,
                      "translated_in": 0, "dropped_in": 0, "dropped_out": 0}
        router.postrouting.append(self._outbound)
        router.prerouting.append(self._inbound)

    @property
    def public_address(self) -> ipaddress.IPv4Address:
        addresses = self.router.interfaces[self.outside].ipv4()
        if not addresses:
            raise ValueError(f"NAT outside interface {self.outside} has no IPv4 address")
        return addresses[0]

    def table(self) -> list[dict]:
        """The translation table, for display."""
        return [m.as_dict() for m in self.mappings.values()]

    # -- hooks -----------------------------------------------------------------------------

    def _outbound(self, l3: bytes, iface: Interface) -> bytes | None:
        """Post-routing: translate the source of IPv4 leaving by the outside interface."""
        if iface.name != self.outside or l3[0] >> 4 != 4:
            return l3
        ip = _dissect(IP, l3, "IPv4 packet")
        public = self.public_address
        if ipaddress.IPv4Address(ip.src) == public:
            return l3  # the router's own traffic
        protocol, port = _endpoint(ip, "src")
        if protocol is None:
            self.stats["dropped_out"] += 1
            self.router.drop("nat", f"{_untranslatable(ip)} cannot be translated by NAPT",
                             l3, ethertype=ETH_P_IP)
            return None
        inside = (ipaddress.IPv4Address(ip.src), port)
        mapping = self.mappings.get((protocol, *inside))
        if mapping is None:
            mapping = self._create(protocol, inside)
        now = self.router.sim.now_us
        mapping.last_used_us = now
        mapping.packets_out += 1
        # An ICMP query has no remote port: the reply carries the identifier the NAT put
        # in the request (RFC 5508 §3.1), which is what the inbound filter compares.
        remote_port = mapping.outside_port if protocol == "icmp" else _endpoint(ip, "dst")[1]
        mapping.remotes.add((ipaddress.IPv4Address(ip.dst), remote_port))
        self.stats["translated_out"] += 1
        ip.src = str(public)
        _set_port(ip, "src", mapping.outside_port)
        return _rebuilt(ip)

    def _inbound(self, l3: bytes, iface: Interface) -> bytes | None:
        """Pre-routing: translate the destination of IPv4 arriving at the public address."""
        if iface.name != self.outside or l3[0] >> 4 != 4:
            return l3
        ip = _dissect(IP, l3, "IPv4 packet")
        if ipaddress.IPv4Address(ip.dst) != self.public_address:
            return l3
        protocol, port = _endpoint(ip, "dst")
        mapping = self.by_port.get((protocol, port)) if protocol else None
        if mapping is None:
            if protocol == "icmp" and ip[ICMP].type == 8 and not (ip.frag or ip.flags.MF):
                return l3  # an echo request to the router itself
            self.stats["dropped_in"] += 1
            self.router.drop("nat", f"no NAT mapping for {protocol or ip.proto}/{port}", l3,
                             ethertype=ETH_P_IP)
            return None
        remote = (ipaddress.IPv4Address(ip.src), _endpoint(ip, "src")[1])
        if not self._filter_allows(mapping, remote):
            self.stats["dropped_in"] += 1
            self.router.drop("nat", f"filtered: {remote[0]}:{remote[1]} was never "
                             f"contacted from {mapping.outside_port}", l3, ethertype=ETH_P_IP)
            return None
        mapping.packets_in += 1
        if self.refresh_on_inbound:
            mapping.last_used_us = self.router.sim.now_us
        self.stats["translated_in"] += 1
        ip.dst = str(mapping.inside[0])
        _set_port(ip, "dst", mapping.inside[1])
        return _rebuilt(ip)

    def _filter_allows(self, mapping: NatMapping,
                       remote: tuple[ipaddress.IPv4Address, int]) -> bool:
        if self.filtering == "endpoint-independent":
            return True
        if self.filtering == "address-dependent":
            return any(addr == remote[0] for addr, _ in mapping.remotes)
        return remote in mapping.remotes

    # -- mappings --------------------------------------------------------------------------

    def _free_port(self, protocol: str) -> int:
        lo, hi = self.port_range
        for _ in range(hi - lo + 1):
            port = self.router.sim.random.randint(lo, hi)
            if (protocol, port) not in self.by_port:
                return port
        raise RuntimeError("NAT port range exhausted")

    def _create(self, protocol: str, inside: tuple[ipaddress.IPv4Address, int]) -> NatMapping:
        now = self.router.sim.now_us
        mapping = NatMapping(protocol, inside, self._free_port(protocol), now, now)
        self.mappings[(protocol, *inside)] = mapping
        self.by_port[(protocol, mapping.outside_port)] = mapping
        self.stats["mappings"] += 1
        self._arm(mapping)
        self.router.announce("nat", f"mapping {protocol} {inside[0]}:{inside[1]} -> "
                             f"{self.public_address}:{mapping.outside_port}", **mapping.as_dict())
        return mapping

    def _arm(self, mapping: NatMapping) -> None:
        if mapping.timer:
            mapping.timer.cancel()
        deadline = mapping.last_used_us + seconds_to_us(self.mapping_timeout)
        mapping.timer = self.router.sim.call_at(deadline, self._check_expiry, mapping,
                                                label=f"{self.router.name} NAT timeout")

    def _check_expiry(self, mapping: NatMapping) -> None:
        if self.mappings.get((mapping.protocol, *mapping.inside)) is not mapping:
            return
        idle_us = self.router.sim.now_us - mapping.last_used_us
        if idle_us < seconds_to_us(self.mapping_timeout):
            self._arm(mapping)  # used since the timer was set: wait for the new deadline
            return
        self._remove(mapping)
        self.stats["expired"] += 1
        self.router.announce("nat", f"mapping {mapping.protocol} {mapping.inside[0]}:"
                             f"{mapping.inside[1]} -> :{mapping.outside_port} expired after "
                             f"{self.mapping_timeout:g} s idle", **mapping.as_dict())

    def _remove(self, mapping: NatMapping) -> None:
        del self.mappings[(mapping.protocol, *mapping.inside)]
        del self.by_port[(mapping.protocol, mapping.outside_port)]
        if mapping.timer:
            mapping.timer.cancel()

    def rebind(self, inside: tuple[str, int] | None = None,
               protocol: str = "udp") -> list[tuple[int, int]]:
        """Give mappings new outside ports now; ``inside=None`` rebinds all of them.

        Returns (old port, new port) pairs.
        """
        changed = []
        for mapping in list(self.mappings.values()):
            if mapping.protocol != protocol:
                continue
            if inside is not None and mapping.inside != (ipaddress.IPv4Address(inside[0]),
                                                         inside[1]):
                continue
            old = mapping.outside_port
            del self.by_port[(protocol, old)]
            mapping.outside_port = self._free_port(protocol)
            mapping.remotes.clear()
            self.by_port[(protocol, mapping.outside_port)] = mapping
            self.stats["rebound"] += 1
            changed.append((old, mapping.outside_port))
            self.router.announce("nat", f"mapping {protocol} {mapping.inside[0]}:"
                                 f"{mapping.inside[1]} rebound: outside port {old} -> "
                                 f"{mapping.outside_port}", old_port=old,
                                 **mapping.as_dict())
        return changed


class NatRouter(Router):
    """A router whose ``outside`` interface hides the inside behind one IPv4 address."""

    kind = "nat"

    def __init__(self, lab, name: str, outside: str = "eth1", **nat_options) -> None:
        super().__init__(lab, name)
        self.nat = Nat44(self, outside, **nat_options)


def _endpoint(ip: IP, which: str) -> tuple[str | None, int]:
    """(protocol name, port or ICMP echo identifier) of one side of a packet."""
    protocol = PROTOCOL_NAMES.get(ip.proto)
    if ip.frag or ip.flags.MF:
        return None, 0  # a fragment: no reassembly here, so no port to translate
    if protocol in ("udp", "tcp"):
        layer = ip.getlayer(UDP if protocol == "udp" else TCP)
        if layer is None:
            return None, 0  # truncated transport header
        return protocol, layer.sport if which == "src" else layer.dport
    if protocol == "icmp":
        icmp = ip.getlayer(ICMP)
        if icmp is not None and icmp.type in (0, 8):
            return protocol, icmp.id
    return None, 0


def _untranslatable(ip: IP) -> str:
    """What a packet that :func:`_endpoint` cannot map is, for the drop reason."""
    if ip.frag or ip.flags.MF:
        return "an IPv4 fragment"
    if ip.proto in (6, 17) and ip.getlayer(UDP if ip.proto == 17 else TCP) is None:
        return f"a truncated {PROTOCOL_NAMES[ip.proto].upper()} header"
    if ip.proto == 1 and ip.getlayer(ICMP) is not None:
        return f"ICMP type {ip[ICMP].type}"
    return f"protocol {ip.proto}"


def _set_port(ip: IP, which: str, port: int) -> None:
    if ip.proto == 1:
        ip[ICMP].id = port
        del ip[ICMP].chksum
        return
    layer = ip[UDP] if ip.proto == 17 else ip[TCP]
    setattr(layer, "sport" if which == "src" else "dport", port)
    if ip.proto == 17 and layer.chksum == 0:
        return  # RFC 768: no checksum stays no checksum
    del layer.chksum


def _rebuilt(ip: IP) -> bytes:
    del ip.chksum
    return bytes(ip)
