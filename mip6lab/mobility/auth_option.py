"""The ``auth-option`` security mode: Binding Updates and Acknowledgements authenticated
by RFC 4285 instead of IPsec/IKEv2 -- the simpler framework the MEXT talk argued for.

What a mobile node and its home agent share here is a *mobility security association*
(RFC 4285 §5.1): "a mobility SPI, a key, an authentication algorithm, and the replay
protection mechanism in use" -- SPI >= 256, a 16-byte key, HMAC_SHA1, and timestamps
(§6) with a "close enough" window of 7 s by default. The home agent keeps one per
mobile node in a :class:`MobilitySecurityAssociationStore`, found by SPI (the option
names it) and by MN-NAI (RFC 4283: the identity the binding cache authorizes).

There is no key exchange: the SA is configured at both ends out of band, and so is the
home address. **HoA assignment**: statically configured at the mobile node, and bound
to its MN-NAI in the home agent's store. RFC 4285 and RFC 4283 define no message that
asks for or assigns a home address (IKEv2's CFG_REQUEST has no counterpart here), so a
HoA chosen by the HA would need a protocol this mode does not have; and the binding of
NAI to HoA is what lets the HA refuse a BU for another MN's HoA (the check RFC 4877
§4.2 makes with the PAD, made with the store: status 129, as the binding cache does).

The messages (RFC 4285 Figure 1): the BU carries the MN-ID option, the replay
protection option and, last, the MN-HA authentication option; so does the BA. The
home agent, in §5.1.1, §5.3 and §6's order:

=============================================  ======================================
what it finds                                  what it does
=============================================  ======================================
no MN-HA option (§5), a malformed one          silent discard
an SPI it has no SA for (§5.1.1, §5.3)         silent discard ("MUST discard the BU")
a wrong authenticator (§5.1.1)                 BA 146 MIPV6-AUTH-FAIL
no MN-NAI, or another NAI than the SA's        BA 146 (the MN has not authenticated
(§4: "MUST use the MN-NAI option")             as the identity it names)
no replay protection option, policy needs it   BA 145 MIPV6-MESG-ID-REQD (§6)
a timestamp not close enough or not greater    BA 144 MIPV6-ID-MISMATCH, with the
than every accepted one (§6)                   replay option: the BU's low 32 bits, the
                                               HA's own time of day above (§6)
then the binding cache's own checks            e.g. 129 for another MN's home address
=============================================  ======================================

Every refusal is a typed :class:`AuthOptionError` and a trace event; none touches the
binding cache. The mobile node checks the BA the same way, matches its timestamp to a
BU it sent (§6: else "silently discards the BA"), and on 144 adjusts its clock to the
HA's and lets the next retransmission carry the new time.

No IKE runs, the K bit is never set (there is no key management connection to move,
RFC 6275 §11.7.1), and the tunnel and the payload are unprotected, as RFC 4285
deployments are -- unless ``payload`` is given: then, as a what-if, the payload goes in
a *manually keyed* ESP tunnel SA pair (RFC 4877 §6 style: SPDADD and ADD through the
key engine, MIGRATE when the care-of address changes, no K bit).

**The seam.** Mobility never reads a key: it hands each message to the security side
(``msa``, the mobility SA store with its keys) -- VERIFY a received BU or BA (the store
looks the SA up by SPI, checks the authenticator and the timestamp, and answers with
the SA's identity and bound home address, which is what the binding cache's
authorization needs, so no separate look-up follows) and SIGN one to send. Each
request and each answer is a trace event of kind ``seam`` with sender and receivers,
as in :mod:`mip6lab.mobility.coupling`: two operations per side and registration,
eight events. Note what that measures: here every signalling *message* crosses (the
options are built and checked by mobility), while in the ``ipsec`` mode the ESP
processing of BU and BA is below the seam and only *state changes* cross (SPDADD,
MIGRATE, PAD look-ups, IKE requests).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scapy.packet import Packet

from ..errors import MalformedPacket, RemoteProtocolError
from ..ipsec import (BYPASS, PROTECT, IPsecTemplate, KeyMessage, MigrateRequest,
                     SecurityAssociation, SecurityPolicy, Selectors)
from ..net.node import Node
from ..wire.auth import (MobilityAuthentication, add_authentication, ntp_seconds,
                         ntp_timestamp, read_authentication)
from .constants import SECOND_US, BindingAckStatus
from .coupling import PAYLOAD_REQID, payload_selectors

IPv6 = ipaddress.IPv6Address
SECURITY_MODES = ("ipsec", "auth-option")
MOBILITY = "mip6d"
#: the security side of this mode's seam: the mobility SA store and its keys
STORE = "msa"
#: RFC 4285 §5.1: "A default value of 7 seconds SHOULD be used. This value SHOULD be
#: greater than 3 seconds."
DEFAULT_CLOSE_ENOUGH_US = 7 * SECOND_US
MIN_CLOSE_ENOUGH_US = 3 * SECOND_US
#: NTP time of the lab clock's zero: 2009-07-27 00:00 UTC, the first day of IETF 75
#: (Stockholm), where the MEXT talk was given. The simulated clock counts from there.
LAB_EPOCH_NTP_SECONDS = 3_457_641_600
#: one microsecond (the lab clock's resolution) in NTP fraction units: the bits below
#: it are drawn from the lab's random source (§6)
_FRACTION_PER_US = (1 << 32) // SECOND_US
#: RFC 4285 §8: the status codes of the authentication protocol
MIPV6_ID_MISMATCH = BindingAckStatus.MIPV6_ID_MISMATCH
MIPV6_MESG_ID_REQD = BindingAckStatus.MIPV6_MESG_ID_REQD
MIPV6_AUTH_FAIL = BindingAckStatus.MIPV6_AUTH_FAIL
STATUS_NAMES = {144: "MIPV6-ID-MISMATCH", 145: "MIPV6-MESG-ID-REQD", 146: "MIPV6-AUTH-FAIL"}


def check_security_mode(value: str) -> str:
    if value not in SECURITY_MODES:
        raise ValueError(f"security is one of {', '.join(SECURITY_MODES)}, not {value!r}")
    return value


# -- errors ---------------------------------------------------------------------------------


class AuthOptionError(RemoteProtocolError):
    """A BU or BA that RFC 4285 refuses. ``status``: the BA the HA answers with (None:
    discarded silently)."""

    status: BindingAckStatus | None = None


class MissingAuthentication(AuthOptionError):
    """No MN-HA authentication option where the SA requires one (§5)."""


class UnknownMobilitySpi(AuthOptionError):
    """The option names an SPI no SA has (§5.1.1: the HA "MUST discard the BU")."""


class AuthenticatorMismatch(AuthOptionError):
    """The authenticator is not First(96, HMAC_SHA1(key, Mobility Data)) (§5.1.1)."""

    status = MIPV6_AUTH_FAIL


class IdentifierMismatch(AuthOptionError):
    """No MN-NAI, or one that is not the SA's (§4, RFC 4283)."""

    status = MIPV6_AUTH_FAIL


class ReplayProtectionRequired(AuthOptionError):
    """No replay protection option, and the SA requires timestamps (§6)."""

    status = MIPV6_MESG_ID_REQD


class TimestampInvalid(AuthOptionError):
    """A timestamp not close enough to the HA's clock, or not greater than every one
    accepted before: stale or replayed (§6)."""

    status = MIPV6_ID_MISMATCH


class TimestampMismatch(AuthOptionError):
    """A BA whose timestamp is not one the MN sent (§6: "silently discards the BA")."""


# -- the mobility security association (RFC 4285 §5.1) ------------------------------------------


@dataclass
class MobilitySecurityAssociation:
    """RFC 4285 §5.1's shared-key-based mobility SA between one MN and its HA.

    ``last_timestamp``: at the HA, the greatest timestamp accepted from this MN; at the
    MN, the last one it sent (§6: each "MUST be greater than that used in any previous
    successful Binding Update").
    """

    spi: int
    key: bytes
    nai: str
    home_address: IPv6
    algorithm: str = "HMAC_SHA1"
    replay_protection: str = "timestamp"
    close_enough_us: int = DEFAULT_CLOSE_ENOUGH_US
    last_timestamp: int | None = None
    verified: int = 0
    refused: int = 0

    def __post_init__(self) -> None:
        self.home_address = ipaddress.IPv6Address(self.home_address)
        if not 256 <= self.spi <= 0xFFFFFFFF:
            raise ValueError(f"mobility SPI {self.spi}: 0-255 are reserved (RFC 4285 §5.1)")
        if len(self.key) != 16:
            raise ValueError(f"the key is 16 octets (RFC 4285 §5.1), not {len(self.key)}")
        if self.algorithm != "HMAC_SHA1":
            raise ValueError("RFC 4285 §5.1: the authentication algorithm is HMAC_SHA1")
        if self.replay_protection not in ("timestamp", "sequence"):
            raise ValueError("replay protection is by timestamp (§6) or sequence number")
        if self.close_enough_us <= MIN_CLOSE_ENOUGH_US:
            raise ValueError("RFC 4285 §6: the close-enough window SHOULD be greater "
                             "than 3 seconds")

    def authenticator(self, mobility_data: bytes) -> bytes:
        """First(96, HMAC_SHA1(key, Mobility Data)) (§5.1)."""
        return hmac.new(self.key, mobility_data, hashlib.sha1).digest()[:12]

    def authentic(self, message: MobilityAuthentication) -> bool:
        return hmac.compare_digest(self.authenticator(message.mobility_data()),
                                   message.authenticator)

    def row(self) -> dict[str, Any]:
        return {"spi": f"0x{self.spi:08x}", "nai": self.nai,
                "home_address": str(self.home_address), "algorithm": self.algorithm,
                "replay": self.replay_protection,
                "close_enough_s": self.close_enough_us / SECOND_US,
                "last_timestamp_s": "-" if self.last_timestamp is None
                else f"{ntp_seconds(self.last_timestamp) - LAB_EPOCH_NTP_SECONDS:.6f}",
                "verified": self.verified, "refused": self.refused}


class MobilitySecurityAssociationStore:
    """The home agent's mobility SAs, one per MN, by SPI and by MN-NAI."""

    def __init__(self, associations: list[MobilitySecurityAssociation] = ()) -> None:
        self._by_spi: dict[int, MobilitySecurityAssociation] = {}
        self._by_nai: dict[str, MobilitySecurityAssociation] = {}
        for sa in associations:
            self.add(sa)

    def add(self, sa: MobilitySecurityAssociation) -> None:
        if sa.spi in self._by_spi:
            raise ValueError(f"mobility SPI 0x{sa.spi:08x} is already in the store")
        if sa.nai in self._by_nai:
            raise ValueError(f"{sa.nai} already has a mobility SA")
        if any(other.home_address == sa.home_address for other in self._by_spi.values()):
            raise ValueError(f"{sa.home_address} is already another MN's home address")
        self._by_spi[sa.spi] = sa
        self._by_nai[sa.nai] = sa

    def by_spi(self, spi: int) -> MobilitySecurityAssociation | None:
        return self._by_spi.get(spi)

    def by_nai(self, nai: str) -> MobilitySecurityAssociation | None:
        return self._by_nai.get(nai)

    def __len__(self) -> int:
        return len(self._by_spi)

    def __iter__(self):
        return iter(self._by_spi.values())

    def table(self) -> list[dict[str, Any]]:
        return [sa.row() for sa in self._by_spi.values()]


@dataclass(frozen=True)
class ManualPayloadKeys:
    """The what-if: the payload in a manually keyed ESP tunnel SA pair (RFC 4877 §6),
    configured at both ends like the mobility SA. SPIs per direction, keys per suite."""

    spi_to_home_agent: int
    spi_to_mobile_node: int
    key_to_home_agent: bytes
    key_to_mobile_node: bytes
    suite: str = "aes128gcm16"


# -- what both ends share: the seam and the payload what-if ------------------------------------


class _AuthOption:
    k_bit = False                    # no key management connection to move (§11.7.1)

    def __init__(self, node: Node, home_agent: str, payload: ManualPayloadKeys | None) -> None:
        self.node = node
        self.home_agent = ipaddress.IPv6Address(home_agent)
        self.home_agent4 = None
        self.payload = payload
        self.socket = node.ipsec.engine.open(MOBILITY) if payload is not None else None

    @property
    def protect_payload(self) -> bool:
        return self.payload is not None

    def _cross(self, sender: str, receiver: str, summary: str, **data: Any) -> None:
        self.node.trace.emit(self.node.name, "auth-option", "seam",
                             f"{sender} → {receiver}: {summary}", sender=sender,
                             receivers=[receiver], message=summary.split(" ")[0], **data)

    def _ask(self, summary: str, **data: Any) -> None:
        self._cross(MOBILITY, STORE, summary, **data)

    def _answer(self, summary: str, **data: Any) -> None:
        self._cross(STORE, MOBILITY, summary, **data)

    def _announce(self, summary: str, **data: Any) -> None:
        self.node.announce("auth-option", summary, **data)

    # -- the manually keyed payload SA pair (the what-if) ---------------------------------------

    def _install_payload(self, home_address: IPv6, care_of_address: IPv6, *,
                         at_home_agent: bool) -> None:
        keys = self.payload
        local, remote = (self.home_agent, care_of_address) if at_home_agent \
            else (care_of_address, self.home_agent)
        # BU and BA stay outside the tunnel SA: they authenticate themselves (§5)
        mh = Selectors.make(f"{local if at_home_agent else home_address}/128",
                            f"{home_address if at_home_agent else self.home_agent}/128", "mh")
        if not self.node.ipsec.spd.find(selectors=mh):
            self.socket.send(KeyMessage("SPDADD", policy=SecurityPolicy(
                mh, BYPASS, name=f"mip6-mh-bypass-{home_address}")))
        self.socket.send(KeyMessage("SPDADD", policy=SecurityPolicy(
            payload_selectors(home_address, at_home_agent=at_home_agent), PROTECT,
            IPsecTemplate("tunnel", local, remote, PAYLOAD_REQID),
            name=f"mip6-payload-{home_address}")))
        out_spi, out_key, in_spi, in_key = (
            (keys.spi_to_mobile_node, keys.key_to_mobile_node,
             keys.spi_to_home_agent, keys.key_to_home_agent) if at_home_agent else
            (keys.spi_to_home_agent, keys.key_to_home_agent,
             keys.spi_to_mobile_node, keys.key_to_mobile_node))
        for spi, direction, src, dst, key in ((out_spi, "out", local, remote, out_key),
                                              (in_spi, "in", remote, local, in_key)):
            self.socket.send(KeyMessage("ADD", sa=SecurityAssociation(
                spi, direction, src, dst, keys.suite, key, b"", mode="tunnel",
                reqid=PAYLOAD_REQID)))

    def _move_payload(self, home_address: IPv6, old: IPv6, new: IPv6, *,
                      at_home_agent: bool) -> None:
        """The SA pair's outer endpoints follow the CoA: MIGRATE without K (no IKE)."""
        pair = (lambda coa: (self.home_agent, coa)) if at_home_agent \
            else (lambda coa: (coa, self.home_agent))
        self.socket.send(KeyMessage(
            "MIGRATE", selectors=payload_selectors(home_address, at_home_agent=at_home_agent),
            migrate=[MigrateRequest(*pair(old), *pair(new), "tunnel", PAYLOAD_REQID)],
            k_bit=False))

    def _remove_payload(self, home_address: IPv6, *, at_home_agent: bool) -> None:
        selectors = payload_selectors(home_address, at_home_agent=at_home_agent)
        for policy in self.node.ipsec.spd.find(selectors=selectors):
            self.socket.send(KeyMessage("SPDDELETE", policy_index=policy.index))
        for sa in [sa for sa in self.node.ipsec.sad if sa.reqid == PAYLOAD_REQID]:
            self.socket.send(KeyMessage("DELETE", spi=sa.spi, direction=sa.direction,
                                        dst=sa.dst))


# -- the home agent ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BindingUpdateVerdict:
    """What the HA's security side says of one BU.

    ``error`` None: authentic and fresh, the binding cache decides (``identity`` is the
    NAI). Else ``error.status`` None: discard silently; a status: answer with a BA of
    that status, signed with ``sa``, the replay option carrying ``reply_timestamp``.
    """

    identity: str | None
    sa: MobilitySecurityAssociation | None
    message: MobilityAuthentication | None
    error: AuthOptionError | None = None
    reply_timestamp: int | None = None
    home_addresses: tuple = ()

    @property
    def status(self) -> BindingAckStatus | None:
        return self.error.status if self.error is not None else None


class HomeAgentAuthOption(_AuthOption):
    """The home agent's side: the store, the BU's verification, the BA's signature; and
    what the binding cache asks of security (the home addresses of an identity).

    It answers the home agent where :class:`~mip6lab.mobility.coupling.HomeAgentCoupling`
    does, so :class:`~mip6lab.mobility.home_agent.HomeAgent` drives either.
    """

    def __init__(self, node: Node, home_agent: str, store: MobilitySecurityAssociationStore,
                 *, payload: ManualPayloadKeys | None = None,
                 require_replay_protection: bool = True) -> None:
        super().__init__(node, home_agent, payload)
        self.store = store
        self.require_replay_protection = require_replay_protection
        self.payload_protected: dict[IPv6, bool] = {}
        self._tunnel_ends: dict[IPv6, IPv6] = {}
        #: the verdict of the BU being answered (set by the home agent around its
        #: processing, so that the BA is signed and the authorization answered with it)
        self.answering: BindingUpdateVerdict | None = None

    def _now_seconds(self) -> float:
        return LAB_EPOCH_NTP_SECONDS + self.node.sim.now_us / SECOND_US

    def verify_binding_update(self, packet: bytes) -> BindingUpdateVerdict:
        """RFC 4285 §5.1.1, §5.3 and §6 in order (see the module's table)."""
        try:
            message = read_authentication(packet)
        except MalformedPacket as exc:
            return BindingUpdateVerdict(None, None, None, MissingAuthentication(
                f"RFC 4285 options refused: {exc.reason}"))
        if message is None or message.mh_type != 5:
            return BindingUpdateVerdict(None, None, message, MissingAuthentication(
                "Binding Update without an MN-HA authentication option "
                "(RFC 4285 §5: silently discarded)"))
        self._ask(f"VERIFY BU seq {message.sequence_number} for {message.home_address} "
                  f"with SPI 0x{message.spi:08x}", spi=message.spi)
        sa = self.store.by_spi(message.spi)
        if sa is None:
            self._answer(f"NO SA with SPI 0x{message.spi:08x}", spi=message.spi)
            return BindingUpdateVerdict(None, None, message, UnknownMobilitySpi(
                f"no mobility SA with SPI 0x{message.spi:08x}: BU discarded "
                "(RFC 4285 §5.1.1)"))
        error = self._check(sa, message)
        self._answer(f"AUTHENTIC {sa.nai}, home address {sa.home_address}"
                     if error is None else f"{STATUS_NAMES[int(error.status)]}",
                     spi=sa.spi, status=None if error is None else int(error.status))
        reply = message.timestamp
        if isinstance(error, TimestampInvalid):
            # §6: "copies only the low-order 32 bits into the BA, and supplies the
            # high-order 32 bits from its own time of day"
            reply = (int(self._now_seconds()) << 32) | (message.timestamp & 0xFFFFFFFF)
        if error is None:
            sa.verified += 1
            if message.timestamp is not None:
                sa.last_timestamp = message.timestamp
        else:
            sa.refused += 1
        return BindingUpdateVerdict(sa.nai if error is None else None, sa, message, error,
                                    reply, (sa.home_address,) if error is None else ())

    def _check(self, sa: MobilitySecurityAssociation,
               message: MobilityAuthentication) -> AuthOptionError | None:
        if not sa.authentic(message):
            return AuthenticatorMismatch(
                f"authenticator of the BU for {message.home_address} does not verify "
                f"with SPI 0x{sa.spi:08x} (RFC 4285 §5.1.1)")
        if message.nai != sa.nai:
            return IdentifierMismatch(
                f"MN-NAI {message.nai!r} is not {sa.nai!r}, the identity of SPI "
                f"0x{sa.spi:08x} (RFC 4285 §4, RFC 4283)")
        if message.timestamp is None:
            if self.require_replay_protection and sa.replay_protection == "timestamp":
                return ReplayProtectionRequired(
                    "no replay protection option, and the SA requires timestamps "
                    "(RFC 4285 §6)")
            return None
        skew = ntp_seconds(message.timestamp) - self._now_seconds()
        if abs(skew) * SECOND_US > sa.close_enough_us:
            return TimestampInvalid(
                f"timestamp {skew:+.3f} s from the home agent's clock, more than "
                f"{sa.close_enough_us / SECOND_US:g} s (RFC 4285 §6): stale")
        if sa.last_timestamp is not None and message.timestamp <= sa.last_timestamp:
            return TimestampInvalid(
                f"timestamp not greater than the last accepted one "
                f"({ntp_seconds(message.timestamp) - ntp_seconds(sa.last_timestamp):+.6f} s,"
                " RFC 4285 §6): replayed")
        return None

    def sign_binding_acknowledgement(self, packet: bytes | Packet,
                                     verdict: BindingUpdateVerdict) -> bytes:
        """§5.1.1: "The Home Agent MUST include this option in the BA if it received
        this option in the corresponding BU"; §6: and the replay option with it."""
        sa = verdict.sa
        self._ask(f"SIGN BA with SPI 0x{sa.spi:08x}", spi=sa.spi)
        signed = add_authentication(packet, sa.spi, sa.authenticator, nai=sa.nai,
                                    timestamp=verdict.reply_timestamp)
        self._answer(f"AUTHENTICATOR for SPI 0x{sa.spi:08x}", spi=sa.spi)
        return bytes(signed)

    # -- what the binding cache and the home agent ask ----------------------------------------

    def home_addresses(self, identity: str) -> list:
        """The home addresses the store binds to ``identity`` (the MN-NAI): those of the
        VERIFY answer for the BU being processed, else a question to the store."""
        verdict = self.answering
        if verdict is not None and verdict.identity == identity:
            return list(verdict.home_addresses)
        self._ask(f"HOME ADDRESSES of {identity}", identity=identity)
        sa = self.store.by_nai(identity)
        addresses = [sa.home_address] if sa is not None else []
        self._answer(f"{identity} → {', '.join(map(str, addresses)) or 'nothing'}",
                     identity=identity)
        return addresses

    def binding_registered(self, entry) -> None:
        """A binding was created or moved: the what-if's payload SA pair follows it."""
        if self.payload is None or entry.care_of_address is None \
                or entry.care_of_address == entry.home_address:
            return
        hoa, coa = entry.home_address, entry.care_of_address
        old = self._tunnel_ends.get(hoa)
        if old is None:
            self._install_payload(hoa, coa, at_home_agent=True)
        elif old != coa:
            self._move_payload(hoa, old, coa, at_home_agent=True)
        self._tunnel_ends[hoa] = coa
        self.payload_protected[hoa] = True

    def binding_deleted(self, hoa: IPv6) -> None:
        if self.payload_protected.pop(hoa, False):
            self._tunnel_ends.pop(hoa, None)
            self._remove_payload(hoa, at_home_agent=True)

    def binding_moved(self, hoa, identity, old, new, k: bool) -> None:
        """Never with K (this mode does not set it); nothing of IKE to move."""

    def discard_ike(self, identity: str, address) -> None:
        """No IKE SA exists in this mode: nothing to discard."""

    def bind_ipv4_home_address(self, identity: str, address) -> None:
        raise RemoteProtocolError("auth-option does not cover DSMIP6's IPv4 home address")

    def table(self) -> list[dict[str, Any]]:
        return self.store.table()


# -- the mobile node -----------------------------------------------------------------------------


class MobileNodeAuthOption(_AuthOption):
    """The mobile node's side: its SA and its configured home address; the BU's
    signature and timestamp, the BA's verification.

    It answers the mobile node where :class:`~mip6lab.mobility.coupling.
    MobileNodeCoupling` does, so :class:`~mip6lab.mobility.mobile_node.MobileNode`
    drives either. ``clock_offset_us``: how far this node's time of day is from the
    home agent's (0: both keep the lab's time; a test skews it to see §6's 144).
    """

    ike_exchanges_started = 0

    def __init__(self, node: Node, home_agent: str, sa: MobilitySecurityAssociation, *,
                 home_prefix: str, payload: ManualPayloadKeys | None = None,
                 clock_offset_us: int = 0) -> None:
        super().__init__(node, home_agent, payload)
        self.sa = sa
        self.configured_prefix = ipaddress.IPv6Network(home_prefix)
        if sa.home_address not in self.configured_prefix:
            raise ValueError(f"{sa.home_address} is not in the home prefix {home_prefix}")
        self.clock_offset_us = clock_offset_us
        self.home_address: IPv6 | None = None
        self.home_prefix: ipaddress.IPv6Network | None = None
        self.ready = False
        self.on_ready: list[Callable[[], None]] = []
        self.sent: deque[int] = deque(maxlen=32)     # timestamps of the recent BUs
        self._tunnel_end: IPv6 | None = None

    # -- what the mobile node asks (the coupling's interface) -----------------------------------

    def start(self, care_of_address) -> None:
        """No bootstrap exchange: the home address is configured (see the module)."""
        self.home_address, self.home_prefix = self.sa.home_address, self.configured_prefix
        self._announce(f"home address {self.home_address} configured with mobility SPI "
                       f"0x{self.sa.spi:08x} (RFC 4285: no IKE)")
        self.ready = True
        for listener in list(self.on_ready):
            listener()

    def ike_survives(self, new_coa) -> bool:
        return False                       # K stays clear: there is no IKE SA

    def before_binding_update(self, new_coa) -> bool:
        return True                        # nothing to renegotiate: the BU goes now

    def after_binding_acknowledgement(self, new_coa, k: bool) -> None:
        if self.payload is None or self.home_address is None:
            return
        new_coa = ipaddress.ip_address(new_coa)
        if new_coa == self.home_address:
            return
        if self._tunnel_end is None:
            self._install_payload(self.home_address, new_coa, at_home_agent=False)
        elif self._tunnel_end != new_coa:
            self._move_payload(self.home_address, self._tunnel_end, new_coa,
                               at_home_agent=False)
        self._tunnel_end = new_coa

    def returned_home(self) -> None:
        if self.payload is not None and self._tunnel_end is not None:
            self._remove_payload(self.home_address, at_home_agent=False)
            self._tunnel_end = None

    # -- the messages ------------------------------------------------------------------------

    def _timestamp(self) -> int:
        """Now in NTP format (§6), strictly greater than the last one sent."""
        now = LAB_EPOCH_NTP_SECONDS + (self.node.sim.now_us + self.clock_offset_us) / SECOND_US
        value = ntp_timestamp(now, self.node.sim.random.randrange(_FRACTION_PER_US))
        if self.sa.last_timestamp is not None and value <= self.sa.last_timestamp:
            value = self.sa.last_timestamp + 1
        self.sa.last_timestamp = value
        return value

    def sign_binding_update(self, packet: bytes | Packet) -> bytes:
        """The BU with MN-ID, replay protection and MN-HA options (RFC 4285 Figure 1)."""
        timestamp = self._timestamp()
        self.sent.append(timestamp)
        self._ask(f"SIGN BU with SPI 0x{self.sa.spi:08x}", spi=self.sa.spi)
        signed = add_authentication(packet, self.sa.spi, self.sa.authenticator,
                                    nai=self.sa.nai, timestamp=timestamp)
        self._answer(f"AUTHENTICATOR for SPI 0x{self.sa.spi:08x}", spi=self.sa.spi)
        return bytes(signed)

    def verify_binding_acknowledgement(self, packet: bytes) -> bool:
        """Check a BA (§5.1.1, §6). Returns True when the binding update list should
        process it; False after a 144 (the clock is adjusted, the retransmission
        follows). Raises :class:`AuthOptionError` for a BA to discard silently."""
        try:
            message = read_authentication(packet)
        except MalformedPacket as exc:
            raise MissingAuthentication(f"RFC 4285 options refused: {exc.reason}") from None
        if message is None:
            raise MissingAuthentication("Binding Acknowledgement without an MN-HA "
                                        "authentication option (RFC 4285 §5)")
        if message.spi != self.sa.spi:
            raise UnknownMobilitySpi(f"BA with SPI 0x{message.spi:08x}, ours is "
                                     f"0x{self.sa.spi:08x}")
        self._ask(f"VERIFY BA seq {message.sequence_number} with SPI 0x{self.sa.spi:08x}",
                  spi=self.sa.spi)
        authentic = self.sa.authentic(message)
        self._answer("AUTHENTIC" if authentic else "AUTH-FAIL", spi=self.sa.spi)
        if not authentic:
            self.sa.refused += 1
            raise AuthenticatorMismatch("BA authenticator does not verify (RFC 4285 §5.1.1)")
        if message.nai is not None and message.nai != self.sa.nai:
            raise IdentifierMismatch(f"BA for MN-NAI {message.nai!r}, we are {self.sa.nai!r}")
        status = message.mh[6]
        if status == MIPV6_ID_MISMATCH:
            low = None if message.timestamp is None else message.timestamp & 0xFFFFFFFF
            if low is None or low not in {t & 0xFFFFFFFF for t in self.sent}:
                raise TimestampMismatch("144 whose timestamp answers no BU we sent")
            # §6: "the Mobile Node MUST adjust its timestamp": to the HA's seconds
            ours = (LAB_EPOCH_NTP_SECONDS * SECOND_US + self.node.sim.now_us
                    + self.clock_offset_us) // SECOND_US
            self.clock_offset_us += ((message.timestamp >> 32) - ours) * SECOND_US
            self.sa.last_timestamp = None
            self._announce(f"144 MIPV6-ID-MISMATCH: clock adjusted by "
                           f"{(message.timestamp >> 32) - ours:+d} s to the home agent's",
                           clock_offset_us=self.clock_offset_us)
            return False
        if message.timestamp not in self.sent:
            raise TimestampMismatch("BA timestamp is not one of our BUs' (RFC 4285 §6)")
        self.sa.verified += 1
        return True

    def table(self) -> list[dict[str, Any]]:
        return [self.sa.row()]
