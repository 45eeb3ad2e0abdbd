"""The SPD's index finds the same first match as a scan of the ordered list (RFC 4301
§4.4.1: "the first matching entry"), whatever the mix of host and wildcard entries,
insertions at a position and removals."""

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from mip6lab.ipsec.selectors import PacketSelectors
from mip6lab.ipsec.spd import (BYPASS, DISCARD, PROTECT, SecurityPolicy,
                               SecurityPolicyDatabase, Selectors)

HOSTS = [f"2001:db8:1::{i}" for i in range(1, 5)]
NETS = ["::/0", "2001:db8:1::/64", "2001:db8:1::/126"]

selectors = st.builds(
    lambda local, remote, proto: Selectors.make(local, remote, proto),
    st.sampled_from(NETS + [f"{h}/128" for h in HOSTS]),
    st.sampled_from(NETS + [f"{h}/128" for h in HOSTS]),
    st.sampled_from([None, "udp", "icmpv6"]))
operations = st.lists(st.tuples(st.sampled_from(["add", "insert", "remove"]), selectors,
                                st.sampled_from([PROTECT, BYPASS, DISCARD]),
                                st.integers(0, 20)), min_size=1, max_size=25)
packets = st.builds(
    lambda src, dst, proto: PacketSelectors(ipaddress.ip_address(src),
                                            ipaddress.ip_address(dst), proto),
    st.sampled_from(HOSTS + ["2001:db8:2::1"]), st.sampled_from(HOSTS + ["2001:db8:2::1"]),
    st.sampled_from([17, 58, 6]))


def _scan(spd, packet, outbound):
    return next((p for p in spd.policies if p.applies(packet, outbound)), None)


@settings(max_examples=300, deadline=None)
@given(operations, st.lists(packets, min_size=1, max_size=10), st.booleans())
def test_indexed_lookup_is_the_first_match_of_the_list(ops, probe, outbound):
    spd = SecurityPolicyDatabase()
    for op, sel, action, where in ops:
        if op == "remove" and spd.policies:
            spd.remove(spd.policies[where % len(spd.policies)].index)
        else:
            spd.add(SecurityPolicy(sel, action),
                    position=where % (len(spd.policies) + 1) if op == "insert" else None)
    for packet in probe:
        assert spd.lookup(packet, outbound) is _scan(spd, packet, outbound)
    for policy in spd.policies:
        assert policy in spd.find(selectors=policy.selectors)
        assert spd.find(selectors=policy.selectors) == \
            [p for p in spd.policies if p.selectors == policy.selectors]
