"""Denial-of-service limits of the IKE responder, on by default (docs/security.md).

RFC 7296 §2.6: a responder must not let spoofed IKE_SA_INITs make it keep state. The
daemon's defaults: COOKIEs above ``DEFAULT_COOKIE_THRESHOLD`` half-open IKE SAs, a
half-open SA dropped after ``DEFAULT_HALF_OPEN_TIMEOUT`` seconds, at most
``DEFAULT_MAX_SAS_PER_ADDRESS`` IKE SAs per peer address, and (with unique IDs off)
``max_sas_per_identity`` per authenticated identity. The flood: 1 500 IKE_SA_INITs from
spoofed addresses while a legitimate MN brings its IKE SA up.
"""

from __future__ import annotations

from mip6lab.ikev2.config import IkeConfig
from mip6lab.ikev2.daemon import (DEFAULT_COOKIE_THRESHOLD, DEFAULT_HALF_OPEN_TIMEOUT,
                                  DEFAULT_MAX_SAS_PER_ADDRESS, IkeDaemon)
from mip6lab.ikev2.pools import AddressPool
from mip6lab.ikev2.sa import IkeSa
from mip6lab.net.lab import Lab

HA, MN, ATTACKER = "2001:db8:2::1", "2001:db8:2::10", "2001:db8:2::66"
HA_ID, MN_ID, PSK = "ha.mip6lab.example", "mn@mip6lab.example", "psk-lab-0123"
FLOOD, FLOOD_START, FLOOD_SPACING = 1500, 0.1, 0.001     # 1 500 in 1.5 s
MN_START = 0.5                                           # in the middle of the flood


def flood_lab(**ha_options) -> Lab:
    """An HA, a legitimate MN and an attacker on one link; the HA with the defaults."""
    def build(lab):
        lab.add_link("lan")
        for name, address in (("ha", HA), ("mn", MN), ("attacker", ATTACKER)):
            lab.connect(lab.add_host(name), "lan", addresses=[f"{address}/64"])
        lab.had = IkeDaemon(lab.nodes["ha"], IkeConfig.make(
            HA_ID, PSK, MN_ID, pool6=AddressPool.parse("2001:db8:aaaa::/64")), **ha_options)
        lab.mnd = IkeDaemon(lab.nodes["mn"], IkeConfig.make(MN_ID, PSK, HA_ID,
                                                            request=("ipv6",)))
    return Lab(seed=14, build=build)


def captured_ike_sa_init(lab: Lab) -> bytes:
    """One genuine IKE_SA_INIT request, built by an initiator engine on the attacker."""
    attacker = lab.nodes["attacker"]
    sa = IkeSa(IkeConfig.make("x@attacker.example", PSK, HA_ID), True, ATTACKER, HA,
               attacker.sim.random.randbytes, lambda: 1, 0)
    sa.initiate(0)
    return sa.datagrams_to_send()[0].data


def spoofed_source(i: int) -> str:
    """An address of the link's prefix no host has: nobody will return its cookie."""
    return f"2001:db8:2::1:{i + 1:x}"


def schedule_flood(lab: Lab, count: int = FLOOD, source=spoofed_source) -> None:
    """``count`` copies of one IKE_SA_INIT, each with a fresh SPIi and its own source."""
    template = captured_ike_sa_init(lab)
    attacker = lab.nodes["attacker"]
    for i in range(count):
        data = (0x1000 + i).to_bytes(8, "big") + template[8:]
        lab.at(FLOOD_START + i * FLOOD_SPACING, attacker.send_udp, HA, 500, data, 500,
               source(i))


def watch_half_open(lab: Lab, until: float, every: float = 0.01) -> list[int]:
    """The HA's half-open count, sampled every ``every`` seconds."""
    samples: list[int] = []
    for k in range(int(until / every)):
        lab.at(k * every, lambda: samples.append(lab.had.half_open()))
    return samples


def test_a_spoofed_flood_gets_cookies_and_the_mn_still_gets_its_ike_sa():
    lab = flood_lab()
    schedule_flood(lab)
    samples = watch_half_open(lab, until=2.0)
    lab.at(MN_START, lab.mnd.initiate, HA)
    lab.run(until=2.0)
    had = lab.had
    # §2.6: state for the first 32 only; every later IKE_SA_INIT got a COOKIE
    assert max(samples) == DEFAULT_COOKIE_THRESHOLD
    assert had.cookies_sent >= FLOOD - DEFAULT_COOKIE_THRESHOLD
    # the MN was asked for a cookie too, returned it, and is up with its address
    mn_sa = lab.mnd.established[0]
    assert mn_sa.cookie is not None and mn_sa.state == "ESTABLISHED"
    assert [sa.peer_identity for sa in had.established] == [f"rfc822:{MN_ID}"]
    assert had.config.pool6.leases == {f"rfc822:{MN_ID}": mn_sa.assigned[0].value.ip}
    # the half-open timeout: none is left, the MN's SA is untouched
    lab.run(until=FLOOD_START + 1.5 + DEFAULT_HALF_OPEN_TIMEOUT + 0.1)
    assert had.half_open() == 0 and had.half_open_dropped == DEFAULT_COOKIE_THRESHOLD
    assert list(had.sas.values()) == [had.established[0]]
    assert mn_sa.state == "ESTABLISHED"
    assert any("dropped after 30 s without IKE_AUTH" in e.summary
               for e in lab.trace.filter(node="ha"))


def test_without_the_limits_the_flood_leaves_every_half_open_sa():
    """What the defaults replace: 1 500 spoofed IKE_SA_INITs, 1 500 IKE SAs kept."""
    lab = flood_lab(cookie_threshold=None, half_open_timeout=None, max_sas_per_address=None)
    schedule_flood(lab, count=200)          # enough to show it, cheaper than 1 500 DHs
    lab.run(until=FLOOD_START + 0.2 + 120)
    assert lab.had.half_open() == 200 and lab.had.cookies_sent == 0


def test_one_address_holds_at_most_the_per_address_limit():
    """Below the cookie threshold, one source still gets 10 IKE SAs at most (§2.6)."""
    lab = flood_lab()
    schedule_flood(lab, count=25, source=lambda i: ATTACKER)
    lab.run(until=1.0)
    assert lab.had.half_open() == DEFAULT_MAX_SAS_PER_ADDRESS
    assert lab.had.refused_by_address == 25 - DEFAULT_MAX_SAS_PER_ADDRESS
    assert lab.had.cookies_sent == 0
    assert any("the limit per address is 10" in e.summary
               for e in lab.trace.filter(node="ha"))
    # once they time out, the address may start again
    lab.run(until=1.0 + DEFAULT_HALF_OPEN_TIMEOUT)
    assert lab.had.half_open() == 0


def test_one_identity_holds_at_most_max_sas_per_identity():
    """With unique IDs off, the 4th IKE SA of one identity gets AUTHENTICATION_FAILED."""
    lab = flood_lab(unique_ids=False, max_sas_per_identity=3)
    for k in range(4):
        lab.at(0.1 + 0.2 * k, lab.mnd.initiate, HA)
    lab.run(until=1.5)
    responder = [sa for sa in lab.had.established if sa.state == "ESTABLISHED"]
    assert len(responder) == 3
    assert [f.notify for f in lab.mnd.failures] == ["AUTHENTICATION_FAILED"]
    assert any("the limit per identity is 3" in e.summary
               for e in lab.trace.filter(node="ha"))
