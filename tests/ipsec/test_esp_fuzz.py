"""Property-based fuzzing of the inbound ESP path and of the selector parser.

Bad input is data (DESIGN rule 6): whatever bytes arrive, decapsulate() raises only
EspError or MalformedPacket (both RemoteProtocolError), and the anti-replay window moves
only for a packet that really was valid.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrRouting, MIP6MH_BA
from scapy.packet import Raw

from mip6lab.errors import MalformedPacket, RemoteProtocolError
from mip6lab.ipsec.esp import EspError, decapsulate, encapsulate, locate_esp
from mip6lab.ipsec.sad import SecurityAssociationDatabase
from mip6lab.ipsec.selectors import packet_selectors

from ._util import (CN6, COA6, HA4, HA6, HOA6, MN4, MN6, echo4, echo6, hao_udp6, iv_for,
                    sa_pair, udp4, udp6)

FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# (suite, SA source, SA destination, SA options, inner packet): one per kind of path.
CASES = [
    ("aes128gcm16", MN6, HA6, {}, udp6()),
    ("aes256-sha256", MN4, HA4, {"encap": (4500, 4500)}, udp4()),
    ("null-sha256", COA6, HA6, {"mode": "tunnel"}, echo6(HOA6, CN6)),
    ("aes256gcm16", COA6, HA6, {"mode": "tunnel", "encap": (4500, 4500)}, echo4()),
    ("aes128-sha256", COA6, HA6, {"esn": True}, hao_udp6()),
    ("aes128gcm16", MN4, HA4, {"mode": "tunnel", "replay_window_size": 0}, echo6()),
]
SENT = 5
DELIVERED = (0, 1, 3, 4)        # packet 3 (index 2) stays undelivered: a gap in the window


def setup(case: int):
    """An SA pair with SENT packets sent and all but one delivered."""
    suite, src, dst, options, inner = CASES[case]
    out, sad, inb = sa_pair(suite, src, dst, **options)
    packets = [encapsulate(out, inner, iv_for(out)) for _ in range(SENT)]
    for i in DELIVERED:
        decapsulate(sad, packets[i])
    return out, sad, inb, packets


def state(sad: SecurityAssociationDatabase):
    return [(sa.replay.top, sa.replay.bitmap, sa.packets) for sa in sad]


def esp_part(packet: bytes) -> bytes | None:
    try:
        return packet[locate_esp(packet)[0]:]
    except RemoteProtocolError:
        return None


def feed(sad: SecurityAssociationDatabase, packet: bytes):
    """decapsulate(); only RemoteProtocolError subclasses of ours may come out."""
    errors_before = sum(sum(sa.errors.values()) for sa in sad)
    try:
        result = decapsulate(sad, packet)
    except (EspError, MalformedPacket) as exc:
        assert isinstance(exc, RemoteProtocolError) and exc.reason
        errors_after = sum(sum(sa.errors.values()) for sa in sad)
        assert errors_after - errors_before in (0, 1)     # counted once, or no SA to count
        return None
    return result


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000)),
    st.tuples(st.just("extend"), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 16)),
)


def mutate(packet: bytes, operations) -> bytes:
    data = bytearray(packet)
    for op in operations:
        n = max(len(data), 1)
        if op[0] == "flip" and data:
            data[op[1] % n] ^= 1 << op[2]
        elif op[0] == "set" and data:
            data[op[1] % n] = op[2]
        elif op[0] == "truncate":
            del data[op[1] % n:]
        elif op[0] == "extend":
            data += op[1]
        elif op[0] == "insert":
            data[op[1] % n:op[1] % n] = op[2]
        elif op[0] == "delete":
            del data[op[1] % n:op[1] % n + op[2]]
    return bytes(data)


@FUZZ
@given(case=st.integers(0, len(CASES) - 1), which=st.integers(0, SENT - 1),
       operations=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_valid_packets(case, which, operations):
    out, sad, inb, packets = setup(case)
    before = state(sad)
    mutated = mutate(packets[which], operations)
    result = feed(sad, mutated)
    if result is None:
        assert state(sad) == before, "a refused packet moved the window"
        return
    # Accepted: then its ESP part is exactly a genuine packet's that the window still
    # allowed -- the undelivered one, or any packet when anti-replay is off -- and only
    # headers outside ESP's protection were changed.
    esp = esp_part(mutated)
    genuine = [esp_part(p) for p in packets]
    assert esp in genuine
    index = genuine.index(esp)
    assert index == 2 or inb.replay.size == 0
    seq = index + 1
    assert inb.replay.top == max(before[0][0], seq)
    assert inb.packets == before[0][2] + 1


@FUZZ
@given(case=st.integers(0, len(CASES) - 1), body=st.binary(max_size=120),
       prefix=st.sampled_from(["none", "ipv6-esp", "ipv4-esp", "ipv4-udp", "ipv6-udp"]),
       seq=st.integers(0, 0xFFFFFFFF))
def test_random_bytes(case, body, prefix, seq):
    """Random bytes, alone or behind real IP/UDP headers and the SA's own SPI (so that the
    SA's own checks -- window, ICV, trailer -- see them)."""
    out, sad, inb, _ = setup(case)
    spi_seq = out.spi_bytes + seq.to_bytes(4, "big")
    packet = {
        "none": body,
        "ipv6-esp": bytes(IPv6(src=MN6, dst=HA6, nh=50) / Raw(spi_seq + body)),
        "ipv4-esp": bytes(IP(src=MN4, dst=HA4, proto=50) / Raw(spi_seq + body)),
        "ipv4-udp": bytes(IP(src=MN4, dst=HA4) / UDP(sport=4500, dport=4500)
                          / Raw(spi_seq + body)),
        "ipv6-udp": bytes(IPv6(src=MN6, dst=HA6) / UDP(sport=4500, dport=4500)
                          / Raw(spi_seq + body)),
    }[prefix]
    before = state(sad)
    assert feed(sad, packet) is None         # a forgery this short never verifies
    assert state(sad) == before


# -- selectors -----------------------------------------------------------------------------

SELECTOR_SAMPLES = [
    hao_udp6(),
    bytes(IPv6(src=HA6, dst=COA6) / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOA6])
          / MIP6MH_BA()),
    udp4(),
    echo6(),
]


def parse(packet: bytes) -> None:
    try:
        selectors = packet_selectors(packet)
    except MalformedPacket as exc:
        assert exc.reason
        return
    assert selectors.src.version == selectors.dst.version
    for port in (selectors.sport, selectors.dport):
        assert port is None or 0 <= port <= 0xFFFF


@FUZZ
@given(data=st.binary(max_size=200))
def test_selectors_of_random_bytes(data):
    parse(data)
    parse(b"\x60" + data)                    # looks like IPv6
    parse(b"\x45" + data)                    # looks like IPv4


@FUZZ
@given(sample=st.integers(0, len(SELECTOR_SAMPLES) - 1),
       operations=st.lists(mutation, min_size=1, max_size=4))
def test_selectors_of_mutated_packets(sample, operations):
    parse(mutate(SELECTOR_SAMPLES[sample], operations))
