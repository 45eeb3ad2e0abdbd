"""Proposals: what an SA payload offers and what the responder picks (RFC 7296 §2.7, §3.3).

A :class:`Proposal` is one Proposal substructure: a protocol (IKE or ESP), an ordered list
of :class:`Transform`\\ s (several of one type = alternatives, first preferred), and the
proposal number and SPI that go with it on the wire. Later code turns it into an SA
payload; this module reads and writes it in strongSwan's notation, so a config here can be
held next to a swanctl.conf::

    >>> p = parse_proposal("aes128-sha256-modp2048")
    >>> p.charon                       # as charon logs it
    'IKE:AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048'
    >>> str(parse_proposal("aes256gcm16-ecp256", "esp"))
    'aes256gcm16-ecp256'

strongSwan's rules (libstrongswan ``proposal.c``, ``check_proposal``) are followed:

- tokens are separated by ``-``; several of one kind are alternatives, in order of
  preference; the order of different kinds does not matter;
- IKE: with no ``prf*`` keyword, every integrity keyword adds the PRF of the same hash
  (``sha256`` -> ``prfsha256``); a PRF and a key exchange method are then mandatory;
- IKE and ESP: an encryption algorithm is mandatory; AEAD and classic ciphers cannot be
  mixed in one proposal; with AEAD ciphers the integrity algorithms are dropped (so
  ``aes256gcm16-sha256-ecp256`` is an AEAD proposal whose PRF is PRF_HMAC_SHA2_256), and
  an IKE proposal with a classic cipher needs an integrity algorithm;
- ESP: PRF keywords are dropped; a key exchange method is optional (PFS in
  CREATE_CHILD_SA); without ``esn``/``noesn`` the proposal gets "no ESN".

Selection (:func:`select_proposal`) is the responder's job: pick one proposal and, in it,
exactly one transform of each type present (RFC 7296 §2.7), or fail with
NO_PROPOSAL_CHOSEN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache, update_wrapper
from typing import TypeVar

from .errors import NoProposalChosen, ProposalError
from .transforms import (AUTH_NONE, ENCRYPTION, ESN_NAMES, INTEG_TO_PRF, INTEGRITY,
                         KE_NONE, KEY_EXCHANGE, NO_ESN, PRFS, EncrAlgorithm, HashAlgorithm,
                         KeAlgorithm, Protocol, TransformType, transform_name)

_T = TransformType
_R = TypeVar("_R")


@dataclass(frozen=True)
class Transform:
    """One Transform substructure: type, IANA id and, for variable-key ciphers, the Key
    Length attribute in bits (RFC 7296 §3.3.2, §3.3.5). Unknown ids are allowed."""

    type: TransformType | int
    id: int
    key_length: int | None = None

    def __post_init__(self) -> None:
        # a peer may send transform types we do not know: they stay plain ints
        known = _TRANSFORM_TYPES.get(self.type)
        object.__setattr__(self, "type", int(self.type) if known is None else known)

    @cached_property   # a value object: computed once
    def algorithm(self) -> EncrAlgorithm | HashAlgorithm | KeAlgorithm | None:
        """Our description of the algorithm, or None if we do not implement it."""
        table = {_T.ENCR: ENCRYPTION, _T.PRF: PRFS, _T.INTEG: INTEGRITY,
                 _T.KE: KEY_EXCHANGE}.get(self.type)
        algorithm = table.get(self.id) if table is not None else None
        if isinstance(algorithm, EncrAlgorithm) and self.key_length not in algorithm.key_sizes:
            return None
        return algorithm

    @cached_property
    def is_none(self) -> bool:
        """INTEG "NONE" (with AEAD) or KE "NONE" (no PFS): the same as leaving it out."""
        return (self.type == _T.INTEG and self.id == AUTH_NONE) or (
            self.type == _T.KE and self.id == KE_NONE)

    @cached_property   # a value object: computed once
    def supported(self) -> bool:
        if self.type == _T.ESN:
            return self.id in ESN_NAMES
        return self.algorithm is not None or self.is_none

    @property
    def name(self) -> str:
        """IANA's name: ``ENCR_AES_CBC (128)``, ``PRF_HMAC_SHA2_256``, ``Curve25519``."""
        return transform_name(self.type, self.id, self.key_length)

    @property
    def keyword(self) -> str:
        """strongSwan's keyword (``aes128``, ``prfsha256``, ``ecp384``, ``noesn``)."""
        if self.type == _T.ESN and self.id in ESN_NAMES:
            return ESN_NAMES[self.id][2]
        algorithm = self.algorithm
        if isinstance(algorithm, EncrAlgorithm):
            return algorithm.keyword(self.key_length or 0)
        if algorithm is not None:
            return algorithm.keyword
        return self.charon.lower()

    @property
    def charon(self) -> str:
        """charon's log name: ``AES_CBC_128``, ``HMAC_SHA2_256_128``, ``CURVE_25519``."""
        if self.type == _T.ESN and self.id in ESN_NAMES:
            return ESN_NAMES[self.id][1]
        algorithm = self.algorithm
        if algorithm is None and self.type == _T.ENCR and self.id in ENCRYPTION:
            algorithm = ENCRYPTION[self.id]  # known cipher, unusual key size
        if algorithm is None:
            name = f"UNKNOWN_{int(self.type)}_{self.id}"
        else:
            name = algorithm.charon
        return f"{name}_{self.key_length}" if self.key_length else name

    def __str__(self) -> str:
        return self.name


_TYPE_ORDER = (_T.ENCR, _T.PRF, _T.INTEG, _T.KE, _T.ESN)           # wire order here
_KEYWORD_ORDER = (_T.ENCR, _T.INTEG, _T.PRF, _T.KE, _T.ESN)        # strongSwan's order
_PROTOCOLS = {int(p): p for p in Protocol}


_RANK = {type_: rank for rank, type_ in enumerate(_TYPE_ORDER)}
_TRANSFORM_TYPES = {int(t): t for t in TransformType}


def memoized(function: Callable[[Proposal], _R]) -> Callable[[Proposal], _R]:
    """``function`` of a proposal's value (its protocol and transforms, not its number or
    SPI), kept on the proposal once computed: every copy :meth:`Proposal.with_` makes
    shares that memo, so the few configured proposals and the ones chosen from them are
    read once per run. (What ``lru_cache`` did, without hashing and comparing the proposal
    on every call.) An exception is not kept: it is raised every time."""
    def lookup(proposal: Proposal) -> _R:
        memo = proposal._memo
        try:
            return memo[function]
        except KeyError:
            value = memo[function] = function(proposal)
            return value
    return update_wrapper(lookup, function)


@lru_cache(maxsize=1024)
def _interned(transforms: tuple[Transform, ...]) -> tuple[Transform, ...]:
    """The first tuple seen equal to ``transforms``: equal proposals then hold the same
    tuple, and comparing them (as cache keys) is an identity test, not one per transform."""
    return transforms


@memoized
def _keyword(proposal: Proposal) -> str:
    """Proposal.keyword, by value (number and SPI are not part of it): every IKE SA names
    its proposal, and an SA's proposal is always one of the few configured ones."""
    return proposal._keyword()


def _type_rank(transform: Transform) -> int:
    """Known types in wire order, unknown ones after them by number."""
    rank = _RANK.get(transform.type)
    return len(_TYPE_ORDER) + int(transform.type) if rank is None else rank


def _unknown_types(transforms: Iterable[Transform]) -> list[Transform]:
    return [t for t in transforms if t.type not in _TYPE_ORDER]


@dataclass(frozen=True)
class Proposal:
    """One proposal: a protocol and its transforms, in order of preference per type.

    Transforms are kept grouped by type (ENCR, PRF, INTEG, KE, ESN), each group in the
    order given, so two spellings of one proposal compare equal. ``number`` (the Proposal
    Num) and ``spi`` (empty for IKE_SA_INIT, 4 bytes for ESP) travel with it but are not
    part of equality: equal proposals offer the same algorithms.
    """

    protocol: Protocol
    transforms: tuple[Transform, ...]
    number: int = field(default=1, compare=False)
    spi: bytes = field(default=b"", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "protocol", _PROTOCOLS.get(self.protocol) or
                           Protocol(self.protocol))   # the enum call: its ValueError
        ordered = _interned(tuple(sorted(self.transforms, key=_type_rank)))
        object.__setattr__(self, "transforms", ordered)
        # the transforms by type, read by every of_type(); made here, once per value
        # (with_() copies it along)
        grouped: dict[TransformType | int, list[Transform]] = {}
        for t in ordered:
            grouped.setdefault(t.type, []).append(t)
        state = self.__dict__
        state["_by_type"] = {type_: tuple(group) for type_, group in grouped.items()}
        state["_memo"] = {}      # see memoized(); shared by the copies with_() makes

    def __hash__(self) -> int:
        # the value (protocol and transforms; not number or SPI, like equality), hashed
        # once: proposals key the caches of selection, key lengths and names, and hashing
        # a tuple of transforms is a few microseconds each time
        state = self.__dict__
        value = state.get("_hash")
        if value is None:
            value = state["_hash"] = hash((self.protocol, self.transforms))
        return value

    @classmethod
    def from_transforms(cls, protocol: Protocol | int, transforms: Iterable[Transform],
                        number: int = 1, spi: bytes = b"") -> Proposal:
        """A proposal as decoded from the wire: no strongSwan rules applied."""
        return cls(Protocol(protocol), tuple(transforms), number, spi)

    # -- reading ------------------------------------------------------------------------
    def of_type(self, type_: TransformType) -> tuple[Transform, ...]:
        return self._by_type.get(type_, ())

    @property
    def encryption(self) -> tuple[Transform, ...]:
        return self.of_type(_T.ENCR)

    @property
    def prf(self) -> tuple[Transform, ...]:
        return self.of_type(_T.PRF)

    @property
    def integrity(self) -> tuple[Transform, ...]:
        return self.of_type(_T.INTEG)

    @property
    def ke(self) -> tuple[Transform, ...]:
        return self.of_type(_T.KE)

    @property
    def esn(self) -> tuple[Transform, ...]:
        return self.of_type(_T.ESN)

    @property
    def aead(self) -> bool:
        """Every encryption transform is a combined-mode (AEAD) cipher."""
        algorithms = [t.algorithm for t in self.encryption]
        return bool(algorithms) and all(isinstance(a, EncrAlgorithm) and a.aead
                                        for a in algorithms)

    @property
    def negotiated(self) -> bool:
        """At most one transform of each type: the shape of an accepted proposal."""
        types = [t.type for t in self.transforms]
        return len(types) == len(set(types))

    def one(self, type_: TransformType) -> Transform | None:
        """The single transform of this type (None if absent or "NONE"); an error if the
        proposal still offers alternatives (it has not been negotiated)."""
        found = [t for t in self.of_type(type_) if not t.is_none]
        if len(found) > 1:
            raise ProposalError(f"{self.keyword}: {len(found)} {type_.name} transforms; "
                                "a negotiated proposal has one")
        return found[0] if found else None

    @property
    def ke_group(self) -> int | None:
        """The (first) key exchange method offered, e.g. for the KE payload to send."""
        state = self.__dict__        # a value of the transforms: kept once computed
        if "_ke_group" not in state:
            groups = [t.id for t in self.ke if not t.is_none]
            state["_ke_group"] = groups[0] if groups else None
        return state["_ke_group"]

    # -- writing ------------------------------------------------------------------------
    @property
    def keyword(self) -> str:
        """strongSwan's notation (``aes256-sha256-modp2048``), the shortest that strongSwan
        reads back to this proposal: implied PRFs and the default "no ESN" are left out."""
        return _keyword(self)

    def _keyword(self) -> str:
        parts = []
        integ = [t for t in self.integrity if not t.is_none]
        implied_prfs = [INTEG_TO_PRF.get(t.id) for t in integ]
        for type_ in _KEYWORD_ORDER:
            chosen = [t for t in self.of_type(type_) if not t.is_none]
            if (type_ == _T.PRF and self.protocol == Protocol.IKE and not self.aead
                    and [t.id for t in chosen] == implied_prfs):
                continue
            if type_ == _T.ESN and [t.id for t in chosen] == [NO_ESN]:
                continue
            parts += [t.keyword for t in chosen]
        parts += [t.keyword for t in _unknown_types(self.transforms)]
        return "-".join(parts)

    @property
    def charon(self) -> str:
        """charon's log notation: ``IKE:AES_CBC_256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/
        MODP_2048``, ``ESP:AES_GCM_16_256/NO_EXT_SEQ``."""
        names = [t.charon for type_ in _KEYWORD_ORDER for t in self.of_type(type_)
                 if not t.is_none]
        names += [t.charon for t in _unknown_types(self.transforms)]
        return f"{self.protocol.name}:{'/'.join(names)}"

    def with_(self, *, number: int | None = None, spi: bytes | None = None) -> Proposal:
        """The same proposal with another number or SPI. A copy of this one's state (its
        fields are already normalized, and what is kept on it -- the hash, the transforms
        by type, the memo of :func:`memoized` (shared, not copied) -- does not depend on
        number or SPI): what ``replace`` gives, without the checks again."""
        new = object.__new__(type(self))
        state = new.__dict__
        state.update(self.__dict__)
        if number is not None:
            state["number"] = number
        if spi is not None:
            state["spi"] = spi
        return new

    def __str__(self) -> str:
        return self.keyword


# ============================================================================== parsing
def _keywords() -> dict[str, Transform]:
    words: dict[str, Transform] = {}
    for algorithm in ENCRYPTION.values():
        for bits in algorithm.key_sizes:
            words[algorithm.keyword(bits)] = Transform(_T.ENCR, algorithm.id, bits)
            if algorithm.aead:  # strongSwan also spells the ICV in bits: aes128gcm128
                words[algorithm.keyword(bits).replace("gcm16", "gcm128")] = Transform(
                    _T.ENCR, algorithm.id, bits)
    words["aes"] = words["aes128"]
    for algorithm in PRFS.values():
        words[algorithm.keyword] = Transform(_T.PRF, algorithm.id)
    for algorithm in INTEGRITY.values():
        words[algorithm.keyword] = Transform(_T.INTEG, algorithm.id)
        words[algorithm.keyword.replace("sha", "sha2_")] = Transform(_T.INTEG, algorithm.id)
    for algorithm in KEY_EXCHANGE.values():
        words[algorithm.keyword] = Transform(_T.KE, algorithm.id)
    words["x25519"] = words["curve25519"]
    for esn_id, (_, _, keyword) in ESN_NAMES.items():
        words[keyword] = Transform(_T.ESN, esn_id)
    return words


KEYWORDS: dict[str, Transform] = _keywords()


def _protocol(protocol: Protocol | str | int) -> Protocol:
    if isinstance(protocol, str):
        try:
            return Protocol[protocol.upper()]
        except KeyError:
            raise ProposalError(f"unknown protocol {protocol!r} (ike or esp)") from None
    return Protocol(protocol)


def parse_proposal(text: str, protocol: Protocol | str = "ike") -> Proposal:
    """One proposal in strongSwan's notation (``aes256gcm16-prfsha384-ecp384``)."""
    proto = _protocol(protocol)
    if proto == Protocol.AH:
        raise ProposalError("AH proposals are not supported")
    tokens = [token.strip().lower() for token in text.strip().split("-")]
    if not text.strip() or any(not token for token in tokens):
        raise ProposalError(f"empty algorithm in proposal {text!r}")
    transforms: list[Transform] = []
    for token in tokens:
        try:
            transform = KEYWORDS[token]
        except KeyError:
            raise ProposalError(f"algorithm {token!r} not recognized in {text!r}; "
                                f"known: {', '.join(sorted(KEYWORDS))}") from None
        if transform not in transforms:
            transforms.append(transform)

    def has(type_: TransformType) -> bool:
        return any(t.type == type_ for t in transforms)

    if proto == Protocol.IKE:
        if not has(_T.PRF):  # the integrity algorithms name the PRF
            transforms += [Transform(_T.PRF, INTEG_TO_PRF[t.id]) for t in transforms
                           if t.type == _T.INTEG and t.id in INTEG_TO_PRF]
        if not has(_T.PRF):
            raise ProposalError(f"a PRF algorithm is mandatory in IKE proposals: {text!r}")
        if not has(_T.KE):
            raise ProposalError(f"a DH group is mandatory in IKE proposals: {text!r}")
        if has(_T.ESN):
            raise ProposalError(f"ESN is not a transform of IKE proposals: {text!r}")
    else:
        transforms = [t for t in transforms if t.type != _T.PRF]
    ciphers = [ENCRYPTION[t.id] for t in transforms if t.type == _T.ENCR]
    if not ciphers:
        raise ProposalError(f"an encryption algorithm is mandatory in {proto.name} "
                            f"proposals: {text!r}")
    if any(c.aead for c in ciphers) and not all(c.aead for c in ciphers):
        raise ProposalError("classic and combined-mode (AEAD) encryption algorithms can't "
                            f"be contained in the same {proto.name} proposal: {text!r}")
    if all(c.aead for c in ciphers):
        transforms = [t for t in transforms if t.type != _T.INTEG]
    elif proto == Protocol.IKE and not has(_T.INTEG):
        raise ProposalError("an integrity algorithm is mandatory in IKE proposals with "
                            f"classic (non-AEAD) encryption algorithms: {text!r}")
    if proto == Protocol.ESP and not has(_T.ESN):
        transforms.append(Transform(_T.ESN, NO_ESN))
    return Proposal(proto, tuple(transforms))


#: What the keyword ``default`` stands for, as in strongSwan (its ``default`` is a list of
#: an AEAD proposal and a classic one, every algorithm it implements in each): the same
#: shape, with what this stack implements, strongest first within each type; so an
#: initiator offering ``default`` meets a responder restricted to any one of them
#: (RFC 7296 §1.2: a responder that wants another DH group answers INVALID_KE_PAYLOAD and
#: the initiator retries with it). RFC 8247 §2.4 and RFC 8221 §5 put these on its lists.
DEFAULT_PROPOSALS: dict[Protocol, tuple[str, ...]] = {
    Protocol.IKE: (
        "aes256gcm16-aes128gcm16-prfsha256-prfsha384-prfsha512-curve25519-ecp256-ecp384-"
        "modp2048",
        "aes256-aes128-sha256-sha384-sha512-prfsha256-prfsha384-prfsha512-curve25519-"
        "ecp256-ecp384-modp2048"),
    Protocol.ESP: ("aes256gcm16-aes128gcm16", "aes256-aes128-sha256-sha384-sha512"),
}


def parse_proposals(text: str | Sequence[str], protocol: Protocol | str = "ike"
                    ) -> list[Proposal]:
    """Several proposals (comma-separated as in swanctl.conf, or a list), numbered 1..n;
    the item ``default`` stands for :data:`DEFAULT_PROPOSALS` (as strongSwan's does)."""
    if isinstance(text, str):
        # every node of a lab is configured with the same few texts: parsed once, the
        # (immutable) proposals shared by every configuration that names them
        return list(_parsed_proposals(text, protocol))
    return _parse_proposals(text, protocol)


@lru_cache(maxsize=256)
def _parsed_proposals(text: str, protocol: Protocol | str) -> tuple[Proposal, ...]:
    return tuple(_parse_proposals(text, protocol))


def _parse_proposals(text: str | Sequence[str], protocol: Protocol | str) -> list[Proposal]:
    items = text.split(",") if isinstance(text, str) else list(text)
    proto = _protocol(protocol)
    expanded = [one for item in items for one in
                (DEFAULT_PROPOSALS.get(proto, ()) if item.strip().lower() == "default"
                 else (item,))]
    return [parse_proposal(item, protocol).with_(number=n)
            for n, item in enumerate(expanded, start=1)]


def format_proposal(proposal: Proposal) -> str:
    """strongSwan's notation of ``proposal`` (same as ``proposal.keyword``)."""
    return proposal.keyword


def _charon_names() -> dict[str, Transform]:
    names: dict[str, Transform] = {}
    for word, transform in KEYWORDS.items():
        names.setdefault(transform.charon, transform)
    return names


_CHARON_NAMES = _charon_names()


def parse_charon_proposal(text: str) -> Proposal:
    """A proposal as charon logs it (``IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519``),
    taken as is (no strongSwan rules: it is already complete)."""
    protocol, sep, rest = text.strip().partition(":")
    if not sep:
        raise ProposalError(f"no protocol prefix in {text!r}")
    transforms = []
    for name in rest.split("/"):
        try:
            transforms.append(_CHARON_NAMES[name])
        except KeyError:
            raise ProposalError(f"unknown charon algorithm name {name!r} in {text!r}") from None
    return Proposal(_protocol(protocol), tuple(transforms))


# ============================================================================ selection
def _effective(proposal: Proposal, ignore_ke: bool
               ) -> dict[TransformType | int, list[Transform]]:
    """The types a proposal really offers: "NONE" entries dropped (RFC 7296 §3.3.3: INTEG
    NONE with AEAD, KE NONE without PFS are the same as leaving the type out)."""
    types: dict[TransformType | int, list[Transform]] = {}
    for t in proposal.transforms:
        if t.is_none or (ignore_ke and t.type == _T.KE):
            continue
        types.setdefault(t.type, []).append(t)
    return types


def _match(preferred: dict[TransformType | int, list[Transform]],
           other: dict[TransformType | int, list[Transform]]) -> list[Transform] | None:
    if set(preferred) != set(other) or any(type_ not in _TYPE_ORDER for type_ in preferred):
        return None  # RFC 7296 §3.3.6: a proposal with an unknown type is rejected
    chosen = []
    for type_ in _TYPE_ORDER:
        if type_ not in preferred:
            continue
        pick = next((t for t in preferred[type_] if t in other[type_] and t.supported), None)
        if pick is None:
            return None
        chosen.append(pick)
    return chosen


#: selections are memoized by value up to this many transforms offered: an SA payload of
#: the peer's is one of the few its configuration makes, and what it may send is bounded
_MEMO_TRANSFORMS = 64


def select_proposal(offered: Sequence[Proposal], acceptable: Sequence[Proposal], *,
                    prefer: str = "offered", ignore_ke: bool = False) -> Proposal:
    """The responder's choice (RFC 7296 §2.7): one proposal, one transform of each type.

    ``offered`` is the peer's SA payload, ``acceptable`` our configuration. With
    ``prefer="offered"`` the first offered proposal that one of ours accepts wins, and in
    it the peer's first acceptable transform of each type (the initiator lists them in
    order of preference); ``prefer="configured"`` walks our list first (strongSwan's
    default, ``prefer_configured_proposals = yes``). Both sides must offer the same
    transform types. ``ignore_ke`` drops KE transforms on both sides first: in IKE_AUTH
    there is no KE payload, so a D-H group in SAi2 cannot be used (RFC 7296 §1.2).

    The result keeps the offered proposal's number and SPI (the reply must echo the
    number, §3.3.1). No match: :class:`NoProposalChosen`.
    """
    if prefer not in ("offered", "configured"):
        raise ValueError("prefer is 'offered' or 'configured'")
    offered, acceptable = tuple(offered), tuple(acceptable)
    if sum([len(p.transforms) for p in offered]) <= _MEMO_TRANSFORMS:
        found = _selection(offered, acceptable, prefer, ignore_ke)
    else:
        found = _selection.__wrapped__(offered, acceptable, prefer, ignore_ke)
    if found is not None:
        index, chosen = found
        theirs = offered[index]
        if theirs.number == chosen.number and theirs.spi == chosen.spi:
            return chosen          # an immutable value: no copy needed
        return chosen.with_(number=theirs.number, spi=theirs.spi)
    raise NoProposalChosen(
        "no acceptable proposal: offered " + ", ".join(p.charon for p in offered)
        + "; configured " + ", ".join(p.charon for p in acceptable))


@lru_cache(maxsize=256)
def _selection(offered: tuple[Proposal, ...], acceptable: tuple[Proposal, ...], prefer: str,
               ignore_ke: bool) -> tuple[int, Proposal] | None:
    """(index of the chosen offered proposal, the choice), or None; a function of the
    proposals' values only (number and SPI are the caller's to put back)."""
    pairs = ([(i, a) for i in range(len(offered)) for a in acceptable]
             if prefer == "offered"
             else [(i, a) for a in acceptable for i in range(len(offered))])
    for index, ours in pairs:
        theirs = offered[index]
        if theirs.protocol != ours.protocol:
            continue
        t_types, o_types = _effective(theirs, ignore_ke), _effective(ours, ignore_ke)
        chosen = (_match(t_types, o_types) if prefer == "offered"
                  else _match(o_types, t_types))
        if chosen is not None:
            choice = Proposal(theirs.protocol, tuple(chosen))
            hash(choice)       # cached on it, so on every copy with_() makes
            return index, choice
    return None
