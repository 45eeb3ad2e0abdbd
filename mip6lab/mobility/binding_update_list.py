"""The mobile node's Binding Update List and its home registration rules.

Follows RFC 6275 §11.1 (the Binding Update List), §11.7.1 (sending a home registration
Binding Update: H and A set, K when IKE can follow the CoA, refresh "well before the
expiration"), §11.7.3 (receiving a Binding Acknowledgement: matching sequence number,
accepted < 128, lifetime correction, 135 = resynchronize the sequence number, the K
bit), §11.8 (retransmission with exponential back-off from INITIAL_BINDACK_TIMEOUT, or
InitialBindackTimeoutFirstReg for a first registration, up to MAX_BINDACK_TIMEOUT, each
retransmission with a greater Sequence Number) and RFC 5555 §4.2 (the NAT Detection
option switches the tunnel to UDP encapsulation).

Everything that changes an entry's state lives here, in the table
:data:`BINDING_UPDATE_LIST_TRANSITIONS`. Sans-I/O: the caller passes ``now`` (integer
microseconds), asks :meth:`BindingUpdateList.get_timer`, calls
:meth:`BindingUpdateList.handle_timer`, feeds Binding Acknowledgements to
:meth:`BindingUpdateList.process_ba`, and performs the returned events (send this BU,
move IKE to the new CoA, ...). The BA handed in is assumed to have passed the IPsec
check (§11.7.3's first test), which belongs to the IPsec layer.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional, Union

from ..errors import LocalProtocolError
from .constants import (
    INITIAL_BINDACK_TIMEOUT_FIRST_REG_US,
    INITIAL_BINDACK_TIMEOUT_US,
    LIFETIME_UNIT_US,
    MAX_BINDACK_TIMEOUT_US,
    SEQUENCE_MODULUS,
    BindingAckStatus,
    next_sequence_number,
)

IPv6 = ipaddress.IPv6Address
IPv4 = ipaddress.IPv4Address
Status = BindingAckStatus


class RegistrationState(Enum):
    NOT_REGISTERED = "not registered"
    REGISTERING = "registering"        # BU outstanding, no binding at the HA yet
    REGISTERED = "registered"
    REFRESHING = "refreshing"          # BU outstanding (refresh or new CoA), binding held
    DEREGISTERING = "deregistering"    # lifetime-0 BU outstanding
    REJECTED = "rejected"              # §11.7.3: "future Binding Updates SHOULD NOT be sent"


S = RegistrationState
#: (state, event) -> state. Missing pairs are protocol errors (LocalProtocolError for
#: our own calls; an unexpected BA is silently ignored, as §11.7.3 says).
BINDING_UPDATE_LIST_TRANSITIONS: dict[tuple[RegistrationState, str], RegistrationState] = {
    (S.NOT_REGISTERED, "register"): S.REGISTERING,
    (S.REJECTED, "register"): S.REGISTERING,
    (S.REGISTERING, "register"): S.REGISTERING,        # moved again before the BA
    (S.REGISTERED, "register"): S.REFRESHING,          # new CoA
    (S.REFRESHING, "register"): S.REFRESHING,
    (S.REGISTERED, "refresh"): S.REFRESHING,           # §11.7.1 refresh
    (S.REGISTERED, "deregister"): S.DEREGISTERING,     # back home
    (S.REFRESHING, "deregister"): S.DEREGISTERING,
    (S.REGISTERING, "deregister"): S.DEREGISTERING,
    (S.REGISTERING, "accepted"): S.REGISTERED,
    (S.REFRESHING, "accepted"): S.REGISTERED,
    (S.DEREGISTERING, "accepted"): S.NOT_REGISTERED,
    (S.REGISTERING, "rejected"): S.REJECTED,
    (S.REFRESHING, "rejected"): S.REJECTED,
    (S.DEREGISTERING, "rejected"): S.REJECTED,
    (S.REGISTERING, "out_of_window"): S.REGISTERING,   # 135: resync and retry
    (S.REFRESHING, "out_of_window"): S.REFRESHING,
    (S.DEREGISTERING, "out_of_window"): S.DEREGISTERING,
    (S.REGISTERED, "expire"): S.NOT_REGISTERED,
    (S.REFRESHING, "expire"): S.REGISTERING,           # still trying, binding gone
}
_OUTSTANDING = {S.REGISTERING, S.REFRESHING, S.DEREGISTERING}


def _transition(state: RegistrationState, event: str) -> RegistrationState:
    try:
        return BINDING_UPDATE_LIST_TRANSITIONS[(state, event)]
    except KeyError:
        raise LocalProtocolError(f"binding update list: no transition for {event!r} "
                                 f"in {state.value}")


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class SendBindingUpdate:
    """Send this home registration BU (§11.7.1: H=1, A=1, HAO, Alternate CoA)."""

    home_agent: IPv6
    home_address: IPv6
    care_of_address: Optional[IPv6]
    sequence_number: int
    lifetime: int               # 4-second units
    k: bool
    l: bool  # noqa: E741
    retransmission: int = 0     # 0 = first transmission
    ipv4_home_address: Optional[IPv4] = None
    ipv4_care_of_address: Optional[IPv4] = None
    f: bool = False
    h: bool = True
    a: bool = True


@dataclass(frozen=True)
class RegistrationAccepted:
    home_address: IPv6
    status: BindingAckStatus
    lifetime: int
    expiry_us: int


@dataclass(frozen=True)
class Deregistered:
    home_address: IPv6


@dataclass(frozen=True)
class RegistrationRejected:
    home_address: IPv6
    status: BindingAckStatus


@dataclass(frozen=True)
class SequenceNumberResynchronized:
    home_address: IPv6
    old: int
    new: int


@dataclass(frozen=True)
class PrefixDiscoveryNeeded:
    """§11.7.3, status 1: send a Mobile Prefix Solicitation."""

    home_address: IPv6


@dataclass(frozen=True)
class MoveKeyManagementEndpoint:
    """§11.7.3, K set: move our IKE endpoint to the new care-of address (RFC 4877 §7.4)."""

    home_agent: IPv6
    new_address: IPv6


@dataclass(frozen=True)
class DiscardKeyManagementConnections:
    """§11.7.3, K clear: discard IKE connections to the HA (and possibly start anew)."""

    home_agent: IPv6


@dataclass(frozen=True)
class UseUdpEncapsulation:
    """RFC 5555 §4.2: the BA carried a NAT Detection option; tunnel in IPv4/UDP."""

    home_address: IPv6
    nat_detected: bool


@dataclass(frozen=True)
class BindingLifetimeExpired:
    home_address: IPv6


Event = Union[SendBindingUpdate, RegistrationAccepted, Deregistered, RegistrationRejected,
              SequenceNumberResynchronized, PrefixDiscoveryNeeded, MoveKeyManagementEndpoint,
              DiscardKeyManagementConnections, UseUdpEncapsulation, BindingLifetimeExpired]


# ---------------------------------------------------------------------------- entries


@dataclass(slots=True)
class BindingUpdateListEntry:
    """One Binding Update List entry (RFC 6275 §11.1) for a home registration."""

    home_agent: IPv6
    home_address: IPv6
    care_of_address: Optional[IPv6] = None
    ipv4_home_address: Optional[IPv4] = None
    ipv4_care_of_address: Optional[IPv4] = None
    state: RegistrationState = RegistrationState.NOT_REGISTERED
    #: "the maximum value of the Sequence Number field sent in previous Binding Updates"
    sequence_number: int = 0
    lifetime: int = 0             # "initial value of the Lifetime field sent" (units)
    sent_at_us: int = 0           # "the time at which the Lifetime field was sent"
    k: bool = False
    l: bool = False  # noqa: E741
    f: bool = False
    granted_lifetime: int = 0     # units, from the last accepted BA
    expiry_us: Optional[int] = None      # binding at the HA ends here
    refresh_at_us: Optional[int] = None
    #: §11.8 state of the outstanding BU
    retransmission_timeout_us: int = INITIAL_BINDACK_TIMEOUT_US
    next_retransmission_us: Optional[int] = None
    retransmissions: int = 0
    #: sequence numbers of the outstanding BU's transmissions -> when sent
    outstanding: dict[int, int] = field(default_factory=dict)
    udp_encapsulation: bool = False

    def _bu(self) -> SendBindingUpdate:
        deregistering = self.state is RegistrationState.DEREGISTERING
        return SendBindingUpdate(
            self.home_agent, self.home_address,
            self.home_address if deregistering else self.care_of_address,
            self.sequence_number, 0 if deregistering else self.lifetime,
            self.k, self.l, self.retransmissions, self.ipv4_home_address,
            self.ipv4_care_of_address, self.f)


class BindingUpdateList:
    """The mobile node's home registrations, one entry per home address.

    ``refresh_fraction``: the refresh BU leaves after this fraction of the granted
    lifetime (§11.7.1 "well before the expiration"), or earlier if the HA sent a
    Binding Refresh Advice (§11.7.3).
    """

    def __init__(self, *, initial_sequence_number: int = 0, refresh_fraction: float = 0.75,
                 initial_timeout_us: int = INITIAL_BINDACK_TIMEOUT_US,
                 initial_timeout_first_registration_us: int = INITIAL_BINDACK_TIMEOUT_FIRST_REG_US,
                 max_timeout_us: int = MAX_BINDACK_TIMEOUT_US) -> None:
        if not 0 <= initial_sequence_number < SEQUENCE_MODULUS:
            raise LocalProtocolError("sequence numbers are 16-bit")
        if not 0 < refresh_fraction < 1:
            raise LocalProtocolError("refresh_fraction must be in (0, 1)")
        self.initial_sequence_number = initial_sequence_number
        self.refresh_fraction = refresh_fraction
        self.initial_timeout_us = initial_timeout_us
        self.initial_timeout_first_registration_us = initial_timeout_first_registration_us
        self.max_timeout_us = max_timeout_us
        self._entries: dict[IPv6, BindingUpdateListEntry] = {}

    def get(self, home_address: IPv6) -> Optional[BindingUpdateListEntry]:
        return self._entries.get(home_address)

    # --------------------------------------------------------------- sending

    def register(self, home_agent: IPv6, home_address: IPv6, care_of_address: Optional[IPv6],
                 lifetime: int, now: int, *, k: bool = False, l: bool = False,  # noqa: E741
                 ipv4_home_address: Optional[IPv4] = None,
                 ipv4_care_of_address: Optional[IPv4] = None, f: bool = False) -> list[Event]:
        """Register (or move to) ``care_of_address`` (§11.7.1). Lifetime in 4 s units."""
        if not 0 < lifetime < 1 << 16:
            raise LocalProtocolError("§11.7.1: the Lifetime of a registration MUST be non-zero")
        entry = self._entries.get(home_address)
        if entry is None:
            entry = BindingUpdateListEntry(
                home_agent, home_address,
                sequence_number=(self.initial_sequence_number - 1) % SEQUENCE_MODULUS)
            self._entries[home_address] = entry
        entry.state = _transition(entry.state, "register")
        entry.care_of_address = care_of_address
        entry.ipv4_home_address, entry.ipv4_care_of_address = ipv4_home_address, ipv4_care_of_address
        entry.lifetime, entry.k, entry.l, entry.f = lifetime, k, l, f
        return [self._start(entry, now)]

    def deregister(self, home_address: IPv6, now: int) -> list[Event]:
        """Back home: a BU with Lifetime 0 and CoA = HoA (§11.5.5 / §10.3.2)."""
        entry = self._require(home_address)
        entry.state = _transition(entry.state, "deregister")
        return [self._start(entry, now)]

    def _start(self, entry: BindingUpdateListEntry, now: int) -> SendBindingUpdate:
        entry.outstanding = {}
        entry.retransmissions = 0
        # §11.8: the long first timeout only "if ... does not have an existing binding".
        entry.retransmission_timeout_us = (
            self.initial_timeout_first_registration_us
            if entry.state is S.REGISTERING else self.initial_timeout_us)
        return self._transmit(entry, now)

    def _transmit(self, entry: BindingUpdateListEntry, now: int) -> SendBindingUpdate:
        # §11.8: "Retransmitted Binding Updates MUST use a Sequence Number value greater
        # than that used for the previous transmission".
        entry.sequence_number = next_sequence_number(entry.sequence_number)
        entry.outstanding[entry.sequence_number] = now
        entry.sent_at_us = now
        entry.next_retransmission_us = now + entry.retransmission_timeout_us
        entry.refresh_at_us = None
        return entry._bu()

    def _require(self, home_address: IPv6) -> BindingUpdateListEntry:
        entry = self._entries.get(home_address)
        if entry is None:
            raise LocalProtocolError(f"no Binding Update List entry for {home_address}")
        return entry

    # ----------------------------------------------------------------- timers

    def get_timer(self) -> Optional[int]:
        """The earliest time :meth:`handle_timer` has something to do."""
        times = [t for e in self._entries.values()
                 for t in (e.next_retransmission_us, e.refresh_at_us, e.expiry_us)
                 if t is not None]
        return min(times, default=None)

    def handle_timer(self, now: int) -> list[Event]:
        events: list[Event] = []
        for entry in self._entries.values():
            if entry.expiry_us is not None and entry.expiry_us <= now:
                entry.expiry_us = None
                entry.refresh_at_us = None
                entry.state = _transition(entry.state, "expire")
                events.append(BindingLifetimeExpired(entry.home_address))
            if entry.state in _OUTSTANDING and entry.next_retransmission_us is not None \
                    and entry.next_retransmission_us <= now:
                # §11.8: double, up to MAX_BINDACK_TIMEOUT, then keep that rate.
                entry.retransmission_timeout_us = min(2 * entry.retransmission_timeout_us,
                                                      self.max_timeout_us)
                entry.retransmissions += 1
                events.append(self._transmit(entry, now))
            elif entry.state is S.REGISTERED and entry.refresh_at_us is not None \
                    and entry.refresh_at_us <= now:
                entry.state = _transition(entry.state, "refresh")
                events.append(self._start(entry, now))
        return events

    # ------------------------------------------------------------ BA processing

    def process_ba(self, home_address: IPv6, status: int, sequence_number: int,
                   lifetime: int, now: int, *, k: bool = False,
                   refresh_interval: Optional[int] = None,
                   nat_detection: Optional[bool] = None) -> list[Event]:
        """A Binding Acknowledgement (already IPsec-verified) from the home agent.

        ``lifetime`` and ``refresh_interval`` (Binding Refresh Advice) in 4 s units;
        ``nat_detection`` is ``None`` without a NAT Detection option, else its F flag.
        Returns ``[]`` when §11.7.3 says to ignore it silently.
        """
        entry = self._entries.get(home_address)
        if entry is None or entry.state not in _OUTSTANDING:
            return []
        status = Status(status)
        if status is Status.SEQUENCE_NUMBER_OUT_OF_WINDOW:
            # §11.7.3: "update its binding sequence number appropriately to match the
            # sequence number given in the Binding Acknowledgement", then retry (§11.8
            # keeps the back-off running; the new BU goes now with that number + 1).
            old = entry.sequence_number
            entry.state = _transition(entry.state, "out_of_window")
            entry.sequence_number = sequence_number
            return [SequenceNumberResynchronized(home_address, old, sequence_number),
                    self._transmit(entry, now)]
        sent_at = entry.outstanding.get(sequence_number)
        if sent_at is None:
            return []   # §11.7.3: no outstanding BU with this sequence number
        if not status.accepted:
            entry.state = _transition(entry.state, "rejected")
            entry.next_retransmission_us = None
            entry.outstanding = {}
            return [RegistrationRejected(home_address, status)]
        deregistering = entry.state is S.DEREGISTERING
        entry.state = _transition(entry.state, "accepted")
        entry.next_retransmission_us = None
        entry.outstanding = {}
        events: list[Event] = []
        if deregistering:
            entry.expiry_us = entry.refresh_at_us = None
            entry.granted_lifetime = 0
            events.append(Deregistered(home_address))
        else:
            # §11.7.3: max(L_remain - (L_update - L_ack), 0), i.e. count L_ack down from
            # the moment this BU left.
            entry.granted_lifetime = min(lifetime, entry.lifetime)
            entry.expiry_us = sent_at + entry.granted_lifetime * LIFETIME_UNIT_US
            refresh_after = int(entry.granted_lifetime * LIFETIME_UNIT_US * self.refresh_fraction)
            if refresh_interval is not None:
                refresh_after = min(refresh_after, refresh_interval * LIFETIME_UNIT_US)
            entry.refresh_at_us = sent_at + refresh_after
            events.append(RegistrationAccepted(home_address, status, entry.granted_lifetime,
                                               entry.expiry_us))
            if status is Status.ACCEPTED_PREFIX_DISCOVERY_NECESSARY:
                events.append(PrefixDiscoveryNeeded(home_address))
            if nat_detection is not None:
                # RFC 5555 §3.2.2: F set = "UDP encapsulation is required"; clear = tunnel
                # in plain IPv4 (§4.2: "unless the home agent forces UDP encapsulation")
                entry.udp_encapsulation = bool(nat_detection)
                events.append(UseUdpEncapsulation(home_address, nat_detected=bool(nat_detection)))
        new_endpoint = home_address if deregistering else entry.care_of_address
        if k and new_endpoint is not None:
            events.append(MoveKeyManagementEndpoint(entry.home_agent, new_endpoint))
        elif not k:
            events.append(DiscardKeyManagementConnections(entry.home_agent))
        return events
