"""The mobility scenarios' ``strict_spd`` option: an IKE daemon that treats an SPDADD
refused with EEXIST as the failure of the child SA (as a key daemon that cannot install
its policy does), so that ``spd_owner=both`` shows what two SPD writers break
(draft-patil-mext-mip6issueswithipsec §6.6, §6.7; RFC 4877 §7.2).

By default (``strict_spd=0``) the IKE daemon ignores the refusal: the entry the mobility
module wrote first has the same selectors and the same reqid, so it finds the IKE
daemon's SAs and the registration works (``test_scenarios.py``).
"""

from __future__ import annotations

import pytest

from mip6lab.ikev2.daemon import ChildSaInstallFailed
from mip6lab.scenarios import create


def _run(**options):
    scenario = create("home-registration", **options)
    return scenario, scenario.run()


@pytest.fixture(scope="module")
def strict_both():
    return _run(spd_owner="both", strict_spd=1)


def test_the_default_is_not_strict():
    scenario = create("home-registration")
    assert scenario.settings["strict_spd"] == 0
    assert not scenario.lab.nodes["mn"].ike.strict_policies
    assert not scenario.lab.nodes["ha"].ike.strict_policies


@pytest.mark.parametrize("owner", ["mobility", "ike"])
def test_one_owner_is_unaffected(owner):
    """With one writer nothing is refused, so strictness changes nothing: the same
    events, the same report."""
    strict, strict_report = _run(spd_owner=owner, strict_spd=1)
    tolerant, tolerant_report = _run(spd_owner=owner)
    assert strict_report["ok"] and strict_report["result"]["spd_conflicts"] == 0
    assert strict_report["result"] == tolerant_report["result"]
    assert [e.summary for e in strict.lab.events] == [e.summary for e in tolerant.lab.events]


def test_both_owners_strict_the_bu_sa_fails_on_both_ends(strict_both):
    scenario, report = strict_both
    for node in ("mn", "ha"):
        daemon = scenario.lab.nodes[node].ike
        assert [f.mode for f in daemon.policy_failures] == ["transport"]
        failure = daemon.policy_failures[0]
        assert isinstance(failure, ChildSaInstallFailed)
        assert failure.reason.startswith("SPDADD refused (EEXIST): policy mip6-bu-")
        # the mobility module heard the failure across the seam, not an SA that is up
        heard = [e for e in scenario.lab.events.filter(node=node, kind="seam", module="coupling")
                 if e.data.get("message") == "CHILD_SA"]
        assert [e.summary.split(": ", 1)[1].split(" ")[1] for e in heard] == ["FAILED"]
        # the SAs are gone (RFC 7296 §1.4.1 Delete), the mobility module's entries stay
        assert scenario.lab.nodes[node].ipsec.sad.table() == []
        owners = {p.owner for p in scenario.lab.nodes[node].ipsec.spd if p.action == "protect"}
        assert owners == {"mip6d"}
    # each side refused once (the BU/BA entry), and each told the peer with a Delete
    assert report["result"]["spd_conflicts"] == 2
    ike = [e for e in scenario.lab.events.filter(kind="state", module="ike")
           if "FAILED: its policy cannot be installed" in e.summary]
    assert [e.node for e in ike] == ["ha", "mn"]


def test_both_owners_strict_no_bu_no_binding_no_data(strict_both):
    scenario, report = strict_both
    assert report["ok"] is False
    result = report["result"]
    registration = result["handovers"][0]
    assert registration["bu_sent"] == 0 and registration["ba_status"] is None
    assert registration["ike_exchanges"] == 1       # no CREATE_CHILD_SA for the payload SA
    assert result["binding_cache"] == []
    assert result["data"] == {"sent": 0, "received": 0, "lost": 0, "in_flight": 0}
    # the HoA came (the coupling has it); the SA for its BU did not, so the mobility
    # module never took the HoA into use
    assert scenario.mobile.coupling.home_address is not None
    assert result["mn"]["hoa"] is None
    assert not scenario.mobile.coupling.ready


def test_both_owners_tolerant_still_works():
    """The default: the second writer's EEXIST is ignored, three per IKE SA."""
    _scenario, report = _run(spd_owner="both")
    assert report["ok"] is True
    assert report["result"]["spd_conflicts"] == 3


def test_strict_spd_is_a_choice():
    from mip6lab.scenarios import ScenarioError

    with pytest.raises(ScenarioError, match="strict_spd"):
        create("home-registration", strict_spd=2)
