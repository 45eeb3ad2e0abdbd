"""The dashboard of notebooks/00-start.ipynb in a real browser.

JupyterLab (mip6lab.testing.jupyter) serves a temporary copy of notebooks/; Debian's
chromium, driven by Playwright, opens 00-start.ipynb, runs all its cells from the Run
menu and drives the dashboard through its DOM contract (the CSS classes the widgets set):

* ``.mip6lab-reset`` / ``-step`` / ``-back`` / ``-next`` buttons, the ``.mip6lab-next-kind``
  drop-down, the ``.mip6lab-position`` line ("event 142 / 2935 · t = 0.087898 s ...");
* the ladder ``.mip6lab-ladder`` (SVG, one ``[data-event]`` mark per event drawn, the current
  one ``.current``; a click selects that event);
* the inspector ``.mip6lab-inspector`` (``.mip6lab-summary``, ``details.mip6lab-layer``,
  ``.mip6lab-hexdump``, ``.mip6lab-decrypted``);
* the tables ``.mip6lab-panel-<node>-<table>``.

The walk: reset; next BU/BA until the MN's Binding Update (inside ESP: the inspector's
decrypted block shows it) -- the HA's binding cache is empty; next BU/BA until the HA's
Binding Acknowledgement -- the cache has the MN's home address; back one event; a click on
the BU's row of the ladder goes back to the BU. The time from each click to the position
line changing is measured in the page and printed, and a screenshot is saved (see
conftest.py: ``$MIP6LAB_ARTIFACTS`` or build/artifacts/browser).

Run it alone:  python3 -m pytest -m browser -s
"""

from __future__ import annotations

import statistics
import time

import pytest

from .driver import (BINDING_ACK, BINDING_UPDATE, EXPECT_TIMEOUT_MS, KERNEL_TIMEOUT_MS, Walk,
                     open_notebook, run_all_cells)

pytestmark = pytest.mark.browser

NOTEBOOK = "00-start.ipynb"
HOME_ADDRESS = "2001:db8:0:1::1001"

#: the DOM contract, checked at once so a mismatch is reported in one message
CONTRACT = [".mip6lab-step", ".mip6lab-back", ".mip6lab-next", ".mip6lab-reset",
            ".mip6lab-next-kind select", ".mip6lab-position", ".mip6lab-ladder svg",
            ".mip6lab-ladder [data-event]", ".mip6lab-inspector", ".mip6lab-summary",
            ".mip6lab-panel-ha-binding_cache"]


def test_dashboard_home_registration(page, jupyter_lab, artifacts_dir, capsys):
    from playwright.sync_api import expect

    started = time.perf_counter()
    assert (jupyter_lab.root_dir / NOTEBOOK).exists(), f"notebooks/{NOTEBOOK} is missing"
    open_notebook(page, jupyter_lab.notebook_url(NOTEBOOK))
    opened = time.perf_counter()
    run_all_cells(page)
    ran = time.perf_counter()

    dash = page.locator(".mip6lab-dashboard").first
    expect(dash, "no .mip6lab-dashboard rendered").to_be_visible(timeout=KERNEL_TIMEOUT_MS)
    expect(dash.locator(".mip6lab-ladder svg").first,
           "no SVG in .mip6lab-ladder").to_be_attached(timeout=EXPECT_TIMEOUT_MS)
    absent = [s for s in CONTRACT if not dash.locator(s).count()]
    assert not absent, f"the dashboard lacks these parts of the DOM contract: {absent}"
    walk = Walk(page, dash)

    # the notebook's own cells moved the cursor (to the end of the run): start over
    reset = walk.click(dash.locator(".mip6lab-reset").first, "reset")
    assert reset.index == -1, f"reset should go before the first event: {reset.position!r}"
    dash.locator(".mip6lab-next-kind select").first.select_option(label="BU/BA")

    # 1. the MN's Binding Update, inside ESP: the inspector opens it
    bu, presses = walk.next_until(
        lambda s: s.node == "mn" and s.decrypted.startswith("Decrypted")
        and BINDING_UPDATE.search(s.decrypted) is not None, "Binding Update from mn")
    print(f"[browser] the BU: {bu.position.strip()} after {presses} presses; {bu.summary}")
    assert "ESP" in bu.summary, f"the BU should be inside ESP on the wire: {bu.summary!r}"
    layers = dash.locator(".mip6lab-inspector details.mip6lab-layer summary")
    for name in ("IPv6", "ESP"):
        expect(layers.filter(has_text=name).first,
               f"no details.mip6lab-layer summary naming {name} at the BU").to_be_attached()
    expect(dash.locator(".mip6lab-inspector .mip6lab-hexdump").first,
           "no .mip6lab-hexdump at the BU").to_be_attached()
    cache = dash.locator(".mip6lab-panel-ha-binding_cache").first
    expect(cache, "ha's binding cache at the BU should read 'empty'").to_contain_text(
        "empty", timeout=EXPECT_TIMEOUT_MS)
    expect(cache.locator("tr", has_text=HOME_ADDRESS),
           "ha's binding cache has a row for the HoA before the BA").to_have_count(0)

    # 2. the HA's Binding Acknowledgement: by then the binding cache has the MN's HoA
    ba, presses = walk.next_until(
        lambda s: BINDING_ACK.search(s.decrypted) is not None, "Binding Acknowledgement")
    print(f"[browser] the BA: {ba.position.strip()} after {presses} presses; {ba.summary}")
    assert ba.node == "ha", f"the BA should be sent by ha, not {ba.node!r}"
    assert ba.index > bu.index
    expect(cache.locator("tr", has_text=HOME_ADDRESS).first,
           f"ha's binding cache at the BA (#{ba.index}) has no row with {HOME_ADDRESS}"
           ).to_be_attached(timeout=EXPECT_TIMEOUT_MS)

    # 3. one event back
    back = walk.click(dash.locator(".mip6lab-back").first, "back")
    assert back.index == ba.index - 1, f"back from #{ba.index} went to {back.position!r}"

    # 4. a click on the BU's row of the ladder selects it again
    mark = dash.locator(f'.mip6lab-ladder [data-event="{bu.index}"]')
    drawn = dash.locator(".mip6lab-ladder [data-event]").evaluate_all(
        "marks => marks.map(m => m.getAttribute('data-event'))")
    assert mark.count() == 1, (f"the ladder draws no single mark of event #{bu.index}; "
                               f"it draws {drawn}")
    selected = walk.click(mark.first, "ladder click on the BU")
    assert selected.index == bu.index, f"the ladder click went to {selected.position!r}"
    assert BINDING_UPDATE.search(selected.decrypted), \
        f"the inspector's decrypted block after the click: {selected.decrypted[:300]!r}"
    expect(dash.locator(f'.mip6lab-ladder [data-event="{bu.index}"].current'),
           f"the ladder's mark of #{bu.index} should have class 'current' after the click"
           ).to_have_count(1, timeout=EXPECT_TIMEOUT_MS)

    # the evidence: the page as the user sees it (an element screenshot of the whole
    # dashboard is no good: it is far taller than JupyterLab's scrolling notebook area)
    shot = artifacts_dir / "dashboard.png"
    dash.locator(".mip6lab-position").first.scroll_into_view_if_needed()
    page.screenshot(path=str(shot))

    ladder_ms = walk.latencies[-1][1]
    values = [ms for _what, ms in walk.latencies]
    with capsys.disabled():
        print(f"\n[browser] notebook open + kernel idle {opened - started:.1f} s, run all "
              f"{ran - opened:.1f} s, walk {time.perf_counter() - ran:.1f} s")
        print(f"[browser] click -> position changed: ladder click {ladder_ms:.0f} ms; "
              f"all {len(values)} clicks median {statistics.median(values):.0f} ms, "
              f"max {max(values):.0f} ms")
        print(f"[browser] screenshot: {shot}")
