"""The Security Policy Database (RFC 4301 §4.4.1) and its matching rules.

An SPD is an ordered list of :class:`SecurityPolicy` entries, searched first match
first. Each entry has selectors written from this node's point of view, as RFC 4301
writes them and RFC 4877 §7.2 uses them::

    IF local_address = home_address_1 & remote_address = home_agent_1 &
       proto = MH & local_mh_type = BU & remote_mh_type = BA
    THEN USE SA ESP TRANSPORT MODE

so one entry covers both directions: an outbound packet is matched with local = its
source, remote = its destination; an inbound packet the other way round. The Mobility
Header type is a selector of its own (§4.4.1.1 puts it in the port field):
``local_mh_type`` matches messages this node sends, ``remote_mh_type`` messages the
peer sends. An entry may also be limited to one direction (``direction="out"`` or
``"in"``), as PF_KEY and Linux write policies.

Actions are PROTECT (with an IPsec template: mode, tunnel endpoints, reqid that ties it
to its SAs), BYPASS and DISCARD. A packet that matches nothing gets the database's
default action -- RFC 4301 §4.4.1 says DISCARD; a lab may choose BYPASS so that
everything not named in a policy flows in the clear, and says so in its trace.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field, fields
from typing import Any, Union

from .. import addresses
from ..net.interface import IPAddress, IPNetwork
from .selectors import MH_TYPES, PacketSelectors, address_key

PROTECT, BYPASS, DISCARD = "protect", "bypass", "discard"
PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 135: "mh", 50: "esp"}
PROTOCOL_NUMBERS = {name: number for number, name in PROTOCOL_NAMES.items()}

AddressSelector = Union[IPNetwork, None]


def _network(value: Any) -> AddressSelector:
    # one network object per value of the moment: a home agent's entries all name its
    # own address, and each MN's home address is named by both ends' entries
    if value is None or value == "any" or value == "*":
        return None
    return addresses.network(value)


def _port_range(value: Any) -> tuple[int, int] | None:
    if value in (None, "any", "*"):
        return None
    if isinstance(value, int):
        return (value, value)
    lo, hi = value
    return (int(lo), int(hi))


def _mh_type(value: Any) -> int | None:
    if value in (None, "any", "*"):
        return None
    return MH_TYPES[value] if isinstance(value, str) else int(value)


@dataclass(frozen=True, slots=True)
class Selectors:
    """The selectors of an SPD entry, from this node's point of view. None = ANY."""

    local: AddressSelector = None
    remote: AddressSelector = None
    protocol: int | None = None
    local_port: tuple[int, int] | None = None
    remote_port: tuple[int, int] | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    local_mh_type: int | None = None
    remote_mh_type: int | None = None
    # the hash, made at the first ask: the SPD files and finds entries by their
    # selectors (SPDADD, MIGRATE), and a network's hash is a Python call (two a time)
    _hash: int | None = field(default=None, init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        value = self._hash
        if value is None:
            value = hash((self.local, self.remote, self.protocol, self.local_port,
                          self.remote_port, self.icmp_type, self.icmp_code,
                          self.local_mh_type, self.remote_mh_type))
            object.__setattr__(self, "_hash", value)    # frozen: set once, from within
        return value

    def __getstate__(self) -> tuple:
        # the value without the kept hash: a string's hash differs from one process to
        # the next, so a copy made elsewhere computes its own
        return tuple(getattr(self, f.name) for f in fields(self) if f.name != "_hash")

    def __setstate__(self, state: tuple) -> None:
        names = [f.name for f in fields(self) if f.name != "_hash"]
        for name, value in zip(names, state):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_hash", None)

    @classmethod
    def make(cls, local: Any = None, remote: Any = None, protocol: Any = None,
             local_port: Any = None, remote_port: Any = None, icmp_type: int | None = None,
             icmp_code: int | None = None, local_mh_type: Any = None,
             remote_mh_type: Any = None) -> Selectors:
        """Selectors from friendly values: ``"2001:db8::1"``, ``"mh"``, ``"BU"`` ..."""
        proto = PROTOCOL_NUMBERS[protocol] if isinstance(protocol, str) else protocol
        return cls(_network(local), _network(remote), proto, _port_range(local_port),
                   _port_range(remote_port), icmp_type, icmp_code,
                   _mh_type(local_mh_type), _mh_type(remote_mh_type))

    def matches(self, packet: PacketSelectors, outbound: bool) -> bool:
        """Whether the packet, seen in its direction, falls under these selectors.

        Every selector must hold, so the order of the tests is free: the integer ones
        come first (they reject most packets: an IKE datagram against an MH entry), the
        address ones, which cost a Python call each, last. Runs on every packet."""
        protocol = self.protocol
        if protocol is not None and packet.protocol != protocol:
            return False
        if outbound:
            local, remote, local_port, remote_port = \
                packet.src, packet.dst, packet.sport, packet.dport
        else:
            local, remote, local_port, remote_port = \
                packet.dst, packet.src, packet.dport, packet.sport
        wanted = self.local_port
        if wanted is not None and (local_port is None or
                                   not wanted[0] <= local_port <= wanted[1]):
            return False
        wanted = self.remote_port
        if wanted is not None and (remote_port is None or
                                   not wanted[0] <= remote_port <= wanted[1]):
            return False
        if self.icmp_type is not None and packet.icmp_type != self.icmp_type:
            return False
        if self.icmp_code is not None and packet.icmp_code != self.icmp_code:
            return False
        if self.local_mh_type is not None or self.remote_mh_type is not None:
            wanted = self.local_mh_type if outbound else self.remote_mh_type
            if wanted is None or packet.mh_type != wanted:
                return False
        network = self.local
        if network is not None and not _in(local, network):
            return False
        network = self.remote
        return network is None or _in(remote, network)

    def describe(self) -> str:
        parts = [f"local={self.local or 'any'}", f"remote={self.remote or 'any'}"]
        if self.protocol is not None:
            parts.append(f"proto={PROTOCOL_NAMES.get(self.protocol, self.protocol)}")
        for name in ("local_port", "remote_port"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={value[0]}" if value[0] == value[1]
                             else f"{name}={value[0]}-{value[1]}")
        names = {v: k for k, v in MH_TYPES.items()}
        for name in ("local_mh_type", "remote_mh_type"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={names.get(value, value)}")
        for name in ("icmp_type", "icmp_code"):
            if getattr(self, name) is not None:
                parts.append(f"{name}={getattr(self, name)}")
        return " ".join(parts)


def _in(address: IPAddress, network: AddressSelector) -> bool:
    return network is None or (address.version == network.version and address in network)


@dataclass(slots=True)
class IPsecTemplate:
    """How a PROTECT entry protects: ESP in a mode, between tunnel endpoints."""

    mode: str = "transport"
    tunnel_local: IPAddress | None = None
    tunnel_remote: IPAddress | None = None
    reqid: int = 0
    level: str = "require"       # "require": no SA, no packet; "use": send clear meanwhile

    def describe(self) -> str:
        text = f"ESP {self.mode}"
        if self.mode == "tunnel":
            text += f" {self.tunnel_local}<->{self.tunnel_remote}"
        return text + f" reqid={self.reqid}"


class Hits(MutableMapping):
    """How many packets an entry matched, ``{"out": n, "in": m}``.

    A mapping with exactly these two keys, kept in two slots: a home agent holds
    two entries per mobile node, and a dict each would be most of an entry's size."""

    __slots__ = ("out", "in_")
    _KEYS = ("out", "in")

    def __init__(self, counts: Any = None) -> None:
        counts = dict(counts or {})
        if not set(counts) <= set(self._KEYS):
            raise ValueError(f"hits are counted 'out' and 'in', not {sorted(counts)}")
        self.out, self.in_ = counts.get("out", 0), counts.get("in", 0)

    def __getitem__(self, key: str) -> int:
        if key == "out":
            return self.out
        if key == "in":
            return self.in_
        raise KeyError(key)

    def __setitem__(self, key: str, value: int) -> None:
        if key == "out":
            self.out = value
        elif key == "in":
            self.in_ = value
        else:
            raise KeyError(key)

    def __delitem__(self, key: str) -> None:
        raise TypeError("the hit counters cannot be removed")

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return repr(dict(self))


@dataclass(slots=True)
class SecurityPolicy:
    """One SPD entry."""

    selectors: Selectors
    action: str
    template: IPsecTemplate | None = None
    direction: str = "both"          # "both", "out", "in"
    name: str = ""
    owner: str = ""                  # who installed it (the key-engine sender)
    index: int = 0                   # assigned by the SPD, stable for SPDDELETE
    hits: Hits = field(default_factory=Hits)   # a dict given is copied into a Hits

    def __post_init__(self) -> None:
        if self.action not in (PROTECT, BYPASS, DISCARD):
            raise ValueError("action is protect, bypass or discard")
        if self.action == PROTECT and self.template is None:
            self.template = IPsecTemplate()
        if self.direction not in ("both", "out", "in"):
            raise ValueError("direction is both, out or in")
        if type(self.hits) is not Hits:
            self.hits = Hits(self.hits)

    def applies(self, packet: PacketSelectors, outbound: bool) -> bool:
        if self.direction != "both" and self.direction != ("out" if outbound else "in"):
            return False
        return self.selectors.matches(packet, outbound)

    def describe(self) -> str:
        what = self.action.upper()
        if self.template is not None and self.action == PROTECT:
            what += f" ({self.template.describe()})"
        label = self.name or (f"#{self.index}" if self.index else "(new)")
        direction = "" if self.direction == "both" else f" [{self.direction}]"
        return f"{label}{direction}: {self.selectors.describe()} -> {what}"

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "direction": self.direction,
                "selectors": self.selectors.describe(), "action": self.action,
                "template": self.template.describe() if self.template and
                self.action == PROTECT else None, "owner": self.owner,
                "hits": dict(self.hits)}


class SecurityPolicyDatabase:
    """An ordered SPD, searched first match first.

    A home agent holds two entries per mobile node, so the search is indexed: entries
    whose remote selector is one address are filed under it, the others (wildcards) in
    a short list; a lookup walks the two candidate lists merged in SPD order, so the
    first match is the same one a scan of the whole list would find. Entries are also
    filed by their selectors, for ``find(selectors=...)`` (SPDADD's EEXIST, MIGRATE).
    A key of either index that names one entry holds the entry itself, not a list (the
    usual case: a list each would be a third of a home agent's SPD).
    """

    # slots, not a dict, in every node's SPD (a mobile node is one of thousands)
    __slots__ = ("default_action", "policies", "_next_index", "_rank", "_by_remote",
                 "_wildcards", "_by_selectors")

    def __init__(self, default_action: str = DISCARD) -> None:
        if default_action not in (BYPASS, DISCARD):
            raise ValueError("the default action is bypass or discard")
        self.default_action = default_action
        self.policies: list[SecurityPolicy] = []
        self._next_index = 1
        # policy index -> SPD position key; None while every entry was appended, when
        # the indexes themselves are in SPD order (a home agent's case: no dict needed)
        self._rank: dict[int, int] | None = None
        # keyed by :func:`~.selectors.address_key` (an int): looked up on every packet
        self._by_remote: dict[Any, SecurityPolicy | list[SecurityPolicy]] = {}
        self._wildcards: list[SecurityPolicy] = []
        self._by_selectors: dict[Selectors, SecurityPolicy | list[SecurityPolicy]] = {}

    def __iter__(self):
        return iter(list(self.policies))

    def __len__(self) -> int:
        return len(self.policies)

    def add(self, policy: SecurityPolicy, position: int | None = None) -> SecurityPolicy:
        """Insert ``policy`` (at the end, or before ``position``); it gets an index."""
        policy.index = self._next_index
        self._next_index += 1
        if position is None or position >= len(self.policies):
            if self._rank is not None:
                last = self.policies[-1].index if self.policies else None
                self._rank[policy.index] = self._rank[last] + 1 if last is not None else 0
            self.policies.append(policy)
            self._file(policy)
        else:
            self.policies.insert(position, policy)
            self._reindex()
        return policy

    def remove(self, index: int) -> SecurityPolicy | None:
        for policy in self.policies:
            if policy.index == index:
                self.policies.remove(policy)
                self._unfile(policy)
                if self._rank is not None:
                    del self._rank[index]
                return policy
        return None

    # -- the index -------------------------------------------------------------------------

    @staticmethod
    def _remote_host(policy: SecurityPolicy):
        """The :func:`~.selectors.address_key` of the one address the entry's remote
        selector names, or None (a wildcard or a prefix)."""
        remote = policy.selectors.remote
        # by the prefix length: num_addresses would keep a broadcast_address per network
        return address_key(remote.network_address) if remote is not None and \
            remote.prefixlen == remote.max_prefixlen else None

    def _file(self, policy: SecurityPolicy) -> None:
        host = self._remote_host(policy)
        if host is None:
            self._wildcards.append(policy)
        else:
            _append(self._by_remote, host, policy)
        _append(self._by_selectors, policy.selectors, policy)

    def _unfile(self, policy: SecurityPolicy) -> None:
        host = self._remote_host(policy)
        if host is None:
            self._wildcards.remove(policy)
        else:
            _discard(self._by_remote, host, policy)
        _discard(self._by_selectors, policy.selectors, policy)

    def _reindex(self) -> None:
        self._rank = {p.index: i for i, p in enumerate(self.policies)}
        self._by_remote, self._wildcards, self._by_selectors = {}, [], {}
        for policy in self.policies:
            self._file(policy)

    # -- searching -------------------------------------------------------------------------

    def find(self, **attributes: Any) -> list[SecurityPolicy]:
        if "selectors" not in attributes:
            return [p for p in self.policies
                    if all(getattr(p, k) == v for k, v in attributes.items())]
        # the entries filed under equal selectors: only the other attributes to compare
        selectors = attributes.pop("selectors")
        return [p for p in _bucket(self._by_selectors, selectors)
                if all(getattr(p, k) == v for k, v in attributes.items())]

    def lookup(self, packet: PacketSelectors, outbound: bool) -> SecurityPolicy | None:
        """The first entry that applies, or None (then the default action holds)."""
        remote = packet.dst if outbound else packet.src
        # _bucket(self._by_remote, address_key(remote)) and SecurityPolicy.applies,
        # written out: this runs on every packet, for every candidate entry
        hosts = self._by_remote.get(address_key(remote))
        if hosts is None:
            hosts = ()
        elif type(hosts) is not list:
            hosts = (hosts,)
        wildcards = self._wildcards
        # merged only when both lists have entries (a home agent's BYPASS entries for
        # IKE are wildcards, each MN's entries are filed under its home address)
        candidates = self._candidates(hosts, wildcards) if hosts and wildcards \
            else hosts or wildcards
        wanted = "out" if outbound else "in"
        for policy in candidates:
            direction = policy.direction
            if (direction == "both" or direction == wanted) and \
                    policy.selectors.matches(packet, outbound):
                if outbound:
                    policy.hits.out += 1
                else:
                    policy.hits.in_ += 1
                return policy
        return None

    def _candidates(self, hosts, wildcards):
        """Both lists (each in SPD order) merged in SPD order."""
        rank = self._rank
        i = j = 0
        while i < len(hosts) and j < len(wildcards):
            if (hosts[i].index < wildcards[j].index if rank is None
                    else rank[hosts[i].index] < rank[wildcards[j].index]):
                yield hosts[i]
                i += 1
            else:
                yield wildcards[j]
                j += 1
        yield from hosts[i:]
        yield from wildcards[j:]

    def flush(self) -> list[SecurityPolicy]:
        gone, self.policies = self.policies, []
        self._reindex()
        self._rank = None     # empty: whatever is appended next is in index order
        return gone

    def table(self) -> list[dict[str, Any]]:
        return [p.as_dict() for p in self.policies]


def _append(index: dict, key: Any, policy: SecurityPolicy) -> None:
    """File ``policy`` under ``key``: alone, the entry itself; else a list, in SPD order."""
    bucket = index.get(key)
    if bucket is None:
        index[key] = policy
    elif type(bucket) is list:
        bucket.append(policy)
    else:
        index[key] = [bucket, policy]


def _bucket(index: dict, key: Any) -> list[SecurityPolicy] | tuple[SecurityPolicy, ...]:
    """The entries filed under ``key``, in SPD order."""
    bucket = index.get(key)
    if bucket is None:
        return ()
    return bucket if type(bucket) is list else (bucket,)


def _discard(index: dict, key: Any, policy: SecurityPolicy) -> None:
    """Unfile ``policy`` from ``key`` (ValueError if it is not there)."""
    bucket = index.get(key)
    if type(bucket) is list:
        bucket.remove(policy)
        if len(bucket) == 1:
            index[key] = bucket[0]
    elif bucket is not None and (bucket is policy or bucket == policy):
        del index[key]
    else:
        raise ValueError(f"policy #{policy.index} is not filed under {key}")
