"""A scenario's report does not depend on what the trace keeps (docs/architecture.md):
the verdict and figures come from the modules. What is counted from the trace itself
(the frames and seam crossings of each handover, the events and frames kept) says
None, not 0, at a level that did not keep it."""

from __future__ import annotations

from mip6lab.scenarios import create

FROM_FRAMES = ("ike_messages", "signalling_bytes")


def test_the_report_is_the_same_at_every_trace_level_but_what_was_kept():
    reports = {level: create("home-registration", seed=1, trace_level=level).run()
               for level in ("full", "events", "counts")}
    kept = {level: (report.pop("events"), report.pop("packets"))
            for level, report in reports.items()}
    full, events, counts = kept["full"], kept["events"], kept["counts"]
    assert full[0] > events[0] > 0 and full[1] > 0
    assert events[1] == 0 and counts == (0, 0)

    handovers = {level: report["result"].pop("handovers")
                 for level, report in reports.items()}
    assert reports["full"]["ok"] is True
    assert reports["full"] == reports["events"] == reports["counts"]
    (at_full,), (at_events,), (at_counts,) = (handovers[level]
                                             for level in ("full", "events", "counts"))
    assert at_full["ike_messages"] > 0 and at_full["signalling_bytes"] > 0
    assert at_full["seam_crossings"] > 0
    assert all(at_events[key] is None for key in FROM_FRAMES)
    assert at_events["seam_crossings"] == at_full["seam_crossings"]
    assert all(at_counts[key] is None for key in FROM_FRAMES + ("seam_crossings",))
    for key in set(at_full) - set(FROM_FRAMES) - {"seam_crossings"}:
        assert at_full[key] == at_events[key] == at_counts[key], key


def _ike_sas(scenario):
    return [sa for name in ("mn", "ha") for sa in scenario.lab.nodes[name].ike.sas.values()]


def test_only_the_counts_level_lets_go_of_the_ike_sa_init_messages():
    """At "counts" nothing is kept for a person to look at: the IKE daemons let go of
    the IKE_SA_INIT messages once AUTH has used them (IkeSa.forget_init_messages); the
    rest of IkeSa.secrets() stays, and so does every SA."""
    runs = {level: create("home-registration", seed=1, trace_level=level)
            for level in ("full", "events", "counts")}
    for scenario in runs.values():
        scenario.run()
    secrets = {level: [sa.secrets() for sa in _ike_sas(s) if sa.state == "ESTABLISHED"]
               for level, s in runs.items()}
    assert len(secrets["full"]) == len(secrets["counts"]) >= 2
    for level in ("full", "events"):
        assert all(s.init_request and s.init_response for s in secrets[level])
    assert all(s.init_request == s.init_response == b"" for s in secrets["counts"])
    for kept, dropped in zip(secrets["full"], secrets["counts"]):
        assert (kept.spi_i, kept.keys, kept.shared_secret) == \
            (dropped.spi_i, dropped.keys, dropped.shared_secret)
