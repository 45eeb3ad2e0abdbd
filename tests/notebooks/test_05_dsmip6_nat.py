"""05-dsmip6-nat executed headless: DSMIP6 from an IPv4-only network behind a NAT, the
NAT detected, the NAT Detection option, UDP encapsulation, keepalives, a NAT rebinding,
the what-if without a NAT, and the complexity counted against plain Mobile IPv6.

Every value the notebook's prose relies on is asserted here from the executed notebook's
own output, so a change in the stack fails this test and sends someone to re-read the prose.
"""

from __future__ import annotations

import re

import pytest

from .conftest import check_clean, check_widgets

PRIVATE, PUBLIC, HA4 = "203.0.113.10", "198.51.100.50", "192.0.2.2"

PROBES = (
    'print(where_quiz.answer(f"{seen_src}:{seen_port}"))',               # 0
    'print(where_quiz.answer(f"{bu_coa}:4191"))',                        # 1
    'print(where_quiz.answer(f"{seen_src}:4191"))',                      # 2
    'print(port_quiz.answer(4191))',                                     # 3
    'print(port_quiz.answer(4500))',                                     # 4
    'print(module_quiz.answer("the binding cache (mobility module), from the BU refresh"))',  # 5
    'print(module_quiz.answer("the IKE SA (IKE daemon), from a NAT-keepalive"))',            # 6
    'carrier_guess.predict("IPv4 / UDP 4500 / ESP (ESP in UDP, RFC 3948)"); '
    'carrier_guess.compare(f"{shape} (DSMIP6)", "x")',                   # 7
    'rebind_guess.predict("at the MN\'s next BU refresh"); rebind_guess.compare(recovered_by, "x")',  # 8
    'mapping_guess.predict(2); mapping_guess.compare(nat_mappings, "x")',  # 9
)


@pytest.fixture(scope="module")
def run(executed):
    return executed("05-dsmip6-nat.ipynb", PROBES)


def test_budget(run):
    check_clean(run)


def test_shows_the_dashboard_and_the_teaching_widgets(run):
    # the dashboard, 3 predictions and 3 quizzes
    check_widgets(run, 1 + 3 + 3)


def test_ike_detects_the_nat_and_floats_to_4500(run):
    text = run.out("ike-nat")
    assert f"care-of address {PRIVATE} on natlan" in text
    lines = {line.split()[0] + " " + line.split()[1]: line for line in text.splitlines()
             if line.startswith("IKE_")}
    init = lines["IKE_SA_INIT request"]
    assert f"sent by mn: {PRIVATE}:500 → {HA4}:500" in init
    seen_500 = re.search(rf"received by ha: {PUBLIC}:(\d+) → {HA4}:500", init).group(1)
    auth = lines["IKE_AUTH request"]
    assert f"sent by mn: {PRIVATE}:4500 → {HA4}:4500" in auth
    seen_4500 = re.search(rf"received by ha: {PUBLIC}:(\d+) → {HA4}:4500", auth).group(1)
    assert seen_500 != seen_4500 and "500" not in (seen_500, seen_4500)
    assert "N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP)" in text
    assert f"NAT mapping now: udp {PRIVATE}:500 → {PUBLIC}:{seen_500}" in text
    assert f"NAT mapping now: udp {PRIVATE}:4500 → {PUBLIC}:{seen_4500}" in text
    assert f"HA's IKE SA: {HA4}:4500 ↔ {PUBLIC}:{seen_4500} | NAT detected: yes" in text


def test_the_bu_in_ipv4_udp_4191_with_the_ipv4_coa_option(run):
    inspector = run.out("bu-inspector")
    assert "Decrypted ESP payload (with SA" in inspector and "transport mode" in inspector
    assert "Binding Update (DSMIPv6)" in inspector
    text = run.out("bu")
    layers = [line.strip() for line in text.splitlines()[1:8]]
    assert layers == ["Ethernet", "IP", "UDP", "IPv6", "ESP", "[decrypted] IPv6",
                      "[decrypted] IPv6 Mobility Header - Binding Update (DSMIPv6)"]
    assert f"outer IPv4/UDP: {PRIVATE}:4191 → {HA4}:4191" in text
    assert f"IPv4 care-of address in the option: {PRIVATE}" in text
    assert "MIP6OptIPv4HomeAddress 192.0.2.65" in text
    assert "You made no prediction. The lab: IPv4 / UDP 4191 / IPv6 / ESP (DSMIP6)." in text


def _nat_port(run) -> str:
    return re.search(rf"outer source: +{PUBLIC}:(\d+)", run.out("nat-detect")).group(1)


def test_the_ha_detects_the_nat(run):
    text = run.out("nat-detect")
    port = _nat_port(run)
    assert port != "4191"
    assert f"IPv4 CoA option says: {PRIVATE}" in text
    assert "the same? False → NAT detected: True" in text
    assert f"binding 2001:db8:0:1::1001 → {PUBLIC}:{port} (UDP, NAT detected)" in text
    assert f"'ipv4_coa': '{PRIVATE}', 'nat': '{PUBLIC}:{port}'" in text


def test_the_ba_carries_the_nat_detection_option(run):
    text = run.out("ba")
    port = _nat_port(run)
    assert f"the BA leaves the HA to {PUBLIC}:{port}" in text
    assert f"reaches the MN as {PRIVATE}:4191" in text
    assert "[decrypted] IPv6 Mobility Header - Binding ACK" in text
    assert "NAT Detection option (type 31): F = 1, refresh time = 12 s" in text
    assert "IPv4 Address Acknowledgement option (type 30): status 0, IPv4 home address 192.0.2.65" in text
    for line in ("MN care-of address registered: 203.0.113.10", "MN NAT detected: yes",
                 "MN UDP encapsulation (RFC 5555): yes"):
        assert line in text


def test_udp_encapsulation_and_the_bu_sa_outside_udp_4500(run):
    text = run.out("encap")
    assert re.search(rf"IPv6 data, event #\d+: IP / UDP / IPv6 / UDP / Raw   outer {PRIVATE}:4191 → {HA4}:4191",
                     text)
    assert re.search(rf"IPv4 data, event #\d+: IP / UDP / IP / UDP / Raw   outer {PRIVATE}:4191 → {HA4}:4191",
                     text)
    assert "mode transport" in text and "UDP encapsulation: yes" in text
    assert "2001:db8:0:1::1001 → 2001:db8:0:1::2, mode transport, encap None" in text


def test_keepalives(run):
    text = run.out("keepalive")
    assert "the MN was in natlan from t = 5.05 s to t = 24.01 s" in text
    assert "NAT-keepalives (RFC 3948 §2.3) sent: 1 at t = 5.090 s; the IKE daemon's interval: 20.0 s" in text
    assert "BUs sent: 2 at t = 5.090, 17.090 s; intervals: [12.0] s" in text
    assert "refresh time in the NAT Detection option: 12 s; the NAT forgets an idle mapping after 30 s" in text


def test_the_rebinding_is_survived_by_the_bu_refresh(run):
    text = run.out("rebinding")
    blocks = re.findall(r"HA binding cache: (\S+)   \| HA IKE SA peer: (\S+)", text)
    before, after, refreshed, end = blocks
    assert before[0] == after[0] == f"{PUBLIC}:{_nat_port(run)}"     # the rebinding: not seen yet
    assert refreshed[0] == end[0] != before[0]                         # the BU refresh: followed
    assert before[1] == after[1] == refreshed[1] == end[1]             # the IKE SA never followed
    mappings = re.findall(rf"{PRIVATE}:4191 → ({PUBLIC}:\d+)", text)
    assert mappings[0] == before[0] and mappings[1] == refreshed[0]    # the binding = the mapping
    assert len(re.findall(r"rebound: outside port \d+ -> \d+", text)) == 3
    data = run.out("rebinding-data")
    assert "last answer before the rebinding: t = 12.528 s; first after: t = 17.528 s (gap 5.000 s)" in data
    assert "the BU refresh: sent at t = 17.090 s, its BA back at t = 17.106 s" in data
    assert re.search(r"dropped by the HA meanwhile: [1-9]\d*, e.g. 'tunnelled packet from "
                     rf"{PUBLIC} for 2001:db8:0:1::1001: not its registered care-of address'", data)
    answers = int(re.search(r"IPv6 answers after the refresh, until the MN leaves natlan: (\d+)",
                            data).group(1))
    assert answers > 10                                                # data continues
    assert f"nat {before[0]} → {refreshed[0]}" in data
    assert "You made no prediction. The lab: at the MN's next BU refresh." in data
    follows = run.out("who-follows")
    assert "binding cache follows at: event #" in follows and "t = 17.098 s" in follows
    assert "IKE SA follows at: not while the MN is in natlan" in follows


def test_the_figures_say_their_numbers(run):
    for tag, parts in (("rebinding-figure", ("Answers stop at 12.5 s", "rebinding at 13.0 s",
                                             "start again at 17.5 s")),
                       ("figure", ("NAT mappings: 0, 0, 3", "mobility/security timers: 2, 2, 6"))):
        html = next(o["data"]["text/html"] for o in run.tagged(tag).outputs
                    if "text/html" in o.get("data", {}))
        for part in parts:
            assert part in html, (tag, part)


def test_what_if_no_nat(run):
    text = run.out("whatif")
    assert "the BU from v4net: IP / UDP / IPv6 / ESP" in text
    assert "outer source seen by the HA: 198.51.100.40 | IPv4 CoA option: 198.51.100.40" in text
    assert "the BA's NAT Detection option: F = 0, refresh time = 4294967295 (all ones" in text
    assert "the BA's flags: K" in text
    assert "data after the BA: IP / IPv6 / UDP" in text
    assert "NAT-keepalives in the whole run: 0 | NAT detected by the MN: False" in text


def test_the_complexity_counted_against_plain_mip6(run):
    text = run.out("complexity")

    def row(label: str) -> list[str]:
        line = next(l for l in text.splitlines() if l.startswith(label))
        return line[len(label):].split()

    assert row("SPD entries (MN + HA)") == ["6", "6", "6"]
    assert row("SAD entries (MN + HA)") == ["4", "4", "4"]
    assert row("IKE SAs established (MN + HA)") == ["2", "2", "2"]
    assert row("facts in the binding (non-empty fields)") == ["4", "5", "6"]
    assert row("NAT mappings") == ["0", "0", "3"]
    assert row("mobility/security timers") == ["2", "2", "6"]
    assert row("headers before the ESP of the BU") == ["3", "4", "4"]
    assert row("IKE messages (CoA to BA)") == ["4", "4", "4"]
    assert row("seam crossings (CoA to BA)") == ["24", "25", "29"]
    assert "only in 'DSMIP6, no NAT' (against plain MIP6): {'ha: mip6d PAD': 1}" in text
    assert "'mn: mip6d DISCARD': 1" in text
    assert "You made no prediction. The lab: 3." in text
    combos = run.out("combinations")
    plain, dsmip6 = map(int, re.search(r"= (\d+) cases\n.*= (\d+) cases", combos).groups())
    assert dsmip6 == plain * 12


def test_the_summary(run):
    text = run.out("summary")
    assert f"outer {PRIVATE}:4191 → {HA4}:4191, IPv4 CoA option {PRIVATE}" in text
    assert "not the IPv4 CoA → NAT detected" in text
    assert "refresh time 12 s" in text
    assert "IKE says UDP encapsulation yes, the SAD says encap None" in text
    assert "keepalives in natlan: 2 BUs (12 s apart), 1 NAT-keepalive(s)" in text
    assert "answers stopped for 5.00 s" in text and "the IKE SA did not" in text
    assert "NAT mappings: plain MIP6 0 | DSMIP6, no NAT 0 | DSMIP6 + NAT 3" in text


def test_quiz_checkers(run):
    p = run.probes
    assert p[0].startswith("✔ right: RFC 5555 §4.2: the BA goes to")
    assert p[1].startswith("✘ not quite: That is the MN's private address")
    assert p[2].startswith("✘ not quite: The right address, but the NAT did not keep port 4191")
    assert f"The lab says {PUBLIC}:{_nat_port(run)}." in p[2]
    assert p[3].startswith("✔ right: 4191, the DSMIP6 port")
    assert p[4].startswith("✘ not quite: That is where IKE went after IKE_SA_INIT")
    assert "The lab says 4191." in p[4]
    assert p[5].startswith("✔ right: The BU refresh is authenticated")
    assert p[6].startswith("✘ not quite: A NAT-keepalive is one unauthenticated byte")


def test_predictions_compare(run):
    p = run.probes
    assert p[7].startswith("You predicted IPv4 / UDP 4500 / ESP (ESP in UDP, RFC 3948); the lab: "
                           "IPv4 / UDP 4191 / IPv6 / ESP (DSMIP6) — not what you predicted.")
    assert p[8].startswith("You predicted at the MN's next BU refresh; the lab: at the MN's next BU "
                           "refresh — as you predicted.")
    assert p[9].startswith("You predicted 2; the lab: 3 — not what you predicted.")
