"""What every course notebook keeps, read from the committed files (no kernel needed):
no outputs, the course's structure, a place in the course map.

Each notebook's executed values are asserted in its own module (``test_NN_*.py``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .conftest import NOTEBOOKS

NAMES = sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))

#: the course as notebooks/README.md maps it (issue 11; 07, the cost, issue 12)
COURSE = ["00-start", "01-ikev2", "02-hoa-assignment", "03-spd", "04-k-bit",
          "05-dsmip6-nat", "06-real-namespaces", "07-cost"]


def _cells(name: str) -> list[dict]:
    return json.loads((NOTEBOOKS / name).read_text())["cells"]


def _markdown(name: str) -> list[str]:
    return ["".join(c["source"]) for c in _cells(name) if c["cell_type"] == "markdown"]


def _code(name: str) -> str:
    return "\n".join("".join(c["source"]) for c in _cells(name) if c["cell_type"] == "code")


def test_the_course_has_all_its_notebooks_each_with_its_executed_test():
    here = Path(__file__).parent
    for stem in COURSE:
        assert f"{stem}.ipynb" in NAMES, f"notebooks/{stem}.ipynb is missing"
        test = here / f"test_{stem.replace('-', '_')}.py"
        assert test.exists(), f"{stem}: no {test.name} asserting its executed values"
        assert f'executed("{stem}.ipynb"' in test.read_text(), \
            f"{test.name} does not execute {stem}.ipynb"


def test_the_notebooks_are_numbered_in_order():
    numbers = [int(n[:2]) for n in NAMES]
    assert numbers[0] == 0 and len(set(numbers)) == len(numbers), NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name):
    code = [c for c in _cells(name) if c["cell_type"] == "code"]
    assert code, f"{name} has no code"
    assert all(not c["outputs"] and c.get("execution_count") is None for c in code), \
        f"{name} is committed with outputs"


@pytest.mark.parametrize("name", NAMES)
def test_opens_with_goals_rfcs_and_slide(name):
    first = _markdown(name)[0]
    assert first.startswith(f"# {name[:2]} — "), first[:60]
    for part in ("**What you will learn**", "**RFC sections", "**Slide"):
        assert part in first, f"{name}: the first cell has no {part}"
    assert re.search(r"\(\d\d minutes\)", first), f"{name}: no time in the first cell"
    assert re.search(r"RFC \d{4} §\d", first), f"{name}: no RFC section cited"


@pytest.mark.parametrize("name", NAMES)
def test_teaches_by_prediction_quiz_what_if_summary_and_extension(name):
    headings = [line for cell in _markdown(name) for line in cell.splitlines()
                if line.startswith("#")]
    assert any(re.match(r"##+ What you saw", h) for h in headings), f"{name}: no 'What you saw'"
    assert any(re.match(r"##+ Try this", h) for h in headings), f"{name}: no 'Try this'"
    assert any("what if" in h.lower() for h in headings), f"{name}: no what-if section"
    code = _code(name)
    assert "Prediction(" in code, f"{name}: no predict-then-run prompt"
    assert "Quiz(" in code, f"{name}: no quiz"


@pytest.mark.parametrize("name", NAMES)
def test_is_in_the_course_map(name):
    readme = (NOTEBOOKS / "README.md").read_text()
    row = next((line for line in readme.splitlines() if f"`{name}`" in line), None)
    assert row is not None, f"{name} is not in notebooks/README.md"
    assert re.search(r"\b\d\d min\b", row), f"{name}: no time in the course map"
    assert "slide" in row.lower(), f"{name}: the course map does not say which slide"
