"""The IKE daemon of a node in the in-process network: the driver of :class:`IkeSa`.

It does the I/O the engine may not: binds UDP 500 and 4500 on the node (4500 with the
non-ESP marker, RFC 3948 §2.2), keeps time with the lab's simulator, draws randomness
from the lab's seeded source, and talks to the IPsec subsystem only through the key
engine -- GETSPI for the inbound SPI, UPDATE and ADD for the negotiated SAs, SPDADD for
the child SA's policy (the daemon owns these SPD entries: "the IKE daemon installs them
from its own configuration", one of the two ways the course compares) -- and REGISTERs
for ACQUIRE, so that a packet that needs an SA starts a negotiation.

Each IKE SA's events are turned into trace events (module ``ike``) so the ladder shows
what the exchanges established.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import addresses
from ..errors import RemoteProtocolError
from ..ipsec import (BYPASS, PROTECT, IPsecStack, IPsecTemplate, KeyMessage, MigrateRequest,
                     SecurityAssociation, SecurityPolicy, Selectors)
from ..ipsec.pad import HomeAddressTaken, PeerAuthorizationEntry
from ..net.node import Node, UdpDatagram
from ..net.sim import ScheduledCall
from ..wire.ikev2 import unwrap_udp
from .config import IkeConfig
from .sa import (AddressAssigned, ChildSaDeleted, ChildSaEstablished, ChildSaRekeyed, IkeSa,
                 IkeSaDeleted, IkeSaEstablished, IkeSaFailed, IkeSaMoved, IkeSaRekeyed,
                 MessageDropped, cookie_check)
from .ts import IPPROTO_MH, TrafficSelector

IKE_PORT, NAT_T_PORT = 500, 4500

# Denial-of-service limits of a responder (docs/security.md), each a default of IkeDaemon.
# The course's scenarios stay far below them: one or a few MNs, one IKE SA each.
#: RFC 7296 §2.6: with this many half-open IKE SAs, a new IKE_SA_INIT is answered with a
#: COOKIE and keeps no state. 32 lets a burst of honest MNs (a lab class rebooting at
#: once) in without a cookie round trip, and bounds a spoofed flood to 32 DH computations.
DEFAULT_COOKIE_THRESHOLD = 32
#: Seconds a responder IKE SA may stay half-open (IKE_SA_INIT answered, no IKE_AUTH) before
#: it is dropped: §2.6 leaves "how long to keep state" to the responder; an honest initiator
#: sends IKE_AUTH within one round trip and retransmits for less than this (§2.1).
DEFAULT_HALF_OPEN_TIMEOUT = 30.0
#: IKE SAs (half-open or established) one peer address may hold at this responder; 10
#: leaves room for a few MNs behind one NAT (RFC 3948) and for rekeys in progress.
DEFAULT_MAX_SAS_PER_ADDRESS = 10
#: IKE SAs one authenticated identity may hold at once when unique IDs are off (with them
#: on, a new IKE SA replaces the older ones of its identity, so one is the bound).
DEFAULT_MAX_SAS_PER_IDENTITY = 10

#: The states of a responder IKE SA that has not completed IKE_AUTH (RFC 7296 §2.6's
#: "half-open"): IDLE (its IKE_SA_INIT was refused) and INIT_DONE (answered).
HALF_OPEN_STATES = ("IDLE", "INIT_DONE")


@dataclass(frozen=True)
class ChildSaInstallFailed:
    """What the daemon's listeners hear instead of :class:`ChildSaEstablished` when the
    negotiated child SA cannot be installed (strict policies: an SPDADD refused)."""

    inbound_spi: int
    outbound_spi: int
    mode: str
    reason: str


class IkeDaemon:
    """IKEv2 for one node: initiator towards configured peers, responder for anyone."""

    def __init__(self, node: Node, config: IkeConfig, name: str = "iked",
                 cookie_threshold: int | None = DEFAULT_COOKIE_THRESHOLD,
                 install_virtual_ips: bool = True,
                 install_policies: bool = True, unique_ids: bool = True,
                 strict_policies: bool = False,
                 half_open_timeout: float | None = DEFAULT_HALF_OPEN_TIMEOUT,
                 max_sas_per_address: int | None = DEFAULT_MAX_SAS_PER_ADDRESS,
                 max_sas_per_identity: int | None = DEFAULT_MAX_SAS_PER_IDENTITY) -> None:
        """``node`` and ``config`` as named; the responder's denial-of-service limits
        (docs/security.md; ``None`` turns one off):

        - ``cookie_threshold``: half-open IKE SAs from which a new IKE_SA_INIT must carry
          our COOKIE (RFC 7296 §2.6), stateless until it does;
        - ``half_open_timeout``: seconds after which a responder IKE SA that never
          completed IKE_AUTH is dropped (§2.6 leaves its lifetime to the responder);
        - ``max_sas_per_address``: IKE SAs one peer address may hold; the next
          IKE_SA_INIT from it is dropped silently (as strongSwan's ``block_threshold``);
        - ``max_sas_per_identity``: IKE SAs one authenticated identity may hold (matters
          with ``unique_ids`` off); the next gets AUTHENTICATION_FAILED (§2.21.2).
        """
        self.node = node
        self.config = config
        self.name = name
        self.ipsec = node.ipsec or IPsecStack(node)
        node.ike = self
        self.socket = self.ipsec.engine.open(name)
        self.socket.register("ACQUIRE", "MIGRATE")
        self.socket.on_message(self._key_message)
        self.sas: dict[bytes, IkeSa] = {}      # by initiator SPI
        self.established: list[IkeSa] = []
        self.failures: list[IkeSaFailed] = []
        self._timers: dict[int, ScheduledCall] = {}
        # §2.6: with this many half-open IKE SAs, new initiators must return a cookie
        self.cookie_threshold = cookie_threshold
        self.half_open_timeout = half_open_timeout
        self.max_sas_per_address = max_sas_per_address
        self.max_sas_per_identity = max_sas_per_identity
        self._half_open_timers: dict[int, ScheduledCall] = {}   # by id() of the SA
        # indexes that keep the limits' checks off a walk over every SA (a home agent
        # with ten thousand MNs): the half-open responder SAs, and each peer address's
        # responder SAs (closed ones pruned when the address is looked at)
        self._half_open: dict[int, IkeSa] = {}
        self._by_address: dict[str, list[IkeSa]] = {}
        self.half_open_dropped = 0          # responder SAs dropped by the half-open timeout
        self.refused_by_address = 0         # IKE_SA_INITs dropped by max_sas_per_address
        # an address the peer assigns goes on our interface (a mobility module that
        # manages its home address itself turns this off)
        self.install_virtual_ips = install_virtual_ips
        # SPDADD for each child SA from its traffic selectors ("the IKE daemon installs
        # them from its own configuration"); off when the mobility module owns the SPD
        self.install_policies = install_policies
        # what an SPDADD of ours refused with EEXIST means: by default nothing (the entry
        # someone else wrote protects the same traffic, we go on); strict, the child SA
        # fails, as in a key daemon that cannot install its policy (see _install)
        self.strict_policies = strict_policies
        self.policy_failures: list[ChildSaInstallFailed] = []
        # who else wants the engines' events (a mobility module: RFC 4877's coupling)
        self.listeners: list[Callable[[IkeSa, Any], None]] = []
        # a peer's new IKE SA replaces its older ones (strongSwan's uniqueids=yes, the
        # effect of RFC 7296 §2.4's INITIAL_CONTACT): one set of SAs per identity
        self.unique_ids = unique_ids
        self._by_peer: dict[tuple[str, str], list[IkeSa]] = {}   # responder SAs by peer ID
        self._cookie_secret = self._random(32)
        self.cookies_sent = 0
        # bumped by everything that may change what tables() shows (a recorder's cheap
        # "did anything change?" before it reads the tables again)
        self.changes = 0
        node.bind_udp(IKE_PORT, self._datagram)
        node.bind_udp(NAT_T_PORT, self._datagram)
        # IKE itself must never be caught by the child SAs it creates (RFC 4301 §4.4.1
        # says IKE traffic is BYPASS): two entries, first in the SPD
        for port in (IKE_PORT, NAT_T_PORT):
            self.socket.send(KeyMessage("SPDADD", policy=SecurityPolicy(
                Selectors.make(protocol="udp", local_port=port), BYPASS,
                name=f"ike-bypass-{port}"), ))

    # -- the engine's services -------------------------------------------------------------

    def _random(self, n: int) -> bytes:
        return self.node.sim.random.randbytes(n)

    def _allocate_spi(self, peer: str) -> int:
        reply = self.socket.send(KeyMessage("GETSPI", src=peer, dst=self._local_for(peer)))
        return reply.spi

    def _local_for(self, peer: str) -> str | None:
        """Our address towards ``peer``: the source the routing table would choose, or
        None when there is none (no interface, or no address of the peer's family yet)."""
        address = addresses.address(peer)
        route = self.node.routes.lookup(address)
        iface = self.node.interfaces[route.interface] if route else \
            next(iter(self.node.interfaces.values()), None)
        source = iface.source_for(address) if iface is not None else None
        return addresses.text(source) if source is not None else None

    # -- starting --------------------------------------------------------------------------

    def initiate(self, peer: str, local: str | None = None,
                 config: IkeConfig | None = None) -> IkeSa | None:
        """Start an IKE SA (and its first child SA) with ``peer``, from ``local`` (by
        default the source the routing table picks: RFC 6275 §11.3.2 wants the CoA).

        None, and a trace event, when there is no address to start from (a mobile node
        whose care-of address is gone or not formed yet): an IKE SA needs both ends."""
        local = local or self._local_for(peer)
        if local is None:
            self.node.announce("ike", f"IKE with {peer} not started: no address of ours "
                               "to reach it from", error="no_source")
            return None
        config = config or self.config
        sa = IkeSa(config, True, local, peer, self._random,
                   lambda: self._allocate_spi(peer), self.node.sim.now_us)
        self.sas[sa.spi_i] = sa
        self.changes += 1
        sa.initiate(self.node.sim.now_us)
        self._announce(sa, f"IKE_SA_INIT → {peer}")
        self._pump(sa)
        return sa

    def _key_message(self, message: KeyMessage) -> None:
        if message.type == "MIGRATE" and message.k_bit and message.error is None \
                and message.sender == "kernel":
            self._follow_migrate(message)
            return
        if message.type == "ACQUIRE" and message.sender == "kernel" and message.dst:
            peer = str(message.dst)
            if not any(str(sa.remote) == peer and sa.state != "CLOSED"
                       for sa in self.sas.values()):
                self.initiate(peer)

    # -- I/O -------------------------------------------------------------------------------

    def _datagram(self, datagram: UdpDatagram) -> None:
        self.changes += 1
        data = datagram.payload
        if datagram.dport == NAT_T_PORT:
            data = unwrap_udp(data, NAT_T_PORT)
            if data is None:
                return        # a keepalive or ESP that is not ours to read
        if len(data) < 28:
            self.node.drop("ike", "datagram shorter than an IKE header", None)
            return
        spi_i, spi_r, flags = data[:8], data[8:16], data[19]
        src = addresses.text(datagram.src)
        sa = self.sas.get(spi_i)
        if sa is None:
            if flags & 0x20 or spi_r != bytes(8) or data[18] != 34:
                self.node.drop("ike", f"no IKE SA for SPI {spi_i.hex()}", None)
                return
            if self._under_load():
                try:
                    answer = cookie_check(data, src, self._cookie_secret, 1)
                except RemoteProtocolError as exc:
                    self.node.drop("ike", exc.reason, None)
                    return
                if answer is not None:     # stateless: no SA until the cookie comes back
                    self.cookies_sent += 1
                    self.node.announce("ike", f"under load: COOKIE asked of {datagram.src}")
                    if datagram.dport == NAT_T_PORT:
                        answer = b"\x00\x00\x00\x00" + answer
                    self.node.send_udp(datagram.src, datagram.sport, answer, datagram.dport,
                                       src=datagram.dst)
                    return
            refusal = self._address_limit(src)
            if refusal is not None:
                self.refused_by_address += 1
                self.node.drop("ike", refusal, None)
                return
            sa = IkeSa(self.config, False, addresses.text(datagram.dst), src,
                       self._random, lambda: self._allocate_spi(src),
                       self.node.sim.now_us, datagram.dport, datagram.sport,
                       authorize=self._authorize)
            self.sas[spi_i] = sa
            self._half_open[id(sa)] = sa
            self._by_address.setdefault(src, []).append(sa)
            if self.half_open_timeout is not None:
                self._half_open_timers[id(sa)] = self.node.sim.call_later(
                    self.half_open_timeout, self._expire_half_open, sa,
                    label=f"{self.node.name} IKE half-open timeout")
        sa.receive(data, src, datagram.sport, self.node.sim.now_us,
                   datagram.dport)
        self._pump(sa)

    def _address_limit(self, address: str) -> str | None:
        """Why a new IKE_SA_INIT from ``address`` is refused, or None: the address holds
        ``max_sas_per_address`` responder IKE SAs already (half-open or established).
        RFC 7296 §2.6 asks the responder to bound the state one attacker can make it
        keep; a peer that returns our cookie proves its address, so the bound is per
        address. A spoofer below the cookie threshold can fill an address's quota for at
        most ``half_open_timeout``."""
        limit = self.max_sas_per_address
        if limit is None:
            return None
        live = [sa for sa in self._by_address.get(address, ()) if sa.state != "CLOSED"]
        if live:
            self._by_address[address] = live
        else:
            self._by_address.pop(address, None)
        holding = len(live)
        if holding < limit:
            return None
        return (f"IKE_SA_INIT from {address} dropped: it holds {holding} IKE SAs, "
                f"the limit per address is {limit}")

    def _expire_half_open(self, sa: IkeSa) -> None:
        """The half-open timeout (RFC 7296 §2.6): a responder IKE SA that has not
        completed IKE_AUTH by now is dropped without a message (the peer may not exist:
        a spoofed IKE_SA_INIT); its SPIs are forgotten, so that a late IKE_AUTH finds no
        SA. It holds no child SA and no lease yet, so nothing else is to undo."""
        self._half_open_timers.pop(id(sa), None)
        if sa.state not in HALF_OPEN_STATES:
            return
        self.changes += 1
        sa.state = "CLOSED"
        timer = self._timers.pop(id(sa), None)
        if timer is not None:
            timer.cancel()
        if self.sas.get(sa.spi_i) is sa:
            del self.sas[sa.spi_i]
        self.half_open_dropped += 1
        self._announce(sa, f"half-open IKE SA with {sa.remote} dropped after "
                       f"{self.half_open_timeout:g} s without IKE_AUTH")

    def half_open(self) -> int:
        """How many responder IKE SAs are half-open now (RFC 7296 §2.6)."""
        for key in [k for k, sa in self._half_open.items()
                    if sa.state not in HALF_OPEN_STATES]:
            del self._half_open[key]
        return len(self._half_open)

    def _authorize(self, sa: IkeSa) -> str | None:
        """A responder's admission of an authenticated peer.

        First ``max_sas_per_identity``: one identity holds at most that many IKE SAs
        (with unique IDs on, a new SA replaces its older ones, so they do not count).
        Then ``config.max_identities``: that many distinct identities at most hold IKE SAs
        at once (with one shared PSK, any holder can claim a new identity, and each would
        get a lease and SAs: docs/security.md). A peer that holds an SA already is always
        let in by the second (it re-authenticates)."""
        own = [other for other in self._by_peer.get(sa.peer_id, ())
               if other.state != "CLOSED"]
        per_identity = self.max_sas_per_identity
        if per_identity is not None and not self.unique_ids and len(own) >= per_identity:
            return (f"{sa.peer_identity} refused: it holds {len(own)} IKE SAs, the limit "
                    f"per identity is {per_identity}")
        limit = self.config.max_identities
        if limit is None or sa.peer_id in self._by_peer and any(
                other.state != "CLOSED" for other in self._by_peer[sa.peer_id]):
            return None
        holding = sum(1 for sas in self._by_peer.values()
                      if any(other.state != "CLOSED" for other in sas))
        if holding >= limit:
            return (f"{sa.peer_identity} refused: {holding} identities hold IKE SAs, "
                    f"the limit of this configuration is {limit}")
        return None

    def _under_load(self) -> bool:
        """RFC 7296 §2.6: "when the number of half-open IKE SAs exceeds a threshold"."""
        return self.cookie_threshold is not None and self.half_open() >= self.cookie_threshold

    def _pump(self, sa: IkeSa) -> None:
        """Send what the engine wants sent, act on its events, arm its timer."""
        for d in sa.datagrams_to_send():
            self.node.send_udp(d.dst, d.dport, d.data, d.sport, src=d.src)
        while (event := sa.next_event()) is not None:
            self._event(sa, event)
        timer = self._timers.pop(id(sa), None)
        if timer is not None:
            timer.cancel()
        if sa.state not in HALF_OPEN_STATES:
            self._half_open.pop(id(sa), None)
            if id(sa) in self._half_open_timers:
                # no longer half-open (established, or closed): its timeout has no work
                self._half_open_timers.pop(id(sa)).cancel()
        if sa.timer_us is not None:
            self._timers[id(sa)] = self.node.sim.call_at(
                max(sa.timer_us, self.node.sim.now_us), self._timeout, sa,
                label=f"{self.node.name} IKE retransmit")

    def _timeout(self, sa: IkeSa) -> None:
        self.changes += 1
        self._timers.pop(id(sa), None)
        sa.handle_timer(self.node.sim.now_us)
        self._pump(sa)

    # -- events ----------------------------------------------------------------------------

    def _announce(self, sa: IkeSa, summary: str, **data: Any) -> None:
        self.node.announce("ike", f"[{sa.spi_i.hex()[:8]}] {summary}", **data)

    def _event(self, sa: IkeSa, event) -> None:
        self.changes += 1
        failure = self._handle(sa, event)
        if failure is not None:
            event = failure          # the listeners hear the failure, not an SA that is up
        for listener in list(self.listeners):
            listener(sa, event)
        if failure is not None:
            self._abandon_child(sa, failure)

    def _handle(self, sa: IkeSa, event) -> ChildSaInstallFailed | None:
        """Act on one engine event; a child SA that could not be installed (strict
        policies) comes back as its :class:`ChildSaInstallFailed`."""
        if isinstance(event, IkeSaEstablished):
            self.established.append(sa)
            if self.node.trace.level == "counts":
                sa.forget_init_messages()    # only secrets() shows them: nobody will look
            if not sa.initiator:
                same_peer = self._by_peer.setdefault(sa.peer_id, [])
                older_ones = list(same_peer) if self.unique_ids else []
                # filed first, so that forgetting the older SAs does not return the
                # peer's leases to the pools: this SA holds them now (RFC 7296 §3.15.4)
                same_peer.append(sa)
                for older in older_ones:
                    if older.state != "CLOSED" and older.replaced_by is None:
                        self._announce(older, f"replaced by [{sa.spi_i.hex()[:8]}], a newer "
                                       f"IKE SA of {sa.peer_id[1]} (unique IDs)")
                        self.forget(older)
                same_peer[:] = [o for o in same_peer if o.state != "CLOSED"]
            if sa.nat_local:     # we are behind a NAT: keep its mapping (RFC 3948 §2.3)
                self.ipsec.start_keepalives(str(sa.local), str(sa.remote),
                                            interval=self.config.nat_keepalive)
            self._announce(sa, f"IKE SA established with {event.peer_id[1]} "
                           f"({event.proposal}{', NAT detected' if event.nat_detected else ''})",
                           proposal=event.proposal, nat_detected=event.nat_detected)
        elif isinstance(event, ChildSaEstablished):
            return self._install(sa, event)
        elif isinstance(event, AddressAssigned):
            self._announce(sa, f"{event.attribute} {addresses.text(event.value)} "
                           f"{'from' if sa.initiator else 'for'} {event.peer_id[1]}",
                           attribute=event.attribute, value=str(event.value))
            if sa.initiator and self.install_virtual_ips and event.attribute in (
                    "INTERNAL_IP6_ADDRESS", "INTERNAL_IP4_ADDRESS"):
                self._install_virtual_ip(sa, event.value)
            if not sa.initiator and event.attribute in ("INTERNAL_IP6_ADDRESS",
                                                        "INTERNAL_IP4_ADDRESS"):
                self._bind_in_pad(sa, addresses.interface(event.value).ip,
                                  f"assigned by CP {event.attribute}")
        elif isinstance(event, IkeSaFailed):
            self.failures.append(event)
            self._announce(sa, f"IKE SA failed: {event.reason}", notify=event.notify)
            if sa.state == "CLOSED" and sa.replaced_by is None:
                self._remove_child(sa)     # e.g. the initiator refused our AUTH afterwards
                self._release(sa)
        elif isinstance(event, IkeSaMoved):
            self._migrate(sa, event)
        elif isinstance(event, IkeSaRekeyed):
            new = event.new
            self.sas[new.spi_i] = new
            self.established.append(new)
            if not new.initiator and new.peer_id is not None:
                self._by_peer.setdefault(new.peer_id, []).append(new)
            self._announce(sa, f"IKE SA rekeyed: now [{new.spi_i.hex()[:8]}] "
                           f"{new.spi_i.hex()}/{new.spi_r.hex()}")
        elif isinstance(event, IkeSaDeleted):
            self._announce(sa, "IKE SA deleted" + (" by the peer" if event.by_peer else "")
                           + (" (replaced by its rekeyed successor)" if sa.replaced_by else ""))
            if sa.replaced_by is None:
                self._remove_child(sa)
                self._release(sa)
        elif isinstance(event, ChildSaDeleted):
            self._delete_sas(sa, event.inbound_spi, event.outbound_spi)
            self._announce(sa, f"child SA in 0x{event.inbound_spi:08x} deleted"
                           + (" by the peer" if event.by_peer else ""))
        elif isinstance(event, ChildSaRekeyed):
            self._announce(sa, f"child SA 0x{event.old_inbound_spi:08x} rekeyed as "
                           f"0x{event.new_inbound_spi:08x}")
        elif isinstance(event, MessageDropped):
            self.node.drop("ike", event.reason, None)

    def _install(self, sa: IkeSa, child: ChildSaEstablished) -> ChildSaInstallFailed | None:
        """Through the seam: UPDATE the larval inbound SA, ADD the outbound, SPDADD.

        An SPDADD refused with EEXIST means another module (a mobility daemon that owns
        the SPD, draft-patil-mext-mip6issueswithipsec §6.6, §6.7) wrote an entry with the
        same selectors first. By default the daemon goes on: that entry protects the same
        traffic with the same reqid, so the kernel finds this child SA through it. With
        :attr:`strict_policies` the child SA fails, as in a key daemon that treats a
        policy it cannot install as a failure of the child SA: the returned
        :class:`ChildSaInstallFailed` goes to the listeners instead of the
        establishment, and the child SA is deleted on both ends."""
        refused: list[str] = []
        local, remote = sa.local_text, sa.remote_text
        encap = (sa.local_port, sa.remote_port) if child.udp_encapsulation else None
        mobility = _mobility_endpoints(child)
        if mobility is not None:
            # RFC 4877 §7.2 / RFC 5555 §5.2.1: the BU/BA SA is a transport-mode SA of the
            # home address and the home agent; it is not moved when the CoA changes and,
            # from an IPv4 network, rides inside the UDP 4191 tunnel, not UDP 4500
            local, remote = mobility
            encap = None
        identity = sa.peer_identity
        inbound = SecurityAssociation(child.inbound_spi, "in", remote, local, child.suite,
                                      child.encr_in, child.integ_in, mode=child.mode,
                                      reqid=child.reqid, identity=identity,
                                      encap=(encap[1], encap[0]) if encap else None)
        outbound = SecurityAssociation(child.outbound_spi, "out", local, remote, child.suite,
                                       child.encr_out, child.integ_out, mode=child.mode,
                                       reqid=child.reqid, identity=identity, encap=encap)
        self.socket.send(KeyMessage("UPDATE", sa=inbound))
        self.socket.send(KeyMessage("ADD", sa=outbound))
        if not sa.initiator:
            self._learn_home_address(sa, child)
        for local_ts in child.local_ts:
            for remote_ts in child.remote_ts:
                selectors = _selectors(local_ts, remote_ts)
                if not self.install_policies or selectors is None:
                    continue
                existing = self.ipsec.spd.find(selectors=selectors)
                if any(p.name == f"ike-{self._policy_tag(sa)}" for p in existing):
                    continue      # a rekeyed or second child SA reuses the policy
                for stale in existing:   # left by an IKE SA of ours that is gone
                    if stale.owner == self.name and stale.name.startswith("ike-"):
                        self.socket.send(KeyMessage("SPDDELETE", policy_index=stale.index))
                template = IPsecTemplate(child.mode, sa.local if child.mode == "tunnel"
                                         else None, sa.remote if child.mode == "tunnel"
                                         else None, child.reqid)
                reply = self.socket.send(KeyMessage("SPDADD", policy=SecurityPolicy(
                    selectors, PROTECT, template, name=f"ike-{self._policy_tag(sa)}")))
                if reply.error == "EEXIST":
                    refused.append(reply.note)
        self._announce(sa, f"child SA {child.mode} {child.suite} in 0x{child.inbound_spi:08x} "
                       f"out 0x{child.outbound_spi:08x}")
        if refused and self.strict_policies:
            failure = ChildSaInstallFailed(child.inbound_spi, child.outbound_spi, child.mode,
                                           f"SPDADD refused (EEXIST): {refused[0]}")
            self.policy_failures.append(failure)
            self._announce(sa, f"child SA in 0x{child.inbound_spi:08x} FAILED: its policy "
                           f"cannot be installed ({failure.reason}); deleting it",
                           error="EEXIST")
            return failure
        return None

    def _abandon_child(self, sa: IkeSa, failure: ChildSaInstallFailed) -> None:
        """Strict policies: a child SA whose policy the kernel refused is no SA of ours.
        Delete it on both ends with an INFORMATIONAL Delete (RFC 7296 §1.4.1); its SAD
        entries go through the seam (DELETE) when the engine reports it deleted."""
        if sa.state == "CLOSED" or failure.inbound_spi not in sa.children:
            return
        sa.delete_child(failure.inbound_spi, self.node.sim.now_us)
        self._pump(sa)

    # -- the PAD: which home addresses an identity may use (RFC 4877 §4.2, §7.1) ----------

    def _bind_in_pad(self, sa: IkeSa, address, why: str) -> None:
        self.bind_home_address(sa.peer_identity, address, why)

    def bind_home_address(self, identity: str, address, why: str) -> None:
        """Bind ``address`` to ``identity`` ("type:value") in the PAD."""
        id_type, _, value = identity.partition(":")
        pad = self.ipsec.pad
        if pad.lookup(id_type, value) is None:
            pad.add(PeerAuthorizationEntry(id_type, value))
        address = addresses.address(address)
        if address in pad.lookup(id_type, value).home_addresses:
            return
        try:
            pad.bind_home_address(id_type, value, address)
        except HomeAddressTaken as exc:
            # one home address, one identity (RFC 4877 §4.2): never a second owner
            self.node.announce("ike", f"PAD: {exc}; not bound ({why})", error="taken",
                               home_address=str(address))
            return
        self.node.announce("ike", f"PAD: {addresses.text(address)} bound to {identity} ({why})",
                           home_address=str(address))

    def _learn_home_address(self, sa: IkeSa, child: ChildSaEstablished) -> None:
        """RFC 5026 §5.3.2: a MN given a home prefix autoconfigures its HoA and creates SAs
        for it with CREATE_CHILD_SA: the single address in its traffic selectors, inside
        the prefix granted to it, is its home address, bound to it in the PAD from now."""
        prefixes = [addresses.network(a.value) for a in sa.assigned
                    if a.attribute == "MIP6_HOME_PREFIX"]
        for ts in child.remote_ts:
            network = ts.network()
            if network is None or network.num_addresses != 1:
                continue
            address = network.network_address
            if any(address.version == p.version and address in p for p in prefixes):
                self._bind_in_pad(sa, address, "TSi of a child SA within its home prefix")

    def home_addresses_of(self, identity: str) -> list:
        """The PAD's home addresses for ``identity`` ("type:value"); what a home agent's
        mobility module asks before it accepts a Binding Update (RFC 4877 §4.2)."""
        id_type, _, value = identity.partition(":")
        entry = self.ipsec.pad.lookup(id_type, value)
        return list(entry.home_addresses) if entry else []

    def _follow_migrate(self, message: KeyMessage) -> None:
        """A MIGRATE with the K bit (draft-sugimoto §4.1.4; RFC 6275 §11.7.3, §10.3.1): the
        mobility module moved SAs to a new care-of address, and our IKE SAs with that
        peer follow, with no exchange (RFC 4877 §7.4)."""
        for request in message.migrate:
            old = {str(request.old_src), str(request.old_dst)}
            new = (str(request.new_src), str(request.new_dst))
            for sa in self.sas.values():
                if sa.state == "CLOSED" or {str(sa.local), str(sa.remote)} != old:
                    continue
                before = (str(sa.local), str(sa.remote))
                if str(sa.local) == str(request.old_src):
                    sa.follow(new[0], new[1])
                else:
                    sa.follow(new[1], new[0])
                self._announce(sa, f"K bit: IKE SA follows {before[0]} <-> {before[1]} to "
                               f"{sa.local} <-> {sa.remote}")

    def create_child(self, sa: IkeSa, **kwargs: Any) -> None:
        """A CREATE_CHILD_SA exchange (mode, local_ts, remote_ts as IkeSa.create_child)."""
        sa.create_child(self.node.sim.now_us, **kwargs)
        self._pump(sa)

    def _migrate(self, sa: IkeSa, event: IkeSaMoved) -> None:
        """MOBIKE moved the IKE SA: move the tunnel-mode child SAs and their policies with
        the key engine's MIGRATE -- the same message the mobility module sends for the
        K bit, sent here by IKE itself (RFC 4555 §3.5)."""
        self._announce(sa, f"MOBIKE: now {event.local} <-> {event.remote} "
                       f"(was {event.old_local} <-> {event.old_remote})")
        request = MigrateRequest(ipaddress.ip_address(event.old_local),
                                 ipaddress.ip_address(event.old_remote),
                                 ipaddress.ip_address(event.local),
                                 ipaddress.ip_address(event.remote), "tunnel",
                                 self.config.reqid)
        for policy in self.ipsec.spd.find(name=f"ike-{self._policy_tag(sa)}"):
            self.socket.send(KeyMessage("MIGRATE", selectors=policy.selectors,
                                        migrate=[request], k_bit=True))

    def _policy_tag(self, sa: IkeSa) -> str:
        """The name under which this SA's policies were installed (kept across rekeys)."""
        first = sa
        while first.predecessor is not None:
            first = first.predecessor
        return first.spi_i.hex()[:8]

    def move(self, sa: IkeSa, new_local: str) -> None:
        """Our address changed: follow it with MOBIKE (we must be the original initiator)."""
        sa.update_addresses(new_local, self.node.sim.now_us)
        self._pump(sa)

    def _install_virtual_ip(self, sa: IkeSa, value) -> None:
        """Put the assigned address on the interface towards the peer, as strongSwan
        installs a virtual IP, so that traffic for it is ours (a /128 or /32)."""
        address = ipaddress.ip_interface(value).ip
        route = self.node.routes.lookup(sa.remote)
        iface = self.node.interfaces[route.interface] if route else \
            next(iter(self.node.interfaces.values()))
        iface.add_address(f"{address}/{128 if address.version == 6 else 32}", origin="ike")
        self._announce(sa, f"virtual address {address} installed on {iface.name}")

    def forget(self, sa: IkeSa) -> None:
        """Drop an IKE SA and its child SAs here without telling the peer: the peer is no
        longer where the SA says (RFC 6275 §11.7.3 and §10.3.1 with the K bit clear:
        "discard key management connections" to the old care-of address)."""
        if sa.state == "CLOSED":
            return
        self.changes += 1
        sa.state = "CLOSED"
        sa.pending = None
        timer = self._timers.pop(id(sa), None)
        if timer is not None:
            timer.cancel()
        self._announce(sa, f"IKE SA with {sa.remote} discarded (no exchange)")
        self._remove_child(sa)
        self._release(sa)

    def _release(self, sa: IkeSa) -> None:
        """Return the peer's addresses to the pools (RFC 7296 §3.15.4), unless another
        IKE SA of the same peer holds them now."""
        if sa.initiator or sa.peer_id is None:
            return
        if any(other is not sa and other.state != "CLOSED"
               for other in self._by_peer.get(sa.peer_id, ())):
            return
        identity = sa.peer_identity
        for pool in (self.config.pool6, self.config.pool4, self.config.home_prefixes):
            lease = pool.release(identity) if pool is not None else None
            if lease is None:
                continue
            self._announce(sa, f"lease of {identity} returned to pool {pool.network}")
            # the PAD entry that tied the address to the peer was temporary (RFC 4877
            # §7.1): once the address may go to another peer, it is no longer this one's
            id_type, _, value = identity.partition(":")
            unbound = self.ipsec.pad.unbind_home_addresses(
                id_type, value, lambda address: address in ipaddress.ip_network(lease))
            for address in unbound:
                self._announce(sa, f"PAD: {address} no longer bound to {identity}",
                               home_address=str(address))

    def _delete_sas(self, sa: IkeSa, inbound_spi: int, outbound_spi: int) -> None:
        self.socket.send(KeyMessage("DELETE", spi=inbound_spi, direction="in"))
        # by SPI alone: a mobility SA's destination is the HoA, a moved one's the new CoA
        self.socket.send(KeyMessage("DELETE", spi=outbound_spi, direction="out"))

    def _remove_child(self, sa: IkeSa) -> None:
        """The IKE SA is gone: its child SAs and the policies installed for them too."""
        for child in list(sa.children.values()):
            self._delete_sas(sa, child.inbound_spi, child.outbound_spi)
        sa.children.clear()
        for policy in self.ipsec.spd.find(name=f"ike-{self._policy_tag(sa)}"):
            self.socket.send(KeyMessage("SPDDELETE", policy_index=policy.index))

    def delete(self, sa: IkeSa) -> None:
        sa.delete(self.node.sim.now_us)
        self._pump(sa)

    def check_liveness(self, sa: IkeSa) -> bool:
        """RFC 7296 §2.4: an empty INFORMATIONAL request to see whether the peer is still
        there; unanswered after every retransmission, the IKE SA fails (``IkeSaFailed``,
        "peer unreachable") and its listeners decide what follows. Only on an established
        SA with no request outstanding (one request at a time, §2.3); True if sent."""
        if sa.state != "ESTABLISHED" or sa.pending is not None:
            return False
        self._announce(sa, f"liveness check of {sa.remote} (RFC 7296 §2.4)")
        sa.check_liveness(self.node.sim.now_us)
        self._pump(sa)
        return True

    def restart(self) -> int:
        """The daemon restarts: every IKE SA is gone without a message (a reboot tells no
        peer), with its child SAs, the policies installed for them, the address leases
        and the PAD entries that tied those addresses to peers. Returns how many IKE SAs
        were lost. The peers find out by their own liveness checks (RFC 7296 §2.4)."""
        lost = [sa for sa in self.sas.values() if sa.state != "CLOSED"]
        for sa in lost:
            self.forget(sa)
        for sa in self.sas.values():           # closed ones too: nothing may survive
            if not sa.initiator and sa.peer_id is not None:
                self._by_peer.pop(sa.peer_id, None)
        for timer in self._half_open_timers.values():
            timer.cancel()
        self.sas.clear()
        self.established.clear()
        self._half_open.clear()
        self._half_open_timers.clear()
        self._by_address.clear()
        self._by_peer.clear()
        self.changes += 1
        self.node.announce("ike", f"{self.name} restarted: {len(lost)} IKE SA(s) lost")
        return len(lost)

    def rekey_ike(self, sa: IkeSa) -> None:
        """Rekey the IKE SA (§1.3.2); its successor is registered when established."""
        sa.rekey_ike(self.node.sim.now_us)
        self._pump(sa)

    def rekey_child(self, sa: IkeSa, inbound_spi: int | None = None) -> None:
        """Rekey a child SA (the first one by default), §2.8."""
        sa.create_child(self.node.sim.now_us, rekey=inbound_spi or sa.child.inbound_spi)
        self._pump(sa)

    # -- display ---------------------------------------------------------------------------

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """The IKE SAs this daemon holds and the child SAs they negotiated, as rows.

        An IKE SA is identified by its SPIs (RFC 7296 §2.6); a child SA by the SPI it
        receives on, with the peer's SPI, its traffic selectors (§2.9) and its mode.
        Closed IKE SAs stay listed (state CLOSED) so that a student sees them end."""
        ike_sas, child_sas = [], []
        for sa in self.sas.values():
            ike = sa.spi_i.hex()
            ike_sas.append({
                "spi_i": ike, "spi_r": sa.spi_r.hex(),
                "role": "initiator" if sa.initiator else "responder",
                "local": f"{sa.local}:{sa.local_port}", "remote": f"{sa.remote}:{sa.remote_port}",
                "state": sa.state, "peer": sa.peer_identity or "-",
                "nat": "yes" if sa.nat_detected else "no",
                "exchanges": sa.exchanges, "child_sas": len(sa.children)})
            for child in sa.children.values():
                child_sas.append({
                    "spi_in": f"0x{child.inbound_spi:08x}",
                    "spi_out": f"0x{child.outbound_spi:08x}",
                    "ike_sa": ike[:8], "mode": child.mode, "suite": child.suite,
                    "local_ts": ", ".join(str(ts) for ts in child.local_ts),
                    "remote_ts": ", ".join(str(ts) for ts in child.remote_ts),
                    "udp_encap": "yes" if child.udp_encapsulation else "no"})
        return {"ike_sas": ike_sas, "child_sas": child_sas}


def _mobility_endpoints(child: ChildSaEstablished) -> tuple[str, str] | None:
    """The (local, remote) addresses of a transport-mode Mobility Header SA whose
    selectors are single addresses (the HoA and the HA), else None."""
    if child.mode != "transport" or len(child.local_ts) != 1 or len(child.remote_ts) != 1:
        return None
    local, remote = child.local_ts[0], child.remote_ts[0]
    if local.protocol != IPPROTO_MH or local.start != local.end or remote.start != remote.end:
        return None
    return addresses.text(local.start), addresses.text(remote.start)


def _selectors(local: TrafficSelector, remote: TrafficSelector) -> Selectors | None:
    """SPD selectors for a pair of traffic selectors that are whole networks; a Mobility
    Header selector's ports are MH types (RFC 4301 §4.4.1.1)."""
    local_net, remote_net = local.network(), remote.network()
    if local_net is None or remote_net is None or local_net.version != remote_net.version:
        return None
    if local.protocol == IPPROTO_MH:
        one = lambda ts: ts.mh_types[0] if ts.mh_types and ts.mh_types[0] == ts.mh_types[1] \
            else None
        return Selectors(local_net, remote_net, IPPROTO_MH,
                         local_mh_type=one(local), remote_mh_type=one(remote))
    ports = lambda ts: None if (ts.start_port, ts.end_port) == (0, 0xFFFF) else \
        (ts.start_port, ts.end_port)
    return Selectors(local_net, remote_net, local.protocol or None, ports(local), ports(remote))
