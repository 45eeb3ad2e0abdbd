"""03-spd executed headless: the SPD entries of RFC 4877 §7.2 on the MN and the HA, who
wrote each and through which seam message, which entry the BU matches, spd_owner
mobility / ike / both side by side, and what two writers break (strict_spd).

Every value the notebook's prose relies on is asserted here from the executed notebook's
own output, so a change in the stack fails this test and sends someone to re-read the prose.
"""

from __future__ import annotations

import re

import pytest

from .conftest import check_clean, check_widgets, row

HOA = "2001:db8:0:1::1001"
HA = "2001:db8:0:1::2"
COA = "2001:db8:a1::5eff:fe00:f"
BU_ROW, PAYLOAD_ROW = f"mip6-bu-{HOA}", f"mip6-payload-{HOA}"

PROBES = (
    'print(order_quiz.answer("the tunnel-mode payload SA"))',                         # 0
    'print(order_quiz.answer("the transport-mode BU/BA SA"))',                        # 1
    'print(ha_payload_quiz.answer("iked"))',                                          # 2
    'print(ha_payload_quiz.answer("mip6d"))',                                         # 3
    'print(eexist_quiz.answer("3"))',                                                 # 4
    'print(eexist_quiz.answer("2"))',                                                 # 5
    'print(eexist_quiz.answer("6"))',                                                 # 6
    'writer_guess.predict("iked (the IKE daemon)"); '
    'writer_guess.compare("mip6d (the mobility module)" if mn_bu_row["owner"] == "mip6d" '
    'else mn_bu_row["owner"], "x")',                                                  # 7
    f'match_guess.predict("{BU_ROW}"); match_guess.compare(BU_MATCH, "x")',           # 8
    'both_guess.predict("no BA: the registration fails"); both_guess.compare(outcome, "x")',  # 9
    'strict_guess.predict("the MN never sends a BU: no binding, no data"); '
    'strict_guess.compare(verdict, "x")',                                             # 10
    'print(order_quiz.answer(None))',                                                 # 11
)


@pytest.fixture(scope="module")
def run(executed):
    return executed("03-spd.ipynb", PROBES)


def test_budget(run):
    check_clean(run)


def test_shows_the_dashboard_and_the_teaching_widgets(run):
    # the dashboard, 4 predictions and 3 quizzes
    check_widgets(run, 1 + 4 + 3)


def test_the_spd_built_up_event_by_event(run):
    text = run.out("build-up")
    writes = re.findall(r"^#\d+\s+t =\s+([\d.]+) ms\s+(mn|ha)\s+(\S+)\s+→ kernel: SPDADD (\S+)\s+(\S+)",
                        text, flags=re.M)
    assert [(node, writer, name, answer) for _t, node, writer, name, answer in writes] == [
        ("ha", "iked", "ike-bypass-500", "accepted"), ("ha", "iked", "ike-bypass-4500", "accepted"),
        ("mn", "iked", "ike-bypass-500", "accepted"), ("mn", "iked", "ike-bypass-4500", "accepted"),
        ("ha", "mip6d", BU_ROW, "accepted"),
        ("mn", "mip6d", BU_ROW, "accepted"), ("mn", "mip6d", PAYLOAD_ROW, "accepted"),
        ("ha", "mip6d", PAYLOAD_ROW, "accepted")]
    # the bypass rows at t = 0 (the build), the rest when the HoA is known
    assert [float(t) for t, *_ in writes[:4]] == [0.0] * 4
    assert all(float(t) > 0 for t, *_ in writes[4:])
    # what mip6d had just heard across the seam, the reason it wrote then (draft §6.6, §6.7)
    because = re.findall(r"because, at #\d+: (.*)$", text, flags=re.M)
    assert because == [f"iked → mip6d: INTERNAL_IP6_ADDRESS {HOA} given to rfc822:mn1@mip6lab.example",
                       f"iked → mip6d: INTERNAL_IP6_ADDRESS {HOA}/64",
                       f"iked → mip6d: INTERNAL_IP6_ADDRESS {HOA}/64",
                       f"iked → mip6d: CHILD_SA tunnel for {HOA} with rfc822:mn1@mip6lab.example"]
    assert ("SPDADDs by node and writer: {'ha iked': 2, 'ha mip6d': 2, 'mn iked': 2, "
            "'mn mip6d': 2}") in text
    default = run.out("default-action")
    assert "mn: the SPD's default action (a packet that matches no row): BYPASS" in default
    assert "ha: the SPD's default action (a packet that matches no row): BYPASS" in default


def test_the_rows_and_owners_on_both_nodes_at_the_ba(run):
    text = run.out("at-ba")
    mn, ha = text.split("HA SPD at the BA")
    rows = lambda part: re.findall(r"^\s+(\d)\. (\S+)\s+written by (\S+)\s+(.*) -> (.*)$", part,
                                   flags=re.M)
    assert rows(mn) == [
        ("1", "ike-bypass-500", "iked", "local=any remote=any proto=udp local_port=500", "BYPASS"),
        ("2", "ike-bypass-4500", "iked", "local=any remote=any proto=udp local_port=4500", "BYPASS"),
        ("3", BU_ROW, "mip6d", f"local={HOA}/128 remote={HA}/128 proto=mh local_mh_type=BU "
                               "remote_mh_type=BA", "PROTECT (ESP transport reqid=1)"),
        ("4", PAYLOAD_ROW, "mip6d", f"local={HOA}/128 remote=::/0",
         f"PROTECT (ESP tunnel {COA}<->{HA} reqid=2)")]
    assert rows(ha) == [
        ("1", "ike-bypass-500", "iked", "local=any remote=any proto=udp local_port=500", "BYPASS"),
        ("2", "ike-bypass-4500", "iked", "local=any remote=any proto=udp local_port=4500", "BYPASS"),
        ("3", BU_ROW, "mip6d", f"local={HA}/128 remote={HOA}/128 proto=mh local_mh_type=BA "
                               "remote_mh_type=BU", "PROTECT (ESP transport reqid=1)"),
        ("4", PAYLOAD_ROW, "mip6d", f"local=::/0 remote={HOA}/128",
         f"PROTECT (ESP tunnel {HA}<->{COA} reqid=2)")]
    assert "You made no prediction. The lab: mip6d (the mobility module)." in text


def test_the_rfc_4877_comparison(run):
    text = run.out("rfc-compare")
    assert row(text, "§7.2.1 BU/BA") == ["transport", BU_ROW, "(transport)", BU_ROW, "(transport)"]
    assert row(text, "§7.2.2 HoTI/HoT") == ["tunnel", "not", "installed", "not", "installed"]
    assert row(text, "§7.2.3 MPS/MPA") == ["transport", "not", "installed", "not", "installed"]
    assert row(text, "§7.2.4 payload") == ["tunnel", PAYLOAD_ROW, "(tunnel)", PAYLOAD_ROW, "(tunnel)"]


def test_the_bu_matches_the_first_row_that_fits(run):
    text = run.out("bu-match")
    # RFC 4877 §4.2: the HAO makes the HoA the packet's source for the policy check
    assert f"on the wire from {COA} to {HA}" in text
    assert f"what the SPD sees: source {HOA} (the Home Address option), protocol 135 (MH), " \
           "MH type 5 (BU)" in text
    assert f"rows whose selectors fit the BU, in SPD order: ['{BU_ROW}', '{PAYLOAD_ROW}']" in text
    # the dashboard's tables: the BU/BA row counted the BU
    assert f"the Tables panel: mn spd: changed {BU_ROW} (hits {{out: 0, in: 0}} → " \
           "{out: 1, in: 0})" in text
    assert re.search(rf"event #\d+: protected with SA 0x[0-9a-f]{{8}} \(transport, \S+\) by {re.escape(BU_ROW)}",
                     text)
    assert f"You made no prediction. The lab: {BU_ROW}. Two rows fit the BU" in text
    reorder = run.out("reorder")
    assert f"order tried: ['{PAYLOAD_ROW}', 'ike-bypass-500', 'ike-bypass-4500', '{BU_ROW}']" in reorder
    assert f"the BU would match: {PAYLOAD_ROW}: local={HOA}/128 remote=::/0 -> PROTECT (ESP tunnel" \
        in reorder


def test_the_side_by_side_table(run):
    text = run.out("side-by-side")
    assert text.splitlines()[0].split() == ["mobility", "ike", "both"]
    assert row(text, "MN BU/BA entry written by") == ["mip6d", "iked", "mip6d"]
    assert row(text, "MN payload entry written by") == ["mip6d", "iked", "mip6d"]
    assert row(text, "HA BU/BA entry written by") == ["mip6d", "iked", "mip6d"]
    # both: on the HA the IKE daemon is first for the payload row
    assert row(text, "HA payload entry written by") == ["mip6d", "iked", "iked"]
    assert row(text, "SPDADDs of mip6d") == ["4", "0", "3"]
    assert row(text, "SPDADDs of iked (PROTECT rows)") == ["0", "4", "4"]
    assert row(text, "SPDADDs refused with EEXIST") == ["0", "0", "3"]
    assert row(text, "seam crossings, CoA to BA or end (MN, HA)") == ["43", "43", "49"]
    assert row(text, "BA status") == ["0", "0", "0"]
    assert ("You made no prediction. The lab: the BA comes: each second SPDADD is refused, and its "
            "writer goes on. 3 SPDADDs were refused with EEXIST") in text
    seam = run.out("seam-diff")
    assert ("crossings in 'both' that 'mobility' does not have: {'ha: iked SPDADD': 2, "
            "'ha: kernel SPDADD EEXIST': 1, 'mn: iked SPDADD': 2, 'mn: kernel SPDADD EEXIST': 2}") in seam
    assert "crossings in 'mobility' that 'both' does not have: {'ha: mip6d SPDADD': 1}" in seam
    assert "registration seam crossings: mobility 43, both 49 (+6)" in seam


def test_both_owners_survive_with_three_eexist_per_ike_sa(run):
    text = run.out("handover-both")
    mobility = re.search(r"spd_owner=mobility: IKE SAs of the MN (\d+), EEXIST (\d+), "
                         r"BA status per registration (\[.*?\]), data lost per registration (\[.*?\])",
                         text)
    both = re.search(r"spd_owner=both\s+: IKE SAs of the MN (\d+), EEXIST (\d+), "
                     r"BA status per registration (\[.*?\]), data lost per registration (\[.*?\])", text)
    assert mobility.group(1, 2, 3) == ("4", "0", "[0, 0, 0, 0]")
    assert both.group(1, 2, 3) == ("4", "12", "[0, 0, 0, 0]")
    assert both.group(4) == mobility.group(4)          # the registrations do not notice
    assert "EEXIST per IKE SA with spd_owner=both: 12 / 4 = 3" in text
    shared = run.out("shared-reqid")
    assert re.search(rf"MN row {re.escape(BU_ROW)} \(written by mip6d\), reqid=1: the kernel finds "
                     r"SAs 0x[0-9a-f]{8} in, 0x[0-9a-f]{8} out", shared)
    assert re.search(rf"MN row {re.escape(PAYLOAD_ROW)} \(written by mip6d\), reqid=2: the kernel "
                     r"finds SAs 0x[0-9a-f]{8} in, 0x[0-9a-f]{8} out", shared)
    assert "who wrote the MN's SAs (ADD and UPDATE requests): {'iked': 4}" in shared


def test_a_strict_ike_daemon_with_both_owners_fails_the_registration(run):
    text = run.out("strict")
    failed = re.findall(r"^#\d+\s+t =\s+[\d.]+ ms\s+(mn|ha)\s+(.*)$", text, flags=re.M)
    kinds = [(node, "EEXIST" if "error=EEXIST" in s else "FAILED-ike" if "child SA in" in s
              else "FAILED-seam" if s.startswith("iked → mip6d: CHILD_SA FAILED transport")
              else "DELETE" if s.startswith("iked → kernel: DELETE") else s) for node, s in failed]
    assert kinds == [("ha", "EEXIST"), ("ha", "FAILED-ike"), ("ha", "FAILED-seam"),
                     ("ha", "DELETE"), ("ha", "DELETE"),
                     ("mn", "EEXIST"), ("mn", "FAILED-ike"), ("mn", "FAILED-seam"),
                     ("mn", "DELETE"), ("mn", "DELETE")]
    assert f"policy {BU_ROW}" in text      # the row the kernel kept: the mobility module's
    assert ("IKE messages of the MN and the HA: {'IKE_SA_INIT request': 1, 'IKE_SA_INIT response': 1, "
            "'IKE_AUTH request': 1, 'IKE_AUTH response': 1, 'INFORMATIONAL request': 2, "
            "'INFORMATIONAL response': 2}") in text
    assert ("BU sent: 0, BA status: None, bindings at the HA: 0, SAs in the MN's SAD: 0, "
            "data: {'sent': 0, 'received': 0, 'lost': 0, 'in_flight': 0}") in text
    # the mobility module's rows stay, pointing at no SA
    assert f"3. {BU_ROW}" in text and f"4. {PAYLOAD_ROW}" in text
    table = text[text.index("mobility   "):]
    assert row(table, "HA payload entry written by") == ["mip6d", "iked", "iked", "-"]
    assert row(table, "SPDADDs refused with EEXIST") == ["0", "0", "3", "2"]
    assert row(table, "seam crossings, CoA to BA or end (MN, HA)") == ["43", "43", "49", "36"]
    assert row(table, "BA status") == ["0", "0", "0", "None"]
    assert "You made no prediction. The lab: the MN never sends a BU: no binding, no data." in text


def test_the_figure_says_its_numbers(run):
    html = next(o["data"]["text/html"] for o in run.tagged("figure").outputs
                if "text/html" in o.get("data", {}))
    assert "mobility: mip6d 4 accepted, iked 0 accepted, 0 refused with EEXIST" in html
    assert "ike: mip6d 0 accepted, iked 4 accepted, 0 refused with EEXIST" in html
    assert "both: mip6d 3 accepted, iked 1 accepted, 3 refused with EEXIST" in html
    assert "both, strict: mip6d 3 accepted, iked 0 accepted, 2 refused with EEXIST" in html
    assert "mobility 43, ike 43, both 49, both, strict 36" in html


def test_the_summary(run):
    text = run.out("summary")
    assert f"MN SPD ike-bypass-500 (iked), ike-bypass-4500 (iked), {BU_ROW} (mip6d), {PAYLOAD_ROW} (mip6d)" \
        in text
    assert "its default action is BYPASS" in text
    assert ("§7.2.1 BU/BA installed; §7.2.2 HoTI/HoT not installed; §7.2.3 MPS/MPA not installed; "
            "§7.2.4 payload installed") in text
    assert f"the BU matched {BU_ROW}; with the payload row first it would take the tunnel-mode payload SA" \
        in text
    assert ("spd_owner=both: owners ['mip6d', 'mip6d', 'mip6d', 'iked'], EEXIST 3, seam crossings 49, "
            "BU sent 1, BA status 0") in text
    assert ("spd_owner=both, strict: owners ['mip6d', 'mip6d', 'mip6d', '-'], EEXIST 2, "
            "seam crossings 36, BU sent 0, BA status None") in text
    assert ("12 EEXIST over 4 IKE SAs, every BA status [0], the same data lost as with one owner: "
            "True") in text


def test_quiz_checkers(run):
    p = run.probes
    assert p[0].startswith("✔ right: The first row that fits decides (RFC 4301 §4.4.1)")
    assert p[1].startswith("✘ not quite: That row is still there, but it is no longer the first")
    assert "The lab says the tunnel-mode payload SA." in p[1]
    assert p[2].startswith("✔ right: On the HA, the IKE daemon installs a child SA's policy")
    assert p[3].startswith("✘ not quite: True on the MN, and for the HA's BU/BA row.")
    assert "The lab says iked." in p[3]
    assert p[4].startswith("✔ right: The MN's IKE daemon is refused twice")
    assert p[5].startswith("✘ not quite: You counted the MN's two refusals")
    assert "The lab says 3." in p[5]
    assert p[6].startswith("✘ not quite: That counts crossings")
    assert p[11].startswith("✘ not quite: no answer yet")


def test_predictions_compare(run):
    p = run.probes
    assert p[7].startswith("You predicted iked (the IKE daemon); the lab: mip6d (the mobility module) "
                           "— not what you predicted.")
    assert p[8].startswith(f"You predicted {BU_ROW}; the lab: {BU_ROW} — as you predicted.")
    assert p[9].startswith("You predicted no BA: the registration fails; the lab: the BA comes: "
                           "each second SPDADD is refused, and its writer goes on — not what you "
                           "predicted.")
    assert p[10].startswith("You predicted the MN never sends a BU: no binding, no data; the lab: "
                            "the MN never sends a BU: no binding, no data — as you predicted.")
