"""``mip6lab exercises``: release the student versions, grade a folder of submissions.

::

    mip6lab exercises list
    mip6lab exercises release [--exercises DIR] [--into DIR]
    mip6lab exercises grade SUBMISSIONS [--exercises DIR] [--csv FILE]

``release`` writes ``exercises/release/NAME/NAME.ipynb`` from the instructor sources
(nbgrader's generate_assignment: no solution, no hidden check). ``grade`` autogrades every
``SUBMISSIONS/STUDENT/NAME.ipynb`` (or ``SUBMISSIONS/STUDENT/NAME/NAME.ipynb``) with that
student's values and writes the CSV (student_id, exercise, score, max_score, feedback) to
``--csv`` or stdout. Both need the ``exercises`` extra (nbgrader); status 2 without it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path


def add_parser(commands) -> None:
    exercises = commands.add_parser("exercises", help="graded exercises: release the "
                                    "student versions, grade submissions (nbgrader)")
    actions = exercises.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="the exercises and what each asks")
    release = actions.add_parser("release", help="generate the student versions")
    release.add_argument("--exercises", metavar="DIR", help="the exercises folder "
                         "(default: exercises/ of this checkout)")
    release.add_argument("--into", metavar="DIR", help="where to write them "
                         "(default: the exercises folder's release/)")
    grade = actions.add_parser("grade", help="autograde a folder of submissions into a CSV")
    grade.add_argument("submissions", help="a folder with one folder per student id")
    grade.add_argument("--exercises", metavar="DIR", help="the exercises folder "
                       "(default: exercises/ of this checkout)")
    grade.add_argument("--csv", metavar="FILE", help="write the CSV here (default: stdout)")


def run(args: argparse.Namespace) -> int:
    from . import EXERCISES

    if args.action == "list":
        from importlib import import_module

        for name, module in EXERCISES.items():
            doc = " ".join((import_module(f"mip6lab.exercises.{module}").__doc__ or "").split())
            print(f"{name:18s} {doc.split(' (RFC')[0].split(': ', 1)[-1]}")
        return 0
    if importlib.util.find_spec("nbgrader") is None:
        print("mip6lab exercises: nbgrader is missing: python3 -m pip install "
              "'.[exercises]' (from the mip6lab folder)", file=sys.stderr)
        return 2
    from .grading import exercises_folder, grade, release, to_csv

    folder = Path(args.exercises) if args.exercises else exercises_folder()
    if folder is None or not (folder / "source").is_dir():
        print("mip6lab exercises: no exercises/source folder found; run it from the mip6lab "
              "folder or give --exercises", file=sys.stderr)
        return 2
    if args.action == "release":
        for path in release(folder, Path(args.into) if args.into else None):
            print(path)
        return 0
    submissions = Path(args.submissions)
    if not submissions.is_dir():
        print(f"mip6lab exercises: {submissions} is not a folder", file=sys.stderr)
        return 2
    text = to_csv(grade(submissions, folder))
    if args.csv:
        Path(args.csv).write_text(text, encoding="utf-8")
        print(f"mip6lab exercises: {len(text.splitlines()) - 1} grades written to {args.csv}",
              file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0
