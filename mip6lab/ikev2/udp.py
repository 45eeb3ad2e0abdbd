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
        live = set(sa.children)
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
    """IKE SAs on real UDP sockets: one initiator, or a responder for anyone."""

    def __init__(self, config: IkeConfig, local: str, *,
                 sockets: dict[int, socket.socket] | None = None,
                 verbose=None) -> None:
        self.config = config
        self.local = str(ipaddress.ip_address(local))
        self.sockets = sockets if sockets is not None else open_sockets(self.local)
        self.selector = selectors.DefaultSelector()
        for port, sock in self.sockets.items():
            self.selector.register(sock, selectors.EVENT_READ, port)
        self.allocate_spi = SpiAllocator()
        self.sas: dict[bytes, SaResult] = {}          # by initiator SPI
        self.initiator: SaResult | None = None        # set by initiate(): no responding
        self.log = verbose or (lambda text: None)

    def close(self) -> None:
        self.selector.close()
        for sock in self.sockets.values():
            sock.close()

    def __enter__(self) -> UdpDriver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- I/O -------------------------------------------------------------------------------

    def _flush(self, result: SaResult) -> None:
        sa = result.sa
        for d in sa.datagrams_to_send():
            sock = self.sockets.get(d.sport) or self.sockets[IKE_PORT]
            self.log(f"send {len(d.data)} octets {d.src}[{d.sport}] -> {d.dst}[{d.dport}]")
            try:
                sock.sendto(d.data, (d.dst, d.dport))
            except OSError as exc:       # unreachable for now: the timer retransmits
                self.log(f"sendto {d.dst}[{d.dport}] failed: {exc}")
        while (event := sa.next_event()) is not None:
            self.log(f"event {_describe(event)}")
            result.events.append(event)

    def _receive(self, sock: socket.socket, port: int) -> None:
        try:
            payload, peer = sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return
        src, sport = peer[0].split("%")[0], peer[1]
        self.log(f"recv {len(payload)} octets {src}[{sport}] -> {self.local}[{port}]")
        try:
            data = unwrap_udp(payload, port)
        except MalformedPacket:
            return
        if data is None or len(data) < 28:
            return       # NAT keepalive, ESP, or too short to be IKE
        spi_i, flags = data[:8], data[19]
        result = self.sas.get(spi_i)
        if result is None:
            result = self._new_responder(data, src, sport, port)
            if result is None:
                return
        else:
            self._follow_peer(result.sa, flags, src, sport, port)
        result.sa.receive(data, src, sport, now_us())
        self._flush(result)

    def _follow_peer(self, sa: IkeSa, flags: int, src: str, sport: int, port: int) -> None:
        """A request from the peer: answer where it came from (RFC 7296 §2.11, §2.23).

        The engine keeps IKE_SA_INIT's ports; after the peer's move to 4500 its answers
        would go to UDP 500. Only requests (not responses) and only when both ends use
        4500 or both 500 make us follow, which is what §2.23 allows a responder."""
        if flags & 0x20 or sa.initiator:
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
        return result

    def _timeout(self) -> float | None:
        deadlines = [r.sa.timer_us for r in self.sas.values() if r.sa.timer_us is not None]
        if not deadlines:
            return None
        return max(0.0, (min(deadlines) - now_us()) / 1_000_000)

    def _timers(self) -> None:
        now = now_us()
        for result in list(self.sas.values()):
            timer = result.sa.timer_us
            if timer is not None and timer <= now:
                result.sa.handle_timer(now)
                self._flush(result)

    def step(self, limit: float | None) -> None:
        """Wait for a datagram or a timer, at most ``limit`` seconds; handle it."""
        timeout = self._timeout()
        if limit is not None:
            timeout = limit if timeout is None else min(timeout, limit)
        for key, _ in self.selector.select(timeout):
            self._receive(key.fileobj, key.data)
        self._timers()

    # -- roles -----------------------------------------------------------------------------

    def initiate(self, remote: str, timeout: float = 30.0, delete: bool = False) -> SaResult:
        """Run one IKE SA (IKE_SA_INIT + IKE_AUTH) with ``remote`` to its end."""
        remote = str(ipaddress.ip_address(remote))
        sa = IkeSa(self.config, True, self.local, remote, os.urandom, self.allocate_spi,
                   now_us())
        result = self.initiator = SaResult(sa)
        self.sas[sa.spi_i] = result
        sa.initiate(now_us())
        self._flush(result)
        deadline = time.monotonic() + timeout
        while sa.state not in ("ESTABLISHED", "CLOSED") or sa.pending is not None:
            if sa.spi_i not in self.sas:        # re-keyed by a cookie/INVALID_KE retry?
                self.sas[sa.spi_i] = result
            left = deadline - time.monotonic()
            if left <= 0:
                result.events.append(IkeSaFailed(f"no IKE SA within {timeout:g} s "
                                                 f"(state {sa.state})"))
                break
            self.step(left)
        if delete and sa.state == "ESTABLISHED":
            sa.delete(now_us())
            self._flush(result)
            deadline = time.monotonic() + min(timeout, 10.0)
            while sa.state == "DELETING" and time.monotonic() < deadline:
                self.step(deadline - time.monotonic())
        return result

    def respond(self, once: bool = False, timeout: float | None = None,
                on_result=None) -> list[SaResult]:
        """Answer initiators; with ``once``, return after the first IKE SA is established
        or has failed. ``timeout`` bounds the whole run (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        reported: set[bytes] = set()
        while True:
            for spi, result in self.sas.items():
                if spi in reported:
                    continue
                if result.established or result.sa.state == "CLOSED" or result.failure:
                    reported.add(spi)
                    if on_result is not None:
                        on_result(result)
            if once and reported:
                return [self.sas[s] for s in reported]
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return list(self.sas.values())
            self.step(left if left is not None else 1.0)


def initiate(config: IkeConfig, remote: str, local: str | None = None,
             timeout: float = 30.0, delete: bool = False, verbose=None) -> SaResult:
    """Bind ``local`` (default: the source towards ``remote``) on 500 and 4500, run one
    IKE SA as initiator, close the sockets, return the result."""
    local = local or local_address_for(remote)
    with UdpDriver(config, local, verbose=verbose) as driver:
        return driver.initiate(remote, timeout, delete)


def respond(config: IkeConfig, listen: str, once: bool = False,
            timeout: float | None = None, on_result=None, verbose=None) -> list[SaResult]:
    """Bind ``listen`` on 500 and 4500 and answer initiators (see :meth:`UdpDriver.respond`)."""
    with UdpDriver(config, listen, verbose=verbose) as driver:
        return driver.respond(once, timeout, on_result)


__all__ = ["UdpDriver", "SaResult", "SpiAllocator", "initiate", "respond", "open_sockets",
           "local_address_for", "now_us"]
