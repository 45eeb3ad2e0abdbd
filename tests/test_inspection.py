"""Reading a trace as a student does: layers and bytes, what ESP and IKE hide, filters.

The frames are the real ones of a home registration (the BU and BA in ESP transport
mode, IKE on UDP 500, data in the ESP tunnel) and of a DSMIP6 registration from an IPv4
care-of address (the same, inside UDP 4191).
"""

from __future__ import annotations

import random

import pytest

from mip6lab.inspection import (PROTOCOLS, Decrypted, Dissection, KeyRing, TraceReader,
                                dissect, hexdump_text, mobility_message, protocols, view)
from mip6lab.ipsec.esp import EspError, esp_spi, open_copy
from mip6lab.ipsec.replay import ReplayError
from mip6lab.scenarios import create
from mip6lab.timeline import Timeline
from mip6lab.trace import Event

HOA = "2001:db8:0:1::1001"


@pytest.fixture(scope="module")
def run():
    """home-registration recorded to its end, with its reader and frames of interest."""
    scenario = create("home-registration", 0)
    timeline = Timeline(scenario.lab, until=scenario.duration)
    timeline.run_all()
    reader = timeline.reader
    events = timeline.events

    def first(test):
        return next(e for e in events if test(e))

    frames = {
        "ra": first(lambda e: e.kind == "tx" and e.summary.startswith("RA")),
        "bu": first(lambda e: e.kind == "tx" and reader.mobility_message(e) == "BU"),
        "ba": first(lambda e: e.kind == "tx" and reader.mobility_message(e) == "BA"),
        "init": first(lambda e: e.kind == "tx" and "IKE_SA_INIT request" in e.summary),
        "auth": first(lambda e: e.kind == "tx" and "IKE_AUTH request" in e.summary),
        "auth-reply": first(lambda e: e.kind == "tx" and "IKE_AUTH response" in e.summary),
        "data": first(lambda e: e.kind == "tx" and e.node == "mn" and e.time > 1.0
                      and e.summary.startswith("ESP")),
    }
    return scenario, timeline, reader, frames


def _ip(frame: bytes) -> bytes:
    return frame[14:]


# -- dissection -------------------------------------------------------------------------


def test_dissect_a_bu_frame_layer_by_layer(run):
    _scenario, _timeline, _reader, frames = run
    frame = frames["bu"].packet
    d = dissect(frame)
    assert isinstance(d, Dissection) and d.error is None and d.data == frame
    names = [layer.name for layer in d.layers]
    assert names[0] == "Ethernet" and names[1] == "IPv6" and names[-1] == "ESP"
    assert "Destination Options" in names[2]           # the Home Address option
    assert [layer.depth for layer in d.layers] == list(range(len(d.layers)))
    # the headers tile the frame: each starts where the one before ends
    assert d.layers[0].start == 0 and d.layers[0].end == 14
    for before, after in zip(d.layers, d.layers[1:]):
        assert after.start == before.end
    assert d.layers[-1].end == len(frame)
    ipv6, esp = d.layers[1], d.layers[-1]
    assert ipv6.end - ipv6.start == 40 and frame[ipv6.start] >> 4 == 6
    fields = dict(ipv6.fields)
    assert {"nh", "plen", "src", "dst", "hlim"} <= set(fields)
    assert fields["plen"] == str(len(frame) - 14 - 40)
    spi = int.from_bytes(frame[esp.start:esp.start + 4], "big")
    assert int(dict(esp.fields)["spi"], 0) == spi == esp_spi(_ip(frame))
    assert "ESP" in dict(d.layers[2].fields)["nh"]
    text = d.text()
    assert f"ESP [{esp.start}:{esp.end}]" in text and "spi=" in text


def test_hexdump_marks_the_chosen_bytes(run):
    frame = run[3]["bu"].packet
    layer = dissect(frame).layers[1]
    text = hexdump_text(frame, (layer.start, layer.end))
    lines = text.splitlines()
    assert len(lines) == (len(frame) + 15) // 16
    assert lines[0].startswith("0000  ") and lines[1].startswith("0010  ")
    assert text.count("[") == layer.end - layer.start
    assert f"[{frame[layer.start]:02x}]" in lines[0] and f" {frame[0]:02x} " in lines[0]
    assert "[" not in hexdump_text(frame)


@pytest.mark.parametrize("frame", [b"\x00" * 5, b"\xff" * 7, b"\x00" * 13],
                         ids=["5 zero bytes", "7 bytes", "13 bytes"])
def test_a_frame_scapy_cannot_dissect_gives_a_dissection(frame):
    d = dissect(frame)
    assert d.data == frame
    assert d.error is not None and "could not dissect" in d.error
    assert [(layer.name, layer.start, layer.end) for layer in d.layers] == \
        [("Raw", 0, len(frame))]
    assert "dissection stopped" in d.text()
    assert protocols(frame) == {"other"} and mobility_message(frame) is None


def test_broken_frames_never_raise(run):
    """Every truncation of a BU and an IKE_AUTH frame, and random bytes: dissected,
    opened and classified without an exception."""
    _scenario, _timeline, reader, frames = run
    keyring = reader.keyring
    rng = random.Random(5)
    samples = [frames["bu"].packet[:n] for n in range(len(frames["bu"].packet))]
    samples += [frames["auth"].packet[:n] for n in range(0, len(frames["auth"].packet), 7)]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120)))
                for _ in range(40)]
    flipped = bytearray(frames["auth"].packet)
    flipped[-3] ^= 0x40
    samples.append(bytes(flipped))
    for frame in [b"", *samples]:
        d = dissect(frame)
        assert d.layers and d.layers[0].start == 0
        assert all(0 <= layer.start <= layer.end <= len(frame) for layer in d.layers)
        opened = keyring.open(frame)
        assert opened is None or isinstance(opened, Decrypted)
        assert protocols(frame, keyring) <= set(PROTOCOLS)
        assert mobility_message(frame, keyring) in (None, "BU", "BA")
    # a truncated BU is still ESP, but cannot be opened: it says why
    cut = keyring.open_esp(frames["bu"].packet[:-5])
    assert cut is not None and cut.error and cut.dissection is None


# -- ESP --------------------------------------------------------------------------------


def test_open_esp_shows_the_binding_update(run):
    _scenario, _timeline, reader, frames = run
    opened = reader.keyring.open_esp(frames["bu"].packet)
    assert opened is not None and opened.error is None and opened.what == "ESP payload"
    assert "transport mode" in opened.key
    names = [layer.name for layer in opened.dissection.layers]
    assert any("Binding Update" in name for name in names)
    mh = next(layer for layer in opened.dissection.layers if "Binding Update" in layer.name)
    assert dict(mh.fields)["mhtype"] == "BU"
    assert "Binding Update" in opened.text() and opened.text().startswith("Decrypted ESP")
    # the decrypted packet is the BU itself, to the home agent
    inner = dict(opened.dissection.layers[0].fields)
    assert opened.dissection.layers[0].name == "IPv6" and inner["dst"] == "2001:db8:0:1::2"
    assert opened.dissection.data[0] >> 4 == 6
    ack = reader.keyring.open_esp(frames["ba"].packet)
    mh = next(layer for layer in ack.dissection.layers if "Binding ACK" in layer.name)
    assert dict(mh.fields)["mhtype"] == "BA" and "accepted" in dict(mh.fields)["status"]
    routing = next(layer for layer in ack.dissection.layers if "Routing" in layer.name)
    assert HOA in dict(routing.fields)["addresses"]        # the type 2 routing header
    # a packet with no ESP: nothing to open
    assert reader.keyring.open_esp(frames["ra"].packet) is None
    assert reader.keyring.open_esp(frames["init"].packet) is None


def test_tampered_esp_says_integrity_not_an_exception(run):
    scenario, _timeline, reader, frames = run
    frame = bytearray(frames["bu"].packet)
    frame[-20] ^= 0x01                        # a ciphertext byte, before the ICV
    opened = reader.keyring.open_esp(bytes(frame))
    assert isinstance(opened, Decrypted) and opened.dissection is None
    assert "integrity" in opened.error
    assert "cannot open" in opened.text()


def test_open_esp_with_a_keyring_that_lacks_the_sa(run):
    frames = run[3]
    fresh = create("home-registration", 0)
    opened = KeyRing(fresh.lab).open_esp(frames["bu"].packet)
    assert opened.error == "the lab holds no inbound SA with this SPI"
    assert opened.dissection is None
    ike = KeyRing(fresh.lab).open_ike(frames["auth"].packet)
    assert ike.error == "the lab holds no keys for this IKE SA"


def test_open_copy_leaves_the_nodes_sa_alone(run):
    scenario, _timeline, _reader, frames = run
    packet = _ip(frames["bu"].packet)
    spi = esp_spi(packet)
    ha = scenario.lab.nodes["ha"]
    sa = next(s for s in ha.ipsec.sad if s.spi == spi and s.direction == "in")
    before = (sa.replay.top, sa.replay.bitmap, sa.packets, sa.bytes_processed,
              dict(sa.errors), sa.state)
    assert sa.replay.top >= 1
    with pytest.raises(ReplayError):          # the node itself would refuse it again
        sa.replay.check(1)
    first = open_copy(sa, packet)
    again = open_copy(sa, packet)             # a fresh window each time: no replay
    assert first.packet == again.packet and first.sa is not sa
    assert after_state(sa) == before
    tampered = bytearray(packet)
    tampered[-20] ^= 1
    with pytest.raises(EspError, match="integrity"):
        open_copy(sa, bytes(tampered))
    assert after_state(sa) == before           # not even the error is counted


def after_state(sa):
    return (sa.replay.top, sa.replay.bitmap, sa.packets, sa.bytes_processed,
            dict(sa.errors), sa.state)


# -- IKE --------------------------------------------------------------------------------


def test_open_ike_auth_shows_its_payloads(run):
    _scenario, _timeline, reader, frames = run
    request = reader.keyring.open_ike(frames["auth"].packet)
    assert request is not None and request.error is None
    assert request.what == "IKE SK payload" and "SK_ei/SK_ai" in request.key
    names = [line.split()[0] for line in request.payloads]
    assert names[:3] == ["IKEv2_IDi", "IKEv2_AUTH", "IKEv2_CP"]
    assert {"IKEv2_SA", "IKEv2_TSi", "IKEv2_TSr"} <= set(names)
    # one line per payload, not the rest of the chain after it
    assert all(" / " not in line for line in request.payloads), request.payloads
    assert len(request.dissection.layers) == len(request.payloads)
    reply = reader.keyring.open_ike(frames["auth-reply"].packet)
    assert "SK_er/SK_ar" in reply.key
    assert [line.split()[0] for line in reply.payloads][:3] == \
        ["IKEv2_IDr", "IKEv2_AUTH", "IKEv2_CP"]


def test_open_ike_of_init_and_of_other_frames(run):
    _scenario, _timeline, reader, frames = run
    keyring = reader.keyring
    assert keyring.open_ike(frames["init"].packet) is None      # IKE_SA_INIT: no SK
    assert keyring.open_ike(frames["ra"].packet) is None
    assert keyring.open_ike(frames["bu"].packet) is None
    assert keyring.open(frames["init"].packet) is None
    assert keyring.open(frames["auth"].packet).what == "IKE SK payload"
    assert keyring.open(frames["bu"].packet).what == "ESP payload"
    damaged = bytearray(frames["auth"].packet)
    damaged[-3] ^= 0x40                        # inside the ICV
    opened = keyring.open_ike(bytes(damaged))
    assert isinstance(opened, Decrypted) and opened.error and not opened.payloads


# -- classification -----------------------------------------------------------------------


def test_protocols_of_frames(run):
    _scenario, _timeline, reader, frames = run
    keyring = reader.keyring
    assert protocols(frames["ra"].packet, keyring) == {"ND/RA"}
    assert protocols(frames["bu"].packet) == {"ESP"}            # ESP hides the MH
    assert protocols(frames["bu"].packet, keyring) == {"ESP", "MH"}
    assert protocols(frames["auth"].packet, keyring) == {"IKE"}
    assert protocols(frames["init"].packet) == {"IKE"}
    assert protocols(frames["data"].packet, keyring) == {"ESP", "data"}
    assert reader.protocols(frames["bu"]) == frozenset({"ESP", "MH"})
    assert mobility_message(frames["bu"].packet, keyring) == "BU"
    assert mobility_message(frames["ba"].packet, keyring) == "BA"
    assert mobility_message(frames["bu"].packet) is None
    assert mobility_message(frames["data"].packet, keyring) is None
    assert reader.mobility_message(frames["ra"]) is None


def test_trace_reader_and_view(run):
    _scenario, timeline, reader, frames = run
    shown = reader.view(frames["bu"])
    assert shown.dissection.layers[-1].name == "ESP"
    assert shown.decrypted is not None and shown.decrypted.error is None
    text = shown.text()
    assert text.startswith(f"Event #{frames['bu'].index} at ")
    assert "Binding Update" in text and "link " in text
    seam = next(e for e in timeline.events if e.kind == "seam")
    plain = view(seam, reader.keyring)
    assert plain.dissection is None and plain.decrypted is None
    assert plain.details == dict(seam.data) and seam.summary in plain.text()
    odd = Event(0, 0, "x", "link", "tx", "bad", b"\xff" * 7, "l", None, None, {})
    broken = view(odd, reader.keyring)
    assert broken.dissection.error and broken.decrypted is None
    fresh = TraceReader(timeline.lab)
    assert fresh.protocols(odd) == frozenset({"other"})
    assert fresh.mobility_message(odd) is None


def test_a_dsmip6_bu_in_udp_4191_is_opened():
    """A BU from an IPv4 care-of address is IPv4 / UDP 4191 / IPv6 / ESP (RFC 5555 §4.1)."""
    scenario = create("dsmip6-v4", 0)
    timeline = Timeline(scenario.lab, until=scenario.duration)
    timeline.jump(200)
    reader = timeline.reader
    bu = next(e for e in timeline.events[:200] if e.kind == "tx" and e.node == "mn"
              and "4191" in e.summary)
    assert "MH" in reader.protocols(bu)
    opened = reader.keyring.open_esp(bu.packet)
    assert opened is not None and opened.error is None
    assert any("Binding Update" in layer.name for layer in opened.dissection.layers)
    assert reader.mobility_message(bu) == "BU"


# -- the IKE daemon's tables --------------------------------------------------------------


def test_ike_daemon_tables_after_home_registration(run):
    scenario = run[0]
    ha, mn = scenario.lab.nodes["ha"], scenario.lab.nodes["mn"]
    tables = {name: node.ike.tables() for name, node in (("ha", ha), ("mn", mn))}
    for name, role in (("ha", "responder"), ("mn", "initiator")):
        rows = tables[name]["ike_sas"]
        assert len(rows) == 1
        assert rows[0]["state"] == "ESTABLISHED" and rows[0]["role"] == role
        assert rows[0]["child_sas"] == 2 and len(tables[name]["child_sas"]) == 2
    assert tables["ha"]["ike_sas"][0]["spi_i"] == tables["mn"]["ike_sas"][0]["spi_i"]
    assert tables["ha"]["ike_sas"][0]["spi_r"] == tables["mn"]["ike_sas"][0]["spi_r"]
    assert tables["ha"]["ike_sas"][0]["peer"] == "rfc822:mn1@mip6lab.example"
    mirrored = {(c["spi_out"], c["spi_in"], c["mode"]) for c in tables["mn"]["child_sas"]}
    assert {(c["spi_in"], c["spi_out"], c["mode"]) for c in tables["ha"]["child_sas"]} == \
        mirrored
    assert {c["mode"] for c in tables["ha"]["child_sas"]} == {"transport", "tunnel"}
    transport = next(c for c in tables["ha"]["child_sas"] if c["mode"] == "transport")
    assert "MH" in transport["local_ts"] and HOA in transport["remote_ts"]
    # the rows name the SAs the SAD holds
    sad = {(row["spi"], row["direction"]) for row in ha.ipsec.sad.table()}
    for child in tables["ha"]["child_sas"]:
        assert (child["spi_in"], "in") in sad and (child["spi_out"], "out") in sad


def test_ike_daemon_changes_counts_what_tables_show():
    scenario = create("home-registration", 0)
    ha = scenario.lab.nodes["ha"].ike
    assert ha.changes == 0 and ha.tables() == {"ike_sas": [], "child_sas": []}
    scenario.lab.run(until=0.06)              # the IKE_SA_INIT exchange has happened
    assert ha.tables()["ike_sas"] and ha.changes > 0
    seen = ha.changes
    scenario.lab.run(until=0.2)
    assert ha.changes > seen and ha.tables()["ike_sas"][0]["state"] == "ESTABLISHED"


def test_udp_4191_carries_data_as_well_as_bu_ba():
    """RFC 5555 §4.1 tunnels data in UDP 4191 too: the port alone does not make "MH"."""
    scenario = create("dsmip6-nat", 0)
    scenario.lab.run(until=8.0)
    reader = TraceReader(scenario.lab)
    behind_nat = [e for e in scenario.lab.events.frames()
                  if e.kind == "tx" and e.node == "mn" and e.time > 5.0 and "4191" in e.summary]
    kinds = {reader.mobility_message(e): reader.protocols(e) for e in behind_nat}
    assert kinds["BU"] >= {"ESP", "MH"}              # the BU, protected, in the tunnel
    assert kinds[None] == frozenset({"data"})         # the echo traffic in the same tunnel
    keepalive = next(e for e in scenario.lab.events.frames() if "NAT-keepalive" in e.summary)
    assert reader.protocols(keepalive) == frozenset({"other"})


def test_byte_ranges_ignore_trailing_padding():
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    frame = bytes(Ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP() / b"hi")
    frame += bytes(60 - len(frame))                   # Ethernet's minimum size
    ranges = [(layer.name, layer.start, layer.end) for layer in dissect(frame).layers]
    assert ranges == [("Ethernet", 0, 14), ("IP", 14, 34), ("UDP", 34, 42), ("Raw", 42, 44),
                      ("Padding", 44, 60)]


def test_every_mobility_option_is_shown_the_last_one_too():
    """A BU with the RFC 4283 / RFC 4285 options: each option is one entry with its own
    fields, so the MN-HA authentication option (always the last, RFC 4285 §5.1) is not
    cut off behind a long list, and an option's type is its name, not repeated."""
    from scapy.layers.inet6 import (IPv6, MIP6MH_BU, MIP6OptMNID, MIP6OptMsgAuth,
                                    MIP6OptReplayProtection)
    from scapy.layers.l2 import Ether

    authenticator = bytes(range(0xA0, 0xAC))
    frame = bytes(Ether() / IPv6(src="2001:db8:a1::f", dst="2001:db8:0:1::2")
                  / MIP6MH_BU(seq=7, flags="HA", options=[
                      MIP6OptMNID(subtype=1, id=b"mn1@mip6lab.example"),
                      MIP6OptReplayProtection(timestamp=0xCE176C800A36C308),
                      MIP6OptMsgAuth(subtype=1, mspi=0x4285, authdata=authenticator)]))
    mh = dissect(frame).layers[-1]
    options = dict(mh.fields)["options"]
    entries = options.strip("[]").split("; ")
    assert len([e for e in entries if e.startswith("MIPv6 Option")]) == 3, options
    assert "id=b'mn1@mip6lab.example'" in entries[0]
    assert entries[-1].startswith("MIPv6 Option - Mobility Message Authentication")
    assert "mspi=17029" in entries[-1] and repr(authenticator) in entries[-1]
    assert "otype=" not in options
    assert "..." not in options
