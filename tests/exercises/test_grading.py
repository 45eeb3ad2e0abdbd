"""The exercises through nbgrader, as an instructor uses them: the committed student
versions are what ``mip6lab exercises release`` makes, hold no solution and no hidden
check; ``mip6lab exercises grade`` gives every instructor solution full marks and every
untouched student version zero, each graded cell failing, in its CSV."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import pytest

from mip6lab.cli import main
from mip6lab.exercises import EXERCISES as NAMES
from mip6lab.testing.prereq import missing

from .conftest import EXERCISES, cells



@pytest.fixture(autouse=True)
def _nbgrader(request):
    import importlib.util

    if request.node.name != "test_grade_without_nbgrader_says_what_to_install" and \
            importlib.util.find_spec("nbgrader") is None:
        missing("nbgrader is not installed: python3 -m pip install -e '.[test]'")


def _sources(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in cells(path)]


def _solution_lines(path: Path) -> list[str]:
    lines, inside = [], False
    for text in _sources(path):
        for line in text.splitlines():
            if "### BEGIN SOLUTION" in line or "### BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "### END SOLUTION" in line or "### END HIDDEN TESTS" in line:
                inside = False
            elif inside and line.strip():
                lines.append(line.strip())
    return lines


def test_release_is_up_to_date_and_holds_no_solution(tmp_path, capsys):
    assert main(["exercises", "release", "--into", str(tmp_path)]) == 0
    for name in NAMES:
        committed = EXERCISES / "release" / name / f"{name}.ipynb"
        fresh = tmp_path / name / f"{name}.ipynb"
        assert _sources(committed) == _sources(fresh), f"{name}: run mip6lab exercises release"
        student = "\n".join(_sources(committed))
        secret = _solution_lines(EXERCISES / "source" / name / f"{name}.ipynb")
        assert secret, name
        leaked = [line for line in secret if line in student]
        assert not leaked, (name, leaked)
        assert "BEGIN SOLUTION" not in student and "HIDDEN TESTS" not in student
        assert "raise NotImplementedError()" in student


def test_grade_solutions_and_untouched_versions(tmp_path, capsys):
    submissions = tmp_path / "submissions"
    for student, folder in (("instructor", "source"), ("untouched", "release")):
        (submissions / student).mkdir(parents=True)
        for name in NAMES:
            shutil.copy(EXERCISES / folder / name / f"{name}.ipynb", submissions / student)
    out = tmp_path / "grades.csv"
    assert main(["exercises", "grade", str(submissions), "--csv", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 2 * len(NAMES)
    for row in rows:
        assert float(row["max_score"]) == 4, row
        if row["student_id"] == "instructor":
            assert float(row["score"]) == 4 and row["feedback"] == "every check passed", row
        else:
            assert float(row["score"]) == 0, row        # both graded cells failed
            assert "not written yet" in row["feedback"], row


def test_grade_without_nbgrader_says_what_to_install(monkeypatch, capsys, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nbgrader" else real(name, *a))
    assert main(["exercises", "grade", str(tmp_path)]) == 2
    assert "[exercises]" in capsys.readouterr().err
