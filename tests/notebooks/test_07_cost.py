"""07-cost executed headless: the 10/90 split counted from the package, the same handover
under ipsec and auth-option side by side (the BU in ESP against the BU in clear with its
RFC 4283 / RFC 4285 options, the authenticator recomputed), the comparison over seeds, the
what-ifs (20 % loss, a manually keyed payload), and the quizzes checked right and wrong.

Every value the notebook's prose relies on is asserted here from the executed notebook's
own output, so a change in the stack fails this test and sends someone to re-read the prose.
The split is the exception that proves the rule: it is compared with ``code_split()``
computed here, in the test's own process, because it must follow the code.
"""

from __future__ import annotations

import re

import pytest

from mip6lab.codesplit import code_split

from .conftest import check_clean, row

NAI = "mn1@mip6lab.example"
HOA, HA = "2001:db8:0:1::1001", "2001:db8:0:1::2"
COA2 = "2001:db8:a2::5eff:fe00:f"
MIDDLE = "most of it, but clearly less than 90 % (50 to 85 %)"
SECRET = "confidentiality (an observer cannot read it)"

PROBES = (
    f'print(split_quiz.answer("{MIDDLE}"))',                                             # 0
    'print(split_quiz.answer("about 90 % (85 % or more)"))',                             # 1
    'print(seam_quiz.answer("ipsec-k1"))',                                               # 2
    'print(seam_quiz.answer("auth-option"))',                                            # 3
    f'print(gives_quiz.answer("{SECRET}"))',                                             # 4
    'print(gives_quiz.answer("replay protection"))',                                     # 5
    'share_guess.predict("about 90 % (the talk\'s claim)"); '
    'share_guess.compare(band(ipsec_security), "x")',                                    # 6
    'nai_guess.predict("only under auth-option"); nai_guess.compare("only under auth-option", "x")',  # 7
    'message_guess.predict(8); message_guess.compare(per_handover["auth-option"]["messages"], "x")',  # 8
    'print(split_quiz.expected, "|", seam_quiz.expected, "|", gives_quiz.expected)',     # 9
)


@pytest.fixture(scope="module")
def run(executed):
    return executed("07-cost.ipynb", PROBES)


def _band(security: float) -> str:
    """The prediction's band for a security share (the notebook's bands)."""
    return ("about 90 % (the talk's claim)" if security >= 85 else "between 70 and 85 %"
            if security >= 70 else "between 50 and 70 %" if security >= 50 else "less than half")


def test_budget(run):
    check_clean(run)


def test_the_widgets_two_dashboards_side_by_side(run):
    cell = run.tagged("dashboards")
    assert 'Dashboard("handover", security="ipsec")' in cell.source
    assert 'Dashboard("handover", security="auth-option")' in cell.source
    assert "w.HBox(" in cell.source
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
               for o in cell.outputs if o.output_type == "execute_result")
    # the HBox of the two dashboards, 3 predictions and 3 quizzes
    assert len(run.widgets()) == 1 + 3 + 3


def test_the_split_equals_code_split_in_this_process(run):
    split = code_split()
    assert not split.missing                   # the auth-option mode's files are counted
    text = run.out("split")
    m, s_ipsec, s_auth = (split.totals[k] for k in ("mobility", "security-ipsec",
                                                    "security-auth-option"))
    assert f"ipsec mode: mobility {m} / (mobility {m} + security {s_ipsec}) = " \
           f"{split.ipsec_share:g} % mobility" in text
    assert f"auth-option mode: mobility {m} / (mobility {m} + security {s_auth}) = " \
           f"{split.auth_option_share:g} % mobility" in text
    security = round(100 - split.ipsec_share, 1)
    assert f"security share: ipsec mode {security} %, auth-option mode " \
           f"{round(100 - split.auth_option_share, 1)} %" in text
    # the prose: several times the mobility side, clearly less than the talk's 90 %
    assert 50 <= security < 85 and s_ipsec > 3 * m and s_auth < m
    assert f"You made no prediction. The lab: {_band(security)}." in text
    html = next(o["data"]["text/html"] for o in run.tagged("split-figure").outputs
                if "text/html" in o.get("data", {}))
    assert f"ipsec mode: mobility protocol {split.ipsec_share} % ({m} lines), security " \
           f"integration {security} % ({s_ipsec} lines)." in html
    assert "The talk&#x27;s claim for comparison: 10 % mobility, 90 % security." in html
    coupling = next(f.code for f in split.files if f.path == "mobility/coupling.py")
    assert f"the coupling alone (mobility/coupling.py): {coupling} lines" in \
        run.out("split-coupling")


def test_the_bu_in_esp_against_the_bu_in_clear(run):
    text = run.out("bu")
    ipsec, auth = text.split("== auth-option")
    # ipsec: ESP on the wire, the BU only in the decrypted box
    assert "on the wire: ESP spi=0x" in ipsec
    assert "Decrypted ESP payload (with SA 0x" in ipsec and "transport mode" in ipsec
    assert "Binding Update" in ipsec.split("Decrypted ESP payload")[1]
    assert NAI not in ipsec
    # auth-option: the MH in clear, its three options in order, the authenticator last
    assert f"on the wire: IPv6 {COA2} → {HA} nh=60" in auth
    mh = next(line for line in auth.splitlines() if "IPv6 Mobility Header - Binding Update" in line)
    assert "flags=HA" in mh                                  # no K: no IKE to move
    options = mh.split("options=[", 1)[1]
    order = [options.index(name) for name in (
        f"Mobile Node Identifier(olen=20, subtype=NAI, id=b'{NAI}')",
        "Mobility Message Replay Protection (RFC 4285)(olen=8, timestamp=2009-07-27 00:00:05",
        "Mobility Message Authentication (RFC 4285)(olen=17, subtype=MN-HA (RFC 4285 §5.1), "
        "mspi=17029, authdata=")]
    assert order == sorted(order)
    assert f"the NAI {NAI} in the bytes on the wire: ipsec False, auth-option True" in text
    assert "You made no prediction. The lab: only under auth-option." in text


def test_the_authenticator_recomputed_from_the_key(run):
    text = run.out("authenticator")
    assert f"SPI 0x00004285, NAI {NAI}, CoA {COA2}, HoA {HOA}" in text
    assert "Mobility Data: 108 bytes = 16 (CoA) + 16 (HoA) + 76 (MH up to the SPI)" in text
    carried = re.search(r"the authenticator in the BU:  ([0-9a-f]{24})", text).group(1)
    recomputed = re.search(r"First\(96, HMAC_SHA1\(key, …\)\): ([0-9a-f]{24})", text).group(1)
    assert carried == recomputed
    assert "recomputed equals carried: True" in text
    assert "with another key: False" in text
    assert f"seq 1, SPI 0x00004285, NAI {NAI}" in text
    assert "the BA returns the BU's timestamp (RFC 4285 §6): True" in text


def test_the_seam_of_the_first_handover(run):
    text = run.out("seam")
    ipsec, auth = text.split("== auth-option")
    assert "== ipsec, the handover to visit2: 6 seam crossings" in ipsec
    assert "ha mip6d → iked: PAD" in ipsec and "mn mip6d → kernel: MIGRATE" in ipsec
    assert "the handover to visit2: 8 seam crossings" in auth
    assert [line.split(" ms ")[1] for line in auth.splitlines() if " ms " in line] == [
        "mn mip6d → msa: SIGN", "mn msa → mip6d: AUTHENTICATOR",
        "ha mip6d → msa: VERIFY", "ha msa → mip6d: AUTHENTIC",
        "ha mip6d → msa: SIGN", "ha msa → mip6d: AUTHENTICATOR",
        "mn mip6d → msa: VERIFY", "mn msa → mip6d: AUTHENTIC"]
    assert "the scenarios' own count of this handover's crossings: " \
           "{'ipsec': 6, 'auth-option': 8}" in text
    # the prose: none of auth-option's crossings leaves the mobility daemon
    assert "crossings with the IKE daemon or the kernel: {'ipsec': 6, 'auth-option': 0}" in text
    assert "(mip6d ↔ its mobility SA store, msa): {'ipsec': 0, 'auth-option': 8}" in text


def test_the_comparison_over_seeds(run):
    text = run.out("compare")
    assert "6 runs (seeds [0, 1]), every run ok: True" in text
    per = text.split("per handover (mean)")[1].split("first registration")[0]
    assert row(per, "IKE messages") == ["0", "6", "0"]          # auth-option: no IKE
    assert row(per, "BU/BA frames") == ["2", "2", "2"]
    assert row(per, "messages") == ["2", "8", "2"]
    assert row(per, "bytes") == ["276", "2066", "308"]
    assert row(per, "round trips") == ["1", "4", "1"]
    seam = [float(v) for v in row(per, "seam crossings")]
    assert seam == [6, 56.3, 8]
    assert seam[2] < seam[1]                                      # fewer than K=0 ...
    assert seam[2] > seam[0]                                      # ... more than K=1 (the prose)
    assert row(per, "CoA to BA (ms)") == ["16", "52", "16"]
    assert row(per, "interruption (ms)") == ["216.7", "233.3", "216.7"]
    first = text.split("first registration")[1].split("state at the end")[0]
    assert row(first, "IKE messages") == ["6", "6", "0"]
    assert row(first, "round trips") == ["4", "4", "1"]
    assert row(first, "seam crossings") == ["43", "43", "8"]
    assert row(first, "CoA to BA (ms)") == ["60", "60", "24"]
    state = text.split("state at the end")[1]
    for table, values in (("spd", ["8", "8", "0"]), ("sad", ["8", "8", "0"]),
                          ("pad", ["1", "1", "0"]), ("ike_sas", ["2", "2", "0"]),
                          ("mobility_sas", ["0", "0", "2"]), ("binding_cache", ["1", "1", "1"])):
        assert row(state, table) == values, table
    assert "seed 0's first handover is the dashboards' (seam crossings, bytes): True" in text
    assert "You made no prediction. The lab: 2.0. One BU and one BA" in text


def test_the_comparison_figure_says_its_numbers(run):
    html = next(o["data"]["text/html"] for o in run.tagged("compare-figure").outputs
                if "text/html" in o.get("data", {}))
    assert "one group per handover (visit2, visit3, visit4)" in html
    assert "messages (IKE + BU/BA): ipsec-k1 2, 2, 2; ipsec-k0 8, 8, 8; auth-option 2, 2, 2." in html
    assert "seam crossings: ipsec-k1 6, 6, 6; ipsec-k0 56.5, 56.5, 56; auth-option 8, 8, 8." in html
    assert "interruption (ms): ipsec-k1 200, 250, 200; ipsec-k0 250, 250, 200; " \
           "auth-option 250, 200, 200." in html


def test_twenty_percent_loss(run):
    text = run.out("loss")
    ipsec, auth = text.split("auth-option: run ok")
    assert "ipsec-k1: run ok False" in ipsec
    # seed 0 loses IKE messages until the MN leaves visit1; the handover's new IKE SA
    # then registers it (retransmissions: 23 and 12 IKE messages instead of 6)
    assert "1 registration visit1  no BA        BUs sent 0, IKE messages 23" in ipsec
    assert "2 handover     visit2  BA status 0  BUs sent 1, IKE messages 12, CoA to BA 2540.0 ms" in ipsec
    assert all("IKE messages 0" in line for line in auth.splitlines() if "BUs sent" in line)
    assert "3 handover     visit3  BA status 0  BUs sent 2, IKE messages 0, CoA to BA 1012.0 ms" in auth
    assert "registrations and handovers completed: {'ipsec-k1': '3 of 4', " \
           "'auth-option': '4 of 4'}" in text


def test_a_manually_keyed_payload_brings_the_kernel_back(run):
    text = run.out("payload")
    assert "the handover to visit2: 12 seam crossings (without: 8), 4 of them with the kernel:" in text
    assert "ha mip6d → kernel: MIGRATE" in text and "mn mip6d → kernel: MIGRATE" in text
    assert "IKE messages on every step: [0, 0, 0]" in text
    assert "the MN's data frames in the 350 ms after that BA: 4, in ESP: 4" in text


def test_the_ledger(run):
    text = run.out("ledger")
    assert f"SPI 0x00004285, {NAI} ↔ {HOA}, HMAC_SHA1, replay by timestamp, close enough = 7 s" in text
    assert "IKE messages in all the auth-option runs: 0" in text
    assert "the MN's identity readable on the wire in its BU: {'ipsec': False, 'auth-option': True}" in text
    assert "in ESP: {'ipsec': '4 of 4', 'auth-option': '0 of 4'}" in text
    assert "'auth-option': {'binding_update_list': 1.0, 'binding_cache': 1.0, 'mobility_sas': 2.0}" in text


def test_the_summary(run):
    text = run.out("summary")
    split = code_split()
    assert f"the security share {round(100 - split.ipsec_share, 1)} % (ipsec) and " \
           f"{round(100 - split.auth_option_share, 1)} % (auth-option); the talk said 90 %" in text
    assert f"MN-NAI {NAI}" in text and "recomputed from the key: True" in text
    assert "- IKE messages per handover: ipsec-k1 0, ipsec-k0 6, auth-option 0" in text
    assert "- seam crossings per handover: ipsec-k1 6, ipsec-k0 56.3, auth-option 8" in text
    assert "- IKE messages at the first registration: ipsec-k1 6, ipsec-k0 6, auth-option 0" in text
    assert "with the kernel or the IKE daemon: {'ipsec': 6, 'auth-option': 0}" in text
    assert "steps completed: {'ipsec-k1': 3, 'auth-option': 4}" in text
    assert "4 crossings with the kernel on a handover" in text


def test_quiz_checkers(run):
    p = run.probes
    assert p[0].startswith("✔ right: Read it from the split above")
    assert p[1].startswith("✘ not quite: That is the talk's figure, not this package's")
    assert f"The lab says {MIDDLE}." in p[1]
    assert p[2].startswith("✔ right: Per handover: auth-option 8, ipsec-k1 6, ipsec-k0 56.3.")
    assert p[3].startswith("✘ not quite: Count the crossings in the handover's list above")
    assert "The lab says ipsec-k1." in p[3]
    assert p[4].startswith("✔ right: The BU is in clear")
    assert p[5].startswith("✘ not quite: The timestamp option, checked against the HA's clock")
    assert p[9].strip() == f"{MIDDLE} | ipsec-k1 | {SECRET}"


def test_predictions_compare(run):
    p = run.probes
    band = _band(round(100 - code_split().ipsec_share, 1))
    assert p[6].startswith(f"You predicted about 90 % (the talk's claim); the lab: {band}"
                           " — not what you predicted.")
    assert p[7].startswith("You predicted only under auth-option; the lab: only under auth-option"
                           " — as you predicted.")
    assert p[8].startswith("You predicted 8; the lab: 2.0 — not what you predicted.")
