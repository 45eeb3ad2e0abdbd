"""04-k-bit executed headless: a handover with K=1 (MIGRATE, no IKE) and with K=0 (IKE
again from the new care-of address), the K flag in the decrypted BU and BA, the cost per
handover in a table and a plot, and the quizzes checked right and wrong.

Every value the notebook's prose relies on is asserted here from the executed notebook's
own output, so a change in the stack fails this test and sends someone to re-read the prose.
"""

from __future__ import annotations

import re

import pytest

from .conftest import check_clean, row

COA1, COA2 = "2001:db8:a1::5eff:fe00:f", "2001:db8:a2::5eff:fe00:f"
HOA, HA = "2001:db8:0:1::1001", "2001:db8:0:1::2"

PROBES = (
    'print(sa_quiz.answer("the BU/BA SA (ESP transport mode)"))',      # 0
    'print(sa_quiz.answer("the IKE SA"))',                              # 1
    'print(flag_quiz.answer("in the BU and in the BA"))',               # 2
    'print(flag_quiz.answer("in the BU only"))',                        # 3
    'print(seam_quiz.answer("51"))',                                    # 4 typed
    'print(seam_quiz.answer(57))',                                      # 5
    'print(seam_quiz.answer(6))',                                       # 6
    'print(gap_quiz.answer("waiting for the new care-of address (movement detection)"))',  # 7
    'print(gap_quiz.answer("the BU/BA round trip"))',                   # 8
    'ike_k1_guess.predict(4); ike_k1_guess.compare(k1_first["ike_messages"], "x")',        # 9
    'ike_k0_guess.predict(6); ike_k0_guess.compare(k0_first["ike_messages"], "x")',        # 10
    'loss_guess.predict("K=1"); loss_guess.compare(loss_winner, "x")',                     # 11
)


@pytest.fixture(scope="module")
def run(executed):
    return executed("04-k-bit.ipynb", PROBES)


def test_budget(run):
    check_clean(run)


def test_the_first_dashboard_is_the_handover_with_k1_and_the_widgets(run):
    first = next(c for c in run.code if "Dashboard(" in c.source)
    assert first is run.tagged("dashboard")
    assert 'Dashboard("handover")' in first.source
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for o in first.outputs if o.output_type == "execute_result")
    # the dashboard, 3 predictions and 4 quizzes
    assert len(run.widgets()) == 1 + 3 + 4


def test_before_the_move_ipsec_still_names_the_old_coa(run):
    text = run.out("move")
    assert "t = 5.000 s: the MN is on visit2" in text
    assert f"the MN's IKE SA now: {COA1}:500 ↔ {HA}:500 ESTABLISHED" in text
    assert f"(transport): {HOA} → {HA}" in text
    assert f"(tunnel): {COA1} → {HA}" in text


def test_the_k_flag_in_the_decrypted_bu_and_ba(run):
    bu = run.out("bu-k1")
    assert "decrypted with SA 0x" in bu and "transport mode" in bu
    assert "Binding Update (DSMIPv6) seq 1, lifetime 60 s, flags KHA" in bu
    assert "the flags byte: 0xd0 = 11010000 (A H L K M R P F)" in bu
    assert "K = 1" in bu
    assert "the BA, decrypted: status 0, flags K, seq 1; K = 1" in run.out("ba-k1")
    flags = run.out("flags")
    assert "K=0: BU flags HA (flags byte 0xc0), K = 0; BA K = 0" in flags
    assert "K=1: BU flags KHA (flags byte 0xd0), K = 1; BA K = 1" in flags


def test_k1_the_ha_and_the_mn_migrate_and_ike_follows(run):
    ha = run.out("ba-k1")
    # the PAD check, the binding, then MIGRATE to the kernel, its broadcast, IKE follows
    steps = ["PAD LOOKUP", "binding " + HOA, "mip6d → kernel: MIGRATE",
             "kernel → mip6d, iked: MIGRATE", "K bit: IKE SA follows"]
    assert [ha.index(step) for step in steps] == sorted(ha.index(step) for step in steps)
    migrate = next(line for line in ha.splitlines() if "mip6d → kernel: MIGRATE" in line)
    assert f"{HA}->{COA1} becomes {HA}->{COA2} K=1" in migrate
    assert f"K bit: IKE SA follows {HA} <-> {COA1} to {HA} <-> {COA2}" in ha
    mn = run.out("migrate-k1")
    assert "BA seq 1 status 0 K" in mn
    assert f"K bit: IKE SA follows {COA1} <-> {HA} to {COA2} <-> {HA}" in mn
    assert f"the MN's IKE SA now: {COA2}:500 ↔ {HA}:500 | exchanges so far: 3" in mn
    assert f"(transport): {HOA} → {HA}  [unchanged]" in mn
    assert f"(tunnel): {COA2} → {HA}  [moved]" in mn


def test_k1_ladder_no_ike_and_migrate_on_both_sides(run):
    text = run.out("ladder-k1")
    assert "IKE messages: 0; seam crossings: 6 (the scenario's report: 0 and 6)" in text
    assert "ha ◆ mip6d→kernel MIGRATE K=1" in text and "mn ◆ mip6d→kernel MIGRATE K=1" in text
    assert "mn BU K=1 → ha" in text and "ha BA K=1 → mn" in text
    assert "IKE_" not in text.split("IKE messages:")[0]
    assert "You made no prediction. The lab: 0. K=1 on both sides" in text


def test_k0_runs_ike_again_before_the_bu(run):
    text = run.out("ladder-k0")
    assert "rebuilt handover with seed 0, k_bit=0" in text
    ladder = text.split("\n#")[0]
    sent = re.findall(r"(IKE_SA_INIT|IKE_AUTH|CREATE_CHILD_SA) (request|response) #(\d)", ladder)
    assert sent == [("IKE_SA_INIT", "request", "0"), ("IKE_SA_INIT", "response", "0"),
                    ("IKE_AUTH", "request", "1"), ("IKE_AUTH", "response", "1"),
                    ("CREATE_CHILD_SA", "request", "2"), ("CREATE_CHILD_SA", "response", "2")]
    # the IKE exchanges come before the BU, and the BU carries K=0
    assert ladder.index("CREATE_CHILD_SA response #2") < ladder.index("mn BU K=0 → ha")
    assert "ha BA K=0 → mn" in ladder
    assert "MIGRATE K=1" not in ladder and "mn ◆ mip6d→kernel MIGRATE K=0" in ladder
    assert "mn ◆ kernel→iked ACQUIRE" in ladder        # the prose: data with no SA
    assert f"mn: mip6d → iked: DISCARD IKE SA {COA1} ↔ {HA}" in text
    assert f"mn: mip6d → iked: INITIATE IKE SA {COA2} → {HA}, CFG_REQUEST INTERNAL_IP6_ADDRESS" in text
    assert "You made no prediction. The lab: 6. IKE_SA_INIT and IKE_AUTH again" in text


def test_side_by_side(run):
    text = run.out("side-by-side")
    assert text.splitlines()[0].startswith("K=1") and "| K=0" in text.splitlines()[0]
    assert "the HA sends its BA 69.2 ms (K=1) and 109.2 ms (K=0) after the move; " \
           "8 against 65 lines of signalling" in text


def test_the_table_per_handover(run):
    text = run.out("table")
    assert "the dashboard's handovers are the same as these runs': True" in text
    assert row(text, "IKE requests of mip6d") == ["0", "2", "0", "2", "0", "2"]
    assert row(text, "IKE messages") == ["0", "6", "0", "6", "0", "6"]
    assert row(text, "seam crossings") == ["6", "57", "6", "57", "6", "56"]
    assert row(text, "signalling bytes") == ["276", "2066", "276", "2066", "276", "2066"]
    assert row(text, "CoA to BA (ms)") == ["16.0", "52.0"] * 3
    assert row(text, "interruption (ms)") == ["200.0", "300.0", "300.0", "300.0", "200.0", "200.0"]
    assert row(text, "data lost") == ["1", "2", "2", "2", "1", "1"]
    totals = text.split("over the 3 handovers")[1]
    assert row(totals, "seam crossings") == ["18", "170"]
    assert row(totals, "interruption (ms)") == ["700", "800"]     # K=0 the bigger
    assert row(totals, "data lost") == ["4", "5"]
    assert "the first registration (from visit1), either way: 6 IKE messages, 43 seam crossings" in text
    assert "You made no prediction. The lab: K=0. 5 requests lost with K=0, 4 with K=1" in text


def test_the_figure_says_its_numbers(run):
    html = next(o["data"]["text/html"] for o in run.tagged("figure").outputs
                if "text/html" in o.get("data", {}))
    assert "IKE messages: K=1 0, 0, 0; K=0 6, 6, 6." in html
    assert "seam crossings: K=1 6, 6, 6; K=0 57, 57, 56." in html
    assert "interruption (ms): K=1 200, 300, 200; K=0 300, 300, 200." in html


def test_movement_detection_and_the_slow_path(run):
    text = run.out("detection")
    assert "every 50 to 150 ms; the data stream asks every 100 ms" in text
    assert "(63.2 ms of movement detection), its BA 52 ms later; K=1 had its BA 16 ms" in text
    slow = run.out("slow")
    assert row(slow, "CoA to BA (ms)") == ["160.0", "520.0"] * 3
    assert row(slow, "interruption (ms)") == ["500.0", "900.0", "400.0", "800.0", "400.0", "800.0"]
    assert row(slow, "data lost") == ["4", "8", "3", "7", "3", "7"]
    assert "interruption (ms): K=1 1300, K=0 2500 (with 2 ms links: 700 and 800)" in slow


def test_the_summary(run):
    text = run.out("summary")
    assert "K=1 run: BU K=1, BA K=1; K=0 run: BU K=0, BA K=0" in text
    assert "K=1, later handovers: IKE messages [0, 0, 0], MIGRATE crossings on the handover to visit2: 4" in text
    assert "K=0, later handovers: IKE messages [6, 6, 6] (IKE requests of mip6d [2, 2, 2])" in text
    assert "- data lost, over the 3 handovers: K=1 4, K=0 5" in text


def test_quiz_checkers(run):
    p = run.probes
    assert p[0].startswith("✔ right: The BU/BA SA's endpoints are the home address")
    assert p[1].startswith("✘ not quite: The IKE SA runs between the CoA and the HA")
    assert "The lab says the BU/BA SA (ESP transport mode)." in p[1]
    assert p[2].startswith("✔ right: A flag of the Mobility Header in both")
    assert p[3].startswith("✘ not quite: Look at the BA's flags above")
    assert p[4].startswith("✔ right: K=1 needs the PAD check and one MIGRATE")
    assert p[5].startswith("✘ not quite: That is K=0's count; subtract K=1's.")
    assert "The lab says 51." in p[5]
    assert p[6].startswith("✘ not quite: That is K=1's own count")
    assert p[7].startswith("✔ right: The MN cannot send a BU before it has a CoA")
    assert p[8].startswith("✘ not quite: Compare the two numbers printed above")


def test_predictions_compare(run):
    p = run.probes
    assert p[9].startswith("You predicted 4; the lab: 0 — not what you predicted.")
    assert p[10].startswith("You predicted 6; the lab: 6 — as you predicted.")
    assert p[11].startswith("You predicted K=1; the lab: K=0 — not what you predicted.")
