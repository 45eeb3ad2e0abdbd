"""Property-based fuzzing of the IKEv2 decoder and validator (DESIGN rule 6).

Whatever the bytes -- random, random payload chains behind a correct header, or the
capture's real messages mutated -- decoding raises MalformedIKEMessage and nothing else;
and whatever it accepts, scapy's dissection means exactly what the lengths say: rebuilt
from its field values with every length recomputed it gives the same bytes, and the
decoders (SA, CP, TS, notifies, unknown critical payloads) and ``show()`` work on it.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mip6lab.wire.ikev2 import (
    IKEv2_CP,
    IKEv2_SA,
    IKEv2_TSi,
    IKEv2_TSr,
    MalformedIKEMessage,
    PayloadType,
    decode_cp,
    decode_inner_payloads,
    decode_message,
    decode_sa,
    decode_ts,
    find_notifies,
    find_unknown_critical,
    message_payloads,
    notify_name,
)

from ._wire import built_messages, captured, rebuild

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Seeds: the capture's messages (cleartext IKE_SA_INIT, SK messages) and messages built
# with every other payload kind (CP, TS, ID, AUTH, CERTREQ, Delete, typed notifies ...).
MESSAGES = [c.data for c in captured() if c.data[18] == 34] + list(built_messages())
ALL_MESSAGES = [c.data for c in captured()] + list(built_messages())
INNER = [(m[16], m[28:]) for m in built_messages()]           # (first type, chain)
PAYLOAD_TYPES = [0, 2, 3, *range(33, 55), 99, 200]


def use_decoded(payloads) -> None:
    """What the IKE engine will do with an accepted chain; none of it may fail."""
    for payload in payloads:
        if isinstance(payload, IKEv2_SA):
            decode_sa(payload)
        elif isinstance(payload, IKEv2_CP):
            decode_cp(payload)
        elif isinstance(payload, (IKEv2_TSi, IKEv2_TSr)):
            decode_ts(payload)
    for notify in find_notifies(payloads):
        notify_name(notify)


def check_message(data: bytes) -> bool:
    """True if accepted (and then everything about it holds), False if refused."""
    try:
        msg = decode_message(data)
    except MalformedIKEMessage:
        return False
    assert bytes(msg) == data
    assert bytes(rebuild(msg)) == data
    payloads = message_payloads(msg)
    use_decoded(payloads)
    find_unknown_critical(msg)
    msg.show(dump=True)
    return True


def header(next_type: int, length: int, exchange: int = 37) -> bytes:
    return (bytes.fromhex("0102030405060708" "1112131415161718")
            + bytes([next_type, 0x20, exchange, 0x08]) + struct.pack("!II", 5, length))


def chain(pieces) -> tuple[int, bytes]:
    """A payload chain with correct generic headers around random bodies."""
    data = b""
    for i, (kind, body, critical) in enumerate(pieces):
        following = pieces[i + 1][0] if i + 1 < len(pieces) else 0
        data += bytes([following, 0x80 if critical else 0]) + struct.pack(
            "!H", 4 + len(body)) + body
    return (pieces[0][0] if pieces else 0), data


piece = st.tuples(st.sampled_from(PAYLOAD_TYPES[1:]), st.binary(max_size=48), st.booleans())


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data):
    check_message(data)


@FUZZ
@given(st.lists(piece, max_size=6), st.sampled_from([34, 35, 36, 37]))
def test_random_payload_chains_behind_a_correct_header(pieces, exchange):
    first, body = chain(pieces)
    check_message(header(first, 28 + len(body), exchange) + body)


mutation = st.tuples(st.sampled_from(["set", "insert", "delete", "u16"]),
                     st.integers(min_value=0, max_value=600), st.integers(0, 0xFFFF))


def mutate(data: bytes, mutations, fix_length: bool) -> bytes:
    for op, where, value in mutations:
        where %= len(data) + 1
        if op == "set" and where < len(data):
            data = data[:where] + bytes([value & 0xFF]) + data[where + 1:]
        elif op == "insert":
            data = data[:where] + bytes([value & 0xFF]) + data[where:]
        elif op == "delete":
            data = data[:where] + data[where + 1:]
        elif op == "u16" and where + 2 <= len(data):
            data = data[:where] + struct.pack("!H", value) + data[where + 2:]
    if fix_length and len(data) >= 28:              # get past the header's Length check
        data = data[:24] + struct.pack("!I", len(data)) + data[28:]
    return data


@FUZZ
@given(st.sampled_from(ALL_MESSAGES), st.lists(mutation, min_size=1, max_size=4),
       st.booleans())
def test_mutated_capture_messages(data, mutations, fix_length):
    check_message(mutate(data, mutations, fix_length))


@FUZZ
@given(st.sampled_from(MESSAGES), st.integers(0, 60), st.binary(min_size=1, max_size=4))
def test_capture_messages_with_a_payload_length_replaced(data, which, value):
    # Aim at the Payload Length fields themselves: walk to payload number `which`.
    offset, kind, index = 28, data[16], 0
    while kind and index < which % 9 and offset + 4 <= len(data):
        kind, offset = data[offset], offset + struct.unpack_from("!H", data, offset + 2)[0]
        index += 1
    if offset + 4 <= len(data):
        data = data[:offset + 2] + value[:2].rjust(2, b"\x00") + data[offset + 4:]
    check_message(data)


@FUZZ
@given(st.sampled_from(PAYLOAD_TYPES), st.binary(max_size=200))
def test_random_sk_plaintexts(first, plaintext):
    try:
        payloads = decode_inner_payloads(first, plaintext)
    except MalformedIKEMessage:
        return
    assert (bytes(rebuild(payloads[0])) if payloads else b"") == plaintext
    use_decoded(payloads)
    find_unknown_critical(payloads, first)


@FUZZ
@given(st.sampled_from(INNER), st.lists(mutation, min_size=1, max_size=4))
def test_mutated_sk_plaintexts(seed, mutations):
    first, plaintext = seed
    test_random_sk_plaintexts.hypothesis.inner_test(first, mutate(plaintext, mutations, False))


@FUZZ
@given(st.lists(piece, min_size=1, max_size=6))
def test_random_sk_payload_chains(pieces):
    first, plaintext = chain(pieces)
    try:
        payloads = decode_inner_payloads(first, plaintext)
    except MalformedIKEMessage:
        return
    assert first != PayloadType.SK
    assert bytes(rebuild(payloads[0])) == plaintext
    use_decoded(payloads)
    critical = find_unknown_critical(payloads, first)
    assert all(kind not in range(33, 49) for kind in critical)


def test_the_fuzzers_reach_both_outcomes():
    """Guards the properties above against vacuity: both verdicts occur."""
    assert all(check_message(m) for m in ALL_MESSAGES)
    assert all(decode_inner_payloads(first, chain_) for first, chain_ in INNER)
    assert not check_message(ALL_MESSAGES[0][:-1])
    first, body = chain([(PayloadType.NONCE, bytes(20), False), (200, b"x", True)])
    assert check_message(header(first, 28 + len(body)) + body)
