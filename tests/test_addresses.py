"""mip6lab.addresses gives what ipaddress gives, for every address, only cheaper."""

import ipaddress

import pytest
from hypothesis import given, strategies as st

from mip6lab import addresses
from mip6lab.ikev2.config import identity

v4 = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)
v6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
any_address = v4 | v6


@given(any_address)
def test_an_address_from_its_text_its_octets_or_itself_is_the_same_address(a):
    for form in (str(a), a.exploded, a.packed, bytearray(a.packed), a):
        found = addresses.address(form)
        assert found == a and type(found) is type(a)
    assert addresses.text(a) == str(a)
    assert addresses.text(addresses.address(a.exploded)) == str(a)


@given(any_address, st.integers(0, 128))
def test_networks_and_interfaces_are_what_ipaddress_makes(a, length):
    length = min(length, a.max_prefixlen)
    written = f"{a}/{length}"
    assert addresses.network(written) == ipaddress.ip_network(written, strict=False)
    assert addresses.interface(written) == ipaddress.ip_interface(written)
    made = ipaddress.ip_interface(written)
    assert addresses.interface(made) is made     # already one: not made again
    assert addresses.network(made.network) is made.network
    assert addresses.text(made.network) == str(made.network)


def test_text_met_again_gives_the_same_object():
    assert addresses.address("2001:db8::1") is addresses.address("2001:db8::1")
    assert addresses.network("2001:db8::/64") is addresses.network("2001:db8::/64")


@pytest.mark.parametrize("bad", ["", "2001:db8::g", "192.0.2.256", "::1::2", "mn@example",
                                 b"\x00" * 5, "192.0.2.0/33"])
def test_what_is_no_address_raises_value_error_as_ipaddress_does(bad):
    with pytest.raises(ValueError):
        ipaddress.ip_address(bad)
    with pytest.raises(ValueError):
        addresses.address(bad)


@given(any_address)
def test_an_identity_written_as_an_address_is_typed_as_one(a):
    kind, value = identity(str(a))
    assert (kind, value) == (f"ipv{a.version}", str(a))
    assert identity(a.exploded) == (f"ipv{a.version}", str(a))


@pytest.mark.parametrize("text, expected", [
    ("mn0@mip6lab.example", ("rfc822", "mn0@mip6lab.example")),
    ("ha.mip6lab.example", ("fqdn", "ha.mip6lab.example")),
    ("cafe", ("fqdn", "cafe")),                 # hex digits, still no address
    ("fe80::1%eth0", ("ipv6", "fe80::1%eth0")),  # a scope may be any text
    ("fqdn:ha.example", ("fqdn", "ha.example")),
])
def test_identities_that_are_not_addresses_keep_their_type(text, expected):
    assert identity(text) == expected


@pytest.mark.parametrize("value", [None, "ha.example", ["INTERNAL_IP6_ADDRESS", 8], 7,
                                   b"\x00\x08"])
def test_text_of_what_is_no_address_is_its_str(value):
    """A CP value from the peer may be a list (SUPPORTED_ATTRIBUTES): no cache key."""
    assert addresses.text(value) == str(value)


def test_a_peers_cp_attribute_that_is_a_list_is_announced_not_raised():
    """A CFG_REPLY's SUPPORTED_ATTRIBUTES decodes to a list; the daemon announces it
    (found by review: its text went to a cache that needs hashable values)."""
    from mip6lab.ikev2.sa import AddressAssigned
    from mip6lab.scenarios import create
    from mip6lab.wire import ikev2_codec as c

    value = c.CpAttribute(14, b"\x00\x08\x00\x01").decoded()
    assert isinstance(value, list)
    scenario = create("home-registration", seed=1)
    scenario.run()
    daemon = scenario.lab.nodes["mn"].ike
    sa = next(iter(daemon.sas.values()))
    daemon._handle(sa, AddressAssigned("SUPPORTED_ATTRIBUTES", value, sa.peer_id))
    assert scenario.lab.trace.events[-1].summary.endswith(
        f"SUPPORTED_ATTRIBUTES {value} from {sa.peer_id[1]}")


@given(any_address)
def test_an_address_from_packed_octets_is_shared_and_equal(a):
    found = addresses.from_packed(a.packed)
    assert found == a and type(found) is type(a)
    assert addresses.from_packed(bytearray(a.packed)) is found
    assert addresses.from_packed(memoryview(a.packed)) is found


@pytest.mark.parametrize("length", [0, 3, 5, 15, 17])
def test_packed_octets_of_another_length_are_no_address(length):
    with pytest.raises(ValueError):
        addresses.from_packed(b"\x01" * length)
