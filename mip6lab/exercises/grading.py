"""Release and grade the exercises with nbgrader (``mip6lab exercises release|grade``).

nbgrader does the assign/autograde work: ``generate_assignment`` turns an instructor
source (``exercises/source/NAME/NAME.ipynb``: solutions between ``### BEGIN SOLUTION`` and
``### END SOLUTION``, hidden checks between ``### BEGIN HIDDEN TESTS`` and ``### END
HIDDEN TESTS``) into the student version, and ``autograde`` runs a submission with the
locked cells -- the checks, the hidden ones again included -- taken from the source.
Both run in a scratch nbgrader course folder, so nothing (no gradebook) is left in the
repository.

Each submission is graded with ``$MIP6LAB_STUDENT_ID`` set to the student's id (the
folder it was filed under), so the checks recompute that student's values
(:func:`mip6lab.exercises.student_seed`). The CSV has one row per student and exercise:
the score, the maximum, and the feedback of the first check that failed.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import EXERCISES, STUDENT_ENV

CSV_FIELDS = ("student_id", "exercise", "score", "max_score", "feedback")


def exercises_folder() -> Path | None:
    """``exercises/`` of this checkout (the current folder's, or beside the package)."""
    for candidate in (Path.cwd() / "exercises", Path(__file__).resolve().parents[2] / "exercises"):
        if (candidate / "source").is_dir():
            return candidate
    return None


@contextlib.contextmanager
def _course(source: Path, quiet: bool = True):
    """A scratch nbgrader course with the sources and their assignments generated."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    with tempfile.TemporaryDirectory(prefix="mip6lab-nbgrader-") as scratch:
        root = Path(scratch)
        shutil.copytree(source, root / "source")
        config = Config()
        config.CourseDirectory.root = str(root)
        config.CourseDirectory.course_id = "mip6lab"
        config.Execute.timeout = 300
        config.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
        api = NbGraderAPI(CourseDirectory(config=config), config=config)
        if quiet:
            api.log.setLevel("ERROR")
        for name in EXERCISES:
            if (root / "source" / name).is_dir():
                result = api.generate_assignment(name, force=True, create=True)
                if not result["success"]:
                    raise RuntimeError(f"nbgrader could not release {name}: {result['log']}")
        yield api, root


def release(folder: Path | None = None, into: Path | None = None) -> list[Path]:
    """The student versions of every exercise, generated from ``folder/source`` into
    ``into`` (default ``folder/release``); the notebooks written."""
    folder = folder or exercises_folder()
    if folder is None:
        raise FileNotFoundError("no exercises/source folder here")
    into = into or folder / "release"
    written = []
    with _course(folder / "source") as (_api, root):
        for name in EXERCISES:
            made = root / "release" / name
            if not made.is_dir():
                continue
            target = into / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(made, target)
            written.extend(sorted(target.glob("*.ipynb")))
    return written


@dataclass(frozen=True)
class Grade:
    student_id: str
    exercise: str
    score: float
    max_score: float
    feedback: str


def _submissions(folder: Path) -> dict[str, dict[str, Path]]:
    """student -> exercise -> notebook, from ``folder/STUDENT/EXERCISE/EXERCISE.ipynb``
    (nbgrader's own layout) or ``folder/STUDENT/EXERCISE.ipynb``."""
    found: dict[str, dict[str, Path]] = {}
    for student in sorted(p for p in folder.iterdir() if p.is_dir()):
        for name in EXERCISES:
            for candidate in (student / name / f"{name}.ipynb", student / f"{name}.ipynb"):
                if candidate.is_file():
                    found.setdefault(student.name, {})[name] = candidate
                    break
    return found


def _first_failure(notebook: Path) -> str:
    """The first failed graded cell's message (the checks' feedback), on one line."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if not cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                text = output.get("evalue", "") or output.get("ename", "")
                return f"{cell['metadata']['nbgrader']['grade_id']}: " \
                       f"{output.get('ename')}: {' '.join(text.split())}"[:500]
    return ""


def grade(submissions: Path, folder: Path | None = None) -> list[Grade]:
    """Autograde every submission under ``submissions``; one Grade per student and
    exercise submitted (a missing exercise is not listed)."""
    from nbgrader.api import Gradebook

    folder = folder or exercises_folder()
    if folder is None:
        raise FileNotFoundError("no exercises/source folder here")
    found = _submissions(Path(submissions))
    grades = []
    saved = os.environ.get(STUDENT_ENV)
    with _course(folder / "source") as (api, root):
        try:
            for student, notebooks in found.items():
                os.environ[STUDENT_ENV] = student
                for name, notebook in notebooks.items():
                    target = root / "submitted" / student / name
                    target.mkdir(parents=True, exist_ok=True)
                    shutil.copy(notebook, target / f"{name}.ipynb")
                    result = api.autograde(name, student, force=True, create=True)
                    if not result["success"]:
                        grades.append(Grade(student, name, 0.0, 0.0, "not graded: " + " ".join(
                            (result.get("error") or result.get("log") or "").split())[-300:]))
                        continue
                    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
                        submission = gradebook.find_submission(name, student)
                        score, maximum = submission.score, submission.max_score
                    feedback = _first_failure(root / "autograded" / student / name /
                                              f"{name}.ipynb")
                    grades.append(Grade(student, name, score, maximum,
                                        feedback or "every check passed"))
        finally:
            if saved is None:
                os.environ.pop(STUDENT_ENV, None)
            else:
                os.environ[STUDENT_ENV] = saved
    return grades


def to_csv(grades: list[Grade]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for g in grades:
        writer.writerow([g.student_id, g.exercise, f"{g.score:g}", f"{g.max_score:g}",
                         g.feedback])
    return out.getvalue()
