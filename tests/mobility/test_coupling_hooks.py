"""The mobile node's two hooks on the coupling (RFC 6275 §11.7.1's K decision; RFC 4877
§7.2's SPD entries): the stack uses what they answer, and a failing hook is a traced
error, never an exception out of the lab."""

from __future__ import annotations

import ipaddress

from mip6lab.ipsec import PROTECT, IPsecTemplate, SecurityPolicy
from mip6lab.mobility.coupling import (KBitQuestion, bu_selectors, default_k_decision,
                                       payload_selectors)
from mip6lab.scenarios import create


def test_default_k_decision_follows_rfc_5555_across_families():
    v6, v4 = ipaddress.ip_address("2001:db8:a1::1"), ipaddress.ip_address("203.0.113.10")
    assert default_k_decision(KBitQuestion(True, "ESTABLISHED", v6, v6))
    assert not default_k_decision(KBitQuestion(True, "ESTABLISHED", v6, v4))
    assert not default_k_decision(KBitQuestion(False, "ESTABLISHED", v6, v6))
    assert not default_k_decision(KBitQuestion(True, None, None, v6))


def test_k_decision_hook_decides_the_k_bit_and_what_ike_does():
    scenario = create("handover", seed=2, k_bit=1)
    asked = []
    scenario.mobile.coupling.k_decision = lambda q: asked.append(q) or False   # K=0 always
    report = scenario.run()
    moves = report["result"]["handovers"][1:]
    assert asked and all(q.configured and q.ike_sa_state == "ESTABLISHED" for q in asked)
    assert report["ok"] and [m["k_bit"] for m in moves] == [0, 0, 0]
    assert all(m["ike_exchanges"] == 2 for m in moves)      # IKE again on every move


def test_failing_k_decision_hook_is_an_error_event_and_k0():
    scenario = create("handover", seed=2, k_bit=1)
    scenario.mobile.coupling.k_decision = lambda q: 1 / 0
    report = scenario.run()
    errors = scenario.lab.events.filter(kind="error")
    assert any("k_decision hook: raised ZeroDivisionError" in e.summary for e in errors)
    assert report["ok"] and all(m["k_bit"] == 0 for m in report["result"]["handovers"][1:])


def _entries(request):
    return [SecurityPolicy(bu_selectors(request.home_address, request.home_agent,
                                        at_home_agent=False), PROTECT,
                           IPsecTemplate("transport", reqid=request.bu_reqid), name="bu"),
            SecurityPolicy(payload_selectors(request.home_address, at_home_agent=False),
                           PROTECT, IPsecTemplate("tunnel", request.care_of_address,
                                                  request.tunnel_remote,
                                                  request.payload_reqid), name="payload")]


def test_spd_entries_hook_installs_the_entries_on_the_seam():
    scenario = create("home-registration", seed=2)
    scenario.mobile.coupling.spd_entries = _entries
    report = scenario.run()
    assert report["ok"] and report["result"]["data"]["received"] > 0
    spd = scenario.lab.nodes["mn"].ipsec.spd
    names = {p.name: p.owner for p in spd}
    assert names.get("bu") == "mip6d" and names.get("payload") == "mip6d"
    assert not any(p.name.startswith("mip6-") for p in spd)     # not the stack's own


def test_spd_entries_hook_that_fails_is_traced():
    scenario = create("home-registration", seed=2)
    scenario.mobile.coupling.spd_entries = lambda request: ["not a policy"]
    report = scenario.run()
    assert not report["ok"]
    assert any("spd_entries hook: gave 'not a policy'" in e.summary
               for e in scenario.lab.events.filter(kind="error"))
