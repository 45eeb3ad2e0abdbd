"""IPsec processing on a node: RFC 4301 §5.1 outbound and §5.2 inbound.

:class:`IPsecStack` gives a :class:`~mip6lab.net.node.Node` its SPD, SAD, PAD and key
engine, and sits in its packet path:

Outbound (every packet the node sends or forwards, before the route lookup): the SPD
entry that applies decides. BYPASS sends it as it is; DISCARD drops it; PROTECT looks
for a mature SA made for the entry (by reqid). None yet: the key engine sends an
ACQUIRE to the registered key managers and the packet is dropped (level "require") or
sent in the clear (level "use"). Found: ESP is applied and the result -- a longer packet
in transport mode, a new outer packet in tunnel mode -- goes on to routing.

Inbound (every packet delivered to the node): ESP, direct or in UDP 4500, is processed
(:func:`~mip6lab.ipsec.esp.decapsulate`); a refusal is a drop with its RFC reason and
counted on the SA. What comes out must match a PROTECT entry of the SA's reqid (§5.2
step 4: "the packet matches the policy of the SA it arrived on") or it is dropped naming
the rule it did match. A tunnel-mode inner packet then enters the node as if received,
already checked. An unprotected packet is looked up too: a PROTECT entry means it should
have come protected, so it is dropped with a trace event naming that rule.

Link-scoped control traffic that the node sends on an explicit interface (Neighbor
Discovery, router solicitations) does not go through the SPD: like most stacks we let
ND through, or no SA could ever be reached.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6

from ..errors import RemoteProtocolError
from ..net.sim import ScheduledCall, seconds_to_us
from .esp import NAT_T_PORT, EspError, decapsulate, encapsulate, locate_esp
from .keyengine import KeyEngine, KeyMessage
from .pad import PeerAuthorizationDatabase
from .sad import SaExhausted, SecurityAssociation, SecurityAssociationDatabase
from .selectors import packet_selectors
from .spd import BYPASS, DISCARD, PROTECT, SecurityPolicy, SecurityPolicyDatabase

if TYPE_CHECKING:
    from ..net.interface import Interface
    from ..net.node import Node

ACQUIRE_HOLDDOWN = 1.0   # seconds between two ACQUIREs for the same policy


class IPsecStack:
    """The IPsec subsystem of one node."""

    # slots, not a dict: every mobile node has one
    __slots__ = ("node", "sad", "spd", "pad", "engine", "stats", "_keepalive",
                 "_last_acquire", "_timers", "_inner_checked", "last_input")

    def __init__(self, node: Node, default_action: str = BYPASS) -> None:
        self.node = node
        self.sad = SecurityAssociationDatabase()
        self.spd = SecurityPolicyDatabase(default_action)
        self.pad = PeerAuthorizationDatabase()
        # bound methods, not closures: a mobile node's stack is one of thousands
        self.engine = KeyEngine(node.name, self.sad, self.spd, self._now_us,
                                self._random_spi, self._trace_seam)
        self.engine.on_sa_added.append(self._arm_lifetimes)
        self.engine.keeps = node.trace.keeps
        self.engine.count = node.trace.count
        self.stats = {"protected": 0, "decapsulated": 0, "bypassed": 0, "discarded": 0,
                      "dropped_in": 0, "acquires": 0, "keepalives": 0,
                      "keepalives_sent": 0}
        self._keepalive: ScheduledCall | None = None
        # made at the first ACQUIRE and the first SA with a lifetime: most of a home
        # agent's thousands of mobile nodes never send an ACQUIRE, nor set a lifetime
        self._last_acquire: dict[int, int] | None = None
        self._timers: dict[int, list[ScheduledCall]] | None = None
        self._inner_checked = False
        # the SA the packet being delivered came through (None: it came in the clear):
        # RFC 4877 §4.2 wants the home agent to know which identity protected a BU
        self.last_input: SecurityAssociation | None = None
        node.ipsec = self

    def _now_us(self) -> int:
        return self.node.sim.now_us

    def _random_spi(self) -> int:
        return self.node.sim.random.randint(0x100, 0xFFFFFFFF)

    # -- trace -----------------------------------------------------------------------------

    def _trace_seam(self, kind: str, summary: str, **data: Any) -> None:
        self.node.trace.emit(self.node.name, "keyengine", kind, summary, **data)

    def _event(self, summary: str | None, **data: Any) -> None:
        self.node.trace.emit(self.node.name, "ipsec", "state", summary, **data)

    def _drop(self, reason: str, packet: bytes, sa: SecurityAssociation | None = None) -> None:
        self.node.drop("ipsec", reason, packet,
                       ethertype=0x86DD if packet[:1] and packet[0] >> 4 == 6 else 0x0800)

    # -- outbound (RFC 4301 §5.1) ----------------------------------------------------------

    def output(self, packet: bytes) -> list[bytes] | None:
        """Packets to route instead of ``packet`` (the same, or protected); None: dropped."""
        try:
            selectors = packet_selectors(packet)
        except RemoteProtocolError as exc:
            self._drop(f"cannot read selectors: {exc.reason}", packet)
            return None
        policy = self.spd.lookup(selectors, outbound=True)
        action = policy.action if policy else self.spd.default_action
        if action == BYPASS:
            self.stats["bypassed"] += 1
            return [packet]
        if action == DISCARD:
            self.stats["discarded"] += 1
            self._drop(f"SPD says DISCARD ({_rule(policy)})", packet)
            return None
        assert policy is not None and policy.template is not None
        template = policy.template
        if template.mode == "tunnel":
            sa = self.sad.outbound_for(template.reqid, template.tunnel_remote)
        else:   # a mobility SA is the home address's (RFC 4877), others the wire's
            sa = self.sad.outbound_for(template.reqid, selectors.dst) or \
                (self.sad.outbound_for(template.reqid, selectors.wire_dst)
                 if selectors.wire_dst else None)
        sa = sa or self.sad.outbound_for(template.reqid)
        if sa is None:
            self._acquire(policy, selectors)
            if template.level == "use":
                return [packet]
            self._drop(f"no SA yet for {_rule(policy)}: ACQUIRE sent", packet)
            return None
        iv = self.node.sim.random.randbytes(sa.cipher.spec.iv_size)
        try:
            protected = encapsulate(sa, packet, iv)
        except SaExhausted as exc:
            self._drop(str(exc), packet)
            return None
        self.stats["protected"] += 1
        self._check_lifetime(sa)
        # counted at every trace level, summarized only where it is kept
        self._event(f"protected with SA 0x{sa.spi:08x} ({sa.mode}, {sa.suite}) by "
                    f"{_rule(policy)}" if self.node.trace.keeps("state") else None,
                    spi=sa.spi, policy=policy.index)
        return [protected]

    def _acquire(self, policy: SecurityPolicy, selectors) -> None:
        now = self.node.sim.now_us
        if self._last_acquire is None:
            self._last_acquire = {}
        last = self._last_acquire.get(policy.index)
        if last is not None and now - last < seconds_to_us(ACQUIRE_HOLDDOWN):
            return
        self._last_acquire[policy.index] = now
        self.stats["acquires"] += 1
        template = policy.template
        src = template.tunnel_local if template.mode == "tunnel" else selectors.src
        dst = template.tunnel_remote if template.mode == "tunnel" else selectors.dst
        self.engine.notify(KeyMessage("ACQUIRE", policy=policy, src=src, dst=dst),
                           only_registered=True)

    # -- inbound (RFC 4301 §5.2) -----------------------------------------------------------

    def input(self, iface: Interface, packet: bytes) -> bytes | None:
        """The packet to deliver locally (as it is, or decrypted); None: consumed."""
        if self._inner_checked:      # a tunnel's inner packet, checked on the way out
            self._inner_checked = False
            return packet
        self.last_input = None
        if _plainly_clear(packet):     # most packets: no ESP walk, no EspError raised
            if _is_neighbor_discovery(packet):
                return packet
            return self._input_clear(packet)
        try:
            locate_esp(packet)
            is_esp = True
        except EspError as exc:
            is_esp = False
            if "keepalive" in exc.reason:
                self.stats["keepalives"] += 1
                self._event("NAT-keepalive received (RFC 3948 §2.3)")
                return None
        except RemoteProtocolError as exc:
            self._drop(exc.reason, packet)
            return None
        if is_esp:
            return self._input_esp(iface, packet)
        if _is_neighbor_discovery(packet):
            return packet  # as on output: ND is never subject to the SPD here
        return self._input_clear(packet)

    def _input_esp(self, iface: Interface, packet: bytes) -> bytes | None:
        try:
            result = decapsulate(self.sad, packet, self.node.sim.now_us)
        except RemoteProtocolError as exc:
            self.stats["dropped_in"] += 1
            self._drop(exc.reason, packet)
            return None
        sa = result.sa
        self._check_lifetime(sa)
        inner = result.packet
        try:
            selectors = packet_selectors(inner)
        except RemoteProtocolError as exc:
            self._drop(f"decrypted packet unreadable: {exc.reason}", packet)
            return None
        policy = self.spd.lookup(selectors, outbound=False)
        if policy is None or policy.action != PROTECT or policy.template is None \
                or policy.template.reqid != sa.reqid:
            self.stats["dropped_in"] += 1
            sa.count_error("policy mismatch")
            self._drop(f"arrived on SA 0x{sa.spi:08x} (reqid {sa.reqid}) but matches "
                       f"{_rule(policy)} (RFC 4301 §5.2 step 4)", inner)
            return None
        self.stats["decapsulated"] += 1
        self._event(f"ESP from SA 0x{sa.spi:08x} ({sa.mode}) accepted by {_rule(policy)}"
                    if self.node.trace.keeps("state") else None,
                    spi=sa.spi, policy=policy.index)
        self.last_input = sa
        if sa.mode == "tunnel":
            self._inner_checked = True
            try:
                self.node.receive_ip(iface, inner)
            finally:       # the inner packet may be refused: the mark must not outlive it
                self._inner_checked = False
            return None
        return inner

    def _input_clear(self, packet: bytes) -> bytes | None:
        try:
            selectors = packet_selectors(packet)
        except RemoteProtocolError as exc:
            self._drop(exc.reason, packet)
            return None
        policy = self.spd.lookup(selectors, outbound=False)
        action = policy.action if policy else self.spd.default_action
        if action == BYPASS:
            return packet
        self.stats["dropped_in"] += 1
        if action == PROTECT:
            self._drop(f"unprotected packet, but {_rule(policy)} requires ESP", packet)
        else:
            self._drop(f"SPD says DISCARD ({_rule(policy)})", packet)
        return None

    # -- NAT keepalives (RFC 3948 §2.3) ---------------------------------------------------

    def start_keepalives(self, src: str, dst: str, sport: int = NAT_T_PORT,
                         dport: int = NAT_T_PORT, interval: float = 20.0) -> ScheduledCall:
        """Send a NAT-keepalive (one 0xFF byte in the ESP-in-UDP ports) every ``interval``
        seconds, so the NAT in front of us keeps the mapping; returns the first timer.
        Keepalives are never themselves protected."""
        src_ip, dst_ip = ipaddress.ip_address(src), ipaddress.ip_address(dst)

        def send() -> None:
            ip = IPv6(src=str(src_ip), dst=str(dst_ip)) if dst_ip.version == 6 \
                else IP(src=str(src_ip), dst=str(dst_ip))
            udp = UDP(sport=sport, dport=dport) if dst_ip.version == 6 \
                else UDP(sport=sport, dport=dport, chksum=0)  # §2.3: zero over IPv4
            self.node.route_out(bytes(ip / udp / b"\xff"), protect=False)
            self.stats["keepalives_sent"] += 1
            self._keepalive = self.node.sim.call_later(interval, send,
                                                       label=f"{self.node.name} keepalive")

        self._keepalive = self.node.sim.call_later(0, send, label=f"{self.node.name} keepalive")
        return self._keepalive

    def stop_keepalives(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    # -- lifetimes -------------------------------------------------------------------------

    def _arm_lifetimes(self, sa: SecurityAssociation) -> None:
        sim = self.node.sim
        for seconds in (sa.lifetime.soft_seconds, sa.lifetime.hard_seconds):
            if seconds is not None:
                at = sa.created_us + seconds_to_us(seconds)
                if self._timers is None:
                    self._timers = {}
                self._timers.setdefault(id(sa), []).append(
                    sim.call_at(max(at, sim.now_us), self._check_lifetime, sa,
                                label=f"{self.node.name} SA 0x{sa.spi:08x} lifetime"))

    def _check_lifetime(self, sa: SecurityAssociation) -> None:
        kind = sa.lifetime_reached(self.node.sim.now_us)
        if kind is None:
            return
        if kind == "hard":
            self.sad.remove(sa)
            for timer in self._timers.pop(id(sa), []) if self._timers else ():
                timer.cancel()
        self.engine.notify(KeyMessage("EXPIRE", sa=sa, lifetime_kind=kind))

    # -- display ---------------------------------------------------------------------------

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """SPD, SAD and PAD as rows, for a notebook."""
        return {"spd": self.spd.table(), "sad": self.sad.table(), "pad": self.pad.table()}


def _rule(policy: SecurityPolicy | None) -> str:
    return policy.describe() if policy is not None else "no SPD entry (default action)"


#: next headers after which an IPv6 packet may still hold ESP (extensions, ESP, UDP)
_MAYBE_ESP = frozenset((0, 43, 44, 60, 50, 17))


def _plainly_clear(packet: bytes) -> bool:
    """Whether an IPv6 packet is clearly not ESP from its fixed header alone: its next
    header is no extension, not ESP (RFC 4303 §2), not UDP to port 4500 (RFC 3948 §2.1).
    What :func:`~.esp.locate_esp` would refuse with an EspError, without walking the
    packet or raising; False means "ask locate_esp" (IPv4, extensions, ESP, NAT-T)."""
    if len(packet) < 40 or packet[0] >> 4 != 6:
        return False
    nh = packet[6]
    if nh == 17:
        return len(packet) < 48 or packet[42] != 0x11 or packet[43] != 0x94   # 4500
    return nh not in _MAYBE_ESP


def _is_neighbor_discovery(packet: bytes) -> bool:
    """An ICMPv6 RS, RA, NS, NA or Redirect (types 133-137) right after the IPv6 header."""
    return packet[0] >> 4 == 6 and packet[6] == 58 and len(packet) > 40 \
        and 133 <= packet[40] <= 137
