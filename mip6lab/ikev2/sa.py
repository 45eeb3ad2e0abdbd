"""One IKE SA, initiator or responder, as a sans-I/O engine (RFC 7296).

Fed with datagrams (:meth:`IkeSa.receive`), time (:meth:`IkeSa.handle_timer`) and
requests (:meth:`IkeSa.initiate`, :meth:`IkeSa.delete`); it answers with datagrams to
send (:meth:`IkeSa.datagrams_to_send`), a timer (:attr:`IkeSa.timer_us`) and events
(:meth:`IkeSa.next_event`). It owns no socket, clock or random source: the driver
passes time in and gives it ``random(n) -> bytes`` and ``allocate_spi() -> int`` (the
key engine's GETSPI). Installing the negotiated child SA is the driver's job too, from
the :class:`ChildSaEstablished` event: the engine never reaches into the SAD.

The exchanges and their states, in the spirit of h11's state table::

    initiator  IDLE --initiate--> INIT_SENT --IKE_SA_INIT resp--> AUTH_SENT
               AUTH_SENT --IKE_AUTH resp--> ESTABLISHED --delete--> DELETING --> CLOSED
    responder  IDLE --IKE_SA_INIT req--> INIT_DONE --IKE_AUTH req--> ESTABLISHED
               ESTABLISHED --INFORMATIONAL Delete req--> CLOSED

Requests are retransmitted with exponential backoff (§2.1) until answered or given up;
a responder answers a retransmitted request from its cached response (§2.1) and drops
messages with unexpected message IDs (§2.2). Bad input -- malformed messages, failed
integrity, unknown critical payloads -- is dropped with an event saying why, or answered
with the notify RFC 7296 prescribes (INVALID_SYNTAX, UNSUPPORTED_CRITICAL_PAYLOAD,
NO_PROPOSAL_CHOSEN, INVALID_KE_PAYLOAD, AUTHENTICATION_FAILED, TS_UNACCEPTABLE,
INTERNAL_ADDRESS_FAILURE); the state stays as it was.

Messages are read and written with the struct-level codec
(:mod:`mip6lab.wire.ikev2_codec`), not scapy: scapy took ~7 ms of a handshake's
build and dissect. What a person sees of the same bytes is scapy's
(:mod:`mip6lab.wire.ikev2`).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..crypto.ike import auth, keys as ikekeys
from ..crypto.ike.dh import KeyExchange, generate_key_exchange
from ..crypto.ike.errors import (AuthenticationFailed, IntegrityError, InvalidKeyExchange,
                                 NoProposalChosen)
from ..crypto.ike.natd import nat_detection_hash
from ..crypto.ike.proposals import Proposal, select_proposal
from ..crypto.ike.sk import decrypt_message, encrypt_message
from .. import addresses
from ..errors import MalformedPacket, RemoteProtocolError
from ..wire import ikev2_codec as c
from ..wire.ikev2 import CpAttributeType, NotifyType as N
from . import certs
from .config import ID_TYPE_NUMBERS, IkeConfig
from .pools import PoolExhausted
from .ts import TrafficSelector, narrow

IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL = 34, 35, 36, 37
CFG_REQUEST, CFG_REPLY = 1, 2                    # §3.15
#: what ``IkeConfig.request`` names, as configuration attributes (RFC 4877 §9, RFC 5026)
_REQUESTED = {"ipv6": CpAttributeType.INTERNAL_IP6_ADDRESS,
              "ipv4": CpAttributeType.INTERNAL_IP4_ADDRESS,
              "home-prefix": CpAttributeType.MIP6_HOME_PREFIX}
_NON_ESP_MARKER = bytes(4)                       # RFC 3948 §2.2, before IKE on UDP 4500
#: what an initiator asks for before it knows its address (every IPv6, every IPv4)
_ANY_ADDRESS = (TrafficSelector.from_network("::/0"), TrafficSelector.from_network("0.0.0.0/0"))
#: RFC 7427 §4: the hashes we announce in SIGNATURE_HASH_ALGORITHMS (SHA2-256/384/512)
SIGNATURE_HASHES = (2, 3, 4)
_SCHEME_HASH = {2: "256", 3: "384", 4: "512"}
ID_NAMES = {number: name for name, number in ID_TYPE_NUMBERS.items()}
_NATD_SOURCE = int(N.NAT_DETECTION_SOURCE_IP)
_NATD_DESTINATION = int(N.NAT_DETECTION_DESTINATION_IP)
_ZERO_SPI = bytes(8)
_SK = int(c.PayloadType.SK)
_SA = int(c.PayloadType.SA)


# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Base class of what an IKE SA tells its driver."""


@dataclass(frozen=True, slots=True)
class IkeSaEstablished(Event):
    spi_i: bytes
    spi_r: bytes
    proposal: str
    peer_id: tuple[str, str]
    nat_detected: bool


@dataclass(frozen=True, slots=True)
class ChildSaEstablished(Event):
    """A child SA pair to install: our inbound SPI, the peer's (our outbound) SPI."""

    inbound_spi: int
    outbound_spi: int
    suite: str
    mode: str
    encr_in: bytes
    integ_in: bytes
    encr_out: bytes
    integ_out: bytes
    local_ts: tuple[TrafficSelector, ...]
    remote_ts: tuple[TrafficSelector, ...]
    udp_encapsulation: bool
    reqid: int


@dataclass(frozen=True, slots=True)
class ChildSaDeleted(Event):
    """A child SA pair is gone (deleted by either side, or replaced by a rekey)."""

    inbound_spi: int
    outbound_spi: int
    by_peer: bool


@dataclass(frozen=True, slots=True)
class ChildSaRekeyed(Event):
    """``new`` replaces the child SA whose inbound SPI was ``old_inbound_spi`` (§2.8)."""

    old_inbound_spi: int
    new_inbound_spi: int


@dataclass(frozen=True, slots=True)
class IkeSaMoved(Event):
    """MOBIKE (RFC 4555 §3.5): the SA now runs between these addresses and ports; the
    driver moves the child SAs too (through the key engine's MIGRATE)."""

    old_local: str
    old_remote: str
    local: str
    remote: str
    local_port: int
    remote_port: int
    nat_detected: bool


@dataclass(frozen=True, slots=True)
class IkeSaRekeyed(Event):
    """This IKE SA is replaced by ``new`` (§1.3.2, §2.18); its child SAs moved there."""

    new: Any


@dataclass(frozen=True, slots=True)
class AddressAssigned(Event):
    """The configuration payload's answer (initiator) or grant (responder)."""

    attribute: str          # "INTERNAL_IP6_ADDRESS", "INTERNAL_IP4_ADDRESS", "MIP6_HOME_PREFIX"
    value: Any
    peer_id: tuple[str, str]


@dataclass(frozen=True, slots=True)
class IkeSaFailed(Event):
    reason: str
    notify: str | None = None


@dataclass(frozen=True, slots=True)
class IkeSaDeleted(Event):
    by_peer: bool


@dataclass(frozen=True, slots=True)
class MessageDropped(Event):
    reason: str


@dataclass(frozen=True, slots=True)
class Datagram:
    data: bytes
    src: str
    dst: str
    sport: int
    dport: int


@dataclass(frozen=True, slots=True)
class IkeSaSecrets:
    """What one IKE SA negotiated and every input its keys were derived from, as values:
    for teaching (a notebook recomputes SKEYSEED, the SK_* keys and AUTH from them) and
    for key export. Returned by :meth:`IkeSa.secrets`; read-only, a snapshot.

    - ``spi_i``/``spi_r``, ``nonce_i``/``nonce_r``: the IKE SA's SPIs and nonces (the
      nonce data only, no payload header), as RFC 7296 §2.14 feeds them to prf+;
    - ``proposal``: the proposal the responder chose (§2.7; ``proposal.ke_group`` the
      Diffie-Hellman group);
    - ``shared_secret``: g^ir, the Diffie-Hellman shared secret in the group's fixed-length
      encoding (§2.14; RFC 8031 §2 for Curve25519, RFC 5903 §7 for ECP). It never
      travels on the wire;
    - ``init_request``/``init_response``: the IKE_SA_INIT messages as sent, from the first
      SPI to the last payload (the latest request if it was sent again with a cookie or
      another group): §2.15's RealMessage1 and RealMessage2, which AUTH signs (empty once
      :meth:`IkeSa.forget_init_messages` has let them go);
    - ``psk``: this side's pre-shared key (None with certificates), §2.15's "Shared Secret";
    - ``keys``: what the stack derived (SKEYSEED and the seven SK_*, §2.14).

    ``rekeyed``: the SA was made by rekeying another (§2.18): its SKEYSEED is then
    prf_old(SK_d (old), g^ir | Ni | Nr) and ``init_request``/``init_response`` are empty.
    ``initiator``: this side is the SA's original initiator (SK_*i protect what it sends).
    """

    initiator: bool
    spi_i: bytes
    spi_r: bytes
    proposal: Proposal
    nonce_i: bytes
    nonce_r: bytes
    shared_secret: bytes
    init_request: bytes
    init_response: bytes
    psk: bytes | None
    keys: ikekeys.IkeKeys
    rekeyed: bool = False


@dataclass(slots=True)
class _Request:
    message_id: int
    data: bytes
    exchange: int
    tries: int = 0
    deadline_us: int = 0
    context: dict | None = None          # what the answer will be matched against


# -- the engine ---------------------------------------------------------------------------


class IkeSa:
    """An IKE SA and its first child SA."""

    # its state in slots, not a dict per SA (a home agent holds thousands); "__dict__"
    # keeps room for what a driver or test attaches besides
    __slots__ = (
        "config", "authorize", "peer_psk", "initiator", "_local", "_local_text", "_remote",
        "_remote_text", "local_port", "remote_port", "random", "allocate_spi", "now_us",
        "state", "spi_i", "spi_r", "proposal", "ke", "nonce_i", "nonce_r", "keys",
        "shared_secret", "init_request", "init_response", "peer_id", "nat_detected",
        "nat_local", "nat_remote", "child_inbound_spi", "child", "children", "assigned",
        "next_request_id", "expected_request_id", "pending", "last_response", "_out",
        "_events", "messages_sent", "messages_received", "exchanges", "cookie",
        "_arrived_on", "_last_src", "_last_sport", "replaced_by", "predecessor", "mobike",
        "peer_hash_algorithms", "peer_certreq", "peer_certificate", "_peer_identity",
        "__dict__")

    def __init__(self, config: IkeConfig, initiator: bool, local: str, remote: str,
                 random: Callable[[int], bytes], allocate_spi: Callable[[], int],
                 now_us: int = 0, local_port: int = 500, remote_port: int = 500, *,
                 authorize: Callable[[IkeSa], str | None] | None = None) -> None:
        self.config = config
        # responder: asked once the peer has authenticated, before anything is granted;
        # a reason refuses the peer (AUTHENTICATION_FAILED, RFC 7296 §2.21.2)
        self.authorize = authorize
        self.peer_psk: bytes | None = None       # the key of this peer (config.peer_psks)
        self.initiator = initiator
        self.local = local          # ipaddress values; see the properties
        self.remote = remote
        self.local_port, self.remote_port = local_port, remote_port
        self.random = random
        self.allocate_spi = allocate_spi
        self.now_us = now_us
        self.state = "IDLE"
        self.spi_i = random(8) if initiator else bytes(8)
        self.spi_r = bytes(8) if initiator else random(8)
        self.proposal: Proposal | None = None
        self.ke: KeyExchange | None = None
        self.nonce_i = self.nonce_r = b""
        self.keys: ikekeys.IkeKeys | None = None
        self.shared_secret: bytes | None = None    # g^ir (§2.14); see secrets()
        self.init_request = self.init_response = b""
        self.peer_id: tuple[str, str] | None = None
        self._peer_identity: tuple[tuple[str, str], str] | None = None   # see peer_identity
        self.nat_detected = False
        self.nat_local = self.nat_remote = False
        self.child_inbound_spi: int | None = None
        self.child: ChildSaEstablished | None = None          # the first child SA
        self.children: dict[int, ChildSaEstablished] = {}     # by our inbound SPI
        self.assigned: list[AddressAssigned] = []
        self.next_request_id = 0          # our next request's message ID
        self.expected_request_id = 0      # the peer's next request's message ID
        self.pending: _Request | None = None
        self.last_response: tuple[int, bytes] | None = None   # responder's cache
        self._out: list[Datagram] = []
        self._events: list[Event] = []    # few at a time: a list, not a deque's 0.5 KB
        self.messages_sent = self.messages_received = 0
        self.exchanges = 0
        self.cookie: bytes | None = None      # the responder asked for one (§2.6)
        self._arrived_on: int | None = None    # the port the last datagram came to
        self.replaced_by: IkeSa | None = None  # set when a rekey replaced this SA
        self.predecessor: IkeSa | None = None  # the SA this one replaced by a rekey
        self.mobike = False                     # both sides said MOBIKE_SUPPORTED
        self.peer_hash_algorithms: tuple[int, ...] = ()   # its SIGNATURE_HASH_ALGORITHMS
        self.peer_certreq: list[bytes] = []     # SPKI SHA-1 hashes it asked for (§3.7)
        self.peer_certificate = None            # its verified end-entity certificate

    # -- addresses -------------------------------------------------------------------------

    @property
    def local(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """Our address; set it from text or an ``ipaddress`` value."""
        return self._local

    @local.setter
    def local(self, value: Any) -> None:
        self._local, self._local_text = _with_text(value)

    @property
    def remote(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The peer's address; set it from text or an ``ipaddress`` value."""
        return self._remote

    @remote.setter
    def remote(self, value: Any) -> None:
        self._remote, self._remote_text = _with_text(value)

    @property
    def local_text(self) -> str:
        """Our address as text (RFC 5952), as the datagrams carry it."""
        if self._local_text is None:
            self._local_text = _text(self._local)
        return self._local_text

    @property
    def remote_text(self) -> str:
        """The peer's address as text (RFC 5952)."""
        if self._remote_text is None:
            self._remote_text = _text(self._remote)
        return self._remote_text

    # -- driver interface ------------------------------------------------------------------

    def datagrams_to_send(self) -> list[Datagram]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.pop(0) if self._events else None

    @property
    def timer_us(self) -> int | None:
        return self.pending.deadline_us if self.pending else None

    def handle_timer(self, now_us: int) -> None:
        """Retransmit the outstanding request, or give up (RFC 7296 §2.1, §2.4)."""
        self.now_us = now_us
        request = self.pending
        if request is None or now_us < request.deadline_us:
            return
        if request.tries >= self.config.retransmit_tries:
            self.pending = None
            self.state = "CLOSED"
            self._events.append(IkeSaFailed(f"no answer after {request.tries} "
                                            "transmissions: peer unreachable"))
            return
        self._transmit(request)

    @property
    def peer_identity(self) -> str | None:
        """The peer's ID as ``type:value`` (the key of its leases and of the PAD's home
        addresses), once IKE_AUTH has told it."""
        peer_id = self.peer_id
        if not peer_id:
            return None
        # made once for the ID it was made of: the PAD, the pools' leases and the binding
        # cache each keep it, one string for all of them
        made = self._peer_identity
        if made is None or made[0] is not peer_id:
            made = self._peer_identity = (peer_id, f"{peer_id[0]}:{peer_id[1]}")
        return made[1]

    @property
    def spi_pair(self) -> tuple[bytes, bytes]:
        return self.spi_i, self.spi_r

    def secrets(self) -> IkeSaSecrets:
        """The negotiated values and secrets of this IKE SA (:class:`IkeSaSecrets`), once
        IKE_SA_INIT has given it keys (RFC 7296 §2.14): for teaching and key export.
        :class:`ValueError` before that."""
        if self.keys is None or self.shared_secret is None:
            raise ValueError(f"IKE SA in state {self.state} has no keys yet")
        return IkeSaSecrets(self.initiator, self.spi_i, self.spi_r, self.proposal,
                            self.nonce_i, self.nonce_r, self.shared_secret,
                            self.init_request, self.init_response, self.psk,
                            self.keys, rekeyed=self.predecessor is not None)

    def forget_init_messages(self) -> None:
        """Let go of the IKE_SA_INIT messages once the SA is established: AUTH has used
        them (RFC 7296 §2.15) and nothing of the protocol needs them again; only
        :meth:`secrets` shows them (empty afterwards, as for a rekeyed SA). For runs that
        keep nothing for a person to inspect (the IKE daemon at trace level "counts"):
        about 600 octets per SA."""
        if self.state == "ESTABLISHED":
            self.init_request = self.init_response = b""

    # -- sending ---------------------------------------------------------------------------

    def _emit(self, data: bytes) -> None:
        self.messages_sent += 1
        # on the NAT-T port every IKE message carries the non-ESP marker (RFC 3948 §2.2);
        # the peer's side of it may be any port a NAT chose
        payload = _NON_ESP_MARKER + data if self.local_port == 4500 else data
        self._out.append(Datagram(payload, self.local_text, self.remote_text,
                                  self.local_port, self.remote_port))

    def _transmit(self, request: _Request) -> None:
        request.tries += 1
        backoff = self.config.retransmit_timeout * (2 ** (request.tries - 1))
        request.deadline_us = self.now_us + int(backoff * 1_000_000)
        self._emit(request.data)

    def _request(self, exchange: int, payloads: list, encrypted: bool) -> None:
        message_id = self.next_request_id
        self.next_request_id += 1
        data = self._build(exchange, payloads, message_id, response=False, encrypted=encrypted)
        self.pending = _Request(message_id, data, exchange)
        self.exchanges += 1
        self._transmit(self.pending)
        if exchange == IKE_SA_INIT:
            self.init_request = data

    def _respond(self, exchange: int, message_id: int, payloads: list,
                 encrypted: bool) -> bytes:
        data = self._build(exchange, payloads, message_id, response=True, encrypted=encrypted)
        self.last_response = (message_id, data)
        self._emit(data)
        return data

    def _build(self, exchange: int, payloads: list, message_id: int, *, response: bool,
               encrypted: bool) -> bytes:
        """The message's octets (§3.1); with ``encrypted`` the payloads go into an SK
        payload (§3.14) sealed with our direction's keys."""
        flags = (0x08 if self.initiator else 0) | (0x20 if response else 0)
        first, chain = c.encode_payloads(payloads)
        if not encrypted:
            return c.encode_header(self.spi_i, self.spi_r, first, exchange, flags,
                                   message_id, 28 + len(chain)) + chain
        cipher = self.keys.cipher(from_initiator=self.initiator)
        header = c.encode_header(self.spi_i, self.spi_r, _SK, exchange, flags,
                                 message_id, 0)
        return encrypt_message(cipher, header, first, chain, self.random(cipher.iv_size))

    def _sa_payload(self, proposals: Sequence[Proposal], spi: bytes) -> c.Payload:
        """An SA payload for ``proposals``, each with ``spi`` (§3.3.1). They are the
        configured ones or the one chosen of them, so their encoding is made once
        (:func:`_sa_segments`) and only the SPI is put in."""
        key = tuple([(p, p.number) for p in proposals])
        return c.Encoded(_SA, bytes(spi).join(_sa_segments(key, len(spi))))

    def _sa_offer(self, proposals: Sequence[Proposal]) -> c.Payload:
        """An SA payload of proposals with their own SPIs (IKE_SA_INIT's: empty)."""
        spis = {p.spi for p in proposals}
        if len(spis) == 1:
            return self._sa_payload(proposals, spis.pop())
        return c.sa_payload(proposals)

    def _ts_payload(self, initiator: bool, selectors: list[TrafficSelector]) -> c.Payload:
        return (c.TSi if initiator else c.TSr)(tuple(map(_wire_ts, selectors)))

    # -- starting --------------------------------------------------------------------------

    def initiate(self, now_us: int = 0, group: int | None = None) -> None:
        """Send IKE_SA_INIT (§1.2): SA, KE, Ni and the NAT detection notifies."""
        self.now_us = now_us
        if not self.initiator or self.state not in ("IDLE", "INIT_SENT"):
            raise ValueError(f"cannot initiate in state {self.state}")
        group = group or self.config.ike_proposals[0].ke_group
        if self.ke is None or self.ke.group != group:   # a COOKIE retry keeps KE and Ni
            self.ke = generate_key_exchange(group, self.random)
            self.nonce_i = self.random(32)
        payloads = [self._sa_offer(self.config.ike_proposals),
                    c.KE(group, self.ke.public_value),
                    c.Nonce(self.nonce_i)] + self._natd_notifies() \
            + self._signature_hash_notify()
        if self.cookie is not None:      # §2.6: the COOKIE notify comes first
            payloads.insert(0, c.Notify(N.COOKIE, self.cookie))
        self.state = "INIT_SENT"
        self.next_request_id = 0
        self._request(IKE_SA_INIT, payloads, encrypted=False)

    def _signature_hash_notify(self) -> list:
        """N(SIGNATURE_HASH_ALGORITHMS) in IKE_SA_INIT when certificates are in play
        (RFC 7427 §4)."""
        if not self.config.uses_certificates:
            return []
        return [c.notify(N.SIGNATURE_HASH_ALGORITHMS, hash_algorithms=SIGNATURE_HASHES)]

    def _certreq(self) -> list:
        """CERTREQ, X.509 signature, with the SHA-1s of our trust anchors' keys (§3.7)."""
        if not self.config.trust_anchors:
            return []
        return [c.CERTREQ(certs.CERT_ENCODING_X509_SIGNATURE,
                          certs.certreq_data(self.config.trust_anchors))]

    def _learn_certificate_notifies(self, payloads: list) -> None:
        """What the peer said in IKE_SA_INIT about signatures and certificates."""
        for notify in c.find_notifies(payloads, N.SIGNATURE_HASH_ALGORITHMS):
            self.peer_hash_algorithms = notify.hash_algorithms
        self.peer_certreq = [h for p in payloads if type(p) is c.CERTREQ
                             and p.encoding == certs.CERT_ENCODING_X509_SIGNATURE
                             for h in certs.certreq_hashes(p.data)]

    def _natd_notifies(self) -> list:
        """NAT_DETECTION_SOURCE_IP / _DESTINATION_IP hashes (§2.23)."""
        spi_r = self.spi_r if not self.initiator else bytes(8)
        source = nat_detection_hash(self.spi_i, spi_r, self.local, self.local_port)
        destination = nat_detection_hash(self.spi_i, spi_r, self.remote, self.remote_port)
        return [c.Notify(_NATD_SOURCE, source), c.Notify(_NATD_DESTINATION, destination)]

    # -- receiving -------------------------------------------------------------------------

    def receive(self, data: bytes, src: str, sport: int, now_us: int,
                dport: int | None = None) -> None:
        """A datagram from the peer (UDP 500, or 4500 with the non-ESP marker removed by
        the driver; ``dport`` says which). Never raises for bad input: drops and notifies
        instead."""
        self.now_us = now_us
        self._arrived_on = dport
        self._last_src, self._last_sport = src, sport
        try:
            message = c.decode_message(data)
        except MalformedPacket as exc:
            self._events.append(MessageDropped(f"malformed IKE message: {exc}"))
            return
        self.messages_received += 1
        response = message.response
        wrong_spi = self._wrong_spi(message, response)
        if wrong_spi is not None:
            self._events.append(MessageDropped(wrong_spi))
            return
        try:
            if response:
                self._receive_response(message, bytes(data), src, sport)
            else:
                self._receive_request(message, bytes(data), src, sport)
        except IntegrityError as exc:
            self._events.append(MessageDropped(f"integrity check failed: {exc}"))
        except RemoteProtocolError as exc:
            self._events.append(MessageDropped(exc.reason))

    def _wrong_spi(self, message, response: bool) -> str | None:
        """Why a message's SPIs do not name this IKE SA (RFC 7296 §3.1: together they
        identify it; §2.21: a message for an SA we do not have is dropped), or None.

        The one exception is IKE_SA_INIT: its request carries a zero responder SPI, and the
        initiator learns the responder's SPI from the response (or from a COOKIE or
        INVALID_KE_PAYLOAD answer, whose responder SPI is zero, §2.6). Checked before any
        decryption: a message encrypted with the right keys under another SPI pair is
        still not a message of this SA."""
        spi_i, spi_r, unknown = message.spi_i, message.spi_r, bytes(8)
        # a responder's SA learns the initiator's SPI from the first IKE_SA_INIT request
        if spi_i != self.spi_i and not (self.spi_i == unknown and not response
                                        and message.exchange == IKE_SA_INIT):
            return f"initiator SPI {spi_i.hex()} is not this IKE SA's {self.spi_i.hex()} (§3.1)"
        if message.exchange == IKE_SA_INIT:
            if not response and spi_r != unknown:
                return f"IKE_SA_INIT request with responder SPI {spi_r.hex()}, not zero (§3.1)"
            if response and unknown not in (self.spi_r, spi_r) and spi_r != self.spi_r:
                return (f"IKE_SA_INIT response with responder SPI {spi_r.hex()}, not "
                        f"{self.spi_r.hex()} (§3.1)")
            return None
        if spi_r != self.spi_r:
            return f"responder SPI {spi_r.hex()} is not this IKE SA's {self.spi_r.hex()} (§3.1, §2.21)"
        return None

    def _decrypt(self, data: bytes) -> list:
        from_initiator = not self.initiator
        first, inner = decrypt_message(self.keys.cipher(from_initiator=from_initiator), data)
        return c.decode_payloads(first, inner)

    def _receive_response(self, message, data: bytes, src: str, sport: int) -> None:
        request = self.pending
        if request is None or message.message_id != request.message_id:
            raise RemoteProtocolError(f"response with message ID {message.message_id}: "
                                      "not the one we wait for (§2.2)")
        if message.exchange != request.exchange:
            # found by fuzzing: a CREATE_CHILD_SA answer to a liveness check was read
            # against the INFORMATIONAL request's (empty) context and raised KeyError
            raise RemoteProtocolError(f"response of exchange {message.exchange} to a "
                                      f"request of exchange {request.exchange} (§1, §3.1)")
        if message.exchange == IKE_SA_INIT:
            self._init_response(message, data)
        elif message.exchange == IKE_AUTH:
            self._auth_response(self._decrypt(data))
        elif message.exchange == CREATE_CHILD_SA:
            self._create_child_response(self._decrypt(data), request.context or {})
        elif message.exchange == INFORMATIONAL:
            payloads = self._decrypt(data)
            context = request.context or {}
            self.pending = None
            if "moved_from" in context:
                self._check_nat(payloads, str(self.remote), self.remote_port)
                self._events.append(IkeSaMoved(context["moved_from"], str(self.remote),
                                               str(self.local), str(self.remote),
                                               self.local_port, self.remote_port,
                                               self.nat_detected))
            if self.state == "DELETING":
                self.state = "CLOSED"
                self._events.append(IkeSaDeleted(by_peer=False))

    def _receive_request(self, message, data: bytes, src: str, sport: int) -> None:
        if self.last_response is not None and message.message_id == self.last_response[0]:
            self._emit(self.last_response[1])    # a retransmission: the cached answer
            return
        if message.message_id != self.expected_request_id:
            raise RemoteProtocolError(f"request with message ID {message.message_id}, expected "
                                      f"{self.expected_request_id} (§2.2)")
        if message.exchange == IKE_SA_INIT and self.state == "IDLE":
            self._init_request(message, data, src, sport)
        elif message.exchange == IKE_AUTH and self.state == "INIT_DONE":
            payloads = self._decrypt(data)
            if self._arrived_on == 4500:   # §2.23: the initiator moved to 4500 (NAT): follow
                self.local_port, self.remote_port = 4500, sport
            self._auth_request(message.message_id, payloads)
        elif message.exchange == INFORMATIONAL and self.state == "ESTABLISHED":
            self._informational_request(message.message_id, self._decrypt(data))
        elif message.exchange == CREATE_CHILD_SA and self.state == "ESTABLISHED":
            self._create_child_request(message.message_id, self._decrypt(data))
        else:
            raise RemoteProtocolError(f"exchange {message.exchange} not expected in state "
                                      f"{self.state}")

    # -- IKE_SA_INIT -----------------------------------------------------------------------

    def _init_request(self, message, data: bytes, src: str, sport: int) -> None:
        payloads = message.payloads
        self.spi_i = message.spi_i
        critical = c.unknown_critical(payloads)
        if critical:
            self._respond(IKE_SA_INIT, message.message_id, [c.Notify(
                N.UNSUPPORTED_CRITICAL_PAYLOAD, bytes([critical[0]]))], encrypted=False)
            return
        found = c.firsts(payloads)
        sa, ke, nonce = found.get(c.SA), found.get(c.KE), found.get(c.Nonce)
        if sa is None or ke is None or nonce is None:
            self._respond(IKE_SA_INIT, message.message_id,
                          [c.Notify(N.INVALID_SYNTAX)], encrypted=False)
            return
        try:
            chosen = select_proposal(sa.to_proposals(), self.config.ike_proposals,
                                     prefer="configured")
        except NoProposalChosen:
            self._respond(IKE_SA_INIT, message.message_id,
                          [c.Notify(N.NO_PROPOSAL_CHOSEN)], encrypted=False)
            self._events.append(IkeSaFailed("no acceptable IKE proposal",
                                            "NO_PROPOSAL_CHOSEN"))
            return
        if chosen.ke_group != ke.group:       # §1.2: tell the initiator which group
            self._respond(IKE_SA_INIT, message.message_id, [c.notify(
                N.INVALID_KE_PAYLOAD, dh_group=chosen.ke_group)], encrypted=False)
            self.last_response = None          # the retry comes with message ID 0 again
            return
        self.proposal = chosen
        self.ke = generate_key_exchange(chosen.ke_group, self.random)
        try:
            shared = self.ke.shared_secret(ke.data)
        except InvalidKeyExchange as exc:
            self._respond(IKE_SA_INIT, message.message_id,
                          [c.Notify(N.INVALID_SYNTAX)], encrypted=False)
            raise RemoteProtocolError(f"bad KE payload: {exc}") from None
        self.nonce_i, self.nonce_r = nonce.data, self.random(32)
        self._check_nat(payloads, src, sport)
        self.remote_port = sport
        self.init_request = data
        self._learn_certificate_notifies(payloads)
        response = [self._sa_payload([chosen], chosen.spi),
                    c.KE(chosen.ke_group, self.ke.public_value),
                    c.Nonce(self.nonce_r)] + self._natd_notifies() \
            + self._certreq() + self._signature_hash_notify()
        self.init_response = self._respond(IKE_SA_INIT, message.message_id, response,
                                           encrypted=False)
        self.keys = ikekeys.derive_ike_keys(chosen, self.nonce_i, self.nonce_r, shared,
                                            self.spi_i, self.spi_r)
        self.shared_secret = shared
        self.ke = None      # §2.12: the private value is not needed again; forget it
        self.expected_request_id = 1
        self.state = "INIT_DONE"

    def _init_response(self, message, data: bytes) -> None:
        payloads = message.payloads
        notifies = c.find_notifies(payloads)
        cookie = c.find_notifies(notifies, N.COOKIE)
        if cookie and self.cookie is None:
            self.cookie = cookie[0].data
            self.pending = None
            self.initiate(self.now_us, group=self.ke.group)   # the same, with the cookie
            return
        invalid_ke = c.find_notifies(notifies, N.INVALID_KE_PAYLOAD)
        if invalid_ke:
            group = int(invalid_ke[0].dh_group)
            if group not in {t.id for p in self.config.ike_proposals for t in p.ke}:
                self._fail(f"responder wants DH group {group}, which we do not offer",
                           "INVALID_KE_PAYLOAD")
                return
            self.pending = None
            self.initiate(self.now_us, group=group)   # §1.2: retry with the right group
            return
        for notify in notifies:
            if notify.type < 16384:               # an error notify (§3.10.1)
                self._fail(f"responder refused IKE_SA_INIT: {notify.name}",
                           notify.name)
                return
        found = c.firsts(payloads)
        sa, ke, nonce = found.get(c.SA), found.get(c.KE), found.get(c.Nonce)
        if sa is None or ke is None or nonce is None:
            raise RemoteProtocolError("IKE_SA_INIT response without SA, KE or Nr")
        chosen = sa.to_proposals()
        if len(chosen) != 1:
            raise RemoteProtocolError("the responder must choose exactly one proposal")
        try:    # the choice must be one we offered (§2.7)
            select_proposal(chosen, self.config.ike_proposals)
        except NoProposalChosen:
            raise RemoteProtocolError("the responder chose a proposal we did not offer")
        self.proposal = chosen[0]
        self.spi_r = message.spi_r
        self.nonce_r = nonce.data
        shared = self.ke.shared_secret(ke.data)
        self.keys = ikekeys.derive_ike_keys(self.proposal, self.nonce_i, self.nonce_r,
                                            shared, self.spi_i, self.spi_r)
        self.shared_secret = shared
        self.ke = None      # §2.12: the private value is not needed again; forget it
        self._check_nat(payloads, self.remote, self.remote_port)
        self._learn_certificate_notifies(payloads)
        self.init_response = data
        self.pending = None
        if (self.nat_detected or self.config.always_nat_t) and self.remote_port == 500:
            self.local_port = self.remote_port = 4500      # §2.23: move to 4500
        self._send_auth()

    def _check_nat(self, payloads, src: str, sport: int) -> None:
        """Compare the peer's NAT-D hashes with what we see (§2.23)."""
        spi_r = self.spi_r if self.initiator else _ZERO_SPI
        theirs, mine = [], []
        for p in payloads:
            if type(p) is c.Notify:
                if p.type == _NATD_SOURCE:
                    theirs.append(p)
                elif p.type == _NATD_DESTINATION:
                    mine.append(p)
        if not theirs or not mine:
            return
        expected_src = nat_detection_hash(self.spi_i, spi_r, _ip(src), sport)
        expected_dst = nat_detection_hash(self.spi_i, spi_r, self.local, self.local_port)
        self.nat_remote = all(n.data != expected_src for n in theirs)
        self.nat_local = all(n.data != expected_dst for n in mine)
        self.nat_detected = self.nat_remote or self.nat_local

    # -- IKE_AUTH --------------------------------------------------------------------------

    def _id_payload(self, cls):
        kind, value = self.config.local_id
        if kind in ("ipv4", "ipv6"):
            data = ipaddress.ip_address(value).packed
        elif kind == "der_asn1_dn":
            data = certs.name_der(value)
        else:
            data = value.encode()
        return cls(ID_TYPE_NUMBERS[kind], data)

    def _signed_octets(self, id_payload, initiator_side: bool) -> bytes:
        """§2.15: the IKE_SA_INIT message of the side | the other's nonce | its MACedID."""
        prf = self.keys.prf
        message = self.init_request if initiator_side else self.init_response
        peer_nonce = self.nonce_r if initiator_side else self.nonce_i
        sk_p = self.keys.sk_pi if initiator_side else self.keys.sk_pr
        return auth.signed_octets(message, peer_nonce, prf, sk_p,
                                  id_payload.body())

    def _cert_payloads(self) -> list:
        """CERT (X.509 signature, DER) of our certificate and intermediates (§3.6)."""
        if self.config.auth_method == "psk":
            return []
        from cryptography.hazmat.primitives.serialization import Encoding

        return [c.CERT(certs.CERT_ENCODING_X509_SIGNATURE, cert.public_bytes(Encoding.DER))
                for cert in [self.config.certificate, *self.config.intermediates]]

    def _signature_method(self) -> tuple[auth.AuthMethod, str | None]:
        """The AUTH method (and RFC 7427 scheme) we sign with."""
        from cryptography.hazmat.primitives.asymmetric import ec

        key, how = self.config.private_key, self.config.auth_method
        is_ec = isinstance(key, ec.EllipticCurvePrivateKey)
        if how == "signature":
            hashes_ok = [h for h in SIGNATURE_HASHES if h in self.peer_hash_algorithms]
            if hashes_ok:      # RFC 7427 §4: only with a hash the peer announced
                bits = str(auth.default_scheme(key).hash.digest_size * 8)
                if not any(_SCHEME_HASH[h] == bits for h in hashes_ok):
                    bits = _SCHEME_HASH[hashes_ok[0]]
                name = (f"ecdsa-with-SHA{bits}" if is_ec
                        else f"sha{bits}WithRSAEncryption")
                return auth.AuthMethod.DIGITAL_SIGNATURE, name
            how = "ecdsa" if is_ec else "rsa"   # the peer knows no RFC 7427: fall back
        if how == "rsa":
            return auth.AuthMethod.RSA_SIGNATURE, None
        size = key.curve.key_size
        return (auth.AuthMethod.ECDSA_SHA256_P256 if size == 256 else
                auth.AuthMethod.ECDSA_SHA384_P384 if size == 384 else
                auth.AuthMethod.ECDSA_SHA512_P521), None

    def _auth_payload(self, id_payload, initiator_side: bool):
        octets = self._signed_octets(id_payload, initiator_side)
        if self.config.auth_method == "psk":
            return c.AUTH(2, auth.psk_auth(self.keys.prf, self.psk, octets))
        method, scheme = self._signature_method()
        return c.AUTH(int(method), auth.sign_auth(
            self.config.private_key, octets, method, scheme))

    @property
    def psk(self) -> bytes | None:
        """The pre-shared key of this SA (RFC 7296 §2.15's "Shared Secret"): the peer's own
        from ``config.peer_psks`` once its ID is known, else the configured one."""
        return self.peer_psk if self.peer_psk is not None else self.config.psk

    def _peer_key(self, peer: tuple[str, str]) -> bytes | None:
        """The peer's entry of ``config.peer_psks`` ("type:value" or the bare value)."""
        keys = self.config.peer_psks
        return keys.get(f"{peer[0]}:{peer[1]}", keys.get(peer[1]))

    def _verify_auth(self, id_payload, auth_payload, initiator_side: bool,
                     payloads: list | None = None) -> None:
        octets = self._signed_octets(id_payload, initiator_side)
        if auth_payload is None:
            raise AuthenticationFailed("no AUTH payload")
        method = auth_payload.method
        if method == 2 and self.psk:
            auth.verify_psk_auth(self.keys.prf, self.psk, octets, auth_payload.data)
            return
        if method == 2 or not self.config.trust_anchors:
            expected = "a certificate signature" if self.config.trust_anchors else \
                "a shared key MIC (method 2)"
            raise AuthenticationFailed(f"expected AUTH with {expected}, got method {method}")
        if method not in (1, 9, 10, 11, 14):
            raise AuthenticationFailed(f"AUTH method {method} is not one we verify")
        certificate = self._verify_peer_certificate(id_payload, payloads or [])
        auth.verify_auth(certificate.public_key(), octets, auth.AuthMethod(method),
                         auth_payload.data)
        self.peer_certificate = certificate

    def _verify_peer_certificate(self, id_payload, payloads: list):
        """The peer's end-entity certificate: chained to a trust anchor, valid at the
        configured time, naming the peer's ID (RFC 4945 §3.1)."""
        from cryptography import x509

        found = []
        for payload in payloads:
            if type(payload) is not c.CERT \
                    or payload.encoding != certs.CERT_ENCODING_X509_SIGNATURE:
                continue
            raw = payload.data
            try:
                found.append(x509.load_der_x509_certificate(raw))
            except ValueError as exc:
                raise AuthenticationFailed(f"CERT payload is not an X.509 "
                                           f"certificate: {exc}") from None
        if not found:
            raise AuthenticationFailed("signature AUTH without an X.509 CERT payload "
                                       "(we keep no certificates of peers)")
        end_entity, intermediates = found[0], found[1:]
        certs.verify_chain(end_entity, intermediates, self.config.trust_anchors,
                           self.config.validation_time)
        kind = ID_NAMES.get(id_payload.id_type, str(id_payload.id_type))
        if not certs.id_matches(end_entity, kind, id_payload.data):
            raise AuthenticationFailed(
                f"identity {kind}:{_id_text(id_payload)} is not in the certificate of "
                f"{end_entity.subject.rfc4514_string()}")
        return end_entity

    def _child_spi(self) -> bytes:
        self.child_inbound_spi = self.allocate_spi()
        return self.child_inbound_spi.to_bytes(4, "big")

    def _own_ts(self) -> list[TrafficSelector]:
        if self.config.local_ts:
            return list(self.config.local_ts)
        if self.config.request:     # the address is not known yet: ask for any
            return list(_ANY_ADDRESS)
        return [_host_ts(self.local)]

    def _peer_ts(self) -> list[TrafficSelector]:
        return list(self.config.remote_ts) or [_host_ts(self.remote)]

    def _acceptable_peer_ts(self) -> list[TrafficSelector]:
        """Responder: what the peer's side of a child SA may cover. A peer that was given
        an address (RFC 4877 §9) may use that and only that; one given a home prefix
        (RFC 5026 §5.3.2) any address of it, to autoconfigure its HoA from."""
        granted = []
        for a in self.assigned:
            if a.attribute == "MIP6_HOME_PREFIX":
                granted.append(TrafficSelector.from_network(str(a.value)))
            else:
                granted.append(_host_ts(addresses.interface(a.value).ip))
        return granted or self._peer_ts()

    def _reqid(self, mode: str) -> int:
        return self.config.reqid_by_mode.get(mode, self.config.reqid)

    def _send_auth(self) -> None:
        id_i = self._id_payload(c.IDi)
        # IDi, [CERT,] [CERTREQ,] AUTH (§1.2)
        payloads = [id_i, *self._cert_payloads(), *self._certreq(),
                    self._auth_payload(id_i, True)]
        if self.config.request:
            payloads.append(c.CP(CFG_REQUEST, tuple(c.CpAttribute(_REQUESTED[r])
                                                    for r in self.config.request)))
        if self.config.first_child:
            spi = self._child_spi()
            payloads += [self._sa_payload(self.config.esp_proposals, spi),
                         self._ts_payload(True, self._own_ts()),
                         self._ts_payload(False, self._peer_ts())]
            if self.config.mode == "transport":
                payloads.append(c.Notify(N.USE_TRANSPORT_MODE))
        if self.config.mobike:
            payloads.append(c.Notify(N.MOBIKE_SUPPORTED))
        self.state = "AUTH_SENT"
        self._request(IKE_AUTH, payloads, encrypted=True)

    def _auth_request(self, message_id: int, payloads: list) -> None:
        id_i = c.first(payloads, c.IDi)
        auth_payload = c.first(payloads, c.AUTH)
        if id_i is None:
            raise RemoteProtocolError("IKE_AUTH request without IDi")
        self.expected_request_id += 1
        peer = (ID_NAMES.get(id_i.id_type, str(id_i.id_type)), _id_text(id_i))
        if self.config.remote_id is not None and not _is_configured(id_i, peer,
                                                                    self.config.remote_id):
            self._auth_failed(message_id, f"peer identity {peer[0]}:{peer[1]} is not the "
                              f"configured {self.config.remote_id[1]}")
            return
        if self.config.peer_psks and self.config.auth_method == "psk":
            self.peer_psk = self._peer_key(peer)
            if self.peer_psk is None:
                self._auth_failed(message_id, f"no pre-shared key for {peer[0]}:{peer[1]}")
                return
        try:
            self._verify_auth(id_i, auth_payload, True, payloads)
        except AuthenticationFailed as exc:
            self._auth_failed(message_id, exc.reason)
            return
        if peer[0] == "der_asn1_dn" and self.peer_certificate is not None:
            peer = (peer[0], self.peer_certificate.subject.rfc4514_string())
        self.peer_id = peer
        refused = self.authorize(self) if self.authorize is not None else None
        if refused is not None:
            self.peer_id = None
            self._auth_failed(message_id, refused)
            return
        id_r = self._id_payload(c.IDr)
        response = [id_r, *self._cert_payloads(), self._auth_payload(id_r, False)]
        grants, failure = self._configuration_reply(payloads)
        if grants:
            response.append(c.CP(CFG_REPLY, tuple(grants)))
        child = self._responder_child(payloads, failure)
        response += child
        self.mobike = self.config.mobike and bool(c.find_notifies(payloads, N.MOBIKE_SUPPORTED))
        if self.mobike:
            response.append(c.Notify(N.MOBIKE_SUPPORTED))
        self._respond(IKE_AUTH, message_id, response, encrypted=True)
        self.state = "ESTABLISHED"
        self._events.append(IkeSaEstablished(self.spi_i, self.spi_r, self.proposal.keyword,
                                             peer, self.nat_detected))
        if self.child is not None:
            self._events.append(self.child)

    def _auth_failed(self, message_id: int, reason: str) -> None:
        self._respond(IKE_AUTH, message_id, [c.Notify(N.AUTHENTICATION_FAILED)],
                      encrypted=True)
        self.state = "CLOSED"
        self._events.append(IkeSaFailed(reason, "AUTHENTICATION_FAILED"))

    def _configuration_reply(self, payloads: list) -> tuple[list, str | None]:
        """CFG_REPLY attributes for the CFG_REQUEST (RFC 4877 §9, RFC 5026 §8.2)."""
        cp = c.first(payloads, c.CP)
        if cp is None:
            return [], None
        wanted = cp.values()
        grants, identity = [], self.peer_identity
        pools = (("INTERNAL_IP6_ADDRESS", self.config.pool6),
                 ("INTERNAL_IP4_ADDRESS", self.config.pool4),
                 ("MIP6_HOME_PREFIX", self.config.home_prefixes))
        for attribute, pool in pools:
            if attribute not in wanted or pool is None:
                continue
            try:
                lease = pool.allocate(identity)
            except PoolExhausted:
                return [], "INTERNAL_ADDRESS_FAILURE"
            if attribute == "INTERNAL_IP6_ADDRESS":
                grants.append(c.cp_attribute(attribute, address=addresses.text(lease),
                                             prefix_len=64))
                # as the initiator reads it; from the integer: an address object would be
                # made into text and parsed again (30 us against 4)
                value = ipaddress.IPv6Interface((int(lease), 64))
            elif attribute == "INTERNAL_IP4_ADDRESS":
                grants.append(c.cp_attribute(attribute, address=addresses.text(lease)))
                value = lease
            else:
                grants.append(c.cp_attribute(attribute, prefix_lifetime=86400,
                                             home_prefix=str(lease.network_address),
                                             prefix_len=lease.prefixlen))
                value = lease
            event = AddressAssigned(attribute, value, self.peer_id)
            self.assigned.append(event)
            self._events.append(event)
        return grants, None

    def _responder_child(self, payloads: list, failure: str | None) -> list:
        """SA, TSi, TSr of the first child SA, or the notify that refuses it."""
        if failure:
            return [c.notify(failure)]
        sa = c.first(payloads, c.SA)
        tsi, tsr = c.first(payloads, c.TSi), c.first(payloads, c.TSr)
        if sa is None or tsi is None or tsr is None:
            return []          # an IKE SA without a child SA (childless)
        try:
            chosen = select_proposal(sa.to_proposals(), self.config.esp_proposals,
                                     prefer="configured", ignore_ke=True)
        except NoProposalChosen:
            return [c.Notify(N.NO_PROPOSAL_CHOSEN)]
        peer_ts = _selectors(tsi)
        narrowed_i = narrow(peer_ts, self._acceptable_peer_ts())
        narrowed_r = narrow(_selectors(tsr), self._own_ts())
        if not narrowed_i or not narrowed_r:
            return [c.Notify(N.TS_UNACCEPTABLE)]
        transport = bool(c.find_notifies(payloads, N.USE_TRANSPORT_MODE))
        mode = "transport" if transport and self.config.mode == "transport" else "tunnel"
        self.child_inbound_spi = self.allocate_spi()
        spi_out = self.child_inbound_spi.to_bytes(4, "big")
        self._install_child(chosen, int.from_bytes(chosen.spi, "big"), mode,
                            narrowed_r, narrowed_i)
        reply = [self._sa_payload([chosen], spi_out),
                 self._ts_payload(True, narrowed_i), self._ts_payload(False, narrowed_r)]
        if mode == "transport":
            reply.append(c.Notify(N.USE_TRANSPORT_MODE))
        return reply

    def _install_child(self, proposal: Proposal, peer_spi: int, mode: str,
                       local_ts: list[TrafficSelector], remote_ts: list[TrafficSelector],
                       nonces: tuple[bytes, bytes] | None = None,
                       exchange_initiator: bool | None = None,
                       inbound_spi: int | None = None) -> ChildSaEstablished:
        """Derive the child SA's keys (§2.17) and remember it. For IKE_AUTH's child the
        nonces are IKE_SA_INIT's; for CREATE_CHILD_SA that exchange's, and "initiator"
        means the initiator of that exchange."""
        ni, nr = nonces or (self.nonce_i, self.nonce_r)
        role = self.initiator if exchange_initiator is None else exchange_initiator
        child = ikekeys.derive_child_keys(self.keys.prf, self.keys.sk_d, proposal, ni, nr)
        encr_out, integ_out = child.outbound(role)
        encr_in, integ_in = child.inbound(role)
        established = ChildSaEstablished(
            inbound_spi if inbound_spi is not None else self.child_inbound_spi, peer_spi,
            ikekeys.esp_suite_name(proposal), mode, encr_in, integ_in, encr_out, integ_out,
            tuple(local_ts), tuple(remote_ts), self.nat_detected, self._reqid(mode))
        if self.child is None:
            self.child = established
        self.children[established.inbound_spi] = established
        return established

    # -- CREATE_CHILD_SA (§1.3) ------------------------------------------------------------

    def create_child(self, now_us: int = 0, rekey: int | None = None, *,
                     mode: str | None = None, local_ts: list[TrafficSelector] | None = None,
                     remote_ts: list[TrafficSelector] | None = None) -> None:
        """A new child SA (§1.3.1) -- with the first child's selectors and mode, or those
        given (RFC 4877: a tunnel-mode payload SA next to the transport-mode BU/BA SA;
        RFC 5026 §5.3.2: the SAs for an autoconfigured HoA) -- or, with ``rekey`` = the
        inbound SPI of a child, that child's replacement (§2.8)."""
        self.now_us = now_us
        if self.state != "ESTABLISHED" or self.pending is not None:
            raise ValueError("one exchange at a time, on an established IKE SA")
        template = self.children.get(rekey) if rekey is not None else self.child
        if rekey is not None and template is None:
            raise ValueError(f"no child SA with inbound SPI {rekey}")
        if template is None and (local_ts is None or remote_ts is None):
            raise ValueError("no child SA to copy: give mode and traffic selectors")
        mode = mode or (template.mode if template else "tunnel")
        local_ts = list(local_ts if local_ts is not None else template.local_ts)
        remote_ts = list(remote_ts if remote_ts is not None else template.remote_ts)
        spi = self.allocate_spi()
        nonce = self.random(32)
        payloads = []
        if rekey is not None:
            payloads.append(c.Notify(N.REKEY_SA, protocol=3, spi=rekey.to_bytes(4, "big")))
        if mode == "transport":
            payloads.append(c.Notify(N.USE_TRANSPORT_MODE))
        payloads += [self._sa_payload(self.config.esp_proposals, spi.to_bytes(4, "big")),
                     c.Nonce(nonce),
                     # TSi is the exchange initiator's side, whoever started the IKE SA
                     self._ts_payload(True, local_ts), self._ts_payload(False, remote_ts)]
        self._request(CREATE_CHILD_SA, payloads, encrypted=True)
        self.pending.context = {"spi": spi, "nonce": nonce, "rekey": rekey, "mode": mode}

    def _create_child_request(self, message_id: int, payloads: list) -> None:
        self.expected_request_id += 1
        sa, nonce = c.first(payloads, c.SA), c.first(payloads, c.Nonce)
        tsi, tsr = c.first(payloads, c.TSi), c.first(payloads, c.TSr)
        if sa is not None and any(p.protocol == 1 for p in sa.to_proposals()):
            self._rekey_ike_request(message_id, payloads)
            return
        if sa is None or nonce is None or tsi is None or tsr is None:
            self._respond(CREATE_CHILD_SA, message_id,
                          [c.Notify(N.INVALID_SYNTAX)], encrypted=True)
            return
        rekey = None
        for notify in c.find_notifies(payloads, N.REKEY_SA):
            old = int.from_bytes(notify.spi, "big")
            rekey = next((c.inbound_spi for c in self.children.values()
                          if old in (c.inbound_spi, c.outbound_spi)), None)
            if rekey is None:
                self._respond(CREATE_CHILD_SA, message_id, [c.Notify(
                    N.CHILD_SA_NOT_FOUND, protocol=3, spi=notify.spi)], encrypted=True)
                return
        try:
            chosen = select_proposal(sa.to_proposals(), self.config.esp_proposals,
                                     prefer="configured", ignore_ke=True)
        except NoProposalChosen:
            self._respond(CREATE_CHILD_SA, message_id,
                          [c.Notify(N.NO_PROPOSAL_CHOSEN)], encrypted=True)
            return
        mine = self.children.get(rekey) if rekey is not None else None
        if mine is not None:     # a rekey keeps what the old child had
            peer_side, own_side = list(mine.remote_ts), list(mine.local_ts)
        elif self.initiator:
            peer_side, own_side = self._peer_ts(), self._own_ts()
        else:
            peer_side, own_side = self._acceptable_peer_ts(), self._own_ts()
        # TSi is the exchange initiator's side: the peer's, since the peer asks
        narrowed_i = narrow(_selectors(tsi), peer_side)
        narrowed_r = narrow(_selectors(tsr), own_side)
        if not narrowed_i or not narrowed_r:
            self._respond(CREATE_CHILD_SA, message_id,
                          [c.Notify(N.TS_UNACCEPTABLE)], encrypted=True)
            return
        transport = bool(c.find_notifies(payloads, N.USE_TRANSPORT_MODE))
        mode = "transport" if transport and self.config.mode == "transport" else "tunnel"
        spi = self.allocate_spi()
        nonce_r = self.random(32)
        child = self._install_child(chosen, int.from_bytes(chosen.spi, "big"), mode,
                                    narrowed_r, narrowed_i, (nonce.data, nonce_r),
                                    exchange_initiator=False, inbound_spi=spi)
        reply = [self._sa_payload([chosen], spi.to_bytes(4, "big")), c.Nonce(nonce_r),
                 self._ts_payload(True, narrowed_i), self._ts_payload(False, narrowed_r)]
        if mode == "transport":
            reply.insert(0, c.Notify(N.USE_TRANSPORT_MODE))
        self._respond(CREATE_CHILD_SA, message_id, reply, encrypted=True)
        self._events.append(child)
        if rekey is not None:
            self._events.append(ChildSaRekeyed(rekey, spi))

    def _create_child_response(self, payloads: list, context: dict) -> None:
        self.pending = None
        if context.get("ike_rekey"):
            self._rekey_ike_response(payloads, context)
            return
        failures = [n for n in c.find_notifies(payloads) if n.type < 16384]
        sa, nonce = c.first(payloads, c.SA), c.first(payloads, c.Nonce)
        if failures or sa is None or nonce is None:
            name = failures[0].name if failures else "no SA or Nr"
            self._events.append(IkeSaFailed(f"CREATE_CHILD_SA refused: {name}",
                                            name if failures else None))
            return
        try:
            chosen = _responder_choice(sa, self.config.esp_proposals)
        except RemoteProtocolError as exc:
            self._events.append(IkeSaFailed(f"CREATE_CHILD_SA: {exc.reason}"))
            return
        tsi = _selectors(c.first(payloads, c.TSi))
        tsr = _selectors(c.first(payloads, c.TSr))
        if not tsi or not tsr:
            self._events.append(_unusable_selectors("CREATE_CHILD_SA"))
            return
        transport = bool(c.find_notifies(payloads, N.USE_TRANSPORT_MODE))
        child = self._install_child(chosen, int.from_bytes(chosen.spi, "big"),
                                    "transport" if transport else "tunnel", tsi, tsr,
                                    (context["nonce"], nonce.data),
                                    exchange_initiator=True, inbound_spi=context["spi"])
        self._events.append(child)
        old = context.get("rekey")
        if old is not None:
            self._events.append(ChildSaRekeyed(old, child.inbound_spi))
            self.delete_child(old, self.now_us)   # §2.8: the rekey initiator deletes

    # -- IKE SA rekey (§1.3.2, §2.18) -----------------------------------------------------

    def rekey_ike(self, now_us: int = 0) -> None:
        """Replace this IKE SA by a new one with fresh keys (CREATE_CHILD_SA with SA, Ni, KE)."""
        self.now_us = now_us
        if self.state != "ESTABLISHED" or self.pending is not None:
            raise ValueError("one exchange at a time, on an established IKE SA")
        spi = self.random(8)
        ke = generate_key_exchange(self.proposal.ke_group, self.random)
        nonce = self.random(32)
        payloads = [self._sa_payload(self.config.ike_proposals, spi), c.Nonce(nonce),
                    c.KE(ke.group, ke.public_value)]
        self._request(CREATE_CHILD_SA, payloads, encrypted=True)
        self.pending.context = {"ike_rekey": True, "spi": spi, "ke": ke, "nonce": nonce}

    def _rekey_ike_request(self, message_id: int, payloads: list) -> None:
        sa, nonce = c.first(payloads, c.SA), c.first(payloads, c.Nonce)
        ke = c.first(payloads, c.KE)
        if nonce is None or ke is None:
            self._respond(CREATE_CHILD_SA, message_id,
                          [c.Notify(N.INVALID_SYNTAX)], encrypted=True)
            return
        try:
            chosen = select_proposal(sa.to_proposals(), self.config.ike_proposals,
                                     prefer="configured")
        except NoProposalChosen:
            self._respond(CREATE_CHILD_SA, message_id,
                          [c.Notify(N.NO_PROPOSAL_CHOSEN)], encrypted=True)
            return
        if chosen.ke_group != ke.group:
            self._respond(CREATE_CHILD_SA, message_id, [c.notify(
                N.INVALID_KE_PAYLOAD, dh_group=chosen.ke_group)], encrypted=True)
            return
        own_ke = generate_key_exchange(chosen.ke_group, self.random)
        try:
            shared = own_ke.shared_secret(ke.data)
        except InvalidKeyExchange as exc:
            self._respond(CREATE_CHILD_SA, message_id,
                          [c.Notify(N.INVALID_SYNTAX)], encrypted=True)
            raise RemoteProtocolError(f"bad KE payload in IKE rekey: {exc}") from None
        spi_r, nonce_r = self.random(8), self.random(32)
        self._respond(CREATE_CHILD_SA, message_id, [
            self._sa_payload([chosen], spi_r), c.Nonce(nonce_r),
            c.KE(own_ke.group, own_ke.public_value)], encrypted=True)
        self._replace(chosen, bytes(chosen.spi), spi_r, nonce.data, nonce_r, shared,
                      new_initiator=False)

    def _rekey_ike_response(self, payloads: list, context: dict) -> None:
        failures = [n for n in c.find_notifies(payloads) if n.type < 16384]
        sa, nonce = c.first(payloads, c.SA), c.first(payloads, c.Nonce)
        ke = c.first(payloads, c.KE)
        if failures or sa is None or nonce is None or ke is None:
            name = failures[0].name if failures else "no SA, Nr or KE"
            self._events.append(IkeSaFailed(f"IKE SA rekey refused: {name}",
                                            name if failures else None))
            return
        try:
            chosen = _responder_choice(sa, self.config.ike_proposals)
        except RemoteProtocolError as exc:
            self._events.append(IkeSaFailed(f"IKE SA rekey: {exc.reason}"))
            return
        shared = context["ke"].shared_secret(ke.data)
        self._replace(chosen, context["spi"], bytes(chosen.spi), context["nonce"],
                      nonce.data, shared, new_initiator=True)
        self.delete(self.now_us)        # §2.18: the rekey initiator deletes the old SA

    def _replace(self, proposal: Proposal, spi_i: bytes, spi_r: bytes, nonce_i: bytes,
                 nonce_r: bytes, shared: bytes, new_initiator: bool) -> None:
        """Make the IKE SA that takes over (the initiator of the rekey is its initiator)."""
        new = IkeSa(self.config, new_initiator, str(self.local), str(self.remote),
                    self.random, self.allocate_spi, self.now_us, self.local_port,
                    self.remote_port)
        new.spi_i, new.spi_r, new.proposal = spi_i, spi_r, proposal
        new.nonce_i, new.nonce_r = nonce_i, nonce_r
        new.keys = ikekeys.derive_rekeyed_ike_keys(self.keys, proposal, nonce_i, nonce_r,
                                                   shared, spi_i, spi_r)
        new.shared_secret = shared
        new.state, new.peer_id = "ESTABLISHED", self.peer_id
        new.nat_detected, new.nat_local, new.nat_remote = \
            self.nat_detected, self.nat_local, self.nat_remote
        new.child, new.children, new.assigned = self.child, dict(self.children), self.assigned
        self.children, self.child = {}, None       # they belong to the new SA now
        self.replaced_by, new.predecessor = new, self
        new.mobike = self.mobike
        self._events.append(IkeSaRekeyed(new))

    # -- INFORMATIONAL (§1.4) --------------------------------------------------------------

    def delete_child(self, inbound_spi: int, now_us: int = 0) -> None:
        """Delete a child SA pair: Delete payload with our inbound SPI (§1.4.1)."""
        self.now_us = now_us
        child = self.children.pop(inbound_spi, None)
        if child is None:
            raise ValueError(f"no child SA with inbound SPI {inbound_spi:#x}")
        if self.child is child:
            self.child = next(iter(self.children.values()), None)
        self._events.append(ChildSaDeleted(child.inbound_spi, child.outbound_spi, False))
        self._request(INFORMATIONAL, [c.Delete(3, (inbound_spi.to_bytes(4, "big"),))],
                      encrypted=True)

    def update_addresses(self, new_local: str, now_us: int = 0) -> None:
        """MOBIKE (RFC 4555 §3.5): the original initiator moved to ``new_local``; tell the
        responder with UPDATE_SA_ADDRESSES (and fresh NAT-D, §3.8) from there."""
        self.now_us = now_us
        if not self.initiator or not self.mobike:
            raise ValueError("only the original initiator of a MOBIKE IKE SA moves it")
        if self.state != "ESTABLISHED" or self.pending is not None:
            raise ValueError("one exchange at a time, on an established IKE SA")
        old_local = str(self.local)
        self.local = new_local
        self.local_port = 4500     # RFC 4555 §3.3: MOBIKE runs on 4500 after IKE_AUTH
        if self.remote_port == 500:
            self.remote_port = 4500
        self._request(INFORMATIONAL, [c.Notify(N.UPDATE_SA_ADDRESSES)]
                      + self._natd_notifies(), encrypted=True)
        self.pending.context = {"moved_from": old_local}

    def follow(self, local: str | None = None, remote: str | None = None, *,
               local_port: int | None = None, remote_port: int | None = None) -> None:
        """Move the SA's endpoints without an exchange: what the K bit asks of IKE when the
        mobility protocol, not IKE, tells us the care-of address changed (RFC 6275
        §11.7.3, §10.3.1; RFC 4877 §7.4). Both sides call it, each on its own word: the
        MN after the accepting BA, the HA on accepting the BU."""
        if local is not None:
            self.local = local
        if remote is not None:
            self.remote = remote
        if local_port is not None:
            self.local_port = local_port
        if remote_port is not None:
            self.remote_port = remote_port

    def check_liveness(self, now_us: int = 0) -> None:
        """An empty INFORMATIONAL request: is the peer still there? (§1.4)."""
        self.now_us = now_us
        self._request(INFORMATIONAL, [], encrypted=True)

    def _informational_request(self, message_id: int, payloads: list) -> None:
        self.expected_request_id += 1
        answer = []
        if c.find_notifies(payloads, N.AUTHENTICATION_FAILED):   # §2.21.2: we were refused
            self._respond(INFORMATIONAL, message_id, [], encrypted=True)
            for child in list(self.children.values()):
                self._events.append(ChildSaDeleted(child.inbound_spi, child.outbound_spi,
                                                   True))
            self.children.clear()
            self.child = None
            self._fail("the initiator did not accept our authentication",
                       "AUTHENTICATION_FAILED")
            return
        if self.mobike and c.find_notifies(payloads, N.UPDATE_SA_ADDRESSES):
            old_remote = str(self.remote)
            if self._arrived_on == 4500:   # RFC 4555 §3.3: the SA lives on 4500 now
                self.local_port = 4500
            self.remote, self.remote_port = self._last_src, self._last_sport
            self._check_nat(payloads, self._last_src, self._last_sport)
            answer += self._natd_notifies()
            self._events.append(IkeSaMoved(str(self.local), old_remote, str(self.local),
                                           str(self.remote), self.local_port,
                                           self.remote_port, self.nat_detected))
        ike_delete = False
        for delete in (p for p in payloads if type(p) is c.Delete):
            if delete.protocol == 1:
                ike_delete = True
                continue
            spis = [int.from_bytes(spi, "big") for spi in delete.spis]
            ours = []
            for spi in spis:   # the peer names its inbound SPI: our outbound one
                child = next((c for c in self.children.values() if c.outbound_spi == spi),
                             None)
                if child is not None:
                    del self.children[child.inbound_spi]
                    if self.child is child:
                        self.child = next(iter(self.children.values()), None)
                    ours.append(child.inbound_spi.to_bytes(4, "big"))
                    self._events.append(ChildSaDeleted(child.inbound_spi,
                                                       child.outbound_spi, True))
            if ours:
                answer.append(c.Delete(3, tuple(ours)))
        self._respond(INFORMATIONAL, message_id, answer, encrypted=True)
        if ike_delete:
            self.state = "CLOSED"
            self._events.append(IkeSaDeleted(by_peer=True))

    def _auth_response(self, payloads: list) -> None:
        self.pending = None
        notifies = c.find_notifies(payloads)
        failures = [n for n in notifies if n.type < 16384]
        found = c.firsts(payloads)
        id_r = found.get(c.IDr)
        if id_r is None:
            name = failures[0].name if failures else "no IDr"
            self._fail(f"IKE_AUTH refused: {name}", name if failures else None)
            return
        try:
            self._verify_auth(id_r, found.get(c.AUTH), False, payloads)
        except AuthenticationFailed as exc:
            self._reject_responder(exc.reason)
            return
        self.peer_id = (ID_NAMES.get(id_r.id_type, str(id_r.id_type)), _id_text(id_r))
        self.mobike = self.config.mobike and bool(c.find_notifies(notifies, N.MOBIKE_SUPPORTED))
        if self.config.remote_id is not None and not _is_configured(id_r, self.peer_id,
                                                                    self.config.remote_id):
            self._reject_responder(f"responder identity {self.peer_id[1]} is not the "
                                   f"configured {self.config.remote_id[1]}")
            return
        if self.peer_id[0] == "der_asn1_dn" and self.peer_certificate is not None:
            self.peer_id = (self.peer_id[0], self.peer_certificate.subject.rfc4514_string())
        self.state = "ESTABLISHED"
        self._events.append(IkeSaEstablished(self.spi_i, self.spi_r, self.proposal.keyword,
                                             self.peer_id, self.nat_detected))
        cp = found.get(c.CP)
        if cp is not None:
            for name, values in cp.values().items():
                for value in values:
                    if value is not None:
                        event = AddressAssigned(str(name), value, self.peer_id)
                        self.assigned.append(event)
                        self._events.append(event)
        sa = found.get(c.SA)
        if failures or sa is None:
            if failures:
                self._events.append(IkeSaFailed(
                    f"child SA refused: {failures[0].name}",
                    failures[0].name))
            return
        try:
            chosen = _responder_choice(sa, self.config.esp_proposals, ignore_ke=True)
        except RemoteProtocolError as exc:
            self._events.append(IkeSaFailed(f"child SA: {exc.reason}"))
            return
        tsi = _selectors(found.get(c.TSi))
        tsr = _selectors(found.get(c.TSr))
        if not tsi or not tsr:
            self._events.append(_unusable_selectors("IKE_AUTH"))
            return
        transport = bool(c.find_notifies(notifies, N.USE_TRANSPORT_MODE))
        self._install_child(chosen, int.from_bytes(chosen.spi, "big"),
                            "transport" if transport else "tunnel", tsi, tsr)
        self._events.append(self.child)

    def _reject_responder(self, reason: str) -> None:
        """The responder did not authenticate to us. It thinks the IKE SA is up: tell it
        with an INFORMATIONAL AUTHENTICATION_FAILED (RFC 7296 §2.21.2), so that neither
        side keeps an SA; sent once, not waited for."""
        message_id = self.next_request_id
        self.next_request_id += 1
        self._emit(self._build(INFORMATIONAL, [c.Notify(N.AUTHENTICATION_FAILED)],
                               message_id, response=False, encrypted=True))
        self._fail(reason, "AUTHENTICATION_FAILED")

    def _fail(self, reason: str, notify: str | None = None) -> None:
        self.pending = None
        self.state = "CLOSED"
        self._events.append(IkeSaFailed(reason, notify))

    # -- INFORMATIONAL ---------------------------------------------------------------------

    def delete(self, now_us: int = 0) -> None:
        """Delete the IKE SA (and with it its child SAs), §1.4.1."""
        self.now_us = now_us
        if self.state != "ESTABLISHED":
            raise ValueError(f"nothing to delete in state {self.state}")
        self.state = "DELETING"
        self._request(INFORMATIONAL, [c.Delete(1)], encrypted=True)


# -- cookies (§2.6), computed without state by whoever answers IKE_SA_INIT -----------------


def make_cookie(secret: bytes, version: int, nonce_i: bytes, ip_i: str, spi_i: bytes) -> bytes:
    """Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>) (RFC 7296 §2.6)."""
    from cryptography.hazmat.primitives import hashes

    digest = hashes.Hash(hashes.SHA256())
    digest.update(nonce_i + addresses.address(ip_i).packed + spi_i + secret)
    return version.to_bytes(4, "big") + digest.finalize()


def cookie_check(data: bytes, src: str, secret: bytes, version: int) -> bytes | None:
    """For an IKE_SA_INIT request: None if it carries our valid cookie, else the bytes of
    the response that asks for one. ``data`` must already be a valid IKE message."""
    message = c.decode_message(data)
    payloads = message.payloads
    nonce = c.first(payloads, c.Nonce)
    if nonce is None:
        return None          # the engine answers INVALID_SYNTAX
    expected = make_cookie(secret, version, nonce.data, src, message.spi_i)
    offered = c.find_notifies(payloads, N.COOKIE)
    if offered and offered[0].data == expected:
        return None
    return c.encode_message(c.Message(message.spi_i, bytes(8), IKE_SA_INIT, 0x20, 0,
                                      [c.Notify(N.COOKIE, expected)]))


# -- helpers -------------------------------------------------------------------------------


def _id_text(id_payload) -> str:
    data = id_payload.data
    if id_payload.id_type in (1, 5):
        return addresses.text(addresses.address(data))
    if id_payload.id_type == ID_TYPE_NUMBERS["der_asn1_dn"]:
        return data.hex()     # a DER Name; shown by its certificate's subject once verified
    return data.decode(errors="replace")


def _is_configured(id_payload, peer: tuple[str, str], configured: tuple[str, str]) -> bool:
    """Is the peer's ID the one configured? DNs compare as DER."""
    if configured[0] == "der_asn1_dn":
        try:
            return peer[0] == "der_asn1_dn" and \
                certs.name_der(configured[1]) == id_payload.data
        except ValueError:
            return False
    return peer == configured


def _ts(selector: Any) -> TrafficSelector | None:
    """A selector of the wire as a range, or None when it names none this engine can use:
    a starting address above the ending one (RFC 7296 §3.13.1: they are the smallest and
    the largest address included), or the OPAQUE ports 65535-0 (§3.13.1). Such a
    selector is narrowed away like a TS type we do not use, so a request left with no
    selector gets TS_UNACCEPTABLE (§2.9) instead of an exception."""
    return _wire_range(bytes(selector.start_address), bytes(selector.end_address),
                       selector.protocol, selector.start_port, selector.end_port)


@functools.lru_cache(maxsize=1024)
def _wire_range(start: bytes, end: bytes, protocol: int, start_port: int, end_port: int
                ) -> TrafficSelector | None:
    """:func:`_ts` by the selector's fields: a peer names the same few ranges in every
    exchange, and a selector is an immutable value (parsing two IPv6 addresses and
    checking the range is most of its cost)."""
    try:
        return TrafficSelector(_address(start), _address(end), protocol, start_port,
                               end_port)
    except ValueError:
        return None


@functools.lru_cache(maxsize=256)
def _sa_segments(proposals: tuple[tuple[Proposal, int], ...], spi_size: int
                 ) -> tuple[bytes, ...]:
    """:func:`mip6lab.wire.ikev2_codec.sa_segments` by the proposals' values and numbers
    (a proposal's equality leaves its number out; the SPI is the caller's)."""
    return c.sa_segments([p.with_(number=n) for p, n in proposals], spi_size)


@functools.lru_cache(maxsize=1024)
def _host_ts(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> TrafficSelector:
    """The selector of one address, all protocols and ports (an immutable value)."""
    return TrafficSelector(address, address)


def _ip(value: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """An address from text (or an address)."""
    return addresses.address(value)


def _with_text(value: Any) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, str | None]:
    """(address, its text): the canonical text when given text, or None when given an
    address (its text is made when a datagram first names it)."""
    if isinstance(value, str):
        address = addresses.address(value)
        return address, addresses.text(address)
    return _ip(value), None


_text = addresses.text


def _address(packed: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(packed) if len(packed) == 4 else ipaddress.IPv6Address(packed)


def _unusable_selectors(exchange: str) -> IkeSaFailed:
    """A response whose TSi or TSr holds no usable selector: the child SA is not made."""
    return IkeSaFailed(f"child SA refused: the {exchange} response's traffic selectors "
                       "name no usable range (RFC 7296 §3.13.1)", "TS_UNACCEPTABLE")


def _responder_choice(sa, offered: Sequence[Proposal], *, ignore_ke: bool = False
                      ) -> Proposal:
    """The one proposal of a responder's SA payload, which must be one we offered.

    RFC 7296 §2.7: the responder "MUST choose a single suite" and sends back an SA payload
    with exactly that one proposal, which must be one of the initiator's. Found by
    fuzzing: an SA payload with no proposal raised IndexError out of the engine. Raises
    :class:`RemoteProtocolError`."""
    chosen = sa.to_proposals()
    if len(chosen) != 1:
        raise RemoteProtocolError(f"the responder chose {len(chosen)} proposals, not one "
                                  "(§2.7)")
    try:
        select_proposal(chosen, offered, ignore_ke=ignore_ke)
    except NoProposalChosen:
        raise RemoteProtocolError("the responder chose a proposal we did not offer "
                                  "(§2.7)") from None
    return chosen[0]


def _selectors(payload: Any) -> list[TrafficSelector]:
    """The usable selectors of a TSi or TSr payload (none when it is absent)."""
    if payload is None:
        return []
    found = [_ts(s) for s in payload.selectors if type(s) is c.AddressSelector]
    return [ts for ts in found if ts is not None]


def _wire_ts(ts: TrafficSelector) -> c.AddressSelector:
    """A selector of ours as TS_IPV4_ADDR_RANGE / TS_IPV6_ADDR_RANGE (§3.13.1)."""
    return c.AddressSelector(*ts.wire())


__all__ = ["IkeSa", "Datagram", "Event", "IkeSaEstablished", "ChildSaEstablished",
           "ChildSaDeleted", "ChildSaRekeyed", "IkeSaRekeyed", "IkeSaMoved", "AddressAssigned", "IkeSaFailed",
           "IkeSaDeleted", "MessageDropped", "IkeSaSecrets"]
