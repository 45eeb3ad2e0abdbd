"""Exercise 3: the mobile node's SPD entries of RFC 4877 §7.2, written by the student and
installed through the coupling's ``spd_entries`` hook
(:attr:`mip6lab.mobility.coupling.MobileNodeCoupling.spd_entries`).

The student writes ``mobile_node_spd(request)`` returning
:class:`~mip6lab.ipsec.SecurityPolicy` entries: BU to the HA and BA from it in ESP
transport mode (the first two entries of §7.2, one bidirectional entry here), and all the
home address's traffic in an ESP tunnel from the care-of address to the HA (the payload
entry). The check first reads the entries with probe packets (to say *which* entry is
missing or wrong), then runs ``home-registration`` with them and asserts that the BU and
the BA went in ESP and that the data flowed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..ipsec import PROTECT, SecurityPolicy
from ..ipsec.selectors import PacketSelectors
from ..mobility.coupling import SpdRequest
from ..scenarios import create
from . import Feedback, attempt

MH, UDP = 135, 17
CN = ipaddress.ip_address("2001:db8:c::10")


@dataclass(frozen=True)
class Exercise:
    seed: int

    def request_example(self) -> SpdRequest:
        """What the hook is given in a run of this seed (to try the function by hand)."""
        scenario = create("home-registration", seed=self.seed)
        seen: list[SpdRequest] = []
        scenario.mobile.coupling.spd_entries = lambda request: seen.append(request) or []
        scenario.lab.run_until(lambda lab: bool(seen), timeout=3.0)
        return seen[0]


def prepare(seed: int) -> Exercise:
    return Exercise(seed)


def _first(policies, packet: PacketSelectors, outbound: bool):
    return next((p for p in policies if p.applies(packet, outbound)), None)


def _read(policies: list, r: SpdRequest) -> Feedback | None:
    """What the entries do to a BU, a BA and a data packet of the home address."""
    bu = PacketSelectors(r.home_address, r.home_agent, MH, mh_type=5)
    ba = PacketSelectors(r.home_agent, r.home_address, MH, mh_type=6)
    data = PacketSelectors(r.home_address, CN, UDP, 40006, 7)
    for packet, outbound, what, rule in (
            (bu, True, "a BU from the home address to the HA",
             "local_address = home address, remote_address = HA, proto = MH, local MH type "
             "BU, remote MH type BA"),
            (ba, False, "a BA from the HA to the home address", "the same entry, inbound")):
        policy = _first(policies, packet, outbound)
        if policy is None or policy.action != PROTECT:
            how = "no entry covers" if policy is None else f"{policy.describe()} lets through"
            return Feedback(False, f"{how} {what}: RFC 4877 §7.2's first entries ({rule}) "
                                   "PROTECT it with ESP.")
        if policy.template.mode != "transport":
            return Feedback(False, f"{what} is protected in {policy.template.mode} mode: the "
                                   "BU/BA SA is ESP in transport mode (RFC 4877 §7.2), an SA "
                                   "of the home address that never moves.")
        if policy.template.reqid != r.bu_reqid:
            return Feedback(False, f"the entry for {what} has reqid {policy.template.reqid}; "
                                   f"the BU/BA SA IKE negotiates has request.bu_reqid "
                                   f"({r.bu_reqid}).")
    policy = _first(policies, data, True)
    if not r.protect_payload:
        return None
    if policy is None or policy.action != PROTECT:
        how = "no entry covers" if policy is None else f"{policy.describe()} lets through"
        return Feedback(False, f"{how} a data packet from the home address to a "
                               "correspondent: the payload entry (RFC 4877 §7.2, last) "
                               "protects all traffic of the home address in an ESP tunnel.")
    t = policy.template
    if t.mode != "tunnel":
        return Feedback(False, f"the payload entry is {t.mode} mode: it is an ESP tunnel "
                               "whose outer header goes from the care-of address to the HA.")
    ends = (ipaddress.ip_address(t.tunnel_local) if t.tunnel_local else None,
            ipaddress.ip_address(t.tunnel_remote) if t.tunnel_remote else None)
    if ends == (r.tunnel_remote, r.care_of_address):
        return Feedback(False, "the payload tunnel's endpoints are swapped: from the MN's "
                               "point of view tunnel_local is the care-of address and "
                               "tunnel_remote the HA (request.tunnel_remote).")
    if ends != (r.care_of_address, r.tunnel_remote):
        return Feedback(False, f"the payload tunnel goes {ends[0]} → {ends[1]}; it must go "
                               "from the care-of address (request.care_of_address) to the "
                               "HA's end of the IKE SA (request.tunnel_remote).")
    if t.reqid != r.payload_reqid:
        return Feedback(False, f"the payload entry has reqid {t.reqid}; the payload SA IKE "
                               f"negotiates has request.payload_reqid ({r.payload_reqid}).")
    return None


def judge(mobile_node_spd, seed: int, where: str, **options) -> Feedback:
    """Run home-registration with the student's entries; say what happened."""
    scenario = create("home-registration", seed=seed, **options)
    coupling = scenario.mobile.coupling
    asked: list = []

    def hook(request: SpdRequest) -> list:
        result, failed = attempt("mobile_node_spd", mobile_node_spd, request)
        asked.append((request, result, failed))
        if failed:
            raise RuntimeError(failed.message)
        return result

    coupling.spd_entries = hook
    report = scenario.run()
    if not asked:
        return Feedback(False, f"{where}: the MN never got a home address (the lab's fault, "
                               "not yours: tell the instructor).")
    request, result, failed = asked[0]
    if failed:
        return failed
    if not isinstance(result, (list, tuple)) or not all(isinstance(p, SecurityPolicy)
                                                         for p in result):
        return Feedback(False, "mobile_node_spd should return a list of SecurityPolicy "
                               f"entries, not {result!r}.")
    problem = _read(list(result), request)
    if problem is not None:
        return Feedback(False, f"{where}: {problem.message}")
    mobile, home_agent = scenario.mobile, scenario.home_agent
    bu_in_esp = home_agent.stats.get("bu_received", 0)
    ba_in_esp = mobile.stats.get("ba_received", 0)
    data = report["result"]["data"]
    if not bu_in_esp:
        return Feedback(False, f"{where}: no BU reached the HA inside ESP "
                               f"({home_agent.stats.get('unprotected_bu', 0)} arrived in the "
                               "clear).")
    if not ba_in_esp:
        return Feedback(False, f"{where}: the MN got no BA inside ESP "
                               f"({mobile.stats.get('unprotected_ba', 0)} in the clear).")
    if not report["ok"] or not data["received"]:
        return Feedback(False, f"{where}: BU and BA went in ESP, but the data did not flow "
                               f"({data['received']} of {data['sent']} answers came back).")
    return Feedback(True, f"{where}: with your entries the BU and BA went in ESP "
                          f"({bu_in_esp} BU, {ba_in_esp} BA) and {data['received']} of "
                          f"{data['sent']} data packets were answered.")


def check(exercise: Exercise, mobile_node_spd) -> Feedback:
    """Visible: home-registration with the student's seed."""
    return judge(mobile_node_spd, exercise.seed, "home-registration")


def hidden_checks(exercise: Exercise, mobile_node_spd) -> list[Feedback]:
    """Hidden: another seed with the home address autoconfigured from MIP6_HOME_PREFIX
    (another address: entries must come from the request, not be typed in)."""
    return [judge(mobile_node_spd, exercise.seed + 1, "home-registration with a home "
                  "prefix (another home address)", hoa_mode="prefix")]
