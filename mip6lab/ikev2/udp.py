"""A real-socket driver for :class:`~mip6lab.ikev2.sa.IkeSa`: UDP 500 and 4500 on a host.

Where :mod:`mip6lab.ikev2.daemon` drives the engine on a node of the in-process network,
this module drives it on the machine's own sockets, so that our IKE can talk to real
peers (strongSwan in a network namespace, in the interop tests)::

    result = initiate(config, remote="2001:db8:1::2", timeout=10)
    result.established, result.to_dict()

    result = respond(config, listen="2001:db8:1::2", once=True)

What it does, and what it leaves out:

* **Sockets.** One UDP socket on ``ADDR:500`` and one on ``ADDR:4500`` (IPv6 or IPv4).
  The engine builds its datagrams with the non-ESP marker already in front when the peer's
  port is 4500 (RFC 3948 §2.2, :func:`~mip6lab.wire.ikev2.wrap_udp` in
  ``IkeSa._emit``), so they are sent as they are; on receipt from 4500 the driver strips
  the marker (:func:`~mip6lab.wire.ikev2.unwrap_udp`) and ignores NAT keepalives (0xFF)
  and ESP (non-zero first four octets) -- there is no ESP data path here.
* **Time.** A blocking loop over :mod:`selectors`; ``time.monotonic()`` in microseconds is
  the engine's clock, its :attr:`~mip6lab.ikev2.sa.IkeSa.timer_us` the select timeout,
  so the engine's retransmissions (exponential backoff, give-up) happen for real.
* **SPIs without a key engine.** The engine asks ``allocate_spi()`` for the inbound child
  SPI (the kernel's GETSPI in the in-process daemon). No SAD is involved here, so the
  driver draws a random 32-bit SPI from :func:`os.urandom`, outside 0-255 (reserved,
  RFC 4303 §2.1) and never the same twice in one process. Nothing is installed: the
  negotiated keys are reported, not used (``ChildSaEstablished`` carries them).
* **Randomness** for the engine (IKE SPIs, nonces, DH private values, IVs) is
  :func:`os.urandom` as well.
* **Ports follow the peer.** RFC 7296 §2.23: a responder answers to the address and
  port a request came from, and the NAT-T peer moves to 4500 after IKE_SA_INIT. The
  engine (as of this driver) keeps the ports it learnt in IKE_SA_INIT, so the responder
  side of this driver updates ``local_port``/``remote_port`` (and the peer's address)
  from each request it hands to the engine (see ``_follow_peer``).

* **Staying alive.** By default :meth:`UdpDriver.initiate` returns once the SA is up.
  With ``stay``/``until_deleted``/``schedule`` (the CLI's ``--stay S``,
  ``--until-deleted``, ``--rekey-child-after S``, ``--rekey-ike-after S``,
  ``--delete-child-after S``, ``--liveness-after S``, ``--delete-after S``) the driver
  keeps serving (:meth:`UdpDriver.serve`): it answers the peer's CREATE_CHILD_SA (child
  and IKE rekeys) and INFORMATIONAL (deletes, liveness) requests, starts its own at the
  given times, and sends NAT keepalives when it is itself behind a NAT. After an
  :class:`~mip6lab.ikev2.sa.IkeSaRekeyed` the new engine is registered under its SPIs and
  the :class:`SaResult` follows it (``result.sa`` is always the current IKE SA); the old
  engine stays registered to finish its DELETE. ``on_event`` sees every event as it
  happens (the CLI's ``--json --events`` prints them as JSON lines, :func:`event_dict`);
  key material only appears with ``--show-keys`` (``"secret": true``).

Authentication is by pre-shared key only (the engine has no certificates yet).
"""

from __future__ import annotations

import ipaddress
import os
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import MalformedPacket
from ..wire.ikev2 import unwrap_udp
from .config import IkeConfig
from .sa import (AddressAssigned, ChildSaDeleted, ChildSaEstablished, ChildSaRekeyed, Event,
                 IkeSa, IkeSaDeleted, IkeSaEstablished, IkeSaFailed, IkeSaRekeyed,
                 MessageDropped)

IKE_PORT, NAT_T_PORT = 500, 4500
IKE_SA_INIT = 34


def now_us() -> int:
    """The engine's clock: the monotonic clock in microseconds."""
    return int(time.monotonic() * 1_000_000)


class SpiAllocator:
    """Random inbound child SPIs: 32 bits from os.urandom, >= 256, unique per process."""

    def __init__(self) -> None:
        self.used: set[int] = set()

    def __call__(self) -> int:
        while True:
            spi = int.from_bytes(os.urandom(4), "big")
            if spi >= 256 and spi not in self.used:
                self.used.add(spi)
                return spi


def local_address_for(remote: str) -> str:
    """The source address the routing table picks towards ``remote`` (no packet sent)."""
    address = ipaddress.ip_address(remote)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((str(address), IKE_PORT))
        return probe.getsockname()[0].split("%")[0]


def open_sockets(address: str, ports: tuple[int, ...] = (IKE_PORT, NAT_T_PORT)
                 ) -> dict[int, socket.socket]:
    """UDP sockets bound on ``address`` at each port (500 and 4500)."""
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    sockets: dict[int, socket.socket] = {}
    try:
        for port in ports:
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((str(ip), port))
            sock.setblocking(False)
            sockets[port] = sock
    except OSError:
        for sock in sockets.values():
            sock.close()
        raise
    return sockets


# -- results -------------------------------------------------------------------------------


@dataclass
class SaResult:
    """What one IKE SA came to: its events and the engine at the end.

    ``sa`` follows rekeys: after an :class:`IkeSaRekeyed` it is the new IKE SA (the one
    that carries on), and the replaced ones are in ``previous``, oldest first. ``events``
    are those of all of them, in order; ``deleted`` is set when the *current* SA went
    (an old SA deleted after its rekey does not count)."""

    sa: IkeSa
    events: list[Event] = field(default_factory=list)
    previous: list[IkeSa] = field(default_factory=list)
    deleted: IkeSaDeleted | None = None

    @property
    def established(self) -> bool:
        return any(isinstance(e, IkeSaEstablished) for e in self.events)

    @property
    def failure(self) -> IkeSaFailed | None:
        return next((e for e in self.events if isinstance(e, IkeSaFailed)), None)

    @property
    def children(self) -> list[ChildSaEstablished]:
        return [e for e in self.events if isinstance(e, ChildSaEstablished)]

    def to_dict(self, keys: bool = False) -> dict[str, Any]:
        """The JSON of ``mip6lab ike ... --json``; key material only with ``keys``
        (then under ``"secret": true`` entries)."""
        sa = self.sa
        ike = next((e for e in self.events if isinstance(e, IkeSaEstablished)), None)
        failure = self.failure
        # the engine keeps its children after the IKE SA went: they went with it (§1.4.1)
        live = set(sa.children) if sa.state != "CLOSED" else set()
        rekeyed = {e.old_inbound_spi for e in self.events if isinstance(e, ChildSaRekeyed)}
        return {
            "established": self.established,
            "role": "initiator" if sa.initiator else "responder",
            "state": sa.state,
            "ike_sa": None if ike is None else {
                "spi_i": sa.spi_i.hex(), "spi_r": sa.spi_r.hex(),
                "proposal": sa.proposal.keyword if sa.proposal is not None else ike.proposal,
                "local": str(sa.local), "local_port": sa.local_port,
                "remote": str(sa.remote), "remote_port": sa.remote_port,
                "local_id": list(sa.config.local_id),
                "peer_id": list(ike.peer_id),
                "initiator": sa.initiator,
            },
            "previous_ike_sas": [{"spi_i": old.spi_i.hex(), "spi_r": old.spi_r.hex(),
                                  "state": old.state} for old in self.previous],
            "child_sas": [_child(c, "installed" if c.inbound_spi in live else
                                 "rekeyed" if c.inbound_spi in rekeyed else "deleted", keys)
                          for c in self.children],
            "assigned": [_assigned(e) for e in self.events
                         if isinstance(e, AddressAssigned)],
            "nat_detected": sa.nat_detected,
            "nat_local": sa.nat_local, "nat_remote": sa.nat_remote,
            "deleted": self.deleted is not None,
            "deleted_by_peer": None if self.deleted is None else self.deleted.by_peer,
            "error": None if failure is None else {"reason": failure.reason,
                                                   "notify": failure.notify},
            "dropped": [e.reason for e in self.events if isinstance(e, MessageDropped)],
            "messages": {"sent": sum(s.messages_sent for s in (*self.previous, sa)),
                         "received": sum(s.messages_received
                                         for s in (*self.previous, sa))},
        }


def _child(c: ChildSaEstablished, state: str | None = None,
           keys: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "spi_in": f"{c.inbound_spi:08x}", "spi_out": f"{c.outbound_spi:08x}",
        "suite": c.suite, "mode": c.mode,
        "local_ts": [str(t) for t in c.local_ts],
        "remote_ts": [str(t) for t in c.remote_ts],
        "udp_encapsulation": c.udp_encapsulation, "reqid": c.reqid,
    }
    if state is not None:
        entry["state"] = state
    if keys:
        entry["keys"] = {"secret": True,
                         "encr_in": c.encr_in.hex(), "integ_in": c.integ_in.hex(),
                         "encr_out": c.encr_out.hex(), "integ_out": c.integ_out.hex()}
    return entry


def event_dict(sa: IkeSa, event: Event, keys: bool = False) -> dict[str, Any]:
    """One event as a JSON object (a line of ``--events``); key material only with
    ``keys``. ``ike`` names the IKE SA that reported it."""
    entry: dict[str, Any] = {"event": type(event).__name__, "time": round(time.time(), 6),
                             "ike": {"spi_i": sa.spi_i.hex(), "spi_r": sa.spi_r.hex()}}
    if isinstance(event, IkeSaEstablished):
        entry.update(proposal=event.proposal, peer_id=list(event.peer_id),
                     nat_detected=event.nat_detected,
                     local_port=sa.local_port, remote_port=sa.remote_port)
    elif isinstance(event, ChildSaEstablished):
        entry["child"] = _child(event, keys=keys)
    elif isinstance(event, ChildSaRekeyed):
        entry.update(old_spi_in=f"{event.old_inbound_spi:08x}",
                     new_spi_in=f"{event.new_inbound_spi:08x}")
    elif isinstance(event, ChildSaDeleted):
        entry.update(spi_in=f"{event.inbound_spi:08x}", spi_out=f"{event.outbound_spi:08x}",
                     by_peer=event.by_peer)
    elif isinstance(event, IkeSaRekeyed):
        new = event.new
        entry["new"] = {"spi_i": new.spi_i.hex(), "spi_r": new.spi_r.hex(),
                        "proposal": new.proposal.keyword if new.proposal else None,
                        "initiator": new.initiator}
    elif isinstance(event, IkeSaDeleted):
        entry["by_peer"] = event.by_peer
    elif isinstance(event, AddressAssigned):
        entry.update(_assigned(event))
    elif isinstance(event, IkeSaFailed):
        entry.update(reason=event.reason, notify=event.notify)
    elif isinstance(event, MessageDropped):
        entry["reason"] = event.reason
    return entry


def _assigned(event: AddressAssigned) -> dict[str, Any]:
    value = event.value
    entry: dict[str, Any] = {"attribute": event.attribute}
    if hasattr(value, "prefix"):            # a MIP6_HOME_PREFIX (HomePrefix) answer
        entry["value"] = str(value.prefix)
        entry["lifetime"] = getattr(value, "lifetime", None)
    elif isinstance(value, (ipaddress.IPv6Interface, ipaddress.IPv4Interface)):
        entry["value"] = str(value.ip)          # the address; its prefix length apart
        entry["prefix_length"] = value.network.prefixlen
    else:
        entry["value"] = str(value)
    return entry


def _describe(event: Event) -> str:
    """An event for the log, without key material."""
    if isinstance(event, ChildSaEstablished):
        return (f"ChildSaEstablished(in={event.inbound_spi:08x}, out={event.outbound_spi:08x},"
                f" {event.suite}, {event.mode}, {[str(t) for t in event.local_ts]} === "
                f"{[str(t) for t in event.remote_ts]}, udp_encap={event.udp_encapsulation})")
    if isinstance(event, IkeSaEstablished):
        return (f"IkeSaEstablished({event.spi_i.hex()}_i {event.spi_r.hex()}_r "
                f"{event.proposal} peer={event.peer_id} nat={event.nat_detected})")
    return repr(event)


# -- the loop ------------------------------------------------------------------------------


class UdpDriver:
    """IKE SAs on real UDP sockets: one initiator, or a responder for anyone.

    Every IKE SA engine is registered by its initiator SPI (``engines``); a rekeyed IKE
    SA's successor is registered under its own SPIs as soon as the engine reports
    :class:`IkeSaRekeyed`, and the :class:`SaResult` it belongs to follows it. The old
    engine stays registered to finish its DELETE exchange and to answer retransmissions.
    ``on_event(result, sa, event)`` is called for every event as it happens."""

    KEEPALIVE_S = 20.0          # NAT keepalives when behind a NAT (RFC 3948 §4)

    def __init__(self, config: IkeConfig, local: str, *,
                 sockets: dict[int, socket.socket] | None = None,
                 verbose=None, on_event=None) -> None:
        self.config = config
        self.local = str(ipaddress.ip_address(local))
        self.sockets = sockets if sockets is not None else open_sockets(self.local)
        self.selector = selectors.DefaultSelector()
        for port, sock in self.sockets.items():
            self.selector.register(sock, selectors.EVENT_READ, port)
        self.allocate_spi = SpiAllocator()
        self.sas: dict[bytes, SaResult] = {}          # by the first SA's initiator SPI
        self.engines: dict[bytes, tuple[IkeSa, SaResult]] = {}   # every engine, by SPIi
        self.initiator: SaResult | None = None        # set by initiate(): no responding
        self.log = verbose or (lambda text: None)
        self._logging = verbose is not None   # per datagram: format log lines only if kept
        self.on_event = on_event
        self._keepalive_at: dict[int, float] = {}     # id(result) -> next keepalive

    def close(self) -> None:
        self.selector.close()
        for sock in self.sockets.values():
            sock.close()

    def __enter__(self) -> UdpDriver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- I/O -------------------------------------------------------------------------------

    def _register(self, sa: IkeSa, result: SaResult, spi_i: bytes | None = None) -> None:
        self.engines[spi_i or sa.spi_i] = (sa, result)

    def _flush(self, sa: IkeSa, result: SaResult) -> None:
        for d in sa.datagrams_to_send():
            sock = self.sockets.get(d.sport) or self.sockets[IKE_PORT]
            if self._logging:
                self.log(f"send {len(d.data)} octets {d.src}[{d.sport}] -> {d.dst}[{d.dport}]")
            try:
                sock.sendto(d.data, (d.dst, d.dport))
            except OSError as exc:       # unreachable for now: the timer retransmits
                self.log(f"sendto {d.dst}[{d.dport}] failed: {exc}")
        while (event := sa.next_event()) is not None:
            if self._logging:
                self.log(f"event {_describe(event)}")
            result.events.append(event)
            if isinstance(event, IkeSaRekeyed):
                new = event.new
                if result.sa is sa:
                    result.previous.append(sa)
                    result.sa = new
                self._register(new, result)
                self.log(f"IKE SA {sa.spi_i.hex()}_i {sa.spi_r.hex()}_r rekeyed: now "
                         f"{new.spi_i.hex()}_i {new.spi_r.hex()}_r")
            elif isinstance(event, IkeSaDeleted) and result.sa is sa:
                result.deleted = event
            if self.on_event is not None:
                self.on_event(result, sa, event)
            if isinstance(event, IkeSaRekeyed):
                self._flush(event.new, result)

    def _receive(self, sock: socket.socket, port: int) -> None:
        try:
            payload, peer = sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return
        src, sport = peer[0].split("%")[0], peer[1]
        if self._logging:
            self.log(f"recv {len(payload)} octets {src}[{sport}] -> {self.local}[{port}]")
        try:
            data = unwrap_udp(payload, port)
        except MalformedPacket:
            return
        if data is None or len(data) < 28:
            return       # NAT keepalive, ESP, or too short to be IKE
        spi_i, flags = data[:8], data[19]
        entry = self.engines.get(spi_i)
        if entry is None:
            result = self._new_responder(data, src, sport, port)
            if result is None:
                return
            sa = result.sa
        else:
            sa, result = entry
            self._follow_peer(sa, flags, src, sport, port)
        sa.receive(data, src, sport, now_us(), port)
        self._flush(sa, result)

    def _follow_peer(self, sa: IkeSa, flags: int, src: str, sport: int, port: int) -> None:
        """A request from the peer: answer where it came from (RFC 7296 §2.11, §2.23).

        The engine keeps IKE_SA_INIT's ports; after the peer's move to 4500 its answers
        would go to UDP 500. Only requests (not responses) make us follow; the original
        initiator never follows (it chose the ports), a responder -- or the successor of a
        rekeyed SA, whichever end started the rekey -- does, as §2.23 allows."""
        if flags & 0x20:
            return
        result = self.engines.get(sa.spi_i, (None, None))[1]
        if result is not None and result is self.initiator:
            return
        if (sa.local_port, sa.remote_port) != (port, sport) or str(sa.remote) != src:
            self.log(f"peer moved to {src}[{sport}] (our port {port})")
            sa.local_port, sa.remote_port = port, sport
            sa.remote = ipaddress.ip_address(src)

    def _new_responder(self, data: bytes, src: str, sport: int, port: int) -> SaResult | None:
        if self.initiator is not None:
            return None
        if data[19] & 0x20 or data[8:16] != bytes(8) or data[18] != IKE_SA_INIT:
            self.log(f"no IKE SA for SPI {data[:8].hex()}: dropped")
            return None
        sa = IkeSa(self.config, False, self.local, src, os.urandom, self.allocate_spi,
                   now_us(), port, sport)
        result = SaResult(sa)
        self.sas[data[:8]] = result
        self._register(sa, result, data[:8])     # the engine learns SPIi from the request
        return result

    def _timeout(self) -> float | None:
        deadlines = [sa.timer_us for sa, _ in self.engines.values() if sa.timer_us is not None]
        if not deadlines:
            return None
        return max(0.0, (min(deadlines) - now_us()) / 1_000_000)

    def _timers(self) -> None:
        now = now_us()
        for sa, result in list(self.engines.values()):
            timer = sa.timer_us
            if timer is not None and timer <= now:
                sa.handle_timer(now)
                self._flush(sa, result)

    def step(self, limit: float | None) -> None:
        """Wait for a datagram or a timer, at most ``limit`` seconds; handle it."""
        timeout = self._timeout()
        if limit is not None:
            timeout = limit if timeout is None else min(timeout, limit)
        for key, _ in self.selector.select(timeout):
            self._receive(key.fileobj, key.data)
        self._timers()

    # -- staying alive ---------------------------------------------------------------------

    def request(self, result: SaResult, action: str) -> bool:
        """Start ``action`` on the current IKE SA of ``result``: ``rekey-child`` (the first
        live child SA), ``rekey-ike``, ``delete-child``, ``delete`` or ``liveness``.
        False when it has to wait (an exchange outstanding) or cannot be done."""
        sa = result.sa
        if sa.state != "ESTABLISHED" or sa.pending is not None:
            return False
        now = now_us()
        child = next(iter(sa.children), None)
        try:
            if action == "rekey-child":
                if child is None:
                    return False
                sa.create_child(now, rekey=child)
            elif action == "rekey-ike":
                sa.rekey_ike(now)
            elif action == "delete-child":
                if child is None:
                    return False
                sa.delete_child(child, now)
            elif action == "delete":
                sa.delete(now)
            elif action == "liveness":
                sa.check_liveness(now)
            else:
                raise ValueError(f"unknown action {action!r}")
        except ValueError as exc:
            self.log(f"{action}: {exc}")
            return False
        self.log(f"{action} on {sa.spi_i.hex()}_i {sa.spi_r.hex()}_r")
        self._flush(sa, result)
        return True

    def _keepalive(self, result: SaResult) -> None:
        sa = result.sa
        if not sa.nat_local or sa.state != "ESTABLISHED" or sa.local_port != NAT_T_PORT:
            return
        key, now = id(result), time.monotonic()
        due = self._keepalive_at.setdefault(key, now + self.KEEPALIVE_S)
        if now >= due:
            self._keepalive_at[key] = now + self.KEEPALIVE_S
            try:
                self.sockets[NAT_T_PORT].sendto(b"\xff", (str(sa.remote), sa.remote_port))
            except OSError as exc:
                self.log(f"NAT keepalive failed: {exc}")

    def serve(self, result: SaResult, stay: float | None = None,
              until_deleted: bool = False,
              schedule: list[tuple[float, str]] | None = None) -> SaResult:
        """Keep ``result``'s IKE SA alive: answer the peer's requests (rekeys, deletes,
        liveness checks), run our own retransmissions, and start the actions of
        ``schedule`` (seconds from now, action for :meth:`request`) when due; an action
        that cannot start yet (an exchange outstanding) is retried shortly after.

        Returns after ``stay`` seconds (None: no limit), or -- with ``until_deleted`` --
        once the current IKE SA is gone (deleted by either end, or failed). Either way
        it first waits (bounded) for our own outstanding exchange to finish."""
        start = time.monotonic()
        deadline = None if stay is None else start + stay
        todo = sorted((start + at, action) for at, action in (schedule or []))
        while True:
            now = time.monotonic()
            while todo and todo[0][0] <= now:
                at, action = todo.pop(0)
                if not self.request(result, action) and result.sa.state in (
                        "ESTABLISHED", "DELETING"):
                    todo.append((now + 0.05, action))
                    todo.sort()
            sa = result.sa
            gone = sa.state == "CLOSED" or result.deleted is not None
            if until_deleted and gone:
                break
            if deadline is not None and now >= deadline:
                break
            if stay is None and not until_deleted and not todo:
                break
            self._keepalive(result)
            limit = 1.0
            if deadline is not None:
                limit = min(limit, deadline - now)
            if todo:
                limit = min(limit, max(0.0, todo[0][0] - now))
            if self.KEEPALIVE_S and sa.nat_local:
                limit = min(limit, self.KEEPALIVE_S)
            self.step(max(0.0, limit))
        self._drain(result, 5.0)
        return result

    def _drain(self, result: SaResult, limit: float) -> None:
        """Let outstanding exchanges of ``result``'s engines end (bounded)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and any(
                sa.pending is not None and sa.state != "CLOSED"
                for sa, r in self.engines.values() if r is result):
            self.step(deadline - time.monotonic())

    # -- roles -----------------------------------------------------------------------------

    def initiate(self, remote: str, timeout: float = 30.0, delete: bool = False, *,
                 stay: float | None = None, until_deleted: bool = False,
                 schedule: list[tuple[float, str]] | None = None,
                 on_established=None) -> SaResult:
        """Run one IKE SA (IKE_SA_INIT + IKE_AUTH) with ``remote``; then, with ``stay``,
        ``until_deleted`` or a ``schedule``, keep it (see :meth:`serve`); with ``delete``,
        delete it at the end. ``on_established(result)`` is called once it is up."""
        remote = str(ipaddress.ip_address(remote))
        sa = IkeSa(self.config, True, self.local, remote, os.urandom, self.allocate_spi,
                   now_us())
        result = self.initiator = SaResult(sa)
        self.sas[sa.spi_i] = result
        self._register(sa, result)
        sa.initiate(now_us())
        self._flush(sa, result)
        deadline = time.monotonic() + timeout
        while sa.state not in ("ESTABLISHED", "CLOSED") or sa.pending is not None:
            if sa.spi_i not in self.engines:    # re-keyed by a cookie/INVALID_KE retry?
                self._register(sa, result)
            left = deadline - time.monotonic()
            if left <= 0:
                result.events.append(IkeSaFailed(f"no IKE SA within {timeout:g} s "
                                                 f"(state {sa.state})"))
                break
            self.step(left)
        if sa.state == "ESTABLISHED":
            if on_established is not None:
                on_established(result)
            if stay is not None or until_deleted or schedule:
                self.serve(result, stay, until_deleted, schedule)
        if delete and result.sa.state == "ESTABLISHED":
            self.request(result, "delete")
            self._drain(result, min(timeout, 10.0))
        return result

    def respond(self, once: bool = False, timeout: float | None = None,
                on_result=None, *, stay: float | None = None, until_deleted: bool = False,
                schedule: list[tuple[float, str]] | None = None) -> list[SaResult]:
        """Answer initiators; with ``once``, return after the first IKE SA is established
        or has failed -- or, with ``stay``/``until_deleted``/``schedule``, keep that first
        established SA (see :meth:`serve`) before returning. ``timeout`` bounds the wait
        for it (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        reported: set[bytes] = set()
        while True:
            for spi, result in list(self.sas.items()):
                if spi in reported:
                    continue
                if result.established or result.sa.state == "CLOSED" or result.failure:
                    reported.add(spi)
                    if on_result is not None:
                        on_result(result)
            if once and reported:
                done = [self.sas[s] for s in reported]
                up = next((r for r in done if r.established and r.sa.state == "ESTABLISHED"),
                          None)
                if up is not None and (stay is not None or until_deleted or schedule):
                    self.serve(up, stay, until_deleted, schedule)
                return done
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return list(self.sas.values())
            self.step(left if left is not None else 1.0)


def initiate(config: IkeConfig, remote: str, local: str | None = None,
             timeout: float = 30.0, delete: bool = False, verbose=None, *,
             on_event=None, **keep) -> SaResult:
    """Bind ``local`` (default: the source towards ``remote``) on 500 and 4500, run one
    IKE SA as initiator (``keep``: ``stay``, ``until_deleted``, ``schedule``,
    ``on_established`` of :meth:`UdpDriver.initiate`), close the sockets, return the
    result."""
    local = local or local_address_for(remote)
    with UdpDriver(config, local, verbose=verbose, on_event=on_event) as driver:
        return driver.initiate(remote, timeout, delete, **keep)


def respond(config: IkeConfig, listen: str, once: bool = False,
            timeout: float | None = None, on_result=None, verbose=None, *,
            on_event=None, **keep) -> list[SaResult]:
    """Bind ``listen`` on 500 and 4500 and answer initiators (see :meth:`UdpDriver.respond`)."""
    with UdpDriver(config, listen, verbose=verbose, on_event=on_event) as driver:
        return driver.respond(once, timeout, on_result, **keep)


__all__ = ["UdpDriver", "SaResult", "SpiAllocator", "initiate", "respond", "open_sockets",
           "local_address_for", "now_us", "event_dict"]
