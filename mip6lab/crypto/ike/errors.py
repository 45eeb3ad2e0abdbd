"""Typed errors of the IKEv2 crypto layer.

They follow the house split (:mod:`mip6lab.errors`): what a *peer* sent us that cannot be
accepted is a :class:`~mip6lab.errors.RemoteProtocolError` (the engine drops it, traces it
and answers as RFC 7296 says); what our own *caller or configuration* asked for that cannot
be done is a :class:`~mip6lab.errors.LocalProtocolError`. Each remote error names the
notify an IKE engine answers with, where RFC 7296 gives one (``notify``, §3.10.1).
"""

from __future__ import annotations

from ...errors import LocalProtocolError, MalformedPacket, RemoteProtocolError
from ..esp_suites import IntegrityError as _EspIntegrityError

# Notify Message Types (RFC 7296 §3.10.1) named by these errors.
INVALID_SYNTAX = 7
NO_PROPOSAL_CHOSEN = 14
INVALID_KE_PAYLOAD = 17
AUTHENTICATION_FAILED = 24


class IntegrityError(RemoteProtocolError, _EspIntegrityError):
    """The ICV of an Encrypted payload did not verify (RFC 7296 §3.14, RFC 5282 §5.2).

    Forged, corrupted, or protected with other keys. RFC 7296 §2.21.2: such a message is
    dropped silently (no notify). It is also an ``esp_suites.IntegrityError``, so code that
    handles "the ICV failed" for ESP catches it for IKE too.
    """

    notify = None


class MalformedEncryptedPayload(MalformedPacket):
    """The Encrypted payload is too short, not a whole number of blocks, or its pad length
    points outside the plaintext. Checked only after the ICV verified (or, for lengths that
    make the ICV impossible to locate, before it)."""

    notify = INVALID_SYNTAX


class InvalidKeyExchange(RemoteProtocolError):
    """A peer's KE public value is unusable: wrong length, out of range (MODP), not a point
    on the curve (ECP), or a low-order point (Curve25519: all-zero shared secret).
    RFC 7296 §3.4 / RFC 6989: the exchange fails; INVALID_SYNTAX is the answer for a
    request."""

    notify = INVALID_SYNTAX


class NoProposalChosen(RemoteProtocolError):
    """None of the peer's proposals is acceptable (RFC 7296 §2.7)."""

    notify = NO_PROPOSAL_CHOSEN


class AuthenticationFailed(RemoteProtocolError):
    """The AUTH payload does not verify (RFC 7296 §2.15, §2.21.2)."""

    notify = AUTHENTICATION_FAILED


class ProposalError(LocalProtocolError, ValueError):
    """A proposal string (strongSwan notation) cannot be parsed or breaks strongSwan's rules
    (``a PRF algorithm is mandatory in IKE proposals`` ...)."""


class UnsupportedTransform(LocalProtocolError, ValueError):
    """A transform we have no implementation for was asked to do crypto (a negotiated
    proposal can only contain transforms we support, so this is a caller's bug)."""


__all__ = [
    "AUTHENTICATION_FAILED", "INVALID_KE_PAYLOAD", "INVALID_SYNTAX", "NO_PROPOSAL_CHOSEN",
    "AuthenticationFailed", "IntegrityError", "InvalidKeyExchange",
    "MalformedEncryptedPayload", "NoProposalChosen", "ProposalError",
    "UnsupportedTransform",
]
