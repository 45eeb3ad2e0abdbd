"""The Peer Authorization Database (RFC 4301 §4.4.3; RFC 4877 §4.2, §5, §7.1)."""

from __future__ import annotations

import ipaddress

import pytest

from mip6lab.ipsec.pad import PeerAuthorizationDatabase, PeerAuthorizationEntry

A = ipaddress.ip_address


@pytest.fixture
def pad():
    pad = PeerAuthorizationDatabase()
    pad.add(PeerAuthorizationEntry("rfc822", "mn1@MIP6lab.example", psk=b"one",
                                   allowed=["2001:db8:aaaa::/64"]))
    pad.add(PeerAuthorizationEntry("fqdn", "Ha.MIP6lab.example", psk=b"ha",
                                   allowed=["2001:db8:2::1/128", "192.0.2.0/24"]))
    pad.add(PeerAuthorizationEntry("ipv6", "2001:db8:1::10", psk=b"addr",
                                   home_addresses=["2001:db8:100::10"]))
    pad.add(PeerAuthorizationEntry("key_id", "KeyOne", psk=b"key"))
    return pad


def test_lookup_by_type_and_value(pad):
    assert pad.lookup("rfc822", "mn1@MIP6lab.example").psk == b"one"
    assert pad.lookup("fqdn", "Ha.MIP6lab.example").psk == b"ha"
    assert pad.lookup("ipv6", "2001:db8:1::10").psk == b"addr"
    # The type is part of the identity: the same value under another type is not found.
    assert pad.lookup("fqdn", "mn1@MIP6lab.example") is None
    assert pad.lookup("rfc822", "nobody@mip6lab.example") is None


def test_fqdn_and_rfc822_compare_case_insensitively(pad):
    assert pad.lookup("rfc822", "MN1@mip6lab.EXAMPLE").psk == b"one"
    assert pad.lookup("fqdn", "ha.mip6lab.example").psk == b"ha"


def test_other_id_types_compare_exactly(pad):
    assert pad.lookup("key_id", "KeyOne").psk == b"key"
    assert pad.lookup("key_id", "keyone") is None


def test_entry_validation():
    with pytest.raises(ValueError, match="id_type"):
        PeerAuthorizationEntry("email", "x@y")
    with pytest.raises(ValueError, match="auth_method"):
        PeerAuthorizationEntry("fqdn", "x", auth_method="password")
    entry = PeerAuthorizationEntry("fqdn", "x", allowed=["2001:db8::5/64"],
                                   home_addresses=["2001:db8::9"])
    assert entry.allowed == [ipaddress.ip_network("2001:db8::/64")]   # strict=False
    assert entry.home_addresses == [A("2001:db8::9")]


def test_authorizes_by_allowed_networks(pad):
    mn1 = pad.lookup("rfc822", "mn1@mip6lab.example")
    assert mn1.authorizes("2001:db8:aaaa::100")
    assert mn1.authorizes(A("2001:db8:aaaa::ffff"))
    assert not mn1.authorizes("2001:db8:aaab::1")
    assert not mn1.authorizes("192.0.2.1")
    ha = pad.lookup("fqdn", "ha.mip6lab.example")
    assert ha.authorizes("192.0.2.77") and ha.authorizes("2001:db8:2::1")
    assert not ha.authorizes("2001:db8:2::2")


def test_authorizes_bound_home_addresses(pad):
    mn = pad.lookup("ipv6", "2001:db8:1::10")
    assert mn.authorizes("2001:db8:100::10")
    assert not mn.authorizes("2001:db8:100::11")     # no networks, only the bound HoA


def test_bind_home_address_and_owner_of(pad):
    """RFC 4877 §7.1/§4.2: the HA binds the HoA it assigned to the MN's identity, so that
    another MN cannot send a BU for it."""
    hoa = "2001:db8:aaaa::100"
    assert pad.owner_of(hoa) is None
    pad.bind_home_address("rfc822", "MN1@mip6lab.example", hoa)
    mn1 = pad.lookup("rfc822", "mn1@mip6lab.example")
    assert pad.owner_of(hoa) is mn1
    assert pad.owner_of(A(hoa)) is mn1
    assert mn1.home_addresses == [A(hoa)]
    pad.bind_home_address("rfc822", "mn1@mip6lab.example", A(hoa))   # idempotent
    assert mn1.home_addresses == [A(hoa)]
    assert pad.owner_of("2001:db8:100::10") is pad.lookup("ipv6", "2001:db8:1::10")
    other = pad.lookup("ipv6", "2001:db8:1::10")
    assert not other.authorizes(hoa)                   # MN B has no right to A's HoA
    with pytest.raises(KeyError, match="no PAD entry"):
        pad.bind_home_address("rfc822", "ghost@mip6lab.example", "2001:db8::1")


def test_order_first_entry_wins():
    pad = PeerAuthorizationDatabase()
    first = pad.add(PeerAuthorizationEntry("fqdn", "peer.example", psk=b"1"))
    pad.add(PeerAuthorizationEntry("fqdn", "PEER.example", psk=b"2"))
    assert pad.lookup("fqdn", "peer.example") is first
    assert [e.psk for e in pad] == [b"1", b"2"]


def test_table(pad):
    pad.bind_home_address("rfc822", "mn1@mip6lab.example", "2001:db8:aaaa::100")
    rows = pad.table()
    assert rows[0] == {"id": "rfc822:mn1@MIP6lab.example", "auth": "psk",
                       "allowed": ["2001:db8:aaaa::/64"],
                       "home_addresses": ["2001:db8:aaaa::100"]}
    assert len(rows) == 4
    assert all("psk" not in row for row in rows)       # secrets are not shown


def test_lookup_by_identity_is_case_insensitive_for_names_and_first_entry_wins():
    from mip6lab.ipsec.pad import PeerAuthorizationDatabase, PeerAuthorizationEntry

    pad = PeerAuthorizationDatabase()
    first = pad.add(PeerAuthorizationEntry("rfc822", "MN1@Example.org"))
    pad.add(PeerAuthorizationEntry("rfc822", "mn1@example.org"))
    key_id = pad.add(PeerAuthorizationEntry("key_id", "AbC"))
    assert pad.lookup("rfc822", "mn1@EXAMPLE.org") is first
    assert pad.lookup("key_id", "AbC") is key_id and pad.lookup("key_id", "abc") is None
    assert pad.lookup("fqdn", "mn1@example.org") is None
