"""01-ikev2 executed headless: IKE_SA_INIT and IKE_AUTH of the home registration stepped
message by message, SKEYSEED and the seven SK_* recomputed in the notebook from the run's own
values (IkeSa.secrets()), the SK payloads opened with them, AUTH verified for both sides, the
NAT-D hashes recomputed, and a wrong PSK; quizzes checked right and wrong, predictions compared.

Every value the notebook's prose relies on is asserted here from the executed notebook's
own output, so a change in the stack fails this test and sends someone to re-read the prose.
"""

from __future__ import annotations

import re

import pytest

from .conftest import check_clean, check_widgets

HOA = "2001:db8:0:1::1001"
COA = "2001:db8:a1::5eff:fe00:f"
HA = "2001:db8:0:1::2"
CHOSEN = "aes256gcm16-prfsha256-curve25519"
KEYS = ("SKEYSEED", "SK_d", "SK_ai", "SK_ar", "SK_ei", "SK_er", "SK_pi", "SK_pr")

PROBES = (
    f'print(proposal_quiz.answer("#2 {CHOSEN}"))',                           # 0
    'print(proposal_quiz.answer("#1 aes128-sha256-modp2048"))',              # 1
    '''print(wire_quiz.answer("the MN's KE public value"))''',               # 2
    'print(wire_quiz.answer("g^ir"))',                                       # 3
    'print(sk_a_quiz.answer(0))',                                            # 4
    'print(sk_a_quiz.answer(36))',                                           # 5
    '''print(nonce_quiz.answer("Nr, the HA's"))''',                          # 6
    '''print(nonce_quiz.answer("Ni, the MN's own"))''',                      # 7
    'print(natd_quiz.answer("NAT_DETECTION_SOURCE_IP"))',                    # 8
    'print(natd_quiz.answer("neither"))',                                    # 9
    'ke_guess.predict("g^ir, the shared secret"); ke_guess.compare(ke_actual, "x")',      # 10
    'length_guess.predict(168); length_guess.compare(len(stream), "x")',                   # 11
    'psk_guess.predict("the HA drops the IKE_AUTH request and says nothing"); '
    'psk_guess.compare(outcome, "x")',                                                     # 12
    'print(proposal_quiz.answer(None))',                                     # 13
)


@pytest.fixture(scope="module")
def run(executed):
    return executed("01-ikev2.ipynb", PROBES)


def test_budget(run):
    check_clean(run)


def test_shows_the_dashboard_and_the_teaching_widgets(run):
    # the dashboard, 3 predictions and 5 quizzes
    check_widgets(run, 1 + 3 + 5)


def test_ike_sa_init_request_offers_one_aead_proposal(run):
    text = run.out("init-request")
    assert "IKE_SA_INIT request #0 (from the initiator)" in text
    assert "the MN offers 1 proposal(s):" in text
    assert f"proposal #1 ({CHOSEN}):" in text
    transforms = re.findall(r"^ {6}(\w+)\s+(.+)$", text, flags=re.M)
    # RFC 5282 §8: with an AEAD cipher, no integrity transform
    assert transforms == [("ENCR", "ENCR_AES_GCM_16 (256)"), ("PRF", "PRF_HMAC_SHA2_256"),
                          ("KE", "Curve25519")]
    assert re.search(r"IKE header: SPIi [0-9a-f]{16} \| SPIr 0{16}$", text, flags=re.M)
    assert re.search(r"KE: group 31, the MN's public value [0-9a-f]{16}… \(32 bytes\)", text)
    assert re.search(r"Ni: [0-9a-f]{16}… \(32 bytes\)", text)


def test_ike_sa_init_response_chooses_the_proposal(run):
    request = run.out("init-request")
    text = run.out("init-response")
    assert (f"the HA chose proposal #1: {CHOSEN} "
            "(IKE:AES_GCM_16_256/PRF_HMAC_SHA2_256/CURVE_25519)") in text
    spi_i = re.search(r"SPIi ([0-9a-f]{16})", request).group(1)
    spis = re.search(r"SPIi ([0-9a-f]{16}) \| SPIr ([0-9a-f]{16})", text).groups()
    assert spis[0] == spi_i and spis[1] != "0" * 16
    assert re.search(r"KE: group 31, the HA's public value [0-9a-f]{16}… \(32 bytes\)", text)
    assert "the HA's KE data = the MN's: False" in text


def test_diffie_hellman_secret_is_shared_and_never_on_the_wire(run):
    text = run.out("dh")
    assert "the response reaches the MN" in text
    mn = re.search(r"g\^ir on the MN: (\S+)", text).group(1)
    ha = re.search(r"g\^ir on the HA: (\S+)", text).group(1)
    assert mn == ha and "(32 bytes)" in text
    assert "the same on both sides: True" in text
    assert re.search(r"frames of the run so far: \d+; frames that contain g\^ir: 0$", text,
                     flags=re.M)
    assert "the SA's proposal is the one chosen on the wire: True" in text
    assert "the IKE_SA_INIT messages the SA kept are the frames': True" in text
    assert ("You made no prediction. The lab: the HA's own public value, as long as "
            "the MN's.") in text


def test_skeyseed_and_every_sk_key_recomputed_equal_the_stacks(run):
    text = run.out("keys")
    assert "prf = HMAC-SHA256" in text
    assert ("prf+ produced 168 bytes = 32 (SK_d) + 0 (SK_ai) + 0 (SK_ar) + 36 (SK_ei) + "
            "36 (SK_er) + 32 (SK_pi) + 32 (SK_pr)") in text
    lines = {line.split()[0]: line for line in text.splitlines() if line.split()[:1]
             and line.split()[0] in KEYS}
    assert set(lines) == set(KEYS)
    for name, line in lines.items():
        assert line.endswith("= the MN's: True, the HA's: True"), line
    assert "(empty: 0 bytes)" in lines["SK_ai"] and "(empty: 0 bytes)" in lines["SK_ar"]
    sizes = {name: re.search(r"\((\d+) bytes\)", lines[name]).group(1)
             for name in KEYS if name not in ("SK_ai", "SK_ar")}
    assert sizes == {"SKEYSEED": "32", "SK_d": "32", "SK_ei": "36", "SK_er": "36",
                     "SK_pi": "32", "SK_pr": "32"}
    prefixes = [re.search(r" ([0-9a-f]{16})…", lines[name]).group(1) for name in sizes]
    assert len(set(prefixes)) == len(prefixes)        # six different keys, none repeated
    assert "You made no prediction. The lab: 168." in text


def test_the_figure_says_its_numbers(run):
    html = next(o["data"]["text/html"] for o in run.tagged("figure").outputs
                if "text/html" in o.get("data", {}))
    assert "A bar of the 168 bytes prf+ produced" in html
    assert "SK_ei 36 bytes" in html and "SK_pr 32 bytes" in html
    assert "SK_ai and SK_ar take no bytes" in html
    # RFC 7296 §2.13: the keys are cut "without regard to boundaries" of the prf's blocks
    assert "the 6 prf output blocks T1 to T6 of 32 bytes each (only 8 bytes of the last one" in html


def test_the_sk_payloads_opened_with_the_recomputed_keys(run):
    request = run.out("auth-request")
    assert "IKE_AUTH request #1 (from the initiator; SK payload decrypted)" in request
    assert "CP(CFG_REQUEST): INTERNAL_IP6_ADDRESS (empty: a request)" in request
    text = run.out("sk-open")
    assert "first payload type 46 (SK)" in text
    ours = re.search(r"opened with your SK_ei: \d+ bytes of payloads: (.+)$", text, flags=re.M)
    stack = re.search(r"the stack decoded:\s+(.+)$", text, flags=re.M)
    assert ours.group(1) == stack.group(1) == "IDi AUTH CP SA TSi TSr N"
    assert "IDi in your plaintext: mn1@mip6lab.example" in text
    responder = run.out("auth-responder")
    assert "opened with your SK_er: IDr AUTH CP SA TSi TSr N" in responder
    assert f"CP(CFG_REPLY): INTERNAL_IP6_ADDRESS {HOA}/64" in responder


def test_auth_recomputed_for_both_sides(run):
    text = run.out("auth-initiator")
    assert "AUTH method 2 (2: shared key message integrity code)" in text
    assert ("the PSK the MN is configured with: b'mip6lab-course-psk' | "
            "the HA: b'mip6lab-course-psk'") in text
    sent = re.search(r"the MN's AUTH payload: (\S+)", text).group(1)
    mine = re.search(r"recomputed:\s+(\S+)", text).group(1)
    assert sent == mine
    assert "the MN's AUTH recomputed = its AUTH payload: True" in text
    assert "the HA's AUTH recomputed = its AUTH payload: True" in run.out("auth-responder")


def test_what_ike_gives_the_mobility_module(run):
    text = run.out("given")
    assert f"mn: iked → mip6d: INTERNAL_IP6_ADDRESS {HOA}/64" in text
    assert (f"ha: iked → mip6d: INTERNAL_IP6_ADDRESS {HOA} given to "
            "rfc822:mn1@mip6lab.example") in text
    assert re.search(r"mn: iked → mip6d: CHILD_SA transport in 0x", text)
    assert re.search(r"mn: iked → mip6d: CHILD_SA tunnel in 0x", text)
    assert f"the HA's PAD: rfc822:mn1@mip6lab.example → home addresses ['{HOA}']" in text
    assert "the first Binding Update leaves, in ESP: ESP spi=" in text


def test_nat_detection_hashes_match_without_a_nat(run):
    text = run.out("natd")
    assert "IKE_SA_INIT request, as ha received it (SPIr 0000000000000000):" in text
    assert re.search(r"IKE_SA_INIT response, as mn received it \(SPIr (?!0{16})[0-9a-f]{16}\)",
                     text)
    verdicts = re.findall(r"(NAT_DETECTION_\w+)\s+[0-9a-f]{12}… \(20 bytes\)\s+SHA-1 over "
                          r"\[([^\]]+)\]:(\d+) → (.+)$", text, flags=re.M)
    assert verdicts == [("NAT_DETECTION_SOURCE_IP", COA, "500", "match"),
                        ("NAT_DETECTION_DESTINATION_IP", HA, "500", "match"),
                        ("NAT_DETECTION_SOURCE_IP", HA, "500", "match"),
                        ("NAT_DETECTION_DESTINATION_IP", COA, "500", "match")]
    assert "NAT detected: by the MN False | by the HA False" in text


def test_a_wrong_psk(run):
    text = run.out("wrong-psk")
    assert "rebuilt home-registration with seed 0, mn_psk=not-the-course-psk" in text
    refusal = text[text.index("IKE_AUTH response #1"):]
    assert refusal.split("\n")[1:3] == ["  N(AUTHENTICATION_FAILED)", ""]
    auth = run.out("wrong-psk-auth")
    assert "PSK of the MN: b'not-the-course-psk' | of the HA: b'mip6lab-course-psk'" in auth
    assert "g^ir and SK_pi the same on both sides: True" in auth
    assert "the MN's AUTH = computed with the MN's PSK: True" in auth
    assert "the MN's AUTH = what the HA computes with its PSK: False" in auth
    outcome = run.out("wrong-psk-outcome")
    assert "the HA's IKE_AUTH response holds only: N(AUTHENTICATION_FAILED)" in outcome
    assert re.search(r"ha: \[[0-9a-f]+\] IKE SA failed: AUTH \(shared key MIC\) does not verify",
                     outcome)
    assert re.search(r"mn: \[[0-9a-f]+\] IKE SA failed: IKE_AUTH refused: AUTHENTICATION_FAILED",
                     outcome)
    assert "the MN's home address at the end: -" in outcome
    assert "the HA's binding cache at the end: empty" in outcome
    assert "Binding Updates the MN sent: 0" in outcome
    assert ("You made no prediction. The lab: the HA answers IKE_AUTH with "
            "N(AUTHENTICATION_FAILED); no home address.") in outcome


def test_the_summary(run):
    text = run.out("summary")
    assert (f"the MN offered 1 proposal(s); the HA chose #1 {CHOSEN}; KE group 31, "
            "public values of 32 bytes each way") in text
    assert "g^ir the same on both sides: True; in any frame: False" in text
    assert "seven SK_* recomputed = the stack's on both sides: True (168 bytes of prf+)" in text
    assert "AUTH recomputed for the MN: True, for the HA: True" in text
    assert "no NAT on this path (MN: False, HA: False)" in text
    assert ("a wrong PSK: N(AUTHENTICATION_FAILED) in the IKE_AUTH response; home address -; "
            "binding cache 0 entries") in text


def test_quiz_checkers(run):
    p = run.probes
    assert p[0].startswith("✔ right: The responder picks one proposal it accepts")
    assert p[1].startswith("✘ not quite: The MN prefers #1, but the HA accepts only")
    assert f"The lab says #2 {CHOSEN}." in p[1]
    assert p[2].startswith("✔ right: Only the public values travel.")
    assert p[3].startswith("✘ not quite: The cell above counted the frames that contain g^ir.")
    assert "The lab says the MN's KE public value." in p[3]
    assert p[4].startswith("✔ right: With AES-GCM the SK payload is protected")
    assert p[5].startswith("✘ not quite: 36 bytes is SK_ei")
    assert "The lab says 0." in p[5]
    assert p[6].startswith("✔ right: Each side MACs the other side's fresh nonce")
    assert p[7].startswith("✘ not quite: Its own nonce is already inside RealMessage1")
    assert "The lab says Nr, the HA's." in p[7]
    assert p[8].startswith("✔ right: The source hash covers the address and port")
    assert p[9].startswith("✘ not quite: The hash covers the port too")
    assert "The lab says NAT_DETECTION_SOURCE_IP." in p[9]
    assert p[13].startswith("✘ not quite: no answer yet")


def test_predictions_compare(run):
    p = run.probes
    assert p[10].startswith("You predicted g^ir, the shared secret; the lab: the HA's own public "
                            "value, as long as the MN's — not what you predicted.")
    assert p[11].startswith("You predicted 168; the lab: 168 — as you predicted.")
    assert p[12].startswith("You predicted the HA drops the IKE_AUTH request and says nothing; "
                            "the lab: the HA answers IKE_AUTH with N(AUTHENTICATION_FAILED); "
                            "no home address — not what you predicted.")
