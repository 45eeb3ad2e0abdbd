"""Our ESP against the Linux kernel's (XFRM), hand-keyed with the same keys, both ways.

One boot of Debian's stock kernel under QEMU (:mod:`mip6lab.testing.qemu_kernel`,
``KernelVM(nics=1)``): the guest's ``eth0`` ends in a unix socket in this process, so our
ESP runs here, on the host, at full speed, and the guest runs only ``ip`` and ``ping``
(plus one tiny Python process holding the UDP 4500 socket that ESP-in-UDP needs).

The guest installs, for each case below, two SAs (``ip xfrm state``, distinct SPIs) and
two policies (``ip xfrm policy``); we hold the same SAs as :class:`SecurityAssociation`.
Then, per case:

* ours → kernel → ours: we make ICMP(v6) echo requests with unique data (scapy), seal
  them with :func:`encapsulate` and put them on the wire; the kernel decrypts them and
  answers through its outbound SA; :func:`decapsulate` opens the answers, which must be
  echo replies with the same data, from the right addresses;
* refusals: a request whose last ICV byte is flipped, and a genuine request played
  again, draw no reply; the kernel counts them (``failed`` and ``replay`` in the SA's
  stats; ``XfrmInStateProtoError`` and ``XfrmInStateSeqError`` in ``/proc/net/xfrm_stat``);
* kernel → ours → kernel: the guest pings our address through the SA (iputils ``ping``
  with a known pattern); we decrypt each request, check its data and answer with a
  sealed echo reply, which ``ping`` must count as received;
* counters: at the end ``ip -s xfrm state`` must show, per SA, exactly the packets we
  sent (inbound: accepted, highest sequence number, failed, replayed) and received
  (outbound: packets and ``oseq``), and our SAs must agree.

Cases: transport IPv6 AES-GCM-128, transport IPv4 AES-CBC-128 + HMAC-SHA-256-128, tunnel
IPv6-in-IPv6 AES-GCM-256, tunnel IPv4-in-IPv4 AES-CBC-256 + HMAC-SHA-256-128, and
ESP-in-UDP over IPv4 (RFC 3948, ``encap espinudp 4500 4500``) in transport mode with
AES-GCM-128 and in tunnel mode with AES-CBC-128 + HMAC-SHA-256-128.

Documentation addresses only (2001:db8::/32, 192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24); nothing leaves the VM and this process.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.packet import Raw

from mip6lab.crypto.esp_suites import ENCR_AES_GCM_16, suite_spec
from mip6lab.ipsec.esp import NAT_T_PORT, EspError, decapsulate, encapsulate, esp_spi
from mip6lab.ipsec.sad import SecurityAssociation, SecurityAssociationDatabase
from mip6lab.testing.prereq import require_tool
from mip6lab.testing.qemu_kernel import (KernelVM, KernelVMError, XfrmStateStats, nic_mac,
                                         parse_xfrm_states)

pytestmark = pytest.mark.qemu

HOST_MAC = "02:00:00:6d:36:01"   # our end of the guest's eth0
GUEST_MAC = nic_mac(0)
GUEST6, HOST6 = "2001:db8:1::2", "2001:db8:1::1"
GUEST4, HOST4 = "192.0.2.2", "192.0.2.1"
ICMP_ID = 0x6D36                  # the echo identifier of the requests we make
PING_PATTERN = "6d6970366c6162"   # "mip6lab": the guest's ping fills its data with it
PINGS = 3                         # echo requests the guest sends per case
REQUESTS = 3                      # genuine echo requests we send per case
VM_TIMEOUT = 180.0


@dataclass(frozen=True)
class Case:
    """One pair of SAs: host → guest (``spi_in`` on the guest) and guest → host."""

    name: str
    suite: str                     # our keyword; the guest gets the kernel's names
    mode: str                      # transport / tunnel
    host: str                      # outer addresses (the SA endpoints)
    guest: str
    spi_in: int                    # host -> guest, the guest's inbound SA
    spi_out: int                   # guest -> host
    inner_host: str | None = None  # tunnel mode: the addresses the inner packets carry
    inner_guest: str | None = None
    udp: bool = False              # ESP in UDP 4500 (RFC 3948)

    @property
    def src(self) -> str:          # the echo requests we send: inner addresses
        return self.inner_host or self.host

    @property
    def dst(self) -> str:
        return self.inner_guest or self.guest

    def keys(self, direction: str) -> tuple[bytes, bytes]:
        """Deterministic (encryption, integrity) keys of this case's ``direction`` SA."""
        spec = suite_spec(self.suite)

        def derive(label: str, n: int) -> bytes:
            return hashlib.shake_256(f"mip6lab/{self.name}/{direction}/{label}".encode()
                                     ).digest(n) if n else b""
        return derive("enc", spec.enc_key_len), derive("integ", spec.integ_key_len)


CASES = [
    Case("transport-ipv6-gcm128", "aes128gcm16", "transport", HOST6, GUEST6,
         0x6D361001, 0x6D361002),
    Case("transport-ipv4-cbc128-sha256", "aes128-sha256", "transport", HOST4, GUEST4,
         0x6D362001, 0x6D362002),
    Case("tunnel-ipv6-gcm256", "aes256gcm16", "tunnel", HOST6, GUEST6,
         0x6D363001, 0x6D363002, inner_host="2001:db8:20::1", inner_guest="2001:db8:10::2"),
    Case("tunnel-ipv4-cbc256-sha256", "aes256-sha256", "tunnel", HOST4, GUEST4,
         0x6D364001, 0x6D364002, inner_host="203.0.113.1", inner_guest="198.51.100.2"),
    Case("udp-transport-ipv4-gcm128", "aes128gcm16", "transport", "192.0.2.11", GUEST4,
         0x6D365001, 0x6D365002, udp=True),
    Case("udp-tunnel-ipv4-cbc128-sha256", "aes128-sha256", "tunnel", "192.0.2.12", GUEST4,
         0x6D366001, 0x6D366002, inner_host="203.0.113.12", inner_guest="198.51.100.12",
         udp=True),
]
IDS = [c.name for c in CASES]


# ================================================================ the guest's script
def _hexkey(key: bytes) -> str:
    return "0x" + key.hex()


def _xfrm_algorithms(case: Case, direction: str) -> str:
    """The ``ip xfrm state`` algorithm arguments for this case's keys."""
    enc, integ = case.keys(direction)
    if suite_spec(case.suite).encryption == ENCR_AES_GCM_16:
        return f"aead 'rfc4106(gcm(aes))' {_hexkey(enc)} 128"
    return f"enc 'cbc(aes)' {_hexkey(enc)} auth-trunc 'hmac(sha256)' {_hexkey(integ)} 128"


def _case_commands(case: Case, reqid: int) -> list[str]:
    encap = f" encap espinudp {NAT_T_PORT} {NAT_T_PORT} 0.0.0.0" if case.udp else ""
    plen = 128 if ":" in case.src else 32
    tmpl = f"proto esp reqid {reqid} mode {case.mode}"
    return [
        f"# {case.name}",
        f"ip xfrm state add src {case.host} dst {case.guest} proto esp spi {case.spi_in:#x} "
        f"reqid {reqid} mode {case.mode} replay-window 32 {_xfrm_algorithms(case, 'in')}"
        f"{encap} || fail 'state {case.name} in'",
        f"ip xfrm state add src {case.guest} dst {case.host} proto esp spi {case.spi_out:#x} "
        f"reqid {reqid} mode {case.mode} {_xfrm_algorithms(case, 'out')}"
        f"{encap} || fail 'state {case.name} out'",
        f"ip xfrm policy add src {case.dst}/{plen} dst {case.src}/{plen} dir out "
        f"priority 100 tmpl src {case.guest} dst {case.host} {tmpl} "
        f"|| fail 'policy {case.name} out'",
        f"ip xfrm policy add src {case.src}/{plen} dst {case.dst}/{plen} dir in "
        f"priority 100 tmpl src {case.host} dst {case.guest} {tmpl} "
        f"|| fail 'policy {case.name} in'",
    ]


# The receiver of ESP-in-UDP needs a UDP socket on 4500 in ESP-in-UDP mode
# (UDP_ENCAP = 100, UDP_ENCAP_ESPINUDP = 2); -I -S keeps the guest's Python start short.
UDP_ENCAP_HELPER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 4500))
s.setsockopt(socket.IPPROTO_UDP, 100, 2)
open(sys.argv[1], "w").close()
time.sleep(3600)
"""


def guest_script() -> str:
    hosts = sorted({c.host for c in CASES})
    lines = [
        "set -u",
        'fail() { echo "FAIL: $*"; exit 1; }',
        'echo "$(date +%s.%N) start"',
        # started first: the guest's Python takes seconds to come up under TCG
        f'"$MIP6LAB_PYTHON" -I -S -c {_sh(UDP_ENCAP_HELPER)} /tmp/udp-encap-ready &',
        "helper=$!",
        "ip link set eth0 up || fail eth0",
        f"ip addr add {GUEST6}/64 dev eth0 nodad || fail addr6",
        f"ip addr add {GUEST4}/24 dev eth0 || fail addr4",
        # the tunnel cases' inner addresses of the guest, and routes to ours
        *(f"ip addr add {c.inner_guest}/{128 if ':' in c.inner_guest else 32} dev lo "
          f"|| fail inner-{c.name}" for c in CASES if c.inner_guest),
        *(f"ip route add {c.inner_host}/{128 if ':' in c.inner_host else 32} "
          f"via {c.host} dev eth0 || fail route-{c.name}" for c in CASES if c.inner_host),
        # our end answers no ND/ARP: static neighbour entries
        *(f"ip neigh replace {h} lladdr {HOST_MAC} dev eth0 nud permanent || fail neigh"
          for h in hosts),
        # IKE/NAT-T port: never through a policy (a host-to-host inbound policy would also
        # match the outer UDP datagram before decapsulation: XfrmInTmplMismatch)
        f"ip xfrm policy add src 0.0.0.0/0 dst 0.0.0.0/0 proto udp sport {NAT_T_PORT} "
        f"dport {NAT_T_PORT} dir in priority 10 || fail bypass-in",
        f"ip xfrm policy add src 0.0.0.0/0 dst 0.0.0.0/0 proto udp sport {NAT_T_PORT} "
        f"dport {NAT_T_PORT} dir out priority 10 || fail bypass-out",
    ]
    for reqid, case in enumerate(CASES, start=1):
        lines += _case_commands(case, reqid)
    lines += [
        "for i in $(seq 600); do [ -e /tmp/udp-encap-ready ] && break; sleep 0.05; done",
        "[ -e /tmp/udp-encap-ready ] || fail 'UDP encap socket helper did not start'",
        'echo "$(date +%s.%N) ready"',
        'touch "$MIP6LAB_JOB/ready"',
        'while [ ! -e "$MIP6LAB_JOB/ping" ]; do sleep 0.05; done',
        'echo "$(date +%s.%N) ping"',
        # the kernel-initiated direction: every case at once
        "pings=()",
    ]
    for case in CASES:
        source = f" -I {case.inner_guest}" if case.inner_guest else ""
        lines.append(f"ping -n -c {PINGS} -i 0.2 -W 10 -p {PING_PATTERN}{source} {case.src} "
                     f'> "$MIP6LAB_OUT/ping-{case.name}.txt" 2>&1 & pings+=($!)')
    lines += [
        'wait "${pings[@]}"',
        "sleep 0.2",
        'echo "$(date +%s.%N) pinged"',
        'touch "$MIP6LAB_JOB/pinged"',
        # the host stops answering once it sees "pinged": count only after that
        'while [ ! -e "$MIP6LAB_JOB/done" ]; do sleep 0.05; done',
        'ip -s xfrm state > "$MIP6LAB_OUT/xfrm-state.txt"',
        'cat /proc/net/xfrm_stat > "$MIP6LAB_OUT/xfrm-stat.txt"',
        'ip xfrm policy > "$MIP6LAB_OUT/xfrm-policy.txt"',
        'ip -s link show eth0 > "$MIP6LAB_OUT/eth0.txt"',
        'kill "$helper"',
        'echo "$(date +%s.%N) end"',
    ]
    return "\n".join(lines) + "\n"


def _sh(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


# ================================================================ our side of the wire
@dataclass
class Echo:
    """An ICMP(v6) echo packet as one of our SAs delivered it."""

    src: str
    dst: str
    kind: str          # "request" / "reply"
    ident: int
    seq: int
    data: bytes
    checksum_ok: bool
    udp: bool          # arrived in UDP 4500
    spi: int


@dataclass
class CaseRun:
    """Our SAs of one case and what went through them."""

    case: Case
    out_sa: SecurityAssociation
    in_sa: SecurityAssociation
    genuine: list[bytes] = field(default_factory=list)    # data of our genuine requests
    tampered: list[bytes] = field(default_factory=list)   # data of the ICV-flipped ones
    replayed: list[bytes] = field(default_factory=list)   # data of the replayed ones
    replies: list[Echo] = field(default_factory=list)     # the kernel's echo replies
    requests: list[Echo] = field(default_factory=list)    # the guest ping's requests
    answered: int = 0                                     # echo replies we sealed
    bytes_to_guest: int = 0      # ESP payload bytes the guest accepted (see esp_payload)
    bytes_from_guest: int = 0    # ESP payload bytes we opened
    refused: list[str] = field(default_factory=list)      # our EspErrors on in_sa
    timeouts: list[str] = field(default_factory=list)
    ping_output: str = ""

    def replies_with(self, data: bytes) -> list[Echo]:
        return [r for r in self.replies if r.data == data]


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _ip_length(packet: bytes) -> int:
    if packet[0] >> 4 == 6:
        return 40 + int.from_bytes(packet[4:6], "big")
    return int.from_bytes(packet[2:4], "big")


def _addr(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def esp_payload(case: Case, packet: bytes) -> int:
    """What ESP protects of ``packet``, as the kernel counts an SA's bytes: the inner
    packet in tunnel mode, the upper-layer payload in transport mode (no extension
    headers here)."""
    if case.mode == "tunnel":
        return len(packet)
    return len(packet) - (40 if packet[0] >> 4 == 6 else (packet[0] & 0x0F) * 4)


def _echo_request(case: Case, seq: int, data: bytes) -> bytes:
    if ":" in case.src:
        return bytes(IPv6(src=case.src, dst=case.dst, hlim=64)
                     / ICMPv6EchoRequest(id=ICMP_ID, seq=seq, data=data))
    return bytes(IP(src=case.src, dst=case.dst, ttl=64)
                 / ICMP(type="echo-request", id=ICMP_ID, seq=seq) / Raw(data))


def _parse_echo(inner: bytes, udp: bool, spi: int) -> Echo | None:
    """The echo request/reply in ``inner``, its ICMP checksum verified; else None."""
    if inner[0] >> 4 == 6:
        packet = IPv6(inner)
        # (getlayer matches the exact class; ICMPv6EchoReply subclasses the request)
        layer = ICMPv6EchoRequest if packet.haslayer(ICMPv6EchoRequest) else ICMPv6EchoReply
        icmp = packet.getlayer(layer)
        if icmp is None or icmp.type not in (128, 129):
            return None
        kind, data = ("request" if icmp.type == 128 else "reply"), bytes(icmp.data)
        copy = packet.copy()
        del copy[layer].cksum
        ok = IPv6(bytes(copy))[layer].cksum == icmp.cksum
    else:
        packet = IP(inner)
        icmp = packet.getlayer(ICMP)
        if icmp is None or icmp.type not in (0, 8):
            return None
        kind, data = ("request" if icmp.type == 8 else "reply"), bytes(icmp.payload)
        copy = packet.copy()
        del copy[ICMP].chksum
        ok = IP(bytes(copy))[ICMP].chksum == icmp.chksum
    return Echo(packet.src, packet.dst, kind, icmp.id, icmp.seq, data, ok, udp, spi)


def _echo_reply(request: Echo) -> bytes:
    if ":" in request.src:
        return bytes(IPv6(src=request.dst, dst=request.src, hlim=64)
                     / ICMPv6EchoReply(id=request.ident, seq=request.seq, data=request.data))
    return bytes(IP(src=request.dst, dst=request.src, ttl=64)
                 / ICMP(type="echo-reply", id=request.ident, seq=request.seq)
                 / Raw(request.data))


class HostEnd:
    """Our end of the guest's eth0: ESP in and out, answering the guest's pings."""

    def __init__(self, sock: socket.socket, runs: list[CaseRun]) -> None:
        self.sock = sock
        self.runs = runs
        self.by_spi = {r.in_sa.spi: r for r in runs}
        self.sad = SecurityAssociationDatabase()
        for r in runs:
            self.sad.add(r.in_sa)
        self.unexpected: list[str] = []   # frames that were not ESP of ours
        self.frames_in = 0

    def send_ip(self, packet: bytes) -> None:
        ethertype = 0x86DD if packet[0] >> 4 == 6 else 0x0800
        self.sock.send(_mac(GUEST_MAC) + _mac(HOST_MAC) + ethertype.to_bytes(2, "big")
                       + packet)

    def seal(self, run: CaseRun, inner: bytes) -> bytes:
        return encapsulate(run.out_sa, inner, os.urandom(16))

    def pump(self, until: Callable[[], bool], timeout: float) -> bool:
        """Handle frames until ``until()`` holds (True) or ``timeout`` s pass (False)."""
        deadline = time.monotonic() + timeout
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(min(remaining, 0.1))
            try:
                frame = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.handle(frame)
        return True

    def handle(self, frame: bytes) -> None:
        self.frames_in += 1
        ethertype = int.from_bytes(frame[12:14], "big")
        if ethertype not in (0x86DD, 0x0800) or len(frame) < 34:
            return
        packet = frame[14:]
        packet = packet[:_ip_length(packet)]  # no Ethernet padding
        if frame[0:6] != _mac(HOST_MAC):
            return  # multicast (MLD, router solicitations ...): not for us
        spi = esp_spi(packet)
        run = self.by_spi.get(spi) if spi is not None else None
        if run is None:
            src, dst = (_addr(packet[8:24]), _addr(packet[24:40])) if packet[0] >> 4 == 6 \
                else (_addr(packet[12:16]), _addr(packet[16:20]))
            self.unexpected.append(f"{src} -> {dst}: {packet.hex()}")
            return
        try:
            found = decapsulate(self.sad, packet)
        except EspError as exc:
            run.refused.append(str(exc))
            return
        run.bytes_from_guest += esp_payload(run.case, found.packet)
        echo = _parse_echo(found.packet, found.udp_encapsulated, spi)
        if echo is None:
            run.refused.append(f"not an echo: {found.packet.hex()}")
        elif echo.kind == "reply":
            run.replies.append(echo)
        else:
            run.requests.append(echo)
            reply = _echo_reply(echo)
            self.send_ip(self.seal(run, reply))
            run.answered += 1
            run.bytes_to_guest += esp_payload(run.case, reply)


def _exchange(host: HostEnd, run: CaseRun) -> None:
    """Ours → kernel → ours for one case, with an ICV-flipped and a replayed request."""
    case = run.case

    def request(n: int, label: str) -> tuple[bytes, bytes, int]:
        data = f"mip6lab {case.name} {label}".encode().ljust(48, b".")
        inner = _echo_request(case, n, data)
        return data, host.seal(run, inner), esp_payload(case, inner)

    def send_and_wait(data: bytes, packet: bytes) -> None:
        host.send_ip(packet)
        if not host.pump(lambda: bool(run.replies_with(data)), timeout=10):
            run.timeouts.append(f"no reply to {data!r}")

    sent: list[bytes] = []
    for n in range(1, REQUESTS + 1):
        if n == 2:  # a request with its last ICV byte flipped: refused by the kernel
            bad_data, bad, _ = request(100 + n, "tampered")
            bad = bad[:-1] + bytes((bad[-1] ^ 0x01,))
            run.tampered.append(bad_data)
            host.send_ip(bad)
        if n == 3:  # the previous genuine request once more: a replay
            run.replayed.append(run.genuine[-1])
            host.send_ip(sent[-1])
        data, packet, size = request(n, f"request {n}")
        run.genuine.append(data)
        run.bytes_to_guest += size
        sent.append(packet)
        send_and_wait(data, packet)


# ================================================================ the run, once per module
@dataclass
class Session:
    runs: dict[str, CaseRun]
    host: HostEnd
    output: str
    files: dict[str, bytes]
    states: dict[int, XfrmStateStats]
    xfrm_stat: dict[str, int]
    seconds: dict[str, float]

    def diagnostics(self, name: str | None = None) -> str:
        text = [f"--- guest output ---\n{self.output}"]
        for f in ("xfrm-state.txt", "xfrm-policy.txt", "xfrm-stat.txt", "eth0.txt"):
            text.append(f"--- {f} ---\n{self.files.get(f, b'').decode(errors='replace')}")
        if name:
            r = self.runs[name]
            text.append(f"--- ours: refused {r.refused}, timeouts {r.timeouts}, out "
                        f"{r.out_sa.as_dict()}, in {r.in_sa.as_dict()}")
        text.append(f"--- unexpected frames: {self.host.unexpected[:10]}")
        return "\n".join(text)


def _our_sas(case: Case) -> tuple[SecurityAssociation, SecurityAssociation]:
    encap = (NAT_T_PORT, NAT_T_PORT) if case.udp else None
    out = SecurityAssociation(case.spi_in, "out", case.host, case.guest, case.suite,
                              *case.keys("in"), mode=case.mode, encap=encap)
    inbound = SecurityAssociation(case.spi_out, "in", case.guest, case.host, case.suite,
                                  *case.keys("out"), mode=case.mode, encap=encap)
    return out, inbound


@pytest.fixture(scope="module")
def session(kernel_image) -> Session:
    require_tool("ping", "the guest pings our side through the kernel's SAs")
    runs = {c.name: CaseRun(c, *_our_sas(c)) for c in CASES}
    vm = KernelVM(kernel_image, nics=1)
    seconds: dict[str, float] = {}
    started = time.monotonic()
    with vm.start(guest_script()) as vm_run:
        vm_run.wait_for_file("ready", timeout=120)
        seconds["ready"] = time.monotonic() - started
        host = HostEnd(vm_run.nic(0), list(runs.values()))
        host.pump(lambda: False, timeout=0.05)  # whatever the guest sent while booting
        for run in runs.values():
            _exchange(host, run)
        seconds["ours-first"] = time.monotonic() - started - seconds["ready"]
        vm_run.touch("ping")
        pinged = vm_run.job / "pinged"
        host.pump(lambda: pinged.exists() or not vm_run.running(), timeout=60)
        host.pump(lambda: False, timeout=0.3)   # stray late replies, if any
        vm_run.touch("done")
        seconds["kernel-first"] = time.monotonic() - started - sum(seconds.values())
        try:
            result = vm_run.wait(timeout=VM_TIMEOUT)
        except KernelVMError as exc:
            pytest.fail(f"the guest failed: {exc}\n{vm_run.output()}", pytrace=False)
    seconds["total"] = time.monotonic() - started
    if result.returncode != 0:
        pytest.fail(f"guest script exited with {result.returncode}:\n{result.output}",
                    pytrace=False)
    for run in runs.values():
        run.ping_output = result.files.get(f"ping-{run.case.name}.txt", b"").decode()
    state_text = result.files.get("xfrm-state.txt", b"").decode()
    states = {s.spi: s for s in parse_xfrm_states(state_text)}
    xfrm_stat = {}
    for line in result.files.get("xfrm-stat.txt", b"").decode().splitlines():
        name, _, value = line.partition(" ")
        if value.strip().isdigit():
            xfrm_stat[name] = int(value)
    print(f"kernel ESP interop: {seconds}")
    return Session(runs, host, result.output, result.files, states, xfrm_stat, seconds)


# ================================================================ the checks
def _ping_counts(text: str) -> tuple[int, int]:
    m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    return (int(m.group(1)), int(m.group(2))) if m else (-1, -1)


@pytest.mark.parametrize("name", IDS)
def test_ours_to_kernel_and_back(session: Session, name: str) -> None:
    """Our sealed echo requests are answered by the kernel; we open the replies."""
    run, case = session.runs[name], session.runs[name].case
    assert not run.timeouts, session.diagnostics(name)
    assert not run.refused, session.diagnostics(name)
    for data in run.genuine:
        replies = run.replies_with(data)
        assert len(replies) == 1, f"{data!r}: {replies}\n{session.diagnostics(name)}"
        reply = replies[0]
        assert (reply.src, reply.dst) == (case.dst, case.src)
        assert reply.ident == ICMP_ID and reply.checksum_ok
        assert reply.udp == case.udp
    assert [r.seq for r in run.replies] == list(range(1, REQUESTS + 1))


@pytest.mark.parametrize("name", IDS)
def test_kernel_to_ours_and_back(session: Session, name: str) -> None:
    """The guest's ping through the kernel's SA: we open each request and answer it."""
    run, case = session.runs[name], session.runs[name].case
    assert _ping_counts(run.ping_output) == (PINGS, PINGS), \
        f"{run.ping_output}\n{session.diagnostics(name)}"
    assert len(run.requests) == PINGS and run.answered == PINGS, session.diagnostics(name)
    pattern = bytes.fromhex(PING_PATTERN)
    for request in run.requests:
        assert (request.src, request.dst) == (case.dst, case.src)
        assert request.checksum_ok and request.udp == case.udp
        assert pattern * 3 in request.data, request.data
    assert [r.seq for r in run.requests] == list(range(1, PINGS + 1))


@pytest.mark.parametrize("name", IDS)
def test_tampered_and_replayed_requests_are_refused(session: Session, name: str) -> None:
    run = session.runs[name]
    assert run.tampered and run.replayed
    for data in run.tampered:
        assert not run.replies_with(data), f"the kernel answered a tampered request: {data!r}"
    for data in run.replayed:
        assert len(run.replies_with(data)) == 1, \
            f"not exactly one reply (to the genuine copy, none to the replay): {data!r}"
    guest_in = session.states.get(run.case.spi_in)
    assert guest_in is not None, session.diagnostics(name)
    assert (guest_in.failed, guest_in.replay) == (len(run.tampered), len(run.replayed)), \
        f"{guest_in}\n{session.diagnostics(name)}"


@pytest.mark.parametrize("name", IDS)
def test_kernel_counters_match_ours(session: Session, name: str) -> None:
    """``ip -s xfrm state``: exactly the packets we sent and received, per SA."""
    run, case = session.runs[name], session.runs[name].case
    guest_in = session.states.get(case.spi_in)
    guest_out = session.states.get(case.spi_out)
    assert guest_in is not None and guest_out is not None, session.diagnostics(name)
    spec = suite_spec(case.suite)
    algorithms = ("aead rfc4106(gcm(aes))",) if spec.encryption == ENCR_AES_GCM_16 else (
        "auth-trunc hmac(sha256)", "enc cbc(aes)")
    encap = f"espinudp {NAT_T_PORT} {NAT_T_PORT}" if case.udp else None
    for sa, (src, dst) in ((guest_in, (case.host, case.guest)),
                           (guest_out, (case.guest, case.host))):
        assert (sa.src, sa.dst, sa.proto, sa.mode) == (src, dst, "esp", case.mode)
        assert sa.algorithms == algorithms and sa.encap == encap

    # host -> guest: every genuine packet we sealed was accepted, nothing else
    accepted = len(run.genuine) + run.answered
    assert run.out_sa.seq == accepted + len(run.tampered)     # a tampered one used a number
    assert guest_in.packets == accepted, f"{guest_in}\n{session.diagnostics(name)}"
    assert guest_in.seq == run.out_sa.seq, guest_in                      # highest accepted
    assert guest_in.bytes == run.bytes_to_guest and guest_in.oseq == 0, guest_in

    # guest -> host: every packet the kernel sealed, we opened, in order
    received = len(run.replies) + len(run.requests)
    assert received == REQUESTS + PINGS
    assert guest_out.packets == guest_out.oseq == received, guest_out
    assert guest_out.bytes == run.bytes_from_guest, guest_out
    assert run.in_sa.packets == received and run.in_sa.replay.top == received
    assert not run.in_sa.errors and guest_out.failed == 0 and guest_out.replay == 0


def test_kernel_xfrm_statistics(session: Session) -> None:
    """/proc/net/xfrm_stat: the refusals we provoked and no other error at all."""
    stat = session.xfrm_stat
    assert stat, session.diagnostics()
    tampered = sum(len(r.tampered) for r in session.runs.values())
    replayed = sum(len(r.replayed) for r in session.runs.values())
    assert stat.get("XfrmInStateProtoError") == tampered, stat
    assert stat.get("XfrmInStateSeqError") == replayed, stat
    others = {k: v for k, v in stat.items()
              if v and k not in ("XfrmInStateProtoError", "XfrmInStateSeqError")}
    assert not others, f"{others}\n{session.diagnostics()}"
    assert not session.host.unexpected, session.diagnostics()
