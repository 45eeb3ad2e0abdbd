"""A home address belongs to one identity, for as long as that identity holds an IKE SA.

RFC 7296 §3.15.4: an address handed out in a CFG_REPLY returns to the pool when the IKE SA
goes; RFC 4877 §4.2 and §7.1: the PAD ties the home address to the identity that
authenticated, and a BU for it is accepted only through an SA of that identity. An outside
probe found both broken after a K=0 handover: the new IKE SA replaced the old one (unique
IDs) and the old one's release emptied the MN's lease while the MN kept its HoA, so the
pool could give the same HoA to another identity, and the PAD bound it to both.
"""

from __future__ import annotations

from collections import Counter

from mip6lab.ikev2.pools import PoolExhausted
from mip6lab.ipsec.pad import HomeAddressTaken, PeerAuthorizationEntry
from mip6lab.scenarios import create
from mip6lab.scenarios.mobility import MN_ID

import pytest

AFTER_FIRST_HANDOVER = 6.0      # handover moves the MN to visit2 at 5 s


def _pad_owners(ha) -> Counter:
    return Counter(address for entry in ha.ipsec.pad for address in entry.home_addresses)


def test_a_k0_handover_keeps_the_lease_and_an_exhausted_pool_never_gives_the_hoa_away():
    scenario = create("handover", k_bit=0)
    lab = scenario.lab
    lab.run(until=AFTER_FIRST_HANDOVER)
    ha = lab.nodes["ha"]
    pool = ha.ike.config.pool6
    hoa = scenario.mobile.home_address
    assert len(scenario.result()["handovers"]) == 2
    assert scenario.result()["handovers"][1]["ike_exchanges"] > 0     # IKE ran again (K=0)
    # the MN's second IKE SA holds the lease the first one had
    assert pool.leases.get(f"rfc822:{MN_ID}") == hoa
    # other identities take everything the pool has left
    given = []
    with pytest.raises(PoolExhausted):
        for i in range(pool.network.num_addresses):
            given.append(pool.allocate(f"rfc822:other{i}@mip6lab.example"))
    assert len(given) == pool.network.num_addresses - 2        # all but ::1000 and the HoA
    assert hoa not in given
    for address in given[:3]:                                   # as the daemon would bind
        ha.ike.bind_home_address("rfc822:" + str(address) + "@x.example", address, "test")
    assert all(n == 1 for n in _pad_owners(ha).values()), _pad_owners(ha)
    # the MN's next handovers still succeed
    scenario.run()
    handovers = scenario.result()["handovers"]
    assert [h["ba_status"] for h in handovers] == [0, 0, 0, 0]
    assert all(h["ike_exchanges"] > 0 for h in handovers[1:])
    assert pool.leases.get(f"rfc822:{MN_ID}") == hoa
    owner = ha.ipsec.pad.owner_of(hoa)
    assert (owner.id_type, owner.identity) == ("rfc822", MN_ID)


def test_the_pad_never_binds_one_home_address_to_two_identities():
    scenario = create("home-registration")
    scenario.lab.run(until=3.0)
    ha = scenario.lab.nodes["ha"]
    hoa = scenario.mobile.home_address
    before = [(e.identity, list(e.home_addresses)) for e in ha.ipsec.pad]
    ha.ike.bind_home_address("rfc822:thief@mip6lab.example", hoa, "a second claim")
    assert ha.ipsec.pad.lookup("rfc822", "thief@mip6lab.example").home_addresses == []
    assert ha.ipsec.pad.owner_of(hoa).identity == MN_ID
    assert [(e.identity, e.home_addresses) for e in ha.ipsec.pad
            if e.identity != "thief@mip6lab.example"] == before
    refusal = [e for e in scenario.lab.trace.filter(node="ha")
               if e.data.get("error") == "taken"]
    assert len(refusal) == 1 and str(hoa) in refusal[0].summary
    # the database itself refuses too, with a typed error
    with pytest.raises(HomeAddressTaken):
        ha.ipsec.pad.bind_home_address("rfc822", "thief@mip6lab.example", hoa)


def test_a_released_lease_unbinds_its_address_in_the_pad():
    scenario = create("home-registration")
    scenario.lab.run(until=3.0)
    ha = scenario.lab.nodes["ha"]
    hoa = scenario.mobile.home_address
    (sa,) = [sa for sa in ha.ike.sas.values() if sa.state == "ESTABLISHED"]
    ha.ike.forget(sa)                           # the identity's last IKE SA goes
    assert f"rfc822:{MN_ID}" not in ha.ike.config.pool6.leases
    assert ha.ipsec.pad.owner_of(hoa) is None
    # the address may now go to another identity, and be bound to it alone
    other = PeerAuthorizationEntry("rfc822", "other@mip6lab.example")
    ha.ipsec.pad.add(other)
    ha.ipsec.pad.bind_home_address("rfc822", "other@mip6lab.example", hoa)
    assert ha.ipsec.pad.owner_of(hoa) is other
