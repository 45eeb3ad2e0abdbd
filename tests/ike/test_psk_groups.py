"""One shared PSK lets any holder claim any identity; what a responder can do about it.

An outside probe registered 300 invented identities with the course's one PSK, each given
a lease and SAs. Two answers, both configurable on the responder (docs/security.md):

- ``IkeConfig.peer_psks``: a key per identity, so that holding a key proves one identity
  (a peer that is not listed, or that uses another peer's key, fails authentication);
- ``IkeConfig.max_identities``: at most N distinct identities hold IKE SAs at once under
  one configuration (one PSK group); the next is refused with AUTHENTICATION_FAILED
  (RFC 7296 §2.21.2) and gets no lease, while the admitted ones keep theirs.
"""

from __future__ import annotations

import pytest

from mip6lab.ikev2.config import IkeConfig
from mip6lab.ikev2.daemon import IkeDaemon
from mip6lab.ikev2.pools import AddressPool
from mip6lab.net.lab import Lab

HA, HA_ID, PSK = "2001:db8:2::1", "ha.mip6lab.example", "the-shared-key-0123"
POOL = "2001:db8:aaaa::/64"


def lab_with(ha_options: dict, mns: list[tuple[str, str]]) -> Lab:
    """An HA and one host per (identity, psk) on one link, each starting IKE at 0.1 s."""
    def build(lab):
        lab.add_link("lan")
        ha = lab.add_host("ha")
        lab.connect(ha, "lan", addresses=[f"{HA}/64"])
        lab.had = IkeDaemon(ha, IkeConfig.make(HA_ID, PSK, pool6=AddressPool.parse(POOL),
                                               **ha_options))
        lab.mnds = []
        for i, (identity, psk) in enumerate(mns):
            mn = lab.add_host(f"mn{i}")
            lab.connect(mn, "lan", addresses=[f"2001:db8:2::{10 + i:x}/64"])
            lab.mnds.append(IkeDaemon(mn, IkeConfig.make(identity, psk, HA_ID,
                                                         request=("ipv6",))))

    lab = Lab(seed=5, build=build)
    for i, mnd in enumerate(lab.mnds):
        lab.at(0.1 + 0.05 * i, mnd.initiate, HA)
    lab.run(until=2.0)
    return lab


def outcome(lab) -> list[str]:
    """Per MN: 'up' with an IKE SA established, else the notify it failed with."""
    return ["up" if mnd.established else (mnd.failures[-1].notify if mnd.failures else "-")
            for mnd in lab.mnds]


def test_with_one_shared_psk_any_identity_gets_in():
    lab = lab_with({}, [(f"user{i}@invented.example", PSK) for i in range(5)])
    assert outcome(lab) == ["up"] * 5
    assert len(lab.had.config.pool6.leases) == 5            # the probe's finding


def test_max_identities_caps_the_group_and_keeps_the_admitted():
    lab = lab_with({"max_identities": 3}, [(f"user{i}@invented.example", PSK)
                                           for i in range(5)])
    assert outcome(lab) == ["up", "up", "up", "AUTHENTICATION_FAILED",
                            "AUTHENTICATION_FAILED"]
    assert sorted(lab.had.config.pool6.leases) == [f"rfc822:user{i}@invented.example"
                                                   for i in range(3)]
    refusals = [e for e in lab.trace.filter(node="ha") if "limit of this configuration is 3"
                in e.summary]
    assert len(refusals) == 2
    # one admitted identity leaves: its place is free again
    first = lab.had.established[0]
    lab.had.delete(first)
    lab.run(until=lab.now + 1.0)
    assert first.state == "CLOSED"
    late = lab.mnds[3]
    late.initiate(HA)
    lab.run(until=lab.now + 1.0)
    assert late.established and "rfc822:user3@invented.example" in lab.had.config.pool6.leases


def test_an_admitted_identity_may_authenticate_again_at_the_cap():
    lab = lab_with({"max_identities": 1}, [("mn1@mip6lab.example", PSK)])
    (mnd,) = lab.mnds
    (old,) = mnd.established
    mnd.forget(old)                     # a K=0 move: the MN runs IKE again
    mnd.initiate(HA)
    lab.run(until=lab.now + 1.0)
    assert len(mnd.established) == 2 and mnd.established[-1].state == "ESTABLISHED"
    assert list(lab.had.config.pool6.leases) == ["rfc822:mn1@mip6lab.example"]


def test_per_peer_psks_bind_a_key_to_one_identity():
    keys = {"rfc822:mn1@mip6lab.example": "key-of-mn1-0123", "mn2@mip6lab.example":
            "key-of-mn2-4567"}
    lab = lab_with({"peer_psks": keys}, [
        ("mn1@mip6lab.example", "key-of-mn1-0123"),       # its own key
        ("mn2@mip6lab.example", "key-of-mn1-0123"),       # mn1's key, claiming mn2
        ("mn3@mip6lab.example", PSK),                     # not listed: the shared key
        ("mn2@mip6lab.example", "key-of-mn2-4567"),       # its own key (bare-value entry)
    ])
    assert outcome(lab) == ["up", "AUTHENTICATION_FAILED", "AUTHENTICATION_FAILED", "up"]
    assert sorted(lab.had.config.pool6.leases) == ["rfc822:mn1@mip6lab.example",
                                                   "rfc822:mn2@mip6lab.example"]
    reasons = [f.reason for f in lab.had.failures]
    assert any("no pre-shared key for rfc822:mn3@mip6lab.example" in r for r in reasons)
    # the secrets of an admitted SA name the peer's own key, not the shared one
    (sa,) = [s for s in lab.had.established if s.peer_id[1] == "mn1@mip6lab.example"]
    assert sa.secrets().psk == b"key-of-mn1-0123"


def test_max_identities_must_be_positive():
    with pytest.raises(ValueError, match="max_identities"):
        IkeConfig.make(HA_ID, PSK, max_identities=0)
