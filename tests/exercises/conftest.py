"""The exercises' instructor sources, read as code: each solution cell's functions are
defined in a namespace (what the notebook's answer cell does), for the checks' tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EXERCISES = Path(__file__).resolve().parents[2] / "exercises"


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def solution(name: str) -> dict:
    """The names the source's answer cell defines (the instructor's solution)."""
    source = EXERCISES / "source" / name / f"{name}.ipynb"
    namespace: dict = {}
    for cell in cells(source):
        if cell["metadata"].get("nbgrader", {}).get("solution"):
            exec(compile("".join(cell["source"]), f"{name}:answer", "exec"), namespace)
    return namespace


@pytest.fixture(scope="session")
def solutions():
    from mip6lab.exercises import EXERCISES as NAMES

    return {name: solution(name) for name in NAMES}
