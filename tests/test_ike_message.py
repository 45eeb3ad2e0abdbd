"""IKE messages read as values (``KeyRing.ike_message``): exchange, request or response,
Message ID, and the payloads with the CP and TS payloads decoded -- on the real frames
of a home registration with each way of getting the home address (RFC 4877 §9,
RFC 5026 §5.3.2)."""

from __future__ import annotations

import ipaddress

import pytest

from mip6lab.inspection import IkeMessage, KeyRing
from mip6lab.scenarios import create
from mip6lab.timeline import Timeline

HA = ipaddress.IPv6Address("2001:db8:0:1::2")


def _messages(hoa_mode: str) -> list[tuple[str, IkeMessage]]:
    scenario = create("home-registration", 0, hoa_mode=hoa_mode)
    timeline = Timeline(scenario.lab, until=scenario.duration)
    timeline.run_to(time=0.2)
    reader = timeline.reader
    found = []
    for event in timeline.events[:timeline.cursor + 1]:
        if event.kind == "tx" and event.node in ("mn", "ha"):
            message = reader.ike_message(event)
            if message is not None:
                found.append((event.node, message))
    return found


@pytest.fixture(scope="module")
def address():
    return _messages("address")


@pytest.fixture(scope="module")
def prefix():
    return _messages("prefix")


def test_exchanges_in_order_with_message_ids(address, prefix):
    assert [(n, m.name, m.message_id) for n, m in address] == [
        ("mn", "IKE_SA_INIT request", 0), ("ha", "IKE_SA_INIT response", 0),
        ("mn", "IKE_AUTH request", 1), ("ha", "IKE_AUTH response", 1),
        ("mn", "CREATE_CHILD_SA request", 2), ("ha", "CREATE_CHILD_SA response", 2)]
    # RFC 5026 §5.3.2: one more exchange, a CREATE_CHILD_SA for the autoconfigured HoA
    assert [m.name for _n, m in prefix][-4:] == ["CREATE_CHILD_SA request",
                                                 "CREATE_CHILD_SA response"] * 2
    assert len(prefix) == len(address) + 2
    assert all(m.from_initiator == (n == "mn") for n, m in address + prefix)
    assert [m.encrypted for _n, m in address] == [False, False, True, True, True, True]


def test_cp_request_and_reply_address_mode(address):
    request, reply = address[2][1], address[3][1]
    assert request.cp() == ("CFG_REQUEST", {"INTERNAL_IP6_ADDRESS": [None]})
    kind, attributes = reply.cp()
    assert kind == "CFG_REPLY"
    assert attributes["INTERNAL_IP6_ADDRESS"] == [ipaddress.IPv6Interface("2001:db8:0:1::1001/64")]
    assert address[0][1].cp() is None and address[4][1].cp() is None
    assert "CP(CFG_REPLY): INTERNAL_IP6_ADDRESS 2001:db8:0:1::1001/64" in reply.text()
    assert "CP(CFG_REQUEST): INTERNAL_IP6_ADDRESS (empty: a request)" in request.text()


def test_ts_narrowed_to_the_assigned_home_address(address):
    (tsi_req, tsr_req), (tsi_rep, _tsr) = address[2][1].ts(), address[3][1].ts()
    assert str(tsi_req[0].network()) == "::/0" and tsi_req[0].mh_types == (5, 5)
    assert tsr_req[0].start == HA and tsr_req[0].mh_types == (6, 6)
    assert str(tsi_rep[0].network()) == "2001:db8:0:1::1001/128"
    assert address[0][1].ts() is None


def test_prefix_mode_ike_auth_has_no_child_and_the_child_carries_the_hoa(prefix):
    auth_request, auth_reply, child = prefix[2][1], prefix[3][1], prefix[4][1]
    assert auth_request.cp() == ("CFG_REQUEST", {"MIP6_HOME_PREFIX": [None]})
    value = auth_reply.cp()[1]["MIP6_HOME_PREFIX"][0]
    assert value.prefix == ipaddress.IPv6Network("2001:db8:0:1::/64") and value.lifetime > 0
    assert auth_request.ts() is None and auth_reply.ts() is None and not auth_reply.find("IKEv2_SA")
    tsi, _tsr = child.ts()
    hoa = tsi[0].start
    assert hoa == tsi[0].end and hoa in value.prefix and tsi[0].mh_types == (5, 5)
    assert f"TSi: {hoa}/128 proto 135 MH type 5" in child.text()


def test_not_ike_or_without_keys():
    scenario = create("home-registration", 0)
    timeline = Timeline(scenario.lab, until=scenario.duration)
    timeline.run_to(time=0.2)
    events = timeline.events
    ra = next(e for e in events if e.kind == "tx" and e.summary.startswith("RA"))
    assert timeline.reader.ike_message(ra) is None
    auth = next(e for e in events if e.kind == "tx" and "IKE_AUTH request" in e.summary)
    other = create("home-registration", 1)     # another lab: none of these keys
    message = KeyRing(other.lab).ike_message(auth.packet)
    assert message.encrypted and message.error and message.find("IKEv2_IDi") == []
    assert "not opened" in message.text()
    broken = auth.packet[:-10]
    assert KeyRing(scenario.lab).ike_message(broken) is None
