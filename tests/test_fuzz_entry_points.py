"""Fuzzing every decoder and engine entry point the wire reaches (DESIGN rule 6).

The targets live in :mod:`mip6lab.testing.fuzz` (``benchmarks/fuzz.py`` runs the same ones
for millions of inputs): IKE messages sealed with the SA's own keys around a mutated
inner payload chain, to both ends of an ESTABLISHED pair and of a pair between
IKE_SA_INIT and IKE_AUTH, cleartext IKE_SA_INIT; the Mobility Header with every option;
the RFC 5555 UDP 4191 decapsulation, as a function and as the home agent's handler in a
running lab; ESP inbound processing; a node's frame path in a running DSMIP6 lab. Each
input may raise only the typed errors its API documents; each target checks what it can
afterwards (see the module). Then the regression tests of the crashes it found.

Inputs per target: 10 000 in CI (``CI=true``, issue 14), 1 000 otherwise, or
``MIP6LAB_FUZZ_EXAMPLES`` if set; the test's id says the count, and the test counts its
calls and fails if hypothesis ran fewer (``max_examples`` counts valid examples only).
Measured with ``CI=true``: the ten targets at 10 000 inputs each took 206 s on two cores
shared with three other jobs (118 s of CPU); the IKE_AUTH pair's targets are the slowest
(~40 s and ~30 s), and hypothesis's own cost, ~0.4 ms an input (4 s per 10 000),
dominates the cheap decoders (ESP alone runs 15 000 inputs/s).
"""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from mip6lab.errors import MalformedPacket
from mip6lab.testing import fuzz
from mip6lab.testing.prereq import in_ci

_TARGETS: dict[str, fuzz.FuzzTarget] = {}


def examples() -> int:
    """Inputs per target: ``MIP6LAB_FUZZ_EXAMPLES``, else 10 000 in CI, else 1 000."""
    if os.environ.get("MIP6LAB_FUZZ_EXAMPLES"):
        return int(os.environ["MIP6LAB_FUZZ_EXAMPLES"])
    return 10_000 if in_ci() else 1_000


EXAMPLES = examples()


def target(name: str) -> fuzz.FuzzTarget:
    """Built once per session: an IKE pair, the labs (a second each) are reused."""
    if name not in _TARGETS:
        _TARGETS.update(fuzz.targets([name]))
    return _TARGETS[name]


@pytest.mark.parametrize("name", fuzz.NAMES, ids=[f"{n}-x{EXAMPLES}" for n in fuzz.NAMES])
def test_fuzz(name):
    """Hypothesis feeds :data:`EXAMPLES` mutated inputs to target ``name``.

    Hypothesis draws one integer per input and :func:`fuzz.random_mutations` turns it
    into the seed and the mutations, as ``benchmarks/fuzz.py`` does: drawing each
    mutation from hypothesis would shrink better but costs twice the time per input,
    and a failure is reproduced from the integer hypothesis reports (the input's hex is
    noted too)."""
    t = target(name)
    calls = 0

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(n=st.integers(0, (1 << 64) - 1))
    def feed(n):
        nonlocal calls
        calls += 1
        rng = random.Random(n)
        data = t.input(rng.randrange(len(t.seeds)), fuzz.random_mutations(rng),
                       rng.random() < 0.5)
        note(f"input {data.hex()}")
        t.run(data)

    feed()
    print(f"{name}: {calls} inputs; harness {t.stats()}")
    assert calls >= EXAMPLES


def test_a_copied_auth_stage_answers_byte_for_byte_as_a_rebuilt_one():
    """The IKE_AUTH targets copy one pair per input instead of redoing IKE_SA_INIT
    (:class:`fuzz.Snapshot`): a copy must be the same SAs, their seeded random source
    and SPI counter included, so that it answers the genuine request with the very
    bytes a rebuilt pair does; and using a copy must not move the original."""
    snapshot = fuzz.Snapshot(fuzz._auth_stage)
    assert snapshot.copies, "the pair between IKE_SA_INIT and IKE_AUTH must be copyable"

    def answer(pair_and_request) -> bytes:
        pair, request = pair_and_request
        pair.deliver(pair.r, request)
        return pair.one(pair.r).data

    first = answer(snapshot.fresh())
    assert answer(snapshot.fresh()) == first == answer(fuzz._auth_stage())


def test_the_lab_targets_notice_lost_state_and_heal_or_rebuild():
    """Every 128 inputs a lab target checks that its lab is still whole: the MN bound at
    the HA and echo answers coming back. A cut access link is noticed; a strict lab
    (ha-udp-tunnel: its inputs must change nothing) fails, the other lets the lab heal,
    and rebuilds it when it cannot."""
    lab = fuzz.DsmipLab(strict=False)

    def run(seconds: float) -> None:
        lab.lab.run(until=lab.lab.sim.now_us / 1e6 + seconds)

    run(lab.RUN)
    assert lab.consistent() is None
    lab.lab.links["v4net"].conditions.loss = 1.0
    run(lab.RUN)
    assert lab.consistent() == "no echo answer came back through the home agent"
    lab.strict = True
    with pytest.raises(AssertionError, match="state lost after an input"):
        lab._whole()
    lab.strict = False
    lab._whole()                  # still cut after RECOVER seconds: a new lab
    assert lab.rebuilt == 1 and lab.lab.links["v4net"].conditions.loss == 0
    run(lab.RUN)
    assert lab.consistent() is None


def test_the_frame_targets_reach_both_mobility_nodes():
    """The node-frame seeds are the HA's and the MN's own traffic (BUs in UDP 4191, ESP,
    IKE, ND, ARP), so that mutations land in the mobility code, not only in Ethernet."""
    frames = target("node-frame").feed.__self__.frames       # the DsmipLab behind it
    assert {node for node, _ifname, _frame in frames} == {"ha", "mn"}
    assert any(frame[12:14] == b"\x08\x00" and frame[23] == 17
               and (4191).to_bytes(2, "big") in (frame[34:36], frame[36:38])
               for _node, _ifname, frame in frames)          # IPv4/UDP 4191


def test_mutate_applies_each_kind_after_start():
    data = bytes(range(10))
    assert fuzz.mutate(data, []) == data
    assert fuzz.mutate(data, [("set", 0, 0xAA)], start=4) == data[:4] + b"\xaa" + data[5:]
    assert fuzz.mutate(data, [("truncate", 2, 0)], start=4) == data[:6]
    assert fuzz.mutate(data, [("delete", 0, 1)], start=8) == data[:8]
    assert fuzz.mutate(data, [("extend", 0, 2)]) == data + b"\x02" * 3
    assert fuzz.mutate(data, [("flip", 1, 3)]) == data[:1] + b"\x09" + data[2:]


# -- regressions: the crashes the harness found -----------------------------------------------


def _udp4191(inner: bytes) -> bytes:
    return fuzz.fix_udp4191(bytes.fromhex("45000000000100004011" "0000" "c6336428c0000201"
                                          "105f105f00000000") + inner)


@pytest.mark.parametrize("inner", [
    # IPv6, next header 43 (routing), 2 bytes of payload: scapy reads the Routing Type
    # (byte 2) to spot a segment routing header (RFC 8754) and raised IndexError
    bytes.fromhex("6000000000022b40") + bytes(32) + b"\x11\x02",
    # IPv4, header length 20 but only 3 bytes: scapy's struct.error
    bytes.fromhex("450000030001000040018e4bc0000246c6"),
], ids=["routing-header-cut", "ipv4-cut"])
def test_udp4191_inner_packet_scapy_cannot_dissect_is_malformed(inner):
    """RFC 5555 §4.1: what is not an IP packet in UDP 4191 is refused as MalformedPacket
    (it was scapy's IndexError / struct.error out of ``decapsulate_udp4``)."""
    from mip6lab.wire.mip6 import decapsulate_udp4

    with pytest.raises(MalformedPacket, match="does not dissect"):
        decapsulate_udp4(_udp4191(inner))


def test_udp4191_segment_routing_header_still_decapsulates():
    from mip6lab.wire.mip6 import decapsulate_udp4
    from scapy.layers.inet6 import IPv6ExtHdrSegmentRouting

    srh = fuzz.udp4191_seeds()[1]
    packet = decapsulate_udp4(srh)
    assert packet[IPv6ExtHdrSegmentRouting].addresses == ["2001:db8::2", "2001:db8::3"]


@pytest.fixture
def pair():
    return fuzz.IkePair.established()


def _child_response_plain(pair) -> bytes:
    """The plaintext of a genuine CREATE_CHILD_SA response (on a throwaway pair)."""
    other = fuzz.IkePair.established()
    other.i.create_child()
    request = other.one(other.i)
    other.deliver(other.r, request)
    return fuzz._plaintext(other.r, other.one(other.r).data, False)


def test_a_response_of_another_exchange_is_dropped_and_the_sa_goes_on(pair):
    """RFC 7296 §3.1: the Exchange Type says which exchange a message belongs to; a
    CREATE_CHILD_SA response to a liveness check (INFORMATIONAL) is not its answer. It was
    read against the liveness request's empty context: KeyError out of ``receive``."""
    from mip6lab.ikev2.sa import MessageDropped

    plain = _child_response_plain(pair)
    i = pair.i
    i.check_liveness()
    i.datagrams_to_send()
    message_id, children = i.pending.message_id, dict(i.children)
    i.receive(fuzz._sealed(i, plain, from_initiator=False, response=True,
                           message_id=message_id), fuzz._INITIATOR[1], 500, 0, 500)
    (dropped,) = fuzz.drain(i)
    assert isinstance(dropped, MessageDropped) and "exchange 36" in dropped.reason
    assert i.pending.message_id == message_id and i.children == children
    # the genuine answer still closes the liveness check
    i.receive(fuzz._sealed(i, fuzz._LIVENESS, from_initiator=False, response=True,
                           message_id=message_id), fuzz._INITIATOR[1], 500, 0, 500)
    assert i.pending is None and i.state == "ESTABLISHED"


def _without_proposals(plain: bytes, keep: int) -> bytes:
    """``plain`` with its SA payload holding ``keep`` copies of the chosen proposal
    (``keep=0``: one proposal of protocol 7, which no one can choose, §3.3.1)."""
    from mip6lab.wire import ikev2 as w

    payloads = w.decode_inner_payloads(plain[1], plain[2:])
    at = next(n for n, p in enumerate(payloads) if isinstance(p, w.IKEv2_SA))
    chosen = w.decode_sa(payloads[at])[0]
    payloads[at] = w.build_sa_payload([chosen] * max(keep, 1))
    if not keep:
        payloads[at].prop.proto = 7
    first_type, inner = w.build_inner_payloads([p.copy() for p in payloads])
    return bytes([plain[0], first_type]) + inner


@pytest.mark.parametrize("keep", [0, 2], ids=["no-proposal", "two-proposals"])
def test_a_child_response_must_choose_exactly_one_proposal(pair, keep):
    """RFC 7296 §2.7: the responder chooses exactly one proposal. A CREATE_CHILD_SA
    response whose SA payload has none raised IndexError out of ``receive``; now the
    exchange fails with a reason, no child SA is made, the IKE SA goes on."""
    from mip6lab.ikev2.sa import IkeSaFailed

    plain = _without_proposals(_child_response_plain(pair), keep)
    i = pair.i
    children = dict(i.children)
    i.create_child()
    i.datagrams_to_send()
    i.receive(fuzz._sealed(i, plain, from_initiator=False, response=True,
                           message_id=i.pending.message_id), fuzz._INITIATOR[1], 500, 0, 500)
    (failed,) = fuzz.drain(i)
    assert isinstance(failed, IkeSaFailed)
    assert f"chose {keep} proposals, not one (§2.7)" in failed.reason
    assert i.children == children and i.pending is None and i.state == "ESTABLISHED"
    # and it still answers the peer's genuine request (§1.4)
    i.receive(fuzz._sealed(i, fuzz._LIVENESS, from_initiator=False, response=False,
                           message_id=i.expected_request_id), fuzz._INITIATOR[1], 500, 0, 500)
    assert len(i.datagrams_to_send()) == 1 and i.state == "ESTABLISHED"


def test_esp_in_udp_tcp_with_an_odd_option_keeps_its_bytes_and_gets_its_checksum():
    """RFC 3948 §3.1.2: the transport checksum of a UDP-encapsulated transport-mode
    packet is recomputed on the bytes. It was rebuilt through scapy, which raised
    TypeError on a TCP Timestamp option of length 2 (found by ``benchmarks/fuzz.py``,
    input below: the esp target's case 1, next header TCP)."""
    from scapy.layers.inet import IP, TCP

    from mip6lab.ipsec.esp import decapsulate

    esp = fuzz.EspTarget()
    data = bytes.fromhex("01060014005000000000000000008c0220008b830000020105b466666666")
    result = decapsulate(esp.sad, esp.packet(data))
    segment = result.packet[20:]             # as it was sent but for the checksum
    assert segment[:16] + segment[18:] == data[2:18] + data[20:]
    # the checksum is the one a fresh computation over the packet's addresses gives
    plain = IP(src="192.0.2.10", dst="198.51.100.1") / TCP(sport=1, dport=9, flags="S")
    sealed = esp.packet(bytes([1, 6]) + bytes(plain)[20:])
    opened = decapsulate(esp.sad, sealed).packet
    assert opened[20:] == bytes(IP(bytes(plain)))[20:]


def test_a_forged_arp_reply_for_the_gateway_heals_by_re_registration():
    """The node-frame target's slowest disturbance, found by the long run: a forged ARP
    reply that gives the MN's IPv4 gateway a MAC nobody has. The MN believes it for the
    entry's lifetime (RFC 826; neighbor.REACHABLE_TIME), its BUs are lost meanwhile and
    its binding may lapse; afterwards it resolves the gateway again and its next BU
    retransmission registers it (RFC 6275 §11.8). The lab is whole again within
    DsmipLab.RECOVER (the gateway's own ARP request may correct it sooner: RFC 826 merges
    the sender), with nothing rebuilt: nothing was lost for good."""
    from scapy.layers.l2 import ARP, Ether

    lab = fuzz.DsmipLab(strict=False)
    node = lab.lab.nodes["mn"]
    iface = node.interface("eth0")
    (gateway,) = [address for name, address in node.neighbors.entries if name == "eth0"]
    honest = node.neighbors.lookup(iface, gateway)
    forged = bytes(Ether(src="02:00:5e:00:00:99", dst=iface.mac)
                   / ARP(op=2, hwsrc="02:00:5e:00:00:99", psrc=str(gateway),
                         hwdst=iface.mac, pdst=str(lab.scenario.mobile.care_of_address)))
    lab._where = ("mn", "eth0")
    lab.frame(forged)
    assert node.neighbors.lookup(iface, gateway) == "02:00:5e:00:00:99"
    lab.lab.run(until=lab.lab.sim.now_us / 1e6 + lab.RUN)   # answers still in flight
    lab.consistent()
    lab.lab.run(until=lab.lab.sim.now_us / 1e6 + 2 * lab.RUN)
    assert lab.consistent() == "no echo answer came back through the home agent"
    lab.lab.run(until=lab.lab.sim.now_us / 1e6 + lab.RECOVER)
    assert node.neighbors.lookup(iface, gateway) == honest
    assert lab.consistent() is None and lab.rebuilt == 0
    lab.check()
