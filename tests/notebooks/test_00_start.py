"""00-start executed headless: the dashboard shown, and what its text says it found."""

from __future__ import annotations

import re

import pytest

from .conftest import check_budget, check_pictures

PROBES = (
    'print(order_quiz.answer("PAD LOOKUP"))',
    'print(order_quiz.answer("SPDADD"))',
    'print(order_quiz.answer(None))',
    'ike_guess.predict(4); ike_guess.compare(len(ike_sent), "x")',
    'ike_guess.predict(6); ike_guess.compare(len(ike_sent), "x")',
)


@pytest.fixture(scope="module")
def start(executed):
    return executed("00-start.ipynb", PROBES)


def test_runs_within_budget_without_error(start):
    check_budget(start)
    check_pictures(start)
    assert not start.stderr


def test_shows_the_dashboard_and_its_findings(start):
    widget = [o for o in start.code[0].outputs if o.output_type == "execute_result"]
    assert widget and "application/vnd.jupyter.widget-view+json" in widget[0]["data"]
    text = start.text
    # the IKE exchanges before the first BU: SA_INIT, AUTH, CREATE_CHILD_SA, both ways
    assert "IKE messages sent by the MN and the HA before the first BU: 6" in text
    assert "IKE_SA_INIT request #0" in text and "CREATE_CHILD_SA response #2" in text
    # headless, nobody predicted: the comparison says so and gives the lab's value
    assert "You made no prediction. The lab: 6. three exchanges" in text
    assert "You made no prediction. The lab: spd. IPsec processing comes first" in text
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


def test_the_quiz_checks_against_the_run(start):
    right, wrong, empty = start.probes[:3]
    assert right.startswith("✔ right: RFC 4877 §4.2 and §7.1")
    assert wrong.startswith("✘ not quite: The SPD entries exist already")
    assert "The lab says PAD LOOKUP" in wrong
    assert empty.startswith("✘ not quite: no answer yet")


def test_the_prediction_compares_with_the_run(start):
    assert start.probes[3].startswith("You predicted 4; the lab: 6 — not what you predicted")
    assert start.probes[4].startswith("You predicted 6; the lab: 6 — as you predicted")
