"""The anti-replay window (RFC 4303 §3.4.3 and Appendix A)."""

from __future__ import annotations

import pytest

from mip6lab.errors import RemoteProtocolError
from mip6lab.ipsec.replay import ReplayError, ReplayWindow


def deliver(window: ReplayWindow, seq: int) -> None:
    """What the receiver does: check, (ICV verifies), accept."""
    window.check(seq)
    window.accept(seq)


def test_replay_error_is_bad_input():
    assert issubclass(ReplayError, RemoteProtocolError)


def test_first_packet_and_in_order():
    w = ReplayWindow(64)
    assert (w.top, w.bitmap) == (0, 0)
    deliver(w, 1)
    assert (w.top, w.bitmap) == (1, 1)
    for seq in range(2, 11):
        deliver(w, seq)
    assert w.top == 10
    assert w.bitmap == (1 << 10) - 1     # 10 .. 1 all seen


def test_first_packet_may_be_far_ahead():
    w = ReplayWindow(64)
    deliver(w, 1000)
    assert (w.top, w.bitmap) == (1000, 1)
    deliver(w, 999)                       # within the window, not yet seen
    assert w.bitmap == 0b11


def test_out_of_order_within_window():
    w = ReplayWindow(64)
    for seq in (5, 3, 4, 1, 2):
        deliver(w, seq)
    assert w.top == 5
    assert w.bitmap == 0b11111
    deliver(w, 70)                        # 7..70 is the window now
    deliver(w, 7)                         # the oldest number still inside
    assert w.bitmap >> 63 & 1


def test_duplicate_is_a_replay():
    w = ReplayWindow(64)
    for seq in (1, 2, 3):
        deliver(w, seq)
    for seq in (1, 2, 3):
        with pytest.raises(ReplayError, match=r"already received \(replay\)") as info:
            w.check(seq)
        assert info.value.kind == "replay"
        assert str(seq) in info.value.reason


def test_too_old_is_left_of_the_window():
    w = ReplayWindow(64)
    deliver(w, 100)                       # window: 37..100
    deliver(w, 37)
    with pytest.raises(ReplayError, match="left of the window") as info:
        w.check(36)
    assert info.value.kind == "left of the window"
    assert "37..100" in info.value.reason
    with pytest.raises(ReplayError, match="left of the window"):
        w.check(1)


@pytest.mark.parametrize("esn", [False, True])
def test_sequence_number_zero_refused(esn):
    """The counter starts at 1 (RFC 4303 §3.3.3): a (full) sequence number 0 is never
    sent -- with ESN too, where only the low 32 bits may be zero."""
    w = ReplayWindow(64, esn=esn)
    with pytest.raises(ReplayError, match="never sent") as info:
        w.check(0)
    assert info.value.kind == "sequence number 0"
    assert (w.top, w.bitmap) == (0, 0)


def test_esn_low_bits_zero_is_fine_above_the_first_subspace():
    w = ReplayWindow(64, esn=True)
    deliver(w, (1 << 32) - 1)
    deliver(w, 1 << 32)                   # high 1, low 0
    assert w.top == 1 << 32


@pytest.mark.parametrize("size", [32, 64, 128, 1024])
def test_window_sizes(size):
    w = ReplayWindow(size)
    last = size + 10
    for seq in range(1, last + 1):
        if seq == last - 5:
            continue                      # one gap, filled later
        deliver(w, seq)
    assert w.top == last
    assert w.bitmap < 1 << size           # the bitmap never grows past the window
    oldest = last - size + 1
    deliver(w, last - 5)                  # the gap: inside the window, accepted
    with pytest.raises(ReplayError, match="replay"):
        w.check(oldest)                   # inside, already seen
    with pytest.raises(ReplayError, match="left of the window"):
        w.check(oldest - 1)               # just outside
    deliver(w, last + size)               # a jump of a whole window clears the bitmap
    assert w.bitmap == 1
    with pytest.raises(ReplayError, match="left of the window"):
        w.check(last)


def test_window_zero_disables_anti_replay():
    w = ReplayWindow(0)
    deliver(w, 5)
    deliver(w, 5)                         # a replay: accepted, no window
    deliver(w, 1)                         # far behind: accepted
    assert w.top == 5
    with pytest.raises(ReplayError):      # but 0 is still never sent
        w.check(0)


def test_negative_size_rejected():
    with pytest.raises(ValueError):
        ReplayWindow(-1)


def test_check_changes_nothing():
    """Only accept() moves the window, so a packet whose ICV fails cannot (§3.4.3)."""
    w = ReplayWindow(64)
    deliver(w, 10)
    before = (w.top, w.bitmap)
    w.check(11)
    w.check(500)
    w.check(9)
    assert (w.top, w.bitmap) == before
    w.check(500)                          # still acceptable, nothing was recorded
    w.accept(500)
    assert w.top == 500


# -- ESN: Appendix A2.2 ---------------------------------------------------------------------

W = 64
HIGH = 5


def window_at(top: int, size: int = W) -> ReplayWindow:
    w = ReplayWindow(size, esn=True)
    w.top = top
    return w


def test_infer_high_without_esn_is_zero():
    w = ReplayWindow(64)
    w.top = 10
    assert w.infer_high(0xFFFFFFF0) == 0


@pytest.mark.parametrize("seq_low,expected", [
    (1000, HIGH),              # = Tl
    (990, HIGH),               # inside the window
    (1000 - W + 1, HIGH),      # = Bl, the window's bottom edge
    (2000, HIGH),              # ahead, same subspace
    (0xFFFFFFFF, HIGH),        # far ahead, same subspace
    (1000 - W, HIGH + 1),      # < Bl: taken as having wrapped into the next subspace
    (0, HIGH + 1),
])
def test_infer_high_case_a(seq_low, expected):
    """Case A: Tl >= W - 1, the window lies within one subspace."""
    w = window_at(HIGH << 32 | 1000)
    assert w.infer_high(seq_low) == expected


@pytest.mark.parametrize("seq_low,expected", [
    (3, HIGH + 1),             # wrap-around of the low 32 bits
    (0, HIGH + 1),
    (0xFFFFFFF5, HIGH),        # inside the window, before the wrap
    (0xFFFFFFF0 - W + 1, HIGH),        # = Bl
    (0xFFFFFFF0 - W, HIGH + 1),        # just below Bl
])
def test_infer_high_case_a_at_the_end_of_a_subspace(seq_low, expected):
    w = window_at(HIGH << 32 | 0xFFFFFFF0)
    assert w.infer_high(seq_low) == expected


@pytest.mark.parametrize("seq_low,expected", [
    (10, HIGH),                # = Tl
    (5, HIGH),                 # inside the window, this subspace
    (100, HIGH),               # ahead
    (0xFFFFFFF0, HIGH - 1),    # inside the window, previous subspace (>= Bl)
    ((10 - W + 1) & 0xFFFFFFFF, HIGH - 1),     # = Bl
    ((10 - W) & 0xFFFFFFFF, HIGH),             # just below Bl: ahead in this subspace
])
def test_infer_high_case_b(seq_low, expected):
    """Case B: Tl < W - 1, the window spans two subspaces."""
    w = window_at(HIGH << 32 | 10)
    assert w.infer_high(seq_low) == expected


def test_infer_high_case_b_in_the_first_subspace_never_goes_negative():
    w = window_at(3)
    assert w.infer_high(0xFFFFFFF0) == 0


def test_esn_across_a_wrap_of_the_low_32_bits():
    """Deliver across 2^32 with full sequence numbers built from the inferred high bits,
    then a late packet from before the wrap, then its replay."""
    w = ReplayWindow(64, esn=True)

    def receive(low: int) -> int:
        seq = w.infer_high(low) << 32 | low
        deliver(w, seq)
        return seq

    assert receive(0xFFFFFFFE) == 0xFFFFFFFE
    assert receive(0xFFFFFFFF) == 0xFFFFFFFF
    assert receive(1) == 1 << 32 | 1          # wrapped: high 1
    assert receive(0xFFFFFFF0) == 0xFFFFFFF0  # late, from before the wrap (Case B)
    assert w.top == 1 << 32 | 1
    with pytest.raises(ReplayError, match="replay"):
        w.check(w.infer_high(0xFFFFFFFF) << 32 | 0xFFFFFFFF)
    # Below the window's bottom the RFC guesses "ahead" (here: high 1), never "old":
    # the ICV, computed over the guessed high bits, is what refutes such a packet.
    assert w.infer_high(0xFFFFFF00) == 1
    w.check(1 << 32 | 0xFFFFFF00)
