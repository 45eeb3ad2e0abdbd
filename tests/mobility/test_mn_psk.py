"""The mobility scenarios' ``mn_psk`` option: the MN's PSK, the HA keeping the lab's."""

from mip6lab.scenarios import create


def test_a_wrong_psk_gets_no_home_address_and_no_binding():
    scenario = create("home-registration", mn_psk="not-the-lab-psk")
    report = scenario.run()
    assert not report["ok"]
    assert report["result"]["mn"]["hoa"] is None
    assert report["result"]["binding_cache"] == [] or not report["result"]["binding_cache"]
    summaries = [e.summary for e in scenario.lab.events]
    assert any("AUTHENTICATION_FAILED" in s for s in summaries)


def test_the_default_is_the_lab_psk():
    assert create("home-registration").run()["ok"]
