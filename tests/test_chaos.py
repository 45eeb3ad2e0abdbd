"""``mip6lab chaos``: a small table, its cells checked against single runs."""

from __future__ import annotations

import json

import pytest

from mip6lab.chaos import Row, columns_for, rows_for, run_chaos
from mip6lab.cli import main
from mip6lab.scenarios import create
from mip6lab.scenarios.base import ScenarioError


@pytest.fixture(scope="module")
def table():
    return run_chaos(["home-registration", "dsmip6-nat"], losses=[0.0, 0.4],
                     duplicate=0.5, reorder=0.5, seeds=2, jobs=1,
                     options={"data_interval": 0.5})


def test_rows_follow_what_each_scenario_accepts(table):
    # RFC 4285 has no DSMIP6: the scenario refuses auth-option, so it has no such row
    assert table.rows == [Row("home-registration", "ipsec"),
                          Row("home-registration", "auth-option"),
                          Row("dsmip6-nat", "ipsec")]
    assert [c.label for c in table.columns] == ["loss 0%", "loss 40%", "dup 50%",
                                                "reorder 50%"]


def test_cells(table):
    for row in table.rows:
        for column in table.columns:
            cell = table.cells[(row, column)]
            assert cell.runs == 2 and 0 <= cell.completed <= 2
            assert len(cell.failed_seeds) == 2 - cell.completed
    assert table.cell("home-registration", "ipsec", "loss 0%").completed == 2
    assert table.cell("home-registration", "ipsec", "loss 0%").data_lost == 0
    assert table.cell("dsmip6-nat", "ipsec", "dup 50%").completed == 2
    # 40 % loss costs data (and, over 5 s visits, some runs)
    lossy = table.cell("dsmip6-nat", "ipsec", "loss 40%")
    assert lossy.data_lost > 0


def test_a_cell_is_its_runs(table):
    """Each cell is the scenarios' own verdicts: the same runs, made one by one."""
    for seed in range(2):
        report = create("home-registration", seed=seed, security="auth-option", loss=0.4,
                        data_interval=0.5).run()
        cell = table.cell("home-registration", "auth-option", "loss 40%")
        assert (seed in cell.failed_seeds) == (not report["ok"])


def test_render_and_json(table):
    text = table.render()
    assert text.splitlines()[0].split()[:3] == ["scenario", "(security)", "loss"]
    assert "home-registration (auth-option)" in text and "2/2 (0 lost)" in text
    data = table.to_dict()
    assert data["seeds"] == 2 and data["columns"][-1] == "reorder 50%"
    assert json.loads(json.dumps(data)) == data


def test_columns_and_rows_check_their_input():
    assert [c.label for c in columns_for([0.1], None, 0.2)] == ["loss 10%", "reorder 20%"]
    with pytest.raises(ScenarioError):
        rows_for(["no-such-scenario"], ["ipsec"])
    with pytest.raises(ScenarioError):
        rows_for(["handover"], ["none"])


def test_cli(capsys):
    assert main(["chaos", "--scenario", "home-registration", "--security", "ipsec",
                 "--seeds", "1", "--loss", "0", "--duplicate", "0", "--reorder", "0",
                 "--jobs", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["columns"] == ["loss 0%"]
    assert out["rows"][0]["cells"]["loss 0%"]["completed"] == 1
    assert main(["chaos", "--loss", "x"]) == 2


#: the visit that lets the RFC timers finish every exchange at 30 % loss (docs/reliability.md)
LONG_VISIT = 300.0


def test_every_registration_and_handover_completes_at_30_percent_loss_with_long_visits():
    """Issue 14.3's goal: at 30 % loss each way on the access links, every registration
    and every handover of the ``handover`` scenario (a registration from away, three
    moves: K=1 IPsec with ESP-protected BUs, or RFC 4285) completes for all 20 seeds.
    The RFC timers cannot do it within 5 s visits (docs/reliability.md gives the
    arithmetic), so the visits are lengthened to 300 s with the scenarios' ``visit``
    option; the BU retransmissions (RFC 6275 §11.8, up to 32 s apart) and IKE's (RFC 7296
    §2.1) then finish inside each visit. The lost data is counted: at 30 % each way about
    half of the requests go unanswered."""
    table = run_chaos(["handover"], ["ipsec", "auth-option"], [0.3], None, None,
                      seeds=20, visit=LONG_VISIT, jobs=2, options={"data_interval": 5.0})
    for security in ("ipsec", "auth-option"):
        cell = table.cell("handover", security, "loss 30%")
        assert (cell.completed, cell.runs, cell.failed_seeds) == (20, 20, []), security
        assert 0.3 < cell.data_lost / cell.data_sent < 0.7, (cell.data_lost, cell.data_sent)
