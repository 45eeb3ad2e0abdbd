"""Fuzz targets: every decoder and engine entry point that bytes from the wire reach.

Bad input is data (DESIGN rule 6): whatever a peer sends, the stack answers with a typed
:class:`~mip6lab.errors.RemoteProtocolError` where an API documents raising, a trace
``drop`` event and the protocol's own answer -- never another exception. A
:class:`FuzzTarget` is one entry point with its seeds (genuine inputs) and a ``feed`` that
hands it one input and checks what can be checked afterwards (the IKE SA still
ESTABLISHED and still answering a genuine request, ``lab.errors`` empty ...). The same
targets drive ``tests/test_fuzz_entry_points.py`` (hypothesis) and ``benchmarks/fuzz.py``
(a seeded long-run mutation loop); :func:`mutate` is the one mutation engine of both.

The targets and the RFC text they exercise:

``ike-responder`` / ``ike-initiator``
    RFC 7296 §3.14: an SK payload sealed with the SA's own keys around a mutated inner
    payload chain -- what an authenticated peer could send -- to an ESTABLISHED SA
    (requests: CREATE_CHILD_SA §1.3, IKE SA rekey §2.18, INFORMATIONAL §1.4; responses
    to its own pending request, §2.2).
``ike-auth-responder`` / ``ike-auth-initiator``
    The same for IKE_AUTH (§1.2), the SA between IKE_SA_INIT and IKE_AUTH.
``ike-init``
    Cleartext IKE_SA_INIT requests and responses (§1.2, §3.1) to fresh SAs.
``mobility-header``
    RFC 6275 §6.1 / §6.2 (Mobility Header, BU, BA, every option), RFC 5555 §3.1 options,
    RFC 4285 / RFC 4283 (authentication, MN-ID, replay protection): the home agent's
    checks (``check_mobility_message``) and ``read_authentication``.
``udp4191-decapsulate`` / ``ha-udp-tunnel``
    RFC 5555 §4.1: ``decapsulate_udp4`` and the home agent's UDP 4191 receive path in a
    running DSMIP6 lab, mutated inner packets (routing headers type 0/2/4 among them).
``esp``
    RFC 4303 §3.4 inbound processing of packets sealed with the SA's keys around a
    mutated payload (so that the ICV is right and the mutation reaches the trailer and
    the inner packet), tunnel and transport, UDP-encapsulated (RFC 3948) or not.
``node-frame``
    The frames of a DSMIP6 lab's home agent and mobile node, mutated, into
    ``Node.receive_frame`` of the running lab (the node turns a bug into an ``error``
    event and ``lab.errors``: both must stay empty).

What an input may change is restored cheaply rather than rebuilt: the IKE_AUTH targets
copy one pair per input (:class:`Snapshot`), the lab targets feed one running lab and
check every so often that it is still whole (:class:`DsmipLab`), so that a long run of
10^6 inputs per target is a matter of minutes to hours, not days.
"""

from __future__ import annotations

import copy
import ipaddress
import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import MalformedPacket, RemoteProtocolError

#: A mutation: (kind, position, value). Positions are taken modulo the input length.
Mutation = tuple[str, int, int]
KINDS = ("set", "flip", "insert", "delete", "truncate", "extend", "interesting")
INTERESTING = (0, 1, 2, 3, 4, 7, 8, 0x10, 0x20, 0x3F, 0x40, 0x7F, 0x80, 0xFE, 0xFF)


def mutate(data: bytes, mutations: Sequence[Mutation], start: int = 0) -> bytes:
    """``data`` with ``mutations`` applied in order, none before offset ``start``."""
    out = bytearray(data)
    for kind, position, value in mutations:
        span = len(out) - start
        where = start + (position % span if span > 0 else 0)
        if kind == "set" and span > 0:
            out[where] = value & 0xFF
        elif kind == "flip" and span > 0:
            out[where] ^= 1 << (value % 8)
        elif kind == "interesting" and span > 0:
            out[where] = INTERESTING[value % len(INTERESTING)]
        elif kind == "insert":
            out[where:where] = bytes([value & 0xFF]) * (1 + value % 9)
        elif kind == "delete" and span > 0:
            del out[where:where + 1 + value % 9]
        elif kind == "truncate":
            del out[where:]
        elif kind == "extend":
            out += bytes([value & 0xFF]) * (1 + value % 33)
    return bytes(out)


def random_mutations(rng: random.Random, most: int = 4) -> list[Mutation]:
    return [(rng.choice(KINDS), rng.randrange(1 << 16), rng.randrange(256))
            for _ in range(rng.randint(1, most))]


@dataclass
class FuzzTarget:
    """One entry point: ``feed(data)`` raises only on a bug of ours (or a broken check).

    ``expected`` are the typed errors the API documents raising for bad input;
    ``start`` is where mutation starts (a header the harness rebuilds is left alone);
    ``fix`` (optional) repairs what would stop every mutation at the door (a checksum,
    a length), applied to half the inputs so both doors are tried."""

    name: str
    seeds: list[bytes]
    feed: Callable[[bytes], None]
    expected: tuple[type[BaseException], ...] = ()
    start: int = 0
    fix: Callable[[bytes], bytes] | None = None
    doc: str = ""
    #: what the harness did besides feeding (a pair or lab rebuilt, state copied ...)
    stats: Callable[[], dict[str, object]] = lambda: {}

    def input(self, seed: int, mutations: Sequence[Mutation], fixed: bool) -> bytes:
        data = mutate(self.seeds[seed % len(self.seeds)], mutations, self.start)
        if fixed and self.fix is not None:
            try:
                data = self.fix(data)
            except Exception:   # unfixable (too broken to locate the field): as is
                pass
        return data

    def run(self, data: bytes) -> None:
        """Feed one input; the documented typed errors are bad input answered."""
        try:
            self.feed(data)
        except self.expected:
            pass


# -- IKEv2 ------------------------------------------------------------------------------------

PSK = "fuzz-psk"
_INITIATOR = ("2001:db8:2::10", "2001:db8:1::1")


class SpiCounter:
    """SPIs from a counter: an object, not a closure, so that a copied pair
    (:class:`Snapshot`) counts on its own from where the original stood."""

    def __init__(self, first: int = 0x1000) -> None:
        self.next = first

    def __call__(self) -> int:
        self.next += 1
        return self.next - 1


class IkePair:
    """Two IKE SAs (RFC 7296) in memory, seeded so that every pair is the same pair."""

    def __init__(self, seed: int = 1) -> None:
        from ..ikev2.config import IkeConfig
        from ..ikev2.pools import AddressPool
        from ..ikev2.sa import IkeSa

        rng = random.Random(seed)
        spis = SpiCounter()
        self.i = IkeSa(IkeConfig.make("mn@mip6lab.example", PSK, "ha.mip6lab.example",
                                      request=("ipv6",)),
                       True, *_INITIATOR, rng.randbytes, spis)
        self.r = IkeSa(IkeConfig.make("ha.mip6lab.example", PSK, "mn@mip6lab.example",
                                      pool6=AddressPool.parse("2001:db8:aaaa::/64")),
                       False, *reversed(_INITIATOR), rng.randbytes, spis)

    @staticmethod
    def deliver(to, d) -> None:
        from ..wire.ikev2 import unwrap_udp

        to.receive(unwrap_udp(d.data, 4500) if d.dport == 4500 else d.data,
                   d.src, d.sport, 0, d.dport)

    def one(self, sa) -> object:
        (d,) = sa.datagrams_to_send()
        return d

    def pump(self) -> None:
        for _ in range(6):
            for d in self.i.datagrams_to_send():
                self.deliver(self.r, d)
            for d in self.r.datagrams_to_send():
                self.deliver(self.i, d)
        drain(self.i)
        drain(self.r)

    @classmethod
    def established(cls) -> IkePair:
        pair = cls()
        pair.i.initiate(0)
        pair.pump()
        assert pair.i.state == pair.r.state == "ESTABLISHED"
        return pair


def drain(sa) -> list:
    """Every event ``sa`` has; each must render (a trace shows them)."""
    events = []
    while (event := sa.next_event()) is not None:
        repr(event)
        events.append(event)
    return events


def _plaintext(sa, data: bytes, from_initiator: bool) -> bytes:
    """``bytes([exchange type, first inner payload type]) + inner chain`` of ``data``."""
    from ..crypto.ike.sk import decrypt_message

    first, inner = decrypt_message(sa.keys.cipher(from_initiator=from_initiator), data)
    return bytes([data[18], first]) + inner


def _sealed(sa, plain: bytes, *, from_initiator: bool, response: bool,
            message_id: int) -> bytes:
    """An IKE message of ``sa``'s SPIs whose SK payload (RFC 7296 §3.14) is sealed with
    its keys around ``plain`` (see :func:`_plaintext`; shorter input means an empty SK)."""
    from ..crypto.ike.sk import encrypt_message

    exchange, first, inner = (plain[0], plain[1], plain[2:]) if len(plain) >= 2 \
        else (37, 0, b"")
    flags = (0x08 if from_initiator else 0) | (0x20 if response else 0)
    header = (sa.spi_i + sa.spi_r + bytes([46, 0x20, exchange, flags])
              + struct.pack("!II", message_id, 0))
    cipher = sa.keys.cipher(from_initiator=from_initiator)
    return encrypt_message(cipher, header, first, inner, bytes(cipher.iv_size))


_LIVENESS = bytes([37, 0])       # INFORMATIONAL with an empty SK payload (§1.4)


def _record_established() -> tuple[list[bytes], list[bytes]]:
    """The plaintexts of every exchange an ESTABLISHED pair has: (requests, responses)."""
    pair = IkePair.established()
    requests, responses = [], []
    child = next(iter(pair.i.children))
    for start in (lambda: pair.i.create_child(), lambda: pair.i.check_liveness(),
                  lambda: pair.i.create_child(rekey=child),
                  lambda: pair.i.delete_child(next(iter(pair.i.children))),
                  lambda: pair.i.rekey_ike()):
        start()
        request = pair.one(pair.i)
        requests.append(_plaintext(pair.i, request.data, True))
        pair.deliver(pair.r, request)
        response = pair.one(pair.r)
        responses.append(_plaintext(pair.r, response.data, False))
        pair.deliver(pair.i, response)
        pair.pump()
    return requests, responses


class IkeEstablished:
    """The ``ike-responder`` and ``ike-initiator`` targets over one ESTABLISHED pair,
    built again when a (legitimately accepted) mutated message closed it."""

    def __init__(self) -> None:
        self.requests, self.responses = _record_established()
        self.pair = IkePair.established()
        self.rebuilt = 0

    def _fresh(self) -> IkePair:
        if self.pair.i.state != "ESTABLISHED" or self.pair.r.state != "ESTABLISHED":
            self.pair, self.rebuilt = IkePair.established(), self.rebuilt + 1
        return self.pair

    def to_responder(self, plain: bytes) -> None:
        pair = self._fresh()
        r = pair.r
        r.receive(_sealed(r, plain, from_initiator=True, response=False,
                          message_id=r.expected_request_id), _INITIATOR[0], 500, 0, 500)
        drain(r)
        r.datagrams_to_send()
        if r.state == "ESTABLISHED":     # still answers a genuine request (§1.4)
            r.receive(_sealed(r, _LIVENESS, from_initiator=True, response=False,
                              message_id=r.expected_request_id), _INITIATOR[0], 500, 0, 500)
            drain(r)
            assert len(r.datagrams_to_send()) == 1 and r.state == "ESTABLISHED"

    def to_initiator(self, plain: bytes) -> None:
        pair = self._fresh()
        i = pair.i
        if i.pending is None:
            i.check_liveness()
            i.datagrams_to_send()
        message_id = i.pending.message_id
        i.receive(_sealed(i, plain, from_initiator=False, response=True,
                          message_id=message_id), _INITIATOR[1], 500, 0, 500)
        drain(i)
        i.datagrams_to_send()
        if i.state != "ESTABLISHED":
            return
        if i.pending is not None and i.pending.message_id == message_id:
            # the mutated answer was refused: the genuine one still closes the exchange
            i.receive(_sealed(i, _LIVENESS, from_initiator=False, response=True,
                              message_id=message_id), _INITIATOR[1], 500, 0, 500)
            drain(i)
            i.datagrams_to_send()
        if i.state == "ESTABLISHED":     # and it answers the peer's genuine request
            i.receive(_sealed(i, _LIVENESS, from_initiator=False, response=False,
                              message_id=i.expected_request_id), _INITIATOR[1], 500, 0, 500)
            drain(i)
            assert len(i.datagrams_to_send()) == 1 and i.state == "ESTABLISHED"


class Snapshot:
    """A state built once and handed out as a fresh copy per input.

    Redoing IKE_SA_INIT per input (two D-H key pairs, two shared secrets and four
    messages through the codec) costs ~13 ms; ``copy.deepcopy`` of the pair it leaves
    costs ~0.7 ms and gives the same SAs (the seeded random source and the SPI counter
    are copied with them, so a copy answers byte for byte as a rebuilt pair would). If
    the state cannot be copied (an object in it refuses ``deepcopy``), it is built again
    per input: slower, the same inputs; :attr:`copies` says which."""

    def __init__(self, build: Callable[[], object]) -> None:
        self.build = build
        self.original = build()
        try:
            copy.deepcopy(self.original)
            self.copies = True
        except Exception:       # noqa: BLE001 - any refusal means: rebuild instead
            self.copies = False

    def fresh(self):
        return copy.deepcopy(self.original) if self.copies else self.build()

    @property
    def mode(self) -> str:
        return "copied per input" if self.copies else "rebuilt per input (not copyable)"


def _auth_stage() -> tuple[IkePair, object]:
    """A pair after IKE_SA_INIT, and the initiator's genuine IKE_AUTH request."""
    pair = IkePair()
    pair.i.initiate(0)
    pair.deliver(pair.r, pair.one(pair.i))
    pair.deliver(pair.i, pair.one(pair.r))
    return pair, pair.one(pair.i)


def _auth_answered() -> tuple[object, object]:
    """An initiator waiting for its IKE_AUTH response, and the genuine response (the
    responder, done with, is left out: its address pool holds a generator, which
    ``deepcopy`` refuses)."""
    pair, request = _auth_stage()
    pair.deliver(pair.r, request)
    return pair.i, pair.one(pair.r)


class IkeAuth:
    """The ``ike-auth-responder`` and ``ike-auth-initiator`` targets: each input goes to
    a fresh copy of the pair between IKE_SA_INIT and IKE_AUTH (:class:`Snapshot`)."""

    def __init__(self) -> None:
        self.to_r = Snapshot(_auth_stage)
        self.to_i = Snapshot(_auth_answered)
        pair, request = _auth_stage()
        pair.deliver(pair.r, request)
        self.request = _plaintext(pair.i, request.data, True)
        self.response = _plaintext(pair.r, pair.one(pair.r).data, False)
        # the bytes a pristine responder answers the genuine request with: the initiator
        # was seen to accept them (IKE SA ESTABLISHED), so a responder that answers
        # with the same bytes after a refused input has lost nothing
        pair, genuine = self.to_r.fresh()
        pair.deliver(pair.r, genuine)
        answer = pair.one(pair.r)
        self.genuine_response = answer.data
        pair.deliver(pair.i, answer)
        drain(pair.i)
        assert pair.i.state == "ESTABLISHED"

    def to_responder(self, plain: bytes) -> None:
        pair, genuine = self.to_r.fresh()
        r = pair.r
        state = r.state
        r.receive(_sealed(r, plain, from_initiator=True, response=False, message_id=1),
                  _INITIATOR[0], 500, 0, 500)
        drain(r)
        r.datagrams_to_send()
        if r.state == state:             # refused: the genuine request still works
            pair.deliver(r, genuine)
            answers = r.datagrams_to_send()
            assert r.state == "ESTABLISHED", r.state
            if [d.data for d in answers] != [self.genuine_response]:
                # not the answer already seen accepted: the initiator must judge it
                for d in answers:
                    pair.deliver(pair.i, d)
                drain(pair.i)
                assert pair.i.state == "ESTABLISHED"

    def to_initiator(self, plain: bytes) -> None:
        i, genuine = self.to_i.fresh()
        i.receive(_sealed(i, plain, from_initiator=False, response=True, message_id=1),
                  _INITIATOR[1], 500, 0, 500)
        drain(i)
        i.datagrams_to_send()
        if i.pending is not None and i.pending.message_id == 1:
            IkePair.deliver(i, genuine)
            drain(i)
            assert i.state == "ESTABLISHED"


def _record_init() -> list[bytes]:
    pair = IkePair()
    pair.i.initiate(0)
    request = pair.one(pair.i)
    pair.deliver(pair.r, request)
    return [request.data, pair.one(pair.r).data]


def _waiting_initiator():
    """An initiator that has sent its IKE_SA_INIT request and waits for the response."""
    pair = IkePair()
    pair.i.initiate(0)
    pair.i.datagrams_to_send()
    return pair.i


class IkeInit:
    """The ``ike-init`` target: a cleartext IKE_SA_INIT message, a request to a fresh
    responder, a response (the R flag, RFC 7296 §3.1) to a fresh copy of an initiator
    waiting for one (copied, not initiated again: that was half the cost)."""

    def __init__(self) -> None:
        self.waiting = Snapshot(_waiting_initiator)

    def feed(self, data: bytes) -> None:
        if len(data) > 19 and data[19] & 0x20:
            i = self.waiting.fresh()
            i.receive(data, _INITIATOR[1], 500, 0, 500)
            drain(i)
            i.datagrams_to_send()
        else:
            r = IkePair().r
            r.receive(data, _INITIATOR[0], 500, 0, 500)
            drain(r)
            r.datagrams_to_send()


# -- Mobility Header ---------------------------------------------------------------------------

HOA, COA, HA6 = "2001:db8:1::1000", "2001:db8:3::77", "2001:db8:1::1"


def mobility_seeds() -> list[bytes]:
    """BU and BA with every mobility option this stack reads (RFC 6275 §6.2, RFC 5555
    §3.1, RFC 4283, RFC 4285), in a HAO / a type 2 routing header."""
    from scapy.layers.inet6 import (IPv6, MIP6OptAltCoA, MIP6OptBindingAuthData,
                                    MIP6OptBRAdvice, MIP6OptNonceIndices)

    from ..wire import auth, mip6

    sign = lambda data: bytes(12)   # noqa: E731 - the authenticator's value is not checked
    bu = mip6.build_bu(HOA, COA, HA6, 7, 60, options=[
        mip6.MIP6OptIPv4HomeAddress(hoa="0.0.0.0"),
        mip6.MIP6OptIPv4CareOfAddress(coa="198.51.100.40")])
    ba = mip6.build_ba(HA6, COA, HOA, 7, 60, options=[
        mip6.MIP6OptIPv4AddrAck(hoa="192.0.2.70"), mip6.MIP6OptNATDetection()])
    rr = mip6.build_bu(HOA, COA, HA6, 8, 60, options=[
        MIP6OptAltCoA(acoa=COA), MIP6OptNonceIndices(), MIP6OptBindingAuthData(),
        MIP6OptBRAdvice()])
    seeds = [bu, ba, rr,
             auth.add_authentication(mip6.build_bu(HOA, COA, HA6, 9, 60), 0x100, sign,
                                     nai="mn1@mip6lab.example", timestamp=1 << 40),
             auth.add_authentication(mip6.build_ba(HA6, COA, HOA, 9, 60), 0x100, sign,
                                     timestamp=1 << 40)]
    return [bytes(p[IPv6]) for p in seeds]


def fix_mh_checksum(data: bytes) -> bytes:
    """``data`` with its MH checksum recomputed, so the mutation reaches the options."""
    from ..wire import mip6

    _src, _dst, off, _len = mip6._locate_mh(data)
    data = data[:off + 4] + b"\0\0" + data[off + 6:]
    return data[:off + 4] + mip6.mh_checksum(data).to_bytes(2, "big") + data[off + 6:]


def mobility_message(data: bytes) -> None:
    """What a home agent and a mobile node do with an arriving Mobility Header: scapy's
    dissection (the node's, which turns its failure into MalformedPacket), the checksum
    and option checks of RFC 6275 §9.2 / §6.2 on the MH scapy found, the RFC 4285 options,
    then reading the fields (a BU/BA's show())."""
    from scapy.layers.inet6 import IPv6, _MobilityHeader

    from ..wire import auth, mip6

    try:
        mip6.validate_mobility_header(data[40:])
    except MalformedPacket:
        pass
    try:
        auth.read_authentication(data)
    except MalformedPacket:
        pass
    try:
        packet = IPv6(data)
    except Exception as exc:   # the node's _dissect: its failure is bad input
        raise MalformedPacket(f"does not dissect ({type(exc).__name__})") from exc
    mh = packet.getlayer(_MobilityHeader)
    if mh is None:
        return
    mip6.check_mobility_message(data, bytes(mh))
    mh.show(dump=True)


# -- RFC 5555 UDP 4191 ---------------------------------------------------------------------------


def udp4191_seeds() -> list[bytes]:
    """IPv4/UDP 4191 packets around a BU, packets with routing headers (type 0, 2 and
    the segment routing header, type 4), a HAO, and an IPv4 packet (RFC 5555 §4.1)."""
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.layers.inet6 import (HAO, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting,
                                    IPv6ExtHdrSegmentRouting, ICMPv6EchoRequest)

    from ..wire import mip6

    inner = [
        mip6.build_bu(HOA, None, HA6, 3, 60, options=[
            mip6.MIP6OptIPv4CareOfAddress(coa="198.51.100.40")]),
        IPv6(src=HOA, dst=HA6) / IPv6ExtHdrSegmentRouting(
            addresses=["2001:db8::2", "2001:db8::3"]) / UDP() / b"srh",
        IPv6(src=HOA, dst=HA6) / IPv6ExtHdrRouting(addresses=["2001:db8::2"]) / UDP(),
        IPv6(src=HOA, dst=HA6) / IPv6ExtHdrRouting(type=2, addresses=[HOA], segleft=1)
        / ICMPv6EchoRequest(),
        IPv6(src=COA, dst=HA6) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA)])
        / ICMPv6EchoRequest(),
        IP(src="192.0.2.70", dst="198.51.100.20") / ICMP() / b"v4 home",
    ]
    return [bytes(mip6.encapsulate_udp4(p, "198.51.100.40", "192.0.2.1")) for p in inner]


def fix_udp4191(data: bytes) -> bytes:
    """The IPv4 total length and UDP length of ``data`` made to match its size, so the
    mutated inner packet gets past the outer checks."""
    if len(data) < 28:
        return data
    out = bytearray(data)
    out[0] = 0x45
    out[2:4] = len(out).to_bytes(2, "big")
    out[24:26] = (len(out) - 20).to_bytes(2, "big")
    return bytes(out)


def udp4191_decapsulate(data: bytes) -> None:
    """``decapsulate_udp4`` raises MalformedPacket or returns a packet that builds and
    shows (a student's notebook does both)."""
    from ..wire import mip6

    packet = mip6.decapsulate_udp4(data)
    bytes(packet)
    packet.summary()


class DsmipLab:
    """A DSMIP6 lab (the ``dsmip6-v4`` scenario: MN on an IPv4-only network, registered,
    its echo streams to the CN flowing through the home agent) fed many inputs.

    One lab, not one per input: after an input that left something in the simulator's
    queue (a frame on a link, a timer) the lab runs on for :attr:`STEP` of simulated
    time, so its consequences cross the few 2 ms links; after one that left nothing
    (most: dropped at once) it only ticks :attr:`TICK`. Either way it must then show no
    bug (``lab.errors`` empty, no ``error`` event). Every :attr:`CHECK_EVERY` inputs the
    lab runs :attr:`RUN` on (its echo streams, refreshes and rekeys go on: over a
    million inputs, hours of simulated time) and must still be whole
    (:meth:`consistent`): the MN's binding at the HA for its current care-of address,
    and echo answers arriving through it -- what an input could have broken without
    raising anything. A target whose inputs
    may legitimately disturb the lab (forged ND and ARP are accepted, as on any LAN
    without SEND) gets :attr:`RECOVER` seconds to heal and is rebuilt if it does not
    (:attr:`rebuilt` counts those); one whose inputs must never change it (``strict``)
    fails the check instead."""

    STEP, TICK = 0.02, 0.001
    #: the echo streams' period (the scenario's 0.1 s would make this background traffic
    #: three quarters of the cost of an input), and a run long enough for an answer
    DATA_INTERVAL = 0.5
    RUN = DATA_INTERVAL + 0.05
    CHECK_EVERY = 128
    #: seconds a disturbed lab gets to heal. A forged ARP reply for the MN's gateway is
    #: believed for the ARP entry's whole lifetime (REACHABLE_TIME, 30 s, as on any LAN
    #: without SEND; RFC 826 merges any sender); the MN's BUs meanwhile go nowhere, its
    #: binding may expire, and it registers again at its next BU retransmission (RFC 6275
    #: §11.8) once the entry is gone -- measured: 40 s at most over 10^5 inputs
    RECOVER = 60.0
    #: the trace is cut back to the setup's events when it holds this many more: a
    #: million inputs would otherwise keep ten million events
    TRACE_KEEP = 20_000

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict
        self.rebuilt = self.wholes = 0
        self._build()

    def _build(self) -> None:
        from ..scenarios import create

        self.scenario = create("dsmip6-v4", data_interval=self.DATA_INTERVAL)
        self.lab = self.scenario.lab
        self.lab.run(until=3.0)
        assert self.scenario.mobile.registered is not None
        self.setup_events = len(self.lab.trace.events)
        self.fed = 0
        self._answers = self._answered()
        # the frames the HA and the MN received, with the interface they came in on
        self.frames: list[tuple[str, str, bytes]] = []
        for event in self.lab.trace.events:
            if event.kind == "rx" and event.node in ("ha", "mn") and event.packet:
                node = self.lab.nodes[event.node]
                ifname = next(name for name, iface in node.interfaces.items()
                              if iface.link is not None and iface.link.name == event.link)
                self.frames.append((event.node, ifname, bytes(event.packet)))

    def stats(self) -> dict[str, object]:
        return {"lab checked whole": self.wholes, "lab rebuilt": self.rebuilt,
                "simulated s": round(self.lab.sim.now_us / 1e6)}

    def _answered(self) -> int:
        streams = (self.scenario.data6, self.scenario.data4)
        return sum(len(stream.answered_at) for stream in streams if stream is not None)

    def consistent(self) -> str | None:
        """Why the lab is no longer whole, or None: the HA binds the MN's home address to
        its current care-of address and echo answers came back since the last look."""
        mobile, cache = self.scenario.mobile, self.scenario.home_agent.cache
        entry = cache.get(mobile.home_address)
        answers, self._answers = self._answers, self._answered()
        if mobile.registered is None or entry is None:
            return "the MN is no longer registered"
        coa = mobile.care_of_address
        if coa not in (entry.coa, entry.ipv4_coa):
            return f"the HA binds {entry.coa or entry.ipv4_coa}, the MN is at {coa}"
        if self._answers == answers:
            return "no echo answer came back through the home agent"
        return None

    def _feed(self, deliver: Callable[[], None]) -> None:
        """``deliver`` one input, run the lab on, check it."""
        sim = self.lab.sim
        mark, queued = len(self.lab.trace.events), sim.scheduled()
        deliver()
        quiet = sim.scheduled() == queued
        self.lab.run(until=sim.now_us / 1e6 + (self.TICK if quiet else self.STEP))
        self.check(mark)
        self.fed += 1
        if self.fed % self.CHECK_EVERY == 0:
            mark = len(self.lab.trace.events)
            self.lab.run(until=sim.now_us / 1e6 + self.RUN)
            self.check(mark)
            self._whole()
        if len(self.lab.trace.events) > self.setup_events + self.TRACE_KEEP:
            del self.lab.trace.events[self.setup_events:]

    def _whole(self) -> None:
        broken = self.consistent()
        if broken is None:
            self.wholes += 1
            return
        assert not self.strict, f"state lost after an input: {broken}"
        mark = len(self.lab.trace.events)
        self.lab.run(until=self.lab.sim.now_us / 1e6 + self.RECOVER)
        self.check(mark)
        if self.consistent() is not None:
            where = self._where
            self._build()
            self._where = where
            self.rebuilt += 1

    def check(self, since: int = 0) -> None:
        """No bug showed: ``lab.errors`` empty, no ``error`` event since event ``since``.

        (The events' one-line summaries are not rendered here: ``frames.describe``
        labels any frame it cannot dissect instead of raising, so rendering them could
        not fail, and it cost more than the lab's own work per input.)"""
        assert self.lab.errors == [], self.lab.errors[0][2]
        for event in self.lab.trace.events[since:]:
            assert event.kind != "error", event.reason

    def udp_tunnel(self, data: bytes) -> None:
        """The UDP payload, as the HA's port 4191 handler receives it (RFC 5555 §4.1)."""
        from ..net.node import UdpDatagram

        ha = self.scenario.home_agent
        mobile = self.scenario.mobile
        self._feed(lambda: ha._udp_tunnel(UdpDatagram(
            mobile.care_of_address, 4191, ipaddress.IPv4Address(ha.address4), 4191, data,
            "eth0")))

    def frame(self, data: bytes) -> None:
        """A frame into the node that received its seed, on the same interface."""
        node_name, ifname = self._where
        node = self.lab.nodes[node_name]
        self._feed(lambda: node.receive_frame(node.interface(ifname), data))

    #: where :meth:`frame` delivers: set with the seed by the ``node-frame`` target
    _where: tuple[str, str] = ("ha", "eth0")


def node_frame_target(dsmip: DsmipLab) -> FuzzTarget:
    seeds = [frame for _node, _ifname, frame in dsmip.frames]
    where = [(node, ifname) for node, ifname, _frame in dsmip.frames]
    target = FuzzTarget("node-frame", seeds, lambda data: None, start=0,
                        doc="mutated frames of a DSMIP6 lab into Node.receive_frame")

    def input_for(seed: int, mutations: Sequence[Mutation], fixed: bool) -> bytes:
        dsmip._where = where[seed % len(where)]
        return mutate(seeds[seed % len(seeds)], mutations, 14 if mutations else 0)

    target.input = input_for      # type: ignore[method-assign]
    target.feed = dsmip.frame
    target.stats = dsmip.stats
    return target


# -- ESP -------------------------------------------------------------------------------------------


class EspTarget:
    """Inbound SAs (RFC 4303 §3.4) and packets sealed with their outbound twins around
    a mutated payload: ``bytes([case, next header]) + payload``."""

    CASES = (  # suite, source, destination, options
        ("aes128gcm16", "2001:db8:1::10", "2001:db8:2::1", {}),
        ("aes256-sha256", "192.0.2.10", "198.51.100.1", {"encap": (4500, 4500)}),
        ("aes128gcm16", "2001:db8:c0a::10", "2001:db8:2::1", {"mode": "tunnel"}),
        ("null-sha256", "192.0.2.10", "198.51.100.1", {"mode": "tunnel",
                                                       "encap": (4500, 4500)}),
    )

    def __init__(self) -> None:
        from ..crypto.esp_suites import suite_spec
        from ..ipsec.sad import SecurityAssociation, SecurityAssociationDatabase

        self.sad = SecurityAssociationDatabase()
        self.out = []
        for n, (suite, src, dst, options) in enumerate(self.CASES):
            spec = suite_spec(suite)
            keys = (bytes(range(1, 1 + spec.enc_key_len)),
                    bytes(range(3, 3 + spec.integ_key_len)))
            spi = 0x2000 + n
            self.out.append(SecurityAssociation(spi, "out", src, dst, suite, *keys,
                                                **options))
            self.sad.add(SecurityAssociation(spi, "in", src, dst, suite, *keys, **options))

    def seeds(self) -> list[bytes]:
        from scapy.layers.inet import ICMP, IP, TCP, UDP
        from scapy.layers.inet6 import HAO, ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt

        v6 = [IPv6(src="2001:db8:1::10", dst="2001:db8:2::1") / UDP(sport=1, dport=9) / b"x",
              IPv6(src="2001:db8:c0a::10", dst="2001:db8:3::30")
              / IPv6ExtHdrDestOpt(options=[HAO(hoa="2001:db8:100::10")])
              / ICMPv6EchoRequest()]
        v4 = [IP(src="192.0.2.10", dst="198.51.100.1") / UDP(sport=1, dport=9) / b"y",
              IP(src="192.0.2.10", dst="198.51.100.1") / TCP(options=[("MSS", 1460)]),
              IP(src="192.0.2.10", dst="203.0.113.30") / ICMP() / b"ping"]
        seeds = []
        for n, (_suite, src, _dst, options) in enumerate(self.CASES):
            family = v6 if ":" in src else v4
            for packet in family:
                if options.get("mode") == "tunnel":
                    seeds.append(bytes([n, 41 if ":" in src else 4]) + bytes(packet))
                else:   # transport: the payload after the IP header, its next header
                    raw = bytes(packet)
                    ihl = 40 if raw[0] >> 4 == 6 else 4 * (raw[0] & 0x0F)
                    seeds.append(bytes([n, raw[6] if ihl == 40 else raw[9]]) + raw[ihl:])
        return seeds

    def packet(self, data: bytes) -> bytes | None:
        from ..ipsec.esp import encapsulate

        if len(data) < 2:
            return None
        sa = self.out[data[0] % len(self.out)]
        nh, payload = data[1], data[2:]
        if sa.mode == "tunnel":
            # seal() takes the next header from the version nibble: mutate it there
            inner = payload if payload else b"\0"
            return encapsulate(sa, inner if nh in (4, 41) or not payload
                               else bytes([nh]) + payload[1:], bytes(16))
        if sa.dst.version == 6:
            head = bytes([0x60, 0, 0, 0]) + len(payload).to_bytes(2, "big") \
                + bytes([nh, 64]) + sa.src.packed + sa.dst.packed
        else:
            head = bytes([0x45, 0, 0, 0, 0, 0, 0, 0, 64, nh, 0, 0]) + sa.src.packed \
                + sa.dst.packed
            head = head[:2] + (20 + len(payload)).to_bytes(2, "big") + head[4:]
        return encapsulate(sa, head + payload, bytes(16))

    def feed(self, data: bytes) -> None:
        from ..ipsec.esp import decapsulate

        packet = self.packet(data)
        if packet is None:
            return
        result = decapsulate(self.sad, packet)
        assert isinstance(result.packet, bytes)


# -- the catalogue -----------------------------------------------------------------------------


def targets(names: Sequence[str] | None = None) -> dict[str, FuzzTarget]:
    """The fuzz targets by name (``names``: only those; building a lab costs a second)."""
    wanted = set(names) if names else None
    made: dict[str, FuzzTarget] = {}

    def want(*these: str) -> bool:
        return wanted is None or bool(wanted.intersection(these))

    if want("ike-responder", "ike-initiator"):
        ike = IkeEstablished()
        made["ike-responder"] = FuzzTarget(
            "ike-responder", ike.requests, ike.to_responder, start=2,
            doc="sealed mutated requests to an ESTABLISHED responder",
            stats=lambda: {"pair rebuilt": ike.rebuilt})
        made["ike-initiator"] = FuzzTarget(
            "ike-initiator", ike.responses, ike.to_initiator, start=2,
            doc="sealed mutated responses to an ESTABLISHED initiator",
            stats=lambda: {"pair rebuilt": ike.rebuilt})
    if want("ike-auth-responder", "ike-auth-initiator"):
        ike_auth = IkeAuth()
        made["ike-auth-responder"] = FuzzTarget(
            "ike-auth-responder", [ike_auth.request], ike_auth.to_responder, start=2,
            doc="sealed mutated IKE_AUTH requests after IKE_SA_INIT",
            stats=lambda: {"state": ike_auth.to_r.mode})
        made["ike-auth-initiator"] = FuzzTarget(
            "ike-auth-initiator", [ike_auth.response], ike_auth.to_initiator, start=2,
            doc="sealed mutated IKE_AUTH responses",
            stats=lambda: {"state": ike_auth.to_i.mode})
    if want("ike-init"):
        ike_init = IkeInit()
        made["ike-init"] = FuzzTarget("ike-init", _record_init(), ike_init.feed,
                                      start=16, doc="cleartext IKE_SA_INIT to fresh SAs",
                                      stats=lambda: {"state": ike_init.waiting.mode})
    if want("mobility-header"):
        made["mobility-header"] = FuzzTarget(
            "mobility-header", mobility_seeds(), mobility_message,
            expected=(MalformedPacket,), start=40, fix=fix_mh_checksum,
            doc="MH/BU/BA and options: check_mobility_message, read_authentication")
    if want("udp4191-decapsulate"):
        made["udp4191-decapsulate"] = FuzzTarget(
            "udp4191-decapsulate", udp4191_seeds(), udp4191_decapsulate,
            expected=(MalformedPacket,), start=28, fix=fix_udp4191,
            doc="decapsulate_udp4 on mutated inner packets")
    if want("esp"):
        esp = EspTarget()
        made["esp"] = FuzzTarget("esp", esp.seeds(), esp.feed,
                                 expected=(RemoteProtocolError,), start=1,
                                 doc="sealed mutated payloads into decapsulate()")
    if want("ha-udp-tunnel"):     # unprotected: must never change the binding
        tunnel_lab = DsmipLab()
        made["ha-udp-tunnel"] = FuzzTarget(
            "ha-udp-tunnel", [s[28:] for s in udp4191_seeds()], tunnel_lab.udp_tunnel,
            doc="mutated inner packets into the HA's UDP 4191 handler, lab running",
            stats=tunnel_lab.stats)
    if want("node-frame"):        # forged ND/ARP may disturb it: it must heal
        made["node-frame"] = node_frame_target(DsmipLab(strict=False))
    return made


NAMES = ("ike-responder", "ike-initiator", "ike-auth-responder", "ike-auth-initiator",
         "ike-init", "mobility-header", "udp4191-decapsulate", "esp", "ha-udp-tunnel",
         "node-frame")
