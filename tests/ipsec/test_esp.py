"""ESP processing (mip6lab.ipsec.esp): RFC 4303 in transport and tunnel mode, RFC 3948 UDP
encapsulation, header placement with Mobile IPv6 headers, and bad input as data."""

from __future__ import annotations

import csv
import ipaddress

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (HAO, ICMPv6EchoReply, ICMPv6EchoRequest, IPv6,
                                IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting,
                                MIP6MH_BU, PadN)
from scapy.packet import Raw
from scapy.utils import rdpcap

from mip6lab.errors import MalformedPacket, RemoteProtocolError
from mip6lab.ipsec.esp import (NAT_T_PORT, EspError, decapsulate, encapsulate, esp_spi,
                               ipv6_esp_offset, locate_esp)
from mip6lab.ipsec.sad import (Lifetime, SaExhausted, SecurityAssociation,
                               SecurityAssociationDatabase)

from ._util import (ALL_SUITES, CN4, CN6, COA6, HA4, HA6, HOA6, MN4, MN6, STRONGSWAN, echo4,
                    echo6, esp_offset, hao_udp6, ipv6_chain, iv_for, sa_pair, udp4, udp6)

ENCAPS = {"esp": None, "udp": (NAT_T_PORT, NAT_T_PORT)}


def protect(out: SecurityAssociation, packet: bytes) -> bytes:
    return encapsulate(out, packet, iv_for(out))


def ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def assert_ip_lengths(packet: bytes) -> None:
    if packet[0] >> 4 == 6:
        assert int.from_bytes(packet[4:6], "big") == len(packet) - 40
    else:
        ihl = (packet[0] & 0x0F) * 4
        assert int.from_bytes(packet[2:4], "big") == len(packet)
        assert ones_complement_sum(packet[:ihl]) == 0xFFFF   # header checksum valid


# -- roundtrips ----------------------------------------------------------------------------


@pytest.mark.parametrize("suite", ALL_SUITES)
@pytest.mark.parametrize("encap", ENCAPS)
@pytest.mark.parametrize("family", [6, 4])
def test_transport_roundtrip(suite, encap, family):
    src, dst, original = (MN6, HA6, udp6()) if family == 6 else (MN4, HA4, udp4())
    out, sad, inb = sa_pair(suite, src, dst, encap=ENCAPS[encap])
    wire = protect(out, original)
    assert_ip_lengths(wire)
    proto = wire[6] if family == 6 else wire[9]
    assert proto == (17 if ENCAPS[encap] else 50)
    # Same addresses on the wire; the upper layer is gone from the clear text.
    assert wire[8:40] == original[8:40] if family == 6 else wire[12:20] == original[12:20]
    assert b"hello over ESP" not in wire or suite == "null-sha256"
    result = decapsulate(sad, wire)
    assert result.packet == original
    assert result.sa is inb
    assert result.next_header == 17
    assert result.udp_encapsulated is bool(ENCAPS[encap])
    assert (inb.packets, inb.replay.top, inb.errors) == (1, 1, {})


@pytest.mark.parametrize("suite", ALL_SUITES)
@pytest.mark.parametrize("encap", ENCAPS)
@pytest.mark.parametrize("outer", [6, 4])
@pytest.mark.parametrize("inner", [6, 4])
def test_tunnel_roundtrip(suite, encap, outer, inner):
    src, dst = (COA6, HA6) if outer == 6 else (MN4, HA4)
    original = echo6(HOA6, CN6) if inner == 6 else echo4(MN4, CN4)
    out, sad, inb = sa_pair(suite, src, dst, mode="tunnel", encap=ENCAPS[encap])
    wire = protect(out, original)
    assert wire[0] >> 4 == outer
    assert_ip_lengths(wire)
    if outer == 6:
        assert (str(ipaddress.IPv6Address(wire[8:24])), str(ipaddress.IPv6Address(wire[24:40]))) \
            == (src, dst)
        assert wire[6] == (17 if ENCAPS[encap] else 50)
    else:
        assert (str(ipaddress.IPv4Address(wire[12:16])), str(ipaddress.IPv4Address(wire[16:20]))) \
            == (src, dst)
        assert wire[9] == (17 if ENCAPS[encap] else 50)
    result = decapsulate(sad, wire)
    assert result.packet == original
    assert result.next_header == (41 if inner == 6 else 4)
    assert result.udp_encapsulated is bool(ENCAPS[encap])


def test_transport_sa_refuses_the_other_family():
    out, _, _ = sa_pair("aes128gcm16", MN6, HA6)
    with pytest.raises(ValueError, match="address family"):
        protect(out, udp4())


# -- header placement (RFC 4303 §3.1.1, RFC 6275 §6.3) -----------------------------------


def _transport(packet: bytes, encap=None, suite="aes128gcm16"):
    out, sad, _ = sa_pair(suite, COA6, HA6, encap=encap)
    wire = protect(out, packet)
    result = decapsulate(sad, wire)
    assert result.packet == packet
    return wire, result


@pytest.mark.parametrize("encap", ENCAPS)
def test_esp_after_hbh_and_hao_but_before_a_final_destopt(encap):
    packet = bytes(IPv6(src=COA6, dst=HA6) / IPv6ExtHdrHopByHop()
                   / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA6)])
                   / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 4)])
                   / UDP(sport=1, dport=2) / b"data")
    wire, result = _transport(packet, ENCAPS[encap])
    esp_or_udp = 17 if ENCAPS[encap] else 50
    assert ipv6_chain(wire) == [0, 60, esp_or_udp]
    # The HAO header travels in the clear, unchanged but for its next header field.
    hao_at = 40 + 8
    assert wire[:hao_at] == packet[:4] + wire[4:6] + packet[6:hao_at]   # all but plen
    assert wire[hao_at] == esp_or_udp and wire[hao_at + 1:hao_at + 24] == \
        packet[hao_at + 1:hao_at + 24]
    assert wire[hao_at + 6] == 0xC9   # PadN(2) to align, then the HAO at 8n+6
    assert ipaddress.IPv6Address(wire[hao_at + 8:hao_at + 24]) == ipaddress.IPv6Address(HOA6)
    assert result.next_header == 60          # the second DestOpt is inside ESP
    assert esp_offset(wire) == 40 + 8 + 24 + (8 if ENCAPS[encap] else 0)


def test_esp_after_routing_header_type_2():
    packet = bytes(IPv6(src=HA6, dst=COA6)
                   / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOA6])
                   / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 4)])
                   / UDP(sport=1, dport=2) / b"data")
    wire, result = _transport(packet)
    assert ipv6_chain(wire) == [43, 50]
    assert result.next_header == 60


def test_destopt_before_routing_stays_in_the_clear():
    """A Destination Options header before a Routing header is for the routing hops."""
    packet = bytes(IPv6(src=HA6, dst=COA6)
                   / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 4)])
                   / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOA6])
                   / UDP(sport=1, dport=2) / b"data")
    wire, result = _transport(packet)
    assert ipv6_chain(wire) == [60, 43, 50]
    assert result.next_header == 17


def test_destopt_without_hao_alone_goes_inside_esp():
    packet = bytes(IPv6(src=COA6, dst=HA6)
                   / IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\x00" * 4)])
                   / UDP(sport=1, dport=2) / b"data")
    wire, result = _transport(packet)
    assert ipv6_chain(wire) == [50]
    assert ipv6_esp_offset(packet) == (40, 6)
    assert result.next_header == 60


def test_binding_update_with_hao():
    """RFC 6275 §6.3 / RFC 3776: IPv6 | DestOpt(HAO) | ESP | MH(BU)."""
    packet = bytes(IPv6(src=COA6, dst=HA6) / IPv6ExtHdrDestOpt(options=[HAO(hoa=HOA6)])
                   / MIP6MH_BU(seq=7, flags="AHK"))
    assert ipv6_esp_offset(packet) == (64, 40)
    wire, result = _transport(packet)
    assert ipv6_chain(wire) == [60, 50]
    assert result.next_header == 135


# -- what goes on the wire -----------------------------------------------------------------


@pytest.mark.parametrize("mode", ["transport", "tunnel"])
def test_udp_encapsulation_over_ipv4_has_checksum_zero(mode):
    out, _, _ = sa_pair("aes128gcm16", MN4, HA4, encap=(4500, 4500), mode=mode)
    wire = protect(out, udp4())
    ihl = (wire[0] & 0x0F) * 4
    udp = wire[ihl:ihl + 8]
    assert int.from_bytes(udp[0:2], "big") == 4500 and int.from_bytes(udp[2:4], "big") == 4500
    assert int.from_bytes(udp[4:6], "big") == len(wire) - ihl
    assert udp[6:8] == b"\x00\x00"          # RFC 3948 §2.1
    assert wire[ihl + 8:ihl + 12] == out.spi_bytes   # ESP starts right after it


@pytest.mark.parametrize("mode", ["transport", "tunnel"])
@pytest.mark.parametrize("size", [0, 1, 20, 101])
def test_udp_encapsulation_over_ipv6_has_a_valid_checksum(mode, size):
    out, sad, _ = sa_pair("null-sha256", MN6, HA6, encap=(61000, 4500), mode=mode)
    wire = protect(out, udp6(payload=b"x" * size))
    udp = wire[40:]
    assert int.from_bytes(udp[4:6], "big") == len(udp)
    assert udp[6:8] != b"\x00\x00"          # RFC 8200 §8.1: mandatory over IPv6
    pseudo = wire[8:40] + len(udp).to_bytes(4, "big") + b"\x00\x00\x00\x11"
    assert ones_complement_sum(pseudo + udp) == 0xFFFF
    # scapy agrees: recomputing the checksum gives the same value.
    parsed = IPv6(wire)
    sent = parsed[UDP].chksum
    del parsed[UDP].chksum
    assert IPv6(bytes(parsed))[UDP].chksum == sent
    assert decapsulate(sad, wire).packet == udp6(payload=b"x" * size)


def _udp_checksum_ok(udp: bytes, src: str, dst: str) -> bool:
    pseudo = (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
              + len(udp).to_bytes(4, "big") + b"\x00\x00\x00\x11")
    return ones_complement_sum(pseudo + udp) == 0xFFFF


def test_udp_encapsulation_after_a_hao_checksums_over_the_home_address():
    """RFC 6275 §11.3.1: with a Home Address option, upper-layer checksums use the home
    address as the source -- the UDP header of ESP-in-UDP included (tshark agrees)."""
    out, sad, _ = sa_pair("aes128gcm16", HOA6, HA6, encap=(4500, 4500))
    packet = hao_udp6(COA6, HOA6, HA6)
    wire = protect(out, packet)
    assert ipv6_chain(wire) == [60, 17]
    udp = wire[40 + 24:]
    assert _udp_checksum_ok(udp, HOA6, HA6)
    assert not _udp_checksum_ok(udp, COA6, HA6)
    assert decapsulate(sad, wire).packet == packet


def test_udp_encapsulation_after_a_type_2_routing_header_checksums_to_the_home_address():
    """RFC 8200 §8.1: with a Routing header the pseudo-header holds the final
    destination, the home address of the type 2 routing header."""
    out, sad, _ = sa_pair("aes128gcm16", HA6, HOA6, encap=(4500, 4500))
    packet = bytes(IPv6(src=HA6, dst=COA6)
                   / IPv6ExtHdrRouting(type=2, segleft=1, addresses=[HOA6])
                   / UDP(sport=9, dport=40000) / b"to the home address")
    wire = protect(out, packet)
    assert ipv6_chain(wire) == [43, 17]
    udp = wire[40 + 24:]
    assert _udp_checksum_ok(udp, HA6, HOA6)
    assert not _udp_checksum_ok(udp, HA6, COA6)
    assert decapsulate(sad, wire).packet == packet


@pytest.mark.parametrize("layer", [UDP(sport=1234, dport=53), TCP(sport=1234, dport=80)])
def test_transport_through_a_nat_gets_valid_inner_checksums(layer):
    """RFC 3948 §3.1.2: in transport mode the receiver fixes the upper-layer checksum,
    which the sender computed over its private address, after a NAT changed it."""
    out, sad, _ = sa_pair("aes128gcm16", MN4, HA4, encap=(4500, 4500))
    original = bytes(IP(src=MN4, dst=HA4) / layer / b"payload")
    wire = bytearray(protect(out, original))
    wire[12:16] = ipaddress.IPv4Address("203.0.113.99").packed     # the NAT's address
    wire[10:12] = b"\x00\x00"
    wire[10:12] = (0xFFFF - ones_complement_sum(bytes(wire[:20]))).to_bytes(2, "big")
    result = decapsulate(sad, bytes(wire)).packet
    parsed = IP(result)
    assert parsed.src == "203.0.113.99" and bytes(parsed.payload.payload) == b"payload"
    sent = parsed.payload.chksum
    del parsed.payload.chksum
    assert IP(bytes(parsed)).payload.chksum == sent     # valid for the new address
    assert result != original


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_padding_is_1_2_3_and_minimal(suite):
    out, _, inb = sa_pair(suite, MN6, HA6)
    spec = inb.cipher.spec
    seen = set()
    for size in range(0, 2 * spec.alignment + 1):
        original = udp6(payload=b"p" * size)
        wire = protect(out, original)
        esp = wire[40:]
        plaintext = inb.cipher.open(esp[:8], b"", esp[8:])
        pad_len, next_header = plaintext[-2], plaintext[-1]
        seen.add(pad_len)
        assert next_header == 17
        assert plaintext[-2 - pad_len:-2] == bytes(range(1, pad_len + 1))
        assert plaintext[:-2 - pad_len] == original[40:]
        assert len(plaintext) % spec.alignment == 0
        assert pad_len < spec.alignment       # no more padding than alignment needs
    assert seen == set(range(spec.alignment))  # every pad length occurred


def test_null_encryption_shows_the_trailer_on_the_wire():
    out, _, _ = sa_pair("null-sha256", MN6, HA6)
    original = udp6(payload=b"abcde")          # UDP 13 bytes: pad 1 to reach 16
    wire = protect(out, original)
    esp = wire[40:]
    assert esp[8:8 + 13] == original[40:]
    assert esp[8 + 13:8 + 16] == bytes((1, 1, 17))   # padding 1, pad length 1, UDP
    assert len(esp) == 8 + 16 + 16


@pytest.mark.parametrize("suite", ALL_SUITES)
def test_sequence_numbers_increase_and_gcm_iv_is_the_sequence_number(suite):
    out, sad, inb = sa_pair(suite, MN6, HA6)
    for expected in range(1, 6):
        wire = protect(out, udp6())
        esp = wire[40:]
        assert int.from_bytes(esp[0:4], "big") == out.spi
        assert int.from_bytes(esp[4:8], "big") == expected
        if inb.cipher.spec.iv_size == 8:      # GCM: RFC 4106 §3.1, a counter is fine
            assert esp[8:16] == expected.to_bytes(8, "big")
        elif inb.cipher.spec.iv_size == 16:   # CBC: the caller's IV
            assert esp[8:24] == iv_for_seq(out, expected - 1)
        decapsulate(sad, wire)
    assert out.seq == 5 and inb.replay.top == 5 and inb.packets == 5


def iv_for_seq(out, seq_before):
    saved, out.seq = out.seq, seq_before
    try:
        return iv_for(out)
    finally:
        out.seq = saved


def test_sequence_number_never_cycles():
    out, _, _ = sa_pair("aes128gcm16", MN6, HA6)
    out.seq = 0xFFFFFFFF
    with pytest.raises(SaExhausted, match="exhausted"):
        protect(out, udp6())
    assert out.seq == 0xFFFFFFFF


def test_esn_roundtrip_across_the_32_bit_boundary():
    for suite in ("aes128gcm16", "aes256-sha256"):
        out, sad, inb = sa_pair(suite, MN6, HA6, esn=True)
        out.seq = 0xFFFFFFFE
        inb.replay.top = 0xFFFFFFFD
        for expected in (0xFFFFFFFF, 1 << 32, 1 << 32 | 1):
            wire = protect(out, udp6())
            assert int.from_bytes(wire[44:48], "big") == expected & 0xFFFFFFFF
            assert decapsulate(sad, wire).packet == udp6()
            assert inb.replay.top == expected


# -- known answers -------------------------------------------------------------------------


def _gcm_vector_packet(name: str):
    """An IPv4 ESP packet made of a draft-mcgrew-gcm-test-01 vector, and its inbound SA."""
    from .test_esp_suites import gcm_vector

    v = gcm_vector(name)
    suite = "aes128gcm16" if len(v["key"]) == 16 else "aes256gcm16"
    esp = v["spi"] + v["seq"] + v["iv"] + v["ciphertext"] + v["tag"]
    wire = bytes(IP(src="192.168.1.2", dst="192.168.1.1", proto=50) / Raw(esp))
    sa = SecurityAssociation(int.from_bytes(v["spi"], "big"), "in", "192.168.1.2",
                             "192.168.1.1", suite, v["key"] + v["salt"],
                             esn=bool(v["esn_high"]))
    if v["esn_high"]:   # put the window just below the vector's 64-bit sequence number
        sa.replay.top = (int.from_bytes(v["esn_high"] + v["seq"], "big") - 1)
    sad = SecurityAssociationDatabase()
    sad.add(sa)
    return v, wire, sad, sa


@pytest.mark.parametrize("name", ["case 2: AES-128", "case 3: AES-256",
                                  "case 1: AES-128, ESN", "case 13: AES-256, ESN"])
def test_decapsulate_published_gcm_vectors(name):
    """The draft's plaintexts end in a trailer (pad length, next header 1); decapsulating
    the vector's bytes checks our AAD (SPI || [ESN high] || seq) and nonce (salt || IV).
    Case 1 also checks the ESN inference across a wrap (low bits 0, high 0x87654321)."""
    v, wire, sad, sa = _gcm_vector_packet(name)
    result = decapsulate(sad, wire)
    pad_len = v["plaintext"][-2]
    assert result.next_header == v["plaintext"][-1] == 1
    assert result.packet[20:] == v["plaintext"][:-2 - pad_len]
    assert result.packet[9] == 1
    assert sa.replay.top == int.from_bytes(v["esn_high"] + v["seq"], "big")


def _strongswan_sas() -> SecurityAssociationDatabase:
    """Inbound SAs from the fixture's esp_sa (tunnel mode, ESP in UDP 4500)."""
    sad = SecurityAssociationDatabase()
    with open(STRONGSWAN / "esp_sa", newline="") as rows:
        for family, src, dst, spi, enc_alg, enc_key, auth_alg, auth_key in csv.reader(rows):
            enc = bytes.fromhex(enc_key[2:])
            integ = bytes.fromhex(auth_key[2:])
            if enc_alg.startswith("AES-GCM"):
                assert auth_alg == "NULL" and len(enc) == 36   # AES-256 key + 4-byte salt
                suite = "aes256gcm16"
            else:
                assert enc_alg.startswith("AES-CBC") and auth_alg.startswith("HMAC-SHA-256")
                suite = "aes256-sha256"
            sad.add(SecurityAssociation(int(spi, 16), "in", src, dst, suite, enc, integ,
                                        mode="tunnel", encap=(4500, 4500)))
    return sad


def test_decrypt_the_strongswan_capture():
    sad = _strongswan_sas()
    assert len(sad) == 6
    decrypted, not_esp = [], 0
    for frame in rdpcap(str(STRONGSWAN / "pair.pcapng")):
        ip = frame.getlayer(IPv6) or frame.getlayer(IP)
        if ip is None or UDP not in frame or frame[UDP].dport != 4500:
            continue
        packet = bytes(ip)
        try:
            locate_esp(packet)
        except EspError as exc:
            assert "non-ESP marker" in exc.reason      # IKE on port 4500
            not_esp += 1
            continue
        result = decapsulate(sad, packet)
        assert result.udp_encapsulated and result.sa.mode == "tunnel"
        decrypted.append((result.sa.spi, result.packet))
    assert not_esp == 12
    assert len(decrypted) == 18
    seen = {}
    for spi, inner in decrypted:
        if inner[0] >> 4 == 6:
            p = IPv6(inner)
            kind = "request" if ICMPv6EchoRequest in p else \
                "reply" if ICMPv6EchoReply in p else None
            seen.setdefault(spi, []).append((p.src, p.dst, kind, p.payload.seq))
        else:
            p = IP(inner)
            assert ICMP in p
            kind = {8: "request", 0: "reply"}.get(p[ICMP].type)
            seen.setdefault(spi, []).append((p.src, p.dst, kind, p[ICMP].seq))
    f1, f2, hoa = "2001:db8:f1::1", "2001:db8:f2::1", "2001:db8:aaaa::100"
    v4a, v4b = "203.0.113.1", "203.0.113.2"
    assert seen == {
        0xD4F3FB71: [(f1, f2, "request", n) for n in (1, 2, 3)],
        0x9E55B82B: [(f2, f1, "reply", n) for n in (1, 2, 3)],
        0xFE7C3DFA: [(v4a, v4b, "request", n) for n in (1, 2, 3)],
        0xD298C50E: [(v4b, v4a, "reply", n) for n in (1, 2, 3)],
        0xA5293811: [(hoa, f2, "request", n) for n in (1, 2, 3)],
        0xFD7C019D: [(f2, hoa, "reply", n) for n in (1, 2, 3)],
    }
    for sa in sad:
        assert (sa.replay.top, sa.packets, sa.errors) == (3, 3, {})


# -- bad input is data ---------------------------------------------------------------------


@pytest.fixture(params=["aes128gcm16", "aes256-sha256", "null-sha256"])
def link(request):
    """A transport-mode IPv6 SA pair, with a check that it still works."""
    out, sad, inb = sa_pair(request.param, MN6, HA6)

    class Link:
        suite = request.param

        def __init__(self):
            self.out, self.sad, self.inb = out, sad, inb

        def send(self, payload=b"hello over ESP"):
            return protect(out, udp6(payload=payload))

        def still_works(self):
            top, packets = inb.replay.top, inb.packets
            result = decapsulate(sad, self.send(b"fresh"))
            assert result.packet == udp6(payload=b"fresh")
            assert inb.replay.top == out.seq > top and inb.packets == packets + 1

        def craft(self, plaintext: bytes, seq: int | None = None) -> bytes:
            """An ESP packet whose (already padded) plaintext we choose, sealed with the
            SA's suite: a peer that builds a bad trailer, with valid keys."""
            seq = seq if seq is not None else out.seq + 1
            out.seq = max(out.seq, seq)
            header = out.spi_bytes + seq.to_bytes(4, "big")
            iv = seq.to_bytes(8, "big") if out.cipher.spec.iv_size == 8 else \
                bytes(out.cipher.spec.iv_size)
            body = out.cipher.seal(header, b"", iv, plaintext)
            return bytes(IPv6(src=MN6, dst=HA6, nh=50) / Raw(header + body))

        def trailer(self, payload: bytes, padding: bytes, pad_len: int, nh: int) -> bytes:
            """payload || padding || pad_len || nh, lengthened at the front to whole blocks."""
            align = out.cipher.spec.alignment
            filler = b"u" * ((-(len(payload) + len(padding) + 2)) % align)
            return filler + payload + padding + bytes((pad_len, nh))

    return Link()


def refused(link, packet, reason, kind=None):
    """Decapsulating ``packet`` raises EspError with ``reason``, counted under ``kind``
    (``kind=None``: the packet names no SA of ours, so no SA counts it)."""
    errors = dict(link.inb.errors)
    top, bitmap = link.inb.replay.top, link.inb.replay.bitmap
    with pytest.raises(EspError, match=reason) as info:
        decapsulate(link.sad, packet)
    assert isinstance(info.value, RemoteProtocolError)
    if kind is not None:
        assert info.value.kind == kind
        errors[kind] = errors.get(kind, 0) + 1
        assert link.inb.errors == errors
    else:
        assert link.inb.errors == errors
    return info.value, (top, bitmap)


def test_truncated_esp(link):
    wire = link.send()
    refused(link, wire[:40 + 10], r"ESP packet truncated$")   # no SPI to count it on
    exc, _ = refused(link, wire[:40 + 8 + 10], "shorter than IV, trailer and ICV",
                     "ESP packet truncated")
    link.still_works()


def test_not_whole_blocks(link):
    wire = link.send()
    refused(link, wire[:-1], "not a whole number of blocks",
            "ESP payload is not a whole number of blocks")
    link.still_works()


def test_wrong_icv_changes_nothing(link):
    wire = link.send()
    for where in (-1, -16, 48):   # ICV last byte, ICV first byte, IV/ciphertext
        forged = bytearray(wire)
        forged[where] ^= 0x80
        _, (top, bitmap) = refused(link, bytes(forged), "integrity check failed",
                                   "integrity check failed")
        assert (link.inb.replay.top, link.inb.replay.bitmap) == (top, bitmap)
    assert link.inb.errors["integrity check failed"] == 3
    # The genuine packet with that sequence number is still welcome: forgeries did not
    # mark it as seen.
    assert decapsulate(link.sad, wire).packet == udp6()
    link.still_works()


def test_unknown_spi(link):
    wire = bytearray(link.send())
    wire[40:44] = (0xDEADBEEF).to_bytes(4, "big")
    with pytest.raises(EspError, match="no SA for SPI 0xdeadbeef"):
        decapsulate(link.sad, bytes(wire))
    assert link.inb.errors == {}
    link.still_works()


def test_replayed(link):
    wire = link.send()
    decapsulate(link.sad, wire)
    refused(link, wire, r"already received \(replay\)", "replay")
    refused(link, wire, r"already received \(replay\)", "replay")
    assert link.inb.errors == {"replay": 2}
    link.still_works()


def test_too_old_and_out_of_order(link):
    packets = [link.send() for _ in range(70)]
    decapsulate(link.sad, packets[69])                     # seq 70: window 7..70
    refused(link, packets[0], "left of the window", "left of the window")
    refused(link, packets[5], "left of the window", "left of the window")
    assert decapsulate(link.sad, packets[6]).packet == udp6()    # seq 7: the oldest
    assert decapsulate(link.sad, packets[40]).packet == udp6()   # out of order, in window
    refused(link, packets[40], "replay", "replay")
    assert link.inb.errors == {"left of the window": 2, "replay": 1}
    link.still_works()


def test_bad_pad_length(link):
    plaintext = link.trailer(b"", b"", 250, 17)
    refused(link, link.craft(plaintext), "pad length 250 exceeds the payload",
            "bad pad length")
    link.still_works()


def test_bad_padding_bytes(link):
    plaintext = link.trailer(b"\x00\x01\x00\x08\x00\x08\x00\x00", b"\x00\x00\x00", 3, 17)
    refused(link, link.craft(plaintext), r"padding bytes are not 1, 2, 3",
            "padding bytes are not 1, 2, 3 ...")
    plaintext = link.trailer(b"\x00\x01\x00\x08\x00\x08\x00\x00", b"\x01\x03", 2, 17)
    refused(link, link.craft(plaintext), r"padding bytes are not 1, 2, 3",
            "padding bytes are not 1, 2, 3 ...")
    assert link.inb.errors == {"padding bytes are not 1, 2, 3 ...": 2}
    link.still_works()


def test_dummy_packet_next_header_59(link):
    refused(link, link.craft(link.trailer(b"dummy", b"", 0, 59)), r"dummy packet",
            "dummy packet")
    link.still_works()


@pytest.mark.parametrize("nh", [41, 4, 50])
def test_ip_or_esp_next_header_in_transport_mode(link, nh):
    refused(link, link.craft(link.trailer(bytes(IPv6(src=CN6, dst=HA6)), b"", 0, nh)),
            f"next header {nh} in transport mode", "bad next header")
    link.still_works()


def test_larval_and_dead_sas_refuse():
    out, sad, inb = sa_pair("aes128gcm16", MN6, HA6)
    wire = protect(out, udp6())
    larval = SecurityAssociation(inb.spi, "in", MN6, HA6, "aes128gcm16", b"", state="larval")
    sad.replace(larval)
    with pytest.raises(EspError, match="larval"):
        decapsulate(sad, wire)
    assert larval.errors == {"larval SA": 1}
    sad.replace(inb)
    inb.lifetime = Lifetime(hard_bytes=1)
    assert decapsulate(sad, wire).packet == udp6()
    assert inb.lifetime_reached(0) == "hard"
    with pytest.raises(EspError, match="hard lifetime"):
        decapsulate(sad, protect(out, udp6()))
    assert inb.errors == {"hard lifetime": 1}


@pytest.mark.parametrize("suite", ["aes128gcm16", "aes128-sha256"])
def test_tunnel_with_wrong_next_header(suite):
    out, sad, inb = sa_pair(suite, COA6, HA6, mode="tunnel")
    align = out.cipher.spec.alignment

    def crafted(inner: bytes, nh: int, seq: int) -> bytes:
        pad = (-(len(inner) + 2)) % align
        plaintext = inner + bytes(range(1, pad + 1)) + bytes((pad, nh))
        header = out.spi_bytes + seq.to_bytes(4, "big")
        iv = seq.to_bytes(8, "big") if out.cipher.spec.iv_size == 8 else bytes(16)
        body = out.cipher.seal(header, b"", iv, plaintext)
        return bytes(IPv6(src=COA6, dst=HA6, nh=50) / Raw(header + body))

    with pytest.raises(EspError, match="next header 17 is not the inner IP packet"):
        decapsulate(sad, crafted(echo6(HOA6, CN6), 17, 1))
    with pytest.raises(EspError, match="next header 4 is not the inner IP packet"):
        decapsulate(sad, crafted(echo6(HOA6, CN6), 4, 2))   # says IPv4, carries IPv6
    with pytest.raises(EspError, match="inner packet truncated"):
        decapsulate(sad, crafted(b"\x45" + bytes(10), 4, 3))
    assert inb.errors == {"bad next header": 2, "inner packet truncated": 1}
    out.seq = 3
    assert decapsulate(sad, protect(out, echo6(HOA6, CN6))).packet == echo6(HOA6, CN6)


def test_udp_encapsulated_packet_on_an_sa_without_encapsulation():
    out, sad, inb = sa_pair("aes128gcm16", MN4, HA4)           # inbound: plain ESP
    encapsulating = SecurityAssociation(out.spi, "out", MN4, HA4, out.suite, out.enc_key,
                                        encap=(4500, 4500))
    with pytest.raises(EspError, match="UDP-encapsulated ESP on an SA without") as info:
        decapsulate(sad, protect(encapsulating, udp4()))
    assert inb.errors == {info.value.kind: 1}
    assert decapsulate(sad, protect(out, udp4())).packet == udp4()


def test_plain_esp_on_an_sa_with_udp_encapsulation():
    out, sad, inb = sa_pair("aes128gcm16", MN4, HA4, encap=(4500, 4500))
    plain = SecurityAssociation(out.spi, "out", MN4, HA4, out.suite, out.enc_key)
    with pytest.raises(EspError, match="UDP encapsulation does not match the SA") as info:
        decapsulate(sad, protect(plain, udp4()))
    assert inb.errors == {info.value.kind: 1}
    assert decapsulate(sad, protect(out, udp4())).packet == udp4()


@pytest.mark.parametrize("family", [4, 6])
def test_non_esp_marker_and_nat_keepalive_are_recognised(family):
    ip = IP(src=MN4, dst=HA4) if family == 4 else IPv6(src=MN6, dst=HA6)
    ike = bytes(ip / UDP(sport=4500, dport=4500) / (b"\x00\x00\x00\x00" + bytes(28)))
    keepalive = bytes(ip / UDP(sport=4500, dport=4500) / b"\xff")
    _, sad, inb = sa_pair("aes128gcm16", MN6, HA6)
    for packet, reason in ((ike, "non-ESP marker"), (keepalive, "NAT-keepalive")):
        with pytest.raises(EspError, match=reason):
            locate_esp(packet)
        with pytest.raises(EspError, match=reason):
            decapsulate(sad, packet)
        assert esp_spi(packet) is None
    assert inb.errors == {}


def test_not_esp_at_all():
    _, sad, _ = sa_pair("aes128gcm16", MN6, HA6)
    with pytest.raises(EspError, match="next header 6 is not ESP"):
        locate_esp(b"\x45" + bytes(8) + b"\x06" + bytes(30))
    for junk in (b"", b"\x60", b"\x45\x00\x00", b"\x10" * 50, b"\x42" + bytes(30)):
        with pytest.raises((EspError, MalformedPacket)):
            decapsulate(sad, junk)


def test_esp_spi_reads_direct_and_udp_encapsulated():
    out, _, _ = sa_pair("aes128gcm16", MN4, HA4, encap=(4500, 4500), spi=0xABCDEF)
    assert esp_spi(protect(out, udp4())) == 0xABCDEF
    out6, _, _ = sa_pair("aes128gcm16", COA6, HA6, spi=0x1234567)
    assert esp_spi(protect(out6, hao_udp6())) == 0x1234567    # found after the HAO
    assert esp_spi(udp6()) is None


def test_tfc_padding_after_a_tunnelled_packet_is_removed():
    """RFC 4303 §2.7: the receiver drops what follows the inner packet's own length."""
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6

    from mip6lab.ipsec.esp import decapsulate, encapsulate
    from mip6lab.ipsec.sad import SecurityAssociation, SecurityAssociationDatabase

    key = bytes(range(20))
    out = SecurityAssociation(0x900, "out", "2001:db8::1", "2001:db8::2", "aes128gcm16", key,
                              mode="tunnel")
    sad = SecurityAssociationDatabase()
    sad.add(SecurityAssociation(0x900, "in", "2001:db8::1", "2001:db8::2", "aes128gcm16",
                                key, mode="tunnel"))
    inner = bytes(IPv6(src="2001:db8:10::1", dst="2001:db8:20::1") / ICMPv6EchoRequest())
    assert decapsulate(sad, encapsulate(out, inner + bytes(32))).packet == inner


def test_non_initial_fragments_have_opaque_ports():
    """RFC 4301 §4.4.1.1: a later fragment carries no ports; a port selector cannot match."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment

    from mip6lab.ipsec.selectors import packet_selectors

    first = bytes(IP(src="192.0.2.1", dst="192.0.2.2", flags="MF") / UDP(sport=1, dport=2))
    later = bytes(IP(src="192.0.2.1", dst="192.0.2.2", frag=10, proto=17) / b"\x00\x01\x00\x02")
    assert packet_selectors(first).dport == 2
    assert packet_selectors(later).dport is None and packet_selectors(later).protocol == 17
    later6 = bytes(IPv6(src="2001:db8::1", dst="2001:db8::2")
                   / IPv6ExtHdrFragment(offset=3, nh=17) / b"\x00\x01\x00\x02")
    assert packet_selectors(later6).sport is None
