"""The course's graded exercises: what each gives a student, and the checks that judge
an answer against the running stack (``exercises/`` holds the notebooks).

Every exercise is a module here with ``prepare(seed)`` -- the values of one student's run,
from a lab seeded with :func:`student_seed` -- and checks, each returning a
:class:`~mip6lab.widgets.quiz.Feedback` that says what is wrong, not only that it is.
A notebook's test cell passes the feedback to :func:`verdict`, which prints it and fails
the cell (AssertionError: the grader's "failed") when one check is not right.

================  =========================================================  ===========
module            what the student writes                                     RFC
================  =========================================================  ===========
``natd``          NAT-D hashes of a captured IKE_SA_INIT; was a NAT on the    7296 §2.23
                  path?
``ike_keys``      SKEYSEED and SK_* from one run's values; the IKE_AUTH SK    7296 §2.14,
                  payload opened                                              5282
``spd``           the MN's SPD entries (through the ``spd_entries`` hook of   4877 §7.2
                  :class:`~mip6lab.mobility.coupling.MobileNodeCoupling`)
``k_bit``         the MN's K-bit decision (the ``k_decision`` hook)           6275 §11.7.1
``dsmip6_bu``     a DSMIP6 BU in IPv4/UDP 4191 with the IPv4 CoA option,      5555 §4.1
                  built with scapy and sent to a running HA
``esp``           an ESP packet of a capture decrypted with the exported      4303, 4106
                  keys; the BU found inside
================  =========================================================  ===========

:mod:`mip6lab.exercises.grading` releases the student versions and grades submissions
with nbgrader (``mip6lab exercises release`` / ``grade``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from typing import Any

from ..widgets.quiz import Feedback

__all__ = ["EXERCISES", "STUDENT_ENV", "Feedback", "attempt", "student_id", "student_seed",
           "verdict"]

#: the exercises in course order: notebook name -> module
EXERCISES = {
    "01-nat-detection": "natd",
    "02-ike-keys": "ike_keys",
    "03-mn-spd": "spd",
    "04-k-bit": "k_bit",
    "05-dsmip6-bu": "dsmip6_bu",
    "06-esp-capture": "esp",
}

#: set by the grader for each submission: the student id the seed comes from (what the
#: student typed in the notebook is used only when this is not set)
STUDENT_ENV = "MIP6LAB_STUDENT_ID"
PLACEHOLDER = "your-student-id"


def student_id(typed: str | None = None) -> str:
    """The student whose values these are: ``$MIP6LAB_STUDENT_ID`` while grading, else
    what the student typed."""
    graded = os.environ.get(STUDENT_ENV, "").strip()
    if graded:
        return graded
    if typed is None or not str(typed).strip() or str(typed).strip() == PLACEHOLDER:
        raise ValueError("type your student id in STUDENT_ID (the first code cell): your "
                         "values are made from it")
    return str(typed).strip()


def student_seed(typed: str | None = None) -> int:
    """A student's lab seed: a hash of the student id (case and spaces ignored), so two
    students get different values and the grader recomputes the same ones."""
    ident = " ".join(student_id(typed).split()).casefold()
    return int.from_bytes(hashlib.sha256(b"mip6lab-exercises:" + ident.encode()).digest()[:4],
                          "big")


def attempt(what: str, function: Callable[..., Any], *args: Any) -> tuple[Any, Feedback | None]:
    """Call the student's ``function``; (its result, None), or (None, the feedback that
    says it is not written yet or how it failed)."""
    if not callable(function):
        return None, Feedback(False, f"{what} should be a function, not {function!r}.")
    try:
        return function(*args), None
    except NotImplementedError:
        return None, Feedback(False, f"{what} is not written yet (it raises "
                                     "NotImplementedError): replace that line with your code.")
    except Exception as exc:          # the student's bug: say which, never a traceback
        return None, Feedback(False, f"{what} raised {type(exc).__name__}: {exc}")


def verdict(*feedback: Feedback | Iterable[Feedback]) -> None:
    """Print every check's feedback; fail (AssertionError) if one is not right."""
    flat: list[Feedback] = []
    for item in feedback:
        flat.extend([item] if isinstance(item, Feedback) else item)
    for item in flat:
        print(item)
    wrong = [str(item) for item in flat if not item.correct]
    if wrong:
        raise AssertionError("\n".join(wrong))


def first_difference(given: bytes, expected: bytes) -> int:
    """The offset of the first byte where ``given`` and ``expected`` differ."""
    for at, (a, b) in enumerate(zip(given, expected)):
        if a != b:
            return at
    return min(len(given), len(expected))


def as_bytes(value: Any) -> bytes | None:
    """Bytes from bytes, bytearray, memoryview or hex text; None otherwise."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        try:
            return bytes.fromhex(value.removeprefix("0x").replace(":", "").replace(" ", ""))
        except ValueError:
            return None
    return None
