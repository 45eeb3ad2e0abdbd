"""notebooks/04-k-bit.ipynb in a real browser: the K bit toggled in the dashboard's what-if,
and what the ladder shows at the Binding Acknowledgement of the first handover.

The walk, on the notebook's first dashboard (``handover``), once per value of K:

* the what-if's ``k_bit`` drop-down set, *rebuild* clicked: the message line says
  "rebuilt handover ... k_bit=K" and the position goes back before the first event;
* "next BU/BA" pressed until the home agent's BA of the first handover (t > 5 s, when the
  scenario moves the MN to visit2): the inspector opens it from ESP;
* the ladder's marks around that BA: with K=1 the home agent's kernel answers a MIGRATE that
  moved both SAs to the new care-of address ("K=1 2 SAs moved", RFC 4877 §7.4, the MIGRATE
  draft); with K=0 no mark says an SA moved with K=1, and the BA comes later, after IKE ran
  again from the new care-of address.

Each value of K once, starting with the one the notebook did not leave, so that each
rebuild is a toggle the student makes; each value checks the other (a ladder that always,
or never, showed the MIGRATE would fail one).

Run it alone:  python3 -m pytest tests/browser/test_k_bit_browser.py -s
"""

from __future__ import annotations

import re
import statistics

import pytest

from .driver import (BINDING_ACK, EXPECT_TIMEOUT_MS, KERNEL_TIMEOUT_MS, POSITION, Walk,
                     open_notebook, run_all_cells)

pytestmark = pytest.mark.browser

NOTEBOOK = "04-k-bit.ipynb"
FIRST_MOVE = 5.0         # the handover scenario moves the MN to visit2 at t = 5 s
MOST_PRESSES = 24        # "next BU/BA" stops at every hop: BU and BA of two registrations


def _rebuild(walk: Walk, dash, k_bit: int) -> None:
    from playwright.sync_api import expect

    dash.locator(".mip6lab-option-k_bit select").first.select_option(label=str(k_bit))
    # a plain click: the position line need not change (the cursor may be at -1 already)
    dash.locator(".mip6lab-rebuild").first.click()
    expect(dash.locator(".mip6lab-whatif-message").first,
           f"the what-if message after the rebuild with k_bit={k_bit}").to_contain_text(
        re.compile(rf"rebuilt handover .*k_bit={k_bit}"), timeout=EXPECT_TIMEOUT_MS)
    index, _total, position = walk.position()
    assert index == -1, f"a rebuild starts before the first event: {position!r}"


def _ba_after_first_handover(walk: Walk, dash):
    dash.locator(".mip6lab-next-kind select").first.select_option(label="BU/BA")
    return walk.next_until(
        lambda s: s.node == "ha" and BINDING_ACK.search(s.decrypted) is not None
        and float(POSITION.search(s.position).group(3)) > FIRST_MOVE,
        "BA of the first handover", most=MOST_PRESSES)


def _ladder_labels(dash) -> list[str]:
    return dash.locator(".mip6lab-ladder [data-event]").evaluate_all(
        "marks => marks.map(m => m.getAttribute('aria-label') || '')")


def test_k_bit_toggle_shows_the_migrate(page, jupyter_lab, artifacts_dir, capsys):
    from playwright.sync_api import expect

    assert (jupyter_lab.root_dir / NOTEBOOK).exists(), f"notebooks/{NOTEBOOK} is missing"
    open_notebook(page, jupyter_lab.notebook_url(NOTEBOOK))
    run_all_cells(page)
    dash = page.locator(".mip6lab-dashboard").first
    expect(dash, "no .mip6lab-dashboard rendered").to_be_visible(timeout=KERNEL_TIMEOUT_MS)
    expect(dash.locator(".mip6lab-option-k_bit select").first,
           "the first dashboard of 04 has no k_bit what-if").to_be_attached(
        timeout=EXPECT_TIMEOUT_MS)
    walk = Walk(page, dash)
    seen = {}
    # each rebuild changes K, so that its message ("rebuilt handover ... k_bit=K": the
    # options changed) is new; the notebook's own cells may have left either value
    current = int(dash.locator(".mip6lab-option-k_bit select").first.input_value())
    for k_bit in (1 - current, current):
        _rebuild(walk, dash, k_bit)
        ba, presses = _ba_after_first_handover(walk, dash)
        assert "ESP" in ba.summary, f"K={k_bit}: the BA should be inside ESP: {ba.summary!r}"
        labels = _ladder_labels(dash)
        assert any(label.startswith(f"#{ba.index} ") for label in labels), \
            f"K={k_bit}: the ladder does not draw the current BA #{ba.index}"
        moved = [label for label in labels
                 if "MIGRATE" in label and re.search(r"K=1 [1-9]\d* SAs? moved", label)]
        seen[k_bit] = (ba, presses, moved)
        print(f"[browser] K={k_bit}: the BA of the first handover {ba.position.strip()} "
              f"after {presses} presses; MIGRATE marks that moved SAs: {len(moved)}")
        if k_bit == 1:
            assert moved, ("K=1: the ladder around the BA of the first handover shows no "
                           "MIGRATE that moved the SAs; its marks:\n  " + "\n  ".join(labels))
            assert all(int(label.split()[0][1:]) < ba.index for label in moved), \
                "the MIGRATE comes before the BA it makes possible"
        else:
            assert not moved, f"K=0: no SA should move with K=1: {moved}"
    # K=0 runs IKE again from the new care-of address before its BU: the BA comes later
    t = {k: float(POSITION.search(ba.position).group(3)) for k, (ba, _p, _m) in seen.items()}
    assert t[0] > t[1], f"the K=0 BA ({t[0]} s) should come after the K=1 BA ({t[1]} s)"

    shot = artifacts_dir / "k-bit.png"
    dash.locator(".mip6lab-ladder").first.scroll_into_view_if_needed()
    page.screenshot(path=str(shot))
    values = [ms for _what, ms in walk.latencies]
    with capsys.disabled():
        print(f"\n[browser] 04-k-bit: BA of the first handover at t = {t[1]:.6f} s with K=1, "
              f"{t[0]:.6f} s with K=0; {len(values)} clicks, median "
              f"{statistics.median(values):.0f} ms, max {max(values):.0f} ms; screenshot {shot}")
