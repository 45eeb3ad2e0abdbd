"""Driving a course notebook's dashboard in JupyterLab from Playwright: open a notebook
and wait for its kernel, Run All, then walk a dashboard through its DOM contract (the CSS
classes the widgets set), timing each click in the page with the browser's own clock.

Shared by the real-browser tests of the course (``test_*_browser.py``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

KERNEL_TIMEOUT_MS = 60_000     # notebook open + kernel start; all cells run
MOVE_TIMEOUT_MS = 15_000       # one click until the dashboard shows its effect
EXPECT_TIMEOUT_MS = 10_000     # a part of the dashboard catching up with the position
MAX_PRESSES = 12               # "next BU/BA" presses to reach the BU, then the BA

POSITION = re.compile(r"event\s+(-?\d+)\s*/\s*(\d+)\s*·\s*t\s*=\s*([\d.]+)\s*s")
BINDING_UPDATE = re.compile(r"Binding Update")
# scapy names the BA's layer "IPv6 Mobility Header - Binding ACK"
BINDING_ACK = re.compile(r"Binding (ACK|Acknowledg)", re.IGNORECASE)

RUN_ALL = (".lm-Menu-item[data-command='runmenu:run-all'], "
           ".lm-Menu-item[data-command='notebook:run-all-cells']")
CURRENT_PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"

# Armed before a click: notes when the click event is dispatched and when the position
# line first differs, with the browser's own clock (no Playwright round trip in it).
ARM_CLICK_TIMER = """(dash) => {
  const position = () => {
    const el = dash.querySelector('.mip6lab-position');
    return el ? el.textContent : null;
  };
  const timer = { clicked: null, changed: null, before: position(), after: null };
  window.__mip6labTimer = timer;
  document.addEventListener('click', () => {
    if (timer.clicked === null) timer.clicked = performance.now();
  }, { capture: true, once: true });
  const observer = new MutationObserver(() => {
    const now = position();
    if (timer.changed === null && now !== timer.before) {
      timer.changed = performance.now();
      timer.after = now;
      observer.disconnect();
    }
  });
  observer.observe(dash, { subtree: true, childList: true, characterData: true });
}"""

CELLS_STATE = """() => {
  const panel = document.querySelector('%s');
  if (!panel) return null;
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const cells = Array.from(panel.querySelectorAll('.jp-CodeCell')).map(cell => ({
    prompt: (cell.querySelector('.jp-InputPrompt') || {}).textContent || '',
    empty: !((cell.querySelector('.jp-InputArea-editor') || {}).textContent || '').trim(),
  }));
  const errors = Array.from(panel.querySelectorAll(
      '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'))
    .map(e => e.textContent).filter(t => t.includes('Traceback'));
  return { status: indicator ? indicator.getAttribute('data-status') : null, cells, errors };
}""" % CURRENT_PANEL


@dataclass
class Shown:
    """What the dashboard shows for the current event."""

    index: int
    total: int
    position: str
    node: str
    summary: str
    decrypted: str


class Walk:
    """Drives one dashboard and keeps the click latencies."""

    def __init__(self, page, dash) -> None:
        self.page, self.dash = page, dash
        self.latencies: list[tuple[str, float]] = []

    def position(self) -> tuple[int, int, str]:
        text = self.dash.locator(".mip6lab-position").first.inner_text()
        match = POSITION.search(text)
        assert match, f"the position line does not read 'event N / M · t = T s': {text!r}"
        return int(match.group(1)), int(match.group(2)), text

    def click(self, target, what: str) -> Shown:
        """Click ``target``, wait for the position line to change and the inspector to show
        the new event; the latency (click -> position changed) is recorded."""
        before = self.position()[2]
        self.dash.evaluate(ARM_CLICK_TIMER)
        started = time.perf_counter()
        target.click()
        try:
            self.page.wait_for_function(
                "() => window.__mip6labTimer && window.__mip6labTimer.changed !== null",
                timeout=MOVE_TIMEOUT_MS)
        except Exception as exc:
            raise AssertionError(
                f"{what}: the position line did not change within {MOVE_TIMEOUT_MS} ms "
                f"(still {before!r})") from exc
        round_trip = (time.perf_counter() - started) * 1000
        timer = self.page.evaluate("() => window.__mip6labTimer")
        assert timer["clicked"] is not None, f"{what}: no click event reached the page"
        latency = timer["changed"] - timer["clicked"]
        self.latencies.append((what, latency))
        print(f"[browser] {what}: {latency:.0f} ms from click to position "
              f"(Playwright round trip {round_trip:.0f} ms) -> {timer['after'].strip()}")
        return self.shown()

    def shown(self) -> Shown:
        index, total, position = self.position()
        summary = self.dash.locator(".mip6lab-inspector .mip6lab-summary").first
        if index >= 0:   # the inspector is redrawn after the position: wait for it
            from playwright.sync_api import expect

            expect(summary).to_have_text(re.compile(rf"^\s*#{index}\b"),
                                         timeout=EXPECT_TIMEOUT_MS)
        inspector = self.dash.locator(".mip6lab-inspector").first.inner_text()
        node = re.search(r"\bnode (\S+)", inspector)
        decrypted = self.dash.locator(".mip6lab-inspector .mip6lab-decrypted")
        return Shown(index=index, total=total, position=position,
                     node=node.group(1) if node else "",
                     summary=summary.inner_text().strip(),
                     decrypted=decrypted.first.inner_text().strip()
                     if decrypted.count() else "")

    def next_until(self, test, what: str, most: int = MAX_PRESSES) -> tuple[Shown, int]:
        """Press "next" until ``test(shown)`` holds, at most ``most`` times."""
        button = self.dash.locator(".mip6lab-next").first
        seen = []
        for presses in range(1, most + 1):
            shown = self.click(button, f"next BU/BA, press {presses}")
            seen.append(f"#{shown.index} {shown.node}: {shown.summary}")
            if test(shown):
                return shown, presses
        raise AssertionError(f"no {what} after {most} presses of next (BU/BA); "
                             "the events shown:\n  " + "\n  ".join(seen))


def _fail_on_dialog(page) -> None:
    """A JupyterLab dialog (a kernel to choose, a load error) would block every click."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and dialog.first.is_visible():
        text = dialog.first.inner_text()
        if "Select Kernel" in text:          # no kernelspec in the notebook: take the default
            dialog.first.locator(".jp-mod-accept").click()
            return
        raise AssertionError(f"JupyterLab shows a dialog: {text.strip()[:500]}")


KERNEL_READY = r"""() => {
  // The notebook's execution indicator says "idle" before there is a kernel at all
  // (JupyterLab 4.6); the status bar then reads "No Kernel | Initializing". Ready is both:
  // the indicator idle and the status bar naming a kernel that is idle.
  const panel = document.querySelector('%s');
  const indicator = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
  const items = Array.from(document.querySelectorAll('.jp-StatusBar-Item'))
    .map(e => e.textContent.trim());
  return !!indicator && indicator.getAttribute('data-status') === 'idle'
    && items.some(t => /\|\s*Idle$/.test(t) && !/^No Kernel/.test(t));
}""" % CURRENT_PANEL


def open_notebook(page, url: str) -> None:
    """Open a notebook and wait until its kernel is connected and idle."""
    page.goto(url)
    page.wait_for_selector(CURRENT_PANEL, timeout=KERNEL_TIMEOUT_MS)
    deadline = time.monotonic() + KERNEL_TIMEOUT_MS / 1000
    while not page.evaluate(KERNEL_READY):
        _fail_on_dialog(page)
        assert time.monotonic() < deadline, \
            f"the kernel of {url.split('?')[0]} was not idle within {KERNEL_TIMEOUT_MS} ms"
        page.wait_for_timeout(100)


def _click_run_all(page) -> None:
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^\s*Run\s*$")).click()
    page.locator(RUN_ALL).first.click()


def run_all_cells(page) -> None:
    """Run > Run All Cells, then wait until every code cell has run (or one failed).

    Should the click be lost (no cell queued after a few seconds: every prompt still
    "[ ]"; a queued cell shows "[*]" at once), Run All is clicked once more."""
    _click_run_all(page)
    clicked = time.monotonic()
    retried = False
    deadline = clicked + KERNEL_TIMEOUT_MS / 1000
    while True:
        _fail_on_dialog(page)
        state = page.evaluate(CELLS_STATE)
        prompts = [c["prompt"] for c in state["cells"] if not c["empty"]]
        busy = state["status"] != "idle" or any("*" in p for p in prompts)
        if not busy and state["errors"]:
            raise AssertionError("a cell of the notebook failed:\n" + state["errors"][0][-2000:])
        if not busy and prompts and all(re.search(r"\[\d+\]", p) for p in prompts):
            return
        if (not retried and not busy and time.monotonic() - clicked > 5
                and not any(re.search(r"\[[\d*]+\]", p) for p in prompts)):
            print("[browser] no cell queued 5 s after Run All Cells: clicking it again")
            _click_run_all(page)
            retried = True
        assert time.monotonic() < deadline, \
            f"the cells did not all run within {KERNEL_TIMEOUT_MS} ms: prompts {prompts}"
        page.wait_for_timeout(100)
