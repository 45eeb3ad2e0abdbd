"""06-real-namespaces executed headless, both ways it can run, and its recording checked.

* **live** (root, radvd, nftables, conntrack, dumpcap, ethtool, tshark): the notebook runs
  dsmip6-nat and dsmip6-v4 on real namespaces; the facts it prints must be the in-process
  ones, tshark must have decrypted the BUs and BAs, and every namespace it made must be
  gone afterwards. Without the prerequisites this is skipped with the reason -- except in
  CI (``CI=true``), where it fails (:func:`mip6lab.testing.prereq.missing`);
* **recorded** (``MIP6LAB_RECORDED=1``, anywhere): the notebook says why in one sentence
  and shows the recording in ``notebooks/recorded/06-real-namespaces``, value for value;
* **the recording itself** must agree with the stack as it is now on every deterministic
  fact (home addresses, BA statuses, K bits, IKE exchanges, NAT detection), so that it
  cannot rot unnoticed: regenerate it with ``sudo scripts/record-netns-run``.

Values that depend on the wall clock (durations, the NAT's ports) are asserted by their
relations only (a real duration is the simulated one over the time scale ...).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from mip6lab.recorded import (NOTEBOOK_RECORDING, OPTIONS, TIME_SCALE, Recording, facts,
                              summary_rows, tshark_summary)
from mip6lab.scenarios import create
from mip6lab.testing.prereq import RECORDED_ENV, missing, netns_unavailable, require_tool

from .conftest import NOTEBOOKS, check_clean, execute

NAME = "06-real-namespaces.ipynb"
RECORDING = NOTEBOOKS / NOTEBOOK_RECORDING
HOA, HOA4 = "2001:db8:0:1::1001", "192.0.2.65"
REGISTRATIONS = ["(0, 1, 1)", "(0, 0, 1)", "(0, 0, 1)"]   # BA status, K, IKE exchanges
LABELS = {"sw", "hr", "inet", "cn", "nat", "ha", "mn"}

PROBES = (
    'print(real_ms_quiz.answer(str(round(behind["duration_ms"] / TIME_SCALE, 1))))',   # 0
    'print(real_ms_quiz.answer(round(behind["duration_ms"] * TIME_SCALE, 1)))',         # 1
    'print(source_quiz.answer("198.51.100.50"))',                                       # 2
    'print(source_quiz.answer("203.0.113.10"))',                                        # 3
    'print(seam_quiz.answer(str(no_standard)))',                                        # 4
    'print(seam_quiz.answer(len(seam)))',                                               # 5
    'differ_guess.predict("the time each registration takes"); '
    'differ_guess.compare(" and ".join(differing) or "nothing", "x")',                  # 6
    'differ_guess.predict("the home address"); '
    'differ_guess.compare(" and ".join(differing) or "nothing", "x")',                  # 7
    'nat_guess.predict("yes"); nat_guess.compare("yes" if netns_v4["result"]'
    '["nat_detected"] else "no", "x")',                                                 # 8
    'import os; print(os.getpid())',                                                    # 9
)


def _list_namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def _live_reason() -> str | None:
    """Why the live run cannot be made here (the env var that forces the recording is
    the recorded test's business, not a reason to skip this one)."""
    saved = os.environ.pop(RECORDED_ENV, None)
    try:
        return netns_unavailable("tshark")
    finally:
        if saved is not None:
            os.environ[RECORDED_ENV] = saved


@pytest.fixture(scope="module")
def live(executed):
    reason = _live_reason()
    if reason is not None:
        missing(f"the live run of notebook 06 needs real namespaces: {reason}")
    before = _list_namespaces()
    saved = os.environ.pop(RECORDED_ENV, None)     # the kernel inherits the environment
    try:
        run = executed("06-real-namespaces.ipynb", PROBES)
    finally:
        if saved is not None:
            os.environ[RECORDED_ENV] = saved
    return run, before, _list_namespaces()


@pytest.fixture(scope="module")
def recorded():
    return execute(NAME, PROBES, env={RECORDED_ENV: "1"})


@pytest.fixture(scope="module")
def recording():
    return Recording.load(RECORDING)


def _namespaces(text: str) -> dict[str, str]:
    return dict(re.findall(r"^    (\S+)  \((\w+)\)$", text, flags=re.M))


def _summary_rows(run) -> list[list[str]]:
    """The tshark lines as the notebook printed them (split on its column gaps)."""
    text = run.out("tshark")
    table = text[text.index("No. "):].splitlines()[1:]
    return [line for line in table if line.strip()]


# -- both ways -----------------------------------------------------------------------------


def _common(run) -> None:
    """What the notebook shows whichever way it ran."""
    check_clean(run)
    assert len(run.widgets()) == 2 + 3          # two predictions, three quizzes
    facts_text = run.out("facts")
    assert re.search(rf"^home address\s+{HOA}\s+{HOA}\s+yes$", facts_text, flags=re.M)
    assert re.search(rf"^IPv4 home address\s+{HOA4}\s+{HOA4}\s+yes$", facts_text, flags=re.M)
    for i, (to, value) in enumerate(zip(("visit1", "natlan", "home"), REGISTRATIONS)):
        assert re.search(rf"^registration {i} to {to}: BA status, K, IKE exchanges\s+"
                         rf"{re.escape(value)}\s+{re.escape(value)}\s+yes$", facts_text, flags=re.M)
    assert re.search(r"^NAT detected\s+True\s+True\s+yes$", facts_text, flags=re.M)
    assert "NO" not in facts_text and "every fact agrees: True" in facts_text
    # only the clock differs (the prediction's answer is computed from the two runs)
    assert "The lab: the time each registration takes." in run.out("times")
    # the ladders: the kernels log nothing, so the netns ladder has fewer columns and rows
    ladders = run.out("ladders")
    assert "columns: {'namespaces': ['mn', 'nat', 'hr', 'ha'], 'in process': ['hr', 'ha', " \
           "'mn', 'nat', 'inet']}" in ladders
    frames = json.loads(re.search(r"frames in the window: (\{.*\})", ladders).group(1)
                        .replace("'", '"'))
    assert frames["namespaces"] < frames["in process"] == 34
    ports = json.loads(re.search(r"before the rebinding: (\{.*\})", ladders).group(1)
                       .replace("'", '"'))
    assert ports["in process"] == [25162, 25637, 33046]      # seeded: the same every run
    assert len(ports["namespaces"]) == 3 and ports["namespaces"] != ports["in process"]
    # tshark, the oracle, decrypted BU/BA and the CP of IKE_AUTH
    check = run.out("tshark-check")
    bu, ba = map(int, re.search(r"decrypted (\d+) Binding Updates and (\d+) Binding "
                                r"Acknowledgements", check).groups())
    assert bu >= 4 and ba >= 4
    k = {int(s): int(v) for s, v in re.findall(r"(\d+): (\d)", check.split("sequence number:")[1]
                                               .splitlines()[0])}
    assert set(k) == {0, 1, 2, 3} and k[0] == 1 and not any(k[s] for s in (1, 2, 3))
    assert "every BA's status: [0] (0: Binding Update accepted)" in check
    assert f"in the IKE_AUTH responses: ['{HOA}'] | the report's: {HOA}" in check
    natlan = re.search(r"on natlan \(leaving the MN\): (\[.*\])", check).group(1)
    assert natlan == "['seq 1 from 203.0.113.10:4191', 'seq 2 from 203.0.113.10:4191']"
    home = re.findall(r"seq (\d) from ([\d.]+):(\d+)",
                      re.search(r"on home \(reaching the HA\): (\[.*\])", check).group(1))
    assert [(s, a) for s, a, _ in home] == [("1", "198.51.100.50"), ("2", "198.51.100.50")]
    assert home[0][2] != home[1][2]          # a new public port after the rebinding
    # the what-if: no NAT on v4net, on both backends
    whatif = run.out("whatif")
    assert re.search(r"^NAT detected\s+False\s+False$", whatif, flags=re.M)
    assert "every fact agrees: True" in whatif and "The lab: no." in whatif
    # the seam, counted in the in-process run, by channel
    seam = run.out("seam")
    assert "seam crossings of the MN and the HA in the whole run: 97" in seam
    assert re.search(r"with the kernel: 68 .*'SPDADD': 12", seam)
    assert re.search(r"between mip6d and iked: 29 .*'INITIATE': 3", seam)
    assert re.search(r"in process: \[25, 29, 29\] \| on namespaces: \[25, 29, 29\]", seam)
    summary = run.out("summary")
    assert "every fact the same as in process: True (dsmip6-nat), True (dsmip6-v4, no NAT: " \
           "NAT detected False)" in summary
    assert "of which 29 between mip6d and iked (no standard) and 68 with the kernel" in summary


def _quizzes_and_predictions(run) -> None:
    p = run.probes
    assert p[0].startswith("✔ right: Simulated time runs time_scale times faster")
    assert p[1].startswith("✘ not quite: You multiplied")
    assert p[2].startswith("✔ right: 198.51.100.50, the NAT's public address")
    assert p[3].startswith("✘ not quite: That is the MN's IPv4 care-of address")
    assert "The lab says 198.51.100.50." in p[3]
    assert p[4].startswith("✔ right: Every one of them is, on a real host, a private protocol")
    assert p[5].startswith("✘ not quite: That is every crossing") and "The lab says 29." in p[5]
    assert p[6].startswith("You predicted the time each registration takes; the lab: the time "
                           "each registration takes — as you predicted.")
    assert p[7].startswith("You predicted the home address; the lab: the time each registration "
                           "takes — not what you predicted.")
    assert p[8].startswith("You predicted yes; the lab: no — not what you predicted.")


# -- live ----------------------------------------------------------------------------------


def test_live_runs_on_real_namespaces(live):
    run, _, _ = live
    _common(run)
    assert run.out("prereq").startswith("Live: this machine can build real namespaces")
    runs = run.out("runs")
    assert "verdict ok=True, backend netns" in runs
    assert re.search(rf"30 simulated s = {30 / TIME_SCALE:g} real s", runs)
    frames = int(re.search(r"dumpcap recorded (\d+) frames", runs).group(1))
    assert frames > 500
    assert "still there after the run (ip netns list): 0" in runs
    assert "lines from tshark, run now:" in run.out("tshark")


def test_live_durations_are_the_real_ones_scaled(live):
    run, _, _ = live
    text = run.out("times")
    rows = re.findall(r"^(visit1|natlan|home)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", text, flags=re.M)
    assert [r[0] for r in rows] == ["visit1", "natlan", "home"]
    assert [float(r[1]) for r in rows] == [48.0, 56.0, 20.0]          # in process: exact
    for _, local, simulated, real in rows:
        assert float(simulated) > float(local)      # real computing and forwarding cost time
        assert float(real) == pytest.approx(float(simulated) / TIME_SCALE, abs=0.05)
    lateness = float(re.search(r"worst lateness: ([\d.]+) simulated s", text).group(1))
    assert lateness < 2.0, "the engines fell behind the wall clock"


def test_live_leaves_no_namespace_behind(live):
    run, before, after = live
    made = _namespaces(run.out("runs"))
    assert set(made.values()) == LABELS
    pid = run.probes[9].strip()
    assert all(name.startswith(f"m6lnet-{pid}-") for name in made)   # made by this kernel
    assert not set(made) & after
    # ... and nothing else of this kernel's (the what-if's namespaces included)
    assert not [n for n in after - before if n.startswith(f"m6lnet-{pid}-")]
    assert not [n for n in after if n.startswith(f"m6lnet-{pid}-")]
    cleanup = run.out("cleanup")
    assert "namespaces this notebook made: 14; still there (ip netns list): 0" in cleanup
    assert "capture and keys removed: True" in cleanup


def test_live_tshark_decrypted_every_registration(live):
    run, _, _ = live
    lines = _summary_rows(run)
    bu = [line for line in lines if "Binding Update" in line]
    ba = [line for line in lines if "Binding Acknowledgement" in line]
    # each BU and BA on the MN's access link and on the home link: the capture has them
    # from the first frame on (dumpcap records every bridge before the run starts)
    for link, seqs in (("br-visit1", {"0"}), ("br-natlan", {"1", "2"}),
                       ("br-home", {"0", "1", "2", "3"})):
        for kind in (bu, ba):
            found = {re.search(r"(Binding \w+)\s+(\d+)", line).group(2)
                     for line in kind if f" {link} " in line}
            assert found == seqs, (link, found)
    cp = [line for line in lines if "IKE_AUTH MID=01 Responder Response" in line]
    assert len(cp) >= 4 and all(line.endswith(HOA) for line in cp)


def test_live_quizzes_and_predictions(live):
    _quizzes_and_predictions(live[0])


# -- recorded ------------------------------------------------------------------------------


def test_recorded_says_why_in_one_sentence(recorded, recording):
    _common(recorded)
    text = recorded.out("prereq")
    first, second = text.splitlines()[:2]
    assert first == ("This notebook shows a recorded run, because MIP6LAB_RECORDED=1 is set, "
                     "which asks for the recorded run instead of a live one.")
    assert len(re.findall(r"[.!?](\s|$)", first)) == 1
    assert second == f"It was {recording.describe()}."
    assert f"recorded on {recording.meta['recorded']} by scripts/record-netns-run" in second
    assert "lines from tshark, run now on the recorded frames" in recorded.out("tshark") \
        or "lines from tshark's output as the recording kept it" in recorded.out("tshark")


def test_recorded_shows_the_recorded_values(recorded, recording):
    report = recording.reports["dsmip6-nat"]
    runs = recorded.out("runs")
    assert f"on namespaces:  {report['events']} events" in runs
    assert f"dumpcap recorded {report['pcap']['frames']} frames" in runs
    assert set(_namespaces(runs)) == set(recording.namespaces["dsmip6-nat"])
    assert set(_namespaces(runs).values()) == LABELS
    times = recorded.out("times")
    for h in report["result"]["handovers"]:
        assert re.search(rf"^{h['to']}\s+[\d.]+\s+{h['duration_ms']}\s", times, flags=re.M)
    assert f"worst lateness: {report['realtime']['max_lateness']} simulated s" in times
    assert recording.ladder.strip() in recorded.out("ladders")
    # tshark's lines are the recording's (run again on its frames, or as it kept them)
    shown = _summary_rows(recorded)
    kept = summary_rows(recording.tshark)
    assert len(shown) == len(kept)
    for line, row in zip(shown, kept):
        assert line.split()[:3] == [row["No."], row["Time"], row["Link"]]
        assert row["Info"] in line
    cleanup = recorded.out("cleanup")
    assert cleanup.startswith("nothing to clean up here: no namespace was made on this machine; "
                              "when the recording was made, 14 were made and 0 left behind")


def test_recorded_quizzes_and_predictions(recorded):
    _quizzes_and_predictions(recorded)


# -- the recording cannot rot silently -----------------------------------------------------


def test_the_recording_agrees_with_the_stack_now(recording):
    """Every deterministic fact of the recorded netns runs is what the in-process runs of
    the same scenarios give today (if this fails after a change to the stack, run
    ``sudo scripts/record-netns-run`` and read notebook 06 again)."""
    assert recording.meta["options"] == OPTIONS and recording.meta["time_scale"] == TIME_SCALE
    for name, report in recording.reports.items():
        assert report["backend"] == "netns" and report["ok"]
        assert facts(report) == facts(create(name, **recording.meta["options"]).run()), name


def test_the_recording_is_complete_and_small(recording):
    meta = recording.meta
    for key in ("recorded", "by", "mip6lab", "commit", "kernel", "python", "tools"):
        assert meta[key], key
    assert set(meta["tools"]) == {"tshark", "dumpcap", "radvd", "nft"}
    assert set(recording.reports) == {"dsmip6-nat", "dsmip6-v4"}
    for name, made in recording.namespaces.items():
        assert {n.rsplit("-", 1)[1] for n in made} == LABELS and not recording.left[name]
    files = [p for p in RECORDING.rglob("*") if p.is_file()]
    assert {p.relative_to(RECORDING).as_posix() for p in files} == {
        "recording.json", "dsmip6-nat.ladder.txt", "dsmip6-nat.tshark.txt",
        "dsmip6-nat.pcapng", "keys/esp_sa", "keys/ikev2_decryption_table"}
    assert sum(p.stat().st_size for p in files) < 200_000
    # the ladder is the registration behind the NAT: the MN's private side, the HA's public
    assert "203.0.113.10:500 → 192.0.2.2:500" in recording.ladder
    assert "198.51.100.50:" in recording.ladder


def test_the_recorded_frames_still_decrypt_to_the_recorded_lines(recording):
    """tshark, run again on the recorded frames with the recorded keys, prints what the
    recording kept, and what it prints agrees with the recorded report."""
    require_tool("tshark", "to decrypt the recorded capture")
    argv, env = tshark_summary(recording.pcap, recording.keys)
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    now, kept = summary_rows(out.stdout), summary_rows(recording.tshark)
    stable = ("Link", "Source", "Port", "Destination", "Info", "Seq", "K", "Status",
              "CP address")
    assert [[r[c] for c in stable] for r in now] == [[r[c] for c in stable] for r in kept]
    bu = [r for r in now if r["Info"] == "Binding Update"]
    truth = facts(recording.reports["dsmip6-nat"])
    assert {r["Seq"]: r["K"] for r in bu if r["Link"] in ("br-visit1", "br-natlan")} == \
        {"0": str(truth["registrations"][0]["K"]), "1": "0", "2": "0"}
    assert {r["Status"] for r in now if r["Info"] == "Binding Acknowledgement"} == {"0"}
    assert {r["CP address"] for r in now if r["CP address"]} == {truth["home address"]}
