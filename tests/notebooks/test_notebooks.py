"""The course notebooks, executed headless as a student's "Run all" would, with values
checked from the executed notebook (not from a re-run in this process)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mip6lab.testing.prereq import missing

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def _execute(name: str):
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
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def _stream(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_committed_without_outputs(name):
    cells = json.loads((NOTEBOOKS / name).read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code, f"{name} has no code"
    assert all(not c["outputs"] and c.get("execution_count") is None for c in code), \
        f"{name} is committed with outputs"


@pytest.fixture(scope="module")
def start():
    return _execute("00-start.ipynb")


def test_00_start_runs_without_error(start):
    errors = [o for c in start.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, errors
    assert all(o.get("name") != "stderr" for c in start.cells if c.cell_type == "code"
               for o in c.outputs if o.output_type == "stream")


def test_00_start_shows_the_dashboard_and_its_findings(start):
    code = [c for c in start.cells if c.cell_type == "code"]
    widget = [o for o in code[0].outputs if o.output_type == "execute_result"]
    assert widget and "application/vnd.jupyter.widget-view+json" in widget[0]["data"]
    text = "\n".join(_stream(c) for c in code)
    # the IKE exchanges before the first BU: SA_INIT, AUTH, CREATE_CHILD_SA, both ways
    assert "IKE messages sent by the MN and the HA before the first BU: 6" in text
    assert "IKE_SA_INIT request #0" in text and "CREATE_CHILD_SA response #2" in text
    # the BU is ESP on the wire, and the inspector opened it with the lab's keys
    assert "the BU: ESP spi=" in text
    assert "Decrypted ESP payload" in text and "Binding Update" in text
    assert "HA binding cache at the BU: ()" in text
    assert "HA binding cache now: 2001:db8:0:1::1001 → 2001:db8:a1::" in text
    assert "ha binding_cache: added 2001:db8:0:1::1001" in text
    assert "Seam:" in text and "SPDADD" in text
    assert "verdict: ok" in text
    assert "not rebuilt: option spd_owner: 'nonsense' is not one of 'mobility', 'ike', 'both'" in text
    # the prediction's answer: ESP processing (SAD, SPD) before the binding cache
    assert re.search(r"#148 .*: sad changed", text) and re.search(r"#151 .*binding_cache added", text)
