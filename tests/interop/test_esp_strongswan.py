"""Our ESP against strongSwan's own user-space ESP (charon's kernel-libipsec backend).

Two charons in two namespaces negotiate a CHILD SA in tunnel mode; kernel-libipsec fakes a
NAT, so ESP travels in UDP 4500 (RFC 3948) whatever the outer family. For each proposal
(AES-GCM-256 over IPv6, AES-CBC-256 + HMAC-SHA-256-128 over IPv4) we check, with nothing
but the keys charon logged (``chd = 4``):

* strongSwan → ours: a ping between the inner addresses, captured on the veth, is
  decapsulated by :func:`mip6lab.ipsec.esp.decapsulate` — echo requests and replies with
  the right inner addresses and data, sequence numbers 1, 2, 3 accepted in order by our
  replay window, and a captured packet played again refused as a replay;
* ours → strongSwan: an ICMP echo request made with scapy and sealed by
  :func:`mip6lab.ipsec.esp.encapsulate` with the initiator's keys, put on the wire from
  the initiator's UDP 4500 (an AF_PACKET frame: charon owns the UDP socket), is taken by
  the responder — its CHILD SA counts one packet in and it answers through the tunnel
  with an echo reply that our inbound SA decrypts; a copy with one byte flipped and a
  replay of the genuine packet are both refused (counters unchanged, no reply, and
  charon's log names the ICV and the sequence number check).

Trap: over IPv6 the UDP checksum covers the ESP bytes, so a tampered packet must get a
fresh checksum, or the responder's kernel drops it before charon ever checks its ICV.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.utils import RawPcapReader, checksum

from mip6lab.ipsec.esp import NAT_T_PORT, EspError, decapsulate, encapsulate
from mip6lab.ipsec.sad import SecurityAssociation, SecurityAssociationDatabase
from mip6lab.testing import strongswan as sw
from mip6lab.testing.strongswan import (Charon, Child, Connection, SharedKey, SwanctlConfig,
                                        parse_proposal)

pytestmark = pytest.mark.netns

PSK = "mip6lab esp interop #42"
INITIATOR_ID, RESPONDER_ID = "mn@mip6lab.example", "ha.mip6lab.example"
PING_PATTERN = "6d6970366c6162"  # "mip6lab": iputils ping fills the echo data with it
ICMP_ID = 0x6D36                   # the echo identifier of the packets we make ourselves


@dataclass(frozen=True)
class Case:
    """One CHILD SA to test: outer and inner addresses (initiator, responder), proposals."""

    name: str
    outer: tuple[str, str]
    inner: tuple[str, str]
    ike_proposals: str
    esp_proposals: str
    suite: str            # our suite keyword
    proposal: str         # as charon logs the selected ESP proposal

    @property
    def family(self) -> int:
        return ipaddress.ip_address(self.outer[0]).version

    @property
    def inner_prefix(self) -> int:
        return 128 if ipaddress.ip_address(self.inner[0]).version == 6 else 32


CASES = [
    Case("gcm-ipv6", ("2001:db8:1::1", "2001:db8:1::2"), ("2001:db8:f1::1", "2001:db8:f2::1"),
         "aes256gcm16-prfsha256-curve25519", "aes256gcm16", "aes256gcm16",
         "ESP:AES_GCM_16_256/NO_EXT_SEQ"),
    Case("cbc-sha256-ipv4", ("192.0.2.1", "192.0.2.2"), ("198.51.100.1", "203.0.113.1"),
         "aes256-sha256-curve25519", "aes256-sha256", "aes256-sha256",
         "ESP:AES_CBC_256/HMAC_SHA2_256_128/NO_EXT_SEQ"),
]


# =========================================================================== helpers
def _prereqs() -> None:
    from mip6lab.testing.prereq import missing, require_netns, require_tool

    require_netns("two charons in two namespaces")
    require_tool(sw.find_charon() or "charon", "the strongSwan IKE daemon")
    require_tool("swanctl", "to drive charon over vici")
    require_tool("tcpdump", "to capture the ESP on the veth")
    require_tool("ping", "to send traffic through strongSwan's tunnel")
    if lacking := sw.missing_plugins():
        missing("strongSwan plugins missing: " + ", ".join(
            f"{p} (Debian package {pkg})" for p, pkg in sorted(lacking.items())))


def suite_of(proposal: str) -> str:
    """Our suite keyword for an ESP proposal as charon prints it."""
    p = parse_proposal(proposal)
    assert not p.esn, f"extended sequence numbers not expected here: {proposal}"
    if p.encryption == "AES_GCM_16" and p.integrity is None:
        return f"aes{p.key_size}gcm16"
    if p.encryption == "AES_CBC" and p.integrity == "HMAC_SHA2_256_128":
        return f"aes{p.key_size}-sha256"
    raise AssertionError(f"no suite of ours for {proposal}")


def our_sa(esp: sw.EspSa, direction: str) -> SecurityAssociation:
    """One direction of charon's CHILD SA as our SecurityAssociation (tunnel, UDP 4500)."""
    return SecurityAssociation(esp.spi, direction, esp.src, esp.dst, suite_of(esp.proposal),
                               esp.encryption_key, esp.integrity_key, mode="tunnel",
                               encap=(NAT_T_PORT, NAT_T_PORT))


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class Capture:
    """tcpdump on one interface of a namespace, UDP 4500 only, packets written at once."""

    def __init__(self, netns, ns, path: Path, ifname: str = "eth0") -> None:
        self.path = path
        log = path.with_suffix(".tcpdump.log")
        with open(log, "w") as err:
            self.process = netns.spawn(
                ns, ["tcpdump", "-i", ifname, "-n", "-U", "--immediate-mode", "-w", str(path),
                     "udp port 4500"], stdout=subprocess.DEVNULL, stderr=err)
        wait_for("tcpdump to listen",
                 lambda: self.process.poll() is not None or "listening on" in log.read_text())
        assert self.process.poll() is None, log.read_text()

    def stop(self) -> list[bytes]:
        """Stop tcpdump (by its PID) and return the IP packets it captured, in order."""
        time.sleep(0.1)  # the last packet may still be on its way to tcpdump's buffer
        self.process.terminate()
        self.process.wait(timeout=5)
        return ip_packets(self.path)


def ip_packets(path: Path) -> list[bytes]:
    """The IP packets of an Ethernet pcap, each cut to its IP length (no frame padding)."""
    packets = []
    reader = RawPcapReader(str(path))
    try:
        assert reader.linktype == 1, f"link type {reader.linktype}, not Ethernet"
        for frame, _meta in reader:
            ethertype, ip = int.from_bytes(frame[12:14], "big"), frame[14:]
            if ethertype == 0x86DD:
                packets.append(ip[:40 + int.from_bytes(ip[4:6], "big")])
            elif ethertype == 0x0800:
                packets.append(ip[:int.from_bytes(ip[2:4], "big")])
    finally:
        reader.close()
    return packets


def esp_in_udp(packets: list[bytes]) -> list[bytes]:
    """The packets that carry ESP in UDP 4500: not IKE (non-ESP marker), not keepalives."""
    found = []
    for packet in packets:
        offset = 40 if packet[0] >> 4 == 6 else (packet[0] & 0x0F) * 4
        proto = packet[6] if packet[0] >> 4 == 6 else packet[9]
        assert proto == 17, "the capture filter lets only UDP through"
        ports = packet[offset:offset + 2], packet[offset + 2:offset + 4]
        assert ports == (NAT_T_PORT.to_bytes(2, "big"),) * 2, "ESP in UDP from 4500 to 4500"
        body = packet[offset + 8:]
        if body == b"\xff" or body[:4] == b"\x00\x00\x00\x00":
            continue
        found.append(packet)
    return found


def esp_header(packet: bytes) -> tuple[int, int]:
    """(SPI, sequence number) of an ESP-in-UDP packet without IP options/extensions."""
    at = (40 if packet[0] >> 4 == 6 else (packet[0] & 0x0F) * 4) + 8
    return int.from_bytes(packet[at:at + 4], "big"), int.from_bytes(packet[at + 4:at + 8], "big")


def outer_addresses(packet: bytes) -> tuple[str, str]:
    if packet[0] >> 4 == 6:
        return (str(ipaddress.IPv6Address(packet[8:24])),
                str(ipaddress.IPv6Address(packet[24:40])))
    return str(ipaddress.IPv4Address(packet[12:16])), str(ipaddress.IPv4Address(packet[16:20]))


def echo(inner: bytes) -> tuple[str, str, str, int, int, bytes]:
    """(src, dst, "request"/"reply", id, seq, data) of an inner ICMP(v6) echo packet."""
    if inner[0] >> 4 == 6:
        packet = IPv6(inner)
        icmp = packet.getlayer(ICMPv6EchoRequest) or packet.getlayer(ICMPv6EchoReply)
        assert icmp is not None, packet.summary()
        # (scapy's ICMPv6EchoReply is a subclass of ICMPv6EchoRequest: ask the type)
        kind = {128: "request", 129: "reply"}[icmp.type]
        return packet.src, packet.dst, kind, icmp.id, icmp.seq, bytes(icmp.data)
    packet = IP(inner)
    icmp = packet.getlayer(ICMP)
    assert icmp is not None and icmp.type in (0, 8), packet.summary()
    return (packet.src, packet.dst, "request" if icmp.type == 8 else "reply", icmp.id,
            icmp.seq, bytes(icmp.payload))


def echo_request(case: Case, seq: int, data: bytes) -> bytes:
    """An echo request from the initiator's inner address to the responder's, by scapy."""
    src, dst = case.inner
    if case.inner_prefix == 128:
        return bytes(IPv6(src=src, dst=dst, hlim=64)
                     / ICMPv6EchoRequest(id=ICMP_ID, seq=seq, data=data))
    return bytes(IP(src=src, dst=dst, ttl=64, id=seq) / ICMP(type=8, id=ICMP_ID, seq=seq) / data)


def with_udp_checksum(packet: bytes) -> bytes:
    """``packet`` (ESP in UDP, no extension headers) with its UDP checksum made right again.

    Over IPv6 the checksum is mandatory and covers the ESP bytes: a tampered packet whose
    checksum is left stale is dropped by the receiver's kernel (Udp6InCsumErrors) and
    never tests the peer's ICV check. Over IPv4 it stays zero (RFC 3948 §2.1).
    """
    if packet[0] >> 4 != 6:
        return packet
    udp = bytearray(packet[40:])
    udp[6:8] = b"\x00\x00"
    pseudo = packet[8:40] + len(udp).to_bytes(4, "big") + b"\x00\x00\x00\x11"
    udp[6:8] = (checksum(pseudo + bytes(udp)) or 0xFFFF).to_bytes(2, "big")
    return packet[:40] + bytes(udp)


def udp_checksum_errors(netns, ns) -> int:
    """UDP datagrams a namespace dropped for a bad checksum, IPv4 and IPv6 MIBs together.

    (Both: here a stale checksum on IPv6 ESP-in-UDP shows up as ``Udp: InCsumErrors`` in
    /proc/net/snmp, not as ``Udp6InCsumErrors``.)
    """
    snmp6 = netns.run(ns, "cat", "/proc/net/snmp6").stdout
    v6 = int(dict(line.split() for line in snmp6.splitlines())["Udp6InCsumErrors"])
    names, values = [line.split()[1:] for line in
                     netns.run(ns, "cat", "/proc/net/snmp").stdout.splitlines()
                     if line.startswith("Udp:")]
    return v6 + int(dict(zip(names, values))["InCsumErrors"])


def mac_address(netns, ns, ifname: str = "eth0") -> bytes:
    (link,) = json.loads(netns.run(ns, "ip", "-j", "link", "show", "dev", ifname).stdout)
    return bytes.fromhex(link["address"].replace(":", ""))


# Runs inside the initiator's namespace: one AF_PACKET socket, the frames as hex arguments.
_SEND_FRAMES = """\
import socket, sys
with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as s:
    s.bind((sys.argv[1], 0))
    for frame in sys.argv[2:]:
        s.send(bytes.fromhex(frame))
"""


@dataclass
class Pair:
    """A running charon pair with one established CHILD SA and the keys both logged."""

    case: Case
    netns: object
    initiator_ns: object
    responder_ns: object
    initiator: Charon
    responder: Charon
    keys: sw.ChildSaKeys            # from the initiator's log
    directory: Path

    def inject(self, *ip_packets: bytes) -> None:
        """Put IP packets on the initiator's veth as if its stack had sent them."""
        ethertype = b"\x86\xdd" if self.case.family == 6 else b"\x08\x00"
        header = (mac_address(self.netns, self.responder_ns)
                  + mac_address(self.netns, self.initiator_ns) + ethertype)
        self.netns.run(self.initiator_ns, sys.executable, "-c", _SEND_FRAMES, "eth0",
                       *((header + packet).hex() for packet in ip_packets))

    def responder_counters(self) -> dict[str, int]:
        (sa,) = self.responder.list_sas()
        child = sa.child("esp")
        assert child.state == "INSTALLED"
        return {key: int(child.raw[key]) for key in ("packets-in", "bytes-in", "packets-out",
                                                     "bytes-out")}

    def capture(self, name: str) -> Capture:
        return Capture(self.netns, self.initiator_ns, self.directory / f"{name}.pcap")


def _configs(case: Case) -> tuple[SwanctlConfig, SwanctlConfig]:
    prefix = case.inner_prefix
    ini_ts, res_ts = (f"{a}/{prefix}" for a in case.inner)
    secrets = [SharedKey(PSK, ids=[INITIATOR_ID, RESPONDER_ID])]
    initiator = SwanctlConfig(connections=[Connection(
        "ike", local_addrs=case.outer[0], remote_addrs=case.outer[1],
        proposals=case.ike_proposals, local_id=INITIATOR_ID, remote_id=RESPONDER_ID,
        mobike=False, children=[Child("esp", esp_proposals=case.esp_proposals,
                                      local_ts=ini_ts, remote_ts=res_ts, mode="tunnel",
                                      start_action="none")])], secrets=secrets)
    responder = SwanctlConfig(connections=[Connection(
        "ike", local_addrs=case.outer[1], remote_addrs=case.outer[0],
        proposals=case.ike_proposals, local_id=RESPONDER_ID, remote_id=INITIATOR_ID,
        mobike=False, children=[Child("esp", esp_proposals=case.esp_proposals,
                                      local_ts=res_ts, remote_ts=ini_ts, mode="tunnel")])],
        secrets=secrets)
    return initiator, responder


@pytest.fixture(scope="module", params=CASES, ids=[c.name for c in CASES])
def pair(request, tmp_path_factory):
    from mip6lab.net.netns import NetnsSet, list_namespaces

    _prereqs()
    case: Case = request.param
    directory = tmp_path_factory.mktemp(case.name)
    ini_conf, res_conf = _configs(case)
    with NetnsSet() as s:
        ini, res = s.add_namespace("ini"), s.add_namespace("res")
        s.add_veth(ini, "eth0", res, "eth0")
        prefix = 64 if case.family == 6 else 24
        s.add_address(ini, "eth0", f"{case.outer[0]}/{prefix}")
        s.add_address(res, "eth0", f"{case.outer[1]}/{prefix}")
        s.add_address(ini, "lo", f"{case.inner[0]}/{case.inner_prefix}")
        s.add_address(res, "lo", f"{case.inner[1]}/{case.inner_prefix}")
        names = s.names
        with Charon(s, res, directory / "res", swanctl=res_conf) as responder, \
                Charon(s, ini, directory / "ini", swanctl=ini_conf) as initiator:
            responder.load()
            initiator.load()
            initiator.initiate("esp", timeout=10)
            mine = initiator.wait_established(5, ike="ike", child="esp").child("esp")
            theirs = responder.wait_established(5, ike="ike", child="esp").child("esp")
            assert mine.mode == "TUNNEL" and mine.encap and theirs.encap  # libipsec: UDP
            assert mine.proposal == theirs.proposal == case.proposal
            keys = initiator.keys().child_sa("esp")
            assert (keys.spi_in, keys.spi_out) == (mine.spi_in, mine.spi_out)
            # both logs hold the same two SAs (initiator → responder, responder → initiator)
            assert keys.esp_sas() == responder.keys().child_sa("esp").esp_sas()
            yield Pair(case, s, ini, res, initiator, responder, keys, directory)
        assert not initiator.running and not responder.running
    assert not set(names) & set(list_namespaces())


# =========================================================================== the tests
def test_strongswan_to_ours(pair: Pair):
    """charon seals a ping both ways; our decapsulate opens every packet, in order."""
    case, keys = pair.case, pair.keys
    to_responder, to_initiator = keys.esp_sas()
    assert to_responder.proposal == case.proposal
    sad = SecurityAssociationDatabase()
    inbound = {sa.spi: sa for sa in (our_sa(to_responder, "in"), our_sa(to_initiator, "in"))}
    for sa in inbound.values():
        assert sa.suite == case.suite
        sad.add(sa)

    capture = pair.capture("strongswan-to-ours")
    family = "-6" if case.inner_prefix == 128 else "-4"
    ping = pair.netns.run(pair.initiator_ns, "ping", family, "-n", "-c", "3", "-i", "0.2",
                          "-W", "2", "-p", PING_PATTERN, "-I", case.inner[0], case.inner[1],
                          check=False)
    packets = esp_in_udp(capture.stop())
    assert ping.returncode == 0 and " 0% packet loss" in ping.stdout, ping.stdout

    assert len(packets) == 6, [esp_header(p) for p in packets]
    seen: dict[int, list[int]] = {spi: [] for spi in inbound}
    echoes = []
    for packet in packets:
        spi, seq = esp_header(packet)
        sa = inbound[spi]
        assert outer_addresses(packet) == (str(sa.src), str(sa.dst))
        result = decapsulate(sad, packet)
        assert result.sa is sa and result.udp_encapsulated
        assert result.next_header == (41 if case.inner_prefix == 128 else 4)
        assert sa.replay.top == seq   # the window moved to this packet: accepted in order
        seen[spi].append(seq)
        echoes.append((spi, echo(result.packet)))

    assert seen == {to_responder.spi: [1, 2, 3], to_initiator.spi: [1, 2, 3]}
    for sa in inbound.values():
        assert (sa.packets, sa.errors) == (3, {})
    requests = [e for spi, e in echoes if spi == to_responder.spi]
    replies = [e for spi, e in echoes if spi == to_initiator.spi]
    pattern = bytes.fromhex(PING_PATTERN)
    ident = requests[0][3]
    for number, (request, reply) in enumerate(zip(requests, replies), start=1):
        assert request[:5] == (*case.inner, "request", ident, number)
        assert reply[:5] == (case.inner[1], case.inner[0], "reply", ident, number)
        data = request[5]
        assert reply[5] == data                 # the echo came back unchanged
        assert len(data) == 56 and pattern * 3 in data   # ping -p filled it

    # the window refuses the first packet played again, and counts it
    with pytest.raises(EspError) as replayed:
        decapsulate(sad, packets[0])
    assert replayed.value.kind == "replay"
    assert inbound[to_responder.spi].errors == {"replay": 1}


def test_ours_to_strongswan(pair: Pair):
    """Our encapsulate seals echo requests that charon takes; a forgery and a replay it
    refuses; its echo replies our decapsulate opens."""
    case, keys = pair.case, pair.keys
    to_responder, to_initiator = keys.esp_sas()
    out = our_sa(to_responder, "out")
    out.seq = 1000  # right of anything charon's window has seen
    sad = SecurityAssociationDatabase()
    back = our_sa(to_initiator, "in")
    sad.add(back)

    def seal(seq: int) -> bytes:
        return encapsulate(out, echo_request(case, seq, f"ours->strongSwan #{seq}".encode()),
                           os.urandom(out.cipher.spec.iv_size))

    genuine = seal(1)
    assert with_udp_checksum(genuine) == genuine   # our UDP checksum over IPv6 is right
    forged = bytearray(seal(2))
    forged[-20] ^= 0x01          # one byte of the ciphertext, just before the ICV
    forged = with_udp_checksum(bytes(forged))      # ... so that UDP delivers it to charon
    last = seal(3)
    assert [esp_header(p)[1] for p in (genuine, forged, last)] == [1001, 1002, 1003]

    before = pair.responder_counters()
    csum_errors = udp_checksum_errors(pair.netns, pair.responder_ns)
    log_before = pair.responder.log_text()
    capture = pair.capture("ours-to-strongswan")
    try:
        pair.inject(genuine)
        wait_for("the responder to count our packet and answer",
                 lambda: (c := pair.responder_counters())["packets-in"] == before["packets-in"] + 1
                 and c["packets-out"] == before["packets-out"] + 1)
        one = pair.responder_counters()
        # the forgery, then the genuine packet again (a replay), then a new genuine one:
        # charon handles ESP in arrival order, so when the last is counted the two before
        # it have been dealt with
        pair.inject(forged, genuine, last)
        wait_for("the responder to count the last packet",
                 lambda: pair.responder_counters()["packets-in"] >= before["packets-in"] + 2)
        time.sleep(0.2)
        after = pair.responder_counters()
    finally:
        packets = esp_in_udp(capture.stop())

    # charon counts the inner packet's bytes
    inner = echo_request(case, 1, b"ours->strongSwan #1")
    assert one["bytes-in"] - before["bytes-in"] == len(inner)
    assert after["packets-in"] == before["packets-in"] + 2, (before, after)
    assert after["packets-out"] == before["packets-out"] + 2, (before, after)
    # ... and says why it refused the other two (charon's libipsec, esp log level 1)
    assert udp_checksum_errors(pair.netns, pair.responder_ns) == csum_errors
    log = pair.responder.log_text()[len(log_before):]
    assert log.count("ESP decryption or ICV verification failed") == 1, log
    assert log.count("ESP sequence number verification failed") == 1, log
    assert f"SPI {to_responder.spi:08x} [seq 1001]" in log, log

    # on the wire: exactly what we injected, and two replies sealed by charon
    sent = [p for p in packets if esp_header(p)[0] == to_responder.spi]
    assert sent == [genuine, forged, genuine, last]
    replies = [p for p in packets if esp_header(p)[0] == to_initiator.spi]
    assert len(replies) == 2 and len(packets) == 6
    found = []
    for packet in replies:
        result = decapsulate(sad, packet)
        assert result.sa is back
        found.append(echo(result.packet))
    assert [f[:5] for f in found] == [(case.inner[1], case.inner[0], "reply", ICMP_ID, 1),
                                      (case.inner[1], case.inner[0], "reply", ICMP_ID, 3)]
    assert [f[5] for f in found] == [b"ours->strongSwan #1", b"ours->strongSwan #3"]
    # charon's sequence numbers go on from its packet count; our window took both
    seqs = [esp_header(p)[1] for p in replies]
    assert seqs == [before["packets-out"] + 1, before["packets-out"] + 2]
    assert back.replay.top == seqs[1] and (back.packets, back.errors) == (2, {})
