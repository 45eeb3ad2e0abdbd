"""One event trace for the whole lab: packets, drops, state changes, seam crossings.

Every module reports what it does here, and nowhere else, so that a notebook, the CLI
and the tests all read the same record. An :class:`Event` has a time, the node and the
module that reported it, a kind and a one-line summary; packet events also carry the
frame's bytes and the link it crossed.

Kinds used by the network layer:

``tx``     a frame put on a link by ``node`` (this is what a capture of the link shows)
``rx``     a frame delivered to ``node`` by the link (``peer`` is the sender)
``drop``   a frame or packet discarded, with ``reason``
``state``  a module announces a change of its state (an address, a NAT mapping, ...)
``error``  a handler failed on input it was given; the packet was dropped, the lab goes on

Later modules add their own kinds (for example the key engine's seam crossings); the
trace does not restrict them.

Levels: what the trace keeps (:data:`LEVELS`; ``Lab(trace_level=...)``, a scenario's
``trace_level=``, or ``trace.level = ...`` at any time):

``"full"``    (the default, what a course needs) every event, packet events with the
              frame's bytes: the dashboard, the timeline, ladders and pcaps read these.
``"events"``  every event except the frames on the links (``tx`` and ``rx``): what the
              modules did -- state changes, seam crossings, drops and errors (a drop
              still carries the bytes of what it dropped) -- without the traffic. The
              frames are counted in :attr:`Trace.counts`.
``"counts"``  no event kept: :attr:`Trace.counts` alone, the number of events of each
              kind. For runs at scale (``benchmarks/mobility.py``), where a trace of
              every frame of 10 000 mobile nodes would be most of the memory.

A kept event is made when it is emitted; one that is not kept is never built (no
object, no summary), so a lower level saves the time as well as the memory. Code that
formats an expensive summary asks :meth:`Trace.keeps` first, and counts what it does
not emit with :meth:`Trace.count`. :meth:`Trace.emit` returns the event, or None when
the level does not keep it. Subscribers see the kept events only; the timeline
(:mod:`mip6lab.timeline`) needs ``"full"``.

Exports: :meth:`Events.ladder` draws a text sequence diagram; :meth:`Events.write_pcapng`
writes one pcapng with one interface per link; :meth:`Events.write_pcaps` one classic
pcap per link.
"""

from __future__ import annotations

import os
from decimal import Decimal
from collections.abc import Callable, Iterable
from typing import Any

from scapy.utils import RawPcapNgWriter, RawPcapWriter

from .net.frames import describe

LINKTYPE_ETHERNET = 1
PACKET_KINDS = frozenset({"tx", "rx"})
#: the trace levels, from the most kept to the least (see the module docstring)
LEVELS = ("full", "events", "counts")
#: the kinds each level leaves out (None: every kind)
_LEFT_OUT: dict[str, frozenset[str] | None] = {"full": frozenset(), "events": PACKET_KINDS,
                                               "counts": None}


class Event:
    """One thing that happened in the lab. Read-only by convention."""

    __slots__ = ("index", "time_us", "node", "module", "kind", "_summary", "packet",
                 "link", "peer", "reason", "data")

    def __init__(self, index: int, time_us: int, node: str, module: str, kind: str,
                 summary: str | None = None, packet: bytes | None = None,
                 link: str | None = None, peer: str | None = None,
                 reason: str | None = None, data: dict[str, Any] | None = None) -> None:
        self.index = index
        self.time_us = time_us
        self.node = node
        self.module = module
        self.kind = kind
        self._summary = summary
        self.packet = packet
        self.link = link
        self.peer = peer
        self.reason = reason
        self.data = {} if data is None else data

    @property
    def time(self) -> float:
        """Simulated time of the event in seconds."""
        return self.time_us / 1_000_000

    @property
    def summary(self) -> str:
        """One line; for packet events it is made from the frame when first asked."""
        if self._summary is None:
            self._summary = describe(self.packet) if self.packet is not None else ""
        return self._summary

    def scapy(self):
        """The frame dissected by scapy (``show()``, ``hexdump()`` ...), or None."""
        from scapy.layers.l2 import Ether

        return Ether(self.packet) if self.packet is not None else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "time": self.time, "node": self.node,
                               "module": self.module, "kind": self.kind,
                               "summary": self.summary}
        for key in ("link", "peer", "reason"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.packet is not None:
            out["length"] = len(self.packet)
        if self.data:
            out["data"] = {k: _jsonable(v) for k, v in self.data.items()}
        return out

    def __repr__(self) -> str:
        where = f" {self.link}" if self.link else ""
        why = f" ({self.reason})" if self.reason else ""
        return (f"<Event #{self.index} {self.time:.6f}s {self.node}/{self.module} "
                f"{self.kind}{where}: {self.summary}{why}>")


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


class Events(list):
    """A list of events with the views a student needs: filter, ladder, pcap."""

    def filter(self, *, node: str | Iterable[str] | None = None,
               module: str | Iterable[str] | None = None,
               kind: str | Iterable[str] | None = None,
               link: str | Iterable[str] | None = None,
               since: float | None = None, until: float | None = None,
               where: Callable[[Event], bool] | None = None) -> Events:
        """Events matching every given criterion; strings or collections of strings."""

        def accepts(wanted, value) -> bool:
            if wanted is None:
                return True
            if isinstance(wanted, str):
                return value == wanted
            return value in wanted

        return Events(
            e for e in self
            if accepts(node, e.node) and accepts(module, e.module)
            and accepts(kind, e.kind) and accepts(link, e.link)
            and (since is None or e.time >= since) and (until is None or e.time <= until)
            and (where is None or where(e)))

    def frames(self) -> Events:
        """The frames on the wire: what a capture of every link would hold."""
        return self.filter(kind="tx")

    def links(self) -> list[str]:
        """Names of the links that carried frames, in order of first use."""
        return list(dict.fromkeys(e.link for e in self if e.kind == "tx" and e.link))

    def ladder(self, nodes: list[str] | None = None, width: int = 12,
               show_state: bool = True) -> str:
        """A text sequence diagram: one column per node, one row per delivery or drop.

        A delivered frame is an arrow from the sender's column to the receiver's; a drop
        is an ``x`` in the column of the node (or link) that dropped it; a state change
        is a ``*`` with its summary. When ``nodes`` leaves out the sender of a delivered
        frame, the delivery is a ``>`` in the receiver's column, labelled with the sender.
        """
        rows = [e for e in self if e.kind in ("rx", "drop", "error")
                or (show_state and e.kind == "state")]
        if nodes is None:
            seen: dict[str, None] = {}
            for e in rows:
                if e.kind == "rx" and e.peer:
                    seen.setdefault(e.peer)
                seen.setdefault(e.node)
            nodes = list(seen)
        column = {name: i for i, name in enumerate(nodes)}
        header = "time (s)    " + "".join(name[:width - 1].ljust(width) for name in nodes)
        lines = [header.rstrip(), "-" * len(header.rstrip())]
        for e in rows:
            cells = [" " * width for _ in nodes]
            for name, i in column.items():
                cells[i] = "|".ljust(width)
            if e.kind == "rx" and e.peer in column and e.node in column:
                a, b = column[e.peer], column[e.node]
                lo, hi = min(a, b), max(a, b)
                span = "-" * ((hi - lo) * width - 1)
                arrow = (span[:-1] + ">") if b > a else ("<" + span[1:])
                line = "".join(cells[:lo]) + "|" + arrow + "".join(cells[hi:])
                label = e.summary
            elif e.node in column:
                i = column[e.node]
                mark = {"rx": ">", "drop": "x", "error": "!", "state": "*"}[e.kind]
                cells[i] = mark.ljust(width)
                line = "".join(cells)
                label = e.summary + (f"  [{e.reason}]" if e.reason else "")
                if e.kind == "rx":  # the sender is not one of the columns shown
                    label += f"  [from {e.peer}]"
            else:
                continue
            lines.append(f"{e.time:<11.6f} {line.rstrip():<{len(nodes) * width}}  {label}")
        return "\n".join(lines)

    def write_pcapng(self, path: str | os.PathLike) -> int:
        """Write every frame to one pcapng file, one interface per link; frame count.

        A frame that the link then lost or duplicated carries a pcapng comment saying so.
        """
        frames = self.frames()
        writer = _LinkPcapNgWriter(os.fspath(path))
        try:
            for e in frames:
                comments = [c.encode() for c in e.data.get("comments", ())]
                writer.write_frame(e.link or "unknown", e.packet, e.time_us,
                                   comments=comments or None)
        finally:
            writer.close()
        return len(frames)

    def write_pcaps(self, directory: str | os.PathLike) -> dict[str, str]:
        """Write one classic pcap per link into ``directory``; link name -> path."""
        os.makedirs(directory, exist_ok=True)
        paths: dict[str, str] = {}
        for link in self.links():
            path = os.path.join(os.fspath(directory), f"{link}.pcap")
            writer = RawPcapWriter(path, linktype=LINKTYPE_ETHERNET, sync=False)
            try:
                writer._write_header(None)  # an empty link still gets a valid file
                for e in self.frames().filter(link=link):
                    sec, usec = divmod(e.time_us, 1_000_000)
                    writer.write_packet(e.packet, sec=sec, usec=usec)
            finally:
                writer.close()
            paths[link] = path
        return paths


class _LinkPcapNgWriter(RawPcapNgWriter):
    """scapy's pcapng writer, with one named interface per link and nothing else.

    scapy's own writer always opens with an unnamed interface 0; we want the interface
    list to be exactly the lab's links, so the header is written without it.
    """

    def __init__(self, filename: str) -> None:
        super().__init__(filename)
        self.interfaces2id = {}
        self.sync = False
        self.linktype = LINKTYPE_ETHERNET  # every link carries Ethernet frames

    def _write_header(self, pkt) -> None:
        if not self.header_present:
            self.header_present = True
            self._write_block_shb()

    def write_frame(self, link: str, frame: bytes, time_us: int,
                    comments: list[bytes] | None = None) -> None:
        self._write_header(None)
        name = link.encode()
        if name not in self.interfaces2id:
            self.interfaces2id[name] = len(self.interfaces2id)
            self._write_block_idb(linktype=LINKTYPE_ETHERNET, ifname=name)
        # scapy multiplies the timestamp (seconds) by the resolution; a Decimal keeps
        # that exact, so the same run always writes the same bytes.
        self._write_block_epb(frame, ifid=self.interfaces2id[name],
                              timestamp=Decimal(time_us) / 1_000_000, comments=comments)


class Trace:
    """The lab's event stream. Modules call :meth:`emit`; readers use :attr:`events`.

    ``level`` says what is kept (:data:`LEVELS`, "full" by default); :attr:`counts`
    counts every event emitted, kept or not, by kind. An event's ``index`` is its place
    in :attr:`events`, so it numbers the kept events only.
    """

    def __init__(self, clock: Callable[[], int], level: str = "full") -> None:
        self._clock = clock
        self.events = Events()
        self.counts: dict[str, int] = {}
        self._subscribers: list[Callable[[Event], None]] = []
        self.level = level

    @property
    def level(self) -> str:
        return self._level

    @level.setter
    def level(self, level: str) -> None:
        if level not in LEVELS:
            raise ValueError(f"trace level is one of {', '.join(LEVELS)}, not {level!r}")
        self._level = level
        self._left_out = _LEFT_OUT[level]

    def keeps(self, kind: str) -> bool:
        """Whether an event of ``kind`` emitted now would be kept (worth a summary)."""
        left_out = self._left_out
        return left_out is not None and kind not in left_out

    def emit(self, node: str, module: str, kind: str, summary: str | None = None, *,
             packet: bytes | None = None, link: str | None = None,
             peer: str | None = None, reason: str | None = None,
             **data: Any) -> Event | None:
        """Record one event (if the level keeps its kind); the event, or None."""
        counts = self.counts
        counts[kind] = counts.get(kind, 0) + 1
        left_out = self._left_out
        if left_out is None or kind in left_out:
            return None
        event = Event(len(self.events), self._clock(), node, module, kind, summary,
                      packet, link, peer, reason, data)
        self.events.append(event)
        for subscriber in self._subscribers:
            subscriber(event)
        return event

    def count(self, kind: str, events: int = 1) -> None:
        """Count ``events`` events of ``kind`` without making them: what :meth:`emit`
        does with an event the level does not keep. For the caller that asked
        :meth:`keeps` (an event the level keeps is emitted, not counted)."""
        counts = self.counts
        counts[kind] = counts.get(kind, 0) + events

    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` for every new event; returns an unsubscribe function."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self):
        return iter(self.events)

    def filter(self, **criteria: Any) -> Events:
        return self.events.filter(**criteria)

    def ladder(self, **options: Any) -> str:
        return self.events.ladder(**options)

    def write_pcapng(self, path: str | os.PathLike) -> int:
        return self.events.write_pcapng(path)

    def write_pcaps(self, directory: str | os.PathLike) -> dict[str, str]:
        return self.events.write_pcaps(directory)
