"""The home agent's Binding Cache and its processing of a home registration.

Follows RFC 6275 §9.1 (Binding Cache conceptual data), §9.5.1 (validating a Binding
Update: the modulo-2**16 Sequence Number check, status 135 and 139), §10.3.1 (primary
care-of address registration: statuses 131, 132, 129/130, 134, lifetime, the A/H/L/K
flags), §10.3.2 (de-registration: 133) and §10.3.1's opening authorization step, which
RFC 4877 §4.2 makes concrete: "The home agent MUST be able to prevent a mobile node from
using its security association to send a Binding Update on behalf of another mobile
node ... the home agent MUST be able to verify that the identity presented in the
IKE_AUTH exchange is allowed to create security associations for a particular home
address." RFC 5555 §4.2 and §4.4 add the IPv4 home and care-of addresses and the NAT
detection that switches the tunnel to UDP encapsulation.

Everything that decides what becomes of a Binding Update lives in this file, and the
order of the checks is the table :data:`HOME_REGISTRATION_CHECKS`, read top to bottom;
the lifecycle of an entry is :data:`BINDING_CACHE_TRANSITIONS`. No packets, no
sockets, no clock: the caller passes the Binding Update's fields, the IKE identity that
protected it, a PAD look-up, and ``now`` (integer microseconds), and gets back the
status, the entry, and events (including the Binding Acknowledgement to send).

Theory of operation
-------------------
``process_bu`` runs the checks in order; the first that fails gives the status, and a
refused Binding Update leaves the cache exactly as it was. The order is §10.3.1's:
131 (not a home agent), 132 (not home subnet), then the home agent's "any other reason"
step -- the PAD authorization (129, see below) and resources (130) -- then §9.5.1's
validation (139 registration type change, 135 sequence number), then for a deletion
§10.3.2's 133, and for a new binding §10.3.1's Duplicate Address Detection (134). The
authorization comes before the sequence check on purpose: a 135 reply carries "the last
accepted sequence number" (§9.5.1), so checking the sequence first would let MN A learn
MN B's counter through its own SA.

Which status for the PAD refusal. RFC 4877 §4.2 requires the refusal but names no code;
RFC 6275 §10.3.1 says "if the home agent chooses to reject the Binding Update for any
other reason ... the Status field is set to an appropriate value". 133 "not home agent
for this mobile node" is the code §10.3.2 gives a *de-registration* for a home address
with no home registration -- a statement about the cache, and an HA that does serve the
HoA would be lying. The refusal is a policy decision of the PAD (RFC 4301 §4.4.3), so it
is 129 "administratively prohibited".
"""

from __future__ import annotations

import heapq
import ipaddress
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Collection, Hashable, Iterable, NamedTuple, Optional, Union

from ..errors import LocalProtocolError
from .constants import (
    LIFETIME_UNIT_US,
    BindingAckStatus,
    sequence_number_greater,
)

IPv6 = ipaddress.IPv6Address
IPv4 = ipaddress.IPv4Address
Status = BindingAckStatus
#: The UDP port of DSMIP6 (RFC 5555 §4.1).
DSMIP6_UDP_PORT = 4191


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class BindingUpdateRequest:
    """The fields of a received Binding Update that the home agent decides on.

    ``lifetime`` is the BU's Lifetime field, in time units of 4 seconds (§6.1.7).
    ``home_address`` is the Home Address option's address (§10.3.1), ``care_of_address``
    the Alternate Care-of Address option's (§11.7.1), or ``None`` when the care-of
    address is IPv4 only (RFC 5555 §4.4). The RFC 5555 fields: ``ipv4_home_address`` of
    the IPv4 Home Address option, ``ipv4_care_of_address`` of the IPv4 CoA option, and,
    when the BU arrived in IPv4/UDP, the outer source address and port
    (``outer_ipv4_source``, ``outer_udp_source_port``).
    """

    home_address: IPv6
    care_of_address: Optional[IPv6]
    sequence_number: int
    lifetime: int
    a: bool = True
    h: bool = True
    l: bool = False  # noqa: E741 (the RFC's name)
    k: bool = False
    f: bool = False  # RFC 5555 §3.1: force UDP encapsulation
    ipv4_home_address: Optional[IPv4] = None
    ipv4_care_of_address: Optional[IPv4] = None
    outer_ipv4_source: Optional[IPv4] = None
    outer_udp_source_port: Optional[int] = None

    def __post_init__(self) -> None:
        if not 0 <= self.sequence_number < 1 << 16:
            raise LocalProtocolError(f"sequence number {self.sequence_number} is not 16-bit")
        if not 0 <= self.lifetime < 1 << 16:
            raise LocalProtocolError(f"lifetime {self.lifetime} is not 16-bit")
        if self.care_of_address is None and self.ipv4_care_of_address is None:
            raise LocalProtocolError("a Binding Update needs an IPv6 or an IPv4 care-of address")

    @property
    def udp_encapsulated(self) -> bool:
        return self.outer_ipv4_source is not None

    @property
    def is_deregistration(self) -> bool:
        """§6.1.7 / §10.3.2: Lifetime 0, or the care-of address equal to the home
        address (the MN back home)."""
        return self.lifetime == 0 or self.care_of_address == self.home_address


def invalid_care_of_address(address: Union[IPv6, IPv4],
                            own: Collection[Union[IPv6, IPv4]] = ()) -> Optional[str]:
    """Why ``address`` cannot be a care-of address, or None.

    RFC 6275 §6.1.7: "The care-of address MUST be a unicast routable address ... Binding
    Updates for a care-of address that is not a unicast routable address MUST be silently
    discarded." The same holds for an IPv4 care-of address (RFC 5555 §3.1.2 gives no
    status of its own for a bad one); and a binding to one of the home agent's own
    addresses (``own``) would loop the tunnel back into the home agent."""
    if address in own:
        return f"{address} is the home agent's own address"
    if address.is_unspecified or address.is_loopback or address.is_multicast \
            or address.is_link_local:
        return f"{address} is not a unicast routable address"
    if address.version == 4 and address.is_reserved:     # 240/4, 255.255.255.255 included
        return f"{address} is not a unicast routable address (reserved or broadcast)"
    if address.version == 6 and address.ipv4_mapped is not None:
        return f"{address} is an IPv4-mapped address, not an IPv6 care-of address"
    return None


# ---------------------------------------------------------------------------- entries


class BindingState(Enum):
    """An entry's life: absent (no entry) or registered."""

    ABSENT = "absent"
    REGISTERED = "registered"


#: (state, event) -> state. An event with no entry here is a bug (LocalProtocolError).
BINDING_CACHE_TRANSITIONS: dict[tuple[BindingState, str], BindingState] = {
    (BindingState.ABSENT, "register"): BindingState.REGISTERED,      # §10.3.1 new entry
    (BindingState.REGISTERED, "register"): BindingState.REGISTERED,  # §10.3.1 update
    (BindingState.REGISTERED, "deregister"): BindingState.ABSENT,    # §10.3.2
    (BindingState.REGISTERED, "expire"): BindingState.ABSENT,        # §10.3.1 "deleted ...
}                                                                    #  after ... lifetime"


def _transition(state: BindingState, event: str) -> BindingState:
    try:
        return BINDING_CACHE_TRANSITIONS[(state, event)]
    except KeyError:
        raise LocalProtocolError(f"binding cache: no transition for {event!r} in {state.value}")


@dataclass(frozen=True)
class BindingCacheEntry:
    """One Binding Cache entry (RFC 6275 §9.1), plus what RFC 4877 and RFC 5555 add.

    Immutable: an update makes a new entry, so a refused Binding Update cannot have
    half-changed one.
    """

    home_address: IPv6
    care_of_address: Optional[IPv6]
    sequence_number: int
    lifetime: int            # granted, in 4-second units (returned in the BA)
    registered_at_us: int
    expiry_us: int
    h: bool = True           # "home registration" flag of §9.1
    a: bool = True
    l: bool = False  # noqa: E741
    k: bool = False          # the K bit as returned in the BA
    ike_identity: Hashable = None   # RFC 4877 §4.2: the identity that protected the BU
    ipv4_home_address: Optional[IPv4] = None
    ipv4_care_of_address: Optional[IPv4] = None
    nat_detected: bool = False       # RFC 5555 §4.2
    udp_encapsulation: bool = False  # NAT detected, or F flag honoured
    nat_ipv4_address: Optional[IPv4] = None  # where the HA sends (outer source of the BU)
    nat_udp_port: Optional[int] = None       # ... and the BU's UDP source port

    @property
    def hoa(self) -> IPv6:
        return self.home_address

    @property
    def coa(self) -> Optional[IPv6]:
        return self.care_of_address

    @property
    def ipv4_hoa(self) -> Optional[IPv4]:
        return self.ipv4_home_address

    @property
    def ipv4_coa(self) -> Optional[IPv4]:
        return self.ipv4_care_of_address

    def remaining_lifetime_us(self, now: int) -> int:
        return max(self.expiry_us - now, 0)

    def row(self, now: int) -> dict[str, object]:
        """A display row (see :meth:`BindingCache.table`)."""
        flags = "".join(name for name, on in
                        (("H", self.h), ("A", self.a), ("L", self.l), ("K", self.k)) if on)
        return {
            "hoa": str(self.home_address),
            "coa": str(self.care_of_address) if self.care_of_address else "-",
            "ipv4_hoa": str(self.ipv4_home_address) if self.ipv4_home_address else "-",
            "ipv4_coa": str(self.ipv4_care_of_address) if self.ipv4_care_of_address else "-",
            "seq": self.sequence_number,
            "lifetime_s": self.remaining_lifetime_us(now) // 1_000_000,
            "flags": flags or "-",
            "nat": (f"{self.nat_ipv4_address}:{self.nat_udp_port}"
                    if self.udp_encapsulation else "-"),
            "ike_identity": str(self.ike_identity),
        }


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True)
class SendBindingAcknowledgement:
    """The Binding Acknowledgement to return (§10.3.1, §10.3.2, §9.5.1; RFC 5555 §4.2).

    ``sequence_number`` is the BU's, except for 135, where it is the last accepted one.
    ``nat_detection`` is ``None`` (no NAT Detection option) or the option's F flag."""

    home_address: IPv6
    status: BindingAckStatus
    sequence_number: int
    lifetime: int
    k: bool = False
    nat_detection: Optional[bool] = None
    ipv4_address_acknowledgement: Optional[int] = None  # RFC 5555 §3.2.1 status


@dataclass(frozen=True)
class BindingCreated:
    entry: BindingCacheEntry


@dataclass(frozen=True)
class BindingUpdated:
    old: BindingCacheEntry
    entry: BindingCacheEntry


@dataclass(frozen=True)
class BindingDeleted:
    entry: BindingCacheEntry


@dataclass(frozen=True)
class BindingExpired:
    entry: BindingCacheEntry


@dataclass(frozen=True)
class BindingUpdateRefused:
    """A trace event for every refusal (issue 5 item 1 wants one for the PAD case)."""

    home_address: IPv6
    status: BindingAckStatus
    reason: str
    ike_identity: Hashable = None


@dataclass(frozen=True)
class MoveKeyManagementEndpoint:
    """§10.3.1, K = 1: move the IKE peer endpoint to ``new_address`` (the new CoA, or
    the HoA on de-registration, §10.3.2). RFC 4877 §7.4: the IKE SA follows by MIGRATE."""

    ike_identity: Hashable
    old_address: Optional[IPv6]
    new_address: IPv6


@dataclass(frozen=True)
class DiscardKeyManagementConnections:
    """§10.3.1, K = 0: discard key management connections to the old care-of address
    (or, with no previous binding, to the home address)."""

    ike_identity: Hashable
    address: Optional[IPv6]


Event = Union[SendBindingAcknowledgement, BindingCreated, BindingUpdated, BindingDeleted,
              BindingExpired, BindingUpdateRefused, MoveKeyManagementEndpoint,
              DiscardKeyManagementConnections]


class BindingUpdateResult(NamedTuple):
    """``(status, entry, events)``. ``entry`` is the entry now in the cache for the HoA
    (the new one if accepted, the unchanged old one if refused, ``None`` if there is
    none -- e.g. after a de-registration)."""

    status: BindingAckStatus
    entry: Optional[BindingCacheEntry]
    events: list


# ------------------------------------------------------------------------ home agent

PadLookup = Callable[[Hashable], Iterable[Union[IPv6, IPv4]]]


#: The binding cache's default bound: far above a lab (a class of MNs), low enough that a
#: flood of registrations cannot exhaust the HA's memory.
DEFAULT_MAX_ENTRIES = 4096
#: Home registrations one IKE identity may hold by default: an MN has one home address
#: per home prefix (RFC 6275 §5.1), 4 leaves room for several prefixes.
DEFAULT_MAX_ENTRIES_PER_IDENTITY = 4


@dataclass
class HomeAgentConfiguration:
    """What §10.3.1 leaves to the home agent.

    ``home_prefixes`` is its Prefix List, with each prefix's valid-lifetime end in
    microseconds (``None``: infinite), which caps the binding's lifetime (§10.3.1).
    ``max_lifetime`` (4-second units) is the local policy of "The home agent MAY further
    decrease the specified lifetime". ``key_management_mobility`` is the HA's half of the
    K bit ("the home agent has the capability to update its endpoint").

    Denial-of-service bounds (docs/security.md), answered with status 130, Insufficient
    resources (§6.1.8; §10.3.1: the HA "MAY" refuse for lack of resources), ``None`` for
    none: ``max_entries`` bounds the whole cache, so that authenticated MNs cannot grow
    it without end; ``max_entries_per_identity`` bounds what one IKE identity may hold
    (an MN given a whole home prefix, RFC 5026, could otherwise register one home address
    after another). An existing entry may always be refreshed or deleted.
    """

    home_prefixes: dict[ipaddress.IPv6Network, Optional[int]] = field(default_factory=dict)
    is_home_agent: bool = True
    max_lifetime: int = 0xFFFF
    max_entries: Optional[int] = DEFAULT_MAX_ENTRIES
    max_entries_per_identity: Optional[int] = DEFAULT_MAX_ENTRIES_PER_IDENTITY
    key_management_mobility: bool = False
    accept_forced_udp_encapsulation: bool = True

    def __post_init__(self) -> None:
        self.home_prefixes = {ipaddress.IPv6Network(p): v for p, v in self.home_prefixes.items()}


@dataclass
class _Context:
    """What one Binding Update is checked against (internal to process_bu)."""

    cache: "BindingCache"
    bu: BindingUpdateRequest
    identity: Hashable
    authorized: Collection
    existing: Optional[BindingCacheEntry]
    duplicate_address: Callable[[IPv6], bool]
    now: int


def _check_home_agent(c: _Context) -> Optional[str]:
    # §10.3.1 first test; a BU with H=1 to a node that is not a home agent.
    if c.bu.h and not c.cache.config.is_home_agent:
        return "not configured as a home agent"
    return None


def _check_home_subnet(c: _Context) -> Optional[str]:
    # §10.3.1: "not an on-link IPv6 address with respect to the home agent's current
    # Prefix List".
    if c.cache.prefix_of(c.bu.home_address, c.now) is None:
        return f"{c.bu.home_address} is not on a home prefix"
    return None


def _check_pad_authorization(c: _Context) -> Optional[str]:
    # RFC 4877 §4.2 (see the module docstring for the choice of 129).
    if c.bu.home_address not in c.authorized:
        return (f"IKE identity {c.identity!r} is not authorized in the PAD for "
                f"{c.bu.home_address}")
    if c.bu.ipv4_home_address is not None and c.bu.ipv4_home_address not in c.authorized:
        # RFC 5555 §4.4: the HA "MUST check that this address is allocated to the mobile
        # node that has the IPv6 home address".
        return (f"IKE identity {c.identity!r} is not authorized for IPv4 home address "
                f"{c.bu.ipv4_home_address}")
    return None


def _check_resources(c: _Context) -> Optional[str]:
    # §10.3.1 / §6.1.8 status 130: a new entry beyond the cache's bound, or beyond what
    # one identity may hold (an unknown identity, None, is bounded by the cache alone).
    if c.existing is not None or c.bu.is_deregistration:
        return None
    limit = c.cache.config.max_entries
    if limit is not None and len(c.cache) >= limit:
        return f"binding cache full ({limit} entries)"
    per_identity = c.cache.config.max_entries_per_identity
    if per_identity is not None and c.identity is not None:
        held = c.cache.held_by(c.identity)
        if held >= per_identity:
            return (f"IKE identity {c.identity!r} holds {held} bindings, the limit per "
                    f"identity is {per_identity}")
    return None


def _check_registration_type(c: _Context) -> Optional[str]:
    # §9.5.1: an existing binding whose home registration flag differs from H.
    if c.existing is not None and c.existing.h != c.bu.h:
        return "registration type change"
    return None


def _check_sequence_number(c: _Context) -> Optional[str]:
    # §9.5.1: with no entry any value is accepted; else greater modulo 2**16.
    if c.existing is not None and not sequence_number_greater(
            c.bu.sequence_number, c.existing.sequence_number):
        return (f"sequence number {c.bu.sequence_number} not greater than "
                f"{c.existing.sequence_number}")
    return None


def _check_forced_udp(c: _Context) -> Optional[str]:
    # RFC 5555 §4.5: "If the F flag in the binding update is set, the home agent needs
    # to determine whether it accepts forcing UDP encapsulation. If it does not, the
    # binding acknowledgement is sent with error code 144."
    if c.bu.f and not c.bu.is_deregistration and \
            not c.cache.config.accept_forced_udp_encapsulation:
        return "forced UDP encapsulation (F flag) is not accepted here"
    return None


def _check_home_registration_exists(c: _Context) -> Optional[str]:
    # §10.3.2: a de-registration with no home registration entry.
    if c.bu.is_deregistration and c.existing is None:
        return "de-registration for a home address with no home registration"
    return None


def _check_duplicate_address(c: _Context) -> Optional[str]:
    # §10.3.1: DAD unless a binding exists; with L=1 also the derived link-local.
    if c.existing is not None or c.bu.is_deregistration:
        return None
    addresses = [c.bu.home_address]
    if c.bu.l:
        addresses.append(link_local_of(c.bu.home_address))
    for address in addresses:
        if c.duplicate_address(address):
            return f"duplicate address detection failed for {address}"
    return None


#: The checks of a home registration, in the order they run: (status, check). A check
#: returns ``None`` to pass, or the reason for the trace.
HOME_REGISTRATION_CHECKS: tuple[tuple[BindingAckStatus, Callable[[_Context], Optional[str]]], ...] = (
    (Status.HOME_REGISTRATION_NOT_SUPPORTED, _check_home_agent),            # §10.3.1
    (Status.NOT_HOME_SUBNET, _check_home_subnet),                           # §10.3.1
    (Status.ADMINISTRATIVELY_PROHIBITED, _check_pad_authorization),         # RFC 4877 §4.2
    (Status.INSUFFICIENT_RESOURCES, _check_resources),                      # §10.3.1
    (Status.REGISTRATION_TYPE_CHANGE_DISALLOWED, _check_registration_type),  # §9.5.1
    (Status.SEQUENCE_NUMBER_OUT_OF_WINDOW, _check_sequence_number),         # §9.5.1
    (Status.FORCED_UDP_ENCAPSULATION_REFUSED, _check_forced_udp),            # RFC 5555 §4.5
    (Status.NOT_HOME_AGENT_FOR_THIS_MOBILE_NODE, _check_home_registration_exists),  # §10.3.2
    (Status.DUPLICATE_ADDRESS_DETECTION_FAILED, _check_duplicate_address),  # §10.3.1
)


def link_local_of(address: IPv6) -> IPv6:
    """§10.3.1, L=1: "replacing the subnet prefix in the mobile node's home address with
    the link-local prefix" (the interface identifier is the low 64 bits)."""
    return IPv6((0xFE80 << 112) | (int(address) & ((1 << 64) - 1)))


def _never_duplicate(_address: IPv6) -> bool:
    return False


class BindingCache:
    """The home agent's Binding Cache (RFC 6275 §9.1), keyed by home address."""

    def __init__(self, config: HomeAgentConfiguration) -> None:
        self.config = config
        self._entries: dict[IPv6, BindingCacheEntry] = {}
        self._expiries: list[tuple[int, IPv6]] = []    # a heap, with stale items
        # home addresses per IKE identity: the per-identity bound is checked on every
        # new registration, and a walk over the cache would make that O(N) at an HA
        self._by_identity: dict[Hashable, set[IPv6]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, home_address: object) -> bool:
        return home_address in self._entries

    def get(self, home_address: IPv6) -> Optional[BindingCacheEntry]:
        return self._entries.get(home_address)

    def entries(self) -> list[BindingCacheEntry]:
        return list(self._entries.values())

    def entries_addresses(self) -> list[IPv6]:
        return list(self._entries)

    def held_by(self, identity: Hashable) -> int:
        """How many entries ``identity`` holds (RFC 4877 §4.2's identity of each)."""
        return len(self._by_identity.get(identity, ()))

    def _store(self, entry: BindingCacheEntry) -> None:
        old = self._entries.get(entry.home_address)
        if old is not None:
            self._unstore(old)
        self._entries[entry.home_address] = entry
        self._by_identity.setdefault(entry.ike_identity, set()).add(entry.home_address)

    def _unstore(self, entry: BindingCacheEntry) -> None:
        del self._entries[entry.home_address]
        held = self._by_identity.get(entry.ike_identity)
        if held is not None:
            held.discard(entry.home_address)
            if not held:
                del self._by_identity[entry.ike_identity]

    def state(self, home_address: IPv6) -> BindingState:
        return BindingState.REGISTERED if home_address in self._entries else BindingState.ABSENT

    def prefix_of(self, address: IPv6, now: int) -> Optional[ipaddress.IPv6Network]:
        for prefix, valid_until in self.config.home_prefixes.items():
            if address in prefix and (valid_until is None or valid_until > now):
                return prefix
        return None

    # ------------------------------------------------------------------ processing

    def process_bu(self, bu: BindingUpdateRequest, ike_identity: Hashable,
                   pad_lookup: PadLookup, now: int, *,
                   duplicate_address: Callable[[IPv6], bool] = _never_duplicate,
                   dynamic_keying: bool = True) -> BindingUpdateResult:
        """Process a home registration Binding Update protected by ``ike_identity``.

        ``pad_lookup(ike_identity)`` returns the home addresses the PAD binds to that
        identity. ``duplicate_address(addr)`` answers the DAD of §10.3.1 (the caller
        owns the home link). ``dynamic_keying``: the SAs came from IKE, not manual keys
        (a condition of the K bit, §10.3.1).
        """
        existing = self._entries.get(bu.home_address)
        context = _Context(self, bu, ike_identity, frozenset(pad_lookup(ike_identity)),
                           existing, duplicate_address, now)
        for status, check in HOME_REGISTRATION_CHECKS:
            reason = check(context)
            if reason is not None:
                return self._refuse(bu, status, reason, ike_identity, existing)
        if bu.is_deregistration:
            return self._deregister(bu, existing, ike_identity, dynamic_keying)
        return self._register(bu, existing, ike_identity, now, dynamic_keying)

    def _refuse(self, bu: BindingUpdateRequest, status: BindingAckStatus, reason: str,
                identity: Hashable, existing: Optional[BindingCacheEntry]) -> BindingUpdateResult:
        # §9.5.1: with 135 the BA carries "the last accepted sequence number".
        sequence = (existing.sequence_number
                    if status is Status.SEQUENCE_NUMBER_OUT_OF_WINDOW and existing
                    else bu.sequence_number)
        events: list = [
            BindingUpdateRefused(bu.home_address, status, reason, identity),
            SendBindingAcknowledgement(bu.home_address, status, sequence, 0),
        ]
        return BindingUpdateResult(status, existing, events)

    def _k_bit(self, bu: BindingUpdateRequest, dynamic_keying: bool) -> bool:
        # §10.3.1: all three conditions.
        return bu.k and dynamic_keying and self.config.key_management_mobility

    def _key_management_event(self, k: bool, identity: Hashable,
                              existing: Optional[BindingCacheEntry], new_address: IPv6,
                              home_address: IPv6):
        if k:
            return MoveKeyManagementEndpoint(
                identity, existing.care_of_address if existing else None, new_address)
        return DiscardKeyManagementConnections(
            identity, existing.care_of_address if existing else home_address)

    def _deregister(self, bu: BindingUpdateRequest, existing: BindingCacheEntry,
                    identity: Hashable, dynamic_keying: bool) -> BindingUpdateResult:
        _transition(BindingState.REGISTERED, "deregister")
        self._unstore(existing)
        k = self._k_bit(bu, dynamic_keying)
        events: list = [
            BindingDeleted(existing),
            # §10.3.2: "The mobile node's home address is used as its new care-of
            # address for the purposes of moving the key management connection".
            self._key_management_event(k, identity, existing, bu.home_address,
                                      bu.home_address),
            SendBindingAcknowledgement(bu.home_address, Status.ACCEPTED,
                                       bu.sequence_number, 0, k=k),
        ]
        return BindingUpdateResult(Status.ACCEPTED, None, events)

    def _register(self, bu: BindingUpdateRequest, existing: Optional[BindingCacheEntry],
                  identity: Hashable, now: int, dynamic_keying: bool) -> BindingUpdateResult:
        lifetime = self._granted_lifetime(bu, now)
        status = self._success_status(bu, lifetime, now)
        k = self._k_bit(bu, dynamic_keying)
        nat_detected = (bu.udp_encapsulated and bu.ipv4_care_of_address is not None
                        and bu.outer_ipv4_source != bu.ipv4_care_of_address)
        udp = bu.udp_encapsulated and (nat_detected or bu.f)
        entry = BindingCacheEntry(
            home_address=bu.home_address, care_of_address=bu.care_of_address,
            sequence_number=bu.sequence_number, lifetime=lifetime, registered_at_us=now,
            expiry_us=now + lifetime * LIFETIME_UNIT_US, h=bu.h, a=bu.a, l=bu.l, k=k,
            ike_identity=identity, ipv4_home_address=bu.ipv4_home_address,
            ipv4_care_of_address=bu.ipv4_care_of_address, nat_detected=nat_detected,
            udp_encapsulation=udp,
            nat_ipv4_address=bu.outer_ipv4_source if bu.udp_encapsulated else None,
            nat_udp_port=bu.outer_udp_source_port if bu.udp_encapsulated else None,
        )
        _transition(self.state(bu.home_address), "register")
        self._store(entry)
        heapq.heappush(self._expiries, (entry.expiry_us, bu.home_address))
        events: list = [BindingCreated(entry) if existing is None else BindingUpdated(existing, entry)]
        new_endpoint = bu.care_of_address if bu.care_of_address is not None else bu.home_address
        if existing is None or existing.care_of_address != bu.care_of_address:
            # A refresh from the same CoA leaves the IKE endpoint where it is.
            events.append(self._key_management_event(k, identity, existing, new_endpoint,
                                                     bu.home_address))
        events.append(SendBindingAcknowledgement(
            bu.home_address, status, bu.sequence_number, lifetime, k=k,
            # RFC 5555 §4.2: the NAT Detection option "MUST be present in the binding
            # acknowledgement message if the binding update was encapsulated in UDP".
            nat_detection=udp if bu.udp_encapsulated else None,
            ipv4_address_acknowledgement=0 if bu.ipv4_home_address is not None else None))
        return BindingUpdateResult(status, entry, events)

    def _granted_lifetime(self, bu: BindingUpdateRequest, now: int) -> int:
        # §10.3.1: not more than asked, not beyond the prefix's valid lifetime, and the
        # HA's own policy.
        lifetime = min(bu.lifetime, self.config.max_lifetime)
        prefix = self.prefix_of(bu.home_address, now)
        valid_until = self.config.home_prefixes.get(prefix) if prefix else None
        if valid_until is not None:
            lifetime = min(lifetime, (valid_until - now) // LIFETIME_UNIT_US)
        return lifetime

    def _success_status(self, bu: BindingUpdateRequest, lifetime: int, now: int) -> BindingAckStatus:
        # §10.3.1: 1 if the prefix "becomes invalid at the end of the lifetime".
        prefix = self.prefix_of(bu.home_address, now)
        valid_until = self.config.home_prefixes.get(prefix) if prefix else None
        if valid_until is not None and now + lifetime * LIFETIME_UNIT_US >= valid_until:
            return Status.ACCEPTED_PREFIX_DISCOVERY_NECESSARY
        return Status.ACCEPTED

    # -------------------------------------------------------------------- expiry

    def next_expiry(self) -> Optional[int]:
        """When :meth:`expire` next has something to do (the caller's timer)."""
        heap = self._expiries
        while heap:      # drop the heads left by entries since refreshed or removed
            when, home_address = heap[0]
            entry = self._entries.get(home_address)
            if entry is not None and entry.expiry_us == when:
                return when
            heapq.heappop(heap)
        return None

    def expire(self, now: int) -> list[BindingExpired]:
        """Delete the entries whose lifetime has run out at ``now`` (§10.3.1: "MUST be
        deleted by the home agent after the expiration of this lifetime")."""
        events = []
        heap = self._expiries
        # the heap holds every live entry's expiry (and stale items of entries since
        # refreshed or removed): only its due head is looked at, not the whole cache
        while heap and heap[0][0] <= now:
            when, home_address = heapq.heappop(heap)
            entry = self._entries.get(home_address)
            if entry is None or entry.expiry_us != when:
                continue
            _transition(BindingState.REGISTERED, "expire")
            self._unstore(entry)
            events.append(BindingExpired(entry))
        return events

    def table(self, now: int) -> list[dict[str, object]]:
        """The cache as rows for display, sorted by home address."""
        return [self._entries[h].row(now) for h in sorted(self._entries)]

