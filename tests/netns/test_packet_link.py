"""An in-process node on a real veth: Neighbor Discovery, ARP, a kernel router with a
MASQUERADE NAT, a kernel that stays quiet, wall-clock scaling, and clean-up.

Topologies (documentation addresses only)::

    wired:   mn (in-process, 2001:db8:1::10, 192.0.2.10) =[stub:eth0 | peer:eth0]= kernel
                                                             (2001:db8:1::1, 192.0.2.1)
    natted:  mn (198.51.100.10) =[stub:eth0 | nat:lan0]= kernel router, MASQUERADE
             out of wan0 (203.0.113.1) =[nat:wan0 | far:eth0]= UDP echo (203.0.113.2)

``mn`` is a mip6lab Host whose only interface is bound by a PacketLink to the veth end
``eth0`` in the namespace ``stub``; everything on the other side is the Linux kernel.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass

import pytest
from scapy.layers.inet import ICMP
from scapy.layers.inet6 import ICMPv6DestUnreach, ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap

from mip6lab.net.apps import Pinger
from mip6lab.net.lab import Lab
from mip6lab.net.netns import Namespace, NetnsSet, list_namespaces
from mip6lab.net.node import UdpDatagram
from mip6lab.net.realtime import RealTimeRunner
from mip6lab.testing.prereq import require_netns, require_tool

pytestmark = pytest.mark.netns

PREFIX = "m6lpl"   # our own namespace prefix: these tests never touch other runs' names
MN6, PEER6 = "2001:db8:1::10", "2001:db8:1::1"
MN4, PEER4 = "192.0.2.10", "192.0.2.1"
MN_NAT, NAT_IN, NAT_OUT, FAR = "198.51.100.10", "198.51.100.1", "203.0.113.1", "203.0.113.2"


@pytest.fixture(autouse=True)
def _prereqs():
    require_netns("AF_PACKET sockets on veth devices in namespaces")
    require_tool("ping", "the kernel's side of the pings")


# -- helpers -------------------------------------------------------------------------------


@dataclass
class Wired:
    s: NetnsSet
    lab: Lab
    mn: object
    link: object
    stub: Namespace
    peer: Namespace

    @property
    def iface(self):
        return self.mn.interface()


def _wire_up(s: NetnsSet, lab: Lab, addresses=(f"{MN6}/64", f"{MN4}/24")) -> Wired:
    stub, peer = s.add_namespace("stub"), s.add_namespace("peer")
    s.add_veth(stub, "eth0", peer, "eth0")
    s.add_address(peer, "eth0", f"{PEER6}/64")
    s.add_address(peer, "eth0", f"{PEER4}/24")
    mn = lab.add_host("mn")
    link = lab.add_packet_link("wire", stub, "eth0")
    lab.connect(mn, link, addresses=list(addresses))
    return Wired(s, lab, mn, link, stub, peer)


@pytest.fixture
def wired():
    with NetnsSet(PREFIX) as s, Lab(seed=1) as lab:
        yield _wire_up(s, lab)


def _kernel_run(s: NetnsSet, runner: RealTimeRunner, ns, argv, timeout: float = 15.0
                ) -> tuple[int, str]:
    """Start ``argv`` in ``ns`` and run the lab (so that our node answers) until it ends."""
    proc = s.spawn(ns, argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finished = runner.run_until(lambda lab: proc.poll() is not None, timeout=timeout)
    assert finished, f"{argv} still running after {timeout} s"
    return proc.returncode, proc.stdout.read()


def _ping(s, runner, ns, dst, count=3, wait=2) -> tuple[int, str]:
    return _kernel_run(s, runner, ns, ["ping", "-c", str(count), "-i", "0.1", "-W",
                                       str(wait), dst])


def _frames(lab: Lab, **criteria) -> list[Ether]:
    return [e.scapy() for e in lab.trace.filter(link="wire", **criteria)]


def _read_line(stream, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "no line from the process in time"
    return stream.readline()


SIOCGSKNS = 0x894C  # a socket's network namespace as a new fd (linux/sockios.h)


def _namespaces_of_our_sockets() -> set[int]:
    """Inode numbers of the network namespaces that this process's sockets live in."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            ns_fd = fcntl.ioctl(int(fd), SIOCGSKNS)
        except OSError:
            continue
        try:
            inodes.add(os.fstat(ns_fd).st_ino)
        finally:
            os.close(ns_fd)
    return inodes


def _ns_inode(ns: Namespace) -> int:
    return os.stat(f"/run/netns/{ns.name}").st_ino


# -- (a) IPv6 with real Neighbor Discovery, both ways --------------------------------------


def test_ipv6_ping_both_ways_with_neighbor_discovery(wired):
    w, runner = wired, RealTimeRunner(wired.lab)
    # our node -> the kernel: nobody knows anybody yet, so ND first
    ping = Pinger(w.mn, PEER6, count=3, interval=0.1, start=0.05)
    assert runner.run_until(lambda lab: ping.received == 3, timeout=10)
    ns_out = [f for f in _frames(w.lab, node="mn", kind="tx") if ICMPv6ND_NS in f]
    assert [f[ICMPv6ND_NS].tgt for f in ns_out] == [PEER6]
    na_in = [f for f in _frames(w.lab, node="mn", kind="rx") if ICMPv6ND_NA in f]
    assert [f[ICMPv6ND_NA].tgt for f in na_in] == [PEER6]

    # the kernel -> our node, after the kernel forgot what it learned from our NS
    w.s.run(w.peer, "ip", "-6", "neigh", "flush", "dev", "eth0")
    code, out = _ping(w.s, runner, w.peer, MN6)
    assert code == 0 and " 3 received" in out and "DUP" not in out, out
    solicited = [f for f in _frames(w.lab, node="mn", kind="rx")
                 if ICMPv6ND_NS in f and f[ICMPv6ND_NS].tgt == MN6]
    assert solicited and solicited[0][IPv6].dst == "ff02::1:ff00:10"  # multicast NS
    answers = [f for f in _frames(w.lab, node="mn", kind="tx")
               if ICMPv6ND_NA in f and f[ICMPv6ND_NA].tgt == MN6]
    assert answers and answers[0][ICMPv6ND_NA].S == 1
    neigh = w.s.run(w.peer, "ip", "-6", "neigh", "show", MN6, "dev", "eth0").stdout
    assert w.iface.mac in neigh, neigh          # the kernel learned our node's MAC
    assert not w.lab.errors and w.link.stats["kernel_frames"] == 0


# -- (b) IPv4: ARP and ping, both ways -----------------------------------------------------


def test_ipv4_arp_and_ping_both_ways(wired):
    w, runner = wired, RealTimeRunner(wired.lab)
    ping = Pinger(w.mn, PEER4, count=3, interval=0.1, start=0.0)  # right at link-up
    assert runner.run_until(lambda lab: ping.received == 3, timeout=10)
    assert not w.lab.trace.filter(kind="drop", module="link")  # the first frame went
    asked = [f[ARP] for f in _frames(w.lab, node="mn", kind="tx") if ARP in f]
    assert [(a.op, a.pdst) for a in asked] == [(1, PEER4)]
    told = [f[ARP] for f in _frames(w.lab, node="mn", kind="rx") if ARP in f]
    assert [(a.op, a.psrc) for a in told] == [(2, PEER4)]

    w.s.run(w.peer, "ip", "-4", "neigh", "flush", "dev", "eth0")
    code, out = _ping(w.s, runner, w.peer, MN4)
    assert code == 0 and " 3 received" in out and "DUP" not in out, out
    replies = [f[ARP] for f in _frames(w.lab, node="mn", kind="tx")
               if ARP in f and f[ARP].op == 2]
    assert [(a.psrc, a.hwsrc, a.pdst) for a in replies] == [(MN4, w.iface.mac, PEER4)]
    neigh = w.s.run(w.peer, "ip", "-4", "neigh", "show", MN4, "dev", "eth0").stdout
    assert w.iface.mac in neigh, neigh
    assert not w.lab.errors


# -- (c) through a kernel router and a real MASQUERADE NAT ---------------------------------

ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7))
print("ready", flush=True)
while True:
    data, (host, port) = s.recvfrom(2048)
    print(host, port, flush=True)
    s.sendto(f"{host}:{port}|".encode() + data, (host, port))
"""


def test_udp_through_kernel_router_and_masquerade(captures):
    use_iptables = shutil.which("iptables") is not None
    if not use_iptables:
        require_tool("nft", "the MASQUERADE NAT")
    with NetnsSet(PREFIX) as s, Lab(seed=2) as lab:
        stub, nat, far = s.add_namespace("stub"), s.add_namespace("nat"), \
            s.add_namespace("far")
        s.add_veth(stub, "eth0", nat, "lan0")
        s.add_veth(nat, "wan0", far, "eth0")
        s.add_address(nat, "lan0", f"{NAT_IN}/24")
        s.add_address(nat, "wan0", f"{NAT_OUT}/24")
        s.add_address(far, "eth0", f"{FAR}/24")
        s.enable_forwarding(nat, ipv4=True, ipv6=False)
        if use_iptables:
            s.run(nat, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan0",
                  "-j", "MASQUERADE")
        else:
            s.run(nat, "nft", "add table ip nat; add chain ip nat post { type nat hook "
                  "postrouting priority 100 ; } ; add rule ip nat post oifname wan0 "
                  "masquerade")
        echo = s.spawn(far, [sys.executable, "-c", ECHO], stdout=subprocess.PIPE,
                       text=True)
        assert _read_line(echo.stdout, 10).strip() == "ready"

        mn = lab.add_host("mn")
        link = lab.add_packet_link("wire", stub, "eth0", peer="router")
        lab.connect(mn, link, addresses=[f"{MN_NAT}/24"])
        mn.routes.add("0.0.0.0/0", "eth0", NAT_IN)
        answers: list[UdpDatagram] = []
        mn.bind_udp(40000, answers.append)
        for n in range(5):   # until one is answered: ARP at both ends comes first
            lab.at(0.05 + 0.3 * n, lambda: answers or mn.send_udp(FAR, 7, b"hello",
                                                                  40000))
        runner = RealTimeRunner(lab)
        assert runner.run_until(lambda lab: answers, timeout=10), lab.trace.ladder()

        seen_by_far = _read_line(echo.stdout, 5).split()
        assert seen_by_far[0] == NAT_OUT            # the NAT's address, not ours
        answer = answers[0]
        assert (str(answer.src), answer.sport, answer.dport) == (FAR, 7, 40000)
        assert answer.payload == f"{seen_by_far[0]}:{seen_by_far[1]}|hello".encode()
        # The far kernel left the UDP checksum to "hardware": the link completed it,
        # and our node's checksum check accepted it.
        assert link.stats["checksums_completed"] >= 1
        assert not [e for e in lab.trace.filter(kind="drop") if "checksum" in
                    (e.reason or "")]
        assert not lab.errors
        lab.trace.write_pcapng(captures.path("masquerade.pcapng"))   # tshark checks it


# -- (d) the kernel of the stub namespace never speaks for our node ------------------------


def test_kernel_in_the_stub_namespace_stays_quiet(tmp_path):
    """A stub namespace set up to interfere as much as it can -- our node's own
    addresses on the device, forwarding on, another address on lo, and (once bound) a
    default route out of the device -- is silenced by the PacketLink: a capture on the
    far end holds exactly the frames our node sent, nothing from the kernel behind it."""
    require_tool("tcpdump", "to capture what comes out of the stub namespace")
    with NetnsSet(PREFIX) as s, Lab(seed=3) as lab:
        stub, peer = s.add_namespace("stub"), s.add_namespace("peer")
        s.add_veth(stub, "eth0", peer, "eth0")
        s.add_address(peer, "eth0", f"{PEER6}/64")
        s.add_address(peer, "eth0", f"{PEER4}/24")
        # the hostile stub: the kernel owns what our node will own, and forwards
        s.add_address(stub, "eth0", f"{MN6}/64")
        s.add_address(stub, "eth0", f"{MN4}/24")
        s.add_address(stub, "lo", "192.0.2.99/32")
        s.enable_forwarding(stub)

        pcap = tmp_path / "peer.pcap"
        dump = s.spawn(peer, ["tcpdump", "-i", "eth0", "-n", "-U", "-w", str(pcap)],
                       stderr=subprocess.PIPE, text=True)
        assert "listening on" in _read_line(dump.stderr, 10)

        mn = lab.add_host("mn")
        link = lab.add_packet_link("wire", stub, "eth0")
        lab.connect(mn, link, addresses=[f"{MN6}/64", f"{MN4}/24"])
        iface = mn.interface()
        # a route out of the device (flushing its addresses took the old routes along)
        s.add_route(stub, "0.0.0.0/0", dev="eth0")
        runner = RealTimeRunner(lab)
        runner.run(until=0.3)

        link_local = f"{iface.link_local}%eth0"
        for dst in (link_local, MN6, MN4):
            code, out = _ping(s, runner, peer, dst)
            assert code == 0 and " 3 received" in out and "DUP" not in out, out
        closed_ports = (f"import socket as s\n"
                        f"for fam, dst in ((s.AF_INET6, '{MN6}'), (s.AF_INET, '{MN4}')):\n"
                        "    s.socket(fam, s.SOCK_DGRAM).sendto(b'x', (dst, 9))\n")
        assert _kernel_run(s, runner, peer, [sys.executable, "-c", closed_ports])[0] == 0
        # not our node's: one the stub's kernel would forward, one it owns on lo
        s.run(peer, "ip", "neigh", "add", "192.0.2.77", "lladdr", iface.mac, "dev", "eth0")
        assert _ping(s, runner, peer, "192.0.2.77", count=1, wait=1)[0] != 0
        assert _ping(s, runner, peer, "192.0.2.99", count=1, wait=1)[0] != 0
        runner.run(until=lab.now + 1.0)     # late MLD reports / RS would come by now
        dump.terminate()
        dump.wait(timeout=10)

        ours = Counter(e.packet for e in lab.trace.filter(node="mn", kind="tx"))
        captured = Counter(bytes(p) for p in rdpcap(str(pcap))
                           if Ether in p and p[Ether].src == iface.mac)
        unexplained = captured - ours
        assert not unexplained, [Ether(f).summary() for f in unexplained]
        assert captured == ours                      # and every frame of ours got there
        port_unreachables = [f for f in map(Ether, captured) if ICMPv6DestUnreach in f
                             or (ICMP in f and f[ICMP].type == 3)]
        assert len(port_unreachables) == 2           # ours, one per datagram; no others
        assert link.stats["kernel_frames"] == 0

        # and this is how the stub's kernel was left
        shown = s.run(stub, "ip", "-d", "address", "show", "dev", "eth0").stdout
        assert "NOARP" in shown and " inet" not in shown and "inet6" not in shown, shown
        assert iface.mac in shown
        sysctl = {key: s.run(stub, "cat", f"/proc/sys/net/{key}").stdout.strip()
                  for key in ("ipv6/conf/eth0/disable_ipv6", "ipv4/conf/eth0/forwarding")}
        assert sysctl == {"ipv6/conf/eth0/disable_ipv6": "1",
                          "ipv4/conf/eth0/forwarding": "0"}
        assert not lab.errors


def test_frames_others_send_on_the_device_are_traced_not_delivered(wired):
    """The detector behind ``stats["kernel_frames"]``: a frame put on the bound device
    by anything but our socket is on the wire (a ``tx`` of ``mn-kernel``), never
    handed to our node as if it had arrived."""
    w = wired
    frame = bytes(Ether(src="02:00:5e:00:00:99", dst="ff:ff:ff:ff:ff:ff", type=0x88B5)
                  / (b"\x00" * 46))
    sender = ("import socket, sys\n"
              "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
              "s.bind(('eth0', 0))\n"
              f"s.send(bytes.fromhex('{frame.hex()}'))\n")
    assert _kernel_run(w.s, RealTimeRunner(w.lab), w.stub, [sys.executable, "-c", sender]
                       )[0] == 0
    RealTimeRunner(w.lab).run(until=w.lab.now + 0.2)
    assert w.link.stats["kernel_frames"] == 1
    (event,) = w.lab.trace.filter(node="mn-kernel")
    assert event.kind == "tx" and event.packet == frame and event.data["comments"]
    assert not [e for e in w.lab.trace.filter(node="mn", kind="rx") if e.packet == frame]


# -- (e) time_scale ------------------------------------------------------------------------


def test_time_scale_compresses_timers_and_frames_still_wake_the_runner(wired):
    w = wired
    fired: list[float] = []
    w.lab.after(10.0, lambda: fired.append(time.monotonic()), label="the 10 s timer")
    runner = RealTimeRunner(w.lab, time_scale=20)
    proc = w.s.spawn(w.peer, ["ping", "-c", "2", "-i", "0.1", "-W", "2", MN6],
                     stdout=subprocess.PIPE, text=True)
    start_wall, start_cpu = time.monotonic(), time.process_time()
    runner.run(until=12.0)
    wall, cpu = time.monotonic() - start_wall, time.process_time() - start_cpu
    assert len(fired) == 1
    assert 0.48 <= fired[0] - start_wall <= 2.0     # 10 s / 20 = 0.5 s of wall time
    assert 0.58 <= wall <= 3.0 and w.lab.now == 12.0
    assert cpu < 0.5 * wall                          # it slept, it did not spin
    out = proc.communicate(timeout=10)[0]
    assert proc.returncode == 0 and " 2 received" in out, out
    # answered while the runner waited for the timer, not when it woke for it
    rtts = [float(t) for t in re.findall(r"time=([\d.]+) ms", out)]
    assert rtts and max(rtts) < 250, out
    rx = w.lab.trace.filter(node="mn", kind="rx",
                            where=lambda e: "echo request" in e.summary)
    assert rx and all(0 < e.time < 10.0 for e in rx)


# -- (f) clean-up --------------------------------------------------------------------------


def _cleanup_case(fail: bool) -> tuple[list[str], set[int], object, subprocess.Popen]:
    record: dict = {}

    def body():
        with NetnsSet(PREFIX) as s, Lab(seed=5) as lab:
            w = _wire_up(s, lab)
            record.update(names=s.names, inodes={_ns_inode(w.stub), _ns_inode(w.peer)},
                          link=w.link, proc=s.spawn(w.peer, ["sleep", "60"]))
            assert _ns_inode(w.stub) in _namespaces_of_our_sockets()  # the check works
            ping = Pinger(w.mn, PEER6, count=1, start=0.05)
            assert RealTimeRunner(lab).run_until(lambda lab: ping.received, timeout=5)
            if fail:
                raise RuntimeError("a test failed in the middle")

    if fail:
        with pytest.raises(RuntimeError, match="in the middle"):
            body()
    else:
        body()
    return record["names"], record["inodes"], record["link"], record["proc"]


def test_reset_closes_the_old_topologys_sockets():
    with NetnsSet(PREFIX) as s:
        stub, peer = s.add_namespace("stub"), s.add_namespace("peer")
        s.add_veth(stub, "eth0", peer, "eth0")
        s.add_address(peer, "eth0", f"{PEER6}/64")
        links = []

        def build(lab: Lab) -> None:
            links.append(lab.add_packet_link("wire", stub, "eth0"))
            lab.connect(lab.add_host("mn"), links[-1], addresses=[f"{MN6}/64"])

        with Lab(seed=6, build=build) as lab:
            lab.reset()
            assert links[0].closed and not links[1].closed
            ping = Pinger(lab.nodes["mn"], PEER6, count=1)
            assert RealTimeRunner(lab).run_until(lambda lab: ping.received, timeout=5)
        assert links[1].closed


@pytest.mark.parametrize("fail", [False, True], ids=["after success", "after an exception"])
def test_namespaces_and_sockets_are_gone(fail):
    names, inodes, link, proc = _cleanup_case(fail)
    assert link.closed and link.fileno() == -1
    assert not inodes & _namespaces_of_our_sockets()
    assert not set(names) & set(list_namespaces())
    assert proc.poll() is not None
