"""Each exercise's checks against a deliberately wrong answer: the feedback names the
mistake. (That every solution passes every check, and an untouched student version
fails every graded one, is graded for real in test_grading.py.)"""

from __future__ import annotations

import hashlib
import ipaddress

import pytest

from mip6lab.exercises import STUDENT_ENV, student_seed
from mip6lab.exercises import dsmip6_bu, esp, ike_keys, k_bit, natd, spd

SEED = 20240101


def test_two_students_get_different_values(monkeypatch):
    monkeypatch.delenv(STUDENT_ENV, raising=False)
    assert student_seed("alice") != student_seed("bob")
    assert student_seed(" Alice ") == student_seed("alice")
    monkeypatch.setenv(STUDENT_ENV, "carol")       # the grader's id wins over what was typed
    assert student_seed("alice") == student_seed("carol")
    monkeypatch.delenv(STUDENT_ENV)
    with pytest.raises(ValueError, match="student id"):
        student_seed("your-student-id")
    a, b = ike_keys.prepare(student_seed("alice")), ike_keys.prepare(student_seed("bob"))
    assert a.run.keys["SK_ei"] != b.run.keys["SK_ei"] and a.run.nonce_i != b.run.nonce_i


def test_natd_wrong_answers(solutions):
    ok = solutions["01-nat-detection"]
    ex = natd.prepare(SEED)
    assert natd.check_hash(ex, ok["natd_hash"]).correct

    def no_spi_r(spi_i, spi_r, address, port):
        return hashlib.sha1(spi_i + ipaddress.ip_address(address).packed
                            + port.to_bytes(2, "big")).digest()

    feedback = natd.check_hash(ex, no_spi_r)
    assert not feedback.correct and "SPIr" in feedback.message
    feedback = natd.check_verdict(ex, lambda capture: not ok["nat_on_path"](capture))
    assert not feedback.correct and "nat_detected" in feedback.message


def test_ike_keys_wrong_answers(solutions):
    ok = solutions["02-ike-keys"]
    ex = ike_keys.prepare(SEED)
    assert ike_keys.check_keys(ex, ok["derive_keys"]).correct

    def swapped(ni, nr, g, spi_i, spi_r, prf_hash, lengths):
        return ok["derive_keys"](nr, ni, g, spi_i, spi_r, prf_hash, lengths)

    feedback = ike_keys.check_keys(ex, swapped)
    assert not feedback.correct and "from byte 0" in feedback.message \
        and "swap Ni and Nr" in feedback.message
    feedback = ike_keys.check_open(ex, lambda message, key: ok["open_sk"](message, key) + b"\0")
    assert not feedback.correct and "Pad Length" in feedback.message


def test_spd_wrong_answer(solutions):
    ok = solutions["03-mn-spd"]["mobile_node_spd"]
    ex = spd.prepare(SEED)
    feedback = spd.check(ex, lambda request: ok(request)[1:])      # no BU/BA entry
    assert not feedback.correct
    assert "BU from the home address" in feedback.message and "transport" in feedback.message


def test_spd_run_without_the_bu_entry_registers_nothing():
    """The run itself, not only the probe: without a BU entry no BU goes in ESP."""
    from mip6lab.ipsec import PROTECT, IPsecTemplate, SecurityPolicy, Selectors
    from mip6lab.scenarios import create

    scenario = create("home-registration", seed=SEED)
    scenario.mobile.coupling.spd_entries = lambda r: [SecurityPolicy(
        Selectors.make(f"{r.home_address}/128", "::/0"), PROTECT,
        IPsecTemplate("tunnel", r.care_of_address, r.tunnel_remote, r.payload_reqid))]
    report = scenario.run()
    assert not report["ok"] and scenario.home_agent.stats.get("bu_received", 0) == 0


def test_k_bit_wrong_answer(solutions):
    ex = k_bit.prepare(SEED)
    feedback = k_bit.judge_run(lambda q: q.configured, "dsmip6-nat", SEED, k_bit=1)
    assert not feedback.correct and "cannot follow across families" in feedback.message
    feedback = k_bit.check(ex, lambda q: True)[1]
    assert not feedback.correct and "K=0 is configured" in feedback.message
    assert k_bit.judge_questions(solutions["04-k-bit"]["decide_k"]).correct


def test_dsmip6_bu_wrong_answer(solutions):
    ok = solutions["05-dsmip6-bu"]["build_bu"]
    ex = dsmip6_bu.prepare(SEED)

    def seconds(p):
        packet = ok(p)
        packet["MIP6MH_BU"].mhtime = p.lifetime      # seconds, not 4-second units
        return packet

    feedback = dsmip6_bu.check(ex, seconds)
    assert not feedback.correct and "4-second units" in feedback.message

    def no_coa_option(p):
        packet = ok(p)
        packet["MIP6MH_BU"].options = []
        return packet

    feedback = dsmip6_bu.check(ex, no_coa_option)
    assert not feedback.correct and "care-of address" in feedback.message


def test_esp_wrong_answers(solutions):
    ok = solutions["06-esp-capture"]
    ex = esp.prepare(SEED)

    def with_trailer(frame, esp_sa):
        next_header, payload = ok["decrypt_esp"](frame, esp_sa)
        return next_header, payload + b"\x01\x02\x02\x87"

    feedback = esp.check_decrypt(ex, with_trailer)
    assert not feedback.correct and "Pad Length" in feedback.message
    index, sequence = ok["find_bu"](ex.frames, ex.esp_sa)
    feedback = esp.check_find(ex, lambda frames, keys: (index + 1, sequence))
    assert not feedback.correct and "is not the first BU" in feedback.message
