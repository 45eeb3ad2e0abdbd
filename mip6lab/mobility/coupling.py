"""The coupling of Mobile IPv6 with IKEv2 and IPsec (RFC 4877), in one visible place.

There is no standard interface between a mobility daemon and the security subsystem;
this module *is* ours, and everything the mobile node or the home agent asks of
security goes through it:

- to the IPsec databases, only key-engine messages (SPDADD, SPDDELETE, MIGRATE), sent on
  the ``mip6d`` socket of the node's :class:`~mip6lab.ipsec.keyengine.KeyEngine`;
- to the IKE daemon, only *control requests* (start an IKE SA from this address and ask
  for a home address, create a child SA for these selectors, discard the IKE SAs of a
  peer, which home addresses the PAD binds to an identity) and, back, its events (an
  address was assigned, a child SA is up).

Both kinds of crossing are trace events of kind ``seam`` with sender and receivers, so a
notebook can count them per handover -- the course's measure of what the coupling costs.

What is selectable, per node:

``hoa_mode``
    ``"address"``: IKE_AUTH asks for INTERNAL_IP6_ADDRESS and the first child SA is the
    BU/BA SA for that address (RFC 4877 §9). ``"prefix"``: IKE_AUTH asks for
    MIP6_HOME_PREFIX and carries no child SA; the MN autoconfigures its HoA from the
    prefix and creates the SAs for it with CREATE_CHILD_SA, whose traffic selectors are
    how the HA learns the HoA for its SPD and PAD (RFC 5026 §5.3.2).
``spd_owner``
    ``"mobility"``: this module installs the SPD entries of RFC 4877 §7.2 when the HoA is
    known, and IKE only negotiates SAs; ``"ike"``: the IKE daemon installs them from the
    child SAs' traffic selectors; ``"both"``: both try, and the second SPDADD of each entry
    is refused with EEXIST naming the first owner -- the conflict the MEXT talk describes
    (counted in ``conflicts``). The IKE daemon ignores that refusal unless it is strict
    (``IkeDaemon(strict_policies=True)``, the scenarios' ``strict_spd=1``): then the child
    SA fails, and this module hears :class:`~mip6lab.ikev2.daemon.ChildSaInstallFailed`.
``k_bit``
    With K=1 on both sides the IKE SA and the tunnel-mode SAs follow the new care-of
    address by a MIGRATE with the K flag after the BU/BA, with no IKE exchange (RFC 6275
    §11.7.3, §10.3.1; RFC 4877 §7.4). With K=0 the MN drops its IKE SA and runs IKE again
    from the new CoA before it sends the BU; the HA discards the IKE SAs left at the old
    address when it accepts that BU.
``protect_payload``
    A tunnel-mode child SA for all traffic of the HoA (RFC 4877 §7.2, the optional payload
    entry), whose outer header is the CoA-HA tunnel; without it the payload goes in the
    plain IPv6-in-IPv6 (or DSMIP6 UDP) tunnel of the mobility module.

Two hooks on the mobile node's side let a student's code take the place of the stack's
own rule (the course's exercises, ``exercises/``), each documented where it is defined:
:attr:`MobileNodeCoupling.k_decision` (the K bit of each BU, RFC 6275 §11.7.1) and
:attr:`MobileNodeCoupling.spd_entries` (the MN's SPD entries of RFC 4877 §7.2).

The transport-mode BU/BA SA is an SA of the *home address*: its selectors and endpoints
do not change when the MN moves, which is why it needs no MIGRATE (only the tunnel-mode
SAs and IKE do).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .. import addresses
from ..ikev2.config import IkeConfig
from ..ikev2.daemon import ChildSaInstallFailed, IkeDaemon
from ..ikev2.sa import AddressAssigned, ChildSaEstablished, IkeSa, IkeSaEstablished, IkeSaFailed
from ..ikev2.ts import TrafficSelector, mh_type_selector
from ..ipsec import PROTECT, IPsecTemplate, KeyMessage, MigrateRequest, SecurityPolicy, Selectors
from ..net.frames import address_in_prefix
from ..net.interface import as_address
from ..net.node import Node

IPv6 = ipaddress.IPv6Address
HOA_MODES = ("address", "prefix")
SPD_OWNERS = ("mobility", "ike", "both")
#: reqids of the two kinds of SA (they tie an SA to its SPD entry, PF_KEY sadb_x_sa2)
BU_REQID, PAYLOAD_REQID = 1, 2
MOBILITY = "mip6d"
#: how an IKE SA that got no answer ends (:class:`IkeSaFailed`'s reason, RFC 7296 §2.1)
UNREACHABLE = "peer unreachable"
#: the BU transmission (RFC 6275 §11.8 back-off: ~3 s after a handover's first BU, 4.5 s
#: after a first registration's) after which IKE is asked whether the HA is alive
LIVENESS_AFTER_BU = 3


def _check(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} is one of {', '.join(allowed)}, not {value!r}")
    return value


def _ipv6(value) -> ipaddress.IPv6Address:
    """An IPv6 address, the object every mobile node's coupling shares for its home agent."""
    address = addresses.address(value)
    return address if address.version == 6 else ipaddress.IPv6Address(value)


def _host(address) -> str:
    """``"address/128"`` (``/32``): a host's network as text, the address's text made once
    for every entry that names it (:mod:`mip6lab.addresses`)."""
    address = addresses.address(address)
    return f"{addresses.text(address)}/{128 if address.version == 6 else 32}"


def bu_selectors(home_address: IPv6, home_agent: IPv6, *, at_home_agent: bool) -> Selectors:
    """RFC 4877 §7.2: "IF local_address = home_address_1 & remote_address = home_agent_1 &
    proto = MH & local_mh_type = BU & remote_mh_type = BAck" (the MN's entry), and its
    mirror at the home agent."""
    if at_home_agent:
        return Selectors.make(_host(home_agent), _host(home_address), "mh",
                              local_mh_type="BA", remote_mh_type="BU")
    return Selectors.make(_host(home_address), _host(home_agent), "mh",
                          local_mh_type="BU", remote_mh_type="BA")


def payload_selectors(home_address, *, at_home_agent: bool) -> Selectors:
    """RFC 4877 §7.2's payload entry: every packet of the home address, in tunnel mode."""
    host = _host(home_address)
    anywhere = "::/0" if home_address.version == 6 else "0.0.0.0/0"
    return Selectors.make(anywhere, host) if at_home_agent else Selectors.make(host, anywhere)


@dataclass(frozen=True)
class KBitQuestion:
    """What the mobile node knows when it chooses the K bit of a Binding Update: the
    question :attr:`MobileNodeCoupling.k_decision` answers (RFC 6275 §11.7.1: K is set
    when "the IKE SA ... can survive the movement"; RFC 4877 §7.4; RFC 5555 §5.1)."""

    #: K=1 configured on this mobile node (``k_bit``)
    configured: bool
    #: the state of its IKE SA with the home agent ("ESTABLISHED" ...); None: there is none
    ike_sa_state: str | None
    #: the address the IKE SA runs from now (None before the first IKE SA)
    ike_endpoint: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    #: the care-of address the BU is about to register
    new_care_of_address: ipaddress.IPv4Address | ipaddress.IPv6Address


def default_k_decision(question: KBitQuestion) -> bool:
    """The stack's own rule: K when configured, with an established IKE SA that can move
    to the new care-of address -- the same address family (RFC 5555 §5.1: from IPv6 to
    IPv4 "the IKE SA should be re-negotiated")."""
    return bool(question.configured and question.ike_sa_state == "ESTABLISHED"
                and question.ike_endpoint is not None
                and question.ike_endpoint.version == question.new_care_of_address.version)


@dataclass(frozen=True)
class SpdRequest:
    """What :attr:`MobileNodeCoupling.spd_entries` is given to write the mobile node's SPD
    entries of RFC 4877 §7.2, once the home address is known."""

    home_address: ipaddress.IPv6Address
    home_agent: ipaddress.IPv6Address
    #: where the IKE SA runs from: the outer source of the payload tunnel (the CoA)
    care_of_address: ipaddress.IPv4Address | ipaddress.IPv6Address
    #: the home agent's end of the IKE SA: the outer destination of the payload tunnel
    tunnel_remote: ipaddress.IPv4Address | ipaddress.IPv6Address
    #: whether the payload goes in a tunnel-mode SA (RFC 4877 §7.2's optional entry)
    protect_payload: bool
    #: the reqids tying each entry to the SAs IKE negotiates for it
    bu_reqid: int = BU_REQID
    payload_reqid: int = PAYLOAD_REQID


class _Coupling:
    """What both ends share: the key socket, the IKE daemon, the seam's trace."""

    def __init__(self, node: Node, ike: IkeDaemon, *, spd_owner: str = "mobility",
                 k_bit: bool = True) -> None:
        self.node = node
        self.ike = ike
        self.spd_owner = _check("spd_owner", spd_owner, SPD_OWNERS)
        self.k_bit = k_bit
        ike.install_policies = spd_owner in ("ike", "both")
        self.socket = node.ipsec.engine.open(MOBILITY)
        self.conflicts = 0          # SPDADDs refused with EEXIST, SPDDELETEs of iked's
        ike.listeners.append(self._ike_event)

    # -- the seam's trace ------------------------------------------------------------------

    def _cross(self, sender: str, receiver: str, summary: str | Callable[[], str],
               **data: Any) -> None:
        """One crossing; ``summary`` may be a function that writes it, called only when
        the trace keeps the event (at level "counts" a crossing is only counted)."""
        trace = self.node.trace
        if not trace.keeps("seam"):
            trace.emit(self.node.name, "coupling", "seam")
            return
        if callable(summary):
            summary = summary()
        trace.emit(self.node.name, "coupling", "seam", f"{sender} → {receiver}: {summary}",
                   sender=sender, receivers=[receiver], message=summary.split(" ")[0],
                   **data)

    def _request(self, summary: str | Callable[[], str], **data: Any) -> None:
        self._cross(MOBILITY, self.ike.name, summary, **data)

    def _heard(self, summary: str | Callable[[], str], **data: Any) -> None:
        self._cross(self.ike.name, MOBILITY, summary, **data)

    def _ike_event(self, sa: IkeSa, event: Any) -> None:
        raise NotImplementedError

    # -- key engine ------------------------------------------------------------------------

    def _spdadd(self, selectors: Selectors, template: IPsecTemplate, name: str) -> None:
        if self.spd_owner == "ike":
            return
        existing = self._policy(selectors)
        if existing is not None and existing.owner == MOBILITY:
            return          # ours already, from the previous IKE SA
        reply = self.socket.send(KeyMessage("SPDADD", policy=SecurityPolicy(
            selectors, PROTECT, template, name=name)))
        if reply.error == "EEXIST":
            self.conflicts += 1
            self.node.announce("coupling", f"SPD conflict: {reply.note}", error="EEXIST")

    def _policy(self, selectors: Selectors) -> SecurityPolicy | None:
        found = self.node.ipsec.spd.find(selectors=selectors)
        return found[0] if found else None

    def _migrate(self, selectors: Selectors, request: MigrateRequest, k_bit: bool) -> None:
        if self._policy(selectors) is None:
            return
        self.socket.send(KeyMessage("MIGRATE", selectors=selectors, migrate=[request],
                                    k_bit=k_bit))

    def _spddelete(self, selectors: Selectors) -> None:
        for policy in self.node.ipsec.spd.find(selectors=selectors):
            if policy.owner != MOBILITY:    # an IKE-owned entry: the conflict again
                self.conflicts += 1
            self.socket.send(KeyMessage("SPDDELETE", policy_index=policy.index))


class MobileNodeCoupling(_Coupling):
    """The mobile node's side: bootstrap (IKE from the CoA, the HoA, the SAs and SPD),
    and what a handover costs with K=1 or K=0."""

    def __init__(self, node: Node, ike: IkeDaemon, home_agent: str, *,
                 home_agent4: str | None = None, hoa_mode: str = "address",
                 spd_owner: str = "mobility", k_bit: bool = True,
                 protect_payload: bool = True) -> None:
        super().__init__(node, ike, spd_owner=spd_owner, k_bit=k_bit)
        self.home_agent = _ipv6(home_agent)
        self.home_agent4 = ipaddress.IPv4Address(home_agent4) if home_agent4 else None
        self.hoa_mode = _check("hoa_mode", hoa_mode, HOA_MODES)
        self.protect_payload = protect_payload
        ike.install_virtual_ips = False     # the HoA is the mobility module's to place
        self.home_address: IPv6 | None = None
        self.home_prefix: ipaddress.IPv6Network | None = None
        self.ike_sa: IkeSa | None = None
        self.ike_endpoint: ipaddress._BaseAddress | None = None   # our side of the IKE SA
        self.ready = False                  # the BU/BA SA (and payload SA) exist
        self.on_ready: list[Callable[[], None]] = []
        self.ike_exchanges_started = 0
        self._configs: dict[int, IkeConfig] = {}
        #: hook: a function ``KBitQuestion -> bool`` that chooses the K bit of each BU
        #: instead of :func:`default_k_decision` (RFC 6275 §11.7.1); an exception or an
        #: answer that is not a bool is an ``error`` event, and K=0
        self.k_decision: Callable[[KBitQuestion], bool] | None = None
        #: hook: a function ``SpdRequest -> list[SecurityPolicy]`` that writes the MN's
        #: SPD entries (RFC 4877 §7.2) instead of the stack's own, each sent as an SPDADD
        #: on the seam when the home address is known (``spd_owner`` mobility or both);
        #: an exception or something that is not a SecurityPolicy is an ``error`` event
        self.spd_entries: Callable[[SpdRequest], list[SecurityPolicy]] | None = None
        #: where the mobile node is now (its newest care-of address; None at home): set
        #: by the mobile node, read when an IKE SA is lost and a new one must start
        self.current_care_of_address: Callable[[], Any] | None = None
        self.recoveries = 0                 # new IKE SAs started after one was lost
        # (home address, its BU/BA selectors, its payload selectors): :meth:`_entries`
        self._selectors: tuple | None = None

    # -- bootstrap (RFC 4877 §9, RFC 5026 §5.3) -------------------------------------------

    def _config(self, local) -> IkeConfig:
        """The IKE configuration of an SA from ``local`` (one per address family, kept,
        so that its built payloads are reused when IKE runs again after a move)."""
        if local.version not in self._configs:
            self._configs[local.version] = self._make_config(local)
        return self._configs[local.version]

    def _make_config(self, local) -> IkeConfig:
        base = self.ike.config
        ha = self.home_agent
        request = ("ipv6",) if self.hoa_mode == "address" else ("home-prefix",)
        return replace(base, request=request, mode="transport",
                       first_child=self.hoa_mode == "address",
                       local_ts=[mh_type_selector("::/0", "BU")],
                       remote_ts=[mh_type_selector(_host(ha), "BA")],
                       reqid_by_mode={"transport": BU_REQID, "tunnel": PAYLOAD_REQID},
                       always_nat_t=local.version == 4)

    def start(self, care_of_address) -> IkeSa:
        """RFC 6275 §11.3.2 / RFC 4877 §4.3: IKE runs from the care-of address."""
        coa = as_address(care_of_address)
        peer = self.home_agent if coa.version == 6 else self.home_agent4
        if peer is None:
            raise ValueError("an IPv4 care-of address needs the home agent's IPv4 address")
        self.ready = False
        if self.ike_sa is not None and self.ike_sa.state != "CLOSED":
            # moved again before the last one finished: that SA's address is gone
            self._request(f"DISCARD IKE SA {self.ike_sa.local} ↔ {self.ike_sa.remote}")
            self.ike.forget(self.ike_sa)
        peer_text, coa_text = addresses.text(peer), addresses.text(coa)
        wanted = "INTERNAL_IP6_ADDRESS" if self.hoa_mode == "address" else "MIP6_HOME_PREFIX"
        self._request(lambda: f"INITIATE IKE SA {coa_text} → {peer_text}, CFG_REQUEST {wanted}",
                      peer=peer_text, local=coa_text)
        self.ike_exchanges_started += 1
        self.ike_endpoint = coa
        self.ike_sa = self.ike.initiate(peer_text, local=coa_text, config=self._config(coa))
        return self.ike_sa

    def _ike_event(self, sa: IkeSa, event: Any) -> None:
        if sa is not self.ike_sa:
            return
        if isinstance(event, AddressAssigned):
            self._heard(lambda: f"{event.attribute} {event.value}", attribute=event.attribute)
            if event.attribute == "INTERNAL_IP6_ADDRESS":
                interface = addresses.interface(event.value)
                self._home_address(interface.ip, interface.network)
            elif event.attribute == "MIP6_HOME_PREFIX":
                value = event.value      # the initiator reads a HomePrefix(prefix, lifetime)
                prefix = ipaddress.ip_network(getattr(value, "prefix", value))
                hoa = address_in_prefix(prefix, self.node.interface("eth0").mac)
                self.node.announce("coupling", f"home address {hoa} autoconfigured from "
                                   f"MIP6_HOME_PREFIX {prefix} (RFC 5026 §5.3.2)")
                self._home_address(hoa, prefix)
                self._create_child("transport", [mh_type_selector(_host(hoa), "BU")],
                                   [mh_type_selector(_host(self.home_agent), "BA")])
        elif isinstance(event, ChildSaEstablished):
            self._heard(lambda: f"CHILD_SA {event.mode} in 0x{event.inbound_spi:08x} "
                        f"out 0x{event.outbound_spi:08x}", mode=event.mode)
            if event.mode == "transport" and self.protect_payload:
                self._create_child("tunnel", [TrafficSelector.from_network(
                    _host(self.home_address))], [TrafficSelector.from_network("::/0")])
            else:
                self._sas_ready()
        elif isinstance(event, ChildSaInstallFailed):
            # strict_spd: the IKE daemon could not install its policy, so this SA is not
            # there; without the BU/BA SA the MN never becomes ready to send a BU
            self._heard(f"CHILD_SA FAILED {event.mode}: {event.reason}", mode=event.mode)
        elif isinstance(event, IkeSaFailed):
            self._heard(f"IKE SA FAILED {event.reason}")
            self._ike_sa_lost(event)

    # -- recovery (RFC 7296 §2.1, §2.4; RFC 6275 §11.7.1) ---------------------------------

    def _ike_sa_lost(self, event: IkeSaFailed) -> None:
        """Our IKE SA with the HA gave up: no answer to a request after every
        retransmission (RFC 7296 §2.1, §2.4: "the IKE SA is deleted"). If we are still
        away, a new IKE SA from where we are now re-creates the SAs the BU needs, and
        :attr:`on_ready` sends it -- how a lossy link, a lost BA after a move (K=1, IKE
        still at the old address) or a restarted home agent (its SAs gone) is recovered.
        A refusal (a notify: AUTHENTICATION_FAILED ...) is final and not retried."""
        if event.notify is not None or not event.reason.endswith(UNREACHABLE):
            return
        here = self.current_care_of_address() if self.current_care_of_address else None
        if here is None:
            return
        self.recoveries += 1
        self.node.announce("coupling", f"IKE SA with {self.home_agent} lost "
                           f"({event.reason}): a new one from {here}")
        self.start(here)

    def binding_update_unanswered(self, transmissions: int) -> None:
        """The BU has gone ``transmissions`` times without a BA. RFC 7296 §2.4: "If there
        has only been outgoing traffic on all of the SAs associated with an IKE SA, it is
        essential to confirm liveness of the other endpoint to avoid black holes": once,
        at the :data:`LIVENESS_AFTER_BU` th transmission, an empty INFORMATIONAL -- whose
        failure (:meth:`_ike_sa_lost`) starts a new IKE SA. A home agent that restarted
        answers no ESP of the old SAs; this is how the MN finds out."""
        sa = self.ike_sa
        if transmissions != LIVENESS_AFTER_BU or sa is None or sa.state != "ESTABLISHED":
            return
        if self.ike.check_liveness(sa):
            self._request(f"LIVENESS CHECK of IKE SA {sa.local} ↔ {sa.remote} "
                          f"(BU unanswered {transmissions} times)")

    def _create_child(self, mode: str, local_ts, remote_ts) -> None:
        self._request(lambda: f"CREATE_CHILD_SA {mode} {', '.join(map(str, local_ts))} ↔ "
                      f"{', '.join(map(str, remote_ts))}", mode=mode)
        self.ike_exchanges_started += 1
        self.ike.create_child(self.ike_sa, mode=mode, local_ts=local_ts, remote_ts=remote_ts)

    def _home_address(self, hoa: IPv6, prefix: ipaddress.IPv6Network) -> None:
        self.home_address, self.home_prefix = hoa, prefix
        if self.spd_entries is not None and self.spd_owner != "ike":
            self._install_supplied_entries(hoa)
            return
        # "the mobility module installs them": as soon as the HoA is known
        self._spdadd(self._entries()[0],
                     IPsecTemplate("transport", reqid=BU_REQID),
                     f"mip6-bu-{addresses.text(hoa)}")
        if self.protect_payload:
            self._install_payload_policy()

    def _entries(self) -> tuple[Selectors, Selectors]:
        """The selectors of our BU/BA and payload entries (RFC 4877 §7.2), made once per
        home address: the SPD files the entry under this very object, so a search for it
        reuses the hash the object keeps (a network's hash is a Python call)."""
        hoa = self.home_address
        made = self._selectors
        if made is None or made[0] is not hoa:
            made = self._selectors = (
                hoa, bu_selectors(hoa, self.home_agent, at_home_agent=False),
                payload_selectors(hoa, at_home_agent=False))
        return made[1], made[2]

    def _install_payload_policy(self) -> None:
        selectors = self._entries()[1]
        peer = self.ike_sa.remote
        existing = self._policy(selectors)
        template = existing.template if existing else None
        if template is not None and (template.tunnel_local, template.tunnel_remote) != \
                (self.ike_endpoint, peer):
            # K=0: new SAs from the new CoA; the entry's tunnel endpoints follow (no K)
            self._migrate(selectors, MigrateRequest(
                template.tunnel_local, template.tunnel_remote, self.ike_endpoint, peer,
                "tunnel", PAYLOAD_REQID), k_bit=False)
            return
        self._spdadd(selectors, IPsecTemplate("tunnel", self.ike_endpoint, peer, PAYLOAD_REQID),
                     f"mip6-payload-{addresses.text(self.home_address)}")

    def _hook_failed(self, hook: str, problem: str) -> None:
        self.node.trace.emit(self.node.name, "coupling", "error", f"{hook} hook: {problem}",
                             hook=hook)

    def _install_supplied_entries(self, hoa: IPv6) -> None:
        """The :attr:`spd_entries` hook's entries, each an SPDADD from the mobility module."""
        request = SpdRequest(hoa, self.home_agent, self.ike_endpoint, self.ike_sa.remote,
                             self.protect_payload)
        try:
            policies = list(self.spd_entries(request))
        except Exception as exc:        # the hook's bug is a traced error, not ours
            self._hook_failed("spd_entries", f"raised {type(exc).__name__}: {exc}")
            return
        for policy in policies:
            if not isinstance(policy, SecurityPolicy):
                self._hook_failed("spd_entries", f"gave {policy!r}, not a SecurityPolicy")
                continue
            reply = self.socket.send(KeyMessage("SPDADD", policy=replace(
                policy, owner="", index=0, hits={"out": 0, "in": 0})))
            if reply.error == "EEXIST":
                self.conflicts += 1
                self.node.announce("coupling", f"SPD conflict: {reply.note}", error="EEXIST")

    def _sas_ready(self) -> None:
        if self.ready:
            return
        self.ready = True
        if self.node.keeps_state():    # else counted, no summary made
            self.node.announce("coupling", "BU/BA SA"
                               f"{' and payload SA' if self.protect_payload else ''}"
                               f" ready for {addresses.text(self.home_address)}")
        for listener in list(self.on_ready):
            listener()

    # -- handover (RFC 6275 §11.7.1 / §11.7.3, RFC 4877 §7.4) -----------------------------

    def before_binding_update(self, new_coa) -> bool:
        """The MN moved to ``new_coa`` and wants to send a BU. True: send it now (K=1,
        the SAs are the HoA's); False: IKE runs again first, :attr:`on_ready` follows."""
        new_coa = as_address(new_coa)
        if self.ike_survives(new_coa):
            return True
        # K=0 (or a new address family: the IKE SA cannot follow, RFC 5555 §5.1 "the IKE
        # SA should be re-negotiated"): drop the old IKE SA here, start from the CoA
        if self.ike_sa is not None and self.ike_sa.state != "CLOSED":
            self._request(f"DISCARD IKE SA {self.ike_sa.local} ↔ {self.ike_sa.remote}")
            self.ike.forget(self.ike_sa)
        self.start(new_coa)
        return False

    def ike_survives(self, new_coa) -> bool:
        """§11.7.1: set K when the IKE SA can follow the CoA -- K=1 configured, an
        established IKE SA, and the same address family (RFC 5555 §5.1); or what the
        :attr:`k_decision` hook answers instead."""
        question = KBitQuestion(bool(self.k_bit), self.ike_sa.state if self.ike_sa else None,
                                self.ike_endpoint, as_address(new_coa))
        if self.k_decision is None:
            return default_k_decision(question)
        try:
            answer = self.k_decision(question)
        except Exception as exc:        # the hook's bug is a traced error, not ours
            self._hook_failed("k_decision", f"raised {type(exc).__name__}: {exc}; K=0")
            return False
        if not isinstance(answer, bool):
            self._hook_failed("k_decision", f"answered {answer!r}, not True or False; K=0")
            return False
        self.node.announce("coupling", f"k_decision hook: K={int(answer)} for "
                           f"{question.new_care_of_address}", k=answer)
        return answer

    def after_binding_acknowledgement(self, new_coa, k: bool) -> None:
        """The HA accepted the BU with K set: move the tunnel-mode SAs and the IKE SA from
        where IKE runs now to the new CoA with MIGRATE (K flag: IKE follows), RFC 6275
        §11.7.3. From the IKE SA's endpoint, not the last registered CoA: a BA may have
        been lost on the way."""
        if not k or self.ike_endpoint is None:
            return
        old, new = self.ike_endpoint, as_address(new_coa)
        if old == new or old.version != new.version:
            return
        peer = self.ike_sa.remote
        bu_entry, payload_entry = self._entries()
        if self.protect_payload and self._policy(payload_entry) is not None:
            self._migrate(payload_entry,
                          MigrateRequest(old, peer, new, peer, "tunnel", PAYLOAD_REQID),
                          k_bit=True)
        else:
            self._migrate(bu_entry,
                          MigrateRequest(old, peer, new, peer, "transport", BU_REQID),
                          k_bit=True)
        self.ike_endpoint = new

    def returned_home(self) -> None:
        """§11.5.5: at home the HoA's traffic is not tunnelled; the payload entry goes
        (else the home link's plain packets would be dropped as unprotected)."""
        if self.protect_payload and self.home_address is not None:
            self._spddelete(self._entries()[1])


class HomeAgentCoupling(_Coupling):
    """The home agent's side: learning each MN's HoA from IKE (for its SPD and PAD),
    answering the binding cache's PAD question, following the K bit."""

    def __init__(self, node: Node, ike: IkeDaemon, home_agent: str, *,
                 spd_owner: str = "mobility", k_bit: bool = True) -> None:
        super().__init__(node, ike, spd_owner=spd_owner, k_bit=k_bit)
        self.home_agent = _ipv6(home_agent)
        self.payload_protected: dict[IPv6, bool] = {}
        self.identities: dict[IPv6, str] = {}      # HoA -> the IKE identity it came with

    def _ike_event(self, sa: IkeSa, event: Any) -> None:
        if sa.initiator or sa.peer_id is None:
            return
        identity = sa.peer_identity
        if isinstance(event, AddressAssigned) and event.attribute == "INTERNAL_IP6_ADDRESS":
            hoa = addresses.interface(event.value).ip
            self._heard(lambda: f"{event.attribute} {hoa} given to {identity}",
                        identity=identity)
            self._learn(hoa, identity)
        elif isinstance(event, ChildSaEstablished):
            hoa = _single_address(event.remote_ts)
            if hoa is None or hoa.version != 6:
                return
            self._heard(lambda: f"CHILD_SA {event.mode} for {hoa} with {identity}",
                        identity=identity, mode=event.mode)
            if event.mode == "transport":
                self._learn(hoa, identity)      # RFC 5026 §5.3.2: the TSi tells the HoA
            else:
                self.payload_protected[hoa] = True
                selectors = payload_selectors(hoa, at_home_agent=True)
                existing = self._policy(selectors)
                if existing is not None and existing.template is not None and \
                        existing.template.tunnel_remote != sa.remote:
                    self._migrate(selectors, MigrateRequest(
                        self.home_agent, existing.template.tunnel_remote, sa.local,
                        sa.remote, "tunnel", PAYLOAD_REQID), k_bit=False)
                elif existing is None:
                    self._spdadd(selectors, IPsecTemplate("tunnel", sa.local, sa.remote,
                                                          PAYLOAD_REQID),
                                 f"mip6-payload-{addresses.text(hoa)}")
        elif isinstance(event, ChildSaInstallFailed):
            self._heard(f"CHILD_SA FAILED {event.mode} with {identity}: {event.reason}",
                        identity=identity, mode=event.mode)
        elif isinstance(event, IkeSaEstablished):
            self._heard(f"IKE SA up with {identity}", identity=identity)

    def _learn(self, hoa: IPv6, identity: str) -> None:
        selectors = bu_selectors(hoa, self.home_agent, at_home_agent=True)
        if self.identities.get(hoa) == identity and self._policy(selectors) is not None:
            return
        self.identities[hoa] = identity
        self._spdadd(selectors, IPsecTemplate("transport", reqid=BU_REQID),
                     f"mip6-bu-{addresses.text(hoa)}")

    # -- what the binding cache asks -------------------------------------------------------

    def home_addresses(self, identity: str) -> list:
        """RFC 4877 §4.2: the home addresses the PAD binds to ``identity``."""
        addresses = self.ike.home_addresses_of(identity)
        self._request(f"PAD LOOKUP {identity}", identity=identity)
        self._heard(f"PAD {identity} → {', '.join(map(str, addresses)) or 'nothing'}",
                    identity=identity)
        return addresses

    def bind_ipv4_home_address(self, identity: str, address) -> None:
        """RFC 5555 §5: the IPv4 HoA the HA allocated goes with the IPv6 HoA's identity."""
        self._request(f"PAD BIND {address} to {identity}", identity=identity)
        self.ike.bind_home_address(identity, address, "IPv4 home address (RFC 5555 §5)")

    def binding_moved(self, hoa: IPv6, identity: str, old, new, k: bool) -> None:
        """A binding moved from CoA ``old`` to ``new`` (an IPv6 CoA, or None from IPv4)."""
        if old is None or new is None or old == new or old.version != new.version:
            return
        protected = self.payload_protected.get(hoa, False)
        if k:
            # §10.3.1 K set: the HA moves its IKE SA; MIGRATE carries it to iked
            if protected:
                self._migrate(payload_selectors(hoa, at_home_agent=True), MigrateRequest(
                    self.home_agent, old, self.home_agent, new, "tunnel", PAYLOAD_REQID),
                    k_bit=True)
            else:
                self._migrate(bu_selectors(hoa, self.home_agent, at_home_agent=True),
                              MigrateRequest(self.home_agent, old, self.home_agent, new,
                                             "transport", BU_REQID), k_bit=True)

    def discard_ike(self, identity: str, address) -> None:
        """§10.3.1 with K clear: the IKE SAs of ``identity`` at the old address go."""
        for sa in list(self.ike.sas.values()):
            if sa.initiator or sa.state == "CLOSED" or sa.peer_id is None:
                continue
            if sa.peer_identity == identity and address is not None \
                    and sa.remote == address:
                self._request(f"DISCARD IKE SA of {identity} at {address}", identity=identity)
                self.ike.forget(sa)

    def restarted(self) -> None:
        """The home agent rebooted (:meth:`HomeAgent.restart`): the IKE daemon loses every
        IKE SA and with them the child SAs, their leases and PAD bindings; the SPD entries
        this module wrote for the home addresses it had learned go as well (a reboot
        keeps only configuration: here, the IKE bypass entries)."""
        self.ike.restart()
        for policy in list(self.node.ipsec.spd):
            if policy.owner == MOBILITY:
                self.socket.send(KeyMessage("SPDDELETE", policy_index=policy.index))
        self.payload_protected.clear()
        self.identities.clear()

    def binding_deleted(self, hoa: IPv6) -> None:
        """The binding is gone: no tunnel, so no payload entry; the BU/BA entry stays
        for the HoA's next registration."""
        if self.payload_protected.pop(hoa, False):
            self._spddelete(payload_selectors(hoa, at_home_agent=True))


def _single_address(selectors) -> ipaddress._BaseAddress | None:
    if len(selectors) != 1:
        return None
    network = selectors[0].network()
    if network is None or network.prefixlen != network.max_prefixlen:
        return None
    return network.network_address
