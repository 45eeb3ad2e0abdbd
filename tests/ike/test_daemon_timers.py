"""IkeDaemon's retransmission timer (RFC 7296 §2.1): each new request moves the deadline;
a lost response is retransmitted at the deadline of the latest request, and a timer is
left armed only while a request waits for its answer."""

from __future__ import annotations

from .test_daemon_lab import ike_lab

IKE_SA_INIT, IKE_AUTH = 34, 35


def _exchange(data: bytes) -> int:
    return data[18]         # the header's Exchange Type (port 500: no non-ESP marker)


def _lossy_lab(drop_first: int):
    """The lab of test_daemon_lab with the HA's first response of ``drop_first`` lost;
    the MN's IKE requests recorded as (time, exchange)."""
    lab = ike_lab()
    mn, ha = lab.nodes["mn"], lab.nodes["ha"]
    ha_send, mn_send = ha.send_udp, mn.send_udp
    dropped, sent = [], []

    def ha_lossy(dst, dport, data, sport, **kw):
        if _exchange(data) == drop_first and not dropped:
            dropped.append(lab.sim.now_us)
            return None
        return ha_send(dst, dport, data, sport, **kw)

    def mn_recorded(dst, dport, data, sport, **kw):
        sent.append((lab.sim.now_us, _exchange(data)))
        return mn_send(dst, dport, data, sport, **kw)

    ha.send_udp, mn.send_udp = ha_lossy, mn_recorded
    return lab, dropped, sent


def test_a_lost_auth_response_is_retransmitted_at_the_auth_deadline_not_the_init_one():
    lab, dropped, sent = _lossy_lab(IKE_AUTH)
    timeout_us = round(lab.mnd.config.retransmit_timeout * 1_000_000)
    lab.run(until=0.1)
    lab.run(until=lab.sim.now + 0.05)           # IKE_SA_INIT answered, IKE_AUTH out
    (init_at,) = [t for t, x in sent if x == IKE_SA_INIT]
    (auth_at,) = [t for t, x in sent if x == IKE_AUTH]
    assert auth_at > init_at
    # one timer for the MN's SA, at the IKE_AUTH request's deadline
    (timer,) = lab.mnd._timers.values()
    assert timer.time_us == auth_at + timeout_us
    lab.run(until=3)
    assert dropped
    auths = [t for t, x in sent if x == IKE_AUTH]
    assert auths == [auth_at, auth_at + timeout_us]     # not at init_at + timeout
    (mn_sa,), (ha_sa,) = lab.mnd.established, lab.had.established
    assert mn_sa.spi_pair == ha_sa.spi_pair
    assert not lab.mnd._timers                        # answered: nothing armed


def test_a_lost_init_response_backs_off_then_auth_gets_its_own_deadline():
    lab, dropped, sent = _lossy_lab(IKE_SA_INIT)
    timeout_us = round(lab.mnd.config.retransmit_timeout * 1_000_000)
    lab.run(until=3)
    inits = [t for t, x in sent if x == IKE_SA_INIT]
    auths = [t for t, x in sent if x == IKE_AUTH]
    assert len(inits) == 2 and inits[1] - inits[0] == timeout_us
    assert len(auths) == 1 and lab.mnd.established
    assert lab.sim.scheduled("IKE retransmit") == []
