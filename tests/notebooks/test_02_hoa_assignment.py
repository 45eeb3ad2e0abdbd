"""02-hoa-assignment executed headless: the home address over IKEv2 in address mode and in
prefix mode, what the notebook prints about each, and its quizzes checked right and wrong.

Every value the notebook's prose relies on is asserted here from the executed notebook's
own output, so a change in the stack fails this test and sends someone to re-read the prose.
"""

from __future__ import annotations

import re

import pytest

from .conftest import check_clean, check_widgets

HOA_ADDRESS = "2001:db8:0:1::1001"            # from the HA's pool (address mode)
HOA_PREFIX = "2001:db8:0:1:0:5eff:fe00:f"     # prefix + modified EUI-64 of 02:00:5e:00:00:0f
COA = "2001:db8:a1::5eff:fe00:f"

PROBES = (
    'print(chooser_quiz.answer("the HA"))',                             # 0
    'print(chooser_quiz.answer("the MN"))',                             # 1
    f'print(hoa_quiz.answer("{HOA_PREFIX}"))',                          # 2
    'print(hoa_quiz.answer("2001:db8:0:1:200:5eff:fe00:f"))',           # 3 no U/L flip
    f'print(hoa_quiz.answer("{COA}"))',                                 # 4
    'print(payload_quiz.answer("TSi"))',                                # 5
    'print(payload_quiz.answer("TSr"))',                                # 6
    'print(seam_quiz.answer("0"))',                                     # 7 typed
    'print(seam_quiz.answer("1"))',                                     # 8
    'print(seam_quiz.answer(None))',                                    # 9
    'acquire_guess.predict(1); acquire_guess.compare(len(acquires), "x")',            # 10
    'count_guess.predict(8); count_guess.compare(prefix_cost["ike_messages"], "x")',  # 11
    'learn_guess.predict("IKE_AUTH response #1"); '
    'learn_guess.compare(f"{told.name} #{told.message_id}", "x")',                    # 12
    'carrier_guess.predict("IKE_AUTH response"); carrier_guess.compare(carrier.name, "x")',  # 13
)


@pytest.fixture(scope="module")
def run(executed):
    return executed("02-hoa-assignment.ipynb", PROBES)


def test_budget(run):
    check_clean(run)


def test_shows_the_dashboard_and_the_teaching_widgets(run):
    # the dashboard, 4 predictions and 4 quizzes
    check_widgets(run, 1 + 4 + 4)


def test_ike_is_started_by_the_mobility_module_not_by_an_acquire(run):
    text = run.out("initiate")
    start = int(re.search(r"event #(\d+)", text).group(1))
    assert (f"mip6d → iked: INITIATE IKE SA {COA} → 2001:db8:0:1::2, "
            "CFG_REQUEST INTERNAL_IP6_ADDRESS") in text
    assert "the MN's home address now: -" in text
    spd = [line for line in text.splitlines() if line.startswith("    ike-") or "->" in line]
    assert len(spd) == 2 and all(line.endswith("-> BYPASS") for line in spd), spd
    acquire = run.out("acquire")
    assert "ACQUIREs among them: 0" in acquire
    assert "You made no prediction. The lab: 0. The mobility module starts IKE itself" in acquire
    asked = re.findall(r"# \d+ (\S+)", acquire)
    assert asked == ["INITIATE", "CREATE_CHILD_SA"]
    assert f"back at event {start}" in acquire


def test_address_mode_cp_and_ts(run):
    text = run.out("address-ike-auth")
    names = re.findall(r"^(\S+ (?:request|response) #\d+)", text, flags=re.M)
    assert names == ["IKE_SA_INIT request #0", "IKE_SA_INIT response #0",
                     "IKE_AUTH request #1", "IKE_AUTH response #1"]
    assert "CP(CFG_REQUEST): INTERNAL_IP6_ADDRESS (empty: a request)" in text
    assert f"CP(CFG_REPLY): INTERNAL_IP6_ADDRESS {HOA_ADDRESS}/64" in text
    carrier = run.out("carrier")
    assert carrier.startswith("You made no prediction. The lab: IKE_AUTH response. "
                              f"Its CFG_REPLY holds INTERNAL_IP6_ADDRESS {HOA_ADDRESS}/64")
    # RFC 7296 §2.9: the HA narrows the MN's "any address" TSi to the HoA it assigns
    assert "TSi the MN proposed: ::/0 proto 135 MH type 5" in carrier
    assert f"TSi the HA granted:  {HOA_ADDRESS}/128 proto 135 MH type 5" in carrier


def test_the_ha_pool_pad_and_spd_in_address_mode(run):
    text = run.out("ha-pad")
    assert "HA pool for INTERNAL_IP6_ADDRESS: 2001:db8:0:1::1000/116" in text
    assert f"leases of the pool: {{'rfc822:mn1@mip6lab.example': '{HOA_ADDRESS}'}}" in text
    assert (f"PAD: {HOA_ADDRESS} bound to rfc822:mn1@mip6lab.example "
            "(assigned by CP INTERNAL_IP6_ADDRESS)") in text
    assert f"HA PAD: rfc822:mn1@mip6lab.example → home addresses ['{HOA_ADDRESS}']" in text
    assert f"mip6d → kernel: SPDADD mip6-bu-{HOA_ADDRESS}" in text
    # the binding is bound at IKE_AUTH time: the same instant as the IKE_AUTH response
    auth = re.search(r"event #\d+, t = ([\d.]+) ms, sent by ha:\nIKE_AUTH response",
                     run.out("address-ike-auth")).group(1)
    assert re.search(rf"event #\d+, t = {re.escape(auth)} ms: PAD:", text)
    cost = run.out("address-cost")
    assert "mip6d → iked: PAD LOOKUP rfc822:mn1@mip6lab.example" in cost
    assert f"iked → mip6d: PAD rfc822:mn1@mip6lab.example → {HOA_ADDRESS}" in cost
    assert f"for {HOA_ADDRESS} seq 0: ACCEPTED (0)" in cost


def test_prefix_mode_ike_auth_carries_a_prefix_and_no_child_sa(run):
    text = run.out("prefix-ike-auth")
    assert "rebuilt home-registration with seed 0, hoa_mode=prefix" in text
    assert "CP(CFG_REQUEST): MIP6_HOME_PREFIX (empty: a request)" in text
    assert re.search(r"CP\(CFG_REPLY\): MIP6_HOME_PREFIX 2001:db8:0:1::/64 lifetime \d+ s", text)
    auth = text[text.index("IKE_AUTH request"):]
    assert "TSi" not in auth and "SA:" not in auth     # the prose: no SA, TSi or TSr
    pad = run.out("prefix-pad")
    assert "HA PAD after IKE_AUTH: no entry binds a home address" in pad
    assert "HA SPD entries for a BU: none" in pad


def test_the_mn_forms_its_hoa_and_the_ha_learns_it_from_tsi(run):
    formed = run.out("formed")
    # draft §6.5: the MN's iked relays the prefix to the mobility module across the seam
    assert re.search(r"event #\d+ on the MN: iked → mip6d: MIP6_HOME_PREFIX .*2001:db8:0:1::/64",
                     formed)
    assert "the MN's MAC: 02:00:5e:00:00:0f" in formed
    assert "its interface identifier: 0000:5eff:fe00:000f" in formed
    assert f"home address {HOA_PREFIX} autoconfigured from MIP6_HOME_PREFIX" in formed
    assert "the recipe gives the same address: True" in formed
    child = run.out("prefix-child")
    assert "CREATE_CHILD_SA request #2 (from the initiator; SK payload decrypted)" in child
    assert f"TSi: {HOA_PREFIX}/128 proto 135 MH type 5" in child
    learned = run.out("learned")
    assert (f"PAD: {HOA_PREFIX} bound to rfc822:mn1@mip6lab.example "
            "(TSi of a child SA within its home prefix)") in learned
    assert ("the IKE message the HA had just received: CREATE_CHILD_SA request #2 "
            "(IKE message number 5 of the run)") in learned
    assert "You made no prediction. The lab: CREATE_CHILD_SA request #2." in learned


def test_the_cost_table_and_the_round_trip(run):
    text = run.out("cost")

    def row(label: str) -> list[str]:
        line = next(l for l in text.splitlines() if l.startswith(label))
        return line[len(label):].split()

    assert row("IKE requests of mip6d (INITIATE, CREATE_CHILD_SA)") == ["2", "3", "+1"]
    assert row("IKE messages (MN and HA)") == ["6", "8", "+2"]
    assert row("signalling bytes (IKE, BU, BA)") == ["2066", "2380", "+314"]
    assert row("seam crossings (MN and HA)") == ["43", "43", "+0"]
    assert row("time from care-of address to BA (ms)") == ["60.0", "72.0", "+12.0"]
    assert "You made no prediction. The lab: 8. 1 more CREATE_CHILD_SA exchange" in text
    # "one round trip": the extra exchange takes exactly the extra time to the BA
    trip = re.search(r": ([\d.]+) ms, one round trip", run.out("round-trip")).group(1)
    assert trip == row("time from care-of address to BA (ms)")[2].lstrip("+")


def test_the_figure_says_its_numbers(run):
    html = next(o["data"]["text/html"] for o in run.tagged("figure").outputs
                if "text/html" in o.get("data", {}))
    assert "IKE messages (MN and HA): 6 against 8" in html
    assert "time from care-of address to BA (ms): 60 against 72" in html


def test_the_seam_count_is_the_same_for_different_messages(run):
    text = run.out("seam")
    assert "crossings from INITIATE to the BA: address mode 43 | prefix mode 43" in text
    assert ("only in prefix mode: {'mn: iked MIP6_HOME_PREFIX': 1, "
            "'mn: mip6d CREATE_CHILD_SA': 1}") in text
    assert ("only in address mode: {'ha: iked INTERNAL_IP6_ADDRESS': 1, "
            "'mn: iked INTERNAL_IP6_ADDRESS': 1}") in text
    assert f"CREATE_CHILD_SA transport {HOA_PREFIX}/128 proto 135 MH type 5" in text


def test_the_summary(run):
    text = run.out("summary")
    assert "no ACQUIRE before the first BU: 0" in text
    assert f"the HoA {HOA_ADDRESS} came in the IKE_AUTH response" in text
    assert f"the MN formed {HOA_PREFIX}" in text
    assert f"the HA learned {HOA_PREFIX} from the CREATE_CHILD_SA request #2 (its TSi)" in text
    assert "IKE messages (MN and HA): 6 (address) vs 8 (prefix)" in text


def test_quiz_checkers(run):
    p = run.probes
    assert p[0].startswith("✔ right: In address mode the whole address comes from the HA's pool")
    assert p[1].startswith("✘ not quite: This MN sent an empty INTERNAL_IP6_ADDRESS")
    assert "The lab says the HA." in p[1]
    assert p[2].startswith("✔ right: Prefix + modified EUI-64")
    assert p[3].startswith("✘ not quite: Close: you inserted ff:fe but did not flip")
    assert f"The lab says {HOA_PREFIX}." in p[3]
    assert p[4].startswith("✘ not quite: Same interface identifier, but that is the visited")
    assert p[5].startswith("✔ right: TSi, the initiator's traffic selector")
    assert p[6].startswith("✘ not quite: TSr is the responder's side")
    assert "The lab says TSi." in p[6]
    assert p[7].startswith("✔ right: The MN's mobility module asks once more")
    assert p[8].startswith("✘ not quite: You counted the MN's extra CREATE_CHILD_SA request")
    assert "The lab says 0." in p[8]
    assert p[9].startswith("✘ not quite: no answer yet")


def test_predictions_compare(run):
    p = run.probes
    assert p[10].startswith("You predicted 1; the lab: 0 — not what you predicted.")
    assert p[11].startswith("You predicted 8; the lab: 8 — as you predicted.")
    assert p[12].startswith("You predicted IKE_AUTH response #1; the lab: "
                            "CREATE_CHILD_SA request #2 — not what you predicted.")
    assert p[13].startswith("You predicted IKE_AUTH response; the lab: IKE_AUTH response — as")
