"""``mip6lab compare``: the --json contract, the CSV, determinism, exit status, and that
the numbers say what the variants change (mip6lab.compare)."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from mip6lab.cli import main
from mip6lab.compare import (DEFAULT_VARIANTS, ROOMS, STEP_COLUMNS, VARIANT_NAMES, VARIANTS,
                             RoomProfiler, Variant, compare, parse_seeds, room_of,
                             round_trips, state_tables)
from mip6lab.scenarios import SCENARIOS, ScenarioError, create

ARGS = ["compare", "handover", "--variants", "ipsec-k1,ipsec-k0", "--seeds", "0,1"]
RUN_KEYS = {"scenario", "variant", "seed", "options", "ok", "steps", "states",
            "states_by_node", "cpu_ms", "cpu_total_ms", "data"}
STEP_KEYS = {"step", "kind", "to", "coa", "ba_status", "bu_sent", "ike_exchanges",
             *STEP_COLUMNS}
NOT_DETERMINISTIC = ("cpu_ms", "cpu_total_ms")


def _run_main(capsys, *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def report():
    """``mip6lab compare handover --variants ipsec-k1,ipsec-k0 --seeds 0,1 --json``."""
    import contextlib

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main([*ARGS, "--json"])
    assert status == 0
    return json.loads(buffer.getvalue())


def _runs(report, variant):
    return [r for r in report["runs"] if r["variant"] == variant]


def _without_cpu(value):
    if isinstance(value, dict):
        return {k: _without_cpu(v) for k, v in value.items() if k not in NOT_DETERMINISTIC}
    if isinstance(value, list):
        return [_without_cpu(v) for v in value]
    return value


# -- the --json contract ---------------------------------------------------------------------


def test_json_has_one_run_per_scenario_variant_seed(report):
    assert {"scenarios", "variants", "seeds", "settings", "definitions", "variant_settings",
            "runs", "aggregate", "skipped", "ok"} <= set(report)
    assert report["scenarios"] == ["handover"]
    assert report["variants"] == ["ipsec-k1", "ipsec-k0"]
    assert report["seeds"] == [0, 1]
    assert report["ok"] is True and report["skipped"] == []
    keys = [(r["scenario"], r["variant"], r["seed"]) for r in report["runs"]]
    assert keys == [("handover", v, s) for v in ("ipsec-k1", "ipsec-k0") for s in (0, 1)]
    assert report["variant_settings"]["ipsec-k0"]["k_bit"] == 0


def test_json_run_rows_have_their_types(report):
    for run in report["runs"]:
        assert set(run) == RUN_KEYS
        assert run["ok"] is True
        assert run["options"]["k_bit"] == (1 if run["variant"] == "ipsec-k1" else 0)
        assert [s["step"] for s in run["steps"]] == [1, 2, 3, 4]
        assert [s["kind"] for s in run["steps"]] == ["registration"] + ["handover"] * 3
        assert [s["to"] for s in run["steps"]] == ["visit1", "visit2", "visit3", "visit4"]
        for step in run["steps"]:
            assert set(step) == STEP_KEYS
            for column in ("ike_messages", "mobility_messages", "messages", "bytes",
                           "round_trips", "seam_crossings", "data_lost"):
                assert isinstance(step[column], int) and step[column] >= 0, column
            assert step["messages"] == step["ike_messages"] + step["mobility_messages"]
            assert step["mobility_messages"] == 2          # one BU, one BA, no loss
            assert step["ba_status"] == 0
        assert run["steps"][0]["interruption_ms"] is None   # no data before the first BA
        assert all(isinstance(s["interruption_ms"], float) for s in run["steps"][1:])
        assert set(run["states"]) == set(state_tables())
        assert all(isinstance(n, int) for n in run["states"].values())
        assert set(run["states_by_node"]) == {"mn", "ha"}
        assert set(run["cpu_ms"]) == set(ROOMS)
        assert all(isinstance(v, float) and v >= 0 for v in run["cpu_ms"].values())
        assert isinstance(run["cpu_total_ms"], float) and run["cpu_total_ms"] > 0


def test_json_aggregate_is_mean_min_max_of_the_runs(report):
    rows = report["aggregate"]
    assert [(r["scenario"], r["variant"]) for r in rows] == [("handover", "ipsec-k1"),
                                                             ("handover", "ipsec-k0")]
    for row in rows:
        runs = _runs(report, row["variant"])
        assert row["runs"] == row["ok_runs"] == 2 and row["seeds"] == [0, 1]
        assert len(row["steps"]) == 4
        for index, step in enumerate(row["steps"]):
            for column in STEP_COLUMNS:
                values = [r["steps"][index][column] for r in runs]
                present = [v for v in values if v is not None]
                if not present:
                    assert step[column] is None
                    continue
                assert step[column]["min"] == min(present)
                assert step[column]["max"] == max(present)
                assert step[column]["mean"] == pytest.approx(sum(present) / len(present),
                                                             abs=1e-3)
        for table, spread in row["states"].items():
            assert spread["max"] == max(r["states"][table] for r in runs)
        assert set(row["cpu_ms"]) == set(ROOMS)


def test_k1_handovers_run_no_ike_while_k0_runs_it_again(report):
    for run in _runs(report, "ipsec-k1"):
        later = run["steps"][1:]
        assert [s["ike_messages"] for s in later] == [0, 0, 0]
        assert [s["round_trips"] for s in later] == [1, 1, 1]     # BU/BA only
    for run in _runs(report, "ipsec-k0"):
        later = run["steps"][1:]
        assert all(s["ike_messages"] >= 6 for s in later)
        # IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA, then BU/BA
        assert [s["round_trips"] for s in later] == [4, 4, 4]
        assert all(s["seam_crossings"] > 6 for s in later)
    k1, k0 = (_runs(report, v)[0] for v in ("ipsec-k1", "ipsec-k0"))
    assert k0["steps"][1]["bytes"] > 5 * k1["steps"][1]["bytes"]
    assert k0["steps"][1]["duration_ms"] > k1["steps"][1]["duration_ms"]
    # the first registration is the same bootstrap in both
    assert k0["steps"][0]["messages"] == k1["steps"][0]["messages"]


def test_ike_messages_match_the_scenario_report(report):
    """The trace classification of compare agrees with the scenario's own count."""
    scenario = create("handover", seed=1, k_bit=0)
    try:
        own = scenario.run()["result"]["handovers"]
    finally:
        scenario.close()
    run = next(r for r in _runs(report, "ipsec-k0") if r["seed"] == 1)
    assert [s["ike_messages"] for s in run["steps"]] == [h["ike_messages"] for h in own]
    assert [s["bytes"] for s in run["steps"]] == [h["signalling_bytes"] for h in own]


def test_cpu_time_goes_to_the_rooms_that_spend_it(report):
    for run in report["runs"]:
        cpu = run["cpu_ms"]
        assert sum(cpu.values()) == pytest.approx(run["cpu_total_ms"], rel=0.1)
        assert cpu["network"] > 0 and cpu["IPsec"] > 0 and cpu["IKE"] > 0
        assert cpu["auth-option"] == 0                 # no RFC 4285 code ran
    ike = {v: sum(r["cpu_ms"]["IKE"] for r in _runs(report, v))
           for v in ("ipsec-k1", "ipsec-k0")}
    assert ike["ipsec-k0"] > ike["ipsec-k1"]         # three more IKE_SA_INITs and AUTHs


# -- determinism, csv ------------------------------------------------------------------------


def test_same_seeds_give_the_same_numbers_but_cpu(report):
    again = compare(["handover"], ["ipsec-k1", "ipsec-k0"], [0, 1], cpu=False).to_dict()
    assert _without_cpu(again) == _without_cpu(report)
    assert all(r["cpu_ms"] is None for r in again["runs"])


def test_csv_parses_and_has_the_rows_of_the_json(capsys, report):
    status, out, _ = _run_main(capsys, *ARGS, "--csv", "--no-cpu")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    expected = [(r["scenario"], r["variant"], r["seed"], s) for r in report["runs"]
                for s in r["steps"]]
    assert len(rows) == len(expected) == 16
    for row, (scenario, variant, seed, step) in zip(rows, expected):
        assert (row["scenario"], row["variant"], int(row["seed"])) == (scenario, variant, seed)
        assert int(row["step"]) == step["step"] and row["to"] == step["to"]
        for column in ("ike_messages", "mobility_messages", "messages", "bytes",
                       "round_trips", "seam_crossings", "data_lost"):
            assert int(row[column]) == step[column], column
        assert (row["interruption_ms"] == "") == (step["interruption_ms"] is None)
        assert row["cpu_network_ms"] == ""             # --no-cpu
    run = report["runs"][0]
    assert int(rows[0]["state_spd"]) == run["states"]["spd"] > 0
    assert int(rows[0]["state_ike_sas"]) == run["states"]["ike_sas"]


def test_text_table_names_every_step_and_the_states(capsys):
    status, out, _ = _run_main(capsys, "compare", "home-registration", "--variants",
                               "ipsec-prefix", "--seeds", "1", "--no-cpu", "--code")
    assert status == 0
    assert "1 registration (visit1)" in out and "ipsec-prefix" in out
    assert "states at the end:" in out and "SPD" in out
    assert "CPU ms by room: not measured" in out
    assert "ipsec mode: mobility" in out                 # --code


# -- exit status -------------------------------------------------------------------------------


def test_a_failed_verdict_exits_1(capsys):
    status, out, _ = _run_main(capsys, "compare", "home-registration", "--variants",
                               "ipsec-k1", "--seeds", "1", "--no-cpu", "--set",
                               "mn_psk=not-the-ha-key", "--json")
    assert status == 1
    data = json.loads(out)
    assert data["ok"] is False and data["runs"][0]["ok"] is False
    assert data["runs"][0]["steps"][0]["ba_status"] is None     # IKE failed: no BU


@pytest.mark.parametrize("args, message", [
    (["--variants", "ipsec-k2"], "no variant 'ipsec-k2'"),
    (["ping-nat"], "compare runs the mobility scenarios"),
    (["no-such-scenario"], "no scenario"),
    (["--seeds", "zero"], "--seeds"),
    (["--seeds", "1,1"], "distinct"),
    (["--set", "k_bit=0"], "clashes with variant ipsec-k1"),
    (["--set", "no_such_option=1"], "has no option no_such_option"),
    (["--set", "loss"], "KEY=VALUE"),
    (["--set", "loss=2"], "bad option value"),
])
def test_usage_errors_exit_2(capsys, args, message):
    status, out, err = _run_main(capsys, "compare", *args, "--no-cpu")
    assert status == 2
    assert message in err and out == ""


def test_json_and_csv_together_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--json", "--csv"])
    assert exit_info.value.code == 2


# -- the variants table, the rules -------------------------------------------------------------


def test_variants_and_their_settings():
    assert VARIANT_NAMES == ("ipsec-k1", "ipsec-k0", "ipsec-prefix", "auth-option",
                             "auth-option-esp")
    assert DEFAULT_VARIANTS == ("ipsec-k1", "ipsec-k0", "ipsec-prefix", "auth-option")
    by_name = {v.name: v for v in VARIANTS}
    assert by_name["ipsec-k1"].settings == {"k_bit": 1}
    assert by_name["ipsec-k0"].settings == {"k_bit": 0}
    assert by_name["ipsec-prefix"].settings == {"hoa_mode": "prefix"}
    assert by_name["auth-option"].security == "auth-option"
    handover = SCENARIOS["handover"]
    options = by_name["ipsec-k0"].options_for(handover)
    assert options["k_bit"] == 0
    assert options.get("security", "ipsec") == "ipsec"


def test_auth_option_variant_runs_or_says_why_not():
    """Where the scenarios have a ``security`` option with ``auth-option``, the variant
    runs and sends no IKE on any step; where they do not, it is skipped with the reason."""
    handover = SCENARIOS["handover"]
    auth = next(v for v in VARIANTS if v.name == "auth-option")
    has_mode = "auth-option" in handover.choices.get("security", ())
    if not has_mode:
        with pytest.raises(ValueError, match="has no option security"):
            auth.options_for(handover)
        with pytest.raises(ScenarioError, match="nothing to run.*has no option security"):
            compare(["handover"], ["auth-option"], [0], cpu=False)
        return
    result = compare(["handover", "dsmip6-v4"], ["ipsec-k1", "auth-option",
                                                 "auth-option-esp"], [0])
    data = result.to_dict()
    skipped = {(s["scenario"], s["variant"]): s["reason"] for s in data["skipped"]}
    assert set(skipped) == {("dsmip6-v4", "auth-option"), ("dsmip6-v4", "auth-option-esp")}
    assert "DSMIP6" in skipped[("dsmip6-v4", "auth-option")]
    assert [(r["scenario"], r["variant"]) for r in data["runs"]] == [
        ("handover", "ipsec-k1"), ("handover", "auth-option"),
        ("handover", "auth-option-esp"), ("dsmip6-v4", "ipsec-k1")]
    esp = next(r for r in data["runs"] if r["variant"] == "auth-option-esp")
    assert esp["ok"] is True and esp["options"]["protect_payload"] == 1
    assert all(s["ike_messages"] == 0 for s in esp["steps"])
    assert esp["states"]["sad"] == 4 and esp["states"]["spd"] > 0    # the manual SA pair
    assert esp["states"]["ike_sas"] == 0 and esp["cpu_ms"]["IPsec"] > 0
    runs = [r for r in data["runs"] if r["variant"] == "auth-option"]
    assert len(runs) == 1 and runs[0]["ok"] is True
    assert runs[0]["options"]["protect_payload"] == 0          # RFC 4285's usual tunnel
    steps = runs[0]["steps"]
    assert all(s["ike_messages"] == 0 for s in steps)
    assert all(s["round_trips"] == 1 and s["mobility_messages"] == 2 for s in steps)
    assert runs[0]["states"]["ike_sas"] == 0
    assert runs[0]["states"]["spd"] == runs[0]["states"]["sad"] == 0   # no IPsec at all
    assert runs[0]["states"]["mobility_sas"] == 2          # the HA's store, the MN's SA
    assert runs[0]["states"]["binding_cache"] == 1
    ipsec = next(r for r in data["runs"] if (r["scenario"], r["variant"]) ==
                 ("handover", "ipsec-k1"))
    assert ipsec["states"]["mobility_sas"] == 0
    assert runs[0]["cpu_ms"]["auth-option"] > 0
    assert runs[0]["cpu_ms"]["IKE"] == 0


def test_seeds_parse_as_a_count_or_a_list():
    assert parse_seeds("3") == [0, 1, 2]
    assert parse_seeds("1") == [0]
    assert parse_seeds("4,7") == [4, 7]
    assert parse_seeds("5,") == [5]
    for bad in ("0", "-1", "a", "1,-2", ""):
        with pytest.raises(ScenarioError):
            parse_seeds(bad)


def test_round_trips_count_the_turns_of_the_signalling():
    assert round_trips([]) == 0
    assert round_trips(["mn", "ha"]) == 1
    assert round_trips(["mn", "ha"] * 4) == 4
    assert round_trips(["mn", "mn", "ha"]) == 1          # a retransmission, one answer
    assert round_trips(["mn", "ha", "mn", "ha"]) == 2    # answered twice: cost twice
    assert round_trips(["ha", "mn"]) == 0                # the HA asking is not a BU's RT
    assert round_trips(["mn"]) == 0


@pytest.mark.parametrize("path, room", [
    ("mobility/mobile_node.py", "mobility"), ("mobility/binding_cache.py", "mobility"),
    ("wire/mip6.py", "mobility"), ("mobility/coupling.py", "coupling"),
    ("mobility/auth_option.py", "auth-option"), ("wire/auth.py", "auth-option"),
    ("ikev2/sa.py", "IKE"), ("crypto/ike/prf.py", "IKE"), ("wire/ikev2.py", "IKE"),
    ("ipsec/esp.py", "IPsec"), ("crypto/esp_suites.py", "IPsec"),
    ("net/node.py", "network"), ("trace.py", "lab"), ("scenarios/mobility.py", "lab"),
])
def test_rooms_by_file(path, room):
    assert room_of(path) == room


def test_library_time_goes_to_the_room_of_its_caller():
    """HMAC inside ``cryptography``, called by the IKE PRF: IKE's time."""
    from mip6lab.crypto.ike.prf import Prf

    prf = Prf(5)                    # PRF_HMAC_SHA2_256
    with RoomProfiler() as profiler:
        deadline = time.process_time() + 0.3
        while time.process_time() < deadline:
            prf.plus(b"k" * 32, b"seed" * 8, 1024)
    cpu = profiler.cpu_ms
    assert cpu is not None and profiler.samples > 50
    assert cpu["IKE"] > 0.8 * sum(cpu.values())
    assert sum(cpu.values()) == pytest.approx(1000 * profiler.total, rel=0.05)


# -- as a process ------------------------------------------------------------------------------


def test_the_command_as_a_process():
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = str(repo) + os.pathsep + env.get("PYTHONPATH", "")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "mip6lab", "compare", *args],
                              capture_output=True, text=True, env=env, timeout=120)

    ok = run("home-registration", "--variants", "ipsec-k1", "--seeds", "1", "--no-cpu",
             "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["runs"][0]["steps"][0]["round_trips"] == 4
    bad = run("--variants", "nope")
    assert bad.returncode == 2 and "no variant 'nope'" in bad.stderr


def test_closed_ike_sas_are_not_held(report):
    """K=0 leaves the IKE SAs of earlier CoAs listed as CLOSED: not state held."""
    for run in report["runs"]:
        assert run["states"]["ike_sas"] == 2                 # one at the MN, one at the HA
        assert run["states_by_node"]["mn"]["ike_sas"] == 1
        assert run["states"]["child_sas"] == 4
        assert run["states"]["binding_cache"] == 1 and run["states"]["pad"] == 1


def test_a_scenario_without_the_security_option_runs_ipsec_only():
    """Before (or without) the auth-option mode: ipsec is what such a scenario does."""
    from mip6lab.scenarios.mobility import MobilityScenario

    class Older(MobilityScenario):
        name = "older"
        options = {k: v for k, v in MobilityScenario.options.items() if k != "security"}
        choices = {k: v for k, v in MobilityScenario.choices.items() if k != "security"}

    by_name = {v.name: v for v in VARIANTS}
    assert by_name["ipsec-k0"].options_for(Older) == {"k_bit": 0}
    for name in ("auth-option", "auth-option-esp"):
        with pytest.raises(ValueError, match="scenario older has no option security"):
            by_name[name].options_for(Older)
    with pytest.raises(ValueError, match="option hoa_mode takes"):
        Variant("bad", "ipsec", {"hoa_mode": "nope"}, "").options_for(Older)
