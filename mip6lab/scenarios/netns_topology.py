"""The mobility scenarios on real Linux network namespaces (``--backend netns``, root).

The topology is not written twice: :class:`NetnsMobilityNetwork` builds the in-process
topology of :mod:`mip6lab.scenarios.mobility` in a scratch :class:`~mip6lab.net.lab.Lab`
that never runs, and reproduces it with real namespaces, devices and processes::

    namespace sw      one Linux bridge per link (br-home, br-cnlan, br-visit1 .. br-visit4,
                      br-v4net, br-natlan, br-uplink, br-natwan): the switch; every
                      node's veth is plugged into the bridge of its link, so one dumpcap
                      here records every link (--pcap)
    hr, inet, nat     kernel routers: the model's addresses, static routes and forwarding;
                      radvd sends the model's Router Advertisements (the home prefix on
                      hr's home link, 2001:db8:aN::/64 on inet's visited links)
    nat               nftables masquerade (fully-random ports) on the model NAT's outside
                      interface; a rebinding (dsmip6-nat) is a conntrack flush, so the
                      next packet of each flow gets a new public port
    cn                a kernel host; a small UDP echo server on port 7 (IPv6 and IPv4)
    ha, mn            stub namespaces: the home agent and the mobile node stay nodes of
                      the scenario's lab (their MIP6, IKEv2 and ESP engines in user space),
                      each bound by a PacketLink to its veth, with the kernel there silenced

The MN moves by having its link moved: its interface leaves the link (the veth goes down,
the switch port loses carrier), the switch-side end of its veth is re-homed into the
bridge of the new network (``ip -n sw link set dev mn-eth0 master br-visit2``) and the
interface comes back up there, solicits a router, forms a care-of address from radvd's
RA and detects the movement -- all as in process. An IPv4-only network gets the same
"DHCP" stand-in as in process (:meth:`MobileNode.attach_ipv4`).

Time: the lab runs against the wall clock (:class:`~mip6lab.net.realtime.RealTimeRunner`,
``time_scale`` simulated seconds per real second), so every timer of the engines (BU
lifetimes and refreshes, retransmissions, NAT keepalives, the script's moves) runs
``time_scale`` times faster than written. The kernel's own timers do not scale, except
the NAT's UDP mapping timeout, which is set to the model's ``nat_timeout`` divided by
``time_scale``. radvd's intervals are the model's, in real seconds, raised to the
smallest radvd accepts (0.03 / 0.07 s, allowed with Mobile IPv6's Advertisement Interval
option only; with plain RAs radvd refuses anything under 3 / 4 s).

What the kernel cannot do here: link delay (this kernel has no ``tc netem``), so the
model's ``delay`` is the veths' own; the model's ``loss`` on an access link is applied in
user space on the MN's side of it, both ways (the MN is the only other station there).
Linux's NAT is endpoint-dependent (conntrack), where the model's is endpoint-independent;
the MN only ever talks to its home agent through it, so the scenarios do not tell.

Clean-up: everything made here -- namespaces, veths, bridges, radvd, dumpcap and the
echo server (each ended by its own PID, radvd's privilege-separation child included),
the packet sockets and the scratch directory -- goes in :meth:`close`, which the scenario
calls after its run whatever happened; :class:`~mip6lab.net.netns.NetnsSet`'s exit and
signal hooks back that up.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import TYPE_CHECKING, Any

from ..net.interface import Interface
from ..net.lab import Lab
from ..net.nat import NatRouter
from ..net.netns import Namespace, NetnsSet, netns_available
from ..net.node import Node
from ..net.packet_link import PACKET_OUTGOING, PacketLink
from ..net.router import Router
from .base import ScenarioError

if TYPE_CHECKING:
    from .mobility import MobilityScenario

__all__ = ["NetnsMobilityNetwork", "RadioLink", "check_prerequisites", "NOT_ROOT"]

PREFIX = "m6lnet"          # namespace names: m6lnet-<pid>-<n>-<node>
SWITCH = "sw"
ECHO_PORT = 7
RADVD_MIN_INTERVALS = (0.03, 0.07)   # MinRtrAdvInterval, MaxRtrAdvInterval with MIPv6
START_TIMEOUT = 10.0       # seconds for dumpcap / the echo server to say they are ready

NOT_ROOT = ("the netns backend needs root to create network namespaces; run it as root, "
            "or use the in-process backend (--backend inproc, the default), which needs "
            "no privileges")

_PACKAGES = {"ip": "iproute2", "radvd": "radvd", "nft": "nftables",
             "conntrack": "conntrack", "dumpcap": "tshark", "ethtool": "ethtool"}

# The CN's echo server: one dual-stack UDP socket, answered from the address asked.
_ECHO_SERVER = r"""
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", port))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(65535)
    s.sendto(data, peer)
"""


def check_prerequisites(*, rebinding: bool = False, capture: bool = False) -> None:
    """Raise :class:`ScenarioError` (one sentence) unless the netns backend can run."""
    if os.geteuid() != 0:
        raise ScenarioError(NOT_ROOT)
    tools = ["ip", "radvd", "nft"] + (["conntrack"] if rebinding else []) \
        + (["dumpcap", "ethtool"] if capture else [])
    for tool in tools:
        if shutil.which(tool) is None:
            raise ScenarioError(f"the netns backend needs {tool!r} (Debian package "
                                f"{_PACKAGES[tool]}); run scripts/install-system-deps")
    ok, detail = netns_available()
    if not ok:
        raise ScenarioError(f"the netns backend cannot create a network namespace here "
                            f"({detail}); use the in-process backend (--backend inproc)")


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive and not a zombie (an orphan waits for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class RadioLink(PacketLink):
    """The MN's access link: its veth, whose switch-side end is plugged into the bridge
    of the network the MN is on. The link's ``name`` is that network's (``visit2``), as
    the in-process link's would be, so movement detection, the trace and the report name
    the same networks on both backends. ``loss`` drops frames both ways, in user space."""

    def __init__(self, lab: Lab, netns: Namespace, device: str, *, where: str,
                 peer: str, loss: float = 0.0) -> None:
        super().__init__(lab, where, netns, device, peer=peer)
        self.loss = loss

    def _lost(self) -> bool:
        return self.loss > 0 and self.lab.sim.random.random() < self.loss

    def transmit(self, sender: Interface, frame: bytes, dst_mac: str) -> None:
        if self._lost():
            self.lab.trace.emit(sender.node.name, "link", "tx", link=self.name,
                                packet=frame, comments=[])
            self.lab.trace.emit(sender.node.name, "link", "drop", None,
                                link=self.name, packet=frame, reason="lost on the radio")
            return
        super().transmit(sender, frame, dst_mac)

    def _frame_in(self, data: bytes, pkttype: int) -> None:
        if pkttype != PACKET_OUTGOING and self.interfaces and self._lost():
            self.lab.trace.emit(self.peer, "link", "drop", "frame lost on the radio",
                                link=self.name, reason="lost on the radio")
            return
        super()._frame_in(data, pkttype)


class _NetnsSet(NetnsSet):
    """A NetnsSet that first ends its owner's processes (with their forked children) and
    removes its scratch files: NetnsSet's exit and signal hooks then clean up all of it."""

    def __init__(self, owner: NetnsMobilityNetwork) -> None:
        super().__init__(PREFIX)
        self.owner = owner

    def close(self, *, raise_errors: bool = True) -> None:
        if os.getpid() == self._owner_pid:
            self.owner._release()
        super().close(raise_errors=raise_errors)


class NetnsMobilityNetwork:
    """The real network of one mobility scenario run; see the module's text."""

    def __init__(self, scenario: MobilityScenario, lab: Lab) -> None:
        self.scenario = scenario
        self.lab = lab
        self.time_scale = scenario.time_scale
        self.capture = os.path.abspath(scenario.capture) if scenario.capture else None
        self.netns: NetnsSet | None = None
        self.workdir: str | None = None
        self.namespaces: dict[str, Namespace] = {}
        self.bridges: dict[str, str] = {}        # link name -> bridge device in sw
        self.peers: dict[str, str] = {}          # link name -> the kernel nodes on it
        self.processes: dict[str, subprocess.Popen] = {}
        self.model: Lab | None = None
        self.radio: RadioLink | None = None
        self.mn: Node | None = None
        self.rebound: list[list[int | None]] = []
        self._before_rebind: dict[tuple[str, int], int] = {}
        self.captured: int | None = None
        self.nat_namespace: Namespace | None = None
        self._ports: list[tuple[str, str]] = []   # switch port -> bridge
        self._logs: list[Any] = []
        self._closed = False

    # -- building --------------------------------------------------------------------------

    def build(self) -> tuple[Node, Node]:
        """Make the namespaces, devices and processes; return the lab's HA and MN nodes
        (interfaces attached, not yet assembled into a home agent / mobile node)."""
        check_prerequisites(rebinding=hasattr(self.scenario, "rebind_at"),
                            capture=self.capture is not None)
        if self.capture is not None and not os.path.isdir(os.path.dirname(self.capture)):
            raise ScenarioError(f"cannot write the capture {self.capture}: no such "
                                "directory")
        # the in-process build is the model: the same links, addresses, routes and RAs
        self.model = Lab(seed=self.lab.seed)
        ha_model, mn_model = self.scenario._inproc_topology(self.model)
        self.lab.backend = "netns"
        try:
            self.netns = _NetnsSet(self)
            self.workdir = tempfile.mkdtemp(prefix="mip6lab-netns-")
            self._switch()
            kernel = [n for n in self.model.nodes.values() if n not in (ha_model, mn_model)]
            for node in kernel:
                self._kernel_node(node)
            for link in self.model.links.values():
                self.peers[link.name] = "+".join(
                    n.name for n in kernel
                    if any(i.link is link for i in n.interfaces.values())) or "switch"
            for node in (ha_model, mn_model):
                self._stub_namespace(node)
            self._plug_ports()
            for node in kernel:
                self._services(node)
            if self.capture is not None:
                self._start_capture()
            # the same MAC count as the model, so that the lab's later interfaces
            # (tunnels) never take a MAC the HA's or MN's wire interface has
            for _ in range(sum(len(n.interfaces) for n in self.model.nodes.values())):
                self.lab.allocate_mac()
            ha = self._lab_node(ha_model)
            mn = self._lab_node(mn_model, radio=True)
        except BaseException:
            self.close()
            raise
        self.mn = mn
        return ha, mn

    def _ip_batch(self, ns: Namespace, commands: list[str]) -> None:
        if commands:
            self.netns.run(ns, "ip", "-batch", "-", input="\n".join(commands) + "\n")

    def _switch(self) -> None:
        s = self.netns
        sw = self.namespaces[SWITCH] = s.add_namespace(SWITCH)
        # the switch has no IP of its own: no link-local addresses, MLD or RS from it
        s.sysctl(sw, "net.ipv6.conf.all.disable_ipv6", 1)
        s.sysctl(sw, "net.ipv6.conf.default.disable_ipv6", 1)
        commands = []
        for name in self.model.links:
            bridge = self.bridges[name] = f"br-{name}"[:15]
            # no STP (ports forward at once), no multicast snooping (our nodes send no
            # MLD reports: ND's multicast must flood)
            commands += [f"link add {bridge} type bridge stp_state 0 forward_delay 0 "
                         "mcast_snooping 0", f"link set {bridge} up"]
        self._ip_batch(sw, commands)

    def _veth(self, ns: Namespace, node: str, ifname: str, link: str) -> None:
        port = f"{node}-{ifname}"[:15]
        self.netns.add_veth(ns, ifname, self.namespaces[SWITCH], port)
        self._ports.append((port, self.bridges[link]))

    def _plug_ports(self) -> None:
        self._ip_batch(self.namespaces[SWITCH],
                       [f"link set dev {port} master {bridge}" for port, bridge
                        in self._ports])

    def _kernel_node(self, node: Node) -> None:
        s = self.netns
        ns = self.namespaces[node.name] = s.add_namespace(node.name)
        # static configuration only: no RAs taken, no router solicitations sent
        s.sysctl(ns, "net.ipv6.conf.all.accept_ra", 0)
        s.sysctl(ns, "net.ipv6.conf.default.accept_ra", 0)
        commands = []
        for ifname, iface in node.interfaces.items():
            if iface.link is None:
                continue
            self._veth(ns, node.name, ifname, iface.link.name)
            for a6 in iface.addresses6:
                if a6.origin == "static":
                    commands.append(f"address add {a6.interface} dev {ifname} nodad")
            for a4 in iface.addresses4:
                commands.append(f"address add {a4} dev {ifname}")
        for route in node.routes.routes:
            if route.origin == "static":
                via = f" via {route.gateway}" if route.gateway is not None else ""
                commands.append(f"route add {route.network}{via} dev {route.interface}")
        if node.forwarding:
            s.enable_forwarding(ns)
        self._ip_batch(ns, commands)
        if self.capture is not None:
            # a veth hands the kernel's UDP on with the checksum left to "hardware"
            # (CHECKSUM_PARTIAL), and routers forward it so: a capture on the bridges
            # would show the CN's answers with bad checksums on every link. Computed
            # in software, they are what a wire would carry.
            devices = " ".join(name for name, iface in node.interfaces.items() if iface.link)
            s.run(ns, "sh", "-c", 'for d in $0; do ethtool -K "$d" tx off >/dev/null; done',
                  devices)

    def _stub_namespace(self, node: Node) -> None:
        ns = self.namespaces[node.name] = self.netns.add_namespace(node.name)
        (ifname, iface), = node.interfaces.items()
        self._veth(ns, node.name, ifname, iface.link.name)

    def _lab_node(self, model: Node, *, radio: bool = False) -> Node:
        """The lab's node for the model's HA or MN: same class, name, MAC, addresses and
        static routes; its one interface on a PacketLink to its namespace's veth."""
        node = self.lab.add_node(type(model)(self.lab, model.name))
        (ifname, spec), = model.interfaces.items()
        iface = node.interfaces[ifname] = Interface(node, ifname, spec.mac)
        for a6 in spec.addresses6:
            if a6.origin == "static":
                iface.add_address(str(a6.interface))
        for a4 in spec.addresses4:
            iface.add_address(str(a4))
        where = spec.link.name
        if radio:
            link = self.radio = RadioLink(self.lab, self.namespaces[model.name], ifname,
                                          where=where, peer=self.peers[where],
                                          loss=spec.link.conditions.loss)
            self.lab.links[where] = link
        else:
            link = self.lab.add_packet_link(where, self.namespaces[model.name], ifname,
                                            peer=self.peers[where])
        node.attach(iface, link)
        for route in model.routes.routes:
            if route.origin == "static":
                node.routes.add(route.network, route.interface, route.gateway,
                                metric=route.metric)
        return node

    # -- processes -------------------------------------------------------------------------

    def _spawn(self, key: str, ns: Namespace, argv: list[str], **kwargs: Any
               ) -> subprocess.Popen:
        # a session of its own: a Ctrl-C at the terminal reaches us only, and we end
        # each process by its PID at close()
        proc = self.netns.spawn(ns, argv, start_new_session=True, **kwargs)
        self.processes[key] = proc
        return proc

    def _log(self, name: str):
        log = open(os.path.join(self.workdir, name), "w+b")
        self._logs.append(log)
        return log

    def _services(self, node: Node) -> None:
        ns = self.namespaces[node.name]
        if isinstance(node, Router) and node.advertising:
            self._radvd(node, ns)
        if isinstance(node, NatRouter):
            self._nat(node, ns)
        for port in node.udp_ports:
            if port != ECHO_PORT:
                raise ScenarioError(f"netns backend: {node.name}'s UDP port {port} has "
                                    "no real counterpart")
            self._echo_server(node, ns)

    def _radvd(self, router: Router, ns: Namespace) -> None:
        low, high = RADVD_MIN_INTERVALS
        blocks = []
        for ifname, config in router.advertising.items():
            maximum = max(config.max_interval, high)
            minimum = min(max(config.min_interval, low), 0.75 * maximum)
            prefixes = "".join(
                f"    prefix {prefix} {{ AdvOnLink on; AdvAutonomous on; "
                f"AdvValidLifetime {config.valid_lifetime}; "
                f"AdvPreferredLifetime {config.preferred_lifetime}; }};\n"
                for prefix in config.prefixes)
            blocks.append(
                f"interface {ifname} {{\n"
                f"    AdvSendAdvert on;\n"
                f"    MinRtrAdvInterval {minimum:g};\n"
                f"    MaxRtrAdvInterval {maximum:g};\n"
                f"    AdvDefaultLifetime {config.router_lifetime};\n"
                f"    AdvHomeAgentFlag {'on' if config.home_agent else 'off'};\n"
                # the Advertisement Interval option (RFC 6275 §7.3) is what lets radvd
                # go below 3 s; the model sends it too
                f"    AdvIntervalOpt on;\n"
                f"{prefixes}}};\n")
        path = os.path.join(self.workdir, f"radvd-{router.name}.conf")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write("".join(blocks))
        pidfile = os.path.join(self.workdir, f"radvd-{router.name}.pid")
        self._spawn(f"radvd {router.name}", ns,
                    ["radvd", "--nodaemon", "--config", path, "--pidfile", pidfile,
                     "--logmethod", "stderr"],
                    stdout=subprocess.DEVNULL, stderr=self._log(f"radvd-{router.name}.log"))

    def _nat(self, router: NatRouter, ns: Namespace) -> None:
        outside = router.nat.outside
        ruleset = ("table ip mip6lab_nat {\n"
                   "  chain postrouting {\n"
                   "    type nat hook postrouting priority srcnat; policy accept;\n"
                   f'    oifname "{outside}" masquerade fully-random\n'
                   "  }\n}\n")
        self.netns.run(ns, "nft", "-f", "-", input=ruleset)
        # the mapping timeout is a timer of the scenario: scaled like the others
        timeout = max(1, round(router.nat.mapping_timeout / self.time_scale))
        for key in ("nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"):
            if self.netns.run(ns, "test", "-e", f"/proc/sys/net/netfilter/{key}",
                              check=False).returncode == 0:
                self.netns.sysctl(ns, f"net.netfilter.{key}", timeout)
        self.nat_namespace = ns

    def _echo_server(self, node: Node, ns: Namespace) -> None:
        proc = self._spawn(f"echo {node.name}", ns,
                           [sys.executable, "-c", _ECHO_SERVER, str(ECHO_PORT)],
                           stdout=subprocess.PIPE, stderr=self._log(f"echo-{node.name}.log"))
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
        if not ready or proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the UDP echo server in {node.name} did not start: "
                               f"{self._read_log(f'echo-{node.name}.log')}")

    def _start_capture(self) -> None:
        argv = ["dumpcap", "-q"]
        for bridge in self.bridges.values():
            argv += ["-i", bridge]
        argv += ["-w", self.capture]
        log = self._log("dumpcap.log")
        proc = self._spawn("dumpcap", self.namespaces[SWITCH], argv,
                           stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + START_TIMEOUT
        while "Capturing on" not in self._read_log("dumpcap.log"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dumpcap did not start: "
                                   f"{self._read_log('dumpcap.log').strip()}")
            time.sleep(0.02)
        # dumpcap says "Capturing on" once its first interface is open, then opens the
        # others one by one (about 15 ms each): wait for its packet socket on every
        # bridge, or the run's first frames (IKE, the first BU) would be missing from
        # the bridges opened last
        wanted = self._bridge_indexes()
        while not wanted <= self._capturing(proc.pid):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dumpcap did not open every bridge: "
                                   f"{self._read_log('dumpcap.log').strip()}")
            time.sleep(0.01)

    def _bridge_indexes(self) -> set[int]:
        """The interface indexes of the switch's bridges."""
        out = self.netns.run(self.namespaces[SWITCH], "ip", "-o", "link", "show").stdout
        bridges = set(self.bridges.values())
        indexes = set()
        for line in out.splitlines():
            index, name = line.split(":", 2)[:2]
            if name.strip().split("@")[0] in bridges:
                indexes.add(int(index))
        return indexes

    @staticmethod
    def _capturing(pid: int) -> set[int]:
        """The interface indexes that packet sockets are bound to in the network
        namespace of process ``pid`` (its /proc/PID/net/packet: the switch's, for
        dumpcap)."""
        try:
            with open(f"/proc/{pid}/net/packet") as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            return set()
        # columns: sk RefCnt Type Proto Iface R Rmem User Inode
        return {int(line.split()[4]) for line in lines if len(line.split()) > 4}

    def _read_log(self, name: str) -> str:
        try:
            with open(os.path.join(self.workdir, name), "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    # -- the script ------------------------------------------------------------------------

    def move(self, where: str) -> None:
        """Move the MN to network ``where``: its link goes down, its veth is re-homed
        into that network's bridge, and the link comes up there."""
        mn, radio = self.mn, self.radio
        iface = mn.interface("eth0")
        mn.detach(iface)
        # frames of the old network still waiting in the socket are not for the new
        # one (a stale RA there would be taken for the new network's): read and dropped
        # as unattached while the device is down
        radio.receive_pending()
        subprocess.run(["ip", "-n", self.namespaces[SWITCH].name, "link", "set", "dev",
                        f"{mn.name}-{iface.name}"[:15], "master", self.bridges[where]],
                       check=True, capture_output=True, timeout=10)
        if self.lab.links.get(radio.name) is radio:
            del self.lab.links[radio.name]
        radio.name, radio.peer = where, self.peers[where]
        radio.loss = self.model.links[where].conditions.loss
        self.lab.links[where if where not in self.lab.links else f"{where}:{mn.name}"] = radio
        mn.attach(iface, radio)

    def _conntrack(self) -> dict[tuple[str, int], int]:
        """The NAT's UDP mappings: (inside address, inside port) -> outside port."""
        out = self.netns.run(self.nat_namespace, "conntrack", "-L", "-p", "udp",
                             check=False).stdout
        mappings = {}
        for line in out.splitlines():
            src = re.findall(r"\bsrc=(\S+)", line)
            sport = re.findall(r"\bsport=(\d+)", line)
            dport = re.findall(r"\bdport=(\d+)", line)
            dst = re.findall(r"\bdst=(\S+)", line)
            if len(src) < 2 or len(dport) < 2 or len(dst) < 2:
                continue
            if src[0] != dst[1]:       # translated: the reply goes to another address
                mappings[(src[0], int(sport[0]))] = int(dport[1])
        return mappings

    def rebind_nat(self) -> list[list[int | None]]:
        """Flush the NAT's connection tracking: every flow gets a new public port (a
        random one) with its next packet. Returns [old port, new port] pairs, the new
        ones filled in when the run ends (None if the flow never sent again)."""
        self._before_rebind = self._conntrack()
        self.netns.run(self.nat_namespace, "conntrack", "-F", check=False)
        self.rebound = [[port, None] for port in self._before_rebind.values()]
        self.lab.trace.emit("nat", "nat", "state",
                            f"conntrack flushed: {len(self.rebound)} UDP mappings dropped "
                            "(the next packets get new ports)",
                            ports=sorted(self._before_rebind.values()))
        return self.rebound

    # -- the end ---------------------------------------------------------------------------

    def finish(self) -> None:
        """After the run: the NAT's new ports, then the capture closed and counted."""
        if self._before_rebind:
            after = self._conntrack()
            for pair, inside in zip(self.rebound, self._before_rebind):
                pair[1] = after.get(inside)
        proc = self.processes.get("dumpcap")
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)      # dumpcap closes the file and counts
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            match = re.search(r"Packets captured: (\d+)", self._read_log("dumpcap.log"))
            self.captured = int(match.group(1)) if match else None
        self.scenario.captured = self.captured

    def _children(self, pid: int) -> list[int]:
        children = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry))
        return children

    def _stop(self, proc: subprocess.Popen) -> None:
        """End one process we started, by its PID, and the children it forked (radvd's
        privilege separation), which leave when their parent does."""
        if proc.poll() is not None:
            return
        children = self._children(proc.pid)
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        deadline = time.monotonic() + 2
        for child in children:
            while _running(child) and time.monotonic() < deadline:
                time.sleep(0.01)
            if _running(child):
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _release(self) -> None:
        """End our processes, each by its PID (dumpcap first, so that its file is
        complete), and remove the scratch directory. Idempotent."""
        processes, self.processes = self.processes, {}
        try:
            for key in sorted(processes, key=lambda k: k != "dumpcap"):
                proc = processes[key]
                self._stop(proc)
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
        finally:
            for log in self._logs:
                log.close()
            self._logs = []
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None

    def close(self) -> None:
        """Remove everything: sockets, processes, namespaces, scratch files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.lab.close()                       # the packet sockets
        finally:
            if self.netns is not None:
                self.netns.close(raise_errors=False)   # _release(), then the namespaces
            else:
                self._release()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<NetnsMobilityNetwork {state} {sorted(self.namespaces)}>"

