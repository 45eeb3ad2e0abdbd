"""The course's quiz, prediction and figure widgets, from Python."""

from __future__ import annotations

import pytest

pytest.importorskip("ipywidgets")

from mip6lab.widgets.figure import Figure  # noqa: E402
from mip6lab.widgets.quiz import Prediction, Quiz  # noqa: E402


def test_a_choice_quiz_checks_against_a_value_computed_when_checked():
    run = {"ike_exchanges": 0}
    quiz = Quiz("IKE exchanges in a K=1 handover?", options=[0, 1, 2],
                answer=lambda: run["ike_exchanges"], explain="MIGRATE, no IKE.",
                hints={2: "That is K=0."})
    assert quiz.answer(0).correct and quiz.feedback.message == "MIGRATE, no IKE."
    wrong = quiz.answer(2)
    assert not wrong.correct and wrong.message == "That is K=0. The lab says 0. MIGRATE, no IKE."
    assert "The lab says 0" in quiz.output.value and "not quite" in quiz.output.value
    run["ike_exchanges"] = 2            # the run changed: so does the right answer
    assert quiz.answer(2).correct and not quiz.answer(0).correct


def test_the_widget_and_its_twin_agree():
    quiz = Quiz("pick", options=["a", "b"], answer="b", explain="b it is.")
    quiz.choice.value = 1               # what a click on the second option does
    quiz.button.click()
    assert quiz.feedback.correct and "✔ right" in quiz.output.value
    assert quiz.answer("not an option").message.startswith("no answer yet")
    assert quiz.choice.value is None


def test_a_typed_quiz_reads_numbers_and_words():
    number = Quiz("how many?", answer=6, explain="six.")
    assert number.answer("6").correct and number.answer(" 6.0 ").correct
    assert not number.answer("7").correct and not number.answer("six").correct
    assert number.answer("").message.startswith("no answer yet")
    close = Quiz("ms?", answer=200.0, explain="x", tolerance=5)
    assert close.answer("203").correct and not close.answer("210").correct
    word = Quiz("which table?", answer="binding_cache", explain="x",
                hints={"spd": "The SPD comes first."})
    assert word.answer("  Binding_Cache ").correct
    assert word.answer("SPD").message.startswith("The SPD comes first.")


def test_a_prediction_is_compared_with_the_run(capsys):
    guess = Prediction("how many?", options=[2, 4, 6])
    guess.compare(6, "three exchanges.")
    assert guess.feedback is None
    assert capsys.readouterr().out == "You made no prediction. The lab: 6. three exchanges.\n"
    guess.predict(4)
    guess.compare(lambda: 6, "three exchanges.")
    assert guess.feedback is not None and not guess.feedback.correct
    assert "You predicted 4; the lab: 6 — not what you predicted" in guess.output.value
    guess.choice.value = 2              # the dropdown's third option
    guess.compare(6)
    assert guess.feedback.correct and "as you predicted" in guess.text()


def test_a_free_text_prediction_is_set_beside_the_result():
    guess = Prediction("what will the HA do?")
    guess.predict("drop it")
    guess.compare("BA status 129")
    assert guess.feedback is None
    assert guess.result == "You predicted: drop it. The lab: BA status 129."
    guess.predict("3")
    guess.compare(3)
    assert guess.feedback.correct


def test_a_figure_carries_its_text_alternative():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.bar(["K=1", "K=0"], [6, 57])
    shown = Figure(fig, alt="seam crossings per handover: K=1 6, K=0 57", caption="slide 7")
    html = shown._repr_html_()
    assert 'alt="seam crossings per handover: K=1 6, K=0 57"' in html
    assert html.count("<img") == 1 and "<figcaption>slide 7</figcaption>" in html
    assert shown.png.startswith(b"\x89PNG") and not plt.get_fignums()   # closed once drawn
    assert shown.text().startswith("[figure] seam crossings")
    with pytest.raises(ValueError):
        Figure(plt.figure(), alt="  ")
