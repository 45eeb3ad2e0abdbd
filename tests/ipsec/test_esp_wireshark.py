"""Wireshark's ESP key table (mip6lab.ipsec.wireshark), and tshark as the oracle: it must
decrypt and dissect, without a malformed flag, every kind of ESP packet we send.

Facts found with tshark 4.0.17 while writing these tests:

* ESP in UDP 4500 needs no ``-d udp.port==4500,esp``: the ``udpencap`` dissector is
  registered on UDP port 4500 (over IPv4 and IPv6), skips non-ESP-marker IKE traffic and
  hands the rest to ESP, which decrypts with ``esp_sa`` like direct ESP. A source port other
  than 4500 (a NAT's) is fine as long as the destination is 4500.
* With a Home Address option, tshark matches the ``esp_sa`` row with the *home address*
  as the source (RFC 6275 §9.3.1 makes the HoA the packet's source once the HAO is
  processed), and with a type 2 routing header with the home address as the
  destination: a row written with the care-of address does not decrypt the packet. So a
  transport SA for MIPv6 signalling is written (and created) with the HoA as its address,
  as RFC 3776/RFC 4877 do. tshark also checks the UDP checksum of ESP-in-UDP after a HAO
  or type 2 routing header over the home address (RFC 6275 §11.3.1, RFC 8200 §8.1).
* Checksums: UDP-in-IPv4 encapsulation has checksum 0 ("not present", status 3), over IPv6
  tshark verifies ours (status 1, good) -- :func:`check_capture` turns validation on.
"""

from __future__ import annotations

import csv

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrRouting
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from mip6lab.ipsec.esp import encapsulate, locate_esp
from mip6lab.ipsec.sad import SecurityAssociation
from mip6lab.ipsec.wireshark import esp_sa_line, esp_sa_table, write_esp_sa
from mip6lab.testing.tshark import check_capture, tshark_fields

from ._util import (CN6, COA6, HA4, HA6, HOA6, MN4, MN6, STRONGSWAN, echo4, echo6, hao_udp6,
                    iv_for, sa_pair, udp4, udp6)


def fixture_rows() -> list[str]:
    return (STRONGSWAN / "esp_sa").read_text().splitlines()


def sa_from_row(line: str) -> SecurityAssociation:
    family, src, dst, spi, enc_alg, enc_key, _, auth_key = next(csv.reader([line]))
    enc = bytes.fromhex(enc_key[2:])
    suite = {("AES-GCM", 36): "aes256gcm16", ("AES-GCM", 20): "aes128gcm16",
             ("AES-CBC", 32): "aes256-sha256", ("AES-CBC", 16): "aes128-sha256"}[
        (enc_alg[:7], len(enc))]
    return SecurityAssociation(int(spi, 16), "out", src, dst, suite, enc,
                               bytes.fromhex(auth_key[2:]), mode="tunnel", encap=(4500, 4500))


@pytest.mark.parametrize("index", range(6))
def test_esp_sa_line_has_the_fixture_format(index):
    """Our line for an SA made with the keys of a real strongSwan SA is byte for byte the
    line of the table that let tshark decrypt the strongSwan capture."""
    line = fixture_rows()[index]
    assert esp_sa_line(sa_from_row(line)) == line


def test_esp_sa_table_skips_larval_sas_and_duplicates():
    out, _, inb = sa_pair("aes128gcm16", MN6, HA6)
    larval = SecurityAssociation(0x777, "in", HA6, MN6, "aes128gcm16", b"", state="larval")
    text = esp_sa_table([out, larval, inb, out])
    assert text == esp_sa_line(out) + "\n"      # out and inb are the same SA's two ends
    assert esp_sa_table([]) == ""


def test_write_esp_sa(tmp_path):
    out, _, _ = sa_pair("null-sha256", MN4, HA4)
    path = write_esp_sa(tmp_path / "conf", [out])
    assert path == str(tmp_path / "conf" / "esp_sa")
    assert (tmp_path / "conf" / "esp_sa").read_text() == esp_sa_line(out) + "\n"
    assert esp_sa_line(out) == (
        f'"IPv4","{MN4}","{HA4}","0x{out.spi:08x}","NULL","0x",'
        f'"HMAC-SHA-256-128 [RFC4868]","0x{out.integ_key.hex()}"')


# Each case: (label, suite, SA source, SA destination, packet, SA options, the protocol
# chain tshark must show once decrypted, the fields it must show inside).
CASES = [
    ("transport IPv6 GCM", "aes128gcm16", MN6, HA6, udp6(), {},
     "eth:ethertype:ipv6:esp:udp:data", {"udp.payload": b"hello over ESP".hex()}),
    ("transport IPv4 CBC+HMAC", "aes256-sha256", MN4, HA4, echo4(MN4, HA4), {},
     "eth:ethertype:ip:esp:icmp:data", {"icmp.type": "8"}),
    ("transport IPv6 NULL+HMAC", "null-sha256", MN6, HA6, echo6(MN6, HA6), {},
     "eth:ethertype:ipv6:esp:icmpv6:data", {"icmpv6.type": "128"}),
    ("tunnel IPv6-in-IPv6 GCM-256", "aes256gcm16", COA6, HA6, echo6(HOA6, CN6),
     {"mode": "tunnel"}, "eth:ethertype:ipv6:esp:ipv6:icmpv6:data", {"icmpv6.type": "128"}),
    ("UDP-encapsulated IPv4 transport CBC", "aes128-sha256", MN4, HA4, udp4(),
     {"encap": (4500, 4500)}, "eth:ethertype:ip:udp:udpencap:esp:udp:data",
     {"udp.payload": b"hello over ESP".hex()}),
    ("UDP-encapsulated IPv4 tunnel GCM from a NAT port", "aes128gcm16", MN4, HA4, echo4(),
     {"encap": (61000, 4500), "mode": "tunnel"},
     "eth:ethertype:ip:udp:udpencap:esp:ip:icmp:data", {"icmp.type": "8"}),
    ("UDP-encapsulated IPv6 tunnel GCM", "aes256gcm16", COA6, HA6, echo6(HOA6, CN6),
     {"encap": (4500, 4500), "mode": "tunnel"},
     "eth:ethertype:ipv6:udp:udpencap:esp:ipv6:icmpv6:data", {"icmpv6.type": "128"}),
    ("transport with a Home Address option", "null-sha256", HOA6, HA6, hao_udp6(), {},
     "eth:ethertype:ipv6:ipv6.dstopts:esp:udp:data",
     {"udp.payload": b"with a home address".hex()}),
    ("UDP-encapsulated transport with a Home Address option", "aes128gcm16", HOA6, HA6,
     hao_udp6(), {"encap": (4500, 4500)},
     "eth:ethertype:ipv6:ipv6.dstopts:udp:udpencap:esp:udp:data",
     {"udp.payload": b"with a home address".hex()}),
    ("UDP-encapsulated transport with a type 2 routing header", "aes256-sha256", HA6, HOA6,
     bytes(IPv6(src=HA6, dst=COA6) / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOA6])
           / UDP(sport=9, dport=40000) / b"to the home address"), {"encap": (4500, 4500)},
     "eth:ethertype:ipv6:ipv6.routing:udp:udpencap:esp:udp:data",
     {"udp.payload": b"to the home address".hex()}),
]


def build_capture(tmp_path):
    frames, outbound, pad_lengths = [], [], []
    for _, suite, src, dst, packet, options, _, _ in CASES:
        out, _, inb = sa_pair(suite, src, dst, **options)
        wire = encapsulate(out, packet, iv_for(out))
        at = locate_esp(wire)[0]
        plaintext = inb.cipher.open(wire[at:at + 8], b"", wire[at + 8:])
        pad_lengths.append(str(plaintext[-2]))
        layer = IPv6(wire) if wire[0] >> 4 == 6 else IP(wire)
        frames.append(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / layer)
        outbound.append(out)
    pcap = tmp_path / "esp.pcap"
    wrpcap(str(pcap), frames)
    keys_dir = tmp_path / "wireshark"
    write_esp_sa(keys_dir, outbound)
    return pcap, keys_dir, pad_lengths


def test_tshark_decrypts_what_we_send(tmp_path, tshark):
    pcap, keys_dir, pad_lengths = build_capture(tmp_path)
    report = check_capture(pcap, keys_dir=keys_dir)      # raises on anything malformed
    assert report.frames == len(CASES)
    assert list(report.frame_protocols) == [case[6] for case in CASES]

    names = sorted({name for case in CASES for name in case[7]})
    rows = tshark_fields(pcap, ["esp.pad_len", *names], keys_dir=keys_dir)
    assert len(rows) == len(CASES)
    for (label, *_, inside), row, pad_len in zip(CASES, rows, pad_lengths):
        assert row["esp.pad_len"] == [pad_len], label
        for name, value in inside.items():
            assert value in row[name], (label, name, row[name])

    # Without the key table tshark sees ESP and nothing inside: the decryption above came
    # from our esp_sa file.
    blind = check_capture(pcap)
    assert all(chain.endswith(":esp") for chain in blind.frame_protocols)


def test_a_row_with_the_care_of_address_does_not_decrypt_a_hao_packet(tmp_path, tshark):
    """Documents tshark's rule (see the module docstring): the HAO's home address is the
    source it looks up; an SA row written with the CoA leaves the packet encrypted."""
    out, _, _ = sa_pair("null-sha256", COA6, HA6)
    wire = encapsulate(out, hao_udp6(), b"")
    pcap = tmp_path / "hao.pcap"
    wrpcap(str(pcap), [Ether() / IPv6(wire)])
    keys_dir = tmp_path / "wireshark"
    write_esp_sa(keys_dir, [out])
    report = check_capture(pcap, keys_dir=keys_dir)
    assert report.frame_protocols == ("eth:ethertype:ipv6:ipv6.dstopts:esp",)
