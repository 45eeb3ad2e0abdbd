"""A link to a real network device: one interface of an in-process node on a Linux device.

This is the bottom of the netns backend. The protocol engines stay in mip6lab's own
:class:`~mip6lab.net.node.Node` objects; a :class:`PacketLink` plugs one of a node's
interfaces into a real device (usually one end of a veth pair) inside a Linux network
namespace, so that the node's frames meet real kernels, routers and NATs::

    with NetnsSet() as s, Lab(seed=1) as lab:
        stub, router = s.add_namespace("mn"), s.add_namespace("ar")
        s.add_veth(stub, "eth0", router, "eth0")
        mn = lab.add_host("mn")
        wire = lab.add_packet_link("wire", stub, "eth0")   # this class
        lab.connect(mn, wire, addresses=["2001:db8:1::10/64"])
        RealTimeRunner(lab).run_until(...)                 # mip6lab.net.realtime

To the node it is a :class:`~mip6lab.net.link.Link` (a subclass): ``attach``, ``detach``
and ``transmit`` behave alike and the trace gets the same events, so ladders and pcaps
work as on simulated links. A frame the node sends is a ``tx`` event of the node, written
to the device, and an ``rx`` event of the peer (``peer``, "kernel" unless named: the
device took it; what the other side did with it is that side's business). A frame read
from the device is a ``tx`` event of the peer and an ``rx`` event of the node, handed to
``node.receive_frame`` at the lab's current time. The link's impairments
(:class:`~mip6lab.net.link.LinkConditions`) do not apply: a real link's delay and loss
are the kernel's (``tc netem``).

The socket. An ``AF_PACKET``/``SOCK_RAW`` socket for every protocol (``ETH_P_ALL``),
bound to the device. A socket belongs to the network namespace of the thread that made
it, for life; Python 3.11 has no ``os.setns``, so a short-lived thread calls libc's
``setns(fd, CLONE_NEWNET)``, creates and binds the socket and ends. The main thread never
changes namespace. Later ioctls on the socket (the device's flags and MAC) act in the
socket's namespace, so they need no thread.

Frames the socket reads: ``PACKET_OUTGOING`` frames are not ours (the kernel never loops
a socket's own frames back to it): they are frames the *kernel* of the namespace sent on
the device, counted in ``stats["kernel_frames"]`` and traced as ``tx`` events of
``<node>-kernel`` with a comment. None should ever appear (see below). Unicast frames for
another MAC (``PACKET_OTHERHOST``) are on the wire (a ``tx`` of the peer) but delivered to
nobody, as on a simulated segment.

Checksums. A veth (like a NIC with checksum offload) passes UDP and TCP packets of the
kernel on the other side with ``CHECKSUM_PARTIAL``: the checksum field holds only the
pseudo-header sum, and an ``AF_PACKET`` reader sees a wrong checksum -- our node dropped
the kernel's UDP answers as "bad UDP checksum" until this was handled. The socket
therefore asks for a ``virtio_net_hdr`` before each frame (``PACKET_VNET_HDR``), which
says where the checksum starts and where it goes, and the link completes it, as the NIC
would (RFC 1071 sum, 0 written as 0xffff). Frames we send get an all-zero header (no
offload). A GSO frame (a TCP super-packet not yet cut into segments) is dropped with
that reason; nothing in mip6lab sends or expects TCP.

Keeping the kernel quiet. The device's MAC is set to the node interface's MAC, so every
unicast frame for the node is, to the kernel of that namespace, a frame for itself
(``PACKET_HOST``). Left alone, that kernel would answer for the addresses our node owns.
What the link does when it opens, and why:

1. ``net.ipv6.conf.<dev>.disable_ipv6 = 1``, first (before the device goes up and
   before the MAC changes). With IPv6 on, the kernel would form the *same* link-local
   address as our node (both are EUI-64 from the same MAC) and answer Neighbor
   Solicitations and echo requests for it, send MLD reports and router solicitations
   from it, and answer UDP to it with ICMPv6 port unreachable. With IPv6 off the kernel
   drops every IPv6 packet on that device in ``ipv6_rcv``; ``AF_PACKET`` taps run
   before any protocol handler, so the socket still sees all IPv6 frames (checked by
   the tests). It also removes every IPv6 address from the device.
2. No IPv4 address on the device: ``ip -4 address flush`` if the device has any, so
   the kernel never owns (and answers ARP, pings or UDP for) one of the node's
   addresses.
3. ``IFF_NOARP`` on the device (``ip link set <dev> arp off``): the kernel neither
   answers nor sends ARP on it, even for addresses it has on other devices (its default
   ``arp_ignore = 0`` answers for any local address on any interface).
4. ``net.ipv4.conf.<dev>.forwarding = 0``: IPv4 packets for the node arrive as
   ``PACKET_HOST``; with forwarding on, the kernel would route them (back out of the
   device) and send ICMP redirects or unreachables. With it off and no address, it drops
   them silently. Note that writing ``net.ipv4.conf.all.forwarding`` (or
   ``ip_forward``) later resets this per-device value.

Each of the four is needed: the test of a hostile stub namespace
(tests/netns/test_packet_link.py) captures, with any one of them left out, frames of the
kernel next to the node's -- MLD reports and duplicate echo replies (1), echo replies and
port unreachables for the node's address (2), an ARP reply for an address on ``lo`` (3),
the node's own packets forwarded back with ICMP redirects (4).

Left to the caller: the namespace should hold nothing else that speaks (it is the node's
"stub" namespace); a kernel address *elsewhere* in it that equals one of the node's would
still be delivered locally by the kernel. The device is set down when the link opens and
when the interface detaches (the peer sees the carrier go), up when an interface
attaches; taking it down leaves ``ENETDOWN`` pending on the socket, which the next
``send()`` would return (losing the first frame after link-up), so it is cleared.
``PACKET_MR_ALLMULTI`` is requested so that a real NIC also passes the multicast groups
the node listens to (a veth passes everything anyway).

Safety: binding reconfigures the device, so a device in the process's *own* namespace is
refused (a mistake there can take the machine's uplink down), and the setns thread
checks that it really is in the target namespace before it touches anything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import shutil
import socket
import struct
import subprocess
import threading
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from scapy.utils import checksum

from .frames import is_multicast_mac
from .link import Link
from .netns import Namespace

if TYPE_CHECKING:
    from .interface import Interface
    from .lab import Lab

__all__ = ["PacketLink", "NamespaceRef", "is_own_namespace", "namespace_path",
           "run_in_netns"]

NamespaceRef = Namespace | str  # a NetnsSet namespace, a name in /run/netns, or a path

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_ALLMULTI = 2
PACKET_STATISTICS = 6
PACKET_VNET_HDR = 15
PACKET_OTHERHOST = 3
PACKET_OUTGOING = 4
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCGIFADDR = 0x8915
SIOCSIFHWADDR = 0x8924
IFF_UP = 0x1
IFF_NOARP = 0x80
ARPHRD_ETHER = 1
IFNAMSIZ = 16

# struct virtio_net_hdr (include/uapi/linux/virtio_net.h), native byte order for packet
# sockets: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset.
_VNET_HDR = struct.Struct("=BBHHHH")
_VNET_NO_OFFLOAD = bytes(_VNET_HDR.size)
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_GSO_NONE = 0
_MAX_FRAME = 65536 + _VNET_HDR.size

_T = TypeVar("_T")
_libc: ctypes.CDLL | None = None


def _setns(path: str) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"setns({path}): {os.strerror(code)}")
        # never go on in the wrong namespace: what follows reconfigures a device
        if os.stat("/proc/thread-self/ns/net").st_ino != os.fstat(fd).st_ino:
            raise OSError(f"setns({path}) returned, but this thread is not in it")
    finally:
        os.close(fd)


def is_own_namespace(netns: NamespaceRef) -> bool:
    """Whether ``netns`` is the network namespace this process itself runs in."""
    return os.stat(namespace_path(netns)).st_ino == os.stat("/proc/self/ns/net").st_ino


def namespace_path(netns: NamespaceRef) -> str:
    """The file that names a network namespace: ``/run/netns/<name>`` or a given path
    (``/proc/<pid>/ns/net``)."""
    name = netns.name if isinstance(netns, Namespace) else str(netns)
    return name if name.startswith("/") else f"/run/netns/{name}"


def run_in_netns(netns: NamespaceRef, action: Callable[[], _T]) -> _T:
    """Run ``action()`` in a short-lived thread that has entered ``netns``; its result.

    Sockets it creates stay in that namespace; files under /proc/sys/net it opens are
    that namespace's; processes it starts run there. The calling thread never changes
    namespace. Exceptions are raised in the caller.
    """
    path = namespace_path(netns)
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            _setns(path)
            outcome["value"] = action()
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=body, name=f"setns {path}", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _write_sysctl(path: str, value: int) -> bool:
    """Write a /proc/sys file of the current thread's namespace; False if it is absent
    (no IPv6 in this kernel, for example)."""
    try:
        with open(path, "w") as f:
            f.write(f"{value}\n")
    except FileNotFoundError:
        return False
    return True


def _has_ipv4_address(sock: socket.socket, device: str) -> bool:
    request = struct.pack("16s24x", device.encode())
    try:
        fcntl.ioctl(sock.fileno(), SIOCGIFADDR, request)
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            return False
        raise
    return True


def _open_quiet_socket(device: str, allow_own_namespace: bool = False
                       ) -> tuple[socket.socket, list[str]]:
    """In the namespace (called by :func:`run_in_netns`): silence the kernel on
    ``device``, then make the packet socket. Returns it and what was changed."""
    if not allow_own_namespace and os.stat("/proc/thread-self/ns/net").st_ino == \
            os.stat("/proc/self/ns/net").st_ino:
        raise RuntimeError("about to reconfigure a device of the process's own network "
                           "namespace: refused (the thread did not change namespace)")
    changes = []
    if _write_sysctl(f"/proc/sys/net/ipv6/conf/{device}/disable_ipv6", 1):
        changes.append(f"net.ipv6.conf.{device}.disable_ipv6=1")
    # Protocol 0 receives nothing until bind(): no frames of other devices slip in.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        try:
            sock.bind((device, ETH_P_ALL))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot bind a packet socket to {device!r}: "
                          f"{exc.strerror}") from None
        if _write_sysctl(f"/proc/sys/net/ipv4/conf/{device}/forwarding", 0):
            changes.append(f"net.ipv4.conf.{device}.forwarding=0")
        if _has_ipv4_address(sock, device):
            ip = shutil.which("ip")
            if ip is None:
                raise FileNotFoundError(f"{device} has IPv4 addresses and 'ip' (iproute2) "
                                        "is not there to remove them")
            subprocess.run([ip, "-4", "address", "flush", "dev", device], check=True,
                           capture_output=True, timeout=10)
            changes.append(f"IPv4 addresses of {device} flushed")
        ifindex = socket.if_nametoindex(device)
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                        struct.pack("iHH8s", ifindex, PACKET_MR_ALLMULTI, 0, b""))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, changes


def _complete_checksum(frame: bytes, start: int, offset: int) -> bytes | None:
    """Finish a checksum left to the hardware (CHECKSUM_PARTIAL): sum from ``start`` to
    the end, complemented, at ``start + offset``. None when the offsets do not fit."""
    where = start + offset
    if where + 2 > len(frame) or start < 0:
        return None
    value = checksum(frame[start:]) or 0xFFFF
    return frame[:where] + value.to_bytes(2, "big") + frame[where + 2:]


class PacketLink(Link):
    """One node interface on a real device in a network namespace (root needed).

    ``netns`` is a :class:`~mip6lab.net.netns.Namespace`, a name under /run/netns or a
    path to a namespace file; ``device`` the device's name there. ``peer`` names, in the
    trace, whatever is on the other side of the device. The link owns a socket until
    :meth:`close` (or :meth:`Lab.close <mip6lab.net.lab.Lab.close>`).

    A device in the process's *own* namespace is refused unless ``allow_own_namespace``:
    binding reconfigures the device (no addresses, no IPv6, no ARP, a new MAC), which in
    the root namespace can cut the machine off its network.
    """

    def __init__(self, lab: Lab, name: str, netns: NamespaceRef, device: str, *,
                 peer: str = "kernel", allow_own_namespace: bool = False) -> None:
        super().__init__(lab, name, "p2p")
        if not 0 < len(device) < IFNAMSIZ or "/" in device:
            raise ValueError(f"invalid device name {device!r}")
        if not allow_own_namespace and is_own_namespace(netns):
            raise ValueError(
                f"{namespace_path(netns)} is this process's own network namespace: "
                f"binding {device} would strip its addresses and IPv6 and change its MAC "
                "(the machine's uplink, perhaps); use a namespace of its own, or pass "
                "allow_own_namespace=True if that is really meant")
        self.netns = netns
        self.device = device
        self.peer = peer
        self.stats.update({"received": 0, "kernel_frames": 0, "other_host": 0,
                           "unattached": 0, "send_errors": 0, "socket_drops": 0,
                           "checksums_completed": 0, "device_down": 0})
        self._sock: socket.socket | None = None
        self._sock, self.kernel_changes = run_in_netns(
            netns, lambda: _open_quiet_socket(device, allow_own_namespace))
        try:
            self._set_flags(up=False)
        except BaseException:
            self.close()
            raise
        self.kernel_changes.append(f"IFF_NOARP on {device}")

    def __repr__(self) -> str:
        where = f"{namespace_path(self.netns)}:{self.device}"
        state = "closed" if self.closed else ", ".join(i.fullname for i in self.interfaces)
        return f"<PacketLink {self.name} on {where} [{state}]>"

    # -- the device ------------------------------------------------------------------------

    def _ioctl(self, request: int, payload: bytes) -> bytes:
        if self._sock is None:
            raise RuntimeError(f"packet link {self.name} is closed")
        return fcntl.ioctl(self._sock.fileno(), request,
                           self.device.encode().ljust(IFNAMSIZ, b"\0") + payload)

    def _set_flags(self, *, up: bool) -> None:
        raw = self._ioctl(SIOCGIFFLAGS, bytes(24))
        (flags,) = struct.unpack_from("H", raw, IFNAMSIZ)
        flags |= IFF_NOARP
        flags = flags | IFF_UP if up else flags & ~IFF_UP
        self._ioctl(SIOCSIFFLAGS, struct.pack("H22x", flags))
        # Taking the device down leaves ENETDOWN pending on the socket, and the next
        # send() would fail with it (sock_alloc_send_pskb reports sk_err): clear it.
        self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)

    def _set_mac(self, mac: str) -> None:
        address = bytes.fromhex(mac.replace(":", ""))
        self._ioctl(SIOCSIFHWADDR, struct.pack("H14s8x", ARPHRD_ETHER, address))

    def device_flags(self) -> int:
        """The device's interface flags (``IFF_UP`` 0x1, ``IFF_NOARP`` 0x80 ...)."""
        return struct.unpack_from("H", self._ioctl(SIOCGIFFLAGS, bytes(24)), IFNAMSIZ)[0]

    # -- attachment ------------------------------------------------------------------------

    def attach(self, interface: Interface) -> None:
        if interface in self.interfaces:
            return
        if self.interfaces:
            raise ValueError(f"packet link {self.name} already carries "
                             f"{self.interfaces[0].fullname}")
        if self._sock is None:
            raise RuntimeError(f"packet link {self.name} is closed")
        self._set_flags(up=False)          # a MAC change needs the device down
        self._set_mac(interface.mac)
        self._set_flags(up=True)
        self.interfaces.append(interface)

    def detach(self, interface: Interface) -> None:
        if interface not in self.interfaces:
            return
        self.interfaces.remove(interface)
        if self._sock is not None:
            self._set_flags(up=False)      # the cable is pulled: the peer loses carrier

    @property
    def interface(self) -> Interface | None:
        """The node interface on this link, if one is attached."""
        return self.interfaces[0] if self.interfaces else None

    # -- frames out ------------------------------------------------------------------------

    def transmit(self, sender: Interface, frame: bytes, dst_mac: str) -> None:
        """Write ``frame`` to the device; ``tx`` of the sender, ``rx`` of the peer."""
        trace, node = self.lab.trace, sender.node.name
        self.stats["sent"] += 1
        trace.emit(node, "link", "tx", link=self.name, packet=frame, comments=[])
        if self._sock is None:
            trace.emit(node, "link", "drop", None, link=self.name, packet=frame,
                       reason="packet link closed")
            return
        try:
            self._sock.send(_VNET_NO_OFFLOAD + frame)
        except OSError as exc:
            self.stats["send_errors"] += 1
            reason = f"{self.device}: {exc.strerror or exc}"
            if exc.errno == errno.EAGAIN:
                reason = f"{self.device}: socket send buffer full"
            trace.emit(node, "link", "drop", None, link=self.name, packet=frame,
                       reason=reason)
            return
        self.stats["delivered"] += 1
        trace.emit(self.peer, "link", "rx", link=self.name, packet=frame, peer=node)

    # -- frames in -------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._sock is None

    def fileno(self) -> int:
        """The socket's descriptor, for a selector (-1 once closed)."""
        return -1 if self._sock is None else self._sock.fileno()

    def receive_pending(self, limit: int = 256) -> int:
        """Read up to ``limit`` waiting frames and hand them on; how many were read.

        Never blocks and never raises for what arrives: the real-time runner calls this
        when the socket is readable, with the lab's clock already at the present.
        """
        count = 0
        for _ in range(limit):
            if self._sock is None:   # a handler may close the link
                break
            try:
                data, address = self._sock.recvfrom(_MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno == errno.ENETDOWN:
                    # reported once each time the device goes down (by someone else:
                    # we clear it after our own changes); the socket is bound again
                    # when the device comes up
                    self.stats["device_down"] += 1
                    continue
                self.lab.trace.emit(self.peer, "link", "state",
                                    f"{self.name}: reading {self.device} failed: "
                                    f"{exc.strerror or exc}", link=self.name)
                break
            count += 1
            self._frame_in(data, address[2])
        if count and self._sock is not None:
            self._check_socket_drops()
        return count

    def _frame_in(self, data: bytes, pkttype: int) -> None:
        trace = self.lab.trace
        frame, problem = self._strip_vnet_header(data)
        iface = self.interface
        if pkttype == PACKET_OUTGOING:
            # Not ours: the kernel never loops a socket's own frames back to it.
            self.stats["kernel_frames"] += 1
            owner = f"{iface.node.name}-kernel" if iface else "kernel"
            trace.emit(owner, "link", "tx", link=self.name, packet=frame,
                       comments=[f"sent by the kernel on {self.device}, not by mip6lab"])
            return
        if iface is None:
            self.stats["unattached"] += 1
            return
        self.stats["received"] += 1
        trace.emit(self.peer, "link", "tx", link=self.name, packet=frame, comments=[])
        if problem is not None:
            trace.emit(iface.node.name, "link", "drop", None, link=self.name,
                       packet=frame, reason=problem)
            return
        dst_mac = ":".join("%02x" % b for b in frame[:6])
        if pkttype == PACKET_OTHERHOST and not is_multicast_mac(dst_mac):
            self.stats["other_host"] += 1
            trace.emit(self.peer, "link", "drop", None, link=self.name,
                       packet=frame, reason=f"no station with MAC {dst_mac} on {self.name}")
            return
        self.stats["delivered"] += 1
        trace.emit(iface.node.name, "link", "rx", link=self.name, packet=frame,
                   peer=self.peer)
        iface.node.receive_frame(iface, frame)

    def _strip_vnet_header(self, data: bytes) -> tuple[bytes, str | None]:
        """The frame after its virtio_net_hdr, its checksum completed; or a reason to
        drop it."""
        if len(data) < _VNET_HDR.size:
            return data, "shorter than its virtio_net_hdr"
        flags, gso_type, _, _, start, offset = _VNET_HDR.unpack_from(data)
        frame = data[_VNET_HDR.size:]
        if gso_type != VIRTIO_NET_HDR_GSO_NONE:
            return frame, f"GSO frame (type {gso_type}): segmentation offload unsupported"
        if flags & VIRTIO_NET_HDR_F_NEEDS_CSUM:
            completed = _complete_checksum(frame, start, offset)
            if completed is None:
                return frame, f"checksum offsets {start}+{offset} outside the frame"
            self.stats["checksums_completed"] += 1
            frame = completed
        return frame, None

    def _check_socket_drops(self) -> None:
        raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        _, drops = struct.unpack("II", raw)   # reading resets the kernel's counters
        if drops:
            self.stats["socket_drops"] += drops
            self.lab.trace.emit(self.peer, "link", "drop",
                                f"{drops} frames lost in the socket buffer",
                                link=self.name, reason="socket receive buffer full")

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the socket (idempotent). The device is left as it is."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> PacketLink:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
