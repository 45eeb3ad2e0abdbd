"""Execute a course notebook once per test session, as a student's "Run all" would, and
give the tests its outputs plus what the run cost (seconds, the kernel's peak memory).

Each notebook's tests live in their own file (``test_NN_*.py``) and ask for
``executed("NN-name.ipynb")``; the values they assert come from the executed notebook's
outputs, never from a re-run in the test's own process.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from mip6lab.testing.prereq import missing

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

# appended to the executed copy only (never to the committed notebook): the kernel's
# own peak resident memory, which is what a student's notebook costs the machine
_PEAK_MEMORY = ("import resource as _r, sys as _s\n"
                "print('mip6lab-peak-rss-kib', _r.getrusage(_r.RUSAGE_SELF).ru_maxrss, "
                "file=_s.stderr)")


@dataclass
class Executed:
    name: str
    notebook: object
    seconds: float
    peak_mib: float
    #: the stdout of each probe cell, run after the notebook in the same kernel
    probes: list[str]

    @property
    def code(self) -> list:
        return [c for c in self.notebook.cells if c.cell_type == "code"]

    def stream(self, cell) -> str:
        return "".join(o.get("text", "") for o in cell.outputs
                       if o.output_type == "stream" and o.get("name") == "stdout")

    @property
    def text(self) -> str:
        """Everything the notebook printed, in order."""
        return "\n".join(self.stream(c) for c in self.code)

    def out(self, tag: str) -> str:
        """What the code cell tagged ``tag`` printed."""
        return self.stream(self.tagged(tag))

    def tagged(self, tag: str):
        """The code cell carrying ``tag`` in its metadata (tags name cells for tests)."""
        cells = [c for c in self.code if tag in c.metadata.get("tags", [])]
        assert len(cells) == 1, f"{self.name}: {len(cells)} cells tagged {tag!r}"
        return cells[0]

    @property
    def errors(self) -> list:
        return [o for c in self.code for o in c.outputs if o.output_type == "error"]

    @property
    def stderr(self) -> str:
        return "".join(o.get("text", "") for c in self.code for o in c.outputs
                       if o.output_type == "stream" and o.get("name") == "stderr")

    def images(self) -> list:
        return [o for c in self.code for o in c.outputs
                if o.output_type in ("display_data", "execute_result") and "image/png" in o.data]

    def widgets(self) -> list:
        return [o for c in self.code for o in c.outputs
                if o.output_type in ("display_data", "execute_result")
                and "application/vnd.jupyter.widget-view+json" in o.data]


def execute(name: str, probes: tuple[str, ...] = (),
            env: dict[str, str] | None = None) -> Executed:
    """Run notebook ``name``, then each of ``probes`` (code, e.g. a quiz answered right
    and wrong) in the same kernel, then the peak-memory probe. ``env``: variables the
    kernel gets besides this process's environment (it inherits it at start)."""
    try:
        import nbformat
        from nbclient import NotebookClient
    except ImportError as exc:
        missing(f"nbclient/nbformat ({exc}): pip install -e '.[test]'")
    try:
        import ipykernel  # noqa: F401  the kernel the notebook runs in
    except ImportError:
        missing("ipykernel: pip install -e '.[course]'")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    extra = [nbformat.v4.new_code_cell(code) for code in probes]
    probe = nbformat.v4.new_code_cell(_PEAK_MEMORY)
    notebook.cells.extend([*extra, probe])
    saved = {key: os.environ.get(key) for key in (env or {})}
    os.environ.update(env or {})
    try:
        started = time.perf_counter()
        NotebookClient(notebook, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        seconds = time.perf_counter() - started
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    del notebook.cells[-len(extra) - 1:]
    text = "".join(o.get("text", "") for o in probe.outputs)
    peak_kib = int(text.split("mip6lab-peak-rss-kib")[1].split()[0])
    outputs = []
    for cell in extra:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{name}: probe {cell.source!r} failed: {errors}"
        outputs.append("".join(o.get("text", "") for o in cell.outputs
                               if o.output_type == "stream" and o.get("name") == "stdout"))
    return Executed(name, notebook, seconds, peak_kib / 1024, outputs)


_CACHE: dict[str, Executed] = {}


@pytest.fixture(scope="session")
def executed():
    """``executed(name, probes)``: the notebook run once this session, then reused (a
    notebook's own test module is the one place that names its probes)."""
    def run(name: str, probes: tuple[str, ...] = ()) -> Executed:
        if name not in _CACHE:
            _CACHE[name] = execute(name, tuple(probes))
        return _CACHE[name]
    return run


def check_budget(run: Executed, seconds: float = 20.0, mib: float = 500.0) -> None:
    """The course's budget for one notebook: a student's "Run all" within ``seconds``
    and the kernel within ``mib`` of memory."""
    assert not run.errors, f"{run.name}: {run.errors}"
    assert run.seconds < seconds, f"{run.name} took {run.seconds:.1f} s (budget {seconds} s)"
    assert run.peak_mib < mib, f"{run.name} peaked at {run.peak_mib:.0f} MiB (budget {mib})"


def check_pictures(run: Executed) -> None:
    """Every picture the notebook shows has its text alternative: no bare PNG output
    (a figure goes through :class:`mip6lab.widgets.figure.Figure`), every ``<img>`` with a
    non-empty ``alt``, every inline SVG with a ``<title>``."""
    import re

    assert not run.images(), f"{run.name} shows a picture without its text alternative"
    for cell in run.code:
        for output in cell.outputs:
            html = output.get("data", {}).get("text/html", "") if "data" in output else ""
            for img in re.findall(r"<img\b[^>]*>", html):
                alt = re.search(r'alt="([^"]*)"', img)
                assert alt and alt.group(1).strip(), f"{run.name}: an <img> without alt"
            for svg in re.findall(r"<svg\b.*?</svg>", html, flags=re.S):
                assert "<title>" in svg, f"{run.name}: an SVG without <title>"


def check_clean(run: Executed) -> None:
    """The course's budget, every picture with its text alternative, nothing on stderr."""
    check_budget(run)
    check_pictures(run)
    assert not run.stderr, run.stderr[-2000:]


def check_widgets(run: Executed, count: int, tag: str = "dashboard") -> None:
    """The cell tagged ``tag`` shows a widget (the dashboard), and the notebook shows
    ``count`` widgets in all (the dashboard, its predictions and its quizzes)."""
    outputs = run.tagged(tag).outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    assert len(run.widgets()) == count


def row(text: str, label: str) -> list[str]:
    """The values after ``label`` on the first line of ``text`` that starts with it."""
    line = next(line for line in text.splitlines() if line.startswith(label))
    return line[len(label):].split()
