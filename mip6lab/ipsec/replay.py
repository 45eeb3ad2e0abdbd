"""The receiver's anti-replay window (RFC 4303 §3.4.3 and Appendix A).

The window remembers the highest sequence number accepted (its right edge, ``top``)
and, as a bitmap, which of the ``size`` numbers below it were seen. A packet is checked
twice: :meth:`ReplayWindow.check` before the ICV is verified (cheap rejection of
duplicates and packets left of the window), and :meth:`ReplayWindow.accept` only after
the ICV verified -- so a forged packet can never move the window (§3.4.3).

With extended sequence numbers only the low 32 bits travel; :meth:`infer_high` guesses
the high 32 bits from the window's position as Appendix A2.2 says, and the ICV check
(which covers the high bits) confirms or refutes the guess.
"""

from __future__ import annotations

from ..errors import RemoteProtocolError

MASK32 = 0xFFFFFFFF
#: the bitmap mask of each window size in use, one int object per size (not per SA)
_MASKS: dict[int, int] = {}


class ReplayError(RemoteProtocolError):
    """A sequence number the window refuses: zero, replayed, or left of the window.

    ``kind`` is a short stable name for counters ("replay", "left of the window",
    "sequence number 0"); ``reason`` the full sentence with the numbers.
    """

    def __init__(self, reason: str, kind: str = "replay") -> None:
        super().__init__(reason)
        self.kind = kind


class ReplayWindow:
    """Anti-replay state of one inbound SA."""

    __slots__ = ("size", "esn", "top", "bitmap", "mask")

    def __init__(self, size: int = 64, esn: bool = False) -> None:
        if size < 0:
            raise ValueError("window size must not be negative")
        self.size = size
        self.esn = esn
        self.top = 0          # highest sequence number accepted (full 64 bits with ESN)
        self.bitmap = 0       # bit i set: top - i was accepted
        self.mask = _MASKS.setdefault(size, (1 << size) - 1)

    def infer_high(self, seq_low: int) -> int:
        """High 32 bits of a received ESN sequence number (RFC 4303 Appendix A2.2)."""
        if not self.esn:
            return 0
        top_low, top_high = self.top & MASK32, self.top >> 32
        bottom_low = (top_low - self.size + 1) & MASK32
        if top_low >= self.size - 1:       # Case A: the window lies in one subspace
            return top_high if seq_low >= bottom_low else top_high + 1
        # Case B: the window spans two subspaces
        if seq_low >= bottom_low:
            return max(top_high - 1, 0)  # nothing lies below subspace 0
        return top_high

    def check(self, seq: int) -> None:
        """Refuse ``seq`` (full value) if the window says so; change nothing."""
        if seq == 0:   # the full (64-bit with ESN) value: the counter starts at 1
            raise ReplayError("sequence number 0 is never sent (RFC 4303 §3.3.3)",
                              "sequence number 0")
        if self.size == 0 or seq > self.top:
            return
        offset = self.top - seq
        if offset >= self.size:
            raise ReplayError(f"sequence number {seq} is left of the window "
                              f"({self.top - self.size + 1}..{self.top})",
                              "left of the window")
        if self.bitmap >> offset & 1:
            raise ReplayError(f"sequence number {seq} was already received (replay)",
                              "replay")

    def accept(self, seq: int) -> None:
        """Record ``seq`` as received; call only after its ICV verified."""
        if self.size == 0:
            self.top = max(self.top, seq)
            return
        if seq > self.top:
            shift = seq - self.top
            self.bitmap = ((self.bitmap << shift) | 1) & ((1 << self.size) - 1) \
                if shift < self.size else 1
            self.top = seq
        else:
            self.bitmap |= 1 << (self.top - seq)

    def __repr__(self) -> str:
        return f"<ReplayWindow size={self.size} top={self.top} bitmap={self.bitmap:#x}>"
