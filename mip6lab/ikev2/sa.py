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
"""

from __future__ import annotations

import ipaddress
from collections import deque
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
from ..errors import MalformedPacket, RemoteProtocolError
from ..wire import ikev2 as w
from . import certs
from .config import ID_TYPE_NUMBERS, IkeConfig
from .pools import PoolExhausted
from .ts import TrafficSelector, narrow

IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, INFORMATIONAL = 34, 35, 36, 37
#: RFC 7427 §4: the hashes we announce in SIGNATURE_HASH_ALGORITHMS (SHA2-256/384/512)
SIGNATURE_HASHES = (2, 3, 4)
_SCHEME_HASH = {2: "256", 3: "384", 4: "512"}
ID_NAMES = {number: name for name, number in ID_TYPE_NUMBERS.items()}


# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Base class of what an IKE SA tells its driver."""


@dataclass(frozen=True)
class IkeSaEstablished(Event):
    spi_i: bytes
    spi_r: bytes
    proposal: str
    peer_id: tuple[str, str]
    nat_detected: bool


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class ChildSaDeleted(Event):
    """A child SA pair is gone (deleted by either side, or replaced by a rekey)."""

    inbound_spi: int
    outbound_spi: int
    by_peer: bool


@dataclass(frozen=True)
class ChildSaRekeyed(Event):
    """``new`` replaces the child SA whose inbound SPI was ``old_inbound_spi`` (§2.8)."""

    old_inbound_spi: int
    new_inbound_spi: int


@dataclass(frozen=True)
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


@dataclass(frozen=True)
class IkeSaRekeyed(Event):
    """This IKE SA is replaced by ``new`` (§1.3.2, §2.18); its child SAs moved there."""

    new: Any


@dataclass(frozen=True)
class AddressAssigned(Event):
    """The configuration payload's answer (initiator) or grant (responder)."""

    attribute: str          # "INTERNAL_IP6_ADDRESS", "INTERNAL_IP4_ADDRESS", "MIP6_HOME_PREFIX"
    value: Any
    peer_id: tuple[str, str]


@dataclass(frozen=True)
class IkeSaFailed(Event):
    reason: str
    notify: str | None = None


@dataclass(frozen=True)
class IkeSaDeleted(Event):
    by_peer: bool


@dataclass(frozen=True)
class MessageDropped(Event):
    reason: str


@dataclass(frozen=True)
class Datagram:
    data: bytes
    src: str
    dst: str
    sport: int
    dport: int


@dataclass(frozen=True)
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
      another group): §2.15's RealMessage1 and RealMessage2, which AUTH signs;
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


@dataclass
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
        self.local = ipaddress.ip_address(local)
        self.remote = ipaddress.ip_address(remote)
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
        self._events: deque[Event] = deque()
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

    # -- driver interface ------------------------------------------------------------------

    def datagrams_to_send(self) -> list[Datagram]:
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

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
        return f"{self.peer_id[0]}:{self.peer_id[1]}" if self.peer_id else None

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

    # -- sending ---------------------------------------------------------------------------

    def _emit(self, data: bytes) -> None:
        self.messages_sent += 1
        # on the NAT-T port every IKE message carries the non-ESP marker (RFC 3948 §2.2);
        # the peer's side of it may be any port a NAT chose
        payload = w.wrap_udp(data, 4500) if self.local_port == 4500 else data
        self._out.append(Datagram(payload, str(self.local), str(self.remote),
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
        message = w.build_message_bytes(exchange, [] if encrypted else payloads,
                                        init_spi=self.spi_i, resp_spi=self.spi_r,
                                        message_id=message_id, initiator=self.initiator,
                                        response=response)
        if not encrypted:
            return message
        first, inner = w.build_inner_payloads(payloads)
        cipher = self.keys.cipher(from_initiator=self.initiator)
        return encrypt_message(cipher, message[:28], first, inner,
                               self.random(cipher.iv_size))

    # -- payloads built once -----------------------------------------------------------

    def _memo(self, key: tuple, build: Callable[[], Any]) -> w.BuiltPayload:
        """A payload that depends only on ``key``: built by scapy the first time, then
        reused as bytes (building an IKE_AUTH costs about a millisecond otherwise)."""
        cache = self.config.wire_cache
        built = cache.get(key)
        if built is None:
            payload = build()
            built = cache[key] = w.BuiltPayload(w.payload_type_of(payload),
                                                w.chain_bytes([payload]))
        return built

    def _notify(self, name: str) -> w.BuiltPayload:
        return self._memo(("N", name), lambda: w.IKEv2_Notify(type=name))

    def _sa_payload(self, proposals: list[Proposal], spi: bytes) -> w.BuiltPayload:
        """An SA payload for ``proposals``, each with ``spi``: a template built once with
        zero SPIs, the SPI written into each proposal substructure (§3.3.1: the SPI
        follows the 8-octet proposal header)."""
        template = self._memo(("SA", tuple(proposals), len(spi)), lambda: w.build_sa_payload(
            [p.with_(spi=bytes(len(spi))) for p in proposals]))
        data = bytearray(template.data)
        offset = 4                                   # after the SA payload header
        while offset + 8 <= len(data):
            length = int.from_bytes(data[offset + 2:offset + 4], "big")
            data[offset + 8:offset + 8 + len(spi)] = spi
            offset += length
        return w.BuiltPayload(template.payload_type, bytes(data))

    def _ts_payload(self, initiator: bool, selectors: list[TrafficSelector]) -> w.BuiltPayload:
        return self._memo(("TS", initiator, tuple(selectors)), lambda: w.build_ts_payload(
            initiator, [_wire_ts(t) for t in selectors]))

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
        payloads = [self._memo(("SA-IKE",), lambda: w.build_sa_payload(
                        self.config.ike_proposals)),
                    w.IKEv2_KE(group=group, ke=self.ke.public_value),
                    w.IKEv2_Nonce(nonce=self.nonce_i)] + self._natd_notifies() \
            + self._signature_hash_notify()
        if self.cookie is not None:      # §2.6: the COOKIE notify comes first
            payloads.insert(0, w.IKEv2_Notify(type="COOKIE", notify=self.cookie))
        self.state = "INIT_SENT"
        self.next_request_id = 0
        self._request(IKE_SA_INIT, payloads, encrypted=False)

    def _signature_hash_notify(self) -> list:
        """N(SIGNATURE_HASH_ALGORITHMS) in IKE_SA_INIT when certificates are in play
        (RFC 7427 §4)."""
        if not self.config.uses_certificates:
            return []
        return [w.IKEv2_Notify(type="SIGNATURE_HASH_ALGORITHMS",
                               hash_algorithms=list(SIGNATURE_HASHES))]

    def _certreq(self) -> list:
        """CERTREQ, X.509 signature, with the SHA-1s of our trust anchors' keys (§3.7)."""
        if not self.config.trust_anchors:
            return []
        return [w.IKEv2_CERTREQ(cert_encoding=certs.CERT_ENCODING_X509_SIGNATURE,
                                cert_authority=certs.certreq_data(self.config.trust_anchors))]

    def _learn_certificate_notifies(self, payloads: list) -> None:
        """What the peer said in IKE_SA_INIT about signatures and certificates."""
        for notify in w.find_notifies(payloads, "SIGNATURE_HASH_ALGORITHMS"):
            self.peer_hash_algorithms = tuple(int(h) for h in (notify.hash_algorithms or []))
        self.peer_certreq = [h for p in payloads if isinstance(p, w.IKEv2_CERTREQ)
                             and int(p.cert_encoding) == certs.CERT_ENCODING_X509_SIGNATURE
                             for h in certs.certreq_hashes(bytes(p.cert_authority or b""))]

    def _natd_notifies(self) -> list:
        """NAT_DETECTION_SOURCE_IP / _DESTINATION_IP hashes (§2.23)."""
        spi_r = self.spi_r if not self.initiator else bytes(8)
        source = nat_detection_hash(self.spi_i, spi_r, self.local, self.local_port)
        destination = nat_detection_hash(self.spi_i, spi_r, self.remote, self.remote_port)
        return [w.IKEv2_Notify(type="NAT_DETECTION_SOURCE_IP", notify=source),
                w.IKEv2_Notify(type="NAT_DETECTION_DESTINATION_IP", notify=destination)]

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
            message = w.decode_message(data)
        except MalformedPacket as exc:
            self._events.append(MessageDropped(f"malformed IKE message: {exc}"))
            return
        self.messages_received += 1
        response = bool(message.flags & 0x20)
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
        spi_i, spi_r, unknown = bytes(message.init_SPI), bytes(message.resp_SPI), bytes(8)
        # a responder's SA learns the initiator's SPI from the first IKE_SA_INIT request
        if spi_i != self.spi_i and not (self.spi_i == unknown and not response
                                        and message.exch_type == IKE_SA_INIT):
            return f"initiator SPI {spi_i.hex()} is not this IKE SA's {self.spi_i.hex()} (§3.1)"
        if message.exch_type == IKE_SA_INIT:
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
        return w.decode_inner_payloads(first, inner)

    def _receive_response(self, message, data: bytes, src: str, sport: int) -> None:
        request = self.pending
        if request is None or message.id != request.message_id:
            raise RemoteProtocolError(f"response with message ID {message.id}: "
                                      "not the one we wait for (§2.2)")
        if message.exch_type != request.exchange:
            # found by fuzzing: a CREATE_CHILD_SA answer to a liveness check was read
            # against the INFORMATIONAL request's (empty) context and raised KeyError
            raise RemoteProtocolError(f"response of exchange {message.exch_type} to a "
                                      f"request of exchange {request.exchange} (§1, §3.1)")
        if message.exch_type == IKE_SA_INIT:
            self._init_response(message, data)
        elif message.exch_type == IKE_AUTH:
            self._auth_response(self._decrypt(data))
        elif message.exch_type == CREATE_CHILD_SA:
            self._create_child_response(self._decrypt(data), request.context or {})
        elif message.exch_type == INFORMATIONAL:
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
        if self.last_response is not None and message.id == self.last_response[0]:
            self._emit(self.last_response[1])    # a retransmission: the cached answer
            return
        if message.id != self.expected_request_id:
            raise RemoteProtocolError(f"request with message ID {message.id}, expected "
                                      f"{self.expected_request_id} (§2.2)")
        if message.exch_type == IKE_SA_INIT and self.state == "IDLE":
            self._init_request(message, data, src, sport)
        elif message.exch_type == IKE_AUTH and self.state == "INIT_DONE":
            payloads = self._decrypt(data)
            if self._arrived_on == 4500:   # §2.23: the initiator moved to 4500 (NAT): follow
                self.local_port, self.remote_port = 4500, sport
            self._auth_request(message.id, payloads)
        elif message.exch_type == INFORMATIONAL and self.state == "ESTABLISHED":
            self._informational_request(message.id, self._decrypt(data))
        elif message.exch_type == CREATE_CHILD_SA and self.state == "ESTABLISHED":
            self._create_child_request(message.id, self._decrypt(data))
        else:
            raise RemoteProtocolError(f"exchange {message.exch_type} not expected in state "
                                      f"{self.state}")

    # -- IKE_SA_INIT -----------------------------------------------------------------------

    def _init_request(self, message, data: bytes, src: str, sport: int) -> None:
        payloads = w.message_payloads(message)
        self.spi_i = bytes(message.init_SPI)
        critical = w.find_unknown_critical(payloads, message.next_payload)
        if critical:
            self._respond(IKE_SA_INIT, message.id, [w.IKEv2_Notify(
                type="UNSUPPORTED_CRITICAL_PAYLOAD", notify=bytes([critical[0]]))],
                encrypted=False)
            return
        sa = _first(payloads, w.IKEv2_SA)
        ke = _first(payloads, w.IKEv2_KE)
        nonce = _first(payloads, w.IKEv2_Nonce)
        if sa is None or ke is None or nonce is None:
            self._respond(IKE_SA_INIT, message.id,
                          [w.IKEv2_Notify(type="INVALID_SYNTAX")], encrypted=False)
            return
        try:
            chosen = select_proposal(w.decode_sa(sa), self.config.ike_proposals,
                                     prefer="configured")
        except NoProposalChosen:
            self._respond(IKE_SA_INIT, message.id,
                          [w.IKEv2_Notify(type="NO_PROPOSAL_CHOSEN")], encrypted=False)
            self._events.append(IkeSaFailed("no acceptable IKE proposal",
                                            "NO_PROPOSAL_CHOSEN"))
            return
        if chosen.ke_group != ke.group:       # §1.2: tell the initiator which group
            self._respond(IKE_SA_INIT, message.id, [w.IKEv2_Notify(
                type="INVALID_KE_PAYLOAD", dh_group=chosen.ke_group)], encrypted=False)
            self.last_response = None          # the retry comes with message ID 0 again
            return
        self.proposal = chosen
        self.ke = generate_key_exchange(chosen.ke_group, self.random)
        try:
            shared = self.ke.shared_secret(bytes(ke.ke))
        except InvalidKeyExchange as exc:
            self._respond(IKE_SA_INIT, message.id,
                          [w.IKEv2_Notify(type="INVALID_SYNTAX")], encrypted=False)
            raise RemoteProtocolError(f"bad KE payload: {exc}") from None
        self.nonce_i, self.nonce_r = bytes(nonce.nonce), self.random(32)
        self._check_nat(payloads, src, sport)
        self.remote_port = sport
        self.init_request = data
        self._learn_certificate_notifies(payloads)
        response = [self._memo(("SA-IKE", chosen), lambda: w.build_sa_payload([chosen])),
                    w.IKEv2_KE(group=chosen.ke_group, ke=self.ke.public_value),
                    w.IKEv2_Nonce(nonce=self.nonce_r)] + self._natd_notifies() \
            + self._certreq() + self._signature_hash_notify()
        self.init_response = self._respond(IKE_SA_INIT, message.id, response, encrypted=False)
        self.keys = ikekeys.derive_ike_keys(chosen, self.nonce_i, self.nonce_r, shared,
                                            self.spi_i, self.spi_r)
        self.shared_secret = shared
        self.expected_request_id = 1
        self.state = "INIT_DONE"

    def _init_response(self, message, data: bytes) -> None:
        payloads = w.message_payloads(message)
        cookie = w.find_notifies(payloads, "COOKIE")
        if cookie and self.cookie is None:
            self.cookie = bytes(cookie[0].notify)
            self.pending = None
            self.initiate(self.now_us, group=self.ke.group)   # the same, with the cookie
            return
        invalid_ke = w.find_notifies(payloads, "INVALID_KE_PAYLOAD")
        if invalid_ke:
            group = int(invalid_ke[0].dh_group)
            if group not in {t.id for p in self.config.ike_proposals for t in p.ke}:
                self._fail(f"responder wants DH group {group}, which we do not offer",
                           "INVALID_KE_PAYLOAD")
                return
            self.pending = None
            self.initiate(self.now_us, group=group)   # §1.2: retry with the right group
            return
        for notify in w.find_notifies(payloads):
            if int(notify.type) < 16384:               # an error notify (§3.10.1)
                self._fail(f"responder refused IKE_SA_INIT: {w.notify_name(notify)}",
                           w.notify_name(notify))
                return
        sa, ke, nonce = (_first(payloads, cls) for cls in (w.IKEv2_SA, w.IKEv2_KE,
                                                           w.IKEv2_Nonce))
        if sa is None or ke is None or nonce is None:
            raise RemoteProtocolError("IKE_SA_INIT response without SA, KE or Nr")
        chosen = w.decode_sa(sa)
        if len(chosen) != 1:
            raise RemoteProtocolError("the responder must choose exactly one proposal")
        try:    # the choice must be one we offered (§2.7)
            select_proposal(chosen, self.config.ike_proposals)
        except NoProposalChosen:
            raise RemoteProtocolError("the responder chose a proposal we did not offer")
        self.proposal = chosen[0]
        self.spi_r = bytes(message.resp_SPI)
        self.nonce_r = bytes(nonce.nonce)
        shared = self.ke.shared_secret(bytes(ke.ke))
        self.keys = ikekeys.derive_ike_keys(self.proposal, self.nonce_i, self.nonce_r,
                                            shared, self.spi_i, self.spi_r)
        self.shared_secret = shared
        self._check_nat(payloads, str(self.remote), self.remote_port)
        self._learn_certificate_notifies(payloads)
        self.init_response = data
        self.pending = None
        if (self.nat_detected or self.config.always_nat_t) and self.remote_port == 500:
            self.local_port = self.remote_port = 4500      # §2.23: move to 4500
        self._send_auth()

    def _check_nat(self, payloads, src: str, sport: int) -> None:
        """Compare the peer's NAT-D hashes with what we see (§2.23)."""
        spi_r = self.spi_r if self.initiator else bytes(8)
        theirs = w.find_notifies(payloads, "NAT_DETECTION_SOURCE_IP")
        mine = w.find_notifies(payloads, "NAT_DETECTION_DESTINATION_IP")
        if not theirs or not mine:
            return
        expected_src = nat_detection_hash(self.spi_i, spi_r, src, sport)
        expected_dst = nat_detection_hash(self.spi_i, spi_r, self.local, self.local_port)
        self.nat_remote = all(bytes(n.notify) != expected_src for n in theirs)
        self.nat_local = all(bytes(n.notify) != expected_dst for n in mine)
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
        return cls(IDtype=ID_TYPE_NUMBERS[kind], ID=data)

    def _signed_octets(self, id_payload, initiator_side: bool) -> bytes:
        """§2.15: the IKE_SA_INIT message of the side | the other's nonce | its MACedID."""
        prf = self.keys.prf
        message = self.init_request if initiator_side else self.init_response
        peer_nonce = self.nonce_r if initiator_side else self.nonce_i
        sk_p = self.keys.sk_pi if initiator_side else self.keys.sk_pr
        return auth.signed_octets(message, peer_nonce, prf, sk_p,
                                  w.chain_bytes([id_payload])[4:])

    def _cert_payloads(self) -> list:
        """CERT (X.509 signature, DER) of our certificate and intermediates (§3.6)."""
        if self.config.auth_method == "psk":
            return []
        from cryptography.hazmat.primitives.serialization import Encoding

        return [w.IKEv2_CERT(cert_encoding=certs.CERT_ENCODING_X509_SIGNATURE,
                             cert_data=c.public_bytes(Encoding.DER))
                for c in [self.config.certificate, *self.config.intermediates]]

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
            return w.IKEv2_AUTH(auth_type=2, load=auth.psk_auth(self.keys.prf,
                                                                self.psk, octets))
        method, scheme = self._signature_method()
        return w.IKEv2_AUTH(auth_type=int(method), load=auth.sign_auth(
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
        method = int(auth_payload.auth_type)
        if method == 2 and self.psk:
            auth.verify_psk_auth(self.keys.prf, self.psk, octets, bytes(auth_payload.load))
            return
        if method == 2 or not self.config.trust_anchors:
            expected = "a certificate signature" if self.config.trust_anchors else \
                "a shared key MIC (method 2)"
            raise AuthenticationFailed(f"expected AUTH with {expected}, got method {method}")
        if method not in (1, 9, 10, 11, 14):
            raise AuthenticationFailed(f"AUTH method {method} is not one we verify")
        certificate = self._verify_peer_certificate(id_payload, payloads or [])
        auth.verify_auth(certificate.public_key(), octets, auth.AuthMethod(method),
                         bytes(auth_payload.load))
        self.peer_certificate = certificate

    def _verify_peer_certificate(self, id_payload, payloads: list):
        """The peer's end-entity certificate: chained to a trust anchor, valid at the
        configured time, naming the peer's ID (RFC 4945 §3.1)."""
        from cryptography import x509

        found = []
        for payload in payloads:
            if not isinstance(payload, w.IKEv2_CERT):
                continue
            raw = w.chain_bytes([payload])[5:]
            if int(payload.cert_encoding) != certs.CERT_ENCODING_X509_SIGNATURE:
                continue
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
        kind = ID_NAMES.get(int(id_payload.IDtype), str(id_payload.IDtype))
        if not certs.id_matches(end_entity, kind, bytes(id_payload.ID)):
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
            return [TrafficSelector.from_network("::/0"),
                    TrafficSelector.from_network("0.0.0.0/0")]
        return [TrafficSelector.from_network(str(self.local))]

    def _peer_ts(self) -> list[TrafficSelector]:
        return list(self.config.remote_ts) or [TrafficSelector.from_network(str(self.remote))]

    def _acceptable_peer_ts(self) -> list[TrafficSelector]:
        """Responder: what the peer's side of a child SA may cover. A peer that was given
        an address (RFC 4877 §9) may use that and only that; one given a home prefix
        (RFC 5026 §5.3.2) any address of it, to autoconfigure its HoA from."""
        granted = []
        for a in self.assigned:
            if a.attribute == "MIP6_HOME_PREFIX":
                granted.append(TrafficSelector.from_network(str(a.value)))
            else:
                granted.append(TrafficSelector.from_network(
                    str(ipaddress.ip_interface(a.value).ip)))
        return granted or self._peer_ts()

    def _reqid(self, mode: str) -> int:
        return self.config.reqid_by_mode.get(mode, self.config.reqid)

    def _send_auth(self) -> None:
        id_i = self._memo(("IDi", self.config.local_id),
                          lambda: self._id_payload(w.IKEv2_IDi))
        # IDi, [CERT,] [CERTREQ,] AUTH (§1.2)
        payloads = [id_i, *self._cert_payloads(), *self._certreq(),
                    self._auth_payload(id_i, True)]
        if self.config.request:
            payloads.append(self._memo(("CP", self.config.request), lambda: w.build_cp_payload(
                "CFG_REQUEST", [w.cp_attribute({"ipv6": "INTERNAL_IP6_ADDRESS",
                                                "ipv4": "INTERNAL_IP4_ADDRESS",
                                                "home-prefix": "MIP6_HOME_PREFIX"}[r])
                                for r in self.config.request])))
        if self.config.first_child:
            spi = self._child_spi()
            payloads += [self._sa_payload(self.config.esp_proposals, spi),
                         self._ts_payload(True, self._own_ts()),
                         self._ts_payload(False, self._peer_ts())]
            if self.config.mode == "transport":
                payloads.append(self._notify("USE_TRANSPORT_MODE"))
        if self.config.mobike:
            payloads.append(self._notify("MOBIKE_SUPPORTED"))
        self.state = "AUTH_SENT"
        self._request(IKE_AUTH, payloads, encrypted=True)

    def _auth_request(self, message_id: int, payloads: list) -> None:
        id_i = _first(payloads, w.IKEv2_IDi)
        auth_payload = _first(payloads, w.IKEv2_AUTH)
        if id_i is None:
            raise RemoteProtocolError("IKE_AUTH request without IDi")
        self.expected_request_id += 1
        peer = (ID_NAMES.get(int(id_i.IDtype), str(id_i.IDtype)), _id_text(id_i))
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
        id_r = self._memo(("IDr", self.config.local_id),
                          lambda: self._id_payload(w.IKEv2_IDr))
        response = [id_r, *self._cert_payloads(), self._auth_payload(id_r, False)]
        grants, failure = self._configuration_reply(payloads)
        if grants:
            response.append(w.build_cp_payload("CFG_REPLY", grants))
        child = self._responder_child(payloads, failure)
        response += child
        self.mobike = self.config.mobike and bool(w.find_notifies(payloads, "MOBIKE_SUPPORTED"))
        if self.mobike:
            response.append(self._notify("MOBIKE_SUPPORTED"))
        self._respond(IKE_AUTH, message_id, response, encrypted=True)
        self.state = "ESTABLISHED"
        self._events.append(IkeSaEstablished(self.spi_i, self.spi_r, self.proposal.keyword,
                                             peer, self.nat_detected))
        if self.child is not None:
            self._events.append(self.child)

    def _auth_failed(self, message_id: int, reason: str) -> None:
        self._respond(IKE_AUTH, message_id, [w.IKEv2_Notify(type="AUTHENTICATION_FAILED")],
                      encrypted=True)
        self.state = "CLOSED"
        self._events.append(IkeSaFailed(reason, "AUTHENTICATION_FAILED"))

    def _configuration_reply(self, payloads: list) -> tuple[list, str | None]:
        """CFG_REPLY attributes for the CFG_REQUEST (RFC 4877 §9, RFC 5026 §8.2)."""
        cp = _first(payloads, w.IKEv2_CP)
        if cp is None:
            return [], None
        wanted = w.decode_cp(cp)
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
                grants.append(w.cp_attribute(attribute, address=str(lease), prefix_len=64))
                value = ipaddress.ip_interface(f"{lease}/64")   # as the initiator reads it
            elif attribute == "INTERNAL_IP4_ADDRESS":
                grants.append(w.cp_attribute(attribute, address=str(lease)))
                value = lease
            else:
                grants.append(w.cp_attribute(attribute, prefix_lifetime=86400,
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
            return [w.IKEv2_Notify(type=failure)]
        sa = _first(payloads, w.IKEv2_SA)
        tsi, tsr = _first(payloads, w.IKEv2_TSi), _first(payloads, w.IKEv2_TSr)
        if sa is None or tsi is None or tsr is None:
            return []          # an IKE SA without a child SA (childless)
        try:
            chosen = select_proposal(w.decode_sa(sa), self.config.esp_proposals,
                                     prefer="configured", ignore_ke=True)
        except NoProposalChosen:
            return [w.IKEv2_Notify(type="NO_PROPOSAL_CHOSEN")]
        peer_ts = _selectors(tsi)
        narrowed_i = narrow(peer_ts, self._acceptable_peer_ts())
        narrowed_r = narrow(_selectors(tsr), self._own_ts())
        if not narrowed_i or not narrowed_r:
            return [w.IKEv2_Notify(type="TS_UNACCEPTABLE")]
        transport = bool(w.find_notifies(payloads, "USE_TRANSPORT_MODE"))
        mode = "transport" if transport and self.config.mode == "transport" else "tunnel"
        self.child_inbound_spi = self.allocate_spi()
        chosen_out = chosen.with_(spi=self.child_inbound_spi.to_bytes(4, "big"))
        self._install_child(chosen, int.from_bytes(chosen.spi, "big"), mode,
                            narrowed_r, narrowed_i)
        reply = [self._sa_payload([chosen], chosen_out.spi),
                 self._ts_payload(True, narrowed_i), self._ts_payload(False, narrowed_r)]
        if mode == "transport":
            reply.append(self._notify("USE_TRANSPORT_MODE"))
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
            payloads.append(w.IKEv2_Notify(type="REKEY_SA", proto=3,
                                           SPI=rekey.to_bytes(4, "big")))
        if mode == "transport":
            payloads.append(w.IKEv2_Notify(type="USE_TRANSPORT_MODE"))
        payloads += [w.build_sa_payload([p.with_(spi=spi.to_bytes(4, "big"))
                                         for p in self.config.esp_proposals]),
                     w.IKEv2_Nonce(nonce=nonce),
                     # TSi is the exchange initiator's side, whoever started the IKE SA
                     w.build_ts_payload(True, [_wire_ts(t) for t in local_ts]),
                     w.build_ts_payload(False, [_wire_ts(t) for t in remote_ts])]
        self._request(CREATE_CHILD_SA, payloads, encrypted=True)
        self.pending.context = {"spi": spi, "nonce": nonce, "rekey": rekey, "mode": mode}

    def _create_child_request(self, message_id: int, payloads: list) -> None:
        self.expected_request_id += 1
        sa, nonce = _first(payloads, w.IKEv2_SA), _first(payloads, w.IKEv2_Nonce)
        tsi, tsr = _first(payloads, w.IKEv2_TSi), _first(payloads, w.IKEv2_TSr)
        if sa is not None and any(p.protocol == 1 for p in w.decode_sa(sa)):
            self._rekey_ike_request(message_id, payloads)
            return
        if sa is None or nonce is None or tsi is None or tsr is None:
            self._respond(CREATE_CHILD_SA, message_id,
                          [w.IKEv2_Notify(type="INVALID_SYNTAX")], encrypted=True)
            return
        rekey = None
        for notify in w.find_notifies(payloads, "REKEY_SA"):
            old = int.from_bytes(bytes(notify.SPI), "big")
            rekey = next((c.inbound_spi for c in self.children.values()
                          if old in (c.inbound_spi, c.outbound_spi)), None)
            if rekey is None:
                self._respond(CREATE_CHILD_SA, message_id, [w.IKEv2_Notify(
                    type="CHILD_SA_NOT_FOUND", proto=3, SPI=bytes(notify.SPI))],
                    encrypted=True)
                return
        try:
            chosen = select_proposal(w.decode_sa(sa), self.config.esp_proposals,
                                     prefer="configured", ignore_ke=True)
        except NoProposalChosen:
            self._respond(CREATE_CHILD_SA, message_id,
                          [w.IKEv2_Notify(type="NO_PROPOSAL_CHOSEN")], encrypted=True)
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
                          [w.IKEv2_Notify(type="TS_UNACCEPTABLE")], encrypted=True)
            return
        transport = bool(w.find_notifies(payloads, "USE_TRANSPORT_MODE"))
        mode = "transport" if transport and self.config.mode == "transport" else "tunnel"
        spi = self.allocate_spi()
        nonce_r = self.random(32)
        child = self._install_child(chosen, int.from_bytes(chosen.spi, "big"), mode,
                                    narrowed_r, narrowed_i, (bytes(nonce.nonce), nonce_r),
                                    exchange_initiator=False, inbound_spi=spi)
        reply = [w.build_sa_payload([chosen.with_(spi=spi.to_bytes(4, "big"))]),
                 w.IKEv2_Nonce(nonce=nonce_r),
                 w.build_ts_payload(True, [_wire_ts(t) for t in narrowed_i]),
                 w.build_ts_payload(False, [_wire_ts(t) for t in narrowed_r])]
        if mode == "transport":
            reply.insert(0, w.IKEv2_Notify(type="USE_TRANSPORT_MODE"))
        self._respond(CREATE_CHILD_SA, message_id, reply, encrypted=True)
        self._events.append(child)
        if rekey is not None:
            self._events.append(ChildSaRekeyed(rekey, spi))

    def _create_child_response(self, payloads: list, context: dict) -> None:
        self.pending = None
        if context.get("ike_rekey"):
            self._rekey_ike_response(payloads, context)
            return
        failures = [n for n in w.find_notifies(payloads) if int(n.type) < 16384]
        sa, nonce = _first(payloads, w.IKEv2_SA), _first(payloads, w.IKEv2_Nonce)
        if failures or sa is None or nonce is None:
            name = w.notify_name(failures[0]) if failures else "no SA or Nr"
            self._events.append(IkeSaFailed(f"CREATE_CHILD_SA refused: {name}",
                                            name if failures else None))
            return
        try:
            chosen = _responder_choice(sa, self.config.esp_proposals)
        except RemoteProtocolError as exc:
            self._events.append(IkeSaFailed(f"CREATE_CHILD_SA: {exc.reason}"))
            return
        tsi = _selectors(_first(payloads, w.IKEv2_TSi))
        tsr = _selectors(_first(payloads, w.IKEv2_TSr))
        if not tsi or not tsr:
            self._events.append(_unusable_selectors("CREATE_CHILD_SA"))
            return
        transport = bool(w.find_notifies(payloads, "USE_TRANSPORT_MODE"))
        child = self._install_child(chosen, int.from_bytes(chosen.spi, "big"),
                                    "transport" if transport else "tunnel", tsi, tsr,
                                    (context["nonce"], bytes(nonce.nonce)),
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
        payloads = [w.build_sa_payload([p.with_(spi=spi) for p in self.config.ike_proposals]),
                    w.IKEv2_Nonce(nonce=nonce), w.IKEv2_KE(group=ke.group, ke=ke.public_value)]
        self._request(CREATE_CHILD_SA, payloads, encrypted=True)
        self.pending.context = {"ike_rekey": True, "spi": spi, "ke": ke, "nonce": nonce}

    def _rekey_ike_request(self, message_id: int, payloads: list) -> None:
        sa, nonce = _first(payloads, w.IKEv2_SA), _first(payloads, w.IKEv2_Nonce)
        ke = _first(payloads, w.IKEv2_KE)
        if nonce is None or ke is None:
            self._respond(CREATE_CHILD_SA, message_id,
                          [w.IKEv2_Notify(type="INVALID_SYNTAX")], encrypted=True)
            return
        try:
            chosen = select_proposal(w.decode_sa(sa), self.config.ike_proposals,
                                     prefer="configured")
        except NoProposalChosen:
            self._respond(CREATE_CHILD_SA, message_id,
                          [w.IKEv2_Notify(type="NO_PROPOSAL_CHOSEN")], encrypted=True)
            return
        if chosen.ke_group != ke.group:
            self._respond(CREATE_CHILD_SA, message_id, [w.IKEv2_Notify(
                type="INVALID_KE_PAYLOAD", dh_group=chosen.ke_group)], encrypted=True)
            return
        own_ke = generate_key_exchange(chosen.ke_group, self.random)
        try:
            shared = own_ke.shared_secret(bytes(ke.ke))
        except InvalidKeyExchange as exc:
            self._respond(CREATE_CHILD_SA, message_id,
                          [w.IKEv2_Notify(type="INVALID_SYNTAX")], encrypted=True)
            raise RemoteProtocolError(f"bad KE payload in IKE rekey: {exc}") from None
        spi_r, nonce_r = self.random(8), self.random(32)
        self._respond(CREATE_CHILD_SA, message_id, [
            w.build_sa_payload([chosen.with_(spi=spi_r)]), w.IKEv2_Nonce(nonce=nonce_r),
            w.IKEv2_KE(group=own_ke.group, ke=own_ke.public_value)], encrypted=True)
        self._replace(chosen, bytes(chosen.spi), spi_r, bytes(nonce.nonce), nonce_r, shared,
                      new_initiator=False)

    def _rekey_ike_response(self, payloads: list, context: dict) -> None:
        failures = [n for n in w.find_notifies(payloads) if int(n.type) < 16384]
        sa, nonce = _first(payloads, w.IKEv2_SA), _first(payloads, w.IKEv2_Nonce)
        ke = _first(payloads, w.IKEv2_KE)
        if failures or sa is None or nonce is None or ke is None:
            name = w.notify_name(failures[0]) if failures else "no SA, Nr or KE"
            self._events.append(IkeSaFailed(f"IKE SA rekey refused: {name}",
                                            name if failures else None))
            return
        try:
            chosen = _responder_choice(sa, self.config.ike_proposals)
        except RemoteProtocolError as exc:
            self._events.append(IkeSaFailed(f"IKE SA rekey: {exc.reason}"))
            return
        shared = context["ke"].shared_secret(bytes(ke.ke))
        self._replace(chosen, context["spi"], bytes(chosen.spi), context["nonce"],
                      bytes(nonce.nonce), shared, new_initiator=True)
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
        self._request(INFORMATIONAL, [w.IKEv2_Delete(proto=3, SPI=[
            inbound_spi.to_bytes(4, "big")])], encrypted=True)

    def update_addresses(self, new_local: str, now_us: int = 0) -> None:
        """MOBIKE (RFC 4555 §3.5): the original initiator moved to ``new_local``; tell the
        responder with UPDATE_SA_ADDRESSES (and fresh NAT-D, §3.8) from there."""
        self.now_us = now_us
        if not self.initiator or not self.mobike:
            raise ValueError("only the original initiator of a MOBIKE IKE SA moves it")
        if self.state != "ESTABLISHED" or self.pending is not None:
            raise ValueError("one exchange at a time, on an established IKE SA")
        old_local = str(self.local)
        self.local = ipaddress.ip_address(new_local)
        self.local_port = 4500     # RFC 4555 §3.3: MOBIKE runs on 4500 after IKE_AUTH
        if self.remote_port == 500:
            self.remote_port = 4500
        self._request(INFORMATIONAL, [w.IKEv2_Notify(type="UPDATE_SA_ADDRESSES")]
                      + self._natd_notifies(), encrypted=True)
        self.pending.context = {"moved_from": old_local}

    def follow(self, local: str | None = None, remote: str | None = None, *,
               local_port: int | None = None, remote_port: int | None = None) -> None:
        """Move the SA's endpoints without an exchange: what the K bit asks of IKE when the
        mobility protocol, not IKE, tells us the care-of address changed (RFC 6275
        §11.7.3, §10.3.1; RFC 4877 §7.4). Both sides call it, each on its own word: the
        MN after the accepting BA, the HA on accepting the BU."""
        if local is not None:
            self.local = ipaddress.ip_address(local)
        if remote is not None:
            self.remote = ipaddress.ip_address(remote)
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
        if w.find_notifies(payloads, "AUTHENTICATION_FAILED"):   # §2.21.2: we were refused
            self._respond(INFORMATIONAL, message_id, [], encrypted=True)
            for child in list(self.children.values()):
                self._events.append(ChildSaDeleted(child.inbound_spi, child.outbound_spi,
                                                   True))
            self.children.clear()
            self.child = None
            self._fail("the initiator did not accept our authentication",
                       "AUTHENTICATION_FAILED")
            return
        if self.mobike and w.find_notifies(payloads, "UPDATE_SA_ADDRESSES"):
            old_remote = str(self.remote)
            if self._arrived_on == 4500:   # RFC 4555 §3.3: the SA lives on 4500 now
                self.local_port = 4500
            self.remote, self.remote_port = ipaddress.ip_address(self._last_src), \
                self._last_sport
            self._check_nat(payloads, self._last_src, self._last_sport)
            answer += self._natd_notifies()
            self._events.append(IkeSaMoved(str(self.local), old_remote, str(self.local),
                                           str(self.remote), self.local_port,
                                           self.remote_port, self.nat_detected))
        ike_delete = False
        for delete in (p for p in payloads if isinstance(p, w.IKEv2_Delete)):
            if delete.proto == 1:
                ike_delete = True
                continue
            spis = [int.from_bytes(bytes(spi), "big") for spi in (delete.SPI or [])]
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
                answer.append(w.IKEv2_Delete(proto=3, SPI=ours))
        self._respond(INFORMATIONAL, message_id, answer, encrypted=True)
        if ike_delete:
            self.state = "CLOSED"
            self._events.append(IkeSaDeleted(by_peer=True))

    def _auth_response(self, payloads: list) -> None:
        self.pending = None
        failures = [n for n in w.find_notifies(payloads) if int(n.type) < 16384]
        id_r = _first(payloads, w.IKEv2_IDr)
        if id_r is None:
            name = w.notify_name(failures[0]) if failures else "no IDr"
            self._fail(f"IKE_AUTH refused: {name}", name if failures else None)
            return
        try:
            self._verify_auth(id_r, _first(payloads, w.IKEv2_AUTH), False, payloads)
        except AuthenticationFailed as exc:
            self._reject_responder(exc.reason)
            return
        self.peer_id = (ID_NAMES.get(int(id_r.IDtype), str(id_r.IDtype)), _id_text(id_r))
        self.mobike = self.config.mobike and bool(w.find_notifies(payloads, "MOBIKE_SUPPORTED"))
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
        cp = _first(payloads, w.IKEv2_CP)
        if cp is not None:
            for name, values in w.decode_cp(cp).items():
                for value in values:
                    if value is not None:
                        event = AddressAssigned(str(name), value, self.peer_id)
                        self.assigned.append(event)
                        self._events.append(event)
        sa = _first(payloads, w.IKEv2_SA)
        if failures or sa is None:
            if failures:
                self._events.append(IkeSaFailed(
                    f"child SA refused: {w.notify_name(failures[0])}",
                    w.notify_name(failures[0])))
            return
        try:
            chosen = _responder_choice(sa, self.config.esp_proposals, ignore_ke=True)
        except RemoteProtocolError as exc:
            self._events.append(IkeSaFailed(f"child SA: {exc.reason}"))
            return
        tsi = _selectors(_first(payloads, w.IKEv2_TSi))
        tsr = _selectors(_first(payloads, w.IKEv2_TSr))
        if not tsi or not tsr:
            self._events.append(_unusable_selectors("IKE_AUTH"))
            return
        transport = bool(w.find_notifies(payloads, "USE_TRANSPORT_MODE"))
        self._install_child(chosen, int.from_bytes(chosen.spi, "big"),
                            "transport" if transport else "tunnel", tsi, tsr)
        self._events.append(self.child)

    def _reject_responder(self, reason: str) -> None:
        """The responder did not authenticate to us. It thinks the IKE SA is up: tell it
        with an INFORMATIONAL AUTHENTICATION_FAILED (RFC 7296 §2.21.2), so that neither
        side keeps an SA; sent once, not waited for."""
        message_id = self.next_request_id
        self.next_request_id += 1
        self._emit(self._build(INFORMATIONAL, [w.IKEv2_Notify(type="AUTHENTICATION_FAILED")],
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
        self._request(INFORMATIONAL, [w.IKEv2_Delete(proto=1, SPIsize=0, SPInum=0)],
                      encrypted=True)


# -- cookies (§2.6), computed without state by whoever answers IKE_SA_INIT -----------------


def make_cookie(secret: bytes, version: int, nonce_i: bytes, ip_i: str, spi_i: bytes) -> bytes:
    """Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>) (RFC 7296 §2.6)."""
    from cryptography.hazmat.primitives import hashes

    digest = hashes.Hash(hashes.SHA256())
    digest.update(nonce_i + ipaddress.ip_address(ip_i).packed + spi_i + secret)
    return version.to_bytes(4, "big") + digest.finalize()


def cookie_check(data: bytes, src: str, secret: bytes, version: int) -> bytes | None:
    """For an IKE_SA_INIT request: None if it carries our valid cookie, else the bytes of
    the response that asks for one. ``data`` must already be a valid IKE message."""
    message = w.decode_message(data)
    payloads = w.message_payloads(message)
    nonce = _first(payloads, w.IKEv2_Nonce)
    if nonce is None:
        return None          # the engine answers INVALID_SYNTAX
    expected = make_cookie(secret, version, bytes(nonce.nonce), src, bytes(message.init_SPI))
    offered = w.find_notifies(payloads, "COOKIE")
    if offered and bytes(offered[0].notify) == expected:
        return None
    return bytes(w.build_message(IKE_SA_INIT, [w.IKEv2_Notify(type="COOKIE",
                                                             notify=expected)],
                                 init_spi=bytes(message.init_SPI), message_id=0,
                                 initiator=False, response=True))


# -- helpers -------------------------------------------------------------------------------


def _first(payloads, cls):
    return next((p for p in payloads if isinstance(p, cls)), None)


def _id_text(id_payload) -> str:
    data = bytes(id_payload.ID)
    if int(id_payload.IDtype) in (1, 5):
        return str(ipaddress.ip_address(data))
    if int(id_payload.IDtype) == ID_TYPE_NUMBERS["der_asn1_dn"]:
        return data.hex()     # a DER Name; shown by its certificate's subject once verified
    return data.decode(errors="replace")


def _is_configured(id_payload, peer: tuple[str, str], configured: tuple[str, str]) -> bool:
    """Is the peer's ID the one configured? DNs compare as DER."""
    if configured[0] == "der_asn1_dn":
        try:
            return peer[0] == "der_asn1_dn" and \
                certs.name_der(configured[1]) == bytes(id_payload.ID)
        except ValueError:
            return False
    return peer == configured


def _ts(selector: Any) -> TrafficSelector | None:
    """A selector of the wire as a range, or None when it names none this engine can use:
    a starting address above the ending one (RFC 7296 §3.13.1: they are the smallest and
    the largest address included), or the OPAQUE ports 65535-0 (§3.13.1). Such a
    selector is narrowed away like a TS type we do not use, so a request left with no
    selector gets TS_UNACCEPTABLE (§2.9) instead of an exception."""
    try:
        return TrafficSelector(selector.start_address, selector.end_address,
                               selector.protocol, selector.start_port, selector.end_port)
    except ValueError:
        return None


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
    chosen = w.decode_sa(sa)
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
    return [ts for ts in map(_ts, w.decode_ts(payload)) if ts is not None]


def _wire_ts(ts: TrafficSelector):
    return w.traffic_selector((ts.start, ts.end), ts.protocol, (ts.start_port, ts.end_port))


__all__ = ["IkeSa", "Datagram", "Event", "IkeSaEstablished", "ChildSaEstablished",
           "ChildSaDeleted", "ChildSaRekeyed", "IkeSaRekeyed", "IkeSaMoved", "AddressAssigned", "IkeSaFailed",
           "IkeSaDeleted", "MessageDropped", "IkeSaSecrets"]
