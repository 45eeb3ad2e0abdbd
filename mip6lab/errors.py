"""Typed errors for bad input and protocol violations.

Following h11's split: :class:`RemoteProtocolError` and its children mean the packet
that arrived was bad (bad input from the wire -- it is dropped, traced and answered as
the protocol says); :class:`LocalProtocolError` means our own caller asked for something
the protocol forbids (a bug here, raised at once).
"""

from __future__ import annotations


class Mip6LabError(Exception):
    """Base class of mip6lab's own errors."""


class LocalProtocolError(Mip6LabError):
    """We were asked to do something the protocol or the topology does not allow."""


class RemoteProtocolError(Mip6LabError):
    """A packet from the wire cannot be accepted. ``reason`` goes into the trace."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedPacket(RemoteProtocolError):
    """The bytes do not parse as the header they claim to be (lengths, checksums)."""


class PacketDropped(RemoteProtocolError):
    """A well-formed packet that this node discards (no route, no listener, policy)."""
