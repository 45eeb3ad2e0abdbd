"""Exercise 4: the mobile node's K-bit decision on a handover (RFC 6275 §11.7.1, §10.3.1;
RFC 4877 §7.4; RFC 5555 §5.1), through the coupling's ``k_decision`` hook
(:attr:`mip6lab.mobility.coupling.MobileNodeCoupling.k_decision`).

The student writes ``decide_k(question)`` for a
:class:`~mip6lab.mobility.coupling.KBitQuestion`; the checks run ``handover`` with K=1 and
K=0 configured (K on every BU as expected, no IKE exchange on a K=1 handover, IKE again on
a K=0 one, every registration accepted), and, hidden, a move from IPv6 into an IPv4 NAT
(``dsmip6-nat``: the IKE SA cannot follow across families) and questions where the IKE SA
is not established.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..mobility.coupling import KBitQuestion, default_k_decision
from ..scenarios import create
from . import Feedback, attempt


@dataclass(frozen=True)
class Exercise:
    seed: int


def prepare(seed: int) -> Exercise:
    return Exercise(seed)


def _explain(q: KBitQuestion, expected: bool) -> str:
    if not q.configured:
        return "K=0 is configured on this MN"
    if q.ike_sa_state != "ESTABLISHED":
        return f"there is no established IKE SA to move (state {q.ike_sa_state})"
    if q.ike_endpoint is None:
        return "IKE has no endpoint yet"
    if q.ike_endpoint.version != q.new_care_of_address.version:
        return (f"the IKE SA runs over IPv{q.ike_endpoint.version} and the new care-of "
                f"address is IPv{q.new_care_of_address.version}: it cannot follow across "
                "families, IKE must run again (RFC 5555 §5.1)")
    return "K is configured and the established IKE SA can follow the new care-of address"


def judge_run(decide_k, name: str, seed: int, **options) -> Feedback:
    scenario = create(name, seed=seed, **options)
    wrong: list[str] = []
    failures: list[str] = []

    def hook(question: KBitQuestion) -> bool:
        answer, failed = attempt("decide_k", decide_k, question)
        if failed:
            failures.append(failed.message)
            raise RuntimeError(failed.message)
        expected = default_k_decision(question)
        said = f"to {question.new_care_of_address} you answered"
        if answer != expected and len(wrong) < 3 and not any(w.startswith(said) for w in wrong):
            wrong.append(f"to {question.new_care_of_address} you answered {answer!r}, the "
                         f"answer is {expected}: {_explain(question, expected)}")
        return answer

    scenario.mobile.coupling.k_decision = hook
    report = scenario.run()
    what = f"{name} with k_bit={options.get('k_bit', 1)}"
    if failures:
        return Feedback(False, f"{what}: {failures[0]}")
    if wrong:
        return Feedback(False, f"{what}: " + "; ".join(wrong) + ".")
    handovers = report["result"]["handovers"][1:]       # the moves, not the first BU
    for h in handovers:
        if h["ba_status"] is None or h["ba_status"] >= 128:
            return Feedback(False, f"{what}: the registration on {h['to']} was not accepted "
                                   f"(BA status {h['ba_status']}).")
        if h["k_bit"] and h["ike_exchanges"]:
            return Feedback(False, f"{what}: the handover to {h['to']} had K=1 and still ran "
                                   f"{h['ike_exchanges']} IKE exchange(s).")
    ks = ", ".join(f"{h['to']} K={h['k_bit']} ({h['ike_exchanges']} IKE exchanges)"
                   for h in handovers)
    return Feedback(True, f"{what}: every K bit as RFC 6275 §11.7.1 says: {ks}.")


def check(exercise: Exercise, decide_k) -> list[Feedback]:
    """Visible: handover with K=1, then with K=0."""
    return [judge_run(decide_k, "handover", exercise.seed, k_bit=1),
            judge_run(decide_k, "handover", exercise.seed, k_bit=0)]


def judge_questions(decide_k) -> Feedback:
    v6a, v6b = ipaddress.ip_address("2001:db8:a1::10"), ipaddress.ip_address("2001:db8:a2::10")
    v4 = ipaddress.ip_address("203.0.113.10")
    questions = [KBitQuestion(True, None, None, v6b),
                 KBitQuestion(True, "CONNECTING", v6a, v6b),
                 KBitQuestion(True, "ESTABLISHED", v6a, v4),
                 KBitQuestion(False, "ESTABLISHED", v6a, v6b),
                 KBitQuestion(True, "ESTABLISHED", v4, ipaddress.ip_address("198.51.100.40"))]
    for q in questions:
        answer, failed = attempt("decide_k", decide_k, q)
        if failed:
            return failed
        expected = default_k_decision(q)
        if answer != expected:
            return Feedback(False, f"for {q} you answered {answer!r}; the answer is "
                                   f"{expected}: {_explain(q, expected)}.")
    return Feedback(True, "every K decision of the table of cases is right.")


def hidden_checks(exercise: Exercise, decide_k) -> list[Feedback]:
    """Hidden: from IPv6 into an IPv4 NAT and home (dsmip6-nat), and a table of cases."""
    return [judge_run(decide_k, "dsmip6-nat", exercise.seed, k_bit=1),
            judge_questions(decide_k)]
