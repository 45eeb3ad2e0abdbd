"""Small applications that give the network something to carry.

:class:`Pinger` sends ICMP(v6) echo requests at an interval and records the replies;
:class:`UdpEchoServer` answers every datagram with the same bytes; :class:`UdpClient`
sends numbered datagrams and records the answers. Each reports to the trace (module
``app``) so that a ladder shows the application's view beside the packets.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .node import EchoReply, Node, UdpDatagram


@dataclass
class Pinger:
    """Ping ``dst`` ``count`` times, one every ``interval`` seconds, starting at ``start``."""

    node: Node
    dst: str
    count: int = 3
    interval: float = 1.0
    start: float = 0.0
    ident: int = 0x6d6c
    sent: int = 0
    rtts: dict[int, float] = field(default_factory=dict)   # seq -> round trip (s)
    _sent_at: dict[int, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        _check_schedule(self.count, self.interval, self.start)
        self.node.echo_listeners.append(self._reply)
        self.node.sim.call_later(self.start, self._send, label=f"{self.node.name} ping")

    @property
    def received(self) -> int:
        return len(self.rtts)

    def _send(self) -> None:
        self.sent += 1
        seq = self.sent
        self._sent_at[seq] = self.node.sim.now_us
        self.node.ping(self.dst, seq, self.ident)
        if self.sent < self.count:
            self.node.sim.call_later(self.interval, self._send,
                                     label=f"{self.node.name} ping")

    def _reply(self, reply: EchoReply) -> None:
        if reply.ident != self.ident or reply.src != ipaddress.ip_address(self.dst):
            return
        if reply.seq in self.rtts or reply.seq not in self._sent_at:
            return  # a duplicate reply counts once
        rtt = (reply.time_us - self._sent_at[reply.seq]) / 1e6
        self.rtts[reply.seq] = rtt
        self.node.announce("app", f"echo reply seq={reply.seq} from {reply.src} "
                           f"rtt={rtt * 1000:.3f} ms", seq=reply.seq, rtt=rtt)


class UdpEchoServer:
    """Answer each datagram on ``port`` with the same payload."""

    def __init__(self, node: Node, port: int = 7) -> None:
        self.node = node
        self.port = port
        self.answered = 0
        self.peers: set[str] = set()   # "address:port" of every client seen
        node.bind_udp(port, self._datagram)

    def _datagram(self, datagram: UdpDatagram) -> None:
        self.answered += 1
        self.peers.add(f"{datagram.src}:{datagram.sport}")
        self.node.send_udp(datagram.src, datagram.sport, datagram.payload, self.port,
                           src=datagram.dst)


@dataclass
class UdpClient:
    """Send ``count`` numbered datagrams to ``dst``:``port`` and record the echoes."""

    node: Node
    dst: str
    port: int = 7
    count: int = 3
    interval: float = 1.0
    start: float = 0.0
    sport: int | None = None
    src: str | None = None          # source address; None: the node chooses
    sent: int = 0
    answers: list[int] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        _check_schedule(self.count, self.interval, self.start)
        self.sport = self.sport or self.node.ephemeral_port()
        self.node.bind_udp(self.sport, self._datagram)
        self.node.sim.call_later(self.start, self._send, label=f"{self.node.name} udp")

    @property
    def received(self) -> int:
        return len(set(self.answers))

    def _send(self) -> None:
        self.sent += 1
        self.node.send_udp(self.dst, self.port, b"mip6lab %04d" % self.sent, self.sport,
                           src=self.src)
        if self.sent < self.count:
            self.node.sim.call_later(self.interval, self._send,
                                     label=f"{self.node.name} udp")

    def _datagram(self, datagram: UdpDatagram) -> None:
        try:
            number = int(datagram.payload.split()[-1])
        except (ValueError, IndexError):
            self.node.announce("app", f"unexpected datagram from {datagram.src}")
            return
        self.answers.append(number)
        self.sources.add(f"{datagram.src}:{datagram.sport}")
        self.node.announce("app", f"UDP answer {number} from {datagram.src}:"
                           f"{datagram.sport}", number=number)


def _check_schedule(count: int, interval: float, start: float) -> None:
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    if interval <= 0 or start < 0:
        raise ValueError("interval must be positive and start not negative")
