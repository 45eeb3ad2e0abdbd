"""The Security Association Database (RFC 4301 §4.4.2).

A :class:`SecurityAssociation` holds what RFC 4301 §4.4.2.1 lists: the SPI, the
sequence number counter (64-bit, sent as 32 unless extended sequence numbers are on),
the anti-replay window, the cipher suite and keys, the lifetimes (soft and hard, in
time and in bytes, the first to run out winning), the mode, the tunnel endpoints, the
UDP encapsulation ports of RFC 3948, and the selectors of the policy it was made for
(checked on inbound packets after decryption, §5.2 step 4).

The SAD is plain data: it never sends anything. Lifetimes are checked against the time
the caller passes in (sans-I/O); an SA that reaches a lifetime reports it once per kind
and the key engine turns that into an EXPIRE message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Union

from ..crypto.esp_suites import CipherSuite, check_keys, make_suite, suite_spec
from ..net.interface import IPAddress, as_address
from .replay import ReplayWindow
from .selectors import address_key

MAX_SEQ_32 = 0xFFFFFFFF
MAX_SEQ_64 = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True, slots=True)
class Lifetime:
    """Soft and hard limits, in seconds and in bytes; None means no limit.

    Immutable, so that the SAs made without limits can all share :data:`NO_LIMITS`."""

    soft_seconds: float | None = None
    hard_seconds: float | None = None
    soft_bytes: int | None = None
    hard_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


#: the lifetime of an SA made without limits (shared: a home agent holds many such SAs)
NO_LIMITS = Lifetime()
#: the error counters of an SA that never had an error; read-only, so that
#: :meth:`SecurityAssociation.count_error` must give the SA a dict of its own first
NO_ERRORS: Mapping[str, int] = MappingProxyType({})


@dataclass(slots=True)
class SecurityAssociation:
    """One direction of an ESP security association.

    With ``__slots__``: a home agent holds four per mobile node, and the key engine's
    history a copy of each (a dict per object would be most of their size)."""

    spi: int
    direction: str                       # "in" or "out"
    src: IPAddress                       # outer source (tunnel) / peer addresses
    dst: IPAddress
    suite: str                           # strongSwan keyword: "aes128gcm16", ...
    enc_key: bytes
    integ_key: bytes = b""
    mode: str = "transport"              # "transport" or "tunnel"
    esn: bool = False
    replay_window_size: int = 64
    encap: tuple[int, int] | None = None  # (source port, destination port) of UDP
    lifetime: Lifetime = NO_LIMITS
    selectors: Any = None                # the policy's selectors, for the inbound check
    reqid: int = 0                       # ties the SA to its policy (PF_KEY sadb_x_sa2)
    identity: str | None = None          # the peer's IKE ID (PF_KEY identity extension)
    created_us: int = 0
    state: str = "mature"                # "larval" (GETSPI), "mature", "dying", "dead"
    seq: int = 0                         # outbound: the last sequence number used
    bytes_processed: int = 0
    packets: int = 0
    errors: Mapping[str, int] = field(  # a dict of its own from the first error
        default_factory=lambda: NO_ERRORS)
    expired: frozenset[str] = frozenset()   # "soft", "hard" already reported
    _cipher: CipherSuite | None = field(default=None, repr=False, compare=False)
    replay: ReplayWindow | None = field(default=None, repr=False, compare=False)
    _shape: tuple | None = field(default=None, repr=False, compare=False)  # esp.unseal's
    _templates: tuple | None = field(default=None, init=False, repr=False,
                                     compare=False)   # esp's header templates
    # the (src, dst) the SAD filed it under (its between() index, as address_key()s): the
    # addresses may change (MIGRATE) before the SAD is told; on the SA, not in a per-SAD
    # table by id
    _filed: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.direction not in ("in", "out"):
            raise ValueError("direction is 'in' or 'out'")
        if self.mode not in ("transport", "tunnel"):
            raise ValueError("mode is 'transport' or 'tunnel'")
        if not 0 < self.spi <= 0xFFFFFFFF or self.spi < 256:
            raise ValueError("SPI must be in 256..2^32-1 (RFC 4303 §2.1)")
        self.src = as_address(self.src)
        self.dst = as_address(self.dst)
        if self.src.version != self.dst.version:
            raise ValueError("SA endpoints must be of one address family")
        spec = suite_spec(self.suite)  # fail early on an unknown suite
        if self.state != "larval":
            # the keys are checked now, the cipher keyed at the first packet: most SAs
            # of a home agent's thousands wait long for one, some never carry any
            check_keys(spec, self.enc_key, self.integ_key)
        # anti-replay is the receiver's (RFC 4303 §3.4.3): an outbound SA has no window
        if self.direction == "in":
            self.replay = ReplayWindow(self.replay_window_size, self.esn)

    # made when asked, not kept: a home agent holds thousands of SAs, most of which
    # carry a packet now and then (``esp.seal`` asks once per packet)
    @property
    def spi_bytes(self) -> bytes:
        """The SPI as it travels (RFC 4303 §2.1: 4 octets, network order)."""
        return self.spi.to_bytes(4, "big")

    @property
    def seq_limit(self) -> int:
        """The last sequence number before the counter would cycle (RFC 4303 §3.3.3)."""
        return MAX_SEQ_64 if self.esn else MAX_SEQ_32

    @property
    def cipher(self) -> CipherSuite:
        if self._cipher is None:
            self._cipher = make_suite(self.suite, self.enc_key, self.integ_key)
        return self._cipher

    def next_seq(self) -> int:
        """The next outbound sequence number; refuse to cycle (RFC 4303 §3.3.3)."""
        limit = MAX_SEQ_64 if self.esn else MAX_SEQ_32
        if self.seq >= limit:
            raise SaExhausted(f"SA 0x{self.spi:08x}: sequence number space exhausted; "
                              "a new SA is needed")
        self.seq += 1
        return self.seq

    def count(self, nbytes: int) -> None:
        self.packets += 1
        self.bytes_processed += nbytes

    def count_error(self, reason: str) -> None:
        errors = self.errors
        if errors is NO_ERRORS:
            errors = self.errors = {}
        errors[reason] = errors.get(reason, 0) + 1

    def lifetime_reached(self, now_us: int) -> str | None:
        """``"hard"`` or ``"soft"`` when a limit is newly reached, else None."""
        age = (now_us - self.created_us) / 1e6
        lt = self.lifetime
        for kind, seconds, nbytes in (("hard", lt.hard_seconds, lt.hard_bytes),
                                      ("soft", lt.soft_seconds, lt.soft_bytes)):
            if kind in self.expired:
                continue
            if (seconds is not None and age >= seconds) or \
                    (nbytes is not None and self.bytes_processed >= nbytes):
                self.expired = self.expired | {kind}
                if kind == "hard":
                    self.expired = self.expired | {"soft"}
                    self.state = "dead"
                else:
                    self.state = "dying"
                return kind
        return None

    def as_dict(self) -> dict[str, Any]:
        """A readable row for notebooks and ``DUMP``; keys shown as hex."""
        return {
            "spi": f"0x{self.spi:08x}", "direction": self.direction,
            "src": str(self.src), "dst": str(self.dst), "mode": self.mode,
            "suite": self.suite, "enc_key": self.enc_key.hex(),
            "integ_key": self.integ_key.hex(), "esn": self.esn,
            "replay_window": self.replay_window_size,
            "encap": f"udp {self.encap[0]}->{self.encap[1]}" if self.encap else None,
            "seq": self.seq if self.direction == "out" else self.replay.top,
            "packets": self.packets, "bytes": self.bytes_processed,
            "errors": dict(self.errors), "lifetime": self.lifetime.as_dict(),
            "state": self.state, "reqid": self.reqid,
        }


class SaExhausted(Exception):
    """The outbound sequence number would cycle: the SA must be replaced."""


class SecurityAssociationDatabase:
    """The SAD of one node.

    Inbound SAs are found by SPI alone, as RFC 4301 §4.1 allows for unicast (the SPI
    was chosen by this node, so it is unique here); outbound SAs by (SPI, destination),
    since different peers may choose the same SPI.

    The indexes are keyed by :func:`~.selectors.address_key` (ints) where an address is
    part of a key: an ipaddress object's hash is a Python call on every lookup.
    """

    # slots, not a dict, in every node's SAD (a mobile node is one of thousands)
    __slots__ = ("_inbound", "_outbound", "_outbound_to", "_between")

    def __init__(self) -> None:
        self._inbound: dict[int, SecurityAssociation] = {}
        self._outbound: dict[tuple[int, Any], SecurityAssociation] = {}
        # outbound SAs by destination: a home agent's per-packet search stays small
        self._outbound_to: dict[Any, _Bucket] = {}
        # every SA by its (src, dst) as filed (``sa._filed``), for MIGRATE: one MN's SAs
        # among all the home agent's. A bucket (of either index) is the SA itself while it
        # is the only one -- the usual case: a home agent files each of an MN's SAs under
        # a pair of its own -- else a short list in filing order (:func:`_put`)
        self._between: dict[tuple[Any, Any], _Bucket] = {}

    @staticmethod
    def _key(sa: SecurityAssociation):
        return sa.spi if sa.direction == "in" else (sa.spi, address_key(sa.dst))

    def _table(self, direction: str) -> dict:
        return self._inbound if direction == "in" else self._outbound

    def __iter__(self) -> Iterator[SecurityAssociation]:
        return iter(list(self._inbound.values()) + list(self._outbound.values()))

    def __len__(self) -> int:
        return len(self._inbound) + len(self._outbound)

    def add(self, sa: SecurityAssociation) -> None:
        table, key = self._table(sa.direction), self._key(sa)
        if key in table:
            raise KeyError(f"an {sa.direction}bound SA with SPI 0x{sa.spi:08x} exists")
        self._file(sa, key)

    def replace(self, sa: SecurityAssociation) -> None:
        self._file(sa, self._key(sa))

    def _file(self, sa: SecurityAssociation, key) -> None:
        table = self._table(sa.direction)
        old = table.get(key)
        if old is not None:
            self._unpair(old)
        table[key] = sa
        if sa.direction == "out":
            _put(self._outbound_to, key[1], sa, old)
        self._unpair(sa)
        pair = (address_key(sa.src), address_key(sa.dst))
        first = _items(self._between, pair)
        if first:
            shared = first[0]._filed       # an equal tuple: share the bucket's own
            pair = shared if shared == pair else pair
        sa._filed = pair
        _put(self._between, pair, sa)

    def _unpair(self, sa: SecurityAssociation) -> None:
        # where it was filed; else where its addresses say (an SA object filed in two
        # SADs, as a test may do, has the pair of the last one in ``_filed``)
        filed = sa._filed
        if filed is not None and _take(self._between, filed, sa):
            return
        if self._between:      # none filed yet: a node's first SA looks no further
            _take(self._between, (address_key(sa.src), address_key(sa.dst)), sa)

    def _unfile(self, direction: str, key) -> SecurityAssociation | None:
        sa = self._table(direction).pop(key, None)
        if sa is not None:
            self._unpair(sa)
        if sa is not None and direction == "out":
            spi, dst = key
            _take(self._outbound_to, dst, sa)
        return sa

    def inbound(self, spi: int) -> SecurityAssociation | None:
        """The inbound SA of ``spi`` (the per-packet lookup)."""
        return self._inbound.get(spi)

    def get(self, spi: int, direction: str = "in",
            dst: IPAddress | None = None) -> SecurityAssociation | None:
        if direction == "in":
            return self._inbound.get(spi)
        if dst is not None:
            return self._outbound.get((spi, address_key(as_address(dst))))
        return next((sa for (s, _), sa in self._outbound.items() if s == spi), None)

    def remove(self, sa: SecurityAssociation) -> SecurityAssociation | None:
        return self._unfile(sa.direction, self._key(sa))

    def rekey(self, sa: SecurityAssociation, old_key) -> None:
        """Re-file ``sa`` after its destination changed (MIGRATE); ``old_key`` is the SPI
        of an inbound SA, (SPI, old destination) of an outbound one."""
        if type(old_key) is tuple:
            spi, dst = old_key
            old_key = (spi, address_key(as_address(dst)))
        self._unfile(sa.direction, old_key)
        self._file(sa, self._key(sa))

    def between(self, a: IPAddress, b: IPAddress) -> list[SecurityAssociation]:
        """The SAs from ``a`` to ``b`` and from ``b`` to ``a`` (an index, not a walk)."""
        a, b = address_key(as_address(a)), address_key(as_address(b))
        return [*_items(self._between, (a, b)),
                *(_items(self._between, (b, a)) if a != b else ())]

    def find(self, predicate: Callable[[SecurityAssociation], bool]) -> list[SecurityAssociation]:
        return [sa for sa in self if predicate(sa)]

    def outbound_for(self, reqid: int, dst: IPAddress | None = None) -> SecurityAssociation | None:
        """The newest usable outbound SA made for policy ``reqid`` (to ``dst``)."""
        candidates = self._outbound.values() if dst is None else \
            _items(self._outbound_to, address_key(as_address(dst)))
        found = [sa for sa in candidates
                 if sa.reqid == reqid and sa.state in ("mature", "dying")]
        return max(found, key=lambda sa: (sa.state == "mature", sa.created_us)) \
            if found else None

    def flush(self) -> list[SecurityAssociation]:
        gone = list(self)
        for sa in gone:
            sa._filed = None
        self._inbound.clear()
        self._outbound.clear()
        self._outbound_to.clear()
        self._between.clear()
        return gone

    def table(self) -> list[dict[str, Any]]:
        return [sa.as_dict() for sa in self]


#: what an index of the SAD files under a key: the one SA, or a list of several
_Bucket = Union[SecurityAssociation, list[SecurityAssociation]]


def _items(index: dict, key) -> list[SecurityAssociation] | tuple[SecurityAssociation, ...]:
    """The SAs filed under ``key``, in filing order."""
    bucket = index.get(key)
    if bucket is None:
        return ()
    return bucket if type(bucket) is list else (bucket,)


def _put(index: dict, key, sa: SecurityAssociation,
         old: SecurityAssociation | None = None) -> None:
    """File ``sa`` under ``key``, after the SAs there; in ``old``'s place if ``old`` (the
    SA it replaces) is there. Alone it is the bucket itself, not a one-item list."""
    bucket = index.get(key)
    if bucket is None or (old is not None and bucket is old):
        index[key] = sa
    elif type(bucket) is list:
        if not _swap(bucket, old, sa):
            bucket.append(sa)
    else:
        index[key] = [bucket, sa]


def _take(index: dict, key, sa: SecurityAssociation) -> bool:
    """Unfile ``sa`` itself (not an equal SA) from ``key``; whether it was there."""
    bucket = index.get(key)
    if type(bucket) is list:
        if not _drop(bucket, sa):
            return False
        if len(bucket) == 1:
            index[key] = bucket[0]
        return True
    if bucket is not None and bucket is sa:
        del index[key]
        return True
    return False


def _drop(bucket: list, sa: SecurityAssociation) -> bool:
    """Remove ``sa`` itself (not an equal SA) from ``bucket``; whether it was there."""
    for i, other in enumerate(bucket):
        if other is sa:
            del bucket[i]
            return True
    return False


def _swap(bucket: list, old: SecurityAssociation | None, new: SecurityAssociation) -> bool:
    """Put ``new`` in ``old``'s place in ``bucket``; whether ``old`` was there."""
    if old is not None:
        for i, other in enumerate(bucket):
            if other is old:
                bucket[i] = new
                return True
    return False
