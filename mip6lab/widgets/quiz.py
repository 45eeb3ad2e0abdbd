"""The course's two small teaching widgets: a quiz that checks an answer and explains,
and a prediction the student commits to before running the lab.

The right answer is usually not typed into the notebook: it is computed from the run
the student just stepped (``answer=lambda: ...`` is called when the answer is checked), so
a quiz stays true when the stack changes. Each widget has Python twins of its controls
(:meth:`Quiz.answer`, :meth:`Prediction.predict`, :meth:`Prediction.compare`) so that a
notebook runs headless and the tests can check the checker with right and wrong answers.

    quiz = Quiz("How many IKE exchanges does a K=1 handover need?",
                options=[0, 1, 2, 3], answer=lambda: report["ike_exchanges"],
                explain="With K=1 the IKE SA follows the CoA by MIGRATE (RFC 4877 §7.4).",
                hints={2: "That is the K=0 handover: IKE_SA_INIT and IKE_AUTH again."})
    quiz
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

import ipywidgets as w

__all__ = ["Feedback", "Prediction", "Quiz"]


@dataclass(frozen=True)
class Feedback:
    """What a check said: ``correct``, and a sentence that says why (or what is wrong)."""

    correct: bool
    message: str

    def __str__(self) -> str:
        return f"{'✔ right' if self.correct else '✘ not quite'}: {self.message}"


def _resolve(value: Any) -> Any:
    return value() if callable(value) else value


def _same(given: Any, expected: Any, tolerance: float) -> bool:
    if isinstance(expected, bool) or isinstance(given, bool):
        return given is expected or given == expected
    if isinstance(expected, (int, float)) and isinstance(given, (int, float)):
        return math.isclose(given, expected, abs_tol=tolerance)
    if isinstance(expected, str) and isinstance(given, str):
        return " ".join(given.split()).casefold() == " ".join(expected.split()).casefold()
    return given == expected


def _number(text: Any) -> Any:
    """A typed answer as a number where it reads as one ("6", " 6.0 ")."""
    if not isinstance(text, str):
        return text
    try:
        value = float(text.strip())
    except ValueError:
        return text
    return int(value) if value.is_integer() else value


class Quiz(w.VBox):
    """One question. With ``options`` the student picks one; without, types a number or
    a word. ``answer`` is the right value (or a callable giving it from the run);
    ``explain`` is said after a right answer and, after a wrong one, together with the
    ``hints`` entry for that wrong value when there is one; ``tolerance`` is how far
    a number may be from the answer."""

    def __init__(self, question: str, *, answer: Any, explain: str,
                 options: Sequence[Any] | None = None,
                 hints: Mapping[Any, str] | None = None, tolerance: float = 0.0) -> None:
        self.question, self.explain = question, explain
        self.options = list(options) if options is not None else None
        self.hints = dict(hints or {})
        self.tolerance = tolerance
        self._answer = answer
        #: the last check's :class:`Feedback` (None before the first)
        self.feedback: Feedback | None = None
        prompt = w.HTML(f"<b>Quiz.</b> {escape(question)}")
        if self.options is not None:
            self.choice: w.Widget = w.RadioButtons(options=[(str(o), i) for i, o in
                                                            enumerate(self.options)],
                                                   value=None, layout=w.Layout(width="auto"))
        else:
            self.choice = w.Text(placeholder="your answer", layout=w.Layout(width="240px"))
        self.choice.add_class("mip6lab-quiz-choice")
        self.button = w.Button(description="check", icon="check", layout=w.Layout(width="auto"))
        self.button.add_class("mip6lab-quiz-check")
        self.button.on_click(lambda _b: self._check_widget())
        self.output = w.HTML()
        self.output.add_class("mip6lab-quiz-feedback")
        super().__init__([prompt, self.choice, self.button, self.output])
        self.add_class("mip6lab-quiz")

    @property
    def expected(self) -> Any:
        """The right answer, computed now from what it was given."""
        return _resolve(self._answer)

    def check(self, given: Any) -> Feedback:
        """Check ``given`` (an option's value, or typed text) without touching the widget."""
        if given is None or (isinstance(given, str) and not given.strip()):
            return Feedback(False, "no answer yet: pick or type one, then check.")
        expected = self.expected
        value = _number(given) if self.options is None else given
        if _same(value, expected, self.tolerance):
            return Feedback(True, self.explain)
        hint = self.hints.get(value)
        if hint is None and isinstance(value, str):
            hint = next((h for k, h in self.hints.items()
                         if isinstance(k, str) and _same(value, k, 0)), None)
        message = f"{hint} " if hint else ""
        return Feedback(False, f"{message}The lab says {expected}. {self.explain}")

    def answer(self, given: Any) -> Feedback:
        """What choosing ``given`` and pressing *check* does (the notebook's and the
        tests' twin of the buttons)."""
        if self.options is not None:
            if given in self.options:
                self.choice.value = self.options.index(given)
            else:
                self.choice.value = None
        else:
            self.choice.value = "" if given is None else str(given)
        return self._check_widget()

    def _check_widget(self) -> Feedback:
        if self.options is not None:
            index = self.choice.value
            given = None if index is None else self.options[index]
        else:
            given = self.choice.value
        self.feedback = self.check(given)
        colour = "#1a7f37" if self.feedback.correct else "#b35900"
        self.output.value = (f'<div role="status" style="color:{colour}">'
                             f"{escape(str(self.feedback))}</div>")
        return self.feedback

    def text(self) -> str:
        lines = [f"Quiz: {self.question}"]
        if self.options is not None:
            lines += [f"  ( ) {o}" for o in self.options]
        if self.feedback is not None:
            lines.append(f"  {self.feedback}")
        return "\n".join(lines)


class Prediction(w.VBox):
    """Predict, then run: the student writes (or picks) what will happen before the cell
    that runs it; :meth:`compare` then sets the prediction beside what the lab did.

    ``options``: a list to pick from; without, a free-text box (a number is compared as
    a number, anything else is shown beside the result for the student to judge)."""

    def __init__(self, question: str, *, options: Sequence[Any] | None = None) -> None:
        self.question = question
        self.options = list(options) if options is not None else None
        prompt = w.HTML(f"<b>Predict.</b> {escape(question)}")
        if self.options is not None:
            self.choice: w.Widget = w.Dropdown(options=[("— your prediction —", None)] +
                                               [(str(o), i) for i, o in enumerate(self.options)],
                                               value=None, layout=w.Layout(width="auto"))
        else:
            self.choice = w.Textarea(placeholder="write your prediction, then run the next cell",
                                     layout=w.Layout(width="95%", height="3em"))
        self.choice.add_class("mip6lab-prediction-choice")
        self.output = w.HTML()
        self.output.add_class("mip6lab-prediction-result")
        super().__init__([prompt, self.choice, self.output])
        self.add_class("mip6lab-prediction")

    @property
    def value(self) -> Any:
        """The prediction made so far (None when none)."""
        if self.options is not None:
            index = self.choice.value
            return None if index is None else self.options[index]
        text = self.choice.value.strip()
        return _number(text) if text else None

    def predict(self, value: Any) -> None:
        """The twin of picking or typing a prediction."""
        if self.options is not None:
            self.choice.value = self.options.index(value) if value in self.options else None
        else:
            self.choice.value = "" if value is None else str(value)

    def compare(self, actual: Any, explain: str = "",
                match: Callable[[Any, Any], bool] | None = None) -> None:
        """Set the prediction beside ``actual`` (what the lab did), with ``explain``, in
        the widget and printed. :attr:`feedback` then holds the :class:`Feedback` (None
        when nothing was predicted, or a free-text one the student judges)."""
        predicted = self.value
        actual = _resolve(actual)
        if predicted is None:
            feedback = None
            text = f"You made no prediction. The lab: {actual}. {explain}".strip()
        else:
            if match is not None:
                correct = bool(match(predicted, actual))
            elif self.options is None and not isinstance(predicted, (int, float)):
                correct = None          # free text: the student judges
            else:
                correct = _same(predicted, actual, 0)
            if correct is None:
                feedback = None
                text = f"You predicted: {predicted}. The lab: {actual}. {explain}".strip()
            else:
                feedback = Feedback(correct, explain)
                verdict = "as you predicted" if correct else "not what you predicted"
                text = (f"You predicted {predicted}; the lab: {actual} — {verdict}. "
                        f"{explain}").strip()
        self.output.value = f'<div role="status">{escape(text)}</div>'
        self.result, self.feedback = text, feedback
        print(text)

    def text(self) -> str:
        return f"Predict: {self.question}" + (f"\n  {self.result}" if hasattr(self, "result")
                                              else "")
