"""Exercise 1: the NAT-D hashes of a captured IKE_SA_INIT, and whether a NAT was on the
path (RFC 7296 §2.23; RFC 5555 §4.1 for why a DSMIP6 MN cares).

A student's capture comes from one of two runs, chosen by the seed: ``dsmip6-v4`` (the MN
on a public IPv4 network, no NAT) or ``dsmip6-nat`` (the MN moved behind a NAT and runs
IKE again from there). The student writes ``natd_hash(spi_i, spi_r, address, port)`` and
``nat_on_path(capture)``; the checks compare the hash with the stack's
(:func:`mip6lab.crypto.ike.natd.nat_detection_hash`) and the verdict with what the home
agent's own IKE SA concluded.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
from dataclasses import dataclass

from ..crypto.ike.natd import nat_detection_hash
from ..scenarios import create
from ..wire.ikev2 import IKEv2, notify_name
from . import Feedback, as_bytes, attempt
from .capture import IKE_SA_INIT, ike_datagrams


@dataclass(frozen=True)
class Capture:
    """An IKE_SA_INIT request as the home agent received it."""

    message: bytes                   # the IKE message
    spi_i: bytes
    spi_r: bytes                     # zero: the responder has not chosen one yet
    source: tuple[str, int]          # IP source address, UDP source port, as received
    destination: tuple[str, int]     # IP destination address, UDP destination port
    notifies: dict                   # NAT_DETECTION_*_IP -> the 20 bytes the MN sent
    nat: bool                        # (for the checks) what the HA's IKE SA concluded

    def __repr__(self) -> str:
        return (f"Capture(SPIi={self.spi_i.hex()}, SPIr={self.spi_r.hex()}, "
                f"received from {self.source[0]} port {self.source[1]} at "
                f"{self.destination[0]} port {self.destination[1]}, notifies "
                f"{sorted(self.notifies)})")


def capture(seed: int, behind_nat: bool) -> Capture:
    """The IKE_SA_INIT request the HA received from the MN's IPv4 care-of address."""
    scenario = create("dsmip6-nat" if behind_nat else "dsmip6-v4", seed=seed)
    scenario.lab.run(until=8.0 if behind_nat else 2.0)
    requests = [d for d in ike_datagrams(scenario.lab, "ha")
                if d.exchange == IKE_SA_INIT and not d.response
                and ipaddress.ip_address(d.source[0]).version == 4]
    got = requests[-1]
    notifies = {notify_name(n): bytes(n.notify)
                for n in IKEv2(got.message).iterpayloads() if notify_name(n)
                and notify_name(n).startswith("NAT_DETECTION")}
    sa = scenario.lab.nodes["ha"].ike.sas[got.spi_i]
    return Capture(got.message, got.spi_i, got.message[8:16], got.source, got.destination,
                   notifies, bool(sa.nat_detected))


@dataclass(frozen=True)
class Exercise:
    seed: int
    capture: Capture


def prepare(seed: int) -> Exercise:
    """One student's capture: behind a NAT or not, as the seed says."""
    return Exercise(seed, capture(seed, random.Random(seed).random() < 0.5))


def _variants(spi_i: bytes, spi_r: bytes, address: str, port: int) -> dict[str, bytes]:
    """The hashes of the usual slips, each with what to say about it."""
    packed = ipaddress.ip_address(address).packed
    p = port.to_bytes(2, "big")
    sha1 = lambda data: hashlib.sha1(data).digest()      # noqa: E731
    return {
        "you left SPIr out; the hash covers SPIi | SPIr | IP | Port, with SPIr as eight "
        "zero bytes in the IKE_SA_INIT request": sha1(spi_i + packed + p),
        "you left the port out: IP | Port, the port as two bytes in network order":
            sha1(spi_i + spi_r + packed),
        "your port bytes are in the wrong order: network order, most significant first":
            sha1(spi_i + spi_r + packed + port.to_bytes(2, "little")),
        "you hashed the address as text: use its packed bytes (4 for IPv4, 16 for IPv6)":
            sha1(spi_i + spi_r + address.encode() + p),
        "you swapped SPIi and SPIr": sha1(spi_r + spi_i + packed + p),
        "the hash is SHA-1 (RFC 7296 §2.23), not SHA-256":
            hashlib.sha256(spi_i + spi_r + packed + p).digest(),
    }


def judge_hash(natd_hash, spi_i: bytes, spi_r: bytes, address: str, port: int,
               where: str) -> Feedback:
    """``natd_hash`` for one set of values against the stack's NAT-D hash."""
    result, failed = attempt("natd_hash", natd_hash, spi_i, spi_r, address, port)
    if failed:
        return failed
    given = as_bytes(result)
    expected = nat_detection_hash(spi_i, spi_r, address, port)
    if given == expected:
        return Feedback(True, f"natd_hash over {where} is the stack's "
                              f"({expected[:6].hex()}…, SHA-1 of SPIi | SPIr | IP | Port).")
    if given is None:
        return Feedback(False, f"natd_hash should return bytes (20 of them), not {result!r}.")
    if len(given) != 20:
        return Feedback(False, f"natd_hash over {where} gave {len(given)} bytes; a NAT-D "
                               "hash is SHA-1: 20 bytes.")
    for slip, value in _variants(spi_i, spi_r, address, port).items():
        if given == value:
            return Feedback(False, f"natd_hash over {where} differs from the stack's: {slip}.")
    return Feedback(False, f"natd_hash over {where} differs from the stack's "
                           f"({given[:6].hex()}… instead of {expected[:6].hex()}…): it is "
                           "SHA-1 over SPIi | SPIr | IP address | port (RFC 7296 §2.23).")


def check_hash(exercise: Exercise, natd_hash) -> Feedback:
    """Visible: the destination hash of the student's own capture."""
    c = exercise.capture
    return judge_hash(natd_hash, c.spi_i, c.spi_r, *c.destination,
                      where=f"the destination [{c.destination[0]}]:{c.destination[1]}")


def judge_verdict(nat_on_path, c: Capture) -> Feedback:
    answer, failed = attempt("nat_on_path", nat_on_path, c)
    if failed:
        return failed
    if not isinstance(answer, bool):
        return Feedback(False, f"nat_on_path should answer True or False, not {answer!r}.")
    if answer == c.nat:
        return Feedback(True, f"{'a NAT was' if c.nat else 'no NAT was'} on this path: the "
                              "home agent's IKE SA concluded the same.")
    rewrote = "rewrote the MN's source address or port" if c.nat else "changed nothing"
    return Feedback(False, f"you answered {answer}, but the NAT on this path {rewrote}: "
                           f"the home agent's IKE SA says nat_detected={c.nat}. Recompute "
                           "NAT_DETECTION_SOURCE_IP over the source address and port as "
                           "received (capture.source) and compare it with the one the MN "
                           "sent (capture.notifies); a mismatch means a NAT.")


def check_verdict(exercise: Exercise, nat_on_path) -> Feedback:
    """Visible: the verdict on the student's own capture."""
    return judge_verdict(nat_on_path, exercise.capture)


def hidden_checks(exercise: Exercise, natd_hash, nat_on_path) -> list[Feedback]:
    """Hidden: an IPv6 address on the NAT-T port with a nonzero SPIr, and the verdict on
    the other kind of capture (a NAT where the student's had none, or the reverse)."""
    rng = random.Random(exercise.seed ^ 0x5A5A)
    spi_i, spi_r = rng.randbytes(8), rng.randbytes(8)
    other = capture(exercise.seed + 1, not exercise.capture.nat)
    return [judge_hash(natd_hash, spi_i, spi_r, "2001:db8:0:1::2", 4500,
                       where="an IPv6 address, port 4500 and a nonzero SPIr"),
            judge_verdict(nat_on_path, other)]
