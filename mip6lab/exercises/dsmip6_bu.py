"""Exercise 5: a DSMIP6 Binding Update built with scapy -- IPv4 / UDP to port 4191 /
IPv6 from the home address to the HA / Mobility Header BU with the IPv4 Care-of Address
option (RFC 5555 §3.1.1, §4.1; RFC 6275 §6.1.7) -- sent into a running lab, where the
home agent must accept it.

The lab is ``dsmip6-v4`` run until the mobile node has registered from its IPv4 care-of
address. The student's ``build_bu(p)`` gets :class:`BuParameters` and returns the scapy
packet; :func:`send` does what the MN's stack does with it (RFC 5555 §5.1: IPsec first --
the inner IPv6 packet goes through the MN's BU/BA SA -- then the student's IPv4/UDP
header around the ESP) and runs the lab on; the check reads the HA's answer.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet

from ..mobility.constants import LIFETIME_UNIT_US
from ..mobility.tunnel import TunnelEndpoint, encapsulate
from ..scenarios import create
from ..scenarios.mobility import HA4, HA6
from . import Feedback, attempt

UNIT = LIFETIME_UNIT_US // 1_000_000


@dataclass(frozen=True)
class BuParameters:
    """What the Binding Update must say."""

    home_address: str          # the MN's IPv6 home address
    home_agent: str            # the HA's IPv6 address
    home_agent4: str           # the HA's IPv4 address
    care_of_address4: str      # the MN's IPv4 care-of address
    sequence_number: int       # the sequence number to use
    lifetime: int              # the lifetime to ask for, in seconds


class Lab:
    """A running dsmip6-v4 lab with the MN registered, ready for the student's BU."""

    def __init__(self, seed: int) -> None:
        self.scenario = create("dsmip6-v4", seed=seed)
        lab = self.scenario.lab
        mobile = self.scenario.mobile
        lab.run_until(lambda lab: mobile.registered is not None, timeout=5.0)
        lab.run(until=lab.now + 0.5)
        self.mobile = mobile

    def parameters(self, rng: random.Random) -> BuParameters:
        entry = self.mobile.bul.get(self.mobile.home_address)
        return BuParameters(str(self.mobile.home_address), HA6, HA4,
                            str(self.mobile.care_of_address),
                            (entry.sequence_number + rng.randint(1, 40)) % 65536,
                            UNIT * rng.randint(4, 30))

    def send(self, packet: Packet) -> tuple[list, str | None]:
        """Send the student's BU as the MN's stack would; the HA's events it caused, or
        why it could not be sent."""
        try:
            raw = bytes(packet)
            outer = IP(raw)
        except Exception as exc:
            return [], f"your packet cannot be built ({type(exc).__name__}: {exc})"
        if outer.version != 4 or UDP not in outer:
            return [], (f"your packet is {outer.summary()}: a DSMIP6 BU from an IPv4 network "
                        "is IPv4 / UDP / IPv6 / Mobility Header (RFC 5555 §4.1)")
        udp = outer[UDP]
        inner = bytes(udp.payload)
        if not inner or inner[0] >> 4 != 6:
            return [], "the UDP payload must be the IPv6 packet carrying the BU"
        node = self.scenario.lab.nodes["mn"]
        protected = node.ipsec.output(inner)
        if not protected:
            return [], ("the MN's IPsec found no SA for your inner IPv6 packet: its source "
                        "must be the home address, its destination the HA, its next header "
                        "the Mobility Header (135) with a BU (RFC 4877 §7.2's BU entry)")
        lab = self.scenario.lab
        start = len(lab.events)
        for esp in protected:
            node.route_out(encapsulate(esp, TunnelEndpoint(
                ipaddress.ip_address(outer.src), ipaddress.ip_address(outer.dst),
                (udp.sport, udp.dport))), protect=False)
        lab.run(until=lab.now + 1.0)
        return [e for e in lab.events[start:] if e.node == "ha"], None


@dataclass
class Exercise:
    seed: int
    parameters: BuParameters


def prepare(seed: int) -> Exercise:
    """The parameters of one student's BU (the lab itself is made again by each check)."""
    lab = Lab(seed)
    return Exercise(seed, lab.parameters(random.Random(seed)))


def judge(build_bu, lab: Lab, p: BuParameters, where: str) -> Feedback:
    packet, failed = attempt("build_bu", build_bu, p)
    if failed:
        return failed
    if not isinstance(packet, Packet):
        return Feedback(False, f"build_bu should return a scapy packet, not {packet!r}.")
    events, refused = lab.send(packet)
    if refused:
        return Feedback(False, f"{where}: {refused}.")
    outer = IP(bytes(packet))
    if outer[UDP].dport != 4191:
        return Feedback(False, f"{where}: your BU went to UDP port {outer[UDP].dport}; the HA "
                               "listens for DSMIP6 on port 4191 (RFC 5555 §4.1).")
    answers = [e for e in events if e.kind == "state" and "status" in e.data
               and e.data.get("home_address") == p.home_address]
    drops = [e.reason for e in events if e.kind == "drop" and e.reason]
    if not answers:
        why = f" It said: {drops[0]}." if drops else ""
        return Feedback(False, f"{where}: the HA did not process your BU.{why}")
    status = answers[-1].data["status"]
    entry = next((row for row in lab.scenario.home_agent.table()
                  if row.get("hoa") == p.home_address), None)
    if status >= 128:
        hint = {135: f" The sequence number must be {p.sequence_number} (parameters."
                     "sequence_number); 135 means it is not newer than the last one.",
                }.get(status, "")
        return Feedback(False, f"{where}: the HA refused your BU with status {status} "
                               f"({answers[-1].summary}).{hint}")
    inner = IPv6(bytes(outer[UDP].payload))
    mh = inner.payload
    if getattr(mh, "seq", None) != p.sequence_number:
        return Feedback(False, f"{where}: your BU has sequence number "
                               f"{getattr(mh, 'seq', None)}, not {p.sequence_number}.")
    granted = getattr(mh, "mhtime", 0) * UNIT
    if granted != p.lifetime:
        slip = " The lifetime field counts 4-second units (RFC 6275 §6.1.7)." \
            if getattr(mh, "mhtime", 0) == p.lifetime else ""
        return Feedback(False, f"{where}: the HA accepted it, but your BU asks for "
                               f"{granted} s, not {p.lifetime} s.{slip}")
    if entry is None or entry.get("ipv4_coa") != p.care_of_address4 \
            or entry.get("seq") != p.sequence_number:
        return Feedback(False, f"{where}: the HA accepted it, but its binding cache shows "
                               f"{entry}, not the IPv4 care-of address {p.care_of_address4} "
                               f"with sequence number {p.sequence_number}.")
    return Feedback(True, f"{where}: the HA accepted your BU (status {status}) for "
                          f"{p.lifetime} s and binds {p.home_address} to {p.care_of_address4}.")


def check(exercise: Exercise, build_bu) -> Feedback:
    """Visible: the student's parameters, into a freshly registered lab."""
    return judge(build_bu, Lab(exercise.seed), exercise.parameters, "your BU")


def hidden_checks(exercise: Exercise, build_bu) -> list[Feedback]:
    """Hidden: two BUs in a row with other parameters (nothing may be typed in)."""
    lab = Lab(exercise.seed)
    rng = random.Random(exercise.seed ^ 0x4191)
    first = lab.parameters(rng)
    result = judge(build_bu, lab, first, "a BU with other parameters")
    if not result.correct:
        return [result]
    second = lab.parameters(rng)
    return [result, judge(build_bu, lab, second, "the next BU after it")]
