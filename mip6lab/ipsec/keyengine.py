"""The key engine: the one seam between the mobility module, IKE and the IPsec databases.

Modelled on PF_KEY v2 (RFC 2367) and its MIGRATE extension
(draft-sugimoto-mip6-pfkey-migrate-04 §4.1). Each module that wants to touch the SAD
or the SPD opens a :class:`KeySocket` on its node's :class:`KeyEngine` and sends
:class:`KeyMessage` records; the engine applies them, answers the sender, and tells the
other registered sockets what RFC 2367 says they must hear (an ADD, UPDATE or DELETE
is reported to all; an ACQUIRE to the key management daemons that REGISTERed; an
EXPIRE to all; a MIGRATE, once applied, to all -- that is how IKE learns that a home
agent or mobile node moved an SA pair to a new care-of address).

Every message that crosses the seam is one trace event of kind ``seam`` naming its
sender and its receivers, so a notebook can draw and count them: the course's measure
of what the coupling costs.

Messages (``type``): GETSPI, UPDATE, ADD, DELETE, GET, ACQUIRE, REGISTER, EXPIRE,
FLUSH, DUMP (SAs); SPDADD, SPDDELETE, SPDDUMP, SPDFLUSH (policies); MIGRATE.
An error comes back as the same type with ``error`` set to the errno name
(ENOENT, EEXIST, EINVAL), as PF_KEY's ``sadb_msg_errno``.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from ..net.interface import IPAddress, as_address
from .sad import SecurityAssociation, SecurityAssociationDatabase
from .spd import SecurityPolicy, SecurityPolicyDatabase, Selectors

SA_TYPES = ("GETSPI", "UPDATE", "ADD", "DELETE", "GET", "ACQUIRE", "REGISTER", "EXPIRE",
            "FLUSH", "DUMP")
POLICY_TYPES = ("SPDADD", "SPDDELETE", "SPDDUMP", "SPDFLUSH", "MIGRATE")
MESSAGE_TYPES = SA_TYPES + POLICY_TYPES
BROADCAST_TO_ALL = ("ADD", "UPDATE", "DELETE", "EXPIRE", "FLUSH", "SPDADD", "SPDDELETE",
                    "SPDFLUSH", "MIGRATE")
# the same as sets: asked on every message (a tuple is searched item by item)
_MESSAGE_TYPES = frozenset(MESSAGE_TYPES)
_BROADCAST_TO_ALL = frozenset(BROADCAST_TO_ALL)
KERNEL = "kernel"
SPI_RANGE = (0x100, 0xFFFFFFFF)


@dataclass(frozen=True)
class MigrateRequest:
    """One SA endpoint change (draft-sugimoto §4.1.3): old and new tunnel endpoints."""

    old_src: IPAddress
    old_dst: IPAddress
    new_src: IPAddress
    new_dst: IPAddress
    mode: str = "tunnel"
    reqid: int = 0

    def describe(self) -> str:
        return (f"{self.mode} reqid={self.reqid} {self.old_src}->{self.old_dst} "
                f"becomes {self.new_src}->{self.new_dst}")


@dataclass(slots=True)
class KeyMessage:
    """A PF_KEY-like message. Only the fields a type needs are set.

    The sequences default to an empty tuple, not a new list: key sockets keep the
    messages they received, and most messages have no MIGRATE request and no dump."""

    type: str
    seq: int = 0
    sender: str = ""
    sa: SecurityAssociation | None = None      # ADD, UPDATE, GET reply, EXPIRE
    spi: int | None = None                     # GETSPI reply, DELETE, GET
    direction: str = "in"                      # which SA (DELETE, GET)
    src: IPAddress | None = None               # GETSPI, ACQUIRE: the endpoints
    dst: IPAddress | None = None
    policy: SecurityPolicy | None = None       # SPDADD, ACQUIRE (the rule that wants an SA)
    policy_index: int | None = None            # SPDDELETE
    selectors: Selectors | None = None         # MIGRATE: which SPD entry
    policy_direction: str = "both"             # MIGRATE
    migrate: Sequence[MigrateRequest] = ()
    k_bit: bool = False                        # MIGRATE: IKE should move too (RFC 6275 K)
    lifetime_kind: str | None = None           # EXPIRE: "soft" or "hard"
    registered_types: tuple[str, ...] = ()     # REGISTER
    dump: Sequence[dict[str, Any]] = ()        # DUMP / SPDDUMP replies
    error: str | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.type not in _MESSAGE_TYPES:
            raise ValueError(f"unknown key message type {self.type!r}")

    def describe(self) -> str:
        """One line for the trace."""
        parts = [self.type]
        if self.error:
            parts.append(f"error={self.error}")
        if self.sa is not None:
            sa = self.sa
            parts.append(f"spi=0x{sa.spi:08x} {sa.direction} {sa.src}->{sa.dst} "
                         f"{sa.mode} {sa.suite}")
        elif self.spi is not None:
            parts.append(f"spi=0x{self.spi:08x}")
        if self.type in ("GETSPI", "ACQUIRE") and self.src is not None:
            parts.append(f"{self.src}->{self.dst}")
        if self.policy is not None:
            parts.append(self.policy.describe())
        if self.policy_index is not None:
            parts.append(f"policy #{self.policy_index}")
        if self.selectors is not None:
            parts.append(f"[{self.selectors.describe()}]")
        parts += [m.describe() for m in self.migrate]
        if self.type == "MIGRATE":
            parts.append(f"K={int(self.k_bit)}")
        if self.lifetime_kind:
            parts.append(f"{self.lifetime_kind} lifetime")
        if self.dump:
            parts.append(f"{len(self.dump)} entries")
        if self.note:
            parts.append(self.note)
        return " ".join(parts)


def _reply(message: KeyMessage, **changes: Any) -> KeyMessage:
    """The engine's answer: a copy of ``message`` with ``changes`` (PF_KEY echoes the
    request, RFC 2367 §1.4), made from its fields in one call -- ``dataclasses.replace``
    would look each field up by name on every crossing."""
    reply = KeyMessage(*_message_fields(message))
    for name, value in changes.items():
        setattr(reply, name, value)
    return reply


_message_fields = operator.attrgetter(*(f.name for f in fields(KeyMessage)))  # init order

#: messages a key socket keeps in ``received`` (the newest)
RECEIVED_KEPT = 64
#: the sets of types sockets registered for, one object per set (every IKE daemon's
#: socket registers for ACQUIRE: a set each would be most of a socket's size)
_REGISTERED: dict[frozenset[str], frozenset[str]] = {}


class _Newest(list):
    """A list that keeps only its ``limit`` newest items (``append`` drops the oldest)."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def append(self, item) -> None:
        super().append(item)
        if len(self) > self.limit:
            del self[0]


class KeySocket:
    """A module's handle on the key engine (a PF_KEY socket)."""

    __slots__ = ("engine", "name", "registered", "listeners", "received")

    def __init__(self, engine: KeyEngine, name: str) -> None:
        self.engine = engine
        self.name = name
        # the message types it REGISTERed for (sets interned: daemons register alike)
        self.registered: frozenset[str] = frozenset()
        self.listeners: list[Callable[[KeyMessage], None]] = []
        # the last messages delivered, for a notebook or a test to read; bounded, as a
        # home agent's sockets see every MN's messages; kept only where the trace keeps
        # the seam's events (:meth:`deliver`)
        self.received: list[KeyMessage] = _Newest(RECEIVED_KEPT)

    def send(self, message: KeyMessage) -> KeyMessage:
        """Send a message to the engine; returns the engine's answer to us."""
        return self.engine.submit(self, message)

    def register(self, *types: str) -> None:
        """Ask to hear ACQUIREs (and other kernel-originated messages) of these types."""
        self.send(KeyMessage("REGISTER", registered_types=types or ("ACQUIRE",)))

    def on_message(self, callback: Callable[[KeyMessage], None]) -> None:
        self.listeners.append(callback)

    def deliver(self, message: KeyMessage, kept: bool | None = None) -> None:
        # kept while the trace keeps the crossings too: at level "counts" (a run at
        # scale) neither is, and a mobile node's few sockets would keep all it was told;
        # ``kept``: the engine asked already (:meth:`KeyEngine.submit`)
        if kept is None:
            kept = self.engine.keeps("seam")
        if kept:
            self.received.append(message)
        for listener in list(self.listeners):
            listener(message)


class KeyEngine:
    """The node's SAD and SPD behind a PF_KEY-like interface.

    ``clock`` returns the time in microseconds, ``random_spi`` draws a candidate SPI; both
    come from the driver, so the engine stays deterministic and free of I/O. ``trace`` is
    a callable ``trace(kind, summary, **data)`` (the node's trace emitter).
    """

    __slots__ = ("node", "sad", "spd", "clock", "random_spi", "trace", "keeps", "count",
                 "sockets", "crossings", "_seq", "on_sa_added", "history")

    def __init__(self, node: str, sad: SecurityAssociationDatabase,
                 spd: SecurityPolicyDatabase, clock: Callable[[], int],
                 random_spi: Callable[[], int],
                 trace: Callable[..., Any] | None = None) -> None:
        self.node = node
        self.sad = sad
        self.spd = spd
        self.clock = clock
        self.random_spi = random_spi
        self.trace = trace
        #: whether the trace keeps a kind of event (mip6lab.trace levels): a crossing's
        #: summary is written only when it is kept, the history of SAs only while frames
        #: are (it decrypts them)
        self.keeps: Callable[[str], bool] = lambda kind: True
        #: ``count(kind, n)``: counts n events the trace does not keep, without making them
        #: (:meth:`mip6lab.trace.Trace.count`); None: ``trace(kind, None)`` counts it
        self.count: Callable[[str, int], None] | None = None
        self.sockets: dict[str, KeySocket] = {}
        self.crossings = 0
        self._seq = 0
        self.on_sa_added: list[Callable[[SecurityAssociation], None]] = []
        # every SA as it was added and as each MIGRATE left it: key tables for captures
        # of the whole run (an SA deleted or moved since still decrypts its old packets)
        self.history: list[SecurityAssociation] = []

    def open(self, name: str) -> KeySocket:
        """Open (or reopen) the socket of module ``name``."""
        if name not in self.sockets:
            self.sockets[name] = KeySocket(self, name)
        return self.sockets[name]

    # -- the seam --------------------------------------------------------------------------

    def _cross(self, message: KeyMessage, sender: str, receivers: list[str]) -> None:
        if self.trace is not None and self.keeps("seam"):
            self._write(message, sender, receivers)
        else:
            self._count()

    def _count(self, crossings: int = 1) -> None:
        """Crossings the trace counts but does not keep (level "counts": a run at scale)."""
        self.crossings += crossings
        if self.trace is None:
            return
        if self.count is not None:
            self.count("seam", crossings)
        else:
            for _ in range(crossings):
                self.trace("seam", None)

    def _write(self, message: KeyMessage, sender: str, receivers: list[str]) -> None:
        """A crossing the trace keeps: one ``seam`` event naming who heard what."""
        self.crossings += 1
        self.trace("seam", f"{sender} → {', '.join(receivers) or '(nobody)'}: "
                   f"{message.describe()}", sender=sender, receivers=receivers,
                   message=message.type, error=message.error)

    def submit(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        self._seq += 1
        message.seq = message.seq or self._seq
        message.sender = socket.name
        # asked once for both crossings and every delivery: the handler between them
        # changes no trace level
        kept = self.keeps("seam")
        written = kept and self.trace is not None
        if written:
            self._write(message, socket.name, [KERNEL])
        reply = _HANDLERS[message.type](self, socket, message)
        reply.seq, reply.sender = message.seq, KERNEL
        others = ()
        if reply.error is None and message.type in _BROADCAST_TO_ALL:
            others = [s for s in self.sockets.values() if s is not socket]
        if written:
            self._write(reply, KERNEL, [socket.name] + [s.name for s in others])
        else:
            self._count(2)      # the request and the reply, counted at once
        socket.deliver(reply, kept)
        for other in others:
            other.deliver(reply, kept)
        return reply

    def notify(self, message: KeyMessage, only_registered: bool = False) -> list[str]:
        """A message the kernel itself originates (ACQUIRE, EXPIRE); returns receivers."""
        self._seq += 1
        message.seq, message.sender = self._seq, KERNEL
        receivers = [s for s in self.sockets.values()
                     if not only_registered or message.type in s.registered]
        self._cross(message, KERNEL, [s.name for s in receivers])
        for socket in receivers:
            socket.deliver(message)
        return [s.name for s in receivers]

    # -- SA messages (RFC 2367 §3.1) ----------------------------------------------------------

    def _error(self, message: KeyMessage, errno: str, note: str = "") -> KeyMessage:
        return _reply(message, error=errno, note=note, dump=())

    def _do_register(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        types = socket.registered | frozenset(message.registered_types)
        socket.registered = _REGISTERED.setdefault(types, types)
        return _reply(message)

    def _do_getspi(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        """Reserve an inbound SPI: a larval SA that UPDATE will complete (§3.1.1)."""
        for _ in range(1000):
            spi = self.random_spi()
            if SPI_RANGE[0] <= spi <= SPI_RANGE[1] and self.sad.inbound(spi) is None:
                break
        else:
            return self._error(message, "EEXIST", "no free SPI")
        src = as_address(message.src)
        dst = as_address(message.dst)
        larval = SecurityAssociation(spi, "in", src, dst, "aes128gcm16", b"", state="larval",
                                     created_us=self.clock())
        self.sad.add(larval)
        return _reply(message, spi=spi, sa=larval)

    def _do_update(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        """Complete a larval SA (or change a mature one) with the keys negotiated."""
        sa = message.sa
        if sa is None:
            return self._error(message, "EINVAL", "UPDATE needs an SA")
        existing = self.sad.get(sa.spi, sa.direction, sa.dst)
        if existing is None:
            return self._error(message, "ENOENT", f"no SA 0x{sa.spi:08x} to update")
        sa.created_us = sa.created_us or self.clock()
        sa.state = "mature" if sa.state == "larval" else sa.state
        self.sad.remove(existing)
        self.sad.add(sa)
        self._added(sa)
        return _reply(message)

    def _do_add(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        sa = message.sa
        if sa is None:
            return self._error(message, "EINVAL", "ADD needs an SA")
        if self.sad.get(sa.spi, sa.direction, sa.dst) is not None:
            return self._error(message, "EEXIST", f"SA 0x{sa.spi:08x} exists")
        sa.created_us = sa.created_us or self.clock()
        self.sad.add(sa)
        self._added(sa)
        return _reply(message)

    def _added(self, sa: SecurityAssociation) -> None:
        if self.keeps("tx"):    # the keys of frames kept in the trace (none: no history)
            self.history.append(copy.copy(sa))
        for callback in list(self.on_sa_added):
            callback(sa)

    def _do_delete(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        sa = self.sad.get(message.spi, message.direction, message.dst) \
            if message.spi is not None else None
        if sa is None:
            return self._error(message, "ENOENT", "no such SA")
        self.sad.remove(sa)
        sa.state = "dead"
        return _reply(message, sa=sa)

    def _do_get(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        sa = self.sad.get(message.spi, message.direction, message.dst) \
            if message.spi is not None else None
        if sa is None:
            return self._error(message, "ENOENT", "no such SA")
        return _reply(message, sa=sa)

    def _do_acquire(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        # A key manager answers an ACQUIRE it cannot serve with an error (§3.1.6).
        return _reply(message)

    def _do_expire(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        return self._error(message, "EINVAL", "EXPIRE comes from the kernel only")

    def _do_flush(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        gone = self.sad.flush()
        for sa in gone:
            sa.state = "dead"
        return _reply(message, note=f"{len(gone)} SAs removed")

    def _do_dump(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        return _reply(message, dump=self.sad.table())

    # -- policy messages -------------------------------------------------------------------

    def _do_spdadd(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        policy = message.policy
        if policy is None:
            return self._error(message, "EINVAL", "SPDADD needs a policy")
        clash = self.spd.find(selectors=policy.selectors, direction=policy.direction)
        if clash:
            return self._error(message, "EEXIST", f"policy {clash[0].describe()} "
                               f"(installed by {clash[0].owner or 'unknown'}) has the "
                               "same selectors")
        policy.owner = policy.owner or socket.name
        self.spd.add(policy)
        return _reply(message)

    def _do_spddelete(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        gone = self.spd.remove(message.policy_index) if message.policy_index else None
        if gone is None:
            return self._error(message, "ENOENT", "no such policy")
        return _reply(message, policy=gone)

    def _do_spddump(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        return _reply(message, dump=self.spd.table())

    def _do_spdflush(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        gone = self.spd.flush()
        return _reply(message, note=f"{len(gone)} policies removed")

    def _do_migrate(self, socket: KeySocket, message: KeyMessage) -> KeyMessage:
        """Move one SPD entry's SAs to new endpoints (draft-sugimoto §4.1.4).

        Invalid: EINVAL; no such SPD entry: ENOENT; either way nothing changes. Found:
        the entry's tunnel endpoints and every SA whose endpoints and reqid match an
        old pair are moved; success even if no SA matched (the draft says so).
        """
        if message.selectors is None or not message.migrate:
            return self._error(message, "EINVAL", "MIGRATE needs selectors and endpoints")
        targets = [p for p in self.spd.find(selectors=message.selectors)
                   if p.direction in (message.policy_direction, "both")]
        if not targets:
            return self._error(message, "ENOENT", "no SPD entry with these selectors")
        moved = 0
        for request in message.migrate:
            old = (as_address(request.old_src), as_address(request.old_dst))
            new = (as_address(request.new_src), as_address(request.new_dst))
            for policy in targets:
                template = policy.template
                if template is None or template.mode != request.mode:
                    continue
                if template.mode == "tunnel":
                    if (template.tunnel_local, template.tunnel_remote) == old:
                        template.tunnel_local, template.tunnel_remote = new
                    elif (template.tunnel_remote, template.tunnel_local) == old:
                        template.tunnel_remote, template.tunnel_local = new
            for sa in self.sad.between(*old):    # indexed: not every SA of a home agent
                if sa.mode != request.mode or (request.reqid and sa.reqid != request.reqid):
                    continue
                key = sa.spi if sa.direction == "in" else (sa.spi, sa.dst)
                if (sa.src, sa.dst) == old:
                    sa.src, sa.dst = new
                elif (sa.dst, sa.src) == old:
                    sa.dst, sa.src = new
                else:
                    continue
                self.sad.rekey(sa, key)
                if self.keeps("tx"):
                    self.history.append(copy.copy(sa))
                moved += 1
        return _reply(message, note=f"{moved} SAs moved")


#: the handler of each message type (``_do_<type>``), looked up once
_HANDLERS = {name: getattr(KeyEngine, f"_do_{name.lower()}") for name in MESSAGE_TYPES}
