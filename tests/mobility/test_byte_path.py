"""The node's byte path (Mobility Header and Neighbor Discovery read off the bytes) against
the scapy path it stands for, on whole scenarios.

A node hands a BU, a BA, an RA, an NS or an NA to its handlers read by the struct codecs
(:mod:`mip6lab.wire.mh_codec`, :mod:`mip6lab.wire.nd_codec`) rather than dissected by
scapy (issue 14 point 4). Each scenario here runs twice with the same seed, once as it
is and once with the byte path turned off (every packet dissected by scapy, as before):
the trace at level ``full`` -- every frame's octets, every drop and every state change,
with its time -- must be the same event for event. The runs must also have used the
byte path (else the comparison says nothing).
"""

from __future__ import annotations

import pytest

from mip6lab.net.node import Node
from mip6lab.scenarios import create

RUNS = [
    ("handover", {}),
    ("handover", {"k_bit": 0}),
    ("return-home", {}),
    ("dsmip6-nat", {}),
    ("home-registration", {"security": "auth-option"}),
    ("handover", {"loss": 0.2}),
]


def _events(name: str, options: dict) -> list[tuple]:
    scenario = create(name, seed=3, **options)
    scenario.run()
    return [(e.time_us, e.node, e.module, e.kind, e.summary, e.packet, e.link, e.reason,
             repr(e.data)) for e in scenario.lab.trace.events]


@pytest.mark.parametrize(("name", "options"), RUNS)
def test_the_byte_path_leaves_the_trace_as_the_scapy_path_makes_it(name, options,
                                                                     monkeypatch):
    used = []
    deliver = Node._deliver_bytes6

    def counting(self, iface, l3):
        handled = deliver(self, iface, l3)
        used.append(handled)
        return handled

    monkeypatch.setattr(Node, "_deliver_bytes6", counting)
    fast = _events(name, options)
    assert any(used), "the byte path was never taken"
    monkeypatch.setattr(Node, "_deliver_bytes6", lambda self, iface, l3: False)
    slow = _events(name, options)
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        assert a == b
